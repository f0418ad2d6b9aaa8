//! The `chat-attack` command: parse the command line, run the attack (or
//! all of them), print each summary and JSON line; a failure is one
//! `error:` line and exit status 1. The attacks live in
//! `chat_bench::attack`.

use std::process::ExitCode;

use chat_bench::attack::{self, cli::Cli};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match attack::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
