//! Replies the IRC front end makes itself, passed through the hub.
//!
//! Some answers need nothing from the chat state: PONG, the CAP
//! negotiation, an unknown command's 421, a missing parameter's 461. The
//! front end still sends them through the hub, which hands them straight
//! back ([`crate::ServerEvent::Irc`]), so that they keep their place among
//! the hub's own answers: clients (and the conformance suite) send a PING
//! after their commands and take its PONG to mean every answer before it
//! has come. The hub never looks inside one.

/// One reply of the IRC front end's own, rendered when it is written, with
/// the recipient's nick as it is then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IrcReply {
    /// `:server PONG server :token`.
    Pong(String),
    /// A numeric to the recipient: `:server CODE nick params... :text`.
    Numeric {
        /// The three digits.
        code: &'static str,
        /// The parameters after the recipient's nick.
        params: Vec<String>,
        /// The human-readable text, last.
        text: String,
    },
    /// `:server CAP nick SUBCOMMAND [*] :caps`; `more` marks all but the
    /// last line of a long `CAP LS 302` answer.
    Cap {
        /// `LS`, `LIST`, `ACK` or `NAK`.
        subcommand: &'static str,
        /// The capabilities, space-separated.
        caps: String,
        /// More lines follow (`CAP LS 302` only).
        more: bool,
    },
    /// `FAIL COMMAND CODE :text` (IRCv3 standard replies).
    Fail {
        /// The command that failed.
        command: String,
        /// The machine-readable code, such as `INVALID_UTF8`.
        code: &'static str,
        /// What went wrong.
        text: String,
    },
    /// The message of the day: 375, 372 lines, 376, or 422 without one.
    Motd,
}
