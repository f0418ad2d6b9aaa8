//! Room history and topics, over loopback: what a room remembers is
//! replayed to whoever joins it, outlives its members, and stays within
//! its memory budget however many rooms are created.
//!
//! Replayed lines carry the time they were said; the tests read them with
//! `ServerLine::parse`, as a program would, and check who said what, in
//! order, and that the time is a real UTC time of today's run.

use chat_protocol::history::parse_time;
use chat_protocol::ServerLine;
use chat_tests::{http_get, loopback_any_port, sample, Client, Config, TestServer};

/// A server with room for the clients a test opens from one address.
fn server(config: Config) -> TestServer {
    TestServer::start(Config {
        max_per_ip: 0,
        max_per_net: 0,
        connect_rate: 0,
        ..config
    })
}

/// The defaults, but where no one hears of the others coming and going
/// (rooms of more than one are quiet), so each client reads only what a
/// test is about.
fn quiet() -> Config {
    Config {
        quiet_above: 1,
        ..Config::default()
    }
}

/// The next line, which must be a replayed one: (who, what, action).
#[track_caller]
fn replayed(client: &mut Client) -> (String, String, bool) {
    let line = client.read_line();
    match ServerLine::parse(&line) {
        Ok(ServerLine::Replayed {
            at,
            from,
            text,
            action,
        }) => {
            let millis = parse_time(&at).unwrap_or_else(|| panic!("not a time: {at:?} in {line:?}"));
            let now = chat_server::chat::hub::system_clock();
            assert!(
                millis <= now && now - millis < 600_000,
                "said at {at}, now {now} ms"
            );
            (from, text, action)
        }
        other => panic!("expected a replayed line, got {line:?} ({other:?})"),
    }
}

fn said(from: &str, text: &str) -> (String, String, bool) {
    (from.to_string(), text.to_string(), false)
}

#[test]
fn joining_a_room_replays_its_last_lines_oldest_first_with_their_time() {
    let server = server(Config { replay: 3, ..quiet() });
    let mut alice = server.connect_named("alice");
    alice.send("/join rust");
    alice.expect_line("-- you joined #rust");
    for i in 1..=4 {
        alice.send(&format!("line {i}"));
    }
    alice.send("/me waves");
    // The hub takes alice's lines in order: once /who is answered, all of
    // them are in the history before bob joins (bob's join comes by
    // another connection, which may reach the hub first otherwise).
    alice.send("/who");
    alice.expect_line("-- 1 in #rust: @alice");
    let mut bob = server.connect_named("bob");
    bob.send("/join rust");
    bob.expect_line("-- you joined #rust");
    assert_eq!(replayed(&mut bob), said("alice", "line 3"));
    assert_eq!(replayed(&mut bob), said("alice", "line 4"));
    assert_eq!(replayed(&mut bob), ("alice".into(), "waves".into(), true));
    // What is said from now on is live, and kept too.
    alice.send("live");
    bob.expect_line("<alice> live");
    bob.send("/history 10");
    let kept: Vec<_> = (0..6).map(|_| replayed(&mut bob)).collect();
    assert_eq!(kept.first(), Some(&said("alice", "line 1")));
    assert_eq!(kept.last(), Some(&said("alice", "live")));
}

#[test]
fn an_emptied_room_keeps_its_history_for_whoever_comes_back() {
    let server = server(quiet());
    let mut alice = server.connect_named("alice");
    alice.send("/join ops");
    alice.expect_line("-- you joined #ops");
    alice.send("deploy done, going home");
    alice.send("/quit");
    alice.expect_line("-- bye");
    alice.expect_eof();
    // #ops is empty now; it is not listed, but it remembers.
    let mut bob = server.connect_named("bob");
    bob.send("/rooms");
    bob.expect_line("-- 1 room: #lobby (1)");
    bob.send("/join ops");
    bob.expect_line("-- you joined #ops");
    assert_eq!(replayed(&mut bob), said("alice", "deploy done, going home"));
    bob.send("/history");
    assert_eq!(replayed(&mut bob), said("alice", "deploy done, going home"));
}

