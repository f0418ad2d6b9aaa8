//! The server under test: one already running (its address, optionally
//! its pid), or one this run starts and stops itself.
//!
//! When the generator starts chat-server itself it passes
//! [`CHAT_SERVER_ARGS`]: flood control off (`--rate 0`; the default of 20
//! lines/s per client would measure the limiter, not the server), no
//! per-address or per-network limit and no throttle on new connections
//! (every client comes from loopback, thousands at once), and a 16 MiB send
//! queue so that a receiver that falls behind
//! during a burst is measured as slow rather than disconnected; and
//! `--max-clients` with room for the run's clients and a few more (the
//! server refuses to start when its descriptor limit cannot hold them,
//! which says at once that the machine cannot run the scenario). A server
//! started by hand for `--addr` must be started the same way. `ncat` is
//! started as `ncat -l --chat --max-conns 100000 127.0.0.1 PORT` (its
//! default of 100 connections would end every larger scenario early).
//! tokio's chat example (not part of this project; the reader builds it
//! from tokio's repository) is started as `BIN 127.0.0.1:PORT`, its only
//! argument, without `RUST_LOG` so that it logs as it does by default.
//! Either way only loopback
//! addresses are accepted. Extra chat-server arguments (`--server-arg`,
//! such as `--threads 2`) come after [`CHAT_SERVER_ARGS`], so they may
//! also override them, and show in [`Target::command`].
//!
//! Over TLS (issue 15, `--tls`), chat-server is started with a plain and a
//! TLS listener (`--listen P --tls-listen Q --tls-cert C --tls-key K`, the
//! same rooms on both) and the run connects to the TLS one; ncat as `ncat
//! -l --chat --ssl --ssl-cert C --ssl-key K --max-conns 100000 127.0.0.1
//! PORT`. C and K are a certificate and key this run made
//! ([`crate::tls::SelfSigned`]) and trusts, removed when the server is
//! stopped.
//!
//! Over IRC (issue 16, `--protocol irc` or `mixed`), chat-server is started
//! with an IRC listener beside its line one (`--listen P --irc-listen Q
//! --server-name bench`, the same rooms on both; [`CHAT_SERVER_ARGS`] turn
//! flood control off for IRC connections as for line ones), and the run's
//! IRC clients connect to Q. ngircd is started as `ngircd -n -f CONFIG`
//! (in the foreground), CONFIG a file this run writes into a directory of
//! its own ([`ngircd_config`]: loopback and the run's port, no PAM, ident
//! or DNS lookups, no limit on connections or channels, and its flood
//! control lifted as far as [`NgircdFlood`] says), removed when ngircd is
//! stopped.
//!
//! Over WebSocket (issue 18, `--protocol web` or `mixed-web`), chat-server
//! is started with a web listener beside its line one (`--listen P
//! --web-listen 127.0.0.1:0`, the same rooms on both), and the port the
//! kernel gave the web listener is read from the server's own log line
//! `listening on 127.0.0.1:PORT (web)` ([`web_addr_in_log`]; the log is
//! `warn` but for that module's start-up lines), so no port is picked
//! before the server binds it. The run's WebSocket clients connect there.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::args::{NgircdFlood, Protocol};
use crate::engine::{Flavor, IrcSetup, Mix, Oper, WebSetup};
use crate::error::{Error, Result};
use crate::procfs;
use crate::tls::{Group, SelfSigned, TlsClient};

/// The options every benchmark run of chat-server needs.
pub const CHAT_SERVER_ARGS: [&str; 10] = [
    "--rate",
    "0",
    "--max-per-ip",
    "0",
    "--max-per-net",
    "0",
    "--connect-rate",
    "0",
    "--sendq",
    "16777216",
];

/// Places the started server keeps beyond the run's clients (probes,
/// a straggler from a previous step).
const SPARE_CLIENTS: u32 = 16;

