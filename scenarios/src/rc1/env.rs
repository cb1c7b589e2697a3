//! `env.json`: where a run happened, so two run directories can be compared
//! knowingly (versions, device, CPU, CUDA, host).

use std::collections::BTreeMap;

use esper_core::tolaria::device::cuda_device_count;
use serde::Serialize;

/// The environment of a harness run.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub esper_version: &'static str,
    /// Whether this build has the libtorch devices, and from where (`LIBTORCH`).
    pub tch_feature: bool,
    pub libtorch: Option<String>,
    pub profile: String,
    pub device: String,
    pub cuda_available: bool,
    /// CUDA devices seen, or why CUDA is not usable.
    pub cuda: String,
    pub cpu_model: String,
    pub cpu_cores: usize,
    pub os: &'static str,
    pub arch: &'static str,
    pub host: String,
    pub redis: String,
    /// Where the Leyline key came from (never the key).
    pub leyline_key: String,
    /// When the run started, Unix milliseconds (wall clock).
    pub started_unix_ms: u64,
    /// Extra facts a scenario adds.
    pub notes: BTreeMap<String, String>,
}

impl Environment {
    /// Reads this machine. CUDA is probed only when the run asked for it, since
    /// probing loads libtorch's CUDA backend.
    pub fn capture(profile: &str, device: &str, redis: String, leyline_key: String, started_unix_ms: u64) -> Self {
        let on_cuda = device.starts_with("cuda");
        let cuda = if on_cuda {
            cuda_device_count().map_err(|e| e.to_string())
        } else {
            Err("not probed (the run did not ask for CUDA)".to_owned())
        };
        let mut notes = BTreeMap::new();
        if on_cuda {
            notes.insert("cuda_determinism".to_owned(), cuda_determinism());
        }
        Self {
            esper_version: env!("CARGO_PKG_VERSION"),
            tch_feature: cfg!(feature = "tch"),
            libtorch: std::env::var("LIBTORCH").ok(),
            profile: profile.to_owned(),
            device: device.to_owned(),
            cuda_available: cuda.as_ref().is_ok_and(|&count| count > 0),
            cuda: cuda.map_or_else(|why| why, |count| format!("{count} device(s)")),
            cpu_model: cpu_model(),
            cpu_cores: std::thread::available_parallelism().map_or(1, usize::from),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map_or_else(|_| "unknown".to_owned(), |name| name.trim().to_owned()),
            redis,
            leyline_key,
            started_unix_ms,
            notes,
        }
    }
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find_map(|line| line.strip_prefix("model name").and_then(|rest| rest.split_once(':')))
        .map_or_else(|| "unknown".to_owned(), |(_, model)| model.trim().to_owned())
}

/// The settings a CUDA run's bit-exactness rests on (`core/src/tolaria/device/cuda.rs`),
/// as this process had them.
fn cuda_determinism() -> String {
    let cublas = std::env::var("CUBLAS_WORKSPACE_CONFIG").unwrap_or_else(|_| "unset".to_owned());
    format!("cuDNN off, cuDNN benchmark off, CUBLAS_WORKSPACE_CONFIG={cublas}, one warm-up step before the first epoch")
}
