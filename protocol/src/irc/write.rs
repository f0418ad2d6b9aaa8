//! Writing IRC messages, and cutting long text to fit them.
//!
//! Every message goes out as `[@tags ][:source ]COMMAND middle... [:trailing]\r\n`.
//! The writer is the last line of defence against a line break inside a
//! parameter: whatever reaches it, a `\r`, `\n` or NUL in a parameter is
//! written as a space, so no text can end a message early and smuggle in
//! another. (Chat text never holds one: it is sanitized when it comes in.)

/// The longest IRC line, line end included (RFC 1459).
pub const MAX_LINE: usize = 512;

/// Appends one message to `out`. `middle` parameters are written as they
/// are (they must hold no space and not start with `:`: nicks, channels,
/// numbers); `trailing`, if given, goes last after ` :`.
pub fn message(
    out: &mut Vec<u8>,
    tags: Option<&str>,
    source: Option<&str>,
    command: &str,
    middle: &[&str],
    trailing: Option<&str>,
) {
    if let Some(tags) = tags {
        out.push(b'@');
        put(out, tags);
        out.push(b' ');
    }
    if let Some(source) = source {
        out.push(b':');
        put(out, source);
        out.push(b' ');
    }
    put(out, command);
    for param in middle {
        out.push(b' ');
        put(out, param);
    }
    if let Some(trailing) = trailing {
        out.extend_from_slice(b" :");
        put(out, trailing);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `text`, with any `\r`, `\n` or NUL written as a space.
fn put(out: &mut Vec<u8>, text: &str) {
    if text.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        out.extend(
            text.bytes()
                .map(|b| if matches!(b, b'\r' | b'\n' | 0) { b' ' } else { b }),
        );
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

/// Cuts `text` into pieces of at most `max` bytes (at least one
/// character each), at UTF-8 character boundaries, preferring to cut
/// after a space in the second half of a piece. Nothing is lost: the
/// pieces put together are `text`. An empty text is one empty piece.
pub fn pieces(text: &str, max: usize) -> Pieces<'_> {
    Pieces {
        rest: text,
        max: max.max(4),
        first: true,
    }
}

/// The iterator of [`pieces`].
#[derive(Debug, Clone)]
pub struct Pieces<'a> {
    rest: &'a str,
    max: usize,
    first: bool,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            // An empty text still makes one (empty) message.
            return std::mem::take(&mut self.first).then_some("");
        }
        self.first = false;
        if self.rest.len() <= self.max {
            return Some(std::mem::take(&mut self.rest));
        }
        // The longest prefix within `max` that ends on a character
        // boundary (a character is at most 4 bytes and max is at least 4).
        let mut cut = self.max;
        while !self.rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let window = self.rest.get(..cut).unwrap_or(self.rest);
        if let Some(space) = window.rfind(' ').filter(|&at| at >= cut / 2) {
            cut = space + 1;
        }
        let (piece, rest) = self.rest.split_at(cut);
        self.rest = rest;
        Some(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(
        tags: Option<&str>,
        source: Option<&str>,
        command: &str,
        middle: &[&str],
        trailing: Option<&str>,
    ) -> String {
        let mut out = Vec::new();
        message(&mut out, tags, source, command, middle, trailing);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn messages_are_written_with_their_parts_in_order() {
        assert_eq!(
            written(None, Some("srv"), "001", &["alice"], Some("Welcome")),
            ":srv 001 alice :Welcome\r\n"
        );
        assert_eq!(
            written(
                Some("time=2026-12-06T20:00:00.000Z"),
                Some("a!a@h"),
                "JOIN",
                &["#rust"],
                None
            ),
            "@time=2026-12-06T20:00:00.000Z :a!a@h JOIN #rust\r\n"
        );
        assert_eq!(written(None, None, "PING", &[], Some("")), "PING :\r\n");
    }

    #[test]
    fn no_parameter_can_end_the_message_early() {
        assert_eq!(
            written(None, None, "PRIVMSG", &["#a\r\nQUIT"], Some("x\r\nKILL y\0")),
            "PRIVMSG #a  QUIT :x  KILL y \r\n"
        );
    }

    #[test]
    fn long_text_is_cut_at_character_boundaries_and_nothing_is_lost() {
        let text = "héllo wörld ".repeat(50);
        let cut: Vec<&str> = pieces(&text, 40).collect();
        assert!(cut.len() > 1);
        assert!(cut.iter().all(|p| p.len() <= 40 && !p.is_empty()));
        assert_eq!(cut.concat(), text);
        // Cut after a space where there is one in the second half.
        assert!(
            cut.iter().take(cut.len() - 1).all(|p| p.ends_with(' ')),
            "{cut:?}"
        );
        let emoji = "😃".repeat(30);
        let cut: Vec<&str> = pieces(&emoji, 10).collect();
        assert!(cut.iter().all(|p| p.len() == 8));
        assert_eq!(cut.concat(), emoji);
    }

    #[test]
    fn short_and_empty_text_is_one_piece() {
        assert_eq!(pieces("hi", 10).collect::<Vec<_>>(), ["hi"]);
        assert_eq!(pieces("", 10).collect::<Vec<_>>(), [""]);
    }
}
