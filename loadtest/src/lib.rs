//! Load and fault harness of actix-mcp-auth (unpublished; **never deploy** its servers).
//!
//! The binaries in `src/bin` serve protected and *unprotected* MCP endpoints side by side, run
//! replicas and the shared AuthKit emulator, and drive logins, for `scripts/` (load, fault and
//! comparison runs). They reuse the examples' server code, compiled here from its one source.

#![forbid(unsafe_code)]

/// The examples' shared server code (MCP `whoami` service, tracing, store, listen address).
#[path = "../../actix-mcp-auth/examples/support/mod.rs"]
#[allow(missing_docs, dead_code)]
pub mod support;
