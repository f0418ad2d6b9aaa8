//! One room: who is in it and with which roles, its topic, its settings,
//! its bans and its history.
//!
//! Members are kept twice, each way for one job:
//! - one list per I/O thread (indexed by [`ConnId::shard`]), shared (an
//!   `Arc`) with every delivery in flight: a line to a room of 10,000 costs
//!   one message per I/O thread and no copy of the list; a list is copied
//!   only when it changes while a delivery still holds it;
//! - by nick, in order, so `/who` reads one page without sorting anything.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use chat_protocol::moderation::BanInfo;
use chat_protocol::{Mask, RoomName, RoomSettings, Topic};

use crate::chat::history::History;
use crate::chat::messages::ConnId;

/// The most bans one room keeps (IRC's `MAXLIST`): a ban list is walked
/// on every join.
pub const MAX_BANS: usize = 100;

/// One room.
#[derive(Debug)]
pub struct Room {
    /// The name as first used, with its case.
    pub name: RoomName,
    /// Its key (see [`RoomName::key`]), shared with the members' lists of
    /// their rooms rather than copied into each.
    pub key: Arc<str>,
    /// The members on each I/O thread.
    by_shard: Vec<Arc<Vec<ConnId>>>,
    /// Members by nick key, in order (the key shared with the hub's
    /// table of nicks, not copied per room).
    by_nick: BTreeMap<Arc<str>, ConnId>,
    /// Its operators: whoever opened it (joined it empty; never the lobby,
    /// which server operators keep), and whom operators made so.
    ops: HashSet<ConnId>,
    /// Its voiced members: they speak in a moderated room.
    voiced: HashSet<ConnId>,
    /// What its operators set.
    pub settings: RoomSettings,
    /// Its bans, oldest first (at most [`MAX_BANS`]).
    pub bans: Vec<BanInfo>,
    /// Its topic, if someone set one.
    pub topic: Option<Topic>,
    /// The lines it remembers.
    pub history: History,
    /// When it was last used (said in, joined), as the hub counts uses:
    /// empty rooms lose their history least recently used first.
    pub used_at: u64,
}

impl Room {
    /// An empty room called `name`.
    pub fn new(name: RoomName) -> Room {
        Room {
            key: name.key().into(),
            name,
            by_shard: Vec::new(),
            by_nick: BTreeMap::new(),
            ops: HashSet::new(),
            voiced: HashSet::new(),
            settings: RoomSettings::default(),
            bans: Vec::new(),
            topic: None,
            history: History::default(),
            used_at: 0,
        }
    }

    /// How many members it has.
    pub fn len(&self) -> usize {
        self.by_nick.len()
    }

    /// True when no one is in it.
    pub fn is_empty(&self) -> bool {
        self.by_nick.is_empty()
    }

    /// Whether the user with this nick key and id is a member.
    pub fn has(&self, nick_key: &str, id: ConnId) -> bool {
        self.by_nick.get(nick_key) == Some(&id)
    }

    /// Whether `id` is a member.
    pub fn has_member(&self, id: ConnId) -> bool {
        self.by_shard
            .get(id.shard)
            .is_some_and(|members| members.contains(&id))
    }

    /// Whether `id` is one of its operators.
    pub fn is_op(&self, id: ConnId) -> bool {
        self.ops.contains(&id)
    }

    /// Whether `id` has voice in it.
    pub fn is_voiced(&self, id: ConnId) -> bool {
        self.voiced.contains(&id)
    }

    /// Gives or takes a role (of a member).
    pub fn set_role(&mut self, id: ConnId, role: chat_protocol::Role, on: bool) {
        let set = match role {
            chat_protocol::Role::Op => &mut self.ops,
            chat_protocol::Role::Voice => &mut self.voiced,
        };
        if on {
            set.insert(id);
        } else {
            set.remove(&id);
        }
    }

    /// Whether it is the lobby, which has no operators.
    pub fn is_lobby(&self) -> bool {
        self.name.as_str() == RoomName::LOBBY
    }

    /// The ban that keeps the user `nick` (user name `user`, at `address`)
    /// out, if one does at `now` (milliseconds since the epoch); bans that
    /// have run out are forgotten on the way.
    pub fn ban_on(&mut self, nick: &str, user: &str, address: IpAddr, now: u64) -> Option<&Mask> {
        self.bans.retain(|ban| ban.until.is_none_or(|until| until > now));
        self.bans
            .iter()
            .find(|ban| ban.mask.matches(nick, user, address))
            .map(|ban| &ban.mask)
    }

    /// Adds a ban, replacing one on the same mask; bans that have run out
    /// at `now` go first, and past [`MAX_BANS`] the oldest makes way: a
    /// list walked on every join stays short.
    pub fn add_ban(&mut self, ban: BanInfo, now: u64) {
        self.bans
            .retain(|b| b.mask != ban.mask && b.until.is_none_or(|until| until > now));
        if self.bans.len() >= MAX_BANS {
            self.bans.remove(0);
        }
        self.bans.push(ban);
    }

    /// Adds a member; the first to join an empty room is its operator,
    /// unless the room is the lobby.
    pub fn add(&mut self, id: ConnId, nick_key: Arc<str>) {
        if self.by_nick.is_empty() && !self.is_lobby() {
            self.ops.insert(id);
        }
        if self.by_shard.len() <= id.shard {
            self.by_shard.resize_with(id.shard + 1, Arc::default);
        }
        if let Some(list) = self.by_shard.get_mut(id.shard) {
            Arc::make_mut(list).push(id);
        }
        self.by_nick.insert(nick_key, id);
    }

    /// Takes a member out.
    pub fn remove(&mut self, id: ConnId, nick_key: &str) {
        if let Some(list) = self.by_shard.get_mut(id.shard) {
            if let Some(at) = list.iter().position(|&m| m == id) {
                Arc::make_mut(list).swap_remove(at);
            }
        }
        self.by_nick.remove(nick_key);
        self.ops.remove(&id);
        self.voiced.remove(&id);
    }

    /// A member changed nick.
    pub fn rename(&mut self, id: ConnId, old_key: &str, new_key: Arc<str>) {
        if self.by_nick.remove(old_key).is_some() {
            self.by_nick.insert(new_key, id);
        }
    }

    /// The members on each I/O thread, shared.
    pub fn by_shard(&self) -> impl Iterator<Item = (usize, &Arc<Vec<ConnId>>)> {
        self.by_shard.iter().enumerate()
    }

    /// Every member's id.
    pub fn members(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.by_nick.values().copied()
    }

    /// The ids of the members on a page of the nick order.
    pub fn page(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = ConnId> + '_ {
        self.by_nick.values().skip(range.start).take(range.len()).copied()
    }
}
