//! queue-memory (issue 12, item 7): memory that never comes back after a
//! burst of output has been read.
//!
//! - **a**: 9,000 rooms (an idle owner each), then 4,000 clients that each
//!   send `/rooms` once and read the reply at once. RSS before, at the
//!   peak, and some seconds after every reply has been read.
//! - **b**: 1,000 clients in a room stop reading; four senders (within
//!   their flood-control burst) send 4 KB lines until about 700 KiB is
//!   queued for each; then the readers read everything. RSS after they
//!   caught up.
//! - **c**: a paste of 50 lines of 4 KB into a room of 500, everyone
//!   reads it. RSS per connection after, against the idle cost per
//!   connection before (BENCHMARKS.md: 772 bytes).
//!
//! "Everything read" is known from the readers' count of the lines they
//! expect, with a fallback of "nothing arrived for 2 s" (bounded), so a
//! daemon that answers in another format still ends the wait. The daemon's
//! RSS is read every 100 ms for the peak.

use std::time::Duration;

use serde::Serialize;

use super::addrs::{self, Sources};
use super::cli::{pick, Part, QueueMemoryArgs};
use super::crowd::{Crowd, GroupId, GroupSpec, Ready, Setup as ConnSetup};
use super::sampler::{round2, Sampler};
use super::storm::opt;
use super::{
    hold_for, line_of, mib, run_part, run_parts, secs, wait_done_or_quiet, wait_quiet, Ctx, Outcome, Setup,
};
use crate::error::Result;
use crate::procfs;

/// Nothing arriving for this long counts as "everything read".
const QUIET: Duration = Duration::from_secs(2);
/// Longest wait for connections to be in place.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for everything to be read.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Senders in part b.
const SENDERS: usize = 4;

/// The figures of part a.
#[derive(Debug, Serialize)]
pub struct RoomsReport {
    /// Rooms with an owner.
    pub rooms: u64,
    /// Clients that asked.
    pub askers: u64,
    /// Replies read (by today's format).
    pub replies_read: u64,
    /// Bytes read by the askers.
    pub bytes_read: u64,
    /// Seconds from the requests until everything was read.
    pub read_s: f64,
    /// RSS with everyone connected, before the requests, MiB.
    pub rss_before_mib: Option<f64>,
    /// Highest RSS, MiB.
    pub rss_peak_mib: Option<f64>,
    /// RSS some seconds after everything was read, MiB.
    pub rss_after_mib: Option<f64>,
    /// How long after, seconds.
    pub rss_after_s: f64,
}

/// The figures of part b.
#[derive(Debug, Serialize)]
pub struct CatchUpReport {
    /// Clients that paused and caught up.
    pub readers: u64,
    /// Lines sent to the room.
    pub lines: u64,
    /// Bytes of each.
    pub line_len: usize,
    /// What was sent to each reader, KiB.
    pub kib_per_reader: f64,
    /// RSS with everyone in the room, before, MiB.
    pub rss_idle_mib: Option<f64>,
    /// RSS with everything queued, MiB.
    pub rss_queued_mib: Option<f64>,
    /// Highest RSS, MiB.
    pub rss_peak_mib: Option<f64>,
    /// RSS some seconds after they caught up, MiB.
    pub rss_after_mib: Option<f64>,
    /// How long after, seconds.
    pub rss_after_s: f64,
    /// Lines the readers read, all together (expected: readers × lines).
    pub lines_read: u64,
    /// Readers the daemon dropped meanwhile.
    pub readers_dropped: u64,
}

/// The figures of part c.
#[derive(Debug, Serialize)]
pub struct PasteReport {
    /// Members of the room, the paster included.
    pub members: u64,
    /// Lines of the paste.
    pub lines: u64,
    /// Bytes of each.
    pub line_len: usize,
    /// RSS before anyone connected, KiB.
    pub rss_empty_kib: Option<u64>,
    /// RSS with the members in the room, KiB.
    pub rss_idle_kib: Option<u64>,
    /// Highest RSS, KiB.
    pub rss_peak_kib: Option<u64>,
    /// RSS some seconds after everyone read the paste, KiB.
    pub rss_after_kib: Option<u64>,
    /// How long after, seconds.
    pub rss_after_s: f64,
    /// (idle − empty) ÷ members, bytes: an idle connection's cost.
    pub idle_bytes_per_conn: Option<u64>,
    /// (after − empty) ÷ members, bytes: a connection's cost once the
    /// paste drained.
    pub after_bytes_per_conn: Option<u64>,
    /// Lines the readers read, all together (expected: (members − 1) ×
    /// lines).
    pub lines_read: u64,
}

