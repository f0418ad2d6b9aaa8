//! The IRC listener, over loopback, against the server library: what the
//! conformance suite (irctest, run by `.ci/run`) does not cover. IRC and
//! line users in one room; `/me` and CTCP ACTION; a line user's long line
//! cut for IRC with nothing lost; UTF8ONLY; history with and without
//! `server-time`; one nick namespace; flood control and keepalive on IRC
//! connections; one QUIT however many channels are shared.
//!
//! The clients are raw: `chat_tests::irc::IrcClient` writes IRC lines and
//! reads the server's; `chat_tests::Client` speaks the line protocol.

use std::time::Duration;

use chat_server::config::Keepalive;
use chat_tests::irc::{command, params, IrcClient};
use chat_tests::{loopback_any_port, Client, Config, TestServer};

/// A server with a line listener and an IRC listener, called
/// `irc.test`, without history unless `config` asks for it.
fn server(config: Config) -> TestServer {
    TestServer::start(Config {
        irc_listen: vec![loopback_any_port()],
        server_name: "irc.test".to_string(),
        ..config
    })
}

fn quiet_config() -> Config {
    Config {
        history: 0,
        replay: 0,
        ..Config::default()
    }
}

/// A line user who has joined `room`.
#[track_caller]
fn line_user_in(server: &TestServer, nick: &str, room: &str) -> Client {
    let mut client = server.connect_named(nick);
    client.send(&format!("/join {room}"));
    client.expect_line(&format!("-- you joined #{room}"));
    client
}

#[test]
fn an_irc_user_and_a_line_user_share_a_room() {
    let server = server(quiet_config());
    let mut alice = IrcClient::registered(server.irc_addr(), "alice");
    let joined = alice.join("#rust");
    assert_eq!(joined[0], ":alice!alice@chat-server JOIN #rust");
    assert_eq!(joined[1], ":irc.test 353 alice = #rust :@alice");
    assert_eq!(joined[2], ":irc.test 366 alice #rust :End of /NAMES list");
    let mut bob = line_user_in(&server, "bob", "rust");
    alice.expect_line(":bob!bob@chat-server JOIN #rust");
    alice.send("PRIVMSG #rust :hello from irssi");
    bob.expect_line("<alice> hello from irssi");
    bob.send("hello from nc");
    alice.expect_line(":bob!bob@chat-server PRIVMSG #rust :hello from nc");
    // NAMES lists both, the one who opened the room as its operator.
    alice.send("NAMES #rust");
    alice.expect_line(":irc.test 353 alice = #rust :@alice bob");
    alice.expect_line(":irc.test 366 alice #rust :End of /NAMES list");
    // A line user's move to another room is a PART for IRC users.
    bob.send("/join lobby");
    bob.expect_line("-- you joined #lobby");
    alice.expect_line(":bob!bob@chat-server PART #rust :moved to #lobby");
}

#[test]
fn me_and_ctcp_action_are_the_same_thing_on_either_side() {
    let server = server(quiet_config());
    let mut alice = IrcClient::registered(server.irc_addr(), "alice");
    alice.join("#rust");
    let mut bob = line_user_in(&server, "bob", "rust");
    alice.expect_command("JOIN");
    bob.send("/me waves");
    alice.expect_line(":bob!bob@chat-server PRIVMSG #rust :\u{1}ACTION waves\u{1}");
    alice.send("PRIVMSG #rust :\u{1}ACTION waves back\u{1}");
    bob.expect_line("* alice waves back");
    // IRC's colours and styles are taken out, not turned into
    // replacement characters.
    alice.send("PRIVMSG #rust :\u{2}bold\u{2} and \u{3}4red\u{3}");
    bob.expect_line("<alice> bold and red");
}

#[test]
fn a_long_line_from_a_line_user_reaches_irc_in_pieces_with_nothing_lost() {
    let server = server(quiet_config());
    let mut alice = IrcClient::registered(server.irc_addr(), "alice");
    alice.join("#rust");
    let mut bob = line_user_in(&server, "bob", "rust");
    alice.expect_command("JOIN");
    let words: Vec<String> = (0..450).map(|i| format!("wörd{i}")).collect();
    let long = words.join(" ");
    assert!(long.len() > 3 * 512 && long.len() <= 4096, "{} bytes", long.len());
    bob.send(&long);
    // Once bob's next command is answered, the hub has sent alice the line.
    bob.send("/who");
    bob.expect_line("-- 2 in #rust: @alice, bob");
    let mut pieces = Vec::new();
    for line in alice.sync("long") {
        let p = params(&line);
        assert_eq!(command(&line), "PRIVMSG", "{line}");
        assert_eq!(p[0], "#rust");
        // Each piece is one an IRC client could have sent itself.
        assert!(format!("PRIVMSG #rust {}", p[1]).len() <= 510, "{line}");
        pieces.push(p[1].clone());
    }
    assert!(pieces.len() >= 4, "{} pieces", pieces.len());
    assert_eq!(pieces.concat(), long, "the pieces put together are the line");
}

