//! What the chat state owner tells a user, independent of the wire format.
//!
//! The server's state owner (the hub) speaks only in [`ServerEvent`]s; the
//! front end that owns a connection turns each event into its wire format.
//! This module also holds that conversion for the line protocol,
//! [`ServerEvent::lines`], so the wording of every notice and error is
//! defined in one place. A later front end (IRC, say) maps the same events
//! to its own lines without touching the hub.

use crate::command::{CommandError, CommandHelp, COMMANDS};
use crate::decoder::DecodeError;
use crate::history::{format_time, HistoryEntry};
use crate::irc::IrcReply;
use crate::line::ServerLine;
use crate::moderation::{format_duration, BanInfo, Mask, Member, Role, RoomSetting, RoomSettings};
use crate::names::{Nick, RoomName};

/// Something the server tells one or more users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// The first thing a new connection hears: its nick and room.
    Welcome {
        /// The nick given to the new user.
        nick: Nick,
        /// The room it is in.
        room: RoomName,
    },
    /// A message in a room.
    Said {
        /// The room it was said in.
        room: RoomName,
        /// Who said it.
        from: Nick,
        /// The sanitized text.
        text: String,
    },
    /// A `/me` in a room.
    Action {
        /// The room it was done in.
        room: RoomName,
        /// Who did it.
        from: Nick,
        /// The sanitized text.
        text: String,
    },
    /// A private message to the recipient.
    PrivateFrom {
        /// Who sent it.
        from: Nick,
        /// The sanitized text.
        text: String,
        /// A message, an action or a notice.
        style: Style,
    },
    /// Confirmation to the sender of a private message.
    PrivateTo {
        /// Who it went to.
        to: Nick,
        /// The sanitized text.
        text: String,
        /// A message, an action or a notice.
        style: Style,
    },
    /// Confirmation of the recipient's own `/nick`.
    NickSet {
        /// The new nick.
        nick: Nick,
    },
    /// Someone in the room changed nick.
    NickChanged {
        /// The nick before.
        old: Nick,
        /// The nick after.
        new: Nick,
    },
    /// Confirmation of the recipient's own `/join`.
    JoinedRoom {
        /// The room now joined.
        room: RoomName,
    },
    /// Someone entered the room.
    Joined {
        /// Who.
        nick: Nick,
        /// Which room.
        room: RoomName,
    },
    /// Someone left the room.
    Left {
        /// Who.
        nick: Nick,
        /// Which room.
        room: RoomName,
        /// Why.
        reason: LeaveReason,
    },
    /// Reply to `/who`: one page of the room's members.
    Who {
        /// The room asked about.
        room: RoomName,
        /// How many members it has.
        total: usize,
        /// Which page this is, and how many there are (see [`Page`]).
        page: Page,
        /// The members on this page, sorted by nick, with their roles.
        nicks: Vec<Member>,
    },
    /// Reply to `/rooms`: one page of the rooms.
    Rooms {
        /// How many rooms there are.
        total: usize,
        /// Which page this is, and how many there are (see [`Page`]).
        page: Page,
        /// Each room on this page with its member count, sorted by name.
        rooms: Vec<(RoomName, usize)>,
    },
    /// A room's topic: the answer to `/topic`, and shown on joining a room
    /// that has one.
    Topic {
        /// The room.
        room: RoomName,
        /// Its topic, if it has one.
        topic: Option<Topic>,
    },
    /// Someone set the topic of a room the recipient is in.
    TopicChanged {
        /// The room.
        room: RoomName,
        /// The new topic.
        topic: Topic,
    },
    /// Lines a room remembers, oldest first: replayed on joining it, and
    /// the answer to `/history`.
    History {
        /// The room.
        room: RoomName,
        /// The lines; none when the room remembers nothing.
        entries: Vec<std::sync::Arc<HistoryEntry>>,
    },
    /// Reply to `/help`: the list of commands, or what one of them does.
    Help(Option<&'static CommandHelp>),
    /// Reply to `/quit`, just before the server closes the connection.
    Bye,
    /// The server is stopping and will close the connection.
    ShuttingDown,
    /// The server restarted (a new process, perhaps a new version, took
    /// over) and the recipient's connection, nick and rooms were kept.
    Restarted {
        /// The version now running.
        version: String,
    },
    /// The recipient sent nothing for too long and is being disconnected.
    IdleTimeout {
        /// How long it was quiet, in whole seconds.
        secs: u64,
    },
    /// The server is full and the recipient, who never said anything, is
    /// being disconnected to make room for a newcomer.
    MakingRoom,
    /// The recipient (an IRC client) answered no PING for too long and is
    /// being disconnected.
    PingTimeout {
        /// How long it was silent, in whole seconds.
        secs: u64,
    },
    /// The recipient (an IRC client) did not register in time and is being
    /// disconnected.
    RegistrationTimeout {
        /// How long it had, in whole seconds.
        secs: u64,
    },
    /// The recipient finished registering (an IRC client's NICK and USER):
    /// it is on the chat now, with this nick, in no room yet.
    Registered {
        /// Its nick.
        nick: Nick,
    },
    /// A notice in a room: a message that asks for no answer (IRC's
    /// NOTICE; bots use it).
    Noticed {
        /// The room it was said in.
        room: RoomName,
        /// Who said it.
        from: Nick,
        /// The sanitized text.
        text: String,
    },
    /// Confirmation that the recipient left a room and stays on the server
    /// (IRC's PART).
    LeftRoom {
        /// The room left.
        room: RoomName,
        /// Why, as the room was told.
        reason: Option<String>,
    },
    /// Every member of a room, sorted by nick, with the one shown as its
    /// operator (the member there longest): IRC's NAMES, and what follows
    /// an IRC client's JOIN.
    Names {
        /// The room.
        room: RoomName,
        /// Its members, with their roles; none when it is empty or does
        /// not exist.
        members: Vec<Member>,
        /// What the end of the listing names (a NAMES of several rooms
        /// ends once, after the last); `None` when more rooms follow.
        end: Option<String>,
    },
    /// What the server knows of a user (IRC's WHOIS).
    Whois {
        /// The nick asked about.
        asked: Nick,
        /// The user, or `None` when no one has that nick.
        info: Option<UserInfo>,
    },
    /// The users a WHO asked for.
    WhoList {
        /// The mask or room asked about, as given.
        mask: String,
        /// One entry per user (per room for a room's WHO).
        entries: Vec<WhoEntry>,
        /// More users matched than are listed.
        truncated: bool,
    },
    /// Every room with members, with its count and topic (IRC's LIST).
    List {
        /// The rooms, sorted by name.
        rooms: Vec<RoomListing>,
    },
    /// The recipient's invisibility changed (IRC's user mode `+i`: left
    /// out of others' WHO by mask).
    Invisible {
        /// Invisible now, or not.
        on: bool,
    },
    /// The recipient is away now, or back (IRC's AWAY).
    AwaySet {
        /// Away (true) or back.
        away: bool,
    },
    /// The user the recipient just messaged is away.
    IsAway {
        /// Who.
        nick: Nick,
        /// Their away message.
        message: String,
    },
    /// A reply the IRC front end made itself, handed back by the hub in
    /// order with its own (see [`IrcReply`]); it says nothing in the line
    /// protocol.
    Irc(IrcReply),
    /// Something a server operator tells everyone (`chat-server ctl
    /// announce`).
    Announcement {
        /// What.
        text: String,
    },
    /// The instance lost or regained its link to the other instances of
    /// a cluster (the server's `--cluster`): while it is lost, only users
    /// on this instance hear what is said.
    ClusterLink {
        /// Whether the link is up again (`false`: it was just lost).
        up: bool,
    },
    /// A server operator disconnected the recipient, who is then closed.
    Removed {
        /// Why, if the operator said.
        reason: Option<String>,
    },
    /// A room operator gave or took a role.
    RoleChanged {
        /// The room.
        room: RoomName,
        /// Whose role.
        nick: Nick,
        /// Who did it.
        by: Nick,
        /// Which role.
        role: Role,
        /// Given (true) or taken.
        on: bool,
    },
    /// A room operator put someone out of the room.
    Kicked {
        /// The room.
        room: RoomName,
        /// Who was put out.
        nick: Nick,
        /// Who did it.
        by: Nick,
        /// Why, if they said.
        reason: Option<String>,
    },
    /// A room operator banned a mask, or lifted a ban.
    BanChanged {
        /// The room.
        room: RoomName,
        /// What the ban matches.
        mask: Mask,
        /// Who did it.
        by: Nick,
        /// Banned (true) or lifted.
        on: bool,
        /// How long it lasts, if not until lifted.
        duration: Option<std::time::Duration>,
    },
    /// A room's bans (`/bans`, IRC's `MODE #room b`).
    BanList {
        /// The room.
        room: RoomName,
        /// Its bans, oldest first.
        bans: Vec<BanInfo>,
    },
    /// A room operator changed a setting of the room.
    SettingChanged {
        /// The room.
        room: RoomName,
        /// Who did it.
        by: Nick,
        /// The change.
        setting: RoomSetting,
    },
    /// A room's settings (`/room`, IRC's `MODE #room`).
    Settings {
        /// The room.
        room: RoomName,
        /// Its settings.
        settings: RoomSettings,
    },
    /// The recipient's last line could not be carried out.
    Error(ErrorKind),
}

