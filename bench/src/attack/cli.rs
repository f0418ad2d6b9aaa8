//! The command line of `chat-attack`: one subcommand per attack of issue
//! 12, `all`, and the global options that say which daemon to start and
//! how.
//!
//! Every count and duration is an `Option` with a bound, resolved to one
//! of two defaults: the setup (each part under about 40 s on a
//! 2-core machine), or with `--quick` a small one that runs in a few
//! seconds, for a smoke test. The help of each says both.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Runs the attacks of issue 12 against a chat-server it starts itself,
/// and prints what each one did to it.
///
/// Each attack starts the daemon (--server-bin) on 127.0.0.1:0 with
/// only the options its setup needs (listed in its help) plus every
/// --server-arg, runs, prints a short summary and one JSON line of
/// figures, and stops the daemon by its pid (SIGTERM, then SIGKILL after
/// --stop-timeout). A daemon that dies during an attack is a finding: the
/// JSON line says how and when. Clients connect over loopback only, from
/// 127.0.0.0/8 source addresses standing for many hosts. Timing is
/// measured, never asserted.
///
/// Connections an attack needs but that are not the attack (idle
/// members, room owners, readers) come 16 per address and retry when
/// refused at the door, so that a daemon with connection throttles still
/// gets its crowd; to measure a throttle itself, use the attacks about
/// the door (slowloris, quit-hold, log-flood c), or switch the throttle
/// off with --server-arg.
#[derive(Debug, Parser)]
#[command(name = "chat-attack", version, about, long_about)]
pub struct Cli {
    /// Which daemon, and how.
    #[command(flatten)]
    pub global: Global,
    /// Which attack.
    #[command(subcommand)]
    pub attack: Attack,
}

/// Options for every attack.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The chat-server binary to start.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = "target/release/chat-server"
    )]
    pub server_bin: PathBuf,
    /// An option for the daemon, passed through after the attack's own
    /// (repeat for each word: --server-arg=--threads --server-arg=1). A
    /// flag given here replaces the attack's own setting of it.
    #[arg(
        long = "server-arg",
        global = true,
        value_name = "ARG",
        allow_hyphen_values = true
    )]
    pub server_args: Vec<String>,
    /// Small defaults, so that each attack runs in a few seconds (a smoke
    /// test, not a measurement).
    #[arg(long, global = true)]
    pub quick: bool,
    /// Copy each daemon's log (its stderr) into DIR, as
    /// ATTACK[-PART].log.
    #[arg(long, global = true, value_name = "DIR")]
    pub keep_logs: Option<PathBuf>,
    /// Seconds the daemon gets to exit after SIGTERM at the end of an
    /// attack before it is SIGKILLed.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub stop_timeout: u64,
}

