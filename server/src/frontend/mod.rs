//! Front ends: the wire formats between a client's bytes and the hub.
//!
//! A connection speaks one [`Protocol`], decided by the listener it came
//! in on, and keeps what its protocol needs to remember in its
//! [`Session`]. The session turns each line the client sends into
//! [`Request`]s for the hub, and each [`ServerEvent`] the hub sends into
//! bytes.
//!
//! An event fanned out to a room is encoded once per [`Encoding`] per I/O
//! thread, never once per recipient (see [`crate::net::event_loop`]), so
//! what an encoding makes of a shared event must not depend on who
//! receives it; an event for one connection ([`Session::encode_own`]) may
//! (IRC's numerics name the recipient). Today there is the [`line`]
//! protocol that `nc` and `chat-client` speak, [`irc`], and [`web`]: the
//! page the daemon serves, whose WebSocket speaks the line protocol.
//!
//! What a front end must never do: touch the chat state (it asks the hub),
//! know another front end, or do socket I/O (the event loop does that).

pub mod irc;
pub mod line;
pub mod web;

use std::sync::Arc;

use chat_protocol::{DecodeError, ErrorKind, ServerEvent};

use crate::chat::messages::Arrival;
use crate::chat::request::Request;

/// The longest line an IRC client may send, not counting its line end
/// (RFC 1459's 512 bytes with CR LF): IRC's own limit, whatever
/// `--max-line` says for the line protocol.
pub const IRC_MAX_LINE: usize = 510;

/// The wire format a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Protocol {
    /// The line protocol (PROTOCOL.md).
    Line,
    /// IRC (README.md, "IRC").
    Irc,
    /// The web page and its WebSocket, which carries the line protocol
    /// (README.md, "The web page").
    Web,
    /// A test double of a second protocol: the line protocol's requests,
    /// and its lines marked `test: `, so that tests can mix front ends in
    /// one room with a protocol whose output is easy to read. Only a
    /// library user can make a listener for it ([`crate::Config::test_listen`]).
    #[doc(hidden)]
    Test,
}

impl Protocol {
    /// How a connection of this protocol comes on the chat.
    pub fn arrival(self) -> Arrival {
        match self {
            Protocol::Line | Protocol::Test | Protocol::Web => Arrival::Guest,
            Protocol::Irc => Arrival::Registering,
        }
    }

    /// A new connection's session.
    pub fn session(self) -> Session {
        match self {
            Protocol::Line => Session::Line,
            Protocol::Test => Session::Test,
            Protocol::Irc => Session::Irc(Box::default()),
            Protocol::Web => Session::Web(Box::default()),
        }
    }

    /// The longest line a client of this protocol may send, when the line
    /// protocol allows `configured`.
    pub fn max_line(self, configured: usize) -> usize {
        match self {
            Protocol::Line | Protocol::Test | Protocol::Web => configured,
            Protocol::Irc => IRC_MAX_LINE,
        }
    }

    /// What a connection refused at the door (server full, too many from
    /// its address) reads before it is closed.
    pub fn refusal(self, error: &ErrorKind, out: &mut Vec<u8>) {
        match self {
            Protocol::Line | Protocol::Test => {
                Encoding::Line.encode(&ServerEvent::Error(error.clone()), &Context::plain(), out)
            }
            Protocol::Irc => irc::encode::refusal(out, error),
            Protocol::Web => web::http::door_refusal(error, out),
        }
    }
}

/// What front ends need to know of the server to speak for it.
#[derive(Debug, Clone)]
pub struct Context {
    /// The server's name in IRC replies (`--server-name`).
    pub server_name: Arc<str>,
    /// The network's name in IRC's welcome and ISUPPORT.
    pub network: Arc<str>,
    /// When the server started, as 003 says it.
    pub created: Arc<str>,
    /// The message of the day's lines (`--motd-file`), if there is one.
    pub motd: Option<Arc<[String]>>,
    /// The time, in milliseconds since the Unix epoch (IRC's
    /// `server-time`; a test stops it).
    pub clock: fn() -> u64,
    /// Which pages may open a WebSocket (`--web-allow-origin` and the
    /// server's own).
    pub origins: web::origin::OriginPolicy,
}

