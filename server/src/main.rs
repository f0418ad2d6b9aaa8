//! The `chat-server` daemon: take any sockets systemd passed, parse the
//! command line, resolve the addresses given, raise the descriptor limit,
//! bind, tell systemd it is ready, run until SIGINT or SIGTERM (SIGHUP
//! reloads the TLS certificate: see `ops::signals`).
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
use chat_server::{Config, Server};

fn main() -> ExitCode {
    // First, before anything opens a descriptor: the passed sockets are
    // descriptors 3, 4, ... and must not be mistaken for anything else.
    let inherited = match systemd::take_listeners() {
        Ok(inherited) => inherited,
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
    let mut config = match cli.into_config(!inherited.is_empty()) {
        Ok(config) => config,
        Err(e) => {
            logging::print_error(&e);
            return ExitCode::FAILURE;
        }
    };
    let fitted = match fit_descriptors(&mut config, max_clients_given, inherited.len()) {
        Ok(fitted) => fitted,
        Err(e) => {
            logging::print_error(&e);
            return ExitCode::FAILURE;
        }
    };
    let listeners = inherited
        .into_iter()
        .map(|socket| {
            let kind = systemd::listener_kind(&socket.name);
            (socket.listener, kind)
        })
        .collect();
    let server = match Server::bind_with(listeners, config) {
        Ok(server) => server,
        Err(e) => {
            logging::print_error(&e);
            return ExitCode::FAILURE;
        }
    };
    if let Some(fitted) = fitted {
        fitted.log();
    }
    let mut notifier = Notifier::from_env();
    let signals = SignalThread::start(Actions {
        shutdown: server.handle(),
        stopping: notifier.stopping_notice(),
        reloading: notifier.reload_notice(),
        tls: server.tls_reloader(),
    });
    let signals = match signals {
        Ok(signals) => signals,
        Err(e) => {
            logging::print_error(&format_args!("cannot install the signal handlers: {e}"));
            return ExitCode::FAILURE;
        }
    };
    notifier.ready(&server);
    let result = server.run();
    signals.stop();
    notifier.stop();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            logging::print_error(&e);
            ExitCode::FAILURE
        }
    }
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
