//! The audit log (append, filters, retention) and the grants API (listing, every revocation
//! selection, `last_used_at`), on both engines.

use std::time::Duration;

use serde_json::json;

use crate::store::{
    Clock, GrantSelection, RevokeCause, Rotation, Store, StoreOptions, TokenHash,
    audit::{AuditActor, AuditEntry, AuditKind, AuditQuery},
};

use super::support::{
    GRACE, TestDb, client, code, count, grant, new_tokens, now, random_id, redemption, seed,
    seed_with_tokens, store_tests, successor,
};

store_tests!(
    audit_entries_are_appended_and_filtered,
    audit_entries_expire_after_the_retention_and_are_swept,
    grant_lifecycle_is_audited_without_secrets,
    users_see_their_live_grants_with_client_facts,
    each_selection_revokes_its_grants_tokens_and_audits,
    last_used_is_recorded_on_issue_and_throttled_on_lookup,
);

/// A store on `db` with an adjustable clock and `retention`.
async fn store_with_clock(db: &TestDb, retention: Duration) -> (Store, Clock) {
    let clock = Clock::adjustable();
    let options = StoreOptions::default()
        .clock(clock.clone())
        .audit_retention(retention);
    (db.store_with_options(options).await, clock)
}

async fn audit_entries_are_appended_and_filtered(db: &TestDb) {
    let (store, clock) = store_with_clock(db, Duration::from_secs(86_400)).await;
    let denied = AuditEntry::new(AuditKind::LoginDenied, AuditActor::System)
        .subject("user_a")
        .client("client_1")
        .detail(json!({"reason": "domain_not_allowed"}));
    // The adjustable clock also follows the system clock: a second may pass meanwhile.
    let denied_between = clock.now();
    store.append_audit(&denied).await.unwrap();
    let denied_between = denied_between..=clock.now();
    clock.advance(Duration::from_secs(5));
    let revoked = AuditEntry::new(AuditKind::GrantRevoked, AuditActor::Admin)
        .subject("user_b")
        .client("client_1")
        .grant("grant_9");
    let revoked_between = clock.now();
    store.append_audit(&revoked).await.unwrap();
    let revoked_between = revoked_between..=clock.now();

    let all = store.audit_entries(&AuditQuery::all()).await.unwrap();
    assert_eq!(all.len(), 2);
    // Newest first; the store set id and time.
    assert_eq!(all[0].kind, AuditKind::GrantRevoked);
    assert_eq!(all[0].actor, AuditActor::Admin);
    assert_eq!(all[0].grant_id.as_deref(), Some("grant_9"));
    assert_eq!(all[0].detail, None);
    assert!(revoked_between.contains(&all[0].occurred_at));
    assert!(denied_between.contains(&all[1].occurred_at));
    assert_eq!(all[1].detail, Some(json!({"reason": "domain_not_allowed"})));
    assert!(all.iter().all(|e| e.event_id.len() >= 43));
    assert_ne!(all[0].event_id, all[1].event_id);

    let of = |query: AuditQuery| {
        let store = store.clone();
        async move {
            store
                .audit_entries(&query)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.kind)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        of(AuditQuery::all().subject("user_a")).await,
        [AuditKind::LoginDenied]
    );
    assert_eq!(of(AuditQuery::all().client("client_1")).await.len(), 2);
    assert_eq!(
        of(AuditQuery::all().grant("grant_9")).await,
        [AuditKind::GrantRevoked]
    );
    assert!(
        of(AuditQuery::all().subject("user_a").grant("grant_9"))
            .await
            .is_empty(),
        "filters combine"
    );
    assert_eq!(
        of(AuditQuery::all().limit(1)).await,
        [AuditKind::GrantRevoked]
    );
    assert!(of(AuditQuery::all().subject("nobody")).await.is_empty());
}

async fn audit_entries_expire_after_the_retention_and_are_swept(db: &TestDb) {
    let (store, clock) = store_with_clock(db, Duration::from_secs(86_400)).await;
    let entry = |subject: &str| {
        AuditEntry::new(AuditKind::LoginDenied, AuditActor::System).subject(subject)
    };
    store.append_audit(&entry("old")).await.unwrap();
    clock.advance(Duration::from_secs(43_200));
    store.append_audit(&entry("new")).await.unwrap();

    // Within the retention both stay, and the sweeper leaves them.
    assert_eq!(store.purge_expired(100).await.unwrap().audit, 0);
    assert_eq!(count(&store, "mcp_auth_audit").await, 2);

    // A day after the first: it is no longer shown, then swept; the second one stays.
    clock.advance(Duration::from_secs(43_200));
    let shown = store.audit_entries(&AuditQuery::all()).await.unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].subject.as_deref(), Some("new"));
    let report = store.purge_expired(100).await.unwrap();
    assert_eq!(report.audit, 1);
    assert_eq!(count(&store, "mcp_auth_audit").await, 1);
    clock.advance(Duration::from_secs(43_200));
    assert_eq!(store.purge_expired(1).await.unwrap().audit, 1);
    assert_eq!(count(&store, "mcp_auth_audit").await, 0);
}

