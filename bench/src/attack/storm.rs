//! who-storm and rooms-storm (issue 12, item 4): answers that grow with
//! the server, bought for a few bytes.
//!
//! A lobby of idle members (who-storm) or as many rooms with one member
//! each (rooms-storm), 16 per source address; then 32 connections from one
//! address, within the default per-address limit, write `/who` (or
//! `/rooms`) over and over as fast as their sockets take it, so the daemon
//! is sent them as fast as it reads them, and read every reply. Meanwhile
//! the pair exchanges timestamped lines in a room of their own.
//!
//! The bytes "in" are the requests the daemon took in: its own count of
//! lines read (`chat_lines_received_total` on its metrics endpoint, less
//! the pair's lines) times the request's length. Not what the attackers
//! wrote, which includes megabytes still in socket buffers when the storm
//! ends (loopback buffers grow large), nor the bytes the daemon read,
//! which include up to 16 KiB per attacker read ahead while flood control
//! holds it back. Replies are counted too, by today's reply line, for
//! comparison. The daemon's CPU comes from `/proc/PID/stat`.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::addrs::{self, Sources};
use super::cli::{pick, StormArgs};
use super::crowd::{Crowd, GroupId, GroupSnapshot, GroupSpec, Ready, Setup};
use super::daemon::Daemon;
use super::pair::{Latency3, Pair};
use super::sampler::{round2, Sampler};
use super::{hold_for, mib, nanos, run_part, secs, Ctx, Outcome};
use crate::error::Result;

/// Which storm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/who` into a big lobby.
    Who,
    /// `/rooms` with many rooms.
    Rooms,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Who => "who-storm",
            Kind::Rooms => "rooms-storm",
        }
    }

    fn command(self) -> &'static [u8] {
        match self {
            Kind::Who => b"/who\n",
            Kind::Rooms => b"/rooms\n",
        }
    }

    /// Text in today's reply line (`-- 3 in #lobby: a, b, c`, `-- 2
    /// rooms: #lobby (3), ...`), to count replies.
    fn reply_marker(self) -> &'static str {
        match self {
            Kind::Who => " in #lobby: ",
            Kind::Rooms => " rooms: ",
        }
    }
}

