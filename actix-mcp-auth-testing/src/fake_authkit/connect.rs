//! The OAuth endpoints of AuthKit: `/oauth2/authorize` and `/oauth2/token`, for confidential
//! Connect OAuth applications registered with [`FakeAuthKit::register_connect_app`] and for
//! clients registered dynamically at `/oauth2/register` (the `dcr` module).
//!
//! The authorization endpoint has no UI: it signs in the current user at once (reusing their
//! sign-in session, as AuthKit's session cookie would) and redirects back with a single-use
//! code. The token endpoint exchanges codes (with PKCE S256) and rotating, single-use refresh
//! tokens. Every error is an RFC 6749 JSON error (or error redirect); nothing here panics on
//! request input.
//!
//! Both kinds of client are one [`ClientRecord`] and share every code path. A dynamically
//! registered client (an MCP client) differs in a few rules, all keyed on
//! [`ClientRecord::registration`]: it may be public (no secret, PKCE S256 required), `scope`
//! and `nonce` are optional at the authorization endpoint (OAuth 2.1 rather than OpenID
//! Connect), and its `resource` parameter is honoured as a resource indicator (RFC 8707): the
//! access tokens' `aud` is the resource instead of the client id.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Header};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use url::{Url, form_urlencoded};

use super::{DEFAULT_SUB, Endpoint, FakeAuthKit, ServerCtx, Shared, lock, ulid_like};

/// How long an authorization code may be exchanged.
const CODE_TTL: Duration = Duration::from_secs(600);
const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(300);
/// The scopes AuthKit knows; `offline_access` yields a refresh token, `openid` an ID token.
pub(super) const SUPPORTED_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];
/// The scopes of an authorization request without `scope` from a dynamically registered client
/// that registered none: everything, so MCP clients get a refresh token.
const DEFAULT_REGISTERED_SCOPES: [&str; 4] = SUPPORTED_SCOPES;
const REDACTED: &str = "[redacted]";
/// The length of a base64url-encoded SHA-256 digest: every S256 code challenge has it.
const S256_CHALLENGE_LEN: usize = 43;

/// Profile fields copied into access tokens as AuthKit puts them there: the organization the
/// user signed in to, their role(s) and permissions in it.
const ORGANIZATION_CLAIMS: [&str; 4] = ["org_id", "role", "roles", "permissions"];

const AUTHORIZE_METHODS: &[Method] = &[Method::GET];
const TOKEN_METHODS: &[Method] = &[Method::POST];

impl FakeAuthKit {
    /// Registers a confidential Connect OAuth app: client id, secret, allowed redirect URIs
    /// (exact match).
    ///
    /// The app authenticates at the token endpoint with `client_secret_post` or
    /// `client_secret_basic`. Registering the same `client_id` again replaces the app.
    ///
    /// # Panics
    ///
    /// If a redirect URI is not an absolute URL or has a fragment (RFC 6749 §3.1.2).
    pub fn register_connect_app(
        &self,
        client_id: &str,
        client_secret: &str,
        redirect_uris: &[&str],
    ) {
        for uri in redirect_uris {
            match Url::parse(uri) {
                Ok(url) if url.fragment().is_none() => {}
                _ => panic!(
                    "FakeAuthKit::register_connect_app: {uri:?} is not an absolute redirect URI without a fragment"
                ),
            }
        }
        let app = ClientRecord {
            secret: Some(client_secret.to_owned()),
            redirect_uris: redirect_uris.iter().map(|uri| (*uri).to_owned()).collect(),
            registration: None,
        };
        lock(&self.inner.shared.connect)
            .apps
            .insert(client_id.to_owned(), app);
    }

    /// Who is "logged in" at AuthKit for subsequent /oauth2/authorize calls (default
    /// "user_01TEST").
    ///
    /// Their profile (see [`set_user`](Self::set_user)) provides the `email` (and
    /// `email_verified`) of ID tokens and the optional `org_id`, `role` (a string), `roles` and
    /// `permissions` (arrays of strings) of access tokens, as AuthKit issues them to a user
    /// signed in to an organization:
    ///
    /// ```
    /// # use actix_mcp_auth_testing::FakeAuthKit;
    /// # use serde_json::json;
    /// let fake = FakeAuthKit::start();
    /// fake.set_user("user_alice", json!({
    ///     "email": "alice@example.com",
    ///     "org_id": "org_01ACME",
    ///     "role": "admin",
    ///     "roles": ["admin"],
    ///     "permissions": ["docs:read", "docs:write"],
    /// }));
    /// fake.set_current_user("user_alice");
    /// ```
    pub fn set_current_user(&self, sub: &str) {
        lock(&self.inner.shared.connect).current_user = sub.to_owned();
    }

    /// Next authorize calls answer error=access_denied (true) or succeed (false).
    ///
    /// This stands for the user refusing consent: valid requests are redirected back with
    /// `error=access_denied` (and their `state`); invalid ones still get their own error.
    pub fn set_deny_authorization(&self, deny: bool) {
        lock(&self.inner.shared.connect).deny = deny;
    }

    /// Lifetime of issued access tokens (default 300 s).
    ///
    /// Counted in whole seconds (`expires_in`, and `exp` - `iat` in the token); it applies to
    /// the tokens issued afterwards, and to ID tokens too.
    pub fn set_access_token_ttl(&self, ttl: Duration) {
        lock(&self.inner.shared.connect).access_token_ttl = ttl;
    }

    /// The parameters of the last /oauth2/authorize request (so tests can check nonce, state,
    /// PKCE, redirect_uri, scope, resource).
    ///
    /// Recorded for every request the endpoint handles, valid or not (not for those answered
    /// with an injected failure). A repeated parameter keeps its last value.
    pub fn last_authorize_params(&self) -> Option<BTreeMap<String, String>> {
        lock(&self.inner.shared.connect).last_authorize.clone()
    }

    /// The parameters of the last /oauth2/token request, with client_secret redacted to
    /// `"[redacted]"` if present.
    ///
    /// These are the form parameters of the body, recorded like
    /// [`last_authorize_params`](Self::last_authorize_params); credentials sent in the
    /// `Authorization` header are not included.
    pub fn last_token_params(&self) -> Option<BTreeMap<String, String>> {
        lock(&self.inner.shared.connect).last_token.clone()
    }

    /// All access tokens this fake has issued (so tests can assert none of them ever reaches an
    /// MCP client).
    ///
    /// Only those of the token endpoint, oldest first; tokens made with [`mint`](Self::mint)
    /// are not listed.
    pub fn issued_access_tokens(&self) -> Vec<String> {
        lock(&self.inner.shared.connect).issued_access.clone()
    }

    /// All refresh tokens issued so far.
    ///
    /// Oldest first, including the ones already used (refresh tokens are single-use).
    pub fn issued_refresh_tokens(&self) -> Vec<String> {
        lock(&self.inner.shared.connect).issued_refresh.clone()
    }
}

