//! The interactive side: line editing with rustyline, and sharing the
//! terminal between the person typing and the lines arriving.
//!
//! When standard input and output are both terminals, a thread of its own
//! (the editor thread) runs rustyline's `readline` in a loop, in place of
//! the plain input thread of [`crate::input`]. The main loop prints what
//! the server says through rustyline's external printer, which clears the
//! line being typed, prints above it and draws it again, so a message that
//! arrives mid-sentence leaves both intact.
//!
//! Three things need the two threads to agree, through [`Shared`]:
//!
//! - The prompt shows the nick and room the server last confirmed. A prompt
//!   cannot change while it is being edited, so after a `/nick` or `/join`
//!   (and at the start, until the welcome) the editor thread waits for the
//!   server's answer before showing the next prompt, for at most
//!   [`PROMPT_WAIT`].
//! - A chat message is shown the way others see it (`<alice> hi`), so the
//!   line it was typed on (`[alice #lobby] hi`) is erased once accepted.
//!   Erasing moves the cursor, and nothing else may print meanwhile: from
//!   the Enter key until the erasing is done the editor thread owns the
//!   terminal, and the main loop waits (for at most [`GATE_WAIT`]) before
//!   printing.
//! - Ending the session while `readline` waits for a key (the server went
//!   away) must still leave the terminal as it was found. `readline` only
//!   returns on input, and it restores the terminal when it does; the one
//!   input the main thread can give it is a SIGINT, which rustyline turns
//!   into [`ReadlineError::Interrupted`]. So the session first makes sure
//!   rustyline has printed every line it was handed ([`TerminalOut::flush`]),
//!   then [`stop_editor`] raises SIGINT until the editor thread has ended (a
//!   bounded number of times); [`RawTerminal`] then puts back the terminal
//!   settings saved at the start.
//!
//! Every key typed or pasted must reach the server once and in order,
//! however fast it comes. rustyline alone loses input between two
//! `readline` calls in two ways: it reads the terminal through a buffer
//! that it throws away when `readline` returns (the rest of a paste went
//! with it), and it puts the terminal back in its ordinary (cooked) mode
//! until the next call, in which the kernel echoes what arrives, turns
//! carriage returns into newlines and edits the line itself. So:
//!
//! - rustyline is built with its `buffer-redux` feature, which hands the
//!   buffer of one `readline` to the next;
//! - [`RawTerminal`] puts the terminal in rustyline's own raw mode for the
//!   whole session, so that what rustyline "restores" between two calls is
//!   raw mode again and what arrives meanwhile waits, untouched, for the
//!   next call;
//! - a paste is typed text: each line end in it accepts a line, which is
//!   sent as typed. A bracketed paste (the terminal marks its start and
//!   end) differs only in that its other characters are taken as text,
//!   never as editing keys: a tab is inserted, a control character is
//!   dropped. rustyline's own bracketed paste is off, because it inserts a
//!   whole paste into one line and waits for one more Enter; the session
//!   turns the terminal's on once, and [`PasteKeys`] follows the markers.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use chat_protocol::{Command, Nick, RoomName};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use nix::sys::signal::{raise, Signal};
use nix::sys::termios::{
    tcgetattr, tcsetattr, ControlFlags, InputFlags, LocalFlags, SetArg, SpecialCharacterIndices, Termios,
};
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{
    Cmd, ConditionalEventHandler, Config, Editor, Event, EventContext, EventHandler, ExternalPrinter,
    KeyCode, KeyEvent, Modifiers, RepeatCount,
};
use unicode_width::UnicodeWidthChar;

use crate::error::ClientError;
use crate::input::{is_quit, FromStdin};
use crate::style::Style;

/// The longest the editor thread waits for the server to confirm a `/nick`
/// or `/join` (or to welcome it) before showing the next prompt anyway. A
/// local server answers in well under a millisecond; this only bounds how
/// long a slow or silent one can keep the prompt away.
pub const PROMPT_WAIT: Duration = Duration::from_secs(2);

/// The longest the main loop waits for the editor thread to finish erasing
/// an accepted line before printing. Erasing takes microseconds; the bound
/// only keeps a bug from stopping the output.
pub const GATE_WAIT: Duration = Duration::from_secs(1);

