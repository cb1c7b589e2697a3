//! Same seed + same commit ⇒ same trace hash, on every machine: the hash of every
//! registered scenario at seeds 0..8 is pinned in `snapshots/trace_hashes.json`.
//!
//! `tests/determinism.rs` runs each seed twice in one process, which catches a
//! leak of randomness but not a platform difference: a libm that rounds `exp`
//! differently, a compiler that fuses a multiply-add, another CPU. This test
//! compares with hashes recorded on the machine that committed them, so it fails
//! wherever a run diverges from that machine — `ci/gpu-profile run` runs it on the
//! GPU runners too.
//!
//! A change that alters traces updates the file in the same commit, on purpose
//! and reviewed: `ESPER_PIN_TRACE_HASHES=1 cargo nextest run --test trace_hashes`
//! rewrites it, and `git diff snapshots/trace_hashes.json` shows which scenarios
//! moved. The libtorch scenarios (`registry::libtorch_only`) are left out: libtorch
//! picks its kernels per CPU, so their floats (and traces) are only promised per
//! machine (`tests/control_loop_tch.rs`).

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use esper_scenarios::registry;
use esper_sim::{TraceMode, run_scenario};
use serde::{Deserialize, Serialize};

/// The file's format.
const SCHEMA: &str = "esper.trace-hashes/v1";
/// Seeds pinned per scenario.
const SEEDS: std::ops::Range<u64> = 0..8;
/// Rewrites the pinned file instead of comparing (see the module docs).
const PIN_VARIABLE: &str = "ESPER_PIN_TRACE_HASHES";

/// `snapshots/trace_hashes.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinnedHashes {
    schema: String,
    /// The seeds each list holds, as `A..B`.
    seeds: String,
    /// Scenario → trace hash per seed, in seed order.
    scenarios: BTreeMap<String, Vec<String>>,
}

impl PinnedHashes {
    fn new(scenarios: BTreeMap<String, Vec<String>>) -> Self {
        Self { schema: SCHEMA.to_owned(), seeds: format!("{}..{}", SEEDS.start, SEEDS.end), scenarios }
    }
}

/// Every seed of every pinned scenario whose hash is not the pinned one, as a
/// line a reviewer can act on; a scenario missing on either side is one line.
fn differences(pinned: &PinnedHashes, now: &PinnedHashes) -> Vec<String> {
    let mut lines = Vec::new();
    let names: std::collections::BTreeSet<&String> = pinned.scenarios.keys().chain(now.scenarios.keys()).collect();
    for name in names {
        let (Some(was), Some(is)) = (pinned.scenarios.get(name), now.scenarios.get(name)) else {
            let side = if pinned.scenarios.contains_key(name) { "no longer registered" } else { "not pinned" };
            lines.push(format!("{name}: {side}"));
            continue;
        };
        let seeds = SEEDS.map(|seed| usize::try_from(seed).unwrap_or(usize::MAX));
        for (seed, index) in SEEDS.zip(seeds) {
            let (was, is) = (was.get(index), is.get(index));
            if was != is {
                lines.push(format!(
                    "{name} seed {seed}: pinned {} now {} (esper run --scenario {name} --seed {seed})",
                    was.map_or("(none)", String::as_str),
                    is.map_or("(none)", String::as_str)
                ));
            }
        }
    }
    lines
}

/// The hashes of this build, two scenarios at a time (one per core).
fn hashes_now() -> PinnedHashes {
    let scenarios: Vec<_> =
        registry::all().into_iter().filter(|scenario| !registry::libtorch_only().contains(&scenario.name())).collect();
    let hash_all = |chunk: &[&'static dyn esper_sim::SimScenario]| {
        chunk
            .iter()
            .map(|scenario| {
                let hashes = SEEDS.map(|seed| run_scenario(*scenario, seed, TraceMode::Hash).hash).collect();
                (scenario.name().to_owned(), hashes)
            })
            .collect::<Vec<(String, Vec<String>)>>()
    };
    let (first, second) = scenarios.split_at(scenarios.len() / 2);
    let hashed = std::thread::scope(|scope| {
        let other = scope.spawn(|| hash_all(second));
        let mut hashed = hash_all(first);
        hashed.extend(other.join().expect("a scenario run panicked while hashing"));
        hashed
    });
    PinnedHashes::new(hashed.into_iter().collect())
}

fn read_pinned(path: &Path) -> PinnedHashes {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let pinned: PinnedHashes = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not a pinned-hash file: {error}", path.display()));
    assert_eq!(pinned.schema, SCHEMA, "{}", path.display());
    pinned
}

#[test]
fn every_scenario_hashes_as_pinned_at_seeds_0_to_8() {
    let path = support::workspace_file("snapshots/trace_hashes.json");
    let now = hashes_now();
    if std::env::var_os(PIN_VARIABLE).is_some() {
        let text = serde_json::to_string_pretty(&now).expect("hashes serialise") + "\n";
        std::fs::write(&path, text).unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        println!("pinned {} scenarios × {} seeds in {}", now.scenarios.len(), SEEDS.end, path.display());
        return;
    }
    let differences = differences(&read_pinned(&path), &now);
    assert!(
        differences.is_empty(),
        "{} trace hash(es) differ from {}:\n  {}\nIf this commit changes traces on purpose, rewrite the file with \
         `{PIN_VARIABLE}=1 cargo nextest run --test trace_hashes` and commit it with the change; if not, this \
         build is not deterministic across machines or commits.",
        differences.len(),
        path.display(),
        differences.join("\n  ")
    );
}

#[test]
fn a_changed_or_missing_hash_is_named_with_scenario_and_seed() {
    let pinned = PinnedHashes::new(BTreeMap::from([
        ("a".to_owned(), (0..8).map(|seed| format!("h{seed}")).collect()),
        ("gone".to_owned(), vec!["x".to_owned(); 8]),
    ]));
    let mut now = pinned.clone();
    now.scenarios.remove("gone");
    now.scenarios.insert("new".to_owned(), vec!["y".to_owned(); 8]);
    if let Some(hashes) = now.scenarios.get_mut("a") {
        hashes[3] = "changed".to_owned();
    }
    assert_eq!(differences(&pinned, &pinned), Vec::<String>::new());
    assert_eq!(
        differences(&pinned, &now),
        [
            "a seed 3: pinned h3 now changed (esper run --scenario a --seed 3)",
            "gone: no longer registered",
            "new: not pinned",
        ]
    );
}
