//! The daemon's settings, as the library takes them.
//!
//! The command line ([`crate::cli`]) fills this in; tests build it
//! directly. Each limit says why it has its default.

use std::net::SocketAddr;
use std::time::Duration;

/// The server's name in IRC replies when `--server-name` is not given and
/// the host name cannot be read.
pub const DEFAULT_SERVER_NAME: &str = "chat-server";

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

/// Default for [`Config::sendq`]: 1 MiB holds about 16,000 ordinary chat
/// lines, minutes of a busy room, so a client that is merely slow for a
/// moment never hits it, while one that stopped reading costs at most this
/// much memory before it is dropped.
pub const DEFAULT_SENDQ: usize = 1024 * 1024;

/// Default for [`Config::rate`]: 20 lines a second is faster than anyone
/// types or pastes by hand, and slow enough that one flooder cannot take
/// much of the hub's time.
pub const DEFAULT_RATE: u32 = 20;

/// Default for [`Config::burst`]: room for a pasted block of 50 lines at
/// once before the rate applies.
pub const DEFAULT_BURST: u32 = 50;

/// Default for [`Config::max_per_ip`]: enough for a household or an office
/// behind one NAT address, few enough that one host cannot take every slot.
pub const DEFAULT_MAX_PER_IP: usize = 32;

/// Default for [`Config::max_per_net`]: four hosts' worth of
/// [`DEFAULT_MAX_PER_IP`] from one network (an IPv4 /24, an IPv6 /64):
/// room for a busy office, while one IPv6 host, which owns a whole /64 of
/// addresses, cannot take more than this by using many of them.
pub const DEFAULT_MAX_PER_NET: usize = 128;

/// Default for [`Config::net_prefix_v4`]: a /24 is what one site usually
/// has.
pub const DEFAULT_NET_PREFIX_V4: u8 = 24;

/// Default for [`Config::net_prefix_v6`]: a /64 is one LAN, often one
/// host's to use as it likes.
pub const DEFAULT_NET_PREFIX_V6: u8 = 64;

/// Default for [`Config::connect_rate`]: two new connections a second from
/// one address, on average, is more than any person reconnects, and makes
/// holding ten thousand sockets open from a handful of hosts take hours.
pub const DEFAULT_CONNECT_RATE: u32 = 2;

/// Default for [`Config::connect_burst`]: a household or a script may
/// open this many at once (after a restart, say) before the rate applies.
pub const DEFAULT_CONNECT_BURST: u32 = 16;

/// How many times an address's throttle a whole network gets: the network
/// throttle stops one host with many addresses, not a site's few hosts.
pub const NET_THROTTLE_FACTOR: u32 = 4;

/// How many times an address's throttle its connections to the web
/// listeners get (a throttle of their own): one page load is five
/// connections, each closed once answered.
pub const WEB_THROTTLE_FACTOR: u32 = 8;

/// Default for [`Config::tls_handshake_timeout`]: ten seconds is long
/// for any client on any network to say hello, and short enough that
/// connections that never do cannot hold places for long.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default for [`Config::silent_grace`]: a person who just connected gets
/// this long to say something before a newcomer on a full server may take
/// their place.
pub const DEFAULT_SILENT_GRACE: Duration = Duration::from_secs(10);

/// Default for [`Config::max_closing`] when nothing works it out from the
/// descriptor limit (tests, a library user).
pub const DEFAULT_MAX_CLOSING: usize = 1024;

/// Default for [`Config::quiet_above`]: a room of 100 can follow who comes
/// and goes; past that the notices are noise, and their cost grows with
/// the square of the room's size.
pub const DEFAULT_QUIET_ABOVE: usize = 100;

/// Default for [`Config::history`]: a hundred lines is the last hour or
/// two of a busy room, what someone coming back to it wants to read.
pub const DEFAULT_HISTORY: usize = 100;

/// Default for [`Config::replay`]: twenty lines on joining a room fit on a
/// screen with room to spare; `/history` shows more.
pub const DEFAULT_REPLAY: usize = 20;

/// Default for [`Config::history_bytes`]: 64 MiB holds about 300,000
/// lines of ordinary chat over all rooms, a few minutes of RSS on a small
/// machine, and bounds what creating rooms in a loop can make the server
/// keep.
pub const DEFAULT_HISTORY_BYTES: usize = 64 * 1024 * 1024;

