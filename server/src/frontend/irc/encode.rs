//! The hub's events as IRC messages.
//!
//! Events fanned out to a room ([`shared`]) are written without anything
//! of the recipient's: `:alice!alice@chat-server PRIVMSG #rust :hi` reads
//! the same for every member, so the event loop writes it once per
//! encoding and queues the same bytes to each of them. The only thing
//! that varies is whether the message carries its time (`server-time`),
//! so that is two encodings, not one per client. Everything addressed to
//! one connection ([`own`]) is written with its session: numerics name
//! the recipient's nick, and some events change the session (its nick,
//! its registration).
//!
//! Every user's source is `nick!nick@chat-server`: the same for everyone
//! who sees them, and no one's address is shown to anyone.

use std::fmt::Write as _;

use chat_protocol::history::format_time_millis;
use chat_protocol::irc::format::CTCP;
use chat_protocol::irc::write::{message, pieces, MAX_LINE};
use chat_protocol::irc::IrcReply;
use chat_protocol::{
    ErrorKind, HistoryEntry, LeaveReason, Member, Nick, Role, RoomName, RoomSetting, ServerEvent, Style,
};

use crate::frontend::irc::session::{Cap, Session, State, AWAYLEN, MAX_CHANNEL_TARGETS, MAX_MESSAGE_TARGETS};
use crate::frontend::Context;

/// The host part of every user's source: addresses are nobody's business.
pub const HOST: &str = "chat-server";

/// What WHOIS says of a user on another instance of the cluster, in its
/// 311 (as the real name) and 312 (as the server's description): the
/// user's details are not known here.
const ELSEWHERE: &str = "on another server of this cluster";

/// A user's source, `nick!nick@chat-server`.
fn source(nick: &Nick) -> String {
    format!("{nick}!{nick}@{HOST}")
}

/// `@time=...` for a message said at `at` (ms since the epoch).
fn time_tag(at: u64) -> String {
    format!("time={}", format_time_millis(at))
}

