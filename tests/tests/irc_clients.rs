//! The IRC clients people use, irssi and WeeChat, against the real daemon's
//! IRC listener, chatting in `#rust` with a line protocol user on `nc`:
//! each sees the other's messages and `/me` actions, the IRC client shows
//! the room's history said before it joined, and the line user sees it
//! come and go.
//!
//! Both clients run as people run them, full screen in a terminal: a tmux
//! pane of the test's own (`chat_tests::terminal`), keys typed into it,
//! and what the test checks is what the screen shows (`capture-pane`).
//! For WeeChat that is its curses interface (Debian's `weechat-curses`),
//! not `weechat-headless`: headless shows nothing, so a test of it would
//! read its logger files or a FIFO, which say what WeeChat stored, not
//! what its user sees; the curses one is driven and read exactly as irssi
//! is. Each client gets a throwaway home (irssi `--home` with a config
//! that connects to the daemon with a given nick; WeeChat `--dir`, the
//! server added and connected by `--run-command`), removed with its tmux
//! server at the end of the test, pass or fail.
//!
//! Neither client is told to hurry: irssi sends at most five commands at
//! once and then one every 2.2 s, WeeChat one every 2 s, as they do for
//! their users, so the waits for what they send are long
//! (`chat_tests::terminal::SCREEN_TIMEOUT`); each ends as soon as the
//! text is there. Everything listens and connects on 127.0.0.1.

use std::net::SocketAddr;

use chat_tests::terminal::{row_with, Terminal, SCREEN_TIMEOUT};
use chat_tests::{spawn_nc, Daemon, Proc};

/// The name the daemon gives itself on IRC.
const SERVER_NAME: &str = "irc.test";

/// The daemon with a line listener (for `nc`) and an IRC listener.
struct IrcDaemon {
    /// Killed and reaped on drop.
    daemon: Daemon,
    /// Where the line protocol is served.
    line: SocketAddr,
    /// Where IRC is served.
    irc: SocketAddr,
}

impl IrcDaemon {
    #[track_caller]
    fn start() -> IrcDaemon {
        let command = Daemon::command(&[
            "--listen",
            "127.0.0.1:0",
            "--irc-listen",
            "127.0.0.1:0",
            "--server-name",
            SERVER_NAME,
        ]);
        let daemon = Daemon::start_with(command, 2);
        let [line, irc] = daemon.addrs() else { panic!("two listeners: {:?}", daemon.addrs()) };
        let (line, irc) = (*line, *irc);
        let log = daemon.proc.stderr_lines().join("\n");
        assert!(
            log.contains(&format!("listening on {irc} (IRC)")),
            "the second listener is the IRC one:\n{log}"
        );
        IrcDaemon { daemon, line, irc }
    }
}

/// A line protocol user on netcat, named `nick`, in `#rust`.
#[track_caller]
fn nc_user_in_rust(server: &IrcDaemon, nick: &str) -> Proc {
    let mut nc = spawn_nc(server.line);
    let welcome = nc.stdout_line().unwrap_or_default();
    assert!(welcome.starts_with("-- welcome to chat-server, "), "{welcome:?}");
    nc.write_stdin(&format!("/nick {nick}\n/join rust\n"));
    nc.expect_stdout_line(&format!("-- you are now known as {nick}"));
    nc.expect_stdout_line("-- you joined #rust");
    nc
}

/// Which IRC client.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Irssi,
    WeeChat,
}

/// An IRC client, full screen in a terminal of its own, registered with
/// the daemon.
struct IrcUser {
    kind: Kind,
    terminal: Terminal,
}

