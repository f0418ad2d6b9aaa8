//! TLS: the certificate and key, loaded at start and again on SIGHUP.
//!
//! The daemon serves TLS with rustls and its ring crypto provider (TLS 1.2
//! and 1.3, rustls's default cipher suites). The certificate chain and the
//! private key are PEM files (`--tls-cert`, `--tls-key`), parsed with
//! `rustls-pki-types`; a key that does not match the certificate is
//! refused. A bad certificate or key at start is a start error; on a
//! reload ([`Reloader::reload`]), the old configuration stays in force and
//! the error is logged once: one bad file never takes the server down.
//!
//! Each I/O thread keeps its own `Arc` of the configuration and makes every
//! new TLS connection with it; a reload sends the new one to each thread
//! over a channel and wakes it, so connections made after the reload get
//! the new certificate while the open ones go on with theirs. No lock is
//! taken on any path.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::Sender;
use mio::Waker;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// Most plaintext rustls buffers for one connection before the event loop
/// stops handing it more (the rest waits in the connection's own queue,
/// which `--sendq` bounds): a few TLS records.
pub const PLAINTEXT_BUFFER: usize = 64 * 1024;

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Occurs when the certificate file cannot be read or holds no
    /// certificate.
    #[error("cannot read the TLS certificate {path}: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Occurs when the key file cannot be read or holds no private key.
    #[error("cannot read the TLS key {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Occurs when the key does not belong to the certificate, or rustls
    /// refuses them together.
    #[error("cannot use the TLS certificate {cert} with the key {key}: {reason}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
}

/// Where the certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM, the server's own certificate first.
    pub cert: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A certificate and key loaded: the configuration new connections are
/// made with, and the fingerprint of the certificate it presents.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// What rustls makes connections with.
    pub config: Arc<ServerConfig>,
    /// The server's own certificate's fingerprint, for the log.
    pub fingerprint: Fingerprint,
}

/// The SHA-256 fingerprint of a certificate, written as `openssl x509
/// -fingerprint -sha256` writes it (`AB:CD:...`), so that an operator can
/// compare what the log says with what a client saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl TlsFiles {
    /// Reads both files and makes the server configuration.
    ///
    /// # Errors
    /// A [`TlsError`] saying which file is wrong and why.
    pub fn load(&self) -> Result<Loaded, TlsError> {
        let certs = read_certificates(&self.cert)?;
        // read_certificates refuses a file without one.
        let fingerprint = Fingerprint::of(certs.first().map_or(&[][..], |c| c.as_ref()));
        let key = read_key(&self.key)?;
        let provider = Arc::new(crypto_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
            .map_err(|e| TlsError::Pair {
                cert: self.cert.clone(),
                key: self.key.clone(),
                reason: e.to_string(),
            })?;
        Ok(Loaded {
            config: Arc::new(config),
            fingerprint,
        })
    }
}

/// The ring crypto provider. rustls 0.23.48 marks it deprecated because it
/// offers no post-quantum key exchange; it is kept because it builds with a
/// C compiler alone, where aws-lc-rs (the one with X25519MLKEM768) needs
/// cmake, which a plain Debian machine does not have. TLS 1.3 with X25519
/// and TLS 1.2 with ECDHE are what clients get.
#[allow(deprecated)]
fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError::Certificate {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(describe_pem(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(describe_pem(&e)))?;
    if certs.is_empty() {
        return Err(error("no certificate in it (a PEM `CERTIFICATE` block)".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.to_path_buf(),
        reason: describe_pem(&e),
    })
}

/// A PEM error as a person reads it.
fn describe_pem(error: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::Io(e) => crate::ops::logging::describe(e),
        Error::NoItemsFound => "no PEM block of the right kind in it".to_string(),
        other => format!("not valid PEM ({other})"),
    }
}

/// What reloads the certificate: the files, and the way to each I/O
/// thread.
pub struct Reloader {
    files: TlsFiles,
    threads: Vec<(Sender<Arc<ServerConfig>>, Arc<Waker>)>,
}

impl fmt::Debug for Reloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloader")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader of `files` for the I/O threads behind `threads`.
    pub fn new(files: TlsFiles, threads: Vec<(Sender<Arc<ServerConfig>>, Arc<Waker>)>) -> Reloader {
        Reloader { files, threads }
    }

    /// The files it reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Reads the certificate and key again and, if they are good, hands
    /// the new configuration to every I/O thread for the connections made
    /// from now on.
    ///
    /// Returns the new certificate's fingerprint.
    ///
    /// # Errors
    /// A [`TlsError`]: the configuration in force stays.
    pub fn reload(&self) -> Result<Fingerprint, TlsError> {
        let loaded = self.files.load()?;
        for (sender, waker) in &self.threads {
            // A thread that has stopped (during shutdown) needs none.
            if sender.send(Arc::clone(&loaded.config)).is_ok() {
                if let Err(e) = waker.wake() {
                    log::error!("cannot wake an I/O thread to take the new certificate: {e}");
                }
            }
        }
        Ok(loaded.fingerprint)
    }
}

/// An I/O error from rustls's TLS layer, for the log.
pub fn tls_io_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}
