//! The registration endpoint's decisions (RFC 7591): which metadata a client may register,
//! and when registrations are refused for lack of room.
//!
//! We assign the client id (never taken from the request, RFC 9700 §4.15), validate every
//! redirect URI (see [`super::redirect_uri`]), and keep only scopes we support. Redirect URIs
//! and links are kept in their parsed, serialized form; free text that a page may show must
//! not hold control or bidirectional-formatting characters (see [`super::display`]), which
//! also keeps NUL away from the database.
//!
//! The body must be sent as `application/json`: a web page can POST `text/plain` to any origin
//! without a CORS preflight, and would otherwise register clients from users' browsers.

use std::time::Duration;

use serde_json::{Map, Value};

use super::{
    client_metadata::{self, MAX_REDIRECT_URIS},
    display::is_unsafe_for_display,
    error::{ErrorCode, Rejection},
    provenance::default_application_type,
    redirect_uri::{self, RedirectUriPolicy},
    scope,
};

/// Longest free-text field (client name...).
const MAX_TEXT_LEN: usize = 200;

/// The client authentication methods a registration may choose.
const AUTH_METHODS: [&str; 3] = ["none", "client_secret_post", "client_secret_basic"];

/// What the operator allows registrations to hold.
#[derive(Debug, Clone, Copy)]
pub struct RegistrationPolicy<'a> {
    /// Rules for redirect URIs.
    pub redirect_uris: &'a RedirectUriPolicy,
    /// Scopes clients may register (others are dropped).
    pub supported_scopes: &'a [String],
    /// How long a registration that never completed a login lives.
    pub unused_client_ttl: Duration,
    /// Most live registrations that never completed a login.
    pub max_unused_clients: u64,
}

/// A validated registration request.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// Redirect URIs, parsed and serialized.
    pub redirect_uris: Vec<String>,
    /// `authorization_code`, maybe with `refresh_token`.
    pub grant_types: Vec<String>,
    /// `token_endpoint_auth_method`.
    pub auth_method: String,
    /// The effective scope (supported scopes only), if any remains.
    pub scope: Option<String>,
    /// The client's name.
    pub client_name: Option<String>,
    /// `native` or `web` (SEP-837): as given, else derived from the redirect URIs.
    pub application_type: String,
    /// Links (`client_uri`...) and software fields, as they are stored and answered.
    pub extra: Map<String, Value>,
}

impl Registration {
    /// Whether the client gets a secret (every method but `none`).
    pub fn is_confidential(&self) -> bool {
        self.auth_method != "none"
    }

    /// The metadata kept beside the typed columns, with the effective `application_type`.
    pub fn stored_metadata(&self) -> Map<String, Value> {
        let mut stored = self.extra.clone();
        stored.insert(
            "application_type".into(),
            Value::String(self.application_type.clone()),
        );
        stored
    }
}

fn metadata_error(description: impl Into<String>) -> Rejection {
    Rejection::new(ErrorCode::InvalidClientMetadata, description.into())
}

fn redirect_uri_error(description: impl Into<String>) -> Rejection {
    Rejection::new(ErrorCode::InvalidRedirectUri, description.into())
}

