//! Solvers for a [`SparseProblem`]: ISTA (fixed steps or to a tolerance), FISTA, and the LCA
//! attractor ODE ([`super::lca`]); one entry point, [`solve`].
//!
//! With `F(a) = S(a − (G_e a − b)/L; λ/L)` the proximal-gradient map (spec §1.3):
//!
//! - **ISTA**: `a_{k+1} = F(a_k)`. With `Stop::Steps(T)` and no diagnostics this *is* the layers'
//!   op: it calls [`unrolled_ista`] (fused kernel where the backend has one), so the module and
//!   the attention layers share one code path. Tolerance mode, diagnostics and non-negative
//!   codes run the same update from tensor ops (one step at a time, so it can stop or record).
//! - **FISTA** (Beck & Teboulle 2009): `a_{k+1} = F(y_k)`,
//!   `t_{k+1} = (1 + √(1 + 4t_k²))/2`, `y_{k+1} = a_{k+1} + ((t_k − 1)/t_{k+1})(a_{k+1} − a_k)`,
//!   `y_0 = a_0`, `t_0 = 1`: `E(a_k) − E* = O(L‖a_0 − a*‖²/k²)` against ISTA's `O(1/k)`.
//!   Optional adaptive restart (O'Donoghue & Candès 2015, gradient scheme), per problem: when
//!   `⟨y_k − a_{k+1}, a_{k+1} − a_k⟩ > 0` the momentum is reset (`t = 1`, `y = a_{k+1}`). It
//!   removes FISTA's oscillations in the final, locally strongly convex phase (one host
//!   transfer per step).
//! - **LCA**: `τ u̇ = b − u − (G_e − I)·S(u; λ)`, integrated by explicit Euler or RK4
//!   ([`super::lca`]).
//!
//! Initial guesses ([`IstaInit`]): `a₀ = S(b; λ)` (official: a unit step with threshold λ, not
//! λ/L, spec §1.3) or `a₀ = 0`.
//!
//! Stopping ([`Stop`]): a fixed number of steps, or until the fixed-point residual
//! `max |a_k − F(a_k)|` (ISTA, FISTA) resp. `τ·max |u̇|` (LCA) is at most `tol`, checked on the
//! host every step (one transfer per step).
//!
//! Gradients ([`GradMode`]): by default the solvers are compositions of differentiable ops, so a
//! loss on the code backpropagates through every step (**unrolled**, as the official model).
//! [`GradMode::Implicit`] differentiates the fixed point instead ([`super::implicit`]): memory
//! independent of the number of steps; an option, not parity.

use super::diagnostics::{max_of, Diagnostics, Recorder, Trace};
use super::fused::{unrolled_ista, IstaInit, UnrolledIsta};
use super::implicit::{self, ImplicitConfig};
use super::lca::{self, LcaConfig};
use super::problem::SparseProblem;
use super::step_size::StepSize;
use crate::{Backend, Error, Result, Tensor};

/// The iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Proximal gradient, `a_{k+1} = F(a_k)`, from the initial guess `init`.
    Ista {
        /// `a₀`: `S(b; λ)` (official) or 0.
        init: IstaInit,
    },
    /// Accelerated proximal gradient, optionally with adaptive restart (module docs).
    Fista {
        /// `a₀ = y₀`: `S(b; λ)` (official) or 0.
        init: IstaInit,
        /// Reset the momentum per problem when `⟨y_k − a_{k+1}, a_{k+1} − a_k⟩ > 0`.
        restart: bool,
    },
    /// The LCA attractor ODE ([`super::lca`]).
    Lca(LcaConfig),
}

/// When to stop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// Exactly `T` steps after the initial guess (the layers' mode).
    Steps(usize),
    /// Until the fixed-point residual is at most `tol` (module docs), at most `max_steps` steps.
    Tolerance {
        /// The residual to reach (`> 0`).
        tol: f64,
        /// The step budget; the solution reports `converged = Some(false)` when it runs out.
        max_steps: usize,
    },
}

/// How gradients reach the problem's tensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GradMode {
    /// Backpropagation through every step (the official model's gradient).
    Unrolled,
    /// Implicit differentiation at the fixed point ([`super::implicit`]).
    Implicit(ImplicitConfig),
}

