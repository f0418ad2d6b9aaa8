//! One session: connect, start the reader threads, run the main loop,
//! reconnect when asked to, shut down.
//!
//! The main thread owns the writing half of the connection (plain TCP or
//! TLS, the same to the session: see [`crate::transport`]) and the output;
//! the threads in [`crate::incoming`] and [`crate::input`] (or the editor
//! thread of [`crate::terminal`]) only read and hand over what they read
//! through bounded channels (so a flood from the server waits in the kernel
//! rather than in memory when the terminal is slow). The main loop waits on
//! every source at once with [`crossbeam_channel::select!`] (server lines,
//! input, signals, the `/quit` deadline, the reconnection timer and
//! attempt), so it never sleeps and never polls.
//!
//! It also follows who and where the user is, from the server's own
//! confirmations ([`crate::notices`]): the prompt shows it, and a
//! reconnection takes the same nick and rejoins the same room.
//!
//! How a session ends:
//! - End of input, a `/quit` line, Ctrl-C or Ctrl-D (or SIGINT, SIGTERM,
//!   SIGHUP): `/quit` goes to the server, and the loop keeps printing until
//!   the server closes the connection (exit 0) or [`QUIT_GRACE`] passes
//!   (exit 0, with a warning). A second signal stops the wait.
//! - The server closes first: the connection is lost (exit 3), unless
//!   `--reconnect` was given; then the client retries with
//!   [`Backoff`]'s delays, and what is typed meanwhile waits in a queue.
//!   Quitting while disconnected exits 0 at once when nothing is waiting;
//!   otherwise the client keeps trying to deliver, and a signal gives up
//!   (exit 3).
//! - Standard output is closed (`chat-client | head -1`): tell the server
//!   `/quit` and stop at once, quietly (exit 0).
//! - The server refuses the nick or room asked for ([`crate::greeting`]),
//!   or does not answer within [`ANSWER_WAIT`]: a script sends `/quit` and
//!   nothing else (exit 4), unless `--allow-guest`; in a terminal the
//!   session goes on, saying so.
//!
//! Input never goes out before the server has confirmed the nick and room
//! (it waits in the queue meanwhile), and a line longer than the server
//! takes ([`crate::limit`]) is refused here, not sent and not shown as said.
//!
//! Status lines of the client's own (reconnecting, reconnected) go to the
//! screen in interactive mode and to standard error otherwise, so that
//! standard output carries only what the server said.

use std::collections::VecDeque;
use std::io::{self, IsTerminal, Write};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chat_protocol::{Command, Nick, RoomName, ServerLine};
use crossbeam_channel::{after, bounded, never, select, Receiver};

use crate::args::Args;
use crate::backoff::Backoff;
use crate::connect::{connect, Target};
use crate::error::{warn, ClientError};
use crate::greeting::{Answer, Greeting, Outcome};
use crate::incoming::{read_server, FromServer, ServerText};
use crate::input::{piece_size, read_stdin, read_texts, FromStdin};
use crate::limit::{line_len, too_long_max, Recent};
use crate::notices;
use crate::style::Style;
use crate::terminal::{run_editor, stop_editor, LineEditor, Shared, Terminal, TerminalOut};
use crate::transport::Transport;

/// How long to wait, after sending `/quit`, for the server to close the
/// connection. The server closes as soon as it has flushed its reply, so
/// this only matters when it is stuck or is not a chat-server at all; then
/// a script must still end.
const QUIT_GRACE: Duration = Duration::from_secs(5);

/// Lines a channel holds before its reader thread waits for the main loop.
/// Enough to absorb a burst; small enough that a fast sender's lines wait
/// in socket buffers, not in this process.
const CHANNEL_CAPACITY: usize = 256;

/// Lines kept while disconnected (`--reconnect`). Past this the main loop
/// stops taking input, so a script piping a large file waits (its lines
/// stay in the pipe) instead of filling memory.
const MAX_QUEUED: usize = 1024;

/// How long input waits for the server to answer the `/nick` and `/join`
/// said on connecting before a script gives up ([`ClientError::Unanswered`]);
/// in a terminal the user is told, and input waits on. A chat-server
/// answers at once; this bounds a stuck one or something else listening.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// Signals noted but not yet handled; more of them add nothing.
const SIGNAL_CAPACITY: usize = 4;

/// What the user's `/quit` or end of input is sent as.
const QUIT_LINE: &[u8] = b"/quit\n";

