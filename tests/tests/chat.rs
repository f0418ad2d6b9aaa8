//! The chat protocol over loopback, against the server library running in
//! this process on port 0: every command, every error, broadcast without
//! echo, ordering, split UTF-8, CRLF, over-long lines, control characters,
//! the client limit and the graceful shutdown.
//!
//! "Nothing else arrives" is never waited for (that would need a sleep).
//! It is proved instead by asking the server something and checking that
//! the reply is the very next line.

use std::net::SocketAddr;

use chat_protocol::command::COMMANDS;
use chat_protocol::ServerEvent;
use chat_tests::{Client, Config, TestServer};

fn server() -> TestServer {
    TestServer::start_default()
}

/// A server whose line limit is `max_line` bytes.
fn server_with_max_line(max_line: usize) -> TestServer {
    TestServer::start(Config {
        max_line,
        ..Config::default()
    })
}

/// Sends `/who` and checks the reply is the next line: proof that nothing
/// (an echo, a stray notice) was queued for `client` before it.
#[track_caller]
fn expect_who_next(client: &mut Client, reply: &str) {
    client.send("/who");
    client.expect_line(reply);
}

#[test]
fn each_connection_is_welcomed_as_a_unique_guest_in_the_lobby() {
    let server = server();
    let mut first = server.connect();
    let mut second = server.connect();
    first.expect_line(&format!("-- {} joined #lobby", second.nick()));
    let mut third = server.connect();
    first.expect_line(&format!("-- {} joined #lobby", third.nick()));
    second.expect_line(&format!("-- {} joined #lobby", third.nick()));

    let mut nicks = vec![
        first.nick().to_string(),
        second.nick().to_string(),
        third.nick().to_string(),
    ];
    nicks.sort_by_key(|n| n.to_ascii_lowercase());
    nicks.dedup();
    assert_eq!(nicks.len(), 3, "guest nicks must be unique: {nicks:?}");
    expect_who_next(&mut third, &format!("-- 3 in #lobby: {}", nicks.join(", ")));
}

#[test]
fn nick_is_confirmed_to_the_sender_and_announced_to_the_room() {
    let server = server();
    let mut bob = server.connect_named("bob");
    let mut guest = server.connect();
    let old = guest.nick().to_string();
    bob.expect_line(&format!("-- {old} joined #lobby"));

    guest.send("/nick alice");
    guest.expect_line("-- you are now known as alice");
    bob.expect_line(&format!("-- {old} is now known as alice"));
    expect_who_next(&mut bob, "-- 2 in #lobby: alice, bob");
}

#[test]
fn a_nick_in_use_is_refused_whatever_its_case() {
    let server = server();
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    bob.send("/nick Alice");
    bob.expect_line("!! nick Alice is already in use");
    bob.send("/nick ALICE");
    bob.expect_line("!! nick ALICE is already in use");
    // bob is still bob, and alice heard nothing of it.
    expect_who_next(&mut bob, "-- 2 in #lobby: alice, bob");
    expect_who_next(&mut alice, "-- 2 in #lobby: alice, bob");
}

#[test]
fn changing_the_case_of_ones_own_nick_is_allowed() {
    let server = server();
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    alice.send("/nick Alice");
    alice.expect_line("-- you are now known as Alice");
    bob.expect_line("-- alice is now known as Alice");
    expect_who_next(&mut bob, "-- 2 in #lobby: Alice, bob");
}

#[test]
fn an_old_nick_is_free_again_after_a_change() {
    let server = server();
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    alice.send("/nick alicia");
    alice.expect_line("-- you are now known as alicia");
    bob.expect_line("-- alice is now known as alicia");
    bob.send("/nick alice");
    bob.expect_line("-- you are now known as alice");
    alice.expect_line("-- bob is now known as alice");
}

