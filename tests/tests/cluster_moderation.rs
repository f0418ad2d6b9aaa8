//! Room moderation across a Redis cluster (issue 17), black-box: two or
//! three real `chat-server` processes clustered through one real
//! `redis-server`, against what README's "Running a cluster" promises:
//! moderation works as if on one server.
//!
//! - the first member of a room *in the cluster* is its operator, not the
//!   first on each instance; of two users opening a room at once through
//!   two instances, exactly one is;
//! - an operator on one instance gives and takes operator and voice, and
//!   kicks, members on another (an IRC client there sees its KICK); a nick
//!   in the room nowhere is refused as on one server;
//! - a ban set on one instance keeps the user out, or silent, through
//!   every other; lifted, it is lifted everywhere;
//! - settings (a key, moderated) and bans apply on every instance, also
//!   on one where the room had no member yet, and on one started after
//!   they were set: it reads them from Redis.
//!
//! Each test starts its own Redis and instances (`tests/src/redis.rs`).
//! Every wait is a read with a deadline; none is a sleep.

// A test fails by panicking; clippy.toml allows these in #[test] functions
// but not in the helpers of an integration test file, so say it here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chat_tests::irc::IrcClient;
use chat_tests::people::People;
use chat_tests::redis::{start_node, start_node_listening, Cluster, TestRedis};
use chat_tests::Client;

/// User `who` says `line` and reads `answer`.
#[track_caller]
fn answered(people: &mut People, who: usize, line: &str, answer: &str) {
    people.get(who).send(line);
    people.get(who).expect_line(answer);
}

/// Sends `/who` and checks the answer.
#[track_caller]
fn expect_who(client: &mut Client, reply: &str) {
    client.send("/who");
    client.expect_line(reply);
}

#[test]
fn the_first_member_in_the_cluster_is_the_operator_not_the_first_on_each_instance() {
    let cluster = Cluster::start(2);
    let mut people = People::default();
    let alice = people.arrive(cluster.addr(0), "alice");
    let bob = people.arrive(cluster.addr(1), "bob");
    people.join(alice, "#rust");
    expect_who(people.get(alice), "-- 1 in #rust: @alice");

    // bob is the first in #rust on instance B, not in the cluster.
    people.join(bob, "#rust");
    expect_who(people.get(bob), "-- 2 in #rust: alice, bob");
    answered(
        &mut people,
        bob,
        "/room moderated on",
        "!! you are not an operator of #rust",
    );
    answered(
        &mut people,
        bob,
        "/kick alice",
        "!! you are not an operator of #rust",
    );
    answered(
        &mut people,
        bob,
        "/ban alice",
        "!! you are not an operator of #rust",
    );
}

#[test]
fn an_operator_on_one_instance_ops_voices_and_kicks_members_on_another() {
    let cluster = Cluster::start(2);
    let mut people = People::default();
    let alice = people.arrive(cluster.addr(0), "alice");
    let bob = people.arrive(cluster.addr(1), "bob");
    let carol = people.arrive(cluster.addr(1), "carol");
    for who in [alice, bob, carol] {
        people.join(who, "#rust");
    }

    people.get(alice).send("/op bob");
    people.hear_in("#rust", "-- alice made bob an operator of #rust");
    // bob is an operator now, on his instance and for alice's room.
    people.get(bob).send("/room topic-lock on");
    people.hear_in("#rust", "-- bob locked the topic of #rust: only operators set it");
    people.get(alice).send("/voice carol");
    people.hear_in("#rust", "-- alice gave carol voice in #rust");

    // bob, on B, kicks carol, on B, and alice, on A, hears it; then alice
    // kicks nobody there is.
    people.get(bob).send("/kick carol spam");
    people.hear_in("#rust", "-- carol was kicked from #rust by bob (spam)");
    people.now_in(carol, "");
    answered(
        &mut people,
        carol,
        "still here?",
        "!! you are in no room; /join one",
    );
    // A nick in the room on no instance is refused as on one server.
    answered(&mut people, alice, "/op zed", "!! zed is not in #rust");

    // Operator taken from bob on A holds on B.
    people.get(alice).send("/deop bob");
    people.hear_in("#rust", "-- alice took operator from bob in #rust");
    answered(
        &mut people,
        bob,
        "/room topic-lock off",
        "!! you are not an operator of #rust",
    );
}

