//! Tezzeret's forge on the simulated disk: crash-resume exactly once, retries,
//! the breaker, and the telemetry Nissa alerts on.
//!
//! The crash test enumerates crash points instead of sampling them: the forge's
//! storage goes through [`Budgeted`], which lets a life perform `n` storage
//! operations and then freezes it forever (the machine died at that instant); the
//! sim disk then loses power ([`SimDisk::crash`]: unsynced bytes and names are
//! lost or torn) and a new life resumes. Every `n` from 0 to the length of an
//! uninterrupted forge is tried, so the crash lands at every job boundary (just
//! before, inside and after each WAL rewrite) and at every point inside a job
//! (mid-compile, between artifact and record, between temp write and rename).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use esper_core::karn::{Blueprint, Catalog};
use esper_core::leyline::TelemetryPacket;
use esper_core::nissa::alerts::{AlertEngine, PrefetchRule, TrainingLatencyRule, default_rules};
use esper_core::storage::{OpenMode, Storage, StorageError, StorageFile};
use esper_core::tezzeret::wal::FORGE_WAL_FILE;
use esper_core::tezzeret::{
    CompileError, CompileJobConfig, CompiledKernel, Compiler, DeviceCompiler, Forge, ForgeReport, forge_telemetry,
};
use esper_core::tolaria::device::DeviceKind;
use esper_core::urza::Library;
use esper_sim::{RngTree, SimDisk, SimDiskConfig};
use rand::Rng;
use support::runtime::block_on;

const ROOT: &str = "var/urza";
const FORGE_SEED: u64 = 7;

/// A storage whose machine dies after a budget of operations: the operation past
/// the budget never returns. Clones share the budget.
#[derive(Debug, Clone)]
struct Budgeted {
    disk: SimDisk,
    left: Arc<AtomicU64>,
    used: Arc<AtomicU64>,
}

impl Budgeted {
    fn new(disk: &SimDisk, budget: u64) -> Self {
        Self { disk: disk.clone(), left: Arc::new(AtomicU64::new(budget)), used: Arc::default() }
    }

    async fn tick(left: &AtomicU64, used: &AtomicU64) {
        if left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err() {
            std::future::pending::<()>().await;
        }
        used.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct BudgetedFile {
    file: <SimDisk as Storage>::File,
    left: Arc<AtomicU64>,
    used: Arc<AtomicU64>,
}

impl Storage for Budgeted {
    type File = BudgetedFile;

    async fn open(&self, path: &Path, mode: OpenMode) -> Result<BudgetedFile, StorageError> {
        Self::tick(&self.left, &self.used).await;
        let file = self.disk.open(path, mode).await?;
        Ok(BudgetedFile { file, left: Arc::clone(&self.left), used: Arc::clone(&self.used) })
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        Self::tick(&self.left, &self.used).await;
        self.disk.rename(from, to).await
    }

    async fn remove(&self, path: &Path) -> Result<(), StorageError> {
        Self::tick(&self.left, &self.used).await;
        self.disk.remove(path).await
    }

    async fn list(&self, dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
        Self::tick(&self.left, &self.used).await;
        self.disk.list(dir).await
    }

    async fn create_dir_all(&self, dir: &Path) -> Result<(), StorageError> {
        Self::tick(&self.left, &self.used).await;
        self.disk.create_dir_all(dir).await
    }

    async fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        Self::tick(&self.left, &self.used).await;
        self.disk.sync_dir(dir).await
    }
}

impl StorageFile for BudgetedFile {
    fn path(&self) -> &Path {
        self.file.path()
    }

    async fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        Budgeted::tick(&self.left, &self.used).await;
        self.file.append(bytes).await
    }

    async fn read(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        Budgeted::tick(&self.left, &self.used).await;
        self.file.read(offset, len).await
    }

    async fn len(&mut self) -> Result<u64, StorageError> {
        Budgeted::tick(&self.left, &self.used).await;
        self.file.len().await
    }