impl IrcUser {
    /// Starts `kind` as `nick`, connected to `irc`, and waits until it
    /// shows the end of registration (no MOTD file: 422).
    #[track_caller]
    fn start(kind: Kind, irc: SocketAddr, nick: &str) -> IrcUser {
        assert!(
            installed(kind.program()),
            "this test needs {} on the PATH: apt-get install {}",
            kind.program(),
            kind.package()
        );
        let mut terminal = Terminal::new(kind.program());
        let home = terminal.dir().join("home");
        if let Err(e) = std::fs::create_dir(&home) {
            panic!("cannot make {}: {e}", home.display());
        }
        let args = match kind {
            Kind::Irssi => {
                let config = irssi_config(irc, nick);
                if let Err(e) = std::fs::write(home.join("config"), config) {
                    panic!("cannot write the irssi config: {e}");
                }
                vec![format!("--home={}", home.display())]
            }
            Kind::WeeChat => {
                // -notls: WeeChat 4 connects with TLS unless told not to
                // (3.8, Debian 12's, ignores the option it does not know).
                let commands = format!(
                    "/server add test {ip}/{port} -notls -nicks={nick} -username={nick} \
                     -realname={nick};/connect test",
                    ip = irc.ip(),
                    port = irc.port(),
                );
                vec![
                    "--dir".to_string(),
                    home.display().to_string(),
                    "--run-command".to_string(),
                    commands,
                ]
            }
        };
        terminal.run(kind.program(), &args);
        let user = IrcUser { kind, terminal };
        user.terminal.wait_for("MOTD File is missing");
        user
    }

    /// Types `/join #rust` and waits until the client shows its own join,
    /// in the channel's window, which it switches to.
    #[track_caller]
    fn join_rust(&self, nick: &str) -> Vec<String> {
        self.type_line("/join #rust");
        self.wait_for(&self.kind.joined(nick, "#rust"))
    }

    #[track_caller]
    fn type_line(&self, text: &str) {
        self.terminal.type_line(text);
    }

    #[track_caller]
    fn wait_for(&self, text: &str) -> Vec<String> {
        self.terminal.wait_for(text)
    }
}

impl Kind {
    /// The command that runs it.
    fn program(self) -> &'static str {
        match self {
            Kind::Irssi => "irssi",
            Kind::WeeChat => "weechat",
        }
    }

    /// The Debian package that installs it.
    fn package(self) -> &'static str {
        match self {
            Kind::Irssi => "irssi",
            Kind::WeeChat => "weechat-curses",
        }
    }

    /// How its screen shows `nick` saying `text` in a channel: irssi
    /// `<@bob> text` (the mode before the nick, a space when none),
    /// WeeChat `@bob | text` (the nick right-aligned in its column).
    fn said(self, nick: &str, text: &str) -> String {
        match self {
            Kind::Irssi => format!("{nick}> {text}"),
            Kind::WeeChat => format!("{nick} | {text}"),
        }
    }

    /// How it shows `nick`'s action `text` (`/me text`).
    fn action(self, nick: &str, text: &str) -> String {
        match self {
            Kind::Irssi => format!(" * {nick} {text}"),
            Kind::WeeChat => format!("* | {nick} {text}"),
        }
    }

    /// How it shows `nick` joining `channel` (every user's host is
    /// `chat-server`).
    fn joined(self, nick: &str, channel: &str) -> String {
        match self {
            Kind::Irssi => format!("{nick} [{nick}@chat-server] has joined {channel}"),
            Kind::WeeChat => format!("{nick} ({nick}@chat-server) has joined {channel}"),
        }
    }
}

/// True when `program` is an executable file in a directory of `PATH`.
fn installed(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// irssi's configuration: one server, the daemon, connected at start as
/// `nick`, in plain text; settings never saved over it.
fn irssi_config(irc: SocketAddr, nick: &str) -> String {
    format!(
        r#"servers = (
  {{
    address = "{ip}";
    chatnet = "test";
    port = "{port}";
    use_tls = "no";
    autoconnect = "yes";
  }}
);
chatnets = {{ test = {{ type = "IRC"; nick = "{nick}"; username = "{nick}"; realname = "{nick}"; }}; }};
settings = {{
  core = {{ settings_autosave = "no"; nick = "{nick}"; user_name = "{nick}"; real_name = "{nick}"; }};
}};
"#,
        ip = irc.ip(),
        port = irc.port(),
    )
}

/// The row of `screen` that contains `text`; fails the test, with the
/// screen, when none does.
#[track_caller]
fn row(screen: &[String], text: &str) -> usize {
    match row_with(screen, text) {
        Some(row) => row,
        None => panic!("no row shows {text:?}; the screen:\n{}", screen.join("\n")),
    }
}

/// Checks that `texts` are on `screen` in that order, each on a row below
/// the one before.
#[track_caller]
fn assert_in_order(screen: &[String], texts: &[&str]) {
    let rows: Vec<usize> = texts.iter().map(|text| row(screen, text)).collect();
    assert!(
        rows.windows(2).all(|pair| pair[0] < pair[1]),
        "expected these in this order: {texts:#?}\nat rows {rows:?} of the screen:\n{}",
        screen.join("\n")
    );
}

