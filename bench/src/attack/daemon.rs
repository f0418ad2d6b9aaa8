//! The daemon under attack: a real `chat-server` process that each attack
//! starts on `127.0.0.1:0`, watches through `/proc`, and stops by its pid.
//!
//! It is started the way the integration tests start it (`tests/src/lib.rs`,
//! `Daemon`): a port of its own choosing, read back from its log line
//! `listening on ADDR`, and an environment without `RUST_LOG`, `CHAT_*` or
//! systemd's variables, so that nothing in the caller's shell changes what
//! is measured. Its log (stderr) goes to a file: the log attacks count its
//! lines, and a start-up failure is reported with its last lines.
//!
//! Options come from two places: the few an attack's setup needs
//! (`--rate 0`, `--max-clients N`, ...) and the user's `--server-arg`s. A
//! flag the user gives wins over the attack's, since chat-server refuses an
//! option given twice; that is how a fixed daemon's new options (say,
//! a connection throttle) are switched off for an attack that is not
//! about them.
//!
//! An attack may take the daemon down; that is a finding, not an error.
//! [`Daemon::end`] says how it ended (died on its own, exited after
//! SIGTERM, or killed after the bound), and `Drop` kills and reaps it
//! whatever happened, so no run leaves a daemon behind.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::procfs;

/// How long a started daemon gets to log its listening address.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a wait on the daemon (its log at start, its exit) looks again.
const POLL: Duration = Duration::from_millis(10);

/// How long a metrics scrape may take, connect to last byte.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// Most bytes of a metrics response read; the exposition is a few KiB.
const MAX_SCRAPE: u64 = 4 << 20;

/// The variables through which systemd talks to a service it started: a
/// daemon under attack must not answer the real service manager, nor log
/// in the journal's format.
const SYSTEMD_VARIABLES: [&str; 7] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "JOURNAL_STREAM",
];

/// What an attack asks of the daemon it starts.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    /// The `chat-server` binary.
    pub bin: PathBuf,
    /// Options the attack's setup needs, as (flag, value); each is dropped
    /// when `user_args` gives the same flag.
    pub needs: Vec<(&'static str, String)>,
    /// The user's `--server-arg`s, passed through after `needs`.
    pub user_args: Vec<String>,
    /// Start the metrics endpoint on a free loopback port and scrape it.
    pub metrics: bool,
    /// Where to copy the daemon's log when the attack ends, if anywhere.
    pub keep_log: Option<PathBuf>,
}

impl DaemonSpec {
    /// The arguments after `--listen 127.0.0.1:0`, the user's last.
    pub fn args(&self) -> Vec<String> {
        let given = |flag: &str| {
            self.user_args
                .iter()
                .any(|a| a == flag || a.strip_prefix(flag).is_some_and(|rest| rest.starts_with('=')))
        };
        let mut args = Vec::new();
        if self.metrics && !given("--metrics-listen") {
            args.extend(["--metrics-listen".to_string(), "127.0.0.1:0".to_string()]);
        }
        for (flag, value) in &self.needs {
            if !given(flag) {
                args.extend([(*flag).to_string(), value.clone()]);
            }
        }
        args.extend(self.user_args.iter().cloned());
        args
    }
}

/// How the daemon's process ended.
#[derive(Debug, Clone, Copy)]
struct Exit {
    /// Its status.
    status: ExitStatus,
    /// When it was seen to have ended.
    at: Instant,
}

/// Byte counters of the daemon's metrics endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// `chat_received_bytes_total`: bytes read from client connections.
    pub received: u64,
    /// `chat_sent_bytes_total`: bytes written to client connections.
    pub sent: u64,
    /// `chat_lines_received_total`: lines read from clients and handed on
    /// (blank lines not counted).
    pub lines: u64,
}

/// Counts over the daemon's log so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogCount {
    /// Lines written.
    pub lines: u64,
    /// Bytes of the longest line, without its `\n`.
    pub longest: u64,
    /// Per needle given, lines containing it.
    pub matching: Vec<u64>,
}

/// A running (or ended) `chat-server` started by an attack.
#[derive(Debug)]
pub struct Daemon {
    /// The process.
    child: Child,
    /// Its pid, for `/proc` and for `kill`.
    pub pid: u32,
    /// Where it listens for chat clients, from its log.
    pub addr: SocketAddr,
    /// Where its metrics endpoint listens, when asked for.
    pub metrics: Option<SocketAddr>,
    /// The whole command line, for the report.
    pub command: String,
    /// Its stderr.
    log: PathBuf,
    /// Where to copy the log at the end.
    keep_log: Option<PathBuf>,
    /// When it was started.
    started: Instant,
    /// How it ended, once seen.
    exit: Option<Exit>,
    /// When this tool sent it SIGTERM, if it did.
    sigterm_at: Option<Instant>,
    /// It was SIGKILLed by this tool.
    killed: bool,
}

