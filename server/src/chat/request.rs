//! What a user asks of the hub, whatever their front end.
//!
//! Each front end turns its wire format into [`Request`]s: the line
//! protocol's `/join rust` becomes a join that leaves the user's other
//! rooms (its users are in one room at a time, a policy of that front
//! end's), while an IRC `JOIN #rust` would keep them. Requests name their
//! room, or say [`Target::Current`] for the room the user joined last,
//! which is the only one a line protocol user is in.

use chat_protocol::command::CommandHelp;
use chat_protocol::irc::IrcReply;
use std::time::Duration;

use chat_protocol::{Mask, Nick, Role, RoomName, RoomSetting, Style};

/// Which room a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The room the user joined last (the line protocol's "your room").
    Current,
    /// A room by name.
    Room(RoomName),
}

/// One thing a user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Say something in a room.
    Say {
        /// Where.
        room: Target,
        /// What, sanitized.
        text: String,
        /// A message, an action or a notice.
        style: Style,
        /// Send it back to the sender too, as the room hears it (IRC's
        /// `echo-message`).
        echo: bool,
    },
    /// A private message.
    Private {
        /// To whom.
        to: Nick,
        /// What, sanitized.
        text: String,
        /// A message, an action or a notice.
        style: Style,
    },
    /// Finish registering (an IRC client, after NICK and USER): take this
    /// nick and be on the chat, in no room yet.
    Register {
        /// The nick asked for.
        nick: Nick,
        /// The user name given.
        user: String,
        /// The real name given.
        realname: String,
    },
    /// Take another nick.
    Nick(Nick),
    /// Enter a room, created if needed; with `leave_others`, leave every
    /// other room first (the line protocol's one room at a time), and
    /// joining the room one is in is an error rather than nothing.
    Join {
        /// The room.
        room: RoomName,
        /// Leave the other rooms.
        leave_others: bool,
        /// List the members after joining (IRC's NAMES after a JOIN).
        names: bool,
        /// The room's key, for a room that has one.
        key: Option<String>,
    },
    /// Leave a room.
    Part {
        /// Which.
        room: Target,
        /// Why, as the room is told.
        reason: Option<String>,
    },
    /// Show a room's topic, or set it.
    Topic {
        /// Which room.
        room: Target,
        /// The new topic, sanitized; `None` asks what it is.
        set: Option<String>,
    },
    /// A page of a room's members.
    Who {
        /// Which room.
        room: Target,
        /// Which page, from 1.
        page: usize,
    },
    /// A page of the rooms.
    Rooms {
        /// Which page, from 1.
        page: usize,
    },
    /// The last lines said in a room.
    History {
        /// Which room.
        room: Target,
        /// How many; the server's replay count when not given.
        count: Option<usize>,
    },
    /// Every member of some rooms, whether or not one is in them (IRC's
    /// NAMES): one listing per room, then the end of them, which names
    /// what was asked (`#a,#b`).
    Names {
        /// The rooms.
        rooms: Vec<RoomName>,
        /// The rooms as asked.
        asked: String,
    },
    /// What the server knows of a user (IRC's WHOIS).
    Whois(Nick),
    /// The users of a room, or those whose nick matches a mask with `*`
    /// and `?` (IRC's WHO).
    WhoMatching(String),
    /// Every room with members, with its count and topic (IRC's LIST).
    List,
    /// Set an away message, or come back (`None`).
    Away(Option<String>),
    /// Be left out of others' WHO by mask, or not (IRC's user mode `+i`).
    Invisible(bool),
    /// Hand this reply back, in order with the others (see
    /// [`IrcReply`]); allowed before registering.
    Irc(IrcReply),
    /// Give or take a role in a room (its operators only).
    SetRole {
        /// Which room.
        room: Target,
        /// Whose role.
        nick: Nick,
        /// Which role.
        role: Role,
        /// Give (true) or take.
        on: bool,
    },
    /// Put someone out of a room (its operators only).
    Kick {
        /// Which room.
        room: Target,
        /// Whom.
        nick: Nick,
        /// Why, as the room is told.
        reason: Option<String>,
    },
    /// Ban a mask from a room (its operators only).
    Ban {
        /// Which room.
        room: Target,
        /// Whom.
        mask: Mask,
        /// For how long; `None` until lifted.
        duration: Option<Duration>,
    },
    /// Lift a ban (a room's operators only).
    Unban {
        /// Which room.
        room: Target,
        /// The ban's mask.
        mask: Mask,
    },
    /// A room's bans.
    Bans(Target),
    /// A room's settings, or a change to one (its operators only).
    RoomSettings {
        /// Which room.
        room: Target,
        /// The change, or `None` to ask.
        change: Option<RoomSetting>,
    },
    /// The list of commands, or what one of them does.
    Help(Option<&'static CommandHelp>),
    /// Leave the server.
    Quit(Option<String>),
}
