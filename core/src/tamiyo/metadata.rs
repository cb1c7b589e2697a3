//! Blueprint metadata: how risky is the blueprint the policy wants to germinate?
//!
//! Esper-Lite's Tamiyo asked Urza (the artifact library) for a blueprint's descriptor
//! before letting a germination through, under `TAMIYO_METADATA_TIMEOUT_MS` (25 ms),
//! with a 5-minute cache and a `metadata` circuit breaker (3 failures, 100 ms
//! cooldown). A slow Urza must never stall training: a lookup past its deadline is a
//! [`TamiyoTimeoutError`] (reason `timeout_urza`), repeated timeouts open the breaker
//! so later lookups fail at once, and after the cooldown one trial lookup is let
//! through (half-open) to see whether Urza is back.
//!
//! The source is a trait so the Urza client can replace [`BlueprintCatalog`], the
//! in-process stand-in built from Karn's catalog, whose injectable delay
//! is how tests and the sim make Urza slow. All timing is tokio time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::{Instant, timeout};

use crate::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use crate::karn::{Blueprint, Catalog};
use crate::leyline::BlueprintTier;

/// What Tamiyo needs to know about a blueprint (a subset of Leyline's
/// `BlueprintDescriptor`).
#[derive(Debug, Clone, PartialEq)]
pub struct BlueprintMetadata {
    pub blueprint_id: String,
    pub name: String,
    pub tier: BlueprintTier,
    /// Karn's risk score in [0, 1].
    pub risk: f32,
    /// May only run quarantined: Tamiyo never germinates it.
    pub quarantine_only: bool,
    pub approval_required: bool,
}

impl From<&Blueprint> for BlueprintMetadata {
    fn from(blueprint: &Blueprint) -> Self {
        Self {
            blueprint_id: blueprint.blueprint_id.clone(),
            name: blueprint.name.clone(),
            tier: blueprint.tier,
            risk: blueprint.risk,
            quarantine_only: blueprint.quarantine_only,
            approval_required: blueprint.approval_required,
        }
    }
}

/// Where blueprint metadata comes from (Urza, or the in-process catalog).
#[allow(async_fn_in_trait, reason = "single-threaded runtimes, as the Tolaria ports")]
pub trait BlueprintMetadataSource {
    /// The blueprint's metadata, or `None` when the catalog does not know it.
    async fn fetch(&self, blueprint_id: &str) -> Option<BlueprintMetadata>;
}

/// A metadata lookup that did not finish in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Tamiyo {operation} for blueprint `{blueprint_id}` timed out after {timeout_ms} ms (TAMIYO_METADATA_TIMEOUT_MS)"
)]
pub struct TamiyoTimeoutError {
    /// What timed out (`urza_metadata`).
    pub operation: &'static str,
    pub blueprint_id: String,
    pub timeout_ms: u64,
}

/// Why no metadata was had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error(transparent)]
    Timeout(#[from] TamiyoTimeoutError),
    #[error("metadata breaker is open after repeated Urza timeouts; blueprint `{blueprint_id}` was not looked up")]
    BreakerOpen { blueprint_id: String },
    #[error("blueprint `{blueprint_id}` is not in the catalog")]
    Unknown { blueprint_id: String },
}

impl MetadataError {
    /// The risk reason a command vetoed by this error carries.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout(_) | Self::BreakerOpen { .. } => "timeout_urza",
            // A blueprint nobody can vouch for is treated as quarantined.
            Self::Unknown { .. } => "bp_quarantine",
        }
    }
}

/// Counts of lookup outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetadataCounters {
    pub lookups: u64,
    pub cache_hits: u64,
    pub timeouts: u64,
    pub breaker_rejections: u64,
    pub unknown: u64,
}

/// Looks blueprints up in a source under a timeout, a breaker and a bounded cache.
#[derive(Debug)]
pub struct MetadataClient<M> {
    source: M,
    timeout: Duration,
    breaker: CircuitBreaker,
    cache: BTreeMap<String, (BlueprintMetadata, Instant)>,
    cache_ttl: Duration,
    cache_capacity: usize,
    counters: MetadataCounters,
}

impl<M: BlueprintMetadataSource> MetadataClient<M> {
    /// A client of `source`; lookups time out after `timeout`.
    pub fn new(
        source: M,
        timeout: Duration,
        breaker: BreakerConfig,
        cache_ttl: Duration,
        cache_capacity: usize,
    ) -> Self {
        assert!(!timeout.is_zero(), "a zero metadata timeout would fail every lookup");
        assert!(cache_capacity > 0, "the metadata cache needs room for one blueprint");
        let breaker = CircuitBreaker::new(breaker).named("tamiyo.metadata");
        Self {
            source,
            timeout,
            breaker,
            cache: BTreeMap::new(),
            cache_ttl,
            cache_capacity,
            counters: Default::default(),
        }
    }

