//! The event loop's timers: what must happen to which connection, when.
//!
//! One binary heap, soonest first, gives the poll its timeout, so the loop
//! wakes exactly when something is due and never on a fixed tick. Timers
//! are never cancelled: a connection that is gone, or has moved on, simply
//! ignores its old timers when they come due (the [`ConnId`] serial tells).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::chat::messages::ConnId;

/// What to do when a timer comes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKind {
    /// A closing connection's time is up: close it now.
    Close,
    /// A throttled connection has a token again: read it.
    Resume,
    /// Check whether the connection has been quiet for the idle timeout.
    Idle,
}

/// Pending timers, soonest first.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, ConnId, TimerKind)>>,
}

impl Timers {
    /// Schedules `kind` for `id` at `at`.
    pub fn add(&mut self, at: Instant, id: ConnId, kind: TimerKind) {
        self.heap.push(Reverse((at, id, kind)));
    }

    /// When the soonest timer comes due.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Takes the soonest timer if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(ConnId, TimerKind)> {
        let Reverse((at, _, _)) = self.heap.peek()?;
        if *at > now {
            return None;
        }
        self.heap.pop().map(|Reverse((_, id, kind))| (id, kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timers_come_due_in_order_and_not_before_their_time() {
        let now = Instant::now();
        let id = |n| ConnId {
            shard: 0,
            slot: n,
            serial: n as u64,
        };
        let mut timers = Timers::default();
        timers.add(now + Duration::from_secs(2), id(2), TimerKind::Idle);
        timers.add(now + Duration::from_secs(1), id(1), TimerKind::Close);
        assert_eq!(timers.next(), Some(now + Duration::from_secs(1)));
        assert_eq!(timers.pop_due(now), None);
        assert_eq!(
            timers.pop_due(now + Duration::from_secs(5)),
            Some((id(1), TimerKind::Close))
        );
        assert_eq!(
            timers.pop_due(now + Duration::from_secs(5)),
            Some((id(2), TimerKind::Idle))
        );
        assert_eq!(timers.pop_due(now + Duration::from_secs(5)), None);
        assert_eq!(timers.next(), None);
    }
}
