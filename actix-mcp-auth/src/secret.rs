//! Values that must not leak: [`Secret`] (a token, code or verifier held as a value) and
//! [`TokenHash`] (the SHA-256 digest under which the store keeps what we issue).
//!
//! Shared by the protocol core (which mints values), the store (which digests and seals them)
//! and the proxy (which hands them out once). Neither type prints its value in `Debug`.

use std::fmt;

use sha2::{Digest, Sha256};

/// A string that must not be logged or compared in variable time: a token or code we issue, a
/// client secret, an upstream token, a PKCE verifier.
///
/// `Debug` prints `Secret(***)`; there is no `Display`. Read it with [`Secret::expose`]. There
/// is no `PartialEq` either: compare digests ([`TokenHash`]) instead of values. (The unit tests
/// get one, to compare the records that carry secrets.)
#[derive(Clone)]
#[cfg_attr(test, derive(PartialEq, Eq))]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; keep it out of logs and error messages.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The SHA-256 digest (64 lower-case hex digits) of a code, token or other issued secret: what
/// the database stores and looks up instead of the value itself.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash(String);

impl TokenHash {
    /// The digest of `secret`.
    pub fn of(secret: &str) -> Self {
        Self(hex(&Sha256::digest(secret.as_bytes())))
    }

    /// The digest of a [`Secret`].
    pub fn of_secret(secret: &Secret) -> Self {
        Self::of(secret.expose())
    }

    /// A digest read back from storage or a cache; `None` unless it is 64 lower-case hex digits.
    pub fn from_hex(digest: &str) -> Option<Self> {
        let well_formed = digest.len() == 64
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        well_formed.then(|| Self(digest.to_owned()))
    }

    /// The digest as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenHash {
    // A digest reveals nothing about the token, but a short form keeps logs readable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.0[..8])
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths (not on where
/// they differ): for comparing a presented secret with the expected one.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_digested_like_its_value_and_never_printed() {
        let secret = Secret::new("mcp_at_abc");
        assert_eq!(TokenHash::of_secret(&secret), TokenHash::of("mcp_at_abc"));
        assert_eq!(TokenHash::of("abc").as_str().len(), 64);
        assert!(!format!("{secret:?}").contains("abc"));
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
