//! OAuth protocol decisions, free of actix and of the database, so they can be unit-tested and
//! fuzzed in isolation: PKCE, redirect-URI rules, scope lists, resource indicators, and how
//! pages show client-supplied values.

pub mod display;
pub mod pkce;
pub mod redirect_uri;
pub mod resource;
pub mod scope;
pub mod tokens;
