//! Implicit differentiation at the fixed point: gradients of the converged code without
//! backpropagating through the iterations, so memory does not depend on the number of steps.
//!
//! **An option, not parity**: the official model differentiates its `T` unrolled steps
//! ([`super::solvers::GradMode::Unrolled`]), which is a different gradient unless the iteration
//! has converged.
//!
//! The code `a*` is a fixed point of `F(a) = S(z; t)`, `z = a − (G a − b)/L`, `t = λ/L` (with
//! `G` the iteration Gram, `W·G·W` for the learned form). Differentiating `a* = F(a*, θ)`:
//!
//! ```text
//! (I − M) da* = ∂F/∂θ dθ,     M = ∂F/∂a = J (I − G/L),   J = diag(∂S/∂z)
//! ```
//!
//! so for an output gradient `v` the adjoint `w` solves `(I − M)ᵀ w = v`, i.e.
//! `w = v + (I − G/L)ᵀ J w`, and with `J w = jw`, `T w = (∂S/∂t) ⊙ w`, `R = G a* − b`:
//!
//! ```text
//! ∂b = jw / L      ∂G = −(jw / L)·a*ᵀ      ∂λ = T w / L      ∂L = (jw ⊙ R − T w ⊙ λ)/L²
//! ```
//!
//! Two adjoint solvers ([`AdjointSolve`]), chosen by [`adjoint_solve_for`]:
//!
//! - **Active set** (soft threshold or identity shrink, symmetric `G`, no `W`): `J` is the 0/1
//!   projector onto the active set `A = {i : |z_i| > t}` and the adjoint reduces to the linear
//!   system `G_AA y_A = v_A` (`w = L·y` on `A`, 0 elsewhere), solved exactly per code column in
//!   f64 on the host (one transfer; `O(|A|³)` per column). This is the classical Lasso
//!   sensitivity `da_A = G_AA⁻¹(db_A − dG_AA a_A − dλ·sign(a_A))`; it needs `G_AA` non-singular
//!   (a unique Lasso solution) and errors otherwise.
//! - **Fixed point** (the GELU shrink, `W·G·W`, or an asymmetric `G`): the iteration
//!   `w ← v + (I − G/L)ᵀ J w` on the device, which converges iff the spectral radius `ρ(M) < 1`.
//!
//! Preconditions, checked in the forward and reported as errors rather than returning a wrong
//! gradient: the forward fixed-point residual `max|a − F(a)|` must be at most
//! [`ImplicitConfig::tol`] (always checked); for the fixed-point adjoint the iteration must be
//! contractive at `a*` (`ρ(M)` estimated by [`contraction_estimate`] below 1; checked when an
//! input is tracked, i.e. when a backward can follow); the adjoint iteration itself must
//! converge within its budget (checked in the backward).
//!
//! Memory: the forward runs under `no_grad`; the graph keeps `G`, `b`, `λ`, `L` and `a*` (the
//! inputs of one custom op, [`crate::CustomOp`]), whatever the number of steps.

use super::diagnostics::max_of;
use super::linalg;
use super::problem::SparseProblem;
use super::solvers::{solve_with, GradMode, Solution, SolverConfig};
use crate::autodiff::no_grad;
use crate::nn::Shrink;
use crate::{Backend, CustomBackward, CustomOp, Error, Result, Tensor, UnaryOp};
use std::sync::Arc;

const OP: &str = "implicit_fixed_point";

/// Settings of the implicit gradient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImplicitConfig {
    /// The largest forward fixed-point residual `max|a − F(a)|` accepted (else an error): the
    /// implicit gradient is the gradient of the *exact* fixed point.
    pub tol: f64,
    /// The fixed-point adjoint stops when `max|Δw| ≤ adjoint_tol·max|w|`.
    pub adjoint_tol: f64,
    /// Budget of the fixed-point adjoint iteration (an error when exceeded).
    pub max_adjoint_iters: usize,
    /// Power-iteration steps of the contraction estimate.
    pub contraction_iters: usize,
}

impl Default for ImplicitConfig {
    /// `tol = 1e-6`, `adjoint_tol = 1e-10`, 10 000 adjoint iterations, 200 contraction steps.
    fn default() -> Self {
        ImplicitConfig {
            tol: 1e-6,
            adjoint_tol: 1e-10,
            max_adjoint_iters: 10_000,
            contraction_iters: 200,
        }
    }
}

