//! Dropout and drop-path (stochastic depth), seeded by the caller through the counter-based
//! generator of [`crate::rng`], so a run is reproducible on every backend.

use crate::{Backend, Error, Result, Tensor};

fn check_p<B: Backend>(op: &'static str, x: &Tensor<B>, p: f64) -> Result<()> {
    x.require_float(op)?;
    if !(0.0..1.0).contains(&p) {
        return Err(Error::invalid(
            op,
            x.shape(),
            format!("drop probability {p} outside [0, 1)"),
        ));
    }
    Ok(())
}

/// Zeroes each element with probability `p` and scales the rest by `1/(1 − p)`; identity when not
/// training or `p = 0`.
pub fn dropout<B: Backend>(x: &Tensor<B>, p: f64, training: bool, seed: u64) -> Result<Tensor<B>> {
    check_p("dropout", x, p)?;
    if !training || p == 0.0 {
        return Ok(x.clone());
    }
    let u = Tensor::rand_uniform(x.shape().clone(), 0.0, 1.0, x.dtype(), seed, x.device())?;
    let keep = u.lt(&Tensor::scalar(1.0 - p, x.dtype(), x.device())?)?;
    x.mul(&keep.mul_scalar(1.0 / (1.0 - p))?)
}

/// Per-sample stochastic depth (spec §4.6): the whole sample `i` (dim 0) is kept with mask
/// `floor(1 − p + U[0,1))` and scaled by `1/(1 − p)`; identity when not training or `p = 0`.
pub fn drop_path<B: Backend>(
    x: &Tensor<B>,
    p: f64,
    training: bool,
    seed: u64,
) -> Result<Tensor<B>> {
    check_p("drop_path", x, p)?;
    if !training || p == 0.0 {
        return Ok(x.clone());
    }
    let mut shape = vec![1; x.rank()];
    shape[0] = x.dims()[0];
    let u = Tensor::rand_uniform(shape, 0.0, 1.0, x.dtype(), seed, x.device())?;
    // floor(1 − p + u) ∈ {0, 1} is 1 exactly when u ≥ p.
    let keep = u.ge(&Tensor::scalar(p, x.dtype(), x.device())?)?;
    x.mul(&keep.mul_scalar(1.0 / (1.0 - p))?)
}
