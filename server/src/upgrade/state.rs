//! The state a restart hands to the next process, and its versioned
//! format.
//!
//! It is JSON (serde_json), written into a memory file (see
//! [`crate::upgrade::fds`]): a header ([`MAGIC`], [`FORMAT`] and the
//! version of the daemon that wrote it), the hub's state
//! ([`crate::chat::hub::HubState`]), every listening socket handed over,
//! and every connection carried, each with what its front end remembers,
//! the input it had read but not yet acted on, and its output not yet
//! written. The descriptors themselves travel beside it, matched to
//! these entries by their addresses (a TCP connection is named by its
//! two ends), not by their order, which neither systemd's store nor a
//! future version needs to keep.
//!
//! The header is read first, on its own ([`read_header`]): a state of
//! another format is refused before anything else of it is trusted, and
//! the caller falls back to a clean start ([`crate::upgrade::fallback`]).
//! Bump [`FORMAT`] whenever a change makes an old state mean something
//! else; fields added with a default need no bump.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::chat::hub::HubState;
use crate::chat::messages::ConnId;
use crate::frontend::Protocol;

/// What the state file starts with: no other file is taken for one.
pub const MAGIC: &str = "chat-server handover state";

/// The format this build writes and reads.
pub const FORMAT: u32 = 1;

/// The most bytes of state read back: a state for 100,000 connections
/// with full queues is well under this; a file bigger than it is not ours.
pub const MAX_STATE_BYTES: u64 = 1 << 30;

/// The header, read alone first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: String,
    /// The format it is written in.
    pub format: u32,
    /// The version of the daemon that wrote it (`--version`'s).
    pub version: String,
}

impl Header {
    /// This build's header.
    pub fn current() -> Header {
        Header {
            magic: MAGIC.to_string(),
            format: FORMAT,
            version: crate::upgrade::VERSION.to_string(),
        }
    }
}

/// Everything handed over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Magic, format, version.
    #[serde(flatten)]
    pub header: Header,
    /// The chat.
    pub hub: HubState,
    /// The listening sockets handed over.
    pub listeners: Vec<ListenerState>,
    /// The connections carried.
    pub connections: Vec<ConnState>,
}

/// One listening socket handed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerState {
    /// Its address: how its descriptor is recognised.
    pub addr: SocketAddr,
    /// What its clients speak.
    pub protocol: Protocol,
    /// Whether they speak it over TLS.
    pub tls: bool,
}

/// What a connection's front end remembers, as handed over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SessionState {
    /// The line protocol (nothing).
    Line,
    /// The test protocol (nothing).
    Test,
    /// IRC: registration, capabilities, nick.
    Irc(Box<crate::frontend::irc::session::Session>),
    /// A WebSocket after its handshake (only carried between frames).
    Web,
}

/// One connection carried.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnState {
    /// What the old process called it (the hub's state names it so).
    pub id: ConnId,
    /// The client's address.
    pub peer: SocketAddr,
    /// Our end's address: with `peer`, how its descriptor is recognised.
    pub local: SocketAddr,
    /// Its front end's state.
    pub session: SessionState,
    /// Bytes it sent that were read but not acted on: the start of an
    /// unfinished line, then whatever reading paused on (flood control,
    /// a full hub queue). The next process decodes them first, with its
    /// own limits.
    #[serde(with = "hex_bytes")]
    pub input: Vec<u8>,
    /// The rest of a line that went over the limit (already reported) is
    /// still being skipped.
    pub skipping: bool,
    /// Output queued to it and not yet written.
    #[serde(with = "hex_bytes")]
    pub output: Vec<u8>,
    /// It has never said anything (on a full server such connections
    /// make room first).
    pub silent: bool,
}

/// Reads the header of a state, alone.
///
/// # Errors
/// When it is not JSON with a header.
pub fn read_header(bytes: &[u8]) -> Result<Header, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Bytes as a hex string: half the size of serde's list of numbers, and
/// readable in a dump.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(bytes.len() * 2);
        for &b in bytes {
            for nibble in [b >> 4, b & 15] {
                let digit = DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0');
                text.push(char::from(digit));
            }
        }
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        let digit = |c: u8| -> Result<u8, D::Error> {
            match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                _ => Err(serde::de::Error::custom("not a hex digit")),
            }
        };
        let pairs = text.as_bytes().chunks(2);
        pairs
            .map(|pair| match pair {
                [high, low] => Ok(digit(*high)? << 4 | digit(*low)?),
                _ => Err(serde::de::Error::custom("an odd number of hex digits")),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            header: Header::current(),
            hub: crate::chat::hub::Hub::default().export(),
            listeners: vec![ListenerState {
                addr: "127.0.0.1:7878".parse().unwrap(),
                protocol: Protocol::Irc,
                tls: false,
            }],
            connections: vec![ConnState {
                id: ConnId {
                    shard: 1,
                    slot: 2,
                    serial: 3,
                },
                peer: "127.0.0.1:40000".parse().unwrap(),
                local: "127.0.0.1:7878".parse().unwrap(),
                session: SessionState::Irc(Box::default()),
                input: b"half a li\xffne".to_vec(),
                skipping: false,
                output: b"PING :x\r\n".to_vec(),
                silent: true,
            }],
        }
    }

    #[test]
    fn a_state_reads_back_as_written_bytes_and_all() {
        let written = serde_json::to_vec(&state()).unwrap();
        let read: State = serde_json::from_slice(&written).unwrap();
        assert_eq!(read.header, Header::current());
        assert_eq!(read.listeners, state().listeners);
        let conn = &read.connections[0];
        assert_eq!(conn.input, b"half a li\xffne");
        assert_eq!(conn.output, b"PING :x\r\n");
        assert!(matches!(conn.session, SessionState::Irc(_)));
        assert_eq!(read.hub, state().hub);
    }

    #[test]
    fn the_header_is_read_alone_from_a_whole_state() {
        let written = serde_json::to_vec(&state()).unwrap();
        assert_eq!(read_header(&written).unwrap(), Header::current());
    }

    #[test]
    fn bad_hex_is_an_error_not_a_panic() {
        let mut value = serde_json::to_value(state()).unwrap();
        value["connections"][0]["input"] = serde_json::Value::from("abc");
        assert!(serde_json::from_value::<State>(value.clone()).is_err());
        value["connections"][0]["input"] = serde_json::Value::from("zz");
        assert!(serde_json::from_value::<State>(value).is_err());
    }
}
