//! The IRC wire format, as far as an IRC front end needs it.
//!
//! - [`message`]: parsing a client's line into command and parameters.
//! - [`write`]: writing a server's messages, and cutting long text into
//!   pieces that each fit an IRC line.
//! - [`format`]: taking IRC's colour and style codes out of text, and
//!   recognising a CTCP ACTION (`/me`).
//! - [`reply`]: the replies an IRC front end makes itself.
//!
//! The meaning (which command asks the chat for what, which event becomes
//! which lines) is the daemon's front end's (`server/src/frontend/irc`);
//! this is only the syntax, with no I/O and no state, so it can be tested
//! and fuzzed alone.

pub mod format;
pub mod message;
pub mod reply;
pub mod write;

pub use message::{Message, MessageError};
pub use reply::IrcReply;
