//! The CUDA kernels against their baselines, measured in the same run (each group's entry named
//! `baseline-…` is what `cargo xtask bench` divides by):
//!
//! - `cuda/sparse-coding-*`: the sparse-coding kernels (forced on, `SparseCodingKernels::Always`:
//!   fused where it fits) against the composite of tensor ops on the same device, forward and
//!   forward + backward, at RVT‑Ti VARS‑D (m 64, d 32) and RVT‑S VARS‑D (m 128, d 64) sizes,
//!   batch 32 × heads; these numbers set `vars_cuda::FUSED_MAX_WORK`;
//! - `cuda/gemm-f32`: the NVRTC fallback GEMM against cuBLAS;
//! - `cuda/rows`: the fused softmax and layer-norm row kernels against their composites.
//!
//! `cargo xtask bench cuda --features cuda [--quick]`. Without a GPU (or driver, NVRTC) it prints
//! why and measures nothing. Every timed iteration ends with a device synchronisation.

use std::sync::OnceLock;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vars_core::nn::{layer_norm, softmax, softmax_composite};
use vars_core::sparse::{unrolled_ista, UnrolledIsta};
use vars_core::{Autodiff, Backend, DType, Layout, Tensor};
use vars_cuda::{set_sparse_coding_kernels, Cuda, CudaDevice, SparseCodingKernels};

/// Device 0, opened once; `None` (after saying why, once) without a GPU, driver or NVRTC.
fn device() -> Option<CudaDevice> {
    static DEVICE: OnceLock<Option<CudaDevice>> = OnceLock::new();
    DEVICE
        .get_or_init(|| match CudaDevice::new(0) {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("skipping the CUDA benches: {e}");
                None
            }
        })
        .clone()
}

/// `(entries, m, d)`: batch 32 × heads of RVT‑Ti (6 heads, d 32) and RVT‑S (6 heads, d 64).
const ISTA_SIZES: [(usize, usize, usize); 2] = [(192, 64, 32), (192, 128, 64)];

fn ista_inputs<B: Backend<Device = CudaDevice>>(
    dev: &CudaDevice,
    (e, m, d): (usize, usize, usize),
) -> [Tensor<B>; 4] {
    let atoms = Tensor::<B>::randn([e, 2 * m, m], DType::F32, 1, dev)
        .and_then(|t| t.mul_scalar(0.1))
        .unwrap();
    let g = atoms.transpose(1, 2).unwrap().matmul(&atoms).unwrap();
    let b = Tensor::<B>::randn([e, m, d], DType::F32, 2, dev).unwrap();
    let lam = Tensor::<B>::full([e, 1, 1], 0.1, DType::F32, dev).unwrap();
    let l = Tensor::<B>::full([e, 1, 1], 40.0, DType::F32, dev).unwrap();
    [g, b, lam, l]
}

fn sparse_coding(c: &mut Criterion) {
    let Some(dev) = device() else { return };
    let cfg = UnrolledIsta::official(5);
    let mut group = c.benchmark_group("cuda/sparse-coding-fwd");
    for size in ISTA_SIZES {
        let [g, b, lam, l] = ista_inputs::<Cuda>(&dev, size);
        let id = format!("{}x{}x{}", size.0, size.1, size.2);
        for (name, mode) in [
            ("baseline-composite", SparseCodingKernels::Never),
            ("fused", SparseCodingKernels::Always),
        ] {
            group.bench_function(BenchmarkId::new(name, &id), |bench| {
                set_sparse_coding_kernels(mode);
                bench.iter(|| {
                    unrolled_ista(&g, &b, &lam, &l, &cfg).unwrap();
                    Cuda::synchronize(&dev).unwrap();
                })
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("cuda/sparse-coding-fwdbwd");
    for size in ISTA_SIZES {
        let ops = ista_inputs::<Autodiff<Cuda>>(&dev, size);
        let [g, b, lam, l] = ops.map(|t| t.requires_grad().unwrap());
        let id = format!("{}x{}x{}", size.0, size.1, size.2);
        for (name, mode) in [
            ("baseline-composite", SparseCodingKernels::Never),
            ("fused", SparseCodingKernels::Always),
        ] {
            group.bench_function(BenchmarkId::new(name, &id), |bench| {
                set_sparse_coding_kernels(mode);
                bench.iter(|| {
                    let a = unrolled_ista(&g, &b, &lam, &l, &cfg).unwrap();
                    a.sum_all().unwrap().backward().unwrap();
                    Cuda::synchronize(&dev).unwrap();
                })
            });
        }
    }
    set_sparse_coding_kernels(SparseCodingKernels::Auto);
    group.finish();
}

fn gemm(c: &mut Criterion) {
    let Some(dev) = device() else { return };
    let mut group = c.benchmark_group("cuda/gemm-f32");
    for n in [512usize, 2048] {
        let layout = Layout::contiguous(vec![n, n]);
        let a = Cuda::random(
            &dev,
            n * n,
            DType::F32,
            vars_core::Distribution::Uniform {
                low: -1.0,
                high: 1.0,
            },
            3,
        )
        .unwrap();
        group.throughput(Throughput::Elements(vars_benches::gemm_flops(1, n, n, n)));
        for (name, cublas) in [("baseline-cublas", true), ("nvrtc-kernel", false)] {
            group.bench_function(BenchmarkId::new(name, n), |bench| {
                bench.iter(|| {
                    a.matmul_with(&layout, &a, &layout, cublas).unwrap();
                    Cuda::synchronize(&dev).unwrap();
                })
            });
        }
    }
    group.finish();
}

fn rows(c: &mut Criterion) {
    let Some(dev) = device() else { return };
    let mut group = c.benchmark_group("cuda/rows");
    // Attention scores of RVT‑Ti stage 1 at batch 32 (32·6·196 rows of 196) and its tokens
    // (32·196 rows of 192 channels).
    let scores = Tensor::<Cuda>::randn([32 * 6, 196, 196], DType::F32, 4, &dev).unwrap();
    let tokens = Tensor::<Cuda>::randn([32, 196, 192], DType::F32, 5, &dev).unwrap();
    group.bench_function(BenchmarkId::new("baseline-composite", "softmax"), |bench| {
        bench.iter(|| {
            softmax_composite(&scores, 2).unwrap();
            Cuda::synchronize(&dev).unwrap();
        })
    });
    group.bench_function(BenchmarkId::new("fused", "softmax"), |bench| {
        bench.iter(|| {
            softmax(&scores, 2).unwrap();
            Cuda::synchronize(&dev).unwrap();
        })
    });
    group.bench_function(
        BenchmarkId::new("baseline-composite", "layer-norm"),
        |bench| {
            bench.iter(|| {
                let centred = tokens.sub(&tokens.mean(&[2], true).unwrap()).unwrap();
                let std = centred
                    .sqr()
                    .and_then(|v| v.mean(&[2], true))
                    .and_then(|v| v.add_scalar(1e-6))
                    .and_then(|v| v.sqrt())
                    .unwrap();
                centred.div(&std).unwrap();
                Cuda::synchronize(&dev).unwrap();
            })
        },
    );
    group.bench_function(BenchmarkId::new("fused", "layer-norm"), |bench| {
        bench.iter(|| {
            layer_norm(&tokens, None, None, 1e-6).unwrap();
            Cuda::synchronize(&dev).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, sparse_coding, gemm, rows);
criterion_main!(benches);
