//! `blocking_read`: a consumer waits for new entries inside Redis (`XREADGROUP …
//! BLOCK`), for as long as its block says, and the command timeout stretches by
//! that wait.
//!
//! The drills judge what a consumer receives, which polling would receive too;
//! this check judges how it waits. A consumer that stopped sending BLOCK would
//! spin through empty reads (the CPU and the Redis commands of a busy loop), and
//! one whose command timeout did not count the block would drop its connection
//! on every quiet stream.

use std::time::Duration;

use esper_core::net::Connector;
use esper_core::oona::{ConsumeRound, StreamConfig};
use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

use super::{BusFixture, CheckResult, command, expect, quick_config};

/// The block the check sets, longer than the command timeout on purpose.
const BLOCK: Duration = Duration::from_millis(800);
const COMMAND_TIMEOUT: Duration = Duration::from_millis(400);

/// A consumer made with no block, then given [`BLOCK`] through `set_block`,
/// reads an empty stream: the round is empty, not a timeout, and took at least
/// the block. Then a group on a key that holds no stream is Redis's error, not
/// a group.
pub(super) async fn blocking_read<C: Connector>(
    fixture: &BusFixture<C>,
    admin: &mut MultiplexedConnection,
) -> CheckResult {
    let config = StreamConfig { block: Duration::ZERO, command_timeout: COMMAND_TIMEOUT, ..quick_config() };
    let mut client = fixture.client(config)?;
    let normal = client.config().normal_stream.clone();
    client.ensure_consumer_group(&normal).await.map_err(|error| error.to_string())?;
    client.set_block(BLOCK);
    let started = Instant::now();
    let round = client
        .consume(&normal, |_| Ok::<(), String>(()))
        .await
        .map_err(|error| format!("an empty stream read with a {BLOCK:?} block: {error}"))?;
    let waited = started.elapsed();
    expect("a round on an empty stream", round, ConsumeRound::default())?;
    if waited < BLOCK {
        return Err(format!("a round on an empty stream returned after {waited:?}; XREADGROUP blocks for {BLOCK:?}"));
    }

    let not_a_stream = "oona.checks.not-a-stream";
    command(admin, redis::cmd("SET").arg(not_a_stream).arg("x")).await?;
    match client.ensure_consumer_group(not_a_stream).await {
        Err(error) if error.server_code() == Some("WRONGTYPE") => Ok(()),
        other => Err(format!("a consumer group on a string key: {other:?}, wanted Redis's WRONGTYPE error")),
    }
}
