//! What a drill generator may throw at a scenario.
//!
//! A [`FaultSpace`] is the scenario's answer to "which faults make sense in my
//! world?": the links it has, the hosts that may crash or stall, the disks and
//! Redis servers it runs, the clocks its hosts read, the devices it trains on,
//! and how long and how late faults may be for its invariants to still be judged
//! fairly (a fault that outlasts the run proves nothing about recovery). The
//! generator in `esper-scenarios` draws schedules from it; nothing here is random.

use std::ops::RangeInclusive;
use std::time::Duration;

/// A host's disk and the files on it that may be corrupted at rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskTarget {
    /// The host whose disk it is.
    pub host: String,
    /// Files that may take bit flips and truncations. Empty when the scenario's
    /// invariants promise every acknowledged record back, which at-rest
    /// corruption would (rightly) break; the WAL soak drills corruption instead.
    pub corruptible: Vec<String>,
}

/// The faults that make sense in one scenario's world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSpace {
    /// Faults start before this sim time (ms).
    pub horizon_ms: u64,
    /// The longest a windowed fault (partition, stall, downtime…) lasts (ms).
    pub max_window_ms: u64,
    /// The most fault episodes in one schedule.
    pub max_episodes: usize,
    /// Host pairs with a network link worth cutting, holding, slowing or dropping.
    pub links: Vec<(String, String)>,
    /// Hosts that may crash and restart.
    pub crashable: Vec<String>,
    /// Hosts that may stall (stop answering without dying).
    pub stallable: Vec<String>,
    /// Disks that may fail operations, fill up or be corrupted.
    pub disks: Vec<DiskTarget>,
    /// Hosts running a simulated Redis.
    pub redis: Vec<String>,
    /// Hosts whose wall clock may be skewed.
    pub clocks: Vec<String>,
    /// The largest clock skew a jump introduces (ms).
    pub max_skew_ms: u64,
    /// Hosts whose training device may be throttled.
    pub devices: Vec<String>,
    /// How slow a throttled device runs, in percent of its nominal step time.
    pub slowdown_percent: RangeInclusive<u32>,
}

impl FaultSpace {
    /// A space over `horizon` with windows up to `max_window`, and nothing in it yet.
    pub fn new(horizon: Duration, max_window: Duration, max_episodes: usize) -> Self {
        let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Self {
            horizon_ms: millis(horizon),
            max_window_ms: millis(max_window),
            max_episodes,
            links: Vec::new(),
            crashable: Vec::new(),
            stallable: Vec::new(),
            disks: Vec::new(),
            redis: Vec::new(),
            clocks: Vec::new(),
            max_skew_ms: 0,
            devices: Vec::new(),
            slowdown_percent: 0..=0,
        }
    }

    /// Adds a link.
    pub fn link(mut self, a: &str, b: &str) -> Self {
        self.links.push((a.to_owned(), b.to_owned()));
        self
    }

    /// Adds hosts that may crash and restart.
    pub fn crashable(mut self, hosts: &[&str]) -> Self {
        self.crashable.extend(hosts.iter().map(|host| (*host).to_owned()));
        self
    }

    /// Adds hosts that may stall.
    pub fn stallable(mut self, hosts: &[&str]) -> Self {
        self.stallable.extend(hosts.iter().map(|host| (*host).to_owned()));
        self
    }

    /// Adds `host`'s disk; `corruptible` files may take bit flips and truncations.
    pub fn disk(mut self, host: &str, corruptible: &[&str]) -> Self {
        let corruptible = corruptible.iter().map(|path| (*path).to_owned()).collect();
        self.disks.push(DiskTarget { host: host.to_owned(), corruptible });
        self
    }

    /// Adds a simulated Redis host.
    pub fn redis(mut self, host: &str) -> Self {
        self.redis.push(host.to_owned());
        self
    }

    /// Lets the clocks of `hosts` be skewed by up to `max_skew`.
    pub fn clocks(mut self, hosts: &[&str], max_skew: Duration) -> Self {
        self.clocks.extend(hosts.iter().map(|host| (*host).to_owned()));
        self.max_skew_ms = u64::try_from(max_skew.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Lets the devices of `hosts` be throttled to a step time in
    /// `slowdown_percent` of nominal (1000: ten times slower).
    pub fn devices(mut self, hosts: &[&str], slowdown_percent: RangeInclusive<u32>) -> Self {
        self.devices.extend(hosts.iter().map(|host| (*host).to_owned()));
        self.slowdown_percent = slowdown_percent;
        self
    }
}
