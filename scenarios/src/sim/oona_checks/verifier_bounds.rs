//! The consumer's verifier at its bounds: a frame exactly as old as the freshness
//! window, exactly as far ahead as the allowed skew, and one frame more than the
//! replay check holds. `forged_frames` sends frames well inside and well outside
//! each bound; these two checks look at the edges, where an off-by-one lives.

use esper_core::clock::UnixClock;
use esper_core::leyline::signing::sign;
use esper_core::leyline::{BusMessageType, MessagePriority, VerifyPolicy};
use esper_core::net::Connector;
use esper_core::oona::{OonaClient, StreamConfig, entries};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use redis::aio::MultiplexedConnection;

use super::{
    BusFixture, CLOCK_ORIGIN_MS, CheckResult, MAX_ROUNDS, add_frames, bus_key, checks_policy, command, envelope,
    expect, handled_seqs, quick_config,
};

/// Frames aimed at each freshness bound. A frame's age when the consumer checks
/// it depends on the latencies of four messages (the add and the read, there and
/// back), so each frame lands on the exact millisecond of its bound by chance,
/// about one time in fifteen under the sim's 1–10 ms links: with 24 tries at
/// each, 12 of seeds 0..16 put a frame exactly on the window and 11 on the skew
/// (counted 2026-12-04), so a 16-seed run judges both edges many times over.
const EDGE_TRIES: u64 = 24;

/// The two freshness bounds a frame can be aimed at.
#[derive(Debug, Clone, Copy)]
enum Edge {
    /// Stamped `freshness_window_ms` before the consumer checks it.
    Window,
    /// Stamped `max_future_skew_ms` after the consumer checks it.
    Skew,
}

/// What became of one frame.
enum Fate {
    /// Handled; the check's clock read this (Unix ms) in the handler, the instant
    /// the consumer verified the frame.
    Handled { at_ms: u64 },
    /// Dead-lettered with this reason.
    Refused { reason: String },
}

/// Frames stamped to reach the consumer exactly on a freshness bound, both bounds
/// being inclusive (as Esper-Lite's command verifier: refused only when more than
/// the skew ahead, or more than the window old). Each try aims at the bound with the
/// lag the previous try at it measured; whatever the lag turns out to be, a
/// refusal must name a frame strictly beyond its bound. The verifier's own
/// reading — the age or lead its refusal reports — is what is judged, so the
/// check holds on a real clock too.
pub(super) async fn freshness_bounds<C: Connector>(
    fixture: &BusFixture<C>,
    admin: &mut MultiplexedConnection,
) -> CheckResult {
    let config = StreamConfig { normal_stream: "oona.normal.freshness-bounds".to_owned(), ..quick_config() };
    let policy = checks_policy();
    let clock = UnixClock::anchored_at(CLOCK_ORIGIN_MS);
    let mut client = fixture.client_clocked(config, policy, clock)?;
    let normal = client.config().normal_stream.clone();
    client.ensure_consumer_group(&normal).await.map_err(|error| error.to_string())?;
    let key = bus_key()?;
    let mut rng = ChaCha8Rng::seed_from_u64(fixture.seed.wrapping_add(2));
    let mut lag_ms = [0u64; 2];
    for attempt in 0..2 * EDGE_TRIES {
        let (edge, slot) = if attempt % 2 == 0 { (Edge::Window, 0) } else { (Edge::Skew, 1) };
        let before = clock.now_ms();
        let aimed = before + lag_ms[slot];
        let stamp = match edge {
            Edge::Window => aimed - policy.freshness_window_ms,
            Edge::Skew => aimed + policy.max_future_skew_ms,
        };
        let note = envelope(attempt, BusMessageType::SystemState, MessagePriority::Normal);
        add_frames(admin, &normal, &[sign(&key, &note, stamp, &mut rng)]).await?;
        let checked_at = match settle_one(&mut client, &normal, clock, admin).await? {
            Fate::Handled { at_ms } => at_ms,
            Fate::Refused { reason } => stamp_checked_at(edge, &policy, stamp, &reason)?,
        };
        lag_ms[slot] = checked_at.saturating_sub(before);
    }
    Ok(())
}

/// When the consumer checked a frame stamped `stamp` that it refused with
/// `reason`, or why the refusal is wrong: a frame aimed at a freshness bound may
/// only be refused as stale, or as from the future, and only beyond the bound.
fn stamp_checked_at(edge: Edge, policy: &VerifyPolicy, stamp: u64, reason: &str) -> Result<u64, String> {
    let (bound_ms, word) = match edge {
        Edge::Window => (policy.freshness_window_ms, "stale"),
        Edge::Skew => (policy.max_future_skew_ms, "in the future"),
    };
    let off_ms = refusal_offset_ms(reason)
        .filter(|_| reason.contains(word))
        .ok_or_else(|| format!("a frame aimed at the {edge:?} bound was refused for another reason: {reason}"))?;
    if off_ms <= bound_ms {
        return Err(format!("a frame {off_ms} ms off was refused, inside the {bound_ms} ms {edge:?} bound: {reason}"));
    }
    Ok(match edge {
        Edge::Window => stamp + off_ms,
        Edge::Skew => stamp - off_ms,
    })
}

/// The milliseconds a stale or future refusal says its frame was off by
/// ("stamped N ms ago", "stamped N ms in the future").
fn refusal_offset_ms(reason: &str) -> Option<u64> {
    let (_, rest) = reason.split_once("stamped ")?;
    let (number, _) = rest.split_once(" ms")?;
    number.parse().ok()
}

