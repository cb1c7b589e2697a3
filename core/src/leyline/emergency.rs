//! `EmergencySignal`: Tolaria's emergency ladder broadcast on the Oona emergency stream.

use std::collections::BTreeMap;

use super::codec::{Contract, UnknownEnum, closed};
use super::{BusMessageType, EmergencyLevel, Timestamp};

/// An escalation (or reset) of the emergency level, with why and by whom.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct EmergencySignal {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(enumeration = "EmergencyLevel", tag = "2")]
    pub level: i32,
    #[prost(string, tag = "3")]
    pub reason: String,
    #[prost(string, tag = "4")]
    pub origin: String,
    #[prost(message, optional, tag = "5")]
    pub triggered_at: Option<Timestamp>,
    #[prost(uint64, tag = "6")]
    pub monotonic_time_ms: u64,
    #[prost(string, tag = "7")]
    pub run_id: String,
    #[prost(btree_map = "string, string", tag = "8")]
    pub attributes: BTreeMap<String, String>,
    #[prost(bytes = "vec", tag = "9")]
    pub payload_checksum: Vec<u8>,
}

impl Contract for EmergencySignal {
    const NAME: &'static str = "EmergencySignal";
    const MESSAGE_TYPE: BusMessageType = BusMessageType::EmergencySignal;

    fn check_enums(&self) -> Result<(), UnknownEnum> {
        closed::<EmergencyLevel>("level", self.level)
    }
}
