//! The line protocol front end: client lines in, server lines out.
//!
//! The hub knows nothing of the wire format. This module is the one place
//! where the event loop turns a decoded line into what the hub understands
//! and what the hub says into bytes for the socket; a second front end
//! (IRC, say) would have its own module like this one and share the hub.

use chat_protocol::{Command, DecodeError, ErrorKind, ServerEvent};

/// What one decoded line asks of the hub: a command, the error it earned,
/// or nothing at all (`None`, for a blank line).
pub fn to_command(line: Result<String, DecodeError>) -> Option<Result<Command, ErrorKind>> {
    match line {
        Ok(line) => Command::parse(&line).map_err(ErrorKind::from).transpose(),
        Err(error) => Some(Err(error.into())),
    }
}

/// Appends the lines that say `event` to `out`.
pub fn encode(event: &ServerEvent, out: &mut Vec<u8>) {
    event.encode(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_lines_ask_nothing_and_errors_become_error_replies() {
        assert!(to_command(Ok("  ".into())).is_none());
        assert_eq!(to_command(Ok("hi".into())), Some(Ok(Command::Say("hi".into()))));
        assert_eq!(
            to_command(Err(DecodeError::InvalidUtf8)),
            Some(Err(ErrorKind::Decode(DecodeError::InvalidUtf8)))
        );
    }
}