/// Writes `event`, which is the same for every recipient, with its time
/// if `time` (the recipients asked for `server-time`).
pub fn shared(event: &ServerEvent, ctx: &Context, time: bool, out: &mut Vec<u8>) {
    let tag = time.then(|| time_tag((ctx.clock)()));
    let tags = tag.as_deref();
    match event {
        ServerEvent::Said { room, from, text } => say(out, tags, from, room.as_str(), text, Style::Message),
        ServerEvent::Action { room, from, text } => say(out, tags, from, room.as_str(), text, Style::Action),
        ServerEvent::Noticed { room, from, text } => say(out, tags, from, room.as_str(), text, Style::Notice),
        ServerEvent::Joined { nick, room } => {
            message(out, tags, Some(&source(nick)), "JOIN", &[room.as_str()], None)
        }
        ServerEvent::Left { nick, room, reason } => {
            let from = source(nick);
            match reason {
                LeaveReason::Moved(to) => {
                    let why = format!("moved to {to}");
                    message(out, tags, Some(&from), "PART", &[room.as_str()], Some(&why));
                }
                LeaveReason::Parted(why) => {
                    message(out, tags, Some(&from), "PART", &[room.as_str()], why.as_deref());
                }
                other => message(out, tags, Some(&from), "QUIT", &[], Some(&quit_message(other))),
            }
        }
        ServerEvent::NickChanged { old, new } => {
            message(out, tags, Some(&source(old)), "NICK", &[], Some(new.as_str()));
        }
        ServerEvent::TopicChanged { room, topic } => {
            message(
                out,
                tags,
                Some(&source(&topic.by)),
                "TOPIC",
                &[room.as_str()],
                Some(&topic.text),
            );
        }
        ServerEvent::Announcement { text } => {
            let text = format!("[server] {text}");
            message(out, tags, Some(&ctx.server_name), "NOTICE", &["*"], Some(&text));
        }
        ServerEvent::ClusterLink { up } => {
            let text = if *up {
                "cluster link restored"
            } else {
                "cluster link lost; only users on this server can hear you"
            };
            message(out, tags, Some(&ctx.server_name), "NOTICE", &["*"], Some(text));
        }
        ServerEvent::ShuttingDown => message(
            out,
            None,
            None,
            "ERROR",
            &[],
            Some("Closing link: server shutting down"),
        ),
        ServerEvent::Restarted { version } => {
            let text = format!("[server] restarted (version {version}); you are still connected");
            message(out, tags, Some(&ctx.server_name), "NOTICE", &["*"], Some(&text));
        }
        ServerEvent::RoleChanged {
            room,
            nick,
            by,
            role,
            on,
        } => {
            let change = match (on, role) {
                (true, Role::Op) => "+o",
                (false, Role::Op) => "-o",
                (true, Role::Voice) => "+v",
                (false, Role::Voice) => "-v",
            };
            let params = [room.as_str(), change, nick.as_str()];
            message(out, tags, Some(&source(by)), "MODE", &params, None);
        }
        ServerEvent::Kicked {
            room,
            nick,
            by,
            reason,
        } => {
            let reason = reason.as_deref().unwrap_or(by.as_str());
            let params = [room.as_str(), nick.as_str()];
            message(out, tags, Some(&source(by)), "KICK", &params, Some(reason));
        }
        ServerEvent::BanChanged {
            room, mask, by, on, ..
        } => {
            let change = if *on { "+b" } else { "-b" };
            let params = [room.as_str(), change, mask.as_str()];
            message(out, tags, Some(&source(by)), "MODE", &params, None);
        }
        ServerEvent::SettingChanged { room, by, setting } => {
            let (change, arg) = match setting {
                RoomSetting::Moderated(on) => (if *on { "+m" } else { "-m" }, None),
                RoomSetting::TopicLocked(on) => (if *on { "+t" } else { "-t" }, None),
                RoomSetting::Hidden(on) => (if *on { "+s" } else { "-s" }, None),
                RoomSetting::Key(Some(key)) => ("+k", Some(key.as_str())),
                RoomSetting::Key(None) => ("-k", Some("*")),
            };
            let mut params = vec![room.as_str(), change];
            params.extend(arg);
            message(out, tags, Some(&source(by)), "MODE", &params, None);
        }
        // Everything else is for one connection, and written by `own`
        // (which sends none of these back here); a shared copy of one
        // says it as to a client not yet registered.
        other => own(&mut Session::new(), other, ctx, out),
    }
}

/// What a user sees QUIT say for a reason.
fn quit_message(reason: &LeaveReason) -> String {
    match reason {
        LeaveReason::Quit(None) => "Quit".to_string(),
        LeaveReason::Quit(Some(why)) => format!("Quit: {why}"),
        LeaveReason::Disconnected => "Connection closed".to_string(),
        LeaveReason::SlowConsumer => "Slow consumer (send queue full)".to_string(),
        LeaveReason::Idle => "Idle timeout".to_string(),
        LeaveReason::MadeRoom => "Server full".to_string(),
        LeaveReason::PingTimeout => "Ping timeout".to_string(),
        LeaveReason::Removed(None) => "Removed by a server operator".to_string(),
        LeaveReason::Removed(Some(why)) => format!("Removed by a server operator: {why}"),
        LeaveReason::Moved(to) => format!("moved to {to}"),
        LeaveReason::Parted(why) => why.clone().unwrap_or_default(),
    }
}

/// PRIVMSG (or an ACTION, or NOTICE) from `from` to `target`, cut into as
/// many messages as it takes, each no longer than an IRC client could
/// have sent itself: a line protocol user may say 4 KiB at once, and it
/// all arrives, in order.
fn say(out: &mut Vec<u8>, tags: Option<&str>, from: &Nick, target: &str, text: &str, style: Style) {
    let command = if style == Style::Notice {
        "NOTICE"
    } else {
        "PRIVMSG"
    };
    // What a client's `PRIVMSG <target> <text>\r\n` leaves for text (a
    // text without spaces needs no colon).
    let room_for_text = MAX_LINE - 2 - command.len() - 1 - target.len() - 1;
    let from = source(from);
    if style == Style::Action {
        for piece in pieces(text, room_for_text.saturating_sub("\u{1}ACTION \u{1}".len())) {
            let action = format!("{CTCP}ACTION {piece}{CTCP}");
            message(out, tags, Some(&from), command, &[target], Some(&action));
        }
    } else {
        for piece in pieces(text, room_for_text) {
            message(out, tags, Some(&from), command, &[target], Some(piece));
        }
    }
}

