//! Nick and room name rules.
//!
//! Names are restricted to a small ASCII alphabet so that they can never
//! carry control characters, spaces or look-alike characters, are easy to
//! type in any terminal, and can be parsed back out of server lines without
//! ambiguity (no name contains a space, `>` or `*`). Both kinds of name are
//! compared without regard to ASCII case, as IRC users expect: `Alice` and
//! `alice` are the same nick, `#Rust` and `#rust` the same room.
//!
//! Even within ASCII some nicks look alike (`aIice`, `a1ice`, `allce` beside
//! `alice`), which lets someone pass for someone else. [`Nick::skeleton`]
//! maps look-alike nicks to one form, so that a nick can be refused while
//! one that looks like it is online. Room names have no skeleton: a room
//! speaks for no one, anyone may enter any room, and `/rooms` lists them
//! all with their member counts, so a look-alike room deceives no one about
//! who is talking; refusing `#c1` beside `#cl`, or `#team0` beside `#teamo`,
//! would only get in the way.

use std::fmt;

/// Longest nick, in characters.
pub const MAX_NICK_LEN: usize = 24;
/// Longest room name, in characters, not counting the leading `#`.
pub const MAX_ROOM_LEN: usize = 32;

/// A name that breaks the rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Occurs for an empty nick or room name.
    #[error("{kind} is empty")]
    Empty {
        /// "nick" or "room name".
        kind: &'static str,
    },
    /// Occurs for a name longer than its limit.
    #[error("{kind} is longer than {max} characters")]
    TooLong {
        /// "nick" or "room name".
        kind: &'static str,
        /// The limit.
        max: usize,
    },
    /// Occurs for a name whose first character is not an ASCII letter.
    #[error("{kind} must start with a letter")]
    BadStart {
        /// "nick" or "room name".
        kind: &'static str,
    },
    /// Occurs for a name with a character outside `A-Z a-z 0-9 _ -`.
    #[error("{kind} may only contain letters, digits, '_' and '-'")]
    BadChar {
        /// "nick" or "room name".
        kind: &'static str,
    },
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Checks `name` against the shared alphabet and a length limit.
fn check(kind: &'static str, name: &str, max: usize, must_start_with_letter: bool) -> Result<(), NameError> {
    let first = name.chars().next().ok_or(NameError::Empty { kind })?;
    if !name.chars().all(is_name_char) {
        return Err(NameError::BadChar { kind });
    }
    // All characters are ASCII from here on, so bytes count characters.
    if name.len() > max {
        return Err(NameError::TooLong { kind, max });
    }
    if must_start_with_letter && !first.is_ascii_alphabetic() {
        return Err(NameError::BadStart { kind });
    }
    Ok(())
}

/// A valid nick: 1–24 characters from `A-Z a-z 0-9 _ -`, starting with a
/// letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Nick(String);

impl Nick {
    /// Checks `name` and makes it a nick.
    ///
    /// # Errors
    /// A [`NameError`] saying which rule `name` breaks.
    pub fn new(name: &str) -> Result<Nick, NameError> {
        check("nick", name, MAX_NICK_LEN, true)?;
        Ok(Nick(name.to_string()))
    }

    /// The nick as given, with its case.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The nick in lower case: two nicks are the same user when their keys
    /// are equal.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// A form of the nick under which nicks that look alike are equal
    /// (UTS #39 calls it a skeleton): the nick in lower case, with
    ///
    /// - `i` (and so `I`, which looks like `l`) and `1` made `l`;
    /// - `0` made `o` (and so `O`);
    /// - `m` made `rn`, which looks like it;
    /// - `w` made `vv`, which looks like it.
    ///
    /// So `alice`, `aIice`, `allce`, `a1ice` and `AL1CE` share the skeleton
    /// `allce`, and `mallory` and `rnallory` share `rnallory`; nicks with the
    /// same [`key`](Nick::key) always share a skeleton. The skeleton is for
    /// comparing, never for showing. It deliberately leaves alone pairs
    /// that differ on a careful look, or that people choose on purpose:
    /// `5`/`s`, `2`/`z`, `8`/`b`, `9`/`g`, `cl`/`d`, `nn`/`m`, `_`/`-`,
    /// doubled or swapped letters (`allice`, `alcie`) and added characters
    /// (`alice2`, `alice_`, which a second alice needs).
    pub fn skeleton(&self) -> String {
        let mut skeleton = String::with_capacity(self.0.len() + 4);
        for c in self.0.chars() {
            match c.to_ascii_lowercase() {
                'i' | '1' => skeleton.push('l'),
                '0' => skeleton.push('o'),
                'm' => skeleton.push_str("rn"),
                'w' => skeleton.push_str("vv"),
                other => skeleton.push(other),
            }
        }
        skeleton
    }
}

impl fmt::Display for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A valid room name: `#` followed by 1–32 characters from
/// `A-Z a-z 0-9 _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomName(String);

impl RoomName {
    /// The room everyone starts in, which always exists.
    pub const LOBBY: &'static str = "#lobby";

    /// Checks `name`, adding the leading `#` if it is missing.
    ///
    /// # Errors
    /// A [`NameError`] saying which rule `name` breaks.
    pub fn new(name: &str) -> Result<RoomName, NameError> {
        let bare = name.strip_prefix('#').unwrap_or(name);
        check("room name", bare, MAX_ROOM_LEN, false)?;
        Ok(RoomName(format!("#{bare}")))
    }

