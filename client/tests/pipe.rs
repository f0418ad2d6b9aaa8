//! Runs the built `chat-client` in a pipe, as scripts do, against a fake
//! server or the real one on loopback.
//!
//! The fake server is a plain `TcpListener` on `127.0.0.1:0` that accepts
//! one connection and follows a script on its own thread, so each test
//! states exactly what the server says and checks exactly what the client
//! sent. The real `chat-server` (built into the same target directory)
//! serves the tests of what only a real server shows: delivery to another
//! user, and `--reconnect` across a restart. These tests pin down the
//! client's contract with scripts: what goes to the server and in which
//! order, what is printed, and the exit codes.
//!
//! Nothing here sleeps to wait for something: sockets have read timeouts,
//! the client's output is collected by threads as it arrives, and every
//! wait on them has a deadline, so a broken client fails a test instead of
//! hanging it.

// The helpers below panic on purpose, as `#[test]` functions may: in a test
// a failed expectation is a failed test, with its message. clippy.toml
// allows that in test functions only, not in helpers they share.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver};
use nix::sys::signal::Signal;
use support::{signal, ChatUser, Collector, RealServer, MAX_LINES, WAIT};

/// The server side of the one connection a fake server accepts.
struct Peer {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Peer {
    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("fake server: write");
    }

    /// The next line from the client without its `\n`, or `None` at end of
    /// stream. Panics when nothing comes within [`WAIT`].
    fn read_line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .expect("fake server: read (timed out?)");
        (n > 0).then(|| line.trim_end_matches('\n').to_string())
    }

    /// Lines up to and including the first `/quit` line.
    fn read_until_quit(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        for _ in 0..MAX_LINES {
            let Some(line) = self.read_line() else {
                panic!("fake server: connection ended before /quit; got {lines:?}");
            };
            let quit = line.starts_with("/quit");
            lines.push(line);
            if quit {
                return lines;
            }
        }
        panic!("fake server: no /quit in {MAX_LINES} lines: {lines:?}");
    }

    /// Closes the server's side as chat-server does, then returns whatever
    /// the client still sends until it closes its side too.
    fn close_and_drain(&mut self) -> Vec<String> {
        self.writer
            .shutdown(Shutdown::Write)
            .expect("fake server: shutdown");
        let mut lines = Vec::new();
        for _ in 0..MAX_LINES {
            match self.read_line() {
                Some(line) => lines.push(line),
                None => return lines,
            }
        }
        panic!("fake server: client kept sending after the close: {lines:?}");
    }
}

/// A fake server running `script` on the first connection. Returns the
/// address to give the client and a channel on which the script's result
/// (the lines the client sent) arrives.
fn fake_server(
    script: impl FnOnce(&mut Peer) -> Vec<String> + Send + 'static,
) -> (String, Receiver<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr").to_string();
    let (tx, rx) = bounded(1);
    thread::spawn(move || {
        let mut peer = accept(&listener);
        let _ = tx.send(script(&mut peer));
    });
    (addr, rx)
}

/// The next connection to `listener`, as the fake server's side of it.
fn accept(listener: &TcpListener) -> Peer {
    let (stream, _) = listener.accept().expect("fake server: accept");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let writer = stream.try_clone().expect("clone");
    Peer {
        reader: BufReader::new(stream),
        writer,
    }
}

/// What the fake server reported, within [`WAIT`].
#[track_caller]
fn server_result(rx: &Receiver<Vec<String>>) -> Vec<String> {
    rx.recv_timeout(WAIT)
        .expect("the fake server's script did not finish (see its panic above)")
}

/// A running `chat-client` whose output is being collected; killed on
/// drop if it is still running.
struct Client {
    child: Child,
    /// Open until [`Client::close_stdin`]; kept open to play a user who has
    /// not finished typing.
    stdin: Option<ChildStdin>,
    /// Standard output, as it arrives; `None` when it was closed at once.
    stdout: Option<Collector>,
    /// Standard error, as it arrives.
    stderr: Collector,
}

