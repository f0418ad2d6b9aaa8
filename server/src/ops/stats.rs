//! Counters the server keeps for whoever watches it from outside.
//!
//! The event loop owns every connection and the hub every room, so only
//! they know how many there are, what came in and what went out. Other
//! threads (the systemd notifier for `STATUS=` and the watchdog, the
//! metrics endpoint in [`crate::ops::metrics`], the periodic stats log line)
//! must learn that without a lock the loop could wait on and without a
//! message per change. So the loop and the hub write plain relaxed atomics
//! as things happen (one uncontended add each: a few nanoseconds, nothing
//! next to the system call that goes with it), and readers take a
//! snapshot whenever they like. Each counter is one independent number: a
//! reader may see one counter a turn ahead of another, which none of them
//! needs to care about.
//!
//! Labels are closed enums ([`CloseReason`], [`ErrorLabel`]) with one
//! counter each, never a nick, an address or a room name, so the number of
//! series stays fixed however many clients come.
//!
//! New counters belong here, each with a line saying what it counts.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use chat_protocol::{CommandError, DecodeError, ErrorKind};

use crate::ops::logging::counted;

/// Why a connection ended, as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client said `/quit`.
    Quit,
    /// The client closed its side, or the connection failed.
    Disconnect,
    /// Its outbound queue overflowed `--sendq`.
    SlowConsumer,
    /// It sent nothing for `--idle-timeout`.
    Idle,
    /// The server was shutting down.
    Shutdown,
    /// Refused at once: `--max-clients` were connected.
    RefusedFull,
    /// Refused at once: `--max-per-ip` were connected from its address.
    RefusedPerIp,
    /// Refused at once: `--max-per-net` were connected from its network.
    RefusedPerNet,
    /// Refused at once: too many new connections from its address or
    /// network (`--connect-rate`).
    RefusedThrottled,
    /// Refused at once: a server ban names its address.
    RefusedBanned,
    /// Ended on a full server to make room for a newcomer: it had never
    /// said anything.
    MadeRoom,
    /// Its TLS handshake failed or did not finish in time.
    Handshake,
}

impl CloseReason {
    /// Every reason, in label order.
    pub const ALL: [CloseReason; 12] = [
        CloseReason::Quit,
        CloseReason::Disconnect,
        CloseReason::SlowConsumer,
        CloseReason::Idle,
        CloseReason::Shutdown,
        CloseReason::RefusedFull,
        CloseReason::RefusedPerIp,
        CloseReason::RefusedPerNet,
        CloseReason::RefusedThrottled,
        CloseReason::RefusedBanned,
        CloseReason::MadeRoom,
        CloseReason::Handshake,
    ];

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Quit => "quit",
            CloseReason::Disconnect => "disconnect",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::Idle => "idle",
            CloseReason::Shutdown => "shutdown",
            CloseReason::RefusedFull => "refused_full",
            CloseReason::RefusedPerIp => "refused_per_ip",
            CloseReason::RefusedPerNet => "refused_per_net",
            CloseReason::RefusedThrottled => "refused_throttled",
            CloseReason::RefusedBanned => "refused_banned",
            CloseReason::MadeRoom => "made_room",
            CloseReason::Handshake => "tls_handshake",
        }
    }
}

