//! `POST /token`: authorization-code and refresh-token grants; the decisions are in
//! [`crate::oauth::token_request`].
//!
//! A code is consumed atomically on exactly the values checked, so only a valid replay revokes
//! what it issued. Refresh tokens rotate with a compare-and-swap: of any number of concurrent
//! uses exactly one mints a pair, and within the grace (`MCP_AUTH_REFRESH_GRACE_SECONDS`)
//! every retry gets that same pair; after it, or once the successor was used, the old token is
//! a replay that revokes the whole grant (RFC 9700 §4.14.2), logged at WARN with the grant and
//! client ids. Our tokens are opaque; AuthKit's never leave the server.

use actix_web::{HttpRequest, HttpResponse, http::header, web::Bytes};
use serde_json::json;

use super::{
    ProxyState, State, client_auth, end_grant,
    form::{json_error, require_form_content_type, with_cors},
    store_error,
};
use crate::{
    error::OAuthError,
    oauth::{
        error::Rejection,
        params::Params,
        token_request::{
            self, CodeRedemption, GrantFailure, IssuedCode, RefreshRequest, TokenLifetimes,
            TokenRequest, expires_in, issues_refresh_tokens,
        },
        tokens::{ACCESS_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX, generate_secret},
    },
    store::{
        AuthorizationCode, ClientRecord, CodeConsumed, CodeRedemption as ConsumeOn, IssuedTokens,
        NewTokens, RevokeCause, Rotation, Secret, SuccessorTokens, TokenHash,
    },
};

/// `POST /token`.
pub(crate) async fn token(req: HttpRequest, state: State, body: Bytes) -> HttpResponse {
    match handle(&req, &state, &body).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(error = %error.code().as_str(), "token request refused");
            json_error(&error)
        }
    }
}

async fn handle(
    req: &HttpRequest,
    state: &ProxyState,
    body: &[u8],
) -> Result<HttpResponse, OAuthError> {
    require_form_content_type(req)?;
    let params = Params::parse(body)?;
    // A code redemption reads the client and the code in one round trip.
    let code_hash = match (params.get("grant_type"), params.get("code")) {
        (Some("authorization_code"), Some(code)) => Some(TokenHash::of(code)),
        _ => None,
    };
    let (client, code) = match &code_hash {
        Some(hash) => client_auth::authenticate_with_code(req, state, &params, hash).await?,
        None => (client_auth::authenticate(req, state, &params).await?, None),
    };
    match token_request::parse(&params, &client.grant_types)? {
        TokenRequest::AuthorizationCode(request) => {
            authorization_code(state, &client, &request, code).await
        }
        TokenRequest::RefreshToken(request) => refresh(state, &client, &request).await,
    }
}

fn failed(failure: GrantFailure) -> OAuthError {
    Rejection::from(failure).into()
}

async fn authorization_code(
    state: &ProxyState,
    client: &ClientRecord,
    request: &CodeRedemption<'_>,
    read: Option<Option<AuthorizationCode>>,
) -> Result<HttpResponse, OAuthError> {
    let code_hash = TokenHash::of(request.code);
    // `read` is the code read with the client (same parameter, same digest), if it was.
    let code = match read {
        Some(code) => code,
        None => state
            .store
            .find_code(&code_hash)
            .await
            .map_err(store_error)?,
    };
    let code = code.ok_or_else(|| failed(GrantFailure::UnknownCode))?;
    // Every check before anything is consumed: a wrong guess neither burns the code nor
    // revokes its grant.
    let issued = IssuedCode {
        client_id: &code.client_id,
        redirect_uri: &code.redirect_uri,
        redirect_uri_sent: code.redirect_uri_sent,
        code_challenge: &code.code_challenge,
        resource: code.resource.as_deref(),
    };
    token_request::check_redemption(
        &issued,
        &client.client_id,
        request,
        &state.settings.resource,
    )?;
    let checked = ConsumeOn {
        client_id: &code.client_id,
        redirect_uri: &code.redirect_uri,
        code_challenge: &code.code_challenge,
    };
    let refresh =
        issues_refresh_tokens(&client.grant_types).then(|| generate_secret(REFRESH_TOKEN_PREFIX));
    let (access, new) = new_tokens(state, refresh.as_ref());
    // Consuming the code and storing the pair are one transaction.
    let consumed = match code.used_at {
        Some(_) => CodeConsumed::Replayed {
            grant_id: code.grant_id.clone(),
        },
        None => state
            .store
            .consume_code(&code_hash, &checked, &new)
            .await
            .map_err(store_error)?,
    };
    match consumed {
        CodeConsumed::Consumed(issued) => {
            Ok(token_response(state, &access, refresh.as_ref(), &issued))
        }
        CodeConsumed::Replayed { grant_id } => {
            // A second valid redemption by the code's own client: the code leaked and the
            // first redemption may have been an attacker's. Revoke what it issued.
            tracing::warn!(
                grant_id = %grant_id,
                client_id = %client.client_id,
                "authorization code replayed; revoking its grant"
            );
            end_grant(state, &grant_id, RevokeCause::CODE_REPLAYED).await?;
            Err(failed(GrantFailure::CodeReplayed))
        }
        CodeConsumed::NotFound => Err(failed(GrantFailure::UnknownCode)),
        CodeConsumed::GrantEnded => Err(failed(GrantFailure::GrantRevoked)),
    }
}

