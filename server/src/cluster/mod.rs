//! The cluster: several instances share rooms, nicks, presence and history
//! through one Redis (issue 17), so users on different instances chat as
//! if on one server.
//!
//! The model is Centrifugo's: every room line goes through Redis, where
//! one Lua script numbers it (a per-room sequence), keeps it in the room's
//! capped stream (the history) and publishes it; every instance, the
//! sender's included, delivers only what comes back, in sequence order
//! ([`order`]), so every reader on every instance sees one order. Nicks
//! are claimed with `SET NX EX` and kept alive by each instance; presence
//! is a sorted set per room, by expiry.
//!
//! Two threads of this layer do all the Redis I/O ([`link`]): the
//! *command* thread (publishing, claims, presence, reads) and the
//! *subscriber* thread (a second connection in pub/sub mode). Each has its
//! own timeouts and reconnect loop. They talk to the hub over bounded
//! crossbeam channels: the hub never waits on them (a full queue is
//! treated as a lost link), and what they hear reaches the hub as
//! [`crate::chat::messages::Inbound::Cluster`].
//!
//! What it must never do: make the hub or an event loop wait on the
//! network, or print the Redis password.
//!
//! Every key is under the prefix `chat:` (see [`keys`]).

pub mod keys;
pub mod link;
pub mod order;
pub mod payload;
pub mod url;

use std::time::Duration;

use chat_protocol::moderation::BanInfo;
use chat_protocol::{Nick, Role, RoomName, RoomSettings, Topic};

use crate::chat::messages::ConnId;
pub use link::{probe, start, Threads};
pub use payload::{Envelope, Private, RoomEvent};
pub use url::RedisUrl;

/// Default for `--cluster-claim-ttl`: a crashed instance's nicks are free
/// again within half a minute, and a live one refreshes every ten seconds,
/// a trickle of commands.
pub const DEFAULT_CLAIM_TTL: Duration = Duration::from_secs(30);

/// The shortest `--cluster-claim-ttl`: refreshing every third of it must
/// leave time for a round trip.
pub const MIN_CLAIM_TTL: Duration = Duration::from_secs(2);

/// Default for `--cluster-timeout`: Redis answers in well under a
/// millisecond; two seconds means it is gone or frozen.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(2000);

/// The shortest `--cluster-timeout`.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// How the cluster runs, from the options.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where Redis is (`--cluster`).
    pub url: RedisUrl,
    /// Start even if Redis cannot be reached (`--cluster-optional`).
    pub optional: bool,
    /// Expiry of nick claims and presence (`--cluster-claim-ttl`).
    pub claim_ttl: Duration,
    /// Every Redis command and read times out after this
    /// (`--cluster-timeout`).
    pub timeout: Duration,
}

impl Settings {
    /// Settings for `url` with every default.
    pub fn new(url: RedisUrl) -> Settings {
        Settings {
            url,
            optional: false,
            claim_ttl: DEFAULT_CLAIM_TTL,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Occurs when Redis cannot be reached (refused, timed out, no such
    /// host) at start.
    #[error("cluster: cannot reach Redis at {address}: {reason}")]
    Unreachable {
        /// `redis://HOST:PORT`, without the password.
        address: String,
        /// What went wrong.
        reason: String,
    },
    /// Occurs when Redis refuses the password (or wants one).
    #[error("cluster: Redis refused the password ({address})")]
    Password {
        /// `redis://HOST:PORT`.
        address: String,
    },
    /// Occurs when Redis answers something unexpected at start.
    #[error("cluster: Redis at {address} failed: {reason}")]
    Failed {
        /// `redis://HOST:PORT`.
        address: String,
        /// What it said.
        reason: String,
    },
}

/// Which of the two connections a [`ClusterEvent::Link`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The command connection.
    Commands,
    /// The subscription.
    Subscriber,
}

/// What a room's member list is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// A page of `/who`.
    Who {
        /// The page.
        page: usize,
    },
    /// IRC's NAMES (also on joining): every member.
    Names {
        /// The room as asked for.
        room: RoomName,
        /// What the end of the listing names, if this is the last.
        end: Option<String>,
    },
    /// IRC's WHO of a room: every member, at most
    /// [`crate::chat::hub::MAX_WHO`].
    WhoList {
        /// The room as asked for (what the end of the listing names).
        mask: String,
    },
    /// An operator's `/op`, `/deop`, `/voice`, `/devoice` or `/kick` of a
    /// nick not in the room on this instance: carried out if the nick is
    /// among the room's members in the cluster.
    Target {
        /// The nick named.
        whom: Nick,
        /// What to do to them.
        action: Action,
    },
}

/// What an operator does to a member of a room (see [`Asked::Target`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Give or take a role.
    Role {
        /// The operator.
        by: Nick,
        /// Which role.
        role: Role,
        /// Given or taken.
        on: bool,
    },
    /// Put them out of the room.
    Kick {
        /// The operator.
        by: Nick,
        /// Why, if they said.
        reason: Option<String>,
    },
}

