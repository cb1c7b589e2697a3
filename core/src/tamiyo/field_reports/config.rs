//! Where the store lives and how it behaves, from Esper-Lite's environment variables.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::wal::WalConfig;

use super::error::TamiyoPersistenceError;

/// The log's file name inside the store directory.
pub const LOG_FILE: &str = "field_reports.log";
/// The retry index sidecar's file name.
pub const INDEX_FILE: &str = "field_reports.index.json";
/// The observation windows sidecar's file name.
pub const WINDOWS_FILE: &str = "field_reports.windows.json";
/// Retention of reports, in hours of (sim) time.
pub const ENV_RETENTION_HOURS: &str = "TAMIYO_FIELD_REPORT_RETENTION_HOURS";
/// Strict WAL validation on load.
pub const ENV_STRICT_VALIDATION: &str = "TAMIYO_WAL_STRICT_VALIDATION";
/// Esper-Lite's default retention.
pub const DEFAULT_RETENTION_HOURS: u64 = 24;
/// Upper bound on the retention setting (one year), so the window stays meaningful.
const MAX_RETENTION_HOURS: u64 = 24 * 366;
/// Largest sidecar loaded (an index of ~100k reports).
pub(super) const SIDECAR_LIMIT_BYTES: u64 = 32 << 20;

/// How a [`super::FieldReportStore`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldReportConfig {
    /// Directory holding the log and the sidecars (Esper-Lite: `var/tamiyo`).
    pub dir: PathBuf,
    /// Reports issued longer ago than this are dropped.
    pub retention: Duration,
    /// The WAL's strictness and bounds.
    pub wal: WalConfig,
}

impl FieldReportConfig {
    /// Defaults (24 h retention, strict) for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            retention: Duration::from_secs(DEFAULT_RETENTION_HOURS * 3600),
            wal: WalConfig::with_strict(true),
        }
    }

    /// The defaults, overridden by `TAMIYO_FIELD_REPORT_RETENTION_HOURS` and
    /// `TAMIYO_WAL_STRICT_VALIDATION` as `lookup` returns them (pass
    /// `|name| std::env::var(name).ok()` in the real profile).
    pub fn from_env(
        dir: impl Into<PathBuf>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TamiyoPersistenceError> {
        let mut config = Self::new(dir);
        if let Some(value) = lookup(ENV_RETENTION_HOURS) {
            let hours = value.trim().parse::<u64>().ok().filter(|hours| (1..=MAX_RETENTION_HOURS).contains(hours));
            let hours = hours.ok_or_else(|| TamiyoPersistenceError::Config {
                name: ENV_RETENTION_HOURS,
                value: value.clone(),
                expected: "a whole number of hours from 1 to 8784",
            })?;
            config.retention = Duration::from_secs(hours * 3600);
        }
        if let Some(value) = lookup(ENV_STRICT_VALIDATION) {
            config.wal.strict = parse_flag(&value).ok_or_else(|| TamiyoPersistenceError::Config {
                name: ENV_STRICT_VALIDATION,
                value: value.clone(),
                expected: "one of 1/0, true/false, yes/no, on/off",
            })?;
        }
        Ok(config)
    }

    /// The log's path.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// The retry index's path.
    pub fn index_path(&self) -> PathBuf {
        self.dir.join(INDEX_FILE)
    }

    /// The windows sidecar's path.
    pub fn windows_path(&self) -> PathBuf {
        self.dir.join(WINDOWS_FILE)
    }

    /// The same store, moved to `dir`.
    pub fn in_dir(&self, dir: &Path) -> Self {
        Self { dir: dir.to_path_buf(), ..self.clone() }
    }
}

fn parse_flag(value: &str) -> Option<bool> {
    crate::env_config::flag(ENV_STRICT_VALIDATION, Some(value.to_owned())).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_esper_lite_variables_and_refuses_bad_values() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned())
        };
        let defaults = FieldReportConfig::from_env("var/tamiyo", env(&[])).expect("defaults");
        assert_eq!((defaults.retention.as_secs(), defaults.wal.strict), (24 * 3600, true));
        let set = FieldReportConfig::from_env("d", env(&[(ENV_RETENTION_HOURS, "2"), (ENV_STRICT_VALIDATION, "off")]))
            .expect("valid");
        assert_eq!((set.retention.as_secs(), set.wal.strict), (7200, false));
        let error = FieldReportConfig::from_env("d", env(&[(ENV_RETENTION_HOURS, "-1")])).expect_err("negative");
        assert!(error.to_string().contains("TAMIYO_FIELD_REPORT_RETENTION_HOURS"), "{error}");
        let error = FieldReportConfig::from_env("d", env(&[(ENV_STRICT_VALIDATION, "maybe")])).expect_err("flag");
        assert!(error.to_string().contains("maybe"), "{error}");
    }
}
