//! Group commit: many tasks append, one fsync per batch.
//!
//! Appenders hand their record to a [`WalWriter`] and wait. The [`GroupCommitter`]
//! takes whatever has queued up (at most `max_batch_records`), writes it with one
//! fsync, and only then answers each appender. While one batch is being synced the
//! next one queues, so under load the fsync cost is shared; with a single appender it
//! degrades to one fsync per record, never worse.

use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

use crate::storage::Storage;

use super::error::PersistenceError;
use super::log::Wal;

/// One queued append and where to send its acknowledgement.
#[derive(Debug)]
struct Pending {
    payload: Vec<u8>,
    ack: oneshot::Sender<Result<u64, PersistenceError>>,
}

/// The appenders' side: cheap to clone, one per task.
#[derive(Debug, Clone)]
pub struct WalWriter {
    sender: mpsc::Sender<Pending>,
    path: PathBuf,
}

/// The committing side: run [`GroupCommitter::run`] on a task of its own (or join it
/// with the appenders); it returns the log once every [`WalWriter`] is dropped.
#[derive(Debug)]
pub struct GroupCommitter<S: Storage> {
    wal: Wal<S>,
    receiver: mpsc::Receiver<Pending>,
}

/// Splits `wal` into a writer handle and its committer. `queue_depth` bounds how many
/// appends may wait; past it, `append` waits for room (backpressure).
pub fn group_commit<S: Storage>(wal: Wal<S>, queue_depth: usize) -> (WalWriter, GroupCommitter<S>) {
    assert!(queue_depth > 0, "group commit needs room for at least one pending append");
    let (sender, receiver) = mpsc::channel(queue_depth);
    let path = wal.path().to_path_buf();
    (WalWriter { sender, path }, GroupCommitter { wal, receiver })
}

impl WalWriter {
    /// Appends `payload`; returns its record index once the batch holding it is fsynced.
    pub async fn append(&self, payload: Vec<u8>) -> Result<u64, PersistenceError> {
        let closed = || PersistenceError::Closed { path: self.path.clone() };
        let (ack, answer) = oneshot::channel();
        self.sender.send(Pending { payload, ack }).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

impl<S: Storage> GroupCommitter<S> {
    /// Commits batches until every writer is gone; returns the log.
    pub async fn run(mut self) -> Wal<S> {
        let limit = self.wal.config().max_batch_records;
        let mut batch = Vec::with_capacity(limit);
        while let Some(first) = self.receiver.recv().await {
            batch.push(first);
            while batch.len() < limit {
                match self.receiver.try_recv() {
                    Ok(pending) => batch.push(pending),
                    Err(_) => break,
                }
            }
            self.commit(&mut batch).await;
            debug_assert!(batch.is_empty());
        }
        self.wal
    }

    /// Writes one batch with one fsync, then answers every appender in it.
    async fn commit(&mut self, batch: &mut Vec<Pending>) {
        let payloads: Vec<&[u8]> = batch.iter().map(|pending| pending.payload.as_slice()).collect();
        let result = self.wal.append_batch(&payloads).await;
        tracing::debug!(target: super::LOG_TARGET, records = batch.len(), ok = result.is_ok(), "group commit");
        for (index, pending) in batch.drain(..).enumerate() {
            let answer = result.clone().map(|range| range.start + index as u64);
            // An appender that stopped waiting (its task was dropped) needs no answer.
            let _ = pending.ack.send(answer);
        }
    }
}
