//! What the slow-reader tests share, over TCP (`tests/abuse.rs`) and over
//! WebSocket (`tests/web.rs`): a socket whose receive window is tiny, the
//! talk that fills its queue on the server while a fast reader checks
//! every line, and reading a dropped socket to its end.
//!
//! The talk: alice says 1 KiB lines, at most [`WINDOW`] ahead of bob, who
//! reads and checks each one, until bob hears that the slow reader was
//! dropped, then [`AFTER_DROP`] more. Everything waits with a timeout and
//! every loop is bounded by [`MAX_BULK`].

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;

use socket2::{Domain, Protocol, Socket, Type};

use crate::TIMEOUT;

/// The outbound queue limit of the slow-reader tests: small, so that the
/// queue of a client that does not read overflows after little traffic.
pub const SMALL_SENDQ: usize = 64 * 1024;

/// Most lines alice sends while waiting for the slow reader to be
/// dropped: 20 MB, far more than the kernel's buffers and the queue hold.
pub const MAX_BULK: usize = 20_000;

/// How many of her lines alice may be ahead of what bob has read, so that
/// bob, who reads as fast as he can, never has anywhere near the queue
/// limit waiting for him.
pub const WINDOW: usize = 16;

/// Lines alice still says after the slow reader was dropped.
pub const AFTER_DROP: usize = 50;

/// Alice's `i`th big line (about 1 KiB).
pub fn bulk_line(i: usize) -> String {
    format!("bulk {i:05} {}", "x".repeat(1000))
}

/// Connects to `addr`, from `source` if given (port chosen by the kernel),
/// with a receive buffer of `recv_buffer` bytes if given: set before
/// connecting, so the TCP window stays that small and what the server
/// sends piles up on its side. Timeouts set.
#[track_caller]
pub fn connect_socket(addr: SocketAddr, source: Option<Ipv4Addr>, recv_buffer: Option<usize>) -> TcpStream {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .unwrap_or_else(|e| panic!("cannot create a socket: {e}"));
    if let Some(ip) = source {
        socket
            .bind(&SocketAddr::from((ip, 0)).into())
            .unwrap_or_else(|e| panic!("cannot bind a client socket to {ip}: {e}"));
    }
    if let Some(size) = recv_buffer {
        socket
            .set_recv_buffer_size(size)
            .unwrap_or_else(|e| panic!("cannot set SO_RCVBUF: {e}"));
    }
    socket
        .connect_timeout(&addr.into(), TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .unwrap_or_else(|e| panic!("cannot set socket timeouts: {e}"));
    stream
}

/// How a connection the server dropped ended, as its peer reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// An orderly close.
    Eof,
    /// A reset.
    Reset,
}

/// Reads `reader` until the connection ends, at most `limit` bytes (each
/// read within the socket's timeout). Returns what was read and how it
/// ended.
#[track_caller]
pub fn read_to_end(reader: &mut impl Read, limit: usize) -> (Vec<u8>, Ending) {
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while got.len() <= limit {
        match reader.read(&mut buf) {
            Ok(0) => return (got, Ending::Eof),
            Ok(n) => got.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return (got, Ending::Reset),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("the connection was not closed ({e}) after {} bytes", got.len()),
        }
    }
    panic!("more than {limit} bytes and the connection is still open");
}

/// What the talk came to.
#[derive(Debug)]
pub struct Talk {
    /// Alice's bulk lines, all of which bob heard, in order.
    pub sent: usize,
    /// How many of them bob had heard when he heard the slow reader was
    /// dropped.
    pub dropped_after: usize,
}

/// The talk (see the module's doc): `say` says a line as alice (on a
/// thread of its own), `hear` reads bob's next line; `dropped` is the
/// notice that the slow reader `slow` was dropped. Panics if bob misses,
/// reorders or doubles a line, hears the notice twice, or never hears it.
#[track_caller]
pub fn talk_until_dropped(
    mut say: impl FnMut(&str) + Send,
    mut hear: impl FnMut() -> String,
    dropped: &str,
    slow: &str,
) -> Talk {
    let stop = AtomicBool::new(false);
    let (progress_tx, progress_rx) = mpsc::channel::<usize>();
    let (sent, dropped_after) = thread::scope(|s| {
        let stop = &stop;
        let alice = s.spawn(move || {
            let mut heard = 0;
            let mut limit = MAX_BULK;
            let mut i = 0;
            while i < limit {
                if limit == MAX_BULK && stop.load(Ordering::Acquire) {
                    limit = (i + AFTER_DROP).min(MAX_BULK);
                }
                while i >= heard + WINDOW {
                    heard = match progress_rx.recv_timeout(TIMEOUT) {
                        Ok(n) => n,
                        Err(e) => panic!("bob stopped reading ({e}) at line {heard}"),
                    };
                }
                say(&bulk_line(i));
                i += 1;
            }
            say("bulk end");
            i
        });
        let progress_tx = progress_tx;
        let mut next = 0;
        let mut dropped_after = None;
        for _ in 0..=MAX_BULK + 1 {
            let line = hear();
            if line == dropped {
                assert_eq!(dropped_after, None, "bob heard twice that {slow} was dropped");
                dropped_after = Some(next);
                stop.store(true, Ordering::Release);
            } else if line == "<alice> bulk end" {
                break;
            } else {
                assert_eq!(line, format!("<alice> {}", bulk_line(next)), "bob's line {next}");
                next += 1;
                // alice has stopped waiting once she is done.
                let _ = progress_tx.send(next);
            }
        }
        let sent = match alice.join() {
            Ok(sent) => sent,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        assert_eq!(next, sent, "bob heard every one of alice's lines");
        (sent, dropped_after)
    });
    let Some(dropped_after) = dropped_after else {
        panic!("{slow} read nothing of {sent} KiB sent to its room, and was never dropped");
    };
    Talk { sent, dropped_after }
}