/// The state of the OAuth endpoints, in [`Shared`].
pub(super) struct ConnectState {
    /// Every client, Connect application or dynamically registered, by client id.
    apps: HashMap<String, ClientRecord>,
    /// The ids of the dynamically registered clients, oldest first.
    registered: Vec<String>,
    current_user: String,
    deny: bool,
    access_token_ttl: Duration,
    /// Unused authorization codes.
    codes: HashMap<String, PendingCode>,
    /// Unused refresh tokens.
    refresh_tokens: HashMap<String, Grant>,
    /// Every sign-in session, by `sid`.
    sessions: HashMap<String, Session>,
    /// The live session of each subject (what AuthKit's session cookie stands for).
    signed_in: HashMap<String, String>,
    last_authorize: Option<BTreeMap<String, String>>,
    last_token: Option<BTreeMap<String, String>>,
    issued_access: Vec<String>,
    issued_refresh: Vec<String>,
}

/// A client of the OAuth endpoints: a Connect application, or a client registered at
/// `/oauth2/register`.
pub(super) struct ClientRecord {
    /// The client secret; `None` for a public client (`token_endpoint_auth_method` `none`),
    /// which authenticates with its `client_id` alone and must use PKCE.
    pub(super) secret: Option<String>,
    /// The redirect URIs, matched exactly.
    pub(super) redirect_uris: Vec<String>,
    /// The rules of a dynamically registered client; `None` for a Connect application.
    pub(super) registration: Option<Registration>,
}

impl ClientRecord {
    fn is_public(&self) -> bool {
        self.secret.is_none()
    }

    /// Whether refresh tokens may be issued to the client (Connect applications: always).
    fn may_refresh(&self) -> bool {
        self.registration
            .as_ref()
            .is_none_or(|registration| registration.refresh)
    }
}

/// What a dynamically registered client asked for at registration.
#[derive(Clone)]
pub(super) struct Registration {
    /// The registered `scope`: the scopes granted when a request has none, and the most a
    /// request may ask for. `None`: [`DEFAULT_REGISTERED_SCOPES`], and any known scope.
    pub(super) scope: Option<Vec<String>>,
    /// Whether `refresh_token` is among the registered `grant_types`.
    pub(super) refresh: bool,
}

impl Registration {
    fn default_scopes(&self) -> Vec<String> {
        self.scope.clone().unwrap_or_else(|| {
            DEFAULT_REGISTERED_SCOPES
                .iter()
                .map(|scope| (*scope).to_owned())
                .collect()
        })
    }
}

/// What the user granted a client: carried by an authorization code, then by each refresh
/// token of the chain.
#[derive(Clone)]
struct Grant {
    client_id: String,
    sub: String,
    sid: String,
    scopes: Vec<String>,
    /// The resource indicator of the authorization request (dynamically registered clients
    /// only): the `aud` of the access tokens, instead of the client id.
    resource: Option<String>,
}

struct PendingCode {
    grant: Grant,
    redirect_uri: String,
    code_challenge: Option<String>,
    nonce: Option<String>,
    expires_at: Instant,
}

struct Session {
    sub: String,
    revoked: bool,
}

impl ConnectState {
    pub(super) fn new() -> ConnectState {
        ConnectState {
            apps: HashMap::new(),
            registered: Vec::new(),
            current_user: DEFAULT_SUB.to_owned(),
            deny: false,
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
            sessions: HashMap::new(),
            signed_in: HashMap::new(),
            last_authorize: None,
            last_token: None,
            issued_access: Vec::new(),
            issued_refresh: Vec::new(),
        }
    }

    /// Adds a dynamically registered client under a fresh id.
    pub(super) fn add_registered_client(&mut self, client_id: String, client: ClientRecord) {
        self.registered.push(client_id.clone());
        self.apps.insert(client_id, client);
    }

    /// The ids of the dynamically registered clients, oldest first.
    pub(super) fn registered_client_ids(&self) -> Vec<String> {
        self.registered.clone()
    }

    /// Ends every session of `sub`; the next authorization signs in afresh.
    pub(super) fn revoke_sessions_of(&mut self, sub: &str) {
        for session in self.sessions.values_mut().filter(|s| s.sub == sub) {
            session.revoked = true;
        }
        self.signed_in.remove(sub);
    }

    /// `Some(alive)` when `sid` is a session this emulator started for `sub`, `None` when it
    /// knows no such session.
    pub(super) fn session_alive(&self, sid: &str, sub: &str) -> Option<bool> {
        self.sessions
            .get(sid)
            .filter(|session| session.sub == sub)
            .map(|session| !session.revoked)
    }

    fn session_revoked(&self, sid: &str) -> bool {
        self.sessions.get(sid).is_none_or(|session| session.revoked)
    }

    /// The live session of `sub`, started now if there is none.
    fn sign_in(&mut self, sub: &str) -> String {
        if let Some(sid) = self.signed_in.get(sub) {
            return sid.clone();
        }
        let sid = format!("session_{}", ulid_like());
        self.sessions.insert(
            sid.clone(),
            Session {
                sub: sub.to_owned(),
                revoked: false,
            },
        );
        self.signed_in.insert(sub.to_owned(), sid.clone());
        sid
    }
}

/// Request parameters in order of appearance, as RFC 6749 reads them: a parameter without a
/// value counts as absent, and none may be repeated.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(input: &[u8]) -> Params {
        Params(form_urlencoded::parse(input).into_owned().collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// The first parameter that appears more than once with a value.
    fn repeated(&self) -> Option<&str> {
        self.0.iter().enumerate().find_map(|(index, (key, value))| {
            let again = self.0[index + 1..]
                .iter()
                .any(|(other, other_value)| other == key && !other_value.is_empty());
            (!value.is_empty() && again).then_some(key.as_str())
        })
    }

    fn is_repeated(&self, name: &str) -> bool {
        self.0
            .iter()
            .filter(|(key, value)| key == name && !value.is_empty())
            .count()
            > 1
    }

    fn record(&self, redact: &[&str]) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(key, value)| {
                let value = if redact.contains(&key.as_str()) {
                    REDACTED.to_owned()
                } else {
                    value.clone()
                };
                (key.clone(), value)
            })
            .collect()
    }
}

/// `GET /oauth2/authorize`.
pub(super) async fn authorize(req: HttpRequest, ctx: web::Data<ServerCtx>) -> HttpResponse {
    if let Err(response) = ctx
        .admit(&req, Endpoint::Authorize, AUTHORIZE_METHODS)
        .await
    {
        return response;
    }
    let params = Params::parse(req.query_string().as_bytes());
    let mut state = lock(&ctx.shared.connect);
    state.last_authorize = Some(params.record(&[]));
    match state.authorize(&params) {
        Ok(target) | Err(Refusal::Redirect(target)) => found(&target),
        Err(Refusal::Page(error, description)) => HttpResponse::BadRequest()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(error_body(error, &description)),
    }
}

