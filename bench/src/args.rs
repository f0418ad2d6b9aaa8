//! The command line of `chat-bench`.
//!
//! One subcommand per scenario, with the server options shared by all of
//! them (global, so they may come before or after the subcommand). Every
//! count and duration has a bound, so no invocation can load the machine
//! for long: the machine is shared.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::{Flavor, Stall};
use crate::tls;

/// Load generator for chat-server, `ncat --chat` and tokio's chat example,
/// loopback only.
///
/// Start the server under test with
/// `--rate 0 --max-per-ip 0 --max-per-net 0 --connect-rate 0 --max-clients N --sendq 16777216` (flood
/// control off; N at least the run's clients), or let chat-bench start it
/// with --server-bin. Each
/// scenario prints a summary and, as its last line, one JSON object.
///
/// --target tokio-chat measures tokio's chat example (`examples/chat.rs`
/// in the tokio-rs/tokio repository). It is not part of this project and
/// is not built by it: copy that file unchanged into the `src/main.rs` of
/// a scratch crate outside this repository (named `chat`, so that the
/// example's own log filter `chat=info` applies to it as in tokio's
/// repository), depending on tokio 1 (feature "full"), tokio-util 0.7
/// (feature "codec"), tokio-stream 0.1, futures 0.3, tracing 0.1 and
/// tracing-subscriber 0.3 (features "fmt", "ansi", "env-filter",
/// "tracing-log"), build it with `cargo build --release`, and give the
/// binary as --tokio-bin PATH, or start it by hand as `chat 127.0.0.1:PORT`
/// and give --addr 127.0.0.1:PORT --server-pid PID. It runs fanout,
/// fixed-rate, idle, ramp and join-storm (one room: its join storm is its
/// connect storm, as for ncat).
///
/// --tls speaks TLS (rustls, ring provider, TLS 1.3 preferred). chat-bench
/// then starts chat-server with a plain and a TLS listener and a
/// certificate it makes and trusts (`--tls-listen`, `--tls-cert`,
/// `--tls-key`), or ncat with `--ssl --ssl-cert --ssl-key`; against a
/// server started by hand give --addr of its TLS listener and --ca with
/// its certificate. The certificate is verified (for --tls-name), never
/// skipped. The handshakes and storm scenarios measure new TLS connections.
///
/// --protocol irc speaks IRC (NICK/USER, JOIN, PRIVMSG; PINGs answered):
/// chat-bench then starts chat-server with an IRC listener beside its line
/// one (`--irc-listen`, `--server-name bench`) and connects to it;
/// --protocol mixed puts every other client on each (one room, both
/// protocols). --target ngircd starts Debian's ngircd (`--ngircd-bin`) with
/// a configuration written for the run (loopback, no PAM, ident or DNS, no
/// connection limits, and the flood control --ngircd-flood says) and
/// speaks IRC to it. Against an IRC server started by hand give --addr of
/// its IRC port (and, for mixed, --addr of the line port and --irc-addr of
/// the IRC one). IRC runs fanout, fixed-rate, idle, ramp and join-storm.
///
/// --protocol web speaks WebSocket (`GET /ws`, then the line protocol one
/// line per text frame; Pings answered): chat-bench then starts chat-server
/// with a web listener beside its line one (`--web-listen 127.0.0.1:0`,
/// its port read from the server's log) and connects to it; --protocol
/// mixed-web puts every other client on each (one room), and fan-out
/// reports give deliveries/s and latency for each kind of receiver as well
/// as for all. Against a chat-server started by hand give --addr of its web
/// listener (mixed-web: --addr of the line listener and --web-addr of the
/// web one). WebSocket runs fanout, fixed-rate, idle, ramp and join-storm.
///
/// --cluster-instances N (with --server-bin) measures a cluster (issue
/// 17): chat-bench starts a redis-server of its own (--redis-bin) on a free
/// loopback port without persistence, then N chat-servers with `--cluster
/// redis://127.0.0.1:PORT`, and connects client K to instance K mod N. The
/// report lists every instance's threads and Redis's CPU. Cluster runs are
/// fanout and fixed-rate over the line protocol.
#[derive(Debug, Parser)]
#[command(name = "chat-bench", version, about, long_about)]
pub struct Cli {
    /// The server and how to reach it.
    #[command(flatten)]
    pub target: TargetArgs,
    /// What to measure.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Which server to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetKind {
    /// chat-server: /nick and /join, `<nick> text` lines.
    ChatServer,
    /// `ncat --chat`: no rooms or nicks, `<userN> text` lines.
    Ncat,
    /// tokio's chat example: a username prompt (answered `u<id>`), one
    /// room, `NAME: text` lines. Not part of this project: see
    /// --tokio-bin.
    TokioChat,
    /// ngircd, an IRC server (Debian's package `ngircd`): IRC only.
    Ngircd,
}

