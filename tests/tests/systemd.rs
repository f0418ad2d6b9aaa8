//! The daemon as a systemd service, proved without systemd as PID 1.
//!
//! - The shipped units (`systemd/`): `systemd-analyze verify` finds nothing
//!   to say (run through `scripts/verify-units`, the check README gives
//!   users), and `systemd-analyze security --offline=yes` rates the
//!   socket-activated service at the target exposure or better.
//! - Socket activation: the real binary under `systemd-socket-activate`
//!   (systemd's own tool for this, from the same package) serves a client
//!   over the socket it inherits, alone or next to `--listen`, and refuses
//!   a socket that is not a listening TCP socket.
//! - The notify protocol: the test plays the service manager's part with a
//!   Unix datagram socket of its own as `NOTIFY_SOCKET`, and reads
//!   `READY=1` once the listener is up, `STATUS=` with the client count,
//!   `STOPPING=1` on SIGTERM, and `WATCHDOG=1` when `WATCHDOG_USEC` is set,
//!   even while the daemon can open no descriptor (its soft limit lowered
//!   to 0 with `prlimit`); an abstract-namespace `NOTIFY_SOCKET=@name` is
//!   reached too.
//! - journald: with `JOURNAL_STREAM` naming its stderr (a Unix stream
//!   socket, as the journal's is), every log line is `<N>message`.
//!
//! Everything listens on 127.0.0.1; every child is killed and reaped by
//! its guard, and every wait has a deadline.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{SocketAddr as UnixSocketAddr, UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chat_tests::irc::IrcClient;
use chat_tests::tls::{Certificate, TlsClient};
use chat_tests::{binary, clean_command, parse_welcome, Client, Daemon, Proc, TIMEOUT};

/// The exposure `systemd-analyze security` may give the socket-activated
/// service at most (issue 4's target).
const MAX_EXPOSURE: f64 = 0.5;

/// The socket units shipped beside the service.
const SOCKET_UNITS: [&str; 6] = [
    "chat-server.socket",
    "chat-server-tls.socket",
    "chat-server-irc.socket",
    "chat-server-ircs.socket",
    "chat-server-web.socket",
    "chat-server-webs.socket",
];

/// Where the units are installed from; `ExecStart=` names the binary there.
const INSTALLED_BINARY: &str = "/usr/bin/chat-server";

/// The most datagrams read while waiting for a particular notification.
const MAX_NOTIFICATIONS: usize = 1000;

/// Tries at a free port for `systemd-socket-activate`, which cannot listen
/// on port 0: a port freed a moment ago is taken by someone else only
/// rarely, so a few tries settle it.
const PORT_TRIES: usize = 5;

/// A hint for when systemd's tools are missing.
const SYSTEMD_HINT: &str = "install the systemd package (apt-get install systemd)";

// ---------------------------------------------------------------------------
// Helpers.

/// A directory of this test's own under the system's temporary directory,
/// removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("chat-server-{what}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The shipped units, copied to a temporary directory with `ExecStart=`
/// pointing at the binary just built (systemd-analyze checks that the
/// program exists, and nothing is installed in /usr/bin here).
fn units_for_analysis() -> TempDir {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd");
    let dir = TempDir::new("units");
    let built = binary("chat-server");
    let service = fs::read_to_string(shipped.join("chat-server.service")).expect("read the service unit");
    let exec_start = format!("ExecStart={INSTALLED_BINARY}");
    assert_eq!(
        service
            .lines()
            .filter(|l| l.starts_with("ExecStart="))
            .collect::<Vec<_>>(),
        [exec_start.as_str()],
        "the service runs the installed binary, as the README installs it"
    );
    let service = service.replace(&exec_start, &format!("ExecStart={}", built.display()));
    fs::write(dir.path().join("chat-server.service"), service).expect("write the service unit");
    for socket in SOCKET_UNITS {
        fs::copy(shipped.join(socket), dir.path().join(socket)).expect("copy a socket unit");
    }
    dir
}

