//! The little HTTP/1.x the metrics endpoint speaks: reading one request
//! head into a buffer of fixed size, and writing one response.
//!
//! Why it exists rather than a general HTTP server: the endpoint faces
//! whoever can reach its port, and every byte they send must cost a
//! bounded amount. So:
//! - The whole head (request line and headers) must fit in one buffer of
//!   [`MAX_HEAD`] bytes, allocated once per connection; the end of the
//!   head is looked for while reading, never after it has grown. A head
//!   that does not fit is [`RequestError::HeadTooLarge`] (431).
//! - No body is ever read. A `Content-Length` other than zero, or any
//!   `Transfer-Encoding`, is [`RequestError::BodyNotAllowed`] (413); the
//!   length is checked as digits and never parsed into a number, so no
//!   client's number sizes anything.
//! - One request per connection, answered with `Connection: close`: no
//!   keep-alive, no pipelining, no state between requests.
//!
//! It knows nothing of sockets or metrics: [`RequestReader`] reads from
//! any [`Read`], and [`Response`] is bytes to write. Lines may end in
//! `\r\n` or a bare `\n`; header names are matched without regard to case.

use std::io::{self, Read};

/// The most bytes a request head (request line and all headers) may take.
/// A scraper's head is well under 1 KiB (Prometheus sends five short
/// headers); 8 KiB is also what common servers allow by default, so a
/// real client never meets the limit, while a head that never ends costs
/// at most this much per connection.
pub const MAX_HEAD: usize = 8 * 1024;

/// The one path served.
pub const METRICS_PATH: &str = "/metrics";

/// What a complete, valid request head asks for: all the endpoint needs
/// to answer it, owned, so the buffer can be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// True when the path (query string left out) is [`METRICS_PATH`].
    pub is_metrics_path: bool,
    /// True when an `Accept` header names `application/openmetrics-text`.
    pub wants_openmetrics: bool,
}

/// The request methods told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: the headers of a `GET`, without the body.
    Head,
    /// Any other method (the token itself is not kept).
    Other,
}

/// Why a request head is refused; each maps to the status sent back
/// before the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Occurs when the head does not end within [`MAX_HEAD`] bytes.
    #[error("the request head is larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// Occurs when the head announces a body (`Content-Length` other than
    /// 0, or `Transfer-Encoding`): the endpoint reads none.
    #[error("the metrics endpoint takes no request body")]
    BodyNotAllowed,
    /// Occurs when the request line names a version other than HTTP/1.x.
    #[error("only HTTP/1.0 and HTTP/1.1 are spoken here")]
    VersionNotSupported,
    /// Occurs when the head is not HTTP: the reason says what is wrong.
    #[error("bad request: {0}")]
    Malformed(&'static str),
}

impl RequestError {
    /// The status that answers it.
    pub fn status(self) -> Status {
        match self {
            RequestError::HeadTooLarge => Status::HeaderFieldsTooLarge,
            RequestError::BodyNotAllowed => Status::ContentTooLarge,
            RequestError::VersionNotSupported => Status::VersionNotSupported,
            RequestError::Malformed(_) => Status::BadRequest,
        }
    }
}

/// What [`RequestReader::read_from`] got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The source has nothing more for now (it would block); the head is
    /// not complete yet.
    Pending,
    /// The head is complete and valid.
    Request(Request),
    /// The head is complete and refused, or can never be complete.
    Rejected(RequestError),
    /// The peer closed before the head was complete.
    Closed,
}

/// Reads one request head into a buffer of fixed size.
///
/// Invariants: `scanned <= filled <= buf.len()`; every byte before
/// `scanned` has been looked at once for the end of the head, so reading
/// a head costs time linear in its length however it is split; `start` is
/// where the request line begins (after any empty lines before it), once
/// a non-empty line has begun.
#[derive(Debug)]
pub struct RequestReader {
    /// The bytes read, up to its length, which never changes.
    buf: Box<[u8]>,
    /// How many bytes of `buf` hold data.
    filled: usize,
    /// The next byte to look at for the end of the head.
    scanned: usize,
    /// Where the current line starts.
    line_start: usize,
    /// Where the request line starts; `None` while only empty lines came.
    start: Option<usize>,
}

