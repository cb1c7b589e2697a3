//! A stream value: entries, the radix-tree nodes they sit in, consumer groups
//! and their pending-entries lists, and Redis 7.0's logical read counters.
//!
//! Nodes matter because approximate trimming (`MAXLEN ~`, `MINID ~`) only ever
//! removes whole nodes, so `XLEN` after `~` depends on where nodes begin. A node
//! here is what Redis's listpack is: a run of appended entries, closed when it
//! holds `stream-node-max-entries` entries (deleted ones count until the node
//! goes) or would pass `stream-node-max-bytes`. Bytes are estimated, not the
//! listpack's exact encoding, so only the entry limit is exact.

use std::collections::BTreeMap;

use super::id::StreamId;

/// `stream-node-max-entries` and `stream-node-max-bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLimits {
    /// Entries per node; 0 means no entry limit.
    pub max_entries: u64,
    /// Estimated bytes per node; 0 means Redis's 1 GiB cap.
    pub max_bytes: u64,
}

impl Default for NodeLimits {
    fn default() -> Self {
        Self { max_entries: 100, max_bytes: 4096 }
    }
}

/// Redis's `STREAM_LISTPACK_MAX_SIZE`.
const LISTPACK_MAX_BYTES: u64 = 1 << 30;

/// One radix-tree node (a listpack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Node {
    /// Entries ever appended to it, deleted ones included.
    appended: u64,
    /// The last id appended to it (it may be deleted since).
    last: StreamId,
    /// Estimated size.
    bytes: u64,
}

/// One stream.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    /// Live entries: id → flat field/value list.
    pub entries: BTreeMap<StreamId, Vec<Vec<u8>>>,
    /// The last id ever added (survives deletion of that entry), or set by XSETID.
    pub last_id: StreamId,
    /// The largest id ever deleted by XDEL (or set by XSETID).
    pub max_deleted: StreamId,
    /// Count of entries ever added (or set by XSETID).
    pub entries_added: u64,
    /// Consumer groups by name.
    pub groups: BTreeMap<Vec<u8>, Group>,
    /// `recorded-first-entry-id`: the first live id as of the last change.
    pub first_id: StreamId,
    /// Nodes by their first id.
    nodes: BTreeMap<StreamId, Node>,
}

/// A consumer group.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// The last id delivered with `>`.
    pub last_delivered: StreamId,
    /// Entries read through this group (`entries-read`), when known.
    pub entries_read: Option<u64>,
    /// Delivered but unacknowledged entries.
    pub pel: BTreeMap<StreamId, Pending>,
    /// Consumers by name.
    pub consumers: BTreeMap<Vec<u8>, Consumer>,
}

/// A pending entry: who holds it, since when, how often it was delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Owning consumer.
    pub consumer: Vec<u8>,
    /// Server time (ms) of the last delivery.
    pub delivered_ms: u64,
    /// Number of deliveries.
    pub deliveries: u64,
}

/// A consumer.
#[derive(Debug, Clone, Default)]
pub struct Consumer {
    /// Server time (ms) the consumer was last seen.
    pub seen_ms: u64,
}

impl Stream {
    /// Appends an entry whose id the caller has checked is above `last_id`.
    pub fn append(&mut self, id: StreamId, fields: Vec<Vec<u8>>, limits: NodeLimits) {
        debug_assert!(id > self.last_id || (self.entries_added == 0 && id > StreamId::MIN));
        let size: u64 = fields.iter().map(|field| field.len() as u64).sum();
        let max_bytes =
            if limits.max_bytes == 0 { LISTPACK_MAX_BYTES } else { limits.max_bytes.min(LISTPACK_MAX_BYTES) };
        let fits = |node: &Node| {
            node.bytes + size < max_bytes && (limits.max_entries == 0 || node.appended < limits.max_entries)
        };
        match self.nodes.last_entry() {
            Some(mut last) if fits(last.get()) => {
                let node = last.get_mut();
                node.appended += 1;
                node.last = id;
                node.bytes += entry_bytes(&fields);
            }
            _ => {
                self.nodes.insert(id, Node { appended: 1, last: id, bytes: 16 + entry_bytes(&fields) });
            }
        }
        if self.entries.is_empty() {
            self.first_id = id;
        }
        self.entries.insert(id, fields);
        self.last_id = id;
        self.entries_added += 1;
    }

