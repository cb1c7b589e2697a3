//! Urza's artifact library on both storages: publication, reopening, content
//! addressing, damage detection, and the metadata Tamiyo reads from it.

mod support;

use std::path::Path;

use esper_core::karn::Catalog;
use esper_core::storage::{RealStorage, Storage};
use esper_core::tamiyo::BlueprintMetadataSource;
use esper_core::urza::{KernelArtifact, Library, UrzaError, sha256_hex};
use support::runtime::block_on;
use support::sim::disk;

const ROOT: &str = "var/urza";

fn kernel(id: &str, bytes: &[u8]) -> KernelArtifact<'static> {
    let catalog = Box::leak(Box::new(Catalog::default_catalog()));
    KernelArtifact {
        blueprint: catalog.get(id).expect("in Karn's catalog"),
        bytes: bytes.to_vec(),
        guard_digest: "g".into(),
    }
}

/// Publish two kernels (one twice, with the same bytes as another), reopen, read back.
async fn round_trip<S: Storage>(storage: S, root: &Path) {
    let (library, damaged) = Library::open(storage.clone(), root).await.expect("opens empty");
    assert!(damaged.is_empty() && library.blueprint_ids().is_empty());
    let first = library.publish(kernel("BP001", b"kernel one")).await.expect("publish");
    library.publish(kernel("BP043", b"kernel one")).await.expect("same bytes, other blueprint");
    library.publish(kernel("BP002", b"kernel two")).await.expect("publish");
    assert_eq!(first.artifact_sha256, sha256_hex(b"kernel one"));
    assert_eq!(first.artifact_ref(), format!("urza://artifacts/{}.kernel", first.artifact_sha256));
    let artifacts = storage.list(&root.join("artifacts")).await.expect("list");
    assert_eq!(artifacts.len(), 2, "content-addressed: equal bytes are stored once");

    let (reopened, damaged) = Library::open(storage, root).await.expect("reopens");
    assert!(damaged.is_empty());
    assert_eq!(reopened.blueprint_ids(), ["BP001", "BP002", "BP043"]);
    assert_eq!(reopened.record("BP001"), Some(first));
    assert_eq!(reopened.read_kernel("BP002").await.expect("read"), b"kernel two");
    let metadata = reopened.fetch("BP043").await.expect("Tamiyo sees BP043");
    assert!(metadata.quarantine_only && metadata.risk >= 0.9);
    assert!(reopened.fetch("BP003").await.is_none(), "no kernel, no metadata");
    assert!(matches!(reopened.read_kernel("BP003").await, Err(UrzaError::NotFound { .. })));
}

#[test]
fn publishes_reopens_and_serves_metadata_on_the_sim_disk() {
    let disk = disk(3);
    block_on(round_trip(disk.clone(), Path::new(ROOT)));
    disk.crash();
    let (library, _) = block_on(Library::open(disk, Path::new(ROOT))).expect("reopens after power loss");
    assert_eq!(library.blueprint_ids().len(), 3, "every acknowledged publication survives a crash");
}

#[test]
fn publishes_reopens_and_serves_metadata_on_real_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(round_trip(RealStorage, &dir.path().join("urza")));
}

/// A flipped bit in a kernel is caught when it is read; one in a record leaves the
/// record out (and the blueprint reads as not built, for Tezzeret to rebuild).
#[test]
fn damage_is_detected_not_served() {
    let disk = disk(4);
    let (library, _) = block_on(Library::open(disk.clone(), Path::new(ROOT))).expect("opens");
    let one = block_on(library.publish(kernel("BP001", b"kernel one"))).expect("publish");
    block_on(library.publish(kernel("BP002", b"kernel two"))).expect("publish");
    let artifact = Path::new(ROOT).join("artifacts").join(format!("{}.kernel", one.artifact_sha256));
    assert!(disk.flip_bit(&artifact, 3, 1));
    match block_on(library.read_kernel("BP001")) {
        Err(UrzaError::Corrupt { expected, .. }) => assert_eq!(expected, one.artifact_sha256),
        other => panic!("a damaged kernel must be refused: {other:?}"),
    }
    assert!(disk.flip_bit(&Path::new(ROOT).join("blueprints/BP002.json"), 2, 6));
    let (reopened, damaged) = block_on(Library::open(disk, Path::new(ROOT))).expect("opens");
    assert_eq!(reopened.blueprint_ids(), ["BP001"]);
    assert_eq!(damaged.len(), 1);
    assert!(damaged[0].reason.contains("not an artifact record"), "{damaged:?}");
}