/// How many times [`stop_editor`] raises SIGINT, and how long it waits for
/// the editor thread to end after each. A SIGINT that lands between two
/// `readline` calls is missed (the editor thread then sees it is stopping),
/// so one retry is normally the most needed.
const STOP_TRIES: u32 = 20;
/// See [`STOP_TRIES`].
const STOP_WAIT: Duration = Duration::from_millis(50);

/// History entries kept for the up and down arrows, for this session.
const HISTORY_SIZE: usize = 1000;

/// The rustyline editor as this client configures it.
pub type LineEditor = Editor<PromptColors, DefaultHistory>;

/// rustyline draws the styled (colored) form of a prompt only when the
/// editor has a highlighter; this one only lets it, and changes nothing
/// else: no completion, hints or validation.
#[derive(Debug, Default)]
pub struct PromptColors;

impl rustyline::completion::Completer for PromptColors {
    type Candidate = String;
}
impl rustyline::hint::Hinter for PromptColors {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for PromptColors {}
impl rustyline::validate::Validator for PromptColors {}
impl rustyline::Helper for PromptColors {}

/// Prints above the line being edited; `Send` so the main loop can own it.
pub type Printer = Box<dyn ExternalPrinter + Send>;

/// What the prompt shows and waits for.
#[derive(Debug, Default)]
struct View {
    /// The nick the server last confirmed, if any yet.
    nick: Option<Nick>,
    /// The room the server last confirmed, if any yet.
    room: Option<RoomName>,
    /// Answers still expected from the server (the welcome, and one per
    /// `/nick` or `/join` sent) before the prompt is up to date.
    awaiting: usize,
    /// Set when the session is ending: the editor thread stops waiting and
    /// returns instead of starting another `readline`.
    stopping: bool,
}

/// State shared by the main loop and the editor thread.
#[derive(Debug, Default)]
pub struct Shared {
    /// The prompt's contents, and what the editor thread waits for.
    view: Mutex<View>,
    /// Signalled on every change of `view` and of `editor_owns_terminal`.
    changed: Condvar,
    /// True from the Enter key until the editor thread has erased the line
    /// it accepted: the main loop must not print meanwhile. Atomic because
    /// the Enter key handler runs inside `readline` and must not block.
    editor_owns_terminal: AtomicBool,
    /// True between the terminal's start-of-paste and end-of-paste markers
    /// (bracketed paste). Kept here, not in one `readline` call, because a
    /// paste of several lines spans several calls.
    pasting: AtomicBool,
}

impl Shared {
    /// The view, even if a thread panicked while holding it: the view is
    /// plain data that is never left half-updated.
    fn lock(&self) -> MutexGuard<'_, View> {
        self.view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the nick and room the server confirmed.
    pub fn set_place(&self, nick: Option<Nick>, room: Option<RoomName>) {
        let mut view = self.lock();
        view.nick = nick;
        view.room = room;
        self.changed.notify_all();
    }

    /// Sets how many answers the server still owes (after connecting).
    pub fn expect_answers(&self, count: usize) {
        self.lock().awaiting = count;
        self.changed.notify_all();
    }

    /// One more answer is owed: a `/nick` or `/join` is on its way.
    fn expect_one_more(&self) {
        let mut view = self.lock();
        view.awaiting = view.awaiting.saturating_add(1);
    }

    /// The server answered (a confirmation or an error).
    pub fn answered(&self) {
        let mut view = self.lock();
        view.awaiting = view.awaiting.saturating_sub(1);
        self.changed.notify_all();
    }

    /// Waits until the server has answered all it owes (for at most
    /// [`PROMPT_WAIT`]) and returns what the prompt should show, or `None`
    /// when the session is ending.
    fn wait_for_prompt(&self) -> Option<(Option<Nick>, Option<RoomName>)> {
        let view = self.lock();
        let (view, _) = self
            .changed
            .wait_timeout_while(view, PROMPT_WAIT, |v| v.awaiting > 0 && !v.stopping)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (!view.stopping).then(|| (view.nick.clone(), view.room.clone()))
    }

    /// True once [`Shared::stop`] was called.
    fn stopping(&self) -> bool {
        self.lock().stopping
    }

    /// Tells the editor thread to end.
    fn stop(&self) {
        self.lock().stopping = true;
        self.changed.notify_all();
    }

    /// The editor thread takes the terminal (if the Enter key did not
    /// already).
    fn take_terminal(&self) {
        self.editor_owns_terminal.store(true, Ordering::SeqCst);
    }

