//! The Prometheus metrics endpoint (`--metrics-listen`), scraped over
//! loopback after real chat traffic.
//!
//! The counters are bumped by the event loop before it writes what it
//! counts, so once a client has read a line, the scrape that follows sees
//! it counted: the tests synchronise on what the clients read, never on
//! time. Values are compared as differences between two scrapes where
//! earlier traffic (welcomes, joins) would otherwise get in the way.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};

use chat_tests::{http_exchange, http_get, loopback_any_port, sample, Config, Daemon, TestServer, TIMEOUT};
use socket2::{Domain, Protocol, Socket, Type};

/// A test server with the metrics endpoint on a loopback port.
fn server_with_metrics(config: Config) -> TestServer {
    TestServer::start(Config {
        metrics_listen: Some(loopback_any_port()),
        ..config
    })
}

/// The test server's exposition, once every event loop has finished the
/// turn that wrote what the clients have read (see [`TestServer::settle`]).
#[track_caller]
fn settled_scrape(server: &mut TestServer) -> String {
    server.settle();
    scrape(server.metrics_addr())
}

/// The exposition as served to a plain `GET /metrics`.
#[track_caller]
fn scrape(addr: SocketAddr) -> String {
    let response = http_get(addr, "/metrics");
    assert_eq!(response.status, 200, "{response:?}");
    response.body
}

/// Lines alice says in the traffic test.
const LINES: usize = 7;

#[test]
fn a_scrape_after_a_chat_counts_clients_lines_and_deliveries() {
    let mut server = server_with_metrics(Config::default());
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]);

    let before = settled_scrape(&mut server);
    assert_eq!(sample(&before, "chat_clients"), 3.0);
    assert_eq!(sample(&before, "chat_connections_accepted_total"), 3.0);
    assert_eq!(sample(&before, "chat_rooms"), 1.0, "the lobby");
    for i in 0..LINES {
        alice.send(&format!("hello {i}"));
    }
    for i in 0..LINES {
        bob.expect_line(&format!("<alice> hello {i}"));
        carol.expect_line(&format!("<alice> hello {i}"));
    }
    let after = settled_scrape(&mut server);
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(delta("chat_lines_received_total"), LINES as f64);
    // Every line reaches the two others in the room.
    assert_eq!(delta("chat_messages_delivered_total"), (LINES * 2) as f64);
    assert!(delta("chat_received_bytes_total") >= (LINES * "hello 0\n".len()) as f64);
    assert!(delta("chat_sent_bytes_total") >= (LINES * 2 * "<alice> hello 0\n".len()) as f64);
    assert_eq!(sample(&after, "chat_clients"), 3.0);
    // Each line's fan-out was timed.
    assert!(
        delta("chat_fanout_latency_seconds_count") >= LINES as f64,
        "{after}"
    );
    assert_eq!(
        sample(&after, "chat_fanout_latency_seconds_bucket{le=\"+Inf\"}"),
        sample(&after, "chat_fanout_latency_seconds_count")
    );

    // Errors by kind, a second room, and a quit with its reason.
    alice.send("/bogus");
    alice.expect_line("!! unknown command /bogus; type /help for the list");
    alice.send("/msg nobody hi");
    alice.expect_line("!! no such nick: nobody");
    carol.send("/join #side");
    carol.expect_line("-- you joined #side");
    alice.expect_line("-- carol left #lobby (moved to #side)");
    bob.expect_line("-- carol left #lobby (moved to #side)");
    let errors = settled_scrape(&mut server);
    assert_eq!(
        sample(&errors, "chat_errors_sent_total{kind=\"unknown_command\"}"),
        1.0
    );
    assert_eq!(
        sample(&errors, "chat_errors_sent_total{kind=\"no_such_nick\"}"),
        1.0
    );
    assert_eq!(sample(&errors, "chat_errors_sent_total{kind=\"too_long\"}"), 0.0);
    assert_eq!(sample(&errors, "chat_rooms"), 2.0);

    bob.send("/quit");
    bob.expect_line("-- bye");
    bob.expect_eof();
    drop(bob);
    // Bob's end of stream reached the server's socket before alice's
    // line did (loopback delivers in the sender's system call), so the
    // loop turn that reads her line has closed his socket by the time her
    // reply is written: once she reads it, his close is counted.
    alice.expect_line("-- bob left #lobby (quit)");
    alice.send("/who");
    alice.expect_line("-- 1 in #lobby: alice");
    let end = settled_scrape(&mut server);
    assert_eq!(
        sample(&end, "chat_connections_closed_total{reason=\"quit\"}"),
        1.0
    );
    assert_eq!(sample(&end, "chat_clients"), 2.0);
    assert_eq!(
        sample(&end, "chat_connections_closed_total{reason=\"slow_consumer\"}"),
        0.0
    );
    // Process metrics are there and plausible.
    assert!(sample(&end, "process_resident_memory_bytes") > 0.0);
    assert!(sample(&end, "process_open_fds") > 0.0);
    assert!(sample(&end, "process_start_time_seconds") > 1e9);
}

