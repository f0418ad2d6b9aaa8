//! `chat-client`: a client for chat-server, for terminals and scripts.
//!
//! This file only parses the arguments, runs the session and turns its
//! outcome into an exit code, so that everything with behaviour lives in a
//! module of its own:
//!
//! - [`args`]: the command line, and the defaults and checks on its values.
//! - [`connect`]: resolving the address and connecting with a timeout.
//! - [`tls`]: `--tls`: the trusted roots, the handshake, and what a refused
//!   certificate is called.
//! - [`transport`]: the connection, plain or TLS, split between the main
//!   thread (writing) and the server reader thread.
//! - [`incoming`]: the thread that reads server lines and classifies them.
//! - [`input`]: the thread that reads standard input (or `--send` texts).
//! - [`terminal`]: interactive mode: rustyline, and sharing the terminal
//!   between typing and incoming lines.
//! - [`style`]: colors, timestamps, the prompt.
//! - [`notices`]: recognising the server's confirmations of nick and room.
//! - [`greeting`]: holding input until the server has answered the nick and
//!   room asked for, and telling a refusal.
//! - [`limit`]: the longest line the server takes, and lines it refused.
//! - [`backoff`]: the delays between reconnection attempts.
//! - [`session`]: the main loop that joins it all, reconnecting, shutdown.
//! - [`error`]: what can go wrong, and the exit code for each.

mod backoff;
mod connect;
mod error;
mod greeting;
mod incoming;
mod input;
mod limit;
mod notices;
mod session;
mod style;
mod terminal;
mod tls;
mod transport;

use std::process::ExitCode;

// The command line lives in the library (src/lib.rs), which gen/ reads to
// write the man page and completions.
use chat_client::args;

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
