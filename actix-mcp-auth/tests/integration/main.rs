//! Integration tests: real HTTP servers on loopback, against `FakeAuthKit`.
//!
//! One binary (faster to link), one module per area.

mod app;
mod authkit_discovery;
mod authkit_login;
mod authkit_tokens;
mod deployment_limits;
mod proxy_app;
mod proxy_cimd;
mod proxy_connected_apps;
mod proxy_flow;
mod proxy_grants;
mod proxy_input;
mod proxy_login_policy;
mod proxy_negative;
mod proxy_single_flight;
mod proxy_store_operations;
mod proxy_tokens;
mod store_support;
mod tool_scopes;
