//! The RC1 harness and gate as a user meets them: `esper harness` writes a run
//! directory with its manifest, `esper gate` judges exactly that run against the RC1
//! baselines or an earlier run — failing on anything the reference names that the
//! run lacks — and bad input exits 2 with a clear message.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use esper_scenarios::rc1::sim::{self, sim_defaults};
use esper_scenarios::rc1::training::TrainingWorkload;
use support::{RealRedis, esper_binary, workspace_file};

const FILES: [&str; 13] = [
    "run.json",
    "steady_train_metrics.json",
    "steady_train_telemetry.json",
    "rollback_deadline_metrics.json",
    "rollback_deadline_telemetry.json",
    "tamiyo_timeout_metrics.json",
    "tamiyo_timeout_telemetry.json",
    "kasmina_prefetch_burst_metrics.json",
    "kasmina_prefetch_burst_telemetry.json",
    "summary.csv",
    "env.json",
    "latency.svg",
    "report.md",
];

fn esper(arguments: &[&str]) -> Output {
    Command::new(esper_binary())
        .args(arguments)
        .env("ESPER_LEYLINE_SECRET", support::TEST_SECRET)
        .output()
        .expect("esper binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory for one test's run, under the system temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("esper-rc1-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn path(dir: &Path) -> &str {
    dir.to_str().expect("utf-8 temp path")
}

fn harness(dir: &Path, extra: &[&str]) -> Output {
    let output = harness_one("all", dir, extra);
    for file in FILES {
        assert!(dir.join(file).is_file(), "{file} missing from {}", dir.display());
    }
    output
}

/// `esper harness TARGET` into `dir`, which must succeed.
fn harness_one(target: &str, dir: &Path, extra: &[&str]) -> Output {
    let mut arguments = vec!["harness", target, "--output-dir", path(dir)];
    arguments.extend_from_slice(extra);
    let output = esper(&arguments);
    assert!(output.status.success(), "harness failed:\n{}\n{}", text(&output.stdout), text(&output.stderr));
    output
}

fn gate(against: &str, dir: &Path) -> Output {
    gate_with(against, dir, &[])
}

fn gate_with(against: &str, dir: &Path, extra: &[&str]) -> Output {
    let mut arguments = vec!["gate", "--baseline", against, path(dir)];
    arguments.extend_from_slice(extra);
    esper(&arguments)
}

/// The gate's table, after checking it exited with `code`.
fn gate_table(output: &Output, code: i32) -> String {
    let table = text(&output.stdout);
    assert_eq!(output.status.code(), Some(code), "{table}\n{}", text(&output.stderr));
    table
}

/// The gate's lines whose verdict is MISSING, as `scenario check`.
fn missing(table: &str) -> Vec<String> {
    table
        .lines()
        .filter(|line| line.trim_end().ends_with("MISSING"))
        .map(|line| line.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

/// Rewrites one metrics file of a run directory as `edit` says.
fn edit_metrics(dir: &Path, slug: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let file = dir.join(format!("{slug}_metrics.json"));
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("metrics file")).expect("metrics json");
    edit(&mut value);
    std::fs::write(&file, serde_json::to_string_pretty(&value).expect("json")).expect("rewrite metrics");
}

/// Removes `name` from the object at `section` (`counters`, `results`, `kpis`).
fn remove(value: &mut serde_json::Value, section: &str, name: &str) {
    let removed = value[section].as_object_mut().and_then(|object| object.remove(name));
    assert!(removed.is_some(), "{section}.{name} was in the file");
}

/// RC1's CPU baseline, found at run time so the tests also run from a nextest archive.
fn cpu_baseline() -> String {
    workspace_file("baselines/rc1/cpu.json").to_str().expect("utf-8 checkout path").to_owned()
}

#[test]
fn harness_all_writes_every_file_and_the_sim_counters_pass_the_cpu_baseline() {
    let dir = scratch("sim");
    let output = harness(&dir, &[]);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("| steady_train | sim | synthetic | tolaria.training.latency_ms | 3 |"), "{stdout}");
    assert!(stdout.contains("trace hash"), "{stdout}");
    assert!(text(&output.stderr).contains("[4/4] kasmina-prefetch: done"), "progress is reported");
    let csv = std::fs::read_to_string(dir.join("summary.csv")).expect("summary");
    assert_eq!(csv.lines().count(), 1 + 5, "header + 3 epoch KPIs + restore + prefetch latency:\n{csv}");
    assert!(
        stdout.contains("| kasmina_prefetch_burst | sim | synthetic | kasmina.prefetch.latency_ms | 32 |"),
        "{stdout}"
    );
    assert!(std::fs::read_to_string(dir.join("latency.svg")).expect("svg").contains("<svg"));

    let verdict = gate(&cpu_baseline(), &dir);
    let table = text(&verdict.stdout);
    assert!(verdict.status.success(), "{table}\n{}", text(&verdict.stderr));
    assert_counters_pass(&table);
    assert!(table.contains("not judged: modelled time"), "sim timings are reported as not judged:\n{table}");
    assert!(table.contains("PASS"), "{table}");
}

/// Every counter and result the CPU baseline names is judged ok in the gate's table.
/// (Wall-clock latencies are judged too, but a test on a shared, loaded machine is no
/// place to hold them to the runbooks' numbers; benchmarks measure them.)
fn assert_counters_pass(table: &str) {
    let mut judged = 0;
    for name in [
        "tolaria.rollback.deadline_exceeded_total",
        "tolaria.timeout.kasmina_total",
        "halted",
        "tolaria.timeout.tamiyo_total",
        "tamiyo_epochs_consulted",
    ] {
        for line in table.lines().filter(|l| l.split_whitespace().nth(1) == Some(name)) {
            assert!(line.trim_end().ends_with(" ok"), "{line}\n{table}");
            judged += 1;
        }
    }
    assert_eq!(judged, 6, "every counter rule judged (Kasmina timeouts in two scenarios):\n{table}");
}

/// The gate's verdict on a real-profile run. Every counter rule must pass and
/// nothing may be missing; wall-clock latencies on a shared, loaded test machine may
/// regress or alert, and then — only then — the gate must exit 1, with those latency
/// lines the only failing ones. (Benchmarks hold latencies to the runbooks' numbers.)
fn assert_real_gate(output: &Output) {
    let table = text(&output.stdout);
    assert!(missing(&table).is_empty(), "a real run reports everything the baseline names:\n{table}");
    let failing: Vec<&str> =
        table.lines().filter(|line| ["REGRESSED", "CRIT"].iter().any(|v| line.trim_end().ends_with(v))).collect();
    for line in &failing {
        assert!(line.contains("latency_ms"), "only a wall-clock latency may fail here: {line}\n{table}");
    }
    let code = if failing.is_empty() { 0 } else { 1 };
    assert_eq!(output.status.code(), Some(code), "{table}\n{}", text(&output.stderr));
    assert_counters_pass(&table);
}

#[test]
fn the_drills_measure_what_rc1_recorded() {
    let (rollback, _) = sim::run(TrainingWorkload::Rollback, sim_defaults(), 42).expect("rollback runs");
    let counter = |name: &str| rollback.counters[name];
    assert_eq!(counter("tolaria.timeout.kasmina_total"), 16.0, "Kasmina timed out on each of the 16 steps");
    assert_eq!(counter("tolaria.rollback.deadline_exceeded_total"), 1.0);
    assert_eq!(rollback.results["halted"], 1.0);
    let restore = &rollback.kpis["tolaria.rollback.restore_latency_ms"];
    assert_eq!(restore.max, 5.0, "the 12 ms checkpoint read is cut at the 5 ms deadline");

    let (timeout, _) = sim::run(TrainingWorkload::TamiyoTimeout, sim_defaults(), 42).expect("tamiyo-timeout runs");
    assert_eq!(timeout.counters["tolaria.timeout.tamiyo_total"], 1.0);
    assert_eq!(timeout.results["tamiyo_epochs_consulted"], 2.0, "epoch 3 ran conservative, Tamiyo skipped");
    assert_eq!(timeout.counters["tolaria.timeout.kasmina_total"], 0.0);
    let failures: Vec<_> = timeout.reports.iter().map(|r| r.failure.map(|f| f.reason())).collect();
    assert_eq!(failures, [None, Some("step_failure"), None], "the stall fails epoch 2 only");
}

#[test]
fn a_seed_fixes_the_run_and_another_seed_changes_it() {
    let run = |seed| sim::run(TrainingWorkload::SteadyTrain, sim_defaults(), seed).expect("steady-train runs");
    let ((first, first_report), (again, again_report)) = (run(42), run(42));
    assert_eq!(first_report.hash, again_report.hash);
    assert_eq!(first.results, again.results);
    let (other, other_report) = run(43);
    assert_ne!(first_report.hash, other_report.hash);
    assert_ne!(first.results["loss_final"], other.results["loss_final"], "another seed, another dataset");
}

#[test]
fn the_gate_fails_a_regressed_counter_and_a_run_judges_clean_against_its_twin() {
    let (dir, twin) = (scratch("regressed"), scratch("twin"));
    harness(&dir, &[]);
    harness(&twin, &[]);
    let trend = gate(path(&dir), &twin);
    assert!(trend.status.success(), "an identical sim run is no regression:\n{}", text(&trend.stdout));
    assert!(
        text(&trend.stdout)
            .contains(&format!("against run {} (sim, synthetic, seed 42, epochs 3, commit ", path(&dir)))
    );

    let file = dir.join("rollback_deadline_metrics.json");
    let original = std::fs::read_to_string(&file).expect("metrics");
    let edited = original.replace(
        "\"tolaria.rollback.deadline_exceeded_total\": 1.0",
        "\"tolaria.rollback.deadline_exceeded_total\": 0.0",
    );
    assert_ne!(original, edited, "the counter is in the file");
    std::fs::write(&file, edited).expect("edit");
    let verdict = gate(&cpu_baseline(), &dir);
    assert_eq!(verdict.status.code(), Some(1), "{}", text(&verdict.stdout));
    let table = text(&verdict.stdout);
    assert!(table.lines().any(|l| l.contains("deadline_exceeded_total") && l.contains("REGRESSED")), "{table}");
    assert!(table.contains("FAIL"));
}

#[test]
fn missing_or_garbled_inputs_exit_2_and_say_which_file() {
    let dir = scratch("bad-input");
    harness(&dir, &["--epochs", "1"]);
    let garbled = dir.join("garbled.json");
    std::fs::write(&garbled, "{ not json").expect("write");
    let wrong_schema = dir.join("wrong-schema.json");
    std::fs::write(&wrong_schema, r#"{"schema": "something/v9"}"#).expect("write");
    let empty = scratch("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let cases: [(&str, &Path, &str); 5] = [
        ("/nonexistent/baseline.json", &dir, "baseline /nonexistent/baseline.json"),
        (path(&garbled), &dir, "is not a valid baseline file"),
        (path(&wrong_schema), &dir, "has schema \"something/v9\""),
        (&cpu_baseline(), Path::new("/nonexistent/run"), "/nonexistent/run"),
        (&cpu_baseline(), &empty, "has no run.json (`esper harness --output-dir"),
    ];
    for (baseline, run, message) in cases {
        let output = gate(baseline, run);
        assert_eq!(output.status.code(), Some(2), "{baseline} {}: {output:?}", run.display());
        assert!(text(&output.stderr).contains(message), "{message:?} not in {}", text(&output.stderr));
    }
    std::fs::write(dir.join("steady_train_metrics.json"), "[1, 2").expect("garble a metrics file");
    let output = gate(&cpu_baseline(), &dir);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("steady_train_metrics.json is not a valid metrics file"));
    let listed = std::fs::read_to_string(dir.join("run.json")).expect("manifest");
    let outside = listed.replace("\"steady_train_metrics.json\"", "\"../steady_train_metrics.json\"");
    assert_ne!(listed, outside, "the manifest lists the file");
    std::fs::write(dir.join("run.json"), outside).expect("list a file outside the run");
    let output = gate(&cpu_baseline(), &dir);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("which is not a file name inside the run directory"));
    std::fs::write(dir.join("run.json"), "{").expect("garble the manifest");
    let output = gate(&cpu_baseline(), &dir);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("run.json is not a valid run manifest"), "{}", text(&output.stderr));
}

