//! Recognising the server notices that tell this client who and where it is.
//!
//! The prompt shows the current nick and room, and `--reconnect` rejoins
//! them, so the client follows the server's own confirmations rather than
//! guessing from what it sent: a `/nick` can be refused (`!! nick alice is
//! already in use`), and only the server knows the `guestN` nick it gave.
//! Three notices say it, worded in `chat_protocol::event`
//! ([`ServerEvent::lines`](chat_protocol::ServerEvent::lines)):
//!
//! - `-- welcome to chat-server, NICK! you are in ROOM; type /help for commands`
//! - `-- you are now known as NICK`
//! - `-- you joined ROOM`
//!
//! These functions take the text of a notice (after `-- `) and are tested
//! against the protocol crate's own output, so a change of wording there
//! fails a test here instead of silently freezing the prompt. Every name
//! they return has passed the protocol's nick or room rules, so it can go
//! straight back into a `/nick` or `/join` line.
//!
//! One wording is shared: someone whose nick is `you` joining your room is
//! announced as `-- you joined #room` too. [`own_join`] tells the two apart
//! by the room: your own `/join` always names a room other than the one you
//! are in (joining it again is an error), and another user's join always
//! names the room you are in (you only hear about your own room).

use chat_protocol::{Nick, RoomName};

/// The start of the welcome notice, up to the nick.
const WELCOME_START: &str = "welcome to chat-server, ";
/// What follows the nick in the welcome notice, up to the room.
const WELCOME_ROOM: &str = "! you are in ";
/// What follows the room in the welcome notice.
const WELCOME_END: &str = "; ";
/// The confirmation of your own `/nick`, up to the new nick.
const NICK_SET: &str = "you are now known as ";
/// The confirmation of your own `/join`, up to the room.
const JOINED: &str = "you joined ";

/// The nick and room of a welcome notice.
pub fn welcome(notice: &str) -> Option<(Nick, RoomName)> {
    let rest = notice.strip_prefix(WELCOME_START)?;
    let (nick, rest) = rest.split_once(WELCOME_ROOM)?;
    let (room, _) = rest.split_once(WELCOME_END)?;
    Some((Nick::new(nick).ok()?, room_name(room)?))
}

/// The new nick of a `you are now known as NICK` notice.
pub fn nick_set(notice: &str) -> Option<Nick> {
    Nick::new(notice.strip_prefix(NICK_SET)?).ok()
}

/// The room of a `you joined ROOM` notice, when it confirms your own
/// `/join` rather than announcing a user called `you`: see the module docs.
/// `current` is the room you are in, if known.
pub fn own_join(notice: &str, current: Option<&RoomName>) -> Option<RoomName> {
    let room = room_name(notice.strip_prefix(JOINED)?)?;
    match current {
        Some(current) if current.key() == room.key() => None,
        _ => Some(room),
    }
}

/// A room name as the server writes it: `#` and a valid name.
fn room_name(text: &str) -> Option<RoomName> {
    text.starts_with('#').then(|| RoomName::new(text).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::{ServerEvent, ServerLine};

    fn nick(s: &str) -> Nick {
        Nick::new(s).unwrap()
    }

    fn room(s: &str) -> RoomName {
        RoomName::new(s).unwrap()
    }

    /// The text of the one notice the protocol crate says for `event`.
    fn notice_of(event: ServerEvent) -> String {
        match event.lines().as_slice() {
            [ServerLine::Notice(text)] => text.clone(),
            other => panic!("expected one notice, got {other:?}"),
        }
    }

    #[test]
    fn the_welcome_gives_nick_and_room() {
        for (n, r) in [("guest1", "lobby"), ("a", "x"), ("Zed-9_", "Rust-lang_2")] {
            let text = notice_of(ServerEvent::Welcome {
                nick: nick(n),
                room: room(r),
            });
            assert_eq!(welcome(&text), Some((nick(n), room(r))), "{text}");
        }
    }

    #[test]
    fn the_nick_confirmation_gives_the_new_nick() {
        let text = notice_of(ServerEvent::NickSet { nick: nick("alice") });
        assert_eq!(nick_set(&text), Some(nick("alice")));
    }

    #[test]
    fn the_join_confirmation_gives_the_new_room() {
        let text = notice_of(ServerEvent::JoinedRoom { room: room("rust") });
        assert_eq!(own_join(&text, Some(&room("lobby"))), Some(room("rust")));
        assert_eq!(own_join(&text, None), Some(room("rust")));
    }

    #[test]
    fn a_user_called_you_joining_your_room_is_not_your_join() {
        let text = notice_of(ServerEvent::Joined {
            nick: nick("you"),
            room: room("lobby"),
        });
        assert_eq!(own_join(&text, Some(&room("LOBBY"))), None);
    }

    #[test]
    fn other_notices_are_none_of_these() {
        let others = [
            ServerEvent::NickChanged {
                old: nick("guest1"),
                new: nick("alice"),
            },
            ServerEvent::Joined {
                nick: nick("bob"),
                room: room("lobby"),
            },
            ServerEvent::Left {
                nick: nick("you"),
                room: room("lobby"),
                reason: chat_protocol::LeaveReason::Quit(Some("you joined #x".into())),
            },
            ServerEvent::Bye,
            ServerEvent::ShuttingDown,
        ];
        for event in others {
            let text = notice_of(event);
            assert_eq!(welcome(&text), None, "{text}");
            assert_eq!(nick_set(&text), None, "{text}");
            assert_eq!(own_join(&text, Some(&room("lobby"))), None, "{text}");
        }
    }

    proptest::proptest! {
        /// Any notice text is recognised or not, never a panic, and what is
        /// recognised is a valid name.
        #[test]
        fn any_text_is_parsed_without_panicking(text in "\\PC{0,80}") {
            let _ = welcome(&text);
            let _ = nick_set(&text);
            let _ = own_join(&text, None);
            for prefix in [WELCOME_START, NICK_SET, JOINED] {
                let text = format!("{prefix}{text}");
                if let Some(nick) = nick_set(&text) {
                    proptest::prop_assert!(Nick::new(nick.as_str()).is_ok());
                }
                let _ = welcome(&text);
                let _ = own_join(&text, Some(&RoomName::lobby()));
            }
        }
    }

    #[test]
    fn look_alikes_with_bad_names_are_refused() {
        assert_eq!(nick_set("you are now known as 9lives"), None);
        assert_eq!(nick_set("you are now known as a b"), None);
        assert_eq!(own_join("you joined rust", None), None);
        assert_eq!(own_join("you joined #no room", None), None);
        assert_eq!(welcome("welcome to chat-server, x! you are in lobby; "), None);
        assert_eq!(welcome("welcome to chat-server, x! you are in #lobby"), None);
        assert_eq!(welcome(""), None);
    }
}
