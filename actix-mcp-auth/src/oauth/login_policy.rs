//! Who may log in (proxy mode): the decision taken at the callback, once AuthKit said who the
//! user is and before any grant, code or token exists.
//!
//! The user is an [`UpstreamIdentity`], built from AuthKit's userinfo answer (subject, email,
//! `email_verified`) and from the claims of the access token AuthKit issued us for this login
//! (`org_id`, `role`, `roles`, `permissions`). A [`LoginPolicy`] holds four allow-lists; an empty
//! list restricts nothing. The checks run in this order and the first that fails decides, with a
//! [`Denial`] whose reason a person understands and whose code goes to the audit log:
//!
//! | list | the user passes when | codes |
//! |---|---|---|
//! | email domains | the email's domain is one of them, exactly (case-insensitive; subdomains do **not** match: list `eng.example.com` too), and `email_verified` is not `false` | `email_missing`, `email_unverified`, `email_domain_not_allowed` |
//! | organizations | the token's `org_id` is one of them (exact) | `organization_missing`, `organization_not_allowed` |
//! | roles | **any** of the user's roles (`role` and `roles`) is one of them | `role_not_allowed` |
//! | permissions | the user has **all** of them (`permissions`) | `permission_missing` |
//!
//! The application's own hook, if any, runs after these (the adapter in `proxy::login_policy`
//! bounds it in time and turns a failure into a denial).

use std::{borrow::Cow, fmt};

use base64::{
    Engine,
    engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD},
};
use serde_json::{Map, Value};

/// Who is logging in, as AuthKit describes them: handed to the login policy and to the
/// application's login hook
/// ([`WorkOsProviderBuilder::login_hook`](crate::WorkOsProviderBuilder::login_hook)).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct UpstreamIdentity {
    /// AuthKit's user id (`sub`, e.g. `user_01H...`).
    pub subject: String,
    /// The user's email address (userinfo `email`).
    pub email: Option<String>,
    /// Whether AuthKit verified the email address (userinfo `email_verified`).
    pub email_verified: Option<bool>,
    /// The organization the user signed in to (access token `org_id`).
    pub organization_id: Option<String>,
    /// The user's roles in that organization (access token `role` and `roles`).
    pub roles: Vec<String>,
    /// The user's permissions in that organization (access token `permissions`).
    pub permissions: Vec<String>,
    /// AuthKit's userinfo answer, as received.
    pub profile: Map<String, Value>,
    /// The claims of AuthKit's access token (not the token itself), as received.
    pub claims: Map<String, Value>,
}

impl UpstreamIdentity {
    /// The identity of a userinfo answer (`profile`) and access token `claims`, as the callback
    /// builds it (also handy to unit-test a login hook). `None` without a non-empty `sub` in
    /// `profile`. Claims naming another `sub` than the profile are ignored (an inconsistent
    /// answer grants nothing: organization, roles and permissions are then unknown).
    pub fn from_parts(profile: Map<String, Value>, claims: Map<String, Value>) -> Option<Self> {
        let subject = text(&profile, "sub").filter(|s| !s.is_empty())?;
        let claims = match text(&claims, "sub") {
            Some(sub) if sub != subject => Map::new(),
            _ => claims,
        };
        let mut roles: Vec<String> = text(&claims, "role").into_iter().collect();
        for role in texts(&claims, "roles") {
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        Some(Self {
            email: text(&profile, "email").filter(|e| !e.is_empty()),
            email_verified: profile.get("email_verified").and_then(Value::as_bool),
            organization_id: text(&claims, "org_id").filter(|o| !o.is_empty()),
            permissions: texts(&claims, "permissions"),
            roles,
            subject,
            profile,
            claims,
        })
    }
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn texts(map: &Map<String, Value>, key: &str) -> Vec<String> {
    map.get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The claims of a JWT access token, without checking its signature; an empty map when the
/// token is not a JWT with a JSON object payload.
///
/// Not verified, by choice: the token reaches us in AuthKit's answer to our own
/// client-authenticated request to AuthKit's token endpoint, over TLS, so it cannot have been
/// forged on the way; checking its signature would cost a JWKS fetch from the very server that
/// just sent it and prove nothing more. A token from anywhere else must never go through here.
pub(crate) fn unverified_claims(token: &str) -> Map<String, Value> {
    let mut parts = token.split('.');
    let payload = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(payload), Some(_), None) => payload,
        _ => return Map::new(),
    };
    let engine = if payload.ends_with('=') {
        &URL_SAFE
    } else {
        &URL_SAFE_NO_PAD
    };
    engine
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
        .unwrap_or_default()
}

/// Why a login was refused: a reason for the person, shown to the client as the
/// `error_description` of `access_denied`, and a stable code for the audit log.
///
/// The reason must not contain secrets; characters RFC 6749 forbids in an
/// `error_description` (`"`, `\`, non-ASCII) are replaced by `?` when it is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    code: Cow<'static, str>,
    reason: String,
    /// Set when the check itself failed (hook error or time-out): logged, never shown.
    failure: Option<String>,
}

