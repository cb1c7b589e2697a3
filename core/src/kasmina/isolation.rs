//! Gradient isolation: a seed trains on its own parameters only, and the host
//! model's parameters learn nothing through the seed (the host's activations
//! enter the seed detached). A leak shows as *overlap*: a parameter that
//! received gradient both from the host's loss and from the seed's branch.
//!
//! The check is the same arithmetic wherever the gradients live: with both
//! gradients laid over the model's flat parameter vector, overlap =
//! Σᵢ |g_hostᵢ|·|g_seedᵢ|, zero exactly when their supports are disjoint. A
//! device computes it over its tensors (`(g_host.abs() * g_seed.abs()).sum()`);
//! the `Synthetic` device and the tests hand Kasmina the slices directly.

use crate::env_config::{EnvConfigError, flag};

/// `KASMINA_STRICT_ISOLATION`: a true flag (`env_config::flag`) makes an isolation
/// violation an error instead of a counted event.
pub const STRICT_ISOLATION_ENV: &str = "KASMINA_STRICT_ISOLATION";

/// Overlap above this is a violation. Zero: a detached path yields gradients
/// that are exactly zero, not merely small, so any overlap at all is a leak (the
/// products are taken in f64, where two non-zero f32 magnitudes never vanish).
pub const OVERLAP_TOLERANCE: f64 = 0.0;

/// Σᵢ |hostᵢ|·|seedᵢ| over the common length (a length mismatch is the
/// caller's bug; the shorter vector decides).
pub fn gradient_overlap(host: &[f32], seed: &[f32]) -> f64 {
    debug_assert_eq!(host.len(), seed.len(), "gradients over different parameter vectors");
    host.iter().zip(seed).map(|(h, s)| f64::from(h.abs()) * f64::from(s.abs())).sum()
}

/// Reads `KASMINA_STRICT_ISOLATION` through `lookup` (the environment, or a map
/// in tests) in the crate's one flag grammar (`env_config::flag`); unset is off.
/// Esper-Lite read any value but "0" as on, so `no` turned strict mode on; here
/// a value that is not a flag is refused.
pub fn strict_from(lookup: impl Fn(&str) -> Option<String>) -> Result<bool, EnvConfigError> {
    Ok(flag(STRICT_ISOLATION_ENV, lookup(STRICT_ISOLATION_ENV))?.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_gradients_do_not_overlap_and_a_shared_parameter_does() {
        let host = [0.5, -0.25, 0.0, 0.0];
        assert_eq!(gradient_overlap(&host, &[0.0, 0.0, 1.0, -3.0]), 0.0);
        assert_eq!(gradient_overlap(&host, &[0.0, 2.0, 1.0, 0.0]), 0.5);
        assert!(gradient_overlap(&[f32::MIN_POSITIVE], &[f32::MIN_POSITIVE]) > OVERLAP_TOLERANCE);
    }

    #[test]
    fn strict_mode_follows_esper_lite() {
        let env = |value: &'static str| move |_: &str| Some(value.to_owned());
        assert_eq!((strict_from(env("1")), strict_from(env("yes"))), (Ok(true), Ok(true)));
        assert_eq!(
            (strict_from(env("0")), strict_from(env("no")), strict_from(env("FALSE"))),
            (Ok(false), Ok(false), Ok(false))
        );
        assert_eq!(strict_from(|_: &str| None), Ok(false));
        assert!(strict_from(env("")).is_err() && strict_from(env("strict")).is_err(), "not a flag: refused");
    }
}
