//! # vars-cuda
//!
//! The CUDA backend of vars, on [`cudarc`] 0.19 (`dynamic-loading`, CUDA 13.0 API), with kernels
//! written in CUDA C in this repository and compiled at run time by NVRTC.
//!
//! The crate **always builds** and **never panics for lack of CUDA**: cudarc loads `libcuda`,
//! `libnvrtc` and `libcublas` with `dlopen` at run time, so building needs neither the CUDA
//! toolkit nor `nvcc`; and [`probe()`] dlopens the very names cudarc would, before cudarc does, so
//! a missing driver, library or device is a [`CudaError`] saying what to install or which
//! `LD_LIBRARY_PATH` to set (cudarc itself panics). There are no cargo features to enable.
//!
//! ## What exists
//!
//! - [`Cuda`]: `impl vars_core::Backend` (`Device = CudaDevice`, `Storage = CudaStorage`), every
//!   op of the CPU backend plus fused kernels for softmax / layer norm (`rows.rs`) and the
//!   sparse-coding loop (`sparse_coding.rs`, fused in shared memory or tiled);
//!   [`set_sparse_coding_kernels`] overrides where the latter run (A/B comparisons, benches).
//! - [`probe()`] / [`CudaProbe`]: which CUDA libraries load (and under which name), the driver's
//!   CUDA version, NVRTC's version and architectures, the device count.
//! - [`CudaDevice`]: device + primary context + one stream + the cuBLAS handle; compiles and loads
//!   kernel modules lazily, as a cubin for the device's exact architecture when NVRTC supports it.
//! - [`kernels`]: the registry [`KERNELS`] of CUDA C modules (`src/kernels/*.cu`, embedded with
//!   `include_str!`), their entry points and naming scheme, and the [`StridedLayout`] kernel
//!   argument.
//! - [`compile`]: NVRTC compilation ([`Nvrtc`], [`KernelCompiler`], [`Target`]) and the
//!   on-disk [`cache`] keyed by a hash of source, target architecture, NVRTC version and options.
//! - [`CudaStorage`]: typed device buffers and the launchers of every op family (`storage.rs`,
//!   `matmul.rs`, `reduce.rs`, `index.rs`, `window.rs`, `rows.rs`, `sparse_coding.rs`).
//!
//! Design, kernel semantics, limits and measurements: `docs/cuda.md` (and
//! `docs/cuda-sparse-coding.md`, `docs/gpu-results.md`).
//!
//! Tested without a GPU: `tests/nvrtc_compile.rs` compiles every module with NVRTC alone (install
//! it with `eval "$(bash .ci/install-nvrtc.sh)"`); `tests/no_device.rs` checks the error paths.
//! On a GPU, the one test binary `tests/gpu/` runs the shared backend suite, every op family
//! against the CPU backend and the official parity fixtures (it skips without a device unless
//! `VARS_REQUIRE_GPU=1`); `cargo xtask gpu-check` builds and runs it with the timings.

mod backend;
pub mod cache;
pub mod compile;
pub mod device;
pub mod error;
mod index;
pub mod kernels;
mod matmul;
pub mod probe;
mod reduce;
mod rows;
mod sparse_coding;
pub mod storage;
mod window;

pub use backend::{set_sparse_coding_kernels, sparse_coding_kernels, Cuda, SparseCodingKernels};
pub use cache::{cache_key, CacheKey, KernelCache};
pub use compile::{
    compile_options, CompiledModule, ComputeCapability, KernelCompiler, ModuleImage, Nvrtc, Target,
};
pub use device::CudaDevice;
pub use error::{CudaError, Result};
pub use kernels::{KernelSource, StridedLayout, KERNELS};
pub use probe::{probe, CudaLibrary, CudaProbe, CudaVersion, LibraryProbe};
pub use sparse_coding::{fused_pays_off, FUSED_MAX_WORK};
pub use storage::{CudaData, CudaStorage, DeviceElement};

/// The pinned CUDA API version of the cudarc bindings (cargo feature `cuda-13000`).
pub const CUDA_API_VERSION: CudaVersion = CudaVersion {
    major: 13,
    minor: 0,
};
