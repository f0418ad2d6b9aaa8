//! Smoke runs of `chat-attack` against the real `chat-server` binary
//! (the debug build beside this test, built by `cargo build --workspace`
//! as `scripts/test` does first), in `--quick` mode: each attack must run
//! to its end and print one JSON line with the figures its report names.
//! The values are measurements and are not checked, except how the tool
//! reports a daemon that died, which is not a matter of timing.
//!
//! Every run is bounded by the tool's own limits (quick defaults, a stop
//! timeout) and by a deadline here, after which the tool is killed.

// A test fails by panicking; clippy.toml allows these in #[test] functions
// but not in the helpers of an integration test file, so say it here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest a smoke run may take before it is killed and the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The `chat-server` binary of this build (target/debug/chat-server).
fn server_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    let mut dir = exe
        .parent()
        .expect("the test executable is in a directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("chat-server");
    assert!(
        path.is_file(),
        "{} not found: build the binaries first with `cargo build --workspace`",
        path.display()
    );
    path
}

/// What one run printed.
struct Run {
    /// Exit status.
    success: bool,
    /// The JSON lines of stdout.
    lines: Vec<Value>,
    /// Everything, for failure messages.
    output: String,
}

/// Runs `chat-attack --quick --server-bin BIN ARGS...` and collects its
/// JSON lines.
fn attack(server: &PathBuf, args: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-attack"))
        .arg("--quick")
        .arg("--server-bin")
        .arg(server)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chat-attack");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).unwrap();
        text
    });
    let err = thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("chat-attack {args:?} did not finish within {RUN_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    let lines = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    Run {
        success: status.success(),
        lines,
        output: format!("stdout:\n{stdout}\nstderr:\n{stderr}"),
    }
}

/// The value at a `/`-separated path of keys, or a panic naming it.
#[track_caller]
fn key<'a>(line: &'a Value, path: &str, output: &str) -> &'a Value {
    let mut at = line;
    for part in path.split('/') {
        at = at
            .get(part)
            .unwrap_or_else(|| panic!("no key {path:?} in the JSON line {line}\n{output}"));
    }
    at
}

/// Asserts that a run succeeded with one JSON line per part, each with the
/// header's keys and `figures`.
#[track_caller]
fn expect_report(run: &Run, attack: &str, parts: usize, figures: &[&str]) {
    assert!(run.success, "chat-attack {attack} failed\n{}", run.output);
    assert_eq!(run.lines.len(), parts, "{}", run.output);
    for line in &run.lines {
        assert_eq!(key(line, "attack", &run.output), attack);
        for header in [
            "server",
            "server_args",
            "tool_nofile",
            "wall_s",
            "daemon_end",
            "quick",
        ] {
            key(line, header, &run.output);
        }
        assert_eq!(key(line, "quick", &run.output), true);
        assert!(line.get("error").is_none(), "{line}\n{}", run.output);
        for figure in figures {
            key(line, figure, &run.output);
        }
    }
}

#[test]
fn who_storm_reports_amplification_cpu_latency_and_memory() {
    let run = attack(
        &server_bin(),
        &["who-storm", "--fillers", "100", "--duration", "1"],
    );
    expect_report(
        &run,
        "who-storm",
        1,
        &[
            "fillers",
            "attackers",
            "request_bytes",
            "attacker_bytes_received",
            "amplification",
            "daemon_cpu_s",
            "pair/p50_ms",
            "pair/p99_ms",
            "pair/max_ms",
            "rss_after_mib",
        ],
    );
}

#[test]
fn quit_blast_reports_bytes_read_and_latency_before_and_during() {
    let run = attack(&server_bin(), &["quit-blast"]);
    expect_report(
        &run,
        "quit-blast",
        1,
        &[
            "blaster_bytes_written",
            "daemon_bytes_read",
            "pair_before/p50_ms",
            "pair_during/p50_ms",
            "pair_during/p99_ms",
        ],
    );
}

#[test]
fn log_flood_reports_each_part_on_its_own_line() {
    let run = attack(&server_bin(), &["log-flood", "--part", "b"]);
    expect_report(
        &run,
        "log-flood",
        1,
        &["part", "reason_len", "longest_log_line", "log_lines"],
    );
    let run = attack(&server_bin(), &["log-flood", "--part", "c", "--refused", "20"]);
    expect_report(
        &run,
        "log-flood",
        1,
        &["part", "attempts", "refused", "log_lines", "refusal_lines"],
    );
}

#[test]
fn a_daemon_that_dies_is_reported_as_the_finding_with_the_error() {
    // A "daemon" that says where it listens and exits at once.
    let dir = std::env::temp_dir().join(format!("chat-attack-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("dying-server");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'listening on 127.0.0.1:1' >&2\nexit 3\n",
    )
    .unwrap();
    let chmod = Command::new("chmod").arg("755").arg(&script).status().unwrap();
    assert!(chmod.success());
    let run = attack(&script, &["log-flood", "--part", "b"]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!run.success, "{}", run.output);
    assert_eq!(run.lines.len(), 1, "{}", run.output);
    let line = &run.lines[0];
    key(line, "error", &run.output);
    let end = key(line, "daemon_end", &run.output).as_str().unwrap();
    assert!(
        end.starts_with("died during the attack: daemon exited with exit code 3"),
        "{end}\n{}",
        run.output
    );
}
