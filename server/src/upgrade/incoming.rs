//! Taking over what the previous process handed on: its descriptors, by
//! name ([`super::fds`]), become listeners to serve, connections to
//! restore with the state, and, if the state cannot be used, clients to
//! tell and close ([`super::fallback`]).
//!
//! Each connection is matched to its entry in the state by its two
//! addresses (ours and the client's): that names a TCP connection
//! uniquely, whatever order the descriptors came in.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;

use super::fds::{read_state, CONN_NAME, LISTEN_PREFIX, STATE_NAME};
use super::state::{read_header, State, FORMAT, MAGIC};
use super::Restored;
use crate::frontend::Protocol;
use crate::net::acceptor::ListenerKind;

/// What the previous process handed on, sorted.
#[derive(Debug, Default)]
pub struct Incoming {
    /// Its listening sockets, with what each serves.
    pub listeners: Vec<(TcpListener, ListenerKind)>,
    /// The chat and its connections; `None` when the state could not be
    /// used (then `orphans` holds every connection).
    pub restored: Option<Restored>,
    /// Connections to tell and close: all of them when the state could not
    /// be used, else any the state did not name.
    pub orphans: Vec<(TcpStream, Protocol)>,
    /// Every name the descriptors came by, once each (to empty systemd's
    /// store of them).
    pub names: Vec<String>,
    /// The version that handed over, when its state was read.
    pub from_version: Option<String>,
}

/// Why a handed state is not used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Occurs when sockets came without a state.
    #[error("no state came with the {0} connections")]
    Missing(usize),
    /// Occurs when the state cannot be read.
    #[error("the state cannot be read: {0}")]
    Unreadable(std::io::Error),
    /// Occurs when the state is not one at all.
    #[error("the state is not a chat-server handover state: {0}")]
    NotAState(String),
    /// Occurs when the state is of a format this version does not read.
    #[error("the state is in format {found} (written by version {version}); this version reads format {FORMAT} only")]
    OtherFormat {
        /// Its format.
        found: u32,
        /// Who wrote it.
        version: String,
    },
}

/// Sorts the handed descriptors (see the module's doc). `inherited` names
/// the kinds of the listeners passed otherwise (systemd's socket units),
/// so that a client of any of them is told in its protocol when its
/// session cannot be kept.
pub fn incoming(fds: Vec<(OwnedFd, String)>, inherited: &[(SocketAddr, ListenerKind)]) -> Incoming {
    let mut incoming = Incoming::default();
    let mut state_fd = None;
    let mut conns = Vec::new();
    for (fd, name) in fds {
        if !incoming.names.contains(&name) {
            incoming.names.push(name.clone());
        }
        if name == STATE_NAME {
            state_fd = Some(fd);
        } else if name == CONN_NAME {
            conns.push(TcpStream::from(fd));
        } else if let Some(label) = name.strip_prefix(LISTEN_PREFIX) {
            let kind = crate::ops::systemd::listener_kind(label);
            let listener = TcpListener::from(fd);
            // A socket unit's socket comes again by itself: its copy from
            // the store is the same socket, not served twice.
            let again = listener
                .local_addr()
                .is_ok_and(|addr| inherited.iter().any(|(a, _)| *a == addr));
            if !again {
                incoming.listeners.push((listener, kind));
            }
        } else {
            log::warn!("restart: a descriptor named {name:?} is not one this version knows; closing it");
        }
    }
    let mut kinds: Vec<(SocketAddr, ListenerKind)> = inherited.to_vec();
    kinds.extend(
        incoming
            .listeners
            .iter()
            .filter_map(|(listener, kind)| Some((listener.local_addr().ok()?, *kind))),
    );
    let protocol_of = |stream: &TcpStream| {
        let local = stream.local_addr().ok();
        kinds
            .iter()
            .find(|(addr, _)| Some(*addr) == local)
            .map_or(Protocol::Line, |(_, kind)| kind.protocol)
    };
    let state = match state_fd {
        Some(fd) => load(fd),
        None if conns.is_empty() => return incoming,
        None => Err(StateError::Missing(conns.len())),
    };
    let state = match state {
        Ok(state) => state,
        Err(e) => {
            log::error!("restart: {e}; starting clean, and the clients handed over are closed");
            incoming.orphans = conns
                .into_iter()
                .map(|s| {
                    let p = protocol_of(&s);
                    (s, p)
                })
                .collect();
            return incoming;
        }
    };
    incoming.from_version = Some(state.header.version.clone());
    let mut by_ends: HashMap<(SocketAddr, SocketAddr), TcpStream> = HashMap::new();
    for stream in conns {
        match (stream.local_addr(), stream.peer_addr()) {
            (Ok(local), Ok(peer)) => {
                by_ends.insert((local, peer), stream);
            }
            // The client left while the socket was in transit.
            _ => drop(stream),
        }
    }
    let mut restored = Vec::new();
    let mut missing = 0usize;
    for conn in state.connections {
        match by_ends.remove(&(conn.local, conn.peer)) {
            Some(stream) => restored.push((conn, stream)),
            None => missing += 1,
        }
    }
    if missing > 0 {
        log::warn!(
            "restart: {} of the state came without a socket (they left, or the store dropped them)",
            crate::ops::logging::counted(missing, "connection")
        );
    }
    incoming.orphans = by_ends
        .into_values()
        .map(|s| {
            let p = protocol_of(&s);
            (s, p)
        })
        .collect();
    incoming.restored = Some(Restored {
        hub: state.hub,
        conns: restored,
        announce: true,
    });
    incoming
}

