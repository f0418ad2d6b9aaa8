//! The line-based wire format of server output.
//!
//! Every line the server sends has one of seven shapes, chosen so that
//! people can read them in plain netcat and programs can classify them
//! with one parser:
//!
//! | shape | [`ServerLine`] |
//! | --- | --- |
//! | `<alice> hello` | [`ServerLine::Message`] |
//! | `* alice waves` | [`ServerLine::Action`] |
//! | `*alice* psst` | [`ServerLine::PrivateFrom`] |
//! | `-> *bob* psst` | [`ServerLine::PrivateTo`] |
//! | `-- text` | [`ServerLine::Notice`] |
//! | `!! text` | [`ServerLine::Error`] |
//! | `[2026-12-06T20:31:05Z] <alice> hello` (or `* alice waves`) | [`ServerLine::Replayed`] |
//!
//! Parsing is unambiguous because nicks never contain a space, `>` or `*`
//! (see [`crate::names`]).

use std::fmt;

/// One line of server output, without its `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLine {
    /// `<from> text`: someone said something in your room.
    Message {
        /// Who said it.
        from: String,
        /// What they said.
        text: String,
    },
    /// `* from text`: someone's `/me` in your room.
    Action {
        /// Who did it.
        from: String,
        /// What they did.
        text: String,
    },
    /// `*from* text`: a private message to you.
    PrivateFrom {
        /// Who sent it.
        from: String,
        /// What it says.
        text: String,
    },
    /// `-> *to* text`: confirmation of your private message.
    PrivateTo {
        /// Who it went to.
        to: String,
        /// What it said.
        text: String,
    },
    /// `-- text`: a notice from the server.
    Notice(String),
    /// `!! text`: an error about your last line.
    Error(String),
    /// `[AT] <from> text` or `[AT] * from text`: a message or action said
    /// earlier in your room, replayed from its history; `AT` is when it was
    /// said, in UTC (see [`crate::history::format_time`]).
    Replayed {
        /// When it was said, as sent (`2026-12-06T20:31:05Z`).
        at: String,
        /// Who said it.
        from: String,
        /// What they said.
        text: String,
        /// A `/me` rather than a message.
        action: bool,
    },
}

/// A line that has none of the seven shapes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a server line: {line:?}")]
pub struct ParseLineError {
    /// The line as received.
    pub line: String,
}

impl ServerLine {
    /// Appends the line and its `\n` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let parts: [&str; 7] = match self {
            ServerLine::Message { from, text } => ["<", from, "> ", text, "", "", ""],
            ServerLine::Action { from, text } => ["* ", from, " ", text, "", "", ""],
            ServerLine::PrivateFrom { from, text } => ["*", from, "* ", text, "", "", ""],
            ServerLine::PrivateTo { to, text } => ["-> *", to, "* ", text, "", "", ""],
            ServerLine::Notice(text) => ["-- ", text, "", "", "", "", ""],
            ServerLine::Error(text) => ["!! ", text, "", "", "", "", ""],
            ServerLine::Replayed {
                at,
                from,
                text,
                action: false,
            } => ["[", at, "] <", from, "> ", text, ""],
            ServerLine::Replayed {
                at,
                from,
                text,
                action: true,
            } => ["[", at, "] * ", from, " ", text, ""],
        };
        for part in parts {
            out.extend_from_slice(part.as_bytes());
        }
        out.push(b'\n');
    }

    /// Parses one line, with or without its line end.
    ///
    /// # Errors
    /// [`ParseLineError`] when the line has none of the seven shapes.
    pub fn parse(line: &str) -> Result<ServerLine, ParseLineError> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        Self::parse_shape(line).ok_or_else(|| ParseLineError {
            line: line.to_string(),
        })
    }

    fn parse_shape(line: &str) -> Option<ServerLine> {
        let owned = |(a, b): (&str, &str)| (a.to_string(), b.to_string());
        if let Some(text) = line.strip_prefix("-- ") {
            return Some(ServerLine::Notice(text.to_string()));
        }
        if let Some(text) = line.strip_prefix("!! ") {
            return Some(ServerLine::Error(text.to_string()));
        }
        if let Some(rest) = line.strip_prefix('[') {
            let (at, rest) = rest.split_once("] ")?;
            if at.is_empty() || at.contains([' ', '[', ']']) {
                return None;
            }
            let at = at.to_string();
            return match Self::parse_shape(rest)? {
                ServerLine::Message { from, text } => Some(ServerLine::Replayed {
                    at,
                    from,
                    text,
                    action: false,
                }),
                ServerLine::Action { from, text } => Some(ServerLine::Replayed {
                    at,
                    from,
                    text,
                    action: true,
                }),
                _ => None,
            };
        }
        if let Some(rest) = line.strip_prefix("-> *") {
            let (to, text) = owned(split_name(rest, "* ")?);
            return Some(ServerLine::PrivateTo { to, text });
        }
        if let Some(rest) = line.strip_prefix("<") {
            let (from, text) = owned(split_name(rest, "> ")?);
            return Some(ServerLine::Message { from, text });
        }
        if let Some(rest) = line.strip_prefix("* ") {
            let (from, text) = owned(split_name(rest, " ")?);
            return Some(ServerLine::Action { from, text });
        }
        if let Some(rest) = line.strip_prefix('*') {
            let (from, text) = owned(split_name(rest, "* ")?);
            return Some(ServerLine::PrivateFrom { from, text });
        }
        None
    }
}

