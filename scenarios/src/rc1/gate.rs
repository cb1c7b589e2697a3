//! `esper gate`: judges a run directory against a baseline file (the RC1 runbooks'
//! numbers and alert thresholds) or against an earlier run directory (trend).
//!
//! Each check ends ok, warn, crit, regressed, or not judged (with why: modelled
//! time is never compared with measured time). The health score is the share of
//! judged checks that passed, a warn counting half. Critical or regressed fails.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::metrics::{ScenarioMetrics, Timing};
use super::output::{RunDirError, read_run};

/// The schema tag of a baseline file.
pub const BASELINE_SCHEMA: &str = "esper.rc1.baseline/v1";

/// A baseline file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub schema: String,
    pub name: String,
    /// Where the numbers come from.
    pub source: String,
    /// Expectations per RC1 slug.
    pub scenarios: BTreeMap<String, ScenarioBaseline>,
}

/// What a baseline expects of one scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioBaseline {
    /// The workload the numbers were measured on (for the reader).
    #[serde(default)]
    pub workload: String,
    /// Latency KPI → statistic (`mean`, `p95`, …) → baseline milliseconds.
    #[serde(default)]
    pub latency: BTreeMap<String, BTreeMap<String, f64>>,
    /// Counter or result name → rule.
    #[serde(default)]
    pub expect: BTreeMap<String, Rule>,
    /// Alert thresholds per latency KPI, applied to its p95. Per scenario: a drill
    /// that stalls Kasmina on purpose has slow epochs that alert on nothing.
    #[serde(default)]
    pub thresholds: BTreeMap<String, Threshold>,
}

/// A rule on a counter or result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Equals(f64),
    Max(f64),
    Min(f64),
}

impl Rule {
    fn holds(self, value: f64) -> bool {
        match self {
            Self::Equals(expected) => value == expected,
            Self::Max(limit) => value <= limit,
            Self::Min(limit) => value >= limit,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Equals(value) => write!(formatter, "= {value}"),
            Self::Max(value) => write!(formatter, "≤ {value}"),
            Self::Min(value) => write!(formatter, "≥ {value}"),
        }
    }
}

/// Alert levels of a latency KPI, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub warn: Option<f64>,
    pub crit: Option<f64>,
}

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    Warn,
    Crit,
    Regressed,
    NotJudged(String),
}

impl fmt::Display for Verdict {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => formatter.write_str("ok"),
            Self::Warn => formatter.write_str("warn"),
            Self::Crit => formatter.write_str("CRIT"),
            Self::Regressed => formatter.write_str("REGRESSED"),
            Self::NotJudged(why) => write!(formatter, "not judged: {why}"),
        }
    }
}

/// One line of the gate's table.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub scenario: String,
    pub what: String,
    pub run: String,
    pub expected: String,
    pub verdict: Verdict,
}

/// The gate's judgement of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct GateReport {
    pub against: String,
    pub checks: Vec<Check>,
}

impl GateReport {
    fn count(&self, wanted: &Verdict) -> usize {
        self.checks.iter().filter(|c| &c.verdict == wanted).count()
    }

    fn judged(&self) -> usize {
        self.checks.iter().filter(|c| !matches!(c.verdict, Verdict::NotJudged(_))).count()
    }

    /// 100 × (ok + warn / 2) / judged; 0 when nothing could be judged.
    pub fn health_score(&self) -> f64 {
        let judged = self.judged();
        if judged == 0 {
            return 0.0;
        }
        100.0 * (self.count(&Verdict::Ok) as f64 + 0.5 * self.count(&Verdict::Warn) as f64) / judged as f64
    }

    /// Passes when something was judged and nothing was critical or regressed.
    pub fn passed(&self) -> bool {
        self.judged() > 0 && self.count(&Verdict::Crit) == 0 && self.count(&Verdict::Regressed) == 0
    }
}

