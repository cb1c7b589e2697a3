//! `NissaConfig`: ports, rule choices, SLO windows, bounds; `NISSA_*` overrides.

use std::time::Duration;

use super::alerts::{PrefetchRule, TrainingLatencyRule};
use super::slo::{parse_window, window_label};

/// Env var overriding [`NissaConfig::port`].
pub const PORT_ENV: &str = "NISSA_PORT";
/// Env var choosing [`NissaConfig::training_latency_rule`]: `rc1` or `runbook`.
pub const LATENCY_RULE_ENV: &str = "NISSA_TRAINING_LATENCY_RULE";
/// Env var choosing [`NissaConfig::prefetch_rule`]: `rc1` or `operator`.
pub const PREFETCH_RULE_ENV: &str = "NISSA_PREFETCH_RULE";
/// Env var overriding [`NissaConfig::slo_windows`]: comma-separated, e.g. `5m,1h,30d`.
pub const SLO_WINDOWS_ENV: &str = "NISSA_SLO_WINDOWS";
/// Env var setting [`NissaConfig::elasticsearch`]: `http://host:port`.
pub const ELASTICSEARCH_URL_ENV: &str = "NISSA_ELASTICSEARCH_URL";

/// Where the Elasticsearch-compatible index lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexUrl {
    pub host: String,
    pub port: u16,
}

impl IndexUrl {
    /// Parses `http://host[:port][/]` (port 9200 by default). TLS is not spoken.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.trim().strip_prefix("http://")?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('@') {
            return None;
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().ok()?),
            None => (rest, 9_200),
        };
        (!host.is_empty()).then(|| Self { host: host.to_owned(), port })
    }
}

/// Nissa's settings. See each field for its default.
#[derive(Debug, Clone, PartialEq)]
pub struct NissaConfig {
    /// HTTP port: 9100.
    pub port: u16,
    /// Thresholds for `training_latency_high`: RC1's.
    pub training_latency_rule: TrainingLatencyRule,
    /// Thresholds for the Kasmina prefetch alert: RC1's.
    pub prefetch_rule: PrefetchRule,
    /// SLO burn-rate windows: 5 m, 1 h, 30 d (Esper-Lite's 720 h).
    pub slo_windows: Vec<Duration>,
    /// Samples kept per SLO: 100 000.
    pub slo_max_samples: usize,
    /// SLOs tracked: 64.
    pub slo_max_count: usize,
    /// Distinct ingested metric names exported: 512.
    pub max_metric_names: usize,
    /// Distinct `source` labels: 32 (then `other`).
    pub max_sources: usize,
    /// Largest HTTP request body accepted: 64 KiB (larger ones get 413).
    pub max_request_bytes: u64,
    /// hyper's `header_read_timeout`: a connection must deliver a whole request
    /// head this soon after it opens or it is closed — a slowloris client cannot
    /// hold it: 10 s.
    pub http_header_read_timeout: Duration,
    /// The idle keep-alive timeout (Go's `IdleTimeout`; hyper's server has no
    /// such switch): a kept-alive connection that sends no next request this
    /// long after its last answer is closed (counted): 5 s.
    pub http_keep_alive_timeout: Duration,
    /// HTTP connections served at once; at the cap a new one closes the oldest
    /// (counted), so idle sockets cannot lock out a scrape: 256.
    pub http_max_connections: usize,
    /// Notifications kept for `/metrics/summary`: 200.
    pub notification_log: usize,
    /// Elasticsearch-compatible index; `None` keeps documents in memory.
    pub elasticsearch: Option<IndexUrl>,
    /// Documents kept per index by the in-memory index: 10 000.
    pub memory_index_capacity: usize,
    /// Consumer group creation attempts before the loop backs off and retries: 5.
    pub group_create_attempts: u32,
    /// Pause after a failed round before the next, doubling up to 5 s: 100 ms.
    pub retry_base: Duration,
    /// Largest pause between failed rounds: 5 s.
    pub retry_cap: Duration,
}

impl Default for NissaConfig {
    fn default() -> Self {
        Self {
            port: 9_100,
            training_latency_rule: TrainingLatencyRule::Rc1,
            prefetch_rule: PrefetchRule::Rc1,
            slo_windows: vec![Duration::from_secs(300), Duration::from_secs(3_600), Duration::from_secs(30 * 86_400)],
            slo_max_samples: 100_000,
            slo_max_count: 64,
            max_metric_names: 512,
            max_sources: 32,
            max_request_bytes: 64 * 1024,
            http_header_read_timeout: Duration::from_secs(10),
            http_keep_alive_timeout: Duration::from_secs(5),
            http_max_connections: 256,
            notification_log: 200,
            elasticsearch: None,
            memory_index_capacity: 10_000,
            group_create_attempts: 5,
            retry_base: Duration::from_millis(100),
            retry_cap: Duration::from_secs(5),
        }
    }
}