/// How a client run ended.
#[derive(Debug)]
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Client {
    /// Starts the client with `args`, collecting its output.
    fn start(args: &[&str]) -> Client {
        Client::launch(args, true)
    }

    /// Starts the client with `args` and its standard output closed at once,
    /// as when the reader of a pipe has gone.
    fn start_with_stdout_closed(args: &[&str]) -> Client {
        Client::launch(args, false)
    }

    /// Starts the client with `args` and `input` waiting, whole, on its
    /// standard input, which then ends: the client has it all from its
    /// start, however soon it exits.
    fn start_with_input(args: &[&str], input: &[u8]) -> Client {
        let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
        let mut writer = std::fs::File::from(write_end);
        // Far less than a pipe holds: the write cannot block.
        writer.write_all(input).expect("fill the pipe");
        drop(writer);
        Client::spawn(args, true, Stdio::from(read_end))
    }

    fn launch(args: &[&str], read_stdout: bool) -> Client {
        Client::spawn(args, read_stdout, Stdio::piped())
    }

    fn spawn(args: &[&str], read_stdout: bool, stdin: Stdio) -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-client"))
            .args(args)
            .env_remove("NO_COLOR")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chat-client");
        let stdout = child.stdout.take().expect("stdout pipe");
        let stderr = child.stderr.take().expect("stderr pipe");
        Client {
            stdin: child.stdin.take(),
            stdout: read_stdout.then(|| Collector::new(stdout)),
            stderr: Collector::new(stderr),
            child,
        }
    }

    fn write(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin
            .write_all(text.as_bytes())
            .expect("write to the client's stdin");
    }

    /// Ends the client's standard input, as the end of a pipe does.
    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits until the client has printed `text` on standard output.
    #[track_caller]
    fn wait_stdout(&mut self, text: &str) {
        self.stdout.as_mut().expect("stdout collected").wait_for(text);
    }

    /// Waits until the client has printed `text` on standard error.
    #[track_caller]
    fn wait_stderr(&mut self, text: &str) {
        self.stderr.wait_for(text);
    }

    /// Waits, within [`WAIT`], for the client to exit, and returns how.
    /// Standard input is left as it is.
    #[track_caller]
    fn wait(&mut self) -> Finished {
        let deadline = Instant::now() + WAIT;
        let stdout = match &mut self.stdout {
            Some(collector) => collector.finish(deadline),
            None => Some(String::new()),
        };
        let stderr = self.stderr.finish(deadline);
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            panic!("chat-client did not exit within {WAIT:?}");
        };
        // Both pipes are at end of file, so the process has exited or is
        // about to: this wait is short.
        let status = self.child.wait().expect("wait for chat-client");
        Finished {
            code: status.code(),
            stdout,
            stderr,
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn stdin_lines_reach_the_server_then_quit_and_server_lines_are_printed() {
    let (addr, server) = fake_server(|peer| {
        peer.send(b"-- welcome to the fake server\n<alice> hi there\nno known shape\n-- bad \xff byte\n");
        let mut lines = peer.read_until_quit();
        peer.send(b"-- bye\n");
        lines.extend(peer.close_and_drain());
        lines
    });
    let mut client = Client::start(&[&addr]);
    client.write("hello\nsecond line\n");
    client.close_stdin();
    let done = client.wait();

    assert_eq!(server_result(&server), ["hello", "second line", "/quit"]);
    assert_eq!(
        done.stdout,
        "-- welcome to the fake server\n<alice> hi there\nno known shape\n-- bad \u{FFFD} byte\n-- bye\n"
    );
    assert_eq!(done.stderr, "");
    assert_eq!(done.code, Some(0));
}

/// chat-server's welcome, as a fake server says it.
const WELCOME: &[u8] = b"-- welcome to chat-server, guest1! you are in #lobby; type /help for commands\n";

#[test]
fn nick_and_room_are_sent_before_any_input() {
    let (addr, server) = fake_server(|peer| {
        peer.send(WELCOME);
        // The client says nothing else until these are answered.
        let mut lines: Vec<String> = (0..2).filter_map(|_| peer.read_line()).collect();
        peer.send(b"-- you are now known as bot\n-- you joined #rust\n");
        lines.extend(peer.read_until_quit());
        lines.extend(peer.close_and_drain());
        lines
    });
    let mut client = Client::start(&[&addr, "--nick", "bot", "--room", "rust"]);
    client.write("hi\n");
    client.close_stdin();
    let done = client.wait();

    assert_eq!(
        server_result(&server),
        ["/nick bot", "/join #rust", "hi", "/quit"]
    );
    assert_eq!(
        done.stdout,
        format!(
            "{}-- you are now known as bot\n-- you joined #rust\n",
            String::from_utf8_lossy(WELCOME)
        )
    );
    assert_eq!(done.code, Some(0), "stderr: {}", done.stderr);
}

#[test]
fn an_unfinished_last_line_is_ended_before_the_quit() {
    let (addr, server) = fake_server(|peer| {
        let mut lines = peer.read_until_quit();
        lines.extend(peer.close_and_drain());
        lines
    });
    let mut client = Client::start(&[&addr]);
    client.write("no newline");
    client.close_stdin();
    let done = client.wait();

    assert_eq!(server_result(&server), ["no newline", "/quit"]);
    assert_eq!(done.code, Some(0), "stderr: {}", done.stderr);
}

#[test]
fn a_quit_line_ends_the_session_cleanly_while_stdin_stays_open() {
    let (addr, server) = fake_server(|peer| {
        let mut lines = peer.read_until_quit();
        peer.send(b"-- bye\n");
        lines.extend(peer.close_and_drain());
        lines
    });
    let mut client = Client::start(&[&addr]);
    client.write("/quit gone fishing\n");
    let done = client.wait();

    // The user's own /quit is the only one: the client adds none.
    assert_eq!(server_result(&server), ["/quit gone fishing"]);
    assert_eq!(done.stdout, "-- bye\n");
    assert_eq!(done.stderr, "");
    assert_eq!(done.code, Some(0));
}

#[test]
fn server_closing_while_stdin_is_open_exits_3() {
    let (addr, server) = fake_server(|peer| {
        peer.send(b"-- welcome\n!! server full\n");
        peer.close_and_drain()
    });
    let mut client = Client::start(&[&addr]);
    // Standard input stays open: the user has not finished.
    let done = client.wait();

    assert_eq!(server_result(&server), Vec::<String>::new());
    assert_eq!(done.stdout, "-- welcome\n!! server full\n");
    assert_eq!(done.stderr, "chat-client: connection closed by server\n");
    assert_eq!(done.code, Some(3));
}

#[test]
fn a_closed_stdout_ends_the_client_quietly_with_a_quit() {
    let (go_tx, go_rx) = bounded::<()>(1);
    let (addr, server) = fake_server(move |peer| {
        // Speak only once the test has closed the client's stdout, so the
        // write that fails is this line's.
        go_rx.recv_timeout(WAIT).expect("go signal");
        peer.send(b"-- welcome\n");
        let mut lines = peer.read_until_quit();
        lines.extend(peer.close_and_drain());
        lines
    });
    let mut client = Client::start_with_stdout_closed(&[&addr]);
    go_tx.send(()).expect("signal the fake server");
    let done = client.wait();

    assert_eq!(server_result(&server), ["/quit"]);
    assert_eq!(done.stderr, "");
    assert_eq!(done.code, Some(0));
}

#[test]
fn a_host_name_is_resolved_and_each_address_tried() {
    let (addr, server) = fake_server(|peer| {
        let mut lines = peer.read_until_quit();
        lines.extend(peer.close_and_drain());
        lines
    });
    // The server listens on 127.0.0.1 only; `localhost` may resolve to ::1
    // first, which must be skipped, not fatal.
    let port = addr.rsplit(':').next().expect("port");
    let mut client = Client::start(&[&format!("localhost:{port}")]);
    client.close_stdin();
    let done = client.wait();

    assert_eq!(server_result(&server), ["/quit"]);
    assert_eq!(done.code, Some(0), "stderr: {}", done.stderr);
}

#[test]
fn nothing_listening_exits_1_with_the_reason() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr").to_string();
    drop(listener);
    let mut client = Client::start(&[&addr, "--connect-timeout", "5"]);
    client.close_stdin();
    let done = client.wait();

    let prefix = format!("chat-client: cannot connect to {addr}: ");
    assert!(done.stderr.starts_with(&prefix), "stderr: {:?}", done.stderr);
    assert_eq!(done.stderr.lines().count(), 1, "stderr: {:?}", done.stderr);
    assert_eq!(done.stdout, "");
    assert_eq!(done.code, Some(1));
}

