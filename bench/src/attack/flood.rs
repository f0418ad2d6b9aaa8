//! flood (issue 12, item 5): a hub behind its input.
//!
//! With flood control off (`--rate 0`), 16 connections from one address
//! write chat lines into the lobby as fast as their sockets take them for
//! 10 s, and read what the others say (a flooder that stopped reading
//! would only be dropped as a slow consumer, which is not this attack).
//! A flooder the daemon drops is replaced, as in the storms. Meanwhile
//! the pair exchanges timestamped lines in another room. The daemon's RSS
//! is read every 250 ms: its growth during the flood, its peak, and what
//! is left some seconds after the flood stops (the flooders stay
//! connected, reading, until then).

use std::time::Duration;

use serde::Serialize;

use super::addrs::{self, Sources};
use super::cli::{pick, FloodArgs};
use super::crowd::{Crowd, GroupSnapshot, GroupSpec};
use super::pair::{Latency3, Pair};
use super::sampler::{round2, Sampler};
use super::storm::{latency_text, opt};
use super::{chunk_of, hold_for, line_of, mib, nanos, run_part, secs, Ctx, Outcome, Setup};
use crate::error::Result;

/// Bytes of the chunk each flooder writes over and over.
const CHUNK: usize = 4096;

/// The figures of a flood.
#[derive(Debug, Serialize)]
pub struct FloodReport {
    /// Flooders in place when the flood began.
    pub flooders: u64,
    /// Seconds of flood.
    pub duration_s: f64,
    /// Bytes of each line.
    pub line_len: usize,
    /// Bytes the flooders wrote.
    pub bytes_written: u64,
    /// RSS when the flood began, MiB.
    pub rss_start_mib: Option<f64>,
    /// RSS when it ended, MiB.
    pub rss_end_mib: Option<f64>,
    /// (end − start) ÷ duration, MiB/s.
    pub rss_growth_mib_per_s: Option<f64>,
    /// Highest RSS, MiB, from the start of the flood to the reading after.
    pub rss_peak_mib: Option<f64>,
    /// When it peaked, seconds after the flood began.
    pub rss_peak_at_s: Option<f64>,
    /// RSS some seconds after the flood stopped, MiB.
    pub rss_after_mib: Option<f64>,
    /// How long after, seconds.
    pub rss_after_s: f64,
    /// (seconds since the flood began, RSS MiB), every half second.
    pub rss_curve_mib: Vec<(f64, f64)>,
    /// The other room's latency, lines sent during the flood.
    pub pair: Latency3,
    /// Flooders the daemon closed or reset (each replaced).
    pub flooders_dropped: u64,
    /// The flooders' connections.
    pub flooder_group: GroupSnapshot,
}

/// Runs the flood.
///
/// # Errors
/// When the attack cannot be set up.
pub fn run(ctx: &Ctx, args: &FloodArgs) -> Result<()> {
    let q = ctx.quick();
    let flooders = pick(args.flooders, q, 16, 4) as usize;
    let duration = Duration::from_secs(pick(args.duration, q, 10, 2));
    let after = Duration::from_secs(pick(args.after, q, 5, 1));
    let line_len = pick(args.line_len, q, 64, 64) as usize;
    let pair_rate = f64::from(pick(args.pair_rate, q, 20, 20));
    let drain = Duration::from_secs(pick(args.drain, q, 20, 5));
    let setup = Setup {
        needs: vec![("--rate", "0".to_string())],
        metrics: false,
    };
    run_part(ctx, "flood", None, setup, |daemon, base| {
        let lifetime = duration + after + drain + Duration::from_secs(60);
        let mut crowd = Crowd::start(daemon.addr, 2, 64, base, lifetime)?;
        let spec = GroupSpec {
            persistent: true,
            ..GroupSpec::idle(flooders, Sources::Fixed(addrs::ATTACKER))
        };
        let group = crowd.open(spec)?;
        crowd.wait_settled(group, Duration::from_secs(30));
        crowd.expect_all(group, flooders, "flooders")?;
        let stats = crowd.stats(group);
        let ready = stats.live_ready();
        let mut pair = Pair::start(daemon.addr, "quiet", pair_rate, base, lifetime)?;
        let watch = Sampler::start(daemon.pid, base, Duration::from_millis(250), lifetime);
        let chunk = chunk_of(&line_of("flood ", line_len), CHUNK);
        let (out0, ended0) = (stats.bytes_out(), stats.ended());

        eprintln!("chat-attack: flood for {} s", duration.as_secs());
        let rss_start = daemon.rss_kib();
        let (t0, start_s) = (nanos(base), secs(base));
        crowd.repeat(group, Some(&chunk));
        hold_for(daemon, duration);
        crowd.repeat(group, None);
        let (t1, end_s) = (nanos(base), secs(base));
        let rss_end = daemon.rss_kib();
        let written = stats.bytes_out() - out0;
        let dropped = stats.ended() - ended0;
        pair.stop_sending();
        hold_for(daemon, after);
        let rss_after = daemon.rss_kib();
        let rss_after_s = round2(secs(base) - end_s);
        pair.wait_delivered(drain.saturating_sub(after));
        crowd.close(group);
        let samples = watch.finish();
        let outcome = pair.finish();
        let latency = outcome.window(t0, t1);
        let took = (end_s - start_s).max(0.001);
        let growth = match (rss_start, rss_end) {
            (Some(a), Some(b)) => Some(round2((b as f64 - a as f64) / 1024.0 / took)),
            _ => None,
        };
        let peak = samples.peak_rss(start_s, start_s + took + rss_after_s);
        let report = FloodReport {
            flooders: ready,
            duration_s: round2(took),
            line_len,
            bytes_written: written,
            rss_start_mib: rss_start.map(mib),
            rss_end_mib: rss_end.map(mib),
            rss_growth_mib_per_s: growth,
            rss_peak_mib: peak.map(|(kib, _)| mib(kib)),
            rss_peak_at_s: peak.map(|(_, t)| round2(t - start_s)),
            rss_after_mib: rss_after.map(mib),
            rss_after_s,
            rss_curve_mib: samples.curve(start_s, f64::MAX, 0.5, |s| s.rss_kib.map(|k| k as f64 / 1024.0)),
            pair: latency.clone(),
            flooders_dropped: dropped,
            flooder_group: stats.snapshot(),
        };
        let summary = vec![
            format!(
                "{ready} flooders from {} for {took:.1} s, {line_len}-byte lines, {written} bytes written; \
                 {dropped} dropped and replaced",
                addrs::ATTACKER
            ),
            format!(
                "RSS {} MiB → {} MiB ({} MiB/s), peak {} MiB at {} s; {} MiB {rss_after_s:.1} s after",
                opt(report.rss_start_mib),
                opt(report.rss_end_mib),
                opt(growth),
                opt(report.rss_peak_mib),
                opt(report.rss_peak_at_s),
                opt(report.rss_after_mib)
            ),
            format!("other room: {}", latency_text(&latency)),
        ];
        Ok(Outcome {
            summary,
            figures: report,
        })
    })
}
