//! [`CudaDevice`]: one GPU, its primary context, a stream, and its compiled kernels.

use crate::compile::{ComputeCapability, KernelCompiler, Nvrtc, Target};
use crate::error::{catch_panic, CudaError, Result};
use crate::kernels::KernelSource;
use crate::probe::{probe, CudaVersion};
use crate::KernelCache;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream, DriverError};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// Maps a cudarc driver error to [`CudaError::Driver`] naming the call.
pub(crate) fn driver_err(op: &'static str) -> impl FnOnce(DriverError) -> CudaError {
    move |err| CudaError::Driver { op, err }
}

/// A CUDA device: cheap to clone (shared state), compared by ordinal.
///
/// Creation checks, in order: the driver library (via [`crate::probe()`], so a missing
/// `libcuda` is an error value, not a cudarc panic), the device count, NVRTC, then creates the
/// primary context and a stream. Kernel modules are compiled (through the disk cache) and loaded
/// on first use, for the device's exact architecture when NVRTC supports it.
#[derive(Clone)]
pub struct CudaDevice {
    inner: Arc<Inner>,
}

struct Inner {
    ordinal: usize,
    name: String,
    capability: ComputeCapability,
    driver_version: Option<CudaVersion>,
    target: Target,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    compiler: KernelCompiler,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<(&'static str, String), CudaFunction>>,
    /// The cuBLAS handle on `stream`, created on first use by [`CudaDevice::blas`] (or why not).
    blas: std::sync::OnceLock<std::result::Result<Arc<cudarc::cublas::CudaBlas>, String>>,
}

impl CudaDevice {
    /// Opens device `ordinal` with the kernel cache configured by the environment.
    ///
    /// Without a driver, a device or NVRTC this returns an `Err` that says what is missing and
    /// how to fix it; it never panics.
    pub fn new(ordinal: usize) -> Result<Self> {
        Self::with_cache(ordinal, KernelCache::from_env())
    }

    /// Opens device `ordinal`, caching compiled kernels in `cache`.
    pub fn with_cache(ordinal: usize, cache: KernelCache) -> Result<Self> {
        let probe = probe();
        probe.require_device(ordinal)?;
        let nvrtc = Nvrtc::from_probe(&probe)?;
        let (ctx, stream, name, capability) = catch_panic("CudaContext::new", || {
            let ctx = CudaContext::new(ordinal).map_err(driver_err("cuDevicePrimaryCtxRetain"))?;
            let (major, minor) = ctx
                .compute_capability()
                .map_err(driver_err("cuDeviceGetAttribute"))?;
            let name = ctx.name().map_err(driver_err("cuDeviceGetName"))?;
            let stream = ctx.new_stream().map_err(driver_err("cuStreamCreate"))?;
            let cc = ComputeCapability {
                major: major.max(0) as u32,
                minor: minor.max(0) as u32,
            };
            Ok((ctx, stream, name, cc))
        })?;
        let target = nvrtc.target_for(capability)?;
        Ok(CudaDevice {
            inner: Arc::new(Inner {
                ordinal,
                name,
                capability,
                driver_version: probe.driver_version,
                target,
                ctx,
                stream,
                compiler: KernelCompiler::new(nvrtc, cache),
                modules: Mutex::new(HashMap::new()),
                functions: Mutex::new(HashMap::new()),
                blas: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Number of CUDA devices; `Ok(0)` when there is no driver or no GPU (never panics).
    pub fn count() -> usize {
        probe().device_count.unwrap_or(0)
    }

    pub fn ordinal(&self) -> usize {
        self.inner.ordinal
    }

    /// The marketing name, e.g. `NVIDIA H100 80GB HBM3`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn compute_capability(&self) -> ComputeCapability {
        self.inner.capability
    }

    /// The CUDA version the driver supports.
    pub fn driver_version(&self) -> Option<CudaVersion> {
        self.inner.driver_version
    }

    /// What the kernels are compiled for on this device.
    pub fn target(&self) -> Target {
        self.inner.target
    }

    pub fn compiler(&self) -> &KernelCompiler {
        &self.inner.compiler
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.inner.ctx
    }

    /// The stream all of this crate's work on the device is queued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.inner.stream
    }

    /// Waits for all queued work.
    pub fn synchronize(&self) -> Result<()> {
        self.inner
            .stream
            .synchronize()
            .map_err(driver_err("cuStreamSynchronize"))
    }

    /// The loaded module for `source`, compiling (or reading the cache) and loading on first use.
    pub fn module(&self, source: &'static KernelSource) -> Result<Arc<CudaModule>> {
        let mut modules = self.inner.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = modules.get(source.name) {
            return Ok(m.clone());
        }
        let compiled = self.inner.compiler.compile(source, self.inner.target)?;
        let module = self
            .inner
            .ctx
            .load_module(compiled.image.into_cudarc())
            .map_err(|err| CudaError::ModuleLoad {
                module: source.name,
                target: self.inner.target.arch_name(),
                err,
            })?;
        modules.insert(source.name, module.clone());
        Ok(module)
    }

    /// The kernel `function` of module `source` (which must list it among its entry points).
    pub fn function(&self, source: &'static KernelSource, function: &str) -> Result<CudaFunction> {
        let key = (source.name, function.to_string());
        if let Some(f) = self
            .inner
            .functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(f.clone());
        }
        if !source.has_entry(function) {
            return Err(CudaError::UnknownKernel {
                module: source.name.to_string(),
                function: function.to_string(),
            });
        }
        let f = self
            .module(source)?
            .load_function(function)
            .map_err(driver_err("cuModuleGetFunction"))?;
        self.inner
            .functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, f.clone());
        Ok(f)
    }

    /// The cuBLAS handle bound to [`CudaDevice::stream`], created on first use; `Err` with the
    /// reason (kept for the device's lifetime) when libcublas does not load or the handle cannot
    /// be created.
    pub fn blas(&self) -> std::result::Result<&Arc<cudarc::cublas::CudaBlas>, &str> {
        self.inner
            .blas
            .get_or_init(|| {
                probe().require_cublas().map_err(|e| e.to_string())?;
                catch_panic("cublasCreate", || {
                    cudarc::cublas::CudaBlas::new(self.inner.stream.clone())
                        .map(Arc::new)
                        .map_err(|e| {
                            CudaError::Core(vars_core::Error::Backend {
                                backend: "cuda",
                                msg: format!("cublasCreate failed: {e}"),
                            })
                        })
                })
                .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| e.as_str())
    }

    /// Compiles and loads every registered module now (instead of on first use).
    pub fn load_all_kernels(&self) -> Result<usize> {
        for k in crate::kernels::KERNELS {
            self.module(k)?;
        }
        Ok(crate::kernels::KERNELS.len())
    }
}

impl PartialEq for CudaDevice {
    fn eq(&self, other: &Self) -> bool {
        self.inner.ordinal == other.inner.ordinal
    }
}

impl Eq for CudaDevice {}

impl fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CudaDevice")
            .field("ordinal", &self.inner.ordinal)
            .field("name", &self.inner.name)
            .field("compute_capability", &self.inner.capability.to_string())
            .field("target", &self.inner.target.arch_name())
            .finish()
    }
}

impl fmt::Display for CudaDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cuda:{}", self.inner.ordinal)
    }
}
