//! The delivery path allocates per event, never per recipient: proved with
//! a counting allocator.
//!
//! This file is its own test binary, so it installs its own global
//! allocator: [`System`] wrapped to count every allocation (and every
//! reallocation that grows) in a static atomic, allocating nothing itself.
//! The server library runs in this process, so its threads' allocations
//! are counted along with the test's.
//!
//! The method. One sender says [`LINES`] chat lines into a room of `R`
//! receivers, and the allocations made from the first line sent until
//! every receiver has read every line are counted. While that window is
//! open the test's own threads allocate nothing: the sender writes slices
//! of one prebuilt buffer, the receivers read into a stack buffer and only
//! count lines (newlines, or WebSocket frames), and they report progress through a mutex and a condvar
//! (futexes, no allocation). So what is counted is the server's: decoding
//! each line, the hub's event, the channel messages, encoding, queueing
//! and writing to `R` sockets.
//!
//! Some of that is allowed to allocate *per event* (the decoded line, the
//! hub's event and its recipient list): that is a constant per line,
//! whatever the room's size. What must not happen is an allocation *per
//! recipient* (a copy of the encoded line for each socket, a boxed
//! message per queue): that is a cost per line that grows with `R`. The
//! test measures two room sizes and divides the difference in allocations
//! by the difference in deliveries:
//!
//! ```text
//! marginal = (allocs(R_big) - allocs(R_small)) / (LINES * (R_big - R_small))
//! ```
//!
//! Per-event allocations cancel out; one allocation per recipient would
//! make the marginal at least 1. The bound, [`MARGINAL_BOUND`], is far
//! below 1 but leaves room for per-event counts that vary a little with
//! how the server happens to batch (a queue that grows past its high-water
//! mark, a channel block). It is tight enough to catch a recipient *list*
//! grown by doubling (log2(R) reallocations per event, a marginal of about
//! 0.035 between 10 and 100 members), which this test once found in the
//! hub.
//!
//! The measurement runs with one I/O thread and with three, since with
//! several the hub splits each delivery by thread; and in a room of line
//! clients, and in one where the receivers take turns speaking the line
//! protocol, IRC, the test front end and WebSocket, since an event must be
//! encoded once per front end per I/O thread, not once per recipient.
//!
//! Before the window, each room is warmed up with as many lines as are
//! measured, so every buffer (output queues, channel blocks, scratch
//! vectors) has reached its steady-state capacity. Joins are not announced
//! (`quiet_above: 1`), so the only lines the receivers read are the
//! welcome (an IRC client's registration and JOIN, a WebSocket's upgrade)
//! and the chat lines, and
//! the receivers check that each line they read is a chat line (`<nick>
//! text`, or IRC's `:nick!... PRIVMSG`).
//!
//! Every wait has a deadline (socket timeouts, a condvar wait with a
//! timeout), every loop is bounded, nothing sleeps, and everything is on
//! loopback.

// A test fails by panicking; clippy.toml allows these in #[test] functions
// but not in the helpers of an integration test file, so say it here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chat_server::frontend::Protocol;
use chat_tests::{parse_welcome, Config, TestServer, TIMEOUT};

// ---------------------------------------------------------------------------
// The counting allocator.

/// Allocations made by the whole process (every thread) since it started.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Bytes those allocations asked for (for a growing reallocation, the
/// growth).
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

/// [`System`], counting. It allocates nothing of its own, so counting
/// cannot recurse.
struct CountingAllocator;

