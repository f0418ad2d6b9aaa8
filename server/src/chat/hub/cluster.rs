//! The hub's side of the cluster: what it sends the cluster's command
//! thread, and what it does with what the cluster hears.
//!
//! The hub never waits on Redis: it hands commands over with `try_send`
//! (a full queue counts as a lost link) and acts on the answers when they
//! come back as [`Inbound::Cluster`](crate::chat::messages::Inbound::Cluster).
//! While the link is up, a room event is not delivered when it is said
//! but when it comes back from Redis, numbered, through the [`Orderer`],
//! so every instance delivers a room's events in one order; while it is
//! down, the hub works as if alone (the old, local path) and tells its
//! users so.
//!
//! Nothing said here is lost when the link fails under it, a full command
//! queue included (Redis not keeping up with a burst): the hub keeps each
//! room event it sent until it comes back ([`Link`]'s `outstanding`), and
//! on taking the link-lost path delivers those here at once, in the order
//! they were said, before anything said after; if Redis runs them all the
//! same, they come back and are skipped. The other way to lose nothing,
//! backpressure (the hub stops reading while the queue is full), would
//! make every user's input wait on Redis, which the hub must never do.

use std::collections::HashMap;
use std::sync::Arc;

use chat_protocol::{
    ErrorKind, HistoryEntry, LeaveReason, Member, Nick, Page, RoomName, ServerEvent, Style, WhoEntry,
};
use crossbeam_channel::{Sender, TrySendError};

use super::{Hub, MAX_WHO};
use crate::chat::messages::ConnId;
use crate::chat::room::Room;
use crate::cluster::order::{Orderer, Step};
use crate::cluster::{Action, Asked, ClusterEvent, Command, Envelope, Part, Purpose, RoomEvent};

/// Lines held behind a user's request that waits for Redis, each with
/// when it was read.
type HeldLines = std::collections::VecDeque<(
    Result<crate::chat::request::Request, ErrorKind>,
    std::time::Instant,
)>;

/// A local user waiting for their join to come back.
#[derive(Debug, Clone)]
struct Joining {
    /// Who.
    id: ConnId,
    /// What they are told first (the welcome, or that they joined).
    first: ServerEvent,
    /// Whether they asked for the member list (IRC).
    names: bool,
}

/// What a room event leaves in the room's history: a line or an action
/// (not a notice, nor anything else).
fn history_entry(event: &RoomEvent) -> Option<HistoryEntry> {
    match event {
        RoomEvent::Said {
            from,
            text,
            style,
            at,
            ..
        } if *style != Style::Notice => Some(HistoryEntry {
            at: *at,
            from: from.clone(),
            text: text.clone(),
            action: *style == Style::Action,
        }),
        _ => None,
    }
}

/// The claim a `/nick` from `old` makes.
pub(super) fn rename_from(old: &Nick) -> Purpose {
    Purpose::Rename { old: old.clone() }
}

/// Ask for the next block of guest numbers when this few are left.
const GUESTS_LOW: u64 = 25;

/// Where the guest numbers of an instance that could not reserve any
/// start (at random, between this and twice this): far above what the
/// cluster's counter reaches.
const OFFLINE_GUESTS: u64 = 1_000_000_000;

/// The most lines held behind one user's request that waits for Redis
/// (see [`Hub::cluster_hold`]): a round trip to Redis is well under a
/// millisecond, and flood control lets a client send 50 lines at once.
const MAX_HELD_LINES: usize = 256;

/// The most lines remembered as delivered here when the link failed
/// (see [`Link::unpublished`]); past it the oldest are forgotten.
const MAX_UNPUBLISHED: usize = 65_536;

/// The most room events kept while on their way through Redis (see
/// [`Link::outstanding`]): the command queue, a round trip's batch and
/// the events on their way back, with room to spare. Only an event that
/// never comes back (none does, short of a lost link) could stay, so past
/// it the oldest are forgotten.
const MAX_OUTSTANDING: usize = 65_536;

/// The hub's view of the cluster.
#[derive(Debug)]
pub struct Link {
    /// This instance's id (see [`crate::cluster::instance_id`]).
    instance: String,
    /// To the command thread.
    commands: Sender<Command>,
    /// Each room's place in its sequence.
    orderer: Orderer<Envelope>,
    /// The command connection is up.
    commands_up: bool,
    /// The subscription is up.
    subscriber_up: bool,
    /// A catch-up from the streams is on its way.
    catching_up: bool,
    /// Room events go through Redis: both connections are up and the
    /// catch-up is done. Otherwise the hub delivers locally.
    linked: bool,
    /// Local users have been told the link is lost (when it was lost, or
    /// on coming while it was down, a start without Redis included), and
    /// not yet that it is back.
    told_lost: bool,
    /// Guest numbers reserved for this instance, `next..end`.
    guests: (u64, u64),
    /// A block of guest numbers has been asked for.
    guests_asked: bool,
    /// Nick changes and registrations waiting for Redis, by connection.
    pending: HashMap<ConnId, (Nick, Purpose)>,
    /// Lines from users waiting for Redis (see [`Link::waiting`]), held
    /// until the wait ends: at most [`MAX_HELD_LINES`] per user (a line
    /// past that is handled at once). Each wait ends, with Redis's answer
    /// or with the link lost, and the user's entry with it, whether or not
    /// the user is still here.
    held: HashMap<ConnId, HeldLines>,
    /// Questions asked of Redis for a user and not answered yet (`/who`,
    /// `/rooms`, IRC's NAMES and LIST, a `/msg` to another instance), by
    /// user.
    asking: HashMap<ConnId, usize>,
    /// Numbers this instance gives the lines it publishes.
    next_id: u64,
    /// Lines this instance delivered itself because the link failed under
    /// them: Redis may have run them all the same (a frozen Redis reads
    /// what was sent once it thaws), and then they come back in a
    /// catch-up, to be skipped, not delivered twice. By number: numbers
    /// only grow, so the first is the oldest.
    unpublished: std::collections::BTreeSet<u64>,
    /// This instance's room events sent to Redis and not back yet, by
    /// number (the order they were said in): when the link is lost under
    /// them (a full command queue included), they are delivered here at
    /// once, in that order, before anything said later, so that a local
    /// user loses nothing and hears each sender in order; if Redis ran
    /// them all the same they come back, and are skipped (see
    /// [`Link::unpublished`]).
    outstanding: std::collections::BTreeMap<u64, (String, Envelope)>,
    /// Rooms whose history the catch-up on its way has replaced with their
    /// stream's: a line of this instance's own that the backlog brings and
    /// that is skipped (delivered here already) still goes back into the
    /// history, where the reload took it out.
    reloaded: std::collections::HashSet<String>,
    /// Local users who came into a room and whose join has not come back
    /// from Redis yet, by room key: they hear nothing of the room until
    /// it does (what comes before it was said before they came), and then
    /// its history, up to their join.
    joining: HashMap<String, Vec<Joining>>,
    /// What to tell a local user once one of their room events comes back
    /// from Redis (a `/nick`'s confirmation), by the event's number: so
    /// that once they have read it, everyone's view of the room has it.
    after: HashMap<u64, (ConnId, ServerEvent)>,
    /// Set around announcing a change the user is to be told of after:
    /// the next room event published carries it (see [`Link::after`]).
    confirm_next: Option<(ConnId, ServerEvent)>,
    /// The first catch-up only notes where each room is, delivering
    /// nothing: the hub was handed over by a restart, with its rooms'
    /// history and members' view already up to date, so the streams'
    /// lines would all be repeats. (Lines said during the hand-over
    /// itself are not replayed: a gap of a second or so.)
    skip_first_backlog: bool,
    /// Told once the link is first up and caught up, so that the server
    /// starts accepting users only then (see [`crate::server`]).
    ready: Option<Sender<()>>,
    /// The number of the last topic change taken here, by room key (only
    /// for rooms this instance has): a topic read from Redis (see
    /// [`Command::RoomState`]) older than it is not taken (a change can
    /// overtake the read on its way to the hub).
    topic_seqs: HashMap<String, u64>,
    /// Rooms whose settings and bans are being read from Redis (see
    /// [`Command::RoomState`]), with the bans and settings changes
    /// delivered here meanwhile (at most [`MAX_READ_CHANGES`]): the read
    /// replaces the room's, then those of them later than the read are
    /// applied again, so that neither the read nor a change is lost.
    state_reads: HashMap<String, Vec<(u64, RoomEvent)>>,
    /// Users whose join of a room no one here is in waits for the room's
    /// state to be read (its bans and key), by room key.
    joins_reading: HashMap<String, Vec<ConnId>>,
    /// Rooms whose state was just read for a join: the join asked again
    /// goes ahead without reading it once more.
    state_fresh: std::collections::HashSet<String>,
}

/// The most moderation changes kept for one room while its state is read
/// from Redis (a round trip): past it, the oldest are forgotten.
const MAX_READ_CHANGES: usize = 1024;

impl Link {
    /// The hub's side of a cluster, talking to the command thread through
    /// `commands`, with the guest numbers reserved at start (if Redis
    /// could be reached).
    ///
    /// `ready` hears once the link is first up and the history caught up.
    pub fn new(
        instance: String,
        commands: Sender<Command>,
        guests: Option<(u64, u64)>,
        ready: Option<Sender<()>>,
    ) -> Link {
        Link {
            instance,
            commands,
            orderer: Orderer::default(),
            commands_up: false,
            subscriber_up: false,
            catching_up: false,
            linked: false,
            told_lost: false,
            guests: guests.unwrap_or((0, 0)),
            guests_asked: false,
            pending: HashMap::new(),
            held: HashMap::new(),
            asking: HashMap::new(),
            next_id: 0,
            unpublished: std::collections::BTreeSet::new(),
            outstanding: std::collections::BTreeMap::new(),
            reloaded: std::collections::HashSet::new(),
            joining: HashMap::new(),
            after: HashMap::new(),
            confirm_next: None,
            skip_first_backlog: false,
            ready,
            topic_seqs: HashMap::new(),
            state_reads: HashMap::new(),
            joins_reading: HashMap::new(),
            state_fresh: std::collections::HashSet::new(),
        }
    }

    /// Remembers that the event numbered `id` was delivered here without
    /// Redis, so that it is skipped if it comes back.
    fn delivered_here(&mut self, id: u64) {
        if self.unpublished.len() >= MAX_UNPUBLISHED {
            self.unpublished.pop_first();
        }
        self.unpublished.insert(id);
    }

    /// Whether `id` has a request waiting for Redis whose answer must come
    /// before anything they asked after it: a nick claim or registration,
    /// a join not back yet, or a question.
    fn waiting(&self, id: ConnId) -> bool {
        self.pending.contains_key(&id)
            || self.asking.get(&id).is_some_and(|n| *n > 0)
            || self.joining.values().any(|w| w.iter().any(|j| j.id == id))
    }

    /// A question asked for `id` was answered.
    fn answered(&mut self, id: ConnId) {
        if let Some(n) = self.asking.get_mut(&id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.asking.remove(&id);
            }
        }
    }

    /// Keeps a room event sent to Redis until it comes back.
    fn sent(&mut self, room: &str, envelope: Envelope) {
        if self.outstanding.len() >= MAX_OUTSTANDING {
            self.outstanding.pop_first();
        }
        self.outstanding.insert(envelope.id, (room.to_string(), envelope));
    }

    /// The next reserved guest number, asking for more when few are left.
    fn next_guest(&mut self) -> Option<u64> {
        let (next, end) = self.guests;
        if end.saturating_sub(next) <= GUESTS_LOW && !self.guests_asked {
            self.guests_asked = self.commands.try_send(Command::GuestBlock).is_ok();
        }
        (next < end).then(|| {
            self.guests.0 = next.saturating_add(1);
            next
        })
    }
}

impl Hub {
    /// Joins the hub to a cluster.
    pub fn attach_cluster(&mut self, link: Link) {
        if link.guests.0 >= link.guests.1 {
            // No guest numbers reserved (Redis was not reached at start):
            // until a block comes, numbers from a random place far above
            // the cluster's counter, so as not to collide with another
            // instance's guests.
            use std::hash::{BuildHasher, Hasher};
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(self.next_guest);
            self.next_guest = OFFLINE_GUESTS.saturating_add(hasher.finish() % OFFLINE_GUESTS);
        }
        let mut link = link;
        link.skip_first_backlog = !self.users.is_empty();
        self.cluster = Some(link);
        // Users a restart handed over keep their nicks and rooms: one
        // command for them all, however many.
        if self.users.is_empty() {
            return;
        }
        let nicks: Vec<Nick> = self.users.values().map(|u| u.nick.clone()).collect();
        let presence: Vec<(RoomName, Nick)> = self
            .users
            .values()
            .flat_map(|u| {
                u.rooms.iter().filter_map(|key| {
                    let room = self.rooms.get(&**key)?;
                    Some((room.name.clone(), u.nick.clone()))
                })
            })
            .collect();
        self.tell_cluster(Command::TakeOver { nicks, presence });
    }