#[test]
fn invalid_utf8_from_an_irc_client_fails_and_reaches_no_one() {
    let server = server(quiet_config());
    let mut alice = IrcClient::registered(server.irc_addr(), "alice");
    alice.join("#rust");
    let mut bob = line_user_in(&server, "bob", "rust");
    alice.expect_command("JOIN");
    alice.send_raw(b"PRIVMSG #rust :caf\xe9\r\n");
    assert_eq!(
        alice.sync("after"),
        [":irc.test FAIL PRIVMSG INVALID_UTF8 :Message rejected: it is not UTF-8 (this server is UTF8ONLY)"]
    );
    alice.send("PRIVMSG #rust :café");
    bob.expect_line("<alice> café");
}

#[test]
fn joining_replays_history_with_its_time_as_a_tag_or_in_the_text() {
    let server = server(Config {
        history: 10,
        replay: 10,
        ..Config::default()
    });
    let mut bob = line_user_in(&server, "bob", "rust");
    bob.send("said before anyone on IRC came");
    bob.send("/me left a note");
    bob.send("/who");
    bob.expect_line("-- 1 in #rust: @bob");
    // Without server-time: the time in front of the text.
    let mut carol = IrcClient::registered(server.irc_addr(), "carol");
    carol.join("#rust");
    let replay = carol.sync("replayed");
    assert_eq!(replay.len(), 2, "{replay:?}");
    let first = params(&replay[0]);
    assert!(
        replay[0].starts_with(":bob!bob@chat-server PRIVMSG #rust :["),
        "{replay:?}"
    );
    assert!(
        first[1].ends_with("Z] said before anyone on IRC came"),
        "{first:?}"
    );
    assert!(replay[1].contains("\u{1}ACTION ["), "{replay:?}");
    // With server-time: the text as said, the time as a tag.
    let mut dave = IrcClient::connect(server.irc_addr());
    dave.send("CAP REQ :server-time");
    dave.send("NICK dave");
    dave.send("USER dave 0 * :Dave");
    dave.send("CAP END");
    dave.skip_to(|l| command(l) == "422");
    dave.join("#rust");
    let replay = dave.sync("tagged");
    assert_eq!(replay.len(), 2, "{replay:?}");
    assert!(replay[0].starts_with("@time=20"), "{replay:?}");
    assert!(
        replay[0].ends_with("Z :bob!bob@chat-server PRIVMSG #rust :said before anyone on IRC came"),
        "{replay:?}"
    );
}

#[test]
fn one_namespace_of_nicks_for_both_protocols() {
    let server = server(quiet_config());
    let _alice = server.connect_named("alice");
    let mut irc = IrcClient::connect(server.irc_addr());
    irc.send("NICK alice");
    irc.send("USER a 0 * :A");
    irc.expect_line(":irc.test 433 * alice :Nickname is already in use");
    irc.send("NICK a1ice");
    irc.expect_line(":irc.test 433 * a1ice :Nickname looks too much like alice, who is online");
    irc.send("NICK alice_");
    irc.expect_command("001");
    // And the other way: the IRC user's nick is taken for line users.
    let mut bob = server.connect();
    bob.send("/nick ALICE_");
    bob.expect_line("!! nick ALICE_ is already in use");
    // A nick our rules refuse says which rule.
    irc.send("NICK [bob]");
    let refused = irc.skip_to(|l| command(l) == "432");
    assert!(refused.contains("may only contain letters, digits"), "{refused}");
}

#[test]
fn commands_unknown_or_before_registering_get_their_numerics() {
    let server = server(quiet_config());
    let mut irc = IrcClient::connect(server.irc_addr());
    irc.send("JOIN #rust");
    irc.expect_line(":irc.test 451 * :You have not registered");
    irc.send("NICK eve");
    irc.send("USER eve 0 * :Eve");
    irc.skip_to(|l| command(l) == "422");
    irc.send("FROBNICATE now");
    irc.expect_line(":irc.test 421 eve FROBNICATE :Unknown command");
    irc.send("PRIVMSG #nowhere :hello");
    irc.expect_line(":irc.test 403 eve #nowhere :No such channel");
    irc.send("PRIVMSG nobody :hello");
    irc.expect_line(":irc.test 401 eve nobody :No such nick/channel");
    // NOTICE never gets an error back.
    irc.send("NOTICE nobody :hello");
    assert_eq!(irc.sync("quiet"), Vec::<String>::new());
    irc.send("QUIT :done");
    irc.expect_line("ERROR :Closing link: eve (Quit)");
    assert_eq!(irc.next_line(), None, "closed after ERROR");
}

