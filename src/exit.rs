//! How `esper` ends: the exit code says who has to act.
//!
//! 0: the command did what was asked and everything it judged passed. 1: a run
//! failed, diverged or was judged failing, or the command could not finish for a
//! reason outside the user's arguments (a server that cannot be reached, an I/O
//! error mid-run). 2: bad usage or unreadable input (clap's own errors, an unknown
//! scenario, a garbled failure file, baseline or run directory).
//!
//! The classification is carried by type, never read from message text: every
//! error a command returns is a [`CommandError`] whose [`ErrorKind`] was chosen
//! where it arose — by the library error's type ([`Classify`]) or, where one type
//! can mean either, by the call site ([`Tag`]). There is deliberately no
//! `From<anyhow::Error>`, so an unclassified error does not compile.

use std::process::ExitCode;

use esper_scenarios::drills::failure::FailureFileError;
use esper_scenarios::drills::shrink::ShrinkError;
use esper_scenarios::drills::sweep::SweepError;
use esper_scenarios::rc1::gate::GateError;
use esper_scenarios::real::real_profile::KeyError;
use esper_scenarios::real::up::UpError;
use esper_scenarios::registry::UnknownScenario;
use esper_scenarios::sim::kasmina_prefetch::BurstError;
use esper_scenarios::timeline::TimelineError;

/// Whose problem an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad usage or unreadable input: the user must change what they passed (exit 2).
    Input,
    /// The command could not finish on good input (exit 1).
    Runtime,
}

/// A command that could not be carried out, and whose problem that is.
#[derive(Debug)]
pub struct CommandError {
    pub kind: ErrorKind,
    pub error: anyhow::Error,
}

impl CommandError {
    pub fn exit_code(&self) -> ExitCode {
        match self.kind {
            ErrorKind::Input => ExitCode::from(2),
            ErrorKind::Runtime => ExitCode::FAILURE,
        }
    }
}

/// What a command returns: `Ok(true)` passed, `Ok(false)` a run failed (already
/// reported), `Err` it could not be carried out.
pub type CommandResult = Result<bool, CommandError>;

/// A library error whose type alone says whose problem it is.
pub trait Classify: std::error::Error + Send + Sync + 'static {
    fn kind(&self) -> ErrorKind;
}

impl<E: Classify> From<E> for CommandError {
    fn from(error: E) -> Self {
        Self { kind: error.kind(), error: error.into() }
    }
}

/// Classifies an error at its call site, where its type alone cannot.
pub trait Tag<T> {
    /// Bad usage or unreadable input (exit 2).
    fn input(self) -> Result<T, CommandError>;
    /// A failure while carrying out good input (exit 1).
    fn runtime(self) -> Result<T, CommandError>;
}

impl<T, E: Into<anyhow::Error>> Tag<T> for Result<T, E> {
    fn input(self) -> Result<T, CommandError> {
        self.map_err(|error| CommandError { kind: ErrorKind::Input, error: error.into() })
    }

    fn runtime(self) -> Result<T, CommandError> {
        self.map_err(|error| CommandError { kind: ErrorKind::Runtime, error: error.into() })
    }
}

/// A usage error with a message of our own.
pub fn usage(message: impl Into<String>) -> CommandError {
    CommandError { kind: ErrorKind::Input, error: anyhow::Error::msg(message.into()) }
}

/// Printed at every start with `--insecure-dev-key`, so a dev key never goes unnoticed.
pub const INSECURE_DEV_KEY_WARNING: &str = "warning: --insecure-dev-key: signing with a random key only this \
     process knows; set ESPER_LEYLINE_SECRET (at least 32 bytes) for any bus another process reads";

/// A missing or short `ESPER_LEYLINE_SECRET` is the user's to fix (the message
/// says how); only a failure to draw a dev key is not.
impl Classify for KeyError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Missing | Self::Invalid(_) => ErrorKind::Input,
            Self::Entropy(_) => ErrorKind::Runtime,
        }
    }
}

impl Classify for UnknownScenario {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Input
    }
}

impl Classify for FailureFileError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Write { .. } => ErrorKind::Runtime,
            Self::Read { .. }
            | Self::Parse { .. }
            | Self::Schema { .. }
            | Self::Scenario { .. }
            | Self::PlantedUnavailable { .. } => ErrorKind::Input,
        }
    }
}

impl Classify for SweepError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotSweepable(_) | Self::EmptyShard { .. } => ErrorKind::Input,
            Self::File(error) => error.kind(),
            Self::Timeline(error) => error.kind(),
        }
    }
}

/// A timeline is drawn from a run this esper just made: a trace it cannot read or
/// a file it cannot write is not the user's input.
impl Classify for TimelineError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::TraceNotKept | Self::Trace(_) | Self::Write { .. } => ErrorKind::Runtime,
        }
    }
}

impl Classify for ShrinkError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Scenario(_) => ErrorKind::Input,
            // The shrinker found the record failing, then not: the run, not the file, changed.
            Self::DoesNotFail(_) => ErrorKind::Runtime,
        }
    }
}

/// The gate only reads: every error it has is an unreadable input or a scope that
/// names nothing to judge.
impl Classify for GateError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Input
    }
}

impl Classify for BurstError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Config(_) => ErrorKind::Input,
            Self::EmbeddedRedis(_) | Self::Runtime(_) | Self::Bus(_) | Self::Sim(_) | Self::Telemetry(_) => {
                ErrorKind::Runtime
            }
        }
    }
}

impl Classify for UpError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Config(_) => ErrorKind::Input,
            Self::Io { .. } | Self::Http(_) => ErrorKind::Runtime,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_exit_2_and_runtime_errors_exit_1() {
        let input: Result<(), _> = Err(std::io::Error::other("x"));
        assert_eq!(input.input().map_err(|e| e.exit_code()), Err(ExitCode::from(2)));
        let runtime: Result<(), _> = Err(std::io::Error::other("x"));
        assert_eq!(runtime.runtime().map_err(|e| e.exit_code()), Err(ExitCode::FAILURE));
    }
}
