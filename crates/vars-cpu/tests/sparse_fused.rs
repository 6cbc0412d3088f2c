//! The fused sparse-coding op (`vars_core::sparse::unrolled_ista`, spec §1.3, §3.3) on the CPU
//! backend: fused kernel == composite path, forward and gradients (G, b, λ, L), for every shrink
//! and both initial guesses, on random problems with batch dims, non-square codes, strided and
//! broadcast operands; both against finite differences; edge cases and errors.
//!
//! Tolerances (errors are `max |got − want| / max(1, max |want|)` over a tensor):
//! - forward: the fused kernel does the composite's arithmetic in the same order (the same GEMM
//!   calls, `(G·A − b)/L` with a division, the shrinks of the binary ops), so the outputs agree to
//!   the bit today in f64 and f32; the tests allow 1e-14 (f64) and 1e-6 (f32) so a future GEMM
//!   kernel or summation order does not break them.
//! - gradients: the fused backward reassociates (f64 accumulators for the scalar sums,
//!   `⟨Gᵀ·gZ, A⟩ − ⟨gZ, b⟩` for `Σ gZ⊙R`, one GEMM over all steps for ∂G): measured ≤ 5e-15 in f64
//!   and ≤ 1e-6 in f32; the tests allow 1e-13 and 1e-5.
//! - finite differences (`check_gradients`, eps 1e-6, f64): 1e-6. Problems are re-seeded until no
//!   pre-shrink value lies within 1e-4 of a kink of the shrink (|z| = t for the soft threshold,
//!   z = 0 for the GELU shrink, spec §8 item 10); the f32 comparisons use a 1e-5 margin, so a
//!   rounding difference cannot flip a branch.

use vars_core::nn::{shrink, Shrink};
use vars_core::sparse::{
    unrolled_ista, unrolled_ista_composite, unrolled_ista_pre_shrink, IstaInit, UnrolledIsta,
};
use vars_core::testing::check_gradients;
use vars_core::{Autodiff, Backend, DType, Layout, Result, Tensor};
use vars_cpu::{Cpu, CpuDevice};

type A = Autodiff<Cpu>;

const SHRINKS: [Shrink; 3] = [Shrink::Gelu, Shrink::SoftThreshold, Shrink::Identity];
const INITS: [IstaInit; 2] = [IstaInit::Shrink, IstaInit::Zero];

fn cfgs(steps: usize) -> Vec<UnrolledIsta> {
    let mut out = Vec::new();
    for shrink in SHRINKS {
        for init in INITS {
            out.push(UnrolledIsta {
                steps,
                shrink,
                init,
            });
        }
    }
    out
}

fn normal(n: usize, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| vars_core::rng::normal(seed, i as u64))
        .collect()
}

fn uniform(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    (0..n)
        .map(|i| lo + (hi - lo) * vars_core::rng::uniform(seed, i as u64))
        .collect()
}

fn t64<B: Backend<Device = CpuDevice>>(v: Vec<f64>, dims: &[usize]) -> Tensor<B> {
    Tensor::<B>::from_vec(v, dims.to_vec(), &CpuDevice).unwrap()
}

/// How the operands are laid out.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    /// G (B, H, m, m), b (B, H, m, d), λ rank 0, L (B, H, 1, 1), all contiguous.
    Plain,
    /// G a transposed view, b a narrowed view of a wider buffer, λ (1,), L (H, 1, 1).
    Strided,
    /// G (H, m, m) broadcast over B, b (B, H, m, d), λ (B, 1, 1, 1), L rank 0.
    Broadcast,
}

const VARIANTS: [Variant; 3] = [Variant::Plain, Variant::Strided, Variant::Broadcast];

/// A random problem: the stored operands (f64, possibly larger than the views) and how to view
/// them. `G = XᵀX/(2m) + 0.2·N/√m` (non-symmetric), `L` near the Gershgorin bound `1 + max row
/// Σ|G|`, `b ~ N(0, 1)`, λ ≈ 0.3.
struct Problem {
    variant: Variant,
    batch: [usize; 2],
    m: usize,
    d: usize,
    stored: [Tensor<Cpu>; 4],
}

