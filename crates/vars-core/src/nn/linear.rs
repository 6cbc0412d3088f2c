//! `y = x·Wᵀ + b` with `W` stored `(out, in)` (PyTorch's layout); `x` may have any leading dims.

use crate::{Backend, Error, Result, Tensor};

pub fn linear<B: Backend>(
    x: &Tensor<B>,
    weight: &Tensor<B>,
    bias: Option<&Tensor<B>>,
) -> Result<Tensor<B>> {
    if weight.rank() != 2 || x.rank() == 0 || x.dims()[x.rank() - 1] != weight.dims()[1] {
        return Err(Error::ShapeMismatch {
            op: "linear",
            lhs: x.shape().clone(),
            rhs: weight.shape().clone(),
            hint: " (weight must be (out, in) with in = the input's last dim)".into(),
        });
    }
    let y = if x.rank() == 1 {
        x.unsqueeze(0)?.matmul(&weight.t()?)?.squeeze(0)?
    } else {
        x.matmul(&weight.t()?)?
    };
    match bias {
        Some(b) if b.dims() != [weight.dims()[0]] => Err(Error::ShapeMismatch {
            op: "linear",
            lhs: weight.shape().clone(),
            rhs: b.shape().clone(),
            hint: " (bias must be (out,))".into(),
        }),
        Some(b) => y.add(b),
        None => Ok(y),
    }
}