impl ImplicitConfig {
    /// Sets the required forward residual [`ImplicitConfig::tol`].
    pub fn with_tol(self, tol: f64) -> Self {
        ImplicitConfig { tol, ..self }
    }
}

/// How the adjoint system is solved (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjointSolve {
    /// Exact linear solve on the active set (soft threshold / identity, symmetric `G`).
    ActiveSet,
    /// The adjoint fixed-point iteration (GELU, `W·G·W`, asymmetric `G`).
    FixedPoint,
}

/// The adjoint solver the implicit gradient uses for `problem`.
pub fn adjoint_solve_for<B: Backend>(problem: &SparseProblem<B>) -> Result<AdjointSolve> {
    let piecewise_linear = problem.shrink_kind() != Shrink::Gelu;
    Ok(
        if piecewise_linear && problem.weight().is_none() && problem.gram_is_symmetric()? {
            AdjointSolve::ActiveSet
        } else {
            AdjointSolve::FixedPoint
        },
    )
}

/// `(∂S/∂z, ∂S/∂t)` of the shrink at `(z, t)`, with the engine's conventions (those of
/// [`crate::nn::shrink`]: `sign(0) = 0`, `step(0) = 0`).
pub fn shrink_derivatives<B: Backend>(
    z: &Tensor<B>,
    t: &Tensor<B>,
    kind: Shrink,
    nonneg: bool,
) -> Result<(Tensor<B>, Tensor<B>)> {
    if nonneg {
        return match kind {
            Shrink::SoftThreshold => {
                let on = z.sub(t)?.unary(UnaryOp::Step)?;
                Ok((on.clone(), on.neg()?))
            }
            _ => {
                let on = z.unary(UnaryOp::Step)?;
                let zero = on.zeros_like()?;
                Ok((on, zero))
            }
        };
    }
    match kind {
        Shrink::Identity => Ok((z.ones_like()?, z.zeros_like()?)),
        Shrink::SoftThreshold | Shrink::Gelu => {
            let u = z.abs()?.sub(t)?;
            let gd = u.unary(if kind == Shrink::Gelu {
                UnaryOp::GeluDerivative
            } else {
                UnaryOp::Step
            })?;
            let s = z.sign()?;
            Ok((gd.mul(&s.sqr()?)?, gd.mul(&s)?.neg()?))
        }
    }
}

/// An estimate of the spectral radius `ρ(M)` of the iteration's Jacobian `M = J (I − G/L)` at
/// the code `a` (largest over the batch): power iteration from a seeded Gaussian vector,
/// `ρ̂ = exp(mean log‖M x_i‖)` over the second half of `iters` normalised steps (Gelfand's
/// formula). ISTA converges locally iff `ρ(M) < 1`.
pub fn contraction_estimate<B: Backend>(
    problem: &SparseProblem<B>,
    g_e: &Tensor<B>,
    l: &Tensor<B>,
    a: &Tensor<B>,
    iters: usize,
) -> Result<f64> {
    no_grad(|| {
        let (g_e, l, a) = (g_e.detach(), l.detach(), a.detach());
        let p = problem.detached();
        let z = a.sub(&g_e.matmul(&a)?.sub(p.drive())?.div(&l)?)?;
        let t = p.lam().div(&l)?;
        let (dz, _) = shrink_derivatives(&z, &t, p.shrink_kind(), p.is_nonnegative())?;
        let all: Vec<usize> = (0..a.rank()).collect();
        let norm = |x: &Tensor<B>| -> Result<f64> { Ok(x.norm_l2(&all, false)?.to_vec_f64()?[0]) };
        let mut x = Tensor::randn(a.dims().to_vec(), a.dtype(), 0x0C04_7AC7, a.device())?;
        x = x.mul_scalar(1.0 / norm(&x)?.max(1e-300))?;
        let (mut acc, mut count) = (0.0, 0usize);
        let iters = iters.max(2);
        for i in 0..iters {
            let y = dz.mul(&x.sub(&g_e.matmul(&x)?.div(&l)?)?)?;
            let n = norm(&y)?;
            if n == 0.0 {
                return Ok(0.0);
            }
            if !n.is_finite() {
                return Ok(f64::INFINITY);
            }
            if i >= iters / 2 {
                acc += n.ln();
                count += 1;
            }
            x = y.mul_scalar(1.0 / n)?;
        }
        Ok((acc / count as f64).exp())
    })
}

