//! [`FakeAuthKit`]: a local emulator of WorkOS AuthKit, served over real HTTP.
//!
//! Layout: the handle ([`FakeAuthKit`]) owns the server control (thread, shutdown channel) and
//! shares a [`Shared`] state with the HTTP handlers. Each server incarnation gets a generation
//! number; a handler of an incarnation that is no longer live never answers, so a request that
//! slips in while the server goes [`Failure::Down`] ends with a dropped connection, never with
//! a response.
//!
//! The OAuth endpoints of a WorkOS Connect application (`/oauth2/authorize`, `/oauth2/token`)
//! live in the `connect` submodule; dynamic client registration (`/oauth2/register`, whose
//! clients use the same endpoints) in the `dcr` submodule.

mod connect;
mod dcr;
mod http10;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::{Method, StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

/// RSA-2048 key pairs generated once with openssl: (PKCS#8 private key, SPKI public key).
const KEY_PEMS: [(&str, &str); 6] = [
    (
        include_str!("keys/key1.pem"),
        include_str!("keys/key1.pub.pem"),
    ),
    (
        include_str!("keys/key2.pem"),
        include_str!("keys/key2.pub.pem"),
    ),
    (
        include_str!("keys/key3.pem"),
        include_str!("keys/key3.pub.pem"),
    ),
    (
        include_str!("keys/key4.pem"),
        include_str!("keys/key4.pub.pem"),
    ),
    (
        include_str!("keys/key5.pem"),
        include_str!("keys/key5.pub.pem"),
    ),
    (
        include_str!("keys/key6.pem"),
        include_str!("keys/key6.pub.pem"),
    ),
];
/// Keys `0..ROTATION_POOL` are signed with and published; rotation cycles through them.
const ROTATION_POOL: usize = 5;
/// The key that is never published (forged tokens).
const UNPUBLISHED_KEY: usize = 5;

const DEFAULT_SUB: &str = "user_01TEST";
const DEFAULT_SID: &str = "app_consent_test";
const DEFAULT_LIFETIME_SECS: u64 = 300;
const KID_PREFIX: &str = "sso_oidc_key_pair_";
/// How long a restart after [`Failure::Down`] keeps trying to listen on the same port.
const REBIND_TIMEOUT: Duration = Duration::from_secs(5);

const READ_METHODS: &[Method] = &[Method::GET, Method::HEAD];
const USERINFO_METHODS: &[Method] = &[Method::GET, Method::POST];

/// A failure [`FakeAuthKit`] injects into every endpoint, set with [`FakeAuthKit::set_failure`].
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Failure {
    /// No failure: every endpoint answers normally.
    #[default]
    None,
    /// Every endpoint answers `500 Internal Server Error` with the JSON body
    /// `{"error":"server_error"}`.
    ServerError,
    /// Every response is delayed by the given duration, then answered normally.
    Slow(Duration),
    /// The server is unreachable: it stops listening, so connections are refused. Setting any
    /// other failure afterwards restarts it on the same port.
    Down,
}

/// An endpoint of [`FakeAuthKit`], for counting requests with [`FakeAuthKit::calls`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /.well-known/oauth-authorization-server` (RFC 8414 metadata).
    AuthorizationServerMetadata,
    /// `GET /.well-known/openid-configuration` (OpenID Connect discovery).
    OpenIdConfiguration,
    /// `GET /oauth2/jwks` (the JSON Web Key Set).
    Jwks,
    /// `GET /oauth2/userinfo` (the OpenID Connect userinfo endpoint).
    UserInfo,
    /// `GET /oauth2/authorize` (the authorization endpoint of Connect OAuth applications).
    Authorize,
    /// `POST /oauth2/token` (the token endpoint of Connect OAuth applications).
    Token,
    /// `POST /oauth2/register` (dynamic client registration, RFC 7591).
    Register,
}

impl Endpoint {
    const COUNT: usize = 7;

    fn index(self) -> usize {
        match self {
            Endpoint::AuthorizationServerMetadata => 0,
            Endpoint::OpenIdConfiguration => 1,
            Endpoint::Jwks => 2,
            Endpoint::UserInfo => 3,
            Endpoint::Authorize => 4,
            Endpoint::Token => 5,
            Endpoint::Register => 6,
        }
    }
}

/// A local emulator of WorkOS AuthKit, listening on `127.0.0.1` at a random port.
///
/// It serves the AuthKit discovery documents (`/.well-known/oauth-authorization-server`,
/// `/.well-known/openid-configuration`), the JWKS (`/oauth2/jwks`), the userinfo endpoint
/// (`/oauth2/userinfo`), the OAuth endpoints of WorkOS Connect applications
/// (`/oauth2/authorize`, `/oauth2/token`) and dynamic client registration
/// (`/oauth2/register`) from its own thread and actix system, so it works from synchronous
/// code as well as from inside an actix or tokio runtime (for example in
/// `#[actix_web::test]`).
///
/// Connect applications are registered with
/// [`register_connect_app`](Self::register_connect_app); MCP clients register themselves at
/// `/oauth2/register` (RFC 7591, public clients included). The authorization endpoint then
/// signs in [the current user](Self::set_current_user) without any UI and redirects back with
/// a code, which the token endpoint exchanges for RS256 access tokens, ID tokens and rotating
/// refresh tokens. For dynamically registered clients the `resource` parameter is a resource
/// indicator (RFC 8707): it becomes the access token's `aud`, as in AuthKit's MCP support.
///
/// Tokens are RS256 JWTs shaped like AuthKit access tokens ([`mint`](Self::mint)); signing keys
/// can be rotated ([`rotate_keys`](Self::rotate_keys), [`retire_old_keys`](Self::retire_old_keys),
/// [`replace_key_same_kid`](Self::replace_key_same_kid)); failures can be injected
/// ([`set_failure`](Self::set_failure)) and requests counted ([`calls`](Self::calls)).
///
/// Cloning is cheap: clones share the same server and state. The server stops when
/// [`stop`](Self::stop) is called or when the last clone is dropped.
#[derive(Clone)]
pub struct FakeAuthKit {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// The public port (the issuer's).
    port: u16,
    /// The port of the actix server: the public one, or behind the HTTP/1.0 front, its own.
    server_port: u16,
    control: Mutex<Control>,
    /// The HTTP/1.0 front of [`FakeAuthKit::start_http10`], if any.
    _front: Option<http10::Front>,
}

