//! One I/O thread of the engine: its connections, its poll loop, and its
//! part of a fan-out run (its senders, its receivers' accounting).
//!
//! The loop sleeps in `poll` until a socket, the waker or the next
//! fixed-rate send is due; every turn is bounded (reads per connection,
//! connects per turn) and the thread returns on `Stop` or at the end of
//! its lifetime, whichever comes first. The fan-out part (senders,
//! windows, accounting) is in [`run`], the churn of the handshake
//! scenarios in [`churn`], what an IRC connection makes of its lines in
//! [`irc_lines`], and what a WebSocket connection makes of its frames in
//! [`web_frames`].

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::{Events, Interest, Poll, Token};

mod churn;
mod irc_lines;
mod run;
mod web_frames;

use super::{Cmd, Dialect, EngineConfig, Flavor, Handshake, Milestone, Shared, Stall, Tally, WAKER};
use crate::client::{self, split_lines, Conn, State};
use crate::irc;
use crate::stats::{Integrity, Latency};
use crate::tls::Negotiated;
use crate::web;
use churn::Churn;
pub use churn::ChurnResult;
use run::{due_ns, Run};

/// Size of the shared read buffer.
const READ_BUF: usize = 64 * 1024;
/// Most reads from one connection per turn, so one busy socket cannot
/// starve the others; a connection with more is read again next turn.
const MAX_READS_PER_TURN: usize = 8;
/// Longest sleep in `poll`, so the lifetime is checked now and then.
const MAX_WAIT: Duration = Duration::from_millis(100);

/// What one thread counted, handed back when it ends.
#[derive(Debug, Clone, Default)]
pub struct ThreadResult {
    /// Delivery accounting of its receivers.
    pub integrity: Integrity,
    /// Latency of its receivers' deliveries.
    pub latency: Latency,
    /// Lines that were not stamped deliveries.
    pub other_lines: u64,
    /// Lines dropped for being longer than [`client::MAX_PARTIAL`].
    pub oversize_lines: u64,
    /// When its last delivery arrived, ns since the base.
    pub last_delivery_ns: u64,
    /// Worst lateness of a fixed-rate send, ns.
    pub max_send_lag_ns: u64,
    /// The first connection error it saw.
    pub first_error: Option<String>,
    /// Latency of its receivers' deliveries of lines sent in the focus
    /// window.
    pub focus_latency: Latency,
    /// What its first TLS handshake negotiated.
    pub tls: Option<Negotiated>,
    /// Its share of a churn.
    pub churn: ChurnResult,
    /// Its receivers' deliveries by their dialect ([`Dialect::index`]).
    pub by_dialect: [Tally; 3],
    /// The server's pings it answered (IRC `PING`, WebSocket Ping).
    pub pings_answered: u64,
}

/// The state of one I/O thread.
pub struct IoThread {
    index: usize,
    poll: Poll,
    config: EngineConfig,
    shared: Arc<Shared>,
    cmds: Receiver<Cmd>,
    milestones: Sender<Milestone>,
    conns: Vec<Conn>,
    /// Clients still to connect in the current `Open`.
    to_open: VecDeque<usize>,
    /// The handshake of the current `Open`.
    handshake: Handshake,
    /// The room this thread's clients joined (by the handshake or a
    /// `JoinAll`): where IRC senders address their `PRIVMSG`s.
    room: Option<String>,
    /// Connections connecting or in their handshake.
    in_handshake: usize,
    /// An `Open` is under way and not yet reported.
    opening: bool,
    /// Connections that were told to `/join` and have not answered.
    joining: usize,
    /// A `JoinAll` is under way and not yet reported.
    join_active: bool,
    run: Option<Run>,
    /// A churn under way.
    churn: Option<Churn>,
    /// Connections with more to read than one turn took.
    again: Vec<usize>,
    /// Connections that got their handshake reply queued this turn.
    to_flush: Vec<usize>,
    scratch: Vec<u8>,
    result: ThreadResult,
    stopping: bool,
}

impl IoThread {
    pub(super) fn new(
        index: usize,
        poll: Poll,
        config: EngineConfig,
        shared: Arc<Shared>,
        cmds: Receiver<Cmd>,
        milestones: Sender<Milestone>,
    ) -> IoThread {
        IoThread {
            index,
            poll,
            config,
            shared,
            cmds,
            milestones,
            conns: Vec::new(),
            to_open: VecDeque::new(),
            handshake: Handshake::Welcome,
            room: None,
            in_handshake: 0,
            opening: false,
            joining: 0,
            join_active: false,
            run: None,
            churn: None,
            again: Vec::new(),
            to_flush: Vec::new(),
            scratch: vec![0; READ_BUF],
            result: ThreadResult::default(),
            stopping: false,
        }
    }