impl CountingAllocator {
    fn count(bytes: usize) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

// The one unsafe item in the tests: a global allocator must be an unsafe
// impl. Each method only counts and forwards its arguments unchanged to
// `System`, so `System` upholds the contract the caller relies on.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size());
        // SAFETY: the caller's guarantees about `layout` are passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Only growth counts: shrinking never asks for new memory.
        if new_size > layout.size() {
            Self::count(new_size - layout.size());
        }
        // SAFETY: `ptr` was allocated by this allocator (so by `System`)
        // with `layout`, as the caller guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The counters now: (allocations, bytes).
fn allocations_so_far() -> (u64, u64) {
    (
        ALLOCATIONS.load(Ordering::SeqCst),
        ALLOCATED_BYTES.load(Ordering::SeqCst),
    )
}

// ---------------------------------------------------------------------------
// What is measured.

/// Chat lines said in each phase (warm-up, then measurement).
const LINES: usize = 2_000;

/// The room sizes compared: receivers, besides the sender. An event is
/// encoded once per front end per I/O thread that has a recipient of it,
/// a per-event cost that cancels out only if both rooms have every front
/// end on every thread. Connections go to the thread with the fewest, so
/// in turn while none leaves (the test opens none that it closes again):
/// 24 receivers taking turns of 4 front ends on 3 threads put two of each
/// front end on each thread. An uncovered pair costs 3 allocations per
/// line in the big room alone, a marginal of 0.04.
const SMALL_ROOM: usize = 24;
const BIG_ROOM: usize = 100;

/// The most allocations per extra recipient per line the test accepts.
/// One allocation per recipient would give at least 1; per-event
/// allocations give 0 give or take batching noise (0.000 to 0.002
/// measured); a recipient list grown by doubling gives about
/// log2(100/10) / 90 = 0.035 (measured 0.033 to 0.036 before the hub
/// presized its lists).
const MARGINAL_BOUND: f64 = 0.01;

/// The text of every chat line. The server sends `<guestN> ` before it.
const TEXT: &[u8] = b"allocation free fan-out\n";

/// How long one phase may take, from the first line sent until every
/// receiver has read the last: generous for a debug build on a loaded
/// machine (a run takes well under a second).
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);

/// The server's configuration, with `threads` I/O threads: everything the
/// test does not care about is the default, so fields added later keep
/// their defaults.
fn server_config(threads: usize) -> Config {
    Config {
        threads,
        // No flood control: the sender says its lines as fast as it can.
        rate: 0,
        // A hundred connections from one address at once.
        max_per_ip: 0,
        max_per_net: 0,
        connect_rate: 0,
        // Room for any backlog: no receiver is dropped as slow.
        sendq: 16 * 1024 * 1024,
        // Joins in a room of more than one are not announced, so the only
        // lines a receiver reads are its welcome and the chat lines.
        quiet_above: 1,
        stats_interval: None,
        metrics_listen: None,
        ..Config::default()
    }
}

/// The allocations counted in one room.
#[derive(Debug, Clone, Copy)]
struct Measurement {
    /// Receivers in the room (the sender not counted).
    receivers: usize,
    /// Lines said.
    lines: usize,
    /// Allocations counted while they were delivered.
    allocations: u64,
    /// Bytes those allocations asked for.
    bytes: u64,
}

impl Measurement {
    fn deliveries(&self) -> usize {
        self.lines * self.receivers
    }
}

// ---------------------------------------------------------------------------
// The receivers.

/// Why a receiver stopped short. Plain data, so recording it allocates
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// A read failed (a timeout is `WouldBlock` or `TimedOut`).
    Read(io::ErrorKind),
    /// The server closed the connection.
    Eof,
    /// A line did not start with `<`: not a chat line.
    NotAChatLine,
    /// More lines came than were due by a checkpoint.
    TooManyLines,
    /// More reads than bytes due: the stream never reached the checkpoint.
    TooManyReads,
}

/// What the receivers tell the main thread.
#[derive(Debug, Default)]
struct Progress {
    /// For each checkpoint, how many receivers have reached it.
    reached: [usize; CHECKPOINTS],
    /// The first receiver that failed, and why.
    failure: Option<(usize, Failure)>,
}

/// The checkpoints: after the warm-up, after the measurement.
const CHECKPOINTS: usize = 2;

/// Progress, guarded, with a condvar that is notified on every change.
#[derive(Default)]
struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Shared {
    fn update(&self, change: impl FnOnce(&mut Progress)) {
        let mut progress = self.progress.lock().unwrap();
        change(&mut progress);
        self.changed.notify_all();
    }

    /// Waits until `receivers` receivers have reached `checkpoint`.
    #[track_caller]
    fn wait_for(&self, checkpoint: usize, receivers: usize) {
        let deadline = Instant::now() + PHASE_TIMEOUT;
        let mut progress = self.progress.lock().unwrap();
        // Bounded: each pass waits until the deadline at most, and the
        // loop ends once it has passed.
        loop {
            if let Some((index, failure)) = progress.failure {
                panic!("receiver {index} failed before checkpoint {checkpoint}: {failure:?}");
            }
            let reached = progress.reached[checkpoint];
            if reached >= receivers {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "only {reached} of {receivers} receivers reached checkpoint {checkpoint} \
                     within {PHASE_TIMEOUT:?}"
                );
            }
            progress = self.changed.wait_timeout(progress, deadline - now).unwrap().0;
        }
    }
}

