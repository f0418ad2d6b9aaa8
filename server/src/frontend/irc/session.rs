//! One IRC connection's state, and what its lines ask of the hub.
//!
//! The state machine: a connection starts [`State::Registering`],
//! collecting NICK and USER (and holding registration while a CAP
//! negotiation is open, as IRCv3 asks); once it has both, it asks the hub
//! to register it ([`Request::Register`]) and is [`State::Waiting`] for
//! the answer, which the encoder sees go by: `Registered` makes it
//! [`State::Registered`], a refused nick sends it back to registering for
//! another NICK. The hub alone decides whether a nick is free, so two
//! clients asking for one nick at once cannot both get it.
//!
//! Every answer goes through the hub, even those that need no chat state
//! (PONG, CAP, 421, 461): see [`IrcReply`] for why. The session turns one
//! line into any number of requests (a JOIN of several channels is one
//! per channel), bounded by the TARGMAX it advertises.

use chat_protocol::command::MAX_TOPIC_LEN;
use chat_protocol::irc::format::{self, strip};
use chat_protocol::irc::{IrcReply, Message};
use chat_protocol::moderation::check_key;
use chat_protocol::text::{is_blank, sanitize};
use chat_protocol::{DecodeError, ErrorKind, Mask, NameError, Nick, Role, RoomName, RoomSetting, Style};

use crate::chat::request::{Request, Target};

/// The most targets one PRIVMSG or NOTICE may name (`TARGMAX`).
pub const MAX_MESSAGE_TARGETS: usize = 4;
/// The most channels one JOIN, PART or NAMES may name (`TARGMAX`).
pub const MAX_CHANNEL_TARGETS: usize = 10;
/// The longest user name kept from USER (`USERLEN`); longer ones are cut.
pub const USERLEN: usize = 10;
/// The longest real name or away message kept, in characters.
pub const MAX_REALNAME: usize = 100;
/// The longest away message kept, in characters (`AWAYLEN`).
pub const AWAYLEN: usize = chat_protocol::command::MAX_AWAY_LEN;

/// The IRCv3 capabilities the front end offers, in the order CAP LS lists
/// them.
pub const CAPABILITIES: [(&str, Cap); 4] = [
    ("echo-message", Cap::EchoMessage),
    ("multi-prefix", Cap::MultiPrefix),
    ("server-time", Cap::ServerTime),
    ("userhost-in-names", Cap::UserhostInNames),
];

/// One IRCv3 capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// The sender hears its own messages back, as others hear them.
    EchoMessage,
    /// NAMES shows every prefix a member has (ours have at most one).
    MultiPrefix,
    /// Messages carry the time they were said (`@time=`): replayed
    /// history shows when it was said, not when it was replayed.
    ServerTime,
    /// NAMES shows `nick!user@host`.
    UserhostInNames,
}

impl Cap {
    fn bit(self) -> u8 {
        match self {
            Cap::EchoMessage => 1,
            Cap::MultiPrefix => 2,
            Cap::ServerTime => 4,
            Cap::UserhostInNames => 8,
        }
    }
}

/// Where a connection is in its registration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum State {
    /// Collecting NICK and USER.
    Registering {
        /// The nick given, if any yet.
        nick: Option<Nick>,
        /// The user name and real name given, if USER came yet.
        user: Option<(String, String)>,
        /// A CAP negotiation is open: registration waits for CAP END.
        negotiating: bool,
    },
    /// Asked the hub to register with this nick; waiting for its answer.
    Waiting {
        /// The nick asked for.
        nick: Nick,
        /// The user name and real name given.
        user: (String, String),
    },
    /// On the chat.
    Registered,
}

/// One IRC connection's front end.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// Where registration stands.
    pub state: State,
    /// The nick the hub knows the client by, once registered; numerics
    /// are addressed to it (`*` before).
    pub nick: Option<Nick>,
    /// The capabilities enabled, one bit each.
    caps: u8,
    /// User mode `+i`, as the hub last confirmed it.
    pub invisible: bool,
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

