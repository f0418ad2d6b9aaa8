//! `chat-server ctl` against the real daemon: every command, the control
//! socket's permissions, server bans that refuse connections before their
//! welcome and survive a restart, a damaged bans file refused at start, a
//! daemon that stops whatever became of its socket's file, and the exit
//! statuses.
//!
//! Banned connections come from 127.0.0.2 (the test binds its socket
//! there), so the test's own connections from 127.0.0.1 are never refused.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chat_tests::tls::Certificate;
use chat_tests::{binary, clean_command, connect_from, Client, Daemon, Proc};

/// A directory of the test's own, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let path = std::env::temp_dir().join(format!("chat-ctl-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(path.join("state")).expect("make the state directory");
        Dir(path)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("control")
    }

    fn state(&self) -> PathBuf {
        self.0.join("state")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The daemon with its control socket and state directory in `dir`.
#[track_caller]
fn daemon(dir: &Dir, extra: &[&str]) -> Daemon {
    let socket = dir.socket();
    let state = dir.state();
    let mut args = vec![
        "--control-socket",
        socket.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--max-per-ip",
        "0",
        "--connect-rate",
        "0",
    ];
    args.extend_from_slice(extra);
    let mut daemon = Daemon::start(&args);
    daemon
        .proc
        .expect_stderr_containing(&["control socket ", socket.to_str().unwrap()]);
    daemon
}

/// Runs `chat-server ctl --socket SOCKET ARGS` to its end.
#[track_caller]
fn ctl(socket: &Path, args: &[&str]) -> Proc {
    let mut command = clean_command(binary("chat-server"));
    command.arg("ctl").arg("--socket").arg(socket).args(args);
    let mut proc = Proc::spawn("chat-server ctl", command, "cargo build --workspace");
    proc.wait_exit();
    proc
}

/// `ctl ARGS`, which must succeed; its output.
#[track_caller]
fn ok(socket: &Path, args: &[&str]) -> Vec<String> {
    let mut proc = ctl(socket, args);
    proc.expect_exit_code(0);
    assert!(proc.stderr_lines().is_empty(), "{:?}", proc.stderr_lines());
    proc.stdout_lines().to_vec()
}

#[test]
fn every_ctl_command_against_a_running_daemon() {
    let dir = Dir::new("commands");
    let daemon = daemon(&dir, &[]);
    let socket = dir.socket();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the control socket is its owner's alone");

    let status = ok(&socket, &["status"]);
    assert!(status[0].starts_with("0.1.0"), "{status:?}");
    assert!(
        status.contains(&"0 users, 0 registering, 1 room, 0 server bans".to_string()),
        "{status:?}"
    );
    assert!(
        status.contains(&format!("listening on {}", daemon.addr())),
        "{status:?}"
    );

    let mut alice = Client::connect_named(daemon.addr(), "alice");
    alice.send("/join rust");
    alice.expect_line("-- you joined #rust");
    let who = ok(&socket, &["who"]);
    assert_eq!(who.len(), 1, "{who:?}");
    assert!(
        who[0].starts_with(&format!("alice\t{}\tline\tidle ", alice.local_addr())),
        "{who:?}"
    );
    assert!(who[0].ends_with("#rust"), "{who:?}");
    let rooms = ok(&socket, &["rooms"]);
    assert!(
        rooms.iter().any(|r| r.starts_with("#rust\t1 members")),
        "{rooms:?}"
    );

    ok(&socket, &["announce", "maintenance", "at", "noon"]);
    alice.expect_line("-- [server] maintenance at noon");

    // JSON for scripts.
    let json = ok(&socket, &["--json", "who", "rust"]);
    assert!(
        json[0].starts_with("{") && json[0].contains("\"nick\":\"alice\""),
        "{json:?}"
    );

    // Refusals: exit 1, the reason on stderr.
    let mut refused = ctl(&socket, &["kick", "nobody"]);
    refused.expect_exit_code(1);
    assert_eq!(refused.stderr_lines(), ["chat-server ctl: no such nick: nobody"]);
    let mut refused = ctl(&socket, &["ban", "troll!*@*"]);
    refused.expect_exit_code(1);
    assert!(
        refused.stderr_lines()[0].contains("server bans name addresses"),
        "{:?}",
        refused.stderr_lines()
    );
    let mut refused = ctl(&socket, &["reload"]);
    refused.expect_exit_code(1);
    assert_eq!(
        refused.stderr_lines(),
        ["chat-server ctl: nothing to reload: no TLS listener"]
    );

    // A kick: told why, and its room hears it.
    let mut bob = Client::connect_named(daemon.addr(), "bob");
    bob.send("/join rust");
    bob.expect_line("-- you joined #rust");
    alice.expect_line("-- bob joined #rust");
    ok(&socket, &["kick", "bob", "be", "nice"]);
    bob.expect_line("-- a server operator disconnected you: be nice");
    bob.expect_closed();
    alice.expect_line("-- bob left #rust (removed by a server operator: be nice)");

    // A ban: whoever is connected from there is put out, and nobody gets in.
    let far = Ipv4Addr::new(127, 0, 0, 2);
    let mut carol = Client::guest_from_stream(connect_from(daemon.addr(), far));
    let banned = ok(&socket, &["ban", "127.0.0.2", "--duration", "1h", "spam", "wave"]);
    assert_eq!(banned, ["banned; 1 disconnected"]);
    carol.expect_line("-- a server operator disconnected you: spam wave");
    let mut again = Client::from_stream(connect_from(daemon.addr(), far));
    again.expect_line("!! you are banned from this server");
    again.expect_closed();
    let bans = ok(&socket, &["bans"]);
    assert_eq!(bans.len(), 1, "{bans:?}");
    assert!(
        bans[0].starts_with("*!*@127.0.0.2\tset 20") && bans[0].ends_with("\tspam wave"),
        "{bans:?}"
    );
    assert_eq!(ok(&socket, &["unban", "127.0.0.2"]), ["lifted"]);
    let _back = Client::guest_from_stream(connect_from(daemon.addr(), far));

    // Usage errors exit 2; a socket nobody answers on, 3.
    let mut usage = ctl(&socket, &["frobnicate"]);
    usage.expect_exit_code(2);
    let mut nobody = ctl(&dir.0.join("nowhere"), &["status"]);
    nobody.expect_exit_code(3);
    assert!(
        nobody.stderr_lines()[0].starts_with("chat-server ctl: no chat-server answers on "),
        "{:?}",
        nobody.stderr_lines()
    );
}

#[test]
fn ctl_shutdown_stops_the_daemon_and_its_socket_goes() {
    let dir = Dir::new("shutdown");
    let mut daemon = daemon(&dir, &[]);
    let mut alice = daemon.connect_named("alice");
    assert_eq!(ok(&dir.socket(), &["shutdown"]), ["shutting down"]);
    alice.expect_line("-- server shutting down");
    drop(alice);
    daemon.proc.expect_exit_code(0);
    assert!(!dir.socket().exists(), "the socket is removed");
}

#[test]
fn sigterm_stops_the_daemon_even_after_its_control_socket_file_was_deleted() {
    let dir = Dir::new("deleted");
    let mut daemon = daemon(&dir, &[]);
    let mut alice = daemon.connect_named("alice");
    std::fs::remove_file(dir.socket()).expect("delete the control socket's file");
    daemon.proc.signal("TERM");
    alice.expect_line("-- server shutting down");
    drop(alice);
    // Before the fix, the daemon waited for its control thread forever.
    daemon.proc.expect_exit_code(0);
}

#[test]
fn stopping_leaves_a_socket_file_bound_there_since_by_someone_else() {
    let dir = Dir::new("replaced");
    let mut daemon = daemon(&dir, &[]);
    std::fs::remove_file(dir.socket()).expect("delete the control socket's file");
    let other = std::os::unix::net::UnixListener::bind(dir.socket()).expect("bind another socket there");
    daemon.proc.signal("TERM");
    daemon.proc.expect_exit_code(0);
    assert!(dir.socket().exists(), "the other socket's file was removed");
    drop(other);
}

#[test]
fn server_bans_survive_a_restart() {
    let dir = Dir::new("restart");
    let mut first = daemon(&dir, &[]);
    ok(&dir.socket(), &["ban", "127.0.0.2"]);
    first.proc.signal("TERM");
    first.proc.expect_exit_code(0);
    let second = daemon(&dir, &[]);
    second
        .proc
        .stderr_lines()
        .iter()
        .find(|l| l.ends_with("1 server ban in force"))
        .unwrap_or_else(|| panic!("{:?}", second.proc.stderr_lines()));
    let mut refused = Client::from_stream(connect_from(second.addr(), Ipv4Addr::new(127, 0, 0, 2)));
    refused.expect_line("!! you are banned from this server");
    assert_eq!(ok(&dir.socket(), &["bans"]).len(), 1);
}

#[test]
fn a_damaged_bans_file_stops_the_daemon_at_start_with_the_line_at_fault() {
    let dir = Dir::new("damaged");
    std::fs::write(
        dir.state().join("server-bans"),
        "# a comment\n*!*@10.0.0.1\t2026-12-06T20:31:05Z\t-\tfine\nhalf a line\n",
    )
    .unwrap();
    let socket = dir.socket();
    let state = dir.state();
    let mut proc = Proc::spawn(
        "chat-server",
        Daemon::command(&[
            "--listen",
            "127.0.0.1:0",
            "--control-socket",
            socket.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ]),
        "cargo build --workspace",
    );
    proc.expect_exit_code(1);
    assert_eq!(
        proc.error_lines(),
        [format!(
            "error: the server bans in {} are damaged at line 3: not four tab-separated fields; fix or \
             remove the line",
            state.join("server-bans").display()
        )
        .as_str()]
    );
}

#[test]
fn ctl_reload_reads_the_certificate_again() {
    let dir = Dir::new("reload");
    let live = Certificate::new("ctl-live");
    let renewed = Certificate::new("ctl-renewed");
    let (cert, key) = (live.cert_path(), live.key_path());
    let _daemon = daemon(
        &dir,
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    live.replace_with(&renewed);
    assert_eq!(
        ok(&dir.socket(), &["reload"]),
        [format!("reloaded: SHA-256 {}", renewed.fingerprint())]
    );
}
