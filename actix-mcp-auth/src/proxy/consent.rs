//! `GET|POST /consent`: our own consent page (why it exists, and what an answer means:
//! [`crate::oauth::consent_form`]).
//!
//! The page names the client, shows where the code will go and what it may do (its content and
//! markup are in [`super::consent_page`]). The form carries
//! a CSRF token derived from the request's browser-binding cookie; the approval is recorded with
//! one atomic statement, so a form submitted twice (or to two replicas) counts once.

use actix_web::{HttpRequest, HttpResponse, web::Bytes};

use super::{
    ICON_PATH, ProxyState, State,
    consent_page::{self, ClientView, ConsentView, FormView, Provenance, ServerView},
    cookies, error_redirect,
    html::{self, Problem},
    redirect_with, store_error_page,
};
use crate::{
    error::OAuthError,
    oauth::{
        consent,
        consent_form::{self, Answer, ConsentPolicy},
        display::{redirect_uri_display, strip_unsafe_for_display},
        params::Params,
        pkce::{S256, s256_challenge},
        provenance::ClientProvenance,
    },
    store::{ClientRecord, ConsentApproval, PendingAuthorization, TokenHash},
};

/// The operator's consent settings.
pub(crate) fn consent_policy(state: &ProxyState) -> ConsentPolicy {
    ConsentPolicy {
        required: state.settings.consent_required,
        remember: state.settings.remember_consent,
    }
}

/// The AuthKit authorization URL for a pending request: our client id and callback, our own
/// PKCE pair, the transaction id as `state`, a nonce (AuthKit requires one).
pub(crate) fn upstream_redirect(
    state: &ProxyState,
    pending: &PendingAuthorization,
) -> HttpResponse {
    authkit_login_redirect(
        &state.settings,
        &pending.txn_id,
        &s256_challenge(pending.upstream_verifier.expose()),
        pending.upstream_nonce.as_deref().unwrap_or_default(),
    )
}

/// A redirect to AuthKit's login for our own client, coming back to our callback with
/// `upstream_state`; `challenge` is the S256 challenge of our verifier.
pub(crate) fn authkit_login_redirect(
    settings: &super::ProxySettings,
    upstream_state: &str,
    challenge: &str,
    nonce: &str,
) -> HttpResponse {
    let callback = settings.endpoint(&settings.redirect_path);
    let scope = settings.upstream_scopes.join(" ");
    redirect_with(
        &format!("{}/oauth2/authorize", settings.authkit),
        &[
            ("response_type", "code"),
            ("client_id", &settings.client_id),
            ("redirect_uri", &callback),
            ("scope", &scope),
            ("state", upstream_state),
            ("nonce", nonce),
            ("code_challenge", challenge),
            ("code_challenge_method", S256),
        ],
    )
}

/// The pending request of `txn_id`, if this browser started it (binding cookie), with the
/// cookie's secret. Shared by the consent page and the callback.
pub(crate) async fn pending_for_browser(
    req: &HttpRequest,
    state: &ProxyState,
    txn_id: Option<&str>,
) -> Result<(PendingAuthorization, String), HttpResponse> {
    let Some(txn_id) = txn_id else {
        return Err(expired_request());
    };
    let found = state
        .store
        .get_pending(txn_id)
        .await
        .map_err(store_error_page)?;
    this_browsers(req, state, txn_id, found).map_err(NotThisBrowsers::page)
}

fn expired_request() -> HttpResponse {
    html::problem_page(
        400,
        Problem::Expired,
        "Invalid or expired authorization request.",
    )
}

/// Why a pending request is not this browser's to continue.
enum NotThisBrowsers {
    /// Unknown or expired.
    Unknown,
    /// Started in another browser (its binding cookie is missing or different).
    OtherBrowser,
}

impl NotThisBrowsers {
    fn page(self) -> HttpResponse {
        match self {
            Self::Unknown => expired_request(),
            Self::OtherBrowser => html::problem_page(
                403,
                Problem::OtherBrowser,
                "This authorization request was started in another browser or has expired.",
            ),
        }
    }
}

/// `found` (the pending request of `txn_id`, if any), if this browser started it, with the
/// binding cookie's secret.
fn this_browsers(
    req: &HttpRequest,
    state: &ProxyState,
    txn_id: &str,
    found: Option<PendingAuthorization>,
) -> Result<(PendingAuthorization, String), NotThisBrowsers> {
    let pending = found.ok_or(NotThisBrowsers::Unknown)?;
    let secure = state.settings.base_url.scheme() == "https";
    let secret = cookies::binding_secret(req, secure, txn_id);
    if !cookies::binding_matches(secret.as_deref(), pending.browser_binding.as_ref()) {
        return Err(NotThisBrowsers::OtherBrowser);
    }
    Ok((pending, secret.unwrap_or_default()))
}

