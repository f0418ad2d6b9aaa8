//! A crowd: thousands of loopback connections driven by a few mio threads,
//! in groups whose members all behave alike.
//!
//! The attacks need connections of a handful of kinds: idle members who
//! read what comes, members who stop reading, clients who send one
//! request, attackers who write the same line as fast as the socket takes
//! it, connections that send `/quit` and then hold the socket without
//! reading. A group describes one kind once ([`GroupSpec`]); the crowd
//! opens its connections from the group's source addresses, takes them
//! through the handshake (the welcome, an optional `/join`), and then
//! does to the whole group what the attack's coordinator tells it: read or
//! stop reading, send these bytes once, write this chunk over and over,
//! close. What every group saw is counted in atomics ([`GroupStats`])
//! that the coordinator reads while the threads run.
//!
//! Why not the fan-out engine (`crate::engine`): it is built around
//! timestamped lines, windows and exactly-once accounting between its own
//! senders and receivers. An attack's connections mostly count bytes and
//! watch for a few kinds of line, and they must behave badly on purpose.
//!
//! Every thread sleeps in `epoll_wait` until a socket, its waker or a short
//! timeout; every turn is bounded (reads and writes per connection,
//! connects per turn), and each thread ends by itself at the end of its
//! lifetime. The connections are edge-triggered: a connection that still
//! had data when its turn's budget ran out is put on an "again" list and
//! served next turn, and one whose reading is switched back on is read at
//! once, since no new edge would come for bytes that are already there.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream as StdTcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use serde::Serialize;
use socket2::{Domain, Socket, Type};

use super::addrs::Sources;
use crate::error::{Error, Result};
use crate::procfs;

/// Each thread's waker; connections use tokens `0..`.
const WAKER: Token = Token(usize::MAX);
/// Size of each thread's read buffer.
const READ_BUF: usize = 64 * 1024;
/// Most reads (or writes) on one connection per turn, so one busy socket
/// cannot starve the others.
const BUDGET: usize = 4;
/// Longest sleep in `poll`: the lifetime and new commands are looked at
/// this often even when nothing happens.
const MAX_WAIT: Duration = Duration::from_millis(50);
/// How long a connection of a persistent group waits before replacing one
/// the daemon closed or refused: long enough for the daemon to have freed
/// its place under `--max-per-ip`, short enough to keep the pressure on.
pub const RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// The longest wait before a replacement, after replacements in a row
/// were refused.
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);
/// Bytes of a line looked at: handshake lines, refusals and the lines an
/// attack counts all say what they are near their start. The rest of a
/// long line (a `/who` reply of 100 KB) is only counted in bytes.
const HEAD: usize = 512;
/// Descriptors this process keeps for itself beyond a crowd's sockets
/// (the pair, probes, `/proc` reads, the daemon's log).
pub const FD_RESERVE: u64 = 64;

/// When a new connection counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// On its first line from the server, whatever it is (a refusal is
    /// counted as such and the connection is not ready).
    FirstLine,
    /// On `-- you joined ...`, after the setup was sent.
    Joined,
    /// As soon as `send_on_connect` is written (nothing is read).
    Written,
}

/// What a connection sends once the welcome has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setup {
    /// Nothing.
    Nothing,
    /// These bytes.
    Same(Vec<u8>),
    /// `/join PREFIX<index>`: a room of its own.
    OwnRoom(String),
}

/// One kind of connection.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// How many.
    pub count: usize,
    /// From where.
    pub sources: Sources,
    /// Bytes written as soon as the connection is up, before any line is
    /// read (the `/quit` of the quit-hold attack).
    pub send_on_connect: Vec<u8>,
    /// What it sends after the welcome.
    pub setup: Setup,
    /// When it is ready.
    pub ready: Ready,
    /// Whether it reads once ready (before, it reads what the handshake
    /// needs, except with [`Ready::Written`]).
    pub reading: bool,
    /// `SO_RCVBUF` to ask for before connecting: a small one makes what
    /// a non-reader is sent wait on the daemon's side.
    pub rcvbuf: Option<usize>,
    /// Lines containing this are counted in [`GroupStats::matched`].
    pub count_lines: Option<Vec<u8>>,
    /// Stop starting connects this long after the group was opened (the
    /// rest are never attempted).
    pub open_for: Option<Duration>,
    /// Persistent connections: one the daemon refuses before it is ready
    /// (a connection throttle, a place not yet freed) is retried, and one
    /// the daemon closes while the group writes its repeated chunk is
    /// replaced, each from the same address after [`RECONNECT_DELAY`]
    /// (twice as long after each refusal in a row, at most
    /// [`MAX_RECONNECT_DELAY`]). As a real attacker would: the attack gets
    /// its connections in and keeps its strength instead of fading as the
    /// daemon drops them. The group is in place once all are ready.
    pub persistent: bool,
}

impl GroupSpec {
    /// `count` connections from `sources` that read, send nothing, and are
    /// ready on their first line.
    pub fn idle(count: usize, sources: Sources) -> GroupSpec {
        GroupSpec {
            count,
            sources,
            send_on_connect: Vec::new(),
            setup: Setup::Nothing,
            ready: Ready::FirstLine,
            reading: true,
            rcvbuf: None,
            count_lines: None,
            open_for: None,
            persistent: false,
        }
    }

