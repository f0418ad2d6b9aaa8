//! The real binaries: the `chat-server` daemon (its options, its log, its
//! start-up failure, its signals) and the peers a user runs against it, the
//! `chat-client` binary in a pipe and plain netcat.
//!
//! The daemon always listens on 127.0.0.1 (or ::1) port 0 and the tests
//! learn the port from its log. Every child is killed and reaped by its
//! guard even when a test fails.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs};

use chat_tests::{binary, clean_command, parse_welcome, spawn_chat_client, spawn_nc, Client, Daemon, Proc};

/// Checks a daemon log for signs of trouble: a panic or an error line.
#[track_caller]
fn assert_clean_log(daemon: &Daemon) {
    for line in daemon.proc.stderr_lines() {
        let lower = line.to_ascii_lowercase();
        assert!(
            !lower.contains("panicked") && !lower.contains("error"),
            "unexpected line in the daemon's log: {line:?}\nfull log:\n{}",
            daemon.proc.stderr_lines().join("\n")
        );
    }
}

#[test]
fn the_daemon_serves_clients_and_logs_each_connection() {
    let mut daemon = Daemon::start(&[]);
    let (mut alice, alice_guest) = guest_then_rename(&daemon, "alice");
    let alice_addr = alice.local_addr().to_string();
    daemon
        .proc
        .expect_stderr_containing(&["connect", &alice_addr, &alice_guest]);
    let (mut bob, guest) = guest_then_rename(&daemon, "bob");
    alice.expect_line(&format!("-- {guest} joined #lobby"));
    alice.expect_line(&format!("-- {guest} is now known as bob"));
    bob.send("hi alice");
    alice.expect_line("<bob> hi alice");

    alice.send("/quit");
    alice.expect_line("-- bye");
    alice.expect_eof();
    // The disconnect is logged with the address and the nick.
    daemon
        .proc
        .expect_stderr_containing(&["disconnect", &alice_addr, "alice"]);
    bob.expect_line("-- alice left #lobby (quit)");
}

#[test]
fn sigterm_sends_the_shutdown_notice_after_queued_messages_and_exits_zero() {
    let mut daemon = Daemon::start(&[]);
    let mut alice = daemon.connect_named("alice");
    let (mut bob, guest) = guest_then_rename(&daemon, "bob");
    alice.expect_line(&format!("-- {guest} joined #lobby"));
    alice.expect_line(&format!("-- {guest} is now known as bob"));

    alice.send("last words");
    // The /who reply proves the daemon handled "last words" (queued for
    // bob, who has not read it) before the signal is sent.
    alice.send("/who");
    alice.expect_line("-- 2 in #lobby: alice, bob");
    daemon.proc.signal("TERM");

    bob.expect_line("<alice> last words");
    bob.expect_line("-- server shutting down");
    bob.expect_eof();
    alice.expect_line("-- server shutting down");
    alice.expect_eof();
    // Close our side as netcat or chat-client would on EOF; the daemon
    // waits (within its grace period) for that.
    drop((alice, bob));
    daemon.proc.expect_exit_code(0);
    assert_clean_log(&daemon);
}

#[test]
fn sigint_shuts_down_the_same_way() {
    let mut daemon = Daemon::start(&[]);
    let mut alice = daemon.connect_named("alice");
    daemon.proc.signal("INT");
    alice.expect_line("-- server shutting down");
    alice.expect_eof();
    drop(alice);
    daemon.proc.expect_exit_code(0);
    assert_clean_log(&daemon);
}

#[test]
fn the_shutdown_grace_bounds_the_wait_for_a_client_that_stays() {
    let mut daemon = Daemon::start(&["--shutdown-grace", "1"]);
    // This client reads the notice and the EOF but never closes its side.
    let mut stays = daemon.connect();
    daemon.proc.signal("TERM");
    stays.expect_line("-- server shutting down");
    stays.expect_eof();
    daemon.proc.expect_exit_code(0);
    assert_clean_log(&daemon);
}

