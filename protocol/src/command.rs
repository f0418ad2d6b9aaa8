//! Parsing a client's line into a [`Command`].
//!
//! A line that does not start with `/` is chat text for the current room;
//! `//text` is chat text that starts with `/`. Anything else starting with
//! `/` is a command, whose name is matched without regard to case. Chat
//! text (messages, actions, private messages, quit reasons) comes out of
//! the parser already sanitized by [`crate::text::sanitize`], so nothing
//! downstream can forget to do it.

use std::time::Duration;

use crate::moderation::{check_key, parse_duration, Mask, ModerationError, Role, RoomSetting};
use crate::names::{NameError, Nick, RoomName};
use crate::text::{is_blank, sanitize};

/// One thing a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Chat text for everyone else in the current room.
    Say(String),
    /// `/nick NAME`: change nick.
    Nick(Nick),
    /// `/join ROOM [KEY]`: leave the current room and enter ROOM.
    Join {
        /// The room.
        room: RoomName,
        /// Its key, if it needs one.
        key: Option<String>,
    },
    /// `/rooms [PAGE]`: list rooms with member counts, a page at a time.
    Rooms {
        /// Which page (from 1) of the listing.
        page: usize,
    },
    /// `/who [PAGE]`: list the nicks in the current room, a page at a time.
    Who {
        /// Which page (from 1) of the listing.
        page: usize,
    },
    /// `/msg NICK TEXT`: a private message.
    Msg {
        /// Who it is for.
        to: Nick,
        /// What it says.
        text: String,
    },
    /// `/me TEXT`: an action in the current room.
    Me(String),
    /// `/topic [TEXT]`: show the current room's topic, or set it.
    Topic(Option<String>),
    /// `/history [N]`: the last N lines said in the current room (the
    /// server's replay count when N is not given).
    History(Option<usize>),
    /// `/away [MESSAGE]`: be away with a message, or come back.
    Away(Option<String>),
    /// `/op NICK`, `/deop NICK`, `/voice NICK`, `/devoice NICK`: give or
    /// take a role in the current room.
    Role {
        /// Whose.
        nick: Nick,
        /// Which.
        role: Role,
        /// Give (true) or take.
        on: bool,
    },
    /// `/kick NICK [REASON]`: put someone out of the current room.
    Kick {
        /// Whom.
        nick: Nick,
        /// Why, as the room is told.
        reason: Option<String>,
    },
    /// `/ban MASK [DURATION]`: keep matching users out of the current room
    /// (and silent, if they are in it).
    Ban {
        /// Whom.
        mask: Mask,
        /// For how long; `None` until lifted.
        duration: Option<Duration>,
    },
    /// `/unban MASK`: lift a ban.
    Unban(Mask),
    /// `/bans`: list the current room's bans.
    Bans,
    /// `/room [SETTING VALUE]`: show the current room's settings, or change
    /// one.
    Room(Option<RoomSetting>),
    /// `/quit [REASON]`: leave.
    Quit(Option<String>),
    /// `/help [COMMAND]`: list the commands, or explain one.
    Help(Option<&'static CommandHelp>),
}

/// The longest topic, in characters: a line of a terminal, and what IRC
/// clients expect (`TOPICLEN`).
pub const MAX_TOPIC_LEN: usize = 300;

/// The longest away message kept, in characters (IRC's `AWAYLEN`); the
/// rest is cut off.
pub const MAX_AWAY_LEN: usize = 300;

