//! The store's operations, expiry, secrets at rest and error classification, on every engine.

use std::time::Duration;

use crate::store::{
    Clock, CodeConsumed, CodeRedemption, ConsentApproval, Engine, Keyring, RevokeCause, Rotation,
    Secret, Store, StoreError, StoreOptions, TokenHash, TokenKind, UpstreamTokens, UpstreamUpdate,
};

use super::support::{
    Backend, GRACE, TestDb, client, code, count, grant, key_b64, new_tokens, now, pending,
    redemption, seed, seed_with_tokens, store_tests, successor,
};

store_tests!(
    clients_round_trip,
    registration_counts_unused_clients_in_its_insert,
    pending_authorization_flow,
    consent_is_remembered_and_replaced,
    code_is_single_use_and_replay_is_reported,
    tokens_issue_and_lookup,
    refresh_rotation,
    refresh_grace_follows_the_store_clock,
    revoking_a_grant_revokes_its_tokens,
    revoking_one_token,
    upstream_tokens_compare_and_swap,
    token_expiry_is_capped_at_the_grant,
    expired_rows_are_invisible,
    purge_deletes_expired_rows,
    sweeper_deletes_expired_rows,
    sealed_values_moved_between_rows_fail_closed,
    tampered_or_unknown_key_fails_closed,
    key_rotation_keeps_everyone_logged_in,
    rotation_of_an_unreadable_grant_changes_nothing,
    constraint_violation_is_permanent,
    pool_timeout_is_transient,
    postgres_cancels_statements_past_the_deadline,
    deleting_a_client_cascades,
);

async fn clients_round_trip(db: &TestDb) {
    let store = db.store().await;
    assert_eq!(
        store.engine(),
        match db.backend {
            Backend::Sqlite => Engine::Sqlite,
            Backend::Postgres => Engine::Postgres,
        }
    );
    let mut record = client("client-a");
    record.client_secret_hash = Some(TokenHash::of("client secret"));
    store.register_client(&record).await.unwrap();
    assert_eq!(
        store.get_client("client-a").await.unwrap(),
        Some(record.clone())
    );
    assert_eq!(store.get_client("nobody").await.unwrap(), None);

    let later = now() + 10 * 86_400;
    assert!(store.touch_client("client-a", later).await.unwrap());
    let touched = store.get_client("client-a").await.unwrap().unwrap();
    assert_eq!(touched.expires_at, later);
    // Touching never shortens the registration.
    assert!(store.touch_client("client-a", now()).await.unwrap());
    assert_eq!(
        store
            .get_client("client-a")
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        later
    );
    assert!(!store.touch_client("nobody", later).await.unwrap());

    assert!(store.delete_client("client-a").await.unwrap());
    assert!(!store.delete_client("client-a").await.unwrap());
}

/// The ceiling of never-used registrations is checked by the registration's own insert: at
/// the ceiling nothing is stored; expired and used registrations do not count.
async fn registration_counts_unused_clients_in_its_insert(db: &TestDb) {
    let store = db.store().await;
    let mut expired = client("expired");
    expired.expires_at = now() - 1;
    assert!(store.register_client_within(&expired, 2).await.unwrap());
    assert!(store.register_client_within(&client("a"), 2).await.unwrap());
    assert!(store.register_client_within(&client("b"), 2).await.unwrap());
    let before = store.database_operations();
    assert!(!store.register_client_within(&client("c"), 2).await.unwrap());
    assert_eq!(store.database_operations() - before, 1, "one transaction");
    // Refused: neither row of the client was kept.
    assert_eq!(store.get_client("c").await.unwrap(), None);
    let stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM mcp_auth_clients WHERE client_id = 'c'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(stored, 0);
    let unused = store.unused_clients().await.unwrap();
    assert_eq!(unused.live, 2);
    assert!(unused.next_expiry.is_some_and(|at| at > now()));
    // A grant marks a client used, which makes room again.
    let g = grant("a", 3600);
    let (_, c) = code(&g, 300);
    store.create_grant(&g, &c).await.unwrap();
    assert!(store.register_client_within(&client("c"), 2).await.unwrap());
    assert!(store.get_client("c").await.unwrap().is_some());
}

