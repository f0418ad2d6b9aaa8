//! Server-wide bans: by address, on every listener, kept across restarts.
//!
//! A server ban names addresses (`10.0.0.5`, `*@10.0.0.*`,
//! `10.0.0.0/24`, `2001:db8::/32`): it is checked when a connection
//! arrives, before its welcome, so nick and user are not known yet and a
//! mask with a nick part is refused (room bans are for nicks). The acceptor
//! refuses a banned address with one clear line; the hub puts out whoever
//! is connected from it when the ban is made.
//!
//! They are kept in the state directory (`--state-dir`, systemd's
//! `StateDirectory=`), in `server-bans`, a text file of one ban a line:
//!
//! ```text
//! # chat-server server bans: MASK, SET AT, UNTIL ("-" for never), REASON; tab-separated
//! *!*@10.0.0.0/24<TAB>2026-12-06T20:31:05Z<TAB>2026-12-07T20:31:05Z<TAB>spam wave
//! ```
//!
//! It is written whole to `server-bans.tmp`, flushed to disk, and renamed
//! over the old one, so a crash leaves the old file or the new one, never
//! half of one. A file that cannot be read as such stops the daemon at
//! start with the line at fault: it would rather not start than start
//! without the bans it was given.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chat_protocol::history::{format_time, parse_time};
use chat_protocol::moderation::ModerationError;
use chat_protocol::Mask;

/// The file's name in the state directory.
pub const FILE: &str = "server-bans";

/// The most server bans kept: the list is walked for every connection.
pub const MAX_SERVER_BANS: usize = 1000;

/// One server ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBan {
    /// The addresses it names, as `*!*@HOST`.
    pub mask: Mask,
    /// When it was set, in milliseconds since the Unix epoch.
    pub at: u64,
    /// When it ends; `None` for never.
    pub until: Option<u64>,
    /// Why, if the operator said.
    pub reason: Option<String>,
}

/// Why the bans file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BansError {
    /// Occurs when the file exists but cannot be read.
    #[error("cannot read the server bans in {}: {}", path.display(), crate::ops::logging::describe(source))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Occurs for a line that is not a ban.
    #[error("the server bans in {} are damaged at line {line}: {why}; fix or remove the line", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
}