impl Default for RequestReader {
    fn default() -> RequestReader {
        RequestReader::with_capacity(MAX_HEAD)
    }
}

impl RequestReader {
    /// A reader for heads of at most `capacity` bytes (tests use tiny ones
    /// to reach the limit; the endpoint uses [`MAX_HEAD`]).
    pub fn with_capacity(capacity: usize) -> RequestReader {
        RequestReader {
            buf: vec![0; capacity].into_boxed_slice(),
            filled: 0,
            scanned: 0,
            line_start: 0,
            start: None,
        }
    }

    /// Reads what `source` has until the head is complete, refused, or
    /// `source` would block or ends. Never reads past the buffer: a head
    /// that fills it without ending is [`RequestError::HeadTooLarge`].
    /// Bytes after the end of the head (a body, a pipelined request) may
    /// have been read into the buffer; they are ignored.
    ///
    /// # Errors
    /// What `source` returns, but `WouldBlock` ([`Step::Pending`]) and
    /// `Interrupted` (retried).
    pub fn read_from(&mut self, source: &mut impl Read) -> io::Result<Step> {
        // Each turn reads at least one byte or returns, and the buffer is
        // finite: this ends after at most `buf.len() + 1` turns.
        loop {
            let Some(free) = self.buf.get_mut(self.filled..).filter(|free| !free.is_empty()) else {
                return Ok(Step::Rejected(RequestError::HeadTooLarge));
            };
            match source.read(free) {
                Ok(0) => return Ok(Step::Closed),
                Ok(n) => {
                    self.filled = self.filled.saturating_add(n).min(self.buf.len());
                    if let Some(step) = self.scan() {
                        return Ok(step);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Pending),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Looks at the bytes not yet scanned for the empty line that ends the
    /// head; parses the head once it is found.
    fn scan(&mut self) -> Option<Step> {
        let filled = self.buf.get(..self.filled).unwrap_or_default();
        for (at, &byte) in filled.iter().enumerate().skip(self.scanned) {
            if byte != b'\n' {
                continue;
            }
            let line = filled.get(self.line_start..at).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let next = at.saturating_add(1);
            match (self.start, line.is_empty()) {
                // Empty lines before the request line are skipped, as RFC
                // 9112 (2.2) asks of a server.
                (None, true) => {}
                (None, false) => self.start = Some(self.line_start),
                (Some(start), true) => {
                    let head = filled.get(start..next).unwrap_or_default();
                    return Some(match parse_head(head) {
                        Ok(request) => Step::Request(request),
                        Err(e) => Step::Rejected(e),
                    });
                }
                (Some(_), false) => {}
            }
            self.line_start = next;
        }
        self.scanned = self.filled;
        None
    }
}

/// The lines of `head`, each without its `\n` or `\r\n`.
fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
}

/// Parses a complete head: a request line, header lines, an empty line.
///
/// # Errors
/// [`RequestError::Malformed`] when a line is not HTTP,
/// [`RequestError::VersionNotSupported`] for a version other than 1.x,
/// [`RequestError::BodyNotAllowed`] when a body is announced.
pub fn parse_head(head: &[u8]) -> Result<Request, RequestError> {
    let mut lines = lines(head);
    let request_line = lines.next().unwrap_or_default();
    let (method, target) = parse_request_line(request_line)?;
    let mut wants_openmetrics = false;
    for line in lines.take_while(|line| !line.is_empty()) {
        let (name, value) = parse_header(line)?;
        if name.eq_ignore_ascii_case(b"content-length") {
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(RequestError::Malformed("Content-Length is not a number"));
            }
            if value.iter().any(|&b| b != b'0') {
                return Err(RequestError::BodyNotAllowed);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(RequestError::BodyNotAllowed);
        } else if name.eq_ignore_ascii_case(b"accept") {
            wants_openmetrics |= contains_ignoring_case(value, b"application/openmetrics-text");
        }
    }
    Ok(Request {
        method: match method {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            _ => Method::Other,
        },
        is_metrics_path: path_of(target) == METRICS_PATH.as_bytes(),
        wants_openmetrics,
    })
}

/// `METHOD SP TARGET SP HTTP/1.x`: the method and the target.
fn parse_request_line(line: &[u8]) -> Result<(&[u8], &[u8]), RequestError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Malformed(
            "the request line is not METHOD TARGET VERSION",
        ));
    };
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
        return Err(RequestError::Malformed("the method is not a token"));
    }
    if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(RequestError::Malformed(
            "the request target is not printable ASCII",
        ));
    }
    match version {
        b"HTTP/1.0" | b"HTTP/1.1" => Ok((method, target)),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(RequestError::VersionNotSupported)
        }
        _ => Err(RequestError::Malformed("the version is not HTTP/1.0 or HTTP/1.1")),
    }
}

