//! Exactly-once, in-order accounting and latency percentiles.
//!
//! Every receiver keeps one [`SeqTrack`] per sender: the server promises
//! that one sender's lines reach each member once and in order, so each
//! track can tell a lost line (never came), a duplicate (came twice) and an
//! out-of-order line (came after a later one) apart with a counter and a
//! small set of gaps, not a bitmap of every line. Latencies go into an
//! HdrHistogram per thread ([`Latency`]), merged at the end, so millions of
//! deliveries cost a few tens of KiB and the percentiles are exact to three
//! significant digits.

use std::collections::BTreeSet;

use hdrhistogram::Histogram;
use serde::Serialize;

/// At most this many missing sequence numbers are remembered per track;
/// past it, further gaps are only counted (and cannot be told from late
/// lines any more).
const MAX_GAPS: usize = 4096;

/// One receiver's view of one sender's stream.
#[derive(Debug, Clone, Default)]
pub struct SeqTrack {
    /// The sequence number expected next: one past the highest seen.
    next: u64,
    /// Numbers below `next` that have not arrived (yet).
    gaps: BTreeSet<u64>,
    /// Missing numbers not kept in `gaps` because it was full.
    gap_overflow: u64,
    /// Distinct lines received.
    received: u64,
    /// Lines received a second time.
    duplicates: u64,
    /// Lines that arrived after a later one from the same sender.
    out_of_order: u64,
}

impl SeqTrack {
    /// Records line `seq`; returns true when it is a first delivery.
    pub fn record(&mut self, seq: u64) -> bool {
        if seq == self.next {
            self.next += 1;
        } else if seq > self.next {
            let missing = seq - self.next;
            let room = MAX_GAPS.saturating_sub(self.gaps.len());
            let keep = usize::try_from(missing).unwrap_or(usize::MAX).min(room);
            // Bounded by MAX_GAPS insertions per track in all.
            self.gaps.extend((self.next..seq).take(keep));
            self.gap_overflow += missing.saturating_sub(keep as u64);
            self.next = seq + 1;
        } else if self.gaps.remove(&seq) {
            self.out_of_order += 1;
        } else {
            self.duplicates += 1;
            return false;
        }
        self.received += 1;
        true
    }

    /// Distinct lines received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Lines of the `sent` the sender sent that never arrived.
    pub fn lost(&self, sent: u64) -> u64 {
        self.gaps.len() as u64 + self.gap_overflow + sent.saturating_sub(self.next)
    }

    /// Lines received twice.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Lines that came after a later line of the same sender.
    pub fn out_of_order(&self) -> u64 {
        self.out_of_order
    }
}

/// Tallies of a run's deliveries, summed over receivers and senders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Integrity {
    /// First deliveries (a line to one receiver counts once).
    pub delivered: u64,
    /// Deliveries that should have happened and did not.
    pub lost: u64,
    /// Deliveries that happened twice.
    pub duplicated: u64,
    /// Deliveries that came after a later line of the same sender.
    pub out_of_order: u64,
    /// Stamped lines naming a sender that does not exist.
    pub foreign: u64,
}

impl Integrity {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Integrity) {
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.foreign += other.foreign;
    }

    /// True when every expected delivery happened exactly once, in order.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.out_of_order == 0 && self.foreign == 0
    }
}

/// Highest latency recorded exactly: one minute. Anything slower is
/// clamped to it (and the run is broken anyway).
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// A latency histogram in nanoseconds.
#[derive(Debug, Clone)]
pub struct Latency(Option<Histogram<u64>>);

impl Latency {
    /// An empty histogram, 1 ns to 60 s, three significant digits.
    pub fn new() -> Latency {
        // The bounds are constants that `new_with_bounds` accepts (low >= 1,
        // high >= 2 * low, sigfig <= 5), so it is always `Some`; the Option
        // only keeps a panic path out.
        Latency(Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).ok())
    }

    /// Records one latency.
    pub fn record(&mut self, nanos: u64) {
        if let Some(h) = &mut self.0 {
            h.saturating_record(nanos.clamp(1, MAX_LATENCY_NS));
        }
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Latency) {
        if let (Some(mine), Some(theirs)) = (&mut self.0, &other.0) {
            // Same bounds on both sides, so `add` cannot fail.
            let _ = mine.add(theirs);
        }
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.0.as_ref().map_or(0, |h| h.len())
    }

    /// The percentiles in microseconds.
    pub fn summary(&self) -> LatencySummary {
        let Some(h) = &self.0 else {
            return LatencySummary::default();
        };
        let us = |ns: u64| ns as f64 / 1000.0;
        let q = |quantile: f64| us(h.value_at_quantile(quantile));
        LatencySummary {
            samples: h.len(),
            min_us: us(h.min()),
            mean_us: h.mean() / 1000.0,
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: us(h.max()),
        }
    }
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

/// Latency percentiles of a run, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Number of deliveries timed.
    pub samples: u64,
    /// Fastest.
    pub min_us: f64,
    /// Average.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Slowest.
    pub max_us: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_is_clean() {
        let mut t = SeqTrack::default();
        for n in 0..100 {
            assert!(t.record(n));
        }
        assert_eq!(
            (t.received(), t.lost(100), t.duplicates(), t.out_of_order()),
            (100, 0, 0, 0)
        );
        assert_eq!(t.lost(103), 3, "the last three never came");
    }

    #[test]
    fn gaps_duplicates_and_late_lines_are_told_apart() {
        let mut t = SeqTrack::default();
        for n in [0, 1, 4, 2, 2, 5, 0] {
            t.record(n);
        }
        // 3 never came; 2 came late, then again; 0 came again.
        assert_eq!(t.received(), 5);
        assert_eq!(t.lost(6), 1);
        assert_eq!(t.out_of_order(), 1);
        assert_eq!(t.duplicates(), 2);
    }

    #[test]
    fn a_huge_jump_is_counted_not_stored() {
        let mut t = SeqTrack::default();
        t.record(1_000_000);
        assert_eq!(t.lost(1_000_001), 1_000_000);
        assert!(t.gaps.len() <= MAX_GAPS);
    }

    #[test]
    fn histograms_merge() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        for v in 1..=1000 {
            a.record(v * 1000);
            b.record(v * 2000);
        }
        a.merge(&b);
        assert_eq!(a.count(), 2000);
        let s = a.summary();
        assert!(s.p50_us > 600.0 && s.p50_us < 750.0, "{s:?}");
        assert!(s.max_us > 1990.0, "{s:?}");
    }
}
