//! One client connection as the event loop sees it: a socket, the decoder
//! for what it sends, and the queue of what is still to be written to it.
//!
//! Sockets are non-blocking and registered edge-triggered, so every read
//! and write here loops until the kernel says `WouldBlock`; `Interrupted`
//! is retried; reset, aborted and broken-pipe errors mean the peer is gone
//! and are reported as such, not logged as failures. Output is queued and
//! written as soon as possible; WRITABLE interest is held only while bytes
//! remain queued, so an idle connection costs no wake-ups.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;

use chat_protocol::{DecodeError, LineDecoder};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::chat::messages::ConnId;
use crate::net::flood::TokenBucket;
use crate::ops::stats::CloseReason;

/// Most bytes read from one connection in one turn of the event loop.
/// Without flood control (`--rate 0`) a fast sender could otherwise keep
/// the loop reading its socket forever; past this it waits for the next
/// turn like everyone else.
const READ_BUDGET: usize = 256 * 1024;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading lines and writing output.
    Open {
        /// Out of tokens: not read until its Resume timer (see
        /// [`crate::net::flood`]).
        throttled: bool,
    },
    /// The client's side ended; waiting for the hub's last words (its
    /// `Close`), still writing what is queued.
    ReadClosed,
    /// The hub said close: writing what is queued, reading nothing more.
    Closing {
        /// When to give up on the client taking its last output.
        until: Instant,
    },
    /// Everything is written and our side is shut down; reading and
    /// discarding until the client closes its side too, or until the
    /// deadline (the same one as in `Closing`). Closing a socket with unread input makes the kernel send a
    /// reset, which can destroy output the client has not read yet, so we
    /// wait for its end of stream first.
    Lingering {
        /// When to give up waiting and close anyway.
        until: Instant,
    },
}

/// What a read pass found.
#[derive(Debug)]
pub enum ReadOutcome {
    /// Everything available was read; the stream goes on.
    Open,
    /// The client is out of tokens (see [`crate::net::flood`]) or used up its
    /// share of this turn; reading stops until the instant given.
    Throttled(Instant),
    /// The client ended its side of the stream.
    Eof,
    /// The connection failed (reset, or another error).
    Failed(io::Error),
}

/// What a write pass achieved.
#[derive(Debug)]
pub enum WriteOutcome {
    /// The queue is empty.
    Drained,
    /// The kernel's buffer is full; the rest waits for WRITABLE.
    Pending,
    /// The connection failed (reset, broken pipe, or another error).
    Failed(io::Error),
}

/// One client connection.
#[derive(Debug)]
pub struct Connection {
    /// Who this is, in messages to and from the hub.
    pub id: ConnId,
    /// The peer's address, for logs.
    pub addr: SocketAddr,
    /// Where the connection is in its life.
    pub phase: Phase,
    /// When the client last sent anything, for the idle timeout.
    pub last_input: Instant,
    /// Why the connection is ending, once that is known (for the metrics).
    pub close_reason: Option<CloseReason>,
    /// Already on the event loop's list of connections to flush after this
    /// batch, so that a connection is listed once however many messages
    /// it was given.
    pub flush_due: bool,
    /// Bytes read since [`Connection::take_bytes_read`] last took them.
    bytes_read: usize,
    stream: TcpStream,
    decoder: LineDecoder,
    /// The client's allowance of lines.
    bucket: TokenBucket,
    /// Bytes read but not yet decoded because the client ran out of tokens
    /// in the middle of them: at most one read's worth.
    held: Vec<u8>,
    /// Bytes to write; those before `written` are already written.
    queue: Vec<u8>,
    written: usize,
    /// Whether WRITABLE is part of the registered interest now.
    wants_write: bool,
}

impl Connection {
    /// Wraps an accepted socket and registers it for reading under `token`.
    ///
    /// # Errors
    /// When the socket cannot be registered.
    pub fn register(
        id: ConnId,
        mut stream: TcpStream,
        addr: SocketAddr,
        limits: &Limits,
        registry: &Registry,
        token: Token,
    ) -> io::Result<Connection> {
        registry.register(&mut stream, token, Interest::READABLE)?;
        let now = Instant::now();
        Ok(Connection {
            id,
            addr,
            phase: Phase::Open { throttled: false },
            last_input: now,
            close_reason: None,
            bytes_read: 0,
            stream,
            decoder: LineDecoder::new(limits.max_line),
            bucket: TokenBucket::new(limits.rate, limits.burst, now),
            held: Vec::new(),
            queue: Vec::new(),
            written: 0,
            wants_write: false,
            flush_due: false,
        })
    }

