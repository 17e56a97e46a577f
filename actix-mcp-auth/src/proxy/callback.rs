//! `GET {redirect_path}` (default `/auth/callback`): AuthKit sends the user back here; the
//! decisions are in [`crate::oauth::callback`].
//!
//! After AuthKit's `iss` and our `state`, the pending request must exist and this browser must
//! have started it (binding cookie) and approved it; one statement checks both and consumes the
//! request, so a callback is honoured once even across replicas, and a replayed one never
//! reaches AuthKit. AuthKit's code is
//! exchanged server-side with our client secret and PKCE verifier; the login policy
//! ([`super::login_policy`]) decides whether this user may log in; AuthKit's tokens are sealed
//! into a new grant, and the MCP client receives *our* code, with its `state` and our `iss`.

use actix_web::{HttpRequest, HttpResponse};

use super::{
    ProxySettings, ProxyState, State, cookies, error_redirect, html, login_policy, redirect_with,
    store_error, store_error_page,
};
use crate::{
    clock::unix_now,
    error::OAuthError,
    oauth::{
        callback::{self, CODE_TTL_SECS, PageError, UpstreamFailure},
        error::Rejection,
        params::Params,
        tokens::{CODE_PREFIX, generate_secret, random_value},
    },
    store::{AuthorizationCode, Grant, PendingAuthorization, TokenHash, UpstreamTokens},
    upstream::{self, TokenCallError, UserinfoError},
};

fn page(error: PageError) -> HttpResponse {
    html::error_page(error.status(), error.message())
}

/// `GET /auth/callback`.
pub(crate) async fn callback(req: HttpRequest, state: State) -> HttpResponse {
    let params = match Params::parse(req.query_string().as_bytes()) {
        Ok(p) => p,
        Err(e) => return html::error_page(400, &OAuthError::from(e).description()),
    };
    let txn_id = match callback::transaction(&params, &state.settings.authkit) {
        Ok(txn_id) => txn_id,
        Err(error) => return page(error),
    };
    // A sign-in to the connected-apps page shares our registered redirect URI.
    if super::apps::session::is_page_login(Some(txn_id)) {
        return super::apps::finish_login(&req, &state, &params).await;
    }
    let pending = match claim_pending(&req, &state, txn_id).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let secure = state.settings.base_url.scheme() == "https";
    let mut response = finish(&req, &state, &pending, &params).await;
    let _ = response.add_cookie(&cookies::expired_binding(secure, txn_id));
    response
}

/// The pending request, checked against this browser and its approval, and consumed, by one
/// statement. Only when that finds nothing is the request read, to say why.
async fn claim_pending(
    req: &HttpRequest,
    state: &ProxyState,
    txn_id: &str,
) -> Result<PendingAuthorization, HttpResponse> {
    let secure = state.settings.base_url.scheme() == "https";
    if let Some(secret) = cookies::binding_secret(req, secure, txn_id) {
        match state
            .store
            .claim_approved_pending(txn_id, &TokenHash::of(&secret))
            .await
        {
            Ok(Some(p)) => return Ok(p),
            Ok(None) => {}
            Err(e) => return Err(store_error_page(e)),
        }
    }
    let (pending, _) = super::consent::pending_for_browser(req, state, Some(txn_id)).await?;
    callback::check_approved(pending.consented_at.is_some()).map_err(page)?;
    // Approved and bound to this browser, yet not claimed: another callback just took it.
    Err(page(PageError::AlreadyCompleted))
}

