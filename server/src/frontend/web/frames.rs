//! WebSocket frames (RFC 6455, section 5) as the server reads and writes
//! them: client messages in as lines, server lines out as text messages.
//!
//! A WebSocket carries the line protocol one line per message, so reading
//! is the [`chat_protocol::LineDecoder`]'s job one level up: a
//! [`FrameDecoder`] takes the raw bytes a client sends, in pieces of any
//! size, unmasks its data frames and hands out the lines its messages hold,
//! with the same limits and errors as a TCP connection (`--max-line`,
//! invalid UTF-8). Frame headers are parsed by tungstenite
//! ([`FrameHeader::parse`]); everything else here is the state between
//! them, since a frame, and even a header, can be split between reads.
//!
//! Invariants, as for the line decoder:
//! - A message is kept until it ends only up to `max_line + 2` bytes (a
//!   line and its `\r\n`); past that it is reported once as
//!   [`DecodeError::MessageTooLong`] and the rest of it is skipped unstored, so a
//!   frame that declares a length of 2^63 costs what one long line costs.
//! - A control frame's payload is at most 125 bytes (the RFC's limit), so
//!   the decoder never holds more than one message, one control payload and
//!   one header.
//! - What breaks the protocol (an unmasked frame, reserved bits or opcodes,
//!   a fragmented or oversized control frame, a continuation out of place)
//!   ends the stream: [`FrameDecoder::end`] says why, and the connection
//!   closes with status 1002. A Close frame from the client ends it too.
//!
//! Text and binary messages are both read as lines (a program that sends
//! binary frames is not refused for it); a message that holds `\n` is that
//! many lines, each with its own flood token, and a trailing `\n` or `\r\n`
//! ends the last one. Ping frames are answered with a pong for the latest
//! one (RFC 6455, 5.5.3 allows leaving older ones unanswered), so a client
//! that sends pings and never reads cannot grow our queue with pongs.

use std::collections::VecDeque;
use std::io::Cursor;

use chat_protocol::{DecodeError, LineDecoder};
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// The longest frame header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;

/// The most a control frame may carry (RFC 6455, 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Close status: the purpose of the connection is fulfilled (a `/quit`).
pub const CLOSE_NORMAL: u16 = 1000;
/// Close status: the server is going away (shutting down).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close status: the client broke the protocol.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;

/// Why a client's stream of frames ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The client sent a Close frame, with this status if it gave one.
    Closed(Option<u16>),
    /// The client broke the protocol in this way.
    Violation(&'static str),
}

/// Where the decoder is in the stream of frames.
#[derive(Debug, Clone)]
enum State {
    /// Reading a header: these bytes of it so far.
    Header { bytes: [u8; MAX_HEADER], len: usize },
    /// Reading a frame's payload.
    Payload(Payload),
    /// The stream has ended (see [`End`]): nothing more is read.
    Ended(End),
}

/// A frame whose payload is being read.
#[derive(Debug, Clone)]
struct Payload {
    kind: Kind,
    /// Whether this frame ends its message (FIN).
    last: bool,
    /// Payload bytes still to come.
    remaining: u64,
    mask: [u8; 4],
    /// Payload bytes read so far, modulo 4: where in the mask the next
    /// byte is.
    phase: usize,
}

/// What a frame's payload is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Part of a text or binary message.
    Data,
    /// A control frame: close, ping or pong.
    Control(Control),
}

/// Turns the bytes of a client's frames into lines.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    state: State,
    /// The line length limit, as `--max-line` says.
    max_line: usize,
    /// The message being received, unmasked, without its end.
    message: Vec<u8>,
    /// True while a message has started (its first frame came without FIN)
    /// and not ended.
    in_message: bool,
    /// True when the message being received went over the limit: its
    /// rest is skipped.
    skipping: bool,
    /// The payload of the control frame being received (at most
    /// [`MAX_CONTROL_PAYLOAD`] bytes).
    control: Vec<u8>,
    /// Lines of messages that have ended, not yet handed out. Bounded:
    /// [`Messages`] reads no further than the end of the next message
    /// until its lines are taken, so this holds one message's lines (a
    /// message is at most `max_line + 2` bytes) and its error, if any.
    ready: VecDeque<Result<String, DecodeError>>,
    /// The payload of the latest ping, until a pong is sent for it.
    pong: Option<Vec<u8>>,
    /// Set when a whole frame has come, for the keepalive.
    heard: bool,
}

