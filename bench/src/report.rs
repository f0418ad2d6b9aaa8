//! What a run prints: a few lines for people, then one JSON line for
//! programs (the comparison script, a CI job, a later plot).
//!
//! Every report starts with the same [`Header`], so JSON lines from
//! different scenarios and targets can be put side by side.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::args::TargetArgs;
use crate::error::{Error, Result};
use crate::target::Target;

/// The fields every report has.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    /// The scenario's name.
    pub scenario: String,
    /// The `--label` given.
    pub label: String,
    /// `chat-server`, `ncat`, `tokio-chat` or `ngircd`
    /// ([`crate::engine::Flavor::name`]).
    pub target: String,
    /// `tls` or `tcp`: what the run's connections speak.
    pub transport: String,
    /// `line`, `irc` or `mixed` ([`crate::args::Protocol::name`]): the
    /// protocol over it (issue 16).
    pub protocol: String,
    /// How the server was started (the whole command line when this run
    /// started it).
    pub server: String,
    /// The `--server-arg`s given (also in `server`).
    pub server_args: Vec<String>,
    /// The configuration file this run wrote for the server (ngircd's),
    /// when it wrote one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_config: Option<String>,
    /// Its pid, when known (the first instance's, for a cluster).
    pub server_pid: Option<u32>,
    /// The chat-server instances the clients were spread over, for a
    /// cluster run (issue 17); left out otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_instances: Option<usize>,
    /// Generator I/O threads.
    pub generator_threads: u16,
    /// Loopback source addresses used.
    pub sources: u16,
    /// When the run ended, seconds since the Unix epoch.
    pub unix_time: u64,
}

impl Header {
    /// The header for `scenario` against `target`.
    pub fn new(scenario: &str, args: &TargetArgs, target: &Target) -> Header {
        Header {
            scenario: scenario.to_string(),
            label: args.label.clone(),
            target: target.flavor.name().to_string(),
            transport: target.transport().to_string(),
            protocol: target.protocol.name().to_string(),
            server: target.command.clone(),
            server_args: args.server_args.clone(),
            server_config: target.config_text.clone(),
            server_pid: target.pid,
            cluster_instances: target.cluster_instances(),
            generator_threads: args.threads,
            sources: args.sources,
            unix_time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// Busy percentages by thread name, for the JSON line.
pub fn cpu_map(busy: &[(String, f64)]) -> BTreeMap<String, f64> {
    busy.iter().filter(|(_, pct)| *pct > 0.0).cloned().collect()
}

/// Busy percentages by thread name, for people: `name 97%, other 12%`.
pub fn cpu_text(busy: &[(String, f64)]) -> String {
    let parts: Vec<String> = busy
        .iter()
        .filter(|(_, pct)| *pct >= 1.0)
        .map(|(name, pct)| format!("{name} {pct:.0}%"))
        .collect();
    if parts.is_empty() {
        "n/a".to_string()
    } else {
        parts.join(", ")
    }
}

/// Prints the summary lines, then the report as one JSON line.
///
/// # Errors
/// When the report cannot be serialized.
pub fn emit<T: Serialize>(summary: &[String], report: &T) -> Result<()> {
    for line in summary {
        println!("{line}");
    }
    let json = serde_json::to_string(report).map_err(|e| Error::msg(format!("report: {e}")))?;
    println!("{json}");
    Ok(())
}
