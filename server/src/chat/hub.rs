//! The hub: the one owner of the chat state.
//!
//! Users, nicks and rooms live here and nowhere else, on one thread, so no
//! lock guards them: the event loops send what clients did as [`Inbound`]
//! messages and the hub answers with [`Outbound`] ones. Because the hub
//! handles messages one at a time, every member of a room sees that room's
//! events in one order, and one sender's messages in the order sent.
//!
//! The hub speaks in [`ServerEvent`]s, never in wire lines, so another
//! front end (IRC, TLS) can share it. Everything said to a room, chat and
//! presence alike, goes through [`Hub::publish`]: that is the seam where a
//! backplane (Redis, so several instances share rooms) will plug in,
//! publishing to one channel per room and delivering locally what comes
//! back, which keeps one order per room across instances.
//!
//! What keeps it cheap, whatever the size of a room:
//! - each room keeps its members as one list per I/O thread, shared (an
//!   `Arc`) with every delivery in flight: a line to a room of 10,000
//!   costs one message per I/O thread and no copy of the list; a list is
//!   copied only when it changes while a delivery still holds it;
//! - each room keeps its members sorted by nick, so `/who` reads one page
//!   of them without sorting anything, and `/rooms` pages through rooms
//!   that are kept sorted; answers that grow with the server are sent a
//!   page at a time ([`Page`]), and their size is charged to the asker's
//!   flood allowance (see [`Recipients::Reply`]).
//!
//! Its channels are bounded (see [`crate::server`]): when an I/O thread's
//! outbound queue is full the hub waits for it, which is bounded because
//! every I/O thread takes a bounded number of messages every turn and never
//! waits on the hub; meanwhile the hub reads no more input, so the I/O
//! threads stop reading sockets: backpressure all the way to the senders'
//! TCP windows, and no queue that grows without bound.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::{Command, ErrorKind, LeaveReason, Nick, Page, RoomName, ServerEvent};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::Waker;

use crate::chat::messages::{ConnId, Ending, Inbound, Outbound, Recipients, Released};
use crate::ops::liveness::Heartbeat;
use crate::ops::logging::clip;
use crate::ops::stats::Stats;

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

/// One connected user.
#[derive(Debug)]
struct User {
    nick: Nick,
    /// Key of the room the user is in (lower case; see [`RoomName::key`]).
    room: String,
    /// Peer address, for logs.
    addr: SocketAddr,
}

/// One room and who is in it.
#[derive(Debug)]
struct Room {
    /// The name as first used, with its case.
    name: RoomName,
    /// The members on each I/O thread (indexed by [`ConnId::shard`]),
    /// shared with the deliveries in flight: copied only when it changes
    /// while a delivery still holds it.
    by_shard: Vec<Arc<Vec<ConnId>>>,
    /// Members by nick key, in order: `/who` reads a page of it.
    by_nick: BTreeMap<String, ConnId>,
}

impl Room {
    fn new(name: RoomName) -> Room {
        Room {
            name,
            by_shard: Vec::new(),
            by_nick: BTreeMap::new(),
        }
    }

    fn len(&self) -> usize {
        self.by_nick.len()
    }

    fn add(&mut self, id: ConnId, nick_key: String) {
        if self.by_shard.len() <= id.shard {
            self.by_shard.resize_with(id.shard + 1, Arc::default);
        }
        if let Some(list) = self.by_shard.get_mut(id.shard) {
            Arc::make_mut(list).push(id);
        }
        self.by_nick.insert(nick_key, id);
    }

    fn remove(&mut self, id: ConnId, nick_key: &str) {
        if let Some(list) = self.by_shard.get_mut(id.shard) {
            if let Some(at) = list.iter().position(|&m| m == id) {
                Arc::make_mut(list).swap_remove(at);
            }
        }
        self.by_nick.remove(nick_key);
    }

