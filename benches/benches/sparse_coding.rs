//! The sparse-coding loop of VARS‑D (spec §3.3 steps 8–9: `A0 = shrink(b, λ)`, then T = 5 ISTA
//! steps with the official GELU shrink) at RVT sizes, f32, batch 8: the fused op
//! `vars_core::sparse::unrolled_ista` (the CPU kernel in `vars-cpu/src/sparse_coding.rs`) against
//! `baseline-composite`, the same computation from tensor ops (`unrolled_ista_composite`),
//! measured in the same run so `cargo xtask bench sparse_coding` prints the speed-up.
//!
//! Shapes (spec §5, r = 2 so m = 2d): RVT‑Ti stage 0 (H = 6, d = 32, m = 64: 48 (sample, head)
//! entries), RVT‑Ti stage 1 (H = 12, d = 32, m = 64: 96 entries) and RVT‑S (H = 6, d = 64,
//! m = 128). G, b and L come from a VARS‑D dictionary on 196 (resp. 49) tokens: unit-norm positive
//! random features, `G = DᵀD`, `b = DᵀV`, `L = 1 + max_i Σ_j |G_ij|`, λ = 0.3.
//!
//! Groups: `sparse_coding/fwd` (inference, `Tensor<Cpu>`) and `sparse_coding/fwdbwd` (forward and
//! backward on `Tensor<Autodiff<Cpu>>` with G, b, λ and L all requiring gradients, seeded with a
//! fixed random output gradient). Throughput is in elements = the loop's GEMM flops
//! (`2·T·m²·d` per entry; ×3 for fwdbwd), so "Gelem/s" reads as GFLOP/s of the matrix work.
//!
//! `cargo xtask bench sparse_coding [--quick]`, or
//! `cargo bench -p vars-benches --bench sparse_coding -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vars_benches::random_f32;
use vars_core::sparse::{unrolled_ista, unrolled_ista_composite, UnrolledIsta};
use vars_core::{Autodiff, Backend, DType, Result, Tensor};
use vars_cpu::{Cpu, CpuDevice};

type Ad = Autodiff<Cpu>;

struct Case {
    name: &'static str,
    batch: usize,
    heads: usize,
    tokens: usize,
    d: usize,
}

const CASES: &[Case] = &[
    Case {
        name: "rvt-ti-s0 8x6 m64 d32",
        batch: 8,
        heads: 6,
        tokens: 196,
        d: 32,
    },
    Case {
        name: "rvt-ti-s1 8x12 m64 d32",
        batch: 8,
        heads: 12,
        tokens: 49,
        d: 32,
    },
    Case {
        name: "rvt-s 8x6 m128 d64",
        batch: 8,
        heads: 6,
        tokens: 196,
        d: 64,
    },
];

const STEPS: usize = 5;

/// `(G, b, λ, L, output gradient)` for a case, f32.
fn problem(c: &Case) -> Result<[Tensor<Cpu>; 5]> {
    let dev = CpuDevice;
    let (bh, n, d, m) = (c.batch * c.heads, c.tokens, c.d, 2 * c.d);
    let t = |v: Vec<f32>, dims: Vec<usize>| Tensor::<Cpu>::from_vec(v, dims, &dev);
    // Positive features (exp of a random projection), unit atoms over the tokens.
    let phi = t(random_f32(bh * n * m, 1), vec![c.batch, c.heads, n, m])?.exp()?;
    let dict = phi.div(&phi.norm_l2(&[2], true)?)?;
    let values = t(random_f32(bh * n * d, 2), vec![c.batch, c.heads, n, d])?;
    let g = dict.t()?.matmul(&dict)?;
    let b = dict.t()?.matmul(&values)?;
    let l = g.abs()?.sum(&[3], true)?.max(&[2], true)?.add_scalar(1.0)?;
    let lam = Tensor::<Cpu>::scalar(0.3, DType::F32, &dev)?;
    let grad = t(random_f32(bh * m * d, 3), vec![c.batch, c.heads, m, d])?;
    Ok([g.contiguous()?, b.contiguous()?, lam, l.contiguous()?, grad])
}

type Op<B> = fn(&Tensor<B>, &Tensor<B>, &Tensor<B>, &Tensor<B>, &UnrolledIsta) -> Result<Tensor<B>>;

const ENTRIES_FWD: [(&str, Op<Cpu>); 2] = [
    ("fused", unrolled_ista::<Cpu>),
    ("baseline-composite", unrolled_ista_composite::<Cpu>),
];

const ENTRIES_FWDBWD: [(&str, Op<Ad>); 2] = [
    ("fused", unrolled_ista::<Ad>),
    ("baseline-composite", unrolled_ista_composite::<Ad>),
];

fn max_rel_diff<B: Backend>(a: &Tensor<B>, b: &Tensor<B>) -> f64 {
    let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    let scale = b.iter().fold(1.0f64, |s, v| s.max(v.abs()));
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
        / scale
}

fn bench_sparse_coding(c: &mut Criterion) {
    let cfg = UnrolledIsta::official(STEPS);
    for case in CASES {
        let [g, b, lam, l, grad] = problem(case).unwrap();
        let m = 2 * case.d;
        let flops = (2 * STEPS * m * m * case.d * case.batch * case.heads) as u64;

        // Sanity: both paths compute the same codes.
        let fused = unrolled_ista(&g, &b, &lam, &l, &cfg).unwrap();
        let comp = unrolled_ista_composite(&g, &b, &lam, &l, &cfg).unwrap();
        let diff = max_rel_diff(&fused, &comp);
        assert!(diff < 1e-5, "fused and composite differ by {diff:e}");

        let mut group = c.benchmark_group("sparse_coding/fwd");
        group.throughput(Throughput::Elements(flops));
        for (name, op) in ENTRIES_FWD {
            group.bench_function(BenchmarkId::new(name, case.name), |bench| {
                bench.iter(|| black_box(op(&g, &b, &lam, &l, &cfg).unwrap()))
            });
        }
        group.finish();

        let lift = |t: &Tensor<Cpu>| Tensor::<Ad>::from_inner(t);
        let grad = lift(&grad);
        let mut group = c.benchmark_group("sparse_coding/fwdbwd");
        group.throughput(Throughput::Elements(3 * flops));
        for (name, op) in ENTRIES_FWDBWD {
            group.bench_function(BenchmarkId::new(name, case.name), |bench| {
                bench.iter(|| {
                    let vars = [&g, &b, &lam, &l].map(|t| lift(t).requires_grad().unwrap());
                    let out = op(&vars[0], &vars[1], &vars[2], &vars[3], &cfg).unwrap();
                    black_box(out.backward_with(&grad).unwrap())
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_sparse_coding);
criterion_main!(benches);
