//! `chat-server ctl`: the server operator's command, the other end of the
//! control socket (see [`super`]).
//!
//! It sends one request and prints the answer, for a person (lines of
//! text) or, with `--json`, for a script (the daemon's JSON answer as it
//! is). Its exit status says how it went: [`EXIT_OK`], [`EXIT_REFUSED`]
//! (the server answered no, and said why), [`EXIT_USAGE`] (clap's), or
//! [`EXIT_UNREACHABLE`] (no server answered on the socket).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::IO_TIMEOUT;
use crate::ops::logging::counted;

/// The command did what was asked.
pub const EXIT_OK: u8 = 0;
/// The server answered that it would not (no such nick, a bad mask...).
pub const EXIT_REFUSED: u8 = 1;
/// A usage error (clap's exit status).
pub const EXIT_USAGE: u8 = 2;
/// No server answered on the control socket.
pub const EXIT_UNREACHABLE: u8 = 3;

/// Where `ctl` looks for the socket when not told: the packaged service's
/// runtime directory.
pub const DEFAULT_SOCKET: &str = "/run/chat-server/control";

/// The exit statuses, for `--help` and the man page.
pub const CTL_EXIT_STATUS: &str = "0 when the server did what was asked; 1 when it answered \
    that it would not (no such nick, a bad mask), with its reason on stderr; 2 for a usage error; \
    3 when no server answered on the control socket (not running, another socket, or no \
    permission to open it).";

/// `chat-server ctl [--socket PATH] [--json] COMMAND`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_long_help = format!("Exit status: {CTL_EXIT_STATUS}"))]
pub struct Ctl {
    /// The server's control socket (its --control-socket).
    #[arg(long, value_name = "PATH", env = "CHAT_SERVER_CONTROL_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print the server's answer as JSON, for scripts.
    #[arg(long)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// One of `ctl`'s commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CtlCommand {
    /// The server's version, uptime, listeners, and how many users, rooms
    /// and server bans it has.
    Status,
    /// Who is connected (at most 10,000), with their addresses, or who is
    /// in ROOM.
    Who {
        /// A room (with or without its #).
        room: Option<String>,
    },
    /// Every room with members (hidden ones too), with its settings.
    Rooms,
    /// Disconnects the user NICK; they and their rooms are told REASON.
    Kick {
        /// Whom.
        nick: String,
        /// Why (the rest of the line).
        reason: Vec<String>,
    },
    /// Bans addresses from the server, on every listener: MASK is an
    /// address, *@HOST with * and ?, or an address block (10.0.0.0/24).
    /// Whoever is connected from there is disconnected; new connections are
    /// refused before their welcome. Kept across restarts in the state
    /// directory.
    Ban {
        /// The addresses.
        mask: String,
        /// How long (10m, 2h, 7d, 1w; at most a year); until lifted
        /// without it.
        #[arg(long, short)]
        duration: Option<String>,
        /// Why (the rest of the line).
        reason: Vec<String>,
    },
    /// Lifts a server ban.
    Unban {
        /// The ban's mask, as `bans` lists it or as it was given.
        mask: String,
    },
    /// Lists the server bans in force.
    Bans,
    /// Tells everyone connected TEXT, as a notice from the server.
    Announce {
        /// What (the rest of the line).
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Reads the TLS certificate and key again, as SIGHUP does.
    Reload,
    /// Stops the server gracefully, as SIGTERM does.
    Shutdown,
}

impl CtlCommand {
    /// The request the daemon reads.
    fn request(&self) -> Value {
        let rest = |words: &[String]| (!words.is_empty()).then(|| words.join(" "));
        match self {
            CtlCommand::Status => json!({ "command": "status" }),
            CtlCommand::Who { room } => json!({ "command": "who", "room": room }),
            CtlCommand::Rooms => json!({ "command": "rooms" }),
            CtlCommand::Kick { nick, reason } => {
                json!({ "command": "kick", "nick": nick, "reason": rest(reason) })
            }
            CtlCommand::Ban {
                mask,
                duration,
                reason,
            } => json!({
                "command": "ban", "mask": mask, "duration": duration, "reason": rest(reason)
            }),
            CtlCommand::Unban { mask } => json!({ "command": "unban", "mask": mask }),
            CtlCommand::Bans => json!({ "command": "bans" }),
            CtlCommand::Announce { text } => json!({ "command": "announce", "text": text.join(" ") }),
            CtlCommand::Reload => json!({ "command": "reload" }),
            CtlCommand::Shutdown => json!({ "command": "shutdown" }),
        }
    }
}

/// Runs `ctl`: prints the answer on stdout (a refusal or a failure on
/// stderr) and returns the exit status.
pub fn run(ctl: &Ctl) -> u8 {
    let answer = match ask(&ctl.socket, &ctl.command.request()) {
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("chat-server ctl: {e}");
            return EXIT_UNREACHABLE;
        }
    };
    let ok = answer.get("ok").and_then(Value::as_bool).unwrap_or(false);
    if ctl.json {
        println!("{answer}");
    } else if ok {
        print!("{}", human(&ctl.command, &answer));
    }
    if ok {
        EXIT_OK
    } else {
        if !ctl.json {
            let error = answer.get("error").and_then(Value::as_str).unwrap_or("refused");
            eprintln!("chat-server ctl: {error}");
        }
        EXIT_REFUSED
    }
}

