//! Cluster runs (issue 17): a `redis-server` this run starts, and several
//! chat-server instances clustered through it, over which the run spreads
//! its clients.
//!
//! The cluster's cost is what a user on one instance pays to hear a user
//! on another: every room line goes to Redis (a script that numbers it,
//! keeps it in the room's stream and publishes it) and comes back to every
//! instance, the sender's included. So a cluster run is an ordinary
//! fan-out with the clients round-robin over the instances
//! ([`crate::engine::EngineConfig::cluster`]); its report counts Redis's
//! CPU beside the instances' threads, from `/proc/PID/stat`.
//!
//! Redis is started as `redis-server --bind 127.0.0.1 --port PORT --save
//! '' --appendonly no` (no persistence: nothing of a run is written to
//! disk) on a port free a moment before, and is ready once something
//! listens there; each instance is chat-server with the benchmark's
//! options ([`crate::target::CHAT_SERVER_ARGS`]), `--cluster
//! redis://127.0.0.1:PORT`, then the run's `--server-arg`s. Everything is
//! killed and reaped when the run ends, Redis last.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::procfs;
use crate::target::Target;

/// How long Redis gets to listen after it is started.
const REDIS_START_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the start-up wait looks again; at most
/// `REDIS_START_TIMEOUT / REDIS_POLL` looks.
const REDIS_POLL: Duration = Duration::from_millis(20);

/// A `redis-server` this run started; killed and reaped when dropped.
#[derive(Debug)]
pub struct Redis {
    /// The process.
    child: Child,
    /// Its pid, for its CPU time.
    pub pid: u32,
    /// Where it listens (loopback).
    pub addr: SocketAddr,
    /// How it was started, for the report.
    pub command: String,
    /// Where its output goes; removed when it is dropped.
    log: PathBuf,
}

impl Redis {
    /// Starts `bin` on a free loopback port without persistence and waits
    /// until it listens.
    ///
    /// # Errors
    /// When it cannot be started (not installed: the error says how to
    /// install it), exits, or does not listen in time.
    pub fn spawn(bin: &Path) -> Result<Redis> {
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut cmd = Command::new(bin);
        cmd.args(["--bind", "127.0.0.1", "--port"])
            .arg(addr.port().to_string())
            .args(["--save", "", "--appendonly", "no"]);
        let command = format!("{cmd:?}").replace('"', "");
        let log = std::env::temp_dir().join(format!(
            "chat-bench-redis-{}-{}.log",
            std::process::id(),
            addr.port()
        ));
        let out = File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| {
                Error::msg(format!(
                    "cannot start {command}: {e} (install Redis: apt-get install redis-server, \
                     or give --redis-bin PATH)"
                ))
            })?;
        let mut redis = Redis {
            pid: child.id(),
            child,
            addr,
            command,
            log,
        };
        redis.wait_listening()?;
        Ok(redis)
    }

    /// The URL the instances are given.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Polls until Redis listens on its port (or exits, or time is up).
    fn wait_listening(&mut self) -> Result<()> {
        let deadline = Instant::now() + REDIS_START_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return Err(Error::msg(format!(
                    "{} exited at start: {}",
                    self.command,
                    self.log_tail()
                )));
            }
            let ready = match procfs::is_listening(self.addr.port()) {
                Some(listening) => listening,
                None => TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok(),
            };
            if ready {
                return Ok(());
            }
            thread::sleep(REDIS_POLL);
        }
        Err(Error::msg(format!(
            "{} did not listen in time: {}",
            self.command,
            self.log_tail()
        )))
    }

    /// The last lines of its output.
    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .iter()
            .skip(lines.len().saturating_sub(5))
            .copied()
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.log);
    }
}

impl Target {
    /// Starts a Redis ([`Redis::spawn`] with `redis_bin`) and `instances`
    /// chat-servers (`bin`) clustered through it, each with room for its
    /// share of `clients` and `extra` (`--server-arg`) after the cluster
    /// option. The target is the first instance; the others and Redis are
    /// its companions ([`Target::cluster_addrs`]).
    ///
    /// # Errors
    /// When Redis or an instance cannot be started or does not accept in
    /// time.
    pub fn spawn_chat_server_cluster(
        bin: &Path,
        redis_bin: &Path,
        clients: u32,
        extra: &[String],
        instances: u16,
    ) -> Result<Target> {
        let redis = Redis::spawn(redis_bin)?;
        let mut args = vec!["--cluster".to_string(), redis.url()];
        args.extend_from_slice(extra);
        let count = u32::from(instances.max(1));
        // Round-robin: an instance holds at most this many of the clients.
        let share = clients.div_ceil(count);
        let mut first = Target::spawn_chat_server(bin, share, &args)?;
        for _ in 1..count {
            let peer = Target::spawn_chat_server(bin, share, &args)?;
            first.peers.push(peer);
        }
        first.command = format!("{count} × ({}) through ({})", first.command, redis.command);
        first.redis = Some(redis);
        Ok(first)
    }

    /// The line listeners of every instance, this one first, when this run
    /// started a cluster; empty otherwise.
    pub fn cluster_addrs(&self) -> Vec<SocketAddr> {
        if self.redis.is_none() {
            return Vec::new();
        }
        std::iter::once(self.addr)
            .chain(self.peers.iter().map(|p| p.addr))
            .collect()
    }

    /// How many instances the run spreads its clients over, when it
    /// started a cluster.
    pub fn cluster_instances(&self) -> Option<usize> {
        self.redis.as_ref().map(|_| self.peers.len() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_redis_server_says_how_to_install_it() {
        let err = Redis::spawn(Path::new("/nonexistent/redis-server")).unwrap_err();
        assert!(err.0.contains("apt-get install redis-server"), "{}", err.0);
    }
}