#[test]
fn bad_nicks_are_refused_with_the_rule_they_break() {
    let server = server();
    let mut alice = server.connect_named("alice");
    let letters_only = "!! invalid nick: nick may only contain letters, digits, '_' and '-'";
    let longest = "n".repeat(24);
    let too_long = format!("/nick {longest}x");
    let cases: [(&str, &str); 8] = [
        ("/nick 9lives", "!! invalid nick: nick must start with a letter"),
        ("/nick _under", "!! invalid nick: nick must start with a letter"),
        ("/nick zoë", letters_only),
        ("/nick a>b", letters_only),
        (&too_long, "!! invalid nick: nick is longer than 24 characters"),
        ("/nick", "!! usage: /nick NAME"),
        ("/nick two words", "!! usage: /nick NAME"),
        ("/NICK", "!! usage: /nick NAME"),
    ];
    for (line, _) in &cases {
        alice.send(line);
    }
    for (_, error) in &cases {
        alice.expect_line(error);
    }
    // The connection is still fine, the nick unchanged, and the longest
    // valid nick is accepted.
    expect_who_next(&mut alice, "-- 1 in #lobby: alice");
    alice.rename(&longest);
}

#[test]
fn join_moves_to_the_room_and_tells_the_old_and_new_room() {
    let server = server();
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]);

    bob.send("/join rust");
    bob.expect_line("-- you joined #rust");
    alice.expect_line("-- bob left #lobby (moved to #rust)");
    carol.expect_line("-- bob left #lobby (moved to #rust)");

    alice.send("/join #rust");
    alice.expect_line("-- you joined #rust");
    carol.expect_line("-- alice left #lobby (moved to #rust)");
    bob.expect_line("-- alice joined #rust");

    expect_who_next(&mut bob, "-- 2 in #rust: alice, @bob");
    expect_who_next(&mut carol, "-- 1 in #lobby: carol");
    carol.send("/rooms");
    carol.expect_line("-- 2 rooms: #lobby (1), #rust (2)");
}

#[test]
fn messages_stay_in_their_room() {
    let server = server();
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]);
    alice.send("/join rust");
    alice.expect_line("-- you joined #rust");
    bob.expect_line("-- alice left #lobby (moved to #rust)");
    carol.expect_line("-- alice left #lobby (moved to #rust)");
    bob.send("/join rust");
    bob.expect_line("-- you joined #rust");
    alice.expect_line("-- bob joined #rust");
    carol.expect_line("-- bob left #lobby (moved to #rust)");

    alice.send("only for rust");
    bob.expect_line("<alice> only for rust");
    carol.send("only for the lobby");
    // carol is alone in the lobby: nobody hears her, and she did not hear
    // alice.
    expect_who_next(&mut carol, "-- 1 in #lobby: carol");
    expect_who_next(&mut bob, "-- 2 in #rust: @alice, bob");
    expect_who_next(&mut alice, "-- 2 in #rust: @alice, bob");
}

#[test]
fn room_names_are_case_insensitive() {
    let server = server();
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    alice.send("/join rust");
    alice.expect_line("-- you joined #rust");
    bob.expect_line("-- alice left #lobby (moved to #rust)");

    bob.send("/join #RUST");
    // Which spelling the server shows is not in the contract; that it is
    // the same room is.
    bob.expect_line_ignoring_case("-- you joined #rust");
    alice.expect_line_ignoring_case("-- bob joined #rust");
    alice.send("/join Rust");
    alice.expect_line_ignoring_case("!! you are already in #rust");
    bob.send("/rooms");
    bob.expect_line_ignoring_case("-- 2 rooms: #lobby (0), #rust (2)");
}

#[test]
fn joining_the_room_you_are_in_is_an_error() {
    let server = server();
    let mut alice = server.connect_named("alice");
    alice.send("/join lobby");
    alice.expect_line("!! you are already in #lobby");
    alice.send("/join rust");
    alice.expect_line("-- you joined #rust");
    alice.send("/join #rust");
    alice.expect_line("!! you are already in #rust");
    expect_who_next(&mut alice, "-- 1 in #rust: @alice");
}

