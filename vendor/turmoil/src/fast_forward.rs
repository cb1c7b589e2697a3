//! Idle fast-forward (ESPER PATCH, see ESPER-PATCH.md at the crate root).
//!
//! [`Sim::step`](crate::Sim::step) advances every host by one tick whether or not
//! anything is due. [`Sim::fast_forward`](crate::Sim::fast_forward) first works out
//! how many of the coming ticks provably do nothing — no task is ready, no timer
//! falls due, no message arrives — and passes them in one go, leaving every clock,
//! RNG and scheduler counter where those ticks would have left it.

use std::time::Duration;

/// How many whole ticks can pass while an event `remaining` away is not yet
/// due. A step of length `tick` handles what falls due at or before its end, so
/// the event is handled by the step `ceil(remaining / tick)`, and the ticks
/// before that one are free.
pub(crate) fn ticks_before(remaining: Duration, tick: Duration) -> u64 {
    let (remaining, tick) = (remaining.as_nanos(), tick.as_nanos().max(1));
    u64::try_from(remaining.saturating_sub(1) / tick).unwrap_or(u64::MAX)
}

/// How many whole ticks fit in `span`.
pub(crate) fn ticks_within(span: Duration, tick: Duration) -> u64 {
    u64::try_from(span.as_nanos() / tick.as_nanos().max(1)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn an_event_due_within_the_next_tick_leaves_no_tick_free() {
        assert_eq!(ticks_before(Duration::ZERO, MS), 0);
        assert_eq!(ticks_before(MS, MS), 0);
        assert_eq!(ticks_before(Duration::from_micros(1_500), MS), 1);
        assert_eq!(ticks_before(5 * MS, MS), 4);
    }

    #[test]
    fn whole_ticks_round_down() {
        assert_eq!(ticks_within(Duration::from_micros(2_999), MS), 2);
        assert_eq!(ticks_within(3 * MS, MS), 3);
    }
}
