//! Run-time compilation of the kernel modules with NVRTC, through the disk cache.
//!
//! - [`Target::Ptx`] (`--gpu-architecture=compute_XY`): portable PTX, JIT-compiled by the driver
//!   at load time. Used without a device (the compile test targets [`Target::BASELINE`],
//!   `compute_75`: Turing, the oldest architecture NVRTC 13 still supports; CUDA 13 dropped
//!   Maxwell, Pascal and Volta) and for GPUs newer than the NVRTC in use.
//! - [`Target::Cubin`] (`--gpu-architecture=sm_XY`): machine code for the device's exact compute
//!   capability; what [`crate::CudaDevice`] uses whenever NVRTC supports it. A cubin needs no
//!   driver JIT and also loads when NVRTC is newer than the driver within CUDA 13 (PTX from a
//!   newer NVRTC carries a PTX ISA version an older driver rejects).

use crate::cache::{cache_key, KernelCache};
use crate::error::{catch_panic, CudaError, Result};
use crate::kernels::KernelSource;
use crate::probe::{CudaProbe, CudaVersion};
use cudarc::nvrtc::{result as nvrtc, sys as nvrtc_sys};
use std::ffi::{CStr, CString};
use std::fmt;

/// A GPU compute capability, e.g. 9.0 for H100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComputeCapability {
    pub major: u32,
    pub minor: u32,
}

impl ComputeCapability {
    /// `major·10 + minor`, NVRTC's and nvcc's numbering (`90` for 9.0).
    pub fn number(self) -> u32 {
        self.major * 10 + self.minor
    }

    pub fn from_number(n: u32) -> Self {
        ComputeCapability {
            major: n / 10,
            minor: n % 10,
        }
    }
}

impl fmt::Display for ComputeCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What NVRTC generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// PTX for the virtual architecture `compute_XY`.
    Ptx(ComputeCapability),
    /// A cubin for the real architecture `sm_XY`.
    Cubin(ComputeCapability),
}

impl Target {
    /// `compute_75`: the lowest virtual architecture NVRTC 13 accepts, so its PTX runs on every
    /// GPU CUDA 13 supports. Used when there is no device.
    pub const BASELINE: Target = Target::Ptx(ComputeCapability { major: 7, minor: 5 });

    pub fn capability(self) -> ComputeCapability {
        match self {
            Target::Ptx(cc) | Target::Cubin(cc) => cc,
        }
    }

    pub fn is_cubin(self) -> bool {
        matches!(self, Target::Cubin(_))
    }

    /// `compute_XY` or `sm_XY`.
    pub fn arch_name(self) -> String {
        match self {
            Target::Ptx(cc) => format!("compute_{}", cc.number()),
            Target::Cubin(cc) => format!("sm_{}", cc.number()),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arch_name())
    }
}

/// The NVRTC options every module is compiled with.
pub fn compile_options(target: Target) -> Vec<String> {
    vec![
        format!("--gpu-architecture={}", target.arch_name()),
        "-std=c++17".to_string(),
        // IEEE-exact division and square root, denormals kept, and no contraction of `a * b + c`
        // into an FMA: elementwise results match the CPU's formulas (up to libm differences in
        // exp/log/erf/...). The math library's own FMAs are unaffected.
        "--ftz=false".to_string(),
        "--prec-div=true".to_string(),
        "--prec-sqrt=true".to_string(),
        "--fmad=false".to_string(),
    ]
}

/// A compiled module: PTX text or a cubin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleImage {
    /// PTX source (no trailing NUL).
    Ptx(String),
    /// An ELF cubin.
    Cubin(Vec<u8>),
}

impl ModuleImage {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            ModuleImage::Ptx(s) => s.as_bytes(),
            ModuleImage::Cubin(b) => b,
        }
    }

    /// The PTX text, for PTX images.
    pub fn ptx(&self) -> Option<&str> {
        match self {
            ModuleImage::Ptx(s) => Some(s),
            ModuleImage::Cubin(_) => None,
        }
    }

    /// The kernel names a PTX image defines (its `.entry` directives); empty for cubins.
    pub fn ptx_entries(&self) -> Vec<String> {
        let Some(ptx) = self.ptx() else {
            return Vec::new();
        };
        ptx.lines()
            .filter_map(|l| {
                let rest = l
                    .trim_start()
                    .strip_prefix(".visible .entry ")
                    .or_else(|| l.trim_start().strip_prefix(".entry "))?;
                Some(rest.split(['(', ' ']).next()?.to_string())
            })
            .collect()
    }

    /// Into cudarc's loadable form.
    pub fn into_cudarc(self) -> cudarc::nvrtc::Ptx {
        match self {
            ModuleImage::Ptx(s) => cudarc::nvrtc::Ptx::from_src(s),
            ModuleImage::Cubin(b) => cudarc::nvrtc::Ptx::from_binary(b),
        }
    }
}

