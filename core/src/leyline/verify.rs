//! Checking signed frames: authenticity, freshness, uniqueness.
//!
//! Checks run cheapest-first and every refusal has its own error variant and counter,
//! so an operator can tell a misconfigured secret (bad MAC) from a clock problem
//! (stale, future) from an attack (replay). The MAC comparison is constant-time
//! (`hmac`'s `verify_slice`).

use hmac::Mac;

use super::BusEnvelope;
use super::codec::{Contract, DecodeError};
use super::nonce::{NONCE_BUCKET_MS, NonceLedger, NonceRefusal};
use super::signing::{FrameError, FrameView, SigningKey};

/// How strict a [`Verifier`] is. Windows are in milliseconds of the caller's clock
/// (virtual time in the sim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyPolicy {
    /// Frames older than this are stale. Default 60 s.
    pub freshness_window_ms: u64,
    /// Frames stamped further than this in the future are refused. Default 5 s.
    pub max_future_skew_ms: u64,
    /// Accept frames without a signature (counted, with a warning). Default false.
    pub accept_unsigned: bool,
    /// The highest rate of fresh frames the replay check is sized for. Every nonce
    /// seen inside the window is remembered, so memory is bounded by this rate
    /// times the window (about 40 bytes a nonce); frames beyond it are refused
    /// ([`VerifyError::LedgerFull`]), never let through unchecked. Default 40 000
    /// a second, above the 14–40k messages a second this code reaches.
    pub max_frames_per_s: u64,
}

impl VerifyPolicy {
    /// Nonces the replay check holds at most: every frame of the highest rate
    /// that can still be fresh (the window, the future skew, one expiry bucket).
    pub fn nonce_capacity(&self) -> usize {
        let span_ms = self.freshness_window_ms.saturating_add(self.max_future_skew_ms).saturating_add(NONCE_BUCKET_MS);
        let nonces = u128::from(self.max_frames_per_s) * u128::from(span_ms) / 1_000;
        usize::try_from(nonces).unwrap_or(usize::MAX).max(1)
    }
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        Self {
            freshness_window_ms: 60_000,
            max_future_skew_ms: 5_000,
            accept_unsigned: false,
            max_frames_per_s: 40_000,
        }
    }
}

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("not a Leyline frame: {0}")]
    Frame(#[from] FrameError),
    #[error("frame is unsigned and this verifier requires signatures")]
    MissingSignature,
    #[error("frame signature does not match (wrong secret or altered bytes)")]
    BadMac,
    #[error("frame is stale: stamped {age_ms} ms ago, beyond the {window_ms} ms freshness window")]
    Stale { age_ms: u64, window_ms: u64 },
    #[error("frame is stamped {ahead_ms} ms in the future, beyond the {skew_ms} ms allowed skew")]
    FromFuture { ahead_ms: u64, skew_ms: u64 },
    #[error("frame nonce was already seen inside the freshness window (replay)")]
    Replayed,
    #[error(
        "replay check full: {capacity} live nonces held (more frames than the policy's rate over the window); frame refused"
    )]
    LedgerFull { capacity: usize },
    #[error("signed frame holds a bad envelope: {0}")]
    Envelope(#[from] DecodeError),
}

/// One counter per outcome, for `metrics_snapshot()`s and telemetry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyCounters {
    pub accepted: u64,
    pub unsigned_accepted: u64,
    pub rejected_malformed: u64,
    pub rejected_missing_signature: u64,
    pub rejected_bad_mac: u64,
    pub rejected_stale: u64,
    pub rejected_future: u64,
    pub rejected_replayed: u64,
    /// Frames refused because the replay check held its most live nonces.
    pub rejected_ledger_full: u64,
    pub rejected_envelope: u64,
}

impl VerifyCounters {
    fn count(&mut self, result: &Result<BusEnvelope, VerifyError>, signed: bool) {
        let counter = match result {
            Ok(_) if signed => &mut self.accepted,
            Ok(_) => &mut self.unsigned_accepted,
            Err(VerifyError::Frame(_)) => &mut self.rejected_malformed,
            Err(VerifyError::MissingSignature) => &mut self.rejected_missing_signature,
            Err(VerifyError::BadMac) => &mut self.rejected_bad_mac,
            Err(VerifyError::Stale { .. }) => &mut self.rejected_stale,
            Err(VerifyError::FromFuture { .. }) => &mut self.rejected_future,
            Err(VerifyError::Replayed) => &mut self.rejected_replayed,
            Err(VerifyError::LedgerFull { .. }) => &mut self.rejected_ledger_full,
            Err(VerifyError::Envelope(_)) => &mut self.rejected_envelope,
        };
        *counter += 1;
    }
}

/// Verifies frames from one or more peers sharing a secret.
#[derive(Debug)]
pub struct Verifier {
    key: SigningKey,
    policy: VerifyPolicy,
    ledger: NonceLedger,
    counters: VerifyCounters,
}

impl Verifier {
    /// A verifier for `key` under `policy`.
    pub fn new(key: SigningKey, policy: VerifyPolicy) -> Self {
        Self { key, ledger: NonceLedger::new(policy.nonce_capacity()), policy, counters: VerifyCounters::default() }
    }

    /// Checks `frame` at `now_ms` and returns its envelope, or why it was refused.
    pub fn verify(&mut self, frame: &[u8], now_ms: u64) -> Result<BusEnvelope, VerifyError> {
        let parsed = FrameView::parse(frame);
        let signed = parsed.as_ref().is_ok_and(|view| view.signed);
        let result = parsed.map_err(VerifyError::from).and_then(|view| self.check(frame, view, now_ms));
        self.counters.count(&result, signed);
        result
    }

    fn check(&mut self, frame: &[u8], view: FrameView<'_>, now_ms: u64) -> Result<BusEnvelope, VerifyError> {
        if !view.signed {
            if !self.policy.accept_unsigned {
                return Err(VerifyError::MissingSignature);
            }
            tracing::warn!(timestamp_ms = view.timestamp_ms, "accepting an unsigned Leyline frame");
            return Ok(BusEnvelope::decode_closed(view.envelope)?);
        }
        self.key.mac_of(frame).verify_slice(view.mac).map_err(|_| VerifyError::BadMac)?;
        self.check_fresh(view.timestamp_ms, now_ms)?;
        let expires = view.timestamp_ms.saturating_add(self.policy.freshness_window_ms);
        match self.ledger.insert(view.nonce, expires, now_ms) {
            Ok(()) => {}
            Err(NonceRefusal::Replayed) => return Err(VerifyError::Replayed),
            Err(NonceRefusal::Full) => return Err(VerifyError::LedgerFull { capacity: self.ledger.capacity() }),
        }
        Ok(BusEnvelope::decode_closed(view.envelope)?)
    }

    fn check_fresh(&self, stamped_ms: u64, now_ms: u64) -> Result<(), VerifyError> {
        if stamped_ms > now_ms {
            let ahead_ms = stamped_ms - now_ms;
            if ahead_ms > self.policy.max_future_skew_ms {
                return Err(VerifyError::FromFuture { ahead_ms, skew_ms: self.policy.max_future_skew_ms });
            }
            return Ok(());
        }
        let age_ms = now_ms - stamped_ms;
        if age_ms > self.policy.freshness_window_ms {
            return Err(VerifyError::Stale { age_ms, window_ms: self.policy.freshness_window_ms });
        }
        Ok(())
    }

    /// Counts of every outcome so far.
    pub fn counters(&self) -> VerifyCounters {
        self.counters
    }
}
