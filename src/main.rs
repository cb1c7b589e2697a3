//! `esper`: the command line of the Esper deterministic simulation framework.
//!
//! Thin by design: it parses arguments, calls `esper-scenarios`/`esper-sim`, and
//! prints. Exit codes: 0 success, 1 a run failed, diverged or was judged failing (or
//! could not finish), 2 bad usage or unreadable input; see [`exit`].

mod drill_cmd;
mod duration_arg;
mod exit;
mod logging;
mod sweep_summary;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use esper_core::planted::Planted;
use esper_core::tolaria::device::DeviceKind;
use esper_scenarios::drills::hang;
use esper_scenarios::drills::sweep::{Shard, SweepConfig};
use esper_scenarios::rc1::gate::{Scope, Tolerance};
use esper_scenarios::rc1::prefetch::RC1_BURST;
use esper_scenarios::rc1::training::{TamiyoStalls, TrainingParams};
use esper_scenarios::rc1::{self, HarnessConfig, Profile, Rc1Scenario};
use esper_scenarios::real::real_profile::{
    DevKey, KeySource, RealKey, RedisTarget, process_env, signing_key, wall_clock_ms,
};
use esper_scenarios::real::tamiyo_wal;
use esper_scenarios::registry;
use esper_scenarios::runs;
use esper_scenarios::seeds::SeedRange;
use esper_scenarios::sim::kasmina_prefetch::{self, BurstConfig};
use esper_scenarios::sim::wal_soak::{SoakConfig, SoakError};
use esper_sim::{SimScenario, TraceMode};
use exit::{CommandResult, Tag as _, usage};

/// Bounds of the duration flags.
const MILLISECOND: Duration = Duration::from_millis(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3_600);

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

/// `--plant BUG`: arms one planted bug for every run. The flag exists only in
/// test builds with the `planted-bugs` feature; elsewhere it is always `None`.
#[derive(Debug, Clone, Default, clap::Args)]
struct PlantArg {
    /// A planted bug to arm: see `esper_core::planted::PlantedBug`.
    #[cfg_attr(feature = "planted-bugs", arg(long, value_name = "BUG"))]
    #[cfg_attr(not(feature = "planted-bugs"), arg(skip))]
    plant: Option<esper_core::planted::PlantedBug>,
}

/// `--insecure-dev-key`, for every command with a real profile.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
struct DevKeyArg {
    /// Without ESPER_LEYLINE_SECRET, sign with a random key only this process knows
    /// instead of refusing to start (a warning is printed at every start). For a
    /// bus no other process reads; deployments set the secret.
    #[arg(long)]
    insecure_dev_key: bool,
}

impl DevKeyArg {
    /// The real profile's key, warning on stderr when it is a dev key.
    fn resolve(self) -> Result<RealKey, exit::CommandError> {
        let consent = if self.insecure_dev_key { DevKey::Allowed } else { DevKey::Refused };
        let key = signing_key(process_env, consent)?;
        if key.source == KeySource::InsecureDevKey {
            eprintln!("{}", exit::INSECURE_DEV_KEY_WARNING);
        }
        Ok(key)
    }
}

