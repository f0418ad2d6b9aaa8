//! The IRC part of an I/O thread (issue 16): what an IRC connection does
//! with each line its server sends, from registration to the run's
//! deliveries.
//!
//! The line protocol's handshake is a welcome line and one confirmation;
//! IRC's is a few steps, each ended by a reply ([`crate::irc::Reply`]):
//! registered (376 or 422) → joined (366), with `OPER` and `MODE +F`
//! pipelined before the `JOIN` for a sender when the run asks for it.
//! Requests are queued and flushed after the turn, as the line protocol's
//! are. A `PING` is answered in every state, so a long setup or run is
//! never closed for a missed `PONG`; an error reply during the handshake
//! ends the connection with the server's words, and one during the run
//! (a `PRIVMSG` refused) is kept as the run's first error, since the lines
//! it cost show up as lost.

use super::IoThread;
use crate::client::State;
use crate::engine::Handshake;
use crate::irc::{self, Reply};

impl IoThread {
    /// Handles `line` from IRC connection `idx`.
    pub(super) fn on_irc_line(&mut self, idx: usize, line: &[u8]) {
        let reply = irc::parse(line);
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        match (conn.state, reply) {
            (State::Connecting | State::Dead | State::Closing, _) => {}
            (_, Reply::Ping(params)) => {
                irc::pong(&mut conn.out, params);
                self.to_flush.push(idx);
                self.result.pings_answered += 1;
            }
            (State::AwaitWelcome, Reply::Registered) => {
                let Handshake::Join(room) = &self.handshake else {
                    self.mark_ready(idx);
                    return;
                };
                let nick = irc::nick(conn.id);
                if let Some(oper) = self.config.oper_for(conn.id) {
                    irc::oper(&mut conn.out, &oper.name, &oper.password, &nick);
                }
                irc::join(&mut conn.out, room);
                conn.state = State::AwaitJoined;
                self.to_flush.push(idx);
            }
            (State::AwaitJoined, Reply::Joined) => self.mark_ready(idx),
            (State::Joining, Reply::Joined) => {
                conn.state = State::Ready;
                self.joining = self.joining.saturating_sub(1);
            }
            (State::AwaitWelcome | State::AwaitJoined | State::Joining, Reply::Refused(why)) => {
                let why = format!("the IRC server refused: {}", String::from_utf8_lossy(why));
                self.kill(idx, &why);
            }
            (State::Ready, Reply::Message(text)) => self.on_ready_line(idx, text),
            (State::Ready, Reply::Refused(why)) => {
                self.result.other_lines += 1;
                let why = format!("the IRC server refused: {}", String::from_utf8_lossy(why));
                self.note_error(&why);
            }
            (State::Ready, _) => self.result.other_lines += 1,
            (State::AwaitWelcome | State::AwaitJoined | State::Joining, _) => {}
        }
    }
}