impl FrameDecoder {
    /// A decoder for lines of at most `max_line` bytes (not counting a
    /// trailing `\r\n`).
    pub fn new(max_line: usize) -> FrameDecoder {
        FrameDecoder {
            state: State::Header {
                bytes: [0; MAX_HEADER],
                len: 0,
            },
            max_line: max_line.max(1),
            message: Vec::new(),
            in_message: false,
            skipping: false,
            control: Vec::new(),
            ready: VecDeque::new(),
            pong: None,
            heard: false,
        }
    }

    /// Takes the next piece of the stream; the lines it completes are
    /// handed out by the returned iterator, which reads the piece only as
    /// far as it has to (see [`Messages::has_line`]), so that what it did
    /// not read can be kept for later ([`Messages::remaining`]).
    pub fn decode<'a>(&'a mut self, input: &'a [u8]) -> Messages<'a> {
        Messages { decoder: self, input }
    }

    /// True between frames, with nothing of a frame or a message held
    /// and nothing owed (no pong): then the connection can be handed to
    /// another process with a fresh decoder (see [`crate::upgrade`]).
    pub fn is_at_rest(&self) -> bool {
        matches!(self.state, State::Header { len: 0, .. })
            && !self.in_message
            && self.control.is_empty()
            && self.ready.is_empty()
            && self.pong.is_none()
    }

    /// Whether lines of messages that have ended wait to be handed out.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Why the stream ended, once it has.
    pub fn end(&self) -> Option<&End> {
        match &self.state {
            State::Ended(end) => Some(end),
            _ => None,
        }
    }

    /// The pong to send, for the latest ping not answered yet.
    pub fn take_pong(&mut self) -> Option<Vec<u8>> {
        self.pong
            .take()
            .map(|payload| control_frame(Control::Pong, &payload))
    }

    /// True if a whole frame has come since the last call: the client is
    /// alive (for the keepalive, which a pong answers).
    pub fn take_heard(&mut self) -> bool {
        std::mem::take(&mut self.heard)
    }

    /// Bytes of memory held, for figures.
    pub fn capacity(&self) -> usize {
        self.message.capacity() + self.control.capacity()
    }

    /// Gives back the message buffer when no message is under way.
    pub fn release_idle_memory(&mut self) -> usize {
        if self.message.is_empty() && !self.in_message {
            let freed = self.message.capacity() + self.control.capacity();
            self.message = Vec::new();
            self.control = Vec::new();
            return freed;
        }
        0
    }

    /// Reads from `input` until a line is ready, the stream ends or the
    /// input is used up; returns how many bytes it read.
    fn advance(&mut self, input: &[u8]) -> usize {
        let mut used = 0;
        while self.ready.is_empty() {
            let Some(rest) = input.get(used..).filter(|rest| !rest.is_empty()) else { break };
            match &mut self.state {
                State::Ended(_) => break,
                State::Header { bytes, len } => {
                    let take = rest.len().min(MAX_HEADER - *len);
                    let (Some(into), Some(from)) = (bytes.get_mut(*len..*len + take), rest.get(..take))
                    else {
                        break;
                    };
                    into.copy_from_slice(from);
                    let had = *len;
                    let have = had + take;
                    let mut cursor = Cursor::new(bytes.get(..have).unwrap_or_default());
                    match FrameHeader::parse(&mut cursor) {
                        Ok(None) => {
                            *len = have;
                            used += take;
                        }
                        Ok(Some((header, length))) => {
                            let header_len = usize::try_from(cursor.position()).unwrap_or(have);
                            used += header_len.saturating_sub(had);
                            self.start_frame(&header, length);
                        }
                        Err(_) => self.violation("an unknown opcode"),
                    }
                }
                State::Payload(payload) => {
                    let take = usize::try_from(payload.remaining).map_or(rest.len(), |r| r.min(rest.len()));
                    let Some(chunk) = rest.get(..take) else { break };
                    used += take;
                    payload.remaining -= take as u64;
                    let (kind, last, done) = (payload.kind, payload.last, payload.remaining == 0);
                    let (mask, phase) = (payload.mask, payload.phase);
                    payload.phase = (phase + take) % 4;
                    self.take_payload(kind, chunk, mask, phase);
                    if done {
                        self.end_frame(kind, last);
                    }
                }
            }
        }
        used
    }

