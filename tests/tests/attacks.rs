//! Attacks on the server's shared resources, over loopback: what one
//! client (or a few hosts) could do within the defaults to hurt everyone
//! else, and the defence against each.
//!
//! - amplification: `/who` and `/rooms` answer a page at a time, and their
//!   size is charged to the asker's flood allowance;
//! - a client that blasts data after `/quit` is read no more than its share
//!   and closed;
//! - connection floods: idle means no complete line (a slowloris trickle
//!   is closed), new connections are throttled per address, counted per
//!   network, and on a full server the longest-silent connection makes
//!   room for a newcomer;
//! - a dead thread stops the server (an error from `run`) instead of
//!   leaving a daemon that accepts and serves no one;
//! - clients that `/quit` and hold their sockets cannot run the daemon out
//!   of descriptors;
//! - what clients can make the daemon write to its log is bounded.
//!
//! The figures of these attacks against the real daemon (latency of other
//! rooms, memory, descriptors, time to exit) come from `chat-attack` (see
//! BENCHMARKS.md); these tests check the behaviour, never a duration.
//! Nothing here sleeps: every wait is on an event with a timeout, and
//! every loop is bounded.

use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use chat_server::config::TestFault;
use chat_tests::{
    binary, clean_command, connect_from, http_get, loopback_any_port, parse_welcome, sample, Client, Config,
    Daemon, Proc, TestServer, TIMEOUT,
};
use socket2::{Domain, Protocol, Socket, Type};

/// A configuration without the limits on connections from one address, for
/// tests that open many connections from the loopback to set a scene, and
/// where no one hears of the others coming and going (rooms of more than
/// one are quiet), so each client reads only what the test is about.
fn open_config() -> Config {
    Config {
        max_per_ip: 0,
        max_per_net: 0,
        connect_rate: 0,
        quiet_above: 1,
        ..Config::default()
    }
}

/// The first line a fresh connection reads, and the end of the stream
/// after it if the server refused it.
#[track_caller]
fn first_line(stream: TcpStream) -> (String, Client) {
    let mut client = Client::from_stream(stream);
    let line = client.read_line();
    (line, client)
}

