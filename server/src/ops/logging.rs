//! The daemon's log: env_logger on stderr, in journald's own terms when
//! stderr is the journal.
//!
//! A terminal or a log file wants a timestamp and the level spelled out on
//! each line. The journal stamps every line itself and records a level
//! per line, which it reads from a syslog priority prefix such as `<4>`
//! (sd-daemon(3)); without one every line would be recorded at `info` and
//! `journalctl -p warning` would find nothing. So when systemd says
//! (through `JOURNAL_STREAM`) that stderr is the journal, each line is
//! `<N>message`, and nothing else.
//!
//! `JOURNAL_STREAM` holds the device and inode of the stream systemd
//! connected; it is inherited by anything the service starts, wherever that
//! sends its stderr. So it counts only when it names our stderr, as
//! systemd.exec(5) advises.

use std::fmt::{Display, Write as _};
use std::io::{self, Write as _};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use log::Level;

/// Sets up the global logger: `info` and up unless `RUST_LOG` says
/// otherwise, on stderr, in the journal's format when stderr is the
/// journal.
pub fn init() {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if stderr_is_journal() {
        builder.format(|buf, record| buf.write_all(journal_record(record.level(), record.args()).as_bytes()));
    }
    builder.init();
}

/// Prints a fatal start-up error as one line on stderr, `error: ...`, with
/// the `err` priority prefix when stderr is the journal. For errors before
/// (or instead of) the logger, so that the line reads the same whether or
/// not logging is set up.
pub fn print_error(error: &dyn Display) {
    let line = format!("error: {error}");
    if stderr_is_journal() {
        eprint!("{}", journal_record(Level::Error, &line));
    } else {
        eprintln!("{line}");
    }
}

/// The syslog priority journald records for a log level: `err`,
/// `warning`, `info` and `debug` (trace is debug too: syslog has nothing
/// finer).
pub fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// One log record as the journal reads it: each line of the message with
/// the priority prefix (journald reads the prefix per line, so a message
/// that spans lines keeps its level on all of them), each ending in `\n`.
pub fn journal_record(level: Level, message: &dyn Display) -> String {
    let priority = syslog_priority(level);
    let message = message.to_string();
    let mut record = String::with_capacity(message.len() + 4);
    for line in message.split('\n') {
        // Writing to a String cannot fail.
        let _ = writeln!(record, "<{priority}>{line}");
    }
    record
}

/// True when `JOURNAL_STREAM` names the file stderr is connected to.
fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((device, inode)) = value.to_str().and_then(parse_journal_stream) else { return false };
    // A duplicate of stderr, only to ask what it is; closed again at once.
    let Ok(stderr) = std::io::stderr().as_fd().try_clone_to_owned() else { return false };
    match std::fs::File::from(stderr).metadata() {
        Ok(meta) => meta.dev() == device && meta.ino() == inode,
        Err(_) => false,
    }
}

/// The device and inode numbers in a `JOURNAL_STREAM` value, `DEV:INODE`
/// in decimal.
fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (device, inode) = value.split_once(':')?;
    Some((device.parse().ok()?, inode.parse().ok()?))
}

/// An I/O error as a person reads it: `address already in use`, without the
/// `(os error 98)` and the capital letter.
pub fn describe(error: &io::Error) -> String {
    let text = error.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text.to_string(),
    }
}

/// `text` cut to at most `max` characters, with `…` where it was cut, for
/// the log: a line of the log per event, whatever a client typed.
pub fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(text),
        Some((at, _)) => std::borrow::Cow::Owned(format!("{}…", text.get(..at).unwrap_or_default())),
    }
}

/// A warning that may repeat many times a second (every refused
/// connection, every failed accept), logged at most once per interval: the
/// first at once; later ones, counted, are reported with the next one
/// logged, or, if none comes, by [`Throttled::flush`] once the interval is
/// over (`12 more connections refused: ... in the last 10 s`). journald
/// drops lines past its own rate limit, and it must not be the lines that
/// matter it drops.
#[derive(Debug)]
pub struct Throttled {
    /// What a summary line says the suppressed occurrences were, after
    /// their number.
    what: &'static str,
    interval: std::time::Duration,
    /// When the last line was logged.
    last: Option<std::time::Instant>,
    /// Occurrences since then that were not logged.
    suppressed: u64,
}

