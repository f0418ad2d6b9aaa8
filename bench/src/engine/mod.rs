//! The connection engine: a few I/O threads, each with its own
//! `mio::Poll` and a share of the connections, driven by one coordinating
//! thread.
//!
//! Why this shape: the generator shares two cores with the server it
//! measures, so it must hold thousands of sockets without a thread each
//! and without an async runtime, and it must not spin. Each I/O thread
//! sleeps in `epoll_wait` until a socket or its [`mio::Waker`] has
//! something; the coordinator ([`Engine`]) sends it commands over a
//! channel (open N connections, join a room, start sending, drain, stop)
//! and waits, with a timeout every time, for one milestone report per
//! thread. Fan-out flow control crosses threads through atomics only: each
//! thread publishes, per sender, the lowest count among its receivers
//! ([`crate::window::MinTracker`]), and wakes a sender's thread only when
//! that sender said it is blocked.
//!
//! A fan-out run starts in two phases: every thread first arms its
//! receivers (per-sender accounting) and acknowledges, and only once all
//! have acknowledged are the senders told to go. Starting each thread's
//! run when it took a single start command let one thread's senders
//! reach another thread's receivers before they were armed; those lines
//! were counted as lost and the run stalled on its window.
//!
//! Client `id` lives on thread `id % threads`; clients `0..senders` are
//! the senders of a fan-out run.
//!
//! Connections speak IRC instead of the line protocol when the
//! configuration has an [`IrcSetup`] (issue 16): all of them, or every
//! other one in a room mixing both ([`Mix`]); each connection knows which
//! it speaks, and the I/O thread handles its lines accordingly.
//!
//! Connections speak WebSocket instead when the configuration has a
//! [`WebSetup`] (issue 18): all of them, or every other one in a room
//! mixing WebSocket and line clients. Once upgraded a WebSocket client is a
//! line client whose lines are frames ([`crate::web`]). A fan-out run
//! counts deliveries and latency per [`Dialect`] of the receiver as well
//! as in all, so a mixed room says how each kind of client fared.
//!
//! Line clients are spread round-robin over several instances of a
//! cluster when the configuration lists them
//! ([`EngineConfig::cluster`], issue 17): client `id` on instance `id %
//! instances`, so senders and receivers are on every instance.
//!
//! Connections speak TLS when the configuration has a [`TlsClient`]
//! ([`crate::client::Conn`] drives it). Two more things serve the TLS
//! scenarios of issue 15: a *focus window* ([`Engine::focus`]), a stretch
//! of send times whose deliveries are also counted apart, so a run can say
//! what its clients saw while something else happened (a handshake
//! storm); and *churn* ([`Engine::churn`]), connections opened, taken
//! through their handshake and the server's welcome, and closed again, as
//! fast as a fixed number in flight allows.

mod io_thread;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use mio::{Poll, Token, Waker};

use crate::error::{Error, Result};
use crate::stats::{Integrity, Latency};
use crate::tls::{Negotiated, TlsClient};

pub use io_thread::{ChurnResult, ThreadResult};

/// The token of each thread's waker; connections use tokens `0..`.
const WAKER: Token = Token(usize::MAX);

/// Longest wait for every thread to arm a fan-out run. Arming is a pass
/// over the thread's connections, milliseconds even for thousands; the
/// bound only keeps a wedged thread from hanging the run.
const ARM_TIMEOUT: Duration = Duration::from_secs(30);

/// Which kind of server is at the other end: it decides the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// chat-server: a welcome line, then `/nick` and `/join` if asked.
    ChatServer,
    /// `ncat --chat`: an announcement line; no nicks, no rooms.
    Ncat,
    /// tokio's chat example (`examples/chat.rs` in tokio's repository, not
    /// part of this project): a `Please enter your username:` prompt,
    /// answered with `u<id>`; then one room, `NAME: text` lines, and
    /// `NAME has joined the chat` announcements.
    TokioChat,
    /// ngircd (Debian's, 26.1), a full IRC server: every connection speaks
    /// IRC to it ([`IrcSetup`]); nothing speaks the line protocol.
    Ngircd,
}

