//! A handshake storm (issue 15): N clients in one room chat at a fixed
//! rate while S new connections arrive at once (TLS with `--tls`), and
//! the question is whether the clients already there go on being served.
//!
//! The storm comes from an engine of its own (its own generator threads,
//! all S connects started at once), so the clients' threads are not the
//! ones doing the storm's client-side crypto; both share the machine with
//! the server all the same. The clients' latency is reported over the
//! whole run and over a *window* of send times: from the storm's first
//! connect until its last connection was welcomed, and at least
//! `--min-window` long. Run it with `--storm 0` for the same window without
//! a storm, the figure to read the storm's against.
//!
//! The storm's connections do one of three things: finish
//! their handshake and wait for the welcome (then idle in the lobby until
//! the run ends), connect and send nothing, or send half a ClientHello and
//! nothing more ([`crate::args::StormKind`]); the last two count as arrived once connected (and their
//! half sent), and the server holds them until its handshake or idle
//! timeout.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::args::{StormArgs, TargetArgs};
use crate::engine::{Engine, Focus, Handshake, OpenOutcome};
use crate::error::{Error, Result};
use crate::procfs;
use crate::report::{self, cpu_map, cpu_text, Header};
use crate::stats::{Integrity, LatencySummary};
use crate::target::Target;
use crate::tls::Negotiated;

use super::fanout::transport_text;

/// Client numbers of the storm start here, apart from the clients'.
const STORM_FIRST_ID: usize = 1_000_000;

/// The JSON line of a storm run.
#[derive(Debug, Clone, Serialize)]
pub struct StormReport {
    /// Common fields (`transport` is the storm's).
    #[serde(flatten)]
    pub header: Header,
    /// Clients in the room.
    pub clients: u32,
    /// Senders among them.
    pub senders: u32,
    /// Lines/s per sender.
    pub rate_per_sender: f64,
    /// `tls` or `tcp`: what the chatting clients speak.
    pub clients_transport: String,
    /// Seconds the senders sent.
    pub duration_s: f64,
    /// Storm connections asked for.
    pub storm: u32,
    /// What they did: `full`, `silent` or `half-hello`.
    pub storm_kind: String,
    /// Seconds after the senders started that the storm started.
    pub storm_at_s: f64,
    /// Storm connections that arrived (welcomed, or connected for the
    /// stalling kinds).
    pub storm_arrived: usize,
    /// Storm connections that failed.
    pub storm_failed: usize,
    /// Seconds from the storm's first connect until all had arrived or
    /// failed (or the storm timeout).
    pub storm_s: f64,
    /// All storm connections arrived or failed in time.
    pub storm_complete: bool,
    /// The storm's first error, if any.
    pub storm_first_error: Option<String>,
    /// Seconds of send times in the window.
    pub window_s: f64,
    /// Latency of the lines sent in the window.
    pub window: LatencySummary,
    /// Latency of every line of the run.
    pub latency: LatencySummary,
    /// Deliveries per second over the run.
    pub deliveries_per_s: f64,
    /// Exactly-once, in-order accounting over the run.
    pub integrity: Integrity,
    /// False when senders or the drain did not finish in time.
    pub complete: bool,
    /// Worst lateness of a send behind schedule, µs.
    pub max_send_lag_us: f64,
    /// What the clients' TLS handshakes negotiated.
    pub tls: Option<Negotiated>,
    /// Server RSS after the run, KiB.
    pub server_rss_kib: Option<u64>,
    /// Server threads' CPU, % of one core, during the run.
    pub server_cpu_pct: BTreeMap<String, f64>,
    /// Generator CPU (clients and storm), % of one core, during the run.
    pub generator_cpu_pct: BTreeMap<String, f64>,
    /// The clients' first error, if any.
    pub first_error: Option<String>,
}

/// What the storm thread hands back.
struct StormOutcome {
    /// The storm's engine, its connections still open.
    engine: Option<Engine>,
    /// When the storm started, ns on the clients' clock.
    started_ns: u64,
    /// How the open went (none for a storm of 0).
    opened: Option<OpenOutcome>,
    /// The window of send times, ns on the clients' clock.
    window: (u64, u64),
}