    async fn truncate(&mut self, len: u64) -> Result<(), StorageError> {
        Budgeted::tick(&self.left, &self.used).await;
        self.file.truncate(len).await
    }

    async fn sync(&mut self) -> Result<(), StorageError> {
        Budgeted::tick(&self.left, &self.used).await;
        self.file.sync().await
    }
}

/// The real compiler, with a ledger of the blueprints it was asked to compile and
/// a plan of attempts to fail (blueprint → failures before the first success).
struct Recording {
    inner: DeviceCompiler,
    ledger: Arc<Mutex<Vec<String>>>,
    failures: BTreeMap<String, u32>,
}

impl Recording {
    fn new(ledger: &Arc<Mutex<Vec<String>>>) -> Self {
        let inner = DeviceCompiler::new(DeviceKind::Synthetic, FORGE_SEED);
        Self { inner, ledger: Arc::clone(ledger), failures: BTreeMap::new() }
    }

    fn failing(mut self, plan: &[(&str, u32)]) -> Self {
        self.failures = plan.iter().map(|(id, n)| ((*id).to_owned(), *n)).collect();
        self
    }
}

impl Compiler for Recording {
    fn compile(&mut self, blueprint: &Blueprint) -> Result<CompiledKernel, CompileError> {
        self.ledger.lock().expect("ledger").push(blueprint.blueprint_id.clone());
        if let Some(left) = self.failures.get_mut(&blueprint.blueprint_id).filter(|left| **left > 0) {
            *left -= 1;
            return Err(CompileError::Refused {
                blueprint_id: blueprint.blueprint_id.clone(),
                reason: "planned failure".to_owned(),
            });
        }
        self.inner.compile(blueprint)
    }
}

fn disk(seed: u64) -> SimDisk {
    let mut plan = RngTree::new(seed).stream("plan");
    let block_size = [16, 512, 4096][plan.random_range(0..3)];
    SimDisk::new(SimDiskConfig { block_size, ..SimDiskConfig::default() }, RngTree::new(seed).stream("disk"))
}

fn config() -> CompileJobConfig {
    CompileJobConfig { artifact_dir: PathBuf::from(ROOT), max_retries: 1 }
}

/// One life of the forge on `storage`: open the library, run a pass.
async fn life<S: Storage, C: Compiler>(storage: S, compiler: C) -> ForgeReport {
    let (library, damaged) = Library::open(storage.clone(), Path::new(ROOT)).await.expect("library opens");
    assert!(damaged.is_empty(), "atomic publication never leaves a damaged record: {damaged:?}");
    let mut forge = Forge::new(storage, library, config(), compiler);
    forge.run(&Catalog::default_catalog()).await.expect("no disk faults but crashes: the pass ends")
}

/// Runs a life that dies after `budget` operations; `None` if it died.
fn life_until(disk: &SimDisk, budget: u64, ledger: &Arc<Mutex<Vec<String>>>) -> (Option<ForgeReport>, u64) {
    let storage = Budgeted::new(disk, budget);
    let used = Arc::clone(&storage.used);
    let ended = block_on(async {
        // A frozen life never wakes; the paused clock then runs to the timeout.
        tokio::time::timeout(Duration::from_secs(3_600), life(storage, Recording::new(ledger))).await.ok()
    });
    (ended, used.load(Ordering::SeqCst))
}

/// The library's durable contents: every file under the root, by path.
fn files(disk: &SimDisk) -> BTreeMap<PathBuf, Vec<u8>> {
    block_on(async {
        let mut files = BTreeMap::new();
        for dir in ["artifacts", "blueprints"] {
            for path in disk.list(&Path::new(ROOT).join(dir)).await.expect("list") {
                files.insert(path.clone(), disk.contents(&path).expect("listed file"));
            }
        }
        files
    })
}

fn durable_blueprints(disk: &SimDisk) -> BTreeSet<String> {
    block_on(async { Library::open(disk.clone(), Path::new(ROOT)).await.expect("opens").0.blueprint_ids() })
        .into_iter()
        .collect()
}