/// Runs `systemd-analyze ARGS` and returns its exit status, stdout and
/// stderr.
fn systemd_analyze(args: &[&std::ffi::OsStr]) -> (std::process::ExitStatus, String, String) {
    let output = match clean_command("systemd-analyze").args(args).output() {
        Ok(output) => output,
        Err(e) => panic!("cannot run systemd-analyze: {e}; {SYSTEMD_HINT}"),
    };
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The overall exposure in `systemd-analyze security` output, from its line
/// `→ Overall exposure level for chat-server.service: 0.2 SAFE 😀`.
fn overall_exposure(output: &str) -> Option<f64> {
    let line = output
        .lines()
        .find(|l| l.contains("Overall exposure level for chat-server.service:"))?;
    let (_, rest) = line.split_once("chat-server.service:")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// A loopback port that was free a moment ago (bound, then released).
fn recently_free_port(datagram: bool) -> u16 {
    let addr = if datagram {
        UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    } else {
        TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr())
    };
    addr.expect("bind a free loopback port").port()
}

/// `systemd-socket-activate [--datagram] -l 127.0.0.1:PORT --fdname=chat
/// chat-server ARGS`, once it listens: the daemon starts (takes over the
/// process) at the first connection. Returns the process and the address.
#[track_caller]
fn socket_activate(datagram: bool, daemon_args: &[&str]) -> (Proc, SocketAddr) {
    socket_activate_with_env(datagram, &[], daemon_args)
}

/// [`socket_activate`] with `-E VAR=VALUE` for each of `env`: the tool
/// passes the daemon only these variables, its own LISTEN_* and a few
/// standard ones.
#[track_caller]
fn socket_activate_with_env(datagram: bool, env: &[&str], daemon_args: &[&str]) -> (Proc, SocketAddr) {
    socket_activate_as("chat", datagram, env, daemon_args)
}

/// [`socket_activate_with_env`] with the socket passed by the name `name`
/// (`FileDescriptorName=` in a socket unit).
#[track_caller]
fn socket_activate_as(name: &str, datagram: bool, env: &[&str], daemon_args: &[&str]) -> (Proc, SocketAddr) {
    let daemon = binary("chat-server");
    for _ in 0..PORT_TRIES {
        let addr = SocketAddr::from(([127, 0, 0, 1], recently_free_port(datagram)));
        let mut command = clean_command("systemd-socket-activate");
        if datagram {
            command.arg("--datagram");
        }
        command
            .arg("-l")
            .arg(addr.to_string())
            .arg(format!("--fdname={name}"))
            .args(env.iter().map(|assignment| format!("--setenv={assignment}")))
            .arg(&daemon)
            .args(daemon_args);
        let mut proc = Proc::spawn("systemd-socket-activate", command, SYSTEMD_HINT);
        let first = proc.stderr_line().unwrap_or_default();
        if first == format!("Listening on {addr} as 3.") {
            return (proc, addr);
        }
        proc.wait_exit();
        assert!(
            first.contains("Address already in use"),
            "systemd-socket-activate did not listen on {addr}; it said:\n{first}\n{}",
            proc.stderr_lines().join("\n")
        );
    }
    panic!("no free port for systemd-socket-activate in {PORT_TRIES} tries");
}

/// The test's side of `NOTIFY_SOCKET`: a Unix datagram socket that reads
/// what the daemon tells the service manager.
struct Notifications {
    /// Keeps the socket's directory until the test ends; `None` for a
    /// socket in the abstract namespace.
    _dir: Option<TempDir>,
    /// What to give the daemon as `NOTIFY_SOCKET`.
    target: OsString,
    socket: UnixDatagram,
    /// Every datagram read so far, for messages.
    seen: Vec<String>,
}

impl Notifications {
    /// A socket at a path, as systemd makes it.
    fn bind() -> Notifications {
        let dir = TempDir::new("notify");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        Notifications::new(Some(dir), path.into_os_string(), socket)
    }

    /// A socket in the abstract namespace (`NOTIFY_SOCKET=@name`), as a
    /// service manager in a container may make it.
    fn bind_abstract() -> Notifications {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "chat-server-notify-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let addr = UnixSocketAddr::from_abstract_name(name.as_bytes()).expect("an abstract address");
        let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract notify socket");
        Notifications::new(None, format!("@{name}").into(), socket)
    }

    fn new(dir: Option<TempDir>, target: OsString, socket: UnixDatagram) -> Notifications {
        socket
            .set_read_timeout(Some(TIMEOUT))
            .expect("set a read timeout");
        Notifications {
            _dir: dir,
            target,
            socket,
            seen: Vec::new(),
        }
    }

    /// What to give the daemon as `NOTIFY_SOCKET`.
    fn target(&self) -> &OsStr {
        &self.target
    }

    /// Reads (into `seen`) every datagram already queued, without waiting.
    fn drain(&mut self) {
        self.socket.set_nonblocking(true).expect("set non-blocking");
        let mut buf = [0u8; 4096];
        for _ in 0..MAX_NOTIFICATIONS {
            match self.socket.recv(&mut buf) {
                Ok(n) => self
                    .seen
                    .push(String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("cannot read the notify socket: {e}"),
            }
        }
        self.socket.set_nonblocking(false).expect("set blocking");
    }

    /// Reads datagrams until one has a line for which `wanted` is true, and
    /// returns that datagram's lines.
    ///
    /// # Panics
    /// When none comes within [`TIMEOUT`] (or [`MAX_NOTIFICATIONS`]).
    #[track_caller]
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut buf = [0u8; 4096];
        for _ in 0..MAX_NOTIFICATIONS {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.socket
                .set_read_timeout(Some(left))
                .expect("set a read timeout");
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned();
                    self.seen.push(text.clone());
                    let lines: Vec<String> = text.lines().map(str::to_string).collect();
                    if lines.iter().any(|l| wanted(l)) {
                        return lines;
                    }
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
                Err(e) => panic!("cannot read the notify socket: {e}"),
            }
        }
        panic!(
            "no notification with {what} in time; the daemon sent:\n{:#?}",
            self.seen
        );
    }

    /// Reads datagrams until one has the line `line`.
    #[track_caller]
    fn wait_for_line(&mut self, line: &str) -> Vec<String> {
        self.wait_for(line, |l| l == line)
    }
}

