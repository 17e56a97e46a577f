//! [`BearerAuth`]: the bearer check in front of the MCP endpoint.
//!
//! For each request: take the token from `Authorization: Bearer` (never from the query string),
//! verify it, check the required scopes, and put the [`Authenticated`] caller into the request
//! extensions. Refusals are RFC 6750 challenges pointing at the protected-resource metadata
//! (RFC 9728), which is how MCP clients discover where to log in.
//!
//! With a [`ScopePolicy`] (per-tool scopes), the request is classified after the token is
//! verified (see `scope_check`) and refused with 403 before the service sees it.

use std::{future::Ready, rc::Rc, sync::Arc};

use actix_web::{
    Error, HttpMessage, HttpResponse, ResponseError,
    body::EitherBody,
    dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready},
    http::{
        Method,
        header::{self, HeaderMap, HeaderValue},
    },
};
use futures_util::future::LocalBoxFuture;

use crate::{
    Authenticated, ScopePolicy,
    error::{BearerError, BearerErrorKind, Challenge},
    scope_check,
    verify::{TokenVerifier, VerifyError},
};

/// Longest `Authorization` header we look at. AuthKit tokens are about 1 KiB; anything far
/// larger is refused before any parsing or verification work.
const MAX_AUTHORIZATION_LEN: usize = 8 * 1024;

/// Middleware requiring a valid bearer token (and the configured scopes) on every request.
///
/// Usually obtained from a provider (`provider.bearer()`); it can also wrap any
/// [`TokenVerifier`]. It answers CORS preflight requests itself, so browser-based MCP clients
/// can send `Authorization`, and exposes `WWW-Authenticate` on refusals.
///
/// ```no_run
/// use actix_mcp_auth::AuthKitProvider;
/// use actix_web::{App, HttpResponse, web};
///
/// # fn app(provider: AuthKitProvider) {
/// let app = App::new().service(provider.routes()).service(
///     web::scope("/mcp")
///         .wrap(provider.bearer())
///         .route("", web::post().to(|| async { HttpResponse::Ok() })),
/// );
/// # }
/// ```
#[derive(Clone)]
pub struct BearerAuth {
    config: Config,
}

#[derive(Clone)]
struct Config {
    verifier: Arc<dyn TokenVerifier>,
    required_scopes: Vec<String>,
    challenge: Arc<Challenge>,
    preflight: bool,
    /// Per-request scopes; `None` leaves requests (and their bodies) untouched.
    policy: Option<ScopePolicy>,
}

impl BearerAuth {
    /// Wraps `verifier`, advertising `resource_metadata_url` in challenges.
    pub fn new(verifier: Arc<dyn TokenVerifier>, resource_metadata_url: impl Into<String>) -> Self {
        Self {
            config: Config {
                verifier,
                required_scopes: Vec::new(),
                challenge: Arc::new(Challenge {
                    resource_metadata: Some(resource_metadata_url.into()),
                    scope: None,
                }),
                preflight: true,
                policy: None,
            },
        }
    }

    /// Requires every one of `scopes` on the token (403 `insufficient_scope` otherwise); they are
    /// also announced in the 401 challenge.
    #[must_use]
    pub fn required_scopes(mut self, scopes: Vec<String>) -> Self {
        self.config.required_scopes = scopes;
        self.config.refresh_challenge();
        self
    }

    /// Enforces `policy` (per-method and per-tool scopes) on every request, after the token is
    /// verified and before the service runs: a token lacking a scope the request needs gets 403
    /// `insufficient_scope` naming every scope needed. The policy's default scopes are also
    /// announced in the 401 challenge. The request body is read (up to the policy's limit) when
    /// the decision depends on it, and handed on unchanged.
    #[must_use]
    pub fn tool_scopes(mut self, policy: ScopePolicy) -> Self {
        self.config.policy = Some(policy);
        self.config.refresh_challenge();
        self
    }

    /// Whether to answer CORS preflight (`OPTIONS` with `Access-Control-Request-Method`)
    /// requests without a token (default `true`). Turn off when an outer CORS middleware
    /// handles preflights.
    #[must_use]
    pub fn answer_preflight(mut self, enabled: bool) -> Self {
        self.config.preflight = enabled;
        self
    }
}

