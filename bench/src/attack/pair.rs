//! The pair of good users: two clients in a room of their own who exchange
//! timestamped lines while an attack runs, so that the attack's cost to
//! everyone else is measured as users feel it, as message latency.
//!
//! Each side joins the room from its own loopback address
//! ([`super::addrs::PAIR`], [`super::addrs::PAIR_B`]); one writer thread
//! sends, alternately from each side, the bench's 64-byte stamped line
//! (`t=<ns> s=<side> n=<seq>`, [`crate::payload`]) at a fixed rate, well
//! within the daemon's default flood control; a reader thread per side
//! times each line from the other side against the same clock. Every send
//! time and every delivery is kept (20 lines a second for a minute is a
//! few thousand), so the latency of any stretch of the attack (before,
//! during, after) is computed afterwards from the lines *sent* in it, and
//! a line that never came is counted as lost, not left out quietly.
//!
//! The readers also note `-- server shutting down` and how their
//! connection ended (EOF, reset, or still open), which is what the
//! shutdown attack reports. Every wait is bounded by a read timeout and a
//! lifetime.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::Serialize;
use socket2::{Domain, Socket, Type};

use super::addrs;
use crate::client::split_lines;
use crate::error::{Error, Result};
use crate::payload::{self, Stamp};
use crate::stats::Latency;

/// How long connecting and joining may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A reader looks at its stop flag this often.
const READ_TICK: Duration = Duration::from_millis(50);
/// A write that blocks this long counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// The line the daemon sends everyone when it stops.
const SHUTTING_DOWN: &[u8] = b"-- server shutting down";

/// How one side's connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Still open when the pair was finished.
    Open,
    /// The server closed it (EOF).
    Eof,
    /// Reset by the server.
    Reset,
    /// Another read error.
    Error,
}

/// What one side saw.
#[derive(Debug, Clone, Serialize)]
pub struct SideOutcome {
    /// Lines it sent.
    pub sent: u64,
    /// Lines of the other side it received (distinct).
    pub received: u64,
    /// It read `-- server shutting down`.
    pub saw_shutdown: bool,
    /// How its connection ended.
    pub ending: Ending,
    /// When it ended, seconds since the attack's base, if it did.
    pub ended_at_s: Option<f64>,
    /// The first write error, if any.
    pub write_error: Option<String>,
}

/// One side's reader, as it runs.
#[derive(Debug, Default)]
struct SideState {
    /// Distinct lines of the other side received.
    received: AtomicU64,
    /// Read `-- server shutting down`.
    saw_shutdown: AtomicBool,
    /// Its reader has ended (EOF or error).
    ended: AtomicBool,
}

/// What a reader hands back.
#[derive(Debug)]
struct ReaderResult {
    /// (send time ns, latency ns) of each delivery.
    samples: Vec<(u64, u64)>,
    ending: Ending,
    ended_at: Option<u64>,
}

/// The pair, running.
pub struct Pair {
    base: Instant,
    stop_send: Arc<AtomicBool>,
    stop_read: Arc<AtomicBool>,
    /// Send times (ns since base) per side, in order.
    sends: Arc<Mutex<[Vec<u64>; 2]>>,
    /// First write error per side.
    write_errors: Arc<Mutex<[Option<String>; 2]>>,
    sides: [Arc<SideState>; 2],
    writer: Option<JoinHandle<()>>,
    readers: Vec<JoinHandle<ReaderResult>>,
}

/// Latency of the pair's lines sent in one stretch of time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency3 {
    /// Lines sent in the stretch.
    pub sent: u64,
    /// Of those, delivered.
    pub delivered: u64,
    /// Of those, never delivered.
    pub lost: u64,
    /// Median latency of the delivered ones, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Slowest, ms.
    pub max_ms: Option<f64>,
}

/// What the pair saw, once finished.
#[derive(Debug, Clone)]
pub struct PairOutcome {
    /// Per side.
    pub sides: [SideOutcome; 2],
    /// Send times of every line, both sides.
    sends: Vec<u64>,
    /// (send time, latency) of every delivery, both sides.
    samples: Vec<(u64, u64)>,
}