/// A complete solver configuration. Build with [`SolverConfig::ista`], [`SolverConfig::fista`],
/// [`SolverConfig::lca`] and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct SolverConfig<B: Backend> {
    /// The iteration.
    pub method: Method,
    /// When to stop.
    pub stop: Stop,
    /// How `L` is obtained (Gershgorin + 1 by default, as the reference).
    pub step: StepSize<B>,
    /// Unrolled (default) or implicit gradients.
    pub grad: GradMode,
    /// What to record per step (off by default).
    pub diagnostics: Diagnostics,
}

impl<B: Backend> SolverConfig<B> {
    /// ISTA with the official initial guess and Gershgorin step, unrolled gradients, no
    /// diagnostics.
    pub fn ista(stop: Stop) -> Self {
        SolverConfig {
            method: Method::Ista {
                init: IstaInit::Shrink,
            },
            stop,
            step: StepSize::Gershgorin,
            grad: GradMode::Unrolled,
            diagnostics: Diagnostics::off(),
        }
    }

    /// The layers' configuration: `T` ISTA steps from `S(b; λ)`, Gershgorin `L` (spec §3.3).
    pub fn official(steps: usize) -> Self {
        Self::ista(Stop::Steps(steps))
    }

    /// FISTA (no restart) with the official initial guess and Gershgorin step.
    pub fn fista(stop: Stop) -> Self {
        SolverConfig {
            method: Method::Fista {
                init: IstaInit::Shrink,
                restart: false,
            },
            ..Self::ista(stop)
        }
    }

    /// FISTA with adaptive restart (module docs).
    pub fn fista_restart(stop: Stop) -> Self {
        SolverConfig {
            method: Method::Fista {
                init: IstaInit::Shrink,
                restart: true,
            },
            ..Self::ista(stop)
        }
    }

    /// The LCA ODE.
    pub fn lca(lca: LcaConfig, stop: Stop) -> Self {
        SolverConfig {
            method: Method::Lca(lca),
            ..Self::ista(stop)
        }
    }

    /// Sets the initial guess of ISTA / FISTA (ignored by the LCA, which has its own).
    pub fn with_init(mut self, init: IstaInit) -> Self {
        match &mut self.method {
            Method::Ista { init: i } | Method::Fista { init: i, .. } => *i = init,
            Method::Lca(_) => {}
        }
        self
    }

    /// Sets the step-constant rule ([`StepSize`]).
    pub fn with_step(mut self, step: StepSize<B>) -> Self {
        self.step = step;
        self
    }

    /// Sets what is recorded per step ([`Diagnostics`]; off by default).
    pub fn with_diagnostics(mut self, diagnostics: Diagnostics) -> Self {
        self.diagnostics = diagnostics;
        self
    }

    /// Implicit differentiation at the fixed point ([`super::implicit`]).
    pub fn with_implicit(mut self, cfg: ImplicitConfig) -> Self {
        self.grad = GradMode::Implicit(cfg);
        self
    }
}

/// What a solve returns.
#[derive(Debug, Clone)]
pub struct Solution<B: Backend> {
    /// The code `(…, m, k)` (tracked when the problem is, under the configured [`GradMode`]).
    pub code: Tensor<B>,
    /// LCA only: the internal state `u` at the end (`code = S(u; λ)`).
    pub state: Option<Tensor<B>>,
    /// Steps taken after the initial guess.
    pub steps: usize,
    /// Tolerance mode: whether the residual reached `tol` within `max_steps`.
    pub converged: Option<bool>,
    /// The last stopping residual measured (tolerance mode, or implicit mode's check).
    pub residual: Option<f64>,
    /// The step constants `L`, `(…, 1, 1)`.
    pub step_constant: Tensor<B>,
    /// The recorded trajectory when diagnostics were on.
    pub trace: Option<Trace<B>>,
}

/// Solves `problem` with `cfg` (module docs).
///
/// Errors: invalid configurations (a non-positive tolerance, an LCA `dt ≤ 0`), and in implicit
/// mode the conditions of [`super::implicit`] (residual above tolerance, a non-contractive
/// iteration).
pub fn solve<B: Backend>(problem: &SparseProblem<B>, cfg: &SolverConfig<B>) -> Result<Solution<B>> {
    validate(problem, cfg)?;
    if let GradMode::Implicit(ic) = &cfg.grad {
        return implicit::solve_implicit(problem, cfg, ic);
    }
    let g_e = problem.iteration_gram()?;
    let l = cfg.step.resolve(problem, &g_e)?;
    solve_with(problem, &g_e, &l, cfg)
}