/// What the run's connections speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// The server's own line protocol (chat-server, ncat, tokio's example).
    Line,
    /// IRC: chat-server's IRC listener, or ngircd.
    Irc,
    /// Every other client on IRC, the others on the line protocol, in one
    /// room (chat-server only).
    Mixed,
    /// WebSocket: chat-server's web listener, the line protocol one line
    /// per text frame (chat-server only).
    Web,
    /// Every other client on WebSocket, the others on the line protocol,
    /// in one room (chat-server only).
    MixedWeb,
}

impl Protocol {
    /// The name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Line => "line",
            Protocol::Irc => "irc",
            Protocol::Mixed => "mixed",
            Protocol::Web => "web",
            Protocol::MixedWeb => "mixed-web",
        }
    }

    /// Whether any of its connections speak IRC.
    pub fn has_irc(self) -> bool {
        matches!(self, Protocol::Irc | Protocol::Mixed)
    }

    /// Whether any of its connections speak WebSocket.
    pub fn has_web(self) -> bool {
        matches!(self, Protocol::Web | Protocol::MixedWeb)
    }
}

/// How much of ngircd's per-client flood control a run lifts (its
/// configuration's `[Limits] MaxPenaltyTime`, and user mode `F`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NgircdFlood {
    /// `MaxPenaltyTime = 0` (no penalty delays), and the senders become IRC
    /// operators and set user mode `F` (10 commands a turn instead of 3,
    /// never throttled).
    Lifted,
    /// `MaxPenaltyTime = 0` only: no penalty delays, but 3 commands per
    /// client per turn of ngircd's loop.
    NoPenalty,
    /// ngircd's defaults: penalty delays of a second and more.
    Default,
}

impl NgircdFlood {
    /// The name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            NgircdFlood::Lifted => "lifted",
            NgircdFlood::NoPenalty => "no-penalty",
            NgircdFlood::Default => "default",
        }
    }
}

impl TargetArgs {
    /// The connects in flight per thread, given or the target's default.
    pub fn connect_inflight(&self) -> u16 {
        self.connect_inflight.unwrap_or(match self.target {
            TargetKind::ChatServer | TargetKind::TokioChat => 64,
            TargetKind::Ncat | TargetKind::Ngircd => 4,
        })
    }

    /// What the run speaks: as given, else IRC to ngircd and the line
    /// protocol to the others.
    pub fn protocol(&self) -> Protocol {
        self.protocol.unwrap_or(match self.target {
            TargetKind::Ngircd => Protocol::Irc,
            TargetKind::ChatServer | TargetKind::Ncat | TargetKind::TokioChat => Protocol::Line,
        })
    }
}

impl TargetKind {
    /// The engine's handshake flavour for this kind.
    pub fn flavor(self) -> Flavor {
        match self {
            TargetKind::ChatServer => Flavor::ChatServer,
            TargetKind::Ncat => Flavor::Ncat,
            TargetKind::TokioChat => Flavor::TokioChat,
            TargetKind::Ngircd => Flavor::Ngircd,
        }
    }
}

