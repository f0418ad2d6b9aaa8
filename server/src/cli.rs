//! The command line of the `chat-server` daemon.
//!
//! Every option can also come from an environment variable, so a systemd
//! unit can configure the daemon with `Environment=` or an
//! `EnvironmentFile=` instead of a long `ExecStart=` line.

use std::net::SocketAddr;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::config::{
    Config, DEFAULT_BURST, DEFAULT_CONNECT_BURST, DEFAULT_CONNECT_RATE, DEFAULT_HISTORY,
    DEFAULT_HISTORY_BYTES, DEFAULT_LISTEN, DEFAULT_MAX_CLIENTS, DEFAULT_MAX_CLOSING, DEFAULT_MAX_PER_IP,
    DEFAULT_MAX_PER_NET, DEFAULT_NET_PREFIX_V4, DEFAULT_NET_PREFIX_V6, DEFAULT_QUIET_ABOVE, DEFAULT_RATE,
    DEFAULT_REPLAY, DEFAULT_SENDQ, DEFAULT_SILENT_GRACE,
};

/// The longest line `--max-line` may allow: 1 MiB. Every connection may
/// hold a line this long while it arrives.
const MAX_MAX_LINE: usize = 1024 * 1024;

/// The most lines `--history` and `--replay` may be: a room's history is
/// replayed in one answer, which must stay a reasonable size.
const MAX_HISTORY_LINES: usize = 10_000;

/// The most `--history-bytes` may be: 1 TiB.
const MAX_HISTORY_BYTES: usize = 1 << 40;

/// The most `--sendq` may be: 1 GiB, per client.
const MAX_SENDQ: usize = 1024 * 1024 * 1024;

/// The most `--max-clients` may be; the descriptor limit bounds it further
/// at start.
const MAX_MAX_CLIENTS: usize = 10_000_000;

/// The longest `--shutdown-grace`: an hour (systemd kills a service that
/// takes 90 s to stop unless told otherwise).
const MAX_GRACE_SECS: f64 = 3600.0;

/// The longest `--idle-timeout`: a week.
const MAX_IDLE_SECS: f64 = 7.0 * 24.0 * 3600.0;

/// The longest `--stats-interval`: a day.
const MAX_STATS_SECS: f64 = 24.0 * 3600.0;

