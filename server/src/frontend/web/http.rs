//! HTTP/1.1 as the web listener speaks it: one request per connection,
//! answered with one of the page's files, a refusal, or the WebSocket
//! upgrade.
//!
//! The listener serves a handful of small files and one WebSocket
//! endpoint, so it speaks as little HTTP as that needs: `GET` and `HEAD`,
//! no request bodies, and `Connection: close` on every answer but the
//! upgrade (a browser loads the page over a few short connections and then
//! keeps one WebSocket). The request head is parsed with `httparse`, at
//! most [`MAX_REQUEST_HEAD`] bytes of it; the event loop closes a
//! connection whose request is not complete within the request timeout.
//!
//! Every answer carries the headers that keep the page safe: a
//! Content-Security-Policy that allows only the page's own script, style,
//! icon and WebSocket, `nosniff`, no referrer, no framing.

use chat_protocol::ErrorKind;

use super::assets::{self, Asset};
use super::origin::OriginPolicy;

/// The most bytes of request head read before the request is refused
/// (431): a browser's request is well under 2 KiB, and a connection that
/// sends more is after memory, not the page.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// The most header lines in a request; more is refused (431).
const MAX_HEADERS: usize = 64;

/// The path of the WebSocket endpoint.
pub const WEBSOCKET_PATH: &str = "/ws";

/// The policy every answer carries: the page's own files and its own
/// WebSocket, nothing else; no inline script or style; no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What the parts of a request head the listener acts on say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestHead {
    /// The method, as sent.
    pub method: String,
    /// The request target, as sent.
    pub path: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// The `Host` header.
    pub host: Option<String>,
    /// The `Origin` header.
    pub origin: Option<String>,
    /// Whether `Upgrade` names `websocket`.
    pub upgrade_websocket: bool,
    /// Whether `Connection` names `upgrade`.
    pub connection_upgrade: bool,
    /// `Sec-WebSocket-Key`.
    pub websocket_key: Option<String>,
    /// `Sec-WebSocket-Version`.
    pub websocket_version: Option<String>,
    /// Whether the request says a body follows (`Content-Length` other
    /// than 0, or `Transfer-Encoding`).
    pub has_body: bool,
}

/// How far a request head has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not complete yet: read more.
    Partial,
    /// Complete, in the first `len` bytes.
    Complete {
        /// What it says.
        head: RequestHead,
        /// How many bytes it took.
        len: usize,
    },
    /// Not a request the listener can answer but with this refusal.
    Invalid(Status),
}

/// Parses the request head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() > MAX_REQUEST_HEAD => {
            return Parsed::Invalid(Status::HeadersTooLarge)
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Ok(httparse::Status::Complete(len)) => len,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Invalid(Status::HeadersTooLarge),
        Err(_) => return Parsed::Invalid(Status::BadRequest),
    };
    if len > MAX_REQUEST_HEAD {
        return Parsed::Invalid(Status::HeadersTooLarge);
    }
    let mut head = RequestHead {
        method: request.method.unwrap_or_default().to_string(),
        path: request.path.unwrap_or_default().to_string(),
        version: request.version.unwrap_or_default(),
        ..RequestHead::default()
    };
    for header in request.headers.iter() {
        let value = String::from_utf8_lossy(header.value).trim().to_string();
        let has_token = |token: &str| value.split(',').any(|t| t.trim().eq_ignore_ascii_case(token));
        match header.name.to_ascii_lowercase().as_str() {
            "host" => head.host = Some(value),
            "origin" => head.origin = Some(value),
            "upgrade" => head.upgrade_websocket = has_token("websocket"),
            "connection" => head.connection_upgrade = has_token("upgrade"),
            "sec-websocket-key" => head.websocket_key = Some(value),
            "sec-websocket-version" => head.websocket_version = Some(value),
            "content-length" => head.has_body |= value != "0",
            "transfer-encoding" => head.has_body = true,
            _ => {}
        }
    }
    Parsed::Complete { head, len }
}

/// Whether `piece`, just added at `start` of `buf`, may have ended a
/// request head: only then is it worth parsing again, so a request sent a
/// byte at a time costs one scan, not one per byte.
pub fn may_end_head(buf: &[u8], start: usize) -> bool {
    let from = start.saturating_sub(3);
    let tail = buf.get(from..).unwrap_or_default();
    tail.windows(2).any(|w| w == b"\n\n")
        || tail.windows(3).any(|w| w == b"\n\r\n")
        || buf.len() > MAX_REQUEST_HEAD
}

