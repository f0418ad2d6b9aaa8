//! Room moderation through real sockets: operators and their hand-over,
//! each command and its refusal for everyone else, moderated rooms, keys,
//! hidden rooms, bans by nick and by address, kicks, settings that outlive
//! an empty room, and IRC's KICK and MODE seen by line users and the
//! reverse.

use std::net::{Ipv4Addr, SocketAddr};

use chat_tests::irc::{command, IrcClient};
use chat_tests::{loopback_any_port, Client, Config, TestServer};

fn server() -> TestServer {
    TestServer::start(Config {
        irc_listen: vec![loopback_any_port()],
        server_name: "irc.test".to_string(),
        max_per_ip: 0,
        max_per_net: 0,
        connect_rate: 0,
        ..Config::default()
    })
}

/// A line user named `nick` in `#room`, past the join's notices.
#[track_caller]
fn in_room(server: &TestServer, nick: &str, room: &str) -> Client {
    let mut client = server.connect_named(nick);
    client.send(&format!("/join {room}"));
    client.expect_line(&format!("-- you joined #{room}"));
    client
}

/// Sends `/who` and checks the answer.
#[track_caller]
fn expect_who(client: &mut Client, expected: &str) {
    client.send("/who");
    client.expect_line(expected);
}

#[test]
fn whoever_opens_a_room_is_its_operator_and_can_hand_it_on() {
    let server = server();
    let mut alice = in_room(&server, "alice", "rust");
    let mut bob = in_room(&server, "bob", "rust");
    alice.expect_line("-- bob joined #rust");
    expect_who(&mut bob, "-- 2 in #rust: @alice, bob");
    // bob cannot, alice can.
    bob.send("/op bob");
    bob.expect_line("!! you are not an operator of #rust");
    alice.send("/op bob");
    alice.expect_line("-- alice made bob an operator of #rust");
    bob.expect_line("-- alice made bob an operator of #rust");
    expect_who(&mut bob, "-- 2 in #rust: @alice, @bob");
    // The room goes on with bob when alice leaves.
    alice.send("/join lobby");
    alice.expect_line("-- you joined #lobby");
    bob.expect_line("-- alice left #rust (moved to #lobby)");
    bob.send("/deop alice");
    bob.expect_line("!! alice is not in #rust");
    // The lobby has no operators: server operators keep it.
    alice.send("/kick bob");
    alice.expect_line("!! you are not an operator of #lobby");
}

#[test]
fn every_moderation_command_is_refused_to_a_member_who_is_not_an_operator() {
    let server = server();
    let mut alice = in_room(&server, "alice", "rust");
    let mut bob = in_room(&server, "bob", "rust");
    alice.expect_line("-- bob joined #rust");
    for line in [
        "/op bob",
        "/deop alice",
        "/voice bob",
        "/devoice alice",
        "/kick alice",
        "/ban alice",
        "/unban alice",
        "/room moderated on",
        "/room topic-lock on",
        "/room key s3cret",
        "/room hidden on",
    ] {
        bob.send(line);
        bob.expect_line("!! you are not an operator of #rust");
    }
    // Looking is for everyone in the room.
    bob.send("/room");
    bob.expect_line("-- #rust: open, no settings");
    bob.send("/bans");
    bob.expect_line("-- no bans in #rust");
    // And alice heard nothing of it.
    expect_who(&mut alice, "-- 2 in #rust: @alice, bob");
}

#[test]
fn in_a_moderated_room_only_operators_and_voiced_members_speak() {
    let server = server();
    let mut alice = in_room(&server, "alice", "rust");
    let mut bob = in_room(&server, "bob", "rust");
    alice.expect_line("-- bob joined #rust");
    alice.send("/room moderated on");
    let notice = "-- alice made #rust moderated: only operators and voiced members speak";
    alice.expect_line(notice);
    bob.expect_line(notice);
    bob.send("may I?");
    bob.expect_line("!! #rust is moderated: only operators and voiced members speak");
    alice.send("/voice bob");
    alice.expect_line("-- alice gave bob voice in #rust");
    bob.expect_line("-- alice gave bob voice in #rust");
    bob.send("thank you");
    alice.expect_line("<bob> thank you");
    expect_who(&mut alice, "-- 2 in #rust: @alice, +bob");
    alice.send("/room");
    alice.expect_line("-- #rust: moderated");
}