/// The names listed in a `/who` or `/rooms` answer (after the colon).
fn listed(line: &str) -> Vec<String> {
    let (_, names) = line.split_once(": ").unwrap_or((line, ""));
    names
        .split(", ")
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------
// Amplification.

/// Members of the big room: more than two pages.
const BIG_ROOM: usize = 250;

#[test]
fn who_in_a_big_room_answers_one_page_and_says_how_to_get_the_next() {
    let server = TestServer::start(open_config());
    let addr = server.addr();
    let mut alice = Client::connect_named(addr, "alice");
    let _others: Vec<Client> = (1..BIG_ROOM).map(|_| Client::connect_guest(addr)).collect();
    alice.send("/who");
    let first = alice.read_line();
    assert!(
        first.starts_with(&format!(
            "-- {BIG_ROOM} in #lobby, page 1 of 3 (/who 2 for more): "
        )),
        "{first}"
    );
    let page1 = listed(&first);
    assert_eq!(page1.len(), 100);
    let mut sorted = page1.clone();
    sorted.sort_by_key(|n| n.to_ascii_lowercase());
    assert_eq!(page1, sorted, "a page is in order");
    alice.send("/who 3");
    let last = alice.read_line();
    assert!(
        last.starts_with(&format!("-- {BIG_ROOM} in #lobby, page 3 of 3: ")),
        "{last}"
    );
    assert_eq!(listed(&last).len(), BIG_ROOM - 200);
    // A page past the end is the last page.
    alice.send("/who 99999");
    assert_eq!(alice.read_line(), last);
    // Every member is on exactly one page.
    alice.send("/who 2");
    let mut everyone = page1;
    everyone.extend(listed(&alice.read_line()));
    everyone.extend(listed(&last));
    everyone.sort();
    everyone.dedup();
    assert_eq!(everyone.len(), BIG_ROOM);
    assert!(everyone.iter().any(|n| n == "alice"));
}

#[test]
fn rooms_on_a_busy_server_answer_one_page() {
    let server = TestServer::start(open_config());
    let addr = server.addr();
    let mut alice = Client::connect_named(addr, "alice");
    let mut joiners: Vec<Client> = (0..150).map(|_| Client::connect_guest(addr)).collect();
    for (i, client) in joiners.iter_mut().enumerate() {
        client.send(&format!("/join room{i:03}"));
        client.expect_line(&format!("-- you joined #room{i:03}"));
    }
    alice.send("/rooms");
    let first = alice.read_line();
    assert!(
        first.starts_with("-- 151 rooms, page 1 of 2 (/rooms 2 for more): "),
        "{first}"
    );
    assert_eq!(listed(&first).len(), 100);
    alice.send("/rooms 2");
    let second = alice.read_line();
    assert!(second.starts_with("-- 151 rooms, page 2 of 2: "), "{second}");
    assert_eq!(listed(&second).len(), 51);
}

#[test]
fn a_big_answer_costs_the_asker_its_size_in_flood_allowance() {
    // Four lines of allowance once alice has taken her nick, and one more
    // a second. Three `/who` use three; each answer, a page of 100 nicks
    // of over a KiB, costs one more: the fourth `/who` has to wait, where
    // it would go through at once if answers were free.
    let mut server = TestServer::start(Config {
        rate: 1,
        burst: 5,
        metrics_listen: Some(loopback_any_port()),
        ..open_config()
    });
    let addr = server.addr();
    let mut alice = Client::connect_named(addr, "alice");
    let _others: Vec<Client> = (1..200).map(|_| Client::connect_guest(addr)).collect();
    let pauses = |server: &mut TestServer| {
        server.settle();
        sample(
            &http_get(server.metrics_addr(), "/metrics").body,
            "chat_flood_pauses_total",
        )
    };
    let before = pauses(&mut server);
    alice.send_raw(b"/who\n/who\n/who\n");
    for _ in 0..3 {
        assert!(alice.read_line().starts_with("-- 200 in #lobby, page 1 of 2"));
    }
    alice.send("/who");
    // Nothing is lost: it is answered, later.
    assert!(alice.read_line().starts_with("-- 200 in #lobby, page 1 of 2"));
    let after = pauses(&mut server);
    assert!(after > before, "the asker was not paused: {before} -> {after}");
}

// ---------------------------------------------------------------------------
// Data after the goodbye.

/// Most bytes the blaster tries to send after `/quit`: far more than the
/// kernel's buffers hold on both sides.
const BLAST_LIMIT: usize = 256 * 1024 * 1024;

#[test]
fn a_client_that_blasts_data_after_quit_is_read_no_further_and_closed() {
    let mut server = TestServer::start(Config {
        metrics_listen: Some(loopback_any_port()),
        ..open_config()
    });
    let addr = server.addr();
    let mut bob = Client::connect_named(addr, "bob");
    let mut alice = Client::connect_named(addr, "alice");
    server.settle();
    let received = |server: &mut TestServer| {
        server.settle();
        sample(
            &http_get(server.metrics_addr(), "/metrics").body,
            "chat_received_bytes_total",
        )
    };
    let before = received(&mut server);
    let mut blaster = TcpStream::connect(addr).expect("connect");
    blaster.set_write_timeout(Some(TIMEOUT)).expect("write timeout");
    blaster.write_all(b"/quit\n").expect("send /quit");
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < BLAST_LIMIT {
        match blaster.write(&chunk) {
            Ok(n) => sent += n,
            // Reset or broken pipe once the server closed; a timeout if it
            // stopped reading without closing. Either way it stopped.
            Err(_) => break,
        }
    }
    assert!(
        sent < BLAST_LIMIT / 4,
        "the server went on reading after the goodbye: {sent} bytes taken"
    );
    let read = received(&mut server) - before;
    assert!(
        read < 2.0 * 1024.0 * 1024.0,
        "the server read {read} bytes from a client it had said goodbye to"
    );
    // Nobody else noticed.
    alice.send("still here?");
    bob.expect_line("<alice> still here?");
}

// ---------------------------------------------------------------------------
// Connection floods.

#[test]
fn a_trickle_of_bytes_without_a_newline_does_not_keep_a_connection_alive() {
    let server = TestServer::start(Config {
        idle_timeout: Some(Duration::from_millis(600)),
        ..Config::default()
    });
    let mut trickler = Client::connect_guest(server.addr());
    let mut stream = TcpStream::connect(server.addr()).expect("connect");
    let mut reader = stream.try_clone().expect("clone");
    reader
        .set_read_timeout(Some(Duration::from_millis(150)))
        .expect("read timeout");
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    // One byte, then wait a little for the server to say anything, again
    // and again: any byte used to reset the idle timer.
    while !String::from_utf8_lossy(&got).contains("closing idle connection") {
        assert!(
            Instant::now() < deadline,
            "a trickle without newline kept the connection: {:?}",
            String::from_utf8_lossy(&got)
        );
        if stream.write_all(b"x").is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), IoErrorKind::WouldBlock | IoErrorKind::TimedOut) => {}
            Err(e) => panic!("reading: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("-- closing idle connection (nothing received for 0 s)"),
        "{text}"
    );
    // The first guest was as quiet, and went the same way.
    trickler.expect_line(&format!(
        "-- {} joined #lobby",
        parse_welcome(text.lines().next().unwrap_or_default()).unwrap_or("?")
    ));
}

