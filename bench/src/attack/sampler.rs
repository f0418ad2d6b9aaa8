//! A thread that reads the daemon's resident memory, open descriptors and
//! CPU time from `/proc` at a fixed interval while an attack runs, so a
//! report can give a peak, a rate of growth or a curve rather than two
//! readings.
//!
//! It reads by pid, not through the [`super::daemon::Daemon`] handle (which
//! the attack keeps), and records `None` once the process is gone: a
//! daemon that dies mid-attack leaves a curve that stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::procfs;

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the attack's base.
    pub t: f64,
    /// VmRSS, KiB.
    pub rss_kib: Option<u64>,
    /// Open descriptors.
    pub fds: Option<u64>,
    /// CPU seconds used so far, all threads.
    pub cpu_s: Option<f64>,
}

/// The sampling thread.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Sample>>>,
}

impl Sampler {
    /// Samples `pid` every `interval` until finished or `lifetime`.
    pub fn start(pid: u32, base: Instant, interval: Duration, lifetime: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::Builder::new()
            .name("sampler".to_string())
            .spawn(move || {
                let deadline = Instant::now() + lifetime;
                let mut samples = Vec::new();
                let mut next = Instant::now();
                // One reading per interval, until stopped or the deadline.
                while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                    samples.push(read(pid, base));
                    next += interval;
                    let now = Instant::now();
                    // The interval is the measurement's resolution.
                    if next > now {
                        thread::sleep(next - now);
                    }
                }
                samples.push(read(pid, base));
                samples
            })
            .ok();
        Sampler { stop, handle }
    }

    /// Stops and returns the readings.
    pub fn finish(mut self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        Samples(self.handle.take().and_then(|h| h.join().ok()).unwrap_or_default())
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads the process now.
fn read(pid: u32, base: Instant) -> Sample {
    let alive = procfs::is_alive(pid);
    Sample {
        t: base.elapsed().as_secs_f64(),
        rss_kib: alive.then(|| procfs::vm_rss_kib(pid).ok()).flatten(),
        fds: alive.then(|| procfs::fd_count(pid)).flatten(),
        cpu_s: alive.then(|| procfs::process_ticks(pid) as f64 / procfs::TICKS_PER_SEC),
    }
}

/// The readings of a run.
#[derive(Debug, Clone, Default)]
pub struct Samples(pub Vec<Sample>);

impl Samples {
    fn between(&self, from: f64, to: f64) -> impl Iterator<Item = &Sample> {
        self.0.iter().filter(move |s| s.t >= from && s.t <= to)
    }

    /// The highest RSS (KiB) between two times, and when it was first
    /// reached.
    pub fn peak_rss(&self, from: f64, to: f64) -> Option<(u64, f64)> {
        first_max(self.between(from, to).filter_map(|s| Some((s.rss_kib?, s.t))))
    }

    /// The most descriptors between two times, and when first reached.
    pub fn peak_fds(&self, from: f64, to: f64) -> Option<(u64, f64)> {
        first_max(self.between(from, to).filter_map(|s| Some((s.fds?, s.t))))
    }

    /// The reading nearest to time `t` with a value from `value`.
    pub fn at<T>(&self, t: f64, value: impl Fn(&Sample) -> Option<T>) -> Option<T> {
        self.0
            .iter()
            .filter(|s| value(s).is_some())
            .min_by(|a, b| (a.t - t).abs().total_cmp(&(b.t - t).abs()))
            .and_then(value)
    }

    /// A curve for the report: (seconds since `from`, value) every `step`
    /// seconds between `from` and `to`.
    pub fn curve(
        &self,
        from: f64,
        to: f64,
        step: f64,
        value: impl Fn(&Sample) -> Option<f64>,
    ) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        let mut next = from;
        for s in self.between(from, to) {
            if s.t + 1e-9 >= next {
                if let Some(v) = value(s) {
                    out.push((round2(s.t - from), round2(v)));
                    next = s.t + step;
                }
            }
        }
        out
    }

    /// CPU percent of one core in each `step`-second slice between `from`
    /// and `to`.
    pub fn cpu_percent(&self, from: f64, to: f64, step: f64) -> Vec<f64> {
        let points: Vec<(f64, f64)> = self
            .between(from, to)
            .filter_map(|s| Some((s.t, s.cpu_s?)))
            .collect();
        let mut out = Vec::new();
        let Some(&(mut t0, mut c0)) = points.first() else {
            return out;
        };
        for &(t, c) in &points {
            if t - t0 + 1e-9 >= step {
                out.push(((c - c0) / (t - t0) * 1000.0).round() / 10.0);
                t0 = t;
                c0 = c;
            }
        }
        out
    }
}

/// The highest value and the first time it was seen.
fn first_max(points: impl Iterator<Item = (u64, f64)>) -> Option<(u64, f64)> {
    points.fold(None, |best, point| match best {
        Some((value, _)) if value >= point.0 => best,
        _ => Some(point),
    })
}

/// Rounds to two decimals.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, rss: u64, cpu: f64) -> Sample {
        Sample {
            t,
            rss_kib: Some(rss),
            fds: Some(rss / 10),
            cpu_s: Some(cpu),
        }
    }

    #[test]
    fn peaks_curves_and_cpu_come_from_the_readings() {
        let samples = Samples(vec![
            sample(0.0, 100, 0.0),
            sample(0.5, 300, 0.5),
            sample(1.0, 200, 1.0),
            sample(1.5, 250, 1.25),
            sample(2.0, 250, 1.5),
        ]);
        assert_eq!(samples.peak_rss(0.0, 2.0), Some((300, 0.5)));
        assert_eq!(samples.peak_rss(0.8, 2.0), Some((250, 1.5)));
        assert_eq!(samples.peak_fds(0.0, 2.0), Some((30, 0.5)));
        assert_eq!(samples.at(1.1, |s| s.rss_kib), Some(200));
        assert_eq!(
            samples.curve(0.0, 2.0, 1.0, |s| s.rss_kib.map(|r| r as f64)),
            [(0.0, 100.0), (1.0, 200.0), (2.0, 250.0)]
        );
        // One full core for the first second, half a core for the next.
        assert_eq!(samples.cpu_percent(0.0, 2.0, 1.0), [100.0, 50.0]);
    }
}
