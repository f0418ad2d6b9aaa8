//! Incremental line decoder.
//!
//! TCP delivers a byte stream, not lines: a line can arrive in many pieces,
//! several lines can arrive in one read, and a multi-byte UTF-8 character
//! can be split between two reads. [`LineDecoder`] owns the bytes of the
//! line being received and hands out each complete line as it is finished.
//!
//! Invariants:
//! - The buffer never holds more than `max_line + 1` bytes (the extra byte
//!   is room for a `\r` that turns out to precede the `\n`). The limit is
//!   checked while scanning for `\n`, before anything is copied, so a peer
//!   that sends megabytes without a newline costs no more memory than one
//!   long line.
//! - A line that goes over the limit is reported once, as soon as the limit
//!   is passed, and the rest of it up to the next `\n` is skipped without
//!   being stored.
//! - UTF-8 is validated only on complete lines, so a character split across
//!   reads decodes correctly; an invalid line is reported and dropped, and
//!   the lines after it are unaffected.

/// The longest line accepted by default, in bytes, not counting the line end.
///
/// 4 KiB is far more than anyone types into a chat, and small enough that
/// thousands of connections with a full buffer cost little memory.
pub const DEFAULT_MAX_LINE: usize = 4096;

/// A line that could not be decoded. The connection stays usable: decoding
/// goes on with the next line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Occurs when a line's bytes are not valid UTF-8. The line is dropped;
    /// `lossy` is what it would read as with each bad sequence made a
    /// replacement character, for a front end that must say which command
    /// it refuses (IRC's `FAIL PRIVMSG INVALID_UTF8`), never to deliver.
    #[error("invalid UTF-8; line discarded")]
    InvalidUtf8 {
        /// The line, made valid.
        lossy: String,
    },
    /// Occurs when a line grows past the limit before its `\n` arrives. The
    /// line is dropped, and so is everything up to the next `\n`.
    #[error("line too long (max {max} bytes); discarded up to the next newline")]
    TooLong {
        /// The limit in force.
        max: usize,
    },
    /// Occurs when a message of a message-framed transport (a WebSocket)
    /// grows past the limit: the whole message is dropped, whatever
    /// newlines it holds.
    #[error("message too long (max {max} bytes); discarded")]
    MessageTooLong {
        /// The limit in force.
        max: usize,
    },
}

/// What the decoder is doing with the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting the bytes of a line into the buffer.
    Collecting,
    /// The current line went over the limit and was reported; skipping its
    /// remaining bytes up to the next `\n`.
    Skipping,
}

/// Turns a byte stream, fed in pieces of any size, into lines.
///
/// Lines end in `\n`; a `\r` just before it is dropped, so CRLF clients
/// such as telnet work. Each call to [`LineDecoder::decode`] takes the next
/// piece of the stream and yields the lines it completes; the unfinished
/// tail is kept for the next call.
///
/// ```
/// use chat_protocol::LineDecoder;
/// let mut decoder = LineDecoder::new(100);
/// let mut lines = Vec::new();
/// for piece in [&b"hel"[..], b"lo\r\nwor", b"ld\n"] {
///     lines.extend(decoder.decode(piece));
/// }
/// assert_eq!(lines, vec![Ok("hello".to_string()), Ok("world".to_string())]);
/// ```
#[derive(Debug, Clone)]
pub struct LineDecoder {
    /// Bytes of the line received so far, without its `\n`.
    buf: Vec<u8>,
    /// The most bytes a line may have, not counting its line end.
    max_line: usize,
    state: State,
}

impl LineDecoder {
    /// A decoder that accepts lines of at most `max_line` bytes (not counting
    /// the `\n` or a `\r` before it). A limit of 0 is raised to 1.
    pub fn new(max_line: usize) -> Self {
        LineDecoder {
            buf: Vec::new(),
            max_line: max_line.max(1),
            state: State::Collecting,
        }
    }

