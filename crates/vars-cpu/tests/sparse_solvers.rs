//! ISTA, FISTA and the LCA reach the same minimiser as an independent f64 coordinate-descent
//! Lasso, and the KKT conditions hold there; the fixed-step mode is the layers' `unrolled_ista`;
//! batching, non-negative codes, the official initial guess and the diagnostics.

mod sparse_support;

use sparse_support::*;
use vars_core::nn::{shrink, Shrink};
use vars_core::sparse::{
    solve, unrolled_ista, unrolled_ista_composite, Diagnostics, EnergyKind, IstaInit, LcaConfig,
    LcaInit, NoEnergy, SolverConfig, SparseProblem, StepSize, Stop, UnrolledIsta,
};
use vars_core::{DType, Result, Tensor};
use vars_cpu::Cpu;

const N: usize = 24;
const M: usize = 16;
const K: usize = 3;
const LAM: f64 = 0.15;

/// The reference minimiser, one CD solve per column: `(…, m, k)` row-major.
fn reference(d: &[f64], x: &[f64], lam: f64, nonneg: bool) -> Vec<f64> {
    let g = at_b(d, d, N, M, M);
    let b = at_b(d, x, N, M, K);
    let mut out = vec![0.0; M * K];
    for c in 0..K {
        let a = coordinate_descent(&g, &column(&b, M, K, c), lam, nonneg, M);
        for i in 0..M {
            out[i * K + c] = a[i];
        }
    }
    out
}

fn problem(seed: u64) -> (SparseProblem<Cpu>, Vec<f64>, Vec<f64>) {
    let (d, x) = random_problem(N, M, K, seed);
    let p = SparseProblem::lasso(&t64(&d, &[N, M]), &t64(&x, &[N, K]), LAM).unwrap();
    (p, d, x)
}

/// Tolerance on the code: the solvers stop at a fixed-point residual of 1e-12; on these
/// well-conditioned problems (λ_min(G_AA) ≳ 0.1) the distance to the minimiser is then below
/// ~1e-10, and CD is converged to 1e-15.
const CODE_TOL: f64 = 1e-9;

#[test]
fn all_solvers_reach_the_coordinate_descent_minimiser() -> Result<()> {
    for seed in [1u64, 2, 3] {
        let (p, d, x) = problem(seed);
        let want = reference(&d, &x, LAM, false);
        assert!(
            want.iter().filter(|v| **v == 0.0).count() > 0,
            "the test problem should have inactive atoms"
        );
        let stop = Stop::Tolerance {
            tol: 1e-12,
            max_steps: 20_000,
        };
        let configs: Vec<(&str, SolverConfig<Cpu>)> = vec![
            ("ista", SolverConfig::ista(stop)),
            (
                "ista from 0",
                SolverConfig::ista(stop).with_init(IstaInit::Zero),
            ),
            ("fista", SolverConfig::fista(stop)),
            ("fista with restart", SolverConfig::fista_restart(stop)),
            (
                "ista, exact L",
                SolverConfig::ista(stop).with_step(StepSize::Exact),
            ),
            ("lca euler", SolverConfig::lca(LcaConfig::euler(), stop)),
            (
                "lca rk4",
                SolverConfig::lca(LcaConfig::rk4().with_init(LcaInit::Drive), stop),
            ),
        ];
        for (name, cfg) in configs {
            let sol = solve(&p, &cfg)?;
            assert_eq!(sol.converged, Some(true), "{name}: did not converge");
            let got = sol.code.to_vec_f64()?;
            let err = max_diff(&got, &want);
            assert!(err < CODE_TOL, "{name} (seed {seed}): max error {err:e}");
            // KKT at the solution: |g_i + λ sign a_i| = 0 on the support, |g_i| ≤ λ off it.
            let kkt = p.kkt_violation(&sol.code)?.to_vec_f64()?[0];
            assert!(kkt < 1e-9, "{name}: KKT violation {kkt:e}");
            // And the reference satisfies them too (an independent check of the checker).
            let kkt_ref = p.kkt_violation(&t64(&want, &[M, K]))?.to_vec_f64()?[0];
            assert!(kkt_ref < 1e-12, "reference KKT violation {kkt_ref:e}");
            // The minimum energy, evaluated independently on the host.
            let e: f64 = p.energy(&sol.code)?.to_vec_f64()?[0];
            let e_ref: f64 = (0..K)
                .map(|c| lasso_energy(&d, &column(&x, N, K, c), &column(&want, M, K, c), LAM, N, M))
                .sum();
            assert!(
                (e - e_ref).abs() < 1e-9 * e_ref.abs(),
                "{name}: E {e} vs {e_ref}"
            );
        }
    }
    Ok(())
}

