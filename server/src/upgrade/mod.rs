//! Restarting without dropping anyone: handing every client's socket and
//! the chat state to the next process.
//!
//! A handover goes in three steps:
//!
//! 1. **Quiesce** ([`crate::net::ShutdownHandle::hand_over`]): the acceptor
//!    stops accepting (the listening sockets stay open: connections wait
//!    in their backlog); each I/O thread stops reading, closes what cannot
//!    be carried (TLS, a WebSocket mid-frame, a connection still in its
//!    TLS handshake or HTTP request: see
//!    `crate::net::connection::carry`), and tells the hub it has read its
//!    last. The hub, once every thread has, exports its state
//!    ([`crate::chat::hub::HubState`]) and tells each thread so, after
//!    everything it had to say; each thread then hands over its
//!    connections: socket, front end state, unread input, unwritten
//!    output. [`crate::Server::run_to_end`] returns all of it as a
//!    [`Handed`].
//! 2. **Pass** ([`fds`]): the state is written into a memory file
//!    ([`state`] says its format), and it and every socket go to the next
//!    process: into systemd's file descriptor store when the unit has one
//!    (`FileDescriptorStoreMax=`; on SIGTERM), or over the control socket
//!    to `chat-server --take-over` (by hand).
//! 3. **Restore** ([`incoming`]): the next process reads the state, matches
//!    each socket to its entry, and serves them with its own options; the
//!    hub tells everyone `-- server restarted (version X); you are still
//!    connected`. A state it cannot read (another format) is not half
//!    used: each client is told its session could not be kept and closed,
//!    and the process starts clean ([`fallback`]).
//!
//! What it must never do: lose a line. Nothing is read once quiescing
//! begins, so what clients send meanwhile waits in their sockets for the
//! next process; what was read is handed over as bytes and decoded there.

pub mod fallback;
pub mod fds;
pub mod incoming;
pub mod state;

use std::net::TcpListener;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::chat::hub::HubState;
use crate::net::acceptor::ListenerKind;
use state::{ConnState, ListenerState, State};

/// The version that runs, as `--version` says it and as restored users
/// are told.
pub const VERSION: &str = env!("CHAT_BUILD_VERSION");

/// One I/O thread's connections on a handover: the thread, and each
/// connection's state with its socket.
pub type CarriedConns = (usize, Vec<(ConnState, OwnedFd)>);

/// Everything a server hands over at the end of its run.
#[derive(Debug)]
pub struct Handed {
    /// The state, with an entry for each socket below.
    pub state: State,
    /// The listening sockets, in the order of `state.listeners`.
    pub listeners: Vec<OwnedFd>,
    /// The connections, in the order of `state.connections`.
    pub conns: Vec<OwnedFd>,
    /// The `chat-server --take-over` that asked for the handover over the
    /// control socket, if one did; `None` when the handover is for
    /// systemd's store (SIGTERM).
    pub requester: Option<std::os::unix::net::UnixStream>,
}

impl Handed {
    /// Every socket with the name it is passed by ([`fds`]), the state's
    /// memory file first.
    pub fn named<'a>(&'a self, state: &'a OwnedFd) -> Vec<(BorrowedFd<'a>, String)> {
        let listeners = self
            .listeners
            .iter()
            .zip(&self.state.listeners)
            .map(|(fd, listener)| {
                let kind = ListenerKind {
                    protocol: listener.protocol,
                    tls: listener.tls,
                };
                (fd.as_fd(), fds::listener_name(kind))
            });
        let conns = self
            .conns
            .iter()
            .map(|fd| (fd.as_fd(), fds::CONN_NAME.to_string()));
        std::iter::once((state.as_fd(), fds::STATE_NAME.to_string()))
            .chain(listeners)
            .chain(conns)
            .collect()
    }

    /// The sockets to serve again in this process, when passing them on
    /// failed: the listeners with their kinds, and what to restore.
    pub fn take_back(self) -> (Vec<(TcpListener, ListenerKind)>, Restored) {
        let listeners = self
            .listeners
            .into_iter()
            .zip(self.state.listeners)
            .map(|(fd, ListenerState { protocol, tls, .. })| {
                (TcpListener::from(fd), ListenerKind { protocol, tls })
            })
            .collect();
        let conns = self
            .state
            .connections
            .into_iter()
            .zip(self.conns)
            .map(|(state, fd)| (state, std::net::TcpStream::from(fd)))
            .collect();
        (
            listeners,
            Restored {
                hub: self.state.hub,
                conns,
                // Nothing changed for them: this process serves them on.
                announce: false,
            },
        )
    }
}

/// What a server takes back from the previous process before it runs (see
/// [`crate::Server::restore`]).
#[derive(Debug)]
pub struct Restored {
    /// The chat.
    pub hub: HubState,
    /// Each connection with its socket.
    pub conns: Vec<(ConnState, std::net::TcpStream)>,
    /// Tell everyone the server restarted (a new process took over); not
    /// when a process serves again what it failed to pass on.
    pub announce: bool,
}

/// How a server's run ended.
#[derive(Debug)]
pub enum RunEnd {
    /// It stopped: every client was told and closed.
    Stopped,
    /// It handed everything over (see the module's doc).
    HandedOver(Box<Handed>),
}

/// How long a process that handed everything over waits for the next to
/// say it has taken over (`ready`) before it serves again itself: the
/// next process only reads the state and registers the sockets first.
pub const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What the next process says, on the control socket's connection, once
/// it has taken everything over.
const READY: &[u8] = b"ready\n";

