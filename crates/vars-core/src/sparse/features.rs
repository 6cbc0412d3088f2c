//! Positive random features (spec §2): the dictionary map of VARS-D/SD and the Performer.
//!
//! For `x ∈ R^d` and a frozen `Ω_h ∈ R^{d×m}` with i.i.d. `N(0, 1)` entries:
//!
//! ```text
//! φ(x)_j = m^{−1/2}·exp(ω_jᵀx − ‖x‖²/2),     E_Ω[φ(x)ᵀφ(y)] = exp(xᵀy)
//! ```
//!
//! (because `E[exp(ωᵀ(x + y))] = exp(‖x + y‖²/2)`). [`positive_features`] is this map alone;
//! [`PositiveRandomFeatures::apply`] is the reference's exact order of operations on queries
//! `q` (spec §2):
//!
//! 1. `x ← q·d^{−1/4}`;
//! 2. (official HEAD, `normalize = true`) `x ← x / max(‖x‖₂, 1e‑12)` along the head dimension;
//! 3. `z = x·Ω_h`, shape `(…, m)`;
//! 4. `φ = exp(z − ‖x‖²/2) / √m`, with `‖x‖²` recomputed from the (normalised) `x`.
//!
//! With normalisation the kernel is `exp(cos(q_i, q_j))` (the `d^{−1/4}` has no effect); without
//! it, `exp(qᵀk/√d)`, the softmax kernel. Ω is sampled once and never redrawn (a port loads it
//! from the checkpoint: [`PositiveRandomFeatures::from_omega`]); it is never differentiated.
//!
//! The estimate's variance: each term `f_j = exp(ω_jᵀ(x + y) − (‖x‖² + ‖y‖²)/2)` has
//! `E f_j = exp(xᵀy)` and `E f_j² = exp(2‖x + y‖² − ‖x‖² − ‖y‖²)`, so the relative standard
//! error of `φ(x)ᵀφ(y)` is `√((exp(‖x + y‖²) − 1)/m)`: it shrinks as `m^{−1/2}`.

use crate::{Backend, DType, Error, Result, Tensor};

/// `φ(x) = exp(x·Ω − ‖x‖²/2)/√m` for `x: (…, d)` and `Ω: (d, m)` or per-head `(H, d, m)`
/// broadcasting against `x`'s leading dims (matmul broadcasting, e.g. `x: (B, H, N, d)` with
/// `Ω: (H, d, m)`). Steps 3–4 of spec §2; differentiable in `x`.
pub fn positive_features<B: Backend>(x: &Tensor<B>, omega: &Tensor<B>) -> Result<Tensor<B>> {
    if x.rank() < 1 || omega.rank() < 2 {
        return Err(Error::ShapeMismatch {
            op: "positive_features",
            lhs: x.shape().clone(),
            rhs: omega.shape().clone(),
            hint: " (x is (…, d), Ω is (…, d, m))".into(),
        });
    }
    let r = x.rank();
    let m = omega.dims()[omega.rank() - 1];
    // (…, d) → (…, 1, d) when x is a plain batch of vectors, so matmul sees rank ≥ 2.
    let (x2, squeeze) = if r == 1 {
        (x.unsqueeze(0)?, true)
    } else {
        (x.clone(), false)
    };
    let r2 = x2.rank();
    let z = x2.matmul(&omega.detach())?;
    let half_sq = x2.sqr()?.sum(&[r2 - 1], true)?.mul_scalar(0.5)?;
    let phi = z
        .sub(&half_sq)?
        .exp()?
        .mul_scalar(1.0 / (m as f64).sqrt())?;
    if squeeze {
        phi.squeeze(0)
    } else {
        Ok(phi)
    }
}

/// The frozen per-head random-feature map of VARS-D/SD and the Performer (module docs).
#[derive(Debug, Clone)]
pub struct PositiveRandomFeatures<B: Backend> {
    omega: Tensor<B>,
    normalize: bool,
}

impl<B: Backend> PositiveRandomFeatures<B> {
    /// Samples `Ω: (heads, head_dim, features)` i.i.d. `N(0, 1)` from the engine's seeded
    /// generator. `normalize = true` is official HEAD (spec §2, §7).
    pub fn new(
        heads: usize,
        head_dim: usize,
        features: usize,
        normalize: bool,
        dtype: DType,
        seed: u64,
        device: &B::Device,
    ) -> Result<Self> {
        let omega = Tensor::randn([heads, head_dim, features], dtype, seed, device)?;
        Ok(PositiveRandomFeatures { omega, normalize })
    }

    /// Wraps a given `Ω: (H, d, m)` (e.g. a checkpoint's `attn.rand_matrix`); it is detached.
    pub fn from_omega(omega: &Tensor<B>, normalize: bool) -> Result<Self> {
        if omega.rank() != 3 {
            return Err(Error::invalid(
                "PositiveRandomFeatures::from_omega",
                omega.shape(),
                "Ω must be (heads, head_dim, features)",
            ));
        }
        Ok(PositiveRandomFeatures {
            omega: omega.detach(),
            normalize,
        })
    }

    /// `Ω: (H, d, m)`.
    pub fn omega(&self) -> &Tensor<B> {
        &self.omega
    }
    /// Whether inputs are unit-normalised (step 2; official HEAD).
    pub fn normalize(&self) -> bool {
        self.normalize
    }
    /// `H`, the number of heads (one Ω each).
    pub fn heads(&self) -> usize {
        self.omega.dims()[0]
    }
    /// `d`, the head dimension.
    pub fn head_dim(&self) -> usize {
        self.omega.dims()[1]
    }
    /// `m`, the number of features (atoms) per head.
    pub fn features(&self) -> usize {
        self.omega.dims()[2]
    }

    /// `φ(q)` for queries `q: (…, H, N, d)` → `(…, H, N, m)`, in the reference's order of
    /// operations (module docs, steps 1–4). Differentiable in `q`.
    pub fn apply(&self, q: &Tensor<B>) -> Result<Tensor<B>> {
        let (h, d) = (self.heads(), self.head_dim());
        let r = q.rank();
        if r < 3 || q.dims()[r - 1] != d || q.dims()[r - 3] != h {
            return Err(Error::ShapeMismatch {
                op: "PositiveRandomFeatures::apply",
                lhs: q.shape().clone(),
                rhs: self.omega.shape().clone(),
                hint: format!(" (queries must be (…, {h}, N, {d}))"),
            });
        }
        let mut x = q.mul_scalar((d as f64).powf(-0.25))?;
        if self.normalize {
            let n = x.norm_l2(&[r - 1], true)?.clamp_min(1e-12)?;
            x = x.div(&n)?;
        }
        positive_features(&x, &self.omega)
    }
}
