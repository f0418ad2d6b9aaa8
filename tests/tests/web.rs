//! The web listener over loopback, against the server library, with a raw
//! WebSocket client (`chat_tests::web::WsClient`) that writes frames by
//! hand, well-formed or not: what a browser test cannot reach. A WebSocket
//! user and a line user in one room; the page's files and their headers;
//! the `Origin` check, DNS rebinding included; handshakes as browsers and
//! programs write them; framing (the line limit, continuation frames, a
//! frame in single bytes, binary messages, and protocol violations); the
//! HTTP limits; a WebSocket that stops reading; the keepalive; the ways a
//! WebSocket ends; the per-address limit, and places given back.
//!
//! The line users who watch a room are `chat_tests::Client`s: what they
//! read is what `nc` shows.
//!
//! Every server here has no history, so that a welcome is one line and a
//! join replays nothing, and no connect throttle, so that a test may open
//! as many connections as it needs from 127.0.0.1.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use chat_server::config::Keepalive;
use chat_server::frontend::web::origin::Origin;
use chat_tests::slow_reader::{
    bulk_line, connect_socket, read_to_end, talk_until_dropped, Talk, SMALL_SENDQ,
};
use chat_tests::web::{
    client_frame, close_status, opcode, parse_frames, upgrade_request, upgrade_request_to_host, Frame,
    WsClient,
};
use chat_tests::{http_exchange, loopback_any_port, welcome_line, Client, Config, TestServer, TIMEOUT};

/// The Content-Security-Policy every answer of the web listener carries,
/// written out here rather than taken from the server, so that a change to
/// it is a change a test sees.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// A message that would run as script if a page put it in as HTML.
const INJECTION: &str = "<img src=x onerror=alert(1)>";

/// The configuration of every test's server: a web listener on a free
/// loopback port besides the line listener, no history, no connect
/// throttle.
fn config() -> Config {
    Config {
        web_listen: vec![loopback_any_port()],
        history: 0,
        replay: 0,
        connect_rate: 0,
        ..Config::default()
    }
}

/// A WebSocket guest in the lobby; `watchers` read (and check) the notice
/// of its arrival.
#[track_caller]
fn web_guest(server: &TestServer, watchers: &mut [&mut Client]) -> WsClient {
    let user = WsClient::connect_guest(server.web_addr());
    for watcher in watchers.iter_mut() {
        watcher.expect_line(&format!("-- {} joined #lobby", user.nick()));
    }
    user
}

/// A WebSocket user called `nick` in the lobby; `watchers` read (and
/// check) the notices of its arrival and its new nick.
#[track_caller]
fn web_user(server: &TestServer, nick: &str, watchers: &mut [&mut Client]) -> WsClient {
    let mut user = web_guest(server, watchers);
    let guest = user.nick().to_string();
    user.rename(nick);
    for watcher in watchers.iter_mut() {
        watcher.expect_line(&format!("-- {guest} is now known as {nick}"));
    }
    user
}

/// Checks that `frames` (all the server sent before it closed) are the
/// text lines `lines`, then a Close frame with `status`.
#[track_caller]
fn assert_lines_then_close(frames: &[Frame], lines: &[&str], status: u16) {
    let texts: Vec<String> = frames
        .iter()
        .take_while(|f| f.opcode == opcode::TEXT)
        .map(|f| String::from_utf8_lossy(&f.payload).into_owned())
        .collect();
    assert_eq!(
        texts, lines,
        "the last lines before the close; all frames: {frames:?}"
    );
    let rest = frames.get(texts.len()..).unwrap_or_default();
    assert_eq!(
        rest.len(),
        1,
        "one Close frame after the lines, then the end: {frames:?}"
    );
    assert_eq!(
        close_status(&rest[0]),
        Some(status),
        "the Close frame: {:?}",
        rest[0]
    );
}

// ---------------------------------------------------------------------------
// 1. A browser user and an nc user.

#[test]
fn a_websocket_user_and_a_line_user_see_each_other_in_both_directions() {
    let server = TestServer::start(config());
    let mut alice = server.connect_named("alice");
    let mut bob = web_user(&server, "bob", &mut [&mut alice]);
    bob.send("hello from the browser");
    alice.expect_line("<bob> hello from the browser");
    alice.send("hello from nc");
    bob.expect_line("<alice> hello from nc");
    // Into another room, and the injection string both ways, as it was
    // typed: escaping it is the page's job, never the server's.
    bob.send("/join rust");
    bob.expect_line("-- you joined #rust");
    alice.expect_line("-- bob left #lobby (moved to #rust)");
    alice.send("/join rust");
    alice.expect_line("-- you joined #rust");
    bob.expect_line("-- alice joined #rust");
    bob.send(INJECTION);
    alice.expect_line(&format!("<bob> {INJECTION}"));
    alice.send(INJECTION);
    let frame = bob.read_frame();
    assert_eq!(
        (frame.opcode, frame.fin, frame.payload),
        (opcode::TEXT, true, format!("<alice> {INJECTION}").into_bytes()),
        "one text frame holding the line byte for byte"
    );
    // Commands work as on TCP, with the same answers.
    bob.send("/who");
    bob.expect_line("-- 2 in #rust: alice, @bob");
}