/// The kind of an error line sent to a client, as the metrics label it:
/// [`ErrorKind`] without what it carries (a nick, a room name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorLabel {
    /// The line was not valid UTF-8.
    InvalidUtf8,
    /// The line was longer than `--max-line`.
    TooLong,
    /// `/name` of no command.
    UnknownCommand,
    /// A command with missing or extra arguments.
    Usage,
    /// `/nick` with a name that breaks the rules.
    BadNick,
    /// `/join` with a name that breaks the rules.
    BadRoom,
    /// `/nick` to a nick someone has.
    NickInUse,
    /// `/nick` to a nick that looks like one someone has.
    NickConfusable,
    /// `/msg` to a nick nobody has.
    NoSuchNick,
    /// `/join` of the room one is in.
    AlreadyInRoom,
    /// Something for a room one is not in.
    NotInRoom,
    /// A join past the most rooms one may be in.
    TooManyRooms,
    /// A command before registering (IRC).
    NotRegistered,
    /// Something about a room that does not exist.
    NoSuchRoom,
    /// A moderation command from someone not an operator of the room.
    NotOperator,
    /// A moderation command about someone not in the room.
    NotInTheRoom,
    /// A join refused by a ban.
    Banned,
    /// A line from a banned member, not delivered.
    Silenced,
    /// A join without the room's key.
    NeedsKey,
    /// A line in a moderated room without voice.
    Moderated,
    /// A locked topic set by someone not an operator.
    TopicLocked,
    /// Lifting a ban that is not there.
    NoSuchBan,
    /// Refused: a server ban names the address.
    BannedFromServer,
    /// `/topic` with a topic that is too long.
    TopicTooLong,
    /// Refused: the server is full.
    ServerFull,
    /// Refused: too many connections from the address.
    TooManyFromAddress,
    /// Refused: too many connections from the network.
    TooManyFromNetwork,
    /// Refused: too many new connections from the address or network.
    ConnectingTooFast,
}

impl ErrorLabel {
    /// Every kind, in label order.
    pub const ALL: [ErrorLabel; 28] = [
        ErrorLabel::InvalidUtf8,
        ErrorLabel::TooLong,
        ErrorLabel::UnknownCommand,
        ErrorLabel::Usage,
        ErrorLabel::BadNick,
        ErrorLabel::BadRoom,
        ErrorLabel::NickInUse,
        ErrorLabel::NickConfusable,
        ErrorLabel::NoSuchNick,
        ErrorLabel::AlreadyInRoom,
        ErrorLabel::NotInRoom,
        ErrorLabel::TooManyRooms,
        ErrorLabel::NotRegistered,
        ErrorLabel::NoSuchRoom,
        ErrorLabel::NotOperator,
        ErrorLabel::NotInTheRoom,
        ErrorLabel::Banned,
        ErrorLabel::Silenced,
        ErrorLabel::NeedsKey,
        ErrorLabel::Moderated,
        ErrorLabel::TopicLocked,
        ErrorLabel::NoSuchBan,
        ErrorLabel::BannedFromServer,
        ErrorLabel::TopicTooLong,
        ErrorLabel::ServerFull,
        ErrorLabel::TooManyFromAddress,
        ErrorLabel::TooManyFromNetwork,
        ErrorLabel::ConnectingTooFast,
    ];

