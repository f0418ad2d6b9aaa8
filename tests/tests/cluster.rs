//! The Redis cluster (issue 17), black-box: two or three real `chat-server`
//! processes clustered through one real `redis-server`, over loopback
//! sockets, against the contract users see:
//!
//! - users on different instances chat as if on one server: room lines,
//!   actions, joins, leaves, renames and topics cross, `/msg` finds a user
//!   anywhere, `/who` and `/rooms` count everyone (IRC's NAMES and LIST
//!   too), and commands sent at once are answered in order. Room
//!   moderation (operators, voice, bans, kicks, settings) is shared, as
//!   README's "Running a cluster" says; its tests are in
//!   `cluster_moderation.rs`, and none here depends on who is operator;
//! - nicks are unique across the cluster, races included, guest nicks
//!   never collide, a killed instance's nicks and users are gone within the
//!   claim expiry, and a user whose claim was taken becomes a guest;
//! - history lives in Redis: replay on join shows every instance's lines,
//!   kept to `--history`, survives an instance's restart, and meets the
//!   live lines without a gap or a duplicate;
//! - one order: readers on three instances see the lines of senders on two
//!   in one identical order;
//! - faults: Redis stopped and restarted, or frozen past the timeout, is
//!   announced, local chat goes on, and the link comes back; what an
//!   instance cut off from Redis missed is delivered when it is back; a
//!   burst past the queue to Redis loses nothing locally; an unreachable
//!   Redis or a wrong password at start is a clear error and exit 1, and
//!   `--cluster-optional` starts alone and links up later.
//!
//! Each test starts its own Redis (on a free port, without persistence)
//! and its own instances (`tests/src/redis.rs`), with a claim expiry of
//! 3 s and a timeout of 500 ms so that faults show quickly. Every wait is
//! a read with a deadline or a bounded poll of what a user can see; none
//! is a sleep standing in for an event.
//!
//! The binaries must be built first (`cargo build --workspace`, as the
//! test command does), and `redis-server` installed: without it every test
//! here fails, saying how to install it.

// A test fails by panicking; clippy.toml allows these in #[test] functions
// but not in the helpers of an integration test file, so say it here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use chat_protocol::ServerLine;
use chat_tests::irc::{command, params, IrcClient};
use chat_tests::people::People;
use chat_tests::redis::{
    free_port, node_command, start_node, start_node_listening, start_node_unlinked, wait_linked, Cluster,
    TestRedis, CLUSTER_WAIT,
};
use chat_tests::{Client, Daemon, Proc};

/// What every user hears when its instance loses Redis.
const LINK_LOST: &str = "-- cluster link lost; only users on this server can hear you";

/// What every user hears when the link is back.
const LINK_RESTORED: &str = "-- cluster link restored";

/// The pause between two tries of a bounded poll (a nick coming free, a
/// list shrinking): each try is a real request whose answer is checked,
/// the pause only keeps the poll from flooding the server.
const POLL_PAUSE: Duration = Duration::from_millis(100);

/// Sends `/who` and checks the answer.
#[track_caller]
fn expect_who(client: &mut Client, reply: &str) {
    client.send("/who");
    client.expect_line(reply);
}

/// The next line, which must be a line of `room`'s history, replayed:
/// (who, text, action).
#[track_caller]
fn replayed(client: &mut Client) -> (String, String, bool) {
    let line = client.read_line();
    match ServerLine::parse(&line) {
        Ok(ServerLine::Replayed {
            from, text, action, ..
        }) => (from, text, action),
        other => panic!(
            "{}: expected a replayed line, got {line:?} ({other:?})",
            client.nick()
        ),
    }
}

/// A replayed or live chat line: (who, text).
fn said(from: &str, text: &str) -> (String, String, bool) {
    (from.to_string(), text.to_string(), false)
}

/// Reads lines until one is `expected`, accepting before it only lines in
/// `allowed` (each at most once), within `timeout`: for a notice whose
/// forerunner depends on timing the contract leaves open (a user who
/// connected during an outage may or may not have been told of it).
#[track_caller]
fn expect_line_after(client: &mut Client, expected: &str, allowed: &[&str], timeout: Duration) {
    let mut seen = Vec::new();
    for _ in 0..=allowed.len() {
        let line = client.read_line_within(timeout);
        if line == expected {
            return;
        }
        assert!(
            allowed.contains(&line.as_str()) && !seen.contains(&line),
            "{}: expected {expected:?} (after any of {allowed:?}), got {line:?}",
            client.nick()
        );
        seen.push(line);
    }
    panic!("{}: {expected:?} did not come; read {seen:?}", client.nick());
}

/// Sends `request` every [`POLL_PAUSE`] until the answer is `wanted`,
/// for at most [`CLUSTER_WAIT`]; each other answer must be one of
/// `meanwhile`. Returns how many tries it took.
#[track_caller]
fn poll_until(client: &mut Client, request: &str, wanted: &str, meanwhile: &[&str]) -> usize {
    let deadline = Instant::now() + CLUSTER_WAIT;
    for tries in 1..=MAX_POLLS {
        client.send(request);
        let answer = client.read_line();
        if answer == wanted {
            return tries;
        }
        assert!(
            meanwhile.contains(&answer.as_str()),
            "{}: {request:?} answered {answer:?}, neither {wanted:?} nor one of {meanwhile:?}",
            client.nick()
        );
        assert!(
            Instant::now() < deadline,
            "{}: {request:?} still answered {answer:?} after {CLUSTER_WAIT:?}",
            client.nick()
        );
        thread::sleep(POLL_PAUSE);
    }
    panic!(
        "{}: {request:?} not answered {wanted:?} in {MAX_POLLS} tries",
        client.nick()
    );
}

/// The most tries of a bounded poll: more than [`CLUSTER_WAIT`] allows at
/// one per [`POLL_PAUSE`], so the deadline ends it first.
const MAX_POLLS: usize = 1_000;

// ---------------------------------------------------------------------------
// The harness itself.

#[test]
fn the_test_redis_answers_forgets_on_restart_and_checks_its_password() {
    let mut redis = TestRedis::start();
    assert_eq!(redis.command(&["PING"]).unwrap(), "+PONG");
    assert_eq!(redis.command(&["SET", "chat:test", "1"]).unwrap(), "+OK");
    let port = redis.port();
    redis.stop();
    assert!(redis.command(&["PING"]).is_err(), "a stopped Redis still answers");
    redis.restart();
    assert_eq!(redis.port(), port);
    // No persistence: a restarted Redis is empty.
    assert_eq!(redis.command(&["EXISTS", "chat:test"]).unwrap(), ":0");

    // A frozen Redis stops too.
    redis.freeze();
    redis.stop();
    assert!(redis.command(&["PING"]).is_err(), "a stopped Redis still answers");

    let locked = TestRedis::start_with_password("t0p-secret");
    assert_eq!(locked.command(&["PING"]).unwrap(), "+PONG");
    assert!(locked.url().starts_with("redis://:t0p-secret@127.0.0.1:"));
}

