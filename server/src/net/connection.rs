//! One client connection as the event loop sees it: a socket, the decoder
//! for what it sends, and the queue of what is still to be written to it.
//!
//! Sockets are non-blocking and registered edge-triggered, so every read
//! and write here loops until the kernel says `WouldBlock`; `Interrupted`
//! is retried; reset, aborted and broken-pipe errors mean the peer is gone
//! and are reported as such, not logged as failures. Output is queued and
//! written as soon as possible; WRITABLE interest is held only while bytes
//! remain queued, so an idle connection costs no wake-ups.
//!
//! Every read, in every phase, goes through one budget per turn
//! ([`READ_BUDGET`]): a client that blasts data (before or after `/quit`)
//! gets its share of the loop and then waits for the next turn like
//! everyone else.

mod carry;

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use chat_protocol::{DecodeError, LineDecoder};
use mio::{Interest, Registry, Token};

use crate::chat::messages::ConnId;
use crate::frontend::web::frames::{End, FrameDecoder};
use crate::frontend::web::origin::OriginPolicy;
use crate::frontend::web::Step;
use crate::frontend::{Protocol, Session};
use crate::net::flood::TokenBucket;
use crate::net::timers::TimerSlots;
use crate::net::transport::{Handshake, Received, Transport};
use crate::ops::stats::CloseReason;

/// Most bytes read from one connection in one turn of the event loop,
/// whatever its phase. Without flood control (`--rate 0`), or after
/// `/quit`, a fast sender could otherwise keep the loop reading its socket
/// forever; past this it waits for the next turn like everyone else.
pub const READ_BUDGET: usize = 256 * 1024;

/// Most bytes a closing connection may send us after the server said
/// goodbye. Reading them only keeps its last output from being destroyed
/// by a reset (see [`Phase::Lingering`]); a client that keeps sending past
/// this is closed at once.
pub const LINGER_DISCARD_LIMIT: usize = 64 * 1024;

/// An output queue that has drained keeps its buffer only up to this size
/// (the most the event loop queues before it writes, see
/// `FLUSH_BEFORE_QUEUEING` there), so a connection in a busy room does not
/// allocate anew every turn, while one that was sent a bigger burst gives
/// the memory back at once. Connections that go quiet give up even this
/// much within seconds (see [`Connection::release_idle_memory`]).
const KEPT_QUEUE_CAPACITY: usize = 64 * 1024;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A TLS handshake is under way: the hub has not heard of the
    /// connection yet, and will once it is done.
    Handshaking,
    /// A web connection's HTTP request is being read: the hub has not
    /// heard of it, and will if it is a WebSocket upgrade.
    Requesting,
    /// Reading lines and writing output.
    Open,
    /// The connection is ending (its client closed its side, or it was
    /// idle too long) and the hub has been told: reading nothing more,
    /// still writing what is queued, waiting for the hub's last words and
    /// its `Close`.
    Leaving,
    /// The hub said close: writing what is queued, reading nothing more.
    Closing {
        /// When to give up on the client taking its last output.
        until: Instant,
    },
    /// Everything is written and our side is shut down; reading and
    /// discarding (at most [`LINGER_DISCARD_LIMIT`]) until the client
    /// closes its side too, or until the deadline (the same one as in
    /// `Closing`). Closing a socket with unread input makes the kernel send
    /// a reset, which can destroy output the client has not read yet, so
    /// we wait for its end of stream first.
    Lingering {
        /// When to give up waiting and close anyway.
        until: Instant,
    },
    /// Nothing more is read or written: the connection failed or overflowed
    /// its queue, and is closed at the end of this batch.
    Dropped,
}

impl Phase {
    /// Where a connection of `protocol` starts once any TLS handshake is
    /// over: reading its HTTP request (web), or open.
    pub fn after_handshake(protocol: Protocol) -> Phase {
        match protocol {
            Protocol::Web => Phase::Requesting,
            Protocol::Line | Protocol::Irc | Protocol::Test => Phase::Open,
        }
    }
}

/// Why reading a connection stopped before the kernel ran out of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// Out of tokens (see [`crate::net::flood`]): read again at this
    /// instant.
    Flood(Instant),
    /// Its share of this turn is used up: read again next turn.
    Budget,
    /// The hub's queue is full: read again once it has room.
    HubFull,
}

