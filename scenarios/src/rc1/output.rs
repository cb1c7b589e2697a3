//! A run directory: what `esper harness` writes and `esper gate` reads.
//!
//! ```text
//! run.json                the manifest: what ran, and which metrics files are this run's
//! <slug>_metrics.json     one per scenario (schema: metrics::ScenarioMetrics)
//! <slug>_telemetry.json   the scenario's telemetry packets (Tolaria's, or Kasmina's), decoded, in order
//! summary.csv             one row per scenario and latency KPI
//! env.json                versions, device, CPU, CUDA, host
//! latency.svg, report.md  the tables and the latency plot
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::ScenarioRun;
use super::env::Environment;
use super::manifest::{
    MANIFEST_FILE, MANIFEST_SCHEMA, METRICS_SUFFIX, RunManifest, TELEMETRY_SUFFIX, metrics_file_name,
};
use super::metrics::{SCHEMA, ScenarioMetrics, Timing};
use super::plot::latency_svg;

/// A run directory that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error(
        "{path} is not a run directory: it has no {MANIFEST_FILE} (`esper harness --output-dir {path}` writes one)"
    )]
    NoManifest { path: PathBuf },
    #[error("{path} is not a valid {what}: {error}")]
    Garbled { path: PathBuf, what: &'static str, error: serde_json::Error },
    #[error("{path} has schema {found:?}; this esper reads {expected:?}")]
    Schema { path: PathBuf, found: String, expected: &'static str },
    #[error("{path} holds scenario {found:?}, but {MANIFEST_FILE} lists it for {listed:?}")]
    Mismatch { path: PathBuf, found: String, listed: String },
    #[error("{path} lists {name:?}, which is not a file name inside the run directory")]
    OutsideRun { path: PathBuf, name: String },
    #[error("the latency plot could not be drawn: {0}")]
    Plot(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunDirError + '_ {
    move |error| RunDirError::Io { path: path.to_owned(), error }
}

/// A run directory as the gate reads it: the manifest and the metrics it lists.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub manifest: RunManifest,
    pub metrics: Vec<ScenarioMetrics>,
}

/// Writes every file of a run into `dir` (created if missing) and the report to
/// `report`; returns the paths written. An earlier run's manifest, metrics and
/// telemetry files are removed first, and the manifest is written last, so a run
/// that stops half-way leaves no manifest for the gate to trust.
pub fn write_run(
    dir: &Path,
    runs: &[ScenarioRun],
    manifest: &RunManifest,
    env: &Environment,
    report: &Path,
) -> Result<Vec<PathBuf>, RunDirError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    remove_earlier_run(dir)?;
    let mut written = Vec::new();
    let mut write = |path: PathBuf, text: String| {
        std::fs::write(&path, text).map_err(io(&path))?;
        written.push(path);
        Ok::<(), RunDirError>(())
    };
    for run in runs {
        let slug = &run.metrics.scenario;
        write(dir.join(metrics_file_name(slug)), to_json(&run.metrics))?;
        write(dir.join(format!("{slug}{TELEMETRY_SUFFIX}")), to_json(&run.telemetry))?;
    }
    let metrics: Vec<ScenarioMetrics> = runs.iter().map(|run| run.metrics.clone()).collect();
    write(dir.join("summary.csv"), summary_csv(&metrics))?;
    write(dir.join("env.json"), to_json(env))?;
    write(dir.join("latency.svg"), latency_svg(&metrics).map_err(RunDirError::Plot)?)?;
    write(report.to_owned(), report_markdown(&metrics, env))?;
    write(dir.join(MANIFEST_FILE), to_json(manifest))?;
    Ok(written)
}