fn wal_path() -> PathBuf {
    Path::new(ROOT).join(FORGE_WAL_FILE)
}

/// An uninterrupted forge: its files, and how many storage operations it took.
fn reference() -> (BTreeMap<PathBuf, Vec<u8>>, u64) {
    let disk = disk(0);
    let ledger = Arc::default();
    let (report, used) = life_until(&disk, u64::MAX, &ledger);
    let report = report.expect("an unlimited life ends");
    assert_eq!(report.compiled.len(), 50);
    assert!(report.pending.is_empty() && disk.contents(&wal_path()).is_none());
    (files(&disk), used)
}

/// Crash once after every possible number of storage operations, resume, and
/// check: every blueprint compiled and published exactly once, except the one job
/// in flight at the crash, which is compiled again only if its record was not yet
/// durable; no blueprint durable before the crash is compiled after it; the WAL
/// is gone; the library is byte for byte the uninterrupted one.
#[test]
fn resume_after_a_crash_at_every_storage_operation_compiles_each_blueprint_once() {
    let (expected, total_ops) = reference();
    let catalog: BTreeSet<String> = Catalog::default_catalog().iter().map(|b| b.blueprint_id.clone()).collect();
    assert!(total_ops > 50 * 12, "each job writes two files and the WAL: {total_ops} operations");
    for crash_after in 0..total_ops {
        let disk = disk(crash_after);
        let ledger = Arc::new(Mutex::new(Vec::new()));
        let (ended, _) = life_until(&disk, crash_after, &ledger);
        assert!(ended.is_none(), "crash point {crash_after}: the life should have died");
        let first_life = std::mem::take(&mut *ledger.lock().expect("ledger"));
        disk.crash();
        let durable = durable_blueprints(&disk);
        let (report, _) = life_until(&disk, u64::MAX, &ledger);
        let report = report.expect("the resumed life ends");
        let second_life = ledger.lock().expect("ledger").clone();
        let context = format!("crash after {crash_after} of {total_ops} operations");
        assert!(report.pending.is_empty(), "{context}: {report:?}");
        assert!(disk.contents(&wal_path()).is_none(), "{context}: the WAL outlived the forge");
        let redone: Vec<_> = second_life.iter().filter(|id| durable.contains(*id)).collect();
        assert!(redone.is_empty(), "{context}: recompiled blueprints that were durable: {redone:?}");
        let twice: BTreeSet<_> = second_life.iter().filter(|id| first_life.contains(id)).collect();
        assert!(twice.len() <= 1, "{context}: only the job in flight may be compiled again: {twice:?}");
        let all: BTreeSet<String> = first_life.iter().chain(&second_life).cloned().collect();
        assert_eq!(all, catalog, "{context}: every blueprint compiled");
        assert_eq!(second_life.len(), BTreeSet::from_iter(&second_life).len(), "{context}: a life compiles once");
        assert_eq!(files(&disk).keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "{context}");
        assert!(files(&disk) == expected, "{context}: library differs from an uninterrupted forge");
    }
}

/// Many crashes in one forge, each life given a seeded budget: it still ends with
/// every blueprint compiled once per life at most and published once.
#[test]
fn survives_a_crash_in_every_life_until_done() {
    let (expected, _) = reference();
    for seed in 0..20 {
        let disk = disk(seed);
        let mut budgets = RngTree::new(seed).stream("budgets");
        let ledger = Arc::new(Mutex::new(Vec::new()));
        let mut lives = 0;
        loop {
            lives += 1;
            assert!(lives < 200, "seed {seed}: the forge makes no progress");
            // Opening the library reads every record: leave room for a few jobs after it.
            let (ended, _) = life_until(&disk, budgets.random_range(170..400), &ledger);
            if ended.is_some() {
                break;
            }
            disk.crash();
        }
        assert!(lives > 3, "seed {seed}: expected several crashes, got {lives} lives");
        let compiled = ledger.lock().expect("ledger").clone();
        let extra = compiled.len() - 50;
        assert!(extra < lives, "seed {seed}: {extra} recompiles in {lives} lives");
        assert!(disk.contents(&wal_path()).is_none() && files(&disk) == expected, "seed {seed}");
    }
}