impl fmt::Display for GateReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(formatter, "gate against {}", self.against)?;
        writeln!(formatter, "{:<24} {:<48} {:>14} {:>22}  verdict", "scenario", "check", "run", "expected")?;
        for c in &self.checks {
            writeln!(formatter, "{:<24} {:<48} {:>14} {:>22}  {}", c.scenario, c.what, c.run, c.expected, c.verdict)?;
        }
        write!(
            formatter,
            "health score {:.1}: {} judged ({} ok, {} warn, {} crit, {} regressed), {} not judged — {}",
            self.health_score(),
            self.judged(),
            self.count(&Verdict::Ok),
            self.count(&Verdict::Warn),
            self.count(&Verdict::Crit),
            self.count(&Verdict::Regressed),
            self.checks.len() - self.judged(),
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}

/// A baseline or run that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("baseline {path}: {error}")]
    BaselineIo { path: PathBuf, error: std::io::Error },
    #[error("baseline {path} is not a valid baseline file: {error}")]
    BaselineGarbled { path: PathBuf, error: serde_json::Error },
    #[error("baseline {path} has schema {found:?}; this esper reads {BASELINE_SCHEMA:?}")]
    BaselineSchema { path: PathBuf, found: String },
    #[error(transparent)]
    Run(#[from] RunDirError),
}

/// Reads a baseline file.
pub fn read_baseline(path: &Path) -> Result<Baseline, GateError> {
    let text = std::fs::read_to_string(path).map_err(|error| GateError::BaselineIo { path: path.to_owned(), error })?;
    let garbled = |error| GateError::BaselineGarbled { path: path.to_owned(), error };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(garbled)?;
    let found = value.get("schema").and_then(|s| s.as_str()).unwrap_or("(none)");
    if found != BASELINE_SCHEMA {
        return Err(GateError::BaselineSchema { path: path.to_owned(), found: found.to_owned() });
    }
    serde_json::from_value(value).map_err(garbled)
}

/// Judges the run in `run_dir` against `against`: a baseline file, or an earlier
/// run directory (trend). `tolerance` is the fraction a latency may exceed its
/// reference by before it counts as regressed.
pub fn gate(against: &Path, run_dir: &Path, tolerance: f64) -> Result<GateReport, GateError> {
    let run = read_run(run_dir)?;
    if against.is_dir() {
        let earlier = read_run(against)?;
        return Ok(GateReport {
            against: format!("run {}", against.display()),
            checks: trend(&earlier, &run, tolerance),
        });
    }
    let baseline = read_baseline(against)?;
    let against = format!("baseline {} ({})", baseline.name, against.display());
    Ok(GateReport { against, checks: judge(&baseline, &run, tolerance) })
}

/// Checks every scenario the run and the baseline share.
pub fn judge(baseline: &Baseline, run: &[ScenarioMetrics], tolerance: f64) -> Vec<Check> {
    let mut checks = Vec::new();
    for (slug, expected) in &baseline.scenarios {
        let Some(metrics) = run.iter().find(|m| &m.scenario == slug) else {
            checks.push(Check {
                scenario: slug.clone(),
                what: "(scenario)".to_owned(),
                run: "-".to_owned(),
                expected: "-".to_owned(),
                verdict: Verdict::NotJudged("not in this run".to_owned()),
            });
            continue;
        };
        for (kpi, statistics) in &expected.latency {
            for (statistic, &reference) in statistics {
                let what = format!("{kpi} {statistic}");
                let value = metrics.kpis.get(kpi).and_then(|s| s.statistic(statistic));
                let expected = format!("{reference:.2} +{:.0}%", tolerance * 100.0);
                checks.push(latency_check(metrics, what, value, expected, |v| v > reference * (1.0 + tolerance)));
            }
        }
        for (name, rule) in &expected.expect {
            let value = metrics.counters.get(name).or_else(|| metrics.results.get(name)).copied();
            let verdict = match value {
                None => Verdict::NotJudged("not reported".to_owned()),
                Some(value) if rule.holds(value) => Verdict::Ok,
                Some(_) => Verdict::Regressed,
            };
            let run = value.map_or_else(|| "-".to_owned(), |v| v.to_string());
            checks.push(Check { scenario: slug.clone(), what: name.clone(), run, expected: rule.to_string(), verdict });
        }
        for (kpi, threshold) in &expected.thresholds {
            if let Some(summary) = metrics.kpis.get(kpi) {
                checks.push(threshold_check(metrics, kpi, summary.p95, *threshold));
            }
        }
    }
    checks
}

