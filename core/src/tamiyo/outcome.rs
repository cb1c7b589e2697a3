//! What a command's `FieldReport` says: its outcome and the metrics behind it.
//!
//! Simic learns from field reports, so the outcome has to mean the same thing every
//! time. Esper-Lite's rules, applied to the command's `risk_reason`:
//!
//! * a timeout (`timeout_inference`, `timeout_urza`) says nothing about the policy:
//!   NEUTRAL;
//! * a veto because something went wrong in training (`bp_quarantine`, `loss_spike`,
//!   `isolation_violation`, `hook_budget`): REGRESSION;
//! * a PAUSE that is simply "leave it alone" (`conservative_mode`, `policy`, none):
//!   NEUTRAL;
//! * anything else — a command that went out as proposed: SUCCESS.

use std::collections::BTreeMap;

use crate::leyline::{AdaptationCommand, CommandPayload, CommandType, FieldReport, FieldReportOutcome, FollowUpAction};

/// Annotation key holding the veto or pause reason.
pub const RISK_REASON: &str = "risk_reason";

/// Field report metric: the probability the learned head drew the blueprint with.
pub const POLICY_PROBABILITY: &str = "policy_probability";

/// Reasons that mean training itself was in trouble.
pub const REGRESSION_REASONS: [&str; 4] = ["bp_quarantine", "loss_spike", "isolation_violation", "hook_budget"];

/// Reasons that are timeouts.
pub const TIMEOUT_REASONS: [&str; 2] = ["timeout_inference", "timeout_urza"];

/// The outcome Esper-Lite's rules give `command` (see the module docs).
pub fn field_report_outcome(command: &AdaptationCommand) -> FieldReportOutcome {
    let reason = command.annotations.get(RISK_REASON).map_or("", String::as_str);
    if TIMEOUT_REASONS.contains(&reason) {
        return FieldReportOutcome::Neutral;
    }
    if REGRESSION_REASONS.contains(&reason) {
        return FieldReportOutcome::Regression;
    }
    let pause = command.command_type == i32::from(CommandType::Pause);
    if pause && ["conservative_mode", "policy", ""].contains(&reason) {
        return FieldReportOutcome::Neutral;
    }
    FieldReportOutcome::Success
}

/// The figures a report carries beside its outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportFigures {
    /// Change of the smoothed loss at the decision (`loss_delta`).
    pub loss_delta: f32,
    /// The packet's validation loss.
    pub validation_loss: f32,
    /// The proposed blueprint's risk (0 when none).
    pub blueprint_risk: f32,
    /// Time the decision took.
    pub inference_latency_ms: f32,
    /// Whether conservative mode was on after the decision.
    pub conservative_mode: bool,
    /// The probability the learned head drew the germinated blueprint with (none
    /// when the rule chose it).
    pub policy_probability: Option<f32>,
}

/// The field report for `command`, issued in run `training_run_id` under `policy_version`.
pub fn field_report(
    command: &AdaptationCommand,
    training_run_id: &str,
    policy_version: &str,
    figures: ReportFigures,
) -> FieldReport {
    assert!(!command.command_id.is_empty(), "a field report needs the id of an issued command");
    let blueprint_id = match &command.payload {
        Some(CommandPayload::SeedOperation(operation)) => operation.blueprint_id.clone(),
        _ => String::new(),
    };
    let mut metrics = BTreeMap::from([
        ("loss_delta".to_owned(), figures.loss_delta),
        ("validation_loss".to_owned(), figures.validation_loss),
        ("blueprint_risk".to_owned(), figures.blueprint_risk),
        ("inference_latency_ms".to_owned(), figures.inference_latency_ms),
    ]);
    if let Some(probability) = figures.policy_probability {
        metrics.insert(POLICY_PROBABILITY.to_owned(), probability);
    }
    let follow_up_actions = figures
        .conservative_mode
        .then(|| FollowUpAction {
            action_type: "CONSERVATIVE_MODE".to_owned(),
            rationale: "Tamiyo is in conservative mode; adaptations are paused".to_owned(),
        })
        .into_iter()
        .collect();
    FieldReport {
        version: 1,
        report_id: format!("fr-{}", command.command_id),
        command_id: command.command_id.clone(),
        training_run_id: training_run_id.to_owned(),
        seed_id: command.target_seed_id.clone(),
        blueprint_id,
        outcome: field_report_outcome(command).into(),
        metrics,
        observation_window_epochs: 1,
        issued_at: command.issued_at,
        tamiyo_policy_version: policy_version.to_owned(),
        follow_up_actions,
        notes: command.annotations.get(RISK_REASON).cloned().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(command_type: CommandType, reason: Option<&str>) -> AdaptationCommand {
        let mut command = AdaptationCommand { command_type: command_type.into(), ..AdaptationCommand::default() };
        if let Some(reason) = reason {
            command.annotations.insert(RISK_REASON.to_owned(), reason.to_owned());
        }
        command
    }

    /// Each row: command type, risk reason, expected outcome.
    #[test]
    fn outcomes_follow_esper_lites_rules() {
        use CommandType::{Optimizer, Pause, Seed};
        use FieldReportOutcome::{Neutral, Regression, Success};
        let cases = [
            (Pause, Some("timeout_inference"), Neutral),
            (Pause, Some("timeout_urza"), Neutral),
            (Pause, Some("bp_quarantine"), Regression),
            (Pause, Some("loss_spike"), Regression),
            (Pause, Some("isolation_violation"), Regression),
            (Pause, Some("hook_budget"), Regression),
            (Pause, Some("conservative_mode"), Neutral),
            (Pause, Some("policy"), Neutral),
            (Pause, None, Neutral),
            (Pause, Some("policy_risk"), Success),
            (Seed, None, Success),
            (Optimizer, None, Success),
        ];
        for (command_type, reason, expected) in cases {
            let outcome = field_report_outcome(&command(command_type, reason));
            assert_eq!(outcome, expected, "{command_type:?} with reason {reason:?}");
        }
    }
}