/// How a message is said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Style {
    /// An ordinary message.
    #[default]
    Message,
    /// An action (`/me`, IRC's CTCP ACTION).
    Action,
    /// A notice (IRC's NOTICE): no error is ever answered to one, so two
    /// programs cannot answer each other's errors for ever.
    Notice,
}

impl Style {
    /// The text as a line client shows a private one: an action as
    /// `* alice waves` (a line client has no other way to say it).
    fn show(self, who: &Nick, text: &str) -> String {
        match self {
            Style::Action => format!("* {who} {text}"),
            Style::Message | Style::Notice => text.to_string(),
        }
    }
}

/// What [`ServerEvent::Whois`] tells of a user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserInfo {
    /// Their nick.
    pub nick: Nick,
    /// Their user name (an IRC client's USER; a line client's nick).
    pub user: String,
    /// Their real name (an IRC client's USER; a line client's says so).
    pub realname: String,
    /// The rooms they are in.
    pub rooms: Vec<RoomName>,
    /// Their away message, if they are away.
    pub away: Option<String>,
    /// Seconds since they last said something.
    pub idle_secs: u64,
    /// When they connected, in seconds since the Unix epoch.
    pub signon: u64,
    /// They are on another server of the cluster: only their nick and
    /// rooms are known here (the user and real names are empty, idle and
    /// signon 0, and no away message).
    #[serde(default)]
    pub elsewhere: bool,
}