impl Config {
    /// The 401 challenge: the required scopes, then the policy's default ones.
    fn refresh_challenge(&mut self) {
        let mut scopes = self.required_scopes.clone();
        if let Some(policy) = &self.policy {
            for scope in policy.default_scopes() {
                if !scopes.contains(scope) {
                    scopes.push(scope.clone());
                }
            }
        }
        self.challenge = Arc::new(Challenge {
            resource_metadata: self.challenge.resource_metadata.clone(),
            scope: (!scopes.is_empty()).then(|| scopes.join(" ")),
        });
    }
}

impl<S, B> Transform<S, ServiceRequest> for BearerAuth
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = BearerAuthMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(BearerAuthMiddleware {
            service: Rc::new(service),
            config: Rc::new(self.config.clone()),
        }))
    }
}

/// The service produced by [`BearerAuth`].
pub struct BearerAuthMiddleware<S> {
    service: Rc<S>,
    config: Rc<Config>,
}

impl<S, B> Service<ServiceRequest> for BearerAuthMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        // The hot path: a token the verifier already holds, no per-request policy. Nothing is
        // awaited before the service, so the only future boxed is the service's own, mapped.
        if let Some(caller) = cached_caller(&self.config, &req) {
            req.extensions_mut().insert(caller);
            let response = self.service.call(req);
            return Box::pin(
                async move { response.await.map(ServiceResponse::map_into_left_body) },
            );
        }
        let service = self.service.clone();
        let config = self.config.clone();
        Box::pin(async move {
            if config.preflight && is_preflight(&req) {
                return Ok(req
                    .into_response(preflight_response())
                    .map_into_right_body());
            }
            let checked = match authenticate(&config, &req).await {
                Ok(caller) => match &config.policy {
                    None => Ok(caller),
                    Some(policy) => {
                        let base = &config.required_scopes;
                        let metadata = &config.challenge.resource_metadata;
                        scope_check::enforce(policy, base, metadata, &mut req, &caller)
                            .await?
                            .map(|()| caller)
                    }
                },
                Err(error) => Err(error.error_response()),
            };
            match checked {
                Ok(caller) => {
                    req.extensions_mut().insert(caller);
                    service.call(req).await.map(|res| res.map_into_left_body())
                }
                Err(mut response) => {
                    if req.headers().contains_key(header::ORIGIN) {
                        response.headers_mut().insert(
                            header::ACCESS_CONTROL_ALLOW_ORIGIN,
                            HeaderValue::from_static("*"),
                        );
                    }
                    Ok(req.into_response(response).map_into_right_body())
                }
            }
        })
    }
}

/// The caller of a request that may pass at once: not a preflight, no per-request policy, a
/// well-formed bearer token the verifier holds in its cache, every required scope. `None` sends
/// the request down the full path, which also produces every refusal.
fn cached_caller(config: &Config, req: &ServiceRequest) -> Option<Authenticated> {
    if config.policy.is_some() || (config.preflight && is_preflight(req)) {
        return None;
    }
    let token = bearer_token(req.headers()).ok()?;
    let caller = config.verifier.verify_cached(token)?;
    config
        .required_scopes
        .iter()
        .all(|scope| caller.has_scope(scope))
        .then_some(caller)
}

async fn authenticate(config: &Config, req: &ServiceRequest) -> Result<Authenticated, BearerError> {
    let fail = |kind, description| BearerError::new(kind, description, config.challenge.clone());
    let token = match bearer_token(req.headers()) {
        Ok(token) => token,
        Err(kind) => {
            let description = match kind {
                BearerErrorKind::MissingToken => "authentication required",
                _ => "malformed Authorization header",
            };
            return Err(fail(kind, description));
        }
    };
    let cached = config.verifier.verify_cached(token);
    let caller = match cached {
        Some(caller) => Ok(caller),
        None => config.verifier.verify(token).await,
    }
    .map_err(|error| match error {
        VerifyError::Invalid(reason) => {
            tracing::debug!(reason, "bearer token refused");
            fail(BearerErrorKind::InvalidToken, reason)
        }
        VerifyError::Unavailable => fail(
            BearerErrorKind::Unavailable,
            "the token cannot be checked right now; retry later",
        ),
    })?;
    // With a policy, the required scopes are checked with the request's own (one challenge
    // listing everything the request needs).
    if config.policy.is_some() {
        return Ok(caller);
    }
    if let Some(missing) = config
        .required_scopes
        .iter()
        .find(|scope| !caller.has_scope(scope))
    {
        tracing::debug!(scope = %missing, "bearer token lacks a required scope");
        return Err(fail(
            BearerErrorKind::InsufficientScope,
            "the token lacks a required scope",
        ));
    }
    Ok(caller)
}

