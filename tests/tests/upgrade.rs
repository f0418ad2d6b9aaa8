//! Restarting without dropping anyone (README.md, "Restarting without
//! dropping anyone"), with the real binary: by hand (`--take-over`), and
//! the systemd way with a stand-in for systemd's descriptor store (a
//! `NOTIFY_SOCKET` of the test's own that keeps the descriptors sent with
//! `FDSTORE=1` and passes them to the next process as `LISTEN_FDS`).
//!
//! Every test here spawns its children while holding [`SPAWN`]: the
//! stand-in store makes the descriptors it passes on inheritable for a
//! moment, and no other child may inherit them meanwhile.

use std::io::{IoSliceMut, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use chat_tests::irc::IrcClient;
use chat_tests::{binary, clean_command, Client, Daemon, Proc, TIMEOUT};

/// Held while spawning a child (see the module's doc).
static SPAWN: Mutex<()> = Mutex::new(());

fn spawn_lock() -> MutexGuard<'static, ()> {
    SPAWN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The most datagrams the stand-in store reads in one test.
const MAX_DATAGRAMS: usize = 1000;

/// A directory of the test's own, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "chat-upgrade-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts the daemon with `args`, once it has logged `listeners` addresses.
#[track_caller]
fn start(args: &[&str], listeners: usize) -> Daemon {
    let _spawning = spawn_lock();
    Daemon::start_with(Daemon::command(args), listeners)
}

/// Starts a daemon that takes over from the one whose control socket is
/// `ctl`, with `args` (its own options); waits until the old one has
/// exited 0 and the new one listens on `listeners` addresses.
#[track_caller]
fn take_over(old: &mut Daemon, ctl: &Path, args: &[&str], listeners: usize) -> Daemon {
    let ctl = ctl.to_str().expect("a UTF-8 path");
    let mut all = args.to_vec();
    all.extend_from_slice(&["--take-over", ctl]);
    let new = start(&all, listeners);
    old.proc.expect_exit_code(0);
    assert!(
        old.proc.stderr_lines().iter().any(|l| l.contains("handed over ")),
        "the old daemon says it handed over:\n{}",
        old.proc.stderr_lines().join("\n")
    );
    new
}

/// Reads lines until `count` lines for which `wanted` gives `Some` have
/// come, and returns those; every other line is kept apart and returned
/// too. Bounded by a line count.
#[track_caller]
fn collect(
    read: &mut dyn FnMut() -> String,
    count: usize,
    wanted: impl Fn(&str) -> Option<String>,
) -> (Vec<String>, Vec<String>) {
    let mut got = Vec::new();
    let mut other = Vec::new();
    for _ in 0..count * 3 + 20 {
        if got.len() == count {
            break;
        }
        let line = read();
        match wanted(&line) {
            Some(item) => got.push(item),
            None => other.push(line),
        }
    }
    assert_eq!(got.len(), count, "lines seen besides: {other:#?}");
    (got, other)
}

/// The text of a line protocol chat line `<nick> text`, if `line` is one
/// from `nick`.
fn said_by(line: &str, nick: &str) -> Option<String> {
    line.strip_prefix(&format!("<{nick}> ")).map(str::to_string)
}

/// The text of an IRC PRIVMSG to `channel` from `nick`.
fn privmsg_from(line: &str, nick: &str, channel: &str) -> Option<String> {
    if !line.starts_with(&format!(":{nick}!")) {
        return None;
    }
    line.split_once(&format!(" PRIVMSG {channel} :"))
        .map(|(_, text)| text.to_string())
}

fn is_line_restart_notice(line: &str) -> bool {
    line.starts_with("-- server restarted (version ") && line.ends_with("); you are still connected")
}

fn is_irc_restart_notice(line: &str) -> bool {
    line.contains(" NOTICE * :[server] restarted (version ") && line.ends_with("; you are still connected")
}

const FLOOD: usize = 40;

#[test]
fn by_hand_clients_chatting_and_flooding_keep_their_connection_nick_room_and_every_line() {
    let dir = TempDir::new("by-hand");
    let ctl = dir.path().join("ctl");
    let ctl_arg = ctl.to_str().expect("a UTF-8 path");
    // A slow flood allowance, so that lines wait in the old process when
    // it hands over; the new one allows more (its options apply).
    let mut old = start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--irc-listen",
            "127.0.0.1:0",
            "--control-socket",
            ctl_arg,
            "--rate",
            "20",
            "--burst",
            "5",
            "--quiet-above",
            "1",
        ],
        2,
    );
    let (line_addr, irc_addr) = (old.addrs()[0], old.addrs()[1]);
    let mut alice = Client::connect_named(line_addr, "alice");
    let mut carol = Client::connect_named(line_addr, "carol");
    alice.send("/join #r");
    alice.expect_line("-- you joined #r");
    let mut bob = IrcClient::registered(irc_addr, "bob");
    bob.join("#r");
    carol.send("/join #r");
    carol.expect_line("-- you joined #r");
    alice.send("said before");
    assert_eq!(
        privmsg_from(&bob.read_line(), "alice", "#r").as_deref(),
        Some("said before")
    );

    // carol floods: most of it waits for her allowance when the handover
    // comes.
    let flood: String = (0..FLOOD).map(|i| format!("flood {i}\n")).collect();
    carol.send_raw(flood.as_bytes());
    assert_eq!(said_by(&alice.read_line(), "carol").as_deref(), Some("flood 0"));
    let mut new = take_over(
        &mut old,
        &ctl,
        &[
            "--listen",
            &line_addr.to_string(),
            "--irc-listen",
            &irc_addr.to_string(),
            "--control-socket",
            ctl_arg,
            "--rate",
            "1000",
            "--burst",
            "1000",
            "--quiet-above",
            "1",
        ],
        2,
    );
    assert_eq!(new.addrs(), [line_addr, irc_addr], "the same listening sockets");

    // Every line of the flood, in order, once; and the notice once.
    let (seen, other) = collect(&mut || alice.read_line(), FLOOD - 1, |l| said_by(l, "carol"));
    let expected: Vec<String> = (1..FLOOD).map(|i| format!("flood {i}")).collect();
    assert_eq!(seen, expected, "alice reads carol's flood in order");
    let notices: Vec<&String> = other.iter().filter(|l| is_line_restart_notice(l)).collect();
    assert_eq!(notices.len(), 1, "alice reads one notice: {other:#?}");
    let (seen, other) = collect(&mut || bob.read_line(), FLOOD, |l| privmsg_from(l, "carol", "#r"));
    let expected: Vec<String> = (0..FLOOD).map(|i| format!("flood {i}")).collect();
    assert_eq!(seen, expected, "bob (IRC) reads carol's flood in order");
    assert_eq!(
        other.iter().filter(|l| is_irc_restart_notice(l)).count(),
        1,
        "bob reads one notice: {other:#?}"
    );
    carol.expect_line("<alice> said before");
    let line = carol.read_line();
    assert!(is_line_restart_notice(&line), "carol is told: {line:?}");

    // Nicks, rooms and history are kept; the chat goes on.
    alice.send("said after");
    assert_eq!(
        privmsg_from(&bob.read_line(), "alice", "#r").as_deref(),
        Some("said after")
    );
    assert_eq!(
        said_by(&carol.read_line(), "alice").as_deref(),
        Some("said after")
    );
    alice.send("/who");
    alice.expect_line("-- 3 in #r: @alice, bob, carol");
    bob.send("PRIVMSG #r :bob after");
    assert_eq!(said_by(&alice.read_line(), "bob").as_deref(), Some("bob after"));
    let mut dave = new.connect();
    assert_eq!(dave.nick(), "guest3", "guest numbers go on from before");
    dave.send("/nick alice");
    dave.expect_line("!! nick alice is already in use");
    dave.send("/join #r");
    dave.expect_line("-- you joined #r");
    // Joining replays the last lines; /history reaches back to before.
    let replayed = dave.read_lines(20);
    assert!(replayed[19].ends_with("<bob> bob after"), "{replayed:#?}");
    dave.send("/history 100");
    let oldest = dave.read_line();
    assert!(
        oldest.ends_with("<alice> said before"),
        "the history from before the restart is kept: {oldest:?}"
    );
    drop((alice, bob, carol, dave));
    new.proc.signal("TERM");
    new.proc.expect_exit_code(0);
}