    /// A header has come: checks it against the protocol and starts
    /// reading its payload.
    fn start_frame(&mut self, header: &FrameHeader, length: u64) {
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return self.violation("reserved bits set, but no extension was agreed");
        }
        let Some(mask) = header.mask else {
            return self.violation("a client frame without a mask");
        };
        let kind = match header.opcode {
            OpCode::Data(Data::Continue) if !self.in_message => {
                return self.violation("a continuation frame outside a message");
            }
            OpCode::Data(Data::Text | Data::Binary) if self.in_message => {
                return self.violation("a new message before the last one ended");
            }
            OpCode::Data(Data::Continue | Data::Text | Data::Binary) => Kind::Data,
            OpCode::Control(control @ (Control::Close | Control::Ping | Control::Pong)) => {
                if !header.is_final || length > MAX_CONTROL_PAYLOAD as u64 {
                    return self.violation("a fragmented or oversized control frame");
                }
                self.control.clear();
                Kind::Control(control)
            }
            OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_)) => {
                return self.violation("an unknown opcode");
            }
        };
        if kind == Kind::Data {
            self.in_message = true;
        }
        let payload = Payload {
            kind,
            last: header.is_final,
            remaining: length,
            mask,
            phase: 0,
        };
        if length == 0 {
            self.state = State::Header {
                bytes: [0; MAX_HEADER],
                len: 0,
            };
            return self.end_frame(kind, header.is_final);
        }
        self.state = State::Payload(payload);
    }

    /// Unmasks a piece of payload into the message or the control payload.
    fn take_payload(&mut self, kind: Kind, chunk: &[u8], mask: [u8; 4], phase: usize) {
        let unmasked = chunk
            .iter()
            .zip(mask.iter().cycle().skip(phase))
            .map(|(byte, key)| byte ^ key);
        match kind {
            Kind::Control(_) => self.control.extend(unmasked),
            Kind::Data if self.skipping => {}
            Kind::Data => {
                if self.message.len() + chunk.len() > self.max_line + 2 {
                    self.message = Vec::new();
                    self.skipping = true;
                    self.ready
                        .push_back(Err(DecodeError::MessageTooLong { max: self.max_line }));
                } else {
                    self.message.extend(unmasked);
                }
            }
        }
    }

    /// A frame's payload is all here.
    fn end_frame(&mut self, kind: Kind, last: bool) {
        self.heard = true;
        if !matches!(self.state, State::Ended(_)) {
            self.state = State::Header {
                bytes: [0; MAX_HEADER],
                len: 0,
            };
        }
        match kind {
            Kind::Data if last => self.end_message(),
            Kind::Data => {}
            Kind::Control(Control::Ping) => self.pong = Some(std::mem::take(&mut self.control)),
            Kind::Control(Control::Close) => {
                let code = match self.control.as_slice() {
                    [] => None,
                    [high, low, ..] => Some(u16::from_be_bytes([*high, *low])),
                    [_] => return self.violation("a close frame with half a status code"),
                };
                self.state = State::Ended(End::Closed(code));
            }
            Kind::Control(_) => {}
        }
    }

    /// A message has ended: its lines are ready.
    fn end_message(&mut self) {
        self.in_message = false;
        if std::mem::take(&mut self.skipping) {
            return;
        }
        let mut message = std::mem::take(&mut self.message);
        if message.last() != Some(&b'\n') {
            message.push(b'\n');
        }
        let mut lines = LineDecoder::new(self.max_line);
        // A line over the limit can only be the whole message here (the
        // message is at most a line and its line end): say so as a
        // message, not as a line "discarded up to the next newline".
        let max_line = self.max_line;
        self.ready.extend(lines.decode(&message).map(|line| match line {
            Err(DecodeError::TooLong { .. }) => Err(DecodeError::MessageTooLong { max: max_line }),
            other => other,
        }));
        message.clear();
        // Keep the buffer for the next message.
        self.message = message;
    }

    fn violation(&mut self, what: &'static str) {
        self.state = State::Ended(End::Violation(what));
    }
}

