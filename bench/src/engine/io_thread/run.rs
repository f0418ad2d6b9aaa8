//! The fan-out part of an I/O thread: its senders, and its receivers'
//! accounting of what they got.
//!
//! Kept apart from the connection handling in the parent module because it
//! is the only part with cross-thread coordination: each thread publishes,
//! per sender, the lowest count among its receivers, and a sender sends
//! only while the lowest count over all threads leaves room in its window
//! (and, at a fixed rate, only what is due).

use std::mem;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::IoThread;
use crate::client::State;
use crate::engine::{Clock, Dialect, Plan};
use crate::irc;
use crate::payload::{self, Stamp};
use crate::stats::SeqTrack;
use crate::web;
use crate::window::MinTracker;

/// This thread's part of a fan-out run.
pub(super) struct Run {
    /// The run, shared by every thread.
    pub(super) plan: Arc<Plan>,
    /// When the senders send; `None` while armed but not yet told to go
    /// (receivers already count, senders wait).
    pub(super) clock: Option<Clock>,
    /// Per sender: the lowest count among this thread's receivers.
    pub(super) minima: Vec<MinTracker>,
    /// Per sender: `minima` rose since it was last published.
    pub(super) dirty: Vec<bool>,
    /// Connections (indices) of this thread's senders.
    pub(super) senders: Vec<usize>,
    /// Lines sent so far by each of this thread's senders (by sender).
    pub(super) sent: Vec<u64>,
    /// Per sender: finished sending.
    pub(super) done: Vec<bool>,
    /// `SendersDone` was reported.
    pub(super) senders_reported: bool,
    /// The final counts, once draining.
    pub(super) finals: Option<Arc<Vec<u64>>>,
    /// `Drained` was reported.
    pub(super) drained_reported: bool,
    /// A sender has room in its window after its last send: the next poll
    /// must not sleep.
    pub(super) send_again: bool,
    /// What an IRC sender puts before each line's text: `PRIVMSG #room :`.
    irc_prefix: Vec<u8>,
}

impl IoThread {
    pub(super) fn on_ready_line(&mut self, idx: usize, line: &[u8]) {
        let (Some(run), Some(stamp)) = (&mut self.run, payload::parse_delivery(line)) else {
            self.result.other_lines += 1;
            return;
        };
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        let Some(track) = conn.tracks.get_mut(stamp.sender) else {
            self.result.integrity.foreign += 1;
            return;
        };
        if !track.record(stamp.seq) {
            return;
        }
        let received = track.received();
        let now = self.shared.now_ns();
        self.result.latency.record(now.saturating_sub(stamp.t));
        if let Some(tally) = self.result.by_dialect.get_mut(conn.dialect.index()) {
            tally.delivered += 1;
            tally.latency.record(now.saturating_sub(stamp.t));
        }
        if self.shared.in_focus(stamp.t) {
            self.result.focus_latency.record(now.saturating_sub(stamp.t));
        }
        self.result.integrity.delivered += 1;
        self.result.last_delivery_ns = now;
        if let Some(min) = run.minima.get_mut(stamp.sender) {
            if min.set(idx, received) {
                if let Some(d) = run.dirty.get_mut(stamp.sender) {
                    *d = true;
                }
            }
        }
    }

    /// Sets up this thread's part of a run: which of its connections send,
    /// and every receiver's per-sender accounting. Nothing is sent until
    /// the [`Clock`] arrives.
    pub(super) fn arm_run(&mut self, plan: Arc<Plan>) {
        let senders = plan.senders;
        let mut run = Run {
            minima: Vec::with_capacity(senders),
            dirty: vec![true; senders],
            senders: Vec::new(),
            sent: vec![0; senders],
            done: vec![false; senders],
            senders_reported: false,
            finals: None,
            drained_reported: false,
            send_again: false,
            // A run's clients have joined a room; a thread without one
            // (no client of it joined anything) has no IRC senders either.
            irc_prefix: irc::privmsg_prefix(self.room.as_deref().unwrap_or("#lobby")),
            plan,
            clock: None,
        };
        for (idx, conn) in self.conns.iter_mut().enumerate() {
            if conn.state == State::Ready && conn.id < senders {
                conn.sender = Some(conn.id);
                run.senders.push(idx);
            }
            conn.tracks = if conn.state == State::Ready {
                vec![SeqTrack::default(); senders]
            } else {
                Vec::new()
            };
        }
        for s in 0..senders {
            // Only this thread's senders have anything to do here; one that
            // failed to open has nothing to send at all.
            let here = run
                .senders
                .iter()
                .any(|&i| self.conns.get(i).and_then(|c| c.sender) == Some(s));
            if let Some(done) = run.done.get_mut(s) {
                *done = !here;
            }
            let conns = &self.conns;
            run.minima.push(MinTracker::new(conns.len(), |i| {
                conns
                    .get(i)
                    .is_none_or(|c| c.state != State::Ready || c.sender == Some(s))
            }));
        }
        self.run = Some(run);
    }