// ---------------------------------------------------------------------------
// The systemd path, with a stand-in store.

/// The test's `NOTIFY_SOCKET`, which keeps what is sent with `FDSTORE=1`.
struct Store {
    _dir: TempDir,
    path: PathBuf,
    socket: UnixDatagram,
    /// Descriptors stored, with their names, in the order they came.
    fds: Vec<(OwnedFd, String)>,
    /// Every notification read, for messages.
    seen: Vec<String>,
}

impl Store {
    fn new() -> Store {
        let dir = TempDir::new("store");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        Store {
            _dir: dir,
            path,
            socket,
            fds: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// Reads notifications until one says `wanted`, keeping every
    /// descriptor sent with `FDSTORE=1` under its `FDNAME=`.
    #[track_caller]
    fn read_until(&mut self, wanted: &str) {
        let deadline = Instant::now() + TIMEOUT;
        let mut buf = vec![0u8; 4096];
        for _ in 0..MAX_DATAGRAMS {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {wanted:?} in time; got {:#?}", self.seen);
            self.socket.set_read_timeout(Some(left)).expect("set a timeout");
            let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(253))];
            let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
            let received = rustix::net::recvmsg(
                self.socket.as_fd(),
                &mut [IoSliceMut::new(&mut buf)],
                &mut control,
                rustix::net::RecvFlags::CMSG_CLOEXEC,
            );
            let received = match received {
                Ok(received) => received,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => panic!("no {wanted:?} in time ({e}); got {:#?}", self.seen),
            };
            let mut passed = Vec::new();
            for message in control.drain() {
                if let rustix::net::RecvAncillaryMessage::ScmRights(fds) = message {
                    passed.extend(fds);
                }
            }
            let text = String::from_utf8_lossy(&buf[..received.bytes]).into_owned();
            self.seen.push(text.clone());
            let lines: Vec<&str> = text.lines().collect();
            if lines.contains(&"FDSTORE=1") {
                let name = lines
                    .iter()
                    .find_map(|l| l.strip_prefix("FDNAME="))
                    .unwrap_or("stored")
                    .to_string();
                self.fds.extend(passed.into_iter().map(|fd| (fd, name.clone())));
            }
            if lines.contains(&wanted) {
                return;
            }
        }
        panic!("more than {MAX_DATAGRAMS} notifications");
    }

    /// The daemon with `args`, with this store as its service manager's.
    fn daemon_command(&self, args: &[&str]) -> Command {
        self.daemon_command_holding(args, 1000)
    }

    /// [`Store::daemon_command`], for a store that holds `max`
    /// descriptors (`FileDescriptorStoreMax=`).
    fn daemon_command_holding(&self, args: &[&str], max: usize) -> Command {
        let mut command = Daemon::command(args);
        command
            .env("NOTIFY_SOCKET", &self.path)
            .env("FDSTORE", max.to_string());
        command
    }

    /// Starts the next daemon, with `args`, as systemd would after a
    /// restart: the stored descriptors are its 3, 4, ... (`LISTEN_FDS`,
    /// `LISTEN_FDNAMES`, `LISTEN_PID`). Empties the store.
    #[track_caller]
    fn start_next(&mut self, args: &[&str], listeners: usize) -> Daemon {
        // bash moves each descriptor above all of them first, then to its
        // place: a descriptor's own number may be one of the places.
        let fds = std::mem::take(&mut self.fds);
        let high = fds.iter().map(|(fd, _)| fd.as_raw_fd()).max().unwrap_or(3) as usize + 1;
        const HIGH_LIMIT: usize = 15_000;
        assert!(
            high < HIGH_LIMIT,
            "descriptors numbered too high for bash: {high}"
        );
        let mut script = String::new();
        for (i, (fd, _)) in fds.iter().enumerate() {
            script.push_str(&format!("exec {}<&{} ; ", high + i, fd.as_raw_fd()));
        }
        for i in 0..fds.len() {
            script.push_str(&format!("exec {}<&{} {}<&- ; ", 3 + i, high + i, high + i));
        }
        let names: Vec<&str> = fds.iter().map(|(_, name)| name.as_str()).collect();
        script.push_str(&format!(
            "LISTEN_PID=$$ LISTEN_FDS={} LISTEN_FDNAMES={} exec \"$0\" \"$@\"",
            fds.len(),
            names.join(":")
        ));
        let mut command = clean_command("bash");
        command
            .arg("-c")
            .arg(script)
            .arg(binary("chat-server"))
            .args(args)
            .env("NOTIFY_SOCKET", &self.path)
            .env("FDSTORE", "1000");
        let _spawning = spawn_lock();
        for (fd, _) in &fds {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).expect("make it inheritable");
        }
        let proc = Proc::spawn("chat-server", command, "build it with `cargo build --workspace`");
        drop(fds);
        Daemon::attach(proc, listeners)
    }
}

