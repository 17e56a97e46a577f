//! The authorization endpoint's decisions (OAuth 2.1 §4.1.1, RFC 7636, RFC 8707).
//!
//! Order matters (RFC 6749 §4.1.2.1): until the client and its redirect URI are validated,
//! errors are shown on our own page and never redirected ([`PageError`]); afterwards they go
//! back to the client with `state` and `iss` ([`validate`]'s [`Rejection`]s).

use url::Url;

use super::{
    error::{ErrorCode, Rejection},
    params::Params,
    pkce::{self, S256},
    redirect_uri::matches_registered,
    resource::{self, ResourceError, match_resource},
    scope,
};

/// Why a request cannot even be answered by redirect: the client or its redirect URI is in
/// doubt, so the error is shown to the user instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageError {
    /// No `client_id`.
    NoClientId,
    /// The client is not registered (any more).
    UnknownClient,
    /// `redirect_uri` is not one the client registered.
    UnregisteredRedirectUri,
    /// No `redirect_uri`, and the client did not register exactly one usable URI.
    NoRedirectUri,
}

impl PageError {
    /// What the page says.
    pub fn message(self) -> &'static str {
        match self {
            Self::NoClientId => "The request has no client_id.",
            Self::UnknownClient => {
                "This client is not registered with this server. MCP clients register again \
                 automatically; reconnect the client."
            }
            Self::UnregisteredRedirectUri => "The redirect_uri is not registered for this client.",
            Self::NoRedirectUri => "The request has no redirect_uri.",
        }
    }
}

/// What the operator configured that authorization requests are checked against.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizePolicy<'a> {
    /// Scopes granted when neither the request nor the client names any.
    pub required_scopes: &'a [String],
    /// Scopes any client may ask for (its registered scope is only a default).
    pub supported_scopes: &'a [String],
    /// Our resource URL (RFC 8707).
    pub resource: &'a Url,
}

/// Where the answer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectTarget {
    /// The redirect URI.
    pub uri: String,
    /// Whether the request carried it (then the token request must repeat it).
    pub sent: bool,
}

/// What a valid request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The scopes to ask the user for.
    pub scopes: Vec<String>,
    /// Our canonical resource URL, which the grant is bound to.
    pub resource: String,
}

/// The request's `client_id`.
pub fn client_id(params: &Params) -> Result<&str, PageError> {
    params.get("client_id").ok_or(PageError::NoClientId)
}

/// The redirect URI to answer to: the one requested if the client registered it, else the
/// client's only URI (OAuth 2.1 §2.3.2: optional only when exactly one is registered, and it
/// passes today's checks: a registration stored before them may not).
pub fn redirect_target(
    params: &Params,
    registered: &[String],
) -> Result<RedirectTarget, PageError> {
    match params.get("redirect_uri") {
        Some(uri) if matches_registered(uri, registered) => Ok(RedirectTarget {
            uri: uri.to_owned(),
            sent: true,
        }),
        Some(_) => Err(PageError::UnregisteredRedirectUri),
        None if registered.len() == 1 && matches_registered(&registered[0], registered) => {
            Ok(RedirectTarget {
                uri: registered[0].clone(),
                sent: false,
            })
        }
        None => Err(PageError::NoRedirectUri),
    }
}