#[test]
fn nonnegative_codes_match_nonnegative_coordinate_descent() -> Result<()> {
    let (p, d, x) = problem(7);
    let p = p.with_nonnegative(true)?;
    let want = reference(&d, &x, LAM, true);
    let stop = Stop::Tolerance {
        tol: 1e-12,
        max_steps: 20_000,
    };
    for cfg in [
        SolverConfig::fista(stop),
        SolverConfig::ista(Stop::Steps(4000)),
        SolverConfig::lca(LcaConfig::euler(), stop),
    ] {
        let got = solve(&p, &cfg)?.code.to_vec_f64()?;
        assert!(got.iter().all(|v| *v >= 0.0));
        let err = max_diff(&got, &want);
        assert!(err < CODE_TOL, "{:?}: max error {err:e}", cfg.method);
    }
    let kkt = p.kkt_violation(&t64(&want, &[M, K]))?.to_vec_f64()?[0];
    assert!(kkt < 1e-12);
    // The GELU shrink has no non-negative form.
    let gelu = SparseProblem::from_gram(p.gram(), p.drive(), p.lam(), Shrink::Gelu)?;
    assert!(gelu.with_nonnegative(true).is_err());
    Ok(())
}

#[test]
fn fixed_step_ista_is_the_layers_unrolled_ista() -> Result<()> {
    // A batch (2, 3) of problems with GELU shrink, per-problem λ and L: the official setting.
    let (b0, h0) = (2, 3);
    let (n, m, k) = (10, 6, 4);
    let d = t64(&normal(b0 * h0 * n, m, 11), &[b0, h0, n, m]);
    let x = t64(&normal(b0 * h0 * n, k, 12), &[b0, h0, n, k]);
    let lam = t64(&[0.1, 0.2, 0.3, 0.15, 0.25, 0.35], &[b0, h0, 1, 1]);
    for shrink_kind in [Shrink::Gelu, Shrink::SoftThreshold, Shrink::Identity] {
        for init in [IstaInit::Shrink, IstaInit::Zero] {
            let p = SparseProblem::from_dictionary(&d, &x, &lam, shrink_kind)?;
            let cfg = SolverConfig::official(5).with_init(init);
            let sol = solve(&p, &cfg)?;
            let l = vars_core::sparse::official_step_constant(p.gram())?;
            let ucfg = UnrolledIsta {
                steps: 5,
                shrink: shrink_kind,
                init,
            };
            let want = unrolled_ista(p.gram(), p.drive(), &lam, &l, &ucfg)?;
            assert_eq!(
                sol.code.to_vec_f64()?,
                want.to_vec_f64()?,
                "{shrink_kind:?}"
            );
            assert_eq!(sol.step_constant.to_vec_f64()?, l.to_vec_f64()?);
            // With diagnostics on, the step-by-step loop computes the same update.
            let traced = solve(&p, &cfg.clone().with_diagnostics(Diagnostics::all()))?;
            let composite = unrolled_ista_composite(p.gram(), p.drive(), &lam, &l, &ucfg)?;
            let err = max_diff(&traced.code.to_vec_f64()?, &composite.to_vec_f64()?);
            assert!(
                err < 1e-12,
                "{shrink_kind:?} {init:?}: traced vs composite {err:e}"
            );
            assert_eq!(traced.trace.as_ref().unwrap().records.len(), 6);
        }
    }
    Ok(())
}