/// The running server, if any. Dropping it (with the last [`FakeAuthKit`]) stops the server.
struct Control {
    server: Option<RunningServer>,
    generation: u64,
    stopped: bool,
}

struct RunningServer {
    shutdown: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

/// State shared by the handle and the HTTP handlers.
struct Shared {
    issuer: String,
    keys: Mutex<KeyRing>,
    failure: Mutex<Failure>,
    /// Generation of the server incarnation that may answer; 0 when none may.
    live_generation: AtomicU64,
    calls: [AtomicUsize; Endpoint::COUNT],
    users: Mutex<HashMap<String, Value>>,
    revoked: Mutex<HashSet<String>>,
    /// Connect applications, sign-in sessions and the grants of the OAuth endpoints.
    connect: Mutex<connect::ConnectState>,
    /// Seconds the emulator's clock runs ahead of the system's ([`FakeAuthKit::advance_clock`]).
    clock_offset: AtomicU64,
}

struct KeyMaterial {
    index: usize,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_pem: &'static str,
    /// Public JWK without a `kid` (the kid belongs to the key ring, not the material).
    jwk: Jwk,
}

#[derive(Clone)]
struct ActiveKey {
    kid: String,
    key: &'static KeyMaterial,
}

struct KeyRing {
    current: ActiveKey,
    /// The key that was current before the last rotation, still published.
    previous: Option<ActiveKey>,
}

impl KeyRing {
    fn published(&self) -> Vec<ActiveKey> {
        let mut keys = vec![self.current.clone()];
        keys.extend(self.previous.clone());
        keys
    }

    fn material_in_use(&self) -> Vec<usize> {
        self.published().iter().map(|k| k.key.index).collect()
    }

    fn fresh_kid(&self) -> String {
        loop {
            let kid = format!("{KID_PREFIX}{}", ulid_like());
            if self.published().iter().all(|k| k.kid != kid) {
                return kid;
            }
        }
    }
}

impl FakeAuthKit {
    /// Starts the emulator on `127.0.0.1` at a port chosen by the OS and returns once it is
    /// listening.
    ///
    /// The server runs on its own thread with its own actix system and one worker, so this may
    /// be called with or without a surrounding async runtime.
    ///
    /// # Panics
    ///
    /// If no local port can be bound or the server thread cannot be started.
    #[must_use = "the emulator stops when the last FakeAuthKit handle is dropped"]
    pub fn start() -> FakeAuthKit {
        Self::start_with(false)
    }

    /// Like [`start`](Self::start), but the emulator speaks HTTP/1.0 like an old server or an
    /// intermediary: every answer has the status line `HTTP/1.0 …`, a `Content-Length` and no
    /// `Connection` header, and the connection closes after it (one request per connection).
    /// [`Failure::Down`] stops the server behind the HTTP/1.0 front: connections are then
    /// accepted and closed without an answer.
    #[must_use = "the emulator stops when the last FakeAuthKit handle is dropped"]
    pub fn start_http10() -> FakeAuthKit {
        Self::start_with(true)
    }

    fn start_with(http10: bool) -> FakeAuthKit {
        crate::install_jwt_provider();
        let bind = || {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .unwrap_or_else(|err| panic!("FakeAuthKit: cannot listen on 127.0.0.1: {err}"));
            let port = listener
                .local_addr()
                .unwrap_or_else(|err| panic!("FakeAuthKit: cannot read the bound address: {err}"))
                .port();
            (listener, port)
        };
        let (listener, server_port) = bind();
        let (front, port) = if http10 {
            let (public, port) = bind();
            let front = http10::Front::spawn(public, server_port).unwrap_or_else(|err| {
                panic!("FakeAuthKit: cannot start the HTTP/1.0 front: {err}")
            });
            (Some(front), port)
        } else {
            (None, server_port)
        };
        let current = ActiveKey {
            kid: format!("{KID_PREFIX}{}", ulid_like()),
            key: allocate_key(&[]),
        };
        let shared = Arc::new(Shared {
            issuer: format!("http://127.0.0.1:{port}"),
            keys: Mutex::new(KeyRing {
                current,
                previous: None,
            }),
            failure: Mutex::new(Failure::None),
            live_generation: AtomicU64::new(0),
            clock_offset: AtomicU64::new(0),
            calls: std::array::from_fn(|_| AtomicUsize::new(0)),
            users: Mutex::new(HashMap::new()),
            revoked: Mutex::new(HashSet::new()),
            connect: Mutex::new(connect::ConnectState::new()),
        });
        let inner = Inner {
            shared,
            port,
            server_port,
            _front: front,
            control: Mutex::new(Control {
                server: None,
                generation: 0,
                stopped: false,
            }),
        };
        inner.launch(&mut lock(&inner.control), listener);
        FakeAuthKit {
            inner: Arc::new(inner),
        }
    }

    /// The issuer, `http://127.0.0.1:PORT` (no trailing slash), as AuthKit's
    /// `https://<subdomain>.authkit.app`.
    pub fn issuer(&self) -> String {
        self.inner.shared.issuer.clone()
    }

    /// The JWKS address, [`issuer`](Self::issuer) + `/oauth2/jwks`.
    pub fn jwks_uri(&self) -> String {
        format!("{}/oauth2/jwks", self.inner.shared.issuer)
    }

    /// The port the emulator listens on (it keeps it across [`Failure::Down`]).
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// Mints an RS256 access token signed with the current key; the header is
    /// `{"alg":"RS256","typ":"JWT","kid":<current kid>}`.
    ///
    /// Default claims: `iss` = [`issuer`](Self::issuer), `sub` = `"user_01TEST"`, `iat` = now,
    /// `exp` = now + 300 s, a random `jti` and `sid` = `"app_consent_test"`. Each key of
    /// `claims` (a JSON object, or `null` for none) overrides or adds a claim; a key whose value
    /// is `null` removes that claim, so `json!({"exp": null})` mints a token without `exp`.
    ///
    /// # Panics
    ///
    /// If `claims` is neither an object nor `null`.
    pub fn mint(&self, claims: Value) -> String {
        let current = self.current_key();
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(current.kid);
        self.sign(&header, claims, current.key)
    }