/// A command line that cannot be carried out as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Occurs for `/name` where no command is called `name`. Holds the name
    /// as typed, sanitized.
    #[error("unknown command /{0}; type /help for the list")]
    Unknown(String),
    /// Occurs when a known command has missing or extra arguments. Holds
    /// the command's usage.
    #[error("usage: {0}")]
    Usage(&'static str),
    /// Occurs for `/nick` with a name that breaks the nick rules.
    #[error("invalid nick: {0}")]
    BadNick(NameError),
    /// Occurs for `/topic` with a topic longer than [`MAX_TOPIC_LEN`].
    #[error("topic too long (max {MAX_TOPIC_LEN} characters)")]
    TopicTooLong,
    /// Occurs for `/join` with a name that breaks the room name rules.
    #[error("invalid room: {0}")]
    BadRoom(NameError),
    /// Occurs for `/msg` to a name that cannot be anyone's nick. Holds the
    /// name as typed, sanitized.
    #[error("no such nick: {0}")]
    NoSuchNick(String),
    /// Occurs for a moderation command with a mask, duration or key that
    /// cannot be one.
    #[error(transparent)]
    Moderation(#[from] ModerationError),
}

/// What `/help` says about one command: its line in the list, and what
/// `/help NAME` adds.
#[derive(Debug, PartialEq, Eq)]
pub struct CommandHelp {
    /// The command's name, in lower case, without the slash: `join`.
    pub name: &'static str,
    /// How to write it: `/join ROOM`. Also what a usage error shows.
    pub usage: &'static str,
    /// What it does, in one line: the `/help` list shows this.
    pub summary: &'static str,
    /// What `/help NAME` shows after the usage and summary: more on what
    /// it does, an example, and the errors it can give, a line each.
    pub details: &'static [&'static str],
}

impl CommandHelp {
    /// The command called `name` (`join`, `/join` or `JOIN`), if there is
    /// one.
    pub fn find(name: &str) -> Option<&'static CommandHelp> {
        let name = name.strip_prefix('/').unwrap_or(name);
        COMMANDS.iter().find(|help| help.name.eq_ignore_ascii_case(name))
    }
}

