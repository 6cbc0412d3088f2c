//! The Locally Competitive Algorithm: the attractor network whose fixed point is the sparse code
//! (Rozell et al. 2008; spec §1.2).
//!
//! Each of the m neurons has a membrane state `u` and an output `a = S(u; λ)`:
//!
//! ```text
//! τ·u̇ = b − u − (G_e − I)·S(u; λ)
//! ```
//!
//! with the feed-forward drive `b = Dᵀx`, the leak `−u` and lateral inhibition `−(G − I)a`
//! between neurons whose templates overlap. For the soft threshold and a symmetric `G`, on the
//! active set `u − a = λ·sign(a)`, so `τ·u̇_i = −∂E/∂a_i` and
//! `dE/dt = −(1/τ)·Σ_active (∂E/∂a_i)² ≤ 0`: E is a Lyapunov function and the fixed point
//! (`u̇ = 0` ⟺ `a` satisfies the Lasso KKT conditions) minimises E.
//!
//! Integrators ([`Integrator`]), with `f(u) = (b − u − (G_e − I)S(u; λ))/τ` and step `dt`:
//! - explicit Euler, `u ← u + dt·f(u)` (first order);
//! - classical Runge–Kutta, `u ← u + dt/6·(k₁ + 2k₂ + 2k₃ + k₄)` (fourth order).
//!
//! `f` is piecewise linear: both attain their order only while the active set is fixed; each
//! threshold crossing costs accuracy. Euler is stable for `dt/τ < 2/λ_max(G_AA)` (and `< 2`):
//! the default `dt = τ/max(L)` with `L ≥ λ_max` is safe, and makes one Euler step cost and move
//! about as much as one ISTA step. Stopping in tolerance mode uses `τ·max|u̇|`, free with the
//! first stage.

use super::diagnostics::{max_of, Recorder};
use super::problem::SparseProblem;
use super::solvers::{budget, Solution, Stop};
use crate::autodiff::no_grad;
use crate::{Backend, Result, Tensor};

/// The ODE integrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrator {
    /// Explicit Euler, order 1.
    Euler,
    /// Classical fourth-order Runge–Kutta.
    Rk4,
}

/// The initial membrane state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LcaInit {
    /// `u(0) = 0` (all neurons silent; Rozell et al.).
    #[default]
    Zero,
    /// `u(0) = b`: the drive, whose output `S(b; λ)` is the official initial guess.
    Drive,
}

/// The LCA settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LcaConfig {
    /// The time constant `τ > 0`.
    pub tau: f64,
    /// The time step; `None` is `τ / max(L)` over the batch (one host transfer).
    pub dt: Option<f64>,
    /// Euler or RK4.
    pub integrator: Integrator,
    /// `u(0)`.
    pub init: LcaInit,
}

impl LcaConfig {
    /// Explicit Euler with `τ = 1`, `dt = τ/max(L)`, `u(0) = 0`.
    pub fn euler() -> Self {
        LcaConfig {
            tau: 1.0,
            dt: None,
            integrator: Integrator::Euler,
            init: LcaInit::Zero,
        }
    }

    /// RK4 with `τ = 1`, `dt = τ/max(L)`, `u(0) = 0`.
    pub fn rk4() -> Self {
        LcaConfig {
            integrator: Integrator::Rk4,
            ..Self::euler()
        }
    }

    /// Sets the time step `dt > 0`.
    pub fn with_dt(self, dt: f64) -> Self {
        LcaConfig {
            dt: Some(dt),
            ..self
        }
    }

    /// Sets the time constant `τ > 0`.
    pub fn with_tau(self, tau: f64) -> Self {
        LcaConfig { tau, ..self }
    }

    /// Sets the initial state.
    pub fn with_init(self, init: LcaInit) -> Self {
        LcaConfig { init, ..self }
    }
}

/// `u̇ = (b − u − (G_e − I)·S(u; λ))/τ` and the output `a = S(u; λ)`.
pub fn lca_rhs<B: Backend>(
    problem: &SparseProblem<B>,
    g_e: &Tensor<B>,
    tau: f64,
    u: &Tensor<B>,
) -> Result<(Tensor<B>, Tensor<B>)> {
    let a = problem.apply_shrink(u, problem.lam())?;
    let lateral = g_e.matmul(&a)?.sub(&a)?;
    let du = problem
        .drive()
        .sub(u)?
        .sub(&lateral)?
        .mul_scalar(1.0 / tau)?;
    Ok((du, a))
}

/// Integrates the LCA (module docs) and returns `a = S(u_T; λ)` with `u_T` as the state.
pub(crate) fn run<B: Backend>(
    problem: &SparseProblem<B>,
    g_e: &Tensor<B>,
    l: &Tensor<B>,
    cfg: &LcaConfig,
    stop: Stop,
    rec: &mut Option<Recorder<'_, B>>,
) -> Result<Solution<B>> {
    let (max_steps, tol) = budget(stop);
    let tau = cfg.tau;
    let dt = match cfg.dt {
        Some(dt) => dt,
        None => tau / no_grad(|| max_of(&l.detach()))?.max(1e-300),
    };
    let mut u = match cfg.init {
        LcaInit::Zero => Tensor::zeros(problem.code_dims(), problem.dtype(), problem.device())?,
        LcaInit::Drive => problem.drive().clone(),
    };
    let f = |u: &Tensor<B>| lca_rhs(problem, g_e, tau, u);
    let (mut du, mut a) = f(&u)?;
    if let Some(r) = rec.as_mut() {
        r.record(0, Some(0.0), &a, max_steps == 0)?;
    }
    let mut residual = None;
    let mut steps = 0;
    while steps < max_steps {
        if let Some(tol) = tol {
            // τ·max|u̇| at the current state (the first stage, already computed).
            let r = tau * no_grad(|| max_of(&du.detach().abs()?))?;
            residual = Some(r);
            if r <= tol {
                break;
            }
        }
        u = match cfg.integrator {
            Integrator::Euler => u.add(&du.mul_scalar(dt)?)?,
            Integrator::Rk4 => {
                let k1 = &du;
                let k2 = f(&u.add(&k1.mul_scalar(0.5 * dt)?)?)?.0;
                let k3 = f(&u.add(&k2.mul_scalar(0.5 * dt)?)?)?.0;
                let k4 = f(&u.add(&k3.mul_scalar(dt)?)?)?.0;
                let sum = k1.add(&k2.add(&k3)?.mul_scalar(2.0)?)?.add(&k4)?;
                u.add(&sum.mul_scalar(dt / 6.0)?)?
            }
        };
        steps += 1;
        (du, a) = f(&u)?;
        if let Some(r) = rec.as_mut() {
            r.record(steps, Some(steps as f64 * dt), &a, steps == max_steps)?;
        }
    }
    if tol.is_some() && steps == max_steps {
        // The budget ran out: measure the residual of the final state.
        residual = Some(tau * no_grad(|| max_of(&du.detach().abs()?))?);
    }
    let converged = match (stop, residual) {
        (Stop::Tolerance { tol, .. }, Some(r)) => Some(r <= tol),
        (Stop::Tolerance { .. }, None) => Some(false),
        (Stop::Steps(_), _) => None,
    };
    if let (Some(r), Some(true)) = (rec.as_mut(), converged) {
        r.record(steps, Some(steps as f64 * dt), &a, true)?;
    }
    Ok(Solution {
        code: a,
        state: Some(u),
        steps,
        converged,
        residual,
        step_constant: l.clone(),
        trace: None,
    })
}
