//! Convergence order of the LCA integrators: on a fixed active set the LCA is a linear ODE, and
//! the error at a fixed time against a fine reference shrinks like dt¹ (Euler) and dt⁴ (RK4).

mod sparse_support;

use sparse_support::*;
use vars_core::sparse::{
    solve, Diagnostics, LcaConfig, LcaInit, SolverConfig, SparseProblem, Stop,
};
use vars_core::Result;
use vars_cpu::Cpu;

const T_END: f64 = 0.25;

/// `u(T_END)` and the active pattern (`a ≠ 0`) at every step.
fn integrate(
    p: &SparseProblem<Cpu>,
    lca: LcaConfig,
    steps: usize,
) -> Result<(Vec<f64>, Vec<Vec<bool>>)> {
    let cfg = SolverConfig::lca(lca.with_dt(T_END / steps as f64), Stop::Steps(steps))
        .with_diagnostics(Diagnostics::off().with_codes());
    let sol = solve(p, &cfg)?;
    let patterns = sol
        .trace
        .unwrap()
        .records
        .iter()
        .map(|r| {
            r.code
                .as_ref()
                .unwrap()
                .to_vec_f64()
                .map(|v| v.iter().map(|a| *a != 0.0).collect())
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((sol.state.unwrap().to_vec_f64()?, patterns))
}

/// Least-squares slope of `log2(error)` against `log2(dt)`.
fn slope(dts: &[f64], errs: &[f64]) -> f64 {
    let xs: Vec<f64> = dts.iter().map(|d| d.log2()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| e.log2()).collect();
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let cov: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    cov / var
}

/// The problems: `u(0) = b`, λ = 0.1. The orders hold only while no neuron crosses its
/// threshold (the right-hand side is piecewise linear), so a problem is used only when the
/// fine reference keeps one active set, with both active and inactive neurons, over [0, T_END];
/// that precondition is asserted, not assumed.
#[test]
fn euler_is_first_order_and_rk4_fourth_order_on_a_fixed_active_set() -> Result<()> {
    let (n, m) = (12, 6);
    let mut tested = 0;
    for seed in 0..40u64 {
        let (d, x) = random_problem(n, m, 1, 300 + seed);
        let p = SparseProblem::lasso(&t64(&d, &[n, m]), &t64(&x, &[n, 1]), 0.1)?;
        let base = LcaConfig::rk4().with_init(LcaInit::Drive);
        let (reference, patterns) = integrate(&p, base, 1024)?;
        let first = &patterns[0];
        let fixed = patterns.iter().all(|pt| pt == first);
        let mixed = first.iter().any(|a| *a) && first.iter().any(|a| !*a);
        if !(fixed && mixed) {
            continue;
        }
        tested += 1;
        for (lca, steps, order) in [
            (
                LcaConfig::euler().with_init(LcaInit::Drive),
                [20, 40, 80, 160],
                1.0,
            ),
            (base, [4, 8, 16, 32], 4.0),
        ] {
            let mut dts = Vec::new();
            let mut errs = Vec::new();
            for s in steps {
                let (u, _) = integrate(&p, lca, s)?;
                dts.push(T_END / s as f64);
                errs.push(max_diff(&u, &reference));
            }
            // The coarsest error must be far above the reference's own error (RK4 at 1024
            // steps: ~1e-16) and the finest above rounding, so the slope measures truncation.
            assert!(errs.iter().all(|e| *e > 1e-13), "errors {errs:?}");
            let k = slope(&dts, &errs);
            // Tolerance ±0.15 on the order: the leading error term dominates already at the
            // coarsest step (dt·λ_max(G) ≤ 0.4 here); the measured slopes are within ±0.05.
            assert!(
                (k - order).abs() < 0.15,
                "seed {seed}, {:?}: measured order {k:.3} (errors {errs:?})",
                lca.integrator
            );
        }
        if tested == 3 {
            break;
        }
    }
    assert!(
        tested >= 3,
        "too few problems with a fixed active set ({tested})"
    );
    Ok(())
}

/// Sanity check: across threshold crossings (from u = 0 every neuron starts inactive) both still
/// converge, at reduced order.
#[test]
fn both_integrators_converge_across_threshold_crossings() -> Result<()> {
    let (d, x) = random_problem(12, 6, 1, 301);
    let p = SparseProblem::lasso(&t64(&d, &[12, 6]), &t64(&x, &[12, 1]), 0.1)?;
    let (reference, _) = integrate(&p, LcaConfig::rk4(), 1024)?;
    for lca in [LcaConfig::euler(), LcaConfig::rk4()] {
        let coarse = max_diff(&integrate(&p, lca, 16)?.0, &reference);
        let fine = max_diff(&integrate(&p, lca, 256)?.0, &reference);
        assert!(
            fine < coarse / 8.0,
            "{:?}: {coarse:e} → {fine:e}",
            lca.integrator
        );
    }
    Ok(())
}
