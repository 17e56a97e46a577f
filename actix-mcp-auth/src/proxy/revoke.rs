//! `POST /revoke`: token revocation (RFC 7009); the decisions are in
//! [`crate::oauth::revocation`].
//!
//! The in-process token cache of this replica forgets a revoked token at once; other replicas
//! within their cache TTL.

use actix_web::{HttpRequest, HttpResponse, http::header, web::Bytes};

use super::{
    ProxyState, State, client_auth, end_grant,
    form::{json_error, require_form_content_type, with_cors},
    store_error,
};
use crate::{
    error::OAuthError,
    oauth::{
        params::Params,
        revocation::{self, FoundToken, Revocation},
    },
    store::{RevokeCause, TokenHash, TokenKind},
};

/// `POST /revoke`.
pub(crate) async fn revoke(req: HttpRequest, state: State, body: Bytes) -> HttpResponse {
    match handle(&req, &state, &body).await {
        Ok(()) => with_cors(
            HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish(),
        ),
        Err(error) => json_error(&error),
    }
}

async fn handle(req: &HttpRequest, state: &ProxyState, body: &[u8]) -> Result<(), OAuthError> {
    require_form_content_type(req)?;
    let params = Params::parse(body)?;
    let client = client_auth::authenticate(req, state, &params).await?;
    let Some(token) = revocation::token_to_revoke(&params)? else {
        return Ok(());
    };
    let hash = TokenHash::of(token);
    let Some(found) = state.store.find_token(&hash).await.map_err(store_error)? else {
        return Ok(());
    };
    let kind = match found.kind {
        TokenKind::Access => revocation::TokenKind::Access,
        TokenKind::Refresh => revocation::TokenKind::Refresh,
    };
    let seen = FoundToken {
        kind,
        client_id: &found.client_id,
    };
    match revocation::decide(seen, &client.client_id) {
        Revocation::Nothing => {}
        Revocation::Grant => {
            end_grant(state, &found.grant_id, RevokeCause::CLIENT_REQUEST).await?;
        }
        Revocation::AccessToken => {
            state.store.revoke_token(&hash).await.map_err(store_error)?;
            state.bearer.forget(token);
        }
    }
    Ok(())
}
