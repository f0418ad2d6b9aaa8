//! Idle connections: what one costs the server in memory, and how many it
//! holds.
//!
//! `idle` reads the server's VmRSS, opens N connections (spread over
//! worker processes if asked), waits for the connect announcements to stop
//! flowing, and reads VmRSS again: the difference over N is the user-space
//! cost of a connection. `ramp` does the same in steps until a connection
//! fails, the server dies, a step is too slow or the maximum is reached,
//! giving the capacity.
//!
//! Kernel memory is not in RSS, so both also read the kernel's slab total
//! and its TCP buffer pages before and after ([`KernelMem`]). On loopback
//! both ends of every connection live in this one kernel: the generator's
//! client socket and the server's accepted one cost about the same, so the
//! server's share of the slab delta is about half of it.

use std::time::Instant;

use serde::Serialize;

use super::join::open_spread;
use super::pool::{self, Pool};
use crate::args::{IdleArgs, RampArgs, TargetArgs};
use crate::error::Result;
use crate::procfs;
use crate::report::{self, Header};
use crate::target::Target;

/// Kernel memory at one moment (machine-wide), or why it is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSnapshot {
    /// Slab bytes ([`procfs::slab_bytes`]).
    pub slab: std::result::Result<u64, String>,
    /// TCP buffer pages ([`procfs::tcp_mem_pages`]).
    pub tcp_pages: std::result::Result<u64, String>,
}

impl KernelSnapshot {
    /// Reads both now.
    pub fn now() -> KernelSnapshot {
        KernelSnapshot {
            slab: procfs::slab_bytes(),
            tcp_pages: procfs::tcp_mem_pages(),
        }
    }
}

/// What connections cost the kernel: the JSON object `kernel` of idle and
/// ramp reports. All of it is machine-wide, so other work on the machine
/// (a build) shows up as noise in the deltas.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelMem {
    /// Connections the delta is divided by.
    pub connections: usize,
    /// Slab bytes before the connections.
    pub slab_before_bytes: Option<u64>,
    /// Slab bytes after.
    pub slab_after_bytes: Option<u64>,
    /// (after − before) / connections: both ends of each loopback
    /// connection (the generator's client socket and the server's).
    pub slab_per_conn_bytes: Option<f64>,
    /// Half of that: about the server's share.
    pub slab_per_conn_server_share_bytes: Option<f64>,
    /// Why the slab figures are null.
    pub slab_unavailable: Option<String>,
    /// TCP buffer pages before (`/proc/net/sockstat`, `mem`).
    pub tcp_mem_pages_before: Option<u64>,
    /// TCP buffer pages after.
    pub tcp_mem_pages_after: Option<u64>,
    /// (after − before) × page size / connections, both ends.
    pub tcp_mem_per_conn_bytes: Option<f64>,
    /// Why the TCP figures are null.
    pub tcp_mem_unavailable: Option<String>,
    /// Bytes per page.
    pub page_size: u64,
}

impl KernelMem {
    /// The cost of `connections` between two snapshots.
    pub fn between(before: &KernelSnapshot, after: &KernelSnapshot, connections: usize) -> KernelMem {
        let delta = |b: u64, a: u64, unit: u64| -> Option<f64> {
            (connections > 0).then(|| (a as f64 - b as f64) * unit as f64 / connections as f64)
        };
        let page_size = procfs::page_size();
        let slab = match (&before.slab, &after.slab) {
            (Ok(b), Ok(a)) => Ok((*b, *a)),
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        };
        let tcp = match (&before.tcp_pages, &after.tcp_pages) {
            (Ok(b), Ok(a)) => Ok((*b, *a)),
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        };
        let slab_per_conn = slab.as_ref().ok().and_then(|&(b, a)| delta(b, a, 1));
        KernelMem {
            connections,
            slab_before_bytes: slab.as_ref().ok().map(|p| p.0),
            slab_after_bytes: slab.as_ref().ok().map(|p| p.1),
            slab_per_conn_bytes: slab_per_conn,
            slab_per_conn_server_share_bytes: slab_per_conn.map(|v| v / 2.0),
            slab_unavailable: slab.as_ref().err().cloned(),
            tcp_mem_pages_before: tcp.as_ref().ok().map(|p| p.0),
            tcp_mem_pages_after: tcp.as_ref().ok().map(|p| p.1),
            tcp_mem_per_conn_bytes: tcp.as_ref().ok().and_then(|&(b, a)| delta(b, a, page_size)),
            tcp_mem_unavailable: tcp.as_ref().err().cloned(),
            page_size,
        }
    }

