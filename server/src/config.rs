//! The daemon's settings, as the library takes them.
//!
//! The command line ([`crate::cli`]) fills this in; tests build it
//! directly. Each limit says why it has its default.

use std::net::SocketAddr;
use std::time::Duration;

/// Where to listen by default: loopback only, so a daemon started without
/// thinking is not open to the network.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// Default for [`Config::max_clients`]: well under the descriptor limit of a
/// typical service (systemd's default soft limit is 1024 unless raised; the
/// unit raises it), and far more than a small community needs.
pub const DEFAULT_MAX_CLIENTS: usize = 10_000;

/// Default for [`Config::shutdown_grace`]: long enough to flush queued
/// messages to every healthy client, short enough that a restart is quick
/// (systemd waits 90 s before it kills).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to listen on (used by [`crate::Server::bind`]).
    pub listen: Vec<SocketAddr>,
    /// Longest line a client may send, in bytes, without its line end.
    pub max_line: usize,
    /// Most clients connected at once; one more is told `!! server full`
    /// and closed.
    pub max_clients: usize,
    /// How long shutdown waits for queued output to be written.
    pub shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().into_iter().collect(),
            max_line: chat_protocol::DEFAULT_MAX_LINE,
            max_clients: DEFAULT_MAX_CLIENTS,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}
