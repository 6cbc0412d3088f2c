//! Numerically stable softmax and log-softmax along one dim (max-subtracted; the max is a
//! constant shift, so it is detached: the result and its gradient are unchanged by it).
//!
//! Along the last dim (every use in the models: attention scores, logits) the op first asks the
//! backend for its fused row kernel ([`Backend::softmax_last_dim`]); under autodiff it is then one
//! graph node ([`crate::CustomOp`]) whose backward is the closed form `y ⊙ (g − Σ g⊙y)` (softmax)
//! or `g − exp(y)·Σ g` (log-softmax), fused too when the backend has
//! [`Backend::softmax_last_dim_backward`]. Other dims, and backends without the kernel, use the
//! composite of tensor ops below, differentiated op by op.

use std::sync::Arc;

use crate::autodiff::is_grad_enabled;
use crate::{Backend, CustomBackward, CustomOp, Error, Result, Tensor};

/// `exp(x − max) / Σ exp(x − max)` along `dim`.
pub fn softmax<B: Backend>(x: &Tensor<B>, dim: usize) -> Result<Tensor<B>> {
    x.require_float("softmax")?;
    if let Some(y) = fused(x, dim, false)? {
        return Ok(y);
    }
    softmax_composite(x, dim)
}

/// `x − max − log Σ exp(x − max)` along `dim`.
pub fn log_softmax<B: Backend>(x: &Tensor<B>, dim: usize) -> Result<Tensor<B>> {
    x.require_float("log_softmax")?;
    if let Some(y) = fused(x, dim, true)? {
        return Ok(y);
    }
    log_softmax_composite(x, dim)
}

/// [`softmax`] from tensor ops only (the reference the fused kernels are tested against).
pub fn softmax_composite<B: Backend>(x: &Tensor<B>, dim: usize) -> Result<Tensor<B>> {
    x.require_float("softmax")?;
    let shifted = x.sub(&x.max(&[dim], true)?.detach())?;
    let e = shifted.exp()?;
    e.div(&e.sum(&[dim], true)?)
}

/// [`log_softmax`] from tensor ops only.
pub fn log_softmax_composite<B: Backend>(x: &Tensor<B>, dim: usize) -> Result<Tensor<B>> {
    x.require_float("log_softmax")?;
    let shifted = x.sub(&x.max(&[dim], true)?.detach())?;
    shifted.sub(&shifted.exp()?.sum(&[dim], true)?.log()?)
}

fn op_name(log: bool) -> &'static str {
    if log {
        "log_softmax"
    } else {
        "softmax"
    }
}

/// The fused path: `None` when `dim` is not the last dim, the tensor is empty, or (untracked)
/// the backend has no kernel.
fn fused<B: Backend>(x: &Tensor<B>, dim: usize, log: bool) -> Result<Option<Tensor<B>>> {
    if x.rank() == 0 || dim + 1 != x.rank() || x.elem_count() == 0 {
        return Ok(None);
    }
    if B::TRACKS_GRADIENTS && is_grad_enabled() && x.is_tracked() {
        // One graph node with the closed-form backward (the forward falls back to the composite
        // inside it when the backend has no kernel).
        return Tensor::apply_custom(&SoftmaxOp { log }, &[x]).map(Some);
    }
    B::softmax_last_dim(x.storage(), x.layout(), log)?
        .map(|s| Tensor::from_storage(s, x.shape().clone()))
        .transpose()
}

struct SoftmaxOp {
    log: bool,
}

impl<B: Backend> CustomOp<B> for SoftmaxOp {
    fn name(&self) -> &str {
        op_name(self.log)
    }

    fn forward(&self, inputs: &[Tensor<B>]) -> Result<(Tensor<B>, Arc<dyn CustomBackward<B>>)> {
        let log = self.log;
        let x = inputs.first().ok_or_else(|| Error::CustomOp {
            name: op_name(log).into(),
            msg: "expected one input".into(),
        })?;
        let y = match B::softmax_last_dim(x.storage(), x.layout(), log)? {
            Some(s) => Tensor::from_storage(s, x.shape().clone())?,
            None if log => log_softmax_composite(x, x.rank() - 1)?,
            None => softmax_composite(x, x.rank() - 1)?,
        };
        let saved = y.clone();
        let backward = move |grad: &Tensor<B>| -> Result<Vec<Option<Tensor<B>>>> {
            Ok(vec![Some(softmax_vjp(&saved, grad, log)?)])
        };
        Ok((y, Arc::new(backward)))
    }
}

/// The softmax / log-softmax vector-Jacobian product from the output `y`.
fn softmax_vjp<B: Backend>(y: &Tensor<B>, grad: &Tensor<B>, log: bool) -> Result<Tensor<B>> {
    if let Some(s) =
        B::softmax_last_dim_backward(y.storage(), y.layout(), grad.storage(), grad.layout(), log)?
    {
        return Tensor::from_storage(s, y.shape().clone());
    }
    let last = y.rank() - 1;
    if log {
        grad.sub(&y.exp()?.mul(&grad.sum(&[last], true)?)?)
    } else {
        y.mul(&grad.sub(&grad.mul(y)?.sum(&[last], true)?)?)
    }
}
