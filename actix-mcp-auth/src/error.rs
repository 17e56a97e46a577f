//! Error types and how they render.
//!
//! * [`ConfigError`]: a setting is missing or malformed; raised at start-up, naming the setting.
//! * [`BearerError`]: the bearer check on the MCP endpoint failed; renders an RFC 6750 challenge
//!   carrying the RFC 9728 `resource_metadata` URL.
//!
//! None of these types ever holds a token or a secret, so their `Debug` and `Display` forms are
//! safe to log (tracing-actix-web logs error responses at WARN).

use std::{fmt, sync::Arc};

use actix_web::{
    HttpResponse, ResponseError,
    http::{
        StatusCode,
        header::{self, HeaderValue},
    },
};

/// A configuration problem found when the provider is built. The message names the setting
/// (environment variable or builder method) so the operator can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required setting has no value.
    #[error("{0} is not set")]
    Missing(String),
    /// A setting has a value we cannot use.
    #[error("{setting} is invalid: {reason}")]
    Invalid {
        /// The environment variable or builder method.
        setting: String,
        /// What is wrong with it (never the value of a secret).
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(setting: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            setting: setting.to_owned(),
            reason: reason.into(),
        }
    }
}

/// What a `WWW-Authenticate` challenge needs besides the error itself: where the protected
/// resource metadata lives, and which scopes the resource asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// Absolute URL of the protected-resource metadata (RFC 9728 §5.1).
    pub resource_metadata: Option<String>,
    /// Scopes to announce in the challenge (space-separated), if any.
    pub scope: Option<String>,
}

/// Why the bearer check refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BearerErrorKind {
    /// No bearer credentials (RFC 6750 §3.1: challenge without an `error`).
    MissingToken,
    /// The `Authorization` header is malformed (400 `invalid_request`).
    InvalidRequest,
    /// The token is not acceptable: bad signature, expired, wrong audience... (401).
    InvalidToken,
    /// The token lacks a scope the resource requires (403).
    InsufficientScope,
    /// The identity provider could not be reached to check the token (503); not the client's
    /// fault, so the client must keep its token.
    Unavailable,
}

/// A refused bearer check, rendered as an RFC 6750 challenge.
///
/// | kind | status | `WWW-Authenticate` |
/// |---|---|---|
/// | `MissingToken` | 401 | `Bearer resource_metadata="…", scope="…"` (no `error`) |
/// | `InvalidRequest` | 400 | `Bearer error="invalid_request", …` |
/// | `InvalidToken` | 401 | `Bearer error="invalid_token", …` |
/// | `InsufficientScope` | 403 | `Bearer error="insufficient_scope", scope="<all needed>", …` |
/// | `Unavailable` | 503 | none; `Retry-After` instead |
#[derive(Clone)]
pub struct BearerError {
    kind: BearerErrorKind,
    description: &'static str,
    challenge: Arc<Challenge>,
}

impl BearerError {
    pub(crate) fn new(
        kind: BearerErrorKind,
        description: &'static str,
        challenge: Arc<Challenge>,
    ) -> Self {
        Self {
            kind,
            description,
            challenge,
        }
    }

    /// The error for a handler that asked for [`Authenticated`](crate::Authenticated) on a
    /// route that no [`BearerAuth`](crate::BearerAuth) wraps.
    pub(crate) fn unwired() -> Self {
        Self::new(
            BearerErrorKind::MissingToken,
            "authentication required",
            Arc::default(),
        )
    }

    /// Why the request was refused.
    pub fn kind(&self) -> BearerErrorKind {
        self.kind
    }

    /// A short, fixed explanation (never contains request data).
    pub fn description(&self) -> &'static str {
        self.description
    }

    fn error_code(&self) -> Option<&'static str> {
        match self.kind {
            BearerErrorKind::MissingToken => None,
            BearerErrorKind::InvalidRequest => Some("invalid_request"),
            BearerErrorKind::InvalidToken => Some("invalid_token"),
            BearerErrorKind::InsufficientScope => Some("insufficient_scope"),
            BearerErrorKind::Unavailable => Some("temporarily_unavailable"),
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3), or `None` for 503.
    fn www_authenticate(&self) -> Option<String> {
        if self.kind == BearerErrorKind::Unavailable {
            return None;
        }
        let mut params: Vec<(&str, &str)> = Vec::with_capacity(4);
        if let Some(code) = self.error_code() {
            params.push(("error", code));
            params.push(("error_description", self.description));
        }
        if let Some(scope) = self.challenge.scope.as_deref() {
            params.push(("scope", scope));
        }
        if let Some(url) = self.challenge.resource_metadata.as_deref() {
            params.push(("resource_metadata", url));
        }
        Some(render_challenge(&params))
    }
}

/// `Bearer k="v", k2="v2"` with RFC 9110 quoted-string escaping.
fn render_challenge(params: &[(&str, &str)]) -> String {
    let mut out = String::from("Bearer");
    for (i, (name, value)) in params.iter().enumerate() {
        out.push_str(if i == 0 { " " } else { ", " });
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out
}

impl fmt::Debug for BearerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerError")
            .field("kind", &self.kind)
            .field("description", &self.description)
            .finish()
    }
}

impl fmt::Display for BearerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description)
    }
}

impl std::error::Error for BearerError {}

