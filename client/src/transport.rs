//! The connection to the server, in clear or over TLS, as the two halves
//! the session uses: a [`Transport`] the main thread writes lines to and
//! closes, and a [`Reader`] the server reader thread reads from.
//!
//! In clear the split is free: each half has its own handle of the socket,
//! the reader blocks in `read`, and shutting the socket down ends that
//! read. A rustls connection does not split: one `ClientConnection` holds
//! the state of both directions (keys, record sequence numbers, the alerts
//! and key updates it owes the server) and must see every record that
//! arrives and make every record that leaves. So both halves share it
//! behind a `Mutex`, and the rule is that **the lock is never held across
//! a blocking read**:
//!
//! - The reader reads ciphertext from its own handle of the socket with no
//!   lock held (a blocking read, as in clear; shutting the socket down ends
//!   it), then takes the lock only to hand the bytes to rustls, take out
//!   the plaintext, and queue what rustls owes the server in return.
//! - The writer takes the lock to encrypt a line.
//! - Records leave in the order rustls made them (the server would refuse
//!   them otherwise): whoever made records takes the socket's write lock
//!   *before* letting go of the TLS lock, then writes them out. A writer
//!   blocked on a full socket therefore holds only the write lock, and the
//!   reader goes on reading, as it does in clear (it waits only if it owes
//!   the server records of its own at that moment, which is rare: a key
//!   update answer or an alert).
//!
//! Other shapes were weighed: rustls's `StreamOwned` behind a `Mutex`
//! would hold the lock through a blocking read and stop every line typed
//! until the server spoke; one I/O thread with a read timeout would poll;
//! an event loop (mio) in the client would rewrite the session around
//! readiness for both transports. This keeps the session's design (and its
//! plain path) as it is.
//!
//! The end of the stream: a close_notify from the server, or the TCP stream
//! ending without one (the server killed), is the end, as the daemon also
//! takes it; a line cut off by the latter is shown as it came, as in clear.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::ClientConnection;

/// Ciphertext read from the socket at once: a little more than one TLS
/// record (at most 16 KiB of plaintext plus its header and tag), so one
/// read usually brings whole records.
const RAW_BUFFER: usize = 18 * 1024;

/// The writing half of a connection, owned by the main thread.
pub struct Transport {
    /// A handle of the socket: written to in clear, shut down to end the
    /// connection in either mode.
    tcp: TcpStream,
    /// The TLS state shared with the [`Reader`]; `None` in clear.
    tls: Option<Arc<TlsShared>>,
}

/// What both halves of a TLS connection share.
struct TlsShared {
    /// rustls's state of the connection, both directions.
    conn: Mutex<ClientConnection>,
    /// A handle of the socket that records are written to. Its lock is
    /// taken, with `conn` still held, by whoever made records, so that they
    /// go out in the order they were made.
    out: Mutex<TcpStream>,
}

/// The reading half of a connection, owned by the server reader thread.
pub struct Reader {
    /// Its own handle of the socket, read with no lock held.
    tcp: TcpStream,
    /// `None` in clear.
    tls: Option<TlsReader>,
}

/// What the reader of a TLS connection keeps between reads.
struct TlsReader {
    /// Shared with the [`Transport`].
    shared: Arc<TlsShared>,
    /// Ciphertext read from the socket, [`RAW_BUFFER`] bytes long.
    raw: Vec<u8>,
    /// `raw[start..end]` is what rustls has not taken yet; it takes it
    /// only as fast as the plaintext is read out, so that its own buffer
    /// of plaintext never overflows.
    start: usize,
    /// See `start`.
    end: usize,
    /// True once the socket reached its end and rustls was told.
    eof: bool,
}

impl Transport {
    /// A connection in clear.
    pub fn plain(tcp: TcpStream) -> Transport {
        Transport { tcp, tls: None }
    }

    /// A TLS connection whose handshake is done.
    ///
    /// # Errors
    /// When the socket handle cannot be duplicated.
    pub fn tls(tcp: TcpStream, conn: ClientConnection) -> io::Result<Transport> {
        let out = tcp.try_clone()?;
        let shared = TlsShared {
            conn: Mutex::new(conn),
            out: Mutex::new(out),
        };
        Ok(Transport {
            tcp,
            tls: Some(Arc::new(shared)),
        })
    }