// ---------------------------------------------------------------------------
// 2. The page.

/// An HTTP/1.1 request for `path` that does not ask the server to close:
/// it closes anyway, once it has answered.
fn request(method: &str, path: &str, addr: SocketAddr) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n")
}

#[test]
fn the_page_and_its_files_are_served_with_their_types_and_security_headers() {
    let server = TestServer::start(config());
    let addr = server.web_addr();
    let files = [
        (
            "/",
            "text/html; charset=utf-8",
            "<script src=\"/app.js\" defer></script>",
        ),
        ("/app.js", "text/javascript; charset=utf-8", "WebSocket"),
        ("/style.css", "text/css; charset=utf-8", "prefers-color-scheme"),
        (
            "/icon.svg",
            "image/svg+xml",
            "<svg xmlns=\"http://www.w3.org/2000/svg\"",
        ),
    ];
    for (path, content_type, excerpt) in files {
        // http_exchange reads to the end of the stream: the server closes
        // after its answer though the request did not ask it to.
        let answer = http_exchange(addr, &request("GET", path, addr));
        assert_eq!(answer.status, 200, "GET {path}: {answer:?}");
        assert_eq!(answer.header("content-type"), Some(content_type), "GET {path}");
        assert_eq!(
            answer.header("content-security-policy"),
            Some(CONTENT_SECURITY_POLICY),
            "GET {path}"
        );
        assert_eq!(
            answer.header("x-content-type-options"),
            Some("nosniff"),
            "GET {path}"
        );
        assert_eq!(answer.header("x-frame-options"), Some("DENY"), "GET {path}");
        assert_eq!(answer.header("connection"), Some("close"), "GET {path}");
        let length = answer.body.len().to_string();
        assert_eq!(
            answer.header("content-length"),
            Some(length.as_str()),
            "GET {path}"
        );
        assert!(
            answer.body.contains(excerpt),
            "GET {path}: no {excerpt:?} in the body"
        );
        // HEAD: the same head, and no body.
        let head = http_exchange(addr, &request("HEAD", path, addr));
        assert_eq!(head.status, 200, "HEAD {path}");
        assert_eq!(head.header("content-type"), Some(content_type), "HEAD {path}");
        assert_eq!(
            head.header("content-length"),
            Some(length.as_str()),
            "HEAD {path}"
        );
        assert_eq!(head.body, "", "HEAD {path} has no body");
    }
}

