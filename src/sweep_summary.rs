//! `esper sweep --summary-md FILE`: one sweep's result as GitHub-flavoured markdown.
//!
//! Written for CI job summaries (a workflow appends the file to
//! `$GITHUB_STEP_SUMMARY`), so a reader sees, without opening the log, which seeds
//! this runner swept, which failed which invariant, and the command that replays
//! each failure once its artifact is downloaded. Only reads the finished
//! [`SweepSummary`]; it never changes what the sweep ran or how it exits.

use std::fmt::Write as _;
use std::path::Path;

use esper_core::planted::Planted;
use esper_scenarios::drills::failure::{cargo_run_for, replay_file_command};
use esper_scenarios::drills::sweep::{SweepConfig, SweepSummary};

/// The markdown for one sweep of one scenario.
pub fn markdown(config: &SweepConfig, summary: &SweepSummary) -> String {
    let failures: Vec<_> = summary.failures().collect();
    let divergent: Vec<_> = summary.divergent().collect();
    let verdict = if summary.clean() { "passed" } else { "FAILED" };
    let shard = config.shard.map(|shard| format!(", shard {}/{}", shard.index, shard.count)).unwrap_or_default();
    let mut text = String::new();
    // `write!` into a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(text, "### esper sweep {}: {verdict}\n", code(&summary.scenario));
    let _ = writeln!(text, "Seeds {}{shard}; {}.\n", config.seeds, mode(config));
    let _ = writeln!(text, "| seeds run | passed | failed | not deterministic |");
    let _ = writeln!(text, "| ---: | ---: | ---: | ---: |");
    let divergent_cell = if config.twice { divergent.len().to_string() } else { "not checked".to_owned() };
    let _ = writeln!(
        text,
        "| {} of {} | {} | {} | {divergent_cell} |\n",
        summary.results.len(),
        summary.planned,
        summary.results.len() - failures.len(),
        failures.len(),
    );
    if (summary.results.len() as u128) < summary.planned {
        let _ = writeln!(text, "Stopped early at `--max-failures`: the seeds below are the ones that ran.\n");
    }
    let seeds: Vec<String> = summary.results.iter().map(|result| result.seed.to_string()).collect();
    let _ = writeln!(
        text,
        "<details><summary>Seeds run ({})</summary>\n\n{}\n\n</details>\n",
        seeds.len(),
        seeds.join(" ")
    );
    if !failures.is_empty() {
        let _ = writeln!(text, "#### Failures\n");
        let _ = writeln!(text, "| seed | invariant | failure file | replay |");
        let _ = writeln!(text, "| ---: | --- | --- | --- |");
        for result in &failures {
            if let Some((path, invariant)) = &result.failure {
                let _ = writeln!(
                    text,
                    "| {} | {} | {} | {} |",
                    result.seed,
                    code(invariant.name()),
                    code(&path.display().to_string()),
                    code(&replay_file_command(path, &summary.scenario, config.planted)),
                );
            }
        }
        text.push('\n');
    }
    if !divergent.is_empty() {
        let _ = writeln!(text, "#### Not deterministic (two runs, two trace hashes)\n");
        let _ = writeln!(text, "| seed | first hash | second hash | check |");
        let _ = writeln!(text, "| ---: | --- | --- | --- |");
        for result in &divergent {
            let again = result.divergent_hash.as_deref().unwrap_or_default();
            let check = format!(
                "{} check-determinism --scenario {} --seeds {}",
                cargo_run_for(&summary.scenario, Planted::NONE),
                summary.scenario,
                result.seed
            );
            let _ = writeln!(text, "| {} | {} | {} | {} |", result.seed, code(&result.hash), code(again), code(&check));
        }
        text.push('\n');
    }
    text
}

/// Writes [`markdown`] to `path`.
pub fn write(path: &Path, config: &SweepConfig, summary: &SweepSummary) -> std::io::Result<()> {
    std::fs::write(path, markdown(config, summary))
}

