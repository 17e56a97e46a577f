//! Replica races: two stores with separate pools stand for two replicas sharing one database
//! (on SQLite, one file). Each race is run many times; every round must have exactly one winner.

use std::sync::Arc;

use crate::store::{CodeConsumed, Rotation, Store, TokenHash};
use tokio::sync::Barrier;

use super::support::{
    GRACE, TestDb, count, new_tokens, pending, redemption, seed, seed_with_tokens, store_tests,
    successor,
};

const ROUNDS: usize = 200;

store_tests!(
    one_winner_per_code,
    one_winner_per_refresh_rotation,
    one_winner_per_pending_authorization,
    replicas_migrate_at_once,
    rotation_and_revocation_queue,
);

/// Runs `a` and `b` on two runtime tasks released at the same moment.
async fn race<A, B, T>(a: A, b: B) -> (T, T)
where
    A: Future<Output = T> + Send + 'static,
    B: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(2));
    let (ba, bb) = (barrier.clone(), barrier);
    let a = tokio::spawn(async move {
        ba.wait().await;
        a.await
    });
    let b = tokio::spawn(async move {
        bb.wait().await;
        b.await
    });
    (a.await.unwrap(), b.await.unwrap())
}

async fn replicas(db: &TestDb) -> (Store, Store) {
    (db.store().await, db.store().await)
}

/// Two replicas redeem one code at once: one redemption, with its pair, and the loser sees a
/// replay and issues nothing.
async fn one_winner_per_code(db: &TestDb) {
    let (a, b) = replicas(db).await;
    for round in 0..ROUNDS {
        let seed = seed(&a).await;
        let hash = TokenHash::of(&seed.code);
        let (ta, tb) = (new_tokens().2, new_tokens().2);
        let (ra, rb) = {
            let (a, b, h1, h2) = (a.clone(), b.clone(), hash.clone(), hash.clone());
            let (c1, c2) = (seed.client_id.clone(), seed.client_id.clone());
            let (t1, t2) = (ta.clone(), tb.clone());
            race(
                async move { a.consume_code(&h1, &redemption(&c1), &t1).await.unwrap() },
                async move { b.consume_code(&h2, &redemption(&c2), &t2).await.unwrap() },
            )
            .await
        };
        let winners = [&ra, &rb]
            .iter()
            .filter(|r| matches!(r, CodeConsumed::Consumed(_)))
            .count();
        assert_eq!(winners, 1, "round {round}: {ra:?} / {rb:?}");
        let replayed = CodeConsumed::Replayed {
            grant_id: seed.grant.grant_id.clone(),
        };
        assert!(
            ra == replayed || rb == replayed,
            "round {round}: loser sees a replay"
        );
        // Exactly the winner's pair was stored.
        let winner = if matches!(ra, CodeConsumed::Consumed(_)) {
            &ta
        } else {
            &tb
        };
        let tokens: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM mcp_auth_tokens WHERE grant_id = $1")
                .bind(&seed.grant.grant_id)
                .fetch_one(a.pool())
                .await
                .unwrap();
        assert_eq!(tokens, 2, "round {round}");
        assert!(a.find_token(&winner.access_hash).await.unwrap().is_some());
    }
}

/// Two replicas rotate one refresh token at once: one rotation, and the other gets the very
/// same pair back (within the grace), so exactly one pair descends from the old token.
async fn one_winner_per_refresh_rotation(db: &TestDb) {
    let (a, b) = replicas(db).await;
    for round in 0..ROUNDS {
        let (seed, _, refresh) = seed_with_tokens(&a).await;
        let old = TokenHash::of(&refresh);
        let (new_a, new_b) = (successor(), successor());
        let (ra, rb) = {
            let (a, b, o1, o2) = (a.clone(), b.clone(), old.clone(), old.clone());
            let (c1, c2) = (seed.client_id.clone(), seed.client_id.clone());
            let (na, nb) = (new_a.clone(), new_b.clone());
            race(
                async move {
                    a.rotate_refresh_token(&o1, &c1, None, &na, GRACE)
                        .await
                        .unwrap()
                },
                async move {
                    b.rotate_refresh_token(&o2, &c2, None, &nb, GRACE)
                        .await
                        .unwrap()
                },
            )
            .await
        };
        let (winner, issued, other) = match (&ra, &rb) {
            (Rotation::Rotated(issued), other) => (&new_a, issued, other),
            (other, Rotation::Rotated(issued)) => (&new_b, issued, other),
            _ => panic!("round {round}: no rotation: {ra:?} / {rb:?}"),
        };
        assert_eq!(
            other,
            &Rotation::Reissued {
                issued: issued.clone(),
                access_token: winner.access_token.clone(),
                refresh_token: winner.refresh_token.clone(),
            },
            "round {round}: the loser hands out the winner's pair"
        );
        // Exactly one new pair descends from the old token: the winner's.
        let children: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM mcp_auth_tokens WHERE parent_hash = $1")
                .bind(old.as_str())
                .fetch_one(a.pool())
                .await
                .unwrap();
        assert_eq!(children, 2, "round {round}");
        assert!(
            a.find_token(winner.digests().refresh_hash.as_ref().unwrap())
                .await
                .unwrap()
                .is_some()
        );
    }
}

