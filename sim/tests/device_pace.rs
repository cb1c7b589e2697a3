//! Device throttling from the fault schedule: `device_slow` and `device_heal`
//! reach a host through `World::device_pace`, and a schedule that paces a device
//! the world does not have is refused before the run.

use std::time::Duration;

use esper_core::tolaria::StepPace;
use esper_sim::{Fault, FaultSchedule, Outcome, ScheduledFault, TraceMode, World};
use tokio::time::Instant;

const HOST: &str = "tolaria";
const STEP_COST: Duration = Duration::from_millis(20);

fn at(at_ms: u64, fault: Fault) -> ScheduledFault {
    ScheduledFault { at_ms, fault }
}

/// Takes ten steps of [`STEP_COST`] at the device's pace and checks when each
/// one ended (sim ms since the start).
async fn trainer(pace: StepPace, expected_ends_ms: Vec<u64>) -> turmoil::Result {
    let started = Instant::now();
    let mut ends_ms = Vec::new();
    for _ in 0..expected_ends_ms.len() {
        tokio::time::sleep(pace.scale(STEP_COST)).await;
        ends_ms.push(u64::try_from(started.elapsed().as_millis())?);
    }
    if ends_ms != expected_ends_ms {
        return Err(format!("steps ended at {ends_ms:?}, expected {expected_ends_ms:?}").into());
    }
    Ok(())
}

#[test]
fn a_slow_device_stretches_the_steps_inside_its_window_only() {
    let schedule = FaultSchedule::new(vec![
        at(100, Fault::DeviceSlow { host: HOST.into(), factor_percent: 400 }),
        at(300, Fault::DeviceHeal { host: HOST.into() }),
    ]);
    let mut world = World::new(3, schedule);
    let pace = world.device_pace(HOST);
    // Nominal 20 ms steps up to 100 ms, 80 ms steps while throttled (the one that
    // starts at 260 ms runs at the slow pace it read), then 20 ms again.
    let ends_ms = vec![20, 40, 60, 80, 100, 180, 260, 340, 360, 380];
    world.client(HOST, trainer(pace, ends_ms));
    let report = world.run("device-pace", TraceMode::Full);
    assert!(report.passed(), "{report}");
    assert!(report.lines.iter().any(|line| line.contains("device of tolaria takes 400% of its step time")));
}

#[test]
fn a_schedule_pacing_a_host_without_a_device_fails_before_the_run() {
    let fault = Fault::DeviceSlow { host: HOST.into(), factor_percent: 500 };
    let mut world = World::new(1, FaultSchedule::new(vec![at(1, fault)]));
    world.client(HOST, async { Ok(()) });
    let report = world.run("device-pace", TraceMode::Hash);
    match report.outcome {
        Outcome::Failed { violation } => {
            assert_eq!(violation.invariant, esper_sim::Invariant::InvalidSchedule, "{violation}");
            assert!(violation.detail.contains("which trains on none"), "{violation}");
        }
        Outcome::Passed => panic!("a schedule pacing a device nobody reads must be refused"),
    }
}
