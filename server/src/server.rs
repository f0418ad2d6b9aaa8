//! Starting and stopping the whole server: the acceptor, the hub and the
//! I/O threads, and the channels between them.
//!
//! ```text
//!              Adopt                 Inbound
//!  acceptor ─────────▶ I/O thread 0 ─────────▶ hub
//!     ▲    ─────────▶ I/O thread 1 ─────────▶  │
//!     │   Released ◀──      ▲  ▲   Outbound    │
//!     └────────────────     │  └───────────────┘ (split by thread)
//! ```
//!
//! [`Server::bind`] binds the configured addresses; [`Server::from_listeners`]
//! takes sockets that are already bound (by a test, or inherited from a
//! service manager), and [`Server::bind_with`] does both at once, so every
//! way of starting shares one path. [`Server::run`] blocks until a
//! [`ShutdownHandle`] says stop; meanwhile [`Server::stats`] and
//! [`Server::liveness`] let other threads watch it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;

use mio::{Poll, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use crate::chat::hub::{self, Hub, Outlet};
use crate::config::Config;
use crate::net::acceptor::{self, Acceptor, Admission, Inlet};
use crate::net::event_loop::{self, Channels, EventLoop};
pub use crate::net::shutdown::ShutdownHandle;
use crate::ops::liveness::{Heartbeat, Liveness};
use crate::ops::metrics::{MetricsEndpoint, MetricsError, StatsLog};
use crate::ops::stats::Stats;

/// How many connections the kernel may hold waiting for accept. Bursts of
/// reconnecting clients (after a restart, say) should not be refused.
const LISTEN_BACKLOG: i32 = 1024;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Occurs when an address cannot be bound or listened on.
    #[error("cannot listen on {addr}: {}", crate::ops::logging::describe(.source))]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        source: io::Error,
    },
    /// Occurs when the event loop cannot be set up.
    #[error("cannot set up the event loop: {}", crate::ops::logging::describe(.0))]
    EventLoop(io::Error),
    /// Occurs when there is no address to listen on and no socket was
    /// handed over: the server could never serve anyone.
    #[error("nothing to listen on: give an address with --listen")]
    NothingToListenOn,
    /// Occurs when the metrics endpoint (`--metrics-listen`) cannot be set
    /// up.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// One event loop's poll, with its waker registered, and its heartbeat.
#[derive(Debug)]
struct LoopParts {
    poll: Poll,
    waker: Arc<Waker>,
    heartbeat: Heartbeat,
}

impl LoopParts {
    fn new(waker_token: mio::Token) -> io::Result<LoopParts> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), waker_token)?);
        Ok(LoopParts {
            poll,
            waker,
            heartbeat: Heartbeat::default(),
        })
    }
}

/// A server with its sockets bound, ready to run.
#[derive(Debug)]
pub struct Server {
    config: Config,
    /// The acceptor's loop.
    acceptor: LoopParts,
    /// One loop per I/O thread.
    shards: Vec<LoopParts>,
    listeners: Vec<mio::net::TcpListener>,
    shutdown: ShutdownHandle,
    /// Counters the event loop keeps, for watchers on other threads.
    stats: Arc<Stats>,
    /// The metrics endpoint, bound, if `--metrics-listen` was given.
    metrics: Option<MetricsEndpoint>,
}

impl Server {
    /// Binds every address in `config.listen`.
    ///
    /// # Errors
    /// [`StartError::Listen`] naming the first address that cannot be bound.
    pub fn bind(config: Config) -> Result<Server, StartError> {
        Server::bind_with(Vec::new(), config)
    }

    /// Binds every address in `config.listen` and serves those sockets
    /// along with `listeners`, which are listening already (handed over by
    /// a service manager, say).
    ///
    /// # Errors
    /// [`StartError::Listen`] naming the first address that cannot be
    /// bound; [`StartError::NothingToListenOn`] when there is neither an
    /// address nor a socket.
    pub fn bind_with(
        mut listeners: Vec<std::net::TcpListener>,
        config: Config,
    ) -> Result<Server, StartError> {
        for &addr in &config.listen {
            let listener = bind_listener(addr).map_err(|source| StartError::Listen { addr, source })?;
            listeners.push(listener);
        }
        Server::from_listeners(listeners, config)
    }

