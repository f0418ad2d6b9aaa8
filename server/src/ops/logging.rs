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

#[cfg(test)]
mod tests {
    use super::*;

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