impl Session {
    /// A new connection's session.
    pub fn new() -> Session {
        Session {
            state: State::Registering {
                nick: None,
                user: None,
                negotiating: false,
            },
            nick: None,
            caps: 0,
            invisible: false,
        }
    }

    /// Whether `cap` is enabled.
    pub fn has(&self, cap: Cap) -> bool {
        self.caps & cap.bit() != 0
    }

    /// Whether the hub has registered the client.
    pub fn is_registered(&self) -> bool {
        self.state == State::Registered
    }

    /// What one decoded line asks of the hub, each request handed to
    /// `to_hub` in order. A line that asks nothing (an empty line, a PONG)
    /// hands over nothing.
    pub fn take(
        &mut self,
        line: Result<String, DecodeError>,
        to_hub: &mut impl FnMut(Result<Request, ErrorKind>),
    ) {
        let line = match line {
            Ok(line) => line,
            Err(DecodeError::InvalidUtf8 { lossy }) => {
                let command = Message::parse(&lossy)
                    .map(|m| m.command.to_ascii_uppercase())
                    .unwrap_or_else(|_| "*".to_string());
                return to_hub(Ok(Request::Irc(IrcReply::Fail {
                    command,
                    code: "INVALID_UTF8",
                    text: "Message rejected: it is not UTF-8 (this server is UTF8ONLY)".to_string(),
                })));
            }
            Err(DecodeError::TooLong { .. } | DecodeError::MessageTooLong { .. }) => {
                return to_hub(Ok(Request::Irc(numeric("417", &[], "Input line was too long"))));
            }
        };
        let Ok(message) = Message::parse(&line) else { return };
        let mut out = Out { to_hub };
        let command = message.command.to_ascii_uppercase();
        match command.as_str() {
            "CAP" => self.cap(&message, &mut out),
            "NICK" => self.nick(&message, &mut out),
            "USER" => self.user(&message, &mut out),
            "PASS" if !self.is_registered() => {}
            "PASS" => out.reply(numeric("462", &[], "You may not reregister")),
            "PING" => match message.param(0) {
                Some(token) => out.reply(IrcReply::Pong(token.to_string())),
                None => out.reply(numeric("409", &[], "No origin specified")),
            },
            // A keepalive answer: reading it was all it was for.
            "PONG" => {}
            "QUIT" => out.send(Request::Quit(
                message.param(0).map(clean).filter(|r| !r.is_empty()),
            )),
            _ if !self.is_registered() && !matches!(self.state, State::Waiting { .. }) => {
                out.reply(numeric("451", &[], "You have not registered"));
            }
            "PRIVMSG" => message_to(&message, Style::Message, self.has(Cap::EchoMessage), &mut out),
            "NOTICE" => message_to(&message, Style::Notice, self.has(Cap::EchoMessage), &mut out),
            "JOIN" => join(&message, &mut out),
            "PART" => part(&message, &mut out),
            "NAMES" => names(&message, &mut out),
            "TOPIC" => topic(&message, &mut out),
            "WHO" => {
                let mask = message.param(0).filter(|m| !m.is_empty()).unwrap_or("*");
                out.send(Request::WhoMatching(mask.to_string()));
            }
            "WHOIS" => whois(&message, &mut out),
            "LIST" => out.send(Request::List),
            "AWAY" => {
                let text = message.param(0).map(|t| cut(&clean(t), AWAYLEN));
                out.send(Request::Away(text.filter(|t| !t.is_empty())));
            }
            "MOTD" => out.reply(IrcReply::Motd),
            "MODE" => self.mode(&message, &mut out),
            "KICK" => kick(&message, &mut out),
            _ => out.reply(numeric("421", &[&command], "Unknown command")),
        }
    }

