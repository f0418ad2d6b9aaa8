//! What crosses between instances: the room events and private messages
//! an instance publishes through Redis, as JSON.
//!
//! [`ServerEvent`] cannot cross as it is (it holds `&'static` help text and
//! IRC replies), so the events that do cross have an enum of their own,
//! [`RoomEvent`], built from the protocol's serde-ready names, and turned
//! back into the very same [`ServerEvent`] on every instance: a line from
//! another instance reads exactly like a local one.

use std::time::Duration;

use chat_protocol::{LeaveReason, Mask, Nick, Role, RoomName, RoomSetting, ServerEvent, Style, Topic};
use serde::{Deserialize, Serialize};

use crate::chat::messages::ConnId;

/// A room event that crosses instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoomEvent {
    /// A chat line, action or notice (`style`).
    Said {
        /// The room.
        room: RoomName,
        /// Who said it.
        from: Nick,
        /// What.
        text: String,
        /// How.
        style: Style,
        /// When, in milliseconds since the Unix epoch (for the history).
        at: u64,
    },
    /// Someone came into the room.
    Joined {
        /// The room.
        room: RoomName,
        /// Who.
        nick: Nick,
        /// Not told to the room (it is over `--quiet-above` on the
        /// instance of the one who came): it only marks, for that
        /// instance, where in the room's order they came in.
        #[serde(default)]
        quiet: bool,
        /// The room had no live member anywhere in the cluster: the one who
        /// came is its operator. Decided by the publishing script, which
        /// runs the one of two payloads that holds (see
        /// [`crate::cluster::link`]); never for the lobby.
        #[serde(default)]
        first: bool,
    },
    /// Someone left the room.
    Left {
        /// The room.
        room: RoomName,
        /// Who.
        nick: Nick,
        /// Why.
        reason: LeaveReason,
    },
    /// A member changed nick.
    NickChanged {
        /// The room the change is told in.
        room: RoomName,
        /// The old nick.
        old: Nick,
        /// The new one.
        new: Nick,
    },
    /// The topic changed.
    TopicChanged {
        /// The room.
        room: RoomName,
        /// The new topic.
        topic: Topic,
    },
    /// An operator gave or took a role. Roles live with the member's
    /// instance: the one that has a member with that nick applies it.
    RoleChanged {
        /// The room.
        room: RoomName,
        /// Whose role.
        nick: Nick,
        /// Who did it.
        by: Nick,
        /// Which role.
        role: Role,
        /// Given or taken.
        on: bool,
    },
    /// An operator put a member out of the room.
    Kicked {
        /// The room.
        room: RoomName,
        /// Who.
        nick: Nick,
        /// Who did it.
        by: Nick,
        /// Why, if they said.
        reason: Option<String>,
    },
    /// An operator banned a mask or lifted a ban.
    BanChanged {
        /// The room.
        room: RoomName,
        /// What the ban matches.
        mask: Mask,
        /// Who did it.
        by: Nick,
        /// Banned (true) or lifted.
        on: bool,
        /// How long, as the operator said it (for the announcement).
        duration: Option<Duration>,
        /// When it was set, in milliseconds since the Unix epoch: the
        /// origin's clock, so every instance keeps the same ban.
        at: u64,
        /// When it ends, in the same unit (`at` plus the duration), so
        /// every instance and Redis agree on it; `None` for never.
        until: Option<u64>,
    },
    /// An operator changed a setting.
    SettingChanged {
        /// The room.
        room: RoomName,
        /// Who did it.
        by: Nick,
        /// The change.
        setting: RoomSetting,
    },
}

impl RoomEvent {
    /// The ban a ban being set adds, as a room's list keeps it (and the
    /// cluster's copy in Redis); `None` for any other event.
    pub fn ban_added(&self) -> Option<chat_protocol::moderation::BanInfo> {
        match self {
            RoomEvent::BanChanged {
                mask,
                by,
                on: true,
                at,
                until,
                ..
            } => Some(chat_protocol::moderation::BanInfo {
                mask: mask.clone(),
                by: by.to_string(),
                at: *at,
                until: *until,
            }),
            _ => None,
        }
    }

