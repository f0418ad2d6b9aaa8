//! Flood control: a token bucket per connection.
//!
//! Policy: each line a client sends takes one token; tokens come back at
//! `--rate` a second up to `--burst`. When a client has no token left the
//! event loop simply stops reading its socket until one has come back. No
//! line is dropped and no error is sent: the bytes wait in the kernel, TCP
//! flow control slows the sender, and a flooder only slows itself down
//! while everyone else is read as usual.
//!
//! Output a command buys is paid from the same allowance: a reply to the
//! asker alone (`/who`, `/rooms`, `/help`) costs one more token per
//! [`REPLY_BYTES_PER_TOKEN`] bytes past its first ones, so no client can
//! buy megabytes of output with a few bytes of input. The bucket may go
//! into debt for it; the client is then not read until the debt is paid.

use std::time::{Duration, Instant};

use crate::net::timers::later;

/// Bytes of a reply that one token pays for. A line of input costs one
/// token and buys this much of an answer; every further started block of
/// this size costs one token more. 1 KiB is a `/help` or a short `/who`;
/// a full page of `/who` (100 nicks) costs two or three tokens.
pub const REPLY_BYTES_PER_TOKEN: usize = 1024;

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
        if self.rate.is_none() {
            return true;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether a token is there now (taking nothing).
    pub fn has_token(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.rate.is_none() || self.tokens >= 1.0
    }

    /// Whether the bucket is full at `now`: it has not been drawn on for a
    /// while, and forgetting it changes nothing.
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.rate.is_none() || self.tokens >= self.burst
    }

    /// Charges the cost of a reply of `bytes` bytes (see
    /// [`REPLY_BYTES_PER_TOKEN`]): the tokens it costs beyond the one its
    /// command took. The bucket may go into debt.
    pub fn charge_reply(&mut self, bytes: usize, now: Instant) {
        if self.rate.is_none() {
            return;
        }
        let extra = bytes.saturating_sub(1) / REPLY_BYTES_PER_TOKEN;
        if extra > 0 {
            self.refill(now);
            // Precision does not matter here: a reply of 2^53 bytes does
            // not exist, and if it did the debt would only be larger.
            #[allow(clippy::cast_precision_loss)]
            let extra = extra as f64;
            self.tokens -= extra;
        }
    }

    /// Brings `tokens` up to date at `now`.
    fn refill(&mut self, now: Instant) {
        if let Some(rate) = self.rate {
            let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(self.burst);
            self.last = now;
        }
    }

    /// When the next token will be there, as of the last [`Self::try_take`].
    pub fn next_token_at(&self) -> Instant {
        match self.rate {
            Some(rate) => {
                let wait = Duration::try_from_secs_f64(((1.0 - self.tokens) / rate).max(0.0));
                later(self.last, wait.unwrap_or(Duration::MAX))
            }
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
    fn a_big_reply_puts_the_bucket_in_debt_until_paid() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 2, start);
        assert!(bucket.try_take(start));
        bucket.charge_reply(REPLY_BYTES_PER_TOKEN, start);
        assert!(bucket.try_take(start), "a reply of one block costs nothing more");
        bucket.charge_reply(5 * REPLY_BYTES_PER_TOKEN, start);
        // Four tokens of debt, and one more is needed: 0.5 s at 10 a second.
        assert!(!bucket.try_take(start + Duration::from_millis(400)));
        assert_eq!(bucket.next_token_at(), start + Duration::from_millis(500));
        assert!(bucket.try_take(start + Duration::from_millis(500)));
    }

    #[test]
    fn without_flood_control_replies_cost_nothing() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(0, 1, now);
        bucket.charge_reply(1 << 20, now);
        assert!(bucket.try_take(now));
    }

    #[test]
    fn rate_zero_means_no_limit() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(0, 1, now);
        assert!((0..10_000).all(|_| bucket.try_take(now)));
    }
}