/// Crowd threads for the storms: the attackers' replies are tens of MB a
/// second to read.
const CROWD_THREADS: usize = 2;
/// Connects in flight per crowd thread.
const INFLIGHT: usize = 128;
/// Longest wait for the fillers to be connected (and in their rooms).
const FILL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long after the storm (and the pair's drain) RSS is read again.
const AFTER: Duration = Duration::from_secs(2);
/// Bytes of the chunk each attacker writes over and over.
const CHUNK: usize = 4096;

/// The figures of a storm.
#[derive(Debug, Serialize)]
pub struct StormReport {
    /// Idle lobby members (who) or one-member rooms (rooms) in place.
    pub fillers: u64,
    /// Source addresses they came from.
    pub filler_addresses: usize,
    /// Attacking connections in place when the storm began.
    pub attackers: u64,
    /// Seconds of storm.
    pub duration_s: f64,
    /// Bytes the attackers wrote.
    pub attacker_bytes_written: u64,
    /// Requests the daemon read during the storm (its lines read, less
    /// the pair's; `None` without metrics).
    pub requests_read: Option<u64>,
    /// Those requests in bytes: the attackers' bytes "in".
    pub request_bytes: Option<u64>,
    /// Reply lines the attackers received during the storm (by today's
    /// format: one per request).
    pub replies_received: u64,
    /// Bytes the attackers received during the storm.
    pub attacker_bytes_received: u64,
    /// Bytes received ÷ request bytes.
    pub amplification: Option<f64>,
    /// Bytes the daemon wrote during the storm, all clients.
    pub daemon_bytes_sent: Option<u64>,
    /// The daemon's CPU seconds during the storm.
    pub daemon_cpu_s: Option<f64>,
    /// Attackers the daemon closed or reset during the storm (each was
    /// replaced by a new connection from the same address, after 0.1 s,
    /// longer if the replacement was refused).
    pub attackers_dropped: u64,
    /// Replacements refused by the daemon (over `--max-per-ip` while it
    /// had not yet freed the dropped one's place).
    pub replacements_refused: u64,
    /// The other room's latency, lines sent during the storm.
    pub pair: Latency3,
    /// RSS before the storm, MiB.
    pub rss_before_mib: Option<f64>,
    /// Highest RSS during the storm and the drain after it, MiB.
    pub rss_peak_mib: Option<f64>,
    /// RSS after, MiB.
    pub rss_after_mib: Option<f64>,
    /// When RSS after was read, seconds after the storm ended.
    pub rss_after_s: f64,
    /// The attackers' connections.
    pub attacker_group: GroupSnapshot,
}

/// The lobby or rooms of idle fillers, and the attackers, connected.
pub struct Stage {
    /// The connections.
    pub crowd: Crowd,
    /// The fillers.
    pub fillers: GroupId,
    /// The attackers.
    pub attackers: GroupId,
}

/// Connects `fillers` idle members (each in a room of its own for
/// [`Kind::Rooms`]) and then `attackers` from one address.
///
/// # Errors
/// When the crowd cannot start, or not every filler or attacker is in.
pub fn stage(daemon: &Daemon, base: Instant, kind: Kind, fillers: usize, attackers: usize) -> Result<Stage> {
    let mut crowd = Crowd::start(
        daemon.addr,
        CROWD_THREADS,
        INFLIGHT,
        base,
        Duration::from_secs(300),
    )?;
    let sources = Sources::pool(addrs::POOL_FILLERS, addrs::SPREAD);
    let spec = GroupSpec {
        persistent: true,
        ..match kind {
            Kind::Who => GroupSpec::idle(fillers, sources),
            Kind::Rooms => GroupSpec {
                setup: Setup::OwnRoom("r".to_string()),
                ready: Ready::Joined,
                ..GroupSpec::idle(fillers, sources)
            },
        }
        .counting("-- server shutting down")
    };
    eprintln!("chat-attack: connecting {fillers} fillers");
    let filler_group = crowd.open(spec)?;
    crowd.wait_settled(filler_group, FILL_TIMEOUT);
    crowd.expect_all(filler_group, fillers, "fillers")?;
    let attacker_spec = GroupSpec {
        persistent: true,
        ..GroupSpec::idle(attackers, Sources::Fixed(addrs::ATTACKER)).counting(kind.reply_marker())
    };
    let attacker_group = crowd.open(attacker_spec)?;
    crowd.wait_settled(attacker_group, Duration::from_secs(30));
    crowd.expect_all(attacker_group, attackers, "attackers")?;
    Ok(Stage {
        crowd,
        fillers: filler_group,
        attackers: attacker_group,
    })
}

/// The chunk an attacker writes over and over.
pub fn attack_chunk(kind: Kind) -> Vec<u8> {
    super::chunk_of(kind.command(), CHUNK)
}

/// Runs who-storm or rooms-storm.
///
/// # Errors
/// When the attack cannot be set up.
pub fn run(ctx: &Ctx, kind: Kind, args: &StormArgs) -> Result<()> {
    let q = ctx.quick();
    let fillers = pick(args.fillers, q, 9000, 300) as usize;
    let attackers = pick(args.attackers, q, 32, 4) as usize;
    let duration = Duration::from_secs(pick(args.duration, q, 20, 2));
    let pair_rate = f64::from(pick(args.pair_rate, q, 20, 20));
    let drain = Duration::from_secs(pick(args.drain, q, 20, 5));
    let setup = super::Setup {
        needs: Vec::new(),
        metrics: true,
    };
    run_part(ctx, kind.name(), None, setup, |daemon, base| {
        let mut stage = stage(daemon, base, kind, fillers, attackers)?;
        let lifetime = duration + drain + Duration::from_secs(60);
        let mut pair = Pair::start(daemon.addr, "quiet", pair_rate, base, lifetime)?;
        let watch = Sampler::start(daemon.pid, base, Duration::from_millis(250), lifetime);
        let astats = stage.crowd.stats(stage.attackers);
        let rss_before = daemon.rss_kib();
        let traffic_before = daemon.traffic();
        let cpu_before = daemon.cpu_s();
        let pair_sent_before = pair.sent();
        let (in0, out0, replies0) = (astats.bytes_in(), astats.bytes_out(), astats.matched());
        let dropped0 = astats.ended();
        let ready0 = astats.live_ready();
        let refused0 = astats.snapshot().refused;

        eprintln!("chat-attack: {} for {} s", kind.name(), duration.as_secs());
        let t0 = nanos(base);
        let start_s = secs(base);
        stage.crowd.repeat(stage.attackers, Some(&attack_chunk(kind)));
        hold_for(daemon, duration);
        let t1 = nanos(base);
        let end_s = secs(base);
        // Everything "during" is read before the attackers stop.
        let received = astats.bytes_in() - in0;
        let replies = astats.matched() - replies0;
        let traffic_after = daemon.traffic();
        let cpu_after = daemon.cpu_s();
        let pair_sent_during = pair.sent() - pair_sent_before;
        stage.crowd.repeat(stage.attackers, None);
        let written = astats.bytes_out() - out0;
        let snapshot = astats.snapshot();
        let refused = snapshot.refused - refused0;
        let dropped = (astats.ended() - dropped0).saturating_sub(refused);

        pair.stop_sending();
        pair.wait_delivered(drain);
        stage.crowd.close(stage.attackers);
        hold_for(daemon, AFTER);
        let rss_after = daemon.rss_kib();
        let rss_after_s = round2(secs(base) - end_s);
        let samples = watch.finish();
        let outcome = pair.finish();
        let latency = outcome.window(t0, t1);

        let requests = match (traffic_before, traffic_after) {
            (Some(b), Some(a)) => Some(a.lines.saturating_sub(b.lines).saturating_sub(pair_sent_during)),
            _ => None,
        };
        let request_bytes = requests.map(|n| n * kind.command().len() as u64);
        let daemon_sent = match (traffic_before, traffic_after) {
            (Some(b), Some(a)) => Some(a.sent.saturating_sub(b.sent)),
            _ => None,
        };
        let amplification = request_bytes
            .filter(|b| *b > 0)
            .map(|b| (received as f64 / b as f64).round());
        let cpu = match (cpu_before, cpu_after) {
            (Some(b), Some(a)) => Some(round2(a - b)),
            _ => None,
        };
        let peak = samples.peak_rss(start_s, f64::MAX).map(|(kib, _)| mib(kib));
        let report = StormReport {
            fillers: stage.crowd.stats(stage.fillers).live_ready(),
            filler_addresses: Sources::pool(addrs::POOL_FILLERS, addrs::SPREAD).addresses(fillers),
            attackers: ready0,
            duration_s: round2(end_s - start_s),
            attacker_bytes_written: written,
            requests_read: requests,
            request_bytes,
            replies_received: replies,
            attacker_bytes_received: received,
            amplification,
            daemon_bytes_sent: daemon_sent,
            daemon_cpu_s: cpu,
            attackers_dropped: dropped,
            replacements_refused: refused,
            pair: latency.clone(),
            rss_before_mib: rss_before.map(mib),
            rss_peak_mib: peak,
            rss_after_mib: rss_after.map(mib),
            rss_after_s,
            attacker_group: astats.snapshot(),
        };
        let what = match kind {
            Kind::Who => format!("{} idle members in #lobby", report.fillers),
            Kind::Rooms => format!("{} rooms", report.fillers),
        };
        let summary = vec![
            format!(
                "{what}; {} attackers from {} for {:.1} s",
                report.attackers,
                addrs::ATTACKER,
                report.duration_s
            ),
            format!(
                "in: {} requests read by the daemon, {} bytes ({written} written); out: {replies} replies, \
                 {received} bytes; amplification {}",
                opt(requests),
                opt(request_bytes),
                opt(report.amplification)
            ),
            format!(
                "daemon CPU {} s in {:.1} s; attackers dropped and replaced: {dropped} ({refused} replacements refused)",
                opt(cpu),
                report.duration_s
            ),
            format!("other room: {}", latency_text(&latency)),
            format!(
                "RSS {} MiB before, peak {} MiB, {} MiB {:.1} s after",
                opt(report.rss_before_mib),
                opt(report.rss_peak_mib),
                opt(report.rss_after_mib),
                rss_after_s
            ),
        ];
        Ok(Outcome {
            summary,
            figures: report,
        })
    })
}

/// An optional figure as text ("n/a" when missing).
pub fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| v.to_string())
}

/// The pair's latency in a line.
pub fn latency_text(l: &Latency3) -> String {
    format!(
        "{} of {} lines delivered, latency p50 {} ms, p99 {} ms, max {} ms",
        l.delivered,
        l.sent,
        opt(l.p50_ms),
        opt(l.p99_ms),
        opt(l.max_ms)
    )
}