async fn refresh(
    state: &ProxyState,
    client: &ClientRecord,
    request: &RefreshRequest<'_>,
) -> Result<HttpResponse, OAuthError> {
    // The client registered the refresh grant (`token_request::parse` checked it).
    let refresh = generate_secret(REFRESH_TOKEN_PREFIX);
    let (access, new) = new_tokens(state, Some(&refresh));
    let successor = SuccessorTokens {
        access_token: access,
        access_expires_at: new.access_expires_at,
        refresh_token: refresh,
        refresh_expires_at: new.refresh_expires_at,
    };
    let rotation = state
        .store
        .rotate_refresh_token(
            &TokenHash::of(request.refresh_token),
            &client.client_id,
            request.scopes.as_deref(),
            &successor,
            state.settings.refresh_grace,
        )
        .await
        .map_err(store_error)?;
    match rotation {
        // The rotation checked that the grant's upstream session is readable.
        Rotation::Rotated(issued) => Ok(token_response(
            state,
            &successor.access_token,
            Some(&successor.refresh_token),
            &issued,
        )),
        Rotation::Reissued {
            issued,
            access_token,
            refresh_token,
        } => {
            // A retry within the grace: the pair the winning rotation issued, never a new one.
            tracing::info!(
                grant_id = %issued.grant_id,
                client_id = %client.client_id,
                "refresh token retried within its grace; same successor returned"
            );
            let successor = SuccessorTokens {
                access_token,
                refresh_token,
                ..successor
            };
            answer_rotation(state, &successor, &issued).await
        }
        Rotation::Replayed { grant_id } => {
            tracing::warn!(
                grant_id = %grant_id,
                client_id = %client.client_id,
                "refresh token replayed (used after its grace, after its successor, or after \
                 being superseded); revoking its grant"
            );
            end_grant(state, &grant_id, RevokeCause::REFRESH_REPLAYED).await?;
            Err(failed(GrantFailure::RefreshReplayed))
        }
        Rotation::Unusable { grant_id } => {
            end_grant(state, &grant_id, RevokeCause::UNREADABLE).await?;
            Err(failed(GrantFailure::GrantUnusable))
        }
        Rotation::InvalidScope => Err(failed(GrantFailure::ScopeExceedsGrant)),
        Rotation::NotFound => Err(failed(GrantFailure::UnknownRefreshToken)),
    }
}

/// The answer to a retry within the grace that hands out `pair` again.
async fn answer_rotation(
    state: &ProxyState,
    pair: &SuccessorTokens,
    issued: &IssuedTokens,
) -> Result<HttpResponse, OAuthError> {
    // The grant's upstream session must still be readable (its encryption key may have been
    // removed): otherwise the new tokens would be useless, and the client should log in again
    // now rather than loop through refreshes.
    match state.store.get_grant(&issued.grant_id).await {
        Ok(Some(_)) => Ok(token_response(
            state,
            &pair.access_token,
            Some(&pair.refresh_token),
            issued,
        )),
        Ok(None) => Err(failed(GrantFailure::GrantRevoked)),
        Err(error) if error.is_transient() => Err(store_error(error)),
        Err(error) => {
            tracing::warn!(%error, "grant cannot be read; ending it");
            end_grant(state, &issued.grant_id, RevokeCause::UNREADABLE).await?;
            Err(failed(GrantFailure::GrantUnusable))
        }
    }
}

/// A new access token, and what the store keeps of it and of `refresh` (if any).
fn new_tokens(state: &ProxyState, refresh: Option<&Secret>) -> (Secret, NewTokens) {
    let lifetimes = TokenLifetimes {
        access: state.settings.access_token_ttl,
        refresh: state.settings.refresh_token_ttl,
    };
    let expiries = lifetimes.expiries(state.store.clock().now());
    let access = generate_secret(ACCESS_TOKEN_PREFIX);
    let new = NewTokens {
        access_hash: TokenHash::of_secret(&access),
        access_expires_at: expiries.access,
        refresh_hash: refresh.map(TokenHash::of_secret),
        refresh_expires_at: expiries.refresh,
    };
    (access, new)
}

fn token_response(
    state: &ProxyState,
    access: &Secret,
    refresh: Option<&Secret>,
    issued: &IssuedTokens,
) -> HttpResponse {
    let mut body = json!({
        "access_token": access.expose(),
        "token_type": "Bearer",
        "expires_in": expires_in(issued.access_expires_at, state.store.clock().now()),
    });
    if !issued.scopes.is_empty() {
        body["scope"] = json!(issued.scopes.join(" "));
    }
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh.expose());
    }
    with_cors(
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(body),
    )
}