    /// The editor thread is done with the terminal; printing may go on.
    fn release_terminal(&self) {
        let _view = self.lock();
        self.editor_owns_terminal.store(false, Ordering::SeqCst);
        self.changed.notify_all();
    }

    /// Waits (for at most [`GATE_WAIT`]) until the editor thread does not
    /// own the terminal.
    fn wait_for_terminal(&self) {
        let view = self.lock();
        let _ = self.changed.wait_timeout_while(view, GATE_WAIT, |_| {
            self.editor_owns_terminal.load(Ordering::SeqCst)
        });
    }
}

/// The Enter key hands the terminal to the editor thread before rustyline
/// leaves raw mode, so that no line is printed between accepting the line
/// and erasing it. It changes nothing else: the key still accepts the line.
struct EnterTakesTerminal(Arc<Shared>);

impl ConditionalEventHandler for EnterTakesTerminal {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, _: &EventContext) -> Option<Cmd> {
        self.0.take_terminal();
        None
    }
}

/// What a key means inside a bracketed paste, where everything between the
/// markers is text: the markers themselves only switch the mode, a line
/// end (Enter, Ctrl-J: bound on their own) still accepts the line, a tab is
/// inserted as a tab, and any other key that is not a plain character
/// (a control character, an escape sequence) is dropped rather than taken
/// as an editing command. Outside a paste it changes nothing.
enum PasteKeys {
    /// The start-of-paste marker.
    Start(Arc<Shared>),
    /// The end-of-paste marker.
    End(Arc<Shared>),
    /// Any other key (rustyline's wildcard binding).
    Other(Arc<Shared>),
}

impl ConditionalEventHandler for PasteKeys {
    fn handle(&self, event: &Event, _: RepeatCount, _: bool, _: &EventContext) -> Option<Cmd> {
        match self {
            PasteKeys::Start(shared) => {
                shared.pasting.store(true, Ordering::SeqCst);
                Some(Cmd::Noop)
            }
            PasteKeys::End(shared) => {
                shared.pasting.store(false, Ordering::SeqCst);
                Some(Cmd::Noop)
            }
            PasteKeys::Other(shared) if shared.pasting.load(Ordering::SeqCst) => {
                pasted_key(event.get(0).copied())
            }
            PasteKeys::Other(_) => None,
        }
    }
}

/// The command for `key` inside a bracketed paste: `None` (rustyline's
/// own: insert it) for a plain character, a tab inserted as text, and
/// nothing at all for any other key.
fn pasted_key(key: Option<KeyEvent>) -> Option<Cmd> {
    match key {
        Some(KeyEvent(KeyCode::Char(_), Modifiers::NONE)) => None,
        Some(KeyEvent(KeyCode::Tab, Modifiers::NONE)) => Some(Cmd::Insert(1, "\t".to_string())),
        _ => Some(Cmd::Noop),
    }
}

/// Turns the terminal's bracketed paste on (it marks the start and end of
/// each paste).
const BRACKETED_PASTE_ON: &[u8] = b"\x1b[?2004h";
/// Turns it off again.
const BRACKETED_PASTE_OFF: &[u8] = b"\x1b[?2004l";

/// The terminal in raw mode for the whole session, as rustyline sets it
/// (no echo, no line editing by the kernel, no carriage return to newline,
/// no signals from keys, one byte at a time), with bracketed paste on; put
/// back as found when dropped. See the module docs for why.
pub struct RawTerminal {
    /// The settings as found; `None` when they could not be read or raw
    /// mode could not be set, and then nothing is put back.
    saved: Option<Termios>,
}

impl RawTerminal {
    /// Puts standard input's terminal in raw mode and turns bracketed paste
    /// on. When that fails the session goes on without it: rustyline then
    /// switches raw mode on and off itself, as it would anyway.
    fn enter() -> RawTerminal {
        let Ok(saved) = tcgetattr(io::stdin()) else {
            return RawTerminal { saved: None };
        };
        if tcsetattr(io::stdin(), SetArg::TCSADRAIN, &raw_mode(&saved)).is_err() {
            return RawTerminal { saved: None };
        }
        let mut out = io::stdout().lock();
        // Without it pastes come unmarked, and are taken as typed.
        let _ = out.write_all(BRACKETED_PASTE_ON).and_then(|()| out.flush());
        RawTerminal { saved: Some(saved) }
    }