/// An environment variable with an unusable value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NissaConfigError {
    #[error("{var}={value:?} is not valid: expected {expected}")]
    Invalid { var: &'static str, value: String, expected: &'static str },
}

impl NissaConfig {
    /// The defaults with `NISSA_*` overrides from `lookup` (the process environment in
    /// the real profile; core itself never reads the environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, NissaConfigError> {
        let mut config = Self::default();
        let invalid = |var, value: &str, expected| NissaConfigError::Invalid { var, value: value.to_owned(), expected };
        if let Some(value) = lookup(PORT_ENV) {
            config.port = value.trim().parse().map_err(|_| invalid(PORT_ENV, &value, "a TCP port, 0-65535"))?;
        }
        if let Some(value) = lookup(LATENCY_RULE_ENV) {
            config.training_latency_rule = match value.trim() {
                "rc1" => TrainingLatencyRule::Rc1,
                "runbook" => TrainingLatencyRule::Runbook,
                _ => return Err(invalid(LATENCY_RULE_ENV, &value, "rc1 (350/800 ms) or runbook (18 ms)")),
            };
        }
        if let Some(value) = lookup(PREFETCH_RULE_ENV) {
            config.prefetch_rule = match value.trim() {
                "rc1" => PrefetchRule::Rc1,
                "operator" => PrefetchRule::Operator,
                _ => return Err(invalid(PREFETCH_RULE_ENV, &value, "rc1 (45/60 ms) or operator (120/180 ms)")),
            };
        }
        if let Some(value) = lookup(SLO_WINDOWS_ENV) {
            let windows: Option<Vec<Duration>> = value.split(',').map(parse_window).collect();
            config.slo_windows = windows
                .filter(|windows| !windows.is_empty())
                .ok_or_else(|| invalid(SLO_WINDOWS_ENV, &value, "comma-separated windows such as 5m,1h,30d"))?;
        }
        if let Some(value) = lookup(ELASTICSEARCH_URL_ENV) {
            let url = IndexUrl::parse(&value)
                .ok_or_else(|| invalid(ELASTICSEARCH_URL_ENV, &value, "http://host[:port] (no path, no TLS)"))?;
            config.elasticsearch = Some(url);
        }
        Ok(config)
    }

    /// The SLO windows as labels, shortest first.
    pub fn slo_window_labels(&self) -> Vec<String> {
        let mut windows = self.slo_windows.clone();
        windows.sort();
        windows.into_iter().map(window_label).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |var| pairs.iter().find(|(name, _)| *name == var).map(|(_, value)| (*value).to_owned())
    }

    #[test]
    fn overrides_apply() {
        let config = NissaConfig::from_lookup(lookup(&[
            (PORT_ENV, "9200"),
            (LATENCY_RULE_ENV, "runbook"),
            (PREFETCH_RULE_ENV, "operator"),
            (SLO_WINDOWS_ENV, "10s,1m"),
            (ELASTICSEARCH_URL_ENV, "http://es.local:9201/"),
        ]))
        .expect("valid");
        assert_eq!(config.port, 9200);
        assert_eq!(
            (config.training_latency_rule, config.prefetch_rule),
            (TrainingLatencyRule::Runbook, PrefetchRule::Operator)
        );
        assert_eq!(config.slo_window_labels(), ["10s", "1m"]);
        assert_eq!(config.elasticsearch, Some(IndexUrl { host: "es.local".into(), port: 9201 }));
        assert_eq!(NissaConfig::default().slo_window_labels(), ["5m", "1h", "30d"]);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            (PORT_ENV, "99999"),
            (LATENCY_RULE_ENV, "fast"),
            (PREFETCH_RULE_ENV, ""),
            (SLO_WINDOWS_ENV, "5m,,1h"),
            (ELASTICSEARCH_URL_ENV, "https://es:9200"),
            (ELASTICSEARCH_URL_ENV, "http://es:9200/index"),
        ] {
            let error = NissaConfig::from_lookup(lookup(&[(var, value)])).expect_err(value);
            assert!(error.to_string().contains(var), "{error}");
        }
    }
}