/// A multi-client TCP chat server.
///
/// Clients connect with netcat or chat-client and talk in rooms with
/// line-based commands (/nick, /join, /msg, ...; type /help once
/// connected). See PROTOCOL.md for the wire protocol.
#[derive(Debug, Parser)]
// The version with the git commit, from build.rs.
#[command(name = "chat-server", version = env!("CHAT_BUILD_VERSION"), about, long_about)]
pub struct Cli {
    /// Address to listen on, IPv4 or IPv6 (e.g. 0.0.0.0:7878 or [::]:7878).
    /// Repeat the option, or separate addresses with commas in the
    /// environment variable, to listen on several. [default: 127.0.0.1:7878,
    /// unless started by socket activation: then only the sockets passed
    /// in, and these addresses as well if given]
    // No clap default: an empty list means "not given", which under socket
    // activation must not bind the default address (see `into_config`).
    #[arg(
        long = "listen",
        value_name = "ADDR",
        env = "CHAT_SERVER_LISTEN",
        value_delimiter = ','
    )]
    pub listen: Vec<SocketAddr>,

    /// Longest line a client may send, in bytes, not counting the line end.
    /// A longer line gets an error and is discarded; the connection stays.
    #[arg(long, value_name = "BYTES", env = "CHAT_SERVER_MAX_LINE", default_value_t = chat_protocol::DEFAULT_MAX_LINE, value_parser = max_line)]
    pub max_line: usize,

    /// Most clients connected at once. When full, a newcomer takes the
    /// place of the connection that has been here longest (at least 10 s)
    /// without saying anything, or, if there is none, is told "server
    /// full" and closed. The daemon raises its soft descriptor limit to
    /// the hard one at start; a value that does not fit that limit is an
    /// error, and the default is lowered to what fits.
    #[arg(long, value_name = "N", env = "CHAT_SERVER_MAX_CLIENTS", default_value_t = DEFAULT_MAX_CLIENTS, value_parser = max_clients)]
    pub max_clients: usize,

    /// On SIGTERM, SIGINT or SIGHUP, how long to keep flushing queued
    /// messages to clients before closing anyway, in seconds (fractions
    /// allowed, at most 3600).
    #[arg(long, value_name = "SECS", env = "CHAT_SERVER_SHUTDOWN_GRACE", default_value = "5", value_parser = grace)]
    pub shutdown_grace: Duration,

    /// Most bytes queued to one client that is not reading. A client whose
    /// queue would grow past this is disconnected as a slow consumer, and
    /// its room is told. At most 1 GiB.
    #[arg(long, value_name = "BYTES", env = "CHAT_SERVER_SENDQ", default_value_t = DEFAULT_SENDQ, value_parser = sendq)]
    pub sendq: usize,

    /// Lines per second each client may send on average; 0 turns flood
    /// control off. A client over the rate is not read from until it may
    /// go on, so nothing it sent is lost and only it is slowed down.
    #[arg(long, value_name = "LINES_PER_SEC", env = "CHAT_SERVER_RATE", default_value_t = DEFAULT_RATE)]
    pub rate: u32,

    /// Lines a client may send at once before --rate applies.
    #[arg(long, value_name = "N", env = "CHAT_SERVER_BURST", default_value_t = DEFAULT_BURST, value_parser = clap::value_parser!(u32).range(1..))]
    pub burst: u32,

    /// Most connections from one IP address; 0 means no limit. One more is
    /// told "too many connections from your address" and closed.
    #[arg(long, value_name = "N", env = "CHAT_SERVER_MAX_PER_IP", default_value_t = DEFAULT_MAX_PER_IP)]
    pub max_per_ip: usize,

    /// Most connections from one network (addresses sharing their first
    /// --net-prefix-v4 or --net-prefix-v6 bits); 0 means no limit. One
    /// more is told "too many connections from your network" and closed.
    #[arg(long, value_name = "N", env = "CHAT_SERVER_MAX_PER_NET", default_value_t = DEFAULT_MAX_PER_NET)]
    pub max_per_net: usize,

    /// How many leading bits of an IPv4 address make its network.
    #[arg(long, value_name = "BITS", env = "CHAT_SERVER_NET_PREFIX_V4", default_value_t = DEFAULT_NET_PREFIX_V4, value_parser = clap::value_parser!(u8).range(0..=32))]
    pub net_prefix_v4: u8,

    /// How many leading bits of an IPv6 address make its network.
    #[arg(long, value_name = "BITS", env = "CHAT_SERVER_NET_PREFIX_V6", default_value_t = DEFAULT_NET_PREFIX_V6, value_parser = clap::value_parser!(u8).range(0..=128))]
    pub net_prefix_v6: u8,

    /// New connections a second one address may open, on average; a whole
    /// network may open four times as many. 0 turns the throttle off. One
    /// more is told "too many new connections from your address" and
    /// closed.
    #[arg(long, value_name = "PER_SEC", env = "CHAT_SERVER_CONNECT_RATE", default_value_t = DEFAULT_CONNECT_RATE)]
    pub connect_rate: u32,

    /// New connections one address may open at once before --connect-rate
    /// applies (a network: four times as many).
    #[arg(long, value_name = "N", env = "CHAT_SERVER_CONNECT_BURST", default_value_t = DEFAULT_CONNECT_BURST, value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_burst: u32,

    /// Disconnect a client that completed no line for this many seconds
    /// (bytes without a newline do not count), with a notice; 0 means
    /// never. At most a week.
    #[arg(long, value_name = "SECS", env = "CHAT_SERVER_IDLE_TIMEOUT", default_value = "0", value_parser = idle)]
    pub idle_timeout: Duration,

    /// Rooms with more members than this are not told of joins, leaves and
    /// nick changes (/who still lists everyone); 0 means always tell.
    #[arg(long, value_name = "N", env = "CHAT_SERVER_QUIET_ABOVE", default_value_t = DEFAULT_QUIET_ABOVE)]
    pub quiet_above: usize,

    /// Lines each room remembers (chat lines and actions, never private
    /// messages), replayed to whoever joins it; 0 turns history off. An
    /// empty room keeps its history until --history-bytes needs the room.
    /// In memory only: a restart forgets it.
    #[arg(long, value_name = "LINES", env = "CHAT_SERVER_HISTORY", default_value_t = DEFAULT_HISTORY, value_parser = history_lines)]
    pub history: usize,

    /// Lines of a room's history replayed on joining it, and what /history
    /// shows when not told how many (at most --history).
    #[arg(long, value_name = "LINES", env = "CHAT_SERVER_REPLAY", default_value_t = DEFAULT_REPLAY, value_parser = history_lines)]
    pub replay: usize,

    /// Most bytes all rooms' histories together may take. Past it, the
    /// histories of empty rooms go first, least recently used first, then
    /// a room's own oldest lines. At most 1 TiB.
    #[arg(long, value_name = "BYTES", env = "CHAT_SERVER_HISTORY_BYTES", default_value_t = DEFAULT_HISTORY_BYTES, value_parser = history_bytes)]
    pub history_bytes: usize,

    /// Serve Prometheus metrics over HTTP at http://ADDR/metrics (e.g.
    /// 127.0.0.1:9187). Off unless given. The endpoint has no
    /// authentication: keep it on loopback or a private network.
    #[arg(long, value_name = "ADDR", env = "CHAT_SERVER_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Log a line of figures (clients, rooms, traffic) at info level every
    /// this many seconds; 0 means never. At most a day.
    #[arg(long, value_name = "SECS", env = "CHAT_SERVER_STATS_INTERVAL", default_value = "60", value_parser = stats_interval)]
    pub stats_interval: Duration,

    /// I/O threads serving the sockets; 0 means one per CPU core. Each
    /// takes an equal share of the connections, so a big room's fan-out
    /// is written from every core.
    #[arg(long, value_name = "N", env = "CHAT_SERVER_THREADS", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1024))]
    pub threads: u16,

    /// Whether --max-clients was given (on the command line or in the
    /// environment) rather than left at its default: only a default is
    /// lowered to fit the descriptor limit.
    #[arg(skip)]
    pub max_clients_given: bool,
}

