//! Client authentication at `/token` and `/revoke` (OAuth 2.1 §2.4, RFC 6749 §2.3.1).
//!
//! Public clients (`none`) identify themselves with `client_id` only; confidential ones prove
//! their secret with the method they registered (`client_secret_post` or `client_secret_basic`),
//! and only that method. Two methods in one request are refused.
//!
//! Failed authentications are counted per `client_id` (see
//! [`RateLimits::failed_client_auth`](crate::RateLimits::failed_client_auth)): once a client's
//! budget is spent, it is refused with 429 before its secret is compared, whatever address the
//! guesses come from.

use actix_web::{HttpRequest, http::header};
use base64::{Engine, engine::general_purpose::STANDARD};

use super::{ProxyState, cimd::CimdFailure, form::Params, store_error};
use crate::{
    error::{OAuthError, OAuthErrorCode},
    oauth::cimd::is_url_client_id,
    store::{ClientRecord, TokenHash},
};

/// Credentials as presented.
struct Presented {
    client_id: String,
    secret: Option<String>,
    via_basic: bool,
}

fn invalid_client(via_basic: bool) -> OAuthError {
    if via_basic {
        OAuthError::invalid_basic_client("client authentication failed")
    } else {
        OAuthError::new(
            OAuthErrorCode::InvalidClient,
            "client authentication failed",
        )
    }
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`, if present.
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| invalid_client(true))?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(invalid_client(true));
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(invalid_client(true));
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| invalid_client(true))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| invalid_client(true))?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (id, secret) = (unescape(id), unescape(secret));
    // No client id or secret holds a NUL; PostgreSQL would refuse it in a lookup.
    if id.contains('\0') || secret.contains('\0') {
        return Err(invalid_client(true));
    }
    Ok(Some((id, secret)))
}

fn presented(req: &HttpRequest, params: &Params) -> Result<Presented, OAuthError> {
    match basic_credentials(req)? {
        Some((client_id, secret)) => {
            if params.get("client_secret").is_some()
                || params.get("client_id").is_some_and(|id| id != client_id)
            {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidRequest,
                    "use one client authentication method",
                ));
            }
            Ok(Presented {
                client_id,
                secret: Some(secret),
                via_basic: true,
            })
        }
        None => Ok(Presented {
            client_id: params
                .get("client_id")
                .ok_or_else(|| invalid_client(false))?
                .to_owned(),
            secret: params.get("client_secret").map(str::to_owned),
            via_basic: false,
        }),
    }
}

/// The authenticated client of a token or revocation request.
pub(crate) async fn authenticate(
    req: &HttpRequest,
    state: &ProxyState,
    params: &Params,
) -> Result<ClientRecord, OAuthError> {
    let presented = presented(req, params)?;
    let client = if is_url_client_id(&presented.client_id) {
        // A metadata-document client: the (usually cached) document must still be valid.
        state
            .cimd
            .client(&state.store, &presented.client_id)
            .await
            .map_err(|failure| match failure {
                CimdFailure::Store(e) => store_error(e),
                CimdFailure::Client(e) => {
                    OAuthError::new(OAuthErrorCode::InvalidClient, e.to_string())
                }
            })?
    } else {
        state
            .store
            .get_client(&presented.client_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| invalid_client(presented.via_basic))?
    };
    let guard = &state.limiters.failed_client_auth;
    guard.check(&client.client_id).map_err(locked_out)?;
    let method_ok = match client.token_endpoint_auth_method.as_str() {
        "none" => presented.secret.is_none(),
        "client_secret_post" => !presented.via_basic && presented.secret.is_some(),
        "client_secret_basic" => presented.via_basic,
        _ => false,
    };
    let secret_ok = match (&client.client_secret_hash, &presented.secret) {
        (None, None) => true,
        (Some(stored), Some(secret)) => &TokenHash::of(secret) == stored,
        _ => false,
    };
    if method_ok && secret_ok {
        Ok(client)
    } else {
        guard
            .record_failure(&client.client_id)
            .map_err(locked_out)?;
        Err(invalid_client(presented.via_basic))
    }
}

fn locked_out(wait_secs: u64) -> OAuthError {
    OAuthError::too_many_requests("too many failed authentications of this client", wait_secs)
}
