//! One order per room: delivers each room's lines in sequence order, as
//! Redis numbered them, whatever order they arrive in.
//!
//! Lines come from two places: live from the subscription, and from the
//! room's stream (a gap filled, or what was missed while the link was
//! down). The [`Orderer`] is pure bookkeeping, with no I/O, so that the
//! hub can run it: a line whose number follows the last one delivered
//! goes at once; a later one waits while the gap is asked for from the
//! stream ([`Step::Fill`]); a line not in the stream (trimmed, or never
//! kept) is skipped once the stream has answered, so that one lost line
//! cannot hold a room up for ever. Duplicates (a line both live and in a
//! backlog) are dropped.

use std::collections::{BTreeMap, HashMap};

/// What the owner of an [`Orderer`] must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<T> {
    /// Deliver this line of this room, now.
    Deliver {
        /// The room's key.
        room: String,
        /// Its number.
        seq: u64,
        /// The line.
        line: T,
    },
    /// Read the room's stream from `from` to `to` (both included) and hand
    /// what is there to [`Orderer::backlog`].
    Fill {
        /// The room's key.
        room: String,
        /// First missing number.
        from: u64,
        /// Last missing number.
        to: u64,
    },
}

/// Where one room is.
#[derive(Debug)]
struct RoomOrder<T> {
    /// The last number delivered; `None` until the first line.
    last: Option<u64>,
    /// Lines that came early, waiting for the gap before them.
    held: BTreeMap<u64, T>,
    /// A fill is on its way: do not ask again.
    filling: bool,
}

impl<T> Default for RoomOrder<T> {
    fn default() -> Self {
        RoomOrder {
            last: None,
            held: BTreeMap::new(),
            filling: false,
        }
    }
}

/// The most lines one room holds while it waits for a gap: past this, the
/// gap is skipped, so a stuck fill cannot make memory grow.
pub const MAX_HELD: usize = 10_000;

/// Every room's place in its sequence.
#[derive(Debug)]
pub struct Orderer<T> {
    rooms: HashMap<String, RoomOrder<T>>,
    /// A catch-up from the streams is on its way (at start, and after the
    /// link came back): a room never seen waits for it rather than taking
    /// its first live line as its start.
    syncing: bool,
}

impl<T> Default for Orderer<T> {
    fn default() -> Self {
        Orderer {
            rooms: HashMap::new(),
            syncing: true,
        }
    }
}

impl<T> Orderer<T> {
    /// The last number delivered in each room, for a catch-up.
    pub fn positions(&self) -> Vec<(String, u64)> {
        self.rooms
            .iter()
            .filter_map(|(room, order)| order.last.map(|last| (room.clone(), last)))
            .collect()
    }

    /// The link went down: lines held are dropped (the catch-up brings
    /// them back) and every room waits for the next catch-up. Where each
    /// room was is kept, so that nothing is delivered twice.
    pub fn reset(&mut self) {
        self.syncing = true;
        for order in self.rooms.values_mut() {
            order.held.clear();
            order.filling = false;
        }
    }

    /// Redis lost its data: every room's numbering starts again, so where
    /// each room was means nothing any more. Lines held stay held.
    pub fn forget_positions(&mut self) {
        for order in self.rooms.values_mut() {
            order.last = None;
            order.filling = false;
        }
    }

    /// A line from the subscription.
    pub fn live(&mut self, room: &str, seq: u64, line: T) -> Vec<Step<T>> {
        let syncing = self.syncing;
        let order = self.rooms.entry(room.to_string()).or_default();
        let mut steps = Vec::new();
        match order.last {
            None if syncing => {
                order.held.insert(seq, line);
            }
            None => {
                order.last = Some(seq.saturating_sub(1));
                order.held.insert(seq, line);
                drain(room, order, false, &mut steps);
            }
            Some(last) if seq <= last => {}
            Some(last) => {
                order.held.insert(seq, line);
                if syncing {
                    return steps;
                }
                drain(room, order, order.held.len() > MAX_HELD, &mut steps);
                if let (Some((&first, _)), false) = (order.held.first_key_value(), order.filling) {
                    order.filling = true;
                    steps.push(Step::Fill {
                        room: room.to_string(),
                        from: last.max(order.last.unwrap_or(last)).saturating_add(1),
                        to: first.saturating_sub(1),
                    });
                }
            }
        }
        steps
    }

    /// Lines read from a room's stream, in order, with the last number the
    /// read covered (`upto`): numbers up to it that are not there are
    /// skipped.
    pub fn backlog(&mut self, room: &str, lines: Vec<(u64, T)>, upto: u64) -> Vec<Step<T>> {
        let order = self.rooms.entry(room.to_string()).or_default();
        let mut steps = Vec::new();
        for (seq, line) in lines {
            if order.last.is_none_or(|last| seq > last) {
                order.last = Some(seq);
                steps.push(Step::Deliver {
                    room: room.to_string(),
                    seq,
                    line,
                });
            }
        }
        if order.last.is_none_or(|last| last < upto) {
            order.last = Some(upto);
        }
        order.filling = false;
        if !self.syncing {
            drain(room, order, true, &mut steps);
        }
        steps
    }