/// Why the hub asked for a nick claim, so it knows what to do with the
/// answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// A `/nick` (or an IRC NICK) from `old`.
    Rename {
        /// The nick the user has now.
        old: Nick,
    },
    /// An IRC registration.
    Register {
        /// USER's user name.
        user: String,
        /// USER's real name.
        realname: String,
    },
    /// A guest nick given at connect, already in use locally: a refusal
    /// renames the user.
    Guest,
    /// A claim the hub does not wait for (made while the link was down).
    Keep,
}

/// From the hub to the command thread.
#[derive(Debug)]
pub enum Command {
    /// Publish a room event.
    Publish {
        /// The room's key.
        room: String,
        /// The event.
        envelope: Envelope,
    },
    /// Claim a nick for `conn`.
    Claim {
        /// Who asks.
        conn: ConnId,
        /// The nick.
        nick: Nick,
        /// Why.
        purpose: Purpose,
    },
    /// Take over the nicks and presence of the users a restart handed over
    /// (see [`crate::upgrade`]): the previous process of this instance held
    /// them under its own id, so they are taken whoever's Redis says they
    /// are. Not answered. One command for all of them, sent in round trips
    /// of [`link::BATCH`]: one command each would not fit the queue to
    /// Redis ([`link::COMMAND_CAPACITY`]) for a big instance.
    TakeOver {
        /// Their nicks.
        nicks: Vec<Nick>,
        /// Each room each of them is in.
        presence: Vec<(RoomName, Nick)>,
    },
    /// Let a nick go.
    Release {
        /// The nick's key.
        key: String,
    },
    /// A local user is in a room.
    Join {
        /// The room.
        room: RoomName,
        /// Who.
        nick: Nick,
    },
    /// A local user left a room.
    Leave {
        /// The room's key.
        room: String,
        /// Who.
        nick: Nick,
    },
    /// A room's members, cluster-wide, for `/who` (or IRC's NAMES).
    Who {
        /// Who asks.
        conn: ConnId,
        /// The room's key.
        room: String,
        /// What for.
        asked: Asked,
    },
    /// The rooms with members, cluster-wide, for `/rooms` (or IRC's
    /// LIST).
    Rooms {
        /// Who asks.
        conn: ConnId,
        /// The page asked for; `None` for IRC's LIST (all of them).
        page: Option<usize>,
    },
    /// A private message to a user not on this instance.
    Private {
        /// Who sends it.
        conn: ConnId,
        /// The message.
        message: Private,
    },
    /// Read a room's stream between two numbers (both included).
    Fill {
        /// The room's key.
        room: String,
        /// First number.
        from: u64,
        /// Last number.
        to: u64,
    },
    /// Read every room's stream past the positions given (all of a room
    /// not listed), then say [`ClusterEvent::CaughtUp`]. The rooms in
    /// `reload` are read whole, first: what their streams hold up to the
    /// position comes as [`ClusterEvent::History`], the rest as a
    /// backlog.
    CatchUp {
        /// Each room's last delivered number.
        positions: Vec<(String, u64)>,
        /// Rooms whose history the hub replaces with their stream's (the
        /// stream is the truth; see [`ClusterEvent::History`]).
        reload: Vec<String>,
    },
    /// Reserve the next block of guest numbers.
    GuestBlock,
    /// WHOIS of a nick not on this instance: who holds it, and the rooms
    /// presence has it in.
    Whois {
        /// Who asks.
        conn: ConnId,
        /// The nick asked about.
        nick: Nick,
    },
    /// Read a room's topic, settings and bans (asked before a room's first
    /// local member's join is published, so the answer reaches the hub
    /// before the join comes back).
    RoomState {
        /// The room's key.
        room: String,
    },
}

