//! Front ends: the wire formats between a client's bytes and the hub.
//!
//! Each front end turns what a client sends into commands for the hub and
//! what the hub says into bytes for the client. Today there is one, the
//! [`line`] protocol that `nc` and `chat-client` speak.
//!
//! What a front end must never do: touch the chat state (it asks the hub),
//! know another front end, or do socket I/O (the event loop does that).

pub mod line;