impl Flavor {
    /// The name of the kind in reports and on the command line
    /// (`--target`).
    pub fn name(self) -> &'static str {
        match self {
            Flavor::ChatServer => "chat-server",
            Flavor::Ncat => "ncat",
            Flavor::TokioChat => "tokio-chat",
            Flavor::Ngircd => "ngircd",
        }
    }

    /// Whether the server has rooms to join (ncat and tokio's example have
    /// one room, which every connection is in).
    pub fn has_rooms(self) -> bool {
        matches!(self, Flavor::ChatServer | Flavor::Ngircd)
    }
}

/// Which connections of a run speak IRC (issue 16).
#[derive(Debug, Clone)]
pub struct IrcSetup {
    /// Where they connect: chat-server's IRC listener, or ngircd.
    pub dest: SocketAddr,
    /// All of them, or every other one (a room mixing both protocols).
    pub mix: Mix,
    /// Clients that become IRC operators and set user mode `F` before they
    /// join (ngircd's exemption from its per-client command limit), when
    /// the server was given an operator for it.
    pub oper: Option<Oper>,
}

/// Which clients of a run speak IRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Every one.
    All,
    /// Clients with even numbers (so the senders too are half and half);
    /// the others speak the line protocol to [`EngineConfig::dest`].
    EveryOther,
}

/// Which connections of a run speak WebSocket (issue 18).
#[derive(Debug, Clone)]
pub struct WebSetup {
    /// Where they connect: chat-server's web listener (`--web-listen`).
    pub dest: SocketAddr,
    /// All of them, or every other one (a room mixing WebSocket and line
    /// clients).
    pub mix: Mix,
}

/// What one connection speaks over its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The server's own line protocol.
    Line,
    /// IRC ([`crate::irc`]).
    Irc,
    /// The line protocol in WebSocket frames ([`crate::web`]).
    Web,
}

impl Dialect {
    /// Every dialect, in the order of [`Dialect::index`].
    pub const ALL: [Dialect; 3] = [Dialect::Line, Dialect::Irc, Dialect::Web];

    /// Its name in reports: `line`, `irc`, `web`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Line => "line",
            Dialect::Irc => "irc",
            Dialect::Web => "web",
        }
    }

    /// Its place in per-dialect arrays.
    pub fn index(self) -> usize {
        match self {
            Dialect::Line => 0,
            Dialect::Irc => 1,
            Dialect::Web => 2,
        }
    }
}

/// An IRC operator the server knows, and which clients take it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oper {
    /// Its name in the server's configuration.
    pub name: String,
    /// Its password.
    pub password: String,
    /// Clients numbered below this take it up: a fan-out run's senders,
    /// the only ones that send enough for a flood limit to matter.
    pub below: usize,
}

/// What a new connection does before it counts as ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// Ready on the server's first line (tokio's chat example: once the
    /// username prompt is answered).
    Welcome,
    /// After the welcome, `/nick b<id>` and `/join <room>`; ready on
    /// `-- you joined`. (ncat, tokio's chat example: as
    /// [`Handshake::Welcome`].)
    Join(String),
    /// Never finishes: the connection counts as ready once connected (and
    /// its stall sent), and then does nothing. A crowd of clients stuck in
    /// their handshakes, holding the server's resources.
    Stall(Stall),
}

/// How a [`Handshake::Stall`] connection gets stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// Connects and sends nothing.
    Silent,
    /// Sends the first half of a TLS ClientHello (nothing over plain TCP).
    HalfHello,
}

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The server, on loopback.
    pub dest: SocketAddr,
    /// Its kind.
    pub flavor: Flavor,
    /// I/O threads.
    pub threads: usize,
    /// Loopback source addresses to spread over (0: let the kernel pick).
    pub sources: usize,
    /// Client numbers start here (so worker processes use distinct ones).
    pub first_id: usize,
    /// Most connects (and handshakes) under way at once, per thread.
    pub connect_inflight: usize,
    /// The I/O threads end by themselves after this long, whatever happens.
    pub lifetime: Duration,
    /// TLS over every connection, when the server speaks it.
    pub tls: Option<TlsClient>,
    /// IRC connections, when the run speaks IRC (issue 16).
    pub irc: Option<IrcSetup>,
    /// WebSocket connections, when the run speaks WebSocket (issue 18).
    pub web: Option<WebSetup>,
    /// The line listeners of clustered instances (issue 17), when the run
    /// spreads its clients over several: client `id` connects to
    /// `cluster[id % len]`. Empty: every line client connects to `dest`.
    pub cluster: Vec<SocketAddr>,
}