    /// `count` connections from `sources` that join `room` and are ready
    /// once in it.
    pub fn in_room(count: usize, sources: Sources, room: &str) -> GroupSpec {
        GroupSpec {
            setup: Setup::Same(format!("/join {room}\n").into_bytes()),
            ready: Ready::Joined,
            ..GroupSpec::idle(count, sources)
        }
    }

    /// The same, counting the lines that contain `needle`.
    pub fn counting(mut self, needle: &str) -> GroupSpec {
        self.count_lines = Some(needle.as_bytes().to_vec());
        self
    }
}

/// What a group's connections did, counted as it happens.
#[derive(Debug, Default)]
pub struct GroupStats {
    /// Connects started.
    pub attempted: AtomicU64,
    /// Connects that failed (refused, or an error before connecting).
    pub connect_failed: AtomicU64,
    /// Connects that completed.
    pub connected: AtomicU64,
    /// First lines that were the welcome.
    pub welcomed: AtomicU64,
    /// First lines that were an error (`!! ...`): refused.
    pub refused: AtomicU64,
    /// First lines that were neither.
    pub other_first: AtomicU64,
    /// Connections that became ready.
    pub ready: AtomicU64,
    /// Connections the server closed (EOF).
    pub eof: AtomicU64,
    /// Connections reset (or a write found the peer gone).
    pub reset: AtomicU64,
    /// Connections that ended on another error.
    pub failed: AtomicU64,
    /// Connections that ended (any of the three) before being ready.
    pub ended_unready: AtomicU64,
    /// Connections closed by this tool.
    pub closed: AtomicU64,
    /// Replacements started for connections the daemon closed.
    pub reconnects: AtomicU64,
    /// Bytes read.
    pub bytes_in: AtomicU64,
    /// Bytes written.
    pub bytes_out: AtomicU64,
    /// Lines containing the group's needle.
    pub matched: AtomicU64,
    /// When the first refusal came (ns since the crowd's base, plus 1; 0 =
    /// none yet).
    pub first_refusal: AtomicU64,
    /// When the first line containing the group's needle came (same
    /// encoding).
    pub first_match: AtomicU64,
    /// When the first connection ended (same encoding).
    pub first_end: AtomicU64,
    /// When the last connection ended (same encoding).
    pub last_end: AtomicU64,
    /// When the last connection became ready (same encoding).
    pub last_ready: AtomicU64,
    /// The first refusal line.
    refusal_line: Mutex<Option<String>>,
    /// The first connection error.
    first_error: Mutex<Option<String>>,
}

/// Reads an atomic counter.
fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Adds one.
fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// Sets a "first time" stamp if none is set.
fn first_time(a: &AtomicU64, stamp: u64) {
    let _ = a.compare_exchange(0, stamp, Ordering::Relaxed, Ordering::Relaxed);
}

impl GroupStats {
    /// Connections that ended after connecting (EOF, reset, error).
    pub fn ended(&self) -> u64 {
        get(&self.eof) + get(&self.reset) + get(&self.failed)
    }

    /// Connections open now: connected and neither ended nor closed.
    pub fn live(&self) -> u64 {
        get(&self.connected).saturating_sub(self.ended() + get(&self.closed))
    }

    /// Ready connections still open.
    pub fn live_ready(&self) -> u64 {
        let ready_ended = self.ended().saturating_sub(get(&self.ended_unready));
        get(&self.ready).saturating_sub(ready_ended + get(&self.closed))
    }

    /// Every connection of a group of `count` is ready, ended or failed to
    /// connect.
    pub fn settled(&self, count: usize) -> bool {
        get(&self.ready) + get(&self.ended_unready) + get(&self.connect_failed) >= count as u64
    }

    /// Bytes read so far.
    pub fn bytes_in(&self) -> u64 {
        get(&self.bytes_in)
    }

    /// Bytes written so far.
    pub fn bytes_out(&self) -> u64 {
        get(&self.bytes_out)
    }

    /// Lines matched so far.
    pub fn matched(&self) -> u64 {
        get(&self.matched)
    }

    /// A plain copy of the counters, for a report.
    pub fn snapshot(&self) -> GroupSnapshot {
        let secs = |a: &AtomicU64| {
            let v = get(a);
            (v > 0).then(|| round3((v - 1) as f64 / 1e9))
        };
        GroupSnapshot {
            attempted: get(&self.attempted),
            connect_failed: get(&self.connect_failed),
            connected: get(&self.connected),
            welcomed: get(&self.welcomed),
            refused: get(&self.refused),
            other_first: get(&self.other_first),
            ready: get(&self.ready),
            eof: get(&self.eof),
            reset: get(&self.reset),
            failed: get(&self.failed),
            closed: get(&self.closed),
            reconnects: get(&self.reconnects),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            matched: get(&self.matched),
            first_refusal_s: secs(&self.first_refusal),
            first_match_s: secs(&self.first_match),
            first_end_s: secs(&self.first_end),
            last_end_s: secs(&self.last_end),
            last_ready_s: secs(&self.last_ready),
            refusal_line: self.refusal_line.lock().ok().and_then(|l| l.clone()),
            first_error: self.first_error.lock().ok().and_then(|l| l.clone()),
        }
    }