/// Longest reason sent to the client (characters).
const MAX_REASON_CHARS: usize = 300;
/// Longest audit code (characters).
const MAX_CODE_CHARS: usize = 64;
/// What the person is told when the check could not be made.
const CHECK_FAILED_REASON: &str =
    "Your sign-in could not be checked right now. Please try again in a moment.";

impl Denial {
    /// A refusal with a machine `code` for the audit log (lower-case letters, digits and `_`;
    /// other characters become `_`, at most 64) and a `reason` the person reads, e.g. "Only
    /// members of the Acme support team may use this server." (at most 300 characters).
    pub fn new(code: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        Self {
            code: clean_code(code.into()),
            reason: clean_reason(reason.into()),
            failure: None,
        }
    }

    /// The check could not be made (a database or an API the hook asks was unavailable): the
    /// login is refused all the same (fail closed). `error` is logged at WARN, never shown; the
    /// person is asked to try again, and the audit code is `check_failed`.
    pub fn failed(error: impl fmt::Display) -> Self {
        Self {
            code: Cow::Borrowed("check_failed"),
            reason: CHECK_FAILED_REASON.to_owned(),
            failure: Some(error.to_string()),
        }
    }

    /// The hook did not answer within its time limit.
    pub(crate) fn timed_out() -> Self {
        Self {
            code: Cow::Borrowed("check_timed_out"),
            reason: CHECK_FAILED_REASON.to_owned(),
            failure: Some("the login hook did not answer in time".to_owned()),
        }
    }

    /// The machine code (audit log).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The reason the person reads.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// What went wrong when the check itself failed ([`failed`](Self::failed)).
    pub(crate) fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "login denied ({}): {}", self.code, self.reason)
    }
}

fn clean_code(code: Cow<'static, str>) -> Cow<'static, str> {
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    if !code.is_empty() && code.len() <= MAX_CODE_CHARS && code.chars().all(valid) {
        return code;
    }
    let cleaned: String = code
        .chars()
        .take(MAX_CODE_CHARS)
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if valid(c) { c } else { '_' })
        .collect();
    if cleaned.is_empty() {
        Cow::Borrowed("denied")
    } else {
        Cow::Owned(cleaned)
    }
}

fn clean_reason(reason: String) -> String {
    let reason = reason.trim();
    if reason.is_empty() {
        return "You are not allowed to use this server.".to_owned();
    }
    reason.chars().take(MAX_REASON_CHARS).collect()
}

/// The allow-lists of a login. Empty lists restrict nothing; entries are validated and
/// normalized by [`parse_domain`], [`parse_organization`] and [`parse_name`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LoginPolicy {
    /// Email domains, ASCII (punycode) lower case.
    pub email_domains: Vec<String>,
    /// WorkOS organization ids.
    pub organizations: Vec<String>,
    /// Roles, any of which admits.
    pub roles: Vec<String>,
    /// Permissions, all of which are required.
    pub permissions: Vec<String>,
}

