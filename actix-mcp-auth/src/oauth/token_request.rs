//! The token endpoint's decisions (OAuth 2.1 §3.2, §4.1.3, §4.3): which grant a request asks
//! for, whether an authorization code may be redeemed, what the store's verdicts mean to the
//! client, and when the new tokens expire.
//!
//! Codes are single-use: client, redirect URI, PKCE and resource are checked *before* the
//! code is consumed ([`check_redemption`]), so a wrong guess burns nothing and only an
//! otherwise valid replay revokes what the code issued (OAuth 2.1 §7.5.3).

use std::{fmt, time::Duration};

use url::Url;

use super::{
    error::{ErrorCode, Rejection},
    params::Params,
    pkce,
    resource::match_resource,
    scope,
    tokens::{CODE_PREFIX, REFRESH_TOKEN_PREFIX, has_shape},
};

/// A token request, after its grant type was checked against the client's registration.
#[derive(Debug, Clone)]
pub enum TokenRequest<'a> {
    /// `grant_type=authorization_code`.
    AuthorizationCode(CodeRedemption<'a>),
    /// `grant_type=refresh_token`.
    RefreshToken(RefreshRequest<'a>),
}

/// The parameters of an authorization-code redemption (`Debug` hides code and verifier).
#[derive(Clone)]
pub struct CodeRedemption<'a> {
    /// The code (shaped like one of ours).
    pub code: &'a str,
    /// The PKCE verifier.
    pub code_verifier: &'a str,
    /// `redirect_uri`, when sent.
    pub redirect_uri: Option<&'a str>,
    /// `resource`, when sent.
    pub resource: Option<&'a str>,
}

/// The parameters of a refresh (`Debug` hides the token).
#[derive(Clone)]
pub struct RefreshRequest<'a> {
    /// The refresh token (shaped like one of ours).
    pub refresh_token: &'a str,
    /// A narrower scope, when asked for (checked against the grant by the store).
    pub scopes: Option<Vec<String>>,
}

impl fmt::Debug for CodeRedemption<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeRedemption")
            .field("code", &"[redacted]")
            .field("code_verifier", &"[redacted]")
            .field("redirect_uri", &self.redirect_uri)
            .field("resource", &self.resource)
            .finish()
    }
}

impl fmt::Debug for RefreshRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshRequest")
            .field("refresh_token", &"[redacted]")
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// Reads a token request of a client that registered `client_grant_types` (client
/// authentication comes first).
pub fn parse<'a>(
    params: &'a Params,
    client_grant_types: &[String],
) -> Result<TokenRequest<'a>, Rejection> {
    let grant_type = params.require("grant_type")?;
    let registered = client_grant_types.iter().any(|g| g == grant_type);
    match grant_type {
        "authorization_code" | "refresh_token" if !registered => Err(Rejection::new(
            ErrorCode::UnauthorizedClient,
            "this client did not register this grant type",
        )),
        "authorization_code" => code_redemption(params).map(TokenRequest::AuthorizationCode),
        "refresh_token" => refresh_request(params).map(TokenRequest::RefreshToken),
        _ => Err(Rejection::new(
            ErrorCode::UnsupportedGrantType,
            "unsupported grant_type",
        )),
    }
}

fn code_redemption(params: &Params) -> Result<CodeRedemption<'_>, Rejection> {
    let code = params.require("code")?;
    let code_verifier = params.require("code_verifier")?;
    if !has_shape(code, CODE_PREFIX) {
        return Err(GrantFailure::UnknownCode.into());
    }
    Ok(CodeRedemption {
        code,
        code_verifier,
        redirect_uri: params.get("redirect_uri"),
        resource: params.get("resource"),
    })
}

fn refresh_request(params: &Params) -> Result<RefreshRequest<'_>, Rejection> {
    let refresh_token = params.require("refresh_token")?;
    if !has_shape(refresh_token, REFRESH_TOKEN_PREFIX) {
        return Err(Rejection::invalid_grant("unknown refresh token"));
    }
    let scopes = params
        .get("scope")
        .map(|s| {
            scope::parse(s)
                .ok_or_else(|| Rejection::new(ErrorCode::InvalidScope, "malformed scope"))
        })
        .transpose()?;
    Ok(RefreshRequest {
        refresh_token,
        scopes,
    })
}