    fn rename(&mut self, id: ConnId, old_key: &str, new_key: String) {
        if self.by_nick.remove(old_key).is_some() {
            self.by_nick.insert(new_key, id);
        }
    }
}

/// The chat state and the rules that change it.
#[derive(Debug)]
pub struct Hub {
    users: HashMap<ConnId, User>,
    /// Nick key (lower case) to its owner, for uniqueness and `/msg`.
    nicks: HashMap<String, ConnId>,
    /// Nick skeleton (see [`Nick::skeleton`]) to its owner: no one may take
    /// a nick that looks like someone else's.
    skeletons: HashMap<String, ConnId>,
    /// Room key (lower case) to room; ordered, so `/rooms` is sorted.
    rooms: BTreeMap<String, Room>,
    /// Next number to try for a guest nick.
    next_guest: u64,
    /// What the hub has to say, by I/O thread, waiting to be handed over.
    outbox: Vec<(usize, Outbound)>,
    /// Rooms with more members than this hear no joins, leaves or nick
    /// changes (0 = always announce); see [`crate::Config::quiet_above`].
    quiet_above: usize,
    /// When the line being handled was read, passed on with what it causes
    /// (see [`Outbound::Deliver`]).
    line_received: Option<Instant>,
    /// Set by [`Inbound::Shutdown`]: whoever connects now is sent away.
    shutting_down: bool,
    /// Connections that have left the chat since the last
    /// [`Hub::take_released`], for the acceptor: their places are free.
    released: Vec<Released>,
    /// See [`crate::config::TestFault::Hub`].
    panic_on: Option<String>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    /// An empty hub with the lobby in it, announcing presence changes only
    /// in rooms of at most `quiet_above` members (0 = in every room).
    pub fn with_quiet_above(quiet_above: usize) -> Hub {
        Hub {
            quiet_above,
            ..Hub::new()
        }
    }

    /// An empty hub with the lobby in it, announcing every presence change.
    pub fn new() -> Hub {
        let lobby = RoomName::lobby();
        let mut rooms = BTreeMap::new();
        rooms.insert(lobby.key(), Room::new(lobby));
        Hub {
            users: HashMap::new(),
            nicks: HashMap::new(),
            skeletons: HashMap::new(),
            rooms,
            next_guest: 1,
            outbox: Vec::new(),
            quiet_above: 0,
            line_received: None,
            shutting_down: false,
            released: Vec::new(),
            panic_on: None,
        }
    }

    /// Makes the hub panic when it handles the chat line `text` (see
    /// [`crate::config::TestFault`]; tests only).
    #[doc(hidden)]
    pub fn panic_on(&mut self, text: String) {
        self.panic_on = Some(text);
    }

