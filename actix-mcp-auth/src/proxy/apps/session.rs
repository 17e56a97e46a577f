//! The connected-apps page's own browser session, kept entirely in sealed cookies.
//!
//! Two cookies, both sealed (AES-256-GCM) with the store's keyring, so every replica sharing the
//! keys can read them and nobody else can read or forge them:
//!
//! * the *login* cookie lives from the redirect to AuthKit until its callback: the `state` we
//!   sent, our PKCE verifier and nonce (15 minutes);
//! * the *session* cookie says who signed in (AuthKit's `sub`), until when, and the CSRF token
//!   the page's forms must carry (1 hour).
//!
//! Nothing here touches actix or the database: the handlers decide with these values.

use serde::{Deserialize, Serialize};

use crate::{
    oauth::tokens::random_value,
    secret::constant_time_eq,
    store::{Keyring, crypto::Sealed},
};

/// How long a signed-in session lasts (seconds).
pub(crate) const SESSION_TTL_SECS: i64 = 60 * 60;
/// How long the AuthKit round trip of a sign-in may take (seconds).
pub(crate) const LOGIN_TTL_SECS: i64 = 15 * 60;
/// Prefix of the `state` of a page sign-in, so the shared callback can tell it from an MCP
/// client's authorization (whose `state` is a transaction id without a dot).
pub(crate) const STATE_PREFIX: &str = "apps.";

const SESSION_AAD: &[u8] = b"actix-mcp-auth/v1\0connected-apps session";
const LOGIN_AAD: &[u8] = b"actix-mcp-auth/v1\0connected-apps login";

/// A signed-in user of the page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Session {
    /// AuthKit's user id.
    pub subject: String,
    /// What the page calls the user (email, else name), if AuthKit said.
    pub display: Option<String>,
    /// The CSRF token the page's forms carry.
    pub csrf: String,
    /// End of the session (unix seconds).
    pub expires_at: i64,
}

impl Session {
    /// A new session for `subject`, from `now`.
    pub(crate) fn new(subject: String, display: Option<String>, now: i64) -> Self {
        Self {
            subject,
            display,
            csrf: random_value(),
            expires_at: now + SESSION_TTL_SECS,
        }
    }

    /// Whether a submitted form's token is this session's (constant time).
    pub(crate) fn csrf_matches(&self, submitted: Option<&str>) -> bool {
        submitted.is_some_and(|s| constant_time_eq(s.as_bytes(), self.csrf.as_bytes()))
    }
}

/// A sign-in between our redirect to AuthKit and its callback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingLogin {
    /// The `state` we sent AuthKit ([`STATE_PREFIX`] + random).
    pub state: String,
    /// Our PKCE verifier for AuthKit.
    pub verifier: String,
    /// The nonce we sent AuthKit.
    pub nonce: String,
    /// The page's own path, where the browser goes once signed in (sealed, so never a place
    /// someone else chose).
    pub return_to: String,
    /// When the attempt expires (unix seconds).
    pub expires_at: i64,
}

impl PendingLogin {
    /// A new sign-in attempt that returns to `return_to`, from `now`.
    pub(crate) fn new(return_to: &str, now: i64) -> Self {
        Self {
            state: format!("{STATE_PREFIX}{}", random_value()),
            verifier: random_value(),
            nonce: random_value(),
            return_to: return_to.to_owned(),
            expires_at: now + LOGIN_TTL_SECS,
        }
    }

    /// Whether AuthKit's callback (`state`) continues this attempt (constant time).
    pub(crate) fn continues(&self, state: &str) -> bool {
        constant_time_eq(state.as_bytes(), self.state.as_bytes())
    }
}

/// Whether a callback's `state` belongs to a page sign-in.
pub(crate) fn is_page_login(state: Option<&str>) -> bool {
    state.is_some_and(|s| s.starts_with(STATE_PREFIX))
}

/// Seals a session into a cookie value.
pub(crate) fn seal_session(keys: &Keyring, session: &Session) -> String {
    seal(keys, SESSION_AAD, session)
}

