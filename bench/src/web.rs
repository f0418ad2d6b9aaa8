//! The WebSocket dialect of the generator (issue 18): what one client
//! connection says to chat-server's web listener (`--web-listen`, the
//! WebSocket at `/ws`) and what it makes of the bytes that come back.
//!
//! Kept apart from the engine and free of sockets, as the IRC dialect is
//! ([`crate::irc`]): the I/O threads queue the bytes built here and feed
//! what they read to a [`Decoder`], which hands out the few things the
//! engine needs to know ([`Event`]). The WebSocket carries the line
//! protocol one line per text message (PROTOCOL.md), so once upgraded a
//! client is a line client whose lines are frames: the engine's line
//! handling (welcome, `/nick`, `/join`, stamped deliveries) is the same.
//!
//! A client connects, sends the upgrade ([`upgrade_request`]: `GET /ws`,
//! no `Origin`, as a program rather than a browser) and reads the answer
//! head; a `101` with the `Sec-WebSocket-Accept` that RFC 6455 derives from
//! our key upgrades it, anything else ends it with the server's status
//! line. Then every line it sends is a masked text frame ([`write_line`],
//! [`write_stamped`]; RFC 6455 requires a client to mask, and the server
//! closes a connection that does not), and the server's frames are
//! unmasked text, one line each. A Ping is answered with a Pong carrying
//! its payload ([`write_pong`]); the server pings a socket that has been
//! quiet for 30 s and closes it when no Pong comes.
//!
//! Frame headers are parsed by tungstenite (the server's own choice,
//! [`FrameHeader::parse`], which says "not enough bytes yet" without
//! consuming any), so a header split between reads is kept here (at most 14
//! bytes) and parsed again with the next read. Writing a header is a few
//! bytes done by hand ([`frame_from`]), infallible and without a buffer of
//! its own. A message split over frames (fragmentation) or over reads is
//! kept until it ends, up to [`MAX_MESSAGE`]; a whole text frame within one
//! read is handed out in place, not copied. What the generator does not
//! understand (a binary message, a masked server frame, reserved bits, a
//! continuation out of place, a control frame over 125 bytes) is an error
//! ([`WebError`]) that ends the connection with its reason; nothing here
//! panics on any bytes.
//!
//! Every frame a connection sends uses the same mask ([`mask_for`]): the
//! mask protects browsers' peers from cache poisoning by scripts, which a
//! benchmark on loopback is not; the server unmasks whatever the key, so
//! its cost is measured all the same.

use std::fmt;
use std::io::Cursor;

use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

use crate::payload::{self, Stamp};

/// Where chat-server serves its WebSocket.
pub const PATH: &str = "/ws";

/// The `Sec-WebSocket-Key` every connection sends: RFC 6455's own sample
/// nonce (section 1.3). The RFC asks a browser for a fresh random one per
/// connection, so that a server proves it read this request; one server on
/// loopback, measured, gains nothing from that, and one key lets every
/// answer be checked against one accept value.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The longest answer head to an upgrade that is read: the server's
/// `101` is about 130 bytes, a refusal a few hundred.
pub const MAX_HEAD: usize = 8 * 1024;

/// The longest message kept while waiting for its end, as for a line of
/// the line protocol ([`crate::client::MAX_PARTIAL`]): the server sends a
/// line per message, far shorter; past this the connection is broken.
pub const MAX_MESSAGE: usize = crate::client::MAX_PARTIAL;

/// The longest frame header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;

/// The most a control frame may carry (RFC 6455, 5.5).
const MAX_CONTROL: usize = 125;

/// Opcodes of the frames the generator writes (RFC 6455, 5.2).
const OP_TEXT: u8 = 0x1;
/// A Pong, the answer to a Ping.
const OP_PONG: u8 = 0xA;

/// Why a WebSocket connection could not go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebError {
    /// The server answered the upgrade with something other than `101`:
    /// its status line.
    NotUpgraded(String),
    /// A `101` without the `Sec-WebSocket-Accept` our key calls for: what
    /// it carried instead (empty when none).
    WrongAccept(String),
    /// The answer head passed [`MAX_HEAD`] bytes without ending.
    HeadTooLong,
    /// A frame the generator does not understand, and why.
    BadFrame(&'static str),
    /// A message longer than [`MAX_MESSAGE`] (its length so far, with the
    /// frame that passed the limit).
    TooLong(u64),
}

