//! TLS for the generator's connections (issue 15): the client side that
//! every TLS connection of a run is made with, the self-signed certificate
//! chat-bench makes for a server it starts itself, and what a handshake
//! negotiated.
//!
//! The client is rustls with its ring provider, as the daemon is, so the
//! generator costs the same per handshake whatever server it loads. The
//! certificate is verified for real: the run trusts exactly one certificate
//! (the one it generated, or `--ca FILE`) and checks the server's name
//! against it (`--tls-name`, `localhost` by default), so a run against the
//! wrong server, or one presenting another certificate, fails at its first
//! handshake instead of measuring something else. Session resumption is
//! off: every handshake of a run is a full one (key exchange and a
//! signature), the cost a crowd of new clients puts on a server.
//!
//! The connections themselves drive rustls without blocking from the
//! generator's mio loops ([`crate::client::Conn`]).

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, NamedGroup, RootCertStore};
use serde::Serialize;

use crate::error::{Error, Result};

/// The name a generated certificate is made for and a run checks by
/// default. ncat 7.93 does not match an IP address in a certificate, and
/// chat-server's certificates are usually for names, so the generator
/// checks a name, not 127.0.0.1.
pub const DEFAULT_NAME: &str = "localhost";

/// The key exchange group a client offers first (its key share), as
/// `--tls-group` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Group {
    /// X25519: what OpenSSL (and so ncat and `openssl s_client`), browsers
    /// and most clients offer first.
    #[default]
    X25519,
    /// NIST P-256.
    Secp256r1,
    /// NIST P-384: what rustls 0.23.48's ring provider offers first, so
    /// what a rustls client with that provider (chat-client) sends.
    Secp384r1,
}

impl Group {
    fn named(self) -> NamedGroup {
        match self {
            Group::X25519 => NamedGroup::X25519,
            Group::Secp256r1 => NamedGroup::secp256r1,
            Group::Secp384r1 => NamedGroup::secp384r1,
        }
    }
}

/// How every TLS connection of a run is made: the client configuration
/// (trusting one certificate) and the name the server must prove.
#[derive(Clone)]
pub struct TlsClient {
    /// rustls's client configuration, shared by every connection.
    config: Arc<ClientConfig>,
    /// The name the certificate must be valid for (sent as SNI too).
    name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient").field("name", &self.name).finish()
    }
}

impl TlsClient {
    /// A client that trusts exactly `roots` and checks the server's
    /// certificate for `name`, offering `first` as its key share (the
    /// provider's other groups after it), with session resumption off.
    ///
    /// # Errors
    /// When `name` is not a DNS name or IP address, or a root is not a
    /// certificate rustls can use as a trust anchor.
    pub fn trusting(roots: &[CertificateDer<'static>], name: &str, first: Group) -> Result<TlsClient> {
        let name = server_name(name)?;
        let mut store = RootCertStore::empty();
        for root in roots {
            store
                .add(root.clone())
                .map_err(|e| Error::msg(format!("cannot trust the certificate: {e}")))?;
        }
        let mut provider = crypto_provider();
        // A stable sort: the chosen group first, the others in the
        // provider's order.
        provider.kx_groups.sort_by_key(|g| g.name() != first.named());
        let provider = Arc::new(provider);
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::msg(format!("TLS client configuration: {e}")))?
            .with_root_certificates(store)
            .with_no_client_auth();
        // Every handshake a full one: what a crowd of new clients costs.
        config.resumption = Resumption::disabled();
        Ok(TlsClient {
            config: Arc::new(config),
            name,
        })
    }

    /// A client trusting the certificates of the PEM file `path` (`--ca`).
    ///
    /// # Errors
    /// When the file cannot be read, holds no certificate, or as
    /// [`TlsClient::trusting`].
    pub fn from_ca_file(path: &Path, name: &str, first: Group) -> Result<TlsClient> {
        let pem =
            fs::read(path).map_err(|e| Error::msg(format!("cannot read --ca {}: {e}", path.display())))?;
        let roots =
            certificates_in(&pem).map_err(|why| Error::msg(format!("--ca {}: {why}", path.display())))?;
        Self::trusting(&roots, name, first)
    }

    /// A new client connection, its ClientHello ready to be written.
    ///
    /// # Errors
    /// When rustls cannot start one (it cannot with this configuration;
    /// the error is passed on all the same).
    pub fn connect(&self) -> io::Result<ClientConnection> {
        ClientConnection::new(Arc::clone(&self.config), self.name.clone()).map_err(io::Error::other)
    }
}

