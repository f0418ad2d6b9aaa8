//! The users of a multi-instance test and the rooms they are in, so that
//! every notice a step makes is read and checked by everyone who must hear
//! it (the cluster tests: `tests/tests/cluster.rs`,
//! `tests/tests/cluster_moderation.rs`).

use std::net::SocketAddr;

use crate::Client;

/// The users of a test, each connected to some instance, with the room
/// each is in, so that a step that makes notices (someone arrives,
/// renames, moves) has every user who must hear of it read and check the
/// notice: every line a user reads is asserted, and none is left unread
/// for the next step to trip over.
#[derive(Default)]
pub struct People {
    /// Each user and its room.
    members: Vec<(Client, String)>,
}

impl People {
    /// Connects a user to `addr`, names it `nick`, and has everyone in the
    /// lobby, on any instance, read its arrival and its rename. Returns
    /// its index.
    #[track_caller]
    pub fn arrive(&mut self, addr: SocketAddr, nick: &str) -> usize {
        let mut client = Client::connect_guest(addr);
        let guest = client.nick().to_string();
        self.hear_in("#lobby", &format!("-- {guest} joined #lobby"));
        client.rename(nick);
        self.hear_in("#lobby", &format!("-- {guest} is now known as {nick}"));
        self.members.push((client, "#lobby".to_string()));
        self.members.len() - 1
    }

    /// User `who` joins `room` (`#name`); its old room hears it leave and
    /// the new one hear it come.
    #[track_caller]
    pub fn join(&mut self, who: usize, room: &str) {
        self.join_with(who, room, "");
    }

    /// As [`People::join`], with `/join ROOM KEY` (no key if `key` is
    /// empty).
    #[track_caller]
    pub fn join_with(&mut self, who: usize, room: &str, key: &str) {
        let nick = self.members[who].0.nick().to_string();
        let old = self.members[who].1.clone();
        let client = &mut self.members[who].0;
        client.send(format!("/join {room} {key}").trim_end());
        client.expect_line(&format!("-- you joined {room}"));
        self.members[who].1 = room.to_string();
        self.hear_in_except(&old, who, &format!("-- {nick} left {old} (moved to {room})"));
        self.hear_in_except(room, who, &format!("-- {nick} joined {room}"));
    }

    /// Everyone in `room` reads `line` next.
    #[track_caller]
    pub fn hear_in(&mut self, room: &str, line: &str) {
        for (client, _) in self.members.iter_mut().filter(|(_, r)| r == room) {
            client.expect_line(line);
        }
    }

    /// Everyone in `room` but user `except` reads `line` next.
    #[track_caller]
    pub fn hear_in_except(&mut self, room: &str, except: usize, line: &str) {
        for (i, (client, r)) in self.members.iter_mut().enumerate() {
            if i != except && r == room {
                client.expect_line(line);
            }
        }
    }

    /// Says user `who` is now in `room` (`""` for none), for a move the
    /// test has checked itself (a kick, say).
    pub fn now_in(&mut self, who: usize, room: &str) {
        self.members[who].1 = room.to_string();
    }

    /// Takes user `who` out of the test's care (the indices of those after
    /// it change: use it last), to be read on its own.
    pub fn take(&mut self, who: usize) -> Client {
        self.members.swap_remove(who).0
    }

    /// User `i`.
    pub fn get(&mut self, i: usize) -> &mut Client {
        &mut self.members[i].0
    }
}