    /// Like [`mint`](Self::mint) (same default claims, signed with the current key), but with
    /// `header` used as given, so a test can choose `kid`, `typ`, `crit`, ….
    ///
    /// # Panics
    ///
    /// If `claims` is neither an object nor `null`, or if `header.alg` is not an RSA algorithm
    /// (`RS256`, `RS384`, `RS512`, `PS256`, `PS384`, `PS512`).
    pub fn mint_with_header(&self, header: Header, claims: Value) -> String {
        let current = self.current_key();
        self.sign(&header, claims, current.key)
    }

    /// Mints a forged token: like [`mint`](Self::mint), with the current `kid` in the header,
    /// but signed by an RSA key that is never published in the JWKS.
    ///
    /// # Panics
    ///
    /// If `claims` is neither an object nor `null`.
    pub fn mint_with_unpublished_key(&self, claims: Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.current_kid());
        self.sign(&header, claims, &key_pool()[UNPUBLISHED_KEY])
    }

    /// The `kid` of the key tokens are currently signed with (`sso_oidc_key_pair_…`).
    pub fn current_kid(&self) -> String {
        self.current_key().kid
    }

    /// The current public key as PEM (SPKI, `-----BEGIN PUBLIC KEY-----`), for instance to
    /// forge an HS256 token keyed with it.
    pub fn public_key_pem(&self) -> String {
        self.current_key().key.public_pem.to_owned()
    }

    /// Rotates the signing key: a new key under a new `kid` becomes current. The JWKS then
    /// publishes the new key and the previous one (keys older than that are dropped).
    pub fn rotate_keys(&self) {
        let mut ring = lock(&self.inner.shared.keys);
        let fresh = ActiveKey {
            kid: ring.fresh_kid(),
            key: allocate_key(&ring.material_in_use()),
        };
        let old = std::mem::replace(&mut ring.current, fresh);
        ring.previous = Some(old);
    }

    /// Retires every key but the current one: the JWKS publishes only the current key.
    pub fn retire_old_keys(&self) {
        lock(&self.inner.shared.keys).previous = None;
    }

    /// Replaces the current key material while keeping its `kid` (keys rotated under the same
    /// id). The JWKS publishes only the new key, so tokens signed before no longer verify.
    pub fn replace_key_same_kid(&self) {
        let mut ring = lock(&self.inner.shared.keys);
        ring.current.key = allocate_key(&ring.material_in_use());
        ring.previous = None;
    }

    /// Moves the emulator's clock forward by `by` (whole seconds): tokens it mints from now on
    /// are dated by it, and its userinfo endpoint judges expiry by it, so a test sees a token
    /// expire without waiting.
    pub fn advance_clock(&self, by: Duration) {
        self.inner
            .shared
            .clock_offset
            .fetch_add(by.as_secs(), Ordering::Relaxed);
    }

    /// Injects `failure` into every endpoint, replacing the previous one.
    ///
    /// [`Failure::Down`] stops the server (connections are refused once this returns); any
    /// other value restarts it on the same port if it was down. After [`stop`](Self::stop) the
    /// failure is only recorded.
    ///
    /// # Panics
    ///
    /// If the server must restart and the port cannot be listened on again within 5 seconds.
    pub fn set_failure(&self, failure: Failure) {
        let mut control = lock(&self.inner.control);
        let down = failure == Failure::Down;
        *lock(&self.inner.shared.failure) = failure;
        if down {
            self.inner.shut_down(&mut control);
        } else if control.server.is_none() && !control.stopped {
            let listener = self.inner.rebind();
            self.inner.launch(&mut control, listener);
        }
    }

    /// The number of requests `endpoint` received, including those answered with an injected
    /// failure (none are received while [`Failure::Down`]).
    pub fn calls(&self, endpoint: Endpoint) -> usize {
        self.inner.shared.calls[endpoint.index()].load(Ordering::SeqCst)
    }

    /// Resets every request counter to zero.
    pub fn reset_calls(&self) {
        for counter in &self.inner.shared.calls {
            counter.store(0, Ordering::SeqCst);
        }
    }

    /// Sets the profile the userinfo endpoint returns for `sub`.
    ///
    /// The profile (a JSON object) is laid over the default one (`email` = `<sub>@example.com`,
    /// `email_verified` = `true`, `first_name` = `"Test"`, `last_name` = `"User"`); a `null`
    /// value removes a default field. `sub` is always the token's subject. `null` restores the
    /// default profile.
    ///
    /// Its `org_id`, `role`, `roles` and `permissions` also become claims of the access tokens
    /// the token endpoint issues to `sub`, as AuthKit's carry the organization a user signed in
    /// to (see [`set_current_user`](Self::set_current_user)).
    ///
    /// # Panics
    ///
    /// If `profile` is neither an object nor `null`.
    pub fn set_user(&self, sub: &str, profile: Value) {
        let mut users = lock(&self.inner.shared.users);
        match profile {
            Value::Null => {
                users.remove(sub);
            }
            Value::Object(_) => {
                users.insert(sub.to_owned(), profile);
            }
            other => {
                panic!("FakeAuthKit::set_user: the profile must be a JSON object, got {other}")
            }
        }
    }

    /// Revokes every session of `sub`, as AuthKit does on sign-out: afterwards the userinfo
    /// endpoint answers `401` to that subject's tokens, the token endpoint refuses its refresh
    /// tokens and its unused authorization codes (`invalid_grant`).
    ///
    /// Tokens made with [`mint`](Self::mint) stay refused for good. A later
    /// `/oauth2/authorize` for `sub` signs in again and starts a new session, whose tokens
    /// (they carry its `sid`) are accepted until the next revocation.
    pub fn revoke_sessions_for(&self, sub: &str) {
        lock(&self.inner.shared.revoked).insert(sub.to_owned());
        lock(&self.inner.shared.connect).revoke_sessions_of(sub);
    }

    /// Stops the server for good (connections are refused once this returns); later
    /// [`set_failure`](Self::set_failure) calls do not restart it. Calling it again does
    /// nothing.
    pub fn stop(&self) {
        let mut control = lock(&self.inner.control);
        control.stopped = true;
        self.inner.shut_down(&mut control);
    }

    fn current_key(&self) -> ActiveKey {
        lock(&self.inner.shared.keys).current.clone()
    }

