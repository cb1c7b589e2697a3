//! `SlowDevice`: a [`Device`] whose every training step first sleeps
//! (`esper up --fault-step-delay`), standing in for a slow libtorch step.
//!
//! The `Device` seam is synchronous, so the sleep holds whichever thread runs the
//! trainer, exactly as a long libtorch call does. It shows that Tolaria's thread
//! is the only one held (see `tolaria_thread`). Real profile only: a fault for a
//! drill on a real machine, never for the sim, whose step cost is modelled time.

use std::time::Duration;

use esper_core::tolaria::device::{
    Batch, Device, DeviceError, Evaluation, Gradients, GraftReport, SeedGraft, Slot, StepOutcome,
};

/// `inner`, each `train_step` delayed by `step_delay`.
pub(super) struct SlowDevice {
    inner: Box<dyn Device>,
    step_delay: Duration,
}

/// `device` itself when `step_delay` is zero (the usual run has no extra layer),
/// otherwise wrapped.
pub(super) fn with_step_delay(device: Box<dyn Device>, step_delay: Duration) -> Box<dyn Device> {
    if step_delay.is_zero() { device } else { Box::new(SlowDevice { inner: device, step_delay }) }
}

/// Every method forwards to `inner`, the provided ones too: a device that grafts
/// must keep grafting behind the delay.
impl Device for SlowDevice {
    fn label(&self) -> String {
        self.inner.label()
    }

    fn train_step(&mut self, batch: &Batch) -> Result<StepOutcome, DeviceError> {
        std::thread::sleep(self.step_delay);
        self.inner.train_step(batch)
    }

    fn evaluate(&mut self, batch: &Batch) -> Result<Evaluation, DeviceError> {
        self.inner.evaluate(batch)
    }

    fn snapshot(&self) -> Result<Vec<u8>, DeviceError> {
        self.inner.snapshot()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), DeviceError> {
        self.inner.restore(snapshot)
    }

    fn gradient_overlap(&self, host: &[f32], seed: &[f32]) -> Result<f64, DeviceError> {
        self.inner.gradient_overlap(host, seed)
    }

    fn slots(&self) -> Vec<Slot> {
        self.inner.slots()
    }

    fn graft(&mut self, plan: &[SeedGraft]) -> Result<GraftReport, DeviceError> {
        self.inner.graft(plan)
    }

    fn gradients(&mut self, batch: &Batch) -> Result<Gradients, DeviceError> {
        self.inner.gradients(batch)
    }
}