/// Runs queue-memory.
///
/// # Errors
/// When a part fails.
pub fn run(ctx: &Ctx, args: &QueueMemoryArgs) -> Result<()> {
    run_parts(&[Part::A, Part::B, Part::C], args.part, |part| match part {
        Part::A => run_rooms(ctx, args),
        Part::B => run_catch_up(ctx, args),
        Part::C => run_paste(ctx, args),
    })
}

/// The daemon's RSS read straight from `/proc` (for closures that cannot
/// borrow the daemon).
fn rss_of(pid: u32) -> u64 {
    procfs::vm_rss_kib(pid).unwrap_or(0)
}

/// Part a.
fn run_rooms(ctx: &Ctx, args: &QueueMemoryArgs) -> Result<()> {
    let q = ctx.quick();
    let rooms = pick(args.rooms, q, 9000, 300) as usize;
    let askers = pick(args.askers, q, 4000, 100) as usize;
    let settle = Duration::from_secs(pick(args.settle, q, 5, 1));
    let clients = rooms + askers + 64;
    let setup = Setup {
        needs: if clients > 10_000 {
            vec![("--max-clients", clients.to_string())]
        } else {
            Vec::new()
        },
        metrics: false,
    };
    run_part(ctx, "queue-memory", Some(Part::A), setup, |daemon, base| {
        let mut crowd = Crowd::start(daemon.addr, 2, 128, base, Duration::from_secs(300))?;
        eprintln!("chat-attack: {rooms} rooms, then {askers} clients");
        let owners = open(
            &mut crowd,
            GroupSpec {
                setup: ConnSetup::OwnRoom("r".to_string()),
                ready: Ready::Joined,
                ..GroupSpec::idle(rooms, Sources::pool(addrs::POOL_FILLERS, addrs::SPREAD))
            },
        )?;
        crowd.wait_settled(owners, SETUP_TIMEOUT);
        crowd.expect_all(owners, rooms, "room owners")?;
        let group = open(
            &mut crowd,
            GroupSpec::idle(askers, Sources::pool(addrs::POOL_CLIENTS, addrs::SPREAD)).counting(" rooms: "),
        )?;
        crowd.wait_settled(group, SETUP_TIMEOUT);
        crowd.expect_all(group, askers, "askers")?;
        let stats = crowd.stats(group);
        let watch = Sampler::start(
            daemon.pid,
            base,
            Duration::from_millis(100),
            Duration::from_secs(200),
        );
        let rss_before = daemon.rss_kib();
        let start_s = secs(base);
        crowd.send(group, b"/rooms\n");
        wait_done_or_quiet(
            READ_TIMEOUT,
            QUIET,
            || stats.matched() >= askers as u64,
            || stats.bytes_in(),
        );
        let read_s = round2(secs(base) - start_s);
        let read_at = secs(base);
        hold_for(daemon, settle);
        let rss_after = daemon.rss_kib();
        let samples = watch.finish();
        let report = RoomsReport {
            rooms: crowd.stats(owners).live_ready(),
            askers: stats.live_ready(),
            replies_read: stats.matched(),
            bytes_read: stats.bytes_in(),
            read_s,
            rss_before_mib: rss_before.map(mib),
            rss_peak_mib: samples.peak_rss(start_s, f64::MAX).map(|(k, _)| mib(k)),
            rss_after_mib: rss_after.map(mib),
            rss_after_s: round2(secs(base) - read_at),
        };
        let summary = vec![
            format!(
                "{} rooms; {} clients each sent /rooms once and read {} replies ({} bytes) in {read_s:.1} s",
                report.rooms, report.askers, report.replies_read, report.bytes_read
            ),
            format!(
                "RSS {} MiB before, peak {} MiB, {} MiB {:.1} s after everything was read",
                opt(report.rss_before_mib),
                opt(report.rss_peak_mib),
                opt(report.rss_after_mib),
                report.rss_after_s
            ),
        ];
        Ok(Outcome {
            summary,
            figures: report,
        })
    })
}

