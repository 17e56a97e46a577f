//! Proxy mode: we are the OAuth 2.1 authorization server MCP clients see, in front of AuthKit.
//!
//! For WorkOS Connect applications without dynamic client registration. MCP clients register
//! with us, log in through our consent page and AuthKit, and get *our* opaque tokens; AuthKit's
//! tokens stay sealed in the database and are only used server-side to check that the user's
//! session is alive and to refresh it. See [`crate::proxy`] for the endpoints.

use std::sync::Arc;

use actix_web::web::Bytes;

use super::workos_config::WorkOsProviderBuilder;
use crate::{
    BearerAuth,
    error::ConfigError,
    metadata::{ProtectedResourceMetadata, authorization_server_metadata, protected_resource_path},
    proxy::{ProxyRoutes, ProxyState, bearer::ProxyVerifier, cimd::CimdClients},
    store::Store,
};

/// OAuth 2.1 authorization server for MCP clients, backed by WorkOS AuthKit (FastMCP's
/// `WorkOSProvider`, without its token passthrough).
///
/// ```no_run
/// use actix_mcp_auth::{WorkOsProvider, store::{Keyring, Store}};
/// use actix_web::{App, HttpResponse, HttpServer, web};
///
/// #[actix_web::main]
/// async fn main() -> std::io::Result<()> {
///     let keys = Keyring::from_env().expect("MCP_AUTH_ENCRYPTION_KEYS");
///     let store = Store::connect("sqlite://auth.db", keys).await.expect("database");
///     store.migrate().await.expect("migrations");
///     let auth = WorkOsProvider::from_env(store).expect("WorkOS configuration");
///     HttpServer::new(move || {
///         App::new().service(auth.routes()).service(
///             web::scope(auth.mcp_path())
///                 .wrap(auth.bearer())
///                 .route("", web::post().to(|| async { HttpResponse::Ok().finish() })),
///         )
///     })
///     .bind(("127.0.0.1", 8000))?
///     .run()
///     .await
/// }
/// ```
#[derive(Clone)]
pub struct WorkOsProvider {
    state: Arc<ProxyState>,
}

impl std::fmt::Debug for WorkOsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkOsProvider")
            .field("issuer", &self.state.settings.issuer)
            .field("authkit", &self.state.settings.authkit)
            .field("resource_url", &self.state.settings.resource_url)
            .finish_non_exhaustive()
    }
}

impl WorkOsProviderBuilder {
    /// Checks the configuration without building anything (to fail before opening a
    /// database).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.clone().settings().map(|_| ())
    }

    /// Validates the configuration and builds the provider over `store` (migrated).
    pub fn build(self, store: Store) -> Result<WorkOsProvider, ConfigError> {
        let settings = self.settings()?;
        let mut scopes = settings.required_scopes.clone();
        if let Some(policy) = &settings.tool_scopes {
            crate::metadata::add_policy_scopes(&mut scopes, policy);
        }
        let resource_metadata = ProtectedResourceMetadata::new(
            settings.resource_url.clone(),
            settings.issuer.clone(),
            &scopes,
        );
        if !scopes.iter().any(|s| s == "offline_access") {
            scopes.push("offline_access".to_owned());
        }
        let as_metadata =
            authorization_server_metadata(&settings.issuer, &scopes, settings.cimd.enabled);
        if settings.cimd.enabled && settings.cimd.allow_loopback {
            tracing::warn!(
                "MCP_AUTH_CIMD_ALLOW_LOOPBACK is on: client id URLs on loopback are accepted and \
                 fetched. For local development and tests only; never in production"
            );
        }
        // One sweeper per provider (built once per process, before the server starts).
        let sweeper = (!settings.sweep_interval.is_zero()
            && tokio::runtime::Handle::try_current().is_ok())
        .then(|| store.spawn_sweeper(settings.sweep_interval, 500));
        let state = ProxyState {
            _sweeper: sweeper,
            as_metadata: Bytes::from(as_metadata.to_string()),
            resource_metadata: Bytes::from(
                serde_json::to_vec(&resource_metadata).expect("metadata serializes"),
            ),
            resource_metadata_path: protected_resource_path(&format!(
                "{}{}",
                settings.base_path, settings.mcp_path
            )),
            mount_path: format!("{}{}", settings.base_path, settings.mcp_path),
            bearer: ProxyVerifier::new(settings.clone(), store.clone()),
            limiters: settings.rate_limits.build(),
            cimd: CimdClients::new(
                settings.cimd.clone(),
                settings.redirect_policy.clone(),
                scopes.clone(),
            ),
            settings,
            store,
        };
        Ok(WorkOsProvider {
            state: Arc::new(state),
        })
    }
}

impl WorkOsProvider {
    /// Starts a builder.
    pub fn builder() -> WorkOsProviderBuilder {
        WorkOsProviderBuilder::default()
    }

    /// Builds the provider from the environment (see [`WorkOsProviderBuilder::from_env`]).
    pub fn from_env(store: Store) -> Result<Self, ConfigError> {
        WorkOsProviderBuilder::from_env()?.build(store)
    }

    /// Our OAuth issuer (the base URL).
    pub fn issuer(&self) -> &str {
        &self.state.settings.issuer
    }

    /// Where to mount the MCP endpoint in the application: the base URL's path followed by
    /// `MCP_PATH`.
    pub fn mcp_path(&self) -> &str {
        &self.state.mount_path
    }

    /// Canonical URL of the MCP endpoint (the resource our tokens are bound to).
    pub fn resource_url(&self) -> &str {
        &self.state.settings.resource_url
    }

    /// Absolute URL of the protected-resource metadata.
    pub fn resource_metadata_url(&self) -> String {
        // RFC 9728 §3.1: the well-known path sits at the origin, before the resource's path.
        let origin = self.state.settings.base_url.origin().ascii_serialization();
        format!("{origin}{}", self.state.resource_metadata_path)
    }

    /// Our callback URL: register it as the redirect URI of the WorkOS Connect application.
    pub fn callback_url(&self) -> String {
        self.state
            .settings
            .endpoint(&self.state.settings.redirect_path)
    }

    /// The store behind the provider.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Addresses the metadata-document fetcher tried to connect to, oldest first (for tests
    /// of the SSRF guard: a refused host never appears here).
    pub fn cimd_connection_attempts(&self) -> Vec<std::net::SocketAddr> {
        self.state.cimd.connection_attempts()
    }

    /// Number of access tokens cached in this process.
    pub fn cached_tokens(&self) -> u64 {
        self.state.bearer.cached_tokens()
    }

    /// The OAuth endpoints and discovery documents, registered at the host root.
    pub fn routes(&self) -> ProxyRoutes {
        ProxyRoutes {
            state: self.state.clone(),
        }
    }

    /// The bearer-check middleware for the MCP endpoint.
    pub fn bearer(&self) -> BearerAuth {
        let bearer = BearerAuth::new(
            Arc::new(self.state.bearer.clone()),
            self.resource_metadata_url(),
        )
        .required_scopes(self.state.settings.required_scopes.clone());
        match &self.state.settings.tool_scopes {
            Some(policy) => bearer.tool_scopes(policy.clone()),
            None => bearer,
        }
    }
}
