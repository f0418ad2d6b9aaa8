//! The WebSocket part of an I/O thread (issue 18): what a WebSocket
//! connection does with the bytes its server sends.
//!
//! The [`crate::web::Decoder`] turns them into events; each text message is
//! a line of the line protocol, handled as a line client's line is (the
//! welcome, the join's confirmation, a delivery), so nothing else in the
//! thread needs to know the line came in a frame. A Ping is answered with
//! a Pong at once, in any state, and flushed after the turn as other
//! replies are; a Close frame, or a frame the generator does not
//! understand, ends the connection with the reason, which the run reports.

use super::IoThread;
use crate::web::{self, Event};

impl IoThread {
    /// Feeds `data`, read from WebSocket connection `idx`, to its decoder
    /// `ws` (taken out of the connection meanwhile).
    ///
    /// # Errors
    /// Why the connection must end: the server closed it, refused the
    /// upgrade, or sent a frame the generator does not understand.
    pub(super) fn on_web_bytes(
        &mut self,
        idx: usize,
        ws: &mut web::Decoder,
        data: &[u8],
    ) -> Result<(), String> {
        let mut closed = None;
        let fed = ws.feed(data, |event| match event {
            Event::Upgraded | Event::Pong => {}
            Event::Text(line) => self.on_line(idx, line),
            Event::Ping(payload) => {
                if let Some(conn) = self.conns.get_mut(idx) {
                    web::write_pong(&mut conn.out, payload, web::mask_for(conn.id));
                    self.to_flush.push(idx);
                    self.result.pings_answered += 1;
                }
            }
            Event::Close(status) => closed = Some(status),
        });
        fed.map_err(|e| e.to_string())?;
        match closed {
            Some(Some(status)) => Err(format!("the server closed the WebSocket (status {status})")),
            Some(None) => Err("the server closed the WebSocket".to_string()),
            None => Ok(()),
        }
    }
}
