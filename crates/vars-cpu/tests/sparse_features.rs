//! Positive random features (spec §2): the reference order of operations, the unbiased kernel
//! estimate converging to exp(xᵀy) as m grows, and the self-attention special case (spec §1.4).

mod sparse_support;

use sparse_support::*;
use vars_core::nn::Shrink;
use vars_core::sparse::{
    positive_features, solve, IstaInit, PositiveRandomFeatures, SolverConfig, SparseProblem,
    StepSize, Stop,
};
use vars_core::{DType, Result, Tensor};
use vars_cpu::Cpu;

/// Host reference of spec §2, steps 1–4, for one head: `q: N×d`, `omega: d×m` → `N×m`.
fn reference_features(
    q: &[f64],
    omega: &[f64],
    n: usize,
    d: usize,
    m: usize,
    normalize: bool,
) -> Vec<f64> {
    let mut out = vec![0.0; n * m];
    for i in 0..n {
        let mut x: Vec<f64> = q[i * d..(i + 1) * d]
            .iter()
            .map(|v| v * (d as f64).powf(-0.25))
            .collect();
        if normalize {
            let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            x.iter_mut().for_each(|v| *v /= norm);
        }
        let sq: f64 = x.iter().map(|v| v * v).sum();
        for j in 0..m {
            let z: f64 = (0..d).map(|c| x[c] * omega[c * m + j]).sum();
            out[i * m + j] = (z - sq / 2.0).exp() / (m as f64).sqrt();
        }
    }
    out
}

#[test]
fn features_follow_the_reference_order_of_operations() -> Result<()> {
    let (b, h, n, d, m) = (2, 3, 7, 4, 8);
    for normalize in [true, false] {
        let prf = PositiveRandomFeatures::<Cpu>::new(h, d, m, normalize, DType::F64, 11, &DEV)?;
        let q = t64(&normal(b * h * n, d, 12), &[b, h, n, d]).mul_scalar(1.7)?;
        let got = prf.apply(&q)?;
        assert_eq!(got.dims(), &[b, h, n, m]);
        let got = got.to_vec_f64()?;
        let (qh, om) = (q.to_vec_f64()?, prf.omega().to_vec_f64()?);
        for bi in 0..b {
            for hi in 0..h {
                let qs = &qh[(bi * h + hi) * n * d..(bi * h + hi + 1) * n * d];
                let want =
                    reference_features(qs, &om[hi * d * m..(hi + 1) * d * m], n, d, m, normalize);
                let off = (bi * h + hi) * n * m;
                let err = max_diff(&got[off..off + n * m], &want);
                assert!(err < 1e-14, "normalize {normalize}: {err:e}");
            }
        }
        // With normalisation the input scale (and so the d^{-1/4} factor) has no effect.
        let scaled = prf.apply(&q.mul_scalar(5.0)?)?.to_vec_f64()?;
        let diff = max_diff(&scaled, &got);
        if normalize {
            assert!(diff < 1e-14);
        } else {
            assert!(diff > 1e-3);
        }
    }
    // f32 agrees with f64 to f32 precision (exp of O(1) arguments: ≲ 1e-6 relative).
    let prf = PositiveRandomFeatures::<Cpu>::new(1, 4, 6, true, DType::F64, 3, &DEV)?;
    let q = t64(&normal(5, 4, 4), &[1, 5, 4]);
    let f64v = prf.apply(&q)?.to_vec_f64()?;
    let prf32 = PositiveRandomFeatures::from_omega(&prf.omega().to_dtype(DType::F32)?, true)?;
    let f32v = prf32.apply(&q.to_dtype(DType::F32)?)?.to_vec_f64()?;
    for (a, b) in f32v.iter().zip(&f64v) {
        assert!((a - b).abs() <= 2e-6 * b.abs());
    }
    Ok(())
}

