//! A raw WebSocket client for the tests: makes the HTTP upgrade by hand,
//! writes masked frames as browsers do (and malformed ones when asked),
//! and reads the server's frames one at a time with a timeout.
//!
//! Like [`crate::irc::IrcClient`] it is deliberately dumb: it answers
//! nothing by itself (not even a ping), so a test sees every frame the
//! server sends and says what the client does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use crate::TIMEOUT;

/// The opcodes of RFC 6455, 5.2.
pub mod opcode {
    /// A continuation frame.
    pub const CONTINUATION: u8 = 0x0;
    /// A text frame.
    pub const TEXT: u8 = 0x1;
    /// A binary frame.
    pub const BINARY: u8 = 0x2;
    /// A Close frame.
    pub const CLOSE: u8 = 0x8;
    /// A ping.
    pub const PING: u8 = 0x9;
    /// A pong.
    pub const PONG: u8 = 0xa;
}

/// The key of RFC 6455's own example, and the accept key it gives.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// See [`SAMPLE_KEY`].
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The mask the client puts on every frame (any will do; a fixed one
/// makes failures reproducible).
const MASK: [u8; 4] = [0x5a, 0x13, 0xc4, 0x7e];

/// The upgrade request for `addr`, with an `Origin` header if given.
pub fn upgrade_request(addr: SocketAddr, origin: Option<&str>) -> String {
    upgrade_request_to_host(&addr.to_string(), origin)
}

/// The upgrade request with the `Host` header `host` (a name the page was
/// loaded under, say), with an `Origin` header if given.
pub fn upgrade_request_to_host(host: &str, origin: Option<&str>) -> String {
    let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n{origin}\r\n"
    )
}

/// A client frame: masked, with the FIN bit as given.
pub fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![opcode | if fin { 0x80 } else { 0 }];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=65535 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    out
}

/// A frame the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its opcode.
    pub opcode: u8,
    /// Whether FIN was set.
    pub fin: bool,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// The complete frames at the start of `bytes` (all a server sent, read
/// to its end), and how many bytes were left over after them: a frame cut
/// off by the close.
///
/// # Panics
/// When a frame is masked, as no server frame may be.
#[track_caller]
pub fn parse_frames(bytes: &[u8]) -> (Vec<Frame>, usize) {
    let mut frames = Vec::new();
    let mut rest = bytes;
    loop {
        let Some((frame, len)) = parse_frame(rest) else { return (frames, rest.len()) };
        frames.push(frame);
        rest = rest.get(len..).unwrap_or_default();
    }
}

/// The frame at the start of `bytes` and its length in bytes, if it is
/// all there.
#[track_caller]
fn parse_frame(bytes: &[u8]) -> Option<(Frame, usize)> {
    let (&first, &second) = (bytes.first()?, bytes.get(1)?);
    assert_eq!(second & 0x80, 0, "a server frame must not be masked");
    let (length, header) = match second & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let end = header + usize::try_from(length).ok()?;
    let payload = bytes.get(header..end)?.to_vec();
    let frame = Frame {
        opcode: first & 0x0f,
        fin: first & 0x80 != 0,
        payload,
    };
    Some((frame, end))
}

/// One WebSocket connection.
pub struct WsClient {
    stream: TcpStream,
    /// The server's answer to the upgrade, up to its blank line.
    pub response: String,
    /// The nick the test believes this client has (empty until a welcome
    /// names one), for messages.
    nick: String,
}

impl WsClient {
    /// Connects to the web listener at `addr` and upgrades, with an
    /// `Origin` if given; panics unless the server says 101.
    #[track_caller]
    pub fn connect(addr: SocketAddr, origin: Option<&str>) -> WsClient {
        let client = WsClient::try_upgrade(addr, &upgrade_request(addr, origin));
        assert!(
            client.response.starts_with("HTTP/1.1 101 "),
            "the upgrade was refused: {}",
            client.response
        );
        assert!(
            client
                .response
                .contains(&format!("\r\nSec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n")),
            "a wrong accept key: {}",
            client.response
        );
        client
    }

