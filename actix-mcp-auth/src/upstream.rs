//! The HTTP client we use to talk to AuthKit.
//!
//! `awc::Client` is `!Send`, so each actix worker thread keeps its own (built lazily, reused for
//! every call: connection pooling and TLS sessions live in it). The rustls configuration is built
//! once per process with an explicit crypto provider, because letting rustls pick a process-wide
//! default panics when two providers are compiled into the application.
//!
//! Peers that do not keep connections alive: awc returns an HTTP/1.0 connection to its pool
//! unless the answer says `Connection: close`, although an HTTP/1.0 peer (or intermediary)
//! ends the connection after each answer; the next call would then be sent on a dead
//! connection. So a body is read by [`read_body`], which closes instead of pooling any
//! connection whose answer did not allow keep-alive. And an idempotent GET that fails before
//! any answer byte, as on a connection the peer closed meanwhile, is retried once on a fresh
//! connection; a token request (a POST that may have been received) never is.

use std::{
    cell::RefCell,
    sync::{Arc, OnceLock},
    time::Duration,
};

use actix_web::{
    HttpMessage as _,
    http::{Version, header},
    web::{Bytes, BytesMut},
};
use futures_util::StreamExt as _;

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
    CLIENT.with(|cell| cell.borrow_mut().get_or_insert_with(new_client).clone())
}

/// A client with a pool of its own (so its first request opens a fresh connection).
fn new_client() -> awc::Client {
    awc::Client::builder()
        .connector(
            awc::Connector::new()
                .rustls_0_23(tls_config())
                .timeout(Duration::from_secs(5)),
        )
        // AuthKit endpoints never redirect; following one would let a rogue answer point us
        // anywhere.
        .disable_redirects()
        .finish()
}

