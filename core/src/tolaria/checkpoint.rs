//! Checkpoints: the slow rollback tier and what a restarted Tolaria resumes from.
//!
//! A checkpoint is the model snapshot plus where training stood (epoch, global step),
//! in a small self-describing encoding. Where it is kept is a port: the storage-backed
//! store writes it through the framed WAL, tests may keep it in memory.
#![allow(async_fn_in_trait, reason = "single-threaded runtimes; no Send bound wanted")]

/// Where training stood at the end of an epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Epochs completed.
    pub epoch: u32,
    /// Optimizer steps completed.
    pub global_step: u64,
    /// `Device::snapshot` bytes.
    pub model: Vec<u8>,
}

const MAGIC: [u8; 4] = *b"ESCK";
const HEADER_LEN: usize = 4 + 4 + 8;

/// Why a checkpoint could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint is {size} bytes, shorter than its {HEADER_LEN}-byte header")]
    Short { size: usize },
    #[error("checkpoint does not start with the ESCK magic")]
    BadMagic,
    #[error("checkpoint storage failed: {0}")]
    Storage(String),
}

impl Checkpoint {
    /// `ESCK | epoch u32 BE | global_step u64 BE | model`.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_LEN + self.model.len());
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&self.epoch.to_be_bytes());
        bytes.extend_from_slice(&self.global_step.to_be_bytes());
        bytes.extend_from_slice(&self.model);
        bytes
    }

    /// Reads [`Checkpoint::encode`]'s format; the model bytes are checked by the device.
    pub fn decode(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let Some((header, model)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(CheckpointError::Short { size: bytes.len() });
        };
        if header[..4] != MAGIC {
            return Err(CheckpointError::BadMagic);
        }
        let mut epoch = [0; 4];
        epoch.copy_from_slice(&header[4..8]);
        let mut step = [0; 8];
        step.copy_from_slice(&header[8..]);
        Ok(Self { epoch: u32::from_be_bytes(epoch), global_step: u64::from_be_bytes(step), model: model.to_vec() })
    }
}

/// Keeps checkpoints somewhere that survives a Tolaria crash.
pub trait CheckpointStore {
    /// Durably records `checkpoint` as the latest.
    async fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError>;

    /// The latest durable checkpoint, if any.
    async fn load_latest(&mut self) -> Result<Option<Checkpoint>, CheckpointError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let checkpoint = Checkpoint { epoch: 3, global_step: 48, model: vec![1, 2, 3] };
        let bytes = checkpoint.encode();
        assert_eq!(Checkpoint::decode(&bytes).expect("decodes"), checkpoint);
        assert!(matches!(Checkpoint::decode(&bytes[..10]), Err(CheckpointError::Short { size: 10 })));
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(matches!(Checkpoint::decode(&bad), Err(CheckpointError::BadMagic)));
    }
}
