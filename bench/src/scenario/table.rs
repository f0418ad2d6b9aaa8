//! `chat-bench table`: the markdown comparison table from the JSON lines
//! of earlier runs.
//!
//! Runs are grouped by their `--label` (one label per scenario setting),
//! in the order the labels first appear; within a group the chat-server
//! and the ncat runs are put side by side with their ratio, chat-server ÷
//! ncat (above 1 is better for throughput, below 1 is better for latency,
//! time and memory). When any run is of tokio's chat example (target
//! `tokio-chat`), the table has a "tokio chat" column and a chat-server ÷
//! tokio ratio as well; without such runs it is as it always was.
//!
//! Runs over TLS (issue 15: a `transport` of `tls`) get a table of their
//! own ([`render_tls`]): chat-server over TLS and over plain TCP, `ncat
//! --ssl` and plain ncat side by side, with the two ratios the issue's
//! targets are about (chat-server's TLS figure ÷ its TCP one, and
//! chat-server ÷ ncat, both over TLS), the handshakes rows, each server's
//! CPU by thread, and the storms in a table after it.
//!
//! Runs over IRC (issue 16: a `protocol` of `irc` or `mixed`, or target
//! `ngircd`) get a table of their own too ([`render_irc`]): chat-server's
//! IRC listener, ngircd, chat-server's line protocol and a room mixing
//! both side by side, with chat-server IRC ÷ ngircd (the issue's target)
//! and chat-server IRC ÷ line, and each server's CPU by thread. A run
//! without a `protocol` (older JSON lines) spoke the line protocol.
//!
//! Runs over WebSocket (issue 18: a `protocol` of `web` or `mixed-web`)
//! get theirs ([`render_web`]): chat-server's line protocol, its WebSocket,
//! a room mixing both (all receivers, then its line and its WebSocket
//! receivers apart, from the run's `by_kind`) and ncat side by side, with
//! WebSocket ÷ line and chat-server line ÷ ncat.
//!
//! Runs over a cluster (issue 17: a `cluster_instances` field) get theirs
//! ([`render_cluster`]): a row per run, single instance or N through
//! Redis, with Redis's CPU and each cluster's share of the single
//! instance's deliveries/s.

use std::fs;

use serde_json::Value;

use crate::args::TableArgs;
use crate::error::Result;

/// Reads every JSON object line of `files`.
fn read_runs(args: &TableArgs) -> Result<Vec<Value>> {
    let mut runs = Vec::new();
    for file in &args.files {
        let text = fs::read_to_string(file)?;
        runs.extend(
            text.lines()
                .filter(|l| l.starts_with('{'))
                .filter_map(|l| serde_json::from_str::<Value>(l).ok()),
        );
    }
    Ok(runs)
}

fn num(run: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(run, |v, key| v.get(key))?.as_f64()
}

fn text(run: &Value, key: &str) -> String {
    match run.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M/s", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k/s", v / 1e3)
    } else {
        format!("{v:.0} /s")
    }
}

