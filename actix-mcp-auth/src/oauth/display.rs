//! What a page may show of client-supplied values, so that what the user reads is what happens.
//!
//! Two problems, two helpers:
//!
//! * a redirect URI's text can hide its real host (Unicode look-alikes such as a Cyrillic `а`
//!   in `аpp.example`, which the browser sends to the punycode host `xn--pp-6kc.example`).
//!   [`redirect_uri_display`] gives the parsed URI split around its host, the host in ASCII
//!   (punycode) to emphasise, and, for an internationalized host, its Unicode form to show
//!   beside it, marked as such;
//! * free text (a client name) can carry control characters and bidirectional-override
//!   characters (U+202E turns `moc.elpmaxe` into what reads as `example.com`).
//!   [`is_unsafe_for_display`] names them (registration refuses them) and
//!   [`strip_unsafe_for_display`] removes them from anything stored before that rule.
//!
//! Plain functions without any web framework: the consent page uses them and so can any other
//! page that shows a client's values.

use std::borrow::Cow;

use url::{Position, Url};

/// A redirect URI as a page should show it. Every field is plain text: escape it for HTML.
///
/// Render `before_host`, then `host` emphasised (bold, for instance), then `after_host`; when
/// `host_unicode` is set, show it beside the URI, marked as the Unicode form of the host (the
/// browser goes to the ASCII `host`, and that is what the user should compare).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUriDisplay {
    /// The whole URI, parsed and serialized: exactly where the browser will be sent.
    pub uri: String,
    /// The text before the host (`https://`), or the whole URI when it has no host (a
    /// private-use scheme such as `com.example.app:/callback`).
    pub before_host: String,
    /// The host in ASCII: punycode (`xn--…`) for an internationalized name, IPv6 literals in
    /// brackets. `None` when the URI has no host.
    pub host: Option<String>,
    /// The text after the host: port, path and query.
    pub after_host: String,
    /// The Unicode form of the host, only when it is an internationalized domain name (some
    /// label is punycode) whose Unicode form differs from `host`.
    pub host_unicode: Option<String>,
}

/// How a page should show the redirect URI `uri`; `None` when it does not parse as a URL.
///
/// The URI is shown as parsed (what the browser will use), never as the client spelled it:
/// for `https://аpp.example/cb` (a Cyrillic `а`), `host` is `xn--pp-6kc.example`, `host_unicode`
/// is `аpp.example` and `uri` is `https://xn--pp-6kc.example/cb` (the crate-private module has
/// no doctests; `unicode_hosts_show_punycode_and_the_unicode_form_beside_it` checks this).
pub fn redirect_uri_display(uri: &str) -> Option<RedirectUriDisplay> {
    let url = Url::parse(uri).ok()?;
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Some(RedirectUriDisplay {
            uri: url.as_str().to_owned(),
            before_host: url.as_str().to_owned(),
            host: None,
            after_host: String::new(),
            host_unicode: None,
        });
    };
    Some(RedirectUriDisplay {
        uri: url.as_str().to_owned(),
        before_host: url[..Position::BeforeHost].to_owned(),
        host: Some(url[Position::BeforeHost..Position::AfterHost].to_owned()),
        after_host: url[Position::AfterHost..].to_owned(),
        host_unicode: unicode_host(host),
    })
}

/// The Unicode form of an ASCII host when some label is punycode and decodes to something else.
fn unicode_host(host: &str) -> Option<String> {
    let is_idn = host.split('.').any(|label| {
        label
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("xn--"))
    });
    if !is_idn {
        return None;
    }
    let (unicode, _errors) = idna::domain_to_unicode(host);
    let unicode = strip_unsafe_for_display(&unicode).into_owned();
    (unicode != host).then_some(unicode)
}

/// Whether `c` must not appear in client-supplied text shown on a page: control characters
/// (Unicode category Cc, NUL included), the bidirectional formatting characters (U+061C,
/// U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), the line and paragraph separators
/// (U+2028, U+2029) and the interlinear annotation characters (U+FFF9–U+FFFB). They reorder or
/// hide text without being visible themselves.
pub fn is_unsafe_for_display(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// `text` without the characters of [`is_unsafe_for_display`] (borrowed when there are none).
pub fn strip_unsafe_for_display(text: &str) -> Cow<'_, str> {
    if text.chars().any(is_unsafe_for_display) {
        Cow::Owned(
            text.chars()
                .filter(|c| !is_unsafe_for_display(*c))
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_hosts_are_split_for_emphasis() {
        let shown = redirect_uri_display("https://App.Example.com:8443/cb?x=1").unwrap();
        assert_eq!(shown.uri, "https://app.example.com:8443/cb?x=1");
        assert_eq!(shown.before_host, "https://");
        assert_eq!(shown.host.as_deref(), Some("app.example.com"));
        assert_eq!(shown.after_host, ":8443/cb?x=1");
        assert_eq!(shown.host_unicode, None);
        let ipv6 = redirect_uri_display("http://[::1]:9/cb").unwrap();
        assert_eq!(ipv6.host.as_deref(), Some("[::1]"));
        assert_eq!(ipv6.after_host, ":9/cb");
    }

    #[test]
    fn unicode_hosts_show_punycode_and_the_unicode_form_beside_it() {
        // A Cyrillic `а` (U+0430) in place of the Latin `a`.
        let shown = redirect_uri_display("https://\u{0430}pp.example/cb").unwrap();
        assert_eq!(shown.host.as_deref(), Some("xn--pp-6kc.example"));
        assert_eq!(shown.host_unicode.as_deref(), Some("\u{0430}pp.example"));
        assert_eq!(shown.uri, "https://xn--pp-6kc.example/cb");
        // Already in punycode: the Unicode form is still offered.
        let shown = redirect_uri_display("https://xn--bcher-kva.example/").unwrap();
        assert_eq!(shown.host_unicode.as_deref(), Some("bücher.example"));
    }

    #[test]
    fn the_shown_host_is_the_one_the_browser_uses() {
        // Registration refuses these; older rows may still hold them, and pages must not lie.
        let shown = redirect_uri_display("https://evil.example\\@app.example/cb").unwrap();
        assert_eq!(shown.host.as_deref(), Some("evil.example"));
        let shown = redirect_uri_display("https://app.example%2eevil.example/cb").unwrap();
        assert_eq!(shown.host.as_deref(), Some("app.example.evil.example"));
    }

    #[test]
    fn private_use_schemes_have_no_host() {
        let shown = redirect_uri_display("com.example.app:/callback").unwrap();
        assert_eq!(shown.host, None);
        assert_eq!(shown.before_host, "com.example.app:/callback");
        assert!(redirect_uri_display("not a uri").is_none());
    }

    #[test]
    fn control_and_bidi_characters_are_unsafe() {
        for c in [
            '\0', '\n', '\u{7f}', '\u{9b}', '\u{202E}', '\u{202A}', '\u{2066}', '\u{2069}',
            '\u{200E}', '\u{200F}', '\u{061C}', '\u{2028}',
        ] {
            assert!(is_unsafe_for_display(c), "{:?}", c);
        }
        for c in ['a', ' ', 'é', '\u{200D}', '😀'] {
            assert!(!is_unsafe_for_display(c), "{:?}", c);
        }
        assert_eq!(
            strip_unsafe_for_display("My\u{202E}ppA\0 tool"),
            "MyppA tool"
        );
        assert!(matches!(
            strip_unsafe_for_display("plain"),
            Cow::Borrowed(_)
        ));
    }
}