#[test]
fn official_initial_guess_is_a_unit_step_with_threshold_lambda() -> Result<()> {
    let (p, _, _) = problem(5);
    let cfg = SolverConfig::official(3).with_diagnostics(Diagnostics::off().with_codes());
    let sol = solve(&p, &cfg)?;
    let trace = sol.trace.unwrap();
    let a0 = trace.records[0].code.as_ref().unwrap();
    let want = shrink(p.drive(), &scalar(LAM)?, Shrink::SoftThreshold)?;
    assert_eq!(a0.to_vec_f64()?, want.to_vec_f64()?);
    // From zero, step 0 is zero and step 1 is S(b/L; λ/L).
    let sol = solve(&p, &cfg.clone().with_init(IstaInit::Zero))?;
    let trace = sol.trace.unwrap();
    assert!(trace.records[0]
        .code
        .as_ref()
        .unwrap()
        .to_vec_f64()?
        .iter()
        .all(|v| *v == 0.0));
    let l = sol.step_constant.to_vec_f64()?[0];
    let want = shrink(
        &p.drive().mul_scalar(1.0 / l)?,
        &scalar(LAM / l)?,
        Shrink::SoftThreshold,
    )?;
    let err = max_diff(
        &trace.records[1].code.as_ref().unwrap().to_vec_f64()?,
        &want.to_vec_f64()?,
    );
    assert!(err < 1e-15);
    Ok(())
}

#[test]
fn a_batch_solves_each_problem_independently() -> Result<()> {
    let nb = 3;
    let mut ds = Vec::new();
    let mut xs = Vec::new();
    for s in 0..nb {
        let (d, x) = random_problem(N, M, K, 40 + s as u64);
        ds.extend(d);
        xs.extend(x);
    }
    let lams = [0.05, 0.15, 0.4];
    let d = t64(&ds, &[nb, N, M]);
    let x = t64(&xs, &[nb, N, K]);
    let lam = t64(&lams, &[nb, 1, 1]);
    let p = SparseProblem::from_dictionary(&d, &x, &lam, Shrink::SoftThreshold)?;
    let cfg = SolverConfig::fista(Stop::Tolerance {
        tol: 1e-12,
        max_steps: 10_000,
    })
    .with_diagnostics(Diagnostics::all());
    let sol = solve(&p, &cfg)?;
    let got = sol.code.to_vec_f64()?;
    for s in 0..nb {
        let want = reference(
            &ds[s * N * M..(s + 1) * N * M],
            &xs[s * N * K..(s + 1) * N * K],
            lams[s],
            false,
        );
        let err = max_diff(&got[s * M * K..(s + 1) * M * K], &want);
        assert!(err < CODE_TOL, "problem {s}: {err:e}");
    }
    let trace = sol.trace.unwrap();
    let last = trace.last().unwrap();
    assert_eq!(last.energy.as_ref().unwrap().len(), nb);
    assert_eq!(last.residual_norm.as_ref().unwrap().len(), nb);
    // The residual ‖x − Da‖ matches the energy: E = ½‖x − Da‖² + λ‖a‖₁.
    for s in 0..nb {
        let r = last.residual_norm.as_ref().unwrap()[s];
        let l1: f64 = got[s * M * K..(s + 1) * M * K]
            .iter()
            .map(|v| v.abs())
            .sum();
        let e = last.energy.as_ref().unwrap()[s];
        assert!((0.5 * r * r + lams[s] * l1 - e).abs() < 1e-12 * e.abs().max(1.0));
    }
    Ok(())
}