#[test]
fn under_systemd_a_restart_through_the_descriptor_store_keeps_everyone() {
    let mut store = Store::new();
    let command = store.daemon_command(&["--listen", "127.0.0.1:0", "--quiet-above", "1"]);
    let mut old = {
        let _spawning = spawn_lock();
        Daemon::start_with(command, 1)
    };
    store.read_until("READY=1");
    let addr = old.addr();
    let mut alice = Client::connect_named(addr, "alice");
    let mut bob = Client::connect_named(addr, "bob");
    alice.send("/join #r");
    alice.expect_line("-- you joined #r");
    bob.send("/join #r");
    bob.expect_line("-- you joined #r");
    bob.send("hello");
    alice.expect_line("<bob> hello");

    old.proc.signal("TERM");
    old.proc.expect_exit_code(0);
    store.read_until("FDNAME=upgrade-conn");
    let mut names: Vec<&str> = store.fds.iter().map(|(_, n)| n.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "upgrade-conn",
            "upgrade-conn",
            "upgrade-listen-line",
            "upgrade-state"
        ],
        "the store holds both clients, the listener and the state"
    );
    // Meanwhile, what alice says waits in her socket.
    alice.send("said while restarting");

    let new = store.start_next(&["--quiet-above", "1"], 1);
    assert_eq!(new.addr(), addr, "the same listening socket");
    for name in ["upgrade-state", "upgrade-conn", "upgrade-listen-line"] {
        let removal = format!("FDSTOREREMOVE=1\nFDNAME={name}\n");
        if !store.seen.contains(&removal) {
            store.read_until(&format!("FDNAME={name}"));
        }
        assert!(
            store.seen.contains(&removal),
            "{name} is taken out of the store: {:#?}",
            store.seen
        );
    }
    bob.expect_line(&format!(
        "-- server restarted (version {}); you are still connected",
        version()
    ));
    bob.expect_line("<alice> said while restarting");
    let line = alice.read_line();
    assert!(is_line_restart_notice(&line), "{line:?}");
    bob.send("/who");
    bob.expect_line("-- 2 in #r: @alice, bob");
    // A newcomer gets the next guest number, not one given before.
    let carol = new.connect();
    assert_eq!(carol.nick(), "guest3");
}

