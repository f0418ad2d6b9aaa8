//! Who may connect: the limits on connections per address, per network and
//! in all, and the throttle on new connections.
//!
//! IRC servers learned these the hard way, and chat-server does as they
//! do, with the numbers written next to their defaults in
//! [`crate::config`]:
//! - at most `--max-per-ip` connections from one address and
//!   `--max-per-net` from one network (an IPv4 /24, an IPv6 /64 by
//!   default: one IPv6 host owns a whole /64, so counting addresses alone
//!   would let it open as many as it likes);
//! - at most `--connect-burst` new connections at once from one address,
//!   then `--connect-rate` a second, and four times that from one network:
//!   a handful of hosts cannot fill the server in seconds, and whoever is
//!   throttled is told so and may come back;
//! - the web listeners' connections draw on a throttle of their own,
//!   [`crate::config::WEB_THROTTLE_FACTOR`] times as generous: a page load
//!   is five connections (the page, its script, style and icon, each
//!   closed once answered, and the socket), so a few reloads would
//!   otherwise use up a chat client's allowance and leave the page half
//!   loaded. The limits on connections at once are shared by every
//!   listener;
//! - on a full server, the connection that has been here longest without
//!   saying anything makes room for a newcomer (see
//!   [`crate::net::acceptor`]): room goes to people who talk over sockets
//!   that are only held open.
//!
//! This module only counts and decides; the acceptor owns the sockets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::ErrorKind;

use crate::config::{Config, NET_THROTTLE_FACTOR, WEB_THROTTLE_FACTOR};
use crate::net::flood::TokenBucket;
use crate::ops::stats::CloseReason;

/// How often the throttles forget addresses that have not connected for a
/// while (their allowance is full again): the tables hold only recent
/// comers.
const FORGET_INTERVAL: Duration = Duration::from_secs(10);

/// Most addresses (and, separately, networks) whose throttle is kept at
/// once. Past this, addresses with a full allowance are forgotten at once;
/// if none is, new addresses are throttled until some are: an attacker
/// with more addresses than this cannot grow the table further.
const MAX_TRACKED: usize = 65_536;

/// When an I/O thread's longest-silent connection came (the one that
/// would make room for a newcomer on a full server), shared by that thread
/// with the acceptor, which sends a newcomer to the thread whose silent
/// connection is the oldest.
#[derive(Debug, Clone)]
pub struct OldestSilent {
    /// What the instants are counted from.
    epoch: Instant,
    /// Milliseconds from `epoch` to when the connection came; `u64::MAX`
    /// when the thread has no silent connection.
    since: Arc<AtomicU64>,
}

impl OldestSilent {
    /// None yet, counting from `epoch` (the same for every thread).
    pub fn new(epoch: Instant) -> OldestSilent {
        OldestSilent {
            epoch,
            since: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }

    /// Records when the thread's longest-silent connection came, if it has
    /// one.
    pub fn set(&self, since: Option<Instant>) {
        let value = since.map_or(u64::MAX, |at| {
            u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX - 1)
        });
        self.since.store(value, Ordering::Relaxed);
    }

    /// When the thread's longest-silent connection came, in milliseconds
    /// from the epoch; `None` when it has none.
    pub fn get(&self) -> Option<u64> {
        let value = self.since.load(Ordering::Relaxed);
        (value != u64::MAX).then_some(value)
    }
}

/// A network: an address with all but its first `prefix` bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Network(IpAddr);

impl Network {
    /// The network of `ip` under the configured prefix lengths. An IPv4
    /// address carried in IPv6 (`::ffff:a.b.c.d`) counts as IPv4.
    pub fn of(ip: IpAddr, v4_prefix: u8, v6_prefix: u8) -> Network {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(v4_prefix.min(32)))
                    .unwrap_or(0);
                Network(IpAddr::V4((u32::from(v4) & mask).into()))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(v6_prefix.min(128)))
                    .unwrap_or(0);
                Network(IpAddr::V6((u128::from(v6) & mask).into()))
            }
        }
    }
}

/// Why a connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `--max-clients` are connected and none may make room.
    Full,
    /// `--max-per-ip` are connected from its address.
    PerIp,
    /// `--max-per-net` are connected from its network.
    PerNet,
    /// Its address or network opened too many connections lately.
    Throttled,
    /// A server ban names its address (`chat-server ctl ban`).
    Banned,
}

impl Refusal {
    /// Every kind, each with its place in [`Refusal::index`].
    pub const ALL: [Refusal; 5] = [
        Refusal::Full,
        Refusal::PerIp,
        Refusal::PerNet,
        Refusal::Throttled,
        Refusal::Banned,
    ];