#[test]
fn diagnostics_report_what_the_energy_means() -> Result<()> {
    let (p, _, _) = problem(9);
    // Off by default: no trace.
    let sol = solve(&p, &SolverConfig::official(5))?;
    assert!(sol.trace.is_none());

    let cfg = SolverConfig::official(5).with_diagnostics(Diagnostics::all());
    let exact = solve(&p, &cfg)?.trace.unwrap();
    assert_eq!(exact.energy_kind, EnergyKind::Exact);
    assert!(exact.energy_includes_signal);
    let last = exact.last().unwrap();
    assert!(last.kkt_violation.is_some() && last.fixed_point_residual.is_some());
    let sp = last.sparsity.unwrap();
    assert_eq!(sp.total, M * K);
    assert!(sp.exact_zeros > 0 && sp.exact_zeros <= sp.below_eps);

    // GELU: the plain Lasso energy is reported as a surrogate, no KKT; the residual remains.
    let gelu = SparseProblem::from_dictionary(
        p.dictionary().unwrap(),
        p.signal().unwrap(),
        p.lam(),
        Shrink::Gelu,
    )?;
    let trace = solve(&gelu, &cfg)?.trace.unwrap();
    assert_eq!(
        trace.energy_kind,
        EnergyKind::Surrogate(vec![NoEnergy::GeluShrink])
    );
    let last = trace.last().unwrap();
    assert!(last.kkt_violation.is_none());
    assert!(last.energy.is_some() && last.fixed_point_residual.is_some());
    // GELU codes leak small non-zero values: few exact zeros, more entries below ε.
    let sp = last.sparsity.unwrap();
    assert!(sp.below_eps >= sp.exact_zeros);

    // The learned form W·G·W (official HEAD): surrogate for both reasons.
    let w = t64(&normal(M, M, 3), &[M, M])
        .mul_scalar(0.1)?
        .add(&Tensor::eye(M, DType::F64, &DEV)?)?;
    let learned = gelu.clone().with_learned_weight(&w)?;
    let trace = solve(&learned, &cfg)?.trace.unwrap();
    assert_eq!(
        trace.energy_kind,
        EnergyKind::Surrogate(vec![NoEnergy::GeluShrink, NoEnergy::LearnedGram])
    );
    // W = I is the plain problem.
    let ident = p
        .clone()
        .with_learned_weight(&Tensor::eye(M, DType::F64, &DEV)?)?;
    let a = solve(&ident, &SolverConfig::official(5))?
        .code
        .to_vec_f64()?;
    let b = solve(&p, &SolverConfig::official(5))?.code.to_vec_f64()?;
    assert!(max_diff(&a, &b) < 1e-14);

    // Gram form without ‖x‖²: energies are relative; with it, absolute.
    let gram = SparseProblem::from_gram(p.gram(), p.drive(), p.lam(), Shrink::SoftThreshold)?;
    let rel = solve(&gram, &cfg)?.trace.unwrap();
    assert!(!rel.energy_includes_signal);
    assert!(rel.last().unwrap().residual_norm.is_none());
    let x_sq = p.signal().unwrap().sqr()?.sum_all()?;
    let abs = solve(&gram.with_signal_norm_sq(&x_sq)?, &cfg)?
        .trace
        .unwrap();
    let (e_abs, e_dict) = (
        abs.last().unwrap().total_energy().unwrap(),
        exact.last().unwrap().total_energy().unwrap(),
    );
    assert!((e_abs - e_dict).abs() < 1e-12 * e_dict);
    let r = abs.last().unwrap().residual_norm.as_ref().unwrap()[0];
    let r_dict = exact.last().unwrap().residual_norm.as_ref().unwrap()[0];
    assert!((r - r_dict).abs() < 1e-9);

    // `every` thins the records but keeps the first and the last.
    let thin = Diagnostics {
        every: 4,
        ..Diagnostics::energy_only()
    };
    let steps: Vec<usize> = solve(&p, &SolverConfig::official(10).with_diagnostics(thin))?
        .trace
        .unwrap()
        .records
        .iter()
        .map(|r| r.step)
        .collect();
    assert_eq!(steps, vec![0, 4, 8, 10]);
    Ok(())
}

#[test]
fn invalid_configurations_are_errors() -> Result<()> {
    let (p, _, _) = problem(2);
    let bad = SolverConfig::ista(Stop::Tolerance {
        tol: 0.0,
        max_steps: 10,
    });
    assert!(solve(&p, &bad).is_err());
    let bad = SolverConfig::lca(LcaConfig::euler().with_dt(-1.0), Stop::Steps(3));
    assert!(solve(&p, &bad).is_err());
    // Mismatched shapes and dtypes.
    let g = t64(&[1.0; 9], &[3, 3]);
    assert!(
        SparseProblem::from_gram(&g, &t64(&[1.0; 4], &[4, 1]), &scalar(0.1)?, Shrink::Gelu)
            .is_err()
    );
    let lam32 = Tensor::<Cpu>::scalar(0.1, DType::F32, &DEV)?;
    assert!(SparseProblem::from_gram(&g, &t64(&[1.0; 3], &[3, 1]), &lam32, Shrink::Gelu).is_err());
    // A budget that runs out reports non-convergence rather than failing.
    let sol = solve(
        &p,
        &SolverConfig::ista(Stop::Tolerance {
            tol: 1e-14,
            max_steps: 3,
        }),
    )?;
    assert_eq!((sol.steps, sol.converged), (3, Some(false)));
    Ok(())
}
