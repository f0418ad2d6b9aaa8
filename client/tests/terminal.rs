//! Runs the built `chat-client` interactively, in a real terminal: a tmux
//! pane, against the real chat-server on loopback, with another user on a
//! plain socket. These tests check what a person sees: that a message
//! arriving while a line is half typed leaves both on the screen, that the
//! prompt follows the server, that colors appear (and `NO_COLOR` removes
//! them), and that every way out leaves the terminal as it was found.
//!
//! How the tests wait, without sleeping: tmux copies everything the client
//! writes to the pane into a FIFO (`pipe-pane`), which a thread reads; a
//! test waits on that stream (with a deadline) for the text it expects,
//! and only then looks at the screen with `capture-pane`, which by then
//! shows it. The pane runs a small shell script that starts the client
//! only once the copying is set up (`tmux wait-for`), records the terminal
//! settings before and after (`stty -g`) and the exit code, signals the
//! test when the client has exited, and then waits on a tmux channel that
//! is never signalled, so the pane and its screen stay as they are until
//! the test ends (a pane whose shell exits may be scrolled by tmux).
//!
//! Each test has its own tmux server (`tmux -L` with a unique socket name)
//! and temporary directory, removed on drop even when the test fails.

// The helpers below panic on purpose, as `#[test]` functions may: in a test
// a failed expectation is a failed test, with its message. clippy.toml
// allows that in test functions only, not in helpers they share.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::fs::{self, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sys::stat::Mode;
use support::{run_with_deadline, try_run_with_deadline, visible, ChatUser, Collector, RealServer};

/// Width and height of the test terminal.
const COLUMNS: usize = 100;
const ROWS: usize = 30;

/// Makes each fixture's names unique within this test process.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// `text` quoted for `sh`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The client running in a tmux pane of its own tmux server.
struct Pane {
    /// The tmux socket name, unique to this fixture.
    socket: String,
    /// Holds the FIFO and the files the pane script writes.
    dir: PathBuf,
    /// Everything the client wrote to the terminal.
    stream: Collector,
}

/// How the client in the pane ended.
struct Exit {
    code: String,
    stty_before: String,
    stty_after: String,
}

