//! Consuming: group reads, acknowledgement after the handler, reclaiming stale
//! pending entries, dead-lettering what can never succeed.
//!
//! One [`OonaClient::consume`] call is one round: first XAUTOCLAIM takes over
//! entries pending longer than `retry_idle` (a crashed consumer's, or ones whose
//! handler failed) — every round, or once per `claim_interval` — then
//! XREADGROUP BLOCK waits for new ones. An entry is acked only after its handler
//! succeeds, so a failure or a crash means redelivery.
//! Entries that fail verification, entries delivered more than
//! `retry_max_attempts` times, and entries a handler rejects as unusable
//! ([`Handled::Reject`]) are copied to the dead-letter stream and acked:
//! counted, never retried forever, never silently lost.

use std::fmt::Display;
use std::time::Duration;

use rand::RngCore;
use redis::Value;
use tokio::time::Instant;

use super::client::{FRAME_FIELD, OonaClient, reply_error};
use super::entries::{Entry, autoclaim_reply, pending_deliveries, read_reply};
use super::error::OonaError;
use super::link::Target;
use crate::leyline::BusEnvelope;
use crate::net::Connector;
use crate::planted::PlantedBug;

/// One entry handed to a handler.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The stream it was read from.
    pub stream: &'a str,
    /// Its stream id.
    pub id: &'a str,
    /// The verified envelope.
    pub envelope: &'a BusEnvelope,
    /// How many times Redis has delivered it (1 the first time).
    pub deliveries: u64,
}

/// A handler's verdict on one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Done with it: ack.
    Done,
    /// Failed for now (a dependency was down): leave it pending, so it is
    /// redelivered, up to `retry_max_attempts` times.
    Retry(String),
    /// It can never succeed (a payload that does not decode): dead-letter it now
    /// with this reason rather than retry it `retry_max_attempts` times.
    Reject(String),
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumeRound {
    /// Entries whose handler succeeded (and were acked).
    pub handled: u32,
    /// Entries whose handler failed (left pending for a retry).
    pub failed: u32,
    /// Entries moved to the dead-letter stream (unverifiable, exhausted or rejected).
    pub dead_lettered: u32,
    /// Entries taken over from the pending list.
    pub claimed: u32,
}

