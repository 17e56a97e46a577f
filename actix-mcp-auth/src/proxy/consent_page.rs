//! The consent page's content ([`ConsentView`]) and its HTML, in one place and free of actix:
//! the handler fills the view from the request, the client and the settings; [`render`] turns
//! it into markup (everything escaped, names isolated with `<bdi>` so right-to-left text cannot
//! reorder the sentence around it).
//!
//! The page answers, in this order: who is asking (and how much that name can be trusted), what
//! it gets, where the browser goes next; then the two buttons, with nothing pre-focused and
//! "Deny" first in keyboard order.

use super::html::escape;
use crate::oauth::{
    consent::{Destination, DestinationKind, ScopeMeaning, duration_words},
    provenance::ClientProvenance,
};

/// How we know the client's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Provenance {
    /// Chosen by the client itself at dynamic registration: anyone can claim any name.
    SelfAsserted,
    /// From a client ID metadata document (CIMD) published at `host`.
    MetadataDocument {
        /// The host serving the document (the client id's host).
        host: String,
    },
}

impl Provenance {
    /// The provenance the page shows for a client described by `described` (see
    /// [`ClientProvenance::describe`]): a metadata-document client is named by its publisher's
    /// host; a registered client's name is self-asserted.
    pub(crate) fn of(described: &ClientProvenance) -> Self {
        match described.publisher_host() {
            Some(host) => Self::MetadataDocument {
                host: host.to_owned(),
            },
            None => Self::SelfAsserted,
        }
    }
}

/// Who is asking.
#[derive(Clone, Debug)]
pub(crate) struct ClientView {
    /// The client's name, if it gave one.
    pub name: Option<String>,
    /// The client id (shown small, for support).
    pub client_id: String,
    /// Where the name comes from.
    pub provenance: Provenance,
    /// Registered as `application_type` `web` but with loopback redirect URIs.
    pub web_with_loopback: bool,
    /// Every registered redirect URI is loopback.
    pub all_redirects_loopback: bool,
}

/// This server, as the page presents it.
#[derive(Clone, Debug)]
pub(crate) struct ServerView {
    /// Display name.
    pub name: String,
    /// The MCP endpoint the client gets access to.
    pub resource_url: String,
    /// Same-origin URL of the icon, if one is configured.
    pub icon_url: Option<String>,
}

/// The form's fixed fields.
#[derive(Clone, Debug)]
pub(crate) struct FormView {
    pub action: String,
    pub txn_id: String,
    pub csrf_token: String,
}

/// Everything the consent page shows.
#[derive(Clone, Debug)]
pub(crate) struct ConsentView {
    pub server: ServerView,
    pub client: ClientView,
    /// Each requested scope with its meaning.
    pub scopes: Vec<ScopeMeaning>,
    /// Where the browser is sent after the login.
    pub destination: Destination,
    /// How long "remember" lasts, in seconds, when it is offered.
    pub remember_seconds: Option<u64>,
    /// This browser approved the client before, but the client's redirect URIs changed since.
    pub redirects_changed: bool,
    pub form: FormView,
}

/// How the page labels the client's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IdentityLabel {
    /// "Unverified": a self-chosen name.
    Unverified,
    /// "Verified by host": a metadata document on a web host, with web redirect URIs.
    VerifiedBy(String),
    /// "From host": a metadata document, but the code goes to this computer, where any program
    /// can pose as the client.
    From(String),
}

/// The identity label of `client` (never "verified" when its codes go to loopback addresses).
pub(crate) fn identity_label(client: &ClientView, destination: &Destination) -> IdentityLabel {
    match &client.provenance {
        Provenance::SelfAsserted => IdentityLabel::Unverified,
        Provenance::MetadataDocument { host }
            if client.all_redirects_loopback
                || destination.kind == DestinationKind::ThisComputer =>
        {
            IdentityLabel::From(host.clone())
        }
        Provenance::MetadataDocument { host } => IdentityLabel::VerifiedBy(host.clone()),
    }
}

/// The page's title (the browser tab).
pub(crate) fn title(view: &ConsentView) -> String {
    format!("Allow access to {}?", view.server.name)
}

/// The first letter of the server's name, for the icon placeholder.
fn monogram(name: &str) -> String {
    name.chars()
        .find(|c| c.is_alphanumeric())
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_else(|| "?".to_owned())
}

/// The header naming this server (icon or monogram, name, MCP URL); shared with the
/// connected-apps page.
pub(crate) fn brand(server: &ServerView) -> String {
    let icon = match &server.icon_url {
        Some(url) => format!(
            "<img src=\"{}\" alt=\"\" width=\"40\" height=\"40\">",
            escape(url)
        ),
        None => format!(
            "<span class=\"monogram\" aria-hidden=\"true\">{}</span>",
            escape(&monogram(&server.name))
        ),
    };
    format!(
        "<header class=\"brand\">{icon}<div class=\"brand-text\">\
         <p class=\"brand-name\">{name}</p><p class=\"brand-url\">{url}</p></div></header>",
        name = escape(&server.name),
        url = escape(&server.resource_url),
    )
}

