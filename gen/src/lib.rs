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

/// `chat-server(8)`: clap's sections, then what the signals do, the exit
/// status, the environment (every option's variable, from the clap
/// definitions, and the variables systemd sets) and the packaged files.
fn server_man_page() -> io::Result<Vec<u8>> {
    let command = server_command();
    // No .manual(): with no date (which would outdate the page every day)
    // it would shift into the date's place.
    let man = Man::new(command.clone()).section("8");
    let mut out = Vec::new();
    standard_sections(&man, &mut out)?;
    let mut roff = Roff::new();
    roff.control("SH", ["SIGNALS"]);
    roff.text([roman(chat_server::cli::SIGNALS)]);
    roff.control("SH", ["EXIT STATUS"]);
    roff.text([roman(chat_server::cli::EXIT_STATUS)]);
    ctl_section(&mut roff, &command);
    server_environment(&mut roff, &command);
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
            "/usr/lib/systemd/system/chat-server-tls.socket",
            "The TLS listening socket (127.0.0.1:7879 as shipped), passed to the service by the \
             name tls; not enabled by the package. Give the service a certificate first (the \
             credentials tls-cert and tls-key, see README.md), then systemctl enable --now \
             chat-server-tls.socket and systemctl restart chat-server.",
        ),
        (
            "/usr/lib/systemd/system/chat-server-irc.socket",
            "The IRC listening socket (127.0.0.1:6667 as shipped), passed by the name irc; \
             chat-server-ircs.socket is IRC over TLS (127.0.0.1:6697, irc-tls). Not enabled by the \
             package.",
        ),
        (
            "/usr/lib/systemd/system/chat-server-web.socket",
            "The web listening socket (127.0.0.1:7880 as shipped: the page and its WebSocket), \
             passed by the name web; chat-server-webs.socket is the same over TLS (127.0.0.1:7881, \
             web-tls). Not enabled by the package.",
        ),
        (
            "/usr/lib/systemd/system/chat-server.service",
            "The sandboxed service the sockets start. systemctl reload chat-server reads the TLS \
             certificate and key again.",
        ),
        (
            "/run/chat-server/control",
            "The control socket of the packaged service (RuntimeDirectory=), which chat-server ctl \
             talks to; mode 0600, so run chat-server ctl as root.",
        ),
        (
            "/var/lib/chat-server/server-bans",
            "The server bans of chat-server ctl ban (StateDirectory=; under /var/lib/private with \
             the service's dynamic user), one a line: mask, when set, until when, reason, \
             tab-separated. Written whole and renamed into place; a damaged file stops the daemon \
             at start, naming the line.",
        ),
        (
            "/usr/share/doc/chat-server/README.md",
            "The daemon and its client: every option, the limits, the metrics, the units, how to \
             install and configure.",
        ),
        (
            "/usr/share/doc/chat-server/PROTOCOL.md",
            "The wire protocol: every command, every line the server sends, every error.",
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

/// The variables the daemon reads that are not options: systemd's, and
/// the log's.
const OTHER_VARIABLES: &[(&str, &str)] = &[
    (
        "RUST_LOG",
        "What to log: error, warn, info (the default), debug (adds every message as ADDR NICK: \
         TEXT) or trace, as env_logger reads it.",
    ),
    (
        "LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES",
        "Set by systemd (or another service manager) to pass listening sockets (socket \
         activation): the daemon serves them, and the --listen addresses only if given.",
    ),
    (
        "NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID",
        "Set by systemd for a Type=notify service: the daemon says when it is ready and stopping, \
         keeps a status line, and pings the watchdog while its event loops run.",
    ),
    (
        "RUNTIME_DIRECTORY, STATE_DIRECTORY",
        "Set by systemd for RuntimeDirectory= and StateDirectory=: the control socket (control) \
         and the server bans (server-bans) go there unless --control-socket and --state-dir say \
         otherwise.",
    ),
    (
        "JOURNAL_STREAM",
        "Set by systemd when standard error is the journal: each log line is then the message \
         after a syslog priority (<6>), without a timestamp.",
    ),
];

/// The CTL section: `chat-server ctl`'s options and commands, from its
/// clap definition, and its exit status.
fn ctl_section(roff: &mut Roff, command: &clap::Command) {
    let Some(ctl) = command.find_subcommand("ctl") else { return };
    roff.control("SH", ["CTL"]);
    roff.text([
        bold("chat-server ctl"),
        roman(" ["),
        bold("--socket"),
        roman(" "),
        italic("PATH"),
        roman("] ["),
        bold("--json"),
        roman("] "),
        italic("COMMAND"),
        roman(
            " talks to a running server through its control socket (--control-socket; \
             /run/chat-server/control by default) and prints its answer, as lines of text or, \
             with --json, as the server's JSON answer. Its commands:",
        ),
    ]);
    for sub in ctl.get_subcommands() {
        let mut usage = format!("chat-server ctl {}", sub.get_name());
        for arg in sub.get_arguments() {
            if arg.is_positional() {
                let name = arg.get_id().as_str().to_ascii_uppercase();
                if arg.is_required_set() {
                    usage.push_str(&format!(" {name}"));
                } else {
                    usage.push_str(&format!(" [{name}]"));
                }
            } else if let Some(long) = arg.get_long() {
                usage.push_str(&format!(" [--{long} VALUE]"));
            }
        }
        let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
        roff.control("TP", []).text([bold(usage)]).text([roman(about)]);
    }
    roff.control("PP", []);
    roff.text([roman(format!(
        "Exit status of chat-server ctl: {}",
        chat_server::ops::control::ctl::CTL_EXIT_STATUS
    ))]);
}

/// The ENVIRONMENT section: each option's variable, as clap knows it, so
/// none is forgotten, then [`OTHER_VARIABLES`].
fn server_environment(roff: &mut Roff, command: &clap::Command) {
    roff.control("SH", ["ENVIRONMENT"]);
    roff.text([roman(
        "Every option can be set with its variable instead; the systemd service reads them from \
         /etc/chat-server/env. An option on the command line wins over its variable, a variable \
         set to the empty string counts as unset, and a bad value in one is a usage error that \
         names the variable.",
    )]);
    for arg in command.get_arguments() {
        let (Some(var), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        let mut what = vec![roman("The same as "), bold(format!("--{long}")), roman(".")];
        if arg.get_value_delimiter().is_some() {
            what.push(roman(
                " Several values are separated by commas (spaces around them allowed).",
            ));
        }
        roff.control("TP", [])
            .text([bold(var.to_string_lossy().into_owned())])
            .text(what);
    }
    for (var, what) in OTHER_VARIABLES {
        roff.control("TP", []).text([bold(*var)]).text([roman(*what)]);
    }
}

/// `chat-client(1)`: clap's sections, the commands of the protocol (what
/// `/help` and `/help NAME` print), the exit status (clap's after-help
/// text).
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
    for help in chat_protocol::command::COMMANDS {
        roff.control("TP", [])
            .text([bold(help.usage)])
            .text([roman(format!("{}.", capitalized(help.summary)))]);
        // What /help NAME adds: details, an example, the errors.
        for line in help.details {
            roff.control("br", []).text([roman(*line)]);
        }
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

/// `text` with its first letter in upper case, to start a sentence.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
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
