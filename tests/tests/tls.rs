//! TLS, over loopback: a TLS listener beside the plain one, sharing its
//! rooms; handshakes that fail or never finish; and the certificate
//! reloaded while connections stay open.
//!
//! Certificates are made for each test with rcgen (a self-signed one for
//! `localhost`), written to a temporary directory, and trusted by a rustls
//! client (`chat_tests::tls`). The real clients people use against the real
//! daemon (`openssl s_client`, `ncat --ssl`) and SIGHUP are in
//! `tls_clients.rs`; `chat-client --tls` in `client_tls.rs`.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use chat_tests::tls::{Certificate, TlsClient};
use chat_tests::web::{client_frame, opcode, read_frame_from, upgrade_request};
use chat_tests::{loopback_any_port, parse_welcome, Config, TestServer, TIMEOUT};

/// A server with a plain and a TLS listener, serving `certificate`.
fn server(certificate: &Certificate, config: Config) -> TestServer {
    TestServer::start(Config {
        tls_listen: vec![loopback_any_port()],
        tls: Some(certificate.files()),
        ..config
    })
}

#[test]
fn tls_and_plain_users_chat_in_one_room() {
    let certificate = Certificate::new("room");
    let server = server(&certificate, Config::default());
    let mut alice = server.connect_named("alice");
    let mut bob = TlsClient::connect(server.tls_addr(), &certificate.der);
    let welcome = bob.read_line();
    let guest = parse_welcome(&welcome)
        .unwrap_or_else(|| panic!("{welcome}"))
        .to_string();
    alice.expect_line(&format!("-- {guest} joined #lobby"));
    bob.send("/nick bob");
    bob.expect_line("-- you are now known as bob");
    alice.expect_line(&format!("-- {guest} is now known as bob"));
    bob.send("hello over TLS");
    alice.expect_line("<bob> hello over TLS");
    alice.send("hello in clear");
    bob.expect_line("<alice> hello in clear");
    bob.send("/quit");
    bob.expect_line("-- bye");
    alice.expect_line("-- bob left #lobby (quit)");
}

#[test]
fn a_plain_text_client_on_the_tls_port_gets_an_alert_and_nobody_notices() {
    let certificate = Certificate::new("plain");
    let server = server(&certificate, Config::default());
    let mut alice = server.connect_named("alice");
    let mut plain = TcpStream::connect(server.tls_addr()).unwrap();
    plain.set_read_timeout(Some(TIMEOUT)).unwrap();
    plain.write_all(b"/nick mallory\nhello?\n").unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    // A TLS alert record: content type 21.
    assert_eq!(answer.first(), Some(&21), "{answer:?}");
    // The room heard nothing of it.
    alice.send("/who");
    alice.expect_line("-- 1 in #lobby: alice");
}

#[test]
fn connections_that_never_finish_their_handshake_are_closed_and_their_places_freed() {
    let certificate = Certificate::new("stall");
    let server = server(
        &certificate,
        Config {
            tls_handshake_timeout: Duration::from_millis(300),
            max_clients: 50,
            max_per_ip: 0,
            max_per_net: 0,
            connect_rate: 0,
            ..Config::default()
        },
    );
    // More silent connections than the server has places.
    let stalled: Vec<TcpStream> = (0..200)
        .map(|_| {
            let s = TcpStream::connect(server.tls_addr()).unwrap();
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            s
        })
        .collect();
    for mut s in stalled {
        let mut rest = Vec::new();
        // Each is closed: what it reads ends (a refusal or the timeout).
        let _ = s.read_to_end(&mut rest);
    }
    let mut bob = TlsClient::connect(server.tls_addr(), &certificate.der);
    assert!(parse_welcome(&bob.read_line()).is_some());
    let mut alice = server.connect_named("alice");
    alice.send("/who");
    let who = alice.read_line();
    assert!(who.starts_with("-- 2 in #lobby: alice, guest"), "{who}");
}

#[test]
fn a_reload_serves_the_new_certificate_to_new_connections_and_keeps_the_open_ones() {
    let live = Certificate::new("live");
    let renewed = Certificate::new("renewed");
    let server = server(&live, Config::default());
    let mut early = TlsClient::connect(server.tls_addr(), &live.der);
    assert_eq!(early.presented, live.der);
    assert!(parse_welcome(&early.read_line()).is_some());
    live.replace_with(&renewed);
    server.reload_tls().expect("a good certificate reloads");
    let mut late = TlsClient::connect(server.tls_addr(), &renewed.der);
    assert_eq!(late.presented, renewed.der, "new connections get the new one");
    assert!(parse_welcome(&late.read_line()).is_some());
    // The session opened before the reload goes on.
    early.expect_line("-- guest2 joined #lobby");
    early.send("/nick early");
    early.expect_line("-- you are now known as early");
    early.send("still here");
    late.expect_line("-- guest1 is now known as early");
    late.expect_line("<early> still here");
}