/// `GET /consent?txn_id=…`: the page.
pub(crate) async fn show(req: HttpRequest, state: State) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes()).unwrap_or_default();
    let Some(txn_id) = params.get("txn_id") else {
        return expired_request();
    };
    // The request and its client in one read.
    let (found, client) = match state.store.get_pending_with_client(txn_id).await {
        Ok(Some((pending, client))) => (Some(pending), client),
        Ok(None) => (None, None),
        Err(e) => return store_error_page(e),
    };
    let (pending, secret) = match this_browsers(&req, &state, txn_id, found) {
        Ok(found) => found,
        Err(refusal) => return refusal.page(),
    };
    if pending.consented_at.is_some() {
        return html::problem_page(
            400,
            Problem::Expired,
            "This authorization request was already approved.",
        );
    }
    let Some(client) = client else {
        return html::error_page(400, "This client is no longer registered.");
    };
    let redirects_changed = redirects_changed_since_remembered(&req, &state, &client).await;
    let view = consent_view(&state, &client, &pending, &secret, redirects_changed);
    let targets = form_targets(&state, &pending.redirect_uri);
    html::page_with_targets(
        200,
        &consent_page::title(&view),
        &consent_page::render(&view),
        &targets,
    )
}

/// What the page shows for `pending` of `client`.
fn consent_view(
    state: &ProxyState,
    client: &ClientRecord,
    pending: &PendingAuthorization,
    binding_secret: &str,
    redirects_changed: bool,
) -> ConsentView {
    let settings = &state.settings;
    let server_name = settings.branding.name.clone();
    let described = ClientProvenance::describe(
        &client.client_id,
        client.application_type(),
        &client.redirect_uris,
        &pending.redirect_uri,
    );
    ConsentView {
        server: ServerView {
            resource_url: pending
                .resource
                .clone()
                .unwrap_or_else(|| settings.resource_url.clone()),
            icon_url: settings
                .branding
                .icon
                .as_ref()
                .map(|_| settings.route(ICON_PATH)),
            name: server_name.clone(),
        },
        client: ClientView {
            // Names stored before registration refused hidden characters lose them here.
            name: client
                .client_name
                .as_deref()
                .map(|name| strip_unsafe_for_display(name).into_owned()),
            client_id: client.client_id.clone(),
            provenance: Provenance::of(&described),
            web_with_loopback: described.web_with_loopback,
            all_redirects_loopback: described.all_redirects_loopback,
        },
        scopes: pending
            .scopes
            .iter()
            .map(|s| consent::scope_meaning(s, &server_name))
            .collect(),
        destination: redirect_destination(&pending.redirect_uri),
        remember_seconds: (!settings.remember_consent.is_zero())
            .then_some(settings.remember_consent.as_secs()),
        redirects_changed,
        form: FormView {
            action: settings.route("/consent"),
            txn_id: pending.txn_id.clone(),
            csrf_token: cookies::consent_token(binding_secret, &pending.txn_id),
        },
    }
}

/// Where the redirect URI sends the browser: its ASCII (punycode) host, and beside it the
/// Unicode form of an internationalized host (see [`crate::oauth::display`]).
fn redirect_destination(redirect_uri: &str) -> consent::Destination {
    let mut destination = consent::destination(redirect_uri);
    destination.host_unicode =
        redirect_uri_display(redirect_uri).and_then(|shown| shown.host_unicode);
    destination
}

/// Where the consent form's answer may redirect the browser: AuthKit (Allow) and the client's
/// redirect URI (Deny). Chromium applies the page's `form-action` to those redirects.
fn form_targets(state: &ProxyState, redirect_uri: &str) -> Vec<String> {
    let mut targets = vec![state.settings.authkit.clone()];
    if let Ok(url) = url::Url::parse(redirect_uri) {
        let origin = url.origin();
        targets.push(if origin.is_tuple() {
            origin.ascii_serialization()
        } else {
            format!("{}:", url.scheme())
        });
    }
    targets
}

/// Whether this browser has a remembered approval of `client` that no longer applies because
/// the client's redirect URIs changed (the page then says why it asks again).
async fn redirects_changed_since_remembered(
    req: &HttpRequest,
    state: &ProxyState,
    client: &ClientRecord,
) -> bool {
    if consent_policy(state).remember_secs().is_none() {
        return false;
    }
    let secure = state.settings.base_url.scheme() == "https";
    let Some(device) = cookies::device_secret(req, secure) else {
        return false;
    };
    match state
        .store
        .find_consent(&cookies::device_subject(&device), &client.client_id)
        .await
    {
        Ok(Some(approval)) => {
            approval.redirect_uris_digest.as_deref()
                != Some(consent::redirect_uris_digest(&client.redirect_uris).as_str())
        }
        _ => false,
    }
}

