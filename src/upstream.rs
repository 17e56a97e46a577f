//! The HTTP client we use to talk to AuthKit.
//!
//! `awc::Client` is `!Send`, so each actix worker thread keeps its own (built lazily, reused for
//! every call: connection pooling and TLS sessions live in it). The rustls configuration is built
//! once per process with an explicit crypto provider, because letting rustls pick a process-wide
//! default panics when two providers are compiled into the application.

use std::{
    cell::RefCell,
    sync::{Arc, OnceLock},
    time::Duration,
};

use actix_web::web::Bytes;

/// Why a call to AuthKit failed. Holds no URL parameters, bodies or tokens, only what an operator
/// needs to tell an outage from a bad answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// Could not connect, or no complete answer within the timeout.
    #[error("identity provider unreachable or too slow")]
    Unreachable,
    /// The identity provider answered with this HTTP status.
    #[error("identity provider answered HTTP {0}")]
    Status(u16),
    /// The answer was larger than we accept.
    #[error("identity provider answer too large")]
    TooLarge,
    /// The answer was not the JSON document we expected.
    #[error("identity provider answer malformed")]
    Malformed,
}

/// Largest document we accept from AuthKit (metadata, JWKS, userinfo).
pub(crate) const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                crate::backend::rustls_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("the crypto provider supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}

thread_local! {
    static CLIENT: RefCell<Option<awc::Client>> = const { RefCell::new(None) };
}

/// This thread's client (awc clients are cheap `Rc` handles to a shared pool).
pub(crate) fn client() -> awc::Client {
    CLIENT.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| {
                awc::Client::builder()
                    .connector(
                        awc::Connector::new()
                            .rustls_0_23(tls_config())
                            .timeout(Duration::from_secs(5)),
                    )
                    // AuthKit endpoints never redirect; following one would let a rogue
                    // answer point us anywhere.
                    .disable_redirects()
                    .finish()
            })
            .clone()
    })
}

/// GETs `url` and returns the body of a 200 answer, at most [`MAX_DOCUMENT_BYTES`], within
/// `timeout` for the whole exchange. `bearer` is sent as `Authorization: Bearer`.
pub(crate) async fn get_document(
    url: &str,
    timeout: Duration,
    bearer: Option<&str>,
) -> Result<Bytes, UpstreamError> {
    let exchange = async {
        let mut req = client()
            .get(url)
            .timeout(timeout)
            .insert_header(("Accept", "application/json"));
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let mut res = req.send().await.map_err(|_| UpstreamError::Unreachable)?;
        let status = res.status();
        let body = res.body().limit(MAX_DOCUMENT_BYTES).await;
        if !status.is_success() {
            return Err(UpstreamError::Status(status.as_u16()));
        }
        body.map_err(|e| match e {
            awc::error::PayloadError::Overflow => UpstreamError::TooLarge,
            _ => UpstreamError::Unreachable,
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(UpstreamError::Unreachable))
}

/// Like [`get_document`], and the body must be a JSON object.
pub(crate) async fn get_json_object(
    url: &str,
    timeout: Duration,
    bearer: Option<&str>,
) -> Result<Bytes, UpstreamError> {
    let body = get_document(url, timeout, bearer).await?;
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(_)) => Ok(body),
        _ => Err(UpstreamError::Malformed),
    }
}
