//! The shrink functions of the sparse-coding step (spec §0, §7.1), as fused elementwise ops:
//!
//! - [`Shrink::SoftThreshold`]: `T_t(z) = sign(z)·relu(|z| − t)`, the proximal operator of `t‖·‖₁`;
//! - [`Shrink::Gelu`]: `sign(z)·gelu(|z| − t)`, the official code's form (not a proximal operator:
//!   it leaks small negative values and jumps by `2|gelu(−t)|` at `z = 0`);
//! - [`Shrink::Identity`]: `z` (λ = 0, plain self-attention).
//!
//! `t` broadcasts against `z` and is differentiable (VARS learns a scale on λ). With
//! `u = |z| − t` and `g` the relu or gelu: `∂/∂z = sign(z)²·g′(u)` (0 at `z = 0`, PyTorch's
//! convention for `sign` and `|·|`), `∂/∂t = −sign(z)·g′(u)`.

use crate::{Backend, BinaryOp, Result, Tensor};

/// Which shrink the sparse-coding step applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shrink {
    SoftThreshold,
    Gelu,
    Identity,
}

/// `shrink(z, t)` elementwise, `t` broadcasting against `z`.
pub fn shrink<B: Backend>(z: &Tensor<B>, t: &Tensor<B>, kind: Shrink) -> Result<Tensor<B>> {
    match kind {
        Shrink::Identity => Ok(z.clone()),
        Shrink::SoftThreshold => z.binary(t, BinaryOp::SoftThreshold),
        Shrink::Gelu => z.binary(t, BinaryOp::GeluShrink),
    }
}

/// `shrink(z, t)` for a scalar threshold.
pub fn shrink_scalar<B: Backend>(z: &Tensor<B>, t: f64, kind: Shrink) -> Result<Tensor<B>> {
    let t = Tensor::scalar(t, z.dtype(), z.device())?;
    shrink(z, &t, kind)
}
