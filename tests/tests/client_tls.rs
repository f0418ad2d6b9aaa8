//! `chat-client --tls` against the real daemon binary: a TLS user and an
//! `nc` user in one room, `--send` and a signal over TLS, and each way the
//! handshake can fail (an unknown issuer, a certificate for another name,
//! no trusted roots at all, a plain port, a port that never answers) with
//! its one line on standard error and its documented exit status.
//!
//! Each test makes its certificates with rcgen into a directory of its own
//! (removed on drop) and starts `chat-server --listen 127.0.0.1:0
//! --tls-listen 127.0.0.1:0`, reading both ports from its log. "The
//! system's roots" are set with `SSL_CERT_FILE` (and `SSL_CERT_DIR`
//! removed), which rustls-native-certs reads in place of the machine's
//! store, so the tests do not depend on what the machine trusts.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use chat_tests::{
    binary, clean_command, parse_welcome, spawn_chat_client, spawn_nc, welcome_line, Daemon, Proc,
};

/// chat-client's exit status for a certificate it cannot verify.
const EXIT_UNVERIFIED: i32 = 5;

/// chat-client's exit status when it cannot connect (TLS failures other
/// than the certificate among them).
const EXIT_FAILURE: i32 = 1;

/// A self-signed certificate for `names` and its key, as PEM files in a
/// directory of their own, removed on drop.
struct CertFiles {
    dir: PathBuf,
}