fn validate<B: Backend>(problem: &SparseProblem<B>, cfg: &SolverConfig<B>) -> Result<()> {
    let bad = |msg: String| Err(Error::invalid("sparse::solve", problem.gram().shape(), msg));
    if let Stop::Tolerance { tol, .. } = cfg.stop {
        if tol.is_nan() || tol <= 0.0 {
            return bad(format!("the tolerance must be > 0, got {tol}"));
        }
    }
    if let Method::Lca(l) = &cfg.method {
        let positive = |v: f64| v > 0.0;
        if !positive(l.tau) || l.dt.is_some_and(|dt| !positive(dt)) {
            return bad(format!(
                "the LCA needs τ > 0 and dt > 0, got τ = {} and dt = {:?}",
                l.tau, l.dt
            ));
        }
    }
    Ok(())
}

/// The forward solve on a resolved `G_e` and `L` (unrolled gradients).
pub(crate) fn solve_with<B: Backend>(
    problem: &SparseProblem<B>,
    g_e: &Tensor<B>,
    l: &Tensor<B>,
    cfg: &SolverConfig<B>,
) -> Result<Solution<B>> {
    let mut rec = Recorder::new(&cfg.diagnostics, problem, g_e, l)?;
    let mut sol = match cfg.method {
        Method::Ista { init } => {
            if let (Stop::Steps(steps), None) = (cfg.stop, &rec) {
                if fused_compatible(problem) {
                    let code = unrolled_ista(
                        g_e,
                        problem.drive(),
                        problem.lam(),
                        l,
                        &UnrolledIsta {
                            steps,
                            shrink: problem.shrink_kind(),
                            init,
                        },
                    )?;
                    return Ok(Solution {
                        code,
                        state: None,
                        steps,
                        converged: None,
                        residual: None,
                        step_constant: l.clone(),
                        trace: None,
                    });
                }
            }
            ista_loop(problem, g_e, l, init, cfg.stop, &mut rec)?
        }
        Method::Fista { init, restart } => {
            fista_loop(problem, g_e, l, init, restart, cfg.stop, &mut rec)?
        }
        Method::Lca(lc) => lca::run(problem, g_e, l, &lc, cfg.stop, &mut rec)?,
    };
    sol.trace = rec.map(Recorder::finish);
    Ok(sol)
}

/// Whether [`unrolled_ista`] computes this problem's iteration: no non-negativity constraint,
/// and `λ` one value per problem (its last two dims 1), as the op requires.
fn fused_compatible<B: Backend>(problem: &SparseProblem<B>) -> bool {
    let lam = problem.lam();
    !problem.is_nonnegative() && lam.dims().iter().rev().take(2).all(|&d| d == 1)
}

/// The initial guess `a₀`.
pub(crate) fn initial_code<B: Backend>(
    problem: &SparseProblem<B>,
    init: IstaInit,
) -> Result<Tensor<B>> {
    match init {
        IstaInit::Shrink => problem.apply_shrink(problem.drive(), problem.lam()),
        IstaInit::Zero => Tensor::zeros(problem.code_dims(), problem.dtype(), problem.device()),
    }
}

/// `max |x − y|` on the host, for stopping tests.
pub(crate) fn max_abs_diff<B: Backend>(x: &Tensor<B>, y: &Tensor<B>) -> Result<f64> {
    crate::autodiff::no_grad(|| max_of(&x.detach().sub(&y.detach())?.abs()?))
}

fn finish<B: Backend>(
    code: Tensor<B>,
    steps: usize,
    stop: Stop,
    residual: Option<f64>,
    l: &Tensor<B>,
) -> Solution<B> {
    let converged = match (stop, residual) {
        (Stop::Tolerance { tol, .. }, Some(r)) => Some(r <= tol),
        (Stop::Tolerance { .. }, None) => Some(false),
        (Stop::Steps(_), _) => None,
    };
    Solution {
        code,
        state: None,
        steps,
        converged,
        residual,
        step_constant: l.clone(),
        trace: None,
    }
}