/// Whether client `id` is one of those `mix` picks.
fn picked(mix: Mix, id: usize) -> bool {
    mix == Mix::All || id.is_multiple_of(2)
}

impl EngineConfig {
    /// What client `id` speaks: WebSocket or IRC when the run's setup
    /// picks it, else the line protocol.
    pub fn dialect_for(&self, id: usize) -> Dialect {
        match (&self.web, &self.irc) {
            (Some(web), _) if picked(web.mix, id) => Dialect::Web,
            (_, Some(irc)) if picked(irc.mix, id) => Dialect::Irc,
            _ => Dialect::Line,
        }
    }

    /// Whether client `id` speaks IRC.
    pub fn speaks_irc(&self, id: usize) -> bool {
        self.dialect_for(id) == Dialect::Irc
    }

    /// Where client `id` connects.
    pub fn dest_for(&self, id: usize) -> SocketAddr {
        match (self.dialect_for(id), &self.irc, &self.web) {
            (Dialect::Irc, Some(irc), _) => irc.dest,
            (Dialect::Web, _, Some(web)) => web.dest,
            _ => self
                .cluster
                .get(id.checked_rem(self.cluster.len()).unwrap_or(0))
                .copied()
                .unwrap_or(self.dest),
        }
    }

    /// The operator client `id` takes up before it joins, if any.
    pub fn oper_for(&self, id: usize) -> Option<&Oper> {
        self.irc
            .as_ref()
            .and_then(|irc| irc.oper.as_ref())
            .filter(|oper| id < oper.below)
    }
}

/// What one fan-out run asks of the senders, and the atomics through which
/// the threads coordinate it.
#[derive(Debug)]
pub struct Plan {
    /// Number of senders (clients `0..senders`).
    pub senders: usize,
    /// Most lines a sender may be ahead of its slowest receiver.
    pub window: u64,
    /// Lines per second per sender, or as fast as the window allows.
    pub rate: Option<f64>,
    /// Most lines per sender.
    pub count: u64,
    /// Number of I/O threads.
    threads: usize,
    /// Lines sent so far, per sender.
    sent: Vec<AtomicU64>,
    /// Per thread and sender (`thread * senders + sender`), the lowest
    /// count of that sender's lines among the thread's receivers.
    acked: Vec<AtomicU64>,
    /// Per sender: it is waiting for the window to open.
    blocked: Vec<AtomicBool>,
    /// Every thread's waker, to wake a blocked sender's thread.
    wakers: Vec<Arc<Waker>>,
}

impl Plan {
    fn sent(&self, sender: usize) -> u64 {
        self.sent.get(sender).map_or(0, |a| a.load(Ordering::SeqCst))
    }

    /// The lowest count of `sender`'s lines over all receivers.
    fn acked_min(&self, sender: usize) -> u64 {
        (0..self.threads)
            .filter_map(|t| self.acked.get(t * self.senders + sender))
            .map(|a| a.load(Ordering::SeqCst))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Room left in `sender`'s window after `sent` lines. With none, marks
    /// the sender blocked, so that whichever thread's receivers open the
    /// window wakes the sender's thread, and looks once more: the window
    /// may have opened between the first look and the flag.
    fn room_or_block(&self, sender: usize, sent: u64) -> u64 {
        let room = || {
            self.acked_min(sender)
                .saturating_add(self.window)
                .saturating_sub(sent)
        };
        let first = room();
        if first > 0 {
            return first;
        }
        let Some(blocked) = self.blocked.get(sender) else {
            return 0;
        };
        blocked.store(true, Ordering::SeqCst);
        let second = room();
        if second > 0 {
            blocked.store(false, Ordering::SeqCst);
        }
        second
    }

    fn owner(&self, sender: usize) -> usize {
        sender % self.threads.max(1)
    }
}

/// When a fan-out run's senders send, fixed once every thread has armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// When sending starts, in ns since the base instant.
    pub start_ns: u64,
    /// When sending stops, in ns since the base instant.
    pub end_ns: u64,
}

