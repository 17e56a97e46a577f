//! [`OAuthTestClient`]: a scripted MCP client speaking real HTTP, for tests, benchmarks and
//! load drivers.
//!
//! The flow, the cookie jar and the runtime it needs are described on [`OAuthTestClient`].

use std::{
    cell::{Cell, RefCell},
    collections::BTreeMap,
    fmt,
    rc::Rc,
    time::Duration,
};

use actix_web::{
    cookie::{Cookie, time::OffsetDateTime},
    http::header::{self, HeaderMap},
    web::Bytes,
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::{Url, form_urlencoded};

/// The MCP protocol revision sent in the `MCP-Protocol-Version` header.
pub const MCP_PROTOCOL_VERSION: &str = "2025-06-18";

/// The redirect URI of [`OAuthTestClient::default_client_metadata`]: a loopback address where
/// nothing needs to listen (the client reads the code from the `Location` header).
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:33418/callback";

/// Timeout of each HTTP exchange.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read.
const MAX_BODY_BYTES: usize = 1 << 20;
/// Most redirects and forms [`OAuthTestClient::authorize_and_consent`] goes through.
const MAX_HOPS: usize = 10;
/// How much of a body an error message shows.
const BODY_EXCERPT_CHARS: usize = 500;

/// Why a step of [`OAuthTestClient`] failed. Every variant that saw an answer carries its HTTP
/// status and body, so a test failure shows what the server said.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthClientError {
    /// No HTTP answer: connection refused, timeout, unreadable or oversized body.
    #[error("{step}: request to {url} failed: {message}")]
    Transport {
        /// The step that sent the request (`"register"`, `"token"`, …).
        step: &'static str,
        /// The URL requested.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// An answer whose status the step does not expect.
    #[error("{step}: unexpected HTTP {status} from {url}: {}", excerpt(.body))]
    Status {
        /// The step that sent the request.
        step: &'static str,
        /// The URL requested.
        url: String,
        /// The HTTP status of the answer.
        status: u16,
        /// The body of the answer (lossy UTF-8).
        body: String,
        /// The `Location` header of the answer, if any.
        location: Option<String>,
    },
    /// The authorization server sent the browser back to the client's redirect URI with an
    /// OAuth error (RFC 6749 §4.1.2.1).
    #[error("{step}: authorization error `{error}`: {}", .description.as_deref().unwrap_or(""))]
    Authorization {
        /// The step that received the error redirect.
        step: &'static str,
        /// The `error` parameter.
        error: String,
        /// The `error_description` parameter, if any.
        description: Option<String>,
        /// The `state` parameter, if any.
        state: Option<String>,
        /// The `iss` parameter, if any.
        iss: Option<String>,
    },
    /// An answer with the expected status that breaks the protocol (a missing header or field,
    /// a `state` or `iss` that does not match, a malformed document, …).
    #[error("{step}: {message} (HTTP {status}: {})", excerpt(.body))]
    Protocol {
        /// The step that received the answer.
        step: &'static str,
        /// What is wrong with it.
        message: String,
        /// The HTTP status of the answer.
        status: u16,
        /// The body of the answer (lossy UTF-8).
        body: String,
    },
}

impl OAuthClientError {
    /// The HTTP status of the answer the error is about, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } | Self::Protocol { status, .. } => Some(*status),
            Self::Authorization { .. } => Some(302),
            Self::Transport { .. } => None,
        }
    }

    /// The body of the answer the error is about, if there was one.
    pub fn body(&self) -> Option<&str> {
        match self {
            Self::Status { body, .. } | Self::Protocol { body, .. } => Some(body),
            _ => None,
        }
    }

    /// The OAuth error code: the `error` of an error redirect, or the `error` member of a JSON
    /// error body (RFC 6749 §5.2).
    pub fn oauth_error(&self) -> Option<String> {
        match self {
            Self::Authorization { error, .. } => Some(error.clone()),
            Self::Status { body, .. } | Self::Protocol { body, .. } => {
                serde_json::from_str::<Value>(body)
                    .ok()?
                    .get("error")?
                    .as_str()
                    .map(str::to_owned)
            }
            Self::Transport { .. } => None,
        }
    }
}

fn excerpt(body: &str) -> String {
    if body.chars().count() <= BODY_EXCERPT_CHARS {
        body.to_owned()
    } else {
        let cut: String = body.chars().take(BODY_EXCERPT_CHARS).collect();
        format!("{cut}…")
    }
}

/// An HTTP answer as the client read it.
#[derive(Clone, Debug)]
pub struct TestResponse {
    /// The URL requested.
    pub url: String,
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body (at most 1 MiB).
    pub body: Bytes,
}

impl TestResponse {
    /// The first value of header `name`, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Location` header resolved against the request URL.
    pub fn location(&self) -> Option<String> {
        let location = self.header("location")?;
        match Url::parse(&self.url) {
            Ok(base) => base.join(location).ok().map(String::from),
            Err(_) => Some(location.to_owned()),
        }
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON. A `text/event-stream` body (an MCP server answering with SSE) yields
    /// the last `data:` event that is JSON.
    pub fn json(&self) -> Result<Value, OAuthClientError> {
        let is_sse = self
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"));
        let parsed = if is_sse {
            self.text()
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
                .next_back()
        } else {
            serde_json::from_slice(&self.body).ok()
        };
        parsed.ok_or_else(|| self.protocol("read JSON", "the body is not JSON"))
    }

    fn protocol(&self, step: &'static str, message: impl Into<String>) -> OAuthClientError {
        OAuthClientError::Protocol {
            step,
            message: message.into(),
            status: self.status,
            body: self.text(),
        }
    }

    fn unexpected(&self, step: &'static str) -> OAuthClientError {
        OAuthClientError::Status {
            step,
            url: self.url.clone(),
            status: self.status,
            body: self.text(),
            location: self.location(),
        }
    }

    /// `Ok(self)` when the status is `expected`, else [`OAuthClientError::Status`].
    fn expect(self, step: &'static str, expected: u16) -> Result<Self, OAuthClientError> {
        if self.status == expected {
            Ok(self)
        } else {
            Err(self.unexpected(step))
        }
    }

    /// The `Location` of a redirect (302 or 303), or an error.
    fn redirect_target(&self, step: &'static str) -> Result<String, OAuthClientError> {
        if !matches!(self.status, 302 | 303) {
            return Err(self.unexpected(step));
        }
        self.location()
            .ok_or_else(|| self.protocol(step, "a redirect without a Location header"))
    }
}

/// Where the client sends each request. Built from a base URL by [`Endpoints::for_server`], or
/// read from the server's metadata by [`OAuthTestClient::discover`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// The authorization server's issuer: the `iss` expected on redirects (RFC 9207).
    pub issuer: String,
    /// The resource indicator sent at `/authorize` and `/token` (RFC 8707): the canonical MCP
    /// URL.
    pub resource: String,
    /// Where MCP requests are POSTed.
    pub mcp_url: String,
    /// The authorization endpoint.
    pub authorization_endpoint: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The registration endpoint (RFC 7591), if the server has one.
    pub registration_endpoint: Option<String>,
    /// The revocation endpoint (RFC 7009), if the server has one.
    pub revocation_endpoint: Option<String>,
}

