//! The committed man pages and completions are what the clap definitions
//! generate today, the man pages render cleanly with the sections a user
//! looks for (the server's ENVIRONMENT listing every option's variable),
//! and bash completes with
//! the committed script (zsh and fish are not installed to try theirs);
//! the options file shipped as /etc/chat-server/env lists every option at
//! its default; and `--version` names the commit in a checkout.

// Test helpers outside #[test] functions panic on purpose too.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use chat_gen::{client_command, server_command, workspace_root};
use clap::CommandFactory;

/// The files under `dir` (one level), relative to the workspace root.
fn committed(dir: &str) -> BTreeSet<PathBuf> {
    std::fs::read_dir(workspace_root().join(dir))
        .unwrap()
        .map(|entry| Path::new(dir).join(entry.unwrap().file_name()))
        .collect()
}

#[test]
fn the_committed_man_pages_and_completions_are_up_to_date() {
    // Written to a scratch directory with the generator's own writer, then
    // compared byte for byte with the committed files.
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("gen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let written = chat_gen::write_to(&scratch).unwrap();
    let fix = "run `cargo run -p chat-gen` and commit man/ and completions/";
    let mut generated = BTreeSet::new();
    for path in &written {
        let relative = path.strip_prefix(&scratch).unwrap().to_path_buf();
        let new = std::fs::read(path).unwrap();
        let old = std::fs::read(workspace_root().join(&relative))
            .unwrap_or_else(|e| panic!("{} is missing ({e}): {fix}", relative.display()));
        assert!(new == old, "{} is out of date: {fix}", relative.display());
        generated.insert(relative);
    }
    let mut on_disk = committed("man");
    on_disk.extend(committed("completions"));
    assert_eq!(on_disk, generated, "files no longer generated: {fix}");
    assert_eq!(generated.len(), 8, "two man pages, three shells for two binaries");
    std::fs::remove_dir_all(&scratch).unwrap();
}

/// `page` as `man` renders it for an 80-column terminal, after checking
/// that it renders without a warning.
fn rendered(page: &str) -> String {
    let output = Command::new("man")
        .args(["--warnings", "-E", "UTF-8", "-l"])
        .arg(workspace_root().join(page))
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("man (man-db) runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{page}: {stderr}");
    assert_eq!(stderr, "", "{page}: groff warnings");
    String::from_utf8(output.stdout).unwrap()
}

/// The lines of section `heading` of a rendered page, up to the next
/// heading (a line that starts with a capital, not indented).
fn section<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| !l.starts_with(|c: char| c.is_ascii_uppercase()))
        .collect()
}

/// Section `heading` as running text: its lines joined, words hyphenated
/// at a line end joined again, one space between words.
fn section_text(text: &str, heading: &str) -> String {
    let joined = section(text, heading).join(" ").replace("\u{2010} ", "");
    joined.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_man_pages_render_without_warnings() {
    for (page, name, section, headings) in [
        (
            "man/chat-server.8",
            "chat-server",
            "8",
            &["SIGNALS", "EXIT STATUS", "ENVIRONMENT", "FILES"][..],
        ),
        (
            "man/chat-client.1",
            "chat-client",
            "1",
            &["COMMANDS", "EXIT STATUS"],
        ),
    ] {
        let stdout = rendered(page);
        assert!(
            stdout.starts_with(&format!("{name}({section})")),
            "{page}: {stdout}"
        );
        for heading in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SEE ALSO"]
            .iter()
            .chain(headings)
        {
            assert!(stdout.lines().any(|l| l == *heading), "{page} lacks {heading}");
        }
    }
}

#[test]
fn the_server_page_says_what_it_is_and_where_its_documents_are_installed() {
    let text = rendered("man/chat-server.8");
    let name = section_text(&text, "NAME");
    assert!(name.contains("chat-server - Multi-user chat server"), "{name}");
    for jargon in ["mio", "event loop", "owner"] {
        assert!(!name.contains(jargon), "implementation jargon in NAME: {name}");
    }
    let description = section_text(&text, "DESCRIPTION");
    let files = section_text(&text, "FILES");
    for document in [
        "/usr/share/doc/chat-server/PROTOCOL.md",
        "/usr/share/doc/chat-server/README.md",
    ] {
        assert!(description.contains(document), "DESCRIPTION lacks {document}");
        assert!(files.contains(document), "FILES lacks {document}");
    }
    let exit_status = section_text(&text, "EXIT STATUS");
    for code in [
        "0 after a clean stop",
        "1 when the server cannot start",
        "2 for a usage error",
    ] {
        assert!(
            exit_status.contains(code),
            "EXIT STATUS lacks {code:?}: {exit_status}"
        );
    }
    let signals = section_text(&text, "SIGNALS");
    for signal in ["SIGTERM", "SIGINT", "SIGHUP"] {
        assert!(signals.contains(signal), "SIGNALS lacks {signal}");
    }
}

#[test]
fn the_server_page_lists_every_variable_under_environment() {
    let text = rendered("man/chat-server.8");
    let environment = section(&text, "ENVIRONMENT");
    let mut listed = 0;
    for arg in server_command().get_arguments() {
        let Some(var) = arg.get_env() else { continue };
        let var = var.to_string_lossy();
        assert!(
            environment.iter().any(|l| l.trim() == var),
            "ENVIRONMENT lacks {var}:\n{}",
            environment.join("\n")
        );
        listed += 1;
    }
    assert!(listed >= 21, "{listed} variables");
    for other in ["RUST_LOG", "LISTEN_FDS", "NOTIFY_SOCKET", "JOURNAL_STREAM"] {
        assert!(
            environment.iter().any(|l| l.trim().starts_with(other)),
            "ENVIRONMENT lacks {other}"
        );
    }
}

#[test]
fn the_man_pages_hold_every_option_and_the_client_page_every_command() {
    for (page, command) in [
        ("man/chat-server.8", server_command()),
        ("man/chat-client.1", client_command()),
    ] {
        let text = std::fs::read_to_string(workspace_root().join(page)).unwrap();
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long() {
                // roff escapes the dashes: \-\-max\-line.
                let escaped = format!("--{long}").replace('-', "\\-");
                assert!(text.contains(&escaped), "{page} lacks --{long}");
            }
        }
    }
    let client = std::fs::read_to_string(workspace_root().join("man/chat-client.1")).unwrap();
    assert!(client.contains(".SH COMMANDS"));
    assert!(client.contains(".SH \"EXIT STATUS\""), "{client}");
    for help in chat_protocol::command::COMMANDS {
        assert!(client.contains(help.usage), "chat-client(1) lacks {}", help.usage);
    }
}

