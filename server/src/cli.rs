//! The command line of the `chat-server` daemon.
//!
//! Every option can also come from an environment variable, so a systemd
//! unit can configure the daemon with `Environment=` or an
//! `EnvironmentFile=` instead of a long `ExecStart=` line. A variable set
//! to the empty string counts as unset (an `EnvironmentFile=` line
//! `CHAT_SERVER_LISTEN=` means the default), and a bad value in one is
//! reported under the variable's name, which is what the operator wrote.
//!
//! Addresses (`--listen`, `--metrics-listen`) are written as a user would
//! write them to a client: a host name or an IP address, with or without a
//! port. Their syntax is checked while parsing (a usage error); names are
//! resolved at start, in [`Cli::into_config`], since the library takes
//! resolved addresses.

use std::error::Error as _;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::cluster::RedisUrl;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::config::{
    Config, DEFAULT_BURST, DEFAULT_CONNECT_BURST, DEFAULT_CONNECT_RATE, DEFAULT_HISTORY,
    DEFAULT_HISTORY_BYTES, DEFAULT_LISTEN, DEFAULT_MAX_CLIENTS, DEFAULT_MAX_CLOSING, DEFAULT_MAX_PER_IP,
    DEFAULT_MAX_PER_NET, DEFAULT_NET_PREFIX_V4, DEFAULT_NET_PREFIX_V6, DEFAULT_QUIET_ABOVE, DEFAULT_RATE,
    DEFAULT_REPLAY, DEFAULT_SENDQ, DEFAULT_SILENT_GRACE,
};
use crate::net::tls::TlsFiles;

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

/// The port of a `--listen` address written without one: the port of
/// [`DEFAULT_LISTEN`], and the client's default.
pub const DEFAULT_PORT: u16 = 7878;

/// The port of a `--tls-listen` address written without one, and of the
/// client's `--tls`: the plain port plus one.
pub const DEFAULT_TLS_PORT: u16 = 7879;

/// The port of a `--metrics-listen` address written without one: the port
/// README's examples and scrape configuration use.
pub const DEFAULT_METRICS_PORT: u16 = 9187;

/// What the signals do, for `--help` and the man page's SIGNALS section.
pub const SIGNALS: &str = "SIGTERM and SIGINT stop the server gracefully: it stops accepting, sends \
    every client \"-- server shutting down\" after the lines it has already read, flushes what is \
    queued to them for at most --shutdown-grace seconds, closes and exits 0. Under a systemd unit \
    with a file descriptor store (FileDescriptorStoreMax=, systemd 254 or later: FDSTORE is set), \
    SIGTERM instead hands every client, the listeners and the chat state to the store and exits 0 \
    without closing anyone: the next process takes them back (README.md, \"Restarting without \
    dropping anyone\"). SIGHUP reads the TLS \
    certificate and key again (--tls-cert, --tls-key): new connections get the new certificate, open \
    ones keep theirs; if the files are bad the error is logged and the old certificate stays. \
    Without TLS, SIGHUP does nothing but say so in the log.";

/// The exit codes (see main.rs), for `--help` and the man page's EXIT
/// STATUS section.
pub const EXIT_STATUS: &str = "0 after a clean stop (on one of the signals above; also for --help \
    and --version). 1 when the server cannot start (an address it cannot resolve or listen on, a \
    descriptor limit with no room for the clients, a socket passed by the service manager that it \
    cannot serve), or when one of its threads died and it shut down: a bug, after which systemd's \
    Restart=on-failure starts it again. 2 for a usage error: an unknown option, or a bad value on \
    the command line or in a CHAT_SERVER_* variable (the message names which).";

