//! The connected-apps page's HTML, free of actix: the handler fills [`AppsView`], [`render`]
//! turns it into markup with the consent page's look (same stylesheet and header). Everything
//! interpolated is escaped; client names are self-asserted, so they are shown as such, beside
//! the host that stands for the client.

use crate::{
    oauth::{consent::duration_words, display::strip_unsafe_for_display},
    proxy::{
        consent_page::{ServerView, brand},
        html::escape,
    },
};

/// One connected app (a live grant) as the page lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AppView {
    /// The grant the revoke button ends.
    pub grant_id: String,
    /// The client's self-asserted name, if any.
    pub name: Option<String>,
    /// The host standing for the client, if known.
    pub host: Option<String>,
    /// The client id (small print, for support).
    pub client_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Seconds since the user authorized it.
    pub authorized_ago: u64,
    /// Seconds since a token was last issued or used, if ever.
    pub used_ago: Option<u64>,
}

/// Everything the page shows.
#[derive(Clone, Debug)]
pub(crate) struct AppsView {
    /// This server.
    pub server: ServerView,
    /// Who is signed in (email or name, else the user id).
    pub user: String,
    /// The live grants, newest first.
    pub apps: Vec<AppView>,
    /// A confirmation to show at the top (e.g. after a revocation).
    pub notice: Option<String>,
    /// Where the revoke forms post.
    pub revoke_action: String,
    /// Where the sign-out form posts.
    pub sign_out_action: String,
    /// The session's CSRF token, carried by every form.
    pub csrf: String,
}

/// The page title.
pub(crate) const TITLE: &str = "Connected apps";

/// The whole page body.
pub(crate) fn render(view: &AppsView) -> String {
    let notice = view
        .notice
        .as_deref()
        .map(|n| format!("<p class=\"notice info\" role=\"status\">{}</p>", escape(n)))
        .unwrap_or_default();
    let list = if view.apps.is_empty() {
        "<p class=\"muted\" id=\"no-apps\">No apps can use this server on your behalf.</p>"
            .to_owned()
    } else {
        let items: String = view.apps.iter().map(|app| item(app, view)).collect();
        format!("<ul class=\"list apps\">{items}</ul>")
    };
    format!(
        "{brand}<h1>{TITLE}</h1>\
         <p class=\"lead\">Signed in as <strong><bdi>{user}</bdi></strong>. These apps can use \
         this server on your behalf until you revoke them; a revoked app must ask you again.</p>\
         {notice}<h2>Apps with access</h2>{list}\
         <form method=\"post\" action=\"{sign_out}\" class=\"actions\">{csrf}\
         <button type=\"submit\" id=\"sign-out\">Sign out</button></form>",
        brand = brand(&view.server),
        user = escape(&view.user),
        sign_out = escape(&view.sign_out_action),
        csrf = csrf_field(&view.csrf),
    )
}

fn item(app: &AppView, view: &AppsView) -> String {
    let name = app
        .name
        .as_deref()
        .map(|n| strip_unsafe_for_display(n).into_owned())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "Unnamed app".to_owned());
    let host = app
        .host
        .as_deref()
        .map(|h| format!(" <span>at <bdi>{}</bdi></span>", escape(h)))
        .unwrap_or_default();
    let scopes = if app.scopes.is_empty() {
        "no scopes".to_owned()
    } else {
        app.scopes
            .iter()
            .map(|s| format!("<code>{}</code>", escape(s)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let used = match app.used_ago {
        Some(ago) => format!("last used {} ago", duration_words(ago)),
        None => "not used yet".to_owned(),
    };
    format!(
        "<li class=\"app\" data-grant=\"{grant}\"><strong><bdi>{name}</bdi> \
         <span class=\"muted small\">(name chosen by the app)</span></strong>{host}\
         <span>Access: {scopes}</span>\
         <span>Authorized {authorized} ago, {used}</span>\
         <span class=\"small\">Client id <code>{client_id}</code></span>\
         <form method=\"post\" action=\"{action}\">{csrf}\
         <input type=\"hidden\" name=\"grant_id\" value=\"{grant}\">\
         <button type=\"submit\" class=\"revoke\">Revoke <bdi>{name}</bdi></button></form></li>",
        grant = escape(&app.grant_id),
        name = escape(&name),
        authorized = duration_words(app.authorized_ago),
        client_id = escape(&app.client_id),
        action = escape(&view.revoke_action),
        csrf = csrf_field(&view.csrf),
    )
}

/// The body of the page's own error pages: what happened, and a link back to the page (which
/// signs the user in again if need be), rather than the OAuth pages' advice about an MCP app.
pub(crate) fn problem(message: &str, page: &str) -> String {
    format!(
        "<div class=\"status-icon\" aria-hidden=\"true\">!</div><h1>{TITLE}</h1>\
         <p class=\"lead\">{message}</p>\
         <p><a id=\"open-page\" href=\"{page}\">Open the connected-apps page</a></p>",
        message = escape(message),
        page = escape(page),
    )
}

fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">",
        escape(csrf)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(apps: Vec<AppView>) -> AppsView {
        AppsView {
            server: ServerView {
                name: "Acme MCP".into(),
                resource_url: "https://mcp.acme.test/mcp".into(),
                icon_url: None,
            },
            user: "ada@acme.test".into(),
            apps,
            notice: None,
            revoke_action: "/connected-apps/revoke".into(),
            sign_out_action: "/connected-apps/sign-out".into(),
            csrf: "tok".into(),
        }
    }

    fn app(name: Option<&str>) -> AppView {
        AppView {
            grant_id: "g1".into(),
            name: name.map(str::to_owned),
            host: Some("client.example".into()),
            client_id: "mcp_client_1".into(),
            scopes: vec!["mcp".into(), "mcp:admin".into()],
            authorized_ago: 3 * 86_400,
            used_ago: Some(300),
        }
    }

    #[test]
    fn lists_each_app_with_a_revoke_form_carrying_the_csrf_token() {
        let html = render(&view(vec![app(Some("Claude"))]));
        assert!(html.contains("Claude"));
        assert!(html.contains("client.example"));
        assert!(html.contains("<code>mcp:admin</code>"));
        assert!(html.contains("Authorized 3 days ago, last used 5 minutes ago"));
        assert!(html.contains("name=\"grant_id\" value=\"g1\""));
        assert_eq!(html.matches("name=\"csrf_token\" value=\"tok\"").count(), 2);
        assert!(!html.contains("no-apps"));
    }

    #[test]
    fn escapes_what_the_client_chose() {
        let html = render(&view(vec![app(Some("<script>x</script>\u{202e}"))]));
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains('\u{202e}'));
    }

    #[test]
    fn says_when_nothing_is_connected_and_names_unnamed_apps() {
        assert!(render(&view(vec![])).contains("id=\"no-apps\""));
        let mut unnamed = app(None);
        unnamed.used_ago = None;
        let html = render(&view(vec![unnamed]));
        assert!(html.contains("Unnamed app"));
        assert!(html.contains("not used yet"));
    }

    #[test]
    fn problems_link_back_to_the_page_escaped() {
        let html = problem("<b>gone</b>", "/a\"b");
        assert!(html.contains("&lt;b&gt;gone&lt;/b&gt;"));
        assert!(html.contains("href=\"/a&quot;b\""));
    }
}