    /// Publishes the minima that rose, waking a blocked sender's thread.
    pub(super) fn publish_minima(&mut self) {
        let Some(run) = &mut self.run else {
            return;
        };
        let plan = &run.plan;
        for (s, dirty) in run.dirty.iter_mut().enumerate() {
            if !mem::replace(dirty, false) {
                continue;
            }
            let min = run.minima.get(s).map_or(u64::MAX, MinTracker::min);
            if let Some(slot) = plan.acked.get(self.index * plan.senders + s) {
                slot.store(min, Ordering::SeqCst);
            }
            let owner = plan.owner(s);
            if owner != self.index
                && plan
                    .blocked
                    .get(s)
                    .is_some_and(|b| b.swap(false, Ordering::SeqCst))
            {
                if let Some(waker) = plan.wakers.get(owner) {
                    let _ = waker.wake();
                }
            }
        }
    }

    /// Lets each of this thread's senders send what its window and rate
    /// allow.
    pub(super) fn step_senders(&mut self) {
        let Some(run) = &mut self.run else {
            return;
        };
        if run.finals.is_some() {
            return;
        }
        let Some(clock) = run.clock else {
            return;
        };
        let plan = Arc::clone(&run.plan);
        let mut failed = Vec::new();
        let mut send_again = false;
        for &idx in &run.senders {
            let Some(conn) = self.conns.get_mut(idx) else {
                continue;
            };
            let Some(s) = conn.sender else {
                continue;
            };
            let (Some(done), Some(sent)) = (run.done.get_mut(s), run.sent.get_mut(s)) else {
                continue;
            };
            if *done || conn.state != State::Ready {
                *done = true;
                continue;
            }
            let now = self.shared.now_ns();
            if now >= clock.end_ns || *sent >= plan.count {
                *done = true;
                continue;
            }
            if !conn.out_empty() {
                // The socket is full; the writable event continues.
                continue;
            }
            let room = plan.room_or_block(s, *sent);
            if room == 0 {
                continue;
            }
            let mut n = room.min(plan.count - *sent).min(plan.window);
            if let Some(rate) = plan.rate {
                let due = lines_due(clock, rate, now).min(plan.count);
                n = n.min(due.saturating_sub(*sent));
                if n > 0 {
                    let lag = now.saturating_sub(due_ns(clock, rate, *sent));
                    self.result.max_send_lag_ns = self.result.max_send_lag_ns.max(lag);
                }
            }
            for k in 0..n {
                let stamp = Stamp {
                    t: now,
                    sender: s,
                    seq: *sent + k,
                };
                match conn.dialect {
                    Dialect::Line => payload::write_line(&mut conn.out, stamp),
                    Dialect::Irc => irc::write_privmsg(&mut conn.out, &run.irc_prefix, stamp),
                    Dialect::Web => web::write_stamped(&mut conn.out, stamp, web::mask_for(conn.id)),
                }
            }
            *sent += n;
            if let Some(a) = plan.sent.get(s) {
                a.store(*sent, Ordering::SeqCst);
            }
            if n > 0 {
                if let Err(e) = conn.flush() {
                    failed.push((idx, e.to_string()));
                } else if conn.out_empty() && plan.rate.is_none() && plan.room_or_block(s, *sent) > 0 {
                    // Room left (or just freed): go on at once. With none,
                    // the flag is set now, so the receivers' threads wake
                    // this one; waiting for the next turn to set it would
                    // leave a thread with no receivers of its own asleep
                    // until MAX_WAIT. A full socket continues on its
                    // writable event, a fixed rate on its timer.
                    send_again = true;
                }
            }
        }
        run.send_again = send_again;
        for (idx, why) in failed {
            self.kill(idx, &why);
        }
    }
}

/// When the line after `sent` lines is due for a sender at `rate` lines/s.
pub(super) fn due_ns(clock: Clock, rate: f64, sent: u64) -> u64 {
    clock.start_ns.saturating_add((sent as f64 / rate * 1e9) as u64)
}

/// How many lines a sender at `rate` lines/s should have sent by `now`
/// (the first is due at the start).
pub(super) fn lines_due(clock: Clock, rate: f64, now: u64) -> u64 {
    let elapsed = now.saturating_sub(clock.start_ns) as f64 / 1e9;
    (elapsed * rate) as u64 + 1
}
