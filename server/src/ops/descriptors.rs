//! The daemon's descriptor budget.
//!
//! Every client costs one file descriptor, so the soft `RLIMIT_NOFILE`
//! bounds how many clients the daemon can hold. Many systems start services
//! with a low soft limit (1,024, for old programs that use `select`) under
//! a much higher hard one; chat-server never uses `select`, so at start it
//! raises its soft limit to the hard one, works out how many clients fit,
//! and says so in the log. A `--max-clients` that cannot fit is a start
//! error rather than a surprise under load; the default, when it does not
//! fit, is lowered to what does, with a warning.

use std::io;

use crate::ops::metrics;

/// Standard input, output and error.
pub const STANDARD_STREAMS: u64 = 3;

/// The socket the systemd notifier opens once, when `NOTIFY_SOCKET` is
/// set, and sends every notification through (see
/// [`crate::ops::systemd`]).
pub const NOTIFY_SOCKET: u64 = 1;

/// The two ends of the socket pair the signal thread reads (signal-hook's
/// self-pipe).
pub const SIGNAL_PIPE: u64 = 2;

/// Spare descriptors kept back at the least: for files the daemon opens
/// now and then (`/proc` for the metrics and the stats line) and to spare.
pub const MIN_SPARE: u64 = 8;

/// Spare descriptors kept back at the most: past this, the room is the
/// clients'.
pub const MAX_SPARE: u64 = 32;

/// Descriptors kept back from clients, under a soft limit of `soft`: the
/// [`STANDARD_STREAMS`], the [`NOTIFY_SOCKET`] and the [`SIGNAL_PIPE`], the
/// metrics endpoint at its most when it is on ([`metrics::MAX_DESCRIPTORS`]:
/// its listener, poll and waker and its bounded connections), and a spare
/// that grows with the limit, a thirty-second of it between [`MIN_SPARE`]
/// and [`MAX_SPARE`]. So a small limit (64, say) still leaves room for
/// clients, and a large one keeps a few dozen. Listening sockets and each
/// event loop's poll and waker are counted on top; sockets still closing
/// have a budget of their own, inside the clients' room (see
/// [`closing_budget`]).
pub fn reserved(soft: u64, metrics: bool) -> u64 {
    let spare = (soft / 32).clamp(MIN_SPARE, MAX_SPARE);
    let metrics = if metrics { metrics::MAX_DESCRIPTORS } else { 0 };
    STANDARD_STREAMS + NOTIFY_SOCKET + SIGNAL_PIPE + metrics + spare
}

/// Descriptors each event loop (the acceptor, every I/O thread) holds: its
/// poll and its waker.
pub const PER_LOOP: u64 = 2;

/// The descriptor limit the daemon runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard limit, the most the soft one may be raised to.
    pub hard: u64,
    /// The soft limit before it was raised, if it was.
    pub raised_from: Option<u64>,
}

impl Limit {
    /// Raises the soft limit to the hard one, if it is lower.
    ///
    /// # Errors
    /// When the limit cannot be read at all. When it can be read but not
    /// raised (a sandbox may forbid `setrlimit`), the limit as it stands is
    /// returned with the reason, for a warning.
    pub fn raise() -> io::Result<(Limit, Option<io::Error>)> {
        let (soft, hard) = rlimit::Resource::NOFILE.get()?;
        if soft >= hard {
            return Ok((
                Limit {
                    soft,
                    hard,
                    raised_from: None,
                },
                None,
            ));
        }
        match rlimit::Resource::NOFILE.set(hard, hard) {
            Ok(()) => Ok((
                Limit {
                    soft: hard,
                    hard,
                    raised_from: Some(soft),
                },
                None,
            )),
            Err(e) => Ok((
                Limit {
                    soft,
                    hard,
                    raised_from: None,
                },
                Some(e),
            )),
        }
    }

    /// How many clients fit under the soft limit next to `listeners`
    /// listening sockets, `io_threads` I/O threads and the acceptor, and
    /// what is [`reserved`] (with the metrics endpoint if `metrics`).
    pub fn client_capacity(&self, listeners: usize, io_threads: usize, metrics: bool) -> usize {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let kept = reserved(self.soft, metrics)
            .saturating_add(count(listeners))
            .saturating_add(PER_LOOP.saturating_mul(count(io_threads).saturating_add(1)));
        usize::try_from(self.soft.saturating_sub(kept)).unwrap_or(usize::MAX)
    }

    /// What the daemon keeps for itself under this limit: what
    /// [`Limit::client_capacity`] takes off.
    pub fn kept(&self, listeners: usize, io_threads: usize, metrics: bool) -> u64 {
        let capacity =
            u64::try_from(self.client_capacity(listeners, io_threads, metrics)).unwrap_or(u64::MAX);
        self.soft.saturating_sub(capacity)
    }
}

/// The descriptor limit leaves no room for a single client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the descriptor limit of {soft} leaves no room for a single client (the daemon keeps {kept} for itself); \
     raise it (LimitNOFILE= in the unit, ulimit -n in a shell)"
)]
pub struct NoRoomError {
    /// The soft descriptor limit.
    pub soft: u64,
    /// What the daemon keeps for itself.
    pub kept: u64,
}