async fn pending_authorization_flow(db: &TestDb) {
    let store = db.store().await;
    store.register_client(&client("c")).await.unwrap();
    let p = pending("c", 600);
    store.create_pending(&p).await.unwrap();
    // The sealed verifier comes back opened.
    assert_eq!(store.get_pending(&p.txn_id).await.unwrap(), Some(p.clone()));
    // The consent page's read: the request with its client, in one operation.
    let before = store.database_operations();
    let found = store.get_pending_with_client(&p.txn_id).await.unwrap();
    assert_eq!(store.database_operations() - before, 1);
    let registered = store.get_client("c").await.unwrap();
    assert!(registered.is_some());
    assert_eq!(found, Some((p.clone(), registered)));
    assert_eq!(
        store.get_pending_with_client("unknown").await.unwrap(),
        None
    );
    // A request whose client expired comes back without it.
    let mut gone = client("gone");
    gone.expires_at = now() - 1;
    store.register_client(&gone).await.unwrap();
    let orphan = pending("gone", 600);
    store.create_pending(&orphan).await.unwrap();
    assert_eq!(
        store.get_pending_with_client(&orphan.txn_id).await.unwrap(),
        Some((orphan.clone(), None))
    );

    let binding = TokenHash::of("browser cookie");
    let other_browser = TokenHash::of("another cookie");
    // Not approved yet: the callback's claim takes nothing.
    assert_eq!(
        store
            .claim_approved_pending(&p.txn_id, &binding)
            .await
            .unwrap(),
        None
    );
    let wrong = TokenHash::of("forged csrf");
    assert_eq!(
        store
            .approve_pending(&p.txn_id, &wrong, &binding)
            .await
            .unwrap(),
        None
    );
    let csrf = TokenHash::of("consent csrf");
    // The right token from another browser approves nothing and spends nothing.
    assert_eq!(
        store
            .approve_pending(&p.txn_id, &csrf, &other_browser)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_pending(&p.txn_id).await.unwrap(), Some(p.clone()));
    let approved = store
        .approve_pending(&p.txn_id, &csrf, &binding)
        .await
        .unwrap()
        .expect("right token approves");
    assert!(approved.consented_at.is_some());
    assert_eq!(approved.consent_token, None);
    // The CSRF token is single-use.
    assert_eq!(
        store
            .approve_pending(&p.txn_id, &csrf, &binding)
            .await
            .unwrap(),
        None
    );

    // Another browser's callback takes nothing; this browser's takes the request once.
    assert_eq!(
        store
            .claim_approved_pending(&p.txn_id, &other_browser)
            .await
            .unwrap(),
        None
    );
    let consumed = store
        .claim_approved_pending(&p.txn_id, &binding)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(consumed.upstream_verifier, p.upstream_verifier);
    assert!(consumed.consented_at.is_some());
    assert_eq!(
        store
            .claim_approved_pending(&p.txn_id, &binding)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_pending(&p.txn_id).await.unwrap(), None);

    // A denied request is consumed without approval.
    let q = pending("c", 600);
    store.create_pending(&q).await.unwrap();
    assert!(store.consume_pending(&q.txn_id).await.unwrap().is_some());
    assert_eq!(store.consume_pending(&q.txn_id).await.unwrap(), None);
}

async fn consent_is_remembered_and_replaced(db: &TestDb) {
    let store = db.store().await;
    store.register_client(&client("c")).await.unwrap();
    let mut approval = ConsentApproval {
        subject: "browser-hash".into(),
        client_id: "c".into(),
        scopes: vec!["openid".into()],
        resource: None,
        created_at: now(),
        expires_at: now() + 3600,
        redirect_uris_digest: Some("d1".into()),
    };
    store.remember_consent(&approval).await.unwrap();
    assert_eq!(
        store.find_consent("browser-hash", "c").await.unwrap(),
        Some(approval.clone())
    );
    approval.scopes.push("profile".into());
    approval.resource = Some("https://mcp.example.com/mcp".into());
    // The redirect-URI digest is replaced with the rest.
    approval.redirect_uris_digest = Some("d2".into());
    store.remember_consent(&approval).await.unwrap();
    assert_eq!(
        store.find_consent("browser-hash", "c").await.unwrap(),
        Some(approval)
    );
    assert_eq!(store.find_consent("someone else", "c").await.unwrap(), None);
    assert!(store.forget_consent("browser-hash", "c").await.unwrap());
    assert_eq!(store.find_consent("browser-hash", "c").await.unwrap(), None);
}