/// Why the authorization endpoint refuses a request.
enum Refusal {
    /// An error shown to the user (400 JSON), for requests that must not be redirected.
    Page(&'static str, String),
    /// An error sent back to the client: the redirect URI with `error` in its query.
    Redirect(Url),
}

impl Refusal {
    fn page(error: &'static str, description: &str) -> Refusal {
        Refusal::Page(error, description.to_owned())
    }
}

impl ConnectState {
    /// Answers an authorization request: the redirect URI with a code. Errors about the
    /// client or its redirect URI are shown (400, never redirected); the others are sent to
    /// the redirect URI.
    fn authorize(&mut self, params: &Params) -> Result<Url, Refusal> {
        for name in ["client_id", "redirect_uri"] {
            if params.is_repeated(name) {
                return Err(Refusal::page(
                    "invalid_request",
                    &format!("{name} is repeated"),
                ));
            }
        }
        let client_id = params
            .get("client_id")
            .ok_or_else(|| Refusal::page("invalid_request", "client_id is missing"))?;
        let app = self
            .apps
            .get(client_id)
            .ok_or_else(|| Refusal::page("invalid_client", "unknown client_id"))?;
        let redirect_uri = params
            .get("redirect_uri")
            .ok_or_else(|| Refusal::page("invalid_request", "redirect_uri is missing"))?;
        if !app.redirect_uris.iter().any(|uri| uri == redirect_uri) {
            return Err(Refusal::page(
                "invalid_request",
                "redirect_uri is not registered for this client",
            ));
        }
        let public = app.is_public();
        let registration = app.registration.clone();
        let target = Url::parse(redirect_uri)
            .map_err(|_| Refusal::page("invalid_request", "redirect_uri is not a URL"))?;

        let state = params.get("state");
        let fail = |error: &str, description: &str| {
            let mut pairs = vec![("error", error), ("error_description", description)];
            pairs.extend(state.map(|state| ("state", state)));
            Refusal::Redirect(redirect(target.clone(), &pairs))
        };
        if let Some(name) = params.repeated() {
            return Err(fail("invalid_request", &format!("{name} is repeated")));
        }
        match params.get("response_type") {
            None => return Err(fail("invalid_request", "response_type is missing")),
            Some("code") => {}
            Some(_) => {
                return Err(fail(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                ));
            }
        }
        let scopes = match (params.get("scope"), &registration) {
            (Some(scope), _) => parse_scope(scope)
                .ok_or_else(|| fail("invalid_scope", "scope has an unknown value"))?,
            (None, Some(registration)) => registration.default_scopes(),
            (None, None) => return Err(fail("invalid_request", "scope is missing")),
        };
        if scopes.is_empty() {
            return Err(fail("invalid_request", "scope is missing"));
        }
        let registered_scope = registration
            .as_ref()
            .and_then(|registration| registration.scope.as_ref());
        if let Some(allowed) = registered_scope
            && !scopes.iter().all(|scope| allowed.contains(scope))
        {
            return Err(fail("invalid_scope", "scope exceeds the registered scope"));
        }
        // OpenID Connect requires a nonce of Connect applications; MCP clients speak OAuth 2.1.
        let nonce = params.get("nonce");
        if nonce.is_none() && registration.is_none() {
            return Err(fail("invalid_request", "nonce is missing"));
        }
        let code_challenge = match (
            params.get("code_challenge"),
            params.get("code_challenge_method"),
        ) {
            (None, None) => None,
            (Some(challenge), Some("S256")) if is_s256_challenge(challenge) => Some(challenge),
            (Some(_), Some("S256")) => {
                return Err(fail("invalid_request", "code_challenge is malformed"));
            }
            (None, Some(_)) => {
                return Err(fail("invalid_request", "code_challenge is missing"));
            }
            (_, _) => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method must be S256",
                ));
            }
        };
        if public && code_challenge.is_none() {
            return Err(fail(
                "invalid_request",
                "a public client must use PKCE (code_challenge with S256)",
            ));
        }
        if let Some(resource) = params.get("resource") {
            match Url::parse(resource) {
                Ok(url) if url.fragment().is_none() => {}
                _ => {
                    return Err(fail(
                        "invalid_target",
                        "resource must be an absolute URI without a fragment",
                    ));
                }
            }
        }
        if self.deny {
            return Err(fail("access_denied", "the user denied the request"));
        }

        let now = Instant::now();
        self.codes.retain(|_, pending| pending.expires_at > now);
        let sub = self.current_user.clone();
        let grant = Grant {
            client_id: client_id.to_owned(),
            sid: self.sign_in(&sub),
            sub,
            scopes,
            // Only dynamically registered clients have their resource indicator honoured.
            resource: registration.and(params.get("resource")).map(str::to_owned),
        };
        let code = random_token();
        self.codes.insert(
            code.clone(),
            PendingCode {
                grant,
                redirect_uri: redirect_uri.to_owned(),
                code_challenge: code_challenge.map(str::to_owned),
                nonce: nonce.map(str::to_owned),
                expires_at: now + CODE_TTL,
            },
        );
        let mut pairs = vec![("code", code.as_str())];
        pairs.extend(state.map(|state| ("state", state)));
        Ok(redirect(target, &pairs))
    }
}

/// `POST /oauth2/token`.
pub(super) async fn token(
    req: HttpRequest,
    body: web::Bytes,
    ctx: web::Data<ServerCtx>,
) -> HttpResponse {
    if let Err(response) = ctx.admit(&req, Endpoint::Token, TOKEN_METHODS).await {
        return response;
    }
    let params = Params::parse(&body);
    let result = {
        let mut state = lock(&ctx.shared.connect);
        state.last_token = Some(params.record(&["client_secret"]));
        state.exchange(&req, &params, &ctx.shared)
    };
    let mut response = match result {
        Ok(body) => HttpResponse::Ok().json(body),
        Err(error) => error.response(),
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(header::PRAGMA, header::HeaderValue::from_static("no-cache"));
    response
}

/// An error of the token endpoint (RFC 6749 §5.2).
struct TokenError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// The client tried to authenticate with the `Authorization` header.
    basic_challenge: bool,
}

impl TokenError {
    fn new(error: &'static str, description: impl Into<String>) -> TokenError {
        TokenError {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }

    fn invalid_client(description: &str, basic_challenge: bool) -> TokenError {
        TokenError {
            status: StatusCode::UNAUTHORIZED,
            basic_challenge,
            ..TokenError::new("invalid_client", description)
        }
    }

    fn response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.basic_challenge {
            response.insert_header((header::WWW_AUTHENTICATE, r#"Basic realm="AuthKit""#));
        }
        response.json(error_body(self.error, &self.description))
    }
}

/// Client credentials from the `Authorization: Basic` header, when one is sent.
enum BasicCredentials {
    Absent,
    Malformed,
    Present(String, String),
}

impl BasicCredentials {
    fn from_request(req: &HttpRequest) -> BasicCredentials {
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return BasicCredentials::Absent;
        };
        let decoded = value
            .to_str()
            .ok()
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, encoded)| STANDARD.decode(encoded.trim()).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let Some((id, secret)) = decoded.as_deref().and_then(|pair| pair.split_once(':')) else {
            return BasicCredentials::Malformed;
        };
        // RFC 6749 §2.3.1: both halves are form-urlencoded before being joined.
        BasicCredentials::Present(form_decode(id), form_decode(secret))
    }
}

