//! TLS for the tests: certificates made at test time, and a line client
//! over TLS that checks the server's certificate for real.
//!
//! Each [`Certificate`] is a fresh self-signed one (rcgen), written as PEM
//! to a directory of its own that is removed on drop, so no key material
//! is committed and no two tests share files. [`TlsClient`] trusts exactly
//! the certificate it is given and remembers the one the server presented,
//! so a test can tell which certificate served it.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chat_server::net::tls::{Fingerprint, TlsFiles};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::TIMEOUT;

/// A self-signed certificate and its key, in `cert.pem` and `key.pem` in a
/// directory of their own, removed on drop.
pub struct Certificate {
    dir: PathBuf,
    /// The certificate in DER, for a client to trust.
    pub der: CertificateDer<'static>,
}

impl Certificate {
    /// A certificate for `localhost` and `127.0.0.1`; `what` names its
    /// directory.
    #[track_caller]
    pub fn new(what: &str) -> Certificate {
        Certificate::for_names(what, &["localhost", "127.0.0.1"])
    }

    /// A certificate for the subject alternative names `names` (DNS names
    /// or IP addresses).
    #[track_caller]
    pub fn for_names(what: &str, names: &[&str]) -> Certificate {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("chat-tls-{}-{n}-{what}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the certificate's directory");
        let names = names.iter().map(ToString::to_string).collect::<Vec<_>>();
        let certified = rcgen::generate_simple_self_signed(names).expect("make a certificate");
        std::fs::write(dir.join("cert.pem"), certified.cert.pem()).expect("write cert.pem");
        std::fs::write(dir.join("key.pem"), certified.key_pair.serialize_pem()).expect("write key.pem");
        Certificate {
            der: certified.cert.der().clone(),
            dir,
        }
    }

    /// The files, as the server library takes them.
    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.cert_path(),
            key: self.key_path(),
        }
    }

    /// `cert.pem`.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// `key.pem`.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The certificate's SHA-256 fingerprint, as the daemon logs it.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.der)
    }

    /// Puts `other`'s files in place of these (what a renewal does).
    #[track_caller]
    pub fn replace_with(&self, other: &Certificate) {
        for name in ["cert.pem", "key.pem"] {
            std::fs::copy(other.dir.join(name), self.dir.join(name)).expect("copy a certificate file");
        }
    }

    /// A file in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A line client over TLS, trusting only one certificate, for the name
/// `localhost`.
pub struct TlsClient {
    stream: BufReader<StreamOwned<ClientConnection, TcpStream>>,
    /// The certificate the server presented.
    pub presented: CertificateDer<'static>,
}

impl TlsClient {
    /// Connects to `addr` and completes the handshake, trusting `trusted`
    /// alone.
    ///
    /// # Panics
    /// When the connection or the handshake fails, or takes longer than
    /// [`TIMEOUT`].
    #[track_caller]
    pub fn connect(addr: SocketAddr, trusted: &CertificateDer<'static>) -> TlsClient {
        let mut roots = RootCertStore::empty();
        roots.add(trusted.clone()).expect("trust the certificate");
        let config = ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .expect("rustls's default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
        tcp.set_read_timeout(Some(TIMEOUT)).expect("set a read timeout");
        tcp.set_write_timeout(Some(TIMEOUT)).expect("set a write timeout");
        let name = ServerName::try_from("localhost").expect("a server name");
        let conn = ClientConnection::new(Arc::new(config), name).expect("a TLS client");
        let mut stream = StreamOwned::new(conn, tcp);
        // The handshake happens on first use; the read timeout bounds it.
        while stream.conn.is_handshaking() {
            if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                panic!("the TLS handshake with {addr} failed: {e}");
            }
        }
        let presented = stream
            .conn
            .peer_certificates()
            .and_then(|certs| certs.first())
            .expect("the server presents a certificate")
            .clone()
            .into_owned();
        TlsClient {
            stream: BufReader::new(stream),
            presented,
        }
    }

    /// The next line from the server, without its line end.
    ///
    /// # Panics
    /// When none comes within [`TIMEOUT`], or the connection ends.
    #[track_caller]
    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        if let Err(e) = self.stream.read_line(&mut line) {
            panic!("no line over TLS: {e} (read so far: {line:?})");
        }
        assert!(line.ends_with('\n'), "the connection ended: {line:?}");
        line.pop();
        line
    }

    /// Reads the next line and checks it is `expected`.
    #[track_caller]
    pub fn expect_line(&mut self, expected: &str) {
        assert_eq!(self.read_line(), expected);
    }

    /// Sends bytes as they are (an HTTP request, a WebSocket frame).
    #[track_caller]
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stream = self.stream.get_mut();
        if let Err(e) = stream.write_all(bytes).and_then(|()| stream.flush()) {
            panic!("cannot send over TLS: {e}");
        }
    }

    /// What the server sends, decrypted, to read its own way (an HTTP
    /// answer, WebSocket frames).
    pub fn reader(&mut self) -> &mut impl BufRead {
        &mut self.stream
    }

    /// Sends `line` and its line end.
    #[track_caller]
    pub fn send(&mut self, line: &str) {
        let stream = self.stream.get_mut();
        if let Err(e) = stream
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stream.flush())
        {
            panic!("cannot send over TLS: {e}");
        }
    }
}

/// The ring provider the daemon uses too (see `chat_server::net::tls` for
/// why ring, and why the deprecation is allowed).
#[allow(deprecated)]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
