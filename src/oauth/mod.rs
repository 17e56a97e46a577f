//! OAuth protocol decisions, free of actix and of the database, so they can be unit-tested and
//! fuzzed in isolation: PKCE, redirect-URI rules, scope lists, resource indicators, client id
//! metadata documents and what the consent page may say about a client.

pub mod cimd;
pub mod pkce;
pub mod provenance;
pub mod redirect_uri;
pub mod resource;
pub mod scope;
pub mod tokens;
