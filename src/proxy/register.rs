//! `POST /register`: dynamic client registration (RFC 7591).
//!
//! We assign the client id (never taken from the request, RFC 9700 §4.15), validate every
//! redirect URI (see [`crate::oauth::redirect_uri`]), keep only scopes we support, and answer
//! 201 with the effective metadata. Public clients (`none`) get no secret; confidential ones get
//! a secret we store only as a hash. Registrations nobody uses expire.
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
        display::is_unsafe_for_display,
        redirect_uri,
        tokens::{CLIENT_ID_PREFIX, CLIENT_SECRET_PREFIX, generate},
    },
    store::{ClientRecord, TokenHash},
};

/// Most redirect URIs one client may register.
const MAX_REDIRECT_URIS: usize = 10;
/// Longest free-text field (client name...).
const MAX_TEXT_LEN: usize = 200;
/// An unused registration is deleted after this long (creating a grant extends it).
const UNUSED_CLIENT_TTL_SECS: i64 = 30 * 24 * 3600;

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
    extra: Map<String, Value>,
}

fn string_list(body: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, OAuthError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| metadata_error(format!("`{name}` must be an array of strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(metadata_error(format!(
            "`{name}` must be an array of strings"
        ))),
    }
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

/// Whether a `Content-Type` value is JSON (`application/json`, any parameters, any case).
fn is_json_media_type(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
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
    for field in ["application_type", "software_id", "software_version"] {
        if let Some(value) = text(&body, field)? {
            extra.insert(field.to_owned(), Value::String(value));
        }
    }
    if let Some(kind) = extra.get("application_type").and_then(Value::as_str)
        && kind != "web"
        && kind != "native"
    {
        return Err(metadata_error("`application_type` must be web or native"));
    }
    Ok(Registration {
        redirect_uris,
        grant_types,
        auth_method,
        scope,
        client_name,
        extra,
    })
}

/// Scopes clients may ask for: the configured ones, plus `offline_access`.
pub(crate) fn supported_scopes(state: &super::ProxyState) -> Vec<String> {
    let mut scopes = state.settings.required_scopes.clone();
    if !scopes.iter().any(|s| s == "offline_access") {
        scopes.push("offline_access".to_owned());
    }
    scopes
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
    let now = unix_now();
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
        metadata: Some(Value::Object(registration.extra.clone())),
        created_at: now,
        last_used_at: now,
        expires_at: now + UNUSED_CLIENT_TTL_SECS,
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