/// Why a ban cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum BanError {
    /// Occurs for a mask that is not one.
    #[error(transparent)]
    Mask(#[from] ModerationError),
    /// Occurs for a mask that names a nick or user: server bans name
    /// addresses.
    #[error(
        "server bans name addresses ({0} names a nick or user): use an address, *@HOST or an address \
         block such as 10.0.0.0/24; ban a nick in its room"
    )]
    NotAnAddress(String),
    /// Occurs when the list is full.
    #[error("{MAX_SERVER_BANS} server bans already: lift some first")]
    Full,
    /// Occurs when the file cannot be written: the ban is not made.
    #[error("cannot save the server bans in {}: {}", path.display(), crate::ops::logging::describe(source))]
    Save {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// Reads an address mask as an operator writes it: `10.0.0.5`,
/// `*@10.0.0.*`, `10.0.0.0/24`.
///
/// # Errors
/// [`BanError::Mask`] or [`BanError::NotAnAddress`].
pub fn address_mask(text: &str) -> Result<Mask, BanError> {
    let full = if text.contains('@') {
        text.to_string()
    } else {
        format!("*@{text}")
    };
    let mask = Mask::parse(&full)?;
    if !mask.as_str().starts_with("*!*@") {
        return Err(BanError::NotAnAddress(text.to_string()));
    }
    Ok(mask)
}

/// The server's bans, and where they are kept.
#[derive(Debug, Clone, Default)]
pub struct ServerBans {
    bans: Vec<ServerBan>,
    /// The file, when there is a state directory; in memory only otherwise.
    path: Option<PathBuf>,
}

impl ServerBans {
    /// The bans kept in `dir`, or none (and none kept) without a directory.
    ///
    /// # Errors
    /// A [`BansError`] for a file that cannot be read as bans.
    pub fn load(dir: Option<&Path>) -> Result<ServerBans, BansError> {
        let Some(dir) = dir else {
            return Ok(ServerBans::default());
        };
        let path = dir.join(FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(BansError::Read { path, source }),
        };
        let mut bans = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let corrupt = |why: &str| BansError::Corrupt {
                path: path.clone(),
                line: index + 1,
                why: why.to_string(),
            };
            let fields: Vec<&str> = line.split('\t').collect();
            let [mask, at, until, reason] = fields[..] else {
                return Err(corrupt("not four tab-separated fields"));
            };
            let mask = address_mask(mask).map_err(|e| corrupt(&e.to_string()))?;
            let at = parse_time(at).ok_or_else(|| corrupt("the time it was set is not a time"))?;
            let until = match until {
                "-" => None,
                time => Some(parse_time(time).ok_or_else(|| corrupt("its end is not a time"))?),
            };
            let reason = (!reason.is_empty()).then(|| reason.to_string());
            bans.push(ServerBan {
                mask,
                at,
                until,
                reason,
            });
        }
        Ok(ServerBans {
            bans,
            path: Some(path),
        })
    }

    /// The ban that keeps `address` out at `now` (ms since the epoch).
    pub fn find(&self, address: IpAddr, now: u64) -> Option<&ServerBan> {
        self.bans
            .iter()
            .filter(|ban| ban.until.is_none_or(|until| until > now))
            .find(|ban| ban.mask.matches("", "", address))
    }

    /// The bans in force at `now`, oldest first.
    pub fn list(&self, now: u64) -> Vec<ServerBan> {
        self.bans
            .iter()
            .filter(|ban| ban.until.is_none_or(|until| until > now))
            .cloned()
            .collect()
    }

    /// Adds a ban (replacing one with the same mask) and saves the list;
    /// nothing changes if it cannot be saved.
    ///
    /// # Errors
    /// [`BanError::Full`] or [`BanError::Save`].
    pub fn add(&mut self, ban: ServerBan, now: u64) -> Result<(), BanError> {
        let mut bans = self.list(now);
        bans.retain(|b| b.mask != ban.mask);
        if bans.len() >= MAX_SERVER_BANS {
            return Err(BanError::Full);
        }
        bans.push(ban);
        self.save(&bans)?;
        self.bans = bans;
        Ok(())
    }

    /// Lifts the ban with `mask` and saves the list; false if there was
    /// none.
    ///
    /// # Errors
    /// [`BanError::Save`], when the list cannot be saved (the ban stays).
    pub fn remove(&mut self, mask: &Mask, now: u64) -> Result<bool, BanError> {
        let mut bans = self.list(now);
        let before = bans.len();
        bans.retain(|b| &b.mask != mask);
        if bans.len() == before {
            return Ok(false);
        }
        self.save(&bans)?;
        self.bans = bans;
        Ok(true)
    }

    /// Writes `bans` to the file, whole and at once.
    fn save(&self, bans: &[ServerBan]) -> Result<(), BanError> {
        let Some(path) = &self.path else { return Ok(()) };
        let error = |source| BanError::Save {
            path: path.clone(),
            source,
        };
        let mut text = String::from(
            "# chat-server server bans: MASK, SET AT, UNTIL (\"-\" for never), REASON; tab-separated\n",
        );
        for ban in bans {
            let until = ban.until.map_or_else(|| "-".to_string(), format_time);
            // Tabs and line ends cannot be in a reason: it is sanitized.
            let reason = ban
                .reason
                .as_deref()
                .unwrap_or_default()
                .replace(['\t', '\n', '\r'], " ");
            let _ = writeln!(text, "{}\t{}\t{until}\t{reason}", ban.mask, format_time(ban.at));
        }
        let tmp = path.with_extension("tmp");
        let write = || -> io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent() {
                fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(error)
    }
}

/// The end of a ban of `duration` set at `now`.
pub fn until(now: u64, duration: Duration) -> u64 {
    now.saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("chat-bans-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    const NOW: u64 = 1_796_587_200_000;

    #[test]
    fn masks_name_addresses_only() {
        assert_eq!(address_mask("10.0.0.5").unwrap().as_str(), "*!*@10.0.0.5");
        assert_eq!(address_mask("*@10.0.0.*").unwrap().as_str(), "*!*@10.0.0.*");
        assert_eq!(address_mask("10.0.0.0/24").unwrap().as_str(), "*!*@10.0.0.0/24");
        assert!(matches!(
            address_mask("troll!*@*"),
            Err(BanError::NotAnAddress(_))
        ));
        assert!(matches!(
            address_mask("bob@1.2.3.4"),
            Err(BanError::NotAnAddress(_))
        ));
        assert!(address_mask("10.0.0.0/40").is_err());
    }

    #[test]
    fn bans_are_kept_in_the_file_and_read_back() {
        let dir = dir("keep");
        let mut bans = ServerBans::load(Some(&dir)).unwrap();
        let ban = ServerBan {
            mask: address_mask("10.0.0.0/24").unwrap(),
            at: NOW,
            until: Some(NOW + 3_600_000),
            reason: Some("spam\twave".into()),
        };
        bans.add(ban, NOW).unwrap();
        bans.add(
            ServerBan {
                mask: address_mask("192.0.2.1").unwrap(),
                at: NOW,
                until: None,
                reason: None,
            },
            NOW,
        )
        .unwrap();
        let again = ServerBans::load(Some(&dir)).unwrap();
        assert!(again.find(ip("10.0.0.7"), NOW).is_some());
        assert!(again.find(ip("10.0.0.7"), NOW + 3_600_000).is_none(), "ran out");
        assert!(again.find(ip("192.0.2.1"), NOW + 365 * 86_400_000).is_some());
        assert!(again.find(ip("10.0.1.7"), NOW).is_none());
        assert_eq!(again.list(NOW)[0].reason.as_deref(), Some("spam wave"));
        let mut again = again;
        assert!(again.remove(&address_mask("192.0.2.1").unwrap(), NOW).unwrap());
        assert!(!again.remove(&address_mask("192.0.2.1").unwrap(), NOW).unwrap());
        assert_eq!(ServerBans::load(Some(&dir)).unwrap().list(NOW).len(), 1);
        assert!(!dir.join("server-bans.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_file_is_refused_with_the_line_at_fault() {
        let dir = dir("damaged");
        fs::write(
            dir.join(FILE),
            "# header\n*!*@10.0.0.1\t2026-12-06T20:31:05Z\t-\tfine\nthis is not a ban\n",
        )
        .unwrap();
        let error = ServerBans::load(Some(&dir)).unwrap_err().to_string();
        assert!(
            error.contains("damaged at line 3: not four tab-separated fields"),
            "{error}"
        );
        fs::write(dir.join(FILE), "*!*@10.0.0.1\tyesterday\t-\t\n").unwrap();
        let error = ServerBans::load(Some(&dir)).unwrap_err().to_string();
        assert!(
            error.contains("line 1: the time it was set is not a time"),
            "{error}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_a_directory_bans_live_in_memory() {
        let mut bans = ServerBans::load(None).unwrap();
        bans.add(
            ServerBan {
                mask: address_mask("10.0.0.1").unwrap(),
                at: NOW,
                until: None,
                reason: None,
            },
            NOW,
        )
        .unwrap();
        assert!(bans.find(ip("10.0.0.1"), NOW).is_some());
    }
}
