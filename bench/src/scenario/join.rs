//! Join storm: K clients connect (into the lobby), then all send `/join`
//! to one room at once. It measures how long until every client has its
//! `-- you joined` confirmation, how long until the join announcements
//! stop flowing, and the server's memory before and after.
//!
//! Announcing each join to every member makes a naive server quadratic:
//! K joins send K²/2 notices. This is the scenario that shows it.
//! `ncat --chat` has no rooms; against it the storm is the connecting
//! itself (each connect is announced to everyone, with the full list of
//! users), so its "join" time is its connect time. The same holds for
//! tokio's chat example (one room; each username announced to everyone).

use serde::Serialize;
use std::time::Instant;

use super::pool::{self, Pool};
use crate::args::{JoinStormArgs, TargetArgs};
use crate::engine::Flavor;
use crate::error::Result;
use crate::report::{self, Header};
use crate::target::Target;

/// The JSON line of a join storm.
#[derive(Debug, Clone, Serialize)]
pub struct JoinReport {
    /// Common fields.
    #[serde(flatten)]
    pub header: Header,
    /// Clients asked for.
    pub clients: u32,
    /// Clients connected.
    pub connected: usize,
    /// Seconds to connect them (and for their connect notices to drain).
    pub connect_s: f64,
    /// Seconds from the `/join`s to the last confirmation.
    pub join_s: f64,
    /// Every client got its confirmation in time.
    pub all_joined: bool,
    /// Seconds from the `/join`s until announcements stopped arriving.
    pub settled_s: f64,
    /// Server RSS before the joins, KiB.
    pub rss_before_kib: Option<u64>,
    /// Server RSS after, KiB.
    pub rss_after_kib: Option<u64>,
    /// Clients that died.
    pub died: usize,
    /// Worker processes used.
    pub workers: u16,
}

/// Opens `n` connections spread over `pools`.
///
/// # Errors
/// When a worker fails.
pub fn open_spread(pools: &mut [Pool], n: usize) -> Result<pool::Held> {
    let k = pools.len().max(1);
    for (i, p) in pools.iter_mut().enumerate() {
        let share = n / k + usize::from(i < n % k);
        p.request(&format!("open {share}"))?;
    }
    let mut total = pool::Held {
        complete: true,
        ..pool::Held::default()
    };
    for p in pools.iter_mut() {
        total.add(p.answer()?);
    }
    Ok(total)
}

/// Runs the join storm.
///
/// # Errors
/// When the pools cannot be started.
pub fn run(target: &mut Target, args: &TargetArgs, j: &JoinStormArgs) -> Result<()> {
    let mut pools = Pool::start(args, target, j.workers, j.timeout)?;
    let clients = usize::try_from(j.clients).unwrap_or(usize::MAX);
    let started = Instant::now();
    let opened = open_spread(&mut pools, clients)?;
    pool::broadcast(&mut pools, "settle")?;
    let connect_s = started.elapsed().as_secs_f64();
    let rss_before = target.rss_kib();
    let (join_s, all_joined, settled_s, died) = match target.flavor {
        Flavor::ChatServer | Flavor::Ngircd => {
            let t0 = Instant::now();
            let joined = pool::broadcast(&mut pools, &format!("join {}", super::room_name()))?;
            let join_s = t0.elapsed().as_secs_f64();
            let settled = pool::broadcast(&mut pools, "settle")?;
            (join_s, joined.complete, t0.elapsed().as_secs_f64(), settled.died)
        }
        Flavor::Ncat | Flavor::TokioChat => (connect_s, opened.live == clients, connect_s, opened.died),
    };
    let r = JoinReport {
        header: Header::new("join-storm", args, target),
        clients: j.clients,
        connected: opened.live,
        connect_s,
        join_s,
        all_joined,
        settled_s,
        rss_before_kib: rss_before,
        rss_after_kib: target.rss_kib(),
        died,
        workers: j.workers,
    };
    drop(pools);
    let summary = [
        format!(
            "join-storm against {} over {} ({}): {} of {} clients connected in {:.2} s",
            r.header.target, r.header.protocol, r.header.server, r.connected, r.clients, r.connect_s
        ),
        format!(
            "  all joined: {} after {:.2} s; announcements drained after {:.2} s; {} died",
            r.all_joined, r.join_s, r.settled_s, r.died
        ),
        format!(
            "  server RSS: {} KiB before the joins, {} KiB after",
            r.rss_before_kib.map_or("?".into(), |v| v.to_string()),
            r.rss_after_kib.map_or("?".into(), |v| v.to_string())
        ),
    ];
    report::emit(&summary, &r)
}