/// A multi-client TCP chat server.
///
/// Clients connect with netcat or chat-client and talk in rooms with
/// line-based commands (/nick, /join, /msg, ...; type /help once
/// connected). Every option can also be set with the environment variable
/// shown; an option on the command line wins over its variable, and a
/// variable set to the empty string counts as unset.
///
/// Installed from the Debian package, the wire protocol is described in
/// /usr/share/doc/chat-server/PROTOCOL.md, and the daemon, its limits, its
/// metrics and its systemd units in /usr/share/doc/chat-server/README.md
/// (PROTOCOL.md and README.md in the source).
#[derive(Debug, Parser)]
// The version with the git commit, from build.rs.
#[command(
    name = "chat-server",
    version = env!("CHAT_BUILD_VERSION"),
    about,
    long_about,
    after_long_help = format!("Signals: {SIGNALS}\n\nExit status: {EXIT_STATUS}"),
    // `chat-server ctl ...` takes none of the daemon's options.
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Address to listen on: HOST:PORT, HOST, an IP address, or an IPv6
    /// address in brackets with a port ([::1]:7878); the port defaults to
    /// 7878. A host name listens on every address it resolves to at start
    /// (localhost: usually 127.0.0.1 and ::1). Repeat the option, or separate
    /// addresses with commas, to listen on several. [default:
    /// 127.0.0.1:7878, unless started by socket activation: then only the
    /// sockets passed in, and these addresses as well if given]
    // No clap default: an empty list means "not given", which under socket
    // activation must not bind the default address (see `into_config`).
    #[arg(
        long = "listen",
        value_name = "ADDR",
        env = "CHAT_SERVER_LISTEN",
        value_delimiter = ',',
        value_parser = listen_addr
    )]
    pub listen: Vec<HostPort>,

    /// Address to listen on for the line protocol over TLS, in the same
    /// forms as --listen; the port defaults to 7879. Repeat the option, or
    /// separate addresses with commas, for several. Needs --tls-cert and
    /// --tls-key. Given without --listen, only TLS is served.
    #[arg(
        long = "tls-listen",
        value_name = "ADDR",
        env = "CHAT_SERVER_TLS_LISTEN",
        value_delimiter = ',',
        value_parser = tls_listen_addr
    )]
    pub tls_listen: Vec<HostPort>,

    /// The certificate chain TLS listeners present: a PEM file, the
    /// server's own certificate first (an ACME client's fullchain.pem).
    /// Read again on SIGHUP. Not given, the systemd credential tls-cert is
    /// used if there is one.
    #[arg(long, value_name = "PATH", env = "CHAT_SERVER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert: a PEM file (PKCS#8, PKCS#1 or SEC1).
    /// Read again on SIGHUP. Not given, the systemd credential tls-key is
    /// used if there is one.
    #[arg(long, value_name = "PATH", env = "CHAT_SERVER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Address to listen on for IRC clients (irssi, WeeChat, HexChat, ...),
    /// in the same forms as --listen; the port defaults to 6667. Repeat
    /// the option, or separate addresses with commas, for several. IRC and
    /// line protocol users share the rooms (a room is a channel). Given
    /// without --listen, the line protocol's default address is not opened.
    #[arg(
        long = "irc-listen",
        value_name = "ADDR",
        env = "CHAT_SERVER_IRC_LISTEN",
        value_delimiter = ',',
        value_parser = irc_listen_addr
    )]
    pub irc_listen: Vec<HostPort>,

    /// Address to listen on for IRC over TLS; the port defaults to 6697.
    /// Needs --tls-cert and --tls-key, the certificate every TLS listener
    /// serves.
    #[arg(
        long = "irc-tls-listen",
        value_name = "ADDR",
        env = "CHAT_SERVER_IRC_TLS_LISTEN",
        value_delimiter = ',',
        value_parser = irc_tls_listen_addr
    )]
    pub irc_tls_listen: Vec<HostPort>,

    /// Address to serve the web page on: a browser opens
    /// http://ADDR/ and chats in the same rooms as everyone else, over a
    /// WebSocket at /ws that any program may use too (it speaks the line
    /// protocol). In the same forms as --listen; the port defaults to 7880.
    /// Repeat the option, or separate addresses with commas, for several.
    /// Given without --listen, the line protocol's default address is not
    /// opened.
    #[arg(
        long = "web-listen",
        value_name = "ADDR",
        env = "CHAT_SERVER_WEB_LISTEN",
        value_delimiter = ',',
        value_parser = web_listen_addr
    )]
    pub web_listen: Vec<HostPort>,

    /// Address to serve the web page on over HTTPS (and its WebSocket
    /// over WSS); the port defaults to 7881. Needs --tls-cert and
    /// --tls-key, the certificate every TLS listener serves.
    #[arg(
        long = "web-tls-listen",
        value_name = "ADDR",
        env = "CHAT_SERVER_WEB_TLS_LISTEN",
        value_delimiter = ',',
        value_parser = web_tls_listen_addr
    )]
    pub web_tls_listen: Vec<HostPort>,

    /// An origin, besides the server's own, whose pages may open the
    /// chat's WebSocket: the public name the page is served under
    /// (https://chat.example.org), or another site that embeds the chat.
    /// The server's own origin is the address the page was loaded from
    /// when that is an IP address, localhost or --server-name; any other
    /// name must be listed here (a name only DNS ties to this server could
    /// be another site's, rebound). Repeat the option, or separate origins
    /// with commas, for several.
    #[arg(
        long = "web-allow-origin",
        value_name = "ORIGIN",
        env = "CHAT_SERVER_WEB_ALLOW_ORIGIN",
        value_delimiter = ',',
        value_parser = web_origin
    )]
    pub web_allow_origin: Vec<crate::frontend::web::origin::Origin>,

    /// The server's name in IRC replies: 1 to 63 letters, digits, dots and
    /// dashes. Default: this machine's host name.
    #[arg(long, value_name = "NAME", env = "CHAT_SERVER_SERVER_NAME", value_parser = server_name)]
    pub server_name: Option<String>,

    /// A text file IRC clients are shown as the message of the day when
    /// they connect (at most 100 lines of 400 characters are kept); read at
    /// start. Without it they are told there is none.
    #[arg(long, value_name = "PATH", env = "CHAT_SERVER_MOTD_FILE")]
    pub motd_file: Option<PathBuf>,

    /// The Unix socket `chat-server ctl` talks to (mode 0600: its owner
    /// alone may). Default: `control` in the directory systemd names in
    /// RUNTIME_DIRECTORY (RuntimeDirectory=); without either, none.
    #[arg(long, value_name = "PATH", env = "CHAT_SERVER_CONTROL_SOCKET")]
    pub control_socket: Option<PathBuf>,

    /// Where the server keeps what outlives a restart: the server bans of
    /// `chat-server ctl ban`, in the file server-bans. Default: the
    /// directory systemd names in STATE_DIRECTORY (StateDirectory=);
    /// without either, server bans live in memory only.
    #[arg(long, value_name = "PATH", env = "CHAT_SERVER_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Takes over from the chat-server whose control socket this is (its
    /// --control-socket): that server hands over every client connection,
    /// its listening sockets and the chat state, and exits; clients stay
    /// connected, with their nicks and rooms, and this process's options
    /// apply to them from then on (README.md, "Restarting without
    /// dropping anyone").
    #[arg(long, value_name = "CONTROL_SOCKET")]
    pub take_over: Option<PathBuf>,

    /// Runs a command against a running server instead of being one.
    #[command(subcommand)]
    pub command: Option<Subcommand>,

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

    /// On SIGTERM or SIGINT, how long to keep flushing queued
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
    /// closed. The web listeners have a throttle of their own, eight times
    /// this and --connect-burst: a page load takes five connections.
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
    /// 127.0.0.1:9187): HOST:PORT, HOST or an IP address, the port 9187 if
    /// none is given; a host name serves on the first address it resolves
    /// to. Off unless given. The endpoint has no authentication: keep it
    /// on loopback or a private network.
    #[arg(long, value_name = "ADDR", env = "CHAT_SERVER_METRICS_LISTEN", value_parser = metrics_addr)]
    pub metrics_listen: Option<HostPort>,

    /// Log a line of figures (clients, rooms, traffic) at info level every
    /// this many seconds; 0 means never. At most a day.
    #[arg(long, value_name = "SECS", env = "CHAT_SERVER_STATS_INTERVAL", default_value = "60", value_parser = stats_interval)]
    pub stats_interval: Duration,

    /// I/O threads serving the sockets; 0 means one per CPU core. Each
    /// takes an equal share of the connections, so a big room's fan-out
    /// is written from every core.
    #[arg(long, value_name = "N", env = "CHAT_SERVER_THREADS", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1024))]
    pub threads: u16,

    /// Join a cluster: share rooms, nicks, presence and history with every
    /// instance that uses the same Redis,
    /// redis://[:PASSWORD@]HOST:PORT[/DB]. Off unless given; without it
    /// Redis is never contacted. The password is never printed.
    #[arg(long, value_name = "URL", env = "CHAT_SERVER_CLUSTER", value_parser = ClusterUrlParser, hide_env_values = true)]
    pub cluster: Option<RedisUrl>,

    /// With --cluster: start even if Redis cannot be reached (serving local
    /// users only, and retrying), rather than exit 1.
    #[arg(long, env = "CHAT_SERVER_CLUSTER_OPTIONAL")]
    pub cluster_optional: bool,

    /// With --cluster: seconds after which the nicks and presence of an
    /// instance that stopped refreshing them (it crashed, or lost Redis)
    /// expire; each live instance refreshes them every third of this. At
    /// least 2.
    #[arg(long, value_name = "SECS", env = "CHAT_SERVER_CLUSTER_CLAIM_TTL", default_value = "30", value_parser = claim_ttl)]
    pub cluster_claim_ttl: Duration,

    /// With --cluster: milliseconds after which a Redis command or read
    /// that has no answer counts as a lost link (Redis gone or frozen). At
    /// least 100.
    #[arg(long, value_name = "MS", env = "CHAT_SERVER_CLUSTER_TIMEOUT", default_value = "2000", value_parser = cluster_timeout)]
    pub cluster_timeout: Duration,

    /// Whether --max-clients was given (on the command line or in the
    /// environment) rather than left at its default: only a default is
    /// lowered to fit the descriptor limit.
    #[arg(skip)]
    pub max_clients_given: bool,

    /// The variable `--listen` came from, when it came from one: a name
    /// that does not resolve is reported under it.
    #[arg(skip)]
    pub listen_env: Option<String>,

    /// The same for `--metrics-listen`.
    #[arg(skip)]
    pub metrics_listen_env: Option<String>,

    /// The same for `--tls-listen`.
    #[arg(skip)]
    pub tls_listen_env: Option<String>,

    /// The same for `--irc-listen`.
    #[arg(skip)]
    pub irc_listen_env: Option<String>,

    /// The same for `--irc-tls-listen`.
    #[arg(skip)]
    pub irc_tls_listen_env: Option<String>,

    /// The same for `--web-listen`.
    #[arg(skip)]
    pub web_listen_env: Option<String>,

    /// The same for `--web-tls-listen`.
    #[arg(skip)]
    pub web_tls_listen_env: Option<String>,
}