/// Validates the rest of a request whose client and redirect URI are known good;
/// `registered_scope` is the scope the client registered (space-separated), if any.
pub fn validate(
    params: &Params,
    registered_scope: Option<&str>,
    policy: &AuthorizePolicy<'_>,
) -> Result<AuthorizationRequest, Rejection> {
    match params.get("response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(Rejection::new(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
        None => return Err(Rejection::invalid_request("missing response_type")),
    }
    let code_challenge = params
        .get("code_challenge")
        .ok_or_else(|| Rejection::invalid_request("PKCE code_challenge is required"))?;
    if params.get("code_challenge_method") != Some(S256) {
        return Err(Rejection::invalid_request(
            "code_challenge_method must be S256",
        ));
    }
    if !pkce::is_valid_s256_challenge(code_challenge) {
        return Err(Rejection::invalid_request("malformed code_challenge"));
    }
    let scopes = requested_scopes(registered_scope, policy, params.get("scope"))?;
    let resource = match params.get("resource") {
        None => resource::canonical(policy.resource),
        Some(value) => match_resource(value, policy.resource).map_err(|e| {
            Rejection::new(
                ErrorCode::InvalidTarget,
                match e {
                    ResourceError::Malformed => "resource must be an absolute URI without fragment",
                    ResourceError::NotThisServer => "resource does not match this server",
                },
            )
        })?,
    };
    Ok(AuthorizationRequest {
        code_challenge: code_challenge.to_owned(),
        scopes,
        resource,
    })
}

