//! Sets `CHAT_BUILD_VERSION` for `--version`: the package version, and the
//! git commit it was built from when built from a checkout with git
//! installed, so that a bug report says exactly which code ran
//! (`0.1.0 (4296db5)`). Anywhere else (a source tarball, no git) it is just
//! the package version, and the build goes on.
//!
//! The build script of both chat-server and chat-client (`build =` in
//! their Cargo.toml), so the two binaries report their version alike.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    watch(&Path::new(&manifest_dir).join("../build/version.rs"));
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    let shown = match &commit {
        Some(commit) => format!("{version} ({commit})"),
        None => version,
    };
    println!("cargo:rustc-env=CHAT_BUILD_VERSION={shown}");
    // Run again when HEAD moves: a checkout changes .git/HEAD, a commit the
    // branch it names (loose, or packed after a gc). In a linked worktree
    // HEAD is the worktree's own, but branches live in the common
    // directory of the repository.
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]).map(PathBuf::from) {
        let common_dir = git(&["rev-parse", "--git-common-dir"])
            .map(|dir| Path::new(&manifest_dir).join(dir))
            .unwrap_or_else(|| git_dir.clone());
        let head = git_dir.join("HEAD");
        watch(&head);
        if let Some(branch) = std::fs::read_to_string(&head)
            .ok()
            .and_then(|h| h.strip_prefix("ref: ").map(|r| r.trim().to_string()))
        {
            watch(&common_dir.join(branch));
        }
        watch(&common_dir.join("packed-refs"));
    }
}

/// Only files that exist: a missing one would make cargo rerun every time.
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// git's trimmed output, or `None` when git is missing or fails (not a
/// checkout).
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_string())
}
