//! The browser-binding cookie of an authorization request, and the consent form's CSRF token
//! derived from it.
//!
//! At `/authorize` we set a random cookie named after the request. The consent form must carry
//! a token derived from that cookie (double submit: a cross-site page can neither read the
//! cookie nor compute the token), and AuthKit's callback must arrive in the same browser
//! (the cookie's hash is stored with the request). This defeats the confused-deputy attack in
//! which a victim's browser completes a login an attacker started.

use actix_web::{
    HttpRequest,
    cookie::{Cookie, SameSite, time::Duration as CookieDuration},
};
use sha2::{Digest, Sha256};

use crate::{oauth::tokens::random_value, store::TokenHash};

/// Lifetime of an authorization request, its cookie and its consent form.
pub(crate) const REQUEST_TTL_SECS: i64 = 15 * 60;

/// Cookie name for request `txn_id`: `__Host-` prefixed on https (bound to our exact origin,
/// `Secure`, path `/`).
pub(crate) fn binding_cookie_name(secure: bool, txn_id: &str) -> String {
    let digest = hex(&Sha256::digest(txn_id.as_bytes())[..8]);
    if secure {
        format!("__Host-mcp_auth_{digest}")
    } else {
        format!("mcp_auth_{digest}")
    }
}

/// A new binding secret and its cookie.
pub(crate) fn new_binding(secure: bool, txn_id: &str) -> (String, Cookie<'static>) {
    let secret = random_value();
    let cookie = Cookie::build(binding_cookie_name(secure, txn_id), secret.clone())
        .path("/")
        .http_only(true)
        .secure(secure)
        // Lax: the cookie must come back on the top-level GET from AuthKit to our callback.
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::seconds(REQUEST_TTL_SECS))
        .finish();
    (secret, cookie)
}

/// The cookie that deletes the binding once the request is done.
pub(crate) fn expired_binding(secure: bool, txn_id: &str) -> Cookie<'static> {
    let mut cookie = Cookie::build(binding_cookie_name(secure, txn_id), "")
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .finish();
    cookie.make_removal();
    cookie
}

/// The binding secret the browser sent for request `txn_id`.
pub(crate) fn binding_secret(req: &HttpRequest, secure: bool, txn_id: &str) -> Option<String> {
    req.cookie(&binding_cookie_name(secure, txn_id))
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether the browser's cookie is the one stored (hashed) with the request.
pub(crate) fn binding_matches(secret: Option<&str>, stored: Option<&TokenHash>) -> bool {
    match (secret, stored) {
        (Some(secret), Some(stored)) => &TokenHash::of(secret) == stored,
        _ => false,
    }
}

/// The consent form's CSRF token for request `txn_id`, derived from the binding secret.
pub(crate) fn consent_token(binding_secret: &str, txn_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"mcp-auth consent v1\0");
    hasher.update(binding_secret.as_bytes());
    hasher.update(b"\0");
    hasher.update(txn_id.as_bytes());
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Name of the long-lived cookie identifying this browser for remembered approvals.
pub(crate) fn device_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-mcp_auth_device"
    } else {
        "mcp_auth_device"
    }
}

/// The browser's device id, if it has one.
pub(crate) fn device_secret(req: &HttpRequest, secure: bool) -> Option<String> {
    req.cookie(device_cookie_name(secure))
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// A new device cookie living `max_age_secs`.
pub(crate) fn new_device(secure: bool, max_age_secs: i64) -> (String, Cookie<'static>) {
    let secret = random_value();
    let cookie = Cookie::build(device_cookie_name(secure), secret.clone())
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::seconds(max_age_secs))
        .finish();
    (secret, cookie)
}

/// The key under which a browser's approvals are stored (never the cookie itself).
pub(crate) fn device_subject(secret: &str) -> String {
    format!("device:{}", TokenHash::of(secret).as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_depend_on_the_request_and_https() {
        assert!(binding_cookie_name(true, "t1").starts_with("__Host-mcp_auth_"));
        assert!(binding_cookie_name(false, "t1").starts_with("mcp_auth_"));
        assert_ne!(
            binding_cookie_name(true, "t1"),
            binding_cookie_name(true, "t2")
        );
    }

    #[test]
    fn consent_tokens_bind_secret_and_request() {
        assert_eq!(consent_token("s", "t"), consent_token("s", "t"));
        assert_ne!(consent_token("s", "t"), consent_token("s2", "t"));
        assert_ne!(consent_token("s", "t"), consent_token("s", "t2"));
    }

    #[test]
    fn binding_needs_the_right_cookie() {
        let stored = TokenHash::of("secret");
        assert!(binding_matches(Some("secret"), Some(&stored)));
        assert!(!binding_matches(Some("other"), Some(&stored)));
        assert!(!binding_matches(None, Some(&stored)));
        assert!(!binding_matches(Some("secret"), None));
    }
}
