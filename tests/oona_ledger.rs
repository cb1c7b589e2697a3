//! The Oona delivery ledger balances for 500 seeds of partitions and Redis
//! crashes (`oona-ledger`), and the audit is not toothless: the same world with
//! the publisher's critical outbox switched off loses critical messages.

use esper_scenarios::registry;
use esper_scenarios::sim::oona_ledger::OonaLedgerScenario;
use esper_sim::{Fault, RunReport, TraceMode, run_scenario};

/// A counter from the run's closing `oona ledger balances` event.
fn counter(report: &RunReport, name: &str) -> u64 {
    let line = report.tail.iter().rev().find(|line| line.contains("oona ledger balances"));
    let line = line.unwrap_or_else(|| panic!("no ledger summary in {report}"));
    let value = line.split_whitespace().find_map(|word| word.strip_prefix(&format!("{name}=")));
    value.and_then(|value| value.parse().ok()).unwrap_or_else(|| panic!("no {name} in {line}"))
}

fn crashes(report: &RunReport) -> usize {
    report.schedule.faults().iter().filter(|scheduled| matches!(scheduled.fault, Fault::Crash { .. })).count()
}

/// Runs seeds `seeds`, requiring every one to balance and the shard as a whole to
/// have met crashes, republications and drops.
fn balances(seeds: std::ops::Range<u64>) {
    let scenario = registry::find("oona-ledger").expect("registered");
    let (mut crashed_seeds, mut republished, mut dropped, mut lost, mut acked) = (0, 0, 0, 0, 0);
    for seed in seeds.clone() {
        let report = run_scenario(scenario, seed, TraceMode::Hash);
        assert!(report.passed(), "{report}");
        crashed_seeds += u64::from(crashes(&report) > 0);
        republished += counter(&report, "republished");
        dropped += counter(&report, "dropped");
        lost += counter(&report, "lost_to_crash");
        acked += counter(&report, "acked");
    }
    eprintln!(
        "seeds {seeds:?} balanced: {crashed_seeds} with Redis crashes; {acked} publishes acked, {dropped} dropped \
         (all non-critical, all counted), {republished} critical republished after a crash, {lost} non-critical \
         lost to a crash inside Redis's loss window"
    );
    assert!(
        crashed_seeds * 2 >= seeds.end - seeds.start,
        "the schedule must crash Redis in most seeds: {crashed_seeds}"
    );
    assert!(republished > 0, "some crash must have lost a critical message the outbox then republished");
    assert!(dropped > 0, "backpressure must have dropped something");
}

// 500 seeds in five shards, so nextest runs them in parallel.
#[test]
fn the_ledger_balances_for_seeds_0_to_99() {
    balances(0..100);
}

#[test]
fn the_ledger_balances_for_seeds_100_to_199() {
    balances(100..200);
}

#[test]
fn the_ledger_balances_for_seeds_200_to_299() {
    balances(200..300);
}

#[test]
fn the_ledger_balances_for_seeds_300_to_399() {
    balances(300..400);
}

#[test]
fn the_ledger_balances_for_seeds_400_to_499() {
    balances(400..500);
}

/// Without the outbox a crash inside the loss window loses critical messages, and
/// the audit says so both ways it can: a message the consumer never handled, and
/// (where the consumer read it before the crash) acknowledged entries gone with
/// fewer republishes counted.
#[test]
fn without_the_outbox_some_seeds_lose_critical_messages_and_the_audit_says_so() {
    let broken = OonaLedgerScenario::without_outbox();
    let (mut unhandled, mut unrepublished) = (None, None);
    for seed in 0..500 {
        if unhandled.is_some() && unrepublished.is_some() {
            break;
        }
        let report = run_scenario(&broken, seed, TraceMode::Hash);
        if report.passed() {
            continue;
        }
        let text = report.to_string();
        assert!(crashes(&report) > 0, "only a crash loses acknowledged writes: {text}");
        if text.contains("critical: true") && text.contains("was never handled") {
            unhandled.get_or_insert(text);
        } else if text.contains("no longer holds the acknowledged entries") {
            unrepublished.get_or_insert(text);
        } else {
            panic!("the broken twin failed for another reason: {text}");
        }
    }
    assert!(unhandled.is_some(), "some seed must lose a critical message the consumer never saw");
    assert!(unrepublished.is_some(), "some seed must lose acknowledged critical entries nobody republished");
}