    fn sign(&self, header: &Header, overrides: Value, key: &KeyMaterial) -> String {
        crate::install_jwt_provider();
        let claims = self.claims_with_defaults(overrides);
        jsonwebtoken::encode(header, &claims, &key.encoding).unwrap_or_else(|err| {
            panic!(
                "FakeAuthKit: cannot sign a token with alg {:?} and an RSA key: {err}",
                header.alg
            )
        })
    }

    fn claims_with_defaults(&self, overrides: Value) -> Map<String, Value> {
        let now = self.inner.shared.now();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.inner.shared.issuer));
        claims.insert("sub".into(), json!(DEFAULT_SUB));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + DEFAULT_LIFETIME_SECS));
        claims.insert("jti".into(), json!(ulid_like()));
        claims.insert("sid".into(), json!(DEFAULT_SID));
        match overrides {
            Value::Null => {}
            Value::Object(overrides) => overlay(&mut claims, overrides),
            other => panic!("FakeAuthKit: the claims must be a JSON object, got {other}"),
        }
        claims
    }
}

impl fmt::Debug for FakeAuthKit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeAuthKit")
            .field("issuer", &self.inner.shared.issuer)
            .field("current_kid", &self.current_kid())
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Starts a new server incarnation on `listener`; it becomes the only one allowed to answer.
    fn launch(&self, control: &mut Control, listener: TcpListener) {
        control.generation += 1;
        self.shared
            .live_generation
            .store(control.generation, Ordering::SeqCst);
        let server = spawn_server(&self.shared, control.generation, listener)
            .unwrap_or_else(|err| panic!("FakeAuthKit: cannot start the server: {err}"));
        control.server = Some(server);
    }

    /// Stops the running server, if any, and waits until its port is closed.
    fn shut_down(&self, control: &mut Control) {
        self.shared.live_generation.store(0, Ordering::SeqCst);
        if let Some(server) = control.server.take() {
            let _ = server.shutdown.send(());
            let _ = server.thread.join();
        }
    }

    /// Listens on the emulator's port again, retrying while the old socket is released.
    fn rebind(&self) -> TcpListener {
        let deadline = Instant::now() + REBIND_TIMEOUT;
        loop {
            match TcpListener::bind((Ipv4Addr::LOCALHOST, self.server_port)) {
                Ok(listener) => return listener,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(err) => panic!(
                    "FakeAuthKit: cannot listen on 127.0.0.1:{} again: {err}",
                    self.server_port
                ),
            }
        }
    }
}

/// Runs one server incarnation on its own thread and actix system; returns once it serves.
fn spawn_server(
    shared: &Arc<Shared>,
    generation: u64,
    listener: TcpListener,
) -> io::Result<RunningServer> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let ctx = ServerCtx {
        shared: Arc::clone(shared),
        generation,
    };
    let port = listener.local_addr()?.port();
    let thread = std::thread::Builder::new()
        .name(format!("fake-authkit-{port}"))
        .spawn(move || serve(ctx, listener, shutdown_rx, ready_tx))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(RunningServer {
            shutdown: shutdown_tx,
            thread,
        }),
        Ok(Err(err)) => {
            let _ = thread.join();
            Err(err)
        }
        Err(_) => {
            let _ = thread.join();
            Err(io::Error::other("the server thread exited while starting"))
        }
    }
}

fn serve(
    ctx: ServerCtx,
    listener: TcpListener,
    shutdown: oneshot::Receiver<()>,
    ready: mpsc::Sender<io::Result<()>>,
) {
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let ctx = web::Data::new(ctx);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(ctx.clone())
                .configure(routes)
                .default_service(web::to(not_found))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener);
        let server = match server {
            Ok(server) => server.run(),
            Err(err) => {
                let _ = ready.send(Err(err));
                return;
            }
        };
        let handle = server.handle();
        // Stop on an explicit request, or when the last FakeAuthKit handle is dropped.
        actix_web::rt::spawn(async move {
            let _ = shutdown.await;
            handle.stop(false).await;
        });
        let _ = ready.send(Ok(()));
        let _ = server.await;
    });
    // The listener is closed now; stopping the system also stops the worker, which closes the
    // connections still open (keep-alive, or requests held by a delay).
    actix_web::rt::System::current().stop();
    let _ = system.run();
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/oauth-authorization-server",
        web::to(authorization_server_metadata),
    )
    .route(
        "/.well-known/openid-configuration",
        web::to(openid_configuration),
    )
    .route("/oauth2/jwks", web::to(jwks))
    .route("/oauth2/userinfo", web::to(userinfo))
    .route("/oauth2/authorize", web::to(connect::authorize))
    .route("/oauth2/token", web::to(connect::token))
    .route("/oauth2/register", web::to(dcr::register));
    // More OAuth endpoints go here, each with its own `Endpoint` variant (the enum is
    // non-exhaustive for that reason).
}

/// What every handler of one server incarnation knows.
struct ServerCtx {
    shared: Arc<Shared>,
    generation: u64,
}

impl ServerCtx {
    /// Applies the cross-cutting behaviour before an endpoint answers: counting, injected
    /// failures and the allowed methods. `Err` holds the response to send instead.
    async fn admit(
        &self,
        req: &HttpRequest,
        endpoint: Endpoint,
        methods: &[Method],
    ) -> Result<(), HttpResponse> {
        self.inject_failure(Some(endpoint)).await?;
        if methods.contains(req.method()) {
            return Ok(());
        }
        let allow = methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        Err(HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, allow))
            .json(json!({ "error": "method_not_allowed" })))
    }

    /// Counts the request (for a known endpoint) and applies the injected failure.
    async fn inject_failure(&self, endpoint: Option<Endpoint>) -> Result<(), HttpResponse> {
        self.hang_unless_live().await;
        if let Some(endpoint) = endpoint {
            self.shared.calls[endpoint.index()].fetch_add(1, Ordering::SeqCst);
        }
        let failure = lock(&self.shared.failure).clone();
        match failure {
            Failure::ServerError => Err(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
            )),
            Failure::Slow(delay) => {
                actix_web::rt::time::sleep(delay).await;
                self.hang_unless_live().await;
                Ok(())
            }
            Failure::None | Failure::Down => Ok(()),
        }
    }

    /// A stale incarnation (the emulator is down or restarted) never answers: its connections
    /// are dropped when its system stops.
    async fn hang_unless_live(&self) {
        if self.shared.live_generation.load(Ordering::SeqCst) != self.generation {
            std::future::pending::<()>().await;
        }
    }
}

