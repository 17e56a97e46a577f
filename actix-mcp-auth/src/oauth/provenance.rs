//! What the consent page may truthfully say about a client: how we know it (a registration it
//! made itself, or a metadata document published on a host), its `application_type`
//! (SEP-837), and where its code will go.
//!
//! Nothing here is a verification: a registration's name is self-asserted, and a published
//! document only proves who published it, not who uses it. A public client's document lists
//! loopback redirect URIs that anyone can reuse from their own machine, so a loopback redirect
//! never counts as evidence of the publisher.

use url::{Host, Url};

/// `native` when every redirect URI is loopback `http` or a private-use scheme (an app on the
/// user's device), else `web` (the default of SEP-837 for a missing `application_type`).
pub fn default_application_type(redirect_uris: &[String]) -> &'static str {
    let native = |uri: &String| match Url::parse(uri) {
        Ok(url) => match url.scheme() {
            "http" => is_loopback_url(&url),
            "https" => false,
            _ => true,
        },
        Err(_) => false,
    };
    if !redirect_uris.is_empty() && redirect_uris.iter().all(native) {
        "native"
    } else {
        "web"
    }
}

/// Whether `uri` is an `http` URL on a loopback host (`127.0.0.0/8`, `[::1]`, `localhost`).
pub fn is_loopback_redirect(uri: &str) -> bool {
    Url::parse(uri).is_ok_and(|url| url.scheme() == "http" && is_loopback_url(&url))
}

fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The host that stands for a client in a list of the user's connected apps: the publisher of
/// its metadata document (the client id URL's host, lower case), else the host of its first
/// registered redirect URI (its scheme, `cursor:`, for a private-use URI). `None` when neither
/// gives one.
pub fn client_host(client_id: &str, redirect_uris: &[String]) -> Option<String> {
    publisher_host(client_id).or_else(|| redirect_uris.first().and_then(|u| redirect_host(u)))
}

/// The client id URL's host when the client comes from a metadata document.
fn publisher_host(client_id: &str) -> Option<String> {
    super::cimd::is_url_client_id(client_id)
        .then(|| {
            Url::parse(client_id)
                .ok()?
                .host_str()
                .map(str::to_ascii_lowercase)
        })
        .flatten()
}

/// Host of a redirect URI, or `scheme:` for a private-use URI without one; `None` when it does
/// not parse.
fn redirect_host(redirect_uri: &str) -> Option<String> {
    let url = Url::parse(redirect_uri).ok()?;
    Some(match url.host_str() {
        Some(host) if !host.is_empty() => host.to_owned(),
        _ => format!("{}:", url.scheme()),
    })
}

/// How we learned about a client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientOrigin {
    /// Dynamic client registration: everything, its name included, is self-asserted.
    Registered {
        /// `native` or `web`.
        application_type: String,
    },
    /// A client id metadata document, fetched from `publisher_host`.
    MetadataDocument {
        /// The host of the client id URL (`vscode.dev`).
        publisher_host: String,
        /// `native` or `web`.
        application_type: String,
    },
}

/// Facts about a client and one authorization request, for the consent page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientProvenance {
    /// How we know the client.
    pub origin: ClientOrigin,
    /// Host of the redirect URI of this request (`127.0.0.1`, `app.example.com`), or its scheme
    /// for a private-use URI (`cursor:`); the MCP spec requires showing it.
    pub redirect_host: String,
    /// This request's redirect URI is loopback: the code goes to a program on the user's own
    /// machine, which may be any program, not necessarily the publisher's.
    pub redirect_is_loopback: bool,
    /// Every redirect URI the client has is loopback (the spec asks to warn about it).
    pub all_redirects_loopback: bool,
    /// A `web` client that uses loopback redirect URIs (accepted, shown as such).
    pub web_with_loopback: bool,
}

