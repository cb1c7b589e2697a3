//! `tezzeret-forge`: Tezzeret forges Karn's catalog into Urza's library on a
//! simulated disk while its host crashes and restarts and an fsync fails.
//!
//! The `tezzeret` host runs forge passes until nothing is pending: a pass that a
//! disk error stops is retried after a pause by a fresh pass (which reopens the
//! library and resumes the WAL), and a crash drops the host mid-step — the disk
//! keeps only what was fsynced — and the restarted host resumes. One blueprint's
//! first compile attempt fails (a seeded fault plan), so the retry counter moves.
//! The `auditor` waits for the forge to finish and checks: `forge_wal.json` is
//! gone; the library holds every blueprint, byte for byte what an uninterrupted
//! forge produces; each blueprint was compiled in at most one life more than once
//! per crash (only a job in flight at a crash is redone); the last pass's
//! telemetry carries the retry counter and fits Leyline's budget.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use esper_core::karn::{Blueprint, Catalog};
use esper_core::storage::Storage;
use esper_core::tezzeret::{
    CompileError, CompileJobConfig, CompiledKernel, Compiler, DeviceCompiler, Forge, ForgeReport, forge_telemetry,
};
use esper_core::tolaria::device::DeviceKind;
use esper_core::urza::Library;
use esper_sim::{DiskOp, Fault, FaultSchedule, RngTree, ScheduledFault, SimDisk, SimDiskConfig, SimScenario, World};
use rand::Rng;

use crate::sim::control_loop::hosts::sim_clock;

trace_target!("tezzeret_forge");

const TEZZERET: &str = "tezzeret";
const AUDITOR: &str = "auditor";
/// Pause before a pass stopped by a disk error is retried.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TezzeretForgeScenario;

/// What the Tezzeret lives tell the auditor (an oracle outside the system).
#[derive(Debug, Default)]
struct Journal {
    /// Per life, the blueprints handed to the compiler, in order.
    compiles: Vec<Vec<String>>,
    /// Passes stopped by a disk error.
    stopped_passes: u64,
    /// The pass that finished the forge.
    finished: Option<ForgeReport>,
}

/// The real compiler, journaled, failing the first attempt of one blueprint.
struct Journaled {
    inner: DeviceCompiler,
    journal: Rc<RefCell<Journal>>,
    fail_once: Option<String>,
}

impl Compiler for Journaled {
    fn compile(&mut self, blueprint: &Blueprint) -> Result<CompiledKernel, CompileError> {
        if let Some(life) = self.journal.borrow_mut().compiles.last_mut() {
            life.push(blueprint.blueprint_id.clone());
        }
        if self.fail_once.as_deref() == Some(blueprint.blueprint_id.as_str()) {
            self.fail_once = None;
            let reason = "planned compile failure".to_owned();
            return Err(CompileError::Refused { blueprint_id: blueprint.blueprint_id.clone(), reason });
        }
        self.inner.compile(blueprint)
    }
}

fn job() -> CompileJobConfig {
    CompileJobConfig { artifact_dir: PathBuf::from("var/urza"), max_retries: 1 }
}

/// The forge's seed: the same in every life, so a recompile yields the same kernel.
fn forge_seed(rng: &RngTree) -> u64 {
    rng.stream("compiler").random()
}

impl SimScenario for TezzeretForgeScenario {
    fn name(&self) -> &'static str {
        "tezzeret-forge"
    }

    fn summary(&self) -> &'static str {
        "Tezzeret forges Karn's 50 blueprints through crashes and an fsync error; resume compiles each once, WAL gone"
    }

    fn schedule(&self, rng: &RngTree) -> FaultSchedule {
        let mut draws = rng.stream("crashes");
        let mut faults = Vec::new();
        let mut at_ms = 0;
        for _ in 0..draws.random_range(1..=3) {
            at_ms += draws.random_range(40..400);
            faults.push(ScheduledFault { at_ms, fault: Fault::Crash { host: TEZZERET.to_owned() } });
            at_ms += draws.random_range(5..60);
            faults.push(ScheduledFault { at_ms, fault: Fault::Restart { host: TEZZERET.to_owned() } });
        }
        let eio_ms = draws.random_range(10..at_ms);
        let eio = Fault::DiskError { host: TEZZERET.to_owned(), op: DiskOp::Fsync, count: 1 };
        faults.push(ScheduledFault { at_ms: eio_ms, fault: eio });
        faults.sort_by_key(|fault| fault.at_ms);
        FaultSchedule::new(faults)
    }

    fn populate(&self, world: &mut World) {
        let disk = world.disk(TEZZERET, SimDiskConfig::default());
        let rng = world.rng().child(TEZZERET);
        let fail_once = Catalog::default_catalog()
            .iter()
            .nth(rng.stream("fault-plan").random_range(0..50))
            .map(|blueprint| blueprint.blueprint_id.clone());
        let journal = Rc::new(RefCell::new(Journal::default()));
        let (log, host_disk, seed) = (Rc::clone(&journal), disk.clone(), forge_seed(&rng));
        world.host(TEZZERET, move || {
            log.borrow_mut().compiles.push(Vec::new());
            let compiler = Journaled {
                inner: DeviceCompiler::new(DeviceKind::Synthetic, seed),
                journal: Rc::clone(&log),
                fail_once: fail_once.clone(),
            };
            let (disk, log) = (host_disk.clone(), Rc::clone(&log));
            async move {
                forge_until_done(disk, compiler, &log).await;
                std::future::pending::<()>().await;
                Ok(())
            }
        });
        world.client(AUDITOR, async move { audit(&journal, &disk, seed).await.map_err(Into::into) });
    }
}

