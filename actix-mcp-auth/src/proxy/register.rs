//! `POST /register`: dynamic client registration (RFC 7591); the rules are in
//! [`crate::oauth::registration`].
//!
//! Answers 201 with the effective metadata. Public clients (`none`) get no secret;
//! confidential ones get a secret we store only as a hash. Registrations that never complete a
//! login expire after `MCP_AUTH_UNUSED_CLIENT_TTL_SECONDS` (a login extends them to the grant's
//! life), and at most `MCP_AUTH_MAX_UNUSED_CLIENTS` of them live at once: beyond, 503 with
//! `Retry-After` until the oldest expires.

use actix_web::{HttpRequest, HttpResponse, http::header, web::Bytes};
use serde_json::{Value, json};

use super::{
    ProxyState, State,
    form::{header_text, json_error, with_cors},
    store_error,
};
use crate::{
    clock::unix_now,
    error::OAuthError,
    oauth::{
        registration::{self, Registration, RegistrationPolicy},
        scope,
        tokens::{CLIENT_ID_PREFIX, CLIENT_SECRET_PREFIX, generate, generate_secret},
    },
    store::{ClientRecord, TokenHash},
};

/// `POST /register`.
pub(crate) async fn register(req: HttpRequest, state: State, body: Bytes) -> HttpResponse {
    let supported = scope::supported(&state.settings.client_scopes());
    let settings = &state.settings;
    let policy = RegistrationPolicy {
        redirect_uris: &settings.redirect_policy,
        supported_scopes: &supported,
        unused_client_ttl: settings.unused_client_ttl,
        max_unused_clients: settings.max_unused_clients,
    };
    let content_type = header_text(&req, header::CONTENT_TYPE);
    let registration = match registration::validate(content_type, &body, &policy) {
        Ok(r) => r,
        Err(e) => return json_error(&e.into()),
    };
    match save(&state, &policy, registration).await {
        Ok(response) => response,
        Err(e) => json_error(&e),
    }
}

/// The refusal of a registration at the ceiling of never-used ones, with how long to wait
/// (read only now: the registration itself counted them).
async fn no_room(state: &ProxyState, policy: &RegistrationPolicy<'_>) -> OAuthError {
    let unused = match state.store.unused_clients().await {
        Ok(unused) => unused,
        Err(e) => return store_error(e),
    };
    tracing::warn!(
        live = unused.live,
        "ceiling of never-used client registrations reached; refusing registrations"
    );
    policy.no_room(unused.next_expiry, unix_now()).into()
}

/// Stores the client under a new id (and secret), unless the never-used registrations are at
/// their ceiling (counted by the insert itself; registrations racing it may pass it by a few,
/// never by more), and answers its effective metadata.
async fn save(
    state: &ProxyState,
    policy: &RegistrationPolicy<'_>,
    registration: Registration,
) -> Result<HttpResponse, OAuthError> {
    let now = unix_now();
    let client_id = generate(CLIENT_ID_PREFIX);
    let secret = registration
        .is_confidential()
        .then(|| generate_secret(CLIENT_SECRET_PREFIX));
    let record = ClientRecord {
        client_id: client_id.clone(),
        client_secret_hash: secret.as_ref().map(TokenHash::of_secret),
        client_name: registration.client_name.clone(),
        redirect_uris: registration.redirect_uris.clone(),
        grant_types: registration.grant_types.clone(),
        token_endpoint_auth_method: registration.auth_method.clone(),
        scope: registration.scope.clone(),
        metadata: Some(Value::Object(registration.stored_metadata())),
        created_at: now,
        last_used_at: now,
        expires_at: policy.expires_at(now),
    };
    let stored = state
        .store
        .register_client_within(&record, policy.max_unused_clients)
        .await
        .map_err(store_error)?;
    if !stored {
        return Err(no_room(state, policy).await);
    }
    let mut answer = json!({
        "client_id": client_id,
        "client_id_issued_at": now,
        "redirect_uris": registration.redirect_uris,
        "grant_types": registration.grant_types,
        "response_types": ["code"],
        "token_endpoint_auth_method": registration.auth_method,
        "application_type": registration.application_type,
    });
    let fields = answer.as_object_mut().expect("a JSON object");
    if let Some(secret) = secret {
        fields.insert(
            "client_secret".into(),
            Value::String(secret.expose().to_owned()),
        );
        fields.insert("client_secret_expires_at".into(), json!(0));
    }
    if let Some(scope) = registration.scope {
        fields.insert("scope".into(), Value::String(scope));
    }
    if let Some(name) = registration.client_name {
        fields.insert("client_name".into(), Value::String(name));
    }
    fields.extend(registration.extra);
    Ok(with_cors(
        HttpResponse::Created()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(answer),
    ))
}
