//! Starting and stopping the whole server: the acceptor, the hub and the
//! I/O threads, and the channels between them.
//!
//! ```text
//!              Adopt                 Inbound
//!  acceptor ─────────▶ I/O thread 0 ─────────▶ hub
//!     ▲    ─────────▶ I/O thread 1 ─────────▶  │
//!     │   Released ◀──      ▲  ▲   Outbound    │
//!     └────────────────     │  └───────────────┘ (one channel per thread)
//! ```
//!
//! Every channel is bounded, by a capacity or by what feeds it:
//! - `Inbound` holds [`HUB_INBOUND_CAPACITY`] messages. When it is full an
//!   I/O thread stops reading lines from its sockets (their clients' TCP
//!   windows fill and they slow down) and keeps what it cannot hold back
//!   (a connection came or went) in order until the hub has room; it
//!   never waits.
//! - each `Outbound` holds [`HUB_OUTBOUND_CAPACITY`] messages. When one is
//!   full the hub wakes that I/O thread and waits for it, which is short:
//!   an I/O thread never waits on anything and takes a bounded number of
//!   messages every turn. Meanwhile the hub reads no input, and the I/O
//!   threads stop reading sockets, as above.
//! - `Adopt` and `Released` carry one message per connection coming or
//!   going, so they hold at most `--max-clients` (plus the few admitted to
//!   make room) messages.
//!
//! Every thread is supervised: if one panics, the panic is logged, the
//! server shuts down, and [`Server::run`] returns an error, so the daemon
//! exits non-zero and its service manager restarts it (a dead I/O thread
//! would otherwise leave a daemon that accepts connections and serves
//! none).
//!
//! [`Server::bind`] binds the configured addresses; [`Server::from_listeners`]
//! takes sockets that are already bound (by a test, or inherited from a
//! service manager), and [`Server::bind_with`] does both at once, so every
//! way of starting shares one path. [`Server::run`] blocks until a
//! [`ShutdownHandle`] says stop; meanwhile [`Server::stats`] and
//! [`Server::liveness`] let other threads watch it.
//!
//! A restart that keeps every client ([`crate::upgrade`]) goes through
//! here too: [`Server::restore`] takes what the previous process handed
//! over before the run starts (the I/O threads and the hub begin with it),
//! and [`Server::run_to_end`] returns what this one hands over when its
//! stop is a handover ([`ShutdownHandle::hand_over`]).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Receiver, Sender};
use mio::{Poll, Waker};
use socket2::{Domain, Protocol as IpProtocol, Socket, Type};

use crate::chat::hub::{self, Hub, Outlet, Settings, Wiring};
use crate::config::{Config, TestFault};
use crate::frontend::web::origin::OriginPolicy;
use crate::frontend::{Context, Protocol};
use crate::net::acceptor::ListenerKind;
use crate::net::acceptor::{self, Acceptor, Inlet};
use crate::net::admission::OldestSilent;
use crate::net::event_loop::{self, Channels, EventLoop};
pub use crate::net::shutdown::ShutdownHandle;
use crate::net::tls::{Loaded, Reloader, TlsError};
use crate::ops::control::bans::ServerBans;
use crate::ops::control::ControlServer;
use crate::ops::liveness::{Heartbeat, Liveness, Wake};
use crate::ops::logging::counted;
use crate::ops::metrics::{MetricsEndpoint, MetricsError, StatsLog};
use crate::ops::stats::Stats;
use crate::upgrade::state::{Header, ListenerState, State};
use crate::upgrade::{Handed, Restored, RunEnd};

/// How many connections the kernel may hold waiting for accept. Bursts of
/// reconnecting clients (after a restart, say) should not be refused.
const LISTEN_BACKLOG: i32 = 1024;

/// Messages the hub's inbound queue holds. The hub handles a message in a
/// microsecond or so, so a full queue is a few milliseconds of work: long
/// enough to take bursts from every I/O thread, short enough that what is
/// read is handled at once, and that a shutdown behind it comes at once.
pub const HUB_INBOUND_CAPACITY: usize = 4096;