    /// The catch-up has been read: every room goes on from where it is,
    /// skipping what the streams did not have.
    pub fn synced(&mut self) -> Vec<Step<T>> {
        self.syncing = false;
        let mut steps = Vec::new();
        for (room, order) in &mut self.rooms {
            if order.last.is_none() {
                if let Some((&first, _)) = order.held.first_key_value() {
                    order.last = Some(first.saturating_sub(1));
                }
            }
            drain(room, order, true, &mut steps);
        }
        steps
    }
}

/// Delivers the held lines that follow the last one; with `skip`, jumps
/// over any gap (the stream has answered, or too much is held).
fn drain<T>(room: &str, order: &mut RoomOrder<T>, skip: bool, steps: &mut Vec<Step<T>>) {
    while let Some(entry) = order.held.first_entry() {
        let seq = *entry.key();
        let last = order.last.unwrap_or(0);
        if seq <= last {
            entry.remove();
        } else if seq == last.saturating_add(1) || skip {
            let line = entry.remove();
            order.last = Some(seq);
            steps.push(Step::Deliver {
                room: room.to_string(),
                seq,
                line,
            });
        } else {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered(steps: &[Step<&'static str>]) -> Vec<u64> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Deliver { seq, .. } => Some(*seq),
                Step::Fill { .. } => None,
            })
            .collect()
    }

    fn started() -> Orderer<&'static str> {
        let mut o = Orderer::default();
        assert!(o.synced().is_empty());
        o
    }

    #[test]
    fn lines_in_order_go_at_once() {
        let mut o = started();
        assert_eq!(delivered(&o.live("#a", 7, "x")), [7]);
        assert_eq!(delivered(&o.live("#a", 8, "y")), [8]);
        assert_eq!(delivered(&o.live("#b", 1, "z")), [1]);
    }

    #[test]
    fn a_gap_holds_later_lines_and_asks_for_a_fill() {
        let mut o = started();
        o.live("#a", 1, "a");
        let steps = o.live("#a", 4, "d");
        assert_eq!(delivered(&steps), Vec::<u64>::new());
        assert_eq!(
            steps,
            [Step::Fill {
                room: "#a".into(),
                from: 2,
                to: 3
            }]
        );
        // A second early line does not ask again.
        assert!(o.live("#a", 5, "e").is_empty());
        let steps = o.backlog("#a", vec![(2, "b"), (3, "c")], 3);
        assert_eq!(delivered(&steps), [2, 3, 4, 5]);
    }

    #[test]
    fn a_line_the_stream_no_longer_has_is_skipped() {
        let mut o = started();
        o.live("#a", 1, "a");
        o.live("#a", 4, "d");
        assert_eq!(delivered(&o.backlog("#a", vec![(3, "c")], 3)), [3, 4]);
    }

    #[test]
    fn duplicates_are_dropped() {
        let mut o = started();
        o.live("#a", 1, "a");
        o.live("#a", 2, "b");
        assert!(delivered(&o.live("#a", 2, "b")).is_empty());
        assert!(delivered(&o.backlog("#a", vec![(1, "a"), (2, "b")], 2)).is_empty());
    }

    #[test]
    fn while_syncing_live_lines_wait_for_the_backlog() {
        let mut o: Orderer<&'static str> = Orderer::default();
        assert!(o.live("#a", 10, "j").is_empty());
        assert!(o.live("#a", 11, "k").is_empty());
        // The stream had 8..10: 10 comes once, 11 after it.
        assert_eq!(
            delivered(&o.backlog("#a", vec![(8, "h"), (9, "i"), (10, "j")], 10)),
            [8, 9, 10]
        );
        assert_eq!(delivered(&o.synced()), [11]);
    }

    #[test]
    fn after_a_reset_nothing_is_delivered_twice() {
        let mut o = started();
        o.live("#a", 1, "a");
        o.live("#a", 2, "b");
        o.reset();
        assert_eq!(o.positions(), [("#a".to_string(), 2)]);
        assert!(o.live("#a", 5, "e").is_empty());
        assert_eq!(
            delivered(&o.backlog("#a", vec![(2, "b"), (3, "c"), (4, "d")], 4)),
            [3, 4]
        );
        assert_eq!(delivered(&o.synced()), [5]);
    }

    #[test]
    fn after_redis_lost_its_data_numbering_starts_again() {
        let mut o = started();
        o.live("#a", 1, "a");
        o.live("#a", 2, "b");
        o.reset();
        o.forget_positions();
        assert!(o.live("#a", 1, "new").is_empty());
        assert_eq!(delivered(&o.backlog("#a", vec![(1, "new")], 1)), [1]);
        assert_eq!(delivered(&o.synced()), Vec::<u64>::new());
        assert_eq!(delivered(&o.live("#a", 2, "next")), [2]);
    }

    #[test]
    fn a_room_first_seen_after_the_sync_starts_where_it_is() {
        let mut o = started();
        assert_eq!(delivered(&o.live("#new", 1, "a")), [1]);
        assert_eq!(delivered(&o.live("#later", 40, "a")), [40]);
    }
}
