//! What the chat state owner tells a user, independent of the wire format.
//!
//! The server's state owner (the hub) speaks only in [`ServerEvent`]s; the
//! front end that owns a connection turns each event into its wire format.
//! This module also holds that conversion for the line protocol,
//! [`ServerEvent::lines`], so the wording of every notice and error is
//! defined in one place. A later front end (IRC, say) maps the same events
//! to its own lines without touching the hub.

use crate::command::{CommandError, COMMANDS};
use crate::decoder::DecodeError;
use crate::line::ServerLine;
use crate::names::{Nick, RoomName};

/// Something the server tells one or more users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// The first thing a new connection hears: its nick and room.
    Welcome {
        /// The nick given to the new user.
        nick: Nick,
        /// The room it is in.
        room: RoomName,
    },
    /// A message in the room.
    Said {
        /// Who said it.
        from: Nick,
        /// The sanitized text.
        text: String,
    },
    /// A `/me` in the room.
    Action {
        /// Who did it.
        from: Nick,
        /// The sanitized text.
        text: String,
    },
    /// A private message to the recipient.
    PrivateFrom {
        /// Who sent it.
        from: Nick,
        /// The sanitized text.
        text: String,
    },
    /// Confirmation to the sender of a private message.
    PrivateTo {
        /// Who it went to.
        to: Nick,
        /// The sanitized text.
        text: String,
    },
    /// Confirmation of the recipient's own `/nick`.
    NickSet {
        /// The new nick.
        nick: Nick,
    },
    /// Someone in the room changed nick.
    NickChanged {
        /// The nick before.
        old: Nick,
        /// The nick after.
        new: Nick,
    },
    /// Confirmation of the recipient's own `/join`.
    JoinedRoom {
        /// The room now joined.
        room: RoomName,
    },
    /// Someone entered the room.
    Joined {
        /// Who.
        nick: Nick,
        /// Which room.
        room: RoomName,
    },
    /// Someone left the room.
    Left {
        /// Who.
        nick: Nick,
        /// Which room.
        room: RoomName,
        /// Why.
        reason: LeaveReason,
    },
    /// Reply to `/who`.
    Who {
        /// The room asked about.
        room: RoomName,
        /// Its members, sorted by nick.
        nicks: Vec<Nick>,
    },
    /// Reply to `/rooms`.
    Rooms {
        /// Each room with its member count, sorted by name.
        rooms: Vec<(RoomName, usize)>,
    },
    /// Reply to `/help`.
    Help,
    /// Reply to `/quit`, just before the server closes the connection.
    Bye,
    /// The server is stopping and will close the connection.
    ShuttingDown,
    /// The recipient sent nothing for too long and is being disconnected.
    IdleTimeout {
        /// How long it was quiet, in whole seconds.
        secs: u64,
    },
    /// The recipient's last line could not be carried out.
    Error(ErrorKind),
}

/// Why someone left a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaveReason {
    /// They joined another room.
    Moved(RoomName),
    /// They said `/quit`, perhaps with a reason.
    Quit(Option<String>),
    /// Their connection closed without `/quit`.
    Disconnected,
    /// The server is shutting down.
    ServerShutdown,
    /// Their connection could not keep up with what was sent to it: its
    /// outbound queue overflowed and the server dropped it.
    SlowConsumer,
    /// They sent nothing for longer than the server's idle timeout.
    Idle,
}

/// What went wrong with a user's line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// Occurs when the line could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Occurs when the line is not a valid command.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// Occurs for `/nick` to a nick someone else has.
    #[error("nick {0} is already in use")]
    NickInUse(Nick),
    /// Occurs for `/nick` to a nick that looks like the nick of someone
    /// else who is online: the two share a [`Nick::skeleton`].
    #[error("nick {asked} looks too much like {existing}, who is online")]
    NickConfusable {
        /// The nick asked for.
        asked: Nick,
        /// The nick in use that it looks like.
        existing: Nick,
    },
    /// Occurs for `/msg` to a nick nobody has.
    #[error("no such nick: {0}")]
    NoSuchNick(Nick),
    /// Occurs for `/join` of the room the user is in.
    #[error("you are already in {0}")]
    AlreadyInRoom(RoomName),
    /// Occurs for a connection over `--max-clients`; it is then closed.
    #[error("server full")]
    ServerFull,
    /// Occurs for a connection over `--max-per-ip` from one address; it is
    /// then closed.
    #[error("too many connections from your address")]
    TooManyFromAddress,
}

fn notice(text: String) -> ServerLine {
    ServerLine::Notice(text)
}

