//! The event loop of one I/O thread: its share of the sockets, without
//! blocking.
//!
//! Each of the `--threads` I/O threads runs one of these, with its own
//! poll, over the connections the acceptor gave it ([`crate::net::acceptor`]).
//! It reads and decodes what clients send, passes the lines to the hub, and
//! writes what the hub answers. The hub runs on its own thread; it wakes
//! this loop through a [`mio::Waker`] when it has output, and the loop then
//! takes a bounded number of messages each turn (wakes merge, so one wake
//! may stand for many messages; what is left is taken next turn, which
//! comes at once). Output for a connection is queued and written in as few
//! system calls as the kernel allows, after each batch. Spreading the
//! sockets over threads spreads those system calls over the cores, which
//! is most of the work of a big room.
//!
//! Nothing here ever waits for one socket or for the hub, and the limits
//! that protect the others one connection at a time are enforced here: the
//! read budget per turn, the outbound queue (`--sendq`), flood control
//! (`--rate`, `--burst`, see [`crate::net::flood`]), the idle timeout, and
//! the budget of sockets still closing. When the hub's inbound queue is
//! full, the loop stops reading lines (the connections that have more wait
//! in order) until the hub says it has room: backpressure, never a dropped
//! line and never a wait.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::{DecodeError, ErrorKind, LeaveReason, ServerEvent};
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use mio::event::Event;
use mio::{Events, Poll, Registry, Token};
use slab::Slab;

use crate::chat::messages::{Adopt, ConnId, Ending, Inbound, Outbound, Recipients, Released};
use crate::config::{Config, TestFault};
use crate::frontend::web::frames::{self, CLOSE_GOING_AWAY, CLOSE_PROTOCOL_ERROR};
use crate::frontend::web::http::{Reply, Status};
use crate::frontend::web::Step;
use crate::frontend::{Context, Encoding, Protocol, Session};
use crate::net::admission::OldestSilent;
use crate::net::connection::{
    is_disconnect, Connection, Limits, LineSink, Pause, Phase, ReadOutcome, RequestOutcome, WriteOutcome,
    READ_BUDGET,
};
use crate::net::shutdown::ShutdownHandle;
use crate::net::timers::{later, TimerKind, Timers};
use crate::net::transport::{Handshake, Transport};
use crate::ops::liveness::Heartbeat;
use crate::ops::logging::{and_more, counted, Throttled};
use crate::ops::stats::{CloseReason, Stats};

/// The waker's token. Connections use their slab key as token.
pub const WAKER: Token = Token(usize::MAX);

/// Once the server has closed a connection (after `/quit`, or its end of
/// stream), how long the client gets to read its last lines and close its
/// side before the socket is closed anyway (see [`Phase::Closing`] and
/// [`Phase::Lingering`]). Long enough for any live client; short enough
/// that a client that never reads cannot keep its slot. Under pressure
/// (more closing sockets than the budget, see [`Config::max_closing`]) the
/// oldest are closed sooner.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Size of the buffer every read goes through. 16 KiB takes a flood in few
/// system calls, and bounds what a paused connection holds read but not
/// decoded; it is one buffer for the whole loop, not per connection.
const READ_BUFFER: usize = 16 * 1024;

/// How many readiness events one poll returns at most.
const EVENTS_CAPACITY: usize = 1024;

/// What is read from each connection when shutdown begins: the lines its
/// client sent just before (see [`EventLoop::drain`]). Small, because
/// they are taken whether or not the hub has room for them.
const FINAL_READ_BUDGET: usize = 4 * 1024;

/// Before queueing more to a connection that already holds this much, try
/// to write it out, so that a burst in one batch is measured against
/// `--sendq` only after the kernel has taken what it will.
const FLUSH_BEFORE_QUEUEING: usize = 64 * 1024;

/// Most messages taken from the hub in one turn. The hub's channel is
/// bounded, but a turn that took all of it could still spend long on a big
/// room's fan-out while sockets wait; past this the loop writes what it
/// has, reads, and comes back at once.
const HUB_MESSAGES_PER_TURN: usize = 512;

/// The most TLS handshake steps one turn takes on. A step costs the CPU of
/// a signature (about 150 µs); a storm of hundreds of new TLS clients
/// would otherwise be served in one turn before established clients get
/// what they are owed, which held their p99 at 100 ms in the storm of
/// BENCHMARKS.md. The rest wait for the next turn, which comes at once.
const HANDSHAKES_PER_TURN: usize = 8;

/// While lines wait for room in the hub's queue, the longest the loop
/// sleeps before looking again. The hub wakes the loop when it has room
/// (see [`crate::chat::hub::Outlet::wants_room`]); this only bounds the
/// wait should that wake be missed.
const HUB_ROOM_RECHECK: Duration = Duration::from_millis(100);

/// How often every quiet connection gives back the buffers it no longer
/// needs (see [`Connection::release_idle_memory`]): a connection that was
/// sent a burst returns to the cost of an idle one within this long.
const RELEASE_INTERVAL: Duration = Duration::from_secs(10);

/// Freed buffers past which the event loop asks the allocator to give
/// memory back to the system at its next release (see
/// [`crate::ops::memory`]): a burst's worth, not a few lines'.
const GIVE_BACK_AFTER: usize = 1024 * 1024;

/// At most one warning a second about slow consumers and about closing
/// sockets cut short, each, per I/O thread: the disconnect itself is
/// logged by the hub, one line each.
const WARNING_INTERVAL: Duration = Duration::from_secs(1);

/// At most one warning about newcomers refused on a full server per this
/// long, per I/O thread (the acceptor rate-limits its own the same way).
const REFUSAL_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// The channels of one I/O thread.
#[derive(Debug)]
pub struct Channels {
    /// Lines and closes, to the hub; bounded.
    pub to_hub: Sender<Inbound>,
    /// Set while this thread waits for room in `to_hub`; the hub clears it
    /// and wakes the thread.
    pub wants_room: Arc<AtomicBool>,
    /// What the hub says to this thread's connections.
    pub from_hub: Receiver<Outbound>,
    /// New connections, from the acceptor.
    pub adopt: Receiver<Adopt>,
    /// Connections that never reached the hub, to the acceptor (the hub
    /// tells it of the others when they leave the chat).
    pub released: Sender<Released>,
    /// When this thread's longest-silent connection came (see
    /// [`Adopt::make_room`]), for the acceptor.
    pub oldest_silent: OldestSilent,
    /// The TLS configuration in force when the thread starts (none without
    /// TLS listeners), and the new ones a reload sends.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// See [`Channels::tls`].
    pub tls_updates: Receiver<Arc<rustls::ServerConfig>>,
    /// What the front ends say of the server (its name, its message of
    /// the day).
    pub context: Context,
    /// Where this thread's connections go on a restart that keeps them
    /// (see [`crate::upgrade`]).
    pub handover: Sender<crate::upgrade::CarriedConns>,
}

/// The I/O thread's way to the hub: a bounded channel and, for what it had
/// no room for, a backlog kept in order. Lines are only read while the
/// channel has room, so the backlog holds the messages the loop cannot
/// hold back (a connection came or went), at most one line per
/// connection (a final line at end of stream), and the requests of the
/// one line that filled the channel (at most an IRC command's TARGMAX):
/// it is bounded by the number of connections.
#[derive(Debug)]
struct HubLink {
    sender: Sender<Inbound>,
    backlog: VecDeque<Inbound>,
    wants_room: Arc<AtomicBool>,
}

/// The hub has stopped, which it only does if it failed.
#[derive(Debug)]
struct HubGone;

impl HubLink {
    /// True when one more line can go to the hub at once.
    fn has_room(&self) -> bool {
        self.backlog.is_empty() && !self.sender.is_full()
    }

    /// Sends `message` after anything held back, or holds it back too.
    fn send(&mut self, message: Inbound) -> Result<(), HubGone> {
        if !self.backlog.is_empty() {
            self.backlog.push_back(message);
            self.want_room();
            return Ok(());
        }
        match self.sender.try_send(message) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(message)) => {
                self.backlog.push_back(message);
                self.want_room();
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err(HubGone),
        }
    }

    /// Sends what was held back, as far as the hub has room. True when
    /// nothing is held back any more.
    fn flush(&mut self) -> Result<bool, HubGone> {
        while let Some(message) = self.backlog.pop_front() {
            match self.sender.try_send(message) {
                Ok(()) => {}
                Err(TrySendError::Full(message)) => {
                    self.backlog.push_front(message);
                    self.want_room();
                    return Ok(false);
                }
                Err(TrySendError::Disconnected(_)) => return Err(HubGone),
            }
        }
        Ok(true)
    }

    /// Asks the hub to wake this thread once it has room.
    fn want_room(&self) {
        self.wants_room.store(true, Ordering::Release);
    }
}