// ---------------------------------------------------------------------------
// Chatting across instances.

#[test]
fn room_lines_and_actions_cross_instances_both_ways() {
    let cluster = Cluster::start(2);
    let mut people = People::default();
    let alice = people.arrive(cluster.addr(0), "alice");
    let bob = people.arrive(cluster.addr(1), "bob");
    let carol = people.arrive(cluster.addr(0), "carol");

    people.get(alice).send("hello from A");
    people.get(bob).expect_line("<alice> hello from A");
    // carol is on alice's instance: her copy too came back from Redis.
    people.get(carol).expect_line("<alice> hello from A");

    people.get(bob).send("hello from B");
    // alice's next line is bob's: her own was not echoed to her.
    people.get(alice).expect_line("<bob> hello from B");
    people.get(carol).expect_line("<bob> hello from B");

    people.get(alice).send("/me waves");
    people.get(bob).expect_line("* alice waves");
    people.get(carol).expect_line("* alice waves");
    people.get(bob).send("//slash from B");
    people.get(alice).expect_line("<bob> /slash from B");
    people.get(carol).expect_line("<bob> /slash from B");
    expect_who(people.get(bob), "-- 3 in #lobby: alice, bob, carol");
}

#[test]
fn an_instance_is_linked_before_it_takes_its_first_user() {
    let redis = TestRedis::start();
    // Users connect as soon as the instances listen.
    let a = start_node_unlinked(&redis, &[]);
    let b = start_node_unlinked(&redis, &[]);
    let mut people = People::default();
    let alice = people.arrive(a.addr(), "alice");
    let bob = people.arrive(b.addr(), "bob");
    people.get(alice).send("first words");
    people.get(bob).expect_line("<alice> first words");
}

#[test]
fn joins_leaves_renames_and_topics_reach_other_instances() {
    let cluster = Cluster::start(2);
    let mut people = People::default();
    let alice = people.arrive(cluster.addr(0), "alice");
    let bob = people.arrive(cluster.addr(1), "bob");
    // Arriving and renaming crossed (People::arrive checks both); so do
    // moving between rooms and topics.
    people.join(alice, "#rust");
    people.join(bob, "#rust");
    people.get(alice).send("/topic release on Friday");
    let set = "-- alice set the topic of #rust: release on Friday";
    people.get(alice).expect_line(set);
    people.get(bob).expect_line(set);
    people.get(bob).send("/topic");
    let shown = people.get(bob).read_line();
    assert!(
        shown.starts_with("-- topic of #rust: release on Friday (set by alice at 20")
            && shown.ends_with("Z)"),
        "{shown}"
    );
    people.get(bob).send("/nick robert");
    people.get(bob).expect_line("-- you are now known as robert");
    people.get(alice).expect_line("-- bob is now known as robert");
    people.get(bob).send("/quit gone fishing");
    people.get(bob).expect_line("-- bye");
    people.get(bob).expect_eof();
    people
        .get(alice)
        .expect_line("-- robert left #rust (quit: gone fishing)");
}

#[test]
fn msg_reaches_a_user_on_another_instance() {
    let cluster = Cluster::start(2);
    let mut people = People::default();
    let alice = people.arrive(cluster.addr(0), "alice");
    let bob = people.arrive(cluster.addr(1), "bob");
    people.join(bob, "#den");

    people.get(alice).send("/msg bob psst, over here");
    people.get(bob).expect_line("*alice* psst, over here");
    people.get(alice).expect_line("-> *bob* psst, over here");
    people.get(bob).send("/msg alice got it");
    people.get(alice).expect_line("*bob* got it");
    people.get(bob).expect_line("-> *alice* got it");
    // Found without regard to case, as locally.
    people.get(alice).send("/msg BOB again");
    people.get(bob).expect_line("*alice* again");
    people.get(alice).expect_line_ignoring_case("-> *bob* again");
    people.get(alice).send("/msg carol are you there");
    people.get(alice).expect_line("!! no such nick: carol");
}

#[test]
fn irc_names_and_list_count_the_users_of_every_instance() {
    let redis = TestRedis::start();
    let irc = ["--irc-listen", "127.0.0.1:0", "--server-name", "irc.test"];
    let a = start_node_listening(&redis, &irc, 2);
    let b = start_node_listening(&redis, &irc, 2);
    let mut alice = Client::connect_named(a.addr(), "alice");
    alice.send("/join rust");
    alice.expect_line("-- you joined #rust");

    // dave, on B's IRC listener, joins alice's room: its names are both.
    let mut dave = IrcClient::registered(b.addrs()[1], "dave");
    let joined = dave.join("#rust");
    let names = joined
        .iter()
        .find(|line| command(line) == "353")
        .unwrap_or_else(|| panic!("no names (353) on joining: {joined:?}"));
    let mut listed: Vec<String> = params(names)
        .last()
        .map(|names| {
            names
                .split(' ')
                .map(|n| n.trim_start_matches(['@', '+']).to_string())
                .collect()
        })
        .unwrap_or_default();
    listed.sort();
    assert_eq!(listed, ["alice", "dave"], "{names}");
    alice.expect_line("-- dave joined #rust");
    dave.send("PRIVMSG #rust :hello from IRC on B");
    alice.expect_line("<dave> hello from IRC on B");
    alice.send("hello from A");
    dave.expect_line(":alice!alice@chat-server PRIVMSG #rust :hello from A");

    // LIST counts both.
    dave.send("LIST");
    let mut list = Vec::new();
    loop {
        let line = dave.read_line();
        let end = command(&line) == "323";
        list.push(line);
        if end {
            break;
        }
        assert!(list.len() < 100, "no end of LIST (323): {list:?}");
    }
    assert!(
        list.iter()
            .any(|line| command(line) == "322"
                && params(line).get(1..3) == Some(&["#rust".into(), "2".into()])),
        "no '#rust 2' in the LIST: {list:?}"
    );
}

#[test]
fn irc_replies_come_in_the_order_of_the_commands_as_on_one_server() {
    let redis = TestRedis::start();
    let irc = ["--irc-listen", "127.0.0.1:0", "--server-name", "irc.test"];
    let a = start_node_listening(&redis, &irc, 2);
    let mut dave = IrcClient::registered(a.addrs()[1], "dave");
    // A client may use PING as a barrier: everything it asked before is
    // answered when the PONG comes (irssi and WeeChat do, and the IRC
    // tests here).
    dave.send_raw(b"JOIN #rust\r\nLIST\r\nNAMES #rust\r\nPING barrier\r\n");
    let before = dave.sync("barrier");
    let commands: Vec<&str> = before
        .iter()
        .map(|line| command(line))
        .filter(|c| *c != "322")
        .collect();
    assert_eq!(
        commands,
        ["JOIN", "353", "366", "321", "323", "353", "366"],
        "what came before the PONG: {before:?}"
    );
}

