//! The acceptor: takes new connections off the listening sockets and hands
//! each to an I/O thread.
//!
//! It runs on its own thread with its own poll, so the I/O threads only
//! ever see established, admitted connections, and so the limits that need
//! a view of every connection (`--max-clients`, `--max-per-ip`) are kept in
//! one place without a lock: the hub tells it, as [`Released`] messages,
//! when a connection has left the chat (before anyone can read that it
//! left), and it reads those before each decision. A closed connection may
//! keep its descriptor a little longer, up to 5 s, while its last lines are
//! flushed; the descriptor budget keeps room for that
//! ([`crate::ops::descriptors::RESERVED`]). A connection goes to the I/O thread with the
//! fewest, which keeps the threads evenly loaded as clients come and go.
//!
//! When the process runs out of descriptors, accepting pauses for a moment
//! (see [`ACCEPT_BACKOFF`]) rather than spinning on a listener that stays
//! readable; connected clients are served meanwhile. On shutdown it stops
//! listening, tells the hub, and lets the I/O threads know that nothing
//! more will come.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::{ErrorKind, ServerEvent};
use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{SockRef, TcpKeepalive};

use crate::chat::messages::{Adopt, Inbound, Released};
use crate::frontend::line;
use crate::net::connection::is_disconnect;
use crate::net::shutdown::ShutdownHandle;
use crate::ops::liveness::Heartbeat;
use crate::ops::stats::{CloseReason, Stats};

/// The acceptor's waker token; listeners use their index.
pub const WAKER: Token = Token(usize::MAX);

/// How long to stop accepting when the process or system is out of file
/// descriptors (or socket memory). Accepting again at once would fail again
/// and, with the listener still readable, spin the loop; a short pause
/// keeps existing clients served and lets descriptors come free.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// At most one "out of descriptors" warning per this long, so a long
/// shortage does not flood the log.
const ACCEPT_WARNING_INTERVAL: Duration = Duration::from_secs(10);

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

/// How many readiness events one poll returns at most.
const EVENTS_CAPACITY: usize = 64;

/// The acceptor's way to one I/O thread.
#[derive(Debug)]
pub struct Inlet {
    /// Where new connections go.
    pub sender: Sender<Adopt>,
    /// Wakes the I/O thread once connections are waiting.
    pub waker: Arc<Waker>,
}

/// One I/O thread, as the acceptor sees it.
#[derive(Debug)]
struct Shard {
    inlet: Inlet,
    /// Connections given to it and not yet released.
    clients: usize,
    /// Given a connection in this turn, not yet woken.
    to_wake: bool,
}

/// The limits the acceptor enforces.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    /// `--max-clients`.
    pub max_clients: usize,
    /// `--max-per-ip` (0 = no limit).
    pub max_per_ip: usize,
}

/// Everything the acceptor owns.
#[derive(Debug)]
pub struct Acceptor {
    poll: Poll,
    listeners: Vec<TcpListener>,
    shards: Vec<Shard>,
    released: Receiver<Released>,
    to_hub: Sender<Inbound>,
    admission: Admission,
    /// Connections given out and not yet released, per address (in all,
    /// see [`Acceptor::clients`]).
    per_ip: HashMap<IpAddr, usize>,
    /// Serial for the next connection (see [`crate::chat::messages::ConnId`]).
    next_serial: u64,
    /// Set while accepting is paused for lack of descriptors: when to try
    /// again.
    paused_until: Option<Instant>,
    /// When the last "out of descriptors" warning was logged.
    last_warning: Option<Instant>,
    /// Says whether shutdown was asked for.
    shutdown: ShutdownHandle,
    stats: Arc<Stats>,
    heartbeat: Heartbeat,
}

