//! chat-bench: an independent load generator for chat-server, also able
//! to drive `ncat --chat` and tokio's chat example (`examples/chat.rs` in
//! tokio's repository, built by the reader; not part of this project), so
//! that all are measured by the same tool in the same run.
//!
//! A chat daemon's real work is fan-out, so the scenarios are about it:
//! many loopback connections, some of which send timestamped 64-byte
//! lines ([`payload`]); every delivery on every connection is timed and
//! checked for exactly-once, in-order arrival ([`stats`]). The sockets are
//! driven by a few mio threads ([`engine`]), so thousands of connections
//! cost a few threads on a machine the server shares. Scenarios
//! ([`scenario`]) are each bounded in time and count, and print a human
//! summary plus one JSON line ([`report`]).
//!
//! Every connection can speak TLS instead (`--tls`, issue 15; [`tls`]):
//! the same scenarios over TLS, plus new connections per second and a
//! handshake storm while clients chat.
//!
//! Or IRC (`--protocol irc`, issue 16; [`irc`]): the fan-out, fixed-rate,
//! idle, ramp and join-storm scenarios against chat-server's IRC listener
//! or ngircd, and a room mixing IRC and line clients (`--protocol
//! mixed`).
//!
//! Or WebSocket (`--protocol web`, issue 18; [`web`]): the same scenarios
//! against chat-server's web listener, whose WebSocket carries the line
//! protocol one line per frame, and a room mixing WebSocket and line
//! clients (`--protocol mixed-web`), reported per kind of client as well.
//!
//! Or over a cluster (`--cluster-instances N`, issue 17; [`cluster`]):
//! N chat-server instances clustered through a Redis the run starts, the
//! clients spread over them, Redis's CPU reported beside theirs.
//!
//! The crate's second binary, `chat-attack` ([`attack`]), runs the
//! attacks of issue 12 against a chat-server it starts itself and reports
//! what each one did to it, so the same attack can be run before and
//! after a fix.

pub mod args;
pub mod attack;
pub mod client;
pub mod cluster;
pub mod engine;
pub mod error;
pub mod irc;
pub mod payload;
pub mod procfs;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod target;
pub mod tls;
pub mod web;
pub mod window;

pub use error::{Error, Result};
