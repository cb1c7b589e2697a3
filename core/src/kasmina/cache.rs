//! The kernel cache: kernels Kasmina already has, by blueprint, least recently
//! used out first (Esper-Lite kept 32 on the GPU).
//!
//! It sits behind an async mutex because the prefetch coordinator's issuing and
//! answering loops both reach it; every acquisition is timed
//! (`kasmina.cache.lock_wait_ms`) so contention shows in telemetry instead of
//! as unexplained prefetch latency.

use std::collections::{BTreeMap, VecDeque};

use tokio::sync::{Mutex, MutexGuard};
use tokio::time::Instant;

use super::prefetch::Kernel;

/// Kernels by blueprint, bounded.
#[derive(Debug)]
pub struct KernelCache {
    inner: Mutex<Lru>,
}

#[derive(Debug)]
struct Lru {
    capacity: usize,
    kernels: BTreeMap<String, Kernel>,
    order: VecDeque<String>,
}

/// Lock waits seen so far: the longest, which Kasmina reports as
/// `kasmina.cache.lock_wait_ms`. No metric reads a count or a total of the
/// waits, so none is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LockWaits {
    pub wait_ms_max: f64,
}

impl KernelCache {
    /// An empty cache of at most `capacity` kernels (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self { inner: Mutex::new(Lru { capacity, kernels: BTreeMap::new(), order: VecDeque::new() }) }
    }

    /// The cached kernel for `blueprint_id`, marking it most recently used.
    pub async fn get(&self, blueprint_id: &str, waits: &mut LockWaits) -> Option<Kernel> {
        let mut lru = self.lock(waits).await;
        let kernel = lru.kernels.get(blueprint_id).cloned()?;
        lru.touch(blueprint_id);
        Some(kernel)
    }

    /// Caches `kernel`, evicting the least recently used beyond capacity.
    pub async fn insert(&self, kernel: Kernel, waits: &mut LockWaits) {
        let mut lru = self.lock(waits).await;
        let key = kernel.blueprint_id.clone();
        if lru.kernels.insert(key.clone(), kernel).is_some() {
            lru.touch(&key);
        } else {
            lru.order.push_back(key);
        }
        while lru.order.len() > lru.capacity {
            if let Some(oldest) = lru.order.pop_front() {
                lru.kernels.remove(&oldest);
            }
        }
        debug_assert_eq!(lru.order.len(), lru.kernels.len());
    }

    async fn lock(&self, waits: &mut LockWaits) -> MutexGuard<'_, Lru> {
        let asked = Instant::now();
        let guard = self.inner.lock().await;
        let waited_ms = asked.elapsed().as_secs_f64() * 1_000.0;
        waits.wait_ms_max = waits.wait_ms_max.max(waited_ms);
        guard
    }
}

impl Lru {
    fn touch(&mut self, key: &str) {
        if let Some(at) = self.order.iter().position(|k| k == key) {
            if let Some(k) = self.order.remove(at) {
                self.order.push_back(k);
            }
        }
    }
}
