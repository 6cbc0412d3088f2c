//! `--device cpu|cuda|cuda:N`: which backend runs the model of `vars train`, `eval`, `demo` and
//! `parity`.
//!
//! The command bodies are generic over `B: vars_core::Backend` (`run_inner::<B>(args, device)`);
//! each command parses the flag ([`DeviceSpec`]), opens the device once ([`DeviceSpec::open`],
//! a one-line error when CUDA is not compiled in or no GPU/driver is found) and dispatches with
//! [`on_device!`]. The CUDA backend is compiled in only with the crate's `cuda` feature.

use std::fmt;

/// The accepted `--device` forms, for help and error texts.
pub const DEVICE_FORMS: &str = "cpu, cuda (= cuda:0) or cuda:N (N the GPU's index, e.g. cuda:1)";

/// What a build without the `cuda` feature says to `--device cuda`.
#[cfg(not(feature = "cuda"))]
pub const NO_CUDA: &str = "this `vars` was built without CUDA support; rebuild with `cargo build \
                           --release -p vars-cli --features cuda`";

/// A parsed `--device` value (nothing opened yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU backend (`vars_cpu::Cpu`), the default.
    #[default]
    Cpu,
    /// The CUDA backend (`vars_cuda::Cuda`) on GPU `N`.
    Cuda(usize),
}

impl std::str::FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        let bad = || format!("`{s}` is not a device: use {DEVICE_FORMS}");
        match t.as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => match t.strip_prefix("cuda:") {
                Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    n.parse().map(DeviceSpec::Cuda).map_err(|_| bad())
                }
                _ => Err(bad()),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// clap's value parser of `--device` (a usage error, exit 2, naming the accepted forms).
pub fn parse_device(s: &str) -> Result<DeviceSpec, String> {
    s.parse()
}

/// An opened device: the backend to run on and its handle.
#[derive(Debug, Clone)]
pub enum Device {
    Cpu,
    #[cfg(feature = "cuda")]
    Cuda(vars_cuda::CudaDevice),
}

impl DeviceSpec {
    /// Opens the device: the CPU always; a GPU only in a build with the `cuda` feature, and only
    /// when the driver, the device and NVRTC are there (else the one-line reason, never a panic).
    pub fn open(self) -> Result<Device, String> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            #[cfg(feature = "cuda")]
            DeviceSpec::Cuda(n) => vars_cuda::CudaDevice::new(n)
                .map(Device::Cuda)
                .map_err(|e| format!("--device cuda:{n}: cannot open the CUDA device: {e}")),
            #[cfg(not(feature = "cuda"))]
            DeviceSpec::Cuda(_) => Err(NO_CUDA.to_string()),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => write!(f, "cuda:{} ({})", d.ordinal(), d.name()),
        }
    }
}

/// `on_device!(device, |B, dev| body)`: evaluates `body` with the type `B` set to the opened
/// [`Device`]'s backend (`vars_cpu::Cpu` or `vars_cuda::Cuda`) and `dev` bound to its
/// `B::Device` handle, e.g. `on_device!(device, |B, dev| run_inner::<B>(args, dev))`. Every arm
/// has the body's type; the body is monomorphised once per compiled-in backend.
macro_rules! on_device {
    ($device:expr, |$b:ident, $dev:ident| $body:expr) => {
        match $device {
            $crate::device::Device::Cpu => {
                type $b = vars_cpu::Cpu;
                let $dev = vars_cpu::CpuDevice;
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::device::Device::Cuda(handle) => {
                type $b = vars_cuda::Cuda;
                let $dev = handle;
                $body
            }
        }
    };
}
pub(crate) use on_device;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_specs_parse() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!(" CPU ".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:0".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        for bad in [
            "tpu", "cuda:x", "cuda:", "cuda:-1", "cuda:+1", "gpu", "", "cuda:1:2",
        ] {
            let e = bad.parse::<DeviceSpec>().unwrap_err();
            assert!(e.contains("cuda:N") && e.contains("cpu"), "{bad}: {e}");
        }
        for d in [DeviceSpec::Cpu, DeviceSpec::Cuda(2)] {
            assert_eq!(d.to_string().parse::<DeviceSpec>().unwrap(), d);
        }
        assert_eq!(DeviceSpec::default(), DeviceSpec::Cpu);
    }

    #[test]
    fn cpu_always_opens() {
        let d = DeviceSpec::Cpu.open().unwrap();
        assert_eq!(d.to_string(), "cpu");
        let name = on_device!(d, |B, dev| {
            let t = vars_core::Tensor::<B>::from_vec(vec![1.0f32, 2.0], [2], &dev).unwrap();
            (
                <B as vars_core::Backend>::name(),
                t.to_vec_f64().unwrap().len(),
            )
        });
        assert_eq!(name.1, 2);
        assert!(!name.0.is_empty());
    }

    /// No machine has a GPU 99: a value with the backend's reason, never a panic.
    #[cfg(feature = "cuda")]
    #[test]
    fn a_missing_gpu_is_an_error_value() {
        let e = DeviceSpec::Cuda(99).open().unwrap_err();
        assert!(
            e.starts_with("--device cuda:99: cannot open the CUDA device: "),
            "{e}"
        );
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_rebuild() {
        let e = DeviceSpec::Cuda(0).open().unwrap_err();
        assert!(e.contains("--features cuda"), "{e}");
    }
}