/// The daemon with `args` and `NOTIFY_SOCKET` set to `notify`'s socket.
fn notified_daemon(notify: &Notifications, args: &[&str]) -> Command {
    let mut command = Daemon::command(args);
    command.env("NOTIFY_SOCKET", notify.target());
    command
}

/// The `STATUS=` value among `lines`.
#[track_caller]
fn status_in(lines: &[String]) -> &str {
    match lines.iter().find_map(|l| l.strip_prefix("STATUS=")) {
        Some(status) => status,
        None => panic!("no STATUS= line in {lines:?}"),
    }
}

/// Starts `command` with its stderr on one end of a Unix stream socket
/// pair (as journald connects a service's stderr) and `JOURNAL_STREAM` set
/// to that socket's device and inode, as systemd sets it.
fn spawn_with_journal_stderr(mut command: Command) -> Proc {
    let (ours, theirs) = UnixStream::pair().expect("a socket pair");
    let theirs = OwnedFd::from(theirs);
    let meta = File::from(theirs.try_clone().expect("dup the socket"))
        .metadata()
        .expect("fstat the socket");
    command
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stderr(Stdio::from(theirs));
    Proc::spawn_with_stderr(
        "chat-server",
        command,
        ours,
        "build it with `cargo build --workspace`",
    )
}

// ---------------------------------------------------------------------------
// The units.