    /// CAP LS, LIST, REQ and END.
    fn cap(&mut self, message: &Message<'_>, out: &mut Out<'_, impl FnMut(Result<Request, ErrorKind>)>) {
        let subcommand = message.param(0).unwrap_or_default().to_ascii_uppercase();
        match subcommand.as_str() {
            "LS" => {
                self.negotiate();
                let list: Vec<&str> = CAPABILITIES.iter().map(|(name, _)| *name).collect();
                out.reply(IrcReply::Cap {
                    subcommand: "LS",
                    caps: list.join(" "),
                    more: false,
                });
            }
            "LIST" => {
                let on: Vec<&str> = CAPABILITIES
                    .iter()
                    .filter(|(_, cap)| self.has(*cap))
                    .map(|(name, _)| *name)
                    .collect();
                out.reply(IrcReply::Cap {
                    subcommand: "LIST",
                    caps: on.join(" "),
                    more: false,
                });
            }
            "REQ" => {
                self.negotiate();
                let asked = message.param(1).unwrap_or_default();
                // All or nothing: one unknown capability refuses the lot.
                let mut bits_on = 0u8;
                let mut bits_off = 0u8;
                let mut known = !asked.trim().is_empty();
                for name in asked.split(' ').filter(|n| !n.is_empty()) {
                    let (off, name) = match name.strip_prefix('-') {
                        Some(name) => (true, name),
                        None => (false, name),
                    };
                    match CAPABILITIES.iter().find(|(n, _)| *n == name) {
                        Some((_, cap)) if off => bits_off |= cap.bit(),
                        Some((_, cap)) => bits_on |= cap.bit(),
                        None => known = false,
                    }
                }
                let subcommand = if known {
                    self.caps = (self.caps | bits_on) & !bits_off;
                    "ACK"
                } else {
                    "NAK"
                };
                out.reply(IrcReply::Cap {
                    subcommand,
                    caps: asked.to_string(),
                    more: false,
                });
            }
            "END" => {
                if let State::Registering { negotiating, .. } = &mut self.state {
                    *negotiating = false;
                }
                self.try_register(out);
            }
            _ => out.reply(numeric(
                "410",
                &[message.param(0).unwrap_or("*")],
                "Invalid CAP command",
            )),
        }
    }

    /// A CAP LS or REQ before registering holds registration until CAP END.
    fn negotiate(&mut self) {
        if let State::Registering { negotiating, .. } = &mut self.state {
            *negotiating = true;
        }
    }

    fn nick(&mut self, message: &Message<'_>, out: &mut Out<'_, impl FnMut(Result<Request, ErrorKind>)>) {
        let Some(asked) = message.param(0).filter(|n| !n.is_empty()) else {
            return out.reply(numeric("431", &[], "No nickname given"));
        };
        let nick = match Nick::new(asked) {
            Ok(nick) => nick,
            Err(error) => return out.reply(erroneous_nick(asked, &error)),
        };
        match &mut self.state {
            State::Registering { nick: slot, .. } => {
                *slot = Some(nick);
                self.try_register(out);
            }
            // Registering takes the last NICK given: the hub treats a
            // second registration as a change of nick.
            State::Waiting { nick: waiting, user } => {
                let user = user.clone();
                *waiting = nick.clone();
                out.send(Request::Register {
                    nick,
                    user: user.0,
                    realname: user.1,
                });
            }
            // The nick it has, spelt the same: nothing to do.
            State::Registered if self.nick.as_ref().is_some_and(|n| n.as_str() == nick.as_str()) => {}
            State::Registered => out.send(Request::Nick(nick)),
        }
    }

    fn user(&mut self, message: &Message<'_>, out: &mut Out<'_, impl FnMut(Result<Request, ErrorKind>)>) {
        let State::Registering { user: slot, .. } = &mut self.state else {
            return out.reply(numeric("462", &[], "You may not reregister"));
        };
        let (Some(user), Some(realname)) = (message.param(0), message.param(3)) else {
            return out.reply(numeric("461", &["USER"], "Not enough parameters"));
        };
        if user.is_empty() || realname.is_empty() {
            return out.reply(numeric("461", &["USER"], "Not enough parameters"));
        }
        *slot = Some((user_name(user), cut(&clean(realname), MAX_REALNAME)));
        self.try_register(out);
    }

