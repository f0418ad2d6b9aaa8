//! What crosses between instances: the room events and private messages
//! an instance publishes through Redis, as JSON.
//!
//! [`ServerEvent`] cannot cross as it is (it holds `&'static` help text and
//! IRC replies), so the events that do cross have an enum of their own,
//! [`RoomEvent`], built from the protocol's serde-ready names, and turned
//! back into the very same [`ServerEvent`] on every instance: a line from
//! another instance reads exactly like a local one.

use chat_protocol::{LeaveReason, Nick, RoomName, ServerEvent, Style, Topic};
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
}

impl RoomEvent {
    /// The crossing form of `event`, said in the room `room`; `None` for an
    /// event that stays on its instance (a role, a kick, a ban, a setting:
    /// those act on local state).
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
        }
    }

    /// The room it is said in.
    pub fn room(&self) -> &RoomName {
        match self {
            RoomEvent::Said { room, .. }
            | RoomEvent::Joined { room, .. }
            | RoomEvent::Left { room, .. }
            | RoomEvent::NickChanged { room, .. }
            | RoomEvent::TopicChanged { room, .. } => room,
        }
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