/// Options shared by every scenario.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// The kind of server.
    #[arg(long, value_enum, default_value_t = TargetKind::ChatServer, global = true)]
    pub target: TargetKind,
    /// A server already running here (loopback only).
    #[arg(long, value_name = "ADDR", global = true)]
    pub addr: Option<SocketAddr>,
    /// Its pid, to read its memory and CPU time from /proc.
    #[arg(long, value_name = "PID", global = true)]
    pub server_pid: Option<u32>,
    /// Start this chat-server binary on a free loopback port (with the
    /// options above) instead of using --addr.
    #[arg(long, value_name = "PATH", global = true)]
    pub server_bin: Option<PathBuf>,
    /// One more argument for the chat-server that --server-bin starts,
    /// after the benchmark's own options; repeat it for each argument
    /// (`--server-arg=--threads --server-arg=2`). Recorded in the report.
    /// Give them before the scenario's name.
    // Not `global`: clap replaces a global list given before the
    // subcommand by one given after it, which would drop arguments
    // silently; a misplaced one is an error instead.
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// The ncat to start for --target ncat without --addr.
    #[arg(long, value_name = "PATH", default_value = "ncat", global = true)]
    pub ncat_bin: PathBuf,
    /// For --target tokio-chat without --addr: a release build of tokio's
    /// chat example (tokio's `examples/chat.rs`, built by you outside this
    /// project; see above), started as `PATH 127.0.0.1:PORT` on a free
    /// port, without RUST_LOG (its own default filter, `chat=info`).
    #[arg(long, value_name = "PATH", global = true)]
    pub tokio_bin: Option<PathBuf>,
    /// Generator I/O threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64), global = true)]
    pub threads: u16,
    /// Spread client sockets over this many source addresses 127.0.0.2,
    /// 127.0.0.3, ...; 0 lets the kernel pick (127.0.0.1).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(0..=250), global = true)]
    pub sources: u16,
    /// Most connects (until the server's first line) under way at once
    /// per thread. [default: 64 for chat-server and tokio-chat; 4 for ncat
    /// and ngircd, whose small listen backlogs (ngircd's is 10) overflow
    /// otherwise, and the kernel then drops the handshake's last ACK: the
    /// client believes it is connected, the server never accepts it]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..), global = true)]
    pub connect_inflight: Option<u16>,
    /// Longest wait for all clients to connect (and join), in seconds.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = seconds, global = true)]
    pub setup_timeout: Duration,
    /// A label copied into the JSON line (the comparison script groups
    /// rows by it).
    #[arg(long, default_value = "", global = true)]
    pub label: String,
    /// Speak TLS to the server (chat-server's TLS listener, or ncat
    /// --ssl), started with a certificate this run makes and trusts.
    #[arg(long, global = true)]
    pub tls: bool,
    /// With --tls and --addr: the certificate (PEM) to trust, the server's
    /// own or its CA's. A server chat-bench starts needs none.
    #[arg(long, value_name = "FILE", global = true)]
    pub ca: Option<PathBuf>,
    /// With --tls: the name the server's certificate must be valid for
    /// (also sent as SNI). The certificate chat-bench makes is for
    /// `localhost` and 127.0.0.1.
    #[arg(long, value_name = "NAME", default_value = tls::DEFAULT_NAME, global = true)]
    pub tls_name: String,
    /// With --tls: the key exchange group offered first (its key share).
    /// x25519 is what OpenSSL, browsers and most clients send; secp384r1
    /// is rustls 0.23.48's ring default (chat-client's).
    #[arg(long, value_enum, default_value_t = tls::Group::X25519, global = true)]
    pub tls_group: tls::Group,
    /// What the connections speak. [default: irc for ngircd, line for the
    /// others]
    #[arg(long, value_enum, global = true)]
    pub protocol: Option<Protocol>,
    /// With --addr and --protocol mixed: chat-server's IRC listener (--addr
    /// is then its line listener). With --protocol irc, --addr is the IRC
    /// port.
    #[arg(long, value_name = "ADDR", global = true)]
    pub irc_addr: Option<SocketAddr>,
    /// With --addr and --protocol mixed-web: chat-server's web listener
    /// (--addr is then its line listener). With --protocol web, --addr is
    /// the web listener.
    #[arg(long, value_name = "ADDR", global = true)]
    pub web_addr: Option<SocketAddr>,
    /// The ngircd to start for --target ngircd without --addr.
    #[arg(long, value_name = "PATH", default_value = "ngircd", global = true)]
    pub ngircd_bin: PathBuf,
    /// How much of ngircd's per-client flood control the configuration
    /// chat-bench writes for it lifts.
    #[arg(long, value_enum, default_value_t = NgircdFlood::Lifted, global = true)]
    pub ngircd_flood: NgircdFlood,
    /// With --server-bin: start COUNT chat-server instances clustered
    /// through one redis-server this run starts on a free loopback port
    /// (issue 17; `--cluster redis://127.0.0.1:PORT`), and spread the
    /// clients over them round-robin (client N on instance N mod COUNT, so
    /// the senders too are on every instance). 1 measures one instance
    /// whose every line goes through Redis.
    #[arg(long, value_name = "COUNT", value_parser = clap::value_parser!(u16).range(1..=MAX_CLUSTER_INSTANCES), global = true)]
    pub cluster_instances: Option<u16>,
    /// The redis-server to start for --cluster-instances (Debian's package
    /// `redis-server`), without persistence.
    #[arg(long, value_name = "PATH", default_value = "redis-server", global = true)]
    pub redis_bin: PathBuf,
}

