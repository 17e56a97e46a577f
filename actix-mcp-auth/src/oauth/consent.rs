//! Decisions about the consent page that need no web framework: whether a remembered approval
//! still covers a request, what the approval recorded about the client's redirect URIs, where a
//! redirect URI sends the browser, and what each scope means to a person.

use sha2::{Digest, Sha256};
use url::Url;

use super::redirect_uri::is_loopback_host;

/// A digest of a client's registered redirect URIs, independent of their order and
/// duplicates. Stored with a remembered approval: when the client's redirect URIs change (a
/// client metadata document that now lists another one), the digest differs and the user is
/// asked again instead of being sent silently to the new place.
pub fn redirect_uris_digest(redirect_uris: &[String]) -> String {
    let mut uris: Vec<&str> = redirect_uris.iter().map(String::as_str).collect();
    uris.sort_unstable();
    uris.dedup();
    let mut hasher = Sha256::new();
    hasher.update(b"mcp-auth redirect uris v1\0");
    for uri in uris {
        // Length-prefixed, so no two lists hash the same input.
        hasher.update((uri.len() as u64).to_be_bytes());
        hasher.update(uri.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a remembered approval recorded.
#[derive(Clone, Copy, Debug)]
pub struct RememberedApproval<'a> {
    /// The approved scopes.
    pub scopes: &'a [String],
    /// The approved resource.
    pub resource: Option<&'a str>,
    /// [`redirect_uris_digest`] of the client when it was approved (`None` for approvals
    /// recorded before it existed: those never cover a request).
    pub redirect_uris_digest: Option<&'a str>,
}

/// What a new authorization request asks for, and the client's current redirect URIs.
#[derive(Clone, Copy, Debug)]
pub struct ConsentRequest<'a> {
    /// The requested scopes.
    pub scopes: &'a [String],
    /// The requested (canonical) resource.
    pub resource: &'a str,
    /// The client's registered redirect URIs now.
    pub client_redirect_uris: &'a [String],
}

/// Why a remembered approval does or does not let the consent page be skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// Same client, no new scope, same resource, same redirect URIs: skip the page.
    Covered,
    /// The request asks for something the approval did not include.
    NotCovered,
    /// Everything matches except the client's redirect URIs: ask again, and say why.
    RedirectUrisChanged,
}

/// Whether `approval` covers `request` (see [`Reuse`]).
pub fn remembered_reuse(approval: &RememberedApproval<'_>, request: &ConsentRequest<'_>) -> Reuse {
    let same_request = super::scope::is_subset(request.scopes, approval.scopes)
        && approval.resource == Some(request.resource);
    if !same_request {
        return Reuse::NotCovered;
    }
    let now = redirect_uris_digest(request.client_redirect_uris);
    match approval.redirect_uris_digest {
        Some(then) if then == now => Reuse::Covered,
        _ => Reuse::RedirectUrisChanged,
    }
}

/// Where a redirect URI sends the browser, for the consent page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The host as the browser will contact it: ASCII (punycode for international names), or
    /// the scheme (`cursor:`) for an app's private-use URI.
    pub host: String,
    /// The Unicode form of an internationalized host, when it differs from `host`.
    pub host_unicode: Option<String>,
    /// The full URI, shown second.
    pub uri: String,
    /// What kind of place it is.
    pub kind: DestinationKind,
}

/// The kind of place a redirect URI points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestinationKind {
    /// A web site.
    Web,
    /// A program on this computer (a loopback address).
    ThisComputer,
    /// An app on this device that registered a URI scheme.
    App,
}

/// Where `redirect_uri` sends the browser. The host comes from the URL parser, the same one
/// that builds the redirect, so the page shows where the browser really goes.
pub fn destination(redirect_uri: &str) -> Destination {
    let Ok(url) = Url::parse(redirect_uri) else {
        return Destination {
            host: redirect_uri.to_owned(),
            host_unicode: None,
            uri: redirect_uri.to_owned(),
            kind: DestinationKind::Web,
        };
    };
    let (host, kind) = match url.host_str() {
        Some(_) if is_loopback_host(&url) => (host_and_port(&url), DestinationKind::ThisComputer),
        Some(_) if matches!(url.scheme(), "http" | "https") => {
            (host_and_port(&url), DestinationKind::Web)
        }
        _ => (format!("{}:", url.scheme()), DestinationKind::App),
    };
    Destination {
        host,
        host_unicode: None,
        uri: url.to_string(),
        kind,
    }
}

fn host_and_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Whether every one of `redirect_uris` is a loopback URI: then any program on the user's
/// computer can receive the code, whatever the client's name claims.
#[cfg(test)] // only the unit tests call it
pub fn all_loopback(redirect_uris: &[String]) -> bool {
    !redirect_uris.is_empty()
        && redirect_uris.iter().all(|uri| {
            Url::parse(uri).is_ok_and(|u| u.host_str().is_some() && is_loopback_host(&u))
        })
}

/// A scope as a person reads it: a short title and a one-line meaning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeMeaning {
    /// The scope as requested.
    pub scope: String,
    /// A short title ("Stay signed in").
    pub title: String,
    /// One line saying what it allows.
    pub meaning: String,
}