/// One user in a [`ServerEvent::WhoList`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WhoEntry {
    /// Their nick.
    pub nick: Nick,
    /// Their user name.
    pub user: String,
    /// Their real name.
    pub realname: String,
    /// The room this entry is for (a room's WHO), or one they are in.
    pub room: Option<RoomName>,
    /// Whether they are that room's operator.
    pub op: bool,
    /// Whether they are voiced in that room.
    pub voice: bool,
    /// Whether they are away.
    pub away: bool,
    /// They are on another server of the cluster: only their nick (and
    /// the room) is known here; the user and real names are empty, and
    /// they are listed neither away nor with a role.
    #[serde(default)]
    pub elsewhere: bool,
}

/// One room in a [`ServerEvent::List`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoomListing {
    /// The room.
    pub name: RoomName,
    /// How many members it has.
    pub members: usize,
    /// Its topic's text, if it has one.
    pub topic: Option<String>,
}

/// A room's topic, with who set it and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Topic {
    /// The topic, sanitized.
    pub text: String,
    /// Who set it.
    pub by: Nick,
    /// When, in milliseconds since the Unix epoch.
    pub at: u64,
}

/// Why someone left a room.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LeaveReason {
    /// They joined another room.
    Moved(RoomName),
    /// They said `/quit`, perhaps with a reason.
    Quit(Option<String>),
    /// Their connection closed without `/quit`.
    Disconnected,
    /// Their connection could not keep up with what was sent to it: its
    /// outbound queue overflowed and the server dropped it.
    SlowConsumer,
    /// They sent nothing for longer than the server's idle timeout.
    Idle,
    /// The server was full, they had never said anything, and their place
    /// went to a newcomer.
    MadeRoom,
    /// They left the room (and stay on the server), perhaps saying why.
    Parted(Option<String>),
    /// They answered no PING for too long (an IRC client).
    PingTimeout,
    /// A server operator disconnected them, perhaps saying why.
    Removed(Option<String>),
}

/// Which page of a listing a reply is. Listings that grow with the server
/// (`/who` in a big room, `/rooms` on a busy server) are sent a page at a
/// time, so that a short command never buys an answer of megabytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Page {
    /// This page, from 1.
    pub number: usize,
    /// How many pages there are (at least 1).
    pub of: usize,
}

impl Page {
    /// The most entries on one page.
    pub const SIZE: usize = 100;

    /// Page `number` of a listing of `total` entries, clamped to the pages
    /// there are, with the range of entries it holds.
    pub fn of_listing(number: usize, total: usize) -> (Page, std::ops::Range<usize>) {
        let of = total.div_ceil(Page::SIZE).max(1);
        let number = number.clamp(1, of);
        let start = (number - 1).saturating_mul(Page::SIZE).min(total);
        let end = start.saturating_add(Page::SIZE).min(total);
        (Page { number, of }, start..end)
    }