/// Writes `event` for the one connection whose session this is.
pub fn own(session: &mut Session, event: &ServerEvent, ctx: &Context, out: &mut Vec<u8>) {
    let server = &*ctx.server_name;
    let me = session.nick.as_ref().map_or("*", Nick::as_str).to_string();
    let numeric = |out: &mut Vec<u8>, code: &str, params: &[&str], text: Option<&str>| {
        let mut middle = Vec::with_capacity(params.len() + 1);
        middle.push(me.as_str());
        middle.extend_from_slice(params);
        message(out, None, Some(server), code, &middle, text);
    };
    match event {
        ServerEvent::Registered { nick } => {
            session.registered(nick.clone());
            welcome(out, nick, ctx);
        }
        ServerEvent::PrivateFrom { from, text, style } => {
            say(out, None, from, &me, text, *style);
        }
        ServerEvent::PrivateTo { to, text, style } => {
            if session.has(Cap::EchoMessage) {
                if let Some(nick) = &session.nick {
                    say(out, None, nick, to.as_str(), text, *style);
                }
            }
        }
        ServerEvent::NickSet { nick } => {
            let old = session.nick.replace(nick.clone());
            let from = old.as_ref().map_or_else(|| source(nick), source);
            message(out, None, Some(&from), "NICK", &[], Some(nick.as_str()));
        }
        ServerEvent::JoinedRoom { room } => {
            if let Some(nick) = &session.nick {
                message(out, None, Some(&source(nick)), "JOIN", &[room.as_str()], None);
            }
        }
        ServerEvent::LeftRoom { room, reason } => {
            if let Some(nick) = &session.nick {
                message(
                    out,
                    None,
                    Some(&source(nick)),
                    "PART",
                    &[room.as_str()],
                    reason.as_deref(),
                );
            }
        }
        ServerEvent::Topic { room, topic: None } => {
            numeric(out, "331", &[room.as_str()], Some("No topic is set"));
        }
        ServerEvent::Topic {
            room,
            topic: Some(topic),
        } => {
            numeric(out, "332", &[room.as_str()], Some(&topic.text));
            let at = (topic.at / 1000).to_string();
            numeric(out, "333", &[room.as_str(), topic.by.as_str(), &at], None);
        }
        ServerEvent::History { room, entries } => {
            for entry in entries {
                replay(out, room, entry, session.has(Cap::ServerTime));
            }
        }
        ServerEvent::Names { room, members, end } => {
            names(out, session, &me, room, members, ctx);
            if let Some(end) = end {
                numeric(out, "366", &[end], Some("End of /NAMES list"));
            }
        }
        ServerEvent::Whois { asked, info: None } => {
            numeric(out, "401", &[asked.as_str()], Some("No such nick/channel"));
            numeric(out, "318", &[asked.as_str()], Some("End of /WHOIS list"));
        }
        ServerEvent::Whois {
            asked,
            info: Some(info),
        } if info.elsewhere => {
            // On another instance of the cluster: what is known here is
            // the nick and, from presence, the rooms.
            let nick = info.nick.as_str();
            numeric(out, "311", &[nick, "*", HOST, "*"], Some(ELSEWHERE));
            if !info.rooms.is_empty() {
                let rooms: Vec<&str> = info.rooms.iter().map(RoomName::as_str).collect();
                numeric(out, "319", &[nick], Some(&rooms.join(" ")));
            }
            numeric(out, "312", &[nick, "*"], Some(ELSEWHERE));
            numeric(out, "318", &[asked.as_str()], Some("End of /WHOIS list"));
        }
        ServerEvent::Whois {
            asked,
            info: Some(info),
        } => {
            let nick = info.nick.as_str();
            numeric(out, "311", &[nick, &info.user, HOST, "*"], Some(&info.realname));
            if !info.rooms.is_empty() {
                let rooms: Vec<&str> = info.rooms.iter().map(RoomName::as_str).collect();
                numeric(out, "319", &[nick], Some(&rooms.join(" ")));
            }
            numeric(out, "312", &[nick, server], Some("chat-server"));
            if let Some(away) = &info.away {
                numeric(out, "301", &[nick], Some(away));
            }
            let (idle, signon) = (info.idle_secs.to_string(), info.signon.to_string());
            numeric(
                out,
                "317",
                &[nick, &idle, &signon],
                Some("seconds idle, signon time"),
            );
            numeric(out, "318", &[asked.as_str()], Some("End of /WHOIS list"));
        }
        ServerEvent::WhoList { mask, entries, .. } => {
            for entry in entries {
                let room = entry.room.as_ref().map_or("*", RoomName::as_str);
                let mut flags = String::from(if entry.away { "G" } else { "H" });
                if entry.room.is_some() {
                    let member = Member {
                        nick: entry.nick.clone(),
                        op: entry.op,
                        voice: entry.voice,
                    };
                    flags.push_str(if session.has(Cap::MultiPrefix) {
                        member.prefixes()
                    } else {
                        member.prefix()
                    });
                }
                // On another instance of the cluster: as WHOIS says it,
                // `*` for the user and server names.
                let (user, at, realname) = if entry.elsewhere {
                    ("*", "*", ELSEWHERE)
                } else {
                    (entry.user.as_str(), server, entry.realname.as_str())
                };
                let realname = format!("0 {realname}");
                numeric(
                    out,
                    "352",
                    &[room, user, HOST, at, entry.nick.as_str(), &flags],
                    Some(&realname),
                );
            }
            numeric(out, "315", &[mask], Some("End of /WHO list"));
        }
        ServerEvent::List { rooms } => {
            numeric(out, "321", &["Channel"], Some("Users  Name"));
            for room in rooms {
                let count = room.members.to_string();
                numeric(
                    out,
                    "322",
                    &[room.name.as_str(), &count],
                    Some(room.topic.as_deref().unwrap_or("")),
                );
            }
            numeric(out, "323", &[], Some("End of /LIST"));
        }
        ServerEvent::Invisible { on } => {
            session.invisible = *on;
            if let Some(nick) = &session.nick {
                let change = if *on { "+i" } else { "-i" };
                message(
                    out,
                    None,
                    Some(&source(nick)),
                    "MODE",
                    &[nick.as_str()],
                    Some(change),
                );
            }
        }
        ServerEvent::AwaySet { away: true } => {
            numeric(out, "306", &[], Some("You have been marked as being away"));
        }
        ServerEvent::AwaySet { away: false } => {
            numeric(out, "305", &[], Some("You are no longer marked as being away"));
        }
        ServerEvent::IsAway { nick, message: away } => numeric(out, "301", &[nick.as_str()], Some(away)),
        ServerEvent::Irc(reply) => irc_reply(out, &me, reply, ctx),
        ServerEvent::Settings { room, settings } => {
            let mut modes = String::from("+n");
            for (on, c) in [
                (settings.moderated, 'm'),
                (settings.topic_locked, 't'),
                (settings.key.is_some(), 'k'),
                (settings.hidden, 's'),
            ] {
                if on {
                    modes.push(c);
                }
            }
            let mut params = vec![room.as_str(), modes.as_str()];
            if let Some(key) = &settings.key {
                params.push(key);
            }
            numeric(out, "324", &params, None);
        }
        ServerEvent::BanList { room, bans } => {
            for ban in bans {
                let at = (ban.at / 1000).to_string();
                numeric(
                    out,
                    "367",
                    &[room.as_str(), ban.mask.as_str(), &ban.by, &at],
                    None,
                );
            }
            numeric(out, "368", &[room.as_str()], Some("End of channel ban list"));
        }
        ServerEvent::Removed { reason } => {
            let why = reason.as_ref().map_or_else(String::new, |r| format!(": {r}"));
            let text = format!("Closing link: {me} (Removed by a server operator{why})");
            message(out, None, None, "ERROR", &[], Some(&text));
        }
        ServerEvent::Bye => {
            let text = format!("Closing link: {me} (Quit)");
            message(out, None, None, "ERROR", &[], Some(&text));
        }
        ServerEvent::IdleTimeout { secs } => {
            let text = format!("Closing link: {me} (idle for {secs} s)");
            message(out, None, None, "ERROR", &[], Some(&text));
        }
        ServerEvent::MakingRoom => {
            let text = format!("Closing link: {me} (server full, and you have not said anything)");
            message(out, None, None, "ERROR", &[], Some(&text));
        }
        ServerEvent::PingTimeout { secs } => {
            let text = format!("Closing link: {me} (Ping timeout: {secs} seconds)");
            message(out, None, None, "ERROR", &[], Some(&text));
        }
        ServerEvent::RegistrationTimeout { secs } => {
            let text = format!("Closing link: {me} (Registration timed out: {secs} seconds)");
            message(out, None, None, "ERROR", &[], Some(&text));
        }
        ServerEvent::Error(error) => error_reply(out, session, &numeric, error),
        // The line protocol's own: an IRC client is never sent these.
        ServerEvent::Welcome { .. }
        | ServerEvent::Who { .. }
        | ServerEvent::Rooms { .. }
        | ServerEvent::Help(_) => {}
        ServerEvent::Said { .. }
        | ServerEvent::Announcement { .. }
        | ServerEvent::ClusterLink { .. }
        | ServerEvent::RoleChanged { .. }
        | ServerEvent::Kicked { .. }
        | ServerEvent::BanChanged { .. }
        | ServerEvent::SettingChanged { .. }
        | ServerEvent::Action { .. }
        | ServerEvent::Noticed { .. }
        | ServerEvent::Joined { .. }
        | ServerEvent::Left { .. }
        | ServerEvent::NickChanged { .. }
        | ServerEvent::TopicChanged { .. }
        | ServerEvent::ShuttingDown
        | ServerEvent::Restarted { .. } => shared(event, ctx, session.has(Cap::ServerTime), out),
    }
}

