//! Writes the `--timeline` page of a 200,000-event run for `ci/bench/timeline`,
//! which opens it in headless Chromium, and a peer page of the same size whose
//! drawing script is inert: the ratio of the two is what the timeline's script
//! costs over loading that much data at all.
//!
//! No scenario runs that long, so the bench takes a real run (kasmina-prefetch,
//! seed 0: about 10,000 events, most of them message sends and deliveries) and
//! lays copies of its trace end to end until there are 200,000 events. Each copy's
//! streams are renamed, so its messages pair within the copy.
//!
//! `cargo bench -p esper-scenarios --bench timeline_page -- DIR`.

use std::path::PathBuf;
use std::time::Duration;

use esper_scenarios::registry;
use esper_scenarios::timeline::{self, trace_line::TraceLine};
use esper_sim::trace::format_sim_time;
use esper_sim::{RunReport, TraceMode, run_scenario};

/// Events the page must hold.
const EVENTS: usize = 200_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target/timeline-bench".to_owned()));
    let run = run_scenario(registry::find("kasmina-prefetch")?, 0, TraceMode::Full);
    let report = tiled(&run)?;
    let page = timeline::render(&report, report.replay_command())?;
    // The peer: the same bytes, the drawing script made inert, and only the load time recorded.
    let peer = page.replacen("<script>\n\"use strict\";", "<script type=\"text/plain\">", 1).replacen(
        "</body>",
        "<script>document.body.dataset.openMs = performance.now().toFixed(1);</script></body>",
        1,
    );
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("timeline.html"), &page)?;
    std::fs::write(dir.join("peer.html"), &peer)?;
    println!(
        "timeline page: {} events ({} copies of {} seed {}), {} bytes ({:.1} MiB) in {}",
        report.events,
        report.events as usize / run.lines.len(),
        run.scenario,
        run.seed,
        page.len(),
        page.len() as f64 / (1024.0 * 1024.0),
        dir.display()
    );
    Ok(())
}

/// `run` repeated end to end (each copy 1 ms after the last ended) up to [`EVENTS`] lines.
fn tiled(run: &RunReport) -> Result<RunReport, Box<dyn std::error::Error>> {
    let copies = EVENTS.div_ceil(run.lines.len().max(1));
    let period = run.sim_elapsed + Duration::from_millis(1);
    let mut lines = Vec::with_capacity(copies * run.lines.len());
    for copy in 0..copies {
        let offset = period * u32::try_from(copy)?;
        for (index, text) in run.lines.iter().enumerate() {
            let line = TraceLine::parse(text, index + 1)?;
            let fields = line.fields.replace(" stream=", &format!(" stream=copy{copy}/"));
            let (time, level) = (format_sim_time(line.at + offset), line.level.name());
            lines.push(format!("{time} {} {level} {}:{fields}", line.host, line.target));
        }
    }
    Ok(RunReport { events: lines.len() as u64, sim_elapsed: period * u32::try_from(copies)?, lines, ..run.clone() })
}
