//! The callback's decisions: AuthKit sends the user back to us with its verdict.
//!
//! Checks, in order: AuthKit's `iss` if present (mix-up defence, RFC 9207); our transaction
//! id in `state`; the request was approved (the browser binding is checked by the caller).
//! Once the request is ours, every failure goes back to the client's redirect URI as an OAuth
//! error whose code comes from our own list, never AuthKit's free text.

use serde_json::{Map, Value};

use super::{
    error::{ErrorCode, Rejection},
    params::Params,
};

/// Lifetime of the codes we hand to MCP clients (seconds).
pub const CODE_TTL_SECS: i64 = 5 * 60;

/// Why a callback cannot go back to the client: shown as a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageError {
    /// `iss` names another issuer than AuthKit.
    UnexpectedIssuer,
    /// No `state` (our transaction id).
    MissingState,
    /// The request was never approved on our consent page.
    NotApproved,
    /// The request was already completed (or is gone).
    AlreadyCompleted,
}

impl PageError {
    /// What the page says.
    pub fn message(self) -> &'static str {
        match self {
            Self::UnexpectedIssuer => "The login answer came from an unexpected issuer.",
            Self::MissingState => "Missing authorization state.",
            Self::NotApproved => "This authorization request was not approved.",
            Self::AlreadyCompleted => "This login was already completed.",
        }
    }

    /// The page's status.
    pub fn status(self) -> u16 {
        match self {
            Self::NotApproved => 403,
            _ => 400,
        }
    }
}

/// The transaction a callback continues, after checking who answered (`upstream_issuer`).
pub fn transaction<'a>(params: &'a Params, upstream_issuer: &str) -> Result<&'a str, PageError> {
    if params.get("iss").is_some_and(|iss| iss != upstream_issuer) {
        return Err(PageError::UnexpectedIssuer);
    }
    params.get("state").ok_or(PageError::MissingState)
}

/// Requires the pending request to be approved (`consented`).
pub fn check_approved(consented: bool) -> Result<(), PageError> {
    if consented {
        Ok(())
    } else {
        Err(PageError::NotApproved)
    }
}

/// AuthKit's code, or its refusal relayed with a code from our own list.
pub fn upstream_code(params: &Params) -> Result<&str, Rejection> {
    if let Some(error) = params.get("error") {
        let code = match error {
            "access_denied" => ErrorCode::AccessDenied,
            "temporarily_unavailable" => ErrorCode::TemporarilyUnavailable,
            _ => ErrorCode::ServerError,
        };
        return Err(Rejection::new(
            code,
            "the identity provider did not complete the login",
        ));
    }
    params
        .get("code")
        .ok_or_else(|| Rejection::new(ErrorCode::ServerError, "the identity provider sent no code"))
}

/// Why the exchange of AuthKit's code (or the profile read after it) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// AuthKit refused the code or the token it just issued.
    Refused,
    /// AuthKit could not be reached, or failed; retrying may help.
    Unavailable,
}

impl From<UpstreamFailure> for Rejection {
    fn from(failure: UpstreamFailure) -> Self {
        match failure {
            UpstreamFailure::Refused => Self::new(
                ErrorCode::ServerError,
                "the identity provider refused the login",
            ),
            UpstreamFailure::Unavailable => Self::new(
                ErrorCode::TemporarilyUnavailable,
                "the identity provider is unavailable; try again",
            ),
        }
    }
}

/// The user of AuthKit's profile (`sub`, never empty).
pub fn subject(profile: &Map<String, Value>) -> Result<String, Rejection> {
    profile
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Rejection::new(ErrorCode::ServerError, "the identity provider sent no user"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::oauth::error::testing::{Pairs, assert_rejected};

    const AUTHKIT: &str = "https://auth.example.com";

    #[test]
    fn the_transaction_and_its_page_errors() {
        let params = |pairs: &[(&str, &str)]| Params::from_pairs(pairs);
        assert_eq!(transaction(&params(&[("state", "t")]), AUTHKIT), Ok("t"));
        assert_eq!(
            transaction(&params(&[("state", "t"), ("iss", AUTHKIT)]), AUTHKIT),
            Ok("t")
        );
        assert_eq!(
            transaction(
                &params(&[("state", "t"), ("iss", "https://evil.example")]),
                AUTHKIT
            ),
            Err(PageError::UnexpectedIssuer)
        );
        assert_eq!(
            transaction(&params(&[("code", "x")]), AUTHKIT),
            Err(PageError::MissingState)
        );
        assert_eq!(check_approved(true), Ok(()));
        assert_eq!(check_approved(false), Err(PageError::NotApproved));
        assert_eq!(PageError::NotApproved.status(), 403);
        for error in [
            PageError::UnexpectedIssuer,
            PageError::MissingState,
            PageError::AlreadyCompleted,
        ] {
            assert_eq!(error.status(), 400);
            assert!(error.message().ends_with('.'));
        }
    }

    #[test]
    fn every_error_sent_back_to_the_client() {
        let code =
            |pairs: &[(&str, &str)]| upstream_code(&Params::from_pairs(pairs)).map(str::to_owned);
        assert_eq!(code(&[("code", "abc")]).unwrap(), "abc");
        let cases: &[(Pairs, ErrorCode, &str)] = &[
            (
                &[("error", "access_denied")],
                ErrorCode::AccessDenied,
                "did not complete the login",
            ),
            (
                &[("error", "temporarily_unavailable"), ("code", "x")],
                ErrorCode::TemporarilyUnavailable,
                "did not complete the login",
            ),
            (
                &[("error", "<script>"), ("error_description", "free text")],
                ErrorCode::ServerError,
                "did not complete the login",
            ),
            (&[], ErrorCode::ServerError, "sent no code"),
        ];
        for (pairs, error, words) in cases {
            let rejection = assert_rejected(code(pairs), *error, words);
            assert!(!rejection.description.contains("free text"));
        }
        assert_rejected::<()>(
            Err(UpstreamFailure::Refused.into()),
            ErrorCode::ServerError,
            "refused the login",
        );
        assert_rejected::<()>(
            Err(UpstreamFailure::Unavailable.into()),
            ErrorCode::TemporarilyUnavailable,
            "unavailable; try again",
        );
    }

    #[test]
    fn the_subject_is_required() {
        let profile = |value: Value| value.as_object().unwrap().clone();
        assert_eq!(
            subject(&profile(json!({"sub": "user_1"}))).unwrap(),
            "user_1"
        );
        for bad in [json!({}), json!({"sub": ""}), json!({"sub": 7})] {
            assert_rejected(
                subject(&profile(bad)),
                ErrorCode::ServerError,
                "sent no user",
            );
        }
    }
}