impl fmt::Display for WebError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebError::NotUpgraded(status) => write!(f, "WebSocket upgrade refused: {status}"),
            WebError::WrongAccept(got) if got.is_empty() => {
                f.write_str("WebSocket upgrade answered without a Sec-WebSocket-Accept")
            }
            WebError::WrongAccept(got) => write!(
                f,
                "WebSocket upgrade answered with the wrong Sec-WebSocket-Accept {got:?}"
            ),
            WebError::HeadTooLong => write!(
                f,
                "WebSocket upgrade: the answer head passed {MAX_HEAD} bytes without ending"
            ),
            WebError::BadFrame(why) => write!(f, "WebSocket: {why}"),
            WebError::TooLong(len) => write!(
                f,
                "WebSocket: a message of {len} bytes or more, past the {MAX_MESSAGE} a line may be"
            ),
        }
    }
}

impl std::error::Error for WebError {}

/// What a piece of the server's stream means to the generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// The upgrade was answered with `101` and the right accept key:
    /// frames follow.
    Upgraded,
    /// A whole text message: one server line, without a newline.
    Text(&'a [u8]),
    /// A Ping, with its payload: answer it with [`write_pong`].
    Ping(&'a [u8]),
    /// A Pong (the generator sends no pings; ignored).
    Pong,
    /// A Close frame, with its status if it gave one: the stream ends.
    Close(Option<u16>),
}

/// The kind of the data or control frame being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The first frame of a text message.
    Text,
    /// A later frame of a fragmented text message.
    Continuation,
    /// A Ping.
    Ping,
    /// A Pong.
    Pong,
    /// A Close.
    Close,
}

impl Kind {
    fn is_control(self) -> bool {
        matches!(self, Kind::Ping | Kind::Pong | Kind::Close)
    }
}

/// Where the decoder is in the server's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the answer to the upgrade (kept in [`Decoder::head`]).
    Head,
    /// Reading a frame header: these bytes of it so far.
    Header { bytes: [u8; MAX_HEADER], len: usize },
    /// Reading a frame's payload.
    Payload {
        /// What the frame is.
        kind: Kind,
        /// Whether it ends its message (FIN).
        last: bool,
        /// Payload bytes still to come.
        remaining: u64,
    },
    /// The stream ended (a Close, or an error): nothing more is read.
    Ended,
}

