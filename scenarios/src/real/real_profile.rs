//! What every real-profile run shares: which Redis to talk to, the Leyline key, and
//! the wall clock that anchors its Unix time.

use esper_core::leyline::signing::{MIN_SECRET_BYTES, SECRET_ENV};
use esper_core::leyline::{SigningKey, SigningKeyError};

use crate::real::embedded_redis;

/// Which Redis the real profile talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// The simulated server over real TCP, started in this process.
    Embedded,
    /// A server at this address (`redis://host:port[/db]`).
    Url { host: String, port: u16 },
}

impl RedisTarget {
    /// Parses `--redis-url`: `embedded`, or `redis://host[:port][/0]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "embedded" {
            return Ok(Self::Embedded);
        }
        let rest = text
            .strip_prefix("redis://")
            .ok_or_else(|| format!("--redis-url {text:?}: expected `embedded` or redis://host[:port][/0]"))?;
        let (address, db) = rest.split_once('/').unwrap_or((rest, "0"));
        if !(db.is_empty() || db == "0") {
            return Err(format!("--redis-url {text:?}: Oona uses database 0 only"));
        }
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) => {
                (host, port.parse().map_err(|_| format!("--redis-url {text:?}: {port:?} is not a port"))?)
            }
            None => (address, 6_379),
        };
        if host.is_empty() || host.contains('@') {
            return Err(format!("--redis-url {text:?}: expected a host (no credentials)"));
        }
        Ok(Self::Url { host: host.to_owned(), port })
    }

    /// Where to connect: the embedded server is started here (a fresh one per call).
    pub fn address(&self) -> std::io::Result<(String, u16)> {
        match self {
            Self::Embedded => Ok(("127.0.0.1".to_owned(), embedded_redis::start_embedded()?)),
            Self::Url { host, port } => Ok((host.clone(), *port)),
        }
    }

    /// How the target reads in reports.
    pub fn describe(&self) -> String {
        match self {
            Self::Embedded => "embedded (simulated server over TCP)".to_owned(),
            Self::Url { host, port } => format!("redis://{host}:{port}"),
        }
    }
}

/// The process environment as the lookup `esper-core`'s configs take
/// (`from_lookup`): core never reads the environment itself (clippy.toml), so a
/// simulated run cannot depend on it; the real profile passes this in.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Whether the caller passed `--insecure-dev-key`: consent to run without
/// `ESPER_LEYLINE_SECRET` on a key made up for this process alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevKey {
    /// No secret, no run (the default).
    Refused,
    /// No secret: sign with a fresh random key that only this process knows.
    Allowed,
}

/// Where a real-profile run's Leyline key came from (never the key itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `ESPER_LEYLINE_SECRET`.
    Environment,
    /// `--insecure-dev-key`: random, this process only.
    InsecureDevKey,
}

impl KeySource {
    /// How the source reads in `env.json` and the `ready` line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Environment => SECRET_ENV,
            Self::InsecureDevKey => "insecure dev key (random, this process only)",
        }
    }
}

/// The key a real-profile run signs and verifies with, and where it came from.
#[derive(Debug, Clone)]
pub struct RealKey {
    pub key: SigningKey,
    pub source: KeySource,
}

/// Why a real-profile run has no key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No secret and no consent to run without one.
    #[error(
        "{SECRET_ENV} is not set, and the real profile has no built-in key. Set it to a shared secret of at least \
         {MIN_SECRET_BYTES} bytes (for example `export {SECRET_ENV}=$(openssl rand -hex 32)`), or pass \
         --insecure-dev-key for a run whose bus no other process reads"
    )]
    Missing,
    /// The secret is set but unusable (empty, too short).
    #[error("{0}")]
    Invalid(#[from] SigningKeyError),
    /// The operating system gave no randomness for a dev key.
    #[error("drawing a random dev key: {0}")]
    Entropy(std::io::Error),
}

/// The real profile's Leyline key: `ESPER_LEYLINE_SECRET` from `lookup` (at least
/// [`MIN_SECRET_BYTES`] bytes), or, only with `--insecure-dev-key`, a random key no
/// other process knows. Never a key built into the binary: one published in the
/// source would let anyone who can reach the bus forge commands. Its nonces are a
/// random prefix drawn here, once per process, and a counter, so two processes
/// started with the same `--seed` never sign with the same nonce.
pub fn signing_key(lookup: impl Fn(&str) -> Option<String>, dev_key: DevKey) -> Result<RealKey, KeyError> {
    let (key, source) = if lookup(SECRET_ENV).is_some() {
        (SigningKey::from_lookup(lookup)?, KeySource::Environment)
    } else if dev_key == DevKey::Allowed {
        let secret = os_random::<MIN_SECRET_BYTES>().map_err(KeyError::Entropy)?;
        (SigningKey::new(secret.to_vec())?, KeySource::InsecureDevKey)
    } else {
        return Err(KeyError::Missing);
    };
    let prefix = os_random().map_err(KeyError::Entropy)?;
    Ok(RealKey { key: key.with_nonce_prefix(prefix), source })
}