#[test]
fn a_state_of_another_format_is_refused_clients_are_told_and_the_new_process_starts_clean() {
    let mut store = Store::new();
    let command = store.daemon_command(&["--listen", "127.0.0.1:0", "--quiet-above", "1"]);
    let mut old = {
        let _spawning = spawn_lock();
        Daemon::start_with(command, 1)
    };
    store.read_until("READY=1");
    let mut alice = Client::connect_named(old.addr(), "alice");
    old.proc.signal("TERM");
    old.proc.expect_exit_code(0);
    store.read_until("FDNAME=upgrade-conn");

    // The state as a version with another format would have written it.
    let at = store
        .fds
        .iter()
        .position(|(_, name)| name == "upgrade-state")
        .expect("a state in the store");
    let (state, _) = store.fds.remove(at);
    let mut text = String::new();
    std::fs::File::from(state)
        .read_to_string(&mut text)
        .expect("read the state");
    let mut value: serde_json::Value = serde_json::from_str(&text).expect("the state is JSON");
    let format = value["format"].as_u64().expect("a format");
    value["format"] = serde_json::Value::from(format + 1);
    let dir = TempDir::new("other-format");
    let path = dir.path().join("state");
    std::fs::write(&path, value.to_string()).expect("write the state");
    let file = std::fs::File::open(&path).expect("open the state");
    store.fds.push((OwnedFd::from(file), "upgrade-state".to_string()));

    let new = store.start_next(&[], 1);
    alice.expect_line("-- server restarted; your session could not be kept, please reconnect");
    alice.expect_eof();
    let refused = format!(
        "the state is in format {} (written by version {}); this version reads format {format} only",
        format + 1,
        version()
    );
    assert!(
        new.proc.stderr_lines().iter().any(|l| l.contains(&refused)),
        "the log says why:\n{}",
        new.proc.stderr_lines().join("\n")
    );
    // It serves newcomers, from a clean start: alice's nick is free.
    let mut again = new.connect();
    again.rename("alice");
}

