//! How long to wait before each reconnection attempt (`--reconnect`).
//!
//! When a server restarts, every client it had loses its connection at the
//! same moment. If all of them retried on the same schedule they would hit
//! the new server in waves, and a server that is down for long would be
//! knocked on several times a second forever. So the wait doubles after each
//! failed attempt up to a cap ([`MAX_DELAY`]), and each wait is randomised
//! ("equal jitter": half the nominal delay, plus a random part of up to the
//! other half), which spreads the clients out while keeping a floor so that
//! no client retries in a tight loop.
//!
//! The random numbers need no quality beyond "different per process", so
//! they come from a small xorshift generator seeded by the standard
//! library's per-process random hasher keys, not from a dependency.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The nominal delay before the first attempt: short, because a restart
/// (the common case) takes about that long.
pub const INITIAL_DELAY: Duration = Duration::from_millis(500);

/// The longest nominal delay: long enough not to bother a server that is
/// down for good, short enough that a user waiting in front of the screen
/// sees the client come back within half a minute of the server.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// The reconnection schedule: a growing, capped, jittered delay.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// Failed attempts since the last good connection; the nominal delay is
    /// [`INITIAL_DELAY`] doubled this many times, capped at [`MAX_DELAY`].
    attempts: u32,
    /// State of the xorshift64 generator; never zero.
    rng: u64,
}

impl Backoff {
    /// A schedule with a random seed for this process.
    pub fn new() -> Backoff {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        Backoff::with_seed(hasher.finish())
    }

    /// A schedule whose jitter follows from `seed`, for tests.
    pub fn with_seed(seed: u64) -> Backoff {
        Backoff {
            attempts: 0,
            // xorshift must not start at zero, where it would stay.
            rng: seed | 1,
        }
    }

    /// The wait before the next attempt; each call counts one attempt.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = nominal_delay(self.attempts);
        self.attempts = self.attempts.saturating_add(1);
        let half = nominal / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let random = self.next_random() % jitter_nanos.saturating_add(1);
        half + Duration::from_nanos(random)
    }

    /// Starts the schedule over, after a connection that worked.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// The next number of the xorshift64 sequence.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// [`INITIAL_DELAY`] doubled `attempts` times, at most [`MAX_DELAY`].
fn nominal_delay(attempts: u32) -> Duration {
    let factor = 1u32.checked_shl(attempts).unwrap_or(u32::MAX);
    INITIAL_DELAY
        .checked_mul(factor)
        .map_or(MAX_DELAY, |d| d.min(MAX_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nominal_delay_doubles_up_to_the_cap() {
        assert_eq!(nominal_delay(0), Duration::from_millis(500));
        assert_eq!(nominal_delay(1), Duration::from_secs(1));
        assert_eq!(nominal_delay(2), Duration::from_secs(2));
        assert_eq!(nominal_delay(5), Duration::from_secs(16));
        assert_eq!(nominal_delay(6), MAX_DELAY);
        assert_eq!(nominal_delay(31), MAX_DELAY);
        assert_eq!(nominal_delay(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn each_delay_is_between_half_and_all_of_the_nominal_one() {
        for seed in [0, 1, 42, u64::MAX] {
            let mut backoff = Backoff::with_seed(seed);
            for attempt in 0..100 {
                let nominal = nominal_delay(attempt);
                let delay = backoff.next_delay();
                assert!(
                    delay >= nominal / 2 && delay <= nominal,
                    "seed {seed}, attempt {attempt}: {delay:?} vs {nominal:?}"
                );
            }
        }
    }

    #[test]
    fn delays_are_jittered() {
        let mut backoff = Backoff::with_seed(7);
        let delays: Vec<Duration> = (0..20).map(|_| backoff.next_delay()).collect();
        let capped = delays.iter().filter(|d| **d > MAX_DELAY / 2).count();
        assert!(capped >= 10, "{delays:?}");
        let first_capped = delays.iter().skip(10).collect::<Vec<_>>();
        let all_same = first_capped.windows(2).all(|w| w.first() == w.get(1));
        assert!(!all_same, "no jitter in {first_capped:?}");
    }

    #[test]
    fn a_reset_starts_over() {
        let mut backoff = Backoff::with_seed(3);
        for _ in 0..10 {
            backoff.next_delay();
        }
        backoff.reset();
        assert!(backoff.next_delay() <= INITIAL_DELAY);
    }
}
