//! Test harness for the loopback integration tests of chat-server.
//!
//! The tests in `tests/` use it to run the whole system over real sockets on
//! 127.0.0.1 (or ::1), with two kinds of server:
//!
//! - [`TestServer`]: the server library in this process, on port 0, run on a
//!   thread; a guard that shuts it down and joins it on `Drop`.
//! - [`Daemon`]: the real `chat-server` binary as a child process, its port
//!   read from its log on stderr; a guard that kills and reaps it on `Drop`.
//!
//! and two kinds of peer:
//!
//! - [`Client`]: a TCP connection that reads one server line at a time, with
//!   a timeout, and panics with a clear message when the expected line does
//!   not come.
//! - [`Proc`]: any child process (the daemon, `chat-client`, `nc`) whose
//!   stdout and stderr are read line by line on threads and handed over
//!   through channels, so every wait has a deadline.
//!
//! Nothing here sleeps: every wait is on an event (a line, an EOF, an exit)
//! with a timeout, and every loop is bounded.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub mod irc;
pub mod people;
pub mod redis;
pub mod slow_reader;
pub mod tls;
pub mod web;

pub use chat_server::Config;
use chat_server::{Liveness, Server, ShutdownHandle};

/// How long a test waits for one expected event (a line, an EOF) before it
/// fails. Generous, as a loaded CI machine can be slow; a passing test never
/// waits for it.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// How long a test waits for a server or a child process to finish.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most log lines read while looking for a particular one, so a chatty
/// or looping daemon cannot keep a test reading forever.
const MAX_LOG_LINES: usize = 200;

/// The most lines read from a child's output while waiting for it to end:
/// far more than any test's child prints, few enough to stop a runaway.
const MAX_DRAIN_LINES: usize = 10_000;

/// The loopback address with port 0: the kernel picks a free port.
pub fn loopback_any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The first line a new connection receives, for the given guest nick.
pub fn welcome_line(nick: &str) -> String {
    format!("-- welcome to chat-server, {nick}! you are in #lobby; type /help for commands")
}

/// The guest nick named by a welcome line, if `line` is one.
pub fn parse_welcome(line: &str) -> Option<&str> {
    let nick = line
        .strip_prefix("-- welcome to chat-server, ")?
        .strip_suffix("! you are in #lobby; type /help for commands")?;
    let number = nick.strip_prefix("guest")?;
    (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())).then_some(nick)
}

// ---------------------------------------------------------------------------
// HTTP, for the metrics endpoint.

/// An HTTP response as a test reads it.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl HttpResponse {
    /// The value of the header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` (a whole HTTP/1.0 request, so the server closes when it
/// has answered) to `addr` and reads the response to its end.
#[track_caller]
pub fn http_exchange(addr: SocketAddr, request: &str) -> HttpResponse {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot connect to the metrics endpoint {addr}: {e}"));
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .unwrap_or_else(|e| panic!("cannot set socket timeouts: {e}"));
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("cannot send the HTTP request: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("no complete HTTP response from {addr}: {e}"));
    let raw = String::from_utf8(raw).unwrap_or_else(|e| panic!("the response is not UTF-8: {e}"));
    let Some((head, body)) = raw.split_once("\r\n\r\n") else {
        panic!("no end of headers in the response: {raw:?}");
    };
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

/// `GET path` from the HTTP server at `addr`.
#[track_caller]
pub fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_exchange(addr, &format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n"))
}

/// The value of the sample `series` (a metric name with its labels, as
/// written in the exposition) in `exposition`; panics if it is missing.
#[track_caller]
pub fn sample(exposition: &str, series: &str) -> f64 {
    let value = exposition.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse::<f64>().ok()).flatten()
    });
    match value {
        Some(value) => value,
        None => panic!("no sample {series} in the exposition:\n{exposition}"),
    }
}

// The server in this process.

/// The chat server running on a thread of the test process. Dropping it
/// shuts the server down and waits (bounded) for `run()` to return.
pub struct TestServer {
    /// Where the listeners are, ports resolved.
    addrs: Vec<SocketAddr>,
    /// Where the metrics endpoint is, if `config.metrics_listen` was set.
    metrics_addr: Option<SocketAddr>,
    /// Where the listeners of the test protocol are, if
    /// `config.test_listen` asked for some.
    test_addrs: Vec<SocketAddr>,
    /// Where the TLS listeners are, if `config.tls_listen` asked for some.
    tls_addrs: Vec<SocketAddr>,
    /// Where it listens for IRC.
    irc_addrs: Vec<SocketAddr>,
    /// Where it serves the web page and its WebSocket.
    web_addrs: Vec<SocketAddr>,
    web_tls_addrs: Vec<SocketAddr>,
    /// Reloads the TLS certificate, if the server serves TLS.
    tls_reloader: Option<chat_server::net::tls::Reloader>,
    /// Starts the graceful shutdown.
    handle: ShutdownHandle,
    /// Tells when every event loop has turned (see [`TestServer::settle`]).
    liveness: Liveness,
    /// Receives what `run()` returned, once it has.
    done: Receiver<io::Result<()>>,
    /// The thread running the server; `None` once joined.
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with `config`, listening on 127.0.0.1 port 0 whatever
    /// `config.listen` says.
    #[track_caller]
    pub fn start(config: Config) -> TestServer {
        Self::start_on(Config {
            listen: vec![loopback_any_port()],
            ..config
        })
    }

