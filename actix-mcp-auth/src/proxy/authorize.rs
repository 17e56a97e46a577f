//! `GET|POST /authorize`: the start of an MCP client's login.
//!
//! Order matters (RFC 6749 §4.1.2.1): until the client and its redirect URI are validated,
//! errors are shown here and never redirected; afterwards they go back to the client with
//! `state` and `iss`. A valid request becomes a pending authorization in the database (so any
//! replica can continue it), a browser-binding cookie is set, and the user is sent to our consent
//! page (or straight to AuthKit when consent is switched off).

use actix_web::{HttpRequest, HttpResponse, web::Bytes};

use super::{
    ProxyState, State, cimd::CimdFailure, cookies, error_redirect, form::Params, html,
    redirect_with, store_error, store_error_page,
};
use crate::{
    clock::unix_now,
    error::{OAuthError, OAuthErrorCode},
    oauth::{
        cimd::is_url_client_id,
        consent::{ConsentRequest, RememberedApproval, Reuse, remembered_reuse},
        pkce::{self, S256},
        redirect_uri::matches_registered,
        resource::{ResourceError, match_resource},
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
        Err(e) => return html::error_page(400, &e.description()),
    };
    let (client, redirect_uri) = match client_and_redirect(&state, &params).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let client_state = params.get("state");
    match validate(&state, &client, &params) {
        Ok(request) => {
            let remembered = remembered_approval(req, &state, &client, &request).await;
            start(
                &state,
                &client,
                redirect_uri,
                client_state,
                request,
                remembered,
            )
            .await
        }
        Err(error) => error_redirect(&state, &redirect_uri, client_state, &error),
    }
}

/// The client and the redirect URI to use; errors here are pages, never redirects.
async fn client_and_redirect(
    state: &ProxyState,
    params: &Params,
) -> Result<(ClientRecord, String), HttpResponse> {
    let Some(client_id) = params.get("client_id") else {
        return Err(html::error_page(400, "The request has no client_id."));
    };
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
        Ok(None) => {
            return Err(html::error_page(
                400,
                "This client is not registered with this server. MCP clients register again \
                 automatically; reconnect the client.",
            ));
        }
        Err(e) => return Err(store_error_page(e)),
    };
    let redirect_uri = match params.get("redirect_uri") {
        Some(uri) if matches_registered(uri, &client.redirect_uris) => uri.to_owned(),
        Some(_) => {
            return Err(html::error_page(
                400,
                "The redirect_uri is not registered for this client.",
            ));
        }
        // OAuth 2.1 §2.3.2: optional only when exactly one URI is registered (and it passes
        // today's checks: a registration stored before them may not).
        None if client.redirect_uris.len() == 1
            && matches_registered(&client.redirect_uris[0], &client.redirect_uris) =>
        {
            client.redirect_uris[0].clone()
        }
        None => return Err(html::error_page(400, "The request has no redirect_uri.")),
    };
    Ok((client, redirect_uri))
}

/// What a valid request asks for.
struct ValidRequest {
    /// Whether `redirect_uri` was in the request (then `/token` must repeat it).
    redirect_uri_sent: bool,
    code_challenge: String,
    scopes: Vec<String>,
    resource: String,
}

fn invalid(code: OAuthErrorCode, description: &str) -> OAuthError {
    OAuthError::new(code, description)
}