/// One connection's reader of the server's side: the answer to the
/// upgrade, then frames.
///
/// Invariants: `head` holds at most [`MAX_HEAD`] bytes and only before the
/// upgrade; `message` at most [`MAX_MESSAGE`] and only while a message is
/// split (between reads or frames); `control` at most 125 bytes.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// Where it is.
    state: State,
    /// The answer head read so far, before the upgrade.
    head: Vec<u8>,
    /// A text message not yet complete: the payload read so far.
    message: Vec<u8>,
    /// A fragmented message is under way (a text frame without FIN came):
    /// the next data frame must be a continuation.
    in_message: bool,
    /// A control frame's payload split between reads.
    control: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder waiting for the answer to the upgrade.
    pub fn new() -> Decoder {
        Decoder {
            state: State::Head,
            head: Vec::new(),
            message: Vec::new(),
            in_message: false,
            control: Vec::new(),
        }
    }

    /// Whether the upgrade was answered (and frames are read).
    pub fn is_upgraded(&self) -> bool {
        !matches!(self.state, State::Head)
    }

    /// Takes the next bytes from the server, calling `on` for each thing
    /// they complete, in order. After a Close or an error nothing more is
    /// read.
    ///
    /// # Errors
    /// When the answer to the upgrade is not a `101` with the right accept
    /// key, or a frame is one the generator does not understand: the
    /// connection cannot go on.
    pub fn feed(&mut self, data: &[u8], mut on: impl FnMut(Event<'_>)) -> Result<(), WebError> {
        let outcome = match self.state {
            State::Ended => Ok(()),
            State::Head => self.feed_head(data, &mut on),
            _ => self.feed_frames(data, &mut on),
        };
        if outcome.is_err() {
            self.state = State::Ended;
        }
        outcome
    }

    /// Reads the answer head; once it ends, checks it and reads what
    /// follows it as frames.
    fn feed_head(&mut self, data: &[u8], on: &mut impl FnMut(Event<'_>)) -> Result<(), WebError> {
        // The end may straddle the previous piece: look from 3 bytes back.
        let from = self.head.len().saturating_sub(3);
        self.head.extend_from_slice(data);
        // A server that is not answering the upgrade (a line listener's
        // welcome, say) is told apart by its first line, without waiting
        // for a blank line that may never come.
        if let Some(first) = memchr::memchr(b'\n', &self.head) {
            let status = self.head.get(..first).unwrap_or_default();
            let status = status.strip_suffix(b"\r").unwrap_or(status);
            if !is_switching(status) {
                return Err(WebError::NotUpgraded(
                    String::from_utf8_lossy(status).chars().take(200).collect(),
                ));
            }
        }
        let Some(end) = self
            .head
            .get(from..)
            .and_then(|tail| memchr::memmem::find(tail, b"\r\n\r\n"))
            .map(|at| from + at)
        else {
            if self.head.len() > MAX_HEAD {
                return Err(WebError::HeadTooLong);
            }
            return Ok(());
        };
        if end > MAX_HEAD {
            return Err(WebError::HeadTooLong);
        }
        let head = std::mem::take(&mut self.head);
        let (answer, rest) = head.split_at(end);
        check_answer(answer)?;
        self.state = State::Header {
            bytes: [0; MAX_HEADER],
            len: 0,
        };
        on(Event::Upgraded);
        self.feed_frames(rest.get(4..).unwrap_or_default(), on)
    }

    /// Reads frames from `data`. Each turn takes at least one byte, or
    /// ends the stream.
    fn feed_frames(&mut self, mut data: &[u8], on: &mut impl FnMut(Event<'_>)) -> Result<(), WebError> {
        while !data.is_empty() {
            match self.state {
                State::Head | State::Ended => return Ok(()),
                State::Header { mut bytes, len } => {
                    let take = MAX_HEADER.saturating_sub(len).min(data.len());
                    let (piece, _) = data.split_at(take);
                    if let Some(slot) = bytes.get_mut(len..len + take) {
                        slot.copy_from_slice(piece);
                    }
                    let have = bytes.get(..len + take).unwrap_or_default();
                    let mut cursor = Cursor::new(have);
                    match FrameHeader::parse(&mut cursor) {
                        Ok(Some((header, length))) => {
                            // Only this piece's bytes of the header are consumed
                            // here; what follows them is payload.
                            let used = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
                            data = data.get(used.saturating_sub(len)..).unwrap_or_default();
                            self.start_frame(&header, length, on)?;
                        }
                        // Fourteen bytes always hold a header, so this took
                        // all of `data`.
                        Ok(None) if take > 0 => {
                            self.state = State::Header {
                                bytes,
                                len: len + take,
                            };
                            data = data.get(take..).unwrap_or_default();
                        }
                        Ok(None) => return Err(WebError::BadFrame("a frame header past 14 bytes")),
                        Err(_) => return Err(WebError::BadFrame("a frame with a reserved opcode")),
                    }
                }
                State::Payload {
                    kind,
                    last,
                    remaining,
                } => {
                    let n = usize::try_from(remaining).unwrap_or(usize::MAX).min(data.len());
                    let (chunk, rest) = data.split_at(n);
                    data = rest;
                    let remaining = remaining - n as u64;
                    if remaining == 0 && kind == Kind::Text && last && self.message.is_empty() {
                        // A whole message in this read: handed out in place.
                        self.state = State::Header {
                            bytes: [0; MAX_HEADER],
                            len: 0,
                        };
                        on(Event::Text(chunk));
                        continue;
                    }
                    if kind.is_control() {
                        self.control.extend_from_slice(chunk);
                    } else {
                        self.message.extend_from_slice(chunk);
                    }
                    self.state = State::Payload {
                        kind,
                        last,
                        remaining,
                    };
                    if remaining == 0 {
                        self.end_frame(kind, last, on);
                    }
                }
            }
        }
        Ok(())
    }

    /// A frame's header was read: checks it is one the server may send
    /// and the generator understands, and starts reading its payload.
    fn start_frame(
        &mut self,
        header: &FrameHeader,
        length: u64,
        on: &mut impl FnMut(Event<'_>),
    ) -> Result<(), WebError> {
        if header.mask.is_some() {
            return Err(WebError::BadFrame("a masked frame from the server"));
        }
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(WebError::BadFrame(
                "a frame with reserved bits set (no extension was agreed)",
            ));
        }
        let kind = match header.opcode {
            OpCode::Data(Data::Text) if self.in_message => {
                return Err(WebError::BadFrame("a new text message before the last one ended"))
            }
            OpCode::Data(Data::Text) => Kind::Text,
            OpCode::Data(Data::Continue) if self.in_message => Kind::Continuation,
            OpCode::Data(Data::Continue) => {
                return Err(WebError::BadFrame(
                    "a continuation frame with no message to continue",
                ))
            }
            OpCode::Data(Data::Binary) => {
                return Err(WebError::BadFrame(
                    "a binary message (the server sends its lines as text)",
                ))
            }
            OpCode::Control(Control::Ping) => Kind::Ping,
            OpCode::Control(Control::Pong) => Kind::Pong,
            OpCode::Control(Control::Close) => Kind::Close,
            OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_)) => {
                return Err(WebError::BadFrame("a frame with a reserved opcode"))
            }
        };
        if kind.is_control() {
            if !header.is_final {
                return Err(WebError::BadFrame("a fragmented control frame"));
            }
            if length > MAX_CONTROL as u64 {
                return Err(WebError::BadFrame("a control frame over 125 bytes"));
            }
            self.control.clear();
        } else {
            let total = (self.message.len() as u64).saturating_add(length);
            if total > MAX_MESSAGE as u64 {
                return Err(WebError::TooLong(total));
            }
            self.in_message = !header.is_final;
        }
        self.state = State::Payload {
            kind,
            last: header.is_final,
            remaining: length,
        };
        if length == 0 {
            self.end_frame(kind, header.is_final, on);
        }
        Ok(())
    }

    /// A frame's payload is all read: hands out what it completes and
    /// goes back to reading headers (or ends, after a Close).
    fn end_frame(&mut self, kind: Kind, last: bool, on: &mut impl FnMut(Event<'_>)) {
        self.state = State::Header {
            bytes: [0; MAX_HEADER],
            len: 0,
        };
        match kind {
            Kind::Text | Kind::Continuation => {
                if last {
                    on(Event::Text(&self.message));
                    self.message.clear();
                }
            }
            Kind::Ping => on(Event::Ping(&self.control)),
            Kind::Pong => on(Event::Pong),
            Kind::Close => {
                let status = match self.control.as_slice() {
                    [high, low, ..] => Some(u16::from_be_bytes([*high, *low])),
                    _ => None,
                };
                self.state = State::Ended;
                on(Event::Close(status));
            }
        }
    }
}

/// Checks the answer head (without its blank line) to our upgrade: status
/// `101` and the accept key derived from [`KEY`].
fn check_answer(head: &[u8]) -> Result<(), WebError> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !is_switching(status.as_bytes()) {
        return Err(WebError::NotUpgraded(status.chars().take(200).collect()));
    }
    let accept = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|(_, value)| value.trim().to_string())
        .unwrap_or_default();
    if accept != expected_accept() {
        return Err(WebError::WrongAccept(accept.chars().take(100).collect()));
    }
    Ok(())
}

