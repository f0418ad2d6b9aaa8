//! The man pages and shell completions of `chat-server` and `chat-client`,
//! generated from the clap definitions the binaries parse with
//! ([`chat_server::cli::Cli`] and [`chat_client::args::Args`]), so they
//! cannot drift from `--help`. They are committed (in `man/` and
//! `completions/`) because the Debian package ships them and a build from
//! a checkout should not need to run anything first; `cargo run -p
//! chat-gen` rewrites them, and this crate's tests fail when the committed
//! ones are out of date.
//!
//! The version in the pages is the package version alone, not the git
//! commit `--version` shows, or every commit would outdate them.

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;

/// One generated file: where it goes, relative to the workspace root, and
/// what it holds.
#[derive(Debug)]
pub struct Generated {
    /// Path relative to the workspace root, e.g. `man/chat-server.8`.
    pub path: PathBuf,
    /// The file's bytes.
    pub contents: Vec<u8>,
}

/// The workspace root, where `man/` and `completions/` are committed.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The server's command line, with the plain package version.
pub fn server_command() -> clap::Command {
    chat_server::cli::Cli::command().version(env!("CARGO_PKG_VERSION"))
}

/// The client's command line, with the plain package version.
pub fn client_command() -> clap::Command {
    chat_client::args::Args::command().version(env!("CARGO_PKG_VERSION"))
}

/// Every generated file, in a fixed order.
///
/// # Errors
/// Only if rendering fails, which writing to memory does not.
pub fn generate() -> io::Result<Vec<Generated>> {
    let mut files = vec![
        Generated {
            path: PathBuf::from("man/chat-server.8"),
            contents: server_man_page()?,
        },
        Generated {
            path: PathBuf::from("man/chat-client.1"),
            contents: client_man_page()?,
        },
    ];
    for (name, command) in [
        ("chat-server", server_command()),
        ("chat-client", client_command()),
    ] {
        for (shell, file) in [
            (Shell::Bash, format!("{name}.bash")),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut contents = Vec::new();
            clap_complete::generate(shell, &mut command.clone(), name, &mut contents);
            files.push(Generated {
                path: Path::new("completions").join(file),
                contents,
            });
        }
    }
    Ok(files)
}

/// Writes every generated file under `root`, creating `man/` and
/// `completions/` as needed, and returns the paths written.
///
/// # Errors
/// When a directory or file cannot be written.
pub fn write_to(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for file in generate()? {
        let path = root.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &file.contents)?;
        written.push(path);
    }
    Ok(written)
}

/// `chat-server(8)`: clap's sections, then where the packaged files are.
fn server_man_page() -> io::Result<Vec<u8>> {
    // No .manual(): with no date (which would outdate the page every day)
    // it would shift into the date's place.
    let man = Man::new(server_command()).section("8");
    let mut out = Vec::new();
    standard_sections(&man, &mut out)?;
    let mut roff = Roff::new();
    roff.control("SH", ["FILES"]);
    for (path, what) in [
        (
            "/etc/chat-server/env",
            "The options as environment variables, for the systemd service; every one is there, \
             commented out at its default.",
        ),
        (
            "/usr/lib/systemd/system/chat-server.socket",
            "The listening socket (127.0.0.1:7878 as shipped). Enable it, not the service: \
             systemctl enable --now chat-server.socket. Change the address with systemctl edit \
             chat-server.socket.",
        ),
        (
            "/usr/lib/systemd/system/chat-server.service",
            "The sandboxed service the socket starts.",
        ),
    ] {
        roff.control("TP", []).text([bold(path)]).text([roman(what)]);
    }
    see_also(
        &mut roff,
        &[("chat-client", "1"), ("systemctl", "1"), ("systemd.socket", "5")],
    );
    roff.to_writer(&mut out)?;
    Ok(out)
}

/// `chat-client(1)`: clap's sections, the commands of the protocol (from
/// the list `/help` prints), the exit status (clap's after-help text).
fn client_man_page() -> io::Result<Vec<u8>> {
    let command = client_command();
    let exit_status = command.get_after_help().map(|text| text.to_string());
    let man = Man::new(command).section("1");
    let mut out = Vec::new();
    standard_sections(&man, &mut out)?;
    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    roff.text([roman(
        "A line that does not start with / is said to your room; //text sends /text. \
         Command names are matched without regard to case.",
    )]);
    for (usage, what) in chat_protocol::command::COMMANDS {
        roff.control("TP", []).text([bold(*usage)]).text([roman(*what)]);
    }
    if let Some(text) = exit_status {
        roff.control("SH", ["EXIT STATUS"]).text([roman(text)]);
    }
    see_also(&mut roff, &[("chat-server", "8"), ("nc", "1")]);
    roff.to_writer(&mut out)?;
    Ok(out)
}

/// The sections clap knows: title, name, synopsis, description, options.
/// Not clap's EXTRA (the client's becomes EXIT STATUS) nor VERSION.
fn standard_sections(man: &Man, out: &mut Vec<u8>) -> io::Result<()> {
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)
}

fn see_also(roff: &mut Roff, pages: &[(&str, &str)]) {
    roff.control("SH", ["SEE ALSO"]);
    let mut inlines = Vec::new();
    for (i, (name, section)) in pages.iter().enumerate() {
        if i > 0 {
            inlines.push(roman(", "));
        }
        inlines.push(bold(*name));
        inlines.push(roman(format!("({section})")));
    }
    roff.text(inlines);
    roff.control("PP", []);
    roff.text([
        roman("The wire protocol: "),
        italic("/usr/share/doc/chat-server/PROTOCOL.md"),
        roman(" (PROTOCOL.md in the source)."),
    ]);
}