/// The manifest of the run in `dir`.
fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).expect("run.json")).expect("manifest json")
}

#[test]
fn the_manifest_names_the_run_its_commit_and_exactly_its_metrics_files() {
    let dir = scratch("manifest");
    harness_one("all", &dir, &["--seed", "7", "--epochs", "2"]);
    let run = manifest(&dir);
    assert_eq!(run["schema"], "esper.rc1.run/v1");
    assert_eq!(
        (&run["profile"], &run["device"], &run["seed"], &run["epochs"]),
        (&"sim".into(), &"synthetic".into(), &7.into(), &2.into())
    );
    let files: Vec<&str> =
        run["scenarios"].as_array().expect("scenarios").iter().map(|s| s["metrics"].as_str().expect("file")).collect();
    assert_eq!(
        files,
        [
            "steady_train_metrics.json",
            "rollback_deadline_metrics.json",
            "tamiyo_timeout_metrics.json",
            "kasmina_prefetch_burst_metrics.json"
        ]
    );
    let commit = run["commit"].as_str().expect("commit");
    // Where the tests run from a checkout, that is git's HEAD; from an archive without one, unknown.
    let head = Command::new("git").args(["rev-parse", "HEAD"]).output().ok().filter(|git| git.status.success());
    let expected = head.map_or_else(|| "unknown".to_owned(), |git| text(&git.stdout).trim().to_owned());
    assert_eq!(commit, expected, "{run}");

    // Outside a git checkout the commit is unknown, and the harness says why.
    let elsewhere = scratch("manifest-no-git");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let output = Command::new(esper_binary())
        .args(["harness", "rollback", "--output-dir", "run"])
        .current_dir(&elsewhere)
        .env("GIT_CEILING_DIRECTORIES", std::env::temp_dir())
        .output()
        .expect("esper runs");
    assert!(output.status.success(), "{output:?}");
    let run = manifest(&elsewhere.join("run"));
    assert_eq!(run["commit"], "unknown");
    assert!(run["commit_unknown_because"].as_str().is_some_and(|why| !why.is_empty()), "{run}");
    assert!(text(&output.stderr).contains("commit unknown ("), "{}", text(&output.stderr));
}