impl Pane {
    /// Starts `chat-client ARGS` in a fresh pane, with `NO_COLOR` set when
    /// `no_color` is true and unset otherwise.
    fn start(args: &[&str], no_color: bool) -> Pane {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let socket = format!("chat-client-test-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&socket);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).expect("create the test directory");
        let fifo = dir.join("output");
        nix::unistd::mkfifo(&fifo, Mode::S_IRUSR | Mode::S_IWUSR).expect("mkfifo");
        // Opening a FIFO for reading waits for a writer (tmux's cat), so
        // the collector's thread opens it.
        let reader = FifoReader::Path(fifo.clone());
        let stream = Collector::new(reader);

        let client = env!("CARGO_BIN_EXE_chat-client");
        let mut command = vec![quote(client)];
        command.extend(args.iter().map(|a| quote(a)));
        let color = if no_color { "NO_COLOR=1" } else { "-u NO_COLOR" };
        let file = |name: &str| quote(&dir.join(name).display().to_string());
        let tmux = format!("tmux -L {}", quote(&socket));
        let script = format!(
            "{tmux} wait-for go; stty -g > {before}; env {color} {command}; echo $? > {code}; \
             stty -g > {after}; {tmux} wait-for -S done; {tmux} wait-for never",
            before = file("before"),
            after = file("after"),
            code = file("code"),
            command = command.join(" "),
        );
        let pane = Pane { socket, dir, stream };
        pane.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "test",
            "-x",
            &COLUMNS.to_string(),
            "-y",
            &ROWS.to_string(),
            &script,
        ]);
        let cat = format!("cat >> {}", quote(&fifo.display().to_string()));
        pane.tmux(&["pipe-pane", "-O", "-t", "test", &cat]);
        pane.tmux(&["wait-for", "-S", "go"]);
        pane
    }

    /// Runs a tmux command on this fixture's server; returns its output.
    #[track_caller]
    fn tmux(&self, args: &[&str]) -> String {
        let output = run_with_deadline(Command::new("tmux").arg("-L").arg(&self.socket).args(args));
        assert!(
            output.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Types `text` as it is.
    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "test", "-l", text]);
    }

    /// Pastes `text` as tmux does (`paste-buffer`: each line feed becomes a
    /// carriage return, as the Enter key sends), marked as a paste when
    /// `bracketed` and the client asked for that, unmarked otherwise.
    fn paste(&self, text: &str, bracketed: bool) {
        self.tmux(&["set-buffer", "-b", "pasted", "--", text]);
        let mut args = vec!["paste-buffer", "-d", "-b", "pasted", "-t", "test"];
        if bracketed {
            args.push("-p");
        }
        self.tmux(&args);
    }

    /// Presses a key, in tmux's names (`Enter`, `C-c`).
    fn press(&self, key: &str) {
        self.tmux(&["send-keys", "-t", "test", key]);
    }

    /// Waits until the client has written `text` (escape sequences aside)
    /// after what earlier waits found.
    #[track_caller]
    fn wait_for(&mut self, text: &str) {
        self.stream.wait_for_filtered(text, visible);
    }

    /// The screen, one string per row, trailing spaces trimmed.
    fn screen(&self) -> Vec<String> {
        self.tmux(&["capture-pane", "-p", "-t", "test"])
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect()
    }

    /// The screen with its colors, as escape sequences.
    fn screen_with_colors(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-e", "-t", "test"])
    }

    /// The cursor's column and row.
    fn cursor(&self) -> (usize, usize) {
        let out = self.tmux(&["display-message", "-p", "-t", "test", "#{cursor_x} #{cursor_y}"]);
        let mut parts = out.split_whitespace().map(|p| p.parse().expect("a number"));
        (parts.next().expect("x"), parts.next().expect("y"))
    }

    /// Waits for the client to exit and the pane script to finish.
    #[track_caller]
    fn wait_exit(&self) -> Exit {
        let waited = try_run_with_deadline(
            Command::new("tmux")
                .arg("-L")
                .arg(&self.socket)
                .args(["wait-for", "done"]),
        );
        assert!(
            waited.is_some_and(|out| out.status.success()),
            "the client did not exit; the screen: {:#?}\nwhat it wrote: {:?}",
            self.screen(),
            visible(&self.stream.bytes)
        );
        let read = |name: &str| {
            fs::read_to_string(self.dir.join(name))
                .unwrap_or_else(|err| panic!("{name}: {err}"))
                .trim()
                .to_string()
        };
        Exit {
            code: read("code"),
            stty_before: read("before"),
            stty_after: read("after"),
        }
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        // Ends the pane, the client in it and the cat writing the FIFO.
        let _ = run_with_deadline(
            Command::new("tmux")
                .arg("-L")
                .arg(&self.socket)
                .arg("kill-server"),
        );
        // If tmux never opened the FIFO, the reader thread still waits in
        // open(): opening it for writing, without blocking, releases it.
        let _ = OpenOptions::new()
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(self.dir.join("output"));
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A FIFO opened on first read, on the collector's thread.
enum FifoReader {
    /// Not opened yet.
    Path(PathBuf),
    /// Opened: tmux's cat is writing to it.
    Open(fs::File),
}

impl Read for FifoReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let FifoReader::Path(path) = self {
            let file = fs::File::open(&*path)?;
            *self = FifoReader::Open(file);
        }
        match self {
            FifoReader::Open(file) => file.read(buf),
            FifoReader::Path(_) => Ok(0),
        }
    }
}

/// The last non-empty row of `screen` and its index.
fn last_row(screen: &[String]) -> (usize, &str) {
    screen
        .iter()
        .enumerate()
        .rev()
        .find(|(_, row)| !row.is_empty())
        .map(|(i, row)| (i, row.as_str()))
        .expect("a non-empty screen")
}

