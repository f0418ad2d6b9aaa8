//! sigterm-backlog (issue 12, item 8): shutdown when the hub is behind.
//!
//! The daemon is put behind until the pair's oldest undelivered line is
//! 2 s old (or 15 s have passed), then sent SIGTERM, and the attack keeps
//! going (an attacker does not stop because the server is stopping):
//!
//! - **a**: a `/who` storm into a lobby of idle members (as who-storm);
//! - **b**: with `--rate 0`, flooders writing chat lines into the lobby
//!   (as flood).
//!
//! The pair stops sending at SIGTERM; its readers read on until their
//! connections end. Reported: the time from SIGTERM to the daemon's exit
//! (bounded: then SIGKILL and "did not exit"), its exit status, for each
//! of the pair whether it read `-- server shutting down`, how many of the
//! other's lines sent before SIGTERM it got and how its connection ended
//! (EOF or reset), how many idle members were told, the daemon's CPU each
//! second after SIGTERM, and how far behind it was (the pair's latency
//! just before SIGTERM).

use std::time::Duration;

use serde::Serialize;

use super::addrs::{self, Sources};
use super::cli::{pick, Part, SigtermArgs};
use super::crowd::{Crowd, GroupId, GroupSpec};
use super::pair::{Latency3, Pair, SideOutcome};
use super::sampler::{round2, Sampler};
use super::storm::{self, opt, Kind};
use super::{chunk_of, line_of, nanos, run_part, run_parts, secs, wait_until, Ctx, Outcome, Setup};
use crate::error::{Error, Result};

/// The figures of either part.
#[derive(Debug, Serialize)]
pub struct ShutdownReport {
    /// What put the daemon behind.
    pub load: String,
    /// Seconds of load before SIGTERM.
    pub before_s: f64,
    /// How far behind the daemon was at SIGTERM, seconds: the age of the
    /// pair's oldest line not yet delivered.
    pub behind_s: f64,
    /// The pair's latency for lines sent in the last second before
    /// SIGTERM: how far behind the daemon was (lines not delivered count
    /// as lost).
    pub backlog: Latency3,
    /// Seconds from SIGTERM to the daemon's exit, if it exited within
    /// the bound.
    pub exit_after_s: Option<f64>,
    /// The bound, seconds.
    pub exit_wait_s: u64,
    /// How it ended: "exit code 0", "signal 9 (SIGKILL)" after this tool
    /// killed it at the bound, ...
    pub exit_status: Option<String>,
    /// Each of the pair: lines sent (all before SIGTERM), lines of the
    /// other received, `-- server shutting down` read, how it ended.
    pub pair: [SideOutcome; 2],
    /// Lines the pair sent before SIGTERM, both sides.
    pub pair_sent: u64,
    /// Of those, delivered.
    pub pair_delivered: u64,
    /// Idle members that read `-- server shutting down` (part a).
    pub members_told: Option<u64>,
    /// Idle members (part a).
    pub members: Option<u64>,
    /// The daemon's CPU, % of one core, each second after SIGTERM until it
    /// exited (or was killed).
    pub cpu_after_sigterm_pct: Vec<f64>,
}

/// Runs sigterm-backlog.
///
/// # Errors
/// When a part fails.
pub fn run(ctx: &Ctx, args: &SigtermArgs) -> Result<()> {
    run_parts(&[Part::A, Part::B], args.part, |part| run_one(ctx, args, part))
}

