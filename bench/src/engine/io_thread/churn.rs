//! The churn part of an I/O thread: connections opened, taken through
//! their TLS handshake (if any) and the server's first line, and closed,
//! a fixed number in flight at once, until the end of the run. It measures
//! how many new clients a server can take in per second, and how long each
//! waits for its welcome.
//!
//! A closed connection's slot (and token) is taken by the next one, so a
//! run of tens of thousands of connections holds only as many sockets as
//! it has in flight (and closing). Each connection closes cleanly: a
//! close_notify for TLS, then FIN, then whatever the server still sends is
//! read until it closes too. `ncat --chat` lists every connected peer to
//! each newcomer and quits ("getpeername ... failed") when one of them was
//! reset under it, which closing a socket with unread bytes does.

use std::net::Shutdown;
use std::time::Duration;

use super::IoThread;
use crate::client::State;
use crate::engine::{ChurnPlan, Milestone};
use crate::stats::Latency;

/// Failed connections in a row after which a thread starts no more: the
/// server is gone or refuses everyone, and going on would only burn the
/// machine's CPU until the end of the run.
const MAX_FAILURES_IN_A_ROW: u64 = 1000;

/// What one thread's churn counted.
#[derive(Debug, Clone, Default)]
pub struct ChurnResult {
    /// Connections welcomed before the end.
    pub completed: u64,
    /// Connections that failed: refused, reset, a TLS error, or not
    /// welcomed in time.
    pub failed: u64,
    /// Connections still under way at the end.
    pub abandoned: u64,
    /// Connect to welcome, each completed connection.
    pub latency: Latency,
}

/// This thread's churn under way.
pub(super) struct Churn {
    /// Its plan.
    plan: ChurnPlan,
    /// Slots of closed connections, for the next ones.
    pub(super) free: Vec<usize>,
    /// The next client number (ids of one thread stay in its residue
    /// class, as everywhere in the engine).
    next_id: usize,
    /// The end was reported.
    reported: bool,
    /// Connections failed since the last one that was welcomed: a server
    /// that is gone refuses every connect at once, and the churn stops
    /// rather than spin ([`MAX_FAILURES_IN_A_ROW`]).
    pub(super) failures_in_a_row: u64,
    /// What it counted so far.
    pub(super) result: ChurnResult,
}

impl Churn {
    /// How long the loop may sleep: until the end, or the next time a
    /// connection's timeout must be looked at (a tenth of it).
    pub(super) fn next_timeout(&self, now_ns: u64) -> Duration {
        if self.reported {
            return Duration::MAX;
        }
        let to_end = Duration::from_nanos(self.plan.end_ns.saturating_sub(now_ns));
        to_end.min(self.plan.timeout / 10)
    }
}

impl IoThread {
    pub(super) fn start_churn(&mut self, plan: ChurnPlan) {
        self.churn = Some(Churn {
            plan,
            free: Vec::new(),
            next_id: self.config.first_id + self.index,
            reported: false,
            failures_in_a_row: 0,
            result: ChurnResult::default(),
        });
    }

    /// Keeps the churn's connections in flight until its end, and closes
    /// those whose time is up.
    pub(super) fn step_churn(&mut self) {
        let Some(churn) = &self.churn else {
            return;
        };
        if churn.reported {
            return;
        }
        let now = self.shared.now_ns();
        let inflight = churn.plan.inflight;
        let timeout_ns = u64::try_from(churn.plan.timeout.as_nanos()).unwrap_or(u64::MAX);
        let late: Vec<usize> = self
            .conns
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                matches!(c.state, State::Connecting | State::AwaitWelcome | State::Closing)
                    && now.saturating_sub(c.started_ns) > timeout_ns
            })
            .map(|(idx, _)| idx)
            .collect();
        for idx in late {
            if self.conns.get(idx).is_some_and(|c| c.state == State::Closing) {
                // Counted already; the server never closed its end.
                self.closed(idx);
            } else {
                self.kill(idx, "not welcomed in time");
            }
        }
        let threads = self.config.threads.max(1);
        // At most the in-flight count per turn, even when every connect
        // fails at once (no free address, say).
        for _ in 0..inflight {
            let Some(churn) = &mut self.churn else {
                break;
            };
            if now >= churn.plan.end_ns
                || self.in_handshake >= inflight
                || churn.failures_in_a_row >= MAX_FAILURES_IN_A_ROW
            {
                break;
            }
            let id = churn.next_id;
            churn.next_id += threads;
            let reuse = churn.free.pop();
            self.start_one(id, reuse);
        }
    }

    /// Connection `idx` had its first line: counted, timed, and closing
    /// (its slot is freed once the server closed its end too).
    pub(super) fn churned(&mut self, idx: usize) {
        let now = self.shared.now_ns();
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        let Some(churn) = &mut self.churn else {
            return;
        };
        if now <= churn.plan.end_ns {
            churn.result.completed += 1;
            churn.result.latency.record(now.saturating_sub(conn.started_ns));
        } else {
            churn.result.abandoned += 1;
        }
        churn.failures_in_a_row = 0;
        conn.state = State::Closing;
        // The closing timeout counts from now.
        conn.started_ns = now;
        conn.close_notify();
        if conn.stream.shutdown(Shutdown::Write).is_err() {
            self.closed(idx);
        }
        self.in_handshake = self.in_handshake.saturating_sub(1);
    }

    /// A closing connection's server closed its end too (or failed, or
    /// never closed): the socket goes, its slot is free.
    pub(super) fn closed(&mut self, idx: usize) {
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        if conn.state != State::Closing {
            return;
        }
        conn.state = State::Dead;
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if let Some(churn) = &mut self.churn {
            churn.free.push(idx);
        }
    }

    /// At the end: the connections still under way are abandoned (closed,
    /// counted apart), and the end is reported.
    pub(super) fn check_churn_end(&mut self) {
        let now = self.shared.now_ns();
        let Some(churn) = &mut self.churn else {
            return;
        };
        if churn.reported || now < churn.plan.end_ns {
            return;
        }
        churn.reported = true;
        for conn in &mut self.conns {
            if matches!(conn.state, State::Connecting | State::AwaitWelcome) {
                conn.state = State::Dead;
                let _ = self.poll.registry().deregister(&mut conn.stream);
                let _ = conn.stream.shutdown(Shutdown::Both);
                churn.result.abandoned += 1;
            }
        }
        self.in_handshake = 0;
        self.result.churn = churn.result.clone();
        let _ = self.milestones.send(Milestone::Churned);
    }
}