/// Every command, in the order `/help` lists them.
pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "nick",
        usage: USAGE_NICK,
        summary: "change your nick (letters, digits, _ and -; starts with a letter)",
        details: &[
            "NAME is 1 to 24 letters, digits, _ or -, starting with a letter; Alice and alice are \
             the same nick. Your rooms see: -- guest7 is now known as alice",
            "example: /nick alice",
            "errors: !! nick alice is already in use; !! nick aIice looks too much like alice, who \
             is online; !! invalid nick: nick must start with a letter",
        ],
    },
    CommandHelp {
        name: "join",
        usage: USAGE_JOIN,
        summary: "leave your room and enter ROOM (created if needed)",
        details: &[
            "ROOM is 1 to 32 letters, digits, _ or -, with or without its #; #Rust and #rust are \
             the same room. Joining shows its topic and its last lines.",
            "Whoever opens a room (joins it empty) is its operator. KEY is for a room whose \
             operators set one.",
            "example: /join rust",
            "errors: !! you are already in #rust; !! invalid room: room name may only contain \
             letters, digits, '_' and '-'",
            "!! #rust needs a key: /join #rust KEY; !! you are banned from #rust",
        ],
    },
    CommandHelp {
        name: "rooms",
        usage: USAGE_ROOMS,
        summary: "list rooms and how many are in each, 100 a page",
        details: &[
            "The rooms with people in them, sorted, and how many are in each; #lobby always. \
             PAGE counts from 1; a page past the last shows the last.",
            "example: /rooms 2",
            "errors: !! usage: /rooms [PAGE] (PAGE is a number)",
        ],
    },
    CommandHelp {
        name: "who",
        usage: USAGE_WHO,
        summary: "list who is in your room, 100 a page",
        details: &[
            "The nicks in your room, sorted. PAGE counts from 1; a page past the last shows the \
             last.",
            "example: /who",
            "errors: !! usage: /who [PAGE] (PAGE is a number)",
        ],
    },
    CommandHelp {
        name: "msg",
        usage: USAGE_MSG,
        summary: "send a private message",
        details: &[
            "NICK alone sees it, wherever they are: *alice* TEXT, if you are alice; you see -> \
             *NICK* TEXT. Rooms never remember private messages.",
            "example: /msg bob see you in #rust",
            "errors: !! no such nick: bob; !! usage: /msg NICK TEXT",
        ],
    },
    CommandHelp {
        name: "me",
        usage: USAGE_ME,
        summary: "act something out in your room",
        details: &[
            "Your room sees * alice TEXT, if you are alice.",
            "example: /me waves",
            "errors: !! usage: /me TEXT",
        ],
    },
    CommandHelp {
        name: "topic",
        usage: "/topic [TEXT]",
        summary: "show your room's topic, or set it",
        details: &[
            "Without TEXT, shows the topic, who set it and when; with TEXT, sets it, and your \
             room sees it. Anyone in the room may; at most 300 characters.",
            "example: /topic release on Friday",
            "errors: !! topic too long (max 300 characters)",
        ],
    },
    CommandHelp {
        name: "history",
        usage: USAGE_HISTORY,
        summary: "show the last N lines said in your room",
        details: &[
            "Shows again up to N of the lines your room remembers, oldest first, with the time \
             each was said; without N, as many as joining shows.",
            "example: /history 50",
            "errors: !! usage: /history [N] (N is a number)",
        ],
    },
    CommandHelp {
        name: "op",
        usage: USAGE_OP,
        summary: "make NICK an operator of your room (operators only)",
        details: &[
            "Operators (shown @ in /who) may kick, ban, give and take roles and change the \
             room's settings. The room sees -- alice made bob an operator of #rust.",
            "#lobby has no operators: server operators keep it (chat-server ctl).",
            "example: /op bob",
            "errors: !! you are not an operator of #rust; !! bob is not in #rust",
        ],
    },
    CommandHelp {
        name: "deop",
        usage: USAGE_DEOP,
        summary: "take operator from NICK (operators only)",
        details: &[
            "example: /deop bob",
            "errors: !! you are not an operator of #rust",
        ],
    },
    CommandHelp {
        name: "voice",
        usage: USAGE_VOICE,
        summary: "let NICK speak in a moderated room (operators only)",
        details: &[
            "Voiced members are shown + in /who. In a moderated room only operators and voiced \
             members speak.",
            "example: /voice bob",
            "errors: !! you are not an operator of #rust; !! bob is not in #rust",
        ],
    },
    CommandHelp {
        name: "devoice",
        usage: USAGE_DEVOICE,
        summary: "take voice from NICK (operators only)",
        details: &[
            "example: /devoice bob",
            "errors: !! you are not an operator of #rust",
        ],
    },
    CommandHelp {
        name: "kick",
        usage: USAGE_KICK,
        summary: "put NICK out of your room (operators only)",
        details: &[
            "The room sees -- bob was kicked from #rust by alice (REASON); bob may join again \
             unless banned.",
            "example: /kick bob flooding",
            "errors: !! you are not an operator of #rust; !! bob is not in #rust",
        ],
    },
    CommandHelp {
        name: "ban",
        usage: USAGE_BAN,
        summary: "keep users matching MASK out of your room (operators only)",
        details: &[
            "MASK is a nick (troll, troll*), or NICK!USER@HOST with * and ?; HOST may be an \
             address block (10.0.0.0/24).",
            "A banned user cannot join, and one still in the room can say nothing. DURATION is \
             a number with s, m, h, d or w (10m, 2h); without it, until /unban.",
            "Bans outlive an empty room for as long as the room keeps its history.",
            "example: /ban troll 1h",
            "errors: !! you are not an operator of #rust; !! invalid mask ...; !! invalid \
             duration ...",
        ],
    },
    CommandHelp {
        name: "unban",
        usage: USAGE_UNBAN,
        summary: "lift a ban (operators only)",
        details: &["example: /unban troll", "errors: !! no ban troll!*@* in #rust"],
    },
    CommandHelp {
        name: "bans",
        usage: "/bans",
        summary: "list your room's bans",
        details: &[
            "One line each: the mask, who set it, when, and until when.",
            "example: /bans",
        ],
    },
    CommandHelp {
        name: "room",
        usage: USAGE_ROOM,
        summary: "show your room's settings, or change one (operators only)",
        details: &[
            "SETTING VALUE is moderated on|off, topic-lock on|off, key KEY|off or hidden on|off.",
            "moderated: only operators and voiced members speak; topic-lock: only operators set \
             the topic;",
            "key: joining needs it (/join ROOM KEY); hidden: left out of /rooms for those not in \
             it. The room sees each change.",
            "example: /room moderated on",
            "errors: !! you are not an operator of #rust",
        ],
    },
    CommandHelp {
        name: "away",
        usage: "/away [MESSAGE]",
        summary: "say you are away, or (without MESSAGE) that you are back",
        details: &[
            "Whoever sends you a private message is told -- alice is away: MESSAGE; IRC users \
             see it in WHOIS and WHO too. At most 300 characters are kept.",
            "example: /away back after lunch",
        ],
    },
    CommandHelp {
        name: "quit",
        usage: "/quit [REASON]",
        summary: "leave the server",
        details: &[
            "Your room sees -- alice left #lobby (quit: REASON); you get -- bye, and the server \
             closes the connection.",
            "example: /quit gone fishing",
        ],
    },
    CommandHelp {
        name: "help",
        usage: USAGE_HELP,
        summary: "list the commands, or explain one",
        details: &[
            "Without COMMAND, lists the commands; with one, with or without its /, explains it.",
            "example: /help msg",
            "errors: !! unknown command /dance; type /help for the list; !! usage: /help [COMMAND]",
        ],
    },
];

