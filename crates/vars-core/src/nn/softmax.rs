//! Numerically stable softmax and log-softmax along one dim (max-subtracted; the max is a
//! constant shift, so it is detached: the result and its gradient are unchanged by it).

use crate::{Backend, Result, Tensor};

/// `exp(x − max) / Σ exp(x − max)` along `dim`.
pub fn softmax<B: Backend>(x: &Tensor<B>, dim: usize) -> Result<Tensor<B>> {
    x.require_float("softmax")?;
    let shifted = x.sub(&x.max(&[dim], true)?.detach())?;
    let e = shifted.exp()?;
    e.div(&e.sum(&[dim], true)?)
}

/// `x − max − log Σ exp(x − max)` along `dim`.
pub fn log_softmax<B: Backend>(x: &Tensor<B>, dim: usize) -> Result<Tensor<B>> {
    x.require_float("log_softmax")?;
    let shifted = x.sub(&x.max(&[dim], true)?.detach())?;
    shifted.sub(&shifted.exp()?.sum(&[dim], true)?.log()?)
}
