//! The hub's state as a restart hands it to the next process: exported
//! once every I/O thread has stopped reading ([`Hub::export`]), and read
//! back by the next process before it serves anyone ([`Hub::restore`]).
//!
//! What is kept: every user (nick, user and real name, away message,
//! `+i`, when they came and last spoke) and the rooms they are in, in the
//! order joined; IRC clients not registered yet; every room (members,
//! operators and voiced members, topic, settings, bans, history, when it
//! was last used); the guest counter and the use counter. What is made
//! again rather than kept: the tables derived from these (nicks by key,
//! skeletons, the rooms `/rooms` lists, the history budget's accounts),
//! so they cannot disagree with what they are derived from.
//!
//! Connections are named by their old [`ConnId`]s in the export; the next
//! process gives each carried connection a new one and maps them on
//! restore. A user whose connection did not come across (it could not be
//! carried, or its socket was lost) is left out, and so is their
//! membership: never a user without a connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use chat_protocol::moderation::BanInfo;
use chat_protocol::{HistoryEntry, LeaveReason, Nick, RoomName, RoomSettings, ServerEvent, Topic};
use serde::{Deserialize, Serialize};

use super::{Hub, Settings, User};
use crate::chat::messages::ConnId;
use crate::chat::room::Room;

/// The hub's state, as handed over.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HubState {
    /// Users on the chat.
    pub users: Vec<UserState>,
    /// Connections on the server but not on the chat yet (IRC clients
    /// before they register), with their addresses.
    pub pending: Vec<(ConnId, SocketAddr)>,
    /// Every room: with members, the lobby, and empty rooms that keep
    /// history.
    pub rooms: Vec<RoomState>,
    /// The hub's use counter (see [`Room::used_at`]).
    pub uses: u64,
    /// The next guest number to try.
    pub next_guest: u64,
}

/// One user, as handed over.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserState {
    /// Their connection, as the old process named it.
    pub id: ConnId,
    /// Their nick.
    pub nick: Nick,
    /// The keys of the rooms they are in, in the order joined.
    pub rooms: Vec<String>,
    /// Their address.
    pub addr: SocketAddr,
    /// Their user name.
    pub user: String,
    /// Their real name.
    pub realname: String,
    /// Their away message, while away.
    pub away: Option<String>,
    /// IRC's `+i`.
    pub invisible: bool,
    /// When they came, in milliseconds since the Unix epoch.
    pub signon: u64,
    /// When they last said something.
    pub last_said: u64,
}

/// One room, as handed over.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoomState {
    /// Its name, with its case.
    pub name: RoomName,
    /// Its members, by their old connection ids.
    pub members: Vec<ConnId>,
    /// Those of them who are its operators.
    pub ops: Vec<ConnId>,
    /// Those of them who have voice.
    pub voiced: Vec<ConnId>,
    /// Its settings.
    pub settings: RoomSettings,
    /// Its bans.
    pub bans: Vec<BanInfo>,
    /// Its topic.
    pub topic: Option<Topic>,
    /// The lines it remembers, oldest first.
    pub history: Vec<HistoryEntry>,
    /// When it was last used, as the use counter counts.
    pub used_at: u64,
}

impl Hub {
    /// The chat state, to hand to the next process.
    pub fn export(&self) -> HubState {
        let mut users: Vec<UserState> = self
            .users
            .iter()
            .map(|(&id, user)| UserState {
                id,
                nick: user.nick.clone(),
                rooms: user.rooms.iter().map(|key| key.to_string()).collect(),
                addr: user.addr,
                user: user.user.clone(),
                realname: user.realname.clone(),
                away: user.away.clone(),
                invisible: user.invisible,
                signon: user.signon,
                last_said: user.last_said,
            })
            .collect();
        users.sort_by_key(|u| u.id);
        let mut pending: Vec<(ConnId, SocketAddr)> =
            self.pending.iter().map(|(&id, &addr)| (id, addr)).collect();
        pending.sort();
        let rooms = self
            .rooms
            .values()
            .map(|room| {
                let members: Vec<ConnId> = room.members().collect();
                RoomState {
                    name: room.name.clone(),
                    ops: members.iter().copied().filter(|&id| room.is_op(id)).collect(),
                    voiced: members.iter().copied().filter(|&id| room.is_voiced(id)).collect(),
                    members,
                    settings: room.settings.clone(),
                    bans: room.bans.clone(),
                    topic: room.topic.clone(),
                    history: room
                        .history
                        .last(usize::MAX)
                        .iter()
                        .map(|entry| HistoryEntry::clone(entry))
                        .collect(),
                    used_at: room.used_at,
                }
            })
            .collect();
        HubState {
            users,
            pending,
            rooms,
            uses: self.uses,
            next_guest: self.next_guest,
        }
    }

