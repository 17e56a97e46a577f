//! Relaxed commits (`Durability::Relaxed`, SQLite): a login's grant with its code commits with
//! `synchronous = NORMAL`, and no connection goes back to the pool with it.

use crate::store::{Durability, Engine, StoreOptions, TokenHash};

use super::support::{TestDb, client, pending, seed, store_tests};

store_tests!(
    relaxed_writes_leave_every_connection_full,
    a_relaxed_transaction_that_does_not_commit_leaves_no_relaxed_connection,
    a_relaxed_connection_is_normal_until_it_goes_back,
);

/// `PRAGMA synchronous` of the store's (only) connection: 2 is FULL, 1 NORMAL.
async fn synchronous(store: &crate::store::Store) -> i64 {
    synchronous_of(&mut store.conn("test").await.unwrap()).await
}

async fn synchronous_of(conn: &mut crate::store::OpConn) -> i64 {
    use crate::store::ScalarStatement as _;
    sqlx::query_scalar("PRAGMA synchronous")
        .fetch_optional_in(conn)
        .await
        .unwrap()
        .expect("a row")
}

/// The steps of a login store what they store, and the one pooled connection they all ran on
/// is FULL after each, the relaxed grant-with-code commit included.
async fn relaxed_writes_leave_every_connection_full(db: &TestDb) {
    let store = db
        .store_with_options(StoreOptions::default().max_connections(1))
        .await;
    let sqlite = store.engine() == Engine::Sqlite;
    let check = async |step: &str| {
        if sqlite {
            assert_eq!(synchronous(&store).await, 2, "after {step}");
        }
    };
    check("connecting").await;
    store.register_client(&client("relaxed")).await.unwrap();
    let request = pending("relaxed", 600);
    store.create_pending(&request).await.unwrap();
    check("create_pending").await;
    let binding = TokenHash::of("browser cookie");
    let approved = store
        .approve_pending(&request.txn_id, &TokenHash::of("consent csrf"), &binding)
        .await
        .unwrap();
    assert!(approved.is_some(), "the approval was stored");
    check("approve_pending").await;
    // A refusal commits (nothing) too, and keeps its connection.
    let refused = store
        .approve_pending(&request.txn_id, &TokenHash::of("consent csrf"), &binding)
        .await
        .unwrap();
    assert!(refused.is_none(), "the CSRF token is single-use");
    check("a refused approval").await;
    let claimed = store
        .claim_approved_pending(&request.txn_id, &binding)
        .await
        .unwrap();
    assert_eq!(claimed.map(|p| p.txn_id), Some(request.txn_id.clone()));
    assert_eq!(store.get_pending(&request.txn_id).await.unwrap(), None);
    check("claim_approved_pending").await;
    let seeded = seed(&store).await;
    assert!(
        store
            .get_grant(&seeded.grant.grant_id)
            .await
            .unwrap()
            .is_some()
    );
    check("create_grant").await;
}

/// A relaxed transaction dropped before its commit rolls back, and its connection is set back
/// to FULL before the next operation gets it.
async fn a_relaxed_transaction_that_does_not_commit_leaves_no_relaxed_connection(db: &TestDb) {
    let store = db
        .store_with_options(StoreOptions::default().max_connections(1))
        .await;
    let request = pending("abandoned", 600);
    store.register_client(&client("abandoned")).await.unwrap();
    {
        let mut tx = store.begin_with("test", Durability::Relaxed).await.unwrap();
        use crate::store::Statement as _;
        sqlx::query("DELETE FROM mcp_auth_clients WHERE client_id = $1")
            .bind("abandoned")
            .execute_in(&mut tx)
            .await
            .unwrap();
        // Dropped here, uncommitted.
    }
    assert!(
        store.get_client("abandoned").await.unwrap().is_some(),
        "rolled back"
    );
    if store.engine() == Engine::Sqlite {
        assert_eq!(synchronous(&store).await, 2, "set back to FULL");
    }
    // The store goes on working.
    store.create_pending(&request).await.unwrap();
    assert!(store.get_pending(&request.txn_id).await.unwrap().is_some());
}

/// A connection taken with relaxed durability writes with `synchronous = NORMAL` (SQLite), and
/// the next operation on the same pooled connection finds it FULL again.
async fn a_relaxed_connection_is_normal_until_it_goes_back(db: &TestDb) {
    use crate::store::Statement as _;
    let store = db
        .store_with_options(StoreOptions::default().max_connections(1))
        .await;
    store.register_client(&client("relaxed-one")).await.unwrap();
    {
        let mut conn = store.conn_with("test", Durability::Relaxed).await.unwrap();
        if store.engine() == Engine::Sqlite {
            assert_eq!(synchronous_of(&mut conn).await, 1, "NORMAL while relaxed");
        }
        let done = sqlx::query("UPDATE mcp_auth_clients SET client_name = $2 WHERE client_id = $1")
            .bind("relaxed-one")
            .bind("renamed")
            .execute_in(&mut conn)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    }
    let stored = store.get_client("relaxed-one").await.unwrap().unwrap();
    assert_eq!(stored.client_name.as_deref(), Some("renamed"), "committed");
    if store.engine() == Engine::Sqlite {
        assert_eq!(synchronous(&store).await, 2, "FULL again");
    }
}
