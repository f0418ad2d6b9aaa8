//! quit-blast and quit-hold (issue 12, items 6 and 10): what a client can
//! do after `/quit`, while the daemon lets its socket linger.
//!
//! **quit-blast**: one client sends `/quit` and then writes 64 KiB blocks
//! as fast as it can for 4 s without reading, while the pair exchanges
//! timestamped lines. The bytes the daemon read come from its metrics
//! (`chat_received_bytes_total`, less the pair's lines); `/proc/PID/io`
//! would not do, since `rchar` does not count `recv(2)`, which is how the
//! daemon reads sockets. The pair's latency is given for a baseline
//! before the blast and for the blast.
//!
//! **quit-hold**: connections that each send `/quit` as soon as they are
//! connected and then neither read nor close, opened as fast as possible
//! for 3 s from many source addresses. Each costs this side a descriptor
//! too, and one process may hold at most its descriptor limit (20,000
//! here, as the daemon), so they are held by worker processes (this
//! binary's hidden `hold-worker` subcommand), each under its own limit.
//! The daemon's descriptors are read from `/proc/PID/fd` every 100 ms; a
//! fresh user knocks when the opening ends and again at the end.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Socket, Type};

use super::addrs::{self, Sources};
use super::cli::{pick, HoldWorkerArgs, QuitBlastArgs, QuitHoldArgs};
use super::crowd::{Crowd, GroupSpec, Ready};
use super::pair::{Latency3, Pair};
use super::probe::{self, Probe};
use super::sampler::{round2, Sampler};
use super::storm::opt;
use super::{hold_for, nanos, run_part, secs, Ctx, Outcome, Setup};
use crate::error::{Error, Result};
use crate::payload::LINE_LEN;

/// Bytes of each blast write.
const BLAST_BLOCK: usize = 64 * 1024;
/// How long a fresh user waits for its first line.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Connects in flight per worker.
const HOLD_INFLIGHT: usize = 256;

/// The figures of quit-blast.
#[derive(Debug, Serialize)]
pub struct BlastReport {
    /// Seconds of blasting.
    pub duration_s: f64,
    /// Bytes the blaster wrote after `/quit`.
    pub blaster_bytes_written: u64,
    /// How the blaster's writing ended, if not by its own clock.
    pub blaster_error: Option<String>,
    /// Bytes the daemon read during the blast, less the pair's lines
    /// (`None` without metrics).
    pub daemon_bytes_read: Option<u64>,
    /// The same per second, GB/s.
    pub daemon_read_gb_per_s: Option<f64>,
    /// The daemon's CPU seconds during the blast.
    pub daemon_cpu_s: Option<f64>,
    /// The pair's latency before the blast.
    pub pair_before: Latency3,
    /// The pair's latency during the blast.
    pub pair_during: Latency3,
}