/// Sends `request` on the socket at `path` and reads the answer.
fn ask(path: &PathBuf, request: &Value) -> Result<Value, String> {
    let mut stream = UnixStream::connect(path).map_err(|e| {
        format!(
            "no chat-server answers on {}: {} (is it running, with --control-socket {}? the \
             packaged service's is {DEFAULT_SOCKET}; see --socket)",
            path.display(),
            crate::ops::logging::describe(&e),
            path.display()
        )
    })?;
    let timeouts = stream
        .set_read_timeout(Some(IO_TIMEOUT * 3))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)));
    timeouts.map_err(|e| e.to_string())?;
    let mut line = request.to_string().into_bytes();
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|e| format!("cannot send to {}: {e}", path.display()))?;
    let mut answer = Vec::new();
    BufReader::new(&stream)
        .read_until(b'\n', &mut answer)
        .map_err(|e| format!("no answer from {}: {e}", path.display()))?;
    serde_json::from_slice(&answer)
        .map_err(|e| format!("an answer that is not JSON from {}: {e}", path.display()))
}

/// An answer as a person reads it.
fn human(command: &CtlCommand, answer: &Value) -> String {
    let mut out = String::new();
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let n = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or_default();
    let yes = |v: &Value, k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let list = |v: &Value, k: &str| -> Vec<Value> {
        v.get(k).and_then(Value::as_array).cloned().unwrap_or_default()
    };
    match command {
        CtlCommand::Status => {
            let _ = writeln!(out, "{}", s(answer, "version"));
            let _ = writeln!(out, "up {}", uptime(n(answer, "uptime_secs")));
            let count =
                |key: &str, noun: &str| counted(usize::try_from(n(answer, key)).unwrap_or(usize::MAX), noun);
            let _ = writeln!(
                out,
                "{}, {} registering, {}, {}",
                count("users", "user"),
                n(answer, "registering"),
                count("rooms", "room"),
                count("server_bans", "server ban")
            );
            for listening in list(answer, "listening") {
                let _ = writeln!(out, "listening on {}", listening.as_str().unwrap_or_default());
            }
        }
        CtlCommand::Who { .. } => {
            for user in list(answer, "users") {
                let rooms: Vec<String> = list(&user, "rooms")
                    .iter()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect();
                let away = if yes(&user, "away") { " (away)" } else { "" };
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\tidle {}s\t{}{away}",
                    s(&user, "nick"),
                    s(&user, "address"),
                    s(&user, "user"),
                    n(&user, "idle_secs"),
                    rooms.join(" ")
                );
            }
            if yes(answer, "truncated") {
                out.push_str("(more not listed)\n");
            }
        }
        CtlCommand::Rooms => {
            for room in list(answer, "rooms") {
                let mut settings = Vec::new();
                for (key, name) in [
                    ("moderated", "moderated"),
                    ("topic_locked", "topic locked"),
                    ("key", "key"),
                    ("hidden", "hidden"),
                ] {
                    if yes(&room, key) {
                        settings.push(name);
                    }
                }
                let _ = writeln!(
                    out,
                    "{}\t{} members\t{} bans\t{} lines\t{}",
                    s(&room, "name"),
                    n(&room, "members"),
                    n(&room, "bans"),
                    n(&room, "history_lines"),
                    settings.join(", ")
                );
            }
            if yes(answer, "truncated") {
                out.push_str("(more not listed)\n");
            }
        }
        CtlCommand::Bans => {
            let bans = list(answer, "bans");
            if bans.is_empty() {
                out.push_str("no server bans\n");
            }
            for ban in bans {
                let until = ban.get("until").and_then(Value::as_str).unwrap_or("lifted");
                let reason = ban.get("reason").and_then(Value::as_str).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{}\tset {}\tuntil {until}\t{reason}",
                    s(&ban, "mask"),
                    s(&ban, "at")
                );
            }
        }
        CtlCommand::Ban { .. } => {
            let _ = writeln!(out, "banned; {} disconnected", n(answer, "disconnected"));
        }
        CtlCommand::Kick { .. } => out.push_str("disconnected\n"),
        CtlCommand::Announce { .. } => {
            let _ = writeln!(out, "told {}", n(answer, "count"));
        }
        CtlCommand::Reload => {
            let _ = writeln!(out, "reloaded: SHA-256 {}", s(answer, "fingerprint"));
        }
        CtlCommand::Unban { .. } => out.push_str("lifted\n"),
        CtlCommand::Shutdown => out.push_str("shutting down\n"),
    }
    out
}

/// `3d 4h 5m` and so on.
fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_as_a_person_says_it() {
        assert_eq!(uptime(59), "59s");
        assert_eq!(uptime(61), "1m 1s");
        assert_eq!(uptime(3 * 3600 + 120), "3h 2m");
        assert_eq!(uptime(2 * 86_400 + 3600), "2d 1h");
    }

    #[test]
    fn requests_carry_their_arguments() {
        let kick = CtlCommand::Kick {
            nick: "troll".into(),
            reason: vec!["go".into(), "away".into()],
        };
        assert_eq!(
            kick.request(),
            json!({ "command": "kick", "nick": "troll", "reason": "go away" })
        );
        let bare = CtlCommand::Kick {
            nick: "troll".into(),
            reason: Vec::new(),
        };
        assert_eq!(bare.request()["reason"], Value::Null);
    }
}