impl ServerEvent {
    /// The lines of the line protocol that say this event, in order.
    pub fn lines(&self) -> Vec<ServerLine> {
        let line = match self {
            ServerEvent::Welcome { nick, room } => notice(format!(
                "welcome to chat-server, {nick}! you are in {room}; type /help for commands"
            )),
            ServerEvent::Said { from, text } => ServerLine::Message {
                from: from.to_string(),
                text: text.clone(),
            },
            ServerEvent::Action { from, text } => ServerLine::Action {
                from: from.to_string(),
                text: text.clone(),
            },
            ServerEvent::PrivateFrom { from, text } => ServerLine::PrivateFrom {
                from: from.to_string(),
                text: text.clone(),
            },
            ServerEvent::PrivateTo { to, text } => ServerLine::PrivateTo {
                to: to.to_string(),
                text: text.clone(),
            },
            ServerEvent::NickSet { nick } => notice(format!("you are now known as {nick}")),
            ServerEvent::NickChanged { old, new } => notice(format!("{old} is now known as {new}")),
            ServerEvent::JoinedRoom { room } => notice(format!("you joined {room}")),
            ServerEvent::Joined { nick, room } => notice(format!("{nick} joined {room}")),
            ServerEvent::Left { nick, room, reason } => {
                notice(format!("{nick} left {room} ({})", reason.describe()))
            }
            ServerEvent::Who { room, nicks } => {
                let names: Vec<&str> = nicks.iter().map(Nick::as_str).collect();
                notice(format!("{} in {room}: {}", nicks.len(), names.join(", ")))
            }
            ServerEvent::Rooms { rooms } => {
                let list: Vec<String> = rooms.iter().map(|(room, n)| format!("{room} ({n})")).collect();
                let noun = if rooms.len() == 1 { "room" } else { "rooms" };
                notice(format!("{} {noun}: {}", rooms.len(), list.join(", ")))
            }
            ServerEvent::Help => return help_lines(),
            ServerEvent::Bye => notice("bye".to_string()),
            ServerEvent::ShuttingDown => notice("server shutting down".to_string()),
            ServerEvent::IdleTimeout { secs } => {
                notice(format!("closing idle connection (nothing received for {secs} s)"))
            }
            ServerEvent::Error(kind) => ServerLine::Error(kind.to_string()),
        };
        vec![line]
    }

    /// Appends the lines of this event, each with its `\n`, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for line in self.lines() {
            line.encode(out);
        }
    }
}

fn help_lines() -> Vec<ServerLine> {
    let width = COMMANDS.iter().map(|(usage, _)| usage.len()).max().unwrap_or(0);
    let mut lines = vec![notice("commands:".to_string())];
    lines.extend(
        COMMANDS
            .iter()
            .map(|(usage, what)| notice(format!("  {usage:<width$}  {what}"))),
    );
    lines.push(notice(
        "text not starting with / is said to your room; //text says /text".to_string(),
    ));
    lines
}

impl LeaveReason {
    /// The reason as shown in parentheses after "left #room".
    pub fn describe(&self) -> String {
        match self {
            LeaveReason::Moved(room) => format!("moved to {room}"),
            LeaveReason::Quit(None) => "quit".to_string(),
            LeaveReason::Quit(Some(reason)) => format!("quit: {reason}"),
            LeaveReason::Disconnected => "disconnect".to_string(),
            LeaveReason::ServerShutdown => "server shutting down".to_string(),
            LeaveReason::SlowConsumer => "slow consumer".to_string(),
            LeaveReason::Idle => "idle".to_string(),
        }
    }
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

    fn text_of(event: ServerEvent) -> String {
        let mut out = Vec::new();
        event.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn notices_read_as_documented() {
        assert_eq!(
            text_of(ServerEvent::Welcome {
                nick: nick("guest1"),
                room: room("lobby")
            }),
            "-- welcome to chat-server, guest1! you are in #lobby; type /help for commands\n"
        );
        assert_eq!(
            text_of(ServerEvent::Left {
                nick: nick("bob"),
                room: room("lobby"),
                reason: LeaveReason::Moved(room("rust"))
            }),
            "-- bob left #lobby (moved to #rust)\n"
        );
        assert_eq!(
            text_of(ServerEvent::Left {
                nick: nick("bob"),
                room: room("lobby"),
                reason: LeaveReason::Quit(Some("bye all".into()))
            }),
            "-- bob left #lobby (quit: bye all)\n"
        );
        assert_eq!(
            text_of(ServerEvent::Who {
                room: room("lobby"),
                nicks: vec![nick("alice"), nick("bob")]
            }),
            "-- 2 in #lobby: alice, bob\n"
        );
        assert_eq!(
            text_of(ServerEvent::Rooms {
                rooms: vec![(room("lobby"), 2), (room("rust"), 1)]
            }),
            "-- 2 rooms: #lobby (2), #rust (1)\n"
        );
        assert_eq!(
            text_of(ServerEvent::Error(ErrorKind::ServerFull)),
            "!! server full\n"
        );
        assert_eq!(
            text_of(ServerEvent::Error(ErrorKind::NickConfusable {
                asked: nick("aIice"),
                existing: nick("alice")
            })),
            "!! nick aIice looks too much like alice, who is online\n"
        );
        assert_eq!(
            text_of(ServerEvent::Error(ErrorKind::Decode(DecodeError::TooLong {
                max: 10
            }))),
            "!! line too long (max 10 bytes); discarded up to the next newline\n"
        );
    }

    #[test]
    fn help_lists_every_command_as_notices() {
        let lines = ServerEvent::Help.lines();
        assert_eq!(lines.len(), COMMANDS.len() + 2);
        for (usage, _) in COMMANDS {
            assert!(
                lines
                    .iter()
                    .any(|l| matches!(l, ServerLine::Notice(t) if t.trim_start().starts_with(usage))),
                "{usage} missing from /help"
            );
        }
    }
}