/// The outbound queue limit of the slow-consumer test: small, so the
/// queue of a client that does not read overflows after little traffic.
const SMALL_SENDQ: usize = 64 * 1024;

/// Most 1 KiB lines alice sends before the slow reader must have been
/// dropped: far more than its queue and the kernel's buffers hold.
const MAX_BULK: usize = 20_000;

/// A client socket with a tiny receive buffer that never reads.
fn non_reader(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .unwrap_or_else(|e| panic!("cannot create a socket: {e}"));
    socket
        .set_recv_buffer_size(4096)
        .unwrap_or_else(|e| panic!("cannot set SO_RCVBUF: {e}"));
    socket
        .connect_timeout(&addr.into(), TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    socket.into()
}

#[test]
fn a_slow_consumer_is_counted_with_its_reason() {
    let mut server = server_with_metrics(Config {
        sendq: SMALL_SENDQ,
        rate: 0,
        ..Config::default()
    });
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    let _slow = non_reader(server.addr());
    let joined = alice.read_line();
    let Some(slow) = joined
        .strip_prefix("-- ")
        .and_then(|rest| rest.strip_suffix(" joined #lobby"))
        .map(str::to_string)
    else {
        panic!("alice expected the non-reader's join, got {joined:?}");
    };
    bob.expect_line(&joined);
    let dropped = format!("-- {slow} left #lobby (slow consumer)");

    // alice says 1 KiB lines, one at a time, each read by bob, until bob
    // hears that the non-reader was dropped.
    let line = "x".repeat(1000);
    let mut heard_drop = false;
    for _ in 0..MAX_BULK {
        alice.send(&line);
        let heard = bob.read_line();
        if heard == dropped {
            heard_drop = true;
            bob.expect_line(&format!("<alice> {line}"));
            break;
        }
        assert_eq!(heard, format!("<alice> {line}"));
    }
    assert!(heard_drop, "{slow} was never dropped");
    alice.expect_line(&dropped);

    let text = settled_scrape(&mut server);
    assert_eq!(
        sample(&text, "chat_connections_closed_total{reason=\"slow_consumer\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "chat_connections_closed_total{reason=\"quit\"}"),
        0.0
    );
    assert_eq!(sample(&text, "chat_clients"), 2.0);
    assert_eq!(sample(&text, "chat_connections_accepted_total"), 3.0);
    // Nothing is queued to alice and bob, who read everything.
    assert_eq!(sample(&text, "chat_outbound_queued_bytes"), 0.0);
}

#[test]
fn refusals_are_counted_by_reason() {
    let mut server = server_with_metrics(Config {
        max_clients: 1,
        ..Config::default()
    });
    let _alice = server.connect_named("alice");
    let mut refused = chat_tests::Client::connect(server.addr());
    refused.expect_line("!! server full");
    refused.expect_eof();
    let text = settled_scrape(&mut server);
    assert_eq!(
        sample(&text, "chat_connections_closed_total{reason=\"refused_full\"}"),
        1.0
    );
    assert_eq!(sample(&text, "chat_errors_sent_total{kind=\"server_full\"}"), 1.0);
    assert_eq!(sample(&text, "chat_connections_accepted_total"), 2.0);
    assert_eq!(sample(&text, "chat_clients"), 1.0);
}

#[test]
fn anything_but_get_metrics_is_not_found_and_bad_http_does_not_hurt_the_chat() {
    let mut server = server_with_metrics(Config::default());
    let metrics = server.metrics_addr();
    for path in ["/", "/metric", "/metrics/x", "/favicon.ico"] {
        assert_eq!(http_get(metrics, path).status, 404, "GET {path}");
    }
    let post = http_exchange(metrics, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(post.status, 404);
    assert_eq!(http_get(metrics, "/metrics?x=1").status, 200);

    // A scraper that connects and says nothing, and one that sends
    // garbage: the chat and the endpoint go on.
    let silent = TcpStream::connect(metrics).unwrap_or_else(|e| panic!("connect: {e}"));
    let mut garbage = TcpStream::connect(metrics).unwrap_or_else(|e| panic!("connect: {e}"));
    garbage
        .write_all(b"\x00\xffnot http at all\r\n\r\n")
        .unwrap_or_else(|e| panic!("write: {e}"));
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    alice.send("still here");
    bob.expect_line("<alice> still here");
    let text = settled_scrape(&mut server);
    assert_eq!(sample(&text, "chat_clients"), 2.0);
    drop((silent, garbage));
}

#[test]
fn prometheus_gets_openmetrics_and_others_the_classic_format() {
    let server = server_with_metrics(Config::default());
    let metrics = server.metrics_addr();
    let classic = http_get(metrics, "/metrics");
    assert_eq!(
        classic.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(classic
        .body
        .contains("# TYPE chat_lines_received_total counter\n"));
    assert!(!classic.body.contains("# EOF"));
    // What Prometheus sends.
    let openmetrics = http_exchange(
        metrics,
        "GET /metrics HTTP/1.0\r\nAccept: application/openmetrics-text;version=1.0.0,\
         application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5\r\n\r\n",
    );
    assert_eq!(
        openmetrics.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(openmetrics.body.contains("# TYPE chat_lines_received counter\n"));
    assert!(openmetrics.body.ends_with("# EOF\n"), "{}", openmetrics.body);
}

/// Runs `promtool check metrics` on `exposition`; returns its output.
fn promtool_check(exposition: &str) -> (bool, String) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            panic!("cannot run promtool: {e}; install it (Debian package `prometheus`; ./scripts/test does)")
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(exposition.as_bytes())
            .unwrap_or_else(|e| panic!("cannot write to promtool: {e}"));
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("promtool: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn promtool_accepts_the_exposition_after_traffic() {
    let mut server = server_with_metrics(Config::default());
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    alice.send("hi");
    bob.expect_line("<alice> hi");
    bob.send("/nosuch");
    bob.expect_line("!! unknown command /nosuch; type /help for the list");
    let text = settled_scrape(&mut server);
    let (ok, output) = promtool_check(&text);
    assert!(
        ok && output.trim().is_empty(),
        "promtool check metrics:\n{output}\n{text}"
    );
    // A broken exposition is caught, so the check above means something.
    let (ok, _) = promtool_check("# TYPE x counter\nx_total{ 1\n");
    assert!(!ok, "promtool accepted garbage");
}

#[test]
fn the_daemon_serves_metrics_and_logs_stats_when_asked() {
    let mut daemon = Daemon::start(&["--metrics-listen", "127.0.0.1:0", "--stats-interval", "0.1"]);
    let line = daemon
        .proc
        .expect_stderr_containing(&["serving metrics on http://"]);
    let Some(addr) = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .and_then(|addr| addr.parse::<SocketAddr>().ok())
    else {
        panic!("no metrics address in {line:?}");
    };
    let mut alice = daemon.connect_named("alice");
    alice.send("/who");
    alice.expect_line("-- 1 in #lobby: alice");
    let text = scrape(addr);
    assert_eq!(sample(&text, "chat_clients"), 1.0);
    assert_eq!(sample(&text, "chat_lines_received_total"), 2.0, "/nick and /who");
    let stats = daemon
        .proc
        .expect_stderr_containing(&["stats: ", "lines received"]);
    assert!(stats.contains(" clients, "), "{stats}");
}

#[test]
fn without_the_option_there_is_no_endpoint() {
    let mut daemon = Daemon::start(&["--stats-interval", "0"]);
    let mut alice = daemon.connect_named("alice");
    alice.send("/who");
    alice.expect_line("-- 1 in #lobby: alice");
    daemon.proc.signal("TERM");
    alice.expect_line("-- server shutting down");
    alice.expect_eof();
    drop(alice);
    daemon.proc.expect_exit_code(0);
    assert!(
        !daemon
            .proc
            .stderr_lines()
            .iter()
            .any(|l| l.contains("metrics") || l.contains("stats: ")),
        "{:#?}",
        daemon.proc.stderr_lines()
    );
}
