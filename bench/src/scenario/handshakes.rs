//! Handshakes per second (issue 15): connections opened, taken through
//! their TLS handshake (with `--tls`) and the server's first line, and
//! closed, K in flight at once, for a fixed time. Over plain TCP the same
//! run gives new connections per second, the scale a TLS figure is read
//! against.
//!
//! What a server must do per new TLS client is the point: a full
//! handshake (resumption is off in the generator, so each is a key
//! exchange and a signature), then its welcome. The first line counts as
//! the welcome whatever it says (chat-server's `-- welcome`, ncat's
//! announcement), except chat-server's `!! ` refusals, which count as
//! failures. Every connection closes cleanly, so ncat, which lists every
//! peer to each newcomer, never meets a reset one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::args::{HandshakesArgs, TargetArgs};
use crate::engine::Engine;
use crate::error::Result;
use crate::procfs;
use crate::report::{self, cpu_map, cpu_text, Header};
use crate::stats::LatencySummary;
use crate::target::Target;
use crate::tls::Negotiated;

use super::fanout::transport_text;

/// Room a chat-server started for the run keeps beyond the connections in
/// flight: connections the generator has closed still count against
/// `--max-clients` until the server has seen them go, and a server that is
/// full closes a new TLS connection before its handshake, which would be
/// measured as a failure. A few thousand cost it nothing until used.
pub const CLOSING_ROOM: u32 = 4096;

/// The JSON line of a handshakes run.
#[derive(Debug, Clone, Serialize)]
pub struct HandshakesReport {
    /// Common fields.
    #[serde(flatten)]
    pub header: Header,
    /// Connections under way at once.
    pub concurrency: u32,
    /// Seconds new connections were started.
    pub duration_s: f64,
    /// Connections welcomed within the duration.
    pub completed: u64,
    /// Connections refused, reset, failed their handshake, or not
    /// welcomed within the timeout.
    pub failed: u64,
    /// Connections under way at the end, not counted either way.
    pub abandoned: u64,
    /// Completed connections per second.
    pub per_s: f64,
    /// From the start of each connect to the server's first line.
    pub latency: LatencySummary,
    /// What the TLS handshakes negotiated.
    pub tls: Option<Negotiated>,
    /// Server RSS after the run, KiB.
    pub server_rss_kib: Option<u64>,
    /// Server threads' CPU, % of one core, during the run.
    pub server_cpu_pct: BTreeMap<String, f64>,
    /// Generator CPU, % of one core, during the run.
    pub generator_cpu_pct: BTreeMap<String, f64>,
    /// Every thread reported its end in time.
    pub complete: bool,
    /// The first error, if any.
    pub first_error: Option<String>,
}

/// Runs the handshakes scenario against `target`.
///
/// # Errors
/// When the engine cannot be started, or the report cannot be printed.
pub fn run(target: &mut Target, args: &TargetArgs, h: &HandshakesArgs) -> Result<()> {
    let lifetime = h.duration + h.timeout * 2 + Duration::from_secs(30);
    let mut engine = Engine::start(super::engine_config(args, target, lifetime))?;
    let server_before = target.thread_ticks();
    let me = std::process::id();
    let gen_before = vec![("chat-bench".to_string(), procfs::process_ticks(me))];
    let started = Instant::now();
    let outcome = engine.churn(usize::try_from(h.concurrency).unwrap_or(1), h.duration, h.timeout);
    let secs = started.elapsed().as_secs_f64();
    let server_cpu = procfs::busy_percent(&server_before, &target.thread_ticks(), secs);
    let gen_cpu = procfs::busy_percent(
        &gen_before,
        &[("chat-bench".to_string(), procfs::process_ticks(me))],
        secs,
    );
    let duration_s = h.duration.as_secs_f64();
    let r = HandshakesReport {
        header: Header::new("handshakes", args, target),
        concurrency: h.concurrency,
        duration_s,
        completed: outcome.completed,
        failed: outcome.failed,
        abandoned: outcome.abandoned,
        per_s: per_second(outcome.completed, duration_s),
        latency: outcome.latency.summary(),
        tls: outcome.tls,
        server_rss_kib: target.rss_kib(),
        server_cpu_pct: cpu_map(&server_cpu),
        generator_cpu_pct: cpu_map(&gen_cpu),
        complete: outcome.complete,
        first_error: outcome.first_error,
    };
    let l = &r.latency;
    let summary = [
        format!(
            "handshakes against {} ({}): {} in flight for {:.0} s",
            r.header.target, r.header.server, r.concurrency, r.duration_s
        ),
        format!(
            "  {:.0} connections/s welcomed: {} welcomed, {} failed, {} under way at the end",
            r.per_s, r.completed, r.failed, r.abandoned
        ),
        format!(
            "  connect to welcome µs: p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}",
            l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us
        ),
        format!(
            "  transport: {}",
            transport_text(&r.header.transport, r.tls.as_ref())
        ),
        format!(
            "  CPU during the run: server {}; generator {}",
            cpu_text(&server_cpu),
            cpu_text(&gen_cpu)
        ),
    ];
    report::emit(&summary, &r)
}

/// `count` over `secs`, 0 for no time at all.
fn per_second(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_over_the_duration_and_zero_without_one() {
        assert!((per_second(4500, 10.0) - 450.0).abs() < 1e-9);
        assert!(per_second(10, 0.0).abs() < f64::EPSILON);
    }
}