fn micros(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

fn whole(v: f64) -> String {
    format!("{v:.0}")
}

fn plain(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// One measure: its name, where it is in the JSON, how to print it.
type Measure = (&'static str, &'static [&'static str], fn(f64) -> String);

fn measures(scenario: &str) -> &'static [Measure] {
    match scenario {
        "fanout" | "fixed-rate" => &[
            ("deliveries/s", &["deliveries_per_s"], rate),
            ("latency p50", &["latency", "p50_us"], micros),
            ("latency p99", &["latency", "p99_us"], micros),
            ("latency p99.9", &["latency", "p999_us"], micros),
            ("lost + duplicated + out of order", &["integrity", "lost"], plain),
        ],
        "idle" => &[
            ("connections held", &["held"], plain),
            (
                "server RSS per connection (bytes)",
                &["rss_per_conn_bytes"],
                whole,
            ),
            (
                "kernel slab per connection, both ends (bytes)",
                &["kernel", "slab_per_conn_bytes"],
                whole,
            ),
        ],
        "ramp" => &[
            ("most connections held", &["held_max"], plain),
            (
                "server RSS per connection (bytes)",
                &["rss_per_conn_bytes"],
                whole,
            ),
            (
                "kernel slab per connection, both ends (bytes)",
                &["kernel", "slab_per_conn_bytes"],
                whole,
            ),
        ],
        "join-storm" => &[
            ("clients connected", &["connected"], plain),
            ("seconds until all joined", &["join_s"], plain),
            ("seconds until announcements drained", &["settled_s"], plain),
            ("server RSS after (KiB)", &["rss_after_kib"], whole),
        ],
        "handshakes" => &[
            (
                "connections/s, each handshaken, welcomed, closed",
                &["per_s"],
                rate,
            ),
            ("connect to welcome p50", &["latency", "p50_us"], micros),
            ("connect to welcome p99", &["latency", "p99_us"], micros),
            ("failed", &["failed"], plain),
        ],
        _ => &[],
    }
}

/// The CPU rows of the TLS table: where in the JSON, and the row's name.
const CPU_ROWS: [(&str, &str); 2] = [
    ("server_cpu_pct", "server CPU, % of a core by thread"),
    ("generator_cpu_pct", "generator CPU, % of a core"),
];

/// The table of cluster runs (issue 17): per label, one row per run in
/// the order run, a single instance (`single`) or N instances through
/// Redis; room lines/s, deliveries/s, latency, integrity, the instances'
/// CPU (every thread of every instance, summed) and Redis's, and each
/// clustered run's deliveries/s as a share of the label's single
/// instance (the last one without `cluster_instances`).
fn render_cluster(runs: &[Value]) -> String {
    let mut out = String::from(
        "| scenario | instances | room lines/s | deliveries/s | p50 | p99 | lost + duplicated + out of order | \
         instances' CPU, % of a core | Redis CPU, % of a core | deliveries/s ÷ single |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for label in labels_of(runs.iter()) {
        let group: Vec<&Value> = runs.iter().filter(|r| text(r, "label") == label).collect();
        let single = group
            .iter()
            .rev()
            .find(|r| r.get("cluster_instances").is_none())
            .and_then(|r| num(r, &["deliveries_per_s"]));
        for (i, run) in group.iter().enumerate() {
            let instances = match num(run, &["cluster_instances"]) {
                Some(n) => format!("{n:.0} through Redis"),
                None => "single".to_string(),
            };
            let lines = match (num(run, &["lines_sent"]), num(run, &["active_s"])) {
                (Some(n), Some(s)) if s > 0.0 => rate(n / s),
                _ => "—".to_string(),
            };
            let cpu = run.get("server_cpu_pct").and_then(Value::as_object);
            let instances_cpu: f64 = cpu
                .map(|m| {
                    m.iter()
                        .filter(|(name, _)| *name != "redis-server")
                        .filter_map(|(_, pct)| pct.as_f64())
                        .sum()
                })
                .unwrap_or(0.0);
            let redis_cpu = cpu
                .and_then(|m| m.get("redis-server"))
                .and_then(Value::as_f64)
                .map_or("—".to_string(), |pct| format!("{pct:.0}"));
            let deliveries = num(run, &["deliveries_per_s"]);
            let share = match run.get("cluster_instances") {
                Some(_) => ratio(deliveries, single),
                None => "—".to_string(),
            };
            out.push_str(&format!(
                "| {} | {instances} | {lines} | {} | {} | {} | {} | {instances_cpu:.0} | {redis_cpu} | {share} |\n",
                if i == 0 { label.as_str() } else { "" },
                cell(Some(run), &["deliveries_per_s"], rate).0,
                cell(Some(run), &["latency", "p50_us"], micros).0,
                cell(Some(run), &["latency", "p99_us"], micros).0,
                cell(Some(run), &["integrity", "lost"], plain).0,
            ));
        }
    }
    out
}

/// A run's CPU map (`{"io-0": 38.2, ...}`) as a cell: `hub 6, io-0 38`.
fn cpu_cell(run: Option<&Value>, key: &str) -> String {
    let Some(map) = run.and_then(|r| r.get(key)).and_then(Value::as_object) else {
        return "—".to_string();
    };
    let parts: Vec<String> = map
        .iter()
        .filter_map(|(name, pct)| Some((name, pct.as_f64()?)))
        .filter(|(_, pct)| *pct >= 0.5)
        .map(|(name, pct)| format!("{name} {pct:.0}"))
        .collect();
    if parts.is_empty() {
        "0".to_string()
    } else {
        parts.join(", ")
    }
}

fn cell(run: Option<&Value>, path: &[&str], show: fn(f64) -> String) -> (String, Option<f64>) {
    let Some(run) = run else {
        return ("—".to_string(), None);
    };
    if path == ["integrity", "lost"] {
        let sum: f64 = ["lost", "duplicated", "out_of_order"]
            .iter()
            .filter_map(|k| num(run, &["integrity", k]))
            .sum();
        return (plain(sum), None);
    }
    match num(run, path) {
        Some(v) => (show(v), Some(v)),
        None => ("—".to_string(), None),
    }
}

/// `x ÷ y` as a table cell.
fn ratio(x: Option<f64>, y: Option<f64>) -> String {
    match (x, y) {
        (Some(x), Some(y)) if y != 0.0 => format!("{:.2}×", x / y),
        _ => "—".to_string(),
    }
}

/// The labels of `runs` in the order they first appear.
fn labels_of<'a>(runs: impl Iterator<Item = &'a Value>) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for run in runs {
        let label = text(run, "label");
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    labels
}

/// The protocol a run spoke: `line` when its JSON line predates IRC.
fn protocol(run: &Value) -> String {
    match text(run, "protocol") {
        p if p.is_empty() => "line".to_string(),
        p => p,
    }
}

/// The table as markdown: the TLS layout when any run is over TLS, the
/// IRC one when any run spoke IRC.
pub fn render(runs: &[Value]) -> String {
    if runs.iter().any(|r| r.get("cluster_instances").is_some()) {
        return render_cluster(runs);
    }
    if runs.iter().any(|r| text(r, "transport") == "tls") {
        return render_tls(runs);
    }
    if runs
        .iter()
        .any(|r| matches!(protocol(r).as_str(), "web" | "mixed-web"))
    {
        return render_web(runs);
    }
    if runs
        .iter()
        .any(|r| protocol(r) != "line" || text(r, "target") == "ngircd")
    {
        return render_irc(runs);
    }
    let labels = labels_of(runs.iter());
    let with_tokio = runs.iter().any(|r| text(r, "target") == "tokio-chat");
    let mut out = if with_tokio {
        String::from(
            "| scenario | measure | chat-server | ncat --chat | tokio chat | chat-server ÷ ncat | chat-server ÷ tokio |\n\
             |---|---|---|---|---|---|---|\n",
        )
    } else {
        String::from(
            "| scenario | measure | chat-server | ncat --chat | chat-server ÷ ncat |\n\
             |---|---|---|---|---|\n",
        )
    };
    for label in &labels {
        let in_group = |target: &str| {
            runs.iter()
                .rev()
                .find(|r| text(r, "label") == *label && text(r, "target") == target)
        };
        let (server, ncat, tokio) = (in_group("chat-server"), in_group("ncat"), in_group("tokio-chat"));
        let Some(scenario) = server.or(ncat).or(tokio).map(|r| text(r, "scenario")) else {
            continue;
        };
        let name = if label.is_empty() {
            scenario.clone()
        } else {
            label.clone()
        };
        for (i, (measure, path, show)) in measures(&scenario).iter().enumerate() {
            let (a, av) = cell(server, path, *show);
            let (b, bv) = cell(ncat, path, *show);
            let first = if i == 0 { name.as_str() } else { "" };
            let vs_ncat = ratio(av, bv);
            if with_tokio {
                let (c, cv) = cell(tokio, path, *show);
                let vs_tokio = ratio(av, cv);
                out.push_str(&format!(
                    "| {first} | {measure} | {a} | {b} | {c} | {vs_ncat} | {vs_tokio} |\n"
                ));
            } else {
                out.push_str(&format!("| {first} | {measure} | {a} | {b} | {vs_ncat} |\n"));
            }
        }
        // The cells after the first value column, left empty.
        let blanks = if with_tokio { " | | | | |" } else { " | | |" };
        for (who, run) in [("chat-server", server), ("ncat", ncat), ("tokio chat", tokio)] {
            if let Some(stopped) = run.and_then(|r| r.get("stopped")).and_then(Value::as_str) {
                out.push_str(&format!("|  | {who} ramp stopped | {stopped}{blanks}\n"));
            }
        }
    }
    out
}

/// The TLS comparison (issue 15) as markdown: for each label, chat-server
/// over TLS and TCP, `ncat --ssl` and ncat, the ratio of chat-server's
/// TLS figure to its TCP one, and chat-server ÷ ncat over TLS; then the
/// storms, one row each.
pub fn render_tls(runs: &[Value]) -> String {
    let mut out = String::from(
        "| scenario | measure | chat-server TLS | chat-server TCP | ncat --ssl | ncat | chat-server TLS ÷ TCP | chat-server ÷ ncat, TLS |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let (storms, others): (Vec<&Value>, Vec<&Value>) =
        runs.iter().partition(|r| text(r, "scenario") == "storm");
    for label in labels_of(others.iter().copied()) {
        let find = |target: &str, transport: &str| {
            others.iter().rev().copied().find(|r| {
                text(r, "label") == label && text(r, "target") == target && text(r, "transport") == transport
            })
        };
        let columns = [
            find("chat-server", "tls"),
            find("chat-server", "tcp"),
            find("ncat", "tls"),
            find("ncat", "tcp"),
        ];
        let Some(scenario) = columns.iter().flatten().next().map(|r| text(r, "scenario")) else {
            continue;
        };
        let name = if label.is_empty() {
            scenario.clone()
        } else {
            label.clone()
        };
        let mut first = name.as_str();
        for (measure, path, show) in measures(&scenario) {
            let cells: Vec<(String, Option<f64>)> =
                columns.iter().map(|run| cell(*run, path, *show)).collect();
            let value = |i: usize| cells.get(i).and_then(|c| c.1);
            let shown = |i: usize| cells.get(i).map_or("—", |c| c.0.as_str());
            out.push_str(&format!(
                "| {first} | {measure} | {} | {} | {} | {} | {} | {} |\n",
                shown(0),
                shown(1),
                shown(2),
                shown(3),
                ratio(value(0), value(1)),
                ratio(value(0), value(2)),
            ));
            first = "";
        }
        for (key, measure) in CPU_ROWS {
            let cells: Vec<String> = columns.iter().map(|run| cpu_cell(*run, key)).collect();
            // Scenarios that do not measure CPU (idle) get no such row.
            if cells.iter().any(|c| c != "—") {
                out.push_str(&format!("|  | {measure} | {} | — | — |\n", cells.join(" | ")));
            }
        }
    }
    if !storms.is_empty() {
        out.push_str(&render_storms(&storms));
    }
    out
}

/// The IRC comparison (issue 16) as markdown: for each label, chat-server
/// over IRC, ngircd, chat-server over its line protocol and chat-server
/// with a room of both, the ratios chat-server IRC ÷ ngircd and
/// chat-server IRC ÷ line, and each run's CPU by thread.
pub fn render_irc(runs: &[Value]) -> String {
    let mut out = String::from(
        "| scenario | measure | chat-server IRC | ngircd | chat-server line | chat-server mixed | chat-server IRC ÷ ngircd | chat-server IRC ÷ line |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for label in labels_of(runs.iter()) {
        let find = |target: &str, proto: &str| {
            runs.iter()
                .rev()
                .find(|r| text(r, "label") == label && text(r, "target") == target && protocol(r) == proto)
        };
        let columns = [
            find("chat-server", "irc"),
            find("ngircd", "irc"),
            find("chat-server", "line"),
            find("chat-server", "mixed"),
        ];
        let Some(scenario) = columns.iter().flatten().next().map(|r| text(r, "scenario")) else {
            continue;
        };
        let name = if label.is_empty() {
            scenario.clone()
        } else {
            label.clone()
        };
        let mut first = name.as_str();
        for (measure, path, show) in measures(&scenario) {
            let cells: Vec<(String, Option<f64>)> =
                columns.iter().map(|run| cell(*run, path, *show)).collect();
            let value = |i: usize| cells.get(i).and_then(|c| c.1);
            let shown = |i: usize| cells.get(i).map_or("—", |c| c.0.as_str());
            out.push_str(&format!(
                "| {first} | {measure} | {} | {} | {} | {} | {} | {} |\n",
                shown(0),
                shown(1),
                shown(2),
                shown(3),
                ratio(value(0), value(1)),
                ratio(value(0), value(2)),
            ));
            first = "";
        }
        for (key, measure) in CPU_ROWS {
            let cells: Vec<String> = columns.iter().map(|run| cpu_cell(*run, key)).collect();
            if cells.iter().any(|c| c != "—") {
                out.push_str(&format!("|  | {measure} | {} | — | — |\n", cells.join(" | ")));
            }
        }
        if matches!(scenario.as_str(), "fanout" | "fixed-rate") {
            let costs: Vec<Option<f64>> = columns.iter().map(|run| cpu_per_delivery_ns(*run)).collect();
            let value = |i: usize| costs.get(i).copied().flatten();
            let shown = |i: usize| value(i).map_or("—".to_string(), |ns| format!("{ns:.0} ns"));
            out.push_str(&format!(
                "|  | server CPU per delivery (all threads) | {} | {} | {} | {} | {} | {} |\n",
                shown(0),
                shown(1),
                shown(2),
                shown(3),
                ratio(value(0), value(1)),
                ratio(value(0), value(2)),
            ));
        }
    }
    out
}

/// The WebSocket comparison (issue 18) as markdown: for each label,
/// chat-server's line protocol, its WebSocket, a room mixing both (all
/// receivers; its line receivers; its WebSocket receivers) and ncat, the
/// ratios WebSocket ÷ line and chat-server line ÷ ncat, each run's CPU by
/// thread and the server's CPU per delivery.
pub fn render_web(runs: &[Value]) -> String {
    let mut out = String::from(
        "| scenario | measure | chat-server line | chat-server WebSocket | mixed room, all | mixed room, line receivers | mixed room, WebSocket receivers | ncat --chat | WebSocket ÷ line | chat-server line ÷ ncat |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for label in labels_of(runs.iter()) {
        let find = |target: &str, proto: &str| {
            runs.iter()
                .rev()
                .find(|r| text(r, "label") == label && text(r, "target") == target && protocol(r) == proto)
        };
        let (line, web, mixed, ncat) = (
            find("chat-server", "line"),
            find("chat-server", "web"),
            find("chat-server", "mixed-web"),
            find("ncat", "line"),
        );
        // Each column: a run, and where in it the figures are (a kind's
        // own under `by_kind`).
        let columns: [(Option<&Value>, &[&str]); 6] = [
            (line, &[]),
            (web, &[]),
            (mixed, &[]),
            (mixed, &["by_kind", "line"]),
            (mixed, &["by_kind", "web"]),
            (ncat, &[]),
        ];
        let Some(scenario) = [line, web, mixed, ncat]
            .iter()
            .flatten()
            .next()
            .map(|r| text(r, "scenario"))
        else {
            continue;
        };
        let name = if label.is_empty() {
            scenario.clone()
        } else {
            label.clone()
        };
        let mut first = name.as_str();
        for (measure, path, show) in measures(&scenario) {
            let cells: Vec<(String, Option<f64>)> = columns
                .iter()
                .map(|(run, prefix)| {
                    if !prefix.is_empty() && *path == ["integrity", "lost"] {
                        // Counted for the run as a whole, not per kind.
                        return ("—".to_string(), None);
                    }
                    let sub = run.and_then(|r| prefix.iter().try_fold(r, |v, key| v.get(key)));
                    cell(sub, path, *show)
                })
                .collect();
            let value = |i: usize| cells.get(i).and_then(|c| c.1);
            let shown: Vec<&str> = cells.iter().map(|c| c.0.as_str()).collect();
            out.push_str(&format!(
                "| {first} | {measure} | {} | {} | {} |\n",
                shown.join(" | "),
                ratio(value(1), value(0)),
                ratio(value(0), value(5)),
            ));
            first = "";
        }
        let whole_runs = [line, web, mixed, ncat];
        for (key, measure) in CPU_ROWS {
            let cells: Vec<String> = whole_runs.iter().map(|run| cpu_cell(*run, key)).collect();
            if cells.iter().any(|c| c != "—") {
                out.push_str(&format!(
                    "|  | {measure} | {} | {} | {} | — | — | {} | — | — |\n",
                    cells.first().map_or("—", String::as_str),
                    cells.get(1).map_or("—", String::as_str),
                    cells.get(2).map_or("—", String::as_str),
                    cells.get(3).map_or("—", String::as_str),
                ));
            }
        }
        if matches!(scenario.as_str(), "fanout" | "fixed-rate") {
            let costs: Vec<Option<f64>> = whole_runs.iter().map(|run| cpu_per_delivery_ns(*run)).collect();
            let value = |i: usize| costs.get(i).copied().flatten();
            let shown = |i: usize| value(i).map_or("—".to_string(), |ns| format!("{ns:.0} ns"));
            out.push_str(&format!(
                "|  | server CPU per delivery (all threads) | {} | {} | {} | — | — | {} | {} | {} |\n",
                shown(0),
                shown(1),
                shown(2),
                shown(3),
                ratio(value(1), value(0)),
                ratio(value(0), value(3)),
            ));
        }
    }
    out
}

/// The server's CPU time per delivery, in ns: its threads' busy share of
/// a core during the run, summed, over the run's deliveries per second.
/// (The CPU is measured over the whole sending and draining, the rate over
/// the first send to the last delivery: the same stretch but for the last
/// turn of the drain.)
fn cpu_per_delivery_ns(run: Option<&Value>) -> Option<f64> {
    let run = run?;
    let busy: f64 = run
        .get("server_cpu_pct")?
        .as_object()?
        .values()
        .filter_map(Value::as_f64)
        .sum();
    let rate = num(run, &["deliveries_per_s"])?;
    (rate > 0.0 && busy > 0.0).then(|| busy / 100.0 * 1e9 / rate)
}

/// The storms as markdown, one row per run.
fn render_storms(storms: &[&Value]) -> String {
    let mut out = String::from(
        "\n| storm | clients | storm connections arrived | storm took | window p50 | window p99 | window p99.9 | window max | whole run p99 | lost + duplicated + out of order |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for run in storms {
        let us = |path: &[&str]| num(run, path).map_or("—".to_string(), micros);
        let lost: f64 = ["lost", "duplicated", "out_of_order"]
            .iter()
            .filter_map(|k| num(run, &["integrity", k]))
            .sum();
        let storm = num(run, &["storm"]).unwrap_or(0.0);
        let arrived = if storm > 0.0 {
            format!(
                "{} of {} ({}, {})",
                plain(num(run, &["storm_arrived"]).unwrap_or(0.0)),
                plain(storm),
                text(run, "storm_kind"),
                text(run, "transport")
            )
        } else {
            "no storm".to_string()
        };
        let took = if storm > 0.0 {
            num(run, &["storm_s"]).map_or("—".to_string(), |s| format!("{s:.3} s"))
        } else {
            "—".to_string()
        };
        out.push_str(&format!(
            "| {} | {} ({}) | {arrived} | {took} | {} | {} | {} | {} | {} | {} |\n",
            text(run, "label"),
            plain(num(run, &["clients"]).unwrap_or(0.0)),
            text(run, "clients_transport"),
            us(&["window", "p50_us"]),
            us(&["window", "p99_us"]),
            us(&["window", "p999_us"]),
            us(&["window", "max_us"]),
            us(&["latency", "p99_us"]),
            plain(lost),
        ));
    }
    out
}

/// Runs `table`.
///
/// # Errors
/// When a file cannot be read.
pub fn run(args: &TableArgs) -> Result<()> {
    print!("{}", render(&read_runs(args)?));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_runs_get_a_row_each_with_redis_and_the_share_of_a_single_instance() {
        let runs: Vec<Value> = [
            r#"{"label":"A","scenario":"fanout","target":"chat-server","lines_sent":1000,"active_s":2.0,"deliveries_per_s":4000000,"latency":{"p50_us":3000,"p99_us":9000},"integrity":{"lost":0,"duplicated":0,"out_of_order":0},"server_cpu_pct":{"hub":10,"io-0":30}}"#,
            r#"{"label":"A","scenario":"fanout","target":"chat-server","cluster_instances":2,"lines_sent":1000,"active_s":4.0,"deliveries_per_s":2000000,"latency":{"p50_us":8000,"p99_us":20000},"integrity":{"lost":0,"duplicated":1,"out_of_order":0},"server_cpu_pct":{"i1 hub":10,"i2 hub":12,"redis-server":33.4}}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let table = render(&runs);
        assert!(
            table.contains("| A | single | 500 /s | 4.00 M/s | 3.00 ms | 9.00 ms | 0 | 40 | — | — |\n"),
            "{table}"
        );
        assert!(
            table.contains(
                "|  | 2 through Redis | 250 /s | 2.00 M/s | 8.00 ms | 20.00 ms | 1 | 22 | 33 | 0.50× |\n"
            ),
            "{table}"
        );
    }

    #[test]
    fn pairs_runs_by_label() {
        let runs: Vec<Value> = [
            r#"{"label":"A","scenario":"fanout","target":"chat-server","deliveries_per_s":3000000,"latency":{"p50_us":100,"p99_us":2000,"p999_us":3000},"integrity":{"lost":0,"duplicated":0,"out_of_order":0}}"#,
            r#"{"label":"A","scenario":"fanout","target":"ncat","deliveries_per_s":1500000,"latency":{"p50_us":500,"p99_us":50000,"p999_us":60000},"integrity":{"lost":0,"duplicated":0,"out_of_order":0}}"#,
            r#"{"label":"C","scenario":"idle","target":"ncat","held":1000,"rss_per_conn_bytes":300.5,"kernel":{"slab_per_conn_bytes":9000.4}}"#,
            r#"{"label":"R","scenario":"ramp","target":"ncat","held_max":1000,"rss_per_conn_bytes":340,"stopped":"the server exited"}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let table = render(&runs);
        assert!(
            table.contains("| A | deliveries/s | 3.00 M/s | 1.50 M/s | 2.00× |"),
            "{table}"
        );
        assert!(
            table.contains("|  | latency p99 | 2.00 ms | 50.00 ms | 0.04× |"),
            "{table}"
        );
        assert!(
            table.contains("| C | connections held | — | 1000 | — |"),
            "{table}"
        );
        assert!(
            table.contains("|  | kernel slab per connection, both ends (bytes) | — | 9000 | — |"),
            "{table}"
        );
        assert!(
            table.contains("|  | ncat ramp stopped | the server exited | | |\n"),
            "{table}"
        );
        // Without tokio runs, no tokio column.
        assert!(
            table.starts_with(
                "| scenario | measure | chat-server | ncat --chat | chat-server ÷ ncat |\n|---|---|---|---|---|\n"
            ),
            "{table}"
        );
    }

    #[test]
    fn tokio_runs_add_a_column_and_a_ratio() {
        let runs: Vec<Value> = [
            r#"{"label":"A","scenario":"fanout","target":"chat-server","deliveries_per_s":3000000,"latency":{"p50_us":100,"p99_us":2000,"p999_us":3000},"integrity":{"lost":0,"duplicated":0,"out_of_order":0}}"#,
            r#"{"label":"A","scenario":"fanout","target":"ncat","deliveries_per_s":1500000,"latency":{"p50_us":500,"p99_us":50000,"p999_us":60000},"integrity":{"lost":0,"duplicated":0,"out_of_order":0}}"#,
            r#"{"label":"A","scenario":"fanout","target":"tokio-chat","deliveries_per_s":750000,"latency":{"p50_us":1000,"p99_us":4000,"p999_us":6000},"integrity":{"lost":1,"duplicated":0,"out_of_order":0}}"#,
            r#"{"label":"R","scenario":"ramp","target":"tokio-chat","held_max":5000,"rss_per_conn_bytes":2000,"stopped":"time budget of 30 s used"}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let table = render(&runs);
        assert!(
            table.starts_with(
                "| scenario | measure | chat-server | ncat --chat | tokio chat | chat-server ÷ ncat | chat-server ÷ tokio |\n\
                 |---|---|---|---|---|---|---|\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("| A | deliveries/s | 3.00 M/s | 1.50 M/s | 750.0 k/s | 2.00× | 4.00× |"),
            "{table}"
        );
        assert!(
            table.contains("|  | latency p99 | 2.00 ms | 50.00 ms | 4.00 ms | 0.04× | 0.50× |"),
            "{table}"
        );
        assert!(
            table.contains("|  | lost + duplicated + out of order | 0 | 0 | 1 | — | — |"),
            "{table}"
        );
        // A group with only a tokio run still gets its rows.
        assert!(
            table.contains("| R | most connections held | — | — | 5000 | — | — |"),
            "{table}"
        );
        assert!(
            table.contains("|  | tokio chat ramp stopped | time budget of 30 s used | | | | |\n"),
            "{table}"
        );
    }

    #[test]
    fn irc_runs_get_their_four_columns_and_the_two_ratios() {
        let runs: Vec<Value> = [
            r#"{"label":"A","scenario":"fanout","target":"chat-server","protocol":"irc","deliveries_per_s":9000000,"latency":{"p50_us":3000,"p99_us":8000,"p999_us":9000},"integrity":{"lost":0,"duplicated":0,"out_of_order":0},"server_cpu_pct":{"hub":7.2,"io-0":27,"io-1":26.4},"generator_cpu_pct":{"chat-bench":117}}"#,
            r#"{"label":"A","scenario":"fanout","target":"ngircd","protocol":"irc","deliveries_per_s":3000000,"latency":{"p50_us":8000,"p99_us":20000,"p999_us":40000},"integrity":{"lost":0,"duplicated":0,"out_of_order":0},"server_cpu_pct":{"ngircd":95.4}}"#,
            r#"{"label":"A","scenario":"fanout","target":"chat-server","deliveries_per_s":12000000,"latency":{"p50_us":2500,"p99_us":7000,"p999_us":9000},"integrity":{"lost":0,"duplicated":0,"out_of_order":0}}"#,
            r#"{"label":"A","scenario":"fanout","target":"chat-server","protocol":"mixed","deliveries_per_s":8000000,"latency":{"p50_us":3500,"p99_us":11000,"p999_us":15000},"integrity":{"lost":0,"duplicated":2,"out_of_order":1}}"#,
            r#"{"label":"A, ngircd flood control as shipped","scenario":"fanout","target":"ngircd","protocol":"irc","deliveries_per_s":3207,"latency":{"p50_us":6023021,"p99_us":12046041,"p999_us":12046041},"integrity":{"lost":33660,"duplicated":0,"out_of_order":0}}"#,
            r#"{"label":"C","scenario":"idle","target":"ngircd","protocol":"irc","held":1000,"rss_per_conn_bytes":2843.2,"kernel":{"slab_per_conn_bytes":6746}}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let table = render(&runs);
        assert!(
            table.starts_with(
                "| scenario | measure | chat-server IRC | ngircd | chat-server line | chat-server mixed | chat-server IRC ÷ ngircd | chat-server IRC ÷ line |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "| A | deliveries/s | 9.00 M/s | 3.00 M/s | 12.00 M/s | 8.00 M/s | 3.00× | 0.75× |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("|  | latency p99 | 8.00 ms | 20.00 ms | 7.00 ms | 11.00 ms | 0.40× | 1.14× |\n"),
            "{table}"
        );
        assert!(
            table.contains("|  | lost + duplicated + out of order | 0 | 0 | 0 | 3 | — | — |\n"),
            "{table}"
        );
        assert!(
            table.contains("|  | server CPU, % of a core by thread | hub 7, io-0 27, io-1 26 | ngircd 95 | — | — | — | — |\n"),
            "{table}"
        );
        // 60.6% of a core for 9 M/s is 67 ns each; 95.4% for 3 M/s, 318.
        assert!(
            table.contains(
                "|  | server CPU per delivery (all threads) | 67 ns | 318 ns | — | — | 0.21× | — |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "| A, ngircd flood control as shipped | deliveries/s | — | 3.2 k/s | — | — | — | — |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("| C | connections held | — | 1000 | — | — | — | — |\n|  | server RSS per connection (bytes) | — | 2843 |"),
            "{table}"
        );
    }

    #[test]
    fn websocket_runs_get_the_mixed_rooms_kinds_apart_and_the_two_ratios() {
        let runs: Vec<Value> = [
            r#"{"label":"A","scenario":"fanout","target":"chat-server","protocol":"line","deliveries_per_s":10000000,"latency":{"p50_us":3000,"p99_us":8000,"p999_us":9000},"integrity":{"lost":0,"duplicated":0,"out_of_order":0},"server_cpu_pct":{"hub":5,"io-0":25,"io-1":25},"generator_cpu_pct":{"chat-bench":110}}"#,
            r#"{"label":"A","scenario":"fanout","target":"chat-server","protocol":"web","deliveries_per_s":8000000,"latency":{"p50_us":3500,"p99_us":10000,"p999_us":12000},"integrity":{"lost":0,"duplicated":0,"out_of_order":0},"server_cpu_pct":{"hub":5,"io-0":27,"io-1":28}}"#,
            r#"{"label":"A","scenario":"fanout","target":"chat-server","protocol":"mixed-web","deliveries_per_s":9000000,"latency":{"p50_us":3200,"p99_us":9000,"p999_us":11000},"integrity":{"lost":0,"duplicated":1,"out_of_order":0},"by_kind":{"line":{"clients":50,"deliveries_per_s":4600000,"latency":{"p50_us":3100,"p99_us":8500,"p999_us":10000}},"web":{"clients":50,"deliveries_per_s":4400000,"latency":{"p50_us":3300,"p99_us":9500,"p999_us":11500}}}}"#,
            r#"{"label":"A","scenario":"fanout","target":"ncat","protocol":"line","deliveries_per_s":2000000,"latency":{"p50_us":30000,"p99_us":45000,"p999_us":50000},"integrity":{"lost":0,"duplicated":0,"out_of_order":0},"server_cpu_pct":{"ncat":12}}"#,
            r#"{"label":"C","scenario":"idle","target":"chat-server","protocol":"web","held":1000,"rss_per_conn_bytes":3100.4,"kernel":{"slab_per_conn_bytes":6800}}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let table = render(&runs);
        assert!(
            table.starts_with(
                "| scenario | measure | chat-server line | chat-server WebSocket | mixed room, all | mixed room, line receivers | mixed room, WebSocket receivers | ncat --chat | WebSocket ÷ line | chat-server line ÷ ncat |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "| A | deliveries/s | 10.00 M/s | 8.00 M/s | 9.00 M/s | 4.60 M/s | 4.40 M/s | 2.00 M/s | 0.80× | 5.00× |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "|  | latency p99 | 8.00 ms | 10.00 ms | 9.00 ms | 8.50 ms | 9.50 ms | 45.00 ms | 1.25× | 0.18× |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("|  | lost + duplicated + out of order | 0 | 0 | 1 | — | — | 0 | — | — |\n"),
            "{table}"
        );
        assert!(
            table.contains(
                "|  | server CPU, % of a core by thread | hub 5, io-0 25, io-1 25 | hub 5, io-0 27, io-1 28 | — | — | — | ncat 12 | — | — |\n"
            ),
            "{table}"
        );
        // 55% of a core for 10 M/s is 55 ns a delivery; 60% for 8 M/s, 75.
        assert!(
            table.contains(
                "|  | server CPU per delivery (all threads) | 55 ns | 75 ns | — | — | — | 60 ns | 1.36× | 0.92× |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("| C | connections held | — | 1000 | — | — | — | — | — | — |\n"),
            "{table}"
        );
        assert!(
            table.contains("|  | server RSS per connection (bytes) | — | 3100 | — | — | — | — | — | — |\n"),
            "{table}"
        );
    }

    #[test]
    fn tls_runs_get_four_columns_the_two_ratios_cpu_and_the_storms() {
        let runs: Vec<Value> = [
            r#"{"label":"A","scenario":"fanout","target":"chat-server","transport":"tls","deliveries_per_s":8000000,"latency":{"p50_us":100,"p99_us":2000,"p999_us":3000},"integrity":{"lost":0,"duplicated":0,"out_of_order":0},"server_cpu_pct":{"hub":6.2,"io-0":30.4,"io-1":0.1},"generator_cpu_pct":{"chat-bench":120}}"#,
            r#"{"label":"A","scenario":"fanout","target":"chat-server","transport":"tcp","deliveries_per_s":10000000,"latency":{"p50_us":100,"p99_us":1000,"p999_us":3000},"integrity":{"lost":0,"duplicated":0,"out_of_order":0}}"#,
            r#"{"label":"A","scenario":"fanout","target":"ncat","transport":"tls","deliveries_per_s":1000000,"latency":{"p50_us":500,"p99_us":50000,"p999_us":60000},"integrity":{"lost":0,"duplicated":1,"out_of_order":0}}"#,
            r#"{"label":"H","scenario":"handshakes","target":"chat-server","transport":"tls","per_s":4500,"latency":{"p50_us":1500,"p99_us":3000},"failed":0}"#,
            r#"{"label":"C","scenario":"idle","target":"chat-server","transport":"tls","held":1000,"rss_per_conn_bytes":9392.4}"#,
            r#"{"label":"H","scenario":"handshakes","target":"ncat","transport":"tcp","per_s":15000,"latency":{"p50_us":300,"p99_us":2500},"failed":2}"#,
            r#"{"label":"S1","scenario":"storm","target":"chat-server","transport":"tls","clients":200,"clients_transport":"tls","storm":1000,"storm_kind":"full","storm_arrived":1000,"storm_s":0.357,"window":{"p50_us":1969,"p99_us":134873,"p999_us":137626,"max_us":137757},"latency":{"p99_us":95289},"integrity":{"lost":0,"duplicated":0,"out_of_order":0}}"#,
            r#"{"label":"S0","scenario":"storm","target":"chat-server","transport":"tls","clients":200,"clients_transport":"tls","storm":0,"storm_kind":"full","storm_arrived":0,"storm_s":0,"window":{"p50_us":1700,"p99_us":6480,"p999_us":7098,"max_us":7148},"latency":{"p99_us":6967},"integrity":{"lost":0,"duplicated":0,"out_of_order":0}}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let table = render(&runs);
        assert!(
            table.starts_with(
                "| scenario | measure | chat-server TLS | chat-server TCP | ncat --ssl | ncat | chat-server TLS ÷ TCP | chat-server ÷ ncat, TLS |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("| A | deliveries/s | 8.00 M/s | 10.00 M/s | 1.00 M/s | — | 0.80× | 8.00× |\n"),
            "{table}"
        );
        assert!(
            table.contains("|  | lost + duplicated + out of order | 0 | 0 | 1 | — | — | — |\n"),
            "{table}"
        );
        // Threads under half a percent are left out; a run without the
        // figures is a dash.
        assert!(
            table.contains("|  | server CPU, % of a core by thread | hub 6, io-0 30 | — | — | — | — | — |\n"),
            "{table}"
        );
        assert!(
            table.contains(
                "| H | connections/s, each handshaken, welcomed, closed | 4.5 k/s | — | — | 15.0 k/s | — | — |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("|  | failed | 0 | — | — | 2 | — | — |\n"),
            "{table}"
        );
        // An idle run has no CPU figures, and no CPU rows.
        assert!(
            table.contains(
                "|  | server RSS per connection (bytes) | 9392 | — | — | — | — | — |\n|  | kernel slab"
            ),
            "{table}"
        );
        assert!(
            !table.contains("| generator CPU, % of a core | — | — | — | — |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| S1 | 200 (tls) | 1000 of 1000 (full, tls) | 0.357 s | 1.97 ms | 134.87 ms | 137.63 ms | 137.76 ms | 95.29 ms | 0 |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "| S0 | 200 (tls) | no storm | — | 1.70 ms | 6.48 ms | 7.10 ms | 7.15 ms | 6.97 ms | 0 |\n"
            ),
            "{table}"
        );
    }
}
