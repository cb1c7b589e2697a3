//! Tamiyo's account of how a command worked out: the `FieldReport` Simic learns from.

use std::collections::BTreeMap;

use super::codec::{Contract, UnknownEnum, closed};
use super::{BusMessageType, FieldReportOutcome, Timestamp};

/// Something Tamiyo intends to do next because of this outcome (e.g. `CONSERVATIVE_MODE`).
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct FollowUpAction {
    #[prost(string, tag = "1")]
    pub action_type: String,
    #[prost(string, tag = "2")]
    pub rationale: String,
}

/// The outcome of one adaptation command over its observation window.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct FieldReport {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(string, tag = "2")]
    pub report_id: String,
    #[prost(string, tag = "3")]
    pub command_id: String,
    #[prost(string, tag = "4")]
    pub training_run_id: String,
    #[prost(string, tag = "5")]
    pub seed_id: String,
    #[prost(string, tag = "6")]
    pub blueprint_id: String,
    #[prost(enumeration = "FieldReportOutcome", tag = "7")]
    pub outcome: i32,
    /// Metric deltas over the window, e.g. `loss_delta`.
    #[prost(btree_map = "string, float", tag = "8")]
    pub metrics: BTreeMap<String, f32>,
    #[prost(uint32, tag = "9")]
    pub observation_window_epochs: u32,
    #[prost(message, optional, tag = "10")]
    pub issued_at: Option<Timestamp>,
    #[prost(string, tag = "11")]
    pub tamiyo_policy_version: String,
    #[prost(message, repeated, tag = "12")]
    pub follow_up_actions: Vec<FollowUpAction>,
    #[prost(string, tag = "13")]
    pub notes: String,
}

impl Contract for FieldReport {
    const NAME: &'static str = "FieldReport";
    const MESSAGE_TYPE: BusMessageType = BusMessageType::FieldReport;

    fn check_enums(&self) -> Result<(), UnknownEnum> {
        closed::<FieldReportOutcome>("outcome", self.outcome)
    }
}
