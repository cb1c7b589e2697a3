//! Run twice, compare byte for byte.

use std::fmt;

use esper_core::planted::Planted;

use crate::report::RunReport;
use crate::scenario::{SimScenario, cargo_run, run_scenario};
use crate::trace::TraceMode;

/// Two runs of the same seed that did not produce the same trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// Scenario name.
    pub scenario: String,
    /// The seed both runs used.
    pub seed: u64,
    /// Zero-based index of the first event that differs.
    pub index: usize,
    /// That event in the first run (`None`: the first run had already ended).
    pub first: Option<String>,
    /// That event in the second run (`None`: the second run had already ended).
    pub second: Option<String>,
    /// Trace hashes of the two runs.
    pub hashes: [String; 2],
    /// The cargo features the scenario needs, for the replay command.
    pub cargo_features: &'static [&'static str],
}

impl fmt::Display for Divergence {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |line: &Option<String>| line.clone().unwrap_or_else(|| "(run had ended)".to_owned());
        writeln!(
            formatter,
            "seed={} scenario={} is NOT deterministic: first divergent event #{}",
            self.seed, self.scenario, self.index
        )?;
        writeln!(formatter, "  run 1: {}", show(&self.first))?;
        writeln!(formatter, "  run 2: {}", show(&self.second))?;
        writeln!(formatter, "  hashes: {} vs {}", self.hashes[0], self.hashes[1])?;
        write!(
            formatter,
            "  replay: {} check-determinism --scenario {} --seeds {}..={}",
            cargo_run(self.cargo_features, Planted::NONE),
            self.scenario,
            self.seed,
            self.seed
        )
    }
}

/// Runs `scenario` at `seed` twice in fresh worlds. Returns the first run's report
/// when both traces are identical, else the first divergent event.
pub fn check_determinism(scenario: &dyn SimScenario, seed: u64) -> Result<RunReport, Box<Divergence>> {
    let first = run_scenario(scenario, seed, TraceMode::Full);
    let second = run_scenario(scenario, seed, TraceMode::Full);
    if first.hash == second.hash && first.outcome == second.outcome {
        return Ok(first);
    }
    let index = first.lines.iter().zip(&second.lines).take_while(|(one, two)| one == two).count();
    Err(Box::new(Divergence {
        scenario: scenario.name().to_owned(),
        seed,
        index,
        first: first.lines.get(index).cloned(),
        second: second.lines.get(index).cloned(),
        hashes: [first.hash, second.hash],
        cargo_features: scenario.cargo_features(),
    }))
}