#[test]
fn bad_room_names_are_refused_with_the_rule_they_break() {
    let server = server();
    let mut alice = server.connect_named("alice");
    let letters_only = "!! invalid room: room name may only contain letters, digits, '_' and '-'";
    let too_long = format!("/join {}", "r".repeat(33));
    let cases: [(&str, &str); 6] = [
        ("/join bad!room", letters_only),
        ("/join ##x", letters_only),
        ("/join #", "!! invalid room: room name is empty"),
        (
            &too_long,
            "!! invalid room: room name is longer than 32 characters",
        ),
        ("/join", "!! usage: /join ROOM [KEY]"),
        ("/join two rooms key extra", "!! usage: /join ROOM [KEY]"),
    ];
    for (line, _) in &cases {
        alice.send(line);
    }
    for (_, error) in &cases {
        alice.expect_line(error);
    }
    expect_who_next(&mut alice, "-- 1 in #lobby: alice");
    let longest = "r".repeat(32);
    alice.send(&format!("/join {longest}"));
    alice.expect_line(&format!("-- you joined #{longest}"));
}

#[test]
fn a_message_goes_to_everyone_else_in_the_room_and_is_not_echoed() {
    let server = server();
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]);
    alice.send("hello everyone");
    bob.expect_line("<alice> hello everyone");
    carol.expect_line("<alice> hello everyone");
    expect_who_next(&mut alice, "-- 3 in #lobby: alice, bob, carol");
}

#[test]
fn a_double_slash_sends_a_literal_slash() {
    let server = server();
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    alice.send("//nick is not a command here");
    bob.expect_line("<alice> /nick is not a command here");
    expect_who_next(&mut alice, "-- 2 in #lobby: alice, bob");
}

#[test]
fn me_is_shown_to_the_room_as_an_action() {
    let server = server();
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    alice.send("/me waves");
    bob.expect_line("* alice waves");
    expect_who_next(&mut alice, "-- 2 in #lobby: alice, bob");
    alice.send("/me");
    alice.expect_line("!! usage: /me TEXT");
}

#[test]
fn msg_reaches_one_user_in_any_room_and_is_confirmed() {
    let server = server();
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]);
    bob.send("/join den");
    bob.expect_line("-- you joined #den");
    alice.expect_line("-- bob left #lobby (moved to #den)");
    carol.expect_line("-- bob left #lobby (moved to #den)");

    alice.send("/msg bob psst, over here");
    bob.expect_line("*alice* psst, over here");
    alice.expect_line("-> *bob* psst, over here");
    // carol, in alice's room, heard nothing.
    expect_who_next(&mut carol, "-- 2 in #lobby: alice, carol");

    // The nick is found without regard to case.
    alice.send("/msg BOB again");
    bob.expect_line("*alice* again");
    alice.expect_line_ignoring_case("-> *bob* again");
}

#[test]
fn msg_errors_name_the_problem() {
    let server = server();
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    alice.send("/msg carol are you there");
    alice.expect_line("!! no such nick: carol");
    alice.send("/msg 9x hi");
    alice.expect_line("!! no such nick: 9x");
    alice.send("/msg bob");
    alice.expect_line("!! usage: /msg NICK TEXT");
    alice.send("/msg");
    alice.expect_line("!! usage: /msg NICK TEXT");
    expect_who_next(&mut bob, "-- 2 in #lobby: alice, bob");
}

#[test]
fn who_lists_the_room_sorted_without_regard_to_case() {
    let server = server();
    let [mut bob, _carl, _alice] = server.clients(["bob", "Carl", "alice"]);
    expect_who_next(&mut bob, "-- 3 in #lobby: alice, bob, Carl");
    bob.send("/WHO");
    bob.expect_line("-- 3 in #lobby: alice, bob, Carl");
}

