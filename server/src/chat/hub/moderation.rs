//! Room moderation: what a room's operators may do, and the checks that
//! hold everyone to it.
//!
//! The rules, the same for every front end: whoever opens a room (joins it
//! empty; never the lobby, which server operators keep) is its operator;
//! operators give and take operator and voice, kick, ban and unban, and
//! change the room's settings. Every change is told to the room (the one
//! who did it included) and logged with who did it. The checks on
//! ordinary users (a ban, a key, a moderated room, a locked topic) are
//! made where the hub carries out their requests: [`Hub::may_speak`] and
//! [`Hub::may_set_topic`] here, bans and keys in the join itself.

use std::time::Duration;

use chat_protocol::moderation::BanInfo;
use chat_protocol::{ErrorKind, Mask, Nick, Role, RoomSetting, ServerEvent};

use super::{ConnId, Hub};
use crate::chat::request::Target;
use crate::chat::room::MAX_BANS;

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
        let member = self.member_by_nick(&key, &whom)?;
        let nick = self.users.get(&member).map_or(whom, |u| u.nick.clone());
        let Some(room) = self.rooms.get_mut(&key) else { return Ok(()) };
        room.set_role(member, role, on);
        let name = room.name.clone();
        log::info!(
            "{name}: {by} {} {nick} {}",
            if on { "gave" } else { "took from" },
            role.name()
        );
        let event = ServerEvent::RoleChanged {
            room: name,
            nick,
            by,
            role,
            on,
        };
        self.publish(&key, None, event);
        Ok(())
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
        let member = self.member_by_nick(&key, &whom)?;
        let nick = self.users.get(&member).map_or(whom, |u| u.nick.clone());
        let name = self
            .rooms
            .get(&key)
            .map(|r| r.name.clone())
            .ok_or(ErrorKind::NoCurrentRoom)?;
        log::info!(
            "{name}: {by} kicked {nick} ({})",
            reason.as_deref().unwrap_or("no reason given")
        );
        let event = ServerEvent::Kicked {
            room: name,
            nick,
            by,
            reason,
        };
        self.publish(&key, None, event);
        self.take_out(member, &key);
        Ok(())
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
        let now = (self.settings.clock)();
        let Some(room) = self.rooms.get_mut(&key) else { return Ok(()) };
        room.bans
            .retain(|ban| ban.mask != mask && ban.until.is_none_or(|until| until > now));
        if room.bans.len() >= MAX_BANS {
            // The oldest makes way: a list walked on every join stays short.
            room.bans.remove(0);
        }
        let until = duration.map(|d| now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)));
        room.bans.push(BanInfo {
            mask: mask.clone(),
            by: by.to_string(),
            at: now,
            until,
        });
        let name = room.name.clone();
        log::info!("{name}: {by} banned {mask}");
        let event = ServerEvent::BanChanged {
            room: name,
            mask,
            by,
            on: true,
            duration,
        };
        self.publish(&key, None, event);
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
        let Some(room) = self.rooms.get_mut(&key) else { return Ok(()) };
        let before = room.bans.len();
        room.bans.retain(|ban| ban.mask != mask);
        let name = room.name.clone();
        if room.bans.len() == before {
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
        self.publish(&key, None, event);
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
        let Some(room) = self.rooms.get_mut(&key) else { return Ok(()) };
        room.settings.apply(&setting);
        let name = room.name.clone();
        log::info!("{name}: {by} changed a setting: {setting:?}");
        let event = ServerEvent::SettingChanged {
            room: name,
            by,
            setting,
        };
        self.publish(&key, None, event);
        Ok(())
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
