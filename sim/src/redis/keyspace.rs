//! The keyspace: Redis's 16 databases of keys holding strings, lists or streams,
//! with optional expiry, and the two kinds of notices a write leaves behind.
//!
//! Redis tells two audiences about writes, and so does this module:
//! - `WATCH`ers (`signalModifiedKey`): every write to a key marks the clients
//!   watching it dirty, so their `EXEC` fails.
//! - blocked readers (`signalKeyAsReady`): creating, overwriting or deleting a
//!   key, appending to a stream and destroying a group leave a [`Signal`] the
//!   server drains after each command to serve blocked `XREAD`/`XREADGROUP`s in
//!   Redis's order. Other writes (XDEL, XTRIM, XSETID, SETID…) leave none, as in
//!   Redis, so a blocked reader does not wake on them.
//!
//! Commands see one database, the session's: the server selects it with
//! [`Keyspace::select`] before each command.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::reply::{Reply, err};
use super::stream::Stream;

/// Redis's reply for an operation on a key of another type.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// Number of databases (`databases 16`).
pub const DATABASES: usize = 16;

/// A value.
#[derive(Debug, Clone)]
pub enum Value {
    /// A string.
    Str(Vec<u8>),
    /// A list.
    List(VecDeque<Vec<u8>>),
    /// A stream.
    Stream(Stream),
}

impl Value {
    /// The name `TYPE` reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Str(_) => "string",
            Self::List(_) => "list",
            Self::Stream(_) => "stream",
        }
    }
}

#[derive(Debug, Clone)]
struct Slot {
    value: Value,
    expires_ms: Option<u64>,
}

/// One database.
#[derive(Debug, Clone, Default)]
struct Db {
    slots: BTreeMap<Vec<u8>, Slot>,
}

/// A notice for blocked readers: this key (or every key of this database) may
/// let one of them go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// One key of one database.
    Key(usize, Vec<u8>),
    /// Every key of one database (`FLUSHDB`, `FLUSHALL`, `SWAPDB`).
    Db(usize),
}

/// Every database, the selected one, and the notices writes leave. `version`
/// counts writes, so the fsync task knows whether anything changed.
#[derive(Debug, Clone)]
pub struct Keyspace {
    dbs: Vec<Db>,
    selected: usize,
    version: u64,
    signals: Vec<Signal>,
    watchers: BTreeMap<(usize, Vec<u8>), BTreeSet<u64>>,
    dirty: BTreeSet<u64>,
}

impl Default for Keyspace {
    fn default() -> Self {
        Self {
            dbs: vec![Db::default(); DATABASES],
            selected: 0,
            version: 0,
            signals: Vec::new(),
            watchers: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }
}

impl Keyspace {
    /// The data alone, as an fsync writes it: no watchers, no pending signals.
    pub fn durable_copy(&self) -> Self {
        Self { dbs: self.dbs.clone(), version: self.version, ..Self::default() }
    }

    /// The write counter.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Makes `db` (already range-checked) the database commands see.
    pub fn select(&mut self, db: usize) {
        debug_assert!(db < DATABASES);
        self.selected = db.min(DATABASES - 1);
    }

    /// The selected database's index.
    pub fn selected(&self) -> usize {
        self.selected
    }

    fn db(&mut self) -> &mut Db {
        let selected = self.selected;
        &mut self.dbs[selected]
    }

    /// Marks a write WATCH does not see (consumer-group bookkeeping: XACK,
    /// XCLAIM, deliveries, XGROUP…), so the next fsync still saves it.
    pub fn touch(&mut self) {
        self.version += 1;
    }

    /// Marks a write to `key` of the selected database: its watchers go dirty.
    pub fn modified(&mut self, key: &[u8]) {
        self.version += 1;
        if let Some(clients) = self.watchers.get(&(self.selected, key.to_vec())) {
            self.dirty.extend(clients.iter().copied());
        }
    }

    /// Leaves a notice for readers blocked on `key` of the selected database.
    pub fn signal(&mut self, key: &[u8]) {
        self.signals.push(Signal::Key(self.selected, key.to_vec()));
    }

    /// The notices left since the last call, in order.
    pub fn take_signals(&mut self) -> Vec<Signal> {
        std::mem::take(&mut self.signals)
    }

    /// Number of keys in the selected database, expired ones not yet removed
    /// included (Redis's `DBSIZE` counts them too).
    pub fn len(&self) -> usize {
        self.dbs[self.selected].slots.len()
    }

    /// `(keys, keys with an expiry)` of every non-empty database, for `INFO keyspace`.
    pub fn sizes(&self) -> Vec<(usize, usize, usize)> {
        let sizes = self.dbs.iter().enumerate().map(|(index, db)| {
            (index, db.slots.len(), db.slots.values().filter(|slot| slot.expires_ms.is_some()).count())
        });
        sizes.filter(|(_, keys, _)| *keys > 0).collect()
    }

    fn expire_if_due(&mut self, key: &[u8], now_ms: u64) {
        if self.db().slots.get(key).and_then(|slot| slot.expires_ms).is_some_and(|at| at <= now_ms) {
            self.db().slots.remove(key);
            self.modified(key);
            self.signal(key);
        }
    }