/// Where an open connection's decoded lines go: to the hub, while it has
/// room.
struct ToHub<'a> {
    link: &'a mut HubLink,
    /// The connection's front end, which makes requests of its lines
    /// (taken out of the connection while it reads).
    session: &'a mut Session,
    /// See [`crate::config::TestFault::Io`].
    panic_on: Option<&'a str>,
    id: ConnId,
    stats: &'a Stats,
    /// Set when a line that was not blank went to the hub.
    spoke: bool,
    /// Set when the hub is found gone.
    gone: bool,
    /// Take every line, holding back what the hub's queue has no room for
    /// (the final read at shutdown, which is bounded).
    always_room: bool,
}

impl LineSink for ToHub<'_> {
    fn has_room(&self) -> bool {
        self.always_room || self.link.has_room()
    }

    fn take(&mut self, decoded: Result<String, DecodeError>) {
        if let (Some(trigger), Ok(text)) = (self.panic_on, &decoded) {
            assert!(trigger != text, "test fault: the I/O thread panics as asked");
        }
        let ToHub {
            link,
            session,
            id,
            stats,
            spoke,
            gone,
            ..
        } = self;
        let mut asked = false;
        let received = Instant::now();
        session.take(decoded, &mut |request| {
            asked = true;
            let message = Inbound::Line {
                id: *id,
                line: request,
                received,
            };
            if link.send(message).is_err() {
                *gone = true;
            }
        });
        if asked {
            stats.count_line();
            *spoke = true;
        }
    }
}

/// How long a handover may take once it has begun, before the loop gives
/// up on the hub's state and ends (its connections are then closed): the
/// hub answers in milliseconds, unless it failed.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a restart that keeps the clients stands on one I/O thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handover {
    /// No handover under way.
    None,
    /// Stopped reading; waiting for the acceptor's last connections.
    Quiescing,
    /// Told the hub it read its last; waiting for its state to be out.
    Quiesced,
    /// The connections are handed over: the loop ends.
    Done,
}

/// Everything one I/O thread's event loop owns.
pub struct EventLoop {
    /// Which I/O thread this is (see [`ConnId::shard`]).
    shard: usize,
    poll: Poll,
    /// Connections by slab key, which is also their token.
    conns: Slab<Connection>,
    config: Config,
    /// Each connection's limits, from `config`.
    limits: Limits,
    hub: HubLink,
    from_hub: Receiver<Outbound>,
    /// The hub's channel was not emptied last turn: take more at once.
    more_from_hub: bool,
    adopt: Receiver<Adopt>,
    released: Sender<Released>,
    /// Says whether shutdown was asked for, and starts one should the hub
    /// fail.
    shutdown: ShutdownHandle,
    /// Scratch space for reads, shared by all connections.
    read_buf: Vec<u8>,
    /// Scratch space for encoding one event once per protocol for all its
    /// recipients (indexed by [`Encoding::index`]; empty = not encoded).
    encodings: [Vec<u8>; Encoding::COUNT],
    /// Scratch space for an event to one connection, encoded for it alone.
    own_encoding: Vec<u8>,
    /// What the front ends say of the server.
    context: Context,
    /// Slab keys of connections with output to write after this batch,
    /// each once (see [`Connection::flush_due`]).
    dirty: Vec<usize>,
    /// Connections dropped during this batch (their queue overflowed, or a
    /// write failed), with the reason their room will hear.
    dropped: Vec<(usize, LeaveReason)>,
    /// Connections whose reading waits for room in the hub's queue, in the
    /// order they began to wait.
    waiting_for_hub: Vec<usize>,
    /// Connections that used up their read budget, or whose handshake
    /// waits for the next turn's handshake budget: read again next turn.
    more_to_read: Vec<usize>,
    /// TLS handshakes this turn may still take on (see
    /// [`HANDSHAKES_PER_TURN`]).
    handshakes_left: usize,
    /// Close, resume and idle timers.
    timers: Timers,
    /// Connections closing or lingering (the hub let go of them; their
    /// sockets are still open), and in which order they began: past the
    /// budget, the oldest is closed at once. Bounded: an entry per closing
    /// socket of this thread, stale ones dropped from the front as they
    /// close, and the budget closes the oldest when there are too many.
    closing: usize,
    closing_order: VecDeque<ConnId>,
    /// This thread's share of [`Config::max_closing`].
    closing_budget: usize,
    /// Connections that never said anything, in the order they came (stale
    /// entries are skipped): the oldest makes room on a full server.
    /// Bounded: one entry per connection that came, and every
    /// [`RELEASE_INTERVAL`] the entries of those that spoke or left are
    /// dropped, so it holds at most what the connection throttle lets in
    /// during one interval beyond the connections themselves.
    silent_order: VecDeque<ConnId>,
    /// When the first of them came, for the acceptor.
    oldest_silent: OldestSilent,
    /// New TLS connections are made with this.
    tls_config: Option<Arc<rustls::ServerConfig>>,
    /// Where a certificate reload's new configuration comes from.
    tls_updates: Receiver<Arc<rustls::ServerConfig>>,
    /// When quiet connections next give back their idle buffers.
    next_release: Instant,
    /// Bytes of buffers freed since the last release: drained bursts,
    /// quiet connections' buffers, and those of connections that have gone.
    freed: usize,
    /// Set once shutdown has begun: when it must end, ready or not.
    drain_deadline: Option<Instant>,
    /// The acceptor has stopped: no more connections will come.
    acceptor_gone: bool,
    /// The hub has failed; it will send nothing more.
    hub_gone: bool,
    /// Counters for watchers on other threads.
    stats: Arc<Stats>,
    /// Counts this loop's turns, for the watchdog.
    heartbeat: Heartbeat,
    /// Bytes queued to this thread's connections and not yet written.
    queued_total: usize,
    /// This thread's share of the clients and queued-bytes gauges as last
    /// reported to [`Stats`].
    reported: (usize, usize),
    /// When the lines were read whose output was queued in this turn: the
    /// fan-out latency is measured once that output has been handed to the
    /// sockets (written, as far as each socket took it).
    fanout_pending: Vec<Instant>,
    /// Rate limits on warnings that can repeat.
    slow_warning: Throttled,
    closing_warning: Throttled,
    refused_warning: Throttled,
    origin_warning: Throttled,
    /// Where a handover stands (see [`crate::upgrade`]).
    handover: Handover,
    /// Where the connections go on a handover.
    handover_to: Sender<crate::upgrade::CarriedConns>,
}

impl EventLoop {
    /// The event loop of I/O thread `shard`, over `poll` (whose waker,
    /// registered by the caller, has the token [`WAKER`]).
    pub fn new(
        shard: usize,
        poll: Poll,
        config: Config,
        channels: Channels,
        shutdown: ShutdownHandle,
        stats: Arc<Stats>,
        heartbeat: Heartbeat,
    ) -> EventLoop {
        let closing_budget = (config.max_closing / config.io_threads().max(1)).max(1);
        EventLoop {
            shard,
            poll,
            conns: Slab::new(),
            limits: Limits {
                max_line: config.max_line,
                rate: config.rate,
                burst: config.burst,
            },
            config,
            hub: HubLink {
                sender: channels.to_hub,
                backlog: VecDeque::new(),
                wants_room: channels.wants_room,
            },
            from_hub: channels.from_hub,
            more_from_hub: false,
            adopt: channels.adopt,
            released: channels.released,
            shutdown,
            read_buf: vec![0; READ_BUFFER],
            encodings: Default::default(),
            own_encoding: Vec::new(),
            context: channels.context,
            dirty: Vec::new(),
            dropped: Vec::new(),
            waiting_for_hub: Vec::new(),
            more_to_read: Vec::new(),
            handshakes_left: HANDSHAKES_PER_TURN,
            timers: Timers::default(),
            closing: 0,
            closing_order: VecDeque::new(),
            closing_budget,
            silent_order: VecDeque::new(),
            oldest_silent: channels.oldest_silent,
            tls_config: channels.tls,
            tls_updates: channels.tls_updates,
            next_release: later(Instant::now(), RELEASE_INTERVAL),
            freed: 0,
            drain_deadline: None,
            acceptor_gone: false,
            hub_gone: false,
            stats,
            heartbeat,
            queued_total: 0,
            reported: (0, 0),
            fanout_pending: Vec::new(),
            slow_warning: Throttled::new("clients dropped as slow consumers", WARNING_INTERVAL),
            closing_warning: Throttled::new(
                "closing sockets closed without waiting (too many closing)",
                WARNING_INTERVAL,
            ),
            refused_warning: Throttled::new(
                "connections refused: server full, no one silent long enough to make room",
                REFUSAL_WARNING_INTERVAL,
            ),
            origin_warning: Throttled::new(
                "WebSocket upgrades refused for their origin",
                REFUSAL_WARNING_INTERVAL,
            ),
            handover: Handover::None,
            handover_to: channels.handover,
        }
    }