/// `esper redis`: the port and redis.conf's connection limits, with defaults
/// safer than Redis's (which are no password, 10,000 clients, 1 GiB buffers and
/// no idle timeout).
#[derive(Debug, clap::Args)]
struct RedisArgs {
    /// TCP port to listen on (0: a free one).
    #[arg(long, default_value_t = 6379)]
    port: u16,
    /// The interface to listen on: loopback unless another is given
    /// (`0.0.0.0` opens it to every network this machine is on).
    #[arg(long, value_name = "IP", default_value_t = esper_scenarios::real::embedded_redis::DEFAULT_BIND)]
    bind: std::net::IpAddr,
    /// `requirepass`: commands other than AUTH/HELLO/QUIT/RESET answer -NOAUTH
    /// until the client authenticates with this password.
    #[arg(long, value_name = "PASSWORD")]
    requirepass: Option<String>,
    /// `maxclients`: more connections get `-ERR max number of clients reached`.
    #[arg(long, default_value_t = 128)]
    maxclients: usize,
    /// `client-query-buffer-limit`: a client buffering more is disconnected
    /// (bytes, or with a unit: 64mb, 1gb).
    #[arg(long, default_value = "64mb", value_parser = parse_memory)]
    client_query_buffer_limit: usize,
    /// `timeout`: seconds a client may stay idle (not blocked) before it is
    /// disconnected; 0 keeps idle clients forever.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

impl RedisArgs {
    fn limits(&self) -> esper_scenarios::real::embedded_redis::RedisLimits {
        esper_scenarios::real::embedded_redis::RedisLimits {
            requirepass: self.requirepass.clone().map(String::into_bytes),
            max_clients: self.maxclients,
            query_buffer_bytes: self.client_query_buffer_limit,
            idle_timeout: std::time::Duration::from_secs(self.timeout),
        }
    }
}

/// A redis.conf memory value: bytes, or a number with b / k / kb / m / mb / g / gb.
fn parse_memory(text: &str) -> Result<usize, String> {
    let lower = text.to_ascii_lowercase();
    let split = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let scale: usize = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1000 * 1000,
        "mb" => 1 << 20,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1 << 30,
        _ => return Err(format!("`{text}`: expected bytes or a number with b, k, kb, m, mb, g or gb")),
    };
    let number: usize = digits.parse().map_err(|_| format!("`{text}`: expected a number of bytes"))?;
    number.checked_mul(scale).filter(|bytes| *bytes > 0).ok_or_else(|| format!("`{text}`: out of range"))
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the scenarios that `run` and `check-determinism` accept.
    Scenarios {
        /// Only the names of those `sweep` can drill (the ones with a fault space),
        /// one per line: what CI loops over.
        #[arg(long)]
        drillable: bool,
    },
    /// Run one scenario at one seed in the simulated world and print its trace hash.
    /// Exit 3, with the command that reruns it, if the run is still going after
    /// 60 s of wall time (a loop that never awaits and logs nothing).
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
        /// Also write the run's timeline to FILE.html: one self-contained page
        /// (hosts as lanes, faults as bands, messages as arrows).
        #[arg(long, value_name = "FILE.html")]
        timeline: Option<PathBuf>,
        #[command(flatten)]
        plant: PlantArg,
    },
    /// Run each seed twice in fresh worlds and compare the traces event by event.
    /// Exit 3 if a seed is still running after 60 s of wall time (hung).
    CheckDeterminism {
        /// Scenario name (see `esper scenarios`).
        #[arg(long, value_parser = scenario_name)]
        scenario: &'static dyn SimScenario,
        /// Seeds to check: `A..B` (B excluded), `A..=B`, or a single `N`.
        #[arg(long, default_value = "0..100")]
        seeds: SeedRange,
    },
    /// AlertCheck a scenario over many seeds: each seed draws a fault schedule from the
    /// scenario's fault space (with `--swarm`, first a subset of fault kinds), runs
    /// it and judges the invariants. Seeds run in parallel; each failure is written
    /// to `<failures-dir>/<seed>.json` with the command that replays it, and its
    /// timeline to `<failures-dir>/<seed>.html`. Exit 1 if
    /// any seed fails (or, with `--twice`, hashes differently on its second run);
    /// exit 3, naming the seed and its rerun command, if a seed is still running
    /// after 60 s of wall time (a loop that never awaits and logs nothing).
    Sweep {
        /// Scenario name; only scenarios with a fault space can be swept.
        #[arg(long, value_parser = scenario_name)]
        scenario: &'static dyn SimScenario,
        /// Seeds: `A..B` (B excluded), `A..=B`, or a single `N`.
        #[arg(long, default_value = "0..100")]
        seeds: SeedRange,
        /// Worker threads; default one per core, at most four per core.
        #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        jobs: Option<usize>,
        /// Run only this machine's share `k/n` of the seeds (for CI matrices).
        #[arg(long, value_name = "k/n")]
        shard: Option<Shard>,
        /// Swarm testing: each seed first draws which fault kinds it may use.
        #[arg(long)]
        swarm: bool,
        /// Run every seed twice and require identical trace hashes.
        #[arg(long)]
        twice: bool,
        /// Where failure files go.
        #[arg(long, value_name = "DIR", default_value = "failures")]
        failures_dir: PathBuf,
        /// Stop starting new seeds after this many failures.
        #[arg(long, value_name = "N")]
        max_failures: Option<usize>,
        /// Also write a markdown summary (seeds, failures, replay commands) to FILE,
        /// e.g. for a CI job summary.
        #[arg(long, value_name = "FILE")]
        summary_md: Option<PathBuf>,
        #[command(flatten)]
        plant: PlantArg,
    },
    /// Rerun one failure file exactly (scenario, seed, schedule). Exit 1 if it still
    /// fails, 0 if its invariant holds now.
    Replay {
        /// A file `esper sweep` or `esper shrink` wrote.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Also write the rerun's timeline to FILE.html.
        #[arg(long, value_name = "FILE.html")]
        timeline: Option<PathBuf>,
    },
    /// Minimise a failure file's schedule: remove faults, shorten and delay them
    /// while the same invariant still fails; writes `<FILE stem>.min.json`.
    Shrink {
        /// A file `esper sweep` wrote.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Where to write the minimised file.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Give up after this many runs.
        #[arg(long, default_value_t = 400)]
        max_runs: u32,
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
    /// Exit 1 if any alert check fails. Also answers to `fault-drills`, Esper-Lite's
    /// name (`run_fault_drills.py`).
    #[command(alias = "fault-drills")]
    AlertChecks {
        /// The world's seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// The whole control loop for real on this machine: Redis (embedded unless
    /// --redis-url), Nissa's HTTP on --nissa-addr, and Weatherlight supervising Nissa,
    /// Urza, Tamiyo and Tolaria. Prints `esper up: ready …`, one line per epoch, and
    /// `esper up: finished …` after --epochs; SIGINT/SIGTERM stop it gracefully
    /// (`esper up: stopped …`, exit 0). Exit 1 if Weatherlight gave up on a service.
    Up(UpArgs),
    /// Run Nissa alone: ingest from Oona on --redis-url, serve /metrics, /healthz,
    /// /readyz and /metrics/summary on --addr, until SIGINT or SIGTERM.
    Nissa(NissaArgs),
    /// Read Tamiyo's field-report log.
    FieldReports {
        #[command(subcommand)]
        action: FieldReportsAction,
    },
    /// Serve the simulated Redis server over real TCP (the real profile's embedded Redis).
    Redis(RedisArgs),
    /// The main job: the RC1 harness. Runs steady-train, rollback, tamiyo-timeout and
    /// kasmina-prefetch (or one of them), writes `run.json` (the manifest: what ran, the
    /// commit, and which files are this run's), `<scenario>_metrics.json`, `summary.csv`,
    /// `env.json`, `latency.svg` and `report.md` to the output directory (removing an
    /// earlier run's manifest, metrics and telemetry files first), and prints the tables.
    /// The sim profile (default) models time and gives each run a trace hash; the real
    /// profile measures wall time on a real device over a real TCP Redis.
    Harness(HarnessArgs),
    /// Judge a run directory against a baseline file (ok/warn/crit/regressed/missing
    /// per check, and a health score) or against an earlier run directory (trend).
    /// Only the files the run's `run.json` lists are read. Exit 1 on a critical,
    /// regressed or missing check (a scenario, KPI or counter the reference names and
    /// the run lacks), 2 on a missing or garbled input.
    Gate {
        /// A baseline file (`baselines/rc1/cpu.json`) or an earlier run directory.
        #[arg(long, value_name = "FILE|DIR")]
        baseline: PathBuf,
        /// The run directory to judge (what `esper harness` wrote).
        #[arg(value_name = "RUN_DIR")]
        run_dir: PathBuf,
        /// How far a latency may exceed its reference before it counts as regressed,
        /// a fraction in 0..=10 (0.25 = 25 %).
        #[arg(long, default_value = "0.25")]
        tolerance: Tolerance,
        /// Judge only these scenarios (comma-separated: steady-train, rollback,
        /// tamiyo-timeout, kasmina-prefetch); by default every one the baseline names.
        #[arg(long, value_name = "A,B", value_delimiter = ',')]
        scenarios: Option<Vec<Rc1Scenario>>,
    },
    /// Kasmina's prefetch burst: kernel requests to Urza over Oona, a few at a time;
    /// prints mean and p95 latency per profile. The sim run is checked against
    /// Urza's model (mean within 1 ms of the ready latency, p95 under 53.5 ms).
    KasminaPrefetch {
        /// `sim` (seeded world, virtual time), `real` (tokio, wall time) or `both`.
        #[arg(long, default_value = "both", value_parser = ["sim", "real", "both"])]
        profile: String,
        /// Seed of the world (sim) and of Urza's latency draws (both).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Kernel requests in the burst.
        #[arg(long, default_value_t = 300)]
        requests: usize,
        /// Requests in flight at most.
        #[arg(long, default_value_t = 6)]
        concurrency: usize,
        /// Urza's modelled ready latency.
        #[arg(long, default_value = "40ms", value_name = "DURATION", value_parser = duration_arg::any)]
        ready_latency: Duration,
        /// Half-width of the uniform jitter around it.
        #[arg(long, default_value = "8ms", value_name = "DURATION", value_parser = duration_arg::any)]
        jitter: Duration,
        /// Per-request timeout, after which the fallback kernel is used.
        #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = duration_arg::any)]
        request_timeout: Duration,
        /// Real profile: this Redis instead of the embedded one.
        #[arg(long, value_name = "redis://HOST:PORT")]
        redis_url: Option<String>,
        #[command(flatten)]
        dev_key: DevKeyArg,
    },
}

#[derive(Debug, clap::Args)]
struct HarnessArgs {
    /// `all`, or one of steady-train, rollback, tamiyo-timeout, kasmina-prefetch.
    #[arg(default_value = "all", value_parser = harness_target)]
    target: HarnessTarget,
    /// sim (modelled time, deterministic, trace hash) or real (wall time, TCP Redis).
    #[arg(long, default_value = "sim", value_enum)]
    profile: Profile,
    /// synthetic (pure Rust), cpu or cuda[:N] (libtorch; needs `--features tch`).
    #[arg(long, default_value = "synthetic")]
    device: DeviceKind,
    /// Epochs for steady-train and tamiyo-timeout (rollback always runs one).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    epochs: u32,
    /// The seed every random choice descends from (dataset, model, stalls, sim).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where the run directory goes.
    #[arg(long, default_value = "out/rc1", value_name = "DIR")]
    output_dir: PathBuf,
    /// Write report.md here instead of into the output directory.
    #[arg(long, value_name = "FILE")]
    markdown_report: Option<PathBuf>,
    /// Real profile only: `embedded` (the simulated server over TCP, started here) or
    /// redis://host[:port] of a running redis-server.
    #[arg(long, default_value = "embedded", value_name = "URL")]
    redis_url: String,
    /// Samples per optimizer step (the 64-sample dataset is split into batches).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    batch_size: u64,
    /// tamiyo-timeout: Tamiyo stalls in every Nth epoch (RC1's stub was consulted per epoch).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    timeout_every: u32,
    /// tamiyo-timeout: instead, each Tamiyo call stalls with this probability (seeded).
    #[arg(long, value_name = "RATIO", value_parser = ratio)]
    tamiyo_timeout_ratio: Option<f64>,
    /// How long Tolaria waits for Tamiyo and for Kasmina (1ms to 60s).
    #[arg(long, default_value = "50ms", value_name = "DURATION", value_parser = duration_arg::within(MILLISECOND..=MINUTE))]
    step_timeout: Duration,
    /// rollback: the restore deadline (RC1's `--deadline-ms 5`; 1ms to 60s).
    #[arg(long, default_value = "5ms", value_name = "DURATION", value_parser = duration_arg::within(MILLISECOND..=MINUTE))]
    deadline: Duration,
    /// rollback: how long a checkpoint read takes (RC1's restore took 12ms; 0 to 60s).
    #[arg(long, default_value = "12ms", value_name = "DURATION", value_parser = duration_arg::within(Duration::ZERO..=MINUTE))]
    checkpoint_read_latency: Duration,
    /// kasmina-prefetch: kernel requests in the burst.
    #[arg(long, default_value_t = RC1_BURST.requests as u64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    requests: u64,
    /// kasmina-prefetch: requests in flight at most.
    #[arg(long, default_value_t = RC1_BURST.concurrency as u64, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    concurrency: u64,
    /// kasmina-prefetch: Urza's kernel-ready latency (RC1's burst: 40ms).
    #[arg(long, default_value = "40ms", value_name = "DURATION", value_parser = duration_arg::any)]
    ready_latency: Duration,
    /// kasmina-prefetch: half-width of the uniform jitter on it (seeded; RC1's burst: 0).
    #[arg(long, default_value = "0", value_name = "DURATION", value_parser = duration_arg::any)]
    jitter: Duration,
    #[command(flatten)]
    dev_key: DevKeyArg,
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// `embedded` (the simulated server over TCP, started here) or redis://host[:port].
    #[arg(long, default_value = "embedded", value_name = "URL")]
    redis_url: String,
    /// synthetic (pure Rust), cpu or cuda[:N] (libtorch; needs `--features tch`).
    #[arg(long, default_value = "synthetic")]
    device: DeviceKind,
    /// Epochs Tolaria trains (counting any a previous run in --workdir completed).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    epochs: u32,
    /// Where Nissa serves /metrics, /healthz and /metrics/summary (port 0: a free one).
    #[arg(long, default_value_t = esper_scenarios::real::up::DEFAULT_NISSA_ADDR, value_name = "ADDR")]
    nissa_addr: std::net::SocketAddr,
    /// Checkpoints and WALs; a later run in the same directory resumes from them.
    #[arg(long, default_value = "var/esper-up", value_name = "DIR")]
    workdir: PathBuf,
    /// The seed of the dataset, the model and every seeded draw.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Keep Nissa serving this long after the last epoch, so the final state can be
    /// read (a duration up to 1h: 5s).
    #[arg(long, default_value = "0", value_name = "DURATION", value_parser = duration_arg::within(Duration::ZERO..=HOUR))]
    linger: Duration,
    /// Fault injection: sleep this long before every fsync (a slow disk, e.g. 200ms),
    /// to show it stalls only the task waiting on it, never /healthz.
    #[arg(long, default_value = "0", value_name = "DURATION", value_parser = duration_arg::any)]
    fault_fsync_delay: Duration,
    /// Fault injection: sleep this long before every training step (a slow libtorch
    /// step, e.g. 200ms), to show it holds only Tolaria's thread, never /healthz,
    /// Tamiyo's RPC or Weatherlight's heartbeats.
    #[arg(long, default_value = "0", value_name = "DURATION", value_parser = duration_arg::any)]
    fault_step_delay: Duration,
    #[command(flatten)]
    log: logging::LogArgs,
    #[command(flatten)]
    dev_key: DevKeyArg,
}

#[derive(Debug, clap::Args)]
struct NissaArgs {
    /// `embedded` (the simulated server over TCP, started here) or redis://host[:port].
    #[arg(long, value_name = "URL")]
    redis_url: String,
    /// Where the HTTP endpoints listen (port 0: a free one).
    #[arg(long, default_value_t = esper_scenarios::real::up::DEFAULT_NISSA_ADDR, value_name = "ADDR")]
    addr: std::net::SocketAddr,
    /// Seeds the bus client's nonces and retry jitter.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    log: logging::LogArgs,
    #[command(flatten)]
    dev_key: DevKeyArg,
}

#[derive(Debug, Subcommand)]
enum FieldReportsAction {
    /// Print every report in the log as one JSON object a line, oldest first,
    /// without changing the log; exit 1 if the log is damaged past what was printed.
    Dump {
        /// The store directory (holds `field_reports.log`).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Keep reading: print reports as they are appended, until stopped.
        #[arg(long)]
        follow: bool,
    },
}

/// `all`, or one RC1 scenario.
#[derive(Debug, Clone)]
struct HarnessTarget(Vec<Rc1Scenario>);

fn harness_target(text: &str) -> Result<HarnessTarget, String> {
    if text == "all" {
        Ok(HarnessTarget(Rc1Scenario::ALL.to_vec()))
    } else {
        text.parse().map(|s| HarnessTarget(vec![s])).map_err(|error| format!("{error}, or all"))
    }
}

fn ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a probability between 0 and 1")),
    }
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
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            failure.exit_code()
        }
    }
}