    /// Turns bracketed paste off and puts the settings back as found. Does
    /// nothing the second time.
    pub fn restore(&mut self) {
        let Some(saved) = self.saved.take() else {
            return;
        };
        let mut out = io::stdout().lock();
        // A failure means the terminal is gone; nothing is left to restore.
        let _ = out.write_all(BRACKETED_PASTE_OFF).and_then(|()| out.flush());
        let _ = tcsetattr(io::stdin(), SetArg::TCSADRAIN, &saved);
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        self.restore();
    }
}

/// `termios` changed the way rustyline's `readline` changes it (its
/// `enable_raw_mode`, with signals off as this client configures it), so
/// that rustyline finds, and leaves, the terminal as it was between calls.
/// The special characters (Ctrl-C, Ctrl-D, ...) are kept: rustyline reads
/// them from these settings to know which keys interrupt and end input.
fn raw_mode(termios: &Termios) -> Termios {
    let mut raw = termios.clone();
    raw.input_flags &=
        !(InputFlags::BRKINT | InputFlags::ICRNL | InputFlags::INPCK | InputFlags::ISTRIP | InputFlags::IXON);
    raw.control_flags |= ControlFlags::CS8;
    raw.local_flags &= !(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::IEXTEN | LocalFlags::ISIG);
    // Output processing stays on, as in rustyline: "\n" still starts a row.
    for (index, value) in [
        (SpecialCharacterIndices::VMIN, 1),
        (SpecialCharacterIndices::VTIME, 0),
    ] {
        if let Some(cc) = raw.control_chars.get_mut(index as usize) {
            *cc = value;
        }
    }
    raw
}

/// Everything the interactive mode needs, made before the session starts.
pub struct Terminal {
    /// The editor, which moves to the editor thread.
    pub editor: LineEditor,
    /// Prints above the line being edited; used by the main loop.
    pub printer: Printer,
    /// The terminal in raw mode until the session ends.
    raw: RawTerminal,
}

impl Terminal {
    /// Sets up rustyline on standard input and output. `None` when the
    /// terminal is one rustyline cannot drive (such as `TERM=dumb`): then
    /// the client works as in a pipe.
    ///
    /// # Errors
    /// [`ClientError::Terminal`] when rustyline cannot be set up at all.
    pub fn open(shared: &Arc<Shared>) -> Result<Option<Terminal>, ClientError> {
        let config = Config::builder()
            .max_history_size(HISTORY_SIZE)
            .and_then(|b| b.history_ignore_dups(true))
            .map_err(|source| ClientError::Terminal {
                what: "configure line editing",
                source,
            })?
            .auto_add_history(false)
            // The session turns the terminal's own on; see the module docs.
            .bracketed_paste(false)
            .build();
        let mut editor = LineEditor::with_config(config).map_err(|source| ClientError::Terminal {
            what: "set up line editing",
            source,
        })?;
        editor.set_helper(Some(PromptColors));
        // Ctrl-J too: a line feed ends a line as Enter does (some terminals
        // paste line ends as line feeds).
        for key in [KeyEvent(KeyCode::Enter, Modifiers::NONE), KeyEvent::ctrl('J')] {
            editor.bind_sequence(
                key,
                EventHandler::Conditional(Box::new(EnterTakesTerminal(Arc::clone(shared)))),
            );
        }
        let paste_keys = [
            (
                Event::from(KeyEvent(KeyCode::BracketedPasteStart, Modifiers::NONE)),
                PasteKeys::Start(Arc::clone(shared)),
            ),
            (
                Event::from(KeyEvent(KeyCode::BracketedPasteEnd, Modifiers::NONE)),
                PasteKeys::End(Arc::clone(shared)),
            ),
            (Event::Any, PasteKeys::Other(Arc::clone(shared))),
        ];
        for (event, handler) in paste_keys {
            editor.bind_sequence(event, EventHandler::Conditional(Box::new(handler)));
        }
        let Ok(printer) = editor.create_external_printer() else {
            return Ok(None);
        };
        Ok(Some(Terminal {
            editor,
            printer: Box::new(printer),
            raw: RawTerminal::enter(),
        }))
    }
}

/// A message for rustyline's external printer that shows nothing: the
/// cursor goes up a row and comes back (rustyline prints a message from the
/// start of the prompt's row, and draws the prompt again after it).
const NO_OP_MESSAGE: &str = "\x1b[1A\n";