#[test]
fn rooms_are_listed_sorted_with_counts_and_the_lobby_always() {
    let server = server();
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    alice.send("/rooms");
    alice.expect_line("-- 1 room: #lobby (2)");

    alice.send("/join zed");
    alice.expect_line("-- you joined #zed");
    bob.expect_line("-- alice left #lobby (moved to #zed)");
    bob.send("/join alpha");
    bob.expect_line("-- you joined #alpha");
    bob.send("/rooms");
    bob.expect_line("-- 3 rooms: #alpha (1), #lobby (0), #zed (1)");

    // A room no one is in is gone.
    alice.send("/join alpha");
    alice.expect_line("-- you joined #alpha");
    bob.expect_line("-- alice joined #alpha");
    alice.send("/rooms");
    alice.expect_line("-- 2 rooms: #alpha (2), #lobby (0)");
}

#[test]
fn quit_with_a_reason_says_bye_tells_the_room_and_closes() {
    let server = server();
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]);
    alice.send("/quit bye all");
    alice.expect_line("-- bye");
    alice.expect_eof();
    bob.expect_line("-- alice left #lobby (quit: bye all)");
    carol.expect_line("-- alice left #lobby (quit: bye all)");

    carol.send("/quit");
    carol.expect_line("-- bye");
    carol.expect_eof();
    bob.expect_line("-- carol left #lobby (quit)");
    expect_who_next(&mut bob, "-- 1 in #lobby: bob");
}

#[test]
fn a_dropped_connection_is_announced_and_frees_the_nick() {
    let server = server();
    let [alice, mut bob] = server.clients(["alice", "bob"]);
    drop(alice);
    bob.expect_line("-- alice left #lobby (disconnect)");

    let mut again = server.connect();
    bob.expect_line(&format!("-- {} joined #lobby", again.nick()));
    let guest = again.nick().to_string();
    again.rename("alice");
    bob.expect_line(&format!("-- {guest} is now known as alice"));
}

#[test]
fn a_half_closed_connection_is_a_disconnect() {
    let server = server();
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    alice.shutdown_write();
    bob.expect_line("-- alice left #lobby (disconnect)");
    alice.expect_eof();
}

#[test]
fn help_lists_every_command() {
    let server = server();
    let mut alice = server.connect_named("alice");
    alice.send("/help");
    let expected = ServerEvent::Help(None).lines();
    let lines = alice.read_lines(expected.len());
    assert_eq!(lines[0], "-- commands:");
    for line in &lines {
        assert!(line.starts_with("-- "), "a /help line is not a notice: {line:?}");
    }
    for help in COMMANDS {
        assert!(
            lines
                .iter()
                .any(|l| l.trim_start_matches("-- ").trim_start().starts_with(help.usage)),
            "/help does not list {}: {lines:#?}",
            help.usage
        );
    }
    let expected: Vec<String> = expected.iter().map(ToString::to_string).collect();
    assert_eq!(lines, expected);
    // That was all of it.
    expect_who_next(&mut alice, "-- 1 in #lobby: alice");
}

#[test]
fn commands_with_arguments_they_do_not_take_get_their_usage() {
    let server = server();
    let mut alice = server.connect_named("alice");
    for (line, usage) in [
        ("/who me", "!! usage: /who [PAGE]"),
        ("/rooms all", "!! usage: /rooms [PAGE]"),
        ("/help join me", "!! usage: /help [COMMAND]"),
    ] {
        alice.send(line);
        alice.expect_line(usage);
    }
}

#[test]
fn help_with_a_command_explains_that_command() {
    let server = server();
    let mut alice = server.connect_named("alice");
    // With or without the slash, in any case.
    for line in ["/help join", "/help /JOIN"] {
        alice.send(line);
        alice.expect_lines(&[
            "-- /join ROOM [KEY]: leave your room and enter ROOM (created if needed)",
            "--   ROOM is 1 to 32 letters, digits, _ or -, with or without its #; #Rust and #rust are \
             the same room. Joining shows its topic and its last lines.",
            "--   Whoever opens a room (joins it empty) is its operator. KEY is for a room whose \
             operators set one.",
            "--   example: /join rust",
            "--   errors: !! you are already in #rust; !! invalid room: room name may only contain \
             letters, digits, '_' and '-'",
            "--   !! #rust needs a key: /join #rust KEY; !! you are banned from #rust",
        ]);
    }
    // Every command's help is what the protocol crate says, and only that.
    for help in COMMANDS {
        alice.send(&format!("/help {}", help.name));
        let expected: Vec<String> = ServerEvent::Help(Some(help))
            .lines()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(alice.read_lines(expected.len()), expected);
    }
    expect_who_next(&mut alice, "-- 1 in #lobby: alice");
}

