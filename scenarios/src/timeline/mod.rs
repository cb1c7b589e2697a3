//! `--timeline FILE.html`: one self-contained page that shows a run.
//!
//! A lane per host, a time axis in sim milliseconds (wheel to zoom, drag to pan),
//! every trace event as a mark coloured by level (hover: the canonical line),
//! messages as arrows from send to delivery (paired from the `esper_sim::net`
//! lines, [`messages`]), each fault episode of the schedule as a shaded band on the
//! lanes it hits, the broken invariant marked where the run stopped, a filter by
//! target and text, and the replay command and schedule in a side panel. Zoomed
//! out, marks and arrows are bucketed per few pixels, so 200,000 events stay
//! smooth (`ci/bench/run --timeline`).
//!
//! It lives in `esper-scenarios`, not the CLI, because `esper sweep` (here) writes
//! one next to each failure file, and because it draws the schedule's episodes as
//! the shrinker pairs them ([`crate::drills::shrink`]). The page is
//! [`TEMPLATE`] with the run's data as JSON in place of its placeholder: script
//! and style inline, nothing fetched, so it opens from disk and can be attached
//! to a CI run as it is.

mod messages;
mod page;
pub mod trace_line;

use std::path::{Path, PathBuf};

use esper_sim::RunReport;

pub use page::{PageData, page_data};
use trace_line::TraceLineError;

/// The page, with [`DATA_PLACEHOLDER`] where the run's JSON goes.
pub const TEMPLATE: &str = include_str!("timeline.html");

/// Replaced by the run's data (once: the template holds it once).
pub const DATA_PLACEHOLDER: &str = "/*TIMELINE_DATA*/";

/// A timeline that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error("the run kept only its trace hash; a timeline needs every line (TraceMode::Full)")]
    TraceNotKept,
    #[error(transparent)]
    Trace(#[from] TraceLineError),
    #[error("cannot write timeline {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The page for `report` (run with [`esper_sim::TraceMode::Full`]); `replay` is the
/// command the side panel offers.
pub fn render(report: &RunReport, replay: String) -> Result<String, TimelineError> {
    if report.lines.len() as u64 != report.events {
        return Err(TimelineError::TraceNotKept);
    }
    let data = page_data(report, replay)?;
    // Serializing owned strings and integers cannot fail. `<` is escaped so no
    // line of the trace can close the script element it is embedded in.
    let json = serde_json::to_string(&data).unwrap_or_default().replace('<', "\\u003c");
    Ok(TEMPLATE.replacen(DATA_PLACEHOLDER, &json, 1))
}

/// Renders and writes the page to `path`, creating its directory.
pub fn write(path: &Path, report: &RunReport, replay: String) -> Result<(), TimelineError> {
    write_page(path, &render(report, replay)?)
}

/// Writes a rendered page to `path`, creating its directory.
pub fn write_page(path: &Path, page: &str) -> Result<(), TimelineError> {
    let error = |source| TimelineError::Write { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    std::fs::write(path, page).map_err(error)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use esper_core::planted::Planted;
    use esper_sim::{Fault, FaultSchedule, Invariant, Outcome, ScheduledFault};

    use super::*;

    fn report(lines: &[&str]) -> RunReport {
        let at = |at_ms, fault| ScheduledFault { at_ms, fault };
        let (a, b) = (|| "publisher".to_owned(), || "redis".to_owned());
        RunReport {
            scenario: "oona-ledger".to_owned(),
            seed: 11,
            schedule: FaultSchedule::new(vec![
                at(5, Fault::Partition { a: a(), b: b() }),
                at(7, Fault::Crash { host: b() }),
                at(9, Fault::Repair { a: b(), b: a() }),
                at(9, Fault::ClockJump { host: a(), by_ms: 10 }),
            ]),
            planted: Planted::NONE,
            hosts: vec![a(), b()],
            hash: "0".repeat(64),
            events: lines.len() as u64,
            sim_elapsed: Duration::from_millis(12),
            outcome: Outcome::Failed { violation: Invariant::OonaLedger.violated("message 50 </script> lost") },
            lines: lines.iter().map(|line| (*line).to_owned()).collect(),
            tail: Vec::new(),
            tally: std::collections::BTreeMap::new(),
            cargo_features: &[],
        }
    }

    const LINES: [&str; 4] = [
        "0.001000000 publisher TRACE esper_sim::net: message=send stream=publisher:1>redis:6379 offset=0 bytes=9",
        "0.002000000 redis TRACE esper_sim::net: message=deliver stream=publisher:1>redis:6379 offset=0 bytes=9",
        "0.005000000 world INFO esper_sim::fault: message=fault injected kind=\"partition\" a=\"publisher\" b=\"redis\"",
        "0.011000000 publisher WARN esper_core::oona::link: message=oona: </script><script>alert(1)</script>",
    ];

    #[test]
    fn the_page_holds_lanes_bands_arrows_and_the_violation() {
        let data = page_data(&report(&LINES), "replay it".to_owned()).expect("canonical lines");
        assert_eq!(data.hosts, ["publisher", "redis"]);
        assert_eq!(data.events.lane, [0, 1, 2, 0], "the world's events go to the last lane");
        assert_eq!(data.messages, [[0, 1]]);
        let bands: Vec<(&str, Option<u64>, &[usize])> =
            data.episodes.iter().map(|band| (band.kind, band.end_ns, band.lanes.as_slice())).collect();
        // The crash is never restarted: it lasts to the end of the run. The clock jump is an instant.
        assert_eq!(
            bands,
            [
                ("partition", Some(9_000_000), &[0, 1][..]),
                ("crash", Some(12_000_000), &[1][..]),
                ("clock_jump", None, &[0][..])
            ]
        );
        assert_eq!(data.violation.as_ref().map(|mark| mark.at_ns), Some(12_000_000));
    }

    #[test]
    fn no_trace_line_can_close_the_data_script() {
        let page = render(&report(&LINES), "replay it".to_owned()).expect("page");
        assert_eq!(TEMPLATE.matches(DATA_PLACEHOLDER).count(), 1);
        assert!(!page.contains(DATA_PLACEHOLDER));
        assert_eq!(page.matches("</script>").count(), TEMPLATE.matches("</script>").count(), "only the template's own");
        assert!(page.contains(r"\u003c/script>\u003cscript>alert(1)"));
    }

    #[test]
    fn a_trace_kept_as_a_hash_only_or_garbled_is_a_typed_error() {
        let mut hashed = report(&LINES);
        hashed.lines.clear();
        assert!(matches!(render(&hashed, String::new()), Err(TimelineError::TraceNotKept)));
        let garbled = report(&["0.001 publisher INFO x: y"]);
        let error = render(&garbled, String::new()).expect_err("not canonical");
        assert!(error.to_string().contains("trace line 1"), "{error}");
    }
}