impl Cli {
    /// The process's command line and environment, as [`Parser::parse`]
    /// reads them (exiting with a usage error on a bad one), noting which
    /// options were given.
    pub fn parse_args() -> Cli {
        Cli::try_parse_args_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// As [`Cli::parse_args`], from the given arguments (and the process's
    /// environment).
    ///
    /// # Errors
    /// A usage error, as clap reports it, but for a bad value in an
    /// environment variable, which names the variable.
    pub fn try_parse_args_from<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let command = parsing_command();
        match command.clone().try_get_matches_from(&args) {
            Ok(matches) => Cli::from_matches(&command, &matches),
            Err(error) => Err(name_the_variable(command, &args, error)),
        }
    }

    fn from_matches(command: &clap::Command, matches: &clap::ArgMatches) -> Result<Cli, clap::Error> {
        let mut cli = Cli::from_arg_matches(matches)?;
        cli.max_clients_given = matches
            .value_source("max_clients")
            .is_some_and(|source| source != ValueSource::DefaultValue);
        let env_of = |id: &str| {
            let from_env = matches.value_source(id) == Some(ValueSource::EnvVariable);
            let arg = command.get_arguments().find(|arg| arg.get_id() == id);
            arg.and_then(clap::Arg::get_env)
                .filter(|_| from_env)
                .map(|var| var.to_string_lossy().into_owned())
        };
        cli.listen_env = env_of("listen");
        cli.metrics_listen_env = env_of("metrics_listen");
        cli.tls_listen_env = env_of("tls_listen");
        cli.tls_cert = cli.tls_cert.or_else(|| systemd_credential(TLS_CERT_CREDENTIAL));
        cli.tls_key = cli.tls_key.or_else(|| systemd_credential(TLS_KEY_CREDENTIAL));
        cli.irc_listen_env = env_of("irc_listen");
        cli.irc_tls_listen_env = env_of("irc_tls_listen");
        cli.web_listen_env = env_of("web_listen");
        cli.web_tls_listen_env = env_of("web_tls_listen");
        let without_certificate = cli.tls_cert.is_none() || cli.tls_key.is_none();
        for (option, given) in [
            ("--tls-listen", !cli.tls_listen.is_empty()),
            ("--irc-tls-listen", !cli.irc_tls_listen.is_empty()),
            ("--web-tls-listen", !cli.web_tls_listen.is_empty()),
        ] {
            if given && without_certificate {
                let mut command = command.clone();
                return Err(command.error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    format!(
                        "{option} needs --tls-cert and --tls-key (or CHAT_SERVER_TLS_CERT and \
                         CHAT_SERVER_TLS_KEY, or the systemd credentials tls-cert and tls-key)"
                    ),
                ));
            }
        }
        Ok(cli)
    }

    /// The library's configuration from these options, with every host
    /// name resolved.
    ///
    /// `socket_activated` says whether the service manager passed listening
    /// sockets. Then `listen` holds only the addresses given explicitly
    /// (with --listen or CHAT_SERVER_LISTEN), often none, to bind in
    /// addition to the passed sockets; otherwise it is the default address
    /// when none was given.
    ///
    /// # Errors
    /// A host name that does not resolve, or resolves to no address: a
    /// start error, not a usage error, since the name was well formed and
    /// the resolver may yet know it.
    pub fn into_config(self, socket_activated: bool) -> Result<Config, ConfigError> {
        self.into_config_with(socket_activated, lookup_host)
    }

    /// [`Cli::into_config`] with the resolver given, for tests.
    fn into_config_with(self, socket_activated: bool, lookup: Lookup) -> Result<Config, ConfigError> {
        let listen_name = self.listen_env.as_deref().unwrap_or("--listen");
        let mut listen = Vec::new();
        for addr in &self.listen {
            listen.extend(addr.resolve_with(listen_name, lookup)?);
        }
        // The default address only when no listener at all is asked for:
        // given alone, --tls-listen serves TLS only, --irc-listen IRC only.
        let other_listeners = !self.tls_listen.is_empty()
            || !self.irc_listen.is_empty()
            || !self.irc_tls_listen.is_empty()
            || !self.web_listen.is_empty()
            || !self.web_tls_listen.is_empty();
        if self.listen.is_empty() && !other_listeners && !socket_activated {
            listen.extend(DEFAULT_LISTEN.parse::<SocketAddr>());
        }
        let tls_listen = resolve_all(
            &self.tls_listen,
            self.tls_listen_env.as_deref(),
            "--tls-listen",
            lookup,
        )?;
        let irc_listen = resolve_all(
            &self.irc_listen,
            self.irc_listen_env.as_deref(),
            "--irc-listen",
            lookup,
        )?;
        let irc_tls_listen = resolve_all(
            &self.irc_tls_listen,
            self.irc_tls_listen_env.as_deref(),
            "--irc-tls-listen",
            lookup,
        )?;
        let web_listen = resolve_all(
            &self.web_listen,
            self.web_listen_env.as_deref(),
            "--web-listen",
            lookup,
        )?;
        let web_tls_listen = resolve_all(
            &self.web_tls_listen,
            self.web_tls_listen_env.as_deref(),
            "--web-tls-listen",
            lookup,
        )?;
        let motd = match &self.motd_file {
            Some(path) => Some(read_motd(path)?),
            None => None,
        };
        let server_name = self.server_name.clone().unwrap_or_else(default_server_name);
        let control_socket = self.control_socket.clone().or_else(|| {
            systemd_directory("RUNTIME_DIRECTORY").map(|dir| dir.join(crate::ops::control::SOCKET_NAME))
        });
        let state_dir = self
            .state_dir
            .clone()
            .or_else(|| systemd_directory("STATE_DIRECTORY"));
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => None,
        };
        let metrics_name = self.metrics_listen_env.as_deref().unwrap_or("--metrics-listen");
        let metrics_listen = match &self.metrics_listen {
            // The endpoint serves one address; the resolver's first is
            // the one it prefers.
            Some(addr) => addr.resolve_with(metrics_name, lookup)?.into_iter().next(),
            None => None,
        };
        Ok(Config {
            listen,
            tls_listen,
            irc_listen,
            irc_tls_listen,
            web_listen,
            web_tls_listen,
            web: crate::config::WebSettings {
                allow_origins: self.web_allow_origin.clone(),
                ..crate::config::WebSettings::default()
            },
            server_name,
            motd,
            control_socket,
            state_dir,
            tls,
            tls_handshake_timeout: crate::config::DEFAULT_HANDSHAKE_TIMEOUT,
            irc_keepalive: crate::config::Keepalive::default(),
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
            metrics_listen,
            stats_interval: (!self.stats_interval.is_zero()).then_some(self.stats_interval),
            threads: usize::from(self.threads),
            cluster: self.cluster.clone().map(|url| crate::cluster::Settings {
                url,
                optional: self.cluster_optional,
                claim_ttl: self.cluster_claim_ttl,
                timeout: self.cluster_timeout,
            }),
            test_listen: Vec::new(),
            test_fault: None,
        })
    }
}