#[test]
fn help_on_something_that_is_not_a_command_says_so() {
    // "/help me" once answered "!! usage: /help", as if /help took no
    // argument at all; users expect /help COMMAND. Now /help me explains
    // /me, and a name that is no command gets the error typing it would.
    let server = server();
    let mut alice = server.connect_named("alice");
    alice.send("/help me");
    alice.expect_line("-- /me TEXT: act something out in your room");
    alice.expect_line("--   Your room sees * alice TEXT, if you are alice.");
    alice.expect_line("--   example: /me waves");
    alice.expect_line("--   errors: !! usage: /me TEXT");
    for (line, error) in [
        (
            "/help nosuch",
            "!! unknown command /nosuch; type /help for the list",
        ),
        (
            "/help /dance",
            "!! unknown command /dance; type /help for the list",
        ),
    ] {
        alice.send(line);
        alice.expect_line(error);
    }
    expect_who_next(&mut alice, "-- 1 in #lobby: alice");
}

#[test]
fn an_unknown_command_is_an_error_and_the_connection_stays() {
    let server = server();
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    alice.send("/dance");
    alice.expect_line("!! unknown command /dance; type /help for the list");
    alice.send("/dance wildly");
    alice.expect_line("!! unknown command /dance; type /help for the list");
    alice.send("/");
    alice.expect_line("!! unknown command /; type /help for the list");
    alice.send("still here");
    bob.expect_line("<alice> still here");
}

#[test]
fn an_invalid_utf8_line_is_discarded_and_the_next_one_works() {
    let server = server();
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    alice.send_raw(b"caf\xe9 in latin-1\n");
    alice.expect_line("!! invalid UTF-8; line discarded");
    alice.send_raw(b"\xff\xfe\n");
    alice.expect_line("!! invalid UTF-8; line discarded");
    alice.send("café in UTF-8");
    // bob's next line: nothing of the bad lines reached him.
    bob.expect_line("<alice> café in UTF-8");
}

#[test]
fn an_over_long_line_is_reported_before_its_newline_and_the_next_line_works() {
    let server = server_with_max_line(16);
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    // 18 bytes and no newline yet: the error must come now. (After 17 it
    // cannot: the 17th byte could still be the \r of a CRLF.)
    alice.send_raw(b"0123456789abcdefXY");
    alice.expect_line("!! line too long (max 16 bytes); discarded up to the next newline");
    alice.send_raw(b"more of the same long line, all discarded\n");
    alice.send("short again");
    bob.expect_line("<alice> short again");
    // Exactly at the limit is fine, with either line end.
    alice.send("0123456789abcdef");
    bob.expect_line("<alice> 0123456789abcdef");
    alice.send_raw(b"fedcba9876543210\r\n");
    bob.expect_line("<alice> fedcba9876543210");
    expect_who_next(&mut alice, "-- 2 in #lobby: alice, bob");
}

#[test]
fn the_default_line_limit_is_4096_bytes() {
    let server = server();
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    let longest = "x".repeat(4096);
    alice.send(&longest);
    bob.expect_line(&format!("<alice> {longest}"));
    alice.send(&format!("{longest}y"));
    alice.expect_line("!! line too long (max 4096 bytes); discarded up to the next newline");
    alice.send("fine");
    bob.expect_line("<alice> fine");
}

#[test]
fn a_character_split_across_writes_arrives_whole() {
    let server = server();
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    // ☃ is E2 98 83; 🦀 is F0 9F A6 80. Each write is flushed as its own
    // segment (TCP_NODELAY is on).
    alice.send_raw(b"snow \xe2");
    alice.send_raw(b"\x98");
    alice.send_raw(b"\x83 and a crab \xf0\x9f");
    alice.send_raw(b"\xa6\x80\n");
    bob.expect_line("<alice> snow ☃ and a crab 🦀");
}

