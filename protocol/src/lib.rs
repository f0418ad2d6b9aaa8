//! The wire protocol of chat-server, with no I/O at all.
//!
//! Everything that turns bytes into meaning, or meaning into bytes, lives
//! here so that the daemon, the client, the tests and any later front end
//! (IRC, TLS) share one definition of it:
//!
//! - [`decoder`]: an incremental line decoder. Bytes may arrive split
//!   anywhere; it yields complete UTF-8 lines, enforcing a length limit
//!   while it scans so memory never grows past it.
//! - [`names`]: the rules for nicks and room names, and the skeleton under
//!   which look-alike nicks are equal.
//! - [`text`]: what of chat text may reach a terminal (controls, invisible
//!   and bidirectional characters replaced; joiners, selectors and marks
//!   kept only in their place), and which lines show nothing.
//! - [`command`]: parsing a client line into a [`Command`].
//! - [`event`]: what the chat state owner says to a user ([`ServerEvent`]),
//!   independent of any wire format.
//! - [`history`]: the lines a room remembers and the times they carry.
//! - [`line`]: the line-based wire format of server output ([`ServerLine`]),
//!   its encoder and its parser.
//! - [`moderation`]: ban masks, durations, room settings and roles, what
//!   room operators work with.
//! - [`irc`]: the IRC wire format: parsing client messages, writing server
//!   messages, formatting codes.
//!
//! `PROTOCOL.md` at the top of the repository describes the same contract
//! for people.

pub mod command;
pub mod decoder;
pub mod event;
pub mod history;
pub mod irc;
pub mod line;
pub mod moderation;
pub mod names;
pub mod text;

pub use command::{Command, CommandError};
pub use decoder::{DecodeError, LineDecoder, Lines, DEFAULT_MAX_LINE};
pub use event::{ErrorKind, LeaveReason, Page, RoomListing, ServerEvent, Style, Topic, UserInfo, WhoEntry};
pub use history::HistoryEntry;
pub use line::{ParseLineError, ServerLine};
pub use moderation::{Mask, Member, Role, RoomSetting, RoomSettings};
pub use names::{NameError, Nick, RoomName};