    /// The reading half, for the server reader thread.
    ///
    /// # Errors
    /// When the socket handle cannot be duplicated.
    pub fn reader(&self) -> io::Result<Reader> {
        let tcp = self.tcp.try_clone()?;
        let tls = self.tls.as_ref().map(|shared| TlsReader {
            shared: Arc::clone(shared),
            raw: vec![0; RAW_BUFFER],
            start: 0,
            end: 0,
            eof: false,
        });
        Ok(Reader { tcp, tls })
    }

    /// Writes all of `bytes`, encrypted with TLS.
    ///
    /// # Errors
    /// When the socket fails (the connection is lost), or a panic on the
    /// other half left the TLS state unusable.
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(shared) = &self.tls else {
            // `write_all` retries writes interrupted by a signal.
            return (&self.tcp).write_all(bytes);
        };
        let mut rest = bytes;
        while !rest.is_empty() {
            let mut conn = lock(&shared.conn)?;
            // rustls takes up to its buffer's limit; the records made of it
            // are written out below, which empties the buffer for the next
            // round.
            let taken = conn.writer().write(rest)?;
            if taken == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "TLS took none of the line",
                ));
            }
            rest = rest.get(taken..).unwrap_or_default();
            shared.send_records(conn)?;
        }
        Ok(())
    }

    /// Ends the connection: a close_notify for TLS if it can go at once,
    /// then the socket shut down both ways, which also ends the reader's
    /// blocking read.
    pub fn close(&self) {
        if let Some(shared) = &self.tls {
            shared.close_notify();
        }
        // Fails only when the connection is already gone, which is the aim.
        let _ = self.tcp.shutdown(Shutdown::Both);
    }
}

impl TlsShared {
    /// Writes out the records rustls has made, in order: the write lock is
    /// taken before `conn` is let go.
    fn send_records(&self, mut conn: MutexGuard<'_, ClientConnection>) -> io::Result<()> {
        let records = take_records(&mut conn)?;
        if records.is_empty() {
            return Ok(());
        }
        let out = lock(&self.out)?;
        drop(conn);
        // `write_all` retries writes interrupted by a signal.
        (&*out).write_all(&records)
    }

    /// Queues a close_notify and writes it if that takes no waiting: the
    /// locks are free and the socket takes it at once. The server would
    /// take a plain end of the TCP stream as the end too, so this is only
    /// good manners, never a reason to wait.
    fn close_notify(&self) {
        let Ok(mut conn) = self.conn.try_lock() else {
            return;
        };
        conn.send_close_notify();
        let Ok(records) = take_records(&mut conn) else {
            return;
        };
        let Ok(out) = self.out.try_lock() else {
            return;
        };
        drop(conn);
        // Non-blocking, so that a server that stopped reading cannot hold
        // the client here; the reader, if still reading, gets an error and
        // ends, which is what closing asks of it anyway.
        if out.set_nonblocking(true).is_ok() {
            let _ = (&*out).write(&records);
        }
    }
}

impl Read for Reader {
    /// Reads plaintext: in clear straight from the socket; over TLS, from
    /// rustls, feeding it ciphertext read with no lock held. `Ok(0)` at the
    /// end of the stream.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            None => (&self.tcp).read(buf),
            Some(tls) => tls.read(&self.tcp, buf),
        }
    }
}

impl TlsReader {
    /// See [`Reader::read`]. Each turn of the loop returns, hands rustls at
    /// least one byte of `raw`, or reads the socket (blocking), so it never
    /// spins.
    fn read(&mut self, tcp: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // A handle of its own, so that `self` stays free to change while the
        // lock is held.
        let shared = Arc::clone(&self.shared);
        loop {
            {
                let mut conn = lock(&shared.conn)?;
                match conn.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The TCP stream ended without a close_notify.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                if self.start < self.end {
                    self.feed(&shared, conn)?;
                    continue;
                }
                if self.eof {
                    // rustls has been told and has nothing more.
                    return Ok(0);
                }
            }
            let n = loop {
                match (&*tcp).read(&mut self.raw) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other?,
                }
            };
            self.start = 0;
            self.end = n;
            if n == 0 {
                self.eof = true;
                let mut conn = lock(&shared.conn)?;
                // Reading from an empty slice tells rustls the stream ended.
                conn.read_tls(&mut &[][..])?;
            }
        }
    }

    /// Hands rustls what it takes of `raw[start..end]`, has it decrypt,
    /// and sends what it owes the server. Its plaintext buffer is empty
    /// when this is called, so it cannot overflow.
    fn feed(&mut self, shared: &TlsShared, mut conn: MutexGuard<'_, ClientConnection>) -> io::Result<()> {
        let mut pending = self.raw.get(self.start..self.end).unwrap_or_default();
        let taken = conn.read_tls(&mut pending)?;
        if taken == 0 {
            return Err(io::Error::other("TLS took none of the bytes received"));
        }
        self.start = self.start.saturating_add(taken).min(self.end);
        let processed = conn.process_new_packets();
        // An alert rustls queued on an error goes out too, if it can.
        let sent = shared.send_records(conn);
        processed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        sent
    }
}

