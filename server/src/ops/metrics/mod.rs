//! The Prometheus metrics endpoint (`--metrics-listen`), and the periodic
//! stats log line (`--stats-interval`).
//!
//! Why it looks like this:
//! - The figures are the relaxed atomics of [`crate::ops::stats`], which the
//!   event loop and the hub bump as they go; this module only reads them,
//!   at scrape time, through a [`Collector`]. So a scrape costs the chat
//!   nothing but a few atomic loads, and metrics on or off the counting is
//!   the same.
//! - The endpoint ([`endpoint`]) is one thread running a small mio event
//!   loop of its own, with a bounded HTTP/1.x request reader ([`http`]):
//!   at most [`MAX_CONNECTIONS`] connections, one request head of at most
//!   8 KiB each, no request body, 5 s to send the request and 5 s to take
//!   the answer. So whatever a client of the endpoint sends, it costs the
//!   daemon a bounded number of descriptors, bytes and threads (one), and
//!   the event loops of the chat never learn the endpoint exists.
//!   `GET /metrics` (and `HEAD`) get the exposition; another path gets
//!   404, another method 405, a request that is not HTTP or carries a body
//!   a 4xx; every answer closes the connection.
//! - `prometheus-client` writes the exposition (OpenMetrics text, which
//!   Prometheus asks for and reads natively): escaping, `# HELP`/`# TYPE`/
//!   `# UNIT`, `_total` suffixes and cumulative histogram buckets are its
//!   business, not ours. A scraper that does not ask for OpenMetrics
//!   (curl, `promtool check metrics`, older tools) gets the classic text
//!   format 0.0.4 instead, which differs only in that a counter's HELP and
//!   TYPE name its `_total` sample and there are no `# UNIT` and `# EOF`
//!   lines: [`to_classic_text`] makes that small change.
//! - Labels are closed sets ([`CloseReason`], [`ErrorLabel`]); no nick,
//!   address or room name ever becomes a label.
//! - The process metrics (`process_*`, the names every Prometheus client
//!   library uses, so stock dashboards work) are read from `/proc/self` at
//!   scrape time; where that is unavailable they are left out.

use std::fmt;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::ops::stats::{CloseReason, ErrorLabel, Stats};

pub mod endpoint;
pub mod http;

pub use endpoint::{MetricsEndpoint, MetricsError, RunningEndpoint, MAX_CONNECTIONS, MAX_DESCRIPTORS};
pub use http::METRICS_PATH;

/// The content type of the exposition `prometheus-client` writes.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the classic text format, for scrapers that do not
/// ask for OpenMetrics.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Linux's `USER_HZ`: the unit of the CPU times in `/proc/self/stat`. It
/// is 100 on every architecture Linux supports, whatever the kernel's
/// internal tick rate (it is part of the user-space ABI).
const USER_HZ: f64 = 100.0;

/// Reads [`Stats`] (and `/proc/self`) at each scrape.
#[derive(Debug)]
struct StatsCollector {
    stats: Arc<Stats>,
}

/// Writes one metric without labels.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: Value,
) -> Result<(), fmt::Error> {
    let metric_type = match value {
        Value::Counter(_) | Value::CounterF(_) => MetricType::Counter,
        Value::Gauge(_) | Value::GaugeF(_) => MetricType::Gauge,
    };
    let mut metric = encoder.encode_descriptor(name, help, unit, metric_type)?;
    match value {
        Value::Counter(v) => metric.encode_counter::<NoLabelSet, _, u64>(&v, None),
        Value::CounterF(v) => metric.encode_counter::<NoLabelSet, _, f64>(&v, None),
        Value::Gauge(v) => metric.encode_gauge(&v),
        Value::GaugeF(v) => metric.encode_gauge(&v),
    }
}

/// A value of a metric.
#[derive(Debug, Clone, Copy)]
enum Value {
    Counter(u64),
    CounterF(f64),
    Gauge(u64),
    GaugeF(f64),
}