    /// Asks the hub to register the client once it has a nick and a user
    /// and no CAP negotiation is open.
    fn try_register(&mut self, out: &mut Out<'_, impl FnMut(Result<Request, ErrorKind>)>) {
        let State::Registering {
            nick: Some(nick),
            user: Some(user),
            negotiating: false,
        } = &self.state
        else {
            return;
        };
        let (nick, user) = (nick.clone(), user.clone());
        out.send(Request::Register {
            nick: nick.clone(),
            user: user.0.clone(),
            realname: user.1.clone(),
        });
        self.state = State::Waiting { nick, user };
    }

    /// The hub registered the client as `nick`.
    pub fn registered(&mut self, nick: Nick) {
        self.state = State::Registered;
        self.nick = Some(nick);
    }

    /// The hub refused the nick a registration asked for: back to waiting
    /// for another NICK (the USER given stays).
    pub fn refused(&mut self) {
        if let State::Waiting { user, .. } = &self.state {
            self.state = State::Registering {
                nick: None,
                user: Some(user.clone()),
                negotiating: false,
            };
        }
    }
}

/// Hands requests to the hub.
struct Out<'a, F: FnMut(Result<Request, ErrorKind>)> {
    to_hub: &'a mut F,
}

impl<F: FnMut(Result<Request, ErrorKind>)> Out<'_, F> {
    fn send(&mut self, request: Request) {
        (self.to_hub)(Ok(request));
    }

    fn reply(&mut self, reply: IrcReply) {
        (self.to_hub)(Ok(Request::Irc(reply)));
    }
}

/// A numeric reply to the client: `CODE <nick> params... :text`.
fn numeric(code: &'static str, params: &[&str], text: &str) -> IrcReply {
    IrcReply::Numeric {
        code,
        params: params.iter().map(ToString::to_string).collect(),
        text: text.to_string(),
    }
}

/// 432 for a nick our rules refuse, saying which rule.
fn erroneous_nick(asked: &str, error: &NameError) -> IrcReply {
    let shown: String = asked.chars().take(32).collect();
    numeric(
        "432",
        &[&clean(&shown)],
        &format!(
            "Erroneous nickname: {error} (letters, digits, '_' and '-', starting with a letter, at most 24)"
        ),
    )
}

/// Text as it may reach others: IRC formatting taken out, then sanitized.
fn clean(text: &str) -> String {
    sanitize(&strip(text)).into_owned()
}

/// At most `max` characters of `text`.
fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// A user name as WHO and WHOIS show it: the characters of a name, at most
/// [`USERLEN`]; `user` when nothing is left.
fn user_name(given: &str) -> String {
    let name: String = given
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(USERLEN)
        .collect();
    if name.is_empty() {
        "user".to_string()
    } else {
        name
    }
}

/// A channel name from an IRC client: `#` and a room name; why not, in
/// words, otherwise.
fn channel(name: &str) -> Result<RoomName, String> {
    if !name.starts_with('#') {
        return Err("channel names start with '#'".to_string());
    }
    RoomName::new(name).map_err(|e| e.to_string())
}

/// PRIVMSG and NOTICE: to channels and nicks; with `echo`, what is said
/// in a channel comes back to the sender too.
fn message_to(
    message: &Message<'_>,
    style: Style,
    echo: bool,
    out: &mut Out<'_, impl FnMut(Result<Request, ErrorKind>)>,
) {
    let notice = style == Style::Notice;
    let command = if notice { "NOTICE" } else { "PRIVMSG" };
    let Some(targets) = message.param(0).filter(|t| !t.is_empty()) else {
        if !notice {
            out.reply(numeric("411", &[], &format!("No recipient given ({command})")));
        }
        return;
    };
    let Some(text) = message.param(1).filter(|t| !t.is_empty()) else {
        if !notice {
            out.reply(numeric("412", &[], "No text to send"));
        }
        return;
    };
    let (style, text) = match format::action(text) {
        Some(action) if !notice => (Style::Action, action),
        // Other CTCP (VERSION, PING, ...) is not answered or passed on.
        _ if format::is_ctcp(text) => return,
        _ => (style, text),
    };
    let text = clean(text);
    if is_blank(&text) {
        return;
    }
    for target in targets
        .split(',')
        .filter(|t| !t.is_empty())
        .take(MAX_MESSAGE_TARGETS)
    {
        if target.starts_with('#') {
            match channel(target) {
                Ok(room) => out.send(Request::Say {
                    room: Target::Room(room),
                    text: text.clone(),
                    style,
                    echo,
                }),
                Err(_) if !notice => out.reply(numeric("403", &[target], "No such channel")),
                Err(_) => {}
            }
        } else {
            match Nick::new(target) {
                Ok(to) => out.send(Request::Private {
                    to,
                    text: text.clone(),
                    style,
                }),
                Err(_) if !notice => out.reply(numeric("401", &[target], "No such nick/channel")),
                Err(_) => {}
            }
        }
    }
}

