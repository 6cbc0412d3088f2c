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
//! - [`probe()`] / [`CudaProbe`]: which CUDA libraries load (and under which name), the driver's
//!   CUDA version, NVRTC's version and architectures, the device count.
//! - [`CudaDevice`]: device + primary context + stream; compiles and loads kernel modules lazily,
//!   as a cubin for the device's exact architecture when NVRTC supports it.
//! - [`kernels`]: the registry [`KERNELS`] of CUDA C modules (`src/kernels/*.cu`, embedded with
//!   `include_str!`), their entry points and naming scheme, and the [`StridedLayout`] kernel
//!   argument. Modules: `fill`, `copy` (strided copy, view-to-view copy, casts), `unary` (every
//!   `vars_core::UnaryOp`, f32/f64, contiguous and strided), `binary` (every
//!   `vars_core::BinaryOp`, f32/f64/i64, contiguous and strided), `rng` (the counter-based
//!   SplitMix64 generator of `vars_core::rng`, uniform and normal).
//! - [`compile`]: NVRTC compilation ([`Nvrtc`], [`KernelCompiler`], [`Target`]) and the
//!   on-disk [`cache`] keyed by a hash of source, target architecture, NVRTC version and options.
//! - [`CudaStorage`]: typed device buffers and launchers for those kernels with the signatures the
//!   `Backend` methods need (`full`, `from_host`, `to_host`, `random`, `copy_strided`,
//!   `copy_into`, `cast`, `unary`, `binary`).
//!
//! Tested without a GPU: `tests/nvrtc_compile.rs` compiles every module with NVRTC alone (install
//! it with `eval "$(bash .ci/install-nvrtc.sh)"`); `tests/no_device.rs` checks the error paths.
//! `tests/gpu_kernels.rs` runs the kernels against the CPU formulas when a GPU is present.
//!
//! ## Planned
//!
//! - `impl vars_core::Backend for Cuda` (`type Device = CudaDevice`,
//!   `type Storage = CudaStorage`), instantiating the shared suite `vars_core::testing`;
//!   `where_cond`, reductions (deterministic, one block per output), `index_select`/`index_add`.
//! - Batched GEMM through cuBLAS (`cublasGemmStridedBatchedEx`; cudarc's `cublas` feature is
//!   already enabled and [`probe()`] already looks for `libcublas.so.13`).
//! - A fused sparse-coding kernel for the VARS attention loop, as a `CustomOp`.
//! - f16/bf16 storage once `vars_core::DType` grows them.

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

pub use backend::{fused_sparse_coding, set_fused_sparse_coding, Cuda};
pub use cache::{cache_key, CacheKey, KernelCache};
pub use compile::{
    compile_options, CompiledModule, ComputeCapability, KernelCompiler, ModuleImage, Nvrtc, Target,
};
pub use device::CudaDevice;
pub use error::{CudaError, Result};
pub use kernels::{KernelSource, StridedLayout, KERNELS};
pub use probe::{probe, CudaLibrary, CudaProbe, CudaVersion, LibraryProbe};
pub use storage::{CudaData, CudaStorage, DeviceElement};

/// The pinned CUDA API version of the cudarc bindings (cargo feature `cuda-13000`).
pub const CUDA_API_VERSION: CudaVersion = CudaVersion {
    major: 13,
    minor: 0,
};
