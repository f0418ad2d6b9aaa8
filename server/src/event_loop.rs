//! The event loop: every socket, on one thread, without blocking.
//!
//! It accepts connections, reads and decodes what clients send, passes the
//! lines to the hub, and writes what the hub answers. The hub runs on its
//! own thread; it wakes this loop through a [`mio::Waker`] when it has
//! output, and the loop then drains the whole channel (wakes merge, so one
//! wake may stand for many messages). Output for a connection is queued and
//! written in as few system calls as the kernel allows, after each batch.
//!
//! Nothing here ever waits for one socket, and every limit that protects
//! the others is enforced here: the outbound queue (`--sendq`), flood
//! control (`--rate`, `--burst`, see [`crate::flood`]), connections per
//! address (`--max-per-ip`) and in all (`--max-clients`), the idle timeout,
//! and a back-off when the process runs out of file descriptors.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::{ErrorKind, LeaveReason, ServerEvent};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;
use socket2::{SockRef, TcpKeepalive};

use crate::config::Config;
use crate::connection::{is_disconnect, Connection, Limits, Phase, ReadOutcome, WriteOutcome};
use crate::messages::{ConnId, Inbound, Outbound};
use crate::stats::{CloseReason, Stats};
use crate::timers::{TimerKind, Timers};
use crate::wire;

/// The waker's token. Connections use their slab key as token; listeners
/// count down from just below this one.
pub const WAKER: Token = Token(usize::MAX);

/// Tokens reserved for listeners, below [`WAKER`]. Slab keys never come
/// near them.
const MAX_LISTENERS: usize = 1024;

/// Token of the listener at `index`.
fn listener_token(index: usize) -> Token {
    Token(usize::MAX - 1 - index)
}

/// Which listener a token names, if it names one.
fn listener_index(token: Token) -> Option<usize> {
    let index = (usize::MAX - 1).checked_sub(token.0)?;
    (token != WAKER && index < MAX_LISTENERS).then_some(index)
}

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

/// How long to stop accepting when the process or system is out of file
/// descriptors (or socket memory). Accepting again at once would fail again
/// and, with the listener still readable, spin the loop; a short pause
/// keeps existing clients served and lets descriptors come free.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// At most one "out of descriptors" warning per this long, so a long
/// shortage does not flood the log.
const ACCEPT_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Before queueing more to a connection that already holds this much, try
/// to write it out, so that a burst in one batch is measured against
/// `--sendq` only after the kernel has taken what it will.
const FLUSH_BEFORE_QUEUEING: usize = 64 * 1024;

/// The kernel send buffer asked for on each client socket. Left to
/// autotuning, a socket whose peer never reads grows its buffer to the
/// `tcp_wmem` maximum (4 MB here), kernel memory that `--sendq` does not
/// see; 64 KiB (doubled by Linux for bookkeeping) keeps a non-reader's
/// kernel share small and lets `--sendq` notice it sooner, while a reading
/// client is drained every turn of the loop anyway.
const SEND_BUFFER: usize = 64 * 1024;

/// TCP keepalive on every client socket: after this long without traffic
/// the kernel starts probing, so a peer that vanished (power loss, cable
/// pulled, NAT forgot us) is found and its nick and room slot freed.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// Time between keepalive probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes before the kernel gives up on the peer.
const KEEPALIVE_RETRIES: u32 = 6;

/// Everything the event loop owns.
pub struct EventLoop {
    poll: Poll,
    listeners: Vec<TcpListener>,
    /// Connections by slab key, which is also their token.
    conns: Slab<Connection>,
    config: Config,
    to_hub: Sender<Inbound>,
    from_hub: Receiver<Outbound>,
    /// Set by a [`crate::ShutdownHandle`] from any thread.
    shutdown: Arc<AtomicBool>,
    /// Scratch space for reads, shared by all connections.
    read_buf: Vec<u8>,
    /// Scratch space for encoding one event once for all its recipients.
    encoded: Vec<u8>,
    /// Slab keys of connections with output to write after this batch.
    dirty: Vec<usize>,
    /// Connections dropped for overflowing their queue during this batch.
    slow: Vec<usize>,
    /// Close, resume and idle timers.
    timers: Timers,
    /// Connections per peer address, for `--max-per-ip`.
    per_ip: HashMap<IpAddr, usize>,
    /// Set while accepting is paused for lack of descriptors: when to try
    /// again.
    accept_paused_until: Option<Instant>,
    /// When the last "out of descriptors" warning was logged.
    last_accept_warning: Option<Instant>,
    /// Serial for the next connection (see [`ConnId`]).
    next_serial: u64,
    /// Set once shutdown has begun: when it must end, ready or not.
    drain_deadline: Option<Instant>,
    /// The hub has stopped (or died); it will send nothing more.
    hub_stopped: bool,
    /// Counters for watchers on other threads.
    stats: Arc<Stats>,
    /// Bytes queued to all connections and not yet written.
    queued_total: usize,
    /// When the lines were read whose output was queued in this turn: the
    /// fan-out latency is measured once that output has been handed to the
    /// sockets.
    fanout_pending: Vec<Instant>,
}

