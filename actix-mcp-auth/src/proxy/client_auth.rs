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
    store::{AuthorizationCode, ClientRecord, TokenHash},
};

/// The authenticated client of a token or revocation request.
pub(crate) async fn authenticate(
    req: &HttpRequest,
    state: &ProxyState,
    params: &Params,
) -> Result<ClientRecord, OAuthError> {
    let presented = presented(req, params)?;
    let client = client(state, &presented).await?;
    check(state, &presented, client)
}

/// [`authenticate`] for a code redemption: a registered client and the code with digest
/// `code_hash` are read in one round trip ([`Store::get_client_and_code`]); the code is for
/// the caller to look at once the client has authenticated. `None` when the code was not read
/// (a metadata-document client: ask `Store::find_code`).
///
/// [`Store::get_client_and_code`]: crate::store::Store::get_client_and_code
pub(crate) async fn authenticate_with_code(
    req: &HttpRequest,
    state: &ProxyState,
    params: &Params,
    code_hash: &TokenHash,
) -> Result<(ClientRecord, Option<Option<AuthorizationCode>>), OAuthError> {
    let presented = presented(req, params)?;
    if is_url_client_id(&presented.client_id) {
        let client = client(state, &presented).await?;
        return Ok((check(state, &presented, client)?, None));
    }
    let (client, code) = state
        .store
        .get_client_and_code(&presented.client_id, code_hash)
        .await
        .map_err(store_error)?;
    let client = client.ok_or_else(|| OAuthError::from(invalid_client(presented.via_basic)))?;
    Ok((check(state, &presented, client)?, Some(code)))
}

fn presented(req: &HttpRequest, params: &Params) -> Result<Credentials, OAuthError> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    Ok(Credentials::presented(authorization, params)?)
}

/// The client, if `presented` authenticates it (failures counted per client).
fn check(
    state: &ProxyState,
    presented: &Credentials,
    client: ClientRecord,
) -> Result<ClientRecord, OAuthError> {
    let guard = &state.limiters.failed_client_auth;
    guard.check(&client.client_id).map_err(locked_out)?;
    let registered = Registered {
        auth_method: &client.token_endpoint_auth_method,
        has_secret: client.client_secret_hash.is_some(),
    };
    let stored = client.client_secret_hash.as_ref();
    let verdict = client_auth::verify(presented, registered, |secret| {
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