/// Runs a command; `Ok(false)` means a run failed (already reported), `Err` means
/// the command itself could not be carried out.
fn execute(command: Command) -> CommandResult {
    match command {
        Command::Scenarios { drillable: false } => {
            for scenario in registry::all() {
                println!("{:<12} {}", scenario.name(), scenario.summary());
            }
            Ok(true)
        }
        Command::Scenarios { drillable: true } => {
            esper_scenarios::drills::sweep::sweepable().iter().for_each(|name| println!("{name}"));
            Ok(true)
        }
        Command::Run { scenario, seed, trace, timeline, plant } => {
            run(scenario, seed, Planted::bug(plant.plant), trace, timeline)
        }
        Command::CheckDeterminism { scenario, seeds } => Ok(check(scenario, &seeds)),
        Command::Sweep {
            scenario,
            seeds,
            jobs,
            shard,
            swarm,
            twice,
            failures_dir,
            max_failures,
            summary_md,
            plant,
        } => {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            let cap = esper_scenarios::drills::sweep::max_jobs(cores);
            let jobs = match jobs {
                Some(asked) if asked > cap => {
                    eprintln!("sweep: --jobs {asked} capped at {cap} (four per core, {cores} cores)");
                    cap
                }
                Some(asked) => asked,
                None => cores,
            };
            let planted = Planted::bug(plant.plant);
            let hang_after = hang::HANG_AFTER;
            let config =
                SweepConfig { seeds, jobs, shard, swarm, twice, failures_dir, max_failures, planted, hang_after };
            drill_cmd::sweep_command(scenario, &config, summary_md.as_deref())
        }
        Command::Replay { file, timeline } => drill_cmd::replay_command(&file, timeline.as_deref()),
        Command::Shrink { file, output, max_runs } => drill_cmd::shrink_command(&file, output, max_runs),
        Command::Harness(args) => harness(args),
        Command::Gate { baseline, run_dir, tolerance, scenarios } => {
            let scope = match scenarios {
                None => Scope::Everything,
                Some(names) => Scope::Only(names.iter().map(|s| s.slug().to_owned()).collect()),
            };
            let report = rc1::gate::gate(&baseline, &run_dir, tolerance, &scope)?;
            println!("{report}");
            Ok(report.passed())
        }
        Command::KasminaPrefetch {
            profile,
            seed,
            requests,
            concurrency,
            ready_latency,
            jitter,
            request_timeout,
            redis_url,
            dev_key,
        } => {
            let config = BurstConfig {
                seed,
                requests,
                concurrency,
                ready_latency_ms: duration_arg::millis(ready_latency),
                jitter_ms: duration_arg::millis(jitter),
                timeout_ms: duration_arg::millis(request_timeout),
            };
            kasmina_prefetch(&profile, &config, redis_url, dev_key)
        }
        Command::WalSoak { iterations, truncate_every, strict, workdir } => {
            wal_soak(SoakConfig { iterations, truncate_every, strict }, workdir)
        }
        Command::TamiyoWal { action } => tamiyo_wal(action),
        Command::AlertChecks { seed } => {
            let report = esper_scenarios::sim::nissa::alert_checks_run(seed);
            report.checks.iter().for_each(|check| println!("{check}"));
            if !report.passed() {
                eprintln!("{}", report.run);
            }
            Ok(report.passed())
        }
        Command::Up(args) => up(args),
        Command::Nissa(args) => nissa(args),
        Command::FieldReports { action: FieldReportsAction::Dump { dir, follow } } => dump_field_reports(&dir, follow),
        Command::Redis(args) => {
            let address = std::net::SocketAddr::new(args.bind, args.port);
            let listening = |at| eprintln!("esper redis: simulated Redis 7.0 listening on {at}");
            esper_scenarios::real::embedded_redis::serve_blocking(address, args.limits(), listening)
                .with_context(|| format!("serving Redis on {address}"))
                .runtime()?;
            Ok(true)
        }
    }
}