    /// The summary lines for people.
    pub fn summary(&self) -> Vec<String> {
        let mib = |v: Option<u64>| v.map_or("?".to_string(), |b| format!("{:.1}", b as f64 / 1048576.0));
        let bytes = |v: Option<f64>| v.map_or("?".to_string(), |b| format!("{b:.0}"));
        let mut out = Vec::new();
        match &self.slab_unavailable {
            Some(why) => out.push(format!("  kernel slab: null ({why})")),
            None => {
                out.push(format!(
                    "  kernel slab {} -> {} MiB: {} bytes per connection for both ends, ~{} bytes the server's half",
                    mib(self.slab_before_bytes),
                    mib(self.slab_after_bytes),
                    bytes(self.slab_per_conn_bytes),
                    bytes(self.slab_per_conn_server_share_bytes),
                ));
                out.push(
                    "    (loopback: the generator's client sockets are in this kernel too, so the server's share is about half; \
                     slab is machine-wide, other work adds noise)"
                        .to_string(),
                );
            }
        }
        match &self.tcp_mem_unavailable {
            Some(why) => out.push(format!("  kernel TCP buffers: null ({why})")),
            None => out.push(format!(
                "  kernel TCP buffers (sockstat mem) {} -> {} pages of {} bytes: {} bytes per connection, both ends",
                self.tcp_mem_pages_before.map_or("?".to_string(), |v| v.to_string()),
                self.tcp_mem_pages_after.map_or("?".to_string(), |v| v.to_string()),
                self.page_size,
                bytes(self.tcp_mem_per_conn_bytes),
            )),
        }
        out
    }
}

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
    /// What the connections cost the kernel.
    pub kernel: KernelMem,
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
    // After the pools' own setup (worker processes, epoll instances), so
    // the delta is the connections'.
    let kernel_before = KernelSnapshot::now();
    let started = Instant::now();
    open_spread(&mut pools, usize::try_from(i.clients).unwrap_or(usize::MAX))?;
    let held = pool::broadcast(&mut pools, "settle")?;
    let open_s = started.elapsed().as_secs_f64();
    let rss_after = target.rss_kib();
    let kernel_after = KernelSnapshot::now();
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
        kernel: KernelMem::between(&kernel_before, &kernel_after, held.live),
    };
    drop(pools);
    let mut summary = vec![
        format!(
            "idle against {} over {} ({}): {} of {} connections held ({} failed, {} died) after {:.2} s; server alive: {}",
            r.header.target, r.header.protocol, r.header.server, r.held, r.requested, r.failed, r.died, r.open_s, r.server_alive
        ),
        format!(
            "  server RSS {} -> {} KiB: {} bytes per connection",
            r.rss_before_kib.map_or("?".into(), |v| v.to_string()),
            r.rss_after_kib.map_or("?".into(), |v| v.to_string()),
            r.rss_per_conn_bytes.map_or("?".into(), |v| format!("{v:.0}"))
        ),
    ];
    summary.extend(r.kernel.summary());
    report::emit(&summary, &r)
}

/// One step of a ramp.
#[derive(Debug, Clone, Serialize)]
pub struct RampPoint {
    /// Connections open after the step.
    pub connections: usize,
    /// Server RSS, KiB.
    pub rss_kib: Option<u64>,
    /// Kernel slab bytes (machine-wide).
    pub slab_bytes: Option<u64>,
    /// Kernel TCP buffer pages.
    pub tcp_mem_pages: Option<u64>,
    /// The same two as read, for the kernel figures at the end.
    #[serde(skip)]
    kernel: KernelSnapshot,
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
    /// What the connections cost the kernel, from before the ramp to its
    /// last step.
    pub kernel: KernelMem,
}