#[test]
fn a_locked_topic_is_set_by_operators_only() {
    let server = server();
    let mut alice = in_room(&server, "alice", "rust");
    let mut bob = in_room(&server, "bob", "rust");
    alice.expect_line("-- bob joined #rust");
    alice.send("/room topic-lock on");
    alice.expect_line("-- alice locked the topic of #rust: only operators set it");
    bob.expect_line("-- alice locked the topic of #rust: only operators set it");
    bob.send("/topic mine now");
    bob.expect_line("!! only operators of #rust set its topic");
    alice.send("/topic release on Friday");
    bob.expect_line("-- alice set the topic of #rust: release on Friday");
}

#[test]
fn a_room_with_a_key_is_joined_with_it() {
    let server = server();
    let mut alice = in_room(&server, "alice", "rust");
    alice.send("/room key s3cret");
    alice.expect_line("-- alice set the key of #rust to s3cret");
    let mut carol = server.connect_named("carol");
    carol.send("/join rust");
    carol.expect_line("!! #rust needs a key: /join #rust KEY");
    carol.send("/join rust guess");
    carol.expect_line("!! #rust needs a key: /join #rust KEY");
    carol.send("/join rust s3cret");
    carol.expect_line("-- you joined #rust");
    alice.expect_line("-- carol joined #rust");
}

#[test]
fn a_hidden_room_is_listed_only_to_its_members() {
    let server = server();
    let mut alice = in_room(&server, "alice", "secret");
    let mut dave = server.connect_named("dave");
    dave.send("/rooms");
    dave.expect_line("-- 2 rooms: #lobby (1), #secret (1)");
    alice.send("/room hidden on");
    alice.expect_line("-- alice hid #secret from /rooms");
    dave.send("/rooms");
    dave.expect_line("-- 1 room: #lobby (1)");
    alice.send("/rooms");
    alice.expect_line("-- 2 rooms: #lobby (1), #secret (1)");
}

#[test]
fn a_banned_member_is_silent_kicked_out_and_cannot_come_back_until_unbanned() {
    let server = server();
    let mut alice = in_room(&server, "alice", "rust");
    let mut troll = in_room(&server, "troll", "rust");
    alice.expect_line("-- troll joined #rust");
    alice.send("/ban troll* 1h");
    alice.expect_line("-- alice banned troll*!*@* from #rust for 1h");
    troll.expect_line("-- alice banned troll*!*@* from #rust for 1h");
    troll.send("spam spam spam");
    troll.expect_line("!! you are banned from #rust: nothing you say there is delivered");
    alice.send("/kick troll enough");
    alice.expect_line("-- troll was kicked from #rust by alice (enough)");
    troll.expect_line("-- troll was kicked from #rust by alice (enough)");
    // Out of every room: a line user must join one.
    troll.send("still here?");
    troll.expect_line("!! you are in no room; /join one");
    troll.send("/join rust");
    troll.expect_line("!! you are banned from #rust");
    alice.send("/bans");
    let ban = alice.read_line();
    assert!(
        ban.starts_with("-- #rust bans troll*!*@*, set by alice at 20") && ban.contains(" until 20"),
        "{ban}"
    );
    alice.send("/unban troll*");
    alice.expect_line("-- alice lifted the ban on troll*!*@* in #rust");
    alice.send("/unban troll*");
    alice.expect_line("!! no ban troll*!*@* in #rust");
    troll.send("/join rust");
    troll.expect_line("-- you joined #rust");
}

/// A guest from the loopback address `source` (127.0.0.x).
#[track_caller]
fn connect_from(addr: SocketAddr, source: Ipv4Addr) -> Client {
    Client::guest_from_stream(chat_tests::connect_from(addr, source))
}

#[test]
fn a_ban_by_address_keeps_out_whoever_comes_from_there() {
    let server = server();
    let mut alice = in_room(&server, "alice", "rust");
    alice.send("/ban *@127.0.0.2");
    alice.expect_line("-- alice banned *!*@127.0.0.2 from #rust");
    let mut far = connect_from(server.addr(), Ipv4Addr::new(127, 0, 0, 2));
    far.send("/join rust");
    far.expect_line("!! you are banned from #rust");
    // A block of addresses too; and nobody else is kept out.
    alice.send("/ban *@127.0.0.0/30");
    alice.expect_line("-- alice banned *!*@127.0.0.0/30 from #rust");
    let mut other = connect_from(server.addr(), Ipv4Addr::new(127, 0, 0, 3));
    other.send("/join rust");
    other.expect_line("!! you are banned from #rust");
    let mut outside = connect_from(server.addr(), Ipv4Addr::new(127, 0, 0, 9));
    outside.send("/join rust");
    outside.expect_line("-- you joined #rust");
}

