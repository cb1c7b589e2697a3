//! What the WAL tells its operator when it cuts damage away, for `wal-soak`.
//!
//! A non-strict open that truncates a damaged tail must say so: one warning per
//! cut, naming the damage by its stable snake_case name — what an operator's
//! alert or a log search matches on (Esper-Lite's non-strict load "logs, keeps
//! earlier records"). The names are spelled out here, not asked of the WAL, so a
//! WAL that misnames its damage is caught. The soak injects a torn record (a bare
//! length prefix) every ten reports, so every run must show at least one cut named
//! `torn_frame_header`.

/// The six damage names, as `esper_core::wal::DamageReason` documents them.
const DAMAGE_NAMES: [&str; 6] = [
    "torn_file_header",
    "bad_file_header",
    "torn_frame_header",
    "torn_payload",
    "oversized_length",
    "checksum_mismatch",
];
/// The message of the WAL's cut warning.
const CUT_MESSAGE: &str = "message=damaged log truncated to its valid prefix ";
/// The damage the soak's injected torn record is.
const INJECTED: &str = "torn_frame_header";

/// Judges the WAL's log lines of a whole run (see the module docs).
pub fn check(lines: &[String]) -> Result<(), String> {
    let mut injected_cut = false;
    for line in lines.iter().filter(|line| line.contains(CUT_MESSAGE)) {
        let reason = field(line, "reason").ok_or_else(|| format!("a cut warning names no reason: {line}"))?;
        if !DAMAGE_NAMES.contains(&reason) {
            return Err(format!("a cut warning names its damage {reason:?}, not one of {DAMAGE_NAMES:?}: {line}"));
        }
        injected_cut |= reason == INJECTED;
    }
    if injected_cut {
        Ok(())
    } else {
        Err(format!("no cut warning named {INJECTED:?}, though the soak injects torn records"))
    }
}

/// The quoted string value of ` name="…"` in a canonical trace line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}=\""))? + name.len() + 3;
    line[start..].split('"').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(reason: &str) -> String {
        format!(
            "0.100000000 tamiyo WARN esper_core::wal: {CUT_MESSAGE}path=a.log offset=103 reason=\"{reason}\" dropped_bytes=3"
        )
    }

    #[test]
    fn cuts_named_by_the_documented_names_pass_once_the_injection_is_among_them() {
        assert_eq!(check(&[cut("checksum_mismatch"), cut("torn_frame_header")]), Ok(()));
        assert!(check(&[cut("checksum_mismatch")]).is_err_and(|error| error.contains("no cut warning")));
        assert!(check(&[]).is_err());
    }

    #[test]
    fn a_misnamed_or_unnamed_cut_fails() {
        for reason in ["", "xyzzy", "TornFrameHeader"] {
            let lines = [cut("torn_frame_header"), cut(reason)];
            assert!(check(&lines).is_err_and(|error| error.contains("not one of")), "{reason:?}");
        }
        let unnamed = format!("0.1 tamiyo WARN esper_core::wal: {CUT_MESSAGE}path=a.log offset=1");
        assert!(check(&[unnamed]).is_err_and(|error| error.contains("names no reason")));
    }
}
