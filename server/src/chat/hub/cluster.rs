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

use std::collections::HashMap;
use std::sync::Arc;

use chat_protocol::{ErrorKind, HistoryEntry, LeaveReason, Member, Nick, Page, RoomName, ServerEvent, Style};
use crossbeam_channel::{Sender, TrySendError};

use super::Hub;
use crate::chat::messages::ConnId;
use crate::chat::room::Room;
use crate::cluster::order::{Orderer, Step};
use crate::cluster::{ClusterEvent, Command, Envelope, Part, Purpose, RoomEvent};

/// The claim a `/nick` from `old` makes.
pub(super) fn rename_from(old: &Nick) -> Purpose {
    Purpose::Rename { old: old.clone() }
}

/// Ask for the next block of guest numbers when this few are left.
const GUESTS_LOW: u64 = 25;

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
    /// Local users have been told the link is lost, and not yet that it
    /// is back.
    told_lost: bool,
    /// Guest numbers reserved for this instance, `next..end`.
    guests: (u64, u64),
    /// A block of guest numbers has been asked for.
    guests_asked: bool,
    /// Nick changes and registrations waiting for Redis, by connection.
    pending: HashMap<ConnId, Nick>,
}

impl Link {
    /// The hub's side of a cluster, talking to the command thread through
    /// `commands`, with the guest numbers reserved at start (if Redis
    /// could be reached).
    pub fn new(instance: String, commands: Sender<Command>, guests: Option<(u64, u64)>) -> Link {
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
        }
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
        self.cluster = Some(link);
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
        let instance = self
            .cluster
            .as_ref()
            .map(|c| c.instance.clone())
            .unwrap_or_default();
        let envelope = Envelope {
            origin: instance,
            except: except.map(|c| (c.shard, c.slot, c.serial)),
            event: crossing,
        };
        let command = Command::Publish {
            room: room_key.to_string(),
            envelope,
        };
        if self.tell_cluster(command) {
            None
        } else {
            Some(event)
        }
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
    pub(super) fn cluster_presence(&mut self, room: &RoomName, nick: &Nick, present: bool) {
        if self.cluster.is_none() {
            return;
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
        let sent = self.tell_cluster(Command::Claim {
            conn: id,
            nick: nick.clone(),
            purpose,
        });
        if sent {
            if let Some(c) = self.cluster.as_mut() {
                c.pending.insert(id, nick.clone());
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
        self.tell_cluster(Command::Private {
            conn: id,
            message: crate::cluster::Private {
                from: from.clone(),
                to: to.clone(),
                text: text.to_string(),
                style,
            },
        })
    }

    /// `/who` across the cluster: true if the cluster takes it.
    pub(super) fn cluster_who(&mut self, id: ConnId, room_key: &str, page: usize) -> bool {
        self.cluster_linked()
            && self.tell_cluster(Command::Who {
                conn: id,
                room: room_key.to_string(),
                page,
            })
    }

    /// `/rooms` across the cluster: true if the cluster takes it.
    pub(super) fn cluster_rooms(&mut self, id: ConnId, page: usize) -> bool {
        self.cluster_linked() && self.tell_cluster(Command::Rooms { conn: id, page })
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
                    Some(c) => c.orderer.backlog(&room, lines, upto),
                    None => return,
                };
                self.cluster_steps(steps);
            }
            ClusterEvent::CaughtUp => self.caught_up(),
            ClusterEvent::Unpublished { room, envelope } => {
                // It never reached Redis: said here only, as with the link
                // down.
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
                page,
                nicks,
            } => self.cluster_members(conn, &room, page, nicks),
            ClusterEvent::Rooms { conn, page, rooms } => self.cluster_room_list(conn, page, rooms),
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
                Step::Deliver { room, line, .. } => self.deliver_crossed(&room, &line),
                Step::Fill { room, from, to } => {
                    self.tell_cluster(Command::Fill { room, from, to });
                }
            }
        }
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
        match &envelope.event {
            RoomEvent::Said {
                room,
                from,
                text,
                style,
                at,
            } if *style != Style::Notice => {
                let entry = HistoryEntry {
                    at: *at,
                    from: from.clone(),
                    text: text.clone(),
                    action: *style == Style::Action,
                };
                self.record_crossed(room_key, room, entry);
            }
            RoomEvent::TopicChanged { topic, .. } if !from_here => {
                if let Some(room) = self.rooms.get_mut(room_key) {
                    room.topic = Some(topic.clone());
                }
            }
            _ => {}
        }
        self.publish_local(room_key, except, envelope.event.to_event());
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
            let positions = c.orderer.positions();
            self.tell_cluster(Command::CatchUp { positions });
        }
    }

    /// The link is lost (or never was): the hub goes on alone and tells
    /// everyone, once.
    fn link_lost(&mut self, why: &str) {
        let Some(c) = self.cluster.as_mut() else { return };
        let was_linked = c.linked;
        c.linked = false;
        c.catching_up = false;
        c.orderer.reset();
        // Claims asked for and not answered: the answer may never come.
        // Go on as if they were granted (the claim is made again once
        // the link is back; a refusal then renames).
        let pending: Vec<(ConnId, Nick)> = c.pending.drain().collect();
        if was_linked {
            log::warn!("cluster: link lost ({why}); serving local users only until it is back");
        }
        if was_linked && !c.told_lost {
            c.told_lost = true;
            let everyone: Vec<ConnId> = self.users.keys().copied().collect();
            self.deliver_many(everyone, ServerEvent::ClusterLink { up: false });
        }
        for (id, nick) in pending {
            self.send(id, ServerEvent::Error(ErrorKind::NickInUse(nick)));
        }
    }

    fn caught_up(&mut self) {
        let Some(c) = self.cluster.as_mut() else { return };
        c.catching_up = false;
        if !(c.commands_up && c.subscriber_up) {
            return;
        }
        c.linked = true;
        let told = std::mem::take(&mut c.told_lost);
        let steps = c.orderer.synced();
        self.cluster_steps(steps);
        log::info!("cluster: linked");
        if told {
            let everyone: Vec<ConnId> = self.users.keys().copied().collect();
            self.deliver_many(everyone, ServerEvent::ClusterLink { up: true });
        }
    }

    fn claimed(&mut self, id: ConnId, nick: Nick, purpose: Purpose, won: bool) {
        let asked = self.cluster.as_mut().and_then(|c| c.pending.remove(&id));
        if purpose == Purpose::Guest {
            if !won {
                self.claim_lost(&nick.key());
            }
            return;
        }
        let still_asked = asked.is_some_and(|a| a.as_str() == nick.as_str());
        if !won {
            if still_asked {
                self.send(id, ServerEvent::Error(ErrorKind::NickInUse(nick)));
            }
            return;
        }
        // Ours in Redis; is it still wanted, and still free here?
        let wanted = still_asked && self.nick_refused(id, &nick).is_none();
        if !wanted {
            self.cluster_release(&nick);
            if still_asked {
                self.send(id, ServerEvent::Error(ErrorKind::NickInUse(nick)));
            }
            return;
        }
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

    fn cluster_members(&mut self, id: ConnId, room_key: &str, page: usize, nicks: Option<Vec<Nick>>) {
        if !self.users.contains_key(&id) {
            return;
        }
        let Some(nicks) = nicks else {
            // Redis could not be asked: what this instance knows.
            let _ = self.local_who(id, room_key, page);
            return;
        };
        let Some(room) = self.rooms.get(room_key) else { return };
        let mut nicks: Vec<(String, Nick)> = nicks.into_iter().map(|n| (n.key(), n)).collect();
        // Local members count even if their presence has not reached
        // Redis yet.
        for member in room.members() {
            if let Some(user) = self.users.get(&member) {
                nicks.push((user.nick.key(), user.nick.clone()));
            }
        }
        nicks.sort();
        nicks.dedup_by(|a, b| a.0 == b.0);
        let total = nicks.len();
        let (page, range) = Page::of_listing(page, total);
        let members = nicks
            .get(range)
            .unwrap_or_default()
            .iter()
            .map(|(key, nick)| {
                let local = self.nicks.get(key.as_str()).filter(|m| room.has_member(**m));
                Member {
                    nick: nick.clone(),
                    op: local.is_some_and(|m| room.is_op(*m)),
                    voice: local.is_some_and(|m| room.is_voiced(*m)),
                }
            })
            .collect();
        let name = room.name.clone();
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

    fn cluster_room_list(&mut self, id: ConnId, page: usize, rooms: Option<Vec<(RoomName, usize)>>) {
        if !self.users.contains_key(&id) {
            return;
        }
        let Some(rooms) = rooms else {
            self.local_rooms(id, page);
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