#[test]
fn new_connections_from_one_address_are_throttled_and_others_still_served() {
    let server = TestServer::start(Config {
        max_per_ip: 0,
        max_per_net: 0,
        connect_rate: 1,
        connect_burst: 3,
        ..Config::default()
    });
    let addr = server.addr();
    let attacker = Ipv4Addr::new(127, 0, 0, 9);
    let mut welcomed = Vec::new();
    let mut refused = 0;
    for _ in 0..30 {
        let (line, client) = first_line(connect_from(addr, attacker));
        if parse_welcome(&line).is_some() {
            welcomed.push(client);
        } else {
            assert_eq!(
                line,
                "!! too many new connections from your address; try again in a few seconds"
            );
            let mut client = client;
            client.expect_eof();
            refused += 1;
        }
    }
    assert!(welcomed.len() >= 3, "the burst is let in: {}", welcomed.len());
    assert!(refused > 0, "thirty connections at once went through");
    // Another network is not held back by it.
    let (line, _other) = first_line(connect_from(addr, Ipv4Addr::new(127, 0, 1, 9)));
    assert!(parse_welcome(&line).is_some(), "{line}");
}

#[test]
fn connections_are_counted_per_network_as_well_as_per_address() {
    let server = TestServer::start(Config {
        max_per_ip: 0,
        max_per_net: 5,
        connect_rate: 0,
        ..Config::default()
    });
    let addr = server.addr();
    let mut outcomes = Vec::new();
    let mut kept = Vec::new();
    for last in 2..10 {
        let (line, client) = first_line(connect_from(addr, Ipv4Addr::new(127, 0, 0, last)));
        outcomes.push(parse_welcome(&line).is_some());
        if parse_welcome(&line).is_none() {
            assert_eq!(line, "!! too many connections from your network");
        }
        kept.push(client);
    }
    assert_eq!(outcomes, [true, true, true, true, true, false, false, false]);
    let (line, _other) = first_line(connect_from(addr, Ipv4Addr::new(127, 0, 1, 2)));
    assert!(parse_welcome(&line).is_some(), "another /24: {line}");
}

