//! The ingest loop: consume Oona's streams forever, whatever Redis does.
//!
//! Each pass makes sure Nissa's consumer groups exist (a bounded number of
//! attempts; on failure the pass ends), then runs one consume round on the
//! telemetry, emergency and normal streams, hands the documents gathered to the
//! index, and mirrors the Oona consumer's counters into `/metrics`. While a pass
//! finds entries the reads do not block, so an idle stream does not hold up a
//! busy one; after an idle pass they wait the configured block. A failed pass
//! — Redis down, restarting, refusing — is logged, recorded in health, and
//! followed by a pause that doubles (with seeded jitter) up to `retry_cap`; the
//! loop itself never ends. After a Redis restart the groups may be gone: Oona
//! recreates a missing group when a read says `NOGROUP`, and the next pass's
//! check does the rest.

use std::convert::Infallible;
use std::time::Duration;

use rand::RngCore;

use super::index::{DocumentIndex, IndexRouter};
use super::state::Nissa;
use crate::net::Connector;
use crate::oona::{Backoff, OonaClient, OonaError};

/// XREADGROUP's block while the last pass found entries (none): the three
/// streams are read in turn, and waiting on an empty one would hold up a busy one.
const BUSY_BLOCK: Duration = Duration::ZERO;

/// The Oona counters that describe consuming (Nissa never publishes), mirrored
/// into `esper_nissa_bus_events_total{event}`.
const CONSUMER_EVENTS: [&str; 10] = [
    "consumed",
    "acked",
    "handler_failed",
    "handler_rejected",
    "claimed",
    "dead_letter_total",
    "invalid_envelopes",
    "retries_exhausted",
    "reconnects",
    "server_restarts",
];

/// Runs the loop forever. `rng` draws the retry jitter.
pub async fn run_ingest<C, R, E>(
    nissa: Nissa,
    mut bus: OonaClient<C, R>,
    mut index: IndexRouter<E>,
    mut rng: impl RngCore,
) -> Infallible
where
    C: Connector,
    R: RngCore,
    E: DocumentIndex,
{
    loop {
        ingest_until(&nissa, &mut bus, &mut index, &mut rng, || false).await;
    }
}

/// The loop, until a pass that began with `stop()` holding succeeded and found nothing:
/// a graceful stop drains what is already on the streams first, and because it
/// ends between passes, every entry it read has been acked — the consumer group
/// is left with nothing pending. (While Redis is down it cannot drain; the
/// caller bounds how long it waits.)
pub async fn ingest_until<C, R, E>(
    nissa: &Nissa,
    bus: &mut OonaClient<C, R>,
    index: &mut IndexRouter<E>,
    rng: &mut impl RngCore,
    stop: impl Fn() -> bool,
) where
    C: Connector,
    R: RngCore,
    E: DocumentIndex,
{
    let config = bus.config().clone();
    let streams = [config.telemetry_stream, config.emergency_stream, config.normal_stream];
    let backoff = Backoff::new(nissa.config().retry_base, nissa.config().retry_cap);
    let idle_block = config.block;
    let mut failures = 0_u32;
    loop {
        // Only a pass that began after the stop request proves the streams drained:
        // one already under way may have read a stream before its last entries came.
        let stopping = stop();
        let pass = one_pass(nissa, bus, &streams).await;
        let busy = pass.as_ref().is_ok_and(|entries| *entries > 0);
        let idle = pass.is_ok() && !busy;
        bus.set_block(if busy { BUSY_BLOCK } else { idle_block });
        let pass = pass.map(drop);
        index.store(nissa.take_documents()).await;
        record(nissa, bus, index, &pass, failures);
        match pass {
            Ok(()) => failures = 0,
            Err(_) => {
                tokio::time::sleep(backoff.delay(failures, rng)).await;
                failures = failures.saturating_add(1);
            }
        }
        if idle && stopping {
            return;
        }
    }
}

/// Puts a pass's outcome into health and metrics.
fn record<C: Connector, R: RngCore, E: DocumentIndex>(
    nissa: &Nissa,
    bus: &OonaClient<C, R>,
    index: &IndexRouter<E>,
    pass: &Result<(), OonaError>,
    failures: u32,
) {
    let now_ms = nissa.now_ms();
    let mut state = nissa.lock();
    state.index = index.status().clone();
    for (name, value) in bus.metrics_snapshot().named() {
        let event = name.trim_start_matches("oona.");
        if CONSUMER_EVENTS.contains(&event) {
            state.exporter.mirror_bus_counter(event, value);
        }
    }
    state.health.rounds += 1;
    match pass {
        Ok(()) => {
            if !state.health.redis_up {
                tracing::info!("nissa: ingesting from Redis");
            }
            state.health.redis_up = true;
            state.health.consecutive_failures = 0;
            state.health.last_round_ms = Some(now_ms);
            state.exporter.redis_up.set(1);
        }
        Err(error) => {
            tracing::warn!(%error, failures, "nissa: ingest pass failed; retrying");
            state.health.redis_up = false;
            state.health.failed_rounds += 1;
            state.health.consecutive_failures = failures.saturating_add(1);
            state.health.last_error = Some(error.to_string());
            state.exporter.redis_up.set(0);
        }
    }
}

/// Groups, then one round per stream; returns how many entries the rounds saw.
async fn one_pass<C: Connector, R: RngCore>(
    nissa: &Nissa,
    bus: &mut OonaClient<C, R>,
    streams: &[String; 3],
) -> Result<u32, OonaError> {
    if !nissa.lock().health.groups_ready {
        ensure_groups(nissa, bus, streams).await?;
        nissa.lock().health.groups_ready = true;
        tracing::info!(group = %bus.config().group, "nissa: consumer groups ready");
    }
    let mut entries = 0_u32;
    for stream in streams {
        let round = bus.consume_with(stream, |delivery| nissa.ingest(delivery)).await?;
        entries = entries.saturating_add(round.handled + round.failed + round.dead_lettered);
    }
    Ok(entries)
}

/// Creates every group, each with up to `group_create_attempts` tries.
async fn ensure_groups<C: Connector, R: RngCore>(
    nissa: &Nissa,
    bus: &mut OonaClient<C, R>,
    streams: &[String; 3],
) -> Result<(), OonaError> {
    let attempts = nissa.config().group_create_attempts.max(1);
    for stream in streams {
        let mut attempt = 1;
        loop {
            match bus.ensure_consumer_group(stream).await {
                Ok(()) => break,
                Err(error) if attempt >= attempts => return Err(error),
                Err(error) => {
                    tracing::warn!(stream, attempt, attempts, %error, "nissa: creating the consumer group failed");
                    attempt += 1;
                }
            }
        }
    }
    Ok(())
}
