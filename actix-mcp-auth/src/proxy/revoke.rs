//! `POST /revoke`: token revocation (RFC 7009).
//!
//! Answers 200 whether or not the token was known (§2.2), after authenticating the client; a
//! client can only revoke its own tokens. Revoking a refresh token ends its whole grant (access
//! tokens included, §2.1 SHOULD); revoking an access token ends that token only. The in-process
//! token cache of this replica forgets the token at once; other replicas within their cache TTL.

use actix_web::{HttpRequest, HttpResponse, http::header, web::Bytes};

use super::{
    ProxyState, State, client_auth, end_grant,
    form::{Params, json_error, require_form_content_type, with_cors},
    store_error,
};
use crate::{
    error::OAuthError,
    oauth::tokens::{ACCESS_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX, has_shape},
    store::{TokenHash, TokenKind},
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
    let token = params.require("token")?;
    // Any hint is ignored: we look the token up whatever its kind (RFC 7009 §2.1).
    if !has_shape(token, ACCESS_TOKEN_PREFIX) && !has_shape(token, REFRESH_TOKEN_PREFIX) {
        return Ok(());
    }
    let hash = TokenHash::of(token);
    let Some(found) = state.store.find_token(&hash).await.map_err(store_error)? else {
        return Ok(());
    };
    if found.client_id != client.client_id {
        return Ok(());
    }
    match found.kind {
        TokenKind::Refresh => {
            end_grant(state, &found.grant_id).await?;
        }
        TokenKind::Access => {
            state.store.revoke_token(&hash).await.map_err(store_error)?;
            state.bearer.forget(token);
        }
    }
    Ok(())
}