impl Problem {
    fn new(variant: Variant, batch: [usize; 2], m: usize, d: usize, seed: u64) -> Problem {
        let [bb, hh] = batch;
        let g_entries = if variant == Variant::Broadcast {
            hh
        } else {
            bb * hh
        };
        let mut g = Vec::with_capacity(g_entries * m * m);
        let mut gersh = Vec::new();
        for e in 0..g_entries {
            let n_tok = 2 * m;
            let x = normal(n_tok * m, seed * 1000 + e as u64);
            let noise = normal(m * m, seed * 1000 + 500 + e as u64);
            let mut ge = vec![0.0; m * m];
            for i in 0..m {
                for j in 0..m {
                    let mut s = 0.0;
                    for p in 0..n_tok {
                        s += x[p * m + i] * x[p * m + j];
                    }
                    ge[i * m + j] = s / n_tok as f64 + 0.2 * noise[i * m + j] / (m as f64).sqrt();
                }
            }
            let rows = (0..m).map(|i| ge[i * m..(i + 1) * m].iter().map(|v| v.abs()).sum());
            gersh.push(1.0 + rows.fold(0.0f64, f64::max));
            g.extend(ge);
        }
        let mean_gersh = gersh.iter().sum::<f64>() / gersh.len() as f64;
        let lam0 = 0.3 + 0.05 * uniform(1, seed + 7, -1.0, 1.0)[0];
        let (g, b, lam, l) = match variant {
            Variant::Plain => {
                let scale = uniform(bb * hh, seed + 3, 0.9, 1.1);
                let l: Vec<f64> = (0..bb * hh).map(|e| gersh[e] * scale[e]).collect();
                (
                    t64(g, &[bb, hh, m, m]),
                    t64(normal(bb * hh * m * d, seed + 1), &[bb, hh, m, d]),
                    t64(vec![lam0], &[]),
                    t64(l, &[bb, hh, 1, 1]),
                )
            }
            Variant::Strided => {
                // Stored transposed: the view `.t()` of the stored tensor is G.
                let mut gt = vec![0.0; g.len()];
                for e in 0..bb * hh {
                    for i in 0..m {
                        for j in 0..m {
                            gt[e * m * m + j * m + i] = g[e * m * m + i * m + j];
                        }
                    }
                }
                let l = uniform(hh, seed + 3, 0.9, 1.1)
                    .iter()
                    .map(|s| s * mean_gersh)
                    .collect();
                (
                    t64(gt, &[bb, hh, m, m]),
                    t64(normal(bb * hh * m * (d + 3), seed + 1), &[bb, hh, m, d + 3]),
                    t64(vec![lam0], &[1]),
                    t64(l, &[hh, 1, 1]),
                )
            }
            Variant::Broadcast => {
                let lam = uniform(bb, seed + 5, 0.8, 1.2)
                    .iter()
                    .map(|s| s * lam0)
                    .collect();
                (
                    t64(g, &[hh, m, m]),
                    t64(normal(bb * hh * m * d, seed + 1), &[bb, hh, m, d]),
                    t64(lam, &[bb, 1, 1, 1]),
                    t64(vec![mean_gersh], &[]),
                )
            }
        };
        Problem {
            variant,
            batch,
            m,
            d,
            stored: [g, b, lam, l],
        }
    }

    /// The operands as the op sees them, from (views of) the stored tensors.
    fn views<B: Backend>(&self, stored: &[Tensor<B>]) -> Result<[Tensor<B>; 4]> {
        let [g, b, lam, l] = [&stored[0], &stored[1], &stored[2], &stored[3]];
        Ok(match self.variant {
            Variant::Strided => [g.t()?, b.narrow(3, 1, self.d)?, lam.clone(), l.clone()],
            _ => [g.clone(), b.clone(), lam.clone(), l.clone()],
        })
    }

    fn stored_as(&self, dtype: DType) -> Vec<Tensor<Cpu>> {
        self.stored
            .iter()
            .map(|t| t.to_dtype(dtype).unwrap())
            .collect()
    }

    fn out_dims(&self) -> Vec<usize> {
        vec![self.batch[0], self.batch[1], self.m, self.d]
    }

    /// Host reference in f64 on the broadcast operands: the output and the smallest distance of
    /// any pre-shrink value to a kink of the shrink.
    fn reference(&self, cfg: &UnrolledIsta) -> (Vec<f64>, f64) {
        let (m, d) = (self.m, self.d);
        let entries = self.batch[0] * self.batch[1];
        let v = self.views::<Cpu>(&self.stored).unwrap();
        let full = |t: &Tensor<Cpu>, r: usize, c: usize| {
            let dims = [self.batch[0], self.batch[1], r, c];
            t.broadcast_as(dims).unwrap().to_vec_f64().unwrap()
        };
        let (g, b, lam, l) = (
            full(&v[0], m, m),
            full(&v[1], m, d),
            full(&v[2], 1, 1),
            full(&v[3], 1, 1),
        );
        let mut kink = f64::INFINITY;
        let mut shrink_ref = |z: f64, t: f64| -> f64 {
            match cfg.shrink {
                Shrink::Identity => z,
                Shrink::SoftThreshold => {
                    kink = kink.min((z.abs() - t).abs());
                    z.signum() * (z.abs() - t).max(0.0)
                }
                Shrink::Gelu => {
                    kink = kink.min(z.abs());
                    if z == 0.0 {
                        0.0
                    } else {
                        z.signum() * vars_cpu::special::gelu(z.abs() - t)
                    }
                }
            }
        };
        let mut out = Vec::with_capacity(entries * m * d);
        for e in 0..entries {
            let (ge, be) = (&g[e * m * m..][..m * m], &b[e * m * d..][..m * d]);
            let (lm, ll) = (lam[e], l[e]);
            let mut a: Vec<f64> = match cfg.init {
                IstaInit::Shrink => be.iter().map(|&z| shrink_ref(z, lm)).collect(),
                IstaInit::Zero => vec![0.0; m * d],
            };
            for _ in 0..cfg.steps {
                let mut next = vec![0.0; m * d];
                for i in 0..m {
                    for j in 0..d {
                        let ga: f64 = (0..m).map(|p| ge[i * m + p] * a[p * d + j]).sum();
                        let z = a[i * d + j] - (ga - be[i * d + j]) / ll;
                        next[i * d + j] = shrink_ref(z, lm / ll);
                    }
                }
                a = next;
            }
            out.extend(a);
        }
        (out, kink)
    }
}