    fn note_error(&self, e: &str) {
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Rounds to three decimals, for reports.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// [`GroupStats`] as plain numbers; times in seconds since the crowd
/// started.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupSnapshot {
    /// Connects started.
    pub attempted: u64,
    /// Connects that failed.
    pub connect_failed: u64,
    /// Connects that completed.
    pub connected: u64,
    /// Welcomed.
    pub welcomed: u64,
    /// Refused (`!! ...` as first line).
    pub refused: u64,
    /// First line neither welcome nor refusal.
    pub other_first: u64,
    /// Became ready.
    pub ready: u64,
    /// Closed by the server.
    pub eof: u64,
    /// Reset.
    pub reset: u64,
    /// Ended on another error.
    pub failed: u64,
    /// Closed by this tool.
    pub closed: u64,
    /// Replacements started.
    pub reconnects: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Lines matched.
    pub matched: u64,
    /// First refusal.
    pub first_refusal_s: Option<f64>,
    /// First line matched.
    pub first_match_s: Option<f64>,
    /// First end.
    pub first_end_s: Option<f64>,
    /// Last end.
    pub last_end_s: Option<f64>,
    /// Last ready.
    pub last_ready_s: Option<f64>,
    /// The first refusal line.
    pub refusal_line: Option<String>,
    /// The first error.
    pub first_error: Option<String>,
}

/// A group: its spec and its counters.
#[derive(Debug)]
struct Group {
    spec: GroupSpec,
    stats: Arc<GroupStats>,
}

/// Names a group of a crowd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupId(usize);

/// A command from the coordinator to every crowd thread.
#[derive(Debug)]
enum Cmd {
    /// Open these members of the group (indices in the group), starting no
    /// connect after the instant given.
    Open(usize, Arc<Group>, Vec<usize>, Option<Instant>),
    /// Members of the group read (true) or stop reading.
    Reading(usize, bool),
    /// Ready members of the group write these bytes once.
    Send(usize, Arc<[u8]>),
    /// Ready members write this chunk over and over (or stop, `None`).
    Repeat(usize, Option<Arc<[u8]>>),
    /// Members of the group are closed.
    Close(usize),
    /// Answer on this channel once every earlier command is handled.
    Ping(Sender<()>),
    /// Close everything and return.
    Stop,
}

/// The coordinator's handle on a crowd.
pub struct Crowd {
    dest: SocketAddr,
    /// Descriptors this process had open when the crowd started.
    fds_at_start: u64,
    /// Connections of the groups opened and not closed: descriptors the
    /// crowd may come to hold, whether or not their connects have started.
    reserved: u64,
    base: Instant,
    cmds: Vec<Sender<Cmd>>,
    wakers: Vec<Arc<Waker>>,
    handles: Vec<JoinHandle<()>>,
    groups: Vec<Arc<Group>>,
}

impl Crowd {
    /// Starts `threads` crowd threads for connections to `dest`, each
    /// with at most `inflight` connects under way, ending by themselves
    /// after `lifetime`. Times in the stats count from `base`.
    ///
    /// # Errors
    /// When a poll, waker or thread cannot be created.
    pub fn start(
        dest: SocketAddr,
        threads: usize,
        inflight: usize,
        base: Instant,
        lifetime: Duration,
    ) -> Result<Crowd> {
        let mut crowd = Crowd {
            dest,
            fds_at_start: procfs::fd_count(std::process::id()).unwrap_or(0),
            reserved: 0,
            base,
            cmds: Vec::new(),
            wakers: Vec::new(),
            handles: Vec::new(),
            groups: Vec::new(),
        };
        for index in 0..threads.max(1) {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = crossbeam_channel::unbounded();
            let worker = Worker {
                poll,
                dest,
                base,
                inflight: inflight.max(1),
                cmds: rx,
                peers: Vec::new(),
                members: Vec::new(),
                to_open: VecDeque::new(),
                connecting: 0,
                repeating: Vec::new(),
                later: Vec::new(),
                read_again: Vec::new(),
                write_again: Vec::new(),
                buf: vec![0; READ_BUF],
                stopping: false,
            };
            let deadline = Instant::now() + lifetime;
            let handle = thread::Builder::new()
                .name(format!("crowd-{index}"))
                .spawn(move || worker.run(deadline))
                .map_err(|e| Error::msg(format!("cannot start a crowd thread: {e}")))?;
            crowd.cmds.push(tx);
            crowd.wakers.push(waker);
            crowd.handles.push(handle);
        }
        Ok(crowd)
    }

    /// The server the crowd connects to.
    pub fn dest(&self) -> SocketAddr {
        self.dest
    }

    fn broadcast(&self, make: impl Fn() -> Cmd) {
        for (tx, waker) in self.cmds.iter().zip(&self.wakers) {
            // A thread that ended has nothing more to do.
            if tx.send(make()).is_ok() {
                let _ = waker.wake();
            }
        }
    }