/// Part b.
fn run_catch_up(ctx: &Ctx, args: &QueueMemoryArgs) -> Result<()> {
    let q = ctx.quick();
    let readers = pick(args.readers, q, 1000, 50) as usize;
    let backlog_kib = pick(args.backlog_kib, q, 700, 700) as usize;
    let line_len = pick(args.line_len, q, 4000, 4000) as usize;
    let settle = Duration::from_secs(pick(args.settle, q, 5, 1));
    let per_sender = (backlog_kib * 1024).div_ceil(line_len).div_ceil(SENDERS);
    let lines = (per_sender * SENDERS) as u64;
    run_part(
        ctx,
        "queue-memory",
        Some(Part::B),
        Setup::default(),
        |daemon, base| {
            let mut crowd = Crowd::start(daemon.addr, 2, 128, base, Duration::from_secs(300))?;
            let senders = open(
                &mut crowd,
                GroupSpec::in_room(SENDERS, Sources::pool(addrs::POOL_SENDERS, 1), "big"),
            )?;
            crowd.wait_settled(senders, SETUP_TIMEOUT);
            crowd.expect_all(senders, SENDERS, "senders")?;
            eprintln!("chat-attack: {readers} readers into #big");
            let group = open(
                &mut crowd,
                GroupSpec::in_room(readers, Sources::pool(addrs::POOL_CLIENTS, addrs::SPREAD), "big")
                    .counting("> qm b "),
            )?;
            crowd.wait_settled(group, SETUP_TIMEOUT);
            crowd.expect_all(group, readers, "readers")?;
            let stats = crowd.stats(group);
            wait_quiet(Duration::from_millis(500), Duration::from_secs(10), || {
                stats.bytes_in()
            });
            let watch = Sampler::start(
                daemon.pid,
                base,
                Duration::from_millis(100),
                Duration::from_secs(200),
            );
            let rss_idle = daemon.rss_kib();
            let start_s = secs(base);
            crowd.set_reading(group, false);
            crowd.sync(Duration::from_secs(5));
            let mut burst = Vec::with_capacity(per_sender * line_len);
            for _ in 0..per_sender {
                burst.extend_from_slice(&line_of("qm b ", line_len));
            }
            eprintln!("chat-attack: {lines} lines of {line_len} bytes to readers that do not read");
            crowd.send(senders, &burst);
            // Queued once the daemon's memory stops moving.
            let pid = daemon.pid;
            wait_quiet(Duration::from_secs(1), Duration::from_secs(30), || rss_of(pid));
            let rss_queued = daemon.rss_kib();
            crowd.set_reading(group, true);
            let expected = lines * readers as u64;
            wait_done_or_quiet(
                READ_TIMEOUT,
                QUIET,
                || stats.matched() >= expected,
                || stats.bytes_in(),
            );
            let read_at = secs(base);
            hold_for(daemon, settle);
            let rss_after = daemon.rss_kib();
            let samples = watch.finish();
            let report = CatchUpReport {
                readers: readers as u64,
                lines,
                line_len,
                kib_per_reader: round2((lines as usize * line_len) as f64 / 1024.0),
                rss_idle_mib: rss_idle.map(mib),
                rss_queued_mib: rss_queued.map(mib),
                rss_peak_mib: samples.peak_rss(start_s, f64::MAX).map(|(k, _)| mib(k)),
                rss_after_mib: rss_after.map(mib),
                rss_after_s: round2(secs(base) - read_at),
                lines_read: stats.matched(),
                readers_dropped: stats.ended(),
            };
            let summary = vec![
            format!(
                "{readers} readers paused while {lines} lines ({:.0} KiB each) were sent; read {} of {expected} lines; \
                 {} dropped",
                report.kib_per_reader, report.lines_read, report.readers_dropped
            ),
            format!(
                "RSS {} MiB idle, {} MiB queued, peak {} MiB, {} MiB {:.1} s after they caught up",
                opt(report.rss_idle_mib),
                opt(report.rss_queued_mib),
                opt(report.rss_peak_mib),
                opt(report.rss_after_mib),
                report.rss_after_s
            ),
        ];
            Ok(Outcome {
                summary,
                figures: report,
            })
        },
    )
}