/// Validates a registration request: its `Content-Type` and its body.
pub fn validate(
    content_type: Option<&str>,
    body: &[u8],
    policy: &RegistrationPolicy<'_>,
) -> Result<Registration, Rejection> {
    if !content_type.is_some_and(client_metadata::is_json_media_type) {
        // 400 rather than 415: RFC 7591 §3.2.2 answers every registration error with 400 and
        // an OAuth error body, which is what registering clients look for.
        return Err(metadata_error("the body must be sent as application/json"));
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return Err(metadata_error("the body must be a JSON object"));
    };
    let redirect_uris = redirect_uris(&body, policy.redirect_uris)?;
    let grant_types = client_metadata::grant_types(&body).map_err(metadata_error)?;
    client_metadata::check_response_types(&body).map_err(metadata_error)?;
    // RFC 7591 §2: the default method is client_secret_basic.
    let auth_method =
        text(&body, "token_endpoint_auth_method")?.unwrap_or_else(|| "client_secret_basic".into());
    if !AUTH_METHODS.contains(&auth_method.as_str()) {
        return Err(metadata_error(format!(
            "`token_endpoint_auth_method` must be one of {}",
            AUTH_METHODS.join(", ")
        )));
    }
    let scope = effective_scope(text(&body, "scope")?, policy.supported_scopes)?;
    let client_name = text(&body, "client_name")?;
    let extra = links_and_software(&body)?;
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

/// The redirect URIs: required, bounded, each passing the policy, in serialized form (the
/// form the browser is sent to, and that pages show).
fn redirect_uris(
    body: &Map<String, Value>,
    policy: &RedirectUriPolicy,
) -> Result<Vec<String>, Rejection> {
    let uris = client_metadata::string_list(body, "redirect_uris")
        .map_err(metadata_error)?
        .filter(|uris| !uris.is_empty())
        .ok_or_else(|| redirect_uri_error("`redirect_uris` is required"))?;
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(redirect_uri_error(format!(
            "at most {MAX_REDIRECT_URIS} redirect URIs"
        )));
    }
    uris.iter()
        .map(|uri| {
            policy
                .check_registration(uri)
                .map(String::from)
                .map_err(|e| redirect_uri_error(e.to_string()))
        })
        .collect()
}

/// Unknown scopes are dropped rather than refused (RFC 7591 §3.2.1 lets the server replace
/// requested values); the effective scope is in the answer.
fn effective_scope(
    requested: Option<String>,
    supported: &[String],
) -> Result<Option<String>, Rejection> {
    let Some(requested) = requested else {
        return Ok(None);
    };
    let scopes = scope::parse(&requested).ok_or_else(|| metadata_error("`scope` is malformed"))?;
    let kept: Vec<String> = scopes
        .into_iter()
        .filter(|s| supported.contains(s))
        .collect();
    Ok((!kept.is_empty()).then(|| kept.join(" ")))
}

/// Links (https with a plain host only: they may be shown to users) and software fields.
fn links_and_software(body: &Map<String, Value>) -> Result<Map<String, Value>, Rejection> {
    let mut extra = Map::new();
    for field in ["client_uri", "logo_uri", "tos_uri", "policy_uri"] {
        if let Some(uri) = text(body, field)? {
            let Some(link) = https_link(&uri) else {
                return Err(metadata_error(format!(
                    "`{field}` must be an https URL with a plain host"
                )));
            };
            extra.insert(field.to_owned(), Value::String(link));
        }
    }
    for field in ["software_id", "software_version"] {
        if let Some(value) = text(body, field)? {
            extra.insert(field.to_owned(), Value::String(value));
        }
    }
    Ok(extra)
}