/// From the cluster's threads to the hub.
#[derive(Debug)]
pub enum ClusterEvent {
    /// A connection went down or came up.
    Link {
        /// Which.
        part: Part,
        /// Whether it is up now.
        up: bool,
    },
    /// A room line from the subscription.
    Line {
        /// The room's key.
        room: String,
        /// Its number.
        seq: u64,
        /// The line.
        envelope: Envelope,
    },
    /// Lines read from a room's stream, in order.
    Backlog {
        /// The room's key.
        room: String,
        /// The lines.
        lines: Vec<(u64, Envelope)>,
        /// The last number the read covered.
        upto: u64,
    },
    /// What a room's stream holds up to where the hub was, read in a
    /// catch-up ([`Command::CatchUp`]'s `reload`): the room's history is
    /// replaced with it, so that every instance remembers the same after
    /// an outage (lines said on one instance alone meanwhile, or lost with
    /// a Redis restarted without persistence, are forgotten). Comes before
    /// the room's backlog, from the same read.
    History {
        /// The room's key.
        room: String,
        /// The lines, in order.
        lines: Vec<(u64, Envelope)>,
    },
    /// A [`Command::CatchUp`] is done.
    CaughtUp,
    /// Redis lost its data since the last connection (it restarted without
    /// persistence): every room's numbering starts again.
    DataLost,
    /// A published line that never reached Redis (the link failed): the
    /// hub delivers it locally, as with the link down.
    Unpublished {
        /// The room's key.
        room: String,
        /// The event.
        envelope: Envelope,
    },
    /// The answer to a [`Command::Claim`].
    Claimed {
        /// Who asked.
        conn: ConnId,
        /// The nick.
        nick: Nick,
        /// Why.
        purpose: Purpose,
        /// Whether it is ours now.
        won: bool,
    },
    /// Claims a refresh found held by another instance (nick keys).
    ClaimsLost(Vec<String>),
    /// The answer to a [`Command::Who`]: every member's nick, in no order
    /// (`None` when Redis could not be asked).
    Members {
        /// Who asked.
        conn: ConnId,
        /// The room's key.
        room: String,
        /// What for.
        asked: Asked,
        /// The nicks.
        nicks: Option<Vec<Nick>>,
    },
    /// The answer to a [`Command::Rooms`]: rooms with member counts.
    Rooms {
        /// Who asked.
        conn: ConnId,
        /// The page asked for (`None`: IRC's LIST).
        page: Option<usize>,
        /// The rooms (`None` when Redis could not be asked).
        rooms: Option<Vec<(RoomName, usize)>>,
    },
    /// A private message for a user on this instance.
    PrivateIn(Private),
    /// What became of a [`Command::Private`].
    PrivateSent {
        /// Who sent it.
        conn: ConnId,
        /// The message.
        message: Private,
        /// False when no instance has the nick.
        delivered: bool,
    },
    /// The answer to a [`Command::Whois`]: the rooms the nick is in, if
    /// another instance holds it (`None`: no one does, or Redis could not
    /// be asked).
    Whois {
        /// Who asked.
        conn: ConnId,
        /// The nick asked about.
        nick: Nick,
        /// Its rooms, when another instance holds it.
        rooms: Option<Vec<RoomName>>,
    },
    /// The answer to a [`Command::RoomState`] (all `None` when Redis
    /// could not be asked).
    RoomState {
        /// The room's key.
        room: String,
        /// Its topic, and the number of the line that set it (`None`:
        /// none kept).
        topic: Option<(u64, Topic)>,
        /// Its settings and bans (unexpired, oldest first), and the number
        /// of the last line that changed them (`None`: never changed).
        moderation: Option<(u64, RoomSettings, Vec<BanInfo>)>,
    },
    /// A block of guest numbers, `start..end`.
    Guests {
        /// First number.
        start: u64,
        /// One past the last.
        end: u64,
    },
}

/// A name for this process, unique in the cluster: host, process id and a
/// random part (a restarted process on the same host with the same pid is
/// still another instance).
pub fn instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "chat".to_string());
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        hasher.finish() & 0xffff_ffff
    )
}
