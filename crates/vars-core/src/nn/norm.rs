//! Layer norm and batch norm with PyTorch's semantics (spec §0): biased variance inside the
//! normalisation; for batch norm in training, a running-statistics update with the *unbiased*
//! variance, `running = (1 − momentum)·running + momentum·batch_stat`.
//!
//! Layer norm's normalisation `x̂ = (x − μ)/√(σ² + eps)` first asks the backend for its fused row
//! kernel ([`Backend::layer_norm_last_dim`]); under autodiff it is one graph node whose backward
//! is the closed form `rstd ⊙ (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂))` (fused too when the backend has
//! [`Backend::layer_norm_last_dim_backward`]). The affine part is ordinary tensor ops.

use std::sync::Arc;

use crate::autodiff::is_grad_enabled;
use crate::{no_grad, Backend, CustomBackward, CustomOp, Error, Result, Tensor};

/// LayerNorm over the last dim: `(x − μ)/√(σ² + eps)·weight + bias`, σ² biased.
pub fn layer_norm<B: Backend>(
    x: &Tensor<B>,
    weight: Option<&Tensor<B>>,
    bias: Option<&Tensor<B>>,
    eps: f64,
) -> Result<Tensor<B>> {
    x.require_float("layer_norm")?;
    let d = x
        .rank()
        .checked_sub(1)
        .ok_or_else(|| Error::invalid("layer_norm", x.shape(), "needs rank >= 1"))?;
    let width = x.dims()[d];
    for p in [weight, bias].into_iter().flatten() {
        if p.dims() != [width] {
            return Err(Error::ShapeMismatch {
                op: "layer_norm",
                lhs: x.shape().clone(),
                rhs: p.shape().clone(),
                hint: format!(" (affine parameters must have shape [{width}])"),
            });
        }
    }
    let mut y = if x.elem_count() == 0 {
        normalize_composite(x, eps)?.0
    } else if B::TRACKS_GRADIENTS && is_grad_enabled() && x.is_tracked() {
        Tensor::apply_custom(&LayerNormOp { eps }, &[x])?
    } else {
        match B::layer_norm_last_dim(x.storage(), x.layout(), eps)? {
            Some((xhat, _)) => Tensor::from_storage(xhat, x.shape().clone())?,
            None => normalize_composite(x, eps)?.0,
        }
    };
    if let Some(w) = weight {
        y = y.mul(w)?;
    }
    if let Some(b) = bias {
        y = y.add(b)?;
    }
    Ok(y)
}

/// The normalisation from tensor ops: `(x̂, rstd)` along the last dim.
fn normalize_composite<B: Backend>(x: &Tensor<B>, eps: f64) -> Result<(Tensor<B>, Tensor<B>)> {
    let d = x.rank() - 1;
    let centred = x.sub(&x.mean(&[d], true)?)?;
    let std = centred.sqr()?.mean(&[d], true)?.add_scalar(eps)?.sqrt()?;
    Ok((centred.div(&std)?, std.recip()?))
}

/// Layer norm's normalisation as one autodiff node.
struct LayerNormOp {
    eps: f64,
}

impl<B: Backend> CustomOp<B> for LayerNormOp {
    fn name(&self) -> &str {
        "layer_norm"
    }

    fn forward(&self, inputs: &[Tensor<B>]) -> Result<(Tensor<B>, Arc<dyn CustomBackward<B>>)> {
        let x = inputs.first().ok_or_else(|| Error::CustomOp {
            name: "layer_norm".into(),
            msg: "expected one input".into(),
        })?;
        let (xhat, rstd) = match B::layer_norm_last_dim(x.storage(), x.layout(), self.eps)? {
            Some((xhat, rstd)) => {
                let mut stat_dims = x.dims().to_vec();
                if let Some(last) = stat_dims.last_mut() {
                    *last = 1;
                }
                (
                    Tensor::from_storage(xhat, x.shape().clone())?,
                    Tensor::from_storage(rstd, stat_dims)?,
                )
            }
            None => normalize_composite(x, self.eps)?,
        };
        let saved = xhat.clone();
        let backward = move |grad: &Tensor<B>| -> Result<Vec<Option<Tensor<B>>>> {
            Ok(vec![Some(layer_norm_vjp(&saved, &rstd, grad)?)])
        };
        Ok((xhat, Arc::new(backward)))
    }
}