impl Daemon {
    /// Starts the daemon on `127.0.0.1:0` and waits until it logs where it
    /// listens (and where its metrics are, when asked for). `name` names
    /// the log file.
    ///
    /// # Errors
    /// When it cannot be started, exits at start (with its log's last
    /// lines), or logs no address within 10 s.
    pub fn start(spec: &DaemonSpec, name: &str) -> Result<Daemon> {
        let log = std::env::temp_dir().join(format!("chat-attack-{}-{name}.log", std::process::id()));
        let stderr = File::create(&log).map_err(|e| Error::msg(format!("{}: {e}", log.display())))?;
        let mut cmd = Command::new(&spec.bin);
        cmd.args(["--listen", "127.0.0.1:0"]).args(spec.args());
        for (key, _) in std::env::vars_os() {
            let ours = key
                .to_str()
                .is_some_and(|k| k == "RUST_LOG" || k.starts_with("CHAT_") || SYSTEMD_VARIABLES.contains(&k));
            if ours {
                cmd.env_remove(&key);
            }
        }
        let command = format!("{cmd:?}").replace('"', "");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| Error::msg(format!("cannot start {}: {e}", spec.bin.display())))?;
        let mut daemon = Daemon {
            pid: child.id(),
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics: None,
            command,
            log,
            keep_log: spec.keep_log.clone(),
            started: Instant::now(),
            exit: None,
            sigterm_at: None,
            killed: false,
        };
        daemon.await_addresses(spec.metrics)?;
        Ok(daemon)
    }

    /// Reads the log until the listening address (and the metrics address,
    /// when `metrics`) are in it.
    fn await_addresses(&mut self, metrics: bool) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        // At most START_TIMEOUT / POLL turns.
        loop {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            let listen = address_after(&text, "listening on ", " ");
            let metrics_at = address_after(&text, "serving metrics on http://", "/");
            if let Some(addr) = listen {
                if !metrics || metrics_at.is_some() {
                    self.addr = addr;
                    self.metrics = metrics_at;
                    return Ok(());
                }
            }
            if !self.is_running() {
                return Err(Error::msg(format!(
                    "{} exited at start ({}): {}",
                    self.command,
                    self.exit_text(),
                    self.log_tail()
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error::msg(format!(
                    "{} logged no listening address within {} s: {}",
                    self.command,
                    START_TIMEOUT.as_secs(),
                    self.log_tail()
                )));
            }
            thread::sleep(POLL);
        }
    }

    /// True while the process runs; records how it ended once it has.
    pub fn is_running(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.exit = Some(Exit {
                    status,
                    at: Instant::now(),
                });
                false
            }
            // Not our child any more, or not waitable: treat as gone.
            Err(_) => false,
        }
    }

    /// When the daemon died without being told to stop, a sentence saying
    /// how and when ("exited with signal 6 (SIGABRT) 12.3 s after start").
    pub fn death(&mut self) -> Option<String> {
        if self.is_running() || self.sigterm_at.is_some() || self.killed {
            return None;
        }
        let exit = self.exit?;
        Some(format!(
            "daemon exited with {} {:.1} s after start",
            describe(exit.status),
            exit.at.duration_since(self.started).as_secs_f64()
        ))
    }

    /// The exit status as text, or "running".
    fn exit_text(&self) -> String {
        self.exit
            .map_or_else(|| "running".to_string(), |e| describe(e.status))
    }

    /// Resident memory in KiB, while it runs.
    pub fn rss_kib(&mut self) -> Option<u64> {
        self.is_running()
            .then(|| procfs::vm_rss_kib(self.pid).ok())
            .flatten()
    }

    /// CPU time used so far (user + system, all threads), in seconds,
    /// while it runs.
    pub fn cpu_s(&mut self) -> Option<f64> {
        self.is_running()
            .then(|| procfs::process_ticks(self.pid) as f64 / procfs::TICKS_PER_SEC)
    }

    /// Open descriptors, while it runs.
    pub fn fds(&mut self) -> Option<u64> {
        self.is_running().then(|| procfs::fd_count(self.pid)).flatten()
    }

    /// The byte counters of its metrics endpoint, when it was started with
    /// one and answers.
    pub fn traffic(&mut self) -> Option<Traffic> {
        let addr = self.metrics?;
        if !self.is_running() {
            return None;
        }
        let text = scrape(addr).ok()?;
        Some(Traffic {
            received: sample(&text, "chat_received_bytes_total")?,
            sent: sample(&text, "chat_sent_bytes_total")?,
            lines: sample(&text, "chat_lines_received_total")?,
        })
    }

    /// Sends SIGTERM (with the `kill` command: the workspace denies unsafe
    /// code, so no `libc::kill`) and returns when it was sent.
    ///
    /// # Errors
    /// When the daemon has already ended, or `kill` fails.
    pub fn sigterm(&mut self) -> Result<Instant> {
        if !self.is_running() {
            return Err(Error::msg(format!(
                "the daemon had already ended ({})",
                self.exit_text()
            )));
        }
        let status = Command::new("kill")
            .args(["-s", "TERM", &self.pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| Error::msg(format!("cannot run kill: {e}")))?;
        if !status.success() && self.is_running() {
            return Err(Error::msg(format!("kill -s TERM {} failed: {status}", self.pid)));
        }
        let at = Instant::now();
        self.sigterm_at = Some(at);
        Ok(at)
    }

    /// Waits up to `bound` for the process to end; returns when it did.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<Instant> {
        let deadline = Instant::now() + bound;
        // At most bound / POLL turns.
        while self.is_running() && Instant::now() < deadline {
            thread::sleep(POLL);
        }
        self.exit.map(|e| e.at)
    }

    /// SIGKILLs the process and reaps it.
    pub fn kill(&mut self) {
        if self.is_running() {
            self.killed = true;
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.exit = Some(Exit {
                    status,
                    at: Instant::now(),
                });
            }
        }
    }

    /// The exit status as text ("exit code 0", "signal 9 (SIGKILL)"), once
    /// it ended.
    pub fn status_text(&self) -> Option<String> {
        self.exit.map(|e| describe(e.status))
    }

    /// Stops the daemon if it still runs (SIGTERM, then SIGKILL after
    /// `bound`) and says how it ended, for the report: "died during the
    /// attack: ...", "exit code 0 0.04 s after SIGTERM", or "did not exit
    /// within 10 s of SIGTERM; SIGKILLed".
    pub fn end(&mut self, bound: Duration) -> String {
        if let Some(death) = self.death() {
            self.keep();
            return format!("died during the attack: {death}");
        }
        if self.is_running() && self.sigterm_at.is_none() {
            // If kill fails the SIGKILL below still ends it.
            let _ = self.sigterm();
        }
        self.wait_exit(bound);
        let text = if self.is_running() {
            self.kill();
            format!("did not exit within {} s of SIGTERM; SIGKILLed", bound.as_secs())
        } else if self.killed {
            "SIGKILLed".to_string()
        } else {
            let after = match (self.exit, self.sigterm_at) {
                (Some(exit), Some(term)) => exit.at.saturating_duration_since(term).as_secs_f64(),
                _ => 0.0,
            };
            format!("{} {after:.2} s after SIGTERM", self.exit_text())
        };
        self.keep();
        text
    }

    /// Copies the log where `--keep-logs` asked, if it did.
    fn keep(&self) {
        if let Some(dest) = &self.keep_log {
            if let Err(e) = fs::copy(&self.log, dest) {
                eprintln!("chat-attack: cannot keep the log as {}: {e}", dest.display());
            }
        }
    }

    /// Counts the log's lines so far, its longest line, and the lines
    /// containing each of `needles`.
    pub fn log_count(&self, needles: &[&str]) -> LogCount {
        count_log(&self.log, needles)
    }

    /// The last lines of the log, joined with ` | `, for an error.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines.get(lines.len().saturating_sub(5)..).unwrap_or_default();
        tail.join(" | ")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_file(&self.log);
    }
}

