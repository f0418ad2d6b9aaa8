//! Sockets and event loops: the layer that touches the network.
//!
//! It owns every socket: the listeners (the [`acceptor`]) and each client
//! connection (an [`event_loop`] per I/O thread, one [`connection`] each,
//! over a [`transport`], plain TCP or [`tls`]).
//! It reads without blocking, applies the limits that protect everyone
//! from one connection ([`flood`] control, the read budget, the send
//! queue, [`timers`] for idle and closing connections), hands decoded
//! lines to the chat layer and writes what comes back.
//!
//! What it must never do: hold chat state (who is called what, who is in
//! which room: that is [`crate::chat`]'s), or wait on one socket or on
//! another thread: every loop here turns however the network behaves.

pub mod acceptor;
pub mod admission;
pub mod connection;
pub mod event_loop;
pub mod flood;
pub mod shutdown;
pub mod timers;
pub mod tls;
pub mod transport;

pub use shutdown::ShutdownHandle;