#[test]
fn a_run_missing_one_scenario_fails_the_gate_naming_it() {
    let dir = scratch("one-scenario");
    harness_one("rollback", &dir, &[]);
    let narrowed = gate_with(&cpu_baseline(), &dir, &["--scenarios", "rollback"]);
    assert!(gate_table(&narrowed, 0).contains("PASS"), "--scenarios rollback judges only the rollback");

    let one_short = gate_with(&cpu_baseline(), &dir, &["--scenarios", "rollback,tamiyo-timeout"]);
    assert_eq!(missing(&gate_table(&one_short, 1)), ["tamiyo_timeout (scenario)"]);
    let unnarrowed = gate_table(&gate(&cpu_baseline(), &dir), 1);
    assert_eq!(
        missing(&unnarrowed),
        ["kasmina_prefetch_burst (scenario)", "steady_train (scenario)", "tamiyo_timeout (scenario)"],
        "without --scenarios the gate judges every scenario the baseline names:\n{unnarrowed}"
    );
}

#[test]
fn a_stale_file_from_an_earlier_run_is_not_judged() {
    let dir = scratch("stale");
    harness_one("rollback", &dir, &[]);
    let earlier = std::fs::read_to_string(dir.join("rollback_deadline_metrics.json")).expect("rollback metrics");
    harness_one("tamiyo-timeout", &dir, &[]);
    assert!(!dir.join("rollback_deadline_metrics.json").exists(), "the harness removes its earlier run's files");
    assert!(!dir.join("rollback_deadline_telemetry.json").exists());

    // A stale file put back by hand (or by an older esper) is ignored: only run.json's list is read.
    let regressed = earlier.replace(
        "\"tolaria.rollback.deadline_exceeded_total\": 1.0",
        "\"tolaria.rollback.deadline_exceeded_total\": 0.0",
    );
    assert_ne!(earlier, regressed, "the counter is in the file");
    std::fs::write(dir.join("rollback_deadline_metrics.json"), regressed).expect("plant a stale file");
    std::fs::write(dir.join("steady_train_metrics.json"), "{ garbled").expect("plant a garbled file");
    let table = gate_table(&gate_with(&cpu_baseline(), &dir, &["--scenarios", "tamiyo-timeout"]), 0);
    assert!(!table.contains("rollback_deadline") && !table.contains("steady_train"), "{table}");
    let everything = gate_table(&gate(&cpu_baseline(), &dir), 1);
    assert!(missing(&everything).contains(&"rollback_deadline (scenario)".to_owned()), "{everything}");
    assert!(!everything.contains("REGRESSED"), "the stale regressed file was not judged:\n{everything}");
}

