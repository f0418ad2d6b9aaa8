//! The cluster's smoke test: one Redis of the test's own and two
//! instances of the server using it; a line, a private message, a nick,
//! a room's topic, a WHOIS and a room's WHO cross between them. The full
//! suite (faults, ordering, races) is tests/tests/cluster.rs.
//!
//! Needs `redis-server` (Debian's package; scripts/test installs it).

use std::time::Duration;

use chat_server::cluster::{RedisUrl, Settings};
use chat_server::Config;
use chat_tests::irc::{command, IrcClient};
use chat_tests::redis::{TestRedis, CLAIM_TTL_SECS, CLUSTER_TIMEOUT_MS};
use chat_tests::{loopback_any_port, Client, TestServer};

/// An instance in the cluster on `redis`, with the short timings the
/// tests use.
fn instance(redis: &TestRedis) -> TestServer {
    instance_with(redis, Config::default())
}

/// An instance in the cluster on `redis`, configured as `config` but for
/// the cluster.
fn instance_with(redis: &TestRedis, config: Config) -> TestServer {
    TestServer::start(Config {
        cluster: Some(Settings {
            claim_ttl: Duration::from_secs(CLAIM_TTL_SECS),
            timeout: Duration::from_millis(CLUSTER_TIMEOUT_MS),
            ..Settings::new(RedisUrl::parse(&redis.url()).expect("a valid URL"))
        }),
        ..config
    })
}

/// Reads an IRC client's lines up to the end of a WHOIS (318), bounded.
#[track_caller]
fn whois_reply(client: &mut IrcClient) -> Vec<String> {
    let mut lines = Vec::new();
    for _ in 0..20 {
        let line = client.read_line();
        let end = command(&line) == "318";
        lines.push(line);
        if end {
            return lines;
        }
    }
    panic!("no end of WHOIS in {lines:?}");
}

/// Reads an IRC client's lines up to the end of a WHO (315), bounded.
#[track_caller]
fn who_reply(client: &mut IrcClient) -> Vec<String> {
    let mut lines = Vec::new();
    for _ in 0..20 {
        let line = client.read_line();
        let end = command(&line) == "315";
        lines.push(line);
        if end {
            return lines;
        }
    }
    panic!("no end of WHO in {lines:?}");
}

#[test]
fn a_line_a_private_message_and_a_nick_cross_between_two_instances() {
    let redis = TestRedis::start();
    let one = instance(&redis);
    let two = instance(&redis);
    let mut alice = Client::connect_named(one.addr(), "alice");
    let mut bob = Client::connect_named(two.addr(), "bob");

    // A room line said on one instance reaches a member on the other.
    alice.send("hello from one");
    bob.expect_line("<alice> hello from one");

    // So does a private message, as a local one reads.
    bob.send("/msg alice psst");
    bob.expect_line("-> *alice* psst");
    alice.read_until("*bob* psst", 4);

    // A nick held on one instance is refused on the other, as a local one.
    bob.send("/nick ALICE");
    bob.expect_line("!! nick ALICE is already in use");
}

#[test]
fn a_topic_set_on_one_instance_is_shown_on_another_to_those_who_join_later() {
    let redis = TestRedis::start();
    let one = instance(&redis);
    let two = instance(&redis);
    let mut alice = Client::connect_named(one.addr(), "alice");
    alice.send("/join #r");
    alice.expect_line("-- you joined #r");
    alice.send("/topic release on Friday");
    alice.expect_line("-- alice set the topic of #r: release on Friday");
    alice.send("/topic");
    let shown = alice.read_line();
    assert!(
        shown.starts_with("-- topic of #r: release on Friday (set by alice at "),
        "{shown:?}"
    );

    // No one on two was in #r when it was set: two reads it from Redis.
    let mut bob = Client::connect_named(two.addr(), "bob");
    bob.send("/join #r");
    bob.expect_lines(&["-- you joined #r", &shown]);
    bob.send("/topic");
    bob.expect_line(&shown);

    // It outlives the instances that knew it: a new instance, with the
    // first two stopped, shows it too.
    drop((alice, bob));
    one.stop().expect("one stops cleanly");
    two.stop().expect("two stops cleanly");
    let three = instance(&redis);
    let mut carol = Client::connect_named(three.addr(), "carol");
    carol.send("/join #r");
    carol.expect_lines(&["-- you joined #r", &shown]);
}

/// A Redis, instance one with alice in `#r`, and instance two with an IRC
/// listener (server name `irc.test`): for the IRC lists across instances.
/// Everything is returned to be kept alive for the test.
fn alice_in_r_and_an_irc_instance() -> (TestRedis, TestServer, TestServer, Client) {
    let redis = TestRedis::start();
    let one = instance(&redis);
    let two = instance_with(
        &redis,
        Config {
            irc_listen: vec![loopback_any_port()],
            server_name: "irc.test".to_string(),
            ..Config::default()
        },
    );
    let mut alice = Client::connect_named(one.addr(), "alice");
    alice.send("/join #r");
    alice.expect_line("-- you joined #r");
    (redis, one, two, alice)
}

#[test]
fn whois_of_a_user_on_another_instance_says_where_they_are_and_their_rooms() {
    let (_redis, _one, two, _alice) = alice_in_r_and_an_irc_instance();

    let mut ircy = IrcClient::registered(two.irc_addr(), "ircy");
    ircy.send("WHOIS alice");
    assert_eq!(
        whois_reply(&mut ircy),
        [
            ":irc.test 311 ircy alice * chat-server * :on another server of this cluster",
            ":irc.test 319 ircy alice :#r",
            ":irc.test 312 ircy alice * :on another server of this cluster",
            ":irc.test 318 ircy alice :End of /WHOIS list",
        ]
    );
    // A nick no instance has is still no such nick.
    ircy.send("WHOIS nobody");
    assert_eq!(
        whois_reply(&mut ircy),
        [
            ":irc.test 401 ircy nobody :No such nick/channel",
            ":irc.test 318 ircy nobody :End of /WHOIS list",
        ]
    );
}

#[test]
fn irc_who_of_a_room_lists_its_members_on_every_instance() {
    let (_redis, _one, two, _alice) = alice_in_r_and_an_irc_instance();

    let mut ircy = IrcClient::registered(two.irc_addr(), "ircy");
    ircy.join("#r");
    ircy.send("WHO #r");
    // alice opened #r, on the other instance: ircy is not its operator
    // (the first member in the whole cluster is), and alice's `@` stays
    // with her instance.
    assert_eq!(
        who_reply(&mut ircy),
        [
            ":irc.test 352 ircy #r * chat-server * alice H :0 on another server of this cluster",
            ":irc.test 352 ircy #r ircy chat-server irc.test ircy H :0 ircy the tester",
            ":irc.test 315 ircy #r :End of /WHO list",
        ]
    );
}
