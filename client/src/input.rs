//! The thread that reads standard input (or the `--send` texts) when the
//! client is not an interactive terminal client.
//!
//! Reading standard input blocks until the user types a line, so it gets a
//! thread of its own and hands each line to the main loop through a channel.
//! Lines are passed on as raw bytes: the server decides what is valid
//! UTF-8, and says so with a `!!` line, the same for this client as for
//! netcat. What is too long the session decides before sending
//! ([`crate::limit`]); a line longer than that comes in pieces, so that it
//! never takes more memory than the limit allows.
//!
//! The one line the client looks into is `/quit`, recognised with the
//! protocol crate's command parser: after it the server closes the
//! connection, which is then the expected end of the session rather than a
//! lost connection, and nothing after it can be delivered, so the thread
//! stops reading there.

use std::io::{self, BufRead, Read};

use chat_protocol::Command;
use crossbeam_channel::Sender;

/// The most bytes of one input line held at once, for a line limit of
/// `max_line` bytes: the longest line the limit allows with its `\r\n`. A
/// longer line is passed on in pieces of this size, the first of which is
/// already too long, so the session can refuse it without ever holding it
/// whole.
pub fn piece_size(max_line: usize) -> usize {
    max_line.saturating_add(2)
}

/// What the input thread tells the main loop.
#[derive(Debug)]
pub enum FromStdin {
    /// Bytes to send to the server as they are: a line with its `\n`, or a
    /// piece of a longer one.
    Line(Vec<u8>),
    /// A `/quit` line to send as it is. The thread has stopped reading.
    Quit(Vec<u8>),
    /// Standard input ended; any unfinished last line was already sent
    /// with a `\n` added. The thread has stopped reading.
    Eof,
    /// Reading standard input failed. The thread has stopped reading.
    Failed(io::Error),
}

/// Reads standard input until it ends, fails or holds a `/quit` line,
/// sending what it reads to `tx` in pieces of at most `max_piece` bytes.
pub fn read_stdin(tx: Sender<FromStdin>, max_piece: usize) {
    let stdin = io::stdin();
    forward_input(&mut stdin.lock(), &tx, max_piece);
}

/// Passes on the `--send` texts as if they were standard input, one line
/// each: the same pieces, the same `/quit` handling and the same end, so a
/// one-shot notification behaves exactly like a piped one. A text with
/// newlines in it becomes several lines.
pub fn read_texts(texts: &[String], tx: Sender<FromStdin>, max_piece: usize) {
    let mut input = Vec::new();
    for text in texts {
        input.extend_from_slice(text.as_bytes());
        input.push(b'\n');
    }
    forward_input(&mut io::Cursor::new(input), &tx, max_piece);
}

/// Sends the lines of `reader` to `tx` in pieces of at most `max_piece`
/// bytes, until end of input, a read error, a `/quit` line, or `tx` being
/// disconnected (the main loop has stopped).
fn forward_input(reader: &mut impl BufRead, tx: &Sender<FromStdin>, max_piece: usize) {
    // True when the next piece starts a line, i.e. the last one ended one.
    let mut at_line_start = true;
    loop {
        let mut buf = Vec::new();
        // `read_until` retries reads interrupted by a signal.
        let message = match reader.by_ref().take(max_piece as u64).read_until(b'\n', &mut buf) {
            Ok(0) if at_line_start => FromStdin::Eof,
            // The input ended in the middle of a line: end that line, so
            // that the `/quit` sent next is a line of its own.
            Ok(0) => FromStdin::Line(b"\n".to_vec()),
            Ok(_) if at_line_start && is_quit(&buf) => FromStdin::Quit(buf),
            Ok(_) => FromStdin::Line(buf),
            Err(err) => FromStdin::Failed(err),
        };
        at_line_start = match &message {
            FromStdin::Line(bytes) => bytes.ends_with(b"\n"),
            FromStdin::Quit(_) | FromStdin::Eof | FromStdin::Failed(_) => {
                // The main loop may already be gone; either way this is the end.
                let _ = tx.send(message);
                return;
            }
        };
        if tx.send(message).is_err() {
            return;
        }
    }
}