    /// The crossing form of `event`, said at `at` (milliseconds since the
    /// epoch: a line's time, a ban's start); `None` for an event that stays
    /// on its instance.
    pub fn from_event(event: &ServerEvent, at: u64) -> Option<RoomEvent> {
        Some(match event {
            ServerEvent::Said { room, from, text } => RoomEvent::Said {
                room: room.clone(),
                from: from.clone(),
                text: text.clone(),
                style: Style::Message,
                at,
            },
            ServerEvent::Action { room, from, text } => RoomEvent::Said {
                room: room.clone(),
                from: from.clone(),
                text: text.clone(),
                style: Style::Action,
                at,
            },
            ServerEvent::Noticed { room, from, text } => RoomEvent::Said {
                room: room.clone(),
                from: from.clone(),
                text: text.clone(),
                style: Style::Notice,
                at,
            },
            ServerEvent::Joined { nick, room } => RoomEvent::Joined {
                room: room.clone(),
                nick: nick.clone(),
                quiet: false,
                first: false,
            },
            ServerEvent::Left { nick, room, reason } => RoomEvent::Left {
                room: room.clone(),
                nick: nick.clone(),
                reason: reason.clone(),
            },
            ServerEvent::TopicChanged { room, topic } => RoomEvent::TopicChanged {
                room: room.clone(),
                topic: topic.clone(),
            },
            ServerEvent::RoleChanged {
                room,
                nick,
                by,
                role,
                on,
            } => RoomEvent::RoleChanged {
                room: room.clone(),
                nick: nick.clone(),
                by: by.clone(),
                role: *role,
                on: *on,
            },
            ServerEvent::Kicked {
                room,
                nick,
                by,
                reason,
            } => RoomEvent::Kicked {
                room: room.clone(),
                nick: nick.clone(),
                by: by.clone(),
                reason: reason.clone(),
            },
            ServerEvent::BanChanged {
                room,
                mask,
                by,
                on,
                duration,
            } => RoomEvent::BanChanged {
                room: room.clone(),
                mask: mask.clone(),
                by: by.clone(),
                on: *on,
                duration: *duration,
                at,
                until: duration.map(|d| at.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
            },
            ServerEvent::SettingChanged { room, by, setting } => RoomEvent::SettingChanged {
                room: room.clone(),
                by: by.clone(),
                setting: setting.clone(),
            },
            _ => return None,
        })
    }

    /// The event members are told, as for a local one.
    pub fn to_event(&self) -> ServerEvent {
        match self.clone() {
            RoomEvent::Said {
                room,
                from,
                text,
                style: Style::Message,
                ..
            } => ServerEvent::Said { room, from, text },
            RoomEvent::Said {
                room,
                from,
                text,
                style: Style::Action,
                ..
            } => ServerEvent::Action { room, from, text },
            RoomEvent::Said {
                room,
                from,
                text,
                style: Style::Notice,
                ..
            } => ServerEvent::Noticed { room, from, text },
            RoomEvent::Joined { room, nick, .. } => ServerEvent::Joined { nick, room },
            RoomEvent::Left { room, nick, reason } => ServerEvent::Left { nick, room, reason },
            RoomEvent::NickChanged { old, new, .. } => ServerEvent::NickChanged { old, new },
            RoomEvent::TopicChanged { room, topic } => ServerEvent::TopicChanged { room, topic },
            RoomEvent::RoleChanged {
                room,
                nick,
                by,
                role,
                on,
            } => ServerEvent::RoleChanged {
                room,
                nick,
                by,
                role,
                on,
            },
            RoomEvent::Kicked {
                room,
                nick,
                by,
                reason,
            } => ServerEvent::Kicked {
                room,
                nick,
                by,
                reason,
            },
            RoomEvent::BanChanged {
                room,
                mask,
                by,
                on,
                duration,
                ..
            } => ServerEvent::BanChanged {
                room,
                mask,
                by,
                on,
                duration,
            },
            RoomEvent::SettingChanged { room, by, setting } => {
                ServerEvent::SettingChanged { room, by, setting }
            }
        }
    }

    /// The room it is said in.
    pub fn room(&self) -> &RoomName {
        match self {
            RoomEvent::Said { room, .. }
            | RoomEvent::Joined { room, .. }
            | RoomEvent::Left { room, .. }
            | RoomEvent::NickChanged { room, .. }
            | RoomEvent::TopicChanged { room, .. }
            | RoomEvent::RoleChanged { room, .. }
            | RoomEvent::Kicked { room, .. }
            | RoomEvent::BanChanged { room, .. }
            | RoomEvent::SettingChanged { room, .. } => room,
        }
    }

    /// Whether it is a moderation change (a role, a kick, a ban, a
    /// setting): applied to each instance's copy of the room when it comes
    /// back from Redis, the origin's included.
    pub fn is_moderation(&self) -> bool {
        matches!(
            self,
            RoomEvent::RoleChanged { .. }
                | RoomEvent::Kicked { .. }
                | RoomEvent::BanChanged { .. }
                | RoomEvent::SettingChanged { .. }
        )
    }
}

/// A room event with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The instance that published it.
    pub origin: String,
    /// Its number on that instance: a line the origin delivered itself
    /// when its link failed, and which Redis ran all the same, is known
    /// again when it comes back.
    #[serde(default)]
    pub id: u64,
    /// On that instance, the connection not to tell (the sender of a chat
    /// line, the one who joined or left): `(shard, slot, serial)`.
    pub except: Option<(usize, usize, u64)>,
    /// The event.
    pub event: RoomEvent,
}

impl Envelope {
    /// The connection left out, if this instance is the origin.
    pub fn except_here(&self, instance: &str) -> Option<ConnId> {
        if self.origin != instance {
            return None;
        }
        self.except
            .map(|(shard, slot, serial)| ConnId { shard, slot, serial })
    }
}