/// What a read pass found.
#[derive(Debug)]
pub enum ReadOutcome {
    /// Everything available was read; the stream goes on.
    Open,
    /// Reading stopped early and must be taken up again (see [`Pause`]).
    Paused(Pause),
    /// The client ended its side of the stream.
    Eof,
    /// The client sent more after our goodbye than we read for it (see
    /// [`LINGER_DISCARD_LIMIT`]).
    TooMuchAfterClose,
    /// The connection failed (reset, or another error).
    Failed(io::Error),
    /// The client's first bytes on a plain listener are a TLS handshake: a
    /// TLS client at the wrong port, which can read nothing we could say.
    TlsOnPlainPort,
    /// A WebSocket client sent its Close frame: it is leaving, as at end of
    /// stream.
    WebSocketClosed,
    /// A WebSocket client broke the protocol in this way.
    WebSocketViolation(&'static str),
}

/// What reading a web connection's HTTP request found.
#[derive(Debug)]
pub enum RequestOutcome {
    /// The request is not complete yet.
    Pending,
    /// Its share of this turn is used up: read again next turn.
    Budget,
    /// The request is complete: this is the answer.
    Answered(Step),
    /// The client closed its side first.
    Eof,
    /// The connection failed.
    Failed(io::Error),
}

/// How a connection's input becomes lines.
#[derive(Debug)]
enum Decoder {
    /// A byte stream of lines (TCP, TLS).
    Lines(LineDecoder),
    /// WebSocket frames, one line per message.
    Frames(Box<FrameDecoder>),
}

/// The lines one piece of input completes, whichever the decoder.
enum Input<'a> {
    Lines(chat_protocol::decoder::Lines<'a>),
    Frames(crate::frontend::web::frames::Messages<'a>),
}

impl Decoder {
    fn decode<'a>(&'a mut self, data: &'a [u8]) -> Input<'a> {
        match self {
            Decoder::Lines(decoder) => Input::Lines(decoder.decode(data)),
            Decoder::Frames(decoder) => Input::Frames(decoder.decode(data)),
        }
    }

    /// Whether lines are decoded and waiting to be taken (a WebSocket
    /// message holds a whole line, or several, once it has come).
    fn has_ready(&self) -> bool {
        match self {
            Decoder::Lines(_) => false,
            Decoder::Frames(frames) => frames.has_ready(),
        }
    }

    /// The line held when the stream ended (a WebSocket message is whole
    /// or nothing).
    fn finish(&mut self) -> Option<Result<String, DecodeError>> {
        match self {
            Decoder::Lines(decoder) => decoder.finish(),
            Decoder::Frames(_) => None,
        }
    }
}

impl Input<'_> {
    fn has_line(&mut self) -> bool {
        match self {
            Input::Lines(lines) => lines.has_line(),
            Input::Frames(messages) => messages.has_line(),
        }
    }

    fn remaining(&self) -> &[u8] {
        match self {
            Input::Lines(lines) => lines.remaining(),
            Input::Frames(messages) => messages.remaining(),
        }
    }

    fn next(&mut self) -> Option<Result<String, DecodeError>> {
        match self {
            Input::Lines(lines) => lines.next(),
            Input::Frames(messages) => messages.next(),
        }
    }
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

/// Where decoded lines go: the hub, as long as its queue has room.
pub trait LineSink {
    /// Whether one more line can be handed over now. Checked before a line
    /// is taken from the decoder, so a line is either handed over or left
    /// unread, never lost.
    fn has_room(&self) -> bool;
    /// Hands over one decoded line (or the error it earned).
    fn take(&mut self, line: Result<String, DecodeError>);
}

/// Whether `data` starts like a TLS handshake record (content type 22,
/// protocol version 3.x): no text client's first line starts with those
/// two control bytes.
fn is_tls_handshake(data: &[u8]) -> bool {
    data.starts_with(&[0x16, 0x03])
}

/// One client connection.
#[derive(Debug)]
pub struct Connection {
    /// Who this is, in messages to and from the hub.
    pub id: ConnId,
    /// The peer's address, for logs.
    pub addr: SocketAddr,
    /// Its front end: the wire format it speaks and what that remembers.
    pub session: Session,
    /// Where the connection is in its life.
    pub phase: Phase,
    /// Set while reading waits (see [`Pause`]); `None` while the socket is
    /// read whenever it is readable.
    pub paused: Option<Pause>,
    /// When the client last completed a line, for the idle timeout: bytes
    /// that never make a line (a slowloris trickle) do not count.
    pub last_line: Instant,
    /// When the connection was taken on.
    pub since: Instant,
    /// True while the client has never sent a line that was not blank and
    /// the connection is open: on a full server, such connections are the
    /// first to make room (see [`crate::net::acceptor`]).
    pub silent: bool,
    /// When the server last sent a keepalive PING that no line has answered
    /// yet (IRC connections), or a ping no frame has answered yet
    /// (WebSocket connections).
    pub pinged: Option<Instant>,
    /// When the client last sent a whole WebSocket frame (a pong answers a
    /// ping without making a line).
    pub last_frame: Instant,
    /// Whether the hub has heard of the connection (a TLS handshake or an
    /// HTTP request comes first on some listeners): until then its place
    /// is given back by the event loop when it closes.
    pub arrived: bool,
    /// The status of the Close frame a WebSocket gets when it is closed
    /// (see [`crate::frontend::web::frames`]).
    pub close_status: u16,
    /// Set once the client has sent anything: its first bytes are looked
    /// at for a TLS handshake on a plain port.
    heard: bool,
    /// Whether the hub knows the connection is ending (it was told, or it
    /// said close itself): then closing the socket tells it nothing more.
    pub told_hub: bool,
    /// Why the connection is ending, once that is known (for the metrics).
    pub close_reason: Option<CloseReason>,
    /// Already on the event loop's list of connections to flush after this
    /// batch, so that a connection is listed once however many messages
    /// it was given.
    pub flush_due: bool,
    /// Its pending timers, so they can be cancelled (see
    /// [`crate::net::timers`]).
    pub timers: TimerSlots,
    /// Bytes read since [`Connection::take_bytes_read`] last took them.
    bytes_read: usize,
    /// Bytes read and thrown away since the server said goodbye.
    discarded: usize,
    /// Bytes of drained bursts' buffers freed, for the event loop's count
    /// of what the allocator could give back (see [`crate::ops::memory`]).
    freed: usize,
    transport: Transport,
    decoder: Decoder,
    /// The client's allowance of lines.
    bucket: TokenBucket,
    /// Bytes read but not yet decoded because reading paused in the middle
    /// of them: at most one read's worth.
    held: Vec<u8>,
    /// Bytes to write; those before `written` are already written.
    queue: Vec<u8>,
    written: usize,
    /// Whether WRITABLE is part of the registered interest now.
    wants_write: bool,
}

impl Connection {
    /// Wraps an accepted socket and registers it for reading under `token`.
    /// A TLS connection starts handshaking; a plain one is open at once.
    ///
    /// # Errors
    /// When the socket cannot be registered.
    pub fn register(
        id: ConnId,
        mut transport: Transport,
        (addr, protocol): (SocketAddr, Protocol),
        limits: &Limits,
        registry: &Registry,
        token: Token,
    ) -> io::Result<Connection> {
        registry.register(transport.socket(), token, Interest::READABLE)?;
        let now = Instant::now();
        let phase = if transport.is_handshaking() {
            Phase::Handshaking
        } else {
            Phase::after_handshake(protocol)
        };
        Ok(Connection {
            id,
            addr,
            session: protocol.session(),
            phase,
            paused: None,
            last_line: now,
            since: now,
            silent: true,
            pinged: None,
            last_frame: now,
            arrived: false,
            close_status: crate::frontend::web::frames::CLOSE_NORMAL,
            heard: false,
            told_hub: false,
            close_reason: None,
            flush_due: false,
            timers: TimerSlots::default(),
            bytes_read: 0,
            discarded: 0,
            freed: 0,
            transport,
            decoder: Decoder::Lines(LineDecoder::new(protocol.max_line(limits.max_line))),
            bucket: TokenBucket::new(limits.rate, limits.burst, now),
            held: Vec::new(),
            queue: Vec::new(),
            written: 0,
            wants_write: false,
        })
    }

    /// Reads what is available, within `budget` bytes (normally
    /// [`READ_BUDGET`] a turn), handing each decoded line (or decoding
    /// error) to `sink` as long as the client has tokens and the sink has
    /// room. At end of stream a final line without `\n` is handed over
    /// too.
    pub fn read_lines(
        &mut self,
        buf: &mut [u8],
        now: Instant,
        budget: usize,
        sink: &mut impl LineSink,
    ) -> ReadOutcome {
        if !self.held.is_empty() || self.decoder.has_ready() {
            let mut held = std::mem::take(&mut self.held);
            let (used, pause) = self.decode_allowed(&held, now, sink);
            if let Some(pause) = pause {
                held.drain(..used);
                self.held = held;
                return ReadOutcome::Paused(pause);
            }
        }
        if let Some(end) = self.websocket_end() {
            return end;
        }
        let mut budget = budget;
        loop {
            if budget == 0 {
                return ReadOutcome::Paused(Pause::Budget);
            }
            let want = buf.len().min(budget);
            let Some(chunk) = buf.get_mut(..want) else { return ReadOutcome::Paused(Pause::Budget) };
            let mut raw = 0;
            let received = self.transport.read(chunk, &mut raw);
            self.bytes_read += raw;
            budget = budget.saturating_sub(raw);
            match received {
                Ok(Received::Eof) => {
                    if let Some(line) = self.decoder.finish() {
                        // The client's last words, whatever the hub's queue
                        // holds: the close that follows is sent after them.
                        self.last_line = now;
                        sink.take(line);
                    }
                    return ReadOutcome::Eof;
                }
                Ok(Received::Data(n)) => {
                    let data = chunk.get(..n).unwrap_or_default();
                    if !std::mem::replace(&mut self.heard, true)
                        && is_tls_handshake(data)
                        && !self.transport.is_tls()
                    {
                        return ReadOutcome::TlsOnPlainPort;
                    }
                    let (used, pause) = self.decode_allowed(data, now, sink);
                    if let Some(pause) = pause {
                        self.held.extend_from_slice(data.get(used..).unwrap_or_default());
                        return ReadOutcome::Paused(pause);
                    }
                    if let Some(end) = self.websocket_end() {
                        return end;
                    }
                }
                Ok(Received::WouldBlock) => return ReadOutcome::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return ReadOutcome::Failed(e),
            }
        }
    }

    /// How a WebSocket's stream of frames ended, once it has (nothing after
    /// the end is read).
    fn websocket_end(&mut self) -> Option<ReadOutcome> {
        let Decoder::Frames(frames) = &mut self.decoder else { return None };
        match frames.end()? {
            End::Closed(_) => Some(ReadOutcome::WebSocketClosed),
            End::Violation(what) => Some(ReadOutcome::WebSocketViolation(what)),
        }
    }

    /// Reads a web connection's HTTP request, within `budget` bytes, until
    /// its front end has an answer for it.
    pub fn read_request(&mut self, buf: &mut [u8], budget: usize, origins: &OriginPolicy) -> RequestOutcome {
        let Session::Web(web) = &mut self.session else {
            return RequestOutcome::Failed(io::Error::other(
                "an HTTP request on a connection that is not a web one",
            ));
        };
        let secure = self.transport.is_tls();
        let mut budget = budget;
        loop {
            if budget == 0 {
                return RequestOutcome::Budget;
            }
            let want = buf.len().min(budget);
            let Some(chunk) = buf.get_mut(..want) else { return RequestOutcome::Budget };
            let mut raw = 0;
            let received = self.transport.read(chunk, &mut raw);
            self.bytes_read += raw;
            budget = budget.saturating_sub(raw);
            match received {
                Ok(Received::Data(n)) => {
                    let piece = chunk.get(..n).unwrap_or_default();
                    match web.take_request(piece, origins, secure) {
                        Step::More => {}
                        answered => return RequestOutcome::Answered(answered),
                    }
                }
                Ok(Received::WouldBlock) => return RequestOutcome::Pending,
                Ok(Received::Eof) => return RequestOutcome::Eof,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return RequestOutcome::Failed(e),
            }
        }
    }

    /// The web connection's request was a WebSocket upgrade: from now on
    /// it reads frames, beginning with `after` (what the client sent after
    /// its request).
    pub fn start_websocket(&mut self, after: Vec<u8>, max_line: usize) {
        self.decoder = Decoder::Frames(Box::new(FrameDecoder::new(max_line)));
        self.held = after;
        // The request is answered: its buffer goes.
        self.session = Session::Web(Box::default());
        self.phase = Phase::Open;
        self.last_frame = Instant::now();
    }

    /// Whether the connection speaks WebSocket now.
    pub fn is_websocket(&self) -> bool {
        matches!(self.decoder, Decoder::Frames(_))
    }

    /// The pong owed for the client's latest ping, and whether it has sent
    /// a whole frame since the last call (the keepalive's "alive").
    pub fn take_websocket_news(&mut self, now: Instant) -> Option<Vec<u8>> {
        let Decoder::Frames(frames) = &mut self.decoder else { return None };
        if frames.take_heard() {
            self.last_frame = now;
        }
        frames.take_pong()
    }

    /// Takes a TLS handshake as far as the client's bytes allow.
    pub fn handshake(&mut self) -> io::Result<Handshake> {
        let mut raw = 0;
        let outcome = self.transport.handshake(&mut raw);
        self.bytes_read += raw;
        outcome
    }

    /// Whether the transport holds output for the socket (TLS handshake
    /// messages or alerts, say) that a flush would write.
    pub fn has_transport_output(&self) -> bool {
        self.transport.wants_write()
    }

    /// Decodes lines from `data` while the sink has room and the client has
    /// tokens. Returns how many bytes were used and, if it stopped before
    /// the end, why; the rest must be kept for later.
    fn decode_allowed(
        &mut self,
        data: &[u8],
        now: Instant,
        sink: &mut impl LineSink,
    ) -> (usize, Option<Pause>) {
        let mut lines = self.decoder.decode(data);
        loop {
            // Check for room and a token before taking a line, so that a
            // line is either handed over or left in `data`, never lost.
            if lines.has_line() {
                if !sink.has_room() {
                    return (data.len() - lines.remaining().len(), Some(Pause::HubFull));
                }
                if !self.bucket.try_take(now) {
                    let at = self.bucket.next_token_at();
                    return (data.len() - lines.remaining().len(), Some(Pause::Flood(at)));
                }
            }
            match lines.next() {
                Some(line) => {
                    self.last_line = now;
                    sink.take(line);
                }
                None => return (data.len(), None),
            }
        }
    }

    /// Reads and throws away what is available, within this turn's
    /// [`READ_BUDGET`] (used once the server has said goodbye).
    pub fn discard_input(&mut self, buf: &mut [u8]) -> ReadOutcome {
        let mut budget = READ_BUDGET;
        loop {
            if self.discarded > LINGER_DISCARD_LIMIT {
                return ReadOutcome::TooMuchAfterClose;
            }
            if budget == 0 {
                return ReadOutcome::Paused(Pause::Budget);
            }
            let want = buf.len().min(budget);
            let Some(chunk) = buf.get_mut(..want) else { return ReadOutcome::Paused(Pause::Budget) };
            let mut raw = 0;
            let received = self.transport.read(chunk, &mut raw);
            self.bytes_read += raw;
            self.discarded += raw;
            budget = budget.saturating_sub(raw);
            match received {
                Ok(Received::Eof) => return ReadOutcome::Eof,
                Ok(Received::Data(_)) => {}
                Ok(Received::WouldBlock) => return ReadOutcome::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return ReadOutcome::Failed(e),
            }
        }
    }

    /// Charges the client's allowance for a reply of `bytes` bytes that its
    /// own command asked for (see [`TokenBucket::charge_reply`]).
    pub fn charge_reply(&mut self, bytes: usize, now: Instant) {
        self.bucket.charge_reply(bytes, now);
    }

    /// Bytes read from the socket since the last call, for the metrics.
    pub fn take_bytes_read(&mut self) -> usize {
        std::mem::take(&mut self.bytes_read)
    }

    /// True in the phases that still write output.
    pub fn accepts_output(&self) -> bool {
        matches!(
            self.phase,
            Phase::Handshaking | Phase::Requesting | Phase::Open | Phase::Leaving | Phase::Closing { .. }
        )
    }

    /// True once the hub has let go of the connection (it said close) or
    /// never will hear of it again: the phases that count against the
    /// descriptor budget for closing sockets rather than against
    /// `--max-clients`.
    pub fn is_closing(&self) -> bool {
        matches!(self.phase, Phase::Closing { .. } | Phase::Lingering { .. })
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.queue.len().saturating_sub(self.written)
    }

    /// Appends bytes to the output queue. Call [`Connection::flush`] to
    /// write them.
    pub fn enqueue(&mut self, bytes: &[u8]) {
        self.queue.extend_from_slice(bytes);
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
            if let Err(e) = registry.reregister(self.transport.socket(), token, interest) {
                return WriteOutcome::Failed(e);
            }
            self.wants_write = want;
        }
        outcome
    }

    fn write_queue(&mut self) -> WriteOutcome {
        while let Some(pending) = self.queue.get(self.written..).filter(|p| !p.is_empty()) {
            match self.transport.write(pending) {
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
        match self.transport.flush() {
            Ok(true) => {}
            Ok(false) => {
                self.compact();
                return WriteOutcome::Pending;
            }
            Err(e) => return WriteOutcome::Failed(e),
        }
        self.queue.clear();
        self.written = 0;
        if self.queue.capacity() > KEPT_QUEUE_CAPACITY {
            // A burst has drained: give its memory back.
            self.freed += self.queue.capacity();
            self.queue = Vec::new();
        }
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

    /// Gives back the memory a quiet connection holds for nothing: an empty
    /// output queue's buffer. Called for every connection now and then
    /// (see [`crate::net::event_loop`]), so that a connection that received
    /// a little and then went quiet costs what one that never did costs.
    /// Returns how many bytes it freed.
    pub fn release_idle_memory(&mut self) -> usize {
        let mut freed = 0;
        if self.queued() == 0 && self.queue.capacity() > 0 {
            freed += self.queue.capacity();
            self.queue = Vec::new();
            self.written = 0;
        }
        if self.held.is_empty() && self.held.capacity() > 0 {
            freed += self.held.capacity();
            self.held = Vec::new();
        }
        if let Decoder::Frames(frames) = &mut self.decoder {
            freed += frames.release_idle_memory();
        }
        freed
    }

    /// Bytes of buffers freed as bursts drained since the last call.
    pub fn take_freed(&mut self) -> usize {
        std::mem::take(&mut self.freed)
    }

    /// Memory the connection holds in its buffers, for tests and figures.
    pub fn buffer_capacity(&self) -> usize {
        let frames = match &self.decoder {
            Decoder::Frames(frames) => frames.capacity(),
            Decoder::Lines(_) => 0,
        };
        let request = match &self.session {
            Session::Web(web) => web.capacity(),
            _ => 0,
        };
        self.queue.capacity() + self.held.capacity() + frames + request
    }

    /// Shuts down our sending side: the peer reads the end of stream after
    /// everything written so far.
    pub fn shutdown_write(&mut self) {
        // The peer may be gone already; then there is nothing to shut down.
        self.transport.shutdown_write();
    }

    /// Removes the socket from the poll before it is dropped.
    pub fn deregister(&mut self, registry: &Registry) {
        // Deregistering a socket that failed can fail too; it is about to
        // be closed either way.
        let _ = registry.deregister(self.transport.socket());
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use std::net::{TcpListener, TcpStream as StdStream};
    use std::time::Duration;

    use mio::Poll;

    fn connection_and_peer(poll: &Poll) -> (Connection, StdStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = StdStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, addr) = listener.accept().unwrap();
        stream.set_nonblocking(true).unwrap();
        let id = ConnId {
            shard: 0,
            slot: 0,
            serial: 0,
        };
        let limits = Limits {
            max_line: 4096,
            rate: 0,
            burst: 1,
        };
        let conn = Connection::register(
            id,
            Transport::Plain(mio::net::TcpStream::from_std(stream)),
            (addr, Protocol::Line),
            &limits,
            poll.registry(),
            Token(0),
        )
        .unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (conn, peer)
    }

    /// Writes everything queued to `conn`, with `peer` reading it all.
    fn drain(conn: &mut Connection, peer: &mut StdStream, poll: &Poll) {
        let mut buf = vec![0u8; 64 * 1024];
        for _ in 0..10_000 {
            match conn.flush(poll.registry(), Token(0)) {
                WriteOutcome::Drained => return,
                WriteOutcome::Pending => {
                    let _ = peer.read(&mut buf).unwrap();
                }
                WriteOutcome::Failed(e) => panic!("{e}"),
            }
        }
        panic!("the queue never drained");
    }

    #[test]
    fn a_burst_that_has_drained_gives_its_memory_back() {
        let poll = Poll::new().unwrap();
        let (mut conn, mut peer) = connection_and_peer(&poll);
        conn.enqueue(&vec![b'x'; 1 << 20]);
        assert!(conn.buffer_capacity() >= 1 << 20);
        drain(&mut conn, &mut peer, &poll);
        assert_eq!(
            conn.buffer_capacity(),
            0,
            "a megabyte burst is given back at once"
        );
        // A little traffic keeps a small buffer, until the connection is
        // quiet.
        conn.enqueue(b"hello\n");
        drain(&mut conn, &mut peer, &poll);
        assert!((1..=KEPT_QUEUE_CAPACITY).contains(&conn.buffer_capacity()));
        conn.release_idle_memory();
        assert_eq!(
            conn.buffer_capacity(),
            0,
            "a quiet connection costs what an idle one does"
        );
    }
}
