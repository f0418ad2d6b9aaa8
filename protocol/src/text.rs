//! Making chat text safe to show in someone else's terminal.
//!
//! A chat message is printed raw in other people's terminals (netcat does
//! no filtering), so what it holds must not act on their terminal or
//! mislead them about what was said. Three kinds of character are dealt
//! with, each for its reason (PROTOCOL.md's "Text" section says the same
//! as a table):
//!
//! - **Always replaced** with U+FFFD ([`is_forbidden`]): control
//!   characters but TAB (they could move the cursor, clear the screen, ring
//!   the bell or end a line early to fake a server line), the line and
//!   paragraph separators, every bidirectional formatting character (they
//!   could make a line display as something other than its bytes say), and
//!   the invisible characters of Unicode's Default_Ignorable_Code_Point
//!   property (zero-width space, word joiner, BOM, Hangul fillers, ...:
//!   they hide text, or make a line that looks empty), the other format
//!   characters but a few visible number signs (interlinear annotations,
//!   Egyptian hieroglyph controls, any a later Unicode adds) and
//!   noncharacters. Replacing rather than removing shows
//!   the reader that something was there, and the rest is still delivered.
//! - **Kept only where real text needs them** ([`Class`]): the joiners ZWJ
//!   and ZWNJ (emoji sequences, Indic and Persian words) and the variation
//!   selectors (emoji and text presentation, ideographic variants) only
//!   after a visible character, combining marks only on a base character
//!   and at most [`MAX_MARKS`] nonspacing ones in a row (Vietnamese, Thai,
//!   Devanagari or pointed Hebrew need two or three; "Zalgo" text stacks
//!   dozens, which spill over the lines above and below), tag characters
//!   only in an emoji tag sequence (the flags of England, Scotland, Wales).
//!   Elsewhere a joiner, selector, tag or baseless mark is replaced with
//!   U+FFFD; marks past the bound are removed, since they are visible
//!   already and only the pile-up is dropped.
//! - **Everything else is kept**: letters, digits, punctuation, symbols,
//!   emoji, white space, private-use characters (terminal icon fonts use
//!   them) and code points not yet assigned (next year's emoji).
//!
//! [`sanitize`] applies this in one pass that borrows the text when nothing
//! changes, and [`is_blank`] says when a line shows nothing at all, so the
//! command parser can ignore it like an empty line.
//!
//! The general category (combining marks, format characters) comes from the
//! `unicode-properties` crate (Unicode 18.0), White_Space from the standard
//! library; the other sets are listed here, from DerivedCoreProperties.txt
//! (Default_Ignorable_Code_Point, checked against Unicode 14.0's; a format
//! character a later version adds is caught by its general category) and
//! UTS #51 (emoji sequences).

use std::borrow::Cow;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// What a character that must not be shown is replaced with.
pub const REPLACEMENT: char = '\u{FFFD}';

/// The most nonspacing (and enclosing) marks kept in a row on one base
/// character. UTS #39 (Unicode Security Mechanisms, section 5.4) suggests
/// forbidding more than 4; real scripts need two or three.
pub const MAX_MARKS: usize = 4;

/// U+1F3F4 WAVING BLACK FLAG, the only base of the recommended emoji tag
/// sequences (UTS #51): the flags of England, Scotland and Wales.
const TAG_BASE: char = '\u{1F3F4}';
/// U+E007F CANCEL TAG, which ends an emoji tag sequence.
const TAG_END: char = '\u{E007F}';
/// Most tag characters between [`TAG_BASE`] and [`TAG_END`]: a CLDR region
/// subdivision code is a region (2 letters or 3 digits) and up to 4 letters
/// or digits (`gbsct`). The bound keeps tag characters from carrying long
/// hidden messages ("ASCII smuggling").
const MAX_TAG_SPEC: usize = 7;

