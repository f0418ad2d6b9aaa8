//! chat-server: a multi-client TCP chat daemon.
//!
//! The source is laid out in layers, one folder each; each layer's
//! `mod.rs` says what it owns and what it must never do:
//!
//! - [`net`]: sockets and event loops. The [`net::acceptor`] takes new
//!   connections and enforces the connection limits; each I/O thread
//!   (`--threads`, one per core by default) runs a [`net::event_loop`]
//!   over its share of the connections, reading without blocking and
//!   writing what the hub says. No socket can make a loop wait.
//! - [`chat`]: the chat state. The [`chat::hub`] owns users, nicks and
//!   rooms on its own thread; lines reach it over a crossbeam channel and
//!   its events go back over one channel per I/O thread, so no lock
//!   guards the state and every member of a room sees one order.
//! - [`frontend`]: the wire formats between bytes and the hub: the
//!   [`frontend::line`] protocol today.
//! - [`ops`]: counters, metrics, the systemd notifier and watchdog, the
//!   descriptor budget, the log.
//! - [`upgrade`]: restarting without dropping anyone (the state and the
//!   sockets handed to the next process).
//! - [`server`] puts it all together; [`config`] and [`cli`] are the
//!   settings.
//!
//! Start a server with [`Server::bind`] (or [`Server::from_listeners`], or
//! [`Server::bind_with`] for both), keep a [`ShutdownHandle`] from
//! [`Server::handle`], and call [`Server::run`].

pub mod chat;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod frontend;
pub mod net;
pub mod ops;
pub mod server;
pub mod upgrade;

pub use config::Config;
pub use net::ShutdownHandle;
pub use ops::liveness::Liveness;
pub use ops::stats::Stats;
pub use server::{Server, StartError};
