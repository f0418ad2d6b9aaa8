//! What room operators work with: ban masks, durations, room settings and
//! members' roles, the same for every front end.
//!
//! A ban [`Mask`] is written as IRC writes one, `nick!user@host`, each part
//! a pattern with `*` and `?`; a mask without `!` and `@` is a nick pattern
//! (`troll*` is `troll*!*@*`), one with only `@` a user and host
//! (`*@10.0.0.*`). The host part may also be an address block,
//! `10.0.0.0/24` or `2001:db8::/32`. A user is matched as
//! `nick!user@address`, with their real address: IRC clients see everyone
//! as `@chat-server`, so address masks are for server operators, who can
//! see addresses (`chat-server ctl who`), and nick masks for everyone.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// The longest mask, in bytes.
pub const MAX_MASK_LEN: usize = 100;

/// The longest ban: a year.
pub const MAX_BAN: Duration = Duration::from_secs(365 * 24 * 3600);

/// The longest room key, in characters (IRC's `KEYLEN`).
pub const MAX_KEY_LEN: usize = 23;

/// A ban mask, in its full `nick!user@host` form, in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Mask(String);

/// Why a mask, duration or key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ModerationError {
    /// Occurs for a mask that is empty, too long, or has a character no
    /// nick, user or address has.
    #[error("invalid mask {0:?}: use NICK, NICK!USER@HOST or USER@HOST, with * and ?; HOST may be an address block like 10.0.0.0/24")]
    BadMask(String),
    /// Occurs for a duration that is not a number with s, m, h, d or w, or
    /// is longer than a year.
    #[error("invalid duration {0:?}: use a number with s, m, h, d or w (10m, 2h, 7d), at most a year")]
    BadDuration(String),
    /// Occurs for a room key that is too long or has a space, comma or
    /// control character.
    #[error("invalid key: 1 to {MAX_KEY_LEN} characters, no spaces or commas")]
    BadKey,
}

impl Mask {
    /// Reads a mask as an operator writes it, completing the parts left
    /// out.
    ///
    /// # Errors
    /// [`ModerationError::BadMask`].
    pub fn parse(text: &str) -> Result<Mask, ModerationError> {
        let bad = || ModerationError::BadMask(text.chars().take(40).collect());
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_-*?!@.:/".contains(c);
        if text.is_empty() || text.len() > MAX_MASK_LEN || !text.chars().all(allowed) {
            return Err(bad());
        }
        let lower = text.to_ascii_lowercase();
        let full = match (lower.find('!'), lower.find('@')) {
            (None, None) => format!("{lower}!*@*"),
            (None, Some(_)) => format!("*!{lower}"),
            (Some(_), None) => format!("{lower}@*"),
            (Some(bang), Some(at)) if bang < at => lower,
            _ => return Err(bad()),
        };
        if full.matches('!').count() != 1 || full.matches('@').count() != 1 {
            return Err(bad());
        }
        let host = full.rsplit('@').next().unwrap_or_default();
        if host.contains('/') && parse_block(host).is_none() {
            return Err(bad());
        }
        Ok(Mask(full))
    }

    /// The mask, `nick!user@host`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the user `nick` with user name `user` at `address` matches.
    pub fn matches(&self, nick: &str, user: &str, address: IpAddr) -> bool {
        let (who, host) = self.0.split_once('@').unwrap_or((&self.0, "*"));
        let (nick_pattern, user_pattern) = who.split_once('!').unwrap_or((who, "*"));
        if !glob(nick_pattern, &nick.to_ascii_lowercase()) || !glob(user_pattern, &user.to_ascii_lowercase())
        {
            return false;
        }
        match parse_block(host) {
            Some((network, bits)) => in_block(address, network, bits),
            None => glob(host, &address.to_string()),
        }
    }

    /// Whether the mask names users by nick alone (any user, any host).
    pub fn is_nick_mask(&self) -> bool {
        self.0.ends_with("!*@*")
    }
}

impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `10.0.0.0/24` as its address and prefix length.
fn parse_block(text: &str) -> Option<(IpAddr, u8)> {
    let (address, bits) = text.split_once('/')?;
    let address: IpAddr = address.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((address, bits))
}

/// Whether `address` is in the block `network/bits`.
fn in_block(address: IpAddr, network: IpAddr, bits: u8) -> bool {
    let (a, n, width) = match (address, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (u128::from(u32::from(a)), u128::from(u32::from(n)), 32),
        (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a), u128::from(n), 128),
        (IpAddr::V6(a), IpAddr::V4(n)) => match a.to_ipv4_mapped() {
            Some(a) => (u128::from(u32::from(a)), u128::from(u32::from(n)), 32),
            None => return false,
        },
        (IpAddr::V4(_), IpAddr::V6(_)) => return false,
    };
    let shift = width - u32::from(bits);
    // A shift of the whole width (a /0) matches everything.
    a.checked_shr(shift).unwrap_or(0) == n.checked_shr(shift).unwrap_or(0)
}

/// Whether `text` matches `pattern` (`*` any run, `?` one character).
/// Linear: a star is retried from the last one only.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || Some(&c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

/// Reads a duration: a number and a unit, `s`, `m`, `h`, `d` or `w` (a
/// bare number is seconds), at most [`MAX_BAN`].
///
/// # Errors
/// [`ModerationError::BadDuration`].
pub fn parse_duration(text: &str) -> Result<Duration, ModerationError> {
    let bad = || ModerationError::BadDuration(text.chars().take(20).collect());
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        "w" => n.checked_mul(7 * 86_400),
        _ => None,
    }
    .ok_or_else(bad)?;
    let duration = Duration::from_secs(secs);
    if secs == 0 || duration > MAX_BAN {
        return Err(bad());
    }
    Ok(duration)
}