/// What a character is, as far as the sanitiser is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Never shown: replaced wherever it is (see [`is_forbidden`]).
    Forbidden,
    /// U+200C ZWNJ or U+200D ZWJ: kept only after a visible character.
    Joiner,
    /// A variation selector (U+FE00–U+FE0F, U+E0100–U+E01EF, the Mongolian
    /// free variation selectors U+180B–U+180D and U+180F): kept only right
    /// after a visible base character.
    Selector,
    /// A tag character, U+E0020–U+E007F: kept only in an emoji tag
    /// sequence.
    Tag,
    /// A nonspacing or enclosing combining mark (general category Mn or
    /// Me): kept on a base character, at most [`MAX_MARKS`] in a row.
    NonspacingMark,
    /// A spacing combining mark (general category Mc): kept on a base
    /// character; it takes a column of its own, so it does not stack.
    SpacingMark,
    /// TAB.
    Tab,
    /// Any other character that shows nothing: White_Space (space, NBSP,
    /// U+2000–U+200A, U+3000, ...) but the controls among it, and U+2800
    /// BRAILLE PATTERN BLANK, which renders as an empty cell and is the
    /// usual trick for an empty-looking message. Marks may sit on it (the
    /// Unicode way to show an accent alone); joiners and selectors may not.
    Space,
    /// Everything else: a visible character.
    Base,
}

/// The class of `c`.
pub fn class(c: char) -> Class {
    match c {
        '\t' => Class::Tab,
        ' ' => Class::Space,
        '!'..='~' => Class::Base,
        '\u{200C}' | '\u{200D}' => Class::Joiner,
        '\u{180B}'..='\u{180D}' | '\u{180F}' | '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}' => {
            Class::Selector
        }
        '\u{E0020}'..='\u{E007F}' => Class::Tag,
        _ if is_listed_forbidden(c) => Class::Forbidden,
        '\u{2800}' => Class::Space,
        // The common accents (U+034F, in the block, is listed above).
        '\u{300}'..='\u{36F}' => Class::NonspacingMark,
        _ if c.is_whitespace() => Class::Space,
        // No combining mark or format character but U+00AD (listed) comes
        // before U+0300, nor in the big blocks of PLAIN: text in them needs
        // no lookup in the general category table.
        _ if c < '\u{300}' || is_plain(c) => Class::Base,
        _ => match c.general_category() {
            GeneralCategory::NonspacingMark | GeneralCategory::EnclosingMark => Class::NonspacingMark,
            GeneralCategory::SpacingMark => Class::SpacingMark,
            GeneralCategory::Format if !is_visible_format(c) => Class::Forbidden,
            _ => Class::Base,
        },
    }
}

/// Ranges, in order, that hold no combining mark, format character, white
/// space or other character the sanitiser treats specially (a test checks
/// them against the table): Greek, Cyrillic, Armenian, Latin Extended
/// Additional, Greek Extended, symbols (letterlike, arrows, maths, box
/// drawing, dingbats), CJK, Yi, Hangul, private use, emoji and the CJK
/// extensions. Looking here first spares most text the table lookup.
const PLAIN: &[(char, char)] = &[
    ('\u{370}', '\u{482}'),
    ('\u{48A}', '\u{590}'),
    ('\u{1E00}', '\u{1FFF}'),
    ('\u{20F1}', '\u{27FF}'),
    ('\u{2801}', '\u{2CEE}'),
    ('\u{3165}', '\u{A66E}'),
    ('\u{ABEE}', '\u{D7FF}'),
    ('\u{E000}', '\u{FB1D}'),
    ('\u{1E94B}', '\u{1F3F3}'),
    ('\u{1F3F5}', '\u{1FFFD}'),
    ('\u{20000}', '\u{2FFFD}'),
    ('\u{30000}', '\u{3FFFD}'),
];

/// True when `c` is in one of the [`PLAIN`] ranges.
fn is_plain(c: char) -> bool {
    let at = PLAIN.partition_point(|&(_, last)| last < c);
    PLAIN.get(at).is_some_and(|&(first, _)| first <= c)
}