/// Runs `scripts/verify-units ARGS`, the check README gives for the units
/// of a checkout, and returns its exit code, stdout and stderr.
fn verify_units(args: &[&OsStr]) -> (Option<i32>, String, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/verify-units");
    let output = match clean_command(&script).args(args).output() {
        Ok(output) => output,
        Err(e) => panic!("cannot run {}: {e}", script.display()),
    };
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn scripts_verify_units_finds_nothing_to_say_about_either_unit() {
    // systemd-analyze verify, on copies of the shipped units whose
    // ExecStart= runs the binary built for these tests; the script fails
    // on any output from it, since verify exits 0 for unknown keys and bad
    // values, which it only warns about.
    let built = binary("chat-server");
    let (code, stdout, stderr) = verify_units(&[built.as_os_str()]);
    assert_eq!(code, Some(0), "scripts/verify-units failed:\n{stdout}{stderr}");
    assert_eq!(stderr, "", "nothing on stderr");
    assert!(stdout.contains("nothing to say about any unit"), "{stdout}");
    assert!(
        stdout.contains("Overall exposure level for chat-server.service:"),
        "it shows the sandbox's exposure:\n{stdout}"
    );
}

#[test]
fn scripts_verify_units_fails_on_a_unit_with_a_mistake() {
    let units = TempDir::new("broken-units");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd");
    let service = fs::read_to_string(shipped.join("chat-server.service")).expect("read the service unit");
    let service = service.replacen("Restart=on-failure", "Restart=on-failure\nRestartOften=yes", 1);
    fs::write(units.path().join("chat-server.service"), service).expect("write the service unit");
    for socket in SOCKET_UNITS {
        fs::copy(shipped.join(socket), units.path().join(socket)).expect("copy a socket unit");
    }
    let built = binary("chat-server");
    let (code, stdout, stderr) = verify_units(&[built.as_os_str(), units.path().as_os_str()]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("Unknown key") && stderr.contains("RestartOften"),
        "the complaint is shown: {stderr}"
    );
    // And a binary that is not there is named.
    let (code, _, stderr) = verify_units(&[OsStr::new("/nonexistent/chat-server")]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "verify-units: /nonexistent/chat-server is not an executable file: build it \
         (cargo build --release) or name one\n"
    );
}

#[test]
fn the_socket_activated_service_reaches_the_exposure_target() {
    let units = units_for_analysis();
    let service = units.path().join("chat-server.service");
    let (status, stdout, stderr) = systemd_analyze(&[
        "security".as_ref(),
        "--offline=yes".as_ref(),
        "--no-pager".as_ref(),
        service.as_os_str(),
    ]);
    assert!(
        status.success(),
        "systemd-analyze security failed ({status}):\n{stdout}{stderr}"
    );
    let Some(exposure) = overall_exposure(&stdout) else {
        panic!("no overall exposure in the output of systemd-analyze security:\n{stdout}{stderr}");
    };
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} is over the target of {MAX_EXPOSURE}; what is left:\n{}",
        stdout
            .lines()
            .filter(|l| l.starts_with('✗'))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_service_with_its_tls_credentials_verifies_and_stays_at_the_exposure_target() {
    // The credential lines the service unit shows in a comment, as
    // `systemctl edit chat-server` would add them.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd");
    let units = TempDir::new("credential-units");
    for socket in SOCKET_UNITS {
        fs::copy(shipped.join(socket), units.path().join(socket)).expect("copy a socket unit");
    }
    let path = units.path().join("chat-server.service");
    let service = fs::read_to_string(shipped.join("chat-server.service")).expect("read the service unit");
    let credentials: Vec<&str> = service
        .lines()
        .filter_map(|l| l.strip_prefix("#   "))
        .filter(|l| l.starts_with("LoadCredential="))
        .collect();
    assert_eq!(
        credentials,
        [
            "LoadCredential=tls-cert:/etc/letsencrypt/live/chat.example.org/fullchain.pem",
            "LoadCredential=tls-key:/etc/letsencrypt/live/chat.example.org/privkey.pem"
        ],
        "the unit shows the credentials the daemon looks for"
    );
    assert!(
        service.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"),
        "{service}"
    );
    let with_credentials = service.replacen(
        "[Service]\n",
        &format!("[Service]\n{}\n", credentials.join("\n")),
        1,
    );
    fs::write(&path, with_credentials).expect("write the service unit");
    let (code, stdout, stderr) = verify_units(&[binary("chat-server").as_os_str(), units.path().as_os_str()]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let Some(exposure) = overall_exposure(&stdout) else {
        panic!("no exposure in:\n{stdout}");
    };
    assert!(exposure <= MAX_EXPOSURE, "exposure {exposure}:\n{stdout}");
}

#[test]
fn the_overall_exposure_is_read_from_its_line() {
    let output = "✗ UMask= Files created by service are world-readable by default 0.1\n\n\
                  → Overall exposure level for chat-server.service: 0.2 SAFE 😀\n";
    assert_eq!(overall_exposure(output), Some(0.2));
    assert_eq!(
        overall_exposure("→ Overall exposure level for other.service: 0.2"),
        None
    );
}

// ---------------------------------------------------------------------------
// Socket activation.

#[test]
fn under_systemd_socket_activate_the_daemon_serves_the_inherited_socket_only() {
    let (proc, addr) = socket_activate(false, &[]);
    // systemd-socket-activate starts the daemon at this first connection;
    // the connection waits in the socket's backlog until it accepts.
    let mut alice = Client::connect_named(addr, "alice");
    let mut daemon = Daemon::attach(proc, 1);
    assert_eq!(daemon.addrs(), [addr], "it serves the socket it was given");
    let mut bob = daemon.connect();
    alice.expect_line(&format!("-- {} joined #lobby", bob.nick()));
    bob.send("over an inherited socket");
    alice.expect_line(&format!("<{}> over an inherited socket", bob.nick()));

    daemon
        .proc
        .expect_stderr_containing(&["connect", &bob.local_addr().to_string()]);
    // Everything it listens on was logged before the first connection was
    // served: the inherited socket, and not the default 127.0.0.1:7878.
    let log = daemon.proc.stderr_lines().to_vec();
    let listening: Vec<&String> = log.iter().filter(|l| l.contains("listening on ")).collect();
    assert_eq!(listening.len(), 1, "one listener only:\n{}", log.join("\n"));
    assert!(
        log.iter().any(|l| l.ends_with(&format!(
            "socket activation: serving {addr}, passed as \"chat\" (fd 3)"
        ))),
        "the inherited socket is logged with its name and descriptor:\n{}",
        log.join("\n")
    );

    daemon.proc.signal("TERM");
    alice.expect_line("-- server shutting down");
    bob.expect_line("-- server shutting down");
    drop((alice, bob));
    daemon.proc.expect_exit_code(0);
}

#[test]
fn an_empty_chat_server_listen_adds_no_address_to_the_passed_socket() {
    // As an EnvironmentFile= line `CHAT_SERVER_LISTEN=` sets it: empty
    // counts as unset (it was a start error), so only the passed socket is
    // served.
    let (proc, addr) = socket_activate_with_env(false, &["CHAT_SERVER_LISTEN="], &[]);
    let mut alice = Client::connect_named(addr, "alice");
    let daemon = Daemon::attach(proc, 1);
    assert_eq!(daemon.addrs(), [addr]);
    alice.send("/who");
    alice.expect_line("-- 1 in #lobby: alice");
    let log = daemon.proc.stderr_lines();
    assert_eq!(
        log.iter().filter(|l| l.contains("listening on ")).count(),
        1,
        "one listener only:\n{}",
        log.join("\n")
    );
}

#[test]
fn an_inherited_socket_and_listen_are_served_together() {
    let (proc, inherited) = socket_activate(false, &["--listen", "127.0.0.1:0"]);
    let mut alice = Client::connect_named(inherited, "alice");
    let daemon = Daemon::attach(proc, 2);
    assert_eq!(daemon.addrs()[0], inherited, "the inherited socket comes first");
    let own = daemon.addrs()[1];
    assert_ne!(own, inherited);
    assert!(own.ip().is_loopback() && own.port() != 0, "{own}");

    let mut bob = Client::connect_guest(own);
    alice.expect_line(&format!("-- {} joined #lobby", bob.nick()));
    bob.send("from the daemon's own socket");
    alice.expect_line(&format!("<{}> from the daemon's own socket", bob.nick()));
}

#[test]
fn a_passed_socket_that_is_not_a_listening_tcp_socket_is_refused() {
    let (mut proc, addr) = socket_activate(true, &[]);
    // Traffic on the datagram socket starts the daemon.
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    udp.send_to(b"hello\n", addr).expect("send a datagram");
    proc.expect_exit_code(1);
    let errors = proc.error_lines();
    assert_eq!(
        errors,
        [
            "error: the socket \"chat\" passed by the service manager (fd 3) is not a listening TCP socket: \
          it is not a stream socket (ListenStream= makes one)"
        ],
        "one clear line; stderr was:\n{}",
        proc.stderr_lines().join("\n")
    );
}

#[test]
fn a_socket_passed_as_tls_is_served_over_tls_with_the_certificate_from_credentials() {
    // What systemd does with chat-server-tls.socket (FileDescriptorName=tls)
    // and LoadCredential=tls-cert:... / tls-key:...: the files are copied
    // into $CREDENTIALS_DIRECTORY under the credentials' names.
    let certificate = Certificate::new("credentials");
    let credentials = TempDir::new("credentials");
    fs::copy(certificate.cert_path(), credentials.path().join("tls-cert")).expect("copy the certificate");
    fs::copy(certificate.key_path(), credentials.path().join("tls-key")).expect("copy the key");
    let env = format!("CREDENTIALS_DIRECTORY={}", credentials.path().display());
    let (proc, addr) = socket_activate_as("tls", false, &[&env], &[]);
    // The first connection starts the daemon; it waits in the backlog.
    let connecting = std::thread::spawn(move || {
        let mut client = TlsClient::connect(addr, &certificate.der);
        let welcome = client.read_line();
        (client, welcome, certificate)
    });
    let mut daemon = Daemon::attach(proc, 1);
    assert_eq!(daemon.addrs(), [addr]);
    let (mut alice, welcome, certificate) = connecting.join().expect("the TLS client");
    assert!(parse_welcome(&welcome).is_some(), "{welcome}");
    assert_eq!(alice.presented, certificate.der);
    let log = daemon.proc.expect_stderr_containing(&["TLS certificate"]);
    assert!(
        log.contains(&credentials.path().join("tls-cert").display().to_string())
            && log.contains(&certificate.fingerprint().to_string()),
        "the certificate comes from the credential: {log}"
    );
    assert!(
        daemon
            .proc
            .stderr_lines()
            .iter()
            .any(|l| l.ends_with(&format!("listening on {addr} (TLS)"))),
        "{}",
        daemon.proc.stderr_lines().join("\n")
    );
    alice.send("/who");
    let who = alice.read_line();
    assert!(who.starts_with("-- 1 in #lobby: guest"), "{who}");
}

#[test]
fn a_socket_passed_as_irc_serves_irc() {
    let (proc, addr) = socket_activate_as("irc", false, &[], &["--server-name", "irc.test"]);
    // The first connection starts the daemon; it waits in the backlog.
    let registering = std::thread::spawn(move || IrcClient::registered(addr, "alice"));
    let daemon = Daemon::attach(proc, 1);
    let mut alice = registering.join().expect("the IRC client");
    assert!(
        daemon
            .proc
            .stderr_lines()
            .iter()
            .any(|l| l.ends_with(&format!("listening on {addr} (IRC)"))),
        "{}",
        daemon.proc.stderr_lines().join("\n")
    );
    alice.send("JOIN #rust");
    alice.expect_line(":alice!alice@chat-server JOIN #rust");
}

#[test]
fn a_socket_passed_as_tls_without_a_certificate_is_a_start_error() {
    let (mut proc, addr) = socket_activate_as("tls", false, &[], &[]);
    // A connection starts the daemon, which refuses to serve TLS without
    // a certificate and exits; the connection is then closed unanswered.
    let _client = TcpStream::connect(addr).expect("connect to the passed socket");
    proc.expect_exit_code(1);
    let errors = proc.error_lines();
    assert_eq!(
        errors,
        [
            "error: TLS listeners need a certificate and a key (--tls-cert and --tls-key, or the \
             systemd credentials tls-cert and tls-key)"
        ],
        "{}",
        proc.stderr_lines().join("\n")
    );
}

/// `sh -c '... exec chat-server ARGS'` with `LISTEN_PID` and `LISTEN_FDS`
/// set as the shell's `assignments`: the shell's pid is the daemon's, as
/// `LISTEN_PID=$$` needs. Descriptor 3 is closed in the child (the test
/// process opens everything close-on-exec).
fn daemon_with_listen_env(assignments: &str, args: &[&str]) -> Command {
    let mut command = clean_command("sh");
    command
        .arg("-c")
        .arg(format!("{assignments} exec \"$0\" \"$@\""))
        .arg(binary("chat-server"))
        .args(args);
    command
}

#[test]
fn listen_fds_promising_a_closed_descriptor_is_a_clear_start_error() {
    let command = daemon_with_listen_env("LISTEN_PID=$$ LISTEN_FDS=1", &["--listen", "127.0.0.1:0"]);
    let mut daemon = Proc::spawn("chat-server", command, "build it with `cargo build --workspace`");
    daemon.expect_exit_code(1);
    let stderr = daemon.stderr_lines();
    assert_eq!(stderr.len(), 1, "one line: {stderr:?}");
    assert!(
        stderr[0].starts_with("error: cannot take the sockets passed by the service manager (LISTEN_FDS): "),
        "{stderr:?}"
    );
}

#[test]
fn sockets_passed_to_another_process_are_not_taken() {
    // LISTEN_PID names PID 1: the variables were meant for someone else
    // (and inherited), so descriptor 3 is not ours to take.
    let command = daemon_with_listen_env("LISTEN_PID=1 LISTEN_FDS=1", &["--listen", "127.0.0.1:0"]);
    let proc = Proc::spawn("chat-server", command, "build it with `cargo build --workspace`");
    let daemon = Daemon::attach(proc, 1);
    daemon.connect();
    let log = daemon.proc.stderr_lines();
    assert!(
        !log.iter().any(|l| l.contains("socket activation")),
        "no socket was taken:\n{}",
        log.join("\n")
    );
}

// ---------------------------------------------------------------------------
// The notify protocol.

#[test]
fn notify_says_ready_once_listening_then_the_client_count_then_stopping_on_sigterm() {
    let mut notify = Notifications::bind();
    let command = notified_daemon(&notify, &["--listen", "127.0.0.1:0"]);
    let mut daemon = Proc::spawn("chat-server", command, "build it with `cargo build --workspace`");

    let ready = notify.wait_for_line("READY=1");
    let status = status_in(&ready);
    let addr: SocketAddr = match status
        .strip_prefix("0 clients connected; 0 lines received, 0 messages delivered; listening on ")
    {
        Some(addr) => addr.parse().expect("the status names the listening address"),
        None => panic!("unexpected status with READY=1: {status:?}"),
    };
    // Connect as soon as systemd would consider the service started: the
    // listener is up.
    let mut alice = Client::connect_named(addr, "alice");

    let one = notify.wait_for("a status of 1 client", |l| {
        l.starts_with("STATUS=1 client connected")
    });
    // alice's /nick may or may not be counted yet when the status is sent.
    let status = status_in(&one);
    assert!(
        status.starts_with("1 client connected; ")
            && (status.contains("; 0 lines received, 0 messages delivered; ")
                || status.contains("; 1 line received, 0 messages delivered; "))
            && status.ends_with(&format!("; listening on {addr}")),
        "{status:?}"
    );

    daemon.signal("TERM");
    let stopping = notify.wait_for_line("STOPPING=1");
    assert_eq!(status_in(&stopping), "shutting down");
    alice.expect_line("-- server shutting down");
    alice.expect_eof();
    drop(alice);
    daemon.expect_exit_code(0);
    assert!(
        !notify.seen.iter().any(|d| d.contains("WATCHDOG=1")),
        "no watchdog pings without WATCHDOG_USEC: {:#?}",
        notify.seen
    );
}

#[test]
fn with_watchdog_usec_the_daemon_pings_the_watchdog_while_it_runs() {
    let mut notify = Notifications::bind();
    let mut command = notified_daemon(&notify, &["--listen", "127.0.0.1:0"]);
    // 200 ms: a ping every 100 ms.
    command.env("WATCHDOG_USEC", "200000");
    let mut daemon = Daemon::start_with(command, 1);
    notify.wait_for_line("READY=1");
    // Logged at start, before the listening address.
    assert!(
        daemon
            .proc
            .stderr_lines()
            .iter()
            .any(|l| l.contains("systemd watchdog: 200 ms timeout, a ping every 100 ms")),
        "{:#?}",
        daemon.proc.stderr_lines()
    );
    // Pings keep coming, and the server keeps serving meanwhile.
    notify.wait_for_line("WATCHDOG=1");
    let mut alice = daemon.connect_named("alice");
    notify.wait_for_line("WATCHDOG=1");
    alice.send("/who");
    alice.expect_line("-- 1 in #lobby: alice");

    daemon.proc.signal("TERM");
    notify.wait_for_line("STOPPING=1");
    alice.expect_line("-- server shutting down");
    drop(alice);
    daemon.proc.expect_exit_code(0);
}

#[test]
fn a_watchdog_meant_for_another_process_is_left_alone() {
    let mut notify = Notifications::bind();
    let mut command = notified_daemon(&notify, &["--listen", "127.0.0.1:0"]);
    // WATCHDOG_PID names the process the watchdog is for: here, not us.
    command.env("WATCHDOG_USEC", "200000").env("WATCHDOG_PID", "1");
    let mut daemon = Daemon::start_with(command, 1);
    notify.wait_for_line("READY=1");
    let alice = daemon.connect();
    // The status update comes a second or so later: by then a watchdog
    // would have pinged several times.
    notify.wait_for("a status of 1 client", |l| {
        l.starts_with("STATUS=1 client connected")
    });
    daemon.proc.signal("TERM");
    notify.wait_for_line("STOPPING=1");
    drop(alice);
    daemon.proc.expect_exit_code(0);
    assert!(
        !notify.seen.iter().any(|d| d.contains("WATCHDOG=1")),
        "no pings for another process's watchdog: {:#?}",
        notify.seen
    );
    assert!(
        !daemon
            .proc
            .stderr_lines()
            .iter()
            .any(|l| l.contains("systemd watchdog")),
        "{:#?}",
        daemon.proc.stderr_lines()
    );
}

#[test]
fn notify_reaches_a_socket_in_the_abstract_namespace() {
    let mut notify = Notifications::bind_abstract();
    let command = notified_daemon(&notify, &["--listen", "127.0.0.1:0"]);
    let mut daemon = Daemon::start_with(command, 1);
    let ready = notify.wait_for_line("READY=1");
    assert!(
        status_in(&ready).ends_with(&format!("listening on {}", daemon.addr())),
        "{ready:?}"
    );
    daemon.proc.signal("TERM");
    notify.wait_for_line("STOPPING=1");
    daemon.proc.expect_exit_code(0);
}

/// Sets the soft descriptor limit of process `pid` to `soft` with
/// util-linux's `prlimit` (the crate denies unsafe code, so no
/// `libc::prlimit`).
#[track_caller]
fn set_soft_descriptor_limit(pid: u32, soft: &str) {
    let status = clean_command("prlimit")
        .arg("--pid")
        .arg(pid.to_string())
        .arg(format!("--nofile={soft}:"))
        .status();
    match status {
        Ok(status) => assert!(status.success(), "prlimit --nofile={soft}: failed: {status}"),
        Err(e) => panic!("cannot run prlimit: {e}; it comes with util-linux (apt-get install util-linux)"),
    }
}

/// The soft descriptor limit of process `pid`, from `/proc/PID/limits`.
#[track_caller]
fn soft_descriptor_limit(pid: u32) -> String {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).expect("read /proc/PID/limits");
    match limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|l| l.split_whitespace().next())
    {
        Some(soft) => soft.to_string(),
        None => panic!("no open files limit in:\n{limits}"),
    }
}