/// Why a handover could not be passed on; the process then serves again.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// Occurs when the state cannot be written.
    #[error("cannot write the state: {0}")]
    State(std::io::Error),
    /// Occurs when `chat-server --take-over` goes away or fails before it
    /// says it has taken over.
    #[error("the new process did not take over: {0}")]
    NotTaken(std::io::Error),
    /// Occurs when systemd's store has no room for every descriptor.
    #[error(
        "the service manager's descriptor store holds {max} (FileDescriptorStoreMax=), {needed} are needed"
    )]
    StoreTooSmall {
        /// What `$FDSTORE` says.
        max: usize,
        /// Sockets and the state.
        needed: usize,
    },
    /// Occurs when the store cannot be reached.
    #[error("cannot put the descriptors in the service manager's store: {0}")]
    Store(std::io::Error),
}

/// Whether SIGTERM should hand the connections to systemd's descriptor
/// store: the unit has one (systemd 254 and later set `$FDSTORE` to
/// `FileDescriptorStoreMax=`) and the notify socket to reach it.
pub fn store_available() -> bool {
    let max = std::env::var("FDSTORE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    max.is_some_and(|max| max > 0) && std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Passes what a server handed over to the next process: to the
/// `chat-server --take-over` that asked for it (then waits, at most
/// [`READY_TIMEOUT`], for it to say it has taken over), or else into
/// systemd's store. On failure everything comes back, to serve again.
///
/// # Errors
/// A [`PassError`] with the handover, untouched but for the state file.
pub fn pass_on(handed: Handed) -> Result<(), (PassError, Box<Handed>)> {
    let (memfd, size) = match fds::write_state(&handed.state) {
        Ok(written) => written,
        Err(e) => return Err((PassError::State(e), Box::new(handed))),
    };
    let result = match &handed.requester {
        Some(stream) => hand_to_requester(stream, &handed.named(&memfd)),
        None => hand_to_store(&handed.named(&memfd)),
    };
    match result {
        Ok(()) => {
            log::info!(
                "handed over {} and {} (state: {size} bytes)",
                crate::ops::logging::counted(handed.conns.len(), "connection"),
                crate::ops::logging::counted(handed.listeners.len(), "listening socket")
            );
            Ok(())
        }
        Err(e) => Err((e, Box::new(handed))),
    }
}

fn hand_to_requester(
    stream: &std::os::unix::net::UnixStream,
    named: &[(BorrowedFd<'_>, String)],
) -> Result<(), PassError> {
    use std::io::Read;
    fds::send_named(stream, named).map_err(PassError::NotTaken)?;
    stream
        .set_read_timeout(Some(READY_TIMEOUT))
        .map_err(PassError::NotTaken)?;
    let mut said = Vec::new();
    stream
        .take(READY.len() as u64)
        .read_to_end(&mut said)
        .map_err(PassError::NotTaken)?;
    if said == READY {
        Ok(())
    } else {
        Err(PassError::NotTaken(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "it closed the connection before saying it was ready",
        )))
    }
}

fn hand_to_store(named: &[(BorrowedFd<'_>, String)]) -> Result<(), PassError> {
    let max = std::env::var("FDSTORE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if named.len() > max {
        return Err(PassError::StoreTooSmall {
            max,
            needed: named.len(),
        });
    }
    fds::push_to_store(named).map_err(PassError::Store)
}

/// Why `chat-server --take-over` could not take over.
#[derive(Debug, thiserror::Error)]
pub enum TakeOverError {
    /// Occurs when the control socket cannot be reached.
    #[error("cannot reach the running server at {path}: {source}")]
    Connect {
        /// The control socket.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Occurs when it does not hand over.
    #[error(transparent)]
    Receive(#[from] fds::ReceiveError),
}

/// Asks the server whose control socket is `path` to hand everything
/// over, and receives it: the connection (to say [`say_ready`] on) and
/// every descriptor with its name.
///
/// # Errors
/// A [`TakeOverError`] when the server cannot be reached or does not hand
/// over; it then goes on serving.
pub fn take_over(
    path: &std::path::Path,
) -> Result<(std::os::unix::net::UnixStream, Vec<(OwnedFd, String)>), TakeOverError> {
    use std::io::Write;
    let connect = |source| TakeOverError::Connect {
        path: path.to_path_buf(),
        source,
    };
    let stream = std::os::unix::net::UnixStream::connect(path).map_err(connect)?;
    // The running server answers once its loops have stopped, within
    // moments; a server that does not is not waited for for ever.
    stream.set_read_timeout(Some(READY_TIMEOUT)).map_err(connect)?;
    (&stream)
        .write_all(b"{\"command\":\"handover\"}\n")
        .map_err(connect)?;
    let fds = fds::receive_named(&stream)?;
    Ok((stream, fds))
}

/// Tells the server that handed over that this process has taken over:
/// it exits.
///
/// # Errors
/// When it is gone (it gave up waiting, and serves again: then this
/// process must not serve the same clients).
pub fn say_ready(stream: &std::os::unix::net::UnixStream) -> std::io::Result<()> {
    use std::io::Write;
    let mut writer = stream;
    writer.write_all(READY)
}

/// Leaves out of `config` the addresses `listeners` already serve (handed
/// over by the previous process), so that they are not bound twice.
pub fn drop_served_addresses(config: &mut crate::Config, listeners: &[(TcpListener, ListenerKind)]) {
    let served: Vec<std::net::SocketAddr> = listeners
        .iter()
        .filter_map(|(listener, _)| listener.local_addr().ok())
        .collect();
    for list in [
        &mut config.listen,
        &mut config.tls_listen,
        &mut config.irc_listen,
        &mut config.irc_tls_listen,
        &mut config.web_listen,
        &mut config.web_tls_listen,
        &mut config.test_listen,
    ] {
        list.retain(|addr| !served.contains(addr));
    }
}