#[track_caller]
fn assert_restored(exit: &Exit, code: &str) {
    assert_eq!(exit.code, code, "exit code");
    assert!(!exit.stty_before.is_empty());
    assert_eq!(exit.stty_before, exit.stty_after, "the terminal settings changed");
}

#[test]
fn a_message_arriving_while_typing_leaves_both_intact_and_enter_sends_the_line() {
    let server = RealServer::start();
    let mut bob = ChatUser::join(&server.addr, "bob", "lobby");
    let mut pane = Pane::start(&[&server.addr, "--nick", "alice"], true);
    pane.wait_for("[alice #lobby] ");
    bob.expect("-- guest");

    pane.type_text("half typed, not sent");
    pane.wait_for("half typed, not sent");
    bob.send("hello from bob");
    pane.wait_for("<bob> hello from bob");
    // rustyline draws the half-typed line again below the message.
    pane.wait_for("half typed, not sent");

    let screen = pane.screen();
    let (row, prompt) = last_row(&screen);
    assert_eq!(prompt, "[alice #lobby] half typed, not sent", "{screen:#?}");
    assert_eq!(
        screen.get(row - 1).map(String::as_str),
        Some("<bob> hello from bob"),
        "{screen:#?}"
    );
    assert_eq!(
        pane.cursor(),
        (prompt.len(), row),
        "the cursor stays at the end of the typing"
    );

    // Enter sends it; the typed line is replaced by the line as others see
    // it, and the prompt comes back empty. (Every key below is pressed only
    // once the prompt is back, so that each screen checked is a settled one;
    // a key pressed sooner waits for the prompt, see the paste tests.)
    pane.press("Enter");
    assert_eq!(bob.expect("<alice>"), "<alice> half typed, not sent");
    pane.wait_for("<alice> half typed, not sent");
    pane.wait_for("[alice #lobby] ");
    let screen = pane.screen();
    let (row, prompt) = last_row(&screen);
    assert_eq!(prompt, "[alice #lobby]", "{screen:#?}");
    assert_eq!(
        screen.get(row - 1).map(String::as_str),
        Some("<alice> half typed, not sent"),
        "{screen:#?}"
    );
    assert!(
        !screen.iter().any(|r| r.contains("] half typed")),
        "the typed form is erased: {screen:#?}"
    );

    // The up arrow brings the line back from the history, to send again.
    pane.press("Up");
    pane.wait_for("half typed, not sent");
    let screen = pane.screen();
    assert_eq!(
        last_row(&screen).1,
        "[alice #lobby] half typed, not sent",
        "{screen:#?}"
    );
    pane.type_text(" again");
    pane.press("Enter");
    assert_eq!(bob.expect("<alice>"), "<alice> half typed, not sent again");
    pane.wait_for("<alice> half typed, not sent again");
    pane.wait_for("[alice #lobby] ");

    // Ctrl-D on an empty line quits with /quit.
    pane.press("C-d");
    let exit = pane.wait_exit();
    bob.expect("-- alice left #lobby (quit)");
    assert_restored(&exit, "0");
    assert!(
        pane.screen().iter().any(|r| r == "-- bye"),
        "{:#?}",
        pane.screen()
    );
}

