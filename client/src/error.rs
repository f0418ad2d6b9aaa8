//! What can end a session badly, and the exit code for each.
//!
//! Scripts tell failures apart by exit code, so each kind of failure maps to
//! one code here, in one place: 1 when the client never got a working
//! connection (or a local I/O failure stopped it), 2 for a usage error (set
//! by clap before any of this runs), 3 when an established connection was
//! lost (with `--reconnect`: when lines were still undelivered as the user
//! gave up), 4 when the server refused the nick or room asked for (or did
//! not answer) and so nothing was sent, 5 when the server's TLS certificate
//! could not be verified (so nothing was sent either). A clean session
//! exits 0. Every other TLS failure (no TLS at the other end, a handshake
//! that does not finish in time, an unusable `--ca` file, no trusted roots
//! on this machine) is "cannot connect", 1: only a certificate refused is
//! worth a code of its own, since a script may want to tell "the server is
//! down" from "someone may be in the middle".

use std::fmt::Display;
use std::io::{self, Write};

/// Exit code when the server cannot be reached, or a local I/O failure
/// (standard input or output, the operating system) stops the client.
pub const EXIT_FAILURE: u8 = 1;

// Exit code 2, a usage error, is clap's own: it exits with it before a
// session starts (tested in `tests/pipe.rs`).

/// Exit code when an established connection ends before the user quit.
pub const EXIT_CONNECTION_LOST: u8 = 3;

/// Exit code when the server refused `--nick` or `--room` (or did not
/// answer them), so that nothing was sent: a script must be able to tell
/// that its message was not posted under the name it asked for.
pub const EXIT_REFUSED: u8 = 4;

/// Exit code when the server's TLS certificate could not be verified
/// (unknown issuer, not valid for the host, expired or not yet valid), so
/// that nothing was sent.
pub const EXIT_UNVERIFIED: u8 = 5;

/// Why the client stopped before a clean end.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Occurs when the address does not resolve, or no address it resolves
    /// to accepts a connection within the timeout.
    #[error("cannot connect to {addr}: {source}")]
    CannotConnect {
        /// The address as it was tried, port included.
        addr: String,
        /// The resolver's error, or the last connection attempt's.
        source: io::Error,
    },
    /// Occurs when the server's TLS certificate cannot be verified: signed
    /// by an issuer not trusted, not valid for the host connected to,
    /// expired, not valid yet, revoked, or malformed.
    #[error("cannot verify the server's certificate for {host}: {reason}")]
    Unverified {
        /// The host the certificate had to be valid for.
        host: String,
        /// Why, in plain words, with what to do about it.
        reason: String,
    },
    /// Occurs when the TLS handshake fails for another reason than the
    /// certificate: the server does not speak TLS (a plain port), does not
    /// answer in time, closes the connection, or refuses us.
    #[error("TLS handshake with {addr} failed: {reason}")]
    Handshake {
        /// The address connected to, port included.
        addr: String,
        /// Why, in plain words.
        reason: String,
    },
    /// Occurs when the `--ca` file cannot be read, or holds no usable CA
    /// certificate.
    #[error("cannot use the CA file {path}: {reason}")]
    CaFile {
        /// The file, as given.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Occurs when `--tls` is given without `--ca` and the system's trust
    /// store has no certificate rustls can use.
    #[error("no trusted CA certificates found on this system{detail}: install the ca-certificates package, or pass --ca FILE")]
    NoTrustedRoots {
        /// Where the loader looked and what failed, with a leading `; `,
        /// or empty.
        detail: String,
    },
    /// Occurs when the host in ADDR cannot be a TLS server name (not a
    /// valid DNS name nor an IP address).
    #[error("cannot check a certificate for '{host}': not a valid DNS name or IP address")]
    ServerName {
        /// The host as given.
        host: String,
    },
    /// Occurs when the server closes the connection while standard input is
    /// still open, i.e. before the user quit. A `!! server full` error or a
    /// `-- server shutting down` notice just before is no different: the
    /// connection is gone either way.
    #[error("connection closed by server")]
    ClosedByServer,
    /// Occurs when reading from or writing to the server fails before the
    /// user quit (reset by the peer, say).
    #[error("connection lost: {0}")]
    ConnectionLost(io::Error),
    /// Occurs when `--reconnect` was trying to deliver lines and the user
    /// gave up (Ctrl-C, SIGTERM) before a connection came back.
    #[error("connection lost; {lines} line(s) not sent")]
    Undelivered {
        /// How many lines were waiting for a connection.
        lines: usize,
    },
    /// Occurs when the server refuses the `/nick` or `/join` the client
    /// sends on connecting (the nick is taken, say) and `--allow-guest` was
    /// not given: the session sends nothing more and quits.
    #[error("the server refused {asked} ({reason}); nothing was sent (--allow-guest goes on without it)")]
    Refused {
        /// The line refused, as sent (`/nick alice`).
        asked: String,
        /// The server's reason (`nick alice is already in use`).
        reason: String,
    },
    /// Occurs when the server does not answer the `/nick` or `/join` the
    /// client sends on connecting in time (it is not a chat-server, or it
    /// is stuck): whether it was refused is unknown, so nothing is sent.
    #[error("no answer from the server to {asked} within {secs} s; nothing was sent")]
    Unanswered {
        /// The line not answered, as sent.
        asked: String,
        /// How long the client waited, in seconds.
        secs: u64,
    },
    /// Occurs when line editing cannot be set up or the terminal cannot be
    /// written in interactive mode.
    #[error("cannot {what}: {source}")]
    Terminal {
        /// What the client was doing, as a phrase after "cannot".
        what: &'static str,
        /// rustyline's error.
        source: rustyline::error::ReadlineError,
    },
    /// Occurs when something on this machine fails: reading standard input,
    /// writing standard output (other than it being closed), or getting a
    /// socket handle or thread from the operating system.
    #[error("cannot {what}: {source}")]
    Local {
        /// What the client was doing, as a phrase after "cannot".
        what: &'static str,
        /// The error the operating system gave.
        source: io::Error,
    },
}

