//! Oona's counters, named as in Esper-Lite (exported with the `oona.` prefix).

/// A copy of every counter at one moment; see [`super::OonaClient::metrics_snapshot`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OonaMetrics {
    /// Messages XADDed (after any reroute).
    pub publish_total: u64,
    /// Normal-stream publishes sent to the emergency stream by backpressure.
    pub publish_rerouted: u64,
    /// Non-critical publishes dropped because the normal stream was too deep.
    pub publish_dropped: u64,
    /// Deepest normal (or kernel-request) stream seen before a publish.
    pub queue_depth_max: u64,
    /// Messages XADDed to the emergency stream.
    pub emergency_published: u64,
    /// Emergency publishes refused by the token bucket.
    pub emergency_rate_dropped: u64,
    /// Critical messages published again after a Redis restart lost them.
    pub republished: u64,
    /// Entries handed to a handler (first deliveries and reclaims).
    pub consumed: u64,
    /// Entries acknowledged after their handler succeeded.
    pub acked: u64,
    /// Handler failures (the entry stays pending and is retried).
    pub handler_failed: u64,
    /// Pending entries taken over by XAUTOCLAIM.
    pub claimed: u64,
    /// Entries a handler rejected as unusable (dead-lettered at once).
    pub handler_rejected: u64,
    /// Entries moved to the dead-letter stream (all reasons).
    pub dead_letter_total: u64,
    /// Of those, entries whose frame did not verify or decode.
    pub invalid_envelopes: u64,
    /// Of those, entries that failed `retry_max_attempts` deliveries.
    pub retries_exhausted: u64,
    /// Connections re-established after a failure.
    pub reconnects: u64,
    /// Restarts of Redis seen (its `run_id` changed).
    pub server_restarts: u64,
}

impl OonaMetrics {
    /// `(name, value)` pairs with Esper-Lite's metric names.
    pub fn named(&self) -> [(&'static str, u64); 17] {
        [
            ("oona.publish_total", self.publish_total),
            ("oona.publish_rerouted", self.publish_rerouted),
            ("oona.publish_dropped", self.publish_dropped),
            ("oona.queue_depth_max", self.queue_depth_max),
            ("oona.emergency_published", self.emergency_published),
            ("oona.emergency_rate_dropped", self.emergency_rate_dropped),
            ("oona.republished", self.republished),
            ("oona.consumed", self.consumed),
            ("oona.acked", self.acked),
            ("oona.handler_failed", self.handler_failed),
            ("oona.handler_rejected", self.handler_rejected),
            ("oona.claimed", self.claimed),
            ("oona.dead_letter_total", self.dead_letter_total),
            ("oona.invalid_envelopes", self.invalid_envelopes),
            ("oona.retries_exhausted", self.retries_exhausted),
            ("oona.reconnects", self.reconnects),
            ("oona.server_restarts", self.server_restarts),
        ]
    }
}