/// The attacks.
#[derive(Debug, Clone, Subcommand)]
pub enum Attack {
    /// 32 connections from one address send /who as fast as the daemon
    /// reads them into a lobby of 9,000 idle members, for 20 s, while two
    /// users in another room exchange timestamped lines. Reports the bytes
    /// the attackers sent (as the daemon counted them) and received, the
    /// daemon's CPU seconds, the other room's latency, and RSS after.
    /// Daemon options: --metrics-listen 127.0.0.1:0 (to count bytes).
    WhoStorm(StormArgs),
    /// As who-storm, but each filler joins a room of its own (9,000 rooms)
    /// and the attackers send /rooms.
    RoomsStorm(StormArgs),
    /// 16 flooders from one address send chat lines into the lobby as fast
    /// as they can for 10 s while a pair in another room exchanges
    /// timestamped lines. Reports RSS over time (growth, peak), the pair's
    /// latency, and RSS 5 s after the flood stops. Daemon options:
    /// --rate 0.
    Flood(FloodArgs),
    /// One client sends /quit and then writes as fast as it can for 4 s
    /// without reading, while a pair exchanges timestamped lines. Reports
    /// the bytes the daemon read (its metrics) and the pair's latency
    /// before and during. Daemon options: --metrics-listen 127.0.0.1:0.
    QuitBlast(QuitBlastArgs),
    /// Memory that stays after queues drain: (a) 4,000 clients each read
    /// one /rooms reply with 9,000 rooms; (b) 1,000 clients stop reading
    /// while 700 KiB each is queued, then catch up; (c) a 50-line paste of
    /// 4 KB lines into a 500-member room. Reports RSS before, at peak and
    /// after. Daemon options: (a) --max-clients ROOMS+CLIENTS+64 when that
    /// is over 10,000 (today's default).
    QueueMemory(QueueMemoryArgs),
    /// SIGTERM once the daemon is 2 s behind: (a) during a /who storm; (b)
    /// with --rate 0 and 32 flooders. Reports the time to exit, whether two
    /// good users read `-- server shutting down`, how many of their lines
    /// were delivered, how their connections ended, and the daemon's CPU
    /// after SIGTERM. Daemon options: (b) --rate 0.
    SigtermBacklog(SigtermArgs),
    /// Connections that send /quit and then neither read nor close, opened
    /// as fast as possible from many addresses for 3 s (in worker
    /// processes, for descriptors). Reports the daemon's descriptors over
    /// time and what a fresh client gets. Daemon options: none (the
    /// default --max-clients is the point).
    QuitHold(QuitHoldArgs),
    /// (a) 10,050 silent connections from 315 addresses (32 each): time
    /// until the server is full, and what a new user gets each second for
    /// 10 s; (b) with --idle-timeout 15, 50 connections sending one byte
    /// (no newline) every 10 s: how many are still connected after 40 s.
    /// Daemon options: (b) --idle-timeout; with --quick, (a)
    /// --max-clients 300.
    Slowloris(SlowlorisArgs),
    /// What a client can make the daemon log: (a) 31 non-readers in a room
    /// flooded until dropped as slow consumers; (b) a /quit reason of
    /// 4,000 characters; (c) 1,000 connections refused over --max-per-ip.
    /// Reports the daemon's log lines. Daemon options: with --quick, (a)
    /// --sendq 65536.
    LogFlood(LogFloodArgs),
    /// Every attack in turn with its defaults (several minutes; with
    /// --quick, about a minute).
    All,
    /// Internal: one worker process of quit-hold.
    #[command(hide = true)]
    HoldWorker(HoldWorkerArgs),
}

/// A part of an attack that has several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// The first.
    A,
    /// The second.
    B,
    /// The third.
    C,
}

impl Part {
    /// Its letter, for reports.
    pub fn name(self) -> &'static str {
        match self {
            Part::A => "a",
            Part::B => "b",
            Part::C => "c",
        }
    }
}

/// A default and its `--quick` counterpart.
pub fn pick<T>(given: Option<T>, quick: bool, full: T, small: T) -> T {
    given.unwrap_or(if quick { small } else { full })
}

/// who-storm and rooms-storm.
#[derive(Debug, Clone, Default, Args)]
pub struct StormArgs {
    /// Idle members (each in a room of its own for rooms-storm), 16 per
    /// source address. [default: 9000; --quick: 300]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=15_000))]
    pub fillers: Option<u32>,
    /// Attacking connections, all from one address. [default: 32;
    /// --quick: 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub attackers: Option<u32>,
    /// Seconds of storm. [default: 20; --quick: 2]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub duration: Option<u64>,
    /// The pair's lines per second, both sides together. [default: 20]
    #[arg(long, value_name = "LINES_PER_SEC", value_parser = clap::value_parser!(u32).range(1..=200))]
    pub pair_rate: Option<u32>,
    /// Longest wait, after the storm, for the pair's lines still in
    /// flight, in seconds. [default: 20; --quick: 5]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub drain: Option<u64>,
}

/// flood.
#[derive(Debug, Clone, Default, Args)]
pub struct FloodArgs {
    /// Flooding connections, all from one address. [default: 16; --quick: 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub flooders: Option<u32>,
    /// Seconds of flood. [default: 10; --quick: 2]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=30))]
    pub duration: Option<u64>,
    /// Seconds after the flood at which RSS is read again. [default: 5;
    /// --quick: 1]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=30))]
    pub after: Option<u64>,
    /// Bytes of each flood line, newline included. [default: 64]
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(8..=4000))]
    pub line_len: Option<u32>,
    /// The pair's lines per second. [default: 20]
    #[arg(long, value_name = "LINES_PER_SEC", value_parser = clap::value_parser!(u32).range(1..=200))]
    pub pair_rate: Option<u32>,
    /// Longest wait, after the flood, for the pair's lines still in
    /// flight, in seconds. [default: 20; --quick: 5]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub drain: Option<u64>,
}

