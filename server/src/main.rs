//! The `chat-server` daemon: take any sockets systemd passed, parse the
//! command line, resolve the addresses given, take over what a previous
//! process handed on (systemd's descriptor store, or `--take-over`; see
//! `chat_server::upgrade`), raise the descriptor limit, bind, tell
//! systemd it is ready, run until SIGINT or SIGTERM (SIGHUP reloads the
//! TLS certificate: see `ops::signals`), or until a handover, whose
//! sockets and state it passes on.
//!
//! Exit codes (`cli::EXIT_STATUS` says them to users): 0 after a clean
//! stop, 1 when the server cannot start or a thread died, 2 for a usage
//! error (clap's).

use std::process::ExitCode;

use chat_server::cli::{Cli, Subcommand};
use chat_server::ops::descriptors::{self, Limit};
use chat_server::ops::logging::{self, counted};
use chat_server::ops::signals::{Actions, SignalThread};
use chat_server::ops::systemd::{self, Notifier};
use chat_server::upgrade::{self, RunEnd};
use chat_server::{Config, Server};

fn main() -> ExitCode {
    // First, before anything opens a descriptor: the passed sockets are
    // descriptors 3, 4, ... and must not be mistaken for anything else.
    let (inherited, stored) = match systemd::take_passed() {
        Ok(passed) => passed,
        Err(e) => {
            logging::print_error(&e);
            return ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse_args();
    if let Some(Subcommand::Ctl(ctl)) = &cli.command {
        return ExitCode::from(chat_server::ops::control::ctl::run(ctl));
    }
    logging::init();
    for socket in &inherited {
        let addr = socket
            .listener
            .local_addr()
            .map_or_else(|e| format!("(unknown address: {e})"), |a| a.to_string());
        log::info!(
            "socket activation: serving {addr}, passed as {:?} (fd {})",
            socket.name,
            socket.fd
        );
    }
    let max_clients_given = cli.max_clients_given;
    let take_over = cli.take_over.clone();
    // Sockets come from elsewhere: no default address is added.
    let passed_sockets = !inherited.is_empty() || !stored.is_empty() || take_over.is_some();
    let mut config = match cli.into_config(passed_sockets) {
        Ok(config) => config,
        Err(e) => {
            logging::print_error(&e);
            return ExitCode::FAILURE;
        }
    };
    // A restart: what the previous process handed over, through systemd's
    // store or, asked for now, over its control socket.
    let from_store = !stored.is_empty();
    let (link, handed) = match &take_over {
        Some(path) => match upgrade::take_over(path) {
            Ok((link, fds)) => (Some(link), fds),
            Err(e) => {
                logging::print_error(&e);
                return ExitCode::FAILURE;
            }
        },
        None => (None, stored),
    };
    let inherited_kinds: Vec<_> = inherited
        .iter()
        .filter_map(|s| Some((s.listener.local_addr().ok()?, systemd::listener_kind(&s.name))))
        .collect();
    let incoming = upgrade::incoming::incoming(handed, &inherited_kinds);
    if let Some(version) = &incoming.from_version {
        log::info!("restart: taking over from version {version}");
    }
    let passed_count = inherited.len() + incoming.listeners.len();
    let fitted = match fit_descriptors(&mut config, max_clients_given, passed_count) {
        Ok(fitted) => fitted,
        Err(e) => {
            logging::print_error(&e);
            return ExitCode::FAILURE;
        }
    };
    let mut listeners: Vec<_> = inherited
        .into_iter()
        .map(|socket| {
            let kind = systemd::listener_kind(&socket.name);
            (socket.listener, kind)
        })
        .collect();
    listeners.extend(incoming.listeners);
    upgrade::drop_served_addresses(&mut config, &listeners);
    let mut server = match Server::bind_with(listeners, config.clone()) {
        Ok(server) => server,
        Err(e) => {
            logging::print_error(&e);
            return ExitCode::FAILURE;
        }
    };
    if let Some(restored) = incoming.restored {
        server.restore(restored);
    }
    if from_store {
        if let Err(e) = upgrade::fds::forget_in_store(&incoming.names) {
            log::warn!("restart: cannot empty the service manager's descriptor store: {e}");
        }
    }
    if let Some(link) = &link {
        if let Err(e) = upgrade::say_ready(link) {
            // It gave up on us and serves its clients again.
            logging::print_error(&format_args!("the running server did not wait for this one: {e}"));
            return ExitCode::FAILURE;
        }
    }
    drop(link);
    upgrade::fallback::close_all(incoming.orphans);
    if let Some(fitted) = fitted {
        fitted.log();
    }
    let mut notifier = Notifier::from_env();
    let mut stop_at_once = false;
    // Runs until stopped; a handover that cannot be passed on leaves the
    // clients with this process, which serves them again (and stops at
    // once if the handover was its stop).
    loop {
        let signals = SignalThread::start(Actions {
            shutdown: server.handle(),
            stopping: notifier.stopping_notice(),
            reloading: notifier.reload_notice(),
            tls: server.tls_reloader(),
            hand_over_on_term: upgrade::store_available(),
        });
        let signals = match signals {
            Ok(signals) => signals,
            Err(e) => {
                logging::print_error(&format_args!("cannot install the signal handlers: {e}"));
                return ExitCode::FAILURE;
            }
        };
        notifier.ready(&server);
        if stop_at_once {
            server.handle().shutdown();
        }
        let result = server.run_to_end();
        signals.stop();
        let handed = match result {
            Ok(RunEnd::Stopped) => break,
            Ok(RunEnd::HandedOver(handed)) => handed,
            Err(e) => {
                notifier.stop();
                logging::print_error(&e);
                return ExitCode::FAILURE;
            }
        };
        let by_hand = handed.requester.is_some();
        let (error, handed) = match upgrade::pass_on(*handed) {
            Ok(()) => return ExitCode::SUCCESS,
            Err(failed) => failed,
        };
        log::error!("restart: {error}; serving every client again here");
        // A stop for systemd that cannot keep the clients is a plain stop.
        stop_at_once = !by_hand;
        let (listeners, restored) = handed.take_back();
        let mut config = config.clone();
        upgrade::drop_served_addresses(&mut config, &listeners);
        server = match Server::bind_with(listeners, config) {
            Ok(server) => server,
            Err(e) => {
                logging::print_error(&e);
                return ExitCode::FAILURE;
            }
        };
        server.restore(restored);
        notifier.stop();
        notifier = Notifier::from_env();
    }
    notifier.stop();
    ExitCode::SUCCESS
}

/// What [`fit_descriptors`] found, to log once the daemon has bound its
/// addresses (so that a failure to bind stays the only line printed).
struct Fitted {
    limit: Limit,
    capacity: usize,
    /// Why the limit could not be raised, if it could not.
    not_raised: Option<std::io::Error>,
    /// The default `--max-clients`, when it was lowered to fit.
    lowered_from: Option<usize>,
    /// The `--max-clients` in force.
    max_clients: usize,
}

/// Raises the descriptor limit and fits `--max-clients` to the room it
/// leaves (see [`descriptors`]). None when the limit cannot even be read.
fn fit_descriptors(
    config: &mut Config,
    max_clients_given: bool,
    inherited: usize,
) -> Result<Option<Fitted>, Box<dyn std::error::Error>> {
    let (limit, not_raised) = match Limit::raise() {
        Ok(raised) => raised,
        Err(e) => {
            log::warn!("cannot read the descriptor limit: {e}; not checking --max-clients against it");
            return Ok(None);
        }
    };
    let listeners = config.listener_count() + inherited;
    let metrics = config.metrics_listen.is_some();
    let capacity = limit.client_capacity(listeners, config.io_threads(), metrics);
    if capacity == 0 {
        return Err(Box::new(descriptors::NoRoomError {
            soft: limit.soft,
            kept: limit.kept(listeners, config.io_threads(), metrics),
        }));
    }
    let max_clients = descriptors::fit_max_clients(config.max_clients, max_clients_given, &limit, capacity)?;
    let lowered_from = (max_clients < config.max_clients).then_some(config.max_clients);
    config.max_clients = max_clients;
    config.max_closing = descriptors::closing_budget(capacity, max_clients);
    Ok(Some(Fitted {
        limit,
        capacity,
        not_raised,
        lowered_from,
        max_clients,
    }))
}

impl Fitted {
    fn log(&self) {
        let limit = &self.limit;
        if let Some(e) = &self.not_raised {
            log::warn!(
                "cannot raise the descriptor limit from {} to {}: {e}",
                limit.soft,
                limit.hard
            );
        }
        let raised = limit
            .raised_from
            .map_or_else(String::new, |from| format!(" (raised from {from})"));
        log::info!(
            "descriptor limit {}{raised}: room for {}",
            limit.soft,
            counted(self.capacity, "client")
        );
        if let Some(default) = self.lowered_from {
            log::warn!(
                "serving at most {}, not the default {default}: the descriptor limit allows no more \
                 (room for {}, a sixteenth of it kept for sockets still closing)",
                counted(self.max_clients, "client"),
                self.capacity
            );
        }
    }
}
