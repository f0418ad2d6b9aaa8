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

use std::net::SocketAddr;
use std::process::Command;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use chat_bench::args::{Cli, Scenario};
use chat_bench::engine::Flavor;
use chat_bench::scenario::fanout;
use chat_bench::target::Target;
use chat_bench::tls::{Group, SelfSigned, TlsClient, DEFAULT_NAME};
use chat_server::net::tls::TlsFiles;
use chat_server::{Config, Server, ShutdownHandle};
use clap::Parser;
use serde_json::Value;

/// The server on a thread of this process, with a plain and a TLS
/// listener and the benchmark's settings (flood control and the
/// connection throttles off).
struct InProcess {
    plain: SocketAddr,
    tls: SocketAddr,
    cert: SelfSigned,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
    done: mpsc::Receiver<()>,
}

impl InProcess {
    fn start() -> InProcess {
        let cert = SelfSigned::generate().unwrap();
        let config = Config {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            tls_listen: vec!["127.0.0.1:0".parse().unwrap()],
            tls: Some(TlsFiles {
                cert: cert.cert.clone(),
                key: cert.key.clone(),
            }),
            rate: 0,
            max_per_ip: 0,
            max_per_net: 0,
            connect_rate: 0,
            max_clients: 5_000,
            sendq: 16 * 1024 * 1024,
            ..Config::default()
        };
        let server = Server::bind(config).expect("bind the server");
        let plain = server.local_addrs()[0];
        let tls = *server
            .all_addrs()
            .iter()
            .find(|a| **a != plain)
            .expect("a TLS listener");
        let handle = server.handle();
        let (tx, done) = mpsc::channel();
        let thread = thread::spawn(move || {
            server.run().expect("the server runs");
            let _ = tx.send(());
        });
        InProcess {
            plain,
            tls,
            cert,
            handle,
            thread: Some(thread),
            done,
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

impl Drop for InProcess {
    fn drop(&mut self) {
        self.handle.shutdown();
        // Shutdown grace is 5 s by default; give it a little more.
        if self.done.recv_timeout(Duration::from_secs(15)).is_ok() {
            if let Some(t) = self.thread.take() {
                t.join().unwrap();
            }
        }
    }
}

/// Runs the chat-bench binary with `args`: its exit status, its JSON line
/// (if any), and everything it said.
fn run_binary(args: &[String]) -> (bool, Option<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-bench"))
        .args(args)
        .output()
        .expect("run chat-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let said = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let json = stdout.lines().last().and_then(|l| serde_json::from_str(l).ok());
    (out.status.success(), json, said)
}

/// As [`run_binary`], for a run that must succeed.
#[track_caller]
fn json_of(args: &[String]) -> Value {
    let (ok, json, said) = run_binary(args);
    assert!(ok, "chat-bench {args:?} failed: {said}");
    json.unwrap_or_else(|| panic!("no JSON line: {said}"))
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
    let server = InProcess::start();
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
    let server = InProcess::start();
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
    let server = InProcess::start();
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
    let server = InProcess::start();
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
