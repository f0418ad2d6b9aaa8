//! The Prometheus metrics endpoint (`--metrics-listen`), scraped over
//! loopback after real chat traffic.
//!
//! The counters are bumped by the event loop before it writes what it
//! counts, so once a client has read a line, the scrape that follows sees
//! it counted: the tests synchronise on what the clients read, never on
//! time. Values are compared as differences between two scrapes where
//! earlier traffic (welcomes, joins) would otherwise get in the way.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Instant;

use chat_server::ops::metrics::endpoint::REQUEST_TIMEOUT;
use chat_server::ops::metrics::http::MAX_HEAD;
use chat_server::ops::metrics::MAX_CONNECTIONS;
use chat_tests::{
    http_exchange, http_get, loopback_any_port, sample, Client, Config, Daemon, TestServer, TIMEOUT,
};
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

/// Where a daemon started with `--metrics-listen` serves metrics, from its
/// log line `serving metrics on http://ADDR/metrics`.
#[track_caller]
fn logged_metrics_addr(daemon: &mut Daemon) -> SocketAddr {
    let line = daemon
        .proc
        .expect_stderr_containing(&["serving metrics on http://"]);
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .and_then(|addr| addr.parse::<SocketAddr>().ok());
    match addr {
        Some(addr) => addr,
        None => panic!("no metrics address in {line:?}"),
    }
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
    let mut refused = Client::connect(server.addr());
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
fn other_paths_are_not_found_other_methods_not_allowed_and_bad_http_does_not_hurt_the_chat() {
    let mut server = server_with_metrics(Config::default());
    let metrics = server.metrics_addr();
    for path in ["/", "/metric", "/metrics/x", "/favicon.ico"] {
        assert_eq!(http_get(metrics, path).status, 404, "GET {path}");
    }
    let post = http_exchange(metrics, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
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
    let addr = logged_metrics_addr(&mut daemon);
    let mut alice = daemon.connect_named("alice");
    alice.send("/who");
    alice.expect_line("-- 1 in #lobby: alice");
    let text = scrape(addr);
    assert_eq!(sample(&text, "chat_clients"), 1.0);
    assert_eq!(sample(&text, "chat_lines_received_total"), 2.0, "/nick and /who");
    let stats = daemon
        .proc
        .expect_stderr_containing(&["stats: ", "lines received"]);
    // "0 clients" or "1 client", whichever the line was written at.
    assert!(stats.contains(" client"), "{stats}");
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

// ---------------------------------------------------------------------------
// The endpoint under attack (issue #12): whatever a client of the metrics
// port does, the daemon lives, the chat goes on, and the next scrape works.

/// The figure `dir` of `/proc/PID`: entries of `fd` are open descriptors,
/// entries of `task` threads.
#[track_caller]
fn proc_entries(pid: u32, dir: &str) -> usize {
    match std::fs::read_dir(format!("/proc/{pid}/{dir}")) {
        Ok(entries) => entries.count(),
        Err(e) => panic!("cannot read /proc/{pid}/{dir}: {e}"),
    }
}

/// The resident memory of process `pid`, in bytes (`VmRSS`).
#[track_caller]
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok());
    match kib {
        Some(kib) => kib * 1024,
        None => panic!("no VmRSS in /proc/{pid}/status:\n{status}"),
    }
}

/// True while process `pid` exists and has not died (a zombie has).
fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// The daemon with the metrics endpoint on a loopback port, and where that
/// is.
#[track_caller]
fn daemon_with_metrics() -> (Daemon, SocketAddr) {
    let mut daemon = Daemon::start(&["--metrics-listen", "127.0.0.1:0"]);
    let metrics = logged_metrics_addr(&mut daemon);
    (daemon, metrics)
}

/// A new client of the daemon named `nick`; each of `present` reads (and
/// checks) the notices of its arrival, so none has anything left to read.
#[track_caller]
fn join(daemon: &Daemon, nick: &str, present: &mut [&mut Client]) -> Client {
    let mut client = daemon.connect();
    let guest = client.nick().to_string();
    client.rename(nick);
    for other in present {
        other.expect_line(&format!("-- {guest} joined #lobby"));
        other.expect_line(&format!("-- {guest} is now known as {nick}"));
    }
    client
}

/// Two named clients of the daemon in #lobby, with nothing left to read.
#[track_caller]
fn two_chatters(daemon: &Daemon) -> (Client, Client) {
    let mut alice = join(daemon, "alice", &mut []);
    let bob = join(daemon, "bob", &mut [&mut alice]);
    (alice, bob)
}

/// The daemon is alive, scrapes work, and alice and bob still chat.
#[track_caller]
fn assert_all_is_well(
    daemon: &Daemon,
    metrics: SocketAddr,
    (alice, bob): (&mut Client, &mut Client),
    after: &str,
) {
    assert!(is_alive(daemon.proc.pid()), "the daemon died after {after}");
    let text = scrape(metrics);
    assert!(sample(&text, "chat_clients") >= 2.0, "after {after}");
    alice.send(&format!("still here after {after}"));
    bob.expect_line(&format!("<alice> still here after {after}"));
}

/// `Content-Length` values that used to abort the daemon (30 GB: the body
/// buffer was allocated), end the metrics thread for good (2^64 - 1) and
/// hang every later scrape (10 GB).
const HOSTILE_LENGTHS: [&str; 3] = ["30000000000", "18446744073709551615", "10000000000"];

#[test]
fn a_get_announcing_a_huge_body_gets_413_and_the_daemon_and_the_chat_go_on() {
    let (daemon, metrics) = daemon_with_metrics();
    let (mut alice, mut bob) = two_chatters(&daemon);
    for length in HOSTILE_LENGTHS {
        let response = http_exchange(
            metrics,
            &format!("GET /metrics HTTP/1.1\r\nHost: {metrics}\r\nContent-Length: {length}\r\n\r\n"),
        );
        assert_eq!(response.status, 413, "Content-Length: {length}: {response:?}");
        assert_eq!(response.header("connection"), Some("close"));
        assert_all_is_well(
            &daemon,
            metrics,
            (&mut alice, &mut bob),
            &format!("Content-Length: {length}"),
        );
    }
    let chunked = http_exchange(
        metrics,
        "GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(chunked.status, 413, "{chunked:?}");
    assert_all_is_well(
        &daemon,
        metrics,
        (&mut alice, &mut bob),
        "Transfer-Encoding: chunked",
    );
}

#[test]
fn a_request_head_larger_than_the_buffer_gets_431_and_one_that_fits_gets_the_metrics() {
    let server = server_with_metrics(Config::default());
    let metrics = server.metrics_addr();
    let request = |value: &str| format!("GET /metrics HTTP/1.0\r\nX-Padding: {value}\r\n\r\n");
    let too_big = request(&"a".repeat(MAX_HEAD));
    let response = http_exchange(metrics, &too_big);
    assert_eq!(response.status, 431, "{response:?}");
    // The same, just inside the limit.
    let fits = request(&"a".repeat(MAX_HEAD - request("").len()));
    assert_eq!(fits.len(), MAX_HEAD);
    let response = http_exchange(metrics, &fits);
    assert_eq!(response.status, 200, "{response:?}");
}

/// The most bytes of one header line without end sent before the server
/// must have closed: many times what the kernel's socket buffers on both
/// sides hold (a few MiB each on loopback), so only a server that keeps
/// reading takes it all.
const ENDLESS_LINE_LIMIT: usize = 64 << 20;

/// One write of the endless line.
const ENDLESS_CHUNK: usize = 64 << 10;

/// How much the daemon's resident memory may grow while a client sends an
/// endless header line: the endpoint keeps at most a few KiB of it.
const MAX_RSS_GROWTH: u64 = 4 << 20;

#[test]
fn a_header_line_without_end_is_cut_off_at_the_buffer_and_costs_no_memory() {
    let (daemon, metrics) = daemon_with_metrics();
    let (mut alice, mut bob) = two_chatters(&daemon);
    let pid = daemon.proc.pid();
    assert_all_is_well(&daemon, metrics, (&mut alice, &mut bob), "the first scrape");
    let rss_before = rss_bytes(pid);

    let mut stream = TcpStream::connect_timeout(&metrics, TIMEOUT).unwrap_or_else(|e| panic!("connect: {e}"));
    stream
        .set_write_timeout(Some(TIMEOUT))
        .unwrap_or_else(|e| panic!("set a write timeout: {e}"));
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nX-Endless: ")
        .unwrap_or_else(|e| panic!("write: {e}"));
    let chunk = vec![b'a'; ENDLESS_CHUNK];
    let mut sent = 0;
    let mut stopped = None;
    while sent < ENDLESS_LINE_LIMIT {
        match stream.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    match stopped {
        Some(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ) => {}
        Some(e) => panic!("after {sent} bytes the server neither read on nor closed: {e}"),
        None => panic!("the server read {sent} bytes of one header line without closing"),
    }
    let grown = rss_bytes(pid).saturating_sub(rss_before);
    assert!(
        grown < MAX_RSS_GROWTH,
        "the daemon's RSS grew by {grown} bytes while {sent} bytes of a header line came"
    );
    assert_all_is_well(&daemon, metrics, (&mut alice, &mut bob), "an endless header line");
}

/// Idle connections opened at once in the test of the bound: far more
/// than it.
const IDLE_CONNECTIONS: usize = 200;

/// Connections to the metrics endpoint that the test watches for the
/// server closing them.
struct Watched {
    poll: mio::Poll,
    /// `None` once the server closed it.
    streams: Vec<Option<mio::net::TcpStream>>,
}

impl Watched {
    /// Opens `n` connections to `addr` that send nothing.
    #[track_caller]
    fn open(addr: SocketAddr, n: usize) -> Watched {
        let poll = mio::Poll::new().unwrap_or_else(|e| panic!("poll: {e}"));
        let streams = (0..n)
            .map(|i| {
                let stream = TcpStream::connect_timeout(&addr, TIMEOUT)
                    .unwrap_or_else(|e| panic!("connection {i} of {n}: {e}"));
                stream
                    .set_nonblocking(true)
                    .unwrap_or_else(|e| panic!("set_nonblocking: {e}"));
                let mut stream = mio::net::TcpStream::from_std(stream);
                poll.registry()
                    .register(&mut stream, mio::Token(i), mio::Interest::READABLE)
                    .unwrap_or_else(|e| panic!("register: {e}"));
                Some(stream)
            })
            .collect();
        Watched { poll, streams }
    }

    /// How many the server has not closed.
    fn open_count(&self) -> usize {
        self.streams.iter().filter(|s| s.is_some()).count()
    }

    /// Reads what the server sends on each connection until at most `n`
    /// are still open, or `deadline`; returns how many are.
    fn wait_until_open_at_most(&mut self, n: usize, deadline: Instant) -> usize {
        let mut events = mio::Events::with_capacity(IDLE_CONNECTIONS);
        // Each turn waits for an event or the deadline; the count bounds
        // a storm of spurious wake-ups.
        for _ in 0..100_000 {
            let open = self.open_count();
            let left = deadline.saturating_duration_since(Instant::now());
            if open <= n || left.is_zero() {
                return open;
            }
            if let Err(e) = self.poll.poll(&mut events, Some(left)) {
                assert_eq!(e.kind(), io::ErrorKind::Interrupted, "poll: {e}");
            }
            for event in events.iter() {
                self.read_or_close(event.token().0);
            }
        }
        self.open_count()
    }

    /// Reads connection `i` until it would block; forgets it when the
    /// server has closed it (end of stream or reset).
    fn read_or_close(&mut self, i: usize) {
        let Some(Some(stream)) = self.streams.get_mut(i) else { return };
        let mut buf = [0u8; 1024];
        // A connection gets at most a short answer before it is closed.
        for _ in 0..100 {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if let Some(mut stream) = self.streams.get_mut(i).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut stream);
        }
    }
}

#[test]
fn idle_connections_past_the_bound_are_closed_at_once_and_the_rest_after_the_request_timeout() {
    let (daemon, metrics) = daemon_with_metrics();
    // Once clients chat, every thread of the daemon runs.
    let (mut alice, mut bob) = two_chatters(&daemon);
    let pid = daemon.proc.pid();
    let fds_before = proc_entries(pid, "fd");
    let threads_before = proc_entries(pid, "task");

    let mut idle = Watched::open(metrics, IDLE_CONNECTIONS);
    // Those past the bound are closed as soon as they are accepted.
    let open = idle.wait_until_open_at_most(MAX_CONNECTIONS, Instant::now() + TIMEOUT);
    assert!(
        open <= MAX_CONNECTIONS,
        "{open} of {IDLE_CONNECTIONS} idle connections still open; at most {MAX_CONNECTIONS} may be"
    );
    // The server holds at most one descriptor per open connection, plus
    // one it may be accepting this moment; no thread per connection.
    let fds = proc_entries(pid, "fd");
    assert!(
        fds <= fds_before + MAX_CONNECTIONS + 1,
        "{fds} descriptors with {open} metrics connections open, {fds_before} before"
    );
    let threads = proc_entries(pid, "task");
    assert!(
        threads <= threads_before,
        "{threads} threads, {threads_before} before"
    );

    // The chat is not touched: a new user connects, and all chat.
    let mut carol = join(&daemon, "carol", &mut [&mut alice, &mut bob]);
    carol.send("hello");
    alice.expect_line("<carol> hello");
    bob.expect_line("<carol> hello");

    // The idle ones are closed once their request timeout passes, and a
    // fresh scrape is served.
    let open = idle.wait_until_open_at_most(0, Instant::now() + REQUEST_TIMEOUT + TIMEOUT);
    assert_eq!(
        open, 0,
        "idle connections outlived the request timeout of {REQUEST_TIMEOUT:?}"
    );
    assert_all_is_well(&daemon, metrics, (&mut alice, &mut bob), "idle connections");
}

#[test]
fn each_connection_gets_one_answer_with_connection_close() {
    let server = server_with_metrics(Config::default());
    let metrics = server.metrics_addr();
    // HTTP/1.1 keeps a connection open unless told otherwise: the endpoint
    // says it closes, and does.
    let two = format!("GET /metrics HTTP/1.1\r\nHost: {metrics}\r\n\r\nGET /nothing HTTP/1.1\r\n\r\n");
    let response = http_exchange(metrics, &two);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(
        response.header("content-length"),
        Some(response.body.len().to_string().as_str())
    );
    assert!(
        !response.body.contains("HTTP/1.1 "),
        "a second answer: {}",
        response.body
    );
}

#[test]
fn head_bare_newlines_and_header_names_in_any_case_are_understood() {
    let server = server_with_metrics(Config::default());
    let metrics = server.metrics_addr();
    let head = http_exchange(metrics, "HEAD /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(head.status, 200);
    assert_eq!(head.body, "");
    let length: usize = head
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or_default();
    assert!(length > 1000, "HEAD says the exposition has {length} bytes");
    assert_eq!(
        head.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );

    let bare = http_exchange(
        metrics,
        "GET /metrics?from=test HTTP/1.0\nACCEPT: application/openmetrics-text\n\n",
    );
    assert_eq!(bare.status, 200);
    assert_eq!(
        bare.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(bare.body.ends_with("# EOF\n"));
    assert_eq!(
        http_exchange(metrics, "GET /metrics HTTP/2.0\r\n\r\n").status,
        505
    );
    assert_eq!(http_exchange(metrics, "GET /metrics\r\n\r\n").status, 400);
}
