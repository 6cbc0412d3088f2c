//! The energy as a Lyapunov function: ISTA with the soft threshold, a symmetric G and step 1/L
//! (L ≥ λ_max(G)) never increases E (f64, property test; f32 within a stated tolerance), nor does
//! the LCA ODE; FISTA reaches a given gap in fewer steps than ISTA on ill-conditioned problems.

mod sparse_support;

use proptest::prelude::*;
use sparse_support::*;
use vars_core::nn::Shrink;
use vars_core::sparse::{
    solve, Diagnostics, IstaInit, LcaConfig, LcaInit, SolverConfig, SparseProblem, StepSize, Stop,
};
use vars_core::{DType, Result, Tensor};
use vars_cpu::Cpu;

/// Per-step energies of every problem of the batch: `energies[step][problem]`.
fn energy_trace(p: &SparseProblem<Cpu>, cfg: SolverConfig<Cpu>) -> Result<Vec<Vec<f64>>> {
    let sol = solve(p, &cfg.with_diagnostics(Diagnostics::energy_only()))?;
    Ok(sol
        .trace
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.energy.unwrap())
        .collect())
}

fn build(
    n: usize,
    m: usize,
    k: usize,
    seed: u64,
    lam: f64,
    dtype: DType,
) -> Result<(SparseProblem<Cpu>, f64)> {
    let mut d = normal(n, m, seed);
    normalize_columns(&mut d, n, m);
    let x = normal(n, k, seed ^ 77);
    let half_x_sq = 0.5 * x.iter().map(|v| v * v).sum::<f64>();
    let d = t64(&d, &[n, m]).to_dtype(dtype)?;
    let x = t64(&x, &[n, k]).to_dtype(dtype)?;
    let lam = Tensor::scalar(lam, dtype, &DEV)?;
    Ok((
        SparseProblem::from_dictionary(&d, &x, &lam, Shrink::SoftThreshold)?,
        half_x_sq,
    ))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// f64: `E(a_{k+1}) ≤ E(a_k)` up to rounding (1e-12 relative: E is a sum of ≲ 100 terms
    /// of size ≲ ½‖x‖², each rounded at 1.1e-16), for the exact λ_max, the Gershgorin bound, and
    /// both initial guesses (every step is a proximal-gradient step, so the property holds from
    /// any starting point, including the official a₀ = S(b; λ)).
    #[test]
    fn ista_never_increases_the_energy_f64(
        n in 2usize..12, m in 2usize..10, k in 1usize..3, seed in any::<u64>(),
        lam in 0.0f64..1.0, exact in any::<bool>(), zero_init in any::<bool>(),
    ) {
        let (p, half_x_sq) = build(n, m, k, seed, lam, DType::F64).unwrap();
        let step = if exact { StepSize::Exact } else { StepSize::Gershgorin };
        let init = if zero_init { IstaInit::Zero } else { IstaInit::Shrink };
        let cfg = SolverConfig::ista(Stop::Steps(40)).with_step(step).with_init(init);
        let e = energy_trace(&p, cfg).unwrap();
        for w in e.windows(2) {
            let (prev, next) = (w[0][0], w[1][0]);
            prop_assert!(
                next <= prev + 1e-12 * half_x_sq.max(prev.abs()).max(1.0),
                "E rose from {prev} to {next}"
            );
        }
    }
}

/// f32: the same, with the tolerance `1e-6·½‖x‖²` (≈ 17 f32 ulp of the energy's scale). Near
/// convergence a step lowers E by less than the rounding of its f32 evaluation, which sums
/// ≲ 40 terms of size ≲ ½‖x‖² and cancels them down to E; two such evaluations are compared.
/// Measured worst rise over these 32 problems: 8.4e-8·½‖x‖² (1.4 ulp), so the bound has a
/// factor ~12 to spare, while a wrong step (L < λ_max) raises E by orders of magnitude more.
#[test]
fn ista_never_increases_the_energy_f32_within_tolerance() -> Result<()> {
    for seed in 0..32u64 {
        let (n, m, k) = (
            6 + (seed as usize % 7),
            3 + (seed as usize % 9),
            1 + (seed as usize % 2),
        );
        let lam = 0.05 + 0.03 * (seed % 10) as f64;
        let (p, half_x_sq) = build(n, m, k, seed, lam, DType::F32)?;
        let e = energy_trace(
            &p,
            SolverConfig::ista(Stop::Steps(60)).with_init(IstaInit::Zero),
        )?;
        for (step, w) in e.windows(2).enumerate() {
            assert!(
                w[1][0] <= w[0][0] + 1e-6 * half_x_sq,
                "seed {seed}, step {step}: E rose from {} to {}",
                w[0][0],
                w[1][0]
            );
        }
    }
    Ok(())
}

