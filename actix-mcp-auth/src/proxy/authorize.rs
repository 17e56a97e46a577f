//! `GET|POST /authorize`: the start of an MCP client's login; the decisions are in
//! [`crate::oauth::authorize`].
//!
//! Until the client and its redirect URI are validated, errors are pages; afterwards they go
//! back to the client with `state` and `iss`. A valid request becomes a pending authorization
//! in the database (so any replica can continue it), a browser-binding cookie is set, and the
//! user is sent to our consent page (or straight to AuthKit when consent is switched off or a
//! remembered approval covers the request).

use actix_web::{HttpRequest, HttpResponse, http::header::HeaderName, web::Bytes};

use super::{
    ProxyState, State, cimd::CimdFailure, consent::consent_policy, cookies, error_redirect,
    form::header_text, html, redirect_with, store_error, store_error_page,
};
use crate::{
    clock::unix_now,
    error::OAuthError,
    oauth::{
        authorize::{self, AuthorizationRequest, AuthorizePolicy, PageError, RedirectTarget},
        cimd::is_url_client_id,
        consent::{ConsentRequest, RememberedApproval, Reuse, remembered_reuse},
        params::Params,
        scope,
        tokens::random_value,
    },
    store::{ClientRecord, PendingAuthorization, TokenHash},
};

/// `GET /authorize`: parameters in the query string.
pub(crate) async fn authorize_get(req: HttpRequest, state: State) -> HttpResponse {
    let query = req.query_string().as_bytes().to_vec();
    authorize(&req, state, &query).await
}

/// `POST /authorize`: parameters in a form body.
pub(crate) async fn authorize_post(req: HttpRequest, state: State, body: Bytes) -> HttpResponse {
    authorize(&req, state, &body).await
}

async fn authorize(req: &HttpRequest, state: State, raw: &[u8]) -> HttpResponse {
    let params = match Params::parse(raw) {
        Ok(p) => p,
        Err(e) => return html::error_page(400, &OAuthError::from(e).description()),
    };
    let (client, target) = match client_and_redirect(&state, &params).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let client_state = params.get("state");
    let supported = scope::supported(&state.settings.client_scopes());
    let policy = AuthorizePolicy {
        required_scopes: &state.settings.required_scopes,
        supported_scopes: &supported,
        resource: &state.settings.resource,
    };
    match authorize::validate(&params, client.scope.as_deref(), &policy) {
        Ok(request) => {
            let remembered = remembered_approval(req, &state, &client, &request).await;
            start(&state, &client, target, client_state, request, remembered).await
        }
        Err(error) => error_redirect(&state, &target.uri, client_state, &OAuthError::from(error)),
    }
}

/// The client and the redirect URI to use; errors here are pages, never redirects.
async fn client_and_redirect(
    state: &ProxyState,
    params: &Params,
) -> Result<(ClientRecord, RedirectTarget), HttpResponse> {
    let page = |error: PageError| html::error_page(400, error.message());
    let client_id = authorize::client_id(params).map_err(page)?;
    let found = if is_url_client_id(client_id) {
        match state.cimd.client(&state.store, client_id).await {
            Ok(client) => Ok(Some(client)),
            Err(CimdFailure::Store(e)) => Err(e),
            // The client itself is in doubt: an error page, never a redirect.
            Err(CimdFailure::Client(e)) => return Err(html::error_page(400, &e.to_string())),
        }
    } else {
        state.store.get_client(client_id).await
    };
    let client = match found {
        Ok(Some(client)) => client,
        Ok(None) => return Err(page(PageError::UnknownClient)),
        Err(e) => return Err(store_error_page(e)),
    };
    let target = authorize::redirect_target(params, &client.redirect_uris).map_err(page)?;
    Ok((client, target))
}

/// Whether this browser already approved this client for these scopes and resource, with
/// "remember", while the client had the redirect URIs it has now.
async fn remembered_approval(
    req: &HttpRequest,
    state: &ProxyState,
    client: &ClientRecord,
    request: &AuthorizationRequest,
) -> bool {
    let policy = consent_policy(state);
    let site = header_text(req, HeaderName::from_static("sec-fetch-site"));
    if !policy.may_reuse_approval(site) {
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
            let remembered = RememberedApproval {
                scopes: &approval.scopes,
                resource: approval.resource.as_deref(),
                redirect_uris_digest: approval.redirect_uris_digest.as_deref(),
            };
            let asked = ConsentRequest {
                scopes: &request.scopes,
                resource: &request.resource,
                client_redirect_uris: &client.redirect_uris,
            };
            remembered_reuse(&remembered, &asked) == Reuse::Covered
        }
        _ => false,
    }
}

/// Stores the pending authorization and sends the browser on.
async fn start(
    state: &ProxyState,
    client: &ClientRecord,
    target: RedirectTarget,
    client_state: Option<&str>,
    request: AuthorizationRequest,
    remembered: bool,
) -> HttpResponse {
    let secure = state.settings.base_url.scheme() == "https";
    let txn_id = random_value();
    let (binding_secret, cookie) = cookies::new_binding(secure, &txn_id);
    let now = unix_now();
    let consent_required = consent_policy(state).page_needed(remembered);
    let pending = PendingAuthorization {
        txn_id: txn_id.clone(),
        client_id: client.client_id.clone(),
        redirect_uri: target.uri.clone(),
        redirect_uri_sent: target.sent,
        client_state: client_state.map(str::to_owned),
        code_challenge: request.code_challenge,
        scopes: request.scopes,
        resource: Some(request.resource),
        upstream_verifier: random_value().into(),
        upstream_nonce: Some(random_value()),
        browser_binding: Some(TokenHash::of(&binding_secret)),
        consent_token: Some(TokenHash::of(&cookies::consent_token(
            &binding_secret,
            &txn_id,
        ))),
        consented_at: (!consent_required).then_some(now),
        created_at: now,
        expires_at: now + cookies::REQUEST_TTL_SECS,
    };
    if let Err(e) = state.store.create_pending(&pending).await {
        return error_redirect(state, &target.uri, client_state, &store_error(e));
    }
    let mut response = if consent_required {
        redirect_with(&state.settings.endpoint("/consent"), &[("txn_id", &txn_id)])
    } else {
        super::consent::upstream_redirect(state, &pending)
    };
    let _ = response.add_cookie(&cookie);
    response
}
