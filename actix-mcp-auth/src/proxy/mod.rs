//! Proxy mode's OAuth endpoints: thin actix handlers that parse requests, apply the rules of
//! [`crate::oauth`], read and write the [`Store`], and render answers.
//!
//! ```text
//! MCP client ──/register──▶ us                          (RFC 7591, public or confidential)
//! MCP client ──/authorize─▶ us ──▶ /consent (our page) ──▶ AuthKit /oauth2/authorize
//! AuthKit ──/auth/callback─▶ us: exchange AuthKit's code with our client secret, keep AuthKit's
//!                               tokens sealed in the grant, send the client *our* code
//! MCP client ──/token─────▶ us: our opaque tokens (`mcp_at_…`, `mcp_rt_…`), bound to the resource
//! MCP client ──/revoke────▶ us (RFC 7009)
//! ```

pub(crate) mod apps;
mod authorize;
pub(crate) mod bearer;
pub(crate) mod branding;
mod callback;
pub(crate) mod cimd;
mod client_auth;
mod consent;
mod consent_page;
mod cookies;
mod form;
pub(crate) mod grants;
mod html;
pub(crate) mod login_policy;
mod register;
mod revoke;
pub(crate) mod settings;
mod token;
mod token_cache;

use std::sync::Arc;

use actix_web::{
    HttpResponse,
    dev::{AppService, HttpServiceFactory},
    http::header,
    web::{self, Bytes},
};
use url::Url;

pub(crate) use self::settings::ProxySettings;
use crate::{
    error::OAuthError,
    metadata::{
        AuthorizationServerMetadata, DiscoveryRoutes, ProtectedResourceMetadata,
        authorization_server_metadata, get_or_head, preflight,
    },
    store::{RevokeCause, Store, StoreError},
};

/// Everything the handlers share; one per provider, behind an `Arc`.
pub(crate) struct ProxyState {
    pub settings: ProxySettings,
    pub store: Store,
    /// Our protected-resource and authorization-server metadata, and their routes.
    pub discovery: DiscoveryRoutes,
    pub bearer: bearer::ProxyVerifier,
    /// The rate limiters, one set per provider (shared by every worker).
    pub limiters: crate::rate_limit::Limiters,
    /// Clients identified by a metadata-document URL.
    pub cimd: cimd::CimdClients,
}

impl ProxyState {
    /// The state of one provider: its discovery documents, bearer verifier, rate limiters and
    /// metadata-document clients over `store`. Starts no background task.
    pub(crate) fn new(settings: ProxySettings, store: Store) -> Self {
        let mut scopes = settings.client_scopes();
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
        let discovery = DiscoveryRoutes {
            resource_metadata_path: settings.resource_metadata_path.clone(),
            resource_metadata: Bytes::from(
                serde_json::to_vec(&resource_metadata).expect("metadata serializes"),
            ),
            // RFC 8414 §3.1: the well-known segment goes before the issuer's path.
            authorization_server_path: format!(
                "/.well-known/oauth-authorization-server{}",
                settings.base_path
            ),
            authorization_server: AuthorizationServerMetadata::Own(Bytes::from(
                as_metadata.to_string(),
            )),
        };
        Self {
            discovery,
            bearer: bearer::ProxyVerifier::new(settings.clone(), store.clone()),
            limiters: settings.rate_limits.build(),
            cimd: cimd::CimdClients::new(
                settings.cimd.clone(),
                settings.redirect_policy.clone(),
                scopes,
            ),
            settings,
            store,
        }
    }
}

pub(crate) type State = web::Data<Arc<ProxyState>>;

/// A store failure as an OAuth error: 503 when retrying may help, 500 otherwise. Never shows
/// the database error to the client.
pub(crate) fn store_error(error: StoreError) -> OAuthError {
    let transient = error.is_transient();
    if transient {
        tracing::warn!(%error, "database unavailable");
    } else {
        tracing::error!(%error, "database error");
    }
    crate::oauth::error::Rejection::storage(transient).into()
}

/// A store failure as an error page (503 or 500, never the database error itself).
pub(crate) fn store_error_page(error: StoreError) -> HttpResponse {
    let error = store_error(error);
    html::error_page(error.code().status_for_page(), &error.description())
}

/// Path (under the base URL) of the server icon on our pages, when one is configured.
pub(crate) const ICON_PATH: &str = "/branding/icon";