/// How the main loop ended, when it did not end with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The server closed the connection after `/quit`, or there was
    /// nothing left to do.
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
    let target = Target::from_args(args)?;
    let stream = connect(&target, args.connect_timeout)?;
    // Handled from here on. Before, Ctrl-C during a slow connect simply
    // ends the process, which is all it should do then.
    let (signals, can_signal) = watch_signals();

    let shared = Arc::new(Shared::default());
    let interactive = args.send.is_empty() && io::stdin().is_terminal() && io::stdout().is_terminal();
    let terminal = if interactive {
        Terminal::open(&shared)?
    } else {
        None
    };
    let style = Style::for_output(io::stdout().is_terminal(), args.timestamps);
    let (editor, out) = match terminal {
        Some(terminal) => {
            let (editor, out) = TerminalOut::new(terminal, Arc::clone(&shared));
            (Some(editor), Output::Terminal(out))
        }
        None => (None, Output::Plain(io::stdout())),
    };

    let mut session = Session {
        target,
        connect_timeout: args.connect_timeout,
        reconnect: args.reconnect,
        allow_guest: args.allow_guest,
        max_line: args.max_line,
        max_line_from_server: false,
        discarding: false,
        recent: Recent::default(),
        lines_in: 0,
        greeting: Greeting::default(),
        answer_deadline: never(),
        refused: None,
        out,
        style,
        shared,
        link: None,
        server_rx: never(),
        retry_at: never(),
        attempt_rx: never(),
        backoff: Backoff::new(),
        queue: VecDeque::new(),
        queued_quit: None,
        place: Place {
            nick: None,
            room: None,
            want_nick: args.nick.clone(),
            want_room: args.room.clone(),
        },
        stdin_rx: never(),
        paused: never(),
        quit_deadline: never(),
        quit_sent: false,
        input: InputState::Reading,
        signals,
    };
    // Nick and room go out before any line of input can, because the input
    // thread starts only after they are written; and input waits for the
    // server to answer them (see `greeting`).
    let started = session
        .link_up(stream)
        .and_then(|()| session.start_input(args, editor, style));
    let (ending, input) = match started {
        Ok(input) => (session.main_loop(), Some(input)),
        Err(err) => (Err(err), None),
    };
    session.finish(input, can_signal);

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

