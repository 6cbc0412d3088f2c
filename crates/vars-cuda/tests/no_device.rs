//! Without a GPU (this crate's CI, most dev machines) every entry point must fail with a clear
//! error value, never a panic. On a machine with a GPU the checks that need its absence skip.

use vars_cuda::{probe, CudaDevice, CudaError};

#[test]
fn device_creation_without_gpu_is_a_clear_error() {
    let p = probe();
    eprintln!("probe:\n{p}");
    if p.device_count.as_ref().is_ok_and(|&n| n > 0) {
        eprintln!("SKIPPED: this machine has a CUDA device");
        return;
    }
    let result = std::panic::catch_unwind(|| CudaDevice::new(0));
    let err = result
        .expect("CudaDevice::new must not panic without CUDA")
        .expect_err("CudaDevice::new(0) must fail without a device");
    let msg = err.to_string();
    eprintln!("CudaDevice::new(0): {msg}");
    let lower = msg.to_lowercase();
    assert!(
        lower.contains("driver") || lower.contains("no cuda device"),
        "the message must name the missing driver/device: {msg}"
    );
    if !p.driver.found() {
        assert!(
            matches!(
                err,
                CudaError::LibraryNotFound {
                    library: "cuda",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(msg.contains("libcuda.so.1"), "{msg}");
        assert!(msg.contains("LD_LIBRARY_PATH"), "{msg}");
        assert!(msg.contains("Install the NVIDIA driver"), "{msg}");
    } else {
        assert!(
            matches!(err, CudaError::NoDevice { ordinal: 0, .. }),
            "{err:?}"
        );
    }
    // Into the engine's error type: a `Backend { backend: "cuda", .. }`.
    let core: vars_core::Error = err.into();
    assert!(
        matches!(
            core,
            vars_core::Error::Backend {
                backend: "cuda",
                ..
            }
        ),
        "{core:?}"
    );
    assert_eq!(CudaDevice::count(), 0);
}

#[test]
fn an_absent_ordinal_is_an_error_everywhere() {
    let err = CudaDevice::new(4096).expect_err("no machine has 4097 GPUs");
    let msg = err.to_string();
    assert!(
        msg.contains("driver") || msg.contains("no CUDA device 4096"),
        "{msg}"
    );
}
