//! The slowest receiver's count of one sender's lines, kept cheaply.
//!
//! In the fan-out scenario a sender may be at most W lines ahead of the
//! slowest receiver. Each generator thread owns a share of the receivers
//! and publishes, per sender, the minimum of its receivers' counts. Taking
//! that minimum over 50-500 receivers after every read would cost more
//! than the reading; [`MinTracker`] keeps the minimum and how many
//! receivers sit at it, and rescans only when the last of them moves on,
//! which happens once per "round" of the slowest receivers.

/// Minimum of a set of non-decreasing counters.
#[derive(Debug, Clone)]
pub struct MinTracker {
    /// The counter of each slot; `u64::MAX` for a slot that does not count
    /// (the sender itself, a dead connection).
    counts: Vec<u64>,
    /// The smallest counter.
    min: u64,
    /// How many slots hold `min`.
    at_min: usize,
}

impl MinTracker {
    /// `slots` counters, all at zero, except those for which `excluded`
    /// says true.
    pub fn new(slots: usize, excluded: impl Fn(usize) -> bool) -> MinTracker {
        let counts = (0..slots)
            .map(|i| if excluded(i) { u64::MAX } else { 0 })
            .collect();
        let mut tracker = MinTracker {
            counts,
            min: 0,
            at_min: 0,
        };
        tracker.rescan();
        tracker
    }

    /// Sets slot `slot` to `value` (never lower than before). Returns true
    /// when the minimum rose.
    pub fn set(&mut self, slot: usize, value: u64) -> bool {
        let Some(count) = self.counts.get_mut(slot) else {
            return false;
        };
        let old = *count;
        if value <= old {
            return false;
        }
        *count = value;
        if old == self.min {
            self.at_min = self.at_min.saturating_sub(1);
            if self.at_min == 0 {
                let before = self.min;
                self.rescan();
                return self.min > before;
            }
        }
        false
    }

    /// Takes slot `slot` out of the minimum for good.
    pub fn exclude(&mut self, slot: usize) -> bool {
        self.set(slot, u64::MAX)
    }

    /// The minimum; `u64::MAX` when no slot counts.
    pub fn min(&self) -> u64 {
        self.min
    }

    fn rescan(&mut self) {
        self.min = self.counts.iter().copied().min().unwrap_or(u64::MAX);
        self.at_min = self.counts.iter().filter(|&&c| c == self.min).count();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_follows_the_slowest() {
        let mut m = MinTracker::new(4, |i| i == 2);
        assert_eq!(m.min(), 0);
        assert!(!m.set(0, 5));
        assert!(!m.set(1, 3));
        assert!(m.set(3, 4), "last slot at 0 moved");
        assert_eq!(m.min(), 3);
        assert!(m.set(1, 10));
        assert_eq!(m.min(), 4);
        assert!(m.exclude(3));
        assert_eq!(m.min(), 5);
        assert!(!m.set(0, 1), "counters never go down");
        assert!(m.exclude(0) && m.exclude(1));
        assert_eq!(m.min(), u64::MAX);
    }

    #[test]
    fn no_slots_means_no_limit() {
        assert_eq!(MinTracker::new(0, |_| false).min(), u64::MAX);
        assert_eq!(MinTracker::new(1, |_| true).min(), u64::MAX);
    }
}
