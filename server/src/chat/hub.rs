//! The hub: the one owner of the chat state.
//!
//! Users, nicks and rooms live here and nowhere else, on one thread, so no
//! lock guards them: the event loop sends what clients did as [`Inbound`]
//! messages and the hub answers with [`Outbound`] ones. Because the hub
//! handles messages one at a time, every member of a room sees that room's
//! events in one order, and one sender's messages in the order sent.
//!
//! The hub speaks in [`ServerEvent`]s, never in wire lines, so a second
//! front end (IRC, TLS) can share it. Everything said to a room goes
//! through [`Hub::publish`]: that is the seam where a backplane (Redis
//! pub/sub, so several instances share rooms) would plug in, publishing to
//! one channel per room and delivering locally what comes back, which keeps
//! one order per room across instances.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use chat_protocol::{Command, ErrorKind, LeaveReason, Nick, RoomName, ServerEvent};
use crossbeam_channel::{Receiver, Sender};
use mio::Waker;

use crate::chat::messages::{ConnId, Inbound, Outbound, Released};
use crate::ops::stats::Stats;

/// How many inbound messages the hub handles before it hands its output to
/// the event loop and wakes it. Batching lets the event loop write many
/// messages to a socket in one system call; the bound keeps latency low
/// when the hub is busy.
const BATCH: usize = 256;

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
    /// Members in the order they joined.
    members: Vec<ConnId>,
}

