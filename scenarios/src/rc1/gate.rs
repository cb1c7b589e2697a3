//! `esper gate`: judges a run directory against a baseline file (the RC1 runbooks'
//! numbers and alert thresholds) or against an earlier run directory (trend).
//!
//! Each check ends ok, warn, crit, regressed, missing (the reference names it, the
//! run lacks it), or not judged (with why: modelled time is never compared with
//! measured time). The health score is the share of judged checks that passed, a
//! warn counting half. Critical, regressed or missing fails; so does judging nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::manifest::RunManifest;
use super::metrics::{ScenarioMetrics, Timing};
use super::output::{RunDir, RunDirError, read_run};

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
    /// Alert thresholds per latency KPI, applied to its p95. Per scenario: a workload
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

/// How far a latency may exceed its reference before it counts as regressed, as a
/// fraction (0.25 = 25 %). Finite and within `0..=MAX`: a NaN would make every
/// comparison false, and so every latency ok.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance(f64);

/// A tolerance the gate refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToleranceError {
    #[error("tolerance {0:?} is not a number")]
    NotANumber(String),
    #[error("tolerance {0} is outside 0..={max} (a fraction: 0.25 = 25 %)", max = Tolerance::MAX)]
    OutOfRange(f64),
}

impl Tolerance {
    /// The largest tolerance: a latency eleven times its reference.
    pub const MAX: f64 = 10.0;

    pub fn new(fraction: f64) -> Result<Self, ToleranceError> {
        if fraction.is_finite() && (0.0..=Self::MAX).contains(&fraction) {
            Ok(Self(fraction))
        } else {
            Err(ToleranceError::OutOfRange(fraction))
        }
    }

    /// Whether `value` exceeds `reference` by more than the tolerance.
    fn exceeded(self, value: f64, reference: f64) -> bool {
        value > reference * (1.0 + self.0)
    }

    /// `12.00 +25%`.
    fn describe(self, reference: f64, decimals: usize) -> String {
        format!("{reference:.decimals$} +{:.0}%", self.0 * 100.0)
    }
}

impl std::str::FromStr for Tolerance {
    type Err = ToleranceError;

    fn from_str(text: &str) -> Result<Self, ToleranceError> {
        let fraction = text.trim().parse::<f64>().map_err(|_| ToleranceError::NotANumber(text.to_owned()))?;
        Self::new(fraction)
    }
}

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    Warn,
    Crit,
    Regressed,
    /// The reference names it and the run lacks it: a run cannot pass by leaving
    /// out what it would fail on.
    Missing,
    NotJudged(String),
}

