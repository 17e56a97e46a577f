//! Identity-provider integrations: wiring only. Each provider reads its settings (the shared
//! ones through [`crate::settings`]), builds its verifier and state, and hands out its routes
//! (`routes()`, an actix `HttpServiceFactory`) and its bearer middleware (`bearer()`).
//! Dependencies point one way: providers use `proxy`, `settings`, `metadata` and `verify`;
//! none of those uses `providers`.

mod authkit;
mod workos;
mod workos_config;

pub use authkit::{AuthKitProvider, AuthKitProviderBuilder, AuthKitRoutes};
pub use workos::WorkOsProvider;
pub use workos_config::WorkOsProviderBuilder;
