//! Moving descriptors and the state between processes: the state into a
//! memory file and back ([`write_state`], [`read_state`]); descriptors,
//! each with a name, over a Unix stream socket to `chat-server
//! --take-over` ([`send_named`], [`receive_named`]) or into systemd's file
//! descriptor store ([`push_to_store`], [`forget_in_store`]).
//!
//! All of it through rustix, whose calls take and give owned descriptors:
//! no descriptor here is ever named by a bare number, so none can be
//! closed twice or leaked.
//!
//! Names say what a descriptor is, the same way on both paths (systemd
//! gives them back in `LISTEN_FDNAMES`): [`STATE_NAME`] for the state,
//! [`CONN_NAME`] for a client connection, and [`LISTEN_PREFIX`] followed
//! by the listener's kind (`line`, `tls`, `irc`, `irc-tls`, `web`,
//! `web-tls`, as in the socket units) for a listening socket, so that even
//! a process that cannot read the state knows what each listener serves.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut, Read, Seek, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags, SocketAddrUnix,
};

use crate::net::acceptor::ListenerKind;
use crate::upgrade::state::{State, MAX_STATE_BYTES};

/// The name of the state's memory file.
pub const STATE_NAME: &str = "upgrade-state";

/// The name of every client connection.
pub const CONN_NAME: &str = "upgrade-conn";

/// What a listening socket's name starts with; its kind follows.
pub const LISTEN_PREFIX: &str = "upgrade-listen-";

/// Most descriptors in one message: the kernel takes at most 253
/// (SCM_MAX_FD) with one `sendmsg`.
pub const FDS_PER_MESSAGE: usize = 250;

/// The longest first line of a handover answer (the names of every
/// descriptor, JSON): 64 MiB is room for a million connections.
const MAX_ANSWER: usize = 64 << 20;

/// The name a listener of `kind` is passed by.
pub fn listener_name(kind: ListenerKind) -> String {
    let label = match (kind.protocol, kind.tls) {
        (crate::frontend::Protocol::Irc, false) => "irc",
        (crate::frontend::Protocol::Irc, true) => "irc-tls",
        (crate::frontend::Protocol::Web, false) => "web",
        (crate::frontend::Protocol::Web, true) => "web-tls",
        (_, true) => "tls",
        (_, false) => "line",
    };
    format!("{LISTEN_PREFIX}{label}")
}

/// The state, serialised into a new memory file (read from its start),
/// and its size in bytes.
///
/// # Errors
/// When the memory file cannot be made or written.
pub fn write_state(state: &State) -> io::Result<(OwnedFd, usize)> {
    let fd = rustix::fs::memfd_create("chat-server-state", rustix::fs::MemfdFlags::CLOEXEC)?;
    let mut file = File::from(fd);
    let bytes = serde_json::to_vec(state).map_err(io::Error::other)?;
    file.write_all(&bytes)?;
    file.rewind()?;
    Ok((OwnedFd::from(file), bytes.len()))
}

/// Reads a state file whole, from its start, up to [`MAX_STATE_BYTES`].
///
/// # Errors
/// When it cannot be read, or is bigger than that.
pub fn read_state(fd: OwnedFd) -> io::Result<Vec<u8>> {
    let mut file = File::from(fd);
    file.rewind()?;
    let mut bytes = Vec::new();
    Read::by_ref(&mut file)
        .take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(io::Error::other(format!(
            "the state is bigger than {MAX_STATE_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

/// Sends descriptors with their names over `stream`: first a line of JSON
/// (`{"ok":true,"names":[...]}`), then the descriptors in that order, in
/// messages of at most [`FDS_PER_MESSAGE`], each carried by one byte.
///
/// # Errors
/// When the stream fails.
pub fn send_named(stream: &UnixStream, fds: &[(BorrowedFd<'_>, String)]) -> io::Result<()> {
    let names: Vec<&str> = fds.iter().map(|(_, name)| name.as_str()).collect();
    let mut line =
        serde_json::to_vec(&serde_json::json!({ "ok": true, "names": names })).map_err(io::Error::other)?;
    line.push(b'\n');
    let mut writer = stream;
    writer.write_all(&line)?;
    for batch in fds.chunks(FDS_PER_MESSAGE) {
        let borrowed: Vec<BorrowedFd<'_>> = batch.iter().map(|(fd, _)| *fd).collect();
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_MESSAGE))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&borrowed)) {
            return Err(io::Error::other("too many descriptors for one message"));
        }
        let sent = rustix::net::sendmsg(stream, &[IoSlice::new(b"F")], &mut control, SendFlags::NOSIGNAL)?;
        if sent != 1 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "a descriptor message was not sent",
            ));
        }
    }
    Ok(())
}

