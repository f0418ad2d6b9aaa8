//! The metrics endpoint's socket side: one thread running one mio event
//! loop over the listening socket and at most [`MAX_CONNECTIONS`] scrapes.
//!
//! Why it looks like this: the endpoint must never be able to hurt the
//! chat, whoever connects to it and whatever they send. So everything it
//! can hold is bounded and known in advance:
//! - one thread, whatever the number of connections (no thread per
//!   connection to exhaust);
//! - at most [`MAX_CONNECTIONS`] connections open; past that a new one is
//!   accepted and closed at once, so the kernel's backlog never fills and
//!   the descriptors held never pass [`MAX_DESCRIPTORS`], which the
//!   daemon's descriptor budget reserves when the endpoint is on
//!   ([`crate::ops::descriptors::reserved`]);
//! - per connection, one request head of at most
//!   [`http::MAX_HEAD`](super::http::MAX_HEAD) bytes read within
//!   [`REQUEST_TIMEOUT`] of the accept, no body ever (see [`super::http`]),
//!   and one response written within [`RESPONSE_TIMEOUT`]; past a deadline
//!   the connection is closed;
//! - when the process is out of descriptors, accepting pauses for
//!   [`ACCEPT_BACKOFF`] rather than spinning, with one warning per
//!   [`WARNING_INTERVAL`]; no error on a socket ends the loop or panics.
//!
//! Nothing here touches the chat's loops: the figures come from the
//! relaxed atomics of [`Stats`], read when a scrape is answered.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use prometheus_client::registry::Registry;
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};

use super::http::{Method, Request, RequestError, RequestReader, Response, Status, Step, METRICS_PATH};
use super::{registry, render, to_classic_text, CLASSIC_CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE};
use crate::ops::logging::describe;
use crate::ops::stats::Stats;

/// The most metrics connections open at once. A Prometheus server scrapes
/// a target over one connection at a time, so even a pair of them, a
/// second monitoring system and someone with curl use four or fewer; 16
/// leaves room for all of that while bounding what an attacker can make
/// the daemon hold (descriptors, buffers of [`super::http::MAX_HEAD`]
/// bytes and one exposition each).
pub const MAX_CONNECTIONS: usize = 16;

/// The most descriptors the endpoint holds at once: its listener, its
/// poll and its waker, [`MAX_CONNECTIONS`] connections, one more accepted
/// past the bound for the moment before it is closed, and one file of
/// `/proc/self` open while an exposition is written.
pub const MAX_DESCRIPTORS: u64 = 3 + MAX_CONNECTIONS as u64 + 1 + 1;

/// How long after the accept a connection has to send a complete request
/// head. A scraper sends it at once; 5 s covers a slow network many times
/// over, and is how long an idle connection holds one of the
/// [`MAX_CONNECTIONS`] places.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the response may take to write (and the client to close after
/// it), from when it is ready. An exposition is tens of KiB, which a
/// reading client takes in one round trip; one that does not read loses
/// its place after this.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// After the response, the most bytes read and thrown away while waiting
/// for the client to close. Closing a socket with unread bytes makes the
/// kernel send a reset, which can destroy the response in flight; reading
/// a few KiB first lets a client that sent a little more than a head (a
/// small body we refused, say) get its answer, while one that keeps
/// sending is closed after this much.
const DRAIN_LIMIT: usize = 8 * 1024;

/// How long to stop accepting after an accept error that is not about one
/// connection (out of descriptors or socket memory, or anything
/// unexpected): accepting again at once would fail again and, the
/// listener still readable, spin the thread.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// At most one warning of each kind (cannot accept; full) per this long,
/// so an attack cannot flood the log.
pub const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// The most connections accepted in one turn of the loop before the
/// connections already open are served again; the rest wait for the next
/// turn, which comes at once.
const ACCEPT_BATCH: usize = 64;

/// The listening socket's backlog. Connections are taken off it at once
/// (and closed at once past the bound), so it only has to absorb a burst
/// between two turns of the loop.
const LISTEN_BACKLOG: i32 = 128;

/// How many readiness events one poll returns at most: the connections,
/// the listener and the waker all fit.
const EVENTS_CAPACITY: usize = MAX_CONNECTIONS + 2;

/// The listener's token; connections use their slab key (below
/// [`MAX_CONNECTIONS`]).
const LISTENER: Token = Token(usize::MAX - 1);

