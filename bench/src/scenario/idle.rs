//! Idle connections: what one costs the server in memory, and how many it
//! holds.
//!
//! `idle` reads the server's VmRSS, opens N connections (spread over
//! worker processes if asked), waits for the connect announcements to stop
//! flowing, and reads VmRSS again: the difference over N is the user-space
//! cost of a connection (kernel socket buffers are not in RSS). `ramp`
//! does the same in steps until a connection fails, the server dies, a
//! step is too slow or the maximum is reached, giving the capacity.

use std::time::Instant;

use serde::Serialize;

use super::join::open_spread;
use super::pool::{self, Pool};
use crate::args::{IdleArgs, RampArgs, TargetArgs};
use crate::error::Result;
use crate::report::{self, Header};
use crate::target::Target;

/// The JSON line of an idle run.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// Common fields.
    #[serde(flatten)]
    pub header: Header,
    /// Connections asked for.
    pub requested: u32,
    /// Connections open at the end.
    pub held: usize,
    /// Connections that failed to open.
    pub failed: usize,
    /// Connections that died after opening.
    pub died: usize,
    /// Seconds to open them and for the announcements to drain.
    pub open_s: f64,
    /// Server RSS before, KiB.
    pub rss_before_kib: Option<u64>,
    /// Server RSS after, KiB.
    pub rss_after_kib: Option<u64>,
    /// (after − before) / held, bytes.
    pub rss_per_conn_bytes: Option<f64>,
    /// The server was still running at the end.
    pub server_alive: bool,
    /// Worker processes used.
    pub workers: u16,
}

fn per_conn(before: Option<u64>, after: Option<u64>, conns: usize) -> Option<f64> {
    let (b, a) = (before?, after?);
    (conns > 0).then(|| (a as f64 - b as f64) * 1024.0 / conns as f64)
}

/// Runs `idle`.
///
/// # Errors
/// When the pools cannot be started or a worker fails.
pub fn run_idle(target: &mut Target, args: &TargetArgs, i: &IdleArgs) -> Result<()> {
    let rss_before = target.rss_kib();
    let mut pools = Pool::start(args, target, i.workers, i.timeout)?;
    let started = Instant::now();
    open_spread(&mut pools, usize::try_from(i.clients).unwrap_or(usize::MAX))?;
    let held = pool::broadcast(&mut pools, "settle")?;
    let open_s = started.elapsed().as_secs_f64();
    let rss_after = target.rss_kib();
    let r = IdleReport {
        header: Header::new("idle", args, target),
        requested: i.clients,
        held: held.live,
        failed: held.failed,
        died: held.died,
        open_s,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_per_conn_bytes: per_conn(rss_before, rss_after, held.live),
        server_alive: target.is_alive(),
        workers: i.workers,
    };
    drop(pools);
    let summary = [
        format!(
            "idle against {} ({}): {} of {} connections held ({} failed, {} died) after {:.2} s; server alive: {}",
            r.header.target, r.header.server, r.held, r.requested, r.failed, r.died, r.open_s, r.server_alive
        ),
        format!(
            "  server RSS {} -> {} KiB: {} bytes per connection",
            r.rss_before_kib.map_or("?".into(), |v| v.to_string()),
            r.rss_after_kib.map_or("?".into(), |v| v.to_string()),
            r.rss_per_conn_bytes.map_or("?".into(), |v| format!("{v:.0}"))
        ),
    ];
    report::emit(&summary, &r)
}

/// One step of a ramp.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RampPoint {
    /// Connections open after the step.
    pub connections: usize,
    /// Server RSS, KiB.
    pub rss_kib: Option<u64>,
    /// Seconds the step took.
    pub step_s: f64,
}

/// The JSON line of a ramp.
#[derive(Debug, Clone, Serialize)]
pub struct RampReport {
    /// Common fields.
    #[serde(flatten)]
    pub header: Header,
    /// The maximum asked for.
    pub max: u32,
    /// Connections per step.
    pub step: u32,
    /// Each step.
    pub points: Vec<RampPoint>,
    /// Most connections open at once.
    pub held_max: usize,
    /// Why the ramp ended.
    pub stopped: String,
    /// Server RSS before the ramp, KiB.
    pub rss_before_kib: Option<u64>,
    /// (last RSS − before) / connections, bytes.
    pub rss_per_conn_bytes: Option<f64>,
}

/// Runs `ramp`.
///
/// # Errors
/// When the pools cannot be started or a worker fails.
pub fn run_ramp(target: &mut Target, args: &TargetArgs, r: &RampArgs) -> Result<()> {
    let rss_before = target.rss_kib();
    let mut pools = Pool::start(args, target, r.workers, r.step_timeout)?;
    let started = Instant::now();
    let max = usize::try_from(r.max).unwrap_or(usize::MAX);
    let step = usize::try_from(r.step).unwrap_or(1).max(1);
    let mut points = Vec::new();
    let mut held_max = 0;
    let mut held = 0;
    // At most max / step + 1 steps, each bounded by the step timeout.
    let stopped = loop {
        if held >= max {
            break format!("reached --max {max}");
        }
        if started.elapsed() > r.budget {
            break format!("time budget of {:.0} s used", r.budget.as_secs_f64());
        }
        let t0 = Instant::now();
        let n = step.min(max - held);
        let opened = open_spread(&mut pools, n)?;
        let now = pool::broadcast(&mut pools, "settle")?;
        let step_s = t0.elapsed().as_secs_f64();
        let before = held;
        held = now.live;
        held_max = held_max.max(held);
        points.push(RampPoint {
            connections: held,
            rss_kib: target.rss_kib(),
            step_s,
        });
        if !target.is_alive() {
            break format!(
                "the server exited going from {before} to {} connections",
                before + n
            );
        }
        if now.failed > 0 || now.died > 0 {
            break format!(
                "{} failed and {} died going from {before} to {} connections",
                now.failed,
                now.died,
                before + n
            );
        }
        if !opened.complete || t0.elapsed() > r.step_timeout {
            break format!("a step took longer than {:.0} s", r.step_timeout.as_secs_f64());
        }
    };
    // The last step the server survived with its memory readable.
    let last = points
        .iter()
        .rev()
        .find(|p| p.connections > 0 && p.rss_kib.is_some());
    let last_rss = last.and_then(|p| p.rss_kib);
    let report = RampReport {
        header: Header::new("ramp", args, target),
        max: r.max,
        step: r.step,
        held_max,
        stopped,
        rss_before_kib: rss_before,
        rss_per_conn_bytes: per_conn(rss_before, last_rss, last.map_or(0, |p| p.connections)),
        points,
    };
    drop(pools);
    let mut summary = vec![format!(
        "ramp against {} ({}): held at most {} connections; stopped: {}",
        report.header.target, report.header.server, report.held_max, report.stopped
    )];
    for p in &report.points {
        summary.push(format!(
            "  {:>6} connections  RSS {:>8} KiB  step {:.2} s",
            p.connections,
            p.rss_kib.map_or("?".into(), |v| v.to_string()),
            p.step_s
        ));
    }
    report::emit(&summary, &report)
}
