//! When our consent page is shown, and what the user's answer to it means.
//!
//! The page exists because AuthKit remembers that a user approved *our* Connect application,
//! while every MCP client registered with us is a different party: without it, a malicious
//! client could get a code for a user who once logged in elsewhere (the confused-deputy attack
//! of the MCP security best practices). The form carries a CSRF token derived from the
//! request's browser-binding cookie; its value is the caller's to compute.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{
    error::{ErrorCode, Rejection},
    params::Params,
};

/// The operator's consent settings.
#[derive(Debug, Clone, Copy)]
pub struct ConsentPolicy {
    /// Whether our consent page is shown at all.
    pub required: bool,
    /// How long an approval given with "remember" is reused (zero: never offered).
    pub remember: Duration,
}

impl ConsentPolicy {
    /// Whether a remembered approval may spare the page for a request whose `Sec-Fetch-Site`
    /// header is `sec_fetch_site`: only when remembering is on, and only on a first-party
    /// navigation (a cross-site page must not be able to complete a login silently).
    pub fn may_reuse_approval(&self, sec_fetch_site: Option<&str>) -> bool {
        self.required
            && self.remember_secs().is_some()
            && sec_fetch_site.is_some_and(|v| matches!(v, "none" | "same-origin" | "same-site"))
    }

    /// Whether the page must be shown, given whether a remembered approval covers the request.
    pub fn page_needed(&self, remembered: bool) -> bool {
        self.required && !remembered
    }

    /// How long an approval given with "remember" lasts (seconds), if remembering is on.
    pub fn remember_secs(&self) -> Option<i64> {
        (!self.remember.is_zero())
            .then(|| i64::try_from(self.remember.as_secs()).unwrap_or(i64::MAX / 2))
    }
}

/// The user's answer on the consent form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Allow; `remember` when the user ticked "remember this approval".
    Approve {
        /// Remember the approval for this browser.
        remember: bool,
    },
    /// Deny.
    Deny,
}

/// Why a submitted consent form is refused (shown as a page: the request stays pending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormError {
    /// The CSRF token is missing or wrong.
    BadToken,
    /// Neither approve nor deny.
    InvalidAction,
}

impl FormError {
    /// What the page says.
    pub fn message(self) -> &'static str {
        match self {
            Self::BadToken => "Invalid or expired consent form.",
            Self::InvalidAction => "Invalid action.",
        }
    }
}

/// Reads a submitted consent form whose expected CSRF token is `expected_token`.
pub fn answer(params: &Params, expected_token: &str) -> Result<Answer, FormError> {
    let sent = params.get("csrf_token").unwrap_or_default();
    // Compare digests: equal-length values, no early exit on the secret-derived token.
    if Sha256::digest(sent.as_bytes()) != Sha256::digest(expected_token.as_bytes()) {
        return Err(FormError::BadToken);
    }
    match params.get("action") {
        Some("approve") => Ok(Answer::Approve {
            remember: params.get("remember") == Some("1"),
        }),
        Some("deny") => Ok(Answer::Deny),
        _ => Err(FormError::InvalidAction),
    }
}

/// The error the client receives when the user denies (RFC 6749 §4.1.2.1).
pub fn denied() -> Rejection {
    Rejection::new(ErrorCode::AccessDenied, "the user denied access")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::testing::assert_rejected;

    #[test]
    fn answers_need_the_token_and_a_known_action() {
        let form = |pairs: &[(&str, &str)]| answer(&Params::from_pairs(pairs), "t0ken");
        assert_eq!(
            form(&[("csrf_token", "t0ken"), ("action", "approve")]),
            Ok(Answer::Approve { remember: false })
        );
        assert_eq!(
            form(&[
                ("csrf_token", "t0ken"),
                ("action", "approve"),
                ("remember", "1")
            ]),
            Ok(Answer::Approve { remember: true })
        );
        assert_eq!(
            form(&[
                ("csrf_token", "t0ken"),
                ("action", "approve"),
                ("remember", "yes")
            ]),
            Ok(Answer::Approve { remember: false })
        );
        assert_eq!(
            form(&[("csrf_token", "t0ken"), ("action", "deny")]),
            Ok(Answer::Deny)
        );
        assert_eq!(form(&[("action", "approve")]), Err(FormError::BadToken));
        assert_eq!(
            form(&[("csrf_token", "t0kem"), ("action", "deny")]),
            Err(FormError::BadToken)
        );
        assert_eq!(
            form(&[("csrf_token", "t0ken")]),
            Err(FormError::InvalidAction)
        );
        assert_eq!(
            form(&[("csrf_token", "t0ken"), ("action", "maybe")]),
            Err(FormError::InvalidAction)
        );
        assert_eq!(
            FormError::BadToken.message(),
            "Invalid or expired consent form."
        );
        assert_eq!(FormError::InvalidAction.message(), "Invalid action.");
    }

    #[test]
    fn a_denial_is_access_denied() {
        assert_rejected::<()>(
            Err(denied()),
            ErrorCode::AccessDenied,
            "the user denied access",
        );
    }

    #[test]
    fn remembered_approvals_only_on_first_party_navigations() {
        let policy = |required, secs| ConsentPolicy {
            required,
            remember: Duration::from_secs(secs),
        };
        let on = policy(true, 600);
        for site in ["none", "same-origin", "same-site"] {
            assert!(on.may_reuse_approval(Some(site)), "{site}");
        }
        for site in [None, Some("cross-site"), Some("None")] {
            assert!(!on.may_reuse_approval(site), "{site:?}");
        }
        assert!(!policy(true, 0).may_reuse_approval(Some("none")));
        assert!(!policy(false, 600).may_reuse_approval(Some("none")));
        assert_eq!(on.remember_secs(), Some(600));
        assert_eq!(policy(true, 0).remember_secs(), None);
        assert!(on.page_needed(false));
        assert!(!on.page_needed(true));
        assert!(!policy(false, 0).page_needed(false));
    }
}