#[test]
fn usage_errors_exit_2() {
    for (args, expected) in [
        (&["--bogus"][..], "--bogus"),
        (&["--nick", "9lives"][..], "must start with a letter"),
        (&["--connect-timeout", "0"][..], "more than 0 seconds"),
        (&["7878"][..], "looks like a port"),
    ] {
        let mut client = Client::start(args);
        client.close_stdin();
        let done = client.wait();
        assert_eq!(done.code, Some(2), "{args:?}: {done:?}");
        assert!(done.stderr.contains(expected), "{args:?}: {:?}", done.stderr);
        assert_eq!(done.stdout, "", "{args:?}");
    }
}

#[test]
fn help_explains_every_option() {
    let mut client = Client::start(&["--help"]);
    client.close_stdin();
    let done = client.wait();

    assert_eq!(done.code, Some(0));
    for word in [
        "[ADDR]",
        "--nick <NAME>",
        "--room <ROOM>",
        "--connect-timeout <SECS>",
        "--send <TEXT>",
        "--reconnect",
        "--allow-guest",
        "--max-line <BYTES>",
        "--timestamps",
        "NO_COLOR",
        "Exit status",
        "4 when the server refused --nick or --room",
    ] {
        assert!(
            done.stdout.contains(word),
            "{word} missing from:\n{}",
            done.stdout
        );
    }
}

