//! The two threads that talk to Redis, and the check made at start.
//!
//! The *command* thread owns a normal connection: it publishes room lines
//! (many per round trip: it drains its queue into one pipeline of EVALSHA
//! calls), claims and releases nicks, keeps presence, reads streams and
//! answers the hub's questions, and every third of the claim TTL refreshes
//! the claims and presence it holds. The *subscriber* thread owns a second
//! connection in pub/sub mode (the synchronous API cannot publish on it):
//! every room's channel, by one pattern, and this instance's private
//! channel. Both set read and write timeouts on their sockets, so a frozen
//! Redis is a timeout like any error; both then say the link is down, and
//! reconnect with a backoff from 100 ms doubling to 5 s, while the command
//! thread goes on answering the hub from what it knows (a claim made then
//! is kept and made again once the link is back).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chat_protocol::moderation::BanInfo;
use chat_protocol::{Nick, RoomName, RoomSetting, RoomSettings, Topic};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use redis::Value;

use crate::chat::room::MAX_BANS;
use crate::cluster::keys;
use crate::cluster::payload::{parse_line, Envelope, Private, RoomEvent};
use crate::cluster::{ClusterError, ClusterEvent, Command, Part, Purpose, Settings};

/// Commands the hub may queue to the command thread: a third of a second
/// at the throughput target (50,000 lines/s; bounded channels allocate
/// their room up front, so more would cost memory for nothing). Full
/// means Redis has not kept up for that long; the hub then takes the
/// link-lost path rather than wait, delivering what it had queued here
/// (see `chat::hub::cluster`).
pub const COMMAND_CAPACITY: usize = 16_384;

/// Events the cluster's threads may queue to the hub. When it is full they
/// wait (they are threads of their own): Redis then holds what is
/// published for the subscriber, up to its own output buffer limit.
pub const EVENT_CAPACITY: usize = 16_384;

/// The most commands one round trip carries.
pub const BATCH: usize = 4096;

/// How long the command thread waits, once the hub has ended, for the
/// server to stop it (it does so right after joining the hub): a bound in
/// case the server itself is failing.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// How often it looks meanwhile.
const STOP_POLL: Duration = Duration::from_millis(5);

/// First wait before reconnecting.
const BACKOFF_MIN: Duration = Duration::from_millis(100);

/// Longest wait between attempts to reconnect.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Guest numbers reserved at a time: one INCRBY per hundred guests.
pub const GUEST_BLOCK: u64 = 100;

/// The most rooms a WHOIS looks for the nick in (one ZSCORE each, in one
/// round trip): bounds the work one WHOIS makes Redis do.
const WHOIS_ROOMS_MAX: usize = 10_000;

/// The most stream entries one catch-up reads per room: what `--history`
/// may be at most keeps the read bounded.
const CATCH_UP_MAX: usize = 10_000;

/// Numbers a line, keeps it in the room's stream and publishes it, as
/// one step, so every instance sees the lines of a room in one order.
///
/// KEYS: seq, stream, channel, topic, and for the kinds that use them (see
/// [`uses_room_state`]: not a plain line or a topic, the most of what is
/// published) members, settings, bans, ban times, rooms with members,
/// rooms' spellings.
/// ARGV: history length, kind, payload, then by kind:
/// - `line`: nothing more;
/// - `topic`: its text, setter and time, kept in the room's topic hash
///   with the line's number (in the same step, so the hash is always the
///   topic as of some point in the room's order);
/// - `join`: the payload if the room is not empty (ARGV[3] is the one
///   saying the joiner is its first member; the lobby's two say the
///   same), the joiner's nick, now and the presence expiry (ms), the
///   room's key and its spelling. The room's live members (score > now),
///   the joiner not counted, are counted and the joiner added, atomically
///   with the numbering: of two joins of an empty room at once, one is
///   first. The joiner's presence (the room's members, the rooms with
///   members and the room's spelling) is all written in that step, so a
///   `/who` or `/rooms` anywhere after the join was heard counts them;
/// - `ban`: the mask, the ban (JSON), its time, the most bans kept, and
///   now (ms): kept in the bans hash by mask and the ban-times sorted set;
///   as in [`crate::chat::room::Room::add_ban`], bans run out (or
///   unreadable) go first, then the oldest past the most;
/// - `unban`: the mask;
/// - `setting`: the settings hash's field and value (empty: deleted);
/// - `leave` (a leave or a kick): the nick, taken out of the room's
///   members in the same step, so that no `/who` after the leave was
///   heard lists them (their instance takes them out too, a moment
///   later).
///
/// A ban, unban or setting also sets the settings hash's `seq` to the
/// line's number (see [`ClusterEvent::RoomState`]).
///
/// The stream is trimmed exactly (`MAXLEN =`): it is the history, and
/// `--history` means that many lines. With no history the stream keeps
/// nothing, and a gap cannot be filled (the orderer skips it).
const PUBLISH: &str = r"
local kind = ARGV[2]
local payload = ARGV[3]
if kind == 'join' then
  local now = tonumber(ARGV[6])
  local live = redis.call('ZCOUNT', KEYS[5], '(' .. ARGV[6], '+inf')
  local mine = redis.call('ZSCORE', KEYS[5], ARGV[5])
  if mine and tonumber(mine) > now then
    live = live - 1
  end
  redis.call('ZADD', KEYS[5], ARGV[7], ARGV[5])
  redis.call('ZADD', KEYS[9], ARGV[7], ARGV[8])
  redis.call('HSETNX', KEYS[10], ARGV[8], ARGV[9])
  if live > 0 then
    payload = ARGV[4]
  end
end
local seq = redis.call('INCR', KEYS[1])
local keep = tonumber(ARGV[1])
if keep > 0 then
  redis.pcall('XADD', KEYS[2], 'MAXLEN', '=', keep, seq .. '-0', 'p', payload)
end
if kind == 'topic' then
  redis.call('HSET', KEYS[4], 'text', ARGV[4], 'by', ARGV[5], 'at', ARGV[6], 'seq', seq)
elseif kind == 'ban' then
  local now = tonumber(ARGV[8])
  for _, mask in ipairs(redis.call('ZRANGE', KEYS[8], 0, -1)) do
    local ok, ban = pcall(cjson.decode, redis.call('HGET', KEYS[7], mask) or '')
    local ends = ok and type(ban) == 'table' and tonumber(ban['until'])
    if not ok or (ends and ends <= now) then
      redis.call('ZREM', KEYS[8], mask)
      redis.call('HDEL', KEYS[7], mask)
    end
  end
  redis.call('HSET', KEYS[7], ARGV[4], ARGV[5])
  redis.call('ZADD', KEYS[8], ARGV[6], ARGV[4])
  local over = redis.call('ZCARD', KEYS[8]) - tonumber(ARGV[7])
  if over > 0 then
    for _, mask in ipairs(redis.call('ZRANGE', KEYS[8], 0, over - 1)) do
      redis.call('ZREM', KEYS[8], mask)
      redis.call('HDEL', KEYS[7], mask)
    end
  end
  redis.call('HSET', KEYS[6], 'seq', seq)
elseif kind == 'unban' then
  redis.call('HDEL', KEYS[7], ARGV[4])
  redis.call('ZREM', KEYS[8], ARGV[4])
  redis.call('HSET', KEYS[6], 'seq', seq)
