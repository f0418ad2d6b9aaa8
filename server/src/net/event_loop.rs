//! The event loop of one I/O thread: its share of the sockets, without
//! blocking.
//!
//! Each of the `--threads` I/O threads runs one of these, with its own
//! poll, over the connections the acceptor gave it ([`crate::net::acceptor`]).
//! It reads and decodes what clients send, passes the lines to the hub, and
//! writes what the hub answers. The hub runs on its own thread; it wakes
//! this loop through a [`mio::Waker`] when it has output, and the loop then
//! drains the whole channel (wakes merge, so one wake may stand for many
//! messages). Output for a connection is queued and written in as few
//! system calls as the kernel allows, after each batch. Spreading the
//! sockets over threads spreads those system calls over the cores, which
//! is most of the work of a big room.
//!
//! Nothing here ever waits for one socket, and the limits that protect the
//! others one connection at a time are enforced here: the outbound queue
//! (`--sendq`), flood control (`--rate`, `--burst`, see [`crate::net::flood`])
//! and the idle timeout.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::{LeaveReason, ServerEvent};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::event::Event;
use mio::{Events, Poll, Registry, Token};
use slab::Slab;

use crate::chat::messages::{Adopt, ConnId, Inbound, Outbound, Released};
use crate::config::Config;
use crate::frontend::line;
use crate::net::connection::{is_disconnect, Connection, Limits, Phase, ReadOutcome, WriteOutcome};
use crate::net::shutdown::ShutdownHandle;
use crate::net::timers::{TimerKind, Timers};
use crate::ops::liveness::Heartbeat;
use crate::ops::stats::{CloseReason, Stats};

/// The waker's token. Connections use their slab key as token.
pub const WAKER: Token = Token(usize::MAX);

/// Once the server has closed a connection (after `/quit`, or its end of
/// stream), how long the client gets to read its last lines and close its
/// side before the socket is closed anyway (see [`Phase::Closing`] and
/// [`Phase::Lingering`]). Long enough for any live client; short enough
/// that a client that never reads cannot keep its slot.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Size of the buffer every read goes through. 16 KiB takes a flood in few
/// system calls, and bounds what a throttled connection holds read but not
/// decoded; it is one buffer for the whole loop, not per connection.
const READ_BUFFER: usize = 16 * 1024;

/// How many readiness events one poll returns at most.
const EVENTS_CAPACITY: usize = 1024;

/// Before queueing more to a connection that already holds this much, try
/// to write it out, so that a burst in one batch is measured against
/// `--sendq` only after the kernel has taken what it will.
const FLUSH_BEFORE_QUEUEING: usize = 64 * 1024;

