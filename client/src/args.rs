//! The command line, and the defaults and checks on its values.
//!
//! Values are checked here, while clap can still answer with a usage error
//! (exit 2): a nick or room that the server would refuse is refused before
//! connecting, with the protocol crate's own rules and wording, and an
//! address without a port gets the default one. The options that choose
//! the client's behaviour (`--send`, `--reconnect`, `--allow-guest`,
//! `--max-line`, `--timestamps`) are plain values; what they do is in the
//! session.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use chat_protocol::{Nick, RoomName};
use clap::Parser;

/// The port chat-server listens on by default.
pub const DEFAULT_PORT: u16 = 7878;

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
                  server cannot be reached (or standard input or output fails), 2 for a usage \
                  error, 3 when the connection is lost before the user quit (with --reconnect: \
                  when lines could not be delivered before the user gave up), 4 when the server \
                  refused --nick or --room (or did not answer them within 10 seconds) and \
                  nothing was sent; interactive mode stays connected instead, and --allow-guest \
                  goes on without them."
)]
pub struct Args {
    /// Server address: HOST:PORT, HOST, an IPv4 address or an [IPv6] address; the port defaults
    /// to 7878. Each address HOST resolves to is tried in turn.
    #[arg(value_name = "ADDR", default_value = "127.0.0.1:7878", value_parser = with_default_port)]
    pub addr: String,

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

    /// Seconds to wait for each connection attempt (fractions allowed).
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
}

/// `addr` with [`DEFAULT_PORT`] added when it names a host or IP address
/// without a port: `localhost` → `localhost:7878`, `::1` → `[::1]:7878`,
/// `[::1]` → `[::1]:7878`. Anything with a port is kept as written.
///
/// # Errors
/// A message for an empty address, and for a bare number, which would
/// otherwise be resolved as an IPv4 address (`7878` is `0.0.30.198`) when
/// the user surely meant a port.
pub fn with_default_port(addr: &str) -> Result<String, String> {
    if addr.is_empty() {
        return Err("the address is empty".to_string());
    }
    if addr.parse::<SocketAddr>().is_ok() {
        return Ok(addr.to_string());
    }
    if let Ok(ip) = addr.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT).to_string());
    }
    if addr.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "'{addr}' looks like a port; write HOST:PORT, e.g. 127.0.0.1:{addr}"
        ));
    }
    let bracketed_without_port = addr.starts_with('[') && addr.ends_with(']');
    if bracketed_without_port || !addr.contains(':') {
        return Ok(format!("{addr}:{DEFAULT_PORT}"));
    }
    Ok(addr.to_string())
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
        assert_eq!(args.addr, "127.0.0.1:7878");
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

    #[test]
    fn addresses_with_a_port_are_kept() {
        for addr in ["127.0.0.1:9000", "[::1]:9000", "localhost:9000", "chat.example:1"] {
            assert_eq!(with_default_port(addr).unwrap(), addr);
        }
    }

    #[test]
    fn addresses_without_a_port_get_the_default_port() {
        assert_eq!(with_default_port("localhost").unwrap(), "localhost:7878");
        assert_eq!(with_default_port("127.0.0.1").unwrap(), "127.0.0.1:7878");
        assert_eq!(with_default_port("::1").unwrap(), "[::1]:7878");
        assert_eq!(with_default_port("[::1]").unwrap(), "[::1]:7878");
    }

    #[test]
    fn an_empty_address_or_a_bare_port_is_refused() {
        assert!(with_default_port("").is_err());
        let err = with_default_port("7878").unwrap_err();
        assert!(err.contains("127.0.0.1:7878"), "{err}");
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