impl Endpoints {
    /// The endpoints of a proxy-mode server at `base_url` (its `MCP_BASE_URL`, possibly with a
    /// path; no trailing slash needed) with its MCP endpoint at `mcp_path` (its `MCP_PATH`,
    /// relative to the base URL): issuer = base URL, then `/authorize`, `/token`, `/register`
    /// and `/revoke` below it.
    pub fn for_server(base_url: &str, mcp_path: &str) -> Self {
        let base = base_url.trim_end_matches('/');
        let mcp_url = format!("{base}{mcp_path}");
        Self {
            issuer: base.to_owned(),
            resource: mcp_url.clone(),
            mcp_url,
            authorization_endpoint: format!("{base}/authorize"),
            token_endpoint: format!("{base}/token"),
            registration_endpoint: Some(format!("{base}/register")),
            revocation_endpoint: Some(format!("{base}/revoke")),
        }
    }
}

/// What [`OAuthTestClient::discover`] found, starting from the MCP endpoint's 401.
#[derive(Clone, Debug)]
pub struct Discovery {
    /// The `WWW-Authenticate` challenge of the 401.
    pub challenge: String,
    /// The protected-resource metadata URL taken from the challenge.
    pub resource_metadata_url: String,
    /// The protected-resource metadata document (RFC 9728).
    pub protected_resource: Value,
    /// The authorization-server metadata URL that was read.
    pub authorization_server_url: String,
    /// The authorization-server metadata document (RFC 8414).
    pub authorization_server: Value,
    /// The endpoints the client uses from now on.
    pub endpoints: Endpoints,
}

/// A client registered with the authorization server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredClient {
    /// The client id the server assigned.
    pub client_id: String,
    /// The client secret, for confidential clients.
    pub client_secret: Option<String>,
    /// The redirect URI used by default (the first registered one).
    pub redirect_uri: String,
    /// How the client authenticates at the token and revocation endpoints: `none`,
    /// `client_secret_post` or `client_secret_basic`.
    pub token_endpoint_auth_method: String,
}

impl RegisteredClient {
    /// A client identified by a metadata document (CIMD): its id is the document's URL; it is
    /// public and uses the [`DEFAULT_REDIRECT_URI`] of
    /// [`OAuthTestClient::client_metadata_document`].
    pub fn metadata_document(client_id: impl Into<String>) -> Self {
        Self::public(client_id, DEFAULT_REDIRECT_URI)
    }

    /// A public client (`none`) known by id, for requests about a client registered elsewhere.
    pub fn public(client_id: impl Into<String>, redirect_uri: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: None,
            redirect_uri: redirect_uri.into(),
            token_endpoint_auth_method: "none".to_owned(),
        }
    }
}

/// A PKCE pair (RFC 7636, method S256).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkce {
    /// The code verifier, sent at the token endpoint. May be empty when the caller chose the
    /// challenge and redeems the code itself.
    pub verifier: String,
    /// `BASE64URL(SHA-256(verifier))`, sent at the authorization endpoint.
    pub challenge: String,
}

impl Pkce {
    /// A fresh random verifier (43 characters, 256 bits) and its challenge.
    pub fn new() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        Self::from_verifier(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The pair of a given verifier.
    pub fn from_verifier(verifier: impl Into<String>) -> Self {
        let verifier = verifier.into();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// Choices of an authorization request; the defaults are what an MCP client sends.
#[derive(Clone, Debug, Default)]
pub struct AuthorizeOptions {
    /// `scope`; none by default (the server then uses the client's registered scopes).
    pub scope: Option<String>,
    /// `resource`; default: [`Endpoints::resource`].
    pub resource: Option<String>,
    /// Send no `resource` at all.
    pub omit_resource: bool,
    /// `state`; default: a random value.
    pub state: Option<String>,
    /// The PKCE pair; default: a fresh one.
    pub pkce: Option<Pkce>,
    /// `redirect_uri`; default: the client's [`RegisteredClient::redirect_uri`].
    pub redirect_uri: Option<String>,
}

/// An authorization request, built by [`OAuthTestClient::authorization_request`], and what the
/// client must remember to check and redeem its answer.
#[derive(Clone, Debug)]
pub struct AuthorizationRequest {
    /// The full `/authorize` URL.
    pub url: String,
    /// The client it is for.
    pub client_id: String,
    /// The PKCE pair.
    pub pkce: Pkce,
    /// The `state` sent.
    pub state: String,
    /// The redirect URI the answer must come back to.
    pub redirect_uri: String,
    /// The `resource` sent, if any.
    pub resource: Option<String>,
}

/// The successful answer of an authorization request, checked (`state`, `iss`).
#[derive(Clone, Debug)]
pub struct AuthorizationCode {
    /// The authorization code.
    pub code: String,
    /// The PKCE verifier that redeems it.
    pub code_verifier: String,
    /// The redirect URI the code was issued for.
    pub redirect_uri: String,
    /// The `state` that came back.
    pub state: String,
    /// The `iss` that came back, if any.
    pub iss: Option<String>,
    /// The `resource` of the request, sent again at the token endpoint.
    pub resource: Option<String>,
}

/// A consent page's form, as read by [`OAuthTestClient::consent_form`].
#[derive(Clone, Debug)]
pub struct ConsentForm {
    /// Where the form posts (absolute).
    pub action: String,
    /// The hidden `txn_id` field.
    pub txn_id: String,
    /// The hidden `csrf_token` field.
    pub csrf_token: String,
    /// The page itself.
    pub page: TestResponse,
}

/// The user's answer on the consent page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentDecision {
    /// `action=approve`.
    Approve,
    /// `action=deny`.
    Deny,
}

impl ConsentDecision {
    fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Deny => "deny",
        }
    }
}