/// Whether the peer lets us send another request on this connection: HTTP/1.1 unless it said
/// `Connection: close` (awc handles that), HTTP/1.0 only with `Connection: keep-alive`.
pub(crate) fn allows_keep_alive(version: Version, connection: Option<&str>) -> bool {
    let has = |token: &str| {
        connection.is_some_and(|value| {
            value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    match version {
        Version::HTTP_09 | Version::HTTP_10 => has("keep-alive") && !has("close"),
        _ => !has("close"),
    }
}

/// Reads a response body of at most `limit` bytes. When the answer does not allow keep-alive,
/// the stream is dropped once `Content-Length` bytes are in, before awc would hand the
/// connection back to its pool: dropping it closes the connection.
async fn read_body<S>(
    res: &mut awc::ClientResponse<S>,
    limit: usize,
) -> Result<Bytes, awc::error::PayloadError>
where
    S: futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
{
    let connection = res
        .headers()
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok());
    if allows_keep_alive(res.version(), connection) {
        return res.body().limit(limit).await;
    }
    let length = res
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if length.is_some_and(|n| n > limit) {
        return Err(awc::error::PayloadError::Overflow);
    }
    let mut payload = res.take_payload();
    let mut body = BytesMut::new();
    // Without a length the body ends with the connection, which awc then closes itself.
    while length.is_none_or(|n| body.len() < n) {
        match payload.next().await {
            Some(chunk) => {
                let chunk: Bytes = chunk?;
                body.extend_from_slice(&chunk);
            }
            None => break,
        }
        if body.len() > limit {
            return Err(awc::error::PayloadError::Overflow);
        }
    }
    drop(payload);
    if length.is_some_and(|n| body.len() < n) {
        return Err(awc::error::PayloadError::Incomplete(None));
    }
    Ok(body.freeze())
}

/// Whether a request failed before any byte of an answer arrived, as when it is sent on a
/// pooled connection the peer has closed meanwhile.
fn failed_before_answer(error: &awc::error::SendRequestError) -> bool {
    use awc::error::{ConnectError, SendRequestError};
    matches!(
        error,
        SendRequestError::Connect(ConnectError::Disconnected)
            | SendRequestError::Send(_)
            | SendRequestError::Response(actix_web::error::ParseError::Io(_))
            | SendRequestError::Response(actix_web::error::ParseError::Incomplete)
    )
}

/// GETs `url` and returns the body of a 200 answer, at most [`MAX_DOCUMENT_BYTES`], within
/// `timeout` for the whole exchange. `bearer` is sent as `Authorization: Bearer`.
pub(crate) async fn get_document(
    url: &str,
    timeout: Duration,
    bearer: Option<&str>,
) -> Result<Bytes, UpstreamError> {
    let exchange = async {
        let send = |client: awc::Client| {
            let mut req = client
                .get(url)
                .timeout(timeout)
                .insert_header(("Accept", "application/json"));
            if let Some(token) = bearer {
                req = req.bearer_auth(token);
            }
            req.send()
        };
        let mut res = match send(client()).await {
            Ok(res) => res,
            // A GET is idempotent: once more on a fresh connection.
            Err(error) if failed_before_answer(&error) => {
                tracing::debug!(%error, "AuthKit connection lost before an answer; retrying once");
                send(new_client())
                    .await
                    .map_err(|_| UpstreamError::Unreachable)?
            }
            Err(_) => return Err(UpstreamError::Unreachable),
        };
        let status = res.status();
        let body = read_body(&mut res, MAX_DOCUMENT_BYTES).await;
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

/// AuthKit's answer to a token request, with the tokens wrapped so they cannot be logged.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamTokenResponse {
    pub tokens: crate::store::UpstreamTokens,
}

/// Why a token request to AuthKit failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenCallError {
    /// AuthKit refused the request (`invalid_grant`, `invalid_client`...): final, retrying the
    /// same request cannot succeed. Holds AuthKit's error code only.
    #[error("identity provider refused the request: {0}")]
    Rejected(String),
    /// Network trouble, timeout, 408/429/5xx: retrying later may succeed.
    #[error("{0}")]
    Transient(UpstreamError),
}

#[derive(serde::Deserialize)]
struct RawTokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// POSTs a token request (`form`) to AuthKit with `client_secret_post` authentication.
pub(crate) async fn request_tokens(
    token_endpoint: &str,
    client_id: &str,
    client_secret: &str,
    form: &[(&str, &str)],
    timeout: Duration,
) -> Result<UpstreamTokenResponse, TokenCallError> {
    let mut body: Vec<(&str, &str)> = form.to_vec();
    body.push(("client_id", client_id));
    body.push(("client_secret", client_secret));
    let exchange = async {
        let mut res = client()
            .post(token_endpoint)
            .timeout(timeout)
            .insert_header(("Accept", "application/json"))
            .send_form(&body)
            .await
            .map_err(|_| TokenCallError::Transient(UpstreamError::Unreachable))?;
        // Never retried: AuthKit may have received (and consumed) the code or refresh token.
        let status = res.status().as_u16();
        let bytes = read_body(&mut res, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|_| TokenCallError::Transient(UpstreamError::Unreachable))?;
        classify_token_answer(status, &bytes)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(TokenCallError::Transient(UpstreamError::Unreachable)))
}

fn classify_token_answer(
    status: u16,
    body: &[u8],
) -> Result<UpstreamTokenResponse, TokenCallError> {
    if status == 200 {
        let raw: RawTokenResponse = serde_json::from_slice(body)
            .map_err(|_| TokenCallError::Transient(UpstreamError::Malformed))?;
        let now = crate::clock::unix_now();
        return Ok(UpstreamTokenResponse {
            tokens: crate::store::UpstreamTokens {
                access_token: raw.access_token.into(),
                refresh_token: raw.refresh_token.map(Into::into),
                id_token: raw.id_token.map(Into::into),
                expires_at: raw.expires_in.map(|s| now + s),
            },
        });
    }
    if matches!(status, 408 | 429) || status >= 500 {
        return Err(TokenCallError::Transient(UpstreamError::Status(status)));
    }
    // 4xx: AuthKit's verdict. Keep only the error code, and only if it looks like one.
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
        .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .unwrap_or_else(|| "invalid_request".to_owned());
    Err(TokenCallError::Rejected(code))
}

/// Why a userinfo call did not return a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserinfoError {
    /// AuthKit says the access token is no longer valid (401/403): the session is over.
    Unauthorized,
    /// AuthKit could not answer; the session state is unknown.
    Transient(UpstreamError),
}

/// Asks AuthKit's userinfo endpoint who `access_token` belongs to: proof the upstream session is
/// still alive.
pub(crate) async fn userinfo(
    url: &str,
    access_token: &str,
    timeout: Duration,
) -> Result<serde_json::Map<String, serde_json::Value>, UserinfoError> {
    match get_json_object(url, timeout, Some(access_token)).await {
        Ok(body) => serde_json::from_slice(&body)
            .map_err(|_| UserinfoError::Transient(UpstreamError::Malformed)),
        Err(UpstreamError::Status(401 | 403)) => Err(UserinfoError::Unauthorized),
        Err(other) => Err(UserinfoError::Transient(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_follows_the_version_and_connection_header() {
        assert!(allows_keep_alive(Version::HTTP_11, None));
        assert!(allows_keep_alive(Version::HTTP_11, Some("keep-alive")));
        assert!(!allows_keep_alive(Version::HTTP_11, Some("close")));
        assert!(!allows_keep_alive(Version::HTTP_11, Some("Upgrade, Close")));
        assert!(
            !allows_keep_alive(Version::HTTP_10, None),
            "HTTP/1.0 closes"
        );
        assert!(allows_keep_alive(Version::HTTP_10, Some("Keep-Alive")));
        assert!(!allows_keep_alive(Version::HTTP_10, Some("close")));
    }

    #[test]
    fn token_answers_are_classified() {
        let ok = classify_token_answer(
            200,
            br#"{"access_token":"at","refresh_token":"rt","expires_in":300,"token_type":"Bearer"}"#,
        )
        .unwrap();
        assert_eq!(ok.tokens.access_token.expose(), "at");
        assert!(ok.tokens.expires_at.is_some());
        assert_eq!(
            classify_token_answer(400, br#"{"error":"invalid_grant"}"#).unwrap_err(),
            TokenCallError::Rejected("invalid_grant".into())
        );
        assert_eq!(
            classify_token_answer(400, b"<html>").unwrap_err(),
            TokenCallError::Rejected("invalid_request".into())
        );
        for status in [408, 429, 500, 503] {
            assert!(matches!(
                classify_token_answer(status, b"{}").unwrap_err(),
                TokenCallError::Transient(_)
            ));
        }
        assert!(matches!(
            classify_token_answer(200, b"not json").unwrap_err(),
            TokenCallError::Transient(UpstreamError::Malformed)
        ));
    }
}