    /// Runs until shutdown has finished: every client told and closed, or
    /// the grace period over.
    ///
    /// # Errors
    /// When polling itself fails.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            self.handshakes_left = HANDSHAKES_PER_TURN;
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if self.shutdown.is_requested() && self.drain_deadline.is_none() {
                if self.shutdown.is_handover() {
                    self.quiesce();
                } else {
                    self.drain();
                }
            }
            for event in events.iter() {
                if event.token() != WAKER {
                    self.connection_ready(event.token().0, event);
                }
            }
            self.run_due_timers();
            self.read_more();
            self.take_tls_updates();
            self.take_adopted();
            self.quiesced_when_ready();
            self.take_hub_output();
            self.send_backlog();
            self.flush_dirty();
            self.remove_dropped();
            self.release_idle_memory();
            self.publish_oldest_silent();
            let now = Instant::now();
            for warning in [
                &mut self.slow_warning,
                &mut self.closing_warning,
                &mut self.refused_warning,
                &mut self.origin_warning,
            ] {
                warning.flush(now);
            }
            self.report();
            self.heartbeat.beat();
            if self.is_finished(Instant::now()) {
                break;
            }
        }
        // Whatever is left past the grace period is dropped with the loop;
        // its share of the gauges goes too.
        let (clients, queued) = self.reported;
        self.stats.shift_clients(clients, 0);
        self.stats.shift_queued_bytes(queued, 0);
        Ok(())
    }

    /// Shutdown has begun: reads the lines clients sent before it (at most
    /// [`FINAL_READ_BUDGET`] each, whether or not the hub's queue has room:
    /// they are few and bounded), then tells the hub this thread is done.
    /// From now on nothing more is read; the hub says goodbye to everyone
    /// after these lines.
    fn drain(&mut self) {
        let slots: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.phase == Phase::Open && !matches!(c.paused, Some(Pause::Flood(_))))
            .map(|(slot, _)| slot)
            .collect();
        for slot in slots {
            self.read_last_lines(slot);
        }
        // Those still handshaking or sending their HTTP request are not on
        // the chat: nothing is owed to them.
        let unheard: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Handshaking | Phase::Requesting))
            .map(|(slot, _)| slot)
            .collect();
        for slot in unheard {
            self.remove(slot, None, LeaveReason::Disconnected);
        }
        self.drain_deadline = Some(later(Instant::now(), self.config.shutdown_grace));
        self.tell_hub(Inbound::Drained);
    }

    /// A handover has begun: from now on nothing more is read (what clients
    /// send waits in their sockets for the next process), and once the
    /// acceptor has handed over its last connections the hub hears that
    /// this thread is done ([`EventLoop::quiesced_when_ready`]).
    fn quiesce(&mut self) {
        self.handover = Handover::Quiescing;
        self.drain_deadline = Some(later(Instant::now(), HANDOVER_TIMEOUT));
    }

    /// Once no more connections can come: closes those that cannot be
    /// carried (telling the ones on the chat why, and the hub that they
    /// left), then tells the hub this thread has read its last.
    fn quiesced_when_ready(&mut self) {
        if self.handover != Handover::Quiescing || !self.acceptor_gone {
            return;
        }
        let unheard: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Handshaking | Phase::Requesting))
            .map(|(slot, _)| slot)
            .collect();
        for slot in unheard {
            self.remove(slot, None, LeaveReason::Disconnected);
        }
        let left_behind: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.phase == Phase::Open && !c.can_be_carried())
            .map(|(_, c)| c.id)
            .collect();
        if !left_behind.is_empty() {
            log::warn!(
                "restart: {} cannot be carried (TLS, or a WebSocket mid-frame): closing them",
                counted(left_behind.len(), "connection")
            );
        }
        let notice = ServerEvent::Announcement {
            text: "the server is restarting and cannot keep this connection (TLS); please reconnect"
                .to_string(),
        };
        for id in left_behind {
            let mut bytes = Vec::new();
            if let Some(conn) = self.conns.get_mut(id.slot) {
                conn.session.encode_own(&notice, &self.context, &mut bytes);
            }
            self.queue_to(id, &bytes, false);
            self.client_ended(id.slot);
        }
        self.handover = Handover::Quiesced;
        self.tell_hub(Inbound::Drained);
    }

    /// The hub has handed its state over and said its last to this thread:
    /// hands every connection that can be carried to the server (which
    /// passes them to the next process), and closes the rest after a last
    /// try at writing what they are owed.
    fn hand_over(&mut self) {
        let mut carried = Vec::new();
        let slots: Vec<usize> = self.conns.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            let Some(mut conn) = self.conns.try_remove(slot) else { continue };
            self.timers.cancel_all(&mut conn.timers, conn.id);
            // What the kernel takes now need not be carried.
            let _ = flush_counted(
                &mut conn,
                self.poll.registry(),
                &self.stats,
                &mut self.queued_total,
            );
            if conn.can_be_carried() {
                match conn.carry(self.poll.registry()) {
                    Some(handed) => carried.push(handed),
                    None => self.stats.count_closed(CloseReason::Disconnect),
                }
            } else {
                conn.shutdown_write();
                conn.deregister(self.poll.registry());
                self.stats
                    .count_closed(conn.close_reason.unwrap_or(CloseReason::Shutdown));
            }
        }
        log::debug!(
            "I/O thread {} hands over {}",
            self.shard,
            counted(carried.len(), "connection")
        );
        // The server waits for it; it is gone only if the server failed.
        let _ = self.handover_to.send((self.shard, carried));
        self.queued_total = 0;
        self.handover = Handover::Done;
    }

    /// Takes back the connections the previous process handed over (see
    /// [`crate::upgrade`]), before the loop runs: each is registered and
    /// read at once (what it had sent but not had acted on first). Returns
    /// the id each is known by now, in the order given; `None` for one
    /// that could not be registered (it is closed).
    pub fn restore(
        &mut self,
        conns: Vec<(crate::upgrade::state::ConnState, std::net::TcpStream)>,
        next_serial: &mut u64,
    ) -> Vec<Option<ConnId>> {
        let now = Instant::now();
        let mut ids = Vec::with_capacity(conns.len());
        for (state, stream) in conns {
            let entry = self.conns.vacant_entry();
            let id = ConnId {
                shard: self.shard,
                slot: entry.key(),
                serial: *next_serial,
            };
            *next_serial += 1;
            let peer = state.peer;
            match Connection::restore(
                id,
                stream,
                state,
                &self.limits,
                self.poll.registry(),
                Token(id.slot),
            ) {
                Ok(conn) => {
                    let conn = entry.insert(conn);
                    if let Some(idle) = self.config.idle_timeout {
                        self.timers
                            .set(&mut conn.timers, later(now, idle), id, TimerKind::Idle);
                    }
                    let first_check = match conn.session.protocol() {
                        Protocol::Irc => Some(self.config.irc_keepalive.ping_after),
                        Protocol::Web => Some(self.config.web.keepalive.ping_after),
                        Protocol::Line | Protocol::Test => None,
                    };
                    if let Some(first) = first_check {
                        self.timers
                            .set(&mut conn.timers, later(now, first), id, TimerKind::Keepalive);
                    }
                    if conn.silent {
                        self.silent_order.push_back(id);
                    }
                    self.queued_total += conn.queued();
                    conn.paused = Some(Pause::Budget);
                    self.more_to_read.push(id.slot);
                    self.mark_dirty(id.slot);
                    ids.push(Some(id));
                }
                Err(e) => {
                    log::warn!("restart: cannot take back the connection from {peer}: {e}");
                    ids.push(None);
                }
            }
        }
        ids
    }

    /// The final read of [`EventLoop::drain`] for one connection.
    fn read_last_lines(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else { return };
        let mut session = std::mem::take(&mut conn.session);
        let mut sink = ToHub {
            link: &mut self.hub,
            session: &mut session,
            panic_on: None,
            id: conn.id,
            stats: &self.stats,
            spoke: false,
            gone: false,
            always_room: true,
        };
        let _ = conn.read_lines(&mut self.read_buf, Instant::now(), FINAL_READ_BUDGET, &mut sink);
        let gone = sink.gone;
        conn.session = session;
        self.stats.count_bytes_received(conn.take_bytes_read());
        if gone {
            self.hub_failed();
        }
    }

    /// How long the next poll may sleep: until the next deadline, not at
    /// all while work is left over from this turn.
    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if self.more_from_hub || !self.more_to_read.is_empty() {
            return Some(Duration::ZERO);
        }
        let waiting = !self.waiting_for_hub.is_empty() || !self.hub.backlog.is_empty();
        if waiting && !self.hub.sender.is_full() {
            return Some(Duration::ZERO);
        }
        let recheck = waiting.then(|| later(now, HUB_ROOM_RECHECK));
        [
            self.timers.next(),
            self.drain_deadline,
            Some(self.next_release),
            recheck,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| at.saturating_duration_since(now))
    }

    /// Takes the newest TLS configuration a reload has sent, for the
    /// connections made from now on.
    fn take_tls_updates(&mut self) {
        while let Ok(config) = self.tls_updates.try_recv() {
            self.tls_config = Some(config);
        }
    }

    /// Takes the connections the acceptor has handed over.
    fn take_adopted(&mut self) {
        loop {
            match self.adopt.try_recv() {
                Ok(adopt) => self.adopt(adopt),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.acceptor_gone = true;
                    return;
                }
            }
        }
    }

    /// Registers a connection handed over by the acceptor and tells the
    /// hub it is here; on a full server, first makes room for it.
    fn adopt(
        &mut self,
        Adopt {
            stream,
            addr,
            serial,
            make_room,
            protocol,
            tls,
        }: Adopt,
    ) {
        let now = Instant::now();
        if make_room && !self.make_room(now) {
            if let Some(suppressed) = self.refused_warning.check(now) {
                log::warn!(
                    "refused {addr}: server full, and no connection has been silent long enough to make room{}",
                    and_more(suppressed)
                );
            }
            self.stats.count_closed(CloseReason::RefusedFull);
            refuse(&stream, protocol, tls, ErrorKind::ServerFull, &self.stats);
            self.release(addr.ip());
            return;
        }
        let transport = if tls {
            match self
                .tls_config
                .as_ref()
                .map(|config| Transport::tls(stream, Arc::clone(config)))
            {
                Some(Ok(transport)) => transport,
                Some(Err(e)) => {
                    log::warn!("cannot start TLS with {addr}: {e}");
                    self.stats.count_closed(CloseReason::Handshake);
                    return self.release(addr.ip());
                }
                None => {
                    log::error!("a TLS connection from {addr} came to an I/O thread without a certificate");
                    self.stats.count_closed(CloseReason::Handshake);
                    return self.release(addr.ip());
                }
            }
        } else {
            Transport::Plain(stream)
        };
        let entry = self.conns.vacant_entry();
        let id = ConnId {
            shard: self.shard,
            slot: entry.key(),
            serial,
        };
        let token = Token(id.slot);
        match Connection::register(
            id,
            transport,
            (addr, protocol),
            &self.limits,
            self.poll.registry(),
            token,
        ) {
            Ok(conn) => {
                let slot = id.slot;
                let conn = entry.insert(conn);
                match conn.phase {
                    Phase::Handshaking => {
                        // Past it the connection is closed, and its place free.
                        let until = later(now, self.config.tls_handshake_timeout);
                        self.timers.set(&mut conn.timers, until, id, TimerKind::Handshake);
                        // The client may have sent its hello already.
                        self.read(slot);
                    }
                    Phase::Requesting => self.start_requesting(slot),
                    _ => self.arrived(slot),
                }
            }
            Err(e) => {
                log::warn!("cannot register connection from {addr}: {e}");
                self.stats.count_closed(CloseReason::Disconnect);
                self.release(addr.ip());
            }
        }
    }

    /// A connection is ready to chat (at once, or once its TLS handshake is
    /// over): the hub hears of it, and its idle clock starts.
    fn arrived(&mut self, slot: usize) {
        let now = Instant::now();
        let Some(conn) = self.conns.get_mut(slot) else { return };
        let (id, addr) = (conn.id, conn.addr);
        let arrival = conn.session.protocol().arrival();
        conn.arrived = true;
        conn.last_line = now;
        conn.since = now;
        if let Some(idle) = self.config.idle_timeout {
            self.timers
                .set(&mut conn.timers, later(now, idle), id, TimerKind::Idle);
        }
        let first_check = match conn.session.protocol() {
            Protocol::Irc => {
                let keepalive = self.config.irc_keepalive;
                Some(keepalive.register_within.min(keepalive.ping_after))
            }
            Protocol::Web => Some(self.config.web.keepalive.ping_after),
            Protocol::Line | Protocol::Test => None,
        };
        if let Some(first) = first_check {
            self.timers
                .set(&mut conn.timers, later(now, first), id, TimerKind::Keepalive);
        }
        self.silent_order.push_back(id);
        self.tell_hub(Inbound::Connected { id, addr, arrival });
    }

    /// Takes a TLS handshake on as far as the client's bytes allow; once it
    /// is over, the connection arrives and what it sent next is read.
    fn handshake(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else { return };
        let outcome = conn.handshake();
        self.stats.count_bytes_received(conn.take_bytes_read());
        if conn.has_transport_output() {
            self.mark_dirty(slot);
        }
        match outcome {
            Ok(Handshake::Done) => {
                let Some(conn) = self.conns.get_mut(slot) else { return };
                conn.phase = Phase::after_handshake(conn.session.protocol());
                let id = conn.id;
                self.timers.cancel(&mut conn.timers, id, TimerKind::Handshake);
                if conn.phase == Phase::Requesting {
                    self.start_requesting(slot);
                } else {
                    self.arrived(slot);
                    self.read(slot);
                }
            }
            Ok(Handshake::Pending) => {}
            Ok(Handshake::Eof) => self.remove(slot, None, LeaveReason::Disconnected),
            Err(e) => {
                if let Some(conn) = self.conns.get_mut(slot) {
                    log::debug!("{}: TLS handshake failed: {e}", conn.addr);
                    conn.close_reason = Some(CloseReason::Handshake);
                }
                self.remove(slot, None, LeaveReason::Disconnected);
            }
        }
    }

    /// A web connection begins its HTTP request: it has the request
    /// timeout to finish it, and it may have sent it already.
    fn start_requesting(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else { return };
        let id = conn.id;
        let until = later(Instant::now(), self.config.web.request_timeout);
        self.timers.set(&mut conn.timers, until, id, TimerKind::Handshake);
        self.read(slot);
    }

    /// Reads a web connection's HTTP request, and answers it once it is
    /// complete.
    fn read_request(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else { return };
        let outcome = conn.read_request(&mut self.read_buf, READ_BUDGET, &self.context.origins);
        self.stats.count_bytes_received(conn.take_bytes_read());
        match outcome {
            RequestOutcome::Pending | RequestOutcome::Answered(Step::More) => {}
            RequestOutcome::Budget => {
                conn.paused = Some(Pause::Budget);
                self.more_to_read.push(slot);
            }
            RequestOutcome::Answered(Step::Answer {
                reply,
                request,
                after,
            }) => {
                self.answer_request(slot, &reply, &request, after);
            }
            RequestOutcome::Eof => self.remove(slot, None, LeaveReason::Disconnected),
            RequestOutcome::Failed(e) => self.remove(slot, Some(e), LeaveReason::Disconnected),
        }
    }

    /// Writes the answer to a web connection's request: after an upgrade
    /// the connection is on the chat and reads frames; after anything else
    /// it is closed once the answer is written.
    fn answer_request(&mut self, slot: usize, reply: &Reply, request: &str, after: Vec<u8>) {
        let now = Instant::now();
        let Some(conn) = self.conns.get_mut(slot) else { return };
        let (id, addr) = (conn.id, conn.addr);
        self.timers.cancel(&mut conn.timers, id, TimerKind::Handshake);
        log::debug!("{addr}: {request}: {}", reply.status());
        if let Reply::Refused(Status::Forbidden, why) = reply {
            if let Some(suppressed) = self.origin_warning.check(now) {
                log::warn!("{addr}: WebSocket refused: {why}{}", and_more(suppressed));
            }
        }
        let mut bytes = Vec::new();
        reply.write(&mut bytes);
        if reply.upgrades() {
            conn.start_websocket(after, self.limits.max_line);
            self.queue_to(id, &bytes, false);
            self.arrived(slot);
            // The client's first frames may have come with its request.
            self.read(slot);
        } else {
            self.queue_to(id, &bytes, false);
            self.start_closing(slot, CloseReason::Disconnect);
        }
    }

    /// Ends the longest-connected connection that never said anything, if
    /// it has been here for [`Config::silent_grace`], so that a newcomer
    /// can have its place. False when there is none.
    fn make_room(&mut self, now: Instant) -> bool {
        while let Some(&id) = self.silent_order.front() {
            let Some(conn) = self.conns.get_mut(id.slot).filter(|c| c.id == id && c.silent) else {
                self.silent_order.pop_front();
                continue;
            };
            if now.saturating_duration_since(conn.since) < self.config.silent_grace {
                // The rest came later still.
                return false;
            }
            self.silent_order.pop_front();
            conn.silent = false;
            conn.phase = Phase::Leaving;
            conn.told_hub = true;
            conn.close_reason = Some(CloseReason::MadeRoom);
            self.tell_hub(Inbound::Ending {
                id,
                why: Ending::MakingRoom,
            });
            return true;
        }
        false
    }

    /// Tells the acceptor the place of a connection the hub never heard
    /// of is free (the hub tells it of the others).
    fn release(&self, ip: std::net::IpAddr) {
        // The acceptor is only gone during shutdown, when places no longer
        // matter.
        let _ = self.released.send(Released {
            shard: self.shard,
            ip,
        });
    }

    /// Puts the connection at `slot` on the list to flush after this batch,
    /// once.
    fn mark_dirty(&mut self, slot: usize) {
        if let Some(conn) = self.conns.get_mut(slot) {
            if !conn.flush_due {
                conn.flush_due = true;
                self.dirty.push(slot);
            }
        }
    }

    fn connection_ready(&mut self, slot: usize, event: &Event) {
        if event.is_writable() {
            self.mark_dirty(slot);
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.read(slot);
        }
    }

    /// Reads what the connection at `slot` has sent, as its phase allows.
    fn read(&mut self, slot: usize) {
        let shutting_down = self.drain_deadline.is_some();
        let Some(conn) = self.conns.get_mut(slot) else { return };
        if conn.paused.is_some() {
            // Read when the pause ends.
            return;
        }
        let now = Instant::now();
        let mut hub_gone = false;
        let outcome = match conn.phase {
            Phase::Handshaking if self.handshakes_left == 0 => {
                // The rest wait for the next turn, after what established
                // clients are owed has been written.
                conn.paused = Some(Pause::Budget);
                self.more_to_read.push(slot);
                return;
            }
            Phase::Handshaking => {
                self.handshakes_left -= 1;
                return self.handshake(slot);
            }
            Phase::Requesting => return self.read_request(slot),
            Phase::Open if shutting_down => return,
            Phase::Open => {
                let panic_on = match &self.config.test_fault {
                    Some(TestFault::Io(text)) => Some(text.as_str()),
                    _ => None,
                };
                let mut session = std::mem::take(&mut conn.session);
                let mut sink = ToHub {
                    link: &mut self.hub,
                    session: &mut session,
                    panic_on,
                    id: conn.id,
                    stats: &self.stats,
                    spoke: false,
                    gone: false,
                    always_room: false,
                };
                let outcome = conn.read_lines(&mut self.read_buf, now, READ_BUDGET, &mut sink);
                hub_gone = sink.gone;
                if sink.spoke {
                    conn.silent = false;
                }
                conn.session = session;
                outcome
            }
            Phase::Lingering { .. } => conn.discard_input(&mut self.read_buf),
            // Nothing more is read once the connection is ending: its
            // client's side ended, or the hub has closed it.
            Phase::Leaving | Phase::Closing { .. } | Phase::Dropped => return,
        };
        self.stats.count_bytes_received(conn.take_bytes_read());
        let (id, pong) = (conn.id, conn.take_websocket_news(now));
        match outcome {
            ReadOutcome::Open => {}
            ReadOutcome::Paused(pause) => {
                conn.paused = Some(pause);
                match pause {
                    Pause::Flood(at) => {
                        self.stats.count_flood_pause();
                        let id = conn.id;
                        self.timers.set(&mut conn.timers, at, id, TimerKind::Resume);
                    }
                    Pause::Budget => self.more_to_read.push(slot),
                    Pause::HubFull => {
                        self.waiting_for_hub.push(slot);
                        self.hub.want_room();
                    }
                }
            }
            ReadOutcome::WebSocketViolation(what) if conn.phase == Phase::Open => {
                log::debug!("{}: WebSocket protocol error: {what}; closing", conn.addr);
                conn.close_status = CLOSE_PROTOCOL_ERROR;
                self.client_ended(slot);
            }
            ReadOutcome::Eof | ReadOutcome::WebSocketClosed if conn.phase == Phase::Open => {
                self.client_ended(slot);
            }
            ReadOutcome::Eof
            | ReadOutcome::TooMuchAfterClose
            | ReadOutcome::WebSocketClosed
            | ReadOutcome::WebSocketViolation(_) => {
                self.remove(slot, None, LeaveReason::Disconnected);
            }
            ReadOutcome::TlsOnPlainPort => {
                log::debug!("{}: a TLS handshake on a plain port; closing", conn.addr);
                self.remove(slot, None, LeaveReason::Disconnected);
            }
            ReadOutcome::Failed(e) => self.remove(slot, Some(e), LeaveReason::Disconnected),
        }
        if let Some(pong) = pong {
            self.queue_to(id, &pong, false);
        }
        if hub_gone {
            self.hub_failed();
        }
    }

    /// The client of an open connection has ended its side (end of stream,
    /// or a WebSocket's Close frame or protocol error): the hub says
    /// goodbye to it and closes it.
    fn client_ended(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else { return };
        conn.phase = Phase::Leaving;
        conn.close_reason.get_or_insert(CloseReason::Disconnect);
        self.stop_counting_silent(slot);
        self.tell_hub_ending(slot, |id| Inbound::Closed {
            id,
            reason: LeaveReason::Disconnected,
        });
    }

    /// Tells the hub, once, that the connection at `slot` is ending, with
    /// the message `message` makes for its id.
    fn tell_hub_ending(&mut self, slot: usize, message: impl FnOnce(ConnId) -> Inbound) {
        let Some(conn) = self.conns.get_mut(slot) else { return };
        if conn.told_hub {
            return;
        }
        conn.told_hub = true;
        let message = message(conn.id);
        self.tell_hub(message);
    }

    /// The connection no longer counts among those that may make room.
    fn stop_counting_silent(&mut self, slot: usize) {
        if let Some(conn) = self.conns.get_mut(slot) {
            conn.silent = false;
        }
    }

    /// Tells the acceptor when this thread's longest-silent connection
    /// came, forgetting first the ones at the front that have spoken or
    /// gone.
    fn publish_oldest_silent(&mut self) {
        while let Some(&id) = self.silent_order.front() {
            match self.conns.get(id.slot).filter(|c| c.id == id && c.silent) {
                Some(conn) => return self.oldest_silent.set(Some(conn.since)),
                None => {
                    self.silent_order.pop_front();
                }
            }
        }
        self.oldest_silent.set(None);
    }

    /// Reads again the connections that used up their budget last turn.
    fn read_more(&mut self) {
        for slot in std::mem::take(&mut self.more_to_read) {
            if let Some(conn) = self.conns.get_mut(slot) {
                if conn.paused == Some(Pause::Budget) {
                    conn.paused = None;
                    self.read(slot);
                }
            }
        }
    }

    /// Carries out every timer that has come due.
    fn run_due_timers(&mut self) {
        let now = Instant::now();
        while let Some((id, kind)) = self.timers.pop_due(now) {
            let Some(conn) = self.conns.get_mut(id.slot).filter(|c| c.id == id) else { continue };
            conn.timers.fired(kind);
            match kind {
                TimerKind::Close if conn.is_closing() => {
                    self.remove(id.slot, None, LeaveReason::Disconnected);
                }
                TimerKind::Resume if matches!(conn.paused, Some(Pause::Flood(_))) => {
                    conn.paused = None;
                    self.read(id.slot);
                }
                TimerKind::Idle if conn.phase == Phase::Open => self.check_idle(id.slot, now),
                TimerKind::Keepalive if conn.phase == Phase::Open => self.check_keepalive(id.slot, now),
                TimerKind::Handshake if conn.phase == Phase::Requesting => {
                    let why = "the request did not come in time";
                    self.answer_request(
                        id.slot,
                        &Reply::Refused(Status::RequestTimeout, why.to_string()),
                        "-",
                        Vec::new(),
                    );
                }
                TimerKind::Handshake if conn.phase == Phase::Handshaking => {
                    log::debug!("{}: no TLS handshake in time", conn.addr);
                    conn.close_reason = Some(CloseReason::Handshake);
                    self.remove(id.slot, None, LeaveReason::Disconnected);
                }
                _ => {} // The connection has moved on since the timer was set.
            }
        }
    }

    /// Ends the connection at `slot` if it has completed no line for the
    /// idle timeout, or checks again when it would have.
    fn check_idle(&mut self, slot: usize, now: Instant) {
        let (Some(conn), Some(idle)) = (self.conns.get_mut(slot), self.config.idle_timeout) else { return };
        let quiet = now.saturating_duration_since(conn.last_line);
        if quiet < idle {
            let (at, id) = (later(conn.last_line, idle), conn.id);
            self.timers.set(&mut conn.timers, at, id, TimerKind::Idle);
            return;
        }
        log::info!("{}: no line for {} s, disconnecting", conn.addr, quiet.as_secs());
        self.end_quiet(slot, Ending::Idle { quiet });
    }

    /// An IRC connection's keepalive: ends it if it has not registered in
    /// time, or has not answered a PING (with any line) in time; PINGs it
    /// once it has been quiet long enough; otherwise looks again when one
    /// of those could next be due.
    fn check_keepalive(&mut self, slot: usize, now: Instant) {
        let keepalive = self.config.irc_keepalive;
        let Some(conn) = self.conns.get_mut(slot) else { return };
        if conn.is_websocket() {
            return self.check_websocket_keepalive(slot, now);
        }
        let id = conn.id;
        if !conn.session.is_registered()
            && now.saturating_duration_since(conn.since) >= keepalive.register_within
        {
            log::debug!("{}: not registered in time, disconnecting", conn.addr);
            return self.end_quiet(
                slot,
                Ending::NotRegistered {
                    waited: keepalive.register_within,
                },
            );
        }
        if conn.pinged.is_some_and(|pinged| conn.last_line > pinged) {
            // Answered: any line will do.
            conn.pinged = None;
        }
        let quiet = now.saturating_duration_since(conn.last_line);
        let next = match conn.pinged {
            Some(pinged) if now.saturating_duration_since(pinged) >= keepalive.ping_timeout => {
                log::debug!("{}: no answer to PING, disconnecting", conn.addr);
                return self.end_quiet(slot, Ending::PingTimeout { quiet });
            }
            Some(pinged) => later(pinged, keepalive.ping_timeout),
            None if quiet >= keepalive.ping_after => {
                conn.pinged = Some(now);
                let mut ping = Vec::new();
                chat_protocol::irc::write::message(
                    &mut ping,
                    None,
                    None,
                    "PING",
                    &[],
                    Some(&self.context.server_name),
                );
                self.queue_to(id, &ping, false);
                self.mark_dirty(slot);
                later(now, keepalive.ping_timeout)
            }
            None => later(conn.last_line, keepalive.ping_after),
        };
        let Some(conn) = self.conns.get_mut(slot) else { return };
        let next = if conn.session.is_registered() {
            next
        } else {
            next.min(later(conn.since, keepalive.register_within))
        };
        self.timers.set(&mut conn.timers, next, id, TimerKind::Keepalive);
    }

    /// A WebSocket's keepalive: pings it once it has sent no frame for a
    /// while, and ends it if no frame comes within the timeout after that
    /// (browsers answer pings by themselves).
    fn check_websocket_keepalive(&mut self, slot: usize, now: Instant) {
        let keepalive = self.config.web.keepalive;
        let Some(conn) = self.conns.get_mut(slot) else { return };
        let id = conn.id;
        if conn.pinged.is_some_and(|pinged| conn.last_frame > pinged) {
            conn.pinged = None;
        }
        let quiet = now.saturating_duration_since(conn.last_frame);
        let next = match conn.pinged {
            Some(pinged) if now.saturating_duration_since(pinged) >= keepalive.ping_timeout => {
                log::debug!("{}: no answer to a WebSocket ping, disconnecting", conn.addr);
                // Told as "no answer to PING for N s": counted from the
                // ping, not from the last frame (IRC's "Ping timeout"
                // counts the whole silence, as IRC servers do).
                let unanswered = now.saturating_duration_since(pinged);
                return self.end_quiet(slot, Ending::PingTimeout { quiet: unanswered });
            }
            Some(pinged) => later(pinged, keepalive.ping_timeout),
            None if quiet >= keepalive.ping_after => {
                conn.pinged = Some(now);
                self.queue_to(id, &frames::ping(), false);
                later(now, keepalive.ping_timeout)
            }
            None => later(conn.last_frame, keepalive.ping_after),
        };
        let Some(conn) = self.conns.get_mut(slot) else { return };
        self.timers.set(&mut conn.timers, next, id, TimerKind::Keepalive);
    }

    /// Ends a connection the server gave up waiting on: it reads nothing
    /// more, and the hub says goodbye and closes it.
    fn end_quiet(&mut self, slot: usize, why: Ending) {
        let Some(conn) = self.conns.get_mut(slot) else { return };
        conn.phase = Phase::Leaving;
        conn.close_reason.get_or_insert(CloseReason::Idle);
        self.stop_counting_silent(slot);
        self.tell_hub_ending(slot, |id| Inbound::Ending { id, why });
    }

    /// Applies what the hub has sent, at most [`HUB_MESSAGES_PER_TURN`]
    /// messages.
    fn take_hub_output(&mut self) {
        self.more_from_hub = true;
        for _ in 0..HUB_MESSAGES_PER_TURN {
            match self.from_hub.try_recv() {
                Ok(Outbound::Deliver { to, event, since }) => {
                    self.deliver(&to, &event);
                    self.fanout_pending.extend(since);
                }
                Ok(Outbound::Close { id }) => self.close_requested(id),
                Ok(Outbound::HandOver) => {
                    self.hand_over();
                    self.more_from_hub = false;
                    break;
                }
                Err(TryRecvError::Empty) => {
                    self.more_from_hub = false;
                    break;
                }
                Err(TryRecvError::Disconnected) => {
                    // The hub outlives the I/O threads unless it failed.
                    self.more_from_hub = false;
                    self.hub_failed();
                    break;
                }
            }
        }
        self.remove_dropped();
    }

    /// The hub has said its last words to a connection: flush and close.
    fn close_requested(&mut self, id: ConnId) {
        let shutting_down = self.drain_deadline.is_some();
        let Some(conn) = self.conns.get_mut(id.slot).filter(|c| c.id == id) else { return };
        if !matches!(conn.phase, Phase::Open | Phase::Leaving) {
            return;
        }
        if conn.phase == Phase::Open {
            // The hub closes an open connection after /quit, or when the
            // server shuts down.
            conn.close_reason.get_or_insert(if shutting_down {
                CloseReason::Shutdown
            } else {
                CloseReason::Quit
            });
        }
        let reason = conn.close_reason.unwrap_or(CloseReason::Disconnect);
        if conn.is_websocket() {
            // The WebSocket's own goodbye, after the hub's last lines.
            let frame = match conn.close_status {
                CLOSE_PROTOCOL_ERROR => frames::close(CLOSE_PROTOCOL_ERROR, "protocol error"),
                _ if shutting_down => frames::close(CLOSE_GOING_AWAY, "server shutting down"),
                status => frames::close(status, ""),
            };
            self.queue_to(id, &frame, false);
        }
        self.start_closing(id.slot, reason);
    }

    /// Begins closing the connection at `slot`: what is queued is written,
    /// then our side is shut down (see [`Phase::Closing`]), within
    /// [`CLOSE_TIMEOUT`] and this thread's budget of closing sockets.
    fn start_closing(&mut self, slot: usize, reason: CloseReason) {
        let Some(conn) = self.conns.get_mut(slot) else { return };
        let id = conn.id;
        conn.close_reason.get_or_insert(reason);
        conn.told_hub = true;
        let until = later(Instant::now(), CLOSE_TIMEOUT);
        conn.phase = Phase::Closing { until };
        conn.paused = None;
        self.timers.cancel(&mut conn.timers, id, TimerKind::Resume);
        self.timers.cancel(&mut conn.timers, id, TimerKind::Idle);
        self.timers.cancel(&mut conn.timers, id, TimerKind::Keepalive);
        self.timers.cancel(&mut conn.timers, id, TimerKind::Handshake);
        self.timers.set(&mut conn.timers, until, id, TimerKind::Close);
        self.stop_counting_silent(slot);
        self.closing += 1;
        self.closing_order.push_back(id);
        self.mark_dirty(slot);
        self.keep_closing_within_budget();
    }

    /// Closes the oldest closing sockets at once while there are more than
    /// this thread's budget: they hold descriptors that new clients need
    /// (a flood of `/quit` and hold must not run the process out).
    fn keep_closing_within_budget(&mut self) {
        while self.closing > self.closing_budget {
            let Some(id) = self.closing_order.pop_front() else { return };
            let current = self
                .conns
                .get(id.slot)
                .is_some_and(|c| c.id == id && c.is_closing());
            if current {
                if let Some(suppressed) = self.closing_warning.check(Instant::now()) {
                    log::warn!(
                        "more than {} closing on this I/O thread: closing the oldest without waiting{}",
                        counted(self.closing_budget, "socket"),
                        and_more(suppressed)
                    );
                }
                self.remove(id.slot, None, LeaveReason::Disconnected);
            }
        }
    }

    /// Queues `event` to each recipient, encoding it once per protocol
    /// among them. A recipient whose queue would pass `--sendq` even after
    /// writing what the kernel takes is marked slow and dropped after this
    /// batch.
    fn deliver(&mut self, to: &Recipients, event: &ServerEvent) {
        let mut encodings = std::mem::take(&mut self.encodings);
        for encoding in &mut encodings {
            encoding.clear();
        }
        let is_message = matches!(
            event,
            ServerEvent::Said { .. } | ServerEvent::Action { .. } | ServerEvent::PrivateFrom { .. }
        );
        let error = match event {
            ServerEvent::Error(error) => Some(error),
            _ => None,
        };
        // Counted once per event, not per recipient: one atomic add
        // instead of one per socket on the fan-out path.
        let mut queued_to: u64 = 0;
        let mut own = std::mem::take(&mut self.own_encoding);
        // One connection's events are written for it alone (an IRC numeric
        // names its recipient); shared ones once per encoding.
        let mut queue = |this: &mut EventLoop, id: ConnId, charge: bool, alone: bool| {
            let Some(conn) = this.conns.get_mut(id.slot).filter(|c| c.id == id) else {
                return;
            };
            let bytes = if alone {
                own.clear();
                conn.session.encode_own(event, &this.context, &mut own);
                &own
            } else {
                let encoding = conn.session.encoding();
                let Some(bytes) = encodings.get_mut(encoding.index()) else { return };
                if bytes.is_empty() {
                    encoding.encode(event, &this.context, bytes);
                }
                bytes
            };
            if this.queue_to(id, bytes, charge) {
                queued_to += 1;
                if let Some(error) = error {
                    this.stats.count_error(error);
                }
            }
        };
        match to {
            Recipients::One(id) => queue(self, *id, false, true),
            Recipients::Reply(id) => queue(self, *id, true, true),
            Recipients::Members { members, except } => {
                for &id in members.iter() {
                    if Some(id) != *except {
                        queue(self, id, false, false);
                    }
                }
            }
            Recipients::Many(ids) => {
                for &id in ids {
                    queue(self, id, false, false);
                }
            }
        }
        if is_message && queued_to > 0 {
            self.stats.count_delivered(queued_to);
        }
        self.encodings = encodings;
        self.own_encoding = own;
    }

    /// Queues `bytes` to the connection `id`; true if it was queued. With
    /// `charge`, the bytes are a reply the client asked for and its flood
    /// allowance pays for them.
    fn queue_to(&mut self, id: ConnId, bytes: &[u8], charge: bool) -> bool {
        let Some(conn) = self.conns.get_mut(id.slot).filter(|c| c.id == id) else { return false };
        if !conn.accepts_output() {
            return false;
        }
        let sendq = self.config.sendq;
        if conn.queued() >= FLUSH_BEFORE_QUEUEING || conn.queued().saturating_add(bytes.len()) > sendq {
            let outcome = flush_counted(conn, self.poll.registry(), &self.stats, &mut self.queued_total);
            if let WriteOutcome::Failed(e) = outcome {
                log::debug!("{}: connection lost: {e}", conn.addr);
                conn.close_reason.get_or_insert(CloseReason::Disconnect);
                conn.phase = Phase::Dropped;
                self.dropped.push((id.slot, LeaveReason::Disconnected));
                return false;
            }
        }
        if conn.queued().saturating_add(bytes.len()) > sendq {
            if let Some(suppressed) = self.slow_warning.check(Instant::now()) {
                log::warn!(
                    "{}: slow consumer: more than {sendq} bytes queued; disconnecting{}",
                    conn.addr,
                    and_more(suppressed)
                );
            }
            conn.phase = Phase::Dropped;
            conn.close_reason = Some(CloseReason::SlowConsumer);
            self.dropped.push((id.slot, LeaveReason::SlowConsumer));
            return false;
        }
        conn.enqueue(bytes);
        self.queued_total += bytes.len();
        if charge {
            conn.charge_reply(bytes.len(), Instant::now());
        }
        self.mark_dirty(id.slot);
        true
    }

    /// Sends what waited for room in the hub's queue, then, if there is
    /// room, reads the connections that waited for it, in order.
    fn send_backlog(&mut self) {
        match self.hub.flush() {
            Err(HubGone) => return self.hub_failed(),
            Ok(false) => return,
            Ok(true) => {}
        }
        if self.waiting_for_hub.is_empty() || self.hub.sender.is_full() {
            return;
        }
        for slot in std::mem::take(&mut self.waiting_for_hub) {
            if let Some(conn) = self.conns.get_mut(slot) {
                if conn.paused == Some(Pause::HubFull) {
                    conn.paused = None;
                    self.read(slot);
                }
            }
        }
    }

    /// Writes the output queued in this batch, and moves connections that
    /// are done to lingering.
    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for slot in dirty.drain(..) {
            let Some(conn) = self.conns.get_mut(slot) else { continue };
            conn.flush_due = false;
            if !conn.accepts_output() {
                continue;
            }
            match flush_counted(conn, self.poll.registry(), &self.stats, &mut self.queued_total) {
                WriteOutcome::Drained => {
                    if let Phase::Closing { until } = conn.phase {
                        self.start_lingering(slot, until);
                    }
                }
                WriteOutcome::Pending => {}
                WriteOutcome::Failed(e) => self.remove(slot, Some(e), LeaveReason::Disconnected),
            }
        }
        // Keep the allocation for the next batch.
        self.dirty = dirty;
        let now = Instant::now();
        for since in self.fanout_pending.drain(..) {
            self.stats.fanout().observe(now.saturating_duration_since(since));
        }
    }

    /// Closes the connections dropped during this batch.
    fn remove_dropped(&mut self) {
        for (slot, reason) in std::mem::take(&mut self.dropped) {
            self.remove(slot, None, reason);
        }
    }

    /// Everything is written to a closing connection: shut down our side
    /// and wait, until `until`, for the client to close its side.
    fn start_lingering(&mut self, slot: usize, until: Instant) {
        let Some(conn) = self.conns.get_mut(slot) else { return };
        conn.shutdown_write();
        conn.phase = Phase::Lingering { until };
        // The client may have closed already, with its end of stream
        // waiting to be read: edge-triggered polling would not say so again.
        let outcome = conn.discard_input(&mut self.read_buf);
        self.stats.count_bytes_received(conn.take_bytes_read());
        match outcome {
            ReadOutcome::Open => {}
            ReadOutcome::Paused(_) => {
                conn.paused = Some(Pause::Budget);
                self.more_to_read.push(slot);
            }
            ReadOutcome::Eof
            | ReadOutcome::TooMuchAfterClose
            | ReadOutcome::TlsOnPlainPort
            | ReadOutcome::WebSocketClosed
            | ReadOutcome::WebSocketViolation(_) => {
                self.remove(slot, None, LeaveReason::Disconnected);
            }
            ReadOutcome::Failed(e) => self.remove(slot, Some(e), LeaveReason::Disconnected),
        }
    }

    /// Closes a connection now. If the hub still thinks it is open, it is
    /// told why it ended.
    fn remove(&mut self, slot: usize, error: Option<io::Error>, reason: LeaveReason) {
        let Some(mut conn) = self.conns.try_remove(slot) else { return };
        self.freed += conn.take_freed() + conn.buffer_capacity();
        self.timers.cancel_all(&mut conn.timers, conn.id);
        conn.deregister(self.poll.registry());
        self.queued_total = self.queued_total.saturating_sub(conn.queued());
        if conn.is_closing() {
            self.closing = self.closing.saturating_sub(1);
        }
        let counted_as = conn.close_reason.unwrap_or(match reason {
            LeaveReason::SlowConsumer => CloseReason::SlowConsumer,
            _ => CloseReason::Disconnect,
        });
        self.stats.count_closed(counted_as);
        if let Some(e) = error {
            if is_disconnect(&e) {
                log::debug!("{}: connection lost: {e}", conn.addr);
            } else {
                log::warn!("{}: connection failed: {e}", conn.addr);
            }
        }
        if !conn.arrived {
            // The hub never heard of it: its place goes back from here.
            self.release(conn.addr.ip());
        } else if !conn.told_hub {
            self.tell_hub(Inbound::Closed { id: conn.id, reason });
        }
        self.forget_stale_closing();
    }

    /// Drops entries of connections that are gone from the front of the
    /// closing order, so it stays as long as the sockets really closing.
    fn forget_stale_closing(&mut self) {
        while let Some(&id) = self.closing_order.front() {
            let current = self
                .conns
                .get(id.slot)
                .is_some_and(|c| c.id == id && c.is_closing());
            if current {
                return;
            }
            self.closing_order.pop_front();
        }
    }

    /// Every [`RELEASE_INTERVAL`], lets every connection with nothing to
    /// write give back its buffers, and tidies the list of silent ones.
    fn release_idle_memory(&mut self) {
        let now = Instant::now();
        if now < self.next_release {
            return;
        }
        self.next_release = later(now, RELEASE_INTERVAL);
        for (_, conn) in &mut self.conns {
            self.freed += conn.take_freed();
            if !conn.flush_due {
                self.freed += conn.release_idle_memory();
            }
        }
        if self.freed >= GIVE_BACK_AFTER {
            crate::ops::memory::give_back();
        }
        self.freed = 0;
        let conns = &self.conns;
        self.silent_order
            .retain(|id| conns.get(id.slot).is_some_and(|c| c.id == *id && c.silent));
        self.silent_order.shrink_to_fit();
        self.closing_order.shrink_to_fit();
    }

    /// Brings this thread's share of the gauges up to date.
    fn report(&mut self) {
        let (clients, queued) = self.reported;
        self.stats.shift_clients(clients, self.conns.len());
        self.stats.shift_queued_bytes(queued, self.queued_total);
        self.reported = (self.conns.len(), self.queued_total);
    }

    fn tell_hub(&mut self, message: Inbound) {
        if self.hub.send(message).is_err() {
            self.hub_failed();
        }
    }

    /// The hub is gone, which it only is if it failed: the server cannot
    /// go on, so it shuts down (once). No one is left to say goodbye to
    /// this thread's clients and close them, so the thread does it.
    fn hub_failed(&mut self) {
        if self.hub_gone {
            return;
        }
        log::error!("the hub stopped unexpectedly; shutting down");
        self.hub_gone = true;
        self.shutdown.shutdown();
        let open: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Open | Phase::Leaving))
            .map(|(_, c)| c.id)
            .collect();
        self.deliver(&Recipients::Many(open.clone()), &ServerEvent::ShuttingDown);
        for id in open {
            self.close_requested(id);
        }
    }

    /// Shutdown is over for this thread once no connection is left and
    /// none can come, or at the end of the grace period.
    fn is_finished(&self, now: Instant) -> bool {
        match self.handover {
            Handover::Done => return true,
            // Its connections go to the next process once the hub says so,
            // even when it has none (the server counts every thread's).
            Handover::Quiescing | Handover::Quiesced => {
                return self.drain_deadline.is_some_and(|deadline| now >= deadline);
            }
            Handover::None => {}
        }
        match self.drain_deadline {
            None => false,
            Some(deadline) => (self.acceptor_gone && self.conns.is_empty()) || now >= deadline,
        }
    }
}

