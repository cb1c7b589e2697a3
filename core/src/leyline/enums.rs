//! Leyline's enumerations, with the wire numbers of `esper.leyline.v1`.
//!
//! Protobuf enums are open on the wire: a peer may send any `i32`. Leyline's are
//! closed — every message checks its enum fields after decoding (see
//! [`super::codec::Contract`]) — so each enum here exposes `try_from(i32)` and the
//! protobuf name used in JSON reports and logs.

/// Declares a closed Leyline enum: the prost derive for the wire, plus the
/// `SCREAMING_CASE` protobuf name of each value for humans.
macro_rules! leyline_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal => $proto:literal,)+ }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
        #[derive(serde::Serialize, serde::Deserialize)]
        #[repr(i32)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $proto)] $variant = $value,)+
        }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The protobuf name, e.g. `SEED_STAGE_DORMANT`.
            pub fn as_str_name(self) -> &'static str {
                match self {
                    $($name::$variant => $proto,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str_name())
            }
        }
    };
}

leyline_enum! {
    /// Where a Kasmina seed is in its life.
    pub enum SeedLifecycleStage {
        Unknown = 0 => "SEED_STAGE_UNKNOWN",
        Dormant = 1 => "SEED_STAGE_DORMANT",
        Germinated = 2 => "SEED_STAGE_GERMINATED",
        Training = 3 => "SEED_STAGE_TRAINING",
        Blending = 4 => "SEED_STAGE_BLENDING",
        Shadowing = 5 => "SEED_STAGE_SHADOWING",
        Probationary = 6 => "SEED_STAGE_PROBATIONARY",
        Fossilized = 7 => "SEED_STAGE_FOSSILIZED",
        Culled = 8 => "SEED_STAGE_CULLED",
        Embargoed = 9 => "SEED_STAGE_EMBARGOED",
        Resetting = 10 => "SEED_STAGE_RESETTING",
        Terminated = 11 => "SEED_STAGE_TERMINATED",
    }
}

leyline_enum! {
    /// The gate a seed must pass to enter the next stage.
    pub enum SeedLifecycleGate {
        Unknown = 0 => "SEED_GATE_UNKNOWN",
        G0Sanity = 1 => "SEED_GATE_G0_SANITY",
        G1GradientHealth = 2 => "SEED_GATE_G1_GRADIENT_HEALTH",
        G2Stability = 3 => "SEED_GATE_G2_STABILITY",
        G3Interface = 4 => "SEED_GATE_G3_INTERFACE",
        G4SystemImpact = 5 => "SEED_GATE_G4_SYSTEM_IMPACT",
        G5Reset = 6 => "SEED_GATE_G5_RESET",
    }
}

leyline_enum! {
    /// Coarse health of a subsystem or a seed.
    pub enum HealthStatus {
        Unknown = 0 => "HEALTH_STATUS_UNKNOWN",
        Healthy = 1 => "HEALTH_STATUS_HEALTHY",
        Degraded = 2 => "HEALTH_STATUS_DEGRADED",
        Unhealthy = 3 => "HEALTH_STATUS_UNHEALTHY",
        Critical = 4 => "HEALTH_STATUS_CRITICAL",
    }
}

leyline_enum! {
    /// Circuit-breaker state as carried in commands and telemetry.
    pub enum CircuitBreakerState {
        Unknown = 0 => "CIRCUIT_STATE_UNKNOWN",
        Closed = 1 => "CIRCUIT_STATE_CLOSED",
        Open = 2 => "CIRCUIT_STATE_OPEN",
        HalfOpen = 3 => "CIRCUIT_STATE_HALF_OPEN",
    }
}

leyline_enum! {
    /// What an [`super::AdaptationCommand`] asks for.
    pub enum CommandType {
        Unknown = 0 => "COMMAND_UNKNOWN",
        Seed = 1 => "COMMAND_SEED",
        Rollback = 2 => "COMMAND_ROLLBACK",
        Optimizer = 3 => "COMMAND_OPTIMIZER",
        CircuitBreaker = 4 => "COMMAND_CIRCUIT_BREAKER",
        Pause = 5 => "COMMAND_PAUSE",
        Emergency = 6 => "COMMAND_EMERGENCY",
        StructuralPruning = 7 => "COMMAND_STRUCTURAL_PRUNING",
    }
}

leyline_enum! {
    /// The seed operation inside a `COMMAND_SEED`.
    pub enum SeedOperation {
        Unknown = 0 => "SEED_OP_UNKNOWN",
        Germinate = 1 => "SEED_OP_GERMINATE",
        StartTraining = 2 => "SEED_OP_START_TRAINING",
        StartGrafting = 3 => "SEED_OP_START_GRAFTING",
        Stabilize = 4 => "SEED_OP_STABILIZE",
        Evaluate = 5 => "SEED_OP_EVALUATE",
        FineTune = 6 => "SEED_OP_FINE_TUNE",
        Fossilize = 7 => "SEED_OP_FOSSILIZE",
        Cull = 8 => "SEED_OP_CULL",
        Cancel = 9 => "SEED_OP_CANCEL",
    }
}

