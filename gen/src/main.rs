//! `chat-gen [DIR]`: writes the man pages and shell completions under DIR
//! (`man/`, `completions/`; by default the workspace root, to be
//! committed). Run it after changing an option: `cargo run -p chat-gen`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let root = args.next().map_or_else(chat_gen::workspace_root, PathBuf::from);
    if args.next().is_some() {
        eprintln!("usage: chat-gen [DIR]");
        return ExitCode::from(2);
    }
    match chat_gen::write_to(&root) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("chat-gen: cannot write under {}: {err}", root.display());
            ExitCode::FAILURE
        }
    }
}