/// Why a handover could not be received.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// Occurs when the old process answers with an error.
    #[error("the running server refused to hand over: {0}")]
    Refused(String),
    /// Occurs when what comes is not a handover.
    #[error("the running server's answer is not a handover: {0}")]
    Garbled(String),
    /// Occurs when the stream fails or ends early.
    #[error("the handover was cut short: {0}")]
    Io(#[from] io::Error),
}

/// Receives what [`send_named`] sent: every descriptor with its name.
///
/// # Errors
/// A [`ReceiveError`] when the answer is a refusal, not a handover, or
/// ends before every descriptor has come.
pub fn receive_named(stream: &UnixStream) -> Result<Vec<(OwnedFd, String)>, ReceiveError> {
    let mut data: Vec<u8> = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut names: Option<Vec<String>> = None;
    let mut buf = vec![0u8; 64 * 1024];
    // Bounded: every pass takes at least one byte, and the answer is at
    // most MAX_ANSWER bytes and one byte per FDS_PER_MESSAGE descriptors.
    loop {
        if let Some(names) = &names {
            if fds.len() >= names.len() {
                break;
            }
        }
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_MESSAGE))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = rustix::net::recvmsg(
            stream,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        );
        let received = match received {
            Ok(received) => received,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(ReceiveError::Io(e.into())),
        };
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(passed) = message {
                fds.extend(passed);
            }
        }
        if received.bytes == 0 {
            return Err(ReceiveError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the running server closed the connection",
            )));
        }
        if names.is_none() {
            data.extend_from_slice(buf.get(..received.bytes).unwrap_or_default());
            if data.len() > MAX_ANSWER {
                return Err(ReceiveError::Garbled("an answer too long".into()));
            }
            if let Some(end) = data.iter().position(|&b| b == b'\n') {
                let line = data.get(..end).unwrap_or_default();
                names = Some(parse_answer(line)?);
            }
        }
    }
    let names = names.unwrap_or_default();
    if fds.len() != names.len() {
        return Err(ReceiveError::Garbled(format!(
            "{} descriptors for {} names",
            fds.len(),
            names.len()
        )));
    }
    Ok(fds.into_iter().zip(names).collect())
}

/// The names in a handover's first line, or its error.
fn parse_answer(line: &[u8]) -> Result<Vec<String>, ReceiveError> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| ReceiveError::Garbled(e.to_string()))?;
    if value.get("ok").and_then(serde_json::Value::as_bool) != Some(true) {
        let error = value
            .get("error")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("no reason given");
        return Err(ReceiveError::Refused(error.to_string()));
    }
    let names = value
        .get("names")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| ReceiveError::Garbled("no names".into()))?;
    names
        .iter()
        .map(|name| {
            name.as_str()
                .map(str::to_string)
                .ok_or_else(|| ReceiveError::Garbled("a name that is not a string".into()))
        })
        .collect()
}

/// The address `NOTIFY_SOCKET` names: a path, or `@name` in the abstract
/// namespace.
fn notify_addr(target: &OsStr) -> io::Result<SocketAddrUnix> {
    match target.as_bytes().split_first() {
        Some((b'@', name)) => Ok(SocketAddrUnix::new_abstract_name(name)?),
        Some((b'/', _)) => Ok(SocketAddrUnix::new(target)?),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is neither an absolute path nor @name",
        )),
    }
}

/// Sends one notification with `fds` attached to `NOTIFY_SOCKET`.
fn notify_with(
    socket: &OwnedFd,
    addr: &SocketAddrUnix,
    text: &str,
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_MESSAGE))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("too many descriptors for one message"));
    }
    let sent = rustix::net::sendmsg_addr(
        socket,
        addr,
        &[IoSlice::new(text.as_bytes())],
        &mut control,
        SendFlags::empty(),
    )?;
    if sent != text.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "a notification was cut short",
        ));
    }
    Ok(())
}