/// A problem whose pre-shrink values keep at least `margin` from the kinks of `cfg`'s shrink.
fn smooth_problem(
    variant: Variant,
    batch: [usize; 2],
    m: usize,
    d: usize,
    cfg: &UnrolledIsta,
    margin: f64,
    seed: u64,
) -> Problem {
    for attempt in 0..200 {
        let p = Problem::new(variant, batch, m, d, seed + 7919 * attempt);
        if p.reference(cfg).1 >= margin {
            return p;
        }
    }
    panic!("no problem without near-kink values found for {cfg:?} {variant:?} m={m} d={d}");
}

/// `max |got − want| / max(1, max |want|)`.
fn rel_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1.0f64, |s, v| s.max(v.abs()));
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f64::max)
        / scale
}

#[track_caller]
fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let err = rel_err(got, want);
    assert!(err <= tol, "{what}: relative error {err:e} > {tol:e}");
}

/// The loss weights: a fixed random tensor of the output's shape.
fn weights<B: Backend<Device = CpuDevice>>(dims: &[usize], dtype: DType) -> Tensor<B> {
    let n = dims.iter().product();
    t64::<B>(uniform(n, 4242, -1.0, 1.0), dims)
        .to_dtype(dtype)
        .unwrap()
}

type Op<B> = fn(&Tensor<B>, &Tensor<B>, &Tensor<B>, &Tensor<B>, &UnrolledIsta) -> Result<Tensor<B>>;

/// `Σ w⊙op(views(stored))` on the autodiff backend.
fn loss(
    p: &Problem,
    op: Op<A>,
    cfg: &UnrolledIsta,
    stored: &[Tensor<A>],
    dtype: DType,
) -> Result<Tensor<A>> {
    let [g, b, lam, l] = p.views(stored)?;
    let out = op(&g, &b, &lam, &l, cfg)?;
    out.mul(&weights::<A>(&p.out_dims(), dtype))?.sum_all()
}

/// Gradients of [`loss`] with respect to the four stored tensors (zeros where none flows).
fn gradients(p: &Problem, op: Op<A>, cfg: &UnrolledIsta, dtype: DType) -> Vec<Vec<f64>> {
    let vars: Vec<Tensor<A>> = p
        .stored_as(dtype)
        .iter()
        .map(|t| Tensor::<A>::from_inner(t).requires_grad().unwrap())
        .collect();
    let store = loss(p, op, cfg, &vars, dtype).unwrap().backward().unwrap();
    vars.iter()
        .map(|v| match store.get(v) {
            Some(g) => {
                assert_eq!(g.shape(), v.shape());
                g.to_vec_f64().unwrap()
            }
            None => vec![0.0; v.elem_count()],
        })
        .collect()
}

/// `A0 = 0` with `T = 0` is a constant: the composite's output is then not part of a graph.
fn not_constant(cfg: &UnrolledIsta) -> bool {
    cfg.steps > 0 || cfg.init == IstaInit::Shrink
}

const SIZES: [(usize, usize); 3] = [(8, 5), (16, 16), (6, 11)];

// ---- forward ---------------------------------------------------------------------------------------

