//! Integration tests: real HTTP servers on loopback, against `FakeAuthKit`.
//!
//! One binary (faster to link), one module per area.

mod app;
mod authkit_discovery;
mod authkit_tokens;
