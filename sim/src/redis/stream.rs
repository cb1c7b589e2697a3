//! A stream value: entries, consumer groups and their pending-entries lists.

use std::collections::BTreeMap;

use super::id::StreamId;

/// Entries per radix-tree node in Redis (`stream-node-max-entries`). Approximate
/// trimming (`MAXLEN ~`) only ever removes whole nodes; we model nodes as runs of
/// this many appended entries (Redis also closes a node at 4 KiB, which we ignore).
pub const NODE_ENTRIES: u64 = 100;

/// One stream.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    /// Live entries: id → flat field/value list.
    pub entries: BTreeMap<StreamId, Vec<Vec<u8>>>,
    /// The last id ever added (survives deletion of that entry).
    pub last_id: StreamId,
    /// The largest id ever deleted.
    pub max_deleted: StreamId,
    /// Count of entries ever added.
    pub entries_added: u64,
    /// Consumer groups by name.
    pub groups: BTreeMap<Vec<u8>, Group>,
    /// First id of every node that still exists, for approximate trimming.
    node_starts: BTreeMap<StreamId, u64>,
}

/// A consumer group.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// The last id delivered with `>`.
    pub last_delivered: StreamId,
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
    pub fn append(&mut self, id: StreamId, fields: Vec<Vec<u8>>) {
        debug_assert!(id > self.last_id || (self.entries_added == 0 && id > StreamId::MIN));
        match self.node_starts.last_key_value() {
            Some((_, appended)) if *appended < NODE_ENTRIES => {
                if let Some(mut last) = self.node_starts.last_entry() {
                    *last.get_mut() += 1;
                }
            }
            _ => {
                self.node_starts.insert(id, 1);
            }
        }
        self.entries.insert(id, fields);
        self.last_id = id;
        self.entries_added += 1;
    }

    /// Removes one entry; true if it existed.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let existed = self.entries.remove(&id).is_some();
        if existed {
            self.max_deleted = self.max_deleted.max(id);
            self.drop_empty_nodes();
        }
        existed
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Trims to at most `max_len` entries (exactly, or by whole nodes when
    /// `approx`), removing at most `limit` entries; returns how many went.
    pub fn trim_maxlen(&mut self, max_len: usize, approx: bool, limit: usize) -> usize {
        let done = |stream: &Self| stream.len() <= max_len;
        let removable = |stream: &Self, node: &[StreamId]| stream.len() - node.len() >= max_len;
        self.trim(approx, limit, done, removable, |stream, _| stream.len() > max_len)
    }

    /// Removes entries below `min_id` (exactly, or by whole nodes when `approx`).
    pub fn trim_minid(&mut self, min_id: StreamId, approx: bool, limit: usize) -> usize {
        let removable = |_: &Self, node: &[StreamId]| node.last().is_some_and(|last| *last < min_id);
        self.trim(approx, limit, |_| false, removable, |_, id| id < min_id)
    }

    /// Redis's `streamTrim`: whole nodes go first while the strategy allows; with
    /// `approx` that is all, otherwise single entries follow.
    fn trim(
        &mut self,
        approx: bool,
        limit: usize,
        done: impl Fn(&Self) -> bool,
        node_removable: impl Fn(&Self, &[StreamId]) -> bool,
        entry_removable: impl Fn(&Self, StreamId) -> bool,
    ) -> usize {
        let mut removed = 0;
        while let Some((start, node)) = self.first_node() {
            if done(self) || removed + node.len() > limit || !node_removable(self, &node) {
                break;
            }
            node.iter().for_each(|id| {
                self.entries.remove(id);
            });
            self.node_starts.remove(&start);
            removed += node.len();
        }
        if !approx {
            while let Some(id) = self.entries.keys().next().copied() {
                if !entry_removable(self, id) || removed >= limit {
                    break;
                }
                self.entries.remove(&id);
                removed += 1;
            }
            self.drop_empty_nodes();
        }
        removed
    }

    /// The first node: its start and its live ids.
    fn first_node(&self) -> Option<(StreamId, Vec<StreamId>)> {
        let mut starts = self.node_starts.keys();
        let start = *starts.next()?;
        let ids = match starts.next() {
            Some(end) => self.entries.range(start..*end).map(|(id, _)| *id).collect(),
            None => self.entries.range(start..).map(|(id, _)| *id).collect(),
        };
        Some((start, ids))
    }

    fn drop_empty_nodes(&mut self) {
        let starts: Vec<StreamId> = self.node_starts.keys().copied().collect();
        for (index, start) in starts.iter().enumerate() {
            let end = starts.get(index + 1).copied();
            let live = match end {
                Some(end) => self.entries.range(*start..end).next().is_some(),
                None => self.entries.range(*start..).next().is_some(),
            };
            if !live {
                self.node_starts.remove(start);
            }
        }
    }
}

impl Group {
    /// A group delivering entries after `last_delivered`.
    pub fn new(last_delivered: StreamId) -> Self {
        Self { last_delivered, ..Self::default() }
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