#[test]
fn anything_else_is_refused_with_its_status_and_closed() {
    let server = TestServer::start(config());
    let addr = server.web_addr();
    let cases = [
        (request("GET", "/nope", addr), 404, "not found\n"),
        (request("GET", "/../Cargo.toml", addr), 404, "not found\n"),
        (
            request("POST", "/", addr),
            405,
            "only GET and HEAD are served here\n",
        ),
        (
            request("GET", "/ws", addr),
            426,
            "this is the chat's WebSocket endpoint: connect with a WebSocket client\n",
        ),
    ];
    for (request, status, body) in cases {
        let answer = http_exchange(addr, &request);
        assert_eq!(answer.status, status, "{request:?}: {answer:?}");
        assert_eq!(answer.body, body, "{request:?}");
        assert_eq!(
            answer.header("content-security-policy"),
            Some(CONTENT_SECURITY_POLICY),
            "{request:?}"
        );
        assert_eq!(answer.header("connection"), Some("close"), "{request:?}");
        match status {
            405 => assert_eq!(answer.header("allow"), Some("GET, HEAD")),
            426 => assert_eq!(answer.header("upgrade"), Some("websocket")),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------
// 3. Origin.

/// What a refused upgrade reads: its status line and body, and that the
/// server closed the connection after them (with no frame, no welcome).
#[track_caller]
fn assert_refused(client: WsClient, status_line: &str, body: &str) {
    assert!(
        client
            .response
            .starts_with(&format!("HTTP/1.1 {status_line}\r\n")),
        "expected {status_line}, got {}",
        client.response
    );
    assert!(
        client
            .response
            .contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
        "{}",
        client.response
    );
    let mut stream = client.into_stream();
    let (rest, _) = read_to_end(&mut stream, 4096);
    assert_eq!(String::from_utf8_lossy(&rest), body, "all that follows the head");
}

#[test]
fn only_programs_the_pages_own_origin_and_allowed_origins_may_open_a_websocket() {
    let allowed = "https://chat.example.org";
    let server = TestServer::start(Config {
        web: chat_server::config::WebSettings {
            allow_origins: vec![Origin::parse(allowed).expect("an origin")],
            ..Default::default()
        },
        ..config()
    });
    let addr = server.web_addr();
    let port = addr.port();
    let mut alice = server.connect_named("alice");
    let mut guests = vec!["alice".to_string()];
    let mut open = Vec::new();
    let own = format!("http://127.0.0.1:{port}");
    let localhost = format!("http://localhost:{port}");
    let rebound = format!("rebind.example:{port}");
    let rebound_origin = format!("http://{rebound}");
    let other_port = format!("http://127.0.0.1:{}", port.wrapping_add(1).max(1));
    // (Host, Origin, allowed?)
    let cases: [(String, Option<&str>, bool); 7] = [
        // A program: no Origin at all.
        (addr.to_string(), None, true),
        // Another site's page.
        (addr.to_string(), Some("http://evil.example"), false),
        // The page's own origin, by address and as localhost.
        (addr.to_string(), Some(&own), true),
        (format!("localhost:{port}"), Some(&localhost), true),
        // An origin --web-allow-origin names, whatever the Host.
        (addr.to_string(), Some(allowed), true),
        // DNS rebinding: a hostile name made to resolve here; its page's
        // origin and Host agree, but the name is not this server's.
        (rebound.clone(), Some(&rebound_origin), false),
        // The server's own address on another port is another origin.
        (addr.to_string(), Some(&other_port), false),
    ];
    for (host, origin, ok) in &cases {
        let request = upgrade_request_to_host(host, *origin);
        let mut client = WsClient::try_upgrade(addr, &request);
        if *ok {
            assert!(
                client
                    .response
                    .starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
                "Origin {origin:?} with Host {host}: {}",
                client.response
            );
            let welcome = client.read_line();
            let guest = chat_tests::parse_welcome(&welcome)
                .unwrap_or_else(|| panic!("Origin {origin:?}: no welcome but {welcome:?}"))
                .to_string();
            alice.expect_line(&format!("-- {guest} joined #lobby"));
            guests.push(guest);
            // Kept open to the end, so /who below counts it.
            open.push(client);
        } else {
            let origin = origin.unwrap_or_default();
            assert_refused(
                client,
                "403 Forbidden",
                &format!(
                    "a page from {origin} may not connect here (allow it with --web-allow-origin {origin})\n"
                ),
            );
        }
    }
    // A sandboxed frame or a file says `null`: not an origin at all.
    let null = WsClient::try_upgrade(addr, &upgrade_request(addr, Some("null")));
    assert_refused(
        null,
        "403 Forbidden",
        "the origin \"null\" is not one this server can allow\n",
    );
    // The refused ones never reached the chat: the room heard of no one
    // else, and holds only those let in.
    guests.sort_by_key(|nick| nick.to_lowercase());
    alice.send("/who");
    alice.expect_line(&format!("-- {} in #lobby: {}", guests.len(), guests.join(", ")));
    assert_eq!(open.len(), 4);
}

#[test]
fn handshakes_as_browsers_and_programs_write_them_are_answered() {
    let server = TestServer::start(config());
    let addr = server.web_addr();
    let mut alice = server.connect_named("alice");
    // Firefox: `Connection: keep-alive, Upgrade`; header names in any
    // case; a query string on the path.
    let firefox = format!(
        "GET /ws?room=rust HTTP/1.1\r\nhost: {addr}\r\nUser-Agent: test\r\nconnection: keep-alive, Upgrade\r\n\
         upgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: {}\r\n\
         Origin: http://{addr}\r\n\r\n",
        chat_tests::web::SAMPLE_KEY
    );
    let mut browser = WsClient::try_upgrade(addr, &firefox);
    assert!(
        browser.response.starts_with("HTTP/1.1 101 "),
        "{}",
        browser.response
    );
    assert!(
        browser.response.contains(&format!(
            "\r\nSec-WebSocket-Accept: {}\r\n",
            chat_tests::web::SAMPLE_ACCEPT
        )),
        "{}",
        browser.response
    );
    let welcome = browser.read_line();
    let guest = chat_tests::parse_welcome(&welcome)
        .expect("a welcome")
        .to_string();
    alice.expect_line(&format!("-- {guest} joined #lobby"));
    // A program that sends its first frames with the request, without
    // waiting for the answer: they are read after the upgrade.
    let mut eager = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    let mut bytes = upgrade_request(addr, None).into_bytes();
    bytes.extend(client_frame(opcode::TEXT, true, b"/nick eager"));
    bytes.extend(client_frame(opcode::TEXT, true, b"here already"));
    eager.write_all(&bytes).expect("send");
    let mut eager = WsClient::upgrade_on(eager, "");
    assert!(eager.response.starts_with("HTTP/1.1 101 "), "{}", eager.response);
    let welcome = eager.read_line();
    let guest = chat_tests::parse_welcome(&welcome)
        .expect("a welcome")
        .to_string();
    eager.expect_line("-- you are now known as eager");
    alice.expect_line(&format!("-- {guest} joined #lobby"));
    alice.expect_line(&format!("-- {guest} is now known as eager"));
    alice.expect_line("<eager> here already");
    // Another version of the protocol, and HTTP/1.0: 426, saying which
    // version is spoken.
    let old_version = upgrade_request(addr, None).replace("Version: 13", "Version: 8");
    let http10 = upgrade_request(addr, None).replace("HTTP/1.1", "HTTP/1.0");
    for request in [old_version, http10] {
        let answer = http_exchange(addr, &request);
        assert_eq!(answer.status, 426, "{request:?}: {answer:?}");
        assert_eq!(answer.header("sec-websocket-version"), Some("13"), "{request:?}");
    }
}

/// Runs `attempt` until the server admits it (it gives `Some`), or fails
/// after [`TIMEOUT`]: for a connection from an address whose one place
/// the server is still giving back. `attempt` returns `None` on a 503.
/// Returns what it gave and how many times it was refused.
#[track_caller]
fn once_admitted<T>(what: &str, mut attempt: impl FnMut() -> Option<T>) -> (T, usize) {
    let deadline = std::time::Instant::now() + TIMEOUT;
    for refused in 0.. {
        if let Some(admitted) = attempt() {
            return (admitted, refused);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: still refused after {TIMEOUT:?}: the place of an earlier connection was never given back"
        );
    }
    unreachable!("the loop ends by returning or failing");
}

#[test]
fn page_loads_and_websockets_give_their_place_back_when_they_end() {
    let server = TestServer::start(Config {
        max_per_ip: 1,
        ..config()
    });
    let addr = server.web_addr();
    // The watcher comes from another loopback address, with its own place.
    let mut alice = Client::from_stream(chat_tests::connect_from(server.addr(), [127, 0, 0, 2].into()));
    let welcome = alice.read_line();
    assert!(chat_tests::parse_welcome(&welcome).is_some(), "{welcome:?}");
    // More page loads than the default limit of 32 from one address, one
    // after another. A connection the chat never heard of gives its place
    // back once the server has seen it closed, a moment after the client
    // has: until then the next one may be refused (503) and tries again.
    let mut refusals = 0;
    for load in 0..40 {
        let ((), refused) = once_admitted(&format!("page load {load}"), || {
            let answer = http_exchange(addr, &request("GET", "/icon.svg", addr));
            match answer.status {
                200 => Some(()),
                503 => None,
                _ => panic!("page load {load}: {answer:?}"),
            }
        });
        refusals += refused;
    }
    eprintln!("40 page loads with one place: {refusals} refusals while a place was being given back");
    let (mut bob, _) = once_admitted("the first WebSocket", || {
        let client = WsClient::try_upgrade(addr, &upgrade_request(addr, None));
        (!client.response.starts_with("HTTP/1.1 503 ")).then_some(client)
    });
    assert!(bob.response.starts_with("HTTP/1.1 101 "), "{}", bob.response);
    let mut guest = chat_tests::parse_welcome(&bob.read_line())
        .expect("a welcome")
        .to_string();
    alice.expect_line(&format!("-- {guest} joined #lobby"));
    // A WebSocket user's place is given back by the time the room hears
    // it left (the hub frees it before it tells the room): the next one
    // is admitted at once.
    for _ in 0..3 {
        bob.send("/quit");
        assert_lines_then_close(&bob.read_until_closed(), &["-- bye"], 1000);
        alice.expect_line(&format!("-- {guest} left #lobby (quit)"));
        bob = WsClient::connect_guest(addr);
        alice.expect_line(&format!("-- {} joined #lobby", bob.nick()));
        guest = bob.nick().to_string();
    }
}

// ---------------------------------------------------------------------------
// 4. Framing.

/// The line limit of the framing tests: small, so that going over it is
/// cheap.
const MAX_LINE: usize = 64;

/// A server with the line limit [`MAX_LINE`], a line watcher and a
/// WebSocket user called bob.
fn framing_server() -> (TestServer, Client, WsClient) {
    let server = TestServer::start(Config {
        max_line: MAX_LINE,
        ..config()
    });
    let mut alice = server.connect_named("alice");
    let bob = web_user(&server, "bob", &mut [&mut alice]);
    (server, alice, bob)
}

#[test]
fn a_message_over_the_line_limit_is_refused_and_the_socket_stays_usable() {
    let (_server, mut alice, mut bob) = framing_server();
    let too_long = format!("!! message too long (max {MAX_LINE} bytes); discarded");
    let at_limit = "a".repeat(MAX_LINE);
    bob.send(&at_limit);
    alice.expect_line(&format!("<bob> {at_limit}"));
    // Past the room for a line end; many times over (a 16-bit length);
    // far over (a 64-bit length); over within a message sent in pieces.
    // (One or two bytes over: see the ignored test below.)
    for len in [MAX_LINE + 3, 1000, 70_000] {
        bob.send(&"b".repeat(len));
        let answer = bob.read_line();
        assert_eq!(answer, too_long, "a message of {len} bytes");
        bob.send(&format!("after {len} bytes"));
        alice.expect_line(&format!("<bob> after {len} bytes"));
    }
    let half = "c".repeat(MAX_LINE / 2 + 1);
    bob.send_raw(&client_frame(opcode::TEXT, false, half.as_bytes()));
    bob.send_raw(&client_frame(opcode::CONTINUATION, false, half.as_bytes()));
    bob.send_raw(&client_frame(opcode::CONTINUATION, true, half.as_bytes()));
    bob.expect_line(&too_long);
    // A line end at the end of the message does not count against the
    // limit.
    bob.send(&format!("{at_limit}\r\n"));
    alice.expect_line(&format!("<bob> {at_limit}"));
    bob.send("still here");
    alice.expect_line("<bob> still here");
}

#[test]
fn a_message_one_or_two_bytes_over_the_limit_is_answered_as_too_long_a_message() {
    let (_server, mut alice, mut bob) = framing_server();
    for len in [MAX_LINE + 1, MAX_LINE + 2] {
        bob.send(&"b".repeat(len));
        bob.expect_line(&format!("!! message too long (max {MAX_LINE} bytes); discarded"));
        bob.send(&format!("after {len} bytes"));
        alice.expect_line(&format!("<bob> after {len} bytes"));
    }
}

#[test]
fn a_message_in_continuation_frames_with_a_ping_between_them_is_said_whole() {
    let (_server, mut alice, mut bob) = framing_server();
    let frames = [
        client_frame(opcode::TEXT, false, b"hel"),
        client_frame(opcode::CONTINUATION, false, b"lo "),
        // A control frame may come between the pieces of a message.
        client_frame(opcode::PING, true, b"between"),
        client_frame(opcode::CONTINUATION, false, b""),
        client_frame(opcode::CONTINUATION, true, "w\u{f6}rld".as_bytes()),
    ];
    for frame in &frames {
        bob.send_raw(frame);
    }
    let pong = bob.read_frame();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (opcode::PONG, &b"between"[..])
    );
    alice.expect_line("<bob> hello w\u{f6}rld");
}

#[test]
fn a_frame_sent_a_byte_at_a_time_is_said_whole() {
    let (_server, mut alice, mut bob) = framing_server();
    // A multi-byte character, so that the bytes of one character come
    // apart too; and a 16-bit length, so that the header does.
    let line = format!("byte by byte \u{2713} {}", "d".repeat(100));
    let line = &line[..MAX_LINE - 2];
    let frame = client_frame(opcode::TEXT, true, line.as_bytes());
    // TCP_NODELAY is on: each write is its own segment.
    for byte in &frame {
        bob.send_raw(std::slice::from_ref(byte));
        bob.stream().flush().expect("flush");
    }
    alice.expect_line(&format!("<bob> {line}"));
    let long = client_frame(opcode::TEXT, true, "e".repeat(200).as_bytes());
    assert_eq!(long[1] & 0x7f, 126, "a frame with a 16-bit length");
    for byte in &long {
        bob.send_raw(std::slice::from_ref(byte));
    }
    bob.expect_line(&format!("!! message too long (max {MAX_LINE} bytes); discarded"));
    bob.send("and on");
    alice.expect_line("<bob> and on");
}

#[test]
fn a_message_holding_newlines_is_said_as_that_many_lines() {
    let (_server, mut alice, mut bob) = framing_server();
    bob.send("a\nb");
    alice.expect_line("<bob> a");
    alice.expect_line("<bob> b");
    // CRLF inside, and a trailing newline that only ends the last line;
    // a command among them is a command.
    bob.send("one\r\n/me waves\ntwo\n");
    alice.expect_lines(&["<bob> one", "* bob waves", "<bob> two"]);
    // An empty line between is ignored, as on TCP.
    bob.send("x\n\ny");
    alice.expect_lines(&["<bob> x", "<bob> y"]);
}

#[test]
fn a_binary_message_is_read_as_text_and_invalid_utf8_is_refused_for_that_line_only() {
    let (_server, mut alice, mut bob) = framing_server();
    bob.send_raw(&client_frame(opcode::BINARY, true, b"binary hello"));
    alice.expect_line("<bob> binary hello");
    bob.send_raw(&client_frame(opcode::TEXT, true, b"caf\xe9"));
    bob.expect_line("!! invalid UTF-8; line discarded");
    bob.send("caf\u{e9}");
    alice.expect_line("<bob> caf\u{e9}");
}

#[test]
fn a_protocol_violation_gets_close_1002_the_end_and_the_room_is_told() {
    let (server, mut alice, _bob) = framing_server();
    let mut reserved_bit = client_frame(opcode::TEXT, true, b"hi");
    reserved_bit[0] |= 0x40;
    let cases: [(&str, Vec<u8>); 5] = [
        ("an unmasked frame", vec![0x81, 0x02, b'h', b'i']),
        ("a reserved bit", reserved_bit),
        ("a reserved opcode", client_frame(0x3, true, b"x")),
        (
            "a continuation with no message",
            client_frame(opcode::CONTINUATION, true, b"x"),
        ),
        ("a ping too long", client_frame(opcode::PING, true, &[b'p'; 126])),
    ];
    for (what, bytes) in cases {
        let mut carol = web_guest(&server, &mut [&mut alice]);
        let nick = carol.nick().to_string();
        carol.send("before");
        alice.expect_line(&format!("<{nick}> before"));
        carol.send_raw(&bytes);
        let frames = carol.read_until_closed();
        assert_lines_then_close(&frames, &[], 1002);
        assert_eq!(
            frames[0].payload.get(2..),
            Some(&b"protocol error"[..]),
            "{what}: the reason"
        );
        alice.expect_line(&format!("-- {nick} left #lobby (disconnect)"));
    }
}

// ---------------------------------------------------------------------------
// 5. HTTP limits.

#[test]
fn a_request_that_never_finishes_is_answered_408_and_closed() {
    let server = TestServer::start(Config {
        web: chat_server::config::WebSettings {
            request_timeout: Duration::from_millis(300),
            ..Default::default()
        },
        ..config()
    });
    let addr = server.web_addr();
    // Half a request head, then nothing: http_exchange waits (up to
    // TIMEOUT) for the server's answer and its close. The three wait
    // side by side.
    thread::scope(|s| {
        for unfinished in [
            "GET / HTTP/1.1\r\nHost: x\r\n",
            "GET /ws HTTP/1.1\r\nUpgrade: web",
            "",
        ] {
            s.spawn(move || {
                let answer = http_exchange(addr, unfinished);
                assert_eq!(answer.status, 408, "{unfinished:?}: {answer:?}");
                assert_eq!(answer.body, "the request did not come in time\n");
                assert_eq!(answer.header("connection"), Some("close"));
            });
        }
    });
}

#[test]
fn a_request_head_over_8_kib_or_64_headers_is_answered_431_and_closed() {
    let server = TestServer::start(config());
    let addr = server.web_addr();
    let big = format!("X-Padding: {}\r\n", "p".repeat(9 * 1024));
    let many: String = (0..65).map(|i| format!("X-Header-{i}: x\r\n")).collect();
    let start = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n");
    // A head that never ends, a whole one that is too big, and one of too
    // many lines.
    for request in [
        format!("{start}{big}"),
        format!("{start}{big}\r\n"),
        format!("{start}{many}\r\n"),
    ] {
        let answer = http_exchange(addr, &request);
        assert_eq!(answer.status, 431, "{answer:?}");
        assert!(
            answer.body.ends_with('\n') && answer.body.lines().count() == 1,
            "one line saying why: {:?}",
            answer.body
        );
    }
    // Just under the limits is served.
    let fits: String = (0..60)
        .map(|i| format!("X-Header-{i}: {}\r\n", "p".repeat(100)))
        .collect();
    let answer = http_exchange(addr, &format!("{start}{fits}\r\n"));
    assert_eq!(answer.status, 200, "{:?}", answer.headers);
}

#[test]
fn a_431_says_the_request_head_was_too_large() {
    let server = TestServer::start(config());
    let addr = server.web_addr();
    let answer = http_exchange(
        addr,
        &format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nX-Padding: {}\r\n",
            "p".repeat(9 * 1024)
        ),
    );
    assert_eq!(answer.status, 431);
    assert_eq!(answer.body, "request head too large\n");
}

// ---------------------------------------------------------------------------
// 6. A WebSocket that stops reading.

/// A WebSocket connection to `addr` whose receive buffer is tiny, so that
/// what the server sends it backs up in the server's queue as soon as it
/// stops reading. Upgraded, and nothing read past the upgrade's answer.
#[track_caller]
fn tiny_window_websocket(addr: SocketAddr) -> WsClient {
    let stream = connect_socket(addr, None, Some(4096));
    let client = WsClient::upgrade_on(stream, &upgrade_request(addr, None));
    assert!(
        client.response.starts_with("HTTP/1.1 101 "),
        "{}",
        client.response
    );
    client
}

#[test]
fn a_websocket_that_stops_reading_is_dropped_and_the_others_miss_nothing() {
    let server = TestServer::start(Config {
        sendq: SMALL_SENDQ,
        rate: 0,
        ..config()
    });
    // alice talks over TCP, bob reads over a WebSocket, and the slow one
    // (a WebSocket too) reads nothing after its upgrade, not even the
    // welcome.
    let mut alice = server.connect_named("alice");
    let mut bob = web_user(&server, "bob", &mut [&mut alice]);
    let slow_client = tiny_window_websocket(server.web_addr());
    let joined = alice.read_line();
    let slow = joined
        .strip_prefix("-- ")
        .and_then(|rest| rest.strip_suffix(" joined #lobby"))
        .unwrap_or_else(|| panic!("expected the slow reader's join, got {joined:?}"))
        .to_string();
    bob.expect_line(&joined);
    let dropped = format!("-- {slow} left #lobby (slow consumer)");

    // alice talks in 1 KiB lines until bob has heard that the slow reader
    // was dropped, and a little more; bob reads and checks every line.
    let Talk { sent, dropped_after } =
        talk_until_dropped(|line| alice.send(line), || bob.read_line(), &dropped, &slow);
    eprintln!(
        "slow WebSocket: dropped once alice had said {dropped_after} lines of 1 KiB \
         (sendq {SMALL_SENDQ}); alice said {sent} in all"
    );
    alice.expect_line(&dropped);
    bob.send("still here");
    alice.expect_line("<bob> still here");
    alice.send("me too");
    bob.expect_line("<alice> me too");

    // The slow reader's socket: whole frames that are a prefix of what was
    // sent to it, perhaps a piece of one more, then the end.
    let mut due = vec![welcome_line(&slow)];
    due.extend((0..sent).map(|i| format!("<alice> {}", bulk_line(i))));
    let mut stream = slow_client.into_stream();
    let (bytes, ending) = read_to_end(&mut stream, 64 << 20);
    let (frames, cut) = parse_frames(&bytes);
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(frame.opcode, opcode::TEXT, "frame {i} of the slow reader's");
        assert_eq!(
            frame.payload,
            due[i].as_bytes(),
            "frame {i} of the slow reader's is the line due"
        );
    }
    assert!(
        frames.len() < due.len(),
        "the slow reader got everything: it was not dropped"
    );
    eprintln!(
        "slow WebSocket: its socket gave {} bytes, {} whole frames and {cut} bytes of another, then {ending:?}",
        bytes.len(),
        frames.len()
    );
}