/// `--max-clients` asks for more clients than the descriptor limit allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--max-clients {max_clients} does not fit the descriptor limit of {soft} (room for {}); \
     raise the limit (LimitNOFILE= in the unit, ulimit -n in a shell) or lower --max-clients",
    crate::ops::logging::counted(*.capacity, "client")
)]
pub struct CapacityError {
    /// What was asked for.
    pub max_clients: usize,
    /// The soft descriptor limit.
    pub soft: u64,
    /// How many clients fit.
    pub capacity: usize,
}

/// The share of the room that a default `--max-clients` leaves for
/// sockets still closing (see [`closing_budget`]): one in sixteen.
pub const CLOSING_SHARE: usize = 16;

/// What becomes of `--max-clients` under a limit with room for `capacity`
/// clients: kept when it fits; when it does not and was only the default
/// (`given` false), lowered to what fits with a sixteenth of the room left
/// for sockets still closing.
///
/// # Errors
/// [`CapacityError`] when it was given (on the command line or in the
/// environment) and does not fit.
pub fn fit_max_clients(
    max_clients: usize,
    given: bool,
    limit: &Limit,
    capacity: usize,
) -> Result<usize, CapacityError> {
    if max_clients <= capacity {
        Ok(max_clients)
    } else if given {
        Err(CapacityError {
            max_clients,
            soft: limit.soft,
            capacity,
        })
    } else {
        Ok(capacity - capacity / CLOSING_SHARE)
    }
}

/// How many sockets may still be closing (their client gone from the chat,
/// its last lines being written) next to `max_clients` clients, when
/// `capacity` descriptors are free for both: the rest of the room, and at
/// least one. Past it the oldest closing sockets are closed at once, so
/// that clients who `/quit` and hold their socket cannot run the process
/// out of descriptors.
pub fn closing_budget(capacity: usize, max_clients: usize) -> usize {
    capacity.saturating_sub(max_clients).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Limit = Limit {
        soft: 1024,
        hard: 1024,
        raised_from: None,
    };

    #[test]
    fn capacity_is_the_limit_less_the_reserve_the_listeners_and_the_loops() {
        // Two listeners; two I/O threads and the acceptor, two each; the
        // reserve: 3 + 1 + 2 and a spare of 1024 / 32.
        assert_eq!(LIMIT.client_capacity(2, 2, false), 1024 - (6 + 32) - 2 - 6);
        // The metrics endpoint's share when it is on.
        assert_eq!(
            LIMIT.client_capacity(2, 2, true),
            1024 - (6 + 32) - 2 - 6 - metrics::MAX_DESCRIPTORS as usize
        );
        let tiny = Limit { soft: 10, ..LIMIT };
        assert_eq!(
            tiny.client_capacity(1, 1, false),
            0,
            "no room at all is zero, not an underflow"
        );
        assert_eq!(tiny.kept(1, 1, false), 10);
    }

    #[test]
    fn a_small_limit_keeps_a_small_reserve_and_still_has_room_for_clients() {
        let small = Limit { soft: 64, ..LIMIT };
        // 64 - (3 + 1 + 2 + 8) - 1 listener - 3 loops × 2.
        assert_eq!(small.client_capacity(1, 2, false), 43);
        let large = Limit {
            soft: 1 << 20,
            ..LIMIT
        };
        assert_eq!(reserved(large.soft, false), 6 + MAX_SPARE);
    }

    #[test]
    fn no_room_is_a_clear_error() {
        let error = NoRoomError { soft: 16, kept: 16 };
        assert_eq!(
            error.to_string(),
            "the descriptor limit of 16 leaves no room for a single client (the daemon keeps 16 for itself); \
             raise it (LimitNOFILE= in the unit, ulimit -n in a shell)"
        );
    }

    #[test]
    fn max_clients_that_fits_is_kept() {
        assert_eq!(fit_max_clients(900, true, &LIMIT, 958), Ok(900));
        assert_eq!(fit_max_clients(958, false, &LIMIT, 958), Ok(958));
    }

    #[test]
    fn a_default_that_does_not_fit_is_lowered_leaving_room_for_closing_sockets() {
        assert_eq!(fit_max_clients(10_000, false, &LIMIT, 960), Ok(900));
        assert_eq!(closing_budget(960, 900), 60);
        assert_eq!(closing_budget(960, 960), 1, "never none at all");
    }

    #[test]
    fn a_given_max_clients_that_does_not_fit_is_an_error_that_says_what_to_do() {
        let error = fit_max_clients(10_000, true, &LIMIT, 958).unwrap_err();
        assert_eq!(
            error.to_string(),
            "--max-clients 10000 does not fit the descriptor limit of 1024 (room for 958 clients); \
             raise the limit (LimitNOFILE= in the unit, ulimit -n in a shell) or lower --max-clients"
        );
    }

    #[test]
    fn raising_never_lowers_the_limit() {
        let (before, _) = rlimit::Resource::NOFILE.get().unwrap();
        let (limit, _) = Limit::raise().unwrap();
        assert!(
            limit.soft >= before && limit.soft <= limit.hard,
            "{limit:?} from {before}"
        );
    }
}