    /// Its place in [`Refusal::ALL`].
    pub fn index(self) -> usize {
        match self {
            Refusal::Full => 0,
            Refusal::PerIp => 1,
            Refusal::PerNet => 2,
            Refusal::Throttled => 3,
            Refusal::Banned => 4,
        }
    }

    /// What a summary of many says they were.
    pub fn summary(self) -> &'static str {
        match self {
            Refusal::Full => "connections refused: server full",
            Refusal::PerIp => "connections refused: too many connections from their address",
            Refusal::PerNet => "connections refused: too many connections from their network",
            Refusal::Throttled => {
                "connections refused: too many new connections from their address or network"
            }
            Refusal::Banned => "connections refused: a server ban names their address",
        }
    }

    /// What the client is told.
    pub fn error(self) -> ErrorKind {
        match self {
            Refusal::Full => ErrorKind::ServerFull,
            Refusal::PerIp => ErrorKind::TooManyFromAddress,
            Refusal::PerNet => ErrorKind::TooManyFromNetwork,
            Refusal::Throttled => ErrorKind::ConnectingTooFast,
            Refusal::Banned => ErrorKind::BannedFromServer,
        }
    }

    /// How the metrics count it.
    pub fn close_reason(self) -> CloseReason {
        match self {
            Refusal::Full => CloseReason::RefusedFull,
            Refusal::PerIp => CloseReason::RefusedPerIp,
            Refusal::PerNet => CloseReason::RefusedPerNet,
            Refusal::Throttled => CloseReason::RefusedThrottled,
            Refusal::Banned => CloseReason::RefusedBanned,
        }
    }

    /// For the log.
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::Full => "server full",
            Refusal::PerIp => "too many connections from its address",
            Refusal::PerNet => "too many connections from its network",
            Refusal::Throttled => "too many new connections from its address or network",
            Refusal::Banned => "a server ban names its address",
        }
    }
}

/// The connection counts and throttles, by address and by network.
#[derive(Debug)]
pub struct Admission {
    max_per_ip: usize,
    max_per_net: usize,
    v4_prefix: u8,
    v6_prefix: u8,
    /// Connections given out and not yet released, per address.
    per_ip: HashMap<IpAddr, usize>,
    /// The same per network.
    per_net: HashMap<Network, usize>,
    /// New-connection allowance per address and per network; `None` when
    /// the throttle is off.
    throttle: Option<Throttle>,
    /// The same for the web listeners' connections.
    web_throttle: Option<Throttle>,
}

/// Which throttle a new connection draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// A chat listener: the line protocol, IRC (each over TLS or not).
    Chat,
    /// A web listener: page loads and WebSockets.
    Web,
}

#[derive(Debug)]
struct Throttle {
    rate: u32,
    burst: u32,
    by_ip: HashMap<IpAddr, TokenBucket>,
    by_net: HashMap<Network, TokenBucket>,
    next_forget: Instant,
}

impl Admission {
    /// The limits `config` sets.
    pub fn new(config: &Config) -> Admission {
        Admission {
            max_per_ip: config.max_per_ip,
            max_per_net: config.max_per_net,
            v4_prefix: config.net_prefix_v4,
            v6_prefix: config.net_prefix_v6,
            per_ip: HashMap::new(),
            per_net: HashMap::new(),
            throttle: (config.connect_rate > 0)
                .then(|| Throttle::new(config.connect_rate, config.connect_burst)),
            web_throttle: (config.connect_rate > 0).then(|| {
                Throttle::new(
                    config.connect_rate.saturating_mul(WEB_THROTTLE_FACTOR),
                    config.connect_burst.saturating_mul(WEB_THROTTLE_FACTOR),
                )
            }),
        }
    }

    fn network(&self, ip: IpAddr) -> Network {
        Network::of(ip, self.v4_prefix, self.v6_prefix)
    }

