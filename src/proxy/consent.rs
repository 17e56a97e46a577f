//! `GET|POST /consent`: our own consent page.
//!
//! Why it exists: AuthKit remembers that a user approved *our* Connect application and will not
//! ask again, but every MCP client that registers with us is a different party. Without this
//! page, a malicious client could get a code for a user who once logged in elsewhere, without
//! the user noticing (the confused-deputy attack of the MCP security best practices).
//!
//! The page names the client, shows where the code will go and what it may do. The form carries
//! a CSRF token derived from the request's browser-binding cookie; the approval is recorded with
//! one atomic statement, so a form submitted twice (or to two replicas) counts once.

use actix_web::{HttpRequest, HttpResponse, web::Bytes};

use super::{
    ProxyState, State, cookies, error_redirect, form::Params, html, redirect_with, store_error_page,
};
use crate::{
    error::{OAuthError, OAuthErrorCode},
    oauth::{
        display::strip_unsafe_for_display,
        pkce::{S256, s256_challenge},
        provenance::{ClientOrigin, ClientProvenance},
    },
    store::{ConsentApproval, PendingAuthorization, TokenHash},
};

/// The AuthKit authorization URL for a pending request: our client id and callback, our own
/// PKCE pair, the transaction id as `state`, a nonce (AuthKit requires one).
pub(crate) fn upstream_redirect(
    state: &ProxyState,
    pending: &PendingAuthorization,
) -> HttpResponse {
    let settings = &state.settings;
    let callback = settings.endpoint(&settings.redirect_path);
    let challenge = s256_challenge(pending.upstream_verifier.expose());
    let scope = settings.upstream_scopes.join(" ");
    redirect_with(
        &format!("{}/oauth2/authorize", settings.authkit),
        &[
            ("response_type", "code"),
            ("client_id", &settings.client_id),
            ("redirect_uri", &callback),
            ("scope", &scope),
            ("state", &pending.txn_id),
            (
                "nonce",
                pending.upstream_nonce.as_deref().unwrap_or_default(),
            ),
            ("code_challenge", &challenge),
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
        return Err(html::error_page(
            400,
            "Invalid or expired authorization request.",
        ));
    };
    let pending = match state.store.get_pending(txn_id).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(html::error_page(
                400,
                "Invalid or expired authorization request.",
            ));
        }
        Err(e) => return Err(store_error_page(e)),
    };
    let secure = state.settings.base_url.scheme() == "https";
    let secret = cookies::binding_secret(req, secure, txn_id);
    if !cookies::binding_matches(secret.as_deref(), pending.browser_binding.as_ref()) {
        return Err(html::error_page(
            403,
            "This authorization request was started in another browser or has expired.",
        ));
    }
    Ok((pending, secret.unwrap_or_default()))
}

/// `GET /consent?txn_id=…`: the page.
pub(crate) async fn show(req: HttpRequest, state: State) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes()).unwrap_or_default();
    let (pending, secret) = match pending_for_browser(&req, &state, params.get("txn_id")).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    if pending.consented_at.is_some() {
        return html::error_page(400, "This authorization request was already approved.");
    }
    let client = match state.store.get_client(&pending.client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => return html::error_page(400, "This client is no longer registered."),
        Err(e) => return store_error_page(e),
    };
    let csrf = cookies::consent_token(&secret, &pending.txn_id);
    let name = client
        .client_name
        .as_deref()
        .unwrap_or("An unnamed application");
    let scopes = if pending.scopes.is_empty() {
        "<li>Basic access</li>".to_owned()
    } else {
        pending
            .scopes
            .iter()
            .map(|s| format!("<li><code>{}</code></li>", html::escape(s)))
            .collect()
    };
    let about = about_client(&ClientProvenance::describe(
        &client.client_id,
        client.application_type(),
        &client.redirect_uris,
        &pending.redirect_uri,
    ));
    let body = format!(
        "<h1>Allow access?</h1>\
         <p><strong>{name}</strong> (client id <code>{client_id}</code>) wants to use \
         <code>{resource}</code> on your behalf.</p>{about}\
         <p>After you sign in, you will be sent back to {redirect}.</p>\
         <p>It asks for:</p><ul>{scopes}</ul>\
         <p>Only continue if you started this connection yourself.</p>\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"txn_id\" value=\"{txn}\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         {remember}\
         <button type=\"submit\" name=\"action\" value=\"approve\">Allow</button>\
         <button type=\"submit\" name=\"action\" value=\"deny\">Deny</button></form>",
        action = html::escape(&state.settings.route("/consent")),
        remember = if state.settings.remember_consent.is_zero() {
            ""
        } else {
            "<p><label><input type=\"checkbox\" name=\"remember\" value=\"1\"> \
             Remember this approval for this application</label></p>"
        },
        name = html::escape(&strip_unsafe_for_display(name)),
        client_id = html::escape(&client.client_id),
        resource = html::escape(
            pending
                .resource
                .as_deref()
                .unwrap_or(&state.settings.resource_url)
        ),
        redirect = html::redirect_uri(&pending.redirect_uri),
        txn = html::escape(&pending.txn_id),
        csrf = html::escape(&csrf),
    );
    html::page(200, "Allow access?", &body)
}