/// The scopes of the request: as asked (each one supported by this server), or by default the
/// client's registered scopes, else the configured required scopes.
///
/// A registered `scope` is a default, not a bound: registration is open and self-asserted (a
/// client could as well have registered every scope), so bounding by it protects nothing, while
/// it would break MCP step-up. A client that registered with the scope of its first login must
/// be able to ask for more after a 403 `insufficient_scope` without registering again; the
/// user's consent is what guards each new scope.
fn requested_scopes(
    registered_scope: Option<&str>,
    policy: &AuthorizePolicy<'_>,
    requested: Option<&str>,
) -> Result<Vec<String>, Rejection> {
    let registered = registered_scope.and_then(scope::parse);
    let Some(requested) = requested else {
        return Ok(registered.unwrap_or_else(|| policy.required_scopes.to_vec()));
    };
    let scopes = scope::parse(requested)
        .ok_or_else(|| Rejection::new(ErrorCode::InvalidScope, "malformed scope"))?;
    let missing = scope::missing(&scopes, policy.supported_scopes);
    if !missing.is_empty() {
        return Err(Rejection::new(
            ErrorCode::InvalidScope,
            format!("scope not supported by this server: {}", missing.join(" ")),
        ));
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::testing::{Pairs, assert_rejected};

    // RFC 7636 appendix B.
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const RESOURCE: &str = "https://mcp.example/mcp";

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn request(extra: &[(&str, &str)]) -> Params {
        let mut pairs = vec![
            ("response_type", "code"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        for (name, value) in extra {
            pairs.retain(|(n, _)| n != name);
            if !value.is_empty() {
                pairs.push((name, value));
            }
        }
        Params::from_pairs(&pairs)
    }

    fn check(
        params: &Params,
        client_scope: Option<&str>,
    ) -> Result<AuthorizationRequest, Rejection> {
        let resource = Url::parse(RESOURCE).unwrap();
        let required = v(&["mcp"]);
        let supported = v(&["mcp", "offline_access"]);
        let policy = AuthorizePolicy {
            required_scopes: &required,
            supported_scopes: &supported,
            resource: &resource,
        };
        validate(params, client_scope, &policy)
    }

    #[test]
    fn a_valid_request_and_its_defaults() {
        let valid = check(&request(&[]), None).unwrap();
        assert_eq!(
            valid,
            AuthorizationRequest {
                code_challenge: CHALLENGE.into(),
                scopes: v(&["mcp"]),
                resource: RESOURCE.into(),
            }
        );
        // The client's registered scope is the default, not a bound (step-up asks for more).
        let registered = Some("mcp offline_access");
        assert_eq!(
            check(&request(&[]), registered).unwrap().scopes,
            v(&["mcp", "offline_access"])
        );
        let asked = request(&[
            ("scope", "offline_access"),
            ("resource", "https://MCP.example/mcp/"),
        ]);
        let valid = check(&asked, registered).unwrap();
        assert_eq!(valid.scopes, v(&["offline_access"]));
        assert_eq!(valid.resource, RESOURCE);
        // Stepping up beyond the registered scope: any supported scope may be asked for.
        let more = request(&[("scope", "mcp offline_access")]);
        assert_eq!(
            check(&more, Some("mcp")).unwrap().scopes,
            v(&["mcp", "offline_access"])
        );
    }

    #[test]
    fn every_error_redirected_to_the_client() {
        use ErrorCode::*;
        let cases: &[(Pairs, Option<&str>, ErrorCode, &str)] = &[
            (
                &[("response_type", "")],
                None,
                InvalidRequest,
                "missing response_type",
            ),
            (
                &[("response_type", "token")],
                None,
                UnsupportedResponseType,
                "only response_type=code",
            ),
            (
                &[("code_challenge", "")],
                None,
                InvalidRequest,
                "PKCE code_challenge is required",
            ),
            (
                &[("code_challenge_method", "")],
                None,
                InvalidRequest,
                "code_challenge_method must be S256",
            ),
            (
                &[("code_challenge_method", "plain")],
                None,
                InvalidRequest,
                "code_challenge_method must be S256",
            ),
            (
                &[("code_challenge", "short")],
                None,
                InvalidRequest,
                "malformed code_challenge",
            ),
            (&[("scope", "a\"b")], None, InvalidScope, "malformed scope"),
            (
                &[("scope", "mcp admin root")],
                None,
                InvalidScope,
                "scope not supported by this server: admin root",
            ),
            (
                &[("scope", "offline_access root")],
                Some("mcp"),
                InvalidScope,
                "scope not supported by this server: root",
            ),
            (
                &[("resource", "mcp")],
                None,
                InvalidTarget,
                "resource must be an absolute URI without fragment",
            ),
            (
                &[("resource", "https://mcp.example/mcp#x")],
                None,
                InvalidTarget,
                "without fragment",
            ),
            (
                &[("resource", "https://other.example/mcp")],
                None,
                InvalidTarget,
                "resource does not match this server",
            ),
        ];
        for (extra, client_scope, code, words) in cases {
            assert_rejected(check(&request(extra), *client_scope), *code, words);
        }
    }

    #[test]
    fn client_and_redirect_uri_errors_are_pages() {
        assert_eq!(client_id(&Params::default()), Err(PageError::NoClientId));
        assert_eq!(
            client_id(&Params::from_pairs(&[("client_id", "c")])),
            Ok("c")
        );
        let one = v(&["https://app.example/cb"]);
        let two = v(&["https://app.example/cb", "http://127.0.0.1:9/cb"]);
        let asked = |uri| Params::from_pairs(&[("redirect_uri", uri)]);
        assert_eq!(
            redirect_target(&asked("https://app.example/cb"), &two),
            Ok(RedirectTarget {
                uri: "https://app.example/cb".into(),
                sent: true
            })
        );
        // Any port on a loopback redirect URI (RFC 8252 §7.3).
        assert!(redirect_target(&asked("http://127.0.0.1:4000/cb"), &two).is_ok());
        assert_eq!(
            redirect_target(&Params::default(), &one),
            Ok(RedirectTarget {
                uri: "https://app.example/cb".into(),
                sent: false
            })
        );
        let cases = [
            (
                asked("https://app.example/other"),
                &one,
                PageError::UnregisteredRedirectUri,
            ),
            (
                asked("https://evil.example/cb"),
                &two,
                PageError::UnregisteredRedirectUri,
            ),
            (Params::default(), &two, PageError::NoRedirectUri),
            (Params::default(), &vec![], PageError::NoRedirectUri),
            // The only registered URI no longer passes today's checks.
            (
                Params::default(),
                &v(&["https://app.example/a b"]),
                PageError::NoRedirectUri,
            ),
        ];
        for (params, registered, error) in cases {
            assert_eq!(redirect_target(&params, registered), Err(error));
        }
        for error in [
            PageError::NoClientId,
            PageError::UnknownClient,
            PageError::UnregisteredRedirectUri,
            PageError::NoRedirectUri,
        ] {
            assert!(error.message().ends_with('.'), "{error:?}");
        }
        assert!(
            PageError::UnknownClient
                .message()
                .contains("not registered")
        );
    }
}