fn validate(
    state: &ProxyState,
    client: &ClientRecord,
    params: &Params,
) -> Result<ValidRequest, OAuthError> {
    match params.get("response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(invalid(
                OAuthErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
        None => {
            return Err(invalid(
                OAuthErrorCode::InvalidRequest,
                "missing response_type",
            ));
        }
    }
    let challenge = params.get("code_challenge").ok_or_else(|| {
        invalid(
            OAuthErrorCode::InvalidRequest,
            "PKCE code_challenge is required",
        )
    })?;
    if params.get("code_challenge_method") != Some(S256) {
        return Err(invalid(
            OAuthErrorCode::InvalidRequest,
            "code_challenge_method must be S256",
        ));
    }
    if !pkce::is_valid_s256_challenge(challenge) {
        return Err(invalid(
            OAuthErrorCode::InvalidRequest,
            "malformed code_challenge",
        ));
    }
    let scopes = requested_scopes(state, client, params.get("scope"))?;
    let resource = match params.get("resource") {
        None => crate::oauth::resource::canonical(&state.settings.resource),
        Some(value) => match_resource(value, &state.settings.resource).map_err(|e| {
            invalid(
                OAuthErrorCode::InvalidTarget,
                match e {
                    ResourceError::Malformed => "resource must be an absolute URI without fragment",
                    ResourceError::NotThisServer => "resource does not match this server",
                },
            )
        })?,
    };
    Ok(ValidRequest {
        redirect_uri_sent: params.get("redirect_uri").is_some(),
        code_challenge: challenge.to_owned(),
        scopes,
        resource,
    })
}

/// The scopes of the request: as asked (each one supported and registered by the client), or
/// by default the client's registered scopes, else the configured required scopes.
fn requested_scopes(
    state: &ProxyState,
    client: &ClientRecord,
    requested: Option<&str>,
) -> Result<Vec<String>, OAuthError> {
    let registered = client.scope.as_deref().and_then(scope::parse);
    let Some(requested) = requested else {
        return Ok(registered.unwrap_or_else(|| state.settings.required_scopes.clone()));
    };
    let scopes = scope::parse(requested)
        .ok_or_else(|| invalid(OAuthErrorCode::InvalidScope, "malformed scope"))?;
    let allowed = registered.unwrap_or_else(|| super::register::supported_scopes(state));
    let missing = scope::missing(&scopes, &allowed);
    if !missing.is_empty() {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidScope,
            format!("scope not allowed for this client: {}", missing.join(" ")),
        ));
    }
    Ok(scopes)
}

/// Whether this browser already approved this client for these scopes and resource, with
/// "remember", while the client had the redirect URIs it has now (only when the operator enabled it, and only on a first-party navigation: a
/// cross-site page must not be able to complete a login silently).
async fn remembered_approval(
    req: &HttpRequest,
    state: &ProxyState,
    client: &ClientRecord,
    request: &ValidRequest,
) -> bool {
    let settings = &state.settings;
    if settings.remember_consent.is_zero() || !settings.consent_required {
        return false;
    }
    let first_party = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches!(v, "none" | "same-origin" | "same-site"));
    let secure = settings.base_url.scheme() == "https";
    let Some(device) = cookies::device_secret(req, secure).filter(|_| first_party) else {
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
    redirect_uri: String,
    client_state: Option<&str>,
    request: ValidRequest,
    remembered: bool,
) -> HttpResponse {
    let secure = state.settings.base_url.scheme() == "https";
    let txn_id = random_value();
    let (binding_secret, cookie) = cookies::new_binding(secure, &txn_id);
    let now = unix_now();
    let consent_required = state.settings.consent_required && !remembered;
    let pending = PendingAuthorization {
        txn_id: txn_id.clone(),
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        redirect_uri_sent: request.redirect_uri_sent,
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
        return error_redirect(state, &redirect_uri, client_state, &store_error(e));
    }
    let mut response = if consent_required {
        redirect_with(&state.settings.endpoint("/consent"), &[("txn_id", &txn_id)])
    } else {
        super::consent::upstream_redirect(state, &pending)
    };
    let _ = response.add_cookie(&cookie);
    response
}

impl OAuthErrorCode {
    /// Status of an error page showing this error.
    pub(crate) fn status_for_page(self) -> u16 {
        match self {
            Self::TemporarilyUnavailable => 503,
            Self::ServerError => 500,
            _ => 400,
        }
    }
}