/// The most instances `--cluster-instances` starts: each is a whole
/// daemon on a machine the generator shares.
pub const MAX_CLUSTER_INSTANCES: i64 = 8;

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// N clients in one room; M senders as fast as the slowest receiver
    /// allows (a window of W lines in flight per sender).
    Fanout(FanoutArgs),
    /// As fanout, but each sender at a fixed rate.
    FixedRate(FixedRateArgs),
    /// K clients connect, then all join one room at once.
    JoinStorm(JoinStormArgs),
    /// N idle connections: server memory per connection.
    Idle(IdleArgs),
    /// Add idle connections step by step until the server stops taking
    /// them (or the maximum).
    Ramp(RampArgs),
    /// New connections per second: each is opened, taken through its TLS
    /// handshake (with --tls) and the server's first line, and closed; K
    /// in flight at once. Use many --sources: every closed connection
    /// keeps its source port for a minute (TIME_WAIT).
    Handshakes(HandshakesArgs),
    /// A handshake storm: N clients in one room chat at a fixed rate while
    /// S new connections (TLS with --tls) arrive at once; the clients'
    /// latency while it lasts, beside the whole run's.
    Storm(StormArgs),
    /// Markdown table from JSON lines of earlier runs.
    Table(TableArgs),
    /// Internal: a worker process holding connections for idle/ramp.
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// Options of both fan-out scenarios.
#[derive(Debug, Clone, Args)]
pub struct FanoutCommon {
    /// Clients in the room, senders included.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(2..=19_000))]
    pub clients: u32,
    /// How many of them send.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub senders: u32,
    /// Most lines a sender may be ahead of its slowest receiver.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub window: u64,
    /// How long the senders send, in seconds (at most 600).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = bounded_seconds)]
    pub duration: Duration,
    /// Most lines per sender (default: as many as the duration allows).
    #[arg(long)]
    pub count: Option<u64>,
    /// How long receivers get, after the senders stop, to receive every
    /// line, in seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = bounded_seconds)]
    pub drain: Duration,
}

/// `fanout`.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// The shared options.
    #[command(flatten)]
    pub common: FanoutCommon,
    /// Lines per second per sender; 0 means as fast as the window allows.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

/// `fixed-rate`.
#[derive(Debug, Clone, Args)]
pub struct FixedRateArgs {
    /// The shared options.
    #[command(flatten)]
    pub common: FanoutCommon,
    /// Lines per second per sender.
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
}

