//! Kernel prefetch: Kasmina asks Urza for a blueprint's compiled kernel and Urza
//! answers with where the artifact is, or why there is none. Replies carry the
//! request's id, so a requester matches them however the bus orders them.

use super::codec::{Contract, UnknownEnum};
use super::{BusMessageType, Timestamp};

/// Kasmina's request for a blueprint's kernel.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct KernelPrefetchRequest {
    #[prost(string, tag = "1")]
    pub request_id: String,
    #[prost(string, tag = "2")]
    pub blueprint_id: String,
    #[prost(string, tag = "3")]
    pub training_run_id: String,
    /// When the requester asked, in its Unix clock; Urza measures readiness from it.
    #[prost(message, optional, tag = "4")]
    pub issued_at: Option<Timestamp>,
}

/// Urza's answer: the kernel is ready at `artifact_ref`.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct KernelArtifactReady {
    #[prost(string, tag = "1")]
    pub request_id: String,
    #[prost(string, tag = "2")]
    pub blueprint_id: String,
    #[prost(string, tag = "3")]
    pub artifact_ref: String,
    #[prost(string, tag = "4")]
    pub checksum: String,
    #[prost(string, tag = "5")]
    pub guard_digest: String,
    #[prost(float, tag = "6")]
    pub prewarm_p50_ms: f32,
    #[prost(float, tag = "7")]
    pub prewarm_p95_ms: f32,
}

/// Urza's answer when it has no kernel for the blueprint.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct KernelArtifactError {
    #[prost(string, tag = "1")]
    pub request_id: String,
    #[prost(string, tag = "2")]
    pub blueprint_id: String,
    #[prost(string, tag = "3")]
    pub reason: String,
}

macro_rules! enumless_contract {
    ($message:ident, $kind:ident) => {
        impl Contract for $message {
            const NAME: &'static str = stringify!($message);
            const MESSAGE_TYPE: BusMessageType = BusMessageType::$kind;

            fn check_enums(&self) -> Result<(), UnknownEnum> {
                Ok(())
            }
        }
    };
}

enumless_contract!(KernelPrefetchRequest, KernelPrefetchRequest);
enumless_contract!(KernelArtifactReady, KernelPrefetchReady);
enumless_contract!(KernelArtifactError, KernelPrefetchError);