/// Splits `rest` at the first `sep` into a non-empty name, which may hold no
/// space, `>` or `*`, and the text after `sep`.
fn split_name<'a>(rest: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let (name, text) = rest.split_once(sep)?;
    let valid = !name.is_empty() && !name.contains([' ', '>', '*']);
    valid.then_some((name, text))
}

impl fmt::Display for ServerLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.encode(&mut out);
        out.pop();
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> String {
        v.to_string()
    }

    #[test]
    fn each_shape_encodes_and_parses_back() {
        let cases = [
            (
                ServerLine::Message {
                    from: s("alice"),
                    text: s("hello"),
                },
                "<alice> hello",
            ),
            (
                ServerLine::Action {
                    from: s("alice"),
                    text: s("waves"),
                },
                "* alice waves",
            ),
            (
                ServerLine::PrivateFrom {
                    from: s("alice"),
                    text: s("psst"),
                },
                "*alice* psst",
            ),
            (
                ServerLine::PrivateTo {
                    to: s("bob"),
                    text: s("psst"),
                },
                "-> *bob* psst",
            ),
            (ServerLine::Notice(s("bob joined #lobby")), "-- bob joined #lobby"),
            (
                ServerLine::Error(s("no such nick: carol")),
                "!! no such nick: carol",
            ),
            (
                ServerLine::Replayed {
                    at: s("2026-12-06T20:31:05Z"),
                    from: s("alice"),
                    text: s("hello"),
                    action: false,
                },
                "[2026-12-06T20:31:05Z] <alice> hello",
            ),
            (
                ServerLine::Replayed {
                    at: s("2026-12-06T20:31:05Z"),
                    from: s("alice"),
                    text: s("waves"),
                    action: true,
                },
                "[2026-12-06T20:31:05Z] * alice waves",
            ),
        ];
        for (line, text) in cases {
            let mut out = Vec::new();
            line.encode(&mut out);
            assert_eq!(out, format!("{text}\n").into_bytes());
            assert_eq!(line.to_string(), text);
            assert_eq!(ServerLine::parse(text), Ok(line.clone()));
            assert_eq!(ServerLine::parse(&format!("{text}\r\n")), Ok(line));
        }
    }

    #[test]
    fn text_may_look_like_other_shapes() {
        assert_eq!(
            ServerLine::parse("<alice> <bob> * x -- y"),
            Ok(ServerLine::Message {
                from: s("alice"),
                text: s("<bob> * x -- y")
            })
        );
        assert_eq!(
            ServerLine::parse("*alice* * not an action"),
            Ok(ServerLine::PrivateFrom {
                from: s("alice"),
                text: s("* not an action")
            })
        );
    }

    #[test]
    fn lines_of_no_known_shape_are_errors() {
        for bad in [
            "",
            "hello",
            "<> x",
            "<alice>x",
            "*alice",
            "* alice",
            "-> bob hi",
            "--x",
            "!!x",
            "< a> b",
            "[2026-12-06T20:31:05Z] -- not a message",
            "[] <alice> x",
            "[2026-12-06T20:31:05Z]<alice> x",
            "[a b] <alice> x",
        ] {
            assert_eq!(
                ServerLine::parse(bad),
                Err(ParseLineError { line: s(bad) }),
                "{bad:?}"
            );
        }
    }
}