    /// A hub with `state` in it, its connections renamed by `ids` (old id
    /// to new); whoever is not in `ids` is left out. With a `version`, each
    /// user and each client still registering is told `-- server restarted
    /// (version `version`); you are still connected`. The settings are the new
    /// process's: history beyond its `--history` or `--history-bytes` is
    /// dropped, oldest first.
    pub fn restore(
        settings: Settings,
        state: HubState,
        ids: &HashMap<ConnId, ConnId>,
        version: Option<&str>,
    ) -> Hub {
        let mut hub = Hub::new(settings);
        hub.uses = state.uses;
        hub.next_guest = state.next_guest;
        let mut left_out = 0usize;
        // Users whose connection did not come across, and their rooms:
        // those rooms hear them leave.
        let mut gone: Vec<(Nick, Vec<String>)> = Vec::new();
        for user in state.users {
            let Some(&id) = ids.get(&user.id) else {
                left_out += 1;
                gone.push((user.nick, user.rooms));
                continue;
            };
            let nick_key: Arc<str> = user.nick.key().into();
            if hub.nicks.contains_key(&nick_key) {
                // Two users with one nick: not a state the old hub made.
                left_out += 1;
                continue;
            }
            hub.nicks.insert(Arc::clone(&nick_key), id);
            let skeleton = hub.skeleton(&user.nick);
            hub.skeletons.insert(skeleton, id);
            hub.users.insert(
                id,
                User {
                    nick: user.nick,
                    nick_key,
                    rooms: user.rooms.iter().map(|key| Arc::from(key.as_str())).collect(),
                    addr: user.addr,
                    user: user.user,
                    realname: user.realname,
                    away: user.away,
                    invisible: user.invisible,
                    signon: user.signon,
                    last_said: user.last_said,
                },
            );
        }
        for (old, addr) in state.pending {
            match ids.get(&old) {
                Some(&id) => {
                    hub.pending.insert(id, addr);
                }
                None => left_out += 1,
            }
        }
        if left_out > 0 {
            log::warn!("restart: {left_out} users or connections of the old state had no connection and were left out");
        }
        for saved in state.rooms {
            hub.restore_room(saved, ids);
        }
        // Every room a user lists must list them, and the other way round.
        let rooms = &hub.rooms;
        for (&id, user) in hub.users.iter_mut() {
            user.rooms
                .retain(|key| rooms.get(&**key).is_some_and(|room| room.has(&user.nick_key, id)));
        }
        let lobby = RoomName::lobby().key();
        let keys: Vec<String> = hub.rooms.keys().cloned().collect();
        for key in keys {
            hub.keep_history_within_budget(&key);
        }
        hub.listed = hub
            .rooms
            .iter()
            .filter(|(key, room)| !room.is_empty() || **key == lobby)
            .map(|(key, _)| key.clone())
            .collect();
        if let Some(version) = version {
            let everyone: Vec<ConnId> = hub.users.keys().chain(hub.pending.keys()).copied().collect();
            hub.deliver_many(
                everyone,
                ServerEvent::Restarted {
                    version: version.to_string(),
                },
            );
        }
        for (nick, rooms) in gone {
            for key in rooms {
                let Some(room) = hub.rooms.get(&key) else { continue };
                let event = ServerEvent::Left {
                    nick: nick.clone(),
                    room: room.name.clone(),
                    reason: LeaveReason::Disconnected,
                };
                hub.publish_local(&key, None, event);
            }
        }
        hub
    }

