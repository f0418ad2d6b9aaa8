//! Making chat text safe to show in someone else's terminal.
//!
//! A chat message is printed raw in other people's terminals (netcat does
//! no filtering). Control characters in it could move their cursor, clear
//! their screen, ring the bell, or end a line early to fake a server line;
//! bidirectional embedding, override and isolate characters could make the
//! line display as something other than what it says (`<bob>` shown where
//! the bytes say `<mallory>`). So every control character except TAB (the
//! C0 range, DEL and the C1 range) and every one of U+202A–U+202E and
//! U+2066–U+2069 is replaced with U+FFFD REPLACEMENT CHARACTER before the
//! text goes anywhere. Replacing rather than removing shows the reader that
//! something was there, and the rest of the message is still delivered.

use std::borrow::Cow;

/// What a control character is replaced with.
pub const REPLACEMENT: char = '\u{FFFD}';

/// True for characters that must not reach another client raw: C0 controls
/// other than TAB, DEL, C1 controls, and the bidirectional embeddings,
/// overrides and isolates.
pub fn is_forbidden(c: char) -> bool {
    (c != '\t' && c.is_control()) || is_bidi_control(c)
}

/// U+202A–U+202E (LRE, RLE, PDF, LRO, RLO) and U+2066–U+2069 (LRI, RLI,
/// FSI, PDI): the characters that change the display order of what follows.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every forbidden character replaced by [`REPLACEMENT`];
/// borrowed when there was nothing to replace.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_forbidden) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if is_forbidden(c) { REPLACEMENT } else { c })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_and_tabs_are_untouched() {
        assert!(matches!(sanitize("hi\tthere ✓"), Cow::Borrowed("hi\tthere ✓")));
    }

    #[test]
    fn escape_sequences_bell_nul_del_and_c1_are_replaced() {
        assert_eq!(sanitize("\u{1b}[2Jgone\u{7}"), "\u{FFFD}[2Jgone\u{FFFD}");
        assert_eq!(
            sanitize("a\0b\u{7f}c\u{85}d\u{9b}e"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}e"
        );
        assert_eq!(sanitize("fake\r<bob> line"), "fake\u{FFFD}<bob> line");
    }

    #[test]
    fn bidirectional_overrides_and_isolates_are_replaced() {
        for c in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}',
            '\u{2069}',
        ] {
            assert_eq!(sanitize(&format!("a{c}b")), "a\u{FFFD}b", "U+{:04X}", c as u32);
        }
        // Marks that only hint direction, and other format characters, stay.
        assert_eq!(
            sanitize("a\u{200E}b\u{200F}c\u{200D}d"),
            "a\u{200E}b\u{200F}c\u{200D}d"
        );
    }
}