/// A command from the coordinator to one I/O thread.
#[derive(Debug)]
enum Cmd {
    /// Open these clients with this handshake.
    Open(Vec<usize>, Handshake),
    /// Every ready client sends `/join` to this room.
    JoinAll(String),
    /// Arm a fan-out run: set up the receivers' accounting (senders do
    /// not send yet) and report [`Milestone::Armed`].
    Arm(Arc<Plan>),
    /// Every thread is armed: the senders start on this clock.
    Go(Clock),
    /// Senders are done; these are their final counts. Report once every
    /// receiver has them all.
    Drain(Arc<Vec<u64>>),
    /// Open, handshake and close connections until the plan's end.
    Churn(ChurnPlan),
    /// Close everything and return.
    Stop,
}

/// One thread's share of a churn.
#[derive(Debug, Clone, Copy)]
struct ChurnPlan {
    /// Connections in flight at once on this thread.
    inflight: usize,
    /// No connection is started after this, ns since the base.
    end_ns: u64,
    /// A connection not welcomed this long after its connect started
    /// counts as failed and is closed.
    timeout: Duration,
}

/// A milestone reported by one I/O thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Milestone {
    /// Its receivers are ready to count a fan-out run's lines.
    Armed,
    /// Its share of an `Open` is ready or failed.
    Opened,
    /// Its share of a `JoinAll` has joined or failed.
    Joined,
    /// Its senders are done.
    SendersDone,
    /// Its receivers have every line sent.
    Drained,
    /// Its share of a churn is over.
    Churned,
}

/// Counters shared by all threads.
#[derive(Debug)]
struct Shared {
    /// The time base of every stamp.
    base: Instant,
    /// Connections that finished their handshake and are open.
    live: AtomicUsize,
    /// Connections that failed before finishing their handshake.
    failed: AtomicUsize,
    /// Connections that died after their handshake.
    died: AtomicUsize,
    /// Bytes received, all connections.
    bytes_in: AtomicU64,
    /// The focus window's first send time, ns since the base; `u64::MAX`
    /// while there is none.
    focus_start: AtomicU64,
    /// Its last send time; `u64::MAX` while still open.
    focus_end: AtomicU64,
    /// The first connection error of any thread, for the coordinator to
    /// say why connections failed while the threads still run.
    first_error: OnceLock<String>,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether a line sent at `t` falls in the focus window.
    fn in_focus(&self, t: u64) -> bool {
        // Relaxed: a window edge seen a moment late moves it by that
        // moment, far less than the windows measured.
        t >= self.focus_start.load(Ordering::Relaxed) && t <= self.focus_end.load(Ordering::Relaxed)
    }
}

/// The focus window of an engine's fan-out runs, for another thread to
/// open and close while a run goes on: deliveries of lines *sent* inside
/// it are counted apart as well ([`FanoutOutcome::focus`]). A line sent in
/// the window but delivered after it closed still counts, however late.
#[derive(Debug, Clone)]
pub struct Focus {
    shared: Arc<Shared>,
}

impl Focus {
    /// Now, on the engine's clock (ns since its base).
    pub fn now_ns(&self) -> u64 {
        self.shared.now_ns()
    }

    /// Opens the window at `start_ns` (still open at the end).
    pub fn open_at(&self, start_ns: u64) {
        self.shared.focus_end.store(u64::MAX, Ordering::SeqCst);
        self.shared.focus_start.store(start_ns, Ordering::SeqCst);
    }

    /// Closes the window at `end_ns`.
    pub fn close_at(&self, end_ns: u64) {
        self.shared.focus_end.store(end_ns, Ordering::SeqCst);
    }

    /// The window, once opened: (start, end) in ns since the base, the end
    /// `None` while still open.
    pub fn window(&self) -> Option<(u64, Option<u64>)> {
        let start = self.shared.focus_start.load(Ordering::SeqCst);
        let end = self.shared.focus_end.load(Ordering::SeqCst);
        (start != u64::MAX).then_some((start, (end != u64::MAX).then_some(end)))
    }
}

/// The result of opening connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOutcome {
    /// Connections open and ready now (all batches).
    pub live: usize,
    /// Connections that failed to open so far (all batches).
    pub failed: usize,
    /// Connections that died after opening so far.
    pub died: usize,
    /// How long this batch took.
    pub elapsed: Duration,
    /// False when the batch did not finish in time.
    pub complete: bool,
}