    /// Starts a server with the default configuration on 127.0.0.1 port 0.
    #[track_caller]
    pub fn start_default() -> TestServer {
        Self::start(Config::default())
    }

    /// Starts a server listening where `config.listen` says, which must be
    /// loopback addresses.
    #[track_caller]
    pub fn start_on(config: Config) -> TestServer {
        assert!(
            config.listen.iter().all(|a| a.ip().is_loopback()),
            "tests listen on loopback only, not {:?}",
            config.listen
        );
        let server = match Server::bind(config) {
            Ok(server) => server,
            Err(e) => panic!("cannot start the test server: {e}"),
        };
        let addrs = server.local_addrs();
        assert!(!addrs.is_empty(), "the server reports no listening address");
        let metrics_addr = server.metrics_addr();
        let test_addrs = server.protocol_addrs(chat_server::frontend::Protocol::Test);
        let tls_addrs = server.listener_addrs(chat_server::net::acceptor::ListenerKind::LINE_TLS);
        let irc_addrs = server.listener_addrs(chat_server::net::acceptor::ListenerKind::IRC);
        let web_addrs = server.listener_addrs(chat_server::net::acceptor::ListenerKind::WEB);
        let web_tls_addrs = server.listener_addrs(chat_server::net::acceptor::ListenerKind::WEB_TLS);
        let tls_reloader = server.tls_reloader();
        let handle = server.handle();
        let liveness = server.liveness();
        let (tx, done) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("chat-server".into())
            .spawn(move || {
                // The receiver may be gone if the test already failed.
                let _ = tx.send(server.run());
            })
            .expect("spawn the server thread");
        TestServer {
            addrs,
            metrics_addr,
            test_addrs,
            tls_addrs,
            irc_addrs,
            web_addrs,
            web_tls_addrs,
            tls_reloader,
            handle,
            liveness,
            done,
            thread: Some(thread),
        }
    }

    /// The (first) address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The (first) address of a TLS listener; panics if there is none.
    #[track_caller]
    pub fn tls_addr(&self) -> SocketAddr {
        match self.tls_addrs.first() {
            Some(addr) => *addr,
            None => panic!("the test server has no TLS listener (set tls_listen)"),
        }
    }

    /// Reloads the TLS certificate and key, as SIGHUP does to the daemon.
    ///
    /// Returns the new certificate's fingerprint.
    ///
    /// # Errors
    /// What the reload found wrong; the certificate in force stays.
    #[track_caller]
    pub fn reload_tls(&self) -> Result<chat_server::net::tls::Fingerprint, chat_server::net::tls::TlsError> {
        match &self.tls_reloader {
            Some(reloader) => reloader.reload(),
            None => panic!("the test server serves no TLS"),
        }
    }

    /// The (first) address of a listener for the test protocol (the line
    /// protocol with every line marked `test: `; see
    /// `chat_server::frontend::Protocol::Test`); panics if there is none.
    #[track_caller]
    pub fn test_protocol_addr(&self) -> SocketAddr {
        match self.test_addrs.first() {
            Some(addr) => *addr,
            None => panic!("the test server has no test-protocol listener (set test_listen)"),
        }
    }

    /// The (first) address of an IRC listener; panics if there is none.
    #[track_caller]
    pub fn irc_addr(&self) -> SocketAddr {
        match self.irc_addrs.first() {
            Some(addr) => *addr,
            None => panic!("the test server has no IRC listener (set irc_listen)"),
        }
    }

    /// The (first) address of a web listener; panics if there is none.
    #[track_caller]
    pub fn web_addr(&self) -> SocketAddr {
        match self.web_addrs.first() {
            Some(addr) => *addr,
            None => panic!("the test server has no web listener (set web_listen)"),
        }
    }

    /// The (first) address of a web-over-TLS listener; panics if there is
    /// none.
    #[track_caller]
    pub fn web_tls_addr(&self) -> SocketAddr {
        match self.web_tls_addrs.first() {
            Some(addr) => *addr,
            None => panic!("the test server has no web-over-TLS listener (set web_tls_listen)"),
        }
    }