/// The ring crypto provider, the daemon's own. rustls 0.23.48 marks it
/// deprecated for its lack of a post-quantum key exchange; the daemon keeps
/// it because it builds with a C compiler alone (aws-lc-rs needs cmake),
/// and the generator must offer what the daemon's clients get: TLS 1.3
/// with X25519 first.
#[allow(deprecated)]
fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The certificates in a PEM text.
///
/// # Errors
/// A sentence when the text holds a broken certificate block or none.
pub fn certificates_in(pem: &[u8]) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in it (want a PEM CERTIFICATE block)".to_string());
    }
    Ok(certs)
}

/// `name` as the server name a certificate must be valid for.
///
/// # Errors
/// When it is neither a DNS name nor an IP address.
pub fn server_name(name: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(name.to_string())
        .map_err(|_| Error::msg(format!("--tls-name {name:?} is not a DNS name or an IP address")))
}

/// What a TLS handshake agreed on, as rustls names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Negotiated {
    /// `TLSv1_3` or `TLSv1_2`.
    pub version: String,
    /// The cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The key exchange group, e.g. `X25519` (none on a TLS 1.2
    /// resumption).
    pub key_exchange: String,
    /// `Full` or `Resumed`.
    pub handshake: String,
}

impl Negotiated {
    /// What `conn` negotiated, once its handshake is over.
    pub fn of(conn: &ClientConnection) -> Option<Negotiated> {
        if conn.is_handshaking() {
            return None;
        }
        let version = conn.protocol_version()?;
        let suite = conn.negotiated_cipher_suite()?;
        Some(Negotiated {
            version: format!("{version:?}"),
            cipher_suite: format!("{:?}", suite.suite()),
            key_exchange: conn
                .negotiated_key_exchange_group()
                .map_or_else(|| "none".to_string(), |g| format!("{:?}", g.name())),
            handshake: match conn.handshake_kind() {
                Some(HandshakeKind::Resumed) => "Resumed".to_string(),
                Some(HandshakeKind::FullWithHelloRetryRequest) => "FullWithHelloRetryRequest".to_string(),
                _ => "Full".to_string(),
            },
        })
    }
}

/// A self-signed certificate for [`DEFAULT_NAME`] and 127.0.0.1 with its
/// key, in PEM files in a directory of its own (mode 0700, the key 0600),
/// made for a server this run starts and removed when dropped. An ECDSA
/// P-256 key: rcgen's default, and what ACME clients issue by default
/// today.
#[derive(Debug)]
pub struct SelfSigned {
    /// The directory holding both files.
    dir: PathBuf,
    /// The certificate, PEM.
    pub cert: PathBuf,
    /// The private key, PEM (PKCS#8).
    pub key: PathBuf,
    /// The certificate, for the client to trust.
    pub der: CertificateDer<'static>,
}

impl SelfSigned {
    /// Makes one in a new directory under the system's temporary
    /// directory.
    ///
    /// # Errors
    /// When the certificate cannot be made or the files written.
    pub fn generate() -> Result<SelfSigned> {
        let certified =
            rcgen::generate_simple_self_signed(vec![DEFAULT_NAME.to_string(), "127.0.0.1".to_string()])
                .map_err(|e| Error::msg(format!("cannot make a certificate: {e}")))?;
        let dir = std::env::temp_dir().join(format!(
            "chat-bench-tls-{}-{}",
            std::process::id(),
            unique_suffix()
        ));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::msg(format!("cannot create {}: {e}", dir.display())))?;
        let made = SelfSigned {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            der: certified.cert.der().clone(),
            dir,
        };
        write_private(&made.cert, certified.cert.pem().as_bytes())?;
        write_private(&made.key, certified.key_pair.serialize_pem().as_bytes())?;
        Ok(made)
    }
}

impl Drop for SelfSigned {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Writes `bytes` to a new file `path` readable by this user alone.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::msg(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(bytes)
        .map_err(|e| Error::msg(format!("cannot write {}: {e}", path.display())))
}

/// A number that differs between the certificates one process makes.
fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::{ServerConfig, ServerConnection};
    use std::os::unix::fs::PermissionsExt;

