//! Loading CUDA at run time.
//!
//! The build links only the CPU libtorch (`ci/setup-libtorch`), so one binary runs on
//! machines with and without GPUs. On a GPU machine, `libtorch_cuda.so` from the
//! installed PyTorch (found through `LD_LIBRARY_PATH`) is loaded with `dlopen` before
//! the first CUDA tensor; libtorch registers its CUDA backend as the library loads.
//!
//! Determinism on CUDA. What is bit-exact: the same seed on the same GPU model,
//! driver and libtorch gives the same loss sequence, because every kernel this model
//! uses (one cuBLAS GEMM forward and two backward, log-softmax, NLL, element-wise
//! SGD, tree reductions for the sums) is deterministic for a fixed launch
//! configuration, and nothing here uses atomics-based kernels (`index_add`,
//! scatter-add) or several streams. Two things could still break it and are switched
//! off: cuDNN autotuning (`benchmark`, which picks algorithms by timing) and cuDNN
//! itself — tch exposes no switch for cuDNN's deterministic mode, and this model needs
//! no cuDNN kernel, so none may be picked. cuBLAS is reproducible run to run with one
//! stream; `ci/gpu-profile` also sets `CUBLAS_WORKSPACE_CONFIG=:4096:8`, cuBLAS's
//! documented switch for reproducibility across streams, which must be in the
//! environment before the process starts. What is not bit-exact: CUDA against CPU
//! (another summation order and fused multiply-adds), and one GPU model against
//! another (cuBLAS picks kernels per architecture); the GPU tests hold those to a
//! tolerance instead (`tests/gpu_device.rs`).

use std::ffi::{CStr, CString};

use super::DeviceError;

const LIBRARY: &str = "libtorch_cuda.so";

/// Makes `cuda:index` usable with the deterministic settings above, or says why it
/// is not.
pub(super) fn load(index: usize) -> Result<(), DeviceError> {
    let device = format!("cuda:{index}");
    if !tch::Cuda::is_available() {
        dlopen_global(LIBRARY).map_err(|reason| DeviceError::CudaUnavailable { device: device.clone(), reason })?;
    }
    let count = tch::Cuda::device_count();
    if !tch::Cuda::is_available() || index as i64 >= count {
        return Err(DeviceError::CudaUnavailable {
            device,
            reason: format!("{LIBRARY} loaded but libtorch sees {count} CUDA device(s)"),
        });
    }
    tch::Cuda::cudnn_set_benchmark(false);
    tch::Cuda::set_user_enabled_cudnn(false);
    Ok(())
}

/// `dlopen(name, RTLD_NOW | RTLD_GLOBAL)`; the handle is kept for the life of the
/// process on purpose, since libtorch's CUDA backend must never be unloaded.
#[allow(unsafe_code, reason = "dlopen has no safe wrapper; the arguments are checked C strings")]
fn dlopen_global(name: &str) -> Result<(), String> {
    let c_name = CString::new(name).map_err(|error| error.to_string())?;
    // SAFETY: `c_name` is a valid NUL-terminated string that outlives the call, and
    // the flags are valid dlopen flags. dlerror is read on the same thread right after.
    let handle = unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if !handle.is_null() {
        return Ok(());
    }
    // SAFETY: dlerror returns null or a pointer to a NUL-terminated string owned by libc.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        return Err(format!("dlopen({name}) failed"));
    }
    // SAFETY: non-null, NUL-terminated, valid until the next dlerror call on this thread.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
    Err(format!("dlopen({name}): {text}; point LD_LIBRARY_PATH at the installed torch/lib"))
}