/// 001 to 005, then the message of the day.
fn welcome(out: &mut Vec<u8>, nick: &Nick, ctx: &Context) {
    let server = &*ctx.server_name;
    let me = nick.as_str();
    let numeric = |out: &mut Vec<u8>, code: &str, params: &[&str], text: &str| {
        let mut middle = vec![me];
        middle.extend_from_slice(params);
        message(out, None, Some(server), code, &middle, Some(text));
    };
    let version = format!("chat-server-{}", env!("CARGO_PKG_VERSION"));
    numeric(
        out,
        "001",
        &[],
        &format!("Welcome to the {} chat, {}", ctx.network, source(nick)),
    );
    numeric(
        out,
        "002",
        &[],
        &format!("Your host is {server}, running version {version}"),
    );
    numeric(
        out,
        "003",
        &[],
        &format!("This server was created {}", ctx.created),
    );
    // 004: user modes (`i`, left out of others' WHO by mask; `o`, which no
    // one has), channel modes (`b` bans, `k` key, `m` moderated, `n` no
    // message from outside, always on, `o` operator, `s` hidden, `t`
    // topic locked, `v` voice), and those that take a parameter.
    message(
        out,
        None,
        Some(server),
        "004",
        &[me, server, &version, "io", "bkmnostv", "bkov"],
        None,
    );
    let network = format!("NETWORK={}", ctx.network);
    let targmax = format!(
        "TARGMAX=JOIN:{MAX_CHANNEL_TARGETS},NAMES:{MAX_CHANNEL_TARGETS},NOTICE:{MAX_MESSAGE_TARGETS},\
         PART:{MAX_CHANNEL_TARGETS},PRIVMSG:{MAX_MESSAGE_TARGETS},WHOIS:1"
    );
    let awaylen = format!("AWAYLEN={AWAYLEN}");
    let nicklen = format!("NICKLEN={}", chat_protocol::names::MAX_NICK_LEN);
    let channellen = format!("CHANNELLEN={}", chat_protocol::names::MAX_ROOM_LEN + 1);
    let topiclen = format!("TOPICLEN={}", chat_protocol::command::MAX_TOPIC_LEN);
    let chanlimit = format!("CHANLIMIT=#:{}", crate::chat::hub::MAX_ROOMS_PER_USER);
    let maxlist = format!("MAXLIST=b:{}", crate::chat::room::MAX_BANS);
    let modes = format!("MODES={}", crate::frontend::irc::session::MAX_MODES);
    let keylen = format!("KEYLEN={}", chat_protocol::moderation::MAX_KEY_LEN);
    let lines: [&[&str]; 2] = [
        &[
            me,
            &awaylen,
            "CASEMAPPING=ascii",
            &chanlimit,
            "CHANMODES=b,k,,mnst",
            &channellen,
            "CHANTYPES=#",
            &network,
            &nicklen,
            "PREFIX=(ov)@+",
        ],
        &[me, &keylen, &maxlist, &modes, &targmax, &topiclen, "UTF8ONLY"],
    ];
    for params in lines {
        message(
            out,
            None,
            Some(server),
            "005",
            params,
            Some("are supported by this server"),
        );
    }
    motd(out, me, ctx);
}

