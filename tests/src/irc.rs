//! A raw IRC client for the tests: writes IRC lines, reads the server's
//! messages one at a time with a timeout, and checks each is a well-formed
//! IRC line (CR LF, UTF-8, no more than a line).
//!
//! It is deliberately dumb: it answers nothing by itself (not even PING),
//! so a test sees every message the server sends and says what the client
//! does.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};

use chat_protocol::irc::Message;

use crate::TIMEOUT;

/// The most messages read while waiting for one in particular.
const MAX_SKIPPED: usize = 1000;

/// One IRC connection.
pub struct IrcClient {
    /// Its nick once registered, for messages.
    pub nick: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl IrcClient {
    /// Connects to `addr` without sending anything.
    #[track_caller]
    pub fn connect(addr: SocketAddr) -> IrcClient {
        let stream = match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(stream) => stream,
            Err(e) => panic!("cannot connect to {addr}: {e}"),
        };
        stream
            .set_read_timeout(Some(TIMEOUT))
            .expect("set a read timeout");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        let writer = stream.try_clone().expect("clone the socket");
        IrcClient {
            nick: "*".to_string(),
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// Connects and registers as `nick`, reading up to the end of the
    /// message of the day (376 or 422).
    #[track_caller]
    pub fn registered(addr: SocketAddr, nick: &str) -> IrcClient {
        let mut client = IrcClient::connect(addr);
        client.send(&format!("NICK {nick}"));
        client.send(&format!("USER {nick} 0 * :{nick} the tester"));
        client.expect_command("001");
        client.skip_to(|line| command(line) == "376" || command(line) == "422");
        client.nick = nick.to_string();
        client
    }

    /// Sends `line` with its CR LF.
    #[track_caller]
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Sends `bytes` as they are.
    #[track_caller]
    pub fn send_raw(&mut self, bytes: &[u8]) {
        if let Err(e) = self.writer.write_all(bytes).and_then(|()| self.writer.flush()) {
            panic!("{}: cannot send: {e}", self.nick);
        }
    }

    /// The next message, without its CR LF; `None` once the server has
    /// closed the connection.
    ///
    /// # Panics
    /// When nothing comes within [`TIMEOUT`], or the line is not UTF-8,
    /// does not end in CR LF, or holds a CR, LF or NUL inside.
    #[track_caller]
    pub fn next_line(&mut self) -> Option<String> {
        let mut bytes = Vec::new();
        match self.reader.read_until(b'\n', &mut bytes) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                panic!(
                    "{}: no message within {TIMEOUT:?} (partial: {:?})",
                    self.nick,
                    String::from_utf8_lossy(&bytes)
                )
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("{}: cannot read: {e}", self.nick),
        }
        let Some(line) = bytes.strip_suffix(b"\r\n") else {
            panic!(
                "{}: a message that does not end in CR LF: {:?}",
                self.nick,
                String::from_utf8_lossy(&bytes)
            );
        };
        let line = match String::from_utf8(line.to_vec()) {
            Ok(line) => line,
            Err(e) => panic!("{}: a message that is not UTF-8: {:?}", self.nick, e.as_bytes()),
        };
        assert!(
            !line.contains(['\r', '\n', '\0']),
            "{}: CR, LF or NUL inside {line:?}",
            self.nick
        );
        Some(line)
    }

    /// The next message, which must come.
    #[track_caller]
    pub fn read_line(&mut self) -> String {
        match self.next_line() {
            Some(line) => line,
            None => panic!(
                "{}: the server closed the connection; expected a message",
                self.nick
            ),
        }
    }

    /// Reads the next message and checks it is `expected`.
    #[track_caller]
    pub fn expect_line(&mut self, expected: &str) {
        let got = self.read_line();
        assert_eq!(got, expected, "{} read the wrong message", self.nick);
    }

    /// Reads the next message and checks its command (or numeric) is
    /// `expected`; returns it.
    #[track_caller]
    pub fn expect_command(&mut self, expected: &str) -> String {
        let line = self.read_line();
        assert_eq!(
            command(&line),
            expected,
            "{}: expected {expected}, got {line:?}",
            self.nick
        );
        line
    }

    /// Reads messages until one matches `wanted`, and returns it.
    #[track_caller]
    pub fn skip_to(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        for _ in 0..MAX_SKIPPED {
            let line = self.read_line();
            if wanted(&line) {
                return line;
            }
        }
        panic!("{}: nothing wanted in {MAX_SKIPPED} messages", self.nick);
    }

    /// Sends `PING token` and reads every message up to its PONG: what the
    /// server had to say before it, in order. The server answers in order,
    /// so this is everything due for what was sent before.
    #[track_caller]
    pub fn sync(&mut self, token: &str) -> Vec<String> {
        self.send(&format!("PING {token}"));
        let mut before = Vec::new();
        for _ in 0..MAX_SKIPPED {
            let line = self.read_line();
            if command(&line) == "PONG" && line.ends_with(&format!(":{token}")) {
                return before;
            }
            before.push(line);
        }
        panic!("{}: no PONG {token} in {MAX_SKIPPED} messages", self.nick);
    }

    /// JOINs `channel` and reads up to the end of its names (366); returns
    /// what came.
    #[track_caller]
    pub fn join(&mut self, channel: &str) -> Vec<String> {
        self.send(&format!("JOIN {channel}"));
        let mut came = Vec::new();
        for _ in 0..MAX_SKIPPED {
            let line = self.read_line();
            let end = command(&line) == "366";
            came.push(line);
            if end {
                return came;
            }
        }
        panic!("{}: no end of NAMES for {channel}", self.nick);
    }
}

/// The command (or numeric) of a server message.
pub fn command(line: &str) -> &str {
    Message::parse(line).map(|m| m.command).unwrap_or("")
}

/// The parameters of a server message.
pub fn params(line: &str) -> Vec<String> {
    Message::parse(line)
        .map(|m| m.params.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}
