//! Running as a systemd service: socket activation and the notify
//! protocol.
//!
//! - **Socket activation** ([`take_listeners`]): when systemd (or
//!   `systemd-socket-activate`) starts the daemon with `LISTEN_FDS`,
//!   `LISTEN_PID` and `LISTEN_FDNAMES`, the listening sockets it opened are
//!   descriptors 3, 4, ... of this process. Serving those instead of
//!   binding our own lets the socket unit own the port (a port below 1024
//!   with no capability at all, no missed connection across a restart) and
//!   lets the service run with no network access of its own
//!   (`PrivateNetwork=yes`): an inherited socket keeps working in any
//!   network namespace.
//! - **Notification** ([`Notifier`]): with `Type=notify`, systemd waits for
//!   `READY=1` before it calls the service started; `STATUS=` is the line
//!   `systemctl status` shows (here the number of clients and the lines and
//!   messages so far, from [`crate::ops::stats`]); `STOPPING=1`
//!   says a stop is under way; and with `WatchdogSec=` systemd restarts the
//!   service unless `WATCHDOG=1` comes at least every `WATCHDOG_USEC`. The
//!   watchdog ping is sent only when the event loop has proved it still
//!   turns (see [`crate::ops::liveness`]), so a hung loop is restarted rather
//!   than covered up by a healthy timer thread.
//!
//! The notify socket ([`NotifySocket`]) is opened once, when the notifier
//! is made, and every notification is sent through it: a watchdog ping
//! must not need a new descriptor, or it would fail exactly when the
//! process is out of them (the `sd-notify` crate opens a socket per
//! notification, so it is not used to send). `NOTIFY_SOCKET` may be a path
//! or `@name` in the abstract namespace, as systemd's own sd_notify(3)
//! takes. `sd-notify` still parses `LISTEN_FDS` and `WATCHDOG_USEC`; this
//! module decides what to say and when. Outside systemd (no
//! `NOTIFY_SOCKET`, no `LISTEN_FDS`) all of it does nothing.

use std::ffi::OsStr;
use std::io;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{self as unix, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use sd_notify::NotifyState;
use socket2::{Domain, Protocol, Socket, Type};

use crate::ops::liveness::Liveness;
use crate::ops::logging::counted;
use crate::ops::stats::Stats;
use crate::Server;

// ---------------------------------------------------------------------------
// Socket activation.

/// A listening socket handed over by the service manager.
#[derive(Debug)]
pub struct InheritedListener {
    /// The socket, checked to be a listening TCP socket.
    pub listener: TcpListener,
    /// The descriptor it came as, for the log.
    pub fd: RawFd,
    /// Its name from `LISTEN_FDNAMES` (`FileDescriptorName=` in the socket
    /// unit; systemd's default is the socket unit's name), or `unknown`.
    pub name: String,
}

/// Why the sockets passed by the service manager cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// Occurs when `LISTEN_PID`, `LISTEN_FDS` or `LISTEN_FDNAMES` cannot be
    /// understood, or a descriptor they promise is not open.
    #[error("cannot take the sockets passed by the service manager (LISTEN_FDS): {0}")]
    Environment(io::Error),
    /// Occurs when a passed descriptor is not a listening TCP socket, say a
    /// datagram socket, a Unix socket, or a connection (`Accept=yes`).
    #[error(
        "the socket {name:?} passed by the service manager (fd {fd}) is not a listening TCP socket: {reason}"
    )]
    NotATcpListener {
        /// The descriptor.
        fd: RawFd,
        /// Its name from `LISTEN_FDNAMES`.
        name: String,
        /// What it is instead.
        reason: String,
    },
    /// Occurs when [`take_listeners`] is called a second time: the
    /// descriptors belong to whoever took them first.
    #[error("the sockets passed by the service manager were taken already")]
    AlreadyTaken,
}

