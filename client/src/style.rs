//! How lines look on the way out: colors by kind of line, a stable color
//! per nick, optional timestamps, the client's own status lines, and the
//! prompt.
//!
//! A transcript is easier to follow when a private message does not look
//! like a room message and when each person keeps one color, so on a
//! terminal each of the protocol's six shapes gets its own look and each
//! nick a color picked by a hash of its lower-case form (nicks are the same
//! without regard to case, so `Bob` and `bob` match). Nothing is colored
//! when standard output is not a terminal, when `NO_COLOR` is set to
//! anything (<https://no-color.org>), or when `TERM` is `dumb`.
//!
//! On a terminal every piece of text from the server also goes through the
//! protocol's [`sanitize`] before it is shown. chat-server already does this
//! for chat text, but a client must not trust the server with its terminal:
//! a stray escape sequence could move the cursor, rewrite the screen or fake
//! a line. Into a pipe, lines go exactly as received (unless `--timestamps`
//! adds a prefix): scripts see the protocol.

use std::ffi::OsStr;
use std::fmt::Write as _;

use chat_protocol::text::sanitize;
use chat_protocol::{Command, Nick, RoomName, ServerLine};

use crate::incoming::ServerText;

/// Ends every colored span.
const RESET: &str = "\x1b[0m";
/// Timestamps: dim, so the eye skips them.
const DIM: &str = "\x1b[2m";
/// The room in the prompt.
const BOLD: &str = "\x1b[1m";
/// `-- notices`: cyan, calm but distinct from chat.
const NOTICE: &str = "\x1b[36m";
/// `!! errors`: bold red, they answer something you did.
const ERROR: &str = "\x1b[1;31m";
/// `* nick acts`: magenta, as IRC clients tend to show actions.
const ACTION: &str = "\x1b[35m";
/// The stars of private messages: bold yellow, they are for you alone.
const PRIVATE: &str = "\x1b[1;33m";
/// `== client status` (reconnecting...): yellow, not from the server.
const STATUS: &str = "\x1b[33m";

/// Foreground colors a nick can get: the six plain and six bright ANSI
/// colors that are neither black, white nor grey, so each is readable on
/// dark and light backgrounds alike.
const NICK_COLORS: [u8; 12] = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96];

/// What the client prefixes its own status lines with, so they are not
/// mistaken for the server's `--` notices.
pub const STATUS_PREFIX: &str = "== ";

/// How to render lines for one output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Use ANSI colors.
    pub color: bool,
    /// Start each line with the local time, `[HH:MM] `.
    pub timestamps: bool,
    /// The output is a terminal: replace control characters in server text.
    pub terminal: bool,
}

impl Style {
    /// The style for an output that is (or is not) a terminal, as the
    /// environment asks.
    pub fn for_output(terminal: bool, timestamps: bool) -> Style {
        let no_color = std::env::var_os("NO_COLOR");
        let term = std::env::var_os("TERM");
        Style {
            color: wants_color(terminal, no_color.as_deref(), term.as_deref()),
            timestamps,
            terminal,
        }
    }

    /// The timestamp for a line shown now, if timestamps are on.
    pub fn stamp_now(&self) -> Option<String> {
        self.timestamps.then(|| {
            // The fallible form: jiff's `now()` panics on a clock set
            // beyond year 9999, and a clock must not crash the client.
            match jiff::ZonedDateTime::try_from(std::time::SystemTime::now()) {
                Ok(now) => format!("{:02}:{:02}", now.hour(), now.minute()),
                Err(_) => "--:--".to_string(),
            }
        })
    }

    /// One line from the server, without a line end. `stamp` is the time
    /// shown when timestamps are on.
    pub fn server_line(&self, line: &ServerText, stamp: Option<&str>) -> String {
        let mut out = self.start(stamp);
        match line {
            ServerText::Known(known) if self.color => self.colored(&mut out, known),
            ServerText::Known(known) if self.terminal => {
                out.push_str(&sanitize(&known.to_string()));
            }
            ServerText::Known(known) => {
                let _ = write!(out, "{known}");
            }
            ServerText::Unknown(text) if self.terminal => out.push_str(&sanitize(text)),
            ServerText::Unknown(text) => out.push_str(text),
        }
        out
    }

    /// The line others see for what `nick` just sent, when that is a chat
    /// message or an action: the server does not echo them, and a
    /// transcript with your own lines missing reads badly.
    pub fn own_line(&self, nick: &Nick, sent: &Command, stamp: Option<&str>) -> Option<String> {
        let line = match sent {
            Command::Say(text) => ServerLine::Message {
                from: nick.to_string(),
                text: text.clone(),
            },
            Command::Me(text) => ServerLine::Action {
                from: nick.to_string(),
                text: text.clone(),
            },
            _ => return None,
        };
        Some(self.server_line(&ServerText::Known(line), stamp))
    }

