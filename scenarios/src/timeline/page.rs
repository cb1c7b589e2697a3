//! What the page draws, as the JSON its script reads: lanes, events in columns,
//! arrows, fault bands, the violation and the side panel's text.

use std::collections::BTreeSet;

use esper_sim::{Fault, Outcome, RunReport};
use serde::Serialize;

use super::messages::{Arrow, arrows};
use super::trace_line::{Level, TraceLine, TraceLineError};
use crate::drills::shrink::{Episode, episodes};

/// Host label of events raised by the world itself (fault injection).
const WORLD_HOST: &str = "world";

/// The page's data. Events are stored column by column (a list per attribute), so
/// 200,000 of them stay compact and the script indexes them without objects.
#[derive(Debug, Serialize)]
pub struct PageData {
    pub scenario: String,
    pub seed: u64,
    pub hash: String,
    pub planted: Option<String>,
    /// Sim time the run ended, in nanoseconds.
    pub end_ns: u64,
    pub replay: String,
    /// The world's hosts, one lane each, in name order.
    pub hosts: Vec<String>,
    pub levels: Vec<&'static str>,
    pub targets: Vec<String>,
    pub events: Events,
    /// Pairs of event indices: `[send, deliver]`.
    pub messages: Vec<[usize; 2]>,
    pub episodes: Vec<Band>,
    pub schedule: Vec<ScheduleEntry>,
    pub violation: Option<ViolationMark>,
}

/// Every event, column by column. `lane` indexes `hosts`; `hosts.len()` is the
/// world's own lane. `rest` is the line after `<target>:`, so the page rebuilds the
/// canonical line without storing time, host, level and target twice.
#[derive(Debug, Default, Serialize)]
pub struct Events {
    pub t_ns: Vec<u64>,
    pub lane: Vec<usize>,
    pub level: Vec<usize>,
    pub target: Vec<usize>,
    pub rest: Vec<String>,
}

/// One fault episode, drawn as one band over the lanes of the hosts it hits.
#[derive(Debug, Serialize)]
pub struct Band {
    pub kind: &'static str,
    pub label: String,
    pub start_ns: u64,
    /// `None`: an instant (a clock jump, an armed disk error…).
    pub end_ns: Option<u64>,
    /// Lane indices: two for a link, one for a host.
    pub lanes: Vec<usize>,
}

/// One fault of the schedule, for the side panel.
#[derive(Debug, Serialize)]
pub struct ScheduleEntry {
    pub at_ms: u64,
    pub text: String,
}

/// Where and what broke.
#[derive(Debug, Serialize)]
pub struct ViolationMark {
    pub invariant: String,
    pub detail: String,
    /// The run stops at the step that detected it.
    pub at_ns: u64,
}

/// The data for `report`, whose trace must have been kept in full.
pub fn page_data(report: &RunReport, replay: String) -> Result<PageData, TraceLineError> {
    let lines = report
        .lines
        .iter()
        .enumerate()
        .map(|(index, line)| TraceLine::parse(line, index + 1))
        .collect::<Result<Vec<_>, _>>()?;
    let hosts = lanes(report, &lines);
    let end_ns = nanos(report.sim_elapsed);
    let (events, targets) = columns(&lines, &hosts);
    let messages = arrows(&lines).into_iter().map(|Arrow { send, deliver }| [send, deliver]).collect();
    let violation = match &report.outcome {
        Outcome::Passed => None,
        Outcome::Failed { violation } => Some(ViolationMark {
            invariant: violation.invariant.to_string(),
            detail: violation.detail.clone(),
            at_ns: end_ns,
        }),
    };
    Ok(PageData {
        scenario: report.scenario.clone(),
        seed: report.seed,
        hash: report.hash.clone(),
        planted: report.planted.asked().map(|bug| bug.to_string()),
        end_ns,
        replay,
        levels: Level::ALL.iter().map(|level| level.name()).collect(),
        targets,
        events,
        messages,
        episodes: episodes(&report.schedule).iter().map(|episode| band(episode, &hosts, end_ns)).collect(),
        schedule: report
            .schedule
            .faults()
            .iter()
            .map(|scheduled| ScheduleEntry { at_ms: scheduled.at_ms, text: scheduled.fault.to_string() })
            .collect(),
        violation,
        hosts,
    })
}

/// The world's hosts, and any other name a line or the schedule uses, but not the world.
fn lanes(report: &RunReport, lines: &[TraceLine<'_>]) -> Vec<String> {
    let mut hosts: BTreeSet<&str> = report.hosts.iter().map(String::as_str).collect();
    hosts.extend(lines.iter().map(|line| line.host));
    hosts.extend(report.schedule.faults().iter().flat_map(|scheduled| scheduled.fault.hosts()));
    hosts.remove(WORLD_HOST);
    hosts.into_iter().map(str::to_owned).collect()
}

fn columns(lines: &[TraceLine<'_>], hosts: &[String]) -> (Events, Vec<String>) {
    let mut targets: Vec<String> = lines.iter().map(|line| line.target.to_owned()).collect();
    targets.sort();
    targets.dedup();
    let mut events = Events::default();
    for line in lines {
        events.t_ns.push(nanos(line.at));
        events.lane.push(lane_of(hosts, line.host));
        events.level.push(line.level as usize);
        events.target.push(targets.binary_search_by(|known| known.as_str().cmp(line.target)).unwrap_or(0));
        events.rest.push(line.fields.to_owned());
    }
    (events, targets)
}

/// A host's lane; the world's events (and any unknown host's) go to the last lane.
fn lane_of(hosts: &[String], host: &str) -> usize {
    hosts.binary_search_by(|known| known.as_str().cmp(host)).unwrap_or(hosts.len())
}

/// The band of one episode; one left open by the schedule lasts to `run_end_ns`.
fn band(episode: &Episode, hosts: &[String], run_end_ns: u64) -> Band {
    let fault = &episode.start.fault;
    let start_ns = episode.start.at_ms.saturating_mul(1_000_000);
    let (end_ns, label) = match &episode.end {
        Some(end) => (
            Some(end.at_ms.saturating_mul(1_000_000)),
            format!("{fault} ({} ms to {} ms: {})", episode.start.at_ms, end.at_ms, end.fault),
        ),
        None if lasts(fault) => {
            (Some(run_end_ns.max(start_ns)), format!("{fault} (from {} ms to the end of the run)", episode.start.at_ms))
        }
        None => (None, format!("{fault} (at {} ms)", episode.start.at_ms)),
    };
    Band {
        kind: fault.kind(),
        label,
        start_ns,
        end_ns,
        lanes: fault.hosts().iter().map(|h| lane_of(hosts, h)).collect(),
    }
}

/// Whether a fault holds until another ends it (left open, it lasts to the end of
/// the run) rather than happening at one instant.
fn lasts(fault: &Fault) -> bool {
    matches!(
        fault,
        Fault::Partition { .. }
            | Fault::PartitionOneWay { .. }
            | Fault::Hold { .. }
            | Fault::PacketLoss { .. }
            | Fault::Latency { .. }
            | Fault::Stall { .. }
            | Fault::Crash { .. }
            | Fault::DiskFull { .. }
            | Fault::RedisSlow { .. }
            | Fault::RedisOom { .. }
            | Fault::RedisLoading { .. }
            | Fault::DeviceSlow { .. }
    )
}

fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