/// Everything after the request is ours: errors go back to the client's redirect URI.
async fn finish(
    req: &HttpRequest,
    state: &ProxyState,
    pending: &PendingAuthorization,
    params: &Params,
) -> HttpResponse {
    let back = |error: OAuthError| {
        error_redirect(
            state,
            &pending.redirect_uri,
            pending.client_state.as_deref(),
            &error,
        )
    };
    let upstream_code = match callback::upstream_code(params) {
        Ok(code) => code,
        Err(error) => return back(error.into()),
    };
    let grant = match exchange(state, pending, upstream_code).await {
        Ok(grant) => grant,
        Err(error) => return back(error),
    };
    // Who may log in: checked before anything of the grant is stored.
    if let Err(denied) = login_policy::admit(req, state, pending, &grant).await {
        return back(denied);
    }
    let code = generate_secret(CODE_PREFIX);
    let now = unix_now();
    let record = AuthorizationCode {
        code_hash: TokenHash::of_secret(&code),
        grant_id: grant.grant_id.clone(),
        client_id: pending.client_id.clone(),
        redirect_uri: pending.redirect_uri.clone(),
        redirect_uri_sent: pending.redirect_uri_sent,
        code_challenge: pending.code_challenge.clone(),
        scopes: pending.scopes.clone(),
        resource: pending.resource.clone(),
        created_at: now,
        expires_at: now + CODE_TTL_SECS,
        used_at: None,
    };
    if let Err(e) = state.store.create_grant(&grant, &record).await {
        return back(store_error(e));
    }
    redirect_with(
        &pending.redirect_uri,
        &[
            ("code", code.expose()),
            ("state", pending.client_state.as_deref().unwrap_or_default()),
            ("iss", &state.settings.issuer),
        ],
    )
}

/// Redeems AuthKit's code and reads the user's profile; returns the grant to store.
async fn exchange(
    state: &ProxyState,
    pending: &PendingAuthorization,
    upstream_code: &str,
) -> Result<Grant, OAuthError> {
    let settings = &state.settings;
    let login = redeem_upstream_code(
        settings,
        upstream_code,
        pending.upstream_verifier.expose(),
        "MCP client login",
    )
    .await
    .map_err(failed)?;
    let subject = callback::subject(&login.profile)?;
    let now = unix_now();
    Ok(Grant {
        grant_id: random_value(),
        subject,
        client_id: pending.client_id.clone(),
        scopes: pending.scopes.clone(),
        resource: pending.resource.clone(),
        upstream: login.tokens,
        upstream_version: 0,
        profile: Some(serde_json::Value::Object(login.profile)),
        created_at: now,
        expires_at: now
            + i64::try_from(settings.refresh_token_ttl.as_secs()).unwrap_or(i64::MAX / 2),
    })
}

/// What AuthKit answers a completed login of ours: its tokens and the user's profile.
pub(super) struct UpstreamLogin {
    /// AuthKit's tokens (kept sealed in a grant, or dropped).
    pub tokens: UpstreamTokens,
    /// The userinfo profile.
    pub profile: serde_json::Map<String, serde_json::Value>,
}

/// Redeems AuthKit's `code` with our client secret and PKCE `verifier`, then reads the user's
/// profile with the access token. Failures are logged (with `purpose`, never a secret).
pub(super) async fn redeem_upstream_code(
    settings: &ProxySettings,
    code: &str,
    verifier: &str,
    purpose: &'static str,
) -> Result<UpstreamLogin, UpstreamFailure> {
    let answer = upstream::request_tokens(
        &format!("{}/oauth2/token", settings.authkit),
        &settings.client_id,
        settings.client_secret.expose(),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &settings.endpoint(&settings.redirect_path)),
            ("code_verifier", verifier),
        ],
        settings.timeout,
    )
    .await
    .map_err(|e| match e {
        TokenCallError::Rejected(code) => {
            tracing::warn!(upstream_error = %code, purpose, "AuthKit refused the code exchange");
            UpstreamFailure::Refused
        }
        TokenCallError::Transient(error) => {
            tracing::warn!(%error, purpose, "AuthKit code exchange failed");
            UpstreamFailure::Unavailable
        }
    })?;
    let profile = upstream::userinfo(
        &format!("{}/oauth2/userinfo", settings.authkit),
        answer.tokens.access_token.expose(),
        settings.timeout,
    )
    .await
    .map_err(|e| match e {
        UserinfoError::Unauthorized => UpstreamFailure::Refused,
        UserinfoError::Transient(error) => {
            tracing::warn!(%error, purpose, "AuthKit userinfo failed");
            UpstreamFailure::Unavailable
        }
    })?;
    Ok(UpstreamLogin {
        tokens: answer.tokens,
        profile,
    })
}

fn failed(failure: UpstreamFailure) -> OAuthError {
    Rejection::from(failure).into()
}