/// Everything rustls wants to send, taken out as bytes.
fn take_records(conn: &mut ClientConnection) -> io::Result<Vec<u8>> {
    let mut records = Vec::new();
    while conn.wants_write() {
        // Into a Vec: never blocks, never fails short.
        if conn.write_tls(&mut records)? == 0 {
            break;
        }
    }
    Ok(records)
}

/// Takes a lock; a lock poisoned by a panic on the other half (already
/// reported by the panic hook) ends the connection as an I/O error.
fn lock<T>(mutex: &Mutex<T>) -> io::Result<MutexGuard<'_, T>> {
    mutex
        .lock()
        .map_err(|_| io::Error::other("the TLS state was left unusable by a panic"))
}

#[cfg(test)]
mod tests {
    //! The transport and the handshake against a rustls server on a thread
    //! of the test, over loopback, with certificates made by rcgen.

    use super::*;
    use crate::error::ClientError;
    use crate::tls::TlsTarget;
    use std::io::{BufRead, BufReader};
    use std::net::{SocketAddr, TcpListener};
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::thread::{self, JoinHandle};
    use std::time::Duration;

    use rustls::pki_types::PrivateKeyDer;
    use rustls::{ServerConfig, ServerConnection, StreamOwned};

    /// How long any one wait in these tests may last; a passing test
    /// never waits for it.
    const WAIT: Duration = Duration::from_secs(10);

    type ServerStream = StreamOwned<ServerConnection, TcpStream>;

    /// A certificate and key in PEM, in a directory removed on drop.
    struct Files {
        dir: PathBuf,
        cert: rcgen::Certificate,
        key: rcgen::KeyPair,
    }

