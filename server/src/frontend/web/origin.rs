//! Which web pages may open a WebSocket to the chat: the `Origin` check.
//!
//! A browser lets any page open a WebSocket to any address, and says which
//! page asked in the `Origin` header; it is the server's job to refuse the
//! pages that are not its own, or another site a visitor opens could chat
//! in the visitor's name on a server only the visitor can reach (one on
//! their own machine or network).
//!
//! "Our own origin" cannot simply be "the origin that matches the `Host`
//! header": under DNS rebinding, a hostile site's name is made to resolve
//! to this server, and then its page's origin and the `Host` header its
//! requests carry match each other perfectly. So an origin is our own only
//! when it matches `Host` *and* names this server in a way a hostile site
//! cannot: an IP address literal, `localhost`, or the server's own name
//! (`--server-name`, which defaults to the machine's host name). Any other
//! name a page is served under (a public DNS name, say) is allowed with
//! `--web-allow-origin https://chat.example.org`, which also serves for a
//! page on another site that should be able to connect.
//!
//! A request without `Origin` does not come from a page a browser loaded
//! (browsers always send it on a WebSocket upgrade): it comes from a
//! program, which could say anything anyway, and is allowed.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// An origin as browsers write it, normalised: scheme, host and port,
/// lower case, the scheme's default port left out (`https://chat.example.org`,
/// `http://127.0.0.1:7880`, `http://[::1]:7880`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    secure: bool,
    host: String,
    port: Option<u16>,
}

/// Why a text is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an origin: write it as a browser sends it, scheme://host[:port] with http or https and no path (https://chat.example.org)")]
pub struct BadOrigin(pub String);

impl Origin {
    /// Reads an origin (`Origin` header, or `--web-allow-origin`).
    ///
    /// # Errors
    /// [`BadOrigin`] for anything that is not `http://` or `https://`
    /// followed by a host and an optional port, and nothing else.
    pub fn parse(text: &str) -> Result<Origin, BadOrigin> {
        let bad = || BadOrigin(text.to_string());
        let lower = text.trim().to_ascii_lowercase();
        let (secure, authority) = if let Some(rest) = lower.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = lower.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let (host, port) = split_authority(authority).ok_or_else(bad)?;
        Ok(Origin { secure, host, port }.without_default_port())
    }

    /// The origin of a page served by a listener with or without TLS under
    /// the `Host` header `host`; None when `host` is not a host and port.
    pub fn of_host(host: &str, secure: bool) -> Option<Origin> {
        let (host, port) = split_authority(&host.trim().to_ascii_lowercase())?;
        Some(Origin { secure, host, port }.without_default_port())
    }

    fn without_default_port(mut self) -> Origin {
        let default = if self.secure { 443 } else { 80 };
        if self.port == Some(default) {
            self.port = None;
        }
        self
    }

    /// Whether the host names this server in a way no other site's page can
    /// be served under: an IP address, `localhost`, or `server_name`.
    fn names_this_server(&self, server_name: &str) -> bool {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>().is_ok() || bare == "localhost" || bare.eq_ignore_ascii_case(server_name)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "https" } else { "http" };
        match self.port {
            Some(port) => write!(f, "{scheme}://{}:{port}", self.host),
            None => write!(f, "{scheme}://{}", self.host),
        }
    }
}

/// Splits `host[:port]` (an IPv6 host in brackets); None when either part
/// is not one, or anything follows.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (format!("[{inside}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (authority.to_string(), None),
        }
    };
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && (host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'));
    if !valid_host {
        return None;
    }
    let port = match port {
        Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            Some(port.parse().ok()?)
        }
        Some(_) => return None,
        None => None,
    };
    Some((host, port))
}

/// Which origins may open a WebSocket: the server's own (see the module
/// documentation) and those `--web-allow-origin` names.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    allowed: Arc<[Origin]>,
    server_name: Arc<str>,
}

/// Why an upgrade was refused, for the log and the 403's body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Occurs when the `Origin` header is not an origin at all (`null`,
    /// from a sandboxed frame or a file, say).
    #[error("the origin {0:?} is not one this server can allow")]
    Unreadable(String),
    /// Occurs when the page's origin is neither ours nor allowed.
    #[error("a page from {0} may not connect here (allow it with --web-allow-origin {0})")]
    Foreign(Origin),
}

impl OriginPolicy {
    /// The policy of a server named `server_name` that also allows
    /// `allowed`.
    pub fn new(allowed: Vec<Origin>, server_name: &str) -> OriginPolicy {
        OriginPolicy {
            allowed: allowed.into(),
            server_name: Arc::from(server_name),
        }
    }