/// The token of the one `Authorization: Bearer` header.
///
/// No header, another scheme, or `Bearer` with nothing but whitespace after it is "no
/// credentials" (401 without `error`, so the client starts discovery). Two headers, an
/// oversized one, or a token that is not RFC 6750 `b64token` syntax is a malformed request.
fn bearer_token(headers: &HeaderMap) -> Result<&str, BearerErrorKind> {
    let mut values = headers.get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Err(BearerErrorKind::MissingToken);
    };
    if values.next().is_some() || value.len() > MAX_AUTHORIZATION_LEN {
        return Err(BearerErrorKind::InvalidRequest);
    }
    // What `HeaderValue::to_str` accepts (visible ASCII and tab), checked without branching
    // per byte: this runs over the whole ~1 KiB header on every request.
    let bytes = value.as_bytes();
    if !bytes.iter().fold(true, |ok, &b| {
        ok & ((b' '..=b'~').contains(&b) | (b == b'\t'))
    }) {
        return Err(BearerErrorKind::InvalidRequest);
    }
    let value = std::str::from_utf8(bytes).map_err(|_| BearerErrorKind::InvalidRequest)?;
    let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerErrorKind::MissingToken);
    }
    let token = rest.trim_matches([' ', '\t']);
    if token.is_empty() {
        return Err(BearerErrorKind::MissingToken);
    }
    if !is_b64token(token) {
        return Err(BearerErrorKind::InvalidRequest);
    }
    Ok(token)
}

/// RFC 6750 §2.1: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    // A fold rather than `all`: no early exit, so the compiler checks many bytes at once (SIMD;
    // about 2 instructions per byte instead of 13).
    !body.is_empty() && body.bytes().fold(true, |ok, b| ok & is_b64token_byte(b))
}

/// One byte of RFC 6750's `b64token` (before the `=` padding), without branches.
fn is_b64token_byte(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    // `-`, `.` and `/` are 0x2d..=0x2f.
    let punctuation = b.wrapping_sub(b'-') < 3;
    letter | digit | punctuation | (b == b'_') | (b == b'~') | (b == b'+')
}

