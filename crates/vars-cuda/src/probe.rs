//! Finds the CUDA libraries *before* cudarc does.
//!
//! cudarc (feature `dynamic-loading`) dlopens `libcuda`/`libnvrtc`/`libcublas` lazily, on the
//! first call into each, and **panics** when none of its candidate names loads. This module
//! dlopens exactly the same names, in the same order ([`cudarc::get_lib_name_candidates`], the
//! function cudarc's loaders call), so "the probe found it" means "cudarc will load that very
//! file". Everything in this crate that reaches cudarc checks the probe first and returns a
//! [`CudaError::LibraryNotFound`] instead of panicking.
//!
//! Names tried, for the pinned `cuda-13000` (major 13, minor 0), per library base name `L`:
//! `libL.so`, `libL64.so`, `libL64_13.so`, `libL64_130.so`, `libL64_130_0.so`, ...,
//! `libL.so.13`, `libL.so.12`, `libL.so.11`, `libL.so.10`, `libL.so.9`, `libL.so.1`.
//! So `libcuda.so.1` (what the driver installs), `libnvrtc.so.13` (the CUDA 13 NVRTC, e.g. from
//! the `nvidia-cuda-nvrtc` wheel) and `libcublas.so.13` are all found through the normal dlopen
//! search path (`LD_LIBRARY_PATH`, `ld.so.cache`, RPATH) without symlinks. cudarc offers no
//! environment variable for a library path: `LD_LIBRARY_PATH` is the knob.
//!
//! The probe also asks the libraries themselves (through its own handles, never through cudarc)
//! for the driver's CUDA version, the NVRTC version, NVRTC's supported architectures and the
//! device count.

use crate::error::{CudaError, Result};
use std::ffi::c_int;
use std::fmt;

/// A CUDA version such as `13.0` (driver API version or NVRTC version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CudaVersion {
    pub major: u32,
    pub minor: u32,
}

impl CudaVersion {
    /// From the driver's encoding `1000·major + 10·minor` (`13000` is 13.0).
    pub fn from_driver_int(v: i32) -> Self {
        let v = v.max(0) as u32;
        CudaVersion {
            major: v / 1000,
            minor: (v % 1000) / 10,
        }
    }
}

impl fmt::Display for CudaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Which CUDA library a [`LibraryProbe`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CudaLibrary {
    /// `libcuda`, installed with the NVIDIA driver.
    Driver,
    /// `libnvrtc`, the run-time CUDA C++ compiler (needed for every kernel).
    Nvrtc,
    /// `libcublas` (planned: GEMM).
    Cublas,
}

impl CudaLibrary {
    pub const ALL: [CudaLibrary; 3] =
        [CudaLibrary::Driver, CudaLibrary::Nvrtc, CudaLibrary::Cublas];

    /// The base names cudarc's loader passes to `get_lib_name_candidates`, in its order.
    pub fn cudarc_base_names(self) -> &'static [&'static str] {
        match self {
            CudaLibrary::Driver => &["cuda", "nvcuda"],
            CudaLibrary::Nvrtc => &["nvrtc"],
            CudaLibrary::Cublas => &["cublas"],
        }
    }

    /// Every file name cudarc tries, in order (the first that loads wins), without the
    /// repetitions of cudarc's list.
    pub fn candidates(self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.cudarc_base_names()
            .iter()
            .flat_map(|l| cudarc::get_lib_name_candidates(l))
            .filter(|name| seen.insert(name.clone()))
            .collect()
    }

    /// A human name for messages.
    pub fn description(self) -> &'static str {
        match self {
            CudaLibrary::Driver => "the CUDA driver (libcuda)",
            CudaLibrary::Nvrtc => "NVRTC, the CUDA run-time compiler (libnvrtc)",
            CudaLibrary::Cublas => "cuBLAS (libcublas)",
        }
    }

    /// What to do when the library is missing.
    pub fn hint(self) -> &'static str {
        match self {
            CudaLibrary::Driver => {
                "Install the NVIDIA driver (it provides libcuda.so.1; CUDA 13 needs driver >= 580), \
                 or add the directory holding libcuda.so.1 to LD_LIBRARY_PATH. Without an NVIDIA \
                 GPU and driver, use the CPU backend (vars-cpu)."
            }
            CudaLibrary::Nvrtc => {
                "Install NVRTC 13 (CUDA toolkit 13.0, or `pip install nvidia-cuda-nvrtc==13.0.88`; \
                 in this repository `eval \"$(bash .ci/install-nvrtc.sh)\"` does both steps) and add \
                 the directory holding libnvrtc.so.13 and libnvrtc-builtins.so.13.* to \
                 LD_LIBRARY_PATH."
            }
            CudaLibrary::Cublas => {
                "Install cuBLAS 13 (CUDA toolkit 13.0, or `pip install nvidia-cublas`) and add the \
                 directory holding libcublas.so.13 to LD_LIBRARY_PATH."
            }
        }
    }
}