/// A free-text field: a bounded string without hidden characters.
fn text(body: &Map<String, Value>, name: &str) -> Result<Option<String>, Rejection> {
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

/// An https link of the client's metadata, in its parsed, serialized form.
fn https_link(uri: &str) -> Option<String> {
    redirect_uri::canonical(uri)
        .filter(|url| url.scheme() == "https" && url.host().is_some())
        .map(String::from)
}

impl RegistrationPolicy<'_> {
    /// The refusal of a registration at the ceiling, with how long to wait: until the oldest
    /// never-used registration (expiring at `next_expiry`) expires, at least 1 s, at most the
    /// registration lifetime.
    pub fn no_room(&self, next_expiry: Option<i64>, now: i64) -> Rejection {
        let ttl = i64::try_from(self.unused_client_ttl.as_secs()).unwrap_or(i64::MAX);
        let wait = next_expiry.map_or(60, |at| at.saturating_sub(now).clamp(1, ttl.max(1)));
        Rejection::unavailable_for(
            "too many registrations that never completed a login; retry later",
            u64::try_from(wait).unwrap_or(60),
        )
    }

    /// When a registration made at `now` expires unless a login extends it.
    pub fn expires_at(&self, now: i64) -> i64 {
        let ttl = i64::try_from(self.unused_client_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        now.saturating_add(ttl)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::oauth::error::testing::assert_rejected;

    const JSON: Option<&str> = Some("application/json");

    fn policy<'a>(
        redirects: &'a RedirectUriPolicy,
        scopes: &'a [String],
    ) -> RegistrationPolicy<'a> {
        RegistrationPolicy {
            redirect_uris: redirects,
            supported_scopes: scopes,
            unused_client_ttl: Duration::from_secs(3600),
            max_unused_clients: 2,
        }
    }

    fn register(body: serde_json::Value) -> Result<Registration, Rejection> {
        let scopes = ["mcp".to_owned(), "offline_access".to_owned()];
        let redirects = RedirectUriPolicy::default();
        validate(
            JSON,
            body.to_string().as_bytes(),
            &policy(&redirects, &scopes),
        )
    }

    #[test]
    fn a_minimal_registration_gets_the_defaults() {
        let registration =
            register(json!({"redirect_uris": ["http://127.0.0.1:3000/cb"]})).unwrap();
        assert_eq!(registration.grant_types, ["authorization_code"]);
        assert_eq!(registration.auth_method, "client_secret_basic");
        assert!(registration.is_confidential());
        assert_eq!(registration.application_type, "native");
        assert_eq!(registration.scope, None);
        assert_eq!(
            registration.stored_metadata().get("application_type"),
            Some(&json!("native"))
        );
    }

    #[test]
    fn a_full_registration_is_normalized() {
        let registration = register(json!({
            "redirect_uris": ["https://App.Example/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": "mcp unknown offline_access",
            "client_name": "App",
            "client_uri": "https://App.Example/about",
            "software_id": "app",
            "application_type": "web",
        }))
        .unwrap();
        assert_eq!(registration.redirect_uris, ["https://app.example/cb"]);
        assert!(!registration.is_confidential());
        assert_eq!(registration.scope.as_deref(), Some("mcp offline_access"));
        assert_eq!(registration.client_name.as_deref(), Some("App"));
        assert_eq!(
            registration.extra.get("client_uri"),
            Some(&json!("https://app.example/about"))
        );
        assert_eq!(registration.extra.get("software_id"), Some(&json!("app")));
        // Only unknown scopes: no scope at all.
        let none_kept =
            register(json!({"redirect_uris": ["https://a.example/cb"], "scope": "x y"}));
        assert_eq!(none_kept.unwrap().scope, None);
    }

    #[test]
    fn every_refusal_of_a_registration() {
        use ErrorCode::{InvalidClientMetadata as Meta, InvalidRedirectUri as Redirect};
        let uris = json!(["https://a.example/cb"]);
        let with = |field: &str, value: serde_json::Value| {
            let mut body = json!({"redirect_uris": uris});
            body[field] = value;
            body
        };
        let eleven: Vec<String> = (0..11).map(|i| format!("https://a.example/{i}")).collect();
        let cases = [
            (json!([1]), Meta, "the body must be a JSON object"),
            (json!({}), Redirect, "`redirect_uris` is required"),
            (
                json!({"redirect_uris": []}),
                Redirect,
                "`redirect_uris` is required",
            ),
            (
                json!({"redirect_uris": "https://a.example/cb"}),
                Meta,
                "must be an array of strings",
            ),
            (
                json!({"redirect_uris": eleven}),
                Redirect,
                "at most 10 redirect URIs",
            ),
            (
                json!({"redirect_uris": ["http://a.example/cb"]}),
                Redirect,
                "http",
            ),
            (
                json!({"redirect_uris": ["https://a.example/cb#f"]}),
                Redirect,
                "",
            ),
            (
                with("grant_types", json!(["implicit"])),
                Meta,
                "`grant_types` must include authorization_code",
            ),
            (
                with("grant_types", json!("authorization_code")),
                Meta,
                "must be an array of strings",
            ),
            (
                with("response_types", json!(["token"])),
                Meta,
                "`response_types` must be",
            ),
            (
                with("token_endpoint_auth_method", json!("private_key_jwt")),
                Meta,
                "must be one of none, client_secret_post, client_secret_basic",
            ),
            (
                with("token_endpoint_auth_method", json!(1)),
                Meta,
                "must be a string",
            ),
            (with("scope", json!("a\"b")), Meta, "`scope` is malformed"),
            (
                with("client_name", json!("x".repeat(201))),
                Meta,
                "`client_name` is too long",
            ),
            (
                with("client_name", json!("evil\u{202e}gnp.exe")),
                Meta,
                "bidirectional-formatting",
            ),
            (with("client_name", json!("a\u{0}b")), Meta, "control"),
            (
                with("client_uri", json!("http://a.example/")),
                Meta,
                "`client_uri` must be an https URL",
            ),
            (
                with("logo_uri", json!("https://user@a.example/")),
                Meta,
                "`logo_uri` must be an https URL",
            ),
            (
                with("software_version", json!(2)),
                Meta,
                "`software_version` must be a string",
            ),
            (
                with("application_type", json!("desktop")),
                Meta,
                "`application_type` must be web or native",
            ),
        ];
        for (body, code, words) in cases {
            assert_rejected(register(body.clone()), code, words);
        }
        // Not JSON at all, and JSON sent as another media type.
        let redirects = RedirectUriPolicy::default();
        let policy = policy(&redirects, &[]);
        assert_rejected(validate(JSON, b"{", &policy), Meta, "JSON object");
        let body = json!({"redirect_uris": uris}).to_string();
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
            " application/json ",
        ] {
            assert!(validate(Some(ok), body.as_bytes(), &policy).is_ok(), "{ok}");
        }
        for content_type in [
            None,
            Some(""),
            Some("text/plain"),
            Some("text/plain; charset=application/json"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data"),
            Some("application/jsonp"),
            Some("application/json-patch+json"),
        ] {
            assert_rejected(
                validate(content_type, body.as_bytes(), &policy),
                Meta,
                "must be sent as application/json",
            );
        }
    }

    #[test]
    fn the_operator_patterns_apply() {
        let redirects = RedirectUriPolicy {
            patterns: Some(vec![
                redirect_uri::RedirectPattern::parse("https://allowed.example/*").unwrap(),
            ]),
            private_schemes: vec![],
        };
        let body = json!({"redirect_uris": ["https://other.example/cb"]}).to_string();
        assert_rejected(
            validate(JSON, body.as_bytes(), &policy(&redirects, &[])),
            ErrorCode::InvalidRedirectUri,
            "",
        );
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

    #[test]
    fn refusal_at_the_ceiling_says_how_long_to_wait() {
        let redirects = RedirectUriPolicy::default();
        let policy = policy(&redirects, &[]);
        let cases = [
            (Some(500), 400),
            (None, 60),
            // Already expired (the sweeper is late): retry at once.
            (Some(50), 1),
            // Never longer than a registration lives.
            (Some(100_000), 3600),
        ];
        for (next_expiry, wait) in cases {
            let rejection = assert_rejected(
                Err::<(), _>(policy.no_room(next_expiry, 100)),
                ErrorCode::TemporarilyUnavailable,
                "too many registrations that never completed a login",
            );
            assert_eq!(
                rejection.retry_after.map(|r| (r.secs, r.throttled)),
                Some((wait, false))
            );
        }
        assert_eq!(policy.expires_at(100), 3700);
    }
}