// ---------------------------------------------------------------------------
// 7. Keepalive.

/// The server's keepalive ping's payload.
const PING_PAYLOAD: &[u8] = b"chat-server";

/// A server that pings a WebSocket after `ping_after` of quiet and waits
/// `ping_timeout` for any frame in answer.
fn keepalive_server(ping_after: Duration, ping_timeout: Duration) -> TestServer {
    TestServer::start(Config {
        web: chat_server::config::WebSettings {
            keepalive: Keepalive {
                ping_after,
                ping_timeout,
                ..Keepalive::default()
            },
            ..Default::default()
        },
        ..config()
    })
}

#[test]
fn an_idle_websocket_is_pinged_and_kept_while_it_answers() {
    // The server looks again at a pinged socket only when the time to
    // answer is up, and pings it again then: so pings come every
    // ping_timeout while they are answered, and that is kept short here,
    // though long enough for a loaded machine to answer in.
    let server = keepalive_server(Duration::from_millis(100), Duration::from_millis(600));
    let mut alice = server.connect_named("alice");
    let mut bob = web_user(&server, "bob", &mut [&mut alice]);
    // The second ping, not a close, is what shows the first was answered.
    for round in 0..2 {
        let frame = bob.read_frame();
        assert_eq!(
            (frame.opcode, frame.payload.as_slice()),
            (opcode::PING, PING_PAYLOAD),
            "round {round}: {frame:?}"
        );
        bob.send_raw(&client_frame(opcode::PONG, true, &frame.payload));
    }
    // Still on the chat, and nobody was told otherwise.
    bob.send("still here");
    alice.expect_line("<bob> still here");
}

