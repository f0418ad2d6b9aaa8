//! chat-bench's IRC mode (issue 16) against the real chat-server library,
//! in this process, with an IRC listener beside its line one (127.0.0.1
//! port 0): every line of an IRC fan-out arrives once and in order, so does
//! every line in a room mixing IRC and line clients, idle IRC clients
//! register and a join storm over IRC joins them all. A small IRC server
//! of the test's own (it relays `PRIVMSG`s and nothing else) shows that the
//! server's `PING`s are answered during the handshake and during the run,
//! and that a registration it refuses stops the run with its words. Nothing
//! about timing is asserted.
//!
//! Every wait is bounded: the generator's own timeouts end each run, the
//! test server's sockets have read timeouts and a deadline, and the
//! chat-server is shut down and joined at the end.

// A test fails by panicking; clippy.toml allows these in #[test] functions
// but not in the helpers of an integration test file, so say it here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chat_bench::args::{Cli, Protocol, Scenario};
use chat_bench::engine::Flavor;
use chat_bench::scenario::fanout;
use chat_bench::target::Target;
use chat_server::net::acceptor::ListenerKind;
use chat_server::Config;
use clap::Parser;

use common::{assert_every_line_once, bench_config, json_of, run_binary, InProcess};

/// chat-server with a line and an IRC listener and the benchmark's
/// settings.
fn irc_server() -> InProcess {
    InProcess::start(Config {
        irc_listen: vec!["127.0.0.1:0".parse().unwrap()],
        server_name: "bench".to_string(),
        ..bench_config()
    })
}