/// The result of a fan-out run, all threads merged.
#[derive(Debug, Clone)]
pub struct FanoutOutcome {
    /// Lines sent by each sender.
    pub sent: Vec<u64>,
    /// Delivery accounting.
    pub integrity: Integrity,
    /// Latency of every delivery.
    pub latency: Latency,
    /// From the start of sending to the last delivery.
    pub active: Duration,
    /// False when the senders or the drain did not finish in time.
    pub complete: bool,
    /// Server lines that were not stamped deliveries (notices, ...).
    pub other_lines: u64,
    /// Worst delay of a fixed-rate sender behind its schedule.
    pub max_send_lag: Duration,
    /// The first connection error seen, if any.
    pub first_error: Option<String>,
    /// Latency of the deliveries of lines sent in the focus window.
    pub focus: Latency,
    /// What the TLS handshakes negotiated (the first one seen), for TLS
    /// runs.
    pub tls: Option<Negotiated>,
    /// Deliveries and their latency by the receiver's dialect (indexed by
    /// [`Dialect::index`]).
    pub by_dialect: [Tally; 3],
    /// The server's pings the clients answered (IRC `PING`, WebSocket
    /// Ping).
    pub pings_answered: u64,
}

/// The deliveries one kind of receiver got.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Deliveries (first deliveries only, as [`Integrity::delivered`]).
    pub delivered: u64,
    /// Their latency.
    pub latency: Latency,
}

impl Tally {
    /// Adds another thread's tally.
    pub fn merge(&mut self, other: &Tally) {
        self.delivered += other.delivered;
        self.latency.merge(&other.latency);
    }
}

/// The result of a churn, all threads merged.
#[derive(Debug, Clone)]
pub struct ChurnOutcome {
    /// Connections welcomed before the end.
    pub completed: u64,
    /// Connections that failed (refused, reset, a TLS error, timed out).
    pub failed: u64,
    /// Connections still under way at the end, abandoned.
    pub abandoned: u64,
    /// From connect to the server's first line, each completed one.
    pub latency: Latency,
    /// From the first connect to the end.
    pub elapsed: Duration,
    /// All threads reported their end in time.
    pub complete: bool,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// What the TLS handshakes negotiated (the first one seen).
    pub tls: Option<Negotiated>,
}

/// The coordinator's handle on the I/O threads.
pub struct Engine {
    shared: Arc<Shared>,
    cmds: Vec<Sender<Cmd>>,
    wakers: Vec<Arc<Waker>>,
    milestones: Receiver<Milestone>,
    handles: Vec<JoinHandle<ThreadResult>>,
    next_id: usize,
    threads: usize,
}

impl Engine {
    /// Starts `config.threads` I/O threads with no connections.
    ///
    /// # Errors
    /// When a poll, waker or thread cannot be created.
    pub fn start(config: EngineConfig) -> Result<Engine> {
        let threads = config.threads.max(1);
        let shared = Arc::new(Shared {
            base: Instant::now(),
            live: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            died: AtomicUsize::new(0),
            bytes_in: AtomicU64::new(0),
            focus_start: AtomicU64::new(u64::MAX),
            focus_end: AtomicU64::new(u64::MAX),
            first_error: OnceLock::new(),
        });
        let (milestone_tx, milestones) = crossbeam_channel::unbounded();
        let mut engine = Engine {
            shared,
            cmds: Vec::new(),
            wakers: Vec::new(),
            milestones,
            handles: Vec::new(),
            next_id: config.first_id,
            threads,
        };
        for index in 0..threads {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
            let io = io_thread::IoThread::new(
                index,
                poll,
                config.clone(),
                Arc::clone(&engine.shared),
                cmd_rx,
                milestone_tx.clone(),
            );
            let handle = thread::Builder::new()
                .name(format!("bench-io-{index}"))
                .spawn(move || io.run())
                .map_err(|e| Error::msg(format!("cannot start an I/O thread: {e}")))?;
            engine.cmds.push(cmd_tx);
            engine.wakers.push(waker);
            engine.handles.push(handle);
        }
        Ok(engine)
    }

    /// Nanoseconds since the time base.
    pub fn now_ns(&self) -> u64 {
        self.shared.now_ns()
    }

    /// The focus window of this engine's fan-out runs, for another thread
    /// to open and close.
    pub fn focus(&self) -> Focus {
        Focus {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Bytes received so far over all connections.
    pub fn bytes_in(&self) -> u64 {
        self.shared.bytes_in.load(Ordering::SeqCst)
    }

    /// The first connection error any thread saw so far.
    pub fn first_error(&self) -> Option<&str> {
        self.shared.first_error.get().map(String::as_str)
    }

    /// Connections open and ready now.
    pub fn live(&self) -> usize {
        self.shared.live.load(Ordering::SeqCst)
    }

    /// Connections (open and ready, failed to open, died after opening).
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.live(),
            self.shared.failed.load(Ordering::SeqCst),
            self.shared.died.load(Ordering::SeqCst),
        )
    }