    /// Opens a group: its connections are spread over the threads and
    /// started at once (at most `inflight` connects under way per thread).
    ///
    /// # Errors
    /// When this process's descriptor limit has no room for the group.
    pub fn open(&mut self, spec: GroupSpec) -> Result<GroupId> {
        let limit = procfs::open_files_limit().unwrap_or(1024);
        let room = limit
            .saturating_sub(self.fds_at_start + self.reserved)
            .saturating_sub(FD_RESERVE);
        if spec.count as u64 > room {
            return Err(Error::msg(format!(
                "{} more connections do not fit this process's descriptor limit ({room} left of {limit})",
                spec.count,
            )));
        }
        self.reserved += spec.count as u64;
        let id = self.groups.len();
        let open_until = spec.open_for.map(|d| Instant::now() + d);
        let group = Arc::new(Group {
            spec,
            stats: Arc::new(GroupStats::default()),
        });
        let threads = self.cmds.len().max(1);
        for (t, (tx, waker)) in self.cmds.iter().zip(&self.wakers).enumerate() {
            let share: Vec<usize> = (t..group.spec.count).step_by(threads).collect();
            if tx
                .send(Cmd::Open(id, Arc::clone(&group), share, open_until))
                .is_ok()
            {
                let _ = waker.wake();
            }
        }
        self.groups.push(group);
        Ok(GroupId(id))
    }

    /// The counters of a group.
    pub fn stats(&self, group: GroupId) -> Arc<GroupStats> {
        self.groups
            .get(group.0)
            .map_or_else(|| Arc::new(GroupStats::default()), |g| Arc::clone(&g.stats))
    }

    /// The group's size.
    pub fn count(&self, group: GroupId) -> usize {
        self.groups.get(group.0).map_or(0, |g| g.spec.count)
    }

    /// Waits until every connection of the group is ready, ended or failed
    /// to connect (for a persistent group: ready), at most `timeout`; true
    /// when they all are.
    pub fn wait_settled(&self, group: GroupId, timeout: Duration) -> bool {
        let stats = self.stats(group);
        let count = self.count(group);
        let persistent = self.groups.get(group.0).is_some_and(|g| g.spec.persistent);
        super::wait_until(timeout, || {
            if persistent {
                stats.live_ready() >= count as u64
            } else {
                stats.settled(count)
            }
        })
    }

    /// Fails unless `count` connections of `group` are ready and open,
    /// saying how many of `what` got in and what became of the others.
    ///
    /// # Errors
    /// As said.
    pub fn expect_all(&self, group: GroupId, count: usize, what: &str) -> Result<()> {
        let stats = self.stats(group);
        let got = stats.live_ready();
        if got < count as u64 {
            return Err(Error::msg(format!(
                "only {got} of {count} {what} got in: {:?}",
                stats.snapshot()
            )));
        }
        Ok(())
    }

    /// Members of the group read, or stop reading.
    pub fn set_reading(&self, group: GroupId, on: bool) {
        self.broadcast(|| Cmd::Reading(group.0, on));
    }

    /// Ready members of the group write `bytes` once.
    pub fn send(&self, group: GroupId, bytes: &[u8]) {
        let shared: Arc<[u8]> = Arc::from(bytes);
        self.broadcast(|| Cmd::Send(group.0, Arc::clone(&shared)));
    }

    /// Ready members write `chunk` over and over, as fast as their sockets
    /// take it; `None` stops them.
    pub fn repeat(&self, group: GroupId, chunk: Option<&[u8]>) {
        let shared: Option<Arc<[u8]>> = chunk.map(Arc::from);
        self.broadcast(|| Cmd::Repeat(group.0, shared.clone()));
    }

    /// Closes the group's connections.
    pub fn close(&mut self, group: GroupId) {
        self.broadcast(|| Cmd::Close(group.0));
        self.reserved = self.reserved.saturating_sub(self.count(group) as u64);
    }

    /// Waits until every thread has handled the commands given so far
    /// (at most `timeout`), so that, say, readers have stopped reading
    /// before senders start. True when all have.
    pub fn sync(&self, timeout: Duration) -> bool {
        let (tx, rx) = crossbeam_channel::unbounded();
        self.broadcast(|| Cmd::Ping(tx.clone()));
        let deadline = Instant::now() + timeout;
        (0..self.cmds.len()).all(|_| rx.recv_deadline(deadline).is_ok())
    }

    /// Nanoseconds since the crowd's base, plus one (the stats' encoding).
    pub fn stamp(&self) -> u64 {
        stamp(self.base)
    }