/// True for characters that are never shown, wherever they are:
///
/// - control characters (general category Cc) but TAB: C0, DEL, C1;
/// - U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR, which some
///   programs take for line ends;
/// - every bidirectional formatting character: U+061C ARABIC LETTER MARK,
///   U+200E LRM, U+200F RLM, the embeddings and overrides U+202A–U+202E,
///   the isolates U+2066–U+2069;
/// - the rest of Default_Ignorable_Code_Point but the joiners, variation
///   selectors and tag characters ([`Class`]): U+00AD SOFT HYPHEN, U+034F
///   COMBINING GRAPHEME JOINER, the Hangul fillers U+115F, U+1160, U+3164,
///   U+FFA0, U+17B4–U+17B5, U+180E MONGOLIAN VOWEL SEPARATOR, U+200B ZERO
///   WIDTH SPACE, U+2060–U+2065 (word joiner, invisible operators),
///   U+206A–U+206F, U+FEFF BOM, U+FFF0–U+FFF8, U+1BCA0–U+1BCA3,
///   U+1D173–U+1D17A, and the unassigned rest of U+E0000–U+E0FFF (U+E0001
///   LANGUAGE TAG among them), all of which are invisible;
/// - U+FFF9–U+FFFB, the interlinear annotation characters, which hide the
///   text between them in programs that honour them;
/// - any other format character (general category Cf: the Egyptian
///   hieroglyph format controls, and those a later Unicode adds) but the
///   visible ones that sit before digits (U+0600–U+0605, U+06DD, U+070F,
///   U+0890–U+0891, U+08E2, U+110BD, U+110CD);
/// - noncharacters (U+FDD0–U+FDEF and the last two code points of every
///   plane), which are for a program's internal use, never interchange.
pub fn is_forbidden(c: char) -> bool {
    class(c) == Class::Forbidden
}

/// The forbidden characters that need no table lookup: the controls, the
/// Default_Ignorable_Code_Point set but for the joiners, selectors and tag
/// characters, the separators, the annotation characters and the
/// noncharacters.
fn is_listed_forbidden(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(
            c,
            '\u{AD}'
                | '\u{34F}'
                | '\u{61C}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180E}'
                | '\u{200B}'
                | '\u{200E}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FDD0}'..='\u{FDEF}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFFB}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E001F}'
                | '\u{E0080}'..='\u{E00FF}'
                | '\u{E01F0}'..='\u{E0FFF}'
        )
        || (u32::from(c) & 0xFFFE) == 0xFFFE
}

/// The format characters (Cf) that show a sign: Prepended_Concatenation_Mark,
/// the Arabic, Syriac and Kaithi signs written before a number.
fn is_visible_format(c: char) -> bool {
    matches!(
        c,
        '\u{600}'..='\u{605}' | '\u{6DD}' | '\u{70F}' | '\u{890}'..='\u{891}' | '\u{8E2}' | '\u{110BD}' | '\u{110CD}'
    )
}

/// True when `text` shows nothing once sanitised: it is empty, or every
/// character is TAB or of [`Class::Space`] (white space, U+2800). Such a
/// line is ignored like an empty one rather than delivered as a line that
/// looks empty. (Controls that are white space, VT, FF, NEL, and the line
/// and paragraph separators are replaced with a visible U+FFFD instead.)
pub fn is_blank(text: &str) -> bool {
    text.chars()
        .all(|c| matches!(class(c), Class::Space | Class::Tab))
}

/// `text` made safe to show: every [forbidden](is_forbidden) character,
/// and every joiner, selector, tag character or mark out of its place (see
/// [`Class`]), replaced by [`REPLACEMENT`]; nonspacing marks past
/// [`MAX_MARKS`] in a row removed. Borrowed when nothing changed.
///
/// Runs on every chat line, so the common case is cheap: runs of printable
/// ASCII are skipped 16 bytes at a time (only their last byte matters to
/// what follows), other characters are looked at one by one, and the text
/// is copied only from the first change on, all in one pass.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out = Output {
        text,
        owned: None,
        clean_from: 0,
    };
    let mut prev = Prev::Detached;
    let mut at = 0;
    loop {
        let rest = bytes.get(at..).unwrap_or_default();
        let run = plain_ascii_run(rest);
        if let Some(&last) = run.checked_sub(1).and_then(|i| rest.get(i)) {
            prev = match last {
                b'\t' => Prev::Detached,
                b' ' => Prev::Space { marks: 0 },
                _ => Prev::VISIBLE_BASE,
            };
            at += run;
        }
        // `at` is now at a non-ASCII or control byte, so on a char boundary.
        let Some(c) = text.get(at..).and_then(|rest| rest.chars().next()) else {
            break;
        };
        let len = c.len_utf8();
        if c == TAG_BASE {
            if let Some(tags) = text.get(at + len..).and_then(tag_sequence_len) {
                prev = Prev::Visible {
                    marks: 0,
                    selectable: false,
                };
                at += len + tags;
                continue;
            }
        }
        let (action, next) = step(prev, class(c));
        match action {
            Action::Keep => {}
            Action::Replace => out.change(at, len, Some(REPLACEMENT)),
            Action::Remove => out.change(at, len, None),
        }
        prev = next;
        at += len;
    }
    out.finish()
}

