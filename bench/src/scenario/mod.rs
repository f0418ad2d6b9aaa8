//! The scenarios, and what they share: finding or starting the server,
//! and setting up the engine.
//!
//! - [`fanout`]: throughput and latency of fan-out, window-limited or at a
//!   fixed rate.
//! - [`join`]: a join storm into one room.
//! - [`idle`]: memory per idle connection, and a connection ramp.
//! - [`pool`]: connections held in this process or in worker processes.
//! - [`handshakes`]: new connections (TLS handshakes) per second.
//! - [`storm`]: a handshake storm while clients chat.
//! - [`table`]: the markdown table of earlier runs.

pub mod fanout;
pub mod handshakes;
pub mod idle;
pub mod join;
pub mod pool;
pub mod storm;
pub mod table;

use std::net::SocketAddr;
use std::time::Duration;

use crate::args::{Cli, Protocol, Scenario, TargetArgs, TargetKind};
use crate::engine::{Engine, EngineConfig, Flavor, Handshake, OpenOutcome};
use crate::error::{Error, Result};
use crate::target::{Target, CHAT_SERVER_ARGS};
use crate::tls::TlsClient;

/// Runs the scenario the command line names.
///
/// # Errors
/// When the server cannot be reached or started, or the scenario cannot
/// be set up.
pub fn run(cli: Cli) -> Result<()> {
    let args = cli.target;
    if args.cluster_instances.is_some()
        && !matches!(cli.scenario, Scenario::Fanout(_) | Scenario::FixedRate(_))
    {
        return Err(Error::msg(
            "--cluster-instances runs fanout and fixed-rate (the other scenarios measure one server)",
        ));
    }
    match cli.scenario {
        Scenario::Table(t) => table::run(&t),
        Scenario::Worker(w) => pool::worker_main(&args, &w),
        Scenario::Fanout(f) => {
            let mut target = open_target(&args, f.common.clients)?;
            let rate = (f.rate > 0.0).then_some(f.rate);
            let report = fanout::run(&mut target, &args, &f.common, rate, "fanout")?;
            fanout::print(&report)
        }
        Scenario::FixedRate(f) => {
            let mut target = open_target(&args, f.common.clients)?;
            let rate = (f.rate > 0.0).then_some(f.rate);
            let report = fanout::run(&mut target, &args, &f.common, rate, "fixed-rate")?;
            fanout::print(&report)
        }
        Scenario::JoinStorm(j) => {
            let mut target = open_target(&args, j.clients)?;
            join::run(&mut target, &args, &j)
        }
        Scenario::Idle(i) => {
            let mut target = open_target(&args, i.clients)?;
            idle::run_idle(&mut target, &args, &i)
        }
        Scenario::Ramp(r) => {
            let mut target = open_target(&args, r.max)?;
            idle::run_ramp(&mut target, &args, &r)
        }
        Scenario::Handshakes(h) => {
            not_over_irc(&args, "handshakes")?;
            let mut target = open_target(&args, h.concurrency.saturating_add(handshakes::CLOSING_ROOM))?;
            handshakes::run(&mut target, &args, &h)
        }
        Scenario::Storm(s) => {
            not_over_irc(&args, "storm")?;
            let mut target = open_target(&args, s.clients.saturating_add(s.storm))?;
            storm::run(&mut target, &args, &s)
        }
    }
}

/// The handshakes and storm scenarios measure new connections of the line
/// protocol (and TLS); over IRC and WebSocket they are not measured.
fn not_over_irc(args: &TargetArgs, scenario: &str) -> Result<()> {
    match args.protocol() {
        Protocol::Line => Ok(()),
        other => Err(Error::msg(format!(
            "{scenario} is not measured over IRC or WebSocket (--protocol {}); those run fanout, \
             fixed-rate, idle, ramp and join-storm",
            other.name()
        ))),
    }
}