/// Bytes a chat line may take at most (`<guestNNNNN> ` and the text, or
/// IRC's `:guestN!guestN@chat-server PRIVMSG #lobby :` and the text): a
/// read returns at least one byte, so the reads needed to reach a
/// checkpoint are bounded by the bytes due.
const MAX_LINE_BYTES: usize = 96 + TEXT.len();

/// What starts every line a receiver of `protocol` reads: a chat line's
/// `<`, after the test protocol's mark; IRC's source, the sender's guest
/// nick.
fn line_start(protocol: Protocol) -> &'static [u8] {
    match protocol {
        Protocol::Line => b"<",
        Protocol::Test => b"test: <",
        Protocol::Irc => b":guest",
        Protocol::Web => b"<",
    }
}

/// Counts the lines in what a receiver reads, checking that each starts
/// as a chat line does, without allocating.
enum LineCounter {
    /// Lines that end with a newline (the line protocol, IRC, the test
    /// front end): `column` is how far into the current line.
    Newlines { column: usize },
    /// One line per WebSocket frame, as the server sends them: unmasked,
    /// text, FIN set. `head` is the frame's header as far as read, `left`
    /// the payload bytes still to come, `column` how far into it.
    Frames {
        head: [u8; 4],
        head_len: usize,
        left: usize,
        column: usize,
    },
}

impl LineCounter {
    fn new(protocol: Protocol) -> LineCounter {
        match protocol {
            Protocol::Web => LineCounter::Frames {
                head: [0; 4],
                head_len: 0,
                left: 0,
                column: 0,
            },
            _ => LineCounter::Newlines { column: 0 },
        }
    }

    /// Takes one byte; says whether it ended a line.
    fn feed(&mut self, byte: u8, start: &[u8]) -> Result<bool, Failure> {
        match self {
            LineCounter::Newlines { column } => {
                if *column < start.len() && byte != start[*column] {
                    return Err(Failure::NotAChatLine);
                }
                if byte == b'\n' {
                    *column = 0;
                    return Ok(true);
                }
                *column += 1;
                Ok(false)
            }
            LineCounter::Frames {
                head,
                head_len,
                left,
                column,
            } => {
                if *left == 0 {
                    head[*head_len] = byte;
                    *head_len += 1;
                    // A text frame, FIN set, unmasked, shorter than 64 KiB.
                    let length = match (*head_len, head[0], head[1]) {
                        (1, 0x81, _) => return Ok(false),
                        (2, _, 126) | (3, _, 126) => return Ok(false),
                        (2, _, n @ 1..=125) => usize::from(n),
                        (4, _, 126) => usize::from(u16::from_be_bytes([head[2], head[3]])),
                        _ => return Err(Failure::NotAChatLine),
                    };
                    *head_len = 0;
                    *left = length;
                    *column = 0;
                    return Ok(false);
                }
                if *column < start.len() && byte != start[*column] {
                    return Err(Failure::NotAChatLine);
                }
                *column += 1;
                *left -= 1;
                Ok(*left == 0)
            }
        }
    }
}

