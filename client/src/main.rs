//! `chat-client`: a line-based client for chat-server, for terminals and
//! scripts.
//!
//! This file only parses the arguments, runs the session and turns its
//! outcome into an exit code, so that everything with behaviour lives in a
//! module of its own:
//!
//! - [`args`]: the command line, and the defaults and checks on its values.
//! - [`connect`]: resolving the address and connecting with a timeout.
//! - [`incoming`]: the thread that reads server lines and classifies them.
//! - [`input`]: the thread that reads standard input.
//! - [`session`]: the main loop that joins the two, and the shutdown.
//! - [`error`]: what can go wrong, and the exit code for each.

mod args;
mod connect;
mod error;
mod incoming;
mod input;
mod session;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A usage error exits here with clap's message and exit code 2.
    let args = args::Args::parse();
    match session::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error::report(&err);
            ExitCode::from(err.exit_code())
        }
    }
}
