//! `chat-attack`: the attacks of issue 12, each run against a real
//! `chat-server` process it starts itself, each reporting the figure the
//! issue names, so that the same attack can be run before and after the
//! fixes, on the same machine, in the same way.
//!
//! The pieces:
//!
//! - [`cli`]: the subcommands, their bounds and their two sets of defaults
//!   (the setup, and `--quick`).
//! - [`daemon`]: starting the daemon on `127.0.0.1:0`, watching it through
//!   `/proc` and its metrics, stopping it by pid, saying how it ended.
//! - [`crowd`]: thousands of connections in groups that behave alike (idle
//!   members, attackers writing one line over and over, non-readers).
//! - [`pair`]: two good users exchanging timestamped lines: the latency an
//!   attack costs everyone else.
//! - [`sampler`], [`probe`], [`addrs`]: `/proc` readings over time, a
//!   fresh user knocking, and which loopback address each client uses.
//! - One module per attack: [`storm`] (who-storm, rooms-storm), [`flood`],
//!   [`quit`] (quit-blast, quit-hold), [`memory`] (queue-memory),
//!   [`shutdown`] (sigterm-backlog), [`slowloris`], [`logs`] (log-flood).
//!
//! Every attack part goes through [`run_part`]: start the daemon with the
//! options the part needs, run, and print a summary and one JSON line
//! whose first fields ([`Header`]) are the same for all, then stop the
//! daemon whatever happened. Every wait in an attack has a bound; every
//! loop ends by itself.

pub mod addrs;
pub mod cli;
pub mod crowd;
pub mod daemon;
pub mod flood;
pub mod logs;
pub mod memory;
pub mod pair;
pub mod probe;
pub mod quit;
pub mod sampler;
pub mod shutdown;
pub mod slowloris;
pub mod storm;

use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::procfs;
use cli::{Attack, Cli, Global, Part};
use daemon::{Daemon, DaemonSpec};

/// How often a bounded wait looks again at what it waits for.
const WAIT_TICK: Duration = Duration::from_millis(10);

/// What every attack is given.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The global options.
    pub global: Global,
    /// This process's descriptor limit after raising it, for the report.
    pub nofile: Option<u64>,
}

impl Ctx {
    /// Whether `--quick` was given.
    pub fn quick(&self) -> bool {
        self.global.quick
    }
}

/// The fields every JSON line starts with.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    /// The attack's subcommand.
    pub attack: String,
    /// The part (`a`, `b`, `c`), for attacks that have several.
    pub part: Option<String>,
    /// Run with `--quick`.
    pub quick: bool,
    /// The daemon's whole command line.
    pub server: String,
    /// The `--server-arg`s given.
    pub server_args: Vec<String>,
    /// This tool's descriptor limit.
    pub tool_nofile: Option<u64>,
    /// When the attack ended, seconds since the Unix epoch.
    pub unix_time: u64,
    /// How long the attack took, daemon start to stop, seconds.
    pub wall_s: f64,
    /// How the daemon ended: died during the attack (how, when), or after
    /// this tool's SIGTERM (how soon), or SIGKILLed.
    pub daemon_end: String,
}

/// A JSON line: the header, then the attack's figures (or its error).
#[derive(Debug, Serialize)]
struct Line<'a, T: Serialize> {
    #[serde(flatten)]
    header: &'a Header,
    #[serde(flatten)]
    figures: &'a T,
}

/// What an attack part found.
#[derive(Debug)]
pub struct Outcome<T> {
    /// Lines for people.
    pub summary: Vec<String>,
    /// The figures, for the JSON line.
    pub figures: T,
}

/// The daemon options a part needs.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// (flag, value) pairs; a `--server-arg` of the same flag wins.
    pub needs: Vec<(&'static str, String)>,
    /// Start the metrics endpoint (to count bytes).
    pub metrics: bool,
}

/// An attack that could not be run to its end.
#[derive(Debug, Serialize)]
struct Failed {
    error: String,
}

/// Runs the command line: one attack, or all of them.
///
/// # Errors
/// When an attack fails (after its JSON line with the error is printed).
pub fn run(cli: Cli) -> Result<()> {
    let nofile = raise_nofile();
    let ctx = Ctx {
        global: cli.global,
        nofile,
    };
    match cli.attack {
        Attack::WhoStorm(args) => storm::run(&ctx, storm::Kind::Who, &args),
        Attack::RoomsStorm(args) => storm::run(&ctx, storm::Kind::Rooms, &args),
        Attack::Flood(args) => flood::run(&ctx, &args),
        Attack::QuitBlast(args) => quit::run_blast(&ctx, &args),
        Attack::QueueMemory(args) => memory::run(&ctx, &args),
        Attack::SigtermBacklog(args) => shutdown::run(&ctx, &args),
        Attack::QuitHold(args) => quit::run_hold(&ctx, &args),
        Attack::Slowloris(args) => slowloris::run(&ctx, &args),
        Attack::LogFlood(args) => logs::run(&ctx, &args),
        Attack::All => run_all(&ctx),
        Attack::HoldWorker(args) => quit::hold_worker(&args),
    }
}