#[test]
fn the_prompt_follows_the_servers_answers_and_ctrl_c_quits() {
    let server = RealServer::start();
    let mut pane = Pane::start(&[&server.addr], true);
    pane.wait_for("-- welcome to chat-server, guest");
    pane.wait_for(" #lobby] ");
    let screen = pane.screen();
    let (_, prompt) = last_row(&screen);
    assert!(prompt.starts_with("[guest"), "{prompt}");

    pane.type_text("/nick carol");
    pane.press("Enter");
    pane.wait_for("-- you are now known as carol");
    pane.wait_for("[carol #lobby] ");
    pane.type_text("/join rust");
    pane.press("Enter");
    pane.wait_for("-- you joined #rust");
    pane.wait_for("[carol #rust] ");
    // A refused /nick leaves the prompt as it was.
    let mut dave = ChatUser::join(&server.addr, "dave", "lobby");
    pane.type_text("/nick dave");
    pane.press("Enter");
    pane.wait_for("!! nick dave is already in use");
    pane.wait_for("[carol #rust] ");

    let screen = pane.screen();
    let (_, prompt) = last_row(&screen);
    assert_eq!(prompt, "[carol #rust]", "{screen:#?}");
    // Commands stay on the screen as typed, followed by the answer.
    let at = screen
        .iter()
        .position(|r| r.ends_with("/nick carol"))
        .expect("the /nick line");
    assert_eq!(
        screen.get(at + 1).map(String::as_str),
        Some("-- you are now known as carol"),
        "{screen:#?}"
    );

    // Ctrl-C with a half-typed line quits too, with /quit.
    pane.type_text("never sent");
    pane.wait_for("never sent");
    pane.press("C-c");
    let exit = pane.wait_exit();
    assert_restored(&exit, "0");
    dave.send("/who");
    assert_eq!(dave.expect("in #lobby"), "-- 1 in #lobby: dave");
}

#[test]
fn losing_the_connection_while_typing_exits_3_and_restores_the_terminal() {
    let mut server = RealServer::start();
    let mut pane = Pane::start(&[&server.addr, "--nick", "erin"], true);
    pane.wait_for("[erin #lobby] ");
    pane.type_text("unfinished");
    pane.wait_for("unfinished");

    server.terminate();
    let exit = pane.wait_exit();
    assert_restored(&exit, "3");
    let screen = pane.screen();
    assert!(
        screen.iter().any(|r| r.starts_with("-- welcome to chat-server")),
        "{screen:#?}"
    );
    assert!(
        screen.iter().any(|r| r == "-- server shutting down"),
        "{screen:#?}"
    );
    assert!(
        screen.iter().any(|r| r == "[erin #lobby] unfinished"),
        "the typing stays visible: {screen:#?}"
    );
    assert!(
        screen
            .iter()
            .any(|r| r == "chat-client: connection closed by server"),
        "{screen:#?}"
    );
}

#[test]
fn reconnecting_in_a_terminal_says_so_and_rejoins() {
    let mut server = RealServer::start();
    let port = server.port;
    let mut pane = Pane::start(
        &[&server.addr, "--nick", "fay", "--room", "ops", "--reconnect"],
        true,
    );
    pane.wait_for("[fay #ops] ");
    pane.type_text("still typing");
    pane.wait_for("still typing");

    server.terminate();
    pane.wait_for("== connection closed by server; reconnecting in ");
    let server = RealServer::start_on(&format!("127.0.0.1:{port}"));
    pane.wait_for(&format!("== reconnected to 127.0.0.1:{port}"));
    pane.wait_for("-- you joined #ops");
    pane.wait_for("still typing");
    let mut gus = ChatUser::join(&server.addr, "gus", "ops");
    pane.wait_for("-- gus joined #ops");
    pane.press("Enter");
    assert_eq!(gus.expect("<fay>"), "<fay> still typing");
    pane.wait_for("<fay> still typing");
    // The prompt is back before the next key, for a settled screen.
    pane.wait_for("[fay #ops] ");

    pane.press("C-d");
    assert_restored(&pane.wait_exit(), "0");
}