impl ResponseError for BearerError {
    fn status_code(&self) -> StatusCode {
        match self.kind {
            BearerErrorKind::MissingToken | BearerErrorKind::InvalidToken => {
                StatusCode::UNAUTHORIZED
            }
            BearerErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            BearerErrorKind::InsufficientScope => StatusCode::FORBIDDEN,
            BearerErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CACHE_CONTROL, "no-store"));
        // Browser-based MCP clients must be able to read the challenge.
        res.insert_header((
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("WWW-Authenticate"),
        ));
        if let Some(challenge) = self.www_authenticate() {
            res.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        if self.kind == BearerErrorKind::Unavailable {
            res.insert_header((header::RETRY_AFTER, "5"));
        }
        match self.error_code() {
            None => res.finish(),
            Some(code) => res.json(serde_json::json!({
                "error": code,
                "error_description": self.description,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge() -> Arc<Challenge> {
        Arc::new(Challenge {
            resource_metadata: Some(
                "https://mcp.example.com/.well-known/oauth-protected-resource/mcp".into(),
            ),
            scope: Some("openid profile".into()),
        })
    }

    #[test]
    fn missing_token_challenge_has_no_error() {
        let err = BearerError::new(BearerErrorKind::MissingToken, "x", challenge());
        assert_eq!(
            err.www_authenticate().unwrap(),
            "Bearer scope=\"openid profile\", resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
        );
        assert_eq!(err.status_code(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn invalid_token_challenge_names_the_error() {
        let err = BearerError::new(BearerErrorKind::InvalidToken, "token expired", challenge());
        let value = err.www_authenticate().unwrap();
        assert!(
            value
                .starts_with("Bearer error=\"invalid_token\", error_description=\"token expired\"")
        );
        assert!(value.contains("resource_metadata="));
    }

    #[test]
    fn quotes_are_escaped() {
        assert_eq!(
            render_challenge(&[("scope", "a\"b\\c")]),
            "Bearer scope=\"a\\\"b\\\\c\""
        );
    }

    #[test]
    fn unavailable_has_no_challenge_but_retry_after() {
        let err = BearerError::new(BearerErrorKind::Unavailable, "down", challenge());
        let res = err.error_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "5");
    }
}

/// The OAuth error code: the core's (one enum for both layers).
pub(crate) use crate::oauth::error::ErrorCode as OAuthErrorCode;

/// An error of an OAuth endpoint, rendered as RFC 6749 §5.2 JSON with `Cache-Control: no-store`.
///
/// The description is a fixed text or one built from validated input; it never contains a
/// token, code, secret or upstream response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    code: OAuthErrorCode,
    description: String,
    /// `client_secret_basic` authentication failed: answer 401 with a Basic challenge.
    basic_challenge: bool,
    /// Seconds for `Retry-After` (instead of the default 5 of `temporarily_unavailable`).
    retry_after: Option<u64>,
    /// A rate limit refused the request: 429 instead of 503.
    throttled: bool,
}

impl OAuthError {
    /// An error with a description (restricted to the RFC 6749 character set on output).
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            basic_challenge: false,
            retry_after: None,
            throttled: false,
        }
    }

    /// `temporarily_unavailable` with 429 and `Retry-After: wait_secs` (a rate limit).
    pub(crate) fn too_many_requests(description: impl Into<String>, wait_secs: u64) -> Self {
        Self {
            throttled: true,
            ..Self::unavailable_for(description, wait_secs)
        }
    }

    /// `temporarily_unavailable` (503) with `Retry-After: wait_secs`.
    pub(crate) fn unavailable_for(description: impl Into<String>, wait_secs: u64) -> Self {
        Self {
            retry_after: Some(wait_secs.max(1)),
            ..Self::new(OAuthErrorCode::TemporarilyUnavailable, description)
        }
    }

    /// `invalid_client` for a client that tried `client_secret_basic` (RFC 6749 §5.2: 401 with
    /// `WWW-Authenticate: Basic`).
    pub fn invalid_basic_client(description: impl Into<String>) -> Self {
        Self {
            basic_challenge: true,
            ..Self::new(OAuthErrorCode::InvalidClient, description)
        }
    }

    /// The error code.
    pub fn code(&self) -> OAuthErrorCode {
        self.code
    }

    /// The description, with characters RFC 6749 forbids (`"`, `\`, controls, non-ASCII)
    /// replaced.
    pub fn description(&self) -> String {
        self.description
            .chars()
            .map(|c| match c {
                ' ' | '!' | '#'..='[' | ']'..='~' => c,
                _ => '?',
            })
            .collect()
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self.code {
            OAuthErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            OAuthErrorCode::TemporarilyUnavailable if self.throttled => {
                StatusCode::TOO_MANY_REQUESTS
            }
            OAuthErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"));
        if self.basic_challenge {
            res.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"token\""));
        }
        if self.code == OAuthErrorCode::TemporarilyUnavailable {
            let wait = self.retry_after.unwrap_or(5);
            res.insert_header((header::RETRY_AFTER, wait.to_string()));
        }
        res.json(serde_json::json!({
            "error": self.code.as_str(),
            "error_description": self.description(),
        }))
    }
}

impl OAuthErrorCode {
    /// Status of an HTML error page showing this error (the endpoints that answer with pages
    /// rather than JSON: authorization, consent, callback).
    pub(crate) fn status_for_page(self) -> u16 {
        match self {
            Self::TemporarilyUnavailable => 503,
            Self::ServerError => 500,
            _ => 400,
        }
    }
}

#[cfg(test)]
mod oauth_error_tests {
    use super::*;

    #[test]
    fn renders_rfc6749_json_with_no_store() {
        let err = OAuthError::new(OAuthErrorCode::InvalidGrant, "code \"x\" expired\n");
        let res = err.error_response();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            res.headers().get(header::CACHE_CONTROL).unwrap(),
            "no-store"
        );
        assert_eq!(err.description(), "code ?x? expired?");
    }

    #[test]
    fn basic_client_failures_are_401_with_a_challenge() {
        let res = OAuthError::invalid_basic_client("bad secret").error_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers().get(header::WWW_AUTHENTICATE).is_some());
    }
}
