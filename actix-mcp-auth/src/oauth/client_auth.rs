//! Client authentication at the token and revocation endpoints (OAuth 2.1 §2.4, RFC 6749
//! §2.3.1), as two steps around the client lookup:
//!
//! 1. [`Credentials::presented`]: what the request presents (`Authorization: Basic` or form
//!    parameters, never both);
//! 2. [`verify`]: whether it satisfies the client as registered. Public clients (`none`)
//!    present `client_id` only; confidential ones prove their secret with the method they
//!    registered, and only that method.
//!
//! Comparing a presented secret with the stored digest is the caller's (it owns the digest
//! format); counting failures per client is the rate limiter's.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};

use super::{
    cimd::CimdError,
    error::{ErrorCode, Rejection},
    params::Params,
};

/// Credentials as presented by a request (`Debug` hides the secret).
#[derive(Clone)]
pub struct Credentials {
    /// The client id.
    pub client_id: String,
    /// The secret, if one was presented.
    pub secret: Option<String>,
    /// Presented with HTTP Basic (`client_secret_basic`).
    pub via_basic: bool,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("via_basic", &self.via_basic)
            .finish()
    }
}

/// The authentication rules a client registered.
#[derive(Debug, Clone, Copy)]
pub struct Registered<'a> {
    /// `token_endpoint_auth_method`: `none`, `client_secret_post` or `client_secret_basic`.
    pub auth_method: &'a str,
    /// Whether a secret (digest) is on record.
    pub has_secret: bool,
}

/// `invalid_client`; 401 with a Basic challenge when the client tried HTTP Basic.
pub fn invalid_client(via_basic: bool) -> Rejection {
    Rejection {
        basic_challenge: via_basic,
        ..Rejection::new(ErrorCode::InvalidClient, "client authentication failed")
    }
}

/// `invalid_client` for a metadata-document client whose document is not usable now (the
/// reason is safe to show: it never contains the document).
pub fn document_refused(error: &CimdError) -> Rejection {
    Rejection::new(ErrorCode::InvalidClient, error.to_string())
}

/// The lock-out of a client whose failed authentications spent its budget.
pub fn locked_out(wait_secs: u64) -> Rejection {
    Rejection::throttled("too many failed authentications of this client", wait_secs)
}

impl Credentials {
    /// The credentials of a request: its `Authorization` header (raw bytes) and parameters.
    pub fn presented(authorization: Option<&[u8]>, params: &Params) -> Result<Self, Rejection> {
        let Some((client_id, secret)) = basic_credentials(authorization)? else {
            return Ok(Self {
                client_id: params
                    .get("client_id")
                    .ok_or_else(|| invalid_client(false))?
                    .to_owned(),
                secret: params.get("client_secret").map(str::to_owned),
                via_basic: false,
            });
        };
        if params.get("client_secret").is_some()
            || params.get("client_id").is_some_and(|id| id != client_id)
        {
            return Err(Rejection::invalid_request(
                "use one client authentication method",
            ));
        }
        Ok(Self {
            client_id,
            secret: Some(secret),
            via_basic: true,
        })
    }
}

