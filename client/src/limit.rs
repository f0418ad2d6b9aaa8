//! The longest line the server takes, as the client knows it, so that a
//! line is never shown as said when the server refuses it.
//!
//! chat-server refuses a line of more than its `--max-line` bytes (4096 by
//! default) with `!! line too long (max N bytes); ...` and delivers nothing
//! of it, but it does not announce the limit, and the client shows what you
//! say without waiting for the server (which never echoes it). So the
//! client refuses such a line itself before sending it, against the limit
//! it knows: its own `--max-line`, which defaults to the server's default,
//! lowered to the server's own figure if the server ever refuses a line as
//! too long. For that one line, already shown, [`Recent`] finds which it
//! was, so that the session can say it was not delivered.
//!
//! A line is counted as the server counts it: its bytes as sent (`//`
//! escaping and the `/me` or `/msg NICK` before the text included), without
//! the `\n` or a `\r` just before it.

use std::collections::VecDeque;

/// How many lines sent are remembered to name one the server refused. The
/// server answers within a round trip; a line further back than this is
/// named only by its length.
const RECENT_LINES: usize = 32;

/// How much of a refused line is shown to name it, in characters.
const PREVIEW_CHARS: usize = 40;

/// What the server's too-long error says before the limit.
const TOO_LONG_START: &str = "line too long (max ";
/// What follows the limit.
const TOO_LONG_END: &str = " bytes)";

/// The length of `bytes` (a line with its `\n`, or a piece of one) as the
/// server counts it: without the `\n`, and without a `\r` just before it.
pub fn line_len(bytes: &[u8]) -> usize {
    match bytes.strip_suffix(b"\n") {
        Some(line) => line.strip_suffix(b"\r").unwrap_or(line).len(),
        None => bytes.len(),
    }
}

/// The limit in the server's `line too long (max N bytes); ...` error
/// (given without its `!! `), or `None` for any other error.
pub fn too_long_max(error: &str) -> Option<usize> {
    let rest = error.strip_prefix(TOO_LONG_START)?;
    let (max, _) = rest.split_once(TOO_LONG_END)?;
    max.parse().ok()
}

/// A line sent not long ago.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentLine {
    /// Its length as the server counts it.
    pub len: usize,
    /// Its first characters, with `…` when cut.
    pub preview: String,
}

/// The last [`RECENT_LINES`] lines sent, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    lines: VecDeque<SentLine>,
}

impl Recent {
    /// Notes a line just sent.
    pub fn sent(&mut self, bytes: &[u8]) {
        if self.lines.len() >= RECENT_LINES {
            self.lines.pop_front();
        }
        let len = line_len(bytes);
        let text = String::from_utf8_lossy(bytes.get(..len).unwrap_or(bytes));
        let mut preview: String = text.chars().take(PREVIEW_CHARS).collect();
        if text.chars().nth(PREVIEW_CHARS).is_some() {
            preview.push('…');
        }
        self.lines.push_back(SentLine { len, preview });
    }

    /// The line the server just refused as longer than `max`: the oldest
    /// one remembered that is. It and the lines before it are forgotten
    /// (the server answers in order, so they are done with).
    pub fn refused(&mut self, max: usize) -> Option<SentLine> {
        let at = self.lines.iter().position(|l| l.len > max)?;
        self.lines.drain(..at);
        self.lines.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::{DecodeError, ErrorKind};

    #[test]
    fn lengths_leave_out_the_line_end_only() {
        assert_eq!(line_len(b"hello\n"), 5);
        assert_eq!(line_len(b"hello\r\n"), 5);
        assert_eq!(line_len(b"hello\r"), 6, "a piece: the \\r may be text");
        assert_eq!(line_len(b"hello"), 5);
        assert_eq!(line_len("héllo\n".as_bytes()), 6, "bytes, not characters");
        assert_eq!(line_len(b"//me\n"), 4, "the escape counts");
        assert_eq!(line_len(b"\n"), 0);
    }

    #[test]
    fn the_limit_is_read_from_the_servers_own_error() {
        for max in [1, 100, 4096, 1 << 20] {
            let text = ErrorKind::Decode(DecodeError::TooLong { max }).to_string();
            assert_eq!(too_long_max(&text), Some(max), "{text}");
        }
        assert_eq!(
            too_long_max(&ErrorKind::Decode(DecodeError::InvalidUtf8 { lossy: String::new() }).to_string()),
            None
        );
        assert_eq!(too_long_max("nick alice is already in use"), None);
        assert_eq!(too_long_max("line too long (max lots bytes)"), None);
        assert_eq!(
            too_long_max("line too long (max 99999999999999999999999 bytes)"),
            None
        );
        assert_eq!(too_long_max("line too long (max 5"), None);
    }

    #[test]
    fn the_refused_line_is_the_oldest_longer_one() {
        let mut recent = Recent::default();
        recent.sent(b"short\n");
        recent.sent(format!("{}\n", "z".repeat(50)).as_bytes());
        recent.sent(b"after\n");
        recent.sent(format!("{}\n", "y".repeat(60)).as_bytes());
        let first = recent.refused(20).unwrap();
        assert_eq!(first.len, 50);
        assert_eq!(first.preview, format!("{}…", "z".repeat(40)));
        assert_eq!(recent.refused(20).unwrap().len, 60);
        assert_eq!(recent.refused(20), None);
    }

    #[test]
    fn only_the_last_lines_are_remembered() {
        let mut recent = Recent::default();
        recent.sent(format!("{}\n", "z".repeat(50)).as_bytes());
        for _ in 0..RECENT_LINES {
            recent.sent(b"x\n");
        }
        assert_eq!(recent.refused(20), None);
        recent.sent("é".repeat(3).as_bytes());
        assert_eq!(
            recent.refused(5),
            Some(SentLine {
                len: 6,
                preview: "ééé".into()
            })
        );
    }
}
