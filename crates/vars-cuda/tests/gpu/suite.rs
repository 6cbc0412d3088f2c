//! The shared backend suite (`vars_core::testing`, the same bodies the CPU backend runs) on CUDA.

use vars_cuda::{Cuda, CudaDevice};

fn suite_device() -> Option<CudaDevice> {
    super::device().cloned()
}

vars_core::backend_test_suite!(Cuda, suite_device);