/// quit-blast.
#[derive(Debug, Clone, Default, Args)]
pub struct QuitBlastArgs {
    /// Seconds of blasting after /quit (the daemon closes the socket 5 s
    /// after /quit anyway). [default: 4; --quick: 1]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=10))]
    pub duration: Option<u64>,
    /// Seconds of the pair alone before the blast, for the baseline.
    /// [default: 3; --quick: 1]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=10))]
    pub baseline: Option<u64>,
    /// The pair's lines per second. [default: 50]
    #[arg(long, value_name = "LINES_PER_SEC", value_parser = clap::value_parser!(u32).range(1..=200))]
    pub pair_rate: Option<u32>,
}

/// queue-memory.
#[derive(Debug, Clone, Default, Args)]
pub struct QueueMemoryArgs {
    /// Which part (a, b or c); all three when not given.
    #[arg(long, value_enum)]
    pub part: Option<Part>,
    /// (a) Rooms, one idle owner each. [default: 9000; --quick: 300]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=14_000))]
    pub rooms: Option<u32>,
    /// (a) Clients that each send /rooms once. [default: 4000; --quick: 100]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub askers: Option<u32>,
    /// (b) Clients that stop reading and catch up. [default: 1000;
    /// --quick: 50]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=2000))]
    pub readers: Option<u32>,
    /// (b) KiB queued for each of them while they do not read (below the
    /// default --sendq of 1 MiB, with what the kernel holds). [default: 700]
    #[arg(long, value_name = "KIB", value_parser = clap::value_parser!(u32).range(16..=900))]
    pub backlog_kib: Option<u32>,
    /// (c) Members of the room, the paster included. [default: 500;
    /// --quick: 50]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=2000))]
    pub members: Option<u32>,
    /// (c) Lines of the paste. [default: 50; --quick: 10]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=50))]
    pub paste_lines: Option<u32>,
    /// (b, c) Bytes of each line sent, newline included. [default: 4000]
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(16..=4000))]
    pub line_len: Option<u32>,
    /// Seconds after everything was read at which RSS is read again.
    /// [default: 5; --quick: 1]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=30))]
    pub settle: Option<u64>,
}

/// sigterm-backlog.
#[derive(Debug, Clone, Default, Args)]
pub struct SigtermArgs {
    /// Which part (a or b); both when not given.
    #[arg(long, value_enum)]
    pub part: Option<Part>,
    /// (a) Idle lobby members. [default: 9000; --quick: 300]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=15_000))]
    pub fillers: Option<u32>,
    /// (a) /who attackers from one address. [default: 32; --quick: 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub attackers: Option<u32>,
    /// (b) Flooders from one address (16 rarely put this machine's daemon
    /// 2 s behind; 32, the default per-address limit, does). [default:
    /// 32; --quick: 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub flooders: Option<u32>,
    /// SIGTERM once the daemon is this many seconds behind (the oldest of
    /// the pair's lines not yet delivered is this old). [default: 2;
    /// --quick: 0.2]
    #[arg(long, value_name = "SECS", value_parser = backlog_secs)]
    pub backlog: Option<f64>,
    /// ... or after this many seconds of storm or flood, whichever comes
    /// first. [default: 15; --quick: 2]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=30))]
    pub before: Option<u64>,
    /// Longest wait for the daemon to exit after SIGTERM, in seconds
    /// (systemd's default stop timeout is 90 s, the shipped unit's 30 s);
    /// then it is SIGKILLed and reported as not exiting. [default: 30;
    /// --quick: 10]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=120))]
    pub exit_wait: Option<u64>,
    /// The pair's lines per second. [default: 20]
    #[arg(long, value_name = "LINES_PER_SEC", value_parser = clap::value_parser!(u32).range(1..=200))]
    pub pair_rate: Option<u32>,
}