    fn command(&self, thread: usize, cmd: Cmd) {
        if let (Some(tx), Some(waker)) = (self.cmds.get(thread), self.wakers.get(thread)) {
            // A thread that already ended has nothing to do with it.
            if tx.send(cmd).is_ok() {
                let _ = waker.wake();
            }
        }
    }

    /// Waits until `count` threads report `milestone`, or `timeout`.
    fn wait_for(&self, milestone: Milestone, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        // Each turn takes one report or ends at the deadline.
        while seen < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.milestones.recv_timeout(left) {
                Ok(m) if m == milestone => seen += 1,
                // A late report of an earlier step that timed out.
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return false,
            }
        }
        true
    }

    /// Opens `n` more connections with `handshake`, waiting at most
    /// `timeout` for all of them to be ready or failed.
    pub fn open(&mut self, n: usize, handshake: &Handshake, timeout: Duration) -> OpenOutcome {
        let started = Instant::now();
        let mut shares: Vec<Vec<usize>> = vec![Vec::new(); self.threads];
        for id in self.next_id..self.next_id + n {
            if let Some(share) = shares.get_mut(id % self.threads) {
                share.push(id);
            }
        }
        self.next_id += n;
        let mut busy = 0;
        for (thread, ids) in shares.into_iter().enumerate() {
            if !ids.is_empty() {
                busy += 1;
                self.command(thread, Cmd::Open(ids, handshake.clone()));
            }
        }
        let complete = self.wait_for(Milestone::Opened, busy, timeout);
        OpenOutcome {
            live: self.live(),
            failed: self.shared.failed.load(Ordering::SeqCst),
            died: self.shared.died.load(Ordering::SeqCst),
            elapsed: started.elapsed(),
            complete,
        }
    }

    /// Every ready connection joins `room`; waits at most `timeout` for
    /// all to be in. Returns whether all did, and how long it took.
    pub fn join_all(&self, room: &str, timeout: Duration) -> (bool, Duration) {
        let started = Instant::now();
        for thread in 0..self.threads {
            self.command(thread, Cmd::JoinAll(room.to_string()));
        }
        let complete = self.wait_for(Milestone::Joined, self.threads, timeout);
        (complete, started.elapsed())
    }

    /// Waits until no byte has arrived for `quiet` (server announcements
    /// have drained), at most `timeout`. Returns how long it waited.
    pub fn settle(&self, quiet: Duration, timeout: Duration) -> Duration {
        let started = Instant::now();
        let mut last = self.bytes_in();
        // Sampling a counter at an interval is the measurement itself here
        // ("nothing arrived for `quiet`"), bounded by `timeout`.
        while started.elapsed() < timeout {
            thread::sleep(quiet);
            let now = self.bytes_in();
            if now == last {
                break;
            }
            last = now;
        }
        started.elapsed()
    }

    /// Runs one fan-out: senders `0..senders` send for `duration` (or
    /// `count` lines each), then every receiver is given up to `drain`
    /// to receive every line sent.
    pub fn fanout(
        &mut self,
        senders: usize,
        window: u64,
        rate: Option<f64>,
        count: u64,
        duration: Duration,
        drain: Duration,
    ) -> FanoutOutcome {
        let plan = Arc::new(Plan {
            senders,
            window: window.max(1),
            rate: rate.filter(|r| *r > 0.0),
            count,
            threads: self.threads,
            sent: (0..senders).map(|_| AtomicU64::new(0)).collect(),
            acked: (0..senders * self.threads).map(|_| AtomicU64::new(0)).collect(),
            blocked: (0..senders).map(|_| AtomicBool::new(false)).collect(),
            wakers: self.wakers.clone(),
        });
        // Phase one: every thread arms its receivers and says so.
        for thread in 0..self.threads {
            self.command(thread, Cmd::Arm(Arc::clone(&plan)));
        }
        let armed = self.wait_for(Milestone::Armed, self.threads, ARM_TIMEOUT);
        // Phase two, only once all are armed: the senders go.
        let start_ns = self.now_ns();
        let duration_ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let sent_all = armed && {
            let clock = Clock {
                start_ns,
                end_ns: start_ns.saturating_add(duration_ns),
            };
            for thread in 0..self.threads {
                self.command(thread, Cmd::Go(clock));
            }
            self.wait_for(Milestone::SendersDone, self.threads, duration + drain)
        };
        let sent: Vec<u64> = (0..senders).map(|s| plan.sent(s)).collect();
        let finals = Arc::new(sent.clone());
        for thread in 0..self.threads {
            self.command(thread, Cmd::Drain(Arc::clone(&finals)));
        }
        let drained = armed && self.wait_for(Milestone::Drained, self.threads, drain);
        let results = self.stop();
        let mut outcome = FanoutOutcome {
            sent,
            integrity: Integrity::default(),
            latency: Latency::new(),
            active: Duration::ZERO,
            complete: sent_all && drained,
            other_lines: 0,
            max_send_lag: Duration::ZERO,
            focus: Latency::new(),
            tls: None,
            by_dialect: Default::default(),
            pings_answered: 0,
            first_error: (!armed).then(|| {
                format!(
                    "the generator threads did not all arm the run within {} s; nothing was sent",
                    ARM_TIMEOUT.as_secs()
                )
            }),
        };
        let mut last_ns = start_ns;
        let mut lag_ns = 0;
        for r in &results {
            outcome.integrity.add(&r.integrity);
            outcome.latency.merge(&r.latency);
            outcome.other_lines += r.other_lines;
            outcome.focus.merge(&r.focus_latency);
            for (total, part) in outcome.by_dialect.iter_mut().zip(&r.by_dialect) {
                total.merge(part);
            }
            outcome.pings_answered += r.pings_answered;
            last_ns = last_ns.max(r.last_delivery_ns);
            lag_ns = lag_ns.max(r.max_send_lag_ns);
            if outcome.first_error.is_none() {
                outcome.first_error.clone_from(&r.first_error);
            }
            if outcome.tls.is_none() {
                outcome.tls.clone_from(&r.tls);
            }
        }
        outcome.active = Duration::from_nanos(last_ns.saturating_sub(start_ns));
        outcome.max_send_lag = Duration::from_nanos(lag_ns);
        outcome
    }

    /// Opens connections, each taken through its TLS handshake (if any)
    /// and the server's first line and then closed, with `inflight` under
    /// way at once (spread over the threads), for `duration`. A connection
    /// not welcomed within `timeout` of its connect counts as failed.
    /// Then stops the threads.
    pub fn churn(&mut self, inflight: usize, duration: Duration, timeout: Duration) -> ChurnOutcome {
        let started = Instant::now();
        let end_ns = self
            .now_ns()
            .saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
        let mut busy = 0;
        for thread in 0..self.threads {
            let share = share_of(inflight, self.threads, thread);
            if share > 0 {
                busy += 1;
                self.command(
                    thread,
                    Cmd::Churn(ChurnPlan {
                        inflight: share,
                        end_ns,
                        timeout,
                    }),
                );
            }
        }
        let complete = self.wait_for(Milestone::Churned, busy, duration + timeout);
        let elapsed = started.elapsed().min(duration);
        let results = self.stop();
        let mut outcome = ChurnOutcome {
            completed: 0,
            failed: 0,
            abandoned: 0,
            latency: Latency::new(),
            elapsed,
            complete,
            first_error: None,
            tls: None,
        };
        for r in &results {
            outcome.completed += r.churn.completed;
            outcome.failed += r.churn.failed;
            outcome.abandoned += r.churn.abandoned;
            outcome.latency.merge(&r.churn.latency);
            if outcome.first_error.is_none() {
                outcome.first_error.clone_from(&r.first_error);
            }
            if outcome.tls.is_none() {
                outcome.tls.clone_from(&r.tls);
            }
        }
        outcome
    }

    /// Stops every thread (closing its connections) and collects what
    /// they counted.
    pub fn stop(&mut self) -> Vec<ThreadResult> {
        for thread in 0..self.threads {
            self.command(thread, Cmd::Stop);
        }
        // Each thread returns promptly on Stop, and in any case by its
        // lifetime.
        self.handles.drain(..).filter_map(|h| h.join().ok()).collect()
    }
}