elseif kind == 'leave' then
  redis.call('ZREM', KEYS[5], ARGV[4])
elseif kind == 'setting' then
  if ARGV[5] == '' then
    redis.call('HDEL', KEYS[6], ARGV[4])
  else
    redis.call('HSET', KEYS[6], ARGV[4], ARGV[5])
  end
  redis.call('HSET', KEYS[6], 'seq', seq)
end
redis.call('PUBLISH', KEYS[3], seq .. ' ' .. payload)
return seq
";

/// Extends the claims still ours, takes again those that expired with
/// nobody taking them, and returns those another instance holds. KEYS:
/// nick keys; ARGV: instance id, TTL in seconds.
const REFRESH: &str = r"
local lost = {}
for _, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v == ARGV[1] then
    redis.call('EXPIRE', k, ARGV[2])
  elseif not v then
    redis.call('SET', k, ARGV[1], 'EX', ARGV[2])
  else
    table.insert(lost, k)
  end
end
return lost
";

/// Deletes a claim if it is still ours. KEYS: the nick key; ARGV: id.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The cluster threads, for the server to stop and join.
#[derive(Debug)]
pub struct Threads {
    stop: Arc<AtomicBool>,
    /// Let the nicks and presence go when stopping (not on a restart that
    /// hands the users over: the next process takes them over).
    release: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

impl Threads {
    /// Stops both threads and waits for them (each notices within one
    /// `--cluster-timeout`, or at once once the hub's queue has gone).
    /// `release`: let this instance's nicks and presence go (false when
    /// the next process takes its users over).
    pub fn stop(self, release: bool) {
        self.release.store(release, Ordering::Release);
        self.stop.store(true, Ordering::Release);
        for handle in self.handles {
            let _ = handle.join();
        }
    }
}

/// Why one attempt to talk to Redis failed.
#[derive(Debug)]
enum LinkError {
    /// Connection, timeout or protocol trouble.
    Down(String),
    /// The password was refused (or one is needed).
    Password,
}

fn classify(error: &redis::RedisError) -> LinkError {
    let code = error.code().unwrap_or_default();
    let text = error.to_string();
    if error.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(code, "WRONGPASS" | "NOAUTH")
        || text.contains("WRONGPASS")
        || text.contains("NOAUTH")
        || text.contains("AUTH <password>")
        || text.contains("invalid password")
    {
        LinkError::Password
    } else {
        LinkError::Down(describe(error))
    }
}

/// A short description of a Redis error (the crate's text holds no
/// password: we never hand it the URL as a string).
fn describe(error: &redis::RedisError) -> String {
    if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connection_refusal() {
        "connection refused".to_string()
    } else {
        error.to_string()
    }
}

/// Opens a connection with the timeouts set and checks it with PING.
fn connect(settings: &Settings) -> Result<redis::Connection, LinkError> {
    let info = settings.url.connection_info().map_err(|e| classify(&e))?;
    let client = redis::Client::open(info).map_err(|e| classify(&e))?;
    let mut con = client
        .get_connection_with_timeout(settings.timeout)
        .map_err(|e| classify(&e))?;
    con.set_read_timeout(Some(settings.timeout))
        .map_err(|e| classify(&e))?;
    con.set_write_timeout(Some(settings.timeout))
        .map_err(|e| classify(&e))?;
    redis::cmd("PING")
        .query::<String>(&mut con)
        .map_err(|e| classify(&e))?;
    Ok(con)
}

/// Checks at start that Redis answers and takes the password, and reserves
/// the first block of guest numbers (`start..end`).
///
/// # Errors
/// [`ClusterError::Unreachable`], [`ClusterError::Password`] or
/// [`ClusterError::Failed`]; none names the password.
pub fn probe(settings: &Settings) -> Result<(u64, u64), ClusterError> {
    let address = settings.url.address();
    let mut con = connect(settings).map_err(|e| match e {
        LinkError::Password => ClusterError::Password {
            address: address.clone(),
        },
        LinkError::Down(reason) => ClusterError::Unreachable {
            address: address.clone(),
            reason,
        },
    })?;
    guest_block(&mut con).map_err(|e| ClusterError::Failed {
        address,
        reason: describe(&e),
    })
}

fn guest_block(con: &mut redis::Connection) -> redis::RedisResult<(u64, u64)> {
    let end: u64 = redis::cmd("INCRBY")
        .arg(keys::GUESTS)
        .arg(GUEST_BLOCK)
        .query(con)?;
    Ok((
        end.saturating_sub(GUEST_BLOCK).saturating_add(1),
        end.saturating_add(1),
    ))
}

/// Starts the command and subscriber threads. `commands` is what the hub
/// sends; `events` goes to the hub.
///
/// # Errors
/// When a thread cannot be spawned.
pub fn start(
    settings: Settings,
    instance: String,
    history: usize,
    commands: Receiver<Command>,
    events: Sender<ClusterEvent>,
) -> std::io::Result<Threads> {
    let stop = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(true));
    let mut command_thread = CommandThread {
        release: Arc::clone(&release),
        settings: settings.clone(),
        instance: instance.clone(),
        history,
        commands,
        events: events.clone(),
        stop: Arc::clone(&stop),
        claims: HashMap::new(),
        presence: HashMap::new(),
        epoch: None,
        publish_sha: String::new(),
        refresh_sha: String::new(),
        release_sha: String::new(),
    };
    let subscriber = Subscriber {
        settings,
        instance,
        events,
        stop: Arc::clone(&stop),
    };
    let handles = vec![
        std::thread::Builder::new()
            .name("cluster-commands".into())
            .spawn(move || command_thread.run())?,
        std::thread::Builder::new()
            .name("cluster-subscriber".into())
            .spawn(move || subscriber.run())?,
    ];
    Ok(Threads {
        stop,
        release,
        handles,
    })
}

/// The next backoff after `current`.
fn next_backoff(current: Duration) -> Duration {
    current.saturating_mul(2).min(BACKOFF_MAX)
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    crate::chat::hub::system_clock()
}

/// The command thread's state.
struct CommandThread {
    settings: Settings,
    instance: String,
    /// `--history`: how long the streams are.
    history: usize,
    commands: Receiver<Command>,
    events: Sender<ClusterEvent>,
    stop: Arc<AtomicBool>,
    /// See [`Threads::stop`].
    release: Arc<AtomicBool>,
    /// The nicks this instance holds, by key: refreshed, and claimed again
    /// after a reconnect.
    claims: HashMap<String, Nick>,
    /// The local members of each room, by room key: the presence this
    /// instance refreshes.
    presence: HashMap<String, (RoomName, HashSet<Nick>)>,
    /// [`keys::EPOCH`] as last seen.
    epoch: Option<String>,
    /// The scripts' SHA1s, loaded on each new connection.
    publish_sha: String,
    refresh_sha: String,
    release_sha: String,
}

/// What one round trip of published lines needs back if it fails.
type Unsent = Vec<(String, Envelope)>;

