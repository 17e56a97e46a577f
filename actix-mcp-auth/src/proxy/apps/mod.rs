//! The "connected apps" page (optional, proxy mode): a signed-in user sees which MCP clients
//! hold a live grant for them and revokes any of them.
//!
//! ```text
//! GET  {path}            signed in: the list; else a redirect to AuthKit to sign in
//! POST {path}/revoke     grant_id + csrf_token: ends one of *this user's* grants
//! POST {path}/sign-out   csrf_token: ends the page's session
//! AuthKit ──{redirect_path}─▶ us: the shared callback hands page sign-ins (state `apps.…`) here
//! ```
//!
//! The page has its own session from an AuthKit login (sealed cookies, see [`session`]); it
//! never uses, nor creates, an MCP grant. Every form carries the session's CSRF token, cookies
//! are `SameSite=Lax` and `__Host-` on https, and the page allows no scripts. Revoking drops the
//! grant's tokens from this replica's cache at once; other replicas stop accepting them within
//! their token-cache window.

pub(crate) mod page;
pub(crate) mod session;

use std::sync::Arc;

use actix_web::{
    HttpRequest, HttpResponse,
    cookie::{Cookie, SameSite, time::Duration as CookieDuration},
    dev::{AppService, HttpServiceFactory},
    error::{InternalError, UrlencodedError},
    http::header,
    web,
};

use self::{
    page::{AppView, AppsView},
    session::{PendingLogin, Session},
};
use super::{
    ICON_PATH, ProxyState, State, callback::redeem_upstream_code, consent::authkit_login_redirect,
    html, store_error_page,
};
use crate::{
    oauth::{callback::UpstreamFailure, params::Params, pkce::s256_challenge},
    proxy::grants::{Grants, UserGrants},
    store::GrantSummary,
};

/// Default path of the page.
pub const DEFAULT_PATH: &str = "/connected-apps";

/// The connected-apps page of a [`WorkOsProvider`](crate::WorkOsProvider), from
/// [`WorkOsProvider::connected_apps`](crate::WorkOsProvider::connected_apps); register with
/// `App::service`. Nothing is served unless you do.
///
/// ```no_run
/// # fn app(provider: &actix_mcp_auth::WorkOsProvider) {
/// let app = actix_web::App::new()
///     .service(provider.routes())
///     .service(provider.connected_apps().path("/account/apps"));
/// # }
/// ```
pub struct ConnectedApps {
    pub(crate) state: Arc<ProxyState>,
    path: String,
}

impl ConnectedApps {
    pub(crate) fn new(state: Arc<ProxyState>) -> Self {
        Self {
            state,
            path: DEFAULT_PATH.to_owned(),
        }
    }

    /// Serves the page at `path` (below the base URL's path; default `/connected-apps`).
    /// Empty segments are dropped and a backslash counts as a slash (browsers read `/\x` as
    /// `//x`, another host), so the page's redirects and forms always stay on this origin.
    ///
    /// # Panics
    ///
    /// If the page would take a route of the provider's: the root (its `/revoke` would be
    /// the OAuth revocation endpoint), an OAuth endpoint, the callback, a `/.well-known`
    /// document, or the MCP endpoint or anything below it.
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let path = normalize_path(&path.into());
        if let Some(taken) = self.taken_route(&path) {
            panic!("the connected-apps page cannot be served at {path:?}: {taken}");
        }
        self.path = path;
        self
    }

    /// Why the page cannot be at `path` (normalized), if it cannot.
    fn taken_route(&self, path: &str) -> Option<&'static str> {
        let settings = &self.state.settings;
        let route = settings.route(path);
        let mcp = settings.mount_path.trim_end_matches('/');
        if path == "/" {
            Some("its /revoke would be the OAuth revocation endpoint")
        } else if path == "/.well-known" || path.starts_with("/.well-known/") {
            Some("the discovery documents live below /.well-known")
        } else if ["/register", "/authorize", "/consent", "/token", "/revoke"].contains(&path)
            || path == settings.redirect_path
        {
            Some("that is a route of the provider")
        } else if route == mcp || route.starts_with(&format!("{mcp}/")) {
            Some("that is (below) the MCP endpoint")
        } else {
            None
        }
    }
}

