//! Failing fast while PostgreSQL is unreachable: the store's circuit breaker, against a real
//! PostgreSQL behind a loopback TCP forwarder that can black-hole new connections (the outage)
//! or stop forwarding on open ones (a partition); and the deadline of a store operation, on
//! statements that wait for a lock the test holds.
//! The timing of probes is unit-tested with a controlled clock in `src/store/breaker.rs`; here
//! the probe interval is either an hour (never elapses during the test) or zero (every
//! operation probes), so nothing waits on time.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use crate::store::{Store, StoreError, StoreOptions};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

use super::support::{TestDb, client, test_keys};

/// A TCP forwarder on loopback to the test PostgreSQL. Up: forwards. Down: drops every
/// forwarded connection and holds new ones open without a byte (a black hole), counting them.
/// Partitioned: like down, but the forwarded connections stay open and swallow what they get.
struct Forwarder {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    partitioned: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    links: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    acceptor: tokio::task::AbortHandle,
}

impl Forwarder {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let partitioned = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let links = Arc::new(Mutex::new(Vec::new()));
        let (d, p, a, l) = (
            down.clone(),
            partitioned.clone(),
            accepted.clone(),
            links.clone(),
        );
        let acceptor = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((inbound, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                if d.load(Ordering::SeqCst) {
                    held.push(inbound);
                    continue;
                }
                let (target, cut) = (target.clone(), p.clone());
                let link = tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(&target).await {
                        let (from_client, to_client) = inbound.into_split();
                        let (from_server, to_server) = outbound.into_split();
                        tokio::join!(
                            pump(from_client, to_server, &cut),
                            pump(from_server, to_client, &cut)
                        );
                    }
                });
                l.lock().unwrap().push(link.abort_handle());
            }
        });
        Self {
            addr,
            down,
            partitioned,
            accepted,
            links,
            acceptor: acceptor.abort_handle(),
        }
    }

    /// The server is gone: connections are refused (the port is closed) and open ones dropped.
    async fn close_port(&self) {
        self.acceptor.abort();
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
        // Let the runtime drop the aborted task (and with it the listener).
        while TcpStream::connect(self.addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    }

    fn go_down(&self) {
        self.down.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// A network partition: open connections stay open but carry nothing any more (no reset,
    /// no reply), and new ones are held without a byte.
    fn partition(&self) {
        self.partitioned.store(true, Ordering::SeqCst);
        self.down.store(true, Ordering::SeqCst);
    }

    fn come_back(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to` until either end closes; once `cut` is set, swallows what it reads
/// and holds both ends open.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: &AtomicBool,
) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if cut.load(Ordering::SeqCst) {
            let _held = (from, to);
            std::future::pending::<()>().await;
            unreachable!();
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// The PostgreSQL test database, reached through a new forwarder.
async fn through_forwarder(db: &TestDb, options: StoreOptions) -> (Store, Forwarder) {
    let mut url = url::Url::parse(db.url()).expect("database URL");
    let target = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().unwrap_or(5432)
    );
    let forwarder = Forwarder::start(target).await;
    url.set_port(Some(forwarder.addr.port())).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    let store = Store::connect_with(url.as_str(), test_keys(), options)
        .await
        .expect("connect through the forwarder");
    store.migrate().await.expect("migrate");
    (store, forwarder)
}

fn fast_acquire() -> StoreOptions {
    StoreOptions::default()
        .max_connections(2)
        .acquire_timeout(Duration::from_millis(300))
}

fn assert_transient(result: Result<impl std::fmt::Debug, StoreError>) {
    let err = result.expect_err("the database is unreachable");
    assert!(err.is_transient(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mcp_auth_test_postgres),
    ignore = "needs PostgreSQL: set TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test)"
)]
async fn an_unreachable_database_is_not_asked_again_until_a_probe_is_due() {
    let db = TestDb::postgres("an_unreachable_database_is_not_asked_again").await;
    let (store, forwarder) = through_forwarder(
        &db,
        fast_acquire().probe_interval(Duration::from_secs(3600)),
    )
    .await;
    assert!(store.get_client("nobody").await.unwrap().is_none());
    assert!(!store.is_failing_fast());

    forwarder.go_down();
    // The first operation finds out the hard way (the acquire timeout) and opens the breaker.
    assert_transient(store.get_client("nobody").await);
    assert!(store.is_failing_fast());
    let attempts = forwarder.accepted();

    // Every further operation fails at once, without a single connection attempt.
    for _ in 0..20 {
        assert_transient(store.get_client("nobody").await);
    }
    assert_transient(
        store
            .revoke_grant("g", crate::store::RevokeCause::CLIENT_REQUEST)
            .await,
    );
    assert_eq!(
        forwarder.accepted(),
        attempts,
        "no connection while failing fast"
    );
    assert!(store.is_failing_fast());
}

/// With the server gone (connections refused), an operation does not wait out the acquire
/// timeout (an hour here): the reachability probe finds the port closed and the breaker opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mcp_auth_test_postgres),
    ignore = "needs PostgreSQL: set TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test)"
)]
async fn a_refused_connection_opens_the_breaker_without_waiting_for_the_acquire_timeout() {
    let db = TestDb::postgres("a_refused_connection_opens_the_breaker").await;
    let options = StoreOptions::default()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(3600))
        .probe_interval(Duration::from_secs(3600));
    let (store, forwarder) = through_forwarder(&db, options).await;
    assert!(store.get_client("nobody").await.unwrap().is_none());

    forwarder.close_port().await;
    // Concurrent operations all come back (none waits for the hour), each a transient error.
    let results = futures_util::future::join_all((0..8).map(|i| {
        let store = store.clone();
        async move { store.get_client(&format!("client-{i}")).await }
    }));
    let results = tokio::time::timeout(Duration::from_secs(60), results)
        .await
        .expect("operations waited for the acquire timeout instead of failing fast");
    for result in results {
        assert_transient(result);
    }
    assert!(store.is_failing_fast());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mcp_auth_test_postgres),
    ignore = "needs PostgreSQL: set TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test)"
)]
async fn a_probe_that_reaches_the_database_closes_the_breaker() {
    let db = TestDb::postgres("a_probe_that_reaches_the_database").await;
    // Interval zero: every operation while open is a probe.
    let (store, forwarder) =
        through_forwarder(&db, fast_acquire().probe_interval(Duration::ZERO)).await;
    forwarder.go_down();
    assert_transient(store.get_client("nobody").await);
    assert!(store.is_failing_fast());
    let attempts = forwarder.accepted();
    // The next operation starts a probe in the background and fails fast itself; the probe
    // tries to connect (through the black hole), fails, and the breaker stays open.
    assert_transient(store.get_client("nobody").await);
    until(|| forwarder.accepted() > attempts).await;
    assert!(store.is_failing_fast());

    forwarder.come_back();
    // Operations fail fast until a background probe reaches the database and closes it.
    let mut refused = 0;
    let answer = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match store.get_client("nobody").await {
                Ok(answer) => break answer,
                Err(err) => {
                    assert!(err.is_transient(), "{err}");
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    })
    .await
    .expect("no probe reached the database");
    assert!(answer.is_none());
    assert!(
        refused >= 1,
        "the first operation after the outage started the probe"
    );
    assert!(!store.is_failing_fast(), "closed by the successful probe");
}

/// A partition (open connections carry nothing any more, new ones get no answer): the next
/// operation fails within its deadline instead of waiting for TCP, and the breaker opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mcp_auth_test_postgres),
    ignore = "needs PostgreSQL: set TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test)"
)]
async fn a_partition_fails_the_next_operation_within_the_deadline_and_opens_the_breaker() {
    let db = TestDb::postgres("a_partition_fails_the_next_operation").await;
    let options = fast_acquire()
        .statement_timeout(Duration::from_millis(300))
        .probe_interval(Duration::from_secs(3600));
    let (store, forwarder) = through_forwarder(&db, options).await;
    assert!(store.get_client("nobody").await.unwrap().is_none());

    forwarder.partition();
    let result = tokio::time::timeout(Duration::from_secs(60), store.get_client("nobody"))
        .await
        .expect("the operation waited for TCP instead of failing within its deadline");
    assert_transient(result);
    assert!(store.is_failing_fast());
    let attempts = forwarder.accepted();
    for _ in 0..5 {
        assert_transient(store.get_client("nobody").await);
    }
    assert_eq!(
        forwarder.accepted(),
        attempts,
        "no connection while failing fast"
    );
}

/// A connection that breaks under a running statement (its acquire went fine) opens the
/// breaker like a failed acquire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mcp_auth_test_postgres),
    ignore = "needs PostgreSQL: set TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test)"
)]
async fn a_connection_lost_during_a_statement_opens_the_breaker() {
    let db = TestDb::postgres("a_connection_lost_during_a_statement").await;
    // No deadline to speak of: the connection failure, not the deadline, must end the statement.
    let options = fast_acquire()
        .statement_timeout(Duration::from_secs(3600))
        .probe_interval(Duration::from_secs(3600));
    let (store, forwarder) = through_forwarder(&db, options).await;
    assert!(store.get_client("nobody").await.unwrap().is_none());

    let lock = lock_clients(&db).await;
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { store.get_client("nobody").await }
    });
    until_a_statement_waits_for_the_lock(&db).await;
    assert!(!store.is_failing_fast());
    forwarder.go_down();
    let result = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the statement outlived its connection")
        .expect("task");
    assert_transient(result);
    assert!(
        store.is_failing_fast(),
        "a statement's connection failure opens the breaker"
    );
    lock.rollback().await.expect("unlock");
}

/// A statement still running at the operation's deadline fails with a transient error and,
/// with nothing else completing meanwhile, opens the breaker; its connection is closed, not
/// handed to the next operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mcp_auth_test_postgres),
    ignore = "needs PostgreSQL: set TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test)"
)]
async fn a_statement_past_the_deadline_fails_and_its_connection_is_closed() {
    let db = TestDb::postgres("a_statement_past_the_deadline").await;
    // One connection at most: the next operation gets the old one back unless it was closed.
    let options = StoreOptions::default()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3600))
        .statement_timeout(Duration::from_millis(300))
        .probe_interval(Duration::ZERO);
    let (store, forwarder) = through_forwarder(&db, options).await;
    assert!(store.get_client("nobody").await.unwrap().is_none());
    let connections = forwarder.accepted();

    let lock = lock_clients(&db).await;
    let result = tokio::time::timeout(Duration::from_secs(60), store.get_client("nobody"))
        .await
        .expect("the deadline did not end the statement");
    assert_transient(result);
    assert!(store.is_failing_fast(), "nothing else reached the database");
    lock.rollback().await.expect("unlock");

    // A probe closes the breaker; the store answers again, on a new connection.
    let answer = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match store.get_client("nobody").await {
                Ok(answer) => break answer,
                Err(err) => {
                    assert!(err.is_transient(), "{err}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    })
    .await
    .expect("the store did not recover");
    assert!(answer.is_none());
    assert!(
        forwarder.accepted() > connections,
        "the connection that missed its deadline went back to the pool"
    );
}

/// A statement past its deadline while other operations complete: a busy database (here: a
/// lock), not an unreachable one, so the breaker stays closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mcp_auth_test_postgres),
    ignore = "needs PostgreSQL: set TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test)"
)]
async fn a_statement_past_the_deadline_while_others_complete_is_not_an_outage() {
    let db = TestDb::postgres("a_statement_past_the_deadline_while_others").await;
    // Long enough for the other operation to complete before it (a generous bound).
    let store = db
        .store_with_options(
            StoreOptions::default()
                .statement_timeout(Duration::from_secs(5))
                .probe_interval(Duration::from_secs(3600)),
        )
        .await;
    let lock = lock_clients(&db).await;
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { store.get_client("nobody").await }
    });
    until_a_statement_waits_for_the_lock(&db).await;
    // The lock is on the clients table only: codes answer.
    let code = crate::store::TokenHash::of("no such code");
    assert!(store.find_code(&code).await.unwrap().is_none());
    let result = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the deadline did not end the statement")
        .expect("task");
    assert_transient(result);
    assert!(
        !store.is_failing_fast(),
        "another operation completed meanwhile"
    );
    lock.rollback().await.expect("unlock");
}

/// SQLite: a write waiting for another process's lock fails at the deadline with a transient
/// error; no network is involved, so the breaker stays closed and reads go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_statement_past_the_deadline_fails_without_opening_the_breaker() {
    let db = TestDb::sqlite();
    let store = db
        .store_with_options(
            StoreOptions::default()
                .busy_timeout(Duration::from_secs(3600))
                .statement_timeout(Duration::from_millis(300)),
        )
        .await;
    let mut locker = db.sql().await.acquire().await.expect("connection");
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut *locker)
        .await
        .expect("write lock");
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        store.register_client(&client("waits")),
    )
    .await
    .expect("the deadline did not end the statement");
    assert_transient(result);
    assert!(!store.is_failing_fast());
    assert!(store.get_client("nobody").await.unwrap().is_none());
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut *locker)
        .await
        .expect("unlock");
}

/// Holds an exclusive lock on the clients table (PostgreSQL, not through a forwarder) until
/// rolled back: the store's statements on that table wait.
async fn lock_clients(db: &TestDb) -> sqlx::Transaction<'static, sqlx::Any> {
    let mut tx = db.sql().await.begin().await.expect("begin");
    sqlx::raw_sql("LOCK TABLE mcp_auth_clients IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .expect("lock");
    tx
}

/// Waits (within a minute) until a statement on the test database waits for a lock.
async fn until_a_statement_waits_for_the_lock(db: &TestDb) {
    let pool = db.sql().await;
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(pool)
            .await
            .expect("pg_stat_activity");
            if waiting > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the store's statement never waited for the lock");
}

/// Waits (yielding, within a minute) until `condition` holds: for work done by background tasks.
async fn until(condition: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the background probe did not run");
}

#[test]
fn pool_settings_come_from_the_environment() {
    let options = StoreOptions::from_vars([
        ("MCP_AUTH_DB_MAX_CONNECTIONS", "4"),
        ("MCP_AUTH_DB_ACQUIRE_TIMEOUT_SECONDS", "0.5"),
        ("MCP_AUTH_DB_STATEMENT_TIMEOUT_SECONDS", "2.5"),
        ("UNRELATED", "x"),
    ])
    .expect("valid settings");
    let shown = format!("{options:?}");
    assert!(shown.contains("max_connections: 4"), "{shown}");
    assert!(shown.contains("acquire_timeout: 500ms"), "{shown}");
    assert!(shown.contains("statement_timeout: 2.5s"), "{shown}");
    assert!(
        format!("{:?}", StoreOptions::default()).contains("statement_timeout: 5s"),
        "the documented default"
    );
    // Blank means unset.
    let defaults = format!("{:?}", StoreOptions::default());
    let blank = StoreOptions::from_vars([("MCP_AUTH_DB_MAX_CONNECTIONS", " ")]).unwrap();
    assert_eq!(format!("{blank:?}"), defaults);
    for (name, bad) in [
        ("MCP_AUTH_DB_MAX_CONNECTIONS", "0"),
        ("MCP_AUTH_DB_MAX_CONNECTIONS", "ten"),
        ("MCP_AUTH_DB_ACQUIRE_TIMEOUT_SECONDS", "0"),
        ("MCP_AUTH_DB_ACQUIRE_TIMEOUT_SECONDS", "-1"),
        ("MCP_AUTH_DB_ACQUIRE_TIMEOUT_SECONDS", "NaN"),
        ("MCP_AUTH_DB_STATEMENT_TIMEOUT_SECONDS", "0"),
        ("MCP_AUTH_DB_STATEMENT_TIMEOUT_SECONDS", "3601"),
        ("MCP_AUTH_DB_STATEMENT_TIMEOUT_SECONDS", "soon"),
    ] {
        let err = StoreOptions::from_vars([(name, bad)]).expect_err(bad);
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn audit_retention_comes_from_the_environment() {
    let options = StoreOptions::from_vars([("MCP_AUTH_AUDIT_RETENTION_DAYS", "7")]).unwrap();
    assert!(
        format!("{options:?}").contains("audit_retention: 604800s"),
        "{options:?}"
    );
    assert!(format!("{:?}", StoreOptions::default()).contains("audit_retention: 7776000s"));
    for bad in ["0", "-1", "seven", "36501"] {
        let err = StoreOptions::from_vars([("MCP_AUTH_AUDIT_RETENTION_DAYS", bad)]).expect_err(bad);
        assert!(
            err.to_string().contains("MCP_AUTH_AUDIT_RETENTION_DAYS"),
            "{err}"
        );
    }
}
