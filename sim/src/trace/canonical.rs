//! Canonical text for one event.

use std::fmt::Write as _;
use std::time::Duration;

use tracing::field::{Field, Visit};

/// `seconds.nanoseconds`, fixed width after the point, so lines sort and diff well.
pub fn format_sim_time(elapsed: Duration) -> String {
    format!("{}.{:09}", elapsed.as_secs(), elapsed.subsec_nanos())
}

/// Builds `<time> <host> <LEVEL> <target>:` followed by the event's fields.
pub(super) fn line(elapsed: Duration, host: &str, event: &tracing::Event<'_>) -> String {
    let metadata = event.metadata();
    let mut fields = FieldWriter(String::with_capacity(96));
    write!(fields.0, "{} {host} {} {}:", format_sim_time(elapsed), metadata.level(), metadata.target())
        .unwrap_or_default();
    event.record(&mut fields);
    fields.0
}

/// Appends ` name=value` per field. Strings are quoted and escaped so a value can
/// never forge another field; floats use Rust's shortest round-trip form, which is
/// the same on every platform.
struct FieldWriter(String);

impl FieldWriter {
    fn push(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        // Writing into a String cannot fail.
        write!(self.0, " {}={}", field.name(), value).unwrap_or_default();
    }
}

impl Visit for FieldWriter {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, format_args!("{value:?}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, format_args!("{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, format_args!("{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, format_args!("{value}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, format_args!("{value:?}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, format_args!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_time_has_fixed_nanosecond_width() {
        assert_eq!(format_sim_time(Duration::from_millis(1_500)), "1.500000000");
        assert_eq!(format_sim_time(Duration::ZERO), "0.000000000");
    }
}