#[test]
fn forward_matches_composite_and_reference_f64() {
    let mut seed = 1;
    for variant in VARIANTS {
        for (m, d) in SIZES {
            for steps in [0, 1, 3, 5] {
                for cfg in cfgs(steps) {
                    seed += 1;
                    let p = Problem::new(variant, [2, 3], m, d, seed);
                    let v = p.views::<Cpu>(&p.stored).unwrap();
                    let fused = unrolled_ista(&v[0], &v[1], &v[2], &v[3], &cfg).unwrap();
                    let comp = unrolled_ista_composite(&v[0], &v[1], &v[2], &v[3], &cfg).unwrap();
                    assert_eq!(fused.dims(), p.out_dims().as_slice());
                    assert_eq!(comp.dims(), p.out_dims().as_slice());
                    let (f, c) = (fused.to_vec_f64().unwrap(), comp.to_vec_f64().unwrap());
                    let what = format!("{cfg:?} {variant:?} m={m} d={d}");
                    assert_close(&format!("fused vs composite, {what}"), &f, &c, 1e-14);
                    let (want, kink) = p.reference(&cfg);
                    if kink > 1e-9 {
                        assert_close(
                            &format!("fused vs host reference, {what}"),
                            &f,
                            &want,
                            1e-10,
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn forward_matches_composite_f32() {
    let mut seed = 100;
    for variant in VARIANTS {
        for (m, d) in SIZES {
            for cfg in cfgs(5) {
                seed += 1;
                // Away from the kinks, so an f32 rounding difference cannot flip a branch.
                let p = smooth_problem(variant, [2, 3], m, d, &cfg, 1e-5, seed);
                let st = p.stored_as(DType::F32);
                let v = p.views::<Cpu>(&st).unwrap();
                let fused = unrolled_ista(&v[0], &v[1], &v[2], &v[3], &cfg).unwrap();
                let comp = unrolled_ista_composite(&v[0], &v[1], &v[2], &v[3], &cfg).unwrap();
                assert_eq!(fused.dtype(), DType::F32);
                let what = format!("f32 fused vs composite, {cfg:?} {variant:?} m={m} d={d}");
                let (f, c) = (fused.to_vec_f64().unwrap(), comp.to_vec_f64().unwrap());
                assert_close(&what, &f, &c, 1e-6);
            }
        }
    }
}

#[test]
fn zero_steps_return_the_initial_guess() {
    for variant in VARIANTS {
        for cfg in cfgs(0) {
            let p = Problem::new(variant, [2, 3], 7, 4, 77);
            let v = p.views::<Cpu>(&p.stored).unwrap();
            let got = unrolled_ista(&v[0], &v[1], &v[2], &v[3], &cfg).unwrap();
            let want = match cfg.init {
                IstaInit::Shrink => shrink(&v[1], &v[2], cfg.shrink)
                    .unwrap()
                    .broadcast_as(p.out_dims())
                    .unwrap(),
                IstaInit::Zero => Tensor::zeros(p.out_dims(), DType::F64, &CpuDevice).unwrap(),
            };
            let (g, w) = (got.to_vec::<f64>().unwrap(), want.to_vec::<f64>().unwrap());
            assert!(
                g.iter().zip(&w).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{cfg:?} {variant:?}: T = 0 must return A0 exactly"
            );
        }
    }
}

/// The recorded pre-shrink values: `b` first (shrink initial guess only), then one `Z` per step;
/// shrinking the last one with `λ/L` gives the op's output exactly.
#[test]
fn pre_shrink_trace_ends_in_the_output() {
    for variant in VARIANTS {
        for cfg in cfgs(3) {
            let p = Problem::new(variant, [2, 3], 7, 4, 78);
            let v = p.views::<Cpu>(&p.stored).unwrap();
            let trace = unrolled_ista_pre_shrink(&v[0], &v[1], &v[2], &v[3], &cfg).unwrap();
            let first_is_b = cfg.init == IstaInit::Shrink;
            assert_eq!(trace.len(), cfg.steps + usize::from(first_is_b), "{cfg:?}");
            if first_is_b {
                let b = v[1].broadcast_as(p.out_dims()).unwrap();
                assert_eq!(
                    trace[0].to_vec::<f64>().unwrap(),
                    b.to_vec::<f64>().unwrap()
                );
            }
            let t = v[2].div(&v[3]).unwrap();
            let last = shrink(trace.last().unwrap(), &t, cfg.shrink).unwrap();
            let got = unrolled_ista_composite(&v[0], &v[1], &v[2], &v[3], &cfg).unwrap();
            let (l, g) = (last.to_vec::<f64>().unwrap(), got.to_vec::<f64>().unwrap());
            assert!(
                l.iter().zip(&g).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{cfg:?} {variant:?}: shrink(last Z) must be the output"
            );
        }
    }
}

/// Spec §8 item 1: λ = 0, identity shrink, T = 0 gives the code `b` exactly (self-attention).
#[test]
fn identity_shrink_zero_lambda_zero_steps_is_b() {
    let cfg = UnrolledIsta {
        steps: 0,
        shrink: Shrink::Identity,
        init: IstaInit::Shrink,
    };
    for dtype in [DType::F32, DType::F64] {
        let p = Problem::new(Variant::Strided, [2, 3], 9, 6, 5);
        let st = p.stored_as(dtype);
        let v = p.views::<Cpu>(&st).unwrap();
        let zero = Tensor::<Cpu>::zeros((), dtype, &CpuDevice).unwrap();
        for op in [
            unrolled_ista::<Cpu> as Op<Cpu>,
            unrolled_ista_composite::<Cpu>,
        ] {
            let got = op(&v[0], &v[1], &zero, &v[3], &cfg).unwrap();
            let (g, b) = (got.to_vec_f64().unwrap(), v[1].to_vec_f64().unwrap());
            assert!(g.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
    }
}

/// The plain backend, the autodiff backend with and without tracked inputs, and 1 vs many
/// threads all give the same bits.
#[test]
fn paths_and_thread_counts_agree_bitwise() {
    let cfg = UnrolledIsta::official(5);
    let p = Problem::new(Variant::Plain, [4, 6], 32, 16, 11);
    let v = p.views::<Cpu>(&p.stored).unwrap();
    let plain = unrolled_ista(&v[0], &v[1], &v[2], &v[3], &cfg)
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| unrolled_ista(&v[0], &v[1], &v[2], &v[3], &cfg))
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    let va: Vec<Tensor<A>> = v.iter().map(Tensor::<A>::from_inner).collect();
    let untracked = unrolled_ista(&va[0], &va[1], &va[2], &va[3], &cfg)
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    let g = va[0].requires_grad().unwrap();
    let tracked = unrolled_ista(&g, &va[1], &va[2], &va[3], &cfg).unwrap();
    assert!(tracked.is_tracked());
    let tracked = tracked.to_vec::<f64>().unwrap();
    for other in [&one_thread, &untracked, &tracked] {
        assert!(plain
            .iter()
            .zip(other)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

// ---- gradients ---------------------------------------------------------------------------------------

#[test]
fn gradients_match_composite_f64() {
    let mut seed = 300;
    for variant in VARIANTS {
        for (m, d) in SIZES {
            for steps in [0, 1, 5] {
                for cfg in cfgs(steps).into_iter().filter(not_constant) {
                    seed += 1;
                    let p = Problem::new(variant, [2, 3], m, d, seed);
                    let fused = gradients(&p, unrolled_ista::<A>, &cfg, DType::F64);
                    let comp = gradients(&p, unrolled_ista_composite::<A>, &cfg, DType::F64);
                    for (i, name) in ["G", "b", "λ", "L"].iter().enumerate() {
                        let what = format!("∂{name}, {cfg:?} {variant:?} m={m} d={d}");
                        assert_close(&what, &fused[i], &comp[i], 1e-13);
                    }
                }
            }
        }
    }
}

#[test]
fn gradients_match_composite_f32() {
    let mut seed = 400;
    for variant in VARIANTS {
        for (m, d) in SIZES {
            for cfg in cfgs(5) {
                seed += 1;
                let p = smooth_problem(variant, [2, 3], m, d, &cfg, 1e-5, seed);
                let fused = gradients(&p, unrolled_ista::<A>, &cfg, DType::F32);
                let comp = gradients(&p, unrolled_ista_composite::<A>, &cfg, DType::F32);
                for (i, name) in ["G", "b", "λ", "L"].iter().enumerate() {
                    let what = format!("f32 ∂{name}, {cfg:?} {variant:?} m={m} d={d}");
                    assert_close(&what, &fused[i], &comp[i], 1e-5);
                }
            }
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let mut seed = 500;
    for variant in VARIANTS {
        for steps in [0, 3] {
            for cfg in cfgs(steps).into_iter().filter(not_constant) {
                seed += 1;
                let (m, d) = (5, 3);
                let p = smooth_problem(variant, [2, 3], m, d, &cfg, 1e-4, seed);
                for (name, op) in [
                    ("fused", unrolled_ista::<A> as Op<A>),
                    ("composite", unrolled_ista_composite::<A>),
                ] {
                    let f = |vars: &[Tensor<A>]| loss(&p, op, &cfg, vars, DType::F64);
                    if let Err(e) = check_gradients(f, &p.stored, 1e-6, 1e-6) {
                        panic!("{name} {cfg:?} {variant:?}: {e}");
                    }
                }
            }
        }
    }
}

/// The backend's backward without saved state recomputes it: same gradients as with it.
#[test]
fn backend_backward_without_saved_state() {
    for cfg in cfgs(4) {
        let p = Problem::new(Variant::Strided, [2, 3], 12, 7, 600);
        let v = p.views::<Cpu>(&p.stored).unwrap();
        let dims = p.out_dims();
        let full =
            |t: &Tensor<Cpu>, r: usize, c: usize| t.broadcast_as([dims[0], dims[1], r, c]).unwrap();
        let ops = [
            full(&v[0], 12, 12),
            full(&v[1], 12, 7),
            full(&v[2], 1, 1),
            full(&v[3], 1, 1),
        ];
        let sl = |i: usize| (ops[i].storage(), ops[i].layout());
        let fwd = Cpu::unrolled_ista_forward(
            &cfg,
            sl(0).0,
            sl(0).1,
            sl(1).0,
            sl(1).1,
            sl(2).0,
            sl(2).1,
            sl(3).0,
            sl(3).1,
            true,
        )
        .unwrap()
        .unwrap();
        let w = weights::<Cpu>(&dims, DType::F64);
        let run = |saved| {
            let g = Cpu::unrolled_ista_backward(
                &cfg,
                sl(0).0,
                sl(0).1,
                sl(1).0,
                sl(1).1,
                sl(2).0,
                sl(2).1,
                sl(3).0,
                sl(3).1,
                saved,
                w.storage(),
                w.layout(),
            )
            .unwrap()
            .unwrap();
            [g.g, g.b, g.lam, g.l].map(|s| s.as_f64().unwrap().to_vec())
        };
        let with = run(fwd.saved.as_ref());
        let without = run(None);
        assert_eq!(with, without, "{cfg:?}");
    }
}

/// The fused op inside a larger graph (a VARS‑D attention core, spec §3.3 steps 2–10, on
/// `Autodiff<Cpu>`): gradients of W, s_λ, s_L and the values V equal the composite's and pass a
/// finite-difference check.
#[test]
fn fused_op_in_a_vars_d_graph() {
    let (bb, hh, n_tok, m, d) = (2, 3, 10, 6, 4);
    let cfg = UnrolledIsta::official(3);
    let phi = t64::<Cpu>(
        uniform(bb * hh * n_tok * m, 901, 0.1, 1.0),
        &[bb, hh, n_tok, m],
    );
    let values = t64::<Cpu>(normal(bb * hh * n_tok * d, 902), &[bb, hh, n_tok, d]);
    let mut w0 = vec![0.0; m * m];
    for (i, x) in w0.iter_mut().enumerate() {
        *x = if i % (m + 1) == 0 { 1.0 } else { 0.0 } + 0.05 * normal(1, 903 + i as u64)[0];
    }
    let w = t64::<Cpu>(w0, &[m, m]);
    let s_lam = t64::<Cpu>(vec![1.1], &[1]);
    let s_l = t64::<Cpu>(vec![0.9], &[1]);
    let inputs = [w, s_lam, s_l, values];

    let attention = |op: Op<A>, x: &[Tensor<A>]| -> Result<Tensor<A>> {
        let (w, s_lam, s_l, v) = (&x[0], &x[1], &x[2], &x[3]);
        let phi = Tensor::<A>::from_inner(&phi);
        let dict = phi.div(&phi.norm_l2(&[2], true)?)?; // unit atoms over the tokens
        let dt = dict.t()?;
        let gram = dt.matmul(&dict)?;
        let b = dt.matmul(v)?;
        let gersh = no_grad_gershgorin(&gram)?;
        let ge = w.matmul(&gram)?.matmul(w)?;
        let lam = s_lam.mul_scalar(0.3)?;
        let l = gersh.div(s_l)?;
        let a = op(&ge, &b, &lam, &l, &cfg)?;
        let y = dict.matmul(&a)?;
        y.sqr()?.sum_all()
    };

    let grads = |op: Op<A>| -> Vec<Vec<f64>> {
        let vars: Vec<Tensor<A>> = inputs
            .iter()
            .map(|t| Tensor::<A>::from_inner(t).requires_grad().unwrap())
            .collect();
        let store = attention(op, &vars).unwrap().backward().unwrap();
        vars.iter()
            .map(|v| store.get(v).unwrap().to_vec_f64().unwrap())
            .collect()
    };
    let fused = grads(unrolled_ista::<A>);
    let comp = grads(unrolled_ista_composite::<A>);
    for (i, name) in ["W", "s_λ", "s_L", "V"].iter().enumerate() {
        assert_close(&format!("∂{name}"), &fused[i], &comp[i], 1e-13);
        assert!(fused[i].iter().any(|g| *g != 0.0), "∂{name} is zero");
    }
    check_gradients(|x| attention(unrolled_ista::<A>, x), &inputs, 1e-6, 1e-6).unwrap();
}

/// `1 + max_i Σ_j |G_ij|` per (sample, head), detached (spec §3.3 step 5).
fn no_grad_gershgorin(gram: &Tensor<A>) -> Result<Tensor<A>> {
    vars_core::no_grad(|| {
        gram.abs()?
            .sum(&[3], true)?
            .max(&[2], true)?
            .add_scalar(1.0)
    })
    .map(|t| t.detach())
}

// ---- edge cases and errors ------------------------------------------------------------------------

#[test]
fn empty_problems() {
    for (m, d, bb) in [(4, 0, 2), (0, 3, 2), (4, 3, 0)] {
        for cfg in cfgs(2) {
            let g = Tensor::<A>::ones([bb, m, m], DType::F64, &CpuDevice)
                .unwrap()
                .requires_grad()
                .unwrap();
            let b = Tensor::<A>::ones([bb, m, d], DType::F64, &CpuDevice).unwrap();
            let lam = Tensor::<A>::full((), 0.1, DType::F64, &CpuDevice).unwrap();
            let l = Tensor::<A>::full([bb, 1, 1], 4.0, DType::F64, &CpuDevice).unwrap();
            let out = unrolled_ista(&g, &b, &lam, &l, &cfg).unwrap();
            assert_eq!(out.dims(), &[bb, m, d]);
            let grads = out.sum_all().unwrap().backward().unwrap();
            let gg = grads.get(&g).unwrap().to_vec::<f64>().unwrap();
            assert!(gg.iter().all(|x| *x == 0.0));
        }
    }
}

#[test]
fn bad_operands_are_errors_naming_the_op() {
    let dev = CpuDevice;
    let f = |dims: &[usize]| Tensor::<Cpu>::ones(dims.to_vec(), DType::F64, &dev).unwrap();
    let cfg = UnrolledIsta::default();
    let (g, b, lam, l) = (f(&[2, 4, 4]), f(&[2, 4, 3]), f(&[]), f(&[2, 1, 1]));
    let cases: Vec<(&str, [Tensor<Cpu>; 4])> = vec![
        (
            "G not square",
            [f(&[2, 4, 5]), b.clone(), lam.clone(), l.clone()],
        ),
        ("G rank 1", [f(&[4]), b.clone(), lam.clone(), l.clone()]),
        (
            "b with another m",
            [g.clone(), f(&[2, 5, 3]), lam.clone(), l.clone()],
        ),
        ("b rank 1", [g.clone(), f(&[4]), lam.clone(), l.clone()]),
        ("λ per row", [g.clone(), b.clone(), f(&[4, 1]), l.clone()]),
        ("L per column", [g.clone(), b.clone(), lam.clone(), f(&[3])]),
        (
            "batch mismatch",
            [g.clone(), f(&[3, 4, 3]), lam.clone(), l.clone()],
        ),
        (
            "L batch mismatch",
            [g.clone(), b.clone(), lam.clone(), f(&[5, 1, 1])],
        ),
        (
            "dtype mismatch",
            [
                g.clone(),
                b.to_dtype(DType::F32).unwrap(),
                lam.clone(),
                l.clone(),
            ],
        ),
        (
            "integer dtype",
            [
                g.to_dtype(DType::I64).unwrap(),
                b.to_dtype(DType::I64).unwrap(),
                lam.to_dtype(DType::I64).unwrap(),
                l.to_dtype(DType::I64).unwrap(),
            ],
        ),
    ];
    for (what, [g, b, lam, l]) in cases {
        for (name, op) in [
            ("unrolled_ista", unrolled_ista::<Cpu> as Op<Cpu>),
            ("unrolled_ista_composite", unrolled_ista_composite::<Cpu>),
        ] {
            let err = op(&g, &b, &lam, &l, &cfg)
                .err()
                .unwrap_or_else(|| panic!("{what}: {name} accepted bad operands"));
            assert!(
                err.to_string().starts_with(name),
                "{what}: error `{err}` does not name `{name}`"
            );
        }
    }
    // The backend hook validates its own views too.
    let (gs, bs) = (f(&[2, 4, 4]), f(&[2, 5, 3]));
    let one = f(&[2, 1, 1]);
    let r = Cpu::unrolled_ista_forward(
        &cfg,
        gs.storage(),
        gs.layout(),
        bs.storage(),
        bs.layout(),
        one.storage(),
        one.layout(),
        one.storage(),
        one.layout(),
        false,
    );
    assert!(r.unwrap_err().to_string().contains("unrolled_ista"));
}

// ---- the default paths (a backend without the fused kernels) ---------------------------------------

/// The CPU backend with the fused hooks withheld: `FWD = false` has neither (composite forward,
/// backward by autodiff through the recomputed composite); `FWD = true` has the fused forward but
/// no fused backward (the custom op's backward falls back to the recomputed composite).
#[derive(Debug, Clone, Copy, Default)]
struct Partial<const FWD: bool>;

impl<const FWD: bool> Backend for Partial<FWD> {
    type Device = CpuDevice;
    type Storage = vars_cpu::CpuStorage;
    fn name() -> &'static str {
        "cpu-partial"
    }
    fn storage_device(s: &Self::Storage) -> CpuDevice {
        Cpu::storage_device(s)
    }
    fn storage_dtype(s: &Self::Storage) -> DType {
        Cpu::storage_dtype(s)
    }
    fn storage_len(s: &Self::Storage) -> usize {
        Cpu::storage_len(s)
    }
    fn full(d: &CpuDevice, len: usize, dtype: DType, value: f64) -> Result<Self::Storage> {
        Cpu::full(d, len, dtype, value)
    }
    fn from_host(d: &CpuDevice, data: vars_core::HostData) -> Result<Self::Storage> {
        Cpu::from_host(d, data)
    }
    fn to_host(s: &Self::Storage, l: &Layout) -> Result<vars_core::HostData> {
        Cpu::to_host(s, l)
    }
    fn synchronize(d: &CpuDevice) -> Result<()> {
        Cpu::synchronize(d)
    }
    fn random(
        d: &CpuDevice,
        len: usize,
        dtype: DType,
        dist: vars_core::Distribution,
        seed: u64,
    ) -> Result<Self::Storage> {
        Cpu::random(d, len, dtype, dist, seed)
    }
    fn copy_strided(s: &Self::Storage, l: &Layout) -> Result<Self::Storage> {
        Cpu::copy_strided(s, l)
    }
    fn copy_into(
        src: &Self::Storage,
        sl: &Layout,
        dst: &mut Self::Storage,
        dl: &Layout,
    ) -> Result<()> {
        Cpu::copy_into(src, sl, dst, dl)
    }
    fn cast(s: &Self::Storage, l: &Layout, dtype: DType) -> Result<Self::Storage> {
        Cpu::cast(s, l, dtype)
    }
    fn unary(op: vars_core::UnaryOp, s: &Self::Storage, l: &Layout) -> Result<Self::Storage> {
        Cpu::unary(op, s, l)
    }
    fn binary(
        op: vars_core::BinaryOp,
        a: &Self::Storage,
        al: &Layout,
        b: &Self::Storage,
        bl: &Layout,
    ) -> Result<Self::Storage> {
        Cpu::binary(op, a, al, b, bl)
    }
    fn where_cond(
        c: &Self::Storage,
        cl: &Layout,
        t: &Self::Storage,
        tl: &Layout,
        f: &Self::Storage,
        fl: &Layout,
    ) -> Result<Self::Storage> {
        Cpu::where_cond(c, cl, t, tl, f, fl)
    }
    fn reduce(
        op: vars_core::ReduceOp,
        s: &Self::Storage,
        l: &Layout,
        axes: &[usize],
    ) -> Result<Self::Storage> {
        Cpu::reduce(op, s, l, axes)
    }
    fn matmul(
        a: &Self::Storage,
        al: &Layout,
        b: &Self::Storage,
        bl: &Layout,
    ) -> Result<Self::Storage> {
        Cpu::matmul(a, al, b, bl)
    }
    fn index_select(
        s: &Self::Storage,
        l: &Layout,
        dim: usize,
        i: &Self::Storage,
        il: &Layout,
    ) -> Result<Self::Storage> {
        Cpu::index_select(s, l, dim, i, il)
    }
    fn index_add(
        s: &Self::Storage,
        l: &Layout,
        dim: usize,
        i: &Self::Storage,
        il: &Layout,
        size: usize,
    ) -> Result<Self::Storage> {
        Cpu::index_add(s, l, dim, i, il, size)
    }
    fn unfold2d(
        s: &Self::Storage,
        l: &Layout,
        w: vars_core::Window2d,
        pad: f64,
    ) -> Result<Self::Storage> {
        Cpu::unfold2d(s, l, w, pad)
    }
    fn fold2d(
        s: &Self::Storage,
        l: &Layout,
        w: vars_core::Window2d,
        hw: (usize, usize),
    ) -> Result<Self::Storage> {
        Cpu::fold2d(s, l, w, hw)
    }
    fn unrolled_ista_forward(
        cfg: &UnrolledIsta,
        g: &Self::Storage,
        gl: &Layout,
        b: &Self::Storage,
        bl: &Layout,
        lam: &Self::Storage,
        laml: &Layout,
        l: &Self::Storage,
        ll: &Layout,
        save: bool,
    ) -> Result<Option<vars_core::sparse::IstaForward<Self::Storage>>> {
        if FWD {
            Cpu::unrolled_ista_forward(cfg, g, gl, b, bl, lam, laml, l, ll, save)
        } else {
            Ok(None)
        }
    }
}

/// Gradients of [`loss`] computed on another backend sharing the CPU storage type.
fn gradients_on<P: Backend<Device = CpuDevice, Storage = vars_cpu::CpuStorage>>(
    p: &Problem,
    cfg: &UnrolledIsta,
) -> (Vec<f64>, Vec<Vec<f64>>) {
    let vars: Vec<Tensor<Autodiff<P>>> = p
        .stored
        .iter()
        .map(|t| {
            let host = t.to_vec::<f64>().unwrap();
            Tensor::<Autodiff<P>>::from_vec(host, t.dims().to_vec(), &CpuDevice)
                .unwrap()
                .requires_grad()
                .unwrap()
        })
        .collect();
    let [g, b, lam, l] = p.views(&vars).unwrap();
    let out = unrolled_ista(&g, &b, &lam, &l, cfg).unwrap();
    let w = weights::<Autodiff<P>>(&p.out_dims(), DType::F64);
    let store = out.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
    let grads = vars
        .iter()
        .map(|v| match store.get(v) {
            Some(g) => g.to_vec_f64().unwrap(),
            None => vec![0.0; v.elem_count()],
        })
        .collect();
    (out.to_vec_f64().unwrap(), grads)
}

#[test]
fn default_paths_match_the_fused_kernels() {
    let mut seed = 700;
    for variant in VARIANTS {
        for steps in [0, 2, 5] {
            for cfg in cfgs(steps).into_iter().filter(not_constant) {
                seed += 1;
                let p = Problem::new(variant, [2, 3], 7, 5, seed);
                let v = p.views::<Cpu>(&p.stored).unwrap();
                let want_out = unrolled_ista(&v[0], &v[1], &v[2], &v[3], &cfg)
                    .unwrap()
                    .to_vec_f64()
                    .unwrap();
                let want = gradients(&p, unrolled_ista::<A>, &cfg, DType::F64);
                for (name, (out, grads)) in [
                    ("no fused kernels", gradients_on::<Partial<false>>(&p, &cfg)),
                    (
                        "fused forward only",
                        gradients_on::<Partial<true>>(&p, &cfg),
                    ),
                ] {
                    let what = format!("{name}, {cfg:?} {variant:?}");
                    assert_close(&format!("output, {what}"), &out, &want_out, 1e-14);
                    for (i, g) in ["G", "b", "λ", "L"].iter().enumerate() {
                        assert_close(&format!("∂{g}, {what}"), &grads[i], &want[i], 1e-13);
                    }
                }
            }
        }
    }
}