/// Default for [`Config::stats_interval`]: a line a minute shows the trend
/// in the log without drowning anything else out.
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(60);

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to listen on (used by [`crate::Server::bind`] and
    /// [`crate::Server::bind_with`]).
    pub listen: Vec<SocketAddr>,
    /// Addresses to listen on for the line protocol over TLS.
    pub tls_listen: Vec<SocketAddr>,
    /// Addresses to listen on for IRC.
    pub irc_listen: Vec<SocketAddr>,
    /// Addresses to listen on for IRC over TLS.
    pub irc_tls_listen: Vec<SocketAddr>,
    /// Addresses to serve the web page and its WebSocket on.
    pub web_listen: Vec<SocketAddr>,
    /// Addresses to serve the web page and its WebSocket on over TLS.
    pub web_tls_listen: Vec<SocketAddr>,
    /// The web listeners' settings.
    pub web: WebSettings,
    /// The server's name in IRC replies (`--server-name`).
    pub server_name: String,
    /// The message of the day IRC clients are shown, line by line
    /// (`--motd-file`, read at start); `None` for none.
    pub motd: Option<Vec<String>>,
    /// The control socket `chat-server ctl` talks to (`--control-socket`);
    /// `None` for none.
    pub control_socket: Option<std::path::PathBuf>,
    /// Where the server keeps what outlives it: the server bans
    /// (`--state-dir`); `None` keeps them in memory only.
    pub state_dir: Option<std::path::PathBuf>,
    /// The certificate and key TLS listeners serve; needed when there are
    /// any.
    pub tls: Option<crate::net::tls::TlsFiles>,
    /// How long a client on a TLS listener has to finish its handshake.
    /// Not a command-line option ([`DEFAULT_HANDSHAKE_TIMEOUT`]); tests
    /// shorten it.
    pub tls_handshake_timeout: Duration,
    /// IRC connections' registration and PING timing. Not command-line
    /// options ([`Keepalive::default`]); tests shorten them.
    pub irc_keepalive: Keepalive,
    /// Longest line a client may send, in bytes, without its line end.
    pub max_line: usize,
    /// Most clients connected at once; one more is told `!! server full`
    /// and closed.
    pub max_clients: usize,
    /// How long shutdown waits for queued output to be written.
    pub shutdown_grace: Duration,
    /// Most bytes queued to one client; a client whose queue would grow
    /// past this is dropped as a slow consumer.
    pub sendq: usize,
    /// Lines per second each client may send on average (0 = no limit).
    /// Past that the server stops reading from it until it may go on, so
    /// nothing is lost and TCP slows the sender down.
    pub rate: u32,
    /// Lines a client may send at once before [`Config::rate`] applies.
    pub burst: u32,
    /// Most connections from one IP address (0 = no limit).
    pub max_per_ip: usize,
    /// Most connections from one network (0 = no limit): addresses that
    /// share their first [`Config::net_prefix_v4`] or
    /// [`Config::net_prefix_v6`] bits.
    pub max_per_net: usize,
    /// The IPv4 prefix length that makes a network (0 to 32).
    pub net_prefix_v4: u8,
    /// The IPv6 prefix length that makes a network (0 to 128).
    pub net_prefix_v6: u8,
    /// New connections a second one address may open on average (0 = no
    /// throttle); a network gets [`NET_THROTTLE_FACTOR`] times as many.
    pub connect_rate: u32,
    /// New connections one address may open at once before
    /// [`Config::connect_rate`] applies.
    pub connect_burst: u32,
    /// Most sockets that may still be closing (their client left the chat,
    /// its last lines still being written) on top of the clients: each
    /// holds a descriptor. Worked out from the descriptor limit at start;
    /// past it the oldest closing sockets are closed at once.
    pub max_closing: usize,
    /// On a full server, how long a connection that never said anything
    /// is safe from making room for a newcomer. Not a command-line option
    /// ([`DEFAULT_SILENT_GRACE`]); tests shorten it.
    pub silent_grace: Duration,
    /// Disconnect a client that sent nothing for this long (None = never).
    pub idle_timeout: Option<Duration>,
    /// Rooms with more members than this are not told of joins, leaves and
    /// nick changes (0 = always tell); `/who` still lists everyone.
    pub quiet_above: usize,
    /// Lines each room remembers, chat lines and actions with the time
    /// they were said (0 = no history).
    pub history: usize,
    /// Lines replayed to whoever joins a room, and what `/history` shows
    /// when not told how many.
    pub replay: usize,
    /// Most bytes all rooms' histories together may cost; past it, empty
    /// rooms lose theirs first, least recently used first.
    pub history_bytes: usize,
    /// Where to serve Prometheus metrics over HTTP (`GET /metrics`); None =
    /// nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// How often to log a line of figures at info level (None = never).
    pub stats_interval: Option<Duration>,
    /// I/O threads serving the sockets (0 = one per CPU core); see
    /// [`Config::io_threads`].
    pub threads: usize,
    /// The cluster (`--cluster` and its companions); `None` runs alone and
    /// never contacts Redis.
    pub cluster: Option<crate::cluster::Settings>,
    /// A test seam, never set by the daemon: addresses for listeners whose
    /// clients speak [`crate::frontend::Protocol::Test`], so that tests can
    /// mix two front ends in a room.
    #[doc(hidden)]
    pub test_listen: Vec<SocketAddr>,
    /// A test seam, never set by the daemon: makes one of the server's
    /// threads panic when a client sends a given line, so that tests can
    /// prove what a dead thread does to the server (it stops it).
    #[doc(hidden)]
    pub test_fault: Option<TestFault>,
}