fn alerts_on(packets: &[TelemetryPacket]) -> Vec<String> {
    let mut engine = AlertEngine::new(default_rules(TrainingLatencyRule::Rc1, PrefetchRule::Rc1)).expect("rules");
    for (at, packet) in packets.iter().enumerate() {
        for metric in &packet.metrics {
            engine.evaluate(&metric.name, metric.value, at as u64);
        }
    }
    engine.active().keys().map(|name| (*name).to_owned()).collect()
}

/// A retry is counted; three consecutive failed jobs open the breaker, the rest of
/// the pass stays pending in the WAL; the next pass resumes it and finishes; the
/// `tezzeret_compile_retry_high` alert fires on the failing pass and clears after.
#[test]
fn retries_are_counted_and_the_breaker_leaves_the_rest_pending() {
    let disk = disk(1);
    let ledger = Arc::new(Mutex::new(Vec::new()));
    let plan = [("BP002", 1), ("BP010", 2), ("BP011", 2), ("BP012", 2)];
    let first = block_on(life(disk.clone(), Recording::new(&ledger).failing(&plan)));
    assert_eq!(first.retry_count, 4, "BP002 once, BP010–BP012 once each before giving up");
    assert_eq!(first.counters.failed_total, 3);
    assert_eq!(first.counters.breaker_open_skip_total, 38, "BP013–BP050 skipped");
    assert_eq!(first.compiled.len(), 9, "BP001–BP009");
    assert_eq!(first.pending.first().map(String::as_str), Some("BP010"));
    assert_eq!(first.pending.len(), 41);
    let wal = String::from_utf8(disk.contents(&wal_path()).expect("the WAL holds what is pending")).expect("utf8");
    assert!(wal.starts_with(r#"{"pending":["BP010","BP011","BP012","BP013""#), "{wal}");

    let second = block_on(life(disk.clone(), Recording::new(&ledger)));
    assert!(second.resumed && second.pending.is_empty() && second.retry_count == 0);
    assert_eq!(second.compiled.len(), 41);
    assert!(disk.contents(&wal_path()).is_none());

    let [first, second] = [first, second].map(|report| forge_telemetry(&report, 1_000).expect("fits 280 bytes"));
    assert_eq!(first.iter().find_map(|packet| packet.metric("tezzeret.compile.retries_total")), Some(4.0));
    assert_eq!(alerts_on(&first), ["tezzeret_compile_retry_high"]);
    let both: Vec<_> = first.into_iter().chain(second).collect();
    assert!(alerts_on(&both).is_empty(), "a pass without retries clears the alert");
}

/// A WAL that is not a pending list is refused, naming the file; one naming a
/// blueprint the catalog lacks drops it.
#[test]
fn a_malformed_wal_is_refused_and_unknown_ids_are_dropped() {
    let disk = disk(2);
    block_on(esper_core::storage::write_atomic(&disk, &wal_path(), b"{\"pending\": 3}")).expect("write");
    let refused = block_on(async {
        let (library, _) = Library::open(disk.clone(), Path::new(ROOT)).await.expect("opens");
        let compiler = DeviceCompiler::new(DeviceKind::Synthetic, FORGE_SEED);
        Forge::new(disk.clone(), library, config(), compiler).run(&Catalog::default_catalog()).await
    });
    let message = refused.expect_err("malformed").to_string();
    assert!(message.contains("forge_wal.json") && message.contains("delete it"), "{message}");

    block_on(esper_core::storage::write_atomic(&disk, &wal_path(), br#"{"pending":["BP999","BP003"]}"#))
        .expect("write");
    let report = block_on(life(disk.clone(), Recording::new(&Arc::default())));
    assert_eq!((report.compiled, report.counters.skipped_unknown_total), (vec!["BP003".to_owned()], 1));
    assert!(disk.contents(&wal_path()).is_none());
}
