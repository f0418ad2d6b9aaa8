//! The web front end: the daemon serves its own page, and the page's
//! WebSocket speaks the line protocol, so browser users share rooms with
//! `nc`, `chat-client` and IRC users.
//!
//! A connection on a web listener starts as HTTP ([`http`]): each request
//! gets one of the page's files ([`assets`]) or a refusal, and is closed;
//! a request for `/ws` from an allowed origin ([`origin`]) is upgraded, and
//! from then on the connection carries WebSocket frames ([`frames`]): one
//! client line per text message in, one server line per text message out.
//! Only then does the hub hear of it, as a guest like any line-protocol
//! client; what it says and is told is the line protocol's
//! ([`crate::frontend::line`]), with the same limits.
//!
//! What the event loop does for it: reads the request's bytes into
//! [`Session::take_request`] until that has an answer, writes the answer,
//! and after an upgrade reads frames with a [`frames::FrameDecoder`]
//! instead of a line decoder; answers pings, pings quiet sockets, and
//! sends a Close frame before it closes one.

pub mod assets;
pub mod frames;
pub mod http;
pub mod origin;

use chat_protocol::ServerEvent;

use self::http::{Parsed, Reply, Status, MAX_REQUEST_HEAD};
use self::origin::OriginPolicy;

/// A web connection's state before its upgrade: the request head read so
/// far (at most [`MAX_REQUEST_HEAD`] bytes and a read's worth).
#[derive(Debug, Clone, Default)]
pub struct Session {
    request: Vec<u8>,
}

/// What a piece of a request comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The request is not complete: read more.
    More,
    /// The request is answered: write this, then close, unless it is an
    /// upgrade.
    Answer {
        /// The answer.
        reply: Reply,
        /// The request's method and path, for the log.
        request: String,
        /// What came after the request head (the first frames of a client
        /// that did not wait for the upgrade's answer).
        after: Vec<u8>,
    },
}

impl Session {
    /// Takes the next piece of the request.
    pub fn take_request(&mut self, piece: &[u8], origins: &OriginPolicy, secure: bool) -> Step {
        let start = self.request.len();
        self.request.extend_from_slice(piece);
        if !http::may_end_head(&self.request, start) {
            return Step::More;
        }
        let request = std::mem::take(&mut self.request);
        match http::parse(&request) {
            Parsed::Partial if request.len() <= MAX_REQUEST_HEAD => {
                self.request = request;
                Step::More
            }
            Parsed::Partial => Step::Answer {
                reply: Reply::Refused(
                    Status::HeadersTooLarge,
                    why_invalid(Status::HeadersTooLarge).to_string(),
                ),
                request: "-".to_string(),
                after: Vec::new(),
            },
            Parsed::Invalid(status) => Step::Answer {
                reply: Reply::Refused(status, why_invalid(status).to_string()),
                request: "-".to_string(),
                after: Vec::new(),
            },
            Parsed::Complete { head, len } => Step::Answer {
                reply: http::answer(&head, origins, secure),
                request: format!(
                    "{} {}",
                    head.method,
                    head.path.chars().take(100).collect::<String>()
                ),
                after: request.get(len..).unwrap_or_default().to_vec(),
            },
        }
    }

    /// Bytes held, for figures.
    pub fn capacity(&self) -> usize {
        self.request.capacity()
    }
}

/// Why a request the parser refused with `status` is refused, for its
/// answer's body.
fn why_invalid(status: Status) -> &'static str {
    match status {
        Status::HeadersTooLarge => "request head too large",
        _ => "not a request this server understands",
    }
}

/// Appends `event` as the line protocol says it, one text frame per line.
pub fn encode(event: &ServerEvent, out: &mut Vec<u8>) {
    for line in event.lines() {
        let start = out.len();
        line.encode(out);
        // The frame is the line; its newline is not needed.
        out.pop();
        frames::frame_text_from(out, start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_in_pieces_is_answered_once_it_is_complete_and_what_follows_is_kept() {
        let mut session = Session::default();
        let policy = OriginPolicy::default();
        let request = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let bytes = [request.as_bytes(), b"\x81\x80frame"].concat();
        let (first, rest) = bytes.split_at(20);
        assert_eq!(session.take_request(first, &policy, false), Step::More);
        match session.take_request(rest, &policy, false) {
            Step::Answer {
                reply,
                request,
                after,
            } => {
                assert!(reply.upgrades());
                assert_eq!(request, "GET /ws");
                assert_eq!(after, b"\x81\x80frame");
            }
            Step::More => panic!("the request was complete"),
        }
    }

    #[test]
    fn a_head_that_never_ends_is_refused_past_the_limit() {
        let mut session = Session::default();
        let policy = OriginPolicy::default();
        let mut answer = session.take_request(b"GET / HTTP/1.1\r\n", &policy, false);
        for _ in 0..(MAX_REQUEST_HEAD / 10 + 2) {
            answer = session.take_request(b"X-Pad: a\r\n", &policy, false);
            if answer != Step::More {
                break;
            }
        }
        assert!(matches!(
            answer,
            Step::Answer {
                reply: Reply::Refused(Status::HeadersTooLarge, _),
                ..
            }
        ));
        assert!(session.capacity() <= 2 * MAX_REQUEST_HEAD);
    }

    proptest::proptest! {
        #[test]
        fn no_request_bytes_panic_or_hold_more_than_a_head_and_a_read(
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12_000),
            start_like_a_request in proptest::prelude::any::<bool>(),
            cut in 1_usize..700,
        ) {
            let policy = OriginPolicy::default();
            let mut session = Session::default();
            let prefix: &[u8] = if start_like_a_request {
                b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            } else {
                b""
            };
            let input = [prefix, &garbage].concat();
            for piece in input.chunks(cut) {
                match session.take_request(piece, &policy, false) {
                    Step::More => proptest::prop_assert!(session.request.len() <= MAX_REQUEST_HEAD + cut),
                    Step::Answer { after, .. } => {
                        proptest::prop_assert!(after.len() < cut);
                        break;
                    }
                }
            }
        }
    }

    #[test]
    fn every_line_of_an_event_is_its_own_text_frame() {
        let event = ServerEvent::Said {
            room: chat_protocol::RoomName::new("lobby").unwrap(),
            from: chat_protocol::Nick::new("alice").unwrap(),
            text: "hi".into(),
        };
        let mut out = Vec::new();
        encode(&event, &mut out);
        assert_eq!(out, [&[0x81, 10][..], b"<alice> hi"].concat());
    }
}
