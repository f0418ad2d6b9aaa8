//! Telling, from another thread, whether the server's loops still turn.
//!
//! A watchdog ping must mean "the server works", not "some thread is
//! alive": a timer thread would keep pinging while an event loop hung, and
//! systemd would never restart the service. So the watcher wakes each loop
//! (every I/O thread and the acceptor through its [`mio::Waker`], the hub
//! through a channel of its own) and, when it next looks, checks that each
//! loop's [`Heartbeat`] has moved. An idle loop that is healthy wakes,
//! turns once and sleeps again; a loop stuck anywhere in a turn does not
//! count the turn, and the check fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;
use mio::Waker;

/// How a watched loop is woken.
#[derive(Debug, Clone)]
pub enum Wake {
    /// An event loop, through its poll's waker.
    Waker(Arc<Waker>),
    /// A thread that waits on channels (the hub): a message on a channel
    /// of capacity one, so pokes that come faster than it turns merge.
    Poke(Sender<()>),
}

impl Wake {
    fn wake(&self) -> std::io::Result<()> {
        match self {
            Wake::Waker(waker) => waker.wake(),
            // Full means a poke is already waiting: that is enough.
            Wake::Poke(sender) => match sender.try_send(()) {
                Ok(()) | Err(crossbeam_channel::TrySendError::Full(())) => Ok(()),
                Err(crossbeam_channel::TrySendError::Disconnected(())) => {
                    Err(std::io::Error::other("the loop has stopped"))
                }
            },
        }
    }
}

/// A loop's count of completed turns. It only grows.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat(Arc<AtomicU64>);

impl Heartbeat {
    /// Records one more completed turn (the loop itself only).
    pub fn beat(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Turns completed so far.
    pub fn beats(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One watched loop: how to wake it, where it counts its turns, and the
/// count at the previous check.
#[derive(Debug)]
struct Watched {
    waker: Wake,
    heartbeat: Heartbeat,
    seen: u64,
}

/// A watcher's view of the server's loops: wake them, and see whether
/// every one of them turned.
#[derive(Debug)]
pub struct Liveness {
    loops: Vec<Watched>,
}

impl Liveness {
    /// A watcher of the loops that wake on each waker and count their
    /// turns in each heartbeat. It wakes them at once, so that loops that
    /// start and work have turned by the first [`Liveness::check`].
    pub fn new(loops: impl IntoIterator<Item = (Wake, Heartbeat)>) -> Liveness {
        let liveness = Liveness {
            loops: loops
                .into_iter()
                .map(|(waker, heartbeat)| Watched {
                    waker,
                    seen: heartbeat.beats(),
                    heartbeat,
                })
                .collect(),
        };
        liveness.poke();
        liveness
    }

    /// True when every loop has completed a turn since the previous check
    /// (or since this watcher was made). Either way it wakes them all
    /// again, so live loops will have turned by the next check however
    /// quiet the server is.
    pub fn check(&mut self) -> bool {
        let mut all_turned = true;
        for watched in &mut self.loops {
            let beats = watched.heartbeat.beats();
            all_turned &= beats != watched.seen;
            watched.seen = beats;
        }
        self.poke();
        all_turned
    }

    /// Wakes every loop. A failure is logged, not returned: the next check
    /// then fails too, which is the right outcome for a loop that cannot
    /// be woken.
    fn poke(&self) {
        for watched in &self.loops {
            if let Err(e) = watched.waker.wake() {
                log::warn!("cannot wake an event loop to check that it runs: {e}");
            }
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

    fn watched_loop() -> (Poll, Arc<Waker>, Heartbeat) {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).unwrap());
        (poll, waker, Heartbeat::default())
    }

    #[test]
    fn a_check_passes_only_when_the_loop_turned_and_always_wakes_it() {
        let (mut poll, waker, heartbeat) = watched_loop();
        let mut liveness = Liveness::new([(Wake::Waker(waker), heartbeat.clone())]);
        assert!(woken(&mut poll), "a new watcher wakes the loop");

        // The loop turned after the wake: the check passes.
        heartbeat.beat();
        assert!(liveness.check());
        assert!(woken(&mut poll), "every check wakes the loop again");

        // The loop did not turn since: the check fails, and still wakes.
        assert!(!liveness.check());
        assert!(woken(&mut poll));

        heartbeat.beat();
        heartbeat.beat();
        assert!(liveness.check(), "any number of turns counts");
    }

    #[test]
    fn a_channel_poke_wakes_a_thread_and_merges() {
        let (sender, receiver) = crossbeam_channel::bounded(1);
        let heartbeat = Heartbeat::default();
        let mut liveness = Liveness::new([(Wake::Poke(sender), heartbeat.clone())]);
        assert!(!liveness.check(), "it has not turned");
        assert_eq!(receiver.try_iter().count(), 1, "two pokes, one message");
        heartbeat.beat();
        assert!(liveness.check());
    }

    #[test]
    fn one_stuck_loop_fails_the_check() {
        let (mut first_poll, first_waker, first) = watched_loop();
        let (mut second_poll, second_waker, second) = watched_loop();
        let mut liveness = Liveness::new([
            (Wake::Waker(first_waker), first.clone()),
            (Wake::Waker(second_waker), second.clone()),
        ]);
        first.beat();
        second.beat();
        assert!(liveness.check());
        first.beat();
        assert!(!liveness.check(), "the second loop did not turn");
        assert!(
            woken(&mut first_poll) && woken(&mut second_poll),
            "both are woken"
        );
    }
}