/// The meaning of `scope` on a server called `server_name`.
pub fn scope_meaning(scope: &str, server_name: &str) -> ScopeMeaning {
    let (title, meaning) = match scope {
        "offline_access" => (
            "Stay signed in".to_owned(),
            "Keep access when you are not using it, until you sign out or revoke it.".to_owned(),
        ),
        "openid" => (
            "Confirm who you are".to_owned(),
            "Learn your account identifier.".to_owned(),
        ),
        "profile" => (
            "See your profile".to_owned(),
            "Your name and profile picture.".to_owned(),
        ),
        "email" => (
            "See your email address".to_owned(),
            "The address of your account.".to_owned(),
        ),
        other => (
            other.to_owned(),
            format!("A permission defined by {server_name}."),
        ),
    };
    ScopeMeaning {
        scope: scope.to_owned(),
        title,
        meaning,
    }
}

/// "30 days", "12 hours", "45 minutes": how long a remembered approval lasts, in words.
pub fn duration_words(seconds: u64) -> String {
    let (count, unit) = match seconds {
        s if s >= 2 * 86_400 => (s / 86_400, "days"),
        s if s >= 86_400 => (1, "day"),
        s if s >= 2 * 3_600 => (s / 3_600, "hours"),
        s if s >= 3_600 => (1, "hour"),
        s if s >= 120 => (s / 60, "minutes"),
        _ => (
            seconds.max(1),
            if seconds > 1 { "seconds" } else { "second" },
        ),
    };
    format!("{count} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn redirect_digests_ignore_order_and_duplicates_only() {
        let a = redirect_uris_digest(&v(&["http://127.0.0.1/cb", "https://a.example/cb"]));
        assert_eq!(
            a,
            redirect_uris_digest(&v(&[
                "https://a.example/cb",
                "http://127.0.0.1/cb",
                "https://a.example/cb"
            ]))
        );
        assert_ne!(a, redirect_uris_digest(&v(&["http://127.0.0.1/cb"])));
        assert_ne!(
            redirect_uris_digest(&v(&["ab", "c"])),
            redirect_uris_digest(&v(&["a", "bc"]))
        );
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn a_remembered_approval_is_reused_only_for_the_same_redirect_uris() {
        let uris = v(&["http://127.0.0.1:9/cb"]);
        let digest = redirect_uris_digest(&uris);
        let approved = v(&["offline_access", "mcp:read"]);
        let approval = RememberedApproval {
            scopes: &approved,
            resource: Some("https://mcp.example/mcp"),
            redirect_uris_digest: Some(&digest),
        };
        let asked = v(&["mcp:read"]);
        let request = ConsentRequest {
            scopes: &asked,
            resource: "https://mcp.example/mcp",
            client_redirect_uris: &uris,
        };
        assert_eq!(remembered_reuse(&approval, &request), Reuse::Covered);

        let changed = v(&["http://127.0.0.1:9/cb", "https://evil.example/cb"]);
        let moved = ConsentRequest {
            client_redirect_uris: &changed,
            ..request
        };
        assert_eq!(
            remembered_reuse(&approval, &moved),
            Reuse::RedirectUrisChanged
        );
        let legacy = RememberedApproval {
            redirect_uris_digest: None,
            ..approval
        };
        assert_eq!(
            remembered_reuse(&legacy, &request),
            Reuse::RedirectUrisChanged
        );

        let more = v(&["mcp:write"]);
        let wider = ConsentRequest {
            scopes: &more,
            ..request
        };
        assert_eq!(remembered_reuse(&approval, &wider), Reuse::NotCovered);
        let elsewhere = ConsentRequest {
            resource: "https://other.example/mcp",
            ..request
        };
        assert_eq!(remembered_reuse(&approval, &elsewhere), Reuse::NotCovered);
    }

    #[test]
    fn destinations_name_the_host_the_browser_contacts() {
        let d = destination("https://app.example/cb?x=1");
        assert_eq!(d.host, "app.example");
        assert_eq!(d.kind, DestinationKind::Web);
        assert_eq!(d.uri, "https://app.example/cb?x=1");
        let d = destination("http://127.0.0.1:33418/callback");
        assert_eq!(d.host, "127.0.0.1:33418");
        assert_eq!(d.kind, DestinationKind::ThisComputer);
        assert_eq!(
            destination("http://[::1]:8/cb").kind,
            DestinationKind::ThisComputer
        );
        assert_eq!(
            destination("http://localhost/cb").kind,
            DestinationKind::ThisComputer
        );
        let d = destination("cursor://anysphere.cursor-retrieval/oauth/callback");
        assert_eq!(d.host, "cursor:");
        assert_eq!(d.kind, DestinationKind::App);
        // What the browser contacts, not what the string seems to say.
        assert_eq!(
            destination("https://evil.example\\@app.example/cb").host,
            "evil.example"
        );
        assert_eq!(
            destination("https://bücher.example/cb").host,
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn loopback_only_clients_are_recognised() {
        assert!(all_loopback(&v(&[
            "http://127.0.0.1/cb",
            "http://localhost:3/x"
        ])));
        assert!(!all_loopback(&v(&[
            "http://127.0.0.1/cb",
            "https://a.example/cb"
        ])));
        assert!(!all_loopback(&v(&["cursor://cb"])));
        assert!(!all_loopback(&[]));
    }

    #[test]
    fn scopes_have_meanings() {
        assert_eq!(scope_meaning("offline_access", "S").title, "Stay signed in");
        let custom = scope_meaning("mcp:read", "Acme");
        assert_eq!(custom.title, "mcp:read");
        assert!(custom.meaning.contains("Acme"));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_words(30 * 86_400), "30 days");
        assert_eq!(duration_words(86_400), "1 day");
        assert_eq!(duration_words(3 * 3_600), "3 hours");
        assert_eq!(duration_words(3_600), "1 hour");
        assert_eq!(duration_words(600), "10 minutes");
        assert_eq!(duration_words(1), "1 second");
    }
}
