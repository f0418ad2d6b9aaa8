//! A real `redis-server` for the cluster tests (issue 17), and chat-server
//! instances clustered through it.
//!
//! The cluster's contract is about what happens between processes (one
//! Redis, several daemons, and faults between them), so the tests run the
//! real programs: [`TestRedis`] starts Debian's `redis-server` on a free
//! loopback port without persistence, and can stop, restart, freeze
//! (SIGSTOP) and thaw (SIGCONT) it; [`start_node`] starts the real
//! `chat-server` binary clustered through it, with a short claim expiry
//! and timeout so that faults show within a test's patience.
//!
//! A missing `redis-server` fails the test with the command that installs
//! it: the suite promises the cluster works, so it never skips silently.
//!
//! Nothing here sleeps to synchronise: Redis is ready when it says so on
//! its output and answers PING, a stop waits for the process to exit, and
//! every wait has a deadline.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{clean_command, Client, Daemon, Proc, TIMEOUT};

/// The claim expiry the tests give every instance, in seconds: the
/// smallest the server takes is 2; 3 lets a nick of a killed instance be
/// free again within a few seconds while leaving each live instance
/// time to refresh (every second) on a loaded machine.
pub const CLAIM_TTL_SECS: u64 = 3;

/// The Redis command timeout the tests give every instance, in
/// milliseconds: a frozen Redis is noticed within a second.
pub const CLUSTER_TIMEOUT_MS: u64 = 500;

/// How long a test waits for a cluster event that depends on timers of
/// the server (a claim expiring, a reconnect after its backoff, which the
/// contract caps at 5 s): longer than [`TIMEOUT`], still bounded.
pub const CLUSTER_WAIT: Duration = Duration::from_secs(20);

/// The most lines of Redis's own output read while waiting for it to be
/// ready: it prints a few dozen at start.
const MAX_REDIS_START_LINES: usize = 200;

/// What `redis-server` prints once it accepts connections.
const REDIS_READY: &str = "Ready to accept connections";

/// Free ports tried when the one picked is taken before Redis binds it.
const PORT_ATTEMPTS: usize = 3;

/// A `redis-server` of the test's own on 127.0.0.1, without persistence.
/// Dropping it kills it (SIGKILL, which also ends a frozen one) and reaps
/// it.
pub struct TestRedis {
    /// Its port; a restart reuses it, so the instances find it again.
    port: u16,
    /// The password it requires (`--requirepass`), if any.
    password: Option<String>,
    /// The running process; `None` while stopped.
    proc: Option<Proc>,
}

impl TestRedis {
    /// Starts Redis on a free loopback port, without a password.
    ///
    /// # Panics
    /// When `redis-server` is not installed or does not become ready.
    #[track_caller]
    pub fn start() -> TestRedis {
        TestRedis::start_with(None)
    }

    /// Starts Redis on a free loopback port, requiring `password`.
    ///
    /// # Panics
    /// As [`TestRedis::start`].
    #[track_caller]
    pub fn start_with_password(password: &str) -> TestRedis {
        TestRedis::start_with(Some(password.to_string()))
    }

    /// Starts Redis on `port`, which must be free (a test that started an
    /// instance against a Redis that was not there yet).
    ///
    /// # Panics
    /// As [`TestRedis::start`].
    #[track_caller]
    pub fn start_on(port: u16) -> TestRedis {
        let mut redis = TestRedis {
            port,
            password: None,
            proc: None,
        };
        if let Err(e) = redis.spawn() {
            panic!("{e}");
        }
        redis
    }

