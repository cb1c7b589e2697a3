//! Counters declared once: [`leyline_counters!`] turns one declaration per
//! subsystem into the struct, its metric names and its telemetry points.
//!
//! Before, counters reached telemetry three ways (hand-sized `[(&str, u64); N]`
//! arrays, `points()`, inline `MetricPoint::new`), so a new field could compile and
//! never leave its subsystem. Here a field cannot be declared without its Esper-Lite
//! metric name, and [`named`](TolariaCounters::named) and `points` list every
//! field: adding a counter makes it reach Nissa.
//!
//! [`TolariaCounters`]: crate::tolaria::metrics::TolariaCounters

/// Declares a counter struct: `field => "metric.name"`, one per line, each a
/// `u64` running total. Generates the struct (`Debug, Clone, Copy, Default,
/// PartialEq, Eq`, plus whatever the declaration derives), `NAMES`, `named()`
/// (`(name, value)` in declaration order) and `points()` (metric points, no unit).
macro_rules! leyline_counters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* $field:ident => $metric:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name {
            $($(#[$field_meta])* pub $field: u64,)+
        }

        impl $name {
            /// Every counter's metric name, in declaration order.
            pub const NAMES: [&'static str; [$($metric),+].len()] = [$($metric),+];

            /// Every counter with its metric name, in declaration order.
            pub fn named(&self) -> [(&'static str, u64); [$($metric),+].len()] {
                [$(($metric, self.$field)),+]
            }

            /// Every counter as a metric point, in declaration order.
            pub fn points(&self) -> impl Iterator<Item = $crate::leyline::MetricPoint> + use<> {
                self.named()
                    .into_iter()
                    .map(|(name, value)| $crate::leyline::MetricPoint::new(name, value as f64, ""))
            }
        }
    };
}

pub(crate) use leyline_counters;

#[cfg(test)]
mod tests {
    leyline_counters! {
        /// Two counters.
        pub struct Sample {
            /// The first.
            first_total => "sample.first_total",
            second_total => "sample.second_total",
        }
    }

    #[test]
    fn every_field_is_named_and_becomes_a_point_in_declaration_order() {
        let sample = Sample { first_total: 3, second_total: 5 };
        assert_eq!(Sample::NAMES, ["sample.first_total", "sample.second_total"]);
        assert_eq!(sample.named(), [("sample.first_total", 3), ("sample.second_total", 5)]);
        let points: Vec<(String, f64)> = sample.points().map(|point| (point.name, point.value)).collect();
        assert_eq!(points, [("sample.first_total".to_owned(), 3.0), ("sample.second_total".to_owned(), 5.0)]);
    }
}