/// Messages each I/O thread's queue from the hub holds: a few turns of the
/// I/O thread's work (it takes up to 512 a turn).
pub const HUB_OUTBOUND_CAPACITY: usize = 4096;

/// The least time the server waits at start for the cluster to link (see
/// [`Server::run`]): ten `--cluster-timeout`s, but at least this.
const CLUSTER_READY_MIN: std::time::Duration = std::time::Duration::from_secs(5);

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
    /// Occurs when the TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Occurs when the server bans kept in the state directory cannot be
    /// read.
    #[error(transparent)]
    Bans(#[from] crate::ops::control::bans::BansError),
    /// Occurs when the control socket cannot be opened.
    #[error(transparent)]
    Control(#[from] crate::ops::control::ControlError),
    /// Occurs when `--cluster` is given and Redis cannot be used at start
    /// (without `--cluster-optional`).
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// Occurs when there are TLS listeners but no certificate and key.
    #[error("TLS listeners need a certificate and a key (--tls-cert and --tls-key, or the systemd credentials tls-cert and tls-key)")]
    TlsWithoutCertificate,
}

/// The channel that takes a reloaded TLS configuration to one I/O thread.
type TlsUpdates = (
    Sender<Arc<rustls::ServerConfig>>,
    Receiver<Arc<rustls::ServerConfig>>,
);

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
    /// The hub's turn count, and the channel that pokes it awake.
    hub_heartbeat: Heartbeat,
    hub_poke: (Sender<()>, Receiver<()>),
    /// The listening sockets, each with what its clients speak.
    listeners: Vec<(mio::net::TcpListener, ListenerKind)>,
    shutdown: ShutdownHandle,
    /// Counters the event loop keeps, for watchers on other threads.
    stats: Arc<Stats>,
    /// The metrics endpoint, bound, if `--metrics-listen` was given.
    metrics: Option<MetricsEndpoint>,
    /// The TLS configuration loaded at start, if the server serves TLS.
    tls: Option<Loaded>,
    /// One channel per I/O thread for the configurations a reload makes.
    tls_updates: Vec<TlsUpdates>,
    /// The server bans, read from the state directory at start.
    bans: ServerBans,
    /// In a cluster: the guest numbers reserved at start, if Redis
    /// answered (see [`crate::cluster::probe`]).
    cluster_guests: Option<(u64, u64)>,
    /// What the previous process handed over, to serve from the start
    /// (see [`Server::restore`]).
    restored: Option<Restored>,
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
        listeners: Vec<(std::net::TcpListener, ListenerKind)>,
        config: Config,
    ) -> Result<Server, StartError> {
        let mut listeners = listeners;
        let addrs = config
            .listen
            .iter()
            .map(|&addr| (addr, ListenerKind::LINE))
            .chain(
                config
                    .tls_listen
                    .iter()
                    .map(|&addr| (addr, ListenerKind::LINE_TLS)),
            )
            .chain(config.irc_listen.iter().map(|&addr| (addr, ListenerKind::IRC)))
            .chain(
                config
                    .irc_tls_listen
                    .iter()
                    .map(|&addr| (addr, ListenerKind::IRC_TLS)),
            )
            .chain(config.web_listen.iter().map(|&addr| (addr, ListenerKind::WEB)))
            .chain(
                config
                    .web_tls_listen
                    .iter()
                    .map(|&addr| (addr, ListenerKind::WEB_TLS)),
            )
            .chain(config.test_listen.iter().map(|&addr| {
                (
                    addr,
                    ListenerKind {
                        protocol: Protocol::Test,
                        tls: false,
                    },
                )
            }));
        for (addr, kind) in addrs {
            let listener = bind_listener(addr).map_err(|source| StartError::Listen { addr, source })?;
            listeners.push((listener, kind));
        }
        Server::assemble(listeners, config)
    }

    /// A server on listening sockets bound elsewhere, whose clients speak
    /// the line protocol over plain TCP; `config.listen` is not used.
    ///
    /// # Errors
    /// [`StartError::EventLoop`] when the poll or a socket cannot be set up;
    /// [`StartError::NothingToListenOn`] when `listeners` is empty.
    pub fn from_listeners(
        listeners: Vec<std::net::TcpListener>,
        config: Config,
    ) -> Result<Server, StartError> {
        Server::assemble(
            listeners.into_iter().map(|l| (l, ListenerKind::LINE)).collect(),
            config,
        )
    }

    fn assemble(
        listeners: Vec<(std::net::TcpListener, ListenerKind)>,
        config: Config,
    ) -> Result<Server, StartError> {
        if listeners.is_empty() {
            return Err(StartError::NothingToListenOn);
        }
        let serves_tls = listeners.iter().any(|(_, kind)| kind.tls);
        let tls = match &config.tls {
            Some(files) if serves_tls => Some(files.load()?),
            Some(files) => {
                log::warn!(
                    "a TLS certificate ({}) but no TLS listener (--tls-listen, or a socket passed \
                     by the name \"tls\"): not serving TLS",
                    files.cert.display()
                );
                None
            }
            None if serves_tls => return Err(StartError::TlsWithoutCertificate),
            None => None,
        };
        let acceptor = LoopParts::new(acceptor::WAKER).map_err(StartError::EventLoop)?;
        let shards = (0..config.io_threads())
            .map(|_| LoopParts::new(event_loop::WAKER))
            .collect::<io::Result<Vec<_>>>()
            .map_err(StartError::EventLoop)?;
        let listeners = listeners
            .into_iter()
            .map(|(l, kind)| {
                l.set_nonblocking(true)?;
                Ok((mio::net::TcpListener::from_std(l), kind))
            })
            .collect::<io::Result<Vec<_>>>()
            .map_err(StartError::EventLoop)?;
        let shutdown = ShutdownHandle::new(
            std::iter::once(&acceptor)
                .chain(&shards)
                .map(|parts| Arc::clone(&parts.waker)),
        );
        let metrics = config.metrics_listen.map(MetricsEndpoint::bind).transpose()?;
        // Bounded by what operators do: one certificate per reload.
        let tls_updates = shards.iter().map(|_| crossbeam_channel::unbounded()).collect();
        let bans = ServerBans::load(config.state_dir.as_deref())?;
        let cluster_guests = match &config.cluster {
            None => None,
            Some(cluster) => match crate::cluster::probe(cluster) {
                Ok(guests) => {
                    log::info!("cluster: Redis at {} answers", cluster.url);
                    Some(guests)
                }
                Err(e) if cluster.optional => {
                    log::warn!("{e}; starting alone (--cluster-optional) and retrying");
                    None
                }
                Err(e) => return Err(e.into()),
            },
        };
        if !bans.list(hub::system_clock()).is_empty() {
            log::info!(
                "{} in force",
                counted(bans.list(hub::system_clock()).len(), "server ban")
            );
        }
        Ok(Server {
            config,
            acceptor,
            shards,
            hub_heartbeat: Heartbeat::default(),
            hub_poke: crossbeam_channel::bounded(1),
            listeners,
            shutdown,
            stats: Arc::default(),
            metrics,
            tls,
            tls_updates,
            bans,
            cluster_guests,
            restored: None,
        })
    }

    /// Takes on the chat and the connections a previous process handed
    /// over (see [`crate::upgrade`]): they are served from the start of
    /// [`Server::run`], with this server's options, and told the server
    /// restarted.
    pub fn restore(&mut self, restored: Restored) {
        self.restored = Some(restored);
    }

    /// What reloads the TLS certificate and key of a running server (on
    /// SIGHUP, say), if it serves TLS.
    pub fn tls_reloader(&self) -> Option<Reloader> {
        let files = self.config.tls.clone()?;
        self.tls.as_ref()?;
        let threads = self
            .tls_updates
            .iter()
            .zip(&self.shards)
            .map(|((sender, _), parts)| (sender.clone(), Arc::clone(&parts.waker)))
            .collect();
        Some(Reloader::new(files, threads))
    }

    /// The addresses the server listens on for the line protocol, with any
    /// port 0 resolved.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.protocol_addrs(Protocol::Line)
    }

    /// The addresses the server listens on for `protocol`.
    pub fn protocol_addrs(&self, protocol: Protocol) -> Vec<SocketAddr> {
        self.listener_addrs(ListenerKind { protocol, tls: false })
    }

    /// The addresses the server listens on for `kind`.
    pub fn listener_addrs(&self, kind: ListenerKind) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|(_, k)| *k == kind)
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// Every address the server listens on, of every kind.
    pub fn all_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// Every address the server listens on, each followed by what it
    /// serves when that is not the plain line protocol ("127.0.0.1:7879
    /// (TLS)"), for the log and systemd's status line.
    pub fn listening(&self) -> Vec<String> {
        self.listeners
            .iter()
            .filter_map(|(listener, kind)| {
                let addr = listener.local_addr().ok()?;
                Some(match kind.label() {
                    Some(label) => format!("{addr} ({label})"),
                    None => addr.to_string(),
                })
            })
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

    /// A watcher that tells from another thread whether every loop (the
    /// acceptor's, each I/O thread's, and the hub's) still turns, for a
    /// watchdog.
    pub fn liveness(&self) -> Liveness {
        let loops = std::iter::once(&self.acceptor)
            .chain(&self.shards)
            .map(|parts| (Wake::Waker(Arc::clone(&parts.waker)), parts.heartbeat.clone()));
        let hub = (Wake::Poke(self.hub_poke.0.clone()), self.hub_heartbeat.clone());
        Liveness::new(loops.chain(std::iter::once(hub)))
    }

    /// Serves clients until shut down through a [`ShutdownHandle`], then
    /// returns once every client has been told and closed (or the grace
    /// period is over). A handover ([`ShutdownHandle::hand_over`]) ends it
    /// too, and closes the sockets handed over: see [`Server::run_to_end`]
    /// to pass them on.
    ///
    /// # Errors
    /// When the event loop fails, a thread cannot start, or a thread
    /// panicked (which also shuts the server down at once).
    pub fn run(self) -> io::Result<()> {
        self.run_to_end().map(|_| ())
    }

    /// [`Server::run`], returning what was handed over if the run ended in
    /// a handover ([`ShutdownHandle::hand_over`]): the state and every
    /// socket, still open, for the next process.
    ///
    /// # Errors
    /// As for [`Server::run`]; and when a handover could not gather the
    /// whole state (a thread failed), whose sockets are then closed.
    pub fn run_to_end(mut self) -> io::Result<RunEnd> {
        let listening = self.listening();
        for line in &listening {
            log::info!("listening on {line}");
        }
        let tls_reloader = self.tls_reloader();
        if let (Some(files), Some(tls)) = (&self.config.tls, &self.tls) {
            log::info!(
                "TLS certificate {} (SHA-256 {})",
                files.cert.display(),
                tls.fingerprint
            );
        }
        let supervisor = Supervisor::new(self.shutdown.clone());
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
        // A handover passes the listening sockets on: the acceptor hands
        // them back here instead of closing them.
        let (listeners_tx, listeners_rx) = crossbeam_channel::bounded(1);
        // Unbounded, yet it holds at most one message per I/O thread: each
        // sends its connections once, when it hands over (and nothing a
        // client does adds to it).
        let (handover_tx, handover_rx) = crossbeam_channel::unbounded();
        let (hub_state_tx, hub_state_rx) = crossbeam_channel::bounded(1);
        let (requester_tx, requester_rx) = crossbeam_channel::bounded(1);
        let restored = self.restored.take();
        let shard_count = self.shards.len().max(1);
        let (restored_hub, mut restored_conns) = match restored {
            Some(Restored { hub, conns, announce }) => {
                let mut by_shard: Vec<Vec<_>> = (0..shard_count).map(|_| Vec::new()).collect();
                for (i, conn) in conns.into_iter().enumerate() {
                    if let Some(list) = by_shard.get_mut(i % shard_count) {
                        list.push(conn);
                    }
                }
                (Some((hub, announce)), by_shard)
            }
            None => (None, Vec::new()),
        };
        let mut id_map = std::collections::HashMap::new();
        let mut restored_places = Vec::new();
        let mut next_serial = 0u64;
        let (to_hub, hub_inbound) = crossbeam_channel::bounded(HUB_INBOUND_CAPACITY);
        // Bounded by the connections: one message per connection that goes.
        let (released_tx, released_rx) = crossbeam_channel::unbounded();
        let mut outlets = Vec::new();
        let mut inlets = Vec::new();
        let mut io_threads = Vec::new();
        let epoch = std::time::Instant::now();
        let mut tls_updates = self.tls_updates.into_iter().map(|(_, receiver)| receiver);
        let server_name: Arc<str> = Arc::from(self.config.server_name.as_str());
        let context = Context {
            network: Arc::clone(&server_name),
            server_name,
            created: Arc::from(chat_protocol::history::format_time(
                crate::chat::hub::system_clock(),
            )),
            motd: self.config.motd.clone().map(Arc::from),
            clock: crate::chat::hub::system_clock,
            origins: OriginPolicy::new(self.config.web.allow_origins.clone(), &self.config.server_name),
        };
        for (shard, parts) in self.shards.into_iter().enumerate() {
            let tls_updates = tls_updates.next().unwrap_or_else(crossbeam_channel::never);
            let (hub_out, from_hub) = crossbeam_channel::bounded(HUB_OUTBOUND_CAPACITY);
            // Bounded by the connections: one message per connection that
            // comes.
            let (adopt_tx, adopt) = crossbeam_channel::unbounded();
            let wants_room = Arc::new(AtomicBool::new(false));
            let oldest_silent = OldestSilent::new(epoch);
            outlets.push(Outlet {
                sender: hub_out,
                waker: Arc::clone(&parts.waker),
                wants_room: Arc::clone(&wants_room),
            });
            inlets.push(Inlet {
                sender: adopt_tx,
                waker: Arc::clone(&parts.waker),
                oldest_silent: oldest_silent.clone(),
            });
            let channels = Channels {
                to_hub: to_hub.clone(),
                wants_room,
                from_hub,
                adopt,
                released: released_tx.clone(),
                oldest_silent,
                tls: self.tls.as_ref().map(|loaded| Arc::clone(&loaded.config)),
                tls_updates,
                context: context.clone(),
                handover: handover_tx.clone(),
            };
            let mut event_loop = EventLoop::new(
                shard,
                parts.poll,
                self.config.clone(),
                channels,
                self.shutdown.clone(),
                Arc::clone(&self.stats),
                parts.heartbeat,
            );
            if let Some(conns) = restored_conns.get_mut(shard) {
                let conns = std::mem::take(conns);
                let olds: Vec<_> = conns
                    .iter()
                    .map(|(state, _)| (state.id, state.peer.ip()))
                    .collect();
                let news = event_loop.restore(conns, &mut next_serial);
                for ((old, ip), new) in olds.into_iter().zip(news) {
                    if let Some(new) = new {
                        id_map.insert(old, new);
                        restored_places.push((shard, ip));
                    }
                }
            }
            match supervisor.spawn(format!("io-{shard}"), move || event_loop.run()) {
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
        let settings = Settings {
            quiet_above: self.config.quiet_above,
            history_lines: self.config.history,
            replay_lines: self.config.replay.min(self.config.history),
            history_bytes: self.config.history_bytes,
            clock: hub::system_clock,
            io_threads: outlets.len(),
        };
        let mut hub = match restored_hub {
            Some((state, announce)) => {
                log::info!(
                    "restart: took over {} and {}",
                    counted(id_map.len(), "connection"),
                    counted(state.rooms.len(), "room")
                );
                let version = announce.then_some(crate::upgrade::VERSION);
                Hub::restore(settings, state, &id_map, version)
            }
            None => Hub::new(settings),
        };
        hub.hand_over_to(self.shutdown.clone(), hub_state_tx);
        if let Some(TestFault::Hub(text)) = &self.config.test_fault {
            hub.panic_on(text.clone());
        }
        // The cluster's threads, bridged to the hub by bounded channels
        // (see [`crate::cluster::link`] for what bounds them).
        let (cluster_threads, cluster_events, cluster_ready) = match &self.config.cluster {
            None => (None, None, None),
            Some(settings) => {
                let instance = crate::cluster::instance_id();
                log::info!("cluster: instance {instance}, Redis at {}", settings.url);
                let (commands_tx, commands_rx) =
                    crossbeam_channel::bounded(crate::cluster::link::COMMAND_CAPACITY);
                let (events_tx, events_rx) = crossbeam_channel::bounded(crate::cluster::link::EVENT_CAPACITY);
                // Wait for the link only if Redis answered at start.
                let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
                let ready = self.cluster_guests.is_some().then_some(ready_rx);
                hub.attach_cluster(hub::ClusterLink::new(
                    instance.clone(),
                    commands_tx,
                    self.cluster_guests,
                    Some(ready_tx),
                ));
                let threads = crate::cluster::start(
                    settings.clone(),
                    instance,
                    self.config.history,
                    commands_rx,
                    events_tx,
                );
                match threads {
                    Ok(threads) => (
                        Some(threads),
                        Some(events_rx),
                        ready.map(|r| (r, settings.timeout)),
                    ),
                    Err(e) => {
                        self.shutdown.shutdown();
                        return Err(e);
                    }
                }
            }
        };
        let wiring = Wiring {
            inbound: hub_inbound,
            outlets,
            released: released_tx,
            poke: self.hub_poke.1,
            heartbeat: self.hub_heartbeat,
            cluster: cluster_events,
        };
        let hub_thread = match supervisor.spawn("hub".into(), move || {
            hub::run(hub, wiring, &hub_stats);
            Ok(())
        }) {
            Ok(thread) => thread,
            Err(e) => {
                self.shutdown.shutdown();
                return Err(e);
            }
        };
        if let Some((ready, timeout)) = cluster_ready {
            // Accept users once the cluster is linked and the rooms'
            // history read, so the first to connect already sees the
            // whole cluster; the listeners are bound, so connections wait
            // in the kernel's backlog meanwhile. Bounded: a slow Redis does
            // not keep the server from serving its own users.
            let bound = (timeout * 10).max(CLUSTER_READY_MIN);
            if ready.recv_timeout(bound).is_err() {
                log::warn!("cluster: not linked after {bound:?}; serving local users meanwhile");
            }
        }
        log::info!("serving with {}", counted(inlets.len(), "I/O thread"));
        // Bounded by what operators do: one list per ban or unban.
        let (to_acceptor, ban_updates) = crossbeam_channel::unbounded();
        let bans = Arc::new(self.bans.clone());
        let control = match self.config.control_socket.clone() {
            Some(path) => {
                let setup = crate::ops::control::Setup {
                    path,
                    bans: self.bans.clone(),
                    to_acceptor,
                    to_hub: to_hub.clone(),
                    shutdown: self.shutdown.clone(),
                    reloader: tls_reloader,
                    listening: listening.clone(),
                    handover: requester_tx,
                };
                match ControlServer::start(setup) {
                    Ok(control) => Some(control),
                    Err(e) => {
                        self.shutdown.shutdown();
                        drop(to_hub);
                        for thread in io_threads {
                            let _ = thread.join();
                        }
                        let _ = hub_thread.join();
                        return Err(io::Error::other(e.to_string()));
                    }
                }
            }
            None => None,
        };
        let acceptor = Acceptor::new(
            self.acceptor.poll,
            self.listeners,
            inlets,
            released_rx,
            to_hub,
            &self.config,
            (bans, ban_updates),
            self.shutdown.clone(),
            Arc::clone(&self.stats),
            self.acceptor.heartbeat,
        );
        // The acceptor runs on this thread. Its end (or its failure to
        // start) lets the I/O threads finish; theirs lets the hub finish.
        let mut result = match acceptor {
            Ok(mut acceptor) => {
                acceptor.count_restored(&restored_places, next_serial);
                acceptor.hand_listeners_to(listeners_tx);
                acceptor.run()
            }
            Err(e) => {
                self.shutdown.shutdown();
                Err(e)
            }
        };
        // The control thread holds a way to the hub: it must go for the
        // hub to finish.
        if let Some(control) = control {
            control.stop();
        }
        for thread in io_threads {
            if let Ok(Err(e)) = thread.join() {
                log::error!("an I/O thread failed: {e}");
                result = result.and(Err(e));
            }
        }
        let _ = hub_thread.join();
        if let Some(threads) = cluster_threads {
            // On a restart that keeps the users, the next process takes
            // their nicks over.
            threads.stop(!self.shutdown.is_handover());
        }
        if self.shutdown.is_handover() {
            log::info!("stopped, to hand over");
        } else {
            log::info!("stopped");
        }
        if let Some(endpoint) = endpoint {
            endpoint.stop();
        }
        if let Some(stats_log) = stats_log {
            stats_log.stop();
        }
        result.and(supervisor.verdict())?;
        if !self.shutdown.is_handover() {
            return Ok(RunEnd::Stopped);
        }
        drop(handover_tx);
        let hub_state = hub_state_rx
            .try_recv()
            .map_err(|_| io::Error::other("the handover failed: the hub did not hand its state over"))?;
        let carried: Vec<_> = handover_rx.try_iter().collect();
        if carried.len() != shard_count {
            return Err(io::Error::other(
                "the handover failed: an I/O thread did not hand its connections over",
            ));
        }
        let (connections, conns) = carried.into_iter().flat_map(|(_, conns)| conns).unzip();
        let kept_listeners = listeners_rx.try_recv().unwrap_or_default();
        let (listeners, listener_fds) = kept_listeners
            .into_iter()
            .filter_map(|(listener, kind): (mio::net::TcpListener, ListenerKind)| {
                let addr = listener.local_addr().ok()?;
                let state = ListenerState {
                    addr,
                    protocol: kind.protocol,
                    tls: kind.tls,
                };
                Some((state, std::os::fd::OwnedFd::from(listener)))
            })
            .unzip();
        Ok(RunEnd::HandedOver(Box::new(Handed {
            state: State {
                header: Header::current(),
                hub: hub_state,
                listeners,
                connections,
            },
            listeners: listener_fds,
            conns,
            requester: requester_rx.try_recv().ok(),
        })))
    }
}

/// Watches the server's threads: one that panics is logged and shuts the
/// whole server down, and the server's run ends in an error.
#[derive(Debug, Clone)]
struct Supervisor {
    shutdown: ShutdownHandle,
    /// Set once a thread has panicked (which one is in the log).
    died: Arc<AtomicBool>,
}

/// Lives on a supervised thread's stack: dropped while unwinding, it
/// reports the panic.
struct Watch {
    name: String,
    supervisor: Supervisor,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if thread::panicking() {
            log::error!("the {} thread panicked; shutting the server down", self.name);
            self.supervisor.died.store(true, Ordering::Release);
            self.supervisor.shutdown.shutdown();
        }
    }
}

impl Supervisor {
    fn new(shutdown: ShutdownHandle) -> Supervisor {
        Supervisor {
            shutdown,
            died: Arc::default(),
        }
    }

    /// Starts `body` on a thread called `name`, watched.
    fn spawn(
        &self,
        name: String,
        body: impl FnOnce() -> io::Result<()> + Send + 'static,
    ) -> io::Result<thread::JoinHandle<io::Result<()>>> {
        let watch = Watch {
            name: name.clone(),
            supervisor: self.clone(),
        };
        thread::Builder::new().name(name).spawn(move || {
            let _watch = watch;
            body()
        })
    }

    /// An error if a thread panicked.
    fn verdict(&self) -> io::Result<()> {
        if self.died.load(Ordering::Acquire) {
            Err(io::Error::other(
                "a thread of the server panicked (see the log above)",
            ))
        } else {
            Ok(())
        }
    }
}

/// A listening socket on `addr`. An IPv6 socket takes only IPv6, so that
/// `[::]:7878` and `0.0.0.0:7878` can both be given.
fn bind_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(IpProtocol::TCP))?;
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
            vec![(given, ListenerKind::LINE)],
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
