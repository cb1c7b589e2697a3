//! `StreamConfig`: which streams Oona uses and the numbers that bound it.
//!
//! Defaults are Esper-Lite's (`src/esper/oona/messaging.py`, `core/config.py`);
//! the stream names and the two emergency settings can be overridden by the same
//! environment variables the original reads.

use std::time::Duration;

use crate::planted::Planted;

/// Env var overriding [`StreamConfig::normal_stream`].
pub const NORMAL_STREAM_ENV: &str = "OONA_NORMAL_STREAM";
/// Env var overriding [`StreamConfig::emergency_stream`].
pub const EMERGENCY_STREAM_ENV: &str = "OONA_EMERGENCY_STREAM";
/// Env var overriding [`StreamConfig::telemetry_stream`].
pub const TELEMETRY_STREAM_ENV: &str = "OONA_TELEMETRY_STREAM";
/// Env var overriding [`StreamConfig::policy_stream`].
pub const POLICY_STREAM_ENV: &str = "OONA_POLICY_STREAM";
/// Env var overriding [`StreamConfig::emergency_threshold`].
pub const EMERGENCY_THRESHOLD_ENV: &str = "OONA_EMERGENCY_THRESHOLD";
/// Env var overriding [`StreamConfig::emergency_max_per_min`].
pub const EMERGENCY_MAX_PER_MIN_ENV: &str = "OONA_EMERGENCY_MAX_PER_MIN";

/// Streams, group, thresholds and timing. See the field docs for each default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// State, commands, field reports: `oona.normal`.
    pub normal_stream: String,
    /// High-priority traffic and reroutes: `oona.emergency`.
    pub emergency_stream: String,
    /// Telemetry packets: `oona.telemetry`.
    pub telemetry_stream: String,
    /// Policy updates: `oona.policy`.
    pub policy_stream: String,
    /// Kasmina's kernel prefetch requests to Urza: `oona.kernels.requests`.
    pub kernel_request_stream: String,
    /// Urza's answers (ready and error alike, so one blocking read sees every
    /// answer in order; Esper-Lite split errors onto a third stream):
    /// `oona.kernels.ready`.
    pub kernel_reply_stream: String,
    /// Where unusable entries go: `oona.deadletter`.
    pub dead_letter_stream: String,
    /// Consumer group: `oona`.
    pub group: String,
    /// This client's consumer name: `oona-client`.
    pub consumer: String,
    /// Normal-stream depth from which publishes go to the emergency stream: 4000.
    pub emergency_threshold: u64,
    /// Normal- (and kernel-request-) stream depth from which non-critical
    /// publishes are dropped: 8000.
    pub backpressure_drop_threshold: u64,
    /// `MAXLEN ~` applied to normal-stream XADDs; `None` (the default) never trims.
    pub max_stream_length: Option<u64>,
    /// Emergency token bucket refill, tokens per minute: 120.
    pub emergency_max_per_min: u32,
    /// Emergency token bucket capacity (it starts full): 120.
    pub emergency_burst: u32,
    /// Entries read per XREADGROUP: 1.
    pub read_count: u32,
    /// XREADGROUP BLOCK: 1 s (zero reads without blocking).
    pub block: Duration,
    /// Pending entries idle this long are reclaimed by XAUTOCLAIM: 60 s.
    pub retry_idle: Duration,
    /// Least time between two XAUTOCLAIM sweeps of one stream: zero (before
    /// every read, as Esper-Lite). A reader whose handler never fails (nothing
    /// to reclaim but a crashed peer's entries) can sweep less often and save a
    /// round trip per read.
    pub claim_interval: Duration,
    /// Entries reclaimed per XAUTOCLAIM: 50.
    pub retry_batch_size: u32,
    /// Deliveries after which a failing entry is dead-lettered: 5.
    pub retry_max_attempts: u64,
    /// Deadline for one non-blocking command (blocking reads get `block` more): 5 s.
    pub command_timeout: Duration,
    /// First reconnect delay: 50 ms; it doubles per failed attempt.
    pub reconnect_base: Duration,
    /// Largest reconnect delay: 5 s.
    pub reconnect_cap: Duration,
    /// Connect attempts one call makes before it reports the bus unavailable: 8.
    pub reconnect_attempts: u32,
    /// How long after its XADD a critical message may still be lost by a Redis
    /// crash (Redis's `appendfsync everysec` loses up to a second; twice that): 2 s.
    pub durability_window: Duration,
    /// Critical messages held for re-publication at most: 10 000.
    pub outbox_capacity: usize,
    /// Redelivered entry ids remembered as already verified: 4096.
    pub verified_cache: usize,
    /// The planted bug a drill arms (test builds only; see [`crate::planted`]).
    pub planted: Planted,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            normal_stream: "oona.normal".to_owned(),
            emergency_stream: "oona.emergency".to_owned(),
            telemetry_stream: "oona.telemetry".to_owned(),
            policy_stream: "oona.policy".to_owned(),
            kernel_request_stream: "oona.kernels.requests".to_owned(),
            kernel_reply_stream: "oona.kernels.ready".to_owned(),
            dead_letter_stream: "oona.deadletter".to_owned(),
            group: "oona".to_owned(),
            consumer: "oona-client".to_owned(),
            emergency_threshold: 4_000,
            backpressure_drop_threshold: 8_000,
            max_stream_length: None,
            emergency_max_per_min: 120,
            emergency_burst: 120,
            read_count: 1,
            block: Duration::from_secs(1),
            retry_idle: Duration::from_secs(60),
            claim_interval: Duration::ZERO,
            retry_batch_size: 50,
            retry_max_attempts: 5,
            command_timeout: Duration::from_secs(5),
            reconnect_base: Duration::from_millis(50),
            reconnect_cap: Duration::from_secs(5),
            reconnect_attempts: 8,
            durability_window: Duration::from_secs(2),
            outbox_capacity: 10_000,
            verified_cache: 4_096,
            planted: Planted::NONE,
        }
    }
}

