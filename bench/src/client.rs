//! One generator connection: a nonblocking socket, what it still has to
//! write, the unfinished line it has read, and where it is in its
//! handshake.
//!
//! Connections are opened without blocking (thousands at once from a few
//! threads), optionally from a chosen loopback source address so that
//! more than one source port range is available: each of 127.0.0.2,
//! 127.0.0.3, ... has its own ~28,000 ephemeral ports towards one server
//! port. Lines are split in place from a shared read buffer; only a line
//! cut by the end of a read is copied, into [`Conn::partial`].
//!
//! A connection may speak TLS ([`Conn::tls`]): then what it queues and
//! what it reads are plaintext, and rustls sits between them and the
//! socket, driven as rustls's own mio example drives it: ciphertext read
//! from the socket (`read_tls`) and processed (`process_new_packets`) only
//! once the plaintext already decrypted has been taken, and ciphertext
//! written (`write_tls`) as far as the socket takes it. The socket stays
//! registered for both readiness kinds (edge-triggered), so a handshake
//! message or record left over when the socket was full goes out on the
//! next writable edge.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream as StdTcpStream};

use mio::net::TcpStream;
use rustls::ClientConnection;
use socket2::{Domain, Socket, Type};

use crate::engine::Dialect;
use crate::stats::SeqTrack;
use crate::web;

/// The longest server line kept while waiting for its end. ncat's
/// "already connected: ..." announcement lists every client, so it can be
/// tens of KiB; past this the line is dropped (counted as an oversize
/// line), so a misbehaving peer cannot grow the generator without bound.
pub const MAX_PARTIAL: usize = 1 << 20;

/// Most socket reads one [`Conn::read_some`] makes into a TLS connection
/// before it has plaintext to return. A handshake takes two or three, a
/// few session tickets a few more; a peer that sends this many records
/// without a byte of data in them is broken, and the connection is closed.
const MAX_TLS_READS: usize = 256;

/// Most rounds of handing plaintext to rustls and writing ciphertext out in
/// one [`Conn::flush`]: each round moves up to rustls's buffer (64 KiB), so
/// this is far more than a sender's window of lines; the rest goes on the
/// next writable edge.
const MAX_TLS_FLUSHES: usize = 64;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The nonblocking connect has not finished.
    Connecting,
    /// Connected; waiting for the server's first line.
    AwaitWelcome,
    /// Sent `/join` as part of its handshake; waiting for `-- you joined`.
    AwaitJoined,
    /// Ready, then told to `/join` (the join storm); waiting for `-- you
    /// joined`.
    Joining,
    /// Done with the handshake.
    Ready,
    /// Done with, in a churn: our end is closed (a close_notify for TLS,
    /// then FIN) and what the server still sends is read and dropped until
    /// it closes too, so the socket ends without a reset.
    Closing,
    /// Closed or failed; no longer polled.
    Dead,
}

/// One connection of the generator.
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// Its state.
    pub state: State,
    /// Global client number (0-based over the whole run).
    pub id: usize,
    /// Sender number, when this client sends.
    pub sender: Option<usize>,
    /// Bytes of an unfinished line.
    pub partial: Vec<u8>,
    /// Bytes still to write.
    pub out: Vec<u8>,
    /// How much of `out` is written.
    pub out_pos: usize,
    /// Per-sender accounting, in the fan-out scenarios.
    pub tracks: Vec<SeqTrack>,
    /// TLS over the socket, when the run speaks it: `out` and what
    /// [`Conn::read_some`] returns are then plaintext, and this holds the
    /// ciphertext on its way. Boxed: rustls's state is a few KiB, and a
    /// plain run holds thousands of connections without it.
    pub tls: Option<Box<ClientConnection>>,
    /// When its connect started, ns since the run's time base (the
    /// handshake scenarios time connect to welcome).
    pub started_ns: u64,
    /// What it speaks: the server's line protocol, IRC ([`crate::irc`]),
    /// or the line protocol in WebSocket frames ([`crate::web`]), as the
    /// run's setup says for its number.
    pub dialect: Dialect,
    /// A WebSocket connection's reader of the server's side (the upgrade's
    /// answer, then frames); `None` for the other dialects. Boxed: a line
    /// run holds thousands of connections without one.
    pub ws: Option<Box<web::Decoder>>,
}

impl Conn {
    /// A connection whose connect is under way (started at `started_ns`),
    /// speaking TLS over it when `tls` is given.
    pub fn new(stream: TcpStream, id: usize, tls: Option<ClientConnection>, started_ns: u64) -> Conn {
        Conn {
            stream,
            state: State::Connecting,
            id,
            sender: None,
            partial: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            tracks: Vec::new(),
            tls: tls.map(Box::new),
            started_ns,
            dialect: Dialect::Line,
            ws: None,
        }
    }

