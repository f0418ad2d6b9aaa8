//! log-flood (issue 12, item 14): what a client can make the daemon
//! write to its log.
//!
//! The daemon runs at its default log level (`info`: the environment's
//! `RUST_LOG` is removed) with its stderr in a file, whose lines are
//! counted before and after each part:
//!
//! - **a**: 31 clients in a room (with the sender, 32 from one address,
//!   the default per-address limit) stop reading, with a small receive
//!   buffer; the sender floods the room with 4 KB lines (at the daemon's
//!   default flood control) until all 31 have been dropped as slow
//!   consumers (the sender reads the room's `left` notices). Log lines
//!   written, and how many are slow-consumer warnings.
//! - **b**: one client quits with a reason of 4,000 characters: the
//!   longest log line.
//! - **c**: 32 connections from one address, then 1,000 more from it,
//!   each refused over `--max-per-ip`: log lines written.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use super::addrs::{self, Sources};
use super::cli::{pick, LogFloodArgs, Part};
use super::crowd::{Crowd, GroupSpec};
use super::quit::read_first_line;
use super::sampler::round2;
use super::storm::opt;
use super::{chunk_of, hold_for, line_of, run_part, run_parts, secs, wait_until, Ctx, Outcome, Setup};
use crate::error::Result;

/// The receive buffer asked for by the non-readers: what the daemon sends
/// them waits on its side, so they are dropped sooner.
const SMALL_RCVBUF: usize = 4096;
/// Connections from one address before the refusals: the daemon's default
/// `--max-per-ip`.
const PER_IP: usize = 32;

/// The figures of part a.
#[derive(Debug, Serialize)]
pub struct SlowReport {
    /// Non-readers in the room.
    pub receivers: u64,
    /// `left` notices the sender read: receivers dropped.
    pub dropped: u64,
    /// Seconds of flood until all were dropped (or the bound).
    pub flood_s: f64,
    /// Bytes the sender wrote.
    pub sender_bytes: u64,
    /// Log lines written during the flood.
    pub log_lines: u64,
    /// Of them, lines about slow consumers.
    pub slow_consumer_lines: u64,
    /// Slow-consumer lines per receiver dropped.
    pub lines_per_drop: Option<f64>,
}

/// The figures of part b.
#[derive(Debug, Serialize)]
pub struct ReasonReport {
    /// Characters of the `/quit` reason.
    pub reason_len: usize,
    /// The longest log line, bytes.
    pub longest_log_line: u64,
    /// Log lines the client's visit wrote.
    pub log_lines: u64,
    /// What the client read last.
    pub farewell: String,
}

/// The figures of part c.
#[derive(Debug, Serialize)]
pub struct RefusedReport {
    /// Connections held from the address first.
    pub held: u64,
    /// Further connections from it.
    pub attempts: u64,
    /// Of them, refused with a line.
    pub refused: u64,
    /// The refusal line.
    pub refusal_line: Option<String>,
    /// Log lines written during the refusals.
    pub log_lines: u64,
    /// Of them, lines about refusals.
    pub refusal_lines: u64,
}

/// Runs log-flood.
///
/// # Errors
/// When a part fails.
pub fn run(ctx: &Ctx, args: &LogFloodArgs) -> Result<()> {
    run_parts(&[Part::A, Part::B, Part::C], args.part, |part| match part {
        Part::A => run_slow(ctx, args),
        Part::B => run_reason(ctx, args),
        Part::C => run_refused(ctx, args),
    })
}

fn run_slow(ctx: &Ctx, args: &LogFloodArgs) -> Result<()> {
    let q = ctx.quick();
    let receivers = pick(args.receivers, q, 31, 3) as usize;
    let line_len = pick(args.line_len, q, 4000, 4000) as usize;
    let max_wait = Duration::from_secs(pick(args.max_wait, q, 40, 15));
    let setup = Setup {
        needs: if q {
            vec![("--sendq", "65536".to_string())]
        } else {
            Vec::new()
        },
        metrics: false,
    };
    run_part(ctx, "log-flood", Some(Part::A), setup, |daemon, base| {
        let mut crowd = Crowd::start(daemon.addr, 1, 64, base, max_wait + Duration::from_secs(60))?;
        let sender = crowd.open(GroupSpec {
            persistent: true,
            ..GroupSpec::in_room(1, Sources::Fixed(addrs::ATTACKER), "flood").counting(" left #flood")
        })?;
        crowd.wait_settled(sender, Duration::from_secs(10));
        crowd.expect_all(sender, 1, "sender")?;
        let group = crowd.open(GroupSpec {
            rcvbuf: Some(SMALL_RCVBUF),
            persistent: true,
            ..GroupSpec::in_room(receivers, Sources::Fixed(addrs::ATTACKER), "flood")
        })?;
        crowd.wait_settled(group, Duration::from_secs(30));
        crowd.expect_all(group, receivers, "receivers")?;
        crowd.set_reading(group, false);
        crowd.sync(Duration::from_secs(5));
        let stats = crowd.stats(sender);
        let before = daemon.log_count(&["slow consumer"]);
        let start_s = secs(base);
        eprintln!("chat-attack: flooding #flood until {receivers} non-readers are dropped");
        crowd.repeat(
            sender,
            Some(&chunk_of(&line_of("flood ", line_len), 4 * line_len)),
        );
        wait_until(max_wait, || {
            stats.matched() >= receivers as u64 || !daemon_alive(daemon.pid)
        });
        let flood_s = round2(secs(base) - start_s);
        crowd.repeat(sender, None);
        // What the daemon still had to say about it.
        hold_for(daemon, Duration::from_secs(1));
        let after = daemon.log_count(&["slow consumer"]);
        let slow =
            after.matching.first().copied().unwrap_or(0) - before.matching.first().copied().unwrap_or(0);
        let dropped = stats.matched();
        let report = SlowReport {
            receivers: receivers as u64,
            dropped,
            flood_s,
            sender_bytes: stats.bytes_out(),
            log_lines: after.lines.saturating_sub(before.lines),
            slow_consumer_lines: slow,
            lines_per_drop: (dropped > 0).then(|| round2(slow as f64 / dropped as f64)),
        };
        let summary = vec![
            format!("{dropped} of {receivers} non-readers dropped after {flood_s:.1} s of flood"),
            format!(
                "{} log lines written, {slow} about slow consumers ({} per drop)",
                report.log_lines,
                opt(report.lines_per_drop)
            ),
        ];
        Ok(Outcome {
            summary,
            figures: report,
        })
    })
}