    /// Every address the server listens on, in the order configured.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Waits until every event loop of the server has completed a turn
    /// that ended after this call began. A loop updates its counters at the
    /// end of the turn in which it wrote, so whatever a client has read is
    /// counted once this returns (for assertions on metrics).
    ///
    /// # Panics
    /// When a loop does not turn within [`TIMEOUT`].
    #[track_caller]
    pub fn settle(&mut self) {
        // The first check forgets turns before now and wakes every loop;
        // each later one is true once all have turned since the previous.
        self.liveness.check();
        let deadline = Instant::now() + TIMEOUT;
        while !self.liveness.check() {
            assert!(
                Instant::now() < deadline,
                "the server's loops did not turn within {TIMEOUT:?}"
            );
            thread::yield_now();
        }
    }

    /// Where the metrics endpoint listens; panics if it is off.
    #[track_caller]
    pub fn metrics_addr(&self) -> SocketAddr {
        match self.metrics_addr {
            Some(addr) => addr,
            None => panic!("the test server has no metrics endpoint (set metrics_listen)"),
        }
    }

    /// Connects a new client and reads its welcome; see [`Client::connect_guest`].
    #[track_caller]
    pub fn connect(&self) -> Client {
        Client::connect_guest(self.addr())
    }

    /// Connects a new client and gives it `nick`; see [`Client::connect_named`].
    #[track_caller]
    pub fn connect_named(&self, nick: &str) -> Client {
        Client::connect_named(self.addr(), nick)
    }

    /// Connects one client per nick, in order, all in #lobby. Each client
    /// already connected reads (and checks) the join and nick-change notices
    /// of those connecting after it, so every returned client has nothing
    /// left to read.
    #[track_caller]
    pub fn clients<const N: usize>(&self, nicks: [&str; N]) -> [Client; N] {
        let mut clients: Vec<Client> = Vec::with_capacity(N);
        for nick in nicks {
            let mut client = self.connect();
            let guest = client.nick().to_string();
            client.rename(nick);
            for earlier in &mut clients {
                earlier.expect_line(&format!("-- {guest} joined #lobby"));
                earlier.expect_line(&format!("-- {guest} is now known as {nick}"));
            }
            clients.push(client);
        }
        match clients.try_into() {
            Ok(clients) => clients,
            Err(_) => unreachable!("one client per nick"),
        }
    }

    /// Starts the graceful shutdown without waiting for it: the clients can
    /// then read the notice and close, and [`TestServer::stop`] collects
    /// the result. (The server waits, up to its grace period, for each
    /// client to close its side after the notice.)
    pub fn begin_shutdown(&self) {
        self.handle.shutdown();
    }

    /// Shuts the server down gracefully and returns what `run()` returned.
    ///
    /// # Panics
    /// When `run()` has not returned within [`EXIT_TIMEOUT`], or panicked.
    #[track_caller]
    pub fn stop(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    /// Waits for the server to stop by itself (without asking it to) and
    /// returns what `run()` returned: for tests of what makes it stop.
    ///
    /// # Panics
    /// When `run()` has not returned within [`EXIT_TIMEOUT`], or panicked.
    #[track_caller]
    pub fn wait_stopped(mut self) -> io::Result<()> {
        self.join()
    }

    #[track_caller]
    fn stop_and_join(&mut self) -> io::Result<()> {
        self.handle.shutdown();
        self.join()
    }

    #[track_caller]
    fn join(&mut self) -> io::Result<()> {
        let result = match self.done.recv_timeout(EXIT_TIMEOUT) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => {
                // Leave the thread running: joining it would hang the test.
                self.thread = None;
                panic!("the server did not stop within {EXIT_TIMEOUT:?}");
            }
            // The thread ended without sending: `run()` panicked, and
            // joining it below reports that.
            Err(RecvTimeoutError::Disconnected) => Ok(()),
        };
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                panic!("the server thread panicked");
            }
        }
        result
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.thread.is_none() {
            return;
        }
        if thread::panicking() {
            // The test failed already; stop the server but do not pile a
            // second panic on top of the first.
            self.handle.shutdown();
            let _ = self.done.recv_timeout(EXIT_TIMEOUT);
            return;
        }
        if let Err(e) = self.stop_and_join() {
            panic!("the server's run() failed: {e}");
        }
    }
}

// ---------------------------------------------------------------------------
// A client over TCP.

/// One connection to the server that reads and checks whole lines.
pub struct Client {
    /// The nick the test believes this client has, for messages.
    nick: String,
    /// The read half, buffered so lines can be taken one at a time.
    reader: BufReader<TcpStream>,
    /// The write half (the same socket).
    writer: TcpStream,
}