fn join(message: &Message<'_>, out: &mut Out<'_, impl FnMut(Result<Request, ErrorKind>)>) {
    let Some(targets) = message.param(0).filter(|t| !t.is_empty()) else {
        return out.reply(numeric("461", &["JOIN"], "Not enough parameters"));
    };
    // Keys go with the channels in order: JOIN #a,#b keyA,keyB.
    let mut keys = message.param(1).unwrap_or_default().split(',');
    for target in targets
        .split(',')
        .filter(|t| !t.is_empty())
        .take(MAX_CHANNEL_TARGETS)
    {
        let key = keys.next().filter(|k| !k.is_empty()).map(ToString::to_string);
        match channel(target) {
            Ok(room) => out.send(Request::Join {
                room,
                leave_others: false,
                names: true,
                key,
            }),
            Err(error) => out.reply(numeric("403", &[target], &format!("No such channel: {error}"))),
        }
    }
}

fn part(message: &Message<'_>, out: &mut Out<'_, impl FnMut(Result<Request, ErrorKind>)>) {
    let Some(targets) = message.param(0).filter(|t| !t.is_empty()) else {
        return out.reply(numeric("461", &["PART"], "Not enough parameters"));
    };
    let reason = message.param(1).map(clean).filter(|r| !r.is_empty());
    for target in targets
        .split(',')
        .filter(|t| !t.is_empty())
        .take(MAX_CHANNEL_TARGETS)
    {
        match channel(target) {
            Ok(room) => out.send(Request::Part {
                room: Target::Room(room),
                reason: reason.clone(),
            }),
            Err(_) => out.reply(numeric("403", &[target], "No such channel")),
        }
    }
}

fn names(message: &Message<'_>, out: &mut Out<'_, impl FnMut(Result<Request, ErrorKind>)>) {
    let Some(targets) = message.param(0).filter(|t| !t.is_empty()) else {
        // Every channel's members, as RFC 1459 has it, would be the whole
        // server: the end of an empty list instead.
        return out.reply(numeric("366", &["*"], "End of /NAMES list"));
    };
    // A name that is not a channel's has no members: it is left out, and
    // the end of the listing still names what was asked.
    let rooms: Vec<RoomName> = targets
        .split(',')
        .filter(|t| !t.is_empty())
        .take(MAX_CHANNEL_TARGETS)
        .filter_map(|t| channel(t).ok())
        .collect();
    if rooms.is_empty() {
        return out.reply(numeric("366", &[targets], "End of /NAMES list"));
    }
    out.send(Request::Names {
        rooms,
        asked: targets.to_string(),
    });
}

fn topic(message: &Message<'_>, out: &mut Out<'_, impl FnMut(Result<Request, ErrorKind>)>) {
    let Some(target) = message.param(0).filter(|t| !t.is_empty()) else {
        return out.reply(numeric("461", &["TOPIC"], "Not enough parameters"));
    };
    let Ok(room) = channel(target) else {
        return out.reply(numeric("403", &[target], "No such channel"));
    };
    let set = message.param(1).map(|t| cut(&clean(t), MAX_TOPIC_LEN));
    out.send(Request::Topic {
        room: Target::Room(room),
        set,
    });
}