/// The waker's token: [`RunningEndpoint::stop`] wakes the loop with it.
const WAKER: Token = Token(usize::MAX);

/// The short answer to a connection past [`MAX_CONNECTIONS`], written
/// before it is closed (the client may or may not get to read it).
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 40\r\nConnection: close\r\n\r\ntoo many metrics connections; try again\n";

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Occurs when the metrics address cannot be bound.
    #[error("cannot serve metrics on {addr}: {}", describe(.source))]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        source: io::Error,
    },
    /// Occurs when the endpoint's event loop or its thread cannot be set
    /// up.
    #[error("cannot start the metrics endpoint on {addr}: {reason}")]
    Start {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
}

/// The metrics endpoint, bound and not yet serving.
pub struct MetricsEndpoint {
    poll: Poll,
    listener: TcpListener,
    /// Registered with `poll`; [`RunningEndpoint::stop`] uses it.
    waker: Arc<Waker>,
    /// The address bound, port resolved.
    addr: SocketAddr,
}

impl fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsEndpoint")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MetricsEndpoint {
    /// Binds `addr` for the endpoint and sets up its event loop.
    ///
    /// # Errors
    /// [`MetricsError::Listen`] when the address cannot be bound;
    /// [`MetricsError::Start`] when the event loop cannot be set up.
    pub fn bind(addr: SocketAddr) -> Result<MetricsEndpoint, MetricsError> {
        let listen_error = |source| MetricsError::Listen { addr, source };
        let listener = bind_listener(addr).map_err(listen_error)?;
        let bound = listener.local_addr().map_err(listen_error)?;
        let mut listener = TcpListener::from_std(listener);
        let start_error = |e: io::Error| MetricsError::Start {
            addr,
            reason: format!("cannot set up its event loop: {}", describe(&e)),
        };
        let poll = Poll::new().map_err(start_error)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(start_error)?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(start_error)?;
        Ok(MetricsEndpoint {
            poll,
            listener,
            waker: Arc::new(waker),
            addr: bound,
        })
    }

    /// The address it listens on, port resolved.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `stats` on a thread of its own until [`RunningEndpoint::stop`].
    ///
    /// # Errors
    /// [`MetricsError::Start`] when the thread cannot be started.
    pub fn serve(self, stats: Arc<Stats>) -> Result<RunningEndpoint, MetricsError> {
        let stop = Arc::new(AtomicBool::new(false));
        let event_loop = EventLoop {
            poll: self.poll,
            listener: self.listener,
            metrics: registry(stats),
            connections: Slab::with_capacity(MAX_CONNECTIONS),
            stop: Arc::clone(&stop),
            // Connections may have queued since the bind.
            accept_pending: true,
            paused_until: None,
            last_accept_warning: None,
            last_full_warning: None,
        };
        let thread = thread::Builder::new()
            .name("metrics".into())
            .spawn(move || event_loop.run())
            .map_err(|e| MetricsError::Start {
                addr: self.addr,
                reason: format!("cannot start its thread: {}", describe(&e)),
            })?;
        log::info!("serving metrics on http://{}{METRICS_PATH}", self.addr);
        Ok(RunningEndpoint {
            stop,
            waker: self.waker,
            thread,
        })
    }
}

/// The metrics endpoint, serving.
pub struct RunningEndpoint {
    /// Set to ask the loop to end.
    stop: Arc<AtomicBool>,
    /// Wakes the loop so that it sees `stop`.
    waker: Arc<Waker>,
    thread: JoinHandle<()>,
}

impl fmt::Debug for RunningEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningEndpoint").finish_non_exhaustive()
    }
}

impl RunningEndpoint {
    /// Stops serving, closing every metrics connection, and waits for the
    /// thread.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        if let Err(e) = self.waker.wake() {
            // Without a wake the loop may wait for ever: leave it to end
            // with the process rather than hang the shutdown.
            log::error!("cannot wake the metrics thread to stop it: {e}");
            return;
        }
        if self.thread.join().is_err() {
            log::error!("the metrics thread panicked");
        }
    }
}