fn redirect_host(uri: &str) -> String {
    ClientProvenance::describe("", None, &[], uri).redirect_host
}

/// What we know about where the client comes from, as HTML paragraphs (escaped).
fn about_client(p: &ClientProvenance) -> String {
    let mut out = String::new();
    let kind = |t: &str| {
        if t == "web" {
            "a web application"
        } else {
            "a native application"
        }
    };
    match &p.origin {
        ClientOrigin::MetadataDocument {
            publisher_host,
            application_type,
        } => {
            let host = html::escape(publisher_host);
            out.push_str(&format!(
                "<p>Described by a document from <strong>{host}</strong> ({}).",
                kind(application_type)
            ));
            if p.verified() {
                out.push_str(" The result goes to a web address listed in that document.</p>");
            } else {
                out.push_str(
                    " The result goes to a program on this device, and any program can present \
                     this description: it does not prove who you are talking to.</p>",
                );
            }
        }
        ClientOrigin::Registered { application_type } => out.push_str(&format!(
            "<p>The name was given by the application itself when it registered and is not \
             verified ({}).</p>",
            kind(application_type)
        )),
    }
    if p.web_with_loopback {
        out.push_str(
            "<p>It registered as a web application but receives the result on this device \
             (loopback address).</p>",
        );
    }
    if p.all_redirects_loopback {
        out.push_str(
            "<p><strong>Warning:</strong> this application only receives results on this \
             device (loopback addresses). Continue only if you just started it yourself.</p>",
        );
    }
    out
}

/// `POST /consent`: the user's decision.
pub(crate) async fn decide(req: HttpRequest, state: State, body: Bytes) -> HttpResponse {
    let params = match Params::parse(&body) {
        Ok(p) => p,
        Err(e) => return html::error_page(400, &e.description()),
    };
    let (pending, secret) = match pending_for_browser(&req, &state, params.get("txn_id")).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let expected = cookies::consent_token(&secret, &pending.txn_id);
    let sent = params.get("csrf_token").unwrap_or_default();
    // Compare digests: equal-length values, no early exit on the secret-derived token.
    if TokenHash::of(sent) != TokenHash::of(&expected) {
        return html::error_page(400, "Invalid or expired consent form.");
    }
    match params.get("action") {
        Some("approve") => {
            match state
                .store
                .approve_pending(&pending.txn_id, &TokenHash::of(&expected))
                .await
            {
                Ok(Some(approved)) => {
                    let mut response = upstream_redirect(&state, &approved);
                    if params.get("remember") == Some("1") {
                        remember(&req, &state, &approved, &mut response).await;
                    }
                    response
                }
                Ok(None) => {
                    html::error_page(400, "This consent form was already used or has expired.")
                }
                Err(e) => store_error_page(e),
            }
        }
        Some("deny") => deny(&state, &pending).await,
        _ => html::error_page(400, "Invalid action."),
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
                &OAuthError::new(OAuthErrorCode::AccessDenied, "the user denied access"),
            );
            let _ = res.add_cookie(&cookies::expired_binding(secure, &p.txn_id));
            res
        }
        Ok(None) => html::error_page(400, "Invalid or expired authorization request."),
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
    let ttl = state.settings.remember_consent;
    if ttl.is_zero() {
        return;
    }
    let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let secure = state.settings.base_url.scheme() == "https";
    let device = match cookies::device_secret(req, secure) {
        Some(device) => device,
        None => {
            let (device, cookie) = cookies::new_device(secure, ttl_secs);
            let _ = response.add_cookie(&cookie);
            device
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
    };
    if let Err(error) = state.store.remember_consent(&approval).await {
        tracing::warn!(%error, "could not remember a consent");
    }
}