    #[track_caller]
    fn start_with(password: Option<String>) -> TestRedis {
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let mut redis = TestRedis {
                port,
                password: password.clone(),
                proc: None,
            };
            match redis.spawn() {
                Ok(()) => return redis,
                // Someone took the port between our probe and Redis's
                // bind: pick another.
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start on a free port in {PORT_ATTEMPTS} attempts: {last}");
    }

    /// Runs `redis-server` on `self.port` and waits until it is ready.
    fn spawn(&mut self) -> Result<(), String> {
        let mut command: Command = clean_command("redis-server");
        let port = self.port.to_string();
        command.args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let mut proc = Proc::spawn(
            "redis-server",
            command,
            "the cluster tests need Redis: install it with `apt-get install redis-server` \
             (or run ./scripts/test, which does)",
        );
        let deadline = Instant::now() + TIMEOUT;
        for _ in 0..MAX_REDIS_START_LINES {
            match proc.stdout_line_before(deadline) {
                crate::Waited::Line(line) if line.contains(REDIS_READY) => {
                    self.proc = Some(proc);
                    return self.ping();
                }
                crate::Waited::Line(_) => {}
                crate::Waited::Eof | crate::Waited::TimedOut => break,
            }
        }
        Err(format!(
            "redis-server on port {} was not ready in time; it printed:\n{}",
            self.port,
            proc.stdout_lines().join("\n")
        ))
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id, while it runs.
    ///
    /// # Panics
    /// When it is stopped.
    #[track_caller]
    pub fn pid(&self) -> u32 {
        self.running().pid()
    }

    /// The URL the instances are given: `redis://127.0.0.1:PORT`, with the
    /// password (`redis://:PASSWORD@127.0.0.1:PORT`) when it has one.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => self.url_with_password(password),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The URL with `password`, right or wrong.
    pub fn url_with_password(&self, password: &str) -> String {
        format!("redis://:{password}@127.0.0.1:{}", self.port)
    }

    #[track_caller]
    fn running(&self) -> &Proc {
        match &self.proc {
            Some(proc) => proc,
            None => panic!("redis-server on port {} is stopped", self.port),
        }
    }

    /// Stops it as an administrator would (SIGTERM, then SIGCONT in case
    /// it is frozen) and waits for it to exit. Without persistence it
    /// forgets everything.
    ///
    /// # Panics
    /// When it is already stopped or does not exit in time.
    #[track_caller]
    pub fn stop(&mut self) {
        let Some(mut proc) = self.proc.take() else {
            panic!("redis-server on port {} is already stopped", self.port);
        };
        proc.signal("TERM");
        // A frozen Redis takes the signal only once it runs again.
        proc.signal("CONT");
        let status = proc.wait_exit();
        assert!(status.success(), "redis-server exited with {status} on SIGTERM");
    }

    /// Starts it again on the same port, empty, and waits until it is
    /// ready.
    ///
    /// # Panics
    /// When it is running, or does not become ready.
    #[track_caller]
    pub fn restart(&mut self) {
        assert!(
            self.proc.is_none(),
            "redis-server on port {} is still running",
            self.port
        );
        if let Err(e) = self.spawn() {
            panic!("{e}");
        }
    }

    /// Freezes it (SIGSTOP): its sockets stay open and nothing answers, as
    /// with a Redis stuck on a slow disk or a partitioned network.
    #[track_caller]
    pub fn freeze(&self) {
        self.running().signal("STOP");
    }

    /// Lets a frozen Redis go on (SIGCONT).
    #[track_caller]
    pub fn thaw(&self) {
        self.running().signal("CONT");
    }

    /// Sends one command and returns the first line of the reply (`+PONG`,
    /// `:1`, `-ERR ...`), after `AUTH` when it has a password: for a test
    /// that checks what the instances left in Redis.
    ///
    /// # Errors
    /// When Redis cannot be reached or does not answer within [`TIMEOUT`].
    pub fn command(&self, args: &[&str]) -> io::Result<String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        if let Some(password) = &self.password {
            let reply = exchange(&mut writer, &mut reader, &["AUTH", password])?;
            if reply != "+OK" {
                return Err(io::Error::other(format!("AUTH was refused: {reply}")));
            }
        }
        exchange(&mut writer, &mut reader, args)
    }

    /// Opens a connection of the test's own (after `AUTH` when it has a
    /// password), which stays authenticated whatever the test then does
    /// to the password.
    ///
    /// # Errors
    /// When Redis cannot be reached or refuses the password.
    pub fn session(&self) -> io::Result<RedisSession> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let mut session = RedisSession {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        };
        if let Some(password) = &self.password {
            let reply = session.command(&["AUTH", password])?;
            if reply != "+OK" {
                return Err(io::Error::other(format!("AUTH was refused: {reply}")));
            }
        }
        Ok(session)
    }