/// A backlog in seconds, 0.1 to 30.
fn backlog_secs(text: &str) -> Result<f64, String> {
    let secs: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if (0.1..=30.0).contains(&secs) {
        Ok(secs)
    } else {
        Err("must be between 0.1 and 30".to_string())
    }
}

/// quit-hold.
#[derive(Debug, Clone, Default, Args)]
pub struct QuitHoldArgs {
    /// Seconds of opening connections. [default: 3; --quick: 1]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=10))]
    pub duration: Option<u64>,
    /// Worker processes holding the connections (each has this process's
    /// descriptor limit). [default: 2; --quick: 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4))]
    pub workers: Option<u32>,
    /// Most connections per worker. [default: 15000; --quick: 2000]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=19_000))]
    pub per_worker: Option<u32>,
    /// Connections per source address. [default: 20]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub per_addr: Option<u32>,
    /// Seconds to keep watching after opening stops (the daemon lets a
    /// quitting socket linger 5 s). [default: 7; --quick: 6]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=30))]
    pub watch: Option<u64>,
}

/// slowloris.
#[derive(Debug, Clone, Default, Args)]
pub struct SlowlorisArgs {
    /// Which part (a or b); both when not given.
    #[arg(long, value_enum)]
    pub part: Option<Part>,
    /// (a) Silent connections. [default: 10050; --quick: 400]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=19_000))]
    pub conns: Option<u32>,
    /// (a) Connections per source address. [default: 32]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub per_addr: Option<u32>,
    /// (a) Seconds of probing with a new user, one a second. [default: 10;
    /// --quick: 2]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=30))]
    pub probe_for: Option<u64>,
    /// (b) The daemon's --idle-timeout, seconds. [default: 15; --quick: 2]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub idle_timeout: Option<u64>,
    /// (b) Connections sending one byte at a time. [default: 50; --quick: 5]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=500))]
    pub drippers: Option<u32>,
    /// (b) Seconds between their bytes. [default: 10; --quick: 1]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=30))]
    pub drip_every: Option<u64>,
    /// (b) Silent connections beside them, to show the timeout works.
    /// [default: 5; --quick: 2]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=100))]
    pub silent: Option<u32>,
    /// (b) Seconds after which the survivors are counted. [default: 40;
    /// --quick: 5]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub observe: Option<u64>,
}

/// log-flood.
#[derive(Debug, Clone, Default, Args)]
pub struct LogFloodArgs {
    /// Which part (a, b or c); all three when not given.
    #[arg(long, value_enum)]
    pub part: Option<Part>,
    /// (a) Non-readers in the room (with the sender, all from one address
    /// within the default --max-per-ip of 32). [default: 31; --quick: 3]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=31))]
    pub receivers: Option<u32>,
    /// (a) Bytes of each flood line, newline included. [default: 4000]
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(16..=4000))]
    pub line_len: Option<u32>,
    /// (a) Longest flood, seconds. [default: 40; --quick: 15]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub max_wait: Option<u64>,
    /// (b) Characters of the /quit reason. [default: 4000]
    #[arg(long, value_name = "CHARS", value_parser = clap::value_parser!(u32).range(1..=4000))]
    pub reason_len: Option<u32>,
    /// (c) Connections refused over --max-per-ip. [default: 1000;
    /// --quick: 50]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub refused: Option<u32>,
}

/// The hidden worker of quit-hold: opens connections that send /quit and
/// hold them, prints one JSON line of counts when its opening time is up,
/// and holds them until its stdin closes or its lifetime ends.
#[derive(Debug, Clone, Args)]
pub struct HoldWorkerArgs {
    /// The daemon.
    #[arg(long)]
    pub addr: SocketAddr,
    /// The source address pool (second octet).
    #[arg(long)]
    pub pool: u8,
    /// Connections per source address.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub per_addr: u32,
    /// Most connections.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=19_000))]
    pub count: u32,
    /// Milliseconds of opening.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub open_ms: u64,
    /// Seconds after which it exits whatever happens.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub lifetime: u64,
}
