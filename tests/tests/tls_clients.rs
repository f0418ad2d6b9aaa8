//! The real daemon over TLS with the clients people use: `openssl
//! s_client` and `ncat --ssl` chatting with an `nc` user in one room, the
//! certificate renewed by SIGHUP while sessions stay open, a bad renewal
//! that changes nothing, and the start-up errors.
//!
//! Each test makes its own self-signed certificate (`chat_tests::tls`);
//! `ncat` is pointed at `localhost`, since Ncat 7.93 does not match an IP
//! address against the certificate's IP names. `chat-client --tls` is in
//! `client_tls.rs`. Everything listens on 127.0.0.1.

use std::net::SocketAddr;

use chat_tests::tls::{Certificate, TlsClient};
use chat_tests::{clean_command, parse_welcome, spawn_nc, Daemon, Proc};

/// What to install when openssl or ncat is missing.
const HINT: &str = "this test needs openssl and ncat: apt-get install openssl ncat";

/// The daemon serving `certificate` on a TLS listener beside a plain one.
struct TlsDaemon {
    daemon: Daemon,
    plain: SocketAddr,
    tls: SocketAddr,
}

impl TlsDaemon {
    #[track_caller]
    fn start(certificate: &Certificate) -> TlsDaemon {
        let cert = certificate.cert_path();
        let key = certificate.key_path();
        let command = Daemon::command(&[
            "--listen",
            "127.0.0.1:0",
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            path_str(&cert),
            "--tls-key",
            path_str(&key),
        ]);
        let mut daemon = Daemon::start_with(command, 2);
        let [plain, tls] = daemon.addrs() else { panic!("two listeners: {:?}", daemon.addrs()) };
        let (plain, tls) = (*plain, *tls);
        let log = daemon.proc.stderr_lines().join("\n");
        assert!(
            log.contains(&format!("listening on {tls} (TLS)")),
            "the second listener is the TLS one:\n{log}"
        );
        // The certificate in force is logged by its fingerprint, as openssl
        // x509 -fingerprint -sha256 prints it.
        daemon.proc.expect_stderr_containing(&[
            "TLS certificate",
            &format!("SHA-256 {}", certificate.fingerprint()),
        ]);
        TlsDaemon { daemon, plain, tls }
    }
}

