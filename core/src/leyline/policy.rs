//! Simic's published policies: a `PolicyUpdate` carries a trained policy to Tamiyo
//! over Oona's policy stream.

use super::codec::{Contract, UnknownEnum};
use super::{BusMessageType, Timestamp};

/// A policy Simic trained and validated, for Tamiyo to hot-swap to.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct PolicyUpdate {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// Unique per update (`simic-<run>-<n>`).
    #[prost(string, tag = "2")]
    pub policy_id: String,
    #[prost(string, tag = "3")]
    pub training_run_id: String,
    #[prost(message, optional, tag = "4")]
    pub issued_at: Option<Timestamp>,
    /// The version Tamiyo will stamp on commands and field reports once installed.
    #[prost(string, tag = "5")]
    pub tamiyo_policy_version: String,
    /// The policy itself, in the form Tamiyo's learned head decodes.
    #[prost(bytes = "vec", tag = "6")]
    pub payload: Vec<u8>,
}

impl Contract for PolicyUpdate {
    const NAME: &'static str = "PolicyUpdate";
    const MESSAGE_TYPE: BusMessageType = BusMessageType::PolicyUpdate;

    fn check_enums(&self) -> Result<(), UnknownEnum> {
        Ok(())
    }
}