/// Every audit row as one text, every column included.
async fn audit_text(store: &Store) -> String {
    use sqlx::Row as _;
    let rows = sqlx::query(
        "SELECT event_id, kind, subject, client_id, grant_id, actor, detail FROM mcp_auth_audit",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            (0..7)
                .map(|i| {
                    r.try_get::<Option<String>, _>(i)
                        .unwrap()
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn grant_lifecycle_is_audited_without_secrets(db: &TestDb) {
    let (store, clock) = store_with_clock(db, Duration::from_secs(86_400)).await;
    let s = seed(&store).await;
    let grant_id = s.grant.grant_id.clone();
    // The code's redemption issues the first pair.
    let (access, refresh, tokens) = new_tokens();
    let consumed = store
        .consume_code(&TokenHash::of(&s.code), &redemption(&s.client_id), &tokens)
        .await
        .unwrap();
    assert!(matches!(consumed, crate::store::CodeConsumed::Consumed(_)));
    // Entries of one second have no order: the rotation comes a second later.
    clock.advance(Duration::from_secs(1));
    let next = successor();
    let rotated = store
        .rotate_refresh_token(
            &TokenHash::of(&refresh),
            &s.client_id,
            Some(&["openid".to_owned()]),
            &next,
            GRACE,
        )
        .await
        .unwrap();
    assert!(matches!(rotated, Rotation::Rotated(_)), "{rotated:?}");
    // A retry within the grace hands out the same pair: nothing new, nothing audited.
    let retried = store
        .rotate_refresh_token(
            &TokenHash::of(&refresh),
            &s.client_id,
            None,
            &successor(),
            GRACE,
        )
        .await
        .unwrap();
    assert!(matches!(retried, Rotation::Reissued { .. }));
    clock.advance(GRACE + Duration::from_secs(1));
    // After the grace the old token is a replay: the token endpoint revokes the grant.
    assert!(
        store
            .revoke_grant(&grant_id, RevokeCause::REFRESH_REPLAYED)
            .await
            .unwrap()
    );

    let entries = store
        .audit_entries(&AuditQuery::all().grant(&grant_id))
        .await
        .unwrap();
    let kinds: Vec<_> = entries.iter().rev().map(|e| (e.kind, e.actor)).collect();
    assert_eq!(
        kinds[..2],
        [
            (AuditKind::GrantCreated, AuditActor::User),
            (AuditKind::GrantRefreshed, AuditActor::Client),
        ]
    );
    // The replay and the revocation share a second: their order within it is not defined.
    let mut last: Vec<_> = kinds[2..].to_vec();
    last.sort_by_key(|(kind, _)| kind.as_str());
    assert_eq!(
        last,
        [
            (AuditKind::GrantRevoked, AuditActor::System),
            (AuditKind::ReplayDetected, AuditActor::System),
        ]
    );
    for entry in &entries {
        assert_eq!(entry.subject.as_deref(), Some("user_01TEST"), "{entry:?}");
        assert_eq!(entry.client_id.as_deref(), Some(s.client_id.as_str()));
    }
    let created = entries
        .iter()
        .find(|e| e.kind == AuditKind::GrantCreated)
        .unwrap();
    assert_eq!(
        created.detail,
        Some(json!({"scopes": ["openid", "profile", "email"]}))
    );
    let refreshed = entries
        .iter()
        .find(|e| e.kind == AuditKind::GrantRefreshed)
        .unwrap();
    assert_eq!(refreshed.detail, Some(json!({"scopes": ["openid"]})));
    for kind in [AuditKind::GrantRevoked, AuditKind::ReplayDetected] {
        let entry = entries.iter().find(|e| e.kind == kind).unwrap();
        assert_eq!(
            entry.detail,
            Some(json!({"reason": "refresh_token_replayed"}))
        );
    }

    // No token, code, upstream token or digest of one, in any column.
    let text = audit_text(&store).await;
    let secrets = [
        s.code.clone(),
        access,
        refresh,
        next.access_token.expose().to_owned(),
        next.refresh_token.expose().to_owned(),
        s.grant.upstream.access_token.expose().to_owned(),
        s.grant
            .upstream
            .refresh_token
            .clone()
            .unwrap()
            .expose()
            .to_owned(),
    ];
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret in the audit log");
        let digest = TokenHash::of(secret);
        assert!(!text.contains(digest.as_str()), "a digest in the audit log");
    }
}

async fn users_see_their_live_grants_with_client_facts(db: &TestDb) {
    let store = db.store().await;
    let first = seed(&store).await;
    // A second client of the same user, from a metadata document, with tokens.
    let cimd_id = format!("https://apps.example.com/{}/client.json", random_id());
    let mut cimd = client(&cimd_id);
    cimd.client_name = Some("Docs \u{202e}ppa".into());
    store.register_client(&cimd).await.unwrap();
    let mut second = grant(&cimd_id, 3600);
    second.created_at = now() + 10;
    let (_, second_code) = code(&second, 300);
    store.create_grant(&second, &second_code).await.unwrap();
    let (_, _, tokens) = new_tokens();
    store
        .issue_tokens(&second.grant_id, &second.scopes, &tokens)
        .await
        .unwrap()
        .unwrap();
    // Not listed: another user's grant, an expired one and a revoked one.
    let mut other = grant(&first.client_id, 3600);
    other.subject = "user_other".into();
    let (_, other_code) = code(&other, 300);
    store.create_grant(&other, &other_code).await.unwrap();
    let expired = grant(&first.client_id, -1);
    let (_, expired_code) = code(&expired, 300);
    store.create_grant(&expired, &expired_code).await.unwrap();
    let revoked = seed(&store).await;
    store
        .revoke_grants(
            &GrantSelection::Grant(revoked.grant.grant_id.clone()),
            AuditActor::Admin,
        )
        .await
        .unwrap();

    let listed = store.user_grants("user_01TEST").await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|g| g.grant_id.as_str()).collect();
    assert_eq!(
        ids,
        [second.grant_id.as_str(), first.grant.grant_id.as_str()]
    );
    let newest = &listed[0];
    assert_eq!(newest.client_id, cimd_id);
    assert_eq!(newest.client_host.as_deref(), Some("apps.example.com"));
    assert_eq!(
        newest.client_name.as_deref(),
        Some("Docs ppa"),
        "override removed"
    );
    assert_eq!(newest.scopes, ["openid", "profile", "email"]);
    assert_eq!(newest.created_at, second.created_at);
    assert_eq!(newest.expires_at, second.expires_at);
    assert!(newest.last_used_at.is_some_and(|t| t >= now() - 5));
    let oldest = &listed[1];
    assert_eq!(oldest.client_host.as_deref(), Some("127.0.0.1"));
    assert_eq!(oldest.client_name.as_deref(), Some("Test client"));
    assert_eq!(oldest.last_used_at, None, "no token issued yet");
    assert!(store.user_grants("nobody").await.unwrap().is_empty());
}

async fn each_selection_revokes_its_grants_tokens_and_audits(db: &TestDb) {
    let store = db.store().await;
    let (a, a_access, _) = seed_with_tokens(&store).await;
    let (b, b_access, _) = seed_with_tokens(&store).await;
    // Same client as `a`, another user.
    let mut c = grant(&a.client_id, 3600);
    c.subject = "user_other".into();
    let (_, c_code) = code(&c, 300);
    store.create_grant(&c, &c_code).await.unwrap();
    let live = |token: &str| {
        let store = store.clone();
        let hash = TokenHash::of(token);
        async move { store.lookup_access_token(&hash).await.unwrap().is_some() }
    };

    // A user cannot end someone else's grant.
    let foreign = GrantSelection::UserGrant {
        subject: "user_other".into(),
        grant_id: a.grant.grant_id.clone(),
    };
    assert!(
        store
            .revoke_grants(&foreign, AuditActor::User)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(live(&a_access).await);

    // All grants of `a`'s client: `a` and `c`, not `b`.
    let mut ended = store
        .revoke_grants(
            &GrantSelection::Client(a.client_id.clone()),
            AuditActor::Admin,
        )
        .await
        .unwrap();
    ended.sort();
    let mut expected = vec![a.grant.grant_id.clone(), c.grant_id.clone()];
    expected.sort();
    assert_eq!(ended, expected);
    assert!(!live(&a_access).await);
    assert!(live(&b_access).await);
    let revoked_tokens: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM mcp_auth_tokens WHERE grant_id = $1 AND revoked_at IS NOT NULL",
    )
    .bind(&a.grant.grant_id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(revoked_tokens, 2, "access and refresh token");
    // Nothing is revoked twice.
    assert!(
        store
            .revoke_grants(
                &GrantSelection::Grant(a.grant.grant_id.clone()),
                AuditActor::Admin
            )
            .await
            .unwrap()
            .is_empty()
    );

    // The user's own grant, by the user.
    let own = GrantSelection::UserGrant {
        subject: "user_01TEST".into(),
        grant_id: b.grant.grant_id.clone(),
    };
    assert_eq!(
        store.revoke_grants(&own, AuditActor::User).await.unwrap(),
        [b.grant.grant_id.as_str()]
    );
    assert!(!live(&b_access).await);

    // All of a user's grants.
    let d = seed(&store).await;
    let e = seed(&store).await;
    let mut ended = store
        .revoke_grants(
            &GrantSelection::User("user_01TEST".into()),
            AuditActor::Admin,
        )
        .await
        .unwrap();
    ended.sort();
    let mut expected = vec![d.grant.grant_id.clone(), e.grant.grant_id.clone()];
    expected.sort();
    assert_eq!(ended, expected);
    assert!(store.user_grants("user_01TEST").await.unwrap().is_empty());

    // One `grant_revoked` entry per grant, with its actor and reason.
    let revocations: Vec<_> = store
        .audit_entries(&AuditQuery::all())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == AuditKind::GrantRevoked)
        .map(|e| {
            (
                e.grant_id.unwrap(),
                e.actor,
                e.detail.unwrap()["reason"].clone(),
            )
        })
        .collect();
    assert_eq!(revocations.len(), 5);
    let of = |grant_id: &str| {
        revocations
            .iter()
            .find(|(g, ..)| g == grant_id)
            .map(|(_, actor, reason)| (*actor, reason.as_str().unwrap().to_owned()))
            .unwrap()
    };
    assert_eq!(of(&c.grant_id), (AuditActor::Admin, "admin_request".into()));
    assert_eq!(
        of(&b.grant.grant_id),
        (AuditActor::User, "user_request".into())
    );
    assert_eq!(
        of(&e.grant.grant_id),
        (AuditActor::Admin, "admin_request".into())
    );
    let c_entry = store
        .audit_entries(&AuditQuery::all().grant(&c.grant_id).limit(10))
        .await
        .unwrap();
    assert!(c_entry.iter().any(|e| e.kind == AuditKind::GrantRevoked
        && e.subject.as_deref() == Some("user_other")
        && e.client_id.as_deref() == Some(a.client_id.as_str())));
}

async fn last_used_is_recorded_on_issue_and_throttled_on_lookup(db: &TestDb) {
    let (store, clock) = store_with_clock(db, Duration::from_secs(86_400)).await;
    let last_used = |grant_id: String| {
        let store = store.clone();
        async move {
            sqlx::query_scalar::<_, Option<i64>>(
                "SELECT last_used_at FROM mcp_auth_grants WHERE grant_id = $1",
            )
            .bind(grant_id)
            .fetch_one(store.pool())
            .await
            .unwrap()
        }
    };
    let s = seed(&store).await;
    let id = s.grant.grant_id.clone();
    assert_eq!(last_used(id.clone()).await, None);
    let (access, _, tokens) = new_tokens();
    // The adjustable clock still follows the wall clock: times are checked within the call.
    let before = clock.now();
    store
        .issue_tokens(&id, &s.grant.scopes, &tokens)
        .await
        .unwrap()
        .unwrap();
    let issued_at = last_used(id.clone()).await.expect("recorded on issue");
    assert!((before..=clock.now()).contains(&issued_at), "{issued_at}");

    // A lookup reads it; within the resolution nothing is written.
    let found = store
        .lookup_access_token(&TokenHash::of(&access))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.grant_last_used_at, Some(issued_at));
    clock.advance(Duration::from_secs(30));
    let before = store.database_operations();
    store
        .note_grant_use(&id, found.grant_last_used_at)
        .await
        .unwrap();
    assert_eq!(
        store.database_operations(),
        before,
        "no database round trip"
    );
    assert_eq!(last_used(id.clone()).await, Some(issued_at));

    // Past it, the lookup's use is recorded.
    clock.advance(Duration::from_secs(31));
    let before = clock.now();
    store
        .note_grant_use(&id, found.grant_last_used_at)
        .await
        .unwrap();
    let recorded = last_used(id.clone()).await.expect("recorded");
    assert!((before..=clock.now()).contains(&recorded), "{recorded}");
    // A replica that read the old value does not move it back or write again.
    clock.advance(Duration::from_secs(1));
    store.note_grant_use(&id, Some(issued_at)).await.unwrap();
    assert_eq!(last_used(id).await, Some(recorded));
}
