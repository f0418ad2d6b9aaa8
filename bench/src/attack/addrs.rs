//! Which loopback source address each connection of an attack comes from.
//!
//! All of 127.0.0.0/8 reaches the loopback interface on Linux, so binding
//! a socket to 127.x.y.z before connecting makes it look, to the daemon,
//! like a host of its own. The attacks use that two ways:
//!
//! - **Roles** on 127.0.0.x: the pair of good users, the attacker's one
//!   address, the blaster, and so on, each on an address nobody else
//!   uses, so the per-address limit counts exactly what the issue
//!   describes ("32 connections from ONE address").
//! - **Pools** of many addresses, `127.P.*.*`, for crowds that stand for
//!   many hosts (fillers, slowloris). Consecutive addresses of a pool are
//!   put in different /24 networks (`127.P.(k mod 256).(1 + k div 256)`),
//!   so a daemon that throttles per /24 sees a crowd spread over many
//!   networks, as from the Internet, rather than one network.
//!
//! Each address has its own ~28,000 ephemeral ports towards the daemon's
//! one port, far more than any attack opens from one address.

use std::net::Ipv4Addr;

/// The first of the pair of good users (the second is the next address).
pub const PAIR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The second of the pair of good users.
pub const PAIR_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// The attacker's single address: `/who` stormers, flooders, the log
/// flood's room.
pub const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
/// The client that sends `/quit` and then blasts.
pub const BLASTER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
/// The client whose `/quit` reason is long.
pub const QUITTER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);
/// The address that goes over `--max-per-ip`.
pub const REFUSED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 7);

/// A pool of addresses: fresh users probing the daemon, one address each.
pub const POOL_PROBES: u8 = 9;
/// A pool: idle lobby members and room owners.
pub const POOL_FILLERS: u8 = 10;
/// A pool: clients of the queue-memory attack.
pub const POOL_CLIENTS: u8 = 11;
/// The first of the pools of quit-hold workers (one each, in order).
pub const POOL_HOLD: u8 = 12;
/// A pool: slowloris connections.
pub const POOL_SLOW: u8 = 20;
/// A pool: slowloris drippers and the silent controls.
pub const POOL_DRIP: u8 = 21;
/// A pool: the senders of the queue-memory attack.
pub const POOL_SENDERS: u8 = 22;

/// Connections per address for crowds that stand for many ordinary hosts
/// (idle members, room owners, readers): half the default per-address
/// limit of 32, few enough that a daemon that also throttles new
/// connections per address would likely let a whole address in at once.
/// They are not what an attack is about; the attackers' own addresses are.
pub const SPREAD: usize = 16;

/// Most addresses of one pool: the last octet stays in 1..=254.
pub const POOL_SIZE: usize = 256 * 254;

/// Where a group of connections comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sources {
    /// All from this address.
    Fixed(Ipv4Addr),
    /// From pool `pool`, `per_addr` connections per address, starting at
    /// the pool's address number `first`.
    Pool {
        /// The second octet of the pool.
        pool: u8,
        /// Connections per address (at least 1).
        per_addr: usize,
        /// The first address number used.
        first: usize,
    },
}

impl Sources {
    /// `per_addr` connections per address of `pool`, from its start.
    pub fn pool(pool: u8, per_addr: usize) -> Sources {
        Sources::Pool {
            pool,
            per_addr,
            first: 0,
        }
    }

    /// The source of connection `index` of the group.
    pub fn addr(&self, index: usize) -> Ipv4Addr {
        match *self {
            Sources::Fixed(ip) => ip,
            Sources::Pool {
                pool,
                per_addr,
                first,
            } => pool_addr(pool, first.saturating_add(index / per_addr.max(1))),
        }
    }

    /// Distinct addresses used by `count` connections.
    pub fn addresses(&self, count: usize) -> usize {
        match *self {
            Sources::Fixed(_) => usize::from(count > 0),
            Sources::Pool { per_addr, .. } => count.div_ceil(per_addr.max(1)),
        }
    }
}

/// Address number `k` of `pool`: `127.pool.(k mod 256).(1 + k div 256)`,
/// wrapping past [`POOL_SIZE`].
pub fn pool_addr(pool: u8, k: usize) -> Ipv4Addr {
    let k = k % POOL_SIZE;
    // k mod 256 < 256 and 1 + k div 256 <= 254: both fit a u8.
    let third = u8::try_from(k % 256).unwrap_or(0);
    let fourth = u8::try_from(1 + k / 256).unwrap_or(1);
    Ipv4Addr::new(127, pool, third, fourth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_pool_addresses_are_in_different_networks() {
        assert_eq!(pool_addr(10, 0), Ipv4Addr::new(127, 10, 0, 1));
        assert_eq!(pool_addr(10, 1), Ipv4Addr::new(127, 10, 1, 1));
        assert_eq!(pool_addr(10, 255), Ipv4Addr::new(127, 10, 255, 1));
        assert_eq!(pool_addr(10, 256), Ipv4Addr::new(127, 10, 0, 2));
        assert_eq!(pool_addr(10, POOL_SIZE - 1), Ipv4Addr::new(127, 10, 255, 254));
        assert_eq!(pool_addr(10, POOL_SIZE), pool_addr(10, 0));
    }

    #[test]
    fn a_pool_gives_per_addr_connections_to_each_address() {
        let sources = Sources::pool(10, 32);
        assert_eq!(sources.addr(0), sources.addr(31));
        assert_ne!(sources.addr(31), sources.addr(32));
        assert_eq!(sources.addresses(9000), 282);
        assert_eq!(Sources::Fixed(ATTACKER).addresses(32), 1);
        let later = Sources::Pool {
            pool: 10,
            per_addr: 1,
            first: 5,
        };
        assert_eq!(later.addr(0), pool_addr(10, 5));
    }
}
