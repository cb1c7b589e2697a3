//! Tamiyo's side of the policy stream: read Simic's `PolicyUpdate`s from Oona and
//! hot-swap to each ([`TamiyoService::install_policy`]). An update that does not
//! decode or validate is acknowledged and dropped — retrying cannot fix it — and
//! the head in force stays: the last known-good one.

use rand::RngCore;

use crate::leyline::PolicyUpdate;
use crate::net::Connector;
use crate::oona::{Handled, OonaClient, OonaError};

use super::service::TamiyoService;

/// What one round on the policy stream did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyRound {
    pub installed: u32,
    pub rejected: u32,
}

/// One consume round on the policy stream, applying every update read to `service`.
pub async fn apply_policy_updates<C: Connector, R: RngCore, M, S>(
    client: &mut OonaClient<C, R>,
    service: &mut TamiyoService<M, S>,
) -> Result<PolicyRound, OonaError> {
    let stream = client.config().policy_stream.clone();
    let mut round = PolicyRound::default();
    client
        .consume_with(&stream, |delivery| {
            let Ok(update) = delivery.envelope.open::<PolicyUpdate>() else {
                round.rejected += 1;
                return Handled::Reject("not a PolicyUpdate".to_owned());
            };
            match service.install_policy(&update) {
                Ok(()) => round.installed += 1,
                Err(_) => round.rejected += 1,
            }
            Handled::Done
        })
        .await?;
    Ok(round)
}