fn mode(config: &SweepConfig) -> String {
    let mut mode = if config.swarm { "swarm (each seed draws its fault kinds)" } else { "every fault kind" }.to_owned();
    if config.twice {
        mode.push_str(", each seed run twice");
    }
    if let Some(bug) = config.planted.asked() {
        let _ = write!(mode, ", planted bug {}", code(bug.name()));
    }
    mode
}

/// `text` as an inline code span that is safe in a table cell: a `|` would end
/// the cell and a backtick the span.
fn code(text: &str) -> String {
    format!("`{}`", text.replace('`', "'").replace('|', "\\|"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::Duration;

    use esper_scenarios::drills::hang::HANG_AFTER;
    use esper_scenarios::drills::sweep::{SeedResult, Shard};
    use esper_sim::Invariant;

    use super::*;

    fn config(twice: bool) -> SweepConfig {
        SweepConfig {
            seeds: "10..20".parse().expect("seed range"),
            jobs: 1,
            shard: Some(Shard { index: 2, count: 3 }),
            swarm: true,
            twice,
            failures_dir: PathBuf::from("failures/oona-ledger"),
            max_failures: None,
            planted: Planted::default(),
            hang_after: HANG_AFTER,
        }
    }

    fn passed(seed: u64) -> SeedResult {
        SeedResult {
            seed,
            hash: format!("h{seed}"),
            sim_time: Duration::from_secs(1),
            faults: 2,
            failure: None,
            divergent_hash: None,
            tally: BTreeMap::new(),
        }
    }

    #[test]
    fn lists_the_seeds_each_failure_with_its_replay_command_and_each_divergence() {
        let failed = SeedResult {
            failure: Some((PathBuf::from("failures/oona-ledger/14.json"), Invariant::OonaLedger)),
            ..passed(14)
        };
        let divergent = SeedResult { divergent_hash: Some("other".to_owned()), ..passed(17) };
        let summary = SweepSummary {
            scenario: "oona-ledger".to_owned(),
            planned: 3,
            results: vec![passed(11), failed, divergent],
        };
        let text = markdown(&config(true), &summary);
        assert!(text.starts_with("### esper sweep `oona-ledger`: FAILED\n"), "{text}");
        assert!(text.contains("Seeds 10..=19, shard 2/3; swarm"), "{text}");
        assert!(text.contains("| 3 of 3 | 2 | 1 | 1 |"), "{text}");
        assert!(text.contains("<summary>Seeds run (3)</summary>\n\n11 14 17\n"), "{text}");
        let replay =
            replay_file_command(Path::new("failures/oona-ledger/14.json"), "oona-ledger", config(true).planted);
        assert_eq!(replay, "cargo run --release -- replay failures/oona-ledger/14.json");
        assert!(
            text.contains(&format!(
                "| 14 | `{}` | `failures/oona-ledger/14.json` | `{replay}` |",
                Invariant::OonaLedger
            )),
            "{text}"
        );
        assert!(text.contains("| 17 | `h17` | `other` | `cargo run --release -- check-determinism --scenario oona-ledger --seeds 17` |"), "{text}");
    }

    #[test]
    fn a_clean_sweep_has_no_failure_tables_and_says_when_determinism_was_not_checked() {
        let summary = SweepSummary { scenario: "control-loop".to_owned(), planned: 4, results: vec![passed(11)] };
        let text = markdown(&config(false), &summary);
        assert!(text.starts_with("### esper sweep `control-loop`: passed\n"), "{text}");
        assert!(text.contains("| 1 of 4 | 1 | 0 | not checked |"), "{text}");
        assert!(text.contains("Stopped early"), "fewer seeds ran than planned: {text}");
        assert!(!text.contains("#### Failures") && !text.contains("#### Not deterministic"), "{text}");
    }

    #[test]
    fn a_pipe_or_backtick_in_a_path_cannot_break_the_table() {
        assert_eq!(code("a|b`c"), "`a\\|b'c`");
    }
}
