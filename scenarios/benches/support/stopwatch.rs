//! Time on one core: the benchmarks run on shared machines, where a process may
//! wait for a core most of the time (load 14 on 2 cores is common while other
//! builds run), so wall-clock time measures the neighbours. The stopwatch reads
//! the CPU time of the measuring thread instead (`/proc/thread-self/stat`, user +
//! system, 10 ms resolution), and falls back to wall time where that is missing.

#![allow(clippy::disallowed_types, clippy::disallowed_methods, reason = "a benchmark measures time")]

use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/*/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

/// Started at [`Stopwatch::start`]; [`Stopwatch::elapsed`] is this thread's CPU time since.
pub struct Stopwatch {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Stopwatch {
    pub fn start() -> Self {
        Self { wall: Instant::now(), cpu: thread_cpu_time() }
    }

    /// CPU time of this thread since the start, or wall time without `/proc`.
    pub fn elapsed(&self) -> Duration {
        match (self.cpu, thread_cpu_time()) {
            (Some(start), Some(now)) => now.saturating_sub(start),
            _ => self.wall.elapsed(),
        }
    }

    /// What [`Self::elapsed`] measures, for the printed header.
    pub fn unit() -> &'static str {
        if thread_cpu_time().is_some() { "CPU s" } else { "wall s" }
    }
}

/// utime + stime of the calling thread: fields 14 and 15 of its stat line, counted
/// after the command name in parentheses (which may hold spaces).
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let user: u64 = fields.nth(11)?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 1_000 / TICKS_PER_SECOND))
}