const USAGE_NICK: &str = "/nick NAME";
const USAGE_JOIN: &str = "/join ROOM [KEY]";
const USAGE_ROOMS: &str = "/rooms [PAGE]";
const USAGE_WHO: &str = "/who [PAGE]";
const USAGE_MSG: &str = "/msg NICK TEXT";
const USAGE_ME: &str = "/me TEXT";
const USAGE_HISTORY: &str = "/history [N]";
const USAGE_HELP: &str = "/help [COMMAND]";
const USAGE_OP: &str = "/op NICK";
const USAGE_DEOP: &str = "/deop NICK";
const USAGE_VOICE: &str = "/voice NICK";
const USAGE_DEVOICE: &str = "/devoice NICK";
const USAGE_KICK: &str = "/kick NICK [REASON]";
const USAGE_BAN: &str = "/ban MASK [DURATION]";
const USAGE_UNBAN: &str = "/unban MASK";
const USAGE_ROOM: &str = "/room [SETTING VALUE]";

/// `/room SETTING VALUE`.
fn room_setting(args: &str) -> Result<RoomSetting, CommandError> {
    let (name, value) = split_word(args);
    let value = one_arg(trim(value), USAGE_ROOM)?;
    let on = || match value.to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(CommandError::Usage(USAGE_ROOM)),
    };
    Ok(match name.to_ascii_lowercase().as_str() {
        "moderated" => RoomSetting::Moderated(on()?),
        "topic-lock" => RoomSetting::TopicLocked(on()?),
        "hidden" => RoomSetting::Hidden(on()?),
        "key" if value.eq_ignore_ascii_case("off") => RoomSetting::Key(None),
        "key" => {
            check_key(value)?;
            RoomSetting::Key(Some(value.to_string()))
        }
        _ => return Err(CommandError::Usage(USAGE_ROOM)),
    })
}