impl CertFiles {
    fn new(tag: &str, names: &[&str]) -> CertFiles {
        let dir = std::env::temp_dir().join(format!("chat-client-tls-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sans: Vec<String> = names.iter().map(ToString::to_string).collect();
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        // A subject of its own: two certificates with rcgen's default one
        // would pass for issuer and issued.
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("chat-client test {tag}"));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        CertFiles { dir }
    }

    fn cert(&self) -> String {
        self.path("cert.pem")
    }

    fn key(&self) -> String {
        self.path("key.pem")
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for CertFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The daemon with a plain and a TLS listener, serving `certificate`.
struct TlsDaemon {
    daemon: Daemon,
    /// The plain listener, for `nc`.
    plain: SocketAddr,
    /// The TLS listener.
    tls: SocketAddr,
}

impl TlsDaemon {
    fn start(certificate: &CertFiles) -> TlsDaemon {
        let command = Daemon::command(&[
            "--listen",
            "127.0.0.1:0",
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            &certificate.cert(),
            "--tls-key",
            &certificate.key(),
        ]);
        let daemon = Daemon::start_with(command, 2);
        // Which of the two is TLS, from the log line that says so.
        let tls_line = daemon
            .proc
            .stderr_lines()
            .iter()
            .find(|line| line.contains("listening on ") && line.ends_with("(TLS)"))
            .unwrap_or_else(|| panic!("no TLS listener in the log: {:?}", daemon.proc.stderr_lines()))
            .clone();
        let tls = *daemon
            .addrs()
            .iter()
            .find(|addr| tls_line.contains(&format!("listening on {addr} ")))
            .unwrap();
        let plain = *daemon.addrs().iter().find(|addr| **addr != tls).unwrap();
        TlsDaemon { daemon, plain, tls }
    }

    /// `localhost:PORT` of the TLS listener: the name the certificates are
    /// made for (it may resolve to ::1 first, where nothing listens; the
    /// client then tries 127.0.0.1).
    fn tls_by_name(&self) -> String {
        format!("localhost:{}", self.tls.port())
    }
}

/// chat-client with `args`, trusting as "the system's roots" exactly the
/// certificates in `roots` (`SSL_CERT_FILE`).
fn chat_client_with_roots(roots: &str, args: &[&str]) -> Proc {
    let mut command = clean_command(binary("chat-client"));
    command
        .env("SSL_CERT_FILE", roots)
        .env_remove("SSL_CERT_DIR")
        .args(args);
    Proc::spawn("chat-client", command, "build it with `cargo build --workspace`")
}

/// Waits for `client` to exit with `code`, having printed nothing on
/// standard output and exactly `line` on standard error.
#[track_caller]
fn expect_one_error_line(client: &mut Proc, code: i32, line: &str) {
    client.expect_exit_code(code);
    assert_eq!(client.stderr_lines(), [line], "chat-client's standard error");
    assert!(
        client.stdout_lines().is_empty(),
        "nothing from the server may be shown: {:?}",
        client.stdout_lines()
    );
}

#[test]
fn a_tls_user_and_an_nc_user_chat_in_one_room() {
    let certificate = CertFiles::new("room", &["localhost", "127.0.0.1"]);
    let server = TlsDaemon::start(&certificate);
    let mut bob = spawn_nc(server.plain);
    let welcome = bob.stdout_line().unwrap();
    assert!(parse_welcome(&welcome).is_some(), "{welcome}");
    bob.write_stdin("/nick bob\n/join rust\n");
    bob.expect_stdout_line("-- you are now known as bob");
    bob.expect_stdout_line("-- you joined #rust");

    let tls_addr = server.tls_by_name();
    let ca = certificate.cert();
    let mut alice = spawn_chat_client(&[
        "--tls", "--ca", &ca, &tls_addr, "--nick", "alice", "--room", "rust",
    ]);
    let welcome = alice.stdout_line().unwrap();
    let guest = parse_welcome(&welcome)
        .unwrap_or_else(|| panic!("not a welcome: {welcome}"))
        .to_string();
    alice.expect_stdout_line("-- you are now known as alice");
    alice.expect_stdout_line("-- you joined #rust");
    bob.expect_stdout_line("-- alice joined #rust");

    alice.write_stdin("hi bob, over TLS\n");
    bob.expect_stdout_line("<alice> hi bob, over TLS");
    bob.write_stdin("hi alice, in clear\n");
    alice.expect_stdout_line("<bob> hi alice, in clear");

    // The end of her input: /quit, the server's goodbye, exit 0.
    alice.close_stdin();
    bob.expect_stdout_line("-- alice left #rust (quit)");
    alice.expect_exit_code(0);
    assert_eq!(
        alice.stdout_lines(),
        [
            welcome_line(&guest),
            "-- you are now known as alice".to_string(),
            "-- you joined #rust".to_string(),
            "<bob> hi alice, in clear".to_string(),
            "-- bye".to_string(),
        ]
    );
    assert!(alice.stderr_lines().is_empty(), "{:?}", alice.stderr_lines());
}

#[test]
fn send_works_over_tls_to_an_ip_address() {
    let certificate = CertFiles::new("send", &["localhost", "127.0.0.1"]);
    let server = TlsDaemon::start(&certificate);
    let mut watcher = server.daemon.connect_named("watcher");
    // The certificate's IP address SAN is what is checked here.
    let tls_addr = server.tls.to_string();
    let ca = certificate.cert();
    let mut ci = spawn_chat_client(&[
        &tls_addr,
        "--ca",
        &ca,
        "--nick",
        "ci",
        "--send",
        "build #128 passed",
        "--send",
        "/me uploads the artifacts",
    ]);
    let joined = watcher.read_line();
    let guest = joined
        .strip_prefix("-- ")
        .and_then(|rest| rest.strip_suffix(" joined #lobby"))
        .unwrap_or_else(|| panic!("expected a join notice, got {joined:?}"))
        .to_string();
    watcher.expect_lines(&[
        &format!("-- {guest} is now known as ci"),
        "<ci> build #128 passed",
        "* ci uploads the artifacts",
        "-- ci left #lobby (quit)",
    ]);
    ci.expect_exit_code(0);
    assert_eq!(
        ci.stdout_lines(),
        [
            welcome_line(&guest),
            "-- you are now known as ci".to_string(),
            "-- bye".to_string(),
        ]
    );
    assert!(ci.stderr_lines().is_empty(), "{:?}", ci.stderr_lines());
}

#[test]
fn a_signal_quits_gracefully_over_tls() {
    let certificate = CertFiles::new("signal", &["localhost"]);
    let server = TlsDaemon::start(&certificate);
    let mut watcher = server.daemon.connect_named("watcher");
    let tls_addr = server.tls_by_name();
    let ca = certificate.cert();
    // Standard input stays open: the user is still there when the signal
    // comes.
    let mut bot = spawn_chat_client(&[&tls_addr, "--ca", &ca, "--nick", "bot"]);
    let welcome = bot.stdout_line().unwrap();
    assert!(parse_welcome(&welcome).is_some(), "{welcome}");
    bot.expect_stdout_line("-- you are now known as bot");
    let joined = watcher.read_line();
    assert!(joined.ends_with(" joined #lobby"), "{joined}");
    watcher.expect_line(&joined.replace(" joined #lobby", " is now known as bot"));

    bot.signal("TERM");
    watcher.expect_line("-- bot left #lobby (quit)");
    bot.expect_exit_code(0);
    assert_eq!(bot.stdout_lines().last().map(String::as_str), Some("-- bye"));
}

#[test]
fn a_self_signed_certificate_not_in_the_system_roots_is_refused_with_exit_5() {
    let certificate = CertFiles::new("unknown", &["localhost"]);
    // The "system" trusts one CA, and not this server's.
    let other = CertFiles::new("unknown-roots", &["ca.example.org"]);
    let server = TlsDaemon::start(&certificate);
    let mut watcher = server.daemon.connect_named("watcher");
    let tls_addr = server.tls_by_name();
    let mut client = chat_client_with_roots(
        &other.cert(),
        &["--tls", &tls_addr, "--nick", "bot", "--send", "hi"],
    );
    expect_one_error_line(
        &mut client,
        EXIT_UNVERIFIED,
        "chat-client: cannot verify the server's certificate for localhost: it is signed by an \
         unknown issuer (a CA this system does not trust, or it is self-signed); pass --ca FILE \
         to trust its CA",
    );
    // Nobody came into the room.
    watcher.send("/who");
    watcher.expect_line("-- 1 in #lobby: watcher");
}

#[test]
fn a_certificate_for_another_name_is_refused_naming_both() {
    let certificate = CertFiles::new("name", &["example.org"]);
    let server = TlsDaemon::start(&certificate);
    let tls_addr = server.tls_by_name();
    let ca = certificate.cert();
    let mut client = spawn_chat_client(&["--ca", &ca, &tls_addr, "--send", "hi"]);
    expect_one_error_line(
        &mut client,
        EXIT_UNVERIFIED,
        "chat-client: cannot verify the server's certificate for localhost: it is not valid for \
         localhost, only for example.org; connect with a name it was issued for",
    );
}

#[test]
fn no_trusted_roots_at_all_says_to_install_them_or_pass_ca() {
    let certificate = CertFiles::new("noroots", &["localhost"]);
    let empty = certificate.path("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let server = TlsDaemon::start(&certificate);
    let tls_addr = server.tls_by_name();
    let mut client = chat_client_with_roots(&empty, &["--tls", &tls_addr, "--send", "hi"]);
    expect_one_error_line(
        &mut client,
        EXIT_FAILURE,
        "chat-client: no trusted CA certificates found on this system: install the \
         ca-certificates package, or pass --ca FILE",
    );
}

#[test]
fn tls_to_the_plain_port_is_a_clear_error_not_a_hang() {
    let certificate = CertFiles::new("plain", &["localhost", "127.0.0.1"]);
    let server = TlsDaemon::start(&certificate);
    let plain = server.plain.to_string();
    let ca = certificate.cert();
    let mut client = spawn_chat_client(&["--ca", &ca, &plain, "--send", "hi"]);
    client.expect_exit_code(EXIT_FAILURE);
    // The daemon closes a plain connection that starts with a TLS
    // handshake; its welcome may or may not have gone out first, so the
    // client reads either the end of the connection or text that is not
    // TLS. Both say the same thing in one line.
    let hint = "is it a plain port? chat-server serves TLS on its --tls-listen port, 7879 by default";
    let closed = format!(
        "chat-client: TLS handshake with {plain} failed: the server closed the connection without \
         answering in TLS; {hint}"
    );
    let not_tls =
        format!("chat-client: TLS handshake with {plain} failed: the server did not answer in TLS; {hint}");
    let said = client.stderr_lines();
    assert!(said == [closed.clone()] || said == [not_tls.clone()], "{said:?}");
    assert!(client.stdout_lines().is_empty(), "{:?}", client.stdout_lines());
}

#[test]
fn a_port_that_never_answers_the_handshake_is_given_up_at_the_timeout() {
    let certificate = CertFiles::new("silent", &["localhost", "127.0.0.1"]);
    // The kernel accepts the connection; nobody ever answers on it.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let ca = certificate.cert();
    let mut client = spawn_chat_client(&["--ca", &ca, &addr, "--connect-timeout", "0.5", "--send", "hi"]);
    expect_one_error_line(
        &mut client,
        EXIT_FAILURE,
        &format!(
            "chat-client: TLS handshake with {addr} failed: no TLS answer within 0.5 s \
             (--connect-timeout); is it a TLS port?"
        ),
    );
    drop(silent);
}