/// Reads from `stream` until `LINES` lines have come, for each
/// checkpoint in turn, telling `shared` as each is reached. Allocates
/// nothing.
fn receive(mut stream: TcpStream, protocol: Protocol, shared: &Shared) -> Result<(), Failure> {
    let mut buf = [0_u8; 16 * 1024];
    let mut lines = 0_usize;
    let start = line_start(protocol);
    let mut counter = LineCounter::new(protocol);
    for checkpoint in 0..CHECKPOINTS {
        let due = (checkpoint + 1) * LINES;
        let mut reads = 0_usize;
        while lines < due {
            reads += 1;
            if reads > (due - lines) * MAX_LINE_BYTES {
                return Err(Failure::TooManyReads);
            }
            let n = match stream.read(&mut buf) {
                Ok(0) => return Err(Failure::Eof),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::Read(e.kind())),
            };
            for &byte in &buf[..n] {
                if counter.feed(byte, start)? {
                    lines += 1;
                }
            }
        }
        if lines > due {
            return Err(Failure::TooManyLines);
        }
        shared.update(|p| p.reached[checkpoint] += 1);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The room.

/// Connects to `addr`, whose clients speak `protocol`, and reads the
/// welcome, one byte at a time so that nothing after it is taken from the
/// socket. Returns the stream, with timeouts set and Nagle off.
#[track_caller]
fn connect(addr: SocketAddr, protocol: Protocol, index: usize) -> TcpStream {
    if protocol == Protocol::Web {
        // Upgraded and welcomed on a connection of its own making: the
        // upgrade's answer and the welcome frame are read exactly, so
        // nothing after them is taken. (Opening a plain connection first
        // and dropping it, as this once did, let its late release move
        // later connections to other I/O threads, which sometimes left a
        // front end without a recipient on a thread in the small room.)
        let stream = chat_tests::web::WsClient::connect_guest(addr).into_stream();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        return stream;
    }
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    if protocol == Protocol::Irc {
        // Registered and in the lobby once the end of its names comes.
        let register = format!("NICK irc{index}\r\nUSER irc 0 * :receiver\r\nJOIN #lobby\r\n");
        stream.write_all(register.as_bytes()).unwrap();
        // Bounded: registration and a JOIN are far shorter than 64 lines.
        for _ in 0..64 {
            let line = read_line(&mut stream);
            if line.contains(" 366 ") {
                return stream;
            }
            assert!(!line.starts_with("ERROR"), "refused: {line}");
        }
        panic!("no end of NAMES after 64 lines");
    }
    let line = read_line(&mut stream);
    let line = match protocol {
        Protocol::Test => line.strip_prefix("test: ").unwrap_or_default(),
        _ => line.as_str(),
    };
    assert!(parse_welcome(line).is_some(), "expected a welcome, got {line:?}");
    stream
}

/// Reads one line, a byte at a time so that nothing after it is taken
/// from the socket.
#[track_caller]
fn read_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0_u8];
    // Bounded: a welcome or a reply is far shorter than 1 KiB.
    for _ in 0..1024 {
        match stream.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => break,
            Ok(1) => line.push(byte[0]),
            Ok(_) => panic!("the server closed before the line ended: {line:?}"),
            Err(e) => panic!("no line: {e} (read so far: {line:?})"),
        }
    }
    String::from_utf8(line).expect("a UTF-8 line")
}

/// Says `LINES` lines from `sender`, one write each, from one prebuilt
/// buffer: allocates nothing.
fn say_lines(sender: &mut TcpStream, said: &[u8]) {
    for line in said.chunks(TEXT.len()) {
        sender.write_all(line).expect("send a chat line");
    }
}