#[test]
fn log_lines_count_one_client_in_the_singular() {
    let mut daemon = Daemon::start(&["--threads", "1", "--stats-interval", "0.1"]);
    daemon
        .proc
        .expect_stderr_containing(&["serving with 1 I/O thread"]);
    let mut guest = daemon.connect();
    guest.send("/who");
    guest.expect_line(&format!("-- 1 in #lobby: {}", guest.nick()));
    // The first stats line written after the /who was counted.
    let stats = daemon.proc.expect_stderr_containing(&[
        "stats: 1 client, 1 room; since start: 1 connection accepted",
        "1 line received",
    ]);
    assert!(
        stats.contains(", 0 closed (0 slow consumers), 1 line received, 0 messages delivered, "),
        "{stats}"
    );
    daemon.proc.signal("TERM");
    guest.expect_line("-- server shutting down");
    daemon
        .proc
        .expect_stderr_containing(&["shutting down: telling 1 client"]);
}

#[test]
fn a_second_daemon_on_a_busy_port_fails_with_one_clear_line() {
    let first = Daemon::start(&[]);
    let busy = first.addr().to_string();
    let mut second = Proc::spawn(
        "second chat-server",
        Daemon::command(&["--listen", &busy]),
        "build it with `cargo build --workspace`",
    );
    second.expect_exit_code(1);
    assert_eq!(
        second.stderr_lines(),
        [format!("error: cannot listen on {busy}: address already in use")],
        "the whole of stderr"
    );
    assert_eq!(second.stdout_lines(), [] as [String; 0], "nothing on stdout");
    // The first one is unharmed.
    first.connect();
}

/// A shell command that runs the daemon under the given soft and hard
/// descriptor limits.
fn under_descriptor_limits(soft: u32, hard: u32, args: &[&str]) -> std::process::Command {
    let mut command = clean_command("sh");
    command
        .args([
            "-c",
            r#"ulimit -Sn "$1" && ulimit -Hn "$2" && shift 2 && exec "$@""#,
            "sh",
        ])
        .args([soft.to_string(), hard.to_string()])
        .arg(binary("chat-server"))
        .args(args);
    command
}

#[test]
fn the_daemon_raises_its_descriptor_limit_and_logs_the_room_it_has() {
    let daemon = Daemon::start_with(
        under_descriptor_limits(100, 1000, &["--listen", "127.0.0.1:0", "--threads", "2"]),
        1,
    );
    // 1000 less 37 kept (standard streams, notify socket, signal pipe and
    // a spare of 1000 / 32), 1 listener, and a poll and a waker for each
    // of two I/O threads and the acceptor. Logged before it listens, so
    // among the lines read while starting.
    let log = daemon.proc.stderr_lines();
    for expected in [
        "descriptor limit 1000 (raised from 100): room for 956 clients",
        // The default --max-clients (10,000) did not fit: it was lowered,
        // keeping 956 / 16 for sockets still closing.
        "serving at most 897 clients, not the default 10000: the descriptor limit allows no more \
         (room for 956, a sixteenth of it kept for sockets still closing)",
    ] {
        assert!(
            log.iter().any(|line| line.ends_with(expected)),
            "no line ending {expected:?} in {log:?}"
        );
    }
    daemon.connect();
}

#[test]
fn under_a_limit_of_64_descriptors_the_daemon_still_serves() {
    let daemon = Daemon::start_with(
        under_descriptor_limits(64, 64, &["--listen", "127.0.0.1:0", "--threads", "2"]),
        1,
    );
    let log = daemon.proc.stderr_lines();
    assert!(
        log.iter()
            .any(|line| line.ends_with("descriptor limit 64: room for 43 clients")),
        "{log:?}"
    );
    let [mut alice, mut bob] = [daemon.connect_named("alice"), daemon.connect_named("bob")];
    alice.expect_line("-- guest2 joined #lobby");
    alice.expect_line("-- guest2 is now known as bob");
    bob.send("still room for us");
    alice.expect_line("<bob> still room for us");
}