impl PairOutcome {
    /// Latency of the lines sent between `from_ns` and `to_ns` (since the
    /// attack's base).
    pub fn window(&self, from_ns: u64, to_ns: u64) -> Latency3 {
        let inside = |t: u64| t >= from_ns && t < to_ns;
        let sent = self.sends.iter().filter(|t| inside(**t)).count() as u64;
        let mut hist = Latency::new();
        let mut delivered = 0;
        for (_, lat) in self.samples.iter().filter(|(t, _)| inside(*t)) {
            delivered += 1;
            hist.record(*lat);
        }
        let summary = hist.summary();
        // Microseconds to milliseconds, three decimals.
        let ms = |us: f64| (delivered > 0).then(|| us.round() / 1000.0);
        Latency3 {
            sent,
            delivered,
            lost: sent.saturating_sub(delivered),
            p50_ms: ms(summary.p50_us),
            p99_ms: ms(summary.p99_us),
            max_ms: ms(summary.max_us),
        }
    }

    /// Latency of every line sent.
    pub fn all(&self) -> Latency3 {
        self.window(0, u64::MAX)
    }
}

impl Pair {
    /// Connects both sides, joins them to `room`, and starts sending
    /// `rate` lines a second in all (half from each side). The threads
    /// end by themselves after `lifetime`.
    ///
    /// # Errors
    /// When a side cannot connect or join within 10 s.
    pub fn start(addr: SocketAddr, room: &str, rate: f64, base: Instant, lifetime: Duration) -> Result<Pair> {
        let streams = [
            join(addr, addrs::PAIR, room).map_err(|e| Error::msg(format!("pair, first side: {e}")))?,
            join(addr, addrs::PAIR_B, room).map_err(|e| Error::msg(format!("pair, second side: {e}")))?,
        ];
        let mut pair = Pair {
            base,
            stop_send: Arc::new(AtomicBool::new(false)),
            stop_read: Arc::new(AtomicBool::new(false)),
            sends: Arc::new(Mutex::new([Vec::new(), Vec::new()])),
            write_errors: Arc::new(Mutex::new([None, None])),
            sides: [Arc::new(SideState::default()), Arc::new(SideState::default())],
            writer: None,
            readers: Vec::new(),
        };
        let deadline = Instant::now() + lifetime;
        for (side, stream) in streams.iter().enumerate() {
            let reader = stream.try_clone()?;
            reader.set_read_timeout(Some(READ_TICK))?;
            let state = Arc::clone(pair.sides.get(side).ok_or_else(|| Error::msg("side"))?);
            let stop = Arc::clone(&pair.stop_read);
            let handle = thread::Builder::new()
                .name(format!("pair-read-{side}"))
                .spawn(move || read_side(reader, side, state, stop, base, deadline))
                .map_err(|e| Error::msg(format!("cannot start a pair reader: {e}")))?;
            pair.readers.push(handle);
        }
        let [a, b] = streams;
        a.set_write_timeout(Some(WRITE_TIMEOUT))?;
        b.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let interval = Duration::from_secs_f64(1.0 / rate.clamp(0.1, 1000.0));
        let (stop, sends, errors) = (
            Arc::clone(&pair.stop_send),
            Arc::clone(&pair.sends),
            Arc::clone(&pair.write_errors),
        );
        let writer = thread::Builder::new()
            .name("pair-write".to_string())
            .spawn(move || write_both([a, b], interval, stop, sends, errors, base, deadline))
            .map_err(|e| Error::msg(format!("cannot start the pair writer: {e}")))?;
        pair.writer = Some(writer);
        Ok(pair)
    }

    /// Nanoseconds since the attack's base.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Lines sent so far, both sides.
    pub fn sent(&self) -> u64 {
        self.sends
            .lock()
            .map_or(0, |s| s.iter().map(|v| v.len() as u64).sum())
    }

    /// Lines delivered so far, both sides.
    pub fn delivered(&self) -> u64 {
        self.sides
            .iter()
            .map(|s| s.received.load(Ordering::Relaxed))
            .sum()
    }

