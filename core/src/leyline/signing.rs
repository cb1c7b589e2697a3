//! HMAC-SHA256 signed frames around a [`BusEnvelope`].
//!
//! A frame is a fixed binary header followed by the encoded envelope:
//!
//! ```text
//! magic "ESLY" (4) | version 1 (1) | flags (1) | timestamp_ms u64 BE (8) | nonce (16) | mac (32) | envelope…
//! ```
//!
//! The MAC covers every byte of the frame except the MAC itself — header, timestamp,
//! nonce and envelope — so flipping any bit of a signed frame is caught: in the MAC
//! field or anywhere it covers the MAC no longer matches; in the magic or version the
//! frame is not a frame; in the `signed` flag it reads as unsigned, which is refused
//! unless the verifier was told to accept unsigned frames. A fixed layout (rather than
//! a protobuf wrapper) leaves no alternative encodings of the same frame.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use prost::Message;
use rand::RngCore;
use sha2::Sha256;

use super::BusEnvelope;

/// Frame magic: "ESper LeYline".
pub const FRAME_MAGIC: [u8; 4] = *b"ESLY";
/// The only frame layout this build writes and reads.
pub const FRAME_VERSION: u8 = 1;
/// Bytes before the envelope.
pub const FRAME_HEADER_LEN: usize = 4 + 1 + 1 + 8 + NONCE_LEN + MAC_LEN;
/// Nonce length: 128 bits, from the caller's seeded RNG (the sim) or a process's
/// random prefix and counter (the real profile; see [`SigningKey::with_nonce_prefix`]).
pub const NONCE_LEN: usize = 16;
/// HMAC-SHA256 output length.
pub const MAC_LEN: usize = 32;
/// Environment variable holding the shared secret, as in Esper-Lite.
pub const SECRET_ENV: &str = "ESPER_LEYLINE_SECRET";
/// The shortest secret [`SigningKey::from_lookup`] accepts: 256 bits, HMAC-SHA256's
/// own strength (RFC 2104 recommends a key no shorter than the hash output).
pub const MIN_SECRET_BYTES: usize = 32;

const FLAG_SIGNED: u8 = 0b1;
const MAC_OFFSET: usize = FRAME_HEADER_LEN - MAC_LEN;

type HmacSha256 = Hmac<Sha256>;

/// A nonce: unique per frame within the freshness window.
pub type Nonce = [u8; NONCE_LEN];

/// Why no signing key could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningKeyError {
    #[error("{SECRET_ENV} is not set; Leyline signing needs a shared secret")]
    Missing,
    #[error("{SECRET_ENV} is set but empty; Leyline signing needs a non-empty secret")]
    Empty,
    #[error(
        "{SECRET_ENV} is {len} bytes; it must be at least {min} (for example `export {SECRET_ENV}=$(openssl rand -hex 32)`)"
    )]
    TooShort { len: usize, min: usize },
}

/// The shared HMAC secret, and how frames signed with it get their nonces.
/// `Debug` never prints the secret.
#[derive(Clone)]
pub struct SigningKey {
    /// The secret's length, for `Debug`; the secret itself lives only in `keyed`.
    secret_len: usize,
    /// HMAC keyed with the secret, before any message: keying hashes two blocks
    /// (the inner and outer pads), a quarter of a typical frame's MAC, so it is
    /// done once per key and each MAC starts from a copy.
    keyed: HmacSha256,
    /// Real profile: this process's nonces, shared by every clone of the key.
    process_nonces: Option<Arc<ProcessNonces>>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(<{} bytes>)", self.secret_len)
    }
}

/// A process's nonces: a random prefix drawn once at start, then a counter.
///
/// Two processes started with the same `--seed` would draw the same nonces from
/// their seeded RNGs, and each would refuse the other's frames as replays (or a
/// capture from one would replay into the other); a random prefix keeps them apart,
/// and the counter makes every nonce of the process distinct without drawing.
#[derive(Debug)]
struct ProcessNonces {
    prefix: [u8; NONCE_LEN / 2],
    counter: AtomicU64,
}

impl ProcessNonces {
    fn next(&self) -> Nonce {
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0; NONCE_LEN];
        let (prefix, counter) = nonce.split_at_mut(NONCE_LEN / 2);
        prefix.copy_from_slice(&self.prefix);
        counter.copy_from_slice(&count.to_be_bytes());
        nonce
    }
}