/// Runs the storm scenario against `target`.
///
/// # Errors
/// When the options do not fit the target, the clients cannot all connect
/// and join, or the report cannot be printed.
pub fn run(target: &mut Target, args: &TargetArgs, s: &StormArgs) -> Result<()> {
    if s.senders >= s.clients {
        return Err(Error::msg(
            "--senders must be fewer than --clients (a sender does not hear itself)",
        ));
    }
    if s.rate <= 0.0 {
        return Err(Error::msg("--rate must be more than 0 lines/s"));
    }
    let lifetime = args.setup_timeout + s.duration + s.drain * 2 + s.storm_timeout + Duration::from_secs(60);
    let mut config = super::engine_config(args, target, lifetime);
    let clients_transport = if s.plain_clients {
        let Some(plain) = target.plain_addr else {
            return Err(Error::msg(
                "--plain-clients needs --tls and a chat-server chat-bench starts (with a plain listener beside its TLS one)",
            ));
        };
        config.dest = plain;
        config.tls = None;
        "tcp"
    } else {
        target.transport()
    };
    let mut engine = Engine::start(config)?;
    let handshake = super::room_handshake(target.flavor);
    let clients = usize::try_from(s.clients).unwrap_or(usize::MAX);
    let opened = engine.open(clients, &handshake, args.setup_timeout);
    if opened.live < clients {
        return Err(super::not_all_connected(&opened, clients, target, &engine));
    }
    engine.settle(super::QUIET, args.setup_timeout);

    // The storm's engine, idle until its time: every connect at once.
    let storm = usize::try_from(s.storm).unwrap_or(usize::MAX);
    let mut storm_config = super::engine_config(args, target, lifetime);
    storm_config.threads = usize::from(s.storm_threads);
    storm_config.first_id = STORM_FIRST_ID;
    storm_config.connect_inflight = storm.max(1);
    let storm_engine = if storm > 0 {
        Some(Engine::start(storm_config)?)
    } else {
        None
    };
    let storm_handshake = match s.storm_kind.stall() {
        Some(stall) => Handshake::Stall(stall),
        None => Handshake::Welcome,
    };

    let server_before = target.thread_ticks();
    let me = std::process::id();
    let gen_before = vec![("chat-bench".to_string(), procfs::process_ticks(me))];
    let started = Instant::now();
    let focus = engine.focus();
    let plan = StormPlan {
        at: s.storm_at,
        min_window: s.min_window,
        count: storm,
        handshake: storm_handshake,
        timeout: s.storm_timeout,
    };
    let storm_thread = thread::Builder::new()
        .name("bench-storm".to_string())
        .spawn(move || storm_at(storm_engine, &focus, &plan))
        .map_err(|e| Error::msg(format!("cannot start the storm's thread: {e}")))?;
    let run_start_ns = engine.now_ns();
    let outcome = engine.fanout(
        usize::try_from(s.senders).unwrap_or(1),
        64,
        Some(s.rate),
        u64::MAX,
        s.duration,
        s.drain,
    );
    let storm_outcome = storm_thread
        .join()
        .map_err(|_| Error::msg("the storm's thread panicked"))?;
    let secs = started.elapsed().as_secs_f64();
    let server_cpu = procfs::busy_percent(&server_before, &target.thread_ticks(), secs);
    let gen_cpu = procfs::busy_percent(
        &gen_before,
        &[("chat-bench".to_string(), procfs::process_ticks(me))],
        secs,
    );
    let server_rss_kib = target.rss_kib();
    // The storm's connections close now, after the run.
    let (storm_arrived, storm_failed, storm_s, storm_complete, storm_first_error) =
        match &storm_outcome.opened {
            Some(o) => (
                o.live,
                o.failed,
                o.elapsed.as_secs_f64(),
                o.complete,
                storm_outcome
                    .engine
                    .map(|mut e| e.stop())
                    .and_then(|results| results.into_iter().find_map(|r| r.first_error)),
            ),
            None => (0, 0, 0.0, true, None),
        };
    let active_s = outcome.active.as_secs_f64();
    let (window_start, window_end) = storm_outcome.window;
    let r = StormReport {
        header: Header::new("storm", args, target),
        clients: s.clients,
        senders: s.senders,
        rate_per_sender: s.rate,
        clients_transport: clients_transport.to_string(),
        duration_s: s.duration.as_secs_f64(),
        storm: s.storm,
        storm_kind: s.storm_kind.name().to_string(),
        storm_at_s: storm_outcome.started_ns.saturating_sub(run_start_ns) as f64 / 1e9,
        storm_arrived,
        storm_failed,
        storm_s,
        storm_complete,
        storm_first_error,
        window_s: window_end.saturating_sub(window_start) as f64 / 1e9,
        window: outcome.focus.summary(),
        latency: outcome.latency.summary(),
        deliveries_per_s: if active_s > 0.0 {
            outcome.integrity.delivered as f64 / active_s
        } else {
            0.0
        },
        integrity: outcome.integrity,
        complete: outcome.complete,
        max_send_lag_us: outcome.max_send_lag.as_secs_f64() * 1e6,
        tls: outcome.tls,
        server_rss_kib,
        server_cpu_pct: cpu_map(&server_cpu),
        generator_cpu_pct: cpu_map(&gen_cpu),
        first_error: outcome.first_error,
    };
    print(&r, &server_cpu, &gen_cpu)
}