/// The implicit-gradient solve behind [`super::solvers::solve`] (module docs).
pub(crate) fn solve_implicit<B: Backend>(
    problem: &SparseProblem<B>,
    cfg: &SolverConfig<B>,
    ic: &ImplicitConfig,
) -> Result<Solution<B>> {
    let g_e = problem.iteration_gram()?;
    let l = cfg.step.resolve(problem, &g_e)?;
    let detached = problem.detached();
    let (g_d, l_d) = (g_e.detach(), l.detach());
    let forward_cfg = SolverConfig {
        grad: GradMode::Unrolled,
        ..cfg.clone()
    };
    let mut sol = no_grad(|| solve_with(&detached, &g_d, &l_d, &forward_cfg))?;
    let code_dims = problem.code_dims();
    let a = sol
        .code
        .detach()
        .broadcast_as(code_dims.clone())?
        .contiguous()?;

    // Preconditions.
    let fail = |msg: String| Error::invalid("implicit gradient", problem.gram().shape(), msg);
    let residual = no_grad(|| max_of(&detached.fixed_point_residual(&g_d, &l_d, &a)?))?;
    if residual.is_nan() || residual > ic.tol {
        return Err(fail(format!(
            "the forward fixed-point residual max|a − F(a)| = {residual:e} exceeds tol = {:e} \
             after {} steps: the code is not a fixed point, so its implicit gradient is \
             undefined (raise the step budget, or use GradMode::Unrolled)",
            ic.tol, sol.steps
        )));
    }
    let method = adjoint_solve_for(problem)?;
    let tracked = B::TRACKS_GRADIENTS
        && crate::is_grad_enabled()
        && (g_e.is_tracked()
            || l.is_tracked()
            || problem.drive().is_tracked()
            || problem.lam().is_tracked());
    if method == AdjointSolve::FixedPoint && tracked {
        let rho = contraction_estimate(&detached, &g_d, &l_d, &a, ic.contraction_iters)?;
        if rho.is_nan() || rho >= 1.0 {
            return Err(fail(format!(
                "the iteration is not contractive at the fixed point (spectral radius of \
                 ∂F/∂a ≈ {rho:.4} ≥ 1): the adjoint fixed-point solve would diverge; use a \
                 larger L or GradMode::Unrolled"
            )));
        }
    }
    sol.residual = Some(residual);

    let mut gram_dims = problem.batch_dims().to_vec();
    gram_dims.extend([problem.atoms(), problem.atoms()]);
    let inputs = [
        g_e.broadcast_as(gram_dims)?,
        problem.drive().broadcast_as(code_dims.clone())?,
        problem.lam().broadcast_as(code_dims.clone())?,
        l.broadcast_as(code_dims)?,
        a,
    ];
    let op = ImplicitOp {
        shrink: problem.shrink_kind(),
        nonneg: problem.is_nonnegative(),
        method,
        cfg: *ic,
    };
    sol.code = Tensor::apply_custom(&op, &inputs.iter().collect::<Vec<_>>())?;
    sol.step_constant = l;
    Ok(sol)
}

/// The custom op: identity on the precomputed fixed point `a*` (input 4) in the forward, the
/// adjoint solve in the backward. Inputs `G (…, m, m)`, then `b`, `λ`, `L`, `a*`, all
/// `(…, m, k)` (broadcast views; the engine sums their gradients back).
struct ImplicitOp {
    shrink: Shrink,
    nonneg: bool,
    method: AdjointSolve,
    cfg: ImplicitConfig,
}

impl<B: Backend> CustomOp<B> for ImplicitOp {
    fn name(&self) -> &str {
        OP
    }

