//! Oona's counters, named as in Esper-Lite (exported with the `oona.` prefix).

use crate::leyline::counters::leyline_counters;

leyline_counters! {
    /// A copy of every counter at one moment; see [`super::OonaClient::metrics_snapshot`].
    #[derive(serde::Serialize)]
    pub struct OonaMetrics {
        /// Messages XADDed (after any reroute).
        publish_total => "oona.publish_total",
        /// Normal-stream publishes sent to the emergency stream by backpressure.
        publish_rerouted => "oona.publish_rerouted",
        /// Non-critical publishes dropped because the normal stream was too deep.
        publish_dropped => "oona.publish_dropped",
        /// Deepest normal (or kernel-request) stream seen before a publish.
        queue_depth_max => "oona.queue_depth_max",
        /// Messages XADDed to the emergency stream.
        emergency_published => "oona.emergency_published",
        /// Emergency publishes refused by the token bucket.
        emergency_rate_dropped => "oona.emergency_rate_dropped",
        /// Critical messages published again after a Redis restart lost them.
        republished => "oona.republished",
        /// Entries handed to a handler (first deliveries and reclaims).
        consumed => "oona.consumed",
        /// Entries acknowledged after their handler succeeded.
        acked => "oona.acked",
        /// Handler failures (the entry stays pending and is retried).
        handler_failed => "oona.handler_failed",
        /// Pending entries taken over by XAUTOCLAIM.
        claimed => "oona.claimed",
        /// Entries a handler rejected as unusable (dead-lettered at once).
        handler_rejected => "oona.handler_rejected",
        /// Entries moved to the dead-letter stream (all reasons).
        dead_letter_total => "oona.dead_letter_total",
        /// Of those, entries whose frame did not verify or decode.
        invalid_envelopes => "oona.invalid_envelopes",
        /// Of those, entries that failed `retry_max_attempts` deliveries.
        retries_exhausted => "oona.retries_exhausted",
        /// Connections re-established after a failure.
        reconnects => "oona.reconnects",
        /// Restarts of Redis seen (its `run_id` changed).
        server_restarts => "oona.server_restarts",
    }
}
