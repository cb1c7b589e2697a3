//! Urza, the artifact library: the kernels Tezzeret compiled, content-addressed on
//! the [`Storage`](crate::storage::Storage) seam with their blueprints' metadata
//! ([`Library`]); the kernel service Kasmina prefetches from over Oona
//! ([`serve_kernels`]); and the metadata Tamiyo looks blueprints up in (the
//! library is a [`BlueprintMetadataSource`](crate::tamiyo::BlueprintMetadataSource)).

mod kernels;
mod library;
mod metadata;

pub use kernels::{UrzaConfig, serve_kernels};
pub use library::{
    ARTIFACT_LIMIT_BYTES, ArtifactRecord, DamagedRecord, KernelArtifact, Library, UrzaError, sha256_hex,
};
