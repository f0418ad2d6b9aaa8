//! Smoke runs of chat-bench against the real chat-server library, in this
//! process on 127.0.0.1 port 0, with flood control off as the generator
//! requires. They check that the tool works and that every message was
//! delivered exactly once and in order; they assert nothing about timing.
//!
//! Every wait is bounded: the generator's own timeouts (setup, duration,
//! drain) end each run, and the server is shut down and joined at the end.

// A test fails by panicking; clippy.toml allows these in #[test] functions
// but not in the helpers of an integration test file, so say it here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use chat_bench::args::{Cli, Scenario};
use chat_bench::engine::Flavor;
use chat_bench::scenario::fanout;
use chat_bench::target::Target;
use chat_server::{Config, Server, ShutdownHandle};
use clap::Parser;
use serde_json::Value;

/// The server on a thread of this process.
struct InProcess {
    addr: SocketAddr,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
    done: mpsc::Receiver<()>,
}

impl InProcess {
    fn start() -> InProcess {
        let config = Config {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            rate: 0,
            max_per_ip: 0,
            max_clients: 20_000,
            sendq: 16 * 1024 * 1024,
            ..Config::default()
        };
        let server = Server::bind(config).expect("bind the server");
        let addr = server.local_addrs()[0];
        let handle = server.handle();
        let (tx, done) = mpsc::channel();
        let thread = thread::spawn(move || {
            server.run().expect("the server runs");
            let _ = tx.send(());
        });
        InProcess {
            addr,
            handle,
            thread: Some(thread),
            done,
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

/// Runs the chat-bench binary with `args` and returns its JSON line.
fn run_binary(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-bench"))
        .args(args)
        .output()
        .expect("run chat-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chat-bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = stdout.lines().last().expect("a JSON line");
    serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"))
}

/// A window-limited fan-out of `count` lines from each of `senders` of
/// `clients` clients, on the default two generator threads; checks that
/// every line reached every other client exactly once, in order.
#[track_caller]
fn assert_clean_fanout(clients: u32, senders: u32, count: u64) {
    let server = InProcess::start();
    let addr = server.addr.to_string();
    let (clients_arg, senders_arg, count_arg) = (clients.to_string(), senders.to_string(), count.to_string());
    let cli = Cli::try_parse_from([
        "chat-bench",
        "--addr",
        &addr,
        // The default of two generator threads, so that senders on one
        // thread reach receivers on the other: the run must not start
        // before both have armed their receivers.
        "fanout",
        "--clients",
        &clients_arg,
        "--senders",
        &senders_arg,
        "--count",
        &count_arg,
        "--duration",
        "60",
        "--drain",
        "30",
    ])
    .unwrap();
    assert_eq!(cli.target.threads, 2);
    let Scenario::Fanout(args) = &cli.scenario else { panic!("parsed as {:?}", cli.scenario) };
    let mut target = Target::attach(Flavor::ChatServer, server.addr, None).unwrap();
    let report = fanout::run(&mut target, &cli.target, &args.common, None, "fanout").unwrap();

    let lines = u64::from(senders) * count;
    assert_eq!(report.lines_sent, lines, "{report:?}");
    assert!(report.complete, "the run timed out: {report:?}");
    let i = report.integrity;
    // Each line reaches every client but its sender.
    assert_eq!(i.delivered, lines * u64::from(clients - 1), "{report:?}");
    assert_eq!(
        (i.lost, i.duplicated, i.out_of_order, i.foreign),
        (0, 0, 0, 0),
        "{report:?}"
    );
    assert_eq!(report.latency.samples, i.delivered);
    assert_eq!(report.first_error, None);
}

#[test]
fn fanout_delivers_every_message_exactly_once_in_order() {
    assert_clean_fanout(5, 2, 200);
}

#[test]
fn fanout_works_when_a_thread_holds_only_the_sender() {
    // Client 0 (the sender) is alone on thread 0 and client 1 alone on
    // thread 1: the receiver is always on another thread, and the
    // sender's thread has no reads of its own to wake it.
    assert_clean_fanout(2, 1, 1000);
}

#[test]
fn the_binary_prints_a_clean_fixed_rate_report() {
    let server = InProcess::start();
    let addr = server.addr.to_string();
    let json = run_binary(&[
        "--addr",
        &addr,
        "fixed-rate",
        "--clients",
        "4",
        "--senders",
        "1",
        "--rate",
        "1000",
        "--count",
        "50",
        "--duration",
        "60",
    ]);
    assert_eq!(json["scenario"], "fixed-rate");
    assert_eq!(json["target"], "chat-server");
    assert_eq!(json["lines_sent"], 50);
    assert_eq!(json["complete"], true);
    assert_eq!(json["integrity"]["delivered"], 50 * 3);
    for key in ["lost", "duplicated", "out_of_order", "foreign"] {
        assert_eq!(json["integrity"][key], 0, "{key}: {json}");
    }
}

#[test]
fn idle_connections_are_held_by_worker_processes() {
    let server = InProcess::start();
    let addr = server.addr.to_string();
    let json = run_binary(&[
        "--addr",
        &addr,
        "idle",
        "--clients",
        "20",
        "--workers",
        "2",
        "--timeout",
        "30",
    ]);
    assert_eq!(json["scenario"], "idle");
    assert_eq!(json["held"], 20, "{json}");
    assert_eq!(json["failed"], 0, "{json}");
    assert_eq!(json["died"], 0, "{json}");
}

#[test]
fn a_join_storm_confirms_every_join() {
    let server = InProcess::start();
    let addr = server.addr.to_string();
    let json = run_binary(&[
        "--addr",
        &addr,
        "join-storm",
        "--clients",
        "30",
        "--timeout",
        "30",
    ]);
    assert_eq!(json["connected"], 30, "{json}");
    assert_eq!(json["all_joined"], true, "{json}");
    assert_eq!(json["died"], 0, "{json}");
}

/// A stand-in for tokio's chat example (which is not part of this project
/// and cannot be built by its tests), speaking its protocol as observed by
/// hand: `Please enter your username:`, then the name line; the name is
/// announced to the others as `NAME has joined the chat`, and each line
/// goes to every other registered client as `NAME: line`. A client is
/// registered only once its name is read, as in the example. A thread per
/// client, for a handful of clients.
struct TokioLike {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Every accepted socket, to shut them all down at the end.
    all: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

/// The registered clients' sockets, by their address.
type Peers = Arc<Mutex<Vec<(SocketAddr, TcpStream)>>>;

impl TokioLike {
    fn start() -> TokioLike {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let all: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let peers: Peers = Arc::default();
        let acceptor = {
            let (stop, all) = (Arc::clone(&stop), Arc::clone(&all));
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, from)) => {
                            stream.set_nonblocking(false).unwrap();
                            all.lock().unwrap().push(stream.try_clone().unwrap());
                            let peers = Arc::clone(&peers);
                            thread::spawn(move || Self::serve(stream, from, &peers));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        TokioLike {
            addr,
            stop,
            all,
            acceptor: Some(acceptor),
        }
    }

    fn serve(mut stream: TcpStream, from: SocketAddr, peers: &Peers) {
        if stream.write_all(b"Please enter your username:\n").is_err() {
            return;
        }
        let mut lines = BufReader::new(stream.try_clone().unwrap()).lines();
        let Some(Ok(name)) = lines.next() else { return };
        let broadcast = |text: String| {
            let mut peers = peers.lock().unwrap();
            for (addr, peer) in peers.iter_mut() {
                if *addr != from {
                    let _ = peer.write_all(format!("{text}\n").as_bytes());
                }
            }
        };
        peers.lock().unwrap().push((from, stream));
        broadcast(format!("{name} has joined the chat"));
        for line in lines {
            let Ok(line) = line else { break };
            broadcast(format!("{name}: {line}"));
        }
        peers.lock().unwrap().retain(|(addr, _)| *addr != from);
        broadcast(format!("{name} has left the chat"));
    }
}

impl Drop for TokioLike {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Each client's thread ends when its socket does.
        for stream in self.all.lock().unwrap().iter() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.acceptor.take() {
            t.join().unwrap();
        }
    }
}

#[test]
fn the_tokio_chat_target_names_itself_and_reads_name_prefixed_lines() {
    let server = TokioLike::start();
    let addr = server.addr.to_string();
    let json = run_binary(&[
        "--target",
        "tokio-chat",
        "--addr",
        &addr,
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
    ]);
    assert_eq!(json["target"], "tokio-chat", "{json}");
    assert_eq!(json["lines_sent"], 2 * 200, "{json}");
    assert_eq!(json["complete"], true, "{json}");
    // Each line reaches every client but its sender.
    assert_eq!(json["integrity"]["delivered"], 2 * 200 * 4, "{json}");
    for key in ["lost", "duplicated", "out_of_order", "foreign"] {
        assert_eq!(json["integrity"][key], 0, "{key}: {json}");
    }
    // The "has joined" announcements are other lines, not deliveries.
    assert!(json["other_lines"].as_u64().unwrap() > 0, "{json}");
}

#[test]
fn idle_tokio_chat_connections_answer_the_prompt_in_worker_processes() {
    let server = TokioLike::start();
    let addr = server.addr.to_string();
    let json = run_binary(&[
        "--target",
        "tokio-chat",
        "--addr",
        &addr,
        "idle",
        "--clients",
        "12",
        "--workers",
        "2",
        "--timeout",
        "30",
    ]);
    assert_eq!(json["target"], "tokio-chat", "{json}");
    assert_eq!(json["held"], 12, "{json}");
    assert_eq!(
        (json["failed"].as_u64(), json["died"].as_u64()),
        (Some(0), Some(0)),
        "{json}"
    );
}
