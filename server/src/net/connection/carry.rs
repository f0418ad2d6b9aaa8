//! A connection carried across a restart: what it hands over
//! ([`Connection::carry`]) and how the next process takes it back
//! ([`Connection::restore`]).
//!
//! Only a plain TCP connection that is open, on the chat, and (for a
//! WebSocket) between frames can be carried: the socket goes across as a
//! descriptor and the rest as [`ConnState`]. TLS cannot (rustls hands over
//! no session), nor can a connection still in its TLS handshake or its
//! HTTP request; the event loop closes those before the handover.
//!
//! The flood allowance is not carried: the next process starts each
//! client with a full bucket of its own `--burst`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::Instant;

use chat_protocol::LineDecoder;
use mio::{Interest, Registry, Token};

use super::{Connection, Decoder, Limits, Phase};
use crate::chat::messages::ConnId;
use crate::frontend::web::frames::FrameDecoder;
use crate::frontend::Session;
use crate::net::flood::TokenBucket;
use crate::net::timers::TimerSlots;
use crate::net::transport::Transport;
use crate::upgrade::state::{ConnState, SessionState};

impl Connection {
    /// Whether it can be carried across a restart (see the module's doc).
    pub fn can_be_carried(&self) -> bool {
        let decoder_at_rest = match &self.decoder {
            Decoder::Lines(_) => true,
            Decoder::Frames(frames) => frames.is_at_rest(),
        };
        self.phase == Phase::Open
            && self.arrived
            && !self.told_hub
            && !self.transport.is_tls()
            && decoder_at_rest
            && !matches!(self.session, Session::Web(_) if !self.is_websocket())
    }

    /// Hands the connection over: its state and its socket, deregistered.
    /// `None` (and the connection dropped) when it cannot be carried or
    /// its addresses cannot be read (it is gone already).
    pub fn carry(mut self, registry: &Registry) -> Option<(ConnState, OwnedFd)> {
        if !self.can_be_carried() {
            return None;
        }
        self.deregister(registry);
        let Transport::Plain(stream) = self.transport else { return None };
        let local = stream.local_addr().ok()?;
        let peer = stream.peer_addr().ok()?;
        let (mut input, skipping) = match &self.decoder {
            Decoder::Lines(lines) => (lines.partial().to_vec(), lines.is_skipping()),
            Decoder::Frames(_) => (Vec::new(), false),
        };
        input.extend_from_slice(&self.held);
        let output = self.queue.get(self.written..).unwrap_or_default().to_vec();
        let session = match self.session {
            Session::Line => SessionState::Line,
            Session::Test => SessionState::Test,
            Session::Irc(irc) => SessionState::Irc(irc),
            Session::Web(_) => SessionState::Web,
        };
        let state = ConnState {
            id: self.id,
            peer,
            local,
            session,
            input,
            skipping,
            output,
            silent: self.silent,
        };
        Some((state, OwnedFd::from(stream)))
    }

    /// A connection carried from the previous process, registered under
    /// `token` as `id`, with this process's `limits`. It is open and on the
    /// chat at once; what it had sent but not had acted on is read first,
    /// the next time it is read (the caller makes that happen at once).
    ///
    /// # Errors
    /// When the socket cannot be registered.
    pub fn restore(
        id: ConnId,
        stream: std::net::TcpStream,
        state: ConnState,
        limits: &Limits,
        registry: &Registry,
        token: Token,
    ) -> io::Result<Connection> {
        stream.set_nonblocking(true)?;
        let mut stream = mio::net::TcpStream::from_std(stream);
        registry.register(&mut stream, token, Interest::READABLE)?;
        let now = Instant::now();
        let addr: SocketAddr = state.peer;
        let (session, decoder) = match state.session {
            SessionState::Line => (Session::Line, None),
            SessionState::Test => (Session::Test, None),
            SessionState::Irc(irc) => (Session::Irc(irc), None),
            SessionState::Web => (
                Session::Web(Box::default()),
                Some(Decoder::Frames(Box::new(FrameDecoder::new(limits.max_line)))),
            ),
        };
        let decoder = decoder.unwrap_or_else(|| {
            let mut lines = LineDecoder::new(session.protocol().max_line(limits.max_line));
            if state.skipping {
                lines.skip_to_line_end();
            }
            Decoder::Lines(lines)
        });
        Ok(Connection {
            id,
            addr,
            session,
            phase: Phase::Open,
            paused: None,
            last_line: now,
            since: now,
            silent: state.silent,
            pinged: None,
            last_frame: now,
            arrived: true,
            close_status: crate::frontend::web::frames::CLOSE_NORMAL,
            heard: true,
            told_hub: false,
            close_reason: None,
            flush_due: false,
            timers: TimerSlots::default(),
            bytes_read: 0,
            discarded: 0,
            freed: 0,
            transport: Transport::Plain(stream),
            decoder,
            bucket: TokenBucket::new(limits.rate, limits.burst, now),
            held: state.input,
            queue: state.output,
            written: 0,
            wants_write: false,
        })
    }
}
