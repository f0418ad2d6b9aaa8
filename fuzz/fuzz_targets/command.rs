//! Fuzzes the command parser and the server-line parser with any text.
//!
//! Checks, besides "no panic": chat text that comes out of the command
//! parser holds no forbidden character (no control character but TAB) and
//! is never blank, a line the parser ignores is blank, and a server line
//! that parses encodes back to the same line.
#![no_main]

use chat_protocol::text::{is_blank, is_forbidden};
use chat_protocol::{Command, ServerLine};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = Command::parse(text);
    if parsed == Ok(None) {
        assert!(is_blank(text), "{text:?} ignored");
    }
    if let Ok(Some(command)) = parsed {
        let chat = match &command {
            Command::Say(t) | Command::Me(t) | Command::Msg { text: t, .. } => Some(t.as_str()),
            Command::Quit(reason) => reason.as_deref(),
            _ => None,
        };
        if let Some(chat) = chat {
            assert!(!chat.chars().any(is_forbidden), "{chat:?}");
            assert!(!is_blank(chat), "{chat:?}");
        }
    }
    let line = text.split('\n').next().unwrap_or_default();
    if let Ok(parsed) = ServerLine::parse(line) {
        let mut out = Vec::new();
        parsed.encode(&mut out);
        let line = line.strip_suffix('\r').unwrap_or(line);
        assert_eq!(out, format!("{line}\n").into_bytes());
    }
});
