//! IRC's text formatting codes, and taking them out.
//!
//! IRC clients colour and style text with control characters: `\x02`
//! bold, `\x1d` italics, `\x1f` underline, `\x1e` strikethrough, `\x11`
//! monospace, `\x16` reverse, `\x0f` reset, `\x03` a colour with up to two
//! digits of foreground and, after a comma, two of background, and `\x04`
//! a colour in hex. Chat text is sanitized on the way in, and a control
//! character would become a replacement character that every other user
//! sees; so the IRC front end takes the formatting out first, colour
//! numbers included, and what is left is the text as read.

use std::borrow::Cow;

/// The byte that starts a CTCP message (`\x01ACTION waves\x01`).
pub const CTCP: char = '\u{1}';

/// `text` without its formatting codes.
pub fn strip(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_format_code) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{3}' => {
                // Up to two digits, then optionally a comma and up to two.
                skip_while_max(&mut chars, 2, |c| c.is_ascii_digit());
                if chars.peek() == Some(&',') {
                    let mut ahead = chars.clone();
                    ahead.next();
                    if ahead.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                        skip_while_max(&mut chars, 2, |c| c.is_ascii_digit());
                    }
                }
            }
            '\u{4}' => {
                skip_while_max(&mut chars, 6, |c| c.is_ascii_hexdigit());
                if chars.peek() == Some(&',') {
                    let mut ahead = chars.clone();
                    ahead.next();
                    if ahead.peek().is_some_and(char::is_ascii_hexdigit) {
                        chars.next();
                        skip_while_max(&mut chars, 6, |c| c.is_ascii_hexdigit());
                    }
                }
            }
            c if is_format_code(c) => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn is_format_code(c: char) -> bool {
    matches!(
        c,
        '\u{2}' | '\u{3}' | '\u{4}' | '\u{f}' | '\u{11}' | '\u{16}' | '\u{1d}' | '\u{1e}' | '\u{1f}'
    )
}

fn skip_while_max(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    max: usize,
    f: impl Fn(&char) -> bool,
) {
    for _ in 0..max {
        if chars.peek().is_some_and(&f) {
            chars.next();
        } else {
            break;
        }
    }
}

/// The text of a CTCP ACTION (`\x01ACTION waves\x01`, the closing `\x01`
/// optional), if `text` is one.
pub fn action(text: &str) -> Option<&str> {
    let inner = text.strip_prefix(CTCP)?;
    let inner = inner.strip_suffix(CTCP).unwrap_or(inner);
    let rest = inner.strip_prefix("ACTION")?;
    if rest.is_empty() {
        return Some("");
    }
    rest.strip_prefix(' ')
}

/// Whether `text` is a CTCP message (it starts with `\x01`).
pub fn is_ctcp(text: &str) -> bool {
    text.starts_with(CTCP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_and_colours_are_taken_out_and_the_text_kept() {
        assert_eq!(strip("plain"), "plain");
        assert_eq!(strip("\u{2}bold\u{2} and \u{1d}italic\u{f}"), "bold and italic");
        assert_eq!(strip("\u{3}4red\u{3} \u{3}04,12both\u{3}"), "red both");
        // A comma after a colour is text when no digit follows it.
        assert_eq!(strip("\u{3}4,text"), ",text");
        // Digits past two are text.
        assert_eq!(strip("\u{3}123"), "3");
        assert_eq!(strip("\u{4}ff00ffhex\u{4}"), "hex");
    }

    #[test]
    fn an_action_is_recognised_with_or_without_its_closing_byte() {
        assert_eq!(action("\u{1}ACTION waves\u{1}"), Some("waves"));
        assert_eq!(action("\u{1}ACTION waves"), Some("waves"));
        assert_eq!(action("\u{1}ACTION\u{1}"), Some(""));
        assert_eq!(action("\u{1}VERSION\u{1}"), None);
        assert_eq!(action("ACTION waves"), None);
        assert!(is_ctcp("\u{1}VERSION\u{1}"));
    }
}