/// 375, 372 and 376, or 422 without a message of the day.
fn motd(out: &mut Vec<u8>, me: &str, ctx: &Context) {
    let server = &*ctx.server_name;
    match &ctx.motd {
        None => message(
            out,
            None,
            Some(server),
            "422",
            &[me],
            Some("MOTD File is missing"),
        ),
        Some(lines) => {
            let start = format!("- {server} Message of the day - ");
            message(out, None, Some(server), "375", &[me], Some(&start));
            for line in lines.iter() {
                message(out, None, Some(server), "372", &[me], Some(&format!("- {line}")));
            }
            message(
                out,
                None,
                Some(server),
                "376",
                &[me],
                Some("End of /MOTD command."),
            );
        }
    }
}

/// One remembered line, as the message it was, with its time: as a tag
/// for a client that takes `server-time`, in front of the text otherwise.
fn replay(out: &mut Vec<u8>, room: &RoomName, entry: &HistoryEntry, time: bool) {
    let style = if entry.action {
        Style::Action
    } else {
        Style::Message
    };
    if time {
        let tag = time_tag(entry.at);
        say(out, Some(&tag), &entry.from, room.as_str(), &entry.text, style);
    } else {
        let text = format!(
            "[{}] {}",
            chat_protocol::history::format_time(entry.at),
            entry.text
        );
        say(out, None, &entry.from, room.as_str(), &text, style);
    }
}