/// Checks that the target can speak the run's protocol, before anything
/// is started.
///
/// # Errors
/// When it cannot: IRC or WebSocket to ncat or tokio's example, the line
/// protocol or WebSocket to ngircd, IRC or WebSocket over TLS, a mixed room
/// anywhere but chat-server.
fn check_protocol(args: &TargetArgs) -> Result<Protocol> {
    let protocol = args.protocol();
    let kind = args.target.flavor().name();
    match (args.target, protocol) {
        (TargetKind::Ncat | TargetKind::TokioChat, Protocol::Irc | Protocol::Mixed) => {
            return Err(Error::msg(format!(
                "{kind} does not speak IRC (--protocol {})",
                protocol.name()
            )));
        }
        (TargetKind::Ncat | TargetKind::TokioChat, Protocol::Web | Protocol::MixedWeb) => {
            return Err(Error::msg(format!(
                "{kind} does not speak WebSocket (--protocol {})",
                protocol.name()
            )));
        }
        (TargetKind::Ngircd, Protocol::Line | Protocol::Mixed | Protocol::Web | Protocol::MixedWeb) => {
            return Err(Error::msg(format!(
                "ngircd speaks IRC only; --protocol {} needs chat-server",
                protocol.name()
            )));
        }
        _ => {}
    }
    if protocol != Protocol::Line && args.tls {
        return Err(Error::msg(
            "IRC and WebSocket runs are over plain TCP; --tls is for the line protocol",
        ));
    }
    if args.irc_addr.is_some() && !(protocol == Protocol::Mixed && args.addr.is_some()) {
        return Err(Error::msg(
            "--irc-addr is for --protocol mixed with --addr (a chat-server started by hand); \
             with --protocol irc, --addr is the IRC port",
        ));
    }
    if protocol == Protocol::Mixed && args.addr.is_some() && args.irc_addr.is_none() {
        return Err(Error::msg(
            "--protocol mixed with --addr needs --irc-addr, the chat-server's IRC listener",
        ));
    }
    if args.web_addr.is_some() && !(protocol == Protocol::MixedWeb && args.addr.is_some()) {
        return Err(Error::msg(
            "--web-addr is for --protocol mixed-web with --addr (a chat-server started by hand); \
             with --protocol web, --addr is the web listener",
        ));
    }
    if protocol == Protocol::MixedWeb && args.addr.is_some() && args.web_addr.is_none() {
        return Err(Error::msg(
            "--protocol mixed-web with --addr needs --web-addr, the chat-server's web listener",
        ));
    }
    Ok(protocol)
}

/// A server already running at `addr`, spoken to as the options say.
///
/// # Errors
/// When `addr` is not a loopback address.
pub fn attach(args: &TargetArgs, addr: SocketAddr, pid: Option<u32>) -> Result<Target> {
    let protocol = args.protocol();
    let (irc_addr, web_addr) = match protocol {
        Protocol::Line => (None, None),
        Protocol::Irc => (Some(addr), None),
        Protocol::Mixed => (args.irc_addr, None),
        Protocol::Web => (None, Some(addr)),
        Protocol::MixedWeb => (None, args.web_addr),
    };
    if let Some(other) = irc_addr.or(web_addr).filter(|a| !a.ip().is_loopback()) {
        return Err(Error::msg(format!(
            "{other} is not a loopback address; chat-bench only loads loopback"
        )));
    }
    Ok(Target::attach(args.target.flavor(), addr, pid)?
        .with_protocol(protocol, irc_addr)
        .with_web(web_addr))
}

/// The server the options name: attached with --addr, or started (with
/// room for `clients` connections).
///
/// # Errors
/// When none is named, or it cannot be started.
pub fn open_target(args: &TargetArgs, clients: u32) -> Result<Target> {
    let flavor = args.target.flavor();
    let protocol = check_protocol(args)?;
    if !args.server_args.is_empty() {
        if args.target != TargetKind::ChatServer {
            return Err(Error::msg(format!(
                "--server-arg is for the chat-server that --server-bin starts, not for --target {}",
                flavor.name()
            )));
        }
        if args.addr.is_some() || args.server_bin.is_none() {
            return Err(Error::msg(
                "--server-arg needs --server-bin (a server given with --addr was started by someone else)",
            ));
        }
    }
    if let Some(instances) = args.cluster_instances {
        return open_cluster_target(args, clients, protocol, instances);
    }
    if args.tls {
        return open_tls_target(args, clients);
    }
    if args.ca.is_some() {
        return Err(Error::msg("--ca is for --tls runs"));
    }
    match (args.addr, args.target, &args.server_bin) {
        (Some(addr), _, _) => attach(args, addr, args.server_pid),
        (None, TargetKind::Ngircd, _) => Target::spawn_ngircd(&args.ngircd_bin, args.ngircd_flood),
        (None, TargetKind::Ncat, _) => Target::spawn_ncat(&args.ncat_bin),
        (None, TargetKind::TokioChat, _) => match &args.tokio_bin {
            Some(bin) => Target::spawn_tokio_chat(bin),
            None => Err(Error::msg(
                "give --tokio-bin PATH (a release build of tokio's examples/chat.rs, which is not \
                 part of this project: build it from tokio's repository, see --help), or --addr \
                 ADDR [--server-pid PID] of one started by hand",
            )),
        },
        (None, TargetKind::ChatServer, Some(bin)) => match protocol {
            Protocol::Line => Target::spawn_chat_server(bin, clients, &args.server_args),
            Protocol::Irc | Protocol::Mixed => {
                Target::spawn_chat_server_irc(bin, clients, &args.server_args, protocol)
            }
            Protocol::Web | Protocol::MixedWeb => {
                Target::spawn_chat_server_web(bin, clients, &args.server_args, protocol)
            }
        },
        (None, TargetKind::ChatServer, None) => Err(Error::msg(format!(
            "give --server-bin PATH, or --addr ADDR of a chat-server started with {} \
             --max-clients (at least the run's clients)",
            CHAT_SERVER_ARGS.join(" ")
        ))),
    }
}