/// True while the process exists (for closures that cannot borrow the
/// daemon).
fn daemon_alive(pid: u32) -> bool {
    crate::procfs::is_alive(pid)
}

fn run_reason(ctx: &Ctx, args: &LogFloodArgs) -> Result<()> {
    let q = ctx.quick();
    let reason_len = pick(args.reason_len, q, 4000, 4000) as usize;
    run_part(
        ctx,
        "log-flood",
        Some(Part::B),
        Setup::default(),
        |daemon, _base| {
            let before = daemon.log_count(&[]);
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            socket.bind(&std::net::SocketAddr::from((addrs::QUITTER, 0)).into())?;
            socket.connect_timeout(&daemon.addr.into(), Duration::from_secs(5))?;
            let mut stream = std::net::TcpStream::from(socket);
            read_first_line(&mut stream)?;
            let mut quit = b"/quit ".to_vec();
            quit.resize(6 + reason_len, b'r');
            quit.push(b'\n');
            stream.write_all(&quit)?;
            let farewell = read_first_line(&mut stream).unwrap_or_else(|e| e.to_string());
            // The hub logs the disconnect as it handles the `/quit` whose
            // `-- bye` was just read; half a second is ample for the write.
            drop(stream);
            hold_for(daemon, Duration::from_millis(500));
            let after = daemon.log_count(&[]);
            let report = ReasonReport {
                reason_len,
                longest_log_line: after.longest,
                log_lines: after.lines.saturating_sub(before.lines),
                farewell,
            };
            let summary = vec![format!(
                "a /quit reason of {reason_len} characters: longest log line {} bytes ({} lines written)",
                report.longest_log_line, report.log_lines
            )];
            Ok(Outcome {
                summary,
                figures: report,
            })
        },
    )
}

fn run_refused(ctx: &Ctx, args: &LogFloodArgs) -> Result<()> {
    let q = ctx.quick();
    let attempts = pick(args.refused, q, 1000, 50) as usize;
    run_part(
        ctx,
        "log-flood",
        Some(Part::C),
        Setup::default(),
        |daemon, base| {
            let mut crowd = Crowd::start(daemon.addr, 1, 64, base, Duration::from_secs(120))?;
            let held = crowd.open(GroupSpec {
                persistent: true,
                ..GroupSpec::idle(PER_IP, Sources::Fixed(addrs::REFUSED))
            })?;
            crowd.wait_settled(held, Duration::from_secs(30));
            let needles = ["refused", "too many"];
            let before = daemon.log_count(&needles);
            eprintln!("chat-attack: {attempts} connections over --max-per-ip");
            let extra = crowd.open(GroupSpec::idle(attempts, Sources::Fixed(addrs::REFUSED)))?;
            crowd.wait_settled(extra, Duration::from_secs(60));
            hold_for(daemon, Duration::from_millis(500));
            let after = daemon.log_count(&needles);
            let snap = crowd.stats(extra).snapshot();
            let refusal_lines = after
                .matching
                .iter()
                .zip(&before.matching)
                .map(|(a, b)| a - b)
                .max()
                .unwrap_or(0);
            let report = RefusedReport {
                held: crowd.stats(held).live_ready(),
                attempts: attempts as u64,
                refused: snap.refused,
                refusal_line: snap.refusal_line.clone(),
                log_lines: after.lines.saturating_sub(before.lines),
                refusal_lines,
            };
            let summary = vec![format!(
            "{} held, then {attempts} more from {}: {} refused ({}); {} log lines written, {refusal_lines} about refusals",
            report.held,
            addrs::REFUSED,
            report.refused,
            opt(report.refusal_line.clone()),
            report.log_lines
        )];
            Ok(Outcome {
                summary,
                figures: report,
            })
        },
    )
}