/// A token endpoint answer (RFC 6749 §5.1).
#[derive(Clone, Debug)]
pub struct TokenSet {
    /// The access token.
    pub access_token: String,
    /// The token type (`Bearer`).
    pub token_type: String,
    /// Lifetime of the access token in seconds, if given.
    pub expires_in: Option<u64>,
    /// The refresh token, if any.
    pub refresh_token: Option<String>,
    /// The granted scope, if given.
    pub scope: Option<String>,
    /// The whole JSON answer.
    pub raw: Value,
}

impl TokenSet {
    fn parse(response: &TestResponse, step: &'static str) -> Result<Self, OAuthClientError> {
        let raw = response
            .json()
            .map_err(|_| response.protocol(step, "the token answer is not a JSON object"))?;
        let text = |name: &str| raw.get(name).and_then(Value::as_str).map(str::to_owned);
        let access_token = text("access_token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| response.protocol(step, "no access_token"))?;
        let token_type =
            text("token_type").ok_or_else(|| response.protocol(step, "no token_type"))?;
        if !token_type.eq_ignore_ascii_case("bearer") {
            return Err(response.protocol(step, format!("token_type {token_type:?} is not Bearer")));
        }
        Ok(Self {
            access_token,
            token_type,
            expires_in: raw.get("expires_in").and_then(Value::as_u64),
            refresh_token: text("refresh_token"),
            scope: text("scope"),
            raw,
        })
    }
}

/// Everything [`OAuthTestClient::full_login`] produced.
#[derive(Clone, Debug)]
pub struct Login {
    /// The discovery documents.
    pub discovery: Discovery,
    /// The client it registered.
    pub client: RegisteredClient,
    /// The tokens it obtained.
    pub tokens: TokenSet,
}

/// Cookies by name, shared by the clients of one "browser".
type Jar = Rc<RefCell<BTreeMap<String, String>>>;

/// A scripted MCP client and browser over real HTTP.
///
/// It does what an MCP client and its user's browser do against a server in proxy mode (or any
/// OAuth 2.1 authorization server with dynamic client registration and a consent form):
///
/// ```text
/// discover   POST {mcp} without a token → 401 → WWW-Authenticate resource_metadata
///            → protected-resource metadata → authorization-server metadata
/// register   POST {registration_endpoint} (RFC 7591)
/// authorize  GET {authorization_endpoint} (PKCE S256, state, resource) → 302 consent page
///            → form with hidden txn_id and csrf_token → POST approve → 302 identity provider
///            → (FakeAuthKit signs the user in) 302 our callback → 302 client redirect URI
/// exchange   POST {token_endpoint} grant_type=authorization_code
/// use        POST {mcp} with Authorization: Bearer, JSON-RPC tools/call
/// refresh    POST {token_endpoint} grant_type=refresh_token
/// revoke     POST {revocation_endpoint} (RFC 7009)
/// ```
///
/// The client keeps cookies like a browser (simplified, see below) and never follows redirects
/// on its own: every hop is a step it checks. Each step is also a public method, so a test can
/// stop anywhere, tamper with a request, or send a step to another replica; the composed
/// helpers ([`authorize_and_consent`](Self::authorize_and_consent),
/// [`full_login`](Self::full_login)) chain them. Errors are [`OAuthClientError`]s carrying the
/// HTTP status and body; nothing panics.
///
/// It runs on an actix runtime (it uses `awc`, so it is `!Send`): inside `#[actix_web::test]`,
/// `actix_web::rt::System::block_on`, or an actix-web handler. Plain `http://` only (the crate
/// builds `awc` without TLS roots), which is what local test servers speak.
///
/// ```no_run
/// use actix_mcp_auth_testing::OAuthTestClient;
///
/// # async fn run() -> Result<(), actix_mcp_auth_testing::OAuthClientError> {
/// let mut client = OAuthTestClient::new("http://127.0.0.1:8000");
/// let login = client.full_login().await?;
/// let answer = client
///     .call_tool(&login.tokens.access_token, "whoami", serde_json::json!({}))
///     .await?;
/// assert_eq!(answer.status, 200);
/// # Ok(()) }
/// ```
///
/// The cookie jar is a simplified browser's: cookies are kept by name only (no domain, path or
/// port matching, as for one host), every cookie is sent with every request (to the
/// authorization server and to the identity provider alike, which share `127.0.0.1` in tests),
/// and a `Set-Cookie` with `Max-Age=0` (or negative), an `Expires` in the past or an empty value
/// removes the cookie. `Secure`, `HttpOnly` and `SameSite` are ignored.
///
/// Clients made with [`for_server`](Self::for_server) share the jar and the connection pool:
/// two tabs of one browser.
///
/// Against an authorization server that answers the authorization request with a code at once
/// (FakeAuthKit itself, in AuthKit mode: it signs the user in without any page), turn on
/// [`accept_immediate_code`](Self::accept_immediate_code); by default such an answer is an
/// error, since a proxy-mode server must always show its consent page first.
pub struct OAuthTestClient {
    http: awc::Client,
    cookies: Jar,
    endpoints: Endpoints,
    next_id: Cell<u64>,
    accept_immediate_code: bool,
}

impl fmt::Debug for OAuthTestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthTestClient")
            .field("endpoints", &self.endpoints)
            .field("cookies", &self.cookies.borrow().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl OAuthTestClient {
    /// A client of the proxy-mode server at `base_url` (`http://127.0.0.1:PORT`), MCP endpoint
    /// at `/mcp`, with an empty cookie jar. Nothing is sent until a step is called.
    pub fn new(base_url: &str) -> Self {
        Self {
            http: awc::Client::builder()
                .timeout(DEFAULT_TIMEOUT)
                .disable_redirects()
                .finish(),
            cookies: Jar::default(),
            endpoints: Endpoints::for_server(base_url, "/mcp"),
            next_id: Cell::new(1),
            accept_immediate_code: false,
        }
    }

    /// Whether [`authorize_and_consent`](Self::authorize_and_consent) (and so
    /// [`full_login`](Self::full_login)) accepts a code sent straight back by the authorization
    /// request, with no consent page or login hop in between. Off by default: in proxy mode
    /// that answer means the consent page was skipped, and it is an
    /// [`OAuthClientError::Protocol`]. Turn it on for an authorization server without any
    /// page, such as FakeAuthKit in AuthKit mode (the MCP client registers and logs in at the
    /// emulator directly). [`start_authorization`](Self::start_authorization) is unaffected.
    pub fn accept_immediate_code(mut self, accept: bool) -> Self {
        self.accept_immediate_code = accept;
        self
    }

    /// Uses `path` (relative to the issuer) as the MCP endpoint's path, which is also the
    /// resource indicator. Call it before [`discover`](Self::discover).
    pub fn with_mcp_path(mut self, path: &str) -> Self {
        let base = self.endpoints.issuer.clone();
        self.endpoints.mcp_url = format!("{base}{path}");
        self.endpoints.resource = self.endpoints.mcp_url.clone();
        self
    }

    /// Replaces the endpoints (for example: another replica's URLs with the shared issuer).
    pub fn with_endpoints(mut self, endpoints: Endpoints) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// A client of another server (or replica) at `base_url` that shares this client's cookie
    /// jar and connections, like another tab of the same browser. Like a new client, it does
    /// not [accept an immediate code](Self::accept_immediate_code).
    pub fn for_server(&self, base_url: &str) -> Self {
        Self {
            http: self.http.clone(),
            cookies: self.cookies.clone(),
            endpoints: Endpoints::for_server(base_url, "/mcp"),
            next_id: Cell::new(1),
            accept_immediate_code: false,
        }
    }

    /// The endpoints in use.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The underlying HTTP client (redirects off, 10 s timeout); requests sent with it carry
    /// no cookies.
    pub fn http(&self) -> &awc::Client {
        &self.http
    }

    /// The value of cookie `name` in the jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.borrow().get(name).cloned()
    }

    /// The names of the cookies in the jar.
    pub fn cookie_names(&self) -> Vec<String> {
        self.cookies.borrow().keys().cloned().collect()
    }

    /// Empties the cookie jar (of every client sharing it).
    pub fn clear_cookies(&self) {
        self.cookies.borrow_mut().clear();
    }

    // ---- raw HTTP with the cookie jar -------------------------------------------------------

    /// `GET url` with the jar's cookies; any status is `Ok`.
    pub async fn get(&self, url: &str) -> Result<TestResponse, OAuthClientError> {
        self.send("GET", url, self.http.get(url), Body::Empty).await
    }

    /// `GET url` with extra request headers (e.g. `Sec-Fetch-Site`, as a browser sends) and the
    /// jar's cookies; any status is `Ok`.
    pub async fn get_with_headers(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<TestResponse, OAuthClientError> {
        let mut request = self.http.get(url);
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        self.send("GET", url, request, Body::Empty).await
    }

    /// `POST url` with a form body and the jar's cookies; any status is `Ok`.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<TestResponse, OAuthClientError> {
        self.send("POST form", url, self.http.post(url), Body::Form(form))
            .await
    }

    /// `POST url` with a JSON body and the jar's cookies; any status is `Ok`.
    pub async fn post_json(
        &self,
        url: &str,
        body: &Value,
    ) -> Result<TestResponse, OAuthClientError> {
        self.send("POST JSON", url, self.http.post(url), Body::Json(body))
            .await
    }

    async fn send(
        &self,
        step: &'static str,
        url: &str,
        mut request: awc::ClientRequest,
        body: Body<'_>,
    ) -> Result<TestResponse, OAuthClientError> {
        if let Some(cookies) = self.cookie_header() {
            request = request.insert_header((header::COOKIE, cookies));
        }
        let transport = |message: String| OAuthClientError::Transport {
            step,
            url: url.to_owned(),
            message,
        };
        let sent = match body {
            Body::Empty => request.send().await,
            Body::Form(form) => request.send_form(&form).await,
            Body::Json(json) => request.send_json(json).await,
        };
        let mut response = sent.map_err(|e| transport(e.to_string()))?;
        let body = response
            .body()
            .limit(MAX_BODY_BYTES)
            .await
            .map_err(|e| transport(format!("reading the body: {e}")))?;
        let response = TestResponse {
            url: url.to_owned(),
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body,
        };
        self.keep_cookies(&response);
        Ok(response)
    }

    fn cookie_header(&self) -> Option<String> {
        let jar = self.cookies.borrow();
        (!jar.is_empty()).then(|| {
            jar.iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn keep_cookies(&self, response: &TestResponse) {
        let mut jar = self.cookies.borrow_mut();
        for value in response.headers.get_all(header::SET_COOKIE) {
            let Some(cookie) = value.to_str().ok().and_then(|v| Cookie::parse(v).ok()) else {
                continue;
            };
            let expired = cookie.max_age().is_some_and(|age| age.whole_seconds() <= 0)
                || cookie
                    .expires_datetime()
                    .is_some_and(|at| at <= OffsetDateTime::now_utc());
            if expired || cookie.value().is_empty() {
                jar.remove(cookie.name());
            } else {
                jar.insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
    }

    // ---- discovery --------------------------------------------------------------------------

    /// Discovers the authorization server as an MCP client does (MCP authorization spec,
    /// RFC 9728, RFC 8414): POSTs an `initialize` request to the MCP endpoint without a token,
    /// expects a 401 whose `WWW-Authenticate` names the protected-resource metadata, reads it,
    /// then reads the metadata of its first authorization server. Checks that the metadata
    /// `issuer` is that server and that PKCE S256 is supported; from then on the client uses
    /// the endpoints of the metadata and the resource of the protected-resource document.
    pub async fn discover(&mut self) -> Result<Discovery, OAuthClientError> {
        const STEP: &str = "discover";
        let initialize = json!({
            "jsonrpc": "2.0",
            "id": self.next_request_id(),
            "method": "initialize",
            "params": {
                "protocolVersion": MCP_PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "OAuthTestClient", "version": env!("CARGO_PKG_VERSION")},
            },
        });
        let unauthorized = self
            .mcp_request(None, &initialize)
            .await?
            .expect(STEP, 401)?;
        let challenge = unauthorized
            .header("www-authenticate")
            .ok_or_else(|| unauthorized.protocol(STEP, "the 401 has no WWW-Authenticate header"))?
            .to_owned();
        if !challenge
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "))
        {
            return Err(unauthorized.protocol(STEP, format!("not a Bearer challenge: {challenge}")));
        }
        let resource_metadata_url = challenge_param(&challenge, "resource_metadata")
            .ok_or_else(|| unauthorized.protocol(STEP, "the challenge has no resource_metadata"))?;

        let prm_response = self.get(&resource_metadata_url).await?.expect(STEP, 200)?;
        let protected_resource = prm_response.json()?;
        let resource = protected_resource
            .get("resource")
            .and_then(Value::as_str)
            .ok_or_else(|| prm_response.protocol(STEP, "the metadata has no `resource`"))?
            .to_owned();
        let issuer = protected_resource
            .get("authorization_servers")
            .and_then(|servers| servers.get(0))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                prm_response.protocol(STEP, "the metadata has no authorization_servers")
            })?
            .to_owned();

        let authorization_server_url = authorization_server_metadata_url(&issuer)
            .ok_or_else(|| prm_response.protocol(STEP, format!("bad issuer URL {issuer:?}")))?;
        let as_response = self
            .get(&authorization_server_url)
            .await?
            .expect(STEP, 200)?;
        let authorization_server = as_response.json()?;
        let field = |name: &str| {
            authorization_server
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        if field("issuer").as_deref() != Some(issuer.as_str()) {
            return Err(as_response.protocol(
                STEP,
                format!("metadata issuer {:?} is not {issuer:?}", field("issuer")),
            ));
        }
        let s256 = authorization_server
            .get("code_challenge_methods_supported")
            .and_then(Value::as_array)
            .is_some_and(|methods| methods.iter().any(|m| m == "S256"));
        if !s256 {
            return Err(as_response.protocol(STEP, "the server does not support PKCE S256"));
        }
        let required = |name: &str| {
            field(name)
                .ok_or_else(|| as_response.protocol(STEP, format!("the metadata has no {name}")))
        };
        let endpoints = Endpoints {
            issuer,
            resource,
            mcp_url: self.endpoints.mcp_url.clone(),
            authorization_endpoint: required("authorization_endpoint")?,
            token_endpoint: required("token_endpoint")?,
            registration_endpoint: field("registration_endpoint"),
            revocation_endpoint: field("revocation_endpoint"),
        };
        self.endpoints = endpoints.clone();
        Ok(Discovery {
            challenge,
            resource_metadata_url,
            protected_resource,
            authorization_server_url,
            authorization_server,
            endpoints,
        })
    }

    // ---- registration -----------------------------------------------------------------------

    /// The registration metadata of a typical MCP client: public (`none`), authorization code
    /// and refresh token grants, redirect URI [`DEFAULT_REDIRECT_URI`].
    pub fn default_client_metadata() -> Value {
        json!({
            "client_name": "OAuthTestClient",
            "redirect_uris": [DEFAULT_REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        })
    }

    /// A client id metadata document (CIMD) for the client whose id is `client_id`, the URL
    /// the document is served at: the [default metadata](Self::default_client_metadata) plus
    /// `client_id`. Serve it as `application/json`, then log in with
    /// [`RegisteredClient::metadata_document`] instead of registering.
    pub fn client_metadata_document(client_id: &str) -> Value {
        let mut document = Self::default_client_metadata();
        document["client_id"] = json!(client_id);
        document
    }

    /// Registers a client with `metadata` (sent as given, RFC 7591) and expects `201 Created`.
    pub async fn register(&self, metadata: &Value) -> Result<RegisteredClient, OAuthClientError> {
        const STEP: &str = "register";
        let url = self
            .endpoints
            .registration_endpoint
            .clone()
            .ok_or_else(|| OAuthClientError::Protocol {
                step: STEP,
                message: "the server has no registration endpoint".to_owned(),
                status: 0,
                body: String::new(),
            })?;
        let response = self.post_json(&url, metadata).await?.expect(STEP, 201)?;
        let answer = response.json()?;
        let text =
            |doc: &Value, name: &str| doc.get(name).and_then(Value::as_str).map(str::to_owned);
        let client_id =
            text(&answer, "client_id").ok_or_else(|| response.protocol(STEP, "no client_id"))?;
        let first_uri = |doc: &Value| {
            doc.get("redirect_uris")
                .and_then(|uris| uris.get(0))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let redirect_uri = first_uri(&answer)
            .or_else(|| first_uri(metadata))
            .ok_or_else(|| response.protocol(STEP, "no redirect_uris"))?;
        // RFC 7591 §2: the default method is client_secret_basic.
        let token_endpoint_auth_method = text(&answer, "token_endpoint_auth_method")
            .or_else(|| text(metadata, "token_endpoint_auth_method"))
            .unwrap_or_else(|| "client_secret_basic".to_owned());
        let client_secret = text(&answer, "client_secret");
        if token_endpoint_auth_method != "none" && client_secret.is_none() {
            return Err(response.protocol(STEP, "a confidential client got no client_secret"));
        }
        Ok(RegisteredClient {
            client_id,
            client_secret,
            redirect_uri,
            token_endpoint_auth_method,
        })
    }

    // ---- authorization, step by step --------------------------------------------------------

    /// Builds an authorization request (no I/O): `response_type`, `client_id`, `redirect_uri`,
    /// `code_challenge`, `code_challenge_method=S256`, `state`, then `resource` and `scope`
    /// when present, in that order.
    pub fn authorization_request(
        &self,
        client: &RegisteredClient,
        options: &AuthorizeOptions,
    ) -> AuthorizationRequest {
        let pkce = options.pkce.clone().unwrap_or_default();
        let state = options
            .state
            .clone()
            .unwrap_or_else(|| Pkce::new().verifier);
        let redirect_uri = options
            .redirect_uri
            .clone()
            .unwrap_or_else(|| client.redirect_uri.clone());
        let resource = (!options.omit_resource).then(|| {
            options
                .resource
                .clone()
                .unwrap_or_else(|| self.endpoints.resource.clone())
        });
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &client.client_id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state);
        if let Some(resource) = &resource {
            query.append_pair("resource", resource);
        }
        if let Some(scope) = &options.scope {
            query.append_pair("scope", scope);
        }
        let endpoint = &self.endpoints.authorization_endpoint;
        let separator = if endpoint.contains('?') { '&' } else { '?' };
        AuthorizationRequest {
            url: format!("{endpoint}{separator}{}", query.finish()),
            client_id: client.client_id.clone(),
            pkce,
            state,
            redirect_uri,
            resource,
        }
    }

    /// Sends the authorization request (GET) and returns where it redirects (the consent
    /// page, or the identity provider when consent is off). An error redirect to the client
    /// is an [`OAuthClientError::Authorization`].
    pub async fn start_authorization(
        &self,
        request: &AuthorizationRequest,
    ) -> Result<String, OAuthClientError> {
        const STEP: &str = "authorize";
        let response = self.get(&request.url).await?;
        let target = response.redirect_target(STEP)?;
        if is_redirect_to(&target, &request.redirect_uri) {
            let code = self.authorization_answer(STEP, request, &response, &target)?;
            return Err(OAuthClientError::Protocol {
                step: STEP,
                message: format!("a code without any login: {}", code.code),
                status: response.status,
                body: response.text(),
            });
        }
        Ok(target)
    }

    /// Reads the consent page at `url` (expects 200) and its form.
    pub async fn consent_form(&self, url: &str) -> Result<ConsentForm, OAuthClientError> {
        const STEP: &str = "consent page";
        let page = self.get(url).await?.expect(STEP, 200)?;
        ConsentForm::parse(page, STEP)
    }

    /// Submits the consent form with `decision` and returns where the server redirects (the
    /// identity provider when approved, the client's redirect URI when denied).
    pub async fn submit_consent(
        &self,
        form: &ConsentForm,
        decision: ConsentDecision,
    ) -> Result<String, OAuthClientError> {
        const STEP: &str = "consent";
        let response = self
            .post_form(
                &form.action,
                &[
                    ("txn_id", &form.txn_id),
                    ("csrf_token", &form.csrf_token),
                    ("action", decision.as_str()),
                ],
            )
            .await?;
        response.redirect_target(STEP)
    }

    /// Follows one redirect hop (GET `url`, expects 302/303) and returns its target: the
    /// identity provider's redirect to our callback, or the callback's to the client.
    pub async fn follow(&self, url: &str) -> Result<String, OAuthClientError> {
        self.get(url).await?.redirect_target("redirect")
    }

    /// GETs the server's callback URL (`callback_url`, as the identity provider redirected to
    /// it), expects a redirect to the client's redirect URI and checks the answer with
    /// [`authorization_answer`](Self::authorization_answer).
    pub async fn finish_authorization(
        &self,
        request: &AuthorizationRequest,
        callback_url: &str,
    ) -> Result<AuthorizationCode, OAuthClientError> {
        const STEP: &str = "callback";
        let response = self.get(callback_url).await?;
        let target = response.redirect_target(STEP)?;
        self.authorization_answer(STEP, request, &response, &target)
    }

    /// Checks a redirect to the client (`location`) as the client does: it goes to the
    /// request's redirect URI, `state` matches, `iss` (when present) is the expected issuer;
    /// an `error` becomes [`OAuthClientError::Authorization`].
    pub fn authorization_answer(
        &self,
        step: &'static str,
        request: &AuthorizationRequest,
        response: &TestResponse,
        location: &str,
    ) -> Result<AuthorizationCode, OAuthClientError> {
        if !is_redirect_to(location, &request.redirect_uri) {
            return Err(response.protocol(
                step,
                format!("redirected to {location}, not to {}", request.redirect_uri),
            ));
        }
        let params = query_params(location);
        let get = |name: &str| params.get(name).cloned();
        if let Some(error) = get("error") {
            return Err(OAuthClientError::Authorization {
                step,
                error,
                description: get("error_description"),
                state: get("state"),
                iss: get("iss"),
            });
        }
        if get("state").as_deref() != Some(request.state.as_str()) {
            return Err(response.protocol(
                step,
                format!("state {:?} is not {:?}", get("state"), request.state),
            ));
        }
        let iss = get("iss");
        if let Some(iss) = &iss
            && iss != &self.endpoints.issuer
        {
            return Err(response.protocol(
                step,
                format!("iss {iss:?} is not {:?} (RFC 9207)", self.endpoints.issuer),
            ));
        }
        let code = get("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| response.protocol(step, "the redirect has no code"))?;
        Ok(AuthorizationCode {
            code,
            code_verifier: request.pkce.verifier.clone(),
            redirect_uri: request.redirect_uri.clone(),
            state: request.state.clone(),
            iss,
            resource: request.resource.clone(),
        })
    }

    /// The whole browser part of a login: sends the authorization request, approves the
    /// consent form, lets the identity provider sign the user in (FakeAuthKit does it without
    /// UI), follows its redirect to the server's callback, and returns the checked code.
    ///
    /// Redirects are followed one by one (at most 10 hops); a `200` page with a `txn_id`
    /// form is taken as the consent page and approved. A code sent straight back by the
    /// authorization request is accepted only with
    /// [`accept_immediate_code`](Self::accept_immediate_code).
    pub async fn authorize_and_consent(
        &self,
        client: &RegisteredClient,
        options: &AuthorizeOptions,
    ) -> Result<AuthorizationCode, OAuthClientError> {
        let request = self.authorization_request(client, options);
        let mut next = if self.accept_immediate_code {
            const STEP: &str = "authorize";
            let response = self.get(&request.url).await?;
            let target = response.redirect_target(STEP)?;
            if is_redirect_to(&target, &request.redirect_uri) {
                return self.authorization_answer(STEP, &request, &response, &target);
            }
            target
        } else {
            self.start_authorization(&request).await?
        };
        for _ in 0..MAX_HOPS {
            let response = self.get(&next).await?;
            if response.status == 200 {
                let form = ConsentForm::parse(response, "consent page")?;
                next = self.submit_consent(&form, ConsentDecision::Approve).await?;
            } else {
                let target = response.redirect_target("login")?;
                if is_redirect_to(&target, &request.redirect_uri) {
                    return self.authorization_answer("login", &request, &response, &target);
                }
                next = target;
            }
            if is_redirect_to(&next, &request.redirect_uri) {
                // Only a denial or an error goes straight back from the consent form.
                let response = TestResponse {
                    url: next.clone(),
                    status: 302,
                    headers: HeaderMap::new(),
                    body: Bytes::new(),
                };
                return self.authorization_answer("consent", &request, &response, &next);
            }
        }
        Err(OAuthClientError::Protocol {
            step: "login",
            message: format!("more than {MAX_HOPS} redirects"),
            status: 302,
            body: String::new(),
        })
    }

    // ---- token endpoint ---------------------------------------------------------------------

    /// POSTs `form` to the token endpoint with the client's authentication added (its
    /// `client_id`, and its secret by its registered method); any status is `Ok`.
    pub async fn token_request(
        &self,
        client: &RegisteredClient,
        form: &[(&str, &str)],
    ) -> Result<TestResponse, OAuthClientError> {
        let url = self.endpoints.token_endpoint.clone();
        self.authenticated_post("token", &url, client, form).await
    }

    async fn authenticated_post(
        &self,
        step: &'static str,
        url: &str,
        client: &RegisteredClient,
        form: &[(&str, &str)],
    ) -> Result<TestResponse, OAuthClientError> {
        let mut all: Vec<(&str, &str)> = form.to_vec();
        let mut request = self.http.post(url);
        match (
            client.token_endpoint_auth_method.as_str(),
            &client.client_secret,
        ) {
            ("client_secret_basic", Some(secret)) => {
                let encode =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let credentials = format!("{}:{}", encode(&client.client_id), encode(secret));
                request = request.insert_header((
                    header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(credentials)),
                ));
            }
            ("client_secret_post", Some(secret)) => {
                all.push(("client_id", &client.client_id));
                all.push(("client_secret", secret));
            }
            _ => all.push(("client_id", &client.client_id)),
        }
        self.send(step, url, request, Body::Form(&all)).await
    }

    /// Redeems `code` (`grant_type=authorization_code` with `code_verifier`, `redirect_uri` and
    /// `resource`) and expects `200` with a Bearer token.
    pub async fn exchange_code(
        &self,
        client: &RegisteredClient,
        code: &AuthorizationCode,
    ) -> Result<TokenSet, OAuthClientError> {
        const STEP: &str = "token (authorization_code)";
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.code.as_str()),
            ("code_verifier", code.code_verifier.as_str()),
            ("redirect_uri", code.redirect_uri.as_str()),
        ];
        if let Some(resource) = &code.resource {
            form.push(("resource", resource));
        }
        let response = self.token_request(client, &form).await?.expect(STEP, 200)?;
        TokenSet::parse(&response, STEP)
    }

    /// Uses `refresh_token` (`grant_type=refresh_token`, optional narrower `scope`, the
    /// resource) and expects `200` with a Bearer token.
    pub async fn refresh(
        &self,
        client: &RegisteredClient,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> Result<TokenSet, OAuthClientError> {
        const STEP: &str = "token (refresh_token)";
        let resource = self.endpoints.resource.clone();
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("resource", resource.as_str()),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let response = self.token_request(client, &form).await?.expect(STEP, 200)?;
        TokenSet::parse(&response, STEP)
    }

    /// Revokes `token` (RFC 7009, with an optional `token_type_hint`) and expects `200`.
    pub async fn revoke(
        &self,
        client: &RegisteredClient,
        token: &str,
        token_type_hint: Option<&str>,
    ) -> Result<(), OAuthClientError> {
        const STEP: &str = "revoke";
        let url = self.endpoints.revocation_endpoint.clone().ok_or_else(|| {
            OAuthClientError::Protocol {
                step: STEP,
                message: "the server has no revocation endpoint".to_owned(),
                status: 0,
                body: String::new(),
            }
        })?;
        let mut form = vec![("token", token)];
        if let Some(hint) = token_type_hint {
            form.push(("token_type_hint", hint));
        }
        self.authenticated_post(STEP, &url, client, &form)
            .await?
            .expect(STEP, 200)?;
        Ok(())
    }

    // ---- MCP --------------------------------------------------------------------------------

    /// POSTs a JSON-RPC message to the MCP endpoint as an MCP client does (`Content-Type:
    /// application/json`, `Accept: application/json, text/event-stream`,
    /// `MCP-Protocol-Version`), with `Authorization: Bearer` when `access_token` is given. No
    /// cookies are sent. Any status is `Ok`.
    pub async fn mcp_request(
        &self,
        access_token: Option<&str>,
        message: &Value,
    ) -> Result<TestResponse, OAuthClientError> {
        let url = self.endpoints.mcp_url.clone();
        let mut request = self
            .http
            .post(&url)
            .insert_header((header::ACCEPT, "application/json, text/event-stream"))
            .insert_header(("MCP-Protocol-Version", MCP_PROTOCOL_VERSION));
        if let Some(token) = access_token {
            request = request.insert_header((header::AUTHORIZATION, format!("Bearer {token}")));
        }
        let transport = |message: String| OAuthClientError::Transport {
            step: "mcp",
            url: url.clone(),
            message,
        };
        let mut response = request
            .send_json(message)
            .await
            .map_err(|e| transport(e.to_string()))?;
        let body = response
            .body()
            .limit(MAX_BODY_BYTES)
            .await
            .map_err(|e| transport(format!("reading the body: {e}")))?;
        Ok(TestResponse {
            url: url.clone(),
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body,
        })
    }

    /// Calls MCP tool `name` with `arguments` (a JSON-RPC `tools/call`, stateless: no
    /// `initialize` first). Returns the answer whatever its status: `.status` and `.json()`.
    pub async fn call_tool(
        &self,
        access_token: &str,
        name: &str,
        arguments: Value,
    ) -> Result<TestResponse, OAuthClientError> {
        let message = json!({
            "jsonrpc": "2.0",
            "id": self.next_request_id(),
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        });
        self.mcp_request(Some(access_token), &message).await
    }

    fn next_request_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    // ---- everything -------------------------------------------------------------------------

    /// Discovery, registration of a public client ([`default_client_metadata`]), a login
    /// with consent, and the code exchange.
    ///
    /// [`default_client_metadata`]: Self::default_client_metadata
    pub async fn full_login(&mut self) -> Result<Login, OAuthClientError> {
        let discovery = self.discover().await?;
        let client = self.register(&Self::default_client_metadata()).await?;
        self.login_after_discovery(discovery, client).await
    }

    /// Like [`full_login`](Self::full_login) without registration: `client` is known to the
    /// server already, e.g. a [metadata-document client](RegisteredClient::metadata_document).
    pub async fn full_login_as(
        &mut self,
        client: &RegisteredClient,
    ) -> Result<Login, OAuthClientError> {
        let discovery = self.discover().await?;
        self.login_after_discovery(discovery, client.clone()).await
    }

    async fn login_after_discovery(
        &mut self,
        discovery: Discovery,
        client: RegisteredClient,
    ) -> Result<Login, OAuthClientError> {
        let code = self
            .authorize_and_consent(&client, &AuthorizeOptions::default())
            .await?;
        let tokens = self.exchange_code(&client, &code).await?;
        Ok(Login {
            discovery,
            client,
            tokens,
        })
    }
}

enum Body<'a> {
    Empty,
    Form(&'a [(&'a str, &'a str)]),
    Json(&'a Value),
}

impl ConsentForm {
    /// Reads the consent form of `page`: the `action` of its `<form>` (resolved against the
    /// page URL) and its hidden `txn_id` and `csrf_token` fields.
    pub fn parse(page: TestResponse, step: &'static str) -> Result<Self, OAuthClientError> {
        let html = page.text();
        let action = tags(&html, "form")
            .next()
            .and_then(|attrs| attr(attrs, "action"))
            .unwrap_or_default();
        let action = Url::parse(&page.url)
            .and_then(|base| base.join(&action))
            .map(String::from)
            .map_err(|_| page.protocol(step, "no usable form action"))?;
        let field = |name: &str| {
            hidden_field(&html, name)
                .ok_or_else(|| page.protocol(step, format!("no hidden {name} field")))
        };
        Ok(Self {
            action,
            txn_id: field("txn_id")?,
            csrf_token: field("csrf_token")?,
            page,
        })
    }
}

/// The value of the `<input name="{name}">` of `html` (HTML entities decoded).
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    tags(html, "input")
        .find(|attrs| attr(attrs, "name").as_deref() == Some(name))
        .and_then(|attrs| attr(attrs, "value"))
}

/// The attribute text of every `<{tag} …>` of `html`.
fn tags<'a>(html: &'a str, tag: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{tag}");
    let mut rest = html;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find(&open)? + open.len();
            let after = &rest[start..];
            // `<input` but not `<inputs`.
            if !after.starts_with(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/') {
                rest = after;
                continue;
            }
            let end = after.find('>')?;
            rest = &after[end..];
            return Some(&after[..end]);
        }
    })
}

