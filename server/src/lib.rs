//! chat-server: a multi-client TCP chat daemon.
//!
//! The shape, and why:
//! - [`acceptor`] takes new connections off the listening sockets, on its
//!   own thread, enforces the connection limits, and hands each connection
//!   to the I/O thread with the fewest.
//! - [`event_loop`] is one I/O thread (`--threads`, one per core by
//!   default): with mio, it reads its share of the sockets without
//!   blocking, decodes lines, and writes queued output. No socket can make
//!   it wait, so one slow client never holds back others.
//! - [`hub`] owns the chat state (users, nicks, rooms) on its own thread.
//!   Lines reach it through a crossbeam channel and what it says goes back
//!   through one channel per I/O thread, split by who owns each recipient,
//!   with a [`mio::Waker`] to wake the thread. Only the hub touches the
//!   state, so no lock guards it.
//! - [`wire`] is the line protocol front end between the two: the hub
//!   speaks in [`chat_protocol::ServerEvent`]s, never in bytes.
//! - [`flood`] is the per-connection flood control, [`timers`] the event
//!   loop's deadlines.
//! - [`connection`] is one client's socket, decoder and output queue;
//!   [`messages`] the channel messages; [`server`] puts it all together;
//!   [`config`] and [`cli`] are the settings.
//! - [`stats`] holds the counters the threads keep for others (clients,
//!   traffic, closes by reason); [`metrics`] serves them to Prometheus
//!   (`--metrics-listen`) and logs them (`--stats-interval`), and
//!   [`liveness`] tells from outside whether every loop still turns.
//! - [`descriptors`] raises the descriptor limit at start and works out
//!   how many clients fit under it.
//! - [`systemd`] is the service manager's side: socket activation and the
//!   notify protocol (readiness, status, stopping, watchdog); [`logging`]
//!   writes the log in the journal's format when stderr is the journal.
//!
//! Start a server with [`Server::bind`] (or [`Server::from_listeners`], or
//! [`Server::bind_with`] for both), keep a [`ShutdownHandle`] from
//! [`Server::handle`], and call [`Server::run`].

pub mod acceptor;
pub mod cli;
pub mod config;
pub mod connection;
pub mod descriptors;
pub mod event_loop;
pub mod flood;
pub mod hub;
pub mod liveness;
pub mod logging;
pub mod messages;
pub mod metrics;
pub mod server;
pub mod stats;
pub mod systemd;
pub mod timers;
pub mod wire;

pub use config::Config;
pub use liveness::Liveness;
pub use server::{Server, ShutdownHandle, StartError};
pub use stats::Stats;