#[test]
fn a_limit_with_no_room_for_one_client_is_a_start_error() {
    let mut daemon = Proc::spawn(
        "chat-server",
        under_descriptor_limits(16, 16, &["--listen", "127.0.0.1:0", "--threads", "2"]),
        "build it with `cargo build --workspace`",
    );
    daemon.expect_exit_code(1);
    let last = daemon.stderr_lines().last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("error: the descriptor limit of 16 leaves no room for a single client"),
        "{:?}",
        daemon.stderr_lines()
    );
}

#[test]
fn max_clients_beyond_the_descriptor_limit_is_a_start_error() {
    let mut daemon = Proc::spawn(
        "chat-server",
        under_descriptor_limits(
            100,
            1000,
            &[
                "--listen",
                "127.0.0.1:0",
                "--threads",
                "2",
                "--max-clients",
                "5000",
            ],
        ),
        "build it with `cargo build --workspace`",
    );
    daemon.expect_exit_code(1);
    assert_eq!(
        daemon.stderr_lines().last().map(String::as_str),
        Some(
            "error: --max-clients 5000 does not fit the descriptor limit of 1000 (room for 956 clients); \
             raise the limit (LimitNOFILE= in the unit, ulimit -n in a shell) or lower --max-clients"
        ),
        "stderr: {:?}",
        daemon.stderr_lines()
    );
}

/// Checks a daemon started with a line limit of 8 bytes and room for one
/// client.
#[track_caller]
fn assert_max_line_8_and_max_clients_1(daemon: &Daemon) {
    // A guest: "/nick alice" would itself be over the limit.
    let mut guest = daemon.connect();
    guest.send("123456789");
    guest.expect_line("!! line too long (max 8 bytes); discarded up to the next newline");
    // Exactly 8 bytes is within the limit: it is parsed as a command.
    guest.send("/dance12");
    guest.expect_line("!! unknown command /dance12; type /help for the list");
    let mut refused = Client::connect(daemon.addr());
    refused.expect_line("!! server full");
    refused.expect_eof();
}

#[test]
fn command_line_options_set_the_limits() {
    let daemon = Daemon::start(&["--max-clients", "1", "--max-line", "8", "--shutdown-grace", "1"]);
    assert_max_line_8_and_max_clients_1(&daemon);
}

#[test]
fn environment_variables_set_the_options() {
    let mut command = Daemon::command(&[]);
    command
        .env("CHAT_SERVER_LISTEN", "127.0.0.1:0")
        .env("CHAT_SERVER_MAX_LINE", "8")
        .env("CHAT_SERVER_MAX_CLIENTS", "1")
        .env("CHAT_SERVER_SHUTDOWN_GRACE", "1");
    let daemon = Daemon::start_with(command, 1);
    assert!(daemon.addr().ip().is_loopback() && daemon.addr().port() != 0);
    assert_max_line_8_and_max_clients_1(&daemon);
}

#[test]
fn listen_can_be_repeated_for_ipv4_and_ipv6() {
    let command = Daemon::command(&["--listen", "127.0.0.1:0", "--listen", "[::1]:0"]);
    let daemon = Daemon::start_with(command, 2);
    let addrs = daemon.addrs().to_vec();
    assert!(addrs.iter().any(SocketAddr::is_ipv4), "{addrs:?}");
    assert!(addrs.iter().any(SocketAddr::is_ipv6), "{addrs:?}");

    let mut alice = Client::connect_named(addrs[0], "alice");
    let mut other = Client::connect_guest(addrs[1]);
    alice.expect_line(&format!("-- {} joined #lobby", other.nick()));
    other.send("hello across families");
    alice.expect_line(&format!("<{}> hello across families", other.nick()));
}