/// What the clients of a socket passed by the service manager speak, from
/// its name (`FileDescriptorName=` in the socket unit): `tls` is the line
/// protocol over TLS, `irc` IRC, `irc-tls` IRC over TLS, `web` the web
/// page and its WebSocket, `web-tls` the same over TLS; any other name
/// (systemd's default is the socket unit's name) the line protocol over
/// plain TCP.
pub fn listener_kind(name: &str) -> crate::net::acceptor::ListenerKind {
    match name {
        "tls" => crate::net::acceptor::ListenerKind::LINE_TLS,
        "irc" => crate::net::acceptor::ListenerKind::IRC,
        "irc-tls" => crate::net::acceptor::ListenerKind::IRC_TLS,
        "web" => crate::net::acceptor::ListenerKind::WEB,
        "web-tls" => crate::net::acceptor::ListenerKind::WEB_TLS,
        _ => crate::net::acceptor::ListenerKind::LINE,
    }
}

/// Set once [`take_listeners`] has claimed the passed descriptors, so that
/// no two owners ever close the same descriptor.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The listening sockets the service manager passed to this process, in
/// order; empty when it passed none (no `LISTEN_FDS`, or `LISTEN_PID` names
/// another process).
///
/// Call it once, first thing in `main`, before anything else in the
/// process opens a descriptor: the passed descriptors are 3, 4, ... and
/// from here on they belong to the returned listeners.
///
/// # Errors
/// [`ActivationError::Environment`] when the variables are malformed or
/// name a closed descriptor; [`ActivationError::NotATcpListener`] when a
/// descriptor is anything but a listening TCP socket (it is closed);
/// [`ActivationError::AlreadyTaken`] on a second call.
pub fn take_listeners() -> Result<Vec<InheritedListener>, ActivationError> {
    let (listeners, handed) = take_passed()?;
    if let Some((_, name)) = handed.first() {
        return Err(ActivationError::NotATcpListener {
            fd: -1,
            name: name.clone(),
            reason: "it is a restart's descriptor, which this caller does not take".to_string(),
        });
    }
    Ok(listeners)
}

/// The names a restart passes its descriptors by through systemd's
/// descriptor store (see [`crate::upgrade::fds`]): these are not checked
/// as listeners but handed to [`crate::upgrade::incoming`].
pub const HANDED_PREFIX: &str = "upgrade-";

/// What [`take_passed`] finds: the listening sockets, and a restart's
/// descriptors with their names.
pub type Passed = (Vec<InheritedListener>, Vec<(OwnedFd, String)>);

