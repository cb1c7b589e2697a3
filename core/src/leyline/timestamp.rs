//! A point in time on the wire, laid out like `google.protobuf.Timestamp` (seconds 1,
//! nanos 2) so Leyline bytes stay compatible with the original contracts without
//! pulling in `prost-types`.

/// Time since the Unix epoch. In the sim this is virtual time from a fixed epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// The timestamp `ms` milliseconds after the epoch.
    pub fn from_millis(ms: u64) -> Self {
        // u64 milliseconds / 1000 always fits in i64; the remainder is below 1000.
        let seconds = i64::try_from(ms / 1_000).unwrap_or(i64::MAX);
        let nanos = i32::try_from((ms % 1_000) * 1_000_000).unwrap_or(0);
        Self { seconds, nanos }
    }

    /// The timestamp `ns` nanoseconds after the epoch.
    pub fn from_nanos(ns: u64) -> Self {
        let seconds = i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX);
        let nanos = i32::try_from(ns % 1_000_000_000).unwrap_or(0);
        Self { seconds, nanos }
    }

    /// Nanoseconds since the epoch; times before it (or garbage from a peer) read as 0.
    pub fn as_nanos(&self) -> u64 {
        let seconds = u64::try_from(self.seconds).unwrap_or(0);
        let nanos = u64::try_from(self.nanos).unwrap_or(0).min(999_999_999);
        seconds.saturating_mul(1_000_000_000).saturating_add(nanos)
    }

    /// Milliseconds since the epoch; times before it (or garbage from a peer) read as 0.
    pub fn as_millis(&self) -> u64 {
        let seconds = u64::try_from(self.seconds).unwrap_or(0);
        let millis = u64::try_from(self.nanos / 1_000_000).unwrap_or(0);
        seconds.saturating_mul(1_000).saturating_add(millis)
    }
}
