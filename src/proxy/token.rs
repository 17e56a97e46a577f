//! `POST /token`: authorization-code and refresh-token grants (OAuth 2.1 §3.2, §4.1.3, §4.3).
//!
//! Codes are single-use (consumed atomically; a replay revokes what the code issued). Refresh
//! tokens rotate with a compare-and-swap: of two concurrent uses exactly one wins, and the use of
//! an already-rotated token revokes the whole grant (RFC 9700 §4.14.2). Our tokens are opaque;
//! AuthKit's never leave the server.

use actix_web::{HttpRequest, HttpResponse, http::header, web::Bytes};
use serde_json::json;

use super::{
    ProxyState, State, client_auth, end_grant,
    form::{Params, json_error, require_form_content_type, with_cors},
    store_error,
};
use crate::{
    clock::unix_now,
    error::{OAuthError, OAuthErrorCode},
    oauth::{
        pkce, scope,
        tokens::{ACCESS_TOKEN_PREFIX, CODE_PREFIX, REFRESH_TOKEN_PREFIX, generate, has_shape},
    },
    store::{ClientRecord, CodeConsumed, IssuedTokens, NewTokens, Rotation, TokenHash},
};

fn invalid_grant(description: &str) -> OAuthError {
    OAuthError::new(OAuthErrorCode::InvalidGrant, description)
}

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
    let client = client_auth::authenticate(req, state, &params).await?;
    let grant_type = params.require("grant_type")?;
    if !client.grant_types.iter().any(|g| g == grant_type) {
        return Err(match grant_type {
            "authorization_code" | "refresh_token" => OAuthError::new(
                OAuthErrorCode::UnauthorizedClient,
                "this client did not register this grant type",
            ),
            _ => OAuthError::new(
                OAuthErrorCode::UnsupportedGrantType,
                "unsupported grant_type",
            ),
        });
    }
    match grant_type {
        "authorization_code" => authorization_code(state, &client, &params).await,
        "refresh_token" => refresh(state, &client, &params).await,
        _ => Err(OAuthError::new(
            OAuthErrorCode::UnsupportedGrantType,
            "unsupported grant_type",
        )),
    }
}

