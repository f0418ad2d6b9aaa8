//! Property tests of the protocol crate: the decoder gives the same lines
//! however the stream is split, keeps every line within its limit and never
//! panics; server lines round-trip through encode and parse; the command
//! parser never panics and never lets a control character into chat text.
//!
//! Case counts are proptest's default (256) so the file runs in seconds.

use chat_protocol::text::{is_forbidden, sanitize};
use chat_protocol::{Command, DecodeError, LineDecoder, ServerLine};
use proptest::prelude::*;
use proptest::sample::Index;

type Item = Result<String, DecodeError>;

/// Feeds `pieces` in order to one decoder and collects every item, plus what
/// `finish` returns for an unterminated last line.
fn decode_pieces<'a>(max: usize, pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<Item> {
    let mut decoder = LineDecoder::new(max);
    let mut items = Vec::new();
    for piece in pieces {
        items.extend(decoder.decode(piece));
    }
    items.extend(decoder.finish());
    items
}

/// `input` cut at the given points (any order, duplicates allowed, so empty
/// pieces happen too).
fn split_at_points<'a>(input: &'a [u8], points: &[Index]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p.index(input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let (mut rest, mut start) = (input, 0);
    for cut in cuts {
        let (piece, tail) = rest.split_at(cut - start);
        pieces.push(piece);
        (rest, start) = (tail, cut);
    }
    pieces.push(rest);
    pieces
}

/// Bytes that hit every path of the decoder often: `\r`, bytes that are
/// never valid UTF-8, pieces of multi-byte characters, and plain ASCII.
fn line_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        2 => Just(b'\r'),
        1 => Just(0xff),
        1 => Just(0xe2),
        1 => Just(0x98),
        1 => Just(0x83),
        8 => b'a'..=b'z',
        3 => any::<u8>(),
    ]
}

/// A stream of lines, mostly valid UTF-8 (of any characters), some of raw
/// bytes, from empty to well over the limits used here (8..64), ended by `\n`, `\r\n` or nothing (the last one unterminated, or two runs
/// making one longer line).
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let end = prop::sample::select(vec![&b"\n"[..], b"\r\n", b""]);
    let body = prop_oneof![
        3 => "[^\n]{0,40}".prop_map(String::into_bytes),
        1 => prop::collection::vec(line_byte(), 0..100),
    ];
    let segment = (body, end);
    prop::collection::vec(segment, 0..8).prop_map(|segments| {
        let mut bytes = Vec::new();
        for (line, end) in segments {
            bytes.extend_from_slice(&line);
            bytes.extend_from_slice(end);
        }
        bytes
    })
}

/// A nick: `[A-Za-z][A-Za-z0-9_-]{0,23}`.
fn nick() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_-]{0,23}"
}

/// Chat text as the server sends it: any characters, sanitized.
fn text() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|s| sanitize(&s).into_owned())
}

fn server_line() -> impl Strategy<Value = ServerLine> {
    prop_oneof![
        (nick(), text()).prop_map(|(from, text)| ServerLine::Message { from, text }),
        (nick(), text()).prop_map(|(from, text)| ServerLine::Action { from, text }),
        (nick(), text()).prop_map(|(from, text)| ServerLine::PrivateFrom { from, text }),
        (nick(), text()).prop_map(|(to, text)| ServerLine::PrivateTo { to, text }),
        text().prop_map(ServerLine::Notice),
        text().prop_map(ServerLine::Error),
    ]
}

/// Client lines that reach every branch of the parser: commands with
/// arguments of any characters (control characters included), `//`, plain
/// text and nothing at all.
fn client_line() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(vec![
        "",
        "/",
        "//",
        "/nick ",
        "/NICK ",
        "/join ",
        "/rooms",
        "/who",
        "/msg ",
        "/msg bob ",
        "/MSG\tbob\t",
        "/me ",
        "/Me ",
        "/quit",
        "/quit ",
        "/help",
        "/dance ",
        " ",
    ]);
    (prefix, any::<String>()).prop_map(|(prefix, rest)| format!("{prefix}{rest}"))
}