    /// The length limit in force.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// True when no part of a line is held: the stream so far ended on a
    /// line boundary.
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.state == State::Collecting
    }

    /// The bytes of the unfinished line held so far (empty while the rest
    /// of a too-long line is being skipped): what a restart hands to the
    /// next process, which feeds them to its own decoder first.
    pub fn partial(&self) -> &[u8] {
        &self.buf
    }

    /// True while the rest of a line that went over the limit (and was
    /// reported) is being skipped up to its `\n`.
    pub fn is_skipping(&self) -> bool {
        self.state == State::Skipping
    }

    /// Skips input up to the next `\n`, as after a too-long line: a
    /// restart carries a decoder in that state into the next process
    /// without reporting the line twice.
    pub fn skip_to_line_end(&mut self) {
        self.buf.clear();
        self.state = State::Skipping;
    }

    /// Takes the next piece of the stream and returns an iterator over the
    /// lines it completes, in order. Bytes of an unfinished line are kept
    /// for the next call (up to the limit), even if the iterator is dropped
    /// early; dropping it early loses the lines it did not yield.
    ///
    /// Each item is a line, or a [`DecodeError`] for a line that was
    /// dropped: [`DecodeError::InvalidUtf8`] for a complete line that is not
    /// UTF-8, [`DecodeError::TooLong`] as soon as a line passes the limit.
    /// Either way decoding goes on with the next line.
    pub fn decode<'a>(&'a mut self, input: &'a [u8]) -> Lines<'a> {
        Lines { decoder: self, input }
    }

    /// The line held when the stream ended without a final `\n`, if any.
    ///
    /// A peer that closes after `hello` (no newline) still said `hello`; a
    /// line-oriented reader should not lose it.
    ///
    /// # Errors
    /// As for the items of [`LineDecoder::decode`].
    pub fn finish(&mut self) -> Option<Result<String, DecodeError>> {
        let skipping = self.state == State::Skipping;
        self.state = State::Collecting;
        if skipping || self.buf.is_empty() {
            self.buf.clear();
            return None;
        }
        Some(self.finish_line())
    }

    /// Scans `chunk`, a run of bytes with no `\n` in it that ends either at a
    /// `\n` (`ends_line`) or at the end of the input.
    fn take_chunk(&mut self, chunk: &[u8], ends_line: bool) -> Option<Result<String, DecodeError>> {
        match self.state {
            State::Skipping => {
                if ends_line {
                    self.state = State::Collecting;
                }
                None
            }
            State::Collecting => {
                // Room for one byte more than the limit: a `\r` that may
                // turn out to end the line.
                if self.buf.len() + chunk.len() > self.max_line + 1 {
                    self.buf.clear();
                    if !ends_line {
                        self.state = State::Skipping;
                    }
                    return Some(Err(DecodeError::TooLong { max: self.max_line }));
                }
                self.buf.extend_from_slice(chunk);
                ends_line.then(|| self.finish_line())
            }
        }
    }

    /// Ends the line in `buf`: drops a trailing `\r`, checks the limit and
    /// UTF-8, and leaves `buf` empty for the next line.
    fn finish_line(&mut self) -> Result<String, DecodeError> {
        let mut bytes = std::mem::take(&mut self.buf);
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        if bytes.len() > self.max_line {
            return Err(DecodeError::TooLong { max: self.max_line });
        }
        String::from_utf8(bytes).map_err(|e| DecodeError::InvalidUtf8 {
            lossy: String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }
}

impl Default for LineDecoder {
    fn default() -> Self {
        LineDecoder::new(DEFAULT_MAX_LINE)
    }
}

/// The lines completed by one piece of input; see [`LineDecoder::decode`].
#[derive(Debug)]
pub struct Lines<'a> {
    decoder: &'a mut LineDecoder,
    /// The part of the piece not scanned yet.
    input: &'a [u8],
}

impl Lines<'_> {
    /// The part of the piece not scanned yet.
    pub fn remaining(&self) -> &[u8] {
        self.input
    }

    /// True when the next call to `next` yields an item (a line or an
    /// error), so a caller that rations lines can check before it takes one.
    pub fn has_line(&self) -> bool {
        let newline = |input: &[u8]| input.iter().position(|&b| b == b'\n');
        let (mut input, mut held) = (self.input, self.decoder.buf.len());
        if self.decoder.state == State::Skipping {
            // The rest of the skipped line yields nothing; what follows it
            // decides.
            let Some(at) = newline(input) else { return false };
            input = input.get(at + 1..).unwrap_or_default();
            held = 0;
        }
        newline(input).is_some() || held + input.len() > self.decoder.max_line + 1
    }
}

