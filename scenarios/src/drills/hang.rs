//! Hung seeds: a watchdog for a loop that never awaits.
//!
//! Sim time stands still while a host's code runs, so a loop that never reaches
//! an await never hands the world its thread back. When the loop logs, the trace
//! stops it (`esper_sim::trace::EVENTS_PER_INSTANT_LIMIT`: a `liveness`
//! violation with a failure file like any other); when it logs nothing, nothing
//! inside the run can, and before this a sweep or a test hung until CI's own
//! timeout killed it without a word about the seed. So each seed's run is
//! watched from a thread of its own ([`watch`]): one still running after
//! [`HANG_AFTER`] of wall time is printed with the command that reruns it, and
//! the process ends with [`HUNG_EXIT`], since the spinning thread can be stopped
//! no other way. `esper sweep`, `esper run` and `esper check-determinism` watch
//! every seed they run, and so does the determinism test of every scenario.
//!
//! The verdict of a run that finishes is its trace's alone; the watchdog only
//! names a hang that would otherwise be silent. Wall time lives here, in the
//! runner, never in `esper-core` or `esper-sim`.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use esper_core::planted::Planted;
use esper_sim::plant_flag;

use super::failure::cargo_run_for;

/// The exit status of a process that found a hung seed (1 is a failing seed, 2
/// a usage or input error).
pub const HUNG_EXIT: i32 = 3;

/// Wall time a seed may run before it is called hung. The slowest run of a
/// registered scenario, `morphogenesis`, takes 0.14 s (`esper run`, seed 0,
/// dev build, 2026-12-05); a minute leaves room for two cores shared with a
/// whole test suite, and is half of `ci/mutants`' per-mutant test timeout, so a
/// mutant that spins silently is named by this, not timed out.
pub const HANG_AFTER: Duration = Duration::from_secs(60);

/// A run being watched; dropping it ends the watch.
#[derive(Debug)]
pub struct Watch {
    _ended: mpsc::Sender<()>,
}

/// Watches the run that lasts as long as the returned [`Watch`]: if it has not
/// ended after `limit`, prints that `what` (e.g. `sweep: oona-ledger seed 7`)
/// hung, with `rerun`, the command that runs exactly it again, and ends the
/// process with [`HUNG_EXIT`]. Without a thread to spare, the run goes
/// unwatched. The wall clock is only the channel's timeout: no instant is read.
pub fn watch(limit: Duration, what: String, rerun: String) -> Watch {
    let (ended, wait) = mpsc::channel::<()>();
    let watcher = move || {
        if let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
            eprintln!("{}", hung(&what, limit, &rerun));
            std::process::exit(HUNG_EXIT);
        }
    };
    // Unwatched rather than failed: the watchdog only ever names a hang.
    let _unwatched = std::thread::Builder::new().name("esper-hang-watch".to_owned()).spawn(watcher);
    Watch { _ended: ended }
}

/// What is printed for a hung run: what, how long, why, and the rerun command.
fn hung(what: &str, ran: Duration, rerun: &str) -> String {
    format!(
        "{what} hung: still running after {} s of wall time. Sim time cannot move while a host's code \
         runs, so a loop that never awaits (and logs nothing; one that logs is a liveness violation) holds \
         its thread for ever. Rerun it: {rerun}",
        ran.as_secs()
    )
}

/// The command that checks seed `seed` of `scenario` for determinism again.
pub fn determinism_rerun(scenario: &str, seed: u64) -> String {
    format!("{} check-determinism --scenario {scenario} --seeds {seed}", cargo_run_for(scenario, Planted::NONE))
}

/// The command that reruns seed `seed` of a sweep of `scenario`: the same drawn drill.
pub fn sweep_rerun(scenario: &str, seed: u64, swarm: bool, planted: Planted) -> String {
    let swarm = if swarm { " --swarm" } else { "" };
    let plant = plant_flag(planted);
    format!("{} sweep --scenario {scenario} --seeds {seed}..={seed}{swarm}{plant}", cargo_run_for(scenario, planted))
}