/// The chat state and the rules that change it.
#[derive(Debug)]
pub struct Hub {
    users: HashMap<ConnId, User>,
    /// Nick key (lower case) to its owner, for uniqueness and `/msg`.
    nicks: HashMap<String, ConnId>,
    /// Room key (lower case) to room; ordered, so `/rooms` is sorted.
    rooms: BTreeMap<String, Room>,
    /// Next number to try for a guest nick.
    next_guest: u64,
    /// What the hub has to say, waiting to be handed to the event loop.
    outbox: Vec<Outbound>,
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
        rooms.insert(
            lobby.key(),
            Room {
                name: lobby,
                members: Vec::new(),
            },
        );
        Hub {
            users: HashMap::new(),
            nicks: HashMap::new(),
            rooms,
            next_guest: 1,
            outbox: Vec::new(),
            quiet_above: 0,
            line_received: None,
            shutting_down: false,
            released: Vec::new(),
        }
    }

    /// How many rooms exist, the lobby included.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Takes what the hub has said since the last call.
    pub fn take_outbox(&mut self) -> Vec<Outbound> {
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
                self.outbox.push(Outbound::Close { id });
            }
            Inbound::Connected { id, addr } => self.connect(id, addr),
            Inbound::Line { id, line, received } => {
                self.line_received = Some(received);
                self.line(id, line);
                self.line_received = None;
            }
            Inbound::Closed { id, reason } => {
                if reason == LeaveReason::SlowConsumer {
                    if let Some(user) = self.users.get(&id) {
                        log::warn!("{} {}: slow consumer, disconnected", user.addr, user.nick);
                    }
                }
                self.remove(id, reason);
                self.outbox.push(Outbound::Close { id });
            }
            Inbound::Idle { id, quiet } => {
                if self.users.contains_key(&id) {
                    self.send(
                        id,
                        ServerEvent::IdleTimeout {
                            secs: quiet.as_secs(),
                        },
                    );
                    self.remove(id, LeaveReason::Idle);
                }
                self.outbox.push(Outbound::Close { id });
            }
            Inbound::Shutdown => self.shutdown(),
        }
    }

    fn connect(&mut self, id: ConnId, addr: SocketAddr) {
        let nick = self.guest_nick();
        let lobby = RoomName::lobby();
        log::info!("connect {addr} as {nick}");
        self.nicks.insert(nick.key(), id);
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

    /// A fresh `guestN` nick that nobody has, not even by `/nick`.
    fn guest_nick(&mut self) -> Nick {
        loop {
            let n = self.next_guest;
            self.next_guest += 1;
            if let Ok(nick) = Nick::new(&format!("guest{n}")) {
                if !self.nicks.contains_key(&nick.key()) {
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
                log::debug!("{} {}: error: {error}", user.addr, user.nick);
                return self.send(id, ServerEvent::Error(error));
            }
        };
        let (nick, room, addr) = (user.nick.clone(), user.room.clone(), user.addr);
        match command {
            Command::Say(text) => {
                log::debug!("{addr} {nick}: {text}");
                self.publish_except(&room, id, ServerEvent::Said { from: nick, text });
            }
            Command::Me(text) => {
                log::debug!("{addr} {nick}: /me {text}");
                self.publish_except(&room, id, ServerEvent::Action { from: nick, text });
            }
            Command::Msg { to, text } => {
                log::debug!("{addr} {nick}: /msg {to} {text}");
                self.private(id, nick, to, text);
            }
            Command::Nick(new) => self.rename(id, nick, new),
            Command::Join(target) => self.join(id, nick, &room, target),
            Command::Who => self.who(id, &room),
            Command::Rooms => {
                let rooms = self
                    .rooms
                    .values()
                    .map(|r| (r.name.clone(), r.members.len()))
                    .collect();
                self.send(id, ServerEvent::Rooms { rooms });
            }
            Command::Help => self.send(id, ServerEvent::Help),
            Command::Quit(reason) => {
                self.remove(id, LeaveReason::Quit(reason));
                self.send(id, ServerEvent::Bye);
                self.outbox.push(Outbound::Close { id });
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
        self.nicks.remove(&old.key());
        self.nicks.insert(new.key(), id);
        let Some(user) = self.users.get_mut(&id) else {
            return;
        };
        user.nick = new.clone();
        log::info!("{} {old} is now known as {new}", user.addr);
        let room = user.room.clone();
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
        let room = self.rooms.entry(key.clone()).or_insert_with(|| Room {
            name: target,
            members: Vec::new(),
        });
        room.members.push(id);
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
        room.members.retain(|&m| m != id);
        let name = room.name.clone();
        if room.members.is_empty() && name.as_str() != RoomName::LOBBY {
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
        log::info!("disconnect {} {} ({})", user.addr, user.nick, reason.describe());
        self.released.push(Released {
            shard: id.shard,
            ip: user.addr.ip(),
        });
        self.leave_room(id, reason);
        if let Some(user) = self.users.remove(&id) {
            self.nicks.remove(&user.nick.key());
        }
    }

    fn who(&mut self, id: ConnId, room_key: &str) {
        let Some(room) = self.rooms.get(room_key) else {
            return;
        };
        let mut nicks: Vec<Nick> = room
            .members
            .iter()
            .filter_map(|m| self.users.get(m).map(|u| u.nick.clone()))
            .collect();
        nicks.sort_by_key(Nick::key);
        let room = room.name.clone();
        self.send(id, ServerEvent::Who { room, nicks });
    }

    fn shutdown(&mut self) {
        log::info!("shutting down: telling {} clients", self.users.len());
        let everyone: Vec<ConnId> = self.users.keys().copied().collect();
        self.deliver(everyone.clone(), ServerEvent::ShuttingDown);
        for id in everyone {
            self.outbox.push(Outbound::Close { id });
        }
        self.users.clear();
        self.nicks.clear();
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
        let present = room.is_some_and(|r| r.members.contains(&who));
        let members = room.map_or(0, |r| r.members.len()) + usize::from(!present);
        if self.quiet_above == 0 || members <= self.quiet_above {
            self.publish_except(room_key, who, event);
        }
    }

    /// Says `event` to everyone in the room but `except` (the sender: chat
    /// messages are never echoed).
    fn publish_except(&mut self, room_key: &str, except: ConnId, event: ServerEvent) {
        self.publish_to(room_key, Some(except), event);
    }

    fn publish_to(&mut self, room_key: &str, except: Option<ConnId>, event: ServerEvent) {
        let Some(room) = self.rooms.get(room_key) else {
            return;
        };
        // Sized once: collecting a filtered iterator would grow the list by
        // doubling, an allocation count that grows with the room.
        let mut to = Vec::with_capacity(room.members.len());
        to.extend(room.members.iter().copied().filter(|&m| Some(m) != except));
        self.deliver(to, event);
    }

    fn send(&mut self, id: ConnId, event: ServerEvent) {
        self.deliver(vec![id], event);
    }

    fn deliver(&mut self, to: Vec<ConnId>, event: ServerEvent) {
        if !to.is_empty() {
            let since = self.line_received;
            self.outbox.push(Outbound::Deliver {
                to,
                event: Arc::new(event),
                since,
            });
        }
    }
}

/// Where the hub's output for one I/O thread goes.
#[derive(Debug)]
pub struct Outlet {
    /// The I/O thread's channel.
    pub sender: Sender<Outbound>,
    /// Wakes the I/O thread once output is waiting.
    pub waker: Arc<Waker>,
}

/// Runs the hub on the current thread until every sender of [`Inbound`]
/// messages has gone (the I/O threads and the acceptor, once they have
/// stopped). After each batch of messages, the acceptor hears which
/// connections left the chat, and then its output goes to the I/O threads
/// that own the recipients, each woken once: so by the time anyone reads
/// that a user left, their place is free. `stats` learns the number of
/// rooms.
pub fn run(
    mut hub: Hub,
    inbound: Receiver<Inbound>,
    outlets: &[Outlet],
    released: &Sender<Released>,
    stats: &Stats,
) {
    let mut woken = vec![false; outlets.len()];
    while let Ok(first) = inbound.recv() {
        hub.handle(first);
        for message in inbound.try_iter().take(BATCH) {
            hub.handle(message);
        }
        stats.set_rooms(hub.room_count());
        for place in hub.take_released() {
            // The acceptor is only gone once the server is shutting down.
            let _ = released.send(place);
        }
        for message in hub.take_outbox() {
            route(message, outlets, &mut woken);
        }
        for (outlet, woken) in outlets.iter().zip(woken.iter_mut()) {
            if std::mem::take(woken) {
                if let Err(e) = outlet.waker.wake() {
                    log::error!("cannot wake an I/O thread: {e}");
                }
            }
        }
    }
}

/// Sends `message` to the I/O threads it concerns: a delivery is split by
/// thread (one list of recipients each, the event shared), a close goes to
/// the owner of the connection. A thread that has stopped is skipped.
fn route(message: Outbound, outlets: &[Outlet], woken: &mut [bool]) {
    let mut send = |shard: usize, message: Outbound| {
        if let (Some(outlet), Some(woken)) = (outlets.get(shard), woken.get_mut(shard)) {
            // A thread only goes away at the end of a shutdown, when
            // nothing more is due to it.
            let _ = outlet.sender.send(message);
            *woken = true;
        }
    };
    match message {
        Outbound::Close { id } => send(id.shard, message),
        // Most deliveries (replies, errors, private messages, small rooms
        // on one thread) go to one thread: sent as they are.
        Outbound::Deliver { to, event, since } => match sole_shard(&to) {
            Some(shard) => send(shard, Outbound::Deliver { to, event, since }),
            None => {
                for (shard, to) in split_by_shard(to, outlets.len()).into_iter().enumerate() {
                    if !to.is_empty() {
                        let event = Arc::clone(&event);
                        send(shard, Outbound::Deliver { to, event, since });
                    }
                }
            }
        },
    }
}

/// `to` as one list per I/O thread, in order. Each list is sized once, so
/// the allocations do not grow with the number of recipients.
fn split_by_shard(to: Vec<ConnId>, shards: usize) -> Vec<Vec<ConnId>> {
    let mut counts = vec![0; shards];
    for id in &to {
        if let Some(count) = counts.get_mut(id.shard) {
            *count += 1;
        }
    }
    let mut by_shard: Vec<Vec<ConnId>> = counts.into_iter().map(Vec::with_capacity).collect();
    for id in to {
        if let Some(list) = by_shard.get_mut(id.shard) {
            list.push(id);
        }
    }
    by_shard
}

/// The I/O thread of every recipient in `to`, if they all have the same.
fn sole_shard(to: &[ConnId]) -> Option<usize> {
    let (first, rest) = to.split_first()?;
    rest.iter()
        .all(|id| id.shard == first.shard)
        .then_some(first.shard)
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

    /// The outbox as (recipient, line text) pairs, one per recipient.
    fn said(hub: &mut Hub) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for message in hub.take_outbox() {
            match message {
                Outbound::Deliver { to, event, .. } => {
                    for line in event.lines() {
                        for r in &to {
                            out.push((r.slot, line.to_string()));
                        }
                    }
                }
                Outbound::Close { id } => out.push((id.slot, "<close>".to_string())),
            }
        }
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
        hub.handle(Inbound::Idle {
            id: id(1),
            quiet: std::time::Duration::from_secs(30),
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

    /// The I/O threads' ends of the hub's outlets, with their polls.
    fn outlets(n: usize) -> (Vec<Outlet>, Vec<Receiver<Outbound>>, Vec<mio::Poll>) {
        let (mut outlets, mut receivers, mut polls) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let poll = mio::Poll::new().unwrap();
            let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).unwrap());
            let (sender, receiver) = crossbeam_channel::unbounded();
            outlets.push(Outlet { sender, waker });
            receivers.push(receiver);
            polls.push(poll);
        }
        (outlets, receivers, polls)
    }

    #[test]
    fn a_delivery_is_split_by_io_thread_and_shares_one_event() {
        let (outlets, receivers, _polls) = outlets(2);
        let mut woken = [false; 2];
        let event = Arc::new(ServerEvent::ShuttingDown);
        let message = Outbound::Deliver {
            to: vec![id(1), id(2), id(3), id(4)],
            event: Arc::clone(&event),
            since: None,
        };
        route(message, &outlets, &mut woken);
        assert_eq!(woken, [true, true]);
        for (shard, expected) in [(0, [2, 4]), (1, [1, 3])] {
            match receivers[shard].try_recv() {
                Ok(Outbound::Deliver {
                    to, event: shared, ..
                }) => {
                    let slots: Vec<usize> = to.iter().map(|id| id.slot).collect();
                    assert_eq!(slots, expected, "shard {shard}");
                    assert!(Arc::ptr_eq(&shared, &event), "shared, not copied");
                }
                other => panic!("shard {shard} got {other:?}"),
            }
        }
        route(Outbound::Close { id: id(3) }, &outlets, &mut woken);
        assert!(matches!(receivers[1].try_recv(), Ok(Outbound::Close { id: closed }) if closed == id(3)));
        assert!(
            receivers[0].try_recv().is_err(),
            "only the owner hears of a close"
        );
    }
}