async fn one_winner_per_pending_authorization(db: &TestDb) {
    let (a, b) = replicas(db).await;
    let client_id = seed(&a).await.client_id;
    for round in 0..ROUNDS {
        // Approved, as the callback finds it; even rounds race two callbacks (the claim that
        // checks the binding and the approval), odd rounds a callback and a denial.
        let mut p = pending(&client_id, 600);
        p.consented_at = Some(super::support::now());
        a.create_pending(&p).await.unwrap();
        let binding = p.browser_binding.clone().unwrap();
        let (ra, rb) = {
            let (a, b, t1, t2) = (a.clone(), b.clone(), p.txn_id.clone(), p.txn_id.clone());
            let (b1, b2) = (binding.clone(), binding);
            let deny = round % 2 == 1;
            race(
                async move { a.claim_approved_pending(&t1, &b1).await.unwrap() },
                async move {
                    if deny {
                        b.consume_pending(&t2).await.unwrap()
                    } else {
                        b.claim_approved_pending(&t2, &b2).await.unwrap()
                    }
                },
            )
            .await
        };
        assert_eq!(
            usize::from(ra.is_some()) + usize::from(rb.is_some()),
            1,
            "round {round}"
        );
    }
    assert_eq!(count(&a, "mcp_auth_pending").await, 0);
}

async fn replicas_migrate_at_once(db: &TestDb) {
    use crate::store::Keyring;
    // Connect first (SQLite switches the file to WAL at connect), then migrate together.
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(
            Store::connect(db.url(), Keyring::ephemeral())
                .await
                .expect("connect"),
        );
    }
    let barrier = Arc::new(Barrier::new(stores.len()));
    let tasks: Vec<_> = stores
        .iter()
        .cloned()
        .map(|store| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store.migrate().await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("concurrent migrate succeeds");
    }
    // Each migration recorded once.
    let migrations = crate::store::migrator().iter().count();
    assert_eq!(
        count(&stores[0], "_mcp_auth_migrations").await,
        i64::try_from(migrations).unwrap()
    );
}

/// One replica rotates a refresh token while another revokes its grant: both complete (no
/// deadlock, which PostgreSQL would break by failing one of them), and whichever went first,
/// no token of the grant is left live, the new pair included.
async fn rotation_and_revocation_queue(db: &TestDb) {
    use crate::store::{GrantSelection, audit::AuditActor};
    let (a, b) = replicas(db).await;
    for round in 0..ROUNDS {
        let (seed, _, refresh) = seed_with_tokens(&a).await;
        let old = TokenHash::of(&refresh);
        let grant_id = seed.grant.grant_id.clone();
        let (rotated, revoked) = {
            let (a, b, client) = (a.clone(), b.clone(), seed.client_id.clone());
            let which = GrantSelection::Grant(grant_id.clone());
            race(
                async move {
                    let rotation = a
                        .rotate_refresh_token(&old, &client, None, &successor(), GRACE)
                        .await;
                    Ok::<_, String>(format!("{:?}", rotation.map_err(|e| e.to_string())?))
                },
                async move {
                    let revoked = b.revoke_grants(&which, AuditActor::Admin).await;
                    Ok(format!("{:?}", revoked.map_err(|e| e.to_string())?.len()))
                },
            )
            .await
        };
        let rotated = rotated.unwrap_or_else(|e| panic!("round {round}: rotation failed: {e}"));
        let revoked = revoked.unwrap_or_else(|e| panic!("round {round}: revocation failed: {e}"));
        assert_eq!(
            revoked, "1",
            "round {round}: the grant was live until revoked"
        );
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM mcp_auth_tokens WHERE grant_id = $1 AND revoked_at IS NULL",
        )
        .bind(&grant_id)
        .fetch_one(a.pool())
        .await
        .unwrap();
        assert_eq!(live, 0, "round {round}: {rotated}");
    }
}