    /// The blueprint's metadata: from the cache, else from the source within the timeout.
    pub async fn lookup(&mut self, blueprint_id: &str) -> Result<BlueprintMetadata, MetadataError> {
        self.counters.lookups += 1;
        let now = Instant::now();
        if let Some((metadata, fetched_at)) = self.cache.get(blueprint_id)
            && now.duration_since(*fetched_at) < self.cache_ttl
        {
            self.counters.cache_hits += 1;
            return Ok(metadata.clone());
        }
        if !self.breaker.allow(now) {
            self.counters.breaker_rejections += 1;
            return Err(MetadataError::BreakerOpen { blueprint_id: blueprint_id.to_owned() });
        }
        match timeout(self.timeout, self.source.fetch(blueprint_id)).await {
            Err(_) => {
                self.counters.timeouts += 1;
                self.breaker.record_failure(Instant::now());
                let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
                tracing::warn!(blueprint = blueprint_id, timeout_ms, breaker = ?self.breaker.state(), "timeout_urza");
                Err(TamiyoTimeoutError {
                    operation: "urza_metadata",
                    blueprint_id: blueprint_id.to_owned(),
                    timeout_ms,
                }
                .into())
            }
            Ok(None) => {
                self.breaker.record_success();
                self.counters.unknown += 1;
                Err(MetadataError::Unknown { blueprint_id: blueprint_id.to_owned() })
            }
            Ok(Some(metadata)) => {
                self.breaker.record_success();
                self.remember(metadata.clone(), Instant::now());
                Ok(metadata)
            }
        }
    }

    /// Caches `metadata`, evicting the oldest entry when full.
    fn remember(&mut self, metadata: BlueprintMetadata, now: Instant) {
        if self.cache.len() >= self.cache_capacity && !self.cache.contains_key(&metadata.blueprint_id) {
            let oldest = self.cache.iter().min_by_key(|(_, (_, at))| *at).map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                self.cache.remove(&oldest);
            }
        }
        self.cache.insert(metadata.blueprint_id.clone(), (metadata, now));
        debug_assert!(self.cache.len() <= self.cache_capacity);
    }
}

impl<M> MetadataClient<M> {
    /// The breaker's state now (advancing open → half-open when the cooldown is over).
    pub fn breaker_state(&mut self) -> BreakerState {
        self.breaker.allow(Instant::now());
        self.breaker.state()
    }

    /// How many times the breaker has opened.
    pub fn breaker_opened_total(&self) -> u64 {
        self.breaker.opened_total()
    }

    /// Outcome counts so far.
    pub fn counters(&self) -> MetadataCounters {
        self.counters
    }

    /// The source (to change a test catalog's delay, for instance).
    pub fn source(&self) -> &M {
        &self.source
    }
}

/// A shared, adjustable lookup delay: how the sim and tests make Urza slow.
#[derive(Debug, Clone, Default)]
pub struct LookupDelay(Arc<AtomicU64>);

impl LookupDelay {
    /// Every later lookup takes `delay` (rounded down to whole milliseconds).
    pub fn set(&self, delay: Duration) {
        self.0.store(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The current delay.
    pub fn get(&self) -> Duration {
        Duration::from_millis(self.0.load(Ordering::Relaxed))
    }
}

/// The in-process stand-in for Urza: a fixed catalog, answered after [`LookupDelay`].
#[derive(Debug, Clone)]
pub struct BlueprintCatalog {
    entries: Arc<BTreeMap<String, BlueprintMetadata>>,
    delay: LookupDelay,
}

impl BlueprintCatalog {
    /// A catalog of `entries`, answering at once.
    pub fn new(entries: impl IntoIterator<Item = BlueprintMetadata>) -> Self {
        let entries = entries.into_iter().map(|m| (m.blueprint_id.clone(), m)).collect();
        Self { entries: Arc::new(entries), delay: LookupDelay::default() }
    }

    /// Every blueprint of Karn's shipped catalog, with its metadata.
    pub fn karn() -> Self {
        Self::from_karn(&Catalog::default_catalog())
    }

    /// Every blueprint of `catalog`.
    pub fn from_karn(catalog: &Catalog) -> Self {
        Self::new(catalog.iter().map(BlueprintMetadata::from))
    }

    /// The handle that sets this catalog's (and its clones') lookup delay.
    pub fn delay(&self) -> &LookupDelay {
        &self.delay
    }
}

impl BlueprintMetadataSource for BlueprintCatalog {
    async fn fetch(&self, blueprint_id: &str) -> Option<BlueprintMetadata> {
        let delay = self.delay.get();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.entries.get(blueprint_id).cloned()
    }
}