    /// Stops every thread, closing every connection.
    pub fn stop(&mut self) {
        self.broadcast(|| Cmd::Stop);
        // Each thread returns promptly on Stop, and in any case by its
        // lifetime.
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Descriptors this process may still open, keeping [`FD_RESERVE`].
pub fn descriptor_room() -> u64 {
    let limit = procfs::open_files_limit().unwrap_or(1024);
    let open = procfs::fd_count(std::process::id()).unwrap_or(0);
    limit.saturating_sub(open).saturating_sub(FD_RESERVE)
}

/// ns since `base`, plus one, so that 0 can mean "never".
fn stamp(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The nonblocking connect has not finished.
    Connecting,
    /// Connected; waiting for the server's first line.
    AwaitFirst,
    /// Sent its setup; waiting for `-- you joined`.
    AwaitJoined,
    /// Ready.
    Ready,
    /// Ended or closed.
    Dead,
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Eof,
    Reset,
    Failed,
    Closed,
}

/// A connect still to start.
struct Pending {
    /// Its group's id.
    id: usize,
    /// Its group.
    group: Arc<Group>,
    /// Its index in the group.
    index: usize,
    /// Not started after this (the group's opening time).
    until: Option<Instant>,
    /// Replacements of this index in a row that were refused.
    attempt: u32,
}

/// One connection.
struct Peer {
    /// The socket; `None` once dead (the descriptor is closed).
    stream: Option<TcpStream>,
    /// Its group.
    group: Arc<Group>,
    /// Its group's id.
    gid: usize,
    /// Its index in the group.
    index: usize,
    /// Replacements of this index in a row that were not ready (refused).
    attempt: u32,
    state: State,
    /// Reads once ready.
    reading: bool,
    /// Bytes still to write once.
    out: Vec<u8>,
    /// How much of `out` is written.
    out_pos: usize,
    /// The chunk written over and over, and where in it the next write
    /// starts.
    repeat: Option<(Arc<[u8]>, usize)>,
    /// The head of an unfinished line, while lines are looked at.
    partial: Vec<u8>,
}

impl Peer {
    fn reads(&self) -> bool {
        match self.state {
            State::Dead => false,
            State::Ready => self.reading,
            // The handshake needs its lines, except when nothing is to be
            // read at all.
            _ => self.group.spec.ready != Ready::Written || self.reading,
        }
    }

    fn wants_lines(&self) -> bool {
        self.state != State::Ready || self.group.spec.count_lines.is_some()
    }
}

/// One crowd thread.
struct Worker {
    poll: Poll,
    dest: SocketAddr,
    base: Instant,
    inflight: usize,
    cmds: Receiver<Cmd>,
    /// Every connection this thread opened; the index is its token.
    peers: Vec<Peer>,
    /// Per group id, the indices into `peers` of its members here.
    members: Vec<Vec<usize>>,
    /// Connects still to start: (group id, group, index, not after).
    to_open: VecDeque<Pending>,
    /// Connects under way.
    connecting: usize,
    /// Per group id, the chunk its members write over and over, while
    /// they do.
    repeating: Vec<Option<Arc<[u8]>>>,
    /// Replacements to start once due.
    later: Vec<(Instant, Pending)>,
    /// Connections with more to read than one turn took.
    read_again: Vec<usize>,
    /// Connections with more to write than one turn took.
    write_again: Vec<usize>,
    buf: Vec<u8>,
    stopping: bool,
}

impl Worker {
    fn run(mut self, deadline: Instant) {
        let mut events = Events::with_capacity(1024);
        while !self.stopping && Instant::now() < deadline {
            let busy = !self.read_again.is_empty()
                || !self.write_again.is_empty()
                || (!self.to_open.is_empty() && self.connecting < self.inflight);
            let timeout = if busy {
                Duration::ZERO
            } else {
                let now = Instant::now();
                let due = self
                    .later
                    .iter()
                    .map(|(at, _)| at.saturating_duration_since(now))
                    .min();
                due.map_or(MAX_WAIT, |d| d.min(MAX_WAIT))
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                let idx = event.token().0;
                if event.is_writable() || event.is_error() {
                    self.on_writable(idx);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.on_readable(idx);
                }
            }
            self.take_commands();
            for idx in std::mem::take(&mut self.read_again) {
                self.on_readable(idx);
            }
            for idx in std::mem::take(&mut self.write_again) {
                self.on_writable(idx);
            }
            self.pump_opens();
        }
        // Dropping the peers closes every socket.
    }

    fn take_commands(&mut self) {
        // Bounded: a handful of commands per step of an attack.
        for _ in 0..256 {
            match self.cmds.try_recv() {
                Ok(Cmd::Open(id, group, indices, until)) => {
                    if self.members.len() <= id {
                        self.members.resize_with(id + 1, Vec::new);
                        self.repeating.resize(id + 1, None);
                    }
                    self.to_open.extend(indices.into_iter().map(|index| Pending {
                        id,
                        group: Arc::clone(&group),
                        index,
                        until,
                        attempt: 0,
                    }));
                }
                Ok(Cmd::Reading(id, on)) => {
                    for idx in self.members.get(id).cloned().unwrap_or_default() {
                        if let Some(peer) = self.peers.get_mut(idx) {
                            peer.reading = on;
                            if on {
                                self.read_again.push(idx);
                            }
                        }
                    }
                }
                Ok(Cmd::Send(id, bytes)) => {
                    for idx in self.members.get(id).cloned().unwrap_or_default() {
                        if let Some(peer) = self.peers.get_mut(idx).filter(|p| p.state == State::Ready) {
                            peer.out.extend_from_slice(&bytes);
                            self.write_again.push(idx);
                        }
                    }
                }
                Ok(Cmd::Repeat(id, chunk)) => {
                    if let Some(slot) = self.repeating.get_mut(id) {
                        slot.clone_from(&chunk);
                    }
                    for idx in self.members.get(id).cloned().unwrap_or_default() {
                        if let Some(peer) = self.peers.get_mut(idx).filter(|p| p.state == State::Ready) {
                            peer.repeat = chunk.as_ref().map(|c| (Arc::clone(c), 0));
                            self.write_again.push(idx);
                        }
                    }
                }
                Ok(Cmd::Close(id)) => {
                    // Not-yet-started connects of the group are dropped too.
                    self.to_open.retain(|p| p.id != id);
                    self.later.retain(|(_, p)| p.id != id);
                    for idx in self.members.get(id).cloned().unwrap_or_default() {
                        self.end(idx, End::Closed, None);
                    }
                }
                Ok(Cmd::Ping(reply)) => {
                    let _ = reply.send(());
                }
                Ok(Cmd::Stop) | Err(TryRecvError::Disconnected) => {
                    self.stopping = true;
                    return;
                }
                Err(TryRecvError::Empty) => return,
            }
        }
    }

    /// Starts connects while fewer than `inflight` are under way.
    fn pump_opens(&mut self) {
        let now = Instant::now();
        // Due replacements go first.
        if self.later.iter().any(|(at, _)| *at <= now) {
            let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.later)
                .into_iter()
                .partition(|(at, _)| *at <= now);
            self.later = waiting;
            for (_, pending) in due {
                self.to_open.push_front(pending);
            }
        }
        while self.connecting < self.inflight {
            let Some(Pending {
                id,
                group,
                index,
                until,
                attempt,
            }) = self.to_open.pop_front()
            else {
                break;
            };
            if until.is_some_and(|u| now >= u) {
                // Past the group's opening time: the rest of it too.
                self.to_open.retain(|p| p.id != id);
                continue;
            }
            bump(&group.stats.attempted);
            let source = IpAddr::V4(group.spec.sources.addr(index));
            let token = Token(self.peers.len());
            let started = start_connect(self.dest, source, group.spec.rcvbuf).and_then(|mut stream| {
                self.poll
                    .registry()
                    .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
                Ok(stream)
            });
            match started {
                Ok(stream) => {
                    let reading = group.spec.reading;
                    self.peers.push(Peer {
                        stream: Some(stream),
                        gid: id,
                        group,
                        index,
                        attempt,
                        state: State::Connecting,
                        reading,
                        out: Vec::new(),
                        out_pos: 0,
                        repeat: None,
                        partial: Vec::new(),
                    });
                    if let Some(list) = self.members.get_mut(id) {
                        list.push(token.0);
                    }
                    self.connecting += 1;
                }
                Err(e) => {
                    group.stats.note_error(&format!("connect: {e}"));
                    bump(&group.stats.connect_failed);
                }
            }
        }
    }

    /// Finishes a pending connect; false when the peer is not connected
    /// (yet, or any more).
    fn check_connected(&mut self, idx: usize) -> bool {
        let Some(peer) = self.peers.get_mut(idx) else {
            return false;
        };
        if peer.state != State::Connecting {
            return peer.state != State::Dead;
        }
        let Some(stream) = &peer.stream else {
            return false;
        };
        let outcome = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
                Err(e) => Err(e),
            },
        };
        match outcome {
            Ok(false) => false,
            Ok(true) => {
                self.connecting = self.connecting.saturating_sub(1);
                peer.state = State::AwaitFirst;
                bump(&peer.group.stats.connected);
                let hello = peer.group.spec.send_on_connect.clone();
                peer.out.extend_from_slice(&hello);
                true
            }
            Err(e) => {
                self.connecting = self.connecting.saturating_sub(1);
                let stats = Arc::clone(&peer.group.stats);
                stats.note_error(&format!("connect: {e}"));
                bump(&stats.connect_failed);
                peer.state = State::Dead;
                peer.stream = None;
                false
            }
        }
    }

