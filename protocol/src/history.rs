//! What a room remembers: the lines said in it, with the server's time.
//!
//! The hub keeps each room's last lines as [`HistoryEntry`]s and replays
//! them to whoever joins (and to `/history`). A replayed line must be told
//! apart from a live one, by a person and by a program, and say when it
//! was said: the line protocol shows it as `[2026-12-06T20:31:05Z] <alice>
//! hello` (see [`crate::ServerLine::Replayed`]), with the time in UTC as
//! RFC 3339 to the second, which sorts as text and which IRC's
//! `server-time` uses too.

use crate::names::Nick;

/// One line a room remembers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistoryEntry {
    /// When the server received it, in milliseconds since the Unix epoch.
    pub at: u64,
    /// Who said it.
    pub from: Nick,
    /// What was said, sanitized as when it was said live.
    pub text: String,
    /// A `/me` rather than a plain message.
    pub action: bool,
}

/// A time in milliseconds since the Unix epoch as UTC RFC 3339 to the
/// second: `2026-12-06T20:31:05Z`. A time past what a calendar date can
/// hold (year 9999) is shown as that limit.
pub fn format_time(unix_millis: u64) -> String {
    let seconds = i64::try_from(unix_millis / 1000).unwrap_or(i64::MAX);
    let at = jiff::Timestamp::from_second(seconds).unwrap_or(jiff::Timestamp::MAX);
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A time in milliseconds since the Unix epoch, in UTC with milliseconds,
/// as IRCv3's `server-time` writes it: `2026-12-06T20:31:05.123Z`.
pub fn format_time_millis(unix_millis: u64) -> String {
    let millis = i64::try_from(unix_millis).unwrap_or(i64::MAX);
    let at = jiff::Timestamp::from_millisecond(millis).unwrap_or(jiff::Timestamp::MAX);
    at.strftime("%Y-%m-%dT%H:%M:%S.%3fZ").to_string()
}

/// A time written as [`format_time`] writes it, back in milliseconds since
/// the Unix epoch; `None` if `text` is not one.
pub fn parse_time(text: &str) -> Option<u64> {
    if !text.ends_with('Z') {
        return None;
    }
    let at: jiff::Timestamp = text.parse().ok()?;
    u64::try_from(at.as_millisecond()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_time_has_milliseconds() {
        assert_eq!(format_time_millis(1_796_587_200_123), "2026-12-06T20:00:00.123Z");
        assert_eq!(format_time_millis(1_796_587_200_000), "2026-12-06T20:00:00.000Z");
    }

    #[test]
    fn times_read_as_utc_to_the_second_and_parse_back() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_796_588_265_999), "2026-12-06T20:17:45Z");
        assert_eq!(parse_time("2026-12-06T20:17:45Z"), Some(1_796_588_265_000));
        assert_eq!(parse_time("2026-12-06T20:17:45+01:00"), None, "UTC only");
        assert_eq!(parse_time("yesterday"), None);
        assert!(
            format_time(u64::MAX).starts_with("9999-12-"),
            "no panic, the last date there is"
        );
    }
}
