//! Operations: what lets people run, watch and trust the daemon.
//!
//! Counters the loops keep ([`stats`]) and who reads them (the Prometheus
//! [`metrics`] endpoint, the stats log line, systemd's status line in
//! [`systemd`]), the watchdog's proof that every loop turns
//! ([`liveness`]), the descriptor budget ([`descriptors`]) and the log's
//! format ([`logging`]).
//!
//! What it must never do: slow down or stop the chat. Readers take
//! snapshots of atomics; nothing here holds a lock the loops wait on.

pub mod control;
pub mod descriptors;
pub mod liveness;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod signals;
pub mod stats;
pub mod systemd;
