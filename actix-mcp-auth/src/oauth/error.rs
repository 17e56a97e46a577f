//! The core's own error value: what an endpoint refuses, as OAuth says it, without knowing how
//! the HTTP layer renders it. The actix adapter maps a [`Rejection`] onto the crate's
//! `OAuthError` (RFC 6749 §5.2 JSON, or a redirect with `state` and `iss`), so the core needs
//! nothing of actix.

use std::borrow::Cow;

/// An OAuth error code (RFC 6749 §4.1.2.1 and §5.2, RFC 7591 §3.2.2, RFC 8707 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// `invalid_request`: missing, repeated or malformed parameter.
    InvalidRequest,
    /// `invalid_client`: client authentication failed.
    InvalidClient,
    /// `invalid_grant`: code or refresh token invalid, expired, revoked or another client's.
    InvalidGrant,
    /// `unauthorized_client`: the client did not register this grant type.
    UnauthorizedClient,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `unsupported_response_type`.
    UnsupportedResponseType,
    /// `invalid_scope`: unknown, malformed or wider than allowed.
    InvalidScope,
    /// `invalid_target`: the resource indicator is not ours.
    InvalidTarget,
    /// `access_denied`: the user (or the identity provider) said no.
    AccessDenied,
    /// `invalid_redirect_uri` (registration).
    InvalidRedirectUri,
    /// `invalid_client_metadata` (registration).
    InvalidClientMetadata,
    /// `server_error`: something failed on our side or upstream.
    ServerError,
    /// `temporarily_unavailable`: retrying later may help.
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// How long a client should wait before retrying, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    /// Seconds to wait (at least 1).
    pub secs: u64,
    /// A rate limit refused the request (429), rather than a shortage on our side (503).
    pub throttled: bool,
}

/// A refused request: the OAuth error code and its description, plus what RFC 6749 §5.2 asks
/// of the answer beyond them.
///
/// The description is a fixed text or built from validated input; never a token, secret or
/// upstream answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The error code.
    pub code: ErrorCode,
    /// The `error_description`.
    pub description: Cow<'static, str>,
    /// The client authenticated with `client_secret_basic`: answer 401 with a Basic challenge.
    pub basic_challenge: bool,
    /// `temporarily_unavailable` with a `Retry-After` of its own.
    pub retry_after: Option<RetryAfter>,
}

impl Rejection {
    /// A rejection with `code` and `description`.
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
            basic_challenge: false,
            retry_after: None,
        }
    }

    /// `invalid_request`.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_grant`.
    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    /// `temporarily_unavailable` after which the client should wait `secs` (503).
    pub fn unavailable_for(description: impl Into<Cow<'static, str>>, secs: u64) -> Self {
        Self {
            retry_after: Some(RetryAfter {
                secs: secs.max(1),
                throttled: false,
            }),
            ..Self::new(ErrorCode::TemporarilyUnavailable, description)
        }
    }

    /// `temporarily_unavailable` from a rate limit: wait `secs` (429).
    pub fn throttled(description: impl Into<Cow<'static, str>>, secs: u64) -> Self {
        Self {
            retry_after: Some(RetryAfter {
                secs: secs.max(1),
                throttled: true,
            }),
            ..Self::new(ErrorCode::TemporarilyUnavailable, description)
        }
    }

    /// A storage failure: `temporarily_unavailable` when retrying may help, else
    /// `server_error`. The description never reveals the failure itself.
    pub fn storage(transient: bool) -> Self {
        if transient {
            Self::new(
                ErrorCode::TemporarilyUnavailable,
                "the service is temporarily unavailable; retry later",
            )
        } else {
            Self::new(ErrorCode::ServerError, "internal error")
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.description)
    }
}

impl std::error::Error for Rejection {}

/// Test helpers: assert a rejection's code and the words its description must contain.
#[cfg(test)]
pub(crate) mod testing {
    use super::{ErrorCode, Rejection};

    /// Request parameters of a crafted test case.
    pub type Pairs = &'static [(&'static str, &'static str)];

    /// Panics unless `result` is a rejection with `code` whose description contains `words`.
    #[track_caller]
    pub fn assert_rejected<T: std::fmt::Debug>(
        result: Result<T, Rejection>,
        code: ErrorCode,
        words: &str,
    ) -> Rejection {
        let rejection = result.expect_err("expected a rejection");
        assert_eq!(rejection.code, code, "{rejection}");
        assert!(
            rejection.description.contains(words),
            "`{}` does not contain `{words}`",
            rejection.description
        );
        rejection
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_failures_never_describe_the_failure() {
        let transient = Rejection::storage(true);
        assert_eq!(transient.code, ErrorCode::TemporarilyUnavailable);
        assert!(transient.description.contains("retry later"));
        let fatal = Rejection::storage(false);
        assert_eq!(fatal.code, ErrorCode::ServerError);
        assert_eq!(fatal.description, "internal error");
    }

    #[test]
    fn retry_hints_wait_at_least_a_second() {
        let busy = Rejection::unavailable_for("busy", 0);
        assert_eq!(
            busy.retry_after,
            Some(RetryAfter {
                secs: 1,
                throttled: false
            })
        );
        let limited = Rejection::throttled("slow down", 7);
        assert_eq!(limited.code, ErrorCode::TemporarilyUnavailable);
        assert_eq!(
            limited.retry_after,
            Some(RetryAfter {
                secs: 7,
                throttled: true
            })
        );
    }
}