fn is_preflight(req: &ServiceRequest) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn preflight_response() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "GET, POST, DELETE, OPTIONS",
        ))
        // Mcp-Method and Mcp-Name: the request headers of MCP 2026-07-28 (SEP-2243).
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Authorization, Content-Type, Accept, Mcp-Protocol-Version, Mcp-Session-Id, \
             Last-Event-ID, Mcp-Method, Mcp-Name",
        ))
        .insert_header((
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            "WWW-Authenticate, Mcp-Session-Id",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
        .finish()
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderName;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(
                HeaderName::from_static("authorization"),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert_eq!(
            bearer_token(&headers(&["bearer abc.def"])).unwrap(),
            "abc.def"
        );
        assert_eq!(bearer_token(&headers(&["BEARER abc"])).unwrap(), "abc");
    }

    #[test]
    fn no_header_or_other_scheme_is_missing() {
        assert_eq!(
            bearer_token(&headers(&[])).unwrap_err(),
            BearerErrorKind::MissingToken
        );
        assert_eq!(
            bearer_token(&headers(&["Basic dXNlcjpwYXNz"])).unwrap_err(),
            BearerErrorKind::MissingToken
        );
    }

    #[test]
    fn bearer_without_a_token_is_missing_credentials() {
        for empty in ["Bearer", "Bearer ", "bearer    ", "Bearer \t ", "Bearer\t"] {
            assert_eq!(
                bearer_token(&headers(&[empty])).unwrap_err(),
                BearerErrorKind::MissingToken,
                "{empty:?}"
            );
        }
    }

    #[test]
    fn malformed_headers_are_invalid_requests() {
        for bad in [
            vec!["Bearer a b"],
            vec!["Bearer a\"b"],
            vec!["Bearer ="],
            vec!["Bearer a", "Bearer b"],
        ] {
            assert_eq!(
                bearer_token(&headers(&bad)).unwrap_err(),
                BearerErrorKind::InvalidRequest,
                "{bad:?}"
            );
        }
        let huge = format!("Bearer {}", "a".repeat(MAX_AUTHORIZATION_LEN));
        assert_eq!(
            bearer_token(&headers(&[&huge])).unwrap_err(),
            BearerErrorKind::InvalidRequest
        );
    }

    #[test]
    fn b64token_allows_padding_only_at_the_end() {
        assert!(is_b64token("abc-._~+/=="));
        assert!(!is_b64token("a=b"));
        assert!(!is_b64token("=="));
    }

    #[test]
    fn b64token_bytes_are_exactly_rfc_6750s() {
        for b in 0..=u8::MAX {
            let rfc = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(is_b64token_byte(b), rfc, "byte {b:#04x}");
        }
    }

    #[test]
    fn non_ascii_headers_are_invalid_requests() {
        // obs-text (0x80..) is a legal header byte but no token: refused like `to_str` did.
        for raw in [
            &b"Bearer abc\xff"[..],
            b"Bearer \xe9t\xe9",
            b"B\xe9arer abc",
        ] {
            let mut map = HeaderMap::new();
            map.insert(
                HeaderName::from_static("authorization"),
                HeaderValue::from_bytes(raw).unwrap(),
            );
            assert_eq!(
                bearer_token(&map).unwrap_err(),
                BearerErrorKind::InvalidRequest,
                "{raw:?}"
            );
        }
        assert_eq!(bearer_token(&headers(&["Bearer\tabc"])).unwrap(), "abc");
    }
}

#[cfg(test)]
mod properties {
    use actix_web::http::header::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    use super::*;

    /// The parser before it skipped `to_str`, the allocation and the per-byte branches: the
    /// reference the current one must agree with on every header.
    fn reference_bearer_token(headers: &HeaderMap) -> Result<String, BearerErrorKind> {
        let mut values = headers.get_all(header::AUTHORIZATION);
        let Some(value) = values.next() else {
            return Err(BearerErrorKind::MissingToken);
        };
        if values.next().is_some() || value.len() > MAX_AUTHORIZATION_LEN {
            return Err(BearerErrorKind::InvalidRequest);
        }
        let value = value
            .to_str()
            .map_err(|_| BearerErrorKind::InvalidRequest)?;
        let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(BearerErrorKind::MissingToken);
        }
        let token = rest.trim_matches([' ', '\t']);
        if token.is_empty() {
            return Err(BearerErrorKind::MissingToken);
        }
        let body = token.trim_end_matches('=');
        if body.is_empty()
            || !body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        {
            return Err(BearerErrorKind::InvalidRequest);
        }
        Ok(token.to_owned())
    }

    proptest! {
        #[test]
        fn parsing_agrees_with_the_reference(
            scheme in prop_oneof![
                Just("Bearer".to_owned()),
                Just("bearer".to_owned()),
                Just("Basic".to_owned()),
                "[ -~]{0,8}",
            ],
            separator in prop_oneof![Just(" "), Just("\t"), Just("  "), Just("")],
            token in prop_oneof![
                "[A-Za-z0-9._~+/-]{1,64}={0,2}",
                proptest::collection::vec(any::<u8>(), 0..64)
                    .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
            ],
            trailer in prop_oneof![Just(""), Just(" "), Just("\t"), Just("\u{e9}")],
        ) {
            let value = format!("{scheme}{separator}{token}{trailer}");
            if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                let mut headers = HeaderMap::new();
                headers.insert(HeaderName::from_static("authorization"), value);
                prop_assert_eq!(
                    bearer_token(&headers).map(str::to_owned),
                    reference_bearer_token(&headers)
                );
            }
        }

        #[test]
        fn authorization_parsing_never_panics(value in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                let mut headers = HeaderMap::new();
                headers.insert(HeaderName::from_static("authorization"), value);
                if let Ok(token) = bearer_token(&headers) {
                    prop_assert!(is_b64token(token));
                    prop_assert!(token.len() <= MAX_AUTHORIZATION_LEN);
                }
            }
        }
    }
}