/// The lines one piece of input completes; see [`FrameDecoder::decode`].
#[derive(Debug)]
pub struct Messages<'a> {
    decoder: &'a mut FrameDecoder,
    /// The part of the piece not read yet.
    input: &'a [u8],
}

impl Messages<'_> {
    /// The part of the piece not read yet.
    pub fn remaining(&self) -> &[u8] {
        self.input
    }

    /// True when the next call to `next` yields a line (or the error it
    /// earned). To know, it reads the piece as far as the end of the next
    /// message, and no further.
    pub fn has_line(&mut self) -> bool {
        let used = self.decoder.advance(self.input);
        self.input = self.input.get(used..).unwrap_or_default();
        !self.decoder.ready.is_empty()
    }
}

impl Iterator for Messages<'_> {
    type Item = Result<String, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.has_line();
        self.decoder.ready.pop_front()
    }
}

/// Makes the bytes from `start` to the end of `out` one text frame: its
/// header goes in front of them. A server frame is not masked. Nothing is
/// allocated but the room `out` may need: this runs once per event per
/// I/O thread on the fan-out path.
pub fn frame_text_from(out: &mut Vec<u8>, start: usize) {
    let start = start.min(out.len());
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    let mut bytes = Cursor::new([0_u8; MAX_HEADER]);
    // The longest header (an 8-byte length and a mask) fits: this cannot
    // fail.
    let _ = header.format((out.len() - start) as u64, &mut bytes);
    let len = usize::try_from(bytes.position()).unwrap_or(MAX_HEADER);
    let written = bytes.get_ref().get(..len).unwrap_or_default();
    out.splice(start..start, written.iter().copied());
}