/// What the probe found for one library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryProbe {
    pub library: CudaLibrary,
    /// The file names tried, in cudarc's order.
    pub candidates: Vec<String>,
    /// The first name that loaded: the file cudarc will use. `None` when nothing loaded.
    pub loaded: Option<String>,
    /// The dlopen errors of the names that failed, as `name: error`. Informative when a file
    /// exists but cannot be loaded (wrong architecture, missing dependency).
    pub errors: Vec<String>,
}

impl LibraryProbe {
    pub fn found(&self) -> bool {
        self.loaded.is_some()
    }

    /// `Ok` when found, else the [`CudaError::LibraryNotFound`] to hand to the user.
    pub fn require(&self) -> Result<()> {
        if self.found() {
            return Ok(());
        }
        let mut candidates = self.candidates.join(", ");
        // dlopen errors other than "not there" say why an existing file did not load.
        let unusual: Vec<&String> = self
            .errors
            .iter()
            .filter(|e| !e.contains("No such file") && !e.contains("cannot open shared object"))
            .collect();
        if !unusual.is_empty() {
            candidates.push_str("; load errors: ");
            candidates.push_str(
                &unusual
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        Err(CudaError::LibraryNotFound {
            what: self.library.description(),
            library: self.library.cudarc_base_names()[0],
            candidates,
            hint: self.library.hint(),
        })
    }
}

/// Everything the probe learned. Cheap enough to call at device creation; never panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaProbe {
    pub driver: LibraryProbe,
    pub nvrtc: LibraryProbe,
    pub cublas: LibraryProbe,
    /// The CUDA version the driver supports (`cuDriverGetVersion`), when libcuda loaded.
    pub driver_version: Option<CudaVersion>,
    /// NVRTC's own version (`nvrtcVersion`), when libnvrtc loaded.
    pub nvrtc_version: Option<CudaVersion>,
    /// The `sm_XY` numbers NVRTC can target (`nvrtcGetSupportedArchs`), e.g. `[75, 80, ..]`.
    pub nvrtc_archs: Vec<u32>,
    /// Number of CUDA devices (`cuInit` + `cuDeviceGetCount`), or why it is unknown.
    pub device_count: std::result::Result<usize, String>,
}

impl CudaProbe {
    pub fn library(&self, lib: CudaLibrary) -> &LibraryProbe {
        match lib {
            CudaLibrary::Driver => &self.driver,
            CudaLibrary::Nvrtc => &self.nvrtc,
            CudaLibrary::Cublas => &self.cublas,
        }
    }

    /// `Ok` when the driver library loaded.
    pub fn require_driver(&self) -> Result<()> {
        self.driver.require()
    }

    /// `Ok` when NVRTC loaded.
    pub fn require_nvrtc(&self) -> Result<()> {
        self.nvrtc.require()
    }

    /// `Ok` when cuBLAS loaded.
    pub fn require_cublas(&self) -> Result<()> {
        self.cublas.require()
    }

    /// `Ok(count)` when the driver loaded and reports at least one device.
    pub fn require_device(&self, ordinal: usize) -> Result<usize> {
        self.require_driver()?;
        match &self.device_count {
            Ok(0) => Err(CudaError::NoDevice {
                ordinal,
                reason: "the driver reports no CUDA devices".into(),
            }),
            Ok(n) if ordinal >= *n => Err(CudaError::NoDevice {
                ordinal,
                reason: format!("the driver reports {n} device(s) (ordinals 0..{n})"),
            }),
            Ok(n) => Ok(*n),
            Err(why) => Err(CudaError::NoDevice {
                ordinal,
                reason: why.clone(),
            }),
        }
    }
}

impl fmt::Display for CudaProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for lib in CudaLibrary::ALL {
            let p = self.library(lib);
            match &p.loaded {
                Some(name) => writeln!(f, "{}: {name}", lib.description())?,
                None => writeln!(f, "{}: not found", lib.description())?,
            }
        }
        if let Some(v) = self.driver_version {
            writeln!(f, "driver supports CUDA {v}")?;
        }
        if let Some(v) = self.nvrtc_version {
            writeln!(f, "NVRTC {v}, archs {:?}", self.nvrtc_archs)?;
        }
        match &self.device_count {
            Ok(n) => write!(f, "devices: {n}"),
            Err(e) => write!(f, "devices: unknown ({e})"),
        }
    }
}