/// A listening socket on `addr`, non-blocking. An IPv6 socket takes only
/// IPv6, as the chat's listeners do.
fn bind_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Restart at once after a stop, without waiting out TIME_WAIT.
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Everything the endpoint's thread owns.
struct EventLoop {
    poll: Poll,
    listener: TcpListener,
    /// The exposition's source.
    metrics: Registry,
    /// The open connections, keyed by their token; never more than
    /// [`MAX_CONNECTIONS`].
    connections: Slab<Connection>,
    /// Set by [`RunningEndpoint::stop`].
    stop: Arc<AtomicBool>,
    /// True while the listener may have connections waiting: polling is
    /// edge-triggered, so a backlog not drained to `WouldBlock` (a batch
    /// used up, a pause) is not reported again.
    accept_pending: bool,
    /// Set while accepting is paused after an error: when to try again.
    paused_until: Option<Instant>,
    /// When "cannot accept" was last logged as a warning.
    last_accept_warning: Option<Instant>,
    /// When "too many connections" was last logged as a warning.
    last_full_warning: Option<Instant>,
}

impl EventLoop {
    /// Serves until [`RunningEndpoint::stop`] (or until polling itself
    /// fails, which is logged: the chat goes on without metrics).
    fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            let timeout = self.timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("the metrics endpoint stops: cannot poll: {e}");
                return;
            }
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    LISTENER => self.accept_pending = true,
                    Token(key) => self.advance(key),
                }
            }
            let now = Instant::now();
            self.accept(now);
            self.expire(now);
        }
    }

    /// How long the next poll may wait: until the earliest deadline, the
    /// end of an accept pause, or not at all while connections wait to be
    /// accepted.
    fn timeout(&self, now: Instant) -> Option<Duration> {
        let accept_at = if self.accept_pending {
            Some(self.paused_until.unwrap_or(now))
        } else {
            None
        };
        self.connections
            .iter()
            .map(|(_, connection)| connection.deadline)
            .chain(accept_at)
            .min()
            .map(|at| at.saturating_duration_since(now))
    }

    /// Takes connections off the listener, at most [`ACCEPT_BATCH`] in a
    /// turn, unless accepting is paused.
    fn accept(&mut self, now: Instant) {
        if !self.accept_pending || self.paused_until.is_some_and(|at| now < at) {
            return;
        }
        self.paused_until = None;
        for _ in 0..ACCEPT_BATCH {
            match self.listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_pending = false;
                    return;
                }
                // That connection failed, not the listener: go on.
                Err(e) if e.kind() == io::ErrorKind::Interrupted || is_connection_error(&e) => {}
                Err(e) => return self.pause(&e, now),
            }
        }
    }

    /// Stops accepting for [`ACCEPT_BACKOFF`]; open connections are served
    /// meanwhile.
    fn pause(&mut self, error: &io::Error, now: Instant) {
        if self
            .last_accept_warning
            .is_none_or(|at| now >= at + WARNING_INTERVAL)
        {
            log::warn!(
                "the metrics endpoint cannot accept connections: {}; retrying every {} ms",
                describe(error),
                ACCEPT_BACKOFF.as_millis()
            );
            self.last_accept_warning = Some(now);
        }
        self.paused_until = Some(now + ACCEPT_BACKOFF);
    }

    /// Takes on a new connection, or closes it at once when
    /// [`MAX_CONNECTIONS`] are open.
    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr, now: Instant) {
        if self.connections.len() >= MAX_CONNECTIONS {
            if self
                .last_full_warning
                .is_none_or(|at| now >= at + WARNING_INTERVAL)
            {
                log::warn!(
                    "the metrics endpoint has {MAX_CONNECTIONS} connections open; closing new ones at once"
                );
                self.last_full_warning = Some(now);
            }
            // A fresh socket's send buffer is empty: this goes through at
            // once, or the peer is gone. Either way it is closed now.
            let _ = stream.write(BUSY);
            return;
        }
        let entry = self.connections.vacant_entry();
        let token = Token(entry.key());
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE)
        {
            log::debug!("metrics: cannot register the connection from {peer}: {e}");
            return;
        }
        entry.insert(Connection {
            stream,
            token,
            peer,
            deadline: now + REQUEST_TIMEOUT,
            phase: Phase::Reading(RequestReader::default()),
            writable: false,
        });
    }

    /// Moves the connection `key` on as far as its socket allows; closes
    /// it when it is done.
    fn advance(&mut self, key: usize) {
        let Some(connection) = self.connections.get_mut(key) else { return };
        if connection.advance(self.poll.registry(), &self.metrics) == Progress::Done {
            self.close(key);
        }
    }

    /// Closes the connections whose deadline has passed.
    fn expire(&mut self, now: Instant) {
        let registry = self.poll.registry();
        self.connections.retain(|_, connection| {
            if connection.deadline > now {
                return true;
            }
            log::debug!(
                "metrics: closing the connection from {}: {}",
                connection.peer,
                match connection.phase {
                    Phase::Reading(_) => "no complete request in time",
                    Phase::Writing { .. } => "the response was not taken in time",
                    Phase::Draining { .. } => "it did not close after the response",
                }
            );
            let _ = registry.deregister(&mut connection.stream);
            false
        });
    }

    /// Deregisters and closes the connection `key`.
    fn close(&mut self, key: usize) {
        if let Some(mut connection) = self.connections.try_remove(key) {
            let _ = self.poll.registry().deregister(&mut connection.stream);
        }
    }
}