/// Writes what is queued to `conn` as far as the kernel takes it (see
/// [`Connection::flush`]), counting the bytes written.
fn flush_counted(
    conn: &mut Connection,
    registry: &Registry,
    stats: &Stats,
    queued_total: &mut usize,
) -> WriteOutcome {
    let before = conn.queued();
    let outcome = conn.flush(registry, Token(conn.id.slot));
    let written = before.saturating_sub(conn.queued());
    stats.count_bytes_sent(written);
    *queued_total = queued_total.saturating_sub(written);
    outcome
}

/// Tells a connection we will not serve why, in its protocol, and closes
/// it (by dropping it, which the caller does). A TLS client, before any
/// handshake, can read no plain line: it is only closed.
pub fn refuse(stream: &mio::net::TcpStream, protocol: Protocol, tls: bool, error: ErrorKind, stats: &Stats) {
    use std::io::Write;
    if tls {
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return;
    }
    let mut bytes = Vec::new();
    stats.count_error(&error);
    protocol.refusal(&error, &mut bytes);
    // A fresh socket's send buffer is empty, so this short write goes
    // through at once or the peer is already gone; either way we close.
    if let Ok(n) = (&*stream).write(&bytes) {
        stats.count_bytes_sent(n);
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::net::{TcpListener, TcpStream};
    use std::thread;

    /// An event loop on its own thread whose hub queue holds `capacity`
    /// messages and is read by the test, with one client connected to it.
    struct Harness {
        inbound: Receiver<Inbound>,
        wants_room: Arc<AtomicBool>,
        waker: Arc<mio::Waker>,
        shutdown: ShutdownHandle,
        client: TcpStream,
        _adopt: Sender<Adopt>,
        _from_hub: Sender<Outbound>,
        thread: Option<thread::JoinHandle<io::Result<()>>>,
    }

    impl Harness {
        fn start(capacity: usize) -> Harness {
            let poll = Poll::new().unwrap();
            let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER).unwrap());
            let (to_hub, inbound) = crossbeam_channel::bounded(capacity);
            let (hub_out, from_hub) = crossbeam_channel::bounded(16);
            let (adopt_tx, adopt) = crossbeam_channel::unbounded();
            let (released, _) = crossbeam_channel::unbounded();
            let wants_room = Arc::new(AtomicBool::new(false));
            let shutdown = ShutdownHandle::new([Arc::clone(&waker)]);
            let config = Config {
                rate: 0,
                threads: 1,
                // No hub will close the client: end at once on shutdown.
                shutdown_grace: Duration::ZERO,
                ..Config::default()
            };
            let channels = Channels {
                to_hub,
                wants_room: Arc::clone(&wants_room),
                from_hub,
                adopt,
                released,
                oldest_silent: OldestSilent::new(Instant::now()),
                tls: None,
                tls_updates: crossbeam_channel::never(),
                context: Context::plain(),
                handover: crossbeam_channel::unbounded().0,
            };
            let event_loop = EventLoop::new(
                0,
                poll,
                config,
                channels,
                shutdown.clone(),
                Arc::default(),
                Heartbeat::default(),
            );
            let thread = thread::spawn(move || event_loop.run());
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (stream, addr) = listener.accept().unwrap();
            stream.set_nonblocking(true).unwrap();
            let adopt = Adopt {
                stream: mio::net::TcpStream::from_std(stream),
                addr,
                serial: 1,
                make_room: false,
                protocol: Protocol::Line,
                tls: false,
            };
            adopt_tx.send(adopt).unwrap();
            waker.wake().unwrap();
            Harness {
                inbound,
                wants_room,
                waker,
                shutdown,
                client,
                _adopt: adopt_tx,
                _from_hub: hub_out,
                thread: Some(thread),
            }
        }

        /// The next message for the hub, taken as the hub takes them: if
        /// the loop asked for room, it is woken.
        fn take(&self) -> Inbound {
            let message = self
                .inbound
                .recv_timeout(Duration::from_secs(5))
                .expect("a message for the hub within 5 s");
            if self.wants_room.swap(false, Ordering::AcqRel) {
                self.waker.wake().unwrap();
            }
            message
        }
    }

    impl Drop for Harness {
        fn drop(&mut self) {
            self.shutdown.shutdown();
            drop(std::mem::replace(
                &mut self._adopt,
                crossbeam_channel::unbounded().0,
            ));
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    #[test]
    fn when_the_hubs_queue_is_full_lines_wait_in_order_and_none_is_lost() {
        let mut harness = Harness::start(4);
        let lines: String = (0..500).map(|i| format!("line {i}\n")).collect();
        harness.client.write_all(lines.as_bytes()).unwrap();
        // The queue fills, and the loop asks the hub for room instead of
        // reading on into memory.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(harness.inbound.is_full() && harness.wants_room.load(Ordering::Acquire)) {
            assert!(Instant::now() < deadline, "the queue never filled");
            thread::yield_now();
        }
        assert_eq!(harness.inbound.len(), 4, "never more than the queue holds");
        assert!(matches!(harness.take(), Inbound::Connected { .. }));
        for i in 0..500 {
            match harness.take() {
                Inbound::Line {
                    line: Ok(crate::chat::request::Request::Say { text, .. }),
                    ..
                } => assert_eq!(text, format!("line {i}")),
                other => panic!("line {i}: got {other:?}"),
            }
        }
    }
}
