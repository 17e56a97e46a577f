//! Discovery documents: protected-resource metadata (RFC 9728), authorization-server metadata
//! (RFC 8414; ours in proxy mode, AuthKit's forwarded in AuthKit mode), and the one function
//! that registers their routes for both providers ([`DiscoveryRoutes::register`]).

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use actix_web::{
    HttpResponse, Route,
    dev::{AppService, HttpServiceFactory},
    guard,
    http::{Method, header},
    web::{self, Bytes},
};
use serde::Serialize;

use crate::{
    clock::Clock,
    upstream::{self, UpstreamError},
};

/// The protected-resource metadata document (RFC 9728 §2) of an MCP endpoint.
///
/// Empty optional members are omitted (RFC 9728 §3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ProtectedResourceMetadata {
    /// The canonical URL of the MCP endpoint; MCP clients compare it with the URL they called.
    pub resource: String,
    /// Issuers of the authorization servers that issue tokens for this resource.
    pub authorization_servers: Vec<String>,
    /// Scopes a client should ask for (never `offline_access`, per MCP 2026-07-28).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How tokens may be presented: only the `Authorization` header.
    pub bearer_methods_supported: Vec<String>,
    /// Human-readable name of the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// URL of human-readable documentation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
}

impl ProtectedResourceMetadata {
    /// A document for `resource` protected by `authorization_server`. `offline_access` is
    /// removed from `scopes`: refresh is between client and authorization server.
    pub(crate) fn new(
        resource: impl Into<String>,
        authorization_server: impl Into<String>,
        scopes: &[String],
    ) -> Self {
        Self {
            resource: resource.into(),
            authorization_servers: vec![authorization_server.into()],
            scopes_supported: scopes
                .iter()
                .filter(|s| s.as_str() != "offline_access")
                .cloned()
                .collect(),
            bearer_methods_supported: vec!["header".to_owned()],
            resource_name: None,
            resource_documentation: None,
        }
    }
}

/// Our authorization-server metadata (RFC 8414) in proxy mode. Every advertised endpoint and
/// method works; `iss` is on every redirect back to clients (RFC 9207).
pub(crate) fn authorization_server_metadata(
    issuer: &str,
    scopes_supported: &[String],
    client_id_metadata_documents: bool,
) -> serde_json::Value {
    let auth_methods = ["none", "client_secret_post", "client_secret_basic"];
    serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "registration_endpoint": format!("{issuer}/register"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": scopes_supported,
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": client_id_metadata_documents,
    })
}

/// The well-known path of the protected-resource metadata of the resource at `resource_path`
/// (RFC 9728 §3.1: the well-known segment goes between host and path).
pub(crate) fn protected_resource_path(resource_path: &str) -> String {
    format!("/.well-known/oauth-protected-resource{resource_path}")
}

/// How long clients and shared caches may keep the documents we write ourselves.
const OWN_DOCUMENT_MAX_AGE: Duration = Duration::from_secs(3600);

/// Where the authorization-server metadata comes from.
#[derive(Clone)]
pub(crate) enum AuthorizationServerMetadata {
    /// Our own document (proxy mode), fixed at start-up.
    Own(Bytes),
    /// AuthKit's document, forwarded (AuthKit mode).
    Forwarded(Arc<MetadataForwarder>),
}

/// The discovery documents of a provider and where they are served.
#[derive(Clone)]
pub(crate) struct DiscoveryRoutes {
    /// Path of the protected-resource metadata of the MCP endpoint.
    pub resource_metadata_path: String,
    /// That document, serialized once.
    pub resource_metadata: Bytes,
    /// Path of the authorization-server metadata.
    pub authorization_server_path: String,
    /// That document.
    pub authorization_server: AuthorizationServerMetadata,
}

impl DiscoveryRoutes {
    /// Registers, at the host root, `GET`/`HEAD` and CORS preflight of:
    /// * the protected-resource metadata at its RFC 9728 path and at the bare well-known path
    ///   (for clients that do not insert the resource path);
    /// * the authorization-server metadata.
    ///
    /// Resources are registered one by one, never as a scope, so the application's own routes
    /// stay reachable.
    pub(crate) fn register(&self, config: &mut AppService) {
        let mut prm_paths = vec![self.resource_metadata_path.clone()];
        let root = protected_resource_path("");
        if !prm_paths.contains(&root) {
            prm_paths.push(root);
        }
        for path in prm_paths {
            let body = self.resource_metadata.clone();
            web::resource(path)
                .route(get_or_head().to(move || {
                    let body = body.clone();
                    async move { public_json(body, OWN_DOCUMENT_MAX_AGE) }
                }))
                .route(preflight())
                .register(config);
        }
        let serve_as_metadata = match &self.authorization_server {
            AuthorizationServerMetadata::Own(body) => {
                let body = body.clone();
                get_or_head().to(move || {
                    let body = body.clone();
                    async move { public_json(body, OWN_DOCUMENT_MAX_AGE) }
                })
            }
            AuthorizationServerMetadata::Forwarded(forwarder) => {
                let forwarder = forwarder.clone();
                get_or_head().to(move || {
                    let forwarder = forwarder.clone();
                    async move {
                        match forwarder.get().await {
                            Ok(body) => public_json(body, forwarder.max_age()),
                            Err(_) => bad_gateway(),
                        }
                    }
                })
            }
        };
        web::resource(self.authorization_server_path.clone())
            .route(serve_as_metadata)
            .route(preflight())
            .register(config);
    }
}