/// Thread `index`'s share of `total` spread over `threads`: as even as
/// can be, the first threads taking one more.
pub fn share_of(total: usize, threads: usize, index: usize) -> usize {
    let threads = threads.max(1);
    total / threads + usize::from(index < total % threads)
}

impl Drop for Engine {
    fn drop(&mut self) {
        if !self.handles.is_empty() {
            self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_even_and_add_up() {
        assert_eq!((0..2).map(|i| share_of(8, 2, i)).collect::<Vec<_>>(), [4, 4]);
        assert_eq!((0..3).map(|i| share_of(8, 3, i)).collect::<Vec<_>>(), [3, 3, 2]);
        assert_eq!(
            (0..4).map(|i| share_of(2, 4, i)).collect::<Vec<_>>(),
            [1, 1, 0, 0]
        );
        // No threads is taken as one.
        assert_eq!(share_of(5, 0, 0), 5);
    }

    fn config(irc: Option<IrcSetup>) -> EngineConfig {
        config_with(irc, None)
    }

    fn config_with(irc: Option<IrcSetup>, web: Option<WebSetup>) -> EngineConfig {
        EngineConfig {
            dest: "127.0.0.1:7878".parse().unwrap(),
            flavor: Flavor::ChatServer,
            threads: 2,
            sources: 0,
            first_id: 0,
            connect_inflight: 1,
            lifetime: Duration::from_secs(1),
            tls: None,
            irc,
            web,
            cluster: Vec::new(),
        }
    }

    #[test]
    fn a_cluster_run_spreads_line_clients_round_robin() {
        let mut clustered = config(None);
        assert_eq!(clustered.dest_for(5), clustered.dest);
        let nodes: Vec<SocketAddr> = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        clustered.cluster = nodes.clone();
        assert_eq!(
            (0..6).map(|id| clustered.dest_for(id)).collect::<Vec<_>>(),
            [nodes[0], nodes[1], nodes[2], nodes[0], nodes[1], nodes[2]]
        );
    }

    #[test]
    fn a_mixed_run_puts_every_other_client_on_irc_and_opers_only_senders() {
        let irc_dest: SocketAddr = "127.0.0.1:6667".parse().unwrap();
        let line = config(None);
        assert!(!(0..4).any(|id| line.speaks_irc(id)));
        assert_eq!(line.dest_for(3), line.dest);

        let mut setup = IrcSetup {
            dest: irc_dest,
            mix: Mix::EveryOther,
            oper: None,
        };
        let mixed = config(Some(setup.clone()));
        assert_eq!(
            (0..4).map(|id| mixed.speaks_irc(id)).collect::<Vec<_>>(),
            [true, false, true, false]
        );
        assert_eq!((mixed.dest_for(2), mixed.dest_for(3)), (irc_dest, mixed.dest));
        assert_eq!(mixed.oper_for(0), None);

        setup.mix = Mix::All;
        setup.oper = Some(Oper {
            name: "bench".to_string(),
            password: "pw".to_string(),
            below: 2,
        });
        let all = config(Some(setup));
        assert!((0..4).all(|id| all.speaks_irc(id) && all.dest_for(id) == irc_dest));
        assert_eq!(all.oper_for(1).map(|o| o.name.as_str()), Some("bench"));
        assert_eq!(all.oper_for(2), None);
    }

    #[test]
    fn a_mixed_web_run_puts_every_other_client_on_the_web_listener() {
        let web_dest: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let mixed = config_with(
            None,
            Some(WebSetup {
                dest: web_dest,
                mix: Mix::EveryOther,
            }),
        );
        assert_eq!(
            (0..4).map(|id| mixed.dialect_for(id)).collect::<Vec<_>>(),
            [Dialect::Web, Dialect::Line, Dialect::Web, Dialect::Line]
        );
        assert_eq!((mixed.dest_for(0), mixed.dest_for(1)), (web_dest, mixed.dest));
        assert!(!(0..4).any(|id| mixed.speaks_irc(id)));

        let all = config_with(
            None,
            Some(WebSetup {
                dest: web_dest,
                mix: Mix::All,
            }),
        );
        assert!((0..4).all(|id| all.dialect_for(id) == Dialect::Web && all.dest_for(id) == web_dest));
        assert_eq!(
            Dialect::ALL.map(|d| (d.index(), d.name())),
            [(0, "line"), (1, "irc"), (2, "web")]
        );
    }
}
