//! What every real-profile run shares: which Redis to talk to, the Leyline key, and
//! the wall clock that anchors its Unix time.

use esper_core::leyline::SigningKey;
use esper_core::leyline::signing::SECRET_ENV;

use crate::embedded_redis;

/// The Leyline secret when `ESPER_LEYLINE_SECRET` is unset: a real-profile run is
/// then its bus's only writer and reader, so any fixed key serves (and says so).
const LOCAL_SECRET: &[u8] = b"esper-harness-local-secret";

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

/// The Leyline key: `ESPER_LEYLINE_SECRET`, or the local one when unset.
pub fn signing_key() -> Result<(SigningKey, &'static str), String> {
    match std::env::var_os(SECRET_ENV) {
        Some(_) => SigningKey::from_lookup(process_env).map(|key| (key, SECRET_ENV)).map_err(|e| e.to_string()),
        None => {
            SigningKey::new(LOCAL_SECRET.to_vec()).map(|key| (key, "built-in local key")).map_err(|e| e.to_string())
        }
    }
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