#[test]
fn lines_are_colored_by_kind_and_nick_unless_no_color_is_set() {
    for no_color in [false, true] {
        let server = RealServer::start();
        let mut hal = ChatUser::join(&server.addr, "hal", "lobby");
        let mut pane = Pane::start(&[&server.addr, "--nick", "ivy", "--timestamps"], no_color);
        pane.wait_for("[ivy #lobby] ");
        hal.expect("-- guest");
        hal.send("/me waves");
        hal.send("/msg ivy psst");
        hal.send("hi ivy");
        pane.wait_for("hi ivy");

        let screen = pane.screen();
        for shown in [
            "* hal waves",
            "*hal* psst",
            "<hal> hi ivy",
            "-- you are now known as ivy",
        ] {
            let row = screen
                .iter()
                .find(|r| r.ends_with(shown))
                .unwrap_or_else(|| panic!("{shown} missing: {screen:#?}"));
            // [HH:MM] first.
            assert_eq!(row.len(), shown.len() + 8, "{row:?}");
            assert!(row.starts_with('[') && row.get(3..4) == Some(":"), "{row:?}");
        }

        let colors = pane.screen_with_colors();
        let colored = sgr_colors(&colors);
        if no_color {
            assert!(
                colored.is_empty(),
                "NO_COLOR, yet colors {colored:?} in {colors:?}"
            );
        } else {
            // hal's nick color (stable: FNV-1a of "hal"), notices in cyan,
            // actions in magenta, private messages in yellow.
            for code in [36, 35, 33] {
                assert!(colored.contains(&code), "no color {code} in {colors:?}");
            }
            assert!(colored.len() >= 4, "{colored:?}");
        }
        pane.press("C-d");
        assert_restored(&pane.wait_exit(), "0");
    }
}

/// Every foreground color (30-37, 90-97) set by an SGR sequence in `text`.
fn sgr_colors(text: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for sequence in text.split("\x1b[").skip(1) {
        let Some(end) = sequence.find(|c: char| c.is_ascii_alphabetic()) else {
            continue;
        };
        if !sequence[end..].starts_with('m') {
            continue;
        }
        for param in sequence[..end].split(';') {
            if let Ok(code @ (30..=37 | 90..=97)) = param.parse::<u32>() {
                if !found.contains(&code) {
                    found.push(code);
                }
            }
        }
    }
    found
}

#[test]
fn a_paste_of_200_lines_reaches_the_room_once_each_in_order_bracketed_or_not() {
    for bracketed in [false, true] {
        // No flood control: the paste arrives as fast as the client sends.
        let server = RealServer::start_with("127.0.0.1:0", &["--rate", "0"]);
        let mut bob = ChatUser::join(&server.addr, "bob", "lobby");
        let mut pane = Pane::start(&[&server.addr, "--nick", "alice"], true);
        pane.wait_for("[alice #lobby] ");
        bob.expect("-- guest");

        let lines: Vec<String> = (1..=200).map(|i| format!("pasted line {i}")).collect();
        pane.paste(&format!("{}\n", lines.join("\n")), bracketed);
        for line in &lines {
            assert_eq!(
                bob.expect("<alice>"),
                format!("<alice> {line}"),
                "bracketed: {bracketed}"
            );
        }
        pane.wait_for("<alice> pasted line 200");
        pane.wait_for("[alice #lobby] ");
        let screen = pane.screen();
        let (row, prompt) = last_row(&screen);
        assert_eq!(prompt, "[alice #lobby]", "no Enter needed: {screen:#?}");
        assert_eq!(
            screen.get(row - 1).map(String::as_str),
            Some("<alice> pasted line 200"),
            "{screen:#?}"
        );

        // Nothing sent twice or late: the next line bob gets is the next
        // one typed.
        pane.type_text("typed after the paste");
        pane.press("Enter");
        assert_eq!(bob.expect("<alice>"), "<alice> typed after the paste");
        pane.wait_for("[alice #lobby] ");
        pane.press("C-d");
        assert_restored(&pane.wait_exit(), "0");
    }
}

#[test]
fn a_bracketed_paste_is_text_and_its_unfinished_last_line_stays_to_edit() {
    let server = RealServer::start();
    let mut bob = ChatUser::join(&server.addr, "bob", "lobby");
    let mut pane = Pane::start(&[&server.addr, "--nick", "alice"], true);
    pane.wait_for("[alice #lobby] ");
    bob.expect("-- guest");

    // Unmarked, the tab would be the completion key and Ctrl-D would quit.
    pane.paste("col1\tcol2\x04\nstill editing", true);
    assert_eq!(bob.expect("<alice>"), "<alice> col1\tcol2");
    pane.wait_for("still editing");
    let screen = pane.screen();
    assert_eq!(last_row(&screen).1, "[alice #lobby] still editing", "{screen:#?}");
    pane.type_text(", now done");
    pane.press("Enter");
    assert_eq!(bob.expect("<alice>"), "<alice> still editing, now done");
    pane.wait_for("[alice #lobby] ");
    pane.press("C-d");
    assert_restored(&pane.wait_exit(), "0");
}

