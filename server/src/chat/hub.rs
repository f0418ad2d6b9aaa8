//! The hub: the one owner of the chat state.
//!
//! Users, nicks and rooms live here and nowhere else, on one thread, so no
//! lock guards them: the event loops send what users asked for as
//! [`Inbound`] messages and the hub answers with [`Outbound`] ones.
//! Because the hub handles messages one at a time, every member of a room
//! sees that room's events in one order, and one sender's messages in the
//! order sent.
//!
//! The hub knows nothing of wire formats or front ends: requests come in
//! as [`Request`]s (a front end made them from its bytes) and the hub
//! speaks in [`ServerEvent`]s, each room event naming its room. A user may
//! be in several rooms at once; the line protocol's one room at a time is
//! that front end's policy, asked for with each join
//! ([`Request::Join::leave_others`]). Everything said to a room, chat and
//! presence alike, goes through [`Hub::publish`]: that is the seam where a
//! backplane (Redis, so several instances share rooms) will plug in,
//! publishing to one channel per room and delivering locally what comes
//! back, which keeps one order per room across instances.
//!
//! What keeps it cheap, whatever the size of a room (see
//! [`crate::chat::room`]): a line to a room costs one message per I/O
//! thread, sharing the room's member lists; `/who` and `/rooms` read one
//! page of views kept in order, and their answers are charged to the
//! asker's flood allowance by size ([`Recipients::Reply`]), as is the
//! history replayed on joining a room.
//!
//! Each room remembers its last lines (see [`crate::chat::history`]):
//! replayed on joining it, kept when it empties, within one memory budget
//! for all rooms.
//!
//! Its channels are bounded (see [`crate::server`]): when an I/O thread's
//! outbound queue is full the hub waits for it, which is bounded because
//! every I/O thread takes a bounded number of messages every turn and never
//! waits on the hub; meanwhile the hub reads no more input, so the I/O
//! threads stop reading sockets: backpressure all the way to the senders'
//! TCP windows, and no queue that grows without bound.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_protocol::{
    ErrorKind, HistoryEntry, LeaveReason, Member, Nick, Page, RoomListing, RoomName, ServerEvent, Style,
    Topic, UserInfo, WhoEntry,
};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::Waker;

use crate::chat::history::Budget;
use crate::chat::messages::{Arrival, ConnId, Ending, Inbound, Outbound, Recipients, Released};
use crate::chat::request::{Request, Target};
use crate::chat::room::Room;
use crate::ops::liveness::Heartbeat;
use crate::ops::logging::clip;
use crate::ops::stats::Stats;

mod admin;
mod cluster;
mod moderation;
mod snapshot;

pub use snapshot::{HubState, RoomState, UserState};

pub use cluster::Link as ClusterLink;

/// How many inbound messages the hub handles before it hands its output to
/// the event loops and wakes them. Batching lets an event loop write many
/// messages to a socket in one system call; the bound keeps latency low
/// when the hub is busy.
const BATCH: usize = 256;

/// How long the hub waits for input before it turns anyway, to show the
/// watchdog it is alive (see [`crate::ops::liveness`]). A hub stuck for
/// longer than the watchdog's interval is restarted.
const TICK: Duration = Duration::from_secs(1);

/// Longest client text (a quit reason, a chat line at debug level) written
/// to the log, in characters: one line of the log per event, whatever a
/// client typed.
const LOGGED_TEXT: usize = 120;

/// The most rooms one user may be in at once. A line protocol user is in
/// one; a client that joins many rooms (IRC's) gets this many, as IRC
/// servers' `CHANLIMIT` does, so that one user cannot make every message
/// of hundreds of rooms their own fan-out.
pub const MAX_ROOMS_PER_USER: usize = 20;

/// The most users one WHO lists: an answer to `WHO *` on a server of
/// 10,000 is a page, not the whole server (its size is charged to the
/// asker all the same).
pub const MAX_WHO: usize = 200;

/// The most nicks one WHO looks at. A mask with a literal start (`ali*`)
/// looks only at the nicks that start so, in order; one that starts with a
/// wildcard (`*ice`) would look at every nick on the server, so it looks
/// at this many and says the list may be incomplete: one command must not
/// cost the hub time in proportion to the whole server.
pub const MAX_WHO_SCAN: usize = 2000;

/// The real name WHOIS shows for a line protocol user, who gives none.
const LINE_REALNAME: &str = "chat-server line protocol user";

/// The user name WHO and WHOIS show for a line protocol user, who gives
/// none: it says which protocol they came in on.
const LINE_USER: &str = "line";

/// How the hub behaves, from the server's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Rooms with more members than this hear no joins, leaves or nick
    /// changes (0 = always announce); see [`crate::Config::quiet_above`].
    pub quiet_above: usize,
    /// Lines each room remembers (`--history`; 0 = none).
    pub history_lines: usize,
    /// Lines replayed on joining a room, and the default of `/history`
    /// (`--replay`).
    pub replay_lines: usize,
    /// Most bytes all histories together may cost (`--history-bytes`).
    pub history_bytes: usize,
    /// What time it is, in milliseconds since the Unix epoch (a test
    /// stops the clock).
    pub clock: fn() -> u64,
    /// How many I/O threads feed the hub: on shutdown, it says goodbye once
    /// each has sent its last lines ([`Inbound::Drained`]).
    pub io_threads: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            quiet_above: 0,
            history_lines: crate::config::DEFAULT_HISTORY,
            replay_lines: crate::config::DEFAULT_REPLAY,
            history_bytes: crate::config::DEFAULT_HISTORY_BYTES,
            clock: system_clock,
            io_threads: 1,
        }
    }
}

/// The system's time, in milliseconds since the Unix epoch.
pub fn system_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One connected user.
#[derive(Debug)]
struct User {
    nick: Nick,
    /// The nick's key (see [`Nick::key`]), shared with the table of nicks
    /// and the rooms' member lists rather than copied into each.
    nick_key: Arc<str>,
    /// Keys of the rooms the user is in (see [`RoomName::key`]), in the
    /// order joined: the last is [`Target::Current`].
    rooms: Vec<Arc<str>>,
    /// Peer address, for logs.
    addr: SocketAddr,
    /// The user name (an IRC client's USER; a line client's first nick).
    user: String,
    /// The real name (an IRC client's USER).
    realname: String,
    /// The away message, while away.
    away: Option<String>,
    /// Left out of others' WHO by mask (IRC's `+i`).
    invisible: bool,
    /// When they came, in milliseconds since the Unix epoch.
    signon: u64,
    /// When they last said something, in the same unit.
    last_said: u64,
}

/// The chat state and the rules that change it.
#[derive(Debug)]
pub struct Hub {
    settings: Settings,
    users: HashMap<ConnId, User>,
    /// Connections on the server but not yet on the chat (IRC clients
    /// before they register), with their addresses.
    pending: HashMap<ConnId, SocketAddr>,
    /// Nick key (lower case) to its owner, for uniqueness and `/msg`.
    /// In order, so that WHO reads the nicks with a given prefix without
    /// looking at the others.
    nicks: BTreeMap<Arc<str>, ConnId>,
    /// Nick skeleton (see [`Nick::skeleton`]) to its owner: no one may take
    /// a nick that looks like someone else's. Kept as a 64-bit hash of the
    /// skeleton, a few bytes a user instead of a copy of it; two
    /// skeletons with the same hash (a chance of one in 2^64 for any two)
    /// would only refuse a nick that did not look alike.
    skeletons: HashMap<u64, ConnId>,
    /// Hashes skeletons, with keys chosen at start.
    skeleton_hasher: std::collections::hash_map::RandomState,
    /// Room key (lower case) to room: every room with members, the lobby,
    /// and empty rooms that keep history.
    rooms: BTreeMap<String, Room>,
    /// Keys of the rooms `/rooms` lists, in order: those with members, and
    /// the lobby.
    listed: BTreeSet<String>,
    /// The history budget all rooms share.
    budget: Budget,
    /// Counts uses of rooms (a line said, a join), to order them by when
    /// they were last used.
    uses: u64,
    /// Next number to try for a guest nick.
    next_guest: u64,
    /// What the hub has to say, by I/O thread, waiting to be handed over.
    outbox: Vec<(usize, Outbound)>,
    /// When the line being handled was read, passed on with what it causes
    /// (see [`Outbound::Deliver`]).
    line_received: Option<std::time::Instant>,
    /// I/O threads that have sent their last lines ([`Inbound::Drained`]).
    drained: usize,
    /// The acceptor has closed its listeners ([`Inbound::AcceptorStopped`]).
    acceptor_stopped: bool,
    /// Set once every I/O thread has drained: whoever connects now is
    /// sent away.
    shutting_down: bool,
    /// Connections that have left the chat since the last
    /// [`Hub::take_released`], for the acceptor: their places are free.
    released: Vec<Released>,
    /// See [`crate::config::TestFault::Hub`].
    panic_on: Option<String>,
    /// The cluster, if this instance is in one (see [`cluster`]).
    cluster: Option<ClusterLink>,
    /// Where the state goes on a restart that keeps the clients, and how
    /// to tell that a stop is one (see [`Hub::hand_over_to`]).
    handover: Option<(crate::net::ShutdownHandle, Sender<HubState>)>,
    /// Set once the state has been handed over.
    handed_over: bool,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(Settings::default())
    }
}

impl Hub {
    /// An empty hub with the lobby in it.
    pub fn new(settings: Settings) -> Hub {
        let lobby = RoomName::lobby();
        let mut rooms = BTreeMap::new();
        rooms.insert(lobby.key(), Room::new(lobby.clone()));
        let budget = Budget::new(settings.history_lines, settings.history_bytes);
        Hub {
            settings,
            users: HashMap::new(),
            pending: HashMap::new(),
            nicks: BTreeMap::new(),
            skeletons: HashMap::new(),
            skeleton_hasher: std::collections::hash_map::RandomState::new(),
            rooms,
            listed: BTreeSet::from([lobby.key()]),
            budget,
            uses: 0,
            next_guest: 1,
            outbox: Vec::new(),
            line_received: None,
            drained: 0,
            acceptor_stopped: false,
            shutting_down: false,
            released: Vec::new(),
            panic_on: None,
            cluster: None,
            handover: None,
            handed_over: false,
        }
    }

    /// Makes the hub panic when it handles the chat line `text` (see
    /// [`crate::config::TestFault`]; tests only).
    #[doc(hidden)]
    pub fn panic_on(&mut self, text: String) {
        self.panic_on = Some(text);
    }