impl Client {
    /// Connects to `addr` without reading anything, with [`TIMEOUT`] as the
    /// read timeout and Nagle's algorithm off (so each write goes out as
    /// its own segment, which the split-UTF-8 tests rely on).
    #[track_caller]
    pub fn connect(addr: SocketAddr) -> Client {
        match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(stream) => Client::from_stream(stream),
            Err(e) => panic!("cannot connect to {addr}: {e}"),
        }
    }

    /// Wraps a connected stream, set up as in [`Client::connect`].
    pub fn from_stream(stream: TcpStream) -> Client {
        let peer = stream
            .peer_addr()
            .map_or_else(|e| e.to_string(), |a| a.to_string());
        stream.set_read_timeout(Some(TIMEOUT)).expect("set read timeout");
        stream
            .set_write_timeout(Some(TIMEOUT))
            .expect("set write timeout");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        let writer = stream.try_clone().expect("clone the socket");
        Client {
            nick: format!("(unnamed connection to {peer})"),
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// Connects to `addr` and reads the welcome line, which must name a
    /// guest nick (`guestN`) and #lobby. The client then knows its nick.
    #[track_caller]
    pub fn connect_guest(addr: SocketAddr) -> Client {
        Client::connect(addr).welcomed()
    }

    /// Wraps a connected stream as [`Client::from_stream`] does and reads
    /// the welcome as [`Client::connect_guest`] does: for a socket set up
    /// specially (bound to another source address, a small receive buffer).
    #[track_caller]
    pub fn guest_from_stream(stream: TcpStream) -> Client {
        Client::from_stream(stream).welcomed()
    }

    /// Reads the welcome line, which must name a guest nick, and takes
    /// that nick.
    #[track_caller]
    fn welcomed(self) -> Client {
        let mut client = self;
        let line = client.read_line();
        let Some(nick) = parse_welcome(&line) else {
            panic!(
                "expected a welcome like {:?}, got {line:?}",
                welcome_line("guestN")
            );
        };
        client.nick = nick.to_string();
        client
    }

    /// Connects to `addr`, reads the welcome, sends `/nick NICK` and waits
    /// for its confirmation.
    #[track_caller]
    pub fn connect_named(addr: SocketAddr, nick: &str) -> Client {
        let mut client = Client::connect_guest(addr);
        client.rename(nick);
        client
    }

    /// The nick this client has, as far as the test knows.
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// The client's own address (what the server sees as the peer).
    pub fn local_addr(&self) -> SocketAddr {
        self.writer
            .local_addr()
            .expect("local address of the client socket")
    }

    /// Sends `/nick NICK`, expects `-- you are now known as NICK`, and
    /// remembers the new nick.
    #[track_caller]
    pub fn rename(&mut self, nick: &str) {
        self.send(&format!("/nick {nick}"));
        self.expect_line(&format!("-- you are now known as {nick}"));
        self.nick = nick.to_string();
    }

    /// Sends `line` and a `\n`.
    #[track_caller]
    pub fn send(&mut self, line: &str) {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.send_raw(&bytes);
    }

    /// Sends `bytes` as they are, in one write, and flushes.
    #[track_caller]
    pub fn send_raw(&mut self, bytes: &[u8]) {
        if let Err(e) = self.writer.write_all(bytes).and_then(|()| self.writer.flush()) {
            panic!(
                "{}: cannot send {:?}: {e}",
                self.nick,
                String::from_utf8_lossy(bytes)
            );
        }
    }

    /// Closes the sending side only (the server sees EOF; replies can still
    /// be read).
    pub fn shutdown_write(&mut self) {
        self.writer.shutdown(Shutdown::Write).expect("shutdown(Write)");
    }

    /// The next line from the server, without its `\n`.
    ///
    /// Every line the server sends must be UTF-8, end in a bare `\n` and hold
    /// no control character other than TAB: this is checked here, for every
    /// line of every test.
    ///
    /// # Panics
    /// When no complete line arrives within [`TIMEOUT`], the connection
    /// closes first, or the line breaks the rules above.
    #[track_caller]
    pub fn read_line(&mut self) -> String {
        let mut bytes = Vec::new();
        match self.reader.read_until(b'\n', &mut bytes) {
            Ok(0) => panic!("{}: the server closed the connection; expected a line", self.nick),
            Ok(_) if bytes.last() != Some(&b'\n') => panic!(
                "{}: the server closed the connection in the middle of a line: {:?}",
                self.nick,
                String::from_utf8_lossy(&bytes)
            ),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => panic!(
                "{}: no complete line from the server within {TIMEOUT:?} (partial: {:?})",
                self.nick,
                String::from_utf8_lossy(&bytes)
            ),
            Err(e) => panic!("{}: error reading from the server: {e}", self.nick),
        }
        bytes.pop();
        let line = match String::from_utf8(bytes) {
            Ok(line) => line,
            Err(e) => panic!("{}: the server sent invalid UTF-8: {:?}", self.nick, e.as_bytes()),
        };
        if let Some(c) = line.chars().find(|&c| c != '\t' && c.is_control()) {
            panic!(
                "{}: the server sent control character {c:?} in {line:?}",
                self.nick
            );
        }
        line
    }

    /// The next line, as [`Client::read_line`], or `None` if the server
    /// closes the connection before another line starts.
    ///
    /// # Panics
    /// As [`Client::read_line`], but for the close.
    #[track_caller]
    pub fn read_line_or_eof(&mut self) -> Option<String> {
        match self.reader.fill_buf() {
            Ok([]) => None,
            Ok(_) => Some(self.read_line()),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => panic!(
                "{}: neither a line nor the close from the server within {TIMEOUT:?}",
                self.nick
            ),
            Err(e) => panic!("{}: error reading from the server: {e}", self.nick),
        }
    }

    /// Reads lines until one equals `expected`, accepting at most `max`
    /// others before it (notices whose number the test does not fix).
    ///
    /// # Panics
    /// After `max` other lines, or as [`Client::read_line`].
    #[track_caller]
    pub fn read_until(&mut self, expected: &str, max: usize) {
        let mut seen = Vec::new();
        for _ in 0..=max {
            let line = self.read_line();
            if line == expected {
                return;
            }
            seen.push(line);
        }
        panic!("{} never read {expected:?}; read {seen:?}", self.nick);
    }

    /// Reads `n` lines.
    #[track_caller]
    pub fn read_lines(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.read_line()).collect()
    }

    /// Reads the next line and checks it is `expected`.
    #[track_caller]
    pub fn expect_line(&mut self, expected: &str) {
        let got = self.read_line();
        assert_eq!(
            got, expected,
            "\n{} read the wrong line\n expected: {expected:?}\n      got: {got:?}\n",
            self.nick
        );
    }

    /// Reads one line per item of `expected` and checks each in turn.
    #[track_caller]
    pub fn expect_lines(&mut self, expected: &[&str]) {
        for line in expected {
            self.expect_line(line);
        }
    }

    /// Reads the next line and checks it equals `expected` without regard
    /// to ASCII case: for lines naming a room or nick that the client typed
    /// in another case, where which spelling the server shows is not part
    /// of the contract.
    #[track_caller]
    pub fn expect_line_ignoring_case(&mut self, expected: &str) {
        let got = self.read_line();
        assert!(
            got.eq_ignore_ascii_case(expected),
            "\n{} read the wrong line\n expected (any case): {expected:?}\n                 got: {got:?}\n",
            self.nick
        );
    }

    /// Reads and drops whatever the server still sends until the
    /// connection ends, by a close or a reset: for a connection whose end,
    /// not its last words, is what matters.
    ///
    /// # Panics
    /// When the connection is still open after [`TIMEOUT`], or sends more
    /// than a megabyte.
    #[track_caller]
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => total += n,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    panic!("{}: the connection was still open after {TIMEOUT:?}", self.nick)
                }
                Err(_) => return,
            }
            assert!(
                total < 1 << 20,
                "{}: more than a megabyte before the close",
                self.nick
            );
        }
    }

    /// Checks that the server closes the connection next, with nothing
    /// more to read.
    #[track_caller]
    pub fn expect_eof(&mut self) {
        let mut buf = [0u8; 512];
        match self.reader.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!(
                "{}: expected the server to close the connection, got more data: {:?}",
                self.nick,
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                panic!(
                    "{}: the server did not close the connection within {TIMEOUT:?}",
                    self.nick
                )
            }
            Err(e) => panic!(
                "{}: expected a clean close (EOF) from the server, got an error: {e}",
                self.nick
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// Child processes.

/// The path of a binary of this workspace, next to the test executable's
/// directory (`target/debug/deps/xxx` → `target/debug/NAME`; an example's
/// `target/release/examples/xxx` → `target/release/NAME`).
///
/// # Panics
/// When the binary is not there, with the command that builds it.
#[track_caller]
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    let mut dir = exe
        .parent()
        .expect("the test executable is in a directory")
        .to_path_buf();
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} not found: build the binaries first with `cargo build --workspace` \
         (the test command builds them before testing)",
        path.display()
    );
    path
}

