//! Abuse: the server under attack, over loopback.
//!
//! Every case goes the same way. Start a server; connect a [`Pair`] of
//! well-behaved clients before the attacker; run the attack while the pair
//! talks in numbered lines; check that each of the pair read every line
//! due to it, complete and in order, with nothing else in between; and
//! finally check that the server still welcomes and serves a newcomer.
//!
//! The attacks: a reader that never reads, a flooder, a megabyte without a
//! newline, random bytes, 2,000 connections opened and closed, connections
//! reset mid-line, half-closed connections, the per-address and total
//! connection limits, running out of file descriptors (the real daemon
//! once its descriptor limit is lowered), the idle timeout, and SIGTERM with a long
//! queue to flush.
//!
//! Nothing here sleeps. Every wait is on an event with a timeout (a line,
//! an EOF, a log line, a channel message), every loop is bounded, and no
//! assertion is about how long something took. Where an attack must run
//! *while* the pair talks, the two are interleaved step by step on one
//! thread, or the attacker runs on a scoped thread.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use chat_protocol::ServerLine;
use chat_tests::slow_reader::{
    bulk_line, connect_socket, read_to_end, talk_until_dropped, Talk, SMALL_SENDQ,
};
use chat_tests::{binary, clean_command, welcome_line, Client, Config, Daemon, TestServer, Waited};
use socket2::SockRef;

/// The room the pair talks in when the attack happens in #lobby, so that
/// the attacker's comings and goings are not theirs to read.
const CALM: &str = "#calm";
const LOBBY: &str = "#lobby";

// ---------------------------------------------------------------------------
// Well-behaved clients.

/// One stream of lines a client must read, in order.
struct Due {
    /// Names the stream in messages: a sender, "notices", "replies".
    label: String,
    /// Lines still to come, next first.
    lines: VecDeque<String>,
    /// Lines of this stream read so far.
    read: usize,
}

/// A well-behaved client and the lines still due to it: several streams,
/// each in order, interleaved in any way (they come from different
/// senders, or are the server's answers to different things). Every line
/// it reads must be the next line of one of its streams.
struct Good {
    client: Client,
    due: Vec<Due>,
}

impl Good {
    fn new(client: Client) -> Good {
        Good {
            client,
            due: Vec::new(),
        }
    }

    /// Adds `lines` to the end of the stream `label`.
    fn expect(&mut self, label: &str, lines: impl IntoIterator<Item = String>) {
        let index = match self.due.iter().position(|d| d.label == label) {
            Some(index) => index,
            None => {
                self.due.push(Due {
                    label: label.to_string(),
                    lines: VecDeque::new(),
                    read: 0,
                });
                self.due.len() - 1
            }
        };
        self.due[index].lines.extend(lines);
    }

    /// Lines of the stream `label` still to come.
    fn remaining(&self, label: &str) -> usize {
        self.due
            .iter()
            .find(|d| d.label == label)
            .map_or(0, |d| d.lines.len())
    }

    /// Lines of the stream `label` read so far.
    fn read_count(&self, label: &str) -> usize {
        self.due.iter().find(|d| d.label == label).map_or(0, |d| d.read)
    }

    fn total_due(&self) -> usize {
        self.due.iter().map(|d| d.lines.len()).sum()
    }

    /// Reads one line and checks it is the next of one of the streams.
    #[track_caller]
    fn read_next(&mut self) {
        let line = self.client.read_line();
        if let Some(due) = self.due.iter_mut().find(|d| d.lines.front() == Some(&line)) {
            due.lines.pop_front();
            due.read += 1;
            return;
        }
        let expected: Vec<String> = self
            .due
            .iter()
            .filter_map(|d| {
                let next = d.lines.front()?;
                Some(format!("  {}: {next:?} ({} to come)", d.label, d.lines.len()))
            })
            .collect();
        panic!(
            "\n{} read a line that is not the next of any stream it expects\n  got: {line:?}\n\
             expected one of:\n{}\n",
            self.client.nick(),
            if expected.is_empty() {
                "  (nothing)".to_string()
            } else {
                expected.join("\n")
            }
        );
    }

    /// Reads until `done` holds. Each read takes one due line (or fails),
    /// so this reads at most every line due.
    #[track_caller]
    fn read_until(&mut self, done: impl Fn(&Good) -> bool) {
        for _ in 0..=self.total_due() {
            if done(self) {
                return;
            }
            self.read_next();
        }
        assert!(
            done(self),
            "{}: every due line read, and still not done",
            self.client.nick()
        );
    }

    /// Reads until the stream `label` is complete.
    #[track_caller]
    fn read_stream(&mut self, label: &str) {
        self.read_until(|g| g.remaining(label) == 0);
    }

    /// Reads until every stream is complete.
    #[track_caller]
    fn settle(&mut self) {
        self.read_until(|g| g.total_due() == 0);
    }
}

/// alice and bob, who talk in numbered lines and check that they hear each
/// other, every line in order, whatever goes on around them.
struct Pair {
    a: Good,
    b: Good,
    /// The room they are both in.
    room: &'static str,
    /// The number of the next line each of them says.
    next: usize,
}

impl Pair {
    /// Connects alice, then bob, from 127.0.0.1, and moves them to `room`.
    #[track_caller]
    fn new(addr: SocketAddr, room: &'static str) -> Pair {
        Pair::from_sources(addr, room, [Ipv4Addr::LOCALHOST; 2])
    }

    /// Connects alice from `sources[0]` and bob from `sources[1]`, and
    /// moves them to `room`.
    #[track_caller]
    fn from_sources(addr: SocketAddr, room: &'static str, sources: [Ipv4Addr; 2]) -> Pair {
        let mut alice = Client::guest_from_stream(connect_socket(addr, Some(sources[0]), None));
        alice.rename("alice");
        let mut bob = Client::guest_from_stream(connect_socket(addr, Some(sources[1]), None));
        let guest = bob.nick().to_string();
        bob.rename("bob");
        alice.expect_line(&format!("-- {guest} joined #lobby"));
        alice.expect_line(&format!("-- {guest} is now known as bob"));
        if room != LOBBY {
            alice.send(&format!("/join {room}"));
            alice.expect_line(&format!("-- you joined {room}"));
            bob.expect_line(&format!("-- alice left #lobby (moved to {room})"));
            bob.send(&format!("/join {room}"));
            bob.expect_line(&format!("-- you joined {room}"));
            alice.expect_line(&format!("-- bob joined {room}"));
        }
        Pair {
            a: Good::new(alice),
            b: Good::new(bob),
            room,
            next: 0,
        }
    }

