//! The chat state and the messages that change it.
//!
//! The [`hub`] owns users, nicks and [`room`]s (with their [`history`]) on
//! one thread, so every member of a room sees one order and no lock
//! guards any of it; the [`messages`] are what the network layer and the
//! hub say to each other over their channels, and a [`request`] is what a
//! user asks of the hub, whatever their front end.
//!
//! What it must never do: see bytes or sockets (a front end turns them
//! into commands and events into bytes), or wait on the network.

pub mod admin;
pub mod history;
pub mod hub;
pub mod messages;
pub mod request;
pub mod room;