impl EventLoop {
    /// An event loop over already-bound listeners, talking to the hub
    /// through the two channels.
    ///
    /// # Errors
    /// When a listener cannot be registered with the poll.
    pub fn new(
        poll: Poll,
        listeners: Vec<TcpListener>,
        config: Config,
        to_hub: Sender<Inbound>,
        from_hub: Receiver<Outbound>,
        shutdown: Arc<AtomicBool>,
        stats: Arc<Stats>,
    ) -> io::Result<EventLoop> {
        let mut listeners = listeners;
        if listeners.len() > MAX_LISTENERS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("at most {MAX_LISTENERS} listening sockets"),
            ));
        }
        for (index, listener) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(listener, listener_token(index), Interest::READABLE)?;
        }
        Ok(EventLoop {
            poll,
            listeners,
            conns: Slab::new(),
            config,
            to_hub,
            from_hub,
            shutdown,
            read_buf: vec![0; READ_BUFFER],
            encoded: Vec::new(),
            dirty: Vec::new(),
            slow: Vec::new(),
            timers: Timers::default(),
            per_ip: HashMap::new(),
            accept_paused_until: None,
            last_accept_warning: None,
            next_serial: 0,
            drain_deadline: None,
            hub_stopped: false,
            stats,
            queued_total: 0,
            fanout_pending: Vec::new(),
        })
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
                self.dispatch(event);
            }
            if self.shutdown.load(Ordering::Acquire) && self.drain_deadline.is_none() {
                self.begin_shutdown();
            }
            self.run_due_timers();
            self.take_hub_output();
            self.flush_dirty();
            let now = Instant::now();
            for since in self.fanout_pending.drain(..) {
                self.stats.fanout().observe(now.saturating_duration_since(since));
            }
            self.stats.set_queued_bytes(self.queued_total);
            self.stats.set_clients(self.conns.len());
            self.stats.count_loop_turn();
            if self.is_finished(Instant::now()) {
                break;
            }
        }
        log::info!("stopped");
        Ok(())
    }

    fn dispatch(&mut self, event: &Event) {
        let token = event.token();
        if token == WAKER {
            // Hub output is taken after every poll anyway.
        } else if let Some(index) = listener_index(token) {
            if self.accept_paused_until.is_none() {
                self.accept(index);
            }
        } else {
            self.connection_ready(token.0, event);
        }
    }

    /// Accepts every pending connection on the listener at `index`.
    fn accept(&mut self, index: usize) {
        loop {
            let Some(listener) = self.listeners.get(index) else { return };
            match listener.accept() {
                Ok((stream, addr)) => self.admit(stream, addr),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_disconnect(&e) => continue,
                Err(e) if is_out_of_resources(&e) => return self.pause_accepting(&e),
                Err(e) => {
                    log::warn!("cannot accept a connection: {e}");
                    return;
                }
            }
        }
    }

    /// Stops accepting for [`ACCEPT_BACKOFF`]; existing clients are served
    /// as usual meanwhile.
    fn pause_accepting(&mut self, error: &io::Error) {
        let now = Instant::now();
        if self
            .last_accept_warning
            .is_none_or(|at| now >= at + ACCEPT_WARNING_INTERVAL)
        {
            log::warn!(
                "cannot accept connections: {error}; serving the {} connected clients and retrying every {} ms",
                self.conns.len(),
                ACCEPT_BACKOFF.as_millis()
            );
            self.last_accept_warning = Some(now);
        }
        self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
    }

    /// Accepting was paused and may go on: take what waited meanwhile
    /// (edge-triggered polling would not report those connections again).
    fn resume_accepting(&mut self) {
        self.accept_paused_until = None;
        for index in 0..self.listeners.len() {
            if self.accept_paused_until.is_some() {
                return;
            }
            self.accept(index);
        }
    }

    fn admit(&mut self, stream: TcpStream, addr: SocketAddr) {
        self.stats.count_accepted();
        if self.conns.len() >= self.config.max_clients {
            log::warn!("refused {addr}: server full ({} clients)", self.conns.len());
            self.stats.count_closed(CloseReason::RefusedFull);
            return refuse(stream, ErrorKind::ServerFull, &self.stats);
        }
        let from_ip = self.per_ip.get(&addr.ip()).copied().unwrap_or(0);
        if self.config.max_per_ip > 0 && from_ip >= self.config.max_per_ip {
            log::warn!("refused {addr}: already {from_ip} connections from {}", addr.ip());
            self.stats.count_closed(CloseReason::RefusedPerIp);
            return refuse(stream, ErrorKind::TooManyFromAddress, &self.stats);
        }
        configure_socket(&stream, addr);
        let entry = self.conns.vacant_entry();
        let id = ConnId {
            slot: entry.key(),
            serial: self.next_serial,
        };
        self.next_serial += 1;
        let limits = Limits {
            max_line: self.config.max_line,
            rate: self.config.rate,
            burst: self.config.burst,
        };
        match Connection::register(id, stream, addr, &limits, self.poll.registry(), Token(id.slot)) {
            Ok(conn) => {
                entry.insert(conn);
                *self.per_ip.entry(addr.ip()).or_insert(0) += 1;
                if let Some(idle) = self.config.idle_timeout {
                    self.timers.add(Instant::now() + idle, id, TimerKind::Idle);
                }
                self.tell_hub(Inbound::Connected { id, addr });
            }
            Err(e) => {
                log::warn!("cannot register connection from {addr}: {e}");
                self.stats.count_closed(CloseReason::Disconnect);
            }
        }
    }

    fn connection_ready(&mut self, slot: usize, event: &Event) {
        if event.is_writable() {
            self.dirty.push(slot);
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
                    if let Some(line) = wire::to_command(line) {
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
        if self.accept_paused_until.is_some_and(|at| at <= now) {
            self.resume_accepting();
        }
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
                            self.dirty.push(id.slot);
                        }
                    }
                }
                Ok(Outbound::Stopped) => self.hub_stopped = true,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if !self.hub_stopped {
                        log::error!("the hub stopped unexpectedly; shutting down");
                        self.hub_stopped = true;
                        self.begin_shutdown();
                    }
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
        self.encoded.clear();
        wire::encode(event, &mut self.encoded);
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
            self.dirty.push(id.slot);
        }
        if is_message && queued_to > 0 {
            self.stats.count_delivered(queued_to);
        }
    }

    /// Writes the output queued in this batch, and moves connections that
    /// are done to lingering.
    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for slot in dirty.drain(..) {
            let Some(conn) = self.conns.get_mut(slot) else { continue };
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
        if let Some(count) = self.per_ip.get_mut(&conn.addr.ip()) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_ip.remove(&conn.addr.ip());
            }
        }
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

    /// Stops accepting and asks the hub to tell everyone and close them.
    fn begin_shutdown(&mut self) {
        log::info!("shutting down");
        for listener in &mut self.listeners {
            let _ = self.poll.registry().deregister(listener);
        }
        self.listeners.clear();
        self.accept_paused_until = None;
        self.tell_hub(Inbound::Shutdown);
        self.drain_deadline = Some(Instant::now() + self.config.shutdown_grace);
    }

    fn tell_hub(&mut self, message: Inbound) {
        if self.to_hub.send(message).is_err() && !self.hub_stopped {
            log::error!("the hub stopped unexpectedly; shutting down");
            self.hub_stopped = true;
            self.shutdown.store(true, Ordering::Release);
        }
    }

    fn is_finished(&self, now: Instant) -> bool {
        match self.drain_deadline {
            None => false,
            Some(deadline) => (self.hub_stopped && self.conns.is_empty()) || now >= deadline,
        }
    }

    /// The earliest moment the loop must wake without any event.
    fn next_deadline(&self) -> Option<Instant> {
        [self.timers.next(), self.drain_deadline, self.accept_paused_until]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Socket options for a newly accepted client.
fn configure_socket(stream: &TcpStream, addr: SocketAddr) {
    // Chat lines are small and people wait for them: send at once rather
    // than let Nagle's algorithm hold them back.
    if let Err(e) = stream.set_nodelay(true) {
        log::debug!("{addr}: cannot set TCP_NODELAY: {e}");
    }
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    if let Err(e) = SockRef::from(stream).set_send_buffer_size(SEND_BUFFER) {
        log::debug!("{addr}: cannot set SO_SNDBUF: {e}");
    }
    if let Err(e) = SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        log::debug!("{addr}: cannot set TCP keepalive: {e}");
    }
}

/// True for accept errors that mean the process or system is out of
/// descriptors or socket memory, not that this connection failed.
fn is_out_of_resources(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
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

/// Tells a connection we will not serve why, and closes it.
fn refuse(stream: TcpStream, error: ErrorKind, stats: &Stats) {
    let mut bytes = Vec::new();
    stats.count_error(&error);
    wire::encode(&ServerEvent::Error(error), &mut bytes);
    // A fresh socket's send buffer is empty, so this short write goes
    // through at once or the peer is already gone; either way we close.
    if let Ok(n) = (&stream).write(&bytes) {
        stats.count_bytes_sent(n);
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
