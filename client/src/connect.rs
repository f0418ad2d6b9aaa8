//! Resolving the server's address and connecting to it, in clear or with
//! TLS.
//!
//! A name such as `localhost` can resolve to several addresses (`::1` and
//! `127.0.0.1`, say) of which only one has a server listening, so each is
//! tried in the resolver's order, each bounded by the timeout so that an
//! address that drops packets cannot hang the client. With `--tls` the
//! handshake follows on the first address that accepted, bounded by the
//! same timeout ([`crate::tls`]); a certificate refused there is not tried
//! again on the next address, since it is the same server by name.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::args::Args;
use crate::error::ClientError;
use crate::tls::TlsTarget;
use crate::transport::Transport;

/// Where and how to connect: made once per session, and cloned for each
/// reconnection attempt.
#[derive(Clone)]
pub struct Target {
    /// `HOST:PORT`, the default port filled in.
    pub addr: String,
    /// How to speak TLS; `None` in clear.
    tls: Option<TlsTarget>,
}

impl Target {
    /// The target the command line names; with TLS, the trusted roots are
    /// read here.
    ///
    /// # Errors
    /// What [`TlsTarget::new`] says.
    pub fn from_args(args: &Args) -> Result<Target, ClientError> {
        let tls = if args.tls() {
            Some(TlsTarget::new(&args.addr.host, args.ca.as_deref())?)
        } else {
            None
        };
        Ok(Target {
            addr: args.address(),
            tls,
        })
    }
}

/// Connects to `target`: to the first address its name resolves to that
/// accepts within `timeout`, then, with TLS, through the handshake within
/// `timeout` again.
///
/// # Errors
/// [`ClientError::CannotConnect`] with the resolver's error, or with the
/// last attempt's error when no address accepted; with TLS, what
/// [`TlsTarget::handshake`] says.
pub fn connect(target: &Target, timeout: Duration) -> Result<Transport, ClientError> {
    let tcp = connect_tcp(&target.addr, timeout)?;
    match &target.tls {
        None => Ok(Transport::plain(tcp)),
        Some(tls) => tls.handshake(tcp, &target.addr, timeout),
    }
}

/// The TCP connection to the first address of `addr` that accepts.
fn connect_tcp(addr: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    let cannot = |source| ClientError::CannotConnect {
        addr: addr.to_string(),
        source,
    };
    let mut last_error = None;
    for target in addr.to_socket_addrs().map_err(cannot)? {
        match TcpStream::connect_timeout(&target, timeout) {
            Ok(stream) => return Ok(stream),
            Err(err) => last_error = Some(err),
        }
    }
    let err = last_error
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address"));
    Err(cannot(err))
}