impl Iterator for Lines<'_> {
    type Item = Result<String, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.input.is_empty() {
            let input = self.input;
            let (chunk, ends_line) = match input.iter().position(|&b| b == b'\n') {
                Some(at) => {
                    let (chunk, rest) = input.split_at(at);
                    self.input = rest.get(1..).unwrap_or_default();
                    (chunk, true)
                }
                None => {
                    self.input = &[];
                    (input, false)
                }
            };
            if let Some(item) = self.decoder.take_chunk(chunk, ends_line) {
                return Some(item);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(max: usize, pieces: &[&[u8]]) -> Vec<Result<String, DecodeError>> {
        let mut decoder = LineDecoder::new(max);
        let mut out = Vec::new();
        for piece in pieces {
            out.extend(decoder.decode(piece));
        }
        out
    }

    fn ok(s: &str) -> Result<String, DecodeError> {
        Ok(s.to_string())
    }

    #[test]
    fn lines_split_anywhere_decode_the_same() {
        let input = "héllo wörld\r\nsecond ✓ line\nthird\n".as_bytes();
        let whole = decode_all(100, &[input]);
        assert_eq!(whole, vec![ok("héllo wörld"), ok("second ✓ line"), ok("third")]);
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(decode_all(100, &[a, b]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode_all(100, &bytes), whole);
    }

    #[test]
    fn crlf_and_lf_both_end_a_line_and_lone_cr_is_kept() {
        assert_eq!(
            decode_all(100, &[b"a\r\nb\nc\rd\n"]),
            vec![ok("a"), ok("b"), ok("c\rd")]
        );
    }

    #[test]
    fn empty_lines_are_returned_as_empty() {
        assert_eq!(decode_all(100, &[b"\n\r\n"]), vec![ok(""), ok("")]);
    }

    #[test]
    fn invalid_utf8_drops_only_that_line() {
        assert_eq!(
            decode_all(100, &[b"ok\n\xff\xfe bad\nafter\n"]),
            vec![
                ok("ok"),
                Err(DecodeError::InvalidUtf8 {
                    lossy: "\u{fffd}\u{fffd} bad".to_string()
                }),
                ok("after")
            ]
        );
    }

    #[test]
    fn a_line_at_the_limit_is_accepted_with_either_line_end() {
        assert_eq!(
            decode_all(5, &[b"12345\n12345\r\n"]),
            vec![ok("12345"), ok("12345")]
        );
    }

    #[test]
    fn a_line_over_the_limit_is_reported_once_and_skipped_to_the_newline() {
        let long = vec![b'x'; 50];
        let got = decode_all(5, &[&long, &long, b"tail\nnext\n"]);
        assert_eq!(got, vec![Err(DecodeError::TooLong { max: 5 }), ok("next")]);
    }

    #[test]
    fn over_the_limit_by_one_byte_before_newline_is_too_long() {
        assert_eq!(
            decode_all(5, &[b"123456\nok\n"]),
            vec![Err(DecodeError::TooLong { max: 5 }), ok("ok")]
        );
        // Six bytes ending in \r is a five-byte line with CRLF; with more
        // after the \r it is too long.
        assert_eq!(
            decode_all(5, &[b"12345\rx\n"]),
            vec![Err(DecodeError::TooLong { max: 5 })]
        );
    }

    #[test]
    fn the_buffer_never_grows_past_the_limit() {
        let mut decoder = LineDecoder::new(10);
        for _ in 0..1000 {
            decoder.decode(&[b'y'; 64]).for_each(drop);
            assert!(decoder.buf.len() <= 11);
        }
    }

    #[test]
    fn a_final_line_without_newline_is_returned_by_finish() {
        let mut decoder = LineDecoder::new(10);
        assert_eq!(decoder.decode(b"one\ntwo").collect::<Vec<_>>(), vec![ok("one")]);
        assert_eq!(decoder.finish(), Some(ok("two")));
        assert_eq!(decoder.finish(), None);
        assert!(decoder.is_idle());
    }

    #[test]
    fn finish_after_an_overlong_line_returns_nothing() {
        let mut decoder = LineDecoder::new(3);
        assert_eq!(
            decoder.decode(b"abcdef").collect::<Vec<_>>(),
            vec![Err(DecodeError::TooLong { max: 3 })]
        );
        assert_eq!(decoder.finish(), None);
    }

    #[test]
    fn has_line_says_whether_next_yields() {
        let mut decoder = LineDecoder::new(4);
        let mut lines = decoder.decode(b"ab");
        assert!(!lines.has_line());
        assert_eq!(lines.next(), None);
        let mut lines = decoder.decode(b"c\nxyz");
        assert!(lines.has_line());
        assert_eq!(lines.next(), Some(ok("abc")));
        assert_eq!(lines.remaining(), b"xyz");
        assert!(!lines.has_line());
        assert_eq!(lines.next(), None);
        // Over the limit without a newline: the error is an item.
        let mut lines = decoder.decode(b"pqrs");
        assert!(lines.has_line());
        assert_eq!(lines.next(), Some(Err(DecodeError::TooLong { max: 4 })));
        // Skipping the rest of that line yields nothing until a line after it.
        let mut lines = decoder.decode(b"more\nok");
        assert!(!lines.has_line());
        assert_eq!(lines.next(), None);
        let mut lines = decoder.decode(b"\n");
        assert!(lines.has_line());
        assert_eq!(lines.next(), Some(ok("ok")));
    }

    #[test]
    fn a_multibyte_character_split_between_reads_decodes() {
        let snow = "☃".as_bytes();
        let got = decode_all(10, &[&snow[..1], &snow[1..2], &snow[2..], b"\n"]);
        assert_eq!(got, vec![ok("☃")]);
    }
}