/// Whether `presented` authenticates the client `registered`; `secret_matches` compares a
/// presented secret with the stored digest.
pub fn verify(
    presented: &Credentials,
    registered: Registered<'_>,
    secret_matches: impl FnOnce(&str) -> bool,
) -> Result<(), Rejection> {
    let method_ok = match registered.auth_method {
        "none" => presented.secret.is_none(),
        "client_secret_post" => !presented.via_basic && presented.secret.is_some(),
        "client_secret_basic" => presented.via_basic,
        _ => false,
    };
    let secret_ok = match (registered.has_secret, presented.secret.as_deref()) {
        (false, None) => true,
        (true, Some(secret)) => secret_matches(secret),
        _ => false,
    };
    if method_ok && secret_ok {
        Ok(())
    } else {
        Err(invalid_client(presented.via_basic))
    }
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`, if present.
fn basic_credentials(header: Option<&[u8]>) -> Result<Option<(String, String)>, Rejection> {
    let Some(header) = header else {
        return Ok(None);
    };
    let value = visible_ascii(header).ok_or_else(|| invalid_client(true))?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(invalid_client(true));
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(invalid_client(true));
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| invalid_client(true))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| invalid_client(true))?;
    let (id, secret) = (form_unescape(id), form_unescape(secret));
    // No client id or secret holds a NUL; PostgreSQL would refuse it in a lookup.
    if id.contains('\0') || secret.contains('\0') {
        return Err(invalid_client(true));
    }
    Ok(Some((id, secret)))
}

/// A header value as text when it holds only visible ASCII and tabs (what HTTP header APIs
/// accept as a string).
fn visible_ascii(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
fn form_unescape(value: &str) -> String {
    url::form_urlencoded::parse(format!("x={value}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::testing::{Pairs, assert_rejected};

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    fn presented(header: Option<&str>, pairs: &[(&str, &str)]) -> Result<Credentials, Rejection> {
        Credentials::presented(header.map(str::as_bytes), &Params::from_pairs(pairs))
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let found = presented(Some(&basic("my%20id:s%3Acret+x")), &[]).unwrap();
        assert_eq!(found.client_id, "my id");
        assert_eq!(found.secret.as_deref(), Some("s:cret x"));
        assert!(found.via_basic);
        assert!(!format!("{found:?}").contains("s:cret"));
        // The same client id in the form is allowed beside Basic.
        assert!(presented(Some(&basic("c:s")), &[("client_id", "c")]).is_ok());
    }

    #[test]
    fn form_credentials() {
        let found = presented(None, &[("client_id", "c"), ("client_secret", "s")]).unwrap();
        assert_eq!(found.secret.as_deref(), Some("s"));
        assert!(!found.via_basic);
        let public = presented(None, &[("client_id", "c")]).unwrap();
        assert_eq!(public.secret, None);
    }

    #[test]
    fn every_refusal_of_presented_credentials() {
        let cases: &[(Option<&str>, Pairs, ErrorCode, &str, bool)] = &[
            // No client id at all.
            (
                None,
                &[],
                ErrorCode::InvalidClient,
                "authentication failed",
                false,
            ),
            (
                Some("Bearer x"),
                &[],
                ErrorCode::InvalidClient,
                "authentication failed",
                true,
            ),
            (
                Some("Basic"),
                &[],
                ErrorCode::InvalidClient,
                "authentication failed",
                true,
            ),
            (
                Some("Basic !!!"),
                &[],
                ErrorCode::InvalidClient,
                "authentication failed",
                true,
            ),
            (
                Some("Basic bm9jb2xvbg=="),
                &[],
                ErrorCode::InvalidClient,
                "authentication failed",
                true,
            ),
            (
                Some("Basic YSUwMDpi"),
                &[],
                ErrorCode::InvalidClient,
                "authentication failed",
                true,
            ),
            (
                Some("Basic /w=="),
                &[],
                ErrorCode::InvalidClient,
                "authentication failed",
                true,
            ),
            // Two methods at once.
            (
                Some("Basic Yzpz"),
                &[("client_secret", "s")],
                ErrorCode::InvalidRequest,
                "one client authentication method",
                false,
            ),
            (
                Some("Basic Yzpz"),
                &[("client_id", "other")],
                ErrorCode::InvalidRequest,
                "one client authentication method",
                false,
            ),
        ];
        for (header, pairs, code, words, challenge) in cases {
            let rejection = assert_rejected(presented(*header, pairs), *code, words);
            assert_eq!(rejection.basic_challenge, *challenge, "{header:?}");
        }
        // A header that is not visible ASCII.
        let rejection = Credentials::presented(Some(b"Basic \xff"), &Params::default());
        assert!(assert_rejected(rejection, ErrorCode::InvalidClient, "failed").basic_challenge);
    }

    fn creds(secret: Option<&str>, via_basic: bool) -> Credentials {
        Credentials {
            client_id: "c".into(),
            secret: secret.map(str::to_owned),
            via_basic,
        }
    }

    fn registered(auth_method: &str, has_secret: bool) -> Registered<'_> {
        Registered {
            auth_method,
            has_secret,
        }
    }

    #[test]
    fn only_the_registered_method_with_the_right_secret_passes() {
        let right = |s: &str| s == "right";
        assert!(verify(&creds(None, false), registered("none", false), right).is_ok());
        assert!(
            verify(
                &creds(Some("right"), false),
                registered("client_secret_post", true),
                right
            )
            .is_ok()
        );
        assert!(
            verify(
                &creds(Some("right"), true),
                registered("client_secret_basic", true),
                right
            )
            .is_ok()
        );
        let refused = [
            (creds(Some("x"), false), registered("none", false)),
            (
                creds(Some("right"), true),
                registered("client_secret_post", true),
            ),
            (creds(None, false), registered("client_secret_post", true)),
            (
                creds(Some("wrong"), false),
                registered("client_secret_post", true),
            ),
            (
                creds(Some("right"), false),
                registered("client_secret_basic", true),
            ),
            (
                creds(Some("wrong"), true),
                registered("client_secret_basic", true),
            ),
            (
                creds(Some("right"), true),
                registered("private_key_jwt", true),
            ),
            // A confidential method without a stored secret never passes.
            (
                creds(Some("right"), false),
                registered("client_secret_post", false),
            ),
        ];
        for (presented, registered) in refused {
            let rejection = assert_rejected(
                verify(&presented, registered, right),
                ErrorCode::InvalidClient,
                "client authentication failed",
            );
            assert_eq!(rejection.basic_challenge, presented.via_basic);
        }
    }

    #[test]
    fn an_unusable_metadata_document_is_an_invalid_client() {
        let rejection = document_refused(&CimdError::Unreachable);
        assert_eq!(rejection.code, ErrorCode::InvalidClient);
        assert!(rejection.description.contains("could not be fetched"));
        assert!(!rejection.basic_challenge);
    }

    #[test]
    fn lock_out_is_a_throttled_unavailability() {
        let rejection = locked_out(30);
        assert_eq!(rejection.code, ErrorCode::TemporarilyUnavailable);
        assert!(
            rejection
                .description
                .contains("too many failed authentications")
        );
        assert_eq!(
            rejection.retry_after.map(|r| (r.secs, r.throttled)),
            Some((30, true))
        );
    }
}
