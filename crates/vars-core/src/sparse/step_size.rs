//! The step constant `L` of ISTA (`a ← S(a − (G a − b)/L; λ/L)`), spec §1.3 and §3.3 step 5.
//!
//! ISTA decreases the energy monotonically when `L ≥ λ_max(G)` (more generally `L ≥ ‖G‖₂`, the
//! Lipschitz constant of `∇½aᵀGa`). Three ways to get such an `L`:
//!
//! | rule | value | cost | use |
//! |---|---|---|---|
//! | [`StepSize::Gershgorin`] | `1 + max_i Σ_j abs(G_ij)` | one reduction | **official** (detached) |
//! | [`StepSize::PowerIteration`] | `(1 + margin)·‖G_e v‖`, `v` from power iteration on `G_eᵀG_e` | `2·iters` mat-vecs | tighter, still on the device |
//! | [`StepSize::Exact`] | `‖G_e‖₂` by Jacobi on the host in f64 | `O(m³)` per problem, a transfer | tests and references |
//!
//! Gershgorin's theorem puts every eigenvalue of `G` in a disc `|λ − G_ii| ≤ Σ_{j≠i} |G_ij|`, so
//! `max_i Σ_j |G_ij| ≥ |λ|_max`; the reference adds 1 (spec §3.3 step 5). For positive random
//! features it is loose (≈ 34 against λ_max ≈ 28 at RVT-Ti sizes, spec §3.3).
//!
//! All rules return a **detached** tensor of shape `(…, 1, 1)` (one constant per problem), as the
//! reference detaches `L`. A learned rescaling (`L_e = L / s_L`) is the caller's: pass the
//! result through [`StepSize::Given`].

use super::linalg;
use super::problem::SparseProblem;
use crate::autodiff::no_grad;
use crate::{Backend, Error, Result, Tensor};

/// How the solvers obtain `L` (module docs).
#[derive(Debug, Clone)]
pub enum StepSize<B: Backend> {
    /// Official: `L = 1 + max_i Σ_j |G_ij|` of the **plain** `G` (for the learned form too, as
    /// the reference computes it before `W·G·W`), detached.
    Gershgorin,
    /// `L = (1 + margin)·σ̂`, where `σ̂ ≤ ‖G_e‖₂` is the power-iteration estimate after `iters`
    /// iterations ([`power_iteration`]); `margin` covers the estimate's shortfall.
    PowerIteration {
        /// Power-iteration steps.
        iters: usize,
        /// Relative safety margin added to the estimate.
        margin: f64,
    },
    /// `L = ‖G_e‖₂` exactly (= λ_max(G) for a positive semi-definite `G`), by the Jacobi
    /// eigenvalue algorithm in f64 on the host ([`exact_spectral_norm`]).
    Exact,
    /// A given `L`, broadcasting to `(…, 1, 1)`, used as is (it may be tracked, e.g. `L / s_L`).
    Given(Tensor<B>),
}

impl<B: Backend> StepSize<B> {
    /// A constant `L` for every problem.
    pub fn constant(value: f64, problem: &SparseProblem<B>) -> Result<Self> {
        Ok(StepSize::Given(Tensor::scalar(
            value,
            problem.dtype(),
            problem.device(),
        )?))
    }

    /// The step constants `(…, 1, 1)` for `problem`, whose iteration Gram is `g_e`.
    pub fn resolve(&self, problem: &SparseProblem<B>, g_e: &Tensor<B>) -> Result<Tensor<B>> {
        let dims = problem.scalar_dims();
        match self {
            StepSize::Gershgorin => official_step_constant(problem.gram())?.broadcast_as(dims),
            StepSize::PowerIteration { iters, margin } => power_iteration(g_e, *iters)?
                .mul_scalar(1.0 + margin)?
                .broadcast_as(dims),
            StepSize::Exact => {
                let norms = exact_spectral_norm(&g_e.broadcast_as(gram_dims(problem))?)?;
                Tensor::from_vec(norms, dims, problem.device())?.to_dtype(problem.dtype())
            }
            StepSize::Given(l) => {
                if l.dtype() != problem.dtype() {
                    return Err(Error::DTypeMismatch {
                        op: "StepSize::Given",
                        lhs: problem.dtype(),
                        rhs: l.dtype(),
                    });
                }
                l.broadcast_as(dims)
            }
        }
    }
}

fn gram_dims<B: Backend>(problem: &SparseProblem<B>) -> Vec<usize> {
    let mut d = problem.batch_dims().to_vec();
    d.extend([problem.atoms(), problem.atoms()]);
    d
}

/// The Gershgorin bound `max_i Σ_j |G_ij| ≥ max |λ(G)|` per matrix, shape `(…, 1, 1)`, detached.
pub fn gershgorin_bound<B: Backend>(g: &Tensor<B>) -> Result<Tensor<B>> {
    let r = g.rank();
    if r < 2 {
        return Err(Error::invalid(
            "gershgorin_bound",
            g.shape(),
            "needs (…, m, m)",
        ));
    }
    no_grad(|| g.detach().abs()?.sum(&[r - 1], true)?.max(&[r - 2], true))
}