    /// Whether a new connection from `ip` may come in, as far as its
    /// address and network go; if so it is counted (release it with
    /// [`Admission::release`]).
    ///
    /// # Errors
    /// The [`Refusal`] when it may not.
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        self.admit_at(Door::Chat, ip, now)
    }

    /// As [`Admission::admit`], for a connection that came in at `door`.
    ///
    /// # Errors
    /// The [`Refusal`] when it may not.
    pub fn admit_at(&mut self, door: Door, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let ip = ip.to_canonical();
        let net = self.network(ip);
        if self.max_per_ip > 0 && self.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        if self.max_per_net > 0 && self.per_net.get(&net).copied().unwrap_or(0) >= self.max_per_net {
            return Err(Refusal::PerNet);
        }
        let throttle = match door {
            Door::Chat => &mut self.throttle,
            Door::Web => &mut self.web_throttle,
        };
        if let Some(throttle) = throttle {
            if !throttle.allow(ip, net, now) {
                return Err(Refusal::Throttled);
            }
        }
        *self.per_ip.entry(ip).or_insert(0) += 1;
        *self.per_net.entry(net).or_insert(0) += 1;
        Ok(())
    }

    /// Counts a connection from `ip` that came in before this process
    /// started (carried over a restart, see [`crate::upgrade`]): it holds
    /// its place whatever the limits say now, and draws on no throttle.
    pub fn occupy(&mut self, ip: IpAddr) {
        let ip = ip.to_canonical();
        let net = self.network(ip);
        *self.per_ip.entry(ip).or_insert(0) += 1;
        *self.per_net.entry(net).or_insert(0) += 1;
    }

    /// A connection from `ip` has gone.
    pub fn release(&mut self, ip: IpAddr) {
        let ip = ip.to_canonical();
        let net = self.network(ip);
        decrement(&mut self.per_ip, &ip);
        decrement(&mut self.per_net, &net);
    }

    /// How many addresses and networks the tables hold, for tests.
    pub fn tracked(&self) -> (usize, usize) {
        [&self.throttle, &self.web_throttle]
            .into_iter()
            .flatten()
            .fold((self.per_ip.len(), self.per_net.len()), |(ips, nets), t| {
                (ips.max(t.by_ip.len()), nets.max(t.by_net.len()))
            })
    }
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(key);
        }
    }
}

impl Throttle {
    fn new(rate: u32, burst: u32) -> Throttle {
        Throttle {
            rate,
            burst: burst.max(1),
            by_ip: HashMap::new(),
            by_net: HashMap::new(),
            next_forget: Instant::now(),
        }
    }