#[test]
fn a_websocket_that_does_not_answer_pings_is_told_and_closed() {
    let server = keepalive_server(Duration::from_millis(100), Duration::from_millis(300));
    let mut alice = server.connect_named("alice");
    let mut bob = web_user(&server, "bob", &mut [&mut alice]);
    let frames = bob.read_until_closed();
    let ping = frames
        .first()
        .unwrap_or_else(|| panic!("no frame before the close"));
    assert_eq!(
        (ping.opcode, ping.payload.as_slice()),
        (opcode::PING, PING_PAYLOAD)
    );
    // The goodbye says how long it was quiet, in whole seconds.
    let goodbye = frames
        .get(1)
        .map(|f| String::from_utf8_lossy(&f.payload).into_owned())
        .unwrap_or_default();
    let secs = goodbye
        .strip_prefix("-- closing connection: no answer to PING for ")
        .and_then(|rest| rest.strip_suffix(" s"))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(secs.is_some(), "the goodbye line: {goodbye:?}");
    assert_lines_then_close(&frames[1..], &[&goodbye], 1000);
    alice.expect_line("-- bob left #lobby (ping timeout)");
}

#[test]
fn the_ping_timeout_goodbye_counts_from_the_ping() {
    // Whole seconds, as the line counts them; the test takes two.
    let server = keepalive_server(Duration::from_secs(1), Duration::from_secs(1));
    let mut bob = WsClient::connect_guest(server.web_addr());
    let frames = bob.read_until_closed();
    let texts: Vec<String> = frames
        .iter()
        .filter(|f| f.opcode == opcode::TEXT)
        .map(|f| String::from_utf8_lossy(&f.payload).into_owned())
        .collect();
    assert_eq!(texts, ["-- closing connection: no answer to PING for 1 s"]);
}