/// A route answering `GET` and `HEAD`.
pub(crate) fn get_or_head() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// A route answering CORS preflights (`OPTIONS`) of public documents and endpoints.
pub(crate) fn preflight() -> Route {
    web::method(Method::OPTIONS).to(|| async { public_preflight() })
}

/// A public, cacheable JSON document readable from any origin.
pub(crate) fn public_json(body: Bytes, max_age: Duration) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={}", max_age.as_secs()),
        ))
        .body(body)
}

/// Answer to a CORS preflight on a public document or a CORS-enabled OAuth endpoint.
pub(crate) fn public_preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Authorization, Content-Type, Mcp-Protocol-Version",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
        .finish()
}

/// A 502 with an OAuth-style JSON body and nothing from the upstream answer.
pub(crate) fn bad_gateway() -> HttpResponse {
    HttpResponse::BadGateway()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::RETRY_AFTER, "5"))
        .json(serde_json::json!({
            "error": "temporarily_unavailable",
            "error_description": "the authorization server metadata is unavailable; retry later",
        }))
}

struct Cached {
    body: Bytes,
    fetched_at: Instant,
}

/// Forwards an upstream JSON document unchanged, cached for `ttl`.
///
/// One upstream fetch at a time: while a refresh runs, other requests get the stale copy at
/// once (or wait for the fetch when there is no copy yet). After a failure, no new attempt is
/// made for `error_backoff`; the stale copy is served meanwhile. Ages and the back-off are
/// measured with `clock`, so tests move time instead of waiting for it.
pub(crate) struct MetadataForwarder {
    url: String,
    timeout: Duration,
    ttl: Duration,
    error_backoff: Duration,
    clock: Clock,
    cached: RwLock<Option<Cached>>,
    last_failure: tokio::sync::Mutex<Option<Instant>>,
}

/// How long a failed metadata fetch keeps us from asking again (tests move the forwarder's
/// clock past it).
pub(crate) const METADATA_ERROR_BACKOFF: Duration = Duration::from_secs(5);

impl MetadataForwarder {
    pub(crate) fn new(url: String, timeout: Duration, ttl: Duration) -> Self {
        Self {
            url,
            timeout,
            ttl,
            error_backoff: METADATA_ERROR_BACKOFF,
            clock: Clock::system(),
            cached: RwLock::new(None),
            last_failure: tokio::sync::Mutex::new(None),
        }
    }

    /// Measures ages and the back-off with `clock` instead of the system clock.
    pub(crate) fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub(crate) fn max_age(&self) -> Duration {
        self.ttl
    }

    /// The cached copy and whether it is still fresh.
    fn cached(&self) -> Option<(Bytes, bool)> {
        let guard = self
            .cached
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.as_ref().map(|c| {
            (
                c.body.clone(),
                self.clock.elapsed_since(c.fetched_at) < self.ttl,
            )
        })
    }

    /// The document: fresh from cache, or refetched, or stale when the upstream fails.
    pub(crate) async fn get(&self) -> Result<Bytes, UpstreamError> {
        let stale = match self.cached() {
            Some((body, true)) => return Ok(body),
            Some((body, false)) => Some(body),
            None => None,
        };
        let mut last_failure = match (self.last_failure.try_lock(), &stale) {
            (Ok(guard), _) => guard,
            // A refresh is running: serve the stale copy rather than queueing.
            (Err(_), Some(body)) => return Ok(body.clone()),
            (Err(_), None) => self.last_failure.lock().await,
        };
        // Someone may have refreshed while we waited for the lock.
        if let Some((body, true)) = self.cached() {
            return Ok(body);
        }
        if last_failure.is_some_and(|at| self.clock.elapsed_since(at) < self.error_backoff) {
            return stale.ok_or(UpstreamError::Unreachable);
        }
        match upstream::get_json_object(&self.url, self.timeout, None).await {
            Ok(body) => {
                *last_failure = None;
                *self
                    .cached
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Cached {
                    body: body.clone(),
                    fetched_at: self.clock.instant(),
                });
                Ok(body)
            }
            Err(error) => {
                *last_failure = Some(self.clock.instant());
                tracing::warn!(%error, url = %self.url, "authorization server metadata fetch failed");
                stale.ok_or(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prm_omits_offline_access_and_empty_members() {
        let doc = ProtectedResourceMetadata::new(
            "https://mcp.example.com/mcp",
            "https://tenant.authkit.app",
            &["openid".into(), "offline_access".into()],
        );
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["scopes_supported"], serde_json::json!(["openid"]));
        assert_eq!(
            json["bearer_methods_supported"],
            serde_json::json!(["header"])
        );
        assert!(json.get("resource_name").is_none());
        let none = ProtectedResourceMetadata::new("r", "a", &[]);
        assert!(
            serde_json::to_value(&none)
                .unwrap()
                .get("scopes_supported")
                .is_none()
        );
    }

    #[test]
    fn well_known_path_is_inserted_before_the_resource_path() {
        assert_eq!(
            protected_resource_path("/mcp"),
            "/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            protected_resource_path(""),
            "/.well-known/oauth-protected-resource"
        );
    }
}