    impl Files {
        fn new(tag: &str, params: rcgen::CertificateParams) -> Files {
            let dir = std::env::temp_dir().join(format!("chat-client-tls-{}-{tag}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
            Files { dir, cert, key }
        }

        fn for_names(tag: &str, names: &[&str]) -> Files {
            let names: Vec<String> = names.iter().map(ToString::to_string).collect();
            Files::new(tag, rcgen::CertificateParams::new(names).unwrap())
        }

        fn ca(&self) -> PathBuf {
            self.dir.join("cert.pem")
        }

        fn server_config(&self) -> Arc<ServerConfig> {
            #[allow(deprecated)]
            let provider = rustls::crypto::ring::default_provider();
            let key = PrivateKeyDer::Pkcs8(self.key.serialize_der().into());
            let config = ServerConfig::builder_with_provider(Arc::new(provider))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![self.cert.der().clone()], key)
                .unwrap();
            Arc::new(config)
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A TLS server for one connection, following `script` on a thread.
    fn serve(
        files: &Files,
        script: impl FnOnce(ServerStream) + Send + 'static,
    ) -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = files.server_config();
        let thread = thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(WAIT)).unwrap();
            tcp.set_write_timeout(Some(WAIT)).unwrap();
            let conn = ServerConnection::new(config).unwrap();
            script(StreamOwned::new(conn, tcp));
        });
        (addr, thread)
    }

    /// Connects to `addr` trusting `files`, checking the name `host`.
    fn connect(addr: SocketAddr, host: &str, files: &Files) -> Result<Transport, ClientError> {
        let target = TlsTarget::new(host, Some(&files.ca())).unwrap();
        let tcp = TcpStream::connect_timeout(&addr, WAIT).unwrap();
        target.handshake(tcp, &addr.to_string(), WAIT)
    }

    /// Reads lines from `reader` on a thread until the end of the stream,
    /// handing each over (and then `None`).
    fn read_lines(reader: Reader) -> mpsc::Receiver<Option<io::Result<Vec<u8>>>> {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            // Bounded: the tests send a handful of lines.
            for _ in 0..100 {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) => tx.send(Some(Ok(line))).unwrap(),
                    Err(e) => {
                        tx.send(Some(Err(e))).unwrap();
                        return;
                    }
                }
            }
            let _ = tx.send(None);
        });
        rx
    }

    #[track_caller]
    fn next_line(rx: &mpsc::Receiver<Option<io::Result<Vec<u8>>>>) -> Vec<u8> {
        match rx.recv_timeout(WAIT) {
            Ok(Some(Ok(line))) => line,
            other => panic!("expected a line, got {other:?}"),
        }
    }

    #[track_caller]
    fn expect_end(rx: &mpsc::Receiver<Option<io::Result<Vec<u8>>>>) {
        match rx.recv_timeout(WAIT) {
            Ok(None) => {}
            other => panic!("expected the end of the stream, got {other:?}"),
        }
    }

    /// The server's side: echoes each line until `/quit`, answers `bye`,
    /// then closes with a close_notify.
    fn echo_until_quit(mut stream: ServerStream) {
        let mut reader = BufReader::new(&mut stream);
        let mut lines = Vec::new();
        for _ in 0..100 {
            let mut line = Vec::new();
            assert!(
                reader.read_until(b'\n', &mut line).unwrap() > 0,
                "the client closed"
            );
            if line == b"/quit\n" {
                break;
            }
            lines.push(line);
        }
        drop(reader);
        for line in lines {
            stream.write_all(&line).unwrap();
        }
        stream.write_all(b"bye\n").unwrap();
        stream.conn.send_close_notify();
        stream.flush().unwrap();
        let _ = stream.sock.shutdown(Shutdown::Write);
    }

    #[test]
    fn lines_cross_both_ways_while_the_reader_is_blocked() {
        let files = Files::for_names("echo", &["localhost"]);
        let (addr, server) = serve(&files, |mut stream| {
            // First the server waits for a line, so the client's reader is
            // blocked in a read when the line is written: the case a lock
            // held across that read would deadlock.
            let mut line = String::new();
            BufReader::new(&mut stream).read_line(&mut line).unwrap();
            stream.write_all(format!("echo {line}").as_bytes()).unwrap();
            stream.flush().unwrap();
            echo_until_quit(stream);
        });
        let mut transport = connect(addr, "localhost", &files).unwrap();
        let rx = read_lines(transport.reader().unwrap());
        transport.write_all(b"one\n").unwrap();
        assert_eq!(next_line(&rx), b"echo one\n");
        // Longer than rustls buffers (64 KiB) and than one TLS record.
        let mut long = vec![b'x'; 200 * 1024];
        long.push(b'\n');
        transport.write_all(&long).unwrap();
        transport.write_all(b"two\n/quit\n").unwrap();
        assert_eq!(next_line(&rx), long);
        assert_eq!(next_line(&rx), b"two\n");
        assert_eq!(next_line(&rx), b"bye\n");
        expect_end(&rx);
        transport.close();
        server.join().unwrap();
    }

    #[test]
    fn many_lines_at_once_all_arrive_in_order() {
        let files = Files::for_names("burst", &["localhost"]);
        let (addr, server) = serve(&files, |mut stream| {
            // 40 lines of 2 KiB: more plaintext than rustls holds at once,
            // sent before the client reads any.
            let mut burst = Vec::new();
            for i in 0..40 {
                burst.extend_from_slice(format!("{i:04} {}\n", "y".repeat(2043)).as_bytes());
            }
            stream.write_all(&burst).unwrap();
            stream.conn.send_close_notify();
            stream.flush().unwrap();
        });
        let transport = connect(addr, "localhost", &files).unwrap();
        let rx = read_lines(transport.reader().unwrap());
        for i in 0..40 {
            let line = next_line(&rx);
            assert_eq!(line.len(), 2049, "line {i}");
            assert!(line.starts_with(format!("{i:04} ").as_bytes()), "line {i}");
        }
        expect_end(&rx);
        server.join().unwrap();
    }

    #[test]
    fn an_end_without_close_notify_is_the_end_of_the_stream() {
        let files = Files::for_names("abrupt", &["localhost"]);
        let (addr, server) = serve(&files, |mut stream| {
            stream.write_all(b"last words\n").unwrap();
            stream.flush().unwrap();
            stream.sock.shutdown(Shutdown::Both).unwrap();
        });
        let transport = connect(addr, "localhost", &files).unwrap();
        let rx = read_lines(transport.reader().unwrap());
        assert_eq!(next_line(&rx), b"last words\n");
        expect_end(&rx);
        server.join().unwrap();
    }

    #[test]
    fn closing_ends_a_blocked_read_and_tells_the_server() {
        let files = Files::for_names("close", &["localhost"]);
        let (tx, told) = mpsc::channel();
        let (addr, server) = serve(&files, move |mut stream| {
            stream.flush().unwrap();
            let mut rest = Vec::new();
            // A close_notify from the client reads as the end of the stream.
            tx.send(stream.read_to_end(&mut rest).map(|_| rest)).unwrap();
        });
        let transport = connect(addr, "localhost", &files).unwrap();
        let rx = read_lines(transport.reader().unwrap());
        transport.close();
        match rx.recv_timeout(WAIT) {
            // The end, or an error from the socket shut down under it.
            Ok(None) | Ok(Some(Err(_))) => {}
            other => panic!("the reader should have ended, got {other:?}"),
        }
        match told.recv_timeout(WAIT).unwrap() {
            // The close_notify: the clean end, with nothing before it.
            Ok(rest) => assert_eq!(rest, b"", "nothing before the end"),
            // The reader held the connection just then (taking the
            // server's session tickets, say), so the close_notify was
            // skipped, as `close` says it may be: the end is the socket's.
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}"),
        }
        server.join().unwrap();
    }

    #[test]
    fn a_certificate_for_an_ip_address_is_checked_against_it() {
        let files = Files::for_names("ip", &["127.0.0.1"]);
        let (addr, server) = serve(&files, echo_until_quit);
        let mut transport = connect(addr, "127.0.0.1", &files).unwrap();
        let rx = read_lines(transport.reader().unwrap());
        transport.write_all(b"/quit\n").unwrap();
        assert_eq!(next_line(&rx), b"bye\n");
        expect_end(&rx);
        server.join().unwrap();
    }

    #[test]
    fn a_certificate_for_another_name_is_refused_naming_both() {
        let files = Files::for_names("name", &["example.org"]);
        let (addr, server) = serve(&files, |mut stream| {
            // The client's alert ends the handshake on this side too.
            assert!(stream.flush().is_err());
        });
        let err = connect(addr, "localhost", &files).err().unwrap();
        assert_eq!(err.exit_code(), crate::error::EXIT_UNVERIFIED);
        assert_eq!(
            err.to_string(),
            "cannot verify the server's certificate for localhost: it is not valid for \
             localhost, only for example.org; connect with a name it was issued for"
        );
        server.join().unwrap();
    }

    #[test]
    fn an_expired_certificate_is_refused_saying_when_it_expired() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        let files = Files::new("expired", params);
        let (addr, server) = serve(&files, |mut stream| {
            assert!(stream.flush().is_err());
        });
        let err = connect(addr, "localhost", &files).err().unwrap();
        assert_eq!(err.exit_code(), crate::error::EXIT_UNVERIFIED);
        assert_eq!(
            err.to_string(),
            "cannot verify the server's certificate for localhost: it expired at 2020-01-01T00:00:00Z"
        );
        server.join().unwrap();
    }

    #[test]
    fn a_server_that_never_answers_the_handshake_is_given_up_on_in_time() {
        let files = Files::for_names("silent", &["localhost"]);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepted by the kernel, never answered.
        let target = TlsTarget::new("localhost", Some(&files.ca())).unwrap();
        let tcp = TcpStream::connect_timeout(&addr, WAIT).unwrap();
        let err = target
            .handshake(tcp, &addr.to_string(), Duration::from_millis(200))
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), crate::error::EXIT_FAILURE);
        assert_eq!(
            err.to_string(),
            format!(
                "TLS handshake with {addr} failed: no TLS answer within 0.2 s \
                 (--connect-timeout); is it a TLS port?"
            )
        );
        drop(listener);
    }
}
