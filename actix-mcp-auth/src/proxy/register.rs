//! `POST /register`: dynamic client registration (RFC 7591).
//!
//! We assign the client id (never taken from the request, RFC 9700 §4.15), validate every
//! redirect URI (see [`crate::oauth::redirect_uri`]), keep only scopes we support, and answer
//! 201 with the effective metadata. Public clients (`none`) get no secret; confidential ones get
//! a secret we store only as a hash. Registrations that never complete a login expire after
//! `MCP_AUTH_UNUSED_CLIENT_TTL_SECONDS` (a login extends them to the grant's life), and at most
//! `MCP_AUTH_MAX_UNUSED_CLIENTS` of them live at once: beyond, 503 with `Retry-After` until the
//! oldest expires.
//!
//! The body must be sent as `application/json`: a web page can POST `text/plain` to any origin
//! without a CORS preflight, and would otherwise register clients from users' browsers. Redirect
//! URIs and links are stored in their parsed, serialized form; free text that a page may show
//! must not hold control or bidirectional-formatting characters (see
//! [`crate::oauth::display`]), which also keeps NUL away from the database.

use actix_web::{HttpRequest, HttpResponse, http::header, web::Bytes};
use serde_json::{Map, Value, json};

use super::{State, form::json_error, form::with_cors, store_error};
use crate::{
    clock::unix_now,
    error::{OAuthError, OAuthErrorCode},
    oauth::{
        client_metadata,
        display::is_unsafe_for_display,
        provenance::default_application_type,
        redirect_uri,
        tokens::{CLIENT_ID_PREFIX, CLIENT_SECRET_PREFIX, generate},
    },
    store::{ClientRecord, TokenHash},
};

/// Most redirect URIs one client may register.
const MAX_REDIRECT_URIS: usize = 10;
/// Longest free-text field (client name...).
const MAX_TEXT_LEN: usize = 200;

const AUTH_METHODS: [&str; 3] = ["none", "client_secret_post", "client_secret_basic"];

fn metadata_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new(OAuthErrorCode::InvalidClientMetadata, description)
}

/// The validated registration request.
struct Registration {
    redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    auth_method: String,
    scope: Option<String>,
    client_name: Option<String>,
    /// `native` or `web` (SEP-837): as given, else derived from the redirect URIs.
    application_type: String,
    extra: Map<String, Value>,
}

fn string_list(body: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, OAuthError> {
    client_metadata::string_list(body, name).map_err(metadata_error)
}

fn text(body: &Map<String, Value>, name: &str) -> Result<Option<String>, OAuthError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().any(is_unsafe_for_display) => Err(metadata_error(
            format!("`{name}` must not contain control or bidirectional-formatting characters"),
        )),
        Some(Value::String(s)) if s.chars().count() <= MAX_TEXT_LEN => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(metadata_error(format!("`{name}` is too long"))),
        Some(_) => Err(metadata_error(format!("`{name}` must be a string"))),
    }
}

/// Whether a `Content-Type` value is JSON (absent is not).
fn is_json_media_type(content_type: Option<&str>) -> bool {
    content_type.is_some_and(client_metadata::is_json_media_type)
}

/// An https link of the client's metadata, in its parsed, serialized form.
fn https_link(uri: &str) -> Option<String> {
    redirect_uri::canonical(uri)
        .filter(|url| url.scheme() == "https" && url.host().is_some())
        .map(String::from)
}

