//! The cluster's smoke test: one Redis of the test's own and two
//! instances of the server using it; a line, a private message and a nick
//! cross between them. The full suite (faults, ordering, races) is
//! tests/tests/cluster.rs.
//!
//! Needs `redis-server` (Debian's package; scripts/test installs it).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chat_server::cluster::{RedisUrl, Settings};
use chat_server::Config;
use chat_tests::{Client, TestServer};

/// A redis-server on a free loopback port, without persistence, stopped
/// (by its PID) when dropped.
struct Redis {
    child: Child,
    addr: SocketAddr,
}

impl Redis {
    #[track_caller]
    fn start() -> Redis {
        // A free port: bind port 0, note it, let it go.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &addr.port().to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server; scripts/test installs it)");
        let redis = Redis { child, addr };
        // Ready once it accepts a connection: bounded in time.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&redis.addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    fn url(&self) -> RedisUrl {
        RedisUrl::parse(&format!("redis://{}", self.addr)).expect("a valid URL")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An instance in the cluster on `redis`, with the short timings the
/// tests use.
fn instance(redis: &Redis) -> TestServer {
    TestServer::start(Config {
        cluster: Some(Settings {
            claim_ttl: Duration::from_secs(3),
            timeout: Duration::from_millis(500),
            ..Settings::new(redis.url())
        }),
        ..Config::default()
    })
}

/// Reads lines until one equals `expected`; fails on a timeout or after
/// `max` other lines (the joins and renames before it).
#[track_caller]
fn read_until(client: &mut Client, expected: &str, max: usize) {
    let mut seen = Vec::new();
    for _ in 0..=max {
        let line = client.read_line();
        if line == expected {
            return;
        }
        seen.push(line);
    }
    panic!("{} never read {expected:?}; read {seen:?}", client.nick());
}

#[test]
fn a_line_a_private_message_and_a_nick_cross_between_two_instances() {
    let redis = Redis::start();
    let one = instance(&redis);
    let two = instance(&redis);
    let mut alice = Client::connect_named(one.addr(), "alice");
    let mut bob = Client::connect_named(two.addr(), "bob");

    // A room line said on one instance reaches a member on the other.
    alice.send("hello from one");
    bob.expect_line("<alice> hello from one");

    // So does a private message, as a local one reads.
    bob.send("/msg alice psst");
    bob.expect_line("-> *alice* psst");
    read_until(&mut alice, "*bob* psst", 4);

    // A nick held on one instance is refused on the other, as a local one.
    bob.send("/nick ALICE");
    bob.expect_line("!! nick ALICE is already in use");
}