#[test]
fn listen_takes_a_host_name_and_listens_on_each_of_its_addresses() {
    // What the system's resolver makes of localhost: 127.0.0.1, ::1 or
    // both, from /etc/hosts (no query leaves the machine).
    let resolved: BTreeSet<IpAddr> = ("localhost", 0)
        .to_socket_addrs()
        .expect("localhost resolves")
        .map(|addr| addr.ip())
        .collect();
    assert!(resolved.iter().all(IpAddr::is_loopback), "{resolved:?}");
    let daemon = Daemon::start_with(Daemon::command(&["--listen", "localhost:0"]), resolved.len());
    let listening: BTreeSet<IpAddr> = daemon.addrs().iter().map(SocketAddr::ip).collect();
    assert_eq!(listening, resolved, "one listener per address of localhost");
    for &addr in daemon.addrs() {
        assert_ne!(addr.port(), 0);
        let mut client = Client::connect_guest(addr);
        client.send("/who");
        client.expect_line(&format!("-- 1 in #lobby: {}", client.nick()));
    }
}

#[test]
fn a_bad_value_in_a_variable_is_reported_under_the_variables_name() {
    let mut command = Daemon::command(&["--listen", "127.0.0.1:0"]);
    command.env("CHAT_SERVER_RATE", "abc");
    let mut daemon = Proc::spawn("chat-server", command, "");
    daemon.expect_exit_code(2);
    assert_eq!(
        daemon.stderr_lines().first().map(String::as_str),
        Some(
            "error: invalid value 'abc' in the environment variable CHAT_SERVER_RATE \
             (for '--rate <LINES_PER_SEC>'): invalid digit found in string"
        ),
        "stderr: {:?}",
        daemon.stderr_lines()
    );
    // On the command line, the option is named, whatever the variable.
    for env in ["abc", "5"] {
        let mut command = Daemon::command(&["--listen", "127.0.0.1:0", "--rate", "lots"]);
        command.env("CHAT_SERVER_RATE", env);
        let mut daemon = Proc::spawn("chat-server", command, "");
        daemon.expect_exit_code(2);
        assert_eq!(
            daemon.stderr_lines().first().map(String::as_str),
            Some("error: invalid value 'lots' for '--rate <LINES_PER_SEC>': invalid digit found in string"),
            "CHAT_SERVER_RATE={env}; stderr: {:?}",
            daemon.stderr_lines()
        );
    }
}

#[test]
fn listen_in_the_environment_may_have_spaces_after_its_commas() {
    let mut command = Daemon::command(&[]);
    command.env("CHAT_SERVER_LISTEN", "127.0.0.1:0, 127.0.0.1:0");
    let daemon = Daemon::start_with(command, 2);
    let [first, second] = [daemon.addrs()[0], daemon.addrs()[1]];
    assert_ne!(first.port(), second.port(), "two listeners");
    let mut alice = Client::connect_named(first, "alice");
    let bob = Client::connect_guest(second);
    alice.expect_line(&format!("-- {} joined #lobby", bob.nick()));
}

#[test]
fn an_empty_variable_counts_as_unset() {
    // Each of these, set to a value, would change the daemon's behaviour
    // or be a usage error when empty, as all of them were before.
    let mut command = Daemon::command(&["--listen", "127.0.0.1:0"]);
    for var in [
        "CHAT_SERVER_MAX_LINE",
        "CHAT_SERVER_RATE",
        "CHAT_SERVER_METRICS_LISTEN",
        "CHAT_SERVER_SHUTDOWN_GRACE",
    ] {
        command.env(var, "");
    }
    let daemon = Daemon::start_with(command, 1);
    let mut alice = daemon.connect_named("alice");
    alice.send(&"x".repeat(4096));
    alice.send("/who");
    alice.expect_line("-- 1 in #lobby: alice");
    assert!(
        !daemon.proc.stderr_lines().iter().any(|l| l.contains("metrics")),
        "no metrics endpoint: {:?}",
        daemon.proc.stderr_lines()
    );
}