/// Where lines are printed in interactive mode: above the line being
/// edited, once the editor thread does not own the terminal.
pub struct TerminalOut {
    /// rustyline's external printer.
    pub printer: Printer,
    /// For the gate.
    pub shared: Arc<Shared>,
    /// The terminal in raw mode; the session restores it once the editor
    /// thread has ended (and dropping it does, whatever happens).
    pub raw: RawTerminal,
}

impl TerminalOut {
    /// Splits a [`Terminal`] into the editor (for the editor thread) and
    /// the printing side (for the main loop).
    pub fn new(terminal: Terminal, shared: Arc<Shared>) -> (LineEditor, TerminalOut) {
        let out = TerminalOut {
            printer: terminal.printer,
            shared,
            raw: terminal.raw,
        };
        (terminal.editor, out)
    }

    /// Prints one line above the line being edited.
    ///
    /// # Errors
    /// [`ClientError::Terminal`] when the terminal cannot be written.
    pub fn print_line(&mut self, line: &str) -> Result<(), ClientError> {
        self.shared.wait_for_terminal();
        self.printer
            .print(format!("{line}\n"))
            .map_err(|source| ClientError::Terminal {
                what: "write to the terminal",
                source,
            })
    }

    /// Makes sure every line printed so far is on the screen before the
    /// editor thread is stopped.
    ///
    /// rustyline's printer hands a message to `readline` through a channel
    /// that holds one, and `readline` takes it out only when it next looks,
    /// so the last line printed may still wait there; the SIGINT that stops
    /// the editor thread would then win, and the line would be lost (the
    /// server's `-- server shutting down`, say). Printing one more message
    /// waits until that one has been taken out, and rustyline prints what
    /// it takes out before it looks again. The extra message is
    /// [`NO_OP_MESSAGE`], which shows nothing whether or not it is printed.
    pub fn flush(&mut self) {
        // A failure here means the terminal is gone; nothing is left to show.
        let _ = self.printer.print(NO_OP_MESSAGE.to_string());
    }
}