/// A refusal's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 400: not HTTP the listener understands.
    BadRequest,
    /// 403: the page's origin may not connect.
    Forbidden,
    /// 404: no such file.
    NotFound,
    /// 405: a method other than GET and HEAD.
    MethodNotAllowed,
    /// 408: the request did not come in time.
    RequestTimeout,
    /// 413: a request with a body.
    ContentTooLarge,
    /// 426: `/ws` without a WebSocket handshake, or another version.
    UpgradeRequired,
    /// 431: more head than [`MAX_REQUEST_HEAD`].
    HeadersTooLarge,
    /// 503: the server is full, or the client has too many connections.
    Unavailable,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::BadRequest => "400 Bad Request",
            Status::Forbidden => "403 Forbidden",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::RequestTimeout => "408 Request Timeout",
            Status::ContentTooLarge => "413 Content Too Large",
            Status::UpgradeRequired => "426 Upgrade Required",
            Status::HeadersTooLarge => "431 Request Header Fields Too Large",
            Status::Unavailable => "503 Service Unavailable",
        }
    }
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// One of the page's files (without its body for `HEAD`).
    Asset {
        /// The file.
        asset: &'static Asset,
        /// True for `HEAD`.
        head_only: bool,
    },
    /// The WebSocket handshake's answer: the connection speaks WebSocket
    /// from now on.
    Upgrade {
        /// `Sec-WebSocket-Accept`.
        accept: String,
    },
    /// A refusal, with a line of text saying why.
    Refused(Status, String),
}

/// The answer to `head` on a listener with TLS (`secure`) or not.
pub fn answer(head: &RequestHead, origins: &OriginPolicy, secure: bool) -> Reply {
    let refuse = |status: Status, why: &str| Reply::Refused(status, why.to_string());
    let head_only = match head.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => return refuse(Status::MethodNotAllowed, "only GET and HEAD are served here"),
    };
    if head.has_body {
        return refuse(
            Status::ContentTooLarge,
            "requests with a body are not served here",
        );
    }
    let path = head
        .path
        .split_once('?')
        .map_or(head.path.as_str(), |(path, _)| path);
    if path == WEBSOCKET_PATH {
        return upgrade(head, origins, secure);
    }
    match assets::find(&head.path) {
        Some(asset) => Reply::Asset { asset, head_only },
        None => refuse(Status::NotFound, "not found"),
    }
}

/// The answer to a request for the WebSocket endpoint.
fn upgrade(head: &RequestHead, origins: &OriginPolicy, secure: bool) -> Reply {
    let handshake =
        head.method == "GET" && head.version == 1 && head.upgrade_websocket && head.connection_upgrade;
    let Some(key) = head.websocket_key.as_deref().filter(|_| handshake) else {
        return Reply::Refused(
            Status::UpgradeRequired,
            "this is the chat's WebSocket endpoint: connect with a WebSocket client".to_string(),
        );
    };
    if head.websocket_version.as_deref() != Some("13") {
        return Reply::Refused(
            Status::UpgradeRequired,
            "only WebSocket version 13 is spoken here".to_string(),
        );
    }
    // 16 random bytes in base64 (RFC 6455, 4.1).
    if key.len() != 24 {
        return Reply::Refused(
            Status::BadRequest,
            "Sec-WebSocket-Key is not 16 bytes in base64".to_string(),
        );
    }
    if let Err(refusal) = origins.check(head.origin.as_deref(), head.host.as_deref(), secure) {
        return Reply::Refused(Status::Forbidden, refusal.to_string());
    }
    Reply::Upgrade {
        accept: tungstenite::handshake::derive_accept_key(key.as_bytes()),
    }
}

impl Reply {
    /// Appends the bytes of the answer to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Asset { asset, head_only } => {
                write_head(out, "200 OK", asset.content_type, asset.body.len(), &[]);
                if !head_only {
                    out.extend_from_slice(asset.body);
                }
            }
            Reply::Upgrade { accept } => {
                out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
                out.extend_from_slice(accept.as_bytes());
                out.extend_from_slice(b"\r\n\r\n");
            }
            Reply::Refused(status, why) => refusal(*status, why, out),
        }
    }

    /// Whether the connection goes on as a WebSocket after this answer
    /// (otherwise it is closed once the answer is written).
    pub fn upgrades(&self) -> bool {
        matches!(self, Reply::Upgrade { .. })
    }

    /// The status, for the log.
    pub fn status(&self) -> &'static str {
        match self {
            Reply::Asset { .. } => "200 OK",
            Reply::Upgrade { .. } => "101 Switching Protocols",
            Reply::Refused(status, _) => status.line(),
        }
    }
}

/// A refusal's bytes: the status, and a line of text saying why.
pub fn refusal(status: Status, why: &str, out: &mut Vec<u8>) {
    let extra: &[&str] = match status {
        Status::MethodNotAllowed => &["Allow: GET, HEAD"],
        Status::UpgradeRequired => &["Upgrade: websocket", "Sec-WebSocket-Version: 13"],
        _ => &[],
    };
    write_head(
        out,
        status.line(),
        "text/plain; charset=utf-8",
        why.len() + 1,
        extra,
    );
    out.extend_from_slice(why.as_bytes());
    out.push(b'\n');
}