/// [`take_listeners`], and apart from them the descriptors a restart
/// stored (their names start with [`HANDED_PREFIX`]), with their names.
///
/// # Errors
/// As for [`take_listeners`].
pub fn take_passed() -> Result<Passed, ActivationError> {
    if TAKEN.swap(true, Ordering::AcqRel) {
        return Err(ActivationError::AlreadyTaken);
    }
    // Checks LISTEN_PID against our pid, and makes each descriptor
    // close-on-exec, which fails unless it is open.
    let passed = sd_notify::listen_fds_with_names().map_err(ActivationError::Environment)?;
    let mut handed = Vec::new();
    let mut sockets = Vec::new();
    for (fd, name) in passed {
        if name.starts_with(HANDED_PREFIX) {
            handed.push((own_passed_fd(fd), name));
        } else {
            sockets.push((fd, name));
        }
    }
    let listeners = sockets
        .into_iter()
        .map(|(fd, name)| {
            let socket = Socket::from(own_passed_fd(fd));
            match check_listening_tcp(&socket) {
                Ok(()) => Ok(InheritedListener {
                    listener: socket.into(),
                    fd,
                    name,
                }),
                Err(reason) => Err(ActivationError::NotATcpListener { fd, name, reason }),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((listeners, handed))
}

/// Takes ownership of a descriptor passed by the service manager.
#[allow(unsafe_code)]
fn own_passed_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` is one of the descriptors the service manager passed to
    // this very process: sd_notify::listen_fds_with_names returned it only
    // because LISTEN_PID is our pid and `fd` lies in the range 3..3+LISTEN_FDS
    // it announced, and it has just made `fd` close-on-exec with fcntl,
    // which fails on a descriptor that is not open. Nothing else in this
    // process owns it: the sockets are taken once (TAKEN), first thing in
    // main, and nothing in this crate touches descriptors it did not open.
    // What the descriptor is has not been trusted yet: the caller checks
    // that it is a listening TCP socket before using it, and closes it
    // otherwise.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Ok when `socket` is a TCP socket (IPv4 or IPv6) that is listening;
/// otherwise what it is instead, for the error message.
fn check_listening_tcp(socket: &Socket) -> Result<(), String> {
    let describe = |e: io::Error| match e.raw_os_error() {
        Some(libc::ENOTSOCK) => "it is not a socket".to_string(),
        _ => format!("cannot inspect it: {e}"),
    };
    let socket_type = socket.r#type().map_err(describe)?;
    if socket_type != Type::STREAM {
        return Err("it is not a stream socket (ListenStream= makes one)".to_string());
    }
    let domain = socket.domain().map_err(describe)?;
    if domain != Domain::IPV4 && domain != Domain::IPV6 {
        return Err("it is not an IPv4 or IPv6 socket".to_string());
    }
    match socket.protocol().map_err(describe)? {
        None | Some(Protocol::TCP) => {}
        Some(_) => return Err("it is a stream socket of another protocol than TCP".to_string()),
    }
    if !socket.is_listener().map_err(describe)? {
        return Err("it is not listening (is Accept=yes set in the socket unit?)".to_string());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The notify protocol.

/// How often the status line is brought up to date (if it changed): the
/// longest `systemctl status` lags behind the real number of clients.
/// Reading two atomics once a second costs nothing.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest watchdog interval used, whatever `WATCHDOG_USEC` says, so
/// a tiny value cannot make the notifier spin.
const MIN_WATCHDOG_INTERVAL: Duration = Duration::from_millis(10);

/// The `STATUS=` line for `clients` connected clients, who have sent
/// `lines` lines and been delivered `messages` messages so far:
/// `systemctl status` shows it as is.
pub fn status_line(
    clients: usize,
    (lines, messages): (u64, u64),
    stopping: bool,
    listening: &[String],
) -> String {
    let clients = format!("{} connected", counted(clients, "client"));
    if stopping {
        return format!("shutting down; {clients}");
    }
    format!(
        "{clients}; {} received, {} delivered; listening on {}",
        counted(lines, "line"),
        counted(messages, "message"),
        listening.join(", ")
    )
}

/// How often to send `WATCHDOG=1` for a watchdog timeout of `timeout`:
/// half of it, as sd_watchdog_enabled(3) advises, so one late ping is not
/// yet fatal.
pub fn watchdog_interval(timeout: Duration) -> Duration {
    (timeout / 2).max(MIN_WATCHDOG_INTERVAL)
}

/// The service manager's notification socket: an unbound datagram socket
/// opened once, and the address each notification is sent to.
#[derive(Debug)]
pub struct NotifySocket {
    socket: UnixDatagram,
    /// Where `NOTIFY_SOCKET` points.
    addr: unix::SocketAddr,
}

impl NotifySocket {
    /// Opens a socket to send notifications to `target`, a value of
    /// `NOTIFY_SOCKET`: an absolute path, or `@name` for the abstract
    /// namespace.
    ///
    /// # Errors
    /// When `target` is neither (`InvalidInput`), names an address that
    /// cannot be (too long, say), or the socket cannot be created.
    pub fn open(target: &OsStr) -> io::Result<NotifySocket> {
        let bytes = target.as_bytes();
        let addr = match bytes.split_first() {
            Some((b'@', name)) => unix::SocketAddr::from_abstract_name(name)?,
            Some((b'/', _)) => unix::SocketAddr::from_pathname(target)?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "it is neither an absolute path nor @name",
                ))
            }
        };
        Ok(NotifySocket {
            socket: UnixDatagram::unbound()?,
            addr,
        })
    }

    /// Sends `states`, one `KEY=VALUE` line each, as one datagram. Opens no
    /// descriptor.
    ///
    /// # Errors
    /// When the datagram cannot be sent whole.
    pub fn send(&self, states: &[NotifyState<'_>]) -> io::Result<()> {
        let message: String = states.iter().map(|state| format!("{state}\n")).collect();
        let sent = self.socket.send_to_addr(message.as_bytes(), &self.addr)?;
        if sent == message.len() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the notification was cut short",
            ))
        }
    }
}

/// Sends notifications, and says so once in the log if they fail.
#[derive(Debug, Clone)]
struct Channel {
    socket: Arc<NotifySocket>,
    /// Set after the first failure was logged as a warning; later ones are
    /// only debug lines, so a missing socket cannot flood the log.
    warned: Arc<AtomicBool>,
}

impl Channel {
    /// A channel to the socket `NOTIFY_SOCKET` names; `None` when it is
    /// not set, or cannot be used (which is logged).
    fn from_env() -> Option<Channel> {
        let target = std::env::var_os("NOTIFY_SOCKET")?;
        match NotifySocket::open(&target) {
            Ok(socket) => Some(Channel {
                socket: Arc::new(socket),
                warned: Arc::default(),
            }),
            Err(e) => {
                log::warn!(
                    "cannot notify the service manager at NOTIFY_SOCKET={}: {}; not notifying it",
                    target.to_string_lossy(),
                    crate::ops::logging::describe(&e)
                );
                None
            }
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if let Err(e) = self.socket.send(states) {
            if self.warned.swap(true, Ordering::Relaxed) {
                log::debug!("cannot notify the service manager: {e}");
            } else {
                log::warn!("cannot notify the service manager (NOTIFY_SOCKET): {e}");
            }
        }
    }
}

/// Tells the service manager that the server is stopping; cheap to clone
/// into a signal handler.
#[derive(Debug, Clone)]
pub struct StoppingNotice {
    /// `None` outside systemd: then there is no one to tell.
    channel: Option<Channel>,
    /// Set once `STOPPING=1` was sent; the status line says so from then on.
    sent: Arc<AtomicBool>,
}

impl StoppingNotice {
    /// Sends `STOPPING=1` (and a status saying so), once however often it
    /// is called. Call it before starting the shutdown, so that systemd
    /// hears it before the process exits.
    pub fn send(&self) {
        if let Some(channel) = &self.channel {
            if !self.sent.swap(true, Ordering::AcqRel) {
                channel.send(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
            }
        }
    }
}

/// Tells the service manager that the server reloads its configuration
/// (its TLS certificate, on SIGHUP), so that `systemctl reload` waits for
/// the reload to finish; cheap to clone into a signal thread.
#[derive(Debug, Clone)]
pub struct ReloadNotice {
    /// `None` outside systemd: then there is no one to tell.
    channel: Option<Channel>,
}

impl ReloadNotice {
    /// Sends `RELOADING=1` with the monotonic clock's reading, as
    /// sd_notify(3) asks, before a reload starts.
    pub fn begin(&self) {
        let Some(channel) = &self.channel else { return };
        match NotifyState::monotonic_usec_now() {
            Ok(now) => channel.send(&[NotifyState::Reloading, now]),
            Err(e) => log::debug!("cannot read the monotonic clock for RELOADING=1: {e}"),
        }
    }

    /// Sends `READY=1` once the reload is over, whether it succeeded or
    /// not: the server serves on either way.
    pub fn end(&self) {
        if let Some(channel) = &self.channel {
            channel.send(&[NotifyState::Ready]);
        }
    }
}

/// The systemd notifier: `READY=1` once the server is bound, then a thread
/// that keeps `STATUS=` current and sends `WATCHDOG=1` while the event loop
/// turns, and `STOPPING=1` at the end. Outside systemd (no
/// `NOTIFY_SOCKET`) it does nothing and starts no thread.
#[derive(Debug)]
pub struct Notifier {
    stopping: StoppingNotice,
    /// The thread and the sender whose drop ends it; `None` outside systemd.
    thread: Option<(Sender<()>, JoinHandle<()>)>,
}

impl Notifier {
    /// A notifier for this process: it will speak to systemd if
    /// `NOTIFY_SOCKET` is set, through a socket opened now, once. It says
    /// nothing until [`Notifier::ready`].
    pub fn from_env() -> Notifier {
        Notifier {
            stopping: StoppingNotice {
                channel: Channel::from_env(),
                sent: Arc::new(AtomicBool::new(false)),
            },
            thread: None,
        }
    }

    /// Tells the service manager that `server`, bound and about to run, is
    /// ready, and starts the thread that keeps it informed. Call it after
    /// binding and installing the signal handlers, just before
    /// [`Server::run`]; call it once.
    pub fn ready(&mut self, server: &Server) {
        let Some(channel) = self.stopping.channel.clone() else { return };
        if self.thread.is_some() {
            return;
        }
        let listening = server.listening();
        let status = status_line(0, (0, 0), false, &listening);
        // The listeners are bound and listening: a client connecting now
        // waits in the backlog for the event loop, which starts at once.
        channel.send(&[NotifyState::Ready, NotifyState::Status(&status)]);
        let watchdog = sd_notify::watchdog_enabled();
        if let Some(timeout) = watchdog {
            log::info!(
                "systemd watchdog: {} ms timeout, a ping every {} ms while the event loop runs",
                timeout.as_millis(),
                watchdog_interval(timeout).as_millis()
            );
        }
        let watch = Watch {
            channel,
            stats: server.stats(),
            liveness: server.liveness(),
            stopping: Arc::clone(&self.stopping.sent),
            listening,
            last_status: status,
            watchdog: watchdog.map(watchdog_interval),
        };
        let (stop, stopped) = crossbeam_channel::bounded(0);
        let thread = thread::Builder::new()
            .name("systemd-notify".into())
            .spawn(move || watch.run(&stopped));
        match thread {
            Ok(thread) => self.thread = Some((stop, thread)),
            Err(e) => log::warn!(
                "cannot start the systemd notifier thread: {e}; no status updates or watchdog pings"
            ),
        }
    }

    /// What a signal thread calls around a reload.
    pub fn reload_notice(&self) -> ReloadNotice {
        ReloadNotice {
            channel: self.stopping.channel.clone(),
        }
    }

    /// What a signal handler calls to send `STOPPING=1`.
    pub fn stopping_notice(&self) -> StoppingNotice {
        self.stopping.clone()
    }

    /// Ends the notifier once the server has stopped: sends `STOPPING=1` if
    /// no one did yet (the server can stop on its own, when its hub dies),
    /// and joins the thread.
    pub fn stop(self) {
        self.stopping.send();
        if let Some((stop, thread)) = self.thread {
            drop(stop);
            if thread.join().is_err() {
                log::error!("the systemd notifier thread panicked");
            }
        }
    }
}

/// What the notifier thread owns.
struct Watch {
    channel: Channel,
    stats: Arc<Stats>,
    liveness: Liveness,
    /// Set once `STOPPING=1` was sent.
    stopping: Arc<AtomicBool>,
    /// The listening addresses, for the status line.
    listening: Vec<String>,
    /// The status line last sent, so an unchanged one is not sent again.
    last_status: String,
    /// How often to ping the watchdog; `None` when it is off.
    watchdog: Option<Duration>,
}

impl Watch {
    /// Runs until `stopped` disconnects (or receives anything).
    fn run(mut self, stopped: &Receiver<()>) {
        let start = Instant::now();
        let mut next_status = start + STATUS_INTERVAL;
        let mut next_ping = self.watchdog.map(|interval| start + interval);
        loop {
            let wake_at = next_ping.map_or(next_status, |at| at.min(next_status));
            match stopped.recv_deadline(wake_at) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            if now >= next_status {
                self.update_status();
                next_status = now + STATUS_INTERVAL;
            }
            if let (Some(at), Some(interval)) = (next_ping, self.watchdog) {
                if now >= at {
                    self.ping_watchdog();
                    next_ping = Some(now + interval);
                }
            }
        }
    }

    fn update_status(&mut self) {
        let status = status_line(
            self.stats.clients(),
            (self.stats.lines_received(), self.stats.messages_delivered()),
            self.stopping.load(Ordering::Acquire),
            &self.listening,
        );
        if status != self.last_status {
            self.channel.send(&[NotifyState::Status(&status)]);
            self.last_status = status;
        }
    }

    /// Pings the watchdog if the event loop turned since the last ping.
    fn ping_watchdog(&mut self) {
        if self.liveness.check() {
            self.channel.send(&[NotifyState::Watchdog]);
        } else {
            log::warn!("the event loop has not turned since the last watchdog ping; not pinging");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::os::unix::net::UnixListener;

    #[test]
    fn the_status_line_counts_clients_and_names_the_addresses() {
        let addrs = ["127.0.0.1:7878".to_string(), "[::1]:7879 (TLS)".to_string()];
        assert_eq!(
            status_line(0, (0, 0), false, &addrs),
            "0 clients connected; 0 lines received, 0 messages delivered; \
             listening on 127.0.0.1:7878, [::1]:7879 (TLS)"
        );
        assert_eq!(
            status_line(1, (3, 6), false, &addrs[..1]),
            "1 client connected; 3 lines received, 6 messages delivered; listening on 127.0.0.1:7878"
        );
        assert_eq!(
            status_line(2, (3, 6), true, &addrs),
            "shutting down; 2 clients connected"
        );
        assert_eq!(
            status_line(1, (1, 1), false, &addrs[..1]),
            "1 client connected; 1 line received, 1 message delivered; listening on 127.0.0.1:7878"
        );
    }

    #[test]
    fn the_watchdog_is_pinged_at_half_its_timeout() {
        assert_eq!(
            watchdog_interval(Duration::from_secs(30)),
            Duration::from_secs(15)
        );
        assert_eq!(watchdog_interval(Duration::from_micros(1)), MIN_WATCHDOG_INTERVAL);
    }

    /// A datagram socket playing the service manager, bound to `addr`.
    fn manager(addr: &unix::SocketAddr) -> UnixDatagram {
        let socket = UnixDatagram::bind_addr(addr).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        socket
    }

    fn received(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn notifications_reach_a_socket_in_the_abstract_namespace() {
        let name = format!("chat-server-notify-test-{}", std::process::id());
        let listening = manager(&unix::SocketAddr::from_abstract_name(name.as_bytes()).unwrap());
        let notify = NotifySocket::open(OsStr::new(&format!("@{name}"))).unwrap();
        notify
            .send(&[NotifyState::Ready, NotifyState::Status("1 client connected")])
            .unwrap();
        assert_eq!(received(&listening), "READY=1\nSTATUS=1 client connected\n");
        // The same socket serves every later notification.
        notify.send(&[NotifyState::Watchdog]).unwrap();
        assert_eq!(received(&listening), "WATCHDOG=1\n");
    }

    #[test]
    fn notifications_reach_a_socket_at_a_path() {
        let path = std::env::temp_dir().join(format!("chat-server-notify-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listening = manager(&unix::SocketAddr::from_pathname(&path).unwrap());
        let notify = NotifySocket::open(path.as_os_str()).unwrap();
        notify.send(&[NotifyState::Stopping]).unwrap();
        let got = received(&listening);
        let _ = std::fs::remove_file(&path);
        assert_eq!(got, "STOPPING=1\n");
    }

    #[test]
    fn a_notify_socket_that_is_neither_a_path_nor_at_name_is_refused() {
        for target in ["", "relative/notify", "vsock:2:1234"] {
            let error = NotifySocket::open(OsStr::new(target)).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{target:?}");
        }
        let too_long = format!("/{}", "x".repeat(200));
        assert!(NotifySocket::open(OsStr::new(&too_long)).is_err());
    }

    #[test]
    fn only_a_listening_tcp_socket_passes_the_check() {
        let listening = Socket::from(OwnedFd::from(TcpListener::bind("127.0.0.1:0").unwrap()));
        assert_eq!(check_listening_tcp(&listening), Ok(()));
        let listening_v6 = Socket::new(Domain::IPV6, Type::STREAM, None).unwrap();
        listening_v6
            .bind(&"[::1]:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        listening_v6.listen(1).unwrap();
        assert_eq!(check_listening_tcp(&listening_v6), Ok(()));

        let bound_only = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        bound_only
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        assert!(check_listening_tcp(&bound_only)
            .unwrap_err()
            .contains("not listening"));

        let udp = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        assert!(check_listening_tcp(&udp)
            .unwrap_err()
            .contains("not a stream socket"));

        let dir = std::env::temp_dir().join(format!("chat-server-systemd-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let unix = Socket::from(OwnedFd::from(UnixListener::bind(&dir).unwrap()));
        let _ = std::fs::remove_file(&dir);
        assert!(check_listening_tcp(&unix)
            .unwrap_err()
            .contains("not an IPv4 or IPv6"));

        let file = Socket::from(OwnedFd::from(std::fs::File::open("/dev/null").unwrap()));
        assert_eq!(check_listening_tcp(&file), Err("it is not a socket".to_string()));
    }
}
