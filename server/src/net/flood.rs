//! Flood control: a token bucket per connection.
//!
//! Policy: each line a client sends takes one token; tokens come back at
//! `--rate` a second up to `--burst`. When a client has no token left the
//! event loop simply stops reading its socket until one has come back. No
//! line is dropped and no error is sent: the bytes wait in the kernel, TCP
//! flow control slows the sender, and a flooder only slows itself down
//! while everyone else is read as usual.

use std::time::{Duration, Instant};

/// One connection's allowance of lines.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Tokens added per second; `None` when flood control is off.
    rate: Option<f64>,
    /// Most tokens the bucket holds.
    burst: f64,
    /// Tokens now (as of `last`).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `rate` a second; a rate
    /// of 0 means no limit.
    pub fn new(rate: u32, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: (rate > 0).then_some(f64::from(rate)),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let Some(rate) = self.rate else { return true };
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token will be there, as of the last [`Self::try_take`].
    pub fn next_token_at(&self) -> Instant {
        match self.rate {
            Some(rate) => self.last + Duration::from_secs_f64(((1.0 - self.tokens) / rate).max(0.0)),
            None => self.last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_rate_applies() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 3, start);
        assert!((0..3).all(|_| bucket.try_take(start)));
        assert!(!bucket.try_take(start));
        assert_eq!(bucket.next_token_at(), start + Duration::from_millis(100));
        assert!(!bucket.try_take(start + Duration::from_millis(50)));
        assert!(bucket.try_take(start + Duration::from_millis(100)));
        assert!(!bucket.try_take(start + Duration::from_millis(100)));
    }

    #[test]
    fn the_bucket_never_holds_more_than_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 2, start);
        let later = start + Duration::from_secs(3600);
        assert!(bucket.try_take(later) && bucket.try_take(later));
        assert!(!bucket.try_take(later));
    }

    #[test]
    fn rate_zero_means_no_limit() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(0, 1, now);
        assert!((0..10_000).all(|_| bucket.try_take(now)));
    }
}