#[test]
fn a_bad_reload_keeps_the_certificate_in_force() {
    let live = Certificate::new("keep");
    let server = server(&live, Config::default());
    let other = Certificate::new("other");
    // A key that is not the certificate's, then garbage, then no file.
    std::fs::copy(other.path("key.pem"), live.path("key.pem")).unwrap();
    let error = server.reload_tls().expect_err("a mismatched key is refused");
    assert!(
        error.to_string().contains("cannot use the TLS certificate"),
        "{error}"
    );
    std::fs::write(live.path("cert.pem"), "garbage").unwrap();
    let error = server.reload_tls().expect_err("garbage is refused");
    assert!(
        error.to_string().contains("cannot read the TLS certificate"),
        "{error}"
    );
    std::fs::remove_file(live.path("cert.pem")).unwrap();
    assert!(server.reload_tls().is_err());
    // Still served with the first certificate.
    let mut client = TlsClient::connect(server.tls_addr(), &live.der);
    assert_eq!(client.presented, live.der);
    assert!(parse_welcome(&client.read_line()).is_some());
}

#[test]
fn a_bad_certificate_at_start_is_a_start_error() {
    let dir = Certificate::new("start");
    std::fs::write(dir.path("cert.pem"), "not a certificate").unwrap();
    let error = chat_server::Server::bind(Config {
        listen: vec![loopback_any_port()],
        tls_listen: vec![loopback_any_port()],
        tls: Some(dir.files()),
        ..Config::default()
    })
    .expect_err("a bad certificate stops the start");
    assert!(
        error.to_string().starts_with("cannot read the TLS certificate"),
        "{error}"
    );
}

#[test]
fn a_tls_client_at_the_plain_port_is_closed_and_says_nothing_to_the_room() {
    let certificate = Certificate::new("wrong-port");
    let server = server(&certificate, Config::default());
    let mut alice = server.connect_named("alice");
    let mut lost = TcpStream::connect(server.addr()).unwrap();
    lost.set_read_timeout(Some(TIMEOUT)).unwrap();
    let welcome = {
        let mut byte = [0u8; 1];
        let mut line = Vec::new();
        // Bounded: a welcome is far shorter than 1 KiB.
        for _ in 0..1024 {
            if lost.read(&mut byte).unwrap() != 1 || byte[0] == b'\n' {
                break;
            }
            line.push(byte[0]);
        }
        String::from_utf8(line).unwrap()
    };
    let guest = parse_welcome(&welcome).unwrap().to_string();
    alice.expect_line(&format!("-- {guest} joined #lobby"));
    // What a TLS client's hello starts with, with a newline in it and
    // text after that would read as chat lines.
    let mut hello = vec![0x16, 0x03, 0x01, 0x00, 0x40, 0x01];
    hello.extend_from_slice(b"abc\nhello everyone\n");
    lost.write_all(&hello).unwrap();
    let mut rest = Vec::new();
    let _ = lost.read_to_end(&mut rest);
    assert_eq!(rest, b"", "closed without a word: a TLS client cannot read one");
    alice.expect_line(&format!("-- {guest} left #lobby (disconnect)"));
    alice.send("/who");
    alice.expect_line("-- 1 in #lobby: alice");
}

/// Reads an HTTP answer's head, up to its blank line, from a TLS stream.
#[track_caller]
fn read_http_head(client: &mut TlsClient) -> String {
    let mut head = String::new();
    // Bounded: an answer's head is a few dozen lines.
    for _ in 0..64 {
        let mut line = String::new();
        client
            .reader()
            .read_line(&mut line)
            .expect("a line of the answer's head");
        head.push_str(&line);
        if line == "\r\n" || line.is_empty() {
            return head;
        }
    }
    panic!("no end to the answer's head: {head}");
}

#[test]
fn the_web_page_and_its_websocket_are_served_over_tls() {
    let certificate = Certificate::new("web");
    let server = TestServer::start(Config {
        web_tls_listen: vec![loopback_any_port()],
        tls: Some(certificate.files()),
        ..Config::default()
    });
    let addr = server.web_tls_addr();
    let mut alice = server.connect_named("alice");

    // The page, over HTTPS.
    let mut page = TlsClient::connect(addr, &certificate.der);
    page.send_raw(format!("GET / HTTP/1.1\r\nHost: localhost:{}\r\n\r\n", addr.port()).as_bytes());
    let head = read_http_head(&mut page);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Security-Policy: default-src 'none'; "),
        "{head}"
    );
    let mut body = String::new();
    page.reader()
        .read_to_string(&mut body)
        .expect("the page, then the end");
    assert!(body.to_ascii_lowercase().starts_with("<!doctype html>"), "{body}");

    // The page's own origin over HTTPS may open the socket, over WSS.
    let mut ws = TlsClient::connect(addr, &certificate.der);
    let origin = format!("https://localhost:{}", addr.port());
    let request = upgrade_request(addr, Some(&origin)).replace(
        &format!("Host: {addr}\r\n"),
        &format!("Host: localhost:{}\r\n", addr.port()),
    );
    ws.send_raw(request.as_bytes());
    let head = read_http_head(&mut ws);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let welcome = read_frame_from(ws.reader());
    assert_eq!(welcome.opcode, opcode::TEXT);
    let welcome = String::from_utf8(welcome.payload).expect("a UTF-8 welcome");
    let guest = parse_welcome(&welcome)
        .unwrap_or_else(|| panic!("{welcome}"))
        .to_string();
    alice.expect_line(&format!("-- {guest} joined #lobby"));
    ws.send_raw(&client_frame(opcode::TEXT, true, b"hello over wss"));
    alice.expect_line(&format!("<{guest}> hello over wss"));
    alice.send("hello browser");
    let line = read_frame_from(ws.reader());
    assert_eq!(line.payload, b"<alice> hello browser");
}