/// `path` as an absolute path of non-empty segments (`/` for none).
fn normalize_path(path: &str) -> String {
    let segments: Vec<&str> = path
        .split(['/', '\\'])
        .filter(|segment| !segment.is_empty())
        .collect();
    format!("/{}", segments.join("/"))
}

/// The path of one of the page's actions (`revoke`, `sign-out`), below the page's path: never
/// `//…`, which a browser would read as another host.
fn action_path(page: &str, action: &str) -> String {
    format!("{}/{action}", page.trim_end_matches('/'))
}

/// What the handlers need besides the provider's state.
#[derive(Clone)]
struct PagePaths {
    /// The page's route (with the base path), where sign-ins come back to.
    page: String,
}

impl HttpServiceFactory for ConnectedApps {
    fn register(self, config: &mut AppService) {
        let settings = &self.state.settings;
        let paths = web::Data::new(PagePaths {
            page: settings.route(&self.path),
        });
        let data = web::Data::new(self.state.clone());
        let limit = web::FormConfig::default()
            .limit(4 * 1024)
            .error_handler(form_error);
        web::resource(settings.route(&self.path))
            .app_data(data.clone())
            .app_data(paths.clone())
            .route(web::get().to(show))
            .register(config);
        web::resource(action_path(&settings.route(&self.path), "revoke"))
            .app_data(data.clone())
            .app_data(paths.clone())
            .app_data(limit.clone())
            .route(web::post().to(revoke))
            .register(config);
        web::resource(action_path(&settings.route(&self.path), "sign-out"))
            .app_data(data)
            .app_data(paths)
            .app_data(limit)
            .route(web::post().to(sign_out))
            .register(config);
    }
}

/// An unreadable form (too large, not a form, a field twice): our error page, with its
/// security headers, instead of actix's plain-text answer. Nothing was acted on.
fn form_error(error: UrlencodedError, req: &HttpRequest) -> actix_web::Error {
    let page = req
        .app_data::<web::Data<PagePaths>>()
        .map_or("/", |paths| paths.page.as_str());
    let answer = match error {
        UrlencodedError::Overflow { .. } => problem_page(413, "This form is too large.", page),
        _ => problem_page(400, "This form could not be read.", page),
    };
    InternalError::from_response(error, answer).into()
}

/// One of the page's own error pages (with a link back to the page at `page`).
fn problem_page(status: u16, message: &str, page: &str) -> HttpResponse {
    html::page(status, page::TITLE, &page::problem(message, page))
}

fn secure(state: &ProxyState) -> bool {
    state.settings.base_url.scheme() == "https"
}

fn cookie_name(secure: bool, login: bool) -> &'static str {
    match (secure, login) {
        (true, false) => "__Host-mcp_auth_apps",
        (true, true) => "__Host-mcp_auth_apps_login",
        (false, false) => "mcp_auth_apps",
        (false, true) => "mcp_auth_apps_login",
    }
}

