//! Fault schedules drawn from a scenario's [`FaultSpace`] by proptest strategies.
//!
//! A schedule is generated as *episodes*: a fault and, for faults with a
//! duration, the fault that ends it a window later (a partition and its repair,
//! a crash and its restart). Episodes keep the pair together, so proptest's
//! shrinking removes whole faults and never leaves a crash without its restart.
//! Times are drawn as distances back from the horizon, so shrinking — which moves
//! numbers towards zero — moves faults *later* and windows *shorter*, the
//! simplifications that keep a failure readable.
//!
//! Swarm mode (Groce et al., "Swarm Testing", ISSTA 2012): each seed first draws
//! which fault kinds it may use at all, then the schedule from those. A seed that
//! never partitions but crashes a lot reaches states a uniform mix of every kind
//! rarely does, because the kinds no longer dilute each other.

use std::fmt;

use esper_core::tolaria::pace::NOMINAL_PERCENT;
use esper_sim::{DiskOp, Fault, FaultSchedule, FaultSpace, RngTree, ScheduledFault};
use proptest::prelude::*;
use proptest::strategy::{Union, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

/// Declares [`FaultKind`] with its names, and [`FaultKind::ALL`] from the same
/// list, so a new kind is written once.
macro_rules! fault_kinds {
    ($($(#[doc = $doc:literal])+ $kind:ident = $name:literal,)+) => {
        /// The kinds of fault a drill can draw; a swarm seed picks a subset of them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum FaultKind {
            $($(#[doc = $doc])+ #[serde(rename = $name)] $kind,)+
        }

        impl FaultKind {
            /// Every kind, in declaration order. New kinds go last, so a swarm seed's
            /// coins for the older kinds keep their order.
            pub const ALL: &[Self] = &[$(Self::$kind,)+];

            /// The snake_case name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$kind => $name,)+
                }
            }
        }
    };
}

fault_kinds! {
    /// A two-way partition and its repair.
    Partition = "partition",
    /// A one-way partition and its repair.
    OneWayPartition = "one_way_partition",
    /// Messages held on a link, then released.
    Hold = "hold",
    /// A window of packet loss on a link.
    PacketLoss = "packet_loss",
    /// A window of high latency on a link.
    Latency = "latency",
    /// A host crash (power loss: unsynced writes lost or torn) and restart.
    Crash = "crash",
    /// A host that stops answering for a while (Tamiyo or Urza stuck).
    Stall = "stall",
    /// EIO on the next few disk operations.
    DiskError = "disk_error",
    /// A full disk, freed later.
    DiskFull = "disk_full",
    /// A bit flip or a truncation at rest.
    DiskCorruption = "disk_corruption",
    /// Redis answering late for a while.
    RedisSlow = "redis_slow",
    /// Redis refusing commands (`-OOM`, `-LOADING`) for a while.
    RedisRefusal = "redis_refusal",
    /// Redis dropping every client connection.
    RedisReset = "redis_reset",
    /// A host's wall clock stepping away and back.
    ClockJump = "clock_jump",
    /// A host's training device running slower for a while (a throttled GPU).
    DeviceSlow = "device_slow",
}

impl FaultKind {
    /// The kinds `space` has targets for.
    pub fn available(space: &FaultSpace) -> Vec<Self> {
        Self::ALL.iter().copied().filter(|kind| kind.fits(space)).collect()
    }

    fn fits(self, space: &FaultSpace) -> bool {
        match self {
            Self::Partition | Self::OneWayPartition | Self::Hold | Self::PacketLoss | Self::Latency => {
                !space.links.is_empty()
            }
            Self::Crash => !space.crashable.is_empty(),
            Self::Stall => !space.stallable.is_empty(),
            Self::DiskError | Self::DiskFull => !space.disks.is_empty(),
            Self::DiskCorruption => space.disks.iter().any(|disk| !disk.corruptible.is_empty()),
            Self::RedisSlow | Self::RedisRefusal | Self::RedisReset => !space.redis.is_empty(),
            Self::ClockJump => !space.clocks.is_empty() && space.max_skew_ms > 0,
            Self::DeviceSlow => !space.devices.is_empty() && *space.slowdown_percent.end() > NOMINAL_PERCENT,
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// One fault episode: `start` at `start_ms` and, for a fault with a duration,
/// `end` `length_ms` later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    /// When the fault strikes (sim ms).
    pub start_ms: u64,
    /// How long it lasts (sim ms); unused for instant faults.
    pub length_ms: u64,
    /// The fault.
    pub start: Fault,
    /// The fault that ends it, if it has a duration.
    pub end: Option<Fault>,
}

impl Episode {
    /// `start` at `start_ms`, closed by its [`Fault::end`] `length_ms` later if
    /// it has one (an instant's length is zero).
    fn new(start_ms: u64, length_ms: u64, start: Fault) -> Self {
        let end = start.end();
        let length_ms = if end.is_some() { length_ms } else { 0 };
        Self { start_ms, length_ms, start, end }
    }
}

/// The schedule episodes lower to.
pub fn lower(episodes: &[Episode]) -> FaultSchedule {
    let mut faults = Vec::with_capacity(episodes.len() * 2);
    for episode in episodes {
        faults.push(ScheduledFault { at_ms: episode.start_ms, fault: episode.start.clone() });
        if let Some(end) = &episode.end {
            faults.push(ScheduledFault { at_ms: episode.start_ms + episode.length_ms, fault: end.clone() });
        }
    }
    FaultSchedule::new(faults)
}

/// Schedules of up to `space.max_episodes` episodes of the given `kinds`.
pub fn schedule_strategy(space: &FaultSpace, kinds: &[FaultKind]) -> BoxedStrategy<Vec<Episode>> {
    let choices: Vec<BoxedStrategy<Episode>> = kinds.iter().map(|kind| episode_strategy(space, *kind)).collect();
    if choices.is_empty() {
        return Just(Vec::new()).boxed();
    }
    proptest::collection::vec(Union::new(choices), 0..=space.max_episodes).boxed()
}

/// Start times that shrink later (towards the horizon) and lengths that shrink shorter.
fn timing(space: &FaultSpace) -> impl Strategy<Value = (u64, u64)> + use<> {
    let (horizon, max_window) = (space.horizon_ms.max(1), space.max_window_ms.max(1));
    (0..horizon, 1..=max_window).prop_map(move |(back, length)| (horizon - 1 - back, length))
}

fn episode_strategy(space: &FaultSpace, kind: FaultKind) -> BoxedStrategy<Episode> {
    start_strategy(space, kind).prop_map(|((at, length), start)| Episode::new(at, length, start)).boxed()
}

/// The fault that opens an episode of `kind`, with the episode's timing.
fn start_strategy(space: &FaultSpace, kind: FaultKind) -> BoxedStrategy<((u64, u64), Fault)> {
    let timing = timing(space);
    let links = space.links.clone();
    let link = move || prop::sample::select(links.clone());
    match kind {
        FaultKind::Partition => {
            (timing, link()).prop_map(|(timing, (a, b))| (timing, Fault::Partition { a, b })).boxed()
        }
        FaultKind::OneWayPartition => (timing, link(), any::<bool>())
            .prop_map(|(timing, (a, b), flip)| {
                let (from, to) = if flip { (b, a) } else { (a, b) };
                (timing, Fault::PartitionOneWay { from, to })
            })
            .boxed(),
        FaultKind::Hold => (timing, link()).prop_map(|(timing, (a, b))| (timing, Fault::Hold { a, b })).boxed(),
        FaultKind::PacketLoss => (timing, link(), 1..=50_u16)
            .prop_map(|(timing, (a, b), per_mille)| (timing, Fault::PacketLoss { a, b, per_mille }))
            .boxed(),
        FaultKind::Latency => (timing, link(), 5..=300_u64)
            .prop_map(|(timing, (a, b), latency_ms)| (timing, Fault::Latency { a, b, latency_ms }))
            .boxed(),
        FaultKind::Crash => (timing, prop::sample::select(space.crashable.clone()))
            .prop_map(|(timing, host)| (timing, Fault::Crash { host }))
            .boxed(),
        FaultKind::Stall => (timing, prop::sample::select(space.stallable.clone()))
            .prop_map(|(timing, host)| (timing, Fault::Stall { host }))
            .boxed(),
        FaultKind::DiskError => {
            let ops = prop::sample::select(vec![DiskOp::Read, DiskOp::Write, DiskOp::Fsync]);
            (timing, disk_host(space), ops, 1..=3_u32)
                .prop_map(|(timing, host, op, count)| (timing, Fault::DiskError { host, op, count }))
                .boxed()
        }
        FaultKind::DiskFull => (timing, disk_host(space), 0..=65_536_u64)
            .prop_map(|(timing, host, capacity_bytes)| (timing, Fault::DiskFull { host, capacity_bytes }))
            .boxed(),
        FaultKind::DiskCorruption => {
            let files: Vec<(String, String)> = space
                .disks
                .iter()
                .flat_map(|disk| disk.corruptible.iter().map(|path| (disk.host.clone(), path.clone())))
                .collect();
            (timing, prop::sample::select(files), 0..4_096_u64, 0..8_u8, any::<bool>())
                .prop_map(|(timing, (host, path), offset, bit, flip)| {
                    let fault = if flip {
                        Fault::DiskBitFlip { host, path, offset, bit }
                    } else {
                        Fault::DiskTruncate { host, path, offset }
                    };
                    (timing, fault)
                })
                .boxed()
        }
        FaultKind::RedisSlow => (timing, redis_host(space), 5..=500_u64)
            .prop_map(|(timing, host, delay_ms)| (timing, Fault::RedisSlow { host, delay_ms }))
            .boxed(),
        FaultKind::RedisRefusal => (timing, redis_host(space), any::<bool>())
            .prop_map(|(timing, host, oom)| {
                (timing, if oom { Fault::RedisOom { host } } else { Fault::RedisLoading { host } })
            })
            .boxed(),
        FaultKind::RedisReset => {
            (timing, redis_host(space)).prop_map(|(timing, host)| (timing, Fault::RedisReset { host })).boxed()
        }
        FaultKind::ClockJump => {
            let skew = i64::try_from(space.max_skew_ms).unwrap_or(i64::MAX);
            (timing, prop::sample::select(space.clocks.clone()), 1..=skew, any::<bool>())
                .prop_map(|(timing, host, size, back)| {
                    (timing, Fault::ClockJump { host, by_ms: if back { -size } else { size } })
                })
                .boxed()
        }
        FaultKind::DeviceSlow => {
            // Never faster than nominal: a "throttle" that speeds the device up
            // is not a fault.
            let slowest = *space.slowdown_percent.end();
            let factors = (*space.slowdown_percent.start()).clamp(NOMINAL_PERCENT + 1, slowest)..=slowest;
            (timing, prop::sample::select(space.devices.clone()), factors)
                .prop_map(|(timing, host, factor_percent)| (timing, Fault::DeviceSlow { host, factor_percent }))
                .boxed()
        }
    }
}

fn disk_host(space: &FaultSpace) -> impl Strategy<Value = String> + use<> {
    prop::sample::select(space.disks.iter().map(|disk| disk.host.clone()).collect::<Vec<_>>())
}

fn redis_host(space: &FaultSpace) -> impl Strategy<Value = String> + use<> {
    prop::sample::select(space.redis.clone())
}

/// A schedule drawn for one seed, and the fault kinds it was drawn from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drill {
    /// The kinds this seed may use (all available ones unless swarm).
    pub kinds: Vec<FaultKind>,
    /// The faults.
    pub schedule: FaultSchedule,
}

/// The drill for `seed`: in swarm mode the seed first draws its subset of kinds
/// (each available kind with probability ½, at least one), then the schedule.
/// Both draws come from the seed's `drill` branch, so they never shift when the
/// code under test draws more or fewer numbers.
pub fn draw(space: &FaultSpace, seed: u64, swarm: bool) -> Drill {
    let branch = RngTree::new(seed).child("drill");
    let mut kinds = FaultKind::available(space);
    if swarm && !kinds.is_empty() {
        let mut coin = branch.stream("swarm");
        let chosen: Vec<FaultKind> = kinds.iter().copied().filter(|_| coin.random_bool(0.5)).collect();
        kinds = if chosen.is_empty() { vec![kinds[coin.random_range(0..kinds.len())]] } else { chosen };
    }
    let mut seed_bytes = [0_u8; 32];
    branch.stream("schedule").fill_bytes(&mut seed_bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    // The strategies have no filters, so drawing a value cannot be rejected.
    let episodes =
        schedule_strategy(space, &kinds).new_tree(&mut runner).map(|tree| tree.current()).unwrap_or_default();
    Drill { kinds, schedule: lower(&episodes) }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn space() -> FaultSpace {
        FaultSpace::new(Duration::from_secs(3), Duration::from_millis(900), 6)
            .link("tolaria", "tamiyo")
            .crashable(&["tamiyo"])
            .stallable(&["tamiyo"])
            .disk("tamiyo", &[])
            .clocks(&["tamiyo"], Duration::from_secs(5))
            .devices(&["tolaria"], 450..=1_000)
    }

    #[test]
    fn the_same_seed_draws_the_same_drill_and_windows_close() {
        let space = space();
        for seed in 0..64 {
            let drill = draw(&space, seed, true);
            assert_eq!(drill, draw(&space, seed, true), "seed {seed}");
            assert!(!drill.kinds.is_empty());
            let faults = drill.schedule.faults();
            for (index, scheduled) in faults.iter().enumerate() {
                assert!(scheduled.at_ms < space.horizon_ms + space.max_window_ms, "{scheduled:?}");
                if let Fault::DeviceSlow { factor_percent, .. } = scheduled.fault {
                    assert!(space.slowdown_percent.contains(&factor_percent), "{scheduled:?}");
                }
                let is_end = faults[..index].iter().any(|earlier| earlier.fault.ends(&scheduled.fault));
                if scheduled.fault.end().is_some() && !is_end {
                    let closed = faults[index + 1..].iter().any(|later| scheduled.fault.ends(&later.fault));
                    assert!(closed, "seed {seed}: {} is never ended in {}", scheduled.fault, drill.schedule);
                }
            }
        }
    }

    #[test]
    fn swarm_seeds_use_different_subsets_and_only_available_kinds() {
        let space = space();
        let subsets: std::collections::BTreeSet<Vec<FaultKind>> =
            (0..64).map(|seed| draw(&space, seed, true).kinds).collect();
        assert!(subsets.len() > 8, "swarm should vary the kinds: {subsets:?}");
        let available = FaultKind::available(&space);
        assert!(!available.contains(&FaultKind::DiskCorruption) && !available.contains(&FaultKind::RedisSlow));
        assert!(subsets.iter().flatten().all(|kind| available.contains(kind)));
        assert!(subsets.iter().any(|kinds| kinds.contains(&FaultKind::DeviceSlow)), "{subsets:?}");
        assert_eq!(draw(&space, 7, false).kinds, available);
    }
}