    /// How far behind the daemon is, as the pair sees it now: the age of
    /// the oldest line sent and not yet delivered (lines of one side
    /// arrive in order), the older of the two sides; zero when every line
    /// sent has arrived.
    pub fn backlog(&self) -> Duration {
        let now = self.now_ns();
        let Ok(sends) = self.sends.lock() else {
            return Duration::ZERO;
        };
        // Side `s` receives the other side's lines.
        let oldest = (0..2)
            .filter_map(|side| {
                let received = self.sides.get(side)?.received.load(Ordering::Relaxed);
                let other = sends.get(1 - side)?;
                other.get(usize::try_from(received).ok()?).copied()
            })
            .min();
        oldest.map_or(Duration::ZERO, |t| Duration::from_nanos(now.saturating_sub(t)))
    }

    /// True once both readers have ended (EOF or error).
    pub fn both_ended(&self) -> bool {
        self.sides.iter().all(|s| s.ended.load(Ordering::Relaxed))
    }

    /// Stops sending (and waits for the writer to return).
    pub fn stop_sending(&mut self) {
        self.stop_send.store(true, Ordering::Relaxed);
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }

    /// Waits until every line sent has been delivered, or both readers
    /// ended, or `timeout`.
    pub fn wait_delivered(&self, timeout: Duration) -> bool {
        super::wait_until(timeout, || self.delivered() >= self.sent() || self.both_ended())
    }

    /// Stops everything and says what each side saw.
    pub fn finish(mut self) -> PairOutcome {
        self.stop_sending();
        self.stop_read.store(true, Ordering::Relaxed);
        let results: Vec<ReaderResult> = self.readers.drain(..).filter_map(|h| h.join().ok()).collect();
        let sends = self.sends.lock().map(|s| s.clone()).unwrap_or_default();
        let errors = self.write_errors.lock().map(|e| e.clone()).unwrap_or_default();
        let mut samples = Vec::new();
        let mut sides = Vec::new();
        for side in 0..2 {
            let result = results.get(side);
            let state = self.sides.get(side);
            sides.push(SideOutcome {
                sent: sends.get(side).map_or(0, |v| v.len() as u64),
                received: state.map_or(0, |s| s.received.load(Ordering::Relaxed)),
                saw_shutdown: state.is_some_and(|s| s.saw_shutdown.load(Ordering::Relaxed)),
                ending: result.map_or(Ending::Error, |r| r.ending),
                ended_at_s: result.and_then(|r| r.ended_at).map(|ns| ns as f64 / 1e9),
                write_error: errors.get(side).cloned().flatten(),
            });
            if let Some(r) = result {
                samples.extend_from_slice(&r.samples);
            }
        }
        let [a, b]: [SideOutcome; 2] = match sides.try_into() {
            Ok(pair) => pair,
            Err(_) => empty_sides(),
        };
        PairOutcome {
            sides: [a, b],
            sends: sends.iter().flatten().copied().collect(),
            samples,
        }
    }
}

/// Two sides that saw nothing: what `finish` falls back on if it did not
/// build two (it always does; this keeps a panic path out of it).
fn empty_sides() -> [SideOutcome; 2] {
    let side = SideOutcome {
        sent: 0,
        received: 0,
        saw_shutdown: false,
        ending: Ending::Error,
        ended_at_s: None,
        write_error: None,
    };
    [side.clone(), side]
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.stop_send.store(true, Ordering::Relaxed);
        self.stop_read.store(true, Ordering::Relaxed);
    }
}

/// Connects from `source`, reads the welcome, joins `room` and reads
/// until `-- you joined`.
fn join(addr: SocketAddr, source: Ipv4Addr, room: &str) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    socket.connect_timeout(&addr.into(), SETUP_TIMEOUT)?;
    socket.set_tcp_nodelay(true)?;
    let mut stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(READ_TICK))?;
    stream.write_all(format!("/join {room}\n").as_bytes())?;
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let mut partial = Vec::new();
    let mut buf = [0u8; 4096];
    let mut joined = false;
    // Bounded by the deadline.
    while !joined {
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no `-- you joined` within 10 s",
            ));
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed while joining",
                ))
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e),
        };
        let mut refusal = None;
        split_lines(&mut partial, buf.get(..n).unwrap_or_default(), |line| {
            if line.starts_with(b"-- you joined") {
                joined = true;
            } else if line.starts_with(b"!!") {
                refusal = Some(String::from_utf8_lossy(line).into_owned());
            }
        });
        if let Some(line) = refusal {
            return Err(io::Error::other(format!("refused: {line}")));
        }
    }
    Ok(stream)
}