impl Verdict {
    fn fails(&self) -> bool {
        matches!(self, Self::Crit | Self::Regressed | Self::Missing)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => formatter.write_str("ok"),
            Self::Warn => formatter.write_str("warn"),
            Self::Crit => formatter.write_str("CRIT"),
            Self::Regressed => formatter.write_str("REGRESSED"),
            Self::Missing => formatter.write_str("MISSING"),
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

impl Check {
    /// A check of something the reference names and the run lacks.
    fn missing(scenario: &str, what: impl Into<String>, expected: impl Into<String>) -> Self {
        Self {
            scenario: scenario.to_owned(),
            what: what.into(),
            run: "-".to_owned(),
            expected: expected.into(),
            verdict: Verdict::Missing,
        }
    }

    /// A whole scenario the gate saw but had nothing to compare with.
    fn unmatched(scenario: &str, why: &str) -> Self {
        Self {
            scenario: scenario.to_owned(),
            what: "(scenario)".to_owned(),
            run: "-".to_owned(),
            expected: "-".to_owned(),
            verdict: Verdict::NotJudged(why.to_owned()),
        }
    }
}

/// The gate's judgement of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct GateReport {
    /// The run judged: its directory and what its manifest says it was.
    pub run: String,
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

    /// 100 × (ok + warn / 2) / judged; 0 when nothing could be judged. A missing
    /// check is judged, and scores nothing.
    pub fn health_score(&self) -> f64 {
        let judged = self.judged();
        if judged == 0 {
            return 0.0;
        }
        100.0 * (self.count(&Verdict::Ok) as f64 + 0.5 * self.count(&Verdict::Warn) as f64) / judged as f64
    }

    /// Passes when something was judged and nothing was critical, regressed or missing.
    pub fn passed(&self) -> bool {
        self.judged() > 0 && !self.checks.iter().any(|c| c.verdict.fails())
    }
}

impl fmt::Display for GateReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(formatter, "gate {} against {}", self.run, self.against)?;
        writeln!(formatter, "{:<24} {:<48} {:>14} {:>22}  verdict", "scenario", "check", "run", "expected")?;
        for c in &self.checks {
            writeln!(formatter, "{:<24} {:<48} {:>14} {:>22}  {}", c.scenario, c.what, c.run, c.expected, c.verdict)?;
        }
        write!(
            formatter,
            "health score {:.1}: {} judged ({} ok, {} warn, {} crit, {} regressed, {} missing), {} not judged — {}",
            self.health_score(),
            self.judged(),
            self.count(&Verdict::Ok),
            self.count(&Verdict::Warn),
            self.count(&Verdict::Crit),
            self.count(&Verdict::Regressed),
            self.count(&Verdict::Missing),
            self.checks.len() - self.judged(),
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}

/// A baseline or run that could not be read, or a scope that names nothing to judge.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("baseline {path}: {error}")]
    BaselineIo { path: PathBuf, error: std::io::Error },
    #[error("baseline {path} is not a valid baseline file: {error}")]
    BaselineGarbled { path: PathBuf, error: serde_json::Error },
    #[error("baseline {path} has schema {found:?}; this esper reads {BASELINE_SCHEMA:?}")]
    BaselineSchema { path: PathBuf, found: String },
    #[error("--scenarios names {scenario}, which {against} does not hold; it holds {holds}")]
    NotInReference { scenario: String, against: String, holds: String },
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

/// Which scenarios of the reference the gate judges.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// Every scenario the baseline or earlier run holds.
    #[default]
    Everything,
    /// Only these RC1 slugs, asked for explicitly (`--scenarios`).
    Only(BTreeSet<String>),
}

impl Scope {
    fn includes(&self, slug: &str) -> bool {
        match self {
            Self::Everything => true,
            Self::Only(slugs) => slugs.contains(slug),
        }
    }

