//! Helpers shared by the client's integration tests: the real chat-server
//! on loopback, a plain TCP peer to talk to the client through it, output
//! collectors, and commands run with a deadline.
//!
//! Every wait here has a deadline ([`WAIT`]) and waits on something real (a
//! line, end of file, a process exit), so a broken client fails a test
//! instead of hanging it; every process started is killed and reaped on
//! `Drop`, even when the test fails.

// Each test binary uses only some of these helpers, and they panic on
// purpose: in a test a failed expectation is a failed test, with its
// message. clippy.toml allows that in test functions only, not in helpers.
#![allow(
    dead_code,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The longest any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The most lines read while looking for one; more means the test is wrong.
pub const MAX_LINES: usize = 200;

/// The `chat-server` binary in this build's target directory. The test
/// script builds the whole workspace before testing; `cargo test -p
/// chat-client` alone does not build it.
pub fn chat_server_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/pipe-HASH -> target/debug/chat-server
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary is in target/<profile>/deps");
    let path = dir.join(format!("chat-server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build --workspace` (./scripts/test does)",
        path.display()
    );
    path
}

/// Sends `signal` to a child process.
pub fn signal(child: &Child, signal: Signal) {
    let pid = i32::try_from(child.id()).expect("pid fits in i32");
    kill(Pid::from_raw(pid), signal).expect("send a signal");
}

/// The real chat-server, listening on loopback; killed on drop.
pub struct RealServer {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The port it listens on.
    pub port: u16,
    /// The rest of its standard error, line by line, until it exits.
    stderr: Receiver<String>,
}

impl RealServer {
    /// Starts a server on a free port.
    pub fn start() -> RealServer {
        RealServer::start_on("127.0.0.1:0")
    }

    /// Starts a server listening on `listen`, and waits until it says it
    /// is listening.
    pub fn start_on(listen: &str) -> RealServer {
        RealServer::start_with(listen, &[])
    }

    /// Starts a server listening on `listen` with more options (`--rate
    /// 0`, `--max-line 100`), and waits until it says it is listening.
    pub fn start_with(listen: &str, options: &[&str]) -> RealServer {
        let mut child = Command::new(chat_server_path())
            .args(["--listen", listen])
            .args(options)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chat-server");
        let stderr = child.stderr.take().expect("stderr pipe");
        let (tx, rx) = unbounded();
        thread::spawn(move || {
            // Read to the end so the server never blocks on a full pipe.
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Nobody listens any more; keep draining.
                }
            }
        });
        let mut server = RealServer {
            child,
            addr: String::new(),
            port: 0,
            stderr: rx,
        };
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        for _ in 0..MAX_LINES {
            let Ok(line) = server.stderr.recv_deadline(deadline) else {
                panic!("chat-server did not say where it listens; its stderr: {seen:#?}");
            };
            if let Some(at) = line.find("listening on 127.0.0.1:") {
                let port = line[at + "listening on 127.0.0.1:".len()..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("a port after 'listening on 127.0.0.1:'");
                server.port = port;
                server.addr = format!("127.0.0.1:{port}");
                return server;
            }
            seen.push(line);
        }
        panic!("no 'listening on' line in {seen:#?}");
    }

    /// Stops the server as systemd would (SIGTERM) and waits for it to exit.
    pub fn terminate(&mut self) {
        signal(&self.child, Signal::SIGTERM);
        // Its stderr closes when it exits: that is the event waited for.
        let deadline = Instant::now() + WAIT;
        for _ in 0..100_000 {
            match self.stderr.recv_deadline(deadline) {
                Ok(_) => continue,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    panic!("chat-server did not exit within {WAIT:?} of SIGTERM")
                }
            }
        }
        let status = self.child.wait().expect("reap chat-server");
        assert!(status.success(), "chat-server exited with {status}");
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user of the real server on a plain socket, as with `nc`.
pub struct ChatUser {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl ChatUser {
    /// Connects and reads the welcome line.
    pub fn connect(addr: &str) -> ChatUser {
        let stream = TcpStream::connect(addr).expect("connect to chat-server");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        let writer = stream.try_clone().expect("clone");
        let mut peer = ChatUser {
            reader: BufReader::new(stream),
            writer,
        };
        peer.expect("-- welcome to chat-server");
        peer
    }

    /// Connects, takes `nick` and joins `room` (unless it is the lobby).
    pub fn join(addr: &str, nick: &str, room: &str) -> ChatUser {
        let mut peer = ChatUser::connect(addr);
        peer.send(&format!("/nick {nick}"));
        peer.expect(&format!("-- you are now known as {nick}"));
        if room != "lobby" {
            peer.send(&format!("/join {room}"));
            peer.expect(&format!("-- you joined #{room}"));
        }
        peer
    }

    /// Sends one line.
    pub fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .expect("peer: write");
    }

    /// Reads lines until one contains `text`, and returns it.
    #[track_caller]
    pub fn expect(&mut self, text: &str) -> String {
        let mut lines = self.lines_until(text);
        lines.pop().expect("lines_until returns at least the line found")
    }

