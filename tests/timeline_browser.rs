//! The `--timeline` page of a failing run, opened in a real headless Chromium.
//!
//! `esper replay --timeline` writes the page of the saved outbox regression with
//! its planted bug re-armed (it fails `oona-ledger`); Chromium runs the page's
//! script and dumps the DOM it drew, which must hold one lane per world host, one
//! band per fault episode of the schedule, the violation marker and at least one
//! message arrow. A screenshot is kept under `target/tmp/timeline/` for CI to
//! upload. The checker is shown to fail on a page drawn from a trace without the
//! network's send/deliver lines, and on doctored DOMs. `esper sweep`'s pages
//! (`failures/<seed>.html`) are held to the same check.
//!
//! `cargo nextest run --features planted-bugs --test timeline_browser`.
#![cfg(feature = "planted-bugs")]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use esper_core::planted::PlantedBug;
use esper_scenarios::drills::failure::FailureRecord;
use esper_scenarios::drills::shrink::episode_count;
use esper_scenarios::timeline;
use esper_sim::{Invariant, NET_TARGET, TraceMode};
use support::external::{Tool, require};

/// What the drawn page must show.
#[derive(Debug)]
struct Expected<'a> {
    hosts: &'a [String],
    episodes: usize,
}

/// The chart as drawn: the DOM from `<svg id="chart"` to its `</svg>`. The page's
/// script, which spells the same class names in its source, comes after it.
fn chart(dom: &str) -> Option<&str> {
    let start = dom.find(r#"<svg id="chart""#)?;
    let end = start + dom[start..].find("</svg>")?;
    Some(&dom[start..end])
}

/// Counts the elements the page's script drew; `Err` names what is wrong.
fn check_dom(dom: &str, expected: &Expected<'_>) -> Result<(), String> {
    let dom = chart(dom).ok_or("no chart in the page")?;
    let lanes: Vec<&str> = dom
        .match_indices(r#"class="lane" data-host=""#)
        .filter_map(|(at, found)| dom[at + found.len()..].split('"').next())
        .collect();
    let mut problems = Vec::new();
    if lanes != expected.hosts {
        problems.push(format!("lanes {lanes:?}, want one per host {:?}", expected.hosts));
    }
    let bands = dom.matches(r#"<g class="band""#).count();
    if bands != expected.episodes {
        problems.push(format!("{bands} fault bands, want one per episode: {}", expected.episodes));
    }
    if dom.matches(r#"<g class="violation""#).count() != 1 {
        problems.push("no violation marker".to_owned());
    }
    if !dom.contains(r#"<line class="arrow""#) {
        problems.push("no message arrow".to_owned());
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

/// The saved outbox regression with its bug armed: it fails `oona-ledger`.
fn failing_record() -> FailureRecord {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/drills/regressions/oona-ledger-critical-lost-in-redis-crash.json");
    let record = FailureRecord::read(&path).expect("the regression file reads");
    FailureRecord { planted: Some(PlantedBug::OutboxForgetsCritical), ..record }
}

/// Where the screenshot is kept for CI to upload.
fn artifact_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("timeline");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir
}

/// Runs headless Chromium on `page` with `mode` (`--dump-dom`, `--screenshot=…`).
fn chromium(binary: &Path, page: &Path, mode: &str) -> String {
    let output = Command::new(binary)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,700", mode])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium starts");
    assert!(output.status.success(), "chromium {mode}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_failing_runs_timeline_draws_its_hosts_faults_violation_and_messages() {
    let test = "a_failing_runs_timeline_draws_its_hosts_faults_violation_and_messages";
    let Some(binary) = require(Tool::Chromium, test) else { return };
    let work = tempfile::tempdir().expect("temp dir");
    let (failure, page) = (work.path().join("failure.json"), work.path().join("failure.html"));
    let record = failing_record();
    record.write(&failure).expect("failure file");
    let replay = Command::new(env!("CARGO_BIN_EXE_esper"))
        .arg("replay")
        .arg(&failure)
        .arg("--timeline")
        .arg(&page)
        .output()
        .expect("esper runs");
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(replay.status.code(), Some(1), "the armed bug still fails: {stdout}");
    assert!(stdout.contains(&format!("timeline: {}", page.display())), "{stdout}");

    let report = record.replay(TraceMode::Hash).expect("registered");
    assert_eq!(report.outcome.invariant(), Some(Invariant::OonaLedger));
    let expected = Expected { hosts: &report.hosts, episodes: episode_count(&record.schedule) };
    assert!(expected.episodes > 0 && expected.hosts.len() > 1, "{expected:?}");
    let dom = chromium(&binary, &page, "--dump-dom");
    check_dom(&dom, &expected).unwrap_or_else(|problem| panic!("{problem}; page {}", page.display()));

    let screenshot = artifact_dir().join("oona-ledger-outbox-forgets-critical.png");
    chromium(&binary, &page, &format!("--screenshot={}", screenshot.display()));
    let size = std::fs::metadata(&screenshot).map(|meta| meta.len()).unwrap_or(0);
    assert!(size > 10_000, "screenshot {} has {size} bytes", screenshot.display());
}

/// `esper sweep` keeps a page next to each failure file (`failures/<seed>.html`),
/// and each draws what its own failure's schedule and hosts call for.
#[test]
fn a_sweep_writes_a_drawn_timeline_next_to_each_failure() {
    let Some(binary) = require(Tool::Chromium, "a_sweep_writes_a_drawn_timeline_next_to_each_failure") else {
        return;
    };
    let work = tempfile::tempdir().expect("temp dir");
    let failures = work.path().join("failures");
    let sweep = Command::new(env!("CARGO_BIN_EXE_esper"))
        .args(["sweep", "--scenario", "oona-ledger", "--seeds", "0..2", "--swarm"])
        .args(["--plant", "consumer-leaves-pending", "--jobs", "1", "--failures-dir"])
        .arg(&failures)
        .output()
        .expect("esper runs");
    let stdout = String::from_utf8_lossy(&sweep.stdout);
    assert_eq!(sweep.status.code(), Some(1), "the armed bug fails both seeds: {stdout}");
    for seed in 0..2 {
        let failure = failures.join(format!("{seed}.json"));
        let page = failures.join(format!("{seed}.html"));
        assert!(stdout.contains(&format!("timeline: {}", page.display())), "{stdout}");
        let record = FailureRecord::read(&failure).expect("the failure file reads");
        let report = record.replay(TraceMode::Hash).expect("registered");
        let expected = Expected { hosts: &report.hosts, episodes: episode_count(&record.schedule) };
        check_dom(&chromium(&binary, &page, "--dump-dom"), &expected)
            .unwrap_or_else(|problem| panic!("seed {seed}: {problem}; page {}", page.display()));
    }
}

/// A network that stops tracing its messages leaves the page without arrows, and the check says so.
#[test]
fn the_check_fails_on_a_page_drawn_without_message_lines() {
    let Some(binary) = require(Tool::Chromium, "the_check_fails_on_a_page_drawn_without_message_lines") else {
        return;
    };
    let record = failing_record();
    let mut report = record.replay(TraceMode::Full).expect("registered");
    report.lines.retain(|line| !line.contains(&format!(" {NET_TARGET}: ")));
    report.events = report.lines.len() as u64;
    let work = tempfile::tempdir().expect("temp dir");
    let page = work.path().join("silent-network.html");
    timeline::write(&page, &report, report.replay_command()).expect("page");
    let expected = Expected { hosts: &report.hosts, episodes: episode_count(&record.schedule) };
    let problem = check_dom(&chromium(&binary, &page, "--dump-dom"), &expected).expect_err("no arrows to find");
    assert_eq!(problem, "no message arrow");
}

#[test]
fn the_check_names_each_missing_or_extra_element() {
    let hosts = ["a".to_owned(), "b".to_owned()];
    let expected = Expected { hosts: &hosts, episodes: 1 };
    let good = r#"<svg id="chart"><g class="lane" data-host="a"></g><g class="lane" data-host="b"></g>
        <g class="band" data-kind="crash"></g><line class="arrow" x1="1"></line><g class="violation"></g></svg>
        <script>`<g class="band" data-kind="${kind}">`</script>"#;
    assert_eq!(check_dom(good, &expected), Ok(()));
    // What the script's source spells is not drawn.
    let undrawn =
        good.replacen(r#"<line class="arrow" x1="1"></line>"#, "", 1) + r#"<script>`<line class="arrow"`</script>"#;
    assert_eq!(check_dom(&undrawn, &expected), Err("no message arrow".to_owned()));
    assert_eq!(check_dom("<body></body>", &expected), Err("no chart in the page".to_owned()));
    let cases = [
        (r#"<g class="lane" data-host="b"></g>"#, "", "lanes"),
        (r#"<g class="band" data-kind="crash">"#, "", "fault bands"),
        (
            r#"<g class="band" data-kind="crash">"#,
            r#"<g class="band" data-kind="crash"><g class="band" data-kind="x">"#,
            "fault bands",
        ),
        (r#"<g class="violation">"#, "", "violation"),
        (r#"<line class="arrow" x1="1">"#, "", "arrow"),
    ];
    for (from, to, named) in cases {
        let problem = check_dom(&good.replacen(from, to, 1), &expected).expect_err(named);
        assert!(problem.contains(named), "{problem}");
    }
}