impl ClientProvenance {
    /// The facts for a client with id `client_id`, recorded `application_type` (derived when
    /// absent), registered `redirect_uris`, and this request's `redirect_uri`.
    pub fn describe(
        client_id: &str,
        application_type: Option<&str>,
        redirect_uris: &[String],
        redirect_uri: &str,
    ) -> Self {
        let application_type = application_type
            .unwrap_or_else(|| default_application_type(redirect_uris))
            .to_owned();
        let redirect_is_loopback = is_loopback_redirect(redirect_uri);
        let all_redirects_loopback =
            !redirect_uris.is_empty() && redirect_uris.iter().all(|u| is_loopback_redirect(u));
        let web_with_loopback =
            application_type == "web" && redirect_uris.iter().any(|u| is_loopback_redirect(u));
        let publisher = publisher_host(client_id);
        let origin = match publisher {
            Some(publisher_host) => ClientOrigin::MetadataDocument {
                publisher_host,
                application_type,
            },
            None => ClientOrigin::Registered { application_type },
        };
        let redirect_host = redirect_host(redirect_uri).unwrap_or_default();
        Self {
            origin,
            redirect_host,
            redirect_is_loopback,
            all_redirects_loopback,
            web_with_loopback,
        }
    }

    /// The publisher's host when the client comes from a metadata document.
    pub fn publisher_host(&self) -> Option<&str> {
        match &self.origin {
            ClientOrigin::MetadataDocument { publisher_host, .. } => Some(publisher_host),
            ClientOrigin::Registered { .. } => None,
        }
    }

    /// Whether the page may call the client "verified": only a metadata-document client whose
    /// code goes to a non-loopback URI (a loopback URI can be reused by any program).
    #[cfg(test)] // only the unit tests call it
    pub fn verified(&self) -> bool {
        self.publisher_host().is_some() && !self.redirect_is_loopback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uris(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn application_type_defaults() {
        assert_eq!(
            default_application_type(&uris(&["http://127.0.0.1:1/cb", "cursor://x/cb"])),
            "native"
        );
        assert_eq!(
            default_application_type(&uris(&["http://localhost/cb", "https://a.example/cb"])),
            "web"
        );
        assert_eq!(default_application_type(&[]), "web");
    }

    #[test]
    fn cimd_client_with_loopback_redirect_is_not_verified() {
        let p = ClientProvenance::describe(
            "https://vscode.dev/oauth/client.json",
            None,
            &uris(&["http://127.0.0.1/cb", "https://vscode.dev/redirect"]),
            "http://127.0.0.1:5555/cb",
        );
        assert_eq!(p.publisher_host(), Some("vscode.dev"));
        assert_eq!(p.redirect_host, "127.0.0.1");
        assert!(p.redirect_is_loopback);
        assert!(!p.all_redirects_loopback);
        assert!(!p.verified());
        assert!(p.web_with_loopback, "mixed URIs: web, with a loopback one");

        let web = ClientProvenance::describe(
            "https://vscode.dev/oauth/client.json",
            Some("web"),
            &uris(&["https://vscode.dev/redirect"]),
            "https://vscode.dev/redirect",
        );
        assert!(web.verified());
        assert_eq!(web.redirect_host, "vscode.dev");
    }

    #[test]
    fn registered_clients_are_self_asserted() {
        let p = ClientProvenance::describe(
            "mcp_client_x",
            Some("web"),
            &uris(&["http://localhost:3000/cb"]),
            "http://localhost:3000/cb",
        );
        assert_eq!(
            p.origin,
            ClientOrigin::Registered {
                application_type: "web".into()
            }
        );
        assert!(p.all_redirects_loopback && p.web_with_loopback && !p.verified());
        let private = ClientProvenance::describe(
            "mcp_client_y",
            None,
            &uris(&["cursor://anysphere/cb"]),
            "cursor://anysphere/cb",
        );
        assert_eq!(private.redirect_host, "anysphere");
        assert!(!private.redirect_is_loopback);
    }

    #[test]
    fn a_client_is_shown_by_its_publisher_or_first_redirect_host() {
        let cimd = "https://VSCode.dev/oauth/client.json";
        assert_eq!(
            client_host(cimd, &uris(&["http://127.0.0.1/cb"])).as_deref(),
            Some("vscode.dev")
        );
        let registered = uris(&["https://app.example:8443/cb", "https://other.example/cb"]);
        assert_eq!(
            client_host("mcp_client_x", &registered).as_deref(),
            Some("app.example")
        );
        assert_eq!(
            client_host("c", &uris(&["com.example.app:/callback"])).as_deref(),
            Some("com.example.app:")
        );
        assert_eq!(client_host("c", &[]), None);
        assert_eq!(client_host("c", &uris(&["not a uri"])), None);
    }
}