fn who(view: &ConsentView) -> String {
    let name = match view.client.name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => {
            format!("<bdi class=\"client\" dir=\"auto\">{}</bdi>", escape(name))
        }
        _ => "<span class=\"client\">An unnamed application</span>".to_owned(),
    };
    let badge = match identity_label(&view.client, &view.destination) {
        IdentityLabel::Unverified => "<p class=\"badge\">Unverified: the application chose this \
                                      name itself</p>"
            .to_owned(),
        IdentityLabel::VerifiedBy(host) => format!(
            "<p class=\"badge info\">Verified by <bdi>{}</bdi></p>",
            escape(&host)
        ),
        IdentityLabel::From(host) => format!(
            "<p class=\"badge\">From <bdi>{}</bdi>, not verified: it signs in on this \
             computer</p>",
            escape(&host)
        ),
    };
    format!(
        "<h1>{name} wants to access your {server} account</h1>{badge}",
        server = escape(&view.server.name),
    )
}

fn notices(view: &ConsentView) -> String {
    let mut out = String::new();
    if view.redirects_changed {
        out.push_str(
            "<p class=\"notice\" role=\"status\">You approved this application before in this \
             browser, but it has changed where it sends you since. Check where you will be \
             sent before you allow it again.</p>",
        );
    }
    // The spec asks to warn when every redirect URI is loopback: the code goes to whatever
    // program listens on this computer, so the name proves nothing.
    if view.client.all_redirects_loopback {
        out.push_str(
            "<p class=\"notice\">This application receives your sign-in on this computer. Any \
             program running here could use its name: allow only if you just started it \
             yourself.</p>",
        );
    }
    if view.client.web_with_loopback {
        out.push_str(
            "<p class=\"notice info\">It registered as a web application, yet it receives your \
             sign-in on this computer.</p>",
        );
    }
    out
}

fn gets(view: &ConsentView) -> String {
    let mut items = format!(
        "<li><strong>Use {server} as you</strong><span>{url}</span></li>",
        server = escape(&view.server.name),
        url = escape(&view.server.resource_url),
    );
    for scope in &view.scopes {
        let code = if scope.title == scope.scope {
            String::new()
        } else {
            format!(" <code>{}</code>", escape(&scope.scope))
        };
        items.push_str(&format!(
            "<li><strong>{title}</strong><span>{meaning}{code}</span></li>",
            title = escape(&scope.title),
            meaning = escape(&scope.meaning),
        ));
    }
    format!(
        "<section aria-labelledby=\"gets\"><h2 id=\"gets\">It will be able to</h2>\
         <ul class=\"list\">{items}</ul></section>"
    )
}

fn destination(view: &ConsentView) -> String {
    let d = &view.destination;
    let kind = match d.kind {
        DestinationKind::Web => "A website",
        DestinationKind::ThisComputer => "A program on this computer",
        DestinationKind::App => "An app on this device",
    };
    let unicode = d
        .host_unicode
        .as_deref()
        .filter(|u| *u != d.host)
        .map(|u| {
            format!(
                "<p class=\"uri\">Shown as <bdi>{}</bdi> (international name)</p>",
                escape(u)
            )
        })
        .unwrap_or_default();
    format!(
        "<section aria-labelledby=\"dest\"><h2 id=\"dest\">Then you will be sent to</h2>\
         <div class=\"dest\"><p class=\"muted small\">{kind}</p>\
         <p class=\"host\">{host}</p>{unicode}<p class=\"uri\"><code>{uri}</code></p></div>\
         </section>",
        host = escape(&d.host),
        uri = escape(&d.uri),
    )
}

fn form(view: &ConsentView) -> String {
    let remember = view
        .remember_seconds
        .map(|seconds| {
            format!(
                "<label class=\"remember\"><input type=\"checkbox\" name=\"remember\" \
                 value=\"1\"><span><strong>Remember my choice for {duration}</strong>\
                 <span class=\"hint\">In this browser, for this application and these permissions. You will \
                 be asked again if it asks for more or changes where it sends you.</span>\
                 </span></label>",
                duration = escape(&duration_words(seconds)),
            )
        })
        .unwrap_or_default();
    format!(
        "<form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"txn_id\" value=\"{txn}\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         {remember}\
         <div class=\"actions\">\
         <button type=\"submit\" name=\"action\" value=\"deny\">Deny</button>\
         <button type=\"submit\" name=\"action\" value=\"approve\" class=\"primary\">Allow\
         </button></div></form>",
        action = escape(&view.form.action),
        txn = escape(&view.form.txn_id),
        csrf = escape(&view.form.csrf_token),
    )
}

