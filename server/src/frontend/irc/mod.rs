//! The IRC front end: irssi, WeeChat, HexChat and the rest in the same
//! rooms as everyone else.
//!
//! A connection on an IRC listener registers (CAP, NICK, USER) before it
//! is on the chat, may be in several channels at once (rooms are
//! channels), and speaks RFC 1459 / Modern IRC with the IRCv3 extensions
//! clients use and that cost little: `echo-message`, `multi-prefix`,
//! `server-time` and `userhost-in-names`.
//!
//! - [`session`]: the connection's state (registration, capabilities, its
//!   nick) and what each command asks of the hub.
//! - [`encode`]: the hub's events as IRC messages.
//!
//! What it does not do: channel and user modes (MODE answers what is true:
//! `+n`, no user modes), KICK and operators (they come with moderation),
//! server-to-server links (Redis shares rooms instead), services and SASL.

pub mod encode;
pub mod session;

pub use session::Session;