#[test]
fn crlf_line_ends_are_accepted() {
    let server = server();
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    alice.send_raw(b"hello over telnet\r\n");
    bob.expect_line("<alice> hello over telnet");
    alice.send_raw(b"/nick carol\r\n/me waves\r\n\r\n/who\r\n");
    alice.expect_line("-- you are now known as carol");
    alice.expect_line("-- 2 in #lobby: bob, carol");
    bob.expect_line("-- alice is now known as carol");
    bob.expect_line("* carol waves");
}

#[test]
fn empty_and_blank_lines_are_ignored() {
    let server = server();
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    alice.send_raw(b"\n\r\n   \n\t\n");
    expect_who_next(&mut alice, "-- 2 in #lobby: alice, bob");
    alice.send("after the blanks");
    bob.expect_line("<alice> after the blanks");
}

#[test]
fn control_characters_in_chat_text_are_replaced_and_the_rest_delivered() {
    let server = server();
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    // ESC (a clear-screen sequence), BEL, DEL, NEL (C1), CSI (C1), NUL; TAB
    // is kept. Client::read_line also checks that no control character
    // arrives at all.
    alice.send("a\u{1b}[2Jb\u{7}c\u{7f}d\u{85}e\u{9b}f\tg\0h");
    bob.expect_line("<alice> a\u{FFFD}[2Jb\u{FFFD}c\u{FFFD}d\u{FFFD}e\u{FFFD}f\tg\u{FFFD}h");
    // A bare CR cannot fake a second line.
    alice.send("fake\r<bob> I owe alice money");
    bob.expect_line("<alice> fake\u{FFFD}<bob> I owe alice money");
    alice.send("/me \u{7}beeps");
    bob.expect_line("* alice \u{FFFD}beeps");
    alice.send("/msg bob \u{1b}[31mred");
    bob.expect_line("*alice* \u{FFFD}[31mred");
    alice.expect_line("-> *bob* \u{FFFD}[31mred");
    alice.send("/quit \u{1b}]0;pwned\u{7}");
    alice.expect_line("-- bye");
    bob.expect_line("-- alice left #lobby (quit: \u{FFFD}]0;pwned\u{FFFD})");
}

#[test]
fn replies_and_errors_come_in_the_order_of_the_lines() {
    let server = server_with_max_line(16);
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    // All in one write, so the server reads them together.
    alice.send_raw(
        b"/who\n/dance\n\xff\n/nick 9\nhello\n0123456789abcdefX\n/rooms\n/join lobby\n/msg nobody hi\n/who\n",
    );
    alice.expect_lines(&[
        "-- 2 in #lobby: alice, bob",
        "!! unknown command /dance; type /help for the list",
        "!! invalid UTF-8; line discarded",
        "!! invalid nick: nick must start with a letter",
        "!! line too long (max 16 bytes); discarded up to the next newline",
        "-- 1 room: #lobby (2)",
        "!! you are already in #lobby",
        "!! no such nick: nobody",
        "-- 2 in #lobby: alice, bob",
    ]);
    bob.expect_line("<alice> hello");
    expect_who_next(&mut bob, "-- 2 in #lobby: alice, bob");
}

#[test]
fn one_senders_lines_arrive_in_order_at_every_receiver() {
    let server = server();
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]);
    for i in 0..200 {
        alice.send(&format!("line {i}"));
    }
    let expected: Vec<String> = (0..200).map(|i| format!("<alice> line {i}")).collect();
    assert_eq!(bob.read_lines(200), expected, "bob");
    assert_eq!(carol.read_lines(200), expected, "carol");
    expect_who_next(&mut alice, "-- 3 in #lobby: alice, bob, carol");
}

