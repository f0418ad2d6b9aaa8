//! The event loop: every socket, on one thread, without blocking.
//!
//! It accepts connections, reads and decodes what clients send, passes the
//! lines to the hub, and writes what the hub answers. The hub runs on its
//! own thread; it wakes this loop through a [`mio::Waker`] when it has
//! output, and the loop then drains the whole channel (wakes merge, so one
//! wake may stand for many messages). Output for a connection is queued and
//! written in as few system calls as the kernel allows, after each batch.
//!
//! A slow client only fills its own queue: nothing here ever waits for one
//! socket.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::{ErrorKind, ServerEvent};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::config::Config;
use crate::connection::{is_disconnect, Connection, Phase, ReadOutcome, WriteOutcome};
use crate::messages::{ConnId, Inbound, Outbound};
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

/// Size of the buffer every read goes through. 64 KiB takes a flood in few
/// system calls; it is one buffer for the whole loop, not per connection.
const READ_BUFFER: usize = 64 * 1024;

/// How many readiness events one poll returns at most.
const EVENTS_CAPACITY: usize = 1024;

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
    /// When each closing connection is closed anyway, soonest first.
    close_timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Serial for the next connection (see [`ConnId`]).
    next_serial: u64,
    /// Set once shutdown has begun: when it must end, ready or not.
    drain_deadline: Option<Instant>,
    /// The hub has stopped (or died); it will send nothing more.
    hub_stopped: bool,
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
            close_timers: BinaryHeap::new(),
            next_serial: 0,
            drain_deadline: None,
            hub_stopped: false,
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
            self.take_hub_output();
            self.flush_dirty();
            let now = Instant::now();
            self.expire_closing(now);
            if self.is_finished(now) {
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
            self.accept(index);
        } else {
            self.connection_ready(token.0, event);
        }
    }

    /// Accepts every pending connection on the listener at `index`.
    fn accept(&mut self, index: usize) {
        loop {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            match listener.accept() {
                Ok((stream, addr)) => self.admit(stream, addr),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_disconnect(&e) => continue,
                Err(e) => {
                    log::warn!("cannot accept a connection: {e}");
                    return;
                }
            }
        }
    }

    fn admit(&mut self, stream: TcpStream, addr: SocketAddr) {
        if self.conns.len() >= self.config.max_clients {
            log::warn!("refused {addr}: server full ({} clients)", self.conns.len());
            return refuse(stream, ErrorKind::ServerFull);
        }
        // Chat lines are small and people wait for them: send at once
        // rather than let Nagle's algorithm hold them back.
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("{addr}: cannot set TCP_NODELAY: {e}");
        }
        let entry = self.conns.vacant_entry();
        let id = ConnId {
            slot: entry.key(),
            serial: self.next_serial,
        };
        self.next_serial += 1;
        match Connection::register(
            id,
            stream,
            addr,
            self.config.max_line,
            self.poll.registry(),
            Token(id.slot),
        ) {
            Ok(conn) => {
                entry.insert(conn);
                self.tell_hub(Inbound::Connected { id, addr });
            }
            Err(e) => log::warn!("cannot register connection from {addr}: {e}"),
        }
    }

    fn connection_ready(&mut self, slot: usize, event: &Event) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if event.is_writable() {
            self.dirty.push(slot);
        }
        if !(event.is_readable() || event.is_read_closed() || event.is_error()) {
            return;
        }
        let outcome = match conn.phase {
            Phase::Open => {
                let (id, to_hub) = (conn.id, &self.to_hub);
                conn.read(&mut self.read_buf, |line| {
                    if let Some(line) = wire::to_command(line) {
                        // The hub only goes away after shutdown; lines
                        // then have nowhere to go.
                        let _ = to_hub.send(Inbound::Line { id, line });
                    }
                })
            }
            Phase::Lingering { .. } => conn.discard_input(&mut self.read_buf),
            // Nothing more is read once the client's side has ended or the
            // hub has closed the connection.
            Phase::ReadClosed | Phase::Closing { .. } => return,
        };
        match (outcome, conn.phase) {
            (ReadOutcome::Open, _) => {}
            (ReadOutcome::Eof, Phase::Open) => {
                conn.phase = Phase::ReadClosed;
                let id = conn.id;
                self.tell_hub(Inbound::Closed { id });
            }
            (ReadOutcome::Eof, _) => self.remove(slot, None),
            (ReadOutcome::Failed(e), _) => self.remove(slot, Some(e)),
        }
    }

    /// Applies everything the hub has sent.
    fn take_hub_output(&mut self) {
        loop {
            match self.from_hub.try_recv() {
                Ok(Outbound::Deliver { to, event }) => self.deliver(&to, &event),
                Ok(Outbound::Close { id }) => {
                    if let Some(conn) = self.conns.get_mut(id.slot).filter(|c| c.id == id) {
                        if matches!(conn.phase, Phase::Open | Phase::ReadClosed) {
                            let until = Instant::now() + CLOSE_TIMEOUT;
                            conn.phase = Phase::Closing { until };
                            self.close_timers.push(Reverse((until, id)));
                            self.dirty.push(id.slot);
                        }
                    }
                }
                Ok(Outbound::Stopped) => self.hub_stopped = true,
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    if !self.hub_stopped {
                        log::error!("the hub stopped unexpectedly; shutting down");
                        self.hub_stopped = true;
                        self.begin_shutdown();
                    }
                    return;
                }
            }
        }
    }

    /// Queues `event` to each recipient, encoding it once.
    fn deliver(&mut self, to: &[ConnId], event: &ServerEvent) {
        self.encoded.clear();
        wire::encode(event, &mut self.encoded);
        for id in to {
            let Some(conn) = self.conns.get_mut(id.slot).filter(|c| c.id == *id) else {
                continue;
            };
            if matches!(
                conn.phase,
                Phase::Open | Phase::ReadClosed | Phase::Closing { .. }
            ) {
                conn.enqueue(&self.encoded);
                self.dirty.push(id.slot);
            }
        }
    }

    /// Writes the output queued in this batch, and moves connections that
    /// are done to lingering.
    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for slot in dirty.drain(..) {
            let Some(conn) = self.conns.get_mut(slot) else {
                continue;
            };
            if matches!(conn.phase, Phase::Lingering { .. }) {
                continue;
            }
            match conn.flush(self.poll.registry(), Token(slot)) {
                WriteOutcome::Drained => {
                    if let Phase::Closing { until } = conn.phase {
                        self.start_lingering(slot, until);
                    }
                }
                WriteOutcome::Pending => {}
                WriteOutcome::Failed(e) => self.remove(slot, Some(e)),
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
        match conn.discard_input(&mut self.read_buf) {
            ReadOutcome::Open => {}
            ReadOutcome::Eof => self.remove(slot, None),
            ReadOutcome::Failed(e) => self.remove(slot, Some(e)),
        }
    }

    /// Closes the connections whose [`CLOSE_TIMEOUT`] has run out.
    fn expire_closing(&mut self, now: Instant) {
        while let Some(Reverse((until, id))) = self.close_timers.peek().copied() {
            if until > now {
                return;
            }
            self.close_timers.pop();
            let closing = self.conns.get(id.slot).is_some_and(|c| {
                c.id == id && matches!(c.phase, Phase::Closing { .. } | Phase::Lingering { .. })
            });
            if closing {
                self.remove(id.slot, None);
            }
        }
    }

    /// Closes a connection now. If the hub still thinks it is open, it is
    /// told.
    fn remove(&mut self, slot: usize, error: Option<io::Error>) {
        let Some(mut conn) = self.conns.try_remove(slot) else {
            return;
        };
        conn.deregister(self.poll.registry());
        if let Some(e) = error {
            if is_disconnect(&e) {
                log::debug!("{}: connection lost: {e}", conn.addr);
            } else {
                log::warn!("{}: connection failed: {e}", conn.addr);
            }
        }
        if conn.phase == Phase::Open {
            self.tell_hub(Inbound::Closed { id: conn.id });
        }
    }

    /// Stops accepting and asks the hub to tell everyone and close them.
    fn begin_shutdown(&mut self) {
        log::info!("shutting down");
        for listener in &mut self.listeners {
            let _ = self.poll.registry().deregister(listener);
        }
        self.listeners.clear();
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
        let closing = self.close_timers.peek().map(|Reverse((until, _))| *until);
        match (closing, self.drain_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Tells a connection we will not serve why, and closes it.
fn refuse(stream: TcpStream, error: ErrorKind) {
    let mut bytes = Vec::new();
    wire::encode(&ServerEvent::Error(error), &mut bytes);
    // A fresh socket's send buffer is empty, so this short write goes
    // through at once or the peer is already gone; either way we close.
    let _ = (&stream).write(&bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