/// [`open_target`] for a cluster run (issue 17): chat-server instances
/// this run starts, through a Redis it starts, over the line protocol.
fn open_cluster_target(
    args: &TargetArgs,
    clients: u32,
    protocol: Protocol,
    instances: u16,
) -> Result<Target> {
    if args.target != TargetKind::ChatServer {
        return Err(Error::msg(format!(
            "--cluster-instances clusters chat-server, not --target {}",
            args.target.flavor().name()
        )));
    }
    if protocol != Protocol::Line || args.tls {
        return Err(Error::msg(
            "--cluster-instances runs speak the line protocol over plain TCP",
        ));
    }
    match (&args.server_bin, args.addr) {
        (Some(bin), None) => {
            Target::spawn_chat_server_cluster(bin, &args.redis_bin, clients, &args.server_args, instances)
        }
        _ => Err(Error::msg(
            "--cluster-instances needs --server-bin (chat-bench starts the instances and their Redis) \
             and no --addr",
        )),
    }
}

/// [`open_target`] for a TLS run.
fn open_tls_target(args: &TargetArgs, clients: u32) -> Result<Target> {
    let flavor = args.target.flavor();
    match (args.addr, args.target, &args.server_bin) {
        (_, TargetKind::TokioChat, _) => Err(Error::msg("tokio's chat example does not speak TLS")),
        (_, TargetKind::Ngircd, _) => Err(Error::msg("ngircd is measured over plain TCP")),
        (Some(addr), _, _) => {
            let Some(ca) = &args.ca else {
                return Err(Error::msg(
                    "--tls with --addr needs --ca FILE: the certificate (PEM) of the server started by hand",
                ));
            };
            let tls = TlsClient::from_ca_file(ca, &args.tls_name, args.tls_group)?;
            Ok(Target::attach(flavor, addr, args.server_pid)?.with_tls(tls, ca.clone()))
        }
        (None, _, _) if args.ca.is_some() => Err(Error::msg(
            "--ca is for a server given with --addr; a server chat-bench starts presents a certificate it makes",
        )),
        (None, TargetKind::Ncat, _) => Target::spawn_ncat_tls(&args.ncat_bin, &args.tls_name, args.tls_group),
        (None, TargetKind::ChatServer, Some(bin)) => Target::spawn_chat_server_tls(
            bin,
            clients,
            &args.server_args,
            &args.tls_name,
            args.tls_group,
        ),
        (None, TargetKind::ChatServer, None) => Err(Error::msg(format!(
            "give --server-bin PATH, or --addr ADDR of a chat-server's TLS listener started with {} \
             --max-clients (at least the run's clients), and --ca FILE with its certificate",
            CHAT_SERVER_ARGS.join(" ")
        ))),
    }
}

/// The engine setup for `target` with these options, living at most
/// `lifetime`.
pub fn engine_config(args: &TargetArgs, target: &Target, lifetime: Duration) -> EngineConfig {
    EngineConfig {
        dest: target.addr,
        flavor: target.flavor,
        threads: usize::from(args.threads),
        sources: usize::from(args.sources),
        first_id: 0,
        connect_inflight: usize::from(args.connect_inflight()),
        lifetime,
        tls: target.tls.clone(),
        irc: target.irc_setup(),
        web: target.web_setup(),
        cluster: target.cluster_addrs(),
    }
}

/// How the run's clients get into the room: a join where the server has
/// rooms, nothing more where it has one.
pub fn room_handshake(flavor: Flavor) -> Handshake {
    if flavor.has_rooms() {
        Handshake::Join(room_name())
    } else {
        Handshake::Welcome
    }
}