impl ClientError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::CannotConnect { .. }
            | ClientError::Handshake { .. }
            | ClientError::CaFile { .. }
            | ClientError::NoTrustedRoots { .. }
            | ClientError::ServerName { .. }
            | ClientError::Local { .. }
            | ClientError::Terminal { .. } => EXIT_FAILURE,
            ClientError::Unverified { .. } => EXIT_UNVERIFIED,
            ClientError::ClosedByServer
            | ClientError::ConnectionLost(_)
            | ClientError::Undelivered { .. } => EXIT_CONNECTION_LOST,
            ClientError::Refused { .. } | ClientError::Unanswered { .. } => EXIT_REFUSED,
        }
    }
}

/// Prints `chat-client: <err>` on standard error.
pub fn report(err: &ClientError) {
    warn(err);
}

/// Prints `chat-client: <message>` on standard error.
///
/// A closed or broken standard error is ignored: there is nowhere left to
/// say anything, and it must not turn into a panic.
pub fn warn(message: impl Display) {
    let _ = writeln!(io::stderr().lock(), "chat-client: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os_error(kind: io::ErrorKind) -> io::Error {
        io::Error::new(kind, "boom")
    }

    #[test]
    fn each_error_has_its_documented_exit_code() {
        let cannot = ClientError::CannotConnect {
            addr: "127.0.0.1:1".into(),
            source: os_error(io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(cannot.exit_code(), 1);
        let local = ClientError::Local {
            what: "read standard input",
            source: os_error(io::ErrorKind::Other),
        };
        assert_eq!(local.exit_code(), 1);
        assert_eq!(ClientError::ClosedByServer.exit_code(), 3);
        assert_eq!(ClientError::Undelivered { lines: 2 }.exit_code(), 3);
        let terminal = ClientError::Terminal {
            what: "write to the terminal",
            source: rustyline::error::ReadlineError::Io(os_error(io::ErrorKind::Other)),
        };
        assert_eq!(terminal.exit_code(), 1);
        assert_eq!(
            ClientError::ConnectionLost(os_error(io::ErrorKind::ConnectionReset)).exit_code(),
            3
        );
        let refused = ClientError::Refused {
            asked: "/nick alice".into(),
            reason: "nick alice is already in use".into(),
        };
        assert_eq!(refused.exit_code(), 4);
        let unanswered = ClientError::Unanswered {
            asked: "/join #rust".into(),
            secs: 10,
        };
        assert_eq!(unanswered.exit_code(), 4);
        let unverified = ClientError::Unverified {
            host: "localhost".into(),
            reason: "it has expired".into(),
        };
        assert_eq!(unverified.exit_code(), 5);
        let handshake = ClientError::Handshake {
            addr: "127.0.0.1:7878".into(),
            reason: "no TLS answer".into(),
        };
        assert_eq!(handshake.exit_code(), 1);
        let ca = ClientError::CaFile {
            path: "ca.pem".into(),
            reason: "No such file or directory (os error 2)".into(),
        };
        assert_eq!(ca.exit_code(), 1);
        let no_roots = ClientError::NoTrustedRoots {
            detail: String::new(),
        };
        assert_eq!(no_roots.exit_code(), 1);
        let name = ClientError::ServerName { host: "a b".into() };
        assert_eq!(name.exit_code(), 1);
    }

    #[test]
    fn messages_read_as_documented() {
        let cannot = ClientError::CannotConnect {
            addr: "localhost:7878".into(),
            source: io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused"),
        };
        assert_eq!(
            cannot.to_string(),
            "cannot connect to localhost:7878: connection refused"
        );
        assert_eq!(
            ClientError::ClosedByServer.to_string(),
            "connection closed by server"
        );
        let local = ClientError::Local {
            what: "read standard input",
            source: io::Error::other("input/output error"),
        };
        assert_eq!(
            local.to_string(),
            "cannot read standard input: input/output error"
        );
        let refused = ClientError::Refused {
            asked: "/nick alice".into(),
            reason: "nick alice is already in use".into(),
        };
        assert_eq!(
            refused.to_string(),
            "the server refused /nick alice (nick alice is already in use); nothing was sent \
             (--allow-guest goes on without it)"
        );
        let unverified = ClientError::Unverified {
            host: "localhost".into(),
            reason: "it is valid only for example.org".into(),
        };
        assert_eq!(
            unverified.to_string(),
            "cannot verify the server's certificate for localhost: it is valid only for example.org"
        );
        let no_roots = ClientError::NoTrustedRoots {
            detail: String::new(),
        };
        assert_eq!(
            no_roots.to_string(),
            "no trusted CA certificates found on this system: install the ca-certificates \
             package, or pass --ca FILE"
        );
    }
}