/// The variables through which systemd talks to a service it started. A
/// test run that is itself a systemd service (a CI runner, say) has them,
/// and a daemon under test must not answer the real service manager.
const SYSTEMD_VARIABLES: [&str; 8] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "JOURNAL_STREAM",
    "CREDENTIALS_DIRECTORY",
];

/// A `Command` for `program` with a clean environment for this project:
/// no `RUST_LOG`, no `CHAT_*` variables from the caller's shell, so the
/// defaults are what is tested, and none of systemd's variables, so a test
/// sets each one it wants.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let is_ours = key
            .to_str()
            .is_some_and(|k| k == "RUST_LOG" || k.starts_with("CHAT_") || SYSTEMD_VARIABLES.contains(&k));
        if is_ours {
            command.env_remove(&key);
        }
    }
    command
}

/// What a bounded wait for a child's next output line found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited {
    /// A line, without its `\n`.
    Line(String),
    /// The stream ended.
    Eof,
    /// Nothing came in time.
    TimedOut,
}

/// Lines of one output stream of a child, read on a thread.
struct OutputLines {
    /// Which stream, for messages ("stdout", "stderr").
    name: &'static str,
    /// Each line as read; the sender is dropped at EOF.
    rx: Receiver<String>,
    /// Every line taken so far, for messages and for [`Proc::stderr_lines`].
    seen: Vec<String>,
    /// True once EOF was seen.
    closed: bool,
}