    /// The loop; returns what the thread counted.
    pub(super) fn run(mut self) -> ThreadResult {
        let deadline = Instant::now() + self.config.lifetime;
        let mut events = Events::with_capacity(1024);
        while !self.stopping && Instant::now() < deadline {
            let timeout = self.next_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.note_error(&format!("poll: {e}"));
                    break;
                }
            }
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                let idx = event.token().0;
                if event.is_writable() || event.is_error() {
                    self.on_writable(idx);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.on_readable(idx);
                }
            }
            // Commands come with a wake, but are checked every turn anyway.
            self.take_commands();
            let again = mem::take(&mut self.again);
            for idx in again {
                self.on_readable(idx);
            }
            self.flush_queued();
            self.step_churn();
            self.pump_opens();
            self.publish_minima();
            self.step_senders();
            self.check_milestones();
        }
        self.finish()
    }

    fn next_timeout(&self) -> Duration {
        if !self.again.is_empty() {
            return Duration::ZERO;
        }
        if let Some(churn) = &self.churn {
            return churn.next_timeout(self.shared.now_ns()).min(MAX_WAIT);
        }
        let Some(run) = &self.run else {
            return MAX_WAIT;
        };
        if run.send_again {
            return Duration::ZERO;
        }
        let (Some(rate), Some(clock)) = (run.plan.rate, run.clock) else {
            return MAX_WAIT;
        };
        let now = self.shared.now_ns();
        let next_due = run
            .senders
            .iter()
            .filter_map(|&idx| self.conns.get(idx)?.sender)
            .filter(|&s| !run.done.get(s).copied().unwrap_or(true))
            .map(|s| due_ns(clock, rate, run.sent.get(s).copied().unwrap_or(0)))
            .min();
        match next_due {
            Some(due) => Duration::from_nanos(due.saturating_sub(now)).min(MAX_WAIT),
            None => MAX_WAIT,
        }
    }

    fn note_error(&mut self, e: &str) {
        if self.result.first_error.is_none() {
            self.result.first_error = Some(e.to_string());
            // Only the first of all threads' is kept.
            let _ = self.shared.first_error.set(e.to_string());
        }
    }

    fn take_commands(&mut self) {
        // Bounded by what the coordinator sent: a handful per step.
        for _ in 0..64 {
            match self.cmds.try_recv() {
                Ok(Cmd::Open(ids, handshake)) => {
                    self.to_open.extend(ids);
                    if let Handshake::Join(room) = &handshake {
                        self.room = Some(room.clone());
                    }
                    self.handshake = handshake;
                    self.opening = true;
                }
                Ok(Cmd::JoinAll(room)) => self.join_all(&room),
                Ok(Cmd::Arm(plan)) => {
                    self.arm_run(plan);
                    let _ = self.milestones.send(Milestone::Armed);
                }
                Ok(Cmd::Go(clock)) => {
                    if let Some(run) = &mut self.run {
                        run.clock = Some(clock);
                    }
                }
                Ok(Cmd::Drain(finals)) => {
                    if let Some(run) = &mut self.run {
                        run.finals = Some(finals);
                    }
                }
                Ok(Cmd::Churn(plan)) => self.start_churn(plan),
                Ok(Cmd::Stop) | Err(TryRecvError::Disconnected) => {
                    self.stopping = true;
                    return;
                }
                Err(TryRecvError::Empty) => return,
            }
        }
    }

    /// Starts connects while fewer than `connect_inflight` are under way.
    fn pump_opens(&mut self) {
        while self.in_handshake < self.config.connect_inflight.max(1) {
            let Some(id) = self.to_open.pop_front() else {
                break;
            };
            self.start_one(id, None);
        }
    }

    /// Starts the connect of client `id`, in slot `reuse` (a closed
    /// connection's, in a churn) or a new one. A failure to start counts
    /// as a failed connection.
    fn start_one(&mut self, id: usize, reuse: Option<usize>) {
        let dest = self.config.dest_for(id);
        let source = client::source_for(id, self.config.sources, dest);
        let idx = reuse.unwrap_or(self.conns.len());
        let token = Token(idx);
        let started = client::start_connect(dest, source).and_then(|mut stream| {
            let tls = self.config.tls.as_ref().map(|t| t.connect()).transpose()?;
            self.poll
                .registry()
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
            Ok((stream, tls))
        });
        match started {
            Ok((stream, tls)) => {
                // The slot's old connection (closed) is dropped here, and
                // its socket with it.
                let mut conn = Conn::new(stream, id, tls, self.shared.now_ns());
                conn.speak(self.config.dialect_for(id));
                match self.conns.get_mut(idx) {
                    Some(slot) => *slot = conn,
                    None => self.conns.push(conn),
                }
                self.in_handshake += 1;
            }
            Err(e) => {
                self.note_error(&format!("connect: {e}"));
                self.shared.failed.fetch_add(1, Ordering::SeqCst);
                if let Some(churn) = &mut self.churn {
                    churn.result.failed += 1;
                    churn.failures_in_a_row += 1;
                    if let Some(idx) = reuse {
                        churn.free.push(idx);
                    }
                }
            }
        }
    }

    /// The connect of `idx` just finished: for TLS, the ClientHello goes
    /// out; a stalling connection sends its stall and counts as ready.
    fn on_connected(&mut self, idx: usize) {
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        conn.state = State::AwaitWelcome;
        let outcome = match self.handshake {
            Handshake::Stall(Stall::Silent) => Ok(true),
            Handshake::Stall(Stall::HalfHello) => conn.send_half_hello().map(|()| true),
            Handshake::Welcome | Handshake::Join(_) => {
                match conn.dialect {
                    // An IRC server says nothing until it is told who this
                    // is; a WebSocket's welcome comes after the upgrade.
                    Dialect::Irc => irc::register(&mut conn.out, &irc::nick(conn.id)),
                    Dialect::Web => {
                        let host = self.config.dest_for(conn.id).to_string();
                        web::upgrade_request(&mut conn.out, &host);
                    }
                    Dialect::Line => {}
                }
                conn.flush().map(|()| false)
            }
        };
        match outcome {
            Ok(true) => self.mark_ready(idx),
            Ok(false) => {}
            Err(e) => self.kill(idx, &e.to_string()),
        }
    }

    fn on_writable(&mut self, idx: usize) {
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        let outcome = match conn.state {
            // A closing connection has said all it will.
            State::Dead | State::Closing => return,
            State::Connecting => match conn.poll_connected() {
                Ok(true) => {
                    self.on_connected(idx);
                    return;
                }
                Ok(false) => Ok(()),
                Err(e) => Err(e),
            },
            // A stalled connection sends nothing more, ever.
            _ if matches!(self.handshake, Handshake::Stall(_)) => Ok(()),
            _ => conn.flush(),
        };
        if let Err(e) = outcome {
            self.kill(idx, &e.to_string());
        }
    }

    fn on_readable(&mut self, idx: usize) {
        let mut scratch = mem::take(&mut self.scratch);
        let mut more = true;
        for _ in 0..MAX_READS_PER_TURN {
            let Some(conn) = self.conns.get_mut(idx) else {
                more = false;
                break;
            };
            if conn.state == State::Connecting {
                match conn.poll_connected() {
                    Ok(true) => self.on_connected(idx),
                    Ok(false) => {
                        more = false;
                        break;
                    }
                    Err(e) => {
                        self.kill(idx, &e.to_string());
                        more = false;
                        break;
                    }
                }
            }
            let Some(conn) = self.conns.get_mut(idx).filter(|c| c.state != State::Dead) else {
                more = false;
                break;
            };
            match conn.read_some(&mut scratch) {
                Ok(Some(0)) if conn.state == State::Closing => {
                    self.closed(idx);
                    more = false;
                    break;
                }
                Ok(Some(0)) => {
                    self.kill(idx, "closed by the server");
                    more = false;
                    break;
                }
                Ok(Some(n)) => {
                    self.shared.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    let data = scratch.get(..n).unwrap_or_default();
                    if let Some(mut ws) = conn.ws.take() {
                        let fed = self.on_web_bytes(idx, &mut ws, data);
                        if let Some(conn) = self.conns.get_mut(idx) {
                            conn.ws = Some(ws);
                        }
                        if let Err(why) = fed {
                            self.kill(idx, &why);
                            more = false;
                            break;
                        }
                        continue;
                    }
                    let mut partial = mem::take(&mut conn.partial);
                    let dropped = split_lines(&mut partial, data, |line| self.on_line(idx, line));
                    self.result.oversize_lines += dropped;
                    if let Some(conn) = self.conns.get_mut(idx) {
                        conn.partial = partial;
                    }
                }
                Ok(None) => {
                    more = false;
                    break;
                }
                Err(_) if conn.state == State::Closing => {
                    self.closed(idx);
                    more = false;
                    break;
                }
                Err(e) => {
                    self.kill(idx, &e.to_string());
                    more = false;
                    break;
                }
            }
        }
        self.scratch = scratch;
        if more {
            self.again.push(idx);
        }
    }

    fn on_line(&mut self, idx: usize, line: &[u8]) {
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        if self.result.tls.is_none() {
            if let Some(tls) = &conn.tls {
                self.result.tls = Negotiated::of(tls);
            }
        }
        if conn.dialect == Dialect::Irc {
            self.on_irc_line(idx, line);
            return;
        }
        match conn.state {
            State::Connecting | State::Dead | State::Closing => {}
            State::AwaitWelcome if self.churn.is_some() => {
                if self.config.flavor == Flavor::ChatServer && line.starts_with(b"!! ") {
                    // "server full", "too many connections": refused.
                    let why = String::from_utf8_lossy(line).into_owned();
                    self.kill(idx, &why);
                } else {
                    self.churned(idx);
                }
            }
            State::AwaitWelcome => match self.config.flavor {
                Flavor::Ncat => self.mark_ready(idx),
                // Its connections all speak IRC; a line client there is a
                // mistake in the run's setup, said as such.
                Flavor::Ngircd => self.kill(idx, "ngircd speaks IRC only"),
                Flavor::TokioChat => {
                    // The example sends nothing else before the name: it
                    // registers the peer (and starts sending it others'
                    // lines) only once it has read the name, and never
                    // confirms it. So the client counts as ready once the
                    // name is queued; the run's settle step (announcements
                    // stopped) covers the server registering it, and a
                    // receiver it had not registered yet would show up as
                    // lost lines, never silently.
                    if is_username_prompt(line) {
                        let name = format!("u{}\n", conn.id);
                        conn.out.extend_from_slice(name.as_bytes());
                        self.to_flush.push(idx);
                        self.mark_ready(idx);
                    }
                }
                Flavor::ChatServer => {
                    if line.starts_with(b"-- welcome") {
                        if let Handshake::Join(room) = &self.handshake {
                            conn.queue_line(&format!("/nick b{}", conn.id));
                            conn.queue_line(&format!("/join {room}"));
                            conn.state = State::AwaitJoined;
                            self.to_flush.push(idx);
                        } else {
                            self.mark_ready(idx);
                        }
                    } else if line.starts_with(b"!! ") {
                        // "server full", "too many connections": refused.
                        let why = String::from_utf8_lossy(line).into_owned();
                        self.kill(idx, &why);
                    }
                }
            },
            State::AwaitJoined => {
                if is_join_confirmation(line) {
                    self.mark_ready(idx);
                }
            }
            State::Joining => {
                if is_join_confirmation(line) {
                    conn.state = State::Ready;
                    self.joining = self.joining.saturating_sub(1);
                }
            }
            State::Ready => self.on_ready_line(idx, line),
        }
    }

    fn mark_ready(&mut self, idx: usize) {
        if let Some(conn) = self.conns.get_mut(idx) {
            conn.state = State::Ready;
            self.in_handshake = self.in_handshake.saturating_sub(1);
            self.shared.live.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Closes connection `idx` for `why` and takes it out of every count.
    fn kill(&mut self, idx: usize, why: &str) {
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        let before = conn.state;
        if before == State::Dead {
            return;
        }
        conn.state = State::Dead;
        let sender = conn.sender;
        // Deregistering a socket the kernel already closed may fail; it is
        // dropped from the loop either way.
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        match before {
            State::Connecting | State::AwaitWelcome | State::AwaitJoined => {
                self.in_handshake = self.in_handshake.saturating_sub(1);
                self.shared.failed.fetch_add(1, Ordering::SeqCst);
                if let Some(churn) = &mut self.churn {
                    churn.result.failed += 1;
                    churn.failures_in_a_row += 1;
                    churn.free.push(idx);
                }
            }
            // A churned connection, already counted; its slot is free.
            State::Closing => {
                if let Some(churn) = &mut self.churn {
                    churn.free.push(idx);
                }
                return;
            }
            State::Joining | State::Ready => {
                if before == State::Joining {
                    self.joining = self.joining.saturating_sub(1);
                }
                self.shared.live.fetch_sub(1, Ordering::SeqCst);
                self.shared.died.fetch_add(1, Ordering::SeqCst);
            }
            State::Dead => {}
        }
        if let Some(run) = &mut self.run {
            for (s, min) in run.minima.iter_mut().enumerate() {
                if min.exclude(idx) {
                    if let Some(d) = run.dirty.get_mut(s) {
                        *d = true;
                    }
                }
            }
            if let Some(done) = sender.and_then(|s| run.done.get_mut(s)) {
                *done = true;
            }
        }
        self.note_error(why);
    }

    fn flush_queued(&mut self) {
        for idx in mem::take(&mut self.to_flush) {
            if let Some(conn) = self.conns.get_mut(idx) {
                if let Err(e) = conn.flush() {
                    self.kill(idx, &e.to_string());
                }
            }
        }
    }

    fn join_all(&mut self, room: &str) {
        let request = format!("/join {room}");
        self.join_active = true;
        self.room = Some(room.to_string());
        for idx in 0..self.conns.len() {
            let Some(conn) = self.conns.get_mut(idx).filter(|c| c.state == State::Ready) else {
                continue;
            };
            conn.state = State::Joining;
            if conn.dialect == Dialect::Irc {
                irc::join(&mut conn.out, room);
            } else {
                conn.queue_line(&request);
            }
            self.joining += 1;
            self.to_flush.push(idx);
        }
    }

    fn check_milestones(&mut self) {
        self.check_churn_end();
        if self.opening && self.to_open.is_empty() && self.in_handshake == 0 {
            self.opening = false;
            let _ = self.milestones.send(Milestone::Opened);
        }
        if self.join_active && self.joining == 0 {
            self.join_active = false;
            let _ = self.milestones.send(Milestone::Joined);
        }
        let Some(run) = &mut self.run else {
            return;
        };
        // Not before the go: a thread without senders is "done" from the
        // start, and a report during arming would be taken for a late one.
        if !run.senders_reported && run.clock.is_some() && run.done.iter().all(|&d| d) {
            run.senders_reported = true;
            let _ = self.milestones.send(Milestone::SendersDone);
        }
        if let (false, Some(finals)) = (run.drained_reported, &run.finals) {
            let all_in = self.conns.iter().filter(|c| c.state == State::Ready).all(|c| {
                c.tracks
                    .iter()
                    .zip(finals.iter())
                    .enumerate()
                    .all(|(s, (track, &sent))| c.sender == Some(s) || track.received() >= sent)
            });
            if all_in {
                run.drained_reported = true;
                let _ = self.milestones.send(Milestone::Drained);
            }
        }
    }

    fn finish(mut self) -> ThreadResult {
        if let Some(run) = &self.run {
            let finals: Vec<u64> = (0..run.plan.senders).map(|s| run.plan.sent(s)).collect();
            for conn in &self.conns {
                for (s, track) in conn.tracks.iter().enumerate() {
                    if conn.sender == Some(s) {
                        continue;
                    }
                    let sent = finals.get(s).copied().unwrap_or(0);
                    self.result.integrity.lost += track.lost(sent);
                    self.result.integrity.duplicated += track.duplicates();
                    self.result.integrity.out_of_order += track.out_of_order();
                }
            }
        }
        self.result
    }
}

fn is_join_confirmation(line: &[u8]) -> bool {
    line.starts_with(b"-- you joined ") || line.starts_with(b"!! you are already in ")
}

/// The first line of tokio's chat example. Its `LinesCodec` ends lines
/// with a bare `\n`; a `\r` is tolerated all the same.
fn is_username_prompt(line: &[u8]) -> bool {
    line.strip_suffix(b"\r").unwrap_or(line) == b"Please enter your username:"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_username_prompt_is_recognised_and_nothing_else() {
        assert!(is_username_prompt(b"Please enter your username:"));
        assert!(is_username_prompt(b"Please enter your username:\r"));
        assert!(!is_username_prompt(b"u3 has joined the chat"));
        assert!(!is_username_prompt(b"u3: Please enter your username:"));
        assert!(!is_username_prompt(b""));
    }
}