impl LoginPolicy {
    /// Whether no list restricts anything.
    pub fn is_open(&self) -> bool {
        self.email_domains.is_empty()
            && self.organizations.is_empty()
            && self.roles.is_empty()
            && self.permissions.is_empty()
    }

    /// Admits `identity` or says why not (the first failing check, in the module's order).
    pub fn check(&self, identity: &UpstreamIdentity) -> Result<(), Denial> {
        self.check_email(identity)?;
        self.check_organization(identity)?;
        self.check_roles(identity)?;
        self.check_permissions(identity)
    }

    fn check_email(&self, identity: &UpstreamIdentity) -> Result<(), Denial> {
        if self.email_domains.is_empty() {
            return Ok(());
        }
        let allowed = self.allowed_domains();
        let Some(email) = identity.email.as_deref() else {
            return Err(Denial::new(
                "email_missing",
                format!(
                    "Your account has no email address, and only {allowed} may sign in to this server."
                ),
            ));
        };
        if identity.email_verified == Some(false) {
            return Err(Denial::new(
                "email_unverified",
                format!(
                    "Your email address ({email}) is not verified. Verify it, then sign in again."
                ),
            ));
        }
        let domain = email
            .rsplit_once('@')
            .and_then(|(_, domain)| parse_domain(domain).ok());
        if domain.is_some_and(|d| self.email_domains.contains(&d)) {
            return Ok(());
        }
        Err(Denial::new(
            "email_domain_not_allowed",
            format!(
                "Your account ({email}) is not allowed to use this server: only {allowed} may sign in."
            ),
        ))
    }

    /// Who may sign in, as a person reads it: up to three domains named, else a summary.
    fn allowed_domains(&self) -> String {
        match self.email_domains.as_slice() {
            [one] => format!("{one} accounts"),
            [first @ .., last] if self.email_domains.len() <= 3 => {
                format!("{} or {last} accounts", first.join(", "))
            }
            _ => "accounts of approved domains".to_owned(),
        }
    }

    fn check_organization(&self, identity: &UpstreamIdentity) -> Result<(), Denial> {
        if self.organizations.is_empty() {
            return Ok(());
        }
        match identity.organization_id.as_deref() {
            None => Err(Denial::new(
                "organization_missing",
                "You signed in without an organization, and only members of approved organizations may use this server. Sign in through your organization.",
            )),
            Some(org) if self.organizations.iter().any(|o| o == org) => Ok(()),
            Some(org) => Err(Denial::new(
                "organization_not_allowed",
                format!("Your organization ({org}) is not allowed to use this server."),
            )),
        }
    }

    fn check_roles(&self, identity: &UpstreamIdentity) -> Result<(), Denial> {
        if self.roles.is_empty() || identity.roles.iter().any(|r| self.roles.contains(r)) {
            return Ok(());
        }
        let yours = if identity.roles.is_empty() {
            "You have no role".to_owned()
        } else {
            format!("Your role ({})", identity.roles.join(", "))
        };
        Err(Denial::new(
            "role_not_allowed",
            format!(
                "{yours} in this organization, and using this server needs one of these roles: {}.",
                self.roles.join(", ")
            ),
        ))
    }

    fn check_permissions(&self, identity: &UpstreamIdentity) -> Result<(), Denial> {
        let missing: Vec<&str> = self
            .permissions
            .iter()
            .filter(|p| !identity.permissions.contains(p))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let (noun, list) = match missing.as_slice() {
            [one] => ("permission", (*one).to_owned()),
            many => ("permissions", many.join(", ")),
        };
        Err(Denial::new(
            "permission_missing",
            format!("Your account lacks the {noun} {list} needed to use this server."),
        ))
    }
}

/// An allowed email domain: `example.com` (a trailing dot and a leading `@` are tolerated),
/// Unicode or punycode, normalized to lower-case punycode. At least two labels of letters,
/// digits and inner hyphens.
pub(crate) fn parse_domain(entry: &str) -> Result<String, &'static str> {
    const EXPECTED: &str = "is not a domain name (expected e.g. example.com)";
    let entry = entry.trim().trim_start_matches('@').trim_end_matches('.');
    let ascii = idna::domain_to_ascii(entry).map_err(|_| EXPECTED)?;
    let labels: Vec<&str> = ascii.split('.').collect();
    let valid_label = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if labels.len() < 2 || ascii.len() > 253 || !labels.iter().all(valid_label) {
        return Err(EXPECTED);
    }
    Ok(ascii)
}