async fn authorization_server_metadata(
    req: HttpRequest,
    ctx: web::Data<ServerCtx>,
) -> HttpResponse {
    if let Err(response) = ctx
        .admit(&req, Endpoint::AuthorizationServerMetadata, READ_METHODS)
        .await
    {
        return response;
    }
    let issuer = &ctx.shared.issuer;
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "registration_endpoint": format!("{issuer}/oauth2/register"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspection"),
        "jwks_uri": format!("{issuer}/oauth2/jwks"),
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "scopes_supported": ["email", "offline_access", "openid", "profile"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
    }))
}

async fn openid_configuration(req: HttpRequest, ctx: web::Data<ServerCtx>) -> HttpResponse {
    if let Err(response) = ctx
        .admit(&req, Endpoint::OpenIdConfiguration, READ_METHODS)
        .await
    {
        return response;
    }
    let issuer = &ctx.shared.issuer;
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "userinfo_endpoint": format!("{issuer}/oauth2/userinfo"),
        "jwks_uri": format!("{issuer}/oauth2/jwks"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspection"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
    }))
}

async fn jwks(req: HttpRequest, ctx: web::Data<ServerCtx>) -> HttpResponse {
    if let Err(response) = ctx.admit(&req, Endpoint::Jwks, READ_METHODS).await {
        return response;
    }
    let published = lock(&ctx.shared.keys).published();
    let keys = published
        .into_iter()
        .map(|active| {
            let mut jwk = active.key.jwk.clone();
            jwk.common.key_id = Some(active.kid);
            jwk
        })
        .collect();
    HttpResponse::Ok().json(JwkSet { keys })
}

async fn userinfo(req: HttpRequest, ctx: web::Data<ServerCtx>) -> HttpResponse {
    if let Err(response) = ctx.admit(&req, Endpoint::UserInfo, USERINFO_METHODS).await {
        return response;
    }
    match ctx.shared.authenticate(&req) {
        Some(sub) => HttpResponse::Ok().json(ctx.shared.profile(&sub)),
        None => HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#))
            .json(json!({ "error": "invalid_token" })),
    }
}

async fn not_found(ctx: web::Data<ServerCtx>) -> HttpResponse {
    if let Err(response) = ctx.inject_failure(None).await {
        return response;
    }
    error_response(StatusCode::NOT_FOUND, "not_found")
}

impl Shared {
    /// Unix seconds by the emulator's clock: the system's, plus what tests advanced it by.
    fn now(&self) -> u64 {
        unix_now() + self.clock_offset.load(Ordering::Relaxed)
    }

    /// The subject of the request's bearer token, when it is a valid, unexpired token signed
    /// with a published key and its session is not revoked: the session of its `sid` when the
    /// token endpoint issued it, otherwise every session of its subject.
    fn authenticate(&self, req: &HttpRequest) -> Option<String> {
        let token = bearer_token(req)?;
        let token_header = jsonwebtoken::decode_header(token).ok()?;
        // No extension is understood, so any critical one makes the token invalid (RFC 7515).
        if token_header.alg != Algorithm::RS256 || token_header.crit.is_some() {
            return None;
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_aud = false;
        // Expiry is checked below against the emulator's clock, which tests may advance.
        validation.validate_exp = false;
        validation.leeway = 0;
        crate::install_jwt_provider();
        let published = lock(&self.keys).published();
        let claims = published
            .iter()
            .filter(|active| {
                token_header
                    .kid
                    .as_ref()
                    .is_none_or(|kid| *kid == active.kid)
            })
            .find_map(|active| {
                jsonwebtoken::decode::<Map<String, Value>>(token, &active.key.decoding, &validation)
                    .ok()
            })?
            .claims;
        // Expired once `exp` is in the past (as jsonwebtoken judges it with no leeway).
        if claims.get("exp")?.as_u64()? < self.now() {
            return None;
        }
        let sub = claims.get("sub")?.as_str()?.to_owned();
        let sid = claims.get("sid").and_then(Value::as_str);
        let live = match sid.and_then(|sid| lock(&self.connect).session_alive(sid, &sub)) {
            Some(alive) => alive,
            None => !lock(&self.revoked).contains(&sub),
        };
        live.then_some(sub)
    }

    fn profile(&self, sub: &str) -> Map<String, Value> {
        let mut profile = Map::new();
        profile.insert("sub".into(), json!(sub));
        profile.insert("email".into(), json!(format!("{sub}@example.com")));
        profile.insert("email_verified".into(), json!(true));
        profile.insert("first_name".into(), json!("Test"));
        profile.insert("last_name".into(), json!("User"));
        if let Some(Value::Object(custom)) = lock(&self.users).get(sub) {
            overlay(&mut profile, custom.clone());
        }
        profile.insert("sub".into(), json!(sub));
        profile
    }
}

fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn error_response(status: StatusCode, error: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": error }))
}

/// Sets each key of `overrides` in `target`, removing those whose value is `null`.
fn overlay(target: &mut Map<String, Value>, overrides: Map<String, Value>) {
    for (key, value) in overrides {
        if value.is_null() {
            target.remove(&key);
        } else {
            target.insert(key, value);
        }
    }
}

/// The parsed key pairs, shared by every emulator in the process.
fn key_pool() -> &'static [KeyMaterial] {
    static POOL: OnceLock<Vec<KeyMaterial>> = OnceLock::new();
    POOL.get_or_init(|| {
        crate::install_jwt_provider();
        KEY_PEMS
            .iter()
            .enumerate()
            .map(|(index, (private_pem, public_pem))| {
                let encoding = EncodingKey::from_rsa_pem(private_pem.as_bytes())
                    .expect("embedded FakeAuthKit private key is a valid RSA PEM");
                let decoding = DecodingKey::from_rsa_pem(public_pem.as_bytes())
                    .expect("embedded FakeAuthKit public key is a valid RSA PEM");
                let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256)
                    .expect("embedded FakeAuthKit key converts to a JWK");
                jwk.common.public_key_use = Some(PublicKeyUse::Signature);
                jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
                KeyMaterial {
                    index,
                    encoding,
                    decoding,
                    public_pem,
                    jwk,
                }
            })
            .collect()
    })
}