#[test]
fn every_member_sees_two_interleaved_senders_in_the_same_order() {
    const EACH: usize = 100;
    let server = server();
    let [mut alice, mut bob, mut carol, mut dave] = server.clients(["alice", "bob", "carol", "dave"]);
    std::thread::scope(|s| {
        s.spawn(|| (0..EACH).for_each(|i| alice.send(&format!("a{i}"))));
        s.spawn(|| (0..EACH).for_each(|i| bob.send(&format!("b{i}"))));
    });
    let from = |nick: &str, prefix: &str| -> Vec<String> {
        (0..EACH).map(|i| format!("<{nick}> {prefix}{i}")).collect()
    };
    let (from_alice, from_bob) = (from("alice", "a"), from("bob", "b"));

    let seen_by_carol = carol.read_lines(2 * EACH);
    let seen_by_dave = dave.read_lines(2 * EACH);
    assert_eq!(seen_by_carol, seen_by_dave, "carol and dave saw different orders");
    let only = |lines: &[String], nick: &str| -> Vec<String> {
        let prefix = format!("<{nick}> ");
        lines.iter().filter(|l| l.starts_with(&prefix)).cloned().collect()
    };
    assert_eq!(
        only(&seen_by_carol, "alice"),
        from_alice,
        "alice's lines out of order"
    );
    assert_eq!(only(&seen_by_carol, "bob"), from_bob, "bob's lines out of order");
    // Each sender got the other's lines in order, and none of its own.
    assert_eq!(alice.read_lines(EACH), from_bob);
    assert_eq!(bob.read_lines(EACH), from_alice);
    expect_who_next(&mut alice, "-- 4 in #lobby: alice, bob, carol, dave");
    expect_who_next(&mut bob, "-- 4 in #lobby: alice, bob, carol, dave");
}

#[test]
fn with_several_io_threads_every_member_sees_one_order_and_private_messages_cross_threads() {
    // Six clients over three I/O threads: each thread gets two (the
    // acceptor picks the thread with the fewest), so every pair of
    // neighbours below is served by different threads.
    const EACH: usize = 100;
    let server = TestServer::start(Config {
        threads: 3,
        rate: 0,
        ..Config::default()
    });
    let [mut alice, mut bob, mut carol, mut dave, mut erin, mut frank] =
        server.clients(["alice", "bob", "carol", "dave", "erin", "frank"]);
    std::thread::scope(|s| {
        s.spawn(|| (0..EACH).for_each(|i| alice.send(&format!("a{i}"))));
        s.spawn(|| (0..EACH).for_each(|i| bob.send(&format!("b{i}"))));
    });
    let seen: Vec<Vec<String>> = [&mut carol, &mut dave, &mut erin, &mut frank]
        .into_iter()
        .map(|c| c.read_lines(2 * EACH))
        .collect();
    for (other, lines) in seen.iter().enumerate().skip(1) {
        assert_eq!(&seen[0], lines, "receiver {other} saw another order than carol");
    }
    let from = |nick: &str, prefix: &str| -> Vec<String> {
        (0..EACH).map(|i| format!("<{nick}> {prefix}{i}")).collect()
    };
    assert_eq!(alice.read_lines(EACH), from("bob", "b"));
    assert_eq!(bob.read_lines(EACH), from("alice", "a"));

    carol.send("/msg dave across threads");
    carol.expect_line("-> *dave* across threads");
    dave.expect_line("*carol* across threads");
    dave.send("/msg carol and back");
    dave.expect_line("-> *carol* and back");
    carol.expect_line("*dave* and back");
    expect_who_next(&mut frank, "-- 6 in #lobby: alice, bob, carol, dave, erin, frank");
}