    /// On a stop that is a handover (`shutdown` says so), the hub sends
    /// its state to `to` instead of saying goodbye to everyone, then tells
    /// every I/O thread [`Outbound::HandOver`] and handles nothing more.
    pub fn hand_over_to(&mut self, shutdown: crate::net::ShutdownHandle, to: Sender<HubState>) {
        self.handover = Some((shutdown, to));
    }

    /// How many rooms `/rooms` lists: those with members, and the lobby.
    pub fn room_count(&self) -> usize {
        self.listed.len()
    }

    /// What all rooms' histories cost against `--history-bytes`, and how
    /// many empty rooms keep one.
    pub fn history_usage(&self) -> (usize, usize) {
        (self.budget.used(), self.budget.empty_rooms())
    }

    /// Takes what the hub has said since the last call, each message with
    /// the I/O thread it is for.
    pub fn take_outbox(&mut self) -> Vec<(usize, Outbound)> {
        std::mem::take(&mut self.outbox)
    }

    /// Takes the connections that have left the chat since the last call.
    pub fn take_released(&mut self) -> Vec<Released> {
        std::mem::take(&mut self.released)
    }

    /// Handles one message from an I/O thread or the acceptor.
    pub fn handle(&mut self, message: Inbound) {
        if self.handed_over {
            // Handed over: the state is the next process's now.
            return;
        }
        match message {
            Inbound::Connected { id, addr, .. } if self.shutting_down => {
                // Accepted just before the shutdown, and announced by its
                // I/O thread just after.
                self.released.push(Released {
                    shard: id.shard,
                    ip: addr.ip(),
                });
                self.send(id, ServerEvent::ShuttingDown);
                self.close(id);
            }
            Inbound::Connected {
                id,
                addr,
                arrival: Arrival::Guest,
            } => self.connect(id, addr),
            Inbound::Connected {
                id,
                addr,
                arrival: Arrival::Registering,
            } => {
                log::debug!("connect {addr} (registering)");
                self.pending.insert(id, addr);
            }
            Inbound::Line { id, line, received } => {
                // Behind a nick claim Redis has yet to answer: handled
                // after it, in the order sent.
                let Some((line, received)) = self.cluster_hold(id, line, received) else {
                    return;
                };
                self.line_received = Some(received);
                self.line(id, line);
                self.line_received = None;
            }
            Inbound::Closed { id, reason } => {
                self.remove(id, reason);
                self.close(id);
            }
            Inbound::Ending { id, why } => {
                if self.users.contains_key(&id) || self.pending.contains_key(&id) {
                    let (event, reason) = match why {
                        Ending::Idle { quiet } => (
                            ServerEvent::IdleTimeout {
                                secs: quiet.as_secs(),
                            },
                            LeaveReason::Idle,
                        ),
                        Ending::MakingRoom => (ServerEvent::MakingRoom, LeaveReason::MadeRoom),
                        Ending::PingTimeout { quiet } => (
                            ServerEvent::PingTimeout {
                                secs: quiet.as_secs(),
                            },
                            LeaveReason::PingTimeout,
                        ),
                        Ending::NotRegistered { waited } => (
                            ServerEvent::RegistrationTimeout {
                                secs: waited.as_secs(),
                            },
                            LeaveReason::Disconnected,
                        ),
                    };
                    self.send(id, event);
                    self.remove(id, reason);
                }
                self.close(id);
            }
            Inbound::Admin { command, answer } => self.admin(command, &answer),
            Inbound::Drained => {
                self.drained += 1;
                self.shutdown_when_ready();
            }
            Inbound::AcceptorStopped => {
                self.acceptor_stopped = true;
                self.shutdown_when_ready();
            }
            Inbound::Cluster(event) => self.cluster_event(*event),
        }
    }

    fn connect(&mut self, id: ConnId, addr: SocketAddr) {
        let nick = self.guest_nick();
        let lobby = RoomName::lobby();
        log::info!("connect {addr} as {nick}");
        self.add_user(
            id,
            addr,
            nick.clone(),
            LINE_USER.to_string(),
            LINE_REALNAME.to_string(),
        );
        self.cluster_keep(id, &nick, true);
        let welcome = ServerEvent::Welcome {
            nick: nick.clone(),
            room: lobby.clone(),
        };
        self.enter(id, nick, lobby, false, welcome);
        self.cluster_tell_newcomer(id);
    }

    /// Puts a user on the chat with `nick`, which must be free.
    fn add_user(&mut self, id: ConnId, addr: SocketAddr, nick: Nick, user: String, realname: String) {
        let nick_key: Arc<str> = nick.key().into();
        self.nicks.insert(Arc::clone(&nick_key), id);
        let skeleton = self.skeleton(&nick);
        self.skeletons.insert(skeleton, id);
        let now = (self.settings.clock)();
        self.users.insert(
            id,
            User {
                nick,
                nick_key,
                // Most users are in one room: one slot, grown if needed.
                rooms: Vec::with_capacity(1),
                addr,
                user,
                realname,
                away: None,
                invisible: false,
                signon: now,
                last_said: now,
            },
        );
    }

    /// Why `id` may not take `nick`: someone else has it, or one like it.
    fn nick_refused(&self, id: ConnId, nick: &Nick) -> Option<ErrorKind> {
        if self
            .nicks
            .get(nick.key().as_str())
            .is_some_and(|&owner| owner != id)
        {
            return Some(ErrorKind::NickInUse(nick.clone()));
        }
        let owner = self.skeletons.get(&self.skeleton(nick)).filter(|&&o| o != id)?;
        let existing = self.users.get(owner)?.nick.clone();
        Some(ErrorKind::NickConfusable {
            asked: nick.clone(),
            existing,
        })
    }

    /// An IRC client's registration: on the chat with the nick it asked
    /// for, in no room, or the error that keeps it waiting for another.
    fn register(&mut self, id: ConnId, nick: Nick, user: String, realname: String) {
        if !self.pending.contains_key(&id) {
            return;
        }
        if let Some(error) = self.nick_refused(id, &nick) {
            return self.send(id, ServerEvent::Error(error));
        }
        let purpose = cluster_purpose_register(&user, &realname);
        if self.cluster_claim(id, &nick, purpose) {
            return;
        }
        self.apply_register(id, nick, user, realname);
    }

    /// Puts a registering connection on the chat with `nick`, which is
    /// free (and, in a cluster, claimed).
    fn apply_register(&mut self, id: ConnId, nick: Nick, user: String, realname: String) {
        let Some(addr) = self.pending.remove(&id) else { return };
        log::info!("connect {addr} as {nick} (registered)");
        self.add_user(id, addr, nick.clone(), user, realname);
        self.send(id, ServerEvent::Registered { nick });
        self.cluster_tell_newcomer(id);
    }

    /// A fresh `guestN` nick that nobody has, nor one like it (a user may
    /// have taken `guest1O`), not even by `/nick`.
    fn guest_nick(&mut self) -> Nick {
        loop {
            let n = match self.cluster_guest() {
                Some(n) => n,
                None => {
                    let n = self.next_guest;
                    self.next_guest = self.next_guest.wrapping_add(1);
                    n
                }
            };
            if let Ok(nick) = Nick::new(&format!("guest{n}")) {
                if !self.skeletons.contains_key(&self.skeleton(&nick)) {
                    return nick;
                }
            }
        }
    }

    /// The hash of `nick`'s skeleton, as [`Hub::skeletons`] keeps it.
    fn skeleton(&self, nick: &Nick) -> u64 {
        use std::hash::BuildHasher;
        self.skeleton_hasher.hash_one(nick.skeleton())
    }

    /// The key of the room `target` names for the user `id`, if they are in
    /// it; otherwise the error to answer with.
    fn member_room(&self, id: ConnId, target: &Target) -> Result<String, ErrorKind> {
        let user = self.users.get(&id).ok_or(ErrorKind::NoCurrentRoom)?;
        match target {
            Target::Current => user
                .rooms
                .last()
                .map(|key| key.to_string())
                .ok_or(ErrorKind::NoCurrentRoom),
            Target::Room(name) => {
                let key = name.key();
                if user.rooms.iter().any(|r| **r == *key) {
                    Ok(key)
                } else {
                    match self.rooms.get(&key) {
                        Some(room) if !room.is_empty() => Err(ErrorKind::NotInRoom(room.name.clone())),
                        _ => Err(ErrorKind::NoSuchRoom(name.clone())),
                    }
                }
            }
        }
    }