/// Reads and checks a handed state: its header first, alone.
///
/// # Errors
/// A [`StateError`] saying why it is not used.
pub fn load(fd: OwnedFd) -> Result<State, StateError> {
    let bytes = read_state(fd).map_err(StateError::Unreadable)?;
    let header = read_header(&bytes).map_err(|e| StateError::NotAState(e.to_string()))?;
    if header.magic != MAGIC {
        return Err(StateError::NotAState(format!("its magic is {:?}", header.magic)));
    }
    if header.format != FORMAT {
        return Err(StateError::OtherFormat {
            found: header.format,
            version: header.version,
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| StateError::NotAState(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upgrade::fds::write_state;
    use crate::upgrade::state::Header;

    fn state_with_format(format: u32) -> OwnedFd {
        let mut header = Header::current();
        header.format = format;
        let state = State {
            header,
            hub: crate::chat::hub::Hub::default().export(),
            listeners: Vec::new(),
            connections: Vec::new(),
        };
        write_state(&state).unwrap().0
    }

    #[test]
    fn a_state_of_this_format_loads() {
        let state = load(state_with_format(FORMAT)).unwrap();
        assert_eq!(state.header, Header::current());
    }

    #[test]
    fn a_state_of_another_format_is_refused_saying_which() {
        let error = load(state_with_format(FORMAT + 1)).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "the state is in format {} (written by version {}); this version reads format {FORMAT} only",
                FORMAT + 1,
                crate::upgrade::VERSION
            )
        );
    }

    #[test]
    fn a_stored_listener_that_a_socket_unit_passes_again_is_served_once() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let fds = vec![
            (
                OwnedFd::from(listener.try_clone().unwrap()),
                format!("{LISTEN_PREFIX}line"),
            ),
            (OwnedFd::from(other), format!("{LISTEN_PREFIX}irc")),
        ];
        let incoming = incoming(fds, &[(addr, ListenerKind::LINE)]);
        assert_eq!(incoming.listeners.len(), 1);
        assert_eq!(incoming.listeners[0].1, ListenerKind::IRC);
    }

    #[test]
    fn a_connection_with_another_format_is_told_and_closed_not_restored() {
        use std::io::Read;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        let fds = vec![
            (state_with_format(FORMAT + 1), STATE_NAME.to_string()),
            (OwnedFd::from(server_side), CONN_NAME.to_string()),
        ];
        let incoming = incoming(fds, &[]);
        assert!(incoming.restored.is_none());
        assert_eq!(incoming.names, [STATE_NAME, CONN_NAME]);
        crate::upgrade::fallback::close_all(incoming.orphans);
        let mut told = String::new();
        client.read_to_string(&mut told).unwrap();
        assert_eq!(told, crate::upgrade::fallback::LINE_NOTICE);
    }
}
