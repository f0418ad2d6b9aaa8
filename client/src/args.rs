//! The command line, and the defaults and checks on its values.
//!
//! Values are checked here, while clap can still answer with a usage error
//! (exit 2): a nick or room that the server would refuse is refused before
//! connecting, with the protocol crate's own rules and wording, and an
//! address is split into its host and port ([`ServerAddr`]); a missing port
//! becomes the default one for the transport, 7878 in clear or 7879 with
//! TLS ([`Args::address`]), and the host is also the name a TLS
//! certificate must be valid for. The options that choose the client's
//! behaviour (`--send`, `--reconnect`, `--allow-guest`, `--max-line`,
//! `--timestamps`, `--tls`, `--ca`) are plain values; what they do is in
//! the binary's own modules (the session, the TLS set-up).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use chat_protocol::{Nick, RoomName};
use clap::{Parser, ValueHint};

/// The port chat-server listens on by default.
pub const DEFAULT_PORT: u16 = 7878;

/// The port chat-server serves TLS on by default (its `--tls-listen`).
pub const DEFAULT_TLS_PORT: u16 = 7879;

/// Connects to a chat-server, sends each line of standard input to it and
/// prints each line it sends, exactly as sent.
#[derive(Debug, Parser)]
#[command(
    name = "chat-client",
    // The version with the git commit, from build.rs.
    version = env!("CHAT_BUILD_VERSION"),
    long_about = "Connects to a chat-server, sends each line of standard input to it and prints \
                  each line it sends.\n\n\
                  In a terminal (standard input and output both terminals) it is an interactive \
                  client: line editing with history, incoming lines printed above the line being \
                  typed, a prompt with your nick and room, colors (none when NO_COLOR is set), and \
                  your own messages shown the way others see them. Ctrl-C or Ctrl-D quits.\n\n\
                  From a script it prints the server's lines exactly as sent, with no prompt and \
                  no colors. Lines starting with / are commands (/help lists them). At the end of \
                  standard input, or after a /quit line, the client sends /quit if needed, waits \
                  up to 5 seconds for the server to close the connection and exits, so that \
                  `printf 'hi\\n' | chat-client --nick bot` works in scripts, and so does \
                  `chat-client --nick ci --send 'build finished'`.",
    after_help = "Exit status: 0 after a clean quit (or when standard output is closed), 1 when the \
                  server cannot be reached (or standard input or output fails, or the TLS \
                  handshake fails for another reason than the certificate, or the --ca file or \
                  the system's trusted certificates cannot be used), 2 for a usage error, 3 \
                  when the connection is lost before the user quit (with --reconnect: when \
                  lines could not be delivered before the user gave up), 4 when the server \
                  refused --nick or --room (or did not answer them within 10 seconds) and \
                  nothing was sent; interactive mode stays connected instead, and --allow-guest \
                  goes on without them; 5 when, with --tls, the server's certificate cannot be \
                  verified (unknown issuer, not valid for the host name, expired or not yet \
                  valid), and nothing was sent."
)]
pub struct Args {
    /// Server address: HOST:PORT, HOST, an IPv4 address or an [IPv6] address; the port defaults
    /// to 7878, or to 7879 with --tls. Each address HOST resolves to is tried in turn. With --tls,
    /// HOST is the name (or IP address) the server's certificate must be valid for.
    #[arg(value_name = "ADDR", default_value = "127.0.0.1", value_parser = ServerAddr::parse)]
    pub addr: ServerAddr,

    /// Nick to take once connected (sends /nick NAME first): 1-24 letters, digits, '_' or '-',
    /// starting with a letter.
    #[arg(long, value_name = "NAME", value_parser = parse_nick)]
    pub nick: Option<Nick>,

    /// Room to join once connected (sends /join ROOM after /nick); the leading '#' is optional.
    #[arg(long, value_name = "ROOM", value_parser = parse_room)]
    pub room: Option<RoomName>,

    /// When the server refuses --nick (the nick is taken) or --room, go on anyway, as the guest
    /// nick it gave or in the lobby. Without it, no line is sent until the server has confirmed
    /// both, and a refusal sends nothing and exits with status 4 (from a terminal: stays
    /// connected and says so, sending nothing typed before the refusal). The same on reconnecting.
    #[arg(long)]
    pub allow_guest: bool,