    fn line(&mut self, id: ConnId, line: Result<Request, ErrorKind>) {
        if self.pending.contains_key(&id) {
            return self.before_registering(id, line);
        }
        let Some(user) = self.users.get(&id) else {
            // The user quit or disconnected while this line was in flight.
            return;
        };
        let (nick, addr) = (user.nick.clone(), user.addr);
        let request = match line {
            Ok(request) => request,
            Err(error) => {
                log::debug!("{addr} {nick}: error: {}", clip(&error.to_string(), LOGGED_TEXT));
                return self.send(id, ServerEvent::Error(error));
            }
        };
        let outcome = match request {
            Request::Say {
                room,
                text,
                style,
                echo,
            } => {
                let said = self.say(id, nick, &room, text, style, echo);
                // A notice is never answered with an error.
                if style == Style::Notice {
                    return;
                }
                said
            }
            Request::Private { to, text, style } => {
                log::debug!("{addr} {nick}: /msg {to} {}", clip(&text, LOGGED_TEXT));
                self.private(id, nick, to, text, style);
                Ok(())
            }
            Request::Nick(new) => {
                self.rename(id, nick, new);
                Ok(())
            }
            // A NICK sent while the registration was on its way: the front
            // end asked again with the newer nick, now a change of nick.
            Request::Register { nick: new, .. } => {
                if new.as_str() != nick.as_str() {
                    self.rename(id, nick, new);
                }
                Ok(())
            }
            Request::Join {
                room,
                leave_others,
                names,
                key,
            } => self.join(
                id,
                nick,
                room,
                JoinHow {
                    leave_others,
                    names,
                    key,
                },
            ),
            Request::SetRole {
                room,
                nick: whom,
                role,
                on,
            } => self.set_role(id, nick, &room, whom, role, on),
            Request::Kick {
                room,
                nick: whom,
                reason,
            } => self.kick(id, nick, &room, whom, reason),
            Request::Ban { room, mask, duration } => self.ban(id, nick, &room, mask, duration),
            Request::Unban { room, mask } => self.unban(id, nick, &room, mask),
            Request::Bans(room) => self.member_room(id, &room).map(|key| {
                if let Some(room) = self.rooms.get_mut(&key) {
                    let now = (self.settings.clock)();
                    room.bans.retain(|ban| ban.until.is_none_or(|until| until > now));
                    let event = ServerEvent::BanList {
                        room: room.name.clone(),
                        bans: room.bans.clone(),
                    };
                    self.reply(id, event);
                }
            }),
            Request::RoomSettings { room, change: None } => self.member_room(id, &room).map(|key| {
                if let Some(room) = self.rooms.get(&key) {
                    let event = ServerEvent::Settings {
                        room: room.name.clone(),
                        settings: room.settings.clone(),
                    };
                    self.reply(id, event);
                }
            }),
            Request::RoomSettings {
                room,
                change: Some(setting),
            } => self.change_setting(id, nick, &room, setting),
            Request::Part { room, reason } => self.member_room(id, &room).map(|key| {
                let name = self.rooms.get(&key).map(|r| r.name.clone());
                self.leave_room(id, &key, LeaveReason::Parted(reason.clone()));
                if let Some(room) = name {
                    self.send(id, ServerEvent::LeftRoom { room, reason });
                }
            }),
            Request::Names { rooms, asked } => {
                let last = rooms.len().saturating_sub(1);
                for (i, room) in rooms.iter().enumerate() {
                    self.names(id, room, (i == last).then(|| asked.clone()));
                }
                Ok(())
            }
            Request::Whois(asked) => {
                self.whois(id, asked);
                Ok(())
            }
            Request::WhoMatching(mask) => {
                self.who_matching(id, mask);
                Ok(())
            }
            Request::List => {
                self.list(id);
                Ok(())
            }
            Request::Away(message) => {
                let away = message.is_some();
                if let Some(user) = self.users.get_mut(&id) {
                    user.away = message;
                }
                self.reply(id, ServerEvent::AwaySet { away });
                Ok(())
            }
            Request::Invisible(on) => {
                if let Some(user) = self.users.get_mut(&id) {
                    user.invisible = on;
                }
                self.reply(id, ServerEvent::Invisible { on });
                Ok(())
            }
            Request::Irc(reply) => {
                self.reply(id, ServerEvent::Irc(reply));
                Ok(())
            }
            Request::Topic { room, set } => self.topic(id, nick, &room, set),
            Request::Who { room, page } => self.who(id, &room, page),
            Request::Rooms { page } => {
                self.list_rooms(id, page);
                Ok(())
            }
            Request::History { room, count } => self.history(id, &room, count),
            Request::Help(topic) => {
                self.reply(id, ServerEvent::Help(topic));
                Ok(())
            }
            Request::Quit(reason) => {
                self.remove(id, LeaveReason::Quit(reason));
                self.send(id, ServerEvent::Bye);
                self.close(id);
                Ok(())
            }
        };
        if let Err(error) = outcome {
            self.send(id, ServerEvent::Error(error));
        }
    }

    /// A line from a connection that has not registered: only registering,
    /// quitting and the front end's own replies are allowed.
    fn before_registering(&mut self, id: ConnId, line: Result<Request, ErrorKind>) {
        match line {
            Ok(Request::Register { nick, user, realname }) => self.register(id, nick, user, realname),
            Ok(Request::Irc(reply)) => self.reply(id, ServerEvent::Irc(reply)),
            Ok(Request::Quit(reason)) => {
                self.remove(id, LeaveReason::Quit(reason));
                self.send(id, ServerEvent::Bye);
                self.close(id);
            }
            Ok(_) => self.send(id, ServerEvent::Error(ErrorKind::NotRegistered)),
            Err(error) => self.send(id, ServerEvent::Error(error)),
        }
    }

    /// A message or action in a room the user is in: to everyone else in
    /// it, and into its history.
    fn say(
        &mut self,
        id: ConnId,
        nick: Nick,
        target: &Target,
        text: String,
        style: Style,
        echo: bool,
    ) -> Result<(), ErrorKind> {
        assert!(
            self.panic_on.as_ref() != Some(&text),
            "test fault: the hub panics as asked"
        );
        let key = match self.member_room(id, target) {
            Ok(key) => key,
            // Saying something to a room one is not in: IRC's "cannot send
            // to channel", told apart from a part or a topic.
            Err(ErrorKind::NotInRoom(room)) => return Err(ErrorKind::CannotSendTo(room)),
            Err(other) => return Err(other),
        };
        self.may_speak(id, &key)?;
        self.uses += 1;
        let at = (self.settings.clock)();
        if let Some(user) = self.users.get_mut(&id) {
            let star = if style == Style::Action { "/me " } else { "" };
            log::debug!("{} {nick} {key}: {star}{}", user.addr, clip(&text, LOGGED_TEXT));
            user.last_said = at;
        }
        // In a cluster the history keeps what comes back from Redis, in
        // the room's one order.
        let through_cluster = self.cluster_linked();
        let Some(room) = self.rooms.get_mut(&key) else { return Ok(()) };
        room.used_at = self.uses;
        let name = room.name.clone();
        if style != Style::Notice && !through_cluster {
            // Notices are for the moment (bots' status lines): the history
            // keeps what people said.
            let entry = HistoryEntry {
                at,
                from: nick.clone(),
                text: text.clone(),
                action: style == Style::Action,
            };
            self.budget.record(&mut room.history, entry);
            self.keep_history_within_budget(&key);
        }
        let event = match style {
            Style::Message => ServerEvent::Said {
                room: name,
                from: nick,
                text,
            },
            Style::Action => ServerEvent::Action {
                room: name,
                from: nick,
                text,
            },
            Style::Notice => ServerEvent::Noticed {
                room: name,
                from: nick,
                text,
            },
        };
        if echo {
            self.send(id, event.clone());
        }
        self.publish(&key, Some(id), event);
        Ok(())
    }

    /// While the histories cost more than the budget: the empty rooms that
    /// keep one go, least recently used first; then the room `key` (where a
    /// line was just said) loses its oldest lines.
    fn keep_history_within_budget(&mut self, key: &str) {
        while self.budget.is_over() {
            if let Some(empty) = self.budget.pop_empty() {
                if let Some(mut room) = self.rooms.remove(&empty) {
                    self.budget.evict(&mut room.history);
                }
            } else {
                let Some(room) = self.rooms.get_mut(key) else { return };
                if !self.budget.trim(&mut room.history) {
                    return;
                }
            }
        }
    }

    fn private(&mut self, from_id: ConnId, from: Nick, to: Nick, text: String, style: Style) {
        let Some(&to_id) = self.nicks.get(to.key().as_str()) else {
            if self.cluster_private(from_id, &from, &to, &text, style) {
                return;
            }
            if style != Style::Notice {
                self.send(from_id, ServerEvent::Error(ErrorKind::NoSuchNick(to)));
            }
            return;
        };
        let now = (self.settings.clock)();
        if let Some(sender) = self.users.get_mut(&from_id) {
            sender.last_said = now;
        }
        // Show the recipient's nick as they spell it.
        let (to, away) = self
            .users
            .get(&to_id)
            .map_or((to, None), |u| (u.nick.clone(), u.away.clone()));
        self.send(
            to_id,
            ServerEvent::PrivateFrom {
                from,
                text: text.clone(),
                style,
            },
        );
        self.send(
            from_id,
            ServerEvent::PrivateTo {
                to: to.clone(),
                text,
                style,
            },
        );
        if let Some(message) = away.filter(|_| style != Style::Notice) {
            self.send(from_id, ServerEvent::IsAway { nick: to, message });
        }
    }

    fn rename(&mut self, id: ConnId, old: Nick, new: Nick) {
        if let Some(error) = self.nick_refused(id, &new) {
            return self.send(id, ServerEvent::Error(error));
        }
        if new.key() != old.key() && self.cluster_claim(id, &new, cluster::rename_from(&old)) {
            return;
        }
        self.apply_rename(id, old, new);
    }

    /// Gives `id` the nick `new`, which is free (and, in a cluster,
    /// claimed), and tells the rooms.
    fn apply_rename(&mut self, id: ConnId, old: Nick, new: Nick) {
        let new_key: Arc<str> = new.key().into();
        self.nicks.remove(old.key().as_str());
        self.nicks.insert(Arc::clone(&new_key), id);
        let (old_skeleton, new_skeleton) = (self.skeleton(&old), self.skeleton(&new));
        self.skeletons.remove(&old_skeleton);
        self.skeletons.insert(new_skeleton, id);
        let Some(user) = self.users.get_mut(&id) else {
            return;
        };
        user.nick = new.clone();
        let old_key = std::mem::replace(&mut user.nick_key, Arc::clone(&new_key));
        log::info!("{} {old} is now known as {new}", user.addr);
        let rooms = user.rooms.clone();
        for key in &rooms {
            if let Some(room) = self.rooms.get_mut(&**key) {
                room.rename(id, &old_key, Arc::clone(&new_key));
                let name = room.name.clone();
                self.cluster_renamed(&name, &old, &new);
            }
        }
        if *old_key != *new_key {
            self.cluster_release(&old);
        }
        // In a cluster, told once the change is in the rooms' order.
        self.cluster_confirm_after(id, ServerEvent::NickSet { nick: new.clone() });
        let event = ServerEvent::NickChanged { old, new };
        match rooms.as_slice() {
            [only] => self.announce_presence(only, id, event),
            // In a cluster, told in each room, in that room's order.
            several if self.cluster_linked() => {
                for key in several {
                    self.announce_presence(key, id, event.clone());
                }
            }
            several => {
                // Once to everyone who shares a room with the user, however
                // many they share.
                let mut told: HashSet<ConnId> = HashSet::new();
                for key in several {
                    if let Some(room) = self.rooms.get(&**key).filter(|r| self.announces(r.len())) {
                        told.extend(room.members().filter(|&m| m != id));
                    }
                }
                self.deliver_many(told.into_iter().collect(), event);
            }
        }
        self.cluster_confirm_now();
    }

    /// The members `ids` of `room`, with their roles there.
    fn members_of(&self, room: &Room, ids: impl Iterator<Item = ConnId>) -> Vec<Member> {
        ids.filter_map(|m| {
            self.users.get(&m).map(|u| Member {
                nick: u.nick.clone(),
                op: room.is_op(m),
                voice: room.is_voiced(m),
            })
        })
        .collect()
    }

    /// Every member of a room, with their roles; nothing for a room that
    /// does not exist. `end` says what the end of the listing names, if
    /// this is the last.
    fn names(&mut self, id: ConnId, room: &RoomName, end: Option<String>) {
        let asked = crate::cluster::Asked::Names {
            room: room.clone(),
            end: end.clone(),
        };
        if !self.cluster_who(id, &room.key(), asked) {
            self.names_here(id, room, end);
        }
    }