/// An environment variable that holds an unusable value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamConfigError {
    #[error("{var}={value:?} is not a whole number ({expected})")]
    NotANumber { var: &'static str, value: String, expected: &'static str },
    #[error("{var} is set but empty; unset it to use the default stream name")]
    EmptyName { var: &'static str },
    #[error(
        "emergency_threshold {emergency} must be below backpressure_drop_threshold {drop}, or reroutes never happen"
    )]
    ThresholdOrder { emergency: u64, drop: u64 },
}

impl StreamConfig {
    /// The defaults with `OONA_*` overrides from `lookup` (the process environment in
    /// the real profile, a map in tests; core itself never reads the environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, StreamConfigError> {
        let mut config = Self::default();
        let names = [
            (NORMAL_STREAM_ENV, &mut config.normal_stream),
            (EMERGENCY_STREAM_ENV, &mut config.emergency_stream),
            (TELEMETRY_STREAM_ENV, &mut config.telemetry_stream),
            (POLICY_STREAM_ENV, &mut config.policy_stream),
        ];
        for (var, slot) in names {
            if let Some(value) = lookup(var) {
                if value.is_empty() {
                    return Err(StreamConfigError::EmptyName { var });
                }
                *slot = value;
            }
        }
        if let Some(value) = lookup(EMERGENCY_THRESHOLD_ENV) {
            config.emergency_threshold = number(EMERGENCY_THRESHOLD_ENV, &value, "a queue depth")?;
        }
        if let Some(value) = lookup(EMERGENCY_MAX_PER_MIN_ENV) {
            let per_min = number(EMERGENCY_MAX_PER_MIN_ENV, &value, "messages per minute")?;
            config.emergency_max_per_min = u32::try_from(per_min).map_err(|_| StreamConfigError::NotANumber {
                var: EMERGENCY_MAX_PER_MIN_ENV,
                value,
                expected: "messages per minute, at most 4294967295",
            })?;
            config.emergency_burst = config.emergency_max_per_min;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the relations between settings.
    pub fn validate(&self) -> Result<(), StreamConfigError> {
        if self.emergency_threshold >= self.backpressure_drop_threshold {
            return Err(StreamConfigError::ThresholdOrder {
                emergency: self.emergency_threshold,
                drop: self.backpressure_drop_threshold,
            });
        }
        Ok(())
    }
}

fn number(var: &'static str, value: &str, expected: &'static str) -> Result<u64, StreamConfigError> {
    value.trim().parse().map_err(|_| StreamConfigError::NotANumber { var, value: value.to_owned(), expected })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |var| pairs.iter().find(|(name, _)| *name == var).map(|(_, value)| (*value).to_owned())
    }

    #[test]
    fn env_overrides_names_and_emergency_settings() {
        let config = StreamConfig::from_lookup(lookup(&[
            (NORMAL_STREAM_ENV, "n"),
            (POLICY_STREAM_ENV, "p"),
            (EMERGENCY_THRESHOLD_ENV, "10"),
            (EMERGENCY_MAX_PER_MIN_ENV, "6"),
        ]))
        .expect("valid overrides");
        assert_eq!((config.normal_stream.as_str(), config.policy_stream.as_str()), ("n", "p"));
        assert_eq!(config.emergency_stream, "oona.emergency");
        assert_eq!((config.emergency_threshold, config.emergency_max_per_min, config.emergency_burst), (10, 6, 6));
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let error = StreamConfig::from_lookup(lookup(&[(EMERGENCY_THRESHOLD_ENV, "lots")])).expect_err("not a number");
        assert!(error.to_string().contains(EMERGENCY_THRESHOLD_ENV), "{error}");
        let error = StreamConfig::from_lookup(lookup(&[(EMERGENCY_THRESHOLD_ENV, "9000")])).expect_err("order");
        assert_eq!(error, StreamConfigError::ThresholdOrder { emergency: 9000, drop: 8000 });
        let error = StreamConfig::from_lookup(lookup(&[(TELEMETRY_STREAM_ENV, "")])).expect_err("empty");
        assert_eq!(error, StreamConfigError::EmptyName { var: TELEMETRY_STREAM_ENV });
    }
}