impl ConnectState {
    fn exchange(
        &mut self,
        req: &HttpRequest,
        params: &Params,
        shared: &Shared,
    ) -> Result<Value, TokenError> {
        let form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| {
                mime.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form {
            return Err(TokenError::new(
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        if let Some(name) = params.repeated() {
            return Err(TokenError::new(
                "invalid_request",
                format!("{name} is repeated"),
            ));
        }
        let client_id = self.authenticate_client(req, params)?;
        let may_refresh = self
            .apps
            .get(&client_id)
            .is_some_and(ClientRecord::may_refresh);
        match params.get("grant_type") {
            None => Err(TokenError::new("invalid_request", "grant_type is missing")),
            Some("authorization_code") => self.redeem_code(&client_id, params, shared),
            Some("refresh_token") if !may_refresh => Err(TokenError::new(
                "unauthorized_client",
                "the client did not register the refresh_token grant type",
            )),
            Some("refresh_token") => self.refresh(&client_id, params, shared),
            Some(_) => Err(TokenError::new(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            )),
        }
    }

    /// The id of the client that authenticated with `client_secret_basic` or
    /// `client_secret_post`, or of the public client named by `client_id` alone (`none`).
    fn authenticate_client(
        &self,
        req: &HttpRequest,
        params: &Params,
    ) -> Result<String, TokenError> {
        let body_id = params.get("client_id");
        let body_secret = params.get("client_secret");
        let (client_id, secret, basic) = match BasicCredentials::from_request(req) {
            BasicCredentials::Malformed => {
                return Err(TokenError::invalid_client(
                    "malformed Authorization header",
                    true,
                ));
            }
            BasicCredentials::Present(..) if body_secret.is_some() => {
                return Err(TokenError::new(
                    "invalid_request",
                    "use only one client authentication method",
                ));
            }
            BasicCredentials::Present(id, _) if body_id.is_some_and(|body_id| body_id != id) => {
                return Err(TokenError::new(
                    "invalid_request",
                    "client_id does not match the Authorization header",
                ));
            }
            BasicCredentials::Present(id, secret) => (id, Some(secret), true),
            BasicCredentials::Absent => match (body_id, body_secret) {
                (Some(id), secret) => (id.to_owned(), secret.map(str::to_owned), false),
                (None, _) => {
                    return Err(TokenError::invalid_client(
                        "client authentication is required",
                        false,
                    ));
                }
            },
        };
        match (self.apps.get(&client_id), secret) {
            (Some(app), Some(secret)) if app.secret.as_deref() == Some(secret.as_str()) => {
                Ok(client_id)
            }
            (Some(app), None) if app.is_public() => Ok(client_id),
            (Some(_), None) => Err(TokenError::invalid_client(
                "client authentication is required",
                false,
            )),
            _ => Err(TokenError::invalid_client(
                "client authentication failed",
                basic,
            )),
        }
    }

    fn redeem_code(
        &mut self,
        client_id: &str,
        params: &Params,
        shared: &Shared,
    ) -> Result<Value, TokenError> {
        let code = required(params, "code")?;
        let redirect_uri = required(params, "redirect_uri")?;
        let issued_to_client = self
            .codes
            .get(code)
            .is_some_and(|pending| pending.grant.client_id == client_id);
        // A code is consumed by its first presentation, successful or not.
        let pending = issued_to_client
            .then(|| self.codes.remove(code))
            .flatten()
            .ok_or_else(|| TokenError::new("invalid_grant", "the code is invalid or was used"))?;
        if Instant::now() >= pending.expires_at {
            return Err(TokenError::new("invalid_grant", "the code expired"));
        }
        if pending.redirect_uri != redirect_uri {
            return Err(TokenError::new(
                "invalid_grant",
                "redirect_uri differs from the authorization request",
            ));
        }
        match (&pending.code_challenge, params.get("code_verifier")) {
            (None, None) => {}
            (Some(challenge), Some(verifier))
                if is_code_verifier(verifier) && s256(verifier) == *challenge => {}
            (Some(_), Some(_)) => {
                return Err(TokenError::new(
                    "invalid_grant",
                    "code_verifier does not match the code_challenge",
                ));
            }
            (Some(_), None) => {
                return Err(TokenError::new("invalid_grant", "code_verifier is missing"));
            }
            (None, Some(_)) => {
                return Err(TokenError::new(
                    "invalid_grant",
                    "code_verifier sent for a code issued without a code_challenge",
                ));
            }
        }
        self.check_resource(params, &pending.grant)?;
        if self.session_revoked(&pending.grant.sid) {
            return Err(TokenError::new("invalid_grant", "the session was revoked"));
        }
        let scopes = pending.grant.scopes.clone();
        self.issue(&pending.grant, &scopes, pending.nonce.as_deref(), shared)
    }

    fn refresh(
        &mut self,
        client_id: &str,
        params: &Params,
        shared: &Shared,
    ) -> Result<Value, TokenError> {
        let refresh_token = required(params, "refresh_token")?;
        let invalid =
            || TokenError::new("invalid_grant", "the refresh token is invalid or was used");
        let grant = self
            .refresh_tokens
            .get(refresh_token)
            .filter(|grant| grant.client_id == client_id)
            .ok_or_else(invalid)?;
        if self.session_revoked(&grant.sid) {
            self.refresh_tokens.remove(refresh_token);
            return Err(TokenError::new("invalid_grant", "the session was revoked"));
        }
        self.check_resource(params, grant)?;
        let scopes = match params.get("scope") {
            None => grant.scopes.clone(),
            Some(scope) => parse_scope(scope)
                .filter(|scopes| {
                    !scopes.is_empty() && scopes.iter().all(|scope| grant.scopes.contains(scope))
                })
                .ok_or_else(|| {
                    TokenError::new("invalid_scope", "scope exceeds the original grant")
                })?,
        };
        // Single use: the refresh token is spent; the grant moves to its successor with its
        // original scope (RFC 6749 §6).
        let grant = self
            .refresh_tokens
            .remove(refresh_token)
            .ok_or_else(invalid)?;
        self.issue(&grant, &scopes, None, shared)
    }

    /// RFC 8707 at the token endpoint: a dynamically registered client may name again the
    /// resource it was authorized for, and no other (`invalid_target`). Connect applications'
    /// `resource` is ignored, as at the authorization endpoint.
    fn check_resource(&self, params: &Params, grant: &Grant) -> Result<(), TokenError> {
        let registered = self
            .apps
            .get(&grant.client_id)
            .is_some_and(|client| client.registration.is_some());
        match params.get("resource") {
            Some(resource) if registered && grant.resource.as_deref() != Some(resource) => {
                Err(TokenError::new(
                    "invalid_target",
                    "resource differs from the authorization request",
                ))
            }
            _ => Ok(()),
        }
    }

    /// The token response for `grant`: an access token (whose `aud` is the grant's resource,
    /// else the client id), an ID token when `openid` is in `scopes`, and a fresh refresh
    /// token when `offline_access` was granted to a client that may refresh.
    fn issue(
        &mut self,
        grant: &Grant,
        scopes: &[String],
        nonce: Option<&str>,
        shared: &Shared,
    ) -> Result<Value, TokenError> {
        let ttl = self.access_token_ttl.as_secs();
        let now = shared.now();
        let profile = shared.profile(&grant.sub);
        let mut access = Map::new();
        access.insert("iss".into(), json!(shared.issuer));
        access.insert("sub".into(), json!(grant.sub));
        let audience = grant.resource.as_deref().unwrap_or(&grant.client_id);
        access.insert("aud".into(), json!(audience));
        access.insert("sid".into(), json!(grant.sid));
        access.insert("jti".into(), json!(ulid_like()));
        access.insert("iat".into(), json!(now));
        access.insert("exp".into(), json!(now + ttl));
        // The organization claims of AuthKit's access tokens, from the user's profile.
        for claim in ORGANIZATION_CLAIMS {
            if let Some(value) = profile.get(claim) {
                access.insert(claim.into(), value.clone());
            }
        }
        let access_token = shared.sign_claims(&access)?;

        let mut response = Map::new();
        response.insert("access_token".into(), json!(access_token));
        response.insert("token_type".into(), json!("Bearer"));
        response.insert("expires_in".into(), json!(ttl));
        if scopes.iter().any(|scope| scope == "openid") {
            let mut id = Map::new();
            id.insert("iss".into(), json!(shared.issuer));
            id.insert("sub".into(), json!(grant.sub));
            id.insert("aud".into(), json!(grant.client_id));
            id.insert("iat".into(), json!(now));
            id.insert("exp".into(), json!(now + ttl));
            id.insert("sid".into(), json!(grant.sid));
            for claim in ["email", "email_verified"] {
                if let Some(value) = profile.get(claim) {
                    id.insert(claim.into(), value.clone());
                }
            }
            if let Some(nonce) = nonce {
                id.insert("nonce".into(), json!(nonce));
            }
            response.insert("id_token".into(), json!(shared.sign_claims(&id)?));
        }
        let may_refresh = self
            .apps
            .get(&grant.client_id)
            .is_some_and(ClientRecord::may_refresh);
        if may_refresh && grant.scopes.iter().any(|scope| scope == "offline_access") {
            let refresh_token = random_token();
            self.refresh_tokens
                .insert(refresh_token.clone(), grant.clone());
            self.issued_refresh.push(refresh_token.clone());
            response.insert("refresh_token".into(), json!(refresh_token));
        }
        self.issued_access.push(access_token);
        Ok(Value::Object(response))
    }
}

impl Shared {
    /// Signs `claims` as an RS256 JWT with the current key, like
    /// [`FakeAuthKit::mint`].
    fn sign_claims(&self, claims: &Map<String, Value>) -> Result<String, TokenError> {
        let current = lock(&self.keys).current.clone();
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(current.kid);
        crate::install_jwt_provider();
        jsonwebtoken::encode(&header, claims, &current.key.encoding).map_err(|_| TokenError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            ..TokenError::new("server_error", "cannot sign the token")
        })
    }
}

fn required<'p>(params: &'p Params, name: &str) -> Result<&'p str, TokenError> {
    params
        .get(name)
        .ok_or_else(|| TokenError::new("invalid_request", format!("{name} is missing")))
}

/// The distinct scopes of a space-delimited `scope`, or `None` if one is unknown.
pub(super) fn parse_scope(scope: &str) -> Option<Vec<String>> {
    let mut scopes: Vec<String> = Vec::new();
    for value in scope.split(' ').filter(|value| !value.is_empty()) {
        if !SUPPORTED_SCOPES.contains(&value) {
            return None;
        }
        if !scopes.iter().any(|known| known == value) {
            scopes.push(value.to_owned());
        }
    }
    Some(scopes)
}

/// RFC 7636 §4.2: BASE64URL(SHA256(verifier)).
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn is_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == S256_CHALLENGE_LEN
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Decodes one `application/x-www-form-urlencoded` value (`+` is a space, `%XX` a byte).
fn form_decode(value: &str) -> String {
    let hex = |byte: u8| char::from(byte).to_digit(16);
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| Some((hex(*bytes.get(index + 1)?)?, hex(*bytes.get(index + 2)?)?)))
            .flatten();
        match (bytes[index], escaped) {
            (_, Some((high, low))) => {
                decoded.extend(u8::try_from(high * 16 + low));
                index += 3;
            }
            (b'+', None) => {
                decoded.push(b' ');
                index += 1;
            }
            (byte, None) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// 256 random bits, base64url-encoded: authorization codes, refresh tokens and the secrets of
/// dynamically registered clients.
pub(super) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(super) fn error_body(error: &str, description: &str) -> Value {
    json!({ "error": error, "error_description": description })
}

/// `target` with `pairs` added to its query.
fn redirect(mut target: Url, pairs: &[(&str, &str)]) -> Url {
    target.query_pairs_mut().extend_pairs(pairs);
    target
}

/// `302 Found` to `target`.
fn found(target: &Url) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, target.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use serde_json::{Map, Value, json};
    use sha2::{Digest, Sha256};
    use url::Url;

    use super::super::{Endpoint, Failure, FakeAuthKit};

    const CLIENT_ID: &str = "client_01CONNECT";
    const SECRET: &str = "sk_test_secret";
    const CALLBACK: &str = "http://127.0.0.1:9/oauth/callback";
    const OTHER_CALLBACK: &str = "http://127.0.0.1:9/other?keep=1";

    fn client() -> awc::Client {
        awc::Client::builder().disable_redirects().finish()
    }

    fn connect_app() -> FakeAuthKit {
        let fake = FakeAuthKit::start();
        fake.register_connect_app(CLIENT_ID, SECRET, &[CALLBACK, OTHER_CALLBACK]);
        fake
    }

    /// A PKCE verifier and its S256 challenge.
    fn pkce() -> (String, String) {
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        (verifier, challenge)
    }

    fn authorize_params<'a>(challenge: &'a str, scope: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("client_id", CLIENT_ID),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("scope", scope),
            ("state", "st-123"),
            ("nonce", "n-456"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("resource", "http://127.0.0.1:8000/mcp"),
        ]
    }