    /// Takes one new connection's worth from the address's and the
    /// network's allowance, if both have it.
    fn allow(&mut self, ip: IpAddr, net: Network, now: Instant) -> bool {
        if now >= self.next_forget || self.by_ip.len() >= MAX_TRACKED || self.by_net.len() >= MAX_TRACKED {
            self.forget_full(now);
        }
        let (rate, burst) = (self.rate, self.burst);
        let net_rate = rate.saturating_mul(NET_THROTTLE_FACTOR);
        let net_burst = burst.saturating_mul(NET_THROTTLE_FACTOR);
        if (!self.by_ip.contains_key(&ip) && self.by_ip.len() >= MAX_TRACKED)
            || (!self.by_net.contains_key(&net) && self.by_net.len() >= MAX_TRACKED)
        {
            return false;
        }
        let ip_bucket = self
            .by_ip
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(rate, burst, now));
        if !ip_bucket.has_token(now) {
            return false;
        }
        let net_bucket = self
            .by_net
            .entry(net)
            .or_insert_with(|| TokenBucket::new(net_rate, net_burst, now));
        if !net_bucket.try_take(now) {
            return false;
        }
        ip_bucket.try_take(now)
    }

    /// Forgets the addresses and networks whose allowance is full: they
    /// have not connected lately, and a fresh bucket is the same.
    fn forget_full(&mut self, now: Instant) {
        self.by_ip.retain(|_, bucket| !bucket.is_full(now));
        self.by_net.retain(|_, bucket| !bucket.is_full(now));
        self.next_forget = crate::net::timers::later(now, FORGET_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(per_ip: usize, per_net: usize, rate: u32, burst: u32) -> Config {
        Config {
            max_per_ip: per_ip,
            max_per_net: per_net,
            connect_rate: rate,
            connect_burst: burst,
            ..Config::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_are_addresses_under_the_prefix() {
        assert_eq!(Network::of(ip("192.0.2.77"), 24, 64), Network(ip("192.0.2.0")));
        assert_eq!(Network::of(ip("192.0.2.77"), 32, 64), Network(ip("192.0.2.77")));
        assert_eq!(Network::of(ip("192.0.2.77"), 0, 64), Network(ip("0.0.0.0")));
        assert_eq!(
            Network::of(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), 24, 64),
            Network(ip("2001:db8:1:2::"))
        );
        assert_eq!(
            Network::of(ip("2001:db8::1"), 24, 128),
            Network(ip("2001:db8::1"))
        );
        assert_eq!(
            Network::of(ip("::ffff:192.0.2.77"), 24, 64),
            Network(ip("192.0.2.0")),
            "IPv4 carried in IPv6 is IPv4"
        );
    }

    #[test]
    fn per_address_and_per_network_limits_count_and_release() {
        let now = Instant::now();
        let mut admission = Admission::new(&config(2, 3, 0, 1));
        assert_eq!(admission.admit(ip("10.0.0.1"), now), Ok(()));
        assert_eq!(admission.admit(ip("10.0.0.1"), now), Ok(()));
        assert_eq!(admission.admit(ip("10.0.0.1"), now), Err(Refusal::PerIp));
        assert_eq!(admission.admit(ip("10.0.0.2"), now), Ok(()));
        assert_eq!(admission.admit(ip("10.0.0.3"), now), Err(Refusal::PerNet));
        assert_eq!(admission.admit(ip("10.0.1.3"), now), Ok(()), "another /24");
        admission.release(ip("10.0.0.1"));
        assert_eq!(admission.admit(ip("10.0.0.3"), now), Ok(()));
        for a in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.3"] {
            admission.release(ip(a));
        }
        assert_eq!(
            admission.tracked(),
            (0, 0),
            "nothing kept for addresses that left"
        );
    }

    #[test]
    fn one_ipv6_host_cannot_escape_the_limit_with_many_addresses() {
        let now = Instant::now();
        let mut admission = Admission::new(&config(32, 128, 0, 1));
        let admitted = (0..1000u16)
            .filter(|n| admission.admit(ip(&format!("2001:db8::{n:x}")), now).is_ok())
            .count();
        assert_eq!(admitted, 128);
    }

    #[test]
    fn new_connections_are_throttled_per_address_and_per_network() {
        let start = Instant::now();
        let mut admission = Admission::new(&config(0, 0, 2, 4));
        let from = |a: &mut Admission, addr: &str, at: Instant| a.admit(ip(addr), at);
        for _ in 0..4 {
            assert_eq!(from(&mut admission, "10.0.0.1", start), Ok(()));
        }
        assert_eq!(from(&mut admission, "10.0.0.1", start), Err(Refusal::Throttled));
        // The network allows four times an address's burst: 16, of which
        // four are used.
        let admitted = (2..=40)
            .filter(|n| from(&mut admission, &format!("10.0.0.{n}"), start).is_ok())
            .count();
        assert_eq!(admitted, 16 - 4);
        assert_eq!(from(&mut admission, "10.0.1.1", start), Ok(()), "another network");
        // Half a second brings one back to the address, at 2 a second, and
        // four to the network, at 8.
        let later = start + Duration::from_millis(500);
        assert_eq!(from(&mut admission, "10.0.0.1", later), Ok(()));
        assert_eq!(from(&mut admission, "10.0.0.1", later), Err(Refusal::Throttled));
        let admitted = (41..=80)
            .filter(|n| from(&mut admission, &format!("10.0.0.{n}"), later).is_ok())
            .count();
        assert_eq!(admitted, 3);
    }

    #[test]
    fn page_loads_draw_on_a_throttle_of_their_own_eight_times_as_generous() {
        let start = Instant::now();
        let mut admission = Admission::new(&config(0, 0, 2, 4));
        for _ in 0..4 {
            assert_eq!(admission.admit(ip("10.0.0.1"), start), Ok(()));
        }
        assert_eq!(admission.admit(ip("10.0.0.1"), start), Err(Refusal::Throttled));
        // The chat doors' allowance is used up; the web's is whole: a burst
        // of 32 (six page loads), then 16 a second.
        for n in 0..32 {
            assert_eq!(
                admission.admit_at(Door::Web, ip("10.0.0.1"), start),
                Ok(()),
                "{n}"
            );
        }
        assert_eq!(
            admission.admit_at(Door::Web, ip("10.0.0.1"), start),
            Err(Refusal::Throttled)
        );
        let later = start + Duration::from_millis(500);
        let admitted = (0..20)
            .filter(|_| admission.admit_at(Door::Web, ip("10.0.0.1"), later).is_ok())
            .count();
        assert_eq!(admitted, 8);
        // And it does not feed the chat doors'.
        assert_eq!(admission.admit(ip("10.0.0.1"), later), Ok(()));
        assert_eq!(admission.admit(ip("10.0.0.1"), later), Err(Refusal::Throttled));
    }

    #[test]
    fn the_throttle_forgets_quiet_addresses() {
        let start = Instant::now();
        let mut admission = Admission::new(&config(0, 0, 2, 4));
        for n in 0..100 {
            admission.admit(ip(&format!("10.{n}.0.1")), start).unwrap();
            admission.release(ip(&format!("10.{n}.0.1")));
        }
        assert_eq!(admission.tracked(), (100, 100));
        admission
            .admit(ip("10.200.0.1"), start + Duration::from_secs(60))
            .unwrap();
        assert_eq!(admission.tracked(), (1, 1), "only the recent comer is kept");
    }
}