#[test]
fn the_options_file_lists_every_option_commented_out_at_its_default() {
    let file = std::fs::read_to_string(workspace_root().join("systemd/chat-server.env")).unwrap();
    let mut checked = 0;
    for arg in server_command().get_arguments() {
        let Some(var) = arg.get_env().map(|v| v.to_string_lossy().into_owned()) else {
            continue;
        };
        if var.ends_with("_LISTEN") && var != "CHAT_SERVER_METRICS_LISTEN" {
            // Deliberately absent: addresses belong in the socket units,
            // and the file says so.
            assert!(
                file.contains("CHAT_SERVER_LISTEN or CHAT_SERVER_TLS_LISTEN would"),
                "{file}"
            );
            assert!(file.contains("chat-server-tls.socket"), "{file}");
            continue;
        }
        // At its default when it has one; an option without one (off
        // unless given) is shown as a commented-out example.
        let line = match arg.get_default_values() {
            [] => format!("#{var}="),
            [default] => format!("#{var}={}", default.to_string_lossy()),
            many => panic!("{var} has several defaults: {many:?}"),
        };
        assert!(
            file.lines().any(|l| l.starts_with(&line)),
            "chat-server.env lacks {line}"
        );
        checked += 1;
    }
    assert!(checked >= 9, "every option but the addresses, {checked} checked");
    // Nothing set: the file changes nothing until the admin uncomments.
    assert!(file.lines().all(|l| l.is_empty() || l.starts_with('#')), "{file}");
}

#[test]
fn version_names_the_git_commit_in_a_checkout() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string());
    for command in [
        chat_server::cli::Cli::command(),
        chat_client::args::Args::command(),
    ] {
        let name = command.get_name().to_string();
        let version = command.render_version();
        let expected = match &commit {
            Some(commit) => format!("{name} {} ({commit})\n", env!("CARGO_PKG_VERSION")),
            None => format!("{name} {}\n", env!("CARGO_PKG_VERSION")),
        };
        assert_eq!(version, expected);
    }
}

/// What bash completes `NAME WORD<Tab>` to with the committed script: its
/// completion function called the way bash's programmable completion does.
fn bash_completes(name: &str, word: &str) -> Vec<String> {
    let script = r#"source "$1"
spec=$(complete -p "$2") || exit 1
fn=${spec#*-F }
fn=${fn%% *}
COMP_WORDS=("$2" "$3")
COMP_CWORD=1
COMP_LINE="$2 $3"
COMP_POINT=${#COMP_LINE}
"$fn" "$2" "$3" "$2"
printf '%s\n' "${COMPREPLY[@]}""#;
    let output = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script, "bash"])
        .arg(workspace_root().join(format!("completions/{name}.bash")))
        .args([name, word])
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut words: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    words.sort();
    words
}

#[test]
fn bash_completes_the_options_of_both_commands() {
    assert_eq!(
        bash_completes("chat-server", "--max-"),
        ["--max-clients", "--max-line", "--max-per-ip", "--max-per-net"]
    );
    assert_eq!(bash_completes("chat-client", "--r"), ["--reconnect", "--room"]);
}