#[test]
fn an_irc_client_kicked_from_another_instance_sees_its_kick() {
    let redis = TestRedis::start();
    let irc = ["--irc-listen", "127.0.0.1:0", "--server-name", "irc.test"];
    let a = start_node(&redis, &[]);
    let b = start_node_listening(&redis, &irc, 2);
    let mut alice = Client::connect_named(a.addr(), "alice");
    alice.send("/join rust");
    alice.expect_line("-- you joined #rust");
    let mut dave = IrcClient::registered(b.addrs()[1], "dave");
    dave.join("#rust");
    alice.expect_line("-- dave joined #rust");

    alice.send("/kick dave be nice");
    alice.expect_line("-- dave was kicked from #rust by alice (be nice)");
    dave.expect_line(":alice!alice@chat-server KICK #rust dave :be nice");
    // dave is out: what he says there is refused, and alice hears nothing.
    // (His instance has no one left in #rust, so it answers as for a room
    // it does not know: 403, where one server would say 404.)
    dave.send("PRIVMSG #rust :am I still in?");
    let refused = dave.read_line();
    assert!(
        [" 403 ", " 404 ", " 442 "].iter().any(|n| refused.contains(n)),
        "expected a refusal (403, 404 or 442), got {refused:?}"
    );
    alice.send("/who");
    alice.expect_line("-- 1 in #rust: @alice");
}

#[test]
fn a_ban_set_on_one_instance_holds_on_every_other_until_lifted() {
    let cluster = Cluster::start(2);
    let mut people = People::default();
    let alice = people.arrive(cluster.addr(0), "alice");
    let mallory = people.arrive(cluster.addr(1), "mallory");
    let troll = people.arrive(cluster.addr(1), "troll");
    people.join(alice, "#rust");
    people.join(mallory, "#rust");

    people.get(alice).send("/ban troll");
    people.hear_in("#rust", "-- alice banned troll!*@* from #rust");
    answered(&mut people, troll, "/join #rust", "!! you are banned from #rust");

    // A ban on a member there silences them.
    people.get(alice).send("/ban mallory");
    people.hear_in("#rust", "-- alice banned mallory!*@* from #rust");
    answered(
        &mut people,
        mallory,
        "anyone?",
        "!! you are banned from #rust: nothing you say there is delivered",
    );

    people.get(alice).send("/unban troll");
    people.hear_in("#rust", "-- alice lifted the ban on troll!*@* in #rust");
    people.join(troll, "#rust");
    people.get(troll).send("thanks");
    people.get(alice).expect_line("<troll> thanks");
    people.get(mallory).expect_line("<troll> thanks");
}

