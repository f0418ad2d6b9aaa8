//! The acceptor: takes new connections off the listening sockets and hands
//! each to an I/O thread.
//!
//! It runs on its own thread with its own poll, so the I/O threads only
//! ever see established, admitted connections, and so the limits that need
//! a view of every connection (`--max-clients`, and the per-address and
//! per-network limits and throttles of [`crate::net::admission`]) are kept
//! in one place without a lock: the hub tells it, as [`Released`]
//! messages, when a connection has left the chat (before anyone can read
//! that it left), and it reads those before each decision. A connection
//! goes to the I/O thread with the fewest, which keeps the threads evenly
//! loaded as clients come and go.
//!
//! On a full server a newcomer is not simply refused: it goes to the I/O
//! thread that holds the connection connected longest without ever saying
//! anything, which ends that connection (if it has been here 10 s at
//! least) to make room, and refuses the newcomer only if it cannot (see
//! [`Adopt::make_room`]). Sockets that only hold a place cannot keep out
//! people who talk.
//!
//! Accepting drains each listener until it would block. Errors that are
//! about one connection, which Linux passes up through `accept(2)`
//! (`ECONNABORTED`, `EPROTO`, `ENETDOWN`, `EHOSTUNREACH`, ...), are
//! skipped and draining goes on: with edge-triggered polling, stopping
//! would leave the backlog waiting for the next connection. When the
//! process runs out of descriptors, accepting pauses for a moment (see
//! [`ACCEPT_BACKOFF`]) rather than spinning on a listener that stays
//! readable; connected clients are served meanwhile. On shutdown it stops
//! listening, tells the hub, and lets the I/O threads know that nothing
//! more will come.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{SockRef, TcpKeepalive};

use crate::chat::messages::{Adopt, Inbound, Released};
use crate::config::Config;
use crate::frontend::Protocol;
use crate::net::admission::{Admission, Door, OldestSilent, Refusal};
use crate::net::event_loop::refuse;
use crate::net::shutdown::ShutdownHandle;
use crate::net::timers::later;
use crate::ops::control::bans::ServerBans;
use crate::ops::liveness::Heartbeat;
use crate::ops::logging::{and_more, counted, Throttled};
use crate::ops::stats::Stats;

/// The acceptor's waker token; listeners use their index.
pub const WAKER: Token = Token(usize::MAX);

/// How long to stop accepting when the process or system is out of file
/// descriptors (or socket memory). Accepting again at once would fail again
/// and, with the listener still readable, spin the loop; a short pause
/// keeps existing clients served and lets descriptors come free.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// At most one warning of each kind (out of descriptors, refused
/// connections, failed accepts) per this long, so a long shortage or an
/// attack does not flood the log.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Most newcomers sent to make room on a full server in one turn of the
/// acceptor: each briefly counts on top of `--max-clients` until the
/// silent connection it replaces has gone, so a burst of them is bounded.
const MAKE_ROOM_PER_TURN: usize = 16;

/// Most accept errors that are not about one connection (nor about
/// descriptors) in one pass before the acceptor pauses like when out of
/// descriptors: an error that repeats for ever must not spin the loop.
const MAX_ERRORS_PER_PASS: usize = 64;

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

/// What a listener's clients speak: a wire format, over TLS or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerKind {
    /// The wire format.
    pub protocol: Protocol,
    /// Whether connections handshake TLS first.
    pub tls: bool,
}

impl ListenerKind {
    /// The line protocol over plain TCP.
    pub const LINE: ListenerKind = ListenerKind {
        protocol: Protocol::Line,
        tls: false,
    };
    /// The line protocol over TLS.
    pub const LINE_TLS: ListenerKind = ListenerKind {
        protocol: Protocol::Line,
        tls: true,
    };
    /// IRC over plain TCP.
    pub const IRC: ListenerKind = ListenerKind {
        protocol: Protocol::Irc,
        tls: false,
    };
    /// IRC over TLS.
    pub const IRC_TLS: ListenerKind = ListenerKind {
        protocol: Protocol::Irc,
        tls: true,
    };

    /// The web page and its WebSocket over plain TCP.
    pub const WEB: ListenerKind = ListenerKind {
        protocol: Protocol::Web,
        tls: false,
    };
    /// The web page and its WebSocket over TLS.
    pub const WEB_TLS: ListenerKind = ListenerKind {
        protocol: Protocol::Web,
        tls: true,
    };

