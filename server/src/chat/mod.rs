//! The chat state and the messages that change it.
//!
//! The [`hub`] owns users, nicks and rooms on one thread, so every member
//! of a room sees one order and no lock guards any of it; the
//! [`messages`] are what the network layer and the hub say to each other
//! over their channels.
//!
//! What it must never do: see bytes or sockets (a front end turns them
//! into commands and events into bytes), or wait on the network.

pub mod hub;
pub mod messages;
