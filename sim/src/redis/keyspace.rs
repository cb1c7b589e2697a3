//! The keyspace: keys holding strings or streams, with optional expiry.

use std::collections::BTreeMap;

use super::reply::{Reply, err};
use super::stream::Stream;

/// Redis's reply for an operation on a key of another type.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// A value.
#[derive(Debug, Clone)]
pub enum Value {
    /// A string.
    Str(Vec<u8>),
    /// A stream.
    Stream(Stream),
}

impl Value {
    /// The name `TYPE` reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Str(_) => "string",
            Self::Stream(_) => "stream",
        }
    }
}

#[derive(Debug, Clone)]
struct Slot {
    value: Value,
    expires_ms: Option<u64>,
}

/// All keys of the one database. `version` counts writes, so blocked readers know
/// when to look again and the fsync task knows whether anything changed.
#[derive(Debug, Clone, Default)]
pub struct Keyspace {
    slots: BTreeMap<Vec<u8>, Slot>,
    version: u64,
}

impl Keyspace {
    /// The write counter.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Marks a write.
    pub fn touch(&mut self) {
        self.version += 1;
    }

    /// Number of live keys at `now_ms`.
    pub fn len(&self, now_ms: u64) -> usize {
        self.slots.values().filter(|slot| slot.expires_ms.is_none_or(|at| at > now_ms)).count()
    }

    fn expire_if_due(&mut self, key: &[u8], now_ms: u64) {
        if self.slots.get(key).and_then(|slot| slot.expires_ms).is_some_and(|at| at <= now_ms) {
            self.slots.remove(key);
            self.touch();
        }
    }

    /// The value at `key`, if live.
    pub fn get(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Value> {
        self.expire_if_due(key, now_ms);
        self.slots.get_mut(key).map(|slot| &mut slot.value)
    }

    /// The stream at `key`: `Ok(None)` if missing, `WRONGTYPE` if another type.
    pub fn stream(&mut self, key: &[u8], now_ms: u64) -> Result<Option<&mut Stream>, Reply> {
        match self.get(key, now_ms) {
            None => Ok(None),
            Some(Value::Stream(stream)) => Ok(Some(stream)),
            Some(Value::Str(_)) => Err(err(WRONGTYPE)),
        }
    }

    /// The stream at `key`, created empty when missing.
    pub fn stream_or_create(&mut self, key: &[u8], now_ms: u64) -> Result<&mut Stream, Reply> {
        if self.get(key, now_ms).is_none() {
            self.slots.insert(key.to_vec(), Slot { value: Value::Stream(Stream::default()), expires_ms: None });
        }
        match self.stream(key, now_ms)? {
            Some(stream) => Ok(stream),
            None => Err(err("ERR internal: stream vanished after creation")),
        }
    }

    /// Sets `key` to a string, clearing any expiry unless `keep_ttl`.
    pub fn set_string(&mut self, key: &[u8], value: Vec<u8>, expires_ms: Option<u64>) {
        self.slots.insert(key.to_vec(), Slot { value: Value::Str(value), expires_ms });
        self.touch();
    }

    /// Removes `key`; true if it was live.
    pub fn remove(&mut self, key: &[u8], now_ms: u64) -> bool {
        self.expire_if_due(key, now_ms);
        let removed = self.slots.remove(key).is_some();
        if removed {
            self.touch();
        }
        removed
    }

    /// The expiry of a live key: `None` if missing, `Some(None)` if persistent.
    pub fn expiry(&mut self, key: &[u8], now_ms: u64) -> Option<Option<u64>> {
        self.expire_if_due(key, now_ms);
        self.slots.get(key).map(|slot| slot.expires_ms)
    }

    /// Sets the expiry of a live key; false if missing.
    pub fn set_expiry(&mut self, key: &[u8], at_ms: u64, now_ms: u64) -> bool {
        self.expire_if_due(key, now_ms);
        let found = match self.slots.get_mut(key) {
            Some(slot) => {
                slot.expires_ms = Some(at_ms);
                true
            }
            None => false,
        };
        if found {
            self.touch();
            self.expire_if_due(key, now_ms);
        }
        found
    }

    /// Drops every key.
    pub fn clear(&mut self) {
        self.slots.clear();
        self.touch();
    }
}