/// The command that parses: [`Cli::command`], but with every option whose
/// variable is set to the empty string as if the variable were unset, so
/// that `CHAT_SERVER_LISTEN=` in an options file means the default rather
/// than an empty, invalid address. (clap reads each variable when the
/// command is built, so this is where to drop it; `--help` then shows no
/// `[env: ...]` for that option, the variable being ignored.)
fn parsing_command() -> clap::Command {
    Cli::command().mut_args(|arg| {
        let empty = arg
            .get_env()
            .and_then(std::env::var_os)
            .is_some_and(|value| value.is_empty());
        if empty {
            arg.env(None::<&str>)
        } else {
            arg
        }
    })
}

/// `error` from parsing `args` with `command`, reworded to name the
/// environment variable when the bad value came from one: clap names the
/// option (`'--rate <LINES_PER_SEC>'`), which the operator who wrote
/// `CHAT_SERVER_RATE=abc` in a unit never typed.
fn name_the_variable(mut command: clap::Command, args: &[OsString], error: clap::Error) -> clap::Error {
    if !matches!(error.kind(), ErrorKind::ValueValidation | ErrorKind::InvalidValue) {
        return error;
    }
    let (Some(ContextValue::String(option)), Some(ContextValue::String(value))) = (
        error.get(ContextKind::InvalidArg),
        error.get(ContextKind::InvalidValue),
    ) else {
        return error;
    };
    // Built, as for parsing, so that each option renders as in clap's
    // errors (`--rate <LINES_PER_SEC>`).
    command.build();
    let Some(arg) = command.get_arguments().find(|arg| arg.to_string() == *option) else {
        return error;
    };
    let Some(var) = arg.get_env().map(|var| var.to_string_lossy().into_owned()) else {
        return error;
    };
    // clap takes an option's variable only when the command line lacks the
    // option. Parsed again without any variable: if the command line holds
    // this option, or fails by itself, the bad value was on it.
    let without_env = Cli::command().mut_args(|arg| arg.env(None::<&str>));
    let on_command_line = without_env.try_get_matches_from(args).map_or(true, |matches| {
        matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine)
    });
    if on_command_line {
        return error;
    }
    let reason = error.source().map(|e| format!(": {e}")).unwrap_or_default();
    let message =
        format!("invalid value '{value}' in the environment variable {var} (for '{option}'){reason}");
    command.error(error.kind(), message)
}

