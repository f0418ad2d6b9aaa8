//! TLS for `--tls`: which certificates are trusted, the handshake, and
//! what the user is told when it fails.
//!
//! The trusted roots are the CA certificates of `--ca FILE` (PEM; a
//! self-signed server certificate itself will do), or else the system's
//! store as `rustls-native-certs` finds it (on Debian `/etc/ssl/certs`, from
//! the ca-certificates package; `SSL_CERT_FILE` and `SSL_CERT_DIR` name
//! others). They are read once per session, and every reconnection uses the
//! same [`TlsTarget`]. The certificate must be valid for the host part of
//! the address as written: a DNS name, or an IP address (an IP address
//! SAN).
//!
//! The handshake runs on the blocking socket before the session starts
//! with it, bounded as a whole by `--connect-timeout`, so that a server
//! that does not speak TLS (a plain port that says nothing) cannot hang the
//! client. Then the connection goes to [`crate::transport`], which shares
//! it between the main thread and the server reader.
//!
//! A refused certificate is one line in plain words (unknown issuer, not
//! valid for the host, expired, not valid yet) and exit status 5
//! ([`ClientError::Unverified`]); anything else that ends the handshake is
//! "cannot connect" ([`ClientError::Handshake`]), with a hint when the
//! server answered in clear.

use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore};

use crate::args::DEFAULT_TLS_PORT;
use crate::error::ClientError;
use crate::transport::Transport;

/// Everything a TLS connection to the server needs, made once per session.
#[derive(Clone)]
pub struct TlsTarget {
    /// The trusted roots, the ring provider, TLS 1.2 and 1.3.
    config: Arc<ClientConfig>,
    /// The name the certificate must be valid for: the host of ADDR.
    name: ServerName<'static>,
    /// `--ca`, to say in a message which CAs were trusted.
    ca: Option<PathBuf>,
}