/// `N` bytes from the operating system's entropy pool: the real profile's only
/// unseeded randomness (a dev key, the per-process nonce prefix), never the sim's.
pub fn os_random<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(bytes)
}

/// Unix milliseconds from the wall clock: the real profile's time origin (the sim's
/// is fixed), for Unix clocks, report stamps and the embedded Redis's stream ids.
pub fn wall_clock_ms() -> u64 {
    #[allow(clippy::disallowed_methods, reason = "the real profile's Redis stamps ids with wall time, as Redis does")]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned())
    }

    #[test]
    fn no_secret_means_no_key_unless_a_dev_key_is_allowed() {
        assert!(matches!(signing_key(env(&[]), DevKey::Refused), Err(KeyError::Missing)));
        let message = KeyError::Missing.to_string();
        assert!(message.contains("--insecure-dev-key") && message.contains("openssl rand"), "{message}");
        let first = signing_key(env(&[]), DevKey::Allowed).expect("a dev key");
        let second = signing_key(env(&[]), DevKey::Allowed).expect("a dev key");
        assert_eq!(first.source, KeySource::InsecureDevKey);
        let envelope = esper_core::leyline::BusEnvelope::default();
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let frame = esper_core::leyline::signing::sign(&first.key, &envelope, 1, &mut rng);
        let mut verifier = esper_core::leyline::Verifier::new(second.key, Default::default());
        assert!(verifier.verify(&frame, 1).is_err(), "two dev keys differ: nothing is built in");
    }

    /// Real-profile nonces: two processes (two keys) with the same seeded RNG, and
    /// two clones of one key, never sign with the same nonce.
    #[test]
    fn real_profile_nonces_differ_across_processes_and_clones_whatever_the_seed() {
        let secret = env(&[(SECRET_ENV, "0123456789abcdef0123456789abcdef")]);
        let nonce_of = |key: &SigningKey| {
            let mut same_seed = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(42);
            let envelope = esper_core::leyline::BusEnvelope::default();
            let frame = esper_core::leyline::signing::sign(key, &envelope, 1, &mut same_seed);
            frame[14..30].to_vec()
        };
        let first = signing_key(&secret, DevKey::Refused).expect("a key").key;
        let second = signing_key(&secret, DevKey::Refused).expect("a key").key;
        let clone = first.clone();
        let nonces = [nonce_of(&first), nonce_of(&clone), nonce_of(&second), nonce_of(&first)];
        assert_ne!(nonces[0], nonces[1], "clones share one counter");
        assert_eq!(nonces[0][..8], nonces[1][..8], "one process, one prefix");
        assert_ne!(nonces[0][..8], nonces[2][..8], "another process draws another prefix");
        assert_eq!(nonces[3][8..], 2_u64.to_be_bytes(), "the counter counts");
    }

    #[test]
    fn a_short_secret_is_a_typed_error_and_a_long_one_is_used() {
        let short = signing_key(env(&[(SECRET_ENV, "hunter2")]), DevKey::Allowed);
        assert!(matches!(short, Err(KeyError::Invalid(SigningKeyError::TooShort { len: 7, .. }))), "{short:?}");
        let long = signing_key(env(&[(SECRET_ENV, "0123456789abcdef0123456789abcdef")]), DevKey::Refused);
        assert_eq!(long.map(|key| key.source).ok(), Some(KeySource::Environment));
    }

    #[test]
    fn redis_urls_parse_or_say_what_is_wrong() {
        assert_eq!(RedisTarget::parse("embedded"), Ok(RedisTarget::Embedded));
        let url = |host: &str, port| Ok(RedisTarget::Url { host: host.to_owned(), port });
        assert_eq!(RedisTarget::parse("redis://127.0.0.1:6380"), url("127.0.0.1", 6380));
        assert_eq!(RedisTarget::parse("redis://cache/0"), url("cache", 6379));
        for bad in ["http://x", "redis://x:port", "redis://x/3", "redis://", "redis://u:p@x"] {
            assert!(RedisTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