#[test]
fn usage_errors_exit_2_and_help_explains_every_option() {
    for args in [
        &["--bogus"][..],
        &["--max-line", "lots"],
        // A well-formed host name would be resolved (and fail with exit
        // 1, after asking the network): this is no name at all.
        &["--listen", "not an address"],
        &["--listen", "7878"],
    ] {
        let mut daemon = Proc::spawn("chat-server", Daemon::command(args), "");
        daemon.expect_exit_code(2);
        assert!(
            !daemon.stderr_lines().is_empty(),
            "a usage error for {args:?} must say what is wrong on stderr"
        );
    }
    let mut help = Proc::spawn("chat-server --help", Daemon::command(&["--help"]), "");
    help.expect_exit_code(0);
    let text = help.stdout_lines().join("\n");
    for option in [
        "--listen",
        "--max-line",
        "--max-clients",
        "--shutdown-grace",
        "CHAT_SERVER_LISTEN",
        // Where the installed documents are, what the signals do, and the
        // exit codes.
        "/usr/share/doc/chat-server/PROTOCOL.md",
        "/usr/share/doc/chat-server/README.md",
        "SIGHUP",
        "Exit status: 0",
    ] {
        assert!(text.contains(option), "--help does not mention {option}:\n{text}");
    }
}

/// Connects a guest and renames it, returning the client and the guest
/// nick it had (which the others saw join).
#[track_caller]
fn guest_then_rename(daemon: &Daemon, nick: &str) -> (Client, String) {
    let mut client = daemon.connect();
    let guest = client.nick().to_string();
    client.rename(nick);
    (client, guest)
}

#[test]
fn netcat_can_chat_with_the_daemon() {
    let daemon = Daemon::start(&[]);
    let mut watcher = daemon.connect_named("watcher");
    let mut nc = spawn_nc(daemon.addr());

    let welcome = nc.stdout_line().expect("nc printed the welcome");
    let guest = parse_welcome(&welcome)
        .unwrap_or_else(|| panic!("nc's first line is not a welcome: {welcome:?}"))
        .to_string();
    watcher.expect_line(&format!("-- {guest} joined #lobby"));

    nc.write_stdin("/nick netty\n");
    nc.expect_stdout_line("-- you are now known as netty");
    watcher.expect_line(&format!("-- {guest} is now known as netty"));

    watcher.send("hello netty");
    nc.expect_stdout_line("<watcher> hello netty");
    nc.write_stdin("hello from nc\n");
    watcher.expect_line("<netty> hello from nc");

    nc.write_stdin("/quit done here\n");
    nc.expect_stdout_line("-- bye");
    nc.close_stdin();
    assert_eq!(nc.stdout_line(), None, "nc prints nothing after the bye");
    nc.expect_exit_code(0);
    watcher.expect_line("-- netty left #lobby (quit: done here)");
}

#[test]
fn netcat_with_n_ends_the_session_at_the_end_of_its_input() {
    // README's script form: printf '/nick ci\n...' | nc -N ADDR PORT. The
    // end of the input closes nc's side, which the server takes as
    // leaving, so nc ends without a /quit (plain nc would wait forever).
    let daemon = Daemon::start(&[]);
    let mut watcher = daemon.connect_named("watcher");
    let addr = daemon.addr();
    let mut command = clean_command("nc");
    command
        .arg("-N")
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string());
    let mut nc = Proc::spawn("nc -N", command, "install netcat-openbsd");
    nc.write_stdin("/nick ci\nbuild #128 passed\n");
    nc.close_stdin();
    let joined = watcher.read_line();
    let guest = joined
        .strip_prefix("-- ")
        .and_then(|rest| rest.strip_suffix(" joined #lobby"))
        .unwrap_or_else(|| panic!("expected a join notice, got {joined:?}"))
        .to_string();
    watcher.expect_lines(&[
        &format!("-- {guest} is now known as ci"),
        "<ci> build #128 passed",
        "-- ci left #lobby (disconnect)",
    ]);
    nc.expect_exit_code(0);
    assert_eq!(
        nc.stdout_lines().last().map(String::as_str),
        Some("-- you are now known as ci"),
        "{:?}",
        nc.stdout_lines()
    );
}

