//! Asking a running server to stop, from any thread.
//!
//! The signal handler, the tests and a failing thread all stop the server
//! the same way: a flag every loop reads at the end of its turn, and a wake
//! of every loop so that none sleeps through it. A restart that keeps the
//! clients ([`ShutdownHandle::hand_over`], see [`crate::upgrade`]) stops
//! the loops the same way, with a second flag that tells them to hand
//! their connections over instead of saying goodbye.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mio::Waker;

/// Starts a graceful shutdown of a running server from any thread.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    requested: Arc<AtomicBool>,
    /// Set before `requested` when the stop is a handover: the loops keep
    /// their clients' sockets open and hand them and their state over.
    handover: Arc<AtomicBool>,
    /// The acceptor's waker and every I/O thread's.
    wakers: Arc<[Arc<Waker>]>,
}

impl ShutdownHandle {
    /// A handle that wakes each of `wakers` (every loop that must notice)
    /// when it asks for the shutdown.
    pub fn new(wakers: impl IntoIterator<Item = Arc<Waker>>) -> ShutdownHandle {
        ShutdownHandle {
            requested: Arc::new(AtomicBool::new(false)),
            handover: Arc::new(AtomicBool::new(false)),
            wakers: wakers.into_iter().collect(),
        }
    }

    /// Asks the server to stop: it stops accepting, tells every client
    /// `-- server shutting down`, flushes, closes, and [`crate::Server::run`]
    /// returns. Calling it again does nothing more.
    pub fn shutdown(&self) {
        self.requested.store(true, Ordering::Release);
        for waker in self.wakers.iter() {
            if let Err(e) = waker.wake() {
                log::error!("cannot wake an event loop to shut down: {e}");
            }
        }
    }

    /// Whether [`ShutdownHandle::shutdown`] has been called.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// Asks the server to stop for a restart that keeps every client: it
    /// stops accepting and reading, and hands its sockets and the chat
    /// state over ([`crate::Server::run_to_end`] returns them) instead of
    /// closing them. Does nothing once a shutdown of either kind has begun.
    pub fn hand_over(&self) {
        if self.is_requested() {
            return;
        }
        self.handover.store(true, Ordering::Release);
        self.shutdown();
    }

    /// Whether the stop under way is a handover.
    pub fn is_handover(&self) -> bool {
        self.handover.load(Ordering::Acquire)
    }
}