/// True for a byte of printable ASCII or TAB. Written with `|` rather than
/// `||` so that a loop over a chunk of bytes has no branch in it and
/// compiles to vector instructions (the range is one subtraction and one
/// comparison).
fn is_plain_ascii(b: u8) -> bool {
    (b' '..=b'~').contains(&b) | (b == b'\t')
}

/// The length of the run of printable ASCII and TAB that opens `bytes`.
/// Looks at 16 bytes at a time while they are all plain (the whole of a
/// typical chat line), then byte by byte.
fn plain_ascii_run(bytes: &[u8]) -> usize {
    const CHUNK: usize = 16;
    let mut run = 0;
    let mut chunks = bytes.chunks_exact(CHUNK);
    for chunk in chunks.by_ref() {
        if !chunk.iter().fold(true, |all, &b| all & is_plain_ascii(b)) {
            return run + chunk.iter().position(|&b| !is_plain_ascii(b)).unwrap_or(CHUNK);
        }
        run += CHUNK;
    }
    let tail = chunks.remainder();
    run + tail
        .iter()
        .position(|&b| !is_plain_ascii(b))
        .unwrap_or(tail.len())
}

/// What precedes a character in the output: what it could attach to.
#[derive(Debug, Clone, Copy)]
enum Prev {
    /// Nothing to attach to: the start of the text, a TAB, or a joiner
    /// (which joins to what follows, and needs a base there).
    Detached,
    /// White space, with the nonspacing marks on it so far.
    Space {
        /// Nonspacing marks in a row.
        marks: usize,
    },
    /// A visible character, with the nonspacing marks on it so far.
    Visible {
        /// Nonspacing marks in a row.
        marks: usize,
        /// True right after the base character itself, where a variation
        /// selector belongs.
        selectable: bool,
    },
}

impl Prev {
    /// After a visible base character, or a U+FFFD put in for something.
    const VISIBLE_BASE: Prev = Prev::Visible {
        marks: 0,
        selectable: true,
    };
}

/// What becomes of one character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Keep,
    Replace,
    Remove,
}

/// The fate of a character of class `class` after `prev`, and what then
/// precedes the next one. Depends only on what is in the output so far,
/// which is what makes [`sanitize`] idempotent.
fn step(prev: Prev, class: Class) -> (Action, Prev) {
    const REPLACED: (Action, Prev) = (Action::Replace, Prev::VISIBLE_BASE);
    match (class, prev) {
        (Class::Forbidden | Class::Tag, _) => REPLACED,
        (Class::Tab, _) => (Action::Keep, Prev::Detached),
        (Class::Space, _) => (Action::Keep, Prev::Space { marks: 0 }),
        (Class::Base, _) => (Action::Keep, Prev::VISIBLE_BASE),
        (Class::Joiner, Prev::Visible { .. }) => (Action::Keep, Prev::Detached),
        (
            Class::Selector,
            Prev::Visible {
                marks,
                selectable: true,
            },
        ) => (
            Action::Keep,
            Prev::Visible {
                marks,
                selectable: false,
            },
        ),
        (Class::NonspacingMark, Prev::Space { marks }) if marks < MAX_MARKS => {
            (Action::Keep, Prev::Space { marks: marks + 1 })
        }
        (Class::NonspacingMark, Prev::Visible { marks, .. }) if marks < MAX_MARKS => (
            Action::Keep,
            Prev::Visible {
                marks: marks + 1,
                selectable: false,
            },
        ),
        (Class::NonspacingMark, Prev::Space { .. } | Prev::Visible { .. }) => (Action::Remove, prev),
        (Class::SpacingMark, Prev::Space { .. } | Prev::Visible { .. }) => (
            Action::Keep,
            Prev::Visible {
                marks: 0,
                selectable: false,
            },
        ),
        (Class::Joiner | Class::Selector | Class::NonspacingMark | Class::SpacingMark, _) => REPLACED,
    }
}

/// The length in bytes of the tag characters and CANCEL TAG that open
/// `after` (what follows a [`TAG_BASE`]), when they make an emoji tag
/// sequence: 1 to [`MAX_TAG_SPEC`] tag letters or digits, then
/// [`TAG_END`].
fn tag_sequence_len(after: &str) -> Option<usize> {
    let mut spec = 0;
    for (at, c) in after.char_indices() {
        match c {
            '\u{E0030}'..='\u{E0039}' | '\u{E0061}'..='\u{E007A}' if spec < MAX_TAG_SPEC => spec += 1,
            TAG_END if spec > 0 => return Some(at + c.len_utf8()),
            _ => return None,
        }
    }
    None
}