#[test]
fn a_rooms_bans_and_settings_outlive_it_emptying_while_it_keeps_its_history() {
    let server = server();
    let mut alice = in_room(&server, "alice", "rust");
    alice.send("something worth remembering");
    alice.send("/ban troll");
    alice.expect_line("-- alice banned troll!*@* from #rust");
    alice.send("/room key s3cret");
    alice.expect_line("-- alice set the key of #rust to s3cret");
    alice.send("/quit");
    alice.expect_line("-- bye");
    let mut troll = server.connect_named("troll");
    troll.send("/join rust s3cret");
    troll.expect_line("!! you are banned from #rust");
    let mut dave = server.connect_named("dave");
    dave.send("/join rust");
    dave.expect_line("!! #rust needs a key: /join #rust KEY");
    dave.send("/join rust s3cret");
    dave.expect_line("-- you joined #rust");
    let replayed = dave.read_line();
    assert!(
        replayed.ends_with("] <alice> something worth remembering"),
        "{replayed}"
    );
    // The first back in is its operator.
    expect_who(&mut dave, "-- 1 in #rust: @dave");
}

#[test]
fn irc_operators_and_line_operators_moderate_the_same_room() {
    let server = server();
    let mut carol = IrcClient::registered(server.irc_addr(), "carol");
    carol.join("#rust");
    let mut bob = in_room(&server, "bob", "rust");
    carol.expect_line(":bob!bob@chat-server JOIN #rust");
    // IRC MODE, seen by a line user.
    carol.send("MODE #rust +m");
    carol.expect_line(":carol!carol@chat-server MODE #rust +m");
    bob.expect_line("-- carol made #rust moderated: only operators and voiced members speak");
    carol.send("MODE #rust +o bob");
    carol.expect_line(":carol!carol@chat-server MODE #rust +o bob");
    bob.expect_line("-- carol made bob an operator of #rust");
    // A line operator's commands, seen by an IRC user.
    let mut dave = in_room(&server, "dave", "rust");
    carol.expect_line(":dave!dave@chat-server JOIN #rust");
    bob.expect_line("-- dave joined #rust");
    bob.send("/voice dave");
    carol.expect_line(":bob!bob@chat-server MODE #rust +v dave");
    bob.send("/ban spammer");
    carol.expect_line(":bob!bob@chat-server MODE #rust +b spammer!*@*");
    carol.send("MODE #rust b");
    let bans = carol.sync("bans");
    assert!(
        bans[0].starts_with(":irc.test 367 carol #rust spammer!*@* bob "),
        "{bans:?}"
    );
    assert_eq!(bans[1], ":irc.test 368 carol #rust :End of channel ban list");
    carol.send("MODE #rust");
    carol.expect_line(":irc.test 324 carol #rust +nm");
    // KICK from IRC, seen by the line user kicked.
    carol.send("KICK #rust dave :be nice");
    carol.expect_line(":carol!carol@chat-server KICK #rust dave :be nice");
    dave.expect_line("-- bob gave dave voice in #rust");
    dave.expect_line("-- bob banned spammer!*@* from #rust");
    dave.expect_line("-- dave was kicked from #rust by carol (be nice)");
    bob.expect_line("-- bob gave dave voice in #rust");
    bob.expect_line("-- bob banned spammer!*@* from #rust");
    bob.expect_line("-- dave was kicked from #rust by carol (be nice)");
    // A line operator kicks the IRC user, who leaves the channel.
    bob.send("/kick carol");
    carol.expect_line(":bob!bob@chat-server KICK #rust carol :bob");
    carol.send("PRIVMSG #rust :back?");
    carol.expect_line(":irc.test 404 carol #rust :Cannot send to channel (join it first)");
    // IRC's numerics for the refusals.
    let mut eve = IrcClient::registered(server.irc_addr(), "eve");
    eve.send("KICK #rust bob");
    eve.expect_line(":irc.test 442 eve #rust :You're not on that channel");
    eve.join("#rust");
    eve.send("KICK #rust bob");
    eve.expect_line(":irc.test 482 eve #rust :You're not channel operator");
    eve.send("PRIVMSG #rust :hello");
    eve.expect_line(":irc.test 404 eve #rust :Cannot send to channel (+m)");
    let mut spammer = IrcClient::registered(server.irc_addr(), "spammer");
    spammer.send("JOIN #rust");
    let refused = spammer.skip_to(|l| command(l) == "474");
    assert_eq!(refused, ":irc.test 474 spammer #rust :Cannot join channel (+b)");
}