/// Forge passes until one leaves nothing pending. One forge per life, so its
/// counters (`retries_total`) add up over the passes of the life.
async fn forge_until_done(disk: SimDisk, compiler: Journaled, journal: &RefCell<Journal>) {
    let catalog = Catalog::default_catalog();
    let mut forge = loop {
        match Library::open(disk.clone(), &job().artifact_dir).await {
            Ok((library, _)) => break Forge::new(disk.clone(), library, job(), compiler),
            Err(error) => {
                tracing::warn!(target: TRACE_TARGET, %error, "tezzeret-forge: library did not open; retrying")
            }
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    };
    loop {
        match forge.run(&catalog).await {
            Ok(report) if report.pending.is_empty() => {
                journal.borrow_mut().finished = Some(report);
                return;
            }
            Ok(report) => {
                tracing::warn!(target: TRACE_TARGET, pending = report.pending.len(), "tezzeret-forge: pass left work pending")
            }
            Err(error) => {
                tracing::warn!(target: TRACE_TARGET, %error, "tezzeret-forge: pass stopped by the disk; retrying");
                journal.borrow_mut().stopped_passes += 1;
            }
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Waits for the forge, then checks it (see the module docs).
async fn audit(journal: &RefCell<Journal>, disk: &SimDisk, seed: u64) -> Result<(), String> {
    let report = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Some(report) = journal.borrow().finished.clone() {
            break report;
        }
    };
    let root = job().artifact_dir;
    if disk.contents(&job().wal_path()).is_some() {
        return Err("forge_wal.json outlived a finished forge".to_owned());
    }
    let (crashes, redone, stopped_passes) = {
        let journal = journal.borrow();
        let crashes = journal.compiles.len() - 1;
        let mut lives_per_blueprint: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
        for (life, compiles) in journal.compiles.iter().enumerate() {
            for id in compiles {
                lives_per_blueprint.entry(id).or_default().insert(life);
            }
        }
        let redone = lives_per_blueprint.values().filter(|lives| lives.len() > 1).count();
        if lives_per_blueprint.len() != 50 || redone > crashes {
            return Err(format!(
                "{} blueprints compiled, {redone} in more than one life, {crashes} crashes",
                lives_per_blueprint.len()
            ));
        }
        (crashes, redone, journal.stopped_passes)
    };
    if library_files(disk, &root).await? != library_files(&reference_forge(seed).await?, &root).await? {
        return Err("the library differs from an uninterrupted forge's".to_owned());
    }
    let telemetry = forge_telemetry(&report, sim_clock().now_ms()).map_err(|e| e.to_string())?;
    let retries = telemetry.iter().find_map(|packet| packet.metric("tezzeret.compile.retries_total"));
    tracing::info!(target: TRACE_TARGET, crashes, redone, stopped_passes, ?retries, "tezzeret-forge: audited");
    Ok(())
}

/// Every file of the library under `root`, by path.
async fn library_files(disk: &SimDisk, root: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>, String> {
    let mut files = BTreeMap::new();
    for dir in ["artifacts", "blueprints"] {
        for path in disk.list(&root.join(dir)).await.map_err(|e| e.to_string())? {
            let bytes = disk.contents(&path).ok_or_else(|| format!("{} vanished", path.display()))?;
            files.insert(path, bytes);
        }
    }
    Ok(files)
}

/// The library an uninterrupted forge builds, on a fresh in-memory disk.
async fn reference_forge(seed: u64) -> Result<SimDisk, String> {
    let config = SimDiskConfig { fsync_latency: Duration::ZERO, ..SimDiskConfig::default() };
    let disk = SimDisk::new(config, RngTree::new(seed).stream("reference-disk"));
    let (library, _) = Library::open(disk.clone(), &job().artifact_dir).await.map_err(|e| e.to_string())?;
    let compiler = DeviceCompiler::new(DeviceKind::Synthetic, seed);
    let report = Forge::new(disk.clone(), library, job(), compiler)
        .run(&Catalog::default_catalog())
        .await
        .map_err(|e| e.to_string())?;
    if report.pending.is_empty() { Ok(disk) } else { Err(format!("reference forge left {:?}", report.pending)) }
}