/// Resolves a host name and port to addresses, as the system's resolver
/// does (`getaddrinfo`); tests give their own.
type Lookup = fn(&str, u16) -> io::Result<Vec<SocketAddr>>;

fn lookup_host(name: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok((name, port).to_socket_addrs()?.collect())
}

/// An address as the user wrote it for `--listen` or `--metrics-listen`:
/// an IP address or a host name, and a port. A name is resolved at start
/// ([`Cli::into_config`]); parsing never waits on a resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// What to listen on.
    pub host: Host,
    /// The port: the option's default when the address had none.
    pub port: u16,
}

/// The host part of a [`HostPort`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IPv4 or IPv6 address, used as it is.
    Ip(IpAddr),
    /// A host name, well formed (letters, digits, `-`, `_`, dots), to
    /// resolve.
    Name(String),
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(ip) => SocketAddr::new(*ip, self.port).fmt(f),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

/// Why the options cannot make a configuration: a host name that could not
/// be turned into an address to listen on, or a file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Occurs when the resolver fails for the name (no such name, or no
    /// resolver to ask).
    #[error("cannot resolve {option} {addr}: {source}")]
    Lookup {
        /// The option or variable it was given with.
        option: String,
        /// The address as written, with its port.
        addr: HostPort,
        /// The resolver's error.
        source: io::Error,
    },
    /// Occurs when the name resolves, but to no address.
    #[error("cannot resolve {option} {addr}: the name has no address")]
    NoAddress {
        /// The option or variable it was given with.
        option: String,
        /// The address as written, with its port.
        addr: HostPort,
    },
    /// Occurs when `--motd-file` cannot be read.
    #[error("cannot read --motd-file {}: {}", path.display(), crate::ops::logging::describe(source))]
    Motd {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl HostPort {
    /// Parses `HOST:PORT`, `HOST`, `IP`, `IPv4:PORT`, `[IPv6]:PORT` or
    /// `[IPv6]`, with `default_port` for the port not written. Spaces
    /// around it are ignored.
    ///
    /// # Errors
    /// A message for an empty address, a bare number (surely a port, which
    /// the resolver would take for an IPv4 address: `7878` is
    /// `0.0.30.198`), a bad port, an IPv6 address with a port but no
    /// brackets, and a host that is neither an IP address nor a well-formed
    /// name.
    pub fn parse(s: &str, default_port: u16) -> Result<HostPort, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("the address is empty".to_string());
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(HostPort {
                host: Host::Ip(addr.ip()),
                port: addr.port(),
            });
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(HostPort {
                host: Host::Ip(ip),
                port: default_port,
            });
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "'{s}' looks like a port; write HOST:PORT, e.g. 127.0.0.1:{s}"
            ));
        }
        if let Some(rest) = s.strip_prefix('[') {
            let Some((inside, after)) = rest.split_once(']') else {
                return Err(format!("'{s}' lacks the ']' after its IPv6 address"));
            };
            let ip: Ipv6Addr = inside
                .parse()
                .map_err(|_| format!("'{inside}' in brackets is not an IPv6 address"))?;
            let port = match after {
                "" => default_port,
                _ => match after.strip_prefix(':') {
                    Some(port) => parse_port(port)?,
                    None => return Err(format!("'{s}': only ':PORT' may follow ']'")),
                },
            };
            return Ok(HostPort {
                host: Host::Ip(IpAddr::V6(ip)),
                port,
            });
        }
        let (name, port) = match s.rsplit_once(':') {
            Some((name, _)) if name.contains(':') => {
                return Err(format!(
                "'{s}' is not an address; an IPv6 address with a port takes brackets: [::1]:{default_port}"
            ))
            }
            Some((name, port)) => (name, parse_port(port)?),
            None => (s, default_port),
        };
        check_host_name(name)?;
        Ok(HostPort {
            host: Host::Name(name.to_string()),
            port,
        })
    }

    /// The addresses to listen on: the IP address itself, or every address
    /// the name resolves to, in the resolver's order and without repeats.
    /// `option` names where the address was given, for the error.
    fn resolve_with(&self, option: &str, lookup: Lookup) -> Result<Vec<SocketAddr>, ConfigError> {
        let name = match &self.host {
            Host::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, self.port)]),
            Host::Name(name) => name,
        };
        let found = lookup(name, self.port).map_err(|source| ConfigError::Lookup {
            option: option.to_string(),
            addr: self.clone(),
            source,
        })?;
        let mut addrs: Vec<SocketAddr> = Vec::with_capacity(found.len());
        for addr in found {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        if addrs.is_empty() {
            return Err(ConfigError::NoAddress {
                option: option.to_string(),
                addr: self.clone(),
            });
        }
        Ok(addrs)
    }
}

/// A port number, 0 to 65535 (0: any free port, for tests).
fn parse_port(port: &str) -> Result<u16, String> {
    port.parse()
        .map_err(|_| format!("'{port}' is not a port (a number from 0 to 65535)"))
}