#[test]
fn send_texts_go_out_in_order_then_quit_without_reading_stdin() {
    let (addr, server) = fake_server(|peer| {
        peer.send(WELCOME);
        peer.send(b"-- you are now known as ci\n");
        let mut lines = peer.read_until_quit();
        peer.send(b"-- bye\n");
        lines.extend(peer.close_and_drain());
        lines
    });
    let mut client = Client::start(&[
        &addr,
        "--nick",
        "ci",
        "--send",
        "build finished",
        "--send",
        "/me ships it",
    ]);
    // Standard input stays open and holds a line: it must not be read.
    client.write("not this\n");
    let done = client.wait();

    assert_eq!(
        server_result(&server),
        ["/nick ci", "build finished", "/me ships it", "/quit"]
    );
    assert_eq!(
        done.stdout,
        format!(
            "{}-- you are now known as ci\n-- bye\n",
            String::from_utf8_lossy(WELCOME)
        )
    );
    assert_eq!(done.stderr, "");
    assert_eq!(done.code, Some(0));
}

#[test]
fn timestamps_prefix_each_line_with_the_local_time() {
    let (addr, server) = fake_server(|peer| {
        peer.send(b"<alice> hi\n");
        let mut lines = peer.read_until_quit();
        peer.send(b"-- bye\n");
        lines.extend(peer.close_and_drain());
        lines
    });
    let mut client = Client::start(&[&addr, "--timestamps"]);
    client.close_stdin();
    let done = client.wait();

    assert_eq!(server_result(&server), ["/quit"]);
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{:?}", done.stdout);
    for (line, rest) in lines.iter().zip(["<alice> hi", "-- bye"]) {
        // [HH:MM] and the line as sent, no colors in a pipe.
        let (stamp, text) = line.split_at(8);
        assert_eq!(text, rest, "{line:?}");
        let digits: Vec<char> = stamp.chars().collect();
        assert_eq!(digits.first(), Some(&'['), "{line:?}");
        assert_eq!(digits.get(3), Some(&':'), "{line:?}");
        assert_eq!(&stamp[6..], "] ", "{line:?}");
        assert!(
            stamp[1..3]
                .chars()
                .chain(stamp[4..6].chars())
                .all(|c| c.is_ascii_digit()),
            "{line:?}"
        );
    }
    assert_eq!(done.code, Some(0), "stderr: {}", done.stderr);
}

#[test]
fn sigint_and_sigterm_quit_cleanly_with_a_quit() {
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        let (addr, server) = fake_server(|peer| {
            peer.send(b"-- welcome\n");
            let mut lines = peer.read_until_quit();
            peer.send(b"-- bye\n");
            lines.extend(peer.close_and_drain());
            lines
        });
        let mut client = Client::start(&[&addr]);
        // Once the welcome is printed, the client's main loop runs and the
        // signal handler is in place.
        client.wait_stdout("-- welcome\n");
        signal(&client.child, sig);
        let done = client.wait();

        assert_eq!(server_result(&server), ["/quit"], "{sig}");
        assert_eq!(done.stdout, "-- welcome\n-- bye\n", "{sig}");
        assert_eq!(done.stderr, "", "{sig}");
        assert_eq!(done.code, Some(0), "{sig}");
    }
}