fn cookie(name: &'static str, value: String, secure: bool, max_age: i64) -> Cookie<'static> {
    let mut cookie = Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .secure(secure)
        // Lax: the login cookie must come back on the top-level GET from AuthKit.
        .same_site(SameSite::Lax)
        .finish();
    if max_age > 0 {
        cookie.set_max_age(CookieDuration::seconds(max_age));
    } else {
        cookie.make_removal();
    }
    cookie
}

/// The grants the signed-in user may list and end (audited as the user).
fn user_grants(state: &ProxyState, session: &Session) -> UserGrants {
    Grants::new(state.store.clone(), state.bearer.clone()).for_user(session.subject.clone())
}

/// The signed-in session the browser holds, if any.
fn current_session(req: &HttpRequest, state: &ProxyState) -> Option<Session> {
    let value = req.cookie(cookie_name(secure(state), false))?;
    session::open_session(state.store.keyring(), value.value(), state.store.now())
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// `GET {path}`: the list, or a sign-in through AuthKit.
async fn show(req: HttpRequest, state: State, paths: web::Data<PagePaths>) -> HttpResponse {
    let Some(session) = current_session(&req, &state) else {
        return start_login(&state, &paths.page);
    };
    let grants = match user_grants(&state, &session).list().await {
        Ok(grants) => grants,
        Err(e) => return store_error_page(e),
    };
    let notice = Params::parse(req.query_string().as_bytes())
        .ok()
        .and_then(|p| p.get("revoked").map(|_| "Access revoked.".to_owned()));
    render(&state, &paths, &session, grants, notice)
}

fn render(
    state: &ProxyState,
    paths: &PagePaths,
    session: &Session,
    grants: Vec<GrantSummary>,
    notice: Option<String>,
) -> HttpResponse {
    let now = state.store.now();
    let ago = |at: i64| u64::try_from(now - at).unwrap_or(0);
    let settings = &state.settings;
    let view = AppsView {
        server: crate::proxy::consent_page::ServerView {
            name: settings.branding.name.clone(),
            resource_url: settings.resource_url.clone(),
            icon_url: settings
                .branding
                .icon
                .as_ref()
                .map(|_| settings.route(ICON_PATH)),
        },
        user: session
            .display
            .clone()
            .unwrap_or_else(|| session.subject.clone()),
        apps: grants
            .into_iter()
            .map(|g| AppView {
                authorized_ago: ago(g.created_at),
                used_ago: g.last_used_at.map(ago),
                grant_id: g.grant_id,
                name: g.client_name,
                host: g.client_host,
                client_id: g.client_id,
                scopes: g.scopes,
            })
            .collect(),
        notice,
        revoke_action: action_path(&paths.page, "revoke"),
        sign_out_action: action_path(&paths.page, "sign-out"),
        csrf: session.csrf.clone(),
    };
    html::page(200, page::TITLE, &page::render(&view))
}

/// Redirects to AuthKit with a fresh sign-in attempt remembered in a sealed cookie.
fn start_login(state: &ProxyState, page: &str) -> HttpResponse {
    let login = PendingLogin::new(page, state.store.now());
    let secure = secure(state);
    let value = session::seal_login(state.store.keyring(), &login);
    let mut response = authkit_login_redirect(
        &state.settings,
        &login.state,
        &s256_challenge(&login.verifier),
        &login.nonce,
    );
    let _ = response.add_cookie(&cookie(
        cookie_name(secure, true),
        value,
        secure,
        session::LOGIN_TTL_SECS,
    ));
    response
}

/// The shared callback's branch for page sign-ins (`state` starting with `apps.`): checks the
/// attempt against this browser's login cookie, redeems AuthKit's code with our verifier, reads
/// who signed in, and starts the page's session. Never redirects anywhere but to the page.
pub(crate) async fn finish_login(
    req: &HttpRequest,
    state: &ProxyState,
    params: &Params,
) -> HttpResponse {
    let secure = secure(state);
    let now = state.store.now();
    let login = req
        .cookie(cookie_name(secure, true))
        .and_then(|c| session::open_login(state.store.keyring(), c.value(), now))
        .filter(|login| params.get("state").is_some_and(|s| login.continues(s)));
    let Some(login) = login else {
        return html::error_page(
            400,
            "This sign-in expired or was started in another browser. Open the page again.",
        );
    };
    // From here on the attempt is spent (AuthKit answered it): a failure also ends it.
    let spent = |mut page: HttpResponse| {
        let _ = page.add_cookie(&cookie(cookie_name(secure, true), String::new(), secure, 0));
        page
    };
    let Some(code) = params.get("code") else {
        return spent(html::error_page(403, "The sign-in was not completed."));
    };
    let (subject, display) = match identify(state, code, &login.verifier).await {
        Ok(found) => found,
        Err(page) => return spent(page),
    };
    let session = Session::new(subject, display, now);
    let value = session::seal_session(state.store.keyring(), &session);
    let mut response = see_other(&login.return_to);
    let _ = response.add_cookie(&cookie(cookie_name(secure, true), String::new(), secure, 0));
    let _ = response.add_cookie(&cookie(
        cookie_name(secure, false),
        value,
        secure,
        session::SESSION_TTL_SECS,
    ));
    response
}

/// Redeems AuthKit's code and reads the profile: who signed in, and what to call them. The
/// upstream tokens are dropped at once: the page needs nothing from AuthKit afterwards.
async fn identify(
    state: &ProxyState,
    code: &str,
    verifier: &str,
) -> Result<(String, Option<String>), HttpResponse> {
    let login = redeem_upstream_code(&state.settings, code, verifier, "connected-apps sign-in")
        .await
        .map_err(|failure| match failure {
            UpstreamFailure::Refused => html::error_page(403, "The sign-in was refused."),
            UpstreamFailure::Unavailable => {
                html::error_page(503, "The sign-in service is unavailable; try again.")
            }
        })?;
    let text = |key: &str| {
        login
            .profile
            .get(key)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let subject = text("sub").ok_or_else(|| html::error_page(403, "The sign-in named no user."))?;
    Ok((subject, text("email").or_else(|| text("name"))))
}

/// The form fields of the page's two actions.
#[derive(serde::Deserialize)]
struct ActionForm {
    csrf_token: Option<String>,
    grant_id: Option<String>,
}

/// Why a form submission is not acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// No (valid) session cookie: signed out, expired, or a cross-site post without cookies.
    SignedOut,
    /// The form does not carry this session's CSRF token.
    ForeignForm,
}

impl Refusal {
    fn page(self, page: &str) -> HttpResponse {
        match self {
            Self::SignedOut => problem_page(
                401,
                "Your session ended. Open the page again to sign in.",
                page,
            ),
            Self::ForeignForm => problem_page(
                403,
                "This form is out of date or came from another site. Open the page again.",
                page,
            ),
        }
    }
}

/// The session a form submission acts for: signed in, and the form carries its token.
fn authorized_session(
    req: &HttpRequest,
    state: &ProxyState,
    form: &ActionForm,
) -> Result<Session, Refusal> {
    let session = current_session(req, state).ok_or(Refusal::SignedOut)?;
    if !session.csrf_matches(form.csrf_token.as_deref()) {
        return Err(Refusal::ForeignForm);
    }
    Ok(session)
}

/// `POST {path}/revoke`: ends one of the signed-in user's grants (only theirs).
async fn revoke(
    req: HttpRequest,
    state: State,
    paths: web::Data<PagePaths>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let session = match authorized_session(&req, &state, &form) {
        Ok(session) => session,
        Err(refusal) => return refusal.page(&paths.page),
    };
    let Some(grant_id) = form.grant_id.clone().filter(|g| !g.is_empty()) else {
        return problem_page(400, "No app was chosen.", &paths.page);
    };
    // Only the signed-in user's own grant can end here (another id revokes nothing); this
    // replica forgets its tokens at once.
    match user_grants(&state, &session).revoke(&grant_id).await {
        Ok(_) => see_other(&format!("{}?revoked=1", paths.page)),
        Err(e) => store_error_page(e),
    }
}

/// `POST {path}/sign-out`: ends the page's session (not the user's AuthKit session, nor any
/// grant).
async fn sign_out(
    req: HttpRequest,
    state: State,
    paths: web::Data<PagePaths>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    if let Err(refusal) = authorized_session(&req, &state, &form) {
        return refusal.page(&paths.page);
    }
    let secure = secure(&state);
    let mut response = html::page(
        200,
        "Signed out",
        "<h1>Signed out</h1><p class=\"lead\">You signed out of the connected-apps page. \
         The apps you left connected keep their access.</p>",
    );
    let _ = response.add_cookie(&cookie(
        cookie_name(secure, false),
        String::new(),
        secure,
        0,
    ));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_absolute_segments_and_actions_never_protocol_relative() {
        assert_eq!(normalize_path("account/apps/"), "/account/apps");
        assert_eq!(normalize_path("//evil.example"), "/evil.example");
        assert_eq!(normalize_path("/\\evil.example\\x"), "/evil.example/x");
        assert_eq!(normalize_path(""), "/");
        assert_eq!(action_path("/apps", "revoke"), "/apps/revoke");
        assert_eq!(action_path("/", "revoke"), "/revoke");
        assert_eq!(action_path("/api/", "sign-out"), "/api/sign-out");
    }
}
