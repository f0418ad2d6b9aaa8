//! README.md tells a new user what `./scripts/test` installs on their
//! machine: every package and tool the scripts may install is named in its
//! "Two commands" section, so the list cannot fall behind the scripts again
//! (it once named three of the seven things installed).

// Test helpers outside #[test] functions panic on purpose too.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use chat_gen::workspace_root;

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace_root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// README's section `heading` (a `## ` heading), up to the next one.
fn readme_section(heading: &str) -> String {
    let readme = read("README.md");
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no section {heading}"));
    let rest = readme.get(start + 1..).unwrap();
    let end = rest
        .get(3..)
        .and_then(|r| r.find("\n## "))
        .map_or(rest.len(), |at| at + 3);
    rest.get(..end).unwrap().to_string()
}

/// What a script installs: the Debian packages in its `missing+=(...)`
/// lines and `apt-get install` commands, the rustup components it loops
/// over, and the crates it installs with `cargo install`.
fn installed_by(script: &str) -> Vec<String> {
    let text = read(script);
    let mut installed = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        if let Some((_, rest)) = line.split_once("missing+=(") {
            installed.extend(
                rest.split(')')
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .map(String::from),
            );
        } else if let Some(rest) = line.strip_prefix("for component in ") {
            installed.extend(
                rest.split(';')
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .map(String::from),
            );
        } else if let Some((_, rest)) = line.split_once("cargo install ") {
            installed.push(rest.split_whitespace().next().unwrap().to_string());
        } else if line.contains("apt-get install") && !line.contains("${missing[@]}") {
            let package = line
                .split_whitespace()
                .rfind(|w| !w.starts_with('>') && !w.starts_with('-'));
            installed.push(package.unwrap().to_string());
        }
    }
    installed
}

#[test]
fn the_readme_names_everything_the_test_command_installs() {
    let section = readme_section("Two commands");
    let mut installed = installed_by("scripts/test");
    installed.extend(installed_by("scripts/package-check"));
    installed.extend(installed_by("scripts/browser-test"));
    for expected in [
        "netcat-openbsd",
        "tmux",
        "systemd",
        "prometheus",
        "man-db",
        "openssl",
        "ncat",
        "irssi",
        "weechat-curses",
        "rustfmt",
        "clippy",
        "cargo-deb",
        "lintian",
        "chromium",
        "chromium-driver",
        "python3-venv",
    ] {
        assert!(
            installed.iter().any(|i| i == expected),
            "{expected} not found in the scripts: {installed:?}"
        );
    }
    for thing in &installed {
        assert!(
            section.contains(&format!("`{thing}`")),
            "README.md's \"Two commands\" does not say that the test command installs {thing}:\n{section}"
        );
    }
    assert_eq!(
        read("scripts/test").contains("--no-install-recommends"),
        section.contains("--no-install-recommends"),
        "README says how apt-get is run"
    );
}