/// A datagram socket to send notifications from.
fn notify_socket() -> io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::DGRAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Puts every descriptor of `fds` in the service manager's file
/// descriptor store, under its name (`FDSTORE=1`, `FDNAME=`), those of
/// one name in messages of at most [`FDS_PER_MESSAGE`].
///
/// # Errors
/// When `NOTIFY_SOCKET` is unset or unusable, or a message cannot be sent.
pub fn push_to_store(fds: &[(BorrowedFd<'_>, String)]) -> io::Result<()> {
    let target = std::env::var_os("NOTIFY_SOCKET")
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "NOTIFY_SOCKET is not set"))?;
    let addr = notify_addr(&target)?;
    let socket = notify_socket()?;
    let mut by_name: Vec<(&str, Vec<BorrowedFd<'_>>)> = Vec::new();
    for (fd, name) in fds {
        match by_name.iter_mut().find(|(n, _)| *n == name.as_str()) {
            Some((_, list)) => list.push(fd.as_fd()),
            None => by_name.push((name.as_str(), vec![fd.as_fd()])),
        }
    }
    for (name, list) in &by_name {
        for batch in list.chunks(FDS_PER_MESSAGE) {
            notify_with(&socket, &addr, &format!("FDSTORE=1\nFDNAME={name}\n"), batch)?;
        }
    }
    Ok(())
}

/// Tells the service manager to forget the descriptors it stored under
/// each of `names` (`FDSTOREREMOVE=1`): once taken back, the store's
/// copies would keep every client's connection open after the client's
/// own process has closed it, and come back at the next restart.
///
/// # Errors
/// When `NOTIFY_SOCKET` is unset or unusable, or a message cannot be sent.
pub fn forget_in_store(names: &[String]) -> io::Result<()> {
    let target = std::env::var_os("NOTIFY_SOCKET")
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "NOTIFY_SOCKET is not set"))?;
    let addr = notify_addr(&target)?;
    let socket = notify_socket()?;
    for name in names {
        notify_with(&socket, &addr, &format!("FDSTOREREMOVE=1\nFDNAME={name}\n"), &[])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_and_their_names_cross_a_unix_socket_in_order() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        // More than one message's worth.
        let files: Vec<OwnedFd> = (0..FDS_PER_MESSAGE + 3)
            .map(|i| {
                let fd = rustix::fs::memfd_create("t", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
                let mut file = File::from(fd);
                file.write_all(format!("file {i}").as_bytes()).unwrap();
                OwnedFd::from(file)
            })
            .collect();
        let named: Vec<(BorrowedFd<'_>, String)> = files
            .iter()
            .enumerate()
            .map(|(i, fd)| (fd.as_fd(), format!("name-{i}")))
            .collect();
        let sender = std::thread::spawn({
            let named: Vec<(OwnedFd, String)> = named
                .iter()
                .map(|(fd, name)| (fd.try_clone_to_owned().unwrap(), name.clone()))
                .collect();
            move || {
                let borrowed: Vec<(BorrowedFd<'_>, String)> = named
                    .iter()
                    .map(|(fd, name)| (fd.as_fd(), name.clone()))
                    .collect();
                send_named(&ours, &borrowed).unwrap();
            }
        });
        let received = receive_named(&theirs).unwrap();
        sender.join().unwrap();
        assert_eq!(received.len(), FDS_PER_MESSAGE + 3);
        for (i, (fd, name)) in received.into_iter().enumerate() {
            assert_eq!(name, format!("name-{i}"));
            assert_eq!(read_state(fd).unwrap(), format!("file {i}").into_bytes());
        }
    }

    #[test]
    fn a_listeners_name_says_its_kind_as_the_socket_units_do() {
        for kind in [
            ListenerKind::LINE,
            ListenerKind::LINE_TLS,
            ListenerKind::IRC,
            ListenerKind::IRC_TLS,
            ListenerKind::WEB,
            ListenerKind::WEB_TLS,
        ] {
            let name = listener_name(kind);
            let label = name.strip_prefix(LISTEN_PREFIX).unwrap();
            assert_eq!(crate::ops::systemd::listener_kind(label), kind, "{name}");
            assert!(name.starts_with(crate::ops::systemd::HANDED_PREFIX));
        }
    }

    #[test]
    fn a_refusal_is_reported_with_its_reason() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (&ours)
            .write_all(b"{\"ok\":false,\"error\":\"a handover is under way already\"}\n")
            .unwrap();
        let error = receive_named(&theirs).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the running server refused to hand over: a handover is under way already"
        );
    }

    #[test]
    fn an_answer_that_ends_early_is_an_error() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (&ours).write_all(b"{\"ok\":true,\"names\":[\"a\"]}\n").unwrap();
        drop(ours);
        assert!(matches!(receive_named(&theirs), Err(ReceiveError::Io(_))));
    }
}