/// True for accept errors that are about the one connection being
/// accepted, not about the listener or the process: accept(2) on Linux
/// reports the network errors of a connection that failed while queued
/// (and `ECONNABORTED` for one reset there, `EPERM` for one a firewall
/// refused), and says to treat them like `EAGAIN` and go on.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EPROTO
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
                | libc::EPERM
        )
    )
}

/// One metrics connection.
struct Connection {
    stream: TcpStream,
    /// Its token (its key in the slab), for re-registering.
    token: Token,
    /// Who it is, for debug lines.
    peer: SocketAddr,
    /// When it is closed whatever its phase.
    deadline: Instant,
    phase: Phase,
    /// True while registered for WRITABLE (only while a response waits
    /// for room in the socket); READABLE otherwise.
    writable: bool,
}

/// Where a connection is in its one exchange.
enum Phase {
    /// Reading the request head.
    Reading(RequestReader),
    /// Writing the response.
    Writing {
        /// The whole response.
        bytes: Vec<u8>,
        /// How much of it is written.
        written: usize,
    },
    /// Response written and our side shut: reading (and throwing away) at
    /// most [`DRAIN_LIMIT`] bytes until the client closes.
    Draining {
        /// Bytes thrown away so far.
        discarded: usize,
    },
}

/// Whether a connection is still open after [`Connection::advance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Waiting for its socket.
    Open,
    /// Finished, or failed: to be closed.
    Done,
}

impl Connection {
    /// Reads, answers, writes and drains as far as the socket allows.
    fn advance(&mut self, poll: &mio::Registry, metrics: &Registry) -> Progress {
        // Each turn either returns or moves to a later phase: at most
        // three turns.
        loop {
            let next = match &mut self.phase {
                Phase::Reading(reader) => match reader.read_from(&mut self.stream) {
                    Ok(Step::Pending) => return Progress::Open,
                    Ok(Step::Closed) => return Progress::Done,
                    Ok(Step::Request(request)) => answer(&request, metrics),
                    Ok(Step::Rejected(error)) => reject(error, self.peer),
                    Err(e) => return self.failed("read", &e),
                },
                Phase::Writing { bytes, written } => match write_out(&mut self.stream, bytes, written) {
                    Ok(true) => {
                        // FIN after the response: the client reads to the
                        // end and closes.
                        let _ = self.stream.shutdown(Shutdown::Write);
                        self.phase = Phase::Draining { discarded: 0 };
                        if let Err(e) = self.set_writable(poll, false) {
                            return self.failed("re-register", &e);
                        }
                        continue;
                    }
                    Ok(false) => {
                        return match self.set_writable(poll, true) {
                            Ok(()) => Progress::Open,
                            Err(e) => self.failed("re-register", &e),
                        }
                    }
                    Err(e) => return self.failed("write", &e),
                },
                Phase::Draining { discarded } => return drain(&mut self.stream, discarded),
            };
            self.phase = Phase::Writing {
                bytes: next.to_bytes(),
                written: 0,
            };
            self.deadline = Instant::now() + RESPONSE_TIMEOUT;
        }
    }

