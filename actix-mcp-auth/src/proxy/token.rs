//! `POST /token`: authorization-code and refresh-token grants (OAuth 2.1 §3.2, §4.1.3, §4.3).
//!
//! Codes are single-use: client, redirect URI and PKCE are checked first, then the code is
//! consumed atomically on exactly those values, so a wrong guess burns nothing and only a valid
//! replay revokes what the code issued. Refresh tokens rotate with a compare-and-swap: of any
//! number of concurrent uses exactly one mints a pair, and within the grace
//! (`MCP_AUTH_REFRESH_GRACE_SECONDS`) every retry gets that same pair; after it, or once the
//! successor was used, the old token is a replay that revokes the whole grant (RFC 9700
//! §4.14.2), logged at WARN with the grant and client ids. Our tokens are opaque; AuthKit's never
//! leave the server.

use actix_web::{HttpRequest, HttpResponse, http::header, web::Bytes};
use serde_json::json;

use super::{
    ProxyState, State, client_auth, end_grant,
    form::{Params, json_error, require_form_content_type, with_cors},
    store_error,
};
use crate::{
    error::{OAuthError, OAuthErrorCode},
    oauth::{
        pkce, scope,
        tokens::{ACCESS_TOKEN_PREFIX, CODE_PREFIX, REFRESH_TOKEN_PREFIX, generate, has_shape},
    },
    store::{
        AuthorizationCode, ClientRecord, CodeConsumed, CodeRedemption, IssuedTokens, NewTokens,
        Rotation, Secret, SuccessorTokens, TokenHash,
    },
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
    let code_hash = TokenHash::of(code);
    let code = state
        .store
        .find_code(&code_hash)
        .await
        .map_err(store_error)?
        .ok_or_else(|| invalid_grant("unknown or expired code"))?;
    // Every check before anything is consumed: a wrong guess neither burns the code nor
    // revokes its grant (OAuth 2.1 §7.5.3: only an otherwise valid replay revokes).
    check_redemption(
        &code,
        &client.client_id,
        params.get("redirect_uri"),
        verifier,
    )?;
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
    let checked = CodeRedemption {
        client_id: &code.client_id,
        redirect_uri: &code.redirect_uri,
        code_challenge: &code.code_challenge,
    };
    let consumed = match code.used_at {
        Some(_) => CodeConsumed::Replayed {
            grant_id: code.grant_id.clone(),
        },
        None => state
            .store
            .consume_code(&code_hash, &checked)
            .await
            .map_err(store_error)?,
    };
    let code = match consumed {
        CodeConsumed::Consumed(code) => code,
        CodeConsumed::Replayed { grant_id } => {
            // A second valid redemption by the code's own client: the code leaked and the
            // first redemption may have been an attacker's. Revoke what it issued.
            tracing::warn!(
                grant_id = %grant_id,
                client_id = %client.client_id,
                "authorization code replayed; revoking its grant"
            );
            end_grant(state, &grant_id).await?;
            return Err(invalid_grant("code already used"));
        }
        CodeConsumed::NotFound => return Err(invalid_grant("unknown or expired code")),
    };
    let (access, refresh, new) = new_pair(state, client);
    let issued = state
        .store
        .issue_tokens(&code.grant_id, &code.scopes, &new)
        .await
        .map_err(store_error)?
        .ok_or_else(|| invalid_grant("the authorization was revoked"))?;
    Ok(token_response(state, &access, refresh.as_deref(), &issued))
}

/// Whether a token request may redeem `code` (RFC 6749 §4.1.3, RFC 7636 §4.6): issued to this
/// client, the same redirect URI (required when the authorization request carried one), and a
/// verifier matching the challenge.
fn check_redemption(
    code: &AuthorizationCode,
    client_id: &str,
    redirect_uri: Option<&str>,
    verifier: &str,
) -> Result<(), OAuthError> {
    if code.client_id != client_id {
        return Err(invalid_grant("code issued to another client"));
    }
    match redirect_uri {
        Some(uri) if uri != code.redirect_uri => {
            return Err(invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        None if code.redirect_uri_sent => {
            return Err(invalid_grant(
                "redirect_uri is required: the authorization request carried one",
            ));
        }
        _ => {}
    }
    if !pkce::verify_s256(verifier, &code.code_challenge) {
        return Err(invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    Ok(())
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
    let successor = SuccessorTokens {
        access_token: Secret::new(access),
        access_expires_at: new.access_expires_at,
        refresh_token: Secret::new(refresh),
        refresh_expires_at: new.refresh_expires_at,
    };
    let rotation = state
        .store
        .rotate_refresh_token(
            &TokenHash::of(presented),
            &client.client_id,
            requested.as_deref(),
            &successor,
            state.settings.refresh_grace,
        )
        .await
        .map_err(store_error)?;
    match rotation {
        Rotation::Rotated(issued) => answer_rotation(state, &successor, &issued).await,
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

/// The answer to a rotation that handed out `pair`.
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
            pair.access_token.expose(),
            Some(pair.refresh_token.expose()),
            issued,
        )),
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

/// A new access token, and a refresh token when the client registered the refresh grant.
fn new_pair(state: &ProxyState, client: &ClientRecord) -> (String, Option<String>, NewTokens) {
    let now = state.store.clock().now();
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

fn token_response(
    state: &ProxyState,
    access: &str,
    refresh: Option<&str>,
    issued: &IssuedTokens,
) -> HttpResponse {
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": (issued.access_expires_at - state.store.clock().now()).max(0),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn code(redirect_uri_sent: bool) -> AuthorizationCode {
        AuthorizationCode {
            code_hash: TokenHash::of("mcp_ac_x"),
            grant_id: "g".into(),
            client_id: "c".into(),
            redirect_uri: "https://app.example/cb".into(),
            redirect_uri_sent,
            // RFC 7636 appendix B.
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            scopes: vec![],
            resource: None,
            created_at: 0,
            expires_at: 1,
            used_at: None,
        }
    }

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    #[test]
    fn redemption_needs_client_redirect_uri_and_verifier() {
        let uri = Some("https://app.example/cb");
        assert!(check_redemption(&code(true), "c", uri, VERIFIER).is_ok());
        assert!(check_redemption(&code(true), "other", uri, VERIFIER).is_err());
        assert!(check_redemption(&code(true), "c", uri, &"w".repeat(43)).is_err());
        let moved = Some("https://app.example/cb2");
        assert!(check_redemption(&code(true), "c", moved, VERIFIER).is_err());
        assert!(check_redemption(&code(false), "c", moved, VERIFIER).is_err());
        // Required only when the authorization request carried it.
        assert!(check_redemption(&code(true), "c", None, VERIFIER).is_err());
        assert!(check_redemption(&code(false), "c", None, VERIFIER).is_ok());
    }
}
