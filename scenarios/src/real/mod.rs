//! The real profile's runtimes: what runs on tokio, real TCP, real files and the
//! wall clock — `esper up`'s services, the embedded Redis server, the Tamiyo WAL
//! operator tools, and what every real-profile run shares.

pub mod embedded_redis;
pub mod real_profile;
pub mod tamiyo_wal;
pub mod up;
