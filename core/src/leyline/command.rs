//! Tamiyo's decision: the `AdaptationCommand` Tolaria applies through Kasmina.

use std::collections::BTreeMap;

use super::codec::{Contract, UnknownEnum, closed};
use super::{BusMessageType, CircuitBreakerState, CommandType, SeedOperation, Timestamp};

/// A seed operation (`COMMAND_SEED`): germinate a blueprint, cull, and so on.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct CommandSeedOperation {
    #[prost(enumeration = "SeedOperation", tag = "1")]
    pub operation: i32,
    #[prost(string, tag = "2")]
    pub blueprint_id: String,
    #[prost(btree_map = "string, float", tag = "3")]
    pub parameters: BTreeMap<String, f32>,
}

/// An optimizer change (`COMMAND_OPTIMIZER`), e.g. `lr_delta`.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct CommandOptimizerAdjustment {
    #[prost(string, tag = "1")]
    pub optimizer_id: String,
    #[prost(btree_map = "string, float", tag = "2")]
    pub hyperparameters: BTreeMap<String, f32>,
}

/// A breaker change (`COMMAND_CIRCUIT_BREAKER`).
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct CommandCircuitBreaker {
    #[prost(enumeration = "CircuitBreakerState", tag = "1")]
    pub desired_state: i32,
    #[prost(string, tag = "2")]
    pub rationale: String,
}

/// A rollback request (`COMMAND_ROLLBACK`). The original carried a free-form
/// `google.protobuf.Struct` here; a typed message keeps the contract closed.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct CommandRollback {
    #[prost(uint64, tag = "1")]
    pub target_step: u64,
    #[prost(string, tag = "2")]
    pub reason: String,
}

/// The body of a command; which one is present follows `command_type`.
#[derive(Clone, PartialEq, prost::Oneof, serde::Serialize, serde::Deserialize)]
pub enum CommandPayload {
    #[prost(message, tag = "10")]
    SeedOperation(CommandSeedOperation),
    #[prost(message, tag = "11")]
    OptimizerAdjustment(CommandOptimizerAdjustment),
    #[prost(message, tag = "12")]
    CircuitBreaker(CommandCircuitBreaker),
    #[prost(message, tag = "13")]
    Rollback(CommandRollback),
}

/// One adaptation decision. `annotations` carries `risk_reason`, `policy_version` and
/// similar free-form notes.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct AdaptationCommand {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(string, tag = "2")]
    pub command_id: String,
    #[prost(enumeration = "CommandType", tag = "3")]
    pub command_type: i32,
    #[prost(string, tag = "4")]
    pub target_seed_id: String,
    #[prost(uint32, tag = "5")]
    pub execution_deadline_ms: u32,
    #[prost(message, optional, tag = "6")]
    pub issued_at: Option<Timestamp>,
    #[prost(string, tag = "7")]
    pub issued_by: String,
    #[prost(oneof = "CommandPayload", tags = "10, 11, 12, 13")]
    pub payload: Option<CommandPayload>,
    #[prost(btree_map = "string, string", tag = "20")]
    pub annotations: BTreeMap<String, String>,
}

impl Contract for AdaptationCommand {
    const NAME: &'static str = "AdaptationCommand";
    const MESSAGE_TYPE: BusMessageType = BusMessageType::AdaptationCommand;

    fn check_enums(&self) -> Result<(), UnknownEnum> {
        closed::<CommandType>("command_type", self.command_type)?;
        match &self.payload {
            Some(CommandPayload::SeedOperation(op)) => {
                closed::<SeedOperation>("seed_operation.operation", op.operation)
            }
            Some(CommandPayload::CircuitBreaker(cb)) => {
                closed::<CircuitBreakerState>("circuit_breaker.desired_state", cb.desired_state)
            }
            Some(CommandPayload::OptimizerAdjustment(_) | CommandPayload::Rollback(_)) | None => Ok(()),
        }
    }
}
