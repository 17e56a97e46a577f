//! The admin API of proxy mode: a JSON interface to [`Grants`] and the audit log for operators,
//! behind a configured bearer secret (`MCP_AUTH_ADMIN_TOKEN`). Off unless the application
//! mounts it:
//!
//! ```no_run
//! use actix_mcp_auth::{AdminApi, WorkOsProvider};
//! use actix_web::App;
//!
//! # fn app(auth: WorkOsProvider) {
//! let admin = AdminApi::from_env(auth.grants()).expect("MCP_AUTH_ADMIN_TOKEN");
//! let app = App::new().service(auth.routes()).service(admin.scope("/admin"));
//! # }
//! ```
//!
//! | method and path (under the scope) | answer |
//! |---|---|
//! | `GET /users/{subject}/grants` | `{"grants": [GrantSummary…]}`, the user's live grants |
//! | `DELETE /users/{subject}/grants` | `{"revoked": [grant ids]}` |
//! | `DELETE /grants/{grant_id}` | `{"revoked": [grant id]}`, or 404 when no live grant has it |
//! | `DELETE /clients/{client_id}/grants` | `{"revoked": [grant ids]}` |
//! | `GET /audit?subject=&client_id=&grant_id=&limit=` | `{"entries": [AuditEntry…]}`, newest first |
//!
//! Path segments are percent-decoded: a URL client id is sent with its `/` as `%2F`. Every
//! request needs `Authorization: Bearer <MCP_AUTH_ADMIN_TOKEN>`, compared in constant time (of
//! SHA-256 digests); without it the answer is 401 with `WWW-Authenticate: Bearer`. Errors are
//! JSON `{"error", "error_description"}`, answers are `Cache-Control: no-store`. Revocations are
//! audited with the actor `admin`.
//!
//! The parsing and the token check are plain functions (unit-tested below); the handlers only
//! call them and the [`Grants`] service.

use std::sync::Arc;

use actix_web::{
    HttpRequest, HttpResponse, Scope,
    http::{StatusCode, header},
    web,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    error::ConfigError,
    proxy::grants::Grants,
    store::{StoreError, audit::AuditQuery},
};

/// The environment variable holding the admin API's bearer secret.
pub(crate) const ADMIN_TOKEN_VAR: &str = "MCP_AUTH_ADMIN_TOKEN";

/// Fewest characters the admin secret may have (e.g. `openssl rand -base64 32` gives 44).
const MIN_TOKEN_CHARS: usize = 32;

/// Realm of the admin API's challenges.
const REALM: &str = "mcp-auth-admin";

/// The JSON admin API: grants and audit log, behind a bearer secret. Build it with
/// [`AdminApi::from_env`] or [`AdminApi::new`], mount it with [`AdminApi::scope`].
#[derive(Clone)]
pub struct AdminApi {
    state: Arc<AdminState>,
}

struct AdminState {
    grants: Grants,
    token: AdminToken,
}

impl std::fmt::Debug for AdminApi {
    // Never the secret, not even its digest.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApi").finish_non_exhaustive()
    }
}

impl AdminApi {
    /// The API over `grants` with the secret `token`: at least 32 characters, otherwise an
    /// error naming `MCP_AUTH_ADMIN_TOKEN` (never showing the value).
    pub fn new(grants: Grants, token: impl AsRef<str>) -> Result<Self, ConfigError> {
        Ok(Self {
            state: Arc::new(AdminState {
                grants,
                token: AdminToken::new(token.as_ref())?,
            }),
        })
    }

    /// The API over `grants` with the secret from `MCP_AUTH_ADMIN_TOKEN` (an error when it is
    /// unset, empty or shorter than 32 characters). Reads no `.env` file: call
    /// `dotenvy::dotenv()` first if you use one.
    pub fn from_env(grants: Grants) -> Result<Self, ConfigError> {
        Self::from_vars(grants, std::env::vars())
    }

    /// Like [`from_env`](Self::from_env), from an explicit list of variables (for tests).
    pub fn from_vars<I, K, V>(grants: Grants, vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let token = vars
            .into_iter()
            .find(|(name, _)| name.as_ref() == ADMIN_TOKEN_VAR)
            .map(|(_, value)| value.as_ref().to_owned())
            .ok_or_else(|| ConfigError::Missing(ADMIN_TOKEN_VAR.to_owned()))?;
        Self::new(grants, token)
    }