#[test]
fn a_baseline_kpi_or_counter_missing_from_the_run_fails_as_missing() {
    let dir = scratch("lost-kpi");
    harness_one("rollback", &dir, &[]);
    let rollback = ["--scenarios", "rollback"];
    gate_table(&gate_with(&cpu_baseline(), &dir, &rollback), 0);
    edit_metrics(&dir, "rollback_deadline", |metrics| remove(metrics, "kpis", "tolaria.rollback.restore_latency_ms"));
    assert_eq!(
        missing(&gate_table(&gate_with(&cpu_baseline(), &dir, &rollback), 1)),
        [
            "rollback_deadline tolaria.rollback.restore_latency_ms",
            "rollback_deadline tolaria.rollback.restore_latency_ms"
        ],
        "the KPI's mean and its alert threshold"
    );

    let dir = scratch("lost-counter");
    harness_one("rollback", &dir, &[]);
    edit_metrics(&dir, "rollback_deadline", |metrics| remove(metrics, "counters", "tolaria.timeout.kasmina_total"));
    let table = gate_table(&gate_with(&cpu_baseline(), &dir, &rollback), 1);
    assert_eq!(missing(&table), ["rollback_deadline tolaria.timeout.kasmina_total"]);
    assert!(table.trim_end().ends_with("FAIL"), "{table}");
}

