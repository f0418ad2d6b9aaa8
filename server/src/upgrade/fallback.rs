//! The clean start when the handed state cannot be used: every client
//! handed over is told, in its protocol, that its session could not be
//! kept, and closed; it reconnects as after any restart.
//!
//! Why a state cannot be used is logged by the caller ([`super::incoming`]):
//! another format (a downgrade, or an upgrade across a format change), a
//! state that does not parse, or no state at all beside the sockets. Never
//! a half-restored chat: either the whole state is taken, or none of it.

use std::io::Write;
use std::net::{Shutdown, TcpStream};

use crate::frontend::web::frames;
use crate::frontend::Protocol;

/// What the line protocol's clients read.
pub const LINE_NOTICE: &str = "-- server restarted; your session could not be kept, please reconnect\n";

/// What IRC clients read: a closing link, as IRC servers say it.
pub const IRC_NOTICE: &str =
    "ERROR :Closing link: server restarted; your session could not be kept, please reconnect\r\n";

/// The WebSocket close status for a restart (RFC 6455's registry: 1012,
/// Service Restart): browsers' pages reconnect on it.
pub const CLOSE_SERVICE_RESTART: u16 = 1012;

/// The bytes that tell a client of `protocol` its session was not kept.
pub fn notice(protocol: Protocol) -> Vec<u8> {
    match protocol {
        Protocol::Line | Protocol::Test => LINE_NOTICE.as_bytes().to_vec(),
        Protocol::Irc => IRC_NOTICE.as_bytes().to_vec(),
        Protocol::Web => frames::close(CLOSE_SERVICE_RESTART, "server restarted; please reconnect"),
    }
}

/// Tells each client its session could not be kept, and closes it. One
/// write each, without waiting: a client whose buffer is full gets the end
/// of stream alone.
pub fn close_all(clients: Vec<(TcpStream, Protocol)>) {
    let count = clients.len();
    for (mut stream, protocol) in clients {
        let _ = stream.set_nonblocking(true);
        let _ = stream.write(&notice(protocol));
        let _ = stream.shutdown(Shutdown::Write);
    }
    if count > 0 {
        log::warn!(
            "restart: told {} their session could not be kept, and closed them",
            crate::ops::logging::counted(count, "client")
        );
    }
}