    /// Removes one entry (XDEL); true if it existed.
    pub fn delete(&mut self, id: StreamId) -> bool {
        if self.entries.remove(&id).is_none() {
            return false;
        }
        self.max_deleted = self.max_deleted.max(id);
        if let Some((start, _)) = self.nodes.range(..=id).next_back() {
            let start = *start;
            if self.live_in(start) == 0 {
                self.nodes.remove(&start);
            }
        }
        self.record_first_id();
        true
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Number of radix-tree nodes (`radix-tree-keys`).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// An estimate of `radix-tree-nodes`: the nodes of a compressed radix tree
    /// over the node keys (ids as 16 big-endian bytes), as Redis's rax builds
    /// one by insertion. Deletions can leave Redis's tree less compressed.
    pub fn radix_tree_nodes(&self) -> usize {
        let keys: Vec<[u8; 16]> = self.nodes.keys().map(|id| id_key(*id)).collect();
        if keys.is_empty() { 1 } else { trie_nodes(&keys, 0) }
    }

    fn record_first_id(&mut self) {
        self.first_id = self.entries.keys().next().copied().unwrap_or(StreamId::MIN);
    }

    /// Live entries of the node starting at `start`.
    fn live_in(&self, start: StreamId) -> usize {
        let end = self.nodes.range(start..).nth(1).map(|(next, _)| *next);
        match end {
            Some(end) => self.entries.range(start..end).count(),
            None => self.entries.range(start..).count(),
        }
    }

    /// Trims to at most `max_len` entries (exactly, or by whole nodes when
    /// `approx`), removing at most `limit` entries (0: no limit); returns how many went.
    pub fn trim_maxlen(&mut self, max_len: usize, approx: bool, limit: usize) -> usize {
        let done = |stream: &Self| stream.len() <= max_len;
        self.trim(
            approx,
            limit,
            done,
            |stream, _, live| stream.len() - live >= max_len,
            |stream, _| stream.len() > max_len,
        )
    }

    /// Removes entries below `min_id` (exactly, or by whole nodes when `approx`).
    pub fn trim_minid(&mut self, min_id: StreamId, approx: bool, limit: usize) -> usize {
        self.trim(approx, limit, |_| false, |_, node, _| node.last < min_id, |_, id| id < min_id)
    }

    /// Redis's `streamTrim`: whole nodes go while the strategy allows and the
    /// limit holds; with `approx` that is all, otherwise entries of the first
    /// remaining node follow (the node stays, even if left with none live).
    fn trim(
        &mut self,
        approx: bool,
        limit: usize,
        done: impl Fn(&Self) -> bool,
        node_removable: impl Fn(&Self, &Node, usize) -> bool,
        entry_removable: impl Fn(&Self, StreamId) -> bool,
    ) -> usize {
        let mut removed = 0;
        while let Some((start, node)) = self.nodes.first_key_value().map(|(start, node)| (*start, *node)) {
            if done(self) {
                break;
            }
            let live = self.live_in(start);
            if limit != 0 && removed + live > limit {
                break;
            }
            if node_removable(self, &node, live) {
                let ids: Vec<StreamId> = self.entries.range(start..=node.last).map(|(id, _)| *id).collect();
                ids.iter().for_each(|id| {
                    self.entries.remove(id);
                });
                self.nodes.remove(&start);
                removed += live;
                continue;
            }
            if approx {
                break;
            }
            while let Some(id) = self.entries.range(start..=node.last).next().map(|(id, _)| *id) {
                if !entry_removable(self, id) {
                    break;
                }
                self.entries.remove(&id);
                removed += 1;
            }
            break;
        }
        if removed > 0 {
            self.record_first_id();
        }
        removed
    }
}

fn id_key(id: StreamId) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&id.ms.to_be_bytes());
    key[8..].copy_from_slice(&id.seq.to_be_bytes());
    key
}

/// Nodes of a compressed trie over sorted, equal-length `keys` below `depth`.
fn trie_nodes(keys: &[[u8; 16]], depth: usize) -> usize {
    let (Some(first), Some(last)) = (keys.first(), keys.last()) else { return 0 };
    let common = (depth..16).take_while(|at| first[*at] == last[*at]).count();
    if keys.len() == 1 {
        return usize::from(common > 0) + 1;
    }
    let branch_at = depth + common;
    let mut nodes = usize::from(common > 0) + 1;
    let mut start = 0;
    while start < keys.len() {
        let byte = keys[start][branch_at];
        let end = start + keys[start..].iter().take_while(|key| key[branch_at] == byte).count();
        nodes += trie_nodes(&keys[start..end], branch_at + 1);
        start = end;
    }
    nodes
}

/// An estimate of the listpack bytes one entry takes.
fn entry_bytes(fields: &[Vec<u8>]) -> u64 {
    8 + fields.iter().map(|field| field.len() as u64 + 2).sum::<u64>()
}

