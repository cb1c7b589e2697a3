//! Nissa in the simulated world: `esper alert-checks` passes every check, the
//! checks catch a Nissa whose alerts do not behave as the catalog says, and its
//! HTTP answers carry nothing from the wall clock.
//! (The `nissa` scenario itself runs over 200 seeds in `determinism.rs`.)

use std::process::Command;
use std::time::Duration;

use esper_core::clock::UnixClock;
use esper_core::net::http1::HttpRequest;
use esper_core::nissa::alerts::{ALERT_NAMES, TrainingLatencyRule};
use esper_core::nissa::{Nissa, NissaConfig, serve_http};
use esper_scenarios::sim::nissa::probe::Probe;
use esper_scenarios::sim::nissa::{alert_checks_with, catalog_checks, sim_config};
use esper_sim::{FaultSchedule, TraceMode, TurmoilConnector, World};

#[test]
fn alert_checks_command_passes_every_alert() {
    let output =
        Command::new(env!("CARGO_BIN_EXE_esper")).args(["fault-drills", "--seed", "5"]).output().expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), ALERT_NAMES.len(), "{stdout}");
    for (line, alert) in lines.iter().zip(ALERT_NAMES) {
        assert!(line.starts_with(alert) && line.contains(" PASS "), "{line}");
    }
}

/// Checks written for RC1's thresholds, run against a Nissa on the runbook's
/// 18 ms rule: the "normal" epochs (150 ms) are still slow there, so the latency
/// alert fires on time but never clears, and the check — and the command — fail.
#[test]
fn drills_catch_an_alert_that_never_clears() {
    let checks = catalog_checks(&sim_config());
    let runbook = NissaConfig { training_latency_rule: TrainingLatencyRule::Runbook, ..sim_config() };
    let report = alert_checks_with(5, runbook, checks);
    assert!(!report.passed());
    let latency = report.checks.iter().find(|check| check.alert == "training_latency_high").expect("ran");
    assert_eq!((latency.fired_after, latency.cleared_after), (Some(3), None), "{latency}");
    assert!(report.checks.iter().filter(|check| check.alert != "training_latency_high").all(|check| check.passed()));
    assert!(report.run.to_string().contains("fault drills failed"), "{}", report.run);
}

/// hyper stamps every response with a `Date` header read from the wall clock
/// unless told not to; under the sim that would put the host's real time into
/// simulated traffic. Nissa's server sends none, on every route and status.
#[test]
fn nissa_under_the_sim_sends_no_wall_clock_date_header() {
    let mut world = World::new(0, FaultSchedule::default());
    let port = sim_config().port;
    world.host("nissa", || async {
        let nissa = Nissa::new(sim_config(), UnixClock::anchored_at(0)).map_err(|error| error.to_string())?;
        serve_http(&TurmoilConnector, nissa).await?;
        Ok(())
    });
    world.client("probe", async move {
        // Lets the host bind before the first request.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let probe = Probe { connector: TurmoilConnector, host: "nissa".to_owned(), port };
        for path in ["/healthz", "/readyz", "/metrics", "/metrics/summary", "/no-such-route"] {
            let response = probe.send(&HttpRequest::get(path)).await?;
            if let Some((_, date)) = response.headers.iter().find(|(name, _)| name == "date") {
                return Err(format!("GET {path} (HTTP {}) carries `Date: {date}`", response.status).into());
            }
        }
        Ok(())
    });
    let report = world.run("nissa-http-date", TraceMode::Hash);
    assert!(report.passed(), "{report}");
}