    /// Both must read `lines`, in this order, among whatever else is due.
    fn expect_both(&mut self, label: &str, lines: &[String]) {
        self.a.expect(label, lines.iter().cloned());
        self.b.expect(label, lines.iter().cloned());
    }

    /// Each says `n` numbered lines, then reads until it has heard all of
    /// the other's (reading, and checking, whatever else comes first).
    #[track_caller]
    fn exchange(&mut self, n: usize) {
        let numbers = self.next..self.next + n;
        self.next += n;
        let text = |nick: &str, k: usize| format!("{nick} says {k}");
        for k in numbers.clone() {
            self.a.client.send(&text("alice", k));
            self.b.client.send(&text("bob", k));
        }
        self.b.expect(
            "alice",
            numbers.clone().map(|k| format!("<alice> {}", text("alice", k))),
        );
        self.a
            .expect("bob", numbers.map(|k| format!("<bob> {}", text("bob", k))));
        self.a.read_stream("bob");
        self.b.read_stream("alice");
    }

    /// Reads until nothing is due to either.
    #[track_caller]
    fn settle(&mut self) {
        self.a.settle();
        self.b.settle();
    }

    /// With nothing due, both read the notice of a guest joining their
    /// room; returns its nick. For an attacker that never reads its welcome.
    #[track_caller]
    fn observe_join(&mut self) -> String {
        assert_eq!(
            self.a.total_due() + self.b.total_due(),
            0,
            "settle the pair first"
        );
        let line = self.a.client.read_line();
        let suffix = format!(" joined {}", self.room);
        let Some(nick) = line
            .strip_prefix("-- ")
            .and_then(|rest| rest.strip_suffix(&suffix))
        else {
            panic!("alice expected a join notice, got {line:?}");
        };
        self.b.client.expect_line(&line);
        nick.to_string()
    }

    /// A newcomer connects, is welcomed, sends alice a private message and
    /// gets its confirmation, then quits; alice gets the message and the
    /// pair can still talk. The proof, after each attack, that the server
    /// still accepts and serves.
    #[track_caller]
    fn newcomer_is_served(&mut self, addr: SocketAddr) {
        let mut newcomer = Client::connect_guest(addr);
        let nick = newcomer.nick().to_string();
        if self.room == LOBBY {
            self.expect_both("notices", &[format!("-- {nick} joined #lobby")]);
        }
        newcomer.send(&format!("/msg alice hello from {nick}"));
        expect_past_guests(&mut newcomer, &format!("-> *alice* hello from {nick}"));
        self.a.expect("private", [format!("*{nick}* hello from {nick}")]);
        newcomer.send("/quit");
        expect_past_guests(&mut newcomer, "-- bye");
        newcomer.expect_eof();
        if self.room == LOBBY {
            self.expect_both("notices", &[format!("-- {nick} left #lobby (quit)")]);
        }
        self.exchange(3);
        self.settle();
    }
}

/// The most notices about the attacker's guests a newcomer reads past.
const MAX_GUEST_NOTICES: usize = 1_000;

/// Reads `client`'s lines until `expected`, which must come after nothing
/// but notices of guests (the attacker's connections) joining or leaving
/// #lobby: a newcomer may arrive while the server is still taking in, or
/// cleaning up, what an attack left behind.
#[track_caller]
fn expect_past_guests(client: &mut Client, expected: &str) {
    for _ in 0..MAX_GUEST_NOTICES {
        let line = client.read_line();
        if line == expected {
            return;
        }
        let about_a_guest = line
            .strip_prefix("-- guest")
            .is_some_and(|rest| rest.ends_with(" joined #lobby") || rest.contains(" left #lobby ("));
        // What the lobby said before the newcomer came, replayed to it.
        let replayed = matches!(ServerLine::parse(&line), Ok(ServerLine::Replayed { .. }));
        assert!(
            about_a_guest || replayed,
            "\n{} read the wrong line\n expected: {expected:?} (after notices of guests and replayed lines)\n      got: {line:?}\n",
            client.nick()
        );
    }
    panic!(
        "{}: more than {MAX_GUEST_NOTICES} notices before {expected:?}",
        client.nick()
    );
}

/// Checks that the server closes `client`'s connection next, after
/// nothing but notices of guests joining or leaving #lobby (the server may
/// learn that earlier guests have gone only after this one came).
#[track_caller]
fn expect_eof_past_guests(client: &mut Client) {
    for _ in 0..MAX_GUEST_NOTICES {
        let Some(line) = client.read_line_or_eof() else { return };
        let about_a_guest = line
            .strip_prefix("-- guest")
            .is_some_and(|rest| rest.ends_with(" joined #lobby") || rest.contains(" left #lobby ("));
        assert!(
            about_a_guest,
            "{}: expected the close (after notices of guests), got {line:?}",
            client.nick()
        );
    }
    panic!(
        "{}: more than {MAX_GUEST_NOTICES} notices before the close",
        client.nick()
    );
}

/// A client alone in #lobby that reads the notices of guests coming and
/// going, and checks them: each guest joins once, then leaves once.
struct Doorman {
    client: Client,
    /// Guests that joined and have not left.
    inside: HashSet<String>,
    /// Every guest that ever joined.
    seen: HashSet<String>,
    joins: usize,
    leaves: usize,
    /// Leaves counted by their reason (`disconnect`, `quit`).
    reasons: BTreeMap<String, usize>,
}

impl Doorman {
    #[track_caller]
    fn new(addr: SocketAddr) -> Doorman {
        Doorman {
            client: Client::connect_named(addr, "doorman"),
            inside: HashSet::new(),
            seen: HashSet::new(),
            joins: 0,
            leaves: 0,
            reasons: BTreeMap::new(),
        }
    }

    /// Reads notices until `joins` joins and `leaves` leaves were seen in
    /// all; each read must be one of them.
    #[track_caller]
    fn read_until(&mut self, joins: usize, leaves: usize) {
        let to_read = joins.saturating_sub(self.joins) + leaves.saturating_sub(self.leaves);
        for _ in 0..to_read {
            self.read_one();
        }
        assert_eq!(
            (self.joins, self.leaves),
            (joins, leaves),
            "the doorman's count of (joins, leaves)"
        );
    }