/// The configured server icon, from memory (read at start-up). Its own CSP forbids everything,
/// so an SVG opened directly cannot run scripts on our origin.
fn icon_response(icon: &branding::Icon) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(icon.content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Content-Security-Policy", "default-src 'none'; sandbox"))
        .body(icon.bytes.clone())
}

/// Revokes a grant for `cause` (audited) and drops its tokens from this replica's cache.
pub(crate) async fn end_grant(
    state: &ProxyState,
    grant_id: &str,
    cause: RevokeCause,
) -> Result<(), OAuthError> {
    state
        .store
        .revoke_grant(grant_id, cause)
        .await
        .map_err(store_error)?;
    state.bearer.forget_grant(grant_id);
    Ok(())
}

/// A 302 to `uri` with `params` added to its query (an existing parameter of the same name is
/// replaced, so a client URI can never smuggle a second `code` or `iss`).
pub(crate) fn redirect_with(uri: &str, params: &[(&str, &str)]) -> HttpResponse {
    let location = match Url::parse(uri) {
        Ok(mut url) => {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| !params.iter().any(|(name, _)| name == k))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            {
                let mut query = url.query_pairs_mut();
                query.clear();
                query.extend_pairs(kept);
                query.extend_pairs(params.iter().filter(|(_, v)| !v.is_empty()));
            }
            url.to_string()
        }
        // Only validated URIs reach this point; fail closed anyway.
        Err(_) => return html::error_page(400, "Invalid redirect URI"),
    };
    HttpResponse::Found()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// An authorization error sent back to the client's (validated) redirect URI, with its `state`
/// and our `iss` (RFC 6749 §4.1.2.1, RFC 9207).
pub(crate) fn error_redirect(
    state: &ProxyState,
    redirect_uri: &str,
    client_state: Option<&str>,
    error: &OAuthError,
) -> HttpResponse {
    let description = error.description();
    redirect_with(
        redirect_uri,
        &[
            ("error", error.code().as_str()),
            ("error_description", &description),
            ("state", client_state.unwrap_or_default()),
            ("iss", &state.settings.issuer),
        ],
    )
}

/// The routes of a [`WorkOsProvider`](crate::WorkOsProvider); register with `App::service`.
///
/// Resources are registered one by one at the host root (never a catch-all scope), so the
/// application's own routes stay reachable.
pub struct ProxyRoutes {
    pub(crate) state: Arc<ProxyState>,
}

impl HttpServiceFactory for ProxyRoutes {
    fn register(self, config: &mut AppService) {
        let data = web::Data::new(self.state.clone());
        let settings = &self.state.settings;
        // Form and JSON bodies of OAuth requests are small; refuse anything larger early.
        let limit = web::PayloadConfig::new(64 * 1024);
        // Built once with the provider: every worker shares the same budgets.
        let limits = &self.state.limiters;

        self.state.discovery.register(config);

        web::resource(settings.route("/register"))
            .wrap(limits.register.clone())
            .app_data(data.clone())
            .app_data(limit.clone())
            .route(web::post().to(register::register))
            .route(preflight())
            .register(config);
        // No CORS on the authorization endpoint (RFC 9700 §2.6).
        web::resource(settings.route("/authorize"))
            .wrap(limits.authorize.clone())
            .app_data(data.clone())
            .app_data(limit.clone())
            .route(web::get().to(authorize::authorize_get))
            .route(web::post().to(authorize::authorize_post))
            .register(config);
        web::resource(settings.route("/consent"))
            .wrap(limits.consent.clone())
            .app_data(data.clone())
            .app_data(limit.clone())
            .route(web::get().to(consent::show))
            .route(web::post().to(consent::decide))
            .register(config);
        if let Some(icon) = settings.branding.icon.clone() {
            web::resource(settings.route(ICON_PATH))
                .route(get_or_head().to(move || {
                    let icon = icon.clone();
                    async move { icon_response(&icon) }
                }))
                .register(config);
        }
        web::resource(settings.route(&settings.redirect_path))
            .app_data(data.clone())
            .route(web::get().to(callback::callback))
            .register(config);
        web::resource(settings.route("/token"))
            .wrap(limits.token.clone())
            .app_data(data.clone())
            .app_data(limit.clone())
            .route(web::post().to(token::token))
            .route(preflight())
            .register(config);
        web::resource(settings.route("/revoke"))
            .wrap(limits.revoke.clone())
            .app_data(data)
            .app_data(limit)
            .route(web::post().to(revoke::revoke))
            .route(preflight())
            .register(config);
    }
}