/// Consumes `stream` until the one entry added to it is handled or dead-lettered.
async fn settle_one<C: Connector>(
    client: &mut OonaClient<C, ChaCha8Rng>,
    stream: &str,
    clock: UnixClock,
    admin: &mut MultiplexedConnection,
) -> Result<Fate, String> {
    let dead_before = client.metrics_snapshot().dead_letter_total;
    for _ in 0..MAX_ROUNDS {
        let mut handled_at = None;
        let round = client.consume(stream, |_| {
            handled_at = Some(clock.now_ms());
            Ok::<(), String>(())
        });
        round.await.map_err(|error| error.to_string())?;
        if let Some(at_ms) = handled_at {
            return Ok(Fate::Handled { at_ms });
        }
        if client.metrics_snapshot().dead_letter_total > dead_before {
            let dead_letters = client.config().dead_letter_stream.clone();
            return Ok(Fate::Refused { reason: newest_reason(admin, &dead_letters).await? });
        }
    }
    Err(format!("a frame was neither handled nor dead-lettered in {MAX_ROUNDS} consume rounds"))
}

/// The `reason` field of the newest entry of the dead-letter stream.
async fn newest_reason(admin: &mut MultiplexedConnection, stream: &str) -> Result<String, String> {
    let reply = command(admin, redis::cmd("XREVRANGE").arg(stream).arg("+").arg("-").arg("COUNT").arg(1)).await?;
    let newest = entries(&reply)?.into_iter().next();
    newest
        .and_then(|entry| entry.field("reason").map(|reason| String::from_utf8_lossy(reason).into_owned()))
        .ok_or_else(|| format!("the newest dead letter has no reason: {reply:?}"))
}

/// Nonces the replay check of [`ledger_policy`] holds: two frames a second over
/// everything that can still be fresh — the 10 s window, the 1 s skew and one 1 s
/// expiry bucket — is 2 × 12 = 24 (Leyline's sizing rule, worked by hand).
const LEDGER_HELD: u64 = 24;
/// Frames sent beyond what the ledger holds.
const LEDGER_EXTRA: u64 = 4;

/// A verifier sized for two frames a second: a replay check small enough to fill.
fn ledger_policy() -> VerifyPolicy {
    VerifyPolicy { freshness_window_ms: 10_000, max_future_skew_ms: 1_000, max_frames_per_s: 2, accept_unsigned: false }
}

/// A consumer whose replay check is sized for two frames a second takes the first
/// [`LEDGER_HELD`] fresh frames and refuses the rest as "replay check full",
/// rather than forgetting a live nonce; every frame is still fresh, so nothing
/// has expired to make room.
pub(super) async fn ledger_full<C: Connector>(
    fixture: &BusFixture<C>,
    admin: &mut MultiplexedConnection,
) -> CheckResult {
    let config = StreamConfig { normal_stream: "oona.normal.ledger-full".to_owned(), ..quick_config() };
    let clock = UnixClock::anchored_at(CLOCK_ORIGIN_MS);
    let mut client = fixture.client_clocked(config, ledger_policy(), clock)?;
    let normal = client.config().normal_stream.clone();
    client.ensure_consumer_group(&normal).await.map_err(|error| error.to_string())?;
    let key = bus_key()?;
    let mut rng = ChaCha8Rng::seed_from_u64(fixture.seed.wrapping_add(3));
    let note = |seq| envelope(seq, BusMessageType::SystemState, MessagePriority::Normal);
    let frames: Vec<Vec<u8>> =
        (0..LEDGER_HELD + LEDGER_EXTRA).map(|seq| sign(&key, &note(seq), clock.now_ms(), &mut rng)).collect();
    add_frames(admin, &normal, &frames).await?;
    let settled = |client: &OonaClient<C, ChaCha8Rng>, handled: usize| {
        handled as u64 + client.metrics_snapshot().dead_letter_total >= LEDGER_HELD + LEDGER_EXTRA
    };
    let handled = handled_seqs(&mut client, &normal, settled).await?;
    expect("handled", handled, (0..LEDGER_HELD).map(Some).collect())?;
    let counters = client.verify_counters();
    expect(
        "accepted, refused as full",
        (counters.accepted, counters.rejected_ledger_full),
        (LEDGER_HELD, LEDGER_EXTRA),
    )?;
    let reason = newest_reason(admin, &client.config().dead_letter_stream).await?;
    expect("the refusal names the full replay check", reason.contains("replay check full"), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_says_how_far_off_its_frame_was() {
        let stale = "frame is stale: stamped 600001 ms ago, beyond the 600000 ms freshness window";
        let future = "frame is stamped 5003 ms in the future, beyond the 5000 ms allowed skew";
        assert_eq!(refusal_offset_ms(stale), Some(600_001));
        assert_eq!(refusal_offset_ms(future), Some(5_003));
        assert_eq!(refusal_offset_ms("frame signature does not match"), None);
    }

    #[test]
    fn a_refusal_on_the_bound_itself_fails_the_check() {
        let policy = checks_policy();
        let on_bound = "frame is stale: stamped 600000 ms ago, beyond the 600000 ms freshness window";
        assert!(stamp_checked_at(Edge::Window, &policy, 1_000, on_bound).is_err());
        let beyond = "frame is stale: stamped 600001 ms ago, beyond the 600000 ms freshness window";
        assert_eq!(stamp_checked_at(Edge::Window, &policy, 1_000, beyond), Ok(601_001));
        let lead_on_bound = "frame is stamped 5000 ms in the future, beyond the 5000 ms allowed skew";
        assert!(stamp_checked_at(Edge::Skew, &policy, 9_000, lead_on_bound).is_err());
        assert!(stamp_checked_at(Edge::Skew, &policy, 9_000, beyond).is_err(), "aimed at the skew, refused as stale");
    }
}
