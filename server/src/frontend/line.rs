//! The line protocol front end: client lines in, server lines out.
//!
//! The line protocol (PROTOCOL.md) is what `nc` and `chat-client` speak: a
//! user is in one room at a time, and what they type without a command is
//! said there. That policy is this front end's, not the hub's: a `/join`
//! asks the hub to leave the user's other rooms, and everything else names
//! [`Target::Current`], the room the user joined last.

use chat_protocol::{Command, DecodeError, ErrorKind, ServerEvent, Style};

use crate::chat::request::{Request, Target};

/// What one decoded line asks of the hub: a request, the error it earned,
/// or nothing at all (`None`, for a blank line).
pub fn to_request(line: Result<String, DecodeError>) -> Option<Result<Request, ErrorKind>> {
    let command = match line {
        Ok(line) => Command::parse(&line).map_err(ErrorKind::from).transpose()?,
        Err(error) => Err(error.into()),
    };
    Some(command.map(request))
}

/// The hub's request for a line protocol command.
fn request(command: Command) -> Request {
    match command {
        Command::Say(text) => Request::Say {
            room: Target::Current,
            text,
            style: Style::Message,
            echo: false,
        },
        Command::Me(text) => Request::Say {
            room: Target::Current,
            text,
            style: Style::Action,
            echo: false,
        },
        Command::Msg { to, text } => Request::Private {
            to,
            text,
            style: Style::Message,
        },
        Command::Nick(nick) => Request::Nick(nick),
        // One room at a time: joining one leaves the other.
        Command::Join { room, key } => Request::Join {
            room,
            leave_others: true,
            names: false,
            key,
        },
        Command::Role { nick, role, on } => Request::SetRole {
            room: Target::Current,
            nick,
            role,
            on,
        },
        Command::Kick { nick, reason } => Request::Kick {
            room: Target::Current,
            nick,
            reason,
        },
        Command::Ban { mask, duration } => Request::Ban {
            room: Target::Current,
            mask,
            duration,
        },
        Command::Unban(mask) => Request::Unban {
            room: Target::Current,
            mask,
        },
        Command::Bans => Request::Bans(Target::Current),
        Command::Room(change) => Request::RoomSettings {
            room: Target::Current,
            change,
        },
        Command::Rooms { page } => Request::Rooms { page },
        Command::Who { page } => Request::Who {
            room: Target::Current,
            page,
        },
        Command::Topic(set) => Request::Topic {
            room: Target::Current,
            set,
        },
        Command::History(count) => Request::History {
            room: Target::Current,
            count,
        },
        Command::Away(message) => Request::Away(message),
        Command::Help(topic) => Request::Help(topic),
        Command::Quit(reason) => Request::Quit(reason),
    }
}

/// Appends the lines that say `event` to `out`.
pub fn encode(event: &ServerEvent, out: &mut Vec<u8>) {
    event.encode(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::RoomName;

    #[test]
    fn blank_lines_ask_nothing_and_errors_become_error_replies() {
        assert!(to_request(Ok("  ".into())).is_none());
        assert_eq!(
            to_request(Ok("hi".into())),
            Some(Ok(Request::Say {
                room: Target::Current,
                text: "hi".into(),
                style: Style::Message,
                echo: false
            }))
        );
        assert_eq!(
            to_request(Err(DecodeError::InvalidUtf8 { lossy: "x".into() })),
            Some(Err(ErrorKind::Decode(DecodeError::InvalidUtf8 {
                lossy: "x".into()
            })))
        );
    }

    #[test]
    fn a_join_leaves_the_other_rooms_and_the_rest_is_about_the_current_room() {
        assert_eq!(
            to_request(Ok("/join rust".into())),
            Some(Ok(Request::Join {
                room: RoomName::new("rust").unwrap(),
                leave_others: true,
                names: false,
                key: None
            }))
        );
        assert_eq!(
            to_request(Ok("/me waves".into())),
            Some(Ok(Request::Say {
                room: Target::Current,
                text: "waves".into(),
                style: Style::Action,
                echo: false
            }))
        );
        assert_eq!(
            to_request(Ok("/history 3".into())),
            Some(Ok(Request::History {
                room: Target::Current,
                count: Some(3)
            }))
        );
    }
}