#[test]
fn trend_with_a_lost_counter_fails() {
    let (earlier, later) = (scratch("trend-before"), scratch("trend-after"));
    harness_one("rollback", &earlier, &[]);
    harness_one("rollback", &later, &[]);
    gate_table(&gate(path(&earlier), &later), 0);
    edit_metrics(&later, "rollback_deadline", |metrics| remove(metrics, "results", "halted"));
    let table = gate_table(&gate(path(&earlier), &later), 1);
    assert_eq!(missing(&table), ["rollback_deadline halted"], "{table}");
    let lost_scenario = scratch("trend-lost-scenario");
    harness_one("tamiyo-timeout", &lost_scenario, &[]);
    assert_eq!(missing(&gate_table(&gate(path(&earlier), &lost_scenario), 1)), ["rollback_deadline (scenario)"]);
}

#[test]
fn bad_gate_arguments_exit_2() {
    let dir = scratch("bad-gate-arguments");
    harness_one("rollback", &dir, &[]);
    for (extra, message) in [
        (&["--tolerance", "NaN"][..], "tolerance NaN is outside"),
        (&["--tolerance", "inf"], "tolerance inf is outside"),
        (&["--tolerance=-1"], "tolerance -1 is outside"),
        (&["--tolerance", "11"], "tolerance 11 is outside"),
        (&["--tolerance", "lots"], "is not a number"),
        (&["--scenarios", "rollback,sprint"], "unknown RC1 scenario \"sprint\""),
    ] {
        let output = gate_with(&cpu_baseline(), &dir, extra);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {output:?}");
        assert!(text(&output.stderr).contains(message), "{extra:?}: {message:?} not in {}", text(&output.stderr));
    }
    let trend = gate_with(path(&dir), &dir, &["--scenarios", "steady-train"]);
    assert_eq!(trend.status.code(), Some(2), "{trend:?}");
    assert!(text(&trend.stderr).contains("--scenarios names steady_train, which run"), "{}", text(&trend.stderr));
}

