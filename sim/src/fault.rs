//! Faults as data.
//!
//! A [`FaultSchedule`] is an ordered list of `(sim time, fault)` pairs. Because it is
//! plain data it can be drawn from a seed, printed next to a failure, saved as JSON,
//! replayed exactly and shrunk. The world applies each fault between simulation
//! steps, once sim time reaches it.
//!
//! Faults with a duration are written as a pair — a start ([`Fault::Partition`],
//! [`Fault::Stall`]…) and the fault that ends it ([`Fault::Repair`],
//! [`Fault::Resume`]…) — so that every entry is an instant and a schedule stays a
//! flat, sortable list. [`Fault::end`] declares each pair once: the drill generator
//! builds ends from it and the shrinker pairs them up again with [`Fault::ends`].
//! [`Fault::target`] says what each fault acts on, which is what the world checks a
//! schedule against and dispatches on.
//!
//! Adding a fault: its variant here, with its `target`, `end`, `kind` and
//! `Display` arms; its arm in the world's `apply` for its target
//! (`crate::world`); and what it does, in the target's module (the disk, the
//! Redis handle, the link state).
//! A torn write is not a fault of its own: it is what a [`Fault::Crash`] of a host
//! with a disk does to the write it interrupts (see `esper_sim::disk::crash_image`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::disk::DiskOp;

/// One fault. Host names are the world's host names (`tolaria`, `redis`…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Cut the link between two hosts in both directions; in-flight messages are lost.
    Partition { a: String, b: String },
    /// Restore a link cut by [`Fault::Partition`].
    Repair { a: String, b: String },
    /// Cut the link in one direction only: messages from `from` to `to` are lost
    /// (including those in flight); the other direction still works.
    PartitionOneWay { from: String, to: String },
    /// Restore the direction cut by [`Fault::PartitionOneWay`].
    RepairOneWay { from: String, to: String },
    /// Hold messages between `a` and `b` (both ways) without losing them: they are
    /// delivered, late, at [`Fault::Release`]. A congested or paused path.
    Hold { a: String, b: String },
    /// Deliver what [`Fault::Hold`] kept back, and let messages flow again.
    Release { a: String, b: String },
    /// Lose packets between `a` and `b`: each step the link fails with probability
    /// `per_mille`/1000, dropping what is in flight, and heals the next step. The
    /// simulated TCP does not retransmit, so a lost segment stalls its connection
    /// until the peer's timeouts notice — as a black-holed connection does.
    PacketLoss { a: String, b: String, per_mille: u16 },
    /// Every message between `a` and `b` takes exactly `latency_ms` one way.
    Latency { a: String, b: String, latency_ms: u64 },
    /// End [`Fault::PacketLoss`] and [`Fault::Latency`] on a link: back to the
    /// world's default latency range and no loss.
    LinkHeal { a: String, b: String },
    /// `host` stops answering without dying (a GC pause, a hung kernel, Tamiyo or
    /// Urza stuck in a slow call): every link of the host holds its messages.
    Stall { host: String },
    /// End a [`Fault::Stall`]: held messages are delivered and the host answers again.
    Resume { host: String },
    /// `host`'s wall clock steps by `by_ms` (negative: backwards), as NTP does.
    /// Hosts read it through [`crate::ClockSkew`]; tokio's timers are unaffected.
    ClockJump { host: String, by_ms: i64 },
    /// Power loss on `host`: its software stops and its disk drops (or tears) every
    /// unsynced write. It stays down until [`Fault::Restart`].
    Crash { host: String },
    /// Start the software of a crashed `host` again, on what survived of its disk.
    Restart { host: String },
    /// The next `count` operations of class `op` on `host`'s disk fail with EIO.
    DiskError { host: String, op: DiskOp, count: u32 },
    /// `host`'s disk refuses appends (ENOSPC) once its files would exceed `capacity_bytes`.
    DiskFull { host: String, capacity_bytes: u64 },
    /// Space is freed on `host`'s disk: the capacity set by [`Fault::DiskFull`] is lifted.
    DiskFreed { host: String },
    /// Flip bit `bit` of the byte at `offset` of `path` on `host`'s disk (at-rest corruption).
    DiskBitFlip { host: String, path: String, offset: u64, bit: u8 },
    /// Cut `path` on `host`'s disk to `offset` bytes (a lost tail).
    DiskTruncate { host: String, path: String, offset: u64 },
    /// Every read from `host`'s disk takes `extra_ms` more (a failing or contended
    /// disk); the same fault with `extra_ms: 0` ends it.
    DiskSlowReads { host: String, extra_ms: u64 },
    /// The simulated Redis on `host` sends every reply `delay_ms` late.
    RedisSlow { host: String, delay_ms: u64 },
    /// The simulated Redis on `host` refuses memory-growing commands with `-OOM`.
    RedisOom { host: String },
    /// The simulated Redis on `host` refuses commands with `-LOADING`.
    RedisLoading { host: String },
    /// The simulated Redis on `host` stops its slow replies and error replies.
    RedisClear { host: String },
    /// The simulated Redis on `host` closes every client connection.
    RedisReset { host: String },
    /// `host`'s device slows down: each training step takes `factor_percent` % of
    /// its nominal time (a throttled or contended GPU, a noisy neighbour). Hosts
    /// feel it through the pace handle of [`crate::World::device_pace`].
    DeviceSlow { host: String, factor_percent: u32 },
    /// End a [`Fault::DeviceSlow`]: `host`'s device runs at its nominal pace again.
    DeviceHeal { host: String },
}

