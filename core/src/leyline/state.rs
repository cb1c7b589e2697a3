//! Tolaria's view of training at one step: the `SystemStatePacket` Tamiyo decides on.

use std::collections::BTreeMap;

use super::codec::{Contract, UnknownEnum, closed};
use super::{BusMessageType, SeedLifecycleStage};

/// One Kasmina seed as Tolaria reports it.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct SeedState {
    #[prost(string, tag = "1")]
    pub seed_id: String,
    #[prost(enumeration = "SeedLifecycleStage", tag = "2")]
    pub stage: i32,
    #[prost(float, tag = "3")]
    pub gradient_norm: f32,
    #[prost(float, tag = "4")]
    pub learning_rate: f32,
    #[prost(uint32, tag = "5")]
    pub layer_depth: u32,
    #[prost(btree_map = "string, float", tag = "6")]
    pub metrics: BTreeMap<String, f32>,
    #[prost(uint32, tag = "7")]
    pub age_epochs: u32,
    #[prost(float, tag = "8")]
    pub risk_score: f32,
}

impl SeedState {
    fn check_enums(&self) -> Result<(), UnknownEnum> {
        closed::<SeedLifecycleStage>("seed_states.stage", self.stage)
    }
}

/// The accelerator Tolaria trains on.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct HardwareContext {
    #[prost(string, tag = "1")]
    pub device_type: String,
    #[prost(string, tag = "2")]
    pub device_id: String,
    #[prost(float, tag = "3")]
    pub total_memory_gb: f32,
    #[prost(float, tag = "4")]
    pub available_memory_gb: f32,
    #[prost(float, tag = "5")]
    pub temperature_celsius: f32,
    #[prost(float, tag = "6")]
    pub utilization_percent: f32,
    #[prost(uint32, tag = "7")]
    pub compute_capability: u32,
}

/// Training state at one optimizer step. Tags 100–199 are reserved, as in Leyline.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct SystemStatePacket {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(uint32, tag = "2")]
    pub current_epoch: u32,
    #[prost(float, tag = "3")]
    pub validation_accuracy: f32,
    #[prost(float, tag = "4")]
    pub validation_loss: f32,
    #[prost(uint64, tag = "5")]
    pub timestamp_ns: u64,
    #[prost(message, optional, tag = "6")]
    pub hardware_context: Option<HardwareContext>,
    #[prost(btree_map = "string, float", tag = "7")]
    pub training_metrics: BTreeMap<String, f32>,
    #[prost(message, repeated, tag = "8")]
    pub seed_states: Vec<SeedState>,
    #[prost(string, tag = "9")]
    pub packet_id: String,
    #[prost(uint64, tag = "10")]
    pub global_step: u64,
    #[prost(float, tag = "11")]
    pub training_loss: f32,
    #[prost(string, tag = "12")]
    pub source_subsystem: String,
    #[prost(string, tag = "13")]
    pub training_run_id: String,
    #[prost(string, tag = "14")]
    pub experiment_name: String,
}

impl Contract for SystemStatePacket {
    const NAME: &'static str = "SystemStatePacket";
    const MESSAGE_TYPE: BusMessageType = BusMessageType::SystemState;

    fn check_enums(&self) -> Result<(), UnknownEnum> {
        self.seed_states.iter().try_for_each(SeedState::check_enums)
    }
}
