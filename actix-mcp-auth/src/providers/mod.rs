//! Identity-provider integrations. Each provider owns its configuration, its routes
//! (`routes()`, an actix `HttpServiceFactory`) and its bearer middleware (`bearer()`).

mod authkit;
mod branding;
mod workos;
mod workos_config;

pub use authkit::{AuthKitProvider, AuthKitProviderBuilder, AuthKitRoutes};
pub(crate) use branding::Icon;
pub use workos::WorkOsProvider;
pub(crate) use workos_config::ProxySettings;
pub use workos_config::WorkOsProviderBuilder;