/// Every attack in turn, with its defaults; goes on past a failure.
fn run_all(ctx: &Ctx) -> Result<()> {
    let started = Instant::now();
    type Step = fn(&Ctx) -> Result<()>;
    let steps: [(&str, Step); 9] = [
        ("who-storm", |c| {
            storm::run(c, storm::Kind::Who, &Default::default())
        }),
        ("rooms-storm", |c| {
            storm::run(c, storm::Kind::Rooms, &Default::default())
        }),
        ("flood", |c| flood::run(c, &Default::default())),
        ("quit-blast", |c| quit::run_blast(c, &Default::default())),
        ("queue-memory", |c| memory::run(c, &Default::default())),
        ("sigterm-backlog", |c| shutdown::run(c, &Default::default())),
        ("quit-hold", |c| quit::run_hold(c, &Default::default())),
        ("slowloris", |c| slowloris::run(c, &Default::default())),
        ("log-flood", |c| logs::run(c, &Default::default())),
    ];
    let mut failed = Vec::new();
    for (name, step) in steps {
        if let Err(e) = step(ctx) {
            eprintln!("chat-attack: {name}: {e}");
            failed.push(name);
        }
    }
    println!(
        "all: {} attacks in {:.0} s{}",
        steps.len(),
        started.elapsed().as_secs_f64(),
        if failed.is_empty() {
            String::new()
        } else {
            format!("; failed: {}", failed.join(", "))
        }
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::msg(format!(
            "{} attacks failed: {}",
            failed.len(),
            failed.join(", ")
        )))
    }
}

/// Runs the parts of an attack that were asked for (`part`, or all of
/// `parts`), each on a daemon of its own, going on past a failure.
///
/// # Errors
/// When any part failed.
pub fn run_parts(parts: &[Part], part: Option<Part>, mut each: impl FnMut(Part) -> Result<()>) -> Result<()> {
    let mut errors = Vec::new();
    for p in parts
        .iter()
        .copied()
        .filter(|p| part.is_none_or(|want| want == *p))
    {
        if let Err(e) = each(p) {
            errors.push(format!("part {}: {e}", p.name()));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::msg(errors.join("; ")))
    }
}

/// Starts the daemon with `setup`, runs `body` against it, stops the
/// daemon, and prints the summary and the JSON line (with the error, if
/// `body` failed).
///
/// # Errors
/// When the daemon cannot be started, or `body` fails.
pub fn run_part<T: Serialize>(
    ctx: &Ctx,
    attack: &str,
    part: Option<Part>,
    setup: Setup,
    body: impl FnOnce(&mut Daemon, Instant) -> Result<Outcome<T>>,
) -> Result<()> {
    let name = match part {
        Some(p) => format!("{attack}-{}", p.name()),
        None => attack.to_string(),
    };
    let keep_log = match &ctx.global.keep_logs {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::msg(format!("{}: {e}", dir.display())))?;
            Some(dir.join(format!("{name}.log")))
        }
        None => None,
    };
    let spec = DaemonSpec {
        bin: ctx.global.server_bin.clone(),
        needs: setup.needs,
        user_args: ctx.global.server_args.clone(),
        metrics: setup.metrics,
        keep_log,
    };
    eprintln!("chat-attack: {name}: starting {}", spec.bin.display());
    let started = Instant::now();
    let header = |server: String, daemon_end: String| Header {
        attack: attack.to_string(),
        part: part.map(|p| p.name().to_string()),
        quick: ctx.quick(),
        server,
        server_args: ctx.global.server_args.clone(),
        tool_nofile: ctx.nofile,
        unix_time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        wall_s: sampler::round2(started.elapsed().as_secs_f64()),
        daemon_end,
    };
    let mut daemon = match Daemon::start(&spec, &name) {
        Ok(daemon) => daemon,
        Err(e) => {
            let server = format!(
                "{} --listen 127.0.0.1:0 {}",
                spec.bin.display(),
                spec.args().join(" ")
            );
            let header = header(server, "did not start".to_string());
            let failed = Failed { error: e.to_string() };
            crate::report::emit(
                &[
                    format!("== {name}: the daemon did not start"),
                    format!("   error: {e}"),
                ],
                &Line {
                    header: &header,
                    figures: &failed,
                },
            )?;
            return Err(e);
        }
    };
    let result = body(&mut daemon, started);
    let daemon_end = daemon.end(Duration::from_secs(ctx.global.stop_timeout));
    let header = header(daemon.command.clone(), daemon_end);
    let title = format!(
        "== {name} ({:.0} s; daemon: {})",
        header.wall_s, header.daemon_end
    );
    match result {
        Ok(outcome) => {
            let mut summary = vec![title];
            summary.extend(outcome.summary.into_iter().map(|l| format!("   {l}")));
            crate::report::emit(
                &summary,
                &Line {
                    header: &header,
                    figures: &outcome.figures,
                },
            )
        }
        Err(e) => {
            let failed = Failed { error: e.to_string() };
            crate::report::emit(
                &[title, format!("   error: {e}")],
                &Line {
                    header: &header,
                    figures: &failed,
                },
            )?;
            Err(e)
        }
    }
}