#[track_caller]
fn path_str(path: &std::path::Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

/// `openssl s_client` on `addr`, checking the certificate for `localhost`
/// against `ca` and giving up on a failed check; `-quiet` leaves only the
/// chat on stdout.
fn spawn_s_client(addr: SocketAddr, ca: &Certificate) -> Proc {
    let mut command = clean_command("openssl");
    command
        .args(["s_client", "-connect", &addr.to_string()])
        .args(["-servername", "localhost", "-verify_hostname", "localhost"])
        .args(["-CAfile", path_str(&ca.cert_path())])
        .args(["-verify_return_error", "-quiet"]);
    Proc::spawn("openssl s_client", command, HINT)
}

/// `ncat --ssl` on `localhost:port` over IPv4, verifying the certificate
/// against `ca`; `-v` makes it say why a verification failed.
fn spawn_ncat(port: u16, ca: &Certificate) -> Proc {
    let mut command = clean_command("ncat");
    command
        .args(["-v", "-4", "--ssl", "--ssl-verify", "--ssl-trustfile"])
        .arg(ca.cert_path())
        .args(["localhost", &port.to_string()]);
    Proc::spawn("ncat --ssl", command, HINT)
}

/// Reads a client's welcome from its stdout and returns its guest nick.
#[track_caller]
fn welcome(client: &mut Proc) -> String {
    let line = client.stdout_line().unwrap_or_default();
    match parse_welcome(&line) {
        Some(guest) => guest.to_string(),
        None => panic!(
            "not a welcome: {line:?}\nstderr:\n{}",
            client.stderr_lines().join("\n")
        ),
    }
}

/// `tls_user` (a TLS client process) and `nc` (a plain netcat) in
/// `#lobby`: they take the nicks alice and bob and each hears the other.
#[track_caller]
fn chat_with_nc(tls_user: &mut Proc, plain: SocketAddr) {
    let alice_guest = welcome(tls_user);
    let mut nc = spawn_nc(plain);
    let bob_guest = welcome(&mut nc);
    tls_user.expect_stdout_line(&format!("-- {bob_guest} joined #lobby"));
    tls_user.write_stdin("/nick alice\n");
    tls_user.expect_stdout_line("-- you are now known as alice");
    nc.expect_stdout_line(&format!("-- {alice_guest} is now known as alice"));
    nc.write_stdin("/nick bob\nhi alice, I am on plain TCP\n");
    nc.expect_stdout_line("-- you are now known as bob");
    tls_user.expect_stdout_line(&format!("-- {bob_guest} is now known as bob"));
    tls_user.expect_stdout_line("<bob> hi alice, I am on plain TCP");
    tls_user.write_stdin("hello bob, this crossed the network encrypted\n");
    nc.expect_stdout_line("<alice> hello bob, this crossed the network encrypted");
    tls_user.write_stdin("/quit\n");
    tls_user.expect_stdout_line("-- bye");
    nc.expect_stdout_line("-- alice left #lobby (quit)");
    // The server closed the connection; ncat also waits for its own input
    // to end before it exits.
    tls_user.close_stdin();
    assert_eq!(tls_user.stdout_line(), None, "nothing after the goodbye");
}

#[test]
fn an_openssl_s_client_user_and_an_nc_user_chat_in_one_room() {
    let certificate = Certificate::new("s-client");
    let server = TlsDaemon::start(&certificate);
    let mut alice = spawn_s_client(server.tls, &certificate);
    chat_with_nc(&mut alice, server.plain);
    alice.expect_exit_code(0);
    assert!(
        alice.stderr_lines().iter().any(|l| l == "verify return:1"),
        "openssl checked the certificate:\n{}",
        alice.stderr_lines().join("\n")
    );
}

#[test]
fn an_ncat_ssl_user_verifying_localhost_chats_with_an_nc_user() {
    let certificate = Certificate::new("ncat");
    let server = TlsDaemon::start(&certificate);
    let mut alice = spawn_ncat(server.tls.port(), &certificate);
    chat_with_nc(&mut alice, server.plain);
    alice.expect_exit_code(0);
}

#[test]
fn ncat_refuses_the_server_when_it_trusts_another_certificate() {
    // The verification in the test above is real: the same client with
    // the wrong trust file gets no chat at all.
    let certificate = Certificate::new("served");
    let stranger = Certificate::new("stranger");
    let server = TlsDaemon::start(&certificate);
    let mut ncat = spawn_ncat(server.tls.port(), &stranger);
    assert_eq!(
        ncat.stdout_line(),
        None,
        "no welcome without a verified certificate"
    );
    let status = ncat.wait_exit();
    assert!(!status.success(), "ncat exits with an error: {status}");
    assert!(
        ncat.stderr_lines()
            .iter()
            .any(|l| l == "Ncat: Certificate verification failed (self-signed certificate)."),
        "{}",
        ncat.stderr_lines().join("\n")
    );
}

#[test]
fn sighup_serves_the_renewed_certificate_to_new_connections_while_open_sessions_go_on() {
    let live = Certificate::new("live");
    let renewed = Certificate::new("renewed");
    let mut server = TlsDaemon::start(&live);
    let mut alice = spawn_s_client(server.tls, &live);
    let alice_guest = welcome(&mut alice);
    let mut bob = spawn_nc(server.plain);
    let bob_guest = welcome(&mut bob);
    alice.expect_stdout_line(&format!("-- {bob_guest} joined #lobby"));

    // A renewal: new files in place, then SIGHUP.
    live.replace_with(&renewed);
    server.daemon.proc.signal("HUP");
    let reloaded = server
        .daemon
        .proc
        .expect_stderr_containing(&["SIGHUP: reloaded the TLS certificate"]);
    assert!(
        reloaded.contains(&format!("SHA-256 {}", renewed.fingerprint())),
        "the log names the new certificate's fingerprint: {reloaded}"
    );
    assert_ne!(live.fingerprint(), renewed.fingerprint());

    // A new connection is served the new certificate...
    let mut carol = TlsClient::connect(server.tls, &renewed.der);
    assert_eq!(
        carol.presented, renewed.der,
        "new connections get the renewed certificate"
    );
    let carol_guest = parse_welcome(&carol.read_line()).map(str::to_string);
    let carol_guest = carol_guest.expect("carol is welcomed");
    alice.expect_stdout_line(&format!("-- {carol_guest} joined #lobby"));
    bob.expect_stdout_line(&format!("-- {carol_guest} joined #lobby"));

    // ...while alice, who connected under the old one, chats on.
    alice.write_stdin("still here after the renewal\n");
    bob.expect_stdout_line(&format!("<{alice_guest}> still here after the renewal"));
    carol.expect_line(&format!("<{alice_guest}> still here after the renewal"));
    bob.write_stdin("and I heard you\n");
    alice.expect_stdout_line(&format!("<{bob_guest}> and I heard you"));
}

#[test]
fn a_bad_renewal_logs_one_error_and_the_old_certificate_stays() {
    let live = Certificate::new("stays");
    let mut server = TlsDaemon::start(&live);
    let mut alice = TlsClient::connect(server.tls, &live.der);
    assert!(parse_welcome(&alice.read_line()).is_some());
    alice.send("/nick alice");
    alice.expect_line("-- you are now known as alice");

    std::fs::write(live.key_path(), "not a key\n").unwrap();
    server.daemon.proc.signal("HUP");
    let error = server.daemon.proc.expect_stderr_containing(&["SIGHUP:"]);
    assert!(
        error.contains("ERROR")
            && error.contains(&format!("cannot read the TLS key {}", live.key_path().display()))
            && error.ends_with("still serving the certificate loaded before"),
        "one clear error: {error}"
    );

    // Still serving, with the certificate it had.
    let mut bob = TlsClient::connect(server.tls, &live.der);
    assert_eq!(bob.presented, live.der);
    let bob_guest = parse_welcome(&bob.read_line())
        .map(str::to_string)
        .expect("welcomed");
    alice.expect_line(&format!("-- {bob_guest} joined #lobby"));

    // A mismatched pair is refused the same way; then a good renewal works,
    // and the log holds exactly one line for each SIGHUP.
    let other = Certificate::new("mismatch");
    std::fs::copy(other.key_path(), live.key_path()).unwrap();
    server.daemon.proc.signal("HUP");
    let mismatch = server.daemon.proc.expect_stderr_containing(&["SIGHUP:"]);
    assert!(mismatch.contains("cannot use the TLS certificate"), "{mismatch}");
    let renewed = Certificate::new("good");
    live.replace_with(&renewed);
    server.daemon.proc.signal("HUP");
    server
        .daemon
        .proc
        .expect_stderr_containing(&["SIGHUP: reloaded", &renewed.fingerprint().to_string()]);
    let sighup_lines = server
        .daemon
        .proc
        .stderr_lines()
        .iter()
        .filter(|l| l.contains("SIGHUP"))
        .count();
    assert_eq!(
        sighup_lines,
        3,
        "{}",
        server.daemon.proc.stderr_lines().join("\n")
    );
    alice.send("the server never stopped");
    bob.expect_line("<alice> the server never stopped");
}

#[test]
fn sighup_without_tls_reloads_nothing_and_keeps_serving() {
    let mut daemon = Daemon::start(&[]);
    let mut alice = daemon.connect_named("alice");
    daemon.proc.signal("HUP");
    daemon
        .proc
        .expect_stderr_containing(&["SIGHUP: nothing to reload (no TLS listener)"]);
    alice.send("/who");
    alice.expect_line("-- 1 in #lobby: alice");
    daemon.proc.signal("TERM");
    alice.expect_line("-- server shutting down");
    drop(alice);
    daemon.proc.expect_exit_code(0);
}

#[test]
fn tls_listen_without_a_certificate_is_a_usage_error() {
    let mut daemon = Proc::spawn(
        "chat-server",
        Daemon::command(&["--tls-listen", "127.0.0.1:0"]),
        "cargo build --workspace",
    );
    daemon.expect_exit_code(2);
    let stderr = daemon.stderr_lines().join("\n");
    assert!(
        stderr.contains("--tls-listen needs --tls-cert and --tls-key"),
        "{stderr}"
    );
}

#[test]
fn a_bad_certificate_or_key_at_start_is_one_clear_error_and_exit_1() {
    let certificate = Certificate::new("bad-start");
    let other = Certificate::new("bad-start-other");
    let cert = certificate.cert_path();
    let wrong_key = other.key_path();
    let missing = certificate.path("missing.pem");
    let cases = [
        (
            &missing,
            certificate.key_path(),
            "cannot read the TLS certificate",
        ),
        (&cert, wrong_key, "cannot use the TLS certificate"),
    ];
    for (cert, key, expected) in cases {
        let mut daemon = Proc::spawn(
            "chat-server",
            Daemon::command(&[
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-cert",
                path_str(cert),
                "--tls-key",
                path_str(&key),
            ]),
            "cargo build --workspace",
        );
        daemon.expect_exit_code(1);
        let errors = daemon.error_lines();
        assert_eq!(errors.len(), 1, "{:?}", daemon.stderr_lines());
        assert!(
            errors[0].starts_with(&format!("error: {expected} {}", cert.display())),
            "{}",
            errors[0]
        );
    }
}