/// Runs quit-blast.
///
/// # Errors
/// When the attack cannot be set up.
pub fn run_blast(ctx: &Ctx, args: &QuitBlastArgs) -> Result<()> {
    let q = ctx.quick();
    let duration = Duration::from_secs(pick(args.duration, q, 4, 1));
    let baseline = Duration::from_secs(pick(args.baseline, q, 3, 1));
    let pair_rate = f64::from(pick(args.pair_rate, q, 50, 50));
    let setup = Setup {
        needs: Vec::new(),
        metrics: true,
    };
    run_part(ctx, "quit-blast", None, setup, |daemon, base| {
        let lifetime = baseline + duration + Duration::from_secs(60);
        let mut pair = Pair::start(daemon.addr, "quiet", pair_rate, base, lifetime)?;
        let mut blaster = connect_from(daemon.addr, addrs::BLASTER)?;
        read_first_line(&mut blaster)?;
        let b0 = nanos(base);
        hold_for(daemon, baseline);

        eprintln!("chat-attack: /quit, then blasting for {} s", duration.as_secs());
        let traffic_before = daemon.traffic();
        let cpu_before = daemon.cpu_s();
        let pair_sent_before = pair.sent();
        let t0 = nanos(base);
        let start_s = secs(base);
        blaster.write_all(b"/quit\n")?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let blast = thread::Builder::new()
            .name("blaster".to_string())
            .spawn(move || blast_for(blaster, duration, &flag))
            .map_err(|e| Error::msg(format!("cannot start the blaster: {e}")))?;
        hold_for(daemon, duration);
        stop.store(true, Ordering::Relaxed);
        let (written, blaster_error) = blast
            .join()
            .unwrap_or((0, Some("the blaster thread panicked".to_string())));
        let t1 = nanos(base);
        let took = (secs(base) - start_s).max(0.001);
        // The daemon counts bytes at the end of its turn: a moment for the
        // last one.
        hold_for(daemon, Duration::from_millis(500));
        let traffic_after = daemon.traffic();
        let cpu_after = daemon.cpu_s();
        let pair_lines = pair.sent() - pair_sent_before;
        pair.stop_sending();
        pair.wait_delivered(Duration::from_secs(10));
        let outcome = pair.finish();
        let read = match (traffic_before, traffic_after) {
            (Some(b), Some(a)) => Some(
                a.received
                    .saturating_sub(b.received)
                    .saturating_sub(pair_lines * LINE_LEN as u64),
            ),
            _ => None,
        };
        let cpu = match (cpu_before, cpu_after) {
            (Some(b), Some(a)) => Some(round2(a - b)),
            _ => None,
        };
        let report = BlastReport {
            duration_s: round2(took),
            blaster_bytes_written: written,
            blaster_error,
            daemon_bytes_read: read,
            daemon_read_gb_per_s: read.map(|r| round2(r as f64 / 1e9 / took)),
            daemon_cpu_s: cpu,
            pair_before: outcome.window(b0, t0),
            pair_during: outcome.window(t0, t1),
        };
        let summary = vec![
            format!(
                "after /quit the blaster wrote {written} bytes in {took:.1} s{}",
                report
                    .blaster_error
                    .as_ref()
                    .map_or_else(String::new, |e| format!(" (then: {e})"))
            ),
            format!(
                "the daemon read {} bytes ({} GB/s), CPU {} s",
                opt(read),
                opt(report.daemon_read_gb_per_s),
                opt(cpu)
            ),
            format!(
                "other clients: median {} ms, p99 {} ms before; median {} ms, p99 {} ms during",
                opt(report.pair_before.p50_ms),
                opt(report.pair_before.p99_ms),
                opt(report.pair_during.p50_ms),
                opt(report.pair_during.p99_ms)
            ),
        ];
        Ok(Outcome {
            summary,
            figures: report,
        })
    })
}

/// Writes 64 KiB blocks until `duration` has passed, `stop` is set, or a
/// write fails; returns the bytes written and the error, if any.
fn blast_for(mut stream: TcpStream, duration: Duration, stop: &AtomicBool) -> (u64, Option<String>) {
    let block = vec![b'x'; BLAST_BLOCK];
    let deadline = Instant::now() + duration;
    let mut written: u64 = 0;
    if let Err(e) = stream.set_write_timeout(Some(Duration::from_millis(100))) {
        return (0, Some(e.to_string()));
    }
    // Each turn writes or times out within 100 ms; bounded by the deadline.
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        match stream.write(&block) {
            Ok(0) => return (written, Some("write returned 0".to_string())),
            Ok(n) => written += n as u64,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (written, Some(e.to_string())),
        }
    }
    (written, None)
}

/// A blocking connection from `source`.
fn connect_from(addr: SocketAddr, source: std::net::Ipv4Addr) -> Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    socket.connect_timeout(&addr.into(), Duration::from_secs(5))?;
    Ok(TcpStream::from(socket))
}

/// Reads up to the end of the first line (within 5 s), returning it.
pub fn read_first_line(stream: &mut TcpStream) -> Result<String> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    // Bounded by the line's length and the read timeout.
    while line.len() < 4096 {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) => return Err(Error::msg(format!("no first line: {e}"))),
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// What a worker of quit-hold reports when its opening time is up.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerCounts {
    /// Connects started.
    pub attempted: u64,
    /// Connects completed.
    pub connected: u64,
    /// `/quit` written.
    pub quit_sent: u64,
    /// Connects that failed.
    pub connect_failed: u64,
    /// Connections that ended while held (reset, ...).
    pub ended: u64,
    /// The first error.
    pub first_error: Option<String>,
}