/// A WorkOS organization id: letters, digits, `_` and `-` (e.g. `org_01H...`).
pub(crate) fn parse_organization(entry: &str) -> Result<String, &'static str> {
    let valid = !entry.is_empty()
        && entry.len() <= 100
        && entry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(entry.to_owned())
    } else {
        Err("is not an organization id (expected e.g. org_01H...)")
    }
}

/// A role or permission slug: visible ASCII without quotes, backslashes or commas (e.g.
/// `admin`, `docs:write`).
pub(crate) fn parse_name(entry: &str) -> Result<String, &'static str> {
    let valid = !entry.is_empty()
        && entry.len() <= 100
        && entry
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b','));
    if valid {
        Ok(entry.to_owned())
    } else {
        Err("is not a role or permission name (visible ASCII, no quotes or commas)")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().expect("an object").clone()
    }

    fn identity(profile: Value, claims: Value) -> UpstreamIdentity {
        UpstreamIdentity::from_parts(object(profile), object(claims)).expect("an identity")
    }

    fn alice(email: &str) -> UpstreamIdentity {
        identity(
            json!({"sub": "user_1", "email": email, "email_verified": true}),
            json!({"sub": "user_1", "org_id": "org_A", "role": "member",
                   "roles": ["member", "editor"], "permissions": ["docs:read", "docs:write"]}),
        )
    }

    fn policy(domains: &[&str], orgs: &[&str], roles: &[&str], perms: &[&str]) -> LoginPolicy {
        let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        LoginPolicy {
            email_domains: domains.iter().map(|d| parse_domain(d).unwrap()).collect(),
            organizations: owned(orgs),
            roles: owned(roles),
            permissions: owned(perms),
        }
    }

    #[track_caller]
    fn denied(result: Result<(), Denial>, code: &str, words: &str) -> Denial {
        let denial = result.expect_err("expected a denial");
        assert_eq!(denial.code(), code, "{denial}");
        assert!(denial.reason().contains(words), "{denial}");
        assert!(denial.failure().is_none());
        denial
    }

    #[test]
    fn the_identity_comes_from_userinfo_and_the_token_claims() {
        let who = alice("alice@example.com");
        assert_eq!(who.subject, "user_1");
        assert_eq!(who.email.as_deref(), Some("alice@example.com"));
        assert_eq!(who.email_verified, Some(true));
        assert_eq!(who.organization_id.as_deref(), Some("org_A"));
        assert_eq!(who.roles, ["member", "editor"], "role and roles, once each");
        assert_eq!(who.permissions, ["docs:read", "docs:write"]);
        assert_eq!(who.claims["org_id"], "org_A");

        // Claims of another subject are ignored; a profile without a subject is no identity.
        let mixed = identity(
            json!({"sub": "user_1", "email": ""}),
            json!({"sub": "user_2", "org_id": "org_A", "roles": ["admin"]}),
        );
        assert_eq!(mixed.organization_id, None);
        assert!(mixed.roles.is_empty() && mixed.claims.is_empty());
        assert_eq!(mixed.email, None, "an empty email is none");
        for profile in [json!({}), json!({"sub": ""}), json!({"sub": 1})] {
            assert!(UpstreamIdentity::from_parts(object(profile), Map::new()).is_none());
        }
    }

    #[test]
    fn claims_are_read_from_the_token_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"user_1","org_id":"org_A"}"#);
        let claims = unverified_claims(&format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln"));
        assert_eq!(claims["org_id"], "org_A");
        let padded = URL_SAFE.encode(br#"{"a":1}"#);
        assert_eq!(unverified_claims(&format!("h.{padded}.s"))["a"], 1);
        let array = URL_SAFE_NO_PAD.encode(b"[1]");
        for opaque in [
            "opaque-token".to_owned(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            "h.!!!.s".to_owned(),
            format!("h.{array}.s"),
        ] {
            assert!(unverified_claims(&opaque).is_empty(), "{opaque}");
        }
    }

    #[test]
    fn an_empty_policy_admits_everyone() {
        let open = LoginPolicy::default();
        assert!(open.is_open());
        assert_eq!(
            open.check(&identity(json!({"sub": "u"}), json!({}))),
            Ok(())
        );
        assert!(!policy(&[], &[], &["admin"], &[]).is_open());
    }

    #[test]
    fn email_domains_match_exactly_and_case_insensitively() {
        let only = policy(&["example.com"], &[], &[], &[]);
        assert_eq!(only.check(&alice("alice@example.com")), Ok(()));
        assert_eq!(only.check(&alice("Alice@EXAMPLE.Com")), Ok(()));
        let denial = denied(
            only.check(&alice("alice@example.org")),
            "email_domain_not_allowed",
            "Your account (alice@example.org) is not allowed to use this server: only example.com accounts may sign in.",
        );
        assert!(!denial.reason().contains('"'));
        // Subdomains and look-alikes do not match.
        for other in [
            "bob@eng.example.com",
            "bob@example.com.evil.org",
            "bob@notexample.com",
            "bob@example.com@evil.org",
            "no-at-sign",
        ] {
            denied(only.check(&alice(other)), "email_domain_not_allowed", other);
        }
        // The last @ separates the domain.
        assert_eq!(only.check(&alice("\"a@b\"@example.com")), Ok(()));
        // Unicode domains compare in their punycode form.
        let idn = policy(&["bücher.example"], &[], &[], &[]);
        assert_eq!(idn.check(&alice("a@xn--bcher-kva.example")), Ok(()));
        assert_eq!(idn.check(&alice("a@BÜCHER.example")), Ok(()));
    }

    #[test]
    fn the_email_must_exist_and_not_be_unverified() {
        let only = policy(&["example.com"], &[], &[], &[]);
        let unverified = identity(
            json!({"sub": "u", "email": "a@example.com", "email_verified": false}),
            json!({}),
        );
        denied(
            only.check(&unverified),
            "email_unverified",
            "is not verified",
        );
        let unknown = identity(json!({"sub": "u", "email": "a@example.com"}), json!({}));
        assert_eq!(only.check(&unknown), Ok(()), "absent is not false");
        let none = identity(json!({"sub": "u"}), json!({}));
        denied(
            only.check(&none),
            "email_missing",
            "only example.com accounts",
        );
        // Without a domain list, neither matters.
        assert_eq!(LoginPolicy::default().check(&unverified), Ok(()));
    }

    #[test]
    fn several_domains_are_named_up_to_three() {
        let two = policy(&["a.example", "b.example"], &[], &[], &[]);
        denied(
            two.check(&alice("x@c.example")),
            "email_domain_not_allowed",
            "only a.example or b.example accounts",
        );
        assert_eq!(two.check(&alice("x@b.example")), Ok(()));
        let four = policy(&["a.ex", "b.ex", "c.ex", "d.ex"], &[], &[], &[]);
        let denial = denied(
            four.check(&alice("x@e.ex")),
            "email_domain_not_allowed",
            "only accounts of approved domains may sign in",
        );
        assert!(!denial.reason().contains("a.ex"));
    }

    #[test]
    fn organizations_must_be_listed() {
        let orgs = policy(&[], &["org_A", "org_B"], &[], &[]);
        assert_eq!(orgs.check(&alice("a@x.example")), Ok(()));
        let other = identity(json!({"sub": "u"}), json!({"org_id": "org_C"}));
        let denial = denied(
            orgs.check(&other),
            "organization_not_allowed",
            "Your organization (org_C) is not allowed",
        );
        assert!(
            !denial.reason().contains("org_A"),
            "allowed ids stay private"
        );
        let lowercase = identity(json!({"sub": "u"}), json!({"org_id": "org_a"}));
        denied(orgs.check(&lowercase), "organization_not_allowed", "org_a");
        let none = identity(json!({"sub": "u"}), json!({}));
        denied(
            orgs.check(&none),
            "organization_missing",
            "without an organization",
        );
    }

    #[test]
    fn any_listed_role_admits() {
        let roles = policy(&[], &[], &["admin", "editor"], &[]);
        assert_eq!(roles.check(&alice("a@x.example")), Ok(()), "editor");
        let member = identity(json!({"sub": "u"}), json!({"role": "member"}));
        denied(
            roles.check(&member),
            "role_not_allowed",
            "Your role (member) in this organization, and using this server needs one of these roles: admin, editor.",
        );
        let none = identity(json!({"sub": "u"}), json!({}));
        denied(roles.check(&none), "role_not_allowed", "You have no role");
        let by_list = identity(json!({"sub": "u"}), json!({"roles": ["viewer", "admin"]}));
        assert_eq!(roles.check(&by_list), Ok(()));
    }

    #[test]
    fn every_listed_permission_is_required() {
        let one = policy(&[], &[], &[], &["docs:write"]);
        assert_eq!(one.check(&alice("a@x.example")), Ok(()));
        let reader = identity(json!({"sub": "u"}), json!({"permissions": ["docs:read"]}));
        denied(
            one.check(&reader),
            "permission_missing",
            "lacks the permission docs:write needed",
        );
        let two = policy(&[], &[], &[], &["docs:read", "docs:write", "admin:all"]);
        denied(
            two.check(&alice("a@x.example")),
            "permission_missing",
            "lacks the permission admin:all needed",
        );
        denied(
            two.check(&reader),
            "permission_missing",
            "permissions docs:write, admin:all",
        );
    }

    #[test]
    fn the_first_failing_check_decides() {
        let all = policy(&["example.com"], &["org_Z"], &["owner"], &["x"]);
        denied(
            all.check(&alice("a@example.org")),
            "email_domain_not_allowed",
            "example.org",
        );
        denied(
            all.check(&alice("a@example.com")),
            "organization_not_allowed",
            "org_A",
        );
        let everything = policy(&["example.com"], &["org_A"], &["editor"], &["docs:read"]);
        assert_eq!(everything.check(&alice("a@example.com")), Ok(()));
    }

    #[test]
    fn denials_keep_codes_and_reasons_tidy() {
        let denial = Denial::new("Not On-List!", "  Only the support team.  ");
        assert_eq!(denial.code(), "not_on_list_");
        assert_eq!(denial.reason(), "Only the support team.");
        assert_eq!(
            denial.to_string(),
            "login denied (not_on_list_): Only the support team."
        );
        assert_eq!(Denial::new("", " ").code(), "denied");
        assert_eq!(
            Denial::new("x", " ").reason(),
            "You are not allowed to use this server."
        );
        assert_eq!(Denial::new("c".repeat(100), "r").code().len(), 64);
        assert_eq!(Denial::new("c", "r".repeat(1000)).reason().len(), 300);
        let failed = Denial::failed("database down");
        assert_eq!(failed.code(), "check_failed");
        assert!(failed.reason().contains("try again"));
        assert!(!failed.reason().contains("database"), "never shown");
        assert_eq!(failed.failure(), Some("database down"));
        assert_eq!(Denial::timed_out().code(), "check_timed_out");
    }

    #[test]
    fn configured_entries_are_validated() {
        assert_eq!(parse_domain("Example.COM").unwrap(), "example.com");
        assert_eq!(parse_domain("@example.com.").unwrap(), "example.com");
        assert_eq!(
            parse_domain("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        for bad in [
            "example",
            "*.example.com",
            "http://example.com",
            "a..example",
            "-a.example",
            "a_b.example",
            "user@example.com",
            "",
        ] {
            assert!(parse_domain(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_organization("org_01H-x").unwrap(), "org_01H-x");
        for bad in ["", "org 1", "org/1", "org;1"] {
            assert!(parse_organization(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_name("docs:write").unwrap(), "docs:write");
        for bad in ["", "a\"b", "a\\b", "a,b", "a b", "é"] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }
}