#[test]
fn a_client_ping_gets_a_pong_with_its_payload() {
    let server = TestServer::start(config());
    let mut bob = WsClient::connect_guest(server.web_addr());
    for payload in [&b"are you there?"[..], b"", &[0xff_u8; 125]] {
        bob.send_raw(&client_frame(opcode::PING, true, payload));
        let pong = bob.read_frame();
        assert_eq!((pong.opcode, pong.fin), (opcode::PONG, true), "{pong:?}");
        assert_eq!(pong.payload, payload);
    }
    // An unasked pong is fine (RFC 6455, 5.5.3) and changes nothing.
    bob.send_raw(&client_frame(opcode::PONG, true, b"unasked"));
    bob.send("/who");
    bob.expect_line(&format!("-- 1 in #lobby: {}", bob.nick()));
}

// ---------------------------------------------------------------------------
// 8. Leaving.

#[test]
fn quit_gets_the_last_lines_then_close_1000_then_the_end() {
    let server = TestServer::start(config());
    let mut alice = server.connect_named("alice");
    let mut bob = web_user(&server, "bob", &mut [&mut alice]);
    bob.send("/quit gone fishing");
    let frames = bob.read_until_closed();
    assert_lines_then_close(&frames, &["-- bye"], 1000);
    alice.expect_line("-- bob left #lobby (quit: gone fishing)");
}