/// "exit code N" or "signal N (NAME)".
fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    match status.signal() {
        Some(sig) => format!("signal {sig} ({})", signal_name(sig)),
        None => status.to_string(),
    }
}

/// The usual name of a signal that ends a process.
fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "?",
    }
}

/// The socket address following `marker` in `text` (up to `end` or the
/// end of the line), if any.
fn address_after(text: &str, marker: &str, end: &str) -> Option<SocketAddr> {
    let rest = text.split_once(marker)?.1;
    let line = rest.lines().next()?;
    let addr = line.split(end).next()?;
    addr.trim().parse().ok()
}

/// Counts lines, the longest, and lines containing each needle.
fn count_log(path: &Path, needles: &[&str]) -> LogCount {
    let mut count = LogCount {
        matching: vec![0; needles.len()],
        ..LogCount::default()
    };
    let Ok(file) = File::open(path) else {
        return count;
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    // One turn per line of a file that only grows by what the daemon
    // wrote; ends at its end.
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        count.lines += 1;
        count.longest = count.longest.max(line.len() as u64);
        for (needle, n) in needles.iter().zip(count.matching.iter_mut()) {
            if memchr::memmem::find(&line, needle.as_bytes()).is_some() {
                *n += 1;
            }
        }
    }
    count
}