    /// A server on listening sockets bound elsewhere; `config.listen` is
    /// not used.
    ///
    /// # Errors
    /// [`StartError::EventLoop`] when the poll or a socket cannot be set up;
    /// [`StartError::NothingToListenOn`] when `listeners` is empty.
    pub fn from_listeners(
        listeners: Vec<std::net::TcpListener>,
        config: Config,
    ) -> Result<Server, StartError> {
        if listeners.is_empty() {
            return Err(StartError::NothingToListenOn);
        }
        let acceptor = LoopParts::new(acceptor::WAKER).map_err(StartError::EventLoop)?;
        let shards = (0..config.io_threads())
            .map(|_| LoopParts::new(event_loop::WAKER))
            .collect::<io::Result<Vec<_>>>()
            .map_err(StartError::EventLoop)?;
        let listeners = listeners
            .into_iter()
            .map(|l| {
                l.set_nonblocking(true)?;
                Ok(mio::net::TcpListener::from_std(l))
            })
            .collect::<io::Result<Vec<_>>>()
            .map_err(StartError::EventLoop)?;
        let shutdown = ShutdownHandle::new(
            std::iter::once(&acceptor)
                .chain(&shards)
                .map(|parts| Arc::clone(&parts.waker)),
        );
        let metrics = config.metrics_listen.map(MetricsEndpoint::bind).transpose()?;
        Ok(Server {
            config,
            acceptor,
            shards,
            listeners,
            shutdown,
            stats: Arc::default(),
            metrics,
        })
    }