#[test]
fn a_user_in_several_shared_channels_quits_once() {
    let server = server(quiet_config());
    let mut alice = IrcClient::registered(server.irc_addr(), "alice");
    let mut bob = IrcClient::registered(server.irc_addr(), "bob");
    for channel in ["#a", "#b", "#c"] {
        alice.join(channel);
        bob.join(channel);
        alice.expect_line(&format!(":bob!bob@chat-server JOIN {channel}"));
    }
    bob.send("QUIT :bye all");
    bob.expect_command("ERROR");
    assert_eq!(
        alice.sync("after-quit"),
        [":bob!bob@chat-server QUIT :Quit: bye all"],
        "one QUIT, not one per channel"
    );
}

#[test]
fn echo_message_sends_the_sender_its_own_message_back() {
    let server = server(quiet_config());
    let mut alice = IrcClient::connect(server.irc_addr());
    alice.send("CAP LS 302");
    alice.expect_command("CAP");
    alice.send("CAP REQ :echo-message");
    alice.expect_line(":irc.test CAP * ACK :echo-message");
    alice.send("NICK alice");
    alice.send("USER alice 0 * :Alice");
    alice.send("CAP END");
    alice.skip_to(|l| command(l) == "422");
    alice.join("#rust");
    let _bob = line_user_in(&server, "bob", "rust");
    alice.expect_command("JOIN");
    alice.send("PRIVMSG #rust :heard by bob and by me");
    alice.expect_line(":alice!alice@chat-server PRIVMSG #rust :heard by bob and by me");
    alice.send("PRIVMSG bob :just you");
    alice.expect_line(":alice!alice@chat-server PRIVMSG bob :just you");
}

#[test]
fn a_flooding_irc_client_is_slowed_down_and_loses_nothing() {
    const LINES: usize = 100;
    let server = server(Config {
        rate: 100,
        burst: 10,
        ..quiet_config()
    });
    let mut flooder = IrcClient::registered(server.irc_addr(), "flooder");
    flooder.join("#rust");
    let mut alice = line_user_in(&server, "alice", "rust");
    let mut bob = IrcClient::registered(server.irc_addr(), "bob");
    bob.join("#rust");
    flooder.expect_command("JOIN");
    flooder.expect_command("JOIN");
    alice.expect_line("-- bob joined #rust");
    let flood: String = (0..LINES)
        .map(|i| format!("PRIVMSG #rust :flood {i}\r\n"))
        .collect();
    flooder.send_raw(flood.as_bytes());
    // alice talks over the flood; bob hears her before the flood is over.
    bob.skip_to(|l| l.ends_with(":flood 0"));
    alice.send("over the flood");
    let mut flood_seen = 1;
    for _ in 0..LINES {
        let line = bob.read_line();
        if line.ends_with(":over the flood") {
            break;
        }
        assert!(
            line.ends_with(&format!(":flood {flood_seen}")),
            "in order: {line}"
        );
        flood_seen += 1;
    }
    assert!(flood_seen < LINES, "bob heard alice only after the whole flood");
    // And nothing of the flood is lost.
    for i in flood_seen..LINES {
        bob.expect_line(&format!(":flooder!flooder@chat-server PRIVMSG #rust :flood {i}"));
    }
}

#[test]
fn a_quiet_client_is_pinged_and_one_that_does_not_answer_is_closed() {
    let server = server(Config {
        irc_keepalive: Keepalive {
            register_within: Duration::from_secs(30),
            ping_after: Duration::from_millis(100),
            ping_timeout: Duration::from_millis(300),
        },
        ..quiet_config()
    });
    let mut alice = line_user_in(&server, "alice", "rust");
    // One that answers stays...
    let mut awake = IrcClient::registered(server.irc_addr(), "awake");
    awake.join("#rust");
    awake.expect_line("PING :irc.test");
    awake.send("PONG :irc.test");
    awake.expect_line("PING :irc.test");
    awake.send("PONG :irc.test");
    // ...one that does not is told why and closed, and the room hears it.
    let mut asleep = IrcClient::registered(server.irc_addr(), "asleep");
    asleep.join("#rust");
    alice.expect_line("-- awake joined #rust");
    alice.expect_line("-- asleep joined #rust");
    asleep.skip_to(|l| l == "PING :irc.test");
    let error = asleep.skip_to(|l| command(l) == "ERROR");
    assert!(
        error.starts_with("ERROR :Closing link: asleep (Ping timeout: "),
        "{error}"
    );
    alice.expect_line("-- asleep left #rust (ping timeout)");
    assert_eq!(asleep.next_line(), None);
}

