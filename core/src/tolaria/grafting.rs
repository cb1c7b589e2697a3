//! Grafting Kasmina's seeds onto the device after each step.
//!
//! Kasmina decides which seeds exist and where they are in their lifecycle;
//! the device holds their parameters. After every step Tolaria hands the device
//! what Kasmina says it should hold ([`KasminaPort::grafts`]) and the device
//! reconciles: new seeds get parameters, culled ones lose them, alphas move.
//! Each attach and drop is an event; a refusal (a kernel that does not fit the
//! slot, a slot already taken) is an event once per seed and reason, not every step.
//!
//! Before each step with a live seed, Tolaria reads the batch's host and seed
//! gradients from the device and hands them to Kasmina's isolation check: the
//! check judges what the device really computes, not a flag saying the host is
//! detached.

use std::collections::BTreeMap;

use super::device::{Batch, DeviceError, GraftStage};
use super::ports::{KasminaPort, Ports};
use super::trainer::Trainer;
use crate::leyline::{TelemetryEvent, TelemetryLevel};

impl<P: Ports> Trainer<P> {
    /// Makes the device's seeds what Kasmina's are (see the module docs).
    pub(super) fn sync_grafts(&mut self) {
        // Called even with an empty plan: a rollback may have restored a seed
        // Kasmina has since dropped, and this is where it goes again.
        let plan = self.peers.kasmina.grafts();
        let report = match self.device.graft(&plan) {
            Ok(report) => report,
            Err(error) => {
                let attributes = [("error", error.to_string())];
                self.events.push(TelemetryEvent::named("tolaria.graft_failed", TelemetryLevel::Error, &attributes));
                return;
            }
        };
        for (seed, slot) in report.attached {
            tracing::debug!(%seed, slot, "tolaria.seed_grafted");
            let attributes = [("seed", seed), ("slot", slot.to_owned())];
            self.events.push(TelemetryEvent::named("tolaria.seed_grafted", TelemetryLevel::Info, &attributes));
        }
        for seed in report.dropped {
            tracing::debug!(%seed, "tolaria.seed_dropped");
            self.events.push(TelemetryEvent::named("tolaria.seed_dropped", TelemetryLevel::Info, &[("seed", seed)]));
        }
        let mut refusals = BTreeMap::new();
        for (seed, reason) in report.refused {
            if self.graft_refusals.get(&seed) != Some(&reason) {
                tracing::warn!(%seed, %reason, "tolaria.graft_refused");
                let attributes = [("seed", seed.clone()), ("reason", reason.clone())];
                self.events.push(TelemetryEvent::named("tolaria.graft_refused", TelemetryLevel::Warning, &attributes));
            }
            refusals.insert(seed, reason);
        }
        self.graft_refusals = refusals;
    }

    /// Kasmina's isolation check on `batch`'s real gradients while a seed is live
    /// (see the module docs). A device that cannot read gradients skips it; any
    /// other failure is an event, as a failed graft is.
    pub(super) fn check_isolation(&mut self, batch: &Batch) {
        let plan = self.peers.kasmina.grafts();
        let Some(live) = plan.iter().find(|seed| seed.stage != GraftStage::Fossilized) else { return };
        let checked = match self.device.gradients(batch) {
            Ok(gradients) => self.peers.kasmina.check_isolation(&*self.device, &live.seed_id, &gradients),
            Err(DeviceError::Unsupported { .. }) => return,
            Err(error) => Err(super::ports::PortError::Refused { service: "device", reason: error.to_string() }),
        };
        if let Err(error) = checked {
            let attributes = [("seed", live.seed_id.clone()), ("error", error.to_string())];
            self.events.push(TelemetryEvent::named(
                "tolaria.isolation_check_failed",
                TelemetryLevel::Warning,
                &attributes,
            ));
        }
    }
}
