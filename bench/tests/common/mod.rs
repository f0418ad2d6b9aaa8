//! What the integration tests of chat-bench's protocol modes share: a
//! chat-server on a thread of the test's process, configured as the
//! benchmarks run it, and running the chat-bench binary for its JSON line.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use chat_server::net::acceptor::ListenerKind;
use chat_server::{Config, Server, ShutdownHandle};
use serde_json::Value;

/// The benchmark's settings (flood control and the connection limits and
/// throttles off, a queue that a fast run does not fill) with a line
/// listener on a free loopback port; a test adds its other listeners.
pub fn bench_config() -> Config {
    Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        rate: 0,
        max_per_ip: 0,
        max_per_net: 0,
        connect_rate: 0,
        max_clients: 5_000,
        sendq: 16 * 1024 * 1024,
        ..Config::default()
    }
}

/// chat-server on a thread of this process, shut down and joined when
/// dropped.
pub struct InProcess {
    /// The line listener's address.
    pub line: SocketAddr,
    /// Every listener's kind and address.
    listeners: Vec<(ListenerKind, SocketAddr)>,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
    done: mpsc::Receiver<()>,
}

impl InProcess {
    /// Binds `config`'s listeners and runs the server.
    pub fn start(config: Config) -> InProcess {
        let server = Server::bind(config).expect("bind the server");
        let line = server.local_addrs()[0];
        let listeners = [ListenerKind::LINE_TLS, ListenerKind::IRC, ListenerKind::WEB]
            .into_iter()
            .flat_map(|kind| {
                server
                    .listener_addrs(kind)
                    .into_iter()
                    .map(move |addr| (kind, addr))
            })
            .collect();
        let handle = server.handle();
        let (tx, done) = mpsc::channel();
        let thread = thread::spawn(move || {
            server.run().expect("the server runs");
            let _ = tx.send(());
        });
        InProcess {
            line,
            listeners,
            handle,
            thread: Some(thread),
            done,
        }
    }

    /// The address of the (first) listener of `kind`.
    #[track_caller]
    pub fn addr(&self, kind: ListenerKind) -> SocketAddr {
        match self.listeners.iter().find(|(k, _)| *k == kind) {
            Some((_, addr)) => *addr,
            None => panic!("the server has no {kind:?} listener"),
        }
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
pub fn run_binary<S: AsRef<OsStr>>(args: &[S]) -> (bool, Option<Value>, String) {
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
pub fn json_of<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S]) -> Value {
    let (ok, json, said) = run_binary(args);
    assert!(ok, "chat-bench {args:?} failed: {said}");
    json.unwrap_or_else(|| panic!("no JSON line: {said}"))
}

/// Every line of a fan-out JSON line arrived once, in order: `expected`
/// deliveries, each timed.
// Not every test binary that includes this module runs a fan-out.
#[allow(dead_code)]
#[track_caller]
pub fn assert_every_line_once(json: &Value, expected: u64) {
    for key in ["lost", "duplicated", "out_of_order", "foreign"] {
        assert_eq!(json["integrity"][key], 0, "{key}: {json}");
    }
    assert_eq!(json["integrity"]["delivered"], expected, "{json}");
    assert_eq!(json["latency"]["samples"], expected, "{json}");
    assert_eq!(json["complete"], true, "{json}");
    assert_eq!(json["first_error"], Value::Null, "{json}");
}