/// `join-storm`.
#[derive(Debug, Clone, Args)]
pub struct JoinStormArgs {
    /// Clients that join.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,
    /// Longest wait for every join to be confirmed, in seconds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = bounded_seconds)]
    pub timeout: Duration,
    /// Worker processes holding the clients (to pass one process's
    /// descriptor limit).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
}

/// `idle`.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Connections to open.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub clients: u32,
    /// Worker processes holding the connections (to pass one process's
    /// descriptor limit).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// Longest wait for the connections, in seconds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = bounded_seconds)]
    pub timeout: Duration,
}

/// `ramp`.
#[derive(Debug, Clone, Args)]
pub struct RampArgs {
    /// Stop at this many connections.
    #[arg(long, default_value_t = 19_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max: u32,
    /// Connections added per step.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub step: u32,
    /// Worker processes holding the connections.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// Stop when one step takes longer than this, in seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = bounded_seconds)]
    pub step_timeout: Duration,
    /// Stop when the whole ramp has taken this long, in seconds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = bounded_seconds)]
    pub budget: Duration,
}

/// `handshakes`.
#[derive(Debug, Clone, Args)]
pub struct HandshakesArgs {
    /// Connections under way at once (spread over the generator threads).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// How long new connections are started, in seconds (at most 600).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = bounded_seconds)]
    pub duration: Duration,
    /// A connection not welcomed this long after its connect started
    /// counts as failed, in seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = bounded_seconds)]
    pub timeout: Duration,
}

/// How the connections of a storm behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StormKind {
    /// Each finishes its handshake and waits for the server's welcome.
    Full,
    /// Each connects and sends nothing.
    Silent,
    /// Each sends half a TLS ClientHello and nothing more (over plain TCP:
    /// nothing).
    HalfHello,
}

impl StormKind {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            StormKind::Full => "full",
            StormKind::Silent => "silent",
            StormKind::HalfHello => "half-hello",
        }
    }

    /// How a storm connection counts as arrived, for the engine.
    pub fn stall(self) -> Option<Stall> {
        match self {
            StormKind::Full => None,
            StormKind::Silent => Some(Stall::Silent),
            StormKind::HalfHello => Some(Stall::HalfHello),
        }
    }
}

/// `storm`.
#[derive(Debug, Clone, Args)]
pub struct StormArgs {
    /// Clients in the room, senders included.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(2..=19_000))]
    pub clients: u32,
    /// How many of them send.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub senders: u32,
    /// Lines per second per sender.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// How long the senders send, in seconds (at most 600).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = bounded_seconds)]
    pub duration: Duration,
    /// How long receivers get, after the senders stop, to receive every
    /// line, in seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = bounded_seconds)]
    pub drain: Duration,
    /// New connections in the storm, all at once; 0 for the same run
    /// without a storm (its window is measured all the same).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=18_000))]
    pub storm: u32,
    /// When the storm starts, in seconds after the clients start chatting.
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = bounded_seconds)]
    pub storm_at: Duration,
    /// What the storm's connections do.
    #[arg(long, value_enum, default_value_t = StormKind::Full)]
    pub storm_kind: StormKind,
    /// Longest wait for the storm's connections, in seconds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = bounded_seconds)]
    pub storm_timeout: Duration,
    /// Generator threads of the storm (beside the clients' own --threads).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub storm_threads: u16,
    /// The shortest window of send times reported apart, from the storm's
    /// start, in seconds: the storm's own length if longer.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = bounded_seconds)]
    pub min_window: Duration,
    /// With --tls: the chatting clients use chat-server's plain listener,
    /// only the storm speaks TLS (same rooms, same I/O threads).
    #[arg(long)]
    pub plain_clients: bool,
}

/// `table`.
#[derive(Debug, Clone, Args)]
pub struct TableArgs {
    /// Files of JSON lines (other lines are skipped).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// `worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Its client numbers start here.
    #[arg(long, default_value_t = 0)]
    pub first_id: usize,
    /// Longest wait for one step, in seconds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = bounded_seconds)]
    pub timeout: Duration,
    /// The worker ends by itself after this long, in seconds.
    #[arg(long, value_name = "SECS", default_value = "600", value_parser = bounded_seconds)]
    pub lifetime: Duration,
}

fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| "must be a number of seconds, 0 or more".to_string())
}

/// Seconds, at most ten minutes: every scenario is bounded.
fn bounded_seconds(s: &str) -> Result<Duration, String> {
    let d = seconds(s)?;
    if d > Duration::from_secs(600) {
        return Err("at most 600 seconds".to_string());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_and_globals() {
        let cli = Cli::try_parse_from([
            "chat-bench",
            "fixed-rate",
            "--addr",
            "127.0.0.1:9",
            "--clients",
            "5",
        ])
        .unwrap();
        assert_eq!(cli.target.addr, Some("127.0.0.1:9".parse().unwrap()));
        let Scenario::FixedRate(args) = cli.scenario else { panic!("not fixed-rate") };
        assert_eq!(
            (args.common.clients, args.common.senders, args.common.window),
            (5, 10, 64)
        );
        assert!((args.rate - 500.0).abs() < f64::EPSILON);
        assert!(Cli::try_parse_from(["chat-bench", "fanout", "--duration", "601"]).is_err());
        assert!(cli.target.server_args.is_empty());
    }

    #[test]
    fn server_args_are_kept_in_order_hyphens_and_all() {
        let cli = Cli::try_parse_from([
            "chat-bench",
            "--server-bin",
            "target/release/chat-server",
            "--server-arg=--threads",
            "--server-arg=2",
            // A separate word that starts with a hyphen is a value too.
            "--server-arg",
            "--quiet-above",
            "--server-arg",
            "0",
            "fixed-rate",
            "--clients",
            "5",
        ])
        .unwrap();
        assert_eq!(cli.target.server_args, ["--threads", "2", "--quiet-above", "0"]);
        let Scenario::FixedRate(args) = cli.scenario else { panic!("not fixed-rate") };
        assert_eq!(args.common.clients, 5);
        // After the scenario's name it is refused, not silently dropped.
        assert!(Cli::try_parse_from(["chat-bench", "idle", "--server-arg=--threads"]).is_err());
    }

    #[test]
    fn tls_options_and_the_tls_scenarios_parse_with_their_defaults() {
        let cli =
            Cli::try_parse_from(["chat-bench", "handshakes", "--tls", "--tls-group", "secp384r1"]).unwrap();
        assert!(cli.target.tls);
        assert_eq!(cli.target.tls_group, tls::Group::Secp384r1);
        assert_eq!(cli.target.tls_name, "localhost");
        assert_eq!(cli.target.ca, None);
        let Scenario::Handshakes(h) = cli.scenario else { panic!("not handshakes") };
        assert_eq!(
            (h.concurrency, h.duration, h.timeout),
            (8, Duration::from_secs(10), Duration::from_secs(5))
        );

        let cli = Cli::try_parse_from([
            "chat-bench",
            "--tls",
            "--ca",
            "c.pem",
            "storm",
            "--storm-kind",
            "half-hello",
        ])
        .unwrap();
        assert_eq!(cli.target.ca, Some(PathBuf::from("c.pem")));
        assert_eq!(cli.target.tls_group, tls::Group::X25519);
        let Scenario::Storm(s) = cli.scenario else { panic!("not storm") };
        assert_eq!((s.clients, s.senders, s.storm), (200, 2, 1000));
        assert_eq!(s.storm_kind, StormKind::HalfHello);
        assert_eq!(s.storm_kind.stall(), Some(Stall::HalfHello));
        assert_eq!(StormKind::Full.stall(), None);
        assert_eq!(s.storm_at, Duration::from_secs(3));
        assert!(!s.plain_clients);

        assert!(Cli::try_parse_from(["chat-bench", "storm", "--storm", "18001"]).is_err());
        assert!(Cli::try_parse_from(["chat-bench", "handshakes", "--concurrency", "0"]).is_err());
        assert!(Cli::try_parse_from(["chat-bench", "handshakes", "--tls-group", "ffdhe2048"]).is_err());
    }

    #[test]
    fn irc_options_parse_and_the_protocol_defaults_by_target() {
        let cli = Cli::try_parse_from(["chat-bench", "fanout", "--target", "ngircd"]).unwrap();
        assert_eq!(cli.target.protocol(), Protocol::Irc);
        assert_eq!(cli.target.target.flavor().name(), "ngircd");
        assert_eq!(cli.target.connect_inflight(), 4);
        assert_eq!(cli.target.ngircd_flood, NgircdFlood::Lifted);
        assert_eq!(cli.target.ngircd_bin, PathBuf::from("ngircd"));

        let cli = Cli::try_parse_from(["chat-bench", "idle"]).unwrap();
        assert_eq!(cli.target.protocol(), Protocol::Line);

        let cli = Cli::try_parse_from([
            "chat-bench",
            "--protocol",
            "mixed",
            "--addr",
            "127.0.0.1:7878",
            "--irc-addr",
            "127.0.0.1:6667",
            "fixed-rate",
            "--ngircd-flood",
            "no-penalty",
        ])
        .unwrap();
        assert_eq!(cli.target.protocol(), Protocol::Mixed);
        assert_eq!(cli.target.irc_addr, Some("127.0.0.1:6667".parse().unwrap()));
        assert_eq!(cli.target.ngircd_flood.name(), "no-penalty");
        assert!(Cli::try_parse_from(["chat-bench", "idle", "--protocol", "xmpp"]).is_err());
    }

    #[test]
    fn web_options_parse_and_name_their_protocols() {
        let cli = Cli::try_parse_from([
            "chat-bench",
            "--protocol",
            "mixed-web",
            "--addr",
            "127.0.0.1:7878",
            "--web-addr",
            "127.0.0.1:8080",
            "fanout",
        ])
        .unwrap();
        assert_eq!(cli.target.protocol(), Protocol::MixedWeb);
        assert_eq!(cli.target.web_addr, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(Protocol::MixedWeb.name(), "mixed-web");
        let cli = Cli::try_parse_from(["chat-bench", "--protocol", "web", "idle"]).unwrap();
        assert_eq!(cli.target.protocol().name(), "web");
        assert!(Protocol::Web.has_web() && !Protocol::Web.has_irc());
        assert!(Protocol::Mixed.has_irc() && !Protocol::Mixed.has_web());
        assert!(!Protocol::Line.has_web() && !Protocol::Line.has_irc());
    }

    #[test]
    fn cluster_instances_are_bounded_and_redis_has_a_default() {
        let cli = Cli::try_parse_from([
            "chat-bench",
            "--server-bin",
            "chat-server",
            "--cluster-instances",
            "2",
            "fanout",
        ])
        .unwrap();
        assert_eq!(cli.target.cluster_instances, Some(2));
        assert_eq!(cli.target.redis_bin, PathBuf::from("redis-server"));
        let cli = Cli::try_parse_from(["chat-bench", "fanout"]).unwrap();
        assert_eq!(cli.target.cluster_instances, None);
        assert!(Cli::try_parse_from(["chat-bench", "--cluster-instances", "0", "fanout"]).is_err());
        assert!(Cli::try_parse_from(["chat-bench", "--cluster-instances", "9", "fanout"]).is_err());
    }

    #[test]
    fn tokio_chat_is_a_target_with_its_own_binary_option() {
        let cli = Cli::try_parse_from([
            "chat-bench",
            "fanout",
            "--target",
            "tokio-chat",
            "--tokio-bin",
            "/tmp/tokio-chat/target/release/chat",
        ])
        .unwrap();
        assert_eq!(cli.target.target, TargetKind::TokioChat);
        assert_eq!(cli.target.target.flavor().name(), "tokio-chat");
        assert_eq!(
            cli.target.tokio_bin,
            Some(PathBuf::from("/tmp/tokio-chat/target/release/chat"))
        );
        assert_eq!(cli.target.connect_inflight(), 64);
    }
}
