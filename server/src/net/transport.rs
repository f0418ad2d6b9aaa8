//! The bytes under a connection: plain TCP, or TLS over it.
//!
//! A [`Transport`] reads and writes *plaintext* for the connection above
//! it, whichever it is, without ever blocking. For TLS it follows rustls's
//! own non-blocking pattern: ciphertext is read from the socket into the
//! TLS state machine (`read_tls`, `process_new_packets`) only when the
//! plaintext already decrypted has been taken; what is written goes into
//! rustls's buffer (at most [`PLAINTEXT_BUFFER`]) and out as ciphertext
//! (`write_tls`) as far as the socket takes it. The event loop keeps
//! WRITABLE interest while ciphertext is left ([`Transport::wants_write`]),
//! as for a plain socket's queue.
//!
//! A connection on a TLS listener starts handshaking; the event loop drives
//! the handshake with [`Transport::handshake`] and only then tells the hub
//! the client is here. A client that does not speak TLS gets the alert
//! rustls queues for it and is closed.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

use crate::net::tls::{tls_io_error, PLAINTEXT_BUFFER};

/// What a read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// This many bytes of plaintext.
    Data(usize),
    /// Nothing more for now.
    WouldBlock,
    /// The peer ended the stream (for TLS: its close_notify, or the end of
    /// the TCP stream).
    Eof,
}

/// How far a handshake has come.
#[derive(Debug)]
pub enum Handshake {
    /// It is over: the connection carries plaintext now.
    Done,
    /// It goes on when the peer sends more.
    Pending,
    /// The peer ended the stream first.
    Eof,
}

/// The bytes under one connection.
pub enum Transport {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream>),
}

/// A TCP stream and the TLS state over it.
pub struct TlsStream {
    stream: TcpStream,
    tls: ServerConnection,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Plain(stream) => f.debug_tuple("Plain").field(stream).finish(),
            Transport::Tls(tls) => f
                .debug_struct("Tls")
                .field("stream", &tls.stream)
                .field("handshaking", &tls.tls.is_handshaking())
                .finish(),
        }
    }
}

impl Transport {
    /// TLS over `stream`, with the server configuration in force now.
    ///
    /// # Errors
    /// When rustls cannot start a connection with `config`.
    pub fn tls(stream: TcpStream, config: Arc<ServerConfig>) -> io::Result<Transport> {
        let mut tls = ServerConnection::new(config).map_err(tls_io_error)?;
        tls.set_buffer_limit(Some(PLAINTEXT_BUFFER));
        Ok(Transport::Tls(Box::new(TlsStream { stream, tls })))
    }

    /// The socket, to register with a poll.
    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(stream) => stream,
            Transport::Tls(tls) => &mut tls.stream,
        }
    }

    /// Whether the connection speaks TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// Whether the TLS handshake is still under way (never, for plain TCP).
    pub fn is_handshaking(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(tls) => tls.tls.is_handshaking(),
        }
    }

    /// Reads plaintext into `buf`, adding the bytes taken from the socket
    /// (ciphertext, for TLS) to `raw`, which the caller's read budget and
    /// counters go by.
    ///
    /// # Errors
    /// When the socket fails, or the peer breaks the TLS protocol (then the
    /// alert rustls has for it is sent first, as far as the socket takes
    /// it).
    pub fn read(&mut self, buf: &mut [u8], raw: &mut usize) -> io::Result<Received> {
        match self {
            Transport::Plain(stream) => match stream.read(buf) {
                Ok(0) => Ok(Received::Eof),
                Ok(n) => {
                    *raw += n;
                    Ok(Received::Data(n))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Received::WouldBlock),
                Err(e) => Err(e),
            },
            Transport::Tls(tls) => tls.read(buf, raw),
        }
    }

    /// Takes the TLS handshake as far as what the peer has sent allows,
    /// adding the bytes read to `raw`. Any plaintext that came after the
    /// handshake stays for [`Transport::read`].
    ///
    /// # Errors
    /// As for [`Transport::read`].
    pub fn handshake(&mut self, raw: &mut usize) -> io::Result<Handshake> {
        match self {
            Transport::Plain(_) => Ok(Handshake::Done),
            Transport::Tls(tls) => tls.handshake(raw),
        }
    }

    /// Writes what it can of `data`; returns how much was taken.
    ///
    /// # Errors
    /// `WouldBlock` when nothing could be taken now; otherwise when the
    /// socket fails.
    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(stream) => stream.write(data),
            Transport::Tls(tls) => {
                let taken = tls.tls.writer().write(data)?;
                tls.flush()?;
                if taken == 0 && !data.is_empty() {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(taken)
            }
        }
    }

    /// Writes out what TLS still holds (ciphertext of data already taken,
    /// handshake messages, alerts). True when nothing is left.
    ///
    /// # Errors
    /// When the socket fails.
    pub fn flush(&mut self) -> io::Result<bool> {
        match self {
            Transport::Plain(_) => Ok(true),
            Transport::Tls(tls) => tls.flush(),
        }
    }

    /// Whether TLS holds output the socket has not taken yet.
    pub fn wants_write(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(tls) => tls.tls.wants_write(),
        }
    }

    /// Ends our sending side: for TLS, a close_notify first.
    pub fn shutdown_write(&mut self) {
        if let Transport::Tls(tls) = self {
            tls.tls.send_close_notify();
            // The peer may be gone; it is closed either way.
            let _ = tls.flush();
        }
        let _ = self.socket().shutdown(Shutdown::Write);
    }
}

impl TlsStream {
    fn read(&mut self, buf: &mut [u8], raw: &mut usize) -> io::Result<Received> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(0) => return Ok(Received::Eof),
                Ok(n) => return Ok(Received::Data(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The TCP stream ended without a close_notify.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Received::Eof),
                Err(e) => return Err(e),
            }
            match self.read_tls(raw)? {
                Some(true) => {}
                Some(false) => return Ok(Received::WouldBlock),
                None => return Ok(Received::Eof),
            }
        }
    }

    fn handshake(&mut self, raw: &mut usize) -> io::Result<Handshake> {
        while self.tls.is_handshaking() {
            match self.read_tls(raw)? {
                Some(true) => {}
                Some(false) => return Ok(Handshake::Pending),
                None => return Ok(Handshake::Eof),
            }
        }
        Ok(Handshake::Done)
    }

    /// Reads ciphertext from the socket and processes it: `Some(true)` when
    /// something came, `Some(false)` when the socket would block, `None` at
    /// the end of the TCP stream.
    fn read_tls(&mut self, raw: &mut usize) -> io::Result<Option<bool>> {
        match self.tls.read_tls(&mut self.stream) {
            Ok(0) => Ok(None),
            Ok(n) => {
                *raw += n;
                if let Err(e) = self.tls.process_new_packets() {
                    // Send the alert rustls has queued for it, if the
                    // socket takes it; the connection ends either way.
                    let _ = self.flush();
                    return Err(tls_io_error(e));
                }
                Ok(Some(true))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Some(false)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Some(true)),
            Err(e) => Err(e),
        }
    }

    fn flush(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}