/// The editor thread: reads lines with rustyline until the user quits (or
/// input fails, or the session stops it), sending them to `tx` as the plain
/// input thread would. `done` is dropped when the thread ends, which is how
/// [`stop_editor`] sees it.
pub fn run_editor(
    mut editor: LineEditor,
    shared: Arc<Shared>,
    style: Style,
    tx: Sender<FromStdin>,
    done: Sender<()>,
) {
    /// Whatever happens, the terminal is handed back and `done` dropped.
    struct Release {
        shared: Arc<Shared>,
        _done: Sender<()>,
    }
    impl Drop for Release {
        fn drop(&mut self) {
            self.shared.release_terminal();
        }
    }
    let _release = Release {
        shared: Arc::clone(&shared),
        _done: done,
    };

    loop {
        let Some((nick, room)) = shared.wait_for_prompt() else {
            return;
        };
        let prompt = style.prompt(nick.as_ref(), room.as_ref());
        shared.release_terminal();
        let result = editor.readline(&prompt);
        shared.take_terminal();
        if shared.stopping() {
            return;
        }
        let text = match result {
            Ok(text) => text,
            // Ctrl-C and Ctrl-D both mean "quit".
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => {
                let _ = tx.send(FromStdin::Eof);
                return;
            }
            Err(err) => {
                let _ = tx.send(FromStdin::Failed(readline_io_error(err)));
                return;
            }
        };
        if !text.trim().is_empty() {
            // Only fails for file-backed histories; this one is in memory.
            let _ = editor.add_history_entry(text.as_str());
        }
        // A paste can hold several lines, perhaps with CRLF line ends.
        let lines: Vec<&str> = text
            .split('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .collect();
        if lines.iter().all(|line| shown_again(line)) {
            let columns = editor.dimensions().map(|(cols, _)| usize::from(cols));
            erase_input(&prompt.0, &text, columns);
        }
        shared.release_terminal();
        for line in lines {
            if !send_line(line, &shared, &tx) {
                return;
            }
        }
    }
}

/// Sends one accepted line to the main loop. Returns false when the editor
/// thread must end: after a `/quit`, or when the main loop is gone.
fn send_line(line: &str, shared: &Shared, tx: &Sender<FromStdin>) -> bool {
    match Command::parse(line) {
        // Nothing to send: the server ignores blank lines.
        Ok(None) => return true,
        Ok(Some(Command::Nick(_) | Command::Join { .. })) => shared.expect_one_more(),
        _ => {}
    }
    let mut bytes = line.as_bytes().to_vec();
    bytes.push(b'\n');
    if is_quit(&bytes) {
        let _ = tx.send(FromStdin::Quit(bytes));
        return false;
    }
    tx.send(FromStdin::Line(bytes)).is_ok()
}

/// True for a line the main loop shows again in its own form (a chat
/// message or an action, see [`Style::own_line`]) or not at all (a blank
/// one): its typed form is erased from the screen.
fn shown_again(line: &str) -> bool {
    matches!(
        Command::parse(line),
        Ok(None | Some(Command::Say(_) | Command::Me(_)))
    )
}

/// Erases the prompt and `text` that rustyline left on the screen after
/// accepting a line (the cursor is then at the start of the next row).
/// Does nothing when the width of the terminal is unknown.
fn erase_input(prompt: &str, text: &str, columns: Option<usize>) {
    let Some(columns) = columns.filter(|c| *c > 0) else {
        return;
    };
    let rows = input_rows(prompt, text, columns);
    let mut out = io::stdout().lock();
    // A failure shows as a line left on the screen, nothing worse.
    let _ = write!(out, "\x1b[{rows}A\r\x1b[J").and_then(|()| out.flush());
}

/// How many rows of a `columns` wide terminal `prompt` and `text` took, as
/// rustyline lays them out (including the row it adds when the text ends
/// exactly at the right margin).
fn input_rows(prompt: &str, text: &str, columns: usize) -> usize {
    const TAB_STOP: usize = 8;
    let (mut row, mut col) = (0usize, 0usize);
    for c in prompt.chars().chain(text.chars()) {
        if c == '\n' {
            row += 1;
            col = 0;
            continue;
        }
        let width = if c == '\t' {
            TAB_STOP - col % TAB_STOP
        } else {
            c.width().unwrap_or(0)
        };
        col += width;
        if col > columns {
            row += 1;
            col = width;
        }
    }
    if col == columns {
        row += 1;
    }
    row + 1
}

/// The I/O error inside a rustyline error, or one that describes it.
fn readline_io_error(err: ReadlineError) -> io::Error {
    match err {
        ReadlineError::Io(err) => err,
        other => io::Error::other(other.to_string()),
    }
}

/// Ends the editor thread.
///
/// `done` disconnects when the thread has ended. `can_signal` says whether
/// raising SIGINT is safe: only when a handler is installed for it outside
/// `readline` too (the session's), or a SIGINT between two `readline` calls
/// would kill the process. The terminal settings are put back afterwards by
/// [`RawTerminal`], whether or not the thread could be ended.
pub fn stop_editor(shared: &Shared, done: &Receiver<()>, can_signal: bool) {
    shared.stop();
    for _ in 0..STOP_TRIES {
        if matches!(
            done.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        ) {
            return;
        }
        if !can_signal {
            break;
        }
        // rustyline's SIGINT handler ends `readline` with `Interrupted`.
        let _ = raise(Signal::SIGINT);
        if matches!(done.recv_timeout(STOP_WAIT), Err(RecvTimeoutError::Disconnected)) {
            return;
        }
    }
    // rustyline could not be reached: leave the cursor on a fresh line.
    let mut out = io::stdout().lock();
    let _ = out.write_all(b"\r\n").and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{bounded, unbounded};
    use std::thread;

    #[test]
    fn rows_follow_rustylines_layout() {
        assert_eq!(input_rows("> ", "", 80), 1);
        assert_eq!(input_rows("> ", "hello", 80), 1);
        // Exactly at the margin: rustyline moves to the next row.
        assert_eq!(input_rows("> ", &"x".repeat(78), 80), 2);
        assert_eq!(input_rows("> ", &"x".repeat(77), 80), 1);
        assert_eq!(input_rows("> ", &"x".repeat(79), 80), 2);
        assert_eq!(input_rows("> ", &"x".repeat(200), 80), 3);
        // Wide characters take two columns and do not split.
        assert_eq!(input_rows("", &"界".repeat(5), 9), 2);
        assert_eq!(input_rows("> ", "a\nb", 80), 2);
        assert_eq!(input_rows("", "\tx", 80), 1);
    }

    #[test]
    fn chat_lines_and_blank_lines_are_erased_commands_stay() {
        assert!(shown_again("hello"));
        assert!(shown_again("//slash"));
        assert!(shown_again("/me waves"));
        assert!(shown_again(""));
        assert!(shown_again("   "));
        assert!(!shown_again("/nick bob"));
        assert!(!shown_again("/who"));
        assert!(!shown_again("/dance"));
        assert!(!shown_again("/me"), "a usage error: the server answers it");
    }

    fn sent(lines: &[&str]) -> (Vec<String>, usize) {
        let shared = Shared::default();
        let (tx, rx) = unbounded();
        for line in lines {
            if !send_line(line, &shared, &tx) {
                break;
            }
        }
        let got = rx
            .try_iter()
            .map(|msg| match msg {
                FromStdin::Line(b) => format!("line {}", String::from_utf8_lossy(&b).trim_end()),
                FromStdin::Quit(b) => format!("quit {}", String::from_utf8_lossy(&b).trim_end()),
                FromStdin::Eof => "eof".into(),
                FromStdin::Failed(e) => format!("failed {e}"),
            })
            .collect();
        let awaiting = shared.lock().awaiting;
        (got, awaiting)
    }

    #[test]
    fn accepted_lines_go_out_with_a_newline_and_stop_at_quit() {
        let (got, awaiting) = sent(&["hi", "", "/nick bob", "/join rust", "/quit bye", "never"]);
        assert_eq!(
            got,
            ["line hi", "line /nick bob", "line /join rust", "quit /quit bye"]
        );
        assert_eq!(awaiting, 2, "one answer owed per /nick and /join");
    }

    #[test]
    fn the_prompt_waits_for_answers_and_wakes_on_them() {
        let shared = Arc::new(Shared::default());
        shared.expect_answers(2);
        let (tx, rx) = bounded(1);
        let waiter = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let _ = tx.send(shared.wait_for_prompt());
            })
        };
        shared.set_place(Some(Nick::new("alice").unwrap()), Some(RoomName::lobby()));
        shared.answered();
        shared.answered();
        let place = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
        let (nick, room) = place.unwrap();
        assert_eq!(nick.unwrap().as_str(), "alice");
        assert_eq!(room.unwrap().as_str(), "#lobby");
    }

    #[test]
    fn a_stopping_session_gives_no_prompt() {
        let shared = Shared::default();
        shared.expect_answers(1);
        shared.stop();
        assert!(shared.wait_for_prompt().is_none());
        assert!(shared.stopping());
    }

    #[test]
    fn the_gate_opens_when_the_editor_releases_the_terminal() {
        let shared = Arc::new(Shared::default());
        shared.take_terminal();
        let (tx, rx) = bounded(1);
        let printer = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                shared.wait_for_terminal();
                let _ = tx.send(shared.editor_owns_terminal.load(Ordering::SeqCst));
            })
        };
        shared.release_terminal();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(false));
        printer.join().unwrap();
    }

    #[test]
    fn inside_a_paste_text_is_inserted_and_other_keys_do_nothing() {
        assert_eq!(
            pasted_key(Some(KeyEvent(KeyCode::Char('x'), Modifiers::NONE))),
            None
        );
        assert_eq!(
            pasted_key(Some(KeyEvent(KeyCode::Tab, Modifiers::NONE))),
            Some(Cmd::Insert(1, "\t".to_string()))
        );
        for key in [
            KeyEvent::ctrl('D'),
            KeyEvent::ctrl('C'),
            KeyEvent(KeyCode::Backspace, Modifiers::NONE),
            KeyEvent(KeyCode::Up, Modifiers::NONE),
            KeyEvent::alt('b'),
        ] {
            assert_eq!(pasted_key(Some(key)), Some(Cmd::Noop), "{key:?}");
        }
        assert_eq!(pasted_key(None), Some(Cmd::Noop));
    }

    #[test]
    fn stopping_an_editor_that_already_ended_returns_at_once() {
        let shared = Shared::default();
        let (done_tx, done_rx) = bounded::<()>(1);
        drop(done_tx);
        // can_signal is false: nothing may be raised in a test process.
        stop_editor(&shared, &done_rx, false);
        assert!(shared.stopping());
    }
}
