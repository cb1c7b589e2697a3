//! `esper`: the command line of the Esper deterministic simulation framework.
//!
//! Thin by design: it parses arguments, calls `esper-scenarios`/`esper-sim`, and
//! prints. Exit codes: 0 success, 1 a run failed or diverged, 2 bad usage.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use esper_scenarios::registry;
use esper_scenarios::seeds::SeedRange;
use esper_scenarios::tamiyo_wal;
use esper_scenarios::wal_soak::{SoakConfig, SoakError};
use esper_sim::{SimScenario, TraceMode, check_determinism, run_scenario};

/// Deterministic simulation and testing for the Esper-Lite training control loop.
///
/// Every run is named by (seed, commit): the same seed on the same commit gives the
/// same trace hash, byte for byte. Every failure prints its seed and the one
/// command that replays it.
#[derive(Debug, Parser)]
#[command(name = "esper", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the scenarios that `run` and `check-determinism` accept.
    Scenarios,
    /// Run one scenario at one seed in the simulated world and print its trace hash.
    Run {
        /// Scenario name (see `esper scenarios`).
        #[arg(long, value_parser = scenario_name)]
        scenario: &'static dyn SimScenario,
        /// The run's seed; every random choice descends from it.
        #[arg(long)]
        seed: u64,
        /// Also write every canonical trace line to FILE.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
    },
    /// Run each seed twice in fresh worlds and compare the traces event by event.
    CheckDeterminism {
        /// Scenario name (see `esper scenarios`).
        #[arg(long, value_parser = scenario_name)]
        scenario: &'static dyn SimScenario,
        /// Seeds to check: `A..B` (B excluded), `A..=B`, or a single `N`.
        #[arg(long, default_value = "0..100")]
        seeds: SeedRange,
    },
    /// Soak Tamiyo's field-report WAL on real files: append reports, inject a torn
    /// record every N and restart. Strict validation fails on the first injection
    /// (exit 1, with the typed error); non-strict passes and reports what it cut.
    WalSoak {
        /// Reports to append.
        #[arg(long, default_value_t = 50)]
        iterations: u64,
        /// Inject a torn record and restart after every this many reports.
        #[arg(long, default_value_t = 10)]
        truncate_every: u64,
        /// Strict WAL validation (`TAMIYO_WAL_STRICT_VALIDATION=1`).
        #[arg(long)]
        strict: bool,
        /// Work directory (must not hold a store yet); default a fresh temporary one,
        /// removed after a successful run.
        #[arg(long, value_name = "DIR")]
        workdir: Option<PathBuf>,
    },
    /// Back up or restore Tamiyo's field-report store (log and sidecars).
    TamiyoWal {
        #[command(subcommand)]
        action: TamiyoWalAction,
    },
    /// Feed Nissa synthetic telemetry for each alert in a simulated world: each must
    /// fire in the evaluation its condition is met and clear after normal samples.
    /// Exit 1 if any drill fails.
    FaultDrills {
        /// The world's seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Serve the simulated Redis server over real TCP (the real profile's embedded Redis).
    Redis {
        /// TCP port to listen on, on every local address.
        #[arg(long, default_value_t = 6379)]
        port: u16,
    },
    /// The main job. Until the RC1 harness lands (issue 10) this runs every
    /// simulation scenario that exists at one seed, checks each for determinism,
    /// and says so.
    Harness {
        /// `all`, or one scenario name.
        #[arg(default_value = "all")]
        target: String,
        /// Seed for every scenario.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

#[derive(Debug, Subcommand)]
enum TamiyoWalAction {
    /// Copy the store to DIR (the log checked, and written out clean).
    Backup {
        /// Destination directory.
        #[arg(long, value_name = "DIR")]
        dest: PathBuf,
        /// The store directory.
        #[arg(long, value_name = "DIR", default_value = "var/tamiyo")]
        dir: PathBuf,
    },
    /// Replace the store with the backup in DIR.
    Restore {
        /// Backup directory.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The store directory.
        #[arg(long, value_name = "DIR", default_value = "var/tamiyo")]
        dir: PathBuf,
    },
}

/// clap value parser: a registered scenario, or a usage error listing the names.
fn scenario_name(name: &str) -> Result<&'static dyn SimScenario, registry::UnknownScenario> {
    registry::find(name)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs a command; `Ok(false)` means a run failed (already reported), `Err` means
/// the command itself could not be carried out.
fn execute(command: Command) -> anyhow::Result<bool> {
    match command {
        Command::Scenarios => {
            for scenario in registry::all() {
                println!("{:<12} {}", scenario.name(), scenario.summary());
            }
            Ok(true)
        }
        Command::Run { scenario, seed, trace } => run(scenario, seed, trace),
        Command::CheckDeterminism { scenario, seeds } => Ok(check(scenario, &seeds)),
        Command::Harness { target, seed } => harness(&target, seed),
        Command::WalSoak { iterations, truncate_every, strict, workdir } => {
            wal_soak(SoakConfig { iterations, truncate_every, strict }, workdir)
        }
        Command::TamiyoWal { action } => tamiyo_wal(action),
        Command::FaultDrills { seed } => {
            let report = esper_scenarios::nissa::fault_drills(seed);
            report.drills.iter().for_each(|drill| println!("{drill}"));
            if !report.passed() {
                eprintln!("{}", report.run);
            }
            Ok(report.passed())
        }
        Command::Redis { port } => {
            eprintln!("esper redis: simulated Redis 7.0 listening on port {port}");
            esper_scenarios::embedded_redis::serve_blocking(port)
                .with_context(|| format!("serving Redis on port {port}"))?;
            Ok(true)
        }
    }
}

fn wal_soak(config: SoakConfig, workdir: Option<PathBuf>) -> anyhow::Result<bool> {
    let temporary = workdir.is_none();
    let workdir =
        workdir.unwrap_or_else(|| std::env::temp_dir().join(format!("esper-wal-soak-{}", std::process::id())));
    let mode = if config.strict { "strict" } else { "non-strict" };
    match tamiyo_wal::soak(&workdir, config, unix_ms_now()) {
        Ok(report) => {
            println!("wal-soak passed ({mode}, {}): {report}", workdir.display());
            if temporary {
                std::fs::remove_dir_all(&workdir).with_context(|| format!("removing {}", workdir.display()))?;
            }
            Ok(true)
        }
        Err(SoakError::Usage(message)) => anyhow::bail!(message),
        Err(error) => {
            eprintln!("wal-soak failed ({mode}, {}): {error}", workdir.display());
            if let SoakError::Persistence { report, .. } = &error {
                eprintln!("before the failure: {report}");
            }
            Ok(false)
        }
    }
}

fn tamiyo_wal(action: TamiyoWalAction) -> anyhow::Result<bool> {
    let (verb, dir, other) = match &action {
        TamiyoWalAction::Backup { dest, dir } => ("backup", dir, dest),
        TamiyoWalAction::Restore { from, dir } => ("restore", dir, from),
    };
    let config = tamiyo_wal::config_from_env(dir)?;
    let result = match &action {
        TamiyoWalAction::Backup { .. } => tamiyo_wal::backup_store(&config, other),
        TamiyoWalAction::Restore { .. } => tamiyo_wal::restore_store(&config, other),
    };
    match result {
        Ok(report) => {
            let files: Vec<String> = report.written.iter().map(|path| path.display().to_string()).collect();
            println!("tamiyo-wal {verb}: {} records; wrote {}", report.records, files.join(", "));
            if let Some(damage) = report.damage {
                println!(
                    "left out {} damaged bytes at offset {} ({})",
                    damage.dropped_bytes, damage.offset, damage.reason
                );
            }
            Ok(true)
        }
        Err(error) => {
            eprintln!("tamiyo-wal {verb} failed: {error}");
            Ok(false)
        }
    }
}

/// Unix milliseconds from the wall clock: the real soak stamps its reports with real
/// time, as Tamiyo would.
fn unix_ms_now() -> u64 {
    #[allow(clippy::disallowed_methods, reason = "the real-profile soak runs on wall-clock time")]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(0))
}

fn run(scenario: &dyn SimScenario, seed: u64, trace: Option<PathBuf>) -> anyhow::Result<bool> {
    let mode = if trace.is_some() { TraceMode::Full } else { TraceMode::Hash };
    let report = run_scenario(scenario, seed, mode);
    if let Some(path) = trace {
        let mut text = report.lines.join("\n");
        text.push('\n');
        std::fs::write(&path, text).with_context(|| format!("writing trace to {}", path.display()))?;
    }
    println!("{report}");
    Ok(report.passed())
}

fn check(scenario: &dyn SimScenario, seeds: &SeedRange) -> bool {
    let total = seeds.len();
    let step = (total / 10).max(1);
    for (done, seed) in seeds.seeds().enumerate() {
        let report = match check_determinism(scenario, seed) {
            Ok(report) => report,
            Err(divergence) => {
                eprintln!("{divergence}");
                return false;
            }
        };
        if !report.passed() {
            eprintln!("{report}");
            return false;
        }
        let done = done as u64 + 1;
        if done % step == 0 || done == total {
            eprintln!("checked {done}/{total} seeds of {}", scenario.name());
        }
    }
    println!("deterministic: scenario={} seeds={seeds} (each run twice, traces identical)", scenario.name());
    true
}

fn harness(target: &str, seed: u64) -> anyhow::Result<bool> {
    let scenarios: Vec<&dyn SimScenario> =
        if target == "all" { registry::all() } else { vec![registry::find(target)?] };
    eprintln!(
        "note: the RC1 harness (steady-train, rollback, tamiyo-timeout, kasmina-prefetch) lands with issue 10; \
         running the {} simulation scenario(s) that exist, each checked for determinism",
        scenarios.len()
    );
    let mut all_passed = true;
    for scenario in scenarios {
        let passed = check(scenario, &SeedRange::single(seed));
        all_passed &= passed;
    }
    Ok(all_passed)
}
