//! OAuth protocol decisions, free of actix and of the database, so they can be unit-tested and
//! fuzzed in isolation: PKCE, redirect-URI rules, scope lists, resource indicators, what the consent page shows
//! and when a remembered approval may skip it.

pub mod consent;
pub mod pkce;
pub mod redirect_uri;
pub mod resource;
pub mod scope;
pub mod tokens;