#[test]
fn a_store_too_small_for_everyone_makes_sigterm_a_plain_stop() {
    let mut store = Store::new();
    // The state, the listener and two clients need four.
    let command = store.daemon_command_holding(&["--listen", "127.0.0.1:0", "--quiet-above", "1"], 3);
    let mut old = {
        let _spawning = spawn_lock();
        Daemon::start_with(command, 1)
    };
    store.read_until("READY=1");
    let mut alice = old.connect_named("alice");
    let mut bob = old.connect_named("bob");
    old.proc.signal("TERM");
    alice.expect_line("-- server shutting down");
    alice.expect_eof();
    bob.expect_line("-- server shutting down");
    bob.expect_eof();
    drop((alice, bob));
    old.proc.expect_exit_code(0);
    assert!(
        old.proc.stderr_lines().iter().any(|l| l.contains(
            "the service manager's descriptor store holds 3 (FileDescriptorStoreMax=), 4 are needed"
        )),
        "the log says why:\n{}",
        old.proc.stderr_lines().join("\n")
    );
    store.read_until("STOPPING=1");
    assert!(store.fds.is_empty(), "nothing is stored: {:#?}", store.seen);
}

/// The version the binary reports, as restored users are told it.
fn version() -> String {
    let output = clean_command(binary("chat-server"))
        .arg("--version")
        .output()
        .expect("run chat-server --version");
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    text.strip_prefix("chat-server ").unwrap_or(&text).to_string()
}

// ---------------------------------------------------------------------------
// A big restart, measured.

/// Idle connections held across the big restart.
const CROWD: usize = 5000;

/// One line every this long from the speaker of the big restart.
const TICK: std::time::Duration = std::time::Duration::from_millis(2);

/// The most ticks the speaker sends: a bound on its loop (about 6 s).
const MAX_TICKS: u64 = 3000;