/// What the storm's thread does, and when.
struct StormPlan {
    /// When, after the thread starts.
    at: Duration,
    /// The shortest window.
    min_window: Duration,
    /// Connections.
    count: usize,
    /// What each does.
    handshake: Handshake,
    /// Longest wait for all of them.
    timeout: Duration,
}

/// Waits until the storm's time, opens the window, lets the storm loose
/// (if any), and closes the window once all its connections arrived and
/// at least the shortest window has passed.
fn storm_at(mut engine: Option<Engine>, focus: &Focus, plan: &StormPlan) -> StormOutcome {
    // A schedule, not a synchronisation: the storm comes at a set time
    // into the run.
    thread::sleep(plan.at);
    let started_ns = focus.now_ns();
    focus.open_at(started_ns);
    let opened = engine
        .as_mut()
        .map(|e| e.open(plan.count, &plan.handshake, plan.timeout));
    let min_end = started_ns.saturating_add(u64::try_from(plan.min_window.as_nanos()).unwrap_or(u64::MAX));
    let now = focus.now_ns();
    if now < min_end {
        thread::sleep(Duration::from_nanos(min_end - now));
    }
    let end_ns = focus.now_ns().max(min_end);
    focus.close_at(end_ns);
    StormOutcome {
        engine,
        started_ns,
        opened,
        window: (started_ns, end_ns),
    }
}

/// Prints `r` for people and as JSON.
fn print(r: &StormReport, server_cpu: &[(String, f64)], gen_cpu: &[(String, f64)]) -> Result<()> {
    let w = &r.window;
    let l = &r.latency;
    let i = &r.integrity;
    let summary = [
        format!(
            "storm against {} ({}): {} clients ({}), {} senders × {} lines/s; {} {} connections ({}) at {:.1} s",
            r.header.target,
            r.header.server,
            r.clients,
            r.clients_transport,
            r.senders,
            r.rate_per_sender,
            r.storm,
            r.storm_kind,
            r.header.transport,
            r.storm_at_s
        ),
        format!(
            "  storm: {} arrived, {} failed, in {:.3} s{}",
            r.storm_arrived,
            r.storm_failed,
            r.storm_s,
            if r.storm_complete { "" } else { " (INCOMPLETE: timed out)" }
        ),
        format!(
            "  window of {:.2} s, {} deliveries, latency µs: p50 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}",
            r.window_s, w.samples, w.p50_us, w.p99_us, w.p999_us, w.max_us
        ),
        format!(
            "  whole run, {} deliveries, latency µs: p50 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}{}",
            l.samples,
            l.p50_us,
            l.p99_us,
            l.p999_us,
            l.max_us,
            if r.complete { "" } else { " (INCOMPLETE: timed out)" }
        ),
        format!(
            "  lost {}, duplicated {}, out of order {}, foreign {}; max send lag {:.0} µs",
            i.lost, i.duplicated, i.out_of_order, i.foreign, r.max_send_lag_us
        ),
        format!(
            "  clients' transport: {}",
            transport_text(&r.clients_transport, r.tls.as_ref())
        ),
        format!(
            "  CPU during the run: server {}; generator {}",
            cpu_text(server_cpu),
            cpu_text(gen_cpu)
        ),
    ];
    report::emit(&summary, r)
}