/// 353 lines, as many as the names take.
fn names(out: &mut Vec<u8>, session: &Session, me: &str, room: &RoomName, members: &[Member], ctx: &Context) {
    let server = &*ctx.server_name;
    let long = session.has(Cap::UserhostInNames);
    // What `:server 353 me = #room :` leaves of a line for names.
    let room_for_names =
        MAX_LINE - 2 - (server.len() + 2) - 4 - (me.len() + 1) - 2 - (room.as_str().len() + 1) - 1;
    let mut line = String::new();
    let flush = |out: &mut Vec<u8>, line: &mut String| {
        if !line.is_empty() {
            message(
                out,
                None,
                Some(server),
                "353",
                &[me, "=", room.as_str()],
                Some(line),
            );
            line.clear();
        }
    };
    let all_prefixes = session.has(Cap::MultiPrefix);
    for member in members {
        let mut name = String::from(if all_prefixes {
            member.prefixes()
        } else {
            member.prefix()
        });
        if long {
            name.push_str(&source(&member.nick));
        } else {
            name.push_str(member.nick.as_str());
        }
        if !line.is_empty() && line.len() + 1 + name.len() > room_for_names {
            flush(out, &mut line);
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&name);
    }
    flush(out, &mut line);
}

/// A reply of the front end's own.
fn irc_reply(out: &mut Vec<u8>, me: &str, reply: &IrcReply, ctx: &Context) {
    let server = &*ctx.server_name;
    match reply {
        IrcReply::Pong(token) => message(out, None, Some(server), "PONG", &[server], Some(token)),
        IrcReply::Numeric { code, params, text } => {
            let mut middle: Vec<&str> = vec![me];
            middle.extend(params.iter().map(String::as_str));
            // A numeric whose text is empty ends with its last parameter
            // (`324 alice #rust +n`).
            let text = (!text.is_empty()).then_some(text.as_str());
            message(out, None, Some(server), code, &middle, text);
        }
        IrcReply::Cap {
            subcommand,
            caps,
            more,
        } => {
            let mut middle = vec![me, subcommand];
            if *more {
                middle.push("*");
            }
            message(out, None, Some(server), "CAP", &middle, Some(caps));
        }
        IrcReply::Fail { command, code, text } => {
            message(out, None, Some(server), "FAIL", &[command, code], Some(text));
        }
        IrcReply::Motd => motd(out, me, ctx),
    }
}