#[test]
fn a_close_frame_from_the_client_is_echoed_and_the_connection_closed() {
    let server = TestServer::start(config());
    let mut alice = server.connect_named("alice");
    let mut bob = web_user(&server, "bob", &mut [&mut alice]);
    let mut close = 1000_u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"done");
    bob.send_raw(&client_frame(opcode::CLOSE, true, &close));
    let frames = bob.read_until_closed();
    assert_lines_then_close(&frames, &[], 1000);
    alice.expect_line("-- bob left #lobby (disconnect)");
}

#[test]
fn an_idle_websocket_is_told_and_closed_with_1000_though_it_answers_pings() {
    // Idle means no line: frames that carry none (pongs) do not count.
    // (Alone: a line watcher would be idle too.)
    let server = TestServer::start(Config {
        idle_timeout: Some(Duration::from_millis(400)),
        web: chat_server::config::WebSettings {
            keepalive: Keepalive {
                ping_after: Duration::from_millis(100),
                ping_timeout: Duration::from_secs(3),
                ..Keepalive::default()
            },
            ..Default::default()
        },
        ..config()
    });
    let mut bob = WsClient::connect_guest(server.web_addr());
    let mut pings = 0;
    let mut frames = Vec::new();
    // Bounded: a ping or two, the goodbye, the Close.
    for _ in 0..10 {
        let frame = bob.read_frame();
        if frame.opcode == opcode::PING {
            pings += 1;
            bob.send_raw(&client_frame(opcode::PONG, true, &frame.payload));
            continue;
        }
        let last = frame.opcode == opcode::CLOSE;
        frames.push(frame);
        if last {
            break;
        }
    }
    assert!(pings >= 1, "pinged before the idle timeout: {frames:?}");
    // The goodbye says how long, in whole seconds.
    let goodbye = frames
        .first()
        .map(|f| String::from_utf8_lossy(&f.payload).into_owned())
        .unwrap_or_default();
    let secs = goodbye
        .strip_prefix("-- closing idle connection (nothing received for ")
        .and_then(|rest| rest.strip_suffix(" s)"))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(secs.is_some(), "the goodbye line: {goodbye:?}");
    assert_lines_then_close(&frames, &[&goodbye], 1000);
    let rest = bob.read_until_closed();
    assert!(rest.is_empty(), "frames after the Close: {rest:?}");
}