#[test]
fn a_server_that_does_not_answer_in_time_exits_1() {
    // A listener whose accept queue is full drops new connection attempts,
    // as a firewall that drops packets would: connecting hangs.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    socket.bind(&any.into()).expect("bind loopback");
    socket.listen(0).expect("listen");
    let addr = socket
        .local_addr()
        .expect("local addr")
        .as_socket()
        .expect("an IP address")
        .to_string();
    let _queued = TcpStream::connect(&addr).expect("fill the accept queue");

    let mut client = Client::start(&[&addr, "--connect-timeout", "0.2"]);
    client.close_stdin();
    let done = client.wait();

    let prefix = format!("chat-client: cannot connect to {addr}: ");
    assert!(done.stderr.starts_with(&prefix), "stderr: {:?}", done.stderr);
    assert!(done.stderr.contains("timed out"), "stderr: {:?}", done.stderr);
    assert_eq!(done.stdout, "");
    assert_eq!(done.code, Some(1));
}

#[test]
fn piped_lines_reach_the_room_and_the_client_exits_0() {
    let server = RealServer::start();
    let mut watcher = ChatUser::join(&server.addr, "watcher", "builds");

    let mut client = Client::start(&[&server.addr, "--nick", "bot", "--room", "builds"]);
    client.write("build 42 passed\n/me waves\n");
    client.close_stdin();
    let done = client.wait();

    watcher.expect("-- bot joined #builds");
    assert_eq!(watcher.expect("<bot>"), "<bot> build 42 passed");
    assert_eq!(watcher.expect("* bot"), "* bot waves");
    watcher.expect("-- bot left #builds (quit)");
    assert!(done.stdout.contains("-- you joined #builds\n"), "{}", done.stdout);
    assert!(done.stdout.ends_with("-- bye\n"), "{}", done.stdout);
    assert!(
        !done.stdout.contains("<bot>"),
        "no local echo in a pipe: {}",
        done.stdout
    );
    assert_eq!(done.stderr, "");
    assert_eq!(done.code, Some(0));
}

#[test]
fn reconnect_survives_a_server_restart_on_the_same_port() {
    let mut server = RealServer::start();
    let port = server.port;
    let mut client = Client::start(&[&server.addr, "--nick", "bot", "--room", "ops", "--reconnect"]);
    client.wait_stdout("-- you joined #ops\n");

    server.terminate();
    client.wait_stdout("-- server shutting down\n");
    client.wait_stderr("chat-client: connection closed by server; reconnecting in ");
    // Typed while disconnected: delivered once the client is back, after
    // the rejoin. A private message to itself shows the delivery on the
    // client's own output, whenever the reconnection happens.
    client.write("/msg bot typed while away\n");

    let server = RealServer::start_on(&format!("127.0.0.1:{port}"));
    client.wait_stderr(&format!("chat-client: reconnected to 127.0.0.1:{port}\n"));
    client.wait_stdout("-- welcome to chat-server, guest");
    client.wait_stdout("-- you are now known as bot\n");
    client.wait_stdout("-- you joined #ops\n");
    client.wait_stdout("-> *bot* typed while away\n");

    // The room works as before: someone there hears the client.
    let mut watcher = ChatUser::join(&server.addr, "watcher", "ops");
    client.wait_stdout("-- watcher joined #ops\n");
    client.write("after the restart\n");
    assert_eq!(watcher.expect("<bot>"), "<bot> after the restart");

    client.close_stdin();
    let done = client.wait();
    watcher.expect("-- bot left #ops (quit)");
    assert!(done.stdout.ends_with("-- bye\n"), "{}", done.stdout);
    assert_eq!(done.code, Some(0), "stderr: {}", done.stderr);
}

