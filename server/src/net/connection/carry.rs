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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::Protocol;
    use crate::net::connection::{LineSink, ReadOutcome};
    use chat_protocol::DecodeError;
    use std::io::Write as _;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use mio::Poll;

    /// Takes every line.
    #[derive(Default)]
    struct Lines(Vec<Result<String, DecodeError>>);

    impl LineSink for Lines {
        fn has_room(&self) -> bool {
            true
        }
        fn take(&mut self, line: Result<String, DecodeError>) {
            self.0.push(line);
        }
    }

    fn limits(max_line: usize) -> Limits {
        Limits {
            max_line,
            rate: 0,
            burst: 1,
        }
    }

    fn id(slot: usize) -> ConnId {
        ConnId {
            shard: 0,
            slot,
            serial: slot as u64,
        }
    }

    /// A connection of `protocol` on the chat, and its client's end.
    fn open(poll: &Poll, protocol: Protocol) -> (Connection, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, addr) = listener.accept().unwrap();
        stream.set_nonblocking(true).unwrap();
        let mut conn = Connection::register(
            id(0),
            Transport::Plain(mio::net::TcpStream::from_std(stream)),
            (addr, protocol),
            &limits(100),
            poll.registry(),
            Token(0),
        )
        .unwrap();
        conn.arrived = true;
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (conn, peer)
    }

    /// Reads what the peer sent until the kernel has nothing more, with
    /// a bounded number of tries (the bytes are on loopback already).
    fn read_all(conn: &mut Connection, sink: &mut Lines) {
        let mut buf = vec![0u8; 4096];
        for _ in 0..1000 {
            match conn.read_lines(&mut buf, Instant::now(), 1 << 20, sink) {
                ReadOutcome::Open if !sink.0.is_empty() || !conn.decoder_is_idle() => return,
                ReadOutcome::Open => std::thread::yield_now(),
                other => panic!("{other:?}"),
            }
        }
        panic!("nothing came");
    }

    impl Connection {
        fn decoder_is_idle(&self) -> bool {
            match &self.decoder {
                Decoder::Lines(lines) => lines.is_idle(),
                Decoder::Frames(frames) => frames.is_at_rest(),
            }
        }
    }

    #[test]
    fn a_carried_connection_keeps_its_half_line_its_output_and_its_session() {
        let poll = Poll::new().unwrap();
        let (mut conn, mut peer) = open(&poll, Protocol::Irc);
        if let Session::Irc(irc) = &mut conn.session {
            irc.nick = Some(chat_protocol::Nick::new("ivy").unwrap());
        }
        peer.write_all(b"PRIVMSG #r :half a li").unwrap();
        let mut sink = Lines::default();
        read_all(&mut conn, &mut sink);
        assert!(sink.0.is_empty(), "no whole line yet");
        conn.enqueue(b"owed to the client\r\n");

        let (state, fd) = conn.carry(poll.registry()).expect("it can be carried");
        assert_eq!(state.input, b"PRIVMSG #r :half a li");
        assert_eq!(state.output, b"owed to the client\r\n");
        let json = serde_json::to_vec(&state).unwrap();
        let state: ConnState = serde_json::from_slice(&json).unwrap();

        let next = Poll::new().unwrap();
        let mut restored = Connection::restore(
            id(7),
            std::net::TcpStream::from(fd),
            state,
            &limits(100),
            next.registry(),
            Token(7),
        )
        .unwrap();
        assert_eq!(restored.id, id(7));
        assert!(
            matches!(&restored.session, Session::Irc(irc) if irc.nick.as_ref().map(|n| n.as_str()) == Some("ivy"))
        );
        peer.write_all(b"ne\r\n").unwrap();
        let mut sink = Lines::default();
        read_all(&mut restored, &mut sink);
        assert_eq!(sink.0, [Ok("PRIVMSG #r :half a line".to_string())]);
        assert!(matches!(
            restored.flush(next.registry(), Token(7)),
            crate::net::connection::WriteOutcome::Drained
        ));
        let mut owed = [0u8; 20];
        std::io::Read::read_exact(&mut peer, &mut owed).unwrap();
        assert_eq!(&owed, b"owed to the client\r\n");
    }

    #[test]
    fn a_smaller_max_line_applies_to_the_half_line_carried() {
        let poll = Poll::new().unwrap();
        let (mut conn, mut peer) = open(&poll, Protocol::Line);
        peer.write_all(b"0123456789").unwrap();
        let mut sink = Lines::default();
        read_all(&mut conn, &mut sink);
        let (state, fd) = conn.carry(poll.registry()).unwrap();
        let next = Poll::new().unwrap();
        let mut restored = Connection::restore(
            id(1),
            std::net::TcpStream::from(fd),
            state,
            &limits(5),
            next.registry(),
            Token(1),
        )
        .unwrap();
        peer.write_all(b"\nok\n").unwrap();
        let mut sink = Lines::default();
        for _ in 0..1000 {
            if sink.0.len() >= 2 {
                break;
            }
            let mut buf = vec![0u8; 4096];
            let _ = restored.read_lines(&mut buf, Instant::now(), 1 << 20, &mut sink);
            std::thread::yield_now();
        }
        assert_eq!(
            sink.0,
            [Err(DecodeError::TooLong { max: 5 }), Ok("ok".to_string())]
        );
    }

    #[test]
    fn a_tls_or_unfinished_web_connection_is_not_carried() {
        let poll = Poll::new().unwrap();
        let (conn, _peer) = open(&poll, Protocol::Web);
        assert!(!conn.can_be_carried(), "a web connection before its upgrade");
        let (mut conn, _peer) = open(&poll, Protocol::Line);
        conn.told_hub = true;
        assert!(!conn.can_be_carried(), "a connection the hub let go of");
    }
}