    /// Refuses a scope naming a scenario the reference does not hold: it would
    /// judge nothing and say so only by passing.
    fn check<'a>(&self, against: &str, held: impl Iterator<Item = &'a String> + Clone) -> Result<(), GateError> {
        let Self::Only(slugs) = self else { return Ok(()) };
        match slugs.iter().find(|slug| !held.clone().any(|h| &h == slug)) {
            None => Ok(()),
            Some(slug) => Err(GateError::NotInReference {
                scenario: slug.clone(),
                against: against.to_owned(),
                holds: held.map(String::as_str).collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

/// Judges the run in `run_dir` against `against`: a baseline file, or an earlier
/// run directory (trend). Only the files each run's manifest lists are read.
pub fn gate(against: &Path, run_dir: &Path, tolerance: Tolerance, scope: &Scope) -> Result<GateReport, GateError> {
    let RunDir { manifest, metrics: run } = read_run(run_dir)?;
    let described = describe_run(run_dir, &manifest);
    if against.is_dir() {
        let earlier = read_run(against)?;
        let name = describe_run(against, &earlier.manifest);
        scope.check(&name, earlier.metrics.iter().map(|m| &m.scenario))?;
        let checks = trend(&earlier.metrics, &run, tolerance, scope);
        return Ok(GateReport { run: described, against: name, checks });
    }
    let baseline = read_baseline(against)?;
    let name = format!("baseline {} ({})", baseline.name, against.display());
    scope.check(&name, baseline.scenarios.keys())?;
    Ok(GateReport { run: described, against: name, checks: judge(&baseline, &run, tolerance, scope) })
}

/// `run out/rc1 (sim, synthetic, seed 42, epochs 3, commit a834e5b…)`.
fn describe_run(dir: &Path, manifest: &RunManifest) -> String {
    format!(
        "run {} ({}, {}, seed {}, epochs {}, commit {})",
        dir.display(),
        manifest.profile,
        manifest.device,
        manifest.seed,
        manifest.epochs,
        manifest.commit
    )
}

/// Checks every scenario, latency, counter and threshold the baseline names (within
/// `scope`); whatever of those the run lacks is missing.
pub fn judge(baseline: &Baseline, run: &[ScenarioMetrics], tolerance: Tolerance, scope: &Scope) -> Vec<Check> {
    let mut checks = Vec::new();
    for (slug, expected) in baseline.scenarios.iter().filter(|(slug, _)| scope.includes(slug)) {
        let Some(metrics) = run.iter().find(|m| &m.scenario == slug) else {
            checks.push(Check::missing(slug, "(scenario)", "in the run"));
            continue;
        };
        for (kpi, statistics) in &expected.latency {
            for (statistic, &reference) in statistics {
                let what = format!("{kpi} {statistic}");
                let value = metrics.kpis.get(kpi).and_then(|s| s.statistic(statistic));
                let expected = tolerance.describe(reference, 2);
                checks.push(latency_check(metrics, what, value, expected, |v| tolerance.exceeded(v, reference)));
            }
        }
        for (name, rule) in &expected.expect {
            let value = metrics.counters.get(name).or_else(|| metrics.results.get(name)).copied();
            let Some(value) = value else {
                checks.push(Check::missing(slug, name.clone(), rule.to_string()));
                continue;
            };
            let verdict = if rule.holds(value) { Verdict::Ok } else { Verdict::Regressed };
            checks.push(Check {
                scenario: slug.clone(),
                what: name.clone(),
                run: value.to_string(),
                expected: rule.to_string(),
                verdict,
            });
        }
        for (kpi, threshold) in &expected.thresholds {
            checks.push(match metrics.kpis.get(kpi) {
                Some(summary) => threshold_check(metrics, kpi, summary.p95, *threshold),
                None => Check::missing(slug, format!("{kpi} p95 vs alert thresholds"), "in the run"),
            });
        }
    }
    let unmatched = run.iter().filter(|m| scope.includes(&m.scenario) && !baseline.scenarios.contains_key(&m.scenario));
    checks.extend(unmatched.map(|m| Check::unmatched(&m.scenario, "not in the baseline")));
    checks
}

/// A latency's check: missing when the run lacks it, not judged in modelled time.
fn latency_check(
    metrics: &ScenarioMetrics,
    what: String,
    value: Option<f64>,
    expected: String,
    regressed: impl Fn(f64) -> bool,
) -> Check {
    let verdict = match value {
        None => Verdict::Missing,
        _ if metrics.timing == Timing::Modelled => Verdict::NotJudged("modelled time".to_owned()),
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

/// Compares a run with an earlier one (within `scope`): every scenario, latency KPI,
/// counter and result of the earlier run must still be there; latencies may not
/// grow past the tolerance (when both are measured the same way), counters and
/// results may not change.
pub fn trend(earlier: &[ScenarioMetrics], run: &[ScenarioMetrics], tolerance: Tolerance, scope: &Scope) -> Vec<Check> {
    let mut checks = Vec::new();
    for before in earlier.iter().filter(|m| scope.includes(&m.scenario)) {
        match run.iter().find(|m| m.scenario == before.scenario) {
            Some(now) => checks.extend(trend_scenario(before, now, tolerance)),
            None => checks.push(Check::missing(&before.scenario, "(scenario)", "in the run")),
        }
    }
    let new = run.iter().filter(|m| scope.includes(&m.scenario) && !earlier.iter().any(|e| e.scenario == m.scenario));
    checks.extend(new.map(|m| Check::unmatched(&m.scenario, "not in the earlier run")));
    checks
}

/// One scenario of a trend, driven by what the earlier run reported.
fn trend_scenario(before: &ScenarioMetrics, now: &ScenarioMetrics, tolerance: Tolerance) -> Vec<Check> {
    let mut checks = Vec::new();
    for (kpi, then) in &before.kpis {
        for statistic in ["mean", "p95"] {
            let Some(reference) = then.statistic(statistic) else { continue };
            let what = format!("{kpi} {statistic}");
            let value = now.kpis.get(kpi).and_then(|s| s.statistic(statistic));
            let expected = tolerance.describe(reference, 3);
            let mut check = latency_check(now, what, value, expected, |v| tolerance.exceeded(v, reference));
            if value.is_some() && before.timing != now.timing {
                check.verdict = Verdict::NotJudged("one run modelled, one measured".to_owned());
            }
            checks.push(check);
        }
    }
    let values = |m: &ScenarioMetrics| m.counters.iter().chain(&m.results).map(|(k, v)| (k.clone(), *v)).collect();
    let (now_values, then_values): (BTreeMap<String, f64>, BTreeMap<String, f64>) = (values(now), values(before));
    for (name, &reference) in &then_values {
        let expected = format!("= {reference}");
        let Some(&value) = now_values.get(name) else {
            checks.push(Check::missing(&now.scenario, name.clone(), expected));
            continue;
        };
        let same = value == reference || (value.is_nan() && reference.is_nan());
        let verdict = if same { Verdict::Ok } else { Verdict::Regressed };
        checks.push(Check {
            scenario: now.scenario.clone(),
            what: name.clone(),
            run: value.to_string(),
            expected,
            verdict,
        });
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

    fn tolerance(fraction: f64) -> Tolerance {
        Tolerance::new(fraction).expect("a valid tolerance")
    }

    fn everything(baseline: &Baseline, run: &[ScenarioMetrics]) -> Vec<Check> {
        judge(baseline, run, tolerance(0.25), &Scope::Everything)
    }

    #[test]
    fn latencies_counters_and_thresholds_are_judged_against_the_baseline() {
        let ok = everything(&baseline(), &[run(Timing::Wall, vec![9.0, 11.0, 12.0], 1.0)]);
        assert_eq!(verdicts(&ok), [Verdict::Ok, Verdict::Ok, Verdict::Ok]);
        let bad = everything(&baseline(), &[run(Timing::Wall, vec![20.0, 30.0, 45.0], 0.0)]);
        assert_eq!(verdicts(&bad), [Verdict::Regressed, Verdict::Regressed, Verdict::Crit]);
        let warn = everything(&baseline(), &[run(Timing::Wall, vec![10.0, 10.0, 25.0], 1.0)]);
        assert_eq!(verdicts(&warn), [Verdict::Regressed, Verdict::Ok, Verdict::Warn]);
        let report = GateReport { run: "r".to_owned(), against: "t".to_owned(), checks: warn };
        assert!(!report.passed());
        assert!((report.health_score() - 100.0 * 1.5 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn modelled_time_is_never_judged_and_nothing_judged_does_not_pass() {
        let checks = everything(&baseline(), &[run(Timing::Modelled, vec![500.0], 1.0)]);
        let modelled = Verdict::NotJudged("modelled time".to_owned());
        assert_eq!(verdicts(&checks), [modelled.clone(), Verdict::Ok, modelled.clone()]);
        let none = GateReport { run: "r".to_owned(), against: "t".to_owned(), checks: Vec::new() };
        assert!(!none.passed(), "a gate that judged nothing must not pass");
        let only_skipped = GateReport {
            run: "r".to_owned(),
            against: "t".to_owned(),
            checks: vec![checks[0].clone(), checks[2].clone()],
        };
        assert!(!only_skipped.passed(), "checks that were all not judged must not pass");
    }

    #[test]
    fn a_scenario_kpi_counter_or_threshold_the_run_lacks_is_missing_and_fails() {
        let lacks_scenario =
            GateReport { run: "r".to_owned(), against: "t".to_owned(), checks: everything(&baseline(), &[]) };
        assert_eq!(verdicts(&lacks_scenario.checks), [Verdict::Missing]);
        assert!(!lacks_scenario.passed(), "{lacks_scenario}");

        let mut lacks_counter = run(Timing::Wall, vec![9.0, 11.0], 1.0);
        lacks_counter.counters.clear();
        let checks = everything(&baseline(), &[lacks_counter]);
        assert_eq!(verdicts(&checks), [Verdict::Ok, Verdict::Missing, Verdict::Ok]);
        assert!(!GateReport { run: "r".to_owned(), against: "t".to_owned(), checks }.passed());

        let mut lacks_kpi = run(Timing::Modelled, vec![9.0], 1.0);
        lacks_kpi.kpis.clear();
        let checks = everything(&baseline(), &[lacks_kpi]);
        assert_eq!(verdicts(&checks), [Verdict::Missing, Verdict::Ok, Verdict::Missing], "even in modelled time");
    }

    #[test]
    fn a_scope_judges_only_the_scenarios_it_names_and_refuses_unknown_ones() {
        let only_other = Scope::Only(BTreeSet::from(["steady_train".to_owned()]));
        assert!(judge(&baseline(), &[], tolerance(0.25), &only_other).is_empty());
        let error = only_other.check("baseline t", baseline().scenarios.keys()).expect_err("not in the baseline");
        assert!(error.to_string().contains("steady_train"), "{error}");
        let only_this = Scope::Only(BTreeSet::from(["rollback_deadline".to_owned()]));
        assert!(only_this.check("baseline t", baseline().scenarios.keys()).is_ok());
        assert_eq!(verdicts(&judge(&baseline(), &[], tolerance(0.25), &only_this)), [Verdict::Missing]);
    }

    #[test]
    fn tolerance_is_finite_and_between_0_and_10() {
        for text in ["0", "0.25", "10", " 1.5 "] {
            assert!(text.parse::<Tolerance>().is_ok(), "{text}");
        }
        for text in ["NaN", "nan", "inf", "-inf", "-1", "-0.01", "11", "10.000001", "", "lots"] {
            assert!(text.parse::<Tolerance>().is_err(), "{text:?} must be refused");
        }
    }

    #[test]
    fn trend_flags_slower_latencies_and_changed_counters() {
        let (t, all) = (tolerance(0.1), &Scope::Everything);
        let before = run(Timing::Wall, vec![10.0, 10.0], 1.0);
        let same = std::slice::from_ref(&before);
        assert!(trend(same, same, t, all).iter().all(|c| c.verdict == Verdict::Ok));
        let after = run(Timing::Wall, vec![12.0, 12.0], 2.0);
        let checks = trend(std::slice::from_ref(&before), &[after], t, all);
        assert_eq!(verdicts(&checks), [Verdict::Regressed, Verdict::Regressed, Verdict::Regressed]);
        let modelled = run(Timing::Modelled, vec![10.0, 10.0], 1.0);
        let mixed = trend(std::slice::from_ref(&before), &[modelled], t, all);
        assert!(matches!(mixed[0].verdict, Verdict::NotJudged(_)), "{mixed:?}");
    }

    #[test]
    fn trend_fails_on_a_scenario_kpi_or_counter_the_newer_run_lost() {
        let (t, all) = (tolerance(0.1), &Scope::Everything);
        let before = run(Timing::Wall, vec![10.0, 10.0], 1.0);
        let earlier = std::slice::from_ref(&before);
        assert_eq!(verdicts(&trend(earlier, &[], t, all)), [Verdict::Missing]);
        let mut lost_counter = before.clone();
        lost_counter.counters.clear();
        assert_eq!(verdicts(&trend(earlier, &[lost_counter], t, all)), [Verdict::Ok, Verdict::Ok, Verdict::Missing]);
        let mut lost_kpi = before.clone();
        lost_kpi.kpis.clear();
        assert_eq!(verdicts(&trend(earlier, &[lost_kpi], t, all)), [Verdict::Missing, Verdict::Missing, Verdict::Ok]);
    }
}
