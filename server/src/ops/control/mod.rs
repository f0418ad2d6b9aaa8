//! The control socket: how `chat-server ctl` runs the server from a shell.
//!
//! The daemon listens on a Unix socket (`--control-socket`; by default
//! `control` in systemd's `RuntimeDirectory=`), never on a TCP port: who
//! may use it is who may open the file, which is its owner alone (mode
//! 0600). A thread of its own serves it, one connection at a time: it
//! reads one request, a JSON object on one line, carries it out and writes
//! one JSON answer, then closes. What needs the chat state goes to the hub
//! as an [`AdminCommand`] and waits for its answer (a few seconds at
//! most); server bans are the control thread's own ([`bans`]): it keeps
//! them, saves them, and hands each new list to the acceptor, which
//! refuses banned addresses before their welcome.
//!
//! A client that connects and says nothing, or says too much, holds the
//! thread for at most [`IO_TIMEOUT`] and [`MAX_REQUEST`] bytes; nothing it
//! does reaches the event loops.
//!
//! [`ctl`] is the other end: the `chat-server ctl` command.

pub mod bans;
pub mod ctl;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chat_protocol::moderation::parse_duration;
use chat_protocol::text::sanitize;
use chat_protocol::{Nick, RoomName};
use crossbeam_channel::Sender;
use serde_json::{json, Value};

use crate::chat::admin::{AdminAnswer, AdminCommand};
use crate::chat::hub::system_clock;
use crate::chat::messages::Inbound;
use crate::net::shutdown::ShutdownHandle;
use crate::net::tls::Reloader;
use bans::{address_mask, ServerBan, ServerBans};

/// The longest request, in bytes.
pub const MAX_REQUEST: usize = 16 * 1024;

/// How long a client of the socket may take to send its request or read
/// its answer, and how long the hub may take to answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The socket's name in systemd's runtime directory.
pub const SOCKET_NAME: &str = "control";

