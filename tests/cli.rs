//! The `esper` binary as a user meets it: hashes, exit codes, messages.

mod support;

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Command, Output};

use support::{esper_binary, free_port, workspace_file};

fn esper(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_esper"))
        .args(arguments)
        .env("ESPER_LEYLINE_SECRET", support::TEST_SECRET)
        .output()
        .expect("esper binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn hash_of(output: &Output) -> String {
    let text = stdout(output);
    text.split_whitespace()
        .find_map(|word| word.strip_prefix("hash="))
        .unwrap_or_else(|| panic!("no hash in {text:?}"))
        .to_owned()
}

#[test]
fn run_prints_the_same_hash_twice_and_another_for_another_seed() {
    let first = esper(&["run", "--scenario", "heartbeat", "--seed", "7"]);
    let second = esper(&["run", "--scenario", "heartbeat", "--seed", "7"]);
    let other = esper(&["run", "--scenario", "heartbeat", "--seed", "8"]);
    assert!(first.status.success(), "{first:?}");
    assert_eq!(hash_of(&first), hash_of(&second));
    assert_ne!(hash_of(&first), hash_of(&other));
    assert!(stdout(&first).starts_with("seed=7 "), "the seed comes first: {}", stdout(&first));
}

#[test]
fn run_writes_the_trace_whose_hash_it_prints() {
    let directory = std::env::temp_dir().join(format!("esper-cli-trace-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("temp dir");
    let path = directory.join("trace.txt");
    let output = esper(&["run", "--scenario", "heartbeat", "--seed", "3", "--trace", path.to_str().expect("utf-8")]);
    assert!(output.status.success(), "{output:?}");
    let trace = std::fs::read_to_string(&path).expect("trace written");
    let events = stdout(&output).split_whitespace().find_map(|word| word.strip_prefix("events=")).map(str::to_owned);
    assert_eq!(events, Some(trace.lines().count().to_string()));
    std::fs::remove_dir_all(&directory).ok();
}

#[test]
fn bad_arguments_exit_2_with_a_clear_message() {
    let cases: [(&[&str], &str); 7] = [
        (&["run", "--scenario", "nope", "--seed", "1"], "unknown scenario \"nope\""),
        // Time flags take the one duration grammar: a bare number has no unit.
        (
            &["harness", "--step-timeout", "50"],
            "invalid value '50' for '--step-timeout <DURATION>': expected a whole number with a unit",
        ),
        (&["up", "--linger", "2h"], "invalid value '2h' for '--linger <DURATION>': expected a duration from 0 to 1h"),
        (&["run", "--scenario", "heartbeat", "--seed", "-4"], "--seed"),
        (&["check-determinism", "--scenario", "heartbeat", "--seeds", "9..3"], "is empty"),
        (&["check-determinism", "--scenario", "heartbeat", "--seeds", "x"], "is not a seed"),
        (&["frobnicate"], "unrecognized subcommand"),
    ];
    for (arguments, expected) in cases {
        let output = esper(arguments);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {stderr}");
        assert!(stderr.contains(expected), "{arguments:?}: expected {expected:?} in {stderr}");
    }
}

#[test]
fn check_determinism_reports_success_for_a_seed_range() {
    let output = esper(&["check-determinism", "--scenario", "heartbeat", "--seeds", "0..5"]);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout(&output).contains("deterministic: scenario=heartbeat seeds=0..=4"));
}

#[test]
fn every_subcommand_has_help() {
    for subcommand in [
        "scenarios",
        "run",
        "check-determinism",
        "sweep",
        "replay",
        "shrink",
        "wal-soak",
        "tamiyo-wal",
        "alert-checks",
        "up",
        "nissa",
        "field-reports",
        "redis",
        "harness",
        "gate",
        "kasmina-prefetch",
    ] {
        let output = esper(&[subcommand, "--help"]);
        assert!(output.status.success(), "{subcommand}: {output:?}");
        assert!(stdout(&output).contains("Usage: esper"), "{subcommand}");
    }
}

/// The seeds a `--summary-md` file says ran (its "Seeds run" block).
fn seeds_in_summary(markdown: &str) -> Vec<u64> {
    let block = markdown
        .split_once("</summary>")
        .and_then(|(_, rest)| rest.split_once("</details>"))
        .unwrap_or_else(|| panic!("no seeds block in {markdown}"))
        .0;
    block
        .split_whitespace()
        .map(|seed| seed.parse().unwrap_or_else(|_| panic!("seed {seed:?} in {markdown}")))
        .collect()
}

/// What CI's sweep matrix relies on: N runners given `--shard k/N` (k = 1..=N) over
/// the same range sweep every seed of it exactly once, for N = 1..=16, and each
/// runner's `--summary-md` lists the seeds it swept.
#[test]
fn shards_k_of_n_sweep_every_seed_once_and_their_summaries_list_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let range: Vec<u64> = (3..=18).collect();
    for count in 1..=16_u64 {
        let mut swept = Vec::new();
        for index in 1..=count {
            let summary = dir.path().join(format!("{index}-of-{count}.md"));
            let output = esper(&[
                "sweep",
                "--scenario",
                "control-loop",
                "--seeds",
                "3..=18",
                "--shard",
                &format!("{index}/{count}"),
                "--jobs",
                "1",
                "--failures-dir",
                utf8(&dir.path().join("failures")),
                "--summary-md",
                utf8(&summary),
            ]);
            assert!(output.status.success(), "shard {index}/{count}: {output:?}");
            let markdown = std::fs::read_to_string(&summary).expect("summary written");
            assert!(markdown.contains(&format!("shard {index}/{count}")), "{markdown}");
            swept.extend(seeds_in_summary(&markdown));
        }
        swept.sort_unstable();
        assert_eq!(swept, range, "the {count} shards of 3..=18 swept these seeds");
    }
}

#[test]
fn scenarios_drillable_names_exactly_the_scenarios_sweep_accepts() {
    let listed = stdout(&esper(&["scenarios", "--drillable"]));
    let listed: Vec<&str> = listed.lines().collect();
    assert!(listed.contains(&"control-loop") && listed.contains(&"oona-ledger"), "{listed:?}");
    let all = stdout(&esper(&["scenarios"]));
    for name in all.lines().filter_map(|line| line.split_whitespace().next()) {
        let swept =
            esper(&["sweep", "--scenario", name, "--seeds", "0", "--jobs", "1", "--failures-dir", "/nonexistent"]);
        let not_sweepable = String::from_utf8_lossy(&swept.stderr).contains("has no fault space");
        assert_eq!(listed.contains(&name), !not_sweepable, "{name}: {swept:?}");
    }
}

/// Exit codes, per subcommand: 0 ok; 1 a run failed, diverged or was judged failing,
/// or could not finish (an unreachable server, an I/O error mid-run); 2 bad usage or
/// unreadable input. `{name}` in a case is a fixture's path (see [`Fixtures`]).
/// Subcommands missing a code cannot produce it on a correct build: `sweep`,
/// `check-determinism` and `alert-checks` fail only on a bug (the planted-bug tests
/// show those), `scenarios` cannot fail, and `redis` serves until it is stopped.
const EXIT_CODES: &[(&str, i32)] = &[
    ("scenarios", 0),
    ("scenarios extra", 2),
    ("scenarios --drillable", 0),
    ("run --scenario heartbeat --seed 1", 0),
    ("run --scenario heartbeat --seed 1 --trace {tmp}/no/such/dir/trace.txt", 1),
    ("run --scenario nope --seed 1", 2),
    ("check-determinism --scenario heartbeat --seeds 0..2", 0),
    ("check-determinism --scenario heartbeat --seeds 2..1", 2),
    ("sweep --scenario control-loop --seeds 0..2 --jobs 1 --failures-dir {tmp}/failures", 0),
    ("sweep --scenario heartbeat --seeds 0..2", 2),
    ("sweep --scenario control-loop --seeds 0..1 --shard 2/4", 2),
    ("sweep --scenario control-loop --seeds 0..1 --jobs 1 --failures-dir {tmp}/f --summary-md {tmp}/no/dir/s.md", 1),
    ("replay {regression}", 0),
    ("replay {liveness}", 1),
    ("replay {tmp}/no-such-failure.json", 2),
    ("replay {garbled}", 2),
    ("shrink {liveness} --output {tmp}/liveness.min.json", 0),
    ("shrink {regression} --output {tmp}/regression.min.json", 1),
    ("shrink {garbled}", 2),
    ("wal-soak --iterations 5 --truncate-every 2 --workdir {tmp}/soak", 0),
    ("wal-soak --iterations 5 --truncate-every 2 --strict --workdir {tmp}/soak-strict", 1),
    ("wal-soak --iterations 0", 2),
    ("tamiyo-wal backup --dir {store} --dest {tmp}/backup", 0),
    ("tamiyo-wal backup --dir {tmp}/no-store --dest {tmp}/backup-none", 1),
    ("tamiyo-wal backup --dir {store} --dest {tmp}/backup-bad-env TAMIYO_WAL_STRICT_VALIDATION=banana", 2),
    ("alert-checks --seed 42", 0),
    ("alert-checks --seed x", 2),
    ("fault-drills --seed 7", 0),
    ("up --epochs 1 --nissa-addr 127.0.0.1:0 --workdir {tmp}/up", 0),
    ("up --redis-url http://x", 2),
    ("up --log-level info,esper=notalevel", 2),
    ("up --log-format xml", 2),
    ("nissa --redis-url http://x", 2),
    ("nissa", 2),
    ("field-reports dump {store}", 0),
    ("field-reports dump {tmp}/no-store", 1),
    ("redis --port {busy_port}", 1),
    ("redis --port x", 2),
    ("harness rollback --output-dir {tmp}/harness", 0),
    ("harness rollback --output-dir {garbled}/run", 1),
    ("harness steady-train --profile real --redis-url redis://127.0.0.1:{closed_port} --output-dir {tmp}/h", 1),
    ("harness sprint", 2),
    ("gate --baseline {baseline} {run} --scenarios rollback", 0),
    ("gate --baseline {baseline} {run}", 1),
    ("gate --baseline {baseline} {run} --tolerance NaN", 2),
    ("gate --baseline {baseline} {tmp}", 2),
    ("kasmina-prefetch --profile sim --requests 8 --jitter 0", 0),
    ("kasmina-prefetch --profile sim --requests 8 --jitter 3", 2),
    ("harness rollback --step-timeout 50 --output-dir {tmp}/bare-number", 2),
    ("harness rollback --deadline 2m --output-dir {tmp}/over-range", 2),
    ("kasmina-prefetch --profile sim --requests 8", 1),
    ("kasmina-prefetch --profile real --requests 4 --redis-url redis://127.0.0.1:{closed_port}", 1),
    ("kasmina-prefetch --profile sim --requests 0", 2),
];

/// What the cases read: a scratch directory with a passing and a failing drill
/// record, a garbled file, a Tamiyo store, a harness run, a busy and a closed port.
struct Fixtures {
    dir: tempfile::TempDir,
    /// Keeps `busy_port` taken while the cases run.
    busy: TcpListener,
    closed_port: u16,
}

impl Fixtures {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let regression = workspace_file("tests/drills/regressions/control-loop-eio-on-first-fsync.json");
        let mut record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(regression).expect("regression")).expect("json");
        // A link cut and never repaired: the loop cannot make progress, whatever the commit.
        record["schedule"] = serde_json::json!({"faults": [
            {"at_ms": 2, "fault": {"kind": "partition", "a": "tolaria", "b": "tamiyo"}}
        ]});
        record["violation"] =
            serde_json::json!({"invariant": "liveness", "detail": "no epoch succeeded after the cut"});
        std::fs::write(dir.path().join("liveness.json"), record.to_string()).expect("write record");
        std::fs::write(dir.path().join("garbled.json"), "{ not json").expect("write garbled");
        let fixtures = Self {
            dir,
            busy: TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind a busy port"),
            closed_port: free_port(),
        };
        for setup in
            ["wal-soak --iterations 5 --truncate-every 2 --workdir {tmp}/store", "harness rollback --output-dir {run}"]
        {
            let output = esper_line(&fixtures.expand(setup));
            assert!(output.status.success(), "{setup}: {output:?}");
        }
        fixtures
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().expect("utf-8 temp path").to_owned()
    }

    /// A case's command line with its fixture names replaced.
    fn expand(&self, line: &str) -> String {
        let regression = workspace_file("tests/drills/regressions/control-loop-eio-on-first-fsync.json");
        let baseline = workspace_file("baselines/rc1/cpu.json");
        let busy_port = self.busy.local_addr().expect("busy address").port();
        line.replace("{regression}", utf8(&regression))
            .replace("{baseline}", utf8(&baseline))
            .replace("{liveness}", &self.path("liveness.json"))
            .replace("{garbled}", &self.path("garbled.json"))
            .replace("{store}", &self.path("store/var/tamiyo"))
            .replace("{run}", &self.path("run"))
            .replace("{busy_port}", &busy_port.to_string())
            .replace("{closed_port}", &self.closed_port.to_string())
            .replace("{tmp}", utf8(self.dir.path()))
    }
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf-8 checkout path")
}

