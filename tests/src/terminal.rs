//! A program in a real terminal, for tests of what a person sees: a tmux
//! server of the test's own, with one pane that runs the program (irssi,
//! WeeChat), keys typed into it with `send-keys`, and its screen read with
//! `capture-pane`.
//!
//! It exists so that tests of full-screen clients need not know tmux. Each
//! [`Terminal`] has its own temporary directory, which holds the tmux
//! socket (`tmux -S`, so no other tmux server is ever touched) and
//! whatever the program needs there (a home directory, its configuration).
//! Dropping it ends the tmux server, which hangs up on the program, waits
//! (bounded) for the program to exit, and removes the directory, even when
//! the test failed.
//!
//! How the tests wait: a full-screen program redraws its screen whenever
//! it likes, so there is no line to read. [`Terminal::wait_until`] reads the
//! screen again and again, [`POLL`] apart, until what the test expects is
//! on it, and fails the test with the screen at [`SCREEN_TIMEOUT`]. The
//! pause between two looks is not a wait for anything: every wait ends on
//! what the screen shows. The pane stays after the program exits
//! (`remain-on-exit`), so a test can tell that it exited and read its last
//! screen.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{clean_command, EXIT_TIMEOUT};

/// The longest a test waits for the screen to show what it expects.
/// Generous: irssi and WeeChat pace what they send (irssi sends one command
/// every 2.2 s once five have gone at once), and a loaded 2-core machine
/// is slow to start them; a passing test never waits this long.
pub const SCREEN_TIMEOUT: Duration = Duration::from_secs(40);

/// How long one tmux command may take before the test fails: each
/// returns at once unless the tmux server is stuck.
const TMUX_TIMEOUT: Duration = Duration::from_secs(10);

/// The pause between two looks at the screen: short next to what a person
/// notices, long enough not to keep a busy machine busier.
pub const POLL: Duration = Duration::from_millis(50);

/// The terminal's size, as the brief of these tests asks: wide enough that
/// no line of a conversation wraps.
const COLUMNS: u16 = 200;
const ROWS: u16 = 50;

/// The locale the program runs in, so that it reads and shows UTF-8 text
/// whatever the test machine's locale is (Debian always has `C.UTF-8`).
const LOCALE: &str = "C.UTF-8";

/// Makes each terminal's directory unique within this test process.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A tmux server of its own with (once [`Terminal::run`] is called) one
/// pane running a program. Dropping it ends the program and the tmux
/// server, and removes the directory.
pub struct Terminal {
    /// Who runs in it, for messages ("irssi").
    name: String,
    /// The temporary directory: the tmux socket and the program's files.
    dir: PathBuf,
    /// The tmux socket, in `dir`.
    socket: PathBuf,
    /// True once the tmux server was started.
    started: bool,
    /// The program's process id, once started: on drop, the directory is
    /// removed only once it has exited, as a program may write its files
    /// there on its way out (WeeChat saves its configuration).
    pid: Option<u32>,
}

