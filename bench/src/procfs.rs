//! What `/proc` says about the server under test and about this process.
//!
//! Memory per connection is the server's resident set (VmRSS in
//! `/proc/PID/status`) before and after the connections, divided by their
//! number; which side saturates is read from the CPU time of each thread
//! (`/proc/PID/task/TID/stat`), so a report can say "the server's event
//! loop thread was busy 97% of the run" instead of guessing.
//!
//! A connection also costs kernel memory, which no process's RSS shows:
//! socket, inode, file, epoll and TCP structures in the slab caches, and
//! buffered bytes. [`slab_bytes`] sums `/proc/slabinfo` (readable by root
//! only) and [`tcp_mem_pages`] reads the TCP line of `/proc/net/sockstat`.
//! Both are machine-wide: anything else the machine does shows in them.

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

/// Slab memory of the whole kernel, in bytes: the sum over
/// `/proc/slabinfo` of `num_objs × objsize` (objects allocated in slabs,
/// in use or free, times their size; the slabs' own overhead is left out).
///
/// # Errors
/// When the file cannot be read (it is readable by root only) or has an
/// unknown format, as a sentence for the report.
pub fn slab_bytes() -> Result<u64, String> {
    let text = fs::read_to_string("/proc/slabinfo").map_err(|e| {
        if e.kind() == io::ErrorKind::PermissionDenied {
            format!("/proc/slabinfo: {e} (readable by root only)")
        } else {
            format!("/proc/slabinfo: {e}")
        }
    })?;
    slab_bytes_from(&text).ok_or_else(|| "/proc/slabinfo: unknown format (want version 2.x)".to_string())
}

/// [`slab_bytes`] from the file's text.
fn slab_bytes_from(text: &str) -> Option<u64> {
    let mut lines = text.lines();
    if !lines.next()?.starts_with("slabinfo - version: 2.") {
        return None;
    }
    let mut total: u64 = 0;
    // One line per cache, a few hundred; bounded by the file.
    for line in lines.filter(|l| !l.starts_with('#')) {
        // name active_objs num_objs objsize objperslab pagesperslab : ...
        let mut fields = line.split_whitespace().skip(2);
        let num_objs: u64 = fields.next()?.parse().ok()?;
        let objsize: u64 = fields.next()?.parse().ok()?;
        total = total.saturating_add(num_objs.saturating_mul(objsize));
    }
    Some(total)
}

/// Pages of memory the kernel has accounted to TCP sockets (their
/// buffers): `mem` on the `TCP:` line of `/proc/net/sockstat`, for this
/// network namespace.
///
/// # Errors
/// When the file cannot be read or has no such field, as a sentence.
pub fn tcp_mem_pages() -> Result<u64, String> {
    let text = fs::read_to_string("/proc/net/sockstat").map_err(|e| format!("/proc/net/sockstat: {e}"))?;
    tcp_mem_from(&text).ok_or_else(|| "/proc/net/sockstat: no \"TCP: ... mem N\"".to_string())
}

/// [`tcp_mem_pages`] from the file's text.
fn tcp_mem_from(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix("TCP:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "mem")?;
    words.get(at + 1)?.parse().ok()
}

/// The kernel's page size in bytes (the unit of [`tcp_mem_pages`]), from
/// the first mapping in `/proc/self/smaps`; 4096 if that cannot be read.
pub fn page_size() -> u64 {
    fs::read_to_string("/proc/self/smaps")
        .ok()
        .and_then(|text| {
            let line = text.lines().find_map(|l| l.strip_prefix("KernelPageSize:"))?;
            let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(4096)
}

/// Whether a TCP socket of this network namespace listens on `port` (any
/// address), from `/proc/net/tcp` and `/proc/net/tcp6`; `None` when
/// neither can be read.
pub fn is_listening(port: u16) -> Option<bool> {
    let mut readable = false;
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        readable = true;
        if listens_in(&text, port) {
            return Some(true);
        }
    }
    readable.then_some(false)
}

/// [`is_listening`] for one file's text: a line whose local address ends
/// in `:PORT` (hex) and whose state is `0A` (LISTEN).
fn listens_in(text: &str, port: u16) -> bool {
    let want = format!(":{port:04X}");
    text.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let (Some(local), Some(_remote), Some(state)) = (fields.next(), fields.next(), fields.next()) else {
            return false;
        };
        local.ends_with(&want) && state == "0A"
    })
}

/// Open file descriptors of process `pid`: the entries of `/proc/PID/fd`
/// (readable for our own children, or as root). `None` when the directory
/// cannot be read (the process is gone).
pub fn fd_count(pid: u32) -> Option<u64> {
    let dir = fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    // Bounded by the process's descriptor limit.
    Some(dir.count() as u64)
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
        // stdin, stdout, stderr at least.
        assert!(fd_count(pid).unwrap() >= 3);
        assert!(!thread_ticks(pid).is_empty());
        let _ = process_ticks(pid);
    }

    #[test]
    fn slabinfo_sums_allocated_objects() {
        let text = "slabinfo - version: 2.1\n\
            # name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n\
            TCP                  120    130   2432   13    8 : tunables    0    0    0 : slabdata     10     10      0\n\
            sock_inode_cache     300    312    832   39    8 : tunables    0    0    0 : slabdata      8      8      0\n";
        assert_eq!(slab_bytes_from(text), Some(130 * 2432 + 312 * 832));
        assert_eq!(slab_bytes_from("slabinfo - version: 1.1\n"), None);
        assert_eq!(slab_bytes_from("slabinfo - version: 2.1\nTCP x y\n"), None);
    }

    #[test]
    fn sockstat_tcp_mem() {
        let text = "sockets: used 11\nTCP: inuse 1 orphan 0 tw 3 alloc 1 mem 7\nUDP: inuse 0 mem 2\n";
        assert_eq!(tcp_mem_from(text), Some(7));
        assert_eq!(tcp_mem_from("UDP: inuse 0 mem 2\n"), None);
        // Whatever this machine says, it is a number or a reason.
        let _ = tcp_mem_pages();
        let _ = slab_bytes();
        assert!(page_size() >= 4096);
    }

    #[test]
    fn a_listener_is_seen_in_proc_net_tcp() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
               0: 0100007F:1EC6 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1049 1\n\
               1: 0100007F:1EC7 0100007F:1EC6 01 00000000:00000000 00:00000000 00000000     0        0 1050 1\n";
        assert!(listens_in(text, 0x1EC6));
        // Connected (01), not listening.
        assert!(!listens_in(text, 0x1EC7));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(is_listening(port), Some(true));
        drop(listener);
        assert_eq!(is_listening(port), Some(false));
    }

    #[test]
    fn stat_with_spaces_in_the_name() {
        let stat = "123 (chat (hub) x) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        assert_eq!(ticks_from_stat(stat), Some(("chat (hub) x".to_string(), 300)));
    }
}