    /// The note that follows a paged listing's count, if it has pages:
    /// `, page 2 of 90 (/who 3 for more)`.
    fn note(self, command: &str) -> String {
        if self.of <= 1 {
            String::new()
        } else if self.number < self.of {
            format!(
                ", page {} of {} ({command} {} for more)",
                self.number,
                self.of,
                self.number + 1
            )
        } else {
            format!(", page {} of {}", self.number, self.of)
        }
    }
}

/// What went wrong with a user's line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// Occurs when the line could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Occurs when the line is not a valid command.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// Occurs for `/nick` to a nick someone else has.
    #[error("nick {0} is already in use")]
    NickInUse(Nick),
    /// Occurs for `/nick` to a nick that looks like the nick of someone
    /// else who is online: the two share a [`Nick::skeleton`].
    #[error("nick {asked} looks too much like {existing}, who is online")]
    NickConfusable {
        /// The nick asked for.
        asked: Nick,
        /// The nick in use that it looks like.
        existing: Nick,
    },
    /// Occurs for `/msg` to a nick nobody has.
    #[error("no such nick: {0}")]
    NoSuchNick(Nick),
    /// Occurs for `/join` of the room the user is in.
    #[error("you are already in {0}")]
    AlreadyInRoom(RoomName),
    /// Occurs for saying something to, or asking about, a room the user is
    /// not in.
    #[error("you are not in {0}")]
    NotInRoom(RoomName),
    /// Occurs for saying something to "your room" while in none (possible
    /// for clients that may leave every room).
    #[error("you are in no room; /join one")]
    NoCurrentRoom,
    /// Occurs for joining one room more than the most a user may be in at
    /// once (a client that joins several rooms; the line protocol's
    /// clients are in one).
    #[error("you are in {0} rooms already, the most there may be")]
    TooManyRooms(usize),
    /// Occurs for a command other than registration's from a client that
    /// has not registered yet (an IRC client before NICK and USER).
    #[error("you have not registered")]
    NotRegistered,
    /// Occurs for a command about a room that does not exist.
    #[error("no such room: {0}")]
    NoSuchRoom(RoomName),
    /// Occurs for a message to a room the sender is not in.
    #[error("you are not in {0}")]
    CannotSendTo(RoomName),
    /// Occurs for a moderation command from someone who is not an
    /// operator of the room (nobody is, of the lobby).
    #[error("you are not an operator of {0}")]
    NotOperator(RoomName),
    /// Occurs for a moderation command about someone not in the room.
    #[error("{nick} is not in {room}")]
    NotInTheRoom {
        /// Who.
        nick: Nick,
        /// Where.
        room: RoomName,
    },
    /// Occurs for joining a room whose bans match the user.
    #[error("you are banned from {0}")]
    BannedFrom(RoomName),
    /// Occurs for saying something in a room whose bans match the sayer:
    /// nothing is delivered.
    #[error("you are banned from {0}: nothing you say there is delivered")]
    Silenced(RoomName),
    /// Occurs for joining a room with a key without it, or with another.
    #[error("{0} needs a key: /join {0} KEY")]
    NeedsKey(RoomName),
    /// Occurs for saying something in a moderated room without voice.
    #[error("{0} is moderated: only operators and voiced members speak")]
    Moderated(RoomName),
    /// Occurs for setting a locked topic without being an operator.
    #[error("only operators of {0} set its topic")]
    TopicLocked(RoomName),
    /// Occurs for lifting a ban that is not there.
    #[error("no ban {mask} in {room}")]
    NoSuchBan {
        /// The mask asked for.
        mask: Mask,
        /// Where.
        room: RoomName,
    },
    /// Occurs for a connection from an address a server ban names; it is
    /// then closed.
    #[error("you are banned from this server")]
    BannedFromServer,
    /// Occurs for a connection over `--max-clients`; it is then closed.
    #[error("server full")]
    ServerFull,
    /// Occurs for a connection over `--max-per-ip` from one address; it is
    /// then closed.
    #[error("too many connections from your address")]
    TooManyFromAddress,
    /// Occurs for a connection over `--max-per-net` from one network (an
    /// IPv4 /24 or IPv6 /64 by default); it is then closed.
    #[error("too many connections from your network")]
    TooManyFromNetwork,
    /// Occurs for a connection past the throttle on new connections from
    /// one address or network (`--connect-rate`, `--connect-burst`); it is
    /// then closed.
    #[error("too many new connections from your address; try again in a few seconds")]
    ConnectingTooFast,
}