    /// NAMES from this instance's members alone.
    fn names_here(&mut self, id: ConnId, room: &RoomName, end: Option<String>) {
        let key = room.key();
        let (room, members) = match self.rooms.get(&key) {
            Some(r) => (r.name.clone(), self.members_of(r, r.members())),
            None => (room.clone(), Vec::new()),
        };
        self.reply(id, ServerEvent::Names { room, members, end });
    }

    fn whois(&mut self, id: ConnId, asked: Nick) {
        let info = self
            .nicks
            .get(asked.key().as_str())
            .and_then(|owner| self.users.get(owner))
            .map(|user| UserInfo {
                nick: user.nick.clone(),
                user: user.user.clone(),
                realname: user.realname.clone(),
                rooms: user
                    .rooms
                    .iter()
                    .filter_map(|key| self.rooms.get(&**key))
                    .map(|r| r.name.clone())
                    .collect(),
                away: user.away.clone(),
                idle_secs: (self.settings.clock)().saturating_sub(user.last_said) / 1000,
                signon: user.signon / 1000,
                elsewhere: false,
            });
        if info.is_none() && self.cluster_whois(id, &asked) {
            return;
        }
        self.reply(id, ServerEvent::Whois { asked, info });
    }

    /// WHO: a room's members, or the users whose nick matches a mask (at
    /// most [`MAX_WHO`]). A room's WHO is answered from the cluster's
    /// presence when there is one; a mask's reads this instance's nicks.
    fn who_matching(&mut self, id: ConnId, mask: String) {
        if mask.starts_with('#') {
            if let Ok(room) = RoomName::new(&mask) {
                let asked = crate::cluster::Asked::WhoList { mask: mask.clone() };
                if self.cluster_who(id, &room.key(), asked) {
                    return;
                }
            }
        }
        self.who_here(id, mask);
    }

    /// WHO from this instance's users alone.
    fn who_here(&mut self, id: ConnId, mask: String) {
        let entry = |user: &User, room: Option<&Room>, member: ConnId| WhoEntry {
            nick: user.nick.clone(),
            user: user.user.clone(),
            realname: user.realname.clone(),
            room: room.map(|r| r.name.clone()),
            op: room.is_some_and(|r| r.is_op(member)),
            voice: room.is_some_and(|r| r.is_voiced(member)),
            away: user.away.is_some(),
            elsewhere: false,
        };
        let mut entries = Vec::new();
        let mut truncated = false;
        if mask.starts_with('#') {
            if let Some(room) = self.rooms.get(&mask.to_ascii_lowercase()) {
                for member in room.members() {
                    if entries.len() == MAX_WHO {
                        truncated = true;
                        break;
                    }
                    if let Some(user) = self.users.get(&member) {
                        entries.push(entry(user, Some(room), member));
                    }
                }
            }
        } else {
            let pattern = mask.to_ascii_lowercase();
            // The nicks that start with the mask's literal start, in order.
            let literal = pattern.split(['*', '?']).next().unwrap_or_default();
            let candidates = self
                .nicks
                .range::<str, _>((std::ops::Bound::Included(literal), std::ops::Bound::Unbounded))
                .take_while(|(key, _)| key.starts_with(literal));
            for (scanned, (key, &member)) in candidates.enumerate() {
                if scanned == MAX_WHO_SCAN {
                    truncated = true;
                    break;
                }
                if !chat_protocol::moderation::glob(&pattern, key) {
                    continue;
                }
                if member != id && self.users.get(&member).is_some_and(|u| u.invisible) {
                    continue;
                }
                if entries.len() == MAX_WHO {
                    truncated = true;
                    break;
                }
                if let Some(user) = self.users.get(&member) {
                    let room = user.rooms.first().and_then(|k| self.rooms.get(&**k));
                    entries.push(entry(user, room, member));
                }
            }
        }
        self.reply(
            id,
            ServerEvent::WhoList {
                mask,
                entries,
                truncated,
            },
        );
    }

    /// LIST: every room with members.
    fn list(&mut self, id: ConnId) {
        // No page: the cluster's list in full, as LIST wants.
        if !self.cluster_rooms(id, None) {
            self.local_list(id);
        }
    }

    /// LIST from this instance's rooms alone.
    fn local_list(&mut self, id: ConnId) {
        let rooms = self
            .listed
            .iter()
            .filter_map(|key| self.rooms.get(key))
            .filter(|r| !r.is_empty() && (!r.settings.hidden || r.has_member(id)))
            .map(|r| RoomListing {
                name: r.name.clone(),
                members: r.len(),
                topic: r.topic.as_ref().map(|t| t.text.clone()),
            })
            .collect();
        self.reply(id, ServerEvent::List { rooms });
    }

    fn join(&mut self, id: ConnId, nick: Nick, target: RoomName, how: JoinHow) -> Result<(), ErrorKind> {
        let JoinHow {
            leave_others,
            names,
            key: given_key,
        } = how;
        let key = target.key();
        // An existing room keeps the spelling it was created with.
        let name = self.rooms.get(&key).map_or(target, |r| r.name.clone());
        let now = (self.settings.clock)();
        let Some(user) = self.users.get(&id) else { return Ok(()) };
        if user.rooms.iter().any(|r| **r == *key) {
            return if leave_others {
                Err(ErrorKind::AlreadyInRoom(name))
            } else {
                Ok(())
            };
        }
        // In a cluster, a room no one here is in may have bans and a key
        // set elsewhere: they are read first, and the join asked again.
        let again = Request::Join {
            room: name.clone(),
            leave_others,
            names,
            key: given_key.clone(),
        };
        if self.cluster_read_before_join(id, &key, again) {
            return Ok(());
        }
        let Some(user) = self.users.get(&id) else { return Ok(()) };
        if let Some(room) = self.rooms.get_mut(&key) {
            if let Some(mask) = room
                .ban_on(user.nick.as_str(), &user.user, user.addr.ip(), now)
                .cloned()
            {
                log::info!(
                    "{} {}: refused {} (banned as {mask})",
                    user.addr,
                    user.nick,
                    room.name
                );
                return Err(ErrorKind::BannedFrom(name));
            }
            if room.settings.key.is_some() && room.settings.key != given_key {
                return Err(ErrorKind::NeedsKey(name));
            }
        }
        if leave_others {
            for other in user.rooms.clone() {
                self.leave_room(id, &other, LeaveReason::Moved(name.clone()));
            }
        } else if user.rooms.len() >= MAX_ROOMS_PER_USER {
            return Err(ErrorKind::TooManyRooms(MAX_ROOMS_PER_USER));
        }
        let joined = ServerEvent::JoinedRoom { room: name.clone() };
        self.enter(id, nick, name, names, joined);
        Ok(())
    }

    /// Puts `id` into the room `target` names, creating it if needed, tells
    /// the newcomer `first` (that they are in), tells the room, and shows
    /// the newcomer its topic, its members if `names`, and its last lines.
    fn enter(&mut self, id: ConnId, nick: Nick, target: RoomName, names: bool, first: ServerEvent) {
        let key = target.key();
        let room = self.rooms.entry(key.clone()).or_insert_with(|| Room::new(target));
        let Some(user) = self.users.get_mut(&id) else { return };
        user.rooms.push(Arc::clone(&room.key));
        let nick_key = Arc::clone(&user.nick_key);
        if room.is_empty() {
            self.budget.room_occupied(&key, room.used_at);
            self.listed.insert(key.clone());
        }
        self.uses += 1;
        room.used_at = self.uses;
        room.add(id, nick_key);
        let name = room.name.clone();
        let topic = room.topic.clone();
        let replay = room.history.last(self.settings.replay_lines);
        let joined = ServerEvent::Joined {
            nick: nick.clone(),
            room: name.clone(),
        };
        // In a cluster the newcomer is told all this, and hears the room,
        // once their join comes back from Redis: from their place in the
        // room's order on. Presence is sent after the join's publish, so
        // that the script numbering the join, which counts the room's
        // members to find its first, runs before it (and adds the joiner
        // itself).
        let through_redis = self.cluster_join(&key, id, &joined, first.clone(), names);
        self.cluster_presence(&name, id, &nick, true);
        if through_redis {
            return;
        }
        self.send(id, first);
        self.announce_presence(&key, id, joined);
        if topic.is_some() {
            self.send(
                id,
                ServerEvent::Topic {
                    room: name.clone(),
                    topic,
                },
            );
        }
        if names {
            self.names(id, &name, Some(name.to_string()));
        }
        if !replay.is_empty() {
            self.reply(
                id,
                ServerEvent::History {
                    room: name,
                    entries: replay,
                },
            );
        }
    }

    /// Takes `id` out of the room `key`, tells the room why, and, if it is
    /// empty now, keeps it for its history or drops it (never the lobby).
    fn leave_room(&mut self, id: ConnId, key: &str, reason: LeaveReason) {
        let Some(user) = self.users.get_mut(&id) else { return };
        user.rooms.retain(|r| **r != *key);
        let (nick, nick_key) = (user.nick.clone(), Arc::clone(&user.nick_key));
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        room.remove(id, &nick_key);
        let name = room.name.clone();
        self.cluster_presence(&name, id, &nick, false);
        self.forget_if_empty(key);
        self.announce_presence(
            key,
            id,
            ServerEvent::Left {
                nick,
                room: name,
                reason,
            },
        );
    }

    /// Takes `id` out of the room `key` without telling anyone (a kick was
    /// told already).
    fn take_out(&mut self, id: ConnId, key: &str) {
        let Some(user) = self.users.get_mut(&id) else { return };
        user.rooms.retain(|r| **r != *key);
        let (nick, nick_key) = (user.nick.clone(), Arc::clone(&user.nick_key));
        if let Some(room) = self.rooms.get_mut(key) {
            room.remove(id, &nick_key);
            let name = room.name.clone();
            self.cluster_presence(&name, id, &nick, false);
        }
        self.forget_if_empty(key);
    }

    /// Once a room has emptied: keeps it for its history (and with it its
    /// settings and bans), or drops it (never the lobby).
    fn forget_if_empty(&mut self, key: &str) {
        let Some(room) = self.rooms.get(key) else { return };
        if !room.is_empty() || room.name.as_str() == RoomName::LOBBY {
            return;
        }
        self.listed.remove(key);
        if room.history.is_empty() {
            self.rooms.remove(key);
        } else {
            self.budget.room_emptied(key, room.used_at, &room.history);
        }
    }