/// Picks the next signing key of the pool, skipping the `exclude`d ones. The cursor is global,
/// so emulators started one after the other sign with different keys.
fn allocate_key(exclude: &[usize]) -> &'static KeyMaterial {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let pool = key_pool();
    loop {
        let index = NEXT.fetch_add(1, Ordering::Relaxed) % ROTATION_POOL;
        if !exclude.contains(&index) {
            return &pool[index];
        }
    }
}

/// A random 26-character Crockford base32 id, shaped like the ULIDs in AuthKit ids.
fn ulid_like() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut id = String::from("01");
    for _ in 0..24 {
        id.push(char::from(ALPHABET[usize::from(rand::random::<u8>() & 31)]));
    }
    id
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use jsonwebtoken::jwk::{Jwk, JwkSet};
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
    use serde_json::{Map, Value, json};

    use super::{Endpoint, Failure, FakeAuthKit};

    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn handle_is_send_sync_and_clone() {
        assert_send_sync_clone::<FakeAuthKit>();
    }

    async fn get(url: &str, bearer: Option<&str>) -> Result<(u16, Value), String> {
        let client = awc::Client::default();
        let mut request = client.get(url);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let mut response = request.send().await.map_err(|err| err.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .json::<Value>()
            .await
            .map_err(|err| err.to_string())?;
        Ok((status, body))
    }

    async fn fetch_jwks(fake: &FakeAuthKit) -> JwkSet {
        let (status, body) = get(&fake.jwks_uri(), None).await.expect("JWKS request");
        assert_eq!(status, 200);
        serde_json::from_value(body).expect("a JWK set")
    }

    fn kids(set: &JwkSet) -> Vec<String> {
        set.keys
            .iter()
            .map(|jwk| jwk.common.key_id.clone().expect("every JWK has a kid"))
            .collect()
    }

    fn validation(fake: &FakeAuthKit) -> Validation {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[fake.issuer()]);
        validation.validate_aud = false;
        validation
    }

    fn verify(token: &str, jwk: &Jwk, validation: &Validation) -> Option<Map<String, Value>> {
        crate::install_jwt_provider();
        let key = DecodingKey::from_jwk(jwk).expect("an RSA JWK");
        jsonwebtoken::decode::<Map<String, Value>>(token, &key, validation)
            .ok()
            .map(|data| data.claims)
    }

    fn find<'a>(set: &'a JwkSet, kid: &str) -> &'a Jwk {
        set.find(kid).expect("kid published in the JWKS")
    }

    #[actix_web::test]
    async fn jwks_publishes_the_current_key_and_minted_tokens_verify() {
        let fake = FakeAuthKit::start();
        assert_eq!(fake.issuer(), format!("http://127.0.0.1:{}", fake.port()));
        assert_eq!(fake.jwks_uri(), format!("{}/oauth2/jwks", fake.issuer()));

        let (_, raw) = get(&fake.jwks_uri(), None).await.unwrap();
        let key = &raw["keys"][0];
        assert_eq!(raw["keys"].as_array().unwrap().len(), 1);
        assert_eq!(key["kid"], json!(fake.current_kid()));
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["alg"], "RS256");
        assert_eq!(key["use"], "sig");
        assert!(key["n"].as_str().is_some_and(|n| n.len() > 300));
        assert_eq!(key["e"], "AQAB");
        assert!(fake.current_kid().starts_with("sso_oidc_key_pair_"));

        let set = fetch_jwks(&fake).await;
        let token = fake.mint(json!({ "aud": "http://127.0.0.1:8000/mcp" }));
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.kid, Some(fake.current_kid()));

        let claims = verify(&token, find(&set, &fake.current_kid()), &validation(&fake))
            .expect("token verifies against the published key");
        assert_eq!(claims["iss"], json!(fake.issuer()));
        assert_eq!(claims["sub"], "user_01TEST");
        assert_eq!(claims["sid"], "app_consent_test");
        assert_eq!(claims["aud"], "http://127.0.0.1:8000/mcp");
        assert!(claims["jti"].as_str().is_some_and(|jti| !jti.is_empty()));
        let iat = claims["iat"].as_u64().unwrap();
        assert_eq!(claims["exp"].as_u64().unwrap(), iat + 300);

        // Distinct jti on each token.
        let other = verify(&fake.mint(Value::Null), &set.keys[0], &validation(&fake)).unwrap();
        assert_ne!(other["jti"], claims["jti"]);

        // The public PEM is the published key.
        crate::install_jwt_provider();
        let from_pem = DecodingKey::from_rsa_pem(fake.public_key_pem().as_bytes()).unwrap();
        assert!(
            fake.public_key_pem()
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
        assert!(jsonwebtoken::decode::<Value>(&token, &from_pem, &validation(&fake)).is_ok());
        fake.stop();
    }

    #[actix_web::test]
    async fn claims_are_overridden_and_removed_with_null() {
        let fake = FakeAuthKit::start();
        let set = fetch_jwks(&fake).await;
        let token = fake.mint(json!({
            "exp": null,
            "sid": null,
            "sub": "user_other",
            "scope": "openid profile",
        }));
        let mut lenient = validation(&fake);
        lenient.required_spec_claims.clear();
        lenient.validate_exp = false;
        let claims = verify(&token, &set.keys[0], &lenient).unwrap();
        assert!(!claims.contains_key("exp"));
        assert!(!claims.contains_key("sid"));
        assert_eq!(claims["sub"], "user_other");
        assert_eq!(claims["scope"], "openid profile");
        assert_eq!(claims["iss"], json!(fake.issuer()));

        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("some_other_kid".into());
        header.typ = Some("at+jwt".into());
        header.crit = Some(vec!["exp".into()]);
        let token = fake.mint_with_header(header, json!({}));
        let decoded = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(decoded.kid.as_deref(), Some("some_other_kid"));
        assert_eq!(decoded.typ.as_deref(), Some("at+jwt"));
        assert_eq!(decoded.crit, Some(vec!["exp".to_owned()]));
        assert!(verify(&token, &set.keys[0], &validation(&fake)).is_some());
    }

    #[actix_web::test]
    async fn rotation_retirement_and_same_kid_replacement() {
        let fake = FakeAuthKit::start();
        let first_kid = fake.current_kid();
        let first_pem = fake.public_key_pem();
        let old_token = fake.mint(json!({}));

        fake.rotate_keys();
        let second_kid = fake.current_kid();
        assert_ne!(second_kid, first_kid);
        assert_ne!(fake.public_key_pem(), first_pem);
        let set = fetch_jwks(&fake).await;
        let published = kids(&set);
        assert_eq!(published.len(), 2);
        assert!(published.contains(&first_kid) && published.contains(&second_kid));
        let new_token = fake.mint(json!({}));
        assert_eq!(
            jsonwebtoken::decode_header(&new_token).unwrap().kid,
            Some(second_kid.clone())
        );
        assert!(verify(&old_token, find(&set, &first_kid), &validation(&fake)).is_some());
        assert!(verify(&new_token, find(&set, &second_kid), &validation(&fake)).is_some());
        assert!(verify(&new_token, find(&set, &first_kid), &validation(&fake)).is_none());

        fake.retire_old_keys();
        let set = fetch_jwks(&fake).await;
        assert_eq!(kids(&set), vec![second_kid.clone()]);

        fake.replace_key_same_kid();
        assert_eq!(fake.current_kid(), second_kid);
        let set = fetch_jwks(&fake).await;
        assert_eq!(kids(&set), vec![second_kid.clone()]);
        assert!(verify(&new_token, &set.keys[0], &validation(&fake)).is_none());
        let replaced = fake.mint(json!({}));
        assert!(verify(&replaced, &set.keys[0], &validation(&fake)).is_some());

        // Many rotations: the pool wraps, but every kid is new.
        let mut seen = vec![first_kid, second_kid];
        for _ in 0..12 {
            fake.rotate_keys();
            assert!(!seen.contains(&fake.current_kid()));
            seen.push(fake.current_kid());
            let set = fetch_jwks(&fake).await;
            assert_eq!(set.keys.len(), 2);
            let token = fake.mint(json!({}));
            assert!(verify(&token, find(&set, &fake.current_kid()), &validation(&fake)).is_some());
        }
    }

    #[actix_web::test]
    async fn forged_tokens_do_not_verify() {
        let fake = FakeAuthKit::start();
        let set = fetch_jwks(&fake).await;
        let forged = fake.mint_with_unpublished_key(json!({}));
        let header = jsonwebtoken::decode_header(&forged).unwrap();
        assert_eq!(header.kid, Some(fake.current_kid()));
        assert!(verify(&forged, &set.keys[0], &validation(&fake)).is_none());
        let (status, _) = get(&format!("{}/oauth2/userinfo", fake.issuer()), Some(&forged))
            .await
            .unwrap();
        assert_eq!(status, 401);
    }

    #[actix_web::test]
    async fn discovery_documents() {
        let fake = FakeAuthKit::start();
        let issuer = fake.issuer();
        let (status, oauth) = get(
            &format!("{issuer}/.well-known/oauth-authorization-server"),
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
        assert_eq!(oauth["issuer"], json!(issuer));
        assert_eq!(oauth["jwks_uri"], json!(fake.jwks_uri()));
        assert_eq!(
            oauth["authorization_endpoint"],
            json!(format!("{issuer}/oauth2/authorize"))
        );
        assert_eq!(
            oauth["token_endpoint"],
            json!(format!("{issuer}/oauth2/token"))
        );
        assert_eq!(
            oauth["registration_endpoint"],
            json!(format!("{issuer}/oauth2/register"))
        );
        assert_eq!(oauth["code_challenge_methods_supported"], json!(["S256"]));

        let (status, oidc) = get(&format!("{issuer}/.well-known/openid-configuration"), None)
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(oidc["issuer"], json!(issuer));
        assert_eq!(
            oidc["authorization_endpoint"],
            oauth["authorization_endpoint"]
        );
        assert_eq!(oidc["token_endpoint"], oauth["token_endpoint"]);
        assert!(oauth.get("userinfo_endpoint").is_none());
        assert_eq!(
            oidc["userinfo_endpoint"],
            json!(format!("{issuer}/oauth2/userinfo"))
        );
        assert_eq!(
            oidc["id_token_signing_alg_values_supported"],
            json!(["RS256"])
        );

        let (status, body) = get(&format!("{issuer}/nope"), None).await.unwrap();
        assert_eq!((status, body), (404, json!({ "error": "not_found" })));
        let response = awc::Client::default()
            .post(fake.jwks_uri())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 405);
        assert_eq!(fake.calls(Endpoint::Jwks), 1);
    }

    #[actix_web::test]
    async fn counters_and_injected_failures() {
        let fake = FakeAuthKit::start();
        let metadata = format!("{}/.well-known/oauth-authorization-server", fake.issuer());
        let openid = format!("{}/.well-known/openid-configuration", fake.issuer());
        get(&metadata, None).await.unwrap();
        get(&metadata, None).await.unwrap();
        get(&openid, None).await.unwrap();
        assert_eq!(fake.calls(Endpoint::AuthorizationServerMetadata), 2);
        assert_eq!(fake.calls(Endpoint::OpenIdConfiguration), 1);
        assert_eq!(fake.calls(Endpoint::Jwks), 0);
        assert_eq!(fake.calls(Endpoint::UserInfo), 0);
        fake.reset_calls();
        assert_eq!(fake.calls(Endpoint::AuthorizationServerMetadata), 0);

        fake.set_failure(Failure::ServerError);
        for url in [&metadata, &openid, &fake.jwks_uri()] {
            let (status, body) = get(url, None).await.unwrap();
            assert_eq!((status, body), (500, json!({ "error": "server_error" })));
        }
        assert_eq!(fake.calls(Endpoint::Jwks), 1);

        fake.set_failure(Failure::Slow(Duration::from_millis(300)));
        let started = Instant::now();
        let (status, _) = get(&fake.jwks_uri(), None).await.unwrap();
        assert_eq!(status, 200);
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(fake.calls(Endpoint::Jwks), 2);

        fake.set_failure(Failure::None);
        let started = Instant::now();
        assert_eq!(get(&fake.jwks_uri(), None).await.unwrap().0, 200);
        assert!(started.elapsed() < Duration::from_millis(300));
    }

    #[actix_web::test]
    async fn down_refuses_connections_then_restarts_on_the_same_port() {
        let fake = FakeAuthKit::start();
        let port = fake.port();
        // A client with a pooled (keep-alive) connection to the server.
        let client = awc::Client::default();
        let response = client.get(fake.jwks_uri()).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        drop(response);

        fake.set_failure(Failure::Down);
        assert!(client.get(fake.jwks_uri()).send().await.is_err());
        assert!(get(&fake.jwks_uri(), None).await.is_err());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        assert_eq!(fake.calls(Endpoint::Jwks), 1);
        // Still down after another failure-free call on the handle.
        fake.set_failure(Failure::Down);
        assert!(get(&fake.jwks_uri(), None).await.is_err());

        fake.set_failure(Failure::None);
        assert_eq!(fake.port(), port);
        assert_eq!(get(&fake.jwks_uri(), None).await.unwrap().0, 200);
        let response = client.get(fake.jwks_uri()).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(fake.calls(Endpoint::Jwks), 3);

        // Down while a slow request is in flight: the request fails instead of answering.
        fake.set_failure(Failure::Slow(Duration::from_millis(500)));
        let url = fake.jwks_uri();
        let in_flight = actix_web::rt::spawn(async move { get(&url, None).await });
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        fake.set_failure(Failure::Down);
        assert!(in_flight.await.unwrap().is_err());

        fake.set_failure(Failure::ServerError);
        assert_eq!(get(&fake.jwks_uri(), None).await.unwrap().0, 500);

        fake.stop();
        assert!(get(&fake.jwks_uri(), None).await.is_err());
        fake.set_failure(Failure::None);
        assert!(get(&fake.jwks_uri(), None).await.is_err());
    }

    #[actix_web::test]
    async fn dropping_the_last_handle_stops_the_server() {
        let fake = FakeAuthKit::start();
        let clone = fake.clone();
        let url = fake.jwks_uri();
        drop(fake);
        assert_eq!(get(&url, None).await.unwrap().0, 200);
        drop(clone);
        let deadline = Instant::now() + Duration::from_secs(5);
        while get(&url, None).await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "server still up after the last drop"
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn works_without_a_runtime() {
        let fake = FakeAuthKit::start();
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", fake.port())).unwrap();
        use std::io::{Read, Write};
        stream
            .write_all(b"GET /oauth2/jwks HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"));
        assert!(response.contains(&fake.current_kid()));
        fake.set_failure(Failure::Down);
        assert!(std::net::TcpStream::connect(("127.0.0.1", fake.port())).is_err());
        fake.set_failure(Failure::None);
        assert!(std::net::TcpStream::connect(("127.0.0.1", fake.port())).is_ok());
    }

    #[actix_web::test]
    async fn userinfo_checks_tokens_and_revoked_sessions() {
        let fake = FakeAuthKit::start();
        let url = format!("{}/oauth2/userinfo", fake.issuer());

        let response = awc::Client::default().get(&url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
        assert_eq!(
            response.headers().get("www-authenticate").unwrap(),
            r#"Bearer error="invalid_token""#
        );
        let (status, body) = get(&url, Some("not-a-jwt")).await.unwrap();
        assert_eq!((status, body), (401, json!({ "error": "invalid_token" })));

        let token = fake.mint(json!({ "sub": "user_a" }));
        let (status, body) = get(&url, Some(&token)).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({
                "sub": "user_a",
                "email": "user_a@example.com",
                "email_verified": true,
                "first_name": "Test",
                "last_name": "User",
            })
        );

        fake.set_user(
            "user_b",
            json!({ "email": "ada@example.com", "first_name": "Ada", "last_name": null }),
        );
        let token_b = fake.mint(json!({ "sub": "user_b" }));
        let (status, body) = get(&url, Some(&token_b)).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body["email"], "ada@example.com");
        assert_eq!(body["first_name"], "Ada");
        assert_eq!(body["sub"], "user_b");
        assert!(body.get("last_name").is_none());

        // Expired, wrong issuer, missing exp, foreign key, HS256 keyed with the public key.
        let now = super::unix_now();
        let expired = fake.mint(json!({ "sub": "user_a", "iat": now - 600, "exp": now - 10 }));
        let foreign_issuer = fake.mint(json!({ "sub": "user_a", "iss": "https://evil.example" }));
        let no_exp = fake.mint(json!({ "sub": "user_a", "exp": null }));
        let mut crit = Header::new(Algorithm::RS256);
        crit.kid = Some(fake.current_kid());
        crit.crit = Some(vec!["exp".into()]);
        let crit = fake.mint_with_header(crit, json!({ "sub": "user_a" }));
        let unpublished = fake.mint_with_unpublished_key(json!({ "sub": "user_a" }));
        let mut hs_header = Header::new(Algorithm::HS256);
        hs_header.kid = Some(fake.current_kid());
        let hs256 = jsonwebtoken::encode(
            &hs_header,
            &json!({ "iss": fake.issuer(), "sub": "user_a", "exp": now + 300 }),
            &EncodingKey::from_secret(fake.public_key_pem().as_bytes()),
        )
        .unwrap();
        for bad in [expired, foreign_issuer, no_exp, crit, unpublished, hs256] {
            assert_eq!(get(&url, Some(&bad)).await.unwrap().0, 401);
        }

        // Rotation keeps the previous key valid until retired.
        fake.rotate_keys();
        assert_eq!(get(&url, Some(&token)).await.unwrap().0, 200);
        fake.retire_old_keys();
        assert_eq!(get(&url, Some(&token)).await.unwrap().0, 401);
        let token = fake.mint(json!({ "sub": "user_a" }));
        assert_eq!(get(&url, Some(&token)).await.unwrap().0, 200);

        fake.revoke_sessions_for("user_a");
        assert_eq!(get(&url, Some(&token)).await.unwrap().0, 401);
        assert_eq!(get(&url, Some(&token_b)).await.unwrap().0, 401); // signed by retired key
        let token_b = fake.mint(json!({ "sub": "user_b" }));
        assert_eq!(get(&url, Some(&token_b)).await.unwrap().0, 200);
        assert_eq!(fake.calls(Endpoint::UserInfo), 16);
    }
}