impl OutputLines {
    fn new(name: &'static str, pipe: impl Read + Send + 'static) -> OutputLines {
        let (tx, rx) = mpsc::channel();
        thread::Builder::new()
            .name(format!("child {name}"))
            .spawn(move || {
                let mut pipe = BufReader::new(pipe);
                let mut bytes = Vec::new();
                loop {
                    bytes.clear();
                    match pipe.read_until(b'\n', &mut bytes) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if bytes.last() == Some(&b'\n') {
                                bytes.pop();
                            }
                            if tx.send(String::from_utf8_lossy(&bytes).into_owned()).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
            .expect("spawn an output reader thread");
        OutputLines {
            name,
            rx,
            seen: Vec::new(),
            closed: false,
        }
    }

    /// The next line, or `None` at EOF. Panics at `deadline`.
    #[track_caller]
    fn next(&mut self, who: &str, deadline: Instant) -> Option<String> {
        match self.next_before(deadline) {
            Waited::Line(line) => Some(line),
            Waited::Eof => None,
            Waited::TimedOut => panic!(
                "{who}: nothing more on its {} in time; it printed so far:\n{}",
                self.name,
                self.seen.join("\n")
            ),
        }
    }

    /// The next line if one comes before `deadline`.
    fn next_before(&mut self, deadline: Instant) -> Waited {
        if self.closed {
            return Waited::Eof;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(wait) {
            Ok(line) => {
                self.seen.push(line.clone());
                Waited::Line(line)
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.closed = true;
                Waited::Eof
            }
            Err(RecvTimeoutError::Timeout) => Waited::TimedOut,
        }
    }

    /// Reads to EOF, bounded by `deadline` and [`MAX_DRAIN_LINES`].
    #[track_caller]
    fn drain(&mut self, who: &str, deadline: Instant) {
        for _ in 0..MAX_DRAIN_LINES {
            if self.next(who, deadline).is_none() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{who}: its {} did not end in time; it printed:\n{}",
                self.name,
                self.seen.join("\n")
            );
        }
        panic!(
            "{who}: more than {MAX_DRAIN_LINES} lines on its {} before it ended",
            self.name
        );
    }
}

/// A child process with piped stdin, stdout and stderr. Dropping it kills
/// and reaps the child if it is still running.
pub struct Proc {
    /// A short name for messages.
    name: String,
    child: Child,
    /// `None` once closed.
    stdin: Option<ChildStdin>,
    stdout: OutputLines,
    stderr: OutputLines,
    /// Set once the child was reaped.
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `command` with all three standard streams piped.
    ///
    /// # Panics
    /// When it cannot be started; `hint` says what to do about it.
    #[track_caller]
    pub fn spawn(name: &str, mut command: Command, hint: &str) -> Proc {
        command.stderr(Stdio::piped());
        let mut child = Proc::spawn_child(name, command, hint);
        let stderr = child.stderr.take().expect("piped stderr");
        Proc::from_child(name, child, stderr)
    }

    /// Spawns `command` with stdin and stdout piped and stderr connected
    /// to what the caller set with `command.stderr(...)`, whose other end
    /// `stderr` is then read line by line like a pipe. For a child whose
    /// stderr must be something else than a pipe (a socket, as the
    /// journal's is).
    ///
    /// # Panics
    /// When it cannot be started; `hint` says what to do about it.
    #[track_caller]
    pub fn spawn_with_stderr(
        name: &str,
        command: Command,
        stderr: impl Read + Send + 'static,
        hint: &str,
    ) -> Proc {
        // The command, and with it our copy of the child's end of stderr,
        // is dropped in here, so the reader sees EOF when the child exits.
        let child = Proc::spawn_child(name, command, hint);
        Proc::from_child(name, child, stderr)
    }

    #[track_caller]
    fn spawn_child(name: &str, mut command: Command, hint: &str) -> Child {
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        match command.spawn() {
            Ok(child) => child,
            Err(e) => panic!("cannot run {name} ({command:?}): {e}; {hint}"),
        }
    }

    fn from_child(name: &str, mut child: Child, stderr: impl Read + Send + 'static) -> Proc {
        let stdin = child.stdin.take();
        let stdout = OutputLines::new("stdout", child.stdout.take().expect("piped stdout"));
        let stderr = OutputLines::new("stderr", stderr);
        Proc {
            name: name.to_string(),
            child,
            stdin,
            stdout,
            stderr,
            status: None,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes `text` to the child's stdin.
    #[track_caller]
    pub fn write_stdin(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is still open");
        if let Err(e) = stdin.write_all(text.as_bytes()).and_then(|()| stdin.flush()) {
            panic!("cannot write to the stdin of {}: {e}", self.name);
        }
    }

    /// Closes the child's stdin: it reads EOF.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next line on the child's stdout, or `None` at EOF.
    ///
    /// # Panics
    /// When nothing comes within [`TIMEOUT`].
    #[track_caller]
    pub fn stdout_line(&mut self) -> Option<String> {
        self.stdout.next(&self.name, Instant::now() + TIMEOUT)
    }

    /// Reads the next stdout line and checks it is `expected`.
    #[track_caller]
    pub fn expect_stdout_line(&mut self, expected: &str) {
        let got = self.stdout_line();
        assert_eq!(
            got.as_deref(),
            Some(expected),
            "\n{} printed the wrong line on stdout\n expected: {expected:?}\n      got: {got:?}\n",
            self.name
        );
    }

    /// The next line on the child's stderr, or `None` at EOF.
    ///
    /// # Panics
    /// When nothing comes within [`TIMEOUT`].
    #[track_caller]
    pub fn stderr_line(&mut self) -> Option<String> {
        self.stderr.next(&self.name, Instant::now() + TIMEOUT)
    }

    /// The next line on the child's stderr if one comes before `deadline`;
    /// never panics. For a test that checks something does *not* happen
    /// within a bounded wait (a log line that must not repeat).
    pub fn stderr_line_before(&mut self, deadline: Instant) -> Waited {
        self.stderr.next_before(deadline)
    }

    /// Reads stderr until a line contains every one of `needles`, and
    /// returns it. Bounded by [`TIMEOUT`] and a line count.
    ///
    /// # Panics
    /// When no such line comes in time, or stderr closes first.
    #[track_caller]
    pub fn expect_stderr_containing(&mut self, needles: &[&str]) -> String {
        let deadline = Instant::now() + TIMEOUT;
        for _ in 0..MAX_LOG_LINES {
            match self.stderr.next(&self.name, deadline) {
                Some(line) if needles.iter().all(|n| line.contains(n)) => return line,
                Some(_) => {}
                None => break,
            }
        }
        panic!(
            "{}: no line on stderr containing {needles:?}; it printed:\n{}",
            self.name,
            self.stderr.seen.join("\n")
        );
    }

    /// Every stdout line read so far.
    pub fn stdout_lines(&self) -> &[String] {
        &self.stdout.seen
    }

    /// Every stderr line read so far.
    pub fn stderr_lines(&self) -> &[String] {
        &self.stderr.seen
    }

    /// The stderr lines read so far that start with `error:`: what a
    /// program that failed to start says about why.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .seen
            .iter()
            .map(String::as_str)
            .filter(|l| l.starts_with("error:"))
            .collect()
    }

    /// Sends signal `signal` (a name such as `TERM`) with the `kill` command
    /// (the crate denies unsafe code, so no `libc::kill`).
    #[track_caller]
    pub fn signal(&self, signal: &str) {
        let status = Command::new("sh")
            .args([
                "-c",
                "kill -s \"$1\" \"$2\"",
                "sh",
                signal,
                &self.pid().to_string(),
            ])
            .status();
        match status {
            Ok(status) if status.success() => {}
            other => panic!("kill -s {signal} {} failed: {other:?}", self.pid()),
        }
    }

    /// Waits for the child to exit: reads its stdout and stderr to EOF, then
    /// reaps it. Returns its exit status; the output read is kept for
    /// [`Proc::stdout_lines`] and [`Proc::stderr_lines`].
    ///
    /// # Panics
    /// When the streams are not closed within [`EXIT_TIMEOUT`].
    #[track_caller]
    pub fn wait_exit(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let deadline = Instant::now() + EXIT_TIMEOUT;
        self.stdout.drain(&self.name, deadline);
        self.stderr.drain(&self.name, deadline);
        // Both pipes closed: the process has exited, so this returns at once.
        let status = self.child.wait().expect("wait for the child");
        self.status = Some(status);
        status
    }

    /// Waits for the child to exit and checks it exited with `code`.
    #[track_caller]
    pub fn expect_exit_code(&mut self, code: i32) {
        let status = self.wait_exit();
        assert_eq!(
            status.code(),
            Some(code),
            "{} exited with {status}, expected code {code}\nstdout:\n{}\nstderr:\n{}",
            self.name,
            self.stdout.seen.join("\n"),
            self.stderr.seen.join("\n")
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            // Killing fails only if it already exited; reaping must happen
            // either way.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// The daemon binary.

/// The `chat-server` binary running as a child process.
pub struct Daemon {
    /// The process; its stderr is the daemon's log.
    pub proc: Proc,
    /// Where it listens, from its log.
    addrs: Vec<SocketAddr>,
}

impl Daemon {
    /// A command running the `chat-server` binary with `args`, in a clean
    /// environment (see [`clean_command`]).
    #[track_caller]
    pub fn command(args: &[&str]) -> Command {
        let mut command = clean_command(binary("chat-server"));
        command.args(args);
        command
    }

    /// Starts the daemon on 127.0.0.1 port 0 with `extra` options, and waits
    /// until it logs its listening address.
    #[track_caller]
    pub fn start(extra: &[&str]) -> Daemon {
        let mut args = vec!["--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Daemon::start_with(Daemon::command(&args), 1)
    }

    /// Runs `command` (made with [`Daemon::command`]) and waits until it has
    /// logged `listeners` listening addresses.
    #[track_caller]
    pub fn start_with(command: Command, listeners: usize) -> Daemon {
        let proc = Proc::spawn("chat-server", command, "build it with `cargo build --workspace`");
        Daemon::attach(proc, listeners)
    }

    /// A daemon already started as `proc` (by another program, or with its
    /// stderr set up specially), once it has logged `listeners` listening
    /// addresses.
    #[track_caller]
    pub fn attach(proc: Proc, listeners: usize) -> Daemon {
        let mut daemon = Daemon {
            proc,
            addrs: Vec::new(),
        };
        for _ in 0..listeners {
            let line = daemon.proc.expect_stderr_containing(&["listening on "]);
            daemon.addrs.push(parse_listening(&line));
        }
        daemon
    }

    /// The (first) address the daemon listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every address it logged, in order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Connects a new client and reads its welcome.
    #[track_caller]
    pub fn connect(&self) -> Client {
        Client::connect_guest(self.addr())
    }

    /// Connects a new client and gives it `nick`.
    #[track_caller]
    pub fn connect_named(&self, nick: &str) -> Client {
        Client::connect_named(self.addr(), nick)
    }
}

/// The address in a log line `... listening on ADDR ...`.
#[track_caller]
fn parse_listening(line: &str) -> SocketAddr {
    let addr = line
        .split_once("listening on ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_default();
    match addr.parse() {
        Ok(addr) => addr,
        Err(_) => panic!("no address after \"listening on \" in the log line {line:?}"),
    }
}

/// Runs the `chat-client` binary with `args` (in a clean environment).
#[track_caller]
pub fn spawn_chat_client(args: &[&str]) -> Proc {
    let mut command = clean_command(binary("chat-client"));
    command.args(args);
    Proc::spawn("chat-client", command, "build it with `cargo build --workspace`")
}

/// Runs netcat (`nc ADDR PORT`).
///
/// # Panics
/// When `nc` is not installed, saying to install netcat-openbsd: the test
/// fails rather than skips, because the README promises it works.
#[track_caller]
pub fn spawn_nc(addr: SocketAddr) -> Proc {
    let mut command = clean_command("nc");
    command.arg(addr.ip().to_string()).arg(addr.port().to_string());
    Proc::spawn(
        "nc",
        command,
        "this test needs netcat: install it with `apt-get install netcat-openbsd`",
    )
}

// ---------------------------------------------------------------------------
// For the tests of real IRC clients in a terminal (tests/irc_clients.rs).

pub mod terminal;

impl Proc {
    /// Reads the next stdout line, waiting up to `timeout` (longer than
    /// [`TIMEOUT`], for a peer that paces what it sends, as irssi and
    /// WeeChat do), and checks it is `expected`.
    ///
    /// # Panics
    /// When another line comes, or none in time.
    #[track_caller]
    pub fn expect_stdout_line_within(&mut self, expected: &str, timeout: Duration) {
        let got = self.stdout.next(&self.name, Instant::now() + timeout);
        assert_eq!(
            got.as_deref(),
            Some(expected),
            "\n{} printed the wrong line on stdout\n expected: {expected:?}\n      got: {got:?}\n",
            self.name
        );
    }
}

/// A TCP connection to `addr` from the loopback address `source` (any of
/// 127.0.0.0/8): a client from another address, for per-address limits and
/// bans.
///
/// # Panics
/// When the socket cannot be bound or connected.
#[track_caller]
pub fn connect_from(addr: SocketAddr, source: std::net::Ipv4Addr) -> TcpStream {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("a socket");
    if let Err(e) = socket.bind(&SocketAddr::from((source, 0)).into()) {
        panic!("cannot bind to {source}: {e}");
    }
    if let Err(e) = socket.connect_timeout(&addr.into(), TIMEOUT) {
        panic!("cannot connect from {source}: {e}");
    }
    socket.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welcome_lines_name_a_guest() {
        assert_eq!(parse_welcome(&welcome_line("guest12")), Some("guest12"));
        assert_eq!(parse_welcome(&welcome_line("alice")), None);
        assert_eq!(parse_welcome(&welcome_line("guest")), None);
        assert_eq!(parse_welcome("-- hello"), None);
    }

    #[test]
    fn listening_addresses_are_found_in_log_lines() {
        assert_eq!(
            parse_listening("[2025-01-01T00:00:00Z INFO  chat_server] listening on 127.0.0.1:4242"),
            "127.0.0.1:4242".parse().unwrap()
        );
        assert_eq!(
            parse_listening("INFO listening on [::1]:99 (tcp)"),
            "[::1]:99".parse().unwrap()
        );
    }
}