fn run_one(ctx: &Ctx, args: &SigtermArgs, part: Part) -> Result<()> {
    let q = ctx.quick();
    let fillers = pick(args.fillers, q, 9000, 300) as usize;
    let attackers = pick(args.attackers, q, 32, 4) as usize;
    let flooders = pick(args.flooders, q, 32, 4) as usize;
    let backlog_target = Duration::from_secs_f64(pick(args.backlog, q, 2.0, 0.2));
    let before = Duration::from_secs(pick(args.before, q, 15, 2));
    let exit_wait = pick(args.exit_wait, q, 30, 10);
    let pair_rate = f64::from(pick(args.pair_rate, q, 20, 20));
    let setup = match part {
        Part::B => Setup {
            needs: vec![("--rate", "0".to_string())],
            metrics: false,
        },
        _ => Setup::default(),
    };
    run_part(ctx, "sigterm-backlog", Some(part), setup, |daemon, base| {
        let lifetime = before + Duration::from_secs(exit_wait + 60);
        // The load: a crowd and a group that writes a chunk over and over.
        let (crowd, load, members, what): (Crowd, GroupId, Option<GroupId>, String) = match part {
            Part::B => {
                let mut crowd = Crowd::start(daemon.addr, 2, 64, base, lifetime)?;
                let group = crowd.open(GroupSpec {
                    persistent: true,
                    ..GroupSpec::idle(flooders, Sources::Fixed(addrs::ATTACKER))
                })?;
                crowd.wait_settled(group, Duration::from_secs(30));
                crowd.expect_all(group, flooders, "flooders")?;
                let what = format!("{flooders} flooders from {} with --rate 0", addrs::ATTACKER);
                (crowd, group, None, what)
            }
            _ => {
                let stage = storm::stage(daemon, base, Kind::Who, fillers, attackers)?;
                let what = format!(
                    "/who storm: {attackers} attackers from {} into a lobby of {fillers}",
                    addrs::ATTACKER
                );
                (stage.crowd, stage.attackers, Some(stage.fillers), what)
            }
        };
        let chunk = match part {
            Part::B => chunk_of(&line_of("flood ", 64), 4096),
            _ => storm::attack_chunk(Kind::Who),
        };
        let mut pair = Pair::start(daemon.addr, "quiet", pair_rate, base, lifetime)?;
        let watch = Sampler::start(daemon.pid, base, Duration::from_millis(250), lifetime);
        eprintln!(
            "chat-attack: {what} until the daemon is {:.1} s behind (at most {} s), then SIGTERM",
            backlog_target.as_secs_f64(),
            before.as_secs()
        );
        let start_s = secs(base);
        crowd.repeat(load, Some(&chunk));
        let pid = daemon.pid;
        wait_until(before, || {
            pair.backlog() >= backlog_target || !crate::procfs::is_alive(pid)
        });
        let behind = pair.backlog();
        pair.stop_sending();
        let t_term = nanos(base);
        let term_s = secs(base);
        daemon.sigterm()?;
        let exited = daemon.wait_exit(Duration::from_secs(exit_wait));
        let exit_after_s = exited.map(|_| round2(secs(base) - term_s));
        let end_s = secs(base);
        if exited.is_none() {
            eprintln!("chat-attack: the daemon did not exit within {exit_wait} s of SIGTERM; SIGKILL");
            daemon.kill();
        }
        // The pair's connections end with the process.
        wait_until(Duration::from_secs(5), || pair.both_ended());
        crowd.repeat(load, None);
        let members_told = members.map(|g| crowd.stats(g).matched());
        let members_count = members.map(|g| crowd.count(g) as u64);
        drop(crowd);
        let samples = watch.finish();
        let outcome = pair.finish();
        let backlog = outcome.window(t_term.saturating_sub(1_000_000_000), t_term);
        let [a, b] = outcome.sides.clone();
        let pair_sent = a.sent + b.sent;
        let pair_delivered = a.received + b.received;
        let report = ShutdownReport {
            load: what.clone(),
            before_s: round2(term_s - start_s),
            behind_s: round2(behind.as_secs_f64()),
            backlog,
            exit_after_s,
            exit_wait_s: exit_wait,
            exit_status: daemon.status_text(),
            pair: [a, b],
            pair_sent,
            pair_delivered,
            members_told,
            members: members_count,
            cpu_after_sigterm_pct: samples.cpu_percent(term_s, end_s, 1.0),
        };
        let ending = |s: &SideOutcome, other: &SideOutcome| {
            format!(
                "got {} of {} lines, {}, {:?}",
                s.received,
                other.sent,
                if s.saw_shutdown { "told" } else { "not told" },
                s.ending
            )
        };
        let summary = vec![
            format!(
                "{what} for {:.1} s, then SIGTERM with the daemon {:.1} s behind",
                report.before_s, report.behind_s
            ),
            match exit_after_s {
                Some(s) => format!("exited {s:.2} s after SIGTERM ({})", opt(report.exit_status.clone())),
                None => format!("did not exit within {exit_wait} s of SIGTERM; SIGKILLed"),
            },
            format!(
                "pair: {pair_delivered} of {pair_sent} lines sent before SIGTERM delivered; one: {}; other: {}",
                ending(&report.pair[0], &report.pair[1]),
                ending(&report.pair[1], &report.pair[0])
            ),
            format!(
                "members told: {} of {}; CPU after SIGTERM (%/s): {:?}",
                opt(members_told),
                opt(members_count),
                report.cpu_after_sigterm_pct
            ),
        ];
        if report.pair_sent == 0 {
            return Err(Error::msg("the pair sent nothing before SIGTERM"));
        }
        Ok(Outcome {
            summary,
            figures: report,
        })
    })
}