fn parse(state: &super::ProxyState, body: &[u8]) -> Result<Registration, OAuthError> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return Err(metadata_error("the body must be a JSON object"));
    };
    let redirect_uris = string_list(&body, "redirect_uris")?
        .filter(|uris| !uris.is_empty())
        .ok_or_else(|| {
            OAuthError::new(
                OAuthErrorCode::InvalidRedirectUri,
                "`redirect_uris` is required",
            )
        })?;
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidRedirectUri,
            format!("at most {MAX_REDIRECT_URIS} redirect URIs"),
        ));
    }
    // Stored as parsed and serialized: the form the browser is sent to, and that pages show.
    let redirect_uris = redirect_uris
        .iter()
        .map(|uri| {
            state
                .settings
                .redirect_policy
                .check_registration(uri)
                .map(String::from)
                .map_err(|e| OAuthError::new(OAuthErrorCode::InvalidRedirectUri, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let grant_types =
        string_list(&body, "grant_types")?.unwrap_or_else(|| vec!["authorization_code".into()]);
    if !grant_types.iter().any(|g| g == "authorization_code")
        || grant_types
            .iter()
            .any(|g| g != "authorization_code" && g != "refresh_token")
    {
        return Err(metadata_error(
            "`grant_types` must include authorization_code and may add refresh_token only",
        ));
    }
    let response_types =
        string_list(&body, "response_types")?.unwrap_or_else(|| vec!["code".into()]);
    if response_types != ["code"] {
        return Err(metadata_error("`response_types` must be [\"code\"]"));
    }
    // RFC 7591 §2: the default method is client_secret_basic.
    let auth_method =
        text(&body, "token_endpoint_auth_method")?.unwrap_or_else(|| "client_secret_basic".into());
    if !AUTH_METHODS.contains(&auth_method.as_str()) {
        return Err(metadata_error(format!(
            "`token_endpoint_auth_method` must be one of {}",
            AUTH_METHODS.join(", ")
        )));
    }
    // Unknown scopes are dropped rather than refused (RFC 7591 §3.2.1 lets the server replace
    // requested values); the effective scope is in the answer.
    let supported = supported_scopes(state);
    let scope = match text(&body, "scope")? {
        Some(requested) => {
            let scopes = crate::oauth::scope::parse(&requested)
                .ok_or_else(|| metadata_error("`scope` is malformed"))?;
            let kept: Vec<String> = scopes
                .into_iter()
                .filter(|s| supported.contains(s))
                .collect();
            (!kept.is_empty()).then(|| kept.join(" "))
        }
        None => None,
    };
    let client_name = text(&body, "client_name")?;
    let mut extra = Map::new();
    for field in ["client_uri", "logo_uri", "tos_uri", "policy_uri"] {
        if let Some(uri) = text(&body, field)? {
            // Only https links may ever be shown to users, and only with a plain host.
            let Some(link) = https_link(&uri) else {
                return Err(metadata_error(format!(
                    "`{field}` must be an https URL with a plain host"
                )));
            };
            extra.insert(field.to_owned(), Value::String(link));
        }
    }
    for field in ["software_id", "software_version"] {
        if let Some(value) = text(&body, field)? {
            extra.insert(field.to_owned(), Value::String(value));
        }
    }
    // `web` with loopback redirect URIs is accepted (clients in the wild send exactly that);
    // the consent page says so.
    let application_type = match text(&body, "application_type")?.as_deref() {
        Some(kind @ ("web" | "native")) => kind.to_owned(),
        Some(_) => return Err(metadata_error("`application_type` must be web or native")),
        None => default_application_type(&redirect_uris).to_owned(),
    };
    Ok(Registration {
        redirect_uris,
        grant_types,
        auth_method,
        scope,
        client_name,
        application_type,
        extra,
    })
}

impl Registration {
    /// The metadata kept beside the typed columns, with the effective `application_type`.
    fn stored_metadata(&self) -> Map<String, Value> {
        let mut stored = self.extra.clone();
        stored.insert(
            "application_type".into(),
            Value::String(self.application_type.clone()),
        );
        stored
    }
}

/// Scopes clients may ask for: the configured ones, plus `offline_access`.
pub(crate) fn supported_scopes(state: &super::ProxyState) -> Vec<String> {
    let mut scopes = state.settings.required_scopes.clone();
    // Per-tool scopes can be asked for (the 403 step-up of the bearer check names them).
    if let Some(policy) = &state.settings.tool_scopes {
        crate::metadata::add_policy_scopes(&mut scopes, policy);
    }
    if !scopes.iter().any(|s| s == "offline_access") {
        scopes.push("offline_access".to_owned());
    }
    scopes
}

/// Refuses a registration while the never-used ones are at their ceiling (the count may be
/// exceeded by the registrations racing this check, never by more).
async fn check_ceiling(state: &super::ProxyState) -> Result<(), OAuthError> {
    let unused = state.store.unused_clients().await.map_err(store_error)?;
    if unused.live < state.settings.max_unused_clients {
        return Ok(());
    }
    let ttl = i64::try_from(state.settings.unused_client_ttl.as_secs()).unwrap_or(i64::MAX);
    let wait = unused
        .next_expiry
        .map_or(60, |at| at.saturating_sub(unix_now()).clamp(1, ttl.max(1)));
    tracing::warn!(
        live = unused.live,
        "ceiling of never-used client registrations reached; refusing registrations"
    );
    Err(OAuthError::unavailable_for(
        "too many registrations that never completed a login; retry later",
        u64::try_from(wait).unwrap_or(60),
    ))
}

/// `POST /register`.
pub(crate) async fn register(req: HttpRequest, state: State, body: Bytes) -> HttpResponse {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !is_json_media_type(content_type) {
        // 400 rather than 415: RFC 7591 §3.2.2 answers every registration error with 400 and
        // an OAuth error body, which is what registering clients look for.
        return json_error(&metadata_error("the body must be sent as application/json"));
    }
    let registration = match parse(&state, &body) {
        Ok(r) => r,
        Err(e) => return json_error(&e),
    };
    if let Err(e) = check_ceiling(&state).await {
        return json_error(&e);
    }
    let now = unix_now();
    let ttl = i64::try_from(state.settings.unused_client_ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let client_id = generate(CLIENT_ID_PREFIX);
    let secret = (registration.auth_method != "none").then(|| generate(CLIENT_SECRET_PREFIX));
    let record = ClientRecord {
        client_id: client_id.clone(),
        client_secret_hash: secret.as_deref().map(TokenHash::of),
        client_name: registration.client_name.clone(),
        redirect_uris: registration.redirect_uris.clone(),
        grant_types: registration.grant_types.clone(),
        token_endpoint_auth_method: registration.auth_method.clone(),
        scope: registration.scope.clone(),
        metadata: Some(Value::Object(registration.stored_metadata())),
        created_at: now,
        last_used_at: now,
        expires_at: now.saturating_add(ttl),
    };
    if let Err(e) = state.store.register_client(&record).await {
        return json_error(&store_error(e));
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
        fields.insert("client_secret".into(), Value::String(secret));
        fields.insert("client_secret_expires_at".into(), json!(0));
    }
    if let Some(scope) = registration.scope {
        fields.insert("scope".into(), Value::String(scope));
    }
    if let Some(name) = registration.client_name {
        fields.insert("client_name".into(), Value::String(name));
    }
    fields.extend(registration.extra);
    with_cors(
        HttpResponse::Created()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(answer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_bodies_are_accepted() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
            " application/json ",
        ] {
            assert!(is_json_media_type(Some(ok)), "{ok}");
        }
        for bad in [
            None,
            Some(""),
            Some("text/plain"),
            Some("text/plain; charset=application/json"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data"),
            Some("application/jsonp"),
            Some("application/json-patch+json"),
        ] {
            assert!(!is_json_media_type(bad), "{bad:?}");
        }
    }

    #[test]
    fn links_are_https_with_a_plain_host_and_stored_serialized() {
        assert_eq!(
            https_link("https://App.Example/about").as_deref(),
            Some("https://app.example/about")
        );
        for bad in [
            "http://app.example/",
            "javascript:alert(1)",
            "https://app.example%2eevil.example/",
            "https://evil.example\\@app.example/",
            "https://user@app.example/",
        ] {
            assert_eq!(https_link(bad), None, "{bad}");
        }
    }
}
