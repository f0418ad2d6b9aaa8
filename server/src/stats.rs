//! Counters the event loop keeps for whoever watches the server from
//! outside it.
//!
//! The event loop owns every connection, so only it knows how many there
//! are and whether it is still turning. Other threads (the systemd
//! notifier today, for `STATUS=` and the watchdog; a metrics endpoint
//! later) must learn that without a lock the loop could wait on and
//! without a message per change. So the loop writes plain atomics at the
//! end of each turn and readers take a snapshot whenever they like. Each
//! counter is one independent number: a reader may see one counter a
//! turn ahead of another, which none of them needs to care about.
//!
//! New counters belong here, each with a line saying what it counts.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Live counters of a running server, shared through an `Arc` between the
/// event loop (the only writer) and any number of readers.
#[derive(Debug, Default)]
pub struct Stats {
    /// Clients connected now: every accepted connection not yet closed,
    /// including those being said goodbye to.
    clients: AtomicUsize,
    /// Turns the event loop has completed since it started. It only grows;
    /// a reader that sees it stand still while the loop was woken knows
    /// the loop is stuck (see [`crate::Liveness`]).
    loop_turns: AtomicU64,
}

impl Stats {
    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// Turns the event loop has completed so far.
    pub fn loop_turns(&self) -> u64 {
        self.loop_turns.load(Ordering::Relaxed)
    }

    /// Records the number of connected clients (event loop only).
    pub fn set_clients(&self, clients: usize) {
        self.clients.store(clients, Ordering::Relaxed);
    }

    /// Records that the event loop completed one more turn (event loop
    /// only).
    pub fn count_loop_turn(&self) {
        self.loop_turns.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_start_at_zero_and_show_what_the_loop_wrote() {
        let stats = Stats::default();
        assert_eq!((stats.clients(), stats.loop_turns()), (0, 0));
        stats.set_clients(3);
        stats.count_loop_turn();
        stats.count_loop_turn();
        assert_eq!((stats.clients(), stats.loop_turns()), (3, 2));
        stats.set_clients(0);
        assert_eq!(stats.clients(), 0);
    }
}