leyline_enum! {
    /// Delivery priority on the Oona bus; `Critical` is never dropped by backpressure.
    pub enum MessagePriority {
        Unspecified = 0 => "MESSAGE_PRIORITY_UNSPECIFIED",
        Low = 1 => "MESSAGE_PRIORITY_LOW",
        Normal = 2 => "MESSAGE_PRIORITY_NORMAL",
        High = 3 => "MESSAGE_PRIORITY_HIGH",
        Critical = 4 => "MESSAGE_PRIORITY_CRITICAL",
    }
}

leyline_enum! {
    /// Severity of a telemetry packet or event.
    pub enum TelemetryLevel {
        Unspecified = 0 => "TELEMETRY_LEVEL_UNSPECIFIED",
        Info = 1 => "TELEMETRY_LEVEL_INFO",
        Warning = 2 => "TELEMETRY_LEVEL_WARNING",
        Error = 3 => "TELEMETRY_LEVEL_ERROR",
        Critical = 4 => "TELEMETRY_LEVEL_CRITICAL",
    }
}

leyline_enum! {
    /// Tolaria's emergency ladder: L1 notice up to L4 halt.
    pub enum EmergencyLevel {
        Unspecified = 0 => "EMERGENCY_LEVEL_UNSPECIFIED",
        Notice = 1 => "EMERGENCY_LEVEL_NOTICE",
        Elevated = 2 => "EMERGENCY_LEVEL_ELEVATED",
        Conservative = 3 => "EMERGENCY_LEVEL_CONSERVATIVE",
        Halt = 4 => "EMERGENCY_LEVEL_HALT",
    }
}

leyline_enum! {
    /// How an adaptation worked out, as judged by Tamiyo.
    pub enum FieldReportOutcome {
        Unspecified = 0 => "FIELD_REPORT_OUTCOME_UNSPECIFIED",
        Success = 1 => "FIELD_REPORT_OUTCOME_SUCCESS",
        Neutral = 2 => "FIELD_REPORT_OUTCOME_NEUTRAL",
        Regression = 3 => "FIELD_REPORT_OUTCOME_REGRESSION",
        Aborted = 4 => "FIELD_REPORT_OUTCOME_ABORTED",
    }
}

leyline_enum! {
    /// Karn's risk tier for a blueprint.
    pub enum BlueprintTier {
        Unspecified = 0 => "BLUEPRINT_TIER_UNSPECIFIED",
        Safe = 1 => "BLUEPRINT_TIER_SAFE",
        Experimental = 2 => "BLUEPRINT_TIER_EXPERIMENTAL",
        HighRisk = 3 => "BLUEPRINT_TIER_HIGH_RISK",
    }
}

leyline_enum! {
    /// What a [`super::BusEnvelope`] carries; the numbering has a gap at 11–19.
    pub enum BusMessageType {
        Unspecified = 0 => "BUS_MESSAGE_TYPE_UNSPECIFIED",
        SystemState = 1 => "BUS_MESSAGE_TYPE_SYSTEM_STATE",
        AdaptationCommand = 2 => "BUS_MESSAGE_TYPE_ADAPTATION_COMMAND",
        FieldReport = 3 => "BUS_MESSAGE_TYPE_FIELD_REPORT",
        Telemetry = 4 => "BUS_MESSAGE_TYPE_TELEMETRY",
        PolicyUpdate = 5 => "BUS_MESSAGE_TYPE_POLICY_UPDATE",
        KernelPrefetchRequest = 6 => "BUS_MESSAGE_TYPE_KERNEL_PREFETCH_REQUEST",
        KernelPrefetchReady = 7 => "BUS_MESSAGE_TYPE_KERNEL_PREFETCH_READY",
        KernelPrefetchError = 8 => "BUS_MESSAGE_TYPE_KERNEL_PREFETCH_ERROR",
        KernelCatalogUpdate = 9 => "BUS_MESSAGE_TYPE_KERNEL_CATALOG_UPDATE",
        EmergencySignal = 10 => "BUS_MESSAGE_TYPE_EMERGENCY_SIGNAL",
        BsdsIssued = 20 => "BUS_MESSAGE_TYPE_BSDS_ISSUED",
        BsdsFailed = 21 => "BUS_MESSAGE_TYPE_BSDS_FAILED",
        BenchmarkReport = 22 => "BUS_MESSAGE_TYPE_BENCHMARK_REPORT",
    }
}
