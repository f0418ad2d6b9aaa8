//! Property tests of the protocol crate: the decoder gives the same lines
//! however the stream is split, keeps every line within its limit and never
//! panics; server lines round-trip through encode and parse; the command
//! parser never panics and never lets a control character into chat text;
//! the text sanitiser keeps its written policy (PROTOCOL.md, "Text") on any
//! text, and nicks that differ only in case share a skeleton.
//!
//! Case counts are proptest's default (256) so the file runs in seconds.

use std::borrow::Cow;

use chat_protocol::text::{class, is_blank, is_forbidden, sanitize, Class, MAX_MARKS, REPLACEMENT};
use chat_protocol::{Command, DecodeError, LineDecoder, Nick, ServerLine};
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

/// Characters the sanitiser treats specially, and some it must leave
/// alone: controls, separators, bidirectional and invisible characters,
/// joiners, variation selectors, tag characters and the flag they follow,
/// combining marks (nonspacing, enclosing, spacing), kinds of white space,
/// letters of several scripts, emoji and U+FFFD itself.
const SPECIAL: &[char] = &[
    '\0',
    '\t',
    '\r',
    '\u{1b}',
    '\u{7f}',
    '\u{85}',
    '\u{9b}',
    '\u{2028}',
    '\u{2029}',
    '\u{61c}',
    '\u{200e}',
    '\u{200f}',
    '\u{202e}',
    '\u{2067}',
    '\u{200b}',
    '\u{2060}',
    '\u{feff}',
    '\u{ad}',
    '\u{34f}',
    '\u{115f}',
    '\u{3164}',
    '\u{ffa0}',
    '\u{fff9}',
    '\u{ffff}',
    '\u{e0001}',
    '\u{200c}',
    '\u{200d}',
    '\u{fe0f}',
    '\u{fe0e}',
    '\u{e0100}',
    '\u{180b}',
    '\u{e0067}',
    '\u{e0062}',
    '\u{e0041}',
    '\u{e007f}',
    '\u{1f3f4}',
    '\u{301}',
    '\u{308}',
    '\u{323}',
    '\u{20e3}',
    '\u{20dd}',
    '\u{5b4}',
    '\u{94d}',
    '\u{93e}',
    ' ',
    '\u{a0}',
    '\u{3000}',
    '\u{2003}',
    '\u{2800}',
    'a',
    'Z',
    '7',
    '<',
    'é',
    'ß',
    'क',
    'ش',
    '你',
    '👩',
    '\u{1f3fd}',
    '\u{fffd}',
];

/// Nonspacing, enclosing and spacing marks.
const MARKS: &[char] = &[
    '\u{301}', '\u{308}', '\u{323}', '\u{5b4}', '\u{e34}', '\u{20e3}', '\u{20dd}', '\u{93e}',
];

/// Tag characters: letters and digits (which make flags), a capital and a
/// space (which do not), and CANCEL TAG.
const TAGS: &[char] = &[
    '\u{e0067}',
    '\u{e0062}',
    '\u{e0073}',
    '\u{e0031}',
    '\u{e0041}',
    '\u{e0020}',
    '\u{e007f}',
];

/// Text with many characters the sanitiser treats specially, in any order
/// and any number, runs of marks of any length, emoji tag sequences well
/// and badly formed, and now and then any character at all.
fn tricky_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        12 => prop::sample::select(SPECIAL).prop_map(String::from),
        2 => any::<char>().prop_map(String::from),
        2 => prop::collection::vec(prop::sample::select(MARKS), 1..10).prop_map(String::from_iter),
        1 => (prop::collection::vec(prop::sample::select(TAGS), 0..10), any::<bool>()).prop_map(|(tags, end)| {
            let mut s = String::from('\u{1f3f4}');
            s.extend(tags);
            if end {
                s.push('\u{e007f}');
            }
            s
        }),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