    /// The API's routes under `path` (e.g. `/admin`), for `App::service`. Use a path of its
    /// own: the scope answers every request below it (401 without the secret, else 404 for an
    /// unknown route).
    pub fn scope(&self, path: &str) -> Scope {
        web::scope(path)
            .app_data(web::Data::new(self.state.clone()))
            .route("/users/{subject}/grants", web::get().to(list_user_grants))
            .route(
                "/users/{subject}/grants",
                web::delete().to(revoke_user_grants),
            )
            .route("/grants/{grant_id}", web::delete().to(revoke_grant))
            .route(
                "/clients/{client_id}/grants",
                web::delete().to(revoke_client_grants),
            )
            .route("/audit", web::get().to(audit))
            .default_service(web::to(unknown_route))
    }
}

type State = web::Data<Arc<AdminState>>;

/// The admin secret, kept as its SHA-256 digest.
struct AdminToken([u8; 32]);

impl AdminToken {
    fn new(token: &str) -> Result<Self, ConfigError> {
        if token.trim().is_empty() {
            return Err(ConfigError::invalid(ADMIN_TOKEN_VAR, "must not be empty"));
        }
        if token.chars().count() < MIN_TOKEN_CHARS {
            return Err(ConfigError::invalid(
                ADMIN_TOKEN_VAR,
                format!("must have at least {MIN_TOKEN_CHARS} characters"),
            ));
        }
        Ok(Self(Sha256::digest(token.as_bytes()).into()))
    }

    /// Checks an `Authorization` header value.
    fn check(&self, authorization: Option<&str>) -> Result<(), Refusal> {
        let presented = authorization
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or(Refusal::Unauthenticated)?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Digests of equal length, compared in constant time: neither the token's length nor
        // the position of a difference shows in the timing.
        if crate::secret::constant_time_eq(&digest, &self.0) {
            Ok(())
        } else {
            Err(Refusal::InvalidToken)
        }
    }
}

/// Why a request gets no answer from the API.
#[derive(Debug)]
enum Refusal {
    /// No bearer token.
    Unauthenticated,
    /// A bearer token that is not the secret.
    InvalidToken,
    /// A malformed request.
    BadRequest(&'static str),
    /// No such route, or no live grant with that id.
    NotFound(&'static str),
    /// The database failed.
    Store(StoreError),
}

impl Refusal {
    fn response(self) -> HttpResponse {
        let (status, error, description) = match self {
            Self::Unauthenticated => {
                return challenge(format!("Bearer realm=\"{REALM}\""), "missing bearer token");
            }
            Self::InvalidToken => {
                return challenge(
                    format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""),
                    "invalid admin token",
                );
            }
            Self::BadRequest(description) => {
                (StatusCode::BAD_REQUEST, "invalid_request", description)
            }
            Self::NotFound(description) => (StatusCode::NOT_FOUND, "not_found", description),
            Self::Store(error) if error.is_transient() => {
                tracing::warn!(%error, "admin API: database unavailable");
                let mut response = json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &error_body(
                        "temporarily_unavailable",
                        "database unavailable, retry shortly",
                    ),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
                return response;
            }
            Self::Store(error) => {
                tracing::error!(%error, "admin API: database error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "database error",
                )
            }
        };
        json_response(status, &error_body(error, description))
    }
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

fn error_body(error: &str, description: &str) -> Value {
    json!({ "error": error, "error_description": description })
}

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

fn challenge(value: String, description: &str) -> HttpResponse {
    let mut response = json_response(
        StatusCode::UNAUTHORIZED,
        &error_body("invalid_token", description),
    );
    if let Ok(value) = header::HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// Runs `handle` for an authorized request and renders its answer or refusal.
async fn answer<F>(req: &HttpRequest, state: &State, handle: F) -> HttpResponse
where
    F: std::future::Future<Output = Result<Value, Refusal>>,
{
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(refusal) = state.token.check(authorization) {
        return refusal.response();
    }
    match handle.await {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(refusal) => refusal.response(),
    }
}

/// The percent-decoded path segment `name` (actix leaves `%2F`, `%25` and `+` encoded).
fn segment(req: &HttpRequest, name: &str) -> Result<String, Refusal> {
    decode_segment(req.match_info().get(name).unwrap_or_default()).ok_or(Refusal::BadRequest(
        "path segment is not valid percent-encoded UTF-8",
    ))
}

/// Percent-decodes a path segment; `None` when empty or not UTF-8.
fn decode_segment(raw: &str) -> Option<String> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
        .filter(|s| !s.is_empty())
}

/// Reads the audit query string: `subject`, `client_id`, `grant_id` (each at most once, not
/// empty) and `limit` (1 to 1,000). Anything else is refused rather than ignored, so a typo
/// never widens the query.
fn audit_query(query_string: &str) -> Result<AuditQuery, &'static str> {
    let mut query = AuditQuery::all();
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query_string.as_bytes()) {
        if seen.iter().any(|s| *s == name) {
            return Err("a parameter appears twice");
        }
        seen.push(name.to_string());
        if value.is_empty() {
            return Err("a parameter is empty");
        }
        let value = value.into_owned();
        query = match name.as_ref() {
            "subject" => query.subject(value),
            "client_id" => query.client(value),
            "grant_id" => query.grant(value),
            "limit" => query.limit(
                value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1_000).contains(n))
                    .ok_or("limit must be a number from 1 to 1000")?,
            ),
            _ => return Err("unknown parameter (expected subject, client_id, grant_id, limit)"),
        };
    }
    Ok(query)
}