/// The session in a cookie value, unless forged, from other keys, or expired at `now`.
pub(crate) fn open_session(keys: &Keyring, value: &str, now: i64) -> Option<Session> {
    open::<Session>(keys, SESSION_AAD, value).filter(|s| s.expires_at > now)
}

/// Seals a sign-in attempt into a cookie value.
pub(crate) fn seal_login(keys: &Keyring, login: &PendingLogin) -> String {
    seal(keys, LOGIN_AAD, login)
}

/// The sign-in attempt in a cookie value, unless forged or expired at `now`.
pub(crate) fn open_login(keys: &Keyring, value: &str, now: i64) -> Option<PendingLogin> {
    open::<PendingLogin>(keys, LOGIN_AAD, value).filter(|l| l.expires_at > now)
}

/// `key_id.ciphertext`: both parts are cookie-safe (the id is hex-like, the ciphertext standard
/// base64, which has no dot).
fn seal<T: Serialize>(keys: &Keyring, aad: &[u8], value: &T) -> String {
    let json = serde_json::to_vec(value).expect("plain data serializes");
    let sealed = keys.seal(aad, &json);
    format!("{}.{}", sealed.key_id, sealed.ciphertext)
}

fn open<T: for<'de> Deserialize<'de>>(keys: &Keyring, aad: &[u8], value: &str) -> Option<T> {
    let (key_id, ciphertext) = value.rsplit_once('.')?;
    let sealed = Sealed {
        key_id: key_id.to_owned(),
        ciphertext: ciphertext.to_owned(),
    };
    let json = keys.open(&sealed, aad).ok()?;
    serde_json::from_slice(&json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_with_the_same_keys_until_it_expires() {
        let keys = Keyring::ephemeral();
        let session = Session::new("user_1".into(), Some("a@example.com".into()), 1_000);
        let cookie = seal_session(&keys, &session);
        assert!(!cookie.contains("user_1"), "the subject is not readable");
        assert_eq!(open_session(&keys, &cookie, 1_000), Some(session.clone()));
        assert_eq!(open_session(&keys, &cookie, 1_000 + SESSION_TTL_SECS), None);
        assert_eq!(open_session(&Keyring::ephemeral(), &cookie, 1_000), None);
    }

    #[test]
    fn a_tampered_or_swapped_cookie_does_not_open() {
        let keys = Keyring::ephemeral();
        let session = seal_session(&keys, &Session::new("user_1".into(), None, 0));
        let mut tampered = session.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(open_session(&keys, &tampered, 0), None);
        assert_eq!(open_session(&keys, "garbage", 0), None);
        // A login cookie is not a session, and the other way round.
        let login = seal_login(&keys, &PendingLogin::new("/apps", 0));
        assert_eq!(open_session(&keys, &login, 0), None);
        assert_eq!(open_login(&keys, &session, 0), None);
    }

    #[test]
    fn csrf_and_state_must_match_exactly() {
        let session = Session::new("u".into(), None, 0);
        assert!(session.csrf_matches(Some(&session.csrf.clone())));
        assert!(!session.csrf_matches(Some("other")));
        assert!(!session.csrf_matches(Some("")));
        assert!(!session.csrf_matches(None));
        let login = PendingLogin::new("/apps", 0);
        assert!(login.continues(&login.state.clone()));
        assert!(!login.continues("apps.other"));
        assert!(is_page_login(Some(&login.state)));
        assert!(!is_page_login(Some("txn")));
        assert!(!is_page_login(None));
    }

    #[test]
    fn a_login_attempt_expires() {
        let keys = Keyring::ephemeral();
        let login = PendingLogin::new("/apps", 100);
        let cookie = seal_login(&keys, &login);
        assert_eq!(open_login(&keys, &cookie, 100), Some(login));
        assert_eq!(open_login(&keys, &cookie, 100 + LOGIN_TTL_SECS), None);
    }
}
