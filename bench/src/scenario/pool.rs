//! Connections held either by this process or by worker processes.
//!
//! One process may hold at most its descriptor limit of sockets (20,000
//! here, and it cannot be raised), so the idle, ramp and join-storm
//! scenarios can spread their clients over `--workers K` copies of
//! chat-bench. Both kinds of [`Pool`] speak the same line protocol, so the
//! scenarios do not care which they have:
//!
//! - `open N` opens N more connections,
//! - `settle` waits until no announcement is still arriving,
//! - `join ROOM` makes every connection join ROOM,
//!
//! each answered by one `ok live=L failed=F died=D complete=0|1` line; a
//! worker ends on `quit`, at the end of its input, or when the parent
//! kills it (which is how the parent ends it).

use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use clap::ValueEnum;

use crate::args::{Protocol, TargetArgs, WorkerArgs};
use crate::engine::{Engine, Handshake};
use crate::error::{Error, Result};
use crate::target::Target;
use crate::tls::TlsClient;

/// Client numbers of worker `w` start at `w * ID_STRIDE`.
const ID_STRIDE: usize = 1_000_000;

/// Most command lines a worker reads before it ends.
const MAX_COMMANDS: usize = 100_000;

/// Counts from one pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// Open and ready.
    pub live: usize,
    /// Failed to open.
    pub failed: usize,
    /// Died after opening.
    pub died: usize,
    /// The last step finished in time.
    pub complete: bool,
}

impl Held {
    fn line(&self) -> String {
        format!(
            "ok live={} failed={} died={} complete={}",
            self.live,
            self.failed,
            self.died,
            u8::from(self.complete)
        )
    }

    fn parse(line: &str) -> Option<Held> {
        let mut held = Held::default();
        let mut words = line.split_whitespace();
        if words.next()? != "ok" {
            return None;
        }
        for word in words {
            let (key, value) = word.split_once('=')?;
            let value: usize = value.parse().ok()?;
            match key {
                "live" => held.live = value,
                "failed" => held.failed = value,
                "died" => held.died = value,
                "complete" => held.complete = value == 1,
                _ => return None,
            }
        }
        Some(held)
    }

    /// Adds another pool's counts (complete only if both are).
    pub fn add(&mut self, other: Held) {
        self.live += other.live;
        self.failed += other.failed;
        self.died += other.died;
        self.complete = self.complete && other.complete;
    }
}

/// Carries out one command on `engine`, returning the answer line.
fn execute(engine: &mut Engine, command: &str, timeout: Duration) -> String {
    let mut words = command.split_whitespace();
    let complete = match (words.next(), words.next()) {
        (Some("open"), Some(n)) => match n.parse::<usize>() {
            Ok(n) => engine.open(n, &Handshake::Welcome, timeout).complete,
            Err(_) => return format!("error bad count {n:?}"),
        },
        (Some("settle"), None) => {
            engine.settle(super::QUIET, timeout);
            true
        }
        (Some("join"), Some(room)) => engine.join_all(room, timeout).0,
        _ => return format!("error unknown command {command:?}"),
    };
    let (live, failed, died) = engine.counts();
    Held {
        live,
        failed,
        died,
        complete,
    }
    .line()
}

/// A set of connections, here or in a worker process.
pub enum Pool {
    /// In this process.
    Local {
        /// The connections.
        engine: Box<Engine>,
        /// The answer to the last command.
        answer: Option<String>,
        /// Longest wait for one step.
        timeout: Duration,
    },
    /// In a worker process.
    Worker {
        /// The process.
        child: Child,
        /// Its commands.
        stdin: ChildStdin,
        /// Its answers.
        stdout: BufReader<ChildStdout>,
    },
}