/// Writes a counter with one label taking each of `values`.
fn labelled_counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = (&'static str, u64)>,
) -> Result<(), fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, count) in values {
        let labels = [(label, value)];
        metric
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
    }
    Ok(())
}

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let stats = &self.stats;
        let e = &mut encoder;
        single(
            e,
            "chat_clients",
            "Clients connected now.",
            None,
            Value::Gauge(stats.clients() as u64),
        )?;
        single(
            e,
            "chat_connections_accepted",
            "Connections accepted, those refused at once included.",
            None,
            Value::Counter(stats.accepted()),
        )?;
        labelled_counter(
            e,
            "chat_connections_closed",
            "Connections closed, by reason (refused_* were refused at once).",
            "reason",
            CloseReason::ALL.iter().map(|&r| (r.label(), stats.closed(r))),
        )?;
        single(
            e,
            "chat_lines_received",
            "Lines received from clients (blank lines not counted).",
            None,
            Value::Counter(stats.lines_received()),
        )?;
        single(
            e,
            "chat_messages_delivered",
            "Chat messages (room, action and private) queued to a recipient, once per recipient.",
            None,
            Value::Counter(stats.messages_delivered()),
        )?;
        single(
            e,
            "chat_received",
            "Bytes read from client connections.",
            Some(&Unit::Bytes),
            Value::Counter(stats.bytes_received()),
        )?;
        single(
            e,
            "chat_sent",
            "Bytes written to client connections.",
            Some(&Unit::Bytes),
            Value::Counter(stats.bytes_sent()),
        )?;
        labelled_counter(
            e,
            "chat_errors_sent",
            "Error lines sent to clients, by kind.",
            "kind",
            ErrorLabel::ALL.iter().map(|&k| (k.label(), stats.errors(k))),
        )?;
        single(
            e,
            "chat_rooms",
            "Rooms with members now, the lobby included.",
            None,
            Value::Gauge(stats.rooms() as u64),
        )?;
        let (history_bytes, history_rooms) = stats.history();
        single(
            e,
            "chat_history",
            "What all rooms' histories cost against --history-bytes.",
            Some(&Unit::Bytes),
            Value::Gauge(history_bytes as u64),
        )?;
        single(
            e,
            "chat_history_empty_rooms",
            "Empty rooms kept only for their history.",
            None,
            Value::Gauge(history_rooms as u64),
        )?;
        single(
            e,
            "chat_flood_pauses",
            "Times flood control stopped reading from a client for a while.",
            None,
            Value::Counter(stats.flood_pauses()),
        )?;
        single(
            e,
            "chat_outbound_queued",
            "Bytes queued to clients and not yet written, all clients together.",
            Some(&Unit::Bytes),
            Value::Gauge(stats.queued_bytes() as u64),
        )?;
        let fanout = stats.fanout().snapshot();
        encoder
            .encode_descriptor(
                "chat_fanout_latency",
                "Time from reading a line to queueing what it caused for every recipient and writing it, as far as each socket would take it.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(fanout.sum_seconds, fanout.count, &fanout.buckets, None)?;
        encode_process(&mut encoder)
    }
}

/// Writes the `process_*` metrics that can be read.
fn encode_process(e: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
    let process = ProcessFigures::read();
    if let Some(bytes) = process.resident_bytes {
        single(
            e,
            "process_resident_memory",
            "Resident memory size.",
            Some(&Unit::Bytes),
            Value::Gauge(bytes),
        )?;
    }
    if let Some(fds) = process.open_fds {
        single(
            e,
            "process_open_fds",
            "Open file descriptors.",
            None,
            Value::Gauge(fds),
        )?;
    }
    if let Some(fds) = process.max_fds {
        single(
            e,
            "process_max_fds",
            "Most file descriptors the process may open.",
            None,
            Value::Gauge(fds),
        )?;
    }
    if let Some(seconds) = process.cpu_seconds {
        single(
            e,
            "process_cpu",
            "User and system CPU time spent.",
            Some(&Unit::Seconds),
            Value::CounterF(seconds),
        )?;
    }
    if let Some(seconds) = process.start_time {
        single(
            e,
            "process_start_time",
            "Start time of the process since the Unix epoch.",
            Some(&Unit::Seconds),
            Value::GaugeF(seconds),
        )?;
    }
    Ok(())
}

/// What `/proc` says about this process; `None` for what it does not say.
#[derive(Debug, Default)]
struct ProcessFigures {
    resident_bytes: Option<u64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
    cpu_seconds: Option<f64>,
    start_time: Option<f64>,
}

impl ProcessFigures {
    fn read() -> ProcessFigures {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let boot = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let times = parse_stat_times(&stat);
        ProcessFigures {
            resident_bytes: parse_vm_rss(&status),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|dir| dir.count() as u64),
            max_fds: parse_max_open_files(&limits),
            cpu_seconds: times.map(|t| t.cpu_ticks as f64 / USER_HZ),
            start_time: times.and_then(|t| {
                let boot = parse_boot_time(&boot)?;
                Some(boot as f64 + t.start_ticks as f64 / USER_HZ)
            }),
        }
    }
}

/// `VmRSS:   1234 kB` in `/proc/self/status`, in bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().next()?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn parse_max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find_map(|l| l.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// `btime` in `/proc/stat`: when the system booted, in Unix seconds.
fn parse_boot_time(stat: &str) -> Option<u64> {
    let line = stat.lines().find_map(|l| l.strip_prefix("btime "))?;
    line.trim().parse().ok()
}

/// CPU and start times from `/proc/self/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatTimes {
    /// utime + stime.
    cpu_ticks: u64,
    /// starttime: ticks after boot.
    start_ticks: u64,
}

fn parse_stat_times(stat: &str) -> Option<StatTimes> {
    // The command name (field 2) is in parentheses and may hold spaces or
    // parentheses itself: the fields after it start after the last `)`.
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts with field 3 (state), so field n is at index n - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(StatTimes {
        cpu_ticks: field(14)?.checked_add(field(15)?)?,
        start_ticks: field(22)?,
    })
}