    /// The value at `key`, if live.
    pub fn get(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Value> {
        self.expire_if_due(key, now_ms);
        self.db().slots.get_mut(key).map(|slot| &mut slot.value)
    }

    /// Live keys of the selected database, in key order.
    pub fn keys(&mut self, now_ms: u64) -> Vec<Vec<u8>> {
        let all: Vec<Vec<u8>> = self.db().slots.keys().cloned().collect();
        all.into_iter().filter(|key| self.get(key, now_ms).is_some()).collect()
    }

    /// The stream at `key`: `Ok(None)` if missing, `WRONGTYPE` if another type.
    pub fn stream(&mut self, key: &[u8], now_ms: u64) -> Result<Option<&mut Stream>, Reply> {
        match self.get(key, now_ms) {
            None => Ok(None),
            Some(Value::Stream(stream)) => Ok(Some(stream)),
            Some(_) => Err(err(WRONGTYPE)),
        }
    }

    /// The stream at `key`, created empty when missing.
    pub fn stream_or_create(&mut self, key: &[u8], now_ms: u64) -> Result<&mut Stream, Reply> {
        if self.get(key, now_ms).is_none() {
            self.insert(key, Value::Stream(Stream::default()), None);
        }
        match self.stream(key, now_ms)? {
            Some(stream) => Ok(stream),
            None => Err(err("ERR internal: stream vanished after creation")),
        }
    }

    /// The list at `key`: `Ok(None)` if missing, `WRONGTYPE` if another type.
    pub fn list(&mut self, key: &[u8], now_ms: u64) -> Result<Option<&mut VecDeque<Vec<u8>>>, Reply> {
        match self.get(key, now_ms) {
            None => Ok(None),
            Some(Value::List(list)) => Ok(Some(list)),
            Some(_) => Err(err(WRONGTYPE)),
        }
    }

    /// Sets `key` to `value` with `expires_ms`, replacing whatever was there.
    pub fn insert(&mut self, key: &[u8], value: Value, expires_ms: Option<u64>) {
        self.db().slots.insert(key.to_vec(), Slot { value, expires_ms });
        self.modified(key);
        self.signal(key);
    }

    /// Sets `key` to a string.
    pub fn set_string(&mut self, key: &[u8], value: Vec<u8>, expires_ms: Option<u64>) {
        self.insert(key, Value::Str(value), expires_ms);
    }

    /// Removes `key`; true if it was live.
    pub fn remove(&mut self, key: &[u8], now_ms: u64) -> bool {
        self.take(key, now_ms).is_some()
    }

    /// Removes `key` and returns its value and expiry, if it was live.
    pub fn take(&mut self, key: &[u8], now_ms: u64) -> Option<(Value, Option<u64>)> {
        self.expire_if_due(key, now_ms);
        let slot = self.db().slots.remove(key)?;
        self.modified(key);
        self.signal(key);
        Some((slot.value, slot.expires_ms))
    }

    /// The expiry of a live key: `None` if missing, `Some(None)` if persistent.
    pub fn expiry(&mut self, key: &[u8], now_ms: u64) -> Option<Option<u64>> {
        self.expire_if_due(key, now_ms);
        self.db().slots.get(key).map(|slot| slot.expires_ms)
    }

    /// Sets (or with `None` clears) the expiry of a live key; false if missing.
    pub fn set_expiry(&mut self, key: &[u8], at_ms: Option<u64>, now_ms: u64) -> bool {
        self.expire_if_due(key, now_ms);
        let Some(slot) = self.db().slots.get_mut(key) else { return false };
        slot.expires_ms = at_ms;
        self.modified(key);
        true
    }

    /// Drops every key of the selected database (`all`: of every database);
    /// watchers of keys that existed go dirty, blocked readers are told.
    pub fn flush(&mut self, all: bool) {
        let targets: Vec<usize> = if all { (0..DATABASES).collect() } else { vec![self.selected] };
        for db in targets {
            let keys: Vec<Vec<u8>> = std::mem::take(&mut self.dbs[db].slots).into_keys().collect();
            self.dirty_watchers(db, keys.iter());
            self.signals.push(Signal::Db(db));
        }
        self.version += 1;
    }

    /// Swaps two databases; watchers of keys in either go dirty (as Redis's
    /// `touchAllWatchedKeysInDb` does), blocked readers of both are told.
    pub fn swap(&mut self, first: usize, second: usize) {
        let mut keys: BTreeSet<Vec<u8>> = self.dbs[first].slots.keys().cloned().collect();
        keys.extend(self.dbs[second].slots.keys().cloned());
        self.dbs.swap(first, second);
        for db in [first, second] {
            self.dirty_watchers(db, keys.iter());
            self.signals.push(Signal::Db(db));
        }
        self.version += 1;
    }

    fn dirty_watchers<'a>(&mut self, db: usize, keys: impl Iterator<Item = &'a Vec<u8>>) {
        for key in keys {
            if let Some(clients) = self.watchers.get(&(db, key.clone())) {
                self.dirty.extend(clients.iter().copied());
            }
        }
    }

    /// `WATCH key` for `client`.
    pub fn watch(&mut self, client: u64, key: &[u8]) {
        self.watchers.entry((self.selected, key.to_vec())).or_default().insert(client);
    }

    /// Forgets every watch of `client` and its dirty mark; returns whether it
    /// was dirty (a watched key changed since `WATCH`).
    pub fn unwatch_all(&mut self, client: u64) -> bool {
        self.watchers.retain(|_, clients| {
            clients.remove(&client);
            !clients.is_empty()
        });
        self.dirty.remove(&client)
    }
}