/// What a fault acts on: the part of the world it changes, and so the world table
/// that must hold its host before the run starts.
#[derive(Debug, Clone, Copy, Eq)]
pub enum FaultTarget<'a> {
    /// Both directions of the link between two hosts, named in either order.
    Link(&'a str, &'a str),
    /// One direction of a link: messages from `from` to `to`.
    Route { from: &'a str, to: &'a str },
    /// A host's software (it stalls, crashes, restarts).
    Host(&'a str),
    /// A host's simulated disk.
    Disk(&'a str),
    /// The simulated Redis a host runs.
    Redis(&'a str),
    /// A host's wall clock.
    Clock(&'a str),
    /// The device a host trains on.
    Device(&'a str),
}

impl PartialEq for FaultTarget<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (*self, *other) {
            (Self::Link(a, b), Self::Link(c, d)) => (a == c && b == d) || (a == d && b == c),
            (Self::Route { from, to }, Self::Route { from: f, to: t }) => from == f && to == t,
            (Self::Host(a), Self::Host(b))
            | (Self::Disk(a), Self::Disk(b))
            | (Self::Redis(a), Self::Redis(b))
            | (Self::Clock(a), Self::Clock(b))
            | (Self::Device(a), Self::Device(b)) => a == b,
            _ => false,
        }
    }
}

impl<'a> FaultTarget<'a> {
    /// The host names the target refers to.
    pub fn hosts(self) -> Vec<&'a str> {
        match self {
            Self::Link(a, b) | Self::Route { from: a, to: b } => vec![a, b],
            Self::Host(host) | Self::Disk(host) | Self::Redis(host) | Self::Clock(host) | Self::Device(host) => {
                vec![host]
            }
        }
    }
}

impl Fault {
    /// What this fault acts on. A crash acts on the disk of a host that has one
    /// too, but is as valid for a host without: its target is the host.
    pub fn target(&self) -> FaultTarget<'_> {
        match self {
            Self::Partition { a, b }
            | Self::Repair { a, b }
            | Self::Hold { a, b }
            | Self::Release { a, b }
            | Self::PacketLoss { a, b, .. }
            | Self::Latency { a, b, .. }
            | Self::LinkHeal { a, b } => FaultTarget::Link(a, b),
            Self::PartitionOneWay { from, to } | Self::RepairOneWay { from, to } => FaultTarget::Route { from, to },
            Self::Stall { host } | Self::Resume { host } | Self::Crash { host } | Self::Restart { host } => {
                FaultTarget::Host(host)
            }
            Self::ClockJump { host, .. } => FaultTarget::Clock(host),
            Self::DiskError { host, .. }
            | Self::DiskFull { host, .. }
            | Self::DiskFreed { host }
            | Self::DiskBitFlip { host, .. }
            | Self::DiskTruncate { host, .. }
            | Self::DiskSlowReads { host, .. } => FaultTarget::Disk(host),
            Self::RedisSlow { host, .. }
            | Self::RedisOom { host }
            | Self::RedisLoading { host }
            | Self::RedisClear { host }
            | Self::RedisReset { host } => FaultTarget::Redis(host),
            Self::DeviceSlow { host, .. } | Self::DeviceHeal { host } => FaultTarget::Device(host),
        }
    }

    /// The fault that closes this one: a partition's repair, a crash's restart, a
    /// clock jump's jump back. `None` for instants (an EIO, a bit flip, a reset)
    /// and for the ends themselves.
    pub fn end(&self) -> Option<Fault> {
        Some(match self {
            Self::Partition { a, b } => Self::Repair { a: a.clone(), b: b.clone() },
            Self::PartitionOneWay { from, to } => Self::RepairOneWay { from: from.clone(), to: to.clone() },
            Self::Hold { a, b } => Self::Release { a: a.clone(), b: b.clone() },
            Self::PacketLoss { a, b, .. } | Self::Latency { a, b, .. } => Self::LinkHeal { a: a.clone(), b: b.clone() },
            Self::Stall { host } => Self::Resume { host: host.clone() },
            Self::Crash { host } => Self::Restart { host: host.clone() },
            Self::ClockJump { host, by_ms } => Self::ClockJump { host: host.clone(), by_ms: -*by_ms },
            Self::DiskFull { host, .. } => Self::DiskFreed { host: host.clone() },
            Self::RedisSlow { host, .. } | Self::RedisOom { host } | Self::RedisLoading { host } => {
                Self::RedisClear { host: host.clone() }
            }
            Self::DeviceSlow { host, .. } => Self::DeviceHeal { host: host.clone() },
            Self::DiskSlowReads { host, extra_ms } if *extra_ms > 0 => {
                Self::DiskSlowReads { host: host.clone(), extra_ms: 0 }
            }
            Self::Repair { .. }
            | Self::RepairOneWay { .. }
            | Self::Release { .. }
            | Self::LinkHeal { .. }
            | Self::Resume { .. }
            | Self::Restart { .. }
            | Self::DiskError { .. }
            | Self::DiskFreed { .. }
            | Self::DiskBitFlip { .. }
            | Self::DiskTruncate { .. }
            | Self::DiskSlowReads { .. }
            | Self::RedisClear { .. }
            | Self::RedisReset { .. }
            | Self::DeviceHeal { .. } => return None,
        })
    }

    /// The host names this fault refers to, so the world can reject a schedule that
    /// names a host it does not have before the run starts.
    pub fn hosts(&self) -> Vec<&str> {
        self.target().hosts()
    }

    /// Whether `later` is this fault's [`Fault::end`]. An end on a two-way link
    /// names nothing but the link, so it may name the link's hosts in either order.
    pub fn ends(&self, later: &Fault) -> bool {
        self.end().is_some_and(|end| {
            end == *later
                || (matches!(end.target(), FaultTarget::Link(..))
                    && end.kind() == later.kind()
                    && end.target() == later.target())
        })
    }

    /// Stable snake_case name of the fault kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Partition { .. } => "partition",
            Self::Repair { .. } => "repair",
            Self::PartitionOneWay { .. } => "partition_one_way",
            Self::RepairOneWay { .. } => "repair_one_way",
            Self::Hold { .. } => "hold",
            Self::Release { .. } => "release",
            Self::PacketLoss { .. } => "packet_loss",
            Self::Latency { .. } => "latency",
            Self::LinkHeal { .. } => "link_heal",
            Self::Stall { .. } => "stall",
            Self::Resume { .. } => "resume",
            Self::ClockJump { .. } => "clock_jump",
            Self::Crash { .. } => "crash",
            Self::Restart { .. } => "restart",
            Self::DiskError { .. } => "disk_error",
            Self::DiskFull { .. } => "disk_full",
            Self::DiskFreed { .. } => "disk_freed",
            Self::DiskBitFlip { .. } => "disk_bit_flip",
            Self::DiskTruncate { .. } => "disk_truncate",
            Self::DiskSlowReads { .. } => "disk_slow_reads",
            Self::RedisSlow { .. } => "redis_slow",
            Self::RedisOom { .. } => "redis_oom",
            Self::RedisLoading { .. } => "redis_loading",
            Self::RedisClear { .. } => "redis_clear",
            Self::RedisReset { .. } => "redis_reset",
            Self::DeviceSlow { .. } => "device_slow",
            Self::DeviceHeal { .. } => "device_heal",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Partition { a, b } => write!(formatter, "partition {a} <-> {b}"),
            Self::Repair { a, b } => write!(formatter, "repair {a} <-> {b}"),
            Self::PartitionOneWay { from, to } => write!(formatter, "partition {from} -> {to}"),
            Self::RepairOneWay { from, to } => write!(formatter, "repair {from} -> {to}"),
            Self::Hold { a, b } => write!(formatter, "hold {a} <-> {b}"),
            Self::Release { a, b } => write!(formatter, "release {a} <-> {b}"),
            Self::PacketLoss { a, b, per_mille } => write!(formatter, "lose {per_mille}‰ per step on {a} <-> {b}"),
            Self::Latency { a, b, latency_ms } => write!(formatter, "{latency_ms} ms latency on {a} <-> {b}"),
            Self::LinkHeal { a, b } => write!(formatter, "heal {a} <-> {b}"),
            Self::Stall { host } => write!(formatter, "stall {host}"),
            Self::Resume { host } => write!(formatter, "resume {host}"),
            Self::ClockJump { host, by_ms } => write!(formatter, "clock of {host} jumps {by_ms:+} ms"),
            Self::Crash { host } => write!(formatter, "crash {host}"),
            Self::Restart { host } => write!(formatter, "restart {host}"),
            Self::DiskError { host, op, count } => write!(formatter, "EIO on the next {count} {} on {host}", op.name()),
            Self::DiskFull { host, capacity_bytes } => {
                write!(formatter, "disk of {host} full at {capacity_bytes} bytes")
            }
            Self::DiskFreed { host } => write!(formatter, "space freed on the disk of {host}"),
            Self::DiskBitFlip { host, path, offset, bit } => {
                write!(formatter, "flip bit {bit} at {host}:{path}@{offset}")
            }
            Self::DiskTruncate { host, path, offset } => write!(formatter, "truncate {host}:{path} to {offset} bytes"),
            Self::DiskSlowReads { host, extra_ms: 0 } => {
                write!(formatter, "reads from the disk of {host} at speed again")
            }
            Self::DiskSlowReads { host, extra_ms } => {
                write!(formatter, "reads from the disk of {host} take {extra_ms} ms more")
            }
            Self::RedisSlow { host, delay_ms } => write!(formatter, "redis on {host} replies {delay_ms} ms late"),
            Self::RedisOom { host } => write!(formatter, "redis on {host} answers -OOM"),
            Self::RedisLoading { host } => write!(formatter, "redis on {host} answers -LOADING"),
            Self::RedisClear { host } => write!(formatter, "redis on {host} healthy again"),
            Self::RedisReset { host } => write!(formatter, "redis on {host} resets its connections"),
            Self::DeviceSlow { host, factor_percent } => {
                write!(formatter, "device of {host} takes {factor_percent}% of its step time")
            }
            Self::DeviceHeal { host } => write!(formatter, "device of {host} at full pace again"),
        }
    }
}

