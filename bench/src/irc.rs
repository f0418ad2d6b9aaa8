//! The IRC dialect of the generator (issue 16): what one client connection
//! says to an IRC server (chat-server's IRC listener, ngircd) and what it
//! makes of the lines that come back.
//!
//! Kept apart from the engine and free of sockets, as the line protocol's
//! stamp is ([`crate::payload`]): the I/O threads queue the bytes built
//! here and hand each received line to [`parse`], which says the one thing
//! the engine needs to know about it. A client registers (`NICK`, `USER`)
//! and is ready when the end of the message of the day arrives (376, or 422
//! when there is none); it joins with `JOIN` and is in once the end of the
//! names list (366) arrives; it sends the benchmark's stamped text as
//! `PRIVMSG #room :<text>`, and receives the others' as `:<source> PRIVMSG
//! #room :<text>`, whatever the server puts in the source
//! (`nick!nick@chat-server`, ngircd's `nick!~nick@127.0.0.1`). A server's
//! `PING` is answered with `PONG` at once, in any state.
//!
//! Anything the server refuses during the handshake (a numeric from 400 to
//! 599, other than 422, or `ERROR`) ends that connection with the server's
//! own words, so a run that cannot set up says why.

use crate::payload::{self, Stamp};

/// What a line from an IRC server means to the generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `PING`: the parameters to send back in the `PONG`, as given.
    Ping(&'a [u8]),
    /// The end of registration: 376 (end of MOTD) or 422 (no MOTD).
    Registered,
    /// 366, the end of a `JOIN`'s names list: the client is in.
    Joined,
    /// A `PRIVMSG`: its text (the trailing parameter).
    Message(&'a [u8]),
    /// `ERROR`, or an error numeric (400–599 but 422): the whole line.
    Refused(&'a [u8]),
    /// Anything else (the other registration numerics, JOIN echoes, MODE).
    Other,
}

/// The end of the message of the day.
const RPL_ENDOFMOTD: &[u8] = b"376";
/// No message of the day: registration is over all the same.
const ERR_NOMOTD: &[u8] = b"422";
/// The end of a names list, the last reply to a `JOIN`.
const RPL_ENDOFNAMES: &[u8] = b"366";

/// The nick of client `id`, the same on both protocols: `b<id>`, valid
/// for chat-server's rules (a letter first) and within ngircd's default
/// nick length of 9 for any id below 10⁸.
pub fn nick(id: usize) -> String {
    format!("b{id}")
}

/// Appends the registration of `nick`: `NICK` and `USER` (the user name
/// and real name the nick too, mode 0).
pub fn register(out: &mut Vec<u8>, nick: &str) {
    out.extend_from_slice(format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n").as_bytes());
}

/// Appends `OPER name password` and `MODE nick +F`: the way out of
/// ngircd's per-client command limit for a sender (user mode `F`, relaxed
/// flood protection, which only an IRC operator may set). A refusal comes
/// back as an error numeric ([`Reply::Refused`]) before the join's 366.
pub fn oper(out: &mut Vec<u8>, name: &str, password: &str, nick: &str) {
    out.extend_from_slice(format!("OPER {name} {password}\r\nMODE {nick} +F\r\n").as_bytes());
}

/// Appends `JOIN channel`.
pub fn join(out: &mut Vec<u8>, channel: &str) {
    out.extend_from_slice(format!("JOIN {channel}\r\n").as_bytes());
}

/// Appends the answer to a `PING` whose parameters were `params`.
pub fn pong(out: &mut Vec<u8>, params: &[u8]) {
    out.extend_from_slice(b"PONG ");
    out.extend_from_slice(params);
    out.extend_from_slice(b"\r\n");
}

/// What goes before the text of every line a sender says in `channel`:
/// `PRIVMSG channel :`.
pub fn privmsg_prefix(channel: &str) -> Vec<u8> {
    format!("PRIVMSG {channel} :").into_bytes()
}

/// Appends one stamped line as a `PRIVMSG`: `prefix` (from
/// [`privmsg_prefix`]), the same 63 bytes of text the line protocol sends,
/// then CR LF.
pub fn write_privmsg(out: &mut Vec<u8>, prefix: &[u8], stamp: Stamp) {
    out.extend_from_slice(prefix);
    payload::write_text(out, stamp);
    out.extend_from_slice(b"\r\n");
}

/// The next space-separated word of `rest` and what follows its space.
fn word(rest: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b' ', rest) {
        Some(end) => {
            let (head, tail) = rest.split_at(end);
            (head, tail.get(1..).unwrap_or_default())
        }
        None => (rest, &[]),
    }
}

/// The trailing parameter of `params` (what follows the first ` :`, or a
/// leading `:`), if there is one.
fn trailing(params: &[u8]) -> Option<&[u8]> {
    if let Some(text) = params.strip_prefix(b":") {
        return Some(text);
    }
    let at = memchr::memmem::find(params, b" :")?;
    params.get(at + 2..)
}

/// What `line` (without its `\n`; a `\r` before it is allowed) means.
/// Message tags (`@...`) and the source (`:...`) are skipped; commands are
/// compared without regard to case.
pub fn parse(line: &[u8]) -> Reply<'_> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut rest = line;
    if rest.first() == Some(&b'@') {
        rest = word(rest).1;
    }
    if rest.first() == Some(&b':') {
        rest = word(rest).1;
    }
    let (command, params) = word(rest);
    if command.eq_ignore_ascii_case(b"PING") {
        return Reply::Ping(params);
    }
    if command.eq_ignore_ascii_case(b"PRIVMSG") {
        return match trailing(params) {
            Some(text) => Reply::Message(text),
            None => Reply::Other,
        };
    }
    if command.eq_ignore_ascii_case(b"ERROR") {
        return Reply::Refused(line);
    }
    if command == RPL_ENDOFMOTD || command == ERR_NOMOTD {
        return Reply::Registered;
    }
    if command == RPL_ENDOFNAMES {
        return Reply::Joined;
    }
    if is_error_numeric(command) {
        return Reply::Refused(line);
    }
    Reply::Other
}

/// Three digits from 400 to 599: an error reply.
fn is_error_numeric(command: &[u8]) -> bool {
    matches!(command, [b'4' | b'5', b'0'..=b'9', b'0'..=b'9'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_join_and_oper_are_crlf_lines() {
        let mut out = Vec::new();
        register(&mut out, &nick(7));
        oper(&mut out, "bench", "pw", "b7");
        join(&mut out, "#bench42");
        pong(&mut out, b":bench.local");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NICK b7\r\nUSER b7 0 * :b7\r\nOPER bench pw\r\nMODE b7 +F\r\nJOIN #bench42\r\nPONG :bench.local\r\n"
        );
    }

    #[test]
    fn a_privmsg_carries_the_same_text_as_a_line_and_parses_back() {
        let stamp = Stamp {
            t: 987_654_321,
            sender: 3,
            seq: 12,
        };
        let mut out = Vec::new();
        write_privmsg(&mut out, &privmsg_prefix("#bench1"), stamp);
        let mut line = Vec::new();
        payload::write_line(&mut line, stamp);
        let text = &line[..line.len() - 1];
        assert_eq!(out, [b"PRIVMSG #bench1 :".as_slice(), text, b"\r\n"].concat());

        // As chat-server and ngircd deliver it, with the CR still on.
        for source in [
            ":b3!b3@chat-server",
            ":b3!~b3@127.0.0.1",
            "@time=2026-12-06T20:31:05Z :b3!b3@x",
        ] {
            let delivered = [source.as_bytes(), b" PRIVMSG #bench1 :", text, b"\r"].concat();
            let Reply::Message(got) = parse(&delivered) else { panic!("{source}: {:?}", parse(&delivered)) };
            assert_eq!(got, text);
            assert_eq!(payload::parse_delivery(got), Some(stamp));
        }
    }

    #[test]
    fn pings_are_answered_with_their_own_parameters() {
        assert_eq!(parse(b"PING :bench.local\r"), Reply::Ping(b":bench.local"));
        assert_eq!(parse(b":bench PING :tok 2"), Reply::Ping(b":tok 2"));
        assert_eq!(parse(b"ping x"), Reply::Ping(b"x"));
        let mut out = Vec::new();
        let Reply::Ping(params) = parse(b"PING :tok 2\r") else { panic!() };
        pong(&mut out, params);
        assert_eq!(out, b"PONG :tok 2\r\n");
    }

    #[test]
    fn registration_and_join_ends_are_recognised() {
        assert_eq!(
            parse(b":bench.local 376 b1 :End of MOTD command\r"),
            Reply::Registered
        );
        assert_eq!(parse(b":bench 422 b1 :MOTD File is missing"), Reply::Registered);
        assert_eq!(parse(b":bench 366 b1 #bench :End of /NAMES list"), Reply::Joined);
        for other in [
            &b":bench 001 b1 :Welcome to the bench chat, b1!b1@chat-server"[..],
            b":bench.local 005 b1 RFC2812 IRCD=ngIRCd :are supported on this server",
            b":bench.local 381 b1 :You are now an IRC Operator",
            b":b1!~b1@127.0.0.1 MODE b1 :+F",
            b":b1!b1@chat-server JOIN #bench",
            b":bench 353 b1 = #bench :b1 @b2",
            b":b2!b2@chat-server NOTICE #bench :hi",
            b":b2!b2@chat-server PRIVMSG #bench",
            b"",
            b":",
            b"@",
            b"3760 b1 :not a numeric",
        ] {
            assert_eq!(parse(other), Reply::Other, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn errors_and_error_numerics_are_refusals_with_the_line() {
        for refused in [
            &b"ERROR :Closing link: b1 (Ping timeout)"[..],
            b":bench 433 * b1 :Nickname is already in use",
            b":bench.local 464 b1 :Password incorrect",
            b":bench.local 491 b1 :Not allowed",
            b":bench 501 b1 :Unknown MODE flag",
            b":bench 404 b1 #bench :Cannot send to channel",
        ] {
            assert_eq!(parse(refused), Reply::Refused(refused));
        }
        assert_eq!(
            parse(b"ERROR :bye\r"),
            Reply::Refused(b"ERROR :bye"),
            "the CR is not part of the reason"
        );
    }
}
