//! Front ends: the wire formats between a client's bytes and the hub.
//!
//! A connection speaks one [`Protocol`], decided by the listener it came
//! in on. Its front end turns each line the client sends into a
//! [`Request`] for the hub, and each [`ServerEvent`] the hub sends into
//! bytes. An event fanned out to a room is encoded once per protocol per
//! I/O thread, never once per recipient (see [`crate::net::event_loop`]),
//! so what a protocol makes of an event must not depend on who receives it.
//! Today there is the [`line`] protocol that `nc` and `chat-client` speak.
//!
//! What a front end must never do: touch the chat state (it asks the hub),
//! know another front end, or do socket I/O (the event loop does that).

pub mod line;

use chat_protocol::{DecodeError, ErrorKind, ServerEvent};

use crate::chat::request::Request;

/// The wire format a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The line protocol (PROTOCOL.md).
    Line,
    /// A test double of a second protocol: the line protocol's requests,
    /// and its lines marked `test: `, so that tests can mix two front ends
    /// in one room until a second real one exists. Only a library user can
    /// make a listener for it ([`crate::Config::test_listen`]).
    #[doc(hidden)]
    Test,
}

impl Protocol {
    /// How many protocols there are (for a cache of one encoding each).
    pub const COUNT: usize = 2;

    /// A number from 0 to [`Protocol::COUNT`] - 1, one per protocol.
    pub fn index(self) -> usize {
        match self {
            Protocol::Line => 0,
            Protocol::Test => 1,
        }
    }

    /// What one decoded line asks of the hub: a request, the error it
    /// earned, or nothing (a blank line).
    pub fn request(self, line: Result<String, DecodeError>) -> Option<Result<Request, ErrorKind>> {
        match self {
            Protocol::Line | Protocol::Test => line::to_request(line),
        }
    }

    /// Appends the bytes that say `event` in this protocol to `out`.
    pub fn encode(self, event: &ServerEvent, out: &mut Vec<u8>) {
        match self {
            Protocol::Line => line::encode(event, out),
            Protocol::Test => {
                for line in event.lines() {
                    out.extend_from_slice(b"test: ");
                    line.encode(out);
                }
            }
        }
    }
}