/// The most bytes in a host name (RFC 1035), and in one of its labels.
const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// Checks that `name` is a host name the resolver can be asked about:
/// dot-separated labels of letters, digits, `-` and `_` (which some
/// /etc/hosts files use), and a last label that is not all digits, which
/// the resolver would read as part of an IPv4 address (`1.2.3` is
/// `1.2.0.3`). A trailing dot is allowed.
fn check_host_name(name: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "'{name}' is neither an IP address nor a host name (letters, digits, '-', '_' and dots)"
        ))
    };
    let labels = name.strip_suffix('.').unwrap_or(name);
    if labels.is_empty() || labels.len() > MAX_NAME_LEN {
        return bad();
    }
    for label in labels.split('.') {
        let allowed = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if label.is_empty() || label.len() > MAX_LABEL_LEN || !allowed {
            return bad();
        }
    }
    if labels
        .rsplit('.')
        .next()
        .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad();
    }
    Ok(())
}

/// One `--listen` address (one of a comma-separated list).
fn listen_addr(s: &str) -> Result<HostPort, String> {
    HostPort::parse(s, DEFAULT_PORT)
}

/// The first directory systemd names in the variable `name`
/// (`RUNTIME_DIRECTORY`, `STATE_DIRECTORY`: colon-separated when a unit
/// has several).
fn systemd_directory(name: &str) -> Option<PathBuf> {
    let value = std::env::var_os(name)?;
    let first = value.to_str()?.split(':').next()?;
    (!first.is_empty()).then(|| PathBuf::from(first))
}

/// A command run against a server instead of being one.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Subcommand {
    /// Talks to a running server through its control socket: status, who,
    /// rooms, kick, ban, unban, bans, announce, reload, shutdown.
    Ctl(crate::ops::control::ctl::Ctl),
}

/// The systemd credential (`LoadCredential=tls-cert:PATH`) used as
/// `--tls-cert` when that is not given.
pub const TLS_CERT_CREDENTIAL: &str = "tls-cert";

/// The systemd credential used as `--tls-key` when that is not given.
pub const TLS_KEY_CREDENTIAL: &str = "tls-key";

/// The file of the systemd credential `name`, if systemd passed one: the
/// service manager copies each `LoadCredential=` file into the directory
/// `$CREDENTIALS_DIRECTORY` names, readable by the service alone, so a key
/// readable by root alone reaches a service running as a dynamic user.
fn systemd_credential(name: &str) -> Option<PathBuf> {
    let directory = std::env::var_os("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty())?;
    let path = PathBuf::from(directory).join(name);
    path.exists().then_some(path)
}

/// The port of an `--irc-listen` address written without one: IRC's.
pub const DEFAULT_IRC_PORT: u16 = 6667;

/// The port of an `--irc-tls-listen` address written without one: IRC's
/// over TLS.
pub const DEFAULT_IRC_TLS_PORT: u16 = 6697;

/// The most lines of `--motd-file` kept.
pub const MAX_MOTD_LINES: usize = 100;

/// The most characters of one line of `--motd-file` kept.
pub const MAX_MOTD_LINE: usize = 400;

/// The longest `--server-name`.
const MAX_SERVER_NAME: usize = 63;

/// One `--irc-listen` address.
fn irc_listen_addr(s: &str) -> Result<HostPort, String> {
    HostPort::parse(s, DEFAULT_IRC_PORT)
}

/// One `--irc-tls-listen` address.
fn irc_tls_listen_addr(s: &str) -> Result<HostPort, String> {
    HostPort::parse(s, DEFAULT_IRC_TLS_PORT)
}

/// The port of a `--web-listen` address written without one: the next
/// after the line protocol's plain and TLS ports.
pub const DEFAULT_WEB_PORT: u16 = 7880;

/// The port of a `--web-tls-listen` address written without one.
pub const DEFAULT_WEB_TLS_PORT: u16 = 7881;

/// One `--web-listen` address.
fn web_listen_addr(s: &str) -> Result<HostPort, String> {
    HostPort::parse(s, DEFAULT_WEB_PORT)
}

/// One `--web-tls-listen` address.
fn web_tls_listen_addr(s: &str) -> Result<HostPort, String> {
    HostPort::parse(s, DEFAULT_WEB_TLS_PORT)
}

/// One `--web-allow-origin`.
fn web_origin(s: &str) -> Result<crate::frontend::web::origin::Origin, String> {
    crate::frontend::web::origin::Origin::parse(s).map_err(|e| e.to_string())
}

/// A `--server-name`: what IRC replies carry as their source, so one word
/// of letters, digits, dots and dashes.
fn server_name(s: &str) -> Result<String, String> {
    if is_server_name(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not a server name (1 to {MAX_SERVER_NAME} letters, digits, '.' and '-')"
        ))
    }
}

fn is_server_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SERVER_NAME
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// This machine's host name if it makes a server name, or
/// [`crate::config::DEFAULT_SERVER_NAME`].
fn default_server_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| is_server_name(name))
        .unwrap_or_else(|| crate::config::DEFAULT_SERVER_NAME.to_string())
}