impl CommandThread {
    fn run(&mut self) {
        let mut backoff = BACKOFF_MIN;
        let mut was_up = false;
        let mut warned = false;
        while !self.stopping() {
            match self.open() {
                Ok(mut con) => {
                    if warned {
                        log::info!("cluster: command link to {} restored", self.settings.url);
                    }
                    backoff = BACKOFF_MIN;
                    was_up = true;
                    self.send(ClusterEvent::Link {
                        part: Part::Commands,
                        up: true,
                    });
                    let why = self.serve(&mut con);
                    if self.stopping() {
                        return;
                    }
                    log::warn!("cluster: command link to {} lost: {why}", self.settings.url);
                    warned = true;
                    self.send(ClusterEvent::Link {
                        part: Part::Commands,
                        up: false,
                    });
                }
                Err(why) => {
                    if !warned {
                        let why = match why {
                            LinkError::Password => "Redis refused the password".to_string(),
                            LinkError::Down(why) => why,
                        };
                        log::warn!(
                            "cluster: cannot reach Redis at {} ({why}); retrying",
                            self.settings.url
                        );
                        warned = true;
                        if !was_up {
                            self.send(ClusterEvent::Link {
                                part: Part::Commands,
                                up: false,
                            });
                        }
                    }
                }
            }
            // Offline: answer the hub from what we know until it is time
            // to try again.
            let until = Instant::now() + backoff;
            backoff = next_backoff(backoff);
            while !self.stopping() {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match self.commands.recv_timeout(left) {
                    Ok(command) => self.offline(command),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Waits, at most [`STOP_WAIT`], until the server stops the threads
    /// ([`Threads::stop`], which says whether to let the nicks go before
    /// it says stop).
    fn wait_for_stop(&self) {
        let deadline = Instant::now() + STOP_WAIT;
        while !self.stopping() && Instant::now() < deadline {
            thread::sleep(STOP_POLL);
        }
    }

    fn send(&self, event: ClusterEvent) {
        // The hub has gone only at the end of a shutdown.
        let _ = self.events.send(event);
    }

    /// Connects, loads the scripts, claims the nicks and presence again.
    fn open(&mut self) -> Result<redis::Connection, LinkError> {
        let mut con = connect(&self.settings)?;
        let load = |con: &mut redis::Connection, script: &str| -> Result<String, LinkError> {
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(script)
                .query(con)
                .map_err(|e| classify(&e))
        };
        self.publish_sha = load(&mut con, PUBLISH)?;
        self.refresh_sha = load(&mut con, REFRESH)?;
        self.release_sha = load(&mut con, RELEASE)?;
        let mine = crate::cluster::instance_id();
        let (epoch,): (String,) = redis::pipe()
            .cmd("SET")
            .arg(keys::EPOCH)
            .arg(&mine)
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(keys::EPOCH)
            .query(&mut con)
            .map_err(|e| classify(&e))?;
        if self.epoch.as_ref().is_some_and(|before| *before != epoch) {
            log::warn!(
                "cluster: Redis at {} lost its data; numbering every room afresh",
                self.settings.url
            );
            self.send(ClusterEvent::DataLost);
        }
        self.epoch = Some(epoch);
        self.refresh(&mut con).map_err(|e| classify(&e))?;
        Ok(con)
    }

    /// Handles commands until the connection fails; returns why.
    fn serve(&mut self, con: &mut redis::Connection) -> String {
        let period = self.settings.claim_ttl / 3;
        let mut next_refresh = Instant::now() + period;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            if self.stopping() {
                self.release_all(con);
                return "stopping".to_string();
            }
            let wait = next_refresh
                .saturating_duration_since(Instant::now())
                .min(self.settings.timeout);
            match self.commands.recv_timeout(wait) {
                Ok(first) => {
                    batch.push(first);
                    batch.extend(self.commands.try_iter().take(BATCH - 1));
                    if let Err(e) = self.handle_batch(con, &mut batch) {
                        return describe(&e);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // The hub has ended: the server stops us next, saying
                    // whether to let the nicks go (not on a restart that
                    // hands the users over). Wait for that word, within a
                    // bound, rather than guess: letting go here raced a
                    // handover and freed nicks the next process carries.
                    self.wait_for_stop();
                    self.stop.store(true, Ordering::Release);
                    self.release_all(con);
                    return "stopping".to_string();
                }
            }
            if Instant::now() >= next_refresh {
                next_refresh = Instant::now() + period;
                if let Err(e) = self.refresh(con) {
                    return describe(&e);
                }
            }
        }
    }

    /// One batch: every publish in one pipeline, then the rest in order.
    /// Publishes and other commands keep their relative order per room
    /// because the other commands do not publish.
    fn handle_batch(
        &mut self,
        con: &mut redis::Connection,
        batch: &mut Vec<Command>,
    ) -> redis::RedisResult<()> {
        let mut commands = std::mem::take(batch).into_iter();
        let mut publishes: Unsent = Vec::new();
        while let Some(command) = commands.next() {
            if let Command::Publish { room, envelope } = command {
                publishes.push((room, envelope));
                continue;
            }
            // Publish what came before this command first, so a join is
            // published before the /who that follows it is read, say.
            if let Err(e) = self.publish(con, &mut publishes) {
                self.bounce(commands.collect(), Some(command));
                return Err(e);
            }
            if let Err(e) = self.command(con, command) {
                self.bounce(commands.collect(), None);
                return Err(e);
            }
        }
        self.publish(con, &mut publishes)
    }

    /// After a failure: the commands not sent are answered offline.
    fn bounce(&mut self, rest: Vec<Command>, failed: Option<Command>) {
        for command in failed.into_iter().chain(rest) {
            self.offline(command);
        }
    }

    /// Publishes `lines` in one round trip; on failure hands them back to
    /// the hub to deliver locally.
    fn publish(&mut self, con: &mut redis::Connection, lines: &mut Unsent) -> redis::RedisResult<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        let now = now_ms();
        let expiry = now.saturating_add(self.ttl_ms());
        for (room, envelope) in lines.iter() {
            let full = uses_room_state(&envelope.event);
            pipe.cmd("EVALSHA")
                .arg(&self.publish_sha)
                .arg(if full { 10 } else { 4 })
                .arg(keys::seq(room))
                .arg(keys::stream(room))
                .arg(keys::channel(room))
                .arg(keys::topic(room));
            if full {
                pipe.arg(keys::members(room))
                    .arg(keys::settings(room))
                    .arg(keys::bans(room))
                    .arg(keys::ban_times(room))
                    .arg(keys::ROOMS)
                    .arg(keys::ROOM_NAMES);
            }
            pipe.arg(self.history);
            publish_args(&mut pipe, room, envelope, now, expiry);
            pipe.ignore();
        }
        let mut result = pipe.query::<()>(con);
        if matches!(&result, Err(e) if e.code() == Some("NOSCRIPT")) {
            // Redis forgot the script (SCRIPT FLUSH, a failover): load it
            // again and retry; no line of the batch ran.
            match redis::cmd("SCRIPT").arg("LOAD").arg(PUBLISH).query::<String>(con) {
                Ok(sha) => {
                    self.publish_sha = sha;
                    return self.publish(con, lines);
                }
                Err(e) => result = Err(e),
            }
        }
        let sent = std::mem::take(lines);
        if result.is_err() {
            for (room, envelope) in sent {
                self.send(ClusterEvent::Unpublished { room, envelope });
            }
        }
        result
    }

    /// Any command but a publish, with the link up.
    fn command(&mut self, con: &mut redis::Connection, command: Command) -> redis::RedisResult<()> {
        match command {
            Command::Publish { room, envelope } => self.publish(con, &mut vec![(room, envelope)]),
            Command::TakeOver { nicks, presence } => {
                // Kept first: should a round trip fail, the refresh after
                // the reconnect claims them again.
                self.keep_taken_over(&nicks, &presence);
                let ttl = self.settings.claim_ttl.as_secs();
                for chunk in nicks.chunks(BATCH) {
                    let mut pipe = redis::pipe();
                    for nick in chunk {
                        pipe.cmd("SET")
                            .arg(keys::nick(&nick.key()))
                            .arg(&self.instance)
                            .arg("EX")
                            .arg(ttl)
                            .ignore();
                    }
                    pipe.query::<()>(con)?;
                }
                let expiry = now_ms().saturating_add(self.ttl_ms());
                for chunk in presence.chunks(BATCH) {
                    let mut pipe = redis::pipe();
                    for (room, nick) in chunk {
                        add_presence(&mut pipe, room, nick, expiry);
                    }
                    pipe.query::<()>(con)?;
                }
                Ok(())
            }
            Command::Claim { conn, nick, purpose } => {
                let key = nick.key();
                let won = if purpose == Purpose::Keep {
                    true
                } else {
                    let set: Option<String> = redis::cmd("SET")
                        .arg(keys::nick(&key))
                        .arg(&self.instance)
                        .arg("NX")
                        .arg("EX")
                        .arg(self.settings.claim_ttl.as_secs())
                        .query(con)?;
                    set.is_some()
                };
                if won {
                    self.claims.insert(key, nick.clone());
                }
                if purpose == Purpose::Keep {
                    // Made while offline, or a local rename's claim: take
                    // it now if free; a refusal is a lost claim.
                    let lost = self.refresh_keys(con, &[nick.key()])?;
                    if !lost.is_empty() {
                        self.send(ClusterEvent::ClaimsLost(lost));
                    }
                    return Ok(());
                }
                self.send(ClusterEvent::Claimed {
                    conn,
                    nick,
                    purpose,
                    won,
                });
                Ok(())
            }
            Command::Release { key } => {
                self.claims.remove(&key);
                redis::cmd("EVALSHA")
                    .arg(&self.release_sha)
                    .arg(1)
                    .arg(keys::nick(&key))
                    .arg(&self.instance)
                    .query::<i64>(con)?;
                Ok(())
            }
            Command::Join { room, nick } => {
                let expiry = now_ms().saturating_add(self.ttl_ms());
                let mut pipe = redis::pipe();
                add_presence(&mut pipe, &room, &nick, expiry);
                pipe.query::<()>(con)?;
                self.remember_member(room, nick);
                Ok(())
            }
            Command::Leave { room, nick } => {
                self.forget_member(&room, &nick);
                redis::cmd("ZREM")
                    .arg(keys::members(&room))
                    .arg(nick.as_str())
                    .query::<i64>(con)?;
                Ok(())
            }
            Command::Who { conn, room, asked } => {
                let (_, nicks): ((), Vec<String>) = redis::pipe()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(keys::members(&room))
                    .arg("-inf")
                    .arg(now_ms())
                    .cmd("ZRANGE")
                    .arg(keys::members(&room))
                    .arg(0)
                    .arg(-1)
                    .query(con)?;
                let nicks = nicks.iter().filter_map(|n| Nick::new(n).ok()).collect();
                self.send(ClusterEvent::Members {
                    conn,
                    room,
                    asked,
                    nicks: Some(nicks),
                });
                Ok(())
            }
            Command::Rooms { conn, page } => {
                let now = now_ms();
                let (_, rooms): ((), Vec<String>) = redis::pipe()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(keys::ROOMS)
                    .arg("-inf")
                    .arg(now)
                    .cmd("ZRANGE")
                    .arg(keys::ROOMS)
                    .arg(0)
                    .arg(-1)
                    .query(con)?;
                let mut pipe = redis::pipe();
                for key in &rooms {
                    pipe.cmd("ZCOUNT").arg(keys::members(key)).arg(now).arg("+inf");
                    pipe.cmd("HGET").arg(keys::ROOM_NAMES).arg(key);
                }
                let answers: Vec<(usize, Option<String>)> = if rooms.is_empty() {
                    Vec::new()
                } else {
                    let flat: Vec<Value> = pipe.query(con)?;
                    flat.chunks(2)
                        .map(|pair| match pair {
                            [count, name] => (
                                redis::from_redis_value_ref::<usize>(count).unwrap_or(0),
                                redis::from_redis_value_ref::<Option<String>>(name).unwrap_or(None),
                            ),
                            _ => (0, None),
                        })
                        .collect()
                };
                let listed = rooms
                    .iter()
                    .zip(answers)
                    .filter(|(_, (count, _))| *count > 0)
                    .filter_map(|(key, (count, name))| {
                        let name = RoomName::new(name.as_deref().unwrap_or(key)).ok()?;
                        Some((name, count))
                    })
                    .collect();
                self.send(ClusterEvent::Rooms {
                    conn,
                    page,
                    rooms: Some(listed),
                });
                Ok(())
            }
            Command::Private { conn, message } => {
                let owner: Option<String> =
                    redis::cmd("GET").arg(keys::nick(&message.to.key())).query(con)?;
                let delivered = match owner {
                    Some(owner) => {
                        let payload = serde_json::to_string(&message).unwrap_or_default();
                        let heard: i64 = redis::cmd("PUBLISH")
                            .arg(keys::instance(&owner))
                            .arg(payload)
                            .query(con)?;
                        heard > 0
                    }
                    None => false,
                };
                self.send(ClusterEvent::PrivateSent {
                    conn,
                    message,
                    delivered,
                });
                Ok(())
            }
            Command::Fill { room, from, to } => {
                let lines = self.read_stream(con, &room, from, Some(to))?;
                self.send(ClusterEvent::Backlog {
                    room,
                    lines,
                    upto: to,
                });
                Ok(())
            }
            Command::CatchUp { positions, reload } => {
                self.catch_up(con, positions, &reload)?;
                self.send(ClusterEvent::CaughtUp);
                Ok(())
            }
            Command::GuestBlock => {
                let (start, end) = guest_block(con)?;
                self.send(ClusterEvent::Guests { start, end });
                Ok(())
            }
            Command::Whois { conn, nick } => {
                let rooms = self.whois(con, &nick)?;
                self.send(ClusterEvent::Whois { conn, nick, rooms });
                Ok(())
            }
            Command::RoomState { room } => {
                let (topic, settings, bans): (
                    HashMap<String, String>,
                    HashMap<String, String>,
                    HashMap<String, String>,
                ) = redis::pipe()
                    .cmd("HGETALL")
                    .arg(keys::topic(&room))
                    .cmd("HGETALL")
                    .arg(keys::settings(&room))
                    .cmd("HGETALL")
                    .arg(keys::bans(&room))
                    .query(con)?;
                self.send(ClusterEvent::RoomState {
                    room,
                    topic: topic_of(&topic),
                    moderation: moderation_of(&settings, &bans, now_ms()),
                });
                Ok(())
            }
        }
    }

    /// The server is stopping and its users are gone: their nicks and
    /// presence are let go at once rather than left to expire. Best
    /// effort: a failure here leaves them to expire.
    fn release_all(&mut self, con: &mut redis::Connection) {
        if !self.release.load(Ordering::Acquire) {
            return;
        }
        let mut pipe = redis::pipe();
        for key in self.claims.keys() {
            pipe.cmd("EVALSHA")
                .arg(&self.release_sha)
                .arg(1)
                .arg(keys::nick(key))
                .arg(&self.instance)
                .ignore();
        }
        for (room, (_, members)) in &self.presence {
            if members.is_empty() {
                continue;
            }
            pipe.cmd("ZREM").arg(keys::members(room));
            for nick in members {
                pipe.arg(nick.as_str());
            }
            pipe.ignore();
        }
        if !pipe.is_empty() {
            if let Err(e) = pipe.query::<()>(con) {
                log::debug!("cluster: could not let the nicks go at the end: {}", describe(&e));
            }
        }
        self.claims.clear();
        self.presence.clear();
    }

    /// A command while the link is down: remembered, or answered as if
    /// this instance were alone.
    fn offline(&mut self, command: Command) {
        match command {
            Command::Publish { room, envelope } => self.send(ClusterEvent::Unpublished { room, envelope }),
            Command::Claim { conn, nick, purpose } => {
                self.claims.insert(nick.key(), nick.clone());
                if purpose != Purpose::Keep {
                    self.send(ClusterEvent::Claimed {
                        conn,
                        nick,
                        purpose,
                        won: true,
                    });
                }
            }
            Command::Release { key } => {
                self.claims.remove(&key);
            }
            Command::TakeOver { nicks, presence } => self.keep_taken_over(&nicks, &presence),
            Command::Join { room, nick } => self.remember_member(room, nick),
            Command::Leave { room, nick } => self.forget_member(&room, &nick),
            Command::Who { conn, room, asked } => self.send(ClusterEvent::Members {
                conn,
                room,
                asked,
                nicks: None,
            }),
            Command::Rooms { conn, page } => self.send(ClusterEvent::Rooms {
                conn,
                page,
                rooms: None,
            }),
            Command::Private { conn, message } => self.send(ClusterEvent::PrivateSent {
                conn,
                message,
                delivered: false,
            }),
            Command::Fill { room, to, .. } => self.send(ClusterEvent::Backlog {
                room,
                lines: Vec::new(),
                upto: to,
            }),
            // Asked again once the link is back.
            Command::CatchUp { .. } | Command::GuestBlock => {}
            // The hub answers as if alone.
            Command::Whois { conn, nick } => self.send(ClusterEvent::Whois {
                conn,
                nick,
                rooms: None,
            }),
            // The hub goes on with what it knows.
            Command::RoomState { room } => self.send(ClusterEvent::RoomState {
                room,
                topic: None,
                moderation: None,
            }),
        }
    }

    /// Keeps `nick`'s presence in `room`, to refresh it (and to let it go
    /// at the end).
    fn remember_member(&mut self, room: RoomName, nick: Nick) {
        self.presence
            .entry(room.key())
            .or_insert_with(|| (room, HashSet::new()))
            .1
            .insert(nick);
    }

    /// Keeps the claims and presence a restart handed over, as if each
    /// had been claimed and joined here.
    fn keep_taken_over(&mut self, nicks: &[Nick], presence: &[(RoomName, Nick)]) {
        for nick in nicks {
            self.claims.insert(nick.key(), nick.clone());
        }
        for (room, nick) in presence {
            self.remember_member(room.clone(), nick.clone());
        }
    }

    fn forget_member(&mut self, room: &str, nick: &Nick) {
        if let Some((_, members)) = self.presence.get_mut(room) {
            members.remove(nick);
            if members.is_empty() {
                self.presence.remove(room);
            }
        }
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.settings.claim_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Refreshes every claim and the presence; reports claims lost.
    fn refresh(&mut self, con: &mut redis::Connection) -> redis::RedisResult<()> {
        let keys: Vec<String> = self.claims.keys().cloned().collect();
        let mut lost = Vec::new();
        for chunk in keys.chunks(1000) {
            lost.extend(self.refresh_keys(con, chunk)?);
        }
        for key in &lost {
            self.claims.remove(key);
        }
        if !lost.is_empty() {
            self.send(ClusterEvent::ClaimsLost(lost));
        }
        let expiry = now_ms().saturating_add(self.ttl_ms());
        let mut pipe = redis::pipe();
        for (key, (name, members)) in &self.presence {
            if members.is_empty() {
                continue;
            }
            pipe.cmd("ZADD").arg(keys::members(key));
            for nick in members {
                pipe.arg(expiry).arg(nick.as_str());
            }
            pipe.ignore();
            pipe.cmd("ZADD").arg(keys::ROOMS).arg(expiry).arg(key).ignore();
            pipe.cmd("HSETNX")
                .arg(keys::ROOM_NAMES)
                .arg(key)
                .arg(name.as_str())
                .ignore();
        }
        if !pipe.is_empty() {
            pipe.query::<()>(con)?;
        }
        Ok(())
    }

    /// Runs the refresh script over `keys` (nick keys); returns the lost.
    fn refresh_keys(
        &mut self,
        con: &mut redis::Connection,
        nick_keys: &[String],
    ) -> redis::RedisResult<Vec<String>> {
        if nick_keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.refresh_sha).arg(nick_keys.len());
        for key in nick_keys {
            cmd.arg(keys::nick(key));
        }
        cmd.arg(&self.instance).arg(self.settings.claim_ttl.as_secs());
        let lost: Vec<String> = cmd.query(con)?;
        Ok(lost
            .into_iter()
            .filter_map(|k| k.strip_prefix("chat:nick:").map(str::to_string))
            .collect())
    }

    /// A room's stream from `from` to `to` (the end when `None`).
    fn read_stream(
        &self,
        con: &mut redis::Connection,
        room: &str,
        from: u64,
        to: Option<u64>,
    ) -> redis::RedisResult<Vec<(u64, Envelope)>> {
        let end = to.map_or_else(|| "+".to_string(), |to| format!("{to}-0"));
        let entries: Value = redis::cmd("XRANGE")
            .arg(keys::stream(room))
            .arg(format!("{from}-0"))
            .arg(end)
            .arg("COUNT")
            .arg(CATCH_UP_MAX)
            .query(con)?;
        Ok(stream_entries(&entries))
    }

    /// The rooms `nick` is in, from presence (in order of their keys), if
    /// another instance holds it; `None` if none does. Presence has the nick as its user spells
    /// it: asked in another case, it is found held but in no room.
    fn whois(&self, con: &mut redis::Connection, nick: &Nick) -> redis::RedisResult<Option<Vec<RoomName>>> {
        let now = now_ms();
        let (owner, rooms): (Option<String>, Vec<String>) = redis::pipe()
            .cmd("GET")
            .arg(keys::nick(&nick.key()))
            .cmd("ZRANGEBYSCORE")
            .arg(keys::ROOMS)
            .arg(now)
            .arg("+inf")
            .arg("LIMIT")
            .arg(0)
            .arg(WHOIS_ROOMS_MAX)
            .query(con)?;
        if owner.is_none_or(|owner| owner == self.instance) {
            return Ok(None);
        }
        if rooms.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let mut pipe = redis::pipe();
        for key in &rooms {
            pipe.cmd("ZSCORE").arg(keys::members(key)).arg(nick.as_str());
            pipe.cmd("HGET").arg(keys::ROOM_NAMES).arg(key);
        }
        let flat: Vec<Value> = pipe.query(con)?;
        let mut found: Vec<RoomName> = rooms
            .iter()
            .zip(flat.chunks(2))
            .filter_map(|(key, pair)| {
                let [score, name] = pair else { return None };
                let expiry = redis::from_redis_value_ref::<Option<f64>>(score).ok()??;
                #[allow(clippy::cast_precision_loss)] // milliseconds: exact below 2^53
                let live = expiry > now as f64;
                let name = redis::from_redis_value_ref::<Option<String>>(name).ok()?;
                live.then(|| RoomName::new(name.as_deref().unwrap_or(key)).ok())?
            })
            .collect();
        found.sort_by_key(RoomName::key);
        Ok(Some(found))
    }

    /// Every room's stream past where the hub is; the rooms in `reload`
    /// whole (the stream is at most `--history` long), their history up to
    /// where the hub is first.
    fn catch_up(
        &mut self,
        con: &mut redis::Connection,
        positions: Vec<(String, u64)>,
        reload: &[String],
    ) -> redis::RedisResult<()> {
        let known: HashMap<String, u64> = positions.into_iter().collect();
        let mut reloaded = HashSet::new();
        for room in reload {
            if !reloaded.insert(room.as_str()) {
                continue;
            }
            let position = known.get(room).copied();
            let (had, missed): (Vec<_>, Vec<_>) = self
                .read_stream(con, room, 0, None)?
                .into_iter()
                .partition(|(seq, _)| position.is_some_and(|p| *seq <= p));
            self.send(ClusterEvent::History {
                room: room.clone(),
                lines: had,
            });
            let from = position.map_or(0, |last| last.saturating_add(1));
            let upto = missed.last().map_or(from.saturating_sub(1), |(seq, _)| *seq);
            if !missed.is_empty() || position.is_some() {
                self.send(ClusterEvent::Backlog {
                    room: room.clone(),
                    lines: missed,
                    upto,
                });
            }
        }
        let mut cursor = "0".to_string();
        let mut rounds = 0;
        loop {
            let (next, found): (String, Vec<String>) = redis::cmd("SCAN")
                .arg(&cursor)
                .arg("MATCH")
                .arg("chat:stream:*")
                .arg("COUNT")
                .arg(1000)
                .arg("TYPE")
                .arg("stream")
                .query(con)?;
            for key in found {
                let Some(room) = keys::room_of_stream(&key) else { continue };
                if reloaded.contains(room) {
                    continue;
                }
                let from = known.get(room).map_or(0, |last| last.saturating_add(1));
                let lines = self.read_stream(con, room, from, None)?;
                let upto = lines.last().map_or(from.saturating_sub(1), |(seq, _)| *seq);
                if !lines.is_empty() || known.contains_key(room) {
                    self.send(ClusterEvent::Backlog {
                        room: room.to_string(),
                        lines,
                        upto,
                    });
                }
            }
            rounds += 1;
            if next == "0" || rounds > 100_000 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

/// Adds to `pipe` what says `nick` is in `room` until `expiry` (ms): the
/// room's members, the rooms with members, and the room's spelling.
fn add_presence(pipe: &mut redis::Pipeline, room: &RoomName, nick: &Nick, expiry: u64) {
    let key = room.key();
    pipe.cmd("ZADD")
        .arg(keys::members(&key))
        .arg(expiry)
        .arg(nick.as_str())
        .ignore()
        .cmd("ZADD")
        .arg(keys::ROOMS)
        .arg(expiry)
        .arg(&key)
        .ignore()
        .cmd("HSETNX")
        .arg(keys::ROOM_NAMES)
        .arg(&key)
        .arg(room.as_str())
        .ignore();
}

/// Whether the publishing script needs the room's state keys for `event`
/// (its members, settings, bans, and the rooms with members): for every
/// kind but a plain line or a topic ([`publish_args`]), which are most of
/// what is published and so are spared six keys, four of them made anew.
fn uses_room_state(event: &RoomEvent) -> bool {
    matches!(
        event,
        RoomEvent::Joined { .. }
            | RoomEvent::Left { .. }
            | RoomEvent::Kicked { .. }
            | RoomEvent::BanChanged { .. }
            | RoomEvent::SettingChanged { .. }
    )
}

/// The kind, payload and the rest of the publishing script's arguments
/// for one room event (see [`PUBLISH`]).
fn publish_args(pipe: &mut redis::Pipeline, room: &str, envelope: &Envelope, now: u64, expiry: u64) {
    let payload = |envelope: &Envelope| serde_json::to_string(envelope).unwrap_or_default();
    match &envelope.event {
        RoomEvent::TopicChanged { topic, .. } => {
            pipe.arg("topic")
                .arg(payload(envelope))
                .arg(&topic.text)
                .arg(topic.by.as_str())
                .arg(topic.at);
        }
        RoomEvent::Joined { nick, room: name, .. } => {
            // The lobby has no operators: its first member is not one.
            let lobby = room == RoomName::lobby().key();
            let with_first = |first: bool| {
                let mut envelope = envelope.clone();
                if let RoomEvent::Joined { first: f, .. } = &mut envelope.event {
                    *f = first && !lobby;
                }
                payload(&envelope)
            };
            pipe.arg("join")
                .arg(with_first(true))
                .arg(with_first(false))
                .arg(nick.as_str())
                .arg(now)
                .arg(expiry)
                .arg(room)
                .arg(name.as_str());
        }
        RoomEvent::BanChanged {
            mask, on: true, at, ..
        } => {
            let ban = envelope.event.ban_added();
            let ban = ban.and_then(|ban| serde_json::to_string(&ban).ok());
            pipe.arg("ban")
                .arg(payload(envelope))
                .arg(mask.as_str())
                .arg(ban.unwrap_or_default())
                .arg(*at)
                .arg(MAX_BANS)
                .arg(now);
        }
        RoomEvent::BanChanged { mask, .. } => {
            pipe.arg("unban").arg(payload(envelope)).arg(mask.as_str());
        }
        RoomEvent::SettingChanged { setting, .. } => {
            let (field, value) = setting_field(setting);
            pipe.arg("setting").arg(payload(envelope)).arg(field).arg(value);
        }
        RoomEvent::Left { nick, .. } | RoomEvent::Kicked { nick, .. } => {
            pipe.arg("leave").arg(payload(envelope)).arg(nick.as_str());
        }
        _ => {
            pipe.arg("line").arg(payload(envelope));
        }
    }
}

/// A setting as the settings hash keeps it: field and value (empty for
/// off, which deletes the field).
fn setting_field(setting: &RoomSetting) -> (&'static str, String) {
    let flag = |on: bool| if on { "1".to_string() } else { String::new() };
    match setting {
        RoomSetting::Moderated(on) => ("moderated", flag(*on)),
        RoomSetting::TopicLocked(on) => ("topic-lock", flag(*on)),
        RoomSetting::Key(key) => ("key", key.clone().unwrap_or_default()),
        RoomSetting::Hidden(on) => ("hidden", flag(*on)),
    }
}

/// A room's settings and bans as kept in Redis, with the number of the
/// last line that changed them; `None` when none was ever changed (no
/// `seq`), or it is malformed. Bans that have run out at `now`, or do
/// not read, are left out; at most [`MAX_BANS`], oldest first.
fn moderation_of(
    settings: &HashMap<String, String>,
    bans: &HashMap<String, String>,
    now: u64,
) -> Option<(u64, RoomSettings, Vec<BanInfo>)> {
    let seq = settings.get("seq")?.parse::<u64>().ok()?;
    let flag = |field: &str| settings.get(field).is_some_and(|v| v == "1");
    let read = RoomSettings {
        moderated: flag("moderated"),
        topic_locked: flag("topic-lock"),
        key: settings
            .get("key")
            .filter(|k| chat_protocol::moderation::check_key(k).is_ok())
            .cloned(),
        hidden: flag("hidden"),
    };
    let mut list: Vec<BanInfo> = bans
        .values()
        .filter_map(|json| serde_json::from_str::<BanInfo>(json).ok())
        .filter(|ban| ban.until.is_none_or(|until| until > now))
        .collect();
    list.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.mask.cmp(&b.mask)));
    let over = list.len().saturating_sub(MAX_BANS);
    list.drain(..over);
    Some((seq, read, list))
}

/// A room's topic hash as read (`text`, `by`, `at`, `seq`), with the
/// number of the line that set it; `None` when there is none, or when
/// it is malformed (another program wrote it): then the room simply
/// shows no topic, as before it was kept.
fn topic_of(fields: &HashMap<String, String>) -> Option<(u64, Topic)> {
    let seq = fields.get("seq")?.parse::<u64>().ok()?;
    let topic = Topic {
        text: fields.get("text")?.clone(),
        by: Nick::new(fields.get("by")?).ok()?,
        at: fields.get("at")?.parse::<u64>().ok()?,
    };
    Some((seq, topic))
}

/// The entries of an XRANGE answer, `[[id, [field, value, ...]], ...]`,
/// as (number, envelope); anything malformed is left out.
fn stream_entries(value: &Value) -> Vec<(u64, Envelope)> {
    let Value::Array(entries) = value else { return Vec::new() };
    entries
        .iter()
        .filter_map(|entry| {
            let Value::Array(parts) = entry else { return None };
            let [id, Value::Array(fields)] = parts.as_slice() else { return None };
            let id: String = redis::from_redis_value_ref(id).ok()?;
            let seq = id.split('-').next()?.parse::<u64>().ok()?;
            let payload: String = redis::from_redis_value_ref(fields.get(1)?).ok()?;
            let envelope = serde_json::from_str(&payload).ok()?;
            Some((seq, envelope))
        })
        .collect()
}

/// The subscriber thread's state.
struct Subscriber {
    settings: Settings,
    instance: String,
    events: Sender<ClusterEvent>,
    stop: Arc<AtomicBool>,
}

impl Subscriber {
    fn run(&self) {
        let mut backoff = BACKOFF_MIN;
        let mut warned = false;
        let mut was_up = false;
        while !self.stop.load(Ordering::Acquire) {
            match connect(&self.settings) {
                Ok(mut con) => {
                    backoff = BACKOFF_MIN;
                    let why = self.listen(&mut con, &mut was_up);
                    if self.stop.load(Ordering::Acquire) {
                        return;
                    }
                    if was_up {
                        log::warn!("cluster: subscription to {} lost: {why}", self.settings.url);
                        let _ = self.events.send(ClusterEvent::Link {
                            part: Part::Subscriber,
                            up: false,
                        });
                    }
                    warned = true;
                }
                Err(_) => {
                    if !warned && !was_up {
                        let _ = self.events.send(ClusterEvent::Link {
                            part: Part::Subscriber,
                            up: false,
                        });
                    }
                    warned = true;
                }
            }
            let until = Instant::now() + backoff;
            backoff = next_backoff(backoff);
            while !self.stop.load(Ordering::Acquire) && Instant::now() < until {
                std::thread::sleep(
                    until
                        .saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(50)),
                );
            }
        }
    }

    /// Subscribes and hands every message to the hub until the connection
    /// fails; returns why.
    fn listen(&self, con: &mut redis::Connection, was_up: &mut bool) -> String {
        let mut pubsub = con.as_pubsub();
        if let Err(e) = pubsub.psubscribe(keys::ROOM_PATTERN) {
            return describe(&e);
        }
        if let Err(e) = pubsub.subscribe(keys::instance(&self.instance)) {
            return describe(&e);
        }
        if let Err(e) = pubsub.set_read_timeout(Some(self.settings.timeout)) {
            return describe(&e);
        }
        *was_up = true;
        let _ = self.events.send(ClusterEvent::Link {
            part: Part::Subscriber,
            up: true,
        });
        // A quiet channel is normal; a quiet Redis may be frozen: after a
        // timeout with nothing heard, a PING must be answered.
        loop {
            if self.stop.load(Ordering::Acquire) {
                return "stopping".to_string();
            }
            match pubsub.get_message() {
                Ok(message) => self.hand_over(&message),
                Err(e) if e.is_timeout() => {
                    if let Err(e) = pubsub.ping::<Value>() {
                        return describe(&e);
                    }
                }
                Err(e) => return describe(&e),
            }
        }
    }

    fn hand_over(&self, message: &redis::Msg) {
        let channel = message.get_channel_name();
        let payload = message.get_payload_bytes();
        if let Some(room) = channel.strip_prefix(keys::ROOM_CHANNEL) {
            match parse_line(payload) {
                Ok((seq, envelope)) => {
                    let _ = self.events.send(ClusterEvent::Line {
                        room: room.to_string(),
                        seq,
                        envelope,
                    });
                }
                Err(e) => log::debug!("cluster: ignoring a message on {channel}: {e}"),
            }
        } else {
            match serde_json::from_slice::<Private>(payload) {
                Ok(private) => {
                    let _ = self.events.send(ClusterEvent::PrivateIn(private));
                }
                Err(e) => log::debug!("cluster: ignoring a message on {channel}: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_kept_topic_is_read_back_with_the_number_of_its_line() {
        let read = topic_of(&fields(&[
            ("text", "release on Friday"),
            ("by", "alice"),
            ("at", "1796587200000"),
            ("seq", "42"),
        ]));
        assert_eq!(
            read,
            Some((
                42,
                Topic {
                    text: "release on Friday".into(),
                    by: Nick::new("alice").unwrap(),
                    at: 1_796_587_200_000,
                }
            ))
        );
    }

    /// The script's arguments for `event` in `room` (after KEYS and the
    /// history length), as strings.
    fn script_args(room: &str, event: RoomEvent) -> Vec<String> {
        let envelope = Envelope {
            origin: "i1".into(),
            id: 1,
            except: None,
            event,
        };
        let mut pipe = redis::pipe();
        pipe.cmd("EVALSHA");
        publish_args(&mut pipe, room, &envelope, 5, 30_005);
        let packed = String::from_utf8(pipe.get_packed_pipeline()).unwrap();
        // RESP: *N, then $len and the argument, each on its own line.
        packed
            .split("\r\n")
            .skip(1)
            .collect::<Vec<_>>()
            .chunks(2)
            .filter_map(|pair| pair.get(1).map(|s| (*s).to_string()))
            .skip(1)
            .collect()
    }

    #[test]
    fn only_lines_and_topics_are_published_without_the_room_state_keys() {
        let room = RoomName::new("#r").unwrap();
        let nick = Nick::new("bob").unwrap();
        let by = Nick::new("alice").unwrap();
        let events = [
            RoomEvent::Said {
                room: room.clone(),
                from: nick.clone(),
                text: "hi".into(),
                style: chat_protocol::Style::Message,
                at: 1,
            },
            RoomEvent::TopicChanged {
                room: room.clone(),
                topic: chat_protocol::Topic {
                    text: "t".into(),
                    by: by.clone(),
                    at: 1,
                },
            },
            RoomEvent::NickChanged {
                room: room.clone(),
                old: nick.clone(),
                new: by.clone(),
            },
            RoomEvent::RoleChanged {
                room: room.clone(),
                nick: nick.clone(),
                by: by.clone(),
                role: chat_protocol::Role::Op,
                on: true,
            },
            joined("#r"),
            RoomEvent::Left {
                room: room.clone(),
                nick: nick.clone(),
                reason: chat_protocol::LeaveReason::Disconnected,
            },
            RoomEvent::Kicked {
                room: room.clone(),
                nick: nick.clone(),
                by: by.clone(),
                reason: None,
            },
            RoomEvent::BanChanged {
                room: room.clone(),
                mask: chat_protocol::Mask::parse("troll").unwrap(),
                by: by.clone(),
                on: false,
                duration: None,
                at: 1,
                until: None,
            },
            RoomEvent::SettingChanged {
                room,
                by,
                setting: RoomSetting::Key(None),
            },
        ];
        for event in events {
            let kind = script_args("#r", event.clone()).swap_remove(0);
            let plain = kind == "line" || kind == "topic";
            assert_eq!(uses_room_state(&event), !plain, "{kind}: {event:?}");
        }
    }

    fn joined(room: &str) -> RoomEvent {
        RoomEvent::Joined {
            room: RoomName::new(room).unwrap(),
            nick: Nick::new("bob").unwrap(),
            quiet: false,
            first: false,
        }
    }

    #[test]
    fn a_join_hands_the_script_both_payloads_first_and_not() {
        let args = script_args("#rust", joined("#Rust"));
        assert_eq!(args.len(), 8, "{args:?}");
        assert_eq!(args[0], "join");
        let first: Envelope = serde_json::from_str(&args[1]).unwrap();
        let not_first: Envelope = serde_json::from_str(&args[2]).unwrap();
        assert!(matches!(first.event, RoomEvent::Joined { first: true, .. }));
        assert!(matches!(not_first.event, RoomEvent::Joined { first: false, .. }));
        // The nick, now, the presence expiry, and the room's key and
        // spelling for the rooms with members.
        assert_eq!(&args[3..], ["bob", "5", "30005", "#rust", "#Rust"]);
    }

    #[test]
    fn a_join_of_the_lobby_writes_presence_but_is_never_first() {
        let args = script_args("#lobby", joined("#lobby"));
        assert_eq!(args.len(), 8, "{args:?}");
        assert_eq!(args[0], "join");
        for payload in &args[1..3] {
            let envelope: Envelope = serde_json::from_str(payload).unwrap();
            assert!(matches!(envelope.event, RoomEvent::Joined { first: false, .. }));
        }
    }

    #[test]
    fn a_leave_and_a_kick_hand_the_script_the_nick_to_take_out_of_the_members() {
        let room = RoomName::new("#r").unwrap();
        let left = script_args(
            "#r",
            RoomEvent::Left {
                room: room.clone(),
                nick: Nick::new("bob").unwrap(),
                reason: chat_protocol::LeaveReason::Disconnected,
            },
        );
        assert_eq!(
            (left[0].as_str(), left[2].as_str(), left.len()),
            ("leave", "bob", 3)
        );
        let kicked = script_args(
            "#r",
            RoomEvent::Kicked {
                room,
                nick: Nick::new("Carol").unwrap(),
                by: Nick::new("alice").unwrap(),
                reason: None,
            },
        );
        assert_eq!(
            (kicked[0].as_str(), kicked[2].as_str(), kicked.len()),
            ("leave", "Carol", 3)
        );
    }

    #[test]
    fn bans_and_settings_hand_the_script_what_redis_keeps() {
        let mask = chat_protocol::Mask::parse("troll").unwrap();
        let ban = script_args(
            "#r",
            RoomEvent::BanChanged {
                room: RoomName::new("#r").unwrap(),
                mask: mask.clone(),
                by: Nick::new("alice").unwrap(),
                on: true,
                duration: None,
                at: 7,
                until: Some(9),
            },
        );
        assert_eq!(ban[0], "ban");
        assert_eq!(ban[2], "troll!*@*");
        let kept: BanInfo = serde_json::from_str(&ban[3]).unwrap();
        assert_eq!((kept.at, kept.until, kept.by.as_str()), (7, Some(9), "alice"));
        assert_eq!(&ban[4..], ["7", &MAX_BANS.to_string(), "5"]);
        let key = script_args(
            "#r",
            RoomEvent::SettingChanged {
                room: RoomName::new("#r").unwrap(),
                by: Nick::new("alice").unwrap(),
                setting: RoomSetting::Key(None),
            },
        );
        assert_eq!(
            (key[0].as_str(), key[2].as_str(), key[3].as_str()),
            ("setting", "key", "")
        );
    }

    #[test]
    fn kept_settings_and_bans_read_back_without_the_expired() {
        let ban = |mask: &str, at: u64, until: Option<u64>| {
            let info = BanInfo {
                mask: chat_protocol::Mask::parse(mask).unwrap(),
                by: "alice".into(),
                at,
                until,
            };
            (info.mask.to_string(), serde_json::to_string(&info).unwrap())
        };
        let bans: HashMap<String, String> = [
            ban("late", 3, None),
            ban("early", 1, Some(1000)),
            ban("gone", 2, Some(10)),
            ("broken".to_string(), "{".to_string()),
        ]
        .into_iter()
        .collect();
        let settings = fields(&[
            ("moderated", "1"),
            ("key", "sesame"),
            ("hidden", "0"),
            ("seq", "12"),
        ]);
        let (seq, read, list) = moderation_of(&settings, &bans, 100).unwrap();
        assert_eq!(seq, 12);
        assert_eq!(
            read,
            RoomSettings {
                moderated: true,
                topic_locked: false,
                key: Some("sesame".into()),
                hidden: false,
            }
        );
        let masks: Vec<String> = list.iter().map(|b| b.mask.to_string()).collect();
        assert_eq!(
            masks,
            ["early!*@*", "late!*@*"],
            "oldest first, expired and broken left out"
        );
        assert_eq!(moderation_of(&HashMap::new(), &bans, 100), None, "never changed");
    }

    #[test]
    fn no_topic_or_a_malformed_one_reads_as_none_not_a_panic() {
        assert_eq!(topic_of(&HashMap::new()), None);
        let good = [("text", "t"), ("by", "alice"), ("at", "1"), ("seq", "2")];
        for broken in [("by", "not a nick!"), ("at", "soon"), ("seq", "-1"), ("seq", "")] {
            let mut f = fields(&good);
            f.insert(broken.0.to_string(), broken.1.to_string());
            assert_eq!(topic_of(&f), None, "{broken:?}");
        }
        for missing in ["text", "by", "at", "seq"] {
            let mut f = fields(&good);
            f.remove(missing);
            assert_eq!(topic_of(&f), None, "without {missing}");
        }
    }
}