impl Command {
    /// Parses one line, without its line end.
    ///
    /// Returns `Ok(None)` for a line that shows nothing (empty, or only
    /// white space: see [`is_blank`]), which is ignored.
    ///
    /// # Errors
    /// A [`CommandError`] saying what is wrong with the command.
    pub fn parse(line: &str) -> Result<Option<Command>, CommandError> {
        if is_blank(line) {
            return Ok(None);
        }
        let Some(body) = line.strip_prefix('/') else {
            return Ok(Some(Command::Say(sanitize(line).into_owned())));
        };
        if body.starts_with('/') {
            return Ok(Some(Command::Say(sanitize(body).into_owned())));
        }
        let (name, args) = split_word(body);
        let args = trim(args);
        let command = match name.to_ascii_lowercase().as_str() {
            "nick" => Command::Nick(Nick::new(one_arg(args, USAGE_NICK)?).map_err(CommandError::BadNick)?),
            "join" => {
                let (room, key) = split_word(args);
                let (key, rest) = split_word(trim(key));
                if room.is_empty() || !trim(rest).is_empty() {
                    return Err(CommandError::Usage(USAGE_JOIN));
                }
                let room = RoomName::new(room).map_err(CommandError::BadRoom)?;
                let key = (!key.is_empty()).then(|| key.to_string());
                Command::Join { room, key }
            }
            "op" | "deop" | "voice" | "devoice" => {
                let (role, on, usage) = match name.to_ascii_lowercase().as_str() {
                    "op" => (Role::Op, true, USAGE_OP),
                    "deop" => (Role::Op, false, USAGE_DEOP),
                    "voice" => (Role::Voice, true, USAGE_VOICE),
                    _ => (Role::Voice, false, USAGE_DEVOICE),
                };
                let who = one_arg(args, usage)?;
                let nick =
                    Nick::new(who).map_err(|_| CommandError::NoSuchNick(sanitize(who).into_owned()))?;
                Command::Role { nick, role, on }
            }
            "kick" => {
                let (who, reason) = split_word(args);
                if who.is_empty() {
                    return Err(CommandError::Usage(USAGE_KICK));
                }
                let nick =
                    Nick::new(who).map_err(|_| CommandError::NoSuchNick(sanitize(who).into_owned()))?;
                let reason = (!is_blank(reason)).then(|| sanitize(trim(reason)).into_owned());
                Command::Kick { nick, reason }
            }
            "ban" => {
                let (mask, rest) = split_word(args);
                let (duration, extra) = split_word(trim(rest));
                if mask.is_empty() || !trim(extra).is_empty() {
                    return Err(CommandError::Usage(USAGE_BAN));
                }
                let mask = Mask::parse(mask)?;
                let duration = if duration.is_empty() {
                    None
                } else {
                    Some(parse_duration(duration)?)
                };
                Command::Ban { mask, duration }
            }
            "unban" => Command::Unban(Mask::parse(one_arg(args, USAGE_UNBAN)?)?),
            "bans" if args.is_empty() => Command::Bans,
            "bans" => return Err(CommandError::Usage("/bans")),
            "room" if args.is_empty() => Command::Room(None),
            "room" => Command::Room(Some(room_setting(args)?)),
            "rooms" => Command::Rooms {
                page: page_arg(args, USAGE_ROOMS)?,
            },
            "who" => Command::Who {
                page: page_arg(args, USAGE_WHO)?,
            },
            "msg" => {
                let (to, text) = split_word(args);
                if to.is_empty() || is_blank(text) {
                    return Err(CommandError::Usage(USAGE_MSG));
                }
                let to = Nick::new(to).map_err(|_| CommandError::NoSuchNick(sanitize(to).into_owned()))?;
                Command::Msg {
                    to,
                    text: sanitize(text.trim_start_matches([' ', '\t'])).into_owned(),
                }
            }
            "me" => {
                if is_blank(args) {
                    return Err(CommandError::Usage(USAGE_ME));
                }
                Command::Me(sanitize(args).into_owned())
            }
            "topic" => {
                let topic = (!is_blank(args)).then(|| sanitize(args).into_owned());
                if topic.as_ref().is_some_and(|t| t.chars().count() > MAX_TOPIC_LEN) {
                    return Err(CommandError::TopicTooLong);
                }
                Command::Topic(topic)
            }
            "history" => Command::History(if args.is_empty() {
                None
            } else {
                Some(page_arg(args, USAGE_HISTORY)?)
            }),
            "away" => {
                Command::Away((!is_blank(args)).then(|| sanitize(args).chars().take(MAX_AWAY_LEN).collect()))
            }
            "quit" => Command::Quit((!is_blank(args)).then(|| sanitize(args).into_owned())),
            "help" if args.is_empty() => Command::Help(None),
            "help" => {
                let name = one_arg(args, USAGE_HELP)?;
                match CommandHelp::find(name) {
                    Some(help) => Command::Help(Some(help)),
                    None => {
                        let name = name.strip_prefix('/').unwrap_or(name);
                        return Err(CommandError::Unknown(sanitize(name).into_owned()));
                    }
                }
            }
            _ => return Err(CommandError::Unknown(sanitize(name).into_owned())),
        };
        Ok(Some(command))
    }
}

