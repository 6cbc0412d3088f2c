//! Step constants: the Gershgorin bound is ≥ the exact λ_max (Jacobi, f64), the official L adds
//! 1, power iteration lands within tolerance of the exact value, and the exact spectral norm of
//! the non-symmetric W·G·W is right.

mod sparse_support;

use sparse_support::*;
use vars_core::nn::Shrink;
use vars_core::sparse::linalg::{gram_of, symmetric_eigenvalues};
use vars_core::sparse::{
    exact_lambda_max, exact_spectral_norm, gershgorin_bound, official_step_constant,
    power_iteration, PositiveRandomFeatures, SparseProblem, StepSize,
};
use vars_core::{DType, Result, Tensor};
use vars_cpu::Cpu;

/// Gram matrices of random dictionaries: Gaussian columns, and positive random features (the
/// VARS-D dictionary, strongly correlated atoms: the regime where Gershgorin is loose).
fn grams() -> Result<Vec<Tensor<Cpu>>> {
    let mut out = Vec::new();
    for seed in 0..8u64 {
        let (n, m) = (20 + seed as usize, 5 + 3 * seed as usize);
        let mut d = normal(n, m, seed);
        normalize_columns(&mut d, n, m);
        let dt = t64(&d, &[n, m]);
        out.push(dt.t()?.matmul(&dt)?);
    }
    let prf = PositiveRandomFeatures::<Cpu>::new(2, 8, 16, true, DType::F64, 5, &DEV)?;
    let q = t64(&normal(2 * 30, 8, 6), &[2, 30, 8]);
    let phi = prf.apply(&q)?; // (2, 30, 16)
    let d = phi.div(&phi.norm_l2(&[1], true)?)?; // unit atoms over the tokens
    out.push(d.t()?.matmul(&d)?);
    Ok(out)
}

#[test]
fn gershgorin_bounds_the_exact_largest_eigenvalue() -> Result<()> {
    for g in grams()? {
        let exact = exact_lambda_max(&g)?;
        let bound = gershgorin_bound(&g)?.to_vec_f64()?;
        let official = official_step_constant(&g)?.to_vec_f64()?;
        assert_eq!(bound.len(), exact.len());
        for ((b, e), o) in bound.iter().zip(&exact).zip(&official) {
            assert!(*b >= *e * (1.0 - 1e-14), "bound {b} < λ_max {e}");
            assert_eq!(*o, b + 1.0);
        }
        let dims = g.dims();
        let mut want = dims[..dims.len() - 2].to_vec();
        want.extend([1, 1]);
        assert_eq!(official_step_constant(&g)?.dims(), &want[..]);
    }
    Ok(())
}

/// Power iteration on GᵀG converges like (λ₂/λ₁)^{2·iters}; 300 iterations suffice for these
/// spectra (asserted: relative error below 1e-8). The estimate is a lower bound (‖Gv‖ ≤ ‖G‖
/// for a unit v).
#[test]
fn power_iteration_approaches_the_exact_value_from_below() -> Result<()> {
    for g in grams()? {
        let exact = exact_lambda_max(&g)?;
        let est = power_iteration(&g, 300)?.to_vec_f64()?;
        for (p, e) in est.iter().zip(&exact) {
            assert!(*p <= *e * (1.0 + 1e-12), "estimate {p} above λ_max {e}");
            assert!((e - p) / e < 1e-8, "estimate {p} vs λ_max {e}");
        }
        // A few iterations already give a usable (if low) estimate.
        let rough = power_iteration(&g, 5)?.to_vec_f64()?;
        for (p, e) in rough.iter().zip(&exact) {
            assert!(*p > 0.5 * e);
        }
    }
    Ok(())
}

#[test]
fn the_exact_spectral_norm_of_a_learned_gram() -> Result<()> {
    let m = 7;
    let (d, x) = random_problem(12, m, 2, 3);
    let p = SparseProblem::lasso(&t64(&d, &[12, m]), &t64(&x, &[12, 2]), 0.1)?;
    let w = t64(&normal(m, m, 9), &[m, m])
        .mul_scalar(0.3)?
        .add(&Tensor::eye(m, DType::F64, &DEV)?)?;
    let p = p.with_learned_weight(&w)?;
    let g_e = p.iteration_gram()?;
    let norm = exact_spectral_norm(&g_e)?[0];
    // Independent: σ_max² = λ_max(G_eᵀG_e) from the host Gram of G_e, and the definition
    // ‖G_e‖₂ ≥ ‖G_e v‖ for unit v.
    let gh = g_e.to_vec_f64()?;
    let want = symmetric_eigenvalues(&gram_of(&gh, m), m)[m - 1].sqrt();
    assert!((norm - want).abs() < 1e-12 * want);
    for seed in 0..20 {
        let v = normal(m, 1, seed);
        let nv: f64 = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        let gv: f64 = (0..m)
            .map(|i| (0..m).map(|j| gh[i * m + j] * v[j]).sum::<f64>().powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(gv / nv <= norm * (1.0 + 1e-12));
    }
    // The step rules on the learned form: Exact and PowerIteration use W·G·W, Gershgorin the
    // plain G (as the reference).
    let l_exact = StepSize::Exact.resolve(&p, &g_e)?.to_vec_f64()?[0];
    assert!((l_exact - norm).abs() < 1e-12 * norm);
    let l_pow = StepSize::PowerIteration {
        iters: 200,
        margin: 0.01,
    }
    .resolve(&p, &g_e)?
    .to_vec_f64()?[0];
    assert!(l_pow >= norm && l_pow <= 1.01 * norm * (1.0 + 1e-9));
    let l_g = StepSize::<Cpu>::Gershgorin
        .resolve(&p, &g_e)?
        .to_vec_f64()?[0];
    assert_eq!(l_g, official_step_constant(p.gram())?.to_vec_f64()?[0]);
    // exact_lambda_max refuses a non-symmetric matrix.
    assert!(exact_lambda_max(&g_e).is_err());
    Ok(())
}

#[test]
fn step_constants_broadcast_over_the_problem_batch() -> Result<()> {
    let (b, h, n, m, k) = (2, 3, 9, 5, 4);
    let d = t64(&normal(b * h * n, m, 1), &[b, h, n, m]);
    let x = t64(&normal(b * h * n, k, 2), &[b, h, n, k]);
    let lam = Tensor::scalar(0.2, DType::F64, &DEV)?;
    let p = SparseProblem::from_dictionary(&d, &x, &lam, Shrink::Gelu)?;
    for step in [
        StepSize::Gershgorin,
        StepSize::Exact,
        StepSize::PowerIteration {
            iters: 50,
            margin: 0.05,
        },
        StepSize::constant(3.0, &p)?,
    ] {
        let l = step.resolve(&p, p.gram())?;
        assert_eq!(l.dims(), &[b, h, 1, 1]);
        assert!(!l.to_vec_f64()?.iter().any(|v| !v.is_finite() || *v <= 0.0));
    }
    let exact = exact_lambda_max(p.gram())?;
    let gersh = gershgorin_bound(p.gram())?.to_vec_f64()?;
    assert_eq!(exact.len(), b * h);
    assert!(gersh.iter().zip(&exact).all(|(g, e)| g >= e));
    Ok(())
}