/// Part c.
fn run_paste(ctx: &Ctx, args: &QueueMemoryArgs) -> Result<()> {
    let q = ctx.quick();
    let members = pick(args.members, q, 500, 50) as usize;
    let paste_lines = pick(args.paste_lines, q, 50, 10) as usize;
    let line_len = pick(args.line_len, q, 4000, 4000) as usize;
    let settle = Duration::from_secs(pick(args.settle, q, 5, 1));
    run_part(
        ctx,
        "queue-memory",
        Some(Part::C),
        Setup::default(),
        |daemon, base| {
            let rss_empty = daemon.rss_kib();
            let mut crowd = Crowd::start(daemon.addr, 2, 128, base, Duration::from_secs(300))?;
            let readers = members - 1;
            let group = open(
                &mut crowd,
                GroupSpec::in_room(
                    readers,
                    Sources::pool(addrs::POOL_CLIENTS, addrs::SPREAD),
                    "paste",
                )
                .counting("> paste "),
            )?;
            let paster = open(
                &mut crowd,
                GroupSpec::in_room(1, Sources::pool(addrs::POOL_SENDERS, 1), "paste"),
            )?;
            crowd.wait_settled(group, SETUP_TIMEOUT);
            crowd.wait_settled(paster, SETUP_TIMEOUT);
            crowd.expect_all(group, readers, "members")?;
            crowd.expect_all(paster, 1, "the paster")?;
            let stats = crowd.stats(group);
            wait_quiet(Duration::from_millis(500), Duration::from_secs(10), || {
                stats.bytes_in()
            });
            let rss_idle = daemon.rss_kib();
            let watch = Sampler::start(
                daemon.pid,
                base,
                Duration::from_millis(100),
                Duration::from_secs(100),
            );
            let start_s = secs(base);
            let mut paste = Vec::with_capacity(paste_lines * line_len);
            for _ in 0..paste_lines {
                paste.extend_from_slice(&line_of("paste ", line_len));
            }
            crowd.send(paster, &paste);
            let expected = (readers * paste_lines) as u64;
            wait_done_or_quiet(
                READ_TIMEOUT,
                QUIET,
                || stats.matched() >= expected,
                || stats.bytes_in(),
            );
            let read_at = secs(base);
            hold_for(daemon, settle);
            let rss_after = daemon.rss_kib();
            let samples = watch.finish();
            let per_conn = |kib: Option<u64>| match (kib, rss_empty) {
                (Some(k), Some(e)) => Some(k.saturating_sub(e) * 1024 / members as u64),
                _ => None,
            };
            let report = PasteReport {
                members: members as u64,
                lines: paste_lines as u64,
                line_len,
                rss_empty_kib: rss_empty,
                rss_idle_kib: rss_idle,
                rss_peak_kib: samples.peak_rss(start_s, f64::MAX).map(|(k, _)| k),
                rss_after_kib: rss_after,
                rss_after_s: round2(secs(base) - read_at),
                idle_bytes_per_conn: per_conn(rss_idle),
                after_bytes_per_conn: per_conn(rss_after),
                lines_read: stats.matched(),
            };
            let summary = vec![
            format!(
                "a paste of {paste_lines} lines of {line_len} bytes into a room of {members}; {} of {expected} lines read",
                report.lines_read
            ),
            format!(
                "RSS {} KiB empty, {} KiB idle ({} bytes per connection), peak {} KiB, {} KiB {:.1} s after \
                 ({} bytes per connection)",
                opt(rss_empty),
                opt(rss_idle),
                opt(report.idle_bytes_per_conn),
                opt(report.rss_peak_kib),
                opt(rss_after),
                report.rss_after_s,
                opt(report.after_bytes_per_conn)
            ),
        ];
            Ok(Outcome {
                summary,
                figures: report,
            })
        },
    )
}

/// Opens `spec` persistent: a connection refused at the door (a
/// connection throttle) is retried, since this attack is not about the
/// door.
fn open(crowd: &mut Crowd, spec: GroupSpec) -> Result<GroupId> {
    crowd.open(GroupSpec {
        persistent: true,
        ..spec
    })
}
