//! OAuth protocol decisions, free of actix and of the database, so they can be unit-tested and
//! fuzzed in isolation (sans-IO, like oxide-auth's code-grant core).
//!
//! Low-level rules: PKCE, redirect-URI rules, scope lists, resource indicators, token formats,
//! client id metadata documents, what pages may show about a client.
//!
//! Endpoint decisions, one module each, as plain functions over parsed parameters
//! (`params::Params`), records the caller loaded, a policy value and the time passed in:
//! `registration`, `authorize`, `consent_form`, `callback`, `login_policy` (who may log in),
//! `client_auth`, `token_request`, `revocation`. They answer with an `error::Rejection` that the actix adapters
//! (`src/proxy/`) render; they never read the clock, the network or the store.

pub(crate) mod authorize;
pub(crate) mod callback;
pub mod cimd;
pub(crate) mod client_auth;
pub mod client_metadata;
pub mod consent;
pub(crate) mod consent_form;
pub mod display;
pub(crate) mod error;
pub(crate) mod login_policy;
pub(crate) mod params;
pub mod pkce;
pub mod provenance;
pub mod redirect_uri;
pub(crate) mod registration;
pub mod resource;
pub(crate) mod revocation;
pub mod scope;
pub(crate) mod token_request;
pub mod tokens;

#[cfg(test)]
mod boundaries {
    //! The core must stay free of the web framework, the database and the adapters: it is
    //! what they depend on, never the other way round.

    use std::path::Path;

    /// What no file of the core may mention: the framework, the database, the adapters and
    /// the modules built on them, the clock and I/O (time is passed in).
    const FORBIDDEN: [&str; 19] = [
        "actix_web",
        "actix_http",
        "actix_tls",
        "actix_rt",
        "awc::",
        "sqlx",
        "tokio",
        "crate::proxy",
        "crate::store",
        "crate::providers",
        "crate::upstream",
        "crate::error",
        "crate::metadata",
        "crate::middleware",
        "crate::clock",
        "crate::verify",
        "SystemTime",
        "Instant::now",
        "std::fs",
    ];

    #[test]
    fn the_core_imports_neither_the_framework_nor_the_store() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/oauth");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("src/oauth is readable") {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).expect("a readable source file");
            // This list names what it forbids; only code outside it counts.
            let source = source
                .split("mod boundaries")
                .next()
                .expect("split yields a first part");
            for forbidden in FORBIDDEN {
                assert!(
                    !source.contains(forbidden),
                    "{} mentions `{forbidden}`",
                    path.display()
                );
            }
            checked += 1;
        }
        assert!(checked >= 15, "only {checked} core files found");
    }
}