#[test]
fn several_clients_talking_at_once_all_hear_each_other_in_one_order() {
    let server = server();
    let mut clients = server.clients(["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"]);
    for client in &mut clients {
        let line = format!("hi from {}", client.nick());
        client.send(&line);
    }
    let heard: Vec<Vec<String>> = clients.iter_mut().map(|c| c.read_lines(7)).collect();
    for (i, lines) in heard.iter().enumerate() {
        let mut got = lines.clone();
        got.sort();
        let expected: Vec<String> = (0..8)
            .filter(|&j| j != i)
            .map(|j| format!("<c{j}> hi from c{j}"))
            .collect();
        assert_eq!(got, expected, "c{i} heard the wrong messages");
    }
    // The room has one order: any two members agree on the lines both heard.
    for (i, a) in heard.iter().enumerate() {
        for (j, b) in heard.iter().enumerate().skip(i + 1) {
            let common = |lines: &[String]| -> Vec<String> {
                let own = |k: usize| format!("<c{k}> ");
                lines
                    .iter()
                    .filter(|l| !l.starts_with(&own(i)) && !l.starts_with(&own(j)))
                    .cloned()
                    .collect()
            };
            assert_eq!(common(a), common(b), "c{i} and c{j} disagree on the order");
        }
    }
}

#[test]
fn one_over_max_clients_gets_server_full_and_is_closed() {
    let server = TestServer::start(Config {
        max_clients: 2,
        ..Config::default()
    });
    let mut first = server.connect();
    let second = server.connect();
    first.expect_line(&format!("-- {} joined #lobby", second.nick()));

    let mut third = Client::connect(server.addr());
    third.expect_line("!! server full");
    third.expect_eof();
    // The refused connection was never a member.
    let mut members = [first.nick().to_string(), second.nick().to_string()];
    members.sort_by_key(|n| n.to_ascii_lowercase());
    expect_who_next(&mut first, &format!("-- 2 in #lobby: {}", members.join(", ")));

    // Once someone leaves, there is room again.
    let gone = second.nick().to_string();
    drop(second);
    first.expect_line(&format!("-- {gone} left #lobby (disconnect)"));
    let fourth = server.connect();
    first.expect_line(&format!("-- {} joined #lobby", fourth.nick()));
}

#[test]
fn ipv4_and_ipv6_listeners_serve_the_same_chat() {
    let v4: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let v6: SocketAddr = "[::1]:0".parse().unwrap();
    let server = TestServer::start_on(Config {
        listen: vec![v4, v6],
        ..Config::default()
    });
    let addrs = server.addrs().to_vec();
    assert_eq!(addrs.len(), 2, "one address per listener: {addrs:?}");
    assert!(
        addrs.iter().all(|a| a.port() != 0),
        "ports are resolved: {addrs:?}"
    );
    assert!(
        addrs[0].is_ipv4() && addrs[1].is_ipv6(),
        "in the order configured: {addrs:?}"
    );

    let mut alice = Client::connect_named(addrs[0], "alice");
    let mut bob = Client::connect_guest(addrs[1]);
    alice.expect_line(&format!("-- {} joined #lobby", bob.nick()));
    bob.send("hello from ::1");
    alice.expect_line(&format!("<{}> hello from ::1", bob.nick()));
}

#[test]
fn shutdown_tells_every_client_after_what_was_already_queued_then_closes() {
    let server = server();
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    alice.send("last words");
    // The /who reply proves the server has handled "last words", so it is
    // queued for bob before the shutdown starts.
    expect_who_next(&mut alice, "-- 2 in #lobby: alice, bob");
    server.begin_shutdown();
    bob.expect_line("<alice> last words");
    bob.expect_line("-- server shutting down");
    bob.expect_eof();
    alice.expect_line("-- server shutting down");
    alice.expect_eof();
    // Closed on our side too, as netcat or chat-client would on EOF.
    drop((alice, bob));
    let result = server.stop();
    assert!(result.is_ok(), "run() returned {result:?}");
}

#[test]
fn connecting_after_shutdown_began_is_refused() {
    let server = server();
    let mut alice = server.connect_named("alice");
    server.begin_shutdown();
    alice.expect_line("-- server shutting down");
    alice.expect_eof();
    // Accepting has stopped: the connection is refused, or closed at once.
    match std::net::TcpStream::connect(server.addr()) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(late) => {
            let mut late = Client::from_stream(late);
            late.expect_eof();
        }
    }
}
