//! Fan-out: N clients in one room, M of them sending 64-byte stamped
//! lines, every delivery on every connection timed and checked.
//!
//! Two pacings share this code: window-limited (each sender at most W
//! lines ahead of its slowest receiver, so the run measures how fast the
//! server can fan out without building queues) and fixed-rate (each
//! sender at R lines/s, so the run measures latency at a given load).
//!
//! In a room mixing kinds of client (IRC or WebSocket beside line clients)
//! the report also gives each kind's deliveries per second and latency as
//! receivers ([`KindFigures`]), so the same run says how each fared.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::args::{FanoutCommon, TargetArgs};
use crate::engine::{Dialect, Engine, Flavor};
use crate::error::{Error, Result};
use crate::procfs;
use crate::report::{self, cpu_map, cpu_text, Header};
use crate::stats::{Integrity, LatencySummary};
use crate::target::Target;
use crate::tls::Negotiated;

/// The JSON line of a fan-out run.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    /// Common fields.
    #[serde(flatten)]
    pub header: Header,
    /// Clients in the room.
    pub clients: u32,
    /// Senders among them.
    pub senders: u32,
    /// Lines in flight per sender.
    pub window: u64,
    /// Lines/s per sender, when fixed.
    pub rate_per_sender: Option<f64>,
    /// Seconds the senders were allowed to send.
    pub duration_s: f64,
    /// Seconds to connect (and join) every client.
    pub setup_s: f64,
    /// Lines sent, all senders.
    pub lines_sent: u64,
    /// Seconds from the first send to the last delivery.
    pub active_s: f64,
    /// Deliveries per second over `active_s`.
    pub deliveries_per_s: f64,
    /// Delivery latency.
    pub latency: LatencySummary,
    /// Exactly-once, in-order accounting.
    pub integrity: Integrity,
    /// False when senders or the drain did not finish in time.
    pub complete: bool,
    /// Non-delivery lines received during the run.
    pub other_lines: u64,
    /// Worst lateness of a fixed-rate send behind schedule, µs.
    pub max_send_lag_us: f64,
    /// Server RSS after the run, KiB.
    pub server_rss_kib: Option<u64>,
    /// Server threads' CPU, % of one core, during the run.
    pub server_cpu_pct: BTreeMap<String, f64>,
    /// Generator threads' CPU, % of one core, during the run.
    pub generator_cpu_pct: BTreeMap<String, f64>,
    /// The first connection error, if any.
    pub first_error: Option<String>,
    /// What the TLS handshakes negotiated, for a TLS run.
    pub tls: Option<Negotiated>,
    /// The server's pings the clients answered during the run (IRC
    /// `PING`, WebSocket Ping; chat-server pings a WebSocket after 30 s of
    /// quiet).
    pub pings_answered: u64,
    /// In a room mixing kinds of client: each kind's figures as receivers,
    /// by [`Dialect::name`] (`line`, `irc`, `web`). Empty (and left out of
    /// the JSON) when every client is of one kind.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_kind: BTreeMap<String, KindFigures>,
}

/// What the receivers of one kind got in a fan-out run.
#[derive(Debug, Clone, Serialize)]
pub struct KindFigures {
    /// Clients of this kind in the room (senders too: they receive the
    /// other senders' lines).
    pub clients: usize,
    /// Their deliveries.
    pub delivered: u64,
    /// Their deliveries per second, over the run's `active_s`.
    pub deliveries_per_s: f64,
    /// Their deliveries' latency.
    pub latency: LatencySummary,
}