async fn list_user_grants(req: HttpRequest, state: State) -> HttpResponse {
    answer(&req, &state, async {
        let subject = segment(&req, "subject")?;
        let grants = state.grants.list_for_user(&subject).await?;
        Ok(json!({ "grants": grants }))
    })
    .await
}

async fn revoke_user_grants(req: HttpRequest, state: State) -> HttpResponse {
    answer(&req, &state, async {
        let subject = segment(&req, "subject")?;
        let revoked = state.grants.revoke_user(&subject).await?;
        Ok(json!({ "revoked": revoked }))
    })
    .await
}

async fn revoke_grant(req: HttpRequest, state: State) -> HttpResponse {
    answer(&req, &state, async {
        let grant_id = segment(&req, "grant_id")?;
        if !state.grants.revoke(&grant_id).await? {
            return Err(Refusal::NotFound("no live grant with this id"));
        }
        Ok(json!({ "revoked": [grant_id] }))
    })
    .await
}

async fn revoke_client_grants(req: HttpRequest, state: State) -> HttpResponse {
    answer(&req, &state, async {
        let client_id = segment(&req, "client_id")?;
        let revoked = state.grants.revoke_client(&client_id).await?;
        Ok(json!({ "revoked": revoked }))
    })
    .await
}

async fn audit(req: HttpRequest, state: State) -> HttpResponse {
    answer(&req, &state, async {
        let query = audit_query(req.query_string()).map_err(Refusal::BadRequest)?;
        let entries = state.grants.audit_entries(&query).await?;
        Ok(json!({ "entries": entries }))
    })
    .await
}

async fn unknown_route(req: HttpRequest, state: State) -> HttpResponse {
    answer(&req, &state, async {
        Err(Refusal::NotFound("no such admin route"))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn short_or_empty_secrets_are_refused_naming_the_variable() {
        for bad in ["", "   ", "short", &SECRET[1..]] {
            let error = AdminToken::new(bad).err().expect(bad);
            let text = error.to_string();
            assert!(text.contains(ADMIN_TOKEN_VAR), "{text}");
            assert!(
                bad.trim().is_empty() || !text.contains(bad),
                "never the value"
            );
        }
        assert!(AdminToken::new(SECRET).is_ok());
    }

    #[test]
    fn only_the_exact_bearer_secret_passes() {
        let token = AdminToken::new(SECRET).unwrap();
        assert!(token.check(Some(&format!("Bearer {SECRET}"))).is_ok());
        assert!(token.check(Some(&format!("bearer {SECRET}"))).is_ok());
        for missing in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer  "),
            Some(SECRET),
        ] {
            assert!(
                matches!(token.check(missing), Err(Refusal::Unauthenticated)),
                "{missing:?}"
            );
        }
        for wrong in [
            format!("Bearer {SECRET}x"),
            format!("Bearer {}", &SECRET[1..]),
            format!("Basic {SECRET}"),
            "Bearer mcp_at_something".to_owned(),
        ] {
            let refused = token.check(Some(&wrong));
            assert!(
                matches!(
                    refused,
                    Err(Refusal::InvalidToken | Refusal::Unauthenticated)
                ),
                "{wrong}"
            );
            assert!(refused.is_err());
        }
    }

    #[test]
    fn segments_are_fully_percent_decoded() {
        assert_eq!(
            decode_segment("https:%2F%2Fapp.example%2Fclient.json").as_deref(),
            Some("https://app.example/client.json")
        );
        assert_eq!(decode_segment("user%2501").as_deref(), Some("user%01"));
        assert_eq!(decode_segment("a+b").as_deref(), Some("a+b"));
        assert_eq!(decode_segment(""), None);
        assert_eq!(decode_segment("%FF"), None, "not UTF-8");
    }

    #[test]
    fn audit_queries_are_read_strictly() {
        assert_eq!(audit_query(""), Ok(AuditQuery::all()));
        assert_eq!(
            audit_query(
                "subject=user%201&client_id=https%3A%2F%2Fa.example%2Fc&grant_id=g&limit=5"
            ),
            Ok(AuditQuery::all()
                .subject("user 1")
                .client("https://a.example/c")
                .grant("g")
                .limit(5))
        );
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=ten",
            "subjct=x",
            "subject=",
            "subject=a&subject=b",
        ] {
            assert!(audit_query(bad).is_err(), "{bad}");
        }
    }
}