/// The sanitised text being built: borrowed until the first change.
struct Output<'a> {
    /// The text being sanitised.
    text: &'a str,
    /// The output, once something changed.
    owned: Option<String>,
    /// Where in `text` the characters not yet copied to `owned` start.
    clean_from: usize,
}

impl<'a> Output<'a> {
    /// Puts `with` (or nothing) in place of the `len` bytes at `at`.
    fn change(&mut self, at: usize, len: usize, with: Option<char>) {
        let owned = self
            .owned
            .get_or_insert_with(|| String::with_capacity(self.text.len() + 2));
        owned.push_str(self.text.get(self.clean_from..at).unwrap_or_default());
        owned.extend(with);
        self.clean_from = at + len;
    }

    /// The sanitised text.
    fn finish(self) -> Cow<'a, str> {
        match self.owned {
            None => Cow::Borrowed(self.text),
            Some(mut owned) => {
                owned.push_str(self.text.get(self.clean_from..).unwrap_or_default());
                Cow::Owned(owned)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// U+FFFD, short, for expected strings.
    const R: char = REPLACEMENT;

    fn changed(text: &str) -> String {
        let out = sanitize(text);
        assert!(matches!(out, Cow::Owned(_)), "{text:?} came back borrowed");
        out.into_owned()
    }

    #[track_caller]
    fn untouched(text: &str) {
        assert!(
            matches!(sanitize(text), Cow::Borrowed(t) if t == text),
            "{text:?} was changed to {:?}",
            sanitize(text)
        );
    }

    #[test]
    fn plain_text_and_tabs_are_untouched() {
        untouched("hi\tthere ✓");
        untouched("");
        untouched("a\u{a0}b\u{3000}c");
    }

    #[test]
    fn a_control_or_letter_anywhere_in_a_long_ascii_line_is_seen() {
        // Runs of plain ASCII are skipped 16 bytes at a time: every
        // position, in and around a chunk, must still be looked at.
        let line = "0123456789abcdef".repeat(3);
        for at in 0..line.len() {
            for (c, expected) in [('\u{7}', R), ('\u{7f}', R), ('\u{301}', '\u{301}'), ('é', 'é')] {
                let mut text = line.clone();
                text.insert(at, c);
                let mut want = line.clone();
                want.insert(at, expected);
                if at == 0 && c == '\u{301}' {
                    want = format!("{R}{line}");
                }
                assert_eq!(sanitize(&text), want, "{c:?} at {at}");
            }
        }
    }

    #[test]
    fn escape_sequences_bell_nul_del_and_c1_are_replaced() {
        assert_eq!(changed("\u{1b}[2Jgone\u{7}"), format!("{R}[2Jgone{R}"));
        assert_eq!(changed("a\0b\u{7f}c\u{85}d\u{9b}e"), format!("a{R}b{R}c{R}d{R}e"));
        assert_eq!(changed("fake\r<bob> line"), format!("fake{R}<bob> line"));
    }

    #[test]
    fn every_bidirectional_formatting_character_is_replaced() {
        for c in [
            '\u{61C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}',
            '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
        ] {
            assert_eq!(changed(&format!("a{c}b")), format!("a{R}b"), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn separators_and_invisible_characters_are_replaced() {
        for c in [
            '\u{2028}',
            '\u{2029}',
            '\u{AD}',
            '\u{34F}',
            '\u{115F}',
            '\u{1160}',
            '\u{17B4}',
            '\u{180E}',
            '\u{200B}',
            '\u{2060}',
            '\u{2062}',
            '\u{2064}',
            '\u{2065}',
            '\u{206F}',
            '\u{3164}',
            '\u{FEFF}',
            '\u{FFA0}',
            '\u{FFF0}',
            '\u{FFF9}',
            '\u{FFFB}',
            '\u{1BCA0}',
            '\u{1D173}',
            '\u{E0000}',
            '\u{E0001}',
            '\u{E0080}',
            '\u{E01F0}',
            '\u{E0FFF}',
            '\u{FDD0}',
            '\u{FFFE}',
            '\u{FFFF}',
            '\u{1FFFF}',
            '\u{10FFFE}',
        ] {
            assert!(is_forbidden(c), "U+{:04X}", c as u32);
            assert_eq!(changed(&format!("a{c}b")), format!("a{R}b"), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn private_use_unassigned_and_visible_format_characters_stay() {
        // A powerline glyph, the Apple logo, a code point unassigned in
        // Unicode 18, an Arabic number sign, the replacement character.
        untouched("\u{E0B0} \u{F8FF} \u{2FFFD} \u{3FFF0} \u{600}1 \u{FFFD}");
    }

    #[test]
    fn emoji_sequences_are_untouched() {
        untouched("👩\u{1F3FD}\u{200D}💻"); // woman technologist, medium skin tone
        untouched("👨\u{200D}👩\u{200D}👧\u{200D}👦"); // family
        untouched("🏳\u{FE0F}\u{200D}🌈"); // rainbow flag
        untouched("❤\u{FE0F}\u{200D}🔥"); // heart on fire
        untouched("#\u{FE0F}\u{20E3} 1\u{20E3}"); // keycaps
        untouched("\u{1F1EB}\u{1F1F7}"); // France
        untouched("🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F} Scotland");
        untouched("\u{1F44D}\u{1F3FF}"); // thumbs up, dark skin tone
        untouched("\u{1F3FB} a skin tone swatch alone is visible");
    }

    #[test]
    fn real_scripts_with_joiners_and_marks_are_untouched() {
        untouched("می\u{200C}خواهم"); // Persian, ZWNJ inside a word
        untouched("क\u{94D}\u{200D}ष क्षत्रिय"); // Devanagari, half form with ZWJ
        untouched("Vie\u{323}\u{302}t Nam, tiếng Việt"); // decomposed and precomposed
        untouched("ที่นี่"); // Thai, two marks on a consonant
        untouched("בְּרֵאשִׁ֖ית"); // pointed Hebrew with a cantillation mark
        untouched("葛\u{E0100}"); // an ideographic variation sequence
        untouched("a\u{301}\u{302}\u{303}\u{304}"); // four marks: the bound
        untouched(" \u{301} an accent alone on a space");
    }

    #[test]
    fn joiners_and_selectors_without_a_visible_character_before_are_replaced() {
        assert_eq!(changed("\u{200D}x"), format!("{R}x"));
        assert_eq!(changed("a \u{200D}b"), format!("a {R}b"));
        assert_eq!(changed("a\u{200D}\u{200D}b"), format!("a\u{200D}{R}b"));
        assert_eq!(changed("a\t\u{200C}"), format!("a\t{R}"));
        assert_eq!(changed("\u{FE0F}"), R.to_string());
        assert_eq!(changed("a\u{FE0F}\u{FE0F}"), format!("a\u{FE0F}{R}"));
        assert_eq!(changed("a\u{301}\u{FE0F}"), format!("a\u{301}{R}"));
        assert_eq!(changed("\u{3000}\u{E0100}"), format!("\u{3000}{R}"));
        // U+2800 shows nothing either.
        assert_eq!(changed("\u{2800}\u{200D}"), format!("\u{2800}{R}"));
    }

    #[test]
    fn tag_characters_outside_an_emoji_tag_sequence_are_replaced() {
        // Hidden ASCII "hi" in tag characters.
        assert_eq!(changed("ok\u{E0068}\u{E0069}"), format!("ok{R}{R}"));
        // A flag without its CANCEL TAG, with too long a code, with
        // capitals, with nothing between, and a CANCEL TAG alone.
        assert_eq!(changed("🏴\u{E0067}\u{E0062}x"), format!("🏴{R}{R}x"));
        let long = format!("🏴{}\u{E007F}", "\u{E0061}".repeat(8));
        assert_eq!(changed(&long), format!("🏴{}", R.to_string().repeat(9)));
        assert_eq!(changed("🏴\u{E0047}\u{E007F}"), format!("🏴{R}{R}"));
        assert_eq!(changed("🏴\u{E007F}"), format!("🏴{R}"));
        assert_eq!(changed("a\u{E007F}"), format!("a{R}"));
        // Only right after the black flag.
        assert_eq!(changed("x\u{E0061}\u{E007F}"), format!("x{R}{R}"));
    }

    #[test]
    fn marks_without_a_base_are_replaced() {
        assert_eq!(changed("\u{301}a"), format!("{R}a"));
        assert_eq!(changed("a\t\u{301}"), format!("a\t{R}"));
        assert_eq!(changed("a\u{200D}\u{301}"), format!("a\u{200D}{R}"));
        assert_eq!(changed("\u{93E}"), R.to_string()); // a spacing mark
                                                       // A mark on a replacement character is on a visible base.
        assert_eq!(changed("\u{7}\u{301}"), format!("{R}\u{301}"));
    }

    #[test]
    fn nonspacing_marks_past_the_bound_are_removed() {
        let zalgo = format!("z{}a", "\u{336}\u{30C}\u{350}".repeat(10));
        assert_eq!(changed(&zalgo), "z\u{336}\u{30C}\u{350}\u{336}a");
        assert_eq!(
            changed(&format!(" {}", "\u{301}".repeat(9))),
            format!(" {}", "\u{301}".repeat(4))
        );
        // Enclosing marks count too.
        assert_eq!(
            changed("1\u{20E3}\u{20E3}\u{20E3}\u{20E3}\u{20E3}"),
            "1\u{20E3}\u{20E3}\u{20E3}\u{20E3}"
        );
        // A spacing mark takes a column of its own and starts a new count.
        untouched("क\u{301}\u{301}\u{301}\u{301}\u{93E}\u{301}\u{301}\u{301}\u{301}");
    }

    #[test]
    fn sanitizing_twice_changes_nothing_more() {
        for text in [
            "\u{7}\u{301}\u{301}\u{301}\u{301}\u{301}",
            "🏴\u{E0067}\u{E0062}x",
            "a\u{200D}\u{200D}\u{FE0F}\u{301}",
            "\u{2800}\u{301}\u{200D}",
        ] {
            let once = sanitize(text).into_owned();
            untouched(&once);
        }
    }

    #[test]
    fn blank_means_only_white_space() {
        for text in [
            "",
            " \t ",
            "\u{a0}",
            "\u{3000}\u{2003} \u{202F}",
            "\u{2800}\u{2800}",
            "\u{1680}",
        ] {
            assert!(is_blank(text), "{text:?}");
        }
        for text in [
            "\u{b}", "\u{c}", "\u{85}", "\u{2028}", "\u{200B}", "\u{3164}", " \u{301}", " x",
        ] {
            assert!(!is_blank(text), "{text:?}");
        }
    }

    #[test]
    fn the_plain_ranges_hold_only_plain_characters() {
        for window in PLAIN.windows(2) {
            if let [(_, last), (next, _)] = window {
                assert!(last < next, "PLAIN out of order at U+{:04X}", *next as u32);
            }
        }
        for &(first, last) in PLAIN {
            for c in first..=last {
                // As `class` would see it without the shortcut.
                let special = is_listed_forbidden(c)
                    || c.is_whitespace()
                    || matches!(c, '\u{200C}' | '\u{200D}' | '\u{2800}' | TAG_BASE)
                    || matches!(
                        c.general_category(),
                        GeneralCategory::NonspacingMark
                            | GeneralCategory::EnclosingMark
                            | GeneralCategory::SpacingMark
                            | GeneralCategory::Format
                    );
                assert!(!special, "U+{:04X} is in PLAIN", c as u32);
            }
        }
    }

    #[test]
    fn the_combining_diacritical_marks_are_nonspacing_marks() {
        for c in '\u{300}'..='\u{36F}' {
            let expected = if c == '\u{34F}' {
                Class::Forbidden
            } else {
                assert_eq!(c.general_category(), GeneralCategory::NonspacingMark);
                Class::NonspacingMark
            };
            assert_eq!(class(c), expected, "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn classes_of_some_characters() {
        assert_eq!(class('a'), Class::Base);
        assert_eq!(class('\u{301}'), Class::NonspacingMark);
        assert_eq!(class('\u{20DD}'), Class::NonspacingMark); // enclosing circle
        assert_eq!(class('\u{93E}'), Class::SpacingMark);
        assert_eq!(class('\u{200D}'), Class::Joiner);
        assert_eq!(class('\u{FE0F}'), Class::Selector);
        assert_eq!(class('\u{180B}'), Class::Selector);
        assert_eq!(class('\u{E0061}'), Class::Tag);
        assert_eq!(class('\u{34F}'), Class::Forbidden); // a mark, but invisible
        assert_eq!(class('\u{17B5}'), Class::Forbidden);
        assert_eq!(class('\u{1F3FB}'), Class::Base);
    }
}