/// `GET /metrics` from `addr`, the body as text.
fn scrape(addr: SocketAddr) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT)?;
    stream.set_read_timeout(Some(SCRAPE_TIMEOUT))?;
    stream.set_write_timeout(Some(SCRAPE_TIMEOUT))?;
    stream.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut raw = Vec::new();
    stream.take(MAX_SCRAPE).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (_, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| Error::msg("no end of headers in the metrics response"))?;
    Ok(body.to_string())
}

/// The value of an unlabelled sample `name` in an exposition.
fn sample(exposition: &str, name: &str) -> Option<u64> {
    exposition
        .lines()
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            (series == name).then(|| value.parse::<f64>().ok()).flatten()
        })
        // Byte counters are integers well within f64's exact range.
        .map(|v| v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(user: &[&str]) -> DaemonSpec {
        DaemonSpec {
            bin: PathBuf::from("chat-server"),
            needs: vec![("--rate", "0".to_string()), ("--max-per-ip", "0".to_string())],
            user_args: user.iter().map(|s| s.to_string()).collect(),
            metrics: true,
            keep_log: None,
        }
    }

    #[test]
    fn a_flag_the_user_gives_replaces_the_attacks_own() {
        assert_eq!(
            spec(&["--rate=5", "--threads", "1"]).args(),
            [
                "--metrics-listen",
                "127.0.0.1:0",
                "--max-per-ip",
                "0",
                "--rate=5",
                "--threads",
                "1"
            ]
        );
        assert_eq!(
            spec(&["--metrics-listen", "127.0.0.1:9999"]).args(),
            [
                "--rate",
                "0",
                "--max-per-ip",
                "0",
                "--metrics-listen",
                "127.0.0.1:9999"
            ]
        );
        // A flag that only starts like one of them is not the same flag.
        assert_eq!(
            spec(&["--rate-burst", "3"]).args(),
            [
                "--metrics-listen",
                "127.0.0.1:0",
                "--rate",
                "0",
                "--max-per-ip",
                "0",
                "--rate-burst",
                "3"
            ]
        );
    }

    #[test]
    fn addresses_are_read_from_the_log_lines() {
        let log = "[2025-01-01T00:00:00Z INFO  chat_server::server] listening on 127.0.0.1:40123\n\
                   [2025-01-01T00:00:00Z INFO  chat_server::ops::metrics] serving metrics on http://127.0.0.1:40124/metrics\n";
        assert_eq!(
            address_after(log, "listening on ", " "),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(
            address_after(log, "serving metrics on http://", "/"),
            Some("127.0.0.1:40124".parse().unwrap())
        );
        assert_eq!(
            address_after("listening on nowhere\n", "listening on ", " "),
            None
        );
    }

    #[test]
    fn exposition_samples_are_read_by_name() {
        let text = "# TYPE chat_received_bytes_total counter\nchat_received_bytes_total 1234\n\
                    chat_sent_bytes_total 5.6e7\nchat_connections_closed_total{reason=\"quit\"} 3\n";
        assert_eq!(sample(text, "chat_received_bytes_total"), Some(1234));
        assert_eq!(sample(text, "chat_sent_bytes_total"), Some(56_000_000));
        assert_eq!(sample(text, "chat_connections_closed_total"), None);
    }

    #[test]
    fn log_lines_are_counted_with_the_longest_and_the_matches() {
        let path = std::env::temp_dir().join(format!("chat-attack-test-{}.log", std::process::id()));
        fs::write(&path, "a slow consumer\nbb\nslow consumer again, longer\n").unwrap();
        let count = count_log(&path, &["slow consumer", "zzz"]);
        fs::remove_file(&path).unwrap();
        assert_eq!(count.lines, 3);
        assert_eq!(count.longest, 27);
        assert_eq!(count.matching, [2, 0]);
    }

    #[test]
    fn exit_statuses_read_as_sentences() {
        assert_eq!(describe(ExitStatus::from_raw(0)), "exit code 0");
        assert_eq!(describe(ExitStatus::from_raw(6)), "signal 6 (SIGABRT)");
        assert_eq!(describe(ExitStatus::from_raw(1 << 8)), "exit code 1");
    }
}