proptest! {
    #[test]
    fn any_two_or_three_splits_decode_like_the_whole_stream(
        input in stream(),
        max in 8usize..64,
        points in prop::collection::vec(any::<Index>(), 2..=3),
    ) {
        let whole = decode_pieces(max, [&input[..]]);
        let split = decode_pieces(max, split_at_points(&input, &points));
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn one_byte_at_a_time_decodes_like_the_whole_stream(input in stream(), max in 8usize..64) {
        let whole = decode_pieces(max, [&input[..]]);
        let bytewise = decode_pieces(max, input.chunks(1));
        prop_assert_eq!(bytewise, whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_yield_a_line_over_the_limit(
        input in prop::collection::vec(any::<u8>(), 0..600),
        max in 1usize..64,
        points in prop::collection::vec(any::<Index>(), 0..=3),
    ) {
        for item in decode_pieces(max, split_at_points(&input, &points)) {
            match item {
                Ok(line) => {
                    prop_assert!(line.len() <= max, "{} bytes > max {}: {:?}", line.len(), max, line);
                    prop_assert!(!line.contains('\n'), "line holds a newline: {:?}", line);
                }
                Err(DecodeError::TooLong { max: reported }) => prop_assert_eq!(reported, max),
                Err(DecodeError::InvalidUtf8) => {}
            }
        }
    }

    #[test]
    fn lines_joined_with_lf_or_crlf_decode_back_to_themselves(
        raw_lines in prop::collection::vec(".{0,24}", 0..12),
        crlf in prop::collection::vec(any::<bool>(), 12),
        max in 8usize..64,
        points in prop::collection::vec(any::<Index>(), 0..=3),
    ) {
        // "." never matches '\n'. Cut each line to the limit on a character
        // boundary and drop trailing '\r's, which a CRLF end would swallow.
        let lines: Vec<String> = raw_lines
            .iter()
            .map(|line| {
                let mut end = line.len().min(max);
                while !line.is_char_boundary(end) {
                    end -= 1;
                }
                line[..end].trim_end_matches('\r').to_string()
            })
            .collect();
        let mut input = Vec::new();
        for (line, crlf) in lines.iter().zip(&crlf) {
            input.extend_from_slice(line.as_bytes());
            input.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
        }
        let expected: Vec<Item> = lines.iter().cloned().map(Ok).collect();
        prop_assert_eq!(decode_pieces(max, [&input[..]]), expected.clone());
        prop_assert_eq!(decode_pieces(max, split_at_points(&input, &points)), expected.clone());
        prop_assert_eq!(decode_pieces(max, input.chunks(1)), expected);
    }

    #[test]
    fn every_server_line_round_trips_through_encode_and_parse(line in server_line()) {
        let mut wire = Vec::new();
        line.encode(&mut wire);
        prop_assert_eq!(wire.last(), Some(&b'\n'));
        prop_assert_eq!(wire.iter().filter(|&&b| b == b'\n').count(), 1, "one line, one newline");
        let wire = String::from_utf8(wire).expect("encode writes UTF-8");
        prop_assert_eq!(ServerLine::parse(&wire), Ok(line.clone()));
        prop_assert_eq!(ServerLine::parse(&line.to_string()), Ok(line));
    }

    #[test]
    fn command_parse_never_panics_and_chat_text_is_clean(line in client_line()) {
        let forbidden = |s: &str| s.chars().find(|&c| is_forbidden(c));
        match Command::parse(&line) {
            Ok(Some(Command::Say(text) | Command::Me(text) | Command::Msg { text, .. })) => {
                prop_assert_eq!(forbidden(&text), None, "chat text {:?} from {:?}", text, line);
                prop_assert!(text.chars().all(|c| c == '\t' || !c.is_control()));
            }
            Ok(Some(Command::Quit(Some(reason)))) => {
                prop_assert_eq!(forbidden(&reason), None, "quit reason {:?} from {:?}", reason, line);
            }
            Ok(_) => {}
            Err(error) => {
                // The error goes back to the client verbatim: it too must be clean.
                let message = error.to_string();
                prop_assert_eq!(forbidden(&message), None, "error {:?} from {:?}", message, line);
            }
        }
    }
}
