//! Pairs the network's `send` and `deliver` lines into arrows.
//!
//! `esper_sim::net` names a message by its stream and the offset of its first
//! byte; a `deliver` of `[offset, offset + bytes)` delivers every message whose
//! last byte lies in that range. Sends wait in a queue per stream until a
//! delivery covers them. A send that a delivery has already passed was lost (a
//! crash or a cut link); a send whose offset is below the previous one starts a
//! new connection that reuses the stream's name (a restarted host reuses its
//! ports), so what the old one left undelivered was lost too.

use std::collections::{BTreeMap, VecDeque};

use esper_sim::NET_TARGET;

use super::trace_line::TraceLine;

/// A message: the event index of its send and of the delivery that completed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrow {
    pub send: usize,
    pub deliver: usize,
}

/// One message waiting for delivery.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// One past the offset of its last byte.
    end: u64,
    event: usize,
}

/// The arrows of a trace, in the order their deliveries happened.
pub fn arrows(lines: &[TraceLine<'_>]) -> Vec<Arrow> {
    let mut pending: BTreeMap<&str, VecDeque<Pending>> = BTreeMap::new();
    let mut arrows = Vec::new();
    for (event, line) in lines.iter().enumerate().filter(|(_, line)| line.target == NET_TARGET) {
        let Some((stream, start, end)) = extent(line) else { continue };
        let queue = pending.entry(stream).or_default();
        match line.message_word() {
            Some("send") => {
                if queue.back().is_some_and(|last| start < last.end) {
                    queue.clear();
                }
                queue.push_back(Pending { end, event });
            }
            Some("deliver") => {
                while let Some(message) = queue.front().copied().filter(|message| message.end <= end) {
                    queue.pop_front();
                    if message.end > start {
                        arrows.push(Arrow { send: message.event, deliver: event });
                    }
                }
            }
            _ => {}
        }
    }
    arrows
}

/// A net line's stream and byte range.
fn extent<'a>(line: &TraceLine<'a>) -> Option<(&'a str, u64, u64)> {
    let offset: u64 = line.field("offset")?.parse().ok()?;
    let bytes: u64 = line.field("bytes")?.parse().ok()?;
    Some((line.field("stream")?, offset, offset.checked_add(bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(time_us: u64, host: &str, verb: &str, stream: &str, offset: u64, bytes: u64) -> String {
        format!(
            "0.{time_us:06}000 {host} TRACE {NET_TARGET}: message={verb} stream={stream} offset={offset} bytes={bytes}"
        )
    }

    fn pairs(text: &[String]) -> Vec<(usize, usize)> {
        let lines: Vec<TraceLine<'_>> = text
            .iter()
            .enumerate()
            .map(|(index, line)| TraceLine::parse(line, index + 1).expect("canonical"))
            .collect();
        arrows(&lines).into_iter().map(|arrow| (arrow.send, arrow.deliver)).collect()
    }

    #[test]
    fn a_delivery_completes_every_message_whose_last_byte_it_reads() {
        let ab = "a:1>b:2";
        let text = [
            net(1, "a", "send", ab, 0, 10),
            net(2, "a", "send", ab, 10, 5),
            net(3, "b", "deliver", ab, 0, 4),  // part of the first message only
            net(4, "b", "deliver", ab, 4, 11), // the rest of it, and all of the second
            net(5, "a", "send", ab, 15, 3),
            net(6, "b", "deliver", ab, 15, 3),
        ];
        assert_eq!(pairs(&text), [(0, 3), (1, 3), (4, 5)]);
    }

    #[test]
    fn lost_messages_and_reused_stream_names_draw_no_arrow() {
        let ab = "a:1>b:2";
        let text = [
            net(1, "a", "send", ab, 0, 10),
            net(2, "a", "send", ab, 10, 10), // lost in a crash
            net(3, "b", "deliver", ab, 0, 10),
            net(4, "a", "send", ab, 0, 7), // a new connection with the same name
            net(5, "b", "deliver", ab, 0, 7),
            net(6, "b", "deliver", "c:1>b:2", 0, 7), // delivered, never sent: no arrow
        ];
        assert_eq!(pairs(&text), [(0, 2), (3, 4)]);
    }
}
