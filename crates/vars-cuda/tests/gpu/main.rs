//! Everything that needs a GPU, in one test binary: the harness that `cargo xtask gpu-check`
//! builds on a development machine, strips and carries to a GPU machine (which has no Rust
//! toolchain and no registry access).
//!
//! | module | what it checks on the device |
//! | --- | --- |
//! | `kernels` | elementwise, copy, cast and RNG kernels against the CPU formulas |
//! | `matmul` | batched matmul, cuBLAS and the NVRTC fallback kernel, against the CPU (proptest) |
//! | `ops` | reductions, where, index_select/index_add, unfold/fold against the CPU (proptest) |
//! | `rows` | fused softmax / log-softmax / layer norm (forward, backward) against the CPU (proptest) |
//! | `sparse_coding` | the fused / tiled unrolled-ISTA kernels, forward and backward, against the CPU |
//! | `suite` | the shared backend suite of `vars_core::testing`, instantiated for [`Cuda`] |
//! | `parity` | the official PyTorch fixtures (`fixtures/official`) on CUDA, CPU tolerances |
//!
//! Every test skips with a printed reason when no CUDA device can be opened, so the binary also
//! runs (and passes) in CI. `VARS_REQUIRE_GPU=1` turns a missing device into a failure: the GPU
//! check sets it, so a skipped run can never pass for a GPU run.

use std::sync::OnceLock;
use vars_cuda::CudaDevice;

mod kernels;
mod matmul;
mod ops;
mod parity;
mod rows;
mod sparse_coding;
mod suite;

/// Device 0, opened once per process; `None` (after printing why, once) when there is none.
pub fn device() -> Option<&'static CudaDevice> {
    static DEVICE: OnceLock<Result<CudaDevice, String>> = OnceLock::new();
    match DEVICE.get_or_init(|| CudaDevice::new(0).map_err(|e| e.to_string())) {
        Ok(d) => Some(d),
        Err(e) if std::env::var("VARS_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("VARS_REQUIRE_GPU=1 but no CUDA device could be opened: {e}")
        }
        Err(e) => {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| eprintln!("SKIPPED GPU tests (no CUDA device): {e}"));
            None
        }
    }
}