    fn forward(&self, inputs: &[Tensor<B>]) -> Result<(Tensor<B>, Arc<dyn CustomBackward<B>>)> {
        let [g, b, lam, l, a]: [Tensor<B>; 5] =
            inputs.to_vec().try_into().map_err(|_| Error::CustomOp {
                name: OP.into(),
                msg: format!("expected 5 inputs (G, b, λ, L, a*), got {}", inputs.len()),
            })?;
        let out = a.clone();
        let (shrink, nonneg, method, cfg) = (self.shrink, self.nonneg, self.method, self.cfg);
        let backward = move |v: &Tensor<B>| -> Result<Vec<Option<Tensor<B>>>> {
            let r = g.matmul(&a)?.sub(&b)?;
            let z = a.sub(&r.div(&l)?)?;
            let t = lam.div(&l)?;
            let (dz, dt) = shrink_derivatives(&z, &t, shrink, nonneg)?;
            let w = match method {
                AdjointSolve::ActiveSet => active_set_adjoint(&g, v, &dz, &l)?,
                AdjointSolve::FixedPoint => fixed_point_adjoint(&g, v, &dz, &l, &cfg)?,
            };
            let jw = dz.mul(&w)?;
            let q = jw.div(&l)?;
            let grad_g = q.matmul(&a.t()?)?.neg()?;
            let tw = dt.mul(&w)?;
            let grad_lam = tw.div(&l)?;
            let grad_l = jw.mul(&r)?.sub(&tw.mul(&lam)?)?.div(&l.sqr()?)?;
            Ok(vec![
                Some(grad_g),
                Some(q),
                Some(grad_lam),
                Some(grad_l),
                None,
            ])
        };
        Ok((out, Arc::new(backward)))
    }
}

/// `w` for the active-set case: per problem and code column, `G_AA y_A = v_A` in f64 on the
/// host, `w = L·y` on `A` and 0 elsewhere (module docs).
fn active_set_adjoint<B: Backend>(
    g: &Tensor<B>,
    v: &Tensor<B>,
    dz: &Tensor<B>,
    l: &Tensor<B>,
) -> Result<Tensor<B>> {
    let dims = v.dims().to_vec();
    let r = dims.len();
    let (m, k) = (dims[r - 2], dims[r - 1]);
    let nb: usize = dims[..r - 2].iter().product();
    let gh = g.to_vec_f64()?;
    let (vh, dzh, lh) = (v.to_vec_f64()?, dz.to_vec_f64()?, l.to_vec_f64()?);
    let mut y = vec![0.0; nb * m * k];
    let mut sub = Vec::with_capacity(m * m);
    let mut rhs = Vec::with_capacity(m);
    for p in 0..nb {
        let gp = &gh[p * m * m..(p + 1) * m * m];
        for c in 0..k {
            let at = |i: usize| p * m * k + i * k + c;
            let active: Vec<usize> = (0..m).filter(|&i| dzh[at(i)] > 0.5).collect();
            if active.is_empty() {
                continue;
            }
            sub.clear();
            rhs.clear();
            for &i in &active {
                sub.extend(active.iter().map(|&j| gp[i * m + j]));
                rhs.push(vh[at(i)]);
            }
            let sol = linalg::solve(&sub, active.len(), &rhs).ok_or_else(|| {
                Error::invalid(
                    OP,
                    g.shape(),
                    format!(
                        "G restricted to the {} active atoms of problem {p}, column {c} is \
                         singular: the Lasso solution is not unique, so it has no gradient",
                        active.len()
                    ),
                )
            })?;
            for (&i, s) in active.iter().zip(sol) {
                y[at(i)] = lh[at(i)] * s;
            }
        }
    }
    Tensor::from_vec(y, dims, v.device())?.to_dtype(v.dtype())
}

/// `w` for the general case: `w ← v + (I − G/L)ᵀ J w` until `max|Δw| ≤ adjoint_tol·max|w|`.
fn fixed_point_adjoint<B: Backend>(
    g: &Tensor<B>,
    v: &Tensor<B>,
    dz: &Tensor<B>,
    l: &Tensor<B>,
    cfg: &ImplicitConfig,
) -> Result<Tensor<B>> {
    let gt = g.t()?;
    let mut w = v.clone();
    let max_iters = cfg.max_adjoint_iters.max(1);
    let mut last = f64::NAN;
    for it in 1..=max_iters {
        let jw = dz.mul(&w)?;
        let next = v.add(&jw)?.sub(&gt.matmul(&jw)?.div(l)?)?;
        if it % 4 == 0 || it == max_iters {
            let diff = max_of(&next.sub(&w)?.abs()?)?;
            let scale = max_of(&next.abs()?)?;
            if !diff.is_finite() {
                break;
            }
            last = diff / scale.max(1e-300);
            if diff <= cfg.adjoint_tol * scale.max(1e-300) {
                return Ok(next);
            }
        }
        w = next;
    }
    Err(Error::invalid(
        OP,
        g.shape(),
        format!(
            "the adjoint fixed-point iteration did not converge in {max_iters} iterations \
             (last relative change {last:e}, tolerance {:e})",
            cfg.adjoint_tol
        ),
    ))
}