/// bob on nc says two lines in `#rust`; then `kind` joins as alice and
/// shows them, after its join; then each says something and sees what the
/// other said.
fn history_then_chat_both_ways(kind: Kind) {
    let mut server = IrcDaemon::start();
    let mut bob = nc_user_in_rust(&server, "bob");
    bob.write_stdin("said before alice came\nand a second line of history\n/who\n");
    // The hub takes bob's lines in order: once /who is answered, both
    // lines are in the room's history.
    bob.expect_stdout_line("-- 1 in #rust: @bob");

    let alice = IrcUser::start(kind, server.irc, "alice");
    alice.join_rust("alice");
    bob.expect_stdout_line("-- alice joined #rust");
    // The daemon took her for an IRC user: registered, not a line guest.
    server
        .daemon
        .proc
        .expect_stderr_containing(&["as alice (registered)"]);
    let history = [
        kind.said("bob", "said before alice came"),
        kind.said("bob", "and a second line of history"),
    ];
    let screen = alice.wait_for(&history[1]);
    assert_in_order(
        &screen,
        &[&kind.joined("alice", "#rust"), &history[0], &history[1]],
    );

    let from_client = format!("hello bob, from {}", kind.program());
    alice.type_line(&from_client);
    bob.expect_stdout_line_within(&format!("<alice> {from_client}"), SCREEN_TIMEOUT);
    bob.write_stdin("hi alice, naïve café ✓ from nc\n");
    let from_nc = kind.said("bob", "hi alice, naïve café ✓ from nc");
    let screen = alice.wait_for(&from_nc);
    assert_in_order(
        &screen,
        &[&history[1], &kind.said("alice", &from_client), &from_nc],
    );
    println!("{} screen:\n{}", kind.program(), screen.join("\n"));
    println!("nc output:\n{}", bob.stdout_lines().join("\n"));
}

/// alice on `kind` and bob on nc in `#rust`: each one's `/me` is an action
/// on the other's side; bob's new nick shows on alice's; alice's `/quit`
/// with a reason ends her client and bob sees her go, with the reason.
fn actions_nick_and_quit_cross(kind: Kind) {
    let server = IrcDaemon::start();
    let mut bob = nc_user_in_rust(&server, "bob");
    let alice = IrcUser::start(kind, server.irc, "alice");
    alice.join_rust("alice");
    bob.expect_stdout_line("-- alice joined #rust");

    alice.type_line("/me waves from her IRC client");
    bob.expect_stdout_line_within("* alice waves from her IRC client", SCREEN_TIMEOUT);
    alice.wait_for(&kind.action("alice", "waves from her IRC client"));
    bob.write_stdin("/me waves back from nc\n");
    alice.wait_for(&kind.action("bob", "waves back from nc"));

    bob.write_stdin("/nick bobby\n");
    bob.expect_stdout_line("-- you are now known as bobby");
    let screen = alice.wait_for("bob is now known as bobby");
    assert_in_order(
        &screen,
        &[
            &kind.action("alice", "waves from her IRC client"),
            &kind.action("bob", "waves back from nc"),
            "bob is now known as bobby",
        ],
    );

    alice.type_line("/quit going home");
    bob.expect_stdout_line_within("-- alice left #rust (quit: going home)", SCREEN_TIMEOUT);
    alice.terminal.wait_exit();
}

#[test]
fn irssi_shows_the_history_of_rust_on_join_and_chats_with_an_nc_user_both_ways() {
    history_then_chat_both_ways(Kind::Irssi);
}

#[test]
fn weechat_shows_the_history_of_rust_on_join_and_chats_with_an_nc_user_both_ways() {
    history_then_chat_both_ways(Kind::WeeChat);
}

#[test]
fn irssi_and_an_nc_user_see_each_others_actions_nick_changes_and_quit() {
    actions_nick_and_quit_cross(Kind::Irssi);
}

#[test]
fn weechat_and_an_nc_user_see_each_others_actions_nick_changes_and_quit() {
    actions_nick_and_quit_cross(Kind::WeeChat);
}