#[test]
fn shutdown_tells_websockets_and_closes_them_with_1001() {
    let server = TestServer::start(config());
    let mut alice = server.connect_named("alice");
    let mut bob = web_user(&server, "bob", &mut [&mut alice]);
    bob.send("last words");
    alice.expect_line("<bob> last words");
    server.begin_shutdown();
    let frames = bob.read_until_closed();
    assert_lines_then_close(&frames, &["-- server shutting down"], 1001);
    alice.expect_line("-- server shutting down");
    alice.expect_eof();
    drop((alice, bob));
    let result = server.stop();
    assert!(result.is_ok(), "run() returned {result:?}");
}

// ---------------------------------------------------------------------------
// 9. The per-address limit.

#[test]
fn a_web_connection_past_the_per_address_limit_gets_503() {
    let server = TestServer::start(Config {
        max_per_ip: 1,
        ..config()
    });
    let addr = server.web_addr();
    let mut bob = WsClient::connect_guest(addr);
    // The refusal comes at once, before any request: read it without
    // sending one.
    let mut second = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    second
        .set_read_timeout(Some(TIMEOUT))
        .expect("set a read timeout");
    let (bytes, ending) = read_to_end(&mut second, 4096);
    let answer = String::from_utf8_lossy(&bytes);
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer:?} then {ending:?}"
    );
    assert!(
        answer.ends_with("\r\n\r\ntoo many connections from your address\n"),
        "{answer:?}"
    );
    // The line listener counts the same places.
    let mut line = Client::connect(server.addr());
    line.expect_line("!! too many connections from your address");
    // The first connection was not disturbed.
    bob.send("/who");
    bob.expect_line(&format!("-- 1 in #lobby: {}", bob.nick()));
}
