//! One session: connect, start the two reader threads, run the main loop,
//! shut down.
//!
//! The main thread owns the writing half of the socket and standard output;
//! the threads in [`crate::incoming`] and [`crate::input`] only read and
//! hand over what they read through bounded channels (so a flood from the
//! server waits in the kernel rather than in memory when the terminal is
//! slow). The main loop waits on both channels at once with
//! [`crossbeam_channel::select!`], and after `/quit` also on a deadline, so
//! it never sleeps and never polls.
//!
//! How a session ends:
//! - End of input, or a `/quit` line: `/quit` goes to the server, and the
//!   loop keeps printing until the server closes the connection (exit 0) or
//!   [`QUIT_GRACE`] passes (exit 0, with a warning).
//! - The server closes first: the connection is lost (exit 3).
//! - Standard output is closed (`chat-client | head -1`): tell the server
//!   `/quit` and stop at once, quietly (exit 0).

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{after, bounded, never, select, Receiver};

use crate::args::Args;
use crate::connect::connect;
use crate::error::{warn, ClientError};
use crate::incoming::{read_server, FromServer, ServerText};
use crate::input::{read_stdin, FromStdin};

/// How long to wait, after sending `/quit`, for the server to close the
/// connection. The server closes as soon as it has flushed its reply, so
/// this only matters when it is stuck or is not a chat-server at all; then
/// a script must still end.
const QUIT_GRACE: Duration = Duration::from_secs(5);

/// Lines a channel holds before its reader thread waits for the main loop.
/// Enough to absorb a burst; small enough that a fast sender's lines wait
/// in socket buffers, not in this process.
const CHANNEL_CAPACITY: usize = 256;

/// What the user's `/quit` or end of input is sent as.
const QUIT_LINE: &[u8] = b"/quit\n";

/// How the main loop ended, when it did not end with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The server closed the connection after `/quit`.
    Closed,
    /// The server did not close within [`QUIT_GRACE`] after `/quit`.
    QuitTimedOut,
    /// Standard output is closed; nobody reads what the server says.
    OutputClosed,
}

/// Where the input thread is, which decides whether it can be joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputState {
    /// Still reading; it may be blocked on a terminal.
    Reading,
    /// It sent its last message (end of input, `/quit` or an error) and
    /// returned, or is about to.
    Done,
}

/// Connects as `args` say and runs the session to its end.
///
/// # Errors
/// A [`ClientError`] for each way a session can fail; its
/// [`ClientError::exit_code`] is the process's.
pub fn run(args: &Args) -> Result<(), ClientError> {
    let stream = connect(&args.addr, args.connect_timeout)?;
    let read_half = stream.try_clone().map_err(|source| ClientError::Local {
        what: "duplicate the socket handle",
        source,
    })?;

    let (server_tx, server_rx) = bounded(CHANNEL_CAPACITY);
    let server_reader = spawn("server-reader", move || read_server(read_half, server_tx))?;

    let mut session = Session {
        stream,
        server_rx,
        stdin_rx: never(),
        quit_deadline: never(),
        quitting: false,
        input: InputState::Reading,
    };
    let mut stdin_reader = None;
    let ending = session.converse(args, &mut stdin_reader);

    let input = session.input;
    session.close();
    // The reader thread is unblocked by the shutdown and by its channel
    // being gone, so this join returns promptly. A panic in it has already
    // been reported by the panic hook; there is nothing more to do with it.
    let _ = server_reader.join();
    if let (InputState::Done, Some(handle)) = (input, stdin_reader) {
        let _ = handle.join();
    }
    // Otherwise the input thread is left running: it may be blocked reading
    // a terminal, and such a read cannot be interrupted portably. The
    // process exits right after this, which ends it.

    match ending? {
        Ending::Closed | Ending::OutputClosed => Ok(()),
        Ending::QuitTimedOut => {
            let secs = QUIT_GRACE.as_secs();
            warn(format_args!(
                "server did not close the connection within {secs} s after /quit"
            ));
            Ok(())
        }
    }
}

/// Starts a named thread.
fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, ClientError> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
        .map_err(|source| ClientError::Local {
            what: "start a thread",
            source,
        })
}

/// The main loop's state.
struct Session {
    /// The socket. The main loop writes to it; the server reader thread
    /// reads from a clone of it; shutting it down unblocks that thread.
    stream: TcpStream,
    /// Lines from the server, then how the connection ended.
    server_rx: Receiver<FromServer>,
    /// Lines of input; a receiver that never delivers once the input is
    /// over (or before it starts), so the loop stops waiting on it.
    stdin_rx: Receiver<FromStdin>,
    /// Fires [`QUIT_GRACE`] after `/quit` was sent; never before that.
    quit_deadline: Receiver<Instant>,
    /// True once `/quit` was sent: from then on the server closing the
    /// connection is the expected end, not a lost connection.
    quitting: bool,
    /// Whether the input thread can be joined.
    input: InputState,
}

/// One thing the main loop has to react to.
enum Event {
    /// A message from the server reader thread.
    Server(FromServer),
    /// A message from the input thread.
    Stdin(FromStdin),
    /// [`QUIT_GRACE`] has passed since `/quit` was sent.
    QuitTimedOut,
}