    /// A status line of the client's own (`== reconnecting...`).
    pub fn status(&self, text: &str, stamp: Option<&str>) -> String {
        let mut out = self.start(stamp);
        self.paint(&mut out, STATUS, &format!("{STATUS_PREFIX}{text}"));
        out
    }

    /// The prompt, `[nick #room] `, as rustyline wants it: plain, and
    /// styled with the same width.
    pub fn prompt(&self, nick: Option<&Nick>, room: Option<&RoomName>) -> (String, String) {
        let (raw, styled) = match (nick, room) {
            (None, None) => return ("> ".to_string(), "> ".to_string()),
            (Some(nick), None) => (format!("[{nick}] "), format!("[{}] ", self.nick(nick.as_str()))),
            (None, Some(room)) => (format!("[{room}] "), format!("[{}] ", self.bold(room.as_str()))),
            (Some(nick), Some(room)) => (
                format!("[{nick} {room}] "),
                format!("[{} {}] ", self.nick(nick.as_str()), self.bold(room.as_str())),
            ),
        };
        (raw, styled)
    }

    /// A new line with its timestamp, if any.
    fn start(&self, stamp: Option<&str>) -> String {
        let mut out = String::new();
        if let Some(stamp) = stamp {
            self.paint(&mut out, DIM, &format!("[{stamp}]"));
            out.push(' ');
        }
        out
    }

    /// Appends a server line of a known shape in its colors.
    fn colored(&self, out: &mut String, line: &ServerLine) {
        let clean = |text: &str| sanitize(text).into_owned();
        match line {
            ServerLine::Message { from, text } => {
                let _ = write!(out, "<{}> {}", self.nick(&clean(from)), clean(text));
            }
            ServerLine::Action { from, text } => {
                self.paint(out, ACTION, "* ");
                out.push_str(&self.nick(&clean(from)));
                self.paint(out, ACTION, &format!(" {}", clean(text)));
            }
            ServerLine::PrivateFrom { from, text } => {
                self.paint(out, PRIVATE, "*");
                out.push_str(&self.nick(&clean(from)));
                self.paint(out, PRIVATE, "*");
                out.push(' ');
                self.paint(out, BOLD, &clean(text));
            }
            ServerLine::PrivateTo { to, text } => {
                self.paint(out, PRIVATE, "-> *");
                out.push_str(&self.nick(&clean(to)));
                self.paint(out, PRIVATE, "*");
                let _ = write!(out, " {}", clean(text));
            }
            ServerLine::Notice(text) => self.paint(out, NOTICE, &format!("-- {}", clean(text))),
            ServerLine::Error(text) => self.paint(out, ERROR, &format!("!! {}", clean(text))),
            // Said before you came: dimmed, with the time it was said.
            ServerLine::Replayed {
                at,
                from,
                text,
                action,
            } => {
                let line = if *action {
                    format!("[{}] * {} {}", clean(at), clean(from), clean(text))
                } else {
                    format!("[{}] <{}> {}", clean(at), clean(from), clean(text))
                };
                self.paint(out, DIM, &line);
            }
        }
    }

    /// `nick` in its own color.
    fn nick(&self, nick: &str) -> String {
        let mut out = String::new();
        self.paint(&mut out, &nick_color(nick), nick);
        out
    }

    /// `text` in bold.
    fn bold(&self, text: &str) -> String {
        let mut out = String::new();
        self.paint(&mut out, BOLD, text);
        out
    }

    /// Appends `text`, in `sgr` when colors are on.
    fn paint(&self, out: &mut String, sgr: &str, text: &str) {
        if self.color && !text.is_empty() {
            let _ = write!(out, "{sgr}{text}{RESET}");
        } else {
            out.push_str(text);
        }
    }
}

/// True when colors suit an output: it is a terminal, `NO_COLOR` is unset
/// or empty, and `TERM` is not `dumb`.
fn wants_color(terminal: bool, no_color: Option<&OsStr>, term: Option<&OsStr>) -> bool {
    terminal && no_color.is_none_or(OsStr::is_empty) && term != Some(OsStr::new("dumb"))
}