// ---------------------------------------------------------------------------
// Nicks.

#[test]
fn commands_sent_at_once_are_answered_in_order_as_on_one_server() {
    let cluster = Cluster::start(2);
    let mut bob = Client::connect_named(cluster.addr(1), "bob");
    bob.send("/join rust");
    bob.expect_line("-- you joined #rust");
    // A rename waits for its claim in Redis; what follows it in the same
    // write must still be answered, and after it.
    let mut alice = Client::connect_guest(cluster.addr(0));
    let guest = alice.nick().to_string();
    alice.send_raw(b"/nick alice\n/join rust\n/who\nhi\n");
    alice.expect_line("-- you are now known as alice");
    alice.expect_line("-- you joined #rust");
    // Who is the room's operator is another test's business.
    let who = alice.read_line().replace('@', "");
    assert_eq!(who, "-- 2 in #rust: alice, bob");
    // bob hears her come as alice, not as the guest she was.
    bob.expect_line("-- alice joined #rust");
    bob.expect_line("<alice> hi");
    assert_ne!(guest, "alice");
}

#[test]
fn a_nick_held_on_another_instance_is_refused_whatever_its_case() {
    let cluster = Cluster::start(2);
    let mut people = People::default();
    let alice = people.arrive(cluster.addr(0), "alice");
    let bob = people.arrive(cluster.addr(1), "bob");
    people.get(bob).send("/nick alice");
    people.get(bob).expect_line("!! nick alice is already in use");
    people.get(bob).send("/nick ALICE");
    people.get(bob).expect_line("!! nick ALICE is already in use");
    // A guest on alice's instance is refused the same.
    let mut guest = Client::connect_guest(cluster.addr(0));
    let guest_nick = guest.nick().to_string();
    people.hear_in("#lobby", &format!("-- {guest_nick} joined #lobby"));
    guest.send("/nick Bob");
    guest.expect_line("!! nick Bob is already in use");
    // Once alice lets it go, it is bob's to take.
    people.get(alice).send("/nick alicia");
    people.get(alice).expect_line("-- you are now known as alicia");
    people.get(bob).expect_line("-- alice is now known as alicia");
    guest.expect_line("-- alice is now known as alicia");
    people.get(bob).send("/nick alice");
    people.get(bob).expect_line("-- you are now known as alice");
    people.get(alice).expect_line("-- bob is now known as alice");
    guest.expect_line("-- bob is now known as alice");
    expect_who(
        &mut guest,
        &format!("-- 3 in #lobby: alice, alicia, {guest_nick}"),
    );
}

/// Pairs of users, one on each instance, racing for one nick per pair.
const RACERS: usize = 8;

/// Races each pair runs, each for a new nick.
const RACES: usize = 5;

#[test]
fn two_instances_racing_for_a_nick_give_it_to_exactly_one() {
    let cluster = Cluster::start(2);
    // Each racer alone in a room of its own, which it enters before the
    // next one arrives, so that it reads only the answers to its own
    // /nick.
    let racer = |node: usize, room: String| {
        let mut client = Client::connect_guest(cluster.addr(node));
        client.send(&format!("/join {room}"));
        client.expect_line(&format!("-- you joined #{room}"));
        client
    };
    let mut racers: Vec<(Client, Client)> = (0..RACERS)
        .map(|i| (racer(0, format!("racea{i}")), racer(1, format!("raceb{i}"))))
        .collect();
    let mut won = [0usize; 2];
    for race in 0..RACES {
        // Every pair's two requests go out before any answer is read, so
        // the instances decide them at the same time.
        for (i, (a, b)) in racers.iter_mut().enumerate() {
            let nick = format!("r{race}n{i}");
            // Half the pairs differ in case only: the same nick.
            let other = if i % 2 == 0 {
                nick.clone()
            } else {
                nick.to_uppercase()
            };
            a.send(&format!("/nick {nick}"));
            b.send(&format!("/nick {other}"));
        }
        for (i, (a, b)) in racers.iter_mut().enumerate() {
            let nick = format!("r{race}n{i}");
            let other = if i % 2 == 0 {
                nick.clone()
            } else {
                nick.to_uppercase()
            };
            let a_won = took(a, &nick);
            let b_won = took(b, &other);
            assert!(
                a_won != b_won,
                "race {race}, pair {i}: {} won {nick:?}",
                if a_won { "both" } else { "neither" }
            );
            won[usize::from(b_won)] += 1;
        }
    }
    assert_eq!(won[0] + won[1], RACERS * RACES, "every race has one winner");
}

/// Reads the answer to `/nick nick`: true if it was taken, false if
/// refused as in use.
#[track_caller]
fn took(client: &mut Client, nick: &str) -> bool {
    let line = client.read_line();
    if line == format!("-- you are now known as {nick}") {
        true
    } else if line == format!("!! nick {nick} is already in use") {
        false
    } else {
        panic!("{}: /nick {nick} answered {line:?}", client.nick());
    }
}

/// Guests each instance welcomes at once in the collision test.
const GUESTS_PER_NODE: usize = 10;

