//! On-disk cache of compiled kernel modules.
//!
//! A module is compiled once per (source text, target architecture, NVRTC version, compile
//! options) and stored as `<dir>/<module>-<arch>-<key>.<ptx|cubin>`, where `<key>` is a 128-bit
//! FNV-1a hash of all four (see [`cache_key`]). Editing a `.cu` file, moving to a GPU of another
//! compute capability or upgrading NVRTC therefore always recompiles; stale files are simply never
//! read again. Writes go to a temporary file renamed into place, so concurrent processes never
//! see half a file. The cache is an optimisation only: a failed read or write falls back to
//! compiling.
//!
//! Location: `$VARS_CUDA_CACHE_DIR` if set (`off`, `0` or empty disables the cache), else
//! `$XDG_CACHE_HOME/vars/cuda-kernels`, else `$HOME/.cache/vars/cuda-kernels`, else
//! `<temp dir>/vars-cuda-kernels`.

use crate::compile::{ModuleImage, Target};
use crate::error::{CudaError, Result};
use crate::probe::CudaVersion;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bumped whenever the cache file format or the key derivation changes.
const CACHE_FORMAT: &str = "vars-cuda-kernel-cache-v1";

/// The 128-bit identity of one compiled module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(pub u128);

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// FNV-1a, 128-bit (stable across Rust versions and platforms, unlike `DefaultHasher`).
#[derive(Debug, Clone)]
struct Fnv1a128(u128);

impl Fnv1a128 {
    const OFFSET_BASIS: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;

    fn new() -> Self {
        Fnv1a128(Self::OFFSET_BASIS)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u128;
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// A length-prefixed field, so `("ab", "c")` and `("a", "bc")` hash differently.
    fn field(&mut self, bytes: &[u8]) {
        self.bytes(&(bytes.len() as u64).to_le_bytes());
        self.bytes(bytes);
    }
}

/// The cache key of `source` compiled for `target` by NVRTC `nvrtc` with `options` (the full
/// option list, which includes the architecture flag).
pub fn cache_key(source: &str, target: Target, nvrtc: CudaVersion, options: &[String]) -> CacheKey {
    let mut h = Fnv1a128::new();
    h.field(CACHE_FORMAT.as_bytes());
    h.field(source.as_bytes());
    h.field(target.arch_name().as_bytes());
    h.field(format!("nvrtc-{}.{}", nvrtc.major, nvrtc.minor).as_bytes());
    h.field(&(options.len() as u64).to_le_bytes());
    for o in options {
        h.field(o.as_bytes());
    }
    CacheKey(h.0)
}

/// Where compiled modules are kept (or nowhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelCache {
    dir: Option<PathBuf>,
}

impl KernelCache {
    /// Environment variable naming the cache directory; `off`, `0` or empty disables caching.
    pub const ENV_DIR: &'static str = "VARS_CUDA_CACHE_DIR";

    /// The cache configured by the environment (see the module docs).
    pub fn from_env() -> Self {
        match std::env::var_os(Self::ENV_DIR) {
            Some(v) => {
                let s = v.to_string_lossy();
                if s.is_empty() || s == "off" || s == "0" {
                    Self::disabled()
                } else {
                    Self::at(PathBuf::from(v))
                }
            }
            None => KernelCache {
                dir: Some(Self::default_dir()),
            },
        }
    }

    /// `$XDG_CACHE_HOME/vars/cuda-kernels`, `$HOME/.cache/vars/cuda-kernels` or
    /// `<temp>/vars-cuda-kernels`.
    pub fn default_dir() -> PathBuf {
        let non_empty = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(x) = non_empty("XDG_CACHE_HOME") {
            x.join("vars").join("cuda-kernels")
        } else if let Some(h) = non_empty("HOME") {
            h.join(".cache").join("vars").join("cuda-kernels")
        } else {
            std::env::temp_dir().join("vars-cuda-kernels")
        }
    }