    /// Closes, from Redis's side (`CLIENT KILL`), every connection that
    /// process `pid` (an instance) has to it, as a network fault or a
    /// Redis that drops a client would. Returns how many it closed.
    ///
    /// # Panics
    /// When the process's sockets cannot be read from `/proc`, or Redis
    /// does not answer.
    #[track_caller]
    pub fn drop_connections_of(&self, session: &mut RedisSession, pid: u32) -> usize {
        let ports = match local_ports_to(pid, self.port) {
            Ok(ports) => ports,
            Err(e) => panic!("cannot read the sockets of process {pid} from /proc: {e}"),
        };
        let mut dropped = 0;
        for port in ports {
            let addr = format!("127.0.0.1:{port}");
            match session.command(&["CLIENT", "KILL", "ADDR", &addr]) {
                Ok(reply) if reply == ":1" => dropped += 1,
                Ok(reply) => panic!("CLIENT KILL ADDR {addr} answered {reply:?}"),
                Err(e) => panic!("CLIENT KILL ADDR {addr}: {e}"),
            }
        }
        dropped
    }

    /// Checks that it answers PING.
    fn ping(&self) -> Result<(), String> {
        match self.command(&["PING"]) {
            Ok(reply) if reply == "+PONG" => Ok(()),
            Ok(reply) => Err(format!("redis-server answered PING with {reply:?}")),
            Err(e) => Err(format!("redis-server did not answer PING: {e}")),
        }
    }
}

/// A connection of a test's own to its Redis ([`TestRedis::session`]).
pub struct RedisSession {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl RedisSession {
    /// Sends one command and returns the first line of the reply.
    ///
    /// # Errors
    /// When the connection fails or Redis does not answer within
    /// [`TIMEOUT`].
    pub fn command(&mut self, args: &[&str]) -> io::Result<String> {
        exchange(&mut self.writer, &mut self.reader, args)
    }
}

/// The local ports of the TCP connections process `pid` has to
/// 127.0.0.1:`port`: its socket inodes (`/proc/PID/fd`) looked up in
/// `/proc/net/tcp`.
fn local_ports_to(pid: u32, port: u16) -> io::Result<Vec<u16>> {
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))?.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|rest| rest.strip_suffix(']'))
        {
            inodes.insert(inode.to_string());
        }
    }
    let table = std::fs::read_to_string("/proc/net/tcp")?;
    Ok(ports_in_tcp_table(&table, &inodes, port))
}

/// [`local_ports_to`] on the text of `/proc/net/tcp`: the local ports of
/// the rows whose remote port is `port` and whose inode is in `inodes`.
fn ports_in_tcp_table(table: &str, inodes: &HashSet<String>, port: u16) -> Vec<u16> {
    let hex_port = |addr: &str| {
        addr.rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
            let fields: Vec<&str> = row.split_whitespace().collect();
            let (local, remote, inode) = (fields.get(1)?, fields.get(2)?, fields.get(9)?);
            (hex_port(remote) == Some(port) && inodes.contains(*inode))
                .then(|| hex_port(local))
                .flatten()
        })
        .collect()
}

/// Writes `args` as one RESP command and reads the first line of the reply.
fn exchange(writer: &mut TcpStream, reader: &mut BufReader<TcpStream>, args: &[&str]) -> io::Result<String> {
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    writer.write_all(request.as_bytes())?;
    let mut reply = String::new();
    if reader.read_line(&mut reply)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "Redis closed the connection",
        ));
    }
    Ok(reply.trim_end().to_string())
}

/// A loopback port that was free a moment ago: bound to port 0, then
/// released for Redis to take (Redis cannot bind port 0 itself: `--port 0`
/// turns its TCP listener off).
///
/// # Panics
/// When no socket can be bound.
#[track_caller]
pub fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(e) => panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"),
    }
}

