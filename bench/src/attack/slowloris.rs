//! slowloris (issue 12, item 13): holding the server full with sockets
//! that say nothing.
//!
//! - **a**: 10,050 connections from 315 loopback addresses, 32 each (the
//!   default per-address limit), opened as fast as possible, that read
//!   their first line and then say nothing. The time until the server is
//!   full (the first `!! server full`; other refusals, such as a
//!   connection throttle's, are counted apart), then what a new user gets,
//!   once a second for 10 s.
//! - **b**: with `--idle-timeout 15`, 50 connections that send one byte
//!   (no newline) every 10 s, and a few that send nothing at all as a
//!   control (they must be closed at the timeout, or the timeout is not
//!   on): how many of each are still connected after 40 s.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::addrs::{self, Sources};
use super::cli::{pick, Part, SlowlorisArgs};
use super::crowd::{Crowd, GroupSnapshot, GroupSpec};
use super::probe::{self, Probe};
use super::sampler::round2;
use super::storm::opt;
use super::{hold_for, run_part, run_parts, secs, Ctx, Outcome, Setup};
use crate::error::Result;

/// How long a fresh user waits for its first line.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for every silent connection to get its first line.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The figures of part a.
#[derive(Debug, Serialize)]
pub struct FullReport {
    /// Silent connections attempted.
    pub conns: u64,
    /// Source addresses.
    pub addresses: usize,
    /// Of them, welcomed (and holding a place).
    pub welcomed: u64,
    /// Of them, refused (for any reason).
    pub refused: u64,
    /// Of them, refused with `!! server full`.
    pub refused_full: u64,
    /// Seconds from the first connect to the first `server full`.
    pub full_after_s: Option<f64>,
    /// Seconds until every connection had its first line (or failed).
    pub settled_after_s: f64,
    /// The first refusal line.
    pub refusal_line: Option<String>,
    /// What a new user got, once a second.
    pub probes: Vec<Probe>,
    /// How many of them were served.
    pub probes_served: usize,
    /// The silent connections.
    pub group: GroupSnapshot,
}

/// The figures of part b.
#[derive(Debug, Serialize)]
pub struct DripReport {
    /// The daemon's `--idle-timeout`, seconds.
    pub idle_timeout_s: u64,
    /// Connections sending a byte at a time.
    pub drippers: u64,
    /// Seconds between their bytes.
    pub drip_every_s: u64,
    /// Silent connections beside them.
    pub silent: u64,
    /// Seconds after which they are counted.
    pub observe_s: u64,
    /// Drippers still connected then.
    pub drippers_connected: u64,
    /// Silent ones still connected then.
    pub silent_connected: u64,
    /// When the first and last dripper was closed, seconds after they
    /// connected.
    pub drippers_closed_s: (Option<f64>, Option<f64>),
    /// When the first and last silent one was closed.
    pub silent_closed_s: (Option<f64>, Option<f64>),
    /// (seconds, drippers connected, silent connected), once a second.
    pub curve: Vec<(f64, u64, u64)>,
}

/// Runs slowloris.
///
/// # Errors
/// When a part fails.
pub fn run(ctx: &Ctx, args: &SlowlorisArgs) -> Result<()> {
    run_parts(&[Part::A, Part::B], args.part, |part| match part {
        Part::B => run_drip(ctx, args),
        _ => run_full(ctx, args),
    })
}

fn run_full(ctx: &Ctx, args: &SlowlorisArgs) -> Result<()> {
    let q = ctx.quick();
    let conns = pick(args.conns, q, 10_050, 400) as usize;
    let per_addr = pick(args.per_addr, q, 32, 32) as usize;
    let probe_for = pick(args.probe_for, q, 10, 2);
    let setup = Setup {
        needs: if q {
            vec![("--max-clients", "300".to_string())]
        } else {
            Vec::new()
        },
        metrics: false,
    };
    run_part(ctx, "slowloris", Some(Part::A), setup, |daemon, base| {
        let lifetime = OPEN_TIMEOUT + Duration::from_secs(probe_for + 60);
        let mut crowd = Crowd::start(daemon.addr, 2, 256, base, lifetime)?;
        let sources = Sources::pool(addrs::POOL_SLOW, per_addr);
        eprintln!("chat-attack: {conns} silent connections");
        let start_s = secs(base);
        let group = crowd.open(GroupSpec::idle(conns, sources).counting("server full"))?;
        crowd.wait_settled(group, OPEN_TIMEOUT);
        let settled_s = round2(secs(base) - start_s);
        let stats = crowd.stats(group);
        let mut probes = Vec::new();
        let first = Instant::now();
        for k in 0..probe_for {
            let due = first + Duration::from_secs(k);
            hold_for(daemon, due.saturating_duration_since(Instant::now()));
            probes.push(probe::fresh_user(daemon.addr, base, PROBE_TIMEOUT));
        }
        let snap = stats.snapshot();
        let served = probes.iter().filter(|p| p.outcome == "served").count();
        let report = FullReport {
            conns: snap.attempted,
            addresses: sources.addresses(conns),
            welcomed: snap.welcomed,
            refused: snap.refused,
            refused_full: snap.matched,
            full_after_s: snap.first_match_s.map(|t| round2(t - start_s)),
            settled_after_s: settled_s,
            refusal_line: snap.refusal_line.clone(),
            probes,
            probes_served: served,
            group: snap,
        };
        let outcomes: Vec<&str> = report.probes.iter().map(|p| p.outcome.as_str()).collect();
        let summary = vec![
            format!(
                "{} silent connections from {} addresses: {} welcomed, {} refused, {} of them as full (first: {})",
                report.conns,
                report.addresses,
                report.welcomed,
                report.refused,
                report.refused_full,
                opt(report.refusal_line.clone())
            ),
            format!(
                "full after {} s; all answered after {settled_s:.1} s",
                opt(report.full_after_s)
            ),
            format!(
                "a new user each second: {} of {} served: {outcomes:?}",
                served,
                report.probes.len()
            ),
        ];
        Ok(Outcome {
            summary,
            figures: report,
        })
    })
}