/// What a connection refused at the door (server full, too many from one
/// address) reads: a 503 with the line-protocol error's text.
pub fn door_refusal(error: &ErrorKind, out: &mut Vec<u8>) {
    refusal(Status::Unavailable, &error.to_string(), out);
}

/// Appends a response head with the headers every answer carries.
fn write_head(out: &mut Vec<u8>, status: &str, content_type: &str, length: usize, extra: &[&str]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\
         Content-Security-Policy: {CONTENT_SECURITY_POLICY}\r\nX-Content-Type-Options: nosniff\r\n\
         Referrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\nCache-Control: no-cache\r\n\
         Connection: close\r\n"
    );
    out.extend_from_slice(head.as_bytes());
    for header in extra {
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(request: &str) -> RequestHead {
        match parse(request.as_bytes()) {
            Parsed::Complete { head, len } => {
                assert_eq!(len, request.len());
                head
            }
            other => panic!("{other:?}"),
        }
    }

    fn answer_to(request: &str) -> Reply {
        answer(&head_of(request), &OriginPolicy::default(), false)
    }

    const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:7880\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

    #[test]
    fn the_page_is_served_with_its_security_headers() {
        let reply = answer_to("GET / HTTP/1.1\r\nHost: 127.0.0.1:7880\r\n\r\n");
        let mut out = Vec::new();
        reply.write(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"));
        assert!(text.contains(&format!("Content-Security-Policy: {CONTENT_SECURITY_POLICY}\r\n")));
        assert!(text.contains("X-Content-Type-Options: nosniff\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("</html>\n"));
        let mut head_only = Vec::new();
        answer_to("HEAD /app.js HTTP/1.1\r\n\r\n").write(&mut head_only);
        assert!(head_only.ends_with(b"\r\n\r\n"), "HEAD gets no body");
    }

    #[test]
    fn the_websocket_handshake_is_answered_with_the_rfc_accept_key() {
        let reply = answer_to(&format!("{UPGRADE}Origin: http://127.0.0.1:7880\r\n\r\n"));
        // The example of RFC 6455, 1.3.
        assert_eq!(
            reply,
            Reply::Upgrade {
                accept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_string()
            }
        );
        assert!(reply.upgrades());
    }

    #[test]
    fn everything_else_is_refused_with_the_right_status() {
        let cases: [(&str, Status); 6] = [
            ("GET /nothing HTTP/1.1\r\n\r\n", Status::NotFound),
            (
                "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                Status::MethodNotAllowed,
            ),
            (
                "GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
                Status::ContentTooLarge,
            ),
            ("GET /ws HTTP/1.1\r\n\r\n", Status::UpgradeRequired),
            (
                &UPGRADE.replace("Version: 13", "Version: 8"),
                Status::UpgradeRequired,
            ),
            (
                &UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"),
                Status::BadRequest,
            ),
        ];
        for (request, status) in cases {
            let request = match request.strip_suffix("\r\n\r\n") {
                Some(_) => request.to_string(),
                None => format!("{request}\r\n"),
            };
            match answer_to(&request) {
                Reply::Refused(got, _) => assert_eq!(got, status, "{request}"),
                other => panic!("{request}: {other:?}"),
            }
        }
        let foreign = answer_to(&format!("{UPGRADE}Origin: http://evil.example\r\n\r\n"));
        assert_eq!(
            foreign,
            Reply::Refused(
                Status::Forbidden,
                "a page from http://evil.example may not connect here (allow it with --web-allow-origin http://evil.example)"
                    .to_string()
            )
        );
    }

    #[test]
    fn heads_that_are_too_big_or_broken_are_refused_and_partial_ones_wait() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), Parsed::Partial);
        let big = format!("GET / HTTP/1.1\r\nX-Filler: {}\r\n", "a".repeat(MAX_REQUEST_HEAD));
        assert_eq!(parse(big.as_bytes()), Parsed::Invalid(Status::HeadersTooLarge));
        let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Parsed::Invalid(Status::HeadersTooLarge)
        );
        assert_eq!(
            parse(b"\x16\x03\x01\x02\x00"),
            Parsed::Invalid(Status::BadRequest)
        );
    }

    #[test]
    fn only_a_piece_that_may_end_the_head_is_worth_parsing() {
        let buf = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(may_end_head(buf, buf.len() - 1), "the last byte ends it");
        assert!(!may_end_head(&buf[..buf.len() - 2], buf.len() - 3));
        assert!(may_end_head(b"GET / HTTP/1.0\n\n", 15));
    }
}