    /// What `/oauth2/authorize` answered.
    struct Answer {
        status: u16,
        /// The redirect target without its query, and the query.
        location: Option<(String, BTreeMap<String, String>)>,
        body: Option<Value>,
    }

    async fn authorize(fake: &FakeAuthKit, params: &[(&str, &str)]) -> Answer {
        let url =
            Url::parse_with_params(&format!("{}/oauth2/authorize", fake.issuer()), params).unwrap();
        let mut response = client().get(url.as_str()).send().await.unwrap();
        let status = response.status().as_u16();
        let location = response.headers().get("location").map(|value| {
            let mut url = Url::parse(value.to_str().unwrap()).unwrap();
            let query = url.query_pairs().into_owned().collect();
            url.set_query(None);
            (url.to_string(), query)
        });
        let body = response.json::<Value>().await.ok();
        Answer {
            status,
            location,
            body,
        }
    }

    /// Runs a successful authorization and returns the code.
    async fn code_for(fake: &FakeAuthKit, challenge: &str, scope: &str) -> String {
        let answer = authorize(fake, &authorize_params(challenge, scope)).await;
        assert_eq!(answer.status, 302);
        let (target, query) = answer.location.unwrap();
        assert_eq!(target, CALLBACK);
        assert_eq!(query["state"], "st-123");
        query["code"].clone()
    }

