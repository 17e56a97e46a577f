//! A quick answer to "is the database server there at all?", for operations stuck in the pool.
//!
//! With PostgreSQL down, sqlx retries refused connects until the pool's acquire timeout (2 s
//! by default), so the first requests of an outage wait that long before the breaker opens.
//! An acquire that has waited [`SUSPECT_AFTER`] therefore asks this probe, which only opens a
//! TCP connection to the server's address (no TLS, no login): refused or timed out means an
//! outage, and the breaker opens at once for every waiting operation. A pool that is merely
//! busy answers the probe and its waiters keep waiting. At most one probe runs at a time.
//!
//! Only TCP URLs get a probe (SQLite is a file; a Unix-socket URL has no address to try).

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

/// How long an acquire waits before the probe is asked.
pub(crate) const SUSPECT_AFTER: Duration = Duration::from_millis(50);

/// How long the probe waits for the server to accept a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);

/// The address of a PostgreSQL server, probed with a bare TCP connect.
#[derive(Debug)]
pub(crate) struct Reachability {
    host: String,
    port: u16,
    in_flight: AtomicBool,
}

impl Reachability {
    /// The probe for a `postgres://` URL with a TCP host; `None` for anything else.
    pub(crate) fn for_url(url: &str) -> Option<Self> {
        let parsed = url::Url::parse(url).ok()?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return None;
        }
        // `?host=/run/postgresql` selects a Unix socket: nothing to connect to over TCP.
        if parsed
            .query_pairs()
            .any(|(key, _)| key == "host" || key == "hostaddr")
        {
            return None;
        }
        let host = parsed.host_str().filter(|h| !h.is_empty())?;
        Some(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: parsed.port().unwrap_or(5432),
            in_flight: AtomicBool::new(false),
        })
    }

    /// `Some(false)` when the server refused or ignored a TCP connection, `Some(true)` when it
    /// accepted one, `None` when another probe is already running (its answer will do).
    pub(crate) async fn server_is_up(&self) -> Option<bool> {
        if self.in_flight.swap(true, Ordering::AcqRel) {
            return None;
        }
        let connect = tokio::net::TcpStream::connect((self.host.as_str(), self.port));
        let up = matches!(
            tokio::time::timeout(CONNECT_TIMEOUT, connect).await,
            Ok(Ok(_))
        );
        self.in_flight.store(false, Ordering::Release);
        Some(up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tcp_postgres_urls_get_a_probe() {
        let probe = Reachability::for_url("postgres://u:p@127.0.0.1:5433/db").unwrap();
        assert_eq!((probe.host.as_str(), probe.port), ("127.0.0.1", 5433));
        let probe = Reachability::for_url("postgresql://[::1]/db").unwrap();
        assert_eq!((probe.host.as_str(), probe.port), ("::1", 5432));
        for url in [
            "sqlite://mcp.db",
            "sqlite::memory:",
            "postgres:///db?host=/run/postgresql",
            "postgres://localhost/db?host=/tmp",
            "not a url",
        ] {
            assert!(Reachability::for_url(url).is_none(), "{url}");
        }
    }

    #[tokio::test]
    async fn a_closed_port_is_down_a_listening_one_is_up() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let probe = Reachability::for_url(&format!("postgres://127.0.0.1:{port}/db")).unwrap();
        assert_eq!(probe.server_is_up().await, Some(true));
        drop(listener);
        assert_eq!(probe.server_is_up().await, Some(false));
    }
}