impl<C: Connector, R: RngCore> OonaClient<C, R> {
    /// Creates the consumer group on `stream` (and the stream) if missing. The
    /// group starts at `0`, so nothing already on the stream is skipped — also
    /// when a Redis restart lost a group created less than a second before.
    pub async fn ensure_consumer_group(&mut self, stream: &str) -> Result<(), OonaError> {
        let group = self.config.group.clone();
        let cmd = redis::cmd("XGROUP").arg("CREATE").arg(stream).arg(&group).arg("0").arg("MKSTREAM").clone();
        match self.query(&cmd, Target { command: "XGROUP CREATE", stream }, Duration::ZERO).await {
            Ok(_) => Ok(()),
            Err(error) if error.server_code() == Some("BUSYGROUP") => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// One round on `stream`: reclaim, read, hand each entry to `handler`. An
    /// `Err` leaves the entry pending for a retry.
    pub async fn consume<E: Display>(
        &mut self,
        stream: &str,
        mut handler: impl FnMut(&Delivery<'_>) -> Result<(), E>,
    ) -> Result<ConsumeRound, OonaError> {
        self.consume_with(stream, |delivery| match handler(delivery) {
            Ok(()) => Handled::Done,
            Err(error) => Handled::Retry(error.to_string()),
        })
        .await
    }

    /// [`OonaClient::consume`] with a handler that can also reject an entry for good.
    pub async fn consume_with(
        &mut self,
        stream: &str,
        mut handler: impl FnMut(&Delivery<'_>) -> Handled,
    ) -> Result<ConsumeRound, OonaError> {
        let mut round = ConsumeRound::default();
        let due = self.last_claim.get(stream).is_none_or(|last| last.elapsed() >= self.config.claim_interval);
        let claimed = if due {
            let claimed = match self.reclaim(stream).await {
                Err(error) => {
                    self.recreate_if_nogroup(stream, error).await?;
                    self.reclaim(stream).await?
                }
                Ok(claimed) => claimed,
            };
            self.last_claim.insert(stream.to_owned(), Instant::now());
            claimed
        } else {
            Vec::new()
        };
        round.claimed = u32::try_from(claimed.len()).unwrap_or(u32::MAX);
        self.metrics.claimed += u64::from(round.claimed);
        for (entry, deliveries) in claimed {
            self.process(stream, &entry, deliveries, &mut handler, &mut round).await?;
        }
        let fresh = match self.read_new(stream).await {
            Err(error) => {
                self.recreate_if_nogroup(stream, error).await?;
                self.read_new(stream).await?
            }
            Ok(fresh) => fresh,
        };
        for entry in fresh {
            self.process(stream, &entry, 1, &mut handler, &mut round).await?;
        }
        Ok(round)
    }

    /// The entries of `stream` pending in the group (delivered, never XACKed),
    /// at most `count`, with their delivery counts: what an audit or an operator
    /// asks before calling a stream drained.
    pub async fn pending(&mut self, stream: &str, count: u32) -> Result<Vec<(String, u64)>, OonaError> {
        let cmd = redis::cmd("XPENDING").arg(stream).arg(&self.config.group).arg("-").arg("+").arg(count).clone();
        let target = Target { command: "XPENDING", stream };
        let reply = self.query(&cmd, target, Duration::ZERO).await?;
        pending_deliveries(&reply).map_err(|detail| reply_error(target, detail))
    }

    /// Recreates the group when `error` says it is missing; otherwise returns it.
    async fn recreate_if_nogroup(&mut self, stream: &str, error: OonaError) -> Result<(), OonaError> {
        if error.server_code() != Some("NOGROUP") {
            return Err(error);
        }
        tracing::warn!(stream, "oona: consumer group missing (new stream or Redis restart); recreating it");
        self.ensure_consumer_group(stream).await
    }

    /// XAUTOCLAIM of entries idle past `retry_idle`, with their delivery counts.
    async fn reclaim(&mut self, stream: &str) -> Result<Vec<(Entry, u64)>, OonaError> {
        let (group, consumer) = (self.config.group.clone(), self.config.consumer.clone());
        let idle_ms = u64::try_from(self.config.retry_idle.as_millis()).unwrap_or(u64::MAX);
        let cmd = redis::cmd("XAUTOCLAIM")
            .arg(stream)
            .arg(&group)
            .arg(&consumer)
            .arg(idle_ms)
            .arg("0-0")
            .arg("COUNT")
            .arg(self.config.retry_batch_size)
            .clone();
        let target = Target { command: "XAUTOCLAIM", stream };
        let reply = self.query(&cmd, target, Duration::ZERO).await?;
        let (claimed, _deleted) = autoclaim_reply(&reply).map_err(|detail| reply_error(target, detail))?;
        let (Some(first), Some(last)) = (claimed.first(), claimed.last()) else { return Ok(Vec::new()) };
        let cmd = redis::cmd("XPENDING")
            .arg(stream)
            .arg(&group)
            .arg(&first.id)
            .arg(&last.id)
            .arg(claimed.len())
            .arg(&consumer)
            .clone();
        let target = Target { command: "XPENDING", stream };
        let reply = self.query(&cmd, target, Duration::ZERO).await?;
        let counts = pending_deliveries(&reply).map_err(|detail| reply_error(target, detail))?;
        let deliveries = |id: &str| counts.iter().find(|(pending, _)| pending == id).map_or(1, |(_, count)| *count);
        Ok(claimed
            .into_iter()
            .map(|entry| (deliveries(&entry.id), entry))
            .map(|(count, entry)| (entry, count))
            .collect())
    }

    /// XREADGROUP (BLOCK, unless the block is zero) for entries never delivered to the group.
    async fn read_new(&mut self, stream: &str) -> Result<Vec<Entry>, OonaError> {
        let block_ms = u64::try_from(self.config.block.as_millis()).unwrap_or(u64::MAX);
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(&self.config.group).arg(&self.config.consumer).arg("COUNT").arg(self.config.read_count);
        if block_ms > 0 {
            cmd.arg("BLOCK").arg(block_ms);
        }
        cmd.arg("STREAMS").arg(stream).arg(">");
        let target = Target { command: "XREADGROUP", stream };
        let reply = self.query(&cmd, target, self.config.block).await?;
        read_reply(&reply).map_err(|detail| reply_error(target, detail))
    }

    async fn process(
        &mut self,
        stream: &str,
        entry: &Entry,
        deliveries: u64,
        handler: &mut impl FnMut(&Delivery<'_>) -> Handled,
        round: &mut ConsumeRound,
    ) -> Result<(), OonaError> {
        if deliveries > self.config.retry_max_attempts {
            self.metrics.retries_exhausted += 1;
            let reason = format!("handler failed {} deliveries", deliveries - 1);
            return self.dead_letter(stream, entry, deliveries, &reason, round).await;
        }
        let envelope = match self.open(stream, entry) {
            Ok(envelope) => envelope,
            Err(reason) => {
                self.metrics.invalid_envelopes += 1;
                return self.dead_letter(stream, entry, deliveries, &reason, round).await;
            }
        };
        self.metrics.consumed += 1;
        let delivery = Delivery { stream, id: &entry.id, envelope: &envelope, deliveries };
        match handler(&delivery) {
            Handled::Done => {
                self.ack(stream, &entry.id, deliveries).await?;
                self.metrics.acked += 1;
                round.handled += 1;
            }
            Handled::Retry(error) => {
                self.metrics.handler_failed += 1;
                round.failed += 1;
                tracing::warn!(stream, id = %entry.id, deliveries, %error, "oona: handler failed; entry stays pending");
            }
            Handled::Reject(why) => {
                self.metrics.handler_rejected += 1;
                let reason = format!("handler rejected it: {why}");
                return self.dead_letter(stream, entry, deliveries, &reason, round).await;
            }
        }
        Ok(())
    }

    /// The entry's verified envelope, or why it has none.
    fn open(&mut self, stream: &str, entry: &Entry) -> Result<BusEnvelope, String> {
        let key = format!("{stream}/{}", entry.id);
        if let Some(envelope) = self.verified.get(&key) {
            return Ok(envelope.clone());
        }
        let frame = entry.field(FRAME_FIELD).ok_or_else(|| format!("entry has no {FRAME_FIELD:?} field"))?;
        let envelope = self.verifier.verify(frame, self.clock.now_ms()).map_err(|error| error.to_string())?;
        self.verified.insert(key, envelope.clone());
        Ok(envelope)
    }

    /// XACK. The planted `consumer-leaves-pending` bug takes a redelivered entry
    /// to have been acknowledged at its first delivery and skips it: the entry
    /// stays pending in the group for good.
    async fn ack(&mut self, stream: &str, id: &str, deliveries: u64) -> Result<(), OonaError> {
        if deliveries > 1 && self.config.planted.armed(PlantedBug::ConsumerLeavesPending) {
            return Ok(());
        }
        let cmd = redis::cmd("XACK").arg(stream).arg(&self.config.group).arg(id).clone();
        self.query(&cmd, Target { command: "XACK", stream }, Duration::ZERO).await.map(drop)
    }

    /// Copies `entry` (with where it came from and why) to the dead-letter stream, then acks it.
    async fn dead_letter(
        &mut self,
        stream: &str,
        entry: &Entry,
        deliveries: u64,
        reason: &str,
        round: &mut ConsumeRound,
    ) -> Result<(), OonaError> {
        let dead_letter = self.config.dead_letter_stream.clone();
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&dead_letter).arg("*").arg("source").arg(stream).arg("id").arg(&entry.id).arg("reason").arg(reason);
        if let Some(frame) = entry.field(FRAME_FIELD) {
            cmd.arg(FRAME_FIELD).arg(frame);
        }
        let reply = self.query(&cmd, Target { command: "XADD", stream: &dead_letter }, Duration::ZERO).await?;
        if !matches!(reply, Value::BulkString(_)) {
            return Err(reply_error(Target { command: "XADD", stream: &dead_letter }, format!("{reply:?}")));
        }
        self.ack(stream, &entry.id, deliveries).await?;
        self.metrics.dead_letter_total += 1;
        round.dead_lettered += 1;
        tracing::warn!(stream, id = %entry.id, reason, "oona: entry dead-lettered");
        Ok(())
    }
}