/// Text that needs no change: visible characters, white space and TAB,
/// with up to the bound of nonspacing marks on each visible character, a
/// ZWJ between two of them now and then, and a variation selector.
fn clean_text() -> impl Strategy<Value = String> {
    let base = any::<char>().prop_filter("a visible character", |&c| class(c) == Class::Base);
    let mark = prop::sample::select(MARKS.get(..6).unwrap_or(MARKS));
    let space = prop::sample::select(&[' ', '\t', '\u{a0}', '\u{3000}', '\u{2800}'][..]);
    let cluster = (
        base,
        any::<bool>(),
        prop::collection::vec(mark, 0..=MAX_MARKS),
        prop::option::weighted(
            0.2,
            any::<char>().prop_filter("a visible character", |&c| class(c) == Class::Base),
        ),
    )
        .prop_map(|(base, selector, marks, joined)| {
            let mut s = String::from(base);
            if selector {
                s.push('\u{fe0f}');
            }
            s.extend(marks);
            if let Some(next) = joined {
                s.push('\u{200d}');
                s.push(next);
            }
            s
        });
    let piece = prop_oneof![3 => cluster, 1 => space.prop_map(String::from)];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

/// Where in `text` the policy is broken, if it is: a forbidden character,
/// a joiner not after a visible character, a selector not right after a
/// base character, a mark with nothing to sit on, more than [`MAX_MARKS`]
/// nonspacing marks in a row, or a tag character outside an emoji tag
/// sequence.
fn policy_broken(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut marks_in_a_row = 0;
    let mut tags_allowed = 0;
    for (i, &c) in chars.iter().enumerate() {
        let before = chars.get(..i).unwrap_or_default();
        // The character a mark or joiner at `i` hangs on: the last one
        // before it that is not a mark, selector or tag character.
        let hangs_on = before
            .iter()
            .rev()
            .map(|&b| class(b))
            .find(|k| !matches!(k, Class::NonspacingMark | Class::Selector | Class::Tag));
        let kind = class(c);
        marks_in_a_row = if kind == Class::NonspacingMark {
            marks_in_a_row + 1
        } else {
            0
        };
        let broken = match kind {
            Class::Forbidden => true,
            Class::Joiner => !matches!(hangs_on, Some(Class::Base | Class::SpacingMark)),
            Class::Selector => !matches!(before.last().map(|&b| class(b)), Some(Class::Base)),
            Class::NonspacingMark | Class::SpacingMark => {
                !matches!(hangs_on, Some(Class::Base | Class::Space | Class::SpacingMark))
            }
            Class::Tag => tags_allowed == 0,
            Class::Tab | Class::Space | Class::Base => false,
        } || marks_in_a_row > MAX_MARKS;
        if broken {
            return Some(format!("U+{:04X} at {i} in {text:?}", c as u32));
        }
        // A well-formed tag sequence opens here: let its tags through.
        tags_allowed = match c {
            '\u{1f3f4}' => {
                let tags = chars
                    .get(i + 1..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|&&t| matches!(t, '\u{e0030}'..='\u{e0039}' | '\u{e0061}'..='\u{e007a}'))
                    .count();
                let ended = chars.get(i + 1 + tags) == Some(&'\u{e007f}');
                if (1..=7).contains(&tags) && ended {
                    tags + 1
                } else {
                    0
                }
            }
            _ => tags_allowed.saturating_sub(1),
        };
    }
    None
}

/// Checks that `output` is `input` with each character kept, replaced by
/// U+FFFD (only those the policy may replace), or removed (only nonspacing
/// marks past the bound in a row), in order.
fn maps_one_to_one(input: &str, output: &str) -> Result<(), String> {
    let mut out = output.chars().peekable();
    let mut kept_marks = 0;
    for c in input.chars() {
        let next = out.peek().copied();
        if class(c) == Class::NonspacingMark && kept_marks == MAX_MARKS {
            // Removed: the bound was reached. (Not kept: the output must not
            // hold more; not replaced: a mark is replaced only where it has
            // nothing to sit on.)
        } else if next == Some(c) {
            out.next();
            kept_marks = if class(c) == Class::NonspacingMark {
                kept_marks + 1
            } else {
                0
            };
        } else if next == Some(REPLACEMENT) && !matches!(class(c), Class::Base | Class::Space | Class::Tab) {
            out.next();
            kept_marks = 0;
        } else {
            return Err(format!(
                "U+{:04X} of {input:?} became {next:?} in {output:?}",
                c as u32
            ));
        }
    }
    match out.next() {
        None => Ok(()),
        Some(extra) => Err(format!("{output:?} has {extra:?} left over from {input:?}")),
    }
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
                Err(DecodeError::InvalidUtf8 { .. }) => {}
                Err(DecodeError::MessageTooLong { .. }) => {
                    prop_assert!(false, "the line decoder reports lines, not messages")
                }
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
                prop_assert_eq!(policy_broken(&text), None);
                prop_assert!(!is_blank(&text), "blank chat text {:?} from {:?}", text, line);
            }
            Ok(Some(Command::Quit(Some(reason)))) => {
                prop_assert_eq!(forbidden(&reason), None, "quit reason {:?} from {:?}", reason, line);
                prop_assert_eq!(policy_broken(&reason), None);
                prop_assert!(!is_blank(&reason), "blank quit reason {:?} from {:?}", reason, line);
            }
            Ok(None) => prop_assert!(is_blank(&line), "{:?} ignored but not blank", line),
            Ok(_) => {}
            Err(error) => {
                // The error goes back to the client verbatim: it too must be clean.
                let message = error.to_string();
                prop_assert_eq!(forbidden(&message), None, "error {:?} from {:?}", message, line);
            }
        }
    }

    #[test]
    fn sanitized_text_keeps_the_policy(text in tricky_text()) {
        let clean = sanitize(&text);
        prop_assert_eq!(policy_broken(&clean), None);
    }

    #[test]
    fn sanitizing_is_idempotent(text in tricky_text()) {
        let once = sanitize(&text).into_owned();
        let twice = sanitize(&once);
        prop_assert!(matches!(twice, Cow::Borrowed(_)), "{:?} changed again to {:?}", once, twice);
    }

    #[test]
    fn each_character_is_kept_replaced_or_a_mark_past_the_bound_removed(text in tricky_text()) {
        let clean = sanitize(&text);
        if let Err(why) = maps_one_to_one(&text, &clean) {
            prop_assert!(false, "{}", why);
        }
        prop_assert_eq!(matches!(clean, Cow::Borrowed(_)), clean == text.as_str());
    }

    #[test]
    fn text_that_keeps_the_policy_comes_back_borrowed_and_unchanged(text in clean_text()) {
        prop_assert_eq!(policy_broken(&text), None);
        prop_assert!(matches!(sanitize(&text), Cow::Borrowed(t) if t == text), "{:?} was changed", text);
    }

    #[test]
    fn any_text_that_keeps_the_policy_is_untouched(text in tricky_text()) {
        if policy_broken(&text).is_none() {
            prop_assert!(matches!(sanitize(&text), Cow::Borrowed(t) if t == text), "{:?} was changed", text);
        }
    }

    #[test]
    fn blank_is_what_shows_nothing_once_sanitized(text in tricky_text()) {
        let shows_nothing = sanitize(&text).chars().all(|c| matches!(class(c), Class::Space | Class::Tab));
        prop_assert_eq!(is_blank(&text), shows_nothing, "{:?}", text);
    }

    #[test]
    fn nicks_equal_without_regard_to_case_share_a_skeleton(name in nick(), flips in prop::collection::vec(any::<bool>(), 24)) {
        let flipped: String = name
            .chars()
            .zip(flips)
            .map(|(c, flip)| if flip { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
            .collect();
        let (a, b) = (Nick::new(&name).unwrap(), Nick::new(&flipped).unwrap());
        prop_assert_eq!(a.key(), b.key());
        prop_assert_eq!(a.skeleton(), b.skeleton());
    }
}