/// The step budget and tolerance of a stopping rule.
pub(crate) fn budget(stop: Stop) -> (usize, Option<f64>) {
    match stop {
        Stop::Steps(t) => (t, None),
        Stop::Tolerance { tol, max_steps } => (max_steps, Some(tol)),
    }
}

fn ista_loop<B: Backend>(
    problem: &SparseProblem<B>,
    g_e: &Tensor<B>,
    l: &Tensor<B>,
    init: IstaInit,
    stop: Stop,
    rec: &mut Option<Recorder<'_, B>>,
) -> Result<Solution<B>> {
    let (max_steps, tol) = budget(stop);
    let t = problem.lam().div(l)?;
    let mut a = initial_code(problem, init)?;
    if let Some(r) = rec.as_mut() {
        r.record(0, None, &a, max_steps == 0)?;
    }
    let mut residual = None;
    let mut steps = 0;
    while steps < max_steps {
        let next = problem.ista_map(g_e, l, &t, &a)?;
        steps += 1;
        // ‖a_k − F(a_k)‖∞: the residual at a_k, free for ISTA.
        let done = match tol {
            Some(tol) => {
                let r = max_abs_diff(&next, &a)?;
                residual = Some(r);
                r <= tol
            }
            None => false,
        };
        a = next;
        if let Some(r) = rec.as_mut() {
            r.record(steps, None, &a, done || steps == max_steps)?;
        }
        if done {
            break;
        }
    }
    Ok(finish(a, steps, stop, residual, l))
}

fn fista_loop<B: Backend>(
    problem: &SparseProblem<B>,
    g_e: &Tensor<B>,
    l: &Tensor<B>,
    init: IstaInit,
    restart: bool,
    stop: Stop,
    rec: &mut Option<Recorder<'_, B>>,
) -> Result<Solution<B>> {
    let (max_steps, tol) = budget(stop);
    let t = problem.lam().div(l)?;
    let mut a = initial_code(problem, init)?;
    if let Some(r) = rec.as_mut() {
        r.record(0, None, &a, max_steps == 0)?;
    }
    let mut y = a.clone();
    // t_k per problem (they differ only after a restart).
    let mut tk = vec![1.0f64; problem.batch_len()];
    let mut residual = None;
    let mut steps = 0;
    while steps < max_steps {
        let next = problem.ista_map(g_e, l, &t, &y)?;
        steps += 1;
        let done = match tol {
            Some(tol) => {
                // ‖a − F(a)‖∞ at the new iterate: one extra application of G.
                let r = max_abs_diff(&next, &problem.ista_map(g_e, l, &t, &next)?)?;
                residual = Some(r);
                r <= tol
            }
            None => false,
        };
        if !done && steps < max_steps {
            if restart {
                let r = next.rank();
                let dots = crate::autodiff::no_grad(|| {
                    y.detach()
                        .sub(&next.detach())?
                        .mul(&next.detach().sub(&a.detach())?)?
                        .sum(&[r - 2, r - 1], false)?
                        .to_vec_f64()
                })?;
                for (t, d) in tk.iter_mut().zip(dots) {
                    if d > 0.0 {
                        *t = 1.0;
                    }
                }
            }
            let (beta, t_next): (Vec<f64>, Vec<f64>) = tk
                .iter()
                .map(|&t| {
                    let tn = 0.5 * (1.0 + (1.0 + 4.0 * t * t).sqrt());
                    ((t - 1.0) / tn, tn)
                })
                .unzip();
            let momentum = next.sub(&a)?;
            y = if restart {
                let beta = Tensor::from_vec(beta, problem.scalar_dims(), problem.device())?
                    .to_dtype(problem.dtype())?;
                next.add(&momentum.mul(&beta)?)?
            } else {
                next.add(&momentum.mul_scalar(beta[0])?)?
            };
            tk = t_next;
        }
        a = next;
        if let Some(r) = rec.as_mut() {
            r.record(steps, None, &a, done || steps == max_steps)?;
        }
        if done {
            break;
        }
    }
    Ok(finish(a, steps, stop, residual, l))
}
