//! chat-bench over TLS (issue 15) against the real chat-server library, in
//! this process, serving a certificate made for the test on a TLS listener
//! (127.0.0.1 port 0) beside a plain one: every line of a TLS fan-out
//! arrives once and in order, the handshakes and storm scenarios run to
//! their end and say what they counted, and a certificate the run does not
//! trust stops it with the reason. Nothing about timing is asserted.
//!
//! Every wait is bounded: the generator's own timeouts end each run, and
//! the server is shut down and joined at the end.

// A test fails by panicking; clippy.toml allows these in #[test] functions
// but not in the helpers of an integration test file, so say it here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::net::SocketAddr;

use chat_bench::args::{Cli, Scenario};
use chat_bench::engine::Flavor;
use chat_bench::scenario::fanout;
use chat_bench::target::Target;
use chat_bench::tls::{Group, SelfSigned, TlsClient, DEFAULT_NAME};
use chat_server::net::acceptor::ListenerKind;
use chat_server::net::tls::TlsFiles;
use chat_server::Config;
use clap::Parser;
use serde_json::Value;

use common::{bench_config, json_of, run_binary, InProcess};

/// The server on a thread of this process, with a plain and a TLS
/// listener and the benchmark's settings, and the certificate it serves.
struct TlsServer {
    /// Kept for its `Drop`: the server stops with the test.
    _server: InProcess,
    plain: SocketAddr,
    tls: SocketAddr,
    cert: SelfSigned,
}

impl TlsServer {
    fn start() -> TlsServer {
        let cert = SelfSigned::generate().unwrap();
        let server = InProcess::start(Config {
            tls_listen: vec!["127.0.0.1:0".parse().unwrap()],
            tls: Some(TlsFiles {
                cert: cert.cert.clone(),
                key: cert.key.clone(),
            }),
            ..bench_config()
        });
        TlsServer {
            plain: server.line,
            tls: server.addr(ListenerKind::LINE_TLS),
            _server: server,
            cert,
        }
    }

    /// `--addr ADDR --tls --ca CERT` for chat-bench's command line.
    fn tls_args(&self) -> Vec<String> {
        vec![
            "--addr".to_string(),
            self.tls.to_string(),
            "--tls".to_string(),
            "--ca".to_string(),
            self.cert.cert.display().to_string(),
        ]
    }
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_string()).collect()
}

#[track_caller]
fn assert_clean(json: &Value) {
    for key in ["lost", "duplicated", "out_of_order", "foreign"] {
        assert_eq!(json["integrity"][key], 0, "{key}: {json}");
    }
}

#[test]
fn a_tls_fanout_delivers_every_line_exactly_once_in_order() {
    let server = TlsServer::start();
    let cli = Cli::try_parse_from([
        "chat-bench",
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
    let tls = TlsClient::trusting(
        std::slice::from_ref(&server.cert.der),
        DEFAULT_NAME,
        Group::X25519,
    )
    .unwrap();
    let mut target = Target::attach(Flavor::ChatServer, server.tls, None)
        .unwrap()
        .with_tls(tls, server.cert.cert.clone());
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
    assert_eq!(report.header.transport, "tls");
    let negotiated = report.tls.expect("the TLS parameters are reported");
    assert_eq!(negotiated.version, "TLSv1_3");
    assert_eq!(negotiated.key_exchange, "X25519");
    assert_eq!(report.first_error, None);
}

#[test]
fn handshakes_are_counted_over_tls_and_over_tcp() {
    let server = TlsServer::start();
    let mut args = server.tls_args();
    args.extend(strings(&["handshakes", "--duration", "2", "--concurrency", "2"]));
    let json = json_of(&args);
    assert_eq!(json["scenario"], "handshakes");
    assert_eq!(json["transport"], "tls");
    assert_eq!(json["failed"], 0, "{json}");
    assert!(json["completed"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(json["latency"]["samples"], json["completed"], "{json}");
    assert_eq!(json["tls"]["version"], "TLSv1_3", "{json}");
    assert_eq!(json["tls"]["handshake"], "Full", "{json}");

    let json = json_of(&strings(&[
        "--addr",
        &server.plain.to_string(),
        "handshakes",
        "--duration",
        "1",
        "--concurrency",
        "2",
    ]));
    assert_eq!(json["transport"], "tcp");
    assert_eq!(json["failed"], 0, "{json}");
    assert!(json["completed"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(json["tls"], Value::Null);
}

#[test]
fn a_storm_arrives_and_the_clients_lose_nothing() {
    let server = TlsServer::start();
    for kind in ["full", "half-hello"] {
        let mut args = server.tls_args();
        args.extend(strings(&[
            "storm",
            "--clients",
            "4",
            "--senders",
            "1",
            "--rate",
            "50",
            "--duration",
            "2",
            "--storm",
            "20",
            "--storm-at",
            "0.5",
            "--min-window",
            "0.5",
            "--storm-kind",
            kind,
        ]));
        let json = json_of(&args);
        assert_eq!(json["scenario"], "storm");
        assert_eq!(json["storm_kind"], kind);
        assert_eq!(json["storm_arrived"], 20, "{json}");
        assert_eq!(json["storm_failed"], 0, "{json}");
        assert_eq!(json["complete"], true, "{json}");
        assert_clean(&json);
        // Each of the sender's lines reaches the 3 others.
        assert_eq!(
            json["integrity"]["delivered"].as_u64().unwrap(),
            json["latency"]["samples"].as_u64().unwrap()
        );
        assert!(json["window"]["samples"].as_u64().unwrap() <= json["latency"]["samples"].as_u64().unwrap());
        assert_eq!(json["clients_transport"], "tls");
    }
}

#[test]
fn a_certificate_the_run_does_not_trust_stops_it_with_the_reason() {
    let server = TlsServer::start();
    let stranger = SelfSigned::generate().unwrap();
    let args = strings(&[
        "--addr",
        &server.tls.to_string(),
        "--tls",
        "--ca",
        &stranger.cert.display().to_string(),
        "fanout",
        "--clients",
        "3",
        "--senders",
        "1",
        "--count",
        "10",
        "--setup-timeout",
        "10",
    ]);
    let (ok, _, said) = run_binary(&args);
    assert!(!ok, "{said}");
    assert!(said.contains("only 0 of 3 clients connected"), "{said}");
    assert!(said.contains("invalid peer certificate"), "{said}");
}
