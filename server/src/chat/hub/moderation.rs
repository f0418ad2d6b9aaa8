//! Room moderation: what a room's operators may do, and the checks that
//! hold everyone to it.
//!
//! The rules, the same for every front end: whoever opens a room (joins it
//! empty; never the lobby, which server operators keep) is its operator
//! (in a cluster with the link up: the first member in the whole cluster,
//! as Redis decides when the join is numbered);
//! operators give and take operator and voice, kick, ban and unban, and
//! change the room's settings. Every change is told to the room (the one
//! who did it included) and logged with who did it. The checks on
//! ordinary users (a ban, a key, a moderated room, a locked topic) are
//! made where the hub carries out their requests: [`Hub::may_speak`] and
//! [`Hub::may_set_topic`] here, bans and keys in the join itself.
//!
//! Whether an operator may make a change is decided at once, from this
//! instance's state; the change itself is applied by [`Hub::apply_change`]
//! alone: at once with no cluster or the link down, or, with the link up,
//! when it comes back from Redis, on every instance in the room's order
//! (so concurrent changes end the same everywhere).

use std::time::Duration;

use chat_protocol::{ErrorKind, Mask, Nick, Role, RoomSetting, ServerEvent};

use super::{ConnId, Hub};
use crate::chat::request::Target;
use crate::cluster::{Action, RoomEvent};

impl Hub {
    /// The key of a room `id` is in and operates; otherwise the error.
    fn operated_room(&self, id: ConnId, target: &Target) -> Result<String, ErrorKind> {
        let key = self.member_room(id, target)?;
        match self.rooms.get(&key) {
            Some(room) if room.is_op(id) => Ok(key),
            Some(room) => Err(ErrorKind::NotOperator(room.name.clone())),
            None => Err(ErrorKind::NoCurrentRoom),
        }
    }

    /// The member of the room `key` who has `nick`.
    fn member_by_nick(&self, key: &str, nick: &Nick) -> Result<ConnId, ErrorKind> {
        let room = self.rooms.get(key).ok_or(ErrorKind::NoCurrentRoom)?;
        self.nicks
            .get(nick.key().as_str())
            .copied()
            .filter(|&member| room.has(&nick.key(), member))
            .ok_or_else(|| ErrorKind::NotInTheRoom {
                nick: nick.clone(),
                room: room.name.clone(),
            })
    }

    /// `/op`, `/deop`, `/voice`, `/devoice`, IRC's `MODE +o/-o/+v/-v`.
    pub(super) fn set_role(
        &mut self,
        id: ConnId,
        by: Nick,
        target: &Target,
        whom: Nick,
        role: Role,
        on: bool,
    ) -> Result<(), ErrorKind> {
        let key = self.operated_room(id, target)?;
        self.act_on_member(id, &key, whom, Action::Role { by, role, on })
    }

    /// `/kick`, IRC's KICK: the room (the one kicked included) hears why,
    /// then the member is out; they may join again unless banned.
    pub(super) fn kick(
        &mut self,
        id: ConnId,
        by: Nick,
        target: &Target,
        whom: Nick,
        reason: Option<String>,
    ) -> Result<(), ErrorKind> {
        let key = self.operated_room(id, target)?;
        self.act_on_member(id, &key, whom, Action::Kick { by, reason })
    }

    /// Does `action` to the member `whom` of the room `key`: one here, or,
    /// with the link up, one the cluster's member list has (asked of
    /// Redis; the answer finishes the job).
    fn act_on_member(&mut self, id: ConnId, key: &str, whom: Nick, action: Action) -> Result<(), ErrorKind> {
        match self.member_by_nick(key, &whom) {
            Ok(member) => {
                let nick = self.users.get(&member).map_or(whom, |u| u.nick.clone());
                self.announce_action(key, nick, action);
                Ok(())
            }
            Err(error) => {
                if self.cluster_ask_target(id, key, whom, action) {
                    Ok(())
                } else {
                    Err(error)
                }
            }
        }
    }

    /// Logs and carries out `action` on the member `nick` of the room
    /// `key` (checked already: here or in the cluster).
    pub(super) fn announce_action(&mut self, key: &str, nick: Nick, action: Action) {
        let Some(name) = self.rooms.get(key).map(|r| r.name.clone()) else { return };
        let event = match action {
            Action::Role { by, role, on } => {
                log::info!(
                    "{name}: {by} {} {nick} {}",
                    if on { "gave" } else { "took from" },
                    role.name()
                );
                ServerEvent::RoleChanged {
                    room: name,
                    nick,
                    by,
                    role,
                    on,
                }
            }
            Action::Kick { by, reason } => {
                log::info!(
                    "{name}: {by} kicked {nick} ({})",
                    reason.as_deref().unwrap_or("no reason given")
                );
                ServerEvent::Kicked {
                    room: name,
                    nick,
                    by,
                    reason,
                }
            }
        };
        self.moderate(key, &event);
    }

    /// `/ban`, IRC's `MODE +b`: matching users cannot join, and those in the
    /// room can say nothing there.
    pub(super) fn ban(
        &mut self,
        id: ConnId,
        by: Nick,
        target: &Target,
        mask: Mask,
        duration: Option<Duration>,
    ) -> Result<(), ErrorKind> {
        let key = self.operated_room(id, target)?;
        let Some(name) = self.rooms.get(&key).map(|r| r.name.clone()) else { return Ok(()) };
        log::info!("{name}: {by} banned {mask}");
        let event = ServerEvent::BanChanged {
            room: name,
            mask,
            by,
            on: true,
            duration,
        };
        self.moderate(&key, &event);
        Ok(())
    }

