//! Compiles every registered kernel module with NVRTC. Needs no GPU and no driver: only
//! `libnvrtc.so.13` (+ `libnvrtc-builtins`) on the library path, e.g. from
//! `eval "$(bash .ci/install-nvrtc.sh)"`.
//!
//! Without NVRTC the tests print why they skip, except under `CI=true`, where a missing NVRTC is
//! a failure (CI must actually compile the kernels).

use std::collections::BTreeSet;
use vars_cuda::{
    cache_key, compile_options, ComputeCapability, CudaError, KernelCache, KernelCompiler, Nvrtc,
    Target, KERNELS,
};

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// NVRTC, or `None` (skip) outside CI; panics under `CI=true` when it is missing.
fn nvrtc_or_skip(test: &str) -> Option<Nvrtc> {
    match Nvrtc::load() {
        Ok(n) => Some(n),
        Err(e) if ci() => panic!(
            "CI=true but NVRTC cannot be loaded, so the CUDA kernels cannot be compile-tested.\n\
             {e}\n\
             Fix: run `eval \"$(bash .ci/install-nvrtc.sh)\"` before `cargo test` (it installs the \
             `nvidia-cuda-nvrtc` wheel into .ci/cache/nvrtc and exports LD_LIBRARY_PATH)."
        ),
        Err(e) => {
            eprintln!("SKIPPED {test}: {e}");
            None
        }
    }
}

/// Compiles every module for `target` (in parallel), checking each PTX's `.entry` set against the
/// registry. Returns (modules compiled, entry points).
fn compile_all(nvrtc: &Nvrtc, target: Target) -> (usize, usize) {
    // No disk cache: this test must exercise NVRTC itself.
    let compiler = KernelCompiler::new(nvrtc.clone(), KernelCache::disabled());
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = KERNELS
            .iter()
            .map(|&k| {
                let compiler = &compiler;
                s.spawn(move || (k, compiler.compile(k, target)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut failures = Vec::new();
    let (mut compiled, mut entries) = (0, 0);
    for (k, result) in results {
        match result {
            Ok(m) => {
                assert!(!m.from_cache);
                if !m.log.trim().is_empty() {
                    eprintln!("NVRTC log for {} ({target}):\n{}", k.name, m.log);
                }
                if target.is_cubin() {
                    assert!(m.image.as_bytes().starts_with(b"\x7fELF"), "{}", k.name);
                } else {
                    let ptx: BTreeSet<String> = m.image.ptx_entries().into_iter().collect();
                    let registered: BTreeSet<String> = k.entry_points().into_iter().collect();
                    let missing: Vec<_> = registered.difference(&ptx).collect();
                    let unlisted: Vec<_> = ptx.difference(&registered).collect();
                    if !missing.is_empty() || !unlisted.is_empty() {
                        failures.push(format!(
                            "module {}: registered but not in PTX: {missing:?}; in PTX but not \
                             registered: {unlisted:?}",
                            k.name
                        ));
                    }
                    entries += ptx.len();
                }
                compiled += 1;
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} kernel modules failed for {target}:\n\n{}",
        failures.len(),
        KERNELS.len(),
        failures.join("\n\n")
    );
    (compiled, entries)
}

#[test]
fn every_kernel_module_compiles_to_ptx() {
    let Some(nvrtc) = nvrtc_or_skip("every_kernel_module_compiles_to_ptx") else {
        return;
    };
    let t = std::time::Instant::now();
    let (compiled, entries) = compile_all(&nvrtc, Target::BASELINE);
    eprintln!(
        "NVRTC {} ({}): compiled {compiled} modules / {entries} kernels for {} in {:.2?}",
        nvrtc.version(),
        nvrtc.library(),
        Target::BASELINE,
        t.elapsed()
    );
    assert!(compiled > 0);
    assert_eq!(compiled, KERNELS.len());
    let registered: usize = KERNELS.iter().map(|k| k.entry_points().len()).sum();
    assert_eq!(entries, registered);
}

#[test]
fn every_kernel_module_compiles_to_an_h100_cubin() {
    let Some(nvrtc) = nvrtc_or_skip("every_kernel_module_compiles_to_an_h100_cubin") else {
        return;
    };
    // What CudaDevice uses on the H100 machines: real machine code through NVRTC's ptxas.
    let h100 = ComputeCapability { major: 9, minor: 0 };
    assert_eq!(nvrtc.target_for(h100).unwrap(), Target::Cubin(h100));
    let (compiled, _) = compile_all(&nvrtc, Target::Cubin(h100));
    assert_eq!(compiled, KERNELS.len());
}

#[test]
fn compile_errors_carry_the_nvrtc_log() {
    let Some(nvrtc) = nvrtc_or_skip("compile_errors_carry_the_nvrtc_log") else {
        return;
    };
    let src = "#line 2 \"broken.cu\"\nextern \"C\" __global__ void k(float* x) { x[0] = 1.0f }\n";
    let err = nvrtc
        .compile_source(
            "broken",
            src,
            Target::BASELINE,
            &compile_options(Target::BASELINE),
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            CudaError::Compile {
                module: "broken",
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("broken.cu(2)"),
        "log should point at the line: {msg}"
    );
    assert!(msg.contains("error"), "{msg}");
}

#[test]
fn unsupported_architectures_are_errors() {
    let Some(nvrtc) = nvrtc_or_skip("unsupported_architectures_are_errors") else {
        return;
    };
    // CUDA 13 dropped Volta (sm_70).
    let volta = Target::Ptx(ComputeCapability { major: 7, minor: 0 });
    let err = nvrtc
        .compile_source("x", "", volta, &compile_options(volta))
        .unwrap_err();
    assert!(matches!(err, CudaError::UnsupportedArch { .. }), "{err}");
}

#[test]
fn the_disk_cache_serves_the_second_compile() {
    let Some(nvrtc) = nvrtc_or_skip("the_disk_cache_serves_the_second_compile") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("vars-cuda-nvrtc-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let compiler = KernelCompiler::new(nvrtc.clone(), KernelCache::at(&dir));
    let module = vars_cuda::kernels::module("fill").unwrap();
    let first = compiler.compile(module, Target::BASELINE).unwrap();
    let second = compiler.compile(module, Target::BASELINE).unwrap();
    assert!(!first.from_cache);
    assert!(second.from_cache);
    assert_eq!(first.image, second.image);
    let key = cache_key(
        module.source,
        Target::BASELINE,
        nvrtc.version(),
        &compile_options(Target::BASELINE),
    );
    let path = KernelCache::at(&dir)
        .path("fill", Target::BASELINE, key)
        .unwrap();
    assert!(path.exists(), "{path:?}");
    // Another architecture is another entry.
    let sm80 = Target::Ptx(ComputeCapability { major: 8, minor: 0 });
    assert!(!compiler.compile(module, sm80).unwrap().from_cache);
    std::fs::remove_dir_all(&dir).unwrap();
}
