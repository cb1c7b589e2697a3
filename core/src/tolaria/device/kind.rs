//! Choosing a device by name, as the CLI's `--device` does.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;

use super::{Device, DeviceError, ModelSpec, Synthetic};

/// A device by name: `synthetic`, `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// The pure-Rust model.
    Synthetic,
    /// libtorch on the CPU.
    Cpu,
    /// libtorch on CUDA device N.
    Cuda(usize),
}

impl DeviceKind {
    /// Builds the model of `spec` on this device, initialised from `rng`.
    pub fn build(self, spec: ModelSpec, rng: &mut dyn RngCore) -> Result<Box<dyn Device>, DeviceError> {
        match self {
            Self::Synthetic => Ok(Box::new(Synthetic::new(spec, rng))),
            #[cfg(feature = "tch")]
            Self::Cpu | Self::Cuda(_) => Ok(Box::new(super::TchDevice::new(self, spec, rng)?)),
            #[cfg(not(feature = "tch"))]
            Self::Cpu | Self::Cuda(_) => Err(DeviceError::NeedsTch(self.to_string())),
        }
    }
}

/// How many CUDA devices libtorch sees (loading CUDA if it can), or why none can be
/// used: a build without `tch`, or no CUDA libraries or devices on this machine.
pub fn cuda_device_count() -> Result<usize, DeviceError> {
    #[cfg(feature = "tch")]
    {
        super::cuda::load(0)?;
        Ok(usize::try_from(tch::Cuda::device_count()).unwrap_or(0))
    }
    #[cfg(not(feature = "tch"))]
    Err(DeviceError::NeedsTch("cuda".to_owned()))
}

impl FromStr for DeviceKind {
    type Err = DeviceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "synthetic" => Ok(Self::Synthetic),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => text
                .strip_prefix("cuda:")
                .and_then(|index| index.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| DeviceError::UnknownDevice(text.to_owned())),
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Synthetic => write!(formatter, "synthetic"),
            Self::Cpu => write!(formatter, "cpu"),
            Self::Cuda(index) => write!(formatter, "cuda:{index}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_device_name_and_rejects_others() {
        let cases = [
            ("synthetic", Some(DeviceKind::Synthetic)),
            ("cpu", Some(DeviceKind::Cpu)),
            ("cuda", Some(DeviceKind::Cuda(0))),
            ("cuda:3", Some(DeviceKind::Cuda(3))),
            ("cuda:x", None),
            ("tpu", None),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<DeviceKind>().ok(), expected, "{text}");
        }
        assert_eq!(DeviceKind::Cuda(0).to_string(), "cuda:0");
    }
}