    /// Forgets the user entirely: rooms, nick, and all.
    fn remove(&mut self, id: ConnId, reason: LeaveReason) {
        if let Some(addr) = self.pending.remove(&id) {
            log::debug!("disconnect {addr} before registering ({})", reason.describe());
            self.released.push(Released {
                shard: id.shard,
                ip: addr.ip(),
            });
            return;
        }
        let Some(user) = self.users.get(&id) else { return };
        log::info!(
            "disconnect {} {} ({})",
            user.addr,
            user.nick,
            clip(&reason.describe(), LOGGED_TEXT)
        );
        self.released.push(Released {
            shard: id.shard,
            ip: user.addr.ip(),
        });
        let rooms = user.rooms.clone();
        if rooms.len() > 1 && self.cluster_leaves(id, &rooms, &reason) {
            // Told in each room, in that room's order.
        } else if rooms.len() > 1 {
            // Each one who shares rooms with the user hears of it once,
            // naming one room they share: an IRC client shows one QUIT.
            self.leave_rooms_once(id, &rooms, &reason);
        } else {
            for key in rooms {
                self.leave_room(id, &key, reason.clone());
            }
        }
        if let Some(user) = self.users.remove(&id) {
            self.nicks.remove(&*user.nick_key);
            let skeleton = self.skeleton(&user.nick);
            self.skeletons.remove(&skeleton);
            self.cluster_release(&user.nick);
        }
    }

    /// Takes `id` out of every room in `keys` and tells each member of them
    /// once, naming the first of them they share.
    fn leave_rooms_once(&mut self, id: ConnId, keys: &[Arc<str>], reason: &LeaveReason) {
        let Some(user) = self.users.get_mut(&id) else { return };
        user.rooms.clear();
        let (nick, nick_key) = (user.nick.clone(), Arc::clone(&user.nick_key));
        let mut told: HashSet<ConnId> = HashSet::new();
        for key in keys {
            let announces = self.rooms.get(&**key).is_some_and(|r| self.announces(r.len()));
            let Some(room) = self.rooms.get_mut(&**key) else { continue };
            room.remove(id, &nick_key);
            let name = room.name.clone();
            let audience: Vec<ConnId> = if announces {
                room.members().filter(|m| told.insert(*m)).collect()
            } else {
                Vec::new()
            };
            self.cluster_presence(&name, id, &nick, false);
            self.forget_if_empty(key);
            if !audience.is_empty() {
                let event = ServerEvent::Left {
                    nick: nick.clone(),
                    room: name,
                    reason: reason.clone(),
                };
                self.deliver_many(audience, event);
            }
        }
    }

    /// Shows a room's topic, or sets it and tells the room.
    fn topic(
        &mut self,
        id: ConnId,
        nick: Nick,
        target: &Target,
        set: Option<String>,
    ) -> Result<(), ErrorKind> {
        let key = self.member_room(id, target)?;
        if set.is_some() {
            self.may_set_topic(id, &key)?;
        }
        let at = (self.settings.clock)();
        let Some(room) = self.rooms.get_mut(&key) else { return Ok(()) };
        let name = room.name.clone();
        match set {
            None => {
                let topic = room.topic.clone();
                self.reply(id, ServerEvent::Topic { room: name, topic });
            }
            Some(text) => {
                let topic = Topic { text, by: nick, at };
                room.topic = Some(topic.clone());
                self.publish(&key, None, ServerEvent::TopicChanged { room: name, topic });
            }
        }
        Ok(())
    }

    /// One page of a room's members, read from its sorted index.
    fn who(&mut self, id: ConnId, target: &Target, page: usize) -> Result<(), ErrorKind> {
        let key = self.member_room(id, target)?;
        if self.cluster_who(id, &key, crate::cluster::Asked::Who { page }) {
            return Ok(());
        }
        self.local_who(id, &key, page)
    }

    /// One page of a room's members on this instance.
    fn local_who(&mut self, id: ConnId, key: &str, page: usize) -> Result<(), ErrorKind> {
        let Some(room) = self.rooms.get(key) else { return Ok(()) };
        let total = room.len();
        let (page, range) = Page::of_listing(page, total);
        let nicks = self.members_of(room, room.page(range));
        let room = room.name.clone();
        self.reply(
            id,
            ServerEvent::Who {
                room,
                total,
                page,
                nicks,
            },
        );
        Ok(())
    }

    /// One page of the rooms with members (and the lobby), kept in order.
    fn list_rooms(&mut self, id: ConnId, page: usize) {
        if !self.cluster_rooms(id, Some(page)) {
            self.local_rooms(id, page);
        }
    }

    /// One page of the rooms with members on this instance (and the
    /// lobby).
    fn local_rooms(&mut self, id: ConnId, page: usize) {
        let visible = |r: &&Room| !r.settings.hidden || r.has_member(id);
        let total = self
            .listed
            .iter()
            .filter_map(|key| self.rooms.get(key))
            .filter(visible)
            .count();
        let (page, range) = Page::of_listing(page, total);
        let rooms = self
            .listed
            .iter()
            .filter_map(|key| self.rooms.get(key))
            .filter(visible)
            .skip(range.start)
            .take(range.len())
            .map(|r| (r.name.clone(), r.len()))
            .collect();
        self.reply(id, ServerEvent::Rooms { total, page, rooms });
    }

    /// The last lines said in a room the user is in.
    fn history(&mut self, id: ConnId, target: &Target, count: Option<usize>) -> Result<(), ErrorKind> {
        let key = self.member_room(id, target)?;
        let Some(room) = self.rooms.get(&key) else { return Ok(()) };
        let count = count.unwrap_or(self.settings.replay_lines);
        let entries = room.history.last(count);
        let room = room.name.clone();
        self.reply(id, ServerEvent::History { room, entries });
        Ok(())
    }

    /// Says goodbye to everyone once every I/O thread has sent its last
    /// lines and the acceptor has stopped accepting.
    fn shutdown_when_ready(&mut self) {
        if self.acceptor_stopped && self.drained >= self.settings.io_threads && !self.shutting_down {
            match self.handover.take() {
                Some((shutdown, to)) if shutdown.is_handover() => self.hand_over(&to),
                handover => {
                    self.handover = handover;
                    self.shutdown();
                }
            }
        }
    }

    /// Hands the state over: every I/O thread has stopped reading, so it
    /// is whole. From here on the hub handles nothing (see
    /// [`Hub::handle`]).
    fn hand_over(&mut self, to: &Sender<HubState>) {
        let state = self.export();
        log::info!(
            "handing over: {}, {}",
            crate::ops::logging::counted(state.users.len(), "user"),
            crate::ops::logging::counted(state.rooms.len(), "room")
        );
        // The server waits for it; it is gone only if the server failed.
        let _ = to.send(state);
        for shard in 0..self.settings.io_threads {
            self.outbox.push((shard, Outbound::HandOver));
        }
        self.shutting_down = true;
        self.handed_over = true;
    }

    fn shutdown(&mut self) {
        let n = self.users.len();
        log::info!(
            "shutting down: telling {n} {}",
            if n == 1 { "client" } else { "clients" }
        );
        let everyone: Vec<ConnId> = self.users.keys().copied().collect();
        self.deliver_many(everyone.clone(), ServerEvent::ShuttingDown);
        for id in everyone {
            self.close(id);
        }
        self.users.clear();
        self.nicks.clear();
        self.skeletons.clear();
        self.shutting_down = true;
    }

    /// Whether a room of `members` hears presence changes (see
    /// [`Hub::announce_presence`]).
    fn announces(&self, members: usize) -> bool {
        self.settings.quiet_above == 0 || members <= self.settings.quiet_above
    }

    /// Says a join, leave or nick change to everyone in the room but `who`,
    /// unless the room is over `quiet_above`: announcing every arrival to
    /// every member makes filling a room quadratic (10,000 joins would be
    /// 50 million notices), and in a big room nobody reads them anyway.
    /// `/who` still shows who is there.
    ///
    /// The room's size counts `who`, also when they are leaving it.
    fn announce_presence(&mut self, room_key: &str, who: ConnId, event: ServerEvent) {
        let room = self.rooms.get(room_key);
        let nick_key = self.users.get(&who).map(|u| &u.nick_key);
        let present = room.zip(nick_key).is_some_and(|(r, key)| r.has(key, who));
        let members = room.map_or(0, Room::len) + usize::from(!present);
        if self.announces(members) {
            self.publish(room_key, Some(who), event);
        }
    }

    /// Says `event` to everyone in the room but `except`: chat messages are
    /// not echoed to their sender, and presence changes are not told to the
    /// one who comes or goes.
    ///
    /// Everything said to a room passes through here, so that a backplane
    /// can take over this one function to share rooms across instances.
    /// It costs one message per I/O thread with members in the room,
    /// whatever the room's size: the member lists are shared, not copied.
    pub fn publish(&mut self, room_key: &str, except: Option<ConnId>, event: ServerEvent) {
        let event = match self.cluster {
            None => event,
            Some(_) => match self.cluster_publish(room_key, except, event) {
                Some(event) => event,
                // It comes back from Redis, to be delivered in order.
                None => return,
            },
        };
        self.publish_local(room_key, except, event);
    }

    /// Says `event` to the room's members on this instance but `except`.
    fn publish_local(&mut self, room_key: &str, except: Option<ConnId>, event: ServerEvent) {
        let Some(room) = self.rooms.get(room_key) else {
            return;
        };
        let event = Arc::new(event);
        let since = self.line_received;
        for (shard, members) in room.by_shard() {
            let only_the_sender = members.len() == 1 && members.first() == except.as_ref();
            if members.is_empty() || only_the_sender {
                continue;
            }
            self.outbox.push((
                shard,
                Outbound::Deliver {
                    to: Recipients::Members {
                        members: Arc::clone(members),
                        except,
                    },
                    event: Arc::clone(&event),
                    since,
                },
            ));
        }
    }

    /// Tells one user something.
    fn send(&mut self, id: ConnId, event: ServerEvent) {
        self.deliver_to(Recipients::One(id), id.shard, event);
    }

    /// Answers one user's request with something they pay for by its size
    /// (see [`Recipients::Reply`]).
    fn reply(&mut self, id: ConnId, event: ServerEvent) {
        self.deliver_to(Recipients::Reply(id), id.shard, event);
    }

    /// Tells each of `ids` the same thing, one message per I/O thread.
    fn deliver_many(&mut self, ids: Vec<ConnId>, event: ServerEvent) {
        let mut by_shard: Vec<Vec<ConnId>> = Vec::new();
        for id in ids {
            if by_shard.len() <= id.shard {
                by_shard.resize_with(id.shard + 1, Vec::new);
            }
            if let Some(list) = by_shard.get_mut(id.shard) {
                list.push(id);
            }
        }
        let event = Arc::new(event);
        let since = self.line_received;
        for (shard, ids) in by_shard.into_iter().enumerate() {
            if !ids.is_empty() {
                let to = Recipients::Many(ids);
                let event = Arc::clone(&event);
                self.outbox.push((shard, Outbound::Deliver { to, event, since }));
            }
        }
    }