/// What an unused authorization code was issued for, as stored.
#[derive(Debug, Clone, Copy)]
pub struct IssuedCode<'a> {
    /// The client it was issued to.
    pub client_id: &'a str,
    /// The redirect URI of its authorization request.
    pub redirect_uri: &'a str,
    /// Whether that request carried `redirect_uri` (then the token request must repeat it).
    pub redirect_uri_sent: bool,
    /// The PKCE challenge of that request.
    pub code_challenge: &'a str,
    /// The resource its grant is bound to.
    pub resource: Option<&'a str>,
}

/// Whether `client_id` may redeem `code` with `request` (RFC 6749 §4.1.3, RFC 7636 §4.6,
/// RFC 8707 §2.2): issued to this client, the same redirect URI (required when the
/// authorization request carried one), a verifier matching the challenge, and a resource (if
/// any) naming the grant's. `ours` is our resource URL.
pub fn check_redemption(
    code: &IssuedCode<'_>,
    client_id: &str,
    request: &CodeRedemption<'_>,
    ours: &Url,
) -> Result<(), Rejection> {
    if code.client_id != client_id {
        return Err(Rejection::invalid_grant("code issued to another client"));
    }
    match request.redirect_uri {
        Some(uri) if uri != code.redirect_uri => {
            return Err(Rejection::invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        None if code.redirect_uri_sent => {
            return Err(Rejection::invalid_grant(
                "redirect_uri is required: the authorization request carried one",
            ));
        }
        _ => {}
    }
    if !pkce::verify_s256(request.code_verifier, code.code_challenge) {
        return Err(Rejection::invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    if let Some(resource) = request.resource {
        match_resource(resource, ours)
            .ok()
            .filter(|r| Some(r.as_str()) == code.resource)
            .ok_or_else(|| {
                Rejection::new(
                    ErrorCode::InvalidTarget,
                    "resource does not match the grant",
                )
            })?;
    }
    Ok(())
}

/// What the store found that makes a grant fail, as the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantFailure {
    /// No such code (or it expired).
    UnknownCode,
    /// The code was already redeemed: its grant is revoked.
    CodeReplayed,
    /// The grant behind a code or refresh token was revoked meanwhile.
    GrantRevoked,
    /// No such refresh token, or it expired or was revoked.
    UnknownRefreshToken,
    /// The refresh token was already rotated: its grant is revoked.
    RefreshReplayed,
    /// The refresh asked for a scope the grant does not hold.
    ScopeExceedsGrant,
    /// The grant's upstream session can no longer be read: it was ended.
    GrantUnusable,
}

impl From<GrantFailure> for Rejection {
    fn from(failure: GrantFailure) -> Self {
        let description = match failure {
            GrantFailure::UnknownCode => "unknown or expired code",
            GrantFailure::CodeReplayed => "code already used",
            GrantFailure::GrantRevoked => "the authorization was revoked",
            GrantFailure::UnknownRefreshToken => "unknown, expired or revoked refresh token",
            GrantFailure::RefreshReplayed => "refresh token already used",
            GrantFailure::ScopeExceedsGrant => {
                return Self::new(
                    ErrorCode::InvalidScope,
                    "the requested scope exceeds the original grant",
                );
            }
            GrantFailure::GrantUnusable => "the authorization can no longer be used; log in again",
        };
        Self::invalid_grant(description)
    }
}

/// Lifetimes of the tokens we issue.
#[derive(Debug, Clone, Copy)]
pub struct TokenLifetimes {
    /// Access tokens.
    pub access: Duration,
    /// Refresh tokens (and so grants).
    pub refresh: Duration,
}

/// When tokens issued at `now` (unix seconds) expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiries {
    /// The access token.
    pub access: i64,
    /// The refresh token.
    pub refresh: i64,
}

impl TokenLifetimes {
    /// The expiries of tokens issued at `now`.
    pub fn expiries(&self, now: i64) -> Expiries {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2);
        Expiries {
            access: now.saturating_add(secs(self.access)),
            refresh: now.saturating_add(secs(self.refresh)),
        }
    }
}

/// Whether a client that registered `grant_types` gets refresh tokens.
pub fn issues_refresh_tokens(grant_types: &[String]) -> bool {
    grant_types.iter().any(|g| g == "refresh_token")
}

/// `expires_in` of an access token expiring at `expires_at`, answered at `now`.
pub fn expires_in(expires_at: i64, now: i64) -> i64 {
    (expires_at - now).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::testing::{Pairs, assert_rejected};

    const CODE: &str = "mcp_ac_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const REFRESH: &str = "mcp_rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    // RFC 7636 appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const RESOURCE: &str = "https://mcp.example/mcp";

    fn both() -> Vec<String> {
        vec!["authorization_code".into(), "refresh_token".into()]
    }

    #[test]
    fn a_code_request_is_read() {
        let params = Params::from_pairs(&[
            ("grant_type", "authorization_code"),
            ("code", CODE),
            ("code_verifier", VERIFIER),
            ("redirect_uri", "https://app.example/cb"),
        ]);
        let TokenRequest::AuthorizationCode(request) = parse(&params, &both()).unwrap() else {
            panic!("a code redemption");
        };
        assert_eq!((request.code, request.code_verifier), (CODE, VERIFIER));
        assert_eq!(request.redirect_uri, Some("https://app.example/cb"));
        assert_eq!(request.resource, None);
        // Debug output never shows the code or the verifier.
        let shown = format!("{request:?}");
        assert!(
            !shown.contains(CODE) && !shown.contains(VERIFIER),
            "{shown}"
        );
    }

    #[test]
    fn a_refresh_request_is_read() {
        let params = Params::from_pairs(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", REFRESH),
            ("scope", "a b a"),
        ]);
        let TokenRequest::RefreshToken(request) = parse(&params, &both()).unwrap() else {
            panic!("a refresh");
        };
        assert_eq!(request.refresh_token, REFRESH);
        assert_eq!(request.scopes, Some(vec!["a".into(), "b".into()]));
        assert!(!format!("{request:?}").contains(REFRESH));
    }

    #[test]
    fn every_refusal_of_a_token_request() {
        let code_only = vec!["authorization_code".to_owned()];
        let cases: &[(Pairs, &[String], ErrorCode, &str)] = &[
            (
                &[],
                &both(),
                ErrorCode::InvalidRequest,
                "missing parameter `grant_type`",
            ),
            (
                &[("grant_type", "password")],
                &both(),
                ErrorCode::UnsupportedGrantType,
                "unsupported grant_type",
            ),
            (
                &[("grant_type", "client_credentials")],
                &code_only,
                ErrorCode::UnsupportedGrantType,
                "unsupported grant_type",
            ),
            (
                &[("grant_type", "refresh_token"), ("refresh_token", REFRESH)],
                &code_only,
                ErrorCode::UnauthorizedClient,
                "did not register this grant type",
            ),
            (
                &[
                    ("grant_type", "authorization_code"),
                    ("code", CODE),
                    ("code_verifier", VERIFIER),
                ],
                &[],
                ErrorCode::UnauthorizedClient,
                "did not register this grant type",
            ),
            (
                &[
                    ("grant_type", "authorization_code"),
                    ("code_verifier", VERIFIER),
                ],
                &both(),
                ErrorCode::InvalidRequest,
                "missing parameter `code`",
            ),
            (
                &[("grant_type", "authorization_code"), ("code", CODE)],
                &both(),
                ErrorCode::InvalidRequest,
                "missing parameter `code_verifier`",
            ),
            (
                &[
                    ("grant_type", "authorization_code"),
                    ("code", "mcp_ac_short"),
                    ("code_verifier", VERIFIER),
                ],
                &both(),
                ErrorCode::InvalidGrant,
                "unknown or expired code",
            ),
            (
                &[
                    ("grant_type", "authorization_code"),
                    ("code", REFRESH),
                    ("code_verifier", VERIFIER),
                ],
                &both(),
                ErrorCode::InvalidGrant,
                "unknown or expired code",
            ),
            (
                &[("grant_type", "refresh_token")],
                &both(),
                ErrorCode::InvalidRequest,
                "missing parameter `refresh_token`",
            ),
            (
                &[("grant_type", "refresh_token"), ("refresh_token", CODE)],
                &both(),
                ErrorCode::InvalidGrant,
                "unknown refresh token",
            ),
            (
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", REFRESH),
                    ("scope", "a\"b"),
                ],
                &both(),
                ErrorCode::InvalidScope,
                "malformed scope",
            ),
        ];
        for (pairs, grant_types, code, words) in cases {
            let params = Params::from_pairs(pairs);
            assert_rejected(parse(&params, grant_types), *code, words);
        }
    }

    fn issued(redirect_uri_sent: bool) -> IssuedCode<'static> {
        IssuedCode {
            client_id: "c",
            redirect_uri: "https://app.example/cb",
            redirect_uri_sent,
            code_challenge: CHALLENGE,
            resource: Some(RESOURCE),
        }
    }

    fn redemption<'a>(redirect_uri: Option<&'a str>, verifier: &'a str) -> CodeRedemption<'a> {
        CodeRedemption {
            code: CODE,
            code_verifier: verifier,
            redirect_uri,
            resource: None,
        }
    }

    #[test]
    fn redemption_needs_client_redirect_uri_verifier_and_resource() {
        let ours = Url::parse(RESOURCE).unwrap();
        let uri = Some("https://app.example/cb");
        let check = |code: IssuedCode<'_>, client: &str, request: CodeRedemption<'_>| {
            check_redemption(&code, client, &request, &ours)
        };
        assert!(check(issued(true), "c", redemption(uri, VERIFIER)).is_ok());
        // Required only when the authorization request carried it.
        assert!(check(issued(false), "c", redemption(None, VERIFIER)).is_ok());
        let with_resource = |resource| CodeRedemption {
            resource: Some(resource),
            ..redemption(uri, VERIFIER)
        };
        assert!(check(issued(true), "c", with_resource("https://MCP.example/mcp/")).is_ok());

        let moved = Some("https://app.example/cb2");
        let wrong_verifier = "w".repeat(43);
        let cases = [
            (
                issued(true),
                "other",
                redemption(uri, VERIFIER),
                ErrorCode::InvalidGrant,
                "issued to another client",
            ),
            (
                issued(true),
                "c",
                redemption(uri, &wrong_verifier),
                ErrorCode::InvalidGrant,
                "code_verifier does not match",
            ),
            (
                issued(true),
                "c",
                redemption(uri, "short"),
                ErrorCode::InvalidGrant,
                "code_verifier does not match",
            ),
            (
                issued(true),
                "c",
                redemption(moved, VERIFIER),
                ErrorCode::InvalidGrant,
                "redirect_uri does not match",
            ),
            (
                issued(false),
                "c",
                redemption(moved, VERIFIER),
                ErrorCode::InvalidGrant,
                "redirect_uri does not match",
            ),
            (
                issued(true),
                "c",
                redemption(None, VERIFIER),
                ErrorCode::InvalidGrant,
                "redirect_uri is required",
            ),
            (
                issued(true),
                "c",
                with_resource("https://other.example/mcp"),
                ErrorCode::InvalidTarget,
                "resource does not match the grant",
            ),
            (
                issued(true),
                "c",
                with_resource("not a url"),
                ErrorCode::InvalidTarget,
                "resource does not match the grant",
            ),
            (
                IssuedCode {
                    resource: None,
                    ..issued(true)
                },
                "c",
                with_resource(RESOURCE),
                ErrorCode::InvalidTarget,
                "resource does not match the grant",
            ),
        ];
        for (code, client, request, error, words) in cases {
            assert_rejected(check(code, client, request), error, words);
        }
    }

    #[test]
    fn every_grant_failure() {
        let cases = [
            (
                GrantFailure::UnknownCode,
                ErrorCode::InvalidGrant,
                "unknown or expired code",
            ),
            (
                GrantFailure::CodeReplayed,
                ErrorCode::InvalidGrant,
                "code already used",
            ),
            (
                GrantFailure::GrantRevoked,
                ErrorCode::InvalidGrant,
                "authorization was revoked",
            ),
            (
                GrantFailure::UnknownRefreshToken,
                ErrorCode::InvalidGrant,
                "unknown, expired or revoked refresh token",
            ),
            (
                GrantFailure::RefreshReplayed,
                ErrorCode::InvalidGrant,
                "refresh token already used",
            ),
            (
                GrantFailure::ScopeExceedsGrant,
                ErrorCode::InvalidScope,
                "exceeds the original grant",
            ),
            (
                GrantFailure::GrantUnusable,
                ErrorCode::InvalidGrant,
                "log in again",
            ),
        ];
        for (failure, code, words) in cases {
            assert_rejected::<()>(Err(failure.into()), code, words);
        }
    }

    #[test]
    fn lifetimes_and_refresh_tokens() {
        let lifetimes = TokenLifetimes {
            access: Duration::from_secs(60),
            refresh: Duration::from_secs(3600),
        };
        assert_eq!(
            lifetimes.expiries(1000),
            Expiries {
                access: 1060,
                refresh: 4600
            }
        );
        let forever = TokenLifetimes {
            access: Duration::MAX,
            refresh: Duration::MAX,
        };
        assert!(forever.expiries(i64::MAX / 2).access > 0);
        assert!(issues_refresh_tokens(&both()));
        assert!(!issues_refresh_tokens(&["authorization_code".to_owned()]));
        assert_eq!(expires_in(1060, 1000), 60);
        assert_eq!(expires_in(1000, 1060), 0);
    }
}