/// How long a started server gets to accept its first connection.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The name chat-server and ngircd give themselves in IRC replies
/// (ngircd's must contain a dot).
const CHAT_SERVER_NAME: &str = "bench";
/// ngircd's server name.
const NGIRCD_NAME: &str = "bench.local";
/// The IRC operator in ngircd's configuration, which a run's senders take
/// up to set user mode `F` ([`NgircdFlood::Lifted`]).
const NGIRCD_OPER: &str = "bench";

/// The server a run measures.
#[derive(Debug)]
pub struct Target {
    /// Its kind.
    pub flavor: Flavor,
    /// Where the run connects (the TLS listener, for a TLS run).
    pub addr: SocketAddr,
    /// chat-server's plain listener beside its TLS one, when this run
    /// started it with both.
    pub plain_addr: Option<SocketAddr>,
    /// How the run's connections speak TLS to it, for a TLS run.
    pub tls: Option<TlsClient>,
    /// The certificate file a TLS run trusts (for worker processes, which
    /// trust it too).
    pub ca_file: Option<PathBuf>,
    /// Its process, when known.
    pub pid: Option<u32>,
    /// How it was started, for the report.
    pub command: String,
    /// The process, when this run started it.
    child: Option<Child>,
    /// Where its stderr goes, when this run started it.
    log: Option<PathBuf>,
    /// The certificate and key this run made for it; the files go when it
    /// is dropped, after the server is stopped.
    cert: Option<SelfSigned>,
    /// What the run's connections speak.
    pub protocol: Protocol,
    /// Where its IRC clients connect (chat-server's IRC listener, ngircd's
    /// port), for an IRC or mixed run.
    pub irc_addr: Option<SocketAddr>,
    /// Where its WebSocket clients connect (chat-server's web listener),
    /// for a WebSocket or mixed-web run.
    pub web_addr: Option<SocketAddr>,
    /// The IRC operator its senders take up (ngircd with its flood control
    /// lifted), `below` not yet set: the run knows its senders.
    pub oper: Option<Oper>,
    /// The configuration file this run wrote for it (ngircd), for the
    /// report.
    pub config_text: Option<String>,
    /// The directory of that file, removed when the server is stopped.
    config_dir: Option<PathBuf>,
    /// The other instances of a cluster this run started (issue 17;
    /// [`crate::cluster`]), this target being the first; stopped after it.
    pub(crate) peers: Vec<Target>,
    /// The Redis of that cluster; stopped last, after every instance.
    pub(crate) redis: Option<crate::cluster::Redis>,
}

impl Target {
    /// A server that is already running at `addr`.
    ///
    /// # Errors
    /// When `addr` is not a loopback address.
    pub fn attach(flavor: Flavor, addr: SocketAddr, pid: Option<u32>) -> Result<Target> {
        if !addr.ip().is_loopback() {
            return Err(Error::msg(format!(
                "{addr} is not a loopback address; chat-bench only loads loopback"
            )));
        }
        Ok(Target {
            flavor,
            addr,
            plain_addr: None,
            tls: None,
            ca_file: None,
            pid,
            command: format!("already running at {addr}"),
            child: None,
            log: None,
            cert: None,
            protocol: Protocol::Line,
            irc_addr: None,
            web_addr: None,
            oper: None,
            config_text: None,
            config_dir: None,
            peers: Vec::new(),
            redis: None,
        })
    }

    /// The run speaks `protocol` to it, its IRC clients to `irc_addr` (a
    /// server started by someone else).
    pub fn with_protocol(mut self, protocol: Protocol, irc_addr: Option<SocketAddr>) -> Target {
        self.protocol = protocol;
        self.irc_addr = irc_addr;
        self
    }

    /// Its WebSocket clients connect to `web_addr` (a server started by
    /// someone else).
    pub fn with_web(mut self, web_addr: Option<SocketAddr>) -> Target {
        self.web_addr = web_addr;
        self
    }