    /// Reads everything available, handing each decoded line (or decoding
    /// error) to `on_line`, as long as the client has tokens for them. At
    /// end of stream a final line without `\n` is handed over too.
    pub fn read(
        &mut self,
        buf: &mut [u8],
        now: Instant,
        mut on_line: impl FnMut(Result<String, DecodeError>),
    ) -> ReadOutcome {
        if !self.held.is_empty() {
            // Lines held back were sent by the client, not idled away.
            self.last_input = now;
            let mut held = std::mem::take(&mut self.held);
            let used = self.decode_allowed(&held, now, &mut on_line);
            if used < held.len() {
                held.drain(..used);
                self.held = held;
                return ReadOutcome::Throttled(self.bucket.next_token_at());
            }
        }
        let mut budget = READ_BUDGET;
        loop {
            if budget == 0 {
                // Fair share used up: go on next turn, after the others.
                return ReadOutcome::Throttled(now);
            }
            match self.stream.read(buf) {
                Ok(0) => {
                    if let Some(line) = self.decoder.finish() {
                        on_line(line);
                    }
                    return ReadOutcome::Eof;
                }
                Ok(n) => {
                    self.bytes_read += n;
                    budget = budget.saturating_sub(n);
                    self.last_input = now;
                    let data = buf.get(..n).unwrap_or_default();
                    let used = self.decode_allowed(data, now, &mut on_line);
                    if let Some(rest) = data.get(used..).filter(|rest| !rest.is_empty()) {
                        self.held.extend_from_slice(rest);
                        return ReadOutcome::Throttled(self.bucket.next_token_at());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return ReadOutcome::Failed(e),
            }
        }
    }

    /// Decodes lines from `data` while the client has tokens. Returns how
    /// many bytes were used; the rest must be kept for later.
    fn decode_allowed(
        &mut self,
        data: &[u8],
        now: Instant,
        on_line: &mut impl FnMut(Result<String, DecodeError>),
    ) -> usize {
        let mut lines = self.decoder.decode(data);
        loop {
            // Check for a token before taking a line, so that a line is
            // either handed over or left in `data`, never lost.
            if lines.has_line() && !self.bucket.try_take(now) {
                return data.len() - lines.remaining().len();
            }
            match lines.next() {
                Some(line) => on_line(line),
                None => return data.len(),
            }
        }
    }

    /// Bytes read from the socket since the last call, for the metrics.
    pub fn take_bytes_read(&mut self) -> usize {
        std::mem::take(&mut self.bytes_read)
    }

    /// True in the phases that still write output.
    pub fn accepts_output(&self) -> bool {
        !matches!(self.phase, Phase::Lingering { .. })
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.queue.len().saturating_sub(self.written)
    }

    /// Reads and throws away everything available (used while lingering).
    pub fn discard_input(&mut self, buf: &mut [u8]) -> ReadOutcome {
        loop {
            match self.stream.read(buf) {
                Ok(0) => return ReadOutcome::Eof,
                Ok(n) => self.bytes_read += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return ReadOutcome::Failed(e),
            }
        }
    }

    /// Appends bytes to the output queue. Call [`Connection::flush`] to
    /// write them.
    pub fn enqueue(&mut self, bytes: &[u8]) {
        self.queue.extend_from_slice(bytes);
    }

    /// True when nothing is waiting to be written.
    pub fn is_drained(&self) -> bool {
        self.written >= self.queue.len()
    }

    /// Writes as much of the queue as the kernel takes, then sets WRITABLE
    /// interest if anything is left, or clears it if not.
    pub fn flush(&mut self, registry: &Registry, token: Token) -> WriteOutcome {
        let outcome = self.write_queue();
        let want = matches!(outcome, WriteOutcome::Pending);
        if want != self.wants_write {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) = registry.reregister(&mut self.stream, token, interest) {
                return WriteOutcome::Failed(e);
            }
            self.wants_write = want;
        }
        outcome
    }

    fn write_queue(&mut self) -> WriteOutcome {
        while let Some(pending) = self.queue.get(self.written..).filter(|p| !p.is_empty()) {
            match self.stream.write(pending) {
                Ok(0) => return WriteOutcome::Failed(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.compact();
                    return WriteOutcome::Pending;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return WriteOutcome::Failed(e),
            }
        }
        self.queue.clear();
        self.written = 0;
        WriteOutcome::Drained
    }

    /// Drops the written part of the queue once it is most of it, so the
    /// queue does not grow without bound while the peer is slow.
    fn compact(&mut self) {
        if self.written > 0 && self.written >= self.queue.len() / 2 {
            self.queue.drain(..self.written);
            self.written = 0;
        }
    }

    /// Shuts down our sending side: the peer reads the end of stream after
    /// everything written so far.
    pub fn shutdown_write(&mut self) {
        // The peer may be gone already; then there is nothing to shut down.
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Removes the socket from the poll before it is dropped.
    pub fn deregister(&mut self, registry: &Registry) {
        // Deregistering a socket that failed can fail too; it is about to
        // be closed either way.
        let _ = registry.deregister(&mut self.stream);
    }
}

/// The per-connection limits, from the server's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest line, in bytes.
    pub max_line: usize,
    /// Lines per second (0 = no limit).
    pub rate: u32,
    /// Lines at once before the rate applies.
    pub burst: u32,
}

/// True for errors that just mean the peer went away.
pub fn is_disconnect(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::NotConnected
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::TimedOut
    )
}