impl Stream {
    /// Whether an entry was deleted at or after `from` (Redis's
    /// `streamRangeHasTombstones` with an open end).
    fn has_tombstones_from(&self, from: StreamId) -> bool {
        if self.entries.is_empty() || self.max_deleted == StreamId::MIN || self.first_id > self.max_deleted {
            return false;
        }
        from <= self.max_deleted
    }

    /// Redis's `streamEstimateDistanceFromFirstEverEntry`: the logical read
    /// counter of `id`, when it can be known.
    pub fn estimate_read_counter(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.entries.is_empty() && id <= self.last_id {
            return Some(self.entries_added);
        }
        if id == self.last_id {
            return Some(self.entries_added);
        }
        if id > self.last_id {
            return None;
        }
        let length = self.len() as u64;
        if self.max_deleted == StreamId::MIN || self.max_deleted < self.first_id {
            if id < self.first_id {
                return Some(self.entries_added - length);
            }
            if id == self.first_id {
                return Some(self.entries_added - length + 1);
            }
        }
        None
    }

    /// A group's `lag`, when it can be known (negative when ENTRIESREAD was
    /// set past what the stream holds, as in Redis).
    pub fn lag(&self, group: &Group) -> Option<i64> {
        let lag =
            |read: u64| i64::try_from(self.entries_added).unwrap_or(i64::MAX) - i64::try_from(read).unwrap_or(i64::MAX);
        if self.entries_added == 0 {
            return Some(0);
        }
        if let Some(read) = group.entries_read
            && !self.has_tombstones_from(group.last_delivered)
        {
            return Some(lag(read));
        }
        self.estimate_read_counter(group.last_delivered).map(lag)
    }

    /// Moves `group`'s last-delivered id forward to `id` as a `>` read does,
    /// keeping its read counter.
    pub fn advance_group(&mut self, group_name: &[u8], id: StreamId) {
        let estimate = self.estimate_read_counter(id);
        let tombstones = self.has_tombstones_from(id);
        let entries_added = self.entries_added;
        let Some(group) = self.groups.get_mut(group_name) else { return };
        if id <= group.last_delivered {
            return;
        }
        match group.entries_read {
            Some(read) if !tombstones => group.entries_read = Some(read + 1),
            _ if entries_added > 0 => group.entries_read = estimate,
            _ => {}
        }
        group.last_delivered = id;
    }
}

impl Group {
    /// A group delivering entries after `last_delivered`.
    pub fn new(last_delivered: StreamId, entries_read: Option<u64>) -> Self {
        Self { last_delivered, entries_read, ..Self::default() }
    }

    /// The consumer called `name`, created if missing; marks it seen at `now_ms`.
    pub fn touch(&mut self, name: &[u8], now_ms: u64) -> bool {
        let created = !self.consumers.contains_key(name);
        self.consumers.entry(name.to_vec()).or_default().seen_ms = now_ms;
        created
    }

    /// Records a delivery of `id` to `consumer` (new or reassigned).
    pub fn deliver(&mut self, id: StreamId, consumer: &[u8], now_ms: u64) {
        self.pel.insert(id, Pending { consumer: consumer.to_vec(), delivered_ms: now_ms, deliveries: 1 });
    }

    /// Pending entries owned by `consumer`.
    pub fn pending_of<'a>(&'a self, consumer: &'a [u8]) -> impl Iterator<Item = (&'a StreamId, &'a Pending)> {
        self.pel.iter().filter(move |(_, pending)| pending.consumer == consumer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(count: u64, limits: NodeLimits) -> Stream {
        let mut stream = Stream::default();
        for ms in 1..=count {
            stream.append(StreamId::new(ms, 0), vec![b"f".to_vec(), b"v".to_vec()], limits);
        }
        stream
    }

    #[test]
    fn approximate_trimming_removes_whole_nodes_only() {
        let limits = NodeLimits { max_entries: 3, ..NodeLimits::default() };
        let mut stream = stream_of(10, limits);
        assert_eq!(stream.node_count(), 4);
        assert_eq!(stream.trim_maxlen(5, true, 0), 3, "one node of 3 goes; the next would leave 4 < 5");
        assert_eq!(stream.trim_maxlen(5, false, 0), 2, "exact trimming goes into the node");
        assert_eq!(stream.node_count(), 3, "the partly trimmed node stays beside the two after it");
    }

    #[test]
    fn deleting_the_last_live_entry_of_a_node_removes_it() {
        let limits = NodeLimits { max_entries: 2, ..NodeLimits::default() };
        let mut stream = stream_of(4, limits);
        assert!(stream.delete(StreamId::new(1, 0)));
        assert_eq!(stream.node_count(), 2);
        assert!(stream.delete(StreamId::new(2, 0)));
        assert_eq!(stream.node_count(), 1);
        assert_eq!(stream.first_id, StreamId::new(3, 0));
    }
}