/// Which thread [`Config::test_fault`] makes panic, and on which line.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestFault {
    /// The hub, when it handles this chat line.
    Hub(String),
    /// The I/O thread that reads this line.
    Io(String),
}

impl Config {
    /// How many I/O threads to run: [`Config::threads`], or one per CPU
    /// core the process may use when that is 0. Each has its own poll and
    /// share of the connections, so the write system calls of a big room's
    /// fan-out are spread over the cores.
    pub fn io_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

/// Default for [`WebSettings::request_timeout`]: a browser sends its
/// request at once; ten seconds covers any network, and a connection that
/// never finishes its request cannot hold a place for long.
pub const DEFAULT_WEB_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the web listeners need beyond their addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    /// Origins, besides the server's own, whose pages may open a
    /// WebSocket (`--web-allow-origin`; see
    /// [`crate::frontend::web::origin`]).
    pub allow_origins: Vec<crate::frontend::web::origin::Origin>,
    /// How long a connection has to send a complete request, and then
    /// each next one. Not a command-line option
    /// ([`DEFAULT_WEB_REQUEST_TIMEOUT`]); tests shorten it.
    pub request_timeout: Duration,
    /// When an open WebSocket is pinged, and closed for not answering.
    /// `register_within` is not used: the upgrade is the arrival. Not
    /// command-line options; tests shorten them.
    pub keepalive: Keepalive,
}

impl Default for WebSettings {
    /// A ping after 30 s of quiet, 30 s to answer: well within the 60 s
    /// after which common proxies (nginx's `proxy_read_timeout`) drop an
    /// idle WebSocket, and a browser that slept is noticed within a
    /// minute.
    fn default() -> Self {
        WebSettings {
            allow_origins: Vec::new(),
            request_timeout: DEFAULT_WEB_REQUEST_TIMEOUT,
            keepalive: Keepalive {
                register_within: DEFAULT_WEB_REQUEST_TIMEOUT,
                ping_after: Duration::from_secs(30),
                ping_timeout: Duration::from_secs(30),
            },
        }
    }
}

/// When an IRC connection is sent away for silence: IRC clients expect the
/// server to PING them when they are quiet and to close a connection that
/// does not answer, and a connection that never registers holds a place
/// for nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// A connection must have registered this long after it came.
    pub register_within: Duration,
    /// After this long without a line, the server sends a PING.
    pub ping_after: Duration,
    /// A PING not answered (by any line) for this long ends the
    /// connection.
    pub ping_timeout: Duration,
}

impl Default for Keepalive {
    /// 60 s to register; a PING after 120 s of quiet, 60 s to answer it.
    fn default() -> Self {
        Keepalive {
            register_within: Duration::from_secs(60),
            ping_after: Duration::from_secs(120),
            ping_timeout: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// How many listening sockets the server binds itself.
    pub fn listener_count(&self) -> usize {
        self.listen.len()
            + self.tls_listen.len()
            + self.irc_listen.len()
            + self.irc_tls_listen.len()
            + self.web_listen.len()
            + self.web_tls_listen.len()
            + self.test_listen.len()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().into_iter().collect(),
            tls_listen: Vec::new(),
            irc_listen: Vec::new(),
            irc_tls_listen: Vec::new(),
            web_listen: Vec::new(),
            web_tls_listen: Vec::new(),
            web: WebSettings::default(),
            server_name: DEFAULT_SERVER_NAME.to_string(),
            motd: None,
            control_socket: None,
            state_dir: None,
            tls: None,
            tls_handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            irc_keepalive: Keepalive::default(),
            max_line: chat_protocol::DEFAULT_MAX_LINE,
            max_clients: DEFAULT_MAX_CLIENTS,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            sendq: DEFAULT_SENDQ,
            rate: DEFAULT_RATE,
            burst: DEFAULT_BURST,
            max_per_ip: DEFAULT_MAX_PER_IP,
            max_per_net: DEFAULT_MAX_PER_NET,
            net_prefix_v4: DEFAULT_NET_PREFIX_V4,
            net_prefix_v6: DEFAULT_NET_PREFIX_V6,
            connect_rate: DEFAULT_CONNECT_RATE,
            connect_burst: DEFAULT_CONNECT_BURST,
            max_closing: DEFAULT_MAX_CLOSING,
            silent_grace: DEFAULT_SILENT_GRACE,
            idle_timeout: None,
            quiet_above: DEFAULT_QUIET_ABOVE,
            history: DEFAULT_HISTORY,
            replay: DEFAULT_REPLAY,
            history_bytes: DEFAULT_HISTORY_BYTES,
            metrics_listen: None,
            stats_interval: Some(DEFAULT_STATS_INTERVAL),
            threads: 0,
            cluster: None,
            test_listen: Vec::new(),
            test_fault: None,
        }
    }
}