    /// The label of an error.
    pub fn of(error: &ErrorKind) -> ErrorLabel {
        match error {
            ErrorKind::Decode(DecodeError::InvalidUtf8 { .. }) => ErrorLabel::InvalidUtf8,
            ErrorKind::Decode(DecodeError::TooLong { .. } | DecodeError::MessageTooLong { .. }) => {
                ErrorLabel::TooLong
            }
            ErrorKind::Command(CommandError::Unknown(_)) => ErrorLabel::UnknownCommand,
            ErrorKind::Command(CommandError::Usage(_)) => ErrorLabel::Usage,
            ErrorKind::Command(CommandError::BadNick(_)) => ErrorLabel::BadNick,
            ErrorKind::Command(CommandError::BadRoom(_)) => ErrorLabel::BadRoom,
            ErrorKind::Command(CommandError::NoSuchNick(_)) | ErrorKind::NoSuchNick(_) => {
                ErrorLabel::NoSuchNick
            }
            ErrorKind::NickInUse(_) => ErrorLabel::NickInUse,
            ErrorKind::NickConfusable { .. } => ErrorLabel::NickConfusable,
            ErrorKind::AlreadyInRoom(_) => ErrorLabel::AlreadyInRoom,
            ErrorKind::NotInRoom(_) | ErrorKind::NoCurrentRoom | ErrorKind::CannotSendTo(_) => {
                ErrorLabel::NotInRoom
            }
            ErrorKind::NotRegistered => ErrorLabel::NotRegistered,
            ErrorKind::NoSuchRoom(_) => ErrorLabel::NoSuchRoom,
            ErrorKind::NotOperator(_) => ErrorLabel::NotOperator,
            ErrorKind::NotInTheRoom { .. } => ErrorLabel::NotInTheRoom,
            ErrorKind::BannedFrom(_) => ErrorLabel::Banned,
            ErrorKind::Silenced(_) => ErrorLabel::Silenced,
            ErrorKind::NeedsKey(_) => ErrorLabel::NeedsKey,
            ErrorKind::Moderated(_) => ErrorLabel::Moderated,
            ErrorKind::TopicLocked(_) => ErrorLabel::TopicLocked,
            ErrorKind::NoSuchBan { .. } => ErrorLabel::NoSuchBan,
            ErrorKind::BannedFromServer => ErrorLabel::BannedFromServer,
            ErrorKind::Command(CommandError::Moderation(_)) => ErrorLabel::Usage,
            ErrorKind::TooManyRooms(_) => ErrorLabel::TooManyRooms,
            ErrorKind::Command(CommandError::TopicTooLong) => ErrorLabel::TopicTooLong,
            ErrorKind::ServerFull => ErrorLabel::ServerFull,
            ErrorKind::TooManyFromAddress => ErrorLabel::TooManyFromAddress,
            ErrorKind::TooManyFromNetwork => ErrorLabel::TooManyFromNetwork,
            ErrorKind::ConnectingTooFast => ErrorLabel::ConnectingTooFast,
        }
    }

    /// The `kind` label value.
    pub fn label(self) -> &'static str {
        match self {
            ErrorLabel::InvalidUtf8 => "invalid_utf8",
            ErrorLabel::TooLong => "too_long",
            ErrorLabel::UnknownCommand => "unknown_command",
            ErrorLabel::Usage => "usage",
            ErrorLabel::BadNick => "bad_nick",
            ErrorLabel::BadRoom => "bad_room",
            ErrorLabel::NickInUse => "nick_in_use",
            ErrorLabel::NickConfusable => "nick_confusable",
            ErrorLabel::NoSuchNick => "no_such_nick",
            ErrorLabel::AlreadyInRoom => "already_in_room",
            ErrorLabel::NotInRoom => "not_in_room",
            ErrorLabel::TooManyRooms => "too_many_rooms",
            ErrorLabel::NotRegistered => "not_registered",
            ErrorLabel::NoSuchRoom => "no_such_room",
            ErrorLabel::NotOperator => "not_operator",
            ErrorLabel::NotInTheRoom => "not_in_the_room",
            ErrorLabel::Banned => "banned",
            ErrorLabel::Silenced => "silenced",
            ErrorLabel::NeedsKey => "needs_key",
            ErrorLabel::Moderated => "moderated",
            ErrorLabel::TopicLocked => "topic_locked",
            ErrorLabel::NoSuchBan => "no_such_ban",
            ErrorLabel::BannedFromServer => "banned_from_server",
            ErrorLabel::TopicTooLong => "topic_too_long",
            ErrorLabel::ServerFull => "server_full",
            ErrorLabel::TooManyFromAddress => "too_many_from_address",
            ErrorLabel::TooManyFromNetwork => "too_many_from_network",
            ErrorLabel::ConnectingTooFast => "connecting_too_fast",
        }
    }
}

/// Upper bounds of the fan-out latency buckets, in microseconds: 10 µs to
/// 1 s, roughly ×2.5 apart. A chat line normally fans out in tens of
/// microseconds; the top buckets show a loop that fell behind.
pub const FANOUT_BUCKETS_MICROS: [u64; 12] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 10_000, 50_000, 250_000, 1_000_000,
];

