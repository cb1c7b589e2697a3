//! Logs for real runs: `esper up` (and the real profile's long-running commands)
//! install a `tracing-subscriber` that writes every event to stderr with its
//! wall-clock timestamp, level and target, as text or as one JSON object a line.
//!
//! Sim runs never install it: their events go to the world's own subscriber,
//! which folds them into the canonical trace with sim time and no wall clock.
//! The filter is `--log-level` when given, else `RUST_LOG`, else `info`, in
//! `EnvFilter` syntax (`warn`, `esper_core::oona=debug,info`).

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

use crate::exit::{CommandError, Tag as _};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-12-02T09:31:12.123456Z  WARN esper_core::oona: message key=value`.
    Text,
    /// `{"timestamp":…,"level":…,"target":…,"fields":{…}}`, one object a line.
    Json,
}

/// The logging flags of a real-profile command.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Which events to log, in `RUST_LOG` syntax (`info`, `warn,esper_core::oona=debug`);
    /// overrides `RUST_LOG`. Default: `RUST_LOG`, else `info`.
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// text or json (one JSON object a line, with `timestamp`, `level`, `target`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Installs the process-wide subscriber. A filter that does not parse is a usage
/// error (exit 2).
pub fn install(args: &LogArgs) -> Result<(), CommandError> {
    let directives = match &args.log_level {
        Some(level) => level.clone(),
        None => {
            std::env::var("RUST_LOG").ok().filter(|value| !value.trim().is_empty()).unwrap_or_else(|| "info".to_owned())
        }
    };
    let filter = EnvFilter::try_new(&directives)
        .with_context(|| format!("--log-level / RUST_LOG {directives:?} is not a tracing filter"))
        .input()?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true).with_writer(std::io::stderr);
    let installed = match args.log_format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|error| anyhow::anyhow!("installing the log subscriber: {error}")).runtime()?;
    Ok(())
}