    /// What the log and systemd's status line add after the address of a
    /// listener of this kind; None for the plain line protocol.
    pub fn label(self) -> Option<&'static str> {
        match (self.protocol, self.tls) {
            (Protocol::Line, false) => None,
            (Protocol::Line, true) => Some("TLS"),
            (Protocol::Irc, false) => Some("IRC"),
            (Protocol::Irc, true) => Some("IRC over TLS"),
            (Protocol::Web, false) => Some("web"),
            (Protocol::Web, true) => Some("web over TLS"),
            (Protocol::Test, false) => Some("test"),
            (Protocol::Test, true) => Some("test over TLS"),
        }
    }
}

/// The acceptor's way to one I/O thread.
#[derive(Debug)]
pub struct Inlet {
    /// Where new connections go.
    pub sender: Sender<Adopt>,
    /// Wakes the I/O thread once connections are waiting.
    pub waker: Arc<Waker>,
    /// When its longest-silent connection came (kept by the I/O thread):
    /// a newcomer on a full server goes to the thread with the oldest.
    pub oldest_silent: OldestSilent,
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

/// How one pass over a listener ended.
#[derive(Debug)]
pub enum PassEnd {
    /// The listener has nothing more waiting.
    Drained,
    /// The process or system is out of descriptors or socket memory.
    OutOfResources(io::Error),
    /// Accepting failed [`MAX_ERRORS_PER_PASS`] times for reasons not about
    /// one connection: the last error.
    Failing(io::Error),
}

/// Accepts from `accept` until it would block, handing each connection to
/// `admit`. Errors about one connection are skipped (they are counted in
/// `skipped`); running out of descriptors, or too many other errors, ends
/// the pass early.
pub fn accept_pass<S>(
    mut accept: impl FnMut() -> io::Result<(S, SocketAddr)>,
    mut admit: impl FnMut(S, SocketAddr),
    skipped: &mut u64,
) -> PassEnd {
    let mut errors = 0;
    loop {
        match accept() {
            Ok((stream, addr)) => admit(stream, addr),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return PassEnd::Drained,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_out_of_resources(&e) => return PassEnd::OutOfResources(e),
            Err(e) if is_about_one_connection(&e) => *skipped += 1,
            Err(e) => {
                errors += 1;
                if errors >= MAX_ERRORS_PER_PASS {
                    return PassEnd::Failing(e);
                }
            }
        }
    }
}

/// Everything the acceptor owns.
#[derive(Debug)]
pub struct Acceptor {
    poll: Poll,
    /// The listening sockets, each with what its clients speak.
    listeners: Vec<(TcpListener, ListenerKind)>,
    shards: Vec<Shard>,
    released: Receiver<Released>,
    /// To tell the hub when the listeners are closed.
    to_hub: Sender<Inbound>,
    max_clients: usize,
    admission: Admission,
    /// Serial for the next connection (see [`crate::chat::messages::ConnId`]).
    next_serial: u64,
    /// Newcomers sent to make room in this turn.
    made_room: usize,
    /// Set while accepting is paused: when to try again.
    paused_until: Option<Instant>,
    /// Warnings that may repeat, each logged at most once per interval.
    out_of_descriptors: Throttled,
    failing: Throttled,
    /// One per kind of refusal, in the order of [`Refusal::ALL`].
    refused: [Throttled; 5],
    /// The server bans in force, and where new lists come from (the
    /// control thread, as operators change them).
    bans: Arc<ServerBans>,
    ban_updates: Receiver<Arc<ServerBans>>,
    /// Accept errors about one connection, since the last log line.
    skipped: u64,
    /// Says whether shutdown was asked for.
    shutdown: ShutdownHandle,
    stats: Arc<Stats>,
    heartbeat: Heartbeat,
    /// Where the listening sockets go when the stop is a handover (see
    /// [`crate::upgrade`]), rather than being closed.
    handover: Option<Sender<Vec<(TcpListener, ListenerKind)>>>,
}

impl Acceptor {
    /// An acceptor on `listeners`, registered with `poll` (whose waker,
    /// registered by the caller, has the token [`WAKER`]), admitting
    /// connections as `config` says.
    ///
    /// # Errors
    /// When a listener cannot be registered.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        poll: Poll,
        mut listeners: Vec<(TcpListener, ListenerKind)>,
        inlets: Vec<Inlet>,
        released: Receiver<Released>,
        to_hub: Sender<Inbound>,
        config: &Config,
        (bans, ban_updates): (Arc<ServerBans>, Receiver<Arc<ServerBans>>),
        shutdown: ShutdownHandle,
        stats: Arc<Stats>,
        heartbeat: Heartbeat,
    ) -> io::Result<Acceptor> {
        for (index, (listener, _)) in listeners.iter_mut().enumerate() {
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
            max_clients: config.max_clients,
            admission: Admission::new(config),
            next_serial: 0,
            made_room: 0,
            paused_until: None,
            out_of_descriptors: Throttled::new("failed accepts: out of descriptors", WARNING_INTERVAL),
            failing: Throttled::new("failed accepts", WARNING_INTERVAL),
            refused: Refusal::ALL.map(|refusal| Throttled::new(refusal.summary(), WARNING_INTERVAL)),
            skipped: 0,
            bans,
            ban_updates,
            shutdown,
            stats,
            heartbeat,
            handover: None,
        })
    }

    /// On a stop that is a handover, the listening sockets go to `to`,
    /// still open, for the next process; on any other stop they are
    /// closed, so that newcomers are refused.
    pub fn hand_listeners_to(&mut self, to: Sender<Vec<(TcpListener, ListenerKind)>>) {
        self.handover = Some(to);
    }

    /// Counts the connections carried over a restart (see
    /// [`crate::upgrade`]) as given out: each I/O thread's, and each
    /// address's; serials go on from `next_serial`.
    pub fn count_restored(&mut self, restored: &[(usize, std::net::IpAddr)], next_serial: u64) {
        for &(shard, ip) in restored {
            if let Some(shard) = self.shards.get_mut(shard) {
                shard.clients += 1;
            }
            self.admission.occupy(ip);
        }
        self.next_serial = self.next_serial.max(next_serial);
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
            let now = Instant::now();
            let timeout = [self.paused_until, self.next_flush()]
                .into_iter()
                .flatten()
                .min()
                .map(|at| at.saturating_duration_since(now));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break Err(e);
            }
            if self.shutdown.is_requested() {
                break Ok(());
            }
            self.made_room = 0;
            for event in events.iter() {
                if event.token() != WAKER && self.paused_until.is_none() {
                    self.accept(event.token().0);
                }
            }
            if self.paused_until.is_some_and(|at| at <= Instant::now()) {
                self.resume();
            }
            self.wake_shards();
            self.flush_warnings();
            self.heartbeat.beat();
        };
        self.stop();
        result
    }

    /// Accepts every pending connection on the listener at `index`,
    /// admitting or refusing each at once (a refused one is closed before
    /// the next is taken, so a flood costs one descriptor at a time).
    fn accept(&mut self, index: usize) {
        // Out of `self` for the pass, so that admitting can borrow the rest.
        let listeners = std::mem::take(&mut self.listeners);
        let end = match listeners.get(index) {
            Some((listener, kind)) => {
                let mut skipped = 0;
                let end = accept_pass(
                    || listener.accept(),
                    |stream, addr| self.admit(stream, addr, *kind),
                    &mut skipped,
                );
                self.skipped += skipped;
                end
            }
            None => PassEnd::Drained,
        };
        self.listeners = listeners;
        match end {
            PassEnd::Drained => {}
            PassEnd::OutOfResources(e) => self.pause_out_of_descriptors(&e),
            PassEnd::Failing(e) => {
                if let Some(suppressed) = self.failing.check(Instant::now()) {
                    log::warn!(
                        "cannot accept connections: {e}; retrying in {} ms{}",
                        ACCEPT_BACKOFF.as_millis(),
                        and_more(suppressed)
                    );
                }
                self.paused_until = Some(later(Instant::now(), ACCEPT_BACKOFF));
            }
        }
        if self.skipped > 0 {
            log::debug!(
                "skipped {} that failed before they were accepted",
                counted(self.skipped, "connection")
            );
            self.skipped = 0;
        }
    }

    /// Stops accepting for [`ACCEPT_BACKOFF`]; connected clients are served
    /// as usual meanwhile.
    fn pause_out_of_descriptors(&mut self, error: &io::Error) {
        let now = Instant::now();
        if let Some(suppressed) = self.out_of_descriptors.check(now) {
            self.take_released();
            log::warn!(
                "cannot accept connections: {error}; serving {} and retrying every {} ms{}",
                counted(self.clients(), "connected client"),
                ACCEPT_BACKOFF.as_millis(),
                and_more(suppressed)
            );
        }
        self.paused_until = Some(later(now, ACCEPT_BACKOFF));
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
    fn admit(&mut self, stream: TcpStream, addr: SocketAddr, kind: ListenerKind) {
        self.stats.count_accepted();
        self.take_released();
        let now = Instant::now();
        let full = self.clients() >= self.max_clients;
        let make_room = full.then(|| self.shard_to_make_room()).flatten();
        if let Some(bans) = self.ban_updates.try_iter().last() {
            self.bans = bans;
        }
        if self
            .bans
            .find(addr.ip(), crate::chat::hub::system_clock())
            .is_some()
        {
            return self.refuse(&stream, addr, kind, Refusal::Banned);
        }
        if full && make_room.is_none() {
            return self.refuse(&stream, addr, kind, Refusal::Full);
        }
        let door = match kind.protocol {
            Protocol::Web => Door::Web,
            Protocol::Line | Protocol::Irc | Protocol::Test => Door::Chat,
        };
        if let Err(refusal) = self.admission.admit_at(door, addr.ip(), now) {
            return self.refuse(&stream, addr, kind, refusal);
        }
        configure_socket(&stream, addr);
        let shard = match make_room {
            Some(shard) => shard,
            None => self
                .shards
                .iter()
                .enumerate()
                .min_by_key(|(_, shard)| shard.clients)
                .map_or(0, |(index, _)| index),
        };
        let Some(target) = self.shards.get_mut(shard) else {
            self.admission.release(addr.ip());
            return;
        };
        let serial = self.next_serial;
        self.next_serial += 1;
        let adopt = Adopt {
            stream,
            addr,
            serial,
            make_room: make_room.is_some(),
            protocol: kind.protocol,
            tls: kind.tls,
        };
        if target.inlet.sender.send(adopt).is_err() {
            // The I/O thread has stopped: the server is going down.
            self.admission.release(addr.ip());
            return;
        }
        if make_room.is_some() {
            self.made_room += 1;
        }
        target.clients += 1;
        target.to_wake = true;
    }

    /// The I/O thread whose longest-silent connection came first, to make
    /// room for a newcomer on a full server; `None` when no thread has
    /// one, or enough newcomers were sent to make room in this turn.
    fn shard_to_make_room(&self) -> Option<usize> {
        if self.made_room >= MAKE_ROOM_PER_TURN {
            return None;
        }
        self.shards
            .iter()
            .enumerate()
            .filter_map(|(index, shard)| Some((index, shard.inlet.oldest_silent.get()?)))
            .min_by_key(|&(_, since)| since)
            .map(|(index, _)| index)
    }

    /// The warnings that may repeat, all of them.
    fn warnings(&mut self) -> impl Iterator<Item = &mut Throttled> {
        [&mut self.out_of_descriptors, &mut self.failing]
            .into_iter()
            .chain(self.refused.iter_mut())
    }

    /// When the first warning with a count to report is due.
    fn next_flush(&self) -> Option<Instant> {
        [&self.out_of_descriptors, &self.failing]
            .into_iter()
            .chain(self.refused.iter())
            .filter_map(Throttled::next_flush)
            .min()
    }

    /// Logs the counts of the warnings that were held back, when due.
    fn flush_warnings(&mut self) {
        let now = Instant::now();
        for warning in self.warnings() {
            warning.flush(now);
        }
    }

    /// Tells a connection why it is refused, closes it, counts it, and logs
    /// it (at most once per interval and kind, with how many more there
    /// were).
    fn refuse(&mut self, stream: &TcpStream, addr: SocketAddr, kind: ListenerKind, refusal: Refusal) {
        let warning = self.refused.get_mut(refusal.index());
        if let Some(suppressed) = warning.and_then(|w| w.check(Instant::now())) {
            log::warn!(
                "refused {addr}: {} ({}){}",
                refusal.describe(),
                counted(self.clients(), "client"),
                and_more(suppressed)
            );
        }
        self.stats.count_closed(refusal.close_reason());
        refuse(stream, kind.protocol, kind.tls, refusal.error(), &self.stats);
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
            self.admission.release(ip);
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

    /// Stops listening, tells the hub, and wakes the I/O threads, which find
    /// the acceptor gone (they tell the hub when they have read their last
    /// lines).
    fn stop(mut self) {
        for (listener, _) in &mut self.listeners {
            let _ = self.poll.registry().deregister(listener);
        }
        let listeners = std::mem::take(&mut self.listeners);
        match self.handover.take() {
            Some(to) if self.shutdown.is_handover() => {
                // Still open: connections wait in their backlogs for the
                // next process.
                log::info!("handing over: no longer accepting");
                let _ = to.send(listeners);
            }
            _ => {
                log::info!("shutting down");
                drop(listeners);
            }
        }
        // The hub says goodbye once this has come (and every I/O thread has
        // sent its last lines). Its queue is bounded and it always drains
        // it, so this wait is short; it is only gone if it failed.
        let _ = self.to_hub.send(Inbound::AcceptorStopped);
        for shard in self.shards.drain(..) {
            // Its channel closed, then woken, the I/O thread finds the
            // acceptor gone.
            let Inlet { sender, waker, .. } = shard.inlet;
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

/// True for accept errors about one connection that failed before it was
/// accepted: accept(2) passes pending network errors up ("Linux accept()
/// passes already-pending network errors on the new socket as an error
/// code from accept()"), and a firewall may refuse one with EPERM. The
/// next connection is unaffected.
fn is_about_one_connection(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::ECONNRESET
                | libc::EPROTO
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETDOWN
                | libc::ENETUNREACH
                | libc::EPERM
                | libc::ETIMEDOUT
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A listener that returns these results in order, then would block.
    fn scripted(results: Vec<io::Result<u16>>) -> impl FnMut() -> io::Result<(u16, SocketAddr)> {
        let mut results: VecDeque<io::Result<u16>> = results.into();
        move || match results.pop_front() {
            Some(Ok(n)) => Ok((n, addr(n))),
            Some(Err(e)) => Err(e),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    #[test]
    fn errors_about_one_connection_do_not_stop_the_draining() {
        let os = io::Error::from_raw_os_error;
        let mut admitted = Vec::new();
        let mut skipped = 0;
        let end = accept_pass(
            scripted(vec![
                Ok(1),
                Err(os(libc::EPROTO)),
                Ok(2),
                Err(os(libc::ECONNABORTED)),
                Err(os(libc::ENETDOWN)),
                Err(os(libc::EHOSTUNREACH)),
                Err(io::ErrorKind::Interrupted.into()),
                Ok(3),
            ]),
            |n, _| admitted.push(n),
            &mut skipped,
        );
        assert!(matches!(end, PassEnd::Drained), "{end:?}");
        assert_eq!(admitted, [1, 2, 3], "the backlog after the errors was taken");
        assert_eq!(skipped, 4);
    }

    #[test]
    fn out_of_descriptors_ends_the_pass_to_back_off() {
        let mut admitted = Vec::new();
        let end = accept_pass(
            scripted(vec![
                Ok(1),
                Err(io::Error::from_raw_os_error(libc::EMFILE)),
                Ok(2),
            ]),
            |n, _| admitted.push(n),
            &mut 0,
        );
        assert!(matches!(end, PassEnd::OutOfResources(_)), "{end:?}");
        assert_eq!(admitted, [1]);
    }

    #[test]
    fn an_error_that_repeats_for_ever_ends_the_pass_instead_of_spinning() {
        let mut calls = 0;
        let end = accept_pass(
            || -> io::Result<(u16, SocketAddr)> {
                calls += 1;
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            },
            |_, _| {},
            &mut 0,
        );
        assert!(matches!(end, PassEnd::Failing(_)), "{end:?}");
        assert_eq!(calls, MAX_ERRORS_PER_PASS);
    }
}
