//! [`CudaError`]: every failure of this crate, as a value (never a panic), with the fix in the
//! message where there is one.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, CudaError>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CudaError {
    /// A CUDA shared library could not be dlopen-ed under any name cudarc would try.
    #[error(
        "{what} not found: no `{library}` library could be loaded (tried {candidates}). {hint}"
    )]
    LibraryNotFound {
        /// `"libcuda (the CUDA driver)"`, ...
        what: &'static str,
        /// cudarc's base name: `"cuda"`, `"nvrtc"`, `"cublas"`.
        library: &'static str,
        /// The file names tried, comma-separated.
        candidates: String,
        /// What to do about it.
        hint: &'static str,
    },

    /// The driver loaded but reports no usable device at this ordinal.
    #[error("no CUDA device {ordinal}: {reason}")]
    NoDevice { ordinal: usize, reason: String },

    /// A CUDA driver API call failed.
    #[error("CUDA driver call `{op}` failed: {err}")]
    Driver {
        op: &'static str,
        err: cudarc::driver::DriverError,
    },

    /// The driver refused a compiled module (e.g. `CUDA_ERROR_UNSUPPORTED_PTX_VERSION`: PTX from
    /// an NVRTC newer than the driver).
    #[error(
        "loading kernel module `{module}` ({target}) failed: {err}. If the error is \
         CUDA_ERROR_UNSUPPORTED_PTX_VERSION, NVRTC is newer than the driver: upgrade the driver \
         or use an NVRTC no newer than the driver's CUDA version"
    )]
    ModuleLoad {
        module: &'static str,
        target: String,
        err: cudarc::driver::DriverError,
    },

    /// An error in the engine's own terms (dtype not supported, ...), passed through unchanged.
    #[error(transparent)]
    Core(#[from] vars_core::Error),

    /// NVRTC failed outside compilation proper (program creation, PTX retrieval, ...).
    #[error("NVRTC call `{op}` failed: {err}")]
    Nvrtc {
        op: &'static str,
        err: cudarc::nvrtc::result::NvrtcError,
    },

    /// A kernel module did not compile; `log` is NVRTC's full log.
    #[error("NVRTC failed to compile kernel module `{module}` with {options:?}:\n{log}")]
    Compile {
        module: &'static str,
        options: Vec<String>,
        log: String,
    },

    /// The target architecture is not one this NVRTC can generate code for.
    #[error("NVRTC {nvrtc_version} cannot target {arch} (supported: {supported:?}); {hint}")]
    UnsupportedArch {
        arch: String,
        nvrtc_version: String,
        supported: Vec<u32>,
        hint: &'static str,
    },

    /// A kernel name that no registered module exports.
    #[error("no kernel `{function}` in module `{module}`")]
    UnknownKernel { module: String, function: String },

    /// A layout the kernels cannot take as is (rank too large after merging dims, ...).
    #[error("{op}: {msg}")]
    Layout { op: &'static str, msg: String },

    /// The on-disk kernel cache could not be read or written.
    #[error("kernel cache {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },

    /// cudarc panicked (for example on a symbol missing from an old library); caught and
    /// reported instead of unwinding through the caller.
    #[error("cudarc panicked in `{op}`: {msg}")]
    Panicked { op: &'static str, msg: String },
}

impl From<CudaError> for vars_core::Error {
    fn from(e: CudaError) -> Self {
        match e {
            CudaError::Core(e) => e,
            e => vars_core::Error::Backend {
                backend: "cuda",
                msg: e.to_string(),
            },
        }
    }
}

/// Runs `f`, turning a panic inside cudarc into [`CudaError::Panicked`].
///
/// The probe makes panics unlikely (it loads every library cudarc would load before cudarc gets
/// to), but a library that loads and lacks a symbol the pinned CUDA version expects would still
/// panic inside cudarc's lazy symbol lookup.
pub(crate) fn catch_panic<T>(op: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic payload".into());
            Err(CudaError::Panicked { op, msg })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_into_core_backend_error() {
        let e = CudaError::NoDevice {
            ordinal: 3,
            reason: "only 1 device".into(),
        };
        let core: vars_core::Error = e.into();
        match &core {
            vars_core::Error::Backend { backend, msg } => {
                assert_eq!(*backend, "cuda");
                assert!(msg.contains("no CUDA device 3"), "{msg}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(core.to_string().starts_with("cuda backend: "));
    }

    #[test]
    fn catch_panic_reports_the_message() {
        let r: Result<()> = catch_panic("test-op", || panic!("Missing symbol cuFoo"));
        let e = r.unwrap_err();
        assert!(matches!(e, CudaError::Panicked { op: "test-op", .. }));
        assert!(e.to_string().contains("Missing symbol cuFoo"));
    }
}