/// Notes SIGINT, SIGTERM and SIGHUP on the returned channel instead of
/// dying of them, so that the session can say `/quit` and restore the
/// terminal. The flag says whether that worked.
fn watch_signals() -> (Receiver<()>, bool) {
    let (tx, rx) = bounded(SIGNAL_CAPACITY);
    let installed = ctrlc::set_handler(move || {
        // Full means a signal is already waiting to be handled.
        let _ = tx.try_send(());
    })
    .is_ok();
    (rx, installed)
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

/// Where lines are shown.
enum Output {
    /// Standard output as plain lines: a pipe, a file, or a terminal that
    /// is not interactive.
    Plain(io::Stdout),
    /// Above the line being edited.
    Terminal(TerminalOut),
}

impl Output {
    /// Shows one line. Returns [`Ending::OutputClosed`] when standard
    /// output has been closed.
    fn line(&mut self, text: &str) -> Result<Option<Ending>, ClientError> {
        match self {
            Output::Plain(stdout) => print(&mut stdout.lock(), text),
            Output::Terminal(terminal) => terminal.print_line(text).map(|()| None),
        }
    }
}

/// The thread that reads input, as the session must end it.
enum InputThread {
    /// Standard input or the `--send` texts.
    Plain(JoinHandle<()>),
    /// The editor thread; `done` disconnects when it has ended.
    Editor {
        handle: JoinHandle<()>,
        done: Receiver<()>,
    },
}

/// The connection, while there is one.
struct Link {
    /// The connection's writing half. The main loop writes to it; the
    /// server reader thread reads from its reading half; closing it
    /// unblocks that thread.
    stream: Transport,
    /// The server reader thread, joined when the link goes down.
    reader: JoinHandle<()>,
}

impl Link {
    /// Closes the connection, which ends the reader's blocking read, and
    /// joins the reader. Its channel must already be dropped, which ends a
    /// send it may be blocked in.
    fn close(self) {
        self.stream.close();
        // A panic in it has already been reported by the panic hook.
        let _ = self.reader.join();
    }
}

/// Who and where the user is, and wants to be after a reconnection.
#[derive(Debug, Clone, Default)]
struct Place {
    /// The nick the server last confirmed.
    nick: Option<Nick>,
    /// The room the server last confirmed.
    room: Option<RoomName>,
    /// The nick to take on (re)connecting: `--nick`, then each nick the
    /// server confirmed. A `guestN` the server handed out is not asked for
    /// again.
    want_nick: Option<Nick>,
    /// The room to join on (re)connecting: `--room`, then each room the
    /// server confirmed.
    want_room: Option<RoomName>,
}

impl Place {
    /// Follows one server line. Returns what it answered: the welcome, a
    /// `/nick` or `/join` done, or an error (which answers the line it is
    /// about); the prompt waits for these.
    fn follow(&mut self, line: &ServerText) -> Option<Answer> {
        let text = match line {
            ServerText::Known(ServerLine::Notice(text)) => text,
            ServerText::Known(ServerLine::Error(reason)) => return Some(Answer::Refused(reason.clone())),
            _ => return None,
        };
        if let Some((nick, room)) = notices::welcome(text) {
            self.nick = Some(nick);
            self.room = Some(room);
            return Some(Answer::Welcome);
        }
        if let Some(nick) = notices::nick_set(text) {
            self.want_nick = Some(nick.clone());
            self.nick = Some(nick);
        } else if let Some(room) = notices::own_join(text, self.room.as_ref()) {
            self.want_room = Some(room.clone());
            self.room = Some(room);
        } else {
            return None;
        }
        Some(Answer::Confirmed)
    }

    /// The lines that put a new connection where the user was.
    fn greeting(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(nick) = &self.want_nick {
            lines.push(format!("/nick {nick}\n"));
        }
        // Everyone starts in the lobby: joining it would only be an error.
        if let Some(room) = self.want_room.as_ref().filter(|r| r.key() != RoomName::LOBBY) {
            lines.push(format!("/join {room}\n"));
        }
        lines
    }
}

/// The main loop's state.
struct Session {
    /// The server's address, and TLS if asked for, for reconnecting.
    target: Target,
    /// `--connect-timeout`, for reconnecting.
    connect_timeout: Duration,
    /// `--reconnect`: a lost connection is retried, not the end.
    reconnect: bool,
    /// `--allow-guest`: a refused nick or room is not the end.
    allow_guest: bool,
    /// The longest line sent, in bytes: `--max-line`, or the server's own
    /// limit once it said it is lower.
    max_line: usize,
    /// True once `max_line` is the server's own figure, for messages.
    max_line_from_server: bool,
    /// True while the rest of a line refused as too long is still coming
    /// (in pieces): it is dropped up to its end.
    discarding: bool,
    /// Lines sent lately, to name one the server refuses as too long.
    recent: Recent,
    /// Whole lines of input taken so far, to name one in a message.
    lines_in: u64,
    /// This connection's `/nick` and `/join` that the server has not
    /// answered yet; input waits while there are any.
    greeting: Greeting,
    /// Fires [`ANSWER_WAIT`] after the greeting was sent, while it waits.
    answer_deadline: Receiver<Instant>,
    /// Why the session must end badly once the server has closed (a refused
    /// nick or room).
    refused: Option<ClientError>,
    /// Where lines are shown.
    out: Output,
    /// How lines are shown.
    style: Style,
    /// What the editor thread's prompt shows and waits for (unused by a
    /// plain session, and cheap).
    shared: Arc<Shared>,
    /// The connection; `None` while reconnecting.
    link: Option<Link>,
    /// Lines from the server, then how the connection ended; a receiver
    /// that never delivers while there is no connection.
    server_rx: Receiver<FromServer>,
    /// Fires when the next reconnection attempt is due.
    retry_at: Receiver<Instant>,
    /// The outcome of the reconnection attempt under way.
    attempt_rx: Receiver<Result<Transport, ClientError>>,
    /// Delays between reconnection attempts.
    backoff: Backoff,
    /// Lines of input waiting for a connection, oldest first.
    queue: VecDeque<Vec<u8>>,
    /// The `/quit` to send after the queue, when input ended while
    /// disconnected.
    queued_quit: Option<Vec<u8>>,
    /// Who and where the user is.
    place: Place,
    /// Lines of input; a receiver that never delivers once the input is
    /// over (or before it starts), so the loop stops waiting on it.
    stdin_rx: Receiver<FromStdin>,
    /// Waited on instead of `stdin_rx` while the queue is full.
    paused: Receiver<FromStdin>,
    /// Fires [`QUIT_GRACE`] after `/quit` was sent; never before that.
    quit_deadline: Receiver<Instant>,
    /// True once `/quit` was sent: from then on the server closing the
    /// connection is the expected end, not a lost connection.
    quit_sent: bool,
    /// Whether the input thread can be joined.
    input: InputState,
    /// SIGINT, SIGTERM and SIGHUP, as noted by the handler.
    signals: Receiver<()>,
}

/// One thing the main loop has to react to.
enum Event {
    /// A message from the server reader thread.
    Server(FromServer),
    /// A message from the input thread.
    Stdin(FromStdin),
    /// [`QUIT_GRACE`] has passed since `/quit` was sent.
    QuitTimedOut,
    /// SIGINT, SIGTERM or SIGHUP.
    Signal,
    /// [`ANSWER_WAIT`] has passed and the greeting is still not answered.
    AnswerTimedOut,
    /// Time for the next reconnection attempt.
    RetryDue,
    /// A reconnection attempt ended.
    Attempt(Result<Transport, ClientError>),
}

impl Session {
    /// Starts reading input: the editor thread in interactive mode, else a
    /// thread reading standard input or passing on the `--send` texts.
    fn start_input(
        &mut self,
        args: &Args,
        editor: Option<LineEditor>,
        style: Style,
    ) -> Result<InputThread, ClientError> {
        let (stdin_tx, stdin_rx) = bounded(CHANNEL_CAPACITY);
        self.stdin_rx = stdin_rx;
        if let Some(editor) = editor {
            let (done_tx, done) = bounded(0);
            let shared = Arc::clone(&self.shared);
            let handle = spawn("editor", move || {
                run_editor(editor, shared, style, stdin_tx, done_tx)
            })?;
            return Ok(InputThread::Editor { handle, done });
        }
        let max_piece = piece_size(args.max_line);
        let handle = if args.send.is_empty() {
            spawn("stdin-reader", move || read_stdin(stdin_tx, max_piece))?
        } else {
            let texts = args.send.clone();
            spawn("send-texts", move || read_texts(&texts, stdin_tx, max_piece))?
        };
        Ok(InputThread::Plain(handle))
    }

    /// Takes a new connection into use: starts its reader and says `/nick`
    /// and `/join` as the user's place asks.
    fn link_up(&mut self, stream: Transport) -> Result<(), ClientError> {
        let read_half = stream.reader().map_err(|source| ClientError::Local {
            what: "duplicate the socket handle",
            source,
        })?;
        let (server_tx, server_rx) = bounded(CHANNEL_CAPACITY);
        let reader = spawn("server-reader", move || read_server(read_half, server_tx))?;
        self.server_rx = server_rx;
        self.link = Some(Link { stream, reader });
        let greeting = self.place.greeting();
        // The welcome, then one answer per line of the greeting.
        self.shared.expect_answers(1 + greeting.len());
        self.greeting = Greeting::new(&greeting);
        self.answer_deadline = if self.greeting.is_waiting() {
            after(ANSWER_WAIT)
        } else {
            never()
        };
        for line in greeting {
            if self.write(line.into_bytes())?.is_some() {
                // Lost already; the next connection greets again.
                break;
            }
        }
        Ok(())
    }

    /// Drops the connection (after it was lost).
    fn link_down(&mut self) {
        self.server_rx = never();
        self.greeting.abandon();
        self.answer_deadline = never();
        if let Some(link) = self.link.take() {
            link.close();
        }
    }

    /// Prints server lines and sends input lines until the session ends.
    fn main_loop(&mut self) -> Result<Ending, ClientError> {
        loop {
            let stdin_rx = if self.queue.len() >= MAX_QUEUED {
                &self.paused
            } else {
                &self.stdin_rx
            };
            let event = select! {
                // A reader thread that ended without its last message
                // (it panicked) is taken as its stream having ended.
                recv(self.server_rx) -> msg => Event::Server(msg.unwrap_or(FromServer::Closed(Ok(())))),
                recv(stdin_rx) -> msg => Event::Stdin(msg.unwrap_or(FromStdin::Eof)),
                recv(self.quit_deadline) -> _ => Event::QuitTimedOut,
                recv(self.signals) -> _ => Event::Signal,
                recv(self.answer_deadline) -> _ => Event::AnswerTimedOut,
                recv(self.retry_at) -> _ => Event::RetryDue,
                recv(self.attempt_rx) -> msg => Event::Attempt(msg.unwrap_or_else(|_| {
                    Err(ClientError::Local {
                        what: "reconnect",
                        source: io::Error::other("the connecting thread ended"),
                    })
                })),
            };
            let ending = match event {
                Event::Server(FromServer::Line(line)) => self.show(&line)?,
                Event::Server(FromServer::Closed(end)) => self.server_closed(end)?,
                Event::Stdin(input) => self.handle_input(input)?,
                Event::QuitTimedOut => Some(Ending::QuitTimedOut),
                Event::Signal => self.interrupted()?,
                Event::AnswerTimedOut => self.answer_timed_out()?,
                Event::RetryDue => {
                    self.start_attempt()?;
                    None
                }
                Event::Attempt(Ok(stream)) => self.reconnected(stream)?,
                Event::Attempt(Err(err)) => self.attempt_failed(&err)?,
            };
            if let Some(ending) = ending {
                if ending == Ending::OutputClosed && !self.quit_sent {
                    if let Some(link) = &mut self.link {
                        // Best effort on the way out: if it fails, the
                        // server sees a disconnect instead, just as final.
                        let _ = link.stream.write_all(QUIT_LINE);
                    }
                }
                if let Some(refused) = self.refused.take() {
                    return Err(refused);
                }
                return Ok(ending);
            }
        }
    }

    /// Follows and shows one server line.
    fn show(&mut self, line: &ServerText) -> Result<Option<Ending>, ClientError> {
        let answer = self.place.follow(line);
        if let Some(answer) = &answer {
            if *answer == Answer::Welcome {
                // A connection that got as far as the welcome worked: the
                // next loss starts the delays over.
                self.backoff.reset();
            }
            self.shared
                .set_place(self.place.nick.clone(), self.place.room.clone());
            self.shared.answered();
        }
        let stamp = self.style.stamp_now();
        let text = self.style.server_line(line, stamp.as_deref());
        if let Some(ending) = self.out.line(&text)? {
            return Ok(Some(ending));
        }
        if let Some(Answer::Refused(reason)) = &answer {
            if let Some(max) = too_long_max(reason) {
                if let Some(ending) = self.server_limit(max)? {
                    return Ok(Some(ending));
                }
            }
        }
        match self.greeting.follow(answer.as_ref()) {
            None => Ok(None),
            Some(Outcome::Done) => self.greeted(),
            Some(Outcome::Refused { asked, reason }) => self.greeting_refused(asked, reason),
        }
    }

    /// The server confirmed every line of the greeting: input may go out,
    /// starting with what waited for a connection.
    fn greeted(&mut self) -> Result<Option<Ending>, ClientError> {
        self.answer_deadline = never();
        while self.link.is_some() {
            let Some(line) = self.queue.pop_front() else {
                break;
            };
            if let Some(unsent) = self.write(line)? {
                // Lost again: it keeps its place at the head of the queue.
                self.queue.push_front(unsent);
            }
        }
        match self.queued_quit.take() {
            Some(quit) if self.link.is_some() => self.send_quit(quit),
            quit => {
                self.queued_quit = quit;
                Ok(None)
            }
        }
    }

    /// The server refused the greeting's `asked` (the nick is taken). With
    /// `--allow-guest` the session goes on as what the server made it. In a
    /// terminal it goes on too, saying so, but what was typed before (or
    /// while disconnected) is not sent under the other name. A script sends
    /// nothing more and quits, to exit with [`ClientError::Refused`].
    fn greeting_refused(&mut self, asked: String, reason: String) -> Result<Option<Ending>, ClientError> {
        // Where the user is instead: the nick (a refused /nick) or the room
        // (a refused /join) the server kept.
        let instead = if asked.starts_with("/join") {
            let room = self.place.room.as_ref().map(ToString::to_string);
            format!("in {}", room.as_deref().unwrap_or("the lobby"))
        } else {
            let nick = self.place.nick.as_ref().map(ToString::to_string);
            format!("as {}", nick.as_deref().unwrap_or("a guest"))
        };
        if self.allow_guest {
            let going_on =
                format!("the server refused {asked} ({reason}); going on {instead} (--allow-guest)");
            if let Some(ending) = self.status(&going_on)? {
                return Ok(Some(ending));
            }
            return if self.greeting.is_waiting() {
                Ok(None)
            } else {
                self.greeted()
            };
        }
        self.greeting.abandon();
        self.answer_deadline = never();
        let unsent = self.queue.len();
        self.queue.clear();
        if matches!(self.out, Output::Terminal(_)) {
            let command = asked.split(' ').next().unwrap_or("/nick");
            let mut text = format!(
                "the server refused {asked} ({reason}); you go on {instead}: {command} again to choose another"
            );
            if unsent > 0 {
                text.push_str(&format!("; {unsent} line(s) typed before were not sent"));
            }
            if let Some(ending) = self.status(&text)? {
                return Ok(Some(ending));
            }
            return match self.queued_quit.take() {
                Some(quit) => self.send_quit(quit),
                None => Ok(None),
            };
        }
        self.refused = Some(ClientError::Refused { asked, reason });
        self.queued_quit = None;
        self.stdin_rx = never();
        self.send_quit(QUIT_LINE.to_vec())
    }

    /// The server has not answered the greeting within [`ANSWER_WAIT`]. A
    /// script gives up without sending anything (unless `--allow-guest`:
    /// then it goes on); in a terminal the user is told, and input waits on.
    fn answer_timed_out(&mut self) -> Result<Option<Ending>, ClientError> {
        self.answer_deadline = never();
        let asked = self.greeting.first_open().unwrap_or("/nick").to_string();
        let secs = ANSWER_WAIT.as_secs();
        if self.allow_guest {
            self.greeting.abandon();
            let text =
                format!("no answer from the server to {asked} within {secs} s; going on (--allow-guest)");
            if let Some(ending) = self.status(&text)? {
                return Ok(Some(ending));
            }
            return self.greeted();
        }
        if matches!(self.out, Output::Terminal(_)) {
            return self.status(&format!(
                "no answer yet from the server to {asked}; what you type waits for it"
            ));
        }
        self.greeting.abandon();
        self.queue.clear();
        self.queued_quit = None;
        self.stdin_rx = never();
        self.refused = Some(ClientError::Unanswered { asked, secs });
        self.send_quit(QUIT_LINE.to_vec())
    }

    /// The server refused a line as longer than `max` bytes: that is its
    /// limit from now on, and the line (already shown in a terminal) was
    /// not delivered, which the user is told.
    fn server_limit(&mut self, max: usize) -> Result<Option<Ending>, ClientError> {
        let lowered = max < self.max_line;
        if lowered {
            self.max_line = max;
            self.max_line_from_server = true;
        }
        let which = match self.recent.refused(max) {
            Some(line) => format!("your line of {} bytes ({:?})", line.len, line.preview),
            None => "your last line".to_string(),
        };
        let mut text = format!("{which} was not delivered: the server takes at most {max} bytes");
        if lowered {
            text.push_str("; longer lines are not sent from now on");
        }
        self.status(&text)
    }

    /// The connection ended: expected after `/quit`; before it, lost, and
    /// retried with `--reconnect`.
    fn server_closed(&mut self, end: io::Result<()>) -> Result<Option<Ending>, ClientError> {
        if self.quit_sent {
            // Any end will do, even a reset: the server was asked to close.
            return Ok(Some(Ending::Closed));
        }
        let lost = match end {
            Ok(()) => ClientError::ClosedByServer,
            Err(err) => ClientError::ConnectionLost(err),
        };
        self.lost(lost)
    }

    /// The connection is gone before the user quit: the end, or the start
    /// of reconnecting.
    fn lost(&mut self, why: ClientError) -> Result<Option<Ending>, ClientError> {
        if !self.reconnect {
            return Err(why);
        }
        self.link_down();
        let delay = self.backoff.next_delay();
        self.retry_at = after(delay);
        self.status(&format!("{why}; reconnecting in {}", seconds(delay)))
    }

    /// Starts a reconnection attempt on a thread of its own, so that input
    /// and signals are still handled while it waits.
    fn start_attempt(&mut self) -> Result<(), ClientError> {
        let (tx, rx) = bounded(1);
        let target = self.target.clone();
        let timeout = self.connect_timeout;
        // Not joined: if the session ends first, the process ends with it.
        spawn("connector", move || {
            let _ = tx.send(connect(&target, timeout));
        })?;
        self.retry_at = never();
        self.attempt_rx = rx;
        Ok(())
    }

    /// A reconnection attempt failed: schedule the next.
    fn attempt_failed(&mut self, err: &ClientError) -> Result<Option<Ending>, ClientError> {
        self.attempt_rx = never();
        let delay = self.backoff.next_delay();
        self.retry_at = after(delay);
        self.status(&format!("{err}; next try in {}", seconds(delay)))
    }

    /// A reconnection attempt worked: greet, then send what waited.
    fn reconnected(&mut self, stream: Transport) -> Result<Option<Ending>, ClientError> {
        self.attempt_rx = never();
        let addr = self.target.addr.clone();
        if let Some(ending) = self.status(&format!("reconnected to {addr}"))? {
            return Ok(Some(ending));
        }
        self.link_up(stream)?;
        if self.greeting.is_waiting() {
            // What waited goes out once the server says yes to the nick
            // and room (`greeted`).
            return Ok(None);
        }
        self.greeted()
    }

    /// Sends a piece of input on (or queues it while disconnected), and
    /// starts quitting when the input is over.
    fn handle_input(&mut self, input: FromStdin) -> Result<Option<Ending>, ClientError> {
        match input {
            FromStdin::Line(bytes) => {
                if let Some(ending) = self.take_line(bytes)? {
                    return Ok(Some(ending));
                }
            }
            FromStdin::Quit(line) if line_len(&line) > self.max_line => {
                // Too long for the server, which would not quit: a plain
                // /quit does what the user meant.
                if let Some(ending) =
                    self.status("the /quit reason is too long for the server; quitting without it")?
                {
                    return Ok(Some(ending));
                }
                return self.quit(QUIT_LINE.to_vec());
            }
            FromStdin::Quit(line) => return self.quit(line),
            FromStdin::Eof => return self.quit(QUIT_LINE.to_vec()),
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

    /// Sends a line (or a piece of one) of input, unless it is longer than
    /// the server takes: then it is refused here, with an error, and
    /// nothing of it is sent or shown as said.
    fn take_line(&mut self, bytes: Vec<u8>) -> Result<Option<Ending>, ClientError> {
        let ends_line = bytes.ends_with(b"\n");
        if self.discarding {
            // The rest of a line already refused.
            self.discarding = !ends_line;
            return Ok(None);
        }
        self.lines_in = self.lines_in.saturating_add(1);
        let len = line_len(&bytes);
        if len > self.max_line {
            self.discarding = !ends_line;
            let max = self.max_line;
            let (what, then) = if matches!(self.out, Output::Terminal(_)) {
                ("line".to_string(), "; the up arrow brings it back to edit")
            } else {
                (format!("line {} of the input", self.lines_in), "")
            };
            let more = if ends_line { "" } else { " or more" };
            let source = if self.max_line_from_server {
                "as it said"
            } else {
                "--max-line"
            };
            return self.status(&format!(
                "{what} not sent: {len}{more} bytes, and the server takes at most {max} ({source}){then}"
            ));
        }
        if self.link.is_none() && matches!(self.out, Output::Terminal(_)) {
            if let Some(ending) = self.status("not connected: the line will be sent once reconnected")? {
                return Ok(Some(ending));
            }
        }
        self.send(bytes)?;
        Ok(None)
    }

    /// The user is done: no more input; say `/quit` (`line`). A script's
    /// `/quit` waits behind its lines for the server's answer to the
    /// greeting; a person quitting in a terminal quits now.
    fn quit(&mut self, line: Vec<u8>) -> Result<Option<Ending>, ClientError> {
        self.input = InputState::Done;
        self.stdin_rx = never();
        if self.link.is_some() && self.greeting.is_waiting() && matches!(self.out, Output::Plain(_)) {
            self.queued_quit = Some(line);
            return Ok(None);
        }
        self.send_quit(line)
    }

    /// A signal: quit as the user would; a second one stops waiting.
    fn interrupted(&mut self) -> Result<Option<Ending>, ClientError> {
        if self.quit_sent {
            return Ok(Some(Ending::Closed));
        }
        if self.link.is_some() {
            self.stdin_rx = never();
            return self.send_quit(QUIT_LINE.to_vec());
        }
        match self.queue.len() {
            0 => Ok(Some(Ending::Closed)),
            lines => Err(ClientError::Undelivered { lines }),
        }
    }

    /// Sends `/quit` and starts waiting for the server to close. Without a
    /// connection, the session ends at once when nothing waits to be sent;
    /// otherwise the `/quit` waits for the lines before it to go out.
    fn send_quit(&mut self, line: Vec<u8>) -> Result<Option<Ending>, ClientError> {
        let Some(unsent) = self.write(line)? else {
            self.quit_deadline = after(QUIT_GRACE);
            self.quit_sent = true;
            return Ok(None);
        };
        if self.queue.is_empty() {
            return Ok(Some(Ending::Closed));
        }
        self.queued_quit = Some(unsent);
        let waiting = self.queue.len();
        self.status(&format!(
            "not connected: {waiting} line(s) will be sent once reconnected (Ctrl-C to give up)"
        ))
    }

    /// Sends `bytes` to the server, or queues them while there is no
    /// connection (or the connection was just lost), and while the server
    /// has not answered the nick and room asked for: a line must not go out
    /// under a name the user did not ask for.
    fn send(&mut self, bytes: Vec<u8>) -> Result<(), ClientError> {
        if self.greeting.is_waiting() {
            self.queue.push_back(bytes);
            return Ok(());
        }
        if let Some(unsent) = self.write(bytes)? {
            self.queue.push_back(unsent);
        }
        Ok(())
    }

    /// Writes `bytes` to the server and shows them in interactive mode as
    /// others see them. Gives them back when there is no connection, or it
    /// is lost in the write and `--reconnect` will retry.
    ///
    /// # Errors
    /// [`ClientError::ConnectionLost`] when the write fails without
    /// `--reconnect`.
    fn write(&mut self, bytes: Vec<u8>) -> Result<Option<Vec<u8>>, ClientError> {
        let Some(link) = &mut self.link else {
            return Ok(Some(bytes));
        };
        // `write_all` retries writes interrupted by a signal.
        match link.stream.write_all(&bytes) {
            Ok(()) => {
                self.recent.sent(&bytes);
                self.echo(&bytes)?;
                Ok(None)
            }
            Err(err) if self.reconnect => {
                self.lost(ClientError::ConnectionLost(err))?;
                Ok(Some(bytes))
            }
            Err(err) => Err(ClientError::ConnectionLost(err)),
        }
    }

    /// In interactive mode, shows a chat message or action just sent the
    /// way the others in the room see it.
    fn echo(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        if !matches!(self.out, Output::Terminal(_)) {
            return Ok(());
        }
        let Some(nick) = &self.place.nick else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(bytes);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let Ok(Some(command)) = Command::parse(text) else {
            return Ok(());
        };
        let stamp = self.style.stamp_now();
        if let Some(line) = self.style.own_line(nick, &command, stamp.as_deref()) {
            self.out.line(&line)?;
        }
        Ok(())
    }

    /// Tells the user about the connection: on the screen in interactive
    /// mode, else on standard error.
    fn status(&mut self, text: &str) -> Result<Option<Ending>, ClientError> {
        if matches!(self.out, Output::Terminal(_)) {
            let stamp = self.style.stamp_now();
            let line = self.style.status(text, stamp.as_deref());
            return self.out.line(&line);
        }
        warn(text);
        Ok(None)
    }

    /// Closes the connection and ends the threads: the server reader is
    /// joined; the input thread when it is done or can be made to finish.
    fn finish(mut self, input: Option<InputThread>, can_signal: bool) {
        self.link_down();
        let Session {
            out,
            shared,
            stdin_rx,
            input: input_state,
            ..
        } = self;
        // Its reader may be blocked sending: dropping the channel ends that.
        drop(stdin_rx);
        match input {
            Some(InputThread::Editor { handle, done }) => {
                let mut out = out;
                if let Output::Terminal(terminal) = &mut out {
                    if input_state == InputState::Reading {
                        terminal.flush();
                    }
                }
                stop_editor(&shared, &done, can_signal);
                if handle.is_finished() {
                    let _ = handle.join();
                }
                if let Output::Terminal(terminal) = &mut out {
                    terminal.raw.restore();
                }
            }
            Some(InputThread::Plain(handle)) if input_state == InputState::Done => {
                let _ = handle.join();
            }
            // Otherwise the input thread is left running: it may be blocked
            // reading a terminal or a pipe, and such a read cannot be
            // interrupted portably. The process exits right after this,
            // which ends it.
            Some(InputThread::Plain(_)) | None => {}
        }
    }
}

/// A delay as people read it: `0.4 s`, `12.0 s`.
fn seconds(delay: Duration) -> String {
    format!("{:.1} s", delay.as_secs_f64())
}

/// Prints one line and flushes it, so that a reader at the other end of a
/// pipe gets it at once. Returns [`Ending::OutputClosed`] when standard
/// output has been closed.
///
/// # Errors
/// [`ClientError::Local`] when writing fails for another reason.
fn print(out: &mut impl Write, line: &str) -> Result<Option<Ending>, ClientError> {
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
    use chat_protocol::ServerEvent;

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

    #[test]
    fn a_line_is_printed_with_its_newline() {
        let mut out = Vec::new();
        assert!(print(&mut out, "-- bye").unwrap().is_none());
        assert!(print(&mut out, "raw").unwrap().is_none());
        assert_eq!(out, b"-- bye\nraw\n");
    }

    #[test]
    fn a_closed_output_ends_the_session_quietly() {
        assert_eq!(print(&mut ClosedPipe, "x").unwrap(), Some(Ending::OutputClosed));
    }

    #[test]
    fn other_output_errors_are_reported() {
        let err = print(&mut FullDisk, "x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot write standard output: no space left on device"
        );
        assert_eq!(err.exit_code(), 1);
    }

    fn nick(name: &str) -> Nick {
        Nick::new(name).unwrap()
    }

    fn room(name: &str) -> RoomName {
        RoomName::new(name).unwrap()
    }

    /// `event` as the client receives it.
    fn received(event: ServerEvent) -> ServerText {
        let mut bytes = Vec::new();
        event.encode(&mut bytes);
        ServerText::classify(String::from_utf8(bytes).unwrap().trim_end())
    }

    #[test]
    fn the_place_follows_the_servers_confirmations() {
        let mut place = Place::default();
        assert_eq!(
            place.follow(&received(ServerEvent::Welcome {
                nick: nick("guest3"),
                room: RoomName::lobby()
            })),
            Some(Answer::Welcome)
        );
        assert_eq!(place.nick, Some(nick("guest3")));
        assert_eq!(place.want_nick, None, "a guest nick is not asked for again");
        assert!(place.greeting().is_empty());

        assert_eq!(
            place.follow(&received(ServerEvent::NickSet { nick: nick("alice") })),
            Some(Answer::Confirmed)
        );
        assert_eq!(
            place.follow(&received(ServerEvent::JoinedRoom { room: room("rust") })),
            Some(Answer::Confirmed)
        );
        assert_eq!(place.nick, Some(nick("alice")));
        assert_eq!(place.room, Some(room("rust")));
        assert_eq!(place.greeting(), ["/nick alice\n", "/join #rust\n"]);

        // Others' lines change nothing, and are not answers.
        for other in [
            ServerEvent::Joined {
                nick: nick("you"),
                room: room("rust"),
            },
            ServerEvent::NickChanged {
                old: nick("bob"),
                new: nick("rob"),
            },
            ServerEvent::Said {
                room: RoomName::new("#lobby").unwrap(),
                from: nick("bob"),
                text: "-- you are now known as mallory".into(),
            },
        ] {
            assert_eq!(place.follow(&received(other)), None);
        }
        assert_eq!(place.nick, Some(nick("alice")));
        assert_eq!(place.room, Some(room("rust")));

        // An error answers a /nick or /join without changing the place.
        let refused = received(ServerEvent::Error(chat_protocol::ErrorKind::NickInUse(nick(
            "bob",
        ))));
        assert_eq!(
            place.follow(&refused),
            Some(Answer::Refused("nick bob is already in use".into()))
        );
        assert_eq!(place.nick, Some(nick("alice")));
    }

    #[test]
    fn the_greeting_skips_the_lobby() {
        let place = Place {
            want_nick: Some(nick("bot")),
            want_room: Some(room("LOBBY")),
            ..Place::default()
        };
        assert_eq!(place.greeting(), ["/nick bot\n"]);
    }

    #[test]
    fn delays_read_in_seconds() {
        assert_eq!(seconds(Duration::from_millis(430)), "0.4 s");
        assert_eq!(seconds(Duration::from_secs(12)), "12.0 s");
    }
}