fn up(args: UpArgs) -> CommandResult {
    logging::install(&args.log)?;
    let config = esper_scenarios::real::up::UpConfig {
        redis: RedisTarget::parse(&args.redis_url).map_err(anyhow::Error::msg).input()?,
        key: args.dev_key.resolve()?,
        device: args.device,
        epochs: args.epochs,
        nissa_addr: args.nissa_addr,
        workdir: args.workdir,
        seed: args.seed,
        linger: args.linger,
        fsync_delay: args.fault_fsync_delay,
        step_delay: args.fault_step_delay,
    };
    let outcome = esper_scenarios::real::up::run(&config, announce)?;
    Ok(outcome.succeeded())
}

/// Prints one progress line of a long-running command and flushes it, so a caller
/// can wait for it. A closed stdout (the caller went away) must not stop the run.
fn announce(line: String) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

fn nissa(args: NissaArgs) -> CommandResult {
    logging::install(&args.log)?;
    let config = esper_scenarios::real::up::NissaAloneConfig {
        redis: RedisTarget::parse(&args.redis_url).map_err(anyhow::Error::msg).input()?,
        addr: args.addr,
        seed: args.seed,
        key: args.dev_key.resolve()?,
    };
    esper_scenarios::real::up::run_nissa(&config, announce)?;
    Ok(true)
}