#[test]
fn guest_nicks_never_collide_across_instances() {
    let cluster = Cluster::start(3);
    let addrs: Vec<SocketAddr> = (0..3).map(|i| cluster.addr(i)).collect();
    // All at once, from one thread per instance.
    let handles: Vec<_> = addrs
        .into_iter()
        .map(|addr| {
            thread::spawn(move || {
                let clients: Vec<Client> = (0..GUESTS_PER_NODE).map(|_| Client::connect(addr)).collect();
                // Connected first, welcomed after: the instances hand out
                // their guest nicks concurrently.
                clients
                    .into_iter()
                    .map(|c| {
                        let mut c = c;
                        let line = c.read_line();
                        match chat_tests::parse_welcome(&line) {
                            Some(nick) => nick.to_string(),
                            None => panic!("expected a welcome, got {line:?}"),
                        }
                    })
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    let nicks: Vec<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert_eq!(nicks.len(), 3 * GUESTS_PER_NODE);
    let distinct: HashSet<String> = nicks.iter().map(|n| n.to_lowercase()).collect();
    assert_eq!(
        distinct.len(),
        nicks.len(),
        "a guest nick was given twice: {nicks:?}"
    );
}

#[test]
fn who_and_rooms_count_the_users_of_every_instance() {
    let cluster = Cluster::start(3);
    let mut people = People::default();
    let alice = people.arrive(cluster.addr(0), "alice");
    let bob = people.arrive(cluster.addr(1), "bob");
    let carol = people.arrive(cluster.addr(2), "Carol");
    for who in [alice, bob, carol] {
        expect_who(people.get(who), "-- 3 in #lobby: alice, bob, Carol");
        people.get(who).send("/rooms");
        people.get(who).expect_line("-- 1 room: #lobby (3)");
    }
    people.join(bob, "#rust");
    people.get(carol).send("/rooms");
    people.get(carol).expect_line("-- 2 rooms: #lobby (2), #rust (1)");
    people.join(alice, "#rust");
    for who in [alice, bob, carol] {
        people.get(who).send("/rooms");
        people.get(who).expect_line("-- 2 rooms: #lobby (1), #rust (2)");
    }
    expect_who(people.get(carol), "-- 1 in #lobby: Carol");
}

#[test]
fn a_killed_instances_nicks_are_free_within_the_claim_ttl() {
    let mut cluster = Cluster::start(2);
    let mut people = People::default();
    let _alice = people.arrive(cluster.addr(0), "alice");
    let bob = people.arrive(cluster.addr(1), "bob");
    people.get(bob).send("/nick alice");
    people.get(bob).expect_line("!! nick alice is already in use");

    // Instance A dies without a word to Redis.
    let a = &mut cluster.nodes[0];
    a.proc.signal("KILL");
    a.proc.wait_exit();
    // bob is alone in #den, so that nothing else comes between his tries
    // and their answers.
    let bob_client = people.get(bob);
    bob_client.send("/join den");
    bob_client.expect_line("-- you joined #den");
    poll_until(
        bob_client,
        "/nick alice",
        "-- you are now known as alice",
        &["!! nick alice is already in use"],
    );
}

#[test]
fn a_killed_instances_users_leave_the_lists_within_the_claim_ttl() {
    let mut cluster = Cluster::start(2);
    let mut people = People::default();
    people.arrive(cluster.addr(0), "alice");
    let bob = people.arrive(cluster.addr(1), "bob");
    expect_who(people.get(bob), "-- 2 in #lobby: alice, bob");
    let a = &mut cluster.nodes[0];
    a.proc.signal("KILL");
    a.proc.wait_exit();
    // Whether anyone is told that alice left is not in the contract (a
    // killed instance says nothing); that she stops being counted is.
    // bob waits in a room of his own, so that only his answers come.
    let bob_client = people.get(bob);
    bob_client.send("/join den");
    bob_client.expect_line("-- you joined #den");
    poll_until(
        bob_client,
        "/rooms",
        "-- 2 rooms: #den (1), #lobby (0)",
        &["-- 2 rooms: #den (1), #lobby (1)"],
    );
}

// ---------------------------------------------------------------------------
// History.

#[test]
fn joining_replays_lines_said_on_other_instances() {
    let cluster = Cluster::start(2);
    let mut people = People::default();
    let alice = people.arrive(cluster.addr(0), "alice");
    let carol = people.arrive(cluster.addr(1), "carol");
    people.join(alice, "#rust");
    people.join(carol, "#rust");
    people.get(alice).send("line 1 from A");
    people.get(carol).expect_line("<alice> line 1 from A");
    people.get(carol).send("line 2 from B");
    people.get(alice).expect_line("<carol> line 2 from B");
    people.get(alice).send("/me line 3 from A");
    people.get(carol).expect_line("* alice line 3 from A");

    // bob, on B, was not there: he is shown all three on joining.
    let mut bob = Client::connect_named(cluster.addr(1), "bob");
    bob.send("/join rust");
    bob.expect_line("-- you joined #rust");
    assert_eq!(replayed(&mut bob), said("alice", "line 1 from A"));
    assert_eq!(replayed(&mut bob), said("carol", "line 2 from B"));
    assert_eq!(
        replayed(&mut bob),
        ("alice".to_string(), "line 3 from A".to_string(), true)
    );
    bob.send("/history 2");
    assert_eq!(replayed(&mut bob), said("carol", "line 2 from B"));
    assert_eq!(
        replayed(&mut bob),
        ("alice".to_string(), "line 3 from A".to_string(), true)
    );
    // And what follows is live.
    people.get(alice).send("live now");
    bob.expect_line("<alice> live now");
}

#[test]
fn history_outlives_the_restart_of_the_instance_it_was_said_on() {
    let mut cluster = Cluster::start(2);
    let mut people = People::default();
    let alice = people.arrive(cluster.addr(0), "alice");
    let carol = people.arrive(cluster.addr(1), "carol");
    people.join(alice, "#ops");
    people.join(carol, "#ops");
    people.get(alice).send("deploy done");
    people.get(alice).send("/me goes home");
    // carol heard both: they went through Redis, into the room's stream.
    people.get(carol).expect_line("<alice> deploy done");
    people.get(carol).expect_line("* alice goes home");
    let mut alice = people.take(alice);

    // Instance A stops (gracefully) and a new one takes its place.
    let mut a = cluster.nodes.remove(0);
    a.proc.signal("TERM");
    alice.expect_line("-- server shutting down");
    alice.expect_closed();
    a.proc.wait_exit();
    let a2 = start_node(&cluster.redis, &[]);

    // Each reader stays till the end, so that the next hears no one leave.
    let mut readers = Vec::new();
    for addr in [a2.addr(), cluster.addr(0)] {
        let mut bob = Client::connect_guest(addr);
        bob.send("/join ops");
        bob.expect_line("-- you joined #ops");
        assert_eq!(replayed(&mut bob), said("alice", "deploy done"));
        assert_eq!(
            replayed(&mut bob),
            ("alice".to_string(), "goes home".to_string(), true)
        );
        bob.send("/history");
        assert_eq!(replayed(&mut bob), said("alice", "deploy done"));
        assert_eq!(
            replayed(&mut bob),
            ("alice".to_string(), "goes home".to_string(), true)
        );
        readers.push(bob);
    }
}

#[test]
fn history_in_redis_keeps_the_last_history_lines_and_the_topic_shows_on_joining() {
    let cluster = Cluster::start_with(2, &["--history", "3", "--replay", "3"]);
    let mut people = People::default();
    let alice = people.arrive(cluster.addr(0), "alice");
    let carol = people.arrive(cluster.addr(1), "carol");
    people.join(alice, "#cap");
    people.join(carol, "#cap");
    people.get(alice).send("/topic kept short");
    let set = "-- alice set the topic of #cap: kept short";
    people.get(alice).expect_line(set);
    people.get(carol).expect_line(set);
    for n in 1..=5 {
        people.get(alice).send(&format!("line {n}"));
    }
    for n in 1..=5 {
        people.get(carol).expect_line(&format!("<alice> line {n}"));
    }
    let mut bob = Client::connect_named(cluster.addr(1), "bob");
    bob.send("/join cap");
    bob.expect_line("-- you joined #cap");
    let topic = bob.read_line();
    assert!(
        topic.starts_with("-- topic of #cap: kept short (set by alice at 20") && topic.ends_with("Z)"),
        "{topic}"
    );
    for n in 3..=5 {
        assert_eq!(replayed(&mut bob), said("alice", &format!("line {n}")));
    }
    bob.send("/history 10");
    for n in 3..=5 {
        assert_eq!(replayed(&mut bob), said("alice", &format!("line {n}")));
    }
    bob.send("/rooms");
    bob.expect_line("-- 2 rooms: #cap (3), #lobby (0)");
}

/// Lines said in the replay test, in [`LIVE_BATCHES`] writes.
const LIVE_LINES: usize = 300;

/// Writes the replay test's lines are sent in, bob joining after the
/// first.
const LIVE_BATCHES: usize = 3;

#[test]
fn replay_then_live_lines_have_no_gap_and_no_duplicate() {
    // Room for every line in the replay, so that whatever was said before
    // bob's join is replayed and whatever after it is live.
    let cluster = Cluster::start_with(2, &["--history", "1000", "--replay", "1000"]);
    let mut alice = Client::connect_named(cluster.addr(0), "alice");
    alice.send("/join live");
    alice.expect_line("-- you joined #live");
    let mut bob = Client::connect_named(cluster.addr(1), "bob");
    let per_batch = LIVE_LINES / LIVE_BATCHES;
    for batch in 0..LIVE_BATCHES {
        let text: String = (batch * per_batch..(batch + 1) * per_batch)
            .map(|n| format!("n{n}\n"))
            .collect();
        alice.send_raw(text.as_bytes());
        if batch == 0 {
            // While alice's lines are on their way through Redis.
            bob.send("/join live");
        }
    }
    bob.expect_line("-- you joined #live");
    let mut got = Vec::with_capacity(LIVE_LINES);
    let mut replays = 0;
    while got.len() < LIVE_LINES {
        let line = bob.read_line();
        let (from, text) = match ServerLine::parse(&line) {
            Ok(ServerLine::Replayed { from, text, .. }) => {
                assert_eq!(replays, got.len(), "a replayed line after a live one: {line:?}");
                replays += 1;
                (from, text)
            }
            Ok(ServerLine::Message { from, text }) => (from, text),
            other => panic!("bob expected alice's lines, got {line:?} ({other:?})"),
        };
        assert_eq!(from, "alice", "{line:?}");
        got.push(text);
    }
    let expected: Vec<String> = (0..LIVE_LINES).map(|n| format!("n{n}")).collect();
    assert_eq!(got, expected, "{replays} replayed, then live");
    // Nothing more: the next answer is the one to this /who.
    bob.send("/rooms");
    bob.expect_line("-- 2 rooms: #live (2), #lobby (0)");
}

// ---------------------------------------------------------------------------
// One order.

/// Lines each of the two senders sends at once in the ordering test.
const ORDER_LINES: usize = 300;

#[test]
fn readers_on_three_instances_see_two_instances_senders_in_one_order() {
    let cluster = Cluster::start(3);
    let mut people = People::default();
    let s1 = people.arrive(cluster.addr(0), "s1");
    let s2 = people.arrive(cluster.addr(1), "s2");
    let readers: Vec<usize> = (0..3)
        .map(|i| people.arrive(cluster.addr(i), &format!("r{i}")))
        .collect();
    for who in [s1, s2].iter().chain(&readers) {
        people.join(*who, "#order");
    }
    // Each sender's lines in one write, both senders at once.
    let batch = |tag: &str| -> String { (0..ORDER_LINES).map(|n| format!("{tag}-{n}\n")).collect() };
    let (one, two) = (batch("a"), batch("b"));
    people.get(s1).send_raw(one.as_bytes());
    people.get(s2).send_raw(two.as_bytes());

    let orders: Vec<Vec<String>> = readers
        .iter()
        .map(|&r| people.get(r).read_lines(2 * ORDER_LINES))
        .collect();
    for (i, order) in orders.iter().enumerate() {
        for (sender, tag) in [("s1", "a"), ("s2", "b")] {
            let theirs: Vec<&String> = order
                .iter()
                .filter(|l| l.starts_with(&format!("<{sender}> ")))
                .collect();
            let expected: Vec<String> = (0..ORDER_LINES)
                .map(|n| format!("<{sender}> {tag}-{n}"))
                .collect();
            assert_eq!(
                theirs,
                expected.iter().collect::<Vec<_>>(),
                "reader r{i} did not get {sender}'s lines once each in the order sent"
            );
        }
        assert_eq!(order, &orders[0], "readers r0 and r{i} saw different orders");
    }
    // The senders hear each other, in that order too, and not themselves.
    let heard_by_s1 = people.get(s1).read_lines(ORDER_LINES);
    let heard_by_s2 = people.get(s2).read_lines(ORDER_LINES);
    let of = |sender: &str| -> Vec<String> {
        orders[0]
            .iter()
            .filter(|l| l.starts_with(&format!("<{sender}> ")))
            .cloned()
            .collect()
    };
    assert_eq!(heard_by_s1, of("s2"));
    assert_eq!(heard_by_s2, of("s1"));
}

// ---------------------------------------------------------------------------
// Faults.

#[test]
fn redis_stopped_and_restarted_mid_chat_is_announced_and_survived() {
    let mut cluster = Cluster::start(2);
    let mut people = People::default();
    let alice = people.arrive(cluster.addr(0), "alice");
    let bob = people.arrive(cluster.addr(1), "bob");
    let carol = people.arrive(cluster.addr(0), "carol");
    people.get(alice).send("before the outage");
    people.get(bob).expect_line("<alice> before the outage");
    people.get(carol).expect_line("<alice> before the outage");

    cluster.redis.stop();
    for who in [alice, bob, carol] {
        people.get(who).expect_line_within(LINK_LOST, CLUSTER_WAIT);
    }
    // Local chat goes on.
    people.get(alice).send("only carol hears this");
    people.get(carol).expect_line("<alice> only carol hears this");
    people.get(carol).send("/me nods");
    people.get(alice).expect_line("* carol nods");

    cluster.redis.restart();
    for who in [alice, carol, bob] {
        // bob's next line is this one: nothing said on A during the
        // outage reached him.
        people.get(who).expect_line_within(LINK_RESTORED, CLUSTER_WAIT);
    }
    // Across again, both ways.
    people.get(alice).send("after the outage");
    people.get(bob).expect_line("<alice> after the outage");
    people.get(carol).expect_line("<alice> after the outage");
    people.get(bob).send("welcome back");
    people.get(alice).expect_line("<bob> welcome back");
    people.get(carol).expect_line("<bob> welcome back");
    // A's nicks were claimed again before it said the link was back.
    people.get(bob).send("/nick carol");
    people.get(bob).expect_line("!! nick carol is already in use");
    expect_who(people.get(bob), "-- 3 in #lobby: alice, bob, carol");
    // The lobby's history is the same wherever one comes: on either
    // instance, and on one started after the outage. The stream is the
    // truth (README): a Redis restarted without persistence took the
    // history with it, and each instance reloaded its rooms' history from
    // the streams when the link came back, so none remembers what was
    // said before, nor what A said alone during the outage.
    let c = start_node(&cluster.redis, &[]);
    // Each guest stays till the end, so that none hears another leave.
    let (replays, _guests): (Vec<Replay>, Vec<Client>) = [cluster.addr(0), cluster.addr(1), c.addr()]
        .into_iter()
        .map(lobby_replay)
        .unzip();
    for replay in &replays {
        assert_eq!(
            replay, &replays[0],
            "the lobby's history differs between instances: {replays:#?}"
        );
    }
    assert_eq!(
        replays[0],
        [said("alice", "after the outage"), said("bob", "welcome back")],
        "{replays:#?}"
    );
}

/// Replayed lines: (who, text, action) each.
type Replay = Vec<(String, String, bool)>;

/// What a guest who comes to `addr` is shown of the lobby's history, and
/// the guest.
#[track_caller]
fn lobby_replay(addr: SocketAddr) -> (Replay, Client) {
    let mut guest = Client::connect_guest(addr);
    // The answer to this ends the replay.
    guest.send("/dance");
    let mut replay = Vec::new();
    for _ in 0..100 {
        let line = guest.read_line();
        if line == "!! unknown command /dance; type /help for the list" {
            return (replay, guest);
        }
        match ServerLine::parse(&line) {
            Ok(ServerLine::Replayed {
                from, text, action, ..
            }) => replay.push((from, text, action)),
            other => panic!(
                "{}: expected the lobby's history, got {line:?} ({other:?})",
                guest.nick()
            ),
        }
    }
    panic!("{}: no end to the lobby's history", guest.nick());
}

#[test]
fn redis_frozen_past_the_timeout_is_announced_and_nothing_hangs() {
    let cluster = Cluster::start(2);
    let mut people = People::default();
    let alice = people.arrive(cluster.addr(0), "alice");
    let bob = people.arrive(cluster.addr(1), "bob");
    let carol = people.arrive(cluster.addr(0), "carol");

    cluster.redis.freeze();
    // Nobody says anything: the instances' own traffic (claim refreshes)
    // meets the timeout.
    for who in [alice, bob, carol] {
        people.get(who).expect_line_within(LINK_LOST, CLUSTER_WAIT);
    }
    // Nothing hangs: local chat goes on, and every instance answers.
    people.get(alice).send("still here");
    people.get(carol).expect_line("<alice> still here");
    for who in [alice, bob, carol] {
        people.get(who).send("/dance");
        people
            .get(who)
            .expect_line("!! unknown command /dance; type /help for the list");
    }

    cluster.redis.thaw();
    for who in [alice, carol, bob] {
        people.get(who).expect_line_within(LINK_RESTORED, CLUSTER_WAIT);
    }
    people.get(alice).send("thawed");
    people.get(carol).expect_line("<alice> thawed");
    let heard = people.get(bob).read_line();
    assert_eq!(heard, "<alice> thawed");
}

#[test]
fn a_user_who_comes_while_redis_is_frozen_is_welcomed_and_counted_once_it_is_back() {
    let cluster = Cluster::start(2);
    let mut people = People::default();
    let alice = people.arrive(cluster.addr(0), "alice");
    let bob = people.arrive(cluster.addr(1), "bob");
    cluster.redis.freeze();
    for who in [alice, bob] {
        people.get(who).expect_line_within(LINK_LOST, CLUSTER_WAIT);
    }
    // A newcomer is welcomed (a guest nick, without Redis to count on)
    // and alice, on the same instance, hears of it.
    let mut newcomer = Client::connect_guest(cluster.addr(0));
    let guest = newcomer.nick().to_string();
    people
        .get(alice)
        .expect_line(&format!("-- {guest} joined #lobby"));
    newcomer.send("hello?");
    people.get(alice).expect_line(&format!("<{guest}> hello?"));

    cluster.redis.thaw();
    for who in [alice, bob] {
        people.get(who).expect_line_within(LINK_RESTORED, CLUSTER_WAIT);
    }
    // The newcomer may have been told of the outage on coming; it is
    // told the link is back like everyone.
    expect_line_after(&mut newcomer, LINK_RESTORED, &[LINK_LOST], CLUSTER_WAIT);
    // Its instance claimed its nick and presence again: bob, on the
    // other instance, counts it and hears it. (Whether bob is told it
    // joined, late, is left open.)
    people.get(alice).send("all here?");
    newcomer.expect_line("<alice> all here?");
    expect_line_after(
        people.get(bob),
        "<alice> all here?",
        &[&format!("-- {guest} joined #lobby")],
        TIMEOUT_AFTER_THAW,
    );
    expect_who(people.get(bob), &format!("-- 3 in #lobby: alice, bob, {guest}"));
    newcomer.send("yes");
    people.get(bob).expect_line(&format!("<{guest}> yes"));
}

/// How long a user waits for a line that follows the link's return.
const TIMEOUT_AFTER_THAW: Duration = Duration::from_secs(5);

/// Lines said elsewhere while one instance's link is down, in the test
/// of what it missed.
const MISSED: usize = 5;

#[test]
fn lines_said_elsewhere_while_an_instance_was_cut_off_are_delivered_when_it_is_back() {
    let cluster = Cluster::start(2);
    let mut people = People::default();
    let alice = people.arrive(cluster.addr(0), "alice");
    let carol = people.arrive(cluster.addr(0), "carol");
    let bob = people.arrive(cluster.addr(1), "bob");
    // Redis, running all along, drops B's connections and, for a while,
    // refuses new ones (a password B does not have); A's connections,
    // already authenticated, go on.
    let mut admin = cluster.redis.session().unwrap();
    assert_eq!(
        admin
            .command(&["CONFIG", "SET", "requirepass", "hold-the-door"])
            .unwrap(),
        "+OK"
    );
    let b_pid = cluster.nodes[1].proc.pid();
    let dropped = cluster.redis.drop_connections_of(&mut admin, b_pid);
    assert!(dropped > 0, "B had no connection to Redis");
    people.get(bob).expect_line_within(LINK_LOST, CLUSTER_WAIT);

    // alice speaks meanwhile; carol, on A, hears it back from Redis, so it
    // is in the room's stream.
    for n in 0..MISSED {
        people.get(alice).send(&format!("missed {n}"));
    }
    for n in 0..MISSED {
        people.get(carol).expect_line(&format!("<alice> missed {n}"));
    }
    assert_eq!(
        admin.command(&["CONFIG", "SET", "requirepass", ""]).unwrap(),
        "+OK"
    );

    // B reconnects, reads what it missed from the stream and delivers it,
    // once and in order, then says the link is back.
    for n in 0..MISSED {
        people
            .get(bob)
            .expect_line_within(&format!("<alice> missed {n}"), CLUSTER_WAIT);
    }
    people.get(bob).expect_line(LINK_RESTORED);
    people.get(bob).send("back");
    people.get(alice).expect_line("<bob> back");
    people.get(carol).expect_line("<bob> back");
    people.get(alice).send("welcome back");
    people.get(bob).expect_line("<alice> welcome back");
}

#[test]
fn a_user_whose_nick_claim_was_lost_becomes_a_guest_and_is_told() {
    let cluster = Cluster::start(2);
    let mut people = People::default();
    let alice = people.arrive(cluster.addr(0), "alice");
    let bob = people.arrive(cluster.addr(1), "bob");
    // Someone else holds alice's nick now (as after an outage in which
    // two users took it): the claim key README documents.
    let mut admin = cluster.redis.session().unwrap();
    assert_eq!(
        admin
            .command(&["SET", "chat:nick:alice", "another-instance"])
            .unwrap(),
        "+OK"
    );
    // A's next refresh (every third of the 3 s expiry) finds it.
    people
        .get(alice)
        .expect_line_within("!! nick alice is already in use", CLUSTER_WAIT);
    let line = people.get(alice).read_line();
    let guest = line
        .strip_prefix("-- you are now known as ")
        .filter(|nick| chat_tests::parse_welcome(&chat_tests::welcome_line(nick)).is_some())
        .unwrap_or_else(|| panic!("alice expected to become a guest, got {line:?}"))
        .to_string();
    people
        .get(bob)
        .expect_line(&format!("-- alice is now known as {guest}"));
    expect_who(people.get(bob), &format!("-- 2 in #lobby: bob, {guest}"));
}

/// Senders of the burst test, all on one instance.
const BURST_SENDERS: usize = 4;

/// Lines each sends in one write: together more than an instance queues
/// for Redis at once, so the burst takes the link-lost path.
const BURST_LINES: usize = 6_000;

/// Reads chat lines from `client` until it has `total` lines of the
/// burst's senders (`<sK> K-N`), allowing the link's two notices between
/// them; checks each sender's lines come once each, in order, with no
/// gap. Returns how many link notices came.
#[track_caller]
fn read_burst(client: &mut Client, total: usize) -> (usize, usize) {
    let mut next = [0usize; BURST_SENDERS];
    let (mut lost, mut restored) = (0, 0);
    let mut got = 0;
    // Every line read is one of the total or a notice, and notices are
    // few: the bound only stops a server that sends them forever.
    for _ in 0..total + 100 {
        if got == total {
            break;
        }
        let line = client.read_line_within(CLUSTER_WAIT);
        if line == LINK_LOST {
            lost += 1;
            continue;
        }
        if line == LINK_RESTORED {
            restored += 1;
            continue;
        }
        let parsed = line.strip_prefix("<s").and_then(|rest| {
            let (sender, text) = rest.split_once("> ")?;
            let sender: usize = sender.parse().ok()?;
            let (tag, n) = text.split_once('-')?;
            (tag == sender.to_string()).then_some(())?;
            Some((sender, n.parse::<usize>().ok()?))
        });
        let Some((sender, n)) = parsed.filter(|(sender, _)| *sender < BURST_SENDERS) else {
            panic!("{}: expected a line of the burst, got {line:?}", client.nick());
        };
        assert_eq!(
            n,
            next[sender],
            "{}: s{sender}'s line {n} came when {} was due",
            client.nick(),
            next[sender]
        );
        next[sender] += 1;
        got += 1;
    }
    assert_eq!(
        got,
        total,
        "{}: {lost} + {restored} link notices among the lines",
        client.nick()
    );
    (lost, restored)
}

#[test]
fn a_burst_past_the_queue_to_redis_loses_nothing_locally_and_the_link_comes_back() {
    let cluster = Cluster::start(2);
    let mut people = People::default();
    let senders: Vec<usize> = (0..BURST_SENDERS)
        .map(|i| people.arrive(cluster.addr(0), &format!("s{i}")))
        .collect();
    let reader = people.arrive(cluster.addr(0), "reader");
    let remote = people.arrive(cluster.addr(1), "remote");
    for &i in &senders {
        let burst: String = (0..BURST_LINES).map(|n| format!("{i}-{n}\n")).collect();
        people.get(i).send_raw(burst.as_bytes());
    }
    // Every line reaches the reader on the senders' instance, once, in
    // order, whether it went through Redis or, once the instance said the
    // link was lost, straight to its local users.
    let (lost, restored) = read_burst(people.get(reader), BURST_SENDERS * BURST_LINES);
    assert!(lost <= 1 && restored <= lost, "{lost} lost, {restored} restored");
    if lost > restored {
        people.get(reader).expect_line_within(LINK_RESTORED, CLUSTER_WAIT);
    }
    // Cross-instance chat works again: what B's user hears of the burst
    // (what went through Redis), once and in order, then what comes next.
    people.get(senders[0]).send("after the burst");
    let remote = people.get(remote);
    let mut next = [0usize; BURST_SENDERS];
    for _ in 0..=BURST_SENDERS * BURST_LINES {
        let line = remote.read_line_within(CLUSTER_WAIT);
        if line == "<s0> after the burst" {
            return;
        }
        // <sK> K-N, each sender's N rising (gaps allowed: lines said while
        // the link was down stay on their instance).
        let (sender, n) = line
            .strip_prefix("<s")
            .and_then(|rest| rest.split_once("> "))
            .and_then(|(k, text)| {
                Some((
                    k.parse::<usize>().ok()?,
                    text.split_once('-')?.1.parse::<usize>().ok()?,
                ))
            })
            .filter(|(k, _)| *k < BURST_SENDERS)
            .unwrap_or_else(|| panic!("remote read {line:?}"));
        assert!(
            n >= next[sender],
            "remote: s{sender}'s line {n} again or out of order"
        );
        next[sender] = n + 1;
    }
    panic!("remote did not hear s0 after the burst");
}

#[test]
fn the_environment_variable_turns_clustering_on_as_the_option_does() {
    let redis = TestRedis::start_with_password("env-secret-5");
    let a = start_node(&redis, &[]);
    // B is given the URL, password and all, in its environment only, as a
    // systemd drop-in would.
    let mut command = Daemon::command(&["--listen", "127.0.0.1:0", "--cluster-claim-ttl", "3"]);
    command.env("CHAT_SERVER_CLUSTER", redis.url());
    let mut b = Daemon::start_with(command, 1);
    wait_linked(&mut b);
    let mut people = People::default();
    let alice = people.arrive(a.addr(), "alice");
    let bob = people.arrive(b.addr(), "bob");
    people.get(bob).send("configured by the environment");
    people
        .get(alice)
        .expect_line("<bob> configured by the environment");
    let log = b.proc.stderr_lines().join("\n");
    assert!(!log.contains("env-secret-5"), "the password was logged:\n{log}");
}

#[test]
fn cluster_options_out_of_range_are_usage_errors_that_never_quote_a_password() {
    for (args, needle) in [
        (&["--cluster-claim-ttl", "1"][..], "--cluster-claim-ttl"),
        (&["--cluster-timeout", "99"][..], "--cluster-timeout"),
    ] {
        let mut all = vec!["--listen", "127.0.0.1:0", "--cluster", "redis://127.0.0.1:1"];
        all.extend_from_slice(args);
        let mut node = Proc::spawn("chat-server", Daemon::command(&all), "");
        node.expect_exit_code(2);
        let said = node.stderr_lines().join("\n");
        assert!(said.contains(needle), "{args:?}: {said}");
    }
    let mut node = Proc::spawn(
        "chat-server",
        Daemon::command(&[
            "--listen",
            "127.0.0.1:0",
            "--cluster",
            "redis://:pa55word@host:notaport",
        ]),
        "",
    );
    node.expect_exit_code(2);
    let said = node.stderr_lines().join("\n");
    assert!(said.contains("--cluster"), "{said}");
    assert!(!said.contains("pa55word"), "the password was printed: {said}");
}

/// Starts an instance clustered through `url` that must fail to start:
/// waits for it to exit 1 and returns everything it printed (stderr, then
/// stdout), for the tests of what it says and what it must not.
#[track_caller]
fn failed_start(url: &str) -> String {
    let mut node = Proc::spawn(
        "chat-server",
        node_command(url, &[]),
        "build it with `cargo build --workspace`",
    );
    node.expect_exit_code(1);
    format!(
        "{}\n{}",
        node.stderr_lines().join("\n"),
        node.stdout_lines().join("\n")
    )
}

#[test]
fn an_unreachable_redis_at_start_is_an_error_naming_it() {
    // A port nothing listens on.
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let said = failed_start(&url);
    assert!(
        said.contains(&format!("cluster: cannot reach Redis at {url}")),
        "stderr:\n{said}"
    );

    // With a password in the URL, it is not printed.
    let url = format!("redis://:hush-hush-42@127.0.0.1:{port}");
    let said = failed_start(&url);
    assert!(
        said.contains("cluster: cannot reach Redis at redis://"),
        "stderr:\n{said}"
    );
    assert!(
        !said.contains("hush-hush-42"),
        "the password was printed:\n{said}"
    );
}

/// An instance started with `--cluster-optional` against a Redis that
/// is not there yet (on a port that was free), and a guest on it.
fn alone_with_a_guest() -> (u16, Daemon, Client) {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let a = Daemon::start_with(node_command(&url, &["--cluster-optional"]), 1);
    let alice = Client::connect_guest(a.addr());
    (port, a, alice)
}

#[test]
fn cluster_optional_starts_without_redis_and_says_when_the_link_is_up() {
    let (port, _a, mut alice) = alone_with_a_guest();
    // A user who comes while the link is down is told so after the
    // welcome, as those already there were when it went; and it serves: a
    // command is answered.
    alice.expect_line(LINK_LOST);
    alice.send("/dance");
    alice.expect_line("!! unknown command /dance; type /help for the list");
    // Redis comes: alice is told the link is up, as after any outage.
    let _redis = TestRedis::start_on(port);
    alice.expect_line_within(LINK_RESTORED, CLUSTER_WAIT);
}

#[test]
fn an_instance_that_started_alone_shares_nicks_once_linked() {
    let (port, mut a, mut alice) = alone_with_a_guest();
    let alice_guest = alice.nick().to_string();
    let redis = TestRedis::start_on(port);
    wait_linked(&mut a);
    // A guest of another instance gets a nick of its own, not the one
    // alice was given while A was alone, and a welcome like any other.
    let b = start_node(&redis, &[]);
    let mut guest = Client::connect_guest(b.addr());
    let guest_nick = guest.nick().to_string();
    assert!(
        !guest_nick.eq_ignore_ascii_case(&alice_guest),
        "B welcomed its guest as {guest_nick}, the nick A gave alice"
    );
    // Whatever A told alice about the link (see the test above) comes
    // before this.
    expect_line_after(
        &mut alice,
        &format!("-- {guest_nick} joined #lobby"),
        &[LINK_LOST, LINK_RESTORED],
        CLUSTER_WAIT,
    );
    guest.rename("bob");
    alice.expect_line(&format!("-- {guest_nick} is now known as bob"));
    alice.rename("alice");
    guest.expect_line(&format!("-- {alice_guest} is now known as alice"));
    guest.send("/nick alice");
    guest.expect_line("!! nick alice is already in use");
    guest.send("found you");
    alice.expect_line("<bob> found you");
    expect_who(&mut guest, "-- 2 in #lobby: alice, bob");
}

#[test]
fn a_wrong_password_is_an_error_that_does_not_print_it() {
    let redis = TestRedis::start_with_password("right-pw-7");
    let wrong = redis.url_with_password("wrong-pw-9");
    let said = failed_start(&wrong);
    assert!(
        said.contains("cluster: Redis refused the password"),
        "stderr:\n{said}"
    );
    assert!(!said.contains("wrong-pw-9"), "the password was printed:\n{said}");

    // The right one works, and is not logged either.
    let a = start_node(&redis, &[]);
    let b = start_node(&redis, &[]);
    let mut alice = Client::connect_named(a.addr(), "alice");
    let mut bob = Client::connect_named(b.addr(), "bob");
    bob.send("/join den");
    bob.expect_line("-- you joined #den");
    alice.send("/msg bob behind a password");
    bob.expect_line("*alice* behind a password");
    for node in [&a, &b] {
        let log = node.proc.stderr_lines().join("\n");
        assert!(!log.contains("right-pw-7"), "the password was logged:\n{log}");
    }
}