impl Cli {
    /// The process's command line and environment, as [`Parser::parse`]
    /// reads them (exiting with a usage error on a bad one), noting which
    /// options were given.
    pub fn parse_args() -> Cli {
        Cli::from_matches(&Cli::command().get_matches()).unwrap_or_else(|e| e.exit())
    }

    /// As [`Cli::parse_args`], from the given arguments.
    ///
    /// # Errors
    /// A usage error, as clap reports it.
    pub fn try_parse_args_from<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Cli::from_matches(&Cli::command().try_get_matches_from(args)?)
    }

    fn from_matches(matches: &clap::ArgMatches) -> Result<Cli, clap::Error> {
        let mut cli = Cli::from_arg_matches(matches)?;
        cli.max_clients_given = matches
            .value_source("max_clients")
            .is_some_and(|source| source != ValueSource::DefaultValue);
        Ok(cli)
    }

    /// The library's configuration from these options.
    ///
    /// `socket_activated` says whether the service manager passed listening
    /// sockets. Then `listen` holds only the addresses given explicitly
    /// (with --listen or CHAT_SERVER_LISTEN), often none, to bind in
    /// addition to the passed sockets; otherwise it is the default address
    /// when none was given.
    pub fn into_config(self, socket_activated: bool) -> Config {
        let listen = if self.listen.is_empty() && !socket_activated {
            DEFAULT_LISTEN.parse().into_iter().collect()
        } else {
            self.listen
        };
        Config {
            listen,
            tls_listen: Vec::new(),
            tls: None,
            tls_handshake_timeout: crate::config::DEFAULT_HANDSHAKE_TIMEOUT,
            max_line: self.max_line,
            max_clients: self.max_clients,
            shutdown_grace: self.shutdown_grace,
            sendq: self.sendq,
            rate: self.rate,
            burst: self.burst,
            max_per_ip: self.max_per_ip,
            max_per_net: self.max_per_net,
            net_prefix_v4: self.net_prefix_v4,
            net_prefix_v6: self.net_prefix_v6,
            connect_rate: self.connect_rate,
            connect_burst: self.connect_burst,
            // Worked out from the descriptor limit at start (main.rs).
            max_closing: DEFAULT_MAX_CLOSING,
            silent_grace: DEFAULT_SILENT_GRACE,
            idle_timeout: (!self.idle_timeout.is_zero()).then_some(self.idle_timeout),
            quiet_above: self.quiet_above,
            history: self.history,
            replay: self.replay,
            history_bytes: self.history_bytes,
            metrics_listen: self.metrics_listen,
            stats_interval: (!self.stats_interval.is_zero()).then_some(self.stats_interval),
            threads: usize::from(self.threads),
            test_listen: Vec::new(),
            test_fault: None,
        }
    }
}

/// A whole number from 1 to `max`.
fn count_within(s: &str, max: usize) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) if n > max => Err(format!("must be at most {max}")),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn max_line(s: &str) -> Result<usize, String> {
    count_within(s, MAX_MAX_LINE)
}