/// Whether `status` (a status line without its line end) is HTTP/1.x's
/// `101`.
fn is_switching(status: &[u8]) -> bool {
    let mut words = status.split(|&b| b == b' ');
    words.next().is_some_and(|v| v.starts_with(b"HTTP/1.")) && words.next() == Some(b"101".as_slice())
}

/// The `Sec-WebSocket-Accept` a server must answer [`KEY`] with.
pub fn expected_accept() -> String {
    tungstenite::handshake::derive_accept_key(KEY.as_bytes())
}

/// Appends the upgrade request to chat-server's WebSocket at `host` (the
/// address connected to, as `Host`). No `Origin`: a program, which the
/// server lets in (a browser's page must come from an allowed origin).
pub fn upgrade_request(out: &mut Vec<u8>, host: &str) {
    out.extend_from_slice(
        format!(
            "GET {PATH} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    );
}

/// The mask of every frame client `id` sends: fixed per connection, never
/// all zeros (a zero mask would be valid, but a server could skip the
/// unmasking work for it, and the benchmark measures that work).
pub fn mask_for(id: usize) -> [u8; 4] {
    // Fibonacci hashing spreads neighbouring ids; `| 1` keeps it non-zero.
    let id = u32::try_from(id % (1 << 31)).unwrap_or(0);
    (id.wrapping_mul(0x9E37_79B9) | 1).to_be_bytes()
}

/// Makes the bytes `out[start..]` one masked, final frame of `opcode`: its
/// header goes before them, and they are masked in place.
pub fn frame_from(out: &mut Vec<u8>, start: usize, opcode: u8, mask: [u8; 4]) {
    let start = start.min(out.len());
    let len = out.len() - start;
    if let Some(payload) = out.get_mut(start..) {
        for (byte, key) in payload.iter_mut().zip(mask.iter().cycle()) {
            *byte ^= key;
        }
    }
    // The length in 7 bits, or 126 and 16 bits, or 127 and 64 bits.
    let wide = (len as u64).to_be_bytes();
    let (short, extended): (u8, &[u8]) = match u16::try_from(len) {
        Ok(n) if n < 126 => (n as u8, &[]),
        Ok(_) => (126, wide.get(6..).unwrap_or_default()),
        Err(_) => (127, &wide),
    };
    // FIN and the opcode; the mask bit and the length; the mask.
    let header = [0x80 | (opcode & 0x0F), 0x80 | short]
        .into_iter()
        .chain(extended.iter().copied())
        .chain(mask);
    out.splice(start..start, header);
}

/// Appends `line` (without a newline) as one masked text frame.
pub fn write_line(out: &mut Vec<u8>, line: &[u8], mask: [u8; 4]) {
    let start = out.len();
    out.extend_from_slice(line);
    frame_from(out, start, OP_TEXT, mask);
}

/// Appends one stamped line as a masked text frame: the same 63 bytes of
/// text the line protocol sends, without its newline.
pub fn write_stamped(out: &mut Vec<u8>, stamp: Stamp, mask: [u8; 4]) {
    let start = out.len();
    payload::write_text(out, stamp);
    frame_from(out, start, OP_TEXT, mask);
}

/// Appends the Pong answering a Ping that carried `payload`.
pub fn write_pong(out: &mut Vec<u8>, payload: &[u8], mask: [u8; 4]) {
    let start = out.len();
    out.extend_from_slice(payload);
    frame_from(out, start, OP_PONG, mask);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's answer to our upgrade.
    fn upgraded() -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            expected_accept()
        )
        .into_bytes()
    }

    /// An unmasked server frame.
    fn server_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n <= 0xFFFF => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    /// What feeding `pieces` one after another hands out, as text.
    fn events(decoder: &mut Decoder, pieces: &[&[u8]]) -> Result<Vec<String>, WebError> {
        let mut seen = Vec::new();
        for piece in pieces {
            decoder.feed(piece, |event| {
                seen.push(match event {
                    Event::Upgraded => "upgraded".to_string(),
                    Event::Text(t) => format!("text {}", String::from_utf8_lossy(t)),
                    Event::Ping(p) => format!("ping {}", String::from_utf8_lossy(p)),
                    Event::Pong => "pong".to_string(),
                    Event::Close(status) => format!("close {status:?}"),
                })
            })?;
        }
        Ok(seen)
    }

    /// Undoes [`frame_from`] with tungstenite's parser: the header, and the
    /// payload unmasked.
    fn parse_client_frame(bytes: &[u8]) -> (FrameHeader, Vec<u8>) {
        let mut cursor = Cursor::new(bytes);
        let (header, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
        let at = cursor.position() as usize;
        assert_eq!(bytes.len() - at, len as usize, "one frame, all of it");
        let mask = header.mask.expect("a client frame is masked");
        let payload = bytes[at..]
            .iter()
            .zip(mask.iter().cycle())
            .map(|(b, k)| b ^ k)
            .collect();
        (header, payload)
    }

    #[test]
    fn frames_written_parse_back_masked_with_their_payload_at_every_length_form() {
        for len in [0, 1, 63, 125, 126, 65_535, 65_536] {
            let line = vec![b'a'; len];
            let mut out = b"before".to_vec();
            write_line(&mut out, &line, mask_for(7));
            assert_eq!(&out[..6], b"before");
            let (header, payload) = parse_client_frame(&out[6..]);
            assert!(header.is_final);
            assert_eq!(header.opcode, OpCode::Data(Data::Text));
            assert_eq!(header.mask, Some(mask_for(7)));
            assert_eq!(payload, line, "length {len}");
        }
        let stamp = Stamp {
            t: 123_456_789,
            sender: 4,
            seq: 99,
        };
        let mut out = Vec::new();
        write_stamped(&mut out, stamp, mask_for(3));
        let (_, payload) = parse_client_frame(&out);
        assert_eq!(payload.len(), payload::LINE_LEN - 1);
        assert_eq!(payload::parse_delivery(&payload), Some(stamp));
        // Masked for real: the bytes on the wire are not the text.
        assert!(!out.windows(4).any(|w| w == b"t=12"));
    }

    #[test]
    fn masks_differ_between_connections_and_are_never_zero() {
        assert_ne!(mask_for(0), mask_for(1));
        assert!((0..10_000).chain([usize::MAX]).all(|id| mask_for(id) != [0; 4]));
    }

    #[test]
    fn the_upgrade_request_is_a_get_of_the_socket_without_an_origin() {
        let mut out = Vec::new();
        upgrade_request(&mut out, "127.0.0.1:8080");
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"),
            "{text}"
        );
        for header in [
            "Upgrade: websocket\r\n",
            "Connection: Upgrade\r\n",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            "Sec-WebSocket-Version: 13\r\n",
        ] {
            assert!(text.contains(header), "{header:?} missing: {text}");
        }
        assert!(text.ends_with("\r\n\r\n"));
        assert!(!text.to_ascii_lowercase().contains("origin"));
        // RFC 6455, 1.3: the accept value for the sample nonce.
        assert_eq!(expected_accept(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn an_upgrade_and_its_first_frames_in_one_read_round_trip() {
        let mut stream = upgraded();
        stream.extend(server_frame(0x81, b"-- welcome to chat-server"));
        stream.extend(server_frame(0x81, b"<b1> hello"));
        let mut decoder = Decoder::new();
        assert!(!decoder.is_upgraded());
        let seen = events(&mut decoder, &[&stream]).unwrap();
        assert_eq!(
            seen,
            ["upgraded", "text -- welcome to chat-server", "text <b1> hello"]
        );
        assert!(decoder.is_upgraded());
    }

    #[test]
    fn the_same_stream_split_at_every_byte_gives_the_same_events() {
        let mut stream = upgraded();
        stream.extend(server_frame(0x81, b"-- welcome"));
        stream.extend(server_frame(0x89, b"tok"));
        stream.extend(server_frame(0x81, &[b'x'; 300]));
        // A message in two fragments, a ping between them.
        stream.extend(server_frame(0x01, b"<b2> fir"));
        stream.extend(server_frame(0x89, b""));
        stream.extend(server_frame(0x80, b"st half"));
        stream.extend(server_frame(0x8A, b""));
        stream.extend(server_frame(0x88, &[0x03, 0xE9, b'b', b'y', b'e']));
        let whole = events(&mut Decoder::new(), &[&stream]).unwrap();
        let long = format!("text {}", "x".repeat(300));
        assert_eq!(
            whole,
            [
                "upgraded",
                "text -- welcome",
                "ping tok",
                long.as_str(),
                "ping ",
                "text <b2> first half",
                "pong",
                "close Some(1001)"
            ]
        );
        for at in 0..stream.len() {
            let (a, b) = stream.split_at(at);
            assert_eq!(
                events(&mut Decoder::new(), &[a, b]).unwrap(),
                whole,
                "split at {at}"
            );
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(events(&mut Decoder::new(), &bytes).unwrap(), whole);
    }

    #[test]
    fn a_ping_is_answered_with_a_masked_pong_of_its_payload() {
        let mut decoder = Decoder::new();
        let mut stream = upgraded();
        stream.extend(server_frame(0x89, b"keepalive 42"));
        let mut out = Vec::new();
        decoder
            .feed(&stream, |event| {
                if let Event::Ping(payload) = event {
                    write_pong(&mut out, payload, mask_for(9));
                }
            })
            .unwrap();
        let (header, payload) = parse_client_frame(&out);
        assert_eq!(header.opcode, OpCode::Control(Control::Pong));
        assert!(header.is_final);
        assert_eq!(header.mask, Some(mask_for(9)));
        assert_eq!(payload, b"keepalive 42");
    }

    #[test]
    fn nothing_is_read_after_a_close() {
        let mut stream = upgraded();
        stream.extend(server_frame(0x88, b""));
        stream.extend(server_frame(0x81, b"late"));
        let seen = events(&mut Decoder::new(), &[&stream]).unwrap();
        assert_eq!(seen, ["upgraded", "close None"]);
    }

    #[test]
    fn a_refused_upgrade_says_the_servers_status_line() {
        let mut decoder = Decoder::new();
        let refused = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
        let error = events(&mut decoder, &[refused]).unwrap_err();
        assert_eq!(error, WebError::NotUpgraded("HTTP/1.1 403 Forbidden".to_string()));
        assert_eq!(
            error.to_string(),
            "WebSocket upgrade refused: HTTP/1.1 403 Forbidden"
        );
        // Ended: what follows is not read.
        assert_eq!(
            events(&mut decoder, &[b"\x81\x01x"]).unwrap(),
            Vec::<String>::new()
        );

        let wrong = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n";
        let error = events(&mut Decoder::new(), &[wrong]).unwrap_err();
        assert_eq!(error, WebError::WrongAccept("nope".to_string()));
        // Not HTTP at all (a line listener's welcome): told by its first
        // line, before any blank line.
        let error = events(&mut Decoder::new(), &[b"-- welcome to chat-server\n"]).unwrap_err();
        assert_eq!(
            error,
            WebError::NotUpgraded("-- welcome to chat-server".to_string())
        );
        let none = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
        let error = events(&mut Decoder::new(), &[none]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "WebSocket upgrade answered without a Sec-WebSocket-Accept"
        );
    }

    #[test]
    fn an_answer_head_that_never_ends_is_refused_past_the_limit() {
        let mut decoder = Decoder::new();
        let mut outcome = events(&mut decoder, &[b"HTTP/1.1 101 Switching Protocols\r\n"]);
        for _ in 0..(MAX_HEAD / 10 + 2) {
            outcome = events(&mut decoder, &[b"X-Pad: a\r\n"]);
            if outcome.is_err() {
                break;
            }
        }
        assert_eq!(outcome.unwrap_err(), WebError::HeadTooLong);
    }

    #[test]
    fn frames_the_generator_does_not_understand_are_errors_with_a_reason() {
        let cases: [(Vec<u8>, &str); 8] = [
            (server_frame(0x82, b"bin"), "binary message"),
            (vec![0x81, 0x81, 1, 2, 3, 4, b'x'], "masked frame"),
            (server_frame(0xC1, b"x"), "reserved bits"),
            (server_frame(0x83, b"x"), "reserved opcode"),
            (server_frame(0x80, b"x"), "no message to continue"),
            (server_frame(0x09, b""), "fragmented control frame"),
            (server_frame(0x89, &[0; 126]), "over 125 bytes"),
            (
                [server_frame(0x01, b"a"), server_frame(0x81, b"b")].concat(),
                "before the last one ended",
            ),
        ];
        for (frame, why) in cases {
            let mut stream = upgraded();
            stream.extend(&frame);
            let error = events(&mut Decoder::new(), &[&stream]).unwrap_err();
            assert!(error.to_string().contains(why), "{error} should say {why:?}");
        }
    }

    #[test]
    fn a_message_past_the_limit_is_an_error_before_it_is_stored() {
        let mut stream = upgraded();
        // A header declaring 2^40 bytes, and no payload at all.
        stream.extend([0x81, 127, 0, 0, 1, 0, 0, 0, 0, 0]);
        let mut decoder = Decoder::new();
        let error = events(&mut decoder, &[&stream]).unwrap_err();
        assert_eq!(error, WebError::TooLong(1 << 40));
        assert!(decoder.message.capacity() < 1024);
        // Fragments that add up past it are caught too.
        let mut stream = upgraded();
        stream.extend(server_frame(0x01, &vec![b'a'; MAX_MESSAGE]));
        stream.extend(server_frame(0x80, b"b"));
        let error = events(&mut Decoder::new(), &[&stream]).unwrap_err();
        assert_eq!(error, WebError::TooLong(MAX_MESSAGE as u64 + 1));
    }

    #[test]
    fn no_byte_sequence_panics_the_decoder() {
        // A fixed pseudo-random walk over byte strings, after an upgrade and
        // without one: errors are fine, panics are not.
        let mut x: u32 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for round in 0..2_000 {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let mut decoder = Decoder::new();
            if round % 2 == 0 {
                let _ = decoder.feed(&upgraded(), |_| {});
            }
            let _ = decoder.feed(&bytes, |_| {});
            let _ = decoder.feed(&bytes, |_| {});
        }
    }
}
