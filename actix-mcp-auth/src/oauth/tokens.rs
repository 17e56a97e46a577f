//! Formats of the opaque values we issue: 256 random bits, base64url, behind a type prefix.
//!
//! The prefix makes leaked tokens easy to scan for (secret scanners key on it) and lets us
//! refuse a value of the wrong type, or of no plausible shape at all, before any hashing or
//! database lookup.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::secret::Secret;

/// Prefix of our access tokens.
pub const ACCESS_TOKEN_PREFIX: &str = "mcp_at_";
/// Prefix of our refresh tokens.
pub const REFRESH_TOKEN_PREFIX: &str = "mcp_rt_";
/// Prefix of our authorization codes.
pub const CODE_PREFIX: &str = "mcp_ac_";
/// Prefix of the client ids we assign.
pub const CLIENT_ID_PREFIX: &str = "mcp_client_";
/// Prefix of the client secrets we assign.
pub const CLIENT_SECRET_PREFIX: &str = "mcp_cs_";

/// Length of the random part: 32 bytes in unpadded base64url.
const RANDOM_LEN: usize = 43;

/// 32 random bytes from the OS generator, base64url without padding.
pub fn random_value() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new value of the given type: `prefix` + 256 random bits.
pub fn generate(prefix: &str) -> String {
    format!("{prefix}{}", random_value())
}

/// [`generate`] for the values that are credentials (tokens, codes, client secrets): held as a
/// [`Secret`] until they are handed out once.
pub fn generate_secret(prefix: &str) -> Secret {
    Secret::new(generate(prefix))
}

/// Whether `value` has the shape of a value of the given type (no lookup is worth doing
/// otherwise).
pub fn has_shape(value: &str, prefix: &str) -> bool {
    value.strip_prefix(prefix).is_some_and(|random| {
        random.len() == RANDOM_LEN
            && random
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_have_their_shape_and_differ() {
        let a = generate(ACCESS_TOKEN_PREFIX);
        let b = generate(ACCESS_TOKEN_PREFIX);
        assert_ne!(a, b);
        assert!(has_shape(&a, ACCESS_TOKEN_PREFIX));
        assert!(
            !has_shape(&a, REFRESH_TOKEN_PREFIX),
            "wrong type is refused"
        );
    }

    #[test]
    fn malformed_values_are_refused() {
        assert!(!has_shape("mcp_at_short", ACCESS_TOKEN_PREFIX));
        assert!(!has_shape(
            &format!("mcp_at_{}", "a".repeat(44)),
            ACCESS_TOKEN_PREFIX
        ));
        assert!(!has_shape(
            &format!("mcp_at_{}", "+".repeat(43)),
            ACCESS_TOKEN_PREFIX
        ));
        assert!(!has_shape("eyJhbGciOi.e30.sig", ACCESS_TOKEN_PREFIX));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn shape_checks_never_panic_and_need_the_prefix(value in any::<String>()) {
            if has_shape(&value, ACCESS_TOKEN_PREFIX) {
                prop_assert!(value.starts_with(ACCESS_TOKEN_PREFIX));
                prop_assert_eq!(value.len(), ACCESS_TOKEN_PREFIX.len() + 43);
                prop_assert!(!has_shape(&value, REFRESH_TOKEN_PREFIX));
            }
        }
    }
}