/// The value of a double-quoted attribute, entities decoded.
fn attr(attrs: &str, name: &str) -> Option<String> {
    let marker = format!("{name}=\"");
    let mut search = attrs;
    loop {
        let at = search.find(&marker)?;
        let preceded_by_space = at == 0
            || search[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_whitespace());
        let value_start = at + marker.len();
        if preceded_by_space {
            let end = search[value_start..].find('"')? + value_start;
            return Some(unescape_html(&search[value_start..end]));
        }
        search = &search[value_start..];
    }
}

fn unescape_html(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The query parameters of URL `url` (the last value of a repeated one), empty when it does
/// not parse.
pub fn query_params(url: &str) -> BTreeMap<String, String> {
    Url::parse(url)
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// Whether `location` goes to `redirect_uri` (same scheme, host, port and path; query ignored).
fn is_redirect_to(location: &str, redirect_uri: &str) -> bool {
    match (Url::parse(location), Url::parse(redirect_uri)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
                && a.path() == b.path()
        }
        _ => false,
    }
}

/// A quoted parameter of a `WWW-Authenticate` challenge.
fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let marker = format!("{name}=\"");
    let mut search = challenge;
    loop {
        let at = search.find(&marker)?;
        let boundary = at == 0
            || search[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c == ' ' || c == ',');
        let start = at + marker.len();
        if boundary {
            let end = search[start..].find('"')? + start;
            return Some(search[start..end].to_owned());
        }
        search = &search[start..];
    }
}

/// RFC 8414 §3.1: `/.well-known/oauth-authorization-server` inserted before the issuer's path.
fn authorization_server_metadata_url(issuer: &str) -> Option<String> {
    let mut url = Url::parse(issuer).ok()?;
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    url.set_query(None);
    Some(url.into())
}
