//! Resolving the server's address and connecting to it.
//!
//! A name such as `localhost` can resolve to several addresses (`::1` and
//! `127.0.0.1`, say) of which only one has a server listening, so each is
//! tried in the resolver's order, each bounded by the timeout so that an
//! address that drops packets cannot hang the client.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::error::ClientError;

/// Connects to the first address `addr` resolves to that accepts within
/// `timeout`.
///
/// # Errors
/// [`ClientError::CannotConnect`] with the resolver's error, or with the
/// last attempt's error when no address accepted.
pub fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
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