/// The message of the day: the file's lines, sanitized, at most
/// [`MAX_MOTD_LINES`] of [`MAX_MOTD_LINE`] characters.
fn read_motd(path: &std::path::Path) -> Result<Vec<String>, ConfigError> {
    let text = std::fs::read(path).map_err(|source| ConfigError::Motd {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&text);
    Ok(text
        .lines()
        .take(MAX_MOTD_LINES)
        .map(|line| {
            chat_protocol::text::sanitize(line)
                .chars()
                .take(MAX_MOTD_LINE)
                .collect()
        })
        .collect())
}

/// Every address `addrs` resolve to, named in errors by the variable they
/// came from or by `option`.
fn resolve_all(
    addrs: &[HostPort],
    env: Option<&str>,
    option: &str,
    lookup: Lookup,
) -> Result<Vec<SocketAddr>, ConfigError> {
    let name = env.unwrap_or(option);
    let mut resolved = Vec::new();
    for addr in addrs {
        resolved.extend(addr.resolve_with(name, lookup)?);
    }
    Ok(resolved)
}

/// One `--tls-listen` address.
fn tls_listen_addr(s: &str) -> Result<HostPort, String> {
    HostPort::parse(s, DEFAULT_TLS_PORT)
}

/// The `--metrics-listen` address.
fn metrics_addr(s: &str) -> Result<HostPort, String> {
    HostPort::parse(s, DEFAULT_METRICS_PORT)
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

/// Reads a `--cluster` URL (see [`RedisUrl::parse`]). Its own parser, not
/// a function: clap's error for a bad value quotes the value, and this one
/// may hold the Redis password, which is never printed.
#[derive(Debug, Clone, Copy)]
struct ClusterUrlParser;

impl clap::builder::TypedValueParser for ClusterUrlParser {
    type Value = RedisUrl;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<RedisUrl, clap::Error> {
        let refuse = |why: String| {
            cmd.clone().error(
                ErrorKind::InvalidValue,
                format!("invalid value for '--cluster <URL>' (or CHAT_SERVER_CLUSTER): the Redis URL {why}"),
            )
        };
        let text = value.to_str().ok_or_else(|| refuse("is not UTF-8".to_string()))?;
        RedisUrl::parse(text).map_err(|e| refuse(e.to_string()))
    }
}

/// The most `--cluster-claim-ttl` may be: a day.
const MAX_CLAIM_TTL_SECS: u64 = 24 * 3600;

/// The most `--cluster-timeout` may be: a minute.
const MAX_CLUSTER_TIMEOUT_MS: u64 = 60_000;

fn claim_ttl(s: &str) -> Result<Duration, String> {
    let min = crate::cluster::MIN_CLAIM_TTL.as_secs();
    match s.parse::<u64>() {
        Ok(n) if (min..=MAX_CLAIM_TTL_SECS).contains(&n) => Ok(Duration::from_secs(n)),
        Ok(_) => Err(format!(
            "must be a number of seconds from {min} to {MAX_CLAIM_TTL_SECS}"
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn cluster_timeout(s: &str) -> Result<Duration, String> {
    let min = u64::try_from(crate::cluster::MIN_TIMEOUT.as_millis()).unwrap_or(100);
    match s.parse::<u64>() {
        Ok(n) if (min..=MAX_CLUSTER_TIMEOUT_MS).contains(&n) => Ok(Duration::from_millis(n)),
        Ok(_) => Err(format!(
            "must be a number of milliseconds from {min} to {MAX_CLUSTER_TIMEOUT_MS}"
        )),
        Err(e) => Err(e.to_string()),
    }
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

    /// A resolver that knows `localhost` (twice over, as some resolvers
    /// answer), `empty` (no address) and nothing else.
    fn fake_lookup(name: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        match name {
            "localhost" => Ok(vec![
                SocketAddr::new([127, 0, 0, 1].into(), port),
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
                SocketAddr::new([127, 0, 0, 1].into(), port),
            ]),
            "empty" => Ok(Vec::new()),
            _ => Err(io::Error::other("Name or service not known")),
        }
    }

    fn config_with_fake_lookup(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["chat-server"];
        all.extend_from_slice(args);
        Cli::try_parse_args_from(all)
            .unwrap()
            .into_config_with(false, fake_lookup)
    }

    fn host_port(s: &str) -> Result<String, String> {
        HostPort::parse(s, DEFAULT_PORT).map(|addr| addr.to_string())
    }

    #[test]
    fn the_default_port_is_the_default_addresses_port() {
        assert_eq!(DEFAULT_LISTEN.parse::<SocketAddr>().unwrap().port(), DEFAULT_PORT);
    }

    #[test]
    fn an_address_may_be_a_host_name_and_may_leave_out_the_port() {
        for (written, parsed) in [
            ("localhost:7902", "localhost:7902"),
            ("localhost", "localhost:7878"),
            ("chat.example.org.", "chat.example.org.:7878"),
            ("my_host-2", "my_host-2:7878"),
            ("127.0.0.1", "127.0.0.1:7878"),
            ("0.0.0.0:1", "0.0.0.0:1"),
            ("::", "[::]:7878"),
            ("::1", "[::1]:7878"),
            ("[::1]", "[::1]:7878"),
            ("[::1]:9", "[::1]:9"),
            (" 127.0.0.1:1 ", "127.0.0.1:1"),
        ] {
            assert_eq!(host_port(written).as_deref(), Ok(parsed), "{written:?}");
        }
        assert_eq!(
            HostPort::parse("localhost", DEFAULT_METRICS_PORT).unwrap().port,
            9187,
            "--metrics-listen has its own default port"
        );
    }

    #[test]
    fn a_malformed_address_says_what_is_wrong_with_it() {
        for (written, message) in [
            ("", "the address is empty"),
            (
                "7902",
                "'7902' looks like a port; write HOST:PORT, e.g. 127.0.0.1:7902",
            ),
            (
                "localhost:http",
                "'http' is not a port (a number from 0 to 65535)",
            ),
            ("localhost:", "'' is not a port (a number from 0 to 65535)"),
            (
                "127.0.0.1:65536",
                "'65536' is not a port (a number from 0 to 65535)",
            ),
            ("[::1", "'[::1' lacks the ']' after its IPv6 address"),
            ("[::1]7878", "'[::1]7878': only ':PORT' may follow ']'"),
            ("[localhost]:1", "'localhost' in brackets is not an IPv6 address"),
            (
                "fe80::1::2:7878",
                "'fe80::1::2:7878' is not an address; an IPv6 address with a port takes brackets: [::1]:7878",
            ),
        ] {
            assert_eq!(host_port(written), Err(message.to_string()), "{written:?}");
        }
        for not_a_name in [
            "no such",
            "a..b",
            ".a",
            "a/b",
            "1.2.3",
            "256.1.1.1",
            "é.example",
            &"a".repeat(64),
        ] {
            assert_eq!(
                host_port(not_a_name),
                Err(format!(
                    "'{not_a_name}' is neither an IP address nor a host name (letters, digits, '-', '_' and dots)"
                ))
            );
        }
    }

    #[test]
    fn addresses_separated_by_commas_may_have_spaces_around_them() {
        let config = config_with_fake_lookup(&["--listen", "127.0.0.1:1, [::1]:2 ,localhost:3"]).unwrap();
        assert_eq!(
            config.listen,
            ["127.0.0.1:1", "[::1]:2", "127.0.0.1:3", "[::1]:3"].map(|a| a.parse::<SocketAddr>().unwrap())
        );
    }

    #[test]
    fn a_host_name_listens_on_each_address_it_resolves_to_once() {
        let config = config_with_fake_lookup(&["--listen", "localhost", "--listen", "127.0.0.1:0"]).unwrap();
        assert_eq!(
            config.listen,
            ["127.0.0.1:7878", "[::1]:7878", "127.0.0.1:0"].map(|a| a.parse::<SocketAddr>().unwrap())
        );
        // Repeats of the option are kept: two port-0 listeners are two ports.
        let config = config_with_fake_lookup(&["--listen", "127.0.0.1:0,127.0.0.1:0"]).unwrap();
        assert_eq!(config.listen.len(), 2);
    }

    #[test]
    fn metrics_listen_takes_a_host_name_and_serves_its_first_address() {
        let config = config_with_fake_lookup(&["--metrics-listen", "localhost"]).unwrap();
        assert_eq!(config.metrics_listen, Some("127.0.0.1:9187".parse().unwrap()));
        let config = config_with_fake_lookup(&["--metrics-listen", "[::1]"]).unwrap();
        assert_eq!(config.metrics_listen, Some("[::1]:9187".parse().unwrap()));
    }

    #[test]
    fn a_name_that_does_not_resolve_is_a_start_error_naming_the_option() {
        for (args, message) in [
            (
                &["--listen", "127.0.0.1:1", "--listen", "nosuch.invalid"][..],
                "cannot resolve --listen nosuch.invalid:7878: Name or service not known",
            ),
            (
                &["--listen", "empty:5"],
                "cannot resolve --listen empty:5: the name has no address",
            ),
            (
                &["--metrics-listen", "nosuch.invalid"],
                "cannot resolve --metrics-listen nosuch.invalid:9187: Name or service not known",
            ),
        ] {
            let error = config_with_fake_lookup(args).unwrap_err();
            assert_eq!(error.to_string(), message);
        }
        // Given in the environment, the error names the variable.
        let mut cli = Cli::try_parse_args_from(["chat-server", "--listen", "nosuch.invalid"]).unwrap();
        cli.listen_env = Some("CHAT_SERVER_LISTEN".to_string());
        assert_eq!(
            cli.into_config_with(false, fake_lookup).unwrap_err().to_string(),
            "cannot resolve CHAT_SERVER_LISTEN nosuch.invalid:7878: Name or service not known"
        );
    }

    #[test]
    fn a_value_on_the_command_line_is_named_as_the_option() {
        let error = Cli::try_parse_args_from(["chat-server", "--rate", "abc"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(
            error
                .to_string()
                .starts_with("error: invalid value 'abc' for '--rate <LINES_PER_SEC>'"),
            "{error}"
        );
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let config = Cli::try_parse_from(["chat-server"])
            .unwrap()
            .into_config(false)
            .unwrap();
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
        .into_config(false)
        .unwrap();
        assert_eq!(config.metrics_listen, Some("127.0.0.1:9187".parse().unwrap()));
        assert_eq!(config.stats_interval, None);
    }

    #[test]
    fn socket_activation_binds_only_the_addresses_given() {
        let config = Cli::try_parse_from(["chat-server"])
            .unwrap()
            .into_config(true)
            .unwrap();
        assert_eq!(config.listen, [], "no default address next to passed sockets");
        let config = Cli::try_parse_from(["chat-server", "--listen", "[::1]:9"])
            .unwrap()
            .into_config(true)
            .unwrap();
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
        .into_config(false)
        .unwrap();
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
        .into_config(false)
        .unwrap();
        assert_eq!(config.listen.len(), 2);
        assert_eq!((config.max_line, config.max_clients), (10, 3));
        assert_eq!(config.shutdown_grace, Duration::from_millis(500));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["chat-server", "--max-line", "0"][..],
            &["chat-server", "--listen", "nowhere:http"],
            &["chat-server", "--listen", "127.0.0.1:65536"],
            &["chat-server", "--listen", "7878"],
            &["chat-server", "--listen", "no such host"],
            &["chat-server", "--listen", ""],
            &["chat-server", "--listen", "127.0.0.1:1,"],
            &["chat-server", "--metrics-listen", "[::1"],
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

    #[test]
    fn a_bad_cluster_url_is_a_usage_error_that_does_not_print_the_password() {
        for bad in [
            "http://:hunter2@h:1",
            "redis://user:hunter2@h:1",
            "redis://:hunter2@h:0",
        ] {
            let error = Cli::try_parse_args_from(["chat-server", "--cluster", bad]).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{bad}");
            let text = error.to_string();
            assert!(text.contains("--cluster"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }

    #[test]
    fn the_cluster_options_reach_the_configuration() {
        let config = config_with_fake_lookup(&[
            "--cluster",
            "redis://:pw@127.0.0.1:6380/3",
            "--cluster-optional",
            "--cluster-claim-ttl",
            "3",
            "--cluster-timeout",
            "500",
        ])
        .unwrap();
        let cluster = config.cluster.unwrap();
        assert_eq!(cluster.url.to_string(), "redis://:***@127.0.0.1:6380/3");
        assert!(cluster.optional);
        assert_eq!(cluster.claim_ttl, Duration::from_secs(3));
        assert_eq!(cluster.timeout, Duration::from_millis(500));
        assert!(config_with_fake_lookup(&[]).unwrap().cluster.is_none());
        for (option, bad) in [("--cluster-claim-ttl", "1"), ("--cluster-timeout", "99")] {
            let error =
                Cli::try_parse_args_from(["chat-server", "--cluster", "redis://h", option, bad]).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{option} {bad}");
        }
    }
}