/// Starts a server, fills a room with `receivers` and a sender, warms it up
/// and counts the allocations made while [`LINES`] lines are delivered.
/// With `mixed`, the receivers take turns speaking the line protocol, IRC,
/// the test protocol and WebSocket: a room of four front ends, each line
/// encoded once per front end per I/O thread.
fn measure(receivers: usize, threads: usize, mixed: bool) -> Measurement {
    let (test_listen, irc_listen, web_listen) = if mixed {
        (
            vec![chat_tests::loopback_any_port()],
            vec![chat_tests::loopback_any_port()],
            vec![chat_tests::loopback_any_port()],
        )
    } else {
        (Vec::new(), Vec::new(), Vec::new())
    };
    let server = TestServer::start(Config {
        test_listen,
        irc_listen,
        web_listen,
        ..server_config(threads)
    });
    let addr = server.addr();
    let protocol_of = |index: usize| match index % 4 {
        1 if mixed => Protocol::Irc,
        2 if mixed => Protocol::Test,
        3 if mixed && std::env::var_os("NOWEB").is_none() => Protocol::Web,
        _ => Protocol::Line,
    };

    // Receivers first, then the sender: all in #lobby, nothing announced.
    let streams: Vec<(TcpStream, Protocol)> = (0..receivers)
        .map(|index| {
            let protocol = protocol_of(index);
            let addr = match protocol {
                Protocol::Line => addr,
                Protocol::Irc => server.irc_addr(),
                Protocol::Test => server.test_protocol_addr(),
                Protocol::Web => server.web_addr(),
            };
            (connect(addr, protocol, index), protocol)
        })
        .collect();
    let mut sender = connect(addr, Protocol::Line, receivers);
    let said = TEXT.repeat(LINES);

    let shared = Arc::new(Shared::default());
    let threads: Vec<JoinHandle<Result<(), Failure>>> = streams
        .into_iter()
        .enumerate()
        .map(|(index, (stream, protocol))| {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("receiver-{index}"))
                .spawn(move || {
                    let result = receive(stream, protocol, &shared);
                    if let Err(failure) = result {
                        shared.update(|p| {
                            p.failure.get_or_insert((index, failure));
                        });
                    }
                    result
                })
                .expect("spawn a receiver")
        })
        .collect();

    // Warm-up: the same lines, so every buffer reaches the capacity the
    // measured phase needs.
    say_lines(&mut sender, &said);
    shared.wait_for(0, receivers);

    let (allocations_before, bytes_before) = allocations_so_far();
    say_lines(&mut sender, &said);
    shared.wait_for(1, receivers);
    let (allocations_after, bytes_after) = allocations_so_far();

    for (index, thread) in threads.into_iter().enumerate() {
        let result = thread.join().expect("a receiver thread panicked");
        assert_eq!(result, Ok(()), "receiver {index}");
    }
    // Every client is gone (the receivers' streams closed with their
    // threads), so the shutdown has no one to wait for.
    drop(sender);
    drop(server);

    Measurement {
        receivers,
        lines: LINES,
        allocations: allocations_after - allocations_before,
        bytes: bytes_after - bytes_before,
    }
}

/// Checks the counting allocator is the one in use and counts what it
/// should, so that a zero below means "nothing allocated", not "nothing
/// counted".
#[track_caller]
fn check_the_allocator_counts() {
    let (before, bytes_before) = allocations_so_far();
    let boxed = std::hint::black_box(Box::new([0_u8; 100]));
    let (after, bytes_after) = allocations_so_far();
    drop(boxed);
    assert!(after > before, "the counting allocator did not count a Box");
    assert!(
        bytes_after - bytes_before >= 100,
        "the counting allocator missed bytes"
    );
}

/// The table of figures, on stderr (shown with `--nocapture`).
fn report(measurements: &[Measurement], marginal: f64) {
    eprintln!();
    eprintln!(
        "{:>6} {:>7} {:>10} {:>12} {:>12} {:>12} {:>14}",
        "room", "lines", "deliveries", "allocations", "allocs/line", "allocs/deliv", "bytes/line"
    );
    for m in measurements {
        eprintln!(
            "{:>6} {:>7} {:>10} {:>12} {:>12.3} {:>12.5} {:>14.1}",
            m.receivers,
            m.lines,
            m.deliveries(),
            m.allocations,
            m.allocations as f64 / m.lines as f64,
            m.allocations as f64 / m.deliveries() as f64,
            m.bytes as f64 / m.lines as f64,
        );
    }
    eprintln!("marginal allocations per extra recipient per line: {marginal:.5} (bound {MARGINAL_BOUND})");
}

#[test]
fn delivering_a_line_allocates_nothing_per_recipient() {
    check_the_allocator_counts();
    // One room at a time, as the counter sees every thread. Keep this the
    // only test in the file: tests run in parallel, and another test's
    // allocations would be counted in this one's window.
    for mixed in [false, true] {
        for threads in [1, 3] {
            let small = measure(SMALL_ROOM, threads, mixed);
            let big = measure(BIG_ROOM, threads, mixed);

            let extra_deliveries = (big.deliveries() - small.deliveries()) as f64;
            let marginal = (big.allocations as f64 - small.allocations as f64) / extra_deliveries;
            let room = if mixed {
                "a room of four front ends"
            } else {
                "a room of line clients"
            };
            eprintln!("{room}, with {threads} I/O thread(s):");
            report(&[small, big], marginal);
            assert!(
                marginal < MARGINAL_BOUND,
                "in {room} with {threads} I/O threads, each extra recipient costs {marginal:.4} \
                 allocations per line (bound {MARGINAL_BOUND}): something on the delivery path \
                 allocates per recipient; {small:?} vs {big:?}"
            );
        }
    }
}