/// dlopens the candidates of `lib` in cudarc's order; returns the probe and the open handle.
fn open(lib: CudaLibrary) -> (LibraryProbe, Option<libloading::Library>) {
    let candidates = lib.candidates();
    let mut errors = Vec::new();
    for name in &candidates {
        // SAFETY: loading a library runs its initialisers; the CUDA libraries' are benign, and
        // cudarc loads the very same files anyway.
        match unsafe { libloading::Library::new(name) } {
            Ok(handle) => {
                let probe = LibraryProbe {
                    library: lib,
                    loaded: Some(name.clone()),
                    candidates,
                    errors,
                };
                return (probe, Some(handle));
            }
            Err(e) => {
                // libloading's Display is just "dlopen failed"; the reason is the source.
                let why = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.to_string());
                errors.push(format!("{name}: {why}"));
            }
        }
    }
    let probe = LibraryProbe {
        library: lib,
        candidates,
        loaded: None,
        errors,
    };
    (probe, None)
}

type GetIntFn = unsafe extern "C" fn(*mut c_int) -> c_int;
type GetTwoIntsFn = unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int;
type InitFn = unsafe extern "C" fn(u32) -> c_int;
type GetArchsFn = unsafe extern "C" fn(*mut c_int) -> c_int;

fn symbol<T: Copy>(lib: &libloading::Library, name: &str) -> Option<T> {
    // SAFETY: the caller names a symbol of the C API with its documented signature `T`.
    unsafe { lib.get::<T>(name).ok().map(|s| *s) }
}

fn driver_details(
    lib: &libloading::Library,
) -> (Option<CudaVersion>, std::result::Result<usize, String>) {
    let version = symbol::<GetIntFn>(lib, "cuDriverGetVersion").and_then(|f| {
        let mut v: c_int = 0;
        // SAFETY: `cuDriverGetVersion(int*)` writes one int; callable before cuInit.
        (unsafe { f(&mut v) } == 0).then(|| CudaVersion::from_driver_int(v))
    });
    let count = (|| {
        let init =
            symbol::<InitFn>(lib, "cuInit").ok_or_else(|| "libcuda lacks cuInit".to_string())?;
        let get_count = symbol::<GetIntFn>(lib, "cuDeviceGetCount")
            .ok_or_else(|| "libcuda lacks cuDeviceGetCount".to_string())?;
        // SAFETY: `cuInit(0)` is idempotent and thread-safe.
        let rc = unsafe { init(0) };
        if rc != 0 {
            return Err(match rc {
                100 => "cuInit: CUDA_ERROR_NO_DEVICE (the driver is installed but sees no GPU)"
                    .to_string(),
                35 => "cuInit: CUDA_ERROR_INSUFFICIENT_DRIVER (the driver is older than the CUDA \
                       13 API this crate is built for; install driver >= 580)"
                    .to_string(),
                999 => "cuInit: CUDA_ERROR_UNKNOWN (driver/kernel-module mismatch, or no access \
                        to /dev/nvidia*)"
                    .to_string(),
                other => format!("cuInit failed with CUresult {other}"),
            });
        }
        let mut n: c_int = 0;
        // SAFETY: writes one int after a successful cuInit.
        let rc = unsafe { get_count(&mut n) };
        if rc != 0 {
            return Err(format!("cuDeviceGetCount failed with CUresult {rc}"));
        }
        Ok(n.max(0) as usize)
    })();
    (version, count)
}

