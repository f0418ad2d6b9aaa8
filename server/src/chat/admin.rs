//! What server operators ask of the hub, and what it answers.
//!
//! `chat-server ctl` (see [`crate::ops::control`]) talks to the daemon over
//! a Unix socket; the control thread turns the commands that need the chat
//! state into [`AdminCommand`]s for the hub and waits for its
//! [`AdminAnswer`] on a channel of its own. The hub never waits on that
//! channel: it is bounded to one answer, and the control thread asks one
//! thing at a time.

use std::net::SocketAddr;

use chat_protocol::{Mask, Nick, RoomName, RoomSettings};

/// A server operator's command for the hub.
#[derive(Debug, Clone)]
pub enum AdminCommand {
    /// How many are connected, registering, and how many rooms there are.
    Status,
    /// Everyone connected, or the members of one room.
    Who(Option<RoomName>),
    /// Every room, hidden ones too, with its settings.
    Rooms,
    /// Disconnect a user.
    Kick {
        /// Whom.
        nick: Nick,
        /// Why, as they and their rooms are told.
        reason: Option<String>,
    },
    /// Put out whoever is connected from addresses a new server ban names.
    Banned {
        /// The ban's mask.
        mask: Mask,
        /// Why, as they are told.
        reason: Option<String>,
    },
    /// Tell everyone connected something.
    Announce(String),
}

/// One user, as `ctl who` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Their nick.
    pub nick: Nick,
    /// Where they connect from: operators see addresses.
    pub address: SocketAddr,
    /// Their user name (`line` for line protocol users).
    pub user: String,
    /// The rooms they are in.
    pub rooms: Vec<RoomName>,
    /// Seconds since they last said something.
    pub idle_secs: u64,
    /// Whether they are away.
    pub away: bool,
}

/// One room, as `ctl rooms` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRow {
    /// Its name.
    pub name: RoomName,
    /// How many are in it.
    pub members: usize,
    /// Its settings.
    pub settings: RoomSettings,
    /// How many bans it has.
    pub bans: usize,
    /// How many lines it remembers.
    pub history: usize,
}

/// The hub's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAnswer {
    /// To [`AdminCommand::Status`].
    Status {
        /// Users on the chat.
        users: usize,
        /// Connections still registering (IRC).
        registering: usize,
        /// Rooms with members, and the lobby.
        rooms: usize,
    },
    /// To [`AdminCommand::Who`]: sorted by nick (at most
    /// [`MAX_ROWS`]), and whether there were more.
    Who(Vec<UserRow>, bool),
    /// To [`AdminCommand::Rooms`]: sorted by name (at most [`MAX_ROWS`]),
    /// and whether there were more.
    Rooms(Vec<RoomRow>, bool),
    /// Done; how many it concerned (the users put out, told).
    Done(usize),
    /// Not done, and why.
    Refused(String),
}

/// The most users or rooms one answer lists: a listing of a server of
/// 100,000 users would hold up the hub for nothing a person reads.
pub const MAX_ROWS: usize = 10_000;
