//! The `chat-server` daemon: parse the command line, bind, run until
//! SIGINT or SIGTERM.

use std::process::ExitCode;

use chat_server::cli::Cli;
use chat_server::Server;
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let server = match Server::bind(cli.into_config()) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let handle = server.handle();
    // With the `termination` feature this catches SIGTERM (systemd's stop)
    // as well as SIGINT (Ctrl-C).
    if let Err(e) = ctrlc::set_handler(move || handle.shutdown()) {
        eprintln!("error: cannot install the signal handler: {e}");
        return ExitCode::FAILURE;
    }
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
