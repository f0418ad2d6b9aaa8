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
        _ => &[],
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

/// The table as markdown.
pub fn render(runs: &[Value]) -> String {
    let mut labels: Vec<String> = Vec::new();
    for run in runs {
        let label = text(run, "label");
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
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
}