    /// Whether a TLS handshake is still under way (never for plain TCP).
    pub fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.is_handshaking())
    }

    /// True when nothing is waiting to be written.
    pub fn out_empty(&self) -> bool {
        self.out_pos >= self.out.len()
    }

    /// Speaks `dialect` from now on (a WebSocket connection gets its
    /// reader, waiting for the upgrade's answer).
    pub fn speak(&mut self, dialect: Dialect) {
        self.dialect = dialect;
        self.ws = (dialect == Dialect::Web).then(Box::default);
    }

    /// Queues one line of the line protocol (`/join #room`, without its
    /// newline) as this connection speaks it: with a newline, or as a
    /// WebSocket text frame. (IRC has commands of its own: [`crate::irc`].)
    pub fn queue_line(&mut self, line: &str) {
        if self.dialect == Dialect::Web {
            web::write_line(&mut self.out, line.as_bytes(), web::mask_for(self.id));
        } else {
            self.out.extend_from_slice(line.as_bytes());
            self.out.push(b'\n');
        }
    }

    /// Queues `bytes` and writes what the socket takes now.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(bytes);
        self.flush()
    }

    /// Writes queued bytes until done or the socket is full (for TLS:
    /// hands them to rustls as far as its buffer takes them, and writes the
    /// ciphertext, with any handshake message due, as far as the socket
    /// takes it). Bounded: each turn makes progress or stops.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(tls) = &mut self.tls {
            for _ in 0..MAX_TLS_FLUSHES {
                let mut taken = 0;
                if let Some(pending) = self.out.get(self.out_pos..).filter(|p| !p.is_empty()) {
                    taken = tls.writer().write(pending)?;
                    self.out_pos += taken;
                }
                let all_out = write_tls(tls, &mut self.stream)?;
                if taken == 0 || !all_out {
                    break;
                }
            }
        } else {
            while let Some(pending) = self.out.get(self.out_pos..).filter(|p| !p.is_empty()) {
                match self.stream.write(pending) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => self.out_pos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        if self.out_empty() {
            self.out.clear();
            self.out_pos = 0;
        }
        Ok(())
    }

    /// Writes the first half of a TLS connection's ClientHello straight to
    /// the socket and leaves the rest unsent for ever: a client stuck in
    /// its handshake (the handshake storm's variant). A plain connection
    /// sends nothing.
    ///
    /// # Errors
    /// When the socket fails.
    pub fn send_half_hello(&mut self) -> io::Result<()> {
        let Some(tls) = &mut self.tls else {
            return Ok(());
        };
        let mut hello = Vec::new();
        // Writing into a Vec cannot block; bounded by rustls's one flight.
        while tls.wants_write() {
            if tls.write_tls(&mut hello)? == 0 {
                break;
            }
        }
        let half = hello.get(..hello.len() / 2).unwrap_or_default();
        // A few hundred bytes into an empty socket buffer: one write.
        self.stream.write_all(half)
    }

    /// Starts a clean end: for TLS, a close_notify, written if the socket
    /// takes it. The caller then closes the socket.
    pub fn close_notify(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            // Whether it went out does not change what comes next.
            let _ = write_tls(tls, &mut self.stream);
        }
    }

    /// Checks whether a pending connect finished. `Ok(true)` when
    /// connected, `Ok(false)` when still in progress.
    pub fn poll_connected(&mut self) -> io::Result<bool> {
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.stream.set_nodelay(true)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads once into `buf` (plaintext, for TLS). `Ok(None)` when nothing
    /// is there now, `Ok(Some(0))` at end of stream.
    ///
    /// # Errors
    /// When the socket fails, or the server breaks the TLS protocol or
    /// presents a certificate that does not verify (then the alert rustls
    /// has for it is sent first, if the socket takes it).
    pub fn read_some(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if let Some(tls) = &mut self.tls {
            return read_tls_plaintext(tls, &mut self.stream, buf);
        }
        loop {
            match self.stream.read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// [`Conn::read_some`] for TLS: plaintext already decrypted first; else
/// ciphertext from the socket, processed, and anything rustls must answer
/// (the client's side of the handshake, an alert) written out.
fn read_tls_plaintext(
    tls: &mut ClientConnection,
    stream: &mut TcpStream,
    buf: &mut [u8],
) -> io::Result<Option<usize>> {
    for _ in 0..MAX_TLS_READS {
        match tls.reader().read(buf) {
            // 0: the server's close_notify.
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The TCP stream ended without a close_notify.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Some(0)),
            Err(e) => return Err(e),
        }
        match tls.read_tls(stream) {
            Ok(0) => return Ok(Some(0)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let processed = tls.process_new_packets();
        // The handshake's next flight, or the alert for an error: out now
        // if the socket takes it, else on the next writable edge.
        let written = write_tls(tls, stream);
        if let Err(e) = processed {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}")));
        }
        written?;
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("TLS: {MAX_TLS_READS} reads from the server brought no data"),
    ))
}

/// Writes what rustls holds for the socket until it is all out (`true`)
/// or the socket is full (`false`). Bounded: each turn writes something or
/// stops.
fn write_tls(tls: &mut ClientConnection, stream: &mut TcpStream) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Splits `data` (just read) into lines, calling `line` for each complete
/// one (without `\n`), joining it with the unfinished line kept in
/// `partial`, and keeping the new unfinished tail there. Returns how many
/// lines were dropped for passing [`MAX_PARTIAL`].
pub fn split_lines(partial: &mut Vec<u8>, data: &[u8], mut line: impl FnMut(&[u8])) -> u64 {
    let mut dropped = 0;
    let mut rest = data;
    if !partial.is_empty() {
        match memchr::memchr(b'\n', rest) {
            Some(end) => {
                let (head, tail) = rest.split_at(end);
                partial.extend_from_slice(head);
                line(partial);
                partial.clear();
                rest = tail.get(1..).unwrap_or_default();
            }
            None => {
                partial.extend_from_slice(rest);
                if partial.len() > MAX_PARTIAL {
                    partial.clear();
                    dropped += 1;
                }
                return dropped;
            }
        }
    }
    // Each turn consumes at least the `\n`, so this ends.
    while let Some(end) = memchr::memchr(b'\n', rest) {
        let (head, tail) = rest.split_at(end);
        line(head);
        rest = tail.get(1..).unwrap_or_default();
    }
    if rest.len() > MAX_PARTIAL {
        dropped += 1;
    } else {
        partial.extend_from_slice(rest);
    }
    dropped
}

/// Starts a nonblocking connect to `dest`, from `source` (port chosen by
/// the kernel) when given.
pub fn start_connect(dest: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(dest), Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    if let Some(ip) = source {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match socket.connect(&dest.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(StdTcpStream::from(socket)))
}

/// The source address of client `id` when spreading over `sources`
/// loopback addresses 127.0.0.2, 127.0.0.3, ...; `None` (the kernel
/// picks, 127.0.0.1) when `sources` is 0 or the server is not on IPv4
/// loopback.
pub fn source_for(id: usize, sources: usize, dest: SocketAddr) -> Option<IpAddr> {
    if sources == 0 || !matches!(dest.ip(), IpAddr::V4(v4) if v4.is_loopback()) {
        return None;
    }
    // At most 250 sources (127.0.0.2 ..= 127.0.0.251), so this fits a u8.
    let host = u8::try_from(2 + id % sources.min(250)).unwrap_or(2);
    Some(IpAddr::from([127, 0, 0, host]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(partial: &mut Vec<u8>, data: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        split_lines(partial, data, |l| {
            lines.push(String::from_utf8_lossy(l).into_owned())
        });
        lines
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        let mut partial = Vec::new();
        assert_eq!(collect(&mut partial, b"ab\ncd"), ["ab"]);
        assert_eq!(collect(&mut partial, b"ef"), Vec::<String>::new());
        assert_eq!(collect(&mut partial, b"g\n\nh\n"), ["cdefg", "", "h"]);
        assert!(partial.is_empty());
    }

    #[test]
    fn an_endless_line_is_dropped() {
        let mut partial = Vec::new();
        let big = vec![b'x'; MAX_PARTIAL / 2 + 1];
        assert_eq!(split_lines(&mut partial, &big, |_| {}), 0);
        assert_eq!(split_lines(&mut partial, &big, |_| {}), 1);
        assert!(partial.is_empty());
        assert_eq!(collect(&mut partial, b"ok\n"), ["ok"]);
    }

    #[test]
    fn sources_cycle_over_loopback() {
        let dest: SocketAddr = "127.0.0.1:7878".parse().unwrap();
        assert_eq!(source_for(0, 3, dest), Some(IpAddr::from([127, 0, 0, 2])));
        assert_eq!(source_for(4, 3, dest), Some(IpAddr::from([127, 0, 0, 3])));
        assert_eq!(source_for(4, 0, dest), None);
        assert_eq!(source_for(1, 3, "[::1]:7878".parse().unwrap()), None);
    }
}
