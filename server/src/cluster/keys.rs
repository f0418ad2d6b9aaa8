//! The Redis keys and channels the cluster uses, all under `chat:`, in
//! one place so that README's list and the code cannot drift.
//!
//! - `chat:seq:<room>`: the room's last sequence number (INCR);
//! - `chat:stream:<room>`: its history, a stream capped at `--history`,
//!   entry ids `SEQ-0`;
//! - `chat:room:<room>`: the channel its lines are published on
//!   (`SEQ JSON`); every instance subscribes to `chat:room:*`;
//! - `chat:nick:<nick>`: the instance that holds the nick (expires);
//! - `chat:members:<room>`: its members, a sorted set by expiry (ms);
//! - `chat:rooms`: rooms with members, by expiry; `chat:roomnames` their
//!   spelling;
//! - `chat:topic:<room>`: the room's topic, a hash (`text`, `by`, `at`,
//!   and `seq`, the number of the line that set it), written by the
//!   publishing script so it is in the room's order;
//! - `chat:settings:<room>`: the room's settings, a hash (`moderated`,
//!   `topic-lock`, `hidden`: `1` when on; `key`; and `seq`, the number of
//!   the last line that changed a setting or a ban), written by the
//!   publishing script;
//! - `chat:bans:<room>`: its bans, a hash by mask of the ban (JSON: mask,
//!   setter, time, expiry), and `chat:bantimes:<room>`, the same masks
//!   by the time they were set: at most `MAX_BANS` (100), the oldest
//!   dropped; expired bans are left out when read;
//! - `chat:guests`: the guest number counter;
//! - `chat:epoch`: a random value, which changes when Redis lost its data;
//! - `chat:instance:<id>`: the channel for private messages to an
//!   instance's users.
//!
//! `<room>` is the room's key (lower case) and `<nick>` the nick's key.

/// Every key starts with this.
pub const PREFIX: &str = "chat:";

/// The channel pattern every instance subscribes to.
pub const ROOM_PATTERN: &str = "chat:room:*";

/// What the room channels start with.
pub const ROOM_CHANNEL: &str = "chat:room:";

/// The set of rooms with members.
pub const ROOMS: &str = "chat:rooms";

/// The rooms' spellings.
pub const ROOM_NAMES: &str = "chat:roomnames";

/// The guest counter.
pub const GUESTS: &str = "chat:guests";

/// A random value the first instance sets: when it changes, Redis has
/// lost its data (restarted without persistence), and every room's
/// numbering starts again.
pub const EPOCH: &str = "chat:epoch";

/// The room's sequence number.
pub fn seq(room: &str) -> String {
    format!("chat:seq:{room}")
}

/// The room's stream.
pub fn stream(room: &str) -> String {
    format!("chat:stream:{room}")
}

/// The room's channel.
pub fn channel(room: &str) -> String {
    format!("{ROOM_CHANNEL}{room}")
}

/// The nick's claim.
pub fn nick(key: &str) -> String {
    format!("chat:nick:{key}")
}

/// The room's topic.
pub fn topic(room: &str) -> String {
    format!("chat:topic:{room}")
}

/// The room's settings.
pub fn settings(room: &str) -> String {
    format!("chat:settings:{room}")
}

/// The room's bans, by mask.
pub fn bans(room: &str) -> String {
    format!("chat:bans:{room}")
}

/// The room's banned masks, by the time they were banned.
pub fn ban_times(room: &str) -> String {
    format!("chat:bantimes:{room}")
}

/// The room's members.
pub fn members(room: &str) -> String {
    format!("chat:members:{room}")
}

/// An instance's private channel.
pub fn instance(id: &str) -> String {
    format!("chat:instance:{id}")
}

/// The room a stream key is for.
pub fn room_of_stream(key: &str) -> Option<&str> {
    key.strip_prefix("chat:stream:")
}