    /// Longest line to send, in bytes (UTF-8, not counting the line end; a leading // or a /me or
    /// /msg NICK counts): the server's --max-line. A longer line is not sent, and an error says
    /// so; nothing is shown as said. If the server refuses a line as too long, its own limit is
    /// used from then on.
    #[arg(long, value_name = "BYTES", default_value_t = chat_protocol::DEFAULT_MAX_LINE, value_parser = parse_max_line)]
    pub max_line: usize,

    /// Seconds to wait for each connection attempt (fractions allowed), and with --tls for the
    /// handshake after it.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_timeout)]
    pub connect_timeout: Duration,

    /// Send TEXT as a line, then quit, without reading standard input. Repeat the option to send
    /// several lines, in order (for cron jobs and CI hooks).
    #[arg(long = "send", value_name = "TEXT")]
    pub send: Vec<String>,

    /// When the connection is lost, reconnect after growing, jittered delays (under 0.5 s at
    /// first, doubling up to 30 s at most), take the same nick and rejoin the same room. Lines
    /// typed meanwhile are sent once connected again.
    #[arg(long)]
    pub reconnect: bool,

    /// Start each line shown with the local time, as [HH:MM].
    #[arg(long)]
    pub timestamps: bool,

    /// Connect with TLS (the server's --tls-listen; port 7879 unless ADDR has one). The server's
    /// certificate must be valid for HOST and signed by a CA the system trusts (on Debian, the
    /// ca-certificates package; SSL_CERT_FILE or SSL_CERT_DIR name others), or by one in --ca.
    /// A certificate that cannot be verified ends the client with status 5.
    #[arg(long)]
    pub tls: bool,

    /// Trust the CA certificates in FILE (PEM, one or more; a self-signed server certificate
    /// itself will do) instead of the system's. Implies --tls.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub ca: Option<PathBuf>,
}

impl Args {
    /// Whether to speak TLS: `--tls`, or `--ca`, which implies it (a CA
    /// to trust has no use in clear, and refusing the pair would only make
    /// the user type `--tls` again).
    pub fn tls(&self) -> bool {
        self.tls || self.ca.is_some()
    }

    /// The address to connect to, `HOST:PORT`, with the default port of the
    /// transport when ADDR named none.
    pub fn address(&self) -> String {
        let default = if self.tls() {
            DEFAULT_TLS_PORT
        } else {
            DEFAULT_PORT
        };
        self.addr.with_port(default)
    }
}

/// The server's address as written: a host and, if one was given, a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    /// A host name or an IP address, without the brackets of an IPv6
    /// address: what is resolved, and what a TLS certificate must name.
    pub host: String,
    /// The port written, if any; [`Args::address`] fills in the default.
    pub port: Option<u16>,
}

impl ServerAddr {
    /// Splits an address into host and port: `localhost:9000`,
    /// `localhost`, `127.0.0.1`, `::1`, `[::1]`, `[::1]:9000`.
    ///
    /// # Errors
    /// A message for an empty address or host, a port that is not a number
    /// from 1 to 65535, an IPv6 address with a port but no brackets, and a
    /// bare number, which would otherwise be resolved as an IPv4 address
    /// (`7878` is `0.0.30.198`) when the user surely meant a port.
    pub fn parse(addr: &str) -> Result<ServerAddr, String> {
        if addr.is_empty() {
            return Err("the address is empty".to_string());
        }
        if let Ok(socket) = addr.parse::<SocketAddr>() {
            return ServerAddr::new(socket.ip().to_string(), Some(socket.port()));
        }
        if let Ok(ip) = addr.parse::<IpAddr>() {
            return ServerAddr::new(ip.to_string(), None);
        }
        if addr.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "'{addr}' looks like a port; write HOST:PORT, e.g. 127.0.0.1:{addr}"
            ));
        }
        if let Some(bracketed) = addr.strip_prefix('[') {
            let (inside, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("'{addr}' lacks the closing ]"))?;
            if inside.parse::<Ipv6Addr>().is_err() {
                return Err(format!("'{inside}' in brackets is not an IPv6 address"));
            }
            return match after {
                "" => ServerAddr::new(inside.to_string(), None),
                _ => match after.strip_prefix(':') {
                    Some(port) => ServerAddr::new(inside.to_string(), Some(parse_port(port)?)),
                    None => Err(format!("'{addr}': only :PORT may follow [ADDRESS]")),
                },
            };
        }
        match addr.rsplit_once(':') {
            None => ServerAddr::new(addr.to_string(), None),
            Some((host, _)) if host.contains(':') => Err(format!(
                "'{addr}' is not an IPv6 address; with a port, write it as [ADDRESS]:PORT"
            )),
            Some((host, port)) => ServerAddr::new(host.to_string(), Some(parse_port(port)?)),
        }
    }

    fn new(host: String, port: Option<u16>) -> Result<ServerAddr, String> {
        if host.is_empty() {
            return Err("the host is missing; write HOST:PORT, e.g. 127.0.0.1:7878".to_string());
        }
        Ok(ServerAddr { host, port })
    }

    /// `HOST:PORT` (`[HOST]:PORT` for an IPv6 address), with `default` when
    /// no port was written.
    pub fn with_port(&self, default: u16) -> String {
        let port = self.port.unwrap_or(default);
        if self.host.contains(':') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        }
    }
}