#[test]
fn on_a_full_server_the_longest_silent_connection_makes_room_for_a_newcomer() {
    let server = TestServer::start(Config {
        max_clients: 3,
        silent_grace: Duration::ZERO,
        quiet_above: 0,
        threads: 3,
        ..open_config()
    });
    let addr = server.addr();
    // Three threads: the longest-silent connection is found across them.
    let mut silent = Client::connect_guest(addr);
    let mut quiet = Client::connect_guest(addr);
    let mut talker = Client::connect_named(addr, "talker");
    silent.expect_line(&format!("-- {} joined #lobby", quiet.nick()));
    silent.expect_line("-- guest3 joined #lobby");
    silent.expect_line("-- guest3 is now known as talker");
    quiet.expect_line("-- guest3 joined #lobby");
    quiet.expect_line("-- guest3 is now known as talker");

    let mut newcomer = Client::connect_guest(addr);
    silent.expect_line("-- closing this connection: the server is full and you have not said anything");
    silent.expect_eof();
    let silent_nick = silent.nick().to_string();
    talker.expect_line(&format!("-- {silent_nick} left #lobby (server full)"));
    talker.expect_line(&format!("-- {} joined #lobby", newcomer.nick()));
    quiet.expect_line(&format!("-- {silent_nick} left #lobby (server full)"));
    quiet.expect_line(&format!("-- {} joined #lobby", newcomer.nick()));

    // Once everyone has said something, a newcomer is refused.
    quiet.send("I am here");
    talker.expect_line(&format!("<{}> I am here", quiet.nick()));
    newcomer.send("so am I");
    talker.expect_line(&format!("<{}> so am I", newcomer.nick()));
    let (line, mut refused) = first_line(TcpStream::connect(addr).expect("connect"));
    assert_eq!(line, "!! server full");
    refused.expect_eof();
}

// ---------------------------------------------------------------------------
// A dead thread.

#[test]
fn a_panicking_io_thread_stops_the_server_with_an_error() {
    let server = TestServer::start(Config {
        threads: 1,
        test_fault: Some(TestFault::Io("boom".into())),
        ..Config::default()
    });
    let addr = server.addr();
    let mut alice = Client::connect_named(addr, "alice");
    let mut bob = Client::connect_named(addr, "bob");
    alice.expect_line("-- guest2 joined #lobby");
    alice.expect_line("-- guest2 is now known as bob");
    bob.send("boom");
    // The only I/O thread is gone: everyone's connection closes, and the
    // server's run ends in an error instead of accepting into the void.
    alice.expect_closed();
    let result = server.wait_stopped();
    let error = result.expect_err("run() must fail");
    assert!(error.to_string().contains("panicked"), "{error}");
}

#[test]
fn a_panicking_hub_stops_the_server_with_an_error() {
    let server = TestServer::start(Config {
        test_fault: Some(TestFault::Hub("boom".into())),
        ..Config::default()
    });
    let addr = server.addr();
    let mut alice = Client::connect_named(addr, "alice");
    alice.send("boom");
    alice.expect_closed();
    let error = server.wait_stopped().expect_err("run() must fail");
    assert!(error.to_string().contains("panicked"), "{error}");
}

#[test]
fn an_option_value_that_would_overflow_a_deadline_is_a_usage_error() {
    for args in [
        ["--idle-timeout", "1e19"],
        ["--shutdown-grace", "1e300"],
        ["--max-line", "99999999999999999999"],
    ] {
        let mut command = clean_command(binary("chat-server"));
        command.args(["--listen", "127.0.0.1:0"]).args(args);
        let mut daemon = Proc::spawn("chat-server", command, "cargo build -p chat-server");
        // A daemon that took the value would run (and, on the first
        // connection, panic in its I/O threads): this waits a bounded time.
        daemon.expect_exit_code(2);
        let stderr = daemon.stderr_lines().join("\n");
        assert!(stderr.contains(args[0]), "{args:?}: {stderr}");
    }
}

// ---------------------------------------------------------------------------
// Descriptors.

/// The descriptor limit the daemon is started under: room for 20 clients
/// and a few dozen closing sockets.
const SMALL_LIMIT: u32 = 128;

/// Clients that `/quit` and then hold their sockets, never reading.
const HOLDERS: usize = 300;