impl TlsTarget {
    /// Reads the trusted roots (`ca`, or the system's) for a server named
    /// `host`.
    ///
    /// # Errors
    /// [`ClientError::CaFile`] when `ca` cannot be read or holds no usable
    /// certificate, [`ClientError::NoTrustedRoots`] when the system has
    /// none, [`ClientError::ServerName`] when `host` is neither a DNS name
    /// nor an IP address.
    pub fn new(host: &str, ca: Option<&Path>) -> Result<TlsTarget, ClientError> {
        let name = ServerName::try_from(host.to_string()).map_err(|_| ClientError::ServerName {
            host: host.to_string(),
        })?;
        let roots = match ca {
            Some(path) => roots_from_file(path)?,
            None => system_roots()?,
        };
        let config = ClientConfig::builder_with_provider(Arc::new(crypto_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Local {
                what: "set up TLS",
                source: io::Error::other(e),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsTarget {
            config: Arc::new(config),
            name,
            ca: ca.map(Path::to_path_buf),
        })
    }

    /// Runs the TLS handshake on `tcp`, just connected to `addr`, within
    /// `timeout`, and returns the connection ready for lines.
    ///
    /// # Errors
    /// [`ClientError::Unverified`] when the server's certificate is
    /// refused; [`ClientError::Handshake`] when the handshake fails for
    /// another reason or does not finish in time.
    pub fn handshake(
        &self,
        mut tcp: TcpStream,
        addr: &str,
        timeout: Duration,
    ) -> Result<Transport, ClientError> {
        let failed = |reason: String| ClientError::Handshake {
            addr: addr.to_string(),
            reason,
        };
        let mut conn = ClientConnection::new(Arc::clone(&self.config), self.name.clone())
            .map_err(|e| failed(e.to_string()))?;
        let deadline = Instant::now() + timeout;
        let secs = timeout.as_secs_f64();
        let timed_out = || {
            failed(format!(
                "no TLS answer within {secs} s (--connect-timeout); is it a TLS port?"
            ))
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out());
            }
            let timeouts = tcp
                .set_write_timeout(Some(left))
                .and_then(|()| tcp.set_read_timeout(Some(left)));
            timeouts.map_err(|e| failed(e.to_string()))?;
            match write_records(&mut conn, &mut tcp) {
                Ok(()) => {}
                Err(e) if is_timeout(&e) => return Err(timed_out()),
                Err(e) => return Err(failed(e.to_string())),
            }
            if !conn.is_handshaking() {
                break;
            }
            // chat-server closes a plain connection whose first bytes are
            // a TLS handshake, so a plain port answers with an end of
            // stream or a reset, or with its welcome if that went first.
            let closed = || {
                failed(format!(
                    "the server closed the connection without answering in TLS; is it a plain \
                     port? chat-server serves TLS on its --tls-listen port, {DEFAULT_TLS_PORT} by \
                     default"
                ))
            };
            match conn.read_tls(&mut tcp) {
                Ok(0) => return Err(closed()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => return Err(timed_out()),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Err(closed()),
                Err(e) => return Err(failed(e.to_string())),
            }
            if let Err(e) = conn.process_new_packets() {
                // The alert rustls queued for it, if the socket takes it.
                let _ = write_records(&mut conn, &mut tcp);
                return Err(self.refused(addr, e));
            }
        }
        let blocking = tcp
            .set_read_timeout(None)
            .and_then(|()| tcp.set_write_timeout(None));
        blocking.map_err(|e| failed(e.to_string()))?;
        Transport::tls(tcp, conn).map_err(|source| ClientError::Local {
            what: "duplicate the socket handle",
            source,
        })
    }

    /// The error for a handshake that rustls ended with `err`.
    fn refused(&self, addr: &str, err: rustls::Error) -> ClientError {
        let reason = match err {
            rustls::Error::InvalidCertificate(cert) => {
                return ClientError::Unverified {
                    host: self.name.to_str().into_owned(),
                    reason: certificate_problem(&cert, self.ca.as_deref()),
                }
            }
            rustls::Error::InvalidMessage(_) => format!(
                "the server did not answer in TLS; is it a plain port? chat-server serves TLS on \
                 its --tls-listen port, {DEFAULT_TLS_PORT} by default"
            ),
            rustls::Error::AlertReceived(alert) => {
                format!("the server refused it (TLS alert {alert:?})")
            }
            rustls::Error::PeerIncompatible(why) => {
                format!("the server and this client have no TLS version or cipher in common ({why:?})")
            }
            other => other.to_string(),
        };
        ClientError::Handshake {
            addr: addr.to_string(),
            reason,
        }
    }
}

/// What is wrong with the server's certificate, in plain words, with what
/// to do about it. `ca` is `--ca`, if given.
pub fn certificate_problem(err: &CertificateError, ca: Option<&Path>) -> String {
    match err {
        CertificateError::UnknownIssuer => match ca {
            Some(path) => format!(
                "it is signed by an unknown issuer: not by a CA in {} (nor is it one of its \
                 certificates)",
                path.display()
            ),
            None => "it is signed by an unknown issuer (a CA this system does not trust, or it \
                     is self-signed); pass --ca FILE to trust its CA"
                .to_string(),
        },
        CertificateError::NotValidForNameContext { expected, presented } => {
            let expected = printable(&expected.to_str());
            if presented.is_empty() {
                return format!("it is not valid for {expected}: it names no host at all");
            }
            let names: Vec<String> = presented.iter().map(|n| presented_name(n)).collect();
            format!(
                "it is not valid for {expected}, only for {}; connect with a name it was issued for",
                names.join(", ")
            )
        }
        CertificateError::NotValidForName => "it is not valid for this host name".to_string(),
        CertificateError::ExpiredContext { not_after, .. } => {
            format!("it expired at {}", when(*not_after))
        }
        CertificateError::Expired => "it has expired".to_string(),
        CertificateError::NotValidYetContext { not_before, .. } => format!(
            "it is not valid before {} (is this machine's clock right?)",
            when(*not_before)
        ),
        CertificateError::NotValidYet => "it is not valid yet (is this machine's clock right?)".to_string(),
        CertificateError::Revoked => "it has been revoked".to_string(),
        // A trusted CA has the name the certificate gives as its issuer,
        // but did not sign it: a different certificate of the same name
        // (a self-signed `CN=localhost` meets Debian's snakeoil one).
        CertificateError::BadSignature
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "it is not signed by the trusted CA of the name it gives as its issuer (another \
             certificate of that name is trusted); pass --ca FILE to trust its own CA"
                .to_string()
        }
        CertificateError::UnsupportedSignatureAlgorithmContext { .. } => {
            "it is signed with an algorithm this client does not accept".to_string()
        }
        CertificateError::BadEncoding => "it is malformed".to_string(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "it is not meant for a TLS server".to_string()
        }
        // webpki's word for a certificate with CA:TRUE presented as the
        // server's own, which is what `openssl req -x509` makes unless told
        // otherwise. It has no variant of its own in rustls.
        CertificateError::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
            "it is a CA certificate (basicConstraints CA:TRUE), which cannot be a server's own; \
             make the server's certificate with CA:FALSE (openssl req -x509 ... -addext \
             basicConstraints=critical,CA:FALSE)"
                .to_string()
        }
        other => printable(&other.to_string()),
    }
}