    fn deliver_to(&mut self, to: Recipients, shard: usize, event: ServerEvent) {
        let since = self.line_received;
        self.outbox.push((
            shard,
            Outbound::Deliver {
                to,
                event: Arc::new(event),
                since,
            },
        ));
    }

    /// Asks the I/O thread to flush and close a connection.
    fn close(&mut self, id: ConnId) {
        self.outbox.push((id.shard, Outbound::Close { id }));
    }
}

/// The claim an IRC registration makes.
fn cluster_purpose_register(user: &str, realname: &str) -> crate::cluster::Purpose {
    crate::cluster::Purpose::Register {
        user: user.to_string(),
        realname: realname.to_string(),
    }
}

/// How a user joins a room.
#[derive(Debug, Clone, Default)]
struct JoinHow {
    /// Leave their other rooms (the line protocol).
    leave_others: bool,
    /// List the members after (IRC).
    names: bool,
    /// The key they gave.
    key: Option<String>,
}

/// Where the hub's output for one I/O thread goes.
#[derive(Debug)]
pub struct Outlet {
    /// The I/O thread's channel, bounded.
    pub sender: Sender<Outbound>,
    /// Wakes the I/O thread once output is waiting.
    pub waker: Arc<Waker>,
    /// Set by the I/O thread while it waits for room in the hub's inbound
    /// queue (it has stopped reading lines); the hub clears it and wakes
    /// the thread once the queue has drained to half.
    pub wants_room: Arc<AtomicBool>,
}

impl Outlet {
    /// Sends `message`, waking the I/O thread first if its queue is full so
    /// that it drains it; then waits for room. An I/O thread never waits
    /// on the hub and takes a bounded number of messages every turn, so
    /// the wait is bounded. A thread that has stopped (only at the end of a
    /// shutdown, when nothing more is due to it) is skipped.
    fn send(&self, message: Outbound) {
        match self.sender.try_send(message) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(message)) => {
                self.wake();
                let _ = self.sender.send(message);
            }
        }
    }

    fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake an I/O thread: {e}");
        }
    }
}

/// The hub's threads and channels, as [`run`] takes them.
#[derive(Debug)]
pub struct Wiring {
    /// What the I/O threads and the acceptor send; bounded.
    pub inbound: Receiver<Inbound>,
    /// One outlet per I/O thread.
    pub outlets: Vec<Outlet>,
    /// To the acceptor: places freed.
    pub released: Sender<Released>,
    /// Pokes from the watchdog (see [`crate::ops::liveness`]).
    pub poke: Receiver<()>,
    /// Counts the hub's turns, for the watchdog.
    pub heartbeat: Heartbeat,
    /// What the cluster's threads hear, if in a cluster.
    pub cluster: Option<Receiver<crate::cluster::ClusterEvent>>,
}

/// Runs the hub on the current thread until every sender of [`Inbound`]
/// messages has gone (the I/O threads and the acceptor, once they have
/// stopped). After each batch of messages, the acceptor hears which
/// connections left the chat, and then its output goes to the I/O threads
/// that own the recipients, each woken once: so by the time anyone reads
/// that a user left, their place is free. `stats` learns the number of
/// rooms. The hub turns at least every [`TICK`], and whenever the
/// watchdog pokes it, to show it is alive.
pub fn run(mut hub: Hub, wiring: Wiring, stats: &Stats) {
    let Wiring {
        inbound,
        outlets,
        released,
        mut poke,
        heartbeat,
        cluster,
    } = wiring;
    let mut cluster = cluster.unwrap_or_else(crossbeam_channel::never);
    let mut woken = vec![false; outlets.len()];
    loop {
        crossbeam_channel::select! {
            recv(inbound) -> first => match first {
                Ok(first) => {
                    hub.handle(first);
                    for message in inbound.try_iter().take(BATCH) {
                        hub.handle(message);
                    }
                }
                Err(_) => return,
            },
            recv(cluster) -> event => match event {
                Ok(event) => {
                    hub.handle(Inbound::Cluster(Box::new(event)));
                    for event in cluster.try_iter().take(BATCH) {
                        hub.handle(Inbound::Cluster(Box::new(event)));
                    }
                }
                // The cluster's threads have stopped (only at the end).
                Err(_) => cluster = crossbeam_channel::never(),
            },
            recv(poke) -> poked => {
                if poked.is_err() {
                    // The watchdog has gone: nothing will poke again.
                    poke = crossbeam_channel::never();
                }
            },
            default(TICK) => {},
        }
        hub.cluster_tick();
        stats.set_rooms(hub.room_count());
        let (history_bytes, history_rooms) = hub.history_usage();
        stats.set_history(history_bytes, history_rooms);
        for place in hub.take_released() {
            // The acceptor is only gone once the server is shutting down.
            let _ = released.send(place);
        }
        for (shard, message) in hub.take_outbox() {
            if let (Some(outlet), Some(woken)) = (outlets.get(shard), woken.get_mut(shard)) {
                outlet.send(message);
                *woken = true;
            }
        }
        grant_room(&inbound, &outlets, &mut woken);
        for (outlet, woken) in outlets.iter().zip(woken.iter_mut()) {
            if std::mem::take(woken) {
                outlet.wake();
            }
        }
        heartbeat.beat();
    }
}

