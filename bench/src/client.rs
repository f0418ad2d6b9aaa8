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

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream as StdTcpStream};

use mio::net::TcpStream;
use socket2::{Domain, Socket, Type};

use crate::stats::SeqTrack;

/// The longest server line kept while waiting for its end. ncat's
/// "already connected: ..." announcement lists every client, so it can be
/// tens of KiB; past this the line is dropped (counted as an oversize
/// line), so a misbehaving peer cannot grow the generator without bound.
pub const MAX_PARTIAL: usize = 1 << 20;

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
}

impl Conn {
    /// A connection whose connect is under way.
    pub fn new(stream: TcpStream, id: usize) -> Conn {
        Conn {
            stream,
            state: State::Connecting,
            id,
            sender: None,
            partial: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            tracks: Vec::new(),
        }
    }

    /// True when nothing is waiting to be written.
    pub fn out_empty(&self) -> bool {
        self.out_pos >= self.out.len()
    }

    /// Queues `bytes` and writes what the socket takes now.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(bytes);
        self.flush()
    }

    /// Writes queued bytes until done or the socket is full. Bounded: each
    /// turn writes at least one byte or stops.
    pub fn flush(&mut self) -> io::Result<()> {
        while let Some(pending) = self.out.get(self.out_pos..).filter(|p| !p.is_empty()) {
            match self.stream.write(pending) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.out_empty() {
            self.out.clear();
            self.out_pos = 0;
        }
        Ok(())
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

    /// Reads once into `buf`. `Ok(None)` when nothing is there now,
    /// `Ok(Some(0))` at end of stream.
    pub fn read_some(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
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