    /// Whether room events go through Redis now.
    pub(super) fn cluster_linked(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.linked)
    }

    /// Sends the command thread `command`, without waiting; a full or
    /// closed queue is a lost link. False if it was not sent.
    fn tell_cluster(&mut self, command: Command) -> bool {
        let Some(cluster) = &self.cluster else { return false };
        match cluster.commands.try_send(command) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.link_lost("the command queue is full");
                false
            }
        }
    }

    /// The seam in [`Hub::publish`]: while linked, a room event that can
    /// cross goes to Redis, and comes back to be delivered; otherwise it is
    /// handed back for local delivery.
    pub(super) fn cluster_publish(
        &mut self,
        room_key: &str,
        except: Option<ConnId>,
        event: ServerEvent,
    ) -> Option<ServerEvent> {
        if !self.cluster_linked() {
            return Some(event);
        }
        let crossing = match &event {
            ServerEvent::NickChanged { old, new } => match self.rooms.get(room_key) {
                Some(room) => RoomEvent::NickChanged {
                    room: room.name.clone(),
                    old: old.clone(),
                    new: new.clone(),
                },
                None => return Some(event),
            },
            other => match RoomEvent::from_event(other, (self.settings.clock)()) {
                Some(crossing) => crossing,
                None => return Some(event),
            },
        };
        if self.publish_crossing(room_key, except, crossing) {
            None
        } else {
            // The link is lost (what was on its way has been delivered
            // here): this one too, after it.
            Some(event)
        }
    }

    /// Sends a room event to Redis, kept until it comes back; false if it
    /// could not be sent (the link is lost now).
    fn publish_crossing(&mut self, room_key: &str, except: Option<ConnId>, crossing: RoomEvent) -> bool {
        let Some(c) = self.cluster.as_mut() else { return false };
        c.next_id = c.next_id.wrapping_add(1);
        if let Some(confirm) = c.confirm_next.take() {
            c.after.insert(c.next_id, confirm);
        }
        let envelope = Envelope {
            origin: c.instance.clone(),
            id: c.next_id,
            except: except.map(|c| (c.shard, c.slot, c.serial)),
            event: crossing,
        };
        let kept = envelope.clone();
        let command = Command::Publish {
            room: room_key.to_string(),
            envelope,
        };
        if self.tell_cluster(command) {
            if let Some(c) = self.cluster.as_mut() {
                c.sent(room_key, kept);
            }
            true
        } else {
            false
        }
    }

    /// A moderation change made here: with the link up it goes through
    /// Redis (true), to be applied when it comes back, here as everywhere
    /// (see [`Hub::apply_change`]); false when the hub applies it alone.
    pub(super) fn cluster_publish_change(&mut self, room_key: &str, change: &RoomEvent) -> bool {
        self.cluster_linked() && self.publish_crossing(room_key, None, change.clone())
    }

    /// An operator named a nick not in the room here: with the link up,
    /// the room's members in the cluster are asked for, and the answer
    /// carries `action` out or says the nick is not in the room (true);
    /// false when the hub answers alone.
    pub(super) fn cluster_ask_target(
        &mut self,
        id: ConnId,
        room_key: &str,
        whom: Nick,
        action: Action,
    ) -> bool {
        self.cluster_who(id, room_key, Asked::Target { whom, action })
    }

    /// The answer to an [`Asked::Target`]: the action is carried out if the
    /// nick is among the room's members in the cluster (in any case) and
    /// the one who asked still operates the room; otherwise the error they
    /// would have had on one server.
    fn cluster_target(
        &mut self,
        id: ConnId,
        room_key: &str,
        whom: Nick,
        action: Action,
        nicks: Option<Vec<Nick>>,
    ) {
        let Some(room) = self.rooms.get(room_key) else { return };
        let name = room.name.clone();
        if !room.is_op(id) {
            return self.send(id, ServerEvent::Error(ErrorKind::NotOperator(name)));
        }
        let wanted = whom.key();
        let found = nicks
            .unwrap_or_default()
            .into_iter()
            .find(|n| n.key() == wanted)
            .or_else(|| {
                self.local_member(room_key, &whom)
                    .and_then(|m| self.users.get(&m))
                    .map(|u| u.nick.clone())
            });
        match found {
            Some(nick) => self.announce_action(room_key, nick, action),
            None => self.send(
                id,
                ServerEvent::Error(ErrorKind::NotInTheRoom {
                    nick: whom,
                    room: name,
                }),
            ),
        }
    }

    /// A member of a room changed nick: presence follows.
    pub(super) fn cluster_renamed(&mut self, room: &RoomName, old: &Nick, new: &Nick) {
        if self.cluster.is_none() {
            return;
        }
        self.tell_cluster(Command::Leave {
            room: room.key(),
            nick: old.clone(),
        });
        self.tell_cluster(Command::Join {
            room: room.clone(),
            nick: new.clone(),
        });
    }

    /// Holds a line from `id` while a request of theirs waits for Redis
    /// (a nick claim or registration, a join, a question: see
    /// [`Link::waiting`]), so that what they asked for next is answered
    /// after it, as on one server; hands it back otherwise.
    pub(super) fn cluster_hold(
        &mut self,
        id: ConnId,
        line: Result<crate::chat::request::Request, ErrorKind>,
        received: std::time::Instant,
    ) -> Option<(
        Result<crate::chat::request::Request, ErrorKind>,
        std::time::Instant,
    )> {
        let Some(c) = self.cluster.as_mut() else { return Some((line, received)) };
        if !c.waiting(id) && !c.held.contains_key(&id) {
            return Some((line, received));
        }
        let held = c.held.entry(id).or_default();
        if held.len() >= MAX_HELD_LINES {
            // Flood control keeps a client far below this; past it, a
            // line is handled at once rather than kept.
            return Some((line, received));
        }
        held.push_back((line, received));
        None
    }

    /// Handles the lines held behind `id`'s requests, once none waits any
    /// more, in the order sent; one that waits again holds the rest.
    fn release_held(&mut self, id: ConnId) {
        let Some(c) = self.cluster.as_mut() else { return };
        if c.waiting(id) {
            return;
        }
        let Some(mut held) = c.held.remove(&id) else { return };
        while let Some((line, received)) = held.pop_front() {
            self.handle(crate::chat::messages::Inbound::Line { id, line, received });
            let Some(c) = self.cluster.as_mut() else { return };
            if c.waiting(id) || c.held.contains_key(&id) {
                // Waiting again. What the line just handled put back
                // itself (a join asked again once the room's state is
                // read: see `cluster_read_before_join`) goes first; then
                // what is left.
                let mut again = c.held.remove(&id).unwrap_or_default();
                again.append(&mut held);
                c.held.insert(id, again);
                return;
            }
        }
    }

    /// Counts a question asked of Redis for `id`, if it was sent.
    fn asked(&mut self, id: ConnId, sent: bool) -> bool {
        if sent {
            if let Some(c) = self.cluster.as_mut() {
                *c.asking.entry(id).or_default() += 1;
            }
        }
        sent
    }

    /// A question asked for `id` was answered: their held lines go on if
    /// nothing else holds them.
    fn question_answered(&mut self, id: ConnId) {
        if let Some(c) = self.cluster.as_mut() {
            c.answered(id);
        }
        self.release_held(id);
    }

    /// A local user came into a room: their join goes through Redis (told
    /// to the room unless it is quiet), and until it comes back they hear
    /// nothing of the room; then its history. True if so; false when the
    /// hub goes on alone (announcing and replaying at once).
    pub(super) fn cluster_join(
        &mut self,
        room_key: &str,
        id: ConnId,
        joined: &ServerEvent,
        first: ServerEvent,
        names: bool,
    ) -> bool {
        if !self.cluster_linked() {
            return false;
        }
        let ServerEvent::Joined { nick, room } = joined else { return false };
        let members = self.rooms.get(room_key).map_or(0, Room::len);
        if members == 1 && room_key == RoomName::lobby().key() {
            // The lobby's first member here: this instance may not know
            // its topic (set while no one was in it here, or before this
            // process started). Read before the join is published, so the
            // answer is here before the join comes back; only a change
            // delivered after this counts against it. (Any other room's
            // state was read before its first member here was let in: see
            // `cluster_read_before_join`, the only way in but the lobby.)
            if let Some(c) = self.cluster.as_mut() {
                c.topic_seqs.remove(room_key);
                c.state_reads.insert(room_key.to_string(), Vec::new());
            }
            let asked = self.tell_cluster(Command::RoomState {
                room: room_key.to_string(),
            });
            if !asked {
                // The link was just lost: the hub goes on alone.
                return false;
            }
        }
        let Some(c) = self.cluster.as_mut() else { return false };
        c.next_id = c.next_id.wrapping_add(1);
        let envelope = Envelope {
            origin: c.instance.clone(),
            id: c.next_id,
            except: Some((id.shard, id.slot, id.serial)),
            event: RoomEvent::Joined {
                room: room.clone(),
                nick: nick.clone(),
                quiet: !self.announces(members),
                // As the hub alone decides it: what counts if the link is
                // lost before the join comes back. With the link up, the
                // publishing script decides (see `cluster::link`).
                first: members == 1 && room.as_str() != RoomName::LOBBY,
            },
        };
        let kept = envelope.clone();
        let sent = self.tell_cluster(Command::Publish {
            room: room_key.to_string(),
            envelope,
        });
        if sent {
            // The operator of a room is the first member in the whole
            // cluster, which the join's coming back says.
            if let Some(room) = self.rooms.get_mut(room_key) {
                room.set_role(id, chat_protocol::Role::Op, false);
            }
            if let Some(c) = self.cluster.as_mut() {
                c.sent(room_key, kept);
                c.joining
                    .entry(room_key.to_string())
                    .or_default()
                    .push(Joining { id, first, names });
            }
        }
        sent
    }

    /// A join of a room no one here is in, with the link up: its state
    /// (bans, key, settings, topic) is read from Redis first, with the
    /// user's later lines held; the join, put first among them, is asked
    /// again once the answer is in. True if so; false when the join goes
    /// on now (the room has members here, whose copy of its state is kept
    /// up to date; it was just read; the lobby; the link down).
    pub(super) fn cluster_read_before_join(
        &mut self,
        id: ConnId,
        room_key: &str,
        join: crate::chat::request::Request,
    ) -> bool {
        if !self.cluster_linked()
            || room_key == RoomName::lobby().key()
            || self.rooms.get(room_key).is_some_and(|r| !r.is_empty())
        {
            return false;
        }
        let Some(c) = self.cluster.as_mut() else { return false };
        if c.state_fresh.remove(room_key) {
            return false;
        }
        let reading = c.joins_reading.contains_key(room_key);
        if !reading {
            c.state_reads.insert(room_key.to_string(), Vec::new());
            c.topic_seqs.remove(room_key);
            if !self.tell_cluster(Command::RoomState {
                room: room_key.to_string(),
            }) {
                return false;
            }
        }
        let Some(c) = self.cluster.as_mut() else { return false };
        c.joins_reading.entry(room_key.to_string()).or_default().push(id);
        c.held
            .entry(id)
            .or_default()
            .push_front((Ok(join), std::time::Instant::now()));
        self.asked(id, true)
    }

    /// A room's state as read from Redis: taken (see [`Hub::topic_read`]
    /// and [`Hub::moderation_read`]), and the joins that waited for it
    /// asked again.
    fn room_state_read(
        &mut self,
        room_key: &str,
        topic: Option<(u64, chat_protocol::Topic)>,
        moderation: Option<(
            u64,
            chat_protocol::RoomSettings,
            Vec<chat_protocol::moderation::BanInfo>,
        )>,
    ) {
        let waiting = self
            .cluster
            .as_mut()
            .and_then(|c| c.joins_reading.remove(room_key))
            .unwrap_or_default();
        let name = waiting.iter().find_map(|id| {
            self.cluster
                .as_ref()
                .and_then(|c| c.held.get(id))
                .and_then(|held| held.front())
                .and_then(|(line, _)| match line {
                    Ok(crate::chat::request::Request::Join { room, .. }) if room.key() == room_key => {
                        Some(room.clone())
                    }
                    _ => None,
                })
        });
        if let Some(name) = name {
            // The room, to take what was read (dropped again below if no
            // one gets in).
            self.rooms
                .entry(room_key.to_string())
                .or_insert_with(|| Room::new(name));
        }
        self.topic_read(room_key, topic);
        self.moderation_read(room_key, moderation);
        if waiting.is_empty() {
            return;
        }
        for id in waiting {
            if let Some(c) = self.cluster.as_mut() {
                c.state_fresh.insert(room_key.to_string());
            }
            self.question_answered(id);
        }
        if let Some(c) = self.cluster.as_mut() {
            c.state_fresh.remove(room_key);
        }
        self.forget_if_empty(room_key);
    }

    /// The join of a local user to `room_key` came back (or the link was
    /// lost): they are told they are in, and hear the room from now on,
    /// starting with its topic, members (if asked) and history.
    fn joined(&mut self, room_key: &str, joining: Joining) {
        let Joining { id, first, names } = joining;
        let Some(room) = self.rooms.get(room_key) else { return };
        if !room.has_member(id) {
            return;
        }
        let replay = room.history.last(self.settings.replay_lines);
        let name = room.name.clone();
        let topic = room.topic.clone();
        self.send(id, first);
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

    /// A user just welcomed while the link is down (or not up yet: a
    /// start with `--cluster-optional`) is told so, as those already here
    /// were, and will be told when it is back.
    pub(super) fn cluster_tell_newcomer(&mut self, id: ConnId) {
        let Some(c) = self.cluster.as_mut() else { return };
        if c.linked {
            return;
        }
        c.told_lost = true;
        self.send(id, ServerEvent::ClusterLink { up: false });
    }

    /// A guest number from the cluster's reserve, if in a cluster.
    pub(super) fn cluster_guest(&mut self) -> Option<u64> {
        self.cluster.as_mut().and_then(Link::next_guest)
    }

    /// Claims a nick given or kept without waiting (a guest nick, or any
    /// nick while the link is down): a refusal comes back as a lost claim.
    pub(super) fn cluster_keep(&mut self, id: ConnId, nick: &Nick, guest: bool) {
        if self.cluster.is_some() {
            let purpose = if guest && self.cluster_linked() {
                Purpose::Guest
            } else {
                Purpose::Keep
            };
            self.tell_cluster(Command::Claim {
                conn: id,
                nick: nick.clone(),
                purpose,
            });
        }
    }

    /// Lets a nick go.
    pub(super) fn cluster_release(&mut self, nick: &Nick) {
        if self.cluster.is_some() {
            self.tell_cluster(Command::Release { key: nick.key() });
        }
    }

    /// Says a local user is in (or has left) a room, for presence.
    pub(super) fn cluster_presence(&mut self, room: &RoomName, id: ConnId, nick: &Nick, present: bool) {
        let Some(c) = self.cluster.as_mut() else { return };
        if !present {
            let key = room.key();
            if let Some(waiting) = c.joining.get_mut(&key) {
                waiting.retain(|j| j.id != id);
                if waiting.is_empty() {
                    c.joining.remove(&key);
                }
            }
        }
        let command = if present {
            Command::Join {
                room: room.clone(),
                nick: nick.clone(),
            }
        } else {
            Command::Leave {
                room: room.key(),
                nick: nick.clone(),
            }
        };
        self.tell_cluster(command);
    }

    /// A nick change or registration that needs the cluster's word first:
    /// asks for it and returns true (the answer finishes the job), or
    /// false when the hub may go on alone (no cluster, or the link down:
    /// then the claim is kept and made once the link is back).
    pub(super) fn cluster_claim(&mut self, id: ConnId, nick: &Nick, purpose: Purpose) -> bool {
        if !self.cluster_linked() {
            self.cluster_keep(id, nick, false);
            return false;
        }
        if self.cluster.as_ref().is_some_and(|c| c.pending.contains_key(&id)) {
            // One at a time: the later asks again once this is answered.
            self.send(id, ServerEvent::Error(ErrorKind::NickInUse(nick.clone())));
            return true;
        }
        let purpose_again = purpose.clone();
        let sent = self.tell_cluster(Command::Claim {
            conn: id,
            nick: nick.clone(),
            purpose,
        });
        if sent {
            if let Some(c) = self.cluster.as_mut() {
                c.pending.insert(id, (nick.clone(), purpose_again));
            }
            true
        } else {
            // The link was just lost: go on alone, and claim it later.
            self.cluster_keep(id, nick, false);
            false
        }
    }

    /// `/msg` to a nick not on this instance: true if the cluster takes it
    /// (the answer tells the sender).
    pub(super) fn cluster_private(
        &mut self,
        id: ConnId,
        from: &Nick,
        to: &Nick,
        text: &str,
        style: Style,
    ) -> bool {
        if !self.cluster_linked() {
            return false;
        }
        let sent = self.tell_cluster(Command::Private {
            conn: id,
            message: crate::cluster::Private {
                from: from.clone(),
                to: to.clone(),
                text: text.to_string(),
                style,
            },
        });
        self.asked(id, sent)
    }

    /// `/who` (or IRC's NAMES) across the cluster: true if the cluster
    /// takes it.
    pub(super) fn cluster_who(&mut self, id: ConnId, room_key: &str, asked: Asked) -> bool {
        let sent = self.cluster_linked()
            && self.tell_cluster(Command::Who {
                conn: id,
                room: room_key.to_string(),
                asked,
            });
        self.asked(id, sent)
    }

    /// `/rooms` (page 0: IRC's LIST) across the cluster: true if the
    /// cluster takes it.
    pub(super) fn cluster_rooms(&mut self, id: ConnId, page: Option<usize>) -> bool {
        let sent = self.cluster_linked() && self.tell_cluster(Command::Rooms { conn: id, page });
        self.asked(id, sent)
    }

    /// WHOIS of a nick no one here has: true if the cluster takes it (the
    /// answer tells the asker).
    pub(super) fn cluster_whois(&mut self, id: ConnId, asked: &Nick) -> bool {
        self.cluster_linked()
            && self.tell_cluster(Command::Whois {
                conn: id,
                nick: asked.clone(),
            })
    }

    /// The answer to a [`Command::Whois`]: what the cluster knows of a user
    /// on another instance (rooms hidden here are left out, as in
    /// `/rooms`), or that no one has the nick.
    fn cluster_whois_answer(&mut self, id: ConnId, asked: Nick, rooms: Option<Vec<RoomName>>) {
        if !self.users.contains_key(&id) {
            return;
        }
        let info = rooms.map(|rooms| chat_protocol::UserInfo {
            nick: asked.clone(),
            user: String::new(),
            realname: String::new(),
            rooms: rooms
                .into_iter()
                .filter(|name| {
                    self.rooms
                        .get(&name.key())
                        .is_none_or(|r| !r.settings.hidden || r.has_member(id))
                })
                .collect(),
            away: None,
            idle_secs: 0,
            signon: 0,
            elsewhere: true,
        });
        self.reply(id, ServerEvent::Whois { asked, info });
    }

    /// Called every turn of the hub: after the link was given up for the
    /// hub's own sake (the command queue was full) while both connections
    /// stayed up, no connection will say it is back; so the hub asks for a
    /// catch-up itself once the queue has room.
    pub fn cluster_tick(&mut self) {
        let Some(c) = self.cluster.as_ref() else { return };
        if c.commands_up && c.subscriber_up && !c.linked && !c.catching_up && !c.commands.is_full() {
            let command = self.catch_up_command();
            if let Some(c) = self.cluster.as_mut() {
                c.catching_up = c.commands.try_send(command).is_ok();
            }
        }
    }

    /// The catch-up to ask for: every room's stream past where it is, and
    /// the rooms with history here read whole, their history replaced
    /// with the stream's (the stream is the truth: after an outage every
    /// instance remembers the same). Not after a restart that handed the
    /// history over (see [`Link::skip_first_backlog`]).
    fn catch_up_command(&self) -> Command {
        let Some(c) = self.cluster.as_ref() else {
            return Command::CatchUp {
                positions: Vec::new(),
                reload: Vec::new(),
            };
        };
        let reload = if c.skip_first_backlog {
            Vec::new()
        } else {
            self.rooms
                .iter()
                .filter(|(_, room)| !room.history.is_empty())
                .map(|(key, _)| key.clone())
                .collect()
        };
        Command::CatchUp {
            positions: c.orderer.positions(),
            reload,
        }
    }

    /// A room's history becomes what its stream holds (`lines`), as read
    /// in a catch-up.
    fn reload_history(&mut self, room_key: &str, lines: Vec<(u64, Envelope)>) {
        let Some(room) = self.rooms.get_mut(room_key) else { return };
        if let Some(c) = self.cluster.as_mut() {
            c.reloaded.insert(room_key.to_string());
        }
        self.budget.evict(&mut room.history);
        for (_, envelope) in lines {
            if let Some(entry) = history_entry(&envelope.event) {
                self.budget.record(&mut room.history, entry);
            }
        }
        self.keep_history_within_budget(room_key);
    }

    /// What the cluster's threads say.
    pub(super) fn cluster_event(&mut self, event: ClusterEvent) {
        match event {
            ClusterEvent::Link { part, up } => self.link_changed(part, up),
            ClusterEvent::Line { room, seq, envelope } => {
                let steps = match self.cluster.as_mut() {
                    Some(c) => c.orderer.live(&room, seq, envelope),
                    None => return,
                };
                self.cluster_steps(steps);
            }
            ClusterEvent::Backlog { room, lines, upto } => {
                let steps = match self.cluster.as_mut() {
                    Some(c) if c.skip_first_backlog && c.catching_up => {
                        let upto = lines.last().map_or(upto, |(seq, _)| (*seq).max(upto));
                        c.orderer.backlog(&room, Vec::new(), upto)
                    }
                    Some(c) => c.orderer.backlog(&room, lines, upto),
                    None => return,
                };
                self.cluster_steps(steps);
            }
            ClusterEvent::History { room, lines } => self.reload_history(&room, lines),
            ClusterEvent::CaughtUp => self.caught_up(),
            ClusterEvent::DataLost => {
                if let Some(c) = self.cluster.as_mut() {
                    c.orderer.forget_positions();
                    c.topic_seqs.clear();
                }
            }
            ClusterEvent::RoomState {
                room,
                topic,
                moderation,
            } => self.room_state_read(&room, topic, moderation),
            ClusterEvent::Whois { conn, nick, rooms } => self.cluster_whois_answer(conn, nick, rooms),
            ClusterEvent::Unpublished { room, envelope } => {
                // It did not reach Redis: the link is failing. Everything
                // still on its way is delivered here, in order (this one
                // among it), as with the link down.
                if self.cluster_linked() {
                    self.link_lost("a line could not be published");
                }
                // Remembered as delivered here until the catch-up: a
                // frozen Redis may still run it once it thaws.
                let Some(c) = self.cluster.as_mut() else { return };
                if c.unpublished.contains(&envelope.id) && envelope.origin == c.instance {
                    return;
                }
                c.outstanding.remove(&envelope.id);
                c.delivered_here(envelope.id);
                self.deliver_crossed(&room, &envelope);
            }
            ClusterEvent::Claimed {
                conn,
                nick,
                purpose,
                won,
            } => self.claimed(conn, nick, purpose, won),
            ClusterEvent::ClaimsLost(keys) => {
                for key in keys {
                    self.claim_lost(&key);
                }
            }
            ClusterEvent::Members {
                conn,
                room,
                asked,
                nicks,
            } => {
                self.cluster_members(conn, &room, asked, nicks);
                self.question_answered(conn);
            }
            ClusterEvent::Rooms { conn, page, rooms } => {
                self.cluster_room_list(conn, page, rooms);
                self.question_answered(conn);
            }
            ClusterEvent::PrivateIn(message) => {
                let Some(&to) = self.nicks.get(message.to.key().as_str()) else { return };
                self.send(
                    to,
                    ServerEvent::PrivateFrom {
                        from: message.from,
                        text: message.text,
                        style: message.style,
                    },
                );
            }
            ClusterEvent::PrivateSent {
                conn,
                message,
                delivered,
            } => {
                if !self.users.contains_key(&conn) {
                    self.question_answered(conn);
                    return;
                }
                if delivered {
                    self.send(
                        conn,
                        ServerEvent::PrivateTo {
                            to: message.to,
                            text: message.text,
                            style: message.style,
                        },
                    );
                } else if message.style != Style::Notice {
                    self.send(conn, ServerEvent::Error(ErrorKind::NoSuchNick(message.to)));
                }
                self.question_answered(conn);
            }
            ClusterEvent::Guests { start, end } => {
                if let Some(c) = self.cluster.as_mut() {
                    c.guests = (start, end);
                    c.guests_asked = false;
                }
            }
        }
    }

    fn cluster_steps(&mut self, steps: Vec<Step<Envelope>>) {
        for step in steps {
            match step {
                Step::Deliver { room, seq, line } => {
                    // A change to a room this instance has is taken (see
                    // `deliver_crossed`); one to a room it has not is not.
                    let has_room = self.rooms.contains_key(&room);
                    if let (RoomEvent::TopicChanged { .. }, Some(c), true) =
                        (&line.event, self.cluster.as_mut(), has_room)
                    {
                        c.topic_seqs.insert(room.clone(), seq);
                    }
                    if let (RoomEvent::BanChanged { .. } | RoomEvent::SettingChanged { .. }, Some(c)) =
                        (&line.event, self.cluster.as_mut())
                    {
                        if let Some(changes) = c.state_reads.get_mut(&room) {
                            if changes.len() >= MAX_READ_CHANGES {
                                changes.remove(0);
                            }
                            changes.push((seq, line.event.clone()));
                        }
                    }
                    if !self.delivered_already(&line) {
                        self.deliver_crossed(&room, &line);
                    } else if self.cluster.as_ref().is_some_and(|c| c.reloaded.contains(&room)) {
                        // Said here already, but the history was reloaded
                        // from before it.
                        if let (RoomEvent::Said { room: name, .. }, Some(entry)) =
                            (&line.event, history_entry(&line.event))
                        {
                            self.record_crossed(&room, name, entry);
                        }
                    }
                }
                Step::Fill { room, from, to } => {
                    self.tell_cluster(Command::Fill { room, from, to });
                }
            }
        }
    }

    /// A room's topic as kept in Redis: taken unless a later change has
    /// been delivered here already (the same one is taken again: the room
    /// may have been dropped here since, and its topic with it).
    fn topic_read(&mut self, room_key: &str, read: Option<(u64, chat_protocol::Topic)>) {
        let Some((seq, topic)) = read else { return };
        let Some(c) = self.cluster.as_mut() else { return };
        if c.topic_seqs.get(room_key).is_some_and(|&known| known > seq) {
            return;
        }
        let Some(room) = self.rooms.get_mut(room_key) else { return };
        c.topic_seqs.insert(room_key.to_string(), seq);
        room.topic = Some(topic);
    }

    /// A room's settings and bans as kept in Redis (see
    /// [`Command::RoomState`]): they become the room's here, and the
    /// changes delivered here since the read was asked that are later than
    /// it are applied again on top. Nothing kept (never changed in the
    /// cluster) or Redis not asked: the room keeps what it has.
    fn moderation_read(
        &mut self,
        room_key: &str,
        read: Option<(
            u64,
            chat_protocol::RoomSettings,
            Vec<chat_protocol::moderation::BanInfo>,
        )>,
    ) {
        let Some(c) = self.cluster.as_mut() else { return };
        let changes = c.state_reads.remove(room_key).unwrap_or_default();
        let Some((seq, settings, bans)) = read else { return };
        let Some(room) = self.rooms.get_mut(room_key) else { return };
        room.settings = settings;
        room.bans = bans;
        for (_, change) in changes.iter().filter(|(at, _)| *at > seq) {
            self.apply_state(room_key, change);
        }
    }

    /// Whether `line` is one of this instance's own that it delivered
    /// itself when the link failed (forgotten once seen again).
    fn delivered_already(&mut self, line: &Envelope) -> bool {
        let Some(c) = self.cluster.as_mut() else { return false };
        if c.unpublished.is_empty() || line.origin != c.instance {
            return false;
        }
        c.unpublished.remove(&line.id)
    }

    /// A room event in its place in the room's order: into the history,
    /// and to the room's members here (but the one it leaves out).
    fn deliver_crossed(&mut self, room_key: &str, envelope: &Envelope) {
        let instance = self
            .cluster
            .as_ref()
            .map(|c| c.instance.as_str())
            .unwrap_or_default();
        let except = envelope.except_here(instance);
        let from_here = envelope.origin == instance;
        if from_here {
            if let Some(c) = self.cluster.as_mut() {
                c.outstanding.remove(&envelope.id);
            }
        }
        match &envelope.event {
            RoomEvent::Said { room, .. } => {
                if let Some(entry) = history_entry(&envelope.event) {
                    self.record_crossed(room_key, room, entry);
                }
            }
            RoomEvent::TopicChanged { topic, .. } if !from_here => {
                if let Some(room) = self.rooms.get_mut(room_key) {
                    room.topic = Some(topic.clone());
                }
            }
            _ => {}
        }
        let quiet = matches!(envelope.event, RoomEvent::Joined { quiet: true, .. });
        if envelope.event.is_moderation() {
            // Applied here as on every instance, the origin included.
            self.apply_change(room_key, &envelope.event);
        } else if !quiet {
            self.publish_crossed(room_key, except, envelope.event.to_event());
        }
        // Redis found the room empty in the whole cluster when it numbered
        // this join: the one who came, here, opens it (before they are told
        // they are in, so the member list they get shows it).
        if let (RoomEvent::Joined { first: true, .. }, Some(id)) = (&envelope.event, except) {
            if let Some(room) = self.rooms.get_mut(room_key) {
                if room.has_member(id) && !room.is_lobby() {
                    room.set_role(id, chat_protocol::Role::Op, true);
                }
            }
        }
        // The end of a local user's wait to hear the room.
        let arrived = match (&envelope.event, except, self.cluster.as_mut()) {
            (RoomEvent::Joined { .. }, Some(id), Some(c)) => match c.joining.get_mut(room_key) {
                Some(waiting) => {
                    let at = waiting.iter().position(|j| j.id == id);
                    let joining = at.map(|at| waiting.remove(at));
                    if waiting.is_empty() {
                        c.joining.remove(room_key);
                    }
                    joining
                }
                None => None,
            },
            _ => None,
        };
        if let Some(joining) = arrived {
            self.joined(room_key, joining);
        }
        // What the joiner asked after joining is answered now (even if
        // they were taken out of the room meanwhile).
        if let (RoomEvent::Joined { .. }, Some(id), true) = (&envelope.event, except, from_here) {
            self.release_held(id);
        }
        // What the origin's user was to be told once this came back.
        let confirm = match self.cluster.as_mut() {
            Some(c) if from_here && !c.after.is_empty() => c.after.remove(&envelope.id),
            _ => None,
        };
        if let Some((id, event)) = confirm {
            if self.users.contains_key(&id) {
                self.send(id, event);
            }
        }
    }

    /// Tells `id` `event` once the next room event published comes back
    /// from Redis (with the link down, or if none is published, at
    /// [`Hub::cluster_confirm_now`]).
    pub(super) fn cluster_confirm_after(&mut self, id: ConnId, event: ServerEvent) {
        match self.cluster.as_mut() {
            Some(c) if c.linked => c.confirm_next = Some((id, event)),
            _ => self.send(id, event),
        }
    }

    /// Tells now what [`Hub::cluster_confirm_after`] kept, if no room
    /// event took it.
    pub(super) fn cluster_confirm_now(&mut self) {
        if let Some((id, event)) = self.cluster.as_mut().and_then(|c| c.confirm_next.take()) {
            self.send(id, event);
        }
    }

    /// Says a room event that came back from Redis to the room's members
    /// here but `except` and those whose own join has not come back yet.
    pub(super) fn publish_crossed(&mut self, room_key: &str, except: Option<ConnId>, event: ServerEvent) {
        let waiting = self.cluster.as_ref().and_then(|c| c.joining.get(room_key));
        let Some(waiting) = waiting
            .filter(|w| !w.is_empty())
            .map(|w| w.iter().map(|j| j.id).collect::<Vec<_>>())
        else {
            return self.publish_local(room_key, except, event);
        };
        let Some(room) = self.rooms.get(room_key) else { return };
        let event = Arc::new(event);
        for (shard, members) in room.by_shard() {
            let hearing: Vec<ConnId> = members
                .iter()
                .copied()
                .filter(|m| Some(*m) != except && !waiting.contains(m))
                .collect();
            if !hearing.is_empty() {
                self.outbox.push((
                    shard,
                    crate::chat::messages::Outbound::Deliver {
                        to: crate::chat::messages::Recipients::Members {
                            members: Arc::new(hearing),
                            except: None,
                        },
                        event: Arc::clone(&event),
                        since: None,
                    },
                ));
            }
        }
    }

    /// Keeps a line in the room's history, making the room (empty, kept
    /// for its history) if this instance has none by that name.
    fn record_crossed(&mut self, room_key: &str, name: &RoomName, entry: HistoryEntry) {
        if !self.budget.is_on() {
            return;
        }
        let created = !self.rooms.contains_key(room_key);
        let room = self
            .rooms
            .entry(room_key.to_string())
            .or_insert_with(|| Room::new(name.clone()));
        self.budget.record(&mut room.history, entry);
        if created {
            self.budget.room_emptied(room_key, room.used_at, &room.history);
        }
        self.keep_history_within_budget(room_key);
    }

    fn link_changed(&mut self, part: Part, up: bool) {
        let Some(c) = self.cluster.as_mut() else { return };
        match part {
            Part::Commands => c.commands_up = up,
            Part::Subscriber => c.subscriber_up = up,
        }
        if !up {
            self.link_lost(match part {
                Part::Commands => "the command connection failed",
                Part::Subscriber => "the subscription failed",
            });
            return;
        }
        if c.commands_up && c.subscriber_up && !c.linked && !c.catching_up {
            c.catching_up = true;
            let command = self.catch_up_command();
            self.tell_cluster(command);
        }
    }

    /// The link is lost (or never was): the hub goes on alone and tells
    /// everyone, once.
    fn link_lost(&mut self, why: &str) {
        let Some(c) = self.cluster.as_mut() else { return };
        let was_linked = c.linked;
        c.linked = false;
        c.catching_up = false;
        c.reloaded.clear();
        c.orderer.reset();
        // What was sent and has not come back is delivered here now, in
        // the order it was said, before anything said from now on.
        let outstanding = std::mem::take(&mut c.outstanding);
        for id in outstanding.keys() {
            c.delivered_here(*id);
        }
        // Claims asked for and not answered: the answer may never come.
        // Go on as if they were granted (the claim is made again once
        // the link is back; a refusal then renames).
        let pending: Vec<(ConnId, (Nick, Purpose))> = c.pending.drain().collect();
        // Questions are answered all the same (from what this instance
        // knows, if Redis could not be asked), but one lost with the
        // connection never is: no one waits for them any more.
        c.asking.clear();
        c.joins_reading.clear();
        c.state_fresh.clear();
        if was_linked {
            log::warn!("cluster: link lost ({why}); serving local users only until it is back");
        }
        if was_linked && !c.told_lost {
            c.told_lost = true;
            let everyone: Vec<ConnId> = self.users.keys().copied().collect();
            self.deliver_many(everyone, ServerEvent::ClusterLink { up: false });
        }
        for (room, envelope) in outstanding.into_values() {
            self.deliver_crossed(&room, &envelope);
        }
        for (id, (nick, purpose)) in pending {
            if self.nick_refused(id, &nick).is_some() {
                self.send(id, ServerEvent::Error(ErrorKind::NickInUse(nick)));
            } else {
                self.grant(id, nick.clone(), purpose);
                self.cluster_keep(id, &nick, false);
            }
            self.release_held(id);
        }
        // Those waiting for their join to come back hear the room from
        // now on, locally.
        let Some(c) = self.cluster.as_mut() else { return };
        let joining: Vec<(String, Vec<Joining>)> = c.joining.drain().collect();
        let after: Vec<(ConnId, ServerEvent)> = c.after.drain().map(|(_, v)| v).collect();
        for (id, event) in after {
            if self.users.contains_key(&id) {
                self.send(id, event);
            }
        }
        for (room, waiting) in joining {
            for joining in waiting {
                // Told locally, as with the link down.
                let nick = self.users.get(&joining.id).map(|u| u.nick.clone());
                let name = self.rooms.get(&room).map(|r| r.name.clone());
                if let (Some(nick), Some(name)) = (nick, name) {
                    let id = joining.id;
                    self.joined(&room, joining);
                    self.announce_presence(&room, id, ServerEvent::Joined { nick, room: name });
                }
            }
        }
        // No one waits for Redis any more: what each user sent meanwhile
        // is handled now, in order.
        let held: Vec<ConnId> = self
            .cluster
            .as_ref()
            .map(|c| c.held.keys().copied().collect())
            .unwrap_or_default();
        for id in held {
            self.release_held(id);
        }
    }

    fn caught_up(&mut self) {
        let Some(c) = self.cluster.as_mut() else { return };
        c.catching_up = false;
        if !(c.commands_up && c.subscriber_up) {
            return;
        }
        c.linked = true;
        c.skip_first_backlog = false;
        // A block asked for while the link was down was never answered.
        c.guests_asked = false;
        let told = std::mem::take(&mut c.told_lost);
        if let Some(ready) = c.ready.take() {
            let _ = ready.send(());
        }
        let steps = c.orderer.synced();
        self.cluster_steps(steps);
        // Lines Redis ran after the link failed under them have come back
        // in the catch-up (or were held, live, until now, and skipped
        // above); the rest never reached it.
        if let Some(c) = self.cluster.as_mut() {
            c.unpublished.clear();
            c.reloaded.clear();
        }
        log::info!("cluster: linked");
        if told {
            let everyone: Vec<ConnId> = self.users.keys().copied().collect();
            self.deliver_many(everyone, ServerEvent::ClusterLink { up: true });
        }
    }

    fn claimed(&mut self, id: ConnId, nick: Nick, purpose: Purpose, won: bool) {
        if purpose == Purpose::Guest {
            if !won {
                self.claim_lost(&nick.key());
            }
            return;
        }
        let asked = match self.cluster.as_mut() {
            Some(c)
                if c.pending
                    .get(&id)
                    .is_some_and(|(a, _)| a.as_str() == nick.as_str()) =>
            {
                c.pending.remove(&id)
            }
            _ => None,
        };
        if asked.is_some() {
            self.settle_claim(id, nick, purpose, won);
            self.release_held(id);
            return;
        }
        {
            // An answer no one waits for (the link was lost meanwhile and
            // the change made locally): let the claim go only if no one
            // here has the nick.
            if won && !self.nicks.contains_key(nick.key().as_str()) {
                self.cluster_release(&nick);
            }
        }
    }

    /// The answer to a claim someone waits for.
    fn settle_claim(&mut self, id: ConnId, nick: Nick, purpose: Purpose, won: bool) {
        if !won {
            self.send(id, ServerEvent::Error(ErrorKind::NickInUse(nick)));
            return;
        }
        // Ours in Redis; is it still free here?
        if self.nick_refused(id, &nick).is_some() {
            self.cluster_release(&nick);
            self.send(id, ServerEvent::Error(ErrorKind::NickInUse(nick)));
            return;
        }
        self.grant(id, nick, purpose);
    }

    /// Does what a granted claim was for.
    fn grant(&mut self, id: ConnId, nick: Nick, purpose: Purpose) {
        match purpose {
            Purpose::Rename { old } => {
                let current = self.users.get(&id).map(|u| u.nick.clone());
                if current.as_ref().is_some_and(|c| c.as_str() == old.as_str()) {
                    self.apply_rename(id, old, nick);
                } else {
                    self.cluster_release(&nick);
                }
            }
            Purpose::Register { user, realname } => {
                if self.pending.contains_key(&id) {
                    self.apply_register(id, nick, user, realname);
                } else {
                    self.cluster_release(&nick);
                }
            }
            Purpose::Guest | Purpose::Keep => {}
        }
    }

    /// A nick this instance gave a user is held by another instance: the
    /// user becomes a guest, and is told why.
    fn claim_lost(&mut self, key: &str) {
        let Some(&id) = self.nicks.get(key) else { return };
        let Some(old) = self.users.get(&id).map(|u| u.nick.clone()) else { return };
        log::info!("cluster: {old}'s nick is held by another instance; renaming");
        self.send(id, ServerEvent::Error(ErrorKind::NickInUse(old.clone())));
        let guest = self.guest_nick();
        self.apply_rename(id, old, guest.clone());
        self.cluster_keep(id, &guest, true);
    }

    fn cluster_members(&mut self, id: ConnId, room_key: &str, asked: Asked, nicks: Option<Vec<Nick>>) {
        if !self.users.contains_key(&id) {
            return;
        }
        if let Asked::Target { whom, action } = asked {
            return self.cluster_target(id, room_key, whom, action, nicks);
        }
        let Some(nicks) = nicks else {
            // Redis could not be asked: what this instance knows.
            match asked {
                Asked::Who { page } => {
                    let _ = self.local_who(id, room_key, page);
                }
                Asked::Names { room, end } => self.names_here(id, &room, end),
                Asked::WhoList { mask } => self.who_here(id, mask),
                Asked::Target { .. } => {}
            }
            return;
        };
        let room = self.rooms.get(room_key);
        let mut nicks: Vec<(String, Nick)> = nicks.into_iter().map(|n| (n.key(), n)).collect();
        // Local members count even if their presence has not reached
        // Redis yet.
        for member in room.iter().flat_map(|r| r.members()) {
            if let Some(user) = self.users.get(&member) {
                nicks.push((user.nick.key(), user.nick.clone()));
            }
        }
        nicks.sort();
        nicks.dedup_by(|a, b| a.0 == b.0);
        let total = nicks.len();
        let member = |(key, nick): &(String, Nick)| {
            let local = self
                .nicks
                .get(key.as_str())
                .filter(|m| room.is_some_and(|r| r.has_member(**m)));
            Member {
                nick: nick.clone(),
                op: local.is_some_and(|m| room.is_some_and(|r| r.is_op(*m))),
                voice: local.is_some_and(|m| room.is_some_and(|r| r.is_voiced(*m))),
            }
        };
        match asked {
            Asked::Who { page } => {
                let Some(name) = room.map(|r| r.name.clone()) else { return };
                let (page, range) = Page::of_listing(page, total);
                let members = nicks.get(range).unwrap_or_default().iter().map(member).collect();
                self.reply(
                    id,
                    ServerEvent::Who {
                        room: name,
                        total,
                        page,
                        nicks: members,
                    },
                );
            }
            Asked::Names { room: asked, end } => {
                let name = room.map_or(asked, |r| r.name.clone());
                let members = nicks.iter().map(member).collect();
                self.reply(
                    id,
                    ServerEvent::Names {
                        room: name,
                        members,
                        end,
                    },
                );
            }
            Asked::WhoList { mask } => {
                let name = room.map(|r| r.name.clone()).or_else(|| RoomName::new(&mask).ok());
                let entries = nicks
                    .iter()
                    .take(MAX_WHO)
                    .map(|(key, nick)| {
                        // A local member as a local WHO lists them; anyone
                        // else with what presence says: the nick.
                        let local = self
                            .nicks
                            .get(key.as_str())
                            .copied()
                            .filter(|m| room.is_some_and(|r| r.has_member(*m)))
                            .and_then(|m| self.users.get(&m).map(|u| (m, u)));
                        match local {
                            Some((m, user)) => WhoEntry {
                                nick: user.nick.clone(),
                                user: user.user.clone(),
                                realname: user.realname.clone(),
                                room: name.clone(),
                                op: room.is_some_and(|r| r.is_op(m)),
                                voice: room.is_some_and(|r| r.is_voiced(m)),
                                away: user.away.is_some(),
                                elsewhere: false,
                            },
                            None => WhoEntry {
                                nick: nick.clone(),
                                user: String::new(),
                                realname: String::new(),
                                room: name.clone(),
                                op: false,
                                voice: false,
                                away: false,
                                elsewhere: true,
                            },
                        }
                    })
                    .collect();
                self.reply(
                    id,
                    ServerEvent::WhoList {
                        mask,
                        entries,
                        truncated: total > MAX_WHO,
                    },
                );
            }
            // Answered above.
            Asked::Target { .. } => {}
        }
    }

    fn cluster_room_list(&mut self, id: ConnId, page: Option<usize>, rooms: Option<Vec<(RoomName, usize)>>) {
        if !self.users.contains_key(&id) {
            return;
        }
        let Some(rooms) = rooms else {
            match page {
                None => self.local_list(id),
                Some(page) => self.local_rooms(id, page),
            }
            return;
        };
        let mut listed: std::collections::BTreeMap<String, (RoomName, usize)> = rooms
            .into_iter()
            .map(|(name, count)| (name.key(), (name, count)))
            .collect();
        // This instance's own rooms are listed even before their presence
        // reaches Redis, with at least their local count.
        for key in &self.listed {
            if let Some(room) = self.rooms.get(key) {
                let entry = listed
                    .entry(key.clone())
                    .or_insert_with(|| (room.name.clone(), 0));
                entry.1 = entry.1.max(room.len());
            }
        }
        let visible: Vec<(RoomName, usize)> = listed
            .into_iter()
            .filter(|(key, _)| {
                self.rooms
                    .get(key)
                    .is_none_or(|r| !r.settings.hidden || r.has_member(id))
            })
            .map(|(_, v)| v)
            .collect();
        let Some(page) = page else {
            // IRC's LIST: every room with members, with its topic if known
            // here.
            let rooms = visible
                .into_iter()
                .filter(|(_, members)| *members > 0)
                .map(|(name, members)| {
                    let topic = self
                        .rooms
                        .get(&name.key())
                        .and_then(|r| r.topic.as_ref())
                        .map(|t| t.text.clone());
                    chat_protocol::RoomListing { name, members, topic }
                })
                .collect();
            self.reply(id, ServerEvent::List { rooms });
            return;
        };
        let total = visible.len();
        let (page, range) = Page::of_listing(page, total);
        let rooms = visible.get(range).unwrap_or_default().to_vec();
        self.reply(id, ServerEvent::Rooms { total, page, rooms });
    }

    /// Where the room events of one user's departure go in a cluster: one
    /// `Left` per room, through Redis, rather than one per person.
    pub(super) fn cluster_leaves(&mut self, id: ConnId, keys: &[Arc<str>], reason: &LeaveReason) -> bool {
        if !self.cluster_linked() {
            return false;
        }
        for key in keys {
            self.leave_room(id, key, reason.clone());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::SocketAddr;

    use crossbeam_channel::Receiver;

    use super::*;
    use crate::chat::hub::Settings;
    use crate::chat::messages::{Arrival, Inbound, Outbound, Recipients};

    fn id(n: usize) -> ConnId {
        ConnId {
            shard: 0,
            slot: n,
            serial: n as u64,
        }
    }

    /// A hub in a cluster, and a stand-in for Redis and the cluster's
    /// threads: it numbers what is published per room and hands it back,
    /// and grants claims to nicks no one else holds.
    struct Cluster {
        hub: Hub,
        commands: Receiver<Command>,
        seq: HashMap<String, u64>,
        /// Nick keys held by other instances.
        held_elsewhere: HashSet<String>,
        /// Each room's topic as the publishing script keeps it, with the
        /// number of the line that set it.
        topics: HashMap<String, (u64, chat_protocol::Topic)>,
        /// Each room's settings and bans as the script keeps them.
        moderation: HashMap<String, Moderation>,
        /// Each room's members as presence has them (this instance's, by
        /// its joins and leaves; those held elsewhere are in `#r`).
        members: HashMap<String, HashSet<String>>,
    }

    /// A room's settings and bans as Redis keeps them, with the number
    /// of the last line that changed them.
    type Moderation = (
        u64,
        chat_protocol::RoomSettings,
        Vec<chat_protocol::moderation::BanInfo>,
    );

    impl Cluster {
        fn new() -> Cluster {
            Cluster::with_queue(1000)
        }

        /// With a command queue of `capacity`.
        fn with_queue(capacity: usize) -> Cluster {
            let (tx, commands) = crossbeam_channel::bounded(capacity);
            let mut hub = Hub::new(Settings {
                history_lines: 10,
                replay_lines: 10,
                clock: || 1_796_587_200_000,
                ..Settings::default()
            });
            hub.attach_cluster(Link::new("here".into(), tx, Some((1, 100)), None));
            let mut cluster = Cluster {
                hub,
                commands,
                seq: HashMap::new(),
                held_elsewhere: HashSet::new(),
                topics: HashMap::new(),
                moderation: HashMap::new(),
                members: HashMap::new(),
            };
            cluster.link(true);
            cluster
        }

        fn event(&mut self, event: ClusterEvent) {
            self.hub.handle(Inbound::Cluster(Box::new(event)));
        }

        /// Both connections up (or down); once up, the catch-up is
        /// answered at the next [`Cluster::redis`].
        fn link(&mut self, up: bool) {
            for part in [Part::Commands, Part::Subscriber] {
                self.event(ClusterEvent::Link { part, up });
            }
            self.redis();
        }

        fn connect(&mut self, n: usize) {
            self.hub.handle(Inbound::Connected {
                id: id(n),
                addr: SocketAddr::from(([127, 0, 0, 1], 1)),
                arrival: Arrival::Guest,
            });
        }

        fn line(&mut self, n: usize, line: &str) {
            if let Some(line) = crate::frontend::line::to_request(Ok(line.to_string())) {
                self.hub.handle(Inbound::Line {
                    id: id(n),
                    line,
                    received: std::time::Instant::now(),
                });
            }
        }

        /// Answers every command queued, as Redis and the threads would,
        /// until none is left.
        fn redis(&mut self) {
            while let Ok(command) = self.commands.try_recv() {
                match command {
                    Command::Publish { room, mut envelope } => {
                        let seq = self.seq.entry(room.clone()).or_default();
                        *seq += 1;
                        let seq = *seq;
                        self.script(&room, seq, &mut envelope);
                        self.event(ClusterEvent::Line { room, seq, envelope });
                    }
                    Command::Join { room, nick } => {
                        self.members.entry(room.key()).or_default().insert(nick.key());
                    }
                    Command::Leave { room, nick } => {
                        if let Some(members) = self.members.get_mut(&room) {
                            members.remove(&nick.key());
                        }
                    }
                    Command::Whois { conn, nick } => {
                        let rooms = self
                            .held_elsewhere
                            .contains(&nick.key())
                            .then(|| vec![RoomName::new("#r").unwrap()]);
                        self.event(ClusterEvent::Whois { conn, nick, rooms });
                    }
                    Command::Who { conn, room, asked } => {
                        // Those held elsewhere are in #r, as for WHOIS.
                        let nicks = if room == "#r" {
                            self.held_elsewhere
                                .iter()
                                .map(|k| Nick::new(k).unwrap())
                                .collect()
                        } else {
                            Vec::new()
                        };
                        self.event(ClusterEvent::Members {
                            conn,
                            room,
                            asked,
                            nicks: Some(nicks),
                        });
                    }
                    Command::RoomState { room } => {
                        let topic = self.topics.get(&room).cloned();
                        let moderation = self.moderation.get(&room).cloned();
                        self.event(ClusterEvent::RoomState {
                            room,
                            topic,
                            moderation,
                        });
                    }
                    Command::Claim { conn, nick, purpose } if purpose != Purpose::Keep => {
                        let won = !self.held_elsewhere.contains(&nick.key());
                        self.event(ClusterEvent::Claimed {
                            conn,
                            nick,
                            purpose,
                            won,
                        });
                    }
                    Command::CatchUp { .. } => self.event(ClusterEvent::CaughtUp),
                    Command::Rooms { conn, page } => self.event(ClusterEvent::Rooms {
                        conn,
                        page,
                        rooms: Some(Vec::new()),
                    }),
                    _ => {}
                }
            }
        }

        /// What the publishing script keeps of a line numbered `seq`, and
        /// which of a join's two payloads it publishes.
        fn script(&mut self, room: &str, seq: u64, envelope: &mut Envelope) {
            let now = 1_796_587_200_000;
            match &mut envelope.event {
                RoomEvent::TopicChanged { topic, .. } => {
                    self.topics.insert(room.to_string(), (seq, topic.clone()));
                }
                RoomEvent::Joined { nick, first, .. } => {
                    let members = self.members.entry(room.to_string()).or_default();
                    let others = members.iter().filter(|m| **m != nick.key()).count()
                        + if room == "#r" {
                            self.held_elsewhere.len()
                        } else {
                            0
                        };
                    members.insert(nick.key());
                    *first = others == 0 && room != RoomName::lobby().key();
                }
                RoomEvent::BanChanged {
                    mask,
                    by,
                    on,
                    at,
                    until,
                    ..
                } => {
                    let kept = self.moderation.entry(room.to_string()).or_default();
                    kept.0 = seq;
                    kept.2.retain(|b| b.mask != *mask);
                    if *on {
                        kept.2.push(chat_protocol::moderation::BanInfo {
                            mask: mask.clone(),
                            by: by.to_string(),
                            at: *at,
                            until: *until,
                        });
                    }
                    kept.2.retain(|b| b.until.is_none_or(|u| u > now));
                }
                RoomEvent::SettingChanged { setting, .. } => {
                    let kept = self.moderation.entry(room.to_string()).or_default();
                    kept.0 = seq;
                    kept.1.apply(setting);
                }
                _ => {}
            }
        }

        /// What the hub said, as (recipient, line) pairs.
        fn said(&mut self) -> Vec<(usize, String)> {
            let mut out = Vec::new();
            for (_, message) in self.hub.take_outbox() {
                let Outbound::Deliver { to, event, .. } = message else { continue };
                let mut to: Vec<ConnId> = match to {
                    Recipients::One(id) | Recipients::Reply(id) => vec![id],
                    Recipients::Members { members, except } => {
                        members.iter().copied().filter(|m| Some(*m) != except).collect()
                    }
                    Recipients::Many(ids) => ids,
                };
                to.sort();
                for line in event.lines() {
                    for r in &to {
                        out.push((r.slot, line.to_string()));
                    }
                }
            }
            out
        }
    }

    fn pairs(v: &[(usize, &str)]) -> Vec<(usize, String)> {
        v.iter().map(|(n, s)| (*n, s.to_string())).collect()
    }

    #[test]
    fn a_newcomer_is_welcomed_once_their_join_is_back_from_redis() {
        let mut c = Cluster::new();
        c.connect(1);
        assert_eq!(c.said(), [], "nothing before Redis has the join");
        c.redis();
        assert_eq!(
            c.said(),
            pairs(&[(
                1,
                "-- welcome to chat-server, guest1! you are in #lobby; type /help for commands"
            )])
        );
    }

    #[test]
    fn a_room_line_is_delivered_when_it_comes_back_and_not_to_its_sender() {
        let mut c = Cluster::new();
        c.connect(1);
        c.connect(2);
        c.redis();
        c.said();
        c.line(1, "hello");
        assert_eq!(c.said(), [], "not delivered before Redis numbered it");
        c.redis();
        assert_eq!(c.said(), pairs(&[(2, "<guest1> hello")]));
    }

    #[test]
    fn lines_from_other_instances_come_out_in_sequence_order() {
        let mut c = Cluster::new();
        c.connect(1);
        c.redis();
        c.said();
        let line = |text: &str| Envelope {
            origin: "there".into(),
            id: 1,
            except: None,
            event: RoomEvent::Said {
                room: RoomName::lobby(),
                from: Nick::new("zed").unwrap(),
                text: text.into(),
                style: Style::Message,
                at: 0,
            },
        };
        let lobby = RoomName::lobby().key();
        // The join was 1 in the lobby; 3 comes before 2.
        c.event(ClusterEvent::Line {
            room: lobby.clone(),
            seq: 3,
            envelope: line("second"),
        });
        assert_eq!(c.said(), [], "3 waits for 2");
        assert!(
            matches!(c.commands.try_recv(), Ok(Command::Fill { from: 2, to: 2, .. })),
            "the gap is asked for from the stream"
        );
        c.event(ClusterEvent::Line {
            room: lobby,
            seq: 2,
            envelope: line("first"),
        });
        assert_eq!(c.said(), pairs(&[(1, "<zed> first"), (1, "<zed> second")]));
    }

    #[test]
    fn users_a_restart_handed_over_are_taken_over_in_one_command_however_many() {
        // A hub as a restart leaves it: users in rooms, no cluster yet.
        let mut hub = Hub::new(Settings::default());
        for n in 1..=3 {
            hub.handle(Inbound::Connected {
                id: id(n),
                addr: SocketAddr::from(([127, 0, 0, 1], 1)),
                arrival: Arrival::Guest,
            });
        }
        if let Some(request) = crate::frontend::line::to_request(Ok("/join #r".to_string())) {
            hub.handle(Inbound::Line {
                id: id(1),
                line: request,
                received: std::time::Instant::now(),
            });
        }
        // A queue with room for one command: one each would overflow it
        // and lose the link.
        let (tx, commands) = crossbeam_channel::bounded(1);
        hub.attach_cluster(Link::new("here".into(), tx, Some((1, 100)), None));
        let sent: Vec<Command> = commands.try_iter().collect();
        let [Command::TakeOver { nicks, presence }] = sent.as_slice() else {
            panic!("expected one take-over, got {sent:?}");
        };
        let mut nicks: Vec<&str> = nicks.iter().map(Nick::as_str).collect();
        nicks.sort_unstable();
        assert_eq!(nicks, ["guest1", "guest2", "guest3"]);
        let mut presence: Vec<(&str, &str)> =
            presence.iter().map(|(r, n)| (r.as_str(), n.as_str())).collect();
        presence.sort_unstable();
        assert_eq!(
            presence,
            [("#lobby", "guest2"), ("#lobby", "guest3"), ("#r", "guest1")]
        );
    }

    #[test]
    fn a_lost_link_is_told_to_everyone_and_chat_goes_on_locally_until_it_is_back() {
        let mut c = Cluster::new();
        c.connect(1);
        c.connect(2);
        c.redis();
        c.said();
        c.event(ClusterEvent::Link {
            part: Part::Subscriber,
            up: false,
        });
        let lost = "-- cluster link lost; only users on this server can hear you";
        assert_eq!(c.said(), pairs(&[(1, lost), (2, lost)]));
        c.line(1, "still here");
        assert_eq!(c.said(), pairs(&[(2, "<guest1> still here")]), "at once, locally");
        c.link(true);
        let restored = "-- cluster link restored";
        assert_eq!(c.said(), pairs(&[(1, restored), (2, restored)]));
    }

    #[test]
    fn a_user_who_comes_before_redis_was_ever_reached_is_told_when_the_link_is_up() {
        let (tx, commands) = crossbeam_channel::bounded(1000);
        let mut hub = Hub::new(Settings {
            clock: || 1_796_587_200_000,
            ..Settings::default()
        });
        // --cluster-optional, Redis not there: no guest numbers, and both
        // connections say they are down.
        hub.attach_cluster(Link::new("here".into(), tx, None, None));
        let mut c = Cluster {
            hub,
            commands,
            seq: HashMap::new(),
            held_elsewhere: HashSet::new(),
            topics: HashMap::new(),
            moderation: HashMap::new(),
            members: HashMap::new(),
        };
        for part in [Part::Commands, Part::Subscriber] {
            c.event(ClusterEvent::Link { part, up: false });
        }
        c.connect(1);
        let said: Vec<String> = c.said().into_iter().map(|(_, line)| line).collect();
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(
            said[0].starts_with("-- welcome to chat-server, guest"),
            "{said:?}"
        );
        assert_eq!(
            said[1],
            "-- cluster link lost; only users on this server can hear you"
        );
        c.link(true);
        assert_eq!(c.said(), pairs(&[(1, "-- cluster link restored")]));
    }

    #[test]
    fn after_an_outage_a_rooms_history_is_reloaded_from_its_stream() {
        let mut c = Cluster::new();
        c.connect(1);
        c.redis();
        c.line(1, "through redis");
        c.redis();
        c.link(false);
        c.line(1, "said here alone");
        c.said();
        // Both connections back: the catch-up asks for the lobby whole.
        for part in [Part::Commands, Part::Subscriber] {
            c.event(ClusterEvent::Link { part, up: true });
        }
        let lobby = RoomName::lobby().key();
        let Ok(Command::CatchUp { positions, reload }) = c.commands.try_recv() else {
            panic!("no catch-up asked for");
        };
        assert_eq!(reload, std::slice::from_ref(&lobby));
        assert_eq!(positions, [(lobby.clone(), 2)], "the join, then the line");
        // Redis restarted empty: the stream holds nothing of before.
        c.event(ClusterEvent::History {
            room: lobby,
            lines: Vec::new(),
        });
        c.event(ClusterEvent::CaughtUp);
        c.said();
        // A newcomer is shown no history: none of what the stream lost,
        // nor what was said here alone.
        c.connect(2);
        c.redis();
        let to_two: Vec<String> = c
            .said()
            .into_iter()
            .filter(|(n, _)| *n == 2)
            .map(|(_, l)| l)
            .collect();
        assert_eq!(to_two.len(), 1, "{to_two:?}");
        assert!(to_two[0].starts_with("-- welcome"), "{to_two:?}");
    }

    #[test]
    fn a_line_that_could_not_be_published_is_said_here_after_those_before_it_and_once() {
        let mut c = Cluster::new();
        c.connect(1);
        c.connect(2);
        c.redis();
        c.said();
        c.line(1, "one");
        c.line(1, "two");
        let mut sent = Vec::new();
        while let Ok(Command::Publish { room, envelope }) = c.commands.try_recv() {
            sent.push((room, envelope));
        }
        assert_eq!(sent.len(), 2);
        // "one" reached Redis and is on its way back; "two" timed out.
        let (room, two) = sent[1].clone();
        c.event(ClusterEvent::Unpublished {
            room: room.clone(),
            envelope: two,
        });
        let lost = "-- cluster link lost; only users on this server can hear you";
        assert_eq!(
            c.said(),
            pairs(&[(1, lost), (2, lost), (2, "<guest1> one"), (2, "<guest1> two")]),
            "both said here at once, in order"
        );
        c.event(ClusterEvent::Link {
            part: Part::Commands,
            up: false,
        });
        // Redis thawed and ran both: the catch-up brings them, and neither
        // is said again.
        for part in [Part::Commands, Part::Subscriber] {
            c.event(ClusterEvent::Link { part, up: true });
        }
        assert!(matches!(c.commands.try_recv(), Ok(Command::CatchUp { .. })));
        c.event(ClusterEvent::Backlog {
            room,
            lines: vec![(3, sent[0].1.clone()), (4, sent[1].1.clone())],
            upto: 4,
        });
        c.event(ClusterEvent::CaughtUp);
        let restored = "-- cluster link restored";
        assert_eq!(c.said(), pairs(&[(1, restored), (2, restored)]));
    }

    #[test]
    fn a_full_command_queue_is_a_lost_link_until_it_has_room_again() {
        let mut c = Cluster::with_queue(4);
        c.connect(1);
        c.redis();
        c.connect(2);
        c.redis();
        c.said();
        // Redis does not keep up: nothing is taken from the queue.
        for n in 0..4 {
            c.line(1, &format!("queued {n}"));
        }
        c.line(1, "no room");
        let lost = "-- cluster link lost; only users on this server can hear you";
        assert_eq!(
            c.said(),
            pairs(&[
                (1, lost),
                (2, lost),
                (2, "<guest1> queued 0"),
                (2, "<guest1> queued 1"),
                (2, "<guest1> queued 2"),
                (2, "<guest1> queued 3"),
                (2, "<guest1> no room"),
            ]),
            "told, and what was queued said locally at once, then the new line"
        );
        // The queue drains (Redis runs what was queued: it comes back, and
        // is not said twice); the hub asks for a catch-up on its next turn.
        c.redis();
        c.hub.cluster_tick();
        c.redis();
        let restored = "-- cluster link restored";
        assert_eq!(c.said(), pairs(&[(1, restored), (2, restored)]));
    }

    #[test]
    fn a_nick_held_on_another_instance_gets_the_local_error() {
        let mut c = Cluster::new();
        c.held_elsewhere.insert("alice".into());
        c.connect(1);
        c.redis();
        c.said();
        c.line(1, "/nick Alice");
        c.redis();
        assert_eq!(c.said(), pairs(&[(1, "!! nick Alice is already in use")]));
        c.line(1, "/nick bob");
        c.redis();
        assert_eq!(c.said(), pairs(&[(1, "-- you are now known as bob")]));
    }

    #[test]
    fn lines_sent_behind_a_nick_change_wait_for_it_as_on_one_server() {
        let mut c = Cluster::new();
        c.connect(1);
        c.redis();
        c.said();
        // Both before Redis answers the claim.
        c.line(1, "/nick alice");
        c.line(1, "/join #r");
        c.redis();
        assert_eq!(
            c.said(),
            pairs(&[(1, "-- you are now known as alice"), (1, "-- you joined #r")])
        );
    }

    #[test]
    fn a_join_that_waits_for_the_rooms_state_keeps_its_place_among_held_lines() {
        let mut c = Cluster::new();
        c.connect(1);
        c.redis();
        c.said();
        // The join comes out of the lines held behind the nick change,
        // then waits for #r's state: the /who still comes after it.
        c.line(1, "/nick alice");
        c.line(1, "/join #r");
        c.line(1, "/who");
        c.redis();
        assert_eq!(
            c.said(),
            pairs(&[
                (1, "-- you are now known as alice"),
                (1, "-- you joined #r"),
                (1, "-- 1 in #r: @alice"),
            ])
        );
    }

    #[test]
    fn requests_sent_behind_a_join_are_answered_after_it_as_on_one_server() {
        let mut c = Cluster::new();
        c.connect(1);
        c.redis();
        c.said();
        // All before Redis has the join back: the /who and /rooms that
        // follow it wait for it, and the unknown command for their answers.
        c.line(1, "/join #r");
        c.line(1, "/who");
        c.line(1, "/rooms");
        c.line(1, "/dance");
        assert_eq!(c.said(), [], "nothing answered before the join is back");
        c.redis();
        assert_eq!(
            c.said(),
            pairs(&[
                (1, "-- you joined #r"),
                (1, "-- 1 in #r: @guest1"),
                (1, "-- 2 rooms: #lobby (0), #r (1)"),
                (1, "!! unknown command /dance; type /help for the list"),
            ])
        );
    }

    #[test]
    fn a_lost_link_answers_what_was_held_behind_a_join() {
        let mut c = Cluster::new();
        c.connect(1);
        c.redis();
        c.said();
        c.line(1, "/join #r");
        c.line(1, "/dance");
        assert_eq!(c.said(), []);
        c.event(ClusterEvent::Link {
            part: Part::Subscriber,
            up: false,
        });
        assert_eq!(
            c.said(),
            pairs(&[
                (1, "-- cluster link lost; only users on this server can hear you"),
                (1, "-- you joined #r"),
                (1, "!! unknown command /dance; type /help for the list"),
            ])
        );
    }

    #[test]
    fn a_claim_lost_to_another_instance_renames_the_user_to_a_guest() {
        let mut c = Cluster::new();
        c.connect(1);
        c.redis();
        c.line(1, "/nick alice");
        c.redis();
        c.said();
        c.event(ClusterEvent::ClaimsLost(vec!["alice".into()]));
        c.redis();
        assert_eq!(
            c.said(),
            pairs(&[
                (1, "!! nick alice is already in use"),
                (1, "-- you are now known as guest2"),
            ])
        );
    }

    #[test]
    fn history_replayed_on_joining_ends_where_the_live_lines_begin() {
        let mut c = Cluster::new();
        c.connect(1);
        c.connect(2);
        c.redis();
        c.line(1, "/join #r");
        c.redis();
        c.line(1, "one");
        c.redis();
        c.said();
        // guest2 joins; before its join is back, guest1 says two more
        // lines: "two" is numbered before the join, "three" after.
        c.line(1, "two");
        c.line(2, "/join #r");
        c.line(1, "three");
        c.redis();
        let to_two: Vec<String> = c
            .said()
            .into_iter()
            .filter(|(n, _)| *n == 2)
            .map(|(_, l)| l)
            .collect();
        assert_eq!(
            to_two,
            [
                "-- you joined #r",
                "[2026-12-06T20:00:00Z] <guest1> one",
                "[2026-12-06T20:00:00Z] <guest1> two",
                "<guest1> three",
            ]
        );
    }

    fn topic(text: &str, by: &str) -> chat_protocol::Topic {
        chat_protocol::Topic {
            text: text.into(),
            by: Nick::new(by).unwrap(),
            at: 1_796_587_200_000,
        }
    }

    #[test]
    fn a_topic_set_is_kept_in_redis_with_the_number_of_its_line() {
        let mut c = Cluster::new();
        c.connect(1);
        c.redis();
        c.line(1, "/join #r");
        c.redis();
        c.line(1, "/topic release on Friday");
        c.redis();
        let kept = c.topics.get("#r").cloned();
        assert_eq!(kept.map(|(_, t)| t.text), Some("release on Friday".to_string()));
        assert_eq!(
            c.topics.get("#r").map(|(seq, _)| *seq),
            Some(2),
            "after the join, 1"
        );
    }

    #[test]
    fn the_first_member_here_sees_a_topic_set_on_another_instance_before_they_came() {
        let mut c = Cluster::new();
        c.connect(1);
        c.redis();
        c.said();
        // Set on another instance, when no one here was in #r: heard, but
        // there is no room here to take it.
        c.seq.insert("#r".into(), 1);
        c.topics
            .insert("#r".into(), (1, topic("release on Friday", "zed")));
        c.event(ClusterEvent::Line {
            room: "#r".into(),
            seq: 1,
            envelope: Envelope {
                origin: "there".into(),
                id: 1,
                except: None,
                event: RoomEvent::TopicChanged {
                    room: RoomName::new("#r").unwrap(),
                    topic: topic("release on Friday", "zed"),
                },
            },
        });
        c.redis();
        assert_eq!(c.said(), [], "no one here is in #r");
        c.line(1, "/join #r");
        c.redis();
        assert_eq!(
            c.said(),
            pairs(&[
                (1, "-- you joined #r"),
                (
                    1,
                    "-- topic of #r: release on Friday (set by zed at 2026-12-06T20:00:00Z)"
                ),
            ]),
            "told as a single server tells it, after the join"
        );
        c.line(1, "/topic");
        c.redis();
        assert_eq!(
            c.said(),
            pairs(&[(
                1,
                "-- topic of #r: release on Friday (set by zed at 2026-12-06T20:00:00Z)"
            )])
        );
    }

    #[test]
    fn a_topic_read_older_than_a_change_already_delivered_is_not_taken() {
        let mut c = Cluster::new();
        c.connect(1);
        c.redis();
        c.line(1, "/join #r");
        c.redis();
        c.said();
        // A change from another instance (line 2) is delivered before the
        // answer to a read that saw the topic as of line 1.
        let changed = Envelope {
            origin: "there".into(),
            id: 1,
            except: None,
            event: RoomEvent::TopicChanged {
                room: RoomName::new("#r").unwrap(),
                topic: topic("newer", "zed"),
            },
        };
        c.event(ClusterEvent::Line {
            room: "#r".into(),
            seq: 2,
            envelope: changed,
        });
        c.event(ClusterEvent::RoomState {
            room: "#r".into(),
            topic: Some((1, topic("older", "zed"))),
            moderation: None,
        });
        c.said();
        c.line(1, "/topic");
        assert_eq!(
            c.said(),
            pairs(&[(1, "-- topic of #r: newer (set by zed at 2026-12-06T20:00:00Z)")])
        );
    }

    #[test]
    fn only_a_rooms_first_member_here_makes_the_topic_be_read() {
        let mut c = Cluster::new();
        c.connect(1);
        c.connect(2);
        c.redis();
        c.line(1, "/join #r");
        let first: Vec<bool> = c
            .commands
            .try_iter()
            .map(|cmd| matches!(cmd, Command::RoomState { .. }))
            .collect();
        assert_eq!(first.iter().filter(|t| **t).count(), 1, "read once: {first:?}");
        // The answer lets the join go on (it reads again, as it is
        // published: see `cluster_join`).
        c.event(ClusterEvent::RoomState {
            room: "#r".into(),
            topic: None,
            moderation: None,
        });
        c.redis();
        c.line(2, "/join #r");
        let second: Vec<bool> = c
            .commands
            .try_iter()
            .map(|cmd| matches!(cmd, Command::RoomState { .. }))
            .collect();
        assert!(
            !second.is_empty() && !second.contains(&true),
            "not read again: {second:?}"
        );
    }

    #[test]
    fn whois_of_a_nick_held_on_another_instance_says_so_and_names_its_rooms() {
        let mut c = Cluster::new();
        c.held_elsewhere.insert("alice".into());
        c.connect(1);
        c.redis();
        c.said();
        c.line(1, "/nick bob");
        c.redis();
        c.said();
        c.hub.handle(Inbound::Line {
            id: id(1),
            line: Ok(crate::chat::request::Request::Whois(Nick::new("alice").unwrap())),
            received: std::time::Instant::now(),
        });
        assert_eq!(c.said(), [], "asked of Redis, not answered from here");
        c.redis();
        assert_eq!(
            c.said(),
            pairs(&[(1, "-- alice (on another server of this cluster): in #r")])
        );
        c.hub.handle(Inbound::Line {
            id: id(1),
            line: Ok(crate::chat::request::Request::Whois(Nick::new("nobody").unwrap())),
            received: std::time::Instant::now(),
        });
        c.redis();
        assert_eq!(c.said(), pairs(&[(1, "!! no such nick: nobody")]));
    }

    /// Asks IRC's WHO of `mask` for `n`.
    fn who(c: &mut Cluster, n: usize, mask: &str) {
        c.hub.handle(Inbound::Line {
            id: id(n),
            line: Ok(crate::chat::request::Request::WhoMatching(mask.to_string())),
            received: std::time::Instant::now(),
        });
    }

    /// A WHO entry as (nick, room, elsewhere).
    type Listed = (String, String, bool);

    /// The WHO answers in the outbox: their entries, and whether the list
    /// was cut short.
    fn who_lists(c: &mut Cluster) -> Vec<(Vec<Listed>, bool)> {
        let mut lists = Vec::new();
        for (_, message) in c.hub.take_outbox() {
            let Outbound::Deliver { event, .. } = message else { continue };
            if let ServerEvent::WhoList {
                entries, truncated, ..
            } = &*event
            {
                let entries = entries
                    .iter()
                    .map(|e| {
                        let room = e.room.as_ref().map_or("", RoomName::as_str);
                        (e.nick.to_string(), room.to_string(), e.elsewhere)
                    })
                    .collect();
                lists.push((entries, *truncated));
            }
        }
        lists
    }

    #[test]
    fn irc_who_of_a_room_lists_its_members_on_every_instance() {
        let mut c = Cluster::new();
        c.held_elsewhere.insert("alice".into());
        c.connect(1);
        c.redis();
        c.line(1, "/nick bob");
        c.line(1, "/join #r");
        c.redis();
        c.said();
        who(&mut c, 1, "#R");
        assert_eq!(who_lists(&mut c), [], "asked of Redis, not answered from here");
        c.redis();
        let entry = |nick: &str, elsewhere| (nick.to_string(), "#r".to_string(), elsewhere);
        assert_eq!(
            who_lists(&mut c),
            [(vec![entry("alice", true), entry("bob", false)], false)]
        );

        // With the link down, this instance's members alone, at once.
        c.link(false);
        c.said();
        who(&mut c, 1, "#r");
        assert_eq!(who_lists(&mut c), [(vec![entry("bob", false)], false)]);
    }

    #[test]
    fn irc_who_of_a_room_across_the_cluster_lists_at_most_max_who() {
        let mut c = Cluster::new();
        for n in 0..MAX_WHO + 5 {
            c.held_elsewhere.insert(format!("user{n:03}"));
        }
        c.connect(1);
        c.line(1, "/join #r");
        c.redis();
        c.said();
        who(&mut c, 1, "#r");
        c.redis();
        let lists = who_lists(&mut c);
        let [(entries, truncated)] = lists.as_slice() else { panic!("one WHO answer: {lists:?}") };
        assert_eq!((entries.len(), *truncated), (MAX_WHO, true));
        assert_eq!(entries.first().map(|e| e.0.as_str()), Some("guest1"));
    }

    /// A room event from another instance.
    fn from_there(event: RoomEvent) -> Envelope {
        Envelope {
            origin: "there".into(),
            id: 1,
            except: None,
            event,
        }
    }

    /// A moderation change from another instance, numbered next in `#r`.
    fn change_from_there(c: &mut Cluster, event: RoomEvent) {
        let seq = c.seq.entry("#r".into()).or_default();
        *seq += 1;
        let seq = *seq;
        let mut envelope = from_there(event);
        c.script("#r", seq, &mut envelope);
        c.event(ClusterEvent::Line {
            room: "#r".into(),
            seq,
            envelope,
        });
    }

    fn r() -> RoomName {
        RoomName::new("#r").unwrap()
    }

    fn zed() -> Nick {
        Nick::new("zed").unwrap()
    }

    /// guest1 and guest2 in `#r`, guest1 its operator.
    fn two_in_r() -> Cluster {
        let mut c = Cluster::new();
        c.connect(1);
        c.connect(2);
        c.redis();
        c.line(1, "/join #r");
        c.redis();
        c.line(2, "/join #r");
        c.redis();
        c.said();
        c
    }

    fn is_op(c: &Cluster, n: usize) -> bool {
        c.hub.rooms.get("#r").is_some_and(|room| room.is_op(id(n)))
    }

    #[test]
    fn a_ban_from_another_instance_keeps_users_here_out() {
        let mut c = two_in_r();
        c.connect(3);
        c.redis();
        c.said();
        change_from_there(
            &mut c,
            RoomEvent::BanChanged {
                room: r(),
                mask: chat_protocol::Mask::parse("guest3").unwrap(),
                by: zed(),
                on: true,
                duration: None,
                at: 1_796_587_200_000,
                until: None,
            },
        );
        assert_eq!(
            c.said(),
            pairs(&[
                (1, "-- zed banned guest3!*@* from #r"),
                (2, "-- zed banned guest3!*@* from #r")
            ])
        );
        c.line(3, "/join #r");
        c.redis();
        assert_eq!(c.said(), pairs(&[(3, "!! you are banned from #r")]));
    }

    #[test]
    fn a_setting_from_another_instance_applies_here() {
        let mut c = two_in_r();
        change_from_there(
            &mut c,
            RoomEvent::SettingChanged {
                room: r(),
                by: zed(),
                setting: chat_protocol::RoomSetting::Moderated(true),
            },
        );
        c.said();
        c.line(2, "hello");
        c.redis();
        assert_eq!(
            c.said(),
            pairs(&[(2, "!! #r is moderated: only operators and voiced members speak")])
        );
    }

    #[test]
    fn a_role_from_another_instance_is_set_on_the_member_here() {
        let mut c = two_in_r();
        assert!(!is_op(&c, 2));
        change_from_there(
            &mut c,
            RoomEvent::RoleChanged {
                room: r(),
                nick: Nick::new("GUEST2").unwrap(),
                by: zed(),
                role: chat_protocol::Role::Op,
                on: true,
            },
        );
        assert!(is_op(&c, 2), "the nick is matched in any case");
        assert_eq!(
            c.said(),
            pairs(&[
                (1, "-- zed made GUEST2 an operator of #r"),
                (2, "-- zed made GUEST2 an operator of #r"),
            ])
        );
    }

    #[test]
    fn a_kick_from_another_instance_tells_the_kicked_user_here_before_taking_them_out() {
        let mut c = two_in_r();
        change_from_there(
            &mut c,
            RoomEvent::Kicked {
                room: r(),
                nick: Nick::new("guest2").unwrap(),
                by: zed(),
                reason: Some("spam".into()),
            },
        );
        assert_eq!(
            c.said(),
            pairs(&[
                (1, "-- guest2 was kicked from #r by zed (spam)"),
                (2, "-- guest2 was kicked from #r by zed (spam)"),
            ])
        );
        let room = c.hub.rooms.get("#r").unwrap();
        assert!(!room.has_member(id(2)) && room.has_member(id(1)));
        c.redis();
        assert!(
            c.members
                .get("#r")
                .is_some_and(|m| !m.contains("guest2") && m.contains("guest1")),
            "presence follows"
        );
        c.line(1, "still here?");
        c.redis();
        assert_eq!(c.said(), [], "guest2 no longer hears the room");
    }

    #[test]
    fn the_origin_applies_its_own_change_only_when_it_comes_back() {
        let mut c = two_in_r();
        c.line(1, "/ban troll");
        c.line(1, "/room moderated on");
        assert_eq!(c.said(), [], "not told before Redis numbered it");
        let room = c.hub.rooms.get("#r").unwrap();
        assert!(
            room.bans.is_empty() && !room.settings.moderated,
            "not applied yet"
        );
        c.redis();
        let room = c.hub.rooms.get("#r").unwrap();
        assert_eq!(room.bans.len(), 1);
        assert!(room.settings.moderated);
        let said: Vec<String> = c
            .said()
            .into_iter()
            .filter(|(n, _)| *n == 2)
            .map(|(_, l)| l)
            .collect();
        assert_eq!(
            said,
            [
                "-- guest1 banned troll!*@* from #r",
                "-- guest1 made #r moderated: only operators and voiced members speak",
            ]
        );
        let kept = c.moderation.get("#r").cloned().unwrap();
        assert_eq!((kept.1.moderated, kept.2.len()), (true, 1), "and kept in Redis");
    }

    #[test]
    fn a_ban_and_an_unban_said_at_once_on_two_instances_end_as_redis_ordered_them() {
        let mut c = two_in_r();
        c.line(1, "/ban troll");
        c.redis();
        // Here guest1 lifts it while, on another instance, zed bans it
        // again; Redis numbers zed's first.
        c.line(1, "/unban troll");
        change_from_there(
            &mut c,
            RoomEvent::BanChanged {
                room: r(),
                mask: chat_protocol::Mask::parse("troll").unwrap(),
                by: zed(),
                on: true,
                duration: None,
                at: 1_796_587_200_000,
                until: None,
            },
        );
        c.redis();
        let room = c.hub.rooms.get("#r").unwrap();
        assert!(
            room.bans.is_empty(),
            "the unban was numbered last: {:?}",
            room.bans
        );
        assert_eq!(c.moderation.get("#r").map(|m| m.2.len()), Some(0));
    }

    #[test]
    fn an_operator_reaches_a_member_on_another_instance_through_the_clusters_member_list() {
        let mut c = Cluster::new();
        c.connect(1);
        c.redis();
        c.line(1, "/join #r");
        c.redis();
        // alice is in #r on another instance, and was there first.
        c.held_elsewhere.insert("alice".into());
        c.hub
            .rooms
            .get_mut("#r")
            .unwrap()
            .set_role(id(1), chat_protocol::Role::Op, true);
        c.said();
        c.line(1, "/op ALICE");
        c.line(1, "/dance");
        assert_eq!(c.said(), [], "asked of Redis, and what follows waits");
        let asked: Vec<Command> = c.commands.try_iter().collect();
        assert!(
            matches!(
                asked.as_slice(),
                [Command::Who {
                    asked: Asked::Target { .. },
                    ..
                }]
            ),
            "{asked:?}"
        );
        for command in asked {
            let Command::Who { conn, room, asked } = command else { continue };
            c.event(ClusterEvent::Members {
                conn,
                room,
                asked,
                nicks: Some(vec![Nick::new("alice").unwrap()]),
            });
        }
        c.redis();
        // The answer lets the held line go on; the change, like any room
        // event of theirs, is told once it is back from Redis.
        assert_eq!(
            c.said(),
            pairs(&[
                (1, "!! unknown command /dance; type /help for the list"),
                (1, "-- guest1 made alice an operator of #r"),
            ])
        );
        c.line(1, "/kick nobody");
        c.redis();
        assert_eq!(c.said(), pairs(&[(1, "!! nobody is not in #r")]));
    }

    #[test]
    fn a_joins_presence_reaches_redis_after_the_join_is_numbered() {
        let mut c = Cluster::new();
        c.connect(1);
        c.redis();
        c.line(1, "/join #r");
        // The room's state is read first (no one here is in it).
        let read: Vec<Command> = c.commands.try_iter().collect();
        assert!(matches!(read.as_slice(), [Command::RoomState { .. }]), "{read:?}");
        c.event(ClusterEvent::RoomState {
            room: "#r".into(),
            topic: None,
            moderation: None,
        });
        let sent: Vec<&str> = c
            .commands
            .try_iter()
            .map(|command| match command {
                Command::RoomState { .. } => "read",
                Command::Publish { .. } => "publish",
                Command::Join { .. } => "presence",
                Command::Leave { .. } => "leave",
                _ => "other",
            })
            .collect();
        // The script counts the room's members without the joiner and
        // adds them: presence must not be there before it runs.
        let at = |what: &str| sent.iter().rposition(|s| *s == what);
        assert!(
            at("publish").is_some() && at("presence") > at("publish"),
            "{sent:?}"
        );
    }

    #[test]
    fn the_first_member_in_the_cluster_is_the_operator_not_the_first_here() {
        let mut c = Cluster::new();
        c.held_elsewhere.insert("alice".into());
        c.connect(1);
        c.redis();
        c.line(1, "/join #r");
        assert!(!is_op(&c, 1), "not before Redis says");
        c.redis();
        assert!(!is_op(&c, 1), "alice was in #r on another instance");
        c.line(1, "/join #s");
        c.redis();
        assert!(
            c.hub.rooms.get("#s").is_some_and(|room| room.is_op(id(1))),
            "#s was empty in the whole cluster"
        );
    }

    #[test]
    fn a_join_back_with_first_shows_the_operator_in_the_names_on_joining() {
        let mut c = Cluster::new();
        c.connect(1);
        c.redis();
        c.said();
        c.hub.handle(Inbound::Line {
            id: id(1),
            line: Ok(crate::chat::request::Request::Join {
                room: RoomName::new("#s").unwrap(),
                leave_others: false,
                names: true,
                key: None,
            }),
            received: std::time::Instant::now(),
        });
        c.redis();
        let said: Vec<String> = c.said().into_iter().map(|(_, l)| l).collect();
        assert!(said.iter().any(|l| l.contains("@guest1")), "{said:?}");
    }

    #[test]
    fn with_the_link_down_moderation_is_local_and_immediate_and_the_first_here_is_operator() {
        let mut c = Cluster::new();
        c.held_elsewhere.insert("alice".into());
        c.connect(1);
        c.connect(2);
        c.redis();
        c.link(false);
        c.said();
        c.line(1, "/join #r");
        assert!(is_op(&c, 1), "the first here, at once");
        c.line(2, "/join #r");
        c.said();
        c.line(1, "/ban troll");
        assert_eq!(
            c.said(),
            pairs(&[
                (1, "-- guest1 banned troll!*@* from #r"),
                (2, "-- guest1 banned troll!*@* from #r")
            ])
        );
        assert_eq!(c.hub.rooms.get("#r").map(|r| r.bans.len()), Some(1));
        assert!(
            !c.commands
                .try_iter()
                .any(|cmd| matches!(cmd, Command::Publish { .. })),
            "nothing published"
        );
        c.line(1, "/kick guest2");
        assert_eq!(
            c.said(),
            pairs(&[
                (1, "-- guest2 was kicked from #r by guest1"),
                (2, "-- guest2 was kicked from #r by guest1")
            ])
        );
        assert!(!c.hub.rooms.get("#r").unwrap().has_member(id(2)));
        c.line(1, "/op alice");
        assert_eq!(
            c.said(),
            pairs(&[(1, "!! alice is not in #r")]),
            "not asked of Redis"
        );
    }

    #[test]
    fn the_first_member_here_takes_the_settings_and_bans_kept_in_redis() {
        let mut c = Cluster::new();
        c.connect(1);
        c.connect(2);
        c.redis();
        // Set on another instance while no one here was in #r.
        change_from_there(
            &mut c,
            RoomEvent::SettingChanged {
                room: r(),
                by: zed(),
                setting: chat_protocol::RoomSetting::Key(Some("sesame".into())),
            },
        );
        change_from_there(
            &mut c,
            RoomEvent::BanChanged {
                room: r(),
                mask: chat_protocol::Mask::parse("guest2").unwrap(),
                by: zed(),
                on: true,
                duration: None,
                at: 1_796_587_200_000,
                until: None,
            },
        );
        c.said();
        c.line(1, "/join #r");
        c.redis();
        assert_eq!(c.said(), pairs(&[(1, "!! #r needs a key: /join #r KEY")]));
        c.line(1, "/join #r sesame");
        c.redis();
        let to_one: Vec<(usize, String)> = c.said().into_iter().filter(|(n, _)| *n == 1).collect();
        assert_eq!(to_one, pairs(&[(1, "-- you joined #r")]));
        c.line(2, "/join #r sesame");
        c.redis();
        assert_eq!(c.said(), pairs(&[(2, "!! you are banned from #r")]));
    }

    #[test]
    fn a_state_read_older_than_a_change_delivered_meanwhile_keeps_both() {
        let mut c = Cluster::new();
        c.connect(1);
        c.redis();
        c.moderation.insert(
            "#r".into(),
            (
                1,
                chat_protocol::RoomSettings::default(),
                vec![chat_protocol::moderation::BanInfo {
                    mask: chat_protocol::Mask::parse("old").unwrap(),
                    by: "zed".into(),
                    at: 1,
                    until: None,
                }],
            ),
        );
        c.seq.insert("#r".into(), 1);
        c.line(1, "/join #r");
        let read: Vec<Command> = c.commands.try_iter().collect();
        // A ban numbered 2 comes before the answer to the read, which saw
        // the room as of 1.
        c.event(ClusterEvent::Line {
            room: "#r".into(),
            seq: 2,
            envelope: from_there(RoomEvent::BanChanged {
                room: r(),
                mask: chat_protocol::Mask::parse("new").unwrap(),
                by: zed(),
                on: true,
                duration: None,
                at: 2,
                until: None,
            }),
        });
        for command in read {
            if let Command::RoomState { room } = command {
                let moderation = c.moderation.get(&room).cloned();
                c.event(ClusterEvent::RoomState {
                    room,
                    topic: None,
                    moderation,
                });
            }
        }
        let masks: Vec<String> = c.hub.rooms["#r"]
            .bans
            .iter()
            .map(|b| b.mask.to_string())
            .collect();
        assert_eq!(masks, ["old!*@*", "new!*@*"]);
    }
}
