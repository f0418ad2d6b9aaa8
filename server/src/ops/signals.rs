//! What the daemon does on a signal: SIGTERM and SIGINT stop it
//! gracefully, SIGHUP reloads its TLS certificate. Under a unit with a
//! file descriptor store, SIGTERM hands every connection to the store
//! instead (see [`crate::upgrade`]): `systemctl restart` keeps everyone.
//!
//! The handlers themselves only record the signal (signal-hook's iterator
//! writes to a self-pipe); a thread of its own reads them and does the
//! work there, where it may log, read files and take locks. A stop tells
//! systemd `STOPPING=1` first, then asks the server to shut down; a reload
//! is framed by `RELOADING=1` and `READY=1`, so `systemctl reload` returns
//! once the new certificate is in force (or refused).

use std::io;
use std::thread::{self, JoinHandle};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::net::shutdown::ShutdownHandle;
use crate::net::tls::Reloader;
use crate::ops::systemd::{ReloadNotice, StoppingNotice};

/// Who acts on the signals.
#[derive(Debug)]
pub struct Actions {
    /// Stops the server.
    pub shutdown: ShutdownHandle,
    /// Tells systemd the server is stopping.
    pub stopping: StoppingNotice,
    /// Tells systemd a reload is under way.
    pub reloading: ReloadNotice,
    /// Reloads the TLS certificate; None when no TLS listener is served.
    pub tls: Option<Reloader>,
    /// SIGTERM hands the connections over rather than closing them: the
    /// service manager keeps a file descriptor store for the next process.
    pub hand_over_on_term: bool,
}

impl Actions {
    /// Does what `signal` asks.
    fn on(&self, signal: i32) {
        match signal {
            SIGHUP => self.reload(),
            SIGTERM if self.hand_over_on_term => {
                log::info!("SIGTERM: handing every connection to the service manager's descriptor store");
                self.shutdown.hand_over();
            }
            SIGTERM | SIGINT => {
                let name = if signal == SIGTERM { "SIGTERM" } else { "SIGINT" };
                log::info!("{name}: shutting down");
                self.stopping.send();
                self.shutdown.shutdown();
            }
            other => log::debug!("signal {other} ignored"),
        }
    }

    /// Reads the certificate and key again; on any error the ones in force
    /// stay, and the error is logged once.
    fn reload(&self) {
        let Some(tls) = &self.tls else {
            log::info!("SIGHUP: nothing to reload (no TLS listener)");
            return;
        };
        self.reloading.begin();
        match tls.reload() {
            Ok(fingerprint) => log::info!(
                "SIGHUP: reloaded the TLS certificate {} (SHA-256 {fingerprint}); new connections get it",
                tls.files().cert.display()
            ),
            Err(e) => log::error!("SIGHUP: {e}; still serving the certificate loaded before"),
        }
        self.reloading.end();
    }
}

/// The signal thread; dropping it does not stop it, [`SignalThread::stop`]
/// does.
#[derive(Debug)]
pub struct SignalThread {
    handle: Handle,
    thread: JoinHandle<()>,
}

impl SignalThread {
    /// Installs the handlers for SIGTERM, SIGINT and SIGHUP and starts the
    /// thread that acts on them.
    ///
    /// # Errors
    /// When a handler cannot be installed or the thread cannot start.
    pub fn start(actions: Actions) -> io::Result<SignalThread> {
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        let handle = signals.handle();
        let thread = thread::Builder::new().name("signals".into()).spawn(move || {
            // Ends once the handle is closed.
            for signal in signals.forever() {
                actions.on(signal);
            }
        })?;
        Ok(SignalThread { handle, thread })
    }

    /// Stops the thread once the server has stopped.
    pub fn stop(self) {
        self.handle.close();
        if self.thread.join().is_err() {
            log::error!("the signal thread panicked");
        }
    }
}