#[cfg(test)]
mod tests {
    use esper_core::planted::PlantedBug;
    use esper_sim::{FaultSpace, SimScenario, World};

    use super::*;
    use crate::drills::sweep::{SweepConfig, sweep};

    /// One host that, 5 ms in, spins without awaiting or logging: the trace
    /// cannot see it, so only the sweep's watchdog can.
    #[derive(Debug)]
    struct SilentSpin;

    impl SimScenario for SilentSpin {
        fn name(&self) -> &'static str {
            "silent-spin"
        }

        fn summary(&self) -> &'static str {
            "a host that never awaits and logs nothing"
        }

        fn fault_space(&self) -> Option<FaultSpace> {
            Some(FaultSpace::new(Duration::from_secs(1), Duration::from_millis(100), 1).link("spinner", "peer"))
        }

        fn populate(&self, world: &mut World) {
            world.client("peer", async { Ok(()) });
            world.client("spinner", async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                loop {
                    std::hint::spin_loop();
                }
            });
        }
    }

    /// Set in the child process the test below starts: the sweep ends the
    /// process it runs in, so it runs in one of its own.
    const CHILD: &str = "ESPER_HANG_TEST_CHILD";

    #[test]
    fn a_seed_that_spins_silently_ends_the_sweep_named_with_its_rerun_command() {
        if std::env::var_os(CHILD).is_some() {
            // A run that ended is never named, whenever its watch would have fired.
            drop(watch(Duration::from_millis(100), "the finished run".to_owned(), String::new()));
            let dir = tempfile::tempdir().expect("temp dir");
            let config = SweepConfig {
                seeds: "0..4".parse().expect("seeds"),
                jobs: 1,
                shard: None,
                swarm: false,
                twice: false,
                failures_dir: dir.path().to_path_buf(),
                max_failures: None,
                planted: Planted::NONE,
                hang_after: Duration::from_millis(300),
            };
            let summary = sweep(&SilentSpin, &config, |_| {});
            panic!("the sweep returned instead of ending the process: {summary:?}");
        }
        let test = "drills::hang::tests::a_seed_that_spins_silently_ends_the_sweep_named_with_its_rerun_command";
        let exe = std::env::current_exe().expect("this test binary");
        let child = std::process::Command::new(exe)
            .args(["--exact", test, "--nocapture"])
            .env(CHILD, "1")
            .output()
            .expect("the child runs");
        let stderr = String::from_utf8_lossy(&child.stderr);
        assert_eq!(child.status.code(), Some(HUNG_EXIT), "{stderr}");
        assert!(!stderr.contains("the finished run"), "{stderr}");
        assert!(stderr.contains("sweep: silent-spin seed 0 hung: still running after 0 s of wall time"), "{stderr}");
        assert!(
            stderr.contains("Rerun it: cargo run --release -- sweep --scenario silent-spin --seeds 0..=0\n"),
            "{stderr}"
        );
    }

    #[test]
    fn the_message_names_the_run_and_reruns_its_drill() {
        let rerun = sweep_rerun("oona-ledger", 7, false, Planted::NONE);
        assert_eq!(rerun, "cargo run --release -- sweep --scenario oona-ledger --seeds 7..=7");
        let message = hung("sweep: oona-ledger seed 7", Duration::from_secs(61), &rerun);
        assert!(message.starts_with("sweep: oona-ledger seed 7 hung: still running after 61 s"), "{message}");
        assert!(message.ends_with(&format!("Rerun it: {rerun}")), "{message}");
        let planted = Planted::bug(Some(PlantedBug::PanicOnRarePath));
        let swarm = sweep_rerun("control-loop", 3, true, planted);
        assert!(swarm.ends_with("--seeds 3..=3 --swarm --plant panic-on-rare-path"), "{swarm}");
        let check = determinism_rerun("nissa", 9);
        assert_eq!(check, "cargo run --release -- check-determinism --scenario nissa --seeds 9");
    }
}
