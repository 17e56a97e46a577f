//! Failing fast while PostgreSQL is unreachable: the store's circuit breaker, against a real
//! PostgreSQL behind a loopback TCP forwarder that can black-hole new connections (the outage).
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
use tokio::net::{TcpListener, TcpStream};

use super::support::{TestDb, test_keys};

/// A TCP forwarder on loopback to the test PostgreSQL. Up: forwards. Down: drops every
/// forwarded connection and holds new ones open without a byte (a black hole), counting them.
struct Forwarder {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    links: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    acceptor: tokio::task::AbortHandle,
}

impl Forwarder {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let links = Arc::new(Mutex::new(Vec::new()));
        let (d, a, l) = (down.clone(), accepted.clone(), links.clone());
        let acceptor = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                if d.load(Ordering::SeqCst) {
                    held.push(inbound);
                    continue;
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                l.lock().unwrap().push(link.abort_handle());
            }
        });
        Self {
            addr,
            down,
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

    fn come_back(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
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
    let answer = loop {
        match store.get_client("nobody").await {
            Ok(answer) => break answer,
            Err(err) => {
                assert!(err.is_transient(), "{err}");
                refused += 1;
                tokio::task::yield_now().await;
            }
        }
    };
    assert!(answer.is_none());
    assert!(
        refused >= 1,
        "the first operation after the outage started the probe"
    );
    assert!(!store.is_failing_fast(), "closed by the successful probe");
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
        ("UNRELATED", "x"),
    ])
    .expect("valid settings");
    let shown = format!("{options:?}");
    assert!(shown.contains("max_connections: 4"), "{shown}");
    assert!(shown.contains("acquire_timeout: 500ms"), "{shown}");
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
