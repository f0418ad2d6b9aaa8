//! One IRC message, parsed from a line without copying it.
//!
//! The grammar is that of the Modern IRC client protocol
//! (`[@tags] [:source] COMMAND [params...] [:trailing]`), read leniently
//! where clients differ: several spaces between parameters count as one,
//! a trailing parameter may be empty, and the command's case is kept for
//! the caller to compare without regard to it. A client's tags and source
//! are parsed and handed over but a server ignores both.

/// The most parameters one message may have (RFC 1459's limit); more are
/// folded into the last, as servers do.
pub const MAX_PARAMS: usize = 15;

/// An IRC message borrowed from its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The message tags, without the `@`, if any.
    pub tags: Option<&'a str>,
    /// The source, without the `:`, if any.
    pub source: Option<&'a str>,
    /// The command, as sent (compare it with `eq_ignore_ascii_case`).
    pub command: &'a str,
    /// The parameters, the trailing one (after ` :`) last.
    pub params: Vec<&'a str>,
}

/// Why a line is not an IRC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Occurs for a line with no command: empty, blank, or only tags and
    /// a source. Clients send empty lines as keepalives; ignore it.
    #[error("no command")]
    NoCommand,
}

impl<'a> Message<'a> {
    /// Parses one line (without its line end).
    ///
    /// # Errors
    /// [`MessageError::NoCommand`] when there is no command in it.
    pub fn parse(line: &'a str) -> Result<Message<'a>, MessageError> {
        let mut rest = line.trim_start_matches(' ');
        let mut tags = None;
        if let Some(after) = rest.strip_prefix('@') {
            let (t, r) = after.split_once(' ').unwrap_or((after, ""));
            tags = Some(t);
            rest = r.trim_start_matches(' ');
        }
        let mut source = None;
        if let Some(after) = rest.strip_prefix(':') {
            let (s, r) = after.split_once(' ').unwrap_or((after, ""));
            source = Some(s);
            rest = r.trim_start_matches(' ');
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return Err(MessageError::NoCommand);
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing);
                break;
            }
            if params.len() + 1 == MAX_PARAMS {
                // The last parameter takes the rest of the line.
                params.push(rest);
                break;
            }
            let (param, r) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(param);
            rest = r;
        }
        Ok(Message {
            tags,
            source,
            command,
            params,
        })
    }

    /// Parameter `i`, if there is one.
    pub fn param(&self, i: usize) -> Option<&'a str> {
        self.params.get(i).copied()
    }

    /// Whether the command is `name`, without regard to case.
    pub fn is(&self, name: &str) -> bool {
        self.command.eq_ignore_ascii_case(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_has_a_command_parameters_and_a_trailing_parameter() {
        let m = Message::parse("PRIVMSG #rust :hello there").unwrap();
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, ["#rust", "hello there"]);
        assert_eq!((m.tags, m.source), (None, None));
        assert!(m.is("privmsg"));
    }

    #[test]
    fn tags_and_source_are_split_off() {
        let m = Message::parse("@time=x;msgid=1 :nick!u@h  JOIN   #a,#b  ").unwrap();
        assert_eq!(m.tags, Some("time=x;msgid=1"));
        assert_eq!(m.source, Some("nick!u@h"));
        assert_eq!(m.command, "JOIN");
        assert_eq!(m.params, ["#a,#b"]);
    }

    #[test]
    fn an_empty_trailing_parameter_counts() {
        let m = Message::parse("USER u * * :").unwrap();
        assert_eq!(m.params, ["u", "*", "*", ""]);
        let m = Message::parse("NICK :").unwrap();
        assert_eq!(m.params, [""]);
    }

    #[test]
    fn lines_without_a_command_are_refused() {
        for line in ["", "   ", "@a=b", ":source", "@a=b :source "] {
            assert_eq!(Message::parse(line), Err(MessageError::NoCommand), "{line:?}");
        }
    }

    #[test]
    fn past_fifteen_parameters_the_last_takes_the_rest() {
        let line = format!(
            "CMD {}",
            (1..=17).map(|n| n.to_string()).collect::<Vec<_>>().join(" ")
        );
        let m = Message::parse(&line).unwrap();
        assert_eq!(m.params.len(), MAX_PARAMS);
        assert_eq!(m.params.last(), Some(&"15 16 17"));
    }
}