/// Watchdog pings that must arrive while the daemon can open no
/// descriptor: more than one, since a ping whose socket was opened just
/// before the limit fell could still get through with a socket per ping.
const PINGS_WITHOUT_DESCRIPTORS: usize = 3;

#[test]
fn the_watchdog_is_pinged_while_the_daemon_cannot_open_a_descriptor() {
    let mut notify = Notifications::bind();
    let mut command = notified_daemon(&notify, &["--listen", "127.0.0.1:0"]);
    // 200 ms: a ping every 100 ms.
    command.env("WATCHDOG_USEC", "200000");
    let mut daemon = Daemon::start_with(command, 1);
    notify.wait_for_line("READY=1");
    notify.wait_for_line("WATCHDOG=1");
    let pid = daemon.proc.pid();
    let soft = soft_descriptor_limit(pid);

    // From here on the daemon can open no descriptor at all.
    set_soft_descriptor_limit(pid, "0");
    // Proof: a new client waits in the backlog, and the daemon says why.
    let waiting = TcpStream::connect_timeout(&daemon.addr(), TIMEOUT).expect("connect");
    daemon
        .proc
        .expect_stderr_containing(&["cannot accept connections", "retrying every"]);
    // Pings sent before the limit fell may be queued still.
    notify.drain();
    for _ in 0..PINGS_WITHOUT_DESCRIPTORS {
        notify.wait_for_line("WATCHDOG=1");
    }

    // With descriptors back, the waiting client is served.
    set_soft_descriptor_limit(pid, &soft);
    let mut client = Client::guest_from_stream(waiting);
    client.send("/who");
    client.expect_line(&format!("-- 1 in #lobby: {}", client.nick()));
    daemon.proc.signal("TERM");
    notify.wait_for_line("STOPPING=1");
    client.expect_line("-- server shutting down");
    drop(client);
    daemon.proc.expect_exit_code(0);
}

