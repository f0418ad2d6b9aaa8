//! The `chat-bench` command: parse the command line, run one scenario,
//! print its summary and JSON line; any failure is one `error:` line and
//! exit status 1.

use std::process::ExitCode;

use chat_bench::args::Cli;
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match chat_bench::scenario::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