/// The writer: one line every `interval`, alternating sides, until told to
/// stop or `deadline`.
fn write_both(
    mut streams: [TcpStream; 2],
    interval: Duration,
    stop: Arc<AtomicBool>,
    sends: Arc<Mutex<[Vec<u64>; 2]>>,
    errors: Arc<Mutex<[Option<String>; 2]>>,
    base: Instant,
    deadline: Instant,
) {
    let mut seq = [0u64; 2];
    let mut failed = [false; 2];
    let mut next = Instant::now();
    let mut line = Vec::with_capacity(payload::LINE_LEN);
    let mut turn: usize = 0;
    // One line per turn, until stopped or the deadline.
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let side = turn % 2;
        turn = turn.wrapping_add(1);
        if !failed.get(side).copied().unwrap_or(true) {
            let t = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let n = seq.get(side).copied().unwrap_or(0);
            line.clear();
            payload::write_line(
                &mut line,
                Stamp {
                    t,
                    sender: side,
                    seq: n,
                },
            );
            let written = streams.get_mut(side).map(|s| s.write_all(&line));
            match written {
                Some(Ok(())) => {
                    if let Some(s) = seq.get_mut(side) {
                        *s += 1;
                    }
                    if let Ok(mut sends) = sends.lock() {
                        if let Some(v) = sends.get_mut(side) {
                            v.push(t);
                        }
                    }
                }
                Some(Err(e)) => {
                    if let Some(f) = failed.get_mut(side) {
                        *f = true;
                    }
                    if let Ok(mut errors) = errors.lock() {
                        if let Some(slot) = errors.get_mut(side) {
                            slot.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
                None => {}
            }
        }
        // A fixed schedule: the pause is the measurement's rate.
        next += interval;
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

/// A reader: times each line of the other side until told to stop, the
/// connection ends, or `deadline`.
fn read_side(
    mut stream: TcpStream,
    side: usize,
    state: Arc<SideState>,
    stop: Arc<AtomicBool>,
    base: Instant,
    deadline: Instant,
) -> ReaderResult {
    let mut samples = Vec::new();
    let mut partial = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    // The other side's sequence numbers: each line counted once.
    let mut seen = crate::stats::SeqTrack::default();
    let now_ns = || u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let mut ending = Ending::Open;
    // Bounded by the stop flag, the deadline, and the connection's end.
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                ending = Ending::Eof;
                break;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                ending = if e.kind() == io::ErrorKind::ConnectionReset {
                    Ending::Reset
                } else {
                    Ending::Error
                };
                break;
            }
        };
        let now = now_ns();
        split_lines(&mut partial, buf.get(..n).unwrap_or_default(), |line| {
            if line.starts_with(SHUTTING_DOWN) {
                state.saw_shutdown.store(true, Ordering::Relaxed);
            }
            let Some(stamp) = payload::parse_delivery(line) else {
                return;
            };
            if stamp.sender != side && seen.record(stamp.seq) {
                samples.push((stamp.t, now.saturating_sub(stamp.t)));
                state.received.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let ended_at = (ending != Ending::Open).then(now_ns);
    if ending != Ending::Open {
        state.ended.store(true, Ordering::Relaxed);
    }
    ReaderResult {
        samples,
        ending,
        ended_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_the_lines_sent_in_it_and_those_lost() {
        let outcome = PairOutcome {
            sides: empty_sides(),
            sends: vec![10, 20, 30, 40],
            samples: vec![(10, 1_000_000), (20, 3_000_000), (40, 2_000_000)],
        };
        let early = outcome.window(0, 25);
        assert_eq!((early.sent, early.delivered, early.lost), (2, 2, 0));
        // The histogram keeps three significant digits.
        assert!((early.max_ms.unwrap() - 3.0).abs() < 0.01, "{early:?}");
        let late = outcome.window(25, 100);
        assert_eq!((late.sent, late.delivered, late.lost), (2, 1, 1));
        assert!((late.p50_ms.unwrap() - 2.0).abs() < 0.01, "{late:?}");
        let none = outcome.window(100, 200);
        assert_eq!((none.sent, none.p50_ms), (0, None));
    }
}