/// As written back for messages: the host, and the port if one was given.
impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => f.write_str(&self.with_port(port)),
            None if self.host.contains(':') => write!(f, "[{}]", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// Reads a port number, 1 to 65535 (0 cannot be connected to).
fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("'{port}' is not a port (1 to 65535)")),
        Ok(port) => Ok(port),
    }
}

/// Checks a `--nick` value with the server's nick rules.
fn parse_nick(name: &str) -> Result<Nick, String> {
    Nick::new(name).map_err(|e| e.to_string())
}

/// Checks a `--room` value with the server's room name rules.
fn parse_room(name: &str) -> Result<RoomName, String> {
    RoomName::new(name).map_err(|e| e.to_string())
}

/// The largest `--max-line`: a line is read into memory whole before it is
/// sent, so the limit bounds the memory one line of input may take.
pub const MAX_MAX_LINE: usize = 16 << 20;

/// Reads a `--max-line` value: 1 to [`MAX_MAX_LINE`] bytes.
fn parse_max_line(bytes: &str) -> Result<usize, String> {
    let value: usize = bytes
        .parse()
        .map_err(|_| format!("'{bytes}' is not a number of bytes"))?;
    if (1..=MAX_MAX_LINE).contains(&value) {
        Ok(value)
    } else {
        Err(format!("the limit must be from 1 to {MAX_MAX_LINE} bytes"))
    }
}