    #[track_caller]
    fn read_one(&mut self) {
        let line = self.client.read_line();
        let notice = line.strip_prefix("-- ").unwrap_or("");
        if let Some(nick) = notice.strip_suffix(" joined #lobby") {
            assert!(
                self.seen.insert(nick.to_string()),
                "{nick} joined twice: {line:?}"
            );
            self.inside.insert(nick.to_string());
            self.joins += 1;
        } else if let Some((nick, reason)) = notice
            .split_once(" left #lobby (")
            .and_then(|(nick, rest)| Some((nick, rest.strip_suffix(')')?)))
        {
            assert!(
                self.inside.remove(nick),
                "{nick} left without having joined: {line:?}"
            );
            *self.reasons.entry(reason.to_string()).or_default() += 1;
            self.leaves += 1;
        } else {
            panic!("the doorman expected a join or leave notice, got {line:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// Sockets, processes, and the bytes an attacker sends.

/// A loopback address other than 127.0.0.1 (all of 127.0.0.0/8 is
/// loopback), for clients that must count as another address.
fn loopback(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Closes `stream` with a reset (RST) instead of an orderly FIN, as a peer
/// that crashes or a middlebox that gives up does.
fn reset(stream: TcpStream) {
    SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap_or_else(|e| panic!("cannot set SO_LINGER: {e}"));
    drop(stream);
}

/// `lines`, each with its `\n`, as one run of bytes.
fn joined_lines<S: AsRef<str>>(lines: &[S]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for line in lines {
        bytes.extend_from_slice(line.as_ref().as_bytes());
        bytes.push(b'\n');
    }
    bytes
}

/// Checks a daemon's log for a panic or an error-level line.
#[track_caller]
fn assert_no_panic_or_error(log: &[String]) {
    for line in log {
        assert!(
            !line.contains("panicked") && !line.contains(" ERROR ") && !line.starts_with("error"),
            "unexpected line in the daemon's log: {line:?}\nfull log:\n{}",
            log.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------
// 1. A reader that never reads.

#[test]
fn a_reader_that_never_reads_is_dropped_and_nobody_else_misses_a_line() {
    let server = TestServer::start(Config {
        sendq: SMALL_SENDQ,
        rate: 0,
        ..Config::default()
    });
    let addr = server.addr();
    let mut pair = Pair::new(addr, LOBBY);
    // A tiny receive window, and not one byte read, not even the welcome.
    let slow_stream = connect_socket(addr, None, Some(4096));
    let slow = pair.observe_join();
    let dropped = format!("-- {slow} left #lobby (slow consumer)");

    // alice talks in 1 KiB lines until bob has heard that the slow reader
    // was dropped, and a little more; bob reads and checks every line.
    let Pair { a, b, .. } = &mut pair;
    let Talk { sent, dropped_after } = talk_until_dropped(
        |line| a.client.send(line),
        || b.client.read_line(),
        &dropped,
        &slow,
    );
    eprintln!(
        "slow consumer: dropped once alice had said {dropped_after} lines of 1 KiB \
         (sendq {SMALL_SENDQ}); alice said {sent} in all"
    );
    pair.a.expect("notices", [dropped.clone()]);
    pair.exchange(10);
    pair.settle();

    // The slow reader's socket: a prefix of what was sent to it, then the
    // end, never more than was due.
    let mut due = welcome_line(&slow).into_bytes();
    due.push(b'\n');
    due.extend(joined_lines(
        &(0..sent)
            .map(|i| format!("<alice> {}", bulk_line(i)))
            .collect::<Vec<_>>(),
    ));
    let mut slow_reader = BufReader::new(slow_stream);
    let (got, ending) = read_to_end(&mut slow_reader, due.len());
    assert!(
        due.starts_with(&got),
        "the slow reader got {} bytes that are not a prefix of what was sent to it",
        got.len()
    );
    assert!(
        got.len() < due.len(),
        "the slow reader got everything: it was not dropped"
    );
    eprintln!(
        "slow consumer: its socket gave {} bytes, then {ending:?}",
        got.len()
    );

    pair.newcomer_is_served(addr);
}

// ---------------------------------------------------------------------------
// 2. A flooder.

/// Lines the flooder sends in one write.
const FLOOD_LINES: usize = 3_000;

/// The rate of the flood case: higher than the default 20 a second so that
/// 3,000 lines take about 1.5 s, low enough that the flood is still going
/// on long after the pair has talked.
const FLOOD_RATE: u32 = 2_000;

#[test]
fn a_flooder_is_slowed_down_loses_nothing_and_delays_nobody() {
    let server = TestServer::start(Config {
        rate: FLOOD_RATE,
        ..Config::default()
    });
    let addr = server.addr();
    let mut pair = Pair::new(addr, LOBBY);
    // The flooder only sends; its welcome and all the rest go unread.
    let mut flooder = Client::connect(addr);
    let nick = pair.observe_join();
    let flood: Vec<String> = (0..FLOOD_LINES)
        .map(|i| format!("flood {i:04} {}", "f".repeat(300)))
        .collect();
    let bytes = joined_lines(&flood);
    let heard: Vec<String> = flood.iter().map(|line| format!("<{nick}> {line}")).collect();
    pair.expect_both("flood", &heard);

    thread::scope(|s| {
        // All at once, in one write; TCP pushes back while the server
        // does not read.
        s.spawn(|| flooder.send_raw(&bytes));
        pair.a.read_until(|g| g.read_count("flood") > 0);
        pair.b.read_until(|g| g.read_count("flood") > 0);
        // The flood has begun. alice and bob talk over it, and hear each
        // other long before the flood is over.
        for _ in 0..3 {
            pair.exchange(10);
        }
        let (behind_a, behind_b) = (pair.a.remaining("flood"), pair.b.remaining("flood"));
        eprintln!("flood: the pair talked with {behind_a} and {behind_b} of {FLOOD_LINES} flood lines still to come");
        assert!(
            behind_a > 0 && behind_b > 0,
            "alice's and bob's lines came only after the whole flood ({behind_a}, {behind_b} flood lines \
             left): they were held behind it"
        );
        // And every one of the flooder's lines arrives, in order.
        pair.settle();
    });
    pair.newcomer_is_served(addr);
}

// ---------------------------------------------------------------------------
// 3. A megabyte without a newline.

#[test]
fn a_megabyte_without_a_newline_gets_one_error_and_the_connection_goes_on() {
    let server = TestServer::start_default();
    let addr = server.addr();
    let mut pair = Pair::new(addr, CALM);
    let mut attacker = Client::connect_guest(addr);
    let nick = attacker.nick().to_string();

    // 1 MiB of 'x' in 16 writes, the pair talking between them.
    let chunk = vec![b'x'; 1024 * 1024 / 16];
    for _ in 0..16 {
        attacker.send_raw(&chunk);
        pair.exchange(2);
    }
    attacker.expect_line("!! line too long (max 4096 bytes); discarded up to the next newline");
    attacker.send_raw(b"\n");
    attacker.send("/msg alice still here");
    // The very next line answers that: the rest of the megabyte earned no
    // second error.
    attacker.expect_line("-> *alice* still here");
    pair.a.expect("private", [format!("*{nick}* still here")]);
    pair.settle();
    pair.newcomer_is_served(addr);
}

// ---------------------------------------------------------------------------
// 4. Random bytes.

/// xorshift64*: a small PRNG. The seed is fixed, so a failure replays
/// exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }

    /// A random byte other than `\n`.
    fn byte(&mut self) -> u8 {
        loop {
            let b = self.next() as u8;
            if b != b'\n' {
                return b;
            }
        }
    }
}

/// Pieces of the "text" lines: letters, multi-byte characters, C0 and C1
/// controls, DEL, CR, the bidirectional characters, separators and
/// invisible characters that must be replaced, white space that shows
/// nothing, the joiners, selectors, tag characters and combining marks that
/// are kept only in their place, whole emoji sequences and a stack of marks
/// past the bound, and the characters of server line shapes.
const PALETTE: &[&str] = &[
    "a",
    "b",
    "Z",
    "9",
    " ",
    "\t",
    "é",
    "✓",
    "😀",
    "<",
    ">",
    "*",
    "-",
    "\0",
    "\u{7}",
    "\u{b}",
    "\u{c}",
    "\u{1b}",
    "\r",
    "\u{7f}",
    "\u{85}",
    "\u{9b}",
    "\u{a0}",
    "\u{3000}",
    "\u{2800}",
    "\u{200e}",
    "\u{200f}",
    "\u{61c}",
    "\u{202a}",
    "\u{202e}",
    "\u{2066}",
    "\u{2069}",
    "\u{2028}",
    "\u{2029}",
    "\u{200b}",
    "\u{2060}",
    "\u{feff}",
    "\u{ad}",
    "\u{3164}",
    "\u{115f}",
    "\u{fff9}",
    "\u{e0041}",
    "\u{e007f}",
    "\u{200d}",
    "\u{200c}",
    "\u{fe0f}",
    "\u{301}",
    "\u{323}",
    "\u{20e3}",
    "\u{93e}",
    "\u{1f3fd}",
    "\u{1f3f4}",
    "👩\u{1f3fd}\u{200d}💻",
    "🏴\u{e0067}\u{e0062}\u{e0077}\u{e006c}\u{e0073}\u{e007f}",
    "z\u{336}\u{30c}\u{350}\u{33e}\u{30f}\u{304}\u{31a}",
];

/// Lines made only of characters that must be replaced.
const CONTROLS: &[char] = &[
    '\0',
    '\u{1}',
    '\u{7}',
    '\u{b}',
    '\u{c}',
    '\u{1b}',
    '\u{7f}',
    '\u{85}',
    '\u{9b}',
    '\u{202e}',
    '\u{2066}',
    '\u{2028}',
    '\u{61c}',
    '\u{200e}',
    '\u{200b}',
    '\u{feff}',
    '\u{3164}',
    '\u{e0041}',
    '\u{fffe}',
];

/// Lines that show nothing: white space of several kinds.
const BLANKS: &[char] = &[
    ' ', '\t', '\u{a0}', '\u{3000}', '\u{2003}', '\u{202f}', '\u{2800}',
];

/// Commands with the one reply each must get from a guest in #lobby.
const COMMANDS: &[(&str, &str)] = &[
    ("/dance", "!! unknown command /dance; type /help for the list"),
    ("/nick", "!! usage: /nick NAME"),
    ("/nick 9lives", "!! invalid nick: nick must start with a letter"),
    ("/msg nobody hi", "!! no such nick: nobody"),
    ("/join lobby", "!! you are already in #lobby"),
    (
        "/join bad!room",
        "!! invalid room: room name may only contain letters, digits, '_' and '-'",
    ),
    ("/me", "!! usage: /me TEXT"),
];

/// One line of garbage, without its `\n`.
fn garbage_line(rng: &mut Rng) -> Vec<u8> {
    match rng.below(100) {
        // Random bytes; not a command (those are below).
        0..=49 => {
            let mut line: Vec<u8> = (0..rng.below(80)).map(|_| rng.byte()).collect();
            if line.first() == Some(&b'/') {
                line[0] = b'x';
            }
            line
        }
        // Valid UTF-8 full of what must not reach a terminal.
        50..=69 => {
            let len = 1 + rng.below(30);
            (0..len)
                .map(|_| rng.pick(PALETTE))
                .collect::<String>()
                .into_bytes()
        }
        // Nothing but characters that must be replaced.
        70..=74 => {
            let len = 1 + rng.below(5);
            (0..len)
                .map(|_| rng.pick(CONTROLS))
                .collect::<String>()
                .into_bytes()
        }
        // Blank: empty or white space, maybe a CR before the newline.
        75..=84 => {
            let mut line = (0..rng.below(5))
                .map(|_| rng.pick(BLANKS))
                .collect::<String>()
                .into_bytes();
            if rng.below(2) == 0 {
                line.push(b'\r');
            }
            line
        }
        // Past the 4096-byte limit.
        85 => (0..4_097 + rng.below(2_000)).map(|_| rng.byte()).collect(),
        _ => rng.pick(COMMANDS).0.as_bytes().to_vec(),
    }
}

/// What the server must make of one line from a guest in #lobby, as
/// PROTOCOL.md says: what the sender reads back, and what the room reads.
#[derive(Debug)]
enum Fate {
    Reply(String),
    Said(String),
    Ignored,
}

/// The fate of `line` (without its `\n`), under the default line limit.
fn fate(line: &[u8]) -> Fate {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > 4096 {
        return Fate::Reply("!! line too long (max 4096 bytes); discarded up to the next newline".into());
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Fate::Reply("!! invalid UTF-8; line discarded".into());
    };
    let said = sanitised(text);
    // What shows nothing is ignored (controls among white space, VT, FF,
    // NEL, U+2028, were made U+FFFD).
    if said.chars().all(|c| c.is_whitespace() || c == '\u{2800}') {
        return Fate::Ignored;
    }
    if let Some((_, reply)) = COMMANDS.iter().find(|(command, _)| *command == text) {
        return Fate::Reply((*reply).to_string());
    }
    assert!(
        !text.starts_with('/'),
        "garbage lines are commands only from the table"
    );
    Fate::Said(said)
}

/// `text` as the room must see it, by PROTOCOL.md's "Text" rules, each
/// character looked at against what is already in the output: forbidden
/// characters become U+FFFD; a joiner stays after a visible character (or
/// its marks), a variation selector right after a visible character, a
/// mark on a visible character or white space, a tag character in an
/// emoji tag sequence (U+1F3F4, 1 to 7 tag letters or digits, U+E007F),
/// and each becomes U+FFFD elsewhere; a fifth nonspacing mark in a row is
/// dropped. Which character is which comes from the protocol crate's
/// table; the rules are written here again.
fn sanitised(text: &str) -> String {
    use chat_protocol::text::{class, Class};
    let input: Vec<char> = text.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(input.len());
    // Tag characters still to let through, of a sequence found well formed.
    let mut tags_due = 0;
    for (i, &c) in input.iter().enumerate() {
        let kind = class(c);
        let hangs_on = out
            .iter()
            .rev()
            .map(|&o| class(o))
            .find(|k| !matches!(k, Class::NonspacingMark | Class::Selector | Class::Tag));
        let after_visible = matches!(hangs_on, Some(Class::Base | Class::SpacingMark));
        let marks_in_a_row = out
            .iter()
            .rev()
            .take_while(|&&o| class(o) == Class::NonspacingMark)
            .count();
        let keep = match kind {
            Class::Forbidden => false,
            Class::Tag => tags_due > 0,
            Class::Joiner => after_visible,
            Class::Selector => out.last().map(|&o| class(o)) == Some(Class::Base),
            Class::NonspacingMark
                if marks_in_a_row >= 4 && (after_visible || hangs_on == Some(Class::Space)) =>
            {
                continue;
            }
            Class::NonspacingMark | Class::SpacingMark => after_visible || hangs_on == Some(Class::Space),
            Class::Tab | Class::Space | Class::Base => true,
        };
        tags_due = if c == '\u{1f3f4}' {
            let spec = input[i + 1..]
                .iter()
                .take_while(|&&t| matches!(t, '\u{e0030}'..='\u{e0039}' | '\u{e0061}'..='\u{e007a}'))
                .count();
            let ended = input.get(i + 1 + spec) == Some(&'\u{e007f}');
            if (1..=7).contains(&spec) && ended {
                spec + 1
            } else {
                0
            }
        } else {
            tags_due.saturating_sub(1)
        };
        out.push(if keep { c } else { '\u{fffd}' });
    }
    out.into_iter().collect()
}

/// Bytes of garbage the random-bytes case sends.
const GARBAGE_BYTES: usize = 256 * 1024;

#[test]
fn random_bytes_get_their_errors_reach_the_room_sanitised_and_harm_nobody() {
    let server = TestServer::start(Config {
        rate: 0,
        ..Config::default()
    });
    let addr = server.addr();
    let mut pair = Pair::new(addr, CALM);
    let mut witness = Good::new(Client::connect_named(addr, "witness"));
    let mut attacker = Good::new(Client::connect_guest(addr));
    let nick = attacker.client.nick().to_string();
    witness.expect("notices", [format!("-- {nick} joined #lobby")]);

    let mut rng = Rng(0x5eed_f00d_ab05);
    let mut garbage = Vec::new();
    let (mut replies, mut said, mut ignored) = (0, 0, 0);
    while garbage.len() < GARBAGE_BYTES {
        let line = garbage_line(&mut rng);
        match fate(&line) {
            Fate::Reply(reply) => {
                replies += 1;
                attacker.expect("replies", [reply]);
            }
            Fate::Said(text) => {
                said += 1;
                witness.expect("attacker", [format!("<{nick}> {text}")]);
            }
            Fate::Ignored => ignored += 1,
        }
        garbage.extend_from_slice(&line);
        garbage.push(b'\n');
    }
    eprintln!(
        "random bytes: {} bytes, {replies} lines answered, {said} said to the room, {ignored} ignored",
        garbage.len()
    );
    // In 16 writes, cutting lines and characters anywhere, the pair talking
    // between them.
    for chunk in garbage.chunks(garbage.len().div_ceil(16)) {
        attacker.client.send_raw(chunk);
        pair.exchange(4);
    }
    // Each got exactly what was due, in order, and nothing more: the reply
    // to this `/who` and this line come next.
    attacker.client.send("/who");
    attacker.expect("replies", [format!("-- 2 in #lobby: {nick}, witness")]);
    attacker.settle();
    attacker.client.send("that was all");
    witness.expect("attacker", [format!("<{nick}> that was all")]);
    witness.settle();
    pair.settle();
    pair.newcomer_is_served(addr);
}

#[test]
fn a_line_of_only_control_characters_is_delivered_as_that_many_replacement_characters() {
    let server = TestServer::start_default();
    let mut pair = Pair::new(server.addr(), LOBBY);
    // PROTOCOL.md: only an empty line, or one of only spaces and tabs, is
    // ignored; "a line of nothing but such characters is delivered as that
    // many �". VT, FF and NEL are control characters (and, to Unicode,
    // white space).
    for (line, delivered) in [
        ("\u{1}\u{7}\u{1b}", "\u{fffd}\u{fffd}\u{fffd}"),
        ("\u{202e}\u{2066}", "\u{fffd}\u{fffd}"),
        ("\u{b}", "\u{fffd}"),
        ("\u{c}\u{c}", "\u{fffd}\u{fffd}"),
        ("\u{85}", "\u{fffd}"),
        ("\t\u{b}\t", "\t\u{fffd}\t"),
    ] {
        pair.a.client.send(line);
        pair.b.expect("alice", [format!("<alice> {delivered}")]);
    }
    pair.settle();
}

// ---------------------------------------------------------------------------
// 5. Connections opened and closed, 2,000 times.

/// Connect/disconnect cycles, in batches; the pair talks after each batch.
const CYCLES: usize = 2_000;
const CYCLE_BATCH: usize = 200;

#[test]
fn two_thousand_connections_coming_and_going_leave_nothing_behind() {
    let server = TestServer::start(Config {
        max_per_ip: 0,
        max_per_net: 0,
        connect_rate: 0,
        ..Config::default()
    });
    let addr = server.addr();
    let mut pair = Pair::new(addr, CALM);
    let mut doorman = Doorman::new(addr);
    let mut quits = 0;
    for batch in 0..CYCLES / CYCLE_BATCH {
        for i in 0..CYCLE_BATCH {
            match i % 4 {
                // Gone before reading a thing.
                0 => drop(Client::connect(addr)),
                // Gone right after the welcome.
                1 => drop(Client::connect_guest(addr)),
                // A proper goodbye. (The server may learn that the one
                // before has gone only after this one came: then this one
                // hears it leave.)
                2 => {
                    let mut client = Client::connect_guest(addr);
                    client.send("/quit");
                    expect_past_guests(&mut client, "-- bye");
                    client.expect_eof();
                    quits += 1;
                }
                // Half-closed at once: the welcome still comes, then the end
                // (after the leaves of those before, as for a goodbye).
                _ => {
                    let mut client = Client::connect(addr);
                    client.shutdown_write();
                    let welcome = client.read_line();
                    assert!(
                        chat_tests::parse_welcome(&welcome).is_some(),
                        "not a welcome: {welcome:?}"
                    );
                    expect_eof_past_guests(&mut client);
                }
            }
        }
        let done = (batch + 1) * CYCLE_BATCH;
        doorman.read_until(done, done);
        pair.exchange(5);
    }
    assert!(doorman.inside.is_empty(), "still inside: {:?}", doorman.inside);
    assert_eq!(
        doorman.reasons,
        BTreeMap::from([
            ("disconnect".to_string(), CYCLES - quits),
            ("quit".to_string(), quits)
        ]),
        "why the guests left"
    );
    // No trace of them in the chat state.
    pair.a.client.send("/rooms");
    pair.a
        .expect("replies", ["-- 2 rooms: #calm (2), #lobby (1)".to_string()]);
    pair.settle();
    pair.newcomer_is_served(addr);
}

// ---------------------------------------------------------------------------
// 6. Connections reset mid-line.

const RESETS: usize = 300;
const RESET_BATCH: usize = 60;

#[test]
fn connections_reset_mid_line_are_cleaned_up_and_their_nick_freed_at_once() {
    let server = TestServer::start(Config {
        max_per_ip: 0,
        max_per_net: 0,
        connect_rate: 0,
        ..Config::default()
    });
    let addr = server.addr();
    let mut pair = Pair::new(addr, CALM);
    let mut doorman = Doorman::new(addr);
    for batch in 0..RESETS / RESET_BATCH {
        for i in 0..RESET_BATCH {
            let stream = connect_socket(addr, None, None);
            if i % 2 == 1 {
                // Read the welcome first; otherwise reset with it unread.
                let mut reader = BufReader::new(stream.try_clone().expect("clone the socket"));
                let mut welcome = String::new();
                reader.read_line(&mut welcome).expect("read the welcome");
                assert!(welcome.starts_with("-- welcome"), "not a welcome: {welcome:?}");
            }
            // Half a command, then the reset.
            (&stream).write_all(b"/wh").expect("send half a line");
            reset(stream);
        }
        let done = (batch + 1) * RESET_BATCH;
        doorman.read_until(done, done);
        pair.exchange(5);
    }
    assert_eq!(
        doorman.reasons,
        BTreeMap::from([("disconnect".to_string(), RESETS)]),
        "why the reset connections left"
    );

    // One with a name: once the room hears it left, the name is free.
    let ghost_stream = connect_socket(addr, None, None);
    let mut ghost = Client::guest_from_stream(ghost_stream.try_clone().expect("clone the socket"));
    let guest = ghost.nick().to_string();
    ghost.rename("ghost");
    let mut doorman = doorman.client;
    doorman.expect_line(&format!("-- {guest} joined #lobby"));
    doorman.expect_line(&format!("-- {guest} is now known as ghost"));
    (&ghost_stream).write_all(b"/wh").expect("send half a line");
    drop(ghost);
    reset(ghost_stream);
    doorman.expect_line("-- ghost left #lobby (disconnect)");
    doorman.rename("ghost");
    pair.newcomer_is_served(addr);
}

// ---------------------------------------------------------------------------
// 7. Half-closed sockets.

const HALF_CLOSERS: usize = 20;

#[test]
fn half_closed_connections_deliver_their_last_line_get_their_answers_and_are_closed() {
    // Twenty connections in a row from one address: not what the throttle
    // on new connections is being tested for here.
    let server = TestServer::start(Config {
        connect_rate: 0,
        ..Config::default()
    });
    let addr = server.addr();
    let mut pair = Pair::new(addr, LOBBY);
    for i in 0..HALF_CLOSERS {
        let mut half = Client::connect_guest(addr);
        let nick = half.nick().to_string();
        // A line, a command, and a last line without its newline, then
        // the end of what it sends.
        half.send_raw(format!("first {i}\n/who\nlast {i}").as_bytes());
        half.shutdown_write();
        expect_past_guests(&mut half, &format!("-- 3 in #lobby: alice, bob, {nick}"));
        half.expect_eof();
        pair.expect_both(
            "room",
            &[
                format!("-- {nick} joined #lobby"),
                format!("<{nick}> first {i}"),
                format!("<{nick}> last {i}"),
                format!("-- {nick} left #lobby (disconnect)"),
            ],
        );
        if i % 5 == 4 {
            pair.exchange(5);
        }
    }
    pair.settle();
    pair.newcomer_is_served(addr);
}

// ---------------------------------------------------------------------------
// 8. The per-address and total connection limits.

/// Connections turned away in each limit case, the pair talking between.
const REFUSALS: usize = 50;

#[test]
fn past_the_per_address_limit_connections_are_refused_and_other_addresses_still_served() {
    let server = TestServer::start(Config {
        max_per_ip: 3,
        ..Config::default()
    });
    let addr = server.addr();
    let mut pair = Pair::from_sources(addr, CALM, [loopback(2), loopback(3)]);
    // Three from 127.0.0.1 are fine.
    let mut local: Vec<Client> = (0..3).map(|_| Client::connect_guest(addr)).collect();
    for attempt in 0..REFUSALS {
        let mut refused = Client::connect(addr);
        refused.expect_line("!! too many connections from your address");
        refused.expect_eof();
        if attempt % 10 == 9 {
            pair.exchange(5);
        }
    }
    // Another loopback address is another address.
    let mut other = Client::guest_from_stream(connect_socket(addr, Some(loopback(4)), None));
    other.rename("other");
    // Once one of the three has gone, 127.0.0.1 may connect again, once.
    for client in local.drain(..) {
        let nick = client.nick().to_string();
        drop(client);
        other.expect_line(&format!("-- {nick} left #lobby (disconnect)"));
    }
    let again: Vec<Client> = (0..3).map(|_| Client::connect_guest(addr)).collect();
    for client in &again {
        other.expect_line(&format!("-- {} joined #lobby", client.nick()));
    }
    let mut refused = Client::connect(addr);
    refused.expect_line("!! too many connections from your address");
    refused.expect_eof();
    for client in again {
        let nick = client.nick().to_string();
        drop(client);
        other.expect_line(&format!("-- {nick} left #lobby (disconnect)"));
    }
    pair.settle();
    pair.newcomer_is_served(addr);
}

#[test]
fn past_max_clients_connections_are_refused_while_the_others_talk() {
    let server = TestServer::start(Config {
        max_clients: 5,
        // Fifty refusals in a row from one address: not what the throttle
        // on new connections is being tested for here.
        connect_rate: 0,
        ..Config::default()
    });
    let addr = server.addr();
    let mut pair = Pair::new(addr, CALM);
    let mut fillers: Vec<Client> = (0..3).map(|_| Client::connect_guest(addr)).collect();
    for attempt in 0..REFUSALS {
        let mut refused = Client::connect(addr);
        refused.expect_line("!! server full");
        refused.expect_eof();
        if attempt % 10 == 9 {
            pair.exchange(5);
        }
    }
    // The last filler watches the others leave; then there is room for
    // the newcomer.
    let mut watcher = fillers.pop().expect("three fillers");
    for client in [fillers.remove(1), fillers.remove(0)] {
        let nick = client.nick().to_string();
        drop(client);
        // The watcher came last: it heard no one join.
        watcher.expect_line(&format!("-- {nick} left #lobby (disconnect)"));
    }
    pair.settle();
    pair.newcomer_is_served(addr);
}

// ---------------------------------------------------------------------------
// 9. Out of file descriptors.

/// The descriptor limit the daemon is put under: room for its own few
/// (standard streams, epoll, waker, listener, signal pipe) and a couple of
/// dozen clients.
const FD_LIMIT: usize = 32;

/// How long the out-of-descriptors case watches the daemon for a repeated
/// warning and counts its CPU time: ten of its 100 ms retries.
const WATCH: Duration = Duration::from_secs(1);

/// Descriptors open in process `pid`: each number and what it is.
fn open_fds(pid: u32) -> Vec<(usize, String)> {
    let dir = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {dir}: {e}"));
    let mut fds: Vec<(usize, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let fd = entry.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            Some((fd, target.display().to_string()))
        })
        .collect();
    fds.sort();
    fds
}

/// CPU time process `pid` has used (all its threads, user and system), in
/// clock ticks: fields 14 and 15 of /proc/PID/stat.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/stat: {e}"));
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| -> u64 {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("no field {n} in /proc/{pid}/stat: {stat:?}"))
    };
    field(14) + field(15)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux if that fails).
fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

#[test]
fn out_of_file_descriptors_the_daemon_warns_once_keeps_serving_and_recovers() {
    // The daemon starts with room to spare (it checks --max-clients against
    // its limit at start), then the limit is lowered under it from outside,
    // as an administrator's `prlimit` would.
    let mut command = clean_command(binary("chat-server"));
    command.args([
        "--listen",
        "127.0.0.1:0",
        "--max-per-ip",
        "0",
        "--max-per-net",
        "0",
        "--connect-rate",
        "0",
    ]);
    let mut daemon = Daemon::start_with(command, 1);
    let addr = daemon.addr();
    let pid = daemon.proc.pid();
    let lowered = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={FD_LIMIT}:{FD_LIMIT}"))
        .status()
        .expect("run prlimit (util-linux)");
    assert!(lowered.success(), "prlimit failed: {lowered}");
    let mut pair = Pair::new(addr, CALM);

    // More connections than it has descriptors left: the kernel completes
    // them all (the backlog is long); the daemon accepts until EMFILE.
    let extras: Vec<TcpStream> = (0..FD_LIMIT).map(|_| connect_socket(addr, None, None)).collect();
    let warning = daemon
        .proc
        .expect_stderr_containing(&["cannot accept connections"]);
    let fds = open_fds(pid);
    assert!(
        fds.iter().filter(|(fd, _)| *fd < FD_LIMIT).count() == FD_LIMIT,
        "the daemon logged {warning:?} with descriptors below {FD_LIMIT} free: {fds:?}"
    );
    pair.exchange(10);

    // Watch it, out of descriptors, for a while: no second warning, and
    // little CPU, where a loop spinning on a readable listener would take
    // all of a core.
    let ticks = ticks_per_second();
    let (cpu_before, start) = (cpu_ticks(pid), Instant::now());
    let deadline = start + WATCH;
    let mut logged = Vec::new();
    for _ in 0..1_000 {
        match daemon.proc.stderr_line_before(deadline) {
            Waited::Line(line) => logged.push(line),
            Waited::TimedOut => break,
            Waited::Eof => panic!("the daemon's stderr closed: it died\n{}", logged.join("\n")),
        }
    }
    let (cpu, wall) = (cpu_ticks(pid) - cpu_before, start.elapsed());
    let wall_ticks = wall.as_secs_f64() * ticks;
    eprintln!(
        "out of descriptors: {cpu} ticks of CPU in {wall:?} ({wall_ticks:.0} ticks of wall time); \
         log meanwhile: {logged:?}"
    );
    assert!(
        !logged.iter().any(|line| line.contains("cannot accept")),
        "the warning came again within {WATCH:?}: {logged:?}"
    );
    assert!(
        (cpu as f64) < wall_ticks / 2.0,
        "the daemon used {cpu} ticks of CPU in {wall_ticks:.0} ticks while out of descriptors: it spins"
    );
    pair.exchange(10);

    // Descriptors come free: it accepts again.
    drop(extras);
    pair.newcomer_is_served(addr);

    // It never crashed: it stops as asked, and said it was out of
    // descriptors only the once.
    daemon.proc.signal("TERM");
    for good in [&mut pair.a, &mut pair.b] {
        good.client.expect_line("-- server shutting down");
        good.client.expect_eof();
    }
    drop(pair);
    daemon.proc.expect_exit_code(0);
    let log = daemon.proc.stderr_lines();
    let warnings = log
        .iter()
        .filter(|l| l.contains("cannot accept connections"))
        .count();
    assert_eq!(
        warnings,
        1,
        "warnings about descriptors in the log:\n{}",
        log.join("\n")
    );
    assert_no_panic_or_error(log);
}

// ---------------------------------------------------------------------------
// 10. The idle timeout.

/// Most rounds the pair talks while waiting for the idle client to be
/// dropped: 5 s of them, where 1 s is due.
const IDLE_ROUNDS: usize = 50;

/// How long the pair waits for news of the idle client between two rounds
/// of talk: well under the 1 s timeout, so they are never idle themselves.
const IDLE_PACE: Duration = Duration::from_millis(100);

#[test]
fn an_idle_client_is_told_and_closed_while_the_talkers_stay() {
    let server = TestServer::start(Config {
        idle_timeout: Some(Duration::from_secs(1)),
        ..Config::default()
    });
    let addr = server.addr();
    let mut pair = Pair::new(addr, LOBBY);
    // It never sends a byte; it reads everything.
    let mut idle = Client::connect(addr);
    let nick = pair.observe_join();
    pair.expect_both("notices", &[format!("-- {nick} left #lobby (idle)")]);

    let (told, told_rx) = mpsc::channel();
    let idle_nick = nick.clone();
    thread::scope(|s| {
        // Owns the sender: if it fails, the channel says so at once.
        s.spawn(move || {
            let nick = idle_nick;
            let notice = "-- closing idle connection (nothing received for 1 s)";
            let mut read = Vec::new();
            for _ in 0..IDLE_ROUNDS * 10 {
                let line = idle.read_line();
                if line == notice {
                    idle.expect_eof();
                    let _ = told.send(read);
                    return;
                }
                read.push(line);
            }
            panic!("{nick} was never told it was idle; it read {read:?}");
        });
        // The pair talks, a line each every IDLE_PACE, until the idle
        // client has been told.
        for round in 0..=IDLE_ROUNDS {
            assert!(
                round < IDLE_ROUNDS,
                "the idle client was not dropped after {round} rounds"
            );
            pair.exchange(1);
            match told_rx.recv_timeout(IDLE_PACE) {
                Ok(read) => {
                    assert_eq!(read.first(), Some(&welcome_line(&nick)), "{nick}'s first line");
                    break;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => panic!("the idle client's thread failed"),
            }
        }
    });
    pair.settle();
    pair.newcomer_is_served(addr);
}

// ---------------------------------------------------------------------------
// 11. SIGTERM with a long queue.

/// Lines of 1 KiB queued for a client that is not reading when SIGTERM
/// comes: 400 KiB, under the default 1 MiB sendq.
const QUEUED_LINES: usize = 400;

#[test]
fn sigterm_delivers_every_queued_message_before_the_notice_and_the_close() {
    let mut daemon = Daemon::start(&["--rate", "0"]);
    let addr = daemon.addr();
    let mut alice = daemon.connect_named("alice");
    // A small receive window: what it is sent waits on the daemon's side.
    let mut reader = Client::guest_from_stream(connect_socket(addr, None, Some(4096)));
    let guest = reader.nick().to_string();
    alice.expect_line(&format!("-- {guest} joined #lobby"));

    let lines: Vec<String> = (0..QUEUED_LINES)
        .map(|i| format!("queued {i:04} {}", "q".repeat(1000)))
        .collect();
    alice.send_raw(&joined_lines(&lines));
    // The reply proves the daemon handled every line before it.
    alice.send("/who");
    alice.expect_line(&format!("-- 2 in #lobby: alice, {guest}"));
    daemon.proc.signal("TERM");

    for line in &lines {
        reader.expect_line(&format!("<alice> {line}"));
    }
    reader.expect_line("-- server shutting down");
    reader.expect_eof();
    alice.expect_line("-- server shutting down");
    alice.expect_eof();
    drop((alice, reader));
    daemon.proc.expect_exit_code(0);
    assert_no_panic_or_error(daemon.proc.stderr_lines());
}

// ---------------------------------------------------------------------------
// A spammer and a room operator.

#[test]
fn a_spammer_is_muted_kicked_and_banned_while_the_room_chats_on() {
    const SPAM: usize = 100;
    const TALK: usize = 20;
    let server = TestServer::start(Config {
        rate: 0,
        max_per_ip: 0,
        max_per_net: 0,
        connect_rate: 0,
        // Joins go unannounced: what each reads is chat and moderation.
        quiet_above: 1,
        history: 0,
        replay: 0,
        ..Config::default()
    });
    let join = |nick: &str| {
        let mut client = Client::connect_named(server.addr(), nick);
        client.send("/join busy");
        client.expect_line("-- you joined #busy");
        client
    };
    let mut alice = join("alice");
    let mut bob = join("bob");
    let mut carol = join("carol");
    let mut spammer = join("spammer");
    let spam = |from: usize| -> Vec<u8> {
        (from..from + SPAM)
            .map(|i| format!("BUY NOW {i}\n"))
            .collect::<String>()
            .into_bytes()
    };
    // The spam starts; the operator mutes the spammer with a ban; the spam
    // goes on; the room talks on; the operator kicks the spammer out.
    spammer.send_raw(&spam(0));
    alice.send("/ban spammer");
    // The spammer hears of the ban like everyone in the room (its own lines
    // never come back to it); what it sends from then on is refused.
    let banned = "-- alice banned spammer!*@* from #busy";
    let silenced = "!! you are banned from #busy: nothing you say there is delivered";
    let mut told = 0;
    for _ in 0..=SPAM {
        match spammer.read_line() {
            line if line == banned => break,
            line if line == silenced => told += 1,
            line => panic!("the spammer read {line}"),
        }
    }
    spammer.send_raw(&spam(SPAM));
    for i in 0..TALK {
        bob.send(&format!("bob {i}"));
        carol.send(&format!("carol {i}"));
    }
    alice.send("/kick spammer spam");

    // carol hears all of bob, in order; the spam that came before the ban,
    // and none after it; and both moderation notices.
    let kicked = "-- spammer was kicked from #busy by alice (spam)";
    let mut next_bob = 0;
    let (mut saw_ban, mut saw_kick, mut spam_before) = (false, false, 0);
    for _ in 0..(2 * SPAM + TALK + 2) {
        if next_bob == TALK && saw_kick {
            break;
        }
        let line = carol.read_line();
        if line == banned {
            saw_ban = true;
        } else if line == kicked {
            saw_kick = true;
        } else if let Some(n) = line.strip_prefix("<bob> bob ") {
            assert_eq!(n, next_bob.to_string(), "bob's lines in order");
            next_bob += 1;
        } else if line.starts_with("<spammer> BUY NOW ") {
            assert!(!saw_ban, "spam after the ban reached carol: {line}");
            spam_before += 1;
        } else {
            panic!("carol read something else: {line}");
        }
    }
    assert_eq!((next_bob, saw_ban, saw_kick), (TALK, true, true));
    assert!(
        spam_before <= SPAM,
        "only spam sent before the ban got through: {spam_before}"
    );
    // Each spam line after the ban was refused: as banned while the
    // spammer was in the room, as said in no room once it was kicked.
    let out_of_rooms = "!! you are in no room; /join one";
    // Every spam line carol did not hear was refused.
    let due = 2 * SPAM - spam_before - told;
    let mut refused = 0;
    let mut out = false;
    for _ in 0..(2 * SPAM + 2 * TALK + 2) {
        if refused == due && out {
            break;
        }
        let line = spammer.read_line();
        if line == silenced || line == out_of_rooms {
            refused += 1;
        } else if line == kicked {
            out = true;
        }
    }
    assert!(out, "the spammer heard it was kicked");
    assert_eq!(refused, due, "each spam line after the ban was refused");
    assert!(due >= SPAM, "all the spam sent once the ban was known: {due}");
    spammer.send("/join busy");
    spammer.expect_line("!! you are banned from #busy");
    // bob heard carol the same way, and the room goes on.
    bob.send("/who");
    let who = (0..(2 * SPAM + 2 * TALK + 4))
        .map(|_| bob.read_line())
        .find(|l| l.starts_with("-- 3 in #busy"));
    assert_eq!(who.as_deref(), Some("-- 3 in #busy: @alice, bob, carol"));
}