    /// Registers for WRITABLE (`true`) or READABLE, if that changes.
    fn set_writable(&mut self, poll: &mio::Registry, writable: bool) -> io::Result<()> {
        if self.writable != writable {
            let interest = if writable {
                Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            poll.reregister(&mut self.stream, self.token, interest)?;
            self.writable = writable;
        }
        Ok(())
    }

    /// Logs (at debug level: a scraper going away is no news) why the
    /// connection ends.
    fn failed(&self, what: &str, error: &io::Error) -> Progress {
        log::debug!(
            "metrics: cannot {what} the connection from {}: {error}",
            self.peer
        );
        Progress::Done
    }
}

/// The response to a valid request.
fn answer(request: &Request, metrics: &Registry) -> Response {
    let mut response = match (request.method, request.is_metrics_path) {
        (Method::Other, _) => Response::error(
            Status::MethodNotAllowed,
            "only GET and HEAD are served; metrics are at GET /metrics",
        ),
        (_, false) => Response::error(Status::NotFound, "not found; metrics are at /metrics"),
        (_, true) => match render(metrics) {
            Ok(text) if request.wants_openmetrics => Response {
                status: Status::Ok,
                content_type: OPENMETRICS_CONTENT_TYPE,
                body: text,
                with_body: true,
            },
            Ok(text) => Response {
                status: Status::Ok,
                content_type: CLASSIC_CONTENT_TYPE,
                body: to_classic_text(&text),
                with_body: true,
            },
            Err(e) => {
                log::error!("cannot encode the metrics: {e}");
                Response::error(Status::InternalServerError, "cannot encode the metrics")
            }
        },
    };
    response.with_body = request.method != Method::Head;
    response
}

/// The response to a refused request head.
fn reject(error: RequestError, peer: SocketAddr) -> Response {
    log::debug!("metrics: refused a request from {peer}: {error}");
    Response::error(error.status(), &error.to_string())
}

/// Writes `bytes[*written..]` until done (`Ok(true)`) or the socket is
/// full (`Ok(false)`).
fn write_out(stream: &mut TcpStream, bytes: &[u8], written: &mut usize) -> io::Result<bool> {
    loop {
        let Some(rest) = bytes.get(*written..).filter(|rest| !rest.is_empty()) else {
            return Ok(true);
        };
        match stream.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *written = written.saturating_add(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads and throws away what the client still sends, until it closes
/// ([`Progress::Done`]), has nothing more for now ([`Progress::Open`]), or
/// has sent [`DRAIN_LIMIT`] bytes.
fn drain(stream: &mut TcpStream, discarded: &mut usize) -> Progress {
    let mut scratch = [0u8; 1024];
    // Each turn reads at least one byte or returns: bounded by the limit.
    while *discarded < DRAIN_LIMIT {
        match stream.read(&mut scratch) {
            Ok(0) => return Progress::Done,
            Ok(n) => *discarded = discarded.saturating_add(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Open,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Progress::Done,
        }
    }
    Progress::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, is_metrics_path: bool, wants_openmetrics: bool) -> Request {
        Request {
            method,
            is_metrics_path,
            wants_openmetrics,
        }
    }

    #[test]
    fn get_metrics_is_answered_in_the_format_asked_for_and_head_without_a_body() {
        let metrics = registry(Arc::default());
        let classic = answer(&request(Method::Get, true, false), &metrics);
        assert_eq!(classic.status, Status::Ok);
        assert_eq!(classic.content_type, CLASSIC_CONTENT_TYPE);
        assert!(
            classic.body.contains("# TYPE chat_clients gauge\n"),
            "{}",
            classic.body
        );
        assert!(classic.with_body);
        let open = answer(&request(Method::Get, true, true), &metrics);
        assert_eq!(open.content_type, OPENMETRICS_CONTENT_TYPE);
        assert!(open.body.ends_with("# EOF\n"));
        let head = answer(&request(Method::Head, true, false), &metrics);
        assert_eq!(head.status, Status::Ok);
        assert!(!head.with_body);
        assert!(!String::from_utf8(head.to_bytes())
            .unwrap()
            .contains("chat_clients"));
    }

    #[test]
    fn other_paths_are_not_found_and_other_methods_not_allowed() {
        let metrics = registry(Arc::default());
        assert_eq!(
            answer(&request(Method::Get, false, false), &metrics).status,
            Status::NotFound
        );
        assert_eq!(
            answer(&request(Method::Other, true, false), &metrics).status,
            Status::MethodNotAllowed
        );
        assert_eq!(
            answer(&request(Method::Other, false, false), &metrics).status,
            Status::MethodNotAllowed
        );
    }

    #[test]
    fn the_busy_answer_says_its_body_length_right() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
            "{text}"
        );
    }
}