    /// Whether a WebSocket upgrade with this `Origin` (if any), on a
    /// request with this `Host` (if any), on a listener with TLS or not,
    /// may go ahead.
    ///
    /// # Errors
    /// [`Refusal`] saying why not.
    pub fn check(&self, origin: Option<&str>, host: Option<&str>, secure: bool) -> Result<(), Refusal> {
        let Some(origin) = origin else { return Ok(()) };
        let origin = Origin::parse(origin).map_err(|_| Refusal::Unreadable(origin.to_string()))?;
        if self.allowed.contains(&origin) {
            return Ok(());
        }
        let own = host.and_then(|host| Origin::of_host(host, secure));
        if own.as_ref() == Some(&origin) && origin.names_this_server(&self.server_name) {
            return Ok(());
        }
        Err(Refusal::Foreign(origin))
    }
}

impl Default for OriginPolicy {
    fn default() -> Self {
        OriginPolicy::new(Vec::new(), crate::config::DEFAULT_SERVER_NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str]) -> OriginPolicy {
        let allowed = allowed.iter().map(|o| Origin::parse(o).unwrap()).collect();
        OriginPolicy::new(allowed, "chathost")
    }

    #[test]
    fn origins_are_normalised_as_browsers_write_them() {
        let origin = Origin::parse("HTTPS://Chat.Example.org:443").unwrap();
        assert_eq!(origin.to_string(), "https://chat.example.org");
        assert_eq!(
            Origin::parse("http://[::1]:7880").unwrap().to_string(),
            "http://[::1]:7880"
        );
        for bad in [
            "null",
            "chat.example.org",
            "ftp://x",
            "https://x/path",
            "http://",
            "http://a:b",
            "https://[zz]:1",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_program_without_origin_and_our_own_page_are_allowed() {
        let policy = policy(&[]);
        assert_eq!(policy.check(None, Some("anything"), false), Ok(()));
        for (origin, host) in [
            ("http://127.0.0.1:7880", "127.0.0.1:7880"),
            ("http://[::1]:7880", "[::1]:7880"),
            ("http://localhost:7880", "localhost:7880"),
            ("http://chathost:7880", "ChatHost:7880"),
            ("http://192.168.1.20", "192.168.1.20:80"),
        ] {
            assert_eq!(policy.check(Some(origin), Some(host), false), Ok(()), "{origin}");
        }
        assert_eq!(
            policy.check(Some("https://127.0.0.1:7881"), Some("127.0.0.1:7881"), true),
            Ok(())
        );
    }

    #[test]
    fn another_site_is_refused_even_when_it_has_rebound_its_name_to_us() {
        let policy = policy(&[]);
        // A plain foreign page.
        assert_eq!(
            policy.check(Some("http://evil.example"), Some("127.0.0.1:7880"), false),
            Err(Refusal::Foreign(Origin::parse("http://evil.example").unwrap()))
        );
        // DNS rebinding: the hostile name now points here, so its page's
        // origin and the Host header agree.
        assert!(policy
            .check(Some("http://evil.example:7880"), Some("evil.example:7880"), false)
            .is_err());
        // Our own host, but another port or scheme is another origin.
        assert!(policy
            .check(Some("http://127.0.0.1:9999"), Some("127.0.0.1:7880"), false)
            .is_err());
        assert!(policy
            .check(Some("http://127.0.0.1:7881"), Some("127.0.0.1:7881"), true)
            .is_err());
        assert!(matches!(
            policy.check(Some("null"), Some("127.0.0.1:7880"), false),
            Err(Refusal::Unreadable(_))
        ));
    }

    #[test]
    fn allowed_origins_pass_whatever_the_host_header_says() {
        let policy = policy(&["https://chat.example.org"]);
        assert_eq!(
            policy.check(Some("https://chat.example.org"), Some("chat.example.org"), true),
            Ok(())
        );
        assert_eq!(
            policy.check(Some("https://chat.example.org"), Some("10.0.0.5:7881"), true),
            Ok(())
        );
        assert!(policy
            .check(Some("http://chat.example.org"), Some("chat.example.org"), false)
            .is_err());
    }

    #[test]
    fn the_refusal_says_how_to_allow_the_origin() {
        let refusal = policy(&[])
            .check(Some("https://chat.example.org"), Some("chat.example.org"), true)
            .unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "a page from https://chat.example.org may not connect here (allow it with --web-allow-origin https://chat.example.org)"
        );
    }
}