/// A too-large step (L = λ_max/4) breaks monotonicity: the check above has teeth.
#[test]
fn a_step_beyond_one_over_lambda_max_can_increase_the_energy() -> Result<()> {
    let (p, _) = build(10, 8, 1, 3, 0.05, DType::F64)?;
    let lmax = vars_core::sparse::exact_lambda_max(p.gram())?[0];
    let cfg = SolverConfig::ista(Stop::Steps(20))
        .with_init(IstaInit::Zero)
        .with_step(StepSize::constant(lmax / 4.0, &p)?);
    let e = energy_trace(&p, cfg)?;
    assert!(e.windows(2).any(|w| w[1][0] > w[0][0] * (1.0 + 1e-3)));
    Ok(())
}

/// The LCA energy decreases along the (accurately integrated) trajectory: RK4 with
/// `dt = 0.05/L`, from `u = 0`. Tolerance 1e-10 relative: the local RK4 error
/// `O((dt·λ_max)^5) ≈ 3e-7` of u is far smaller than the decrease per step away from the fixed
/// point, and near it both vanish together (the ODE is linear on a fixed active set).
#[test]
fn the_lca_energy_never_increases() -> Result<()> {
    for seed in 0..6u64 {
        let (p, half_x_sq) = build(16, 12, 2, 100 + seed, 0.1, DType::F64)?;
        let l = vars_core::sparse::official_step_constant(p.gram())?.to_vec_f64()?[0];
        for lca in [
            LcaConfig::rk4().with_dt(0.05 / l),
            LcaConfig::euler()
                .with_dt(0.05 / l)
                .with_init(LcaInit::Drive),
        ] {
            let e = energy_trace(&p, SolverConfig::lca(lca, Stop::Steps(400)))?;
            for (step, w) in e.windows(2).enumerate() {
                let (prev, next) = (w[0].iter().sum::<f64>(), w[1].iter().sum::<f64>());
                assert!(
                    next <= prev + 1e-10 * half_x_sq,
                    "seed {seed}, {:?}, step {step}: E rose from {prev} to {next}",
                    lca.integrator
                );
            }
        }
    }
    Ok(())
}

/// An ill-conditioned dictionary: unit columns sharing a strong common component, so `G` has one
/// eigenvalue ≈ m·0.8 and many small ones (κ(G) in the thousands). Steps until
/// `E(a_k) − E* ≤ 1e-6·E*`, with `E*` from coordinate descent.
#[test]
fn fista_reaches_a_gap_in_fewer_steps_than_ista_when_ill_conditioned() -> Result<()> {
    let (n, m) = (40, 30);
    for seed in 0..3u64 {
        let z = normal(n, m, 500 + seed);
        let v = normal(n, 1, 900 + seed);
        let mut d: Vec<f64> = (0..n * m).map(|i| z[i] + 2.0 * v[i / m]).collect();
        normalize_columns(&mut d, n, m);
        let x = normal(n, 1, 700 + seed);
        let lam = 0.05;
        let g = at_b(&d, &d, n, m, m);
        let ev = vars_core::sparse::linalg::symmetric_eigenvalues(&g, m);
        let cond = ev[m - 1] / ev[0];
        assert!(
            cond > 100.0,
            "the problem should be ill-conditioned, κ = {cond}"
        );
        let a_star = coordinate_descent(&g, &at_b(&d, &x, n, m, 1), lam, false, m);
        let e_star = lasso_energy(&d, &x, &a_star, lam, n, m);

        let p = SparseProblem::lasso(&t64(&d, &[n, m]), &t64(&x, &[n, 1]), lam)?;
        let steps_to_gap = |cfg: SolverConfig<Cpu>| -> Result<usize> {
            let e = energy_trace(&p, cfg.with_init(IstaInit::Zero).with_step(StepSize::Exact))?;
            // Not reached within the budget counts as budget + 1.
            Ok(e.iter()
                .position(|e| e[0] - e_star <= 1e-6 * e_star)
                .unwrap_or(e.len()))
        };
        // Budgets: FISTA needs ≈ 700–1 000 steps here, ISTA ≈ 4 800–8 800 (measured).
        let ista = steps_to_gap(SolverConfig::ista(Stop::Steps(6_000)))?;
        let fista = steps_to_gap(SolverConfig::fista(Stop::Steps(2_000)))?;
        assert!(fista <= 2_000, "FISTA did not reach the gap");
        assert!(
            2 * fista < ista,
            "seed {seed} (κ = {cond:.0}): FISTA took {fista} steps, ISTA {ista}"
        );
    }
    Ok(())
}

#[test]
fn energy_of_the_gram_form_matches_the_dictionary_form() -> Result<()> {
    let (p, _) = build(9, 5, 2, 4, 0.3, DType::F64)?;
    let a = t64(&normal(5, 2, 8), &[5, 2]);
    let from_d = p.energy(&a)?.to_vec_f64()?[0];
    let d = p.dictionary().unwrap().to_vec_f64()?;
    let x = p.signal().unwrap().to_vec_f64()?;
    let av = a.to_vec_f64()?;
    let want: f64 = (0..2)
        .map(|c| lasso_energy(&d, &column(&x, 9, 2, c), &column(&av, 5, 2, c), 0.3, 9, 5))
        .sum();
    assert!((from_d - want).abs() < 1e-12 * want.abs());
    Ok(())
}