    /// `/unban`, IRC's `MODE -b`.
    pub(super) fn unban(
        &mut self,
        id: ConnId,
        by: Nick,
        target: &Target,
        mask: Mask,
    ) -> Result<(), ErrorKind> {
        let key = self.operated_room(id, target)?;
        let Some(room) = self.rooms.get(&key) else { return Ok(()) };
        let name = room.name.clone();
        if !room.bans.iter().any(|ban| ban.mask == mask) {
            return Err(ErrorKind::NoSuchBan { mask, room: name });
        }
        log::info!("{name}: {by} lifted the ban on {mask}");
        let event = ServerEvent::BanChanged {
            room: name,
            mask,
            by,
            on: false,
            duration: None,
        };
        self.moderate(&key, &event);
        Ok(())
    }

    /// `/room SETTING VALUE`, IRC's `MODE +m/+t/+k/+s`.
    pub(super) fn change_setting(
        &mut self,
        id: ConnId,
        by: Nick,
        target: &Target,
        setting: RoomSetting,
    ) -> Result<(), ErrorKind> {
        let key = self.operated_room(id, target)?;
        let Some(name) = self.rooms.get(&key).map(|r| r.name.clone()) else { return Ok(()) };
        log::info!("{name}: {by} changed a setting: {setting:?}");
        let event = ServerEvent::SettingChanged {
            room: name,
            by,
            setting,
        };
        self.moderate(&key, &event);
        Ok(())
    }

    /// A moderation change decided here: with the link up it goes through
    /// Redis and takes effect when it comes back, in the room's order, on
    /// every instance this one included; otherwise at once, here.
    fn moderate(&mut self, key: &str, event: &ServerEvent) {
        let Some(change) = RoomEvent::from_event(event, (self.settings.clock)()) else { return };
        if self.cluster_publish_change(key, &change) {
            return;
        }
        self.apply_change(key, &change);
    }

    /// Applies one moderation change to this instance's copy of the room
    /// `key` and tells its members here, exactly as a change made here:
    /// the one place both the local path (no cluster, or the link down)
    /// and a change come back from Redis (from any instance) go through.
    /// A role is set on the member here with that nick, if any; a kick is
    /// heard by the room (the one kicked included) before they are out.
    pub(super) fn apply_change(&mut self, key: &str, change: &RoomEvent) {
        self.apply_state(key, change);
        let kicked = match change {
            RoomEvent::Kicked { nick, .. } => self.local_member(key, nick),
            _ => None,
        };
        self.publish_crossed(key, None, change.to_event());
        if let Some(member) = kicked {
            self.take_out(member, key);
        }
    }

    /// The state part of [`Hub::apply_change`] (all but a kick's taking
    /// out, which follows the telling): also what a change delivered while
    /// the room's state was being read from Redis is applied again with.
    pub(super) fn apply_state(&mut self, key: &str, change: &RoomEvent) {
        let now = (self.settings.clock)();
        let member = match change {
            RoomEvent::RoleChanged { nick, .. } => self.local_member(key, nick),
            _ => None,
        };
        let Some(room) = self.rooms.get_mut(key) else { return };
        match change {
            RoomEvent::RoleChanged { role, on, .. } => {
                if let Some(member) = member {
                    room.set_role(member, *role, *on);
                }
            }
            RoomEvent::BanChanged { on: true, .. } => {
                if let Some(ban) = change.ban_added() {
                    room.add_ban(ban, now);
                }
            }
            RoomEvent::BanChanged { mask, on: false, .. } => room.bans.retain(|ban| ban.mask != *mask),
            RoomEvent::SettingChanged { setting, .. } => room.settings.apply(setting),
            _ => {}
        }
    }

    /// The member of the room `key` on this instance with `nick` (in any
    /// case), if any.
    pub(super) fn local_member(&self, key: &str, nick: &Nick) -> Option<ConnId> {
        let nick_key = nick.key();
        let member = self.nicks.get(nick_key.as_str()).copied()?;
        self.rooms
            .get(key)
            .filter(|r| r.has(&nick_key, member))
            .map(|_| member)
    }

    /// Whether `id` may say something in the room `key`: not in a
    /// moderated room without voice, not while banned (operators and
    /// voiced members always may).
    pub(super) fn may_speak(&mut self, id: ConnId, key: &str) -> Result<(), ErrorKind> {
        let now = (self.settings.clock)();
        let Some(user) = self.users.get(&id) else { return Ok(()) };
        let Some(room) = self.rooms.get_mut(key) else { return Ok(()) };
        if room.is_op(id) || room.is_voiced(id) {
            return Ok(());
        }
        if room.settings.moderated {
            return Err(ErrorKind::Moderated(room.name.clone()));
        }
        if room
            .ban_on(user.nick.as_str(), &user.user, user.addr.ip(), now)
            .is_some()
        {
            return Err(ErrorKind::Silenced(room.name.clone()));
        }
        Ok(())
    }

    /// Whether `id` may set the topic of the room `key`.
    pub(super) fn may_set_topic(&self, id: ConnId, key: &str) -> Result<(), ErrorKind> {
        match self.rooms.get(key) {
            Some(room) if room.settings.topic_locked && !room.is_op(id) => {
                Err(ErrorKind::TopicLocked(room.name.clone()))
            }
            _ => Ok(()),
        }
    }
}