impl SigningKey {
    /// A key from raw secret bytes; refuses an empty secret.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, SigningKeyError> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(SigningKeyError::Empty);
        }
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let keyed = match HmacSha256::new_from_slice(&secret) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
        };
        Ok(Self { secret_len: secret.len(), keyed, process_nonces: None })
    }

    /// This key, with nonces made of `prefix` (random, drawn once per process by
    /// the caller) and a counter shared by every clone, instead of drawn from the
    /// signer's RNG. The sim never calls this: its nonces descend from the seed.
    pub fn with_nonce_prefix(self, prefix: [u8; NONCE_LEN / 2]) -> Self {
        let nonces = ProcessNonces { prefix, counter: AtomicU64::new(0) };
        Self { process_nonces: Some(Arc::new(nonces)), ..self }
    }

    /// The next nonce: the process's, or 16 bytes drawn from `rng`.
    fn next_nonce(&self, rng: &mut impl RngCore) -> Nonce {
        match &self.process_nonces {
            Some(nonces) => nonces.next(),
            None => {
                let mut nonce: Nonce = [0; NONCE_LEN];
                rng.fill_bytes(&mut nonce);
                nonce
            }
        }
    }

    /// The key from `ESPER_LEYLINE_SECRET` as `lookup` gives it (UTF-8, as the
    /// original read it from the environment; core itself never reads it). A
    /// secret shorter than [`MIN_SECRET_BYTES`] is refused: the environment is
    /// where deployments put their keys, so it is held to the deployment bar (the
    /// sim's fixed keys come through [`Self::new`]).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SigningKeyError> {
        let secret = lookup(SECRET_ENV).ok_or(SigningKeyError::Missing)?;
        if !secret.is_empty() && secret.len() < MIN_SECRET_BYTES {
            return Err(SigningKeyError::TooShort { len: secret.len(), min: MIN_SECRET_BYTES });
        }
        Self::new(secret.into_bytes())
    }

    /// The MAC of a frame (every byte except the MAC field).
    pub(super) fn mac_of(&self, frame: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(&frame[..MAC_OFFSET]);
        mac.update(&frame[FRAME_HEADER_LEN..]);
        mac
    }
}

/// Signs `envelope` at `timestamp_ms` with a fresh nonce (the key's process
/// nonces, or drawn from `rng`).
pub fn sign(key: &SigningKey, envelope: &BusEnvelope, timestamp_ms: u64, rng: &mut impl RngCore) -> Vec<u8> {
    let mut frame = frame_without_mac(envelope, timestamp_ms, FLAG_SIGNED, key.next_nonce(rng));
    let tag = key.mac_of(&frame).finalize().into_bytes();
    frame[MAC_OFFSET..FRAME_HEADER_LEN].copy_from_slice(&tag);
    frame
}

/// An unsigned frame (MAC field zero). Verifiers refuse it unless configured to
/// accept unsigned traffic.
pub fn unsigned(envelope: &BusEnvelope, timestamp_ms: u64, rng: &mut impl RngCore) -> Vec<u8> {
    let mut nonce: Nonce = [0; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    frame_without_mac(envelope, timestamp_ms, 0, nonce)
}

fn frame_without_mac(envelope: &BusEnvelope, timestamp_ms: u64, flags: u8, nonce: Nonce) -> Vec<u8> {
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + envelope.encoded_len());
    frame.extend_from_slice(&FRAME_MAGIC);
    frame.push(FRAME_VERSION);
    frame.push(flags);
    frame.extend_from_slice(&timestamp_ms.to_be_bytes());
    frame.extend_from_slice(&nonce);
    frame.extend_from_slice(&[0; MAC_LEN]);
    envelope.encode(&mut frame).unwrap_or_else(|_| unreachable!("a Vec grows to fit"));
    frame
}

/// A frame split into its parts; produced by [`FrameView::parse`] without copying.
#[derive(Debug, Clone, Copy)]
pub(super) struct FrameView<'a> {
    pub signed: bool,
    pub timestamp_ms: u64,
    pub nonce: Nonce,
    pub mac: &'a [u8],
    pub envelope: &'a [u8],
}

/// Why bytes are not a Leyline frame at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame is {size} bytes, shorter than the {FRAME_HEADER_LEN}-byte header")]
    Short { size: usize },
    #[error("frame does not start with the Leyline magic")]
    BadMagic,
    #[error("frame version {found} is not supported (this build reads version {FRAME_VERSION})")]
    UnsupportedVersion { found: u8 },
    #[error("frame flags {found:#04x} carry unknown bits")]
    UnknownFlags { found: u8 },
}

impl<'a> FrameView<'a> {
    pub(super) fn parse(frame: &'a [u8]) -> Result<Self, FrameError> {
        let Some((header, envelope)) = frame.split_first_chunk::<FRAME_HEADER_LEN>() else {
            return Err(FrameError::Short { size: frame.len() });
        };
        // Fixed offsets into a fixed-size array: every index below is checked at compile time.
        if header[..4] != FRAME_MAGIC {
            return Err(FrameError::BadMagic);
        }
        let (version, flags) = (header[4], header[5]);
        if version != FRAME_VERSION {
            return Err(FrameError::UnsupportedVersion { found: version });
        }
        if flags & !FLAG_SIGNED != 0 {
            return Err(FrameError::UnknownFlags { found: flags });
        }
        let mut timestamp = [0; 8];
        timestamp.copy_from_slice(&header[6..14]);
        let mut nonce = [0; NONCE_LEN];
        nonce.copy_from_slice(&header[14..MAC_OFFSET]);
        Ok(Self {
            signed: flags & FLAG_SIGNED != 0,
            timestamp_ms: u64::from_be_bytes(timestamp),
            nonce,
            mac: &header[MAC_OFFSET..],
            envelope,
        })
    }
}