/// Reads a positive, finite number of seconds.
fn parse_timeout(secs: &str) -> Result<Duration, String> {
    let value: f64 = secs
        .parse()
        .map_err(|_| format!("'{secs}' is not a number of seconds"))?;
    if value <= 0.0 {
        return Err("the timeout must be more than 0 seconds".to_string());
    }
    Duration::try_from_secs_f64(value).map_err(|_| format!("'{secs}' seconds is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_local_server_and_five_seconds() {
        let args = Args::try_parse_from(["chat-client"]).unwrap();
        assert_eq!(args.address(), "127.0.0.1:7878");
        assert!(!args.tls());
        assert!(args.ca.is_none());
        assert_eq!(args.connect_timeout, Duration::from_secs(5));
        assert!(args.nick.is_none());
        assert!(args.room.is_none());
        assert!(args.send.is_empty());
        assert!(!args.reconnect);
        assert!(!args.timestamps);
        assert!(!args.allow_guest);
        assert_eq!(args.max_line, 4096, "the server's default");
    }

    #[test]
    fn max_line_takes_bytes_from_1_to_16_mib() {
        let args = Args::try_parse_from(["chat-client", "--max-line", "100", "--allow-guest"]).unwrap();
        assert_eq!(args.max_line, 100);
        assert!(args.allow_guest);
        assert_eq!(parse_max_line("16777216"), Ok(MAX_MAX_LINE));
        for bad in ["0", "-1", "16777217", "lots", ""] {
            assert!(parse_max_line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn send_may_be_repeated_and_keeps_the_order() {
        let args = Args::try_parse_from([
            "chat-client",
            "--send",
            "first",
            "--reconnect",
            "--send",
            "/me second",
            "--timestamps",
        ])
        .unwrap();
        assert_eq!(args.send, ["first", "/me second"]);
        assert!(args.reconnect);
        assert!(args.timestamps);
        let err = Args::try_parse_from(["chat-client", "--send"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    /// `addr` as [`Args::address`] writes it without TLS.
    fn plain(addr: &str) -> Result<String, String> {
        ServerAddr::parse(addr).map(|a| a.with_port(DEFAULT_PORT))
    }

    #[test]
    fn addresses_with_a_port_are_kept() {
        for addr in ["127.0.0.1:9000", "[::1]:9000", "localhost:9000", "chat.example:1"] {
            assert_eq!(plain(addr).unwrap(), addr);
        }
    }

    #[test]
    fn addresses_without_a_port_get_the_default_port() {
        assert_eq!(plain("localhost").unwrap(), "localhost:7878");
        assert_eq!(plain("127.0.0.1").unwrap(), "127.0.0.1:7878");
        assert_eq!(plain("::1").unwrap(), "[::1]:7878");
        assert_eq!(plain("[::1]").unwrap(), "[::1]:7878");
    }

    #[test]
    fn the_host_is_what_a_certificate_must_name() {
        for (addr, host, port) in [
            ("localhost", "localhost", None),
            ("chat.example.org:6697", "chat.example.org", Some(6697)),
            ("127.0.0.1:1", "127.0.0.1", Some(1)),
            ("[::1]:9000", "::1", Some(9000)),
            ("[::1]", "::1", None),
            ("::1", "::1", None),
        ] {
            let parsed = ServerAddr::parse(addr).unwrap();
            assert_eq!(parsed.host, host, "{addr}");
            assert_eq!(parsed.port, port, "{addr}");
            assert_eq!(parsed.to_string(), if addr == "::1" { "[::1]" } else { addr });
        }
    }

    #[test]
    fn tls_takes_port_7879_unless_one_is_given() {
        let args = Args::try_parse_from(["chat-client", "--tls", "localhost"]).unwrap();
        assert!(args.tls());
        assert_eq!(args.address(), "localhost:7879");
        let args = Args::try_parse_from(["chat-client", "--tls", "localhost:7000"]).unwrap();
        assert_eq!(args.address(), "localhost:7000");
        let args = Args::try_parse_from(["chat-client", "--tls"]).unwrap();
        assert_eq!(args.address(), "127.0.0.1:7879");
        let args = Args::try_parse_from(["chat-client", "[::1]"]).unwrap();
        assert_eq!(args.address(), "[::1]:7878");
    }

    #[test]
    fn ca_implies_tls() {
        let args = Args::try_parse_from(["chat-client", "--ca", "cert.pem", "localhost"]).unwrap();
        assert!(!args.tls, "as given");
        assert!(args.tls(), "as used");
        assert_eq!(args.ca.as_deref(), Some(std::path::Path::new("cert.pem")));
        assert_eq!(args.address(), "localhost:7879");
    }

    #[test]
    fn an_empty_address_a_bare_port_or_a_bad_port_is_refused() {
        assert!(ServerAddr::parse("").is_err());
        let err = ServerAddr::parse("7878").unwrap_err();
        assert!(err.contains("127.0.0.1:7878"), "{err}");
        for bad in [
            ":7878",
            "localhost:",
            "localhost:http",
            "localhost:0",
            "localhost:65536",
            "[::1]:x",
            "[::1",
            "[::1]x",
            "[nope]:1",
            "fe80::1%eth0:7878",
        ] {
            let err = ServerAddr::parse(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
        let err = Args::try_parse_from(["chat-client", "localhost:http"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("'http' is not a port"), "{err}");
    }

    #[test]
    fn nick_and_room_follow_the_protocol_rules() {
        let args = Args::try_parse_from(["chat-client", "--nick", "bot", "--room", "rust"]).unwrap();
        assert_eq!(args.nick.unwrap().as_str(), "bot");
        assert_eq!(args.room.unwrap().as_str(), "#rust");
        let err = Args::try_parse_from(["chat-client", "--nick", "9lives"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("must start with a letter"), "{err}");
        let err = Args::try_parse_from(["chat-client", "--room", "no room"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn timeouts_must_be_positive_seconds() {
        assert_eq!(parse_timeout("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_timeout("0.25").unwrap(), Duration::from_millis(250));
        for bad in ["0", "-1", "soon", "NaN", "inf", "1e30"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }
}