#[test]
fn a_restart_with_5000_connections_keeps_every_one_and_the_pause_is_measured() {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Duration;

    let dir = TempDir::new("crowd");
    let ctl = dir.path().join("ctl");
    let ctl_arg = ctl.to_str().expect("a UTF-8 path");
    let options = [
        "--control-socket",
        ctl_arg,
        "--max-per-ip",
        "0",
        "--max-per-net",
        "0",
        "--connect-rate",
        "0",
        "--rate",
        "0",
        "--quiet-above",
        "1",
    ];
    let mut args = vec!["--listen", "127.0.0.1:0"];
    args.extend_from_slice(&options);
    let mut old = start(&args, 1);
    let addr = old.addr();
    let crowd: Vec<TcpStream> = (0..CROWD)
        .map(|i| match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(stream) => stream,
            Err(e) => panic!("connection {i} of the crowd: {e}"),
        })
        .collect();
    let mut speaker = Client::connect_named(addr, "speaker");
    let mut listener = Client::connect_named(addr, "listener");
    speaker.send("/join #bench");
    speaker.expect_line("-- you joined #bench");
    listener.send("/join #bench");
    listener.expect_line("-- you joined #bench");
    // Every one of the crowd is on the chat before the restart.
    listener.send("/rooms");
    let rooms = listener.read_line();
    assert!(rooms.contains(&format!("#lobby ({CROWD})")), "{rooms:?}");

    // The speaker says a numbered line every TICK until told to stop; the
    // listener notes when each comes.
    let stop = Arc::new(AtomicBool::new(false));
    let speaking = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            let mut sent = 0u64;
            while sent < MAX_TICKS && !stop.load(Ordering::Acquire) {
                speaker.send(&format!("tick {sent}"));
                sent += 1;
                std::thread::sleep(TICK);
            }
            (speaker, sent)
        }
    });
    let (arrived_tx, arrived) = std::sync::mpsc::channel::<(u64, Instant)>();
    let listening = std::thread::spawn(move || {
        let mut other = Vec::new();
        for _ in 0..MAX_TICKS + 10 {
            let line = listener.read_line();
            if said_by(&line, "speaker").as_deref() == Some("done") {
                break;
            }
            match said_by(&line, "speaker").and_then(|t| t.strip_prefix("tick ")?.parse::<u64>().ok()) {
                Some(n) => {
                    if arrived_tx.send((n, Instant::now())).is_err() {
                        break;
                    }
                }
                None if is_line_restart_notice(&line) => other.push(line),
                None => panic!("the listener read {line:?}"),
            }
        }
        other
    });
    // Half a second of chat before the restart.
    let mut ticks = Vec::new();
    let before_restart = Instant::now() + Duration::from_millis(500);
    while Instant::now() < before_restart {
        match arrived.recv_timeout(TIMEOUT) {
            Ok(tick) => ticks.push(tick),
            Err(e) => panic!("no tick after {:?}: {e}", ticks.last()),
        }
    }
    let began = Instant::now();
    let mut args = vec!["--listen", addr.to_string().leak() as &str];
    args.extend_from_slice(&options);
    let new = take_over(&mut old, &ctl, &args, 1);
    let handed_over = began.elapsed();
    let handed_line = old
        .proc
        .stderr_lines()
        .iter()
        .find(|l| l.contains("handed over "))
        .cloned()
        .unwrap_or_default();
    // A second of chat after the restart, then the speaker stops.
    let after = Instant::now() + Duration::from_secs(1);
    while Instant::now() < after {
        match arrived.recv_timeout(TIMEOUT) {
            Ok(tick) => ticks.push(tick),
            Err(e) => panic!("no tick after {:?}: {e}", ticks.last()),
        }
    }
    stop.store(true, Ordering::Release);
    let (mut speaker, sent) = speaking.join().expect("the speaker");
    speaker.send("done");
    for _ in 0..MAX_TICKS {
        if ticks.last().is_some_and(|(n, _)| n + 1 == sent) {
            break;
        }
        ticks.push(arrived.recv_timeout(TIMEOUT).expect("every tick comes"));
    }
    drop(arrived);
    let numbers: Vec<u64> = ticks.iter().map(|(n, _)| *n).collect();
    let expected: Vec<u64> = (0..sent).collect();
    assert_eq!(numbers, expected, "every tick, in order, once");
    let (gap, before) = ticks
        .windows(2)
        .map(|pair| (pair[1].1 - pair[0].1, pair[0].0))
        .max()
        .expect("ticks");

    // Every one of the crowd is still connected and is told.
    let reading = Instant::now();
    for (i, stream) in crowd.into_iter().enumerate() {
        stream.set_read_timeout(Some(TIMEOUT)).expect("set a timeout");
        let mut reader = BufReader::new(stream);
        let mut welcome = String::new();
        reader.read_line(&mut welcome).expect("the welcome");
        assert!(
            welcome.starts_with("-- welcome to chat-server, guest"),
            "{i}: {welcome:?}"
        );
        let mut notice = String::new();
        match reader.read_line(&mut notice) {
            Ok(_) => assert!(is_line_restart_notice(notice.trim_end()), "{i}: {notice:?}"),
            Err(e) => panic!("connection {i} of the crowd lost: {e}"),
        }
        let mut stream = reader.into_inner();
        stream.write_all(b"/quit\n").expect("still writable");
    }
    println!(
        "restart with {CROWD} idle connections and 2 in a room: the chat stood still for {} ms \
         (the longest gap between two lines, after tick {before} of {sent}); the handover, from \
         asking to the old process's exit, took {} ms; reading the crowd's notices took {} ms",
        gap.as_millis(),
        handed_over.as_millis(),
        reading.elapsed().as_millis()
    );
    println!("the old process said: {handed_line}");
    drop(speaker);
    let notices = listening.join().expect("the listener");
    assert_eq!(notices.len(), 1, "the listener is told once: {notices:?}");
    drop(new);
}