/// A control frame (close, ping or pong) from the server.
fn control_frame(control: Control, payload: &[u8]) -> Vec<u8> {
    let payload = payload.get(..MAX_CONTROL_PAYLOAD).unwrap_or(payload);
    let header = FrameHeader {
        opcode: OpCode::Control(control),
        ..FrameHeader::default()
    };
    let mut out = Vec::with_capacity(4 + payload.len());
    let _ = header.format(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// A ping from the server (the keepalive).
pub fn ping() -> Vec<u8> {
    control_frame(Control::Ping, b"chat-server")
}

/// A Close frame with a status and a reason (cut to fit a control frame).
pub fn close(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    let mut reason_len = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(reason_len) {
        reason_len -= 1;
    }
    payload.extend_from_slice(reason.get(..reason_len).unwrap_or_default().as_bytes());
    control_frame(Control::Close, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A client frame: masked, as browsers send them.
    fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![opcode | if fin { 0x80 } else { 0 }];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=65535 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        out
    }

    fn text(payload: &str) -> Vec<u8> {
        client_frame(0x1, true, payload.as_bytes())
    }

    fn lines_of(decoder: &mut FrameDecoder, input: &[u8]) -> Vec<Result<String, DecodeError>> {
        decoder.decode(input).collect()
    }

    fn ok(s: &str) -> Result<String, DecodeError> {
        Ok(s.to_string())
    }

    #[test]
    fn each_text_message_is_a_line_and_a_trailing_newline_ends_it() {
        let mut decoder = FrameDecoder::new(100);
        let input = [text("hello"), text("/join rust\r\n"), text("two\nlines\n")].concat();
        assert_eq!(
            lines_of(&mut decoder, &input),
            vec![ok("hello"), ok("/join rust"), ok("two"), ok("lines")]
        );
        assert_eq!(decoder.end(), None);
    }

    #[test]
    fn a_message_in_fragments_with_a_ping_between_them_is_one_line() {
        let mut decoder = FrameDecoder::new(100);
        let input = [
            client_frame(0x1, false, b"hel"),
            client_frame(0x9, true, b"are you there"),
            client_frame(0x0, false, b"lo wor"),
            client_frame(0x0, true, b"ld"),
        ]
        .concat();
        assert_eq!(lines_of(&mut decoder, &input), vec![ok("hello world")]);
        let pong = decoder.take_pong().unwrap();
        assert_eq!(
            pong,
            [&[0x8a, 13][..], b"are you there"].concat(),
            "the ping's payload comes back unmasked"
        );
        assert_eq!(decoder.take_pong(), None, "one pong per ping");
    }

    #[test]
    fn only_the_latest_of_many_pings_is_answered() {
        let mut decoder = FrameDecoder::new(100);
        let input: Vec<u8> = (0..1000)
            .flat_map(|i| client_frame(0x9, true, format!("{i}").as_bytes()))
            .collect();
        assert!(lines_of(&mut decoder, &input).is_empty());
        assert_eq!(decoder.take_pong().unwrap(), [&[0x8a, 3][..], b"999"].concat());
    }

    #[test]
    fn a_message_over_the_limit_is_refused_once_and_skipped_unstored() {
        let mut decoder = FrameDecoder::new(10);
        let long = "x".repeat(70_000);
        let input = [text("short"), text(&long), text("after")].concat();
        assert_eq!(
            lines_of(&mut decoder, &input),
            vec![
                ok("short"),
                Err(DecodeError::MessageTooLong { max: 10 }),
                ok("after")
            ]
        );
        assert!(decoder.capacity() <= 64, "nothing of the long message was kept");
    }

    #[test]
    fn a_frame_that_declares_an_enormous_length_is_skipped_as_it_comes() {
        let mut decoder = FrameDecoder::new(10);
        // 2^62 bytes announced, a few sent.
        let mut input = vec![0x81, 0x80 | 127];
        input.extend_from_slice(&(1u64 << 62).to_be_bytes());
        input.extend_from_slice(&[1, 2, 3, 4]);
        input.extend_from_slice(&[0; 4096]);
        assert_eq!(
            lines_of(&mut decoder, &input),
            vec![Err(DecodeError::MessageTooLong { max: 10 })]
        );
        assert_eq!(lines_of(&mut decoder, &[0; 4096]), vec![], "reported once");
        assert!(decoder.capacity() <= 64);
    }

    #[test]
    fn invalid_utf8_is_an_error_for_that_line_only() {
        let mut decoder = FrameDecoder::new(100);
        let input = [client_frame(0x1, true, b"bad \xff"), text("good")].concat();
        let lines = lines_of(&mut decoder, &input);
        assert!(matches!(
            lines.first(),
            Some(Err(DecodeError::InvalidUtf8 { .. }))
        ));
        assert_eq!(lines.get(1), Some(&ok("good")));
    }

    #[test]
    fn a_close_frame_ends_the_stream_with_its_status_and_nothing_after_is_read() {
        let mut decoder = FrameDecoder::new(100);
        let input = [
            text("bye"),
            client_frame(0x8, true, &1000u16.to_be_bytes()),
            text("ignored"),
        ]
        .concat();
        let mut messages = decoder.decode(&input);
        assert_eq!(messages.next(), Some(ok("bye")));
        assert_eq!(messages.next(), None);
        assert_eq!(messages.remaining(), text("ignored").as_slice());
        assert_eq!(decoder.end(), Some(&End::Closed(Some(1000))));
    }

    #[test]
    fn protocol_violations_end_the_stream() {
        let unmasked = vec![0x81, 0x02, b'h', b'i'];
        let reserved_bits = {
            let mut frame = text("hi");
            frame[0] |= 0x40;
            frame
        };
        let cases: [(&str, Vec<u8>); 6] = [
            ("a client frame without a mask", unmasked),
            ("reserved bits set, but no extension was agreed", reserved_bits),
            ("an unknown opcode", client_frame(0x3, true, b"x")),
            (
                "a continuation frame outside a message",
                client_frame(0x0, true, b"x"),
            ),
            (
                "a fragmented or oversized control frame",
                client_frame(0x9, true, &[0; 126]),
            ),
            (
                "a new message before the last one ended",
                [client_frame(0x1, false, b"a"), text("b")].concat(),
            ),
        ];
        for (why, input) in cases {
            let mut decoder = FrameDecoder::new(100);
            assert_eq!(lines_of(&mut decoder, &input), vec![], "{why}");
            assert_eq!(decoder.end(), Some(&End::Violation(why)));
        }
    }

    #[test]
    fn has_line_reads_only_as_far_as_the_next_message() {
        let mut decoder = FrameDecoder::new(100);
        let input = [text("one"), text("two")].concat();
        let mut messages = decoder.decode(&input);
        assert!(messages.has_line());
        assert_eq!(
            messages.remaining(),
            text("two").as_slice(),
            "the second frame is not read yet"
        );
        assert_eq!(messages.next(), Some(ok("one")));
        assert_eq!(messages.next(), Some(ok("two")));
        assert!(!messages.has_line());
    }

    #[test]
    fn server_frames_are_unmasked_text_frames_with_the_right_length() {
        for len in [0usize, 5, 125, 126, 65535, 65536] {
            let mut out = b"prefix".to_vec();
            out.extend(std::iter::repeat_n(b'a', len));
            frame_text_from(&mut out, 6);
            let mut cursor = Cursor::new(out.get(6..).unwrap());
            let (header, length) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert_eq!(length, len as u64);
            assert_eq!(header.opcode, OpCode::Data(Data::Text));
            assert!(header.is_final && header.mask.is_none());
            assert_eq!(out.len() - 6 - cursor.position() as usize, len);
        }
        assert_eq!(
            close(1001, "going away"),
            [&[0x88, 12, 0x03, 0xe9][..], b"going away"].concat()
        );
    }

    proptest! {
        #[test]
        fn frames_split_anywhere_decode_the_same(
            messages in proptest::collection::vec("[a-z \u{e9}\u{2713}]{0,40}", 1..8),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..6),
        ) {
            let input: Vec<u8> = messages.iter().flat_map(|m| text(m)).collect();
            let whole = lines_of(&mut FrameDecoder::new(100), &input);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
            points.sort_unstable();
            let mut decoder = FrameDecoder::new(100);
            let mut pieces = Vec::new();
            let mut from = 0;
            for point in points.into_iter().chain([input.len()]) {
                pieces.extend(lines_of(&mut decoder, &input[from..point]));
                from = point;
            }
            prop_assert_eq!(&pieces, &whole);
            let expected: Vec<_> = messages.iter().map(|m| ok(m)).collect();
            prop_assert_eq!(whole, expected);
        }

        #[test]
        fn no_byte_sequence_panics_or_holds_more_than_a_line(input in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut decoder = FrameDecoder::new(64);
            for piece in input.chunks(7) {
                let _ = lines_of(&mut decoder, piece);
                prop_assert!(decoder.message.len() <= 66);
                prop_assert!(decoder.control.len() <= MAX_CONTROL_PAYLOAD);
            }
        }
    }
}
