//! PKCE (RFC 7636, mandatory in OAuth 2.1): only `S256`, strictly formed values.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// The only challenge method we accept (`plain` gives no protection against code theft).
pub const S256: &str = "S256";

/// RFC 7636 §4.1: 43–128 characters of `[A-Za-z0-9-._~]`.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len()) && verifier.bytes().all(is_unreserved)
}

/// An S256 challenge is the base64url (no padding) encoding of a SHA-256 digest: exactly 43
/// characters of the base64url alphabet.
pub fn is_valid_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `BASE64URL(SHA256(verifier))`.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` is well formed and matches `challenge`.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    // The challenge travelled in the clear in the authorization request: it is not a secret,
    // so a plain comparison leaks nothing.
    is_valid_verifier(verifier) && s256_challenge(verifier) == challenge
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256_challenge(verifier), challenge);
        assert!(verify_s256(verifier, challenge));
        assert!(is_valid_s256_challenge(challenge));
    }

    #[test]
    fn wrong_or_malformed_verifiers_fail() {
        let challenge = s256_challenge(&"a".repeat(43));
        assert!(!verify_s256(&"b".repeat(43), &challenge));
        assert!(!verify_s256(
            &"a".repeat(42),
            &s256_challenge(&"a".repeat(42))
        ));
        assert!(!verify_s256(
            &"a".repeat(129),
            &s256_challenge(&"a".repeat(129))
        ));
        let with_space = format!("{} ", "a".repeat(42));
        assert!(!verify_s256(&with_space, &s256_challenge(&with_space)));
    }

    #[test]
    fn challenges_must_look_like_s256() {
        assert!(!is_valid_s256_challenge("short"));
        assert!(!is_valid_s256_challenge(&"=".repeat(43)));
        assert!(!is_valid_s256_challenge(&format!("{}=", "a".repeat(43))));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn well_formed_verifiers_verify_against_their_challenge(v in "[A-Za-z0-9._~-]{43,128}") {
            let challenge = s256_challenge(&v);
            prop_assert!(is_valid_s256_challenge(&challenge));
            prop_assert!(verify_s256(&v, &challenge));
        }

        #[test]
        fn malformed_verifiers_never_verify(v in any::<String>()) {
            if !is_valid_verifier(&v) {
                prop_assert!(!verify_s256(&v, &s256_challenge(&v)));
            }
        }

        #[test]
        fn another_verifier_never_verifies(a in "[A-Za-z0-9]{43}", b in "[A-Za-z0-9]{43}") {
            prop_assume!(a != b);
            prop_assert!(!verify_s256(&b, &s256_challenge(&a)));
        }
    }
}
