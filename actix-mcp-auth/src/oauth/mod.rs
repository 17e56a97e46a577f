//! OAuth protocol decisions, free of actix and of the database, so they can be unit-tested and
//! fuzzed in isolation: PKCE, redirect-URI rules, scope lists, resource indicators, client id
//! metadata documents, what the consent page may say about a client and when a remembered
//! approval may skip it, and how pages show client-supplied values.

pub mod cimd;
pub mod client_metadata;
pub mod consent;
pub mod display;
pub mod pkce;
pub mod provenance;
pub mod redirect_uri;
pub mod resource;
pub mod scope;
pub mod tokens;