#[test]
fn a_connection_that_never_registers_is_closed_in_time() {
    let server = server(Config {
        irc_keepalive: Keepalive {
            register_within: Duration::from_millis(200),
            ping_after: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(30),
        },
        ..quiet_config()
    });
    let mut idle = IrcClient::connect(server.irc_addr());
    idle.send("NICK halfway");
    assert_eq!(
        idle.read_line(),
        "ERROR :Closing link: * (Registration timed out: 0 seconds)"
    );
    assert_eq!(idle.next_line(), None);
}

#[test]
fn away_is_shared_by_both_protocols() {
    let server = server(quiet_config());
    let mut alice = server.connect_named("alice");
    alice.send("/away back after lunch");
    alice.expect_line("-- you are away");
    let mut bob = IrcClient::registered(server.irc_addr(), "bob");
    bob.send("WHOIS alice");
    let whois = bob.sync("whois");
    assert!(
        whois.contains(&":irc.test 301 bob alice :back after lunch".to_string()),
        "{whois:?}"
    );
    bob.send("PRIVMSG alice :are you there?");
    bob.expect_line(":irc.test 301 bob alice :back after lunch");
    alice.expect_line("*bob* are you there?");
    // And the other way: an IRC user's AWAY answers a line user's /msg.
    bob.send("AWAY :in a meeting");
    bob.expect_line(":irc.test 306 bob :You have been marked as being away");
    alice.send("/msg bob ping?");
    alice.expect_line("-> *bob* ping?");
    alice.expect_line("-- bob is away: in a meeting");
    bob.expect_line(":alice!alice@chat-server PRIVMSG bob :ping?");
    bob.send("WHO bob");
    let who = bob.sync("who");
    assert!(who[0].contains(" G :0 "), "G for gone: {who:?}");
    alice.send("/away");
    alice.expect_line("-- you are back");
}

#[test]
fn a_nick_sent_before_the_welcome_arrives_still_counts() {
    let server = server(quiet_config());
    let mut irc = IrcClient::connect(server.irc_addr());
    irc.send_raw(b"NICK alice\r\nUSER ally 0 * :A\r\nNICK alice2\r\n");
    irc.expect_command("001");
    let renamed = irc.skip_to(|l| command(l) == "NICK");
    assert_eq!(renamed, ":alice!alice@chat-server NICK :alice2");
    irc.send("WHOIS alice2");
    let whois = irc.sync("whois");
    assert!(
        whois[0].starts_with(":irc.test 311 alice2 alice2 ally chat-server"),
        "{whois:?}"
    );
}

#[test]
fn user_mode_i_leaves_a_user_out_of_others_who_by_mask() {
    let server = server(quiet_config());
    let mut shy = IrcClient::registered(server.irc_addr(), "shy");
    let mut other = IrcClient::registered(server.irc_addr(), "other");
    shy.send("MODE shy +i");
    shy.expect_line(":shy!shy@chat-server MODE shy :+i");
    shy.send("MODE shy");
    shy.expect_line(":irc.test 221 shy +i");
    other.send("WHO sh*");
    assert_eq!(other.sync("who"), [":irc.test 315 other sh* :End of /WHO list"]);
    // Still there for itself, and by WHOIS.
    shy.send("WHO sh*");
    assert_eq!(shy.sync("own").len(), 2);
    // Other flags, and other users' modes, are refused.
    shy.send("MODE shy +w");
    shy.expect_line(":irc.test 501 shy :Unknown MODE flag (only +i is a user mode here)");
    shy.send("MODE other -i");
    shy.expect_line(":irc.test 502 shy :Cannot change mode for other users");
    shy.send("MODE shy -i");
    shy.expect_line(":shy!shy@chat-server MODE shy :-i");
    other.send("WHO sh*");
    assert_eq!(other.sync("visible").len(), 2);
}

#[test]
fn who_and_whois_name_a_line_users_protocol() {
    let server = server(quiet_config());
    let _bob = line_user_in(&server, "bob", "rust");
    let mut alice = IrcClient::registered(server.irc_addr(), "alice");
    alice.send("WHOIS bob");
    let whois = alice.sync("whois");
    assert_eq!(
        whois[0],
        ":irc.test 311 alice bob line chat-server * :chat-server line protocol user"
    );
}