/// A latency histogram of relaxed atomics: one add per bucket hit, read at
/// scrape time. (prometheus-client's own histogram takes a lock on every
/// observation, which the event loop should not.)
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last one is +Inf.
    buckets: [AtomicU64; FANOUT_BUCKETS_MICROS.len() + 1],
    /// Sum of all observations, in nanoseconds.
    sum_nanos: AtomicU64,
    /// Number of observations.
    count: AtomicU64,
}

/// What a [`LatencyHistogram`] holds at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Sum of all observations, in seconds.
    pub sum_seconds: f64,
    /// Number of observations.
    pub count: u64,
    /// (upper bound in seconds, observations in that bucket alone), the
    /// last bound being `f64::MAX` for +Inf.
    pub buckets: Vec<(f64, u64)>,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let index = FANOUT_BUCKETS_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(FANOUT_BUCKETS_MICROS.len());
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The histogram as it is now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let bounds = FANOUT_BUCKETS_MICROS
            .iter()
            .map(|&micros| micros as f64 / 1e6)
            .chain(std::iter::once(f64::MAX));
        let buckets: Vec<(f64, u64)> = bounds
            .zip(self.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        HistogramSnapshot {
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            // The count is the buckets' sum, so the two always agree even
            // when an observation is half recorded.
            count: buckets.iter().map(|&(_, n)| n).sum(),
            buckets,
        }
    }
}

/// Live counters of a running server, shared through an `Arc` between the
/// I/O threads, the acceptor and the hub (the writers) and any number of
/// readers.
#[derive(Debug, Default)]
pub struct Stats {
    /// Clients connected now: every accepted connection not yet closed,
    /// including those being said goodbye to.
    clients: AtomicUsize,
    /// Connections accepted from a listener, refused ones included.
    accepted: AtomicU64,
    /// Connections closed, by [`CloseReason`] (index in `CloseReason::ALL`).
    closed: [AtomicU64; CloseReason::ALL.len()],
    /// Lines received from clients and handed to the hub (blank lines are
    /// ignored and not counted; lines that earn an error are).
    lines_received: AtomicU64,
    /// Chat messages (room messages, actions, private messages) queued to
    /// a recipient, once per recipient.
    messages_delivered: AtomicU64,
    /// Bytes read from client sockets.
    bytes_received: AtomicU64,
    /// Bytes written to client sockets.
    bytes_sent: AtomicU64,
    /// Error lines sent to clients, by [`ErrorLabel`].
    errors: [AtomicU64; ErrorLabel::ALL.len()],
    /// Rooms that exist now, the lobby included (written by the hub).
    rooms: AtomicUsize,
    /// What all rooms' histories cost against `--history-bytes` (written
    /// by the hub).
    history_bytes: AtomicUsize,
    /// Empty rooms kept only for their history (written by the hub).
    history_rooms: AtomicUsize,
    /// Times a client was stopped being read from by flood control.
    flood_pauses: AtomicU64,
    /// Bytes queued to clients and not yet written, all clients together.
    queued_bytes: AtomicUsize,
    /// Time from reading a line to the end of the I/O thread's turn that
    /// queued what it caused and wrote it, as far as each socket took it
    /// (output a slow socket has not taken is not waited for).
    fanout: LatencyHistogram,
}

impl Stats {
    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// Records that the clients of one I/O thread went from `before` to
    /// `now` (each thread reports its own; the total is their sum).
    pub fn shift_clients(&self, before: usize, now: usize) {
        shift(&self.clients, before, now);
    }

