//! The parts of `chat-client` that other crates need: only its command
//! line, so that the man page and shell completions (`gen/`) are generated
//! from the very definition the binary parses with. Everything else stays
//! private to the binary.

pub mod args;
