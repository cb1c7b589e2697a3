//! Checkpoints: the slow rollback tier and what a restarted Tolaria resumes from.
//!
//! A checkpoint is the model snapshot (the host and any grafted seeds' parameters and
//! optimizer state), Kasmina's plan for those seeds (stage, alpha, blend, kernel: what
//! keeps the next graft sync from dropping them), and where training stood (epoch,
//! global step), in a small self-describing encoding. Where it is kept is a port: the
//! storage-backed store writes it through the framed WAL, tests may keep it in memory.
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
    /// `KasminaPort::plan` bytes; empty when Kasmina has no seeds to keep.
    pub kasmina: Vec<u8>,
}

/// Model only: what a run without seeds writes, byte for byte as before seeds existed.
const MAGIC: [u8; 4] = *b"ESCK";
/// Model and Kasmina's plan: `ESC2 | epoch | global_step | model_len u32 BE | model | plan`.
const MAGIC_WITH_PLAN: [u8; 4] = *b"ESC2";
const HEADER_LEN: usize = 4 + 4 + 8;

/// Why a checkpoint could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint is {size} bytes, shorter than its {HEADER_LEN}-byte header")]
    Short { size: usize },
    #[error("checkpoint does not start with the ESCK or ESC2 magic")]
    BadMagic,
    #[error("checkpoint's model length {model_len} runs past its {available} remaining bytes")]
    ModelPastEnd { model_len: u64, available: usize },
    #[error("checkpoint's model is {0} bytes, more than its u32 length field holds")]
    ModelTooLarge(usize),
    #[error("checkpoint storage failed: {0}")]
    Storage(String),
}

impl Checkpoint {
    /// `ESCK | epoch u32 BE | global_step u64 BE | model` without a plan,
    /// `ESC2 | epoch | global_step | model_len u32 BE | model | plan` with one.
    pub fn encode(&self) -> Result<Vec<u8>, CheckpointError> {
        let mut bytes = Vec::with_capacity(HEADER_LEN + 4 + self.model.len() + self.kasmina.len());
        bytes.extend_from_slice(if self.kasmina.is_empty() { &MAGIC } else { &MAGIC_WITH_PLAN });
        bytes.extend_from_slice(&self.epoch.to_be_bytes());
        bytes.extend_from_slice(&self.global_step.to_be_bytes());
        if !self.kasmina.is_empty() {
            let model_len =
                u32::try_from(self.model.len()).map_err(|_| CheckpointError::ModelTooLarge(self.model.len()))?;
            bytes.extend_from_slice(&model_len.to_be_bytes());
        }
        bytes.extend_from_slice(&self.model);
        bytes.extend_from_slice(&self.kasmina);
        Ok(bytes)
    }

    /// Reads [`Checkpoint::encode`]'s formats; the model bytes are checked by the
    /// device, the plan by Kasmina.
    pub fn decode(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let Some((header, rest)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(CheckpointError::Short { size: bytes.len() });
        };
        let with_plan = match header[..4].try_into() {
            Ok(MAGIC) => false,
            Ok(MAGIC_WITH_PLAN) => true,
            _ => return Err(CheckpointError::BadMagic),
        };
        let mut epoch = [0; 4];
        epoch.copy_from_slice(&header[4..8]);
        let mut step = [0; 8];
        step.copy_from_slice(&header[8..]);
        let (model, kasmina) = if with_plan { split_model(rest)? } else { (rest, &[][..]) };
        Ok(Self {
            epoch: u32::from_be_bytes(epoch),
            global_step: u64::from_be_bytes(step),
            model: model.to_vec(),
            kasmina: kasmina.to_vec(),
        })
    }
}

/// `model_len | model | plan` into the model and the plan.
fn split_model(rest: &[u8]) -> Result<(&[u8], &[u8]), CheckpointError> {
    let Some((length, rest)) = rest.split_first_chunk::<4>() else {
        return Err(CheckpointError::Short { size: HEADER_LEN + rest.len() });
    };
    let model_len = u32::from_be_bytes(*length);
    let past_end = || CheckpointError::ModelPastEnd { model_len: u64::from(model_len), available: rest.len() };
    let model_len = usize::try_from(model_len).map_err(|_| past_end())?;
    if model_len > rest.len() {
        return Err(past_end());
    }
    Ok(rest.split_at(model_len))
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
        let checkpoint = Checkpoint { epoch: 3, global_step: 48, model: vec![1, 2, 3], kasmina: Vec::new() };
        let bytes = checkpoint.encode().expect("encodes");
        assert_eq!(&bytes[..4], b"ESCK", "a run without seeds writes the format from before seeds");
        assert_eq!(Checkpoint::decode(&bytes).expect("decodes"), checkpoint);
        assert!(matches!(Checkpoint::decode(&bytes[..10]), Err(CheckpointError::Short { size: 10 })));
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(matches!(Checkpoint::decode(&bad), Err(CheckpointError::BadMagic)));
    }

    #[test]
    fn a_plan_rides_beside_the_model_and_a_lying_length_is_refused() {
        let checkpoint = Checkpoint { epoch: 2, global_step: 32, model: vec![9; 5], kasmina: b"{plan}".to_vec() };
        let bytes = checkpoint.encode().expect("encodes");
        assert_eq!(&bytes[..4], b"ESC2");
        assert_eq!(Checkpoint::decode(&bytes).expect("decodes"), checkpoint);
        let mut lying = bytes.clone();
        lying[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&100_u32.to_be_bytes());
        assert!(matches!(
            Checkpoint::decode(&lying),
            Err(CheckpointError::ModelPastEnd { model_len: 100, available: 11 })
        ));
        assert!(matches!(Checkpoint::decode(&bytes[..HEADER_LEN + 2]), Err(CheckpointError::Short { .. })));
    }
}