/// Raises this process's soft descriptor limit to the hard limit (an
/// attack holds thousands of sockets) and returns the limit it has.
pub fn raise_nofile() -> Option<u64> {
    if let Ok((soft, hard)) = rlimit::Resource::NOFILE.get() {
        if soft < hard {
            if let Err(e) = rlimit::Resource::NOFILE.set(hard, hard) {
                eprintln!("chat-attack: cannot raise the descriptor limit from {soft} to {hard}: {e}");
            }
        }
    }
    procfs::open_files_limit()
}

/// Polls `done` until it is true or `timeout` has passed; true if it
/// became true.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    // At most timeout / WAIT_TICK turns.
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(WAIT_TICK);
    }
}

/// Lets an attack phase run for `length` (the phase's duration is the
/// measurement), returning early if the daemon dies; true if it ran whole.
pub fn hold_for(daemon: &mut Daemon, length: Duration) -> bool {
    let deadline = Instant::now() + length;
    // At most length / 50 ms turns.
    while Instant::now() < deadline {
        if !daemon.is_running() {
            return false;
        }
        thread::sleep(Duration::from_millis(50).min(deadline.saturating_duration_since(Instant::now())));
    }
    true
}

/// Waits until `counter` has not moved for `quiet`, at most `timeout`;
/// true if it went quiet.
pub fn wait_quiet(quiet: Duration, timeout: Duration, counter: impl Fn() -> u64) -> bool {
    let deadline = Instant::now() + timeout;
    let mut last = counter();
    let mut since = Instant::now();
    // At most timeout / WAIT_TICK turns.
    while Instant::now() < deadline {
        thread::sleep(WAIT_TICK);
        let now = counter();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return true;
        }
    }
    false
}

/// Waits until `done`, or until `counter` has not moved for `quiet`
/// (what was expected is not coming, say in a format this tool does not
/// count), at most `timeout`; true when `done`.
pub fn wait_done_or_quiet(
    timeout: Duration,
    quiet: Duration,
    done: impl Fn() -> bool,
    counter: impl Fn() -> u64,
) -> bool {
    let deadline = Instant::now() + timeout;
    let mut last = counter();
    let mut since = Instant::now();
    // At most timeout / WAIT_TICK turns.
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        thread::sleep(WAIT_TICK);
        let now = counter();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return done();
        }
    }
    done()
}

/// KiB to MiB, two decimals.
pub fn mib(kib: u64) -> f64 {
    sampler::round2(kib as f64 / 1024.0)
}

/// Seconds since `base`, two decimals.
pub fn secs(base: Instant) -> f64 {
    sampler::round2(base.elapsed().as_secs_f64())
}

/// Nanoseconds since `base`.
pub fn nanos(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// `text` repeated into one chunk of at least `min` bytes (whole copies).
pub fn chunk_of(text: &[u8], min: usize) -> Vec<u8> {
    let copies = min.div_ceil(text.len().max(1)).max(1);
    text.repeat(copies)
}

/// A chat line of exactly `len` bytes, newline included: `prefix`, then
/// `x` up to the length.
pub fn line_of(prefix: &str, len: usize) -> Vec<u8> {
    let mut line = prefix.as_bytes().to_vec();
    line.resize(len.max(prefix.len() + 1) - 1, b'x');
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_chunks_have_the_asked_sizes() {
        assert_eq!(line_of("flood ", 10), b"flood xxx\n");
        assert_eq!(line_of("long prefix", 4), b"long prefix\n");
        assert_eq!(chunk_of(b"/who\n", 12), b"/who\n/who\n/who\n");
    }

    #[test]
    fn waits_end_when_done_or_at_their_bound() {
        assert!(wait_until(Duration::from_secs(1), || true));
        assert!(!wait_until(Duration::from_millis(30), || false));
        assert!(wait_quiet(
            Duration::from_millis(20),
            Duration::from_secs(1),
            || 7
        ));
        assert!(!wait_done_or_quiet(
            Duration::from_secs(5),
            Duration::from_millis(20),
            || false,
            || 7
        ));
        assert!(wait_done_or_quiet(
            Duration::from_secs(5),
            Duration::from_millis(20),
            || true,
            || 7
        ));
    }
}