#[test]
fn the_lobby_replays_its_last_lines_after_the_welcome() {
    let server = server(quiet());
    let mut alice = server.connect_named("alice");
    alice.send("anyone here?");
    // The hub takes alice's lines in order: once /who is answered, her
    // line is in the lobby's history before bob arrives.
    alice.send("/who");
    alice.expect_line("-- 1 in #lobby: alice");
    let mut bob = Client::connect_guest(server.addr());
    assert_eq!(replayed(&mut bob), said("alice", "anyone here?"));
    bob.send("/who");
    bob.expect_line(&format!("-- 2 in #lobby: alice, {}", bob.nick()));
}

#[test]
fn private_messages_are_never_kept() {
    let server = server(quiet());
    let mut alice = server.connect_named("alice");
    let mut bob = server.connect_named("bob");
    alice.send("/msg bob a secret");
    bob.expect_line("*alice* a secret");
    alice.expect_line("-> *bob* a secret");
    bob.send("/history");
    bob.expect_line("-- no earlier lines in #lobby");
}

#[test]
fn with_history_off_nothing_is_replayed_and_an_empty_room_is_gone() {
    let server = server(Config {
        history: 0,
        ..quiet()
    });
    let mut alice = server.connect_named("alice");
    alice.send("/join ops");
    alice.expect_line("-- you joined #ops");
    alice.send("nobody will remember this");
    alice.send("/join lobby");
    alice.expect_line("-- you joined #lobby");
    let mut bob = server.connect_named("bob");
    bob.send("/join ops");
    bob.expect_line("-- you joined #ops");
    bob.send("/history");
    bob.expect_line("-- no earlier lines in #ops");
}

#[test]
fn a_topic_is_shown_on_joining_and_announced_when_set() {
    let server = server(Config::default());
    let [mut alice, mut bob] = server.clients(["alice", "bob"]);
    alice.send("/topic");
    alice.expect_line("-- #lobby has no topic");
    alice.send("/topic release on Friday");
    let set = "-- alice set the topic of #lobby: release on Friday";
    alice.expect_line(set);
    bob.expect_line(set);
    // Someone joining later sees it right after the welcome, before what
    // was said.
    let mut carol = Client::connect_guest(server.addr());
    let topic = carol.read_line();
    assert!(
        topic.starts_with("-- topic of #lobby: release on Friday (set by alice at 20")
            && topic.ends_with("Z)"),
        "{topic}"
    );
}

/// The history budget of the room-creation loop: small, so the loop passes
/// it many times over.
const BUDGET: usize = 64 * 1024;

/// Rooms the loop creates, a line each.
const LOOP_ROOMS: usize = 2_000;

#[test]
fn creating_rooms_in_a_loop_stays_within_the_history_budget() {
    let mut server = server(Config {
        history_bytes: BUDGET,
        metrics_listen: Some(loopback_any_port()),
        // Two lines a room, four thousand in all: not what flood control
        // is being tested for here.
        rate: 0,
        ..quiet()
    });
    let mut looper = server.connect_named("looper");
    let text = "x".repeat(200);
    for n in 0..LOOP_ROOMS {
        looper.send(&format!("/join loop{n}"));
        looper.expect_line(&format!("-- you joined #loop{n}"));
        looper.send(&text);
    }
    looper.send("/join lobby");
    looper.expect_line("-- you joined #lobby");
    server.settle();
    let metrics = http_get(server.metrics_addr(), "/metrics").body;
    let used = sample(&metrics, "chat_history_bytes");
    let kept_rooms = sample(&metrics, "chat_history_empty_rooms");
    assert!(
        used <= BUDGET as f64,
        "{used} bytes of history for a budget of {BUDGET}"
    );
    assert!(
        kept_rooms > 10.0 && kept_rooms < 200.0,
        "{kept_rooms} empty rooms kept of {LOOP_ROOMS}"
    );
    // The rooms used least recently are gone; the last ones remember.
    let mut bob = server.connect_named("bob");
    bob.send("/join loop0");
    bob.expect_line("-- you joined #loop0");
    bob.send("/history");
    bob.expect_line("-- no earlier lines in #loop0");
    bob.send(&format!("/join loop{}", LOOP_ROOMS - 1));
    bob.expect_line(&format!("-- you joined #loop{}", LOOP_ROOMS - 1));
    assert_eq!(replayed(&mut bob), said("looper", &text));
}