    fn on_writable(&mut self, idx: usize) {
        if !self.check_connected(idx) {
            return;
        }
        let base = self.base;
        let Some(peer) = self.peers.get_mut(idx) else {
            return;
        };
        let Some(stream) = peer.stream.as_mut() else {
            return;
        };
        let stats = Arc::clone(&peer.group.stats);
        let mut result: io::Result<bool> = Ok(false);
        // The one-off bytes first, then the repeated chunk; at most BUDGET
        // writes in all this turn.
        for _ in 0..BUDGET {
            let pending: &[u8] = if peer.out_pos < peer.out.len() {
                peer.out.get(peer.out_pos..).unwrap_or_default()
            } else if let Some((chunk, at)) = &peer.repeat {
                chunk.get(*at..).unwrap_or_default()
            } else {
                break;
            };
            if pending.is_empty() {
                break;
            }
            match stream.write(pending) {
                Ok(0) => {
                    result = Err(io::ErrorKind::WriteZero.into());
                    break;
                }
                Ok(n) => {
                    stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                    if peer.out_pos < peer.out.len() {
                        peer.out_pos += n;
                        if peer.out_pos >= peer.out.len() {
                            peer.out.clear();
                            peer.out_pos = 0;
                        }
                    } else if let Some((chunk, at)) = &mut peer.repeat {
                        *at = (*at + n) % chunk.len().max(1);
                    }
                    // More to write: served again next turn.
                    result = Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    result = Ok(false);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let more = peer.out_pos < peer.out.len() || peer.repeat.is_some();
        let mut now_ready = false;
        if peer.group.spec.ready == Ready::Written && peer.state == State::AwaitFirst && peer.out.is_empty() {
            peer.state = State::Ready;
            bump(&stats.ready);
            stats.last_ready.store(stamp(base), Ordering::Relaxed);
            now_ready = true;
        }
        if now_ready {
            self.became_ready(idx);
        }
        match result {
            Ok(true) if more => self.write_again.push(idx),
            Ok(_) => {}
            Err(e) => {
                let end = if is_reset(&e) { End::Reset } else { End::Failed };
                self.end(idx, end, Some(&e));
            }
        }
    }

    fn on_readable(&mut self, idx: usize) {
        if !self.check_connected(idx) {
            return;
        }
        let mut buf = std::mem::take(&mut self.buf);
        let mut outcome: Option<(End, Option<io::Error>)> = None;
        let mut more = false;
        for turn in 0..BUDGET {
            let Some(peer) = self.peers.get_mut(idx).filter(|p| p.reads()) else {
                break;
            };
            let Some(stream) = peer.stream.as_mut() else {
                break;
            };
            match stream.read(&mut buf) {
                Ok(0) => {
                    outcome = Some((End::Eof, None));
                    break;
                }
                Ok(n) => {
                    peer.group.stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    if peer.wants_lines() {
                        self.lines(idx, buf.get(..n).unwrap_or_default());
                    }
                    if turn + 1 == BUDGET {
                        more = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let end = if is_reset(&e) { End::Reset } else { End::Failed };
                    outcome = Some((end, Some(e)));
                    break;
                }
            }
        }
        self.buf = buf;
        match outcome {
            Some((end, e)) => self.end(idx, end, e.as_ref()),
            None if more => self.read_again.push(idx),
            None => {}
        }
        // Setup bytes queued by a line just read go out now.
        if self.peers.get(idx).is_some_and(|p| p.out_pos < p.out.len()) {
            self.write_again.push(idx);
        }
    }

    /// Handles the lines in `data`, just read by peer `idx`.
    fn lines(&mut self, idx: usize, data: &[u8]) {
        let base = self.base;
        let Some(peer) = self.peers.get_mut(idx) else {
            return;
        };
        let mut head = std::mem::take(&mut peer.partial);
        let group = Arc::clone(&peer.group);
        let stats = &group.stats;
        let mut state = peer.state;
        let mut out: Vec<u8> = Vec::new();
        heads(&mut head, data, |line| {
            if let Some(needle) = &group.spec.count_lines {
                if memchr::memmem::find(line, needle).is_some() {
                    bump(&stats.matched);
                    first_time(&stats.first_match, stamp(base));
                }
            }
            match state {
                State::AwaitFirst => {
                    if line.starts_with(b"!!") {
                        bump(&stats.refused);
                        first_time(&stats.first_refusal, stamp(base));
                        if let Ok(mut first) = stats.refusal_line.lock() {
                            first.get_or_insert_with(|| String::from_utf8_lossy(line).into_owned());
                        }
                        // Refused: it will be closed, never ready.
                        state = State::AwaitJoined;
                        return;
                    }
                    if line.starts_with(b"-- welcome") {
                        bump(&stats.welcomed);
                    } else {
                        bump(&stats.other_first);
                    }
                    match (&group.spec.ready, &group.spec.setup) {
                        (Ready::FirstLine | Ready::Written, _) => {
                            state = State::Ready;
                            bump(&stats.ready);
                            stats.last_ready.store(stamp(base), Ordering::Relaxed);
                        }
                        (Ready::Joined, Setup::Same(bytes)) => {
                            out.extend_from_slice(bytes);
                            state = State::AwaitJoined;
                        }
                        (Ready::Joined, Setup::OwnRoom(prefix)) => {
                            out.extend_from_slice(format!("/join {prefix}{}\n", peer.index).as_bytes());
                            state = State::AwaitJoined;
                        }
                        (Ready::Joined, Setup::Nothing) => state = State::AwaitJoined,
                    }
                }
                State::AwaitJoined => {
                    if line.starts_with(b"-- you joined") && group.spec.ready == Ready::Joined {
                        state = State::Ready;
                        bump(&stats.ready);
                        stats.last_ready.store(stamp(base), Ordering::Relaxed);
                    }
                }
                State::Connecting | State::Ready | State::Dead => {}
            }
        });
        let now_ready = peer.state != State::Ready && state == State::Ready;
        peer.out.extend_from_slice(&out);
        peer.state = state;
        // Only a line still being read is kept (its head).
        peer.partial = if peer.wants_lines() { head } else { Vec::new() };
        if now_ready {
            self.became_ready(idx);
        }
    }

    /// A peer just became ready: if its group is writing a chunk over and
    /// over (a replacement joining a storm), it starts too.
    fn became_ready(&mut self, idx: usize) {
        let Some(peer) = self.peers.get_mut(idx) else {
            return;
        };
        if let Some(chunk) = self.repeating.get(peer.gid).cloned().flatten() {
            peer.repeat = Some((chunk, 0));
            self.write_again.push(idx);
        }
    }

    /// Ends peer `idx` (closing its socket) and counts how.
    fn end(&mut self, idx: usize, end: End, error: Option<&io::Error>) {
        let base = self.base;
        let Some(peer) = self.peers.get_mut(idx) else {
            return;
        };
        if peer.state == State::Dead {
            return;
        }
        let stats = Arc::clone(&peer.group.stats);
        if peer.state == State::Connecting {
            self.connecting = self.connecting.saturating_sub(1);
            bump(&stats.connect_failed);
        } else {
            match end {
                End::Eof => bump(&stats.eof),
                End::Reset => bump(&stats.reset),
                End::Failed => bump(&stats.failed),
                End::Closed => bump(&stats.closed),
            }
            if end != End::Closed {
                if peer.state != State::Ready {
                    bump(&stats.ended_unready);
                }
                let now = stamp(base);
                first_time(&stats.first_end, now);
                stats.last_end.store(now, Ordering::Relaxed);
            }
        }
        if let Some(e) = error {
            stats.note_error(&e.to_string());
        }
        let storming = self.repeating.get(peer.gid).is_some_and(Option::is_some);
        let unready = peer.state != State::Ready;
        if end != End::Closed && peer.group.spec.persistent && (unready || storming) {
            bump(&stats.reconnects);
            // A replacement that was refused waits twice as long next time.
            let attempt = if peer.state == State::Ready {
                0
            } else {
                peer.attempt.saturating_add(1)
            };
            let delay = RECONNECT_DELAY
                .saturating_mul(1 << attempt.min(5))
                .min(MAX_RECONNECT_DELAY);
            self.later.push((
                Instant::now() + delay,
                Pending {
                    id: peer.gid,
                    group: Arc::clone(&peer.group),
                    index: peer.index,
                    until: None,
                    attempt,
                },
            ));
        }
        peer.state = State::Dead;
        peer.stream = None;
        peer.out = Vec::new();
        peer.partial = Vec::new();
        peer.repeat = None;
    }
}

/// Splits `data` into lines, calling `line` with the first [`HEAD`]
/// bytes of each complete one (without `\n`); `head` holds the start of a
/// line cut by the end of `data`, at most [`HEAD`] bytes of it. Only the
/// head is copied, so a reply of 100 KB costs a `memchr`, not a copy.
fn heads(head: &mut Vec<u8>, data: &[u8], mut line: impl FnMut(&[u8])) {
    let mut rest = data;
    // Each turn consumes at least the `\n`, so this ends.
    while let Some(end) = memchr::memchr(b'\n', rest) {
        let (this, tail) = rest.split_at(end);
        if head.is_empty() {
            line(this.get(..HEAD.min(this.len())).unwrap_or_default());
        } else {
            take_head(head, this);
            line(head);
            head.clear();
        }
        rest = tail.get(1..).unwrap_or_default();
    }
    take_head(head, rest);
}

/// Appends to `head` what fits below [`HEAD`] bytes.
fn take_head(head: &mut Vec<u8>, bytes: &[u8]) {
    let room = HEAD.saturating_sub(head.len());
    head.extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
}

/// A reset, or a write that found the peer gone.
fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted
    )
}

/// Starts a nonblocking connect to `dest` from `source`, with `rcvbuf` set
/// first when given (the window is negotiated at connect).
pub fn start_connect(dest: SocketAddr, source: IpAddr, rcvbuf: Option<usize>) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(dest), Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size)?;
    }
    socket.bind(&SocketAddr::new(source, 0).into())?;
    match socket.connect(&dest.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(StdTcpStream::from(socket)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(head: &mut Vec<u8>, data: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        heads(head, data, |l| lines.push(l.to_vec()));
        lines
    }

    #[test]
    fn lines_cut_by_reads_are_joined_and_long_ones_cut_to_their_head() {
        let mut head = Vec::new();
        assert_eq!(collect(&mut head, b"ab\ncd"), [b"ab".to_vec()]);
        assert_eq!(collect(&mut head, b"e\n\nf"), [b"cde".to_vec(), Vec::new()]);
        let long = vec![b'x'; 3 * HEAD];
        assert!(collect(&mut head, &long).is_empty());
        let lines = collect(&mut head, b"yy\n");
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), HEAD);
        assert_eq!(lines[0][0], b'f');
        assert!(head.is_empty());
        let lines = collect(&mut head, &[long.as_slice(), b"\n"].concat());
        assert_eq!(lines[0].len(), HEAD);
    }
}