#[test]
fn chat_client_in_a_pipe_says_its_lines_and_exits_zero() {
    let daemon = Daemon::start(&[]);
    let mut watcher = daemon.connect_named("watcher");
    let addr = daemon.addr().to_string();
    // printf 'hi\nsecond line\n' | chat-client ADDR --nick bot
    let mut client = spawn_chat_client(&[&addr, "--nick", "bot"]);
    client.write_stdin("hi\nsecond line\n");
    client.close_stdin();

    let joined = watcher.read_line();
    let guest = joined
        .strip_prefix("-- ")
        .and_then(|rest| rest.strip_suffix(" joined #lobby"))
        .unwrap_or_else(|| panic!("expected a join notice, got {joined:?}"))
        .to_string();
    watcher.expect_lines(&[
        &format!("-- {guest} is now known as bot"),
        "<bot> hi",
        "<bot> second line",
        "-- bot left #lobby (quit)",
    ]);

    client.expect_exit_code(0);
    assert_eq!(
        client.stdout_lines(),
        [
            chat_tests::welcome_line(&guest),
            "-- you are now known as bot".to_string(),
            "-- bye".to_string()
        ],
        "chat-client's stdout: the server's lines, as sent"
    );
}

#[test]
fn chat_client_with_a_room_joins_it_before_talking() {
    let daemon = Daemon::start(&[]);
    let mut watcher = daemon.connect_named("watcher");
    watcher.send("/join rust");
    watcher.expect_line("-- you joined #rust");
    let addr = daemon.addr().to_string();
    let mut client = spawn_chat_client(&[&addr, "--nick", "bot", "--room", "rust"]);
    client.write_stdin("hi rust\n");
    client.close_stdin();

    // The client may set the nick or the room first; either way the room
    // learns who came, then hears the line.
    let first = watcher.read_line();
    if first != "-- bot joined #rust" {
        let guest = first
            .strip_prefix("-- ")
            .and_then(|rest| rest.strip_suffix(" joined #rust"))
            .unwrap_or_else(|| panic!("expected bot or a guest to join #rust, got {first:?}"))
            .to_string();
        watcher.expect_line(&format!("-- {guest} is now known as bot"));
    }
    watcher.expect_line("<bot> hi rust");
    watcher.expect_line("-- bot left #rust (quit)");
    client.expect_exit_code(0);
}

#[test]
fn chat_client_says_so_and_exits_non_zero_when_the_server_goes_away() {
    let mut daemon = Daemon::start(&[]);
    let addr = daemon.addr().to_string();
    let mut client = spawn_chat_client(&[&addr, "--nick", "bot"]);
    let welcome = client.stdout_line().expect("chat-client printed the welcome");
    assert!(parse_welcome(&welcome).is_some(), "not a welcome: {welcome:?}");
    client.expect_stdout_line("-- you are now known as bot");

    // stdin stays open: the client is waiting for the user when the
    // server stops.
    daemon.proc.signal("TERM");
    client.expect_stdout_line("-- server shutting down");
    let status = client.wait_exit();
    assert!(
        !status.success(),
        "chat-client exited with {status} after the server went away"
    );
    assert!(
        !client.stderr_lines().is_empty(),
        "chat-client must say on stderr that the server went away"
    );
    daemon.proc.expect_exit_code(0);
}

#[test]
fn chat_client_fails_clearly_when_nothing_listens() {
    // A port that was free a moment ago: bound, then released.
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port");
        listener.local_addr().expect("its address").to_string()
    };
    let mut client = spawn_chat_client(&[&addr, "--nick", "bot"]);
    client.close_stdin();
    let status = client.wait_exit();
    assert!(
        !status.success(),
        "chat-client exited with {status} with no server"
    );
    assert!(
        !client.stderr_lines().is_empty(),
        "chat-client must say on stderr why it could not connect"
    );
}