fn run_drip(ctx: &Ctx, args: &SlowlorisArgs) -> Result<()> {
    let q = ctx.quick();
    let idle_timeout = pick(args.idle_timeout, q, 15, 2);
    let drippers = pick(args.drippers, q, 50, 5) as usize;
    let drip_every = pick(args.drip_every, q, 10, 1);
    let silent = pick(args.silent, q, 5, 2) as usize;
    let observe = pick(args.observe, q, 40, 5);
    let setup = Setup {
        needs: vec![("--idle-timeout", idle_timeout.to_string())],
        metrics: false,
    };
    run_part(ctx, "slowloris", Some(Part::B), setup, |daemon, base| {
        let lifetime = Duration::from_secs(observe + 60);
        let mut crowd = Crowd::start(daemon.addr, 1, 64, base, lifetime)?;
        let drip = crowd.open(GroupSpec {
            persistent: true,
            ..GroupSpec::idle(drippers, Sources::pool(addrs::POOL_DRIP, addrs::SPREAD))
        })?;
        let quiet = crowd.open(GroupSpec {
            persistent: true,
            ..GroupSpec::idle(
                silent,
                Sources::Pool {
                    pool: addrs::POOL_DRIP,
                    per_addr: addrs::SPREAD,
                    first: 200,
                },
            )
        })?;
        crowd.wait_settled(drip, Duration::from_secs(30));
        crowd.wait_settled(quiet, Duration::from_secs(30));
        crowd.expect_all(drip, drippers, "drippers")?;
        crowd.expect_all(quiet, silent, "silent connections")?;
        let (ds, qs) = (crowd.stats(drip), crowd.stats(quiet));
        eprintln!(
            "chat-attack: {drippers} connections sending a byte every {drip_every} s, --idle-timeout {idle_timeout}, \
             for {observe} s"
        );
        let start = Instant::now();
        let start_s = secs(base);
        let mut curve = Vec::new();
        let mut next_drip = drip_every;
        for second in 1..=observe {
            hold_for(
                daemon,
                (start + Duration::from_secs(second)).saturating_duration_since(Instant::now()),
            );
            if second == next_drip && second < observe {
                crowd.send(drip, b"x");
                next_drip += drip_every;
            }
            curve.push((second as f64, ds.live_ready(), qs.live_ready()));
        }
        let (d, s) = (ds.snapshot(), qs.snapshot());
        let since = |t: Option<f64>| t.map(|t| round2(t - start_s));
        let report = DripReport {
            idle_timeout_s: idle_timeout,
            drippers: drippers as u64,
            drip_every_s: drip_every,
            silent: silent as u64,
            observe_s: observe,
            drippers_connected: ds.live_ready(),
            silent_connected: qs.live_ready(),
            drippers_closed_s: (since(d.first_end_s), since(d.last_end_s)),
            silent_closed_s: (since(s.first_end_s), since(s.last_end_s)),
            curve,
        };
        let summary = vec![
            format!(
                "--idle-timeout {idle_timeout}: after {observe} s, {} of {drippers} connections sending one byte \
                 every {drip_every} s are still connected",
                report.drippers_connected
            ),
            format!(
                "control: {} of {silent} silent connections still connected (closed at {} s)",
                report.silent_connected,
                opt(report.silent_closed_s.1)
            ),
        ];
        Ok(Outcome {
            summary,
            figures: report,
        })
    })
}