// ---------------------------------------------------------------------------
// journald.

#[test]
fn with_journal_stream_each_log_line_is_a_priority_prefix_and_the_message() {
    let proc = spawn_with_journal_stderr(Daemon::command(&[
        "--listen",
        "127.0.0.1:0",
        "--max-clients",
        "1",
    ]));
    let mut daemon = Daemon::attach(proc, 1);
    let addr = daemon.addr();
    let log = daemon.proc.stderr_lines().to_vec();
    assert_eq!(
        log.last().map(String::as_str),
        Some(format!("<6>listening on {addr}").as_str()),
        "info is <6>, with no timestamp or level of our own"
    );

    let alice = daemon.connect();
    let connect = daemon.proc.expect_stderr_containing(&["connect"]);
    assert_eq!(
        connect,
        format!("<6>connect {} as {}", alice.local_addr(), alice.nick())
    );
    // One client too many is a warning: <4>.
    let mut refused = Client::connect(addr);
    refused.expect_line("!! server full");
    let warning = daemon.proc.expect_stderr_containing(&["refused", "server full"]);
    assert!(warning.starts_with("<4>refused 127.0.0.1:"), "{warning:?}");

    daemon.proc.signal("TERM");
    drop((alice, refused));
    daemon.proc.expect_exit_code(0);
    for line in daemon.proc.stderr_lines() {
        let priority = line.strip_prefix('<').and_then(|rest| rest.split_once('>'));
        assert!(
            matches!(priority, Some((p, _)) if p.len() == 1 && "01234567".contains(p)),
            "every line starts with a syslog priority: {line:?}"
        );
        assert!(
            !line.contains(" INFO ") && !line.contains("[20"),
            "no timestamp or level: {line:?}"
        );
    }
}

#[test]
fn with_journal_stream_a_start_up_failure_is_logged_at_priority_err() {
    let first = Daemon::start(&[]);
    let busy = first.addr().to_string();
    let mut second = spawn_with_journal_stderr(Daemon::command(&["--listen", &busy]));
    second.expect_exit_code(1);
    assert_eq!(
        second.stderr_lines(),
        [format!(
            "<3>error: cannot listen on {busy}: address already in use"
        )],
        "the whole of stderr"
    );
}

#[test]
fn a_journal_stream_that_is_not_our_stderr_is_ignored() {
    let mut command = Daemon::command(&["--listen", "127.0.0.1:0"]);
    // As inherited from a parent whose stderr was the journal, while ours
    // is a pipe.
    command.env("JOURNAL_STREAM", "1:1");
    let daemon = Daemon::start_with(command, 1);
    let line = daemon.proc.stderr_lines().last().cloned().unwrap_or_default();
    assert!(
        line.starts_with('[') && line.contains(" INFO "),
        "the usual format, with timestamp and level: {line:?}"
    );
    daemon.connect();
}
