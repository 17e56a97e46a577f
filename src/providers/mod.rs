//! Identity-provider integrations. Each provider owns its configuration, its routes
//! (`routes()`, an actix `HttpServiceFactory`) and its bearer middleware (`bearer()`).

mod authkit;

pub use authkit::{AuthKitProvider, AuthKitProviderBuilder, AuthKitRoutes};