async fn code_is_single_use_and_replay_is_reported(db: &TestDb) {
    let store = db.store().await;
    let seed = seed(&store).await;
    let hash = TokenHash::of(&seed.code);
    // The token endpoint's first read: the client and the code together, as read apart.
    let before = store.database_operations();
    let (found_client, found_code) = store
        .get_client_and_code(&seed.client_id, &hash)
        .await
        .unwrap();
    assert_eq!(store.database_operations() - before, 1);
    assert!(found_client.is_some());
    assert_eq!(
        found_client,
        store.get_client(&seed.client_id).await.unwrap()
    );
    assert!(found_code.is_some());
    assert_eq!(found_code, store.find_code(&hash).await.unwrap());
    let (nobody, code_anyway) = store.get_client_and_code("nobody", &hash).await.unwrap();
    assert_eq!((nobody, code_anyway.is_some()), (None, true));
    let (client_anyway, no_code) = store
        .get_client_and_code(&seed.client_id, &TokenHash::of("unknown"))
        .await
        .unwrap();
    assert_eq!((client_anyway.is_some(), no_code), (true, None));
    // A redemption by another client, redirect URI or challenge burns nothing.
    let stranger = CodeRedemption {
        client_id: "someone else",
        ..redemption(&seed.client_id)
    };
    let (_, _, unused) = new_tokens();
    assert_eq!(
        store.consume_code(&hash, &stranger, &unused).await.unwrap(),
        CodeConsumed::NotFound
    );
    assert!(
        store
            .find_token(&unused.access_hash)
            .await
            .unwrap()
            .is_none()
    );
    let (access, refresh, tokens) = new_tokens();
    let CodeConsumed::Consumed(issued) = store
        .consume_code(&hash, &redemption(&seed.client_id), &tokens)
        .await
        .unwrap()
    else {
        panic!("first redemption succeeds");
    };
    let redeemed = store.find_code(&hash).await.unwrap().unwrap();
    assert!(redeemed.used_at.is_some());
    // The pair was stored with the code's scopes in the same transaction.
    assert_eq!(issued.grant_id, seed.grant.grant_id);
    assert_eq!(issued.client_id, seed.client_id);
    assert_eq!(issued.scopes, redeemed.scopes);
    assert_eq!(issued.access_expires_at, tokens.access_expires_at);
    assert_eq!(issued.refresh_expires_at, Some(tokens.refresh_expires_at));
    let found = store
        .lookup_access_token(&TokenHash::of(&access))
        .await
        .unwrap()
        .expect("the redemption's access token is live");
    assert_eq!(found.token.scopes, redeemed.scopes);
    let refresh_row = store
        .find_token(&TokenHash::of(&refresh))
        .await
        .unwrap()
        .expect("the redemption's refresh token is stored");
    assert_eq!(refresh_row.kind, TokenKind::Refresh);
    // A replay issues nothing and names the grant to revoke.
    let (_, _, replayed) = new_tokens();
    assert_eq!(
        store
            .consume_code(&hash, &redemption(&seed.client_id), &replayed)
            .await
            .unwrap(),
        CodeConsumed::Replayed {
            grant_id: seed.grant.grant_id.clone()
        }
    );
    assert!(
        store
            .find_token(&replayed.access_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(count(&store, "mcp_auth_tokens").await, 2);
    assert_eq!(
        store
            .consume_code(
                &TokenHash::of("unknown"),
                &redemption(&seed.client_id),
                &new_tokens().2
            )
            .await
            .unwrap(),
        CodeConsumed::NotFound
    );
    // A grant and a code of different grants are refused.
    let other = grant(&seed.client_id, 100);
    let (_, mismatched) = code(&seed.grant, 100);
    assert!(matches!(
        store.create_grant(&other, &mismatched).await,
        Err(StoreError::Invalid { .. })
    ));
}

async fn tokens_issue_and_lookup(db: &TestDb) {
    let store = db.store().await;
    let seed = seed(&store).await;
    let (access, refresh, tokens) = new_tokens();
    let issued = store
        .issue_tokens(&seed.grant.grant_id, &["openid".to_owned()], &tokens)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(issued.client_id, seed.client_id);
    assert_eq!(issued.access_expires_at, tokens.access_expires_at);
    assert_eq!(issued.refresh_expires_at, Some(tokens.refresh_expires_at));

    let found = store
        .lookup_access_token(&TokenHash::of(&access))
        .await
        .unwrap()
        .expect("live access token");
    assert_eq!(found.token.kind, TokenKind::Access);
    assert_eq!(found.token.scopes, vec!["openid".to_owned()]);
    assert_eq!(found.grant.subject, "user_01TEST");
    assert_eq!(found.grant.upstream, seed.grant.upstream);
    assert_eq!(found.grant.profile, seed.grant.profile);
    // A refresh token is not an access token.
    assert!(
        store
            .lookup_access_token(&TokenHash::of(&refresh))
            .await
            .unwrap()
            .is_none()
    );
    let refresh_row = store
        .find_token(&TokenHash::of(&refresh))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refresh_row.kind, TokenKind::Refresh);
    assert_eq!(refresh_row.parent_hash, None);
    // Unknown grant: nothing issued, nothing stored.
    let (_, _, more) = new_tokens();
    assert!(
        store
            .issue_tokens("no-such-grant", &[], &more)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.find_token(&more.access_hash).await.unwrap().is_none());
}

async fn refresh_rotation(db: &TestDb) {
    let store = db.store().await;
    let (seed, _, refresh) = seed_with_tokens(&store).await;
    let old = TokenHash::of(&refresh);

    // Another client cannot use it, and the failed attempt does not spend it.
    let next = successor();
    assert_eq!(
        store
            .rotate_refresh_token(&old, "other-client", None, &next, GRACE)
            .await
            .unwrap(),
        Rotation::NotFound
    );
    // Asking for more scopes fails without spending it.
    assert_eq!(
        store
            .rotate_refresh_token(
                &old,
                &seed.client_id,
                Some(&["admin".to_owned()]),
                &next,
                GRACE
            )
            .await
            .unwrap(),
        Rotation::InvalidScope
    );
    let Rotation::Rotated(issued) = store
        .rotate_refresh_token(
            &old,
            &seed.client_id,
            Some(&["openid".to_owned()]),
            &next,
            GRACE,
        )
        .await
        .unwrap()
    else {
        panic!("rotation succeeds");
    };
    assert_eq!(issued.scopes, vec!["openid".to_owned()]);
    let digests = next.digests();
    let child = store
        .find_token(digests.refresh_hash.as_ref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(child.parent_hash.as_ref(), Some(&old));
    assert!(
        store
            .lookup_access_token(&digests.access_hash)
            .await
            .unwrap()
            .is_some()
    );

    // Reusing the old token within the grace gives the same pair back; nothing new is stored.
    let again = successor();
    assert_eq!(
        store
            .rotate_refresh_token(&old, &seed.client_id, None, &again, GRACE)
            .await
            .unwrap(),
        Rotation::Reissued {
            issued: issued.clone(),
            access_token: next.access_token.clone(),
            refresh_token: next.refresh_token.clone(),
        }
    );
    assert!(
        store
            .find_token(&again.digests().access_hash)
            .await
            .unwrap()
            .is_none()
    );
    // The new token rotates in turn; from then on the old one is a replay.
    let new_refresh = digests.refresh_hash.clone().unwrap();
    assert!(matches!(
        store
            .rotate_refresh_token(&new_refresh, &seed.client_id, None, &again, GRACE)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
    assert_eq!(
        store
            .rotate_refresh_token(&old, &seed.client_id, None, &successor(), GRACE)
            .await
            .unwrap(),
        Rotation::Replayed {
            grant_id: seed.grant.grant_id.clone()
        }
    );
    // ... but not for another client, which learns nothing and revokes nothing.
    assert_eq!(
        store
            .rotate_refresh_token(&old, "other-client", None, &successor(), GRACE)
            .await
            .unwrap(),
        Rotation::NotFound
    );
    // The old token's sealed copy of its successor is gone: only digests stay.
    let sealed: Option<String> = sqlx::query_scalar(
        "SELECT successor_refresh_token FROM mcp_auth_tokens WHERE token_hash = $1",
    )
    .bind(old.as_str())
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(sealed, None);
}

/// The grace by the store's clock: within it a retry gets the sealed pair, after it the retry is
/// a replay and the sweeper clears the sealed copy; a zero grace keeps nothing sealed.
async fn refresh_grace_follows_the_store_clock(db: &TestDb) {
    let clock = Clock::adjustable();
    let store = db
        .store_with_options(StoreOptions::default().clock(clock.clone()))
        .await;
    let (seed, _, refresh) = seed_with_tokens(&store).await;
    let old = TokenHash::of(&refresh);
    let next = successor();
    let Rotation::Rotated(issued) = store
        .rotate_refresh_token(&old, &seed.client_id, None, &next, GRACE)
        .await
        .unwrap()
    else {
        panic!("rotation succeeds");
    };
    // The pair is sealed at rest: neither token appears in clear in the row.
    let (access_sealed, refresh_sealed): (String, String) = sqlx::query_as(
        "SELECT successor_access_token, successor_refresh_token FROM mcp_auth_tokens \
         WHERE token_hash = $1",
    )
    .bind(old.as_str())
    .fetch_one(store.pool())
    .await
    .unwrap();
    for sealed in [&access_sealed, &refresh_sealed] {
        assert!(!sealed.contains(next.access_token.expose()));
        assert!(!sealed.contains(next.refresh_token.expose()));
    }
    clock.advance(GRACE / 2);
    assert_eq!(
        store
            .rotate_refresh_token(&old, &seed.client_id, None, &successor(), GRACE)
            .await
            .unwrap(),
        Rotation::Reissued {
            issued,
            access_token: next.access_token.clone(),
            refresh_token: next.refresh_token.clone(),
        }
    );
    clock.advance(GRACE / 2 + Duration::from_secs(1));
    let report = store.purge_expired(100).await.unwrap();
    assert_eq!(report.successors, 1);
    let sealed: Option<String> = sqlx::query_scalar(
        "SELECT successor_access_token FROM mcp_auth_tokens WHERE token_hash = $1",
    )
    .bind(old.as_str())
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(sealed, None, "the sweeper cleared the sealed pair");
    assert_eq!(
        store
            .rotate_refresh_token(&old, &seed.client_id, None, &successor(), GRACE)
            .await
            .unwrap(),
        Rotation::Replayed {
            grant_id: seed.grant.grant_id.clone()
        }
    );

    // Zero grace: strict one-time use, nothing sealed.
    let (seed, _, refresh) = seed_with_tokens(&store).await;
    let old = TokenHash::of(&refresh);
    assert!(matches!(
        store
            .rotate_refresh_token(&old, &seed.client_id, None, &successor(), Duration::ZERO)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
    let sealed: Option<String> = sqlx::query_scalar(
        "SELECT successor_access_token FROM mcp_auth_tokens WHERE token_hash = $1",
    )
    .bind(old.as_str())
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(sealed, None);
    assert_eq!(
        store
            .rotate_refresh_token(&old, &seed.client_id, None, &successor(), GRACE)
            .await
            .unwrap(),
        Rotation::Replayed {
            grant_id: seed.grant.grant_id.clone()
        }
    );
}

async fn revoking_a_grant_revokes_its_tokens(db: &TestDb) {
    let store = db.store().await;
    let (seed, access, refresh) = seed_with_tokens(&store).await;
    assert!(
        store
            .revoke_grant(&seed.grant.grant_id, RevokeCause::CLIENT_REQUEST)
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_grant(&seed.grant.grant_id, RevokeCause::CLIENT_REQUEST)
            .await
            .unwrap()
    );

    assert!(
        store
            .lookup_access_token(&TokenHash::of(&access))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_grant(&seed.grant.grant_id)
            .await
            .unwrap()
            .is_none()
    );
    let next = successor();
    assert_eq!(
        store
            .rotate_refresh_token(
                &TokenHash::of(&refresh),
                &seed.client_id,
                None,
                &next,
                GRACE
            )
            .await
            .unwrap(),
        Rotation::NotFound
    );
    assert!(
        store
            .issue_tokens(&seed.grant.grant_id, &[], &next.digests())
            .await
            .unwrap()
            .is_none()
    );
    // The unused code of a revoked grant no longer redeems.
    assert_eq!(
        store
            .consume_code(
                &TokenHash::of(&seed.code),
                &redemption(&seed.client_id),
                &new_tokens().2
            )
            .await
            .unwrap(),
        CodeConsumed::NotFound
    );
    for raw in [&access, &refresh] {
        let row = store
            .find_token(&TokenHash::of(raw))
            .await
            .unwrap()
            .unwrap();
        assert!(
            row.revoked_at.is_some(),
            "every token of the grant is marked"
        );
    }
}

async fn revoking_one_token(db: &TestDb) {
    let store = db.store().await;
    let (seed, access, refresh) = seed_with_tokens(&store).await;
    assert!(store.revoke_token(&TokenHash::of(&access)).await.unwrap());
    assert!(!store.revoke_token(&TokenHash::of(&access)).await.unwrap());
    assert!(
        store
            .lookup_access_token(&TokenHash::of(&access))
            .await
            .unwrap()
            .is_none()
    );
    // The rest of the grant is untouched.
    assert!(
        store
            .get_grant(&seed.grant.grant_id)
            .await
            .unwrap()
            .is_some()
    );
    let next = successor();
    assert!(matches!(
        store
            .rotate_refresh_token(
                &TokenHash::of(&refresh),
                &seed.client_id,
                None,
                &next,
                GRACE
            )
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
}

async fn upstream_tokens_compare_and_swap(db: &TestDb) {
    let replica_a = db.store().await;
    let replica_b = db.store().await;
    let seed = seed(&replica_a).await;
    let read = replica_b
        .get_grant(&seed.grant.grant_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.upstream_version, 0);
    // One expiry for every call: comparing values built a second apart must not fail.
    let expires_at = Some(now() + 600);
    let refreshed = |tag: &str| UpstreamTokens {
        access_token: Secret::new(format!("at-{tag}")),
        refresh_token: Some(Secret::new(format!("rt-{tag}"))),
        id_token: None,
        expires_at,
    };
    assert_eq!(
        replica_a
            .update_upstream_tokens(&seed.grant.grant_id, 0, &refreshed("a"))
            .await
            .unwrap(),
        UpstreamUpdate::Updated { version: 1 }
    );
    // Replica B refreshed from the same version: refused, it must re-read.
    assert_eq!(
        replica_b
            .update_upstream_tokens(&seed.grant.grant_id, 0, &refreshed("b"))
            .await
            .unwrap(),
        UpstreamUpdate::Stale
    );
    let now_read = replica_b
        .get_grant(&seed.grant.grant_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now_read.upstream_version, 1);
    assert_eq!(now_read.upstream, refreshed("a"));
    assert_eq!(
        replica_a
            .update_upstream_tokens("no-such-grant", 0, &refreshed("c"))
            .await
            .unwrap(),
        UpstreamUpdate::Stale
    );
}

async fn token_expiry_is_capped_at_the_grant(db: &TestDb) {
    let store = db.store().await;
    store.register_client(&client("c")).await.unwrap();
    let g = grant("c", 120);
    let (_, c) = code(&g, 60);
    store.create_grant(&g, &c).await.unwrap();
    let (_, _, tokens) = new_tokens();
    let issued = store
        .issue_tokens(&g.grant_id, &g.scopes, &tokens)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(issued.access_expires_at, g.expires_at);
    assert_eq!(issued.refresh_expires_at, Some(g.expires_at));
    // Creating the grant kept its client alive at least as long.
    let client = store.get_client("c").await.unwrap().unwrap();
    assert!(client.expires_at >= g.expires_at);
}

async fn expired_rows_are_invisible(db: &TestDb) {
    let store = db.store().await;
    // Expired client.
    let mut old_client = client("old");
    old_client.expires_at = now() - 1;
    store.register_client(&old_client).await.unwrap();
    assert_eq!(store.get_client("old").await.unwrap(), None);
    assert!(!store.touch_client("old", now() + 100).await.unwrap());

    store.register_client(&client("c")).await.unwrap();
    // Expired pending authorization.
    let p = pending("c", -1);
    store.create_pending(&p).await.unwrap();
    assert_eq!(store.get_pending(&p.txn_id).await.unwrap(), None);
    assert_eq!(
        store
            .approve_pending(
                &p.txn_id,
                &TokenHash::of("consent csrf"),
                &TokenHash::of("browser cookie")
            )
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.consume_pending(&p.txn_id).await.unwrap(), None);
    let mut approved = pending("c", -1);
    approved.consented_at = Some(now() - 10);
    store.create_pending(&approved).await.unwrap();
    assert_eq!(
        store
            .claim_approved_pending(&approved.txn_id, &TokenHash::of("browser cookie"))
            .await
            .unwrap(),
        None
    );

    // Expired consent.
    let approval = ConsentApproval {
        subject: "s".into(),
        client_id: "c".into(),
        scopes: vec![],
        resource: None,
        created_at: now() - 10,
        expires_at: now() - 1,
        redirect_uris_digest: None,
    };
    store.remember_consent(&approval).await.unwrap();
    assert_eq!(store.find_consent("s", "c").await.unwrap(), None);

    // Live grant, expired code.
    let g = grant("c", 3600);
    let (raw_code, c) = code(&g, -1);
    store.create_grant(&g, &c).await.unwrap();
    assert_eq!(
        store
            .consume_code(&TokenHash::of(&raw_code), &redemption("c"), &new_tokens().2)
            .await
            .unwrap(),
        CodeConsumed::NotFound
    );
    // Live grant, expired tokens.
    let (access, refresh, mut tokens) = new_tokens();
    tokens.access_expires_at = now() - 1;
    tokens.refresh_expires_at = now() - 1;
    store
        .issue_tokens(&g.grant_id, &g.scopes, &tokens)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .lookup_access_token(&TokenHash::of(&access))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_token(&TokenHash::of(&access))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .rotate_refresh_token(&TokenHash::of(&refresh), "c", None, &successor(), GRACE)
            .await
            .unwrap(),
        Rotation::NotFound
    );

    // Expired grant: its live-looking tokens are dead too, and nothing new is issued.
    let dead = grant("c", -1);
    let (_, dead_code) = code(&dead, 300);
    store.create_grant(&dead, &dead_code).await.unwrap();
    assert!(store.get_grant(&dead.grant_id).await.unwrap().is_none());
    assert!(
        store
            .issue_tokens(&dead.grant_id, &[], &new_tokens().2)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .consume_code(&dead_code.code_hash, &redemption("c"), &new_tokens().2)
            .await
            .unwrap(),
        CodeConsumed::NotFound
    );
}

/// One live and one expired row in every table; returns the live grant id.
async fn live_and_expired_rows(store: &Store) -> String {
    store.register_client(&client("live")).await.unwrap();
    let mut dead_client = client("dead");
    dead_client.expires_at = now() - 1;
    store.register_client(&dead_client).await.unwrap();
    for ttl in [600, -1] {
        store.create_pending(&pending("live", ttl)).await.unwrap();
        store
            .remember_consent(&ConsentApproval {
                subject: format!("s{ttl}"),
                client_id: "live".into(),
                scopes: vec![],
                resource: None,
                created_at: now(),
                expires_at: now() + ttl,
                redirect_uris_digest: None,
            })
            .await
            .unwrap();
    }
    // Live grant with one live and one expired code and token pair.
    let g = grant("live", 3600);
    let (_, c) = code(&g, 300);
    store.create_grant(&g, &c).await.unwrap();
    let (_, stale_code) = code(&g, -1);
    // A second code for the same grant: only through create_grant, so use a second grant row
    // whose code is expired.
    let g2 = grant("live", 3600);
    let stale_code = crate::store::AuthorizationCode {
        grant_id: g2.grant_id.clone(),
        ..stale_code
    };
    store.create_grant(&g2, &stale_code).await.unwrap();
    let (_, _, live_tokens) = new_tokens();
    store
        .issue_tokens(&g.grant_id, &g.scopes, &live_tokens)
        .await
        .unwrap()
        .unwrap();
    let (_, _, mut stale_tokens) = new_tokens();
    stale_tokens.access_expires_at = now() - 1;
    stale_tokens.refresh_expires_at = now() - 1;
    store
        .issue_tokens(&g.grant_id, &g.scopes, &stale_tokens)
        .await
        .unwrap()
        .unwrap();
    // Expired grant.
    let dead = grant("live", -1);
    let (_, dead_code) = code(&dead, -1);
    store.create_grant(&dead, &dead_code).await.unwrap();
    g.grant_id
}

async fn assert_only_live_rows_left(store: &Store) {
    assert_eq!(count(store, "mcp_auth_clients").await, 1);
    assert_eq!(count(store, "mcp_auth_pending").await, 1);
    assert_eq!(count(store, "mcp_auth_consents").await, 1);
    assert_eq!(count(store, "mcp_auth_grants").await, 2);
    assert_eq!(count(store, "mcp_auth_codes").await, 1);
    assert_eq!(count(store, "mcp_auth_tokens").await, 2);
}

async fn purge_deletes_expired_rows(db: &TestDb) {
    let store = db.store().await;
    let live = live_and_expired_rows(&store).await;
    // Batches of 1 exercise the batching loop.
    let report = store.purge_expired(1).await.unwrap();
    assert_eq!(report.clients, 1);
    assert_eq!(report.pending, 1);
    assert_eq!(report.consents, 1);
    assert_eq!(report.codes, 2);
    assert_eq!(report.tokens, 2);
    assert_eq!(report.grants, 1);
    assert_only_live_rows_left(&store).await;
    assert!(store.get_grant(&live).await.unwrap().is_some());
    assert_eq!(store.purge_expired(100).await.unwrap().total(), 0);
}

async fn sweeper_deletes_expired_rows(db: &TestDb) {
    let store = db.store().await;
    live_and_expired_rows(&store).await;
    // The first pass runs at once (the interval only spaces the later ones), so the loop
    // below waits for that pass's queries, never for a timer.
    let sweeper = store.spawn_sweeper(Duration::from_secs(3600), 2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while count(&store, "mcp_auth_clients").await > 1 || count(&store, "mcp_auth_tokens").await > 2
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sweeper did not run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_only_live_rows_left(&store).await;
    assert!(sweeper.is_running());
    sweeper.stop();
}

/// Runs one statement against the store's tables (fixed SQL from the test).
async fn exec(store: &Store, sql: &'static str, args: &[&str]) {
    let mut query = sqlx::query(sql);
    for arg in args {
        query = query.bind(arg.to_string());
    }
    query.execute(store.pool()).await.unwrap();
}

async fn sealed_values_moved_between_rows_fail_closed(db: &TestDb) {
    let store = db.store().await;
    let a = seed(&store).await;
    let b = seed(&store).await;
    // An attacker with write access copies grant B's sealed upstream token into grant A.
    let stolen: String =
        sqlx::query_scalar("SELECT upstream_access_token FROM mcp_auth_grants WHERE grant_id = $1")
            .bind(&b.grant.grant_id)
            .fetch_one(store.pool())
            .await
            .unwrap();
    exec(
        &store,
        "UPDATE mcp_auth_grants SET upstream_access_token = $1 WHERE grant_id = $2",
        &[&stolen, &a.grant.grant_id],
    )
    .await;
    let err = store.get_grant(&a.grant.grant_id).await.unwrap_err();
    assert!(matches!(err, StoreError::Sealed { .. }), "{err:?}");
    assert!(!err.is_transient());
    // Moving a ciphertext between columns of the same row fails as well.
    let own_refresh: String = sqlx::query_scalar(
        "SELECT upstream_refresh_token FROM mcp_auth_grants WHERE grant_id = $1",
    )
    .bind(&b.grant.grant_id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    exec(
        &store,
        "UPDATE mcp_auth_grants SET upstream_access_token = $1 WHERE grant_id = $2",
        &[&own_refresh, &b.grant.grant_id],
    )
    .await;
    assert!(matches!(
        store.get_grant(&b.grant.grant_id).await,
        Err(StoreError::Sealed { .. })
    ));
}

async fn tampered_or_unknown_key_fails_closed(db: &TestDb) {
    let store = db.store().await;
    store.register_client(&client("c")).await.unwrap();
    let p = pending("c", 600);
    store.create_pending(&p).await.unwrap();
    let sealed: String =
        sqlx::query_scalar("SELECT upstream_verifier FROM mcp_auth_pending WHERE txn_id = $1")
            .bind(&p.txn_id)
            .fetch_one(store.pool())
            .await
            .unwrap();
    // Flip one base64 character in the middle of the ciphertext.
    let mut chars: Vec<char> = sealed.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    exec(
        &store,
        "UPDATE mcp_auth_pending SET upstream_verifier = $1 WHERE txn_id = $2",
        &[&tampered, &p.txn_id],
    )
    .await;
    let err = store.get_pending(&p.txn_id).await.unwrap_err();
    assert!(matches!(err, StoreError::Sealed { .. }), "{err:?}");
    assert!(!err.to_string().contains(&tampered));

    // Unknown key id.
    let q = pending("c", 600);
    store.create_pending(&q).await.unwrap();
    exec(
        &store,
        "UPDATE mcp_auth_pending SET key_id = $1 WHERE txn_id = $2",
        &["deadbeef", &q.txn_id],
    )
    .await;
    assert!(matches!(
        store.get_pending(&q.txn_id).await,
        Err(StoreError::Sealed { .. })
    ));
    // A store whose keyring lacks the sealing key cannot open anything.
    let r = pending("c", 600);
    store.create_pending(&r).await.unwrap();
    let stranger = db
        .store_with_keys(Keyring::from_config(&key_b64(99)).unwrap())
        .await;
    assert!(matches!(
        stranger.get_pending(&r.txn_id).await,
        Err(StoreError::Sealed { .. })
    ));
}

/// A refresh whose grant's upstream session cannot be opened (its key was removed) rotates
/// nothing: the caller ends the grant and the client logs in again.
async fn rotation_of_an_unreadable_grant_changes_nothing(db: &TestDb) {
    let before = db
        .store_with_keys(Keyring::from_config(&key_b64(1)).unwrap())
        .await;
    let (seed, _, refresh) = seed_with_tokens(&before).await;
    let old = TokenHash::of(&refresh);
    let without_key = db
        .store_with_keys(Keyring::from_config(&key_b64(2)).unwrap())
        .await;
    let next = successor();
    assert_eq!(
        without_key
            .rotate_refresh_token(&old, &seed.client_id, None, &next, GRACE)
            .await
            .unwrap(),
        Rotation::Unusable {
            grant_id: seed.grant.grant_id.clone()
        }
    );
    // Rolled back: the old token is not spent, no successor is stored.
    let row = before.find_token(&old).await.unwrap().unwrap();
    assert_eq!(row.rotated_at, None);
    assert!(
        before
            .find_token(&next.digests().access_hash)
            .await
            .unwrap()
            .is_none()
    );
    // With the key the same token still rotates.
    assert!(matches!(
        before
            .rotate_refresh_token(&old, &seed.client_id, None, &successor(), GRACE)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
}

async fn key_rotation_keeps_everyone_logged_in(db: &TestDb) {
    let old_key = key_b64(1);
    let new_key = key_b64(2);
    let before = db
        .store_with_keys(Keyring::from_config(&old_key).unwrap())
        .await;
    let (seed, access, _) = seed_with_tokens(&before).await;

    // Deploy with the new key first and the old one kept.
    let during = db
        .store_with_keys(Keyring::from_config(&format!("{new_key},{old_key}")).unwrap())
        .await;
    let found = during
        .lookup_access_token(&TokenHash::of(&access))
        .await
        .unwrap()
        .expect("old rows still open");
    assert_eq!(found.grant.upstream, seed.grant.upstream);
    // New writes use the new key, including re-sealed upstream tokens.
    let fresh = super::support::seed(&during).await;
    assert_eq!(
        during
            .update_upstream_tokens(&seed.grant.grant_id, 0, &seed.grant.upstream)
            .await
            .unwrap(),
        UpstreamUpdate::Updated { version: 1 }
    );
    let key_ids: Vec<String> = sqlx::query_scalar("SELECT DISTINCT key_id FROM mcp_auth_grants")
        .fetch_all(during.pool())
        .await
        .unwrap();
    assert_eq!(key_ids, vec![during.keyring().sealing_key_id().to_owned()]);

    // Once every row is re-sealed or expired, the old key can go.
    let after = db
        .store_with_keys(Keyring::from_config(&new_key).unwrap())
        .await;
    assert!(
        after
            .get_grant(&fresh.grant.grant_id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        after
            .get_grant(&seed.grant.grant_id)
            .await
            .unwrap()
            .is_some()
    );
}

async fn constraint_violation_is_permanent(db: &TestDb) {
    let store = db.store().await;
    let mut record = client("dup");
    record.client_secret_hash = Some(TokenHash::of("s3cret-value"));
    store.register_client(&record).await.unwrap();
    let err = store.register_client(&record).await.unwrap_err();
    assert!(matches!(err, StoreError::Constraint { .. }), "{err:?}");
    assert!(!err.is_transient());
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(record.client_secret_hash.as_ref().unwrap().as_str()));
    assert!(
        !shown.contains("Test client"),
        "no parameter values: {shown}"
    );

    // A pending authorization for an unknown client violates the foreign key (enforced on
    // SQLite too).
    let err = store
        .create_pending(&pending("ghost", 60))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Constraint { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("verifier-"));
}

async fn pool_timeout_is_transient(db: &TestDb) {
    let store = db
        .store_with_options(
            StoreOptions::default()
                .max_connections(1)
                .acquire_timeout(Duration::from_millis(200))
                // Nothing else reaches the database meanwhile, so the store fails fast after
                // the timeout; with no probe interval the next operation starts a probe at once.
                .probe_interval(Duration::ZERO),
        )
        .await;
    let held = store.hold_connection().await;
    let err = store.get_client("x").await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("get_client"));
    drop(held);
    // A background probe gets the freed connection and closes the breaker; until then the
    // operations fail fast (transient), never with anything else.
    let answer = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match store.get_client("x").await {
                Ok(answer) => break answer,
                Err(err) => assert!(err.is_transient(), "{err:?}"),
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the breaker closed");
    assert_eq!(answer, None);
}

async fn deleting_a_client_cascades(db: &TestDb) {
    let store = db.store().await;
    let (seed, access, _) = seed_with_tokens(&store).await;
    store
        .create_pending(&pending(&seed.client_id, 60))
        .await
        .unwrap();
    assert!(store.delete_client(&seed.client_id).await.unwrap());
    assert!(
        store
            .lookup_access_token(&TokenHash::of(&access))
            .await
            .unwrap()
            .is_none()
    );
    for table in [
        "mcp_auth_grants",
        "mcp_auth_codes",
        "mcp_auth_tokens",
        "mcp_auth_pending",
    ] {
        assert_eq!(count(&store, table).await, 0, "{table}");
    }
}

// Engine-independent or engine-specific tests.

#[tokio::test]
async fn unreachable_database_is_transient() {
    // Port 1 on loopback: nothing listens, the connection is refused.
    let err = Store::connect_with(
        "postgres://user:hunter2@127.0.0.1:1/db",
        Keyring::ephemeral(),
        StoreOptions::default().acquire_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("hunter2"), "no URL or password: {shown}");
}

#[tokio::test]
async fn unsupported_url_is_rejected() {
    let err = Store::connect("mysql://127.0.0.1/db", Keyring::ephemeral())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }));
    assert!(!err.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_busy_is_transient() {
    let db = TestDb::sqlite();
    let options = StoreOptions::default().busy_timeout(Duration::from_millis(100));
    let holder = db.store_with_options(options.clone()).await;
    let waiter = db.store_with_options(options).await;
    // Hold the write lock in an open transaction on one "process"...
    let mut tx = holder.pool().begin().await.unwrap();
    sqlx::query("DELETE FROM mcp_auth_clients WHERE client_id = 'nobody'")
        .execute(&mut *tx)
        .await
        .unwrap();
    // ...so the other one's write gives up after its busy timeout.
    let err = waiter.register_client(&client("c")).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    tx.rollback().await.unwrap();
    waiter.register_client(&client("c")).await.unwrap();
}

/// A write that finds another process's write lock waits for it off the runtime (the busy
/// timeout) and succeeds once the lock is released, while the runtime keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_waits_for_another_process_lock() {
    let db = TestDb::sqlite();
    let holder = db.store().await;
    let waiter = db.store().await;
    let mut tx = holder.pool().begin().await.unwrap();
    sqlx::query("DELETE FROM mcp_auth_clients WHERE client_id = 'nobody'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let write = tokio::spawn(async move { waiter.register_client(&client("late")).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!write.is_finished(), "the write waits for the lock");
    tx.commit().await.unwrap();
    write.await.unwrap().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(holder.get_client("late").await.unwrap().is_some());
}

/// A write still waiting for another process's lock at the operation's deadline fails with a
/// transient error at the deadline, not at the busy timeout, and never applies afterwards; the
/// next operation gets a connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_past_the_deadline_fails_at_the_deadline() {
    let db = TestDb::sqlite();
    let holder = db.store().await;
    let waiter = db
        .store_with_options(
            StoreOptions::default()
                .max_connections(1)
                .statement_timeout(Duration::from_millis(300))
                .busy_timeout(Duration::from_secs(5)),
        )
        .await;
    holder.register_client(&client("slow")).await.unwrap();
    let mut tx = holder.pool().begin().await.unwrap();
    sqlx::query("DELETE FROM mcp_auth_clients WHERE client_id = 'nobody'")
        .execute(&mut *tx)
        .await
        .unwrap();
    // A single-statement write: it commits itself once it has the lock.
    let request = pending("slow", 600);
    let started = std::time::Instant::now();
    let err = waiter.create_pending(&request).await.unwrap_err();
    let waited = started.elapsed();
    assert!(err.is_transient(), "{err:?}");
    assert!(
        waited < Duration::from_secs(3),
        "failed at the deadline, not the busy timeout: {waited:?}"
    );
    tx.rollback().await.unwrap();
    // The abandoned insert gave up waiting at the deadline: it never applies.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(holder.get_pending(&request.txn_id).await.unwrap(), None);
    waiter.create_pending(&request).await.unwrap();
    assert!(waiter.get_pending(&request.txn_id).await.unwrap().is_some());
}

#[tokio::test]
async fn in_memory_sqlite_is_rejected() {
    for url in ["sqlite::memory:", "sqlite://a.db?mode=memory"] {
        let err = Store::connect(url, Keyring::ephemeral()).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{url}: {err:?}");
        assert!(err.to_string().contains("in-memory"), "{err}");
    }
}

#[test]
fn store_is_clone_send_sync_and_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<Store>();
    assert_traits::<StoreError>();

    // Build (never run) a future of each kind and check it is Send.
    fn futures(store: &Store) {
        let hash = TokenHash::of("x");
        assert_send(&store.lookup_access_token(&hash));
        assert_send(&store.consume_code(&hash, &redemption("c"), &new_tokens().2));
        assert_send(&store.rotate_refresh_token(&hash, "c", None, &successor(), GRACE));
        assert_send(&store.revoke_grant("g", RevokeCause::CLIENT_REQUEST));
        assert_send(&store.migrate());
        assert_send(&store.purge_expired(10));
        assert_send(&Store::connect("sqlite://x", Keyring::ephemeral()));
    }
    let _ = futures;
}

/// PostgreSQL: every pooled connection carries the store's deadline (plus a second) as the
/// server's `statement_timeout`, so a statement the store gave up on cannot finish much later;
/// the cancellation is a transient error. Migrations run without it: a store whose deadline is far
/// shorter than the migrations still migrates.
async fn postgres_cancels_statements_past_the_deadline(db: &TestDb) {
    // 1 ms: shorter than any migration statement, which must still all apply.
    let store = db
        .store_with_options(StoreOptions::default().statement_timeout(Duration::from_millis(1)))
        .await;
    if store.engine() != Engine::Postgres {
        return;
    }
    store
        .migrate()
        .await
        .expect("migrations run without the limit");
    let store = db
        .store_with_options(StoreOptions::default().statement_timeout(Duration::from_millis(300)))
        .await;
    let setting: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(setting, "1300ms");
    // Straight on a pooled connection (no client-side deadline): the server cancels it.
    let started = std::time::Instant::now();
    let err = sqlx::query("SELECT pg_sleep(5)")
        .execute(store.pool())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cancelled early"
    );
    let err = StoreError::from_sqlx("test", err);
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("57014"), "{err}");
}