    /// How many rooms exist, the lobby included.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
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
        match message {
            Inbound::Connected { id, addr } if self.shutting_down => {
                // Accepted just before the shutdown, and announced by its
                // I/O thread just after.
                self.released.push(Released {
                    shard: id.shard,
                    ip: addr.ip(),
                });
                self.send(id, ServerEvent::ShuttingDown);
                self.close(id);
            }
            Inbound::Connected { id, addr } => self.connect(id, addr),
            Inbound::Line { id, line, received } => {
                self.line_received = Some(received);
                self.line(id, line);
                self.line_received = None;
            }
            Inbound::Closed { id, reason } => {
                self.remove(id, reason);
                self.close(id);
            }
            Inbound::Ending { id, why } => {
                if self.users.contains_key(&id) {
                    let (event, reason) = match why {
                        Ending::Idle { quiet } => (
                            ServerEvent::IdleTimeout {
                                secs: quiet.as_secs(),
                            },
                            LeaveReason::Idle,
                        ),
                        Ending::MakingRoom => (ServerEvent::MakingRoom, LeaveReason::MadeRoom),
                    };
                    self.send(id, event);
                    self.remove(id, reason);
                }
                self.close(id);
            }
            Inbound::Shutdown => self.shutdown(),
        }
    }

    fn connect(&mut self, id: ConnId, addr: SocketAddr) {
        let nick = self.guest_nick();
        let lobby = RoomName::lobby();
        log::info!("connect {addr} as {nick}");
        self.nicks.insert(nick.key(), id);
        self.skeletons.insert(nick.skeleton(), id);
        self.users.insert(
            id,
            User {
                nick: nick.clone(),
                room: lobby.key(),
                addr,
            },
        );
        self.send(
            id,
            ServerEvent::Welcome {
                nick: nick.clone(),
                room: lobby.clone(),
            },
        );
        self.enter(id, nick, lobby);
    }

    /// A fresh `guestN` nick that nobody has, nor one like it (a user may
    /// have taken `guest1O`), not even by `/nick`.
    fn guest_nick(&mut self) -> Nick {
        loop {
            let n = self.next_guest;
            self.next_guest = self.next_guest.wrapping_add(1);
            if let Ok(nick) = Nick::new(&format!("guest{n}")) {
                if !self.skeletons.contains_key(&nick.skeleton()) {
                    return nick;
                }
            }
        }
    }

    fn line(&mut self, id: ConnId, line: Result<Command, ErrorKind>) {
        let Some(user) = self.users.get(&id) else {
            // The user quit or disconnected while this line was in flight.
            return;
        };
        let command = match line {
            Ok(command) => command,
            Err(error) => {
                log::debug!(
                    "{} {}: error: {}",
                    user.addr,
                    user.nick,
                    clip(&error.to_string(), LOGGED_TEXT)
                );
                return self.send(id, ServerEvent::Error(error));
            }
        };
        let (nick, room, addr) = (user.nick.clone(), user.room.clone(), user.addr);
        match command {
            Command::Say(text) => {
                assert!(
                    self.panic_on.as_ref() != Some(&text),
                    "test fault: the hub panics as asked"
                );
                log::debug!("{addr} {nick}: {}", clip(&text, LOGGED_TEXT));
                self.publish(&room, Some(id), ServerEvent::Said { from: nick, text });
            }
            Command::Me(text) => {
                log::debug!("{addr} {nick}: /me {}", clip(&text, LOGGED_TEXT));
                self.publish(&room, Some(id), ServerEvent::Action { from: nick, text });
            }
            Command::Msg { to, text } => {
                log::debug!("{addr} {nick}: /msg {to} {}", clip(&text, LOGGED_TEXT));
                self.private(id, nick, to, text);
            }
            Command::Nick(new) => self.rename(id, nick, new),
            Command::Join(target) => self.join(id, nick, &room, target),
            Command::Who { page } => self.who(id, &room, page),
            Command::Rooms { page } => self.list_rooms(id, page),
            Command::Help => self.reply(id, ServerEvent::Help),
            Command::Quit(reason) => {
                self.remove(id, LeaveReason::Quit(reason));
                self.send(id, ServerEvent::Bye);
                self.close(id);
            }
        }
    }

    fn private(&mut self, from_id: ConnId, from: Nick, to: Nick, text: String) {
        let Some(&to_id) = self.nicks.get(&to.key()) else {
            return self.send(from_id, ServerEvent::Error(ErrorKind::NoSuchNick(to)));
        };
        // Show the recipient's nick as they spell it.
        let to = self.users.get(&to_id).map_or(to, |u| u.nick.clone());
        self.send(
            to_id,
            ServerEvent::PrivateFrom {
                from,
                text: text.clone(),
            },
        );
        self.send(from_id, ServerEvent::PrivateTo { to, text });
    }

    fn rename(&mut self, id: ConnId, old: Nick, new: Nick) {
        if let Some(&owner) = self.nicks.get(&new.key()) {
            if owner != id {
                return self.send(id, ServerEvent::Error(ErrorKind::NickInUse(new)));
            }
        }
        if let Some(owner) = self.skeletons.get(&new.skeleton()).filter(|&&o| o != id) {
            let existing = self.users.get(owner).map(|u| u.nick.clone());
            if let Some(existing) = existing {
                let error = ErrorKind::NickConfusable { asked: new, existing };
                return self.send(id, ServerEvent::Error(error));
            }
        }
        self.nicks.remove(&old.key());
        self.nicks.insert(new.key(), id);
        self.skeletons.remove(&old.skeleton());
        self.skeletons.insert(new.skeleton(), id);
        let Some(user) = self.users.get_mut(&id) else {
            return;
        };
        user.nick = new.clone();
        log::info!("{} {old} is now known as {new}", user.addr);
        let room = user.room.clone();
        if let Some(room) = self.rooms.get_mut(&room) {
            room.rename(id, &old.key(), new.key());
        }
        self.send(id, ServerEvent::NickSet { nick: new.clone() });
        self.announce_presence(&room, id, ServerEvent::NickChanged { old, new });
    }

    fn join(&mut self, id: ConnId, nick: Nick, current: &str, target: RoomName) {
        if target.key() == current {
            let name = self.rooms.get(current).map_or(target, |r| r.name.clone());
            return self.send(id, ServerEvent::Error(ErrorKind::AlreadyInRoom(name)));
        }
        // An existing room keeps the spelling it was created with.
        let name = self.rooms.get(&target.key()).map_or(target, |r| r.name.clone());
        self.leave_room(id, LeaveReason::Moved(name.clone()));
        self.send(id, ServerEvent::JoinedRoom { room: name.clone() });
        self.enter(id, nick, name);
    }

    /// Puts `id` into the room `target` names, creating it if needed, and
    /// tells the room.
    fn enter(&mut self, id: ConnId, nick: Nick, target: RoomName) {
        let key = target.key();
        if let Some(user) = self.users.get_mut(&id) {
            user.room = key.clone();
        }
        let room = self.rooms.entry(key.clone()).or_insert_with(|| Room::new(target));
        room.add(id, nick.key());
        let room = room.name.clone();
        self.announce_presence(&key, id, ServerEvent::Joined { nick, room });
    }

    /// Takes `id` out of its room, tells the room why, and drops the room
    /// if it is empty now (but never the lobby).
    fn leave_room(&mut self, id: ConnId, reason: LeaveReason) {
        let Some(user) = self.users.get(&id) else { return };
        let (key, nick) = (user.room.clone(), user.nick.clone());
        let Some(room) = self.rooms.get_mut(&key) else {
            return;
        };
        room.remove(id, &nick.key());
        let name = room.name.clone();
        if room.len() == 0 && name.as_str() != RoomName::LOBBY {
            self.rooms.remove(&key);
        }
        self.announce_presence(
            &key,
            id,
            ServerEvent::Left {
                nick,
                room: name,
                reason,
            },
        );
    }

    /// Forgets the user entirely: room, nick, and all.
    fn remove(&mut self, id: ConnId, reason: LeaveReason) {
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
        self.leave_room(id, reason);
        if let Some(user) = self.users.remove(&id) {
            self.nicks.remove(&user.nick.key());
            self.skeletons.remove(&user.nick.skeleton());
        }
    }

    /// One page of the room's members, read from its sorted index.
    fn who(&mut self, id: ConnId, room_key: &str, page: usize) {
        let Some(room) = self.rooms.get(room_key) else {
            return;
        };
        let total = room.len();
        let (page, range) = Page::of_listing(page, total);
        let nicks = room
            .by_nick
            .values()
            .skip(range.start)
            .take(range.len())
            .filter_map(|m| self.users.get(m).map(|u| u.nick.clone()))
            .collect();
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
    }

    /// One page of the rooms, which are kept sorted.
    fn list_rooms(&mut self, id: ConnId, page: usize) {
        let total = self.rooms.len();
        let (page, range) = Page::of_listing(page, total);
        let rooms = self
            .rooms
            .values()
            .skip(range.start)
            .take(range.len())
            .map(|r| (r.name.clone(), r.len()))
            .collect();
        self.reply(id, ServerEvent::Rooms { total, page, rooms });
    }

    fn shutdown(&mut self) {
        let n = self.users.len();
        log::info!(
            "shutting down: telling {n} {}",
            if n == 1 { "client" } else { "clients" }
        );
        let mut by_shard: Vec<Vec<ConnId>> = Vec::new();
        for &id in self.users.keys() {
            if by_shard.len() <= id.shard {
                by_shard.resize_with(id.shard + 1, Vec::new);
            }
            if let Some(list) = by_shard.get_mut(id.shard) {
                list.push(id);
            }
        }
        let event = Arc::new(ServerEvent::ShuttingDown);
        for (shard, ids) in by_shard.into_iter().enumerate() {
            if ids.is_empty() {
                continue;
            }
            let closes: Vec<ConnId> = ids.clone();
            self.outbox.push((
                shard,
                Outbound::Deliver {
                    to: Recipients::Many(ids),
                    event: Arc::clone(&event),
                    since: None,
                },
            ));
            for id in closes {
                self.outbox.push((shard, Outbound::Close { id }));
            }
        }
        self.users.clear();
        self.nicks.clear();
        self.skeletons.clear();
        self.shutting_down = true;
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
        let nick_key = self.users.get(&who).map(|u| u.nick.key());
        let present = room
            .zip(nick_key)
            .is_some_and(|(r, key)| r.by_nick.get(&key) == Some(&who));
        let members = room.map_or(0, Room::len) + usize::from(!present);
        if self.quiet_above == 0 || members <= self.quiet_above {
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
        let Some(room) = self.rooms.get(room_key) else {
            return;
        };
        let event = Arc::new(event);
        let since = self.line_received;
        for (shard, members) in room.by_shard.iter().enumerate() {
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

    /// Answers one user's command with something they pay for by its size
    /// (see [`Recipients::Reply`]).
    fn reply(&mut self, id: ConnId, event: ServerEvent) {
        self.deliver_to(Recipients::Reply(id), id.shard, event);
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
    } = wiring;
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
            recv(poke) -> poked => {
                if poked.is_err() {
                    // The watchdog has gone: nothing will poke again.
                    poke = crossbeam_channel::never();
                }
            },
            default(TICK) => {},
        }
        stats.set_rooms(hub.room_count());
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
            }
        }
        flush(&mut group, &mut out);
        out
    }

    fn cmd(hub: &mut Hub, n: usize, line: &str) {
        let command = Command::parse(line).map_err(ErrorKind::from).transpose();
        if let Some(line) = command {
            hub.handle(Inbound::Line {
                id: id(n),
                line,
                received: Instant::now(),
            });
        }
    }

    fn hub_with(n: usize) -> Hub {
        let mut hub = Hub::new();
        for i in 1..=n {
            hub.handle(Inbound::Connected {
                id: id(i),
                addr: addr(),
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
        });
        assert_eq!(
            said(&mut hub)[0].1,
            "-- welcome to chat-server, guest11! you are in #lobby; type /help for commands"
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
        let mut hub = Hub::with_quiet_above(2);
        for i in 1..=2 {
            hub.handle(Inbound::Connected {
                id: id(i),
                addr: addr(),
            });
        }
        assert_eq!(
            said(&mut hub).last(),
            Some(&(1, "-- guest2 joined #lobby".to_string()))
        );
        hub.handle(Inbound::Connected {
            id: id(3),
            addr: addr(),
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
                quiet: Duration::from_secs(30),
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
        hub.handle(Inbound::Shutdown);
        let out = said(&mut hub);
        assert_eq!(
            out.iter().filter(|(_, l)| l == "-- server shutting down").count(),
            2
        );
        assert_eq!(out.iter().filter(|(_, l)| l == "<close>").count(), 2);
        hub.handle(Inbound::Connected {
            id: id(3),
            addr: addr(),
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