/// Runs a whitespace-separated command line; `NAME=value` words set the environment.
fn esper_line(line: &str) -> Output {
    let (env, arguments): (Vec<&str>, Vec<&str>) = line.split_whitespace().partition(|word| {
        word.split_once('=').is_some_and(|(name, _)| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
    });
    let mut command = Command::new(esper_binary());
    command.args(arguments).env("ESPER_LEYLINE_SECRET", support::TEST_SECRET);
    for pair in env {
        let (name, value) = pair.split_once('=').expect("NAME=value");
        command.env(name, value);
    }
    command.output().expect("esper binary runs")
}

#[test]
fn every_subcommand_exits_0_when_ok_1_when_a_run_fails_and_2_on_bad_input() {
    let fixtures = Fixtures::new();
    let mut wrong = Vec::new();
    for (line, expected) in EXIT_CODES {
        let output = esper_line(&fixtures.expand(line));
        if output.status.code() != Some(*expected) {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: String = stderr.chars().rev().take(400).collect::<Vec<_>>().into_iter().rev().collect();
            wrong.push(format!("{line}: expected {expected}, got {:?}\n  {tail}", output.status.code()));
        }
    }
    assert!(wrong.is_empty(), "{} of {} cases exited wrongly:\n{}", wrong.len(), EXIT_CODES.len(), wrong.join("\n"));
}

/// What a real-profile command printed and how it ended, with `secret` (or none)
/// as `ESPER_LEYLINE_SECRET`.
fn esper_with_secret(arguments: &[&str], secret: Option<&str>) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_esper"));
    command.args(arguments).env_remove("ESPER_LEYLINE_SECRET");
    if let Some(secret) = secret {
        command.env("ESPER_LEYLINE_SECRET", secret);
    }
    let output = command.output().expect("esper binary runs");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// The real profile has no built-in key: without `ESPER_LEYLINE_SECRET` every
/// real-profile command exits 2 saying how to fix it, a short secret is refused
/// the same way, and `--insecure-dev-key` runs with a warning.
#[test]
fn the_real_profile_refuses_to_start_without_a_secret_of_32_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let workdir = dir.path().join("up");
    let up = ["up", "--epochs", "1", "--nissa-addr", "127.0.0.1:0", "--workdir", workdir.to_str().expect("utf-8")];
    let output_dir = dir.path().join("harness");
    let harness = ["harness", "rollback", "--profile", "real", "--output-dir", output_dir.to_str().expect("utf-8")];
    let prefetch = ["kasmina-prefetch", "--profile", "real", "--requests", "4"];
    for arguments in [&up[..], &harness, &prefetch] {
        let (code, stderr) = esper_with_secret(arguments, None);
        assert_eq!(code, Some(2), "{arguments:?}: {stderr}");
        for fix in
            ["ESPER_LEYLINE_SECRET is not set", "at least 32 bytes", "openssl rand -hex 32", "--insecure-dev-key"]
        {
            assert!(stderr.contains(fix), "{arguments:?}: {fix:?} missing from {stderr}");
        }
        let (code, stderr) = esper_with_secret(arguments, Some("hunter2"));
        assert_eq!(code, Some(2), "{arguments:?}: {stderr}");
        assert!(stderr.contains("is 7 bytes; it must be at least 32"), "{arguments:?}: {stderr}");
    }
    assert!(!workdir.exists() && !output_dir.exists(), "nothing ran without a key");
    let (code, stderr) = esper_with_secret(&[&prefetch[..], &["--insecure-dev-key"]].concat(), None);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("warning: --insecure-dev-key"), "the dev key is announced: {stderr}");
}

/// `esper redis` listens on loopback unless told otherwise, and says where.
#[test]
fn esper_redis_listens_on_loopback_by_default() {
    use std::io::{BufRead as _, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_esper"))
        .args(["redis", "--port", "0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("esper redis starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut line = String::new();
    let read = BufReader::new(stderr).read_line(&mut line);
    let _killed = child.kill();
    let _reaped = child.wait();
    read.expect("a line on stderr");
    let address = line.trim().rsplit(' ').next().unwrap_or_default();
    let address: std::net::SocketAddr = address.parse().unwrap_or_else(|_| panic!("no address in {line:?}"));
    assert_eq!(address.ip(), std::net::IpAddr::from(Ipv4Addr::LOCALHOST), "{line}");
    assert_ne!(address.port(), 0, "the port the system chose is reported: {line}");
}