/// The page's markup (inside the layout's card).
pub(crate) fn render(view: &ConsentView) -> String {
    format!(
        "{brand}{who}{notices}{gets}{destination}\
         <p class=\"caution\">Allow only if you started this connection yourself and trust this \
         application. You will sign in on the next page.</p>\
         {form}\
         <p class=\"foot\">Client ID <code>{client_id}</code></p>",
        brand = brand(&view.server),
        who = who(view),
        notices = notices(view),
        gets = gets(view),
        destination = destination(view),
        form = form(view),
        client_id = escape(&view.client.client_id),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::consent::{destination as dest_of, scope_meaning};

    pub(crate) fn view(name: Option<&str>) -> ConsentView {
        ConsentView {
            server: ServerView {
                name: "Acme MCP".into(),
                resource_url: "https://mcp.acme.example/mcp".into(),
                icon_url: None,
            },
            client: ClientView {
                name: name.map(str::to_owned),
                client_id: "mcp_client_1".into(),
                provenance: Provenance::SelfAsserted,
                web_with_loopback: false,
                all_redirects_loopback: true,
            },
            scopes: vec![scope_meaning("offline_access", "Acme MCP")],
            destination: dest_of("http://127.0.0.1:9999/callback"),
            remember_seconds: None,
            redirects_changed: false,
            form: FormView {
                action: "/consent".into(),
                txn_id: "t1".into(),
                csrf_token: "c1".into(),
            },
        }
    }

    #[test]
    fn shows_who_what_and_where_in_that_order() {
        let html = render(&view(Some("Claude Code")));
        let at = |s: &str| html.find(s).unwrap_or_else(|| panic!("{s} in {html}"));
        assert!(at("Claude Code") < at("It will be able to"));
        assert!(at("It will be able to") < at("Then you will be sent to"));
        assert!(at("Then you will be sent to") < at("value=\"deny\""));
        assert!(at("value=\"deny\"") < at("value=\"approve\""), "Deny first");
        assert!(html.contains("Unverified"));
        assert!(html.contains("Stay signed in"));
        assert!(html.contains("<code>offline_access</code>"));
        assert!(html.contains("<p class=\"host\">127.0.0.1:9999</p>"));
        assert!(html.contains("http://127.0.0.1:9999/callback"));
        assert!(!html.contains("autofocus"));
        assert!(!html.contains("name=\"remember\""));
    }

    #[test]
    fn client_input_is_escaped_and_isolated() {
        let html = render(&view(Some("<img src=x onerror=alert(1)> \u{202e}evil")));
        assert!(!html.contains("<img src=x"));
        assert!(html.contains("<bdi class=\"client\" dir=\"auto\">&lt;img src=x"));
        let html = render(&view(Some("   ")));
        assert!(html.contains("An unnamed application"));
    }

    #[test]
    fn provenance_follows_the_client_id() {
        let of = |client_id: &str| {
            Provenance::of(&ClientProvenance::describe(
                client_id,
                None,
                &["https://vscode.dev/redirect".to_owned()],
                "https://vscode.dev/redirect",
            ))
        };
        assert_eq!(of("mcp_client_01abc"), Provenance::SelfAsserted);
        assert_eq!(
            of("https://vscode.dev/oauth/client-metadata.json"),
            Provenance::MetadataDocument {
                host: "vscode.dev".into()
            }
        );
    }

    #[test]
    fn metadata_documents_are_verified_only_off_loopback() {
        let mut v = view(Some("VS Code"));
        v.client.provenance = Provenance::MetadataDocument {
            host: "vscode.dev".into(),
        };
        assert_eq!(
            identity_label(&v.client, &v.destination),
            IdentityLabel::From("vscode.dev".into())
        );
        let html = render(&v);
        assert!(html.contains("From <bdi>vscode.dev</bdi>"));
        assert!(html.contains("Any program running here"));
        v.client.all_redirects_loopback = false;
        v.destination = dest_of("https://vscode.dev/redirect");
        assert_eq!(
            identity_label(&v.client, &v.destination),
            IdentityLabel::VerifiedBy("vscode.dev".into())
        );
        assert!(render(&v).contains("Verified by <bdi>vscode.dev</bdi>"));
    }

    #[test]
    fn remember_and_changed_redirects_are_explained() {
        let mut v = view(Some("C"));
        v.remember_seconds = Some(30 * 86_400);
        v.redirects_changed = true;
        v.client.web_with_loopback = true;
        let html = render(&v);
        assert!(html.contains("Remember my choice for 30 days"));
        assert!(html.contains("name=\"remember\" value=\"1\""));
        assert!(html.contains("changed where it sends you"));
        assert!(html.contains("registered as a web application"));
    }

    #[test]
    fn an_icon_is_an_image_else_a_monogram() {
        let mut v = view(None);
        assert!(render(&v).contains("<span class=\"monogram\" aria-hidden=\"true\">A</span>"));
        v.server.icon_url = Some("/branding/icon".into());
        assert!(render(&v).contains("<img src=\"/branding/icon\" alt=\"\""));
        assert_eq!(monogram("  ünïcode"), "Ü");
        assert_eq!(monogram("--"), "?");
    }
}