    /// Connections accepted so far, refused ones included.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Records an accepted connection.
    pub fn count_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections closed so far for `reason`.
    pub fn closed(&self, reason: CloseReason) -> u64 {
        let index = CloseReason::ALL.iter().position(|&r| r == reason);
        index
            .and_then(|i| self.closed.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Records a closed (or refused) connection.
    pub fn count_closed(&self, reason: CloseReason) {
        let index = CloseReason::ALL.iter().position(|&r| r == reason);
        if let Some(counter) = index.and_then(|i| self.closed.get(i)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines received so far.
    pub fn lines_received(&self) -> u64 {
        self.lines_received.load(Ordering::Relaxed)
    }

    /// Records a line received.
    pub fn count_line(&self) {
        self.lines_received.fetch_add(1, Ordering::Relaxed);
    }

    /// Chat messages queued to recipients so far, once per recipient.
    pub fn messages_delivered(&self) -> u64 {
        self.messages_delivered.load(Ordering::Relaxed)
    }

    /// Records a chat message queued to `recipients` recipients.
    pub fn count_delivered(&self, recipients: u64) {
        self.messages_delivered.fetch_add(recipients, Ordering::Relaxed);
    }

    /// Bytes read from clients so far.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Ordering::Relaxed)
    }

    /// Records bytes read from a client.
    pub fn count_bytes_received(&self, bytes: usize) {
        self.bytes_received.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Bytes written to clients so far.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }

    /// Records bytes written to a client.
    pub fn count_bytes_sent(&self, bytes: usize) {
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Error lines of `kind` sent so far.
    pub fn errors(&self, kind: ErrorLabel) -> u64 {
        let index = ErrorLabel::ALL.iter().position(|&k| k == kind);
        index
            .and_then(|i| self.errors.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Records an error line sent to a client.
    pub fn count_error(&self, error: &ErrorKind) {
        let kind = ErrorLabel::of(error);
        let index = ErrorLabel::ALL.iter().position(|&k| k == kind);
        if let Some(counter) = index.and_then(|i| self.errors.get(i)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Rooms that exist now.
    pub fn rooms(&self) -> usize {
        self.rooms.load(Ordering::Relaxed)
    }

    /// Records the number of rooms (hub only).
    pub fn set_rooms(&self, rooms: usize) {
        self.rooms.store(rooms, Ordering::Relaxed);
    }

    /// What the histories cost, and how many empty rooms keep one.
    pub fn history(&self) -> (usize, usize) {
        (
            self.history_bytes.load(Ordering::Relaxed),
            self.history_rooms.load(Ordering::Relaxed),
        )
    }

    /// Records what the histories cost and how many empty rooms keep one
    /// (hub only).
    pub fn set_history(&self, bytes: usize, empty_rooms: usize) {
        self.history_bytes.store(bytes, Ordering::Relaxed);
        self.history_rooms.store(empty_rooms, Ordering::Relaxed);
    }

    /// Flood-control pauses so far.
    pub fn flood_pauses(&self) -> u64 {
        self.flood_pauses.load(Ordering::Relaxed)
    }

    /// Records that flood control paused reading from a client.
    pub fn count_flood_pause(&self) {
        self.flood_pauses.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes queued to clients now.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Relaxed)
    }

    /// Records that the bytes queued to the clients of one I/O thread went
    /// from `before` to `now`.
    pub fn shift_queued_bytes(&self, before: usize, now: usize) {
        shift(&self.queued_bytes, before, now);
    }

    /// The fan-out latency histogram.
    pub fn fanout(&self) -> &LatencyHistogram {
        &self.fanout
    }

    /// One line with the main figures, for the periodic log line.
    pub fn summary(&self) -> String {
        let closed: u64 = CloseReason::ALL.iter().map(|&r| self.closed(r)).sum();
        format!(
            "{}, {}; since start: {} accepted, {closed} closed ({}), {} received, {} delivered, \
             {} in, {} out, {} queued now",
            counted(self.clients(), "client"),
            counted(self.rooms(), "room"),
            counted(self.accepted(), "connection"),
            counted(self.closed(CloseReason::SlowConsumer), "slow consumer"),
            counted(self.lines_received(), "line"),
            counted(self.messages_delivered(), "message"),
            counted(self.bytes_received(), "byte"),
            counted(self.bytes_sent(), "byte"),
            counted(self.queued_bytes(), "byte"),
        )
    }
}

/// Moves a gauge that is the sum of several writers' shares by one
/// writer's change from `before` to `now`.
fn shift(gauge: &AtomicUsize, before: usize, now: usize) {
    if now >= before {
        gauge.fetch_add(now - before, Ordering::Relaxed);
    } else {
        gauge.fetch_sub(before - now, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_in_the_singular_for_one() {
        let stats = Stats::default();
        assert_eq!(
            stats.summary(),
            "0 clients, 0 rooms; since start: 0 connections accepted, 0 closed (0 slow consumers), \
             0 lines received, 0 messages delivered, 0 bytes in, 0 bytes out, 0 bytes queued now"
        );
        stats.shift_clients(0, 1);
        stats.shift_queued_bytes(0, 1);
        stats.count_closed(CloseReason::SlowConsumer);
        assert_eq!(
            stats.summary(),
            "1 client, 0 rooms; since start: 0 connections accepted, 1 closed (1 slow consumer), \
             0 lines received, 0 messages delivered, 0 bytes in, 0 bytes out, 1 byte queued now"
        );
    }

    #[test]
    fn gauges_are_the_sum_of_each_threads_share() {
        let stats = Stats::default();
        assert_eq!((stats.clients(), stats.queued_bytes()), (0, 0));
        stats.shift_clients(0, 3); // one thread
        stats.shift_clients(0, 2); // another
        stats.shift_queued_bytes(0, 100);
        assert_eq!((stats.clients(), stats.queued_bytes()), (5, 100));
        stats.shift_clients(3, 1);
        stats.shift_queued_bytes(100, 0);
        assert_eq!((stats.clients(), stats.queued_bytes()), (3, 0));
    }

    #[test]
    fn labelled_counters_count_each_label_apart() {
        let stats = Stats::default();
        stats.count_closed(CloseReason::SlowConsumer);
        stats.count_closed(CloseReason::SlowConsumer);
        stats.count_closed(CloseReason::Quit);
        assert_eq!(stats.closed(CloseReason::SlowConsumer), 2);
        assert_eq!(stats.closed(CloseReason::Quit), 1);
        assert_eq!(stats.closed(CloseReason::Idle), 0);
        stats.count_error(&ErrorKind::Decode(DecodeError::InvalidUtf8 {
            lossy: String::new(),
        }));
        stats.count_error(&ErrorKind::Command(CommandError::Usage("/nick NAME")));
        assert_eq!(stats.errors(ErrorLabel::InvalidUtf8), 1);
        assert_eq!(stats.errors(ErrorLabel::Usage), 1);
        assert_eq!(stats.errors(ErrorLabel::TooLong), 0);
    }

    #[test]
    fn labels_are_distinct_prometheus_label_values() {
        let reasons: Vec<&str> = CloseReason::ALL.iter().map(|r| r.label()).collect();
        let kinds: Vec<&str> = ErrorLabel::ALL.iter().map(|k| k.label()).collect();
        for labels in [reasons, kinds] {
            let mut sorted = labels.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), labels.len(), "{labels:?}");
            assert!(labels.iter().all(|l| l
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')));
        }
    }

    #[test]
    fn the_histogram_puts_each_latency_in_its_bucket() {
        let histogram = LatencyHistogram::default();
        histogram.observe(Duration::from_micros(5));
        histogram.observe(Duration::from_micros(10));
        histogram.observe(Duration::from_micros(11));
        histogram.observe(Duration::from_secs(5));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 4);
        assert_eq!(snapshot.buckets.len(), FANOUT_BUCKETS_MICROS.len() + 1);
        assert_eq!(snapshot.buckets.first(), Some(&(10e-6, 2)));
        assert_eq!(snapshot.buckets.get(1), Some(&(25e-6, 1)));
        assert_eq!(snapshot.buckets.last(), Some(&(f64::MAX, 1)));
        assert!((snapshot.sum_seconds - 5.000026).abs() < 1e-9);
    }
}