#[test]
fn an_irc_fanout_delivers_every_line_exactly_once_in_order() {
    let server = irc_server();
    let cli = Cli::try_parse_from([
        "chat-bench",
        "--protocol",
        "irc",
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
    let mut target = Target::attach(Flavor::ChatServer, server.addr(ListenerKind::IRC), None)
        .unwrap()
        .with_protocol(Protocol::Irc, Some(server.addr(ListenerKind::IRC)));
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
    assert_eq!(report.header.protocol, "irc");
    assert_eq!(report.first_error, None);
}

#[test]
fn a_room_of_irc_and_line_clients_gets_every_line_from_both() {
    let server = irc_server();
    let (line, irc) = (
        server.line.to_string(),
        server.addr(ListenerKind::IRC).to_string(),
    );
    // Clients 0, 2, 4 speak IRC, 1, 3, 5 the line protocol; senders 0 and
    // 1 are one of each, so lines cross both ways.
    let json = json_of(&[
        "--addr",
        &line,
        "--irc-addr",
        &irc,
        "--protocol",
        "mixed",
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
    assert_eq!(json["protocol"], "mixed");
    assert_every_line_once(&json, 2 * 150 * 5);
}

#[test]
fn idle_irc_clients_register_and_a_join_storm_over_irc_joins_them_all() {
    let server = irc_server();
    let irc = server.addr(ListenerKind::IRC).to_string();
    let json = json_of(&["--addr", &irc, "--protocol", "irc", "idle", "--clients", "20"]);
    assert_eq!(json["protocol"], "irc");
    assert_eq!(
        (json["held"].as_u64(), json["failed"].as_u64()),
        (Some(20), Some(0)),
        "{json}"
    );

    let json = json_of(&[
        "--addr",
        &irc,
        "--protocol",
        "irc",
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

/// What the test's IRC server does with a registration.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Greeting {
    /// Welcomes it (001, 422) and sends a `PING :reg-<nick>` at once.
    Welcome,
    /// Answers 433, nick in use.
    Refuse,
}

/// A line from one of the test server's clients, or its end.
enum Heard {
    Line(usize, String),
    Gone,
}

/// The smallest IRC server a fan-out of one sender and one receiver needs:
/// registration, `JOIN` (366), and each `PRIVMSG` relayed to the other
/// client with a source; after the 10th it sends the receiver `PING
/// :mid-run`. Returns its address and a handle giving every line it was
/// sent, once both clients are gone or a minute has passed.
fn fake_irc_server(greeting: Greeting) -> (SocketAddr, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let (tx, rx) = mpsc::channel();
        let mut writers: Vec<TcpStream> = Vec::new();
        let mut nicks: Vec<String> = Vec::new();
        let mut heard = Vec::new();
        let mut relayed = 0;
        listener.set_nonblocking(true).unwrap();
        let mut gone = 0;
        // Each turn handles a connection or a line, or waits 50 ms; it ends
        // when both clients are gone, or at the deadline.
        while Instant::now() < deadline && (writers.len() < 2 || gone < writers.len()) {
            if writers.len() < 2 {
                if let Ok((stream, _)) = listener.accept() {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                    let index = writers.len();
                    let reader = BufReader::new(stream.try_clone().unwrap());
                    let tx = tx.clone();
                    thread::spawn(move || {
                        for line in reader.lines().map_while(Result::ok) {
                            let _ = tx.send(Heard::Line(index, line));
                        }
                        let _ = tx.send(Heard::Gone);
                    });
                    writers.push(stream);
                    nicks.push(String::new());
                }
            }
            let Ok(event) = rx.recv_timeout(Duration::from_millis(50)) else {
                continue;
            };
            let Heard::Line(from, line) = event else {
                gone += 1;
                continue;
            };
            let line = line.trim_end_matches('\r').to_string();
            heard.push(line.clone());
            let mut words = line.splitn(3, ' ');
            let reply = match (words.next(), words.next()) {
                (Some("NICK"), Some(nick)) => {
                    nicks[from] = nick.to_string();
                    None
                }
                (Some("USER"), _) if greeting == Greeting::Refuse => Some((
                    from,
                    format!(":fake 433 * {} :Nickname is already in use\r\n", nicks[from]),
                )),
                (Some("USER"), _) => {
                    let nick = &nicks[from];
                    Some((
                        from,
                        format!(
                            ":fake 001 {nick} :Welcome\r\n:fake 422 {nick} :No MOTD\r\nPING :reg-{nick}\r\n"
                        ),
                    ))
                }
                (Some("JOIN"), Some(room)) => {
                    Some((from, format!(":fake 366 {} {room} :End\r\n", nicks[from])))
                }
                (Some("PRIVMSG"), Some(_)) => {
                    relayed += 1;
                    let to = 1 - from.min(1);
                    let mut out = format!(":{0}!{0}@fake {line}\r\n", nicks[from]);
                    if relayed == 10 {
                        out.push_str("PING :mid-run\r\n");
                    }
                    Some((to, out))
                }
                _ => None,
            };
            if let Some((to, text)) = reply {
                if let Some(w) = writers.get_mut(to) {
                    let _ = w.write_all(text.as_bytes());
                }
            }
        }
        heard
    });
    (addr, handle)
}

#[test]
fn the_servers_pings_are_answered_during_the_handshake_and_the_run() {
    let (addr, server) = fake_irc_server(Greeting::Welcome);
    let addr = addr.to_string();
    let json = json_of(&[
        "--addr",
        &addr,
        "--protocol",
        "irc",
        "--sources",
        "0",
        "fanout",
        "--clients",
        "2",
        "--senders",
        "1",
        "--count",
        "50",
        "--duration",
        "30",
        "--drain",
        "10",
    ]);
    assert_every_line_once(&json, 50);
    let heard = server.join().unwrap();
    for pong in ["PONG :reg-b0", "PONG :reg-b1", "PONG :mid-run"] {
        assert!(heard.iter().any(|l| l == pong), "no {pong:?} in {heard:?}");
    }
    assert!(heard.iter().any(|l| l == "USER b1 0 * :b1"), "{heard:?}");
    assert!(heard.iter().any(|l| l.starts_with("JOIN #bench")), "{heard:?}");
    assert_eq!(
        heard.iter().filter(|l| l.starts_with("PRIVMSG #bench")).count(),
        50
    );
}

#[test]
fn a_registration_the_server_refuses_stops_the_run_with_its_words() {
    let (addr, server) = fake_irc_server(Greeting::Refuse);
    let addr = addr.to_string();
    let (ok, _, said) = run_binary(&[
        "--addr",
        &addr,
        "--protocol",
        "irc",
        "--setup-timeout",
        "20",
        "fanout",
        "--clients",
        "2",
        "--senders",
        "1",
        "--count",
        "10",
    ]);
    assert!(!ok, "{said}");
    assert!(said.contains("only 0 of 2 clients connected"), "{said}");
    assert!(said.contains("the IRC server refused: :fake 433 * b"), "{said}");
    server.join().unwrap();
}