#[test]
fn clients_that_quit_and_hold_their_sockets_cannot_run_the_daemon_out_of_descriptors() {
    let mut command = Command::new("prlimit");
    command
        .env_clear()
        .arg(format!("--nofile={SMALL_LIMIT}:{SMALL_LIMIT}"))
        .arg("--")
        .arg(binary("chat-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--quiet-above",
            "1",
            "--max-clients",
            "20",
            "--max-per-ip",
            "0",
            "--max-per-net",
            "0",
            "--connect-rate",
            "0",
        ]);
    let mut daemon = Daemon::start_with(command, 1);
    let addr = daemon.addr();
    let mut holders = Vec::new();
    for i in 0..HOLDERS {
        let source = Ipv4Addr::new(127, 1, (i / 200) as u8, (i % 200 + 1) as u8);
        let (line, mut holder) = first_line(connect_from(addr, source));
        assert!(
            parse_welcome(&line).is_some(),
            "holder {i} was not let in: {line}"
        );
        holder.send("/quit");
        holders.push(holder);
        // Its place is free once it has left the chat.
        daemon.proc.expect_stderr_containing(&["(quit)"]);
    }
    // A newcomer is still served: the daemon closed the oldest sockets it
    // had said goodbye to rather than run out of descriptors.
    let mut newcomer = Client::connect_named(addr, "newcomer");
    newcomer.send("/who");
    newcomer.expect_line("-- 1 in #lobby: newcomer");
    drop(holders);
    daemon.proc.signal("TERM");
    daemon.proc.expect_exit_code(0);
    let log = daemon.proc.stderr_lines().join("\n");
    assert!(!log.contains("cannot accept connections"), "{log}");
    assert!(log.contains("closing the oldest without waiting"), "{log}");
}

// ---------------------------------------------------------------------------
// The log.

#[test]
fn what_clients_make_the_daemon_log_is_bounded() {
    let mut daemon = Daemon::start(&["--max-per-ip", "1", "--connect-rate", "0"]);
    let addr = daemon.addr();
    let mut alice = daemon.connect_named("alice");
    // A quit reason of 4,000 characters.
    alice.send(&format!("/quit {}", "r".repeat(4000)));
    alice.expect_line("-- bye");
    alice.expect_eof();
    // A hundred refused connections (one at a time is allowed).
    let _holder = daemon.connect_named("holder");
    for _ in 0..100 {
        let (line, _) = first_line(TcpStream::connect(addr).expect("connect"));
        assert_eq!(line, "!! too many connections from your address");
    }
    daemon.proc.signal("TERM");
    daemon.proc.expect_exit_code(0);
    let log = daemon.proc.stderr_lines();
    let longest = log.iter().map(String::len).max().unwrap_or(0);
    assert!(longest < 400, "a log line of {longest} bytes: {log:?}");
    let refusals = log.iter().filter(|l| l.contains("refused")).count();
    assert!(
        (1..=2).contains(&refusals),
        "{refusals} lines for 100 refusals: {log:?}"
    );
    assert!(
        log.iter().any(|l| l.contains("alice") && l.contains("rrrr…")),
        "the quit is logged, clipped: {log:?}"
    );
}

/// Clients that stop reading in the slow-consumer log case.
const STUCK: usize = 10;