/// A duration as an operator would write it: `10m`, `2h`, `3d`.
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    for (unit, size) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// Checks a room key.
///
/// # Errors
/// [`ModerationError::BadKey`].
pub fn check_key(key: &str) -> Result<(), ModerationError> {
    let fine = |c: char| !c.is_whitespace() && !c.is_control() && c != ',';
    if key.is_empty() || key.chars().count() > MAX_KEY_LEN || !key.chars().all(fine) {
        return Err(ModerationError::BadKey);
    }
    Ok(())
}

/// A room's settings, which its operators change.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoomSettings {
    /// Only operators and voiced members speak (IRC's `+m`).
    pub moderated: bool,
    /// Only operators set the topic (`+t`).
    pub topic_locked: bool,
    /// Joining needs this key (`+k`).
    pub key: Option<String>,
    /// Left out of `/rooms` and LIST for those not in it (`+s`).
    pub hidden: bool,
}

/// One change to a room's settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RoomSetting {
    /// Moderated, or not.
    Moderated(bool),
    /// Topic locked to operators, or not.
    TopicLocked(bool),
    /// A key needed to join, or none.
    Key(Option<String>),
    /// Hidden, or not.
    Hidden(bool),
}

impl RoomSettings {
    /// Applies `change`.
    pub fn apply(&mut self, change: &RoomSetting) {
        match change {
            RoomSetting::Moderated(on) => self.moderated = *on,
            RoomSetting::TopicLocked(on) => self.topic_locked = *on,
            RoomSetting::Key(key) => self.key.clone_from(key),
            RoomSetting::Hidden(on) => self.hidden = *on,
        }
    }

    /// Whether any is set, so the room is worth keeping once empty.
    pub fn any(&self) -> bool {
        self.moderated || self.topic_locked || self.key.is_some() || self.hidden
    }
}

/// What an operator may give or take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// A room operator (`@`).
    Op,
    /// A voiced member (`+`): may speak in a moderated room.
    Voice,
}

impl Role {
    /// The word for it in notices.
    pub fn name(self) -> &'static str {
        match self {
            Role::Op => "an operator",
            Role::Voice => "voice",
        }
    }
}

/// One member of a room, with the roles they hold there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// Their nick.
    pub nick: crate::Nick,
    /// A room operator.
    pub op: bool,
    /// Voiced.
    pub voice: bool,
}

impl Member {
    /// The highest prefix they hold (`@`, `+` or none), as listings show it.
    pub fn prefix(&self) -> &'static str {
        if self.op {
            "@"
        } else if self.voice {
            "+"
        } else {
            ""
        }
    }

    /// Every prefix they hold, highest first (IRC's `multi-prefix`).
    pub fn prefixes(&self) -> &'static str {
        match (self.op, self.voice) {
            (true, true) => "@+",
            (true, false) => "@",
            (false, true) => "+",
            (false, false) => "",
        }
    }
}

/// One ban, as `/bans` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BanInfo {
    /// What it matches.
    pub mask: Mask,
    /// Who set it.
    pub by: String,
    /// When, in milliseconds since the Unix epoch.
    pub at: u64,
    /// When it ends, in the same unit; `None` for never.
    pub until: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn masks_are_completed_as_irc_completes_them() {
        assert_eq!(Mask::parse("Troll*").unwrap().as_str(), "troll*!*@*");
        assert_eq!(Mask::parse("*@10.0.0.*").unwrap().as_str(), "*!*@10.0.0.*");
        assert_eq!(Mask::parse("bob!b").unwrap().as_str(), "bob!b@*");
        assert_eq!(Mask::parse("a!b@c").unwrap().as_str(), "a!b@c");
        for bad in [
            "",
            "a b",
            "a@b!c",
            "a!!b@c",
            "x@10.0.0.0/33",
            "é",
            &"x".repeat(101),
        ] {
            assert!(Mask::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Mask::parse("troll").unwrap().is_nick_mask());
        assert!(!Mask::parse("*@1.2.3.4").unwrap().is_nick_mask());
    }

    #[test]
    fn masks_match_nick_user_and_address() {
        let troll = Mask::parse("troll*").unwrap();
        assert!(troll.matches("Trolly", "line", ip("127.0.0.1")));
        assert!(!troll.matches("alice", "line", ip("127.0.0.1")));
        let net = Mask::parse("*@10.1.2.0/24").unwrap();
        assert!(net.matches("anyone", "x", ip("10.1.2.200")));
        assert!(!net.matches("anyone", "x", ip("10.1.3.1")));
        assert!(net.matches("anyone", "x", ip("::ffff:10.1.2.7")));
        let six = Mask::parse("*@2001:db8::/32").unwrap();
        assert!(six.matches("a", "b", ip("2001:db8:1::5")));
        assert!(!six.matches("a", "b", ip("2001:db9::5")));
        let glob_host = Mask::parse("*@127.0.0.*").unwrap();
        assert!(glob_host.matches("a", "b", ip("127.0.0.9")));
        let everyone = Mask::parse("*@0.0.0.0/0").unwrap();
        assert!(everyone.matches("a", "b", ip("8.8.8.8")));
    }

    #[test]
    fn durations_have_units_and_a_ceiling() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1w").unwrap(), Duration::from_secs(604_800));
        for bad in ["", "0", "10x", "m", "53w", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(172_800)), "2d");
    }

    #[test]
    fn keys_are_one_word() {
        assert!(check_key("s3cret").is_ok());
        for bad in ["", "two words", "a,b", &"k".repeat(24)] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }
}
