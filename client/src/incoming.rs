//! The thread that reads the server's lines and classifies them.
//!
//! Reading the socket gets a thread of its own so that a blocking read never
//! stops the client from sending what the user types, and the main loop can
//! wait on both through channels. Each line is classified with the protocol
//! crate's parser ([`ServerLine::parse`]) and never by guessing here; a line
//! of no known shape is kept as received, because a user must see
//! everything the server says.
//!
//! Server lines are meant to be UTF-8; invalid bytes are shown as U+FFFD
//! rather than dropping the line. A line is read at most [`MAX_LINE`] bytes
//! at a time, so a server that never sends a newline cannot make the client
//! hold unbounded memory; a longer line is shown in pieces of that size.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};

use chat_protocol::ServerLine;
use crossbeam_channel::Sender;

use crate::transport::Reader;

/// The most bytes of one server line held at once.
///
/// The server's own lines are its `--max-line` (4096 bytes by default) plus
/// a short prefix, so 1 MiB leaves room for any sensible setting while still
/// bounding what a misbehaving peer can make the client allocate.
pub const MAX_LINE: usize = 1 << 20;

/// One line from the server, without its line end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerText {
    /// A line of one of the protocol's six shapes.
    Known(ServerLine),
    /// A line of no known shape, as received.
    Unknown(String),
}

impl ServerText {
    /// Classifies one complete line, given without its `\n`.
    pub fn classify(line: &str) -> ServerText {
        match ServerLine::parse(line) {
            Ok(known) => ServerText::Known(known),
            Err(unknown) => ServerText::Unknown(unknown.line),
        }
    }
}

/// Shows the line exactly as the server sent it (less any `\r\n` line end):
/// the protocol's encoder gives back the text its parser read.
impl fmt::Display for ServerText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerText::Known(line) => line.fmt(f),
            ServerText::Unknown(text) => f.write_str(text),
        }
    }
}

/// What the reader thread tells the main loop.
#[derive(Debug)]
pub enum FromServer {
    /// A line (or a piece of an over-long line) to print.
    Line(ServerText),
    /// The connection ended: `Ok` at end of stream, `Err` when a read failed.
    /// Nothing is sent after it.
    Closed(io::Result<()>),
}

/// Reads `stream` (plain TCP or TLS) until the connection ends, sending
/// each line to `tx`, then [`FromServer::Closed`].
///
/// Returns early, without reading on, once the main loop has dropped its
/// receiver: nobody would see the lines.
pub fn read_server(stream: Reader, tx: Sender<FromServer>) {
    let mut reader = BufReader::new(stream);
    if let Some(end) = forward_lines(&mut reader, &tx, MAX_LINE) {
        // The main loop may have stopped listening; then nobody needs to know.
        let _ = tx.send(FromServer::Closed(end));
    }
}

/// Sends each line of `reader` to `tx`, in pieces of at most `max_line`
/// bytes. Returns how the stream ended, or `None` when `tx` was
/// disconnected.
fn forward_lines(
    reader: &mut impl BufRead,
    tx: &Sender<FromServer>,
    max_line: usize,
) -> Option<io::Result<()>> {
    let mut buf = Vec::new();
    // False while in the middle of an over-long line: its later pieces are
    // not lines of their own and must not be classified as such.
    let mut at_line_start = true;
    loop {
        buf.clear();
        // `read_until` retries reads interrupted by a signal.
        match reader.by_ref().take(max_line as u64).read_until(b'\n', &mut buf) {
            Ok(0) => return Some(Ok(())),
            Ok(_) => {}
            Err(err) => return Some(Err(err)),
        }
        let ends_line = buf.last() == Some(&b'\n');
        let bytes = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let text = String::from_utf8_lossy(bytes);
        let line = if at_line_start {
            ServerText::classify(&text)
        } else {
            ServerText::Unknown(text.into_owned())
        };
        at_line_start = ends_line;
        if tx.send(FromServer::Line(line)).is_err() {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::unbounded;
    use std::io::Cursor;

    fn read_all(input: &[u8], max_line: usize) -> (Vec<ServerText>, io::Result<()>) {
        let (tx, rx) = unbounded();
        let end = forward_lines(&mut Cursor::new(input), &tx, max_line).unwrap();
        let lines = rx
            .try_iter()
            .map(|msg| match msg {
                FromServer::Line(line) => line,
                FromServer::Closed(_) => panic!("forward_lines does not send Closed itself"),
            })
            .collect();
        (lines, end)
    }

    fn shown(lines: &[ServerText]) -> Vec<String> {
        lines.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_shape_is_classified_and_shown_exactly_as_sent() {
        let cases = [
            "<alice> hello",
            "<alice> <bob> * x -- y",
            "* alice waves  twice ",
            "*alice* psst",
            "-> *bob* psst",
            "-- welcome to chat-server, guest1! you are in #lobby",
            "-- ",
            "!! server full",
        ];
        for raw in cases {
            let line = ServerText::classify(raw);
            assert!(matches!(line, ServerText::Known(_)), "{raw:?} should parse");
            assert_eq!(line.to_string(), raw);
        }
    }

    #[test]
    fn lines_of_no_known_shape_are_kept_as_received() {
        for raw in ["", "hello", "<> x", "--x", "* alice"] {
            let line = ServerText::classify(raw);
            assert_eq!(line, ServerText::Unknown(raw.to_string()));
            assert_eq!(line.to_string(), raw);
        }
    }

    #[test]
    fn a_stream_becomes_lines_and_ends_cleanly() {
        let (lines, end) = read_all(b"-- hi\n<bob> yo\r\nnot a shape\n", 100);
        assert_eq!(shown(&lines), ["-- hi", "<bob> yo", "not a shape"]);
        assert_eq!(
            lines.first(),
            Some(&ServerText::Known(ServerLine::Notice("hi".into())))
        );
        assert!(end.is_ok());
    }

    #[test]
    fn invalid_utf8_is_shown_with_replacement_characters() {
        let (lines, _) = read_all(b"-- a\xffb\n\xfe\n", 100);
        assert_eq!(shown(&lines), ["-- a\u{FFFD}b", "\u{FFFD}"]);
    }

    #[test]
    fn a_last_line_without_newline_is_still_shown() {
        let (lines, end) = read_all(b"-- one\n-- two", 100);
        assert_eq!(shown(&lines), ["-- one", "-- two"]);
        assert!(end.is_ok());
    }

    #[test]
    fn an_over_long_line_comes_in_pieces_and_only_the_first_is_classified() {
        let (lines, _) = read_all(b"<bob> 0123-- 456\n-- ok\n", 10);
        assert_eq!(shown(&lines), ["<bob> 0123", "-- 456", "-- ok"]);
        assert!(matches!(lines.first(), Some(ServerText::Known(_))));
        assert_eq!(lines.get(1), Some(&ServerText::Unknown("-- 456".into())));
        assert!(matches!(lines.get(2), Some(ServerText::Known(_))));
    }

    #[test]
    fn reading_stops_when_the_main_loop_is_gone() {
        let (tx, rx) = unbounded();
        drop(rx);
        assert!(forward_lines(&mut Cursor::new(b"-- a\n-- b\n"), &tx, 100).is_none());
    }
}