#[test]
fn giving_up_on_reconnecting_exits_3_only_with_lines_unsent() {
    for unsent in [false, true] {
        let mut server = RealServer::start();
        let mut client = Client::start(&[&server.addr, "--reconnect"]);
        client.wait_stdout("-- welcome to chat-server");
        server.terminate();
        client.wait_stderr("reconnecting in ");
        if unsent {
            client.write("nobody will read this\n");
            client.close_stdin();
            client.wait_stderr("not connected: 1 line(s) will be sent once reconnected");
            signal(&client.child, Signal::SIGINT);
        } else {
            // Nothing waits to be sent: the end of input ends it at once.
            client.close_stdin();
        }
        let done = client.wait();
        if unsent {
            assert!(
                done.stderr
                    .ends_with("chat-client: connection lost; 1 line(s) not sent\n"),
                "{:?}",
                done.stderr
            );
            assert_eq!(done.code, Some(3));
        } else {
            assert_eq!(done.code, Some(0), "stderr: {}", done.stderr);
        }
    }
}

/// What the client prints on standard error when the server refuses
/// `asked` for `reason` and nothing was sent.
fn refusal(asked: &str, reason: &str) -> String {
    format!(
        "chat-client: the server refused {asked} ({reason}); nothing was sent (--allow-guest goes on \
         without it)\n"
    )
}

#[test]
fn a_refused_nick_posts_nothing_and_exits_4_from_send_or_stdin() {
    let server = RealServer::start();
    let mut alice = ChatUser::join(&server.addr, "alice", "rust");
    for from_stdin in [false, true] {
        let mut args = vec![server.addr.as_str(), "--nick", "alice", "--room", "rust"];
        let mut client = if from_stdin {
            Client::start_with_input(&args, b"am I alice?\n/me is alice\n")
        } else {
            args.extend(["--send", "am I alice?"]);
            Client::start(&args)
        };
        let done = client.wait();

        assert_eq!(done.code, Some(4), "from stdin: {from_stdin}: {done:?}");
        assert_eq!(
            done.stderr,
            refusal("/nick alice", "nick alice is already in use")
        );
        assert!(
            done.stdout.contains("\n!! nick alice is already in use\n"),
            "{}",
            done.stdout
        );
        // The room saw the guest come (its /join was already on its way)
        // and go, and say nothing.
        let seen = alice.lines_until(" left #rust (quit)");
        assert!(seen[0].ends_with(" joined #rust"), "{seen:?}");
        assert_eq!(seen.len(), 2, "nothing said in between: {seen:?}");
    }
}

#[test]
fn allow_guest_goes_on_as_the_guest_and_says_so() {
    let server = RealServer::start();
    let mut alice = ChatUser::join(&server.addr, "alice", "rust");
    let mut client = Client::start(&[
        &server.addr,
        "--nick",
        "alice",
        "--room",
        "rust",
        "--allow-guest",
        "--send",
        "am I alice?",
    ]);
    let done = client.wait();

    assert_eq!(done.code, Some(0), "{done:?}");
    let said = alice.expect("> am I alice?");
    assert!(said.starts_with("<guest"), "{said}");
    let guest = &said[1..said.find('>').unwrap()];
    assert_eq!(
        done.stderr,
        format!(
            "chat-client: the server refused /nick alice (nick alice is already in use); going on \
             as {guest} (--allow-guest)\n"
        )
    );
}

#[test]
fn a_refused_room_sends_nothing_and_exits_4() {
    let (addr, server) = fake_server(|peer| {
        peer.send(WELCOME);
        let mut lines: Vec<String> = (0..2).filter_map(|_| peer.read_line()).collect();
        peer.send(b"-- you are now known as bot\n!! room #rust is invite-only\n");
        lines.extend(peer.read_until_quit());
        peer.send(b"-- bye\n");
        lines.extend(peer.close_and_drain());
        lines
    });
    let mut client = Client::start(&[&addr, "--nick", "bot", "--room", "rust", "--send", "hi"]);
    let done = client.wait();

    assert_eq!(server_result(&server), ["/nick bot", "/join #rust", "/quit"]);
    assert_eq!(done.stderr, refusal("/join #rust", "room #rust is invite-only"));
    assert_eq!(done.code, Some(4));
}