/// `rstd ⊙ (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂))` along the last dim.
fn layer_norm_vjp<B: Backend>(
    xhat: &Tensor<B>,
    rstd: &Tensor<B>,
    grad: &Tensor<B>,
) -> Result<Tensor<B>> {
    if let Some(s) = B::layer_norm_last_dim_backward(
        xhat.storage(),
        xhat.layout(),
        rstd.storage(),
        rstd.layout(),
        grad.storage(),
        grad.layout(),
    )? {
        return Tensor::from_storage(s, xhat.shape().clone());
    }
    let d = xhat.rank() - 1;
    let mean_g = grad.mean(&[d], true)?;
    let mean_gx = grad.mul(xhat)?.mean(&[d], true)?;
    grad.sub(&mean_g)?.sub(&xhat.mul(&mean_gx)?)?.mul(rstd)
}

/// Running statistics of a batch-norm layer. `num_batches_tracked` mirrors PyTorch's buffer.
#[derive(Clone, Debug)]
pub struct BatchNormStats<B: Backend> {
    pub running_mean: Tensor<B>,
    pub running_var: Tensor<B>,
    pub num_batches_tracked: i64,
}

/// Batch norm over dim 1 of `(B, C)`, `(B, C, N)` (1-d) or `(B, C, H, W)` (2-d): statistics over
/// every other dim. In training it normalises with the batch mean and biased variance and returns
/// the updated running statistics (unbiased variance, `momentum`, `num_batches_tracked + 1`); in
/// evaluation it uses `stats` and returns them unchanged.
pub fn batch_norm<B: Backend>(
    x: &Tensor<B>,
    stats: &BatchNormStats<B>,
    weight: Option<&Tensor<B>>,
    bias: Option<&Tensor<B>>,
    training: bool,
    momentum: f64,
    eps: f64,
) -> Result<(Tensor<B>, BatchNormStats<B>)> {
    x.require_float("batch_norm")?;
    if x.rank() < 2 {
        return Err(Error::invalid("batch_norm", x.shape(), "needs (B, C, …)"));
    }
    let c = x.dims()[1];
    for p in [
        Some(&stats.running_mean),
        Some(&stats.running_var),
        weight,
        bias,
    ]
    .into_iter()
    .flatten()
    {
        if p.dims() != [c] {
            return Err(Error::ShapeMismatch {
                op: "batch_norm",
                lhs: x.shape().clone(),
                rhs: p.shape().clone(),
                hint: format!(" (per-channel tensors must have shape [{c}])"),
            });
        }
    }
    // Per-channel vectors broadcast as (C, 1, …, 1).
    let mut bshape = vec![1; x.rank() - 1];
    bshape[0] = c;
    let per_channel = |t: &Tensor<B>| t.reshape(bshape.clone());
    let axes: Vec<usize> = (0..x.rank()).filter(|&a| a != 1).collect();
    let count: usize = axes.iter().map(|&a| x.dims()[a]).product();

    let (y, new_stats) = if training {
        if count < 2 {
            return Err(Error::invalid(
                "batch_norm",
                x.shape(),
                "training needs more than one value per channel (PyTorch raises here too)",
            ));
        }
        let mean = x.mean(&axes, true)?;
        let centred = x.sub(&mean)?;
        let var = centred.sqr()?.mean(&axes, true)?;
        let y = centred.div(&var.add_scalar(eps)?.sqrt()?)?;
        let new_stats = no_grad(|| -> Result<BatchNormStats<B>> {
            let batch_mean = mean.detach().reshape(c)?;
            let unbiased = var
                .detach()
                .reshape(c)?
                .mul_scalar(count as f64 / (count - 1) as f64)?;
            Ok(BatchNormStats {
                running_mean: stats
                    .running_mean
                    .affine(1.0 - momentum, 0.0)?
                    .add(&batch_mean.mul_scalar(momentum)?)?,
                running_var: stats
                    .running_var
                    .affine(1.0 - momentum, 0.0)?
                    .add(&unbiased.mul_scalar(momentum)?)?,
                num_batches_tracked: stats.num_batches_tracked + 1,
            })
        })?;
        (y, new_stats)
    } else {
        let mean = per_channel(&stats.running_mean.detach())?;
        let std = per_channel(&stats.running_var.detach().add_scalar(eps)?.sqrt()?)?;
        (x.sub(&mean)?.div(&std)?, stats.clone())
    };
    let mut y = y;
    if let Some(w) = weight {
        y = y.mul(&per_channel(w)?)?;
    }
    if let Some(b) = bias {
        y = y.add(&per_channel(b)?)?;
    }
    Ok((y, new_stats))
}
