//! chat-bench's cluster mode (issue 17) against the real `chat-server`
//! binary (the debug build beside this test, built by `cargo build
//! --workspace` as `scripts/test` does first) and Debian's `redis-server`,
//! both started by chat-bench itself on free loopback ports: a short
//! fan-out over two instances must deliver every line, across instances,
//! exactly once and in order. Nothing about timing is checked.
//!
//! Without `redis-server` the run fails, and so does the test, with the
//! tool's message saying how to install it: never a silent skip.
//!
//! Every run is bounded by the tool's own limits (setup timeout, duration,
//! drain), and the tool stops the instances and Redis when it ends.

// A test fails by panicking; clippy.toml allows these in #[test] functions
// but not in the helpers of an integration test file, so say it here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

// This test starts no server in-process: the shared in-process server
// goes unused here.
#[allow(dead_code)]
mod common;

use std::path::PathBuf;

use common::{assert_every_line_once, json_of};

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

#[test]
fn a_fanout_over_two_clustered_instances_delivers_every_line_across_them() {
    let bin = server_bin();
    let json = json_of(&[
        "--server-bin",
        bin.to_str().unwrap(),
        "--cluster-instances",
        "2",
        // Six clients join in milliseconds; a cluster that never lets
        // them join fails the test in 20 s rather than the default 60.
        "--setup-timeout",
        "20",
        "fanout",
        "--clients",
        "6",
        "--senders",
        "2",
        "--window",
        "16",
        "--duration",
        "1",
        "--drain",
        "10",
    ]);
    assert_eq!(json["cluster_instances"], 2, "{json}");
    let server = json["server"].as_str().unwrap();
    assert!(server.contains("--cluster redis://127.0.0.1:"), "{server}");
    let sent = json["lines_sent"].as_u64().unwrap();
    assert!(sent > 0, "no line was sent: {json}");
    // Clients 0..6 alternate between the instances; each line reaches
    // the five other clients, three of them on the other instance.
    assert_every_line_once(&json, sent * 5);
}