fn whois(message: &Message<'_>, out: &mut Out<'_, impl FnMut(Result<Request, ErrorKind>)>) {
    // WHOIS [server] nick: the nick is the last parameter.
    let Some(asked) = message.params.last().copied().filter(|t| !t.is_empty()) else {
        return out.reply(numeric("431", &[], "No nickname given"));
    };
    let first = asked.split(',').next().unwrap_or(asked);
    match Nick::new(first) {
        Ok(nick) => out.send(Request::Whois(nick)),
        Err(_) => {
            out.reply(numeric("401", &[first], "No such nick/channel"));
            out.reply(numeric("318", &[first], "End of /WHOIS list"));
        }
    }
}

impl Session {
    /// MODE: a user's own `+i`, and channel modes (see [`channel_mode`]).
    fn mode(&mut self, message: &Message<'_>, out: &mut Out<'_, impl FnMut(Result<Request, ErrorKind>)>) {
        let Some(target) = message.param(0).filter(|t| !t.is_empty()) else {
            return out.reply(numeric("461", &["MODE"], "Not enough parameters"));
        };
        if target.starts_with('#') {
            return channel_mode(message, out);
        }
        let me = self
            .nick
            .as_ref()
            .is_some_and(|n| n.as_str().eq_ignore_ascii_case(target));
        if !me {
            return out.reply(numeric("502", &[], "Cannot change mode for other users"));
        }
        let Some(change) = message.param(1) else {
            let modes = if self.invisible { "+i" } else { "+" };
            return out.reply(numeric("221", &[modes], ""));
        };
        // Only `i` is a user mode here: `+i`, `-i`, `+i-i`...
        let mut on = None;
        let mut adding = true;
        for c in change.chars() {
            match c {
                '+' => adding = true,
                '-' => adding = false,
                'i' => on = Some(adding),
                _ => {
                    return out.reply(numeric(
                        "501",
                        &[],
                        "Unknown MODE flag (only +i is a user mode here)",
                    ))
                }
            }
        }
        if let Some(on) = on.filter(|&on| on != self.invisible) {
            out.send(Request::Invisible(on));
        }
    }
}

/// The most mode changes one MODE carries out (`MODES`).
pub const MAX_MODES: usize = 4;

/// Channel MODE: `MODE #room` asks the settings, `MODE #room b` (or `+b`)
/// the bans; changes (`+o nick`, `-v nick`, `+b mask`, `+m`, `+t`,
/// `+k key`, `+s`, at most [`MAX_MODES`]) become the hub's moderation
/// requests, which check that the sender is an operator.
fn channel_mode(message: &Message<'_>, out: &mut Out<'_, impl FnMut(Result<Request, ErrorKind>)>) {
    let target = message.param(0).unwrap_or_default();
    let room = match channel(target) {
        Ok(room) => Target::Room(room),
        Err(_) => return out.reply(numeric("403", &[target], "No such channel")),
    };
    let Some(changes) = message.param(1) else {
        return out.send(Request::RoomSettings { room, change: None });
    };
    if matches!(changes, "b" | "+b") && message.param(2).is_none() {
        return out.send(Request::Bans(room));
    }
    // Lists we do not keep: always empty.
    match changes {
        "e" | "+e" => return out.reply(numeric("349", &[target], "End of channel exception list")),
        "I" | "+I" => return out.reply(numeric("347", &[target], "End of channel invite list")),
        _ => {}
    }
    let mut args = message.params.iter().skip(2).copied();
    let mut adding = true;
    let mut done = 0;
    for c in changes.chars() {
        if done == MAX_MODES {
            break;
        }
        let request = match c {
            '+' => {
                adding = true;
                continue;
            }
            '-' => {
                adding = false;
                continue;
            }
            'o' | 'v' => {
                let Some(who) = args.next() else { continue };
                let role = if c == 'o' { Role::Op } else { Role::Voice };
                match Nick::new(who) {
                    Ok(nick) => Request::SetRole {
                        room: room.clone(),
                        nick,
                        role,
                        on: adding,
                    },
                    Err(_) => {
                        out.reply(numeric("401", &[who], "No such nick/channel"));
                        continue;
                    }
                }
            }
            'b' => {
                let Some(mask) = args.next() else {
                    out.send(Request::Bans(room.clone()));
                    continue;
                };
                match Mask::parse(mask) {
                    Ok(mask) if adding => Request::Ban {
                        room: room.clone(),
                        mask,
                        duration: None,
                    },
                    Ok(mask) => Request::Unban {
                        room: room.clone(),
                        mask,
                    },
                    Err(error) => {
                        out.reply(numeric("696", &[target, "b", mask], &error.to_string()));
                        continue;
                    }
                }
            }
            'k' => {
                // -k takes the key (or *) too, and ignores it.
                let key = args.next();
                let setting = match (adding, key) {
                    (false, _) => RoomSetting::Key(None),
                    (true, Some(key)) if check_key(key).is_ok() => RoomSetting::Key(Some(key.to_string())),
                    (true, Some(key)) => {
                        out.reply(numeric(
                            "525",
                            &[target],
                            &format!("Key is not well-formed: {key}"),
                        ));
                        continue;
                    }
                    (true, None) => {
                        out.reply(numeric("461", &["MODE"], "Not enough parameters"));
                        continue;
                    }
                };
                Request::RoomSettings {
                    room: room.clone(),
                    change: Some(setting),
                }
            }
            'm' | 't' | 's' => Request::RoomSettings {
                room: room.clone(),
                change: Some(match c {
                    'm' => RoomSetting::Moderated(adding),
                    't' => RoomSetting::TopicLocked(adding),
                    _ => RoomSetting::Hidden(adding),
                }),
            },
            // Only members speak in any room: +n is always on.
            'n' if adding => continue,
            _ => {
                let mode = c.to_string();
                out.reply(numeric("472", &[&mode], "is unknown mode char to me"));
                continue;
            }
        };
        out.send(request);
        done += 1;
    }
}