    /// Reads lines until one contains `text`, and returns them all, that
    /// one last.
    #[track_caller]
    pub fn lines_until(&mut self, text: &str) -> Vec<String> {
        let mut seen = Vec::new();
        for _ in 0..MAX_LINES {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => panic!("peer: connection closed while waiting for {text:?}; got {seen:#?}"),
                Ok(_) => {}
                Err(err) => panic!("peer: {err} while waiting for {text:?}; got {seen:#?}"),
            }
            let line = line.trim_end_matches('\n').to_string();
            let found = line.contains(text);
            seen.push(line);
            if found {
                return seen;
            }
        }
        panic!("peer: no {text:?} in {MAX_LINES} lines: {seen:#?}");
    }
}

/// Everything a pipe yields, collected on a thread as it arrives.
pub struct Collector {
    chunks: Receiver<Vec<u8>>,
    /// What arrived so far.
    pub bytes: Vec<u8>,
    /// How far [`Collector::wait_for`] has looked.
    mark: usize,
    /// True once the pipe reached end of file.
    ended: bool,
}

impl Collector {
    /// Starts collecting `pipe`.
    pub fn new(mut pipe: impl Read + Send + 'static) -> Collector {
        let (tx, rx) = bounded(64);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Collector {
            chunks: rx,
            bytes: Vec::new(),
            mark: 0,
            ended: false,
        }
    }

    /// Takes in one more chunk, waiting until `deadline`. False at end of
    /// file or when the deadline passed.
    fn take_chunk(&mut self, deadline: Instant) -> Result<bool, RecvTimeoutError> {
        if self.ended {
            return Ok(false);
        }
        match self.chunks.recv_deadline(deadline) {
            Ok(chunk) => {
                self.bytes.extend_from_slice(&chunk);
                Ok(true)
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.ended = true;
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }

    /// Waits until `text` arrives after what earlier waits found, within
    /// [`WAIT`]. `filter` turns all that arrived into the text searched (it
    /// drops escape sequences, say); it must give a prefix of its later
    /// results while more arrives, as [`text_of`] and [`visible`] do.
    #[track_caller]
    pub fn wait_for_filtered(&mut self, text: &str, filter: impl Fn(&[u8]) -> String) {
        let deadline = Instant::now() + WAIT;
        for _ in 0..100_000 {
            let seen = filter(&self.bytes);
            let tail = seen.get(self.mark..).unwrap_or_default();
            if let Some(at) = tail.find(text) {
                self.mark += at + text.len();
                return;
            }
            match self.take_chunk(deadline) {
                Ok(true) => {}
                Ok(false) => panic!("output ended without {text:?}; got {tail:?}"),
                Err(_) => panic!("no {text:?} within {WAIT:?}; got {tail:?}"),
            }
        }
        panic!("no {text:?} after 100000 chunks");
    }

    /// [`Collector::wait_for_filtered`] on the text as it arrived.
    #[track_caller]
    pub fn wait_for(&mut self, text: &str) {
        self.wait_for_filtered(text, text_of);
    }

    /// Everything, once the pipe has ended; `None` if that takes longer
    /// than until `deadline`.
    pub fn finish(&mut self, deadline: Instant) -> Option<String> {
        for _ in 0..1_000_000 {
            match self.take_chunk(deadline) {
                Ok(true) => {}
                Ok(false) => return Some(String::from_utf8_lossy(&self.bytes).into_owned()),
                Err(_) => return None,
            }
        }
        None
    }
}

/// Runs `command` to its end within [`WAIT`], killing it if it takes
/// longer.
#[track_caller]
pub fn run_with_deadline(command: &mut Command) -> Output {
    try_run_with_deadline(command).unwrap_or_else(|| panic!("{command:?} did not finish within {WAIT:?}"))
}

/// Runs `command` to its end within [`WAIT`]; `None`, and the command
/// killed, if it takes longer.
pub fn try_run_with_deadline(command: &mut Command) -> Option<Output> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    let pid = child.id();
    let (tx, rx) = bounded(1);
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(output) => Some(output.expect("wait for a command")),
        Err(_) => {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            None
        }
    }
}

/// `bytes` as text, invalid UTF-8 replaced, an unfinished character at the
/// end left out (it may be completed by the next chunk).
pub fn text_of(bytes: &[u8]) -> String {
    let complete = match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(err) if err.error_len().is_none() => err.valid_up_to(),
        Err(_) => bytes.len(),
    };
    String::from_utf8_lossy(&bytes[..complete]).into_owned()
}

/// What a terminal shows of `bytes`, roughly: the text with every escape
/// sequence (CSI, OSC, and two-byte ones) and carriage return left out. An
/// unfinished sequence at the end yields nothing.
pub fn visible(bytes: &[u8]) -> String {
    let text = text_of(bytes);
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                // CSI: parameters, then a final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ESC \.
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\r' | '\x07' => {}
            c => out.push(c),
        }
    }
    out
}
