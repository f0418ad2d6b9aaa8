//! chat-bench's WebSocket mode (issue 18) against the real chat-server
//! library, in this process, with a web listener beside its line one
//! (127.0.0.1 port 0): every line of a WebSocket fan-out arrives once and
//! in order, so does every line in a room mixing WebSocket and line
//! clients (reported per kind as well), the server's Pings are answered so
//! quiet receivers are not closed, idle WebSocket clients upgrade and a
//! join storm over WebSocket joins them all; and a chat-server the bench
//! starts itself gets a web listener whose port is read from its log.
//! Nothing about timing is asserted.
//!
//! Every wait is bounded: the generator's own timeouts end each run, and
//! the chat-server is shut down and joined at the end (the one the bench
//! starts is killed by it).

// A test fails by panicking; clippy.toml allows these in #[test] functions
// but not in the helpers of an integration test file, so say it here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use chat_bench::args::{Cli, Protocol, Scenario};
use chat_bench::engine::Flavor;
use chat_bench::scenario::fanout;
use chat_bench::target::Target;
use chat_server::config::Keepalive;
use chat_server::net::acceptor::ListenerKind;
use chat_server::Config;
use clap::Parser;

use common::{assert_every_line_once, bench_config, json_of, run_binary, InProcess};

/// chat-server with a line and a web listener, the web keepalive
/// `keepalive`, and the benchmark's settings.
fn web_server(keepalive: Keepalive) -> InProcess {
    let mut config = Config {
        web_listen: vec!["127.0.0.1:0".parse().unwrap()],
        ..bench_config()
    };
    config.web.keepalive = keepalive;
    InProcess::start(config)
}

/// The `chat-server` binary of this build (target/debug/chat-server).
fn server_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    let mut dir = exe
        .parent()
        .expect("the test executable is in a directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("chat-server");
    assert!(
        path.is_file(),
        "{} not found: build the binaries first with `cargo build --workspace`",
        path.display()
    );
    path
}

#[test]
fn a_websocket_fanout_delivers_every_line_exactly_once_in_order() {
    let server = web_server(Config::default().web.keepalive);
    let cli = Cli::try_parse_from([
        "chat-bench",
        "--protocol",
        "web",
        "fanout",
        "--clients",
        "5",
        "--senders",
        "2",
        "--count",
        "200",
        "--duration",
        "60",
        "--drain",
        "30",
    ])
    .unwrap();
    let Scenario::Fanout(args) = &cli.scenario else { panic!("parsed as {:?}", cli.scenario) };
    let mut target = Target::attach(Flavor::ChatServer, server.addr(ListenerKind::WEB), None)
        .unwrap()
        .with_protocol(Protocol::Web, None)
        .with_web(Some(server.addr(ListenerKind::WEB)));
    let report = fanout::run(&mut target, &cli.target, &args.common, None, "fanout").unwrap();

    assert!(report.complete, "the run timed out: {report:?}");
    assert_eq!(report.lines_sent, 400);
    let i = report.integrity;
    assert_eq!(i.delivered, 400 * 4, "{report:?}");
    assert_eq!(
        (i.lost, i.duplicated, i.out_of_order, i.foreign),
        (0, 0, 0, 0),
        "{report:?}"
    );
    assert_eq!(report.header.protocol, "web");
    assert_eq!(report.first_error, None);
    // One kind of client: no figures per kind.
    assert!(report.by_kind.is_empty(), "{:?}", report.by_kind);
}