/// The options every clustered instance of the tests gets besides
/// `--cluster URL`: the short claim expiry and timeout above, and no flood
/// control or per-address limits (every client of a test comes from
/// 127.0.0.1, and the ordering test sends hundreds of lines at once).
pub fn cluster_args(url: &str) -> Vec<String> {
    [
        "--cluster",
        url,
        "--cluster-claim-ttl",
        &CLAIM_TTL_SECS.to_string(),
        "--cluster-timeout",
        &CLUSTER_TIMEOUT_MS.to_string(),
        "--rate",
        "0",
        "--max-per-ip",
        "0",
        "--max-per-net",
        "0",
        "--connect-rate",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// What an instance logs once its link to Redis is up (both connections,
/// subscribed). It listens, and takes users, a moment before: see
/// [`start_node`].
pub const LINKED_LOG: &str = "cluster: linked";

/// Starts the real `chat-server` on 127.0.0.1 port 0, clustered through
/// `redis` ([`cluster_args`]), with `extra` options after those, and waits
/// until it logs its listening address and then that its link is up
/// ([`LINKED_LOG`]).
///
/// Waiting for the link is the harness's choice, not the contract's: an
/// instance listens before it is linked, and a user it takes in between
/// is served as if the link were down, without being told (the test
/// `an_instance_is_linked_before_it_takes_its_first_user` shows it). The
/// other tests are about other things, so they start from linked
/// instances.
///
/// # Panics
/// When it does not start (it exits, or logs no address or link in time).
#[track_caller]
pub fn start_node(redis: &TestRedis, extra: &[&str]) -> Daemon {
    let mut node = start_node_unlinked(redis, extra);
    wait_linked(&mut node);
    node
}

/// Reads `node`'s log until it says its link to Redis is up
/// ([`LINKED_LOG`]), for at most [`CLUSTER_WAIT`] (a reconnect may wait
/// out its backoff first).
///
/// # Panics
/// When it does not say so in time, or its log ends.
#[track_caller]
pub fn wait_linked(node: &mut Daemon) {
    let deadline = Instant::now() + CLUSTER_WAIT;
    for _ in 0..MAX_LINK_LOG_LINES {
        match node.proc.stderr_line_before(deadline) {
            crate::Waited::Line(line) if line.contains(LINKED_LOG) => return,
            crate::Waited::Line(_) => {}
            crate::Waited::Eof | crate::Waited::TimedOut => break,
        }
    }
    panic!(
        "chat-server did not log {LINKED_LOG:?} within {CLUSTER_WAIT:?}; it logged:\n{}",
        node.proc.stderr_lines().join("\n")
    );
}

/// The most log lines read while waiting for the link: an instance logs
/// a few at start, and a line per user.
const MAX_LINK_LOG_LINES: usize = 1_000;

/// As [`start_node`], without waiting for the link: once it listens.
///
/// # Panics
/// When it does not start (it exits, or logs no address in time).
#[track_caller]
pub fn start_node_unlinked(redis: &TestRedis, extra: &[&str]) -> Daemon {
    Daemon::start_with(node_command(&redis.url(), extra), 1)
}

/// As [`start_node`], for an instance whose `extra` options add
/// listeners (`--irc-listen 127.0.0.1:0`): waits until it has logged
/// `listeners` listening addresses in all ([`Daemon::addrs`], in the order
/// logged), then for the link.
///
/// # Panics
/// As [`start_node`].
#[track_caller]
pub fn start_node_listening(redis: &TestRedis, extra: &[&str], listeners: usize) -> Daemon {
    let mut node = Daemon::start_with(node_command(&redis.url(), extra), listeners);
    wait_linked(&mut node);
    node
}

/// A `chat-server` command clustered through `url` (which may name a
/// Redis that is not there, or a wrong password), listening on 127.0.0.1
/// port 0, with `extra` options: for the tests of how it fails to start.
pub fn node_command(url: &str, extra: &[&str]) -> Command {
    let args = cluster_args(url);
    let mut all: Vec<&str> = vec!["--listen", "127.0.0.1:0"];
    all.extend(args.iter().map(String::as_str));
    all.extend_from_slice(extra);
    Daemon::command(&all)
}

impl Proc {
    /// The next line on the child's stdout if one comes before `deadline`;
    /// never panics.
    pub fn stdout_line_before(&mut self, deadline: Instant) -> crate::Waited {
        self.stdout.next_before(deadline)
    }
}

impl Client {
    /// The next line from the server, waiting up to `timeout` instead of
    /// [`TIMEOUT`]: for a line that comes after a timer of the server (a
    /// reconnect's backoff, a claim's expiry).
    ///
    /// # Panics
    /// As [`Client::read_line`], after `timeout`.
    #[track_caller]
    pub fn read_line_within(&mut self, timeout: Duration) -> String {
        // Wait for the line's first bytes as long as asked; the rest of
        // it then gets the usual TIMEOUT, in read_line.
        self.set_timeout(timeout);
        let waited = self.reader.fill_buf().map(|bytes| bytes.len());
        self.set_timeout(TIMEOUT);
        if let Err(e) = waited {
            if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) {
                panic!("{}: no line from the server within {timeout:?}", self.nick);
            }
        }
        self.read_line()
    }

    /// Reads the next line, waiting up to `timeout`, and checks it is
    /// `expected`.
    #[track_caller]
    pub fn expect_line_within(&mut self, expected: &str, timeout: Duration) {
        let got = self.read_line_within(timeout);
        assert_eq!(
            got, expected,
            "\n{} read the wrong line\n expected: {expected:?}\n      got: {got:?}\n",
            self.nick
        );
    }

    #[track_caller]
    fn set_timeout(&mut self, timeout: Duration) {
        if let Err(e) = self.reader.get_ref().set_read_timeout(Some(timeout)) {
            panic!("{}: cannot set the read timeout: {e}", self.nick);
        }
    }
}

/// A Redis and the instances clustered through it ([`start_node`]), for a
/// test to add to, stop or restart.
pub struct Cluster {
    /// The nodes, in the order started.
    pub nodes: Vec<Daemon>,
    /// Last, so it outlives the instances when dropped.
    pub redis: TestRedis,
}

impl Cluster {
    /// A Redis and `n` instances.
    #[track_caller]
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &[])
    }

    /// A Redis and `n` instances, each started with `extra` options too.
    #[track_caller]
    pub fn start_with(n: usize, extra: &[&str]) -> Cluster {
        let redis = TestRedis::start();
        let nodes = (0..n).map(|_| start_node(&redis, extra)).collect();
        Cluster { nodes, redis }
    }

    /// Where instance `i` listens.
    ///
    /// # Panics
    /// When there is no instance `i`.
    #[track_caller]
    pub fn addr(&self, i: usize) -> SocketAddr {
        match self.nodes.get(i) {
            Some(node) => node.addr(),
            None => panic!("no instance {i} in a cluster of {}", self.nodes.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_password_only_when_there_is_one() {
        let redis = TestRedis {
            port: 6390,
            password: None,
            proc: None,
        };
        assert_eq!(redis.url(), "redis://127.0.0.1:6390");
        assert_eq!(redis.url_with_password("pw"), "redis://:pw@127.0.0.1:6390");
        let locked = TestRedis {
            password: Some("s3cret".into()),
            ..redis
        };
        assert_eq!(locked.url(), "redis://:s3cret@127.0.0.1:6390");
    }

    #[test]
    fn connections_to_a_port_are_found_by_inode_in_the_tcp_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0
   1: 0100007F:A1B2 0100007F:18EB 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0 20 4 30 10 -1
   2: 0100007F:A1B3 0100007F:18EB 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0 20 4 30 10 -1
   3: 0100007F:A1B4 0100007F:18EC 01 00000000:00000000 00:00000000 00000000     0        0 444 1 0 20 4 30 10 -1
";
        let inodes: HashSet<String> = ["222", "444", "111"].iter().map(|s| s.to_string()).collect();
        // 0x18EB = 6379: only row 1 is both ours and to that port.
        assert_eq!(ports_in_tcp_table(table, &inodes, 6379), [0xA1B2]);
        assert!(ports_in_tcp_table(table, &HashSet::new(), 6379).is_empty());
    }

    #[test]
    fn cluster_args_name_the_url_the_ttl_and_the_timeout() {
        let args = cluster_args("redis://127.0.0.1:1");
        let joined = args.join(" ");
        assert!(
            joined.starts_with("--cluster redis://127.0.0.1:1 --cluster-claim-ttl 3 --cluster-timeout 500"),
            "{joined}"
        );
    }
}