/// KICK #room nick[,nick] [:reason].
fn kick(message: &Message<'_>, out: &mut Out<'_, impl FnMut(Result<Request, ErrorKind>)>) {
    let (Some(target), Some(whom)) = (message.param(0), message.param(1)) else {
        return out.reply(numeric("461", &["KICK"], "Not enough parameters"));
    };
    let Ok(room) = channel(target) else {
        return out.reply(numeric("403", &[target], "No such channel"));
    };
    let reason = message.param(2).map(clean).filter(|r| !r.is_empty());
    for who in whom
        .split(',')
        .filter(|w| !w.is_empty())
        .take(MAX_MESSAGE_TARGETS)
    {
        match Nick::new(who) {
            Ok(nick) => out.send(Request::Kick {
                room: Target::Room(room.clone()),
                nick,
                reason: reason.clone(),
            }),
            Err(_) => out.reply(numeric("401", &[who], "No such nick/channel")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `lines` ask of the hub, in order.
    fn asks(session: &mut Session, lines: &[&str]) -> Vec<Result<Request, ErrorKind>> {
        let mut asked = Vec::new();
        for line in lines {
            session.take(Ok(line.to_string()), &mut |r| asked.push(r));
        }
        asked
    }

    fn nick(n: &str) -> Nick {
        Nick::new(n).unwrap()
    }

    fn register(user: &str, realname: &str, nick_: &str) -> Result<Request, ErrorKind> {
        Ok(Request::Register {
            nick: nick(nick_),
            user: user.to_string(),
            realname: realname.to_string(),
        })
    }

    #[test]
    fn nick_and_user_register_in_either_order() {
        let mut s = Session::new();
        assert_eq!(
            asks(&mut s, &["USER alice 0 * :Alice Liddell", "NICK alice"]),
            [register("alice", "Alice Liddell", "alice")]
        );
        assert!(matches!(s.state, State::Waiting { .. }));
        s.registered(nick("alice"));
        assert!(s.is_registered());
    }

    #[test]
    fn a_cap_negotiation_holds_registration_until_cap_end() {
        let mut s = Session::new();
        let asked = asks(&mut s, &["CAP LS 302", "NICK bob", "USER bob 0 * :Bob"]);
        assert!(matches!(
            &asked[..],
            [Ok(Request::Irc(IrcReply::Cap { subcommand: "LS", .. }))]
        ));
        let asked = asks(&mut s, &["CAP REQ :server-time echo-message", "CAP END"]);
        assert!(matches!(
            &asked[0],
            Ok(Request::Irc(IrcReply::Cap {
                subcommand: "ACK",
                ..
            }))
        ));
        assert_eq!(asked[1], register("bob", "Bob", "bob"));
        assert!(s.has(Cap::ServerTime) && s.has(Cap::EchoMessage) && !s.has(Cap::MultiPrefix));
    }

    #[test]
    fn an_unknown_capability_refuses_the_whole_request() {
        let mut s = Session::new();
        let asked = asks(&mut s, &["CAP REQ :server-time sasl"]);
        assert!(matches!(
            &asked[..],
            [Ok(Request::Irc(IrcReply::Cap {
                subcommand: "NAK",
                ..
            }))]
        ));
        assert!(!s.has(Cap::ServerTime));
    }

    #[test]
    fn before_registering_only_registration_commands_are_allowed() {
        let mut s = Session::new();
        let asked = asks(&mut s, &["JOIN #rust", "PING x"]);
        assert_eq!(
            asked,
            [
                Ok(Request::Irc(numeric("451", &[], "You have not registered"))),
                Ok(Request::Irc(IrcReply::Pong("x".to_string())))
            ]
        );
    }

    #[test]
    fn a_bad_nick_gets_432_with_the_rule_it_breaks() {
        let mut s = Session::new();
        let asked = asks(&mut s, &["NICK 1abc", "NICK :", "NICK"]);
        let codes: Vec<&str> = asked
            .iter()
            .map(|r| match r {
                Ok(Request::Irc(IrcReply::Numeric { code, .. })) => *code,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(codes, ["432", "431", "431"]);
        let Ok(Request::Irc(IrcReply::Numeric { text, .. })) = &asked[0] else { unreachable!() };
        assert!(text.contains("must start with a letter"), "{text}");
    }

    #[test]
    fn one_line_to_several_targets_asks_once_per_target() {
        let mut s = Session::new();
        s.registered(nick("alice"));
        let asked = asks(&mut s, &["PRIVMSG #a,bob :\u{2}hi\u{2} there", "JOIN #x,#y,bad"]);
        assert_eq!(
            asked,
            [
                Ok(Request::Say {
                    room: Target::Room(RoomName::new("#a").unwrap()),
                    text: "hi there".into(),
                    style: Style::Message,
                    echo: false
                }),
                Ok(Request::Private {
                    to: nick("bob"),
                    text: "hi there".into(),
                    style: Style::Message
                }),
                Ok(Request::Join {
                    room: RoomName::new("#x").unwrap(),
                    leave_others: false,
                    names: true,
                    key: None
                }),
                Ok(Request::Join {
                    room: RoomName::new("#y").unwrap(),
                    leave_others: false,
                    names: true,
                    key: None
                }),
                Ok(Request::Irc(numeric(
                    "403",
                    &["bad"],
                    "No such channel: channel names start with '#'"
                ))),
            ]
        );
    }

    #[test]
    fn a_ctcp_action_is_an_action_and_other_ctcp_is_dropped() {
        let mut s = Session::new();
        s.registered(nick("alice"));
        let asked = asks(
            &mut s,
            &[
                "PRIVMSG #a :\u{1}ACTION waves\u{1}",
                "PRIVMSG bob :\u{1}VERSION\u{1}",
            ],
        );
        assert_eq!(
            asked,
            [Ok(Request::Say {
                room: Target::Room(RoomName::new("#a").unwrap()),
                text: "waves".into(),
                style: Style::Action,
                echo: false
            })]
        );
    }

    #[test]
    fn invalid_utf8_fails_the_command_it_was() {
        let mut s = Session::new();
        let mut asked = Vec::new();
        s.take(
            Err(DecodeError::InvalidUtf8 {
                lossy: "PRIVMSG #a :\u{fffd}".into(),
            }),
            &mut |r| asked.push(r),
        );
        assert!(matches!(
            &asked[..],
            [Ok(Request::Irc(IrcReply::Fail { command, code: "INVALID_UTF8", .. }))] if command == "PRIVMSG"
        ));
    }
}