    /// Connects and sends `request` as it is; reads the answer's head
    /// (whatever its status), a byte at a time so that nothing after it is
    /// taken.
    #[track_caller]
    pub fn try_upgrade(addr: SocketAddr, request: &str) -> WsClient {
        match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(stream) => WsClient::upgrade_on(stream, request),
            Err(e) => panic!("cannot connect to {addr}: {e}"),
        }
    }

    /// As [`WsClient::try_upgrade`], on a socket already connected (one
    /// set up specially, with a tiny receive buffer say).
    #[track_caller]
    pub fn upgrade_on(mut stream: TcpStream, request: &str) -> WsClient {
        stream
            .set_read_timeout(Some(TIMEOUT))
            .expect("set a read timeout");
        // A test that writes to a server that stopped reading fails
        // rather than hangs.
        stream
            .set_write_timeout(Some(TIMEOUT))
            .expect("set a write timeout");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        stream.write_all(request.as_bytes()).expect("send the request");
        let mut head = Vec::new();
        let mut byte = [0_u8];
        // Bounded: an answer's head is well under 4 KiB.
        for _ in 0..4096 {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                Ok(_) => break,
                Err(e) => panic!(
                    "no answer to the upgrade: {e} (read so far: {:?})",
                    String::from_utf8_lossy(&head)
                ),
            }
            if head.ends_with(b"\r\n\r\n") {
                break;
            }
        }
        WsClient {
            stream,
            response: String::from_utf8_lossy(&head).into_owned(),
            nick: String::new(),
        }
    }

    /// Connects, upgrades, and reads the welcome line.
    #[track_caller]
    pub fn connect_guest(addr: SocketAddr) -> WsClient {
        let mut client = WsClient::connect(addr, None);
        let welcome = client.read_line();
        match crate::parse_welcome(&welcome) {
            Some(nick) => client.nick = nick.to_string(),
            None => panic!("expected a welcome, got {welcome:?}"),
        }
        client
    }

    /// Connects, upgrades, reads the welcome, sends `/nick NICK` and waits
    /// for its confirmation.
    #[track_caller]
    pub fn connect_named(addr: SocketAddr, nick: &str) -> WsClient {
        let mut client = WsClient::connect_guest(addr);
        client.rename(nick);
        client
    }

    /// The nick the test believes this client has (the guest nick of its
    /// welcome, or the last one it took with [`WsClient::rename`]).
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// Sends `/nick NICK`, expects `-- you are now known as NICK`, and
    /// remembers the new nick.
    #[track_caller]
    pub fn rename(&mut self, nick: &str) {
        self.send(&format!("/nick {nick}"));
        self.expect_line(&format!("-- you are now known as {nick}"));
        self.nick = nick.to_string();
    }

    /// Sends one line as a text message.
    #[track_caller]
    pub fn send(&mut self, line: &str) {
        self.send_raw(&client_frame(opcode::TEXT, true, line.as_bytes()));
    }

    /// Sends bytes as they are.
    #[track_caller]
    pub fn send_raw(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes) {
            panic!("cannot send to the server: {e}");
        }
    }

    /// Reads the next frame, whatever it is.
    #[track_caller]
    pub fn read_frame(&mut self) -> Frame {
        read_frame_from(&mut self.stream)
    }

    /// Reads the next frame, which must be a text frame: one server line.
    #[track_caller]
    pub fn read_line(&mut self) -> String {
        let frame = self.read_frame();
        assert_eq!(frame.opcode, opcode::TEXT, "expected a text frame, got {frame:?}");
        assert!(frame.fin, "a line comes in one frame");
        match String::from_utf8(frame.payload) {
            Ok(line) => {
                assert!(!line.contains('\n'), "one line per frame: {line:?}");
                line
            }
            Err(e) => panic!("a text frame that is not UTF-8: {e}"),
        }
    }

    /// Reads the next line and checks it.
    #[track_caller]
    pub fn expect_line(&mut self, expected: &str) {
        let line = self.read_line();
        assert_eq!(
            line, expected,
            "\n{} (WebSocket) read the wrong line\n expected: {expected:?}\n      got: {line:?}\n",
            self.nick
        );
    }

    /// Reads until the server closes the TCP stream, returning the frames
    /// that came before (at most 1000).
    #[track_caller]
    pub fn read_until_closed(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        for _ in 0..1000 {
            let mut byte = [0_u8; 1];
            match self.stream.peek(&mut byte) {
                Ok(0) => return frames,
                Ok(_) => frames.push(self.read_frame()),
                Err(e) => panic!("the server did not close: {e} (frames so far: {frames:?})"),
            }
        }
        panic!("more than 1000 frames before the close");
    }

    /// The socket, for tests that need to stop reading or half-close.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// The socket, for a test that reads the frames its own way.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}

/// Reads the next frame the server sent from `stream` (a TCP stream, or a
/// TLS one), whatever it is.
#[track_caller]
pub fn read_frame_from(stream: &mut impl Read) -> Frame {
    let mut head = [0_u8; 2];
    read_exactly(stream, &mut head);
    assert_eq!(head[1] & 0x80, 0, "a server frame must not be masked");
    let length = match head[1] & 0x7f {
        126 => {
            let mut bytes = [0_u8; 2];
            read_exactly(stream, &mut bytes);
            u64::from(u16::from_be_bytes(bytes))
        }
        127 => {
            let mut bytes = [0_u8; 8];
            read_exactly(stream, &mut bytes);
            u64::from_be_bytes(bytes)
        }
        n => u64::from(n),
    };
    assert!(length <= 1 << 20, "a frame of {length} bytes");
    let mut payload = vec![0_u8; length as usize];
    read_exactly(stream, &mut payload);
    Frame {
        opcode: head[0] & 0x0f,
        fin: head[0] & 0x80 != 0,
        payload,
    }
}

#[track_caller]
fn read_exactly(stream: &mut impl Read, buf: &mut [u8]) {
    if let Err(e) = stream.read_exact(buf) {
        panic!("cannot read a frame: {e}");
    }
}

/// The Close frame's status, if the frame is a Close frame with one.
pub fn close_status(frame: &Frame) -> Option<u16> {
    match (frame.opcode, frame.payload.as_slice()) {
        (opcode::CLOSE, [high, low, ..]) => Some(u16::from_be_bytes([*high, *low])),
        _ => None,
    }
}
