//! Telling, from another thread, whether the event loop still turns.
//!
//! A watchdog ping must mean "the server works", not "some thread is
//! alive": a timer thread would keep pinging while the event loop hung,
//! and systemd would never restart the service. So the watcher wakes the
//! loop through its [`mio::Waker`] and, when it next looks, checks that
//! the loop's turn counter ([`crate::stats::Stats::loop_turns`]) has moved.
//! An idle loop that is healthy wakes, turns once and sleeps again; a loop
//! stuck anywhere in a turn does not count the turn, and the check fails.

use std::sync::Arc;

use mio::Waker;

use crate::stats::Stats;

/// A watcher's view of the event loop: wake it, and see whether it turned.
#[derive(Debug)]
pub struct Liveness {
    /// Wakes the event loop, which then completes a turn.
    waker: Arc<Waker>,
    /// Where the loop counts its turns.
    stats: Arc<Stats>,
    /// The turn count at the previous check.
    seen: u64,
}

impl Liveness {
    /// A watcher of the loop that counts its turns in `stats` and wakes on
    /// `waker`. It wakes the loop at once, so that a loop that starts and
    /// works has turned by the first [`Liveness::check`].
    pub fn new(waker: Arc<Waker>, stats: Arc<Stats>) -> Liveness {
        let liveness = Liveness {
            waker,
            seen: stats.loop_turns(),
            stats,
        };
        liveness.poke();
        liveness
    }

    /// True when the loop has completed a turn since the previous check
    /// (or since this watcher was made). Either way it wakes the loop
    /// again, so a live loop will have turned by the next check however
    /// quiet the server is.
    pub fn check(&mut self) -> bool {
        let turns = self.stats.loop_turns();
        let turned = turns != self.seen;
        self.seen = turns;
        self.poke();
        turned
    }

    /// Wakes the loop. A failure is logged, not returned: the next check
    /// then fails too, which is the right outcome for a loop that cannot
    /// be woken.
    fn poke(&self) {
        if let Err(e) = self.waker.wake() {
            log::warn!("cannot wake the event loop to check that it runs: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll, Token};
    use std::time::Duration;

    const WAKER: Token = Token(7);

    /// True when the poll reports a wake right now.
    fn woken(poll: &mut Poll) -> bool {
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
        events.iter().any(|e| e.token() == WAKER)
    }

    #[test]
    fn a_check_passes_only_when_the_loop_turned_and_always_wakes_it() {
        let mut poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).unwrap());
        let stats = Arc::new(Stats::default());
        let mut liveness = Liveness::new(waker, Arc::clone(&stats));
        assert!(woken(&mut poll), "a new watcher wakes the loop");

        // The loop turned after the wake: the check passes.
        stats.count_loop_turn();
        assert!(liveness.check());
        assert!(woken(&mut poll), "every check wakes the loop again");

        // The loop did not turn since: the check fails, and still wakes.
        assert!(!liveness.check());
        assert!(woken(&mut poll));

        stats.count_loop_turn();
        stats.count_loop_turn();
        assert!(liveness.check(), "any number of turns counts");
    }
}