    /// Puts one handed-over room back, with the members that came across.
    fn restore_room(&mut self, saved: RoomState, ids: &HashMap<ConnId, ConnId>) {
        let mut room = Room::new(saved.name);
        let key = room.key.to_string();
        for old in &saved.members {
            let Some(&id) = ids.get(old) else { continue };
            let Some(user) = self.users.get(&id) else { continue };
            room.add(id, Arc::clone(&user.nick_key));
            // `add` makes the first member of a room its operator: the
            // roles are set from the state below instead.
            room.set_role(id, chat_protocol::Role::Op, false);
        }
        for (list, role) in [
            (&saved.ops, chat_protocol::Role::Op),
            (&saved.voiced, chat_protocol::Role::Voice),
        ] {
            for old in list {
                if let Some(&id) = ids.get(old) {
                    if room.has_member(id) {
                        room.set_role(id, role, true);
                    }
                }
            }
        }
        room.settings = saved.settings;
        room.bans = saved.bans;
        room.topic = saved.topic;
        room.used_at = saved.used_at;
        for entry in saved.history {
            self.budget.record(&mut room.history, entry);
        }
        let empty_with_history = room.is_empty() && !room.history.is_empty() && !room.is_lobby();
        if room.is_empty() && room.history.is_empty() && !room.is_lobby() {
            return;
        }
        if empty_with_history {
            self.budget.room_emptied(&key, room.used_at, &room.history);
        }
        self.rooms.insert(key, room);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::messages::{Inbound, Outbound, Recipients};
    use crate::chat::request::Request;
    use std::time::Instant;

    fn id(n: usize) -> ConnId {
        ConnId {
            shard: 0,
            slot: n,
            serial: n as u64,
        }
    }

    fn line(hub: &mut Hub, n: usize, request: Request) {
        hub.handle(Inbound::Line {
            id: id(n),
            line: Ok(request),
            received: Instant::now(),
        });
    }

    fn join(name: &str) -> Request {
        Request::Join {
            room: RoomName::new(name).unwrap(),
            leave_others: true,
            names: false,
            key: None,
        }
    }

    fn say(text: &str) -> Request {
        Request::Say {
            room: crate::chat::request::Target::Current,
            text: text.to_string(),
            style: chat_protocol::Style::Message,
            echo: false,
        }
    }

    /// A hub where guest1 and guest2 are in #rust (guest1 its operator,
    /// with a topic and two lines said) and guest3 stayed in the lobby.
    fn busy_hub() -> Hub {
        let mut hub = Hub::default();
        for n in 1..=3 {
            hub.handle(Inbound::Connected {
                id: id(n),
                addr: "127.0.0.1:5000".parse().unwrap(),
                arrival: crate::chat::messages::Arrival::Guest,
            });
        }
        line(&mut hub, 1, join("#rust"));
        line(&mut hub, 2, join("#rust"));
        line(&mut hub, 1, say("hello"));
        line(&mut hub, 2, say("hi there"));
        line(
            &mut hub,
            1,
            Request::Topic {
                room: crate::chat::request::Target::Current,
                set: Some("borrowck".to_string()),
            },
        );
        hub.take_outbox();
        hub
    }

    #[test]
    fn a_restored_hub_exports_what_it_was_given_under_the_new_ids() {
        let hub = busy_hub();
        let state = hub.export();
        let ids: HashMap<ConnId, ConnId> = (1..=3).map(|n| (id(n), id(n + 10))).collect();
        let mut restored = Hub::restore(Settings::default(), state.clone(), &ids, Some("9.9"));
        let again = restored.export();
        let renamed = |old: ConnId| ids[&old];
        let mut expected = state;
        for user in &mut expected.users {
            user.id = renamed(user.id);
        }
        for room in &mut expected.rooms {
            room.members = room.members.iter().copied().map(renamed).collect();
            room.ops = room.ops.iter().copied().map(renamed).collect();
            room.voiced = room.voiced.iter().copied().map(renamed).collect();
        }
        assert_eq!(again, expected);
        // Everyone is told, once.
        let told: Vec<ConnId> = restored
            .take_outbox()
            .into_iter()
            .flat_map(|(_, message)| match message {
                Outbound::Deliver {
                    to: Recipients::Many(ids),
                    event,
                    ..
                } if matches!(&*event, ServerEvent::Restarted { version } if version == "9.9") => ids,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        let mut told = told;
        told.sort();
        assert_eq!(told, vec![id(11), id(12), id(13)]);
    }

    #[test]
    fn a_user_whose_connection_did_not_come_across_is_left_out_and_their_rooms_hear_them_leave() {
        let hub = busy_hub();
        let state = hub.export();
        let ids: HashMap<ConnId, ConnId> = [(id(1), id(1)), (id(3), id(3))].into();
        let mut restored = Hub::restore(Settings::default(), state, &ids, None);
        // Those left in guest2's room hear them leave; no one else hears
        // anything (no notice without a version).
        let told: Vec<(Vec<ConnId>, ServerEvent)> = restored
            .take_outbox()
            .into_iter()
            .map(|(_, message)| match message {
                Outbound::Deliver {
                    to:
                        Recipients::Members {
                            members,
                            except: None,
                        },
                    event,
                    ..
                } => (members.to_vec(), (*event).clone()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            told,
            vec![(
                vec![id(1)],
                ServerEvent::Left {
                    nick: Nick::new("guest2").unwrap(),
                    room: RoomName::new("#rust").unwrap(),
                    reason: LeaveReason::Disconnected,
                }
            )]
        );
        let again = restored.export();
        assert_eq!(again.users.len(), 2);
        let rust = again
            .rooms
            .iter()
            .find(|room| room.name.as_str() == "#rust")
            .unwrap();
        assert_eq!(rust.members, vec![id(1)]);
        assert_eq!(rust.ops, vec![id(1)]);
        assert_eq!(rust.history.len(), 2, "history is kept");
        assert_eq!(rust.topic.as_ref().unwrap().text, "borrowck");
    }

    #[test]
    fn a_smaller_history_setting_applies_to_the_restored_rooms() {
        let hub = busy_hub();
        let state = hub.export();
        let ids: HashMap<ConnId, ConnId> = (1..=3).map(|n| (id(n), id(n))).collect();
        let settings = Settings {
            history_lines: 1,
            ..Settings::default()
        };
        let restored = Hub::restore(settings, state, &ids, Some("1"));
        let rust = restored
            .export()
            .rooms
            .into_iter()
            .find(|room| room.name.as_str() == "#rust")
            .unwrap();
        let texts: Vec<String> = rust.history.into_iter().map(|e| e.text).collect();
        assert_eq!(texts, ["hi there"]);
    }
}
