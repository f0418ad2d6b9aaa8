//! What the threads say to each other over their channels.
//!
//! The I/O threads own the sockets; the hub owns the chat state. They never
//! share memory: each I/O thread sends [`Inbound`] messages (a connection
//! came, said something, went) and the hub answers each with [`Outbound`]
//! ones (deliver this event to these connections, close that one). Every
//! channel is FIFO, which is what keeps every reply in the order of the
//! lines that caused it. The acceptor hands new connections to an I/O
//! thread as [`Adopt`] messages and hears back, as [`Released`], when they
//! have left, which is all it needs to enforce the connection limits.
//!
//! Every channel between threads is bounded, and each says what bounds it
//! and what happens when it is full where it is made (see
//! [`crate::server`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::{ErrorKind, LeaveReason, ServerEvent};

use crate::chat::request::Request;
use crate::frontend::Protocol;

/// Names one connection for its whole life, and never another one.
///
/// `shard` is the I/O thread that owns it and `slot` where that thread
/// keeps it (its slab key); slots are reused once a connection is gone, so
/// `serial`, unique per server, tells a new tenant of the slot from an old
/// one whose messages are still in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ConnId {
    /// The I/O thread that owns the connection (0 to `--threads` - 1).
    pub shard: usize,
    /// That thread's slab key for the connection.
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
        /// How it comes on the chat: at once as a guest in the lobby (the
        /// line protocol), or once it has registered (IRC).
        arrival: Arrival,
    },
    /// A client sent a line: a request, or the error it earned.
    Line {
        /// Who sent it.
        id: ConnId,
        /// What its front end made of it, or why it could not.
        line: Result<Request, ErrorKind>,
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
    /// The event loop is ending a connection that is still open: the hub
    /// tells the user why, forgets it, tells the room, and closes it.
    Ending {
        /// The connection.
        id: ConnId,
        /// Why.
        why: Ending,
    },
    /// The server is shutting down, and this I/O thread has read the last
    /// lines it will (what its clients had sent before the signal): once
    /// every I/O thread has said so, the hub tells everyone and closes
    /// everyone, after those lines, and from then on sends anyone who
    /// connects away the same way. The hub stops once every sender of
    /// these messages has gone.
    Drained,
    /// A server operator's command (`chat-server ctl`), with where the
    /// answer goes: a channel with room for it, which the hub never waits
    /// on.
    Admin {
        /// What to do.
        command: crate::chat::admin::AdminCommand,
        /// Where the answer goes.
        answer: crossbeam_channel::Sender<crate::chat::admin::AdminAnswer>,
    },
    /// The server is shutting down and the acceptor has closed its
    /// listeners: whoever connects now is refused by the kernel. The hub
    /// says goodbye only once this has come too, so that anyone told the
    /// server is shutting down finds it no longer accepting.
    AcceptorStopped,
    /// What the cluster's threads heard from Redis, or say of the link
    /// (see [`crate::cluster`]). Boxed: the other messages are a third
    /// smaller, and every slot of the hub's queue is as big as the biggest.
    Cluster(Box<crate::cluster::ClusterEvent>),
}

/// How a new connection comes on the chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// At once, as a guest (`guest12`) in the lobby: the line protocol.
    Guest,
    /// Once it asks to, with a nick of its own ([`crate::chat::request::Request::Register`]);
    /// until then it is on the server but not on the chat: IRC.
    Registering,
}

/// Why the event loop ends a connection that did nothing wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It completed no line for the idle timeout.
    Idle {
        /// How long it was quiet.
        quiet: Duration,
    },
    /// The server is full, it never said anything, and a newcomer needs
    /// its place (see [`crate::net::acceptor`]).
    MakingRoom,
    /// It answered no keepalive PING (an IRC client).
    PingTimeout {
        /// How long it was silent.
        quiet: Duration,
    },
    /// It did not register in time (an IRC client).
    NotRegistered {
        /// How long it had.
        waited: Duration,
    },
}

/// Who an [`Outbound::Deliver`] goes to.
#[derive(Debug, Clone)]
pub enum Recipients {
    /// One connection.
    One(ConnId),
    /// One connection, whose own command asked for this reply: its size is
    /// charged to that client's flood allowance (see
    /// [`crate::net::flood`]), so no client can buy a lot of output with a
    /// little input.
    Reply(ConnId),
    /// The members of a room on one I/O thread, but `except` (the sender:
    /// chat messages are not echoed). The list is the room's own, shared,
    /// not copied per line (see [`crate::chat::hub`]).
    Members {
        /// The room's members on the receiving thread.
        members: Arc<Vec<ConnId>>,
        /// Who is left out.
        except: Option<ConnId>,
    },
    /// Any connections (everyone, at shutdown); split by thread by the hub.
    Many(Vec<ConnId>),
}

/// From the hub to the event loop.
#[derive(Debug)]
pub enum Outbound {
    /// Queue `event` to each recipient, in this order with everything else
    /// the hub sends them.
    Deliver {
        /// The recipients, all on the receiving thread.
        to: Recipients,
        /// What to tell them; encoded once for all of them (and shared, not
        /// copied, by the I/O threads they are spread over).
        event: Arc<ServerEvent>,
        /// When the line that caused it was read, if a line did: the event
        /// loop measures the fan-out latency from there.
        since: Option<Instant>,
    },
    /// Flush what is queued to the connection, then close it.
    Close {
        /// The connection to close.
        id: ConnId,
    },
    /// A restart is handing everything over (see [`crate::upgrade`]): the
    /// hub has exported its state, and this is the last message it sends
    /// the I/O thread; the thread hands its connections over in turn.
    HandOver,
}

/// From the acceptor to an I/O thread: a new connection, admitted, to serve
/// from now on.
#[derive(Debug)]
pub struct Adopt {
    /// The socket, already set up (see [`crate::net::acceptor`]).
    pub stream: mio::net::TcpStream,
    /// The peer's address.
    pub addr: SocketAddr,
    /// Its serial (see [`ConnId`]).
    pub serial: u64,
    /// The server is full: the thread must first make room by ending its
    /// longest silent connection, or, if it has none that may go, refuse
    /// this one with `server full`.
    pub make_room: bool,
    /// The wire format it speaks (that of the listener it came in on).
    pub protocol: Protocol,
    /// Whether it came in on a TLS listener: it handshakes first.
    pub tls: bool,
}

/// To the acceptor: a connection has left the chat, so its place (in all,
/// and for its address) is free again. The hub says so when a user leaves;
/// an I/O thread, for a connection it could not take on at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// The I/O thread that had it.
    pub shard: usize,
    /// The peer's address.
    pub ip: IpAddr,
}