/// The figures of quit-hold.
#[derive(Debug, Serialize)]
pub struct HoldReport {
    /// Seconds of opening.
    pub duration_s: f64,
    /// Worker processes.
    pub workers: usize,
    /// Their counts when their opening ended.
    pub per_worker: Vec<WorkerCounts>,
    /// Connections that sent `/quit`, all workers.
    pub quit_sent: u64,
    /// Connects still under way when opening ended (the daemon was not
    /// accepting).
    pub still_connecting: u64,
    /// The daemon's most open descriptors, and when (seconds since the
    /// opening began).
    pub fds_peak: Option<u64>,
    /// When.
    pub fds_peak_at_s: Option<f64>,
    /// (seconds since the opening began, descriptors), every half second.
    pub fds_curve: Vec<(f64, f64)>,
    /// Log lines about failed accepts ("cannot accept", "Too many open
    /// files").
    pub accept_error_log_lines: u64,
    /// A fresh user when the opening ended.
    pub probe_at_peak: Probe,
    /// A fresh user at the end.
    pub probe_at_end: Probe,
}

/// Runs quit-hold.
///
/// # Errors
/// When the workers cannot be started.
pub fn run_hold(ctx: &Ctx, args: &QuitHoldArgs) -> Result<()> {
    let q = ctx.quick();
    let duration = Duration::from_secs(pick(args.duration, q, 3, 1));
    let workers = pick(args.workers, q, 2, 1) as usize;
    let per_worker = pick(args.per_worker, q, 15_000, 2000);
    let per_addr = pick(args.per_addr, q, 20, 20);
    let watch_for = Duration::from_secs(pick(args.watch, q, 7, 6));
    run_part(ctx, "quit-hold", None, Setup::default(), |daemon, base| {
        let exe = std::env::current_exe()?;
        let lifetime = duration + watch_for + Duration::from_secs(30);
        let watch = Sampler::start(daemon.pid, base, Duration::from_millis(100), lifetime);
        let start_s = secs(base);
        eprintln!(
            "chat-attack: {workers} workers opening /quit-and-hold connections for {} s",
            duration.as_secs()
        );
        let mut children: Vec<Child> = Vec::new();
        for w in 0..workers {
            let pool = addrs::POOL_HOLD.saturating_add(u8::try_from(w).unwrap_or(0));
            let child = Command::new(&exe)
                .arg("hold-worker")
                .args(["--addr", &daemon.addr.to_string()])
                .args(["--pool", &pool.to_string()])
                .args(["--per-addr", &per_addr.to_string()])
                .args(["--count", &per_worker.to_string()])
                .args(["--open-ms", &duration.as_millis().to_string()])
                .args(["--lifetime", &lifetime.as_secs().to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| Error::msg(format!("cannot start a hold worker: {e}")))?;
            children.push(child);
        }
        // Each worker prints its counts when its opening time is up.
        let (tx, rx) = crossbeam_channel::unbounded();
        for child in &mut children {
            if let Some(out) = child.stdout.take() {
                let tx = tx.clone();
                thread::spawn(move || {
                    let mut line = String::new();
                    let _ = BufReader::new(out).take(1 << 20).read_line(&mut line);
                    let _ = tx.send(serde_json::from_str::<WorkerCounts>(&line).unwrap_or_default());
                });
            }
        }
        drop(tx);
        let deadline = Instant::now() + duration + Duration::from_secs(10);
        let mut per_worker_counts = Vec::new();
        for _ in 0..workers {
            if let Ok(counts) = rx.recv_deadline(deadline) {
                per_worker_counts.push(counts);
            }
        }
        let end_s = secs(base);
        let probe_at_peak = probe::fresh_user(daemon.addr, base, PROBE_TIMEOUT);
        hold_for(
            daemon,
            watch_for.saturating_sub(Duration::from_secs_f64(secs(base) - end_s)),
        );
        let probe_at_end = probe::fresh_user(daemon.addr, base, PROBE_TIMEOUT);
        // Closing a worker's stdin tells it to close its connections and
        // exit; it is killed if it has not within 10 s.
        for child in &mut children {
            drop(child.stdin.take());
        }
        for child in &mut children {
            let done = super::wait_until(Duration::from_secs(10), || {
                matches!(child.try_wait(), Ok(Some(_)))
            });
            if !done {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let samples = watch.finish();
        let peak = samples.peak_fds(start_s, f64::MAX);
        let log = daemon.log_count(&["cannot accept", "Too many open files"]);
        let quit_sent = per_worker_counts.iter().map(|c| c.quit_sent).sum();
        let still_connecting = per_worker_counts
            .iter()
            .map(|c| c.attempted.saturating_sub(c.connected + c.connect_failed))
            .sum();
        let report = HoldReport {
            duration_s: round2(end_s - start_s),
            workers,
            per_worker: per_worker_counts,
            quit_sent,
            still_connecting,
            fds_peak: peak.map(|(n, _)| n),
            fds_peak_at_s: peak.map(|(_, t)| round2(t - start_s)),
            fds_curve: samples.curve(start_s, f64::MAX, 0.5, |s| s.fds.map(|n| n as f64)),
            accept_error_log_lines: log.matching.iter().copied().max().unwrap_or(0),
            probe_at_peak,
            probe_at_end,
        };
        let summary = vec![
            format!(
                "{quit_sent} connections sent /quit and held in {:.1} s ({workers} workers, {still_connecting} \
                 connects still pending)",
                report.duration_s
            ),
            format!(
                "daemon descriptors: peak {} at {} s; {} accept-error log lines",
                opt(report.fds_peak),
                opt(report.fds_peak_at_s),
                report.accept_error_log_lines
            ),
            format!(
                "a fresh user at the peak: {} ({}); at the end: {} ({})",
                report.probe_at_peak.outcome,
                report.probe_at_peak.detail,
                report.probe_at_end.outcome,
                report.probe_at_end.detail
            ),
        ];
        Ok(Outcome {
            summary,
            figures: report,
        })
    })
}

/// The hidden `hold-worker` subcommand: opens connections that send
/// `/quit` and hold them, prints its counts as one JSON line when its
/// opening time is up, and holds until its stdin closes or its lifetime
/// ends.
///
/// # Errors
/// When the crowd cannot be started.
pub fn hold_worker(args: &HoldWorkerArgs) -> Result<()> {
    super::raise_nofile();
    let base = Instant::now();
    let lifetime = Duration::from_secs(args.lifetime);
    let mut crowd = Crowd::start(args.addr, 1, HOLD_INFLIGHT, base, lifetime)?;
    let room = super::crowd::descriptor_room();
    let count = (args.count as usize).min(usize::try_from(room).unwrap_or(usize::MAX));
    let open_for = Duration::from_millis(args.open_ms);
    let spec = GroupSpec {
        send_on_connect: b"/quit\n".to_vec(),
        ready: Ready::Written,
        reading: false,
        open_for: Some(open_for),
        ..GroupSpec::idle(
            count,
            Sources::Pool {
                pool: args.pool,
                per_addr: args.per_addr as usize,
                first: 0,
            },
        )
    };
    let group = crowd.open(spec)?;
    thread::sleep(open_for);
    let snap = crowd.stats(group).snapshot();
    let counts = WorkerCounts {
        attempted: snap.attempted,
        connected: snap.connected,
        quit_sent: snap.ready,
        connect_failed: snap.connect_failed,
        ended: snap.eof + snap.reset + snap.failed,
        first_error: snap.first_error,
    };
    let line = serde_json::to_string(&counts).map_err(|e| Error::msg(e.to_string()))?;
    println!("{line}");
    let _ = io::stdout().flush();
    // Hold until the parent closes our stdin (EOF) or the lifetime ends.
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = io::stdin().take(1 << 20).read_to_end(&mut sink);
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(lifetime.saturating_sub(base.elapsed()));
    crowd.stop();
    Ok(())
}