/// `s` without leading and trailing spaces and tabs, the separators of
/// commands and their arguments. (Whether text shows anything at all is
/// [`is_blank`]'s to say.)
fn trim(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Splits off the first word: the text up to the first space or tab, and
/// the rest after it (which may start with more spaces).
fn split_word(s: &str) -> (&str, &str) {
    match s.find([' ', '\t']) {
        Some(at) => s.split_at(at),
        None => (s, ""),
    }
}

/// The single word in `args`, or a usage error when there are none or more.
fn one_arg<'a>(args: &'a str, usage: &'static str) -> Result<&'a str, CommandError> {
    let (word, rest) = split_word(args);
    if word.is_empty() || !trim(rest).is_empty() {
        return Err(CommandError::Usage(usage));
    }
    Ok(word)
}

/// The page number in `args`: none means the first page; a number past
/// the last page means the last (the hub clamps it), however large.
fn page_arg(args: &str, usage: &'static str) -> Result<usize, CommandError> {
    if args.is_empty() {
        return Ok(1);
    }
    let word = one_arg(args, usage)?;
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::Usage(usage));
    }
    Ok(word.parse().unwrap_or(usize::MAX).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Command {
        Command::parse(line).unwrap().unwrap()
    }

    fn nick(s: &str) -> Nick {
        Nick::new(s).unwrap()
    }

    #[test]
    fn plain_text_is_a_message_and_double_slash_escapes() {
        assert_eq!(parse("hello there"), Command::Say("hello there".into()));
        assert_eq!(parse("  indented"), Command::Say("  indented".into()));
        assert_eq!(parse("//slash"), Command::Say("/slash".into()));
        assert_eq!(parse("// "), Command::Say("/ ".into()));
    }

    #[test]
    fn empty_and_blank_lines_are_ignored() {
        assert_eq!(Command::parse(""), Ok(None));
        assert_eq!(Command::parse(" \t "), Ok(None));
    }

    #[test]
    fn white_space_controls_are_text_but_other_white_space_is_blank() {
        // VT, FF, NEL are controls (and white space to Unicode): replaced
        // with a visible U+FFFD and delivered.
        assert_eq!(parse("\u{b}"), Command::Say("\u{FFFD}".into()));
        assert_eq!(parse("/me \u{c}"), Command::Me("\u{FFFD}".into()));
        assert_eq!(parse("\u{85}\u{2028}"), Command::Say("\u{FFFD}\u{FFFD}".into()));
        // NBSP, the ideographic space, the braille blank and the like show
        // nothing: a line of them would be an empty-looking line, so it is
        // ignored like a blank one (it once was delivered as it came).
        for blank in ["\u{a0}", " \u{3000}\t", "\u{2800}\u{2003}"] {
            assert_eq!(Command::parse(blank), Ok(None), "{blank:?}");
        }
        assert_eq!(Command::parse("/me \u{a0}"), Err(CommandError::Usage("/me TEXT")));
        assert_eq!(
            Command::parse("/msg bob \u{3000}"),
            Err(CommandError::Usage("/msg NICK TEXT"))
        );
        assert_eq!(parse("/quit \u{a0}"), Command::Quit(None));
        // Inside text they are kept.
        assert_eq!(parse("a\u{a0}b"), Command::Say("a\u{a0}b".into()));
    }

    #[test]
    fn invisible_lines_are_replaced_not_ignored() {
        // Zero-width and filler characters are replaced, so a line of them
        // is seen for what it is.
        assert_eq!(
            parse("\u{200B}\u{FEFF}\u{3164}"),
            Command::Say("\u{FFFD}\u{FFFD}\u{FFFD}".into())
        );
    }

    #[test]
    fn every_command_parses() {
        assert_eq!(parse("/nick alice"), Command::Nick(nick("alice")));
        assert_eq!(parse("/NICK  alice "), Command::Nick(nick("alice")));
        let rust = RoomName::new("#rust").unwrap();
        assert_eq!(
            parse("/join rust"),
            Command::Join {
                room: rust.clone(),
                key: None
            }
        );
        assert_eq!(
            parse("/join #rust s3cret"),
            Command::Join {
                room: rust,
                key: Some("s3cret".into())
            }
        );
        assert_eq!(
            parse("/op bob"),
            Command::Role {
                nick: nick("bob"),
                role: Role::Op,
                on: true
            }
        );
        assert_eq!(
            parse("/devoice bob"),
            Command::Role {
                nick: nick("bob"),
                role: Role::Voice,
                on: false
            }
        );
        assert_eq!(
            parse("/kick bob  go away"),
            Command::Kick {
                nick: nick("bob"),
                reason: Some("go away".into())
            }
        );
        assert_eq!(
            parse("/ban troll 1h"),
            Command::Ban {
                mask: Mask::parse("troll").unwrap(),
                duration: Some(Duration::from_secs(3600))
            }
        );
        assert_eq!(
            parse("/unban troll"),
            Command::Unban(Mask::parse("troll").unwrap())
        );
        assert_eq!(parse("/bans"), Command::Bans);
        assert_eq!(parse("/room"), Command::Room(None));
        assert_eq!(
            parse("/room moderated on"),
            Command::Room(Some(RoomSetting::Moderated(true)))
        );
        assert_eq!(
            parse("/room key off"),
            Command::Room(Some(RoomSetting::Key(None)))
        );
        assert!(matches!(
            Command::parse("/ban a b c"),
            Err(CommandError::Usage(_))
        ));
        assert!(matches!(
            Command::parse("/ban troll 10y"),
            Err(CommandError::Moderation(_))
        ));
        assert!(matches!(
            Command::parse("/room loud on"),
            Err(CommandError::Usage(_))
        ));
        assert_eq!(parse("/rooms"), Command::Rooms { page: 1 });
        assert_eq!(parse("/rooms 3"), Command::Rooms { page: 3 });
        assert_eq!(parse("/who"), Command::Who { page: 1 });
        assert_eq!(parse("/who 2"), Command::Who { page: 2 });
        assert_eq!(parse("/who 0"), Command::Who { page: 1 });
        assert_eq!(
            parse("/who 99999999999999999999999"),
            Command::Who { page: usize::MAX }
        );
        assert_eq!(
            parse("/msg bob  psst, over here"),
            Command::Msg {
                to: nick("bob"),
                text: "psst, over here".into()
            }
        );
        assert_eq!(parse("/me waves"), Command::Me("waves".into()));
        assert_eq!(parse("/quit"), Command::Quit(None));
        assert_eq!(
            parse("/quit gone fishing"),
            Command::Quit(Some("gone fishing".into()))
        );
        assert_eq!(parse("/help"), Command::Help(None));
        assert_eq!(parse("/Help"), Command::Help(None));
        assert_eq!(parse("/topic"), Command::Topic(None));
        assert_eq!(
            parse("/topic  release on Friday "),
            Command::Topic(Some("release on Friday".into()))
        );
        assert_eq!(parse("/history"), Command::History(None));
        assert_eq!(parse("/history 5"), Command::History(Some(5)));
        assert_eq!(
            Command::parse("/history all"),
            Err(CommandError::Usage("/history [N]"))
        );
        assert_eq!(
            Command::parse(&format!("/topic {}", "t".repeat(301))),
            Err(CommandError::TopicTooLong)
        );
    }

    #[test]
    fn bad_commands_get_errors_that_say_why() {
        assert_eq!(
            Command::parse("/dance"),
            Err(CommandError::Unknown("dance".into()))
        );
        assert_eq!(Command::parse("/"), Err(CommandError::Unknown("".into())));
        assert_eq!(Command::parse("/nick"), Err(CommandError::Usage("/nick NAME")));
        assert_eq!(
            Command::parse("/nick a b"),
            Err(CommandError::Usage("/nick NAME"))
        );
        assert_eq!(
            Command::parse("/nick 9lives"),
            Err(CommandError::BadNick(NameError::BadStart { kind: "nick" }))
        );
        assert_eq!(
            Command::parse("/join"),
            Err(CommandError::Usage("/join ROOM [KEY]"))
        );
        assert_eq!(
            Command::parse("/join bad!room"),
            Err(CommandError::BadRoom(NameError::BadChar { kind: "room name" }))
        );
        assert_eq!(Command::parse("/who me"), Err(CommandError::Usage("/who [PAGE]")));
        assert_eq!(
            Command::parse("/who 1 2"),
            Err(CommandError::Usage("/who [PAGE]"))
        );
        assert_eq!(Command::parse("/who -1"), Err(CommandError::Usage("/who [PAGE]")));
        assert_eq!(
            Command::parse("/rooms x"),
            Err(CommandError::Usage("/rooms [PAGE]"))
        );
        assert_eq!(
            Command::parse("/msg bob"),
            Err(CommandError::Usage("/msg NICK TEXT"))
        );
        assert_eq!(
            Command::parse("/msg bob   "),
            Err(CommandError::Usage("/msg NICK TEXT"))
        );
        assert_eq!(
            Command::parse("/msg 9x hi"),
            Err(CommandError::NoSuchNick("9x".into()))
        );
        assert_eq!(Command::parse("/me"), Err(CommandError::Usage("/me TEXT")));
        assert_eq!(
            Command::parse("/help join me"),
            Err(CommandError::Usage("/help [COMMAND]"))
        );
    }

    #[test]
    fn help_with_a_command_names_that_command() {
        let join = CommandHelp::find("join").unwrap();
        assert_eq!(join.usage, "/join ROOM [KEY]");
        for line in ["/help join", "/help /join", "/HELP Join", "/help  join "] {
            assert_eq!(parse(line), Command::Help(Some(join)), "{line:?}");
        }
        // "/help me" is help on /me (it was "usage: /help"); what is no
        // command gets the same error as typing it, which says where the
        // list is.
        assert_eq!(parse("/help me"), Command::Help(CommandHelp::find("me")));
        for (line, name) in [
            ("/help nosuch", "nosuch"),
            ("/help /dance", "dance"),
            ("/help /", ""),
        ] {
            assert_eq!(
                Command::parse(line),
                Err(CommandError::Unknown(name.into())),
                "{line:?}"
            );
        }
    }

    #[test]
    fn away_takes_a_message_or_none_and_keeps_at_most_300_characters() {
        assert_eq!(parse("/away"), Command::Away(None));
        assert_eq!(parse("/away  lunch "), Command::Away(Some("lunch".into())));
        let long = "x".repeat(400);
        assert_eq!(
            parse(&format!("/away {long}")),
            Command::Away(Some("x".repeat(300)))
        );
    }

    #[test]
    fn every_command_has_help_and_its_usage_starts_with_its_name() {
        for name in [
            "nick", "join", "rooms", "who", "msg", "me", "topic", "history", "op", "deop", "voice",
            "devoice", "kick", "ban", "unban", "bans", "room", "away", "quit", "help",
        ] {
            let help = CommandHelp::find(name).unwrap_or_else(|| panic!("no help for /{name}"));
            assert!(help.usage.starts_with(&format!("/{name}")), "{help:?}");
            assert!(
                help.details.iter().any(|l| l.starts_with("example: /")),
                "{help:?}"
            );
            // Each command's example is a line that parses.
            let example = help
                .details
                .iter()
                .find_map(|l| l.strip_prefix("example: "))
                .unwrap();
            assert!(matches!(Command::parse(example), Ok(Some(_))), "{example:?}");
        }
        assert_eq!(COMMANDS.len(), 20, "a help entry per command, no more");
        // A command without arguments still parses as itself (not as an
        // unknown command), and one that needs them says so.
        for help in COMMANDS {
            let bare = format!("/{}", help.name);
            assert!(
                !matches!(Command::parse(&bare), Err(CommandError::Unknown(_))),
                "{bare} is not a command"
            );
        }
    }

    #[test]
    fn error_messages_read_well() {
        assert_eq!(
            CommandError::Unknown("dance".into()).to_string(),
            "unknown command /dance; type /help for the list"
        );
        assert_eq!(
            CommandError::BadNick(NameError::BadStart { kind: "nick" }).to_string(),
            "invalid nick: nick must start with a letter"
        );
    }

    #[test]
    fn chat_text_comes_out_sanitized() {
        assert_eq!(parse("hi\u{1b}[2J"), Command::Say("hi\u{FFFD}[2J".into()));
        assert_eq!(parse("/me \u{7}beeps"), Command::Me("\u{FFFD}beeps".into()));
        assert_eq!(
            parse("/msg bob \u{0}x"),
            Command::Msg {
                to: nick("bob"),
                text: "\u{FFFD}x".into()
            }
        );
        assert_eq!(
            Command::parse("/\u{1b}x"),
            Err(CommandError::Unknown("\u{FFFD}x".into()))
        );
    }
}
