//! The web client's files, built into the binary.
//!
//! The page is four files, written by hand and included as they are: no
//! build step, no CDN, no external font, so the one binary is the whole
//! product and the page works on a network without the Internet. They are
//! served with the security headers of [`super::http`]; the page's own
//! script and style are all its Content-Security-Policy allows.

/// One file of the page.
#[derive(Debug, PartialEq, Eq)]
pub struct Asset {
    /// The path it is served at.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// Every file the web listener serves; any other path is a 404.
pub static ASSETS: [Asset; 4] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("assets/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/style.css"),
    },
    Asset {
        path: "/icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/icon.svg"),
    },
];

/// The file served at `path` (its query string, if any, left out).
pub fn find(path: &str) -> Option<&'static Asset> {
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    let path = if path == "/index.html" { "/" } else { path };
    ASSETS.iter().find(|asset| asset.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_files_are_found_and_nothing_else() {
        assert_eq!(find("/").map(|a| a.path), Some("/"));
        assert_eq!(find("/?room=rust").map(|a| a.path), Some("/"));
        assert_eq!(find("/index.html").map(|a| a.path), Some("/"));
        assert_eq!(
            find("/app.js").map(|a| a.content_type),
            Some("text/javascript; charset=utf-8")
        );
        for missing in ["/ws", "/../Cargo.toml", "/app.js/", "//", "/favicon.ico", ""] {
            assert!(find(missing).is_none(), "{missing}");
        }
    }

    #[test]
    fn the_page_loads_only_its_own_script_and_style() {
        let page = std::str::from_utf8(find("/").map(|a| a.body).unwrap_or_default()).unwrap();
        assert!(page.contains("src=\"/app.js\""));
        assert!(page.contains("href=\"/style.css\""));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no external resource"
        );
        assert!(
            !page.contains("<style") && !page.contains("style=\""),
            "no inline style"
        );
    }
}