/// The channels of one I/O thread.
#[derive(Debug)]
pub struct Channels {
    /// Lines and closes, to the hub.
    pub to_hub: Sender<Inbound>,
    /// What the hub says to this thread's connections.
    pub from_hub: Receiver<Outbound>,
    /// New connections, from the acceptor.
    pub adopt: Receiver<Adopt>,
    /// Connections that never reached the hub, to the acceptor (the hub
    /// tells it of the others when they leave the chat).
    pub released: Sender<Released>,
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
    to_hub: Sender<Inbound>,
    from_hub: Receiver<Outbound>,
    adopt: Receiver<Adopt>,
    released: Sender<Released>,
    /// Says whether shutdown was asked for, and starts one should the hub
    /// fail.
    shutdown: ShutdownHandle,
    /// Scratch space for reads, shared by all connections.
    read_buf: Vec<u8>,
    /// Scratch space for encoding one event once for all its recipients.
    encoded: Vec<u8>,
    /// Slab keys of connections with output to write after this batch,
    /// each once (see [`Connection::flush_due`]).
    dirty: Vec<usize>,
    /// Connections dropped for overflowing their queue during this batch.
    slow: Vec<usize>,
    /// Close, resume and idle timers.
    timers: Timers,
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
    /// sockets.
    fanout_pending: Vec<Instant>,
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
            to_hub: channels.to_hub,
            from_hub: channels.from_hub,
            adopt: channels.adopt,
            released: channels.released,
            shutdown,
            read_buf: vec![0; READ_BUFFER],
            encoded: Vec::new(),
            dirty: Vec::new(),
            slow: Vec::new(),
            timers: Timers::default(),
            drain_deadline: None,
            acceptor_gone: false,
            hub_gone: false,
            stats,
            heartbeat,
            queued_total: 0,
            reported: (0, 0),
            fanout_pending: Vec::new(),
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
            let timeout = self
                .next_deadline()
                .map(|at| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                if event.token() != WAKER {
                    self.connection_ready(event.token().0, event);
                }
            }
            if self.shutdown.is_requested() && self.drain_deadline.is_none() {
                self.drain_deadline = Some(Instant::now() + self.config.shutdown_grace);
            }
            self.run_due_timers();
            self.take_adopted();
            self.take_hub_output();
            self.flush_dirty();
            let now = Instant::now();
            for since in self.fanout_pending.drain(..) {
                self.stats.fanout().observe(now.saturating_duration_since(since));
            }
            let (clients, queued) = self.reported;
            self.stats.shift_clients(clients, self.conns.len());
            self.stats.shift_queued_bytes(queued, self.queued_total);
            self.reported = (self.conns.len(), self.queued_total);
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
    /// hub it is here.
    fn adopt(&mut self, Adopt { stream, addr, serial }: Adopt) {
        let entry = self.conns.vacant_entry();
        let id = ConnId {
            shard: self.shard,
            slot: entry.key(),
            serial,
        };
        let token = Token(id.slot);
        match Connection::register(id, stream, addr, &self.limits, self.poll.registry(), token) {
            Ok(conn) => {
                entry.insert(conn);
                if let Some(idle) = self.config.idle_timeout {
                    self.timers.add(Instant::now() + idle, id, TimerKind::Idle);
                }
                self.tell_hub(Inbound::Connected { id, addr });
            }
            Err(e) => {
                log::warn!("cannot register connection from {addr}: {e}");
                self.stats.count_closed(CloseReason::Disconnect);
                self.release(addr.ip());
            }
        }
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
        let Some(conn) = self.conns.get_mut(slot) else { return };
        let now = Instant::now();
        let outcome = match conn.phase {
            Phase::Open { throttled: false } => {
                let (id, to_hub, stats) = (conn.id, &self.to_hub, &self.stats);
                conn.read(&mut self.read_buf, now, |line| {
                    if let Some(line) = line::to_command(line) {
                        stats.count_line();
                        // The hub only goes away after shutdown; lines
                        // then have nowhere to go.
                        let received = Instant::now();
                        let _ = to_hub.send(Inbound::Line { id, line, received });
                    }
                })
            }
            Phase::Lingering { .. } => conn.discard_input(&mut self.read_buf),
            // A throttled connection is read when its Resume timer comes
            // due; nothing more is read once the client's side has ended or
            // the hub has closed the connection.
            Phase::Open { throttled: true } | Phase::ReadClosed | Phase::Closing { .. } => return,
        };
        self.stats.count_bytes_received(conn.take_bytes_read());
        match (outcome, conn.phase) {
            (ReadOutcome::Open, _) => {}
            (ReadOutcome::Throttled(at), _) => {
                // Pausing until later is flood control; until `now`, only
                // the end of this turn's read budget.
                if at > now {
                    self.stats.count_flood_pause();
                }
                conn.phase = Phase::Open { throttled: true };
                let id = conn.id;
                self.timers.add(at, id, TimerKind::Resume);
            }
            (ReadOutcome::Eof, Phase::Open { .. }) => {
                conn.phase = Phase::ReadClosed;
                conn.close_reason.get_or_insert(CloseReason::Disconnect);
                let id = conn.id;
                self.tell_hub(Inbound::Closed {
                    id,
                    reason: LeaveReason::Disconnected,
                });
            }
            (ReadOutcome::Eof, _) => self.remove(slot, None, LeaveReason::Disconnected),
            (ReadOutcome::Failed(e), _) => self.remove(slot, Some(e), LeaveReason::Disconnected),
        }
    }

    /// Carries out every timer that has come due.
    fn run_due_timers(&mut self) {
        let now = Instant::now();
        while let Some((id, kind)) = self.timers.pop_due(now) {
            let Some(conn) = self.conns.get_mut(id.slot).filter(|c| c.id == id) else { continue };
            match (kind, conn.phase) {
                (TimerKind::Close, Phase::Closing { .. } | Phase::Lingering { .. }) => {
                    self.remove(id.slot, None, LeaveReason::Disconnected);
                }
                (TimerKind::Resume, Phase::Open { throttled: true }) => {
                    conn.phase = Phase::Open { throttled: false };
                    self.read(id.slot);
                }
                (TimerKind::Idle, Phase::Open { .. }) => self.check_idle(id.slot, now),
                _ => {} // The connection has moved on since the timer was set.
            }
        }
    }

    /// Disconnects the connection at `slot` if it has been quiet for the
    /// idle timeout, or checks again when it would be.
    fn check_idle(&mut self, slot: usize, now: Instant) {
        let (Some(conn), Some(idle)) = (self.conns.get_mut(slot), self.config.idle_timeout) else { return };
        let quiet = now.saturating_duration_since(conn.last_input);
        if quiet < idle {
            self.timers.add(conn.last_input + idle, conn.id, TimerKind::Idle);
            return;
        }
        log::info!("{}: idle for {} s, disconnecting", conn.addr, quiet.as_secs());
        // Read nothing more; the hub says goodbye and closes.
        conn.phase = Phase::ReadClosed;
        conn.close_reason.get_or_insert(CloseReason::Idle);
        let id = conn.id;
        self.tell_hub(Inbound::Idle { id, quiet });
    }

