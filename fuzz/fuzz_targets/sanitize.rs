//! Fuzzes the chat-text sanitiser with any text.
//!
//! Checks, besides "no panic": the output holds no forbidden character, no
//! more than `MAX_MARKS` nonspacing marks in a row, no joiner, selector or
//! mark with nothing to attach to, and no tag character outside an emoji
//! tag sequence (right after U+1F3F4); it comes back borrowed exactly when
//! nothing changed; sanitising it again changes nothing; and `is_blank`
//! says the input is blank exactly when the output shows nothing.
#![no_main]

use std::borrow::Cow;

use chat_protocol::text::{class, is_blank, sanitize, Class, MAX_MARKS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let clean = sanitize(text);
    assert_eq!(matches!(clean, Cow::Borrowed(_)), clean == text, "{text:?}");
    assert!(clean.len() <= text.len() * 3, "{text:?} grew to {clean:?}");

    let mut marks = 0;
    // The class of the last character that is not a mark, selector or tag
    // (what a mark or joiner hangs on), and the last character itself.
    let (mut hangs_on, mut last): (Option<Class>, Option<char>) = (None, None);
    // Tag characters seen since the U+1F3F4 that opened a tag sequence.
    let mut tags: Option<usize> = None;
    for c in clean.chars() {
        let kind = class(c);
        marks = if kind == Class::NonspacingMark {
            marks + 1
        } else {
            0
        };
        assert!(marks <= MAX_MARKS, "{clean:?}");
        match kind {
            Class::Forbidden => panic!("forbidden U+{:04X} in {clean:?}", c as u32),
            Class::Joiner => assert!(
                matches!(hangs_on, Some(Class::Base | Class::SpacingMark)),
                "{clean:?}"
            ),
            Class::Selector => assert_eq!(last.map(class), Some(Class::Base), "{clean:?}"),
            Class::NonspacingMark | Class::SpacingMark => assert!(
                matches!(hangs_on, Some(Class::Base | Class::Space | Class::SpacingMark)),
                "{clean:?}"
            ),
            Class::Tab | Class::Space | Class::Base | Class::Tag => {}
        }
        tags = match (kind, tags) {
            (Class::Tag, None) => {
                assert_eq!(last, Some('\u{1F3F4}'), "tag out of a sequence in {clean:?}");
                assert_ne!(c, '\u{E007F}', "empty tag sequence in {clean:?}");
                Some(1)
            }
            (Class::Tag, Some(n)) if c == '\u{E007F}' => {
                assert!(n <= 7, "long tag sequence in {clean:?}");
                None
            }
            (Class::Tag, Some(n)) => Some(n + 1),
            (_, Some(_)) => panic!("unended tag sequence in {clean:?}"),
            (_, None) => None,
        };
        if !matches!(kind, Class::NonspacingMark | Class::Selector | Class::Tag) {
            hangs_on = Some(kind);
        }
        last = Some(c);
    }
    assert!(tags.is_none(), "unended tag sequence in {clean:?}");

    let again = sanitize(&clean);
    assert!(
        matches!(again, Cow::Borrowed(_)),
        "{clean:?} changed again to {again:?}"
    );
    let shows_nothing = clean
        .chars()
        .all(|c| matches!(class(c), Class::Space | Class::Tab));
    assert_eq!(is_blank(text), shows_nothing, "{text:?}");
});