impl Throttled {
    /// A warning logged at most once per `interval`; `what` names what it
    /// warns of, in the plural, for the summary line.
    pub fn new(what: &'static str, interval: std::time::Duration) -> Throttled {
        Throttled {
            what,
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Counts one occurrence at `now` and says whether to log it; when it
    /// is to be logged, also how many occurrences were not logged since
    /// the last one that was.
    pub fn check(&mut self, now: std::time::Instant) -> Option<u64> {
        let due = self
            .last
            .is_none_or(|at| now.saturating_duration_since(at) >= self.interval);
        if due {
            self.last = Some(now);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            None
        }
    }

    /// When [`Throttled::flush`] has a summary to log, if occurrences were
    /// suppressed: a loop sleeps no longer than this.
    pub fn next_flush(&self) -> Option<std::time::Instant> {
        let last = self.last?;
        (self.suppressed > 0).then(|| crate::net::timers::later(last, self.interval))
    }

    /// Logs how many occurrences were suppressed, if any were and the
    /// interval since the last line is over, so that the count reaches the
    /// log even when no new occurrence comes to carry it.
    pub fn flush(&mut self, now: std::time::Instant) {
        if self.next_flush().is_some_and(|at| now >= at) {
            let n = std::mem::take(&mut self.suppressed);
            let secs = self.interval.as_secs();
            log::warn!("{n} more {} in the last {secs} s", self.what);
            self.last = Some(now);
        }
    }
}

/// `n` and `noun`, with an `s` unless `n` is 1: `1 client`, `0 clients`,
/// `2 clients`. For log and status lines that count things; every noun
/// they count takes an `s` in the plural.
pub fn counted<N: Display + PartialEq + From<u8>>(n: N, noun: &str) -> String {
    if n == N::from(1) {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// ` (and 12 more like it)`, or nothing when none were suppressed.
pub fn and_more(suppressed: u64) -> String {
    match suppressed {
        0 => String::new(),
        n => format!(" (and {n} more like it since the last such line)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn counts_are_singular_only_for_one() {
        assert_eq!(counted(0_usize, "client"), "0 clients");
        assert_eq!(counted(1_usize, "client"), "1 client");
        assert_eq!(counted(2_u64, "line"), "2 lines");
        assert_eq!(counted(1_u64, "slow consumer"), "1 slow consumer");
    }

    #[test]
    fn client_text_is_clipped_for_the_log() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("ééééé", 3), "ééé…");
        assert_eq!(clip(&"x".repeat(4000), 120).chars().count(), 121);
    }

    #[test]
    fn a_throttled_warning_is_logged_once_per_interval_with_the_count() {
        let start = Instant::now();
        let mut warning = Throttled::new("things", Duration::from_secs(10));
        assert_eq!(warning.next_flush(), None);
        assert_eq!(warning.check(start), Some(0));
        assert_eq!(warning.next_flush(), None, "nothing suppressed, nothing to flush");
        for _ in 0..1000 {
            assert_eq!(warning.check(start + Duration::from_secs(1)), None);
        }
        assert_eq!(warning.next_flush(), Some(start + Duration::from_secs(10)));
        assert_eq!(warning.check(start + Duration::from_secs(10)), Some(1000));
        assert_eq!(warning.next_flush(), None, "the count went with that line");
        warning.check(start + Duration::from_secs(11));
        warning.flush(start + Duration::from_secs(15));
        assert_eq!(
            warning.next_flush(),
            Some(start + Duration::from_secs(20)),
            "not yet"
        );
        warning.flush(start + Duration::from_secs(20));
        assert_eq!(warning.next_flush(), None, "flushed without a new occurrence");
        assert_eq!(
            and_more(1000),
            " (and 1000 more like it since the last such line)"
        );
        assert_eq!(and_more(0), "");
    }

    #[test]
    fn io_errors_read_as_a_person_would_say_them() {
        let error = io::Error::from_raw_os_error(98);
        assert_eq!(describe(&error), "address already in use");
    }

    #[test]
    fn each_level_gets_its_syslog_priority() {
        let priorities =
            [Level::Error, Level::Warn, Level::Info, Level::Debug, Level::Trace].map(syslog_priority);
        assert_eq!(priorities, [3, 4, 6, 7, 7]);
    }

    #[test]
    fn a_journal_record_is_the_prefix_and_the_message_on_every_line() {
        assert_eq!(
            journal_record(Level::Warn, &"cannot accept: too many open files"),
            "<4>cannot accept: too many open files\n"
        );
        assert_eq!(journal_record(Level::Info, &"one\ntwo"), "<6>one\n<6>two\n");
    }

    #[test]
    fn journal_stream_values_parse_as_device_and_inode() {
        assert_eq!(parse_journal_stream("8:123456"), Some((8, 123_456)));
        for bad in ["", "8", "8:", ":1", "a:1", "8:1:2"] {
            assert_eq!(parse_journal_stream(bad), None, "{bad:?}");
        }
    }
}
