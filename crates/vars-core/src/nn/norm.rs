//! Layer norm and batch norm with PyTorch's semantics (spec §0): biased variance inside the
//! normalisation; for batch norm in training, a running-statistics update with the *unbiased*
//! variance, `running = (1 − momentum)·running + momentum·batch_stat`.

use crate::{no_grad, Backend, Error, Result, Tensor};

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
    let centred = x.sub(&x.mean(&[d], true)?)?;
    let var = centred.sqr()?.mean(&[d], true)?;
    let mut y = centred.div(&var.add_scalar(eps)?.sqrt()?)?;
    if let Some(w) = weight {
        y = y.mul(w)?;
    }
    if let Some(b) = bias {
        y = y.add(b)?;
    }
    Ok(y)
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