fn dump_field_reports(dir: &std::path::Path, follow: bool) -> CommandResult {
    use std::io::Write as _;
    let config = tamiyo_wal::config_from_env(dir).input()?;
    let mut stdout = std::io::stdout().lock();
    let mut closed = false;
    let end = tamiyo_wal::dump_reports(&config, follow, |line| match line {
        Ok(json) if !closed => closed = writeln!(stdout, "{json}").and_then(|()| stdout.flush()).is_err(),
        Ok(_) => {}
        Err(error) => eprintln!("esper field-reports: {error}"),
    })
    .runtime()?;
    if let Some(damage) = end.damage {
        eprintln!(
            "esper field-reports: {} is damaged at offset {}: {} ({} bytes past the last valid record); the {} reports before it were printed",
            config.log_path().display(),
            damage.offset,
            damage.reason,
            damage.dropped_bytes,
            end.printed
        );
    }
    Ok(end.damage.is_none() && end.undecodable == 0)
}

fn kasmina_prefetch(
    profile: &str,
    config: &BurstConfig,
    redis_url: Option<String>,
    dev_key: DevKeyArg,
) -> CommandResult {
    let mut passed = true;
    if profile != "real" {
        let report = kasmina_prefetch::run_sim(config)?;
        println!("{report}");
        if let Err(error) = report.check_acceptance() {
            eprintln!("{error}");
            passed = false;
        }
    }
    if profile != "sim" {
        let target = redis_url.as_deref().map_or(Ok(RedisTarget::Embedded), RedisTarget::parse);
        let target = target.map_err(anyhow::Error::msg).input()?;
        let key = dev_key.resolve()?;
        println!("{}", kasmina_prefetch::run_real(config, &target, &key.key)?);
    }
    Ok(passed)
}