/// True when `line`, a whole line with its `\n`, is a `/quit` command.
pub fn is_quit(line: &[u8]) -> bool {
    let Some(line) = line.strip_suffix(b"\n") else {
        return false;
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(text) = std::str::from_utf8(line) else {
        return false;
    };
    matches!(Command::parse(text), Ok(Some(Command::Quit(_))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::unbounded;
    use std::io::Cursor;

    /// What the main loop gets for `input`, as readable strings.
    fn messages(input: &[u8], max_piece: usize) -> Vec<String> {
        let (tx, rx) = unbounded();
        forward_input(&mut Cursor::new(input), &tx, max_piece);
        rx.try_iter()
            .map(|msg| match msg {
                FromStdin::Line(bytes) => format!("line {:?}", String::from_utf8_lossy(&bytes)),
                FromStdin::Quit(bytes) => format!("quit {:?}", String::from_utf8_lossy(&bytes)),
                FromStdin::Eof => "eof".to_string(),
                FromStdin::Failed(err) => format!("failed {err}"),
            })
            .collect()
    }

    #[test]
    fn lines_pass_through_as_they_are_then_eof() {
        assert_eq!(
            messages(b"hi\n/who\r\n\n", 100),
            [r#"line "hi\n""#, r#"line "/who\r\n""#, r#"line "\n""#, "eof"]
        );
    }

    #[test]
    fn an_unfinished_last_line_gets_its_newline_before_eof() {
        assert_eq!(
            messages(b"a\nb", 100),
            [r#"line "a\n""#, r#"line "b""#, r#"line "\n""#, "eof"]
        );
    }

    #[test]
    fn pieces_hold_the_longest_line_with_its_crlf() {
        assert_eq!(piece_size(4096), 4098);
        assert_eq!(piece_size(usize::MAX), usize::MAX);
        // With a limit of 5, a line of 5 and its CRLF is one piece, and so
        // is one byte more (too long, and whole); a longer one is cut.
        assert_eq!(
            messages(b"12345\r\n123456\n1234567890\n", piece_size(5)),
            [
                r#"line "12345\r\n""#,
                r#"line "123456\n""#,
                r#"line "1234567""#,
                r#"line "890\n""#,
                "eof"
            ]
        );
    }

    #[test]
    fn a_long_line_is_passed_on_in_pieces() {
        assert_eq!(
            messages(b"abcdefg\nx\n", 3),
            [
                r#"line "abc""#,
                r#"line "def""#,
                r#"line "g\n""#,
                r#"line "x\n""#,
                "eof"
            ]
        );
    }

    #[test]
    fn a_quit_line_stops_the_reading() {
        assert_eq!(
            messages(b"hi\n/QUIT gone fishing\r\nnever sent\n", 100),
            [r#"line "hi\n""#, r#"quit "/QUIT gone fishing\r\n""#]
        );
    }

    #[test]
    fn send_texts_become_lines_and_stop_at_a_quit() {
        let (tx, rx) = unbounded();
        let texts = [
            "one".to_string(),
            "two\nthree".to_string(),
            "/quit bye".to_string(),
            "never".to_string(),
        ];
        read_texts(&texts, tx, 100);
        let got: Vec<String> = rx
            .try_iter()
            .map(|msg| match msg {
                FromStdin::Line(bytes) => format!("line {:?}", String::from_utf8_lossy(&bytes)),
                FromStdin::Quit(bytes) => format!("quit {:?}", String::from_utf8_lossy(&bytes)),
                FromStdin::Eof => "eof".to_string(),
                FromStdin::Failed(err) => format!("failed {err}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                r#"line "one\n""#,
                r#"line "two\n""#,
                r#"line "three\n""#,
                r#"quit "/quit bye\n""#
            ]
        );
    }

    #[test]
    fn only_a_whole_line_can_be_a_quit() {
        // "/quit" inside a long line, at a piece boundary, is just text.
        assert_eq!(
            messages(b"123456/quit\n", 6),
            [r#"line "123456""#, r#"line "/quit\n""#, "eof"]
        );
        assert!(!is_quit(b"/quit"));
        assert!(!is_quit(b"//quit\n"));
        assert!(!is_quit(b"say /quit\n"));
        assert!(!is_quit(b"/quitter\n"));
        assert!(!is_quit(b"/quit \xff\n"));
        assert!(is_quit(b"/quit\n"));
    }
}
