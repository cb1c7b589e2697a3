//! Split telemetry: telling that a part is missing.
//!
//! Leyline's builder numbers the parts of split telemetry (`part` of `parts`, ids
//! `<id>-p<part>`; see [`crate::leyline::budget`]). Parts of one packet may travel
//! on different streams (a part with a WARNING event rides the emergency stream),
//! so they need not arrive together. Nissa keeps, per source, the last
//! [`OPEN_GROUPS_PER_SOURCE`] split packets still arriving; when one is pushed out
//! by newer ones, the parts it never got are counted in
//! `esper_telemetry_parts_missing_total{source}`. Sources are capped by the
//! exporter, so this memory is bounded too.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::leyline::TelemetryPacket;

/// Split packets per source still waiting for parts.
pub const OPEN_GROUPS_PER_SOURCE: usize = 4;

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct PartTracker {
    open: BTreeMap<String, VecDeque<Group>>,
}

#[derive(Debug)]
struct Group {
    stem: String,
    parts: u32,
    seen: BTreeSet<u32>,
}

impl Group {
    fn missing(&self) -> u64 {
        u64::from(self.parts).saturating_sub(self.seen.len() as u64)
    }
}

impl PartTracker {
    /// Notes `packet` from `source` (a label); returns the parts found missing now.
    pub fn note(&mut self, source: &str, packet: &TelemetryPacket) -> u64 {
        if packet.parts < 2 || packet.part == 0 || packet.part > packet.parts {
            return 0;
        }
        let stem = packet.packet_id.strip_suffix(&format!("-p{}", packet.part)).unwrap_or(&packet.packet_id);
        let groups = self.open.entry(source.to_owned()).or_default();
        let index = match groups.iter().position(|group| group.stem == stem) {
            Some(index) => index,
            None => {
                groups.push_back(Group { stem: stem.to_owned(), parts: packet.parts, seen: BTreeSet::new() });
                groups.len() - 1
            }
        };
        let mut missing = 0;
        if let Some(group) = groups.get_mut(index) {
            group.seen.insert(packet.part);
            if group.missing() == 0 {
                groups.remove(index);
            }
        }
        while groups.len() > OPEN_GROUPS_PER_SOURCE {
            missing += groups.pop_front().map_or(0, |group| group.missing());
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(id: &str, part: u32, parts: u32) -> TelemetryPacket {
        TelemetryPacket { packet_id: format!("{id}-p{part}"), part, parts, ..TelemetryPacket::default() }
    }

    #[test]
    fn parts_arriving_in_any_order_are_complete_and_a_lost_one_is_counted_once_pushed_out() {
        let mut tracker = PartTracker::default();
        let arrivals = [part("e1", 2, 2), part("e2", 1, 3), part("e1", 1, 2), part("e2", 3, 3), part("e2", 2, 3)];
        assert_eq!(arrivals.iter().map(|p| tracker.note("tolaria", p)).sum::<u64>(), 0, "all parts came");
        assert_eq!(tracker.note("tolaria", &part("e3", 1, 3)), 0, "e3's other parts may still come");
        let later: u64 =
            (4..4 + OPEN_GROUPS_PER_SOURCE).map(|e| tracker.note("tolaria", &part(&format!("e{e}"), 1, 2))).sum();
        assert_eq!(later, 2, "e3 pushed out with 2 of its 3 parts never seen");
        assert_eq!(tracker.note("kasmina", &part("k1", 1, 1)), 0, "not split");
    }
}