fn nvrtc_details(lib: &libloading::Library) -> (Option<CudaVersion>, Vec<u32>) {
    let version = symbol::<GetTwoIntsFn>(lib, "nvrtcVersion").and_then(|f| {
        let (mut major, mut minor): (c_int, c_int) = (0, 0);
        // SAFETY: `nvrtcVersion(int*, int*)` writes two ints.
        (unsafe { f(&mut major, &mut minor) } == 0).then(|| CudaVersion {
            major: major.max(0) as u32,
            minor: minor.max(0) as u32,
        })
    });
    let archs = (|| {
        let num = symbol::<GetIntFn>(lib, "nvrtcGetNumSupportedArchs")?;
        let get = symbol::<GetArchsFn>(lib, "nvrtcGetSupportedArchs")?;
        let mut n: c_int = 0;
        // SAFETY: writes one int.
        if unsafe { num(&mut n) } != 0 || n <= 0 {
            return None;
        }
        let mut archs = vec![0 as c_int; n as usize];
        // SAFETY: `archs` holds the `n` ints NVRTC said it would write.
        if unsafe { get(archs.as_mut_ptr()) } != 0 {
            return None;
        }
        Some(archs.into_iter().map(|a| a.max(0) as u32).collect())
    })()
    .unwrap_or_default();
    (version, archs)
}

/// Looks for the CUDA driver, NVRTC and cuBLAS under cudarc's names; never panics.
pub fn probe() -> CudaProbe {
    let (driver, driver_lib) = open(CudaLibrary::Driver);
    let (nvrtc, nvrtc_lib) = open(CudaLibrary::Nvrtc);
    let (cublas, _cublas_lib) = open(CudaLibrary::Cublas);
    let (driver_version, device_count) = match &driver_lib {
        Some(lib) => driver_details(lib),
        None => (
            None,
            Err("the CUDA driver (libcuda) is not installed".to_string()),
        ),
    };
    let (nvrtc_version, nvrtc_archs) = match &nvrtc_lib {
        Some(lib) => nvrtc_details(lib),
        None => (None, Vec::new()),
    };
    // Never dlclose: libcuda may run driver threads after cuInit, and cudarc keeps the same
    // files loaded for the life of the process anyway (re-opening only bumps a refcount).
    std::mem::forget((driver_lib, nvrtc_lib, _cublas_lib));
    CudaProbe {
        driver,
        nvrtc,
        cublas,
        driver_version,
        nvrtc_version,
        nvrtc_archs,
        device_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_cover_the_expected_names() {
        let driver = CudaLibrary::Driver.candidates();
        for name in ["libcuda.so.1", "libcuda.so"] {
            assert!(
                driver.contains(&name.to_string()),
                "{name} not in {driver:?}"
            );
        }
        let nvrtc = CudaLibrary::Nvrtc.candidates();
        for name in ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"] {
            assert!(nvrtc.contains(&name.to_string()), "{name} not in {nvrtc:?}");
        }
        // The unversioned name first, then the pinned major before older ones.
        let pos = |n: &str| nvrtc.iter().position(|c| c == n).unwrap();
        assert_eq!(pos("libnvrtc.so"), 0);
        assert!(pos("libnvrtc.so.13") < pos("libnvrtc.so.12"));
        let cublas = CudaLibrary::Cublas.candidates();
        for name in ["libcublas.so.13", "libcublas.so.12", "libcublas.so"] {
            assert!(
                cublas.contains(&name.to_string()),
                "{name} not in {cublas:?}"
            );
        }
    }

    #[test]
    fn driver_version_decoding() {
        assert_eq!(
            CudaVersion::from_driver_int(13000),
            CudaVersion {
                major: 13,
                minor: 0
            }
        );
        assert_eq!(CudaVersion::from_driver_int(12090).to_string(), "12.9");
    }

    #[test]
    fn probe_never_panics_and_is_consistent() {
        let p = probe();
        for lib in CudaLibrary::ALL {
            let l = p.library(lib);
            assert_eq!(l.found(), l.require().is_ok());
            if let Some(name) = &l.loaded {
                assert!(l.candidates.contains(name));
            } else {
                let msg = l.require().unwrap_err().to_string();
                assert!(msg.contains("LD_LIBRARY_PATH"), "{msg}");
                assert!(msg.contains("not found"), "{msg}");
            }
        }
        assert_eq!(p.nvrtc.found(), p.nvrtc_version.is_some());
        if !p.driver.found() {
            assert!(p.device_count.is_err());
            assert!(p.require_device(0).is_err());
        }
        // Display never fails.
        let _ = p.to_string();
    }
}