/// `POST /consent`: the user's decision.
pub(crate) async fn decide(req: HttpRequest, state: State, body: Bytes) -> HttpResponse {
    let params = match Params::parse(&body) {
        Ok(p) => p,
        Err(e) => return html::error_page(400, &OAuthError::from(e).description()),
    };
    // An approval from a browser with the request's binding cookie: one statement checks the
    // binding and the form's token and records the approval (no read first).
    let secure = state.settings.base_url.scheme() == "https";
    if let Some(txn_id) = params.get("txn_id")
        && let Some(secret) = cookies::binding_secret(&req, secure, txn_id)
    {
        let expected = cookies::consent_token(&secret, txn_id);
        if let Ok(Answer::Approve { remember }) = consent_form::answer(&params, &expected) {
            let binding = TokenHash::of(&secret);
            return approve(&req, &state, txn_id, &expected, &binding, remember).await;
        }
    }
    // Everything else reads the request first, so each refusal says what is wrong.
    let (pending, secret) = match pending_for_browser(&req, &state, params.get("txn_id")).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let expected = cookies::consent_token(&secret, &pending.txn_id);
    match consent_form::answer(&params, &expected) {
        Ok(Answer::Approve { remember }) => {
            let binding = TokenHash::of(&secret);
            approve(&req, &state, &pending.txn_id, &expected, &binding, remember).await
        }
        Ok(Answer::Deny) => deny(&state, &pending).await,
        Err(error @ consent_form::FormError::BadToken) => {
            html::problem_page(400, Problem::Expired, error.message())
        }
        Err(error) => html::error_page(400, error.message()),
    }
}

/// Records the approval (once, whatever the number of submissions, and only from the browser
/// bound to the request) and sends the browser to AuthKit.
async fn approve(
    req: &HttpRequest,
    state: &ProxyState,
    txn_id: &str,
    expected_token: &str,
    binding: &TokenHash,
    remember_it: bool,
) -> HttpResponse {
    match state
        .store
        .approve_pending(txn_id, &TokenHash::of(expected_token), binding)
        .await
    {
        Ok(Some(approved)) => {
            let mut response = upstream_redirect(state, &approved);
            if remember_it {
                remember(req, state, &approved, &mut response).await;
            }
            response
        }
        // Nothing changed: say why (unknown or expired request, another browser, or a form
        // already used), reading the request only now.
        Ok(None) => match pending_for_browser(req, state, Some(txn_id)).await {
            Err(page) => page,
            Ok(_) => html::problem_page(
                400,
                Problem::Expired,
                "This consent form was already used or has expired.",
            ),
        },
        Err(e) => store_error_page(e),
    }
}

async fn deny(state: &ProxyState, pending: &PendingAuthorization) -> HttpResponse {
    // Consume the request so the denied login cannot be resumed.
    match state.store.consume_pending(&pending.txn_id).await {
        Ok(Some(p)) => {
            let secure = state.settings.base_url.scheme() == "https";
            let mut res = error_redirect(
                state,
                &p.redirect_uri,
                p.client_state.as_deref(),
                &consent_form::denied().into(),
            );
            let _ = res.add_cookie(&cookies::expired_binding(secure, &p.txn_id));
            res
        }
        Ok(None) => html::problem_page(
            400,
            Problem::Expired,
            "Invalid or expired authorization request.",
        ),
        Err(e) => store_error_page(e),
    }
}

/// Records an approval given with "remember" for this browser (its device cookie, created if
/// needed). Failing to record it only means the user is asked again next time.
async fn remember(
    req: &HttpRequest,
    state: &ProxyState,
    approved: &PendingAuthorization,
    response: &mut HttpResponse,
) {
    let Some(ttl_secs) = consent_policy(state).remember_secs() else {
        return;
    };
    let secure = state.settings.base_url.scheme() == "https";
    let device = match cookies::device_secret(req, secure) {
        Some(device) => device,
        None => {
            let (device, cookie) = cookies::new_device(secure, ttl_secs);
            let _ = response.add_cookie(&cookie);
            device
        }
    };
    // The client's redirect URIs now, so a later change is noticed; without them, nothing is
    // remembered (the user is simply asked again next time).
    let redirect_uris_digest = match state.store.get_client(&approved.client_id).await {
        Ok(Some(client)) => consent::redirect_uris_digest(&client.redirect_uris),
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, "could not remember a consent");
            return;
        }
    };
    let now = crate::clock::unix_now();
    let approval = ConsentApproval {
        subject: cookies::device_subject(&device),
        client_id: approved.client_id.clone(),
        scopes: approved.scopes.clone(),
        resource: approved.resource.clone(),
        created_at: now,
        expires_at: now + ttl_secs,
        redirect_uris_digest: Some(redirect_uris_digest),
    };
    if let Err(error) = state.store.remember_consent(&approval).await {
        tracing::warn!(%error, "could not remember a consent");
    }
}