/// Marks to wake the I/O threads that wait for room in the hub's inbound
/// queue once it has drained to half: they go on reading their sockets.
fn grant_room(inbound: &Receiver<Inbound>, outlets: &[Outlet], woken: &mut [bool]) {
    let half = inbound.capacity().map_or(usize::MAX, |c| c / 2);
    if inbound.len() > half {
        return;
    }
    for (outlet, woken) in outlets.iter().zip(woken.iter_mut()) {
        if outlet.wants_room.swap(false, Ordering::AcqRel) {
            *woken = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: usize) -> ConnId {
        ConnId {
            shard: n % 2,
            slot: n,
            serial: n as u64,
        }
    }

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    /// The connections `to` names.
    fn recipients(to: &Recipients) -> Vec<ConnId> {
        match to {
            Recipients::One(id) | Recipients::Reply(id) => vec![*id],
            Recipients::Members { members, except } => members
                .iter()
                .copied()
                .filter(|m| Some(m) != except.as_ref())
                .collect(),
            Recipients::Many(ids) => ids.clone(),
        }
    }

    /// The outbox as (recipient, line text) pairs, one per recipient. The
    /// recipients of one event (one message per I/O thread, sharing the
    /// event) are listed by slot.
    fn said(hub: &mut Hub) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        let mut group: Option<(Arc<ServerEvent>, Vec<ConnId>)> = None;
        let flush = |group: &mut Option<(Arc<ServerEvent>, Vec<ConnId>)>, out: &mut Vec<(usize, String)>| {
            if let Some((event, mut to)) = group.take() {
                to.sort_by_key(|r| r.slot);
                for line in event.lines() {
                    for r in &to {
                        out.push((r.slot, line.to_string()));
                    }
                }
            }
        };
        for (shard, message) in hub.take_outbox() {
            match message {
                Outbound::Deliver { to, event, .. } => {
                    let to = recipients(&to);
                    assert!(
                        to.iter().all(|r| r.shard == shard),
                        "delivered to the thread that owns it"
                    );
                    match &mut group {
                        Some((same, list)) if Arc::ptr_eq(same, &event) => list.extend(to),
                        _ => {
                            flush(&mut group, &mut out);
                            group = Some((event, to));
                        }
                    }
                }
                Outbound::Close { id } => {
                    flush(&mut group, &mut out);
                    out.push((id.slot, "<close>".to_string()));
                }
                Outbound::HandOver => panic!("no handover in these tests"),
            }
        }
        flush(&mut group, &mut out);
        out
    }

    fn cmd(hub: &mut Hub, n: usize, line: &str) {
        if let Some(line) = crate::frontend::line::to_request(Ok(line.to_string())) {
            hub.handle(Inbound::Line {
                id: id(n),
                line,
                received: std::time::Instant::now(),
            });
        }
    }

    /// A stopped clock: 2026-12-06T20:00:00Z.
    fn clock() -> u64 {
        1_796_587_200_000
    }

    /// Settings without history, for the tests not about it.
    fn quiet(quiet_above: usize) -> Settings {
        Settings {
            quiet_above,
            history_lines: 0,
            replay_lines: 0,
            history_bytes: 0,
            clock,
            io_threads: 1,
        }
    }

    fn hub_with(n: usize) -> Hub {
        hub_with_settings(n, quiet(0))
    }

    fn hub_with_settings(n: usize, settings: Settings) -> Hub {
        let mut hub = Hub::new(settings);
        for i in 1..=n {
            hub.handle(Inbound::Connected {
                id: id(i),
                addr: addr(),
                arrival: Arrival::Guest,
            });
        }
        hub.take_outbox();
        hub
    }

    fn pairs(v: &[(usize, &str)]) -> Vec<(usize, String)> {
        v.iter().map(|(n, s)| (*n, s.to_string())).collect()
    }

    #[test]
    fn a_new_user_is_welcomed_and_announced_to_the_lobby() {
        let mut hub = hub_with(1);
        hub.handle(Inbound::Connected {
            id: id(2),
            addr: addr(),
            arrival: Arrival::Guest,
        });
        assert_eq!(
            said(&mut hub),
            pairs(&[
                (
                    2,
                    "-- welcome to chat-server, guest2! you are in #lobby; type /help for commands"
                ),
                (1, "-- guest2 joined #lobby"),
            ])
        );
    }

    #[test]
    fn messages_go_to_everyone_else_in_the_room() {
        let mut hub = hub_with(3);
        cmd(&mut hub, 1, "hello");
        assert_eq!(
            said(&mut hub),
            pairs(&[(2, "<guest1> hello"), (3, "<guest1> hello")])
        );
    }

    #[test]
    fn guest_numbers_skip_nicks_taken_by_hand() {
        let mut hub = hub_with(1);
        cmd(&mut hub, 1, "/nick guest2");
        hub.take_outbox();
        hub.handle(Inbound::Connected {
            id: id(2),
            addr: addr(),
            arrival: Arrival::Guest,
        });
        assert_eq!(
            said(&mut hub).first().map(|(_, l)| l.clone()),
            Some("-- welcome to chat-server, guest3! you are in #lobby; type /help for commands".to_string())
        );
    }

    #[test]
    fn nicks_are_unique_ignoring_case_but_own_case_may_change() {
        let mut hub = hub_with(2);
        cmd(&mut hub, 1, "/nick alice");
        assert_eq!(
            said(&mut hub),
            pairs(&[
                (1, "-- you are now known as alice"),
                (2, "-- guest1 is now known as alice")
            ])
        );
        cmd(&mut hub, 2, "/nick ALICE");
        assert_eq!(said(&mut hub), pairs(&[(2, "!! nick ALICE is already in use")]));
        cmd(&mut hub, 1, "/nick Alice");
        assert_eq!(
            said(&mut hub),
            pairs(&[
                (1, "-- you are now known as Alice"),
                (2, "-- alice is now known as Alice")
            ])
        );
    }

    #[test]
    fn a_nick_that_looks_like_someone_elses_is_refused() {
        let mut hub = hub_with(9);
        cmd(&mut hub, 1, "/nick alice");
        hub.take_outbox();
        for lookalike in ["aIice", "a1ice", "allce", "AL1CE"] {
            cmd(&mut hub, 2, &format!("/nick {lookalike}"));
            assert_eq!(
                said(&mut hub),
                pairs(&[(
                    2,
                    &format!("!! nick {lookalike} looks too much like alice, who is online")
                )])
            );
        }
        // alice herself may take on a look-alike of her own nick.
        cmd(&mut hub, 1, "/nick aIice");
        assert_eq!(
            said(&mut hub)[0],
            (1, "-- you are now known as aIice".to_string())
        );
        // Once she is gone, the name is free.
        hub.handle(Inbound::Closed {
            id: id(1),
            reason: LeaveReason::Disconnected,
        });
        hub.take_outbox();
        cmd(&mut hub, 2, "/nick allce");
        assert_eq!(
            said(&mut hub)[0],
            (2, "-- you are now known as allce".to_string())
        );
        // Guest numbers skip nicks that look like one taken by hand: the
        // next guest would be guest10.
        cmd(&mut hub, 3, "/nick guestI0");
        hub.take_outbox();
        hub.handle(Inbound::Connected {
            id: id(10),
            addr: addr(),
            arrival: Arrival::Guest,
        });
        assert_eq!(
            said(&mut hub)[0].1,
            "-- welcome to chat-server, guest11! you are in #lobby; type /help for commands"
        );
    }

    /// Sends a request as a front end that is not the line protocol would.
    fn ask(hub: &mut Hub, n: usize, request: Request) {
        hub.handle(Inbound::Line {
            id: id(n),
            line: Ok(request),
            received: std::time::Instant::now(),
        });
    }

    fn room(name: &str) -> RoomName {
        RoomName::new(name).unwrap()
    }

    /// The WHO answer in the outbox: the nicks listed and whether the list
    /// says it may be incomplete.
    fn who_answer(hub: &mut Hub) -> (Vec<String>, bool) {
        for (_, message) in hub.take_outbox() {
            if let Outbound::Deliver { event, .. } = message {
                if let ServerEvent::WhoList {
                    entries, truncated, ..
                } = &*event
                {
                    return (entries.iter().map(|e| e.nick.to_string()).collect(), *truncated);
                }
            }
        }
        panic!("no WHO answer");
    }

    /// The time for the ban expiry test, which moves it.
    static BAN_CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_796_587_200_000);

    fn ban_clock() -> u64 {
        BAN_CLOCK.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[test]
    fn a_ban_with_a_duration_runs_out() {
        let mut hub = hub_with_settings(
            2,
            Settings {
                clock: ban_clock,
                ..quiet(0)
            },
        );
        ask(&mut hub, 1, join("rust"));
        hub.take_outbox();
        ask(
            &mut hub,
            1,
            Request::Ban {
                room: Target::Room(room("rust")),
                mask: chat_protocol::Mask::parse("guest2").unwrap(),
                duration: Some(Duration::from_secs(600)),
            },
        );
        hub.take_outbox();
        ask(&mut hub, 2, join("rust"));
        assert_eq!(said(&mut hub), pairs(&[(2, "!! you are banned from #rust")]));
        BAN_CLOCK.fetch_add(599_000, std::sync::atomic::Ordering::Relaxed);
        ask(&mut hub, 2, join("rust"));
        assert_eq!(said(&mut hub), pairs(&[(2, "!! you are banned from #rust")]));
        BAN_CLOCK.fetch_add(1_000, std::sync::atomic::Ordering::Relaxed);
        ask(&mut hub, 2, join("rust"));
        assert_eq!(
            said(&mut hub).first().map(|(n, l)| (*n, l.clone())),
            Some((2, "-- you joined #rust".to_string()))
        );
    }

    #[test]
    fn who_reads_the_nicks_a_mask_can_match_and_no_more_than_its_share() {
        let mut hub = hub_with(MAX_WHO_SCAN + 10);
        ask(&mut hub, 5, Request::Nick(Nick::new("zed").unwrap()));
        hub.take_outbox();
        // A literal start: only the nicks from "ze" on are looked at.
        ask(&mut hub, 1, Request::WhoMatching("ZE*".into()));
        assert_eq!(who_answer(&mut hub), (vec!["zed".to_string()], false));
        ask(&mut hub, 1, Request::WhoMatching("zed".into()));
        assert_eq!(who_answer(&mut hub), (vec!["zed".to_string()], false));
        // A leading wildcard would read the whole server: it reads its
        // share and says so.
        ask(&mut hub, 1, Request::WhoMatching("*ed".into()));
        assert_eq!(who_answer(&mut hub), (Vec::new(), true));
        // Everyone: the first MAX_WHO, in order.
        ask(&mut hub, 1, Request::WhoMatching("*".into()));
        let (all, truncated) = who_answer(&mut hub);
        assert_eq!((all.len(), truncated), (MAX_WHO, true));
        assert_eq!(all.first().map(String::as_str), Some("guest1"));
    }

    fn join(name: &str) -> Request {
        Request::Join {
            room: room(name),
            leave_others: false,
            names: false,
            key: None,
        }
    }

    fn say_in(name: &str, text: &str) -> Request {
        Request::Say {
            room: Target::Room(room(name)),
            text: text.to_string(),
            style: Style::Message,
            echo: false,
        }
    }

    #[test]
    fn a_user_may_be_in_several_rooms_and_each_event_names_its_room() {
        let mut hub = hub_with(3);
        for n in 1..=2 {
            ask(&mut hub, n, join("rust"));
            ask(&mut hub, n, join("go"));
        }
        ask(&mut hub, 3, join("go"));
        hub.take_outbox();
        // 1 is in #lobby, #rust and #go: it hears each room's talk.
        ask(&mut hub, 2, say_in("rust", "borrow"));
        ask(&mut hub, 3, say_in("go", "gopher"));
        let rooms_heard: Vec<(usize, Option<String>)> = hub
            .take_outbox()
            .into_iter()
            .filter_map(|(_, m)| match m {
                Outbound::Deliver { to, event, .. } => match &*event {
                    ServerEvent::Said { room, .. } => Some(
                        recipients(&to)
                            .into_iter()
                            .map(|r| (r.slot, Some(room.to_string())))
                            .collect::<Vec<_>>(),
                    ),
                    _ => None,
                },
                _ => None,
            })
            .flatten()
            .collect();
        let mut rooms_heard = rooms_heard;
        rooms_heard.sort();
        assert_eq!(
            rooms_heard,
            [
                (1, Some("#go".to_string())),
                (1, Some("#rust".to_string())),
                (2, Some("#go".to_string())),
            ]
        );
        // Saying something in a room one is not in is an error.
        ask(&mut hub, 3, say_in("rust", "hi"));
        assert_eq!(said(&mut hub), pairs(&[(3, "!! you are not in #rust")]));
        // Leaving one room keeps the others; the room hears why.
        ask(
            &mut hub,
            1,
            Request::Part {
                room: Target::Room(room("rust")),
                reason: Some("enough".into()),
            },
        );
        assert_eq!(
            said(&mut hub),
            pairs(&[
                (2, "-- guest1 left #rust (left: enough)"),
                (1, "-- you left #rust")
            ])
        );
        ask(&mut hub, 3, say_in("go", "still here"));
        assert_eq!(
            said(&mut hub),
            pairs(&[(1, "<guest3> still here"), (2, "<guest3> still here")])
        );
        // A nick change is told once to everyone who shares a room.
        cmd(&mut hub, 2, "/nick bob");
        assert_eq!(
            said(&mut hub),
            pairs(&[
                (2, "-- you are now known as bob"),
                (1, "-- guest2 is now known as bob"),
                (3, "-- guest2 is now known as bob"),
            ])
        );
    }

    #[test]
    fn there_is_a_most_rooms_one_user_may_be_in() {
        let mut hub = hub_with(1);
        for n in 1..MAX_ROOMS_PER_USER {
            ask(&mut hub, 1, join(&format!("r{n}")));
        }
        hub.take_outbox();
        ask(&mut hub, 1, join("one-more"));
        assert_eq!(
            said(&mut hub),
            pairs(&[(
                1,
                &format!("!! you are in {MAX_ROOMS_PER_USER} rooms already, the most there may be")
            )])
        );
    }

    #[test]
    fn a_topic_is_shown_on_joining_and_announced_when_set() {
        let mut hub = hub_with(2);
        cmd(&mut hub, 1, "/topic");
        assert_eq!(said(&mut hub), pairs(&[(1, "-- #lobby has no topic")]));
        cmd(&mut hub, 1, "/topic release on Friday");
        assert_eq!(
            said(&mut hub),
            pairs(&[
                (1, "-- guest1 set the topic of #lobby: release on Friday"),
                (2, "-- guest1 set the topic of #lobby: release on Friday"),
            ])
        );
        cmd(&mut hub, 2, "/join rust");
        cmd(&mut hub, 2, "/join lobby");
        let heard = said(&mut hub);
        assert!(
            heard.contains(&(
                2,
                "-- topic of #lobby: release on Friday (set by guest1 at 2026-12-06T20:00:00Z)".to_string()
            )),
            "{heard:?}"
        );
    }

    fn with_history(lines: usize, replay: usize, bytes: usize) -> Settings {
        Settings {
            history_lines: lines,
            replay_lines: replay,
            history_bytes: bytes,
            ..quiet(0)
        }
    }

    #[test]
    fn joining_a_room_replays_its_last_lines_with_their_time() {
        let mut hub = hub_with_settings(2, with_history(5, 2, 1 << 20));
        cmd(&mut hub, 1, "/join rust");
        for i in 0..4 {
            cmd(&mut hub, 1, &format!("line {i}"));
        }
        cmd(&mut hub, 1, "/me waves");
        hub.take_outbox();
        cmd(&mut hub, 2, "/join rust");
        assert_eq!(
            said(&mut hub),
            pairs(&[
                (2, "-- you joined #rust"),
                (1, "-- guest2 joined #rust"),
                (2, "[2026-12-06T20:00:00Z] <guest1> line 3"),
                (2, "[2026-12-06T20:00:00Z] * guest1 waves"),
            ])
        );
        cmd(&mut hub, 2, "/history 10");
        let heard = said(&mut hub);
        assert_eq!(heard.len(), 5, "all five kept lines: {heard:?}");
        assert_eq!(
            heard[0],
            (2, "[2026-12-06T20:00:00Z] <guest1> line 0".to_string())
        );
        // Private messages are never kept.
        cmd(&mut hub, 1, "/msg guest2 secret");
        hub.take_outbox();
        cmd(&mut hub, 2, "/history 1");
        assert_eq!(
            said(&mut hub),
            pairs(&[(2, "[2026-12-06T20:00:00Z] * guest1 waves")])
        );
    }

    #[test]
    fn an_emptied_room_keeps_its_history_until_the_budget_needs_it() {
        let one_line = crate::chat::history::ROOM_OVERHEAD + 200;
        // Room for about three rooms of one line each.
        let mut hub = hub_with_settings(2, with_history(10, 10, 3 * one_line));
        for name in ["a", "b", "c", "d"] {
            cmd(&mut hub, 1, &format!("/join {name}"));
            cmd(&mut hub, 1, &format!("said in {name}"));
        }
        cmd(&mut hub, 1, "/join lobby");
        hub.take_outbox();
        // The first rooms, used least recently, are gone with their
        // history; the last ones still replay it to a newcomer.
        cmd(&mut hub, 2, "/join d");
        assert!(said(&mut hub).contains(&(2, "[2026-12-06T20:00:00Z] <guest1> said in d".to_string())));
        cmd(&mut hub, 2, "/join a");
        assert_eq!(
            said(&mut hub),
            pairs(&[(2, "-- you joined #a")]),
            "#a lost its history"
        );
        let (used, _) = hub.history_usage();
        assert!(used <= 3 * one_line, "{used} bytes kept");
        // /rooms lists the rooms with people in them, not the empty ones
        // that only keep history.
        cmd(&mut hub, 2, "/rooms");
        assert_eq!(said(&mut hub), pairs(&[(2, "-- 2 rooms: #a (1), #lobby (1)")]));
    }

    #[test]
    fn creating_rooms_in_a_loop_stays_within_the_history_budget() {
        let budget = 64 * 1024;
        let mut hub = hub_with_settings(1, with_history(100, 20, budget));
        for n in 0..5_000 {
            cmd(&mut hub, 1, &format!("/join loop{n}"));
            cmd(&mut hub, 1, &"x".repeat(200));
            hub.take_outbox();
            let (used, _) = hub.history_usage();
            assert!(used <= budget + 1024, "{used} bytes after {n} rooms");
        }
        let (_, empty_rooms) = hub.history_usage();
        assert!(
            hub.rooms.len() < 200,
            "{} rooms kept ({empty_rooms} empty ones with history)",
            hub.rooms.len()
        );
    }

    #[test]
    fn joining_moves_between_rooms_and_empty_rooms_vanish() {
        let mut hub = hub_with(2);
        cmd(&mut hub, 1, "/join Rust");
        assert_eq!(
            said(&mut hub),
            pairs(&[
                (2, "-- guest1 left #lobby (moved to #Rust)"),
                (1, "-- you joined #Rust")
            ])
        );
        cmd(&mut hub, 2, "/join #rust");
        assert_eq!(
            said(&mut hub),
            pairs(&[(2, "-- you joined #Rust"), (1, "-- guest2 joined #Rust")])
        );
        cmd(&mut hub, 2, "/rooms");
        assert_eq!(said(&mut hub), pairs(&[(2, "-- 2 rooms: #lobby (0), #Rust (2)")]));
        cmd(&mut hub, 2, "/join rust");
        assert_eq!(said(&mut hub), pairs(&[(2, "!! you are already in #Rust")]));
        cmd(&mut hub, 1, "/join lobby");
        cmd(&mut hub, 2, "/join lobby");
        hub.take_outbox();
        cmd(&mut hub, 2, "/rooms");
        assert_eq!(said(&mut hub), pairs(&[(2, "-- 1 room: #lobby (2)")]));
    }

    #[test]
    fn private_messages_reach_one_user_and_confirm_to_the_sender() {
        let mut hub = hub_with(3);
        cmd(&mut hub, 2, "/nick Bob");
        cmd(&mut hub, 1, "/join elsewhere");
        hub.take_outbox();
        cmd(&mut hub, 1, "/msg bob psst");
        assert_eq!(
            said(&mut hub),
            pairs(&[(2, "*guest1* psst"), (1, "-> *Bob* psst")])
        );
        cmd(&mut hub, 1, "/msg carol hi");
        assert_eq!(said(&mut hub), pairs(&[(1, "!! no such nick: carol")]));
    }

    #[test]
    fn rooms_over_the_quiet_threshold_hear_no_presence_changes() {
        let mut hub = Hub::new(quiet(2));
        for i in 1..=2 {
            hub.handle(Inbound::Connected {
                id: id(i),
                addr: addr(),
                arrival: Arrival::Guest,
            });
        }
        assert_eq!(
            said(&mut hub).last(),
            Some(&(1, "-- guest2 joined #lobby".to_string()))
        );
        hub.handle(Inbound::Connected {
            id: id(3),
            addr: addr(),
            arrival: Arrival::Guest,
        });
        assert_eq!(
            said(&mut hub),
            pairs(&[(
                3,
                "-- welcome to chat-server, guest3! you are in #lobby; type /help for commands"
            )])
        );
        cmd(&mut hub, 3, "/nick carol");
        assert_eq!(said(&mut hub), pairs(&[(3, "-- you are now known as carol")]));
        cmd(&mut hub, 3, "hi");
        assert_eq!(said(&mut hub), pairs(&[(1, "<carol> hi"), (2, "<carol> hi")]));
        hub.handle(Inbound::Closed {
            id: id(3),
            reason: LeaveReason::Disconnected,
        });
        // Two left: small enough to hear about it again.
        hub.handle(Inbound::Closed {
            id: id(2),
            reason: LeaveReason::Disconnected,
        });
        assert_eq!(
            said(&mut hub),
            pairs(&[
                (3, "<close>"),
                (1, "-- guest2 left #lobby (disconnect)"),
                (2, "<close>")
            ])
        );
    }

    #[test]
    fn who_lists_the_room_sorted() {
        let mut hub = hub_with(3);
        cmd(&mut hub, 3, "/nick Zed");
        cmd(&mut hub, 1, "/nick bob");
        cmd(&mut hub, 2, "/nick Alice");
        hub.take_outbox();
        cmd(&mut hub, 1, "/who");
        assert_eq!(said(&mut hub), pairs(&[(1, "-- 3 in #lobby: Alice, bob, Zed")]));
    }

    #[test]
    fn quit_announces_frees_the_nick_and_closes() {
        let mut hub = hub_with(2);
        cmd(&mut hub, 1, "/nick alice");
        hub.take_outbox();
        cmd(&mut hub, 1, "/quit gone fishing");
        assert_eq!(
            said(&mut hub),
            pairs(&[
                (2, "-- alice left #lobby (quit: gone fishing)"),
                (1, "-- bye"),
                (1, "<close>")
            ])
        );
        cmd(&mut hub, 2, "/nick alice");
        assert_eq!(said(&mut hub), pairs(&[(2, "-- you are now known as alice")]));
        // A line still in flight from the quitter is ignored.
        cmd(&mut hub, 1, "too late");
        assert_eq!(said(&mut hub), pairs(&[]));
    }

    #[test]
    fn a_closed_connection_is_announced_and_acknowledged() {
        let mut hub = hub_with(2);
        hub.handle(Inbound::Closed {
            id: id(1),
            reason: LeaveReason::Disconnected,
        });
        assert_eq!(
            said(&mut hub),
            pairs(&[(2, "-- guest1 left #lobby (disconnect)"), (1, "<close>")])
        );
    }

    #[test]
    fn a_slow_consumer_is_announced_with_its_reason() {
        let mut hub = hub_with(2);
        hub.handle(Inbound::Closed {
            id: id(1),
            reason: LeaveReason::SlowConsumer,
        });
        assert_eq!(
            said(&mut hub),
            pairs(&[(2, "-- guest1 left #lobby (slow consumer)"), (1, "<close>")])
        );
    }

    #[test]
    fn an_idle_user_is_told_then_announced_and_closed() {
        let mut hub = hub_with(2);
        hub.handle(Inbound::Ending {
            id: id(1),
            why: Ending::Idle {
                quiet: std::time::Duration::from_secs(30),
            },
        });
        assert_eq!(
            said(&mut hub),
            pairs(&[
                (1, "-- closing idle connection (nothing received for 30 s)"),
                (2, "-- guest1 left #lobby (idle)"),
                (1, "<close>"),
            ])
        );
    }

    #[test]
    fn errors_go_back_to_the_sender_only() {
        let mut hub = hub_with(2);
        cmd(&mut hub, 1, "/dance");
        assert_eq!(
            said(&mut hub),
            pairs(&[(1, "!! unknown command /dance; type /help for the list")])
        );
    }

    #[test]
    fn shutdown_tells_everyone_closes_everyone_and_sends_latecomers_away() {
        let mut hub = hub_with(2);
        hub.handle(Inbound::Drained);
        hub.handle(Inbound::AcceptorStopped);
        let out = said(&mut hub);
        assert_eq!(
            out.iter().filter(|(_, l)| l == "-- server shutting down").count(),
            2
        );
        assert_eq!(out.iter().filter(|(_, l)| l == "<close>").count(), 2);
        hub.handle(Inbound::Connected {
            id: id(3),
            addr: addr(),
            arrival: Arrival::Guest,
        });
        assert_eq!(
            said(&mut hub),
            pairs(&[(3, "-- server shutting down"), (3, "<close>")])
        );
    }

    #[test]
    fn a_user_who_leaves_frees_their_place_once() {
        let mut hub = hub_with(2);
        assert_eq!(hub.take_released(), [], "nobody has left yet");
        hub.handle(Inbound::Closed {
            id: id(1),
            reason: LeaveReason::Disconnected,
        });
        let freed = Released {
            shard: id(1).shard,
            ip: addr().ip(),
        };
        assert_eq!(hub.take_released(), [freed]);
        // The I/O thread's own close after the hub's goodbye frees nothing
        // more.
        hub.handle(Inbound::Closed {
            id: id(1),
            reason: LeaveReason::Disconnected,
        });
        assert_eq!(hub.take_released(), []);
    }
}