    /// Client authentication at the token endpoint.
    #[derive(Clone, Copy)]
    enum Auth<'a> {
        Post(&'a str, &'a str),
        Basic(&'a str, &'a str),
        None,
    }

    const POST: Auth<'static> = Auth::Post(CLIENT_ID, SECRET);
    const BASIC: Auth<'static> = Auth::Basic(CLIENT_ID, SECRET);

    async fn token(
        fake: &FakeAuthKit,
        auth: Auth<'_>,
        form: &[(&str, &str)],
    ) -> (u16, awc::http::header::HeaderMap, Value) {
        let mut form = form.to_vec();
        let mut request = client().post(format!("{}/oauth2/token", fake.issuer()));
        match auth {
            Auth::Post(id, secret) => {
                form.push(("client_id", id));
                form.push(("client_secret", secret));
            }
            Auth::Basic(id, secret) => request = request.basic_auth(id, secret),
            Auth::None => {}
        }
        let mut response = request.send_form(&form).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json::<Value>().await.unwrap();
        (status, headers, body)
    }

    async fn redeem(
        fake: &FakeAuthKit,
        auth: Auth<'_>,
        code: &str,
        verifier: &str,
    ) -> (u16, awc::http::header::HeaderMap, Value) {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier),
        ];
        token(fake, auth, &form).await
    }

    async fn refresh(fake: &FakeAuthKit, auth: Auth<'_>, refresh_token: &str) -> (u16, Value) {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        let (status, _, body) = token(fake, auth, &form).await;
        (status, body)
    }

    async fn userinfo(fake: &FakeAuthKit, access_token: &str) -> (u16, Value) {
        let mut response = client()
            .get(format!("{}/oauth2/userinfo", fake.issuer()))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    }

    /// Verifies an RS256 token against the current key, with `aud` = the client id.
    fn claims(fake: &FakeAuthKit, token: &str) -> Map<String, Value> {
        crate::install_jwt_provider();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.kid, Some(fake.current_kid()));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let key = DecodingKey::from_rsa_pem(fake.public_key_pem().as_bytes()).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[fake.issuer()]);
        validation.set_audience(&[CLIENT_ID]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .unwrap()
            .claims
    }

    fn error_of(body: &Value) -> &str {
        body["error"].as_str().unwrap()
    }

    #[actix_web::test]
    async fn full_flow_with_pkce_post_and_basic_authentication_and_rotation() {
        let fake = connect_app();
        fake.set_current_user("user_flow");
        fake.set_user(
            "user_flow",
            json!({ "email": "flow@example.com", "org_id": "org_01FLOW", "role": "admin",
                    "roles": ["admin", "editor"], "permissions": ["docs:read"] }),
        );
        let (verifier, challenge) = pkce();
        let scope = "openid profile email offline_access";
        let code = code_for(&fake, &challenge, scope).await;
        let recorded = fake.last_authorize_params().unwrap();
        let expected: BTreeMap<String, String> = authorize_params(&challenge, scope)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(recorded, expected);

        // authorization_code with client_secret_post.
        let (status, headers, body) = redeem(&fake, POST, &code, &verifier).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers.get("cache-control").unwrap(), "no-store");
        let mut keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "access_token",
                "expires_in",
                "id_token",
                "refresh_token",
                "token_type"
            ]
        );
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 300);
        let params = fake.last_token_params().unwrap();
        assert_eq!(params["client_secret"], "[redacted]");
        assert_eq!(params["client_id"], CLIENT_ID);
        assert_eq!(params["code_verifier"], verifier);
        assert_eq!(params["grant_type"], "authorization_code");

        let access_token = body["access_token"].as_str().unwrap();
        let access = claims(&fake, access_token);
        assert_eq!(access["sub"], "user_flow");
        assert_eq!(access["aud"], CLIENT_ID);
        assert_eq!(access["org_id"], "org_01FLOW");
        assert_eq!(access["role"], "admin");
        assert_eq!(access["roles"], json!(["admin", "editor"]));
        assert_eq!(access["permissions"], json!(["docs:read"]));
        assert!(access["sid"].as_str().unwrap().starts_with("session_"));
        assert!(access["jti"].as_str().is_some_and(|jti| !jti.is_empty()));
        assert!(!access.contains_key("scope"));
        assert_eq!(
            access["exp"].as_u64().unwrap() - access["iat"].as_u64().unwrap(),
            300
        );
        let id = claims(&fake, body["id_token"].as_str().unwrap());
        assert_eq!(id["sub"], "user_flow");
        assert_eq!(id["nonce"], "n-456");
        assert_eq!(id["email"], "flow@example.com");
        assert_eq!(id["sid"], access["sid"]);

        let (status, profile) = userinfo(&fake, access_token).await;
        assert_eq!(status, 200);
        assert_eq!(profile["sub"], "user_flow");
        assert_eq!(profile["email"], "flow@example.com");

        // Refresh with client_secret_basic: rotation, same session, no nonce.
        let first_refresh = body["refresh_token"].as_str().unwrap().to_owned();
        let (status, refreshed) = refresh(&fake, BASIC, &first_refresh).await;
        assert_eq!(status, 200, "{refreshed}");
        assert!(refreshed.get("scope").is_none());
        let second_refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(second_refresh, first_refresh);
        let second_access = refreshed["access_token"].as_str().unwrap();
        assert_ne!(second_access, access_token);
        let renewed = claims(&fake, second_access);
        assert_eq!(renewed["sid"], access["sid"]);
        assert_ne!(renewed["jti"], access["jti"]);
        let renewed_id = claims(&fake, refreshed["id_token"].as_str().unwrap());
        assert!(!renewed_id.contains_key("nonce"));
        assert_eq!(userinfo(&fake, second_access).await.0, 200);
        assert!(
            !fake
                .last_token_params()
                .unwrap()
                .contains_key("client_secret")
        );

        // The used refresh token is refused; its successor works once.
        let (status, body) = refresh(&fake, BASIC, &first_refresh).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_grant"));

        // A narrower scope is allowed, a wider one is not (and does not spend the token).
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", second_refresh.as_str()),
            ("scope", "openid email offline_access profile admin"),
        ];
        let (status, _, body) = token(&fake, POST, &form).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_scope"));
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", second_refresh.as_str()),
            ("scope", "profile"),
        ];
        let (status, _, narrowed) = token(&fake, POST, &form).await;
        assert_eq!(status, 200, "{narrowed}");
        assert!(narrowed.get("id_token").is_none());
        let third_refresh = narrowed["refresh_token"].as_str().unwrap();
        // The refresh token keeps the original scope: openid again yields an ID token.
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", third_refresh),
            ("scope", "openid"),
        ];
        let (status, _, body) = token(&fake, BASIC, &form).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("id_token").is_some());

        // A second authorization, redeemed with client_secret_basic, reuses the session.
        let (verifier, challenge) = pkce();
        let code = code_for(&fake, &challenge, "openid offline_access").await;
        let (status, _, body) = redeem(&fake, BASIC, &code, &verifier).await;
        assert_eq!(status, 200, "{body}");
        let access = claims(&fake, body["access_token"].as_str().unwrap());
        assert_eq!(access["sid"], renewed["sid"]);

        assert_eq!(fake.issued_access_tokens().len(), 5);
        assert_eq!(fake.issued_access_tokens()[0], access_token);
        assert_eq!(fake.issued_refresh_tokens().len(), 5);
        assert_eq!(fake.issued_refresh_tokens()[0], first_refresh);
        assert_eq!(fake.calls(Endpoint::Authorize), 2);
        assert_eq!(fake.calls(Endpoint::Token), 7);
    }

    #[actix_web::test]
    async fn code_redemption_rules() {
        let fake = connect_app();
        fake.register_connect_app("client_other", "other_secret", &[CALLBACK]);
        let (verifier, challenge) = pkce();

        // Replay.
        let code = code_for(&fake, &challenge, "openid").await;
        let (status, _, body) = redeem(&fake, POST, &code, &verifier).await;
        assert_eq!(status, 200);
        assert!(body.get("refresh_token").is_none(), "no offline_access");
        assert!(body.get("id_token").is_some());
        let (status, headers, body) = redeem(&fake, POST, &code, &verifier).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
        assert_eq!(headers.get("cache-control").unwrap(), "no-store");

        // Wrong secret, unknown client, no authentication, both methods at once.
        let code = code_for(&fake, &challenge, "openid").await;
        for auth in [
            Auth::Post(CLIENT_ID, "wrong"),
            Auth::Basic(CLIENT_ID, "wrong"),
            Auth::Post("client_unknown", SECRET),
            Auth::None,
        ] {
            let (status, headers, body) = redeem(&fake, auth, &code, &verifier).await;
            assert_eq!(
                body,
                json!({ "error": "invalid_client", "error_description": body["error_description"] })
            );
            assert_eq!(status, 401);
            let basic = matches!(auth, Auth::Basic(..));
            assert_eq!(headers.contains_key("www-authenticate"), basic);
        }
        let form = [
            ("client_secret", SECRET),
            ("grant_type", "authorization_code"),
        ];
        let (status, _, body) = token(&fake, BASIC, &form).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_request"));
        // Another client cannot redeem the code, and does not spend it either.
        let (status, _, body) = redeem(
            &fake,
            Auth::Post("client_other", "other_secret"),
            &code,
            &verifier,
        )
        .await;
        assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
        let (status, _, _) = redeem(&fake, BASIC, &code, &verifier).await;
        assert_eq!(status, 200);

        // Wrong redirect_uri: refused, and the code is spent.
        let code = code_for(&fake, &challenge, "openid").await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", OTHER_CALLBACK),
            ("code_verifier", verifier.as_str()),
        ];
        let (status, _, body) = token(&fake, POST, &form).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
        assert_eq!(redeem(&fake, POST, &code, &verifier).await.0, 400);

        // PKCE: wrong verifier, missing verifier, verifier without a challenge.
        let code = code_for(&fake, &challenge, "openid").await;
        let (other_verifier, _) = pkce();
        let (status, _, body) = redeem(&fake, POST, &code, &other_verifier).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
        let code = code_for(&fake, &challenge, "openid").await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
        ];
        let (status, _, body) = token(&fake, POST, &form).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
        let params: Vec<_> = authorize_params(&challenge, "email")
            .into_iter()
            .filter(|(name, _)| !name.starts_with("code_challenge"))
            .collect();
        let answer = authorize(&fake, &params).await;
        let code = answer.location.unwrap().1["code"].clone();
        let (status, _, body) = redeem(&fake, POST, &code, &verifier).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
        let code = authorize(&fake, &params).await.location.unwrap().1["code"].clone();
        let (status, _, body) = token(
            &fake,
            POST,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("id_token").is_none(), "no openid scope");

        // Expired code.
        let code = code_for(&fake, &challenge, "openid").await;
        if let Some(pending) = super::lock(&fake.inner.shared.connect).codes.get_mut(&code) {
            pending.expires_at = Instant::now();
        }
        let (status, _, body) = redeem(&fake, POST, &code, &verifier).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_grant"));

        // Other grant types, a missing grant type, a repeated parameter, a JSON body, GET.
        let (status, _, body) = token(&fake, POST, &[("grant_type", "client_credentials")]).await;
        assert_eq!((status, error_of(&body)), (400, "unsupported_grant_type"));
        let (status, _, body) = token(&fake, POST, &[]).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_request"));
        let form = [
            ("grant_type", "refresh_token"),
            ("grant_type", "authorization_code"),
        ];
        let (status, _, body) = token(&fake, POST, &form).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_request"));
        let mut response = client()
            .post(format!("{}/oauth2/token", fake.issuer()))
            .send_json(&json!({ "grant_type": "authorization_code" }))
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400);
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            "invalid_request"
        );
        let response = client()
            .get(format!("{}/oauth2/token", fake.issuer()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 405);
    }

    #[actix_web::test]
    async fn authorization_errors() {
        let fake = connect_app();
        let (_, challenge) = pkce();
        let valid = authorize_params(&challenge, "openid");
        let without = |name: &str| -> Vec<(&str, &str)> {
            valid
                .iter()
                .copied()
                .filter(|(key, _)| *key != name)
                .collect()
        };
        let with = |name: &'static str, value: &'static str| -> Vec<(&str, &str)> {
            let mut params = without(name);
            params.push((name, value));
            params
        };

        // Errors about the client or its redirect URI are shown, never redirected.
        for params in [
            with("client_id", "client_unknown"),
            without("client_id"),
            with("redirect_uri", "http://127.0.0.1:9/elsewhere"),
            with("redirect_uri", "http://127.0.0.1:9/oauth/callback/"),
            without("redirect_uri"),
        ] {
            let answer = authorize(&fake, &params).await;
            assert_eq!(answer.status, 400);
            assert!(answer.location.is_none());
            assert!(answer.body.unwrap()["error"].is_string());
        }
        let answer = authorize(&fake, &with("client_id", "client_unknown")).await;
        assert_eq!(answer.body.unwrap()["error"], "invalid_client");

        // Other errors go back to the client with the state.
        let mut repeated = valid.clone();
        repeated.push(("nonce", "n-other"));
        for (params, error) in [
            (without("nonce"), "invalid_request"),
            (with("nonce", ""), "invalid_request"),
            (without("scope"), "invalid_request"),
            (with("scope", "openid admin"), "invalid_scope"),
            (without("response_type"), "invalid_request"),
            (with("response_type", "token"), "unsupported_response_type"),
            (with("code_challenge_method", "plain"), "invalid_request"),
            (without("code_challenge_method"), "invalid_request"),
            (without("code_challenge"), "invalid_request"),
            (with("code_challenge", "short"), "invalid_request"),
            (with("resource", "not a uri"), "invalid_target"),
            (repeated, "invalid_request"),
        ] {
            let answer = authorize(&fake, &params).await;
            assert_eq!(answer.status, 302, "{params:?}");
            let (target, query) = answer.location.unwrap();
            assert_eq!(target, CALLBACK);
            assert_eq!(query["error"], error, "{params:?}");
            assert!(query.contains_key("error_description"));
            assert_eq!(query["state"], "st-123");
            assert!(!query.contains_key("code"));
        }
        let answer = authorize(&fake, &without("nonce")).await;
        let recorded = fake.last_authorize_params().unwrap();
        assert!(!recorded.contains_key("nonce"));
        assert_eq!(recorded["state"], "st-123");
        drop(answer);

        // The user denies.
        fake.set_deny_authorization(true);
        let answer = authorize(&fake, &valid).await;
        let (_, query) = answer.location.unwrap();
        assert_eq!(query["error"], "access_denied");
        assert_eq!(query["state"], "st-123");
        fake.set_deny_authorization(false);

        // A redirect URI with a query keeps it; no state, no state back.
        let params = with("redirect_uri", OTHER_CALLBACK);
        let params: Vec<_> = params.into_iter().filter(|(k, _)| *k != "state").collect();
        let answer = authorize(&fake, &params).await;
        let (target, query) = answer.location.unwrap();
        assert_eq!(target, "http://127.0.0.1:9/other");
        assert_eq!(query["keep"], "1");
        assert!(query.contains_key("code"));
        assert!(!query.contains_key("state"));

        let response = client()
            .post(format!("{}/oauth2/authorize", fake.issuer()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 405);
        assert_eq!(fake.calls(Endpoint::Authorize), 22);
    }

    #[actix_web::test]
    async fn revoked_sessions_refuse_refresh_codes_and_userinfo() {
        let fake = connect_app();
        let (verifier, challenge) = pkce();
        let code = code_for(&fake, &challenge, "openid offline_access").await;
        let pending = code_for(&fake, &challenge, "openid offline_access").await;
        let (_, _, body) = redeem(&fake, POST, &code, &verifier).await;
        let access_token = body["access_token"].as_str().unwrap().to_owned();
        let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
        assert_eq!(userinfo(&fake, &access_token).await.0, 200);

        fake.revoke_sessions_for("user_01TEST");
        assert_eq!(userinfo(&fake, &access_token).await.0, 401);
        let (status, body) = refresh(&fake, POST, &refresh_token).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
        let (status, _, body) = redeem(&fake, POST, &pending, &verifier).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_grant"));

        // Signing in again starts a new session; minted tokens of the subject stay refused.
        let code = code_for(&fake, &challenge, "openid offline_access").await;
        let (status, _, body) = redeem(&fake, POST, &code, &verifier).await;
        assert_eq!(status, 200);
        let fresh = body["access_token"].as_str().unwrap();
        assert_ne!(
            claims(&fake, fresh)["sid"],
            claims(&fake, &access_token)["sid"]
        );
        assert_eq!(userinfo(&fake, fresh).await.0, 200);
        assert_eq!(userinfo(&fake, &access_token).await.0, 401);
        assert_eq!(userinfo(&fake, &fake.mint(json!({}))).await.0, 401);
        let (status, _) = refresh(&fake, BASIC, body["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, 200);
    }

    #[actix_web::test]
    async fn access_token_ttl_and_expiry() {
        let fake = connect_app();
        fake.set_access_token_ttl(Duration::from_secs(1));
        let (verifier, challenge) = pkce();
        let code = code_for(&fake, &challenge, "openid").await;
        let (_, _, body) = redeem(&fake, POST, &code, &verifier).await;
        assert_eq!(body["expires_in"], 1);
        let access_token = body["access_token"].as_str().unwrap();
        let access = claims(&fake, access_token);
        assert_eq!(
            access["exp"].as_u64().unwrap() - access["iat"].as_u64().unwrap(),
            1
        );
        assert_eq!(userinfo(&fake, access_token).await.0, 200);
        // One second is still inside the lifetime's last second; two are past it.
        fake.advance_clock(Duration::from_secs(2));
        assert_eq!(userinfo(&fake, access_token).await.0, 401);
    }

    #[actix_web::test]
    async fn injected_failures_apply_to_the_oauth_endpoints() {
        let fake = connect_app();
        let (verifier, challenge) = pkce();
        let code = code_for(&fake, &challenge, "openid offline_access").await;

        fake.set_failure(Failure::ServerError);
        let (status, _, body) = redeem(&fake, POST, &code, &verifier).await;
        assert_eq!((status, body), (500, json!({ "error": "server_error" })));
        let answer = authorize(&fake, &authorize_params(&challenge, "openid")).await;
        assert_eq!(answer.status, 500);
        assert!(answer.location.is_none());
        assert_eq!(fake.calls(Endpoint::Token), 1);
        assert_eq!(fake.calls(Endpoint::Authorize), 2);
        // The code was not spent by the failed request.
        assert_eq!(fake.last_token_params(), None);

        fake.set_failure(Failure::Down);
        let sent = client()
            .post(format!("{}/oauth2/token", fake.issuer()))
            .send_form(&[("grant_type", "authorization_code")])
            .await;
        assert!(sent.is_err());

        fake.set_failure(Failure::Slow(Duration::from_millis(300)));
        let started = Instant::now();
        let (status, _, body) = redeem(&fake, POST, &code, &verifier).await;
        assert_eq!(status, 200, "{body}");
        assert!(started.elapsed() >= Duration::from_millis(300));
        fake.set_failure(Failure::None);
        let (status, _) = refresh(&fake, POST, body["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(fake.calls(Endpoint::Token), 3);
    }

    #[test]
    fn form_values_decode_like_basic_credentials() {
        assert_eq!(super::form_decode("a%3Ab+c%2"), "a:b c%2");
        assert_eq!(super::form_decode("%E2%9C%93"), "\u{2713}");
        assert_eq!(super::form_decode("plain"), "plain");
    }

    #[test]
    #[should_panic(expected = "not an absolute redirect URI")]
    fn registering_a_relative_redirect_uri_panics() {
        FakeAuthKit::start().register_connect_app("c", "s", &["/callback"]);
    }
}
