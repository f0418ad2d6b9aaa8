//! A fresh user knocking: connect from an address nobody else uses, read
//! the first line, and say in a word what a newcomer got (served, told
//! the server is full, reset, or nothing at all).
//!
//! Several attacks ask this while they hold the daemon down (quit-hold,
//! slowloris); each probe uses the next address of
//! [`super::addrs::POOL_PROBES`], so the per-address limit never decides
//! the answer.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use socket2::{Domain, Socket, Type};

use super::addrs;

/// The next probe's address number in the probe pool.
static NEXT_PROBE: AtomicUsize = AtomicUsize::new(0);

/// What one probe got.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    /// When, seconds since the attack's base.
    pub at_s: f64,
    /// `served`, `full`, `refused`, `closed`, `reset`, `no answer`,
    /// `connect failed`, or `other`.
    pub outcome: String,
    /// The first line, or the error.
    pub detail: String,
}

/// Connects a fresh user to `addr` and reads its first line within
/// `timeout`.
pub fn fresh_user(addr: SocketAddr, base: Instant, timeout: Duration) -> Probe {
    let at_s = (base.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    let source = addrs::pool_addr(addrs::POOL_PROBES, NEXT_PROBE.fetch_add(1, Ordering::Relaxed));
    let (outcome, detail) = match first_line(addr, SocketAddr::from((source, 0)), timeout) {
        Ok(Some(line)) => (classify(&line).to_string(), line),
        Ok(None) => ("closed".to_string(), "closed without a word".to_string()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => ("reset".to_string(), e.to_string()),
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => (
            "no answer".to_string(),
            format!("no line within {:.1} s", timeout.as_secs_f64()),
        ),
        Err(e) if e.kind() == io::ErrorKind::Other && e.to_string().starts_with("connect: ") => {
            ("connect failed".to_string(), e.to_string())
        }
        Err(e) => ("other".to_string(), e.to_string()),
    };
    Probe {
        at_s,
        outcome,
        detail,
    }
}

/// The word for a first line.
fn classify(line: &str) -> &'static str {
    if line.starts_with("-- welcome") {
        "served"
    } else if line.contains("server full") {
        "full"
    } else if line.starts_with("!!") {
        "refused"
    } else {
        "other"
    }
}

/// The first line from `addr` (without `\n`), `None` at EOF before one.
fn first_line(addr: SocketAddr, source: SocketAddr, timeout: Duration) -> io::Result<Option<String>> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&source.into())?;
    socket
        .connect_timeout(&addr.into(), timeout)
        .map_err(|e| io::Error::other(format!("connect: {e}")))?;
    let mut stream = TcpStream::from(socket);
    let deadline = Instant::now() + timeout;
    let mut line = Vec::new();
    let mut buf = [0u8; 512];
    // Bounded by the deadline and by the line's length.
    while line.len() < 4096 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok((!line.is_empty()).then(|| String::from_utf8_lossy(&line).into_owned()));
        }
        let chunk = buf.get(..n).unwrap_or_default();
        if let Some(end) = memchr::memchr(b'\n', chunk) {
            line.extend_from_slice(chunk.get(..end).unwrap_or_default());
            break;
        }
        line.extend_from_slice(chunk);
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_lines_are_put_in_a_word() {
        assert_eq!(classify("-- welcome to chat-server, guest1! ..."), "served");
        assert_eq!(classify("!! server full"), "full");
        assert_eq!(classify("!! too many connections from your address"), "refused");
        assert_eq!(classify("hello"), "other");
    }

    #[test]
    fn a_listener_that_never_speaks_is_no_answer_and_a_closed_port_fails() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let probe = fresh_user(addr, Instant::now(), Duration::from_millis(200));
        assert_eq!(probe.outcome, "no answer", "{probe:?}");
        drop(listener);
        let probe = fresh_user(addr, Instant::now(), Duration::from_millis(200));
        assert_eq!(probe.outcome, "connect failed", "{probe:?}");
    }
}
