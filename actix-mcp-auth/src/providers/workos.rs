//! Proxy mode: we are the OAuth 2.1 authorization server MCP clients see, in front of AuthKit.
//!
//! For WorkOS Connect applications without dynamic client registration. MCP clients register
//! with us, log in through our consent page and AuthKit, and get *our* opaque tokens; AuthKit's
//! tokens stay sealed in the database and are only used server-side to check that the user's
//! session is alive and to refresh it. See [`crate::proxy`] for the endpoints.

use std::{sync::Arc, time::Duration};

use super::workos_config::WorkOsProviderBuilder;
use crate::{
    BearerAuth,
    error::ConfigError,
    proxy::{ProxyRoutes, ProxyState, grants::Grants},
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

    /// Validates the configuration and builds the provider over `store` (migrated). Starts
    /// nothing in the background: the sweeper of expired rows is the application's explicit
    /// call, see [`WorkOsProvider::sweep_interval`].
    pub fn build(self, store: Store) -> Result<WorkOsProvider, ConfigError> {
        let settings = self.settings()?;
        if settings.cimd.enabled && settings.cimd.allow_loopback {
            tracing::warn!(
                "MCP_AUTH_CIMD_ALLOW_LOOPBACK is on: client id URLs on loopback are accepted and \
                 fetched. For local development and tests only; never in production"
            );
        }
        Ok(WorkOsProvider {
            state: Arc::new(ProxyState::new(settings, store)),
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
        &self.state.settings.mount_path
    }

    /// Canonical URL of the MCP endpoint (the resource our tokens are bound to).
    pub fn resource_url(&self) -> &str {
        &self.state.settings.resource_url
    }

    /// Absolute URL of the protected-resource metadata, as announced in challenges (RFC 9728
    /// §3.1: the well-known path sits at the origin, before the resource's path).
    pub fn resource_metadata_url(&self) -> &str {
        &self.state.settings.resource_metadata_url
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

    /// How often expired rows should be deleted (`MCP_AUTH_SWEEP_INTERVAL_SECONDS`, default
    /// 5 min; zero when turned off with
    /// [`sweep_interval`](WorkOsProviderBuilder::sweep_interval)). Building the provider starts
    /// nothing: pass it to [`Store::spawn_sweeper`] once per process, and keep the handle for as
    /// long as the server runs:
    ///
    /// ```no_run
    /// # async fn run(auth: actix_mcp_auth::WorkOsProvider) {
    /// let _sweeper = auth.store().spawn_sweeper(auth.sweep_interval(), 500);
    /// # }
    /// ```
    pub fn sweep_interval(&self) -> Duration {
        self.state.settings.sweep_interval
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

    /// The grants users gave MCP clients: list them, revoke one, all of a user's or all of a
    /// client's (audited as `admin`), or hand [`Grants::for_user`] to a page of the signed-in
    /// user. Revoking through it drops the grants' tokens from this process's cache at once;
    /// other replicas stop accepting them within their token-cache window
    /// (`MCP_AUTH_TOKEN_CACHE_SECONDS`, capped by `MCP_AUTH_USERINFO_CACHE_SECONDS`, 30 s by
    /// default). Mount [`AdminApi`](crate::AdminApi) for an HTTP interface.
    pub fn grants(&self) -> Grants {
        Grants::new(self.state.store.clone(), self.state.bearer.clone())
    }

    /// The optional "connected apps" page: a user signs in with AuthKit, sees which MCP clients
    /// hold a live grant for them and revokes any of them. Served only if you register it:
    /// `App::new().service(provider.connected_apps())` (path `/connected-apps`, or
    /// [`ConnectedApps::path`](crate::ConnectedApps::path)).
    pub fn connected_apps(&self) -> crate::ConnectedApps {
        crate::ConnectedApps::new(self.state.clone())
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
            self.resource_metadata_url().to_owned(),
        )
        .required_scopes(self.state.settings.required_scopes.clone());
        match &self.state.settings.tool_scopes {
            Some(policy) => bearer.tool_scopes(policy.clone()),
            None => bearer,
        }
    }
}