/// Runs one fan-out against `target`.
///
/// # Errors
/// When the clients cannot all connect and join.
pub fn run(
    target: &mut Target,
    args: &TargetArgs,
    common: &FanoutCommon,
    rate: Option<f64>,
    scenario: &str,
) -> Result<FanoutReport> {
    if common.senders >= common.clients {
        return Err(Error::msg(
            "--senders must be fewer than --clients (a sender does not hear itself)",
        ));
    }
    let lifetime = args.setup_timeout + common.duration + common.drain * 2 + Duration::from_secs(60);
    let mut config = super::engine_config(args, target, lifetime);
    // Only the senders send enough for a flood limit to matter: they take
    // up the operator a server was given for it (ngircd's user mode F).
    if let Some(oper) = config.irc.as_mut().and_then(|irc| irc.oper.as_mut()) {
        oper.below = usize::try_from(common.senders).unwrap_or(usize::MAX);
    }
    let clients = usize::try_from(common.clients).unwrap_or(usize::MAX);
    let mut kind_clients = [0usize; 3];
    for id in 0..clients {
        if let Some(count) = kind_clients.get_mut(config.dialect_for(id).index()) {
            *count += 1;
        }
    }
    let mut engine = Engine::start(config)?;
    let handshake = super::room_handshake(target.flavor);
    let opened = engine.open(clients, &handshake, args.setup_timeout);
    if opened.live < clients {
        return Err(super::not_all_connected(&opened, clients, target, &engine));
    }
    engine.settle(super::QUIET, args.setup_timeout);

    let server_before = target.thread_ticks();
    let me = std::process::id();
    // The I/O threads are gone by the time the run returns, so the
    // generator is measured as a whole (ended threads included).
    let gen_before = vec![("chat-bench".to_string(), procfs::process_ticks(me))];
    let started = Instant::now();
    let outcome = engine.fanout(
        usize::try_from(common.senders).unwrap_or(1),
        common.window,
        rate,
        common.count.unwrap_or(u64::MAX),
        common.duration,
        common.drain,
    );
    let secs = started.elapsed().as_secs_f64();
    let server_cpu = procfs::busy_percent(&server_before, &target.thread_ticks(), secs);
    let gen_after = vec![("chat-bench".to_string(), procfs::process_ticks(me))];
    let gen_cpu = procfs::busy_percent(&gen_before, &gen_after, secs);

    let active_s = outcome.active.as_secs_f64();
    let delivered = outcome.integrity.delivered;
    let per_s = |n: u64| if active_s > 0.0 { n as f64 / active_s } else { 0.0 };
    let mixed = kind_clients.iter().filter(|&&n| n > 0).count() > 1;
    let by_kind = Dialect::ALL
        .iter()
        .zip(kind_clients.iter().zip(&outcome.by_dialect))
        .filter(|(_, (&n, _))| mixed && n > 0)
        .map(|(dialect, (&n, tally))| {
            (
                dialect.name().to_string(),
                KindFigures {
                    clients: n,
                    delivered: tally.delivered,
                    deliveries_per_s: per_s(tally.delivered),
                    latency: tally.latency.summary(),
                },
            )
        })
        .collect();
    Ok(FanoutReport {
        header: Header::new(scenario, args, target),
        clients: common.clients,
        senders: common.senders,
        window: common.window,
        rate_per_sender: rate,
        duration_s: common.duration.as_secs_f64(),
        setup_s: opened.elapsed.as_secs_f64(),
        lines_sent: outcome.sent.iter().sum(),
        active_s,
        deliveries_per_s: per_s(delivered),
        latency: outcome.latency.summary(),
        integrity: outcome.integrity,
        complete: outcome.complete,
        other_lines: outcome.other_lines,
        max_send_lag_us: outcome.max_send_lag.as_secs_f64() * 1e6,
        server_rss_kib: target.rss_kib(),
        server_cpu_pct: cpu_map(&server_cpu),
        generator_cpu_pct: cpu_map(&gen_cpu),
        first_error: outcome.first_error,
        tls: outcome.tls,
        pings_answered: outcome.pings_answered,
        by_kind,
    })
}

/// The transport for people: `tcp`, or `tls (TLSv1_3, TLS13_..., X25519,
/// Full)`.
pub fn transport_text(transport: &str, tls: Option<&Negotiated>) -> String {
    match tls {
        Some(n) => format!(
            "{transport} ({}, {}, {}, {} handshake)",
            n.version, n.cipher_suite, n.key_exchange, n.handshake
        ),
        None => transport.to_string(),
    }
}

/// Prints `r` for people and as JSON.
///
/// # Errors
/// As [`report::emit`].
pub fn print(r: &FanoutReport) -> Result<()> {
    let pacing = match r.rate_per_sender {
        Some(rate) => format!("{rate} lines/s per sender"),
        None => format!("window {}", r.window),
    };
    let l = &r.latency;
    let i = &r.integrity;
    let mut summary = vec![
        format!(
            "{} against {} over {} ({}): {} clients, {} senders, {pacing}",
            r.header.scenario, r.header.target, r.header.protocol, r.header.server, r.clients, r.senders
        ),
        format!(
            "  {:.0} deliveries/s: {} deliveries of {} lines in {:.2} s{}",
            r.deliveries_per_s,
            i.delivered,
            r.lines_sent,
            r.active_s,
            if r.complete {
                ""
            } else {
                " (INCOMPLETE: timed out)"
            }
        ),
        format!(
            "  latency µs: p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}",
            l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us
        ),
        format!(
            "  lost {}, duplicated {}, out of order {}, foreign {}",
            i.lost, i.duplicated, i.out_of_order, i.foreign
        ),
    ];
    for (kind, k) in &r.by_kind {
        summary.push(format!(
            "  {kind} receivers ({}): {:.0} deliveries/s ({}); latency µs p50 {:.0}  p99 {:.0}  p99.9 {:.0}",
            k.clients, k.deliveries_per_s, k.delivered, k.latency.p50_us, k.latency.p99_us, k.latency.p999_us
        ));
    }
    summary.extend([
        format!(
            "  transport: {}",
            transport_text(&r.header.transport, r.tls.as_ref())
        ),
        format!(
            "  CPU during the run: server {}; generator {}",
            cpu_text(
                &r.server_cpu_pct
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect::<Vec<_>>()
            ),
            cpu_text(
                &r.generator_cpu_pct
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect::<Vec<_>>()
            )
        ),
    ]);
    if r.pings_answered > 0 {
        summary.push(format!("  the server's pings answered: {}", r.pings_answered));
    }
    // A server this run started has the options; one started by hand
    // must have been given them.
    if r.header.target == Flavor::ChatServer.name() && r.header.server.starts_with("already running") {
        summary.push(
            "  (chat-server must run with --rate 0 --max-per-ip 0 --max-per-net 0 --connect-rate 0 --max-clients N --sendq 16777216)"
                .to_string(),
        );
    }
    report::emit(&summary, r)
}