/// `φ(x)ᵀφ(y)` is an average of m i.i.d. terms with mean `exp(xᵀy)` and relative standard
/// deviation `σ₁ = √(exp(‖x + y‖²) − 1)` (module docs of `features`), so its relative error has
/// standard deviation `σ₁/√m`. Checked on 8 seeded pairs (‖x‖ = ‖y‖ = 0.6) at m = 64 … 65536,
/// with `z = error/(σ₁/√m)`:
///
/// - at every m the root-mean-square of the 8 z-scores lies in [0.3, 2.5]: the error has the
///   predicted size, i.e. it shrinks as m^{-1/2}. For Gaussian z, rms(z)² ~ χ²₈/8 leaves
///   [0.3, 2.5] with probability ≈ 5e-4; the terms are log-normal, so z is right-skewed
///   (skewness of the mean ≈ 10/√m), which widens the upper tail — hence the generous 2.5
///   (measured: 0.73 … 1.66);
/// - every single |z| ≤ 6 (measured max 3.8, the skewed tail again);
/// - the rms relative error at m = 65536 is below 1%.
///
/// The draws are seeded, so the test is deterministic.
#[test]
fn the_kernel_estimate_converges_to_exp_of_the_inner_product() -> Result<()> {
    let d = 4;
    let ms = [64usize, 1024, 16384, 65536];
    let pairs = 8;
    let mut z_sq = vec![0.0; ms.len()];
    let mut rel_sq = vec![0.0; ms.len()];
    for p in 0..pairs {
        let scale = |v: Vec<f64>| -> Vec<f64> {
            let n = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            v.iter().map(|a| 0.6 * a / n).collect()
        };
        let x = scale(normal(1, d, 1000 + p));
        let y = scale(normal(1, d, 2000 + p));
        let xy: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
        let sum_sq: f64 = x.iter().zip(&y).map(|(a, b)| (a + b).powi(2)).sum();
        let sigma1 = (sum_sq.exp() - 1.0).sqrt();
        for (mi, &m) in ms.iter().enumerate() {
            let omega = Tensor::<Cpu>::randn([d, m], DType::F64, 7000 + 31 * p + mi as u64, &DEV)?;
            let fx = positive_features(&t64(&x, &[d]), &omega)?;
            let fy = positive_features(&t64(&y, &[d]), &omega)?;
            let k = fx.mul(&fy)?.sum_all()?.to_vec_f64()?[0];
            let rel = (k - xy.exp()) / xy.exp();
            let z = rel / (sigma1 / (m as f64).sqrt());
            assert!(
                z.abs() <= 6.0,
                "pair {p}, m = {m}: relative error {rel:e} is {z:.1} σ"
            );
            z_sq[mi] += z * z / pairs as f64;
            rel_sq[mi] += rel * rel / pairs as f64;
        }
    }
    for (mi, &m) in ms.iter().enumerate() {
        let rms_z = z_sq[mi].sqrt();
        assert!((0.3..=2.5).contains(&rms_z), "m = {m}: rms z-score {rms_z}");
    }
    let rms_last = rel_sq[ms.len() - 1].sqrt();
    assert!(
        rms_last < 0.01,
        "rms relative error {rms_last} at m = 65536"
    );
    Ok(())
}

/// Spec §1.4: λ = 0, the identity shrink and one unit step from a = 0 give a = Dᵀx, so the
/// output is D·Dᵀ·x; with D = φ(Q) that is (unnormalised) kernel attention φ(Q)φ(Q)ᵀV.
#[test]
fn one_step_without_sparsity_is_kernel_attention() -> Result<()> {
    let (h, n, d, m, dv) = (2, 10, 4, 8, 3);
    let prf = PositiveRandomFeatures::<Cpu>::new(h, d, m, true, DType::F64, 21, &DEV)?;
    let q = t64(&normal(h * n, d, 22), &[h, n, d]);
    let v = t64(&normal(h * n, dv, 23), &[h, n, dv]);
    let phi = prf.apply(&q)?;
    // Host reference: φ from the reference features, then φφᵀV.
    let (qh, om, vh) = (q.to_vec_f64()?, prf.omega().to_vec_f64()?, v.to_vec_f64()?);
    let mut want = Vec::new();
    for hi in 0..h {
        let f = reference_features(
            &qh[hi * n * d..(hi + 1) * n * d],
            &om[hi * d * m..(hi + 1) * d * m],
            n,
            d,
            m,
            true,
        );
        let vs = &vh[hi * n * dv..(hi + 1) * n * dv];
        for i in 0..n {
            for c in 0..dv {
                let mut s = 0.0;
                for j in 0..n {
                    let kij: f64 = (0..m).map(|a| f[i * m + a] * f[j * m + a]).sum();
                    s += kij * vs[j * dv + c];
                }
                want.push(s);
            }
        }
    }
    let zero = Tensor::scalar(0.0, DType::F64, &DEV)?;
    for (shrink, init, steps) in [
        (Shrink::Identity, IstaInit::Zero, 1),
        (Shrink::SoftThreshold, IstaInit::Zero, 1),
        // The official initial guess a₀ = S(b; λ) with T = 0 is the same unit step.
        (Shrink::Identity, IstaInit::Shrink, 0),
    ] {
        let p = SparseProblem::from_dictionary(&phi, &v, &zero, shrink)?;
        let cfg = SolverConfig::ista(Stop::Steps(steps))
            .with_init(init)
            .with_step(StepSize::constant(1.0, &p)?);
        let a = solve(&p, &cfg)?.code;
        let err = max_diff(&a.to_vec_f64()?, &p.drive().to_vec_f64()?);
        assert!(err < 1e-15, "a ≠ Dᵀx: {err:e}");
        let out = p.reconstruct(&a)?;
        assert_eq!(out.dims(), &[h, n, dv]);
        let err = max_diff(&out.to_vec_f64()?, &want);
        assert!(err < 1e-12, "{shrink:?} {init:?}: {err:e}");
    }
    Ok(())
}
