//! Following the server's answers to the `/nick` and `/join` the client
//! says on connecting, so that nothing is said under a name or in a room
//! the user did not ask for.
//!
//! `chat-client --nick alice --send hi` must not post `hi` as `guest9` when
//! alice is taken: the server refuses the `/nick` with an `!!` error and
//! goes on serving the connection under its guest nick, so a line sent
//! right behind the `/nick` would be said by the guest. The session
//! therefore holds every line of input until each line of its greeting has
//! been answered, and [`Greeting`] tells it when that is, and which
//! request, if any, was refused.
//!
//! The server answers each line in order (PROTOCOL.md, "Ordering"), after
//! its welcome, and nothing of the user's is sent before the answers, so
//! the first confirmation or `!!` error after the welcome answers the first
//! request still open, and so on. Other lines in between (someone joining
//! the lobby, a message there) answer nothing. An error before the welcome
//! (`!! server full`) answers no request either: that connection is about
//! to close.

use std::collections::VecDeque;

/// What one server line says about the client's own requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The welcome: the connection is served; answers follow it.
    Welcome,
    /// A `/nick` or `/join` of the client's was done.
    Confirmed,
    /// A line of the client's was refused, with the server's reason (the
    /// text after `!! `).
    Refused(String),
}

/// What changed with one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every request of the greeting was confirmed.
    Done,
    /// A request was refused.
    Refused {
        /// The line refused, as sent (`/nick alice`).
        asked: String,
        /// The server's reason (`nick alice is already in use`).
        reason: String,
    },
}

/// The greeting's requests that the server has not answered yet on this
/// connection.
#[derive(Debug, Clone, Default)]
pub struct Greeting {
    /// The requests not answered yet, oldest first, without line ends.
    open: VecDeque<String>,
    /// True once this connection's welcome arrived.
    welcomed: bool,
}

impl Greeting {
    /// A greeting of `lines` (with or without their line ends), just sent
    /// on a new connection.
    pub fn new(lines: &[String]) -> Greeting {
        Greeting {
            open: lines.iter().map(|l| l.trim_end().to_string()).collect(),
            welcomed: false,
        }
    }

    /// True while a request waits for its answer: input must wait too.
    pub fn is_waiting(&self) -> bool {
        !self.open.is_empty()
    }

    /// The oldest request still waiting, as sent.
    pub fn first_open(&self) -> Option<&str> {
        self.open.front().map(String::as_str)
    }

    /// Stops waiting, for answers that will never be needed (the session
    /// goes on without them, or ends).
    pub fn abandon(&mut self) {
        self.open.clear();
    }

    /// Takes in what one server line answered; `None` while nothing
    /// decisive happened.
    pub fn follow(&mut self, answer: Option<&Answer>) -> Option<Outcome> {
        match answer? {
            Answer::Welcome => {
                self.welcomed = true;
                None
            }
            _ if !self.welcomed => None,
            Answer::Confirmed => {
                self.open.pop_front()?;
                self.open.is_empty().then_some(Outcome::Done)
            }
            Answer::Refused(reason) => {
                let asked = self.open.pop_front()?;
                Some(Outcome::Refused {
                    asked,
                    reason: reason.clone(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greeting() -> Greeting {
        Greeting::new(&["/nick alice\n".to_string(), "/join #rust\n".to_string()])
    }

    #[test]
    fn both_confirmed_after_the_welcome_is_done() {
        let mut g = greeting();
        assert!(g.is_waiting());
        assert_eq!(g.follow(Some(&Answer::Welcome)), None);
        assert_eq!(g.follow(None), None, "a line that answers nothing");
        assert_eq!(g.follow(Some(&Answer::Confirmed)), None);
        assert_eq!(g.first_open(), Some("/join #rust"));
        assert_eq!(g.follow(Some(&Answer::Confirmed)), Some(Outcome::Done));
        assert!(!g.is_waiting());
        // Later answers are to the user's own commands.
        assert_eq!(g.follow(Some(&Answer::Refused("x".into()))), None);
    }

    #[test]
    fn an_error_answers_the_oldest_open_request() {
        let mut g = greeting();
        g.follow(Some(&Answer::Welcome));
        assert_eq!(
            g.follow(Some(&Answer::Refused("nick alice is already in use".into()))),
            Some(Outcome::Refused {
                asked: "/nick alice".into(),
                reason: "nick alice is already in use".into()
            })
        );
        assert_eq!(g.first_open(), Some("/join #rust"));
        g.abandon();
        assert!(!g.is_waiting());
    }

    #[test]
    fn an_error_before_the_welcome_answers_nothing() {
        let mut g = greeting();
        assert_eq!(g.follow(Some(&Answer::Refused("server full".into()))), None);
        assert_eq!(g.follow(Some(&Answer::Confirmed)), None);
        assert_eq!(g.first_open(), Some("/nick alice"));
    }

    #[test]
    fn an_empty_greeting_never_waits() {
        let mut g = Greeting::new(&[]);
        assert!(!g.is_waiting());
        g.follow(Some(&Answer::Welcome));
        assert_eq!(g.follow(Some(&Answer::Confirmed)), None);
    }
}