/// Removes the files an earlier harness run wrote into `dir` whose names depend on
/// what it ran (the manifest, metrics and telemetry files); the fixed-name files are
/// overwritten anyway. Nothing else in the directory is touched.
fn remove_earlier_run(dir: &Path) -> Result<(), RunDirError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        let ours = name == MANIFEST_FILE || name.ends_with(METRICS_SUFFIX) || name.ends_with(TELEMETRY_SUFFIX);
        if ours && path.is_file() {
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serialising our own plain data cannot fail; an empty file would be caught by the gate.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// The run in `dir`: its manifest and exactly the metrics files the manifest lists,
/// in the manifest's order. Any other file in the directory is ignored.
pub fn read_run(dir: &Path) -> Result<RunDir, RunDirError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    if !dir.is_dir() {
        return Err(RunDirError::Io {
            path: dir.to_owned(),
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such run directory"),
        });
    }
    if !manifest_path.is_file() {
        return Err(RunDirError::NoManifest { path: dir.to_owned() });
    }
    let manifest: RunManifest = read_tagged(&manifest_path, "run manifest", MANIFEST_SCHEMA)?;
    let mut metrics = Vec::with_capacity(manifest.scenarios.len());
    for entry in &manifest.scenarios {
        // A bare file name, so the gate judges this directory's files and no other.
        if Path::new(&entry.metrics).file_name().and_then(|name| name.to_str()) != Some(entry.metrics.as_str()) {
            return Err(RunDirError::OutsideRun { path: manifest_path, name: entry.metrics.clone() });
        }
        let path = dir.join(&entry.metrics);
        let scenario: ScenarioMetrics = read_tagged(&path, "metrics file", SCHEMA)?;
        if scenario.scenario != entry.scenario {
            return Err(RunDirError::Mismatch { path, found: scenario.scenario, listed: entry.scenario.clone() });
        }
        metrics.push(scenario);
    }
    Ok(RunDir { manifest, metrics })
}

/// Reads a JSON file whose `schema` field must be `expected`.
fn read_tagged<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
    expected: &'static str,
) -> Result<T, RunDirError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let garbled = |error| RunDirError::Garbled { path: path.to_owned(), what, error };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(garbled)?;
    let found = value.get("schema").and_then(|s| s.as_str()).unwrap_or("(none)");
    if found != expected {
        return Err(RunDirError::Schema { path: path.to_owned(), found: found.to_owned(), expected });
    }
    serde_json::from_value(value).map_err(garbled)
}

/// `summary.csv`: one row per scenario and latency KPI.
pub fn summary_csv(runs: &[ScenarioMetrics]) -> String {
    let mut csv = "scenario,profile,device,seed,timing,kpi,samples,mean_ms,p50_ms,p95_ms,max_ms\n".to_owned();
    for run in runs {
        for (kpi, s) in &run.kpis {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{kpi},{},{:.4},{:.4},{:.4},{:.4}",
                run.scenario,
                run.profile,
                run.device,
                run.seed,
                run.timing.name(),
                s.samples,
                s.mean,
                s.p50,
                s.p95,
                s.max
            );
        }
    }
    csv
}

/// The latency table, in Markdown (also what the CLI prints).
pub fn latency_table(runs: &[ScenarioMetrics]) -> String {
    let mut table = "| scenario | profile | device | KPI | n | mean ms | p50 ms | p95 ms | max ms |\n".to_owned();
    table.push_str("|---|---|---|---|---:|---:|---:|---:|---:|\n");
    for run in runs {
        for (kpi, s) in &run.kpis {
            let _ = writeln!(
                table,
                "| {} | {} | {} | {kpi} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
                run.scenario, run.profile, run.device, s.samples, s.mean, s.p50, s.p95, s.max
            );
        }
    }
    table
}

/// The counters and results that moved, per scenario, in Markdown.
pub fn counter_table(runs: &[ScenarioMetrics]) -> String {
    let mut table = "| scenario | counter or result | value |\n|---|---|---:|\n".to_owned();
    for run in runs {
        let moved = run.counters.iter().chain(&run.results).filter(|(_, value)| **value != 0.0);
        for (name, value) in moved {
            let _ = writeln!(table, "| {} | {name} | {value} |", run.scenario);
        }
    }
    table
}

fn report_markdown(runs: &[ScenarioMetrics], env: &Environment) -> String {
    let timing = if runs.iter().any(|r| r.timing == Timing::Modelled) {
        "Sim profile: latencies are modelled virtual time (the cost model), not measurements."
    } else {
        "Real profile: latencies are wall-clock measurements."
    };
    let mut report = format!(
        "# RC1 harness report\n\nesper {} · profile {} · device {} · CPU {} ({} cores) · CUDA: {} · Redis: {}\n\n{timing}\n\n",
        env.esper_version, env.profile, env.device, env.cpu_model, env.cpu_cores, env.cuda, env.redis
    );
    report.push_str("## Latency\n\n");
    report.push_str(&latency_table(runs));
    report.push_str("\n![latency samples](latency.svg)\n\n## Counters and results\n\n");
    report.push_str(&counter_table(runs));
    let hashes: Vec<String> = runs
        .iter()
        .filter_map(|r| r.trace_hash.as_ref().map(|hash| format!("- {} seed {}: `{hash}`", r.scenario, r.seed)))
        .collect();
    if !hashes.is_empty() {
        report.push_str("\n## Trace hashes\n\n");
        report.push_str(&hashes.join("\n"));
        report.push('\n');
    }
    report
}
