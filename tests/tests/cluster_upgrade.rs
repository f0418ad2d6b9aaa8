//! A restart that keeps the clients (README.md, "Restarting without
//! dropping anyone") of an instance in a cluster (README.md, "Running a
//! cluster"): the new process takes the old one's nick claims and
//! presence over, so for the rest of the cluster nothing happened. With
//! the real binary, a real `redis-server` on a free loopback port, and
//! the short claim expiry of the cluster tests ([`CLAIM_TTL_SECS`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chat_tests::redis::{cluster_args, node_command, wait_linked, TestRedis, CLAIM_TTL_SECS};
use chat_tests::{Client, Daemon};

/// How long the test watches the nick after the restart: twice the claim
/// expiry, so a claim the new process did not take over would have run
/// out by then.
const WATCH: Duration = Duration::from_secs(CLAIM_TTL_SECS * 2 + 1);

/// Pause between two tries at the nick: paces the requests, synchronises
/// nothing (each try waits for its answer).
const LOOK_PAUSE: Duration = Duration::from_millis(250);

/// The most tries at the nick: more than the restart and [`WATCH`] allow
/// at one per [`LOOK_PAUSE`], so the time ends it first.
const MAX_LOOKS: usize = 200;

/// A control socket path of the test's own, removed on drop.
struct ControlSocket(PathBuf);

impl ControlSocket {
    fn new() -> ControlSocket {
        let dir = std::env::temp_dir().join(format!("chat-cluster-upgrade-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        ControlSocket(dir.join("ctl.sock"))
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn a_restarted_instance_keeps_its_users_nicks_and_presence_in_the_cluster() {
    let redis = TestRedis::start();
    let ctl = ControlSocket::new();
    let mut one = Daemon::start_with(node_command(&redis.url(), &["--control-socket", ctl.path()]), 1);
    wait_linked(&mut one);
    let mut two = Daemon::start_with(node_command(&redis.url(), &[]), 1);
    wait_linked(&mut two);

    let mut alice = Client::connect_named(one.addr(), "alice");
    let mut bob = Client::connect_named(two.addr(), "bob");
    alice.send("/join upgrade");
    alice.read_until("-- you joined #upgrade", 4);
    bob.send("/join upgrade");
    bob.read_until("-- you joined #upgrade", 4);
    alice.read_until("-- bob joined #upgrade", 4);
    alice.send("said before the restart");
    bob.read_until("<alice> said before the restart", 4);

    // From now until twice the claim expiry after the restart, bob on
    // the other instance keeps trying to take alice's nick: it must never
    // be free, not even while the processes hand over.
    let stop = Arc::new(AtomicBool::new(false));
    let trying = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut tries = 0;
            while !stop.load(Ordering::Relaxed) {
                assert!(tries < MAX_LOOKS, "more than {MAX_LOOKS} tries");
                tries += 1;
                bob.send("/nick alice");
                bob.expect_line("!! nick alice is already in use");
                thread::sleep(LOOK_PAUSE);
            }
            (bob, tries)
        })
    };

    // Instance one restarts: a new process takes its clients over, with
    // the same options.
    let listen = one.addr().to_string();
    let mut args: Vec<String> = vec!["--listen".into(), listen];
    args.extend(cluster_args(&redis.url()));
    args.extend([
        "--control-socket".into(),
        ctl.path().into(),
        "--take-over".into(),
        ctl.path().into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut new = Daemon::start_with(Daemon::command(&args), 1);
    one.proc.expect_exit_code(0);
    wait_linked(&mut new);
    let notice = alice.read_line();
    assert!(
        notice.starts_with("-- server restarted (version ") && notice.ends_with("); you are still connected"),
        "alice read {notice:?}"
    );
    let restarted = Instant::now();
    while restarted.elapsed() < WATCH {
        thread::sleep(LOOK_PAUSE);
    }
    stop.store(true, Ordering::Relaxed);
    let (mut bob, tries) = trying.join().unwrap();
    assert!(tries > 2, "bob tried {tries} times");

    // She stays in the room's cluster-wide list. (She opened the room,
    // so bob is not its operator; her `@` stays with her instance.)
    bob.send("/who");
    bob.expect_line("-- 2 in #upgrade: alice, bob");

    // And the room goes on across the instances, both ways.
    alice.send("said after the restart");
    bob.read_until("<alice> said after the restart", 4);
    bob.send("heard you");
    alice.read_until("<bob> heard you", 4);
    drop(new);
    drop(two);
}
