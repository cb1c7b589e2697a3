//! Canonical text for one event.

use std::fmt::Write as _;
use std::time::Duration;

use tracing::field::{Field, Visit};

/// `seconds.nanoseconds`, fixed width after the point, so lines sort and diff well.
pub fn format_sim_time(elapsed: Duration) -> String {
    let mut text = String::with_capacity(20);
    write_sim_time(&mut text, elapsed);
    text
}

/// Appends `{secs}.{nanos:09}` digit by digit: it starts every trace line, and
/// `format_args!` with padding costs several times as much.
fn write_sim_time(text: &mut String, elapsed: Duration) {
    let mut digits = [0_u8; 20];
    let mut secs = elapsed.as_secs();
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (secs % 10) as u8;
        secs /= 10;
        if secs == 0 {
            break;
        }
    }
    let mut nanos = [b'0'; 9];
    let mut rest = elapsed.subsec_nanos();
    for digit in nanos.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    for part in [&digits[start..], b".", &nanos] {
        // ASCII digits and a point: always UTF-8.
        text.push_str(std::str::from_utf8(part).unwrap_or_default());
    }
}

/// Builds `<time> <host> <LEVEL> <target>:` followed by the event's fields.
/// Every event of a run passes through here, so the fixed parts are pushed as
/// strings rather than run through `format_args!`.
pub(super) fn line(elapsed: Duration, host: &str, event: &tracing::Event<'_>) -> String {
    let metadata = event.metadata();
    let mut fields = FieldWriter(String::with_capacity(128));
    write_sim_time(&mut fields.0, elapsed);
    for part in [" ", host, " ", metadata.level().as_str(), " ", metadata.target(), ":"] {
        fields.0.push_str(part);
    }
    event.record(&mut fields);
    fields.0
}

/// Appends ` name=value` per field. Strings are quoted and escaped so a value can
/// never forge another field; floats use Rust's shortest round-trip form, which is
/// the same on every platform.
struct FieldWriter(String);

impl FieldWriter {
    fn push(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        self.push_name(field);
        // Writing into a String cannot fail.
        self.0.write_fmt(value).unwrap_or_default();
    }

    fn push_name(&mut self, field: &Field) {
        self.0.push(' ');
        self.0.push_str(field.name());
        self.0.push('=');
    }
}

/// Whether `{value:?}` prints `value` between quotes unchanged: printable ASCII
/// other than `"` and `\`, the only printable ASCII characters `str`'s `Debug`
/// escapes.
fn debug_prints_verbatim(value: &str) -> bool {
    value.bytes().all(|byte| (b' '..=b'~').contains(&byte) && byte != b'"' && byte != b'\\')
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
        if debug_prints_verbatim(value) {
            self.push_name(field);
            for part in ["\"", value, "\""] {
                self.0.push_str(part);
            }
        } else {
            self.push(field, format_args!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, format_args!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcut for plain strings must print what `Debug` prints, or every
    /// pinned trace hash moves.
    #[test]
    fn verbatim_strings_are_exactly_their_debug_form() {
        for value in ["", "plain text", "a'b", "~!@#$%^&*()_+-={}[]|:;<>,.?/ 0-9", "tolaria.training"] {
            assert!(debug_prints_verbatim(value), "{value}");
            assert_eq!(format!("\"{value}\""), format!("{value:?}"));
        }
        for value in ["quote\"", "back\\slash", "tab\t", "new\nline", "del\u{7f}", "caf\u{e9}", "\u{200b}"] {
            assert!(!debug_prints_verbatim(value), "{value:?} would not print as itself");
        }
        for byte in 0_u8..128 {
            let value = char::from(byte).to_string();
            assert_eq!(debug_prints_verbatim(&value), format!("{value:?}") == format!("\"{value}\""), "{byte:#04x}");
        }
    }

    #[test]
    fn sim_time_has_fixed_nanosecond_width() {
        assert_eq!(format_sim_time(Duration::from_millis(1_500)), "1.500000000");
        assert_eq!(format_sim_time(Duration::ZERO), "0.000000000");
        for elapsed in [Duration::new(7, 5), Duration::new(1_234, 999_999_999), Duration::new(u64::MAX, 1)] {
            let expected = format!("{}.{:09}", elapsed.as_secs(), elapsed.subsec_nanos());
            assert_eq!(format_sim_time(elapsed), expected);
        }
    }
}