// ---------------------------------------------------------------------------
// What is carried and what is not, and a take-over that fails.

#[test]
fn a_websocket_and_an_irc_client_still_registering_are_carried_and_a_tls_client_is_told_and_closed() {
    use chat_tests::tls::{Certificate, TlsClient};
    use chat_tests::web::WsClient;
    use std::io::BufRead;

    let dir = TempDir::new("kinds");
    let ctl = dir.path().join("ctl");
    let ctl_arg = ctl.to_str().expect("a UTF-8 path");
    let certificate = Certificate::new("upgrade");
    let cert = certificate.cert_path();
    let key = certificate.key_path();
    let (cert, key) = (cert.to_str().expect("UTF-8"), key.to_str().expect("UTF-8"));
    let listen = |line: &str, web: &str, irc: &str, tls: &str| {
        vec![
            "--listen".to_string(),
            line.to_string(),
            "--web-listen".to_string(),
            web.to_string(),
            "--irc-listen".to_string(),
            irc.to_string(),
            "--tls-listen".to_string(),
            tls.to_string(),
        ]
    };
    let others = ["--tls-cert", cert, "--tls-key", key, "--control-socket", ctl_arg];
    let any = "127.0.0.1:0";
    let mut args = listen(any, any, any, any);
    args.extend(others.iter().map(ToString::to_string));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut old = start(&args, 4);
    // The daemon logs its listeners in this order.
    let [line_addr, tls_addr, irc_addr, web_addr] = [0, 1, 2, 3].map(|i| old.addrs()[i]);

    let mut wendy = WsClient::connect_named(web_addr, "wendy");
    wendy.send("/join #r");
    wendy.expect_line("-- you joined #r");
    let mut tom = TlsClient::connect(tls_addr, &certificate.der);
    let welcome = tom.read_line();
    assert!(
        welcome.starts_with("-- welcome to chat-server, guest"),
        "{welcome:?}"
    );
    tom.send("/nick tom");
    tom.expect_line("-- you are now known as tom");
    tom.send("/join #r");
    tom.expect_line("-- you joined #r");
    wendy.expect_line("-- tom joined #r");
    let mut ivy = IrcClient::connect(irc_addr);
    ivy.send("NICK ivy");
    // Answered by the old process: ivy is its connection, registering,
    // before the take-over (not one still in the listener's backlog,
    // which the new process would take in as a newcomer).
    let before = ivy.sync("carried");
    assert!(before.is_empty(), "nothing before registering: {before:?}");

    let mut args = listen(
        &line_addr.to_string(),
        &web_addr.to_string(),
        &irc_addr.to_string(),
        &tls_addr.to_string(),
    );
    args.extend(others.iter().map(ToString::to_string));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let new = take_over(&mut old, &ctl, &args, 4);

    tom.expect_line(
        "-- [server] the server is restarting and cannot keep this connection (TLS); please reconnect",
    );
    let mut rest = String::new();
    let ended = matches!(tom.reader().read_line(&mut rest), Ok(0) | Err(_));
    assert!(ended, "the TLS connection is closed, not {rest:?}");
    wendy.expect_line("-- tom left #r (disconnect)");
    let line = wendy.read_line();
    assert!(is_line_restart_notice(&line), "{line:?}");
    wendy.send("/who");
    wendy.expect_line("-- 1 in #r: @wendy");
    // ivy registers with the new process, from where she was.
    ivy.send("USER ivy 0 * :Ivy");
    let notice = ivy.read_line();
    assert!(is_irc_restart_notice(&notice), "{notice:?}");
    let welcome = ivy.read_line();
    assert!(welcome.contains(" 001 ivy "), "{welcome:?}");
    // And TLS serves newcomers again.
    let mut again = TlsClient::connect(tls_addr, &certificate.der);
    let welcome = again.read_line();
    assert!(
        welcome.starts_with("-- welcome to chat-server, guest"),
        "{welcome:?}"
    );
    drop(new);
}

