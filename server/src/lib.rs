//! chat-server: a multi-client TCP chat daemon.
//!
//! The shape, and why:
//! - [`event_loop`] owns every socket on one thread with mio: it accepts,
//!   reads without blocking, decodes lines, and writes queued output. No
//!   socket can make it wait, so one slow client never holds back others.
//! - [`hub`] owns the chat state (users, nicks, rooms) on its own thread.
//!   Lines reach it through a crossbeam channel and what it says goes back
//!   through another, with a [`mio::Waker`] to wake the event loop. Only
//!   the hub touches the state, so no lock guards it.
//! - [`wire`] is the line protocol front end between the two: the hub
//!   speaks in [`chat_protocol::ServerEvent`]s, never in bytes.
//! - [`flood`] is the per-connection flood control, [`timers`] the event
//!   loop's deadlines.
//! - [`connection`] is one client's socket, decoder and output queue;
//!   [`messages`] the channel messages; [`server`] puts it all together;
//!   [`config`] and [`cli`] are the settings.
//!
//! Start a server with [`Server::bind`] (or [`Server::from_listeners`]),
//! keep a [`ShutdownHandle`] from [`Server::handle`], and call
//! [`Server::run`].

pub mod cli;
pub mod config;
pub mod connection;
pub mod event_loop;
pub mod flood;
pub mod hub;
pub mod messages;
pub mod server;
pub mod timers;
pub mod wire;

pub use config::Config;
pub use server::{Server, ShutdownHandle, StartError};