/// The result of [`KernelCompiler::compile`].
#[derive(Debug, Clone)]
pub struct CompiledModule {
    pub module: &'static str,
    pub target: Target,
    pub image: ModuleImage,
    /// NVRTC's log (warnings); empty when loaded from the cache.
    pub log: String,
    /// Whether the image came from the disk cache.
    pub from_cache: bool,
}

/// A loaded NVRTC (found by the probe) and what it can target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nvrtc {
    version: CudaVersion,
    archs: Vec<u32>,
    library: String,
}

impl Nvrtc {
    /// Probes for NVRTC; a clear [`CudaError::LibraryNotFound`] when it is absent.
    pub fn load() -> Result<Self> {
        Self::from_probe(&crate::probe::probe())
    }

    pub fn from_probe(probe: &CudaProbe) -> Result<Self> {
        probe.require_nvrtc()?;
        let version = probe.nvrtc_version.ok_or_else(|| CudaError::Panicked {
            op: "nvrtcVersion",
            msg: format!(
                "{} loaded but nvrtcVersion failed",
                probe.nvrtc.loaded.as_deref().unwrap_or("libnvrtc")
            ),
        })?;
        Ok(Nvrtc {
            version,
            archs: probe.nvrtc_archs.clone(),
            library: probe.nvrtc.loaded.clone().unwrap_or_default(),
        })
    }

    pub fn version(&self) -> CudaVersion {
        self.version
    }

    /// The `XY` of every `sm_XY` this NVRTC supports.
    pub fn supported_archs(&self) -> &[u32] {
        &self.archs
    }

    /// The file name the library was loaded under.
    pub fn library(&self) -> &str {
        &self.library
    }

    /// `Ok` when NVRTC can generate code for `target`.
    pub fn check_target(&self, target: Target) -> Result<()> {
        let n = target.capability().number();
        // An empty list means the query failed; let NVRTC itself judge.
        if self.archs.is_empty() || self.archs.contains(&n) {
            return Ok(());
        }
        Err(CudaError::UnsupportedArch {
            arch: target.arch_name(),
            nvrtc_version: self.version.to_string(),
            supported: self.archs.clone(),
            hint: if self.archs.first().is_some_and(|&lo| n < lo) {
                "CUDA 13 dropped GPUs older than Turing (sm_75); this GPU needs a CUDA 12 build"
            } else {
                "use a newer NVRTC for this GPU"
            },
        })
    }

    /// The best target for a device: a cubin for its exact capability when supported, else PTX
    /// for the highest supported architecture below it (the driver JIT-compiles it).
    pub fn target_for(&self, cc: ComputeCapability) -> Result<Target> {
        let exact = Target::Cubin(cc);
        if self.check_target(exact).is_ok() {
            return Ok(exact);
        }
        match self
            .archs
            .iter()
            .copied()
            .filter(|&a| a <= cc.number())
            .max()
        {
            Some(a) => Ok(Target::Ptx(ComputeCapability::from_number(a))),
            None => self.check_target(exact).map(|_| exact),
        }
    }

    /// Compiles `source` (no cache). `name` labels the program in NVRTC's log.
    pub fn compile_source(
        &self,
        module: &'static str,
        source: &str,
        target: Target,
        options: &[String],
    ) -> Result<(ModuleImage, String)> {
        self.check_target(target)?;
        let src = CString::new(source).map_err(|_| CudaError::Compile {
            module,
            options: options.to_vec(),
            log: "the source contains a NUL byte".into(),
        })?;
        let name = CString::new(format!("{module}.cu")).expect("module names have no NUL");
        catch_panic("nvrtcCompileProgram", || {
            let program = Program(nvrtc::create_program(&src, Some(&name)).map_err(|err| {
                CudaError::Nvrtc {
                    op: "nvrtcCreateProgram",
                    err,
                }
            })?);
            // SAFETY: `program` is live until dropped below; options are plain strings.
            let compiled = unsafe { nvrtc::compile_program(program.0, options) };
            let log = program.log();
            match compiled {
                Ok(()) => {}
                Err(nvrtc::NvrtcError(nvrtc_sys::nvrtcResult::NVRTC_ERROR_COMPILATION)) => {
                    return Err(CudaError::Compile {
                        module,
                        options: options.to_vec(),
                        log,
                    })
                }
                Err(err) => {
                    return Err(CudaError::Compile {
                        module,
                        options: options.to_vec(),
                        log: format!("{err}\n{log}"),
                    })
                }
            }
            let image = if target.is_cubin() {
                ModuleImage::Cubin(program.cubin()?)
            } else {
                ModuleImage::Ptx(program.ptx()?)
            };
            Ok((image, log))
        })
    }
}

/// An NVRTC program, destroyed on drop.
struct Program(nvrtc_sys::nvrtcProgram);

impl Program {
    fn log(&self) -> String {
        // SAFETY: live program.
        match unsafe { nvrtc::get_program_log(self.0) } {
            Ok(raw) => c_chars_to_string(&raw),
            Err(e) => format!("<nvrtcGetProgramLog failed: {e}>"),
        }
    }