/// A name from a certificate as rustls lists it (`DnsName("example.org")`,
/// `IpAddress(127.0.0.1)`), written as a person would.
fn presented_name(name: &str) -> String {
    let bare = name
        .strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .or_else(|| {
            name.strip_prefix("IpAddress(")
                .and_then(|rest| rest.strip_suffix(')'))
        })
        .unwrap_or(name);
    printable(bare)
}

/// `text` with control characters replaced: names come from the server's
/// certificate, and must not drive the user's terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// A certificate time as RFC 3339 (UTC).
fn when(time: UnixTime) -> String {
    i64::try_from(time.as_secs())
        .ok()
        .and_then(|secs| jiff::Timestamp::from_second(secs).ok())
        .map_or_else(|| format!("{} s after 1970", time.as_secs()), |t| t.to_string())
}

/// The trusted roots of `--ca FILE`.
fn roots_from_file(path: &Path) -> Result<RootCertStore, ClientError> {
    let error = |reason: String| ClientError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let n = i.saturating_add(1);
        let cert = cert.map_err(|e| error(format!("certificate {n}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| error(format!("certificate {n} cannot be trusted: {e}")))?;
    }
    if roots.is_empty() {
        return Err(error(
            "it holds no certificate (PEM, -----BEGIN CERTIFICATE-----)".to_string(),
        ));
    }
    Ok(roots)
}

/// The system's trusted roots. Certificates it cannot use are skipped, as
/// other TLS clients do; none at all is an error.
fn system_roots() -> Result<RootCertStore, ClientError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let detail = found
            .errors
            .first()
            .map(|e| format!(" ({})", printable(&e.to_string())))
            .unwrap_or_default();
        return Err(ClientError::NoTrustedRoots { detail });
    }
    Ok(roots)
}

/// The ring crypto provider, as the daemon uses it: it builds with a C
/// compiler alone, where aws-lc-rs needs cmake. rustls 0.23.48 marks it
/// deprecated because it offers no post-quantum key exchange. Its key
/// exchanges are offered X25519 first, as OpenSSL and browsers do: this
/// rustls would offer P-384 first, and a TLS 1.3 server takes the
/// client's first choice it supports, so every handshake would cost the
/// server about three times as much (BENCHMARKS.md, "TLS").
#[allow(deprecated)]
fn crypto_provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![X25519, SECP256R1, SECP384R1];
    provider
}

/// Writes out what rustls has to send (handshake messages, an alert).
fn write_records(conn: &mut ClientConnection, tcp: &mut TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        match conn.write_tls(tcp) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether a socket error is a read or write timeout running out.
fn is_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x25519_is_offered_first() {
        let groups: Vec<_> = crypto_provider().kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups.first(), Some(&rustls::NamedGroup::X25519), "{groups:?}");
    }

    // The handshake itself, against a rustls server, is tested in
    // `transport.rs`, beside what it hands over.

    #[test]
    fn names_from_a_certificate_read_as_written() {
        assert_eq!(presented_name("DnsName(\"example.org\")"), "example.org");
        assert_eq!(presented_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(presented_name("DirectoryName"), "DirectoryName");
        assert_eq!(presented_name("DnsName(\"evil\u{1b}[2J\")"), "evil\u{FFFD}[2J");
    }

    #[test]
    fn an_unknown_issuer_says_what_to_do_with_or_without_ca() {
        let system = certificate_problem(&CertificateError::UnknownIssuer, None);
        assert!(system.contains("unknown issuer"), "{system}");
        assert!(system.ends_with("pass --ca FILE to trust its CA"), "{system}");
        let ca = certificate_problem(&CertificateError::UnknownIssuer, Some(Path::new("ca.pem")));
        assert!(ca.contains("not by a CA in ca.pem"), "{ca}");
    }

    #[test]
    fn times_read_as_rfc_3339() {
        let time = UnixTime::since_unix_epoch(Duration::from_secs(1_577_836_800));
        let problem = certificate_problem(
            &CertificateError::NotValidYetContext {
                time,
                not_before: time,
            },
            None,
        );
        assert_eq!(
            problem,
            "it is not valid before 2020-01-01T00:00:00Z (is this machine's clock right?)"
        );
    }

    #[test]
    fn a_host_that_cannot_be_a_server_name_is_an_error() {
        let err = TlsTarget::new("not a name", Some(Path::new("/nonexistent")))
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "cannot check a certificate for 'not a name': not a valid DNS name or IP address"
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("chat-client-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("empty.pem");
        std::fs::write(&path, "no PEM here\n").unwrap();
        let err = TlsTarget::new("localhost", Some(&path)).err().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains("it holds no certificate"), "{err}");
        let err = TlsTarget::new("localhost", Some(&dir.join("missing.pem")))
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("cannot use the CA file "), "{err}");
    }
}
