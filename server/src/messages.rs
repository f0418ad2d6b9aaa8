//! What the I/O side and the hub say to each other over their channels.
//!
//! The event loop owns the sockets; the hub owns the chat state. They never
//! share memory: the event loop sends [`Inbound`] messages (a connection
//! came, said something, went) and the hub answers with [`Outbound`] ones
//! (deliver this event to these connections, close that one). Both channels
//! are FIFO, which is what keeps every reply in the order of the lines that
//! caused it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chat_protocol::{Command, ErrorKind, LeaveReason, ServerEvent};

/// Names one connection for its whole life, and never another one.
///
/// `slot` is where the event loop keeps it (its slab key); slots are reused
/// once a connection is gone, so `serial`, unique per server, tells a new
/// tenant of the slot from an old one whose messages are still in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    /// The event loop's slab key for the connection.
    pub slot: usize,
    /// Unique per connection for the life of the server.
    pub serial: u64,
}

/// From the event loop to the hub.
#[derive(Debug)]
pub enum Inbound {
    /// A client connected.
    Connected {
        /// The new connection.
        id: ConnId,
        /// The peer's address, for logs.
        addr: SocketAddr,
    },
    /// A client sent a line: a command, or the error it earned.
    Line {
        /// Who sent it.
        id: ConnId,
        /// The parsed command, or why it could not be decoded or parsed.
        line: Result<Command, ErrorKind>,
        /// When it was read, for the fan-out latency metric.
        received: Instant,
    },
    /// The connection ended (end of stream, an error, or the event loop
    /// dropped it as a slow consumer). The hub forgets the user, tells the
    /// room why, and answers with [`Outbound::Close`] once it has queued
    /// everything due to it.
    Closed {
        /// The connection that ended.
        id: ConnId,
        /// Why, as the room is told.
        reason: LeaveReason,
    },
    /// The client sent nothing for the idle timeout: tell it, forget it,
    /// and close it.
    Idle {
        /// The quiet connection.
        id: ConnId,
        /// How long it was quiet.
        quiet: Duration,
    },
    /// The server is shutting down: tell everyone, close everyone, stop.
    Shutdown,
}

/// From the hub to the event loop.
#[derive(Debug)]
pub enum Outbound {
    /// Queue `event` to each connection in `to`, in this order with
    /// everything else the hub sends them.
    Deliver {
        /// The recipients.
        to: Vec<ConnId>,
        /// What to tell them; encoded once for all of them.
        event: ServerEvent,
        /// When the line that caused it was read, if a line did: the event
        /// loop measures the fan-out latency from there.
        since: Option<Instant>,
    },
    /// Flush what is queued to the connection, then close it.
    Close {
        /// The connection to close.
        id: ConnId,
    },
    /// The hub has said its last word and stopped (after
    /// [`Inbound::Shutdown`]).
    Stopped,
}