    fn ptx(&self) -> Result<String> {
        // SAFETY: live, compiled program.
        let raw = unsafe { nvrtc::get_ptx(self.0) }.map_err(|err| CudaError::Nvrtc {
            op: "nvrtcGetPTX",
            err,
        })?;
        Ok(c_chars_to_string(&raw))
    }

    fn cubin(&self) -> Result<Vec<u8>> {
        let mut size = 0usize;
        // SAFETY: live, compiled program; the buffer has the size NVRTC reported.
        unsafe {
            nvrtc_sys::nvrtcGetCUBINSize(self.0, &mut size)
                .result()
                .map_err(|err| CudaError::Nvrtc {
                    op: "nvrtcGetCUBINSize",
                    err,
                })?;
            let mut buf = vec![0u8; size];
            nvrtc_sys::nvrtcGetCUBIN(self.0, buf.as_mut_ptr().cast())
                .result()
                .map_err(|err| CudaError::Nvrtc {
                    op: "nvrtcGetCUBIN",
                    err,
                })?;
            Ok(buf)
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: created by nvrtcCreateProgram, destroyed once. Errors cannot be reported here.
        let _ = unsafe { nvrtc::destroy_program(self.0) };
    }
}

/// NUL-terminated `c_char` buffer to `String` (lossy).
fn c_chars_to_string(raw: &[std::ffi::c_char]) -> String {
    // SAFETY: c_char and u8 have the same size and alignment.
    let bytes: &[u8] = unsafe { std::slice::from_raw_parts(raw.as_ptr().cast(), raw.len()) };
    match CStr::from_bytes_until_nul(bytes) {
        Ok(c) => c.to_string_lossy().into_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Compiles registered modules through the disk cache.
#[derive(Debug, Clone)]
pub struct KernelCompiler {
    nvrtc: Nvrtc,
    cache: KernelCache,
}

impl KernelCompiler {
    pub fn new(nvrtc: Nvrtc, cache: KernelCache) -> Self {
        KernelCompiler { nvrtc, cache }
    }

    /// Probes for NVRTC and uses the cache configured by the environment.
    pub fn from_env() -> Result<Self> {
        Ok(Self::new(Nvrtc::load()?, KernelCache::from_env()))
    }

    pub fn nvrtc(&self) -> &Nvrtc {
        &self.nvrtc
    }

    pub fn cache(&self) -> &KernelCache {
        &self.cache
    }

    /// `module` for `target`: from the cache when an entry with the same key exists, else
    /// compiled by NVRTC and stored (a failed store is ignored: the cache is an optimisation).
    pub fn compile(&self, module: &KernelSource, target: Target) -> Result<CompiledModule> {
        let options = compile_options(target);
        let key = cache_key(module.source, target, self.nvrtc.version, &options);
        if let Some(image) = self.cache.load(module.name, target, key) {
            return Ok(CompiledModule {
                module: module.name,
                target,
                image,
                log: String::new(),
                from_cache: true,
            });
        }
        let (image, log) =
            self.nvrtc
                .compile_source(module.name, module.source, target, &options)?;
        let _ = self.cache.store(module.name, target, key, &image);
        Ok(CompiledModule {
            module: module.name,
            target,
            image,
            log,
            from_cache: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names() {
        assert_eq!(Target::BASELINE.arch_name(), "compute_75");
        let h100 = ComputeCapability { major: 9, minor: 0 };
        assert_eq!(Target::Cubin(h100).to_string(), "sm_90");
        assert_eq!(ComputeCapability::from_number(86).to_string(), "8.6");
        assert!(compile_options(Target::BASELINE)
            .contains(&"--gpu-architecture=compute_75".to_string()));
    }

    fn nvrtc_with(archs: Vec<u32>) -> Nvrtc {
        Nvrtc {
            version: CudaVersion {
                major: 13,
                minor: 0,
            },
            archs,
            library: "libnvrtc.so.13".into(),
        }
    }

    #[test]
    fn target_selection() {
        let n = nvrtc_with(vec![75, 80, 86, 87, 88, 89, 90, 100, 103, 110, 120, 121]);
        let cc = |major, minor| ComputeCapability { major, minor };
        assert_eq!(n.target_for(cc(9, 0)).unwrap(), Target::Cubin(cc(9, 0)));
        // Unknown newer GPU: highest PTX below it, JIT-compiled by the driver.
        assert_eq!(n.target_for(cc(13, 0)).unwrap(), Target::Ptx(cc(12, 1)));
        // Volta is gone in CUDA 13.
        let err = n.target_for(cc(7, 0)).unwrap_err().to_string();
        assert!(err.contains("older than Turing"), "{err}");
    }

    #[test]
    fn ptx_entry_parsing() {
        let img = ModuleImage::Ptx(
            "//\n.version 9.0\n.visible .entry fill_f32(\n\t.param .u64 a\n)\n\
             .visible .entry fill_f64(\n"
                .into(),
        );
        assert_eq!(img.ptx_entries(), vec!["fill_f32", "fill_f64"]);
        assert!(ModuleImage::Cubin(vec![1]).ptx_entries().is_empty());
    }
}