    /// Which of the run's connections speak WebSocket, and to where: none
    /// unless the run speaks it.
    pub fn web_setup(&self) -> Option<WebSetup> {
        let mix = match self.protocol {
            Protocol::Web => Mix::All,
            Protocol::MixedWeb => Mix::EveryOther,
            Protocol::Line | Protocol::Irc | Protocol::Mixed => return None,
        };
        Some(WebSetup {
            dest: self.web_addr.unwrap_or(self.addr),
            mix,
        })
    }

    /// Which of the run's connections speak IRC, and to where: none
    /// unless the run speaks it.
    pub fn irc_setup(&self) -> Option<IrcSetup> {
        let mix = match self.protocol {
            Protocol::Line | Protocol::Web | Protocol::MixedWeb => return None,
            Protocol::Irc => Mix::All,
            Protocol::Mixed => Mix::EveryOther,
        };
        Some(IrcSetup {
            dest: self.irc_addr.unwrap_or(self.addr),
            mix,
            oper: self.oper.clone(),
        })
    }

    /// `tls` or `tcp`: what the run's connections speak to it.
    pub fn transport(&self) -> &'static str {
        if self.tls.is_some() {
            "tls"
        } else {
            "tcp"
        }
    }

    /// The run speaks TLS to it, trusting `ca_file` (a server started by
    /// someone else, `--ca`).
    pub fn with_tls(mut self, tls: TlsClient, ca_file: PathBuf) -> Target {
        self.tls = Some(tls);
        self.ca_file = Some(ca_file);
        self
    }

    /// Starts `bin` (chat-server) on a free loopback port with
    /// [`CHAT_SERVER_ARGS`] and room for `clients`, then `extra`
    /// (`--server-arg`), and waits until it accepts connections.
    ///
    /// # Errors
    /// When it cannot be started or does not accept in time.
    pub fn spawn_chat_server(bin: &Path, clients: u32, extra: &[String]) -> Result<Target> {
        let addr = free_loopback_port()?;
        let mut cmd = Command::new(bin);
        cmd.arg("--listen").arg(addr.to_string());
        Self::chat_server_options(&mut cmd, clients, extra);
        Self::spawn(Flavor::ChatServer, cmd, addr)
    }

    /// As [`Target::spawn_chat_server`], with a TLS listener beside the
    /// plain one, presenting a certificate made now; the run connects to
    /// the TLS listener and trusts that certificate, checked for `name`,
    /// offering `group` first.
    ///
    /// # Errors
    /// When the certificate cannot be made, or the server cannot be
    /// started or does not accept in time.
    pub fn spawn_chat_server_tls(
        bin: &Path,
        clients: u32,
        extra: &[String],
        name: &str,
        group: Group,
    ) -> Result<Target> {
        let cert = SelfSigned::generate()?;
        let tls = TlsClient::trusting(std::slice::from_ref(&cert.der), name, group)?;
        let plain = free_loopback_port()?;
        let addr = free_loopback_port()?;
        let mut cmd = Command::new(bin);
        cmd.arg("--listen")
            .arg(plain.to_string())
            .arg("--tls-listen")
            .arg(addr.to_string())
            .arg("--tls-cert")
            .arg(&cert.cert)
            .arg("--tls-key")
            .arg(&cert.key);
        Self::chat_server_options(&mut cmd, clients, extra);
        let mut target = Self::spawn(Flavor::ChatServer, cmd, addr)?;
        target.plain_addr = Some(plain);
        target.ca_file = Some(cert.cert.clone());
        target.tls = Some(tls);
        target.cert = Some(cert);
        Ok(target)
    }

    /// As [`Target::spawn_chat_server`], with an IRC listener beside the
    /// line one (`--irc-listen`, `--server-name bench`); the run's IRC
    /// clients connect to it, and with [`Protocol::Mixed`] every other
    /// client to the line listener.
    ///
    /// # Errors
    /// When it cannot be started or does not accept in time.
    pub fn spawn_chat_server_irc(
        bin: &Path,
        clients: u32,
        extra: &[String],
        protocol: Protocol,
    ) -> Result<Target> {
        let addr = free_loopback_port()?;
        let irc = free_loopback_port()?;
        let mut cmd = Command::new(bin);
        cmd.arg("--listen")
            .arg(addr.to_string())
            .arg("--irc-listen")
            .arg(irc.to_string())
            .arg("--server-name")
            .arg(CHAT_SERVER_NAME);
        Self::chat_server_options(&mut cmd, clients, extra);
        let mut target = Self::spawn(Flavor::ChatServer, cmd, addr)?;
        // The line listener answered; the IRC one is bound in the same
        // start, but look all the same.
        target.wait_listening(irc)?;
        target.protocol = protocol;
        target.irc_addr = Some(irc);
        Ok(target)
    }

    /// As [`Target::spawn_chat_server`], with a web listener beside the
    /// line one (`--web-listen 127.0.0.1:0`) whose port is read from the
    /// server's log; the run's WebSocket clients connect to it, and with
    /// [`Protocol::MixedWeb`] every other client to the line listener.
    ///
    /// # Errors
    /// When it cannot be started, does not accept in time, or does not say
    /// where its web listener is.
    pub fn spawn_chat_server_web(
        bin: &Path,
        clients: u32,
        extra: &[String],
        protocol: Protocol,
    ) -> Result<Target> {
        let addr = free_loopback_port()?;
        let mut cmd = Command::new(bin);
        cmd.arg("--listen")
            .arg(addr.to_string())
            .arg("--web-listen")
            .arg("127.0.0.1:0");
        Self::chat_server_options(&mut cmd, clients, extra);
        // Warnings, and the start-up lines that say where it listens.
        cmd.env("RUST_LOG", "warn,chat_server::server=info");
        let mut target = Self::spawn(Flavor::ChatServer, cmd, addr)?;
        let web = target.wait_for_web_addr()?;
        target.protocol = protocol;
        target.web_addr = Some(web);
        Ok(target)
    }

    /// Polls the started server's log until it says where its web listener
    /// is (or the process exits, or time is up).
    fn wait_for_web_addr(&mut self) -> Result<SocketAddr> {
        let deadline = Instant::now() + START_TIMEOUT;
        // At most START_TIMEOUT / 20 ms turns.
        while Instant::now() < deadline {
            let text = self.log.as_ref().and_then(|p| fs::read_to_string(p).ok());
            if let Some(addr) = text.as_deref().and_then(web_addr_in_log) {
                if !addr.ip().is_loopback() {
                    return Err(Error::msg(format!(
                        "the web listener is on {addr}, not loopback; chat-bench only loads loopback"
                    )));
                }
                return Ok(addr);
            }
            if !self.is_alive() {
                return Err(Error::msg(format!(
                    "{} exited at start: {}",
                    self.command,
                    self.log_tail()
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Err(Error::msg(format!(
            "{} did not log its web listener's address (listening on ... (web)) in time: {}",
            self.command,
            self.log_tail()
        )))
    }

    /// Starts `bin` (ngircd) as `bin -n -f CONFIG` on a free loopback port,
    /// CONFIG written now ([`ngircd_config`]) into a directory of its own,
    /// and waits until it accepts connections. Every connection of the run
    /// speaks IRC to it.
    ///
    /// # Errors
    /// When the configuration cannot be written, or ngircd cannot be
    /// started or does not accept in time.
    pub fn spawn_ngircd(bin: &Path, flood: NgircdFlood) -> Result<Target> {
        let addr = free_loopback_port()?;
        let dir = std::env::temp_dir().join(format!(
            "chat-bench-ngircd-{}-{}",
            std::process::id(),
            addr.port()
        ));
        let include = dir.join("conf.d");
        fs::create_dir_all(&include)
            .map_err(|e| Error::msg(format!("cannot make {}: {e}", include.display())))?;
        let oper = (flood == NgircdFlood::Lifted).then(|| Oper {
            name: NGIRCD_OPER.to_string(),
            password: oper_password(),
            below: 0,
        });
        let text = ngircd_config(addr.port(), flood, oper.as_ref(), &include);
        let file = dir.join("ngircd.conf");
        let written = fs::write(&file, &text);
        if let Err(e) = written {
            let _ = fs::remove_dir_all(&dir);
            return Err(Error::msg(format!("cannot write {}: {e}", file.display())));
        }
        let mut cmd = Command::new(bin);
        cmd.arg("-n").arg("-f").arg(&file);
        let mut target = match Self::spawn(Flavor::Ngircd, cmd, addr) {
            Ok(target) => target,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        target.protocol = Protocol::Irc;
        target.irc_addr = Some(addr);
        target.oper = oper;
        // The password is the run's own and good only while it lasts; the
        // report shows the file without it.
        target.config_text = Some(match &target.oper {
            Some(o) => text.replace(&o.password, "(made for the run)"),
            None => text,
        });
        target.config_dir = Some(dir);
        Ok(target)
    }

    /// The benchmark's options for chat-server, room for `clients`, then
    /// `extra`.
    fn chat_server_options(cmd: &mut Command, clients: u32, extra: &[String]) {
        cmd.args(CHAT_SERVER_ARGS)
            .arg("--max-clients")
            .arg(clients.saturating_add(SPARE_CLIENTS).to_string())
            .args(extra);
        // Warnings only: a per-connection info line for 20,000 clients is
        // noise, and costs the server time we would be measuring.
        cmd.env("RUST_LOG", "warn");
    }

    /// Starts `ncat -l --chat 127.0.0.1 PORT` on a free port and waits
    /// until it accepts connections.
    ///
    /// # Errors
    /// When it cannot be started or does not accept in time.
    pub fn spawn_ncat(bin: &Path) -> Result<Target> {
        let addr = free_loopback_port()?;
        let mut cmd = Command::new(bin);
        Self::ncat_options(&mut cmd, addr);
        Self::spawn(Flavor::Ncat, cmd, addr)
    }

    /// As [`Target::spawn_ncat`], over TLS (`--ssl`), presenting a
    /// certificate made now, which the run trusts, checked for `name`
    /// (offering `group` first).
    ///
    /// # Errors
    /// When the certificate cannot be made, or ncat cannot be started or
    /// does not accept in time.
    pub fn spawn_ncat_tls(bin: &Path, name: &str, group: Group) -> Result<Target> {
        let cert = SelfSigned::generate()?;
        let tls = TlsClient::trusting(std::slice::from_ref(&cert.der), name, group)?;
        let addr = free_loopback_port()?;
        let mut cmd = Command::new(bin);
        cmd.arg("--ssl")
            .arg("--ssl-cert")
            .arg(&cert.cert)
            .arg("--ssl-key")
            .arg(&cert.key);
        Self::ncat_options(&mut cmd, addr);
        let mut target = Self::spawn(Flavor::Ncat, cmd, addr)?;
        target.ca_file = Some(cert.cert.clone());
        target.tls = Some(tls);
        target.cert = Some(cert);
        Ok(target)
    }

    /// ncat's listening options, after any of its own given before.
    fn ncat_options(cmd: &mut Command, addr: SocketAddr) {
        // ncat accepts 100 connections by default; lift that so the
        // scenarios measure ncat rather than its default.
        cmd.args(["-l", "--chat", "--max-conns", "100000"])
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string());
    }

    /// Starts tokio's chat example `bin` as `bin 127.0.0.1:PORT` on a free
    /// port and waits until it accepts connections. It has no options: no
    /// connection limit, no flood control, unbounded per-client queues.
    ///
    /// # Errors
    /// When it cannot be started or does not accept in time.
    pub fn spawn_tokio_chat(bin: &Path) -> Result<Target> {
        let addr = free_loopback_port()?;
        let mut cmd = Command::new(bin);
        cmd.arg(addr.to_string());
        // Its log filter is `RUST_LOG` plus `chat=info`: a RUST_LOG left in
        // the caller's environment (debug, say) would make it log every
        // connection and cost it time we would be measuring. Its log goes
        // to stdout, which is discarded; start-up errors go to stderr.
        cmd.env_remove("RUST_LOG");
        Self::spawn(Flavor::TokioChat, cmd, addr)
    }

    fn spawn(flavor: Flavor, mut cmd: Command, addr: SocketAddr) -> Result<Target> {
        let command = format!("{cmd:?}").replace('"', "");
        let log = std::env::temp_dir().join(format!("chat-bench-{}-{}.log", std::process::id(), addr.port()));
        let stderr = File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| Error::msg(format!("cannot start {command}: {e}")))?;
        let mut target = Target {
            flavor,
            addr,
            plain_addr: None,
            tls: None,
            ca_file: None,
            pid: Some(child.id()),
            command,
            child: Some(child),
            log: Some(log),
            cert: None,
            protocol: Protocol::Line,
            irc_addr: None,
            web_addr: None,
            oper: None,
            config_text: None,
            config_dir: None,
            peers: Vec::new(),
            redis: None,
        };
        target.wait_ready()?;
        Ok(target)
    }

    /// Polls until something listens on the port (or the process exits,
    /// or time is up), looking in `/proc/net/tcp` rather than connecting:
    /// a probe connection that is gone (reset) when the next client
    /// arrives makes ncat quit ("getpeername for sd 4 failed: Transport
    /// endpoint is not connected"), since it lists every connected peer to
    /// each newcomer. Only without `/proc` is a probe connection used.
    fn wait_ready(&mut self) -> Result<()> {
        self.wait_listening(self.addr)
    }

    /// [`Target::wait_ready`] for `addr`, one of the server's listeners.
    fn wait_listening(&mut self, addr: SocketAddr) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        // At most START_TIMEOUT / 20 ms turns.
        while Instant::now() < deadline {
            if !self.is_alive() {
                return Err(Error::msg(format!(
                    "{} exited at start: {}",
                    self.command,
                    self.log_tail()
                )));
            }
            let ready = match procfs::is_listening(addr.port()) {
                Some(listening) => listening,
                None => TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
            };
            if ready {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(20));
        }
        Err(Error::msg(format!(
            "{} did not accept connections in time: {}",
            self.command,
            self.log_tail()
        )))
    }

    /// The last lines of the started server's stderr.
    pub fn log_tail(&self) -> String {
        let Some(text) = self.log.as_ref().and_then(|p| fs::read_to_string(p).ok()) else {
            return String::new();
        };
        let lines: Vec<&str> = text.lines().collect();
        lines
            .iter()
            .skip(lines.len().saturating_sub(5))
            .copied()
            .collect::<Vec<_>>()
            .join(" | ")
    }

    /// True while the server process runs (always true when its pid is not
    /// known).
    pub fn is_alive(&mut self) -> bool {
        if let Some(child) = &mut self.child {
            return matches!(child.try_wait(), Ok(None));
        }
        self.pid.is_none_or(procfs::is_alive)
    }

    /// The server's resident memory in KiB, when its pid is known: of
    /// every instance together, for a cluster (Redis's not counted).
    pub fn rss_kib(&self) -> Option<u64> {
        let own = self.pid.and_then(|pid| procfs::vm_rss_kib(pid).ok())?;
        Some(
            self.peers
                .iter()
                .filter_map(Target::rss_kib)
                .fold(own, u64::saturating_add),
        )
    }

    /// CPU ticks of each server thread, when its pid is known. For a
    /// cluster, every instance's threads, named `i1 hub`, `i2 hub`, ...,
    /// and Redis as a whole, named `redis-server` (from `/proc/PID/stat`).
    pub fn thread_ticks(&self) -> Vec<(String, u64)> {
        let own = self.pid.map(procfs::thread_ticks).unwrap_or_default();
        let Some(redis) = &self.redis else {
            return own;
        };
        let mut all: Vec<(String, u64)> = Vec::new();
        for (i, instance) in std::iter::once(own)
            .chain(self.peers.iter().map(Target::thread_ticks))
            .enumerate()
        {
            all.extend(
                instance
                    .into_iter()
                    .map(|(name, ticks)| (format!("i{} {name}", i + 1), ticks)),
            );
        }
        all.push(("redis-server".to_string(), procfs::process_ticks(redis.pid)));
        all
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(log) = &self.log {
            let _ = fs::remove_file(log);
        }
        if let Some(dir) = &self.config_dir {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// ngircd's configuration for one run on 127.0.0.1:`port`: the run's
/// clients all come from one address, thousands at once, and are measured
/// rather than defended against, so
///
/// - `[Limits]`: no limit on connections (`MaxConnections`,
///   `MaxConnectionsIP`, default 5 per address) or on channels per user
///   (`MaxJoins`); nicks up to 30 characters (the run's are `b<id>`);
///   with `flood` other than [`NgircdFlood::Default`], `MaxPenaltyTime =
///   0`: the penalty delays ngircd adds for commands and for a client over
///   its command or byte budget (a second and more each) are never
///   applied;
/// - `[Options]`: no PAM (Debian's build asks PAM for every client by
///   default), no ident or DNS lookups (each a subprocess per client, and
///   nothing to look up on loopback), and an empty `IncludeDir` of the
///   run's own, so no system-wide snippet changes the run;
/// - `[Operator]`, with `oper` ([`NgircdFlood::Lifted`]): the operator the
///   run's senders take up to set user mode `F`, which lifts ngircd's
///   limit of 3 commands per client per turn of its loop to 10 and exempts
///   the client from throttling;
/// - `MotdPhrase`, so registration ends with a MOTD (376), as on a real
///   server; the administrative lines only keep ngircd from warning.
pub fn ngircd_config(port: u16, flood: NgircdFlood, oper: Option<&Oper>, include_dir: &Path) -> String {
    let mut text = format!(
        "# Written by chat-bench for one benchmark run (flood control: {}); removed when it ends.\n\
         [Global]\n\
         Name = {NGIRCD_NAME}\n\
         Info = chat-bench run\n\
         AdminInfo1 = chat-bench\n\
         AdminInfo2 = loopback benchmark\n\
         AdminEMail = nobody@{NGIRCD_NAME}\n\
         Listen = 127.0.0.1\n\
         Ports = {port}\n\
         MotdPhrase = chat-bench\n\
         [Limits]\n\
         MaxConnections = 0\n\
         MaxConnectionsIP = 0\n\
         MaxJoins = 0\n\
         MaxNickLength = 30\n",
        flood.name()
    );
    if flood != NgircdFlood::Default {
        text.push_str("MaxPenaltyTime = 0\n");
    }
    text.push_str(&format!(
        "[Options]\n\
         PAM = no\n\
         Ident = no\n\
         DNS = no\n\
         IncludeDir = {}\n",
        include_dir.display()
    ));
    if let Some(oper) = oper {
        text.push_str(&format!(
            "[Operator]\n\
             Name = {}\n\
             Password = {}\n",
            oper.name, oper.password
        ));
    }
    text
}

/// A password for the run's ngircd operator: it guards a loopback server
/// for the minute the run lasts, so the clock and the pid make it.
fn oper_password() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("pw{:x}{:x}", std::process::id(), nanos)
}

/// The web listener's address in chat-server's log: the first line
/// `... listening on ADDR (web)`.
pub fn web_addr_in_log(log: &str) -> Option<SocketAddr> {
    log.lines().find_map(|line| {
        let (_, rest) = line.split_once("listening on ")?;
        rest.trim_end().strip_suffix(" (web)")?.parse().ok()
    })
}

/// A loopback port that was free a moment ago (bound to port 0, then
/// released for the server to take).
fn free_loopback_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ngircd_configuration_lifts_what_the_flood_setting_says() {
        let oper = Oper {
            name: "bench".to_string(),
            password: "secret".to_string(),
            below: 0,
        };
        let lifted = ngircd_config(
            16667,
            NgircdFlood::Lifted,
            Some(&oper),
            Path::new("/tmp/x/conf.d"),
        );
        for line in [
            "Listen = 127.0.0.1\n",
            "Ports = 16667\n",
            "MaxConnectionsIP = 0\n",
            "MaxJoins = 0\n",
            "MaxPenaltyTime = 0\n",
            "PAM = no\n",
            "Ident = no\n",
            "DNS = no\n",
            "IncludeDir = /tmp/x/conf.d\n",
            "[Operator]\nName = bench\nPassword = secret\n",
        ] {
            assert!(lifted.contains(line), "{line:?} missing from:\n{lifted}");
        }
        let no_penalty = ngircd_config(1, NgircdFlood::NoPenalty, None, Path::new("/d"));
        assert!(no_penalty.contains("MaxPenaltyTime = 0\n"), "{no_penalty}");
        assert!(!no_penalty.contains("[Operator]"), "{no_penalty}");
        let default = ngircd_config(1, NgircdFlood::Default, None, Path::new("/d"));
        assert!(!default.contains("MaxPenaltyTime"), "{default}");
        assert!(default.contains("MaxConnectionsIP = 0\n"), "{default}");
    }

    #[test]
    fn the_web_listener_is_found_in_the_servers_log() {
        let log = "[2026-12-07T10:00:00Z INFO  chat_server::server] listening on 127.0.0.1:40001\n                   [2026-12-07T10:00:00Z INFO  chat_server::server] listening on 127.0.0.1:40002 (IRC)\n                   [2026-12-07T10:00:00Z INFO  chat_server::server] listening on 127.0.0.1:40003 (web)\n";
        assert_eq!(web_addr_in_log(log), Some("127.0.0.1:40003".parse().unwrap()));
        assert_eq!(
            web_addr_in_log("listening on [::1]:8080 (web)\r\n"),
            Some("[::1]:8080".parse().unwrap())
        );
        assert_eq!(web_addr_in_log(&log.replace("(web)", "(web TLS)")), None);
        assert_eq!(web_addr_in_log("listening on nowhere (web)"), None);
        assert_eq!(web_addr_in_log(""), None);
    }

    #[test]
    fn an_attached_server_speaks_the_protocol_it_was_given() {
        let line: SocketAddr = "127.0.0.1:7878".parse().unwrap();
        let irc: SocketAddr = "127.0.0.1:6667".parse().unwrap();
        let target = Target::attach(Flavor::ChatServer, line, None).unwrap();
        assert!(target.irc_setup().is_none());
        let mixed = target.with_protocol(Protocol::Mixed, Some(irc));
        let setup = mixed.irc_setup().unwrap();
        assert_eq!((setup.dest, setup.mix), (irc, Mix::EveryOther));
        let all = Target::attach(Flavor::Ngircd, irc, None)
            .unwrap()
            .with_protocol(Protocol::Irc, None);
        let setup = all.irc_setup().unwrap();
        assert_eq!((setup.dest, setup.mix, setup.oper), (irc, Mix::All, None));
        assert!(all.web_setup().is_none());

        let web: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let mixed_web = Target::attach(Flavor::ChatServer, line, None)
            .unwrap()
            .with_protocol(Protocol::MixedWeb, None)
            .with_web(Some(web));
        assert!(mixed_web.irc_setup().is_none());
        let setup = mixed_web.web_setup().unwrap();
        assert_eq!((setup.dest, setup.mix), (web, Mix::EveryOther));
        let all_web = Target::attach(Flavor::ChatServer, web, None)
            .unwrap()
            .with_protocol(Protocol::Web, None);
        let setup = all_web.web_setup().unwrap();
        assert_eq!((setup.dest, setup.mix), (web, Mix::All));
    }
}
