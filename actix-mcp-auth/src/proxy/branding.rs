//! How the server presents itself on its pages: a name and an optional icon.
//!
//! The icon is read once at start-up and served by us from our own origin (the pages' CSP allows
//! images from `'self'` only), so a page never makes the browser contact another host.

use std::path::Path;

use actix_web::web::Bytes;
use url::Url;

use crate::error::ConfigError;

/// Largest icon we serve: the page shows it at 40 px, so anything bigger is a mistake.
pub(crate) const MAX_ICON_BYTES: usize = 256 * 1024;

/// The server's icon, ready to serve.
#[derive(Clone)]
pub(crate) struct Icon {
    pub bytes: Bytes,
    pub content_type: &'static str,
}

impl std::fmt::Debug for Icon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Icon")
            .field("content_type", &self.content_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Name and icon shown on the consent and error pages.
#[derive(Clone, Debug)]
pub(crate) struct Branding {
    pub name: String,
    pub icon: Option<Icon>,
}

/// The name used when none is configured: the resource's host (and port when it is not the
/// scheme's default), which is what users typed or pasted into their MCP client.
pub(crate) fn default_server_name(resource: &Url) -> String {
    match (resource.host_str(), resource.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => "this MCP server".to_owned(),
    }
}

/// The content type of an icon file, from its extension (we never guess from the bytes).
pub(crate) fn icon_content_type(path: &Path) -> Option<&'static str> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        _ => return None,
    })
}

/// Reads the icon at `path`; errors name `setting`.
pub(crate) fn load_icon(setting: &str, path: &Path) -> Result<Icon, ConfigError> {
    let content_type = icon_content_type(path).ok_or_else(|| {
        ConfigError::invalid(
            setting,
            "the icon must be a .png, .jpg, .gif, .webp, .svg or .ico file",
        )
    })?;
    let size = std::fs::metadata(path)
        .map_err(|e| ConfigError::invalid(setting, format!("cannot read the icon file: {e}")))?
        .len();
    if size > MAX_ICON_BYTES as u64 {
        return Err(ConfigError::invalid(
            setting,
            format!("the icon file is larger than {} KiB", MAX_ICON_BYTES / 1024),
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::invalid(setting, format!("cannot read the icon file: {e}")))?;
    if bytes.is_empty() || bytes.len() > MAX_ICON_BYTES {
        return Err(ConfigError::invalid(
            setting,
            "the icon file is empty or too large",
        ));
    }
    Ok(Icon {
        bytes: Bytes::from(bytes),
        content_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_come_from_the_resource() {
        let name = |u: &str| default_server_name(&Url::parse(u).unwrap());
        assert_eq!(name("https://mcp.example.com/mcp"), "mcp.example.com");
        assert_eq!(name("http://127.0.0.1:8000/mcp"), "127.0.0.1:8000");
        assert_eq!(name("https://mcp.example.com:443/mcp"), "mcp.example.com");
    }

    #[test]
    fn icons_are_typed_by_extension_and_bounded() {
        assert_eq!(
            icon_content_type(Path::new("a/logo.PNG")),
            Some("image/png")
        );
        assert_eq!(
            icon_content_type(Path::new("logo.svg")),
            Some("image/svg+xml")
        );
        assert_eq!(icon_content_type(Path::new("logo.html")), None);
        assert_eq!(icon_content_type(Path::new("logo")), None);

        let dir = std::env::temp_dir().join(format!("mcp_auth_icon_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small.png");
        std::fs::write(&small, b"\x89PNG\r\n\x1a\nrest").unwrap();
        let icon = load_icon("MCP_AUTH_SERVER_ICON_FILE", &small).unwrap();
        assert_eq!(icon.content_type, "image/png");
        assert_eq!(&icon.bytes[..4], b"\x89PNG");

        let big = dir.join("big.png");
        std::fs::write(&big, vec![0u8; MAX_ICON_BYTES + 1]).unwrap();
        let err = load_icon("MCP_AUTH_SERVER_ICON_FILE", &big).unwrap_err();
        assert!(
            err.to_string().starts_with("MCP_AUTH_SERVER_ICON_FILE"),
            "{err}"
        );
        let err = load_icon("server_icon_file", &dir.join("missing.png")).unwrap_err();
        assert!(err.to_string().starts_with("server_icon_file"), "{err}");
        let err = load_icon("server_icon_file", &dir.join("page.html")).unwrap_err();
        assert!(err.to_string().contains(".png"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