fn latency_check(
    metrics: &ScenarioMetrics,
    what: String,
    value: Option<f64>,
    expected: String,
    regressed: impl Fn(f64) -> bool,
) -> Check {
    let verdict = match value {
        _ if metrics.timing == Timing::Modelled => Verdict::NotJudged("modelled time".to_owned()),
        None => Verdict::NotJudged("not reported".to_owned()),
        Some(v) if regressed(v) => Verdict::Regressed,
        Some(_) => Verdict::Ok,
    };
    let run = value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
    Check { scenario: metrics.scenario.clone(), what, run, expected, verdict }
}

fn threshold_check(metrics: &ScenarioMetrics, kpi: &str, p95: f64, threshold: Threshold) -> Check {
    let verdict = if metrics.timing == Timing::Modelled {
        Verdict::NotJudged("modelled time".to_owned())
    } else if threshold.crit.is_some_and(|crit| p95 >= crit) {
        Verdict::Crit
    } else if threshold.warn.is_some_and(|warn| p95 >= warn) {
        Verdict::Warn
    } else {
        Verdict::Ok
    };
    let limit = |level: Option<f64>, name: &str| level.map(|v| format!("{name} {v}"));
    let expected = [limit(threshold.warn, "warn"), limit(threshold.crit, "crit")].into_iter().flatten();
    Check {
        scenario: metrics.scenario.clone(),
        what: format!("{kpi} p95 vs alert thresholds"),
        run: format!("{p95:.3}"),
        expected: expected.collect::<Vec<_>>().join(" / "),
        verdict,
    }
}