/// The reference's step constant `L = 1 + max_i Σ_j |G_ij|` (spec §3.3 step 5), detached,
/// shape `(…, 1, 1)`.
pub fn official_step_constant<B: Backend>(g: &Tensor<B>) -> Result<Tensor<B>> {
    no_grad(|| gershgorin_bound(g)?.add_scalar(1.0))
}

/// A power-iteration estimate `σ̂ = ‖G v_T‖` of the spectral norm `‖G‖₂` per matrix, shape
/// `(…, 1, 1)`, detached.
///
/// `v₀` is a fixed seeded Gaussian vector; each iteration sets `v ← GᵀG v / ‖GᵀG v‖` (working on
/// `GᵀG` makes it valid for the non-symmetric `W·G·W` too; for a symmetric `G` it is the power
/// method on `G²`). `σ̂` is a lower bound on `‖G‖₂` that converges like
/// `(σ₂/σ₁)^{2·iters}`; scale it up by a margin before using it as `L`.
pub fn power_iteration<B: Backend>(g: &Tensor<B>, iters: usize) -> Result<Tensor<B>> {
    let r = g.rank();
    if r < 2 || g.dims()[r - 1] != g.dims()[r - 2] {
        return Err(Error::invalid(
            "power_iteration",
            g.shape(),
            "needs (…, m, m)",
        ));
    }
    let m = g.dims()[r - 1];
    no_grad(|| {
        let g = g.detach();
        let gt = g.t()?;
        let mut dims = g.dims()[..r - 2].to_vec();
        dims.extend([m, 1]);
        let unit = |v: &Tensor<B>| -> Result<Tensor<B>> {
            let n = v.norm_l2(&[r - 2], true)?.clamp_min(1e-300)?;
            v.div(&n)
        };
        let mut v = unit(&Tensor::randn(
            dims.clone(),
            g.dtype(),
            0x5EED_5A7E,
            g.device(),
        )?)?;
        for _ in 0..iters {
            v = unit(&gt.matmul(&g.matmul(&v)?)?)?;
        }
        g.matmul(&v)?.norm_l2(&[r - 2], true)
    })
}

/// Host copies of the `(…, m, m)` matrices of `g`, one `Vec` per matrix, in f64.
fn host_matrices<B: Backend>(g: &Tensor<B>) -> Result<(usize, Vec<Vec<f64>>)> {
    let r = g.rank();
    if r < 2 || g.dims()[r - 1] != g.dims()[r - 2] {
        return Err(Error::invalid(
            "host_matrices",
            g.shape(),
            "needs (…, m, m)",
        ));
    }
    let m = g.dims()[r - 1];
    let data = g.to_vec_f64()?;
    Ok((m, data.chunks(m * m).map(<[f64]>::to_vec).collect()))
}

/// The exact largest eigenvalue of each symmetric matrix of `g` (`(…, m, m)`), in f64 by the
/// Jacobi eigenvalue algorithm ([`linalg::symmetric_eigenvalues`]), flattened over the batch.
/// Errors when a matrix is not symmetric (`|G − Gᵀ| > 1e-6·max|G|`).
pub fn exact_lambda_max<B: Backend>(g: &Tensor<B>) -> Result<Vec<f64>> {
    let (m, mats) = host_matrices(g)?;
    mats.iter()
        .map(|a| {
            check_symmetric(a, m, g)?;
            Ok(*linalg::symmetric_eigenvalues(a, m).last().unwrap_or(&0.0))
        })
        .collect()
}

/// The exact spectral norm `‖G‖₂` of each matrix of `g` (`(…, m, m)`), flattened over the
/// batch: `max |λ|` by Jacobi for a symmetric matrix, `√λ_max(GᵀG)` otherwise. In f64 on the host.
pub fn exact_spectral_norm<B: Backend>(g: &Tensor<B>) -> Result<Vec<f64>> {
    let (m, mats) = host_matrices(g)?;
    Ok(mats
        .iter()
        .map(|a| {
            if is_symmetric(a, m) {
                let ev = linalg::symmetric_eigenvalues(a, m);
                ev.first()
                    .map_or(0.0, |lo| lo.abs())
                    .max(ev.last().map_or(0.0, |hi| hi.abs()))
            } else {
                let ev = linalg::symmetric_eigenvalues(&linalg::gram_of(a, m), m);
                ev.last().map_or(0.0, |v| v.max(0.0).sqrt())
            }
        })
        .collect())
}

fn is_symmetric(a: &[f64], m: usize) -> bool {
    let scale = a.iter().fold(0.0f64, |s, v| s.max(v.abs()));
    (0..m).all(|i| (0..i).all(|j| (a[i * m + j] - a[j * m + i]).abs() <= 1e-6 * scale))
}

fn check_symmetric<B: Backend>(a: &[f64], m: usize, g: &Tensor<B>) -> Result<()> {
    if is_symmetric(a, m) {
        Ok(())
    } else {
        Err(Error::invalid(
            "exact_lambda_max",
            g.shape(),
            "the matrix is not symmetric; use exact_spectral_norm",
        ))
    }
}
