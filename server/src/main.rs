//! The `chat-server` daemon: take any sockets systemd passed, parse the
//! command line, bind, tell systemd it is ready, run until SIGINT or
//! SIGTERM.

use std::process::ExitCode;

use chat_server::cli::Cli;
use chat_server::systemd::{self, Notifier};
use chat_server::{logging, Server};
use clap::Parser;

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
    let cli = Cli::parse();
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
    let config = cli.into_config(!inherited.is_empty());
    let listeners = inherited.into_iter().map(|socket| socket.listener).collect();
    let server = match Server::bind_with(listeners, config) {
        Ok(server) => server,
        Err(e) => {
            logging::print_error(&e);
            return ExitCode::FAILURE;
        }
    };
    let mut notifier = Notifier::from_env();
    let stopping = notifier.stopping_notice();
    let handle = server.handle();
    // With the `termination` feature this catches SIGTERM (systemd's stop)
    // as well as SIGINT (Ctrl-C). systemd hears STOPPING=1 first.
    if let Err(e) = ctrlc::set_handler(move || {
        stopping.send();
        handle.shutdown();
    }) {
        logging::print_error(&format_args!("cannot install the signal handler: {e}"));
        return ExitCode::FAILURE;
    }
    notifier.ready(&server);
    let result = server.run();
    notifier.stop();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            logging::print_error(&e);
            ExitCode::FAILURE
        }
    }
}