    /// A cache in `dir` (created on first store).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        KernelCache {
            dir: Some(dir.into()),
        }
    }

    /// No caching: every compile runs NVRTC.
    pub fn disabled() -> Self {
        KernelCache { dir: None }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// `<module>-<arch>-<key>.<ptx|cubin>`.
    pub fn file_name(module: &str, target: Target, key: CacheKey) -> String {
        let ext = if target.is_cubin() { "cubin" } else { "ptx" };
        format!("{module}-{}-{key}.{ext}", target.arch_name())
    }

    /// The path a module would be cached at, if caching is on.
    pub fn path(&self, module: &str, target: Target, key: CacheKey) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(Self::file_name(module, target, key)))
    }

    /// The cached image, if present and plausible (PTX text with a `.version` line, or an ELF
    /// cubin); anything else counts as a miss.
    pub fn load(&self, module: &str, target: Target, key: CacheKey) -> Option<ModuleImage> {
        let path = self.path(module, target, key)?;
        let bytes = std::fs::read(path).ok()?;
        if target.is_cubin() {
            bytes
                .starts_with(b"\x7fELF")
                .then_some(ModuleImage::Cubin(bytes))
        } else {
            let text = String::from_utf8(bytes).ok()?;
            (text.contains(".version") && !text.contains('\0')).then_some(ModuleImage::Ptx(text))
        }
    }

    /// Stores `image` atomically (temp file + rename); returns the final path, or `Ok(None)` when
    /// caching is disabled.
    pub fn store(
        &self,
        module: &str,
        target: Target,
        key: CacheKey,
        image: &ModuleImage,
    ) -> Result<Option<PathBuf>> {
        let Some(path) = self.path(module, target, key) else {
            return Ok(None);
        };
        let dir = self.dir.as_ref().expect("path() implies a dir");
        let io = |source| CudaError::Cache {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            Self::file_name(module, target, key),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(image.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })?;
        Ok(Some(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::ComputeCapability;

    const V13_0: CudaVersion = CudaVersion {
        major: 13,
        minor: 0,
    };

    fn ptx(major: u32, minor: u32) -> Target {
        Target::Ptx(ComputeCapability { major, minor })
    }

    fn opts(t: Target) -> Vec<String> {
        crate::compile::compile_options(t)
    }

    #[test]
    fn fnv1a_128_reference_vectors() {
        // Published FNV-1a 128-bit test vectors.
        let hash = |s: &str| {
            let mut h = Fnv1a128::new();
            h.bytes(s.as_bytes());
            h.0
        };
        assert_eq!(hash(""), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(hash("a"), 0xd228cb696f1a8caf78912b704e4a8964);
        assert_eq!(hash("foobar"), 0x343e1662793c64bf6f0d3597ba446f18);
    }

    #[test]
    fn key_is_deterministic() {
        let t = ptx(7, 5);
        let a = cache_key("src", t, V13_0, &opts(t));
        let b = cache_key("src", t, V13_0, &opts(t));
        assert_eq!(a, b);
        assert_eq!(a.to_string().len(), 32);
    }

    #[test]
    fn key_changes_with_source() {
        let t = ptx(7, 5);
        let a = cache_key("extern \"C\" __global__ void k() {}", t, V13_0, &opts(t));
        let b = cache_key("extern \"C\" __global__ void k() { }", t, V13_0, &opts(t));
        assert_ne!(a, b);
    }

    #[test]
    fn key_changes_with_compute_capability() {
        let (t75, t80, t90) = (ptx(7, 5), ptx(8, 0), ptx(9, 0));
        let k75 = cache_key("src", t75, V13_0, &opts(t75));
        let k80 = cache_key("src", t80, V13_0, &opts(t80));
        let k90 = cache_key("src", t90, V13_0, &opts(t90));
        assert_ne!(k75, k80);
        assert_ne!(k80, k90);
        // Same capability, PTX vs cubin: different artefacts, different keys.
        let cubin = Target::Cubin(ComputeCapability { major: 9, minor: 0 });
        assert_ne!(k90, cache_key("src", cubin, V13_0, &opts(cubin)));
        // Even with identical option lists, the target alone changes the key.
        assert_ne!(
            cache_key("src", t80, V13_0, &[]),
            cache_key("src", t90, V13_0, &[])
        );
    }

    #[test]
    fn key_changes_with_nvrtc_version_and_options() {
        let t = ptx(9, 0);
        let k = cache_key("src", t, V13_0, &opts(t));
        let v13_1 = CudaVersion {
            major: 13,
            minor: 1,
        };
        assert_ne!(k, cache_key("src", t, v13_1, &opts(t)));
        let mut more = opts(t);
        more.push("--use_fast_math".into());
        assert_ne!(k, cache_key("src", t, V13_0, &more));
        // Field boundaries matter.
        assert_ne!(
            cache_key("src", t, V13_0, &["ab".into(), "c".into()]),
            cache_key("src", t, V13_0, &["a".into(), "bc".into()])
        );
    }

    fn temp_cache(tag: &str) -> (KernelCache, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "vars-cuda-cache-test-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        (KernelCache::at(&dir), dir)
    }

    #[test]
    fn store_then_load_round_trips() {
        let (cache, dir) = temp_cache("roundtrip");
        let t = ptx(7, 5);
        let key = cache_key("src", t, V13_0, &opts(t));
        assert!(cache.load("unary", t, key).is_none());
        let image = ModuleImage::Ptx(".version 9.0\n.target sm_75\n".into());
        let path = cache.store("unary", t, key, &image).unwrap().unwrap();
        assert!(path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("unary-compute_75-"));
        assert_eq!(cache.load("unary", t, key), Some(image));
        // Another key misses; a corrupt file misses.
        let other = cache_key("src2", t, V13_0, &opts(t));
        assert!(cache.load("unary", t, other).is_none());
        std::fs::write(&path, b"garbage").unwrap();
        assert!(cache.load("unary", t, key).is_none());
        // Cubins must look like ELF.
        let c = Target::Cubin(ComputeCapability { major: 9, minor: 0 });
        let ck = cache_key("src", c, V13_0, &opts(c));
        let elf = ModuleImage::Cubin(b"\x7fELF-rest".to_vec());
        cache.store("unary", c, ck, &elf).unwrap();
        assert_eq!(cache.load("unary", c, ck), Some(elf));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn disabled_cache_stores_nothing() {
        let c = KernelCache::disabled();
        let t = ptx(7, 5);
        let key = cache_key("src", t, V13_0, &[]);
        assert_eq!(
            c.store("m", t, key, &ModuleImage::Ptx(".version".into()))
                .unwrap(),
            None
        );
        assert!(c.load("m", t, key).is_none());
        assert!(c.dir().is_none());
    }
}