#[test]
fn settings_and_bans_hold_where_the_room_had_no_member_yet_and_on_an_instance_started_later() {
    let mut cluster = Cluster::start(2);
    let mut people = People::default();
    let alice = people.arrive(cluster.addr(0), "alice");
    let troll = people.arrive(cluster.addr(1), "troll");
    let dave = people.arrive(cluster.addr(1), "dave");
    people.join(alice, "#rust");
    people.get(alice).send("/room key s3cret");
    people.hear_in("#rust", "-- alice set the key of #rust to s3cret");
    people.get(alice).send("/room moderated on");
    people.hear_in(
        "#rust",
        "-- alice made #rust moderated: only operators and voiced members speak",
    );
    people.get(alice).send("/ban troll");
    people.hear_in("#rust", "-- alice banned troll!*@* from #rust");

    // Instance B has never had a member in #rust: its first one is held
    // to the key, the ban and the moderation all the same.
    answered(
        &mut people,
        dave,
        "/join #rust",
        "!! #rust needs a key: /join #rust KEY",
    );
    answered(
        &mut people,
        troll,
        "/join #rust s3cret",
        "!! you are banned from #rust",
    );
    people.join_with(dave, "#rust", "s3cret");
    answered(
        &mut people,
        dave,
        "hello?",
        "!! #rust is moderated: only operators and voiced members speak",
    );

    // An instance started now reads them from Redis.
    let redis = &cluster.redis;
    cluster.nodes.push(start_node(redis, &[]));
    let eve = people.arrive(cluster.addr(2), "eve");
    answered(
        &mut people,
        eve,
        "/join #rust",
        "!! #rust needs a key: /join #rust KEY",
    );
    people.join_with(eve, "#rust", "s3cret");
    people.get(eve).send("/room");
    people.get(eve).expect_line("-- #rust: moderated, key s3cret");
    people.get(eve).send("/bans");
    let ban = people.get(eve).read_line();
    assert!(
        ban.starts_with("-- #rust bans troll!*@*, set by alice at 20") && ban.ends_with("until lifted"),
        "{ban}"
    );
}

/// Reads `client`'s lines until the answer to its `/who` in `room` (`--
/// N in ROOM: ...`), accepting before it its own join and at most `max`
/// notices of the other's moves (joins and leaves), which come in an
/// order the race leaves open. Returns the answer.
#[track_caller]
fn who_after_moves(client: &mut Client, room: &str, max: usize) -> String {
    let nick = client.nick().to_string();
    for _ in 0..=max {
        let line = client.read_line();
        if line.starts_with("-- ") && line.contains(&format!(" in {room}: ")) {
            return line;
        }
        assert!(
            line == format!("-- you joined {room}")
                || (line.starts_with("-- ") && (line.contains(" joined ") || line.contains(" left "))),
            "{nick}: expected a join, a move or the answer to /who in {room}, got {line:?}"
        );
    }
    panic!("{nick}: no answer to /who in {room}");
}

/// Whether `client` is named an operator (`@` before its nick) in the
/// answer to a `/who`.
fn names_operator(answer: &str, client: &Client) -> bool {
    let list = answer.split_once(": ").map_or("", |(_, list)| list);
    list.split(", ")
        .any(|member| member == format!("@{}", client.nick()))
}

#[test]
fn of_two_users_opening_a_room_at_once_through_two_instances_exactly_one_is_its_operator() {
    let cluster = Cluster::start(2);
    let mut people = People::default();
    let x = people.arrive(cluster.addr(0), "xavier");
    let y = people.arrive(cluster.addr(1), "yvonne");
    people.join(x, "#wait");
    people.join(y, "#wait");
    let mut ops = Vec::new();
    for round in 0..8 {
        let room = format!("#race{round}");
        for who in [x, y] {
            people.get(who).send(&format!("/join {room}"));
        }
        // Answered once each one's join is back from Redis.
        for who in [x, y] {
            people.get(who).send("/who");
        }
        // Own join, the other's leave and join, and the answer.
        let x_op = names_operator(&who_after_moves(people.get(x), &room, 3), people.get(x));
        let y_op = names_operator(&who_after_moves(people.get(y), &room, 3), people.get(y));
        assert!(
            x_op != y_op,
            "{room}: exactly one must be its operator; xavier {x_op}, yvonne {y_op}"
        );
        ops.push(if x_op { "xavier" } else { "yvonne" });
        // Both are in the room now, whatever the first answers said; the
        // other's join notice, if it came after the answer, comes first.
        for who in [x, y] {
            people.get(who).send("/who");
            let answer = who_after_moves(people.get(who), &room, 1);
            assert!(answer.starts_with(&format!("-- 2 in {room}: ")), "{answer}");
        }
    }
    assert_eq!(ops.len(), 8, "{ops:?}");
}