#[test]
fn slow_consumers_cost_one_line_each_in_the_log_not_one_per_message() {
    let mut daemon = Daemon::start(&[
        "--sendq",
        "4096",
        "--rate",
        "0",
        "--max-per-ip",
        "0",
        "--max-per-net",
        "0",
        "--connect-rate",
        "0",
        "--quiet-above",
        "0",
    ]);
    let addr = daemon.addr();
    let mut watcher = daemon.connect_named("watcher");
    watcher.send("/join flood");
    watcher.expect_line("-- you joined #flood");
    let mut stuck = Vec::new();
    for _ in 0..STUCK {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("a socket");
        socket.set_recv_buffer_size(4096).expect("a small receive buffer");
        socket.connect_timeout(&addr.into(), TIMEOUT).expect("connect");
        let mut stream: TcpStream = socket.into();
        stream.write_all(b"/join flood\n").expect("join");
        stuck.push(stream);
        let joined = watcher.read_line();
        assert!(joined.ends_with(" joined #flood"), "{joined}");
    }
    let mut sender = daemon.connect_named("sender");
    sender.send("/join flood");
    sender.expect_line("-- you joined #flood");
    watcher.expect_line("-- sender joined #flood");
    let text = "y".repeat(1000);
    let mut dropped = 0;
    for i in 0..20_000 {
        sender.send(&format!("{i} {text}"));
        loop {
            let line = watcher.read_line();
            if line.ends_with("(slow consumer)") {
                dropped += 1;
            } else {
                assert_eq!(line, format!("<sender> {i} {text}"));
                break;
            }
        }
        if dropped == STUCK {
            break;
        }
    }
    assert_eq!(dropped, STUCK, "every client that stopped reading was dropped");
    daemon.proc.signal("TERM");
    daemon.proc.expect_exit_code(0);
    let log = daemon.proc.stderr_lines();
    let disconnects = log
        .iter()
        .filter(|l| l.contains("disconnect") && l.contains("(slow consumer)"))
        .count();
    let warnings = log.iter().filter(|l| l.contains("slow consumer:")).count();
    assert_eq!(disconnects, STUCK, "one disconnect line each: {log:?}");
    assert!((1..=STUCK).contains(&warnings), "{warnings} warnings: {log:?}");
}

/// Connections flooding the lobby while SIGTERM comes.
const FLOODERS: usize = 8;

/// Most each flooder sends.
const FLOOD_BYTES: usize = 64 * 1024 * 1024;

#[test]
fn sigterm_during_a_flood_reaches_every_talker_after_all_their_lines_and_the_daemon_exits() {
    let mut daemon = Daemon::start(&[
        "--rate",
        "0",
        "--max-per-ip",
        "0",
        "--max-per-net",
        "0",
        "--connect-rate",
        "0",
        "--quiet-above",
        "1",
        // The flooders do not read: their last output is given a second.
        "--shutdown-grace",
        "1",
    ]);
    let addr = daemon.addr();
    let mut alice = daemon.connect_named("alice");
    let mut bob = daemon.connect_named("bob");
    for client in [&mut alice, &mut bob] {
        client.send("/join calm");
        client.expect_line("-- you joined #calm");
    }
    let flooders: Vec<std::thread::JoinHandle<usize>> = (0..FLOODERS)
        .map(|n| {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream.set_write_timeout(Some(TIMEOUT)).expect("write timeout");
            std::thread::spawn(move || {
                let chunk: Vec<u8> = format!("flood {n} {}\n", "z".repeat(100))
                    .repeat(600)
                    .into_bytes();
                let mut sent = 0;
                while sent < FLOOD_BYTES {
                    match stream.write(&chunk) {
                        Ok(n) => sent += n,
                        Err(_) => break,
                    }
                }
                sent
            })
        })
        .collect();
    for i in 0..50 {
        alice.send(&format!("a{i}"));
        bob.send(&format!("b{i}"));
        bob.expect_line(&format!("<alice> a{i}"));
        alice.expect_line(&format!("<bob> b{i}"));
    }
    alice.send("last from alice");
    bob.send("last from bob");
    daemon.proc.signal("TERM");
    // Everything said before the signal arrives, then the notice, then a
    // clean close: the flood in front of the hub does not push the goodbye
    // past the grace period.
    bob.expect_line("<alice> last from alice");
    alice.expect_line("<bob> last from bob");
    for client in [&mut alice, &mut bob] {
        client.expect_line("-- server shutting down");
        client.expect_eof();
    }
    daemon.proc.expect_exit_code(0);
    for flooder in flooders {
        let sent = flooder.join().expect("a flooder");
        assert!(sent > 0);
    }
}
