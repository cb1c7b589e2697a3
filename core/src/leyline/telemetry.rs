//! `TelemetryPacket`: what every subsystem tells Nissa, one packet per epoch or event.

use std::collections::BTreeMap;

use super::codec::{Contract, UnknownEnum, closed};
use super::{BusMessageType, HealthStatus, MessagePriority, TelemetryLevel, Timestamp};

/// One named measurement, e.g. `tolaria.training.loss`.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct MetricPoint {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(string, tag = "3")]
    pub unit: String,
    #[prost(btree_map = "string, string", tag = "4")]
    pub attributes: BTreeMap<String, String>,
}

impl MetricPoint {
    /// A metric without attributes.
    pub fn new(name: impl Into<String>, value: f64, unit: impl Into<String>) -> Self {
        Self { name: name.into(), value, unit: unit.into(), attributes: BTreeMap::new() }
    }
}

/// Something that happened, e.g. `tolaria.tamiyo_timeout`.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct TelemetryEvent {
    #[prost(string, tag = "1")]
    pub event_id: String,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(enumeration = "TelemetryLevel", tag = "3")]
    pub level: i32,
    #[prost(btree_map = "string, string", tag = "4")]
    pub attributes: BTreeMap<String, String>,
}

/// Longest attribute value kept by [`TelemetryEvent::named`], so that any single
/// event fits a 280-byte packet.
pub const EVENT_ATTRIBUTE_MAX_CHARS: usize = 48;

impl TelemetryEvent {
    /// An event named as Esper-Lite's (`tolaria.tamiyo_timeout`, `seed_stage`, …): the
    /// name goes in `description`, attribute values are cut to 48 characters.
    pub fn named(name: &str, level: TelemetryLevel, attributes: &[(&str, String)]) -> Self {
        Self {
            description: name.to_owned(),
            level: level.into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.chars().take(EVENT_ATTRIBUTE_MAX_CHARS).collect()))
                .collect(),
            ..Self::default()
        }
    }
}

/// The sender's own health. The original kept the packet's bus priority in
/// `indicators["priority"]`; [`TelemetryPacket::priority`] derives it instead.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct SystemHealth {
    #[prost(enumeration = "HealthStatus", tag = "1")]
    pub status: i32,
    #[prost(string, tag = "2")]
    pub summary: String,
    #[prost(btree_map = "string, string", tag = "3")]
    pub indicators: BTreeMap<String, String>,
}

/// Metrics and events from one subsystem. Tag 30 (`spans`) is left unused: the
/// original declared it but never filled it. Tags 5 and 6 (`part`, `parts`) are
/// Esper's addition for telemetry split across packets (see
/// [`super::budget`]); the original's decoders skip them as unknown fields.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct TelemetryPacket {
    #[prost(string, tag = "1")]
    pub packet_id: String,
    #[prost(message, optional, tag = "2")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "3")]
    pub source_subsystem: String,
    #[prost(enumeration = "TelemetryLevel", tag = "4")]
    pub level: i32,
    /// This packet's place (1-based) among the parts of a split packet; 0 when
    /// the telemetry was not split.
    #[prost(uint32, tag = "5")]
    #[serde(default, skip_serializing_if = "is_zero")]
    pub part: u32,
    /// How many parts the telemetry was split into; 0 when it was not.
    #[prost(uint32, tag = "6")]
    #[serde(default, skip_serializing_if = "is_zero")]
    pub parts: u32,
    #[prost(message, repeated, tag = "10")]
    pub metrics: Vec<MetricPoint>,
    #[prost(message, repeated, tag = "20")]
    pub events: Vec<TelemetryEvent>,
    #[prost(message, optional, tag = "40")]
    pub system_health: Option<SystemHealth>,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

impl TelemetryPacket {
    /// Bus priority as Esper-Lite derived it from the events: any CRITICAL event makes
    /// the packet CRITICAL, WARNING or ERROR makes it HIGH, anything else NORMAL.
    pub fn priority(&self) -> MessagePriority {
        let worst = self.events.iter().filter_map(|e| TelemetryLevel::try_from(e.level).ok()).max();
        match worst {
            Some(TelemetryLevel::Critical) => MessagePriority::Critical,
            Some(TelemetryLevel::Warning | TelemetryLevel::Error) => MessagePriority::High,
            _ => MessagePriority::Normal,
        }
    }

    /// The value of the first metric called `name`, if present.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.iter().find(|m| m.name == name).map(|m| m.value)
    }
}

impl Contract for TelemetryPacket {
    const NAME: &'static str = "TelemetryPacket";
    const MESSAGE_TYPE: BusMessageType = BusMessageType::Telemetry;

    fn check_enums(&self) -> Result<(), UnknownEnum> {
        closed::<TelemetryLevel>("level", self.level)?;
        for event in &self.events {
            closed::<TelemetryLevel>("events.level", event.level)?;
        }
        match &self.system_health {
            Some(health) => closed::<HealthStatus>("system_health.status", health.status),
            None => Ok(()),
        }
    }
}