#[test]
fn bad_harness_arguments_exit_2() {
    for arguments in [
        &["harness", "sprint"][..],
        &["harness", "all", "--profile", "cloud"],
        &["harness", "all", "--device", "tpu"],
        &["harness", "all", "--epochs", "0"],
        &["harness", "all", "--tamiyo-timeout-ratio", "1.5"],
        &["harness", "all", "--redis-url", "redis://127.0.0.1:6379"],
        &["harness", "all", "--profile", "real", "--redis-url", "http://x"],
    ] {
        let output = esper(arguments);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {output:?}");
        assert!(!output.stderr.is_empty(), "{arguments:?} says why");
    }
}

#[test]
fn the_real_profile_runs_every_scenario_over_embedded_redis_and_its_counters_pass() {
    let dir = scratch("real-embedded");
    let output = harness(&dir, &["--profile", "real"]);
    assert!(!text(&output.stdout).contains("trace hash"), "real runs have no trace hash");
    assert_real_gate(&gate(&cpu_baseline(), &dir));
    let env = std::fs::read_to_string(dir.join("env.json")).expect("env");
    assert!(env.contains("\"profile\": \"real\"") && env.contains("embedded"), "{env}");
}

#[test]
fn the_real_profile_runs_against_a_real_redis_server() {
    let Some(redis) = RealRedis::start("rc1 real profile") else { return };
    let dir = scratch("real-redis");
    let url = format!("redis://127.0.0.1:{}", redis.port);
    harness(&dir, &["--profile", "real", "--redis-url", &url]);
    assert_real_gate(&gate(&cpu_baseline(), &dir));
    assert!(std::fs::read_to_string(dir.join("env.json")).expect("env").contains(&url));
}

/// The real profile on libtorch CPU (`ci/test` runs this file again with `--features tch`).
#[cfg(feature = "tch")]
#[test]
fn the_real_profile_runs_every_scenario_on_libtorch_cpu() {
    let dir = scratch("real-tch-cpu");
    let output = harness(&dir, &["--profile", "real", "--device", "cpu"]);
    assert!(text(&output.stdout).contains("| steady_train | real | cpu |"), "{}", text(&output.stdout));
    assert_real_gate(&gate(&cpu_baseline(), &dir));
}

/// The real profile on CUDA in the RC1 GPU workload's shape (batch 16, a 128-request
/// burst 16 at a time, 20 ms kernels); its counters pass RC1's GPU baseline. The
/// latencies are judged by `ci/gpu-profile`'s gate run, not here.
#[cfg(feature = "tch")]
#[test]
fn the_real_profile_on_cuda_passes_the_gpu_baseline_counters() {
    if !support::cuda_or_skip("the_real_profile_on_cuda_passes_the_gpu_baseline_counters") {
        return;
    }
    let dir = scratch("real-tch-cuda");
    let gpu_shape = ["--batch-size", "16", "--requests", "128", "--concurrency", "16", "--ready-latency", "20ms"];
    let output = harness(&dir, &[&["--profile", "real", "--device", "cuda"][..], &gpu_shape].concat());
    assert!(text(&output.stdout).contains("| steady_train | real | cuda:0 |"), "{}", text(&output.stdout));
    let baseline = workspace_file("baselines/rc1/gpu.json");
    assert_real_gate(&gate(baseline.to_str().expect("utf-8 checkout path"), &dir));
    let env = std::fs::read_to_string(dir.join("env.json")).expect("env");
    assert!(env.contains("\"cuda_available\": true"), "{env}");
}