/// A number of history lines, 0 to [`MAX_HISTORY_LINES`].
fn history_lines(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > MAX_HISTORY_LINES => Err(format!("must be at most {MAX_HISTORY_LINES}")),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn history_bytes(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > MAX_HISTORY_BYTES => Err(format!("must be at most {MAX_HISTORY_BYTES}")),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn sendq(s: &str) -> Result<usize, String> {
    count_within(s, MAX_SENDQ)
}

fn max_clients(s: &str) -> Result<usize, String> {
    count_within(s, MAX_MAX_CLIENTS)
}

/// A number of seconds from 0 to `max`, fractions allowed.
fn seconds_within(s: &str, max: f64) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if !(0.0..=max).contains(&secs) {
        return Err(format!("must be a number of seconds from 0 to {max}"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("must be a number of seconds from 0 to {max}"))
}

fn grace(s: &str) -> Result<Duration, String> {
    seconds_within(s, MAX_GRACE_SECS)
}

fn idle(s: &str) -> Result<Duration, String> {
    seconds_within(s, MAX_IDLE_SECS)
}

fn stats_interval(s: &str) -> Result<Duration, String> {
    seconds_within(s, MAX_STATS_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let config = Cli::try_parse_from(["chat-server"]).unwrap().into_config(false);
        assert_eq!(
            config.listen,
            vec!["127.0.0.1:7878".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(config.max_line, 4096);
        assert_eq!(config.max_clients, 10_000);
        assert_eq!(config.shutdown_grace, Duration::from_secs(5));
        assert_eq!(config.sendq, 1024 * 1024);
        assert_eq!((config.rate, config.burst), (20, 50));
        assert_eq!(config.max_per_ip, 32);
        assert_eq!(config.idle_timeout, None);
        assert_eq!(config.quiet_above, 100);
        assert_eq!((config.history, config.replay), (100, 20));
        assert_eq!(config.history_bytes, 64 * 1024 * 1024);
        assert_eq!(config.metrics_listen, None);
        assert_eq!(config.stats_interval, Some(Duration::from_secs(60)));
        assert_eq!(config.threads, 0, "one I/O thread per core");
        assert!(config.io_threads() >= 1);
    }

    #[test]
    fn max_clients_is_given_on_the_command_line_not_by_default() {
        assert!(
            !Cli::try_parse_args_from(["chat-server"])
                .unwrap()
                .max_clients_given
        );
        let cli = Cli::try_parse_args_from(["chat-server", "--max-clients", "5"]).unwrap();
        assert!(cli.max_clients_given);
        assert_eq!(cli.max_clients, 5);
    }

    #[test]
    fn observability_options_parse() {
        let config = Cli::try_parse_from([
            "chat-server",
            "--metrics-listen",
            "127.0.0.1:9187",
            "--stats-interval",
            "0",
        ])
        .unwrap()
        .into_config(false);
        assert_eq!(config.metrics_listen, Some("127.0.0.1:9187".parse().unwrap()));
        assert_eq!(config.stats_interval, None);
    }

    #[test]
    fn socket_activation_binds_only_the_addresses_given() {
        let config = Cli::try_parse_from(["chat-server"]).unwrap().into_config(true);
        assert_eq!(config.listen, [], "no default address next to passed sockets");
        let config = Cli::try_parse_from(["chat-server", "--listen", "[::1]:9"])
            .unwrap()
            .into_config(true);
        assert_eq!(config.listen, ["[::1]:9".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn hardening_options_parse() {
        let config = Cli::try_parse_from([
            "chat-server",
            "--sendq",
            "2048",
            "--rate",
            "0",
            "--burst",
            "5",
            "--max-per-ip",
            "0",
            "--idle-timeout",
            "30",
        ])
        .unwrap()
        .into_config(false);
        assert_eq!(
            (config.sendq, config.rate, config.burst, config.max_per_ip),
            (2048, 0, 5, 0)
        );
        assert_eq!(config.idle_timeout, Some(Duration::from_secs(30)));
    }

    #[test]
    fn options_parse_and_repeat() {
        let config = Cli::try_parse_from([
            "chat-server",
            "--listen",
            "0.0.0.0:1",
            "--listen",
            "[::1]:2",
            "--max-line",
            "10",
            "--max-clients",
            "3",
            "--shutdown-grace",
            "0.5",
        ])
        .unwrap()
        .into_config(false);
        assert_eq!(config.listen.len(), 2);
        assert_eq!((config.max_line, config.max_clients), (10, 3));
        assert_eq!(config.shutdown_grace, Duration::from_millis(500));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["chat-server", "--max-line", "0"][..],
            &["chat-server", "--listen", "nowhere"],
            &["chat-server", "--shutdown-grace", "-1"],
            &["chat-server", "--burst", "0"],
            &["chat-server", "--sendq", "0"],
            &["chat-server", "--bogus"],
            // Values that would overflow a deadline or a buffer size.
            &["chat-server", "--idle-timeout", "1e19"],
            &["chat-server", "--idle-timeout", "NaN"],
            &["chat-server", "--idle-timeout", "inf"],
            &["chat-server", "--shutdown-grace", "1e300"],
            &["chat-server", "--stats-interval", "99999999999"],
            &["chat-server", "--max-line", "18446744073709551615"],
            &["chat-server", "--sendq", "99999999999999"],
            &["chat-server", "--max-clients", "99999999999"],
            &["chat-server", "--net-prefix-v4", "33"],
            &["chat-server", "--net-prefix-v6", "129"],
            &["chat-server", "--connect-burst", "0"],
        ] {
            let error = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }
}