/// `Name: value`: the name and the value, without the whitespace around
/// it.
fn parse_header(line: &[u8]) -> Result<(&[u8], &[u8]), RequestError> {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Err(RequestError::Malformed("a header line has no colon"));
    };
    let (name, value) = line.split_at(colon);
    let value = value.get(1..).unwrap_or_default();
    // This also refuses obsolete line folding (a line starting with
    // whitespace) and whitespace before the colon, as RFC 9112 (5.1, 5.2)
    // asks.
    if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
        return Err(RequestError::Malformed("a header name is not a token"));
    }
    if value.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
        return Err(RequestError::Malformed(
            "a header value holds a control character",
        ));
    }
    Ok((name, value.trim_ascii()))
}

/// True for the characters of an RFC 9110 `token` (methods, header names).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The path of a request target: origin form (`/metrics?x`) or absolute
/// form (`http://host/metrics?x`), without the query.
fn path_of(target: &[u8]) -> &[u8] {
    let after_scheme = [b"http://".as_slice(), b"https://"].iter().find_map(|scheme| {
        let prefix = target.get(..scheme.len())?;
        prefix
            .eq_ignore_ascii_case(scheme)
            .then(|| target.get(scheme.len()..))
            .flatten()
    });
    let path = match after_scheme {
        // The path starts at the first `/` after the authority.
        Some(rest) => rest
            .iter()
            .position(|&b| b == b'/')
            .and_then(|at| rest.get(at..))
            .unwrap_or(b"/"),
        None => target,
    };
    path.split(|&b| b == b'?').next().unwrap_or_default()
}

/// True when `needle` occurs in `haystack`, ASCII case ignored.
fn contains_ignoring_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

/// The statuses the endpoint sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 200: the exposition.
    Ok,
    /// 400: not HTTP.
    BadRequest,
    /// 404: a path other than [`METRICS_PATH`].
    NotFound,
    /// 405: a method other than `GET` and `HEAD`.
    MethodNotAllowed,
    /// 413: a request with a body.
    ContentTooLarge,
    /// 431: a head larger than [`MAX_HEAD`].
    HeaderFieldsTooLarge,
    /// 500: the exposition could not be written.
    InternalServerError,
    /// 505: HTTP/2 and others in an HTTP/1 request line.
    VersionNotSupported,
}

impl Status {
    /// The status code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::ContentTooLarge => 413,
            Status::HeaderFieldsTooLarge => 431,
            Status::InternalServerError => 500,
            Status::VersionNotSupported => 505,
        }
    }

    /// The reason phrase of the status line.
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::ContentTooLarge => "Content Too Large",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::InternalServerError => "Internal Server Error",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// A response, ready to be written whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status.
    pub status: Status,
    /// The `Content-Type` header's value.
    pub content_type: &'static str,
    /// The body; for `HEAD`, only its length is sent.
    pub body: String,
    /// False for `HEAD`: headers only.
    pub with_body: bool,
}

/// The content type of the short text bodies of errors.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

impl Response {
    /// A response with a short text body saying what went wrong.
    pub fn error(status: Status, message: &str) -> Response {
        Response {
            status,
            content_type: TEXT_CONTENT_TYPE,
            body: format!("{message}\n"),
            with_body: true,
        }
    }

