//! Memory under load: the real daemon with 1,000 clients, 100 of which
//! never read, under a steady stream of messages. It samples the daemon's
//! resident memory (VmRSS, and the peak VmHWM, from /proc/PID/status) and
//! the kernel's TCP buffer memory (/proc/net/sockstat), and prints them
//! with the bound the daemon must stay under:
//!
//! ```text
//! RSS at start + clients × (per-client overhead, measured idle) + non-readers × sendq
//! ```
//!
//! Run it on a release build:
//!
//! ```sh
//! cargo build --release --workspace
//! cargo run --release -p chat-tests --example memory
//! ```
//!
//! The daemon runs with `--sendq 65536 --max-per-ip 0 --rate 0`. Every
//! client is in #lobby, where ten of the readers say a line of about 100
//! bytes every 50 ms (200 lines a second, each delivered to all 1,000).
//! That stream alone would take minutes to fill what the kernel buffers
//! for a client that does not read, so one more reader (the "pumper") also
//! sends the non-readers private messages of 1 KiB, round robin, as fast
//! as the daemon confirms them. A non-reader whose queue passes `--sendq`
//! is dropped as a slow consumer; a new one takes its place, so there are
//! always 100 of them. Everything is bounded: the run lasts [`RUN_FOR`].
//!
//! The "idle" figure is taken once every join notice has been read: 1,000
//! arrivals each announced to the whole lobby make half a million lines,
//! and what the allocator kept from that storm is in it. So it overstates
//! the state each client costs; the RSS printed at each quarter of the
//! connections, before the storm is worked through, is closer to that.
//!
//! The benchmark sleeps nowhere: one mio poll drives every socket, with
//! the next timer (a talker's turn, a sample) as its timeout.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::time::{Duration, Instant};

use chat_tests::{Daemon, Waited};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// Clients in all, readers and non-readers.
const CLIENTS: usize = 1_000;
/// Clients that never read a byte.
const SLEEPERS: usize = 100;
/// The daemon's outbound queue limit.
const SENDQ: usize = 64 * 1024;
/// Readers that talk in #lobby.
const TALKERS: usize = 10;
/// How often each talker says a line.
const TALK_EVERY: Duration = Duration::from_millis(50);
/// Bytes of text in a talker's line.
const TALK_BYTES: usize = 100;
/// Bytes of text in a private message to a non-reader.
const PUMP_BYTES: usize = 1024;
/// Private messages the pumper may have sent and not had confirmed.
const PUMP_WINDOW: u64 = 32;
/// How long the stream runs.
const RUN_FOR: Duration = Duration::from_secs(20);
/// How often memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// Most non-readers replaced during a run.
const MAX_REPLACEMENTS: usize = 100_000;
/// The pumper's token; readers use their index.
const PUMPER: usize = 0;

/// A client that reads everything it is sent (and counts the lines).
struct Reader {
    stream: TcpStream,
    /// Lines read so far.
    lines: u64,
    /// Replies to `/msg` read so far (`-> *NICK* ...` or `!! ...`): the
    /// pumper's count of confirmed messages.
    replies: u64,
    /// The start of a line not yet complete, while it could still be a
    /// reply (the first few bytes are all that matter).
    head: Vec<u8>,
    /// Bytes to write, not yet taken by the kernel.
    out: Vec<u8>,
    /// Whether WRITABLE interest is registered.
    wants_write: bool,
    /// Set when the connection failed: why. It is read and written no more.
    lost: Option<io::Error>,
}

impl Reader {
    /// Queues `bytes` and writes what the kernel takes.
    fn send(&mut self, poll: &Poll, token: Token, bytes: &[u8]) {
        if self.lost.is_none() {
            self.out.extend_from_slice(bytes);
            let result = self.flush(poll, token);
            self.check(result);
        }
    }

    /// Records a failure.
    fn check(&mut self, result: io::Result<()>) {
        if let Err(e) = result {
            self.lost.get_or_insert(e);
        }
    }