impl Terminal {
    /// Makes the temporary directory, without starting anything yet: the
    /// caller first writes the program's files in [`Terminal::dir`].
    ///
    /// # Panics
    /// When the directory cannot be made.
    #[track_caller]
    pub fn new(name: &str) -> Terminal {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("chat-tests-{name}-{}-{n}", std::process::id()));
        // A directory left by an earlier run with the same process id.
        let _ = fs::remove_dir_all(&dir);
        if let Err(e) = fs::create_dir_all(&dir) {
            panic!("cannot make {}: {e}", dir.display());
        }
        let socket = dir.join("tmux");
        Terminal {
            name: name.to_string(),
            dir,
            socket,
            started: false,
            pid: None,
        }
    }

    /// The temporary directory, removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts `program` with `args` in the pane, with `HOME` set to the
    /// temporary directory and a UTF-8 locale.
    ///
    /// # Panics
    /// When tmux cannot be run (with the package to install) or fails.
    #[track_caller]
    pub fn run(&mut self, program: &str, args: &[String]) {
        assert!(
            !self.started,
            "{}: the terminal already runs a program",
            self.name
        );
        let mut words = vec![
            "exec".to_string(),
            "env".to_string(),
            format!("HOME={}", self.dir.display()),
            format!("LC_ALL={LOCALE}"),
            program.to_string(),
        ];
        words.extend(args.iter().cloned());
        let script = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        // One tmux command list: the option is set before the pane exists,
        // so the pane stays even if the program exits at once.
        self.started = true;
        self.tmux(&[
            "-f",
            "/dev/null",
            "start-server",
            ";",
            "set-option",
            "-g",
            "remain-on-exit",
            "on",
            ";",
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
        let pid = self.tmux(&["display-message", "-p", "-t", "test", "#{pane_pid}"]);
        self.pid = pid.trim().parse().ok();
    }

    /// Types `text` as it is, then Enter.
    #[track_caller]
    pub fn type_line(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "test", "-l", text]);
        self.tmux(&["send-keys", "-t", "test", "Enter"]);
    }

    /// The screen, one string per row, trailing spaces trimmed.
    #[track_caller]
    pub fn screen(&self) -> Vec<String> {
        self.tmux(&["capture-pane", "-p", "-t", "test"])
            .lines()
            .map(|row| row.trim_end().to_string())
            .collect()
    }

    /// Reads the screen until `expected` says it shows what the test waits
    /// for (`what`, for the message), and returns that screen.
    ///
    /// # Panics
    /// When it does not within [`SCREEN_TIMEOUT`], with the last screen.
    #[track_caller]
    pub fn wait_until(&self, what: &str, expected: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            let screen = self.screen();
            if expected(&screen) {
                return screen;
            }
            if self.exited() {
                panic!(
                    "{}: the program exited, and its screen does not show {what}:\n{}",
                    self.name,
                    screen.join("\n")
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: the screen did not show {what} within {SCREEN_TIMEOUT:?}; it shows:\n{}",
                    self.name,
                    screen.join("\n")
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Waits until a row of the screen contains `text`; returns the screen.
    #[track_caller]
    pub fn wait_for(&self, text: &str) -> Vec<String> {
        self.wait_until(&format!("{text:?}"), |screen| row_with(screen, text).is_some())
    }

    /// Waits until the program has exited.
    ///
    /// # Panics
    /// When it is still running after [`SCREEN_TIMEOUT`], with its screen.
    #[track_caller]
    pub fn wait_exit(&self) {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        while !self.exited() {
            if Instant::now() >= deadline {
                panic!(
                    "{} still runs after {SCREEN_TIMEOUT:?}; its screen:\n{}",
                    self.name,
                    self.screen().join("\n")
                );
            }
            thread::sleep(POLL);
        }
    }

    /// True once the program in the pane has exited.
    #[track_caller]
    pub fn exited(&self) -> bool {
        self.tmux(&["display-message", "-p", "-t", "test", "#{pane_dead}"])
            .trim()
            == "1"
    }

    /// A command running tmux on this terminal's own server.
    fn command(&self) -> Command {
        let mut command = clean_command("tmux");
        command.arg("-S").arg(&self.socket).env("LC_ALL", LOCALE);
        command
    }

    /// Runs tmux with `args` on this terminal's server; returns its output.
    #[track_caller]
    fn tmux(&self, args: &[&str]) -> String {
        let mut command = self.command();
        command.args(args);
        let output = match run_bounded(command, TMUX_TIMEOUT) {
            Ok(output) => output,
            Err(e) => panic!("{}: tmux {args:?}: {e}", self.name),
        };
        assert!(
            output.status.success(),
            "{}: tmux {args:?} failed: {}",
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if self.started {
            // Hangs up on the program in the pane, which exits (irssi and
            // WeeChat both do), and ends the tmux server.
            let mut command = self.command();
            command.arg("kill-server");
            let _ = run_bounded(command, TMUX_TIMEOUT);
        }
        if let Some(pid) = self.pid {
            let deadline = Instant::now() + EXIT_TIMEOUT;
            while is_running(pid) && Instant::now() < deadline {
                thread::sleep(POLL);
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// True while process `pid` exists and has not exited (a zombie has: it
/// holds no file open any more). Only reads `/proc`, so a pid reused by
/// another process at worst makes the caller wait until its deadline.
fn is_running(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (name) STATE ...": the name may hold spaces and parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// The first row of `screen` that contains `text`, by index.
pub fn row_with(screen: &[String], text: &str) -> Option<usize> {
    screen.iter().position(|row| row.contains(text))
}

/// `text` quoted for `sh`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Runs `command` to its end, its output collected, killing it if it takes
/// longer than `timeout`.
///
/// # Errors
/// When it cannot be started (saying to install tmux), or took too long.
fn run_bounded(mut command: Command, timeout: Duration) -> Result<Output, String> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run it ({e}); these tests need tmux: apt-get install tmux"))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        // The receiver is gone only if the wait below gave up.
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => Err(format!("cannot wait for it: {e}")),
        Err(_) => {
            // Still our unreaped child (the thread above waits on it), so
            // this pid is not anyone else's.
            let _ = Command::new("kill")
                .args(["-s", "KILL", &pid.to_string()])
                .status();
            Err(format!("it did not finish within {timeout:?}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_sh_even_with_quotes_inside() {
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("/server add x; /connect x"), "'/server add x; /connect x'");
    }

    #[test]
    fn this_process_is_running_and_a_pid_that_is_not_there_is_not() {
        assert!(is_running(std::process::id()));
        // Above the kernel's largest pid (2^22).
        assert!(!is_running(u32::MAX));
    }

    #[test]
    fn rows_are_found_by_what_they_contain() {
        let screen = vec!["first".to_string(), "<bob> hi".to_string()];
        assert_eq!(row_with(&screen, "bob> hi"), Some(1));
        assert_eq!(row_with(&screen, "alice"), None);
    }
}
