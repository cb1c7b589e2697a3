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

    /// Whether there are no live entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Trims to at most `max_len` entries (exactly, or by whole nodes when
    /// `approx`), removing at most `limit` entries; returns how many went.
    pub fn trim_maxlen(&mut self, max_len: usize, approx: bool, limit: usize) -> usize {
        self.trim(approx, limit, |stream, _| stream.len() > max_len, |stream, live| stream.len() - live >= max_len)
    }

    /// Removes entries below `min_id` (exactly, or by whole nodes when `approx`).
    pub fn trim_minid(&mut self, min_id: StreamId, approx: bool, limit: usize) -> usize {
        self.trim(approx, limit, |_, id| id < min_id, |stream, live| stream.node_below(live, min_id))
    }

    fn node_below(&self, _live: usize, min_id: StreamId) -> bool {
        let mut starts = self.node_starts.keys();
        starts.next();
        starts.next().is_some_and(|next| *next <= min_id)
    }

    fn trim(
        &mut self,
        approx: bool,
        limit: usize,
        exact_keep_going: impl Fn(&Self, StreamId) -> bool,
        node_removable: impl Fn(&Self, usize) -> bool,
    ) -> usize {
        let mut removed = 0;
        if approx {
            while let Some((start, end)) = self.first_node() {
                let live = self.entries.range(start..end).count();
                if !node_removable(self, live) || removed + live > limit {
                    break;
                }
                let ids: Vec<StreamId> = self.entries.range(start..end).map(|(id, _)| *id).collect();
                ids.into_iter().for_each(|id| {
                    self.entries.remove(&id);
                });
                self.node_starts.remove(&start);
                removed += live;
            }
        } else {
            while let Some(id) = self.entries.keys().next().copied() {
                if !exact_keep_going(self, id) || removed >= limit {
                    break;
                }
                self.entries.remove(&id);
                removed += 1;
            }
            self.drop_empty_nodes();
        }
        removed
    }

    /// The first node as `[start, next start)`; `None` when only the tail node is
    /// left, which Redis never removes by approximate trimming.
    fn first_node(&self) -> Option<(StreamId, StreamId)> {
        let mut starts = self.node_starts.keys();
        let start = *starts.next()?;
        let end = *starts.next()?;
        Some((start, end))
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