#[test]
fn a_nick_refused_on_reconnecting_sends_nothing_and_exits_4() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr").to_string();
    let (go_tx, go_rx) = bounded::<()>(1);
    let (tx, rx) = bounded(1);
    thread::spawn(move || {
        // The first connection gets its nick, then the server goes away.
        let mut first = accept(&listener);
        first.send(WELCOME);
        let mut before: Vec<String> = first.read_line().into_iter().collect();
        first.send(b"-- you are now known as bot\n");
        before.extend(first.read_line());
        before.extend(first.close_and_drain());
        // Meanwhile someone took the nick.
        go_rx.recv_timeout(WAIT).expect("go signal");
        let mut second = accept(&listener);
        second.send(WELCOME);
        let mut after: Vec<String> = second.read_line().into_iter().collect();
        second.send(b"!! nick bot is already in use\n");
        after.extend(second.read_until_quit());
        second.send(b"-- bye\n");
        after.extend(second.close_and_drain());
        let _ = tx.send((before, after));
    });
    let mut client = Client::start(&[&addr, "--nick", "bot", "--reconnect"]);
    client.wait_stdout("-- you are now known as bot\n");
    client.write("said as bot\n");
    client.wait_stderr("chat-client: connection closed by server; reconnecting in ");
    client.write("typed while away\n");
    go_tx.send(()).expect("signal the fake server");
    let done = client.wait();

    let (before, after) = rx.recv_timeout(WAIT).expect("the fake server's script");
    assert_eq!(before, ["/nick bot", "said as bot"]);
    assert_eq!(after, ["/nick bot", "/quit"], "nothing said as the guest");
    assert!(
        done.stderr
            .ends_with(&refusal("/nick bot", "nick bot is already in use")),
        "{:?}",
        done.stderr
    );
    assert_eq!(done.code, Some(4));
}

#[test]
fn lines_longer_than_max_line_are_not_sent_and_the_rest_are() {
    let server = RealServer::start();
    let mut watcher = ChatUser::join(&server.addr, "watcher", "lobby");
    let mut client = Client::start(&[&server.addr, "--nick", "bot", "--max-line", "10"]);
    client.write("0123456789\n"); // 10 bytes: the most
    client.write("0123456789A\n"); // 11
    client.write(&format!("{}\n", "x".repeat(100_000))); // read in pieces
    client.write("é12345678\r\n"); // 10 bytes: é is two
    client.write("//23456789\n"); // 10, sent as /23456789
    client.write("/me 1234567\n"); // 11: the command counts
    client.close_stdin();
    let done = client.wait();

    let seen = watcher.lines_until("-- bot left #lobby (quit)");
    let said: Vec<&String> = seen
        .iter()
        .filter(|l| l.starts_with("<bot>") || l.starts_with("* bot"))
        .collect();
    assert_eq!(said, ["<bot> 0123456789", "<bot> é12345678", "<bot> /23456789"]);
    assert_eq!(
        done.stderr,
        "chat-client: line 2 of the input not sent: 11 bytes, and the server takes at most 10 \
         (--max-line)\n\
         chat-client: line 3 of the input not sent: 12 or more bytes, and the server takes at most \
         10 (--max-line)\n\
         chat-client: line 6 of the input not sent: 11 bytes, and the server takes at most 10 \
         (--max-line)\n"
    );
    assert!(
        !done.stdout.contains("!!"),
        "the server refused nothing: {}",
        done.stdout
    );
    assert_eq!(done.code, Some(0));
}

#[test]
fn a_line_the_server_refuses_as_too_long_is_named_and_its_limit_kept() {
    let server = RealServer::start_with("127.0.0.1:0", &["--max-line", "20"]);
    let mut watcher = ChatUser::join(&server.addr, "watcher", "lobby");
    let mut client = Client::start(&[&server.addr, "--nick", "bot"]);
    let long = "z".repeat(30);
    client.write(&format!("{long}\n"));
    client.wait_stderr(&format!(
        "chat-client: your line of 30 bytes (\"{long}\") was not delivered: the server takes at \
         most 20 bytes; longer lines are not sent from now on\n"
    ));
    client.write(&format!("{long}\nshort\n"));
    client.close_stdin();
    let done = client.wait();

    let seen = watcher.lines_until("-- bot left #lobby (quit)");
    let said: Vec<&String> = seen.iter().filter(|l| l.starts_with("<bot>")).collect();
    assert_eq!(said, ["<bot> short"]);
    assert!(
        done.stderr.ends_with(
            "chat-client: line 2 of the input not sent: 30 bytes, and the server takes at most 20 \
             (as it said)\n"
        ),
        "{:?}",
        done.stderr
    );
    assert_eq!(
        done.stdout.matches("!! line too long (max 20 bytes)").count(),
        1,
        "{}",
        done.stdout
    );
    assert_eq!(done.code, Some(0));
}
