//! Signed commands only: Tamiyo's commands reach Kasmina as signed Leyline
//! frames, and [`CommandIntake`] verifies each (MAC, freshness, replay) before
//! the seed manager sees it. An unsigned command is refused with a warning and
//! counted — Esper-Lite accepted unsigned commands when no secret was set; this
//! Kasmina never does.

use super::manager::{KasminaError, SeedManager};
use crate::leyline::{AdaptationCommand, SigningKey, Verifier, VerifyError, VerifyPolicy};

/// What the intake refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IntakeCounters {
    pub accepted: u64,
    /// `kasmina.commands.unsigned_rejected`.
    pub unsigned_rejected: u64,
    /// Bad MAC, stale, future, replayed or malformed frames.
    pub invalid_rejected: u64,
}

/// Verifies command frames and hands the commands to a [`SeedManager`].
#[derive(Debug)]
pub struct CommandIntake {
    verifier: Verifier,
    counters: IntakeCounters,
}

impl CommandIntake {
    /// An intake for frames signed with `key`; unsigned frames are always refused.
    pub fn new(key: SigningKey, policy: VerifyPolicy) -> Self {
        Self {
            verifier: Verifier::new(key, VerifyPolicy { accept_unsigned: false, ..policy }),
            counters: IntakeCounters::default(),
        }
    }

    /// Verifies `frame` at `now_ms` and applies the command it carries.
    pub fn apply(&mut self, manager: &mut SeedManager, frame: &[u8], now_ms: u64) -> Result<(), KasminaError> {
        let opened = self.verifier.verify(frame, now_ms).map_err(|error| match error {
            VerifyError::MissingSignature => KasminaError::Unsigned,
            other => KasminaError::BadCommand(other.to_string()),
        });
        let command = opened.and_then(|envelope| {
            envelope.open::<AdaptationCommand>().map_err(|error| KasminaError::BadCommand(error.to_string()))
        });
        match command {
            Ok(command) => {
                self.counters.accepted += 1;
                manager.apply(&command)
            }
            Err(error) => {
                if error == KasminaError::Unsigned {
                    self.counters.unsigned_rejected += 1;
                } else {
                    self.counters.invalid_rejected += 1;
                }
                tracing::warn!(%error, "kasmina: command frame rejected");
                Err(manager.refuse_command(error))
            }
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> IntakeCounters {
        self.counters
    }
}
