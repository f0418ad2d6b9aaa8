//! What `/proc` says about the server under test and about this process.
//!
//! Memory per connection is the server's resident set (VmRSS in
//! `/proc/PID/status`) before and after the connections, divided by their
//! number; which side saturates is read from the CPU time of each thread
//! (`/proc/PID/task/TID/stat`), so a report can say "the server's event
//! loop thread was busy 97% of the run" instead of guessing.

use std::fs;
use std::io;

/// Clock ticks per second of `/proc` CPU times. Linux reports them in
/// USER_HZ, which is 100 on every architecture Linux runs a chat server
/// on (`getconf CLK_TCK`).
pub const TICKS_PER_SEC: f64 = 100.0;

/// VmRSS of process `pid`, in KiB.
pub fn vm_rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no VmRSS for pid {pid}")))
}

/// True when `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => !status
            .lines()
            .any(|l| l.starts_with("State:") && (l.contains("(zombie)") || l.contains("(dead)"))),
        Err(_) => false,
    }
}

/// The soft limit on open descriptors of this process.
pub fn open_files_limit() -> Option<u64> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// CPU time (user + system) of one thread, in ticks, from a `stat` file's
/// text. The command name is in parentheses and may hold spaces, so the
/// fields are counted from the last `)`.
fn ticks_from_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let mut fields = stat.get(close + 1..)?.split_whitespace();
    // After ")": state(3) ppid pgrp session tty_nr tpgid flags minflt
    // cminflt majflt cmajflt utime(14) stime(15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((name, utime + stime))
}

/// CPU ticks (user + system) used so far by the whole process `pid`,
/// including its threads that have ended.
pub fn process_ticks(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| ticks_from_stat(&stat))
        .map_or(0, |(_, ticks)| ticks)
}

/// CPU ticks used so far by each thread of `pid`, as (thread name, ticks),
/// threads of the same name summed.
pub fn thread_ticks(pid: u32) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    // A process has few threads; the bound only guards against surprises.
    for entry in dir.flatten().take(4096) {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((name, ticks)) = ticks_from_stat(&stat) else {
            continue;
        };
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, t)) => *t += ticks,
            None => out.push((name, ticks)),
        }
    }
    out
}

/// Busy share of each thread between two [`thread_ticks`] readings taken
/// `secs` apart, as (name, percent of one core), busiest first.
pub fn busy_percent(before: &[(String, u64)], after: &[(String, u64)], secs: f64) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = after
        .iter()
        .map(|(name, t1)| {
            let t0 = before.iter().find(|(n, _)| n == name).map_or(0, |(_, t)| *t);
            let pct = if secs > 0.0 {
                t1.saturating_sub(t0) as f64 / TICKS_PER_SEC / secs * 100.0
            } else {
                0.0
            };
            (name.clone(), (pct * 10.0).round() / 10.0)
        })
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_visible() {
        let pid = std::process::id();
        assert!(vm_rss_kib(pid).unwrap() > 0);
        assert!(is_alive(pid));
        assert!(open_files_limit().unwrap() > 0);
        assert!(!thread_ticks(pid).is_empty());
        let _ = process_ticks(pid);
    }

    #[test]
    fn stat_with_spaces_in_the_name() {
        let stat = "123 (chat (hub) x) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        assert_eq!(ticks_from_stat(stat), Some(("chat (hub) x".to_string(), 300)));
    }
}