/// Why a run could not start: not every client connected (and joined),
/// with the first connection error (a certificate that does not verify,
/// a refusal) and the end of the server's log.
pub fn not_all_connected(
    opened: &OpenOutcome,
    clients: usize,
    target: &mut Target,
    engine: &Engine,
) -> Error {
    Error::msg(format!(
        "only {} of {} clients connected and joined in {:.1} s ({} failed; server alive: {}){}{}",
        opened.live,
        clients,
        opened.elapsed.as_secs_f64(),
        opened.failed,
        target.is_alive(),
        engine
            .first_error()
            .map_or(String::new(), |e| format!("; first error: {e}")),
        match target.log_tail() {
            tail if tail.is_empty() => String::new(),
            tail => format!("; server log: {tail}"),
        },
    ))
}

/// A room no other run uses at the same time.
pub fn room_name() -> String {
    format!("#bench{}", std::process::id())
}

/// How long announcements get to stop flowing after a setup step.
pub const QUIET: Duration = Duration::from_millis(300);

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn target_args(argv: &[&str]) -> TargetArgs {
        let mut all = vec!["chat-bench"];
        all.extend_from_slice(argv);
        all.push("idle");
        Cli::try_parse_from(all).unwrap().target
    }

    #[test]
    fn server_args_only_go_with_a_started_chat_server() {
        // Refused before anything is started or connected to.
        let ncat = open_target(&target_args(&["--target", "ncat", "--server-arg=--threads"]), 10);
        assert!(ncat.unwrap_err().0.contains("not for --target ncat"));
        let attached = open_target(
            &target_args(&["--addr", "127.0.0.1:9", "--server-arg=--threads"]),
            10,
        );
        assert!(attached.unwrap_err().0.contains("needs --server-bin"));
        let tokio = open_target(
            &target_args(&["--target", "tokio-chat", "--tokio-bin", "chat", "--server-arg=-v"]),
            10,
        );
        assert!(tokio.unwrap_err().0.contains("not for --target tokio-chat"));
    }

    #[test]
    fn tls_options_are_checked_before_anything_starts() {
        let no_ca = open_target(&target_args(&["--tls", "--addr", "127.0.0.1:9"]), 10);
        assert!(no_ca.unwrap_err().0.contains("needs --ca FILE"));
        let ca_alone = open_target(&target_args(&["--ca", "cert.pem", "--addr", "127.0.0.1:9"]), 10);
        assert!(ca_alone.unwrap_err().0.contains("--ca is for --tls runs"));
        let ca_started = open_target(
            &target_args(&["--tls", "--ca", "cert.pem", "--server-bin", "chat-server"]),
            10,
        );
        assert!(ca_started.unwrap_err().0.contains("a certificate it makes"));
        let tokio = open_target(
            &target_args(&["--tls", "--target", "tokio-chat", "--tokio-bin", "chat"]),
            10,
        );
        assert!(tokio.unwrap_err().0.contains("does not speak TLS"));
        let missing = open_target(
            &target_args(&["--tls", "--addr", "127.0.0.1:9", "--ca", "/nonexistent/cert.pem"]),
            10,
        );
        assert!(missing
            .unwrap_err()
            .0
            .contains("cannot read --ca /nonexistent/cert.pem"));
    }

    #[test]
    fn a_protocol_the_target_cannot_speak_is_refused_before_anything_starts() {
        let said = |argv: &[&str]| open_target(&target_args(argv), 10).unwrap_err().0;
        assert!(said(&["--target", "ncat", "--protocol", "irc"]).contains("ncat does not speak IRC"));
        assert!(said(&["--target", "tokio-chat", "--protocol", "mixed"]).contains("does not speak IRC"));
        assert!(said(&["--target", "ngircd", "--protocol", "line"]).contains("ngircd speaks IRC only"));
        assert!(said(&["--target", "ngircd", "--protocol", "mixed"]).contains("ngircd speaks IRC only"));
        assert!(said(&["--protocol", "irc", "--tls", "--server-bin", "x"]).contains("plain TCP"));
        assert!(said(&["--protocol", "mixed", "--addr", "127.0.0.1:9"]).contains("needs --irc-addr"));
        assert!(said(&[
            "--protocol",
            "irc",
            "--irc-addr",
            "127.0.0.1:9",
            "--addr",
            "127.0.0.1:8"
        ])
        .contains("--addr is the IRC port"));
        assert!(said(&[
            "--protocol",
            "mixed",
            "--addr",
            "127.0.0.1:9",
            "--irc-addr",
            "10.0.0.1:6667"
        ])
        .contains("not a loopback address"));
        let no_handshakes = Cli::try_parse_from(["chat-bench", "--protocol", "irc", "handshakes"]).unwrap();
        assert!(run(no_handshakes)
            .unwrap_err()
            .0
            .contains("not measured over IRC"));
    }

    #[test]
    fn a_websocket_run_the_target_cannot_make_is_refused_before_anything_starts() {
        let said = |argv: &[&str]| open_target(&target_args(argv), 10).unwrap_err().0;
        assert!(said(&["--target", "ncat", "--protocol", "web"]).contains("ncat does not speak WebSocket"));
        assert!(
            said(&["--target", "tokio-chat", "--protocol", "mixed-web"]).contains("does not speak WebSocket")
        );
        assert!(said(&["--target", "ngircd", "--protocol", "web"]).contains("ngircd speaks IRC only"));
        assert!(said(&["--protocol", "web", "--tls", "--server-bin", "x"]).contains("plain TCP"));
        assert!(said(&["--protocol", "mixed-web", "--addr", "127.0.0.1:9"]).contains("needs --web-addr"));
        assert!(said(&[
            "--protocol",
            "web",
            "--web-addr",
            "127.0.0.1:9",
            "--addr",
            "127.0.0.1:8"
        ])
        .contains("--addr is the web listener"));
        assert!(said(&[
            "--protocol",
            "mixed-web",
            "--addr",
            "127.0.0.1:9",
            "--web-addr",
            "10.0.0.1:8080"
        ])
        .contains("not a loopback address"));
        let no_storm = Cli::try_parse_from(["chat-bench", "--protocol", "web", "storm"]).unwrap();
        assert!(run(no_storm)
            .unwrap_err()
            .0
            .contains("not measured over IRC or WebSocket"));
    }

    #[test]
    fn a_websocket_server_by_hand_is_spoken_to_on_its_web_listener() {
        let web = open_target(
            &target_args(&["--protocol", "web", "--addr", "127.0.0.1:8080"]),
            10,
        )
        .unwrap();
        let setup = web.web_setup().unwrap();
        assert_eq!(setup.dest, "127.0.0.1:8080".parse().unwrap());
        assert!(web.irc_setup().is_none());
        let mixed = open_target(
            &target_args(&[
                "--protocol",
                "mixed-web",
                "--addr",
                "127.0.0.1:7878",
                "--web-addr",
                "127.0.0.1:8080",
            ]),
            10,
        )
        .unwrap();
        assert_eq!(mixed.web_setup().unwrap().dest, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(mixed.addr, "127.0.0.1:7878".parse().unwrap());
    }

    #[test]
    fn an_irc_server_by_hand_is_spoken_to_on_its_port() {
        let target = open_target(
            &target_args(&["--target", "ngircd", "--addr", "127.0.0.1:6667"]),
            10,
        )
        .unwrap();
        assert_eq!(target.protocol, Protocol::Irc);
        assert_eq!(target.irc_addr, Some("127.0.0.1:6667".parse().unwrap()));
        let mixed = open_target(
            &target_args(&[
                "--protocol",
                "mixed",
                "--addr",
                "127.0.0.1:7878",
                "--irc-addr",
                "127.0.0.1:6667",
            ]),
            10,
        )
        .unwrap();
        let setup = mixed.irc_setup().unwrap();
        assert_eq!(setup.dest, "127.0.0.1:6667".parse().unwrap());
        assert_eq!(mixed.addr, "127.0.0.1:7878".parse().unwrap());
    }

    #[test]
    fn a_cluster_run_is_refused_where_it_cannot_be_made_before_anything_starts() {
        let said = |argv: &[&str]| open_target(&target_args(argv), 10).unwrap_err().0;
        assert!(said(&["--cluster-instances", "2"]).contains("needs --server-bin"));
        assert!(said(&[
            "--cluster-instances",
            "2",
            "--server-bin",
            "x",
            "--addr",
            "127.0.0.1:9"
        ])
        .contains("no --addr"));
        assert!(said(&["--cluster-instances", "2", "--target", "ncat"]).contains("not --target ncat"));
        assert!(said(&[
            "--cluster-instances",
            "2",
            "--server-bin",
            "x",
            "--protocol",
            "irc"
        ])
        .contains("line protocol"));
        assert!(said(&["--cluster-instances", "2", "--server-bin", "x", "--tls"]).contains("plain TCP"));
        let idle = Cli::try_parse_from(["chat-bench", "--cluster-instances", "2", "idle"]).unwrap();
        assert!(run(idle).unwrap_err().0.contains("runs fanout and fixed-rate"));
    }

    #[test]
    fn tokio_chat_needs_a_binary_or_an_address() {
        let missing = open_target(&target_args(&["--target", "tokio-chat"]), 10);
        assert!(missing.unwrap_err().0.contains("--tokio-bin"));
    }
}