/// A private message to a user on another instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Private {
    /// Who sent it.
    pub from: Nick,
    /// To whom (the key the recipient's instance looks up).
    pub to: Nick,
    /// What.
    pub text: String,
    /// How.
    pub style: Style,
}

/// Reads a published room line, `SEQ JSON`.
///
/// # Errors
/// A message saying what was wrong (another program publishing on our
/// channels, or a newer version's format).
pub fn parse_line(payload: &[u8]) -> Result<(u64, Envelope), String> {
    let text = std::str::from_utf8(payload).map_err(|e| e.to_string())?;
    let (seq, json) = text.split_once(' ').ok_or("no sequence number")?;
    let seq = seq
        .parse::<u64>()
        .map_err(|e| format!("bad sequence number: {e}"))?;
    let envelope = serde_json::from_str(json).map_err(|e| e.to_string())?;
    Ok((seq, envelope))
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

    #[test]
    fn room_events_cross_and_come_back_as_the_same_event() {
        let events = [
            ServerEvent::Said {
                room: room("#a"),
                from: nick("alice"),
                text: "hi".into(),
            },
            ServerEvent::Action {
                room: room("#a"),
                from: nick("alice"),
                text: "waves".into(),
            },
            ServerEvent::Joined {
                nick: nick("bob"),
                room: room("#a"),
            },
            ServerEvent::Left {
                nick: nick("bob"),
                room: room("#a"),
                reason: LeaveReason::Quit(Some("bye".into())),
            },
        ];
        for event in events {
            let crossing = RoomEvent::from_event(&event, 5).unwrap();
            let envelope = Envelope {
                origin: "i1".into(),
                id: 9,
                except: Some((0, 1, 2)),
                event: crossing,
            };
            let line = format!("42 {}", serde_json::to_string(&envelope).unwrap());
            let (seq, back) = parse_line(line.as_bytes()).unwrap();
            assert_eq!(seq, 42);
            assert_eq!(back.event.to_event(), event);
            assert_eq!(back.except_here("i2"), None);
            assert_eq!(back.except_here("i1").map(|c| c.serial), Some(2));
        }
    }

    #[test]
    fn moderation_events_cross_and_come_back_as_the_same_event() {
        let events = [
            ServerEvent::RoleChanged {
                room: room("#a"),
                nick: nick("bob"),
                by: nick("alice"),
                role: Role::Op,
                on: true,
            },
            ServerEvent::Kicked {
                room: room("#a"),
                nick: nick("bob"),
                by: nick("alice"),
                reason: Some("spam".into()),
            },
            ServerEvent::BanChanged {
                room: room("#a"),
                mask: Mask::parse("bob").unwrap(),
                by: nick("alice"),
                on: true,
                duration: Some(Duration::from_secs(60)),
            },
            ServerEvent::BanChanged {
                room: room("#a"),
                mask: Mask::parse("bob").unwrap(),
                by: nick("alice"),
                on: false,
                duration: None,
            },
            ServerEvent::SettingChanged {
                room: room("#a"),
                by: nick("alice"),
                setting: RoomSetting::Key(Some("secret".into())),
            },
        ];
        for event in events {
            let crossing = RoomEvent::from_event(&event, 1000).unwrap();
            assert!(crossing.is_moderation());
            let envelope = Envelope {
                origin: "i1".into(),
                id: 1,
                except: None,
                event: crossing.clone(),
            };
            let line = format!("7 {}", serde_json::to_string(&envelope).unwrap());
            let (_, back) = parse_line(line.as_bytes()).unwrap();
            assert_eq!(back.event, crossing);
            assert_eq!(back.event.to_event(), event);
        }
    }

    #[test]
    fn a_ban_crosses_with_its_absolute_expiry() {
        let event = ServerEvent::BanChanged {
            room: room("#a"),
            mask: Mask::parse("bob").unwrap(),
            by: nick("alice"),
            on: true,
            duration: Some(Duration::from_secs(60)),
        };
        let crossing = RoomEvent::from_event(&event, 1000).unwrap();
        assert!(matches!(
            crossing,
            RoomEvent::BanChanged {
                at: 1000,
                until: Some(61_000),
                ..
            }
        ));
    }

    #[test]
    fn a_join_from_an_older_version_reads_as_not_first() {
        let old = r##"3 {"origin":"i1","id":1,"except":null,"event":{"Joined":{"room":"#a","nick":"bob"}}}"##;
        let (_, back) = parse_line(old.as_bytes()).unwrap();
        assert!(matches!(
            back.event,
            RoomEvent::Joined {
                first: false,
                quiet: false,
                ..
            }
        ));
    }

    #[test]
    fn local_only_events_do_not_cross() {
        assert_eq!(RoomEvent::from_event(&ServerEvent::Bye, 0), None);
    }

    #[test]
    fn garbage_on_a_channel_is_an_error_not_a_panic() {
        for bad in [&b""[..], b"x", b"12", b"12 {", b"-1 {}", b"\xff\xfe"] {
            assert!(parse_line(bad).is_err(), "{bad:?}");
        }
    }
}
