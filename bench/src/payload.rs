//! The timestamped 64-byte line that senders send and receivers time.
//!
//! Latency is measured end to end by the text itself: a sender writes
//! `t=<nanos> s=<sender> n=<seq> ` padded with `x` to 63 bytes plus `\n`,
//! where `t` counts nanoseconds since the run's shared [`std::time::Instant`]
//! base. Any receiver, on any generator thread, subtracts `t` from its own
//! clock reading on the same base, and uses `s` and `n` to check that every
//! sender's lines arrive exactly once and in order. Because the identity is
//! in the payload, the receiver does not need the server's prefix: a line
//! may arrive as `<b7> t=...` (chat-server), `<user5> t=...` (ncat), bare
//! `t=...` (ncat prefixes only the first line of each chunk it reads) or
//! `u7: t=...` (tokio's chat example). Over IRC (issue 16) the same text is
//! the trailing parameter of a `PRIVMSG` ([`crate::irc`]).

/// Length of one sent line, including its `\n`.
pub const LINE_LEN: usize = 64;

/// What a delivered line says about when and by whom it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Nanoseconds since the run's base instant, when it was written.
    pub t: u64,
    /// Index of the sender.
    pub sender: usize,
    /// The sender's sequence number of this line, from 0.
    pub seq: u64,
}

/// Appends `value` in decimal.
fn push_u64(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    let mut v = value;
    for slot in digits.iter_mut() {
        // `v % 10` is below 10, so the cast cannot truncate.
        *slot = b'0' + (v % 10) as u8;
        len += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend(digits.iter().take(len).rev());
}

/// Appends the line for `stamp`, exactly [`LINE_LEN`] bytes ending in `\n`.
pub fn write_line(out: &mut Vec<u8>, stamp: Stamp) {
    write_text(out, stamp);
    out.push(b'\n');
}

/// Appends the text of the line for `stamp` without its `\n`: exactly
/// [`LINE_LEN`] − 1 bytes. IRC senders send the same text in a `PRIVMSG`
/// ([`crate::irc::write_privmsg`]).
pub fn write_text(out: &mut Vec<u8>, stamp: Stamp) {
    let start = out.len();
    out.extend_from_slice(b"t=");
    push_u64(out, stamp.t);
    out.extend_from_slice(b" s=");
    push_u64(out, stamp.sender as u64);
    out.extend_from_slice(b" n=");
    push_u64(out, stamp.seq);
    out.push(b' ');
    // The fields take at most 2+20+3+20+3+20+1 = 69 bytes only for absurd
    // sender numbers; for any real run they fit well within 63.
    let used = out.len() - start;
    if used < LINE_LEN - 1 {
        out.resize(start + LINE_LEN - 1, b'x');
    }
}

/// Parses the decimal number at the start of `bytes`, returning it and the
/// rest. `None` when there is no digit or the number overflows.
fn parse_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 20 {
        return None;
    }
    let (digits, rest) = bytes.split_at_checked(len)?;
    let mut value: u64 = 0;
    for d in digits {
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some((value, rest))
}

/// The line after the server's sender prefix: `<name> ` (chat-server's
/// `<nick> `, ncat's `<userN> `), `name: ` with a name without spaces
/// (tokio's chat example), or none. `None` when the line has neither a
/// known prefix nor none.
fn strip_sender(line: &[u8]) -> Option<&[u8]> {
    if line.starts_with(b"t=") {
        return Some(line);
    }
    if line.first() == Some(&b'<') {
        let end = memchr::memmem::find(line, b"> ")?;
        return line.get(end + 2..);
    }
    let end = memchr::memmem::find(line, b": ")?;
    let name = line.get(..end)?;
    if name.is_empty() || name.contains(&b' ') {
        return None;
    }
    line.get(end + 2..)
}

/// The stamp in a delivered line (without its `\n`), if it carries one.
///
/// Accepts an optional sender prefix: chat-server's `<nick> `, ncat's
/// `<userN> `, tokio's chat example's `name: `; anything else (notices,
/// announcements) is `None`.
pub fn parse_delivery(line: &[u8]) -> Option<Stamp> {
    let rest = strip_sender(line)?;
    let rest = rest.strip_prefix(b"t=")?;
    let (t, rest) = parse_u64(rest)?;
    let rest = rest.strip_prefix(b" s=")?;
    let (sender, rest) = parse_u64(rest)?;
    let rest = rest.strip_prefix(b" n=")?;
    let (seq, _) = parse_u64(rest)?;
    Some(Stamp {
        t,
        sender: usize::try_from(sender).ok()?,
        seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_64_bytes_and_parses_back() {
        let stamp = Stamp {
            t: 123_456_789_012,
            sender: 7,
            seq: 42,
        };
        let mut out = Vec::new();
        write_line(&mut out, stamp);
        assert_eq!(out.len(), LINE_LEN);
        assert_eq!(out.last(), Some(&b'\n'));
        let text = &out[..LINE_LEN - 1];
        assert_eq!(parse_delivery(text), Some(stamp));
        let mut prefixed = b"<b7> ".to_vec();
        prefixed.extend_from_slice(text);
        assert_eq!(parse_delivery(&prefixed), Some(stamp));
        let mut ncat = b"<user12> ".to_vec();
        ncat.extend_from_slice(text);
        assert_eq!(parse_delivery(&ncat), Some(stamp));
        let mut tokio = b"u7: ".to_vec();
        tokio.extend_from_slice(text);
        assert_eq!(parse_delivery(&tokio), Some(stamp));
    }

    #[test]
    fn extremes_still_fit() {
        let stamp = Stamp {
            t: u64::MAX,
            sender: 99_999,
            seq: 9_999_999_999,
        };
        let mut out = Vec::new();
        write_line(&mut out, stamp);
        assert_eq!(out.len(), LINE_LEN);
        assert_eq!(parse_delivery(&out[..LINE_LEN - 1]), Some(stamp));
        let mut zero = Vec::new();
        write_line(
            &mut zero,
            Stamp {
                t: 0,
                sender: 0,
                seq: 0,
            },
        );
        assert!(zero.starts_with(b"t=0 s=0 n=0 xxx"));
    }

    #[test]
    fn other_lines_are_not_deliveries() {
        for line in [
            &b"-- b1 joined #bench"[..],
            b"<announce> 127.0.0.1 is connected as <user5>.",
            b"<b1> hello",
            // tokio's chat example: its prompt, announcements, chat text.
            b"Please enter your username:",
            b"u5 has joined the chat",
            b"u5 has left the chat",
            b"u5: hello",
            b"u5 x: t=1 s=1 n=1",
            b": t=1 s=1 n=1",
            b"t=12 s=x n=1",
            b"t=99999999999999999999999 s=1 n=1",
            b"",
            b"<unterminated",
        ] {
            assert_eq!(parse_delivery(line), None, "{:?}", String::from_utf8_lossy(line));
        }
    }
}
