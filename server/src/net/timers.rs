//! The event loop's timers: what must happen to which connection, when.
//!
//! An ordered set, soonest first, gives the poll its timeout, so the loop
//! wakes exactly when something is due and never on a fixed tick. Each
//! connection has at most one timer of each [`TimerKind`], and a timer is
//! cancelled when its connection goes or sets it again, so the set holds
//! at most four entries per open connection however many come and go
//! (a heap of timers that were never cancelled grew with connections ×
//! timeout under churn).
//!
//! The connection keeps the instant of each of its timers (see
//! [`TimerSlots`]), which is the key to find and remove it here.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::chat::messages::ConnId;

/// The longest wait [`later`] gives: far beyond any deadline the server
/// sets, short enough that adding it to an `Instant` cannot overflow.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `at + wait`, or as far in the future as an `Instant` can go: adding a
/// `Duration` to an `Instant` panics on overflow, and a wait may come from
/// an option value or a computation on a client's input.
pub fn later(at: Instant, wait: Duration) -> Instant {
    at.checked_add(wait)
        .or_else(|| at.checked_add(FOREVER))
        .unwrap_or(at)
}

/// What to do when a timer comes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKind {
    /// A closing connection's time is up: close it now.
    Close,
    /// A throttled connection has a token again: read it.
    Resume,
    /// Check whether the connection has been quiet for the idle timeout.
    Idle,
    /// A TLS handshake's time is up, or a web connection's HTTP request's:
    /// close the connection if it is still at it.
    Handshake,
    /// An IRC connection's keepalive: register in time, answer a PING
    /// once quiet (see [`crate::config::Keepalive`]); or a WebSocket's
    /// ping.
    Keepalive,
}

impl TimerKind {
    const COUNT: usize = 5;
    const ALL: [TimerKind; TimerKind::COUNT] = [
        TimerKind::Close,
        TimerKind::Resume,
        TimerKind::Idle,
        TimerKind::Handshake,
        TimerKind::Keepalive,
    ];

    fn index(self) -> usize {
        match self {
            TimerKind::Close => 0,
            TimerKind::Resume => 1,
            TimerKind::Idle => 2,
            TimerKind::Handshake => 3,
            TimerKind::Keepalive => 4,
        }
    }
}

/// The instants of one connection's pending timers, one per kind: what it
/// takes to cancel them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerSlots([Option<Instant>; TimerKind::COUNT]);

/// Pending timers, soonest first.
#[derive(Debug, Default)]
pub struct Timers {
    set: BTreeSet<(Instant, ConnId, TimerKind)>,
}

impl Timers {
    /// Schedules `kind` for `id` at `at`, replacing the connection's
    /// pending timer of that kind, if any.
    pub fn set(&mut self, slots: &mut TimerSlots, at: Instant, id: ConnId, kind: TimerKind) {
        self.cancel(slots, id, kind);
        if let Some(slot) = slots.0.get_mut(kind.index()) {
            *slot = Some(at);
        }
        self.set.insert((at, id, kind));
    }

    /// Cancels the connection's pending timer of `kind`, if any.
    pub fn cancel(&mut self, slots: &mut TimerSlots, id: ConnId, kind: TimerKind) {
        if let Some(at) = slots.0.get_mut(kind.index()).and_then(Option::take) {
            self.set.remove(&(at, id, kind));
        }
    }

    /// Cancels every pending timer of a connection that is going away.
    pub fn cancel_all(&mut self, slots: &mut TimerSlots, id: ConnId) {
        for kind in TimerKind::ALL {
            self.cancel(slots, id, kind);
        }
    }

    /// When the soonest timer comes due.
    pub fn next(&self) -> Option<Instant> {
        self.set.first().map(|(at, _, _)| *at)
    }

    /// Takes the soonest timer if it is due at `now`. The caller must clear
    /// the connection's slot for it (see [`TimerSlots::fired`]).
    pub fn pop_due(&mut self, now: Instant) -> Option<(ConnId, TimerKind)> {
        let (at, _, _) = self.set.first()?;
        if *at > now {
            return None;
        }
        self.set.pop_first().map(|(_, id, kind)| (id, kind))
    }

    /// How many timers are pending.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// True when no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

impl TimerSlots {
    /// Forgets the timer of `kind` that has just come due (it is no longer
    /// in the set, so there is nothing to cancel).
    pub fn fired(&mut self, kind: TimerKind) {
        if let Some(slot) = self.0.get_mut(kind.index()) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: usize) -> ConnId {
        ConnId {
            shard: 0,
            slot: n,
            serial: n as u64,
        }
    }

    #[test]
    fn later_never_overflows() {
        let now = Instant::now();
        assert_eq!(later(now, Duration::from_secs(1)), now + Duration::from_secs(1));
        assert!(later(now, Duration::MAX) > now + Duration::from_secs(365 * 24 * 3600));
    }

    #[test]
    fn timers_come_due_in_order_and_not_before_their_time() {
        let now = Instant::now();
        let (mut one, mut two) = (TimerSlots::default(), TimerSlots::default());
        let mut timers = Timers::default();
        timers.set(&mut two, now + Duration::from_secs(2), id(2), TimerKind::Idle);
        timers.set(&mut one, now + Duration::from_secs(1), id(1), TimerKind::Close);
        assert_eq!(timers.next(), Some(now + Duration::from_secs(1)));
        assert_eq!(timers.pop_due(now), None);
        let later = now + Duration::from_secs(5);
        assert_eq!(timers.pop_due(later), Some((id(1), TimerKind::Close)));
        assert_eq!(timers.pop_due(later), Some((id(2), TimerKind::Idle)));
        assert_eq!(timers.pop_due(later), None);
        assert_eq!(timers.next(), None);
    }

    #[test]
    fn setting_a_kind_again_replaces_the_pending_one() {
        let now = Instant::now();
        let mut slots = TimerSlots::default();
        let mut timers = Timers::default();
        for secs in 1..=100 {
            timers.set(
                &mut slots,
                now + Duration::from_secs(secs),
                id(1),
                TimerKind::Idle,
            );
        }
        assert_eq!(timers.len(), 1, "one idle timer per connection");
        assert_eq!(timers.next(), Some(now + Duration::from_secs(100)));
    }

    #[test]
    fn a_connection_that_goes_leaves_no_timer_behind() {
        let now = Instant::now();
        let mut timers = Timers::default();
        let mut all = Vec::new();
        for n in 0..1000 {
            let mut slots = TimerSlots::default();
            let at = now + Duration::from_secs(300);
            timers.set(&mut slots, at, id(n), TimerKind::Idle);
            timers.set(&mut slots, at, id(n), TimerKind::Resume);
            all.push(slots);
        }
        assert_eq!(timers.len(), 2000);
        for (n, slots) in all.iter_mut().enumerate() {
            timers.cancel_all(slots, id(n));
        }
        assert!(timers.is_empty(), "{} timers left", timers.len());
    }
}