async fn authorization_code(
    state: &ProxyState,
    client: &ClientRecord,
    params: &Params,
) -> Result<HttpResponse, OAuthError> {
    let code = params.require("code")?;
    let verifier = params.require("code_verifier")?;
    if !has_shape(code, CODE_PREFIX) {
        return Err(invalid_grant("unknown or expired code"));
    }
    let consumed = state
        .store
        .consume_code(&TokenHash::of(code))
        .await
        .map_err(store_error)?;
    let code = match consumed {
        CodeConsumed::Consumed(code) => code,
        CodeConsumed::Replayed { grant_id } => {
            // A second redemption means the code leaked: revoke what it issued, but only for
            // the client it belongs to (a stranger must not be able to revoke others' grants).
            let owner = state
                .store
                .get_grant(&grant_id)
                .await
                .map_err(store_error)?;
            if owner.is_some_and(|g| g.client_id == client.client_id) {
                tracing::warn!("authorization code replayed; revoking its grant");
                end_grant(state, &grant_id).await?;
            }
            return Err(invalid_grant("code already used"));
        }
        CodeConsumed::NotFound => return Err(invalid_grant("unknown or expired code")),
    };
    if code.client_id != client.client_id {
        return Err(invalid_grant("code issued to another client"));
    }
    if params
        .get("redirect_uri")
        .is_some_and(|uri| uri != code.redirect_uri)
    {
        return Err(invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    if !pkce::verify_s256(verifier, &code.code_challenge) {
        return Err(invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    if let Some(resource) = params.get("resource") {
        crate::oauth::resource::match_resource(resource, &state.settings.resource)
            .ok()
            .filter(|r| Some(r) == code.resource.as_ref())
            .ok_or_else(|| {
                OAuthError::new(
                    OAuthErrorCode::InvalidTarget,
                    "resource does not match the grant",
                )
            })?;
    }
    let (access, refresh, new) = new_pair(state, client);
    let issued = state
        .store
        .issue_tokens(&code.grant_id, &code.scopes, &new)
        .await
        .map_err(store_error)?
        .ok_or_else(|| invalid_grant("the authorization was revoked"))?;
    Ok(token_response(&access, refresh.as_deref(), &issued))
}

async fn refresh(
    state: &ProxyState,
    client: &ClientRecord,
    params: &Params,
) -> Result<HttpResponse, OAuthError> {
    let presented = params.require("refresh_token")?;
    if !has_shape(presented, REFRESH_TOKEN_PREFIX) {
        return Err(invalid_grant("unknown refresh token"));
    }
    let requested = params
        .get("scope")
        .map(|s| {
            scope::parse(s)
                .ok_or_else(|| OAuthError::new(OAuthErrorCode::InvalidScope, "malformed scope"))
        })
        .transpose()?;
    let (access, refresh, new) = new_pair(state, client);
    let Some(refresh) = refresh else {
        return Err(invalid_grant("refresh is not allowed for this client"));
    };
    let presented_hash = TokenHash::of(presented);
    let mut rotation = state
        .store
        .rotate_refresh_token(
            &presented_hash,
            &client.client_id,
            requested.as_deref(),
            &new,
        )
        .await
        .map_err(store_error)?;
    if matches!(rotation, Rotation::Replayed { .. }) {
        // Already rotated: still usable while its successor has never been used (the answer
        // that carried the successor may have been lost); a real replay revokes the grant.
        rotation = state
            .store
            .retry_rotation(
                &presented_hash,
                &client.client_id,
                requested.as_deref(),
                &new,
            )
            .await
            .map_err(store_error)?;
    }
    match rotation {
        Rotation::Rotated(issued) => {
            // The grant's upstream session must still be readable (its encryption key may have
            // been removed): otherwise the new tokens would be useless, and the client should
            // log in again now rather than loop through refreshes.
            match state.store.get_grant(&issued.grant_id).await {
                Ok(Some(_)) => Ok(token_response(&access, Some(&refresh), &issued)),
                Ok(None) => Err(invalid_grant("the authorization was revoked")),
                Err(error) if error.is_transient() => Err(store_error(error)),
                Err(error) => {
                    tracing::warn!(%error, "grant cannot be read; ending it");
                    end_grant(state, &issued.grant_id).await?;
                    Err(invalid_grant(
                        "the authorization can no longer be used; log in again",
                    ))
                }
            }
        }
        Rotation::Replayed { grant_id } => {
            tracing::warn!("refresh token replayed; revoking its grant");
            end_grant(state, &grant_id).await?;
            Err(invalid_grant("refresh token already used"))
        }
        Rotation::InvalidScope => Err(OAuthError::new(
            OAuthErrorCode::InvalidScope,
            "the requested scope exceeds the original grant",
        )),
        Rotation::NotFound => Err(invalid_grant("unknown, expired or revoked refresh token")),
        #[allow(unreachable_patterns)]
        _ => Err(invalid_grant("refresh token not accepted")),
    }
}

/// A new access token, and a refresh token when the client registered the refresh grant.
fn new_pair(state: &ProxyState, client: &ClientRecord) -> (String, Option<String>, NewTokens) {
    let now = unix_now();
    let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2);
    let access = generate(ACCESS_TOKEN_PREFIX);
    let refresh = client
        .grant_types
        .iter()
        .any(|g| g == "refresh_token")
        .then(|| generate(REFRESH_TOKEN_PREFIX));
    let new = NewTokens {
        access_hash: TokenHash::of(&access),
        access_expires_at: now + secs(state.settings.access_token_ttl),
        refresh_hash: refresh.as_deref().map(TokenHash::of),
        refresh_expires_at: now + secs(state.settings.refresh_token_ttl),
    };
    (access, refresh, new)
}

fn token_response(access: &str, refresh: Option<&str>, issued: &IssuedTokens) -> HttpResponse {
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": (issued.access_expires_at - unix_now()).max(0),
    });
    if !issued.scopes.is_empty() {
        body["scope"] = json!(issued.scopes.join(" "));
    }
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    with_cors(
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(body),
    )
}