/// A fault and the sim time (milliseconds since the world started) it strikes at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledFault {
    /// Sim time in milliseconds.
    pub at_ms: u64,
    /// What happens.
    pub fault: Fault,
}

/// Faults ordered by time; faults at the same time keep their insertion order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSchedule {
    faults: Vec<ScheduledFault>,
}

/// A schedule that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FaultScheduleError {
    /// The JSON is malformed or does not describe a schedule.
    #[error("fault schedule is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl FaultSchedule {
    /// A schedule from faults in any order; sorted stably by time.
    pub fn new(mut faults: Vec<ScheduledFault>) -> Self {
        faults.sort_by_key(|scheduled| scheduled.at_ms);
        Self { faults }
    }

    /// The faults, in the order they strike.
    pub fn faults(&self) -> &[ScheduledFault] {
        &self.faults
    }

    /// Whether the schedule is empty.
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// Parses a schedule and re-sorts it, so hand-edited files cannot break ordering.
    pub fn from_json(text: &str) -> Result<Self, FaultScheduleError> {
        let parsed: Self = serde_json::from_str(text)?;
        Ok(Self::new(parsed.faults))
    }

    /// Compact JSON, as saved next to a failure.
    pub fn to_json(&self) -> String {
        // Serializing plain owned strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl fmt::Display for FaultSchedule {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.faults.is_empty() {
            return write!(formatter, "(no faults)");
        }
        for (index, scheduled) in self.faults.iter().enumerate() {
            let separator = if index == 0 { "" } else { "; " };
            write!(formatter, "{separator}t={}ms {}", scheduled.at_ms, scheduled.fault)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(at_ms: u64) -> ScheduledFault {
        ScheduledFault { at_ms, fault: Fault::Partition { a: "tolaria".into(), b: "tamiyo".into() } }
    }

    #[test]
    fn sorts_by_time_and_round_trips_through_json() {
        let repair = ScheduledFault { at_ms: 5, fault: Fault::Repair { a: "tolaria".into(), b: "tamiyo".into() } };
        let schedule = FaultSchedule::new(vec![partition(9), repair.clone()]);
        assert_eq!(schedule.faults()[0], repair);
        let json = schedule.to_json();
        assert_eq!(FaultSchedule::from_json(&json).expect("round trip"), schedule);
        assert_eq!(schedule.to_string(), "t=5ms repair tolaria <-> tamiyo; t=9ms partition tolaria <-> tamiyo");
    }

    #[test]
    fn disk_faults_round_trip_through_json() {
        let host = || "tamiyo".to_owned();
        let faults = vec![
            Fault::Crash { host: host() },
            Fault::Restart { host: host() },
            Fault::DiskError { host: host(), op: DiskOp::Fsync, count: 2 },
            Fault::DiskFull { host: host(), capacity_bytes: 4096 },
            Fault::DiskBitFlip { host: host(), path: "var/wal.log".into(), offset: 17, bit: 3 },
            Fault::DiskTruncate { host: host(), path: "var/wal.log".into(), offset: 100 },
        ];
        let schedule = FaultSchedule::new(faults.into_iter().map(|fault| ScheduledFault { at_ms: 1, fault }).collect());
        let json = schedule.to_json();
        assert!(json.contains(r#""kind":"disk_error","host":"tamiyo","op":"fsync","count":2"#), "{json}");
        assert_eq!(FaultSchedule::from_json(&json).expect("round trip"), schedule);
    }

    #[test]
    fn redis_faults_round_trip_through_json_and_name_their_host() {
        let host = || "redis".to_owned();
        let faults = vec![
            Fault::RedisSlow { host: host(), delay_ms: 250 },
            Fault::RedisOom { host: host() },
            Fault::RedisLoading { host: host() },
            Fault::RedisClear { host: host() },
            Fault::RedisReset { host: host() },
        ];
        assert!(faults.iter().all(|fault| fault.target() == FaultTarget::Redis("redis")));
        let schedule = FaultSchedule::new(faults.into_iter().map(|fault| ScheduledFault { at_ms: 3, fault }).collect());
        let json = schedule.to_json();
        assert!(json.contains(r#""kind":"redis_slow","host":"redis","delay_ms":250"#), "{json}");
        assert_eq!(FaultSchedule::from_json(&json).expect("round trip"), schedule);
    }

    #[test]
    fn link_host_and_clock_faults_round_trip_and_pair_with_their_ends() {
        let (a, b) = (|| "tolaria".to_owned(), || "tamiyo".to_owned());
        let pairs = vec![
            (Fault::PartitionOneWay { from: a(), to: b() }, Fault::RepairOneWay { from: a(), to: b() }),
            (Fault::Hold { a: a(), b: b() }, Fault::Release { a: b(), b: a() }),
            (Fault::PacketLoss { a: a(), b: b(), per_mille: 20 }, Fault::LinkHeal { a: a(), b: b() }),
            (Fault::Latency { a: a(), b: b(), latency_ms: 250 }, Fault::LinkHeal { a: b(), b: a() }),
            (Fault::Stall { host: b() }, Fault::Resume { host: b() }),
            (Fault::ClockJump { host: a(), by_ms: -5_000 }, Fault::ClockJump { host: a(), by_ms: 5_000 }),
            (Fault::DiskFull { host: b(), capacity_bytes: 0 }, Fault::DiskFreed { host: b() }),
            (Fault::Crash { host: b() }, Fault::Restart { host: b() }),
            (Fault::DeviceSlow { host: a(), factor_percent: 450 }, Fault::DeviceHeal { host: a() }),
            (Fault::DiskSlowReads { host: b(), extra_ms: 40 }, Fault::DiskSlowReads { host: b(), extra_ms: 0 }),
        ];
        for (start, end) in &pairs {
            assert!(start.ends(end), "{start} should be ended by {end}");
            assert_eq!(start.end().map(|own| own.target() == end.target()), Some(true), "{start}");
            if !matches!(end, Fault::ClockJump { .. }) {
                assert_eq!(end.end(), None, "{end} is ended by nothing");
            }
            assert!(!end.ends(start) || matches!(start, Fault::ClockJump { .. }), "{end} must not end {start}");
        }
        assert!(!Fault::PartitionOneWay { from: a(), to: b() }.ends(&Fault::RepairOneWay { from: b(), to: a() }));
        assert!(!Fault::Stall { host: a() }.ends(&Fault::Resume { host: b() }));
        assert!(!Fault::DeviceSlow { host: a(), factor_percent: 450 }.ends(&Fault::DeviceHeal { host: b() }));
        let schedule = FaultSchedule::new(
            pairs
                .into_iter()
                .flat_map(|(start, end)| [start, end])
                .map(|fault| ScheduledFault { at_ms: 9, fault })
                .collect(),
        );
        let json = schedule.to_json();
        assert!(json.contains(r#""kind":"clock_jump","host":"tolaria","by_ms":-5000"#), "{json}");
        assert!(json.contains(r#""kind":"device_slow","host":"tolaria","factor_percent":450"#), "{json}");
        assert!(json.contains(r#""kind":"disk_slow_reads","host":"tamiyo","extra_ms":40"#), "{json}");
        assert_eq!(FaultSchedule::from_json(&json).expect("round trip"), schedule);
        let text = schedule.to_string();
        assert!(text.contains("t=9ms partition tolaria -> tamiyo; t=9ms repair tolaria -> tamiyo"), "{text}");
        assert!(text.contains("device of tolaria takes 450% of its step time"), "{text}");
        assert!(text.contains("reads from the disk of tamiyo take 40 ms more; "), "{text}");
        let devices = schedule.faults().iter().filter(|f| f.fault.target() == FaultTarget::Device("tolaria"));
        assert_eq!(devices.count(), 2);
    }

    #[test]
    fn rejects_unknown_fault_kinds_with_a_typed_error() {
        let error = FaultSchedule::from_json(r#"{"faults":[{"at_ms":1,"fault":{"kind":"meteor"}}]}"#)
            .expect_err("unknown kind must not parse");
        assert!(error.to_string().contains("meteor"), "{error}");
    }
}
