//! Client authentication at `/token` and `/revoke`: the rules are in
//! [`crate::oauth::client_auth`]; this adapter loads the client and counts failures.
//!
//! Failed authentications are counted per `client_id` (see
//! [`RateLimits::failed_client_auth`](crate::RateLimits::failed_client_auth)): once a client's
//! budget is spent, it is refused with 429 before its secret is compared, whatever address the
//! guesses come from.

use actix_web::{HttpRequest, http::header};

use super::{ProxyState, cimd::CimdFailure, store_error};
use crate::{
    error::OAuthError,
    oauth::{
        cimd::is_url_client_id,
        client_auth::{
            self, Credentials, Registered, document_refused, invalid_client, locked_out,
        },
        params::Params,
    },
    store::{ClientRecord, TokenHash},
};

/// The authenticated client of a token or revocation request.
pub(crate) async fn authenticate(
    req: &HttpRequest,
    state: &ProxyState,
    params: &Params,
) -> Result<ClientRecord, OAuthError> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let presented = Credentials::presented(authorization, params)?;
    let client = client(state, &presented).await?;
    let guard = &state.limiters.failed_client_auth;
    guard.check(&client.client_id).map_err(locked_out)?;
    let registered = Registered {
        auth_method: &client.token_endpoint_auth_method,
        has_secret: client.client_secret_hash.is_some(),
    };
    let stored = client.client_secret_hash.as_ref();
    let verdict = client_auth::verify(&presented, registered, |secret| {
        stored == Some(&TokenHash::of(secret))
    });
    match verdict {
        Ok(()) => Ok(client),
        Err(rejection) => {
            guard
                .record_failure(&client.client_id)
                .map_err(locked_out)?;
            Err(rejection.into())
        }
    }
}

/// The client the credentials name.
async fn client(state: &ProxyState, presented: &Credentials) -> Result<ClientRecord, OAuthError> {
    if is_url_client_id(&presented.client_id) {
        // A metadata-document client: the (usually cached) document must still be valid.
        return state
            .cimd
            .client(&state.store, &presented.client_id)
            .await
            .map_err(|failure| match failure {
                CimdFailure::Store(e) => store_error(e),
                CimdFailure::Client(e) => document_refused(&e).into(),
            });
    }
    state
        .store
        .get_client(&presented.client_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| invalid_client(presented.via_basic).into())
}