/// A registry holding the server's metrics.
pub fn registry(stats: Arc<Stats>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StatsCollector { stats }));
    registry
}

/// The exposition of `registry`, as served at `/metrics`.
///
/// # Errors
/// Only if a metric cannot be written (the encoder writes to a string, so
/// in practice never).
pub fn render(registry: &Registry) -> Result<String, fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

/// The classic Prometheus text format (0.0.4) of an OpenMetrics text
/// exposition as `prometheus-client` writes it: a counter family `x` is
/// `x_total` in its HELP and TYPE lines (its samples already are), and the
/// `# UNIT` and `# EOF` lines, which the classic format lacks, go.
pub fn to_classic_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|&keyword| {
            let rest = line.strip_prefix(keyword)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters
                .contains(&name)
                .then(|| format!("{keyword}{name}_total {tail}"))
        });
        text.push_str(renamed.as_deref().unwrap_or(line));
        text.push('\n');
    }
    text
}

/// The thread logging [`Stats::summary`] every interval.
#[derive(Debug)]
pub struct StatsLog {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl StatsLog {
    /// Starts logging `stats` every `interval`; `None` if the thread cannot
    /// start (which is logged).
    pub fn start(stats: Arc<Stats>, interval: Duration) -> Option<StatsLog> {
        let (stop, stopped) = crossbeam_channel::bounded(0);
        let thread = thread::Builder::new()
            .name("stats-log".into())
            .spawn(move || log_every(&stats, interval, &stopped));
        match thread {
            Ok(thread) => Some(StatsLog { stop, thread }),
            Err(e) => {
                log::warn!("cannot start the stats log thread: {e}; no periodic stats lines");
                None
            }
        }
    }

    /// Stops the thread and waits for it.
    pub fn stop(self) {
        drop(self.stop);
        if self.thread.join().is_err() {
            log::error!("the stats log thread panicked");
        }
    }
}

fn log_every(stats: &Stats, interval: Duration, stopped: &Receiver<()>) {
    loop {
        match stopped.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => log::info!("stats: {}", stats.summary()),
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Now, in Unix seconds (for tests of the start time).
#[cfg(test)]
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_family_with_help_and_the_counts() {
        let stats = Arc::new(Stats::default());
        stats.shift_clients(0, 2);
        stats.count_closed(CloseReason::SlowConsumer);
        stats.count_line();
        stats.fanout().observe(Duration::from_micros(30));
        let text = render(&registry(Arc::clone(&stats))).unwrap();
        for expected in [
            "# HELP chat_clients Clients connected now.",
            "chat_clients 2",
            "chat_connections_closed_total{reason=\"slow_consumer\"} 1",
            "chat_connections_closed_total{reason=\"quit\"} 0",
            "chat_lines_received_total 1",
            "# TYPE chat_received_bytes counter",
            "chat_fanout_latency_seconds_bucket{le=\"0.00005\"} 1",
            "chat_fanout_latency_seconds_count 1",
            "# TYPE process_cpu_seconds counter",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "# EOF",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
        }
    }

    #[test]
    fn the_classic_format_names_counters_by_their_samples() {
        let openmetrics = "# HELP a_bytes Bytes.\n# TYPE a_bytes counter\n# UNIT a_bytes bytes\n\
                           a_bytes_total 3\n# HELP b B.\n# TYPE b gauge\nb 1\n# EOF\n";
        assert_eq!(
            to_classic_text(openmetrics),
            "# HELP a_bytes_total Bytes.\n# TYPE a_bytes_total counter\na_bytes_total 3\n\
             # HELP b B.\n# TYPE b gauge\nb 1\n"
        );
    }

    #[test]
    fn proc_files_parse() {
        let stat = "1234 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0 20 0 4 0 9000 1000 300";
        assert_eq!(
            parse_stat_times(stat),
            Some(StatTimes {
                cpu_ticks: 200,
                start_ticks: 9000
            })
        );
        assert_eq!(parse_stat_times("garbage"), None);
        assert_eq!(parse_vm_rss("Name:\tx\nVmRSS:\t  2048 kB\n"), Some(2048 * 1024));
        assert_eq!(
            parse_max_open_files("Limit Soft Hard Units\nMax open files            1024                 524288               files\n"),
            Some(1024)
        );
        assert_eq!(
            parse_boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn this_process_reads_as_started_in_the_past_and_using_memory() {
        let figures = ProcessFigures::read();
        assert!(figures.resident_bytes.is_some_and(|b| b > 0), "{figures:?}");
        assert!(figures.open_fds.is_some_and(|n| n > 0), "{figures:?}");
        let start = figures.start_time.unwrap_or_default();
        assert!(start > 1e9 && start <= unix_now() + 1.0, "{figures:?}");
    }
}