#[test]
fn a_refused_nick_is_said_and_the_session_goes_on_as_the_guest() {
    let server = RealServer::start();
    let mut dave = ChatUser::join(&server.addr, "dave", "lobby");
    let mut pane = Pane::start(&[&server.addr, "--nick", "dave"], true);
    pane.wait_for("!! nick dave is already in use");
    pane.wait_for("== the server refused /nick dave (nick dave is already in use); you go on as guest");
    pane.wait_for(": /nick again to choose another");
    pane.wait_for(" #lobby] ");
    let screen = pane.screen();
    let (_, prompt) = last_row(&screen);
    assert!(prompt.starts_with("[guest"), "{screen:#?}");
    let guest = prompt[1..].split(' ').next().unwrap().to_string();

    // What is typed now, under the name the prompt shows, is sent.
    pane.type_text("hello as a guest");
    pane.press("Enter");
    assert_eq!(dave.expect("hello"), format!("<{guest}> hello as a guest"));
    pane.wait_for(&format!("[{guest} #lobby] "));
    pane.press("C-d");
    assert_restored(&pane.wait_exit(), "0");
}

#[test]
fn a_line_longer_than_the_server_takes_is_refused_here_and_never_shown_as_said() {
    let server = RealServer::start();
    let mut bob = ChatUser::join(&server.addr, "bob", "lobby");
    let mut pane = Pane::start(&[&server.addr, "--nick", "carol"], true);
    pane.wait_for("[carol #lobby] ");
    bob.expect("-- guest");

    // The line of issue #14: 5,000 bytes, over the default 4096.
    pane.type_text(&"z".repeat(5000));
    pane.press("Enter");
    pane.wait_for(
        "== line not sent: 5000 bytes, and the server takes at most 4096 (--max-line); the up arrow \
         brings it back to edit",
    );
    pane.wait_for("[carol #lobby] ");
    pane.type_text("this one fits");
    pane.press("Enter");
    assert_eq!(bob.expect("<carol>"), "<carol> this one fits");
    pane.wait_for("<carol> this one fits");
    pane.wait_for("[carol #lobby] ");
    assert!(
        !visible(&pane.stream.bytes).contains("<carol> zzz"),
        "the long line was shown as said"
    );
    pane.press("C-d");
    assert_restored(&pane.wait_exit(), "0");
}

#[test]
fn a_line_the_server_refuses_as_too_long_is_said_not_delivered() {
    let server = RealServer::start_with("127.0.0.1:0", &["--max-line", "20"]);
    let mut bob = ChatUser::join(&server.addr, "bob", "lobby");
    let mut pane = Pane::start(&[&server.addr, "--nick", "carol"], true);
    pane.wait_for("[carol #lobby] ");
    bob.expect("-- guest");

    // The client does not know this server's limit yet: the line is shown
    // as sent, then the server's refusal, then which line it was.
    let long = "y".repeat(30);
    pane.type_text(&long);
    pane.press("Enter");
    pane.wait_for("!! line too long (max 20 bytes); discarded up to the next newline");
    pane.wait_for(&format!(
        "== your line of 30 bytes (\"{long}\") was not delivered: the server takes at most 20 \
         bytes; longer lines are not sent from now on"
    ));
    pane.wait_for("[carol #lobby] ");
    // From now on it knows.
    pane.type_text(&long);
    pane.press("Enter");
    pane.wait_for("== line not sent: 30 bytes, and the server takes at most 20 (as it said)");
    pane.wait_for("[carol #lobby] ");
    pane.type_text("short");
    pane.press("Enter");
    assert_eq!(bob.expect("<carol>"), "<carol> short", "nothing else came");
    pane.wait_for("[carol #lobby] ");
    pane.press("C-d");
    assert_restored(&pane.wait_exit(), "0");
}