/// Runs `ramp`.
///
/// # Errors
/// When the pools cannot be started or a worker fails.
pub fn run_ramp(target: &mut Target, args: &TargetArgs, r: &RampArgs) -> Result<()> {
    let rss_before = target.rss_kib();
    let mut pools = Pool::start(args, target, r.workers, r.step_timeout)?;
    let kernel_before = KernelSnapshot::now();
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
        let kernel = KernelSnapshot::now();
        points.push(RampPoint {
            connections: held,
            rss_kib: target.rss_kib(),
            slab_bytes: kernel.slab.as_ref().ok().copied(),
            tcp_mem_pages: kernel.tcp_pages.as_ref().ok().copied(),
            kernel,
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
    // The kernel at the last step (alive or not, its sockets were there).
    let kernel = match points.last() {
        Some(p) => KernelMem::between(&kernel_before, &p.kernel, p.connections),
        None => KernelMem::between(&kernel_before, &kernel_before, 0),
    };
    let report = RampReport {
        header: Header::new("ramp", args, target),
        max: r.max,
        step: r.step,
        held_max,
        stopped,
        rss_before_kib: rss_before,
        rss_per_conn_bytes: per_conn(rss_before, last_rss, last.map_or(0, |p| p.connections)),
        points,
        kernel,
    };
    drop(pools);
    let mut summary = vec![format!(
        "ramp against {} over {} ({}): held at most {} connections; stopped: {}",
        report.header.target, report.header.protocol, report.header.server, report.held_max, report.stopped
    )];
    for p in &report.points {
        summary.push(format!(
            "  {:>6} connections  RSS {:>8} KiB  slab {:>8} KiB  step {:.2} s",
            p.connections,
            p.rss_kib.map_or("?".into(), |v| v.to_string()),
            p.slab_bytes.map_or("?".into(), |v| (v / 1024).to_string()),
            p.step_s
        ));
    }
    summary.push(format!(
        "  server RSS per connection: {} bytes",
        report
            .rss_per_conn_bytes
            .map_or("?".into(), |v| format!("{v:.0}"))
    ));
    summary.extend(report.kernel.summary());
    report::emit(&summary, &report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_delta_per_connection_and_the_servers_half() {
        let before = KernelSnapshot {
            slab: Ok(1_000_000),
            tcp_pages: Ok(2),
        };
        let after = KernelSnapshot {
            slab: Ok(3_000_000),
            tcp_pages: Ok(4),
        };
        let k = KernelMem::between(&before, &after, 1000);
        assert_eq!(k.slab_per_conn_bytes, Some(2000.0));
        assert_eq!(k.slab_per_conn_server_share_bytes, Some(1000.0));
        assert_eq!(k.tcp_mem_per_conn_bytes, Some(2.0 * k.page_size as f64 / 1000.0));
        assert_eq!(k.slab_unavailable, None);
        assert!(k.summary().iter().any(|l| l.contains("about half")));
    }

    #[test]
    fn unreadable_slabinfo_is_null_with_a_reason() {
        let denied = KernelSnapshot {
            slab: Err("/proc/slabinfo: Permission denied (readable by root only)".to_string()),
            tcp_pages: Ok(0),
        };
        let k = KernelMem::between(&denied, &denied, 10);
        assert_eq!((k.slab_before_bytes, k.slab_per_conn_bytes), (None, None));
        assert!(k.slab_unavailable.as_deref().is_some_and(|w| w.contains("root")));
        assert!(k.summary().iter().any(|l| l.contains("null (/proc/slabinfo")));
        let json = serde_json::to_value(&k).unwrap();
        assert!(json["slab_per_conn_bytes"].is_null());
        // No connections: no division.
        assert_eq!(
            KernelMem::between(&denied, &denied, 0).tcp_mem_per_conn_bytes,
            None
        );
    }
}