fn wal_soak(config: SoakConfig, workdir: Option<PathBuf>) -> CommandResult {
    let temporary = workdir.is_none();
    let workdir =
        workdir.unwrap_or_else(|| std::env::temp_dir().join(format!("esper-wal-soak-{}", std::process::id())));
    let mode = if config.strict { "strict" } else { "non-strict" };
    match tamiyo_wal::soak(&workdir, config, wall_clock_ms()) {
        Ok(report) => {
            println!("wal-soak passed ({mode}, {}): {report}", workdir.display());
            if temporary {
                std::fs::remove_dir_all(&workdir)
                    .with_context(|| format!("removing {}", workdir.display()))
                    .runtime()?;
            }
            Ok(true)
        }
        Err(SoakError::Usage(message)) => Err(usage(message)),
        Err(error) => {
            eprintln!("wal-soak failed ({mode}, {}): {error}", workdir.display());
            if let SoakError::Persistence { report, .. } = &error {
                eprintln!("before the failure: {report}");
            }
            Ok(false)
        }
    }
}

fn tamiyo_wal(action: TamiyoWalAction) -> CommandResult {
    let (verb, dir, other) = match &action {
        TamiyoWalAction::Backup { dest, dir } => ("backup", dir, dest),
        TamiyoWalAction::Restore { from, dir } => ("restore", dir, from),
    };
    // The store's settings come from the environment: a bad one is bad input.
    let config = tamiyo_wal::config_from_env(dir).input()?;
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

fn run(
    scenario: &dyn SimScenario,
    seed: u64,
    planted: Planted,
    trace: Option<PathBuf>,
    timeline: Option<PathBuf>,
) -> CommandResult {
    let mode = if trace.is_some() || timeline.is_some() { TraceMode::Full } else { TraceMode::Hash };
    let report = runs::run_watched(scenario, seed, planted, mode);
    if let Some(path) = trace {
        let mut text = report.lines.join("\n");
        text.push('\n');
        std::fs::write(&path, text).with_context(|| format!("writing trace to {}", path.display())).runtime()?;
    }
    if let Some(path) = timeline {
        esper_scenarios::timeline::write(&path, &report, report.replay_command())?;
        eprintln!("timeline: {}", path.display());
    }
    println!("{report}");
    drill_cmd::print_tally(&report.tally, "this run");
    Ok(report.passed())
}

fn check(scenario: &dyn SimScenario, seeds: &SeedRange) -> bool {
    let step = (seeds.len() / 10).max(1);
    let progress = |done: u128, total: u128| {
        if done % step == 0 || done == total {
            eprintln!("checked {done}/{total} seeds of {}", scenario.name());
        }
    };
    if let Err(failure) = runs::check_seeds(scenario, seeds, progress) {
        eprintln!("{failure}");
        return false;
    }
    println!("deterministic: scenario={} seeds={seeds} (each run twice, traces identical)", scenario.name());
    true
}

fn harness(args: HarnessArgs) -> CommandResult {
    let profile = args.profile;
    let redis = RedisTarget::parse(&args.redis_url).map_err(anyhow::Error::msg).input()?;
    if profile == Profile::Sim && redis != RedisTarget::Embedded {
        return Err(usage("--redis-url is for the real profile; the sim runs its own simulated Redis"));
    }
    let tamiyo_stalls = match args.tamiyo_timeout_ratio {
        Some(ratio) => TamiyoStalls::Ratio(ratio),
        None => TamiyoStalls::EveryNthEpoch(args.timeout_every),
    };
    let defaults = rc1::sim::sim_defaults();
    let training = TrainingParams {
        device: args.device,
        epochs: args.epochs,
        batch_size: usize::try_from(args.batch_size).input()?,
        step_timeout: args.step_timeout,
        rollback_deadline: args.deadline,
        checkpoint_read_latency: args.checkpoint_read_latency,
        tamiyo_stalls,
        step_cost: if profile == Profile::Sim { defaults.step_cost } else { Duration::ZERO },
    };
    let prefetch = BurstConfig {
        requests: usize::try_from(args.requests).input()?,
        concurrency: usize::try_from(args.concurrency).input()?,
        ready_latency_ms: duration_arg::millis(args.ready_latency),
        jitter_ms: duration_arg::millis(args.jitter),
        ..RC1_BURST
    };
    // The Leyline key comes from the environment: a missing or malformed one is bad input.
    let key = if profile == Profile::Real { Some(args.dev_key.resolve()?) } else { None };
    let config =
        HarnessConfig { profile, seed: args.seed, training, prefetch, redis, key, output_dir: args.output_dir };
    let report = args.markdown_report.unwrap_or_else(|| config.output_dir.join("report.md"));
    let outcome = rc1::run_harness(&config, &args.target.0, &report).runtime()?;
    if let Some(why) = &outcome.commit_unknown_because {
        eprintln!("commit unknown ({why}); run.json records \"unknown\"");
    }
    println!("{outcome}");
    Ok(outcome.passed())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness's burst flags spell RC1's burst as text (`40ms`, `0`); this
    /// keeps them equal to `RC1_BURST` if either changes.
    #[test]
    fn harness_burst_defaults_are_rc1s() {
        let cli = Cli::try_parse_from(["esper", "harness"]).expect("the defaults parse");
        let Command::Harness(args) = cli.command else { unreachable!("parsed as harness") };
        assert_eq!(duration_arg::millis(args.ready_latency), RC1_BURST.ready_latency_ms);
        assert_eq!(duration_arg::millis(args.jitter), RC1_BURST.jitter_ms);
    }
}