    fn flush(&mut self, poll: &Poll, token: Token) -> io::Result<()> {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let want = !self.out.is_empty();
        if want != self.wants_write {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            poll.registry().reregister(&mut self.stream, token, interest)?;
            self.wants_write = want;
        }
        Ok(())
    }

    /// Reads everything available, counting lines and replies.
    fn drain(&mut self, buf: &mut [u8]) -> io::Result<()> {
        loop {
            match self.stream.read(buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    for &byte in &buf[..n] {
                        if byte == b'\n' {
                            self.lines += 1;
                            if self.head.starts_with(b"-> *") || self.head.starts_with(b"!! ") {
                                self.replies += 1;
                            }
                            self.head.clear();
                        } else if self.head.len() < 4 {
                            self.head.push(byte);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// A client that never reads: it names itself and then only sits there.
struct Sleeper {
    /// Kept open, never read.
    _stream: StdTcpStream,
    nick: String,
}

impl Sleeper {
    fn connect(addr: SocketAddr, nick: String) -> io::Result<Sleeper> {
        let mut stream = StdTcpStream::connect(addr)?;
        stream.write_all(format!("/nick {nick}\n").as_bytes())?;
        Ok(Sleeper {
            _stream: stream,
            nick,
        })
    }
}

/// What /proc says about the daemon's memory, in KiB.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    rss: u64,
    hwm: u64,
    /// Memory of every TCP socket on the machine, which here is ours.
    tcp_kernel: u64,
}

fn sample(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
            .unwrap_or(0)
    };
    // "TCP: inuse N orphan N tw N alloc N mem PAGES"
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let pages: u64 = sockstat
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "mem").nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    Memory {
        rss: field("VmRSS:"),
        hwm: field("VmHWM:"),
        tcp_kernel: pages * 4,
    }
}

/// Kernel memory of the daemon's own client sockets, in KiB: what they
/// hold queued to send and received but unread, from `ss -tmn` (skmem `w`
/// and `r`), and the largest send buffer (`tb`) any of them has grown to.
/// `None` if `ss` cannot be run.
fn daemon_sockets(port: u16) -> Option<(u64, u64)> {
    let out = std::process::Command::new("ss")
        .args(["-tmnH", "state", "established", "sport", "=", &format!(":{port}")])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let (mut held, mut max_sndbuf) = (0u64, 0u64);
    for skmem in text.split("skmem:(").skip(1) {
        let fields = skmem.split(')').next().unwrap_or("");
        for field in fields.split(',') {
            let digits = field.trim_start_matches(char::is_alphabetic);
            let Ok(value) = digits.parse::<u64>() else { continue };
            match &field[..field.len() - digits.len()] {
                "w" | "r" => held += value,
                "tb" => max_sndbuf = max_sndbuf.max(value),
                _ => {}
            }
        }
    }
    Some((held / 1024, max_sndbuf / 1024))
}

/// The nick in a hub log line `... ADDR NICK: slow consumer, disconnected`.
fn slow_consumer_nick(line: &str) -> Option<&str> {
    let before = line.strip_suffix(": slow consumer, disconnected")?;
    Some(before.rsplit_once(' ')?.1)
}

fn main() -> io::Result<()> {
    let sendq = SENDQ.to_string();
    let mut daemon = Daemon::start(&["--sendq", &sendq, "--max-per-ip", "0", "--rate", "0"]);
    let addr = daemon.addr();
    let pid = daemon.proc.pid();
    let start = sample(pid);
    println!("daemon pid {pid} on {addr}: RSS at start {} KiB", start.rss);

    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut readers: Vec<Reader> = Vec::with_capacity(CLIENTS);
    let mut sleepers: Vec<Sleeper> = Vec::with_capacity(SLEEPERS);

    // Connect everyone, one in ten a sleeper, reading as we go (each
    // arrival is announced to the whole lobby).
    for i in 0..CLIENTS {
        if i % (CLIENTS / SLEEPERS) == CLIENTS / SLEEPERS - 1 {
            sleepers.push(Sleeper::connect(addr, format!("sleeper{}", sleepers.len()))?);
        } else {
            let stream = StdTcpStream::connect(addr)?;
            stream.set_nodelay(true)?;
            stream.set_nonblocking(true)?;
            let mut stream = TcpStream::from_std(stream);
            let token = Token(readers.len());
            poll.registry().register(&mut stream, token, Interest::READABLE)?;
            readers.push(Reader {
                stream,
                lines: 0,
                replies: 0,
                head: Vec::new(),
                out: Vec::new(),
                wants_write: false,
                lost: None,
            });
        }
        if i % 20 == 19 {
            turn(
                &mut poll,
                &mut events,
                &mut readers,
                &mut buf,
                Some(Duration::ZERO),
            )?;
        }
        if (i + 1) % (CLIENTS / 4) == 0 {
            println!("  {} clients connected: RSS {} KiB", i + 1, sample(pid).rss);
        }
    }
    // Let the join notices settle: until a whole poll interval passes with
    // nothing to read (bounded).
    let settle_deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < settle_deadline {
        if turn(
            &mut poll,
            &mut events,
            &mut readers,
            &mut buf,
            Some(Duration::from_millis(200)),
        )? == 0
        {
            break;
        }
    }
    let idle = sample(pid);
    let per_client = idle.rss.saturating_sub(start.rss) as f64 / CLIENTS as f64;
    let bound = start.rss as f64 + CLIENTS as f64 * per_client + (SLEEPERS * SENDQ) as f64 / 1024.0;
    println!(
        "{CLIENTS} clients connected ({} readers, {} non-readers), idle: RSS {} KiB, \
         {per_client:.1} KiB per client; kernel TCP memory {} KiB",
        readers.len(),
        sleepers.len(),
        idle.rss,
        idle.tcp_kernel
    );
    println!(
        "bound: {} + {CLIENTS} × {per_client:.1} + {SLEEPERS} × {} KiB = {bound:.0} KiB",
        start.rss,
        SENDQ / 1024
    );
    println!();
    println!(
        "{:>6} {:>9} {:>9} {:>11} {:>11} {:>10} {:>8} {:>11}",
        "t (s)", "RSS KiB", "peak KiB", "kernel KiB", "daemon-side", "max sndbuf", "dropped", "lines read"
    );

    // The steady stream.
    let began = Instant::now();
    let end = began + RUN_FOR;
    let mut next_talk = began;
    let mut next_sample = began;
    let mut talked = 0u64;
    let mut pumped = 0u64;
    let mut pump_target = 0usize;
    let mut dropped = 0usize;
    let mut readers_dropped = Vec::new();
    let mut rows: Vec<Memory> = Vec::new();
    let mut daemon_side_peak = 0;
    let talk_pad = "t".repeat(TALK_BYTES);
    let pump_pad = "p".repeat(PUMP_BYTES);
    while Instant::now() < end {
        let now = Instant::now();
        if now >= next_talk {
            // The talkers are the readers just after the pumper.
            for (t, talker) in readers.iter_mut().enumerate().skip(PUMPER + 1).take(TALKERS) {
                let line = format!("{talked} {talk_pad}\n");
                talker.send(&poll, Token(t), line.as_bytes());
                talked += 1;
            }
            next_talk += TALK_EVERY;
        }
        // Keep the pumper's window full.
        while readers[PUMPER].lost.is_none() && pumped < readers[PUMPER].replies + PUMP_WINDOW {
            let nick = &sleepers[pump_target % sleepers.len()].nick;
            pump_target += 1;
            let line = format!("/msg {nick} {pump_pad}\n");
            readers[PUMPER].send(&poll, Token(PUMPER), line.as_bytes());
            pumped += 1;
        }
        // Replace the non-readers the daemon dropped.
        for _ in 0..10_000 {
            let Waited::Line(line) = daemon.proc.stderr_line_before(Instant::now()) else { break };
            let Some(nick) = slow_consumer_nick(&line) else { continue };
            if let Some(index) = sleepers.iter().position(|s| s.nick == nick) {
                if dropped < MAX_REPLACEMENTS {
                    sleepers[index] = Sleeper::connect(addr, nick.to_string())?;
                }
                dropped += 1;
            } else {
                readers_dropped.push(line.clone());
            }
        }
        if now >= next_sample {
            let memory = sample(pid);
            let lines: u64 = readers.iter().map(|r| r.lines).sum();
            let (held, max_sndbuf) = daemon_sockets(addr.port()).unwrap_or_default();
            println!(
                "{:>6.1} {:>9} {:>9} {:>11} {:>11} {:>10} {:>8} {:>11}",
                now.duration_since(began).as_secs_f64(),
                memory.rss,
                memory.hwm,
                memory.tcp_kernel,
                held,
                max_sndbuf,
                dropped,
                lines
            );
            rows.push(memory);
            daemon_side_peak = daemon_side_peak.max(held);
            next_sample += SAMPLE_EVERY;
        }
        let timeout = next_talk
            .min(next_sample)
            .saturating_duration_since(Instant::now());
        turn(&mut poll, &mut events, &mut readers, &mut buf, Some(timeout))?;
    }

    let last = sample(pid);
    let half = &rows[rows.len() / 2..];
    let late_max = half.iter().map(|m| m.rss).max().unwrap_or(0);
    let late_min = half.iter().map(|m| m.rss).min().unwrap_or(0);
    let kernel_peak = rows.iter().map(|m| m.tcp_kernel).max().unwrap_or(0);
    println!();
    println!("lobby lines said: {talked} (each to {CLIENTS} clients); private messages pumped: {pumped}");
    println!("non-readers dropped as slow consumers (and replaced): {dropped}");
    println!(
        "readers dropped by the daemon: {} {readers_dropped:?}",
        readers_dropped.len()
    );
    let lost: Vec<String> = readers
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some(format!("reader {i}: {}", r.lost.as_ref()?)))
        .collect();
    println!("readers whose connection failed: {} {lost:?}", lost.len());
    println!("RSS: start {} KiB, idle with {CLIENTS} clients {} KiB, second half of the run {late_min}..{late_max} KiB, peak (VmHWM) {} KiB", start.rss, idle.rss, last.hwm);
    println!(
        "bound {bound:.0} KiB: peak is {:.0}% of it",
        100.0 * last.hwm as f64 / bound
    );
    println!(
        "kernel TCP memory (not in RSS): all sockets idle {} KiB, peak {kernel_peak} KiB; \
         held by the daemon's sockets, peak {daemon_side_peak} KiB",
        idle.tcp_kernel
    );

    drop(sleepers);
    drop(readers);
    daemon.proc.signal("TERM");
    let status = daemon.proc.wait_exit();
    println!("daemon exited: {status}");
    Ok(())
}

/// One poll: reads every ready reader, writes every writable one. Returns
/// how many events there were.
fn turn(
    poll: &mut Poll,
    events: &mut Events,
    readers: &mut [Reader],
    buf: &mut [u8],
    timeout: Option<Duration>,
) -> io::Result<usize> {
    if let Err(e) = poll.poll(events, timeout) {
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    let mut count = 0;
    for event in events.iter() {
        count += 1;
        let Token(index) = event.token();
        let Some(reader) = readers.get_mut(index).filter(|r| r.lost.is_none()) else { continue };
        if event.is_readable() {
            let result = reader.drain(buf);
            reader.check(result);
        }
        if event.is_writable() && reader.lost.is_none() {
            let result = reader.flush(poll, event.token());
            reader.check(result);
        }
    }
    Ok(count)
}