fn notice(text: String) -> ServerLine {
    ServerLine::Notice(text)
}

impl ServerEvent {
    /// The lines of the line protocol that say this event, in order.
    pub fn lines(&self) -> Vec<ServerLine> {
        let line = match self {
            ServerEvent::Welcome { nick, room } => notice(format!(
                "welcome to chat-server, {nick}! you are in {room}; type /help for commands"
            )),
            // A line client is in one room: the room goes without saying.
            ServerEvent::Said { from, text, .. } => ServerLine::Message {
                from: from.to_string(),
                text: text.clone(),
            },
            ServerEvent::Action { from, text, .. } => ServerLine::Action {
                from: from.to_string(),
                text: text.clone(),
            },
            ServerEvent::PrivateFrom { from, text, style } => ServerLine::PrivateFrom {
                from: from.to_string(),
                text: style.show(from, text),
            },
            ServerEvent::PrivateTo { to, text, style } => ServerLine::PrivateTo {
                to: to.to_string(),
                text: style.show(to, text),
            },
            ServerEvent::NickSet { nick } => notice(format!("you are now known as {nick}")),
            ServerEvent::NickChanged { old, new } => notice(format!("{old} is now known as {new}")),
            ServerEvent::JoinedRoom { room } => notice(format!("you joined {room}")),
            ServerEvent::Joined { nick, room } => notice(format!("{nick} joined {room}")),
            ServerEvent::Left { nick, room, reason } => {
                notice(format!("{nick} left {room} ({})", reason.describe()))
            }
            ServerEvent::Who {
                room,
                total,
                page,
                nicks,
            } => {
                let names: Vec<String> = nicks
                    .iter()
                    .map(|m| format!("{}{}", m.prefix(), m.nick))
                    .collect();
                notice(format!(
                    "{total} in {room}{}: {}",
                    page.note("/who"),
                    names.join(", ")
                ))
            }
            ServerEvent::Rooms { total, page, rooms } => {
                let list: Vec<String> = rooms.iter().map(|(room, n)| format!("{room} ({n})")).collect();
                let noun = if *total == 1 { "room" } else { "rooms" };
                notice(format!(
                    "{total} {noun}{}: {}",
                    page.note("/rooms"),
                    list.join(", ")
                ))
            }
            ServerEvent::Topic { room, topic: None } => notice(format!("{room} has no topic")),
            ServerEvent::Topic {
                room,
                topic: Some(topic),
            } => notice(format!(
                "topic of {room}: {} (set by {} at {})",
                topic.text,
                topic.by,
                format_time(topic.at)
            )),
            ServerEvent::TopicChanged { room, topic } => {
                notice(format!("{} set the topic of {room}: {}", topic.by, topic.text))
            }
            ServerEvent::History { room, entries } if entries.is_empty() => {
                notice(format!("no earlier lines in {room}"))
            }
            ServerEvent::History { entries, .. } => return entries.iter().map(|e| replayed(e)).collect(),
            ServerEvent::Help(None) => return help_lines(),
            ServerEvent::Help(Some(help)) => return command_help_lines(help),
            ServerEvent::Bye => notice("bye".to_string()),
            ServerEvent::ShuttingDown => notice("server shutting down".to_string()),
            ServerEvent::Restarted { version } => notice(format!(
                "server restarted (version {version}); you are still connected"
            )),
            ServerEvent::IdleTimeout { secs } => {
                notice(format!("closing idle connection (nothing received for {secs} s)"))
            }
            ServerEvent::MakingRoom => notice(
                "closing this connection: the server is full and you have not said anything".to_string(),
            ),
            ServerEvent::PingTimeout { secs } => {
                notice(format!("closing connection: no answer to PING for {secs} s"))
            }
            ServerEvent::RegistrationTimeout { secs } => {
                notice(format!("closing connection: not registered within {secs} s"))
            }
            ServerEvent::Registered { nick } => notice(format!("you are on the chat as {nick}")),
            ServerEvent::Noticed { from, text, .. } => ServerLine::Message {
                from: from.to_string(),
                text: text.clone(),
            },
            ServerEvent::LeftRoom { room, .. } => notice(format!("you left {room}")),
            ServerEvent::Names { room, members, .. } => {
                let names: Vec<String> = members
                    .iter()
                    .map(|m| format!("{}{}", m.prefix(), m.nick))
                    .collect();
                notice(format!("{} in {room}: {}", members.len(), names.join(", ")))
            }
            ServerEvent::Whois { asked, info: None } => ServerLine::Error(format!("no such nick: {asked}")),
            ServerEvent::Whois { info: Some(info), .. } if info.elsewhere => {
                let rooms: Vec<&str> = info.rooms.iter().map(RoomName::as_str).collect();
                notice(format!(
                    "{} (on another server of this cluster): in {}",
                    info.nick,
                    rooms.join(", ")
                ))
            }
            ServerEvent::Whois { info: Some(info), .. } => {
                let rooms: Vec<&str> = info.rooms.iter().map(RoomName::as_str).collect();
                let away = info
                    .away
                    .as_ref()
                    .map_or_else(String::new, |a| format!("; away: {a}"));
                notice(format!(
                    "{} ({}): in {}{away}",
                    info.nick,
                    info.realname,
                    rooms.join(", ")
                ))
            }
            ServerEvent::WhoList { entries, .. } => {
                let names: Vec<&str> = entries.iter().map(|e| e.nick.as_str()).collect();
                notice(format!("{}: {}", entries.len(), names.join(", ")))
            }
            ServerEvent::List { rooms } => {
                let list: Vec<String> = rooms
                    .iter()
                    .map(|r| format!("{} ({})", r.name, r.members))
                    .collect();
                notice(list.join(", "))
            }
            ServerEvent::Invisible { on: true } => {
                notice("you are invisible to searches by nick".to_string())
            }
            ServerEvent::Invisible { on: false } => notice("you are visible to searches by nick".to_string()),
            ServerEvent::AwaySet { away: true } => notice("you are away".to_string()),
            ServerEvent::AwaySet { away: false } => notice("you are back".to_string()),
            ServerEvent::IsAway { nick, message } => notice(format!("{nick} is away: {message}")),
            ServerEvent::Irc(_) => return Vec::new(),
            ServerEvent::Announcement { text } => notice(format!("[server] {text}")),
            ServerEvent::ClusterLink { up: false } => {
                notice("cluster link lost; only users on this server can hear you".to_string())
            }
            ServerEvent::ClusterLink { up: true } => notice("cluster link restored".to_string()),
            ServerEvent::Removed { reason: None } => notice("a server operator disconnected you".to_string()),
            ServerEvent::Removed { reason: Some(why) } => {
                notice(format!("a server operator disconnected you: {why}"))
            }
            ServerEvent::RoleChanged {
                room,
                nick,
                by,
                role,
                on: true,
            } => match role {
                Role::Op => notice(format!("{by} made {nick} an operator of {room}")),
                Role::Voice => notice(format!("{by} gave {nick} voice in {room}")),
            },
            ServerEvent::RoleChanged {
                room, nick, by, role, ..
            } => notice(format!(
                "{by} took {} from {nick} in {room}",
                match role {
                    Role::Op => "operator",
                    Role::Voice => "voice",
                }
            )),
            ServerEvent::Kicked {
                room,
                nick,
                by,
                reason,
            } => {
                let why = reason.as_ref().map_or_else(String::new, |r| format!(" ({r})"));
                notice(format!("{nick} was kicked from {room} by {by}{why}"))
            }
            ServerEvent::BanChanged {
                room,
                mask,
                by,
                on: true,
                duration,
            } => {
                let how_long = duration.map_or_else(String::new, |d| format!(" for {}", format_duration(d)));
                notice(format!("{by} banned {mask} from {room}{how_long}"))
            }
            ServerEvent::BanChanged { room, mask, by, .. } => {
                notice(format!("{by} lifted the ban on {mask} in {room}"))
            }
            ServerEvent::BanList { room, bans } if bans.is_empty() => notice(format!("no bans in {room}")),
            ServerEvent::BanList { room, bans } => {
                return bans
                    .iter()
                    .map(|ban| {
                        let until = ban.until.map_or_else(
                            || " until lifted".to_string(),
                            |u| format!(" until {}", format_time(u)),
                        );
                        notice(format!(
                            "{room} bans {}, set by {} at {}{until}",
                            ban.mask,
                            ban.by,
                            format_time(ban.at)
                        ))
                    })
                    .collect()
            }
            ServerEvent::SettingChanged { room, by, setting } => notice(match setting {
                RoomSetting::Moderated(true) => {
                    format!("{by} made {room} moderated: only operators and voiced members speak")
                }
                RoomSetting::Moderated(false) => format!("{by} made {room} open to everyone's words again"),
                RoomSetting::TopicLocked(true) => {
                    format!("{by} locked the topic of {room}: only operators set it")
                }
                RoomSetting::TopicLocked(false) => format!("{by} unlocked the topic of {room}"),
                RoomSetting::Key(Some(key)) => format!("{by} set the key of {room} to {key}"),
                RoomSetting::Key(None) => format!("{by} removed the key of {room}"),
                RoomSetting::Hidden(true) => format!("{by} hid {room} from /rooms"),
                RoomSetting::Hidden(false) => format!("{by} showed {room} in /rooms again"),
            }),
            ServerEvent::Settings { room, settings } => {
                let mut set = Vec::new();
                if settings.moderated {
                    set.push("moderated".to_string());
                }
                if settings.topic_locked {
                    set.push("topic locked".to_string());
                }
                if let Some(key) = &settings.key {
                    set.push(format!("key {key}"));
                }
                if settings.hidden {
                    set.push("hidden".to_string());
                }
                if set.is_empty() {
                    notice(format!("{room}: open, no settings"))
                } else {
                    notice(format!("{room}: {}", set.join(", ")))
                }
            }
            ServerEvent::Error(kind) => ServerLine::Error(kind.to_string()),
        };
        vec![line]
    }