/// The escape sequence of `nick`'s color: the same for every spelling of
/// the nick, in every run and on every machine (FNV-1a of the lower-case
/// bytes, which unlike the standard hasher is fixed).
fn nick_color(nick: &str) -> String {
    let hash = nick
        .bytes()
        .map(|b| b.to_ascii_lowercase())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let len = NICK_COLORS.len() as u64;
    let index = usize::try_from(hash % len).unwrap_or(0);
    let code = NICK_COLORS.get(index).copied().unwrap_or(39);
    format!("\x1b[{code}m")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Style = Style {
        color: false,
        timestamps: false,
        terminal: false,
    };
    const TERMINAL: Style = Style {
        color: false,
        timestamps: false,
        terminal: true,
    };
    const COLOR: Style = Style {
        color: true,
        timestamps: false,
        terminal: true,
    };

    fn parse(line: &str) -> ServerText {
        ServerText::classify(line)
    }

    fn nick(name: &str) -> Nick {
        Nick::new(name).unwrap()
    }

    /// `text` with every escape sequence taken out.
    fn visible(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    const EVERY_SHAPE: [&str; 7] = [
        "<alice> hello",
        "* alice waves",
        "*alice* psst",
        "-> *bob* psst",
        "-- bob joined #lobby",
        "!! no such nick: carol",
        "not a known shape",
    ];

    #[test]
    fn a_replayed_line_is_dimmed_with_its_time_and_plain_when_piped() {
        let line = ServerText::Known(ServerLine::Replayed {
            at: "2026-12-06T20:31:05Z".into(),
            from: "alice".into(),
            text: "hello".into(),
            action: false,
        });
        assert_eq!(
            COLOR.server_line(&line, None),
            format!("{DIM}[2026-12-06T20:31:05Z] <alice> hello{RESET}")
        );
        assert_eq!(
            PLAIN.server_line(&line, None),
            "[2026-12-06T20:31:05Z] <alice> hello"
        );
    }

    #[test]
    fn without_color_lines_are_shown_as_received() {
        for line in EVERY_SHAPE {
            assert_eq!(PLAIN.server_line(&parse(line), None), line);
            assert_eq!(TERMINAL.server_line(&parse(line), None), line);
        }
    }

    #[test]
    fn colored_lines_read_the_same() {
        for line in EVERY_SHAPE {
            let shown = COLOR.server_line(&parse(line), None);
            assert_eq!(visible(&shown), line);
        }
    }

    #[test]
    fn each_kind_of_line_has_its_color() {
        let shown = |line: &str| COLOR.server_line(&parse(line), None);
        assert!(shown("-- hi").starts_with(NOTICE), "{:?}", shown("-- hi"));
        assert!(shown("!! no").starts_with(ERROR));
        assert!(shown("* bob waves").starts_with(ACTION));
        assert!(shown("*bob* psst").starts_with(PRIVATE));
        assert!(shown("-> *bob* psst").starts_with(PRIVATE));
        assert!(shown("<bob> hi").starts_with(&format!("<{}bob", nick_color("bob"))));
        assert_eq!(shown("not a shape"), "not a shape");
    }

    #[test]
    fn a_nick_keeps_its_color_whatever_its_case() {
        assert_eq!(nick_color("Alice"), nick_color("alice"));
        assert_eq!(nick_color("ALICE"), nick_color("alice"));
        let colors: std::collections::HashSet<String> = ["alice", "bob", "carol", "dave", "eve", "mallory"]
            .iter()
            .map(|n| nick_color(n))
            .collect();
        assert!(colors.len() >= 3, "nicks should not all share a color");
    }

    #[test]
    fn the_nick_color_hash_is_stable() {
        // FNV-1a is specified, so these do not depend on the Rust version
        // or the machine: a nick looks the same to everyone, every day.
        assert_eq!(nick_color("alice"), "\x1b[96m");
        assert_eq!(nick_color("bob"), "\x1b[31m");
        assert_eq!(nick_color("carol"), "\x1b[95m");
    }

    #[test]
    fn control_characters_from_the_server_never_reach_a_terminal() {
        let evil = "<bob> hi\x1b[2J\x07 there";
        for style in [TERMINAL, COLOR] {
            let shown = style.server_line(&parse(evil), None);
            assert!(!visible(&shown).contains('\x1b'), "{shown:?}");
            assert!(!shown.contains('\x07'), "{shown:?}");
            assert!(
                visible(&shown).contains("hi\u{FFFD}[2J\u{FFFD} there"),
                "{shown:?}"
            );
        }
        let raw = PLAIN.server_line(&parse(evil), None);
        assert_eq!(raw, evil, "a pipe gets the bytes as received");
        let unknown = TERMINAL.server_line(&parse("\x1b]0;title\x07"), None);
        assert_eq!(unknown, "\u{FFFD}]0;title\u{FFFD}");
    }

    #[test]
    fn timestamps_come_first() {
        let style = Style {
            timestamps: true,
            ..PLAIN
        };
        assert_eq!(
            style.server_line(&parse("<bob> hi"), Some("09:05")),
            "[09:05] <bob> hi"
        );
        assert_eq!(
            style.status("reconnecting", Some("09:05")),
            "[09:05] == reconnecting"
        );
        let colored = Style {
            timestamps: true,
            ..COLOR
        };
        let shown = colored.server_line(&parse("-- x"), Some("23:59"));
        assert!(shown.starts_with(&format!("{DIM}[23:59]{RESET} ")), "{shown:?}");
    }

    #[test]
    fn the_clock_gives_hours_and_minutes() {
        let style = Style {
            timestamps: true,
            ..PLAIN
        };
        let stamp = style.stamp_now().unwrap();
        assert_eq!(stamp.len(), 5, "{stamp}");
        assert_eq!(stamp.chars().nth(2), Some(':'), "{stamp}");
        assert!(
            stamp.chars().filter(|c| *c != ':').all(|c| c.is_ascii_digit()),
            "{stamp}"
        );
        assert_eq!(PLAIN.stamp_now(), None);
    }

    #[test]
    fn own_messages_and_actions_look_as_others_see_them() {
        let alice = nick("alice");
        let said = Command::parse("hello //world").unwrap().unwrap();
        assert_eq!(
            PLAIN.own_line(&alice, &said, None).as_deref(),
            Some("<alice> hello //world")
        );
        let doubled = Command::parse("//slash").unwrap().unwrap();
        assert_eq!(
            PLAIN.own_line(&alice, &doubled, None).as_deref(),
            Some("<alice> /slash")
        );
        let act = Command::parse("/me waves").unwrap().unwrap();
        assert_eq!(
            PLAIN.own_line(&alice, &act, None).as_deref(),
            Some("* alice waves")
        );
        let who = Command::parse("/who").unwrap().unwrap();
        assert_eq!(PLAIN.own_line(&alice, &who, None), None);
        let msg = Command::parse("/msg bob hi").unwrap().unwrap();
        assert_eq!(
            PLAIN.own_line(&alice, &msg, None),
            None,
            "the server confirms those"
        );
    }

    #[test]
    fn the_prompt_shows_nick_and_room_in_the_same_width() {
        let room = RoomName::new("rust").unwrap();
        let alice = nick("alice");
        for style in [PLAIN, COLOR] {
            let (raw, styled) = style.prompt(Some(&alice), Some(&room));
            assert_eq!(raw, "[alice #rust] ");
            assert_eq!(visible(&styled), raw);
            let (raw, styled) = style.prompt(None, None);
            assert_eq!((raw.as_str(), styled.as_str()), ("> ", "> "));
            assert_eq!(style.prompt(Some(&alice), None).0, "[alice] ");
            assert_eq!(style.prompt(None, Some(&room)).0, "[#rust] ");
        }
        let (_, styled) = COLOR.prompt(Some(&alice), Some(&room));
        assert!(styled.contains(&nick_color("alice")), "{styled:?}");
    }

    #[test]
    fn color_needs_a_terminal_and_no_opt_out() {
        let os = |s: &'static str| Some(OsStr::new(s));
        assert!(wants_color(true, None, os("xterm-256color")));
        assert!(
            wants_color(true, os(""), None),
            "an empty NO_COLOR does not count"
        );
        assert!(!wants_color(false, None, os("xterm")));
        assert!(!wants_color(true, os("1"), os("xterm")));
        assert!(!wants_color(true, None, os("dumb")));
    }

    proptest::proptest! {
        /// Whatever a server sends, a terminal gets no control character
        /// from it (TAB aside): only the client's own color sequences.
        #[test]
        fn no_server_text_reaches_a_terminal_raw(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let line = ServerText::classify(&String::from_utf8_lossy(&bytes));
            let plain = TERMINAL.server_line(&line, Some("12:00"));
            proptest::prop_assert!(!plain.chars().any(|c| c != '\t' && c.is_control()), "{:?}", plain);
            let colored = COLOR.server_line(&line, None);
            proptest::prop_assert!(!visible(&colored).chars().any(|c| c != '\t' && c.is_control()), "{:?}", colored);
            proptest::prop_assert_eq!(PLAIN.server_line(&line, None), line.to_string());
        }
    }

    #[test]
    fn status_lines_are_marked_as_the_clients_own() {
        assert_eq!(PLAIN.status("reconnected", None), "== reconnected");
        assert_eq!(visible(&COLOR.status("x", None)), "== x");
        assert!(COLOR.status("x", None).starts_with(STATUS));
    }
}
