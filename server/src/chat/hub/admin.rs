//! The hub's side of `chat-server ctl`: what server operators ask of the
//! chat state (see [`crate::chat::admin`]).

use chat_protocol::{LeaveReason, ServerEvent};
use crossbeam_channel::Sender;

use super::Hub;
use crate::chat::admin::{AdminAnswer, AdminCommand, RoomRow, UserRow, MAX_ROWS};

impl Hub {
    /// Carries out `command` and sends the answer; a control thread that
    /// has given up waiting has no answer coming.
    pub(super) fn admin(&mut self, command: AdminCommand, answer: &Sender<AdminAnswer>) {
        let reply = match command {
            AdminCommand::Status => AdminAnswer::Status {
                users: self.users.len(),
                registering: self.pending.len(),
                rooms: self.listed.len(),
            },
            AdminCommand::Who(room) => self.admin_who(room.as_ref()),
            AdminCommand::Rooms => {
                let rows: Vec<RoomRow> = self
                    .rooms
                    .values()
                    .filter(|r| !r.is_empty() || r.is_lobby())
                    .take(MAX_ROWS + 1)
                    .map(|r| RoomRow {
                        name: r.name.clone(),
                        members: r.len(),
                        settings: r.settings.clone(),
                        bans: r.bans.len(),
                        history: r.history.len(),
                    })
                    .collect();
                let more = rows.len() > MAX_ROWS;
                AdminAnswer::Rooms(rows.into_iter().take(MAX_ROWS).collect(), more)
            }
            AdminCommand::Kick { nick, reason } => match self.nicks.get(nick.key().as_str()).copied() {
                Some(id) => {
                    log::info!(
                        "server operator: disconnected {nick} ({})",
                        reason.as_deref().unwrap_or("no reason given")
                    );
                    self.send(
                        id,
                        ServerEvent::Removed {
                            reason: reason.clone(),
                        },
                    );
                    self.remove(id, LeaveReason::Removed(reason));
                    self.close(id);
                    AdminAnswer::Done(1)
                }
                None => AdminAnswer::Refused(format!("no such nick: {nick}")),
            },
            AdminCommand::Banned { mask, reason } => {
                let hit: Vec<_> = self
                    .users
                    .iter()
                    .filter(|(_, u)| mask.matches("", "", u.addr.ip()))
                    .map(|(&id, _)| id)
                    .chain(
                        self.pending
                            .iter()
                            .filter(|(_, addr)| mask.matches("", "", addr.ip()))
                            .map(|(&id, _)| id),
                    )
                    .collect();
                let why = Some(reason.unwrap_or_else(|| format!("banned from this server ({mask})")));
                for &id in &hit {
                    self.send(id, ServerEvent::Removed { reason: why.clone() });
                    self.remove(id, LeaveReason::Removed(why.clone()));
                    self.close(id);
                }
                if !hit.is_empty() {
                    log::info!("server operator: banned {mask}, disconnecting {}", hit.len());
                }
                AdminAnswer::Done(hit.len())
            }
            AdminCommand::Announce(text) => {
                log::info!("server operator: announced: {text}");
                let everyone: Vec<_> = self.users.keys().copied().collect();
                let told = everyone.len();
                self.deliver_many(everyone, ServerEvent::Announcement { text });
                AdminAnswer::Done(told)
            }
        };
        let _ = answer.try_send(reply);
    }

    /// Everyone, or a room's members, sorted by nick.
    fn admin_who(&self, room: Option<&chat_protocol::RoomName>) -> AdminAnswer {
        let now = (self.settings.clock)();
        let ids: Vec<_> = match room {
            Some(room) => match self.rooms.get(&room.key()) {
                Some(r) => r.members().take(MAX_ROWS + 1).collect(),
                None => return AdminAnswer::Refused(format!("no such room: {room}")),
            },
            None => self.nicks.values().copied().take(MAX_ROWS + 1).collect(),
        };
        let more = ids.len() > MAX_ROWS;
        let rows = ids
            .into_iter()
            .take(MAX_ROWS)
            .filter_map(|id| self.users.get(&id))
            .map(|u| UserRow {
                nick: u.nick.clone(),
                address: u.addr,
                user: u.user.clone(),
                rooms: u
                    .rooms
                    .iter()
                    .filter_map(|key| self.rooms.get(&**key))
                    .map(|r| r.name.clone())
                    .collect(),
                idle_secs: now.saturating_sub(u.last_said) / 1000,
                away: u.away.is_some(),
            })
            .collect();
        AdminAnswer::Who(rows, more)
    }
}