impl Acceptor {
    /// An acceptor on `listeners`, registered with `poll` (whose waker,
    /// registered by the caller, has the token [`WAKER`]).
    ///
    /// # Errors
    /// When a listener cannot be registered.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        poll: Poll,
        mut listeners: Vec<TcpListener>,
        inlets: Vec<Inlet>,
        released: Receiver<Released>,
        to_hub: Sender<Inbound>,
        admission: Admission,
        shutdown: ShutdownHandle,
        stats: Arc<Stats>,
        heartbeat: Heartbeat,
    ) -> io::Result<Acceptor> {
        for (index, listener) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(listener, Token(index), Interest::READABLE)?;
        }
        Ok(Acceptor {
            poll,
            listeners,
            shards: inlets
                .into_iter()
                .map(|inlet| Shard {
                    inlet,
                    clients: 0,
                    to_wake: false,
                })
                .collect(),
            released,
            to_hub,
            admission,
            per_ip: HashMap::new(),
            next_serial: 0,
            paused_until: None,
            last_warning: None,
            shutdown,
            stats,
            heartbeat,
        })
    }

    /// Accepts until shutdown; then stops listening, tells the hub to say
    /// goodbye to everyone, and lets the I/O threads know that no more
    /// connections will come.
    ///
    /// # Errors
    /// When polling itself fails.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let result = loop {
            let timeout = self
                .paused_until
                .map(|at| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break Err(e);
            }
            if self.shutdown.is_requested() {
                break Ok(());
            }
            for event in events.iter() {
                if event.token() != WAKER && self.paused_until.is_none() {
                    self.accept(event.token().0);
                }
            }
            if self.paused_until.is_some_and(|at| at <= Instant::now()) {
                self.resume();
            }
            self.wake_shards();
            self.heartbeat.beat();
        };
        self.stop();
        result
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
                Err(e) if is_out_of_resources(&e) => return self.pause(&e),
                Err(e) => {
                    log::warn!("cannot accept a connection: {e}");
                    return;
                }
            }
        }
    }

    /// Stops accepting for [`ACCEPT_BACKOFF`]; connected clients are served
    /// as usual meanwhile.
    fn pause(&mut self, error: &io::Error) {
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|at| now >= at + ACCEPT_WARNING_INTERVAL)
        {
            self.take_released();
            log::warn!(
                "cannot accept connections: {error}; serving the {} connected clients and retrying every {} ms",
                self.clients(),
                ACCEPT_BACKOFF.as_millis()
            );
            self.last_warning = Some(now);
        }
        self.paused_until = Some(now + ACCEPT_BACKOFF);
    }

    /// Accepting was paused and may go on: take what waited meanwhile
    /// (edge-triggered polling would not report those connections again).
    fn resume(&mut self) {
        self.paused_until = None;
        for index in 0..self.listeners.len() {
            if self.paused_until.is_some() {
                return;
            }
            self.accept(index);
        }
    }

    /// Admits a new connection, or tells it why not and closes it.
    fn admit(&mut self, stream: TcpStream, addr: SocketAddr) {
        self.stats.count_accepted();
        self.take_released();
        let clients = self.clients();
        if clients >= self.admission.max_clients {
            log::warn!("refused {addr}: server full ({clients} clients)");
            self.stats.count_closed(CloseReason::RefusedFull);
            return refuse(stream, ErrorKind::ServerFull, &self.stats);
        }
        let from_ip = self.per_ip.get(&addr.ip()).copied().unwrap_or(0);
        if self.admission.max_per_ip > 0 && from_ip >= self.admission.max_per_ip {
            log::warn!("refused {addr}: already {from_ip} connections from {}", addr.ip());
            self.stats.count_closed(CloseReason::RefusedPerIp);
            return refuse(stream, ErrorKind::TooManyFromAddress, &self.stats);
        }
        configure_socket(&stream, addr);
        let Some(shard) = self.shards.iter_mut().min_by_key(|shard| shard.clients) else { return };
        let serial = self.next_serial;
        self.next_serial += 1;
        if shard.inlet.sender.send(Adopt { stream, addr, serial }).is_err() {
            // The I/O thread has stopped: the server is going down.
            self.stats.count_closed(CloseReason::Disconnect);
            return;
        }
        shard.clients += 1;
        shard.to_wake = true;
        *self.per_ip.entry(addr.ip()).or_insert(0) += 1;
    }

    /// Connections given out and not yet released, in all.
    fn clients(&self) -> usize {
        self.shards.iter().map(|shard| shard.clients).sum()
    }

    /// Frees the places of the connections that have left.
    fn take_released(&mut self) {
        for Released { shard, ip } in self.released.try_iter() {
            if let Some(shard) = self.shards.get_mut(shard) {
                shard.clients = shard.clients.saturating_sub(1);
            }
            if let Some(count) = self.per_ip.get_mut(&ip) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.per_ip.remove(&ip);
                }
            }
        }
    }

    /// Wakes the I/O threads given connections in this turn.
    fn wake_shards(&mut self) {
        for shard in &mut self.shards {
            if std::mem::take(&mut shard.to_wake) {
                if let Err(e) = shard.inlet.waker.wake() {
                    log::error!("cannot wake an I/O thread: {e}");
                }
            }
        }
    }

    /// Stops listening, asks the hub to tell everyone and close them, and
    /// wakes the I/O threads, which find the acceptor gone.
    fn stop(mut self) {
        log::info!("shutting down");
        for listener in &mut self.listeners {
            let _ = self.poll.registry().deregister(listener);
        }
        self.listeners.clear();
        // The hub is only gone already if it failed, which was logged.
        let _ = self.to_hub.send(Inbound::Shutdown);
        for shard in self.shards.drain(..) {
            // Its channel closed, then woken, the I/O thread finds the
            // acceptor gone.
            let Inlet { sender, waker } = shard.inlet;
            drop(sender);
            if let Err(e) = waker.wake() {
                log::error!("cannot wake an I/O thread: {e}");
            }
        }
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

/// Tells a connection we will not serve why, and closes it.
fn refuse(stream: TcpStream, error: ErrorKind, stats: &Stats) {
    let mut bytes = Vec::new();
    stats.count_error(&error);
    line::encode(&ServerEvent::Error(error), &mut bytes);
    // A fresh socket's send buffer is empty, so this short write goes
    // through at once or the peer is already gone; either way we close.
    if let Ok(n) = (&stream).write(&bytes) {
        stats.count_bytes_sent(n);
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