/// Compares a run with an earlier one: latencies may not grow past the tolerance
/// (when both are measured the same way), counters and results may not change.
pub fn trend(earlier: &[ScenarioMetrics], run: &[ScenarioMetrics], tolerance: f64) -> Vec<Check> {
    let mut checks = Vec::new();
    for metrics in run {
        let Some(before) = earlier.iter().find(|m| m.scenario == metrics.scenario) else {
            continue;
        };
        for (kpi, now) in &metrics.kpis {
            for statistic in ["mean", "p95"] {
                let reference = before.kpis.get(kpi).and_then(|s| s.statistic(statistic));
                let what = format!("{kpi} {statistic}");
                let value = now.statistic(statistic);
                let Some(reference) = reference else { continue };
                let expected = format!("{reference:.3} +{:.0}%", tolerance * 100.0);
                let mut check = latency_check(metrics, what, value, expected, |v| v > reference * (1.0 + tolerance));
                if before.timing != metrics.timing {
                    check.verdict = Verdict::NotJudged("one run modelled, one measured".to_owned());
                }
                checks.push(check);
            }
        }
        let values = |m: &ScenarioMetrics| m.counters.iter().chain(&m.results).map(|(k, v)| (k.clone(), *v)).collect();
        let (now, then): (BTreeMap<String, f64>, BTreeMap<String, f64>) = (values(metrics), values(before));
        for (name, value) in &now {
            let Some(&reference) = then.get(name) else { continue };
            let same = value == &reference || (value.is_nan() && reference.is_nan());
            let verdict = if same { Verdict::Ok } else { Verdict::Regressed };
            checks.push(Check {
                scenario: metrics.scenario.clone(),
                what: name.clone(),
                run: value.to_string(),
                expected: format!("= {reference}"),
                verdict,
            });
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rc1::metrics::{LatencySummary, SCHEMA};

    fn run(timing: Timing, latencies: Vec<f64>, deadline_misses: f64) -> ScenarioMetrics {
        ScenarioMetrics {
            schema: SCHEMA.to_owned(),
            scenario: "rollback_deadline".to_owned(),
            profile: "real".to_owned(),
            device: "cpu".to_owned(),
            seed: 1,
            epochs: 1,
            timing,
            parameters: BTreeMap::new(),
            kpis: BTreeMap::from([("lat".to_owned(), LatencySummary::of_ms(latencies).expect("samples"))]),
            counters: BTreeMap::from([("misses".to_owned(), deadline_misses)]),
            events: BTreeMap::new(),
            results: BTreeMap::new(),
            trace_hash: None,
        }
    }

    fn baseline() -> Baseline {
        let scenario = ScenarioBaseline {
            workload: String::new(),
            latency: BTreeMap::from([("lat".to_owned(), BTreeMap::from([("mean".to_owned(), 10.0)]))]),
            expect: BTreeMap::from([("misses".to_owned(), Rule::Equals(1.0))]),
            thresholds: BTreeMap::from([("lat".to_owned(), Threshold { warn: Some(20.0), crit: Some(40.0) })]),
        };
        Baseline {
            schema: BASELINE_SCHEMA.to_owned(),
            name: "test".to_owned(),
            source: String::new(),
            scenarios: BTreeMap::from([("rollback_deadline".to_owned(), scenario)]),
        }
    }

    fn verdicts(checks: &[Check]) -> Vec<Verdict> {
        checks.iter().map(|c| c.verdict.clone()).collect()
    }

    #[test]
    fn latencies_counters_and_thresholds_are_judged_against_the_baseline() {
        let ok = judge(&baseline(), &[run(Timing::Wall, vec![9.0, 11.0, 12.0], 1.0)], 0.25);
        assert_eq!(verdicts(&ok), [Verdict::Ok, Verdict::Ok, Verdict::Ok]);
        let bad = judge(&baseline(), &[run(Timing::Wall, vec![20.0, 30.0, 45.0], 0.0)], 0.25);
        assert_eq!(verdicts(&bad), [Verdict::Regressed, Verdict::Regressed, Verdict::Crit]);
        let warn = judge(&baseline(), &[run(Timing::Wall, vec![10.0, 10.0, 25.0], 1.0)], 0.25);
        assert_eq!(verdicts(&warn), [Verdict::Regressed, Verdict::Ok, Verdict::Warn]);
        let report = GateReport { against: "t".to_owned(), checks: warn };
        assert!(!report.passed());
        assert!((report.health_score() - 100.0 * 1.5 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn modelled_time_is_never_judged_and_nothing_judged_does_not_pass() {
        let checks = judge(&baseline(), &[run(Timing::Modelled, vec![500.0], 1.0)], 0.25);
        let modelled = Verdict::NotJudged("modelled time".to_owned());
        assert_eq!(verdicts(&checks), [modelled.clone(), Verdict::Ok, modelled]);
        let none = GateReport { against: "t".to_owned(), checks: Vec::new() };
        assert!(!none.passed(), "a gate that judged nothing must not pass");
    }

    #[test]
    fn trend_flags_slower_latencies_and_changed_counters() {
        let before = run(Timing::Wall, vec![10.0, 10.0], 1.0);
        let same = std::slice::from_ref(&before);
        assert!(trend(same, same, 0.1).iter().all(|c| c.verdict == Verdict::Ok));
        let after = run(Timing::Wall, vec![12.0, 12.0], 2.0);
        let checks = trend(std::slice::from_ref(&before), &[after], 0.1);
        assert_eq!(verdicts(&checks), [Verdict::Regressed, Verdict::Regressed, Verdict::Regressed]);
        let modelled = run(Timing::Modelled, vec![10.0, 10.0], 1.0);
        let mixed = trend(&[before], &[modelled], 0.1);
        assert!(matches!(mixed[0].verdict, Verdict::NotJudged(_)), "{mixed:?}");
    }
}