    /// Applies everything the hub has sent.
    fn take_hub_output(&mut self) {
        loop {
            match self.from_hub.try_recv() {
                Ok(Outbound::Deliver { to, event, since }) => {
                    self.deliver(&to, &event);
                    self.fanout_pending.extend(since);
                }
                Ok(Outbound::Close { id }) => {
                    let shutting_down = self.drain_deadline.is_some();
                    if let Some(conn) = self.conns.get_mut(id.slot).filter(|c| c.id == id) {
                        // The hub closes an open connection after /quit,
                        // or when the server shuts down.
                        if matches!(conn.phase, Phase::Open { .. }) {
                            conn.close_reason.get_or_insert(if shutting_down {
                                CloseReason::Shutdown
                            } else {
                                CloseReason::Quit
                            });
                        }
                        if matches!(conn.phase, Phase::Open { .. } | Phase::ReadClosed) {
                            let until = Instant::now() + CLOSE_TIMEOUT;
                            conn.phase = Phase::Closing { until };
                            self.timers.add(until, id, TimerKind::Close);
                            self.mark_dirty(id.slot);
                        }
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    // The hub outlives the I/O threads unless it failed.
                    self.hub_failed();
                    break;
                }
            }
        }
        for slot in std::mem::take(&mut self.slow) {
            self.remove(slot, None, LeaveReason::SlowConsumer);
        }
    }

    /// Queues `event` to each recipient, encoding it once. A recipient
    /// whose queue would pass `--sendq` even after writing what the kernel
    /// takes is marked slow and dropped after this batch.
    fn deliver(&mut self, to: &[ConnId], event: &ServerEvent) {
        debug_assert!(to.iter().all(|id| id.shard == self.shard));
        self.encoded.clear();
        line::encode(event, &mut self.encoded);
        let is_message = matches!(
            event,
            ServerEvent::Said { .. } | ServerEvent::Action { .. } | ServerEvent::PrivateFrom { .. }
        );
        // Counted once per event, not per recipient: one atomic add
        // instead of one per socket on the fan-out path.
        let mut queued_to: u64 = 0;
        for id in to {
            let Some(conn) = self.conns.get_mut(id.slot).filter(|c| c.id == *id) else { continue };
            if !conn.accepts_output() {
                continue;
            }
            if conn.queued() >= FLUSH_BEFORE_QUEUEING
                || conn.queued() + self.encoded.len() > self.config.sendq
            {
                let outcome = flush_counted(conn, self.poll.registry(), &self.stats, &mut self.queued_total);
                if let WriteOutcome::Failed(e) = outcome {
                    log::debug!("{}: connection lost: {e}", conn.addr);
                    conn.close_reason.get_or_insert(CloseReason::Disconnect);
                    self.slow.push(id.slot);
                    continue;
                }
            }
            if conn.queued() + self.encoded.len() > self.config.sendq {
                log::warn!(
                    "{}: slow consumer: more than {} bytes queued; disconnecting",
                    conn.addr,
                    self.config.sendq
                );
                conn.phase = Phase::ReadClosed;
                conn.close_reason = Some(CloseReason::SlowConsumer);
                self.slow.push(id.slot);
                continue;
            }
            conn.enqueue(&self.encoded);
            self.queued_total += self.encoded.len();
            queued_to += 1;
            if let ServerEvent::Error(error) = event {
                self.stats.count_error(error);
            }
            self.mark_dirty(id.slot);
        }
        if is_message && queued_to > 0 {
            self.stats.count_delivered(queued_to);
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
            ReadOutcome::Open | ReadOutcome::Throttled(_) => {}
            ReadOutcome::Eof => self.remove(slot, None, LeaveReason::Disconnected),
            ReadOutcome::Failed(e) => self.remove(slot, Some(e), LeaveReason::Disconnected),
        }
    }

    /// Closes a connection now. If the hub still thinks it is open, it is
    /// told why it ended.
    fn remove(&mut self, slot: usize, error: Option<io::Error>, reason: LeaveReason) {
        let Some(mut conn) = self.conns.try_remove(slot) else { return };
        conn.deregister(self.poll.registry());
        self.queued_total = self.queued_total.saturating_sub(conn.queued());
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
        // A slow consumer was still open as far as the hub knows; its phase
        // was only changed to stop reading and writing.
        if matches!(conn.phase, Phase::Open { .. }) || reason == LeaveReason::SlowConsumer {
            self.tell_hub(Inbound::Closed { id: conn.id, reason });
        }
    }

    fn tell_hub(&mut self, message: Inbound) {
        if self.to_hub.send(message).is_err() {
            self.hub_failed();
        }
    }

    /// The hub is gone, which it only is if it failed: the server cannot
    /// go on, so it shuts down (once).
    fn hub_failed(&mut self) {
        if !self.hub_gone {
            log::error!("the hub stopped unexpectedly; shutting down");
            self.hub_gone = true;
            self.shutdown.shutdown();
        }
    }

    /// Shutdown is over for this thread once no connection is left and
    /// none can come, or at the end of the grace period.
    fn is_finished(&self, now: Instant) -> bool {
        match self.drain_deadline {
            None => false,
            Some(deadline) => (self.acceptor_gone && self.conns.is_empty()) || now >= deadline,
        }
    }

    /// The earliest moment the loop must wake without any event.
    fn next_deadline(&self) -> Option<Instant> {
        [self.timers.next(), self.drain_deadline]
            .into_iter()
            .flatten()
            .min()
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