impl Context {
    /// A context with a server name and nothing else, for tests and for
    /// protocols that need none.
    pub fn plain() -> Context {
        Context {
            server_name: Arc::from("chat-server"),
            network: Arc::from("chat-server"),
            created: Arc::from("at start"),
            motd: None,
            clock: crate::chat::hub::system_clock,
            origins: web::origin::OriginPolicy::default(),
        }
    }
}

/// One way of writing shared events: all recipients with the same
/// encoding get the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The line protocol.
    Line,
    /// The test protocol.
    Test,
    /// IRC.
    Irc,
    /// IRC with each message's time (`server-time`).
    IrcWithTime,
    /// The line protocol in WebSocket text frames.
    Web,
}

impl Encoding {
    /// How many encodings there are (for a cache of one encoding each).
    pub const COUNT: usize = 5;

    /// A number from 0 to [`Encoding::COUNT`] - 1, one per encoding.
    pub fn index(self) -> usize {
        match self {
            Encoding::Line => 0,
            Encoding::Test => 1,
            Encoding::Irc => 2,
            Encoding::IrcWithTime => 3,
            Encoding::Web => 4,
        }
    }

    /// Appends the bytes that say `event` in this encoding to `out`.
    pub fn encode(self, event: &ServerEvent, ctx: &Context, out: &mut Vec<u8>) {
        match self {
            Encoding::Line => line::encode(event, out),
            Encoding::Test => {
                for line in event.lines() {
                    out.extend_from_slice(b"test: ");
                    line.encode(out);
                }
            }
            Encoding::Irc => irc::encode::shared(event, ctx, false, out),
            Encoding::IrcWithTime => irc::encode::shared(event, ctx, true, out),
            Encoding::Web => web::encode(event, out),
        }
    }
}

/// What a connection's front end remembers.
#[derive(Debug, Clone, Default)]
pub enum Session {
    /// The line protocol remembers nothing.
    #[default]
    Line,
    /// Nor does the test protocol.
    Test,
    /// IRC: registration, capabilities, nick.
    Irc(Box<irc::Session>),
    /// The web listener: the HTTP request until the upgrade, then the line
    /// protocol.
    Web(Box<web::Session>),
}

impl Session {
    /// The protocol it speaks.
    pub fn protocol(&self) -> Protocol {
        match self {
            Session::Line => Protocol::Line,
            Session::Test => Protocol::Test,
            Session::Irc(_) => Protocol::Irc,
            Session::Web(_) => Protocol::Web,
        }
    }

    /// How events shared with others are written for it.
    pub fn encoding(&self) -> Encoding {
        match self {
            Session::Line => Encoding::Line,
            Session::Test => Encoding::Test,
            Session::Irc(irc) if irc.has(irc::session::Cap::ServerTime) => Encoding::IrcWithTime,
            Session::Irc(_) => Encoding::Irc,
            Session::Web(_) => Encoding::Web,
        }
    }

    /// Whether the client is on the chat yet (an IRC client registers
    /// first; the others are at once).
    pub fn is_registered(&self) -> bool {
        match self {
            Session::Line | Session::Test | Session::Web(_) => true,
            Session::Irc(irc) => irc.is_registered(),
        }
    }

    /// What one decoded line asks of the hub: each request (or the error
    /// it earned) handed to `to_hub`, in order; nothing for a blank line.
    pub fn take(
        &mut self,
        line: Result<String, DecodeError>,
        to_hub: &mut impl FnMut(Result<Request, ErrorKind>),
    ) {
        match self {
            Session::Line | Session::Test | Session::Web(_) => {
                if let Some(request) = line::to_request(line) {
                    to_hub(request);
                }
            }
            Session::Irc(irc) => irc.take(line, to_hub),
        }
    }

    /// Appends the bytes that say `event` to this connection alone.
    pub fn encode_own(&mut self, event: &ServerEvent, ctx: &Context, out: &mut Vec<u8>) {
        match self {
            Session::Line => line::encode(event, out),
            Session::Test => Encoding::Test.encode(event, ctx, out),
            Session::Irc(irc) => irc::encode::own(irc, event, ctx, out),
            Session::Web(_) => web::encode(event, out),
        }
    }
}