impl Session {
    /// Greets the server, starts the input thread (its handle goes to
    /// `stdin_reader`) and runs the main loop on standard output.
    ///
    /// Nick and room go out before any line of input can, because the input
    /// thread starts only after they are written.
    fn converse(
        &mut self,
        args: &Args,
        stdin_reader: &mut Option<JoinHandle<()>>,
    ) -> Result<Ending, ClientError> {
        self.greet(args)?;
        let (stdin_tx, stdin_rx) = bounded(CHANNEL_CAPACITY);
        *stdin_reader = Some(spawn("stdin-reader", move || read_stdin(stdin_tx))?);
        self.stdin_rx = stdin_rx;
        self.main_loop(&mut io::stdout().lock())
    }

    /// Sends `/nick` and `/join` as the arguments ask.
    fn greet(&mut self, args: &Args) -> Result<(), ClientError> {
        if let Some(nick) = &args.nick {
            self.send(format!("/nick {nick}\n").as_bytes())?;
        }
        if let Some(room) = &args.room {
            self.send(format!("/join {room}\n").as_bytes())?;
        }
        Ok(())
    }

    /// Prints server lines to `out` and sends input lines to the server
    /// until the session ends.
    fn main_loop(&mut self, out: &mut impl Write) -> Result<Ending, ClientError> {
        loop {
            let event = select! {
                // A reader thread that ended without its last message
                // (it panicked) is taken as its stream having ended.
                recv(self.server_rx) -> msg => Event::Server(msg.unwrap_or(FromServer::Closed(Ok(())))),
                recv(self.stdin_rx) -> msg => Event::Stdin(msg.unwrap_or(FromStdin::Eof)),
                recv(self.quit_deadline) -> _ => Event::QuitTimedOut,
            };
            let ending = match event {
                Event::Server(FromServer::Line(line)) => print(out, &line)?,
                Event::Server(FromServer::Closed(end)) => Some(self.server_closed(end)?),
                Event::Stdin(input) => self.handle_input(input)?,
                Event::QuitTimedOut => Some(Ending::QuitTimedOut),
            };
            if let Some(ending) = ending {
                if ending == Ending::OutputClosed && !self.quitting {
                    // Best effort on the way out: if it fails, the server
                    // sees a disconnect instead, which is just as final.
                    let _ = self.stream.write_all(QUIT_LINE);
                }
                return Ok(ending);
            }
        }
    }

    /// The connection ended: expected after `/quit`, lost before it.
    fn server_closed(&self, end: io::Result<()>) -> Result<Ending, ClientError> {
        if self.quitting {
            // Any end will do, even a reset: the server was asked to close.
            return Ok(Ending::Closed);
        }
        match end {
            Ok(()) => Err(ClientError::ClosedByServer),
            Err(err) => Err(ClientError::ConnectionLost(err)),
        }
    }

    /// Sends a piece of input on, and starts quitting when the input is
    /// over.
    fn handle_input(&mut self, input: FromStdin) -> Result<Option<Ending>, ClientError> {
        match input {
            FromStdin::Line(bytes) => self.send(&bytes)?,
            FromStdin::Quit(line) => {
                self.send(&line)?;
                self.stop_input();
            }
            FromStdin::Eof => {
                self.send(QUIT_LINE)?;
                self.stop_input();
            }
            FromStdin::Failed(source) => {
                self.input = InputState::Done;
                return Err(ClientError::Local {
                    what: "read standard input",
                    source,
                });
            }
        }
        Ok(None)
    }

    /// The input is over and `/quit` was sent: stop waiting on the input
    /// and start waiting for the server to close.
    fn stop_input(&mut self) {
        self.input = InputState::Done;
        self.stdin_rx = never();
        self.quit_deadline = after(QUIT_GRACE);
        self.quitting = true;
    }

    /// Writes `bytes` to the server.
    fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        // `write_all` retries writes interrupted by a signal.
        self.stream.write_all(bytes).map_err(ClientError::ConnectionLost)
    }

    /// Shuts the socket down, which ends the server reader's blocking read,
    /// and drops the channel, which ends a send it may be blocked in.
    fn close(self) {
        // Fails only when the connection is already gone, which is the aim.
        let _ = self.stream.shutdown(Shutdown::Both);
        drop(self.server_rx);
    }
}

/// Prints one server line and flushes it, so that a reader at the other end
/// of a pipe gets it at once. Returns [`Ending::OutputClosed`] when standard
/// output has been closed.
///
/// # Errors
/// [`ClientError::Local`] when writing fails for another reason.
fn print(out: &mut impl Write, line: &ServerText) -> Result<Option<Ending>, ClientError> {
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => Ok(None),
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(Some(Ending::OutputClosed)),
        Err(source) => Err(ClientError::Local {
            what: "write standard output",
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::ServerLine;

    /// A writer whose reader has gone away, like a closed pipe.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    /// A writer that fails as a full disk would.
    struct FullDisk;

    impl Write for FullDisk {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("no space left on device"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn notice(text: &str) -> ServerText {
        ServerText::Known(ServerLine::Notice(text.to_string()))
    }

    #[test]
    fn a_line_is_printed_with_its_newline() {
        let mut out = Vec::new();
        assert!(print(&mut out, &notice("bye")).unwrap().is_none());
        assert!(print(&mut out, &ServerText::Unknown("raw".into()))
            .unwrap()
            .is_none());
        assert_eq!(out, b"-- bye\nraw\n");
    }

    #[test]
    fn a_closed_output_ends_the_session_quietly() {
        assert_eq!(
            print(&mut ClosedPipe, &notice("x")).unwrap(),
            Some(Ending::OutputClosed)
        );
    }

    #[test]
    fn other_output_errors_are_reported() {
        let err = print(&mut FullDisk, &notice("x")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot write standard output: no space left on device"
        );
        assert_eq!(err.exit_code(), 1);
    }
}
