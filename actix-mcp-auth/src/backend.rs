//! Crypto backend selection (cargo features `aws-lc-rs`, the default, or `rust-crypto`).
//!
//! jsonwebtoken 11 and rustls both want one process-wide provider and panic at first use when
//! they cannot tell which one to take (for example when an application's dependency graph turns
//! on both). We therefore name the provider explicitly everywhere.

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!("enable one crypto backend feature: `aws-lc-rs` (default) or `rust-crypto`");

/// Installs our jsonwebtoken provider unless the application installed one first (then that
/// one is used, which is fine: both verify RS256 correctly).
pub(crate) fn install_jwt_provider() {
    #[cfg(feature = "aws-lc-rs")]
    let provider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
    // Err only means a provider is already installed.
    let _ = provider.install_default();
}

/// The rustls provider for our AuthKit client.
pub(crate) fn rustls_provider() -> rustls::crypto::CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    return rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    return rustls::crypto::ring::default_provider();
}