    /// The lobby, `#lobby`.
    pub fn lobby() -> RoomName {
        RoomName(Self::LOBBY.to_string())
    }

    /// The name with its `#`, as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name in lower case: two names are the same room when their keys
    /// are equal.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Nick {
    type Error = NameError;

    /// Checks a nick read back from a serialised form (the cluster's
    /// messages, a handed-over state): it obeys the same rules as one typed.
    fn try_from(name: String) -> Result<Nick, NameError> {
        Nick::new(&name)
    }
}

impl From<Nick> for String {
    fn from(nick: Nick) -> String {
        nick.0
    }
}

impl TryFrom<String> for RoomName {
    type Error = NameError;

    /// Checks a room name read back from a serialised form, as [`Nick`]'s.
    fn try_from(name: String) -> Result<RoomName, NameError> {
        RoomName::new(&name)
    }
}

impl From<RoomName> for String {
    fn from(room: RoomName) -> String {
        room.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_from_a_serialised_form_obey_the_same_rules() {
        let nick: Nick = serde_json::from_str("\"Alice\"").unwrap();
        assert_eq!(nick.as_str(), "Alice");
        assert_eq!(serde_json::to_string(&nick).unwrap(), "\"Alice\"");
        assert!(serde_json::from_str::<Nick>("\"1bad nick\"").is_err());
        let room: RoomName = serde_json::from_str("\"rust\"").unwrap();
        assert_eq!(room.as_str(), "#rust");
        assert!(serde_json::from_str::<RoomName>("\"#no spaces\"").is_err());
    }

    #[test]
    fn nicks_follow_the_rules() {
        assert_eq!(Nick::new("alice").unwrap().as_str(), "alice");
        assert!(Nick::new("A1_-z").is_ok());
        assert!(Nick::new(&"a".repeat(24)).is_ok());
        assert_eq!(Nick::new(""), Err(NameError::Empty { kind: "nick" }));
        assert_eq!(
            Nick::new(&"a".repeat(25)),
            Err(NameError::TooLong {
                kind: "nick",
                max: 24
            })
        );
        assert_eq!(Nick::new("1abc"), Err(NameError::BadStart { kind: "nick" }));
        assert_eq!(Nick::new("_abc"), Err(NameError::BadStart { kind: "nick" }));
        assert_eq!(Nick::new("a b"), Err(NameError::BadChar { kind: "nick" }));
        assert_eq!(Nick::new("zoë"), Err(NameError::BadChar { kind: "nick" }));
        assert_eq!(Nick::new("a>b"), Err(NameError::BadChar { kind: "nick" }));
    }

    #[test]
    fn nick_keys_ignore_case() {
        assert_eq!(
            Nick::new("Alice").unwrap().key(),
            Nick::new("aLICE").unwrap().key()
        );
    }

    fn skeleton(name: &str) -> String {
        Nick::new(name).unwrap().skeleton()
    }

    #[test]
    fn look_alike_nicks_share_a_skeleton() {
        for like in [
            "alice", "Alice", "aIice", "allce", "a1ice", "AL1CE", "aLIce", "ALlCE",
        ] {
            assert_eq!(skeleton(like), "allce", "{like}");
        }
        assert_eq!(skeleton("mallory"), skeleton("rnallory"));
        assert_eq!(skeleton("Mallory"), skeleton("RNa11ory"));
        assert_eq!(skeleton("wendy"), skeleton("vvendy"));
        assert_eq!(skeleton("bob"), skeleton("b0b"));
        assert_eq!(skeleton("BOB"), skeleton("B0B"));
    }

    #[test]
    fn nicks_that_differ_on_a_careful_look_do_not_share_a_skeleton() {
        for (a, b) in [
            ("alice", "alicia"),
            ("alice", "alice2"),
            ("alice", "alice_"),
            ("alice", "allice"),
            ("alice", "alcie"),
            ("sams", "sam5"),
            ("dan", "clan"),
            ("a_b", "a-b"),
        ] {
            assert_ne!(skeleton(a), skeleton(b), "{a} and {b}");
        }
    }

    #[test]
    fn rooms_get_a_hash_and_follow_the_rules() {
        assert_eq!(RoomName::new("rust").unwrap().as_str(), "#rust");
        assert_eq!(RoomName::new("#rust").unwrap().as_str(), "#rust");
        assert!(RoomName::new("#1-room_").is_ok());
        assert!(RoomName::new(&"r".repeat(32)).is_ok());
        assert_eq!(RoomName::new("#"), Err(NameError::Empty { kind: "room name" }));
        assert_eq!(
            RoomName::new(&"r".repeat(33)),
            Err(NameError::TooLong {
                kind: "room name",
                max: 32
            })
        );
        assert_eq!(
            RoomName::new("##x"),
            Err(NameError::BadChar { kind: "room name" })
        );
        assert_eq!(
            RoomName::new("a room"),
            Err(NameError::BadChar { kind: "room name" })
        );
        assert_eq!(RoomName::new("#Rust").unwrap().key(), "#rust");
    }
}