    /// Appends the lines of this event, each with its `\n`, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for line in self.lines() {
            line.encode(out);
        }
    }
}

/// The line that replays a remembered line.
fn replayed(entry: &HistoryEntry) -> ServerLine {
    ServerLine::Replayed {
        at: format_time(entry.at),
        from: entry.from.to_string(),
        text: entry.text.clone(),
        action: entry.action,
    }
}

fn help_lines() -> Vec<ServerLine> {
    let width = COMMANDS.iter().map(|help| help.usage.len()).max().unwrap_or(0);
    let mut lines = vec![notice("commands:".to_string())];
    lines.extend(
        COMMANDS
            .iter()
            .map(|help| notice(format!("  {:<width$}  {}", help.usage, help.summary))),
    );
    lines.push(notice(
        "text not starting with / is said to your room; //text says /text".to_string(),
    ));
    lines.push(notice("/help COMMAND explains one, e.g. /help join".to_string()));
    lines
}

/// `/help NAME`: the usage and summary, then the details, indented.
fn command_help_lines(help: &CommandHelp) -> Vec<ServerLine> {
    let mut lines = vec![notice(format!("{}: {}", help.usage, help.summary))];
    lines.extend(help.details.iter().map(|line| notice(format!("  {line}"))));
    lines
}

