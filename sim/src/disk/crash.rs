//! What a crash leaves of a file's unsynced writes.
//!
//! A disk writes in blocks. When power fails, writes that were never fsynced may have
//! reached the platter in part: whole blocks up to some point, then one block torn
//! mid-way, whose tail holds the old bytes (zeros past the old end of file) or
//! whatever the controller was in the middle of — never bytes the writer did not
//! hand over *before* that block, and never anything past the length the file was
//! growing to. Every choice here is drawn from the disk's seeded stream.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How the last, partially written block ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tear {
    /// Nothing unsynced was pending.
    None,
    /// Unsynced writes were lost whole.
    Dropped,
    /// The file ends in the middle of what was written (a clean cut).
    Cut,
    /// The torn block's tail reads as zeros.
    Zeros,
    /// The torn block's tail reads as random bytes.
    Garbage,
}

impl Tear {
    /// Stable name for traces.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Dropped => "dropped",
            Self::Cut => "cut",
            Self::Zeros => "zeros",
            Self::Garbage => "garbage",
        }
    }
}

/// The bytes a file holds after a crash, given what was durable and what the writer
/// had handed over since (`current`).
///
/// Only the append-only case can tear: when `current` extends `durable`, a prefix of
/// the unsynced tail survives, cut anywhere, and the rest of the block the cut falls in
/// may read as zeros or garbage. Any other unsynced change (a truncation, possibly
/// followed by appends) is lost as a whole, which is what a journaling file system
/// gives for metadata changes that were not committed.
pub fn crash_image(durable: &[u8], current: &[u8], block_size: u64, rng: &mut ChaCha8Rng) -> (Vec<u8>, Tear) {
    assert!(block_size > 0, "block size must be positive");
    if current == durable {
        return (durable.to_vec(), Tear::None);
    }
    if !current.starts_with(durable) {
        return (durable.to_vec(), Tear::Dropped);
    }
    let pending = current.len() - durable.len();
    let kept = rng.random_range(0..=pending);
    let cut = durable.len() + kept;
    if kept == 0 {
        return (durable.to_vec(), Tear::Dropped);
    }
    let block = usize::try_from(block_size).unwrap_or(usize::MAX);
    let block_end = cut.div_ceil(block).saturating_mul(block).min(current.len());
    let mut image = current[..cut].to_vec();
    let tear = match rng.random_range(0..3_u8) {
        0 => Tear::Cut,
        1 => {
            image.resize(block_end, 0);
            Tear::Zeros
        }
        _ => {
            image.extend((cut..block_end).map(|_| rng.random::<u8>()));
            Tear::Garbage
        }
    };
    debug_assert!(image.len() <= current.len() && image.starts_with(durable));
    (image, tear)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn keeps_durable_bytes_and_never_grows_past_what_was_written() {
        let durable = vec![7_u8; 10];
        let mut current = durable.clone();
        current.extend(1..=3_u8);
        let mut tears = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (image, tear) = crash_image(&durable, &current, 16, &mut rng);
            assert!(image.starts_with(&durable), "seed {seed}: lost durable bytes");
            assert!(image.len() <= current.len(), "seed {seed}: grew past the writes");
            tears.insert(tear.name());
        }
        assert_eq!(tears.into_iter().collect::<Vec<_>>(), ["cut", "dropped", "garbage", "zeros"]);
    }

    #[test]
    fn an_unsynced_truncation_is_lost_whole() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (image, tear) = crash_image(b"abcdef", b"abX", 4, &mut rng);
        assert_eq!((image.as_slice(), tear), (&b"abcdef"[..], Tear::Dropped));
    }
}