/// Why the control socket cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Occurs when another server answers on the socket already.
    #[error("the control socket {} is in use by another chat-server", path.display())]
    InUse {
        /// The socket.
        path: PathBuf,
    },
    /// Occurs when it cannot be created.
    #[error("cannot open the control socket {}: {}", path.display(), crate::ops::logging::describe(source))]
    Open {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// What the control thread works with.
#[derive(Debug)]
pub struct Setup {
    /// Where the socket goes.
    pub path: PathBuf,
    /// The server bans, loaded at start.
    pub bans: ServerBans,
    /// To the acceptor: each new list of bans.
    pub to_acceptor: Sender<Arc<ServerBans>>,
    /// To the hub.
    pub to_hub: Sender<Inbound>,
    /// Stops the server (`ctl shutdown`).
    pub shutdown: ShutdownHandle,
    /// Reloads the certificate (`ctl reload`), if the server serves TLS.
    pub reloader: Option<Reloader>,
    /// What the server listens on, for `ctl status`.
    pub listening: Vec<String>,
    /// Where a `handover` request's connection goes (`chat-server
    /// --take-over`, see [`crate::upgrade`]): the server answers it once
    /// it has stopped.
    pub handover: Sender<UnixStream>,
}

/// The control thread.
#[derive(Debug)]
pub struct ControlServer {
    /// Set to stop the thread, which then needs waking to notice.
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    path: PathBuf,
    /// The listening socket the thread waits on (another descriptor of
    /// it), to wake the thread however its file fares.
    listener: UnixListener,
    /// The socket file's inode, so that stopping removes the file only if
    /// it is still ours (not one another daemon bound there since).
    inode: Option<u64>,
}

impl ControlServer {
    /// Opens the socket (mode 0600) and starts the thread serving it.
    ///
    /// # Errors
    /// A [`ControlError`] when the socket cannot be opened.
    pub fn start(setup: Setup) -> Result<ControlServer, ControlError> {
        let path = setup.path.clone();
        let open = |source| ControlError::Open {
            path: path.clone(),
            source,
        };
        let listener = bind(&path)?;
        let waker = listener.try_clone().map_err(open)?;
        let inode = std::fs::metadata(&path).ok().map(|m| m.ino());
        log::info!("control socket {}", path.display());
        let stop = Arc::new(AtomicBool::new(false));
        let mut control = Control {
            setup,
            started: Instant::now(),
            stop: Arc::clone(&stop),
        };
        let thread = thread::Builder::new()
            .name("control".into())
            .spawn(move || control.run(&listener))
            .map_err(open)?;
        Ok(ControlServer {
            stop,
            thread,
            path,
            listener: waker,
            inode,
        })
    }

    /// Stops the thread and removes the socket.
    ///
    /// The thread waits in `accept(2)`. Shutting the listening socket down
    /// makes that fail at once, so the thread wakes, sees it must stop and
    /// lets go of its way to the hub (which cannot finish before). A
    /// connection of our own would not do: the socket's file may have
    /// been deleted or replaced meanwhile, and the server would wait for
    /// the thread forever.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        if let Err(e) = rustix::net::shutdown(&self.listener, rustix::net::Shutdown::Both) {
            log::warn!("control socket: cannot wake its thread: {e}");
            let _ = UnixStream::connect(&self.path);
        }
        if self.thread.join().is_err() {
            log::error!("the control thread panicked");
        }
        let ours = std::fs::metadata(&self.path).is_ok_and(|m| Some(m.ino()) == self.inode);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds the socket at `path`, replacing a stale one (left by a daemon
/// that did not stop cleanly) but not a live one.
fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let open = |source| ControlError::Open {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(ControlError::InUse {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(open)?;
    }
    let listener = UnixListener::bind(path).map_err(open)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(open)?;
    Ok(listener)
}

/// The thread's state.
struct Control {
    setup: Setup,
    started: Instant,
    stop: Arc<AtomicBool>,
}

impl Control {
    fn run(&mut self, listener: &UnixListener) {
        for stream in listener.incoming() {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            match stream {
                Ok(stream) => self.serve(&stream),
                Err(e) => {
                    log::warn!("control socket: cannot accept: {e}");
                    // An error that repeats (out of descriptors) must not
                    // spin: the next try is a moment later.
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Reads one request from `stream`, answers it, closes.
    fn serve(&mut self, stream: &UnixStream) {
        let timeouts = stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)));
        if let Err(e) = timeouts {
            return log::warn!("control socket: {e}");
        }
        let answer = match read_request(stream) {
            Ok(request) if request.get("command").and_then(Value::as_str) == Some("handover") => {
                match self.hand_over(stream) {
                    // The server answers once it has stopped.
                    Ok(()) => return,
                    Err(error) => failure(&error),
                }
            }
            Ok(request) => self.carry_out(&request),
            Err(e) => failure(&format!("bad request: {e}")),
        };
        let mut writer = stream;
        let mut bytes = answer.to_string().into_bytes();
        bytes.push(b'\n');
        if let Err(e) = writer.write_all(&bytes) {
            log::debug!("control socket: cannot answer: {e}");
        }
    }

    /// A `chat-server --take-over` asks for everything: the connection
    /// goes to the server, which stops as for a restart and answers on it.
    fn hand_over(&mut self, stream: &UnixStream) -> Result<(), String> {
        if self.setup.shutdown.is_requested() {
            return Err("the server is stopping already".to_string());
        }
        let stream = stream.try_clone().map_err(|e| e.to_string())?;
        // The answer comes when the server has stopped: no timeout on it.
        let _ = stream.set_write_timeout(None);
        self.setup
            .handover
            .try_send(stream)
            .map_err(|_| "a handover is under way already".to_string())?;
        log::info!("control: handing over to a new process (chat-server --take-over)");
        self.setup.shutdown.hand_over();
        Ok(())
    }

    /// Carries out one request.
    fn carry_out(&mut self, request: &Value) -> Value {
        let command = request.get("command").and_then(Value::as_str).unwrap_or_default();
        let text = |field: &str| request.get(field).and_then(Value::as_str).map(str::to_string);
        let reason = text("reason")
            .map(|r| sanitize(&r).into_owned())
            .filter(|r| !r.trim().is_empty());
        log::info!("control: {command}");
        match command {
            "status" => self.status(),
            "who" => {
                let room = match text("room").map(|r| RoomName::new(&r)) {
                    Some(Ok(room)) => Some(room),
                    Some(Err(e)) => return failure(&format!("invalid room: {e}")),
                    None => None,
                };
                self.ask(AdminCommand::Who(room))
            }
            "rooms" => self.ask(AdminCommand::Rooms),
            "kick" => match Nick::new(&text("nick").unwrap_or_default()) {
                Ok(nick) => self.ask(AdminCommand::Kick { nick, reason }),
                Err(e) => failure(&format!("invalid nick: {e}")),
            },
            "ban" => self.ban(
                &text("mask").unwrap_or_default(),
                text("duration").as_deref(),
                reason,
            ),
            "unban" => self.unban(&text("mask").unwrap_or_default()),
            "bans" => self.bans(),
            "announce" => match text("text").map(|t| sanitize(&t).into_owned()) {
                Some(text) if !text.trim().is_empty() => self.ask(AdminCommand::Announce(text)),
                _ => failure("nothing to announce"),
            },
            "reload" => match &self.setup.reloader {
                Some(reloader) => match reloader.reload() {
                    Ok(fingerprint) => {
                        log::info!("control: reloaded the TLS certificate (SHA-256 {fingerprint})");
                        json!({ "ok": true, "fingerprint": fingerprint.to_string() })
                    }
                    Err(e) => {
                        log::error!("control: {e}; still serving the certificate loaded before");
                        failure(&format!("{e}; still serving the certificate loaded before"))
                    }
                },
                None => failure("nothing to reload: no TLS listener"),
            },
            "shutdown" => {
                log::info!("control: shutting down");
                self.setup.shutdown.shutdown();
                json!({ "ok": true })
            }
            other => failure(&format!(
                "unknown command: {}",
                other.chars().take(40).collect::<String>()
            )),
        }
    }

    fn status(&self) -> Value {
        let answer = self.ask_hub(AdminCommand::Status);
        match answer {
            Ok(AdminAnswer::Status {
                users,
                registering,
                rooms,
            }) => json!({
                "ok": true,
                "version": env!("CHAT_BUILD_VERSION"),
                "uptime_secs": self.started.elapsed().as_secs(),
                "users": users,
                "registering": registering,
                "rooms": rooms,
                "server_bans": self.setup.bans.list(system_clock()).len(),
                "listening": self.setup.listening,
            }),
            Ok(other) => failure(&format!("unexpected answer: {other:?}")),
            Err(e) => failure(&e),
        }
    }

    fn ban(&mut self, mask: &str, duration: Option<&str>, reason: Option<String>) -> Value {
        let mask = match address_mask(mask) {
            Ok(mask) => mask,
            Err(e) => return failure(&e.to_string()),
        };
        let duration = match duration.map(parse_duration).transpose() {
            Ok(duration) => duration,
            Err(e) => return failure(&e.to_string()),
        };
        let now = system_clock();
        let ban = ServerBan {
            mask: mask.clone(),
            at: now,
            until: duration.map(|d| bans::until(now, d)),
            reason: reason.clone(),
        };
        if let Err(e) = self.setup.bans.add(ban, now) {
            return failure(&e.to_string());
        }
        log::info!("control: banned {mask} from the server");
        let _ = self.setup.to_acceptor.send(Arc::new(self.setup.bans.clone()));
        match self.ask_hub(AdminCommand::Banned { mask, reason }) {
            Ok(AdminAnswer::Done(n)) => json!({ "ok": true, "disconnected": n }),
            Ok(other) => failure(&format!("unexpected answer: {other:?}")),
            Err(e) => failure(&e),
        }
    }

    fn unban(&mut self, mask: &str) -> Value {
        let mask = match address_mask(mask) {
            Ok(mask) => mask,
            Err(e) => return failure(&e.to_string()),
        };
        match self.setup.bans.remove(&mask, system_clock()) {
            Ok(true) => {
                log::info!("control: lifted the server ban on {mask}");
                let _ = self.setup.to_acceptor.send(Arc::new(self.setup.bans.clone()));
                json!({ "ok": true })
            }
            Ok(false) => failure(&format!("no server ban {mask}")),
            Err(e) => failure(&e.to_string()),
        }
    }

    fn bans(&self) -> Value {
        let bans: Vec<Value> = self
            .setup
            .bans
            .list(system_clock())
            .iter()
            .map(|ban| {
                json!({
                    "mask": ban.mask.as_str(),
                    "at": chat_protocol::history::format_time(ban.at),
                    "until": ban.until.map(chat_protocol::history::format_time),
                    "reason": ban.reason,
                })
            })
            .collect();
        json!({ "ok": true, "bans": bans })
    }

    /// Asks the hub and turns its answer into JSON.
    fn ask(&self, command: AdminCommand) -> Value {
        match self.ask_hub(command) {
            Ok(AdminAnswer::Done(n)) => json!({ "ok": true, "count": n }),
            Ok(AdminAnswer::Refused(why)) => failure(&why),
            Ok(AdminAnswer::Who(rows, more)) => {
                let users: Vec<Value> = rows
                    .iter()
                    .map(|u| {
                        let rooms: Vec<&str> = u.rooms.iter().map(RoomName::as_str).collect();
                        json!({
                            "nick": u.nick.as_str(),
                            "address": u.address.to_string(),
                            "user": u.user,
                            "rooms": rooms,
                            "idle_secs": u.idle_secs,
                            "away": u.away,
                        })
                    })
                    .collect();
                json!({ "ok": true, "users": users, "truncated": more })
            }
            Ok(AdminAnswer::Rooms(rows, more)) => {
                let rooms: Vec<Value> = rows
                    .iter()
                    .map(|r| {
                        json!({
                            "name": r.name.as_str(),
                            "members": r.members,
                            "moderated": r.settings.moderated,
                            "topic_locked": r.settings.topic_locked,
                            "key": r.settings.key.is_some(),
                            "hidden": r.settings.hidden,
                            "bans": r.bans,
                            "history_lines": r.history,
                        })
                    })
                    .collect();
                json!({ "ok": true, "rooms": rooms, "truncated": more })
            }
            Ok(other @ AdminAnswer::Status { .. }) => failure(&format!("unexpected answer: {other:?}")),
            Err(e) => failure(&e),
        }
    }

    /// Sends `command` to the hub and waits for its answer.
    fn ask_hub(&self, command: AdminCommand) -> Result<AdminAnswer, String> {
        let (answer, answers) = crossbeam_channel::bounded(1);
        let gone = "the server is shutting down".to_string();
        self.setup
            .to_hub
            .send_timeout(Inbound::Admin { command, answer }, IO_TIMEOUT)
            .map_err(|_| gone.clone())?;
        answers
            .recv_timeout(IO_TIMEOUT)
            .map_err(|_| "the server did not answer in time".to_string())
    }
}

/// A failed request's answer.
fn failure(error: &str) -> Value {
    json!({ "ok": false, "error": error })
}

/// One JSON request, on one line of at most [`MAX_REQUEST`] bytes.
fn read_request(stream: &UnixStream) -> Result<Value, String> {
    let mut line = Vec::new();
    let mut reader = BufReader::new(stream.take(MAX_REQUEST as u64 + 1));
    reader.read_until(b'\n', &mut line).map_err(|e| e.to_string())?;
    if line.len() > MAX_REQUEST {
        return Err(format!("longer than {MAX_REQUEST} bytes"));
    }
    serde_json::from_slice(&line).map_err(|e| e.to_string())
}