impl LeaveReason {
    /// The reason as shown in parentheses after "left #room".
    pub fn describe(&self) -> String {
        match self {
            LeaveReason::Moved(room) => format!("moved to {room}"),
            LeaveReason::Quit(None) => "quit".to_string(),
            LeaveReason::Quit(Some(reason)) => format!("quit: {reason}"),
            LeaveReason::Disconnected => "disconnect".to_string(),
            LeaveReason::SlowConsumer => "slow consumer".to_string(),
            LeaveReason::Idle => "idle".to_string(),
            LeaveReason::MadeRoom => "server full".to_string(),
            LeaveReason::Parted(None) => "left".to_string(),
            LeaveReason::Parted(Some(reason)) => format!("left: {reason}"),
            LeaveReason::PingTimeout => "ping timeout".to_string(),
            LeaveReason::Removed(None) => "removed by a server operator".to_string(),
            LeaveReason::Removed(Some(why)) => format!("removed by a server operator: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nick(s: &str) -> Nick {
        Nick::new(s).unwrap()
    }

    fn room(s: &str) -> RoomName {
        RoomName::new(s).unwrap()
    }

    fn text_of(event: ServerEvent) -> String {
        let mut out = Vec::new();
        event.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn notices_read_as_documented() {
        assert_eq!(
            text_of(ServerEvent::Welcome {
                nick: nick("guest1"),
                room: room("lobby")
            }),
            "-- welcome to chat-server, guest1! you are in #lobby; type /help for commands\n"
        );
        assert_eq!(
            text_of(ServerEvent::Left {
                nick: nick("bob"),
                room: room("lobby"),
                reason: LeaveReason::Moved(room("rust"))
            }),
            "-- bob left #lobby (moved to #rust)\n"
        );
        assert_eq!(
            text_of(ServerEvent::Left {
                nick: nick("bob"),
                room: room("lobby"),
                reason: LeaveReason::Quit(Some("bye all".into()))
            }),
            "-- bob left #lobby (quit: bye all)\n"
        );
        let one = Page { number: 1, of: 1 };
        assert_eq!(
            text_of(ServerEvent::Who {
                room: room("lobby"),
                total: 2,
                page: one,
                nicks: vec![
                    Member {
                        nick: nick("alice"),
                        op: true,
                        voice: false
                    },
                    Member {
                        nick: nick("bob"),
                        op: false,
                        voice: true
                    }
                ]
            }),
            "-- 2 in #lobby: @alice, +bob\n"
        );
        assert_eq!(
            text_of(ServerEvent::Rooms {
                total: 2,
                page: one,
                rooms: vec![(room("lobby"), 2), (room("rust"), 1)]
            }),
            "-- 2 rooms: #lobby (2), #rust (1)\n"
        );
        assert_eq!(
            text_of(ServerEvent::Who {
                room: room("lobby"),
                total: 250,
                page: Page { number: 2, of: 3 },
                nicks: vec![Member {
                    nick: nick("alice"),
                    op: false,
                    voice: false
                }]
            }),
            "-- 250 in #lobby, page 2 of 3 (/who 3 for more): alice\n"
        );
        assert_eq!(
            text_of(ServerEvent::Rooms {
                total: 201,
                page: Page { number: 3, of: 3 },
                rooms: vec![(room("zz"), 1)]
            }),
            "-- 201 rooms, page 3 of 3: #zz (1)\n"
        );
        assert_eq!(
            text_of(ServerEvent::Error(ErrorKind::ServerFull)),
            "!! server full\n"
        );
        assert_eq!(
            text_of(ServerEvent::Error(ErrorKind::NickConfusable {
                asked: nick("aIice"),
                existing: nick("alice")
            })),
            "!! nick aIice looks too much like alice, who is online\n"
        );
        assert_eq!(
            text_of(ServerEvent::Error(ErrorKind::Decode(DecodeError::TooLong {
                max: 10
            }))),
            "!! line too long (max 10 bytes); discarded up to the next newline\n"
        );
    }

    #[test]
    fn pages_cover_a_listing_and_clamp_what_is_asked() {
        assert_eq!(Page::of_listing(1, 0), (Page { number: 1, of: 1 }, 0..0));
        assert_eq!(Page::of_listing(1, 100), (Page { number: 1, of: 1 }, 0..100));
        assert_eq!(Page::of_listing(2, 101), (Page { number: 2, of: 2 }, 100..101));
        assert_eq!(Page::of_listing(9, 250), (Page { number: 3, of: 3 }, 200..250));
        assert_eq!(Page::of_listing(0, 250), (Page { number: 1, of: 3 }, 0..100));
        assert_eq!(
            Page::of_listing(usize::MAX, usize::MAX).0.number,
            usize::MAX.div_ceil(Page::SIZE)
        );
    }

    #[test]
    fn help_lists_every_command_as_notices() {
        let lines = ServerEvent::Help(None).lines();
        assert_eq!(lines.len(), COMMANDS.len() + 3);
        for help in COMMANDS {
            assert!(
                lines
                    .iter()
                    .any(|l| matches!(l, ServerLine::Notice(t) if t.trim_start().starts_with(help.usage))),
                "{} missing from /help",
                help.usage
            );
        }
        assert_eq!(
            lines.last().map(ToString::to_string).as_deref(),
            Some("-- /help COMMAND explains one, e.g. /help join")
        );
    }

    #[test]
    fn help_on_one_command_gives_its_usage_an_example_and_its_errors() {
        let join = CommandHelp::find("join").unwrap();
        let lines: Vec<String> = ServerEvent::Help(Some(join))
            .lines()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "-- /join ROOM [KEY]: leave your room and enter ROOM (created if needed)",
                "--   ROOM is 1 to 32 letters, digits, _ or -, with or without its #; #Rust and #rust \
                 are the same room. Joining shows its topic and its last lines.",
                "--   Whoever opens a room (joins it empty) is its operator. KEY is for a room whose \
                 operators set one.",
                "--   example: /join rust",
                "--   errors: !! you are already in #rust; !! invalid room: room name may only contain \
                 letters, digits, '_' and '-'",
                "--   !! #rust needs a key: /join #rust KEY; !! you are banned from #rust",
            ]
        );
        // Every command's help is notices, none over a terminal's 200
        // columns or so, and each line parses back as the notice it is.
        for help in COMMANDS {
            for line in ServerEvent::Help(Some(help)).lines() {
                let text = line.to_string();
                assert!(text.starts_with("-- ") && text.len() <= 200, "{text:?}");
                assert_eq!(ServerLine::parse(&text).ok(), Some(line));
            }
        }
    }
}