/// The numeric for an error.
fn error_reply(
    out: &mut Vec<u8>,
    session: &mut Session,
    numeric: &impl Fn(&mut Vec<u8>, &str, &[&str], Option<&str>),
    error: &ErrorKind,
) {
    match error {
        ErrorKind::NickInUse(nick) => {
            if matches!(session.state, State::Waiting { .. }) {
                session.refused();
            }
            numeric(out, "433", &[nick.as_str()], Some("Nickname is already in use"));
        }
        ErrorKind::NickConfusable { asked, existing } => {
            if matches!(session.state, State::Waiting { .. }) {
                session.refused();
            }
            let text = format!("Nickname looks too much like {existing}, who is online");
            numeric(out, "433", &[asked.as_str()], Some(&text));
        }
        ErrorKind::NoSuchNick(nick) => numeric(out, "401", &[nick.as_str()], Some("No such nick/channel")),
        ErrorKind::NoSuchRoom(room) => numeric(out, "403", &[room.as_str()], Some("No such channel")),
        ErrorKind::CannotSendTo(room) => numeric(
            out,
            "404",
            &[room.as_str()],
            Some("Cannot send to channel (join it first)"),
        ),
        ErrorKind::NotInRoom(room) => {
            numeric(out, "442", &[room.as_str()], Some("You're not on that channel"))
        }
        ErrorKind::TooManyRooms(max) => {
            let text = format!("You have joined too many channels (at most {max})");
            numeric(out, "405", &["*"], Some(&text));
        }
        ErrorKind::NotRegistered => numeric(out, "451", &[], Some("You have not registered")),
        ErrorKind::NotOperator(room) => {
            numeric(out, "482", &[room.as_str()], Some("You're not channel operator"))
        }
        ErrorKind::TopicLocked(room) => numeric(
            out,
            "482",
            &[room.as_str()],
            Some("You're not channel operator (the topic is locked, +t)"),
        ),
        ErrorKind::NotInTheRoom { nick, room } => numeric(
            out,
            "441",
            &[nick.as_str(), room.as_str()],
            Some("They aren't on that channel"),
        ),
        ErrorKind::BannedFrom(room) => {
            numeric(out, "474", &[room.as_str()], Some("Cannot join channel (+b)"))
        }
        ErrorKind::NeedsKey(room) => numeric(out, "475", &[room.as_str()], Some("Cannot join channel (+k)")),
        ErrorKind::Moderated(room) => {
            numeric(out, "404", &[room.as_str()], Some("Cannot send to channel (+m)"))
        }
        ErrorKind::Silenced(room) => numeric(
            out,
            "404",
            &[room.as_str()],
            Some("Cannot send to channel (you are banned)"),
        ),
        // Lifting a ban that is not there: IRC servers say nothing.
        ErrorKind::NoSuchBan { .. } => {}
        ErrorKind::ServerFull
        | ErrorKind::BannedFromServer
        | ErrorKind::TooManyFromAddress
        | ErrorKind::TooManyFromNetwork
        | ErrorKind::ConnectingTooFast => refusal(out, error),
        // The line protocol's own errors: written plainly, should one come.
        other => {
            let mut text = String::new();
            let _ = write!(text, "{other}");
            message(out, None, None, "NOTICE", &["*"], Some(&text));
        }
    }
}

/// What a connection refused at the door reads before it is closed.
pub fn refusal(out: &mut Vec<u8>, error: &ErrorKind) {
    let text = format!("Closing link: {error}");
    message(out, None, None, "ERROR", &[], Some(&text));
}