    /// A server configuration presenting `cert`.
    fn server_config(cert: &SelfSigned) -> Arc<ServerConfig> {
        let key = PrivateKeyDer::from_pem_file(&cert.key).unwrap();
        let config = ServerConfig::builder_with_provider(Arc::new(crypto_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der.clone()], key)
            .unwrap();
        Arc::new(config)
    }

    /// Runs a handshake between `client` and a server presenting `cert`,
    /// in memory; the client's error if it fails.
    fn handshake(
        client: &TlsClient,
        cert: &SelfSigned,
    ) -> std::result::Result<ClientConnection, rustls::Error> {
        let mut c = client.connect().unwrap();
        let mut s = ServerConnection::new(server_config(cert)).unwrap();
        // A TLS 1.3 handshake is two flights each way; a few more rounds
        // carry the session tickets.
        for _ in 0..8 {
            let mut wire = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut wire).unwrap();
            }
            if !wire.is_empty() {
                s.read_tls(&mut &wire[..]).unwrap();
                // The server's verdict is not what these tests are about;
                // the client's is.
                let _ = s.process_new_packets();
            }
            let mut wire = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut wire).unwrap();
            }
            if wire.is_empty() {
                break;
            }
            c.read_tls(&mut &wire[..]).unwrap();
            c.process_new_packets()?;
        }
        Ok(c)
    }

    #[test]
    fn the_generated_certificate_is_trusted_and_negotiates_tls13_with_the_group_asked_for() {
        let cert = SelfSigned::generate().unwrap();
        for (group, name) in [
            (Group::X25519, "X25519"),
            (Group::Secp256r1, "secp256r1"),
            (Group::Secp384r1, "secp384r1"),
        ] {
            let client = TlsClient::trusting(std::slice::from_ref(&cert.der), DEFAULT_NAME, group).unwrap();
            let conn = handshake(&client, &cert).unwrap();
            let negotiated = Negotiated::of(&conn).expect("the handshake is over");
            assert_eq!(negotiated.version, "TLSv1_3");
            assert_eq!(negotiated.key_exchange, name);
            assert_eq!(negotiated.handshake, "Full");
            assert!(negotiated.cipher_suite.starts_with("TLS13_"), "{negotiated:?}");
        }
    }

    #[test]
    fn another_certificate_or_another_name_is_refused() {
        let presented = SelfSigned::generate().unwrap();
        let other = SelfSigned::generate().unwrap();
        let trusts_other =
            TlsClient::trusting(std::slice::from_ref(&other.der), DEFAULT_NAME, Group::X25519).unwrap();
        let error = handshake(&trusts_other, &presented).unwrap_err();
        assert!(matches!(error, rustls::Error::InvalidCertificate(_)), "{error:?}");
        let wrong_name = TlsClient::trusting(
            std::slice::from_ref(&presented.der),
            "chat.example",
            Group::X25519,
        )
        .unwrap();
        let error = handshake(&wrong_name, &presented).unwrap_err();
        assert!(matches!(error, rustls::Error::InvalidCertificate(_)), "{error:?}");
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_a_clear_error() {
        let cert = SelfSigned::generate().unwrap();
        // The key file is PEM, but no certificate.
        let error = TlsClient::from_ca_file(&cert.key, DEFAULT_NAME, Group::X25519).unwrap_err();
        assert!(error.0.contains("no certificate in it"), "{error}");
        assert!(TlsClient::from_ca_file(&cert.cert, DEFAULT_NAME, Group::X25519).is_ok());
        assert_eq!(
            certificates_in(b"").unwrap_err(),
            "no certificate in it (want a PEM CERTIFICATE block)"
        );
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(certificates_in(broken)
            .unwrap_err()
            .starts_with("not a PEM certificate"));
    }

    #[test]
    fn a_server_name_must_be_a_name_or_an_address() {
        assert!(server_name("localhost").is_ok());
        assert!(server_name("127.0.0.1").is_ok());
        let error = server_name("not a name!").unwrap_err();
        assert_eq!(
            error.0,
            "--tls-name \"not a name!\" is not a DNS name or an IP address"
        );
    }

    #[test]
    fn the_key_is_private_and_the_files_go_with_the_certificate() {
        let cert = SelfSigned::generate().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&cert.key), 0o600);
        assert_eq!(mode(cert.key.parent().unwrap()), 0o700);
        let second = SelfSigned::generate().unwrap();
        assert_ne!(cert.cert, second.cert);
        let dir = cert.cert.parent().unwrap().to_path_buf();
        drop(cert);
        assert!(!dir.exists());
    }
}