impl Pool {
    /// `workers` pools for `target`: this process when 1, else that many
    /// worker processes.
    ///
    /// # Errors
    /// When an engine or a worker cannot be started.
    pub fn start(args: &TargetArgs, target: &Target, workers: u16, timeout: Duration) -> Result<Vec<Pool>> {
        let lifetime = Duration::from_secs(600);
        if workers <= 1 {
            let engine = Engine::start(super::engine_config(args, target, lifetime))?;
            return Ok(vec![Pool::Local {
                engine: Box::new(engine),
                answer: None,
                timeout,
            }]);
        }
        let exe = std::env::current_exe()?;
        let kind = target.flavor.name();
        // A TLS run's workers trust the same certificate, for the same name.
        let mut tls_args: Vec<String> = Vec::new();
        if let Some(ca) = &target.ca_file {
            tls_args.extend(["--tls".to_string(), "--ca".to_string(), ca.display().to_string()]);
            tls_args.extend(["--tls-name".to_string(), args.tls_name.clone()]);
            let group = args
                .tls_group
                .to_possible_value()
                .map(|v| v.get_name().to_string());
            tls_args.extend(["--tls-group".to_string(), group.unwrap_or_default()]);
        }
        // An IRC or WebSocket run's workers speak the same protocol to the
        // same ports: with --protocol irc or web a worker's --addr is the
        // IRC or web listener, with mixed or mixed-web the line listener.
        let mut protocol_args = vec!["--protocol".to_string(), target.protocol.name().to_string()];
        let addr = match (target.protocol, target.irc_addr, target.web_addr) {
            (Protocol::Irc, Some(irc), _) => irc,
            (Protocol::Web, _, Some(web)) => web,
            (Protocol::Mixed, Some(irc), _) => {
                protocol_args.extend(["--irc-addr".to_string(), irc.to_string()]);
                target.addr
            }
            (Protocol::MixedWeb, _, Some(web)) => {
                protocol_args.extend(["--web-addr".to_string(), web.to_string()]);
                target.addr
            }
            _ => target.addr,
        };
        (0..usize::from(workers))
            .map(|w| {
                let mut child = Command::new(&exe)
                    .args(["--addr", &addr.to_string(), "--target", kind])
                    .args(&tls_args)
                    .args(&protocol_args)
                    .args(["--threads", "1", "--sources", &args.sources.to_string()])
                    .args(["--connect-inflight", &args.connect_inflight().to_string()])
                    .args(["worker", "--first-id", &(w * ID_STRIDE).to_string()])
                    .args(["--timeout", &timeout.as_secs_f64().to_string()])
                    .args(["--lifetime", &lifetime.as_secs_f64().to_string()])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .map_err(|e| Error::msg(format!("cannot start a worker: {e}")))?;
                let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                    let _ = child.kill();
                    return Err(Error::msg("worker without pipes"));
                };
                Ok(Pool::Worker {
                    child,
                    stdin,
                    stdout: BufReader::new(stdout),
                })
            })
            .collect()
    }

    /// Sends `command` (a local pool carries it out at once).
    ///
    /// # Errors
    /// When the worker is gone.
    pub fn request(&mut self, command: &str) -> Result<()> {
        match self {
            Pool::Local {
                engine,
                answer,
                timeout,
            } => {
                *answer = Some(execute(engine, command, *timeout));
                Ok(())
            }
            Pool::Worker { stdin, .. } => {
                writeln!(stdin, "{command}")?;
                stdin.flush()?;
                Ok(())
            }
        }
    }

    /// The answer to the last command. A worker always answers within its
    /// step timeout, or dies (end of file).
    ///
    /// # Errors
    /// When the worker died or answered nonsense.
    pub fn answer(&mut self) -> Result<Held> {
        let line = match self {
            Pool::Local { answer, .. } => answer.take().unwrap_or_default(),
            Pool::Worker { stdout, .. } => {
                let mut line = String::new();
                stdout.read_line(&mut line)?;
                line
            }
        };
        Held::parse(&line).ok_or_else(|| Error::msg(format!("bad answer from a pool: {:?}", line.trim())))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Pool::Worker { child, .. } = self {
            // Its connections close with it; nothing it holds is worth a
            // graceful goodbye, and waiting for one could hang.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `command` to every pool, then collects and sums the answers, so
/// workers carry it out in parallel.
///
/// # Errors
/// When a worker fails.
pub fn broadcast(pools: &mut [Pool], command: &str) -> Result<Held> {
    for pool in pools.iter_mut() {
        pool.request(command)?;
    }
    let mut total = Held {
        complete: true,
        ..Held::default()
    };
    for pool in pools.iter_mut() {
        total.add(pool.answer()?);
    }
    Ok(total)
}

/// `chat-bench worker`: holds connections for a parent process, carrying
/// out its commands from stdin.
///
/// # Errors
/// When the engine cannot start or stdout is gone.
pub fn worker_main(args: &TargetArgs, w: &WorkerArgs) -> Result<()> {
    let addr = args.addr.ok_or_else(|| Error::msg("a worker needs --addr"))?;
    let mut target = super::attach(args, addr, None)?;
    if let (true, Some(ca)) = (args.tls, &args.ca) {
        target = target.with_tls(
            TlsClient::from_ca_file(ca, &args.tls_name, args.tls_group)?,
            ca.clone(),
        );
    }
    let mut config = super::engine_config(args, &target, w.lifetime);
    config.first_id = w.first_id;
    let mut engine = Engine::start(config)?;
    let stdin = io::stdin();
    let mut stdout = io::stdout();
    for line in stdin.lock().lines().take(MAX_COMMANDS) {
        let line = line?;
        if line.trim() == "quit" {
            break;
        }
        writeln!(stdout, "{}", execute(&mut engine, &line, w.timeout))?;
        stdout.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip() {
        let held = Held {
            live: 5,
            failed: 1,
            died: 2,
            complete: true,
        };
        assert_eq!(Held::parse(&held.line()), Some(held));
        assert_eq!(Held::parse("error unknown"), None);
        assert_eq!(Held::parse("ok live=x"), None);
    }
}