    /// The bytes on the wire: status line, headers, and the body unless
    /// it is an answer to `HEAD`. Always `Connection: close`, and a
    /// `Content-Length`, so the client knows the body is whole.
    pub fn to_bytes(&self) -> Vec<u8> {
        let allow = if self.status == Status::MethodNotAllowed {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status.code(),
            self.status.reason(),
            self.content_type,
            self.body.len(),
        );
        let mut bytes = head.into_bytes();
        if self.with_body {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that hands out its bytes a few at a time, then says it
    /// would block (or that it ended).
    struct Chunks<'a> {
        data: &'a [u8],
        chunk: usize,
        ends: bool,
    }

    impl Read for Chunks<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() {
                return if self.ends {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            let n = self.chunk.min(buf.len()).min(self.data.len());
            let (now, later) = self.data.split_at(n);
            buf[..n].copy_from_slice(now);
            self.data = later;
            Ok(n)
        }
    }

    /// What a reader of `capacity` makes of `data` handed over `chunk`
    /// bytes at a time, feeding it until it stops asking.
    fn read_in_chunks(data: &[u8], chunk: usize, capacity: usize) -> Step {
        let mut reader = RequestReader::with_capacity(capacity);
        let mut source = Chunks {
            data,
            chunk,
            ends: false,
        };
        reader.read_from(&mut source).unwrap()
    }

    fn read_all(data: &[u8]) -> Step {
        read_in_chunks(data, data.len().max(1), MAX_HEAD)
    }

    const GET: Request = Request {
        method: Method::Get,
        is_metrics_path: true,
        wants_openmetrics: false,
    };

    #[test]
    fn a_scrape_is_read_whatever_the_split() {
        let head = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9187\r\nAccept: */*\r\n\r\n";
        for chunk in 1..=head.len() {
            assert_eq!(
                read_in_chunks(head, chunk, MAX_HEAD),
                Step::Request(GET),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn bare_newlines_and_empty_lines_before_the_request_line_are_tolerated() {
        assert_eq!(
            read_all(b"\r\n\nGET /metrics HTTP/1.0\nHost: x\n\n"),
            Step::Request(GET)
        );
        assert_eq!(read_all(b"GET /metrics HTTP/1.0\r\n\n"), Step::Request(GET));
    }

    #[test]
    fn an_unfinished_head_is_pending_and_a_closed_one_is_closed() {
        assert_eq!(read_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), Step::Pending);
        let mut reader = RequestReader::default();
        let mut source = Chunks {
            data: b"GET /metr",
            chunk: 4,
            ends: true,
        };
        assert_eq!(reader.read_from(&mut source).unwrap(), Step::Closed);
    }

    #[test]
    fn a_head_that_does_not_fit_is_refused_once_the_buffer_is_full() {
        let head = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(read_all(head), Step::Request(GET));
        // One byte short of the whole head, at every split.
        for chunk in 1..=head.len() {
            assert_eq!(
                read_in_chunks(head, chunk, head.len() - 1),
                Step::Rejected(RequestError::HeadTooLarge),
                "chunk {chunk}"
            );
        }
        // A line that never ends, far longer than the buffer: the reader
        // takes exactly its capacity and stops.
        let endless = vec![b'a'; 10 * MAX_HEAD];
        let mut reader = RequestReader::default();
        let mut source = Chunks {
            data: &endless,
            chunk: 1000,
            ends: false,
        };
        assert_eq!(
            reader.read_from(&mut source).unwrap(),
            Step::Rejected(RequestError::HeadTooLarge)
        );
        assert_eq!(
            source.data.len(),
            endless.len() - MAX_HEAD,
            "read no more than the buffer"
        );
    }

    #[test]
    fn a_body_is_refused_without_reading_its_length_as_a_number() {
        for length in [
            "30000000000",
            "18446744073709551615",
            "10000000000",
            "1",
            "99999999999999999999999999999999999999999",
        ] {
            let head = format!("GET /metrics HTTP/1.1\r\nContent-Length: {length}\r\n\r\n");
            assert_eq!(
                read_all(head.as_bytes()),
                Step::Rejected(RequestError::BodyNotAllowed),
                "{length}"
            );
        }
        for zero in ["0", "000", " 0 "] {
            let head = format!("GET /metrics HTTP/1.1\r\ncontent-length:{zero}\r\n\r\n");
            assert_eq!(read_all(head.as_bytes()), Step::Request(GET), "{zero:?}");
        }
        for bad in ["", "-1", "1e3", "0x10", "1, 1", "+0"] {
            let head = format!("GET /metrics HTTP/1.1\r\nContent-Length: {bad}\r\n\r\n");
            assert!(
                matches!(
                    read_all(head.as_bytes()),
                    Step::Rejected(RequestError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        let chunked = b"GET /metrics HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(read_all(chunked), Step::Rejected(RequestError::BodyNotAllowed));
    }

    #[test]
    fn methods_paths_and_accept_are_told_apart() {
        let parse = |head: &str| parse_head(head.as_bytes()).unwrap();
        assert_eq!(parse("HEAD /metrics HTTP/1.1\r\n\r\n").method, Method::Head);
        assert_eq!(parse("POST /metrics HTTP/1.1\r\n\r\n").method, Method::Other);
        assert_eq!(
            parse("get /metrics HTTP/1.1\r\n\r\n").method,
            Method::Other,
            "methods are case-sensitive"
        );
        for metrics in [
            "/metrics",
            "/metrics?x=1",
            "/metrics?",
            "http://h:1/metrics?a",
            "HTTP://h/metrics",
        ] {
            assert!(
                parse(&format!("GET {metrics} HTTP/1.1\r\n\r\n")).is_metrics_path,
                "{metrics}"
            );
        }
        for other in [
            "/",
            "/metric",
            "/metrics/",
            "/metrics/x",
            "/METRICS",
            "*",
            "http://h",
            "metrics",
        ] {
            assert!(
                !parse(&format!("GET {other} HTTP/1.1\r\n\r\n")).is_metrics_path,
                "{other}"
            );
        }
        let prometheus = "GET /metrics HTTP/1.1\r\naccept: application/OpenMetrics-text;version=1.0.0,\
                          text/plain;version=0.0.4;q=0.5\r\n\r\n";
        assert!(parse(prometheus).wants_openmetrics);
        assert!(!parse("GET /metrics HTTP/1.1\r\nAccept: text/plain\r\n\r\n").wants_openmetrics);
        assert!(
            !parse("GET /metrics HTTP/1.1\r\nX-Accept: application/openmetrics-text\r\n\r\n")
                .wants_openmetrics
        );
    }

    #[test]
    fn what_is_not_http_is_a_bad_request() {
        let heads: [&[u8]; 12] = [
            b"\x00\xffnot http at all\r\n\r\n",
            b"GET /metrics\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1 \r\n\r\n",
            b"GET /met rics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: a\rb\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n",
            b"G(T /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics http/1.1\r\n\r\n",
        ];
        for head in heads {
            assert!(
                matches!(parse_head(head), Err(RequestError::Malformed(_))),
                "{:?}: {:?}",
                String::from_utf8_lossy(head),
                parse_head(head)
            );
        }
        assert_eq!(
            parse_head(b"GET /metrics HTTP/2.0\r\n\r\n"),
            Err(RequestError::VersionNotSupported)
        );
    }

    #[test]
    fn no_byte_sequence_panics_the_reader() {
        // Every 3-byte sequence of a few interesting bytes, repeated, at
        // several capacities.
        let alphabet = [b'\r', b'\n', b' ', b':', b'G', 0, 0xff, b'0'];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    let data = [a, b, c].repeat(5);
                    for capacity in [1, 4, 16] {
                        let _ = read_in_chunks(&data, 2, capacity);
                    }
                }
            }
        }
    }

    #[test]
    fn responses_close_the_connection_and_head_sends_no_body() {
        let ok = Response {
            status: Status::Ok,
            content_type: "text/plain",
            body: "a 1\n".to_string(),
            with_body: true,
        };
        assert_eq!(
            String::from_utf8(ok.to_bytes()).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\na 1\n"
        );
        let head = Response {
            with_body: false,
            ..ok
        };
        assert!(String::from_utf8(head.to_bytes())
            .unwrap()
            .ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"));
        let not_allowed = Response::error(Status::MethodNotAllowed, "no");
        assert!(String::from_utf8(not_allowed.to_bytes())
            .unwrap()
            .starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(String::from_utf8(not_allowed.to_bytes())
            .unwrap()
            .contains("\r\nAllow: GET, HEAD\r\n"));
        assert_eq!(RequestError::HeadTooLarge.status().code(), 431);
        assert_eq!(RequestError::BodyNotAllowed.status().code(), 413);
    }
}