#[test]
fn a_room_of_websocket_and_line_clients_gets_every_line_and_reports_each_kind() {
    let server = web_server(Config::default().web.keepalive);
    let (line, web) = (
        server.line.to_string(),
        server.addr(ListenerKind::WEB).to_string(),
    );
    // Clients 0, 2, 4 speak WebSocket, 1, 3, 5 the line protocol; senders
    // 0 and 1 are one of each, so lines cross both ways.
    let json = json_of(&[
        "--addr",
        &line,
        "--web-addr",
        &web,
        "--protocol",
        "mixed-web",
        "fanout",
        "--clients",
        "6",
        "--senders",
        "2",
        "--count",
        "150",
        "--duration",
        "60",
        "--drain",
        "30",
    ]);
    assert_eq!(json["protocol"], "mixed-web");
    assert_every_line_once(&json, 2 * 150 * 5);
    // Sender 0's lines reach WebSocket clients 2 and 4 and line clients 1,
    // 3 and 5; sender 1's reach WebSocket clients 0, 2 and 4 and line
    // clients 3 and 5: 150 × 5 each way.
    for kind in ["line", "web"] {
        let figures = &json["by_kind"][kind];
        assert_eq!(figures["clients"], 3, "{kind}: {json}");
        assert_eq!(figures["delivered"], 750, "{kind}: {json}");
        assert_eq!(figures["latency"]["samples"], 750, "{kind}: {json}");
        assert!(
            figures["deliveries_per_s"].as_f64().unwrap() > 0.0,
            "{kind}: {json}"
        );
    }
    assert_eq!(json["by_kind"].as_object().unwrap().len(), 2, "{json}");
}

#[test]
fn the_servers_pings_are_answered_so_quiet_receivers_stay() {
    // Pinged after 100 ms without a frame, closed 500 ms after a Ping no
    // frame answered: receivers send nothing but Pongs, so without them
    // every receiver would be closed long before the run's end.
    let server = web_server(Keepalive {
        register_within: Duration::from_secs(10),
        ping_after: Duration::from_millis(100),
        ping_timeout: Duration::from_millis(500),
    });
    let web = server.addr(ListenerKind::WEB).to_string();
    // 100 lines at 50 a second: the senders send for 2 s by their
    // schedule, twenty times the quiet after which the server pings.
    let json = json_of(&[
        "--addr",
        &web,
        "--protocol",
        "web",
        "fixed-rate",
        "--clients",
        "4",
        "--senders",
        "1",
        "--rate",
        "50",
        "--count",
        "100",
        "--duration",
        "60",
        "--drain",
        "30",
    ]);
    assert_every_line_once(&json, 100 * 3);
    assert!(json["pings_answered"].as_u64().unwrap() >= 3, "{json}");
}

#[test]
fn idle_websocket_clients_upgrade_and_a_join_storm_over_websocket_joins_them_all() {
    let server = web_server(Config::default().web.keepalive);
    let web = server.addr(ListenerKind::WEB).to_string();
    let json = json_of(&["--addr", &web, "--protocol", "web", "idle", "--clients", "20"]);
    assert_eq!(json["protocol"], "web");
    assert_eq!(
        (json["held"].as_u64(), json["failed"].as_u64()),
        (Some(20), Some(0)),
        "{json}"
    );

    let json = json_of(&[
        "--addr",
        &web,
        "--protocol",
        "web",
        "join-storm",
        "--clients",
        "20",
        "--workers",
        "2",
    ]);
    assert_eq!(json["connected"], 20, "{json}");
    assert_eq!(json["all_joined"], true, "{json}");
    assert_eq!(json["died"], 0, "{json}");
}

#[test]
fn a_chat_server_the_bench_starts_gets_a_web_listener_found_in_its_log() {
    let bin = server_bin();
    let bin = bin.to_str().unwrap();
    for protocol in ["web", "mixed-web"] {
        let json = json_of(&[
            "--server-bin",
            bin,
            "--protocol",
            protocol,
            "fanout",
            "--clients",
            "4",
            "--senders",
            "2",
            "--count",
            "50",
            "--duration",
            "60",
            "--drain",
            "30",
        ]);
        assert_every_line_once(&json, 2 * 50 * 3);
        let server = json["server"].as_str().unwrap();
        assert!(server.contains("--web-listen 127.0.0.1:0"), "{server}");
    }
}

#[test]
fn a_server_that_does_not_upgrade_stops_the_run_with_its_answer() {
    let server = web_server(Config::default().web.keepalive);
    // The line listener answers the request as a line client would: with
    // the line protocol's welcome, which is no `HTTP/1.1 101`.
    let line = server.line.to_string();
    let (ok, _, said) = run_binary(&[
        "--addr",
        &line,
        "--protocol",
        "web",
        "--setup-timeout",
        "10",
        "fanout",
        "--clients",
        "2",
        "--senders",
        "1",
        "--count",
        "1",
    ]);
    assert!(!ok, "the run should fail: {said}");
    assert!(said.contains("WebSocket upgrade refused: -- welcome"), "{said}");
}
