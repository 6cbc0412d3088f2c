//! GEMM candidates at the model's shapes (RVT/ViT-Tiny: 196 tokens, width 192, MLP 768, 3 heads
//! of 64): every kernel compiled into `vars_cpu::gemm` (single-threaded, one call per matrix),
//! plus the backend's full `Cpu::matmul` (rayon over batches and row blocks) for reference.
//! Throughput is reported in elements = floating-point operations (2·m·n·k per matrix), so
//! criterion's "Gelem/s" reads as GFLOP/s.
//!
//! `cargo bench -p vars-benches --features gemm-crate --bench gemm -- --warm-up-time 1 --measurement-time 3`
//! (`gemm-crate` is a default feature of vars-cpu; `--features gemm-crate-avx512` adds the `gemm`
//! crate's AVX-512 kernels.)

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vars_benches::{gemm_flops, random_f32};
use vars_core::{Backend, Layout};
use vars_cpu::{gemm_f32, Cpu, CpuStorage, GemmKernel, DEFAULT_KERNEL};

struct Case {
    name: &'static str,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    /// The right operand is stored transposed (`n×k` row-major), like `kᵀ` in `q·kᵀ`.
    rhs_transposed: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "196x192x192 (qkv/proj)",
        batch: 1,
        m: 196,
        k: 192,
        n: 192,
        rhs_transposed: false,
    },
    Case {
        name: "196x192x768 (fc1)",
        batch: 1,
        m: 196,
        k: 192,
        n: 768,
        rhs_transposed: false,
    },
    Case {
        name: "196x768x192 (fc2)",
        batch: 1,
        m: 196,
        k: 768,
        n: 192,
        rhs_transposed: false,
    },
    Case {
        name: "24x196x64x196 (q·kT)",
        batch: 24,
        m: 196,
        k: 64,
        n: 196,
        rhs_transposed: true,
    },
    Case {
        name: "24x196x196x64 (attn·v)",
        batch: 24,
        m: 196,
        k: 196,
        n: 64,
        rhs_transposed: false,
    },
];

fn bench_gemm(c: &mut Criterion) {
    for case in CASES {
        let Case { batch, m, k, n, .. } = *case;
        let a = random_f32(batch * m * k, 1);
        let b = random_f32(batch * k * n, 2);
        let (rsb, csb) = if case.rhs_transposed { (1, k) } else { (n, 1) };
        let mut out = vec![0f32; batch * m * n];

        let mut group = c.benchmark_group(format!("gemm/{}", case.name));
        group.throughput(Throughput::Elements(gemm_flops(batch, m, k, n)));
        for &kernel in GemmKernel::ALL {
            group.bench_function(BenchmarkId::new("single-thread", kernel.name()), |bench| {
                bench.iter(|| {
                    for (bi, cb) in out.chunks_mut(m * n).enumerate() {
                        gemm_f32(
                            kernel,
                            m,
                            k,
                            n,
                            &a[bi * m * k..],
                            k,
                            1,
                            &b[bi * k * n..],
                            rsb,
                            csb,
                            cb,
                            n,
                            1,
                        )
                        .unwrap();
                    }
                    black_box(&mut out);
                })
            });
        }

        // The backend op (default kernel, rayon across batches / row blocks).
        let sa = CpuStorage::from_vec_f32(a.clone());
        let sb = CpuStorage::from_vec_f32(b.clone());
        let la = Layout::contiguous([batch, m, k]);
        let lb = if case.rhs_transposed {
            Layout::contiguous([batch, n, k])
                .permute(&[0, 2, 1])
                .unwrap()
        } else {
            Layout::contiguous([batch, k, n])
        };
        let name = format!("rayon x{} {}", rayon_threads(), DEFAULT_KERNEL.name());
        group.bench_function(BenchmarkId::new("Cpu::matmul", name), |bench| {
            bench.iter(|| black_box(Cpu::matmul(&sa, &la, &sb, &lb).unwrap()))
        });
        group.finish();
    }
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

criterion_group!(benches, bench_gemm);
criterion_main!(benches);