    /// The addresses the server listens on, with any port 0 resolved.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Where the metrics endpoint listens (port resolved), if it is on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsEndpoint::local_addr)
    }

    /// A handle that stops the server from another thread.
    pub fn handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// The server's live counters (clients connected, loop turns), which
    /// the event loop keeps up to date once it runs.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// How many I/O threads it runs (see [`Config::io_threads`]).
    pub fn io_threads(&self) -> usize {
        self.shards.len()
    }

    /// A watcher that tells from another thread whether every event loop
    /// (the acceptor's and each I/O thread's) still turns, for a watchdog.
    pub fn liveness(&self) -> Liveness {
        Liveness::new(
            std::iter::once(&self.acceptor)
                .chain(&self.shards)
                .map(|parts| (Arc::clone(&parts.waker), parts.heartbeat.clone())),
        )
    }

    /// Serves clients until shut down through a [`ShutdownHandle`], then
    /// returns once every client has been told and closed (or the grace
    /// period is over).
    ///
    /// # Errors
    /// When the event loop fails or the hub thread cannot start.
    pub fn run(self) -> io::Result<()> {
        for addr in self.local_addrs() {
            log::info!("listening on {addr}");
        }
        let endpoint = match self.metrics {
            Some(endpoint) => Some(
                endpoint
                    .serve(Arc::clone(&self.stats))
                    .map_err(|e| io::Error::other(e.to_string()))?,
            ),
            None => None,
        };
        let stats_log = self
            .config
            .stats_interval
            .and_then(|interval| StatsLog::start(Arc::clone(&self.stats), interval));
        let (to_hub, hub_inbound) = crossbeam_channel::unbounded();
        let (released_tx, released_rx) = crossbeam_channel::unbounded();
        let mut outlets = Vec::new();
        let mut inlets = Vec::new();
        let mut io_threads = Vec::new();
        for (shard, parts) in self.shards.into_iter().enumerate() {
            let (hub_out, from_hub) = crossbeam_channel::unbounded();
            let (adopt_tx, adopt) = crossbeam_channel::unbounded();
            outlets.push(Outlet {
                sender: hub_out,
                waker: Arc::clone(&parts.waker),
            });
            inlets.push(Inlet {
                sender: adopt_tx,
                waker: Arc::clone(&parts.waker),
            });
            let channels = Channels {
                to_hub: to_hub.clone(),
                from_hub,
                adopt,
                released: released_tx.clone(),
            };
            let event_loop = EventLoop::new(
                shard,
                parts.poll,
                self.config.clone(),
                channels,
                self.shutdown.clone(),
                Arc::clone(&self.stats),
                parts.heartbeat,
            );
            let spawned = thread::Builder::new()
                .name(format!("io-{shard}"))
                .spawn(move || event_loop.run());
            match spawned {
                Ok(thread) => io_threads.push(thread),
                Err(e) => {
                    // Those already running finish at once: nothing will
                    // come their way.
                    self.shutdown.shutdown();
                    return Err(e);
                }
            }
        }
        let hub_stats = Arc::clone(&self.stats);
        let quiet_above = self.config.quiet_above;
        let spawned = thread::Builder::new().name("hub".into()).spawn(move || {
            let hub = Hub::with_quiet_above(quiet_above);
            hub::run(hub, hub_inbound, &outlets, &released_tx, &hub_stats);
        });
        let hub_thread = match spawned {
            Ok(thread) => thread,
            Err(e) => {
                self.shutdown.shutdown();
                return Err(e);
            }
        };
        log::info!("serving with {} I/O threads", inlets.len());
        let acceptor = Acceptor::new(
            self.acceptor.poll,
            self.listeners,
            inlets,
            released_rx,
            to_hub,
            Admission {
                max_clients: self.config.max_clients,
                max_per_ip: self.config.max_per_ip,
            },
            self.shutdown.clone(),
            Arc::clone(&self.stats),
            self.acceptor.heartbeat,
        );
        // The acceptor runs on this thread. Its end (or its failure to
        // start) lets the I/O threads finish; theirs lets the hub finish.
        let mut result = match acceptor {
            Ok(acceptor) => acceptor.run(),
            Err(e) => {
                self.shutdown.shutdown();
                Err(e)
            }
        };
        for thread in io_threads {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    log::error!("an I/O thread failed: {e}");
                    result = result.and(Err(e));
                }
                Err(_) => log::error!("an I/O thread panicked"),
            }
        }
        if hub_thread.join().is_err() {
            log::error!("the hub thread panicked");
        }
        log::info!("stopped");
        if let Some(endpoint) = endpoint {
            endpoint.stop();
        }
        if let Some(stats_log) = stats_log {
            stats_log.stop();
        }
        result
    }
}

/// A listening socket on `addr`. An IPv6 socket takes only IPv6, so that
/// `[::]:7878` and `0.0.0.0:7878` can both be given.
fn bind_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Restart at once after a stop, without waiting out TIME_WAIT.
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_needs_something_to_listen_on() {
        let error = Server::bind(Config {
            listen: Vec::new(),
            ..Config::default()
        })
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "nothing to listen on: give an address with --listen"
        );
    }

    #[test]
    fn bind_with_serves_the_given_sockets_and_the_configured_addresses() {
        let given = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let given_addr = given.local_addr().unwrap();
        let server = Server::bind_with(
            vec![given],
            Config {
                listen: vec!["127.0.0.1:0".parse().unwrap()],
                ..Config::default()
            },
        )
        .unwrap();
        let addrs = server.local_addrs();
        assert_eq!(addrs.len(), 2, "{addrs:?}");
        assert_eq!(addrs[0], given_addr, "the given socket comes first");
        assert_ne!(addrs[1], given_addr);
    }

    #[test]
    fn a_busy_port_is_a_clear_start_error() {
        let first = Server::bind(Config {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            ..Config::default()
        })
        .unwrap();
        let addr = first.local_addrs()[0];
        let error = Server::bind(Config {
            listen: vec![addr],
            ..Config::default()
        })
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cannot listen on {addr}: address already in use")
        );
    }
}