#[test]
fn when_the_new_process_fails_before_taking_over_the_old_one_serves_everyone_again() {
    let dir = TempDir::new("fails");
    let ctl = dir.path().join("ctl");
    let ctl_arg = ctl.to_str().expect("a UTF-8 path");
    let quiet = ["--quiet-above", "1"];
    let mut args = vec!["--listen", "127.0.0.1:0", "--control-socket", ctl_arg];
    args.extend(quiet);
    let mut old = start(&args, 1);
    let addr = old.addr();
    let mut alice = Client::connect_named(addr, "alice");
    let mut bob = Client::connect_named(addr, "bob");

    // It takes everything, then cannot start: one of its addresses is
    // taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let taken_addr = taken.local_addr().expect("its address").to_string();
    let mut failing = {
        let _spawning = spawn_lock();
        Proc::spawn(
            "chat-server",
            Daemon::command(&[
                "--listen",
                &addr.to_string(),
                "--irc-listen",
                &taken_addr,
                "--control-socket",
                ctl_arg,
                "--take-over",
                ctl_arg,
            ]),
            "build it with `cargo build --workspace`",
        )
    };
    failing.expect_exit_code(1);
    old.proc.expect_stderr_containing(&[
        "the new process did not take over",
        "serving every client again here",
    ]);
    // Nothing changed for them: they are told nothing, and chat on.
    alice.send("still here");
    bob.expect_line("<alice> still here");
    // Its control socket answers again: a second take-over works.
    let addr_arg = addr.to_string();
    let mut args = vec!["--listen", &addr_arg, "--control-socket", ctl_arg];
    args.extend(quiet);
    let new = take_over(&mut old, &ctl, &args, 1);
    let line = alice.read_line();
    assert!(is_line_restart_notice(&line), "{line:?}");
    bob.send("and now?");
    alice.expect_line("<bob> and now?");
    drop(new);
}
