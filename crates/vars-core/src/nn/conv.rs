//! 2-D convolution (cross-correlation, PyTorch's `conv2d`) with stride, padding, dilation and
//! groups; weight layout `(out, in/groups, kh, kw)`.
//!
//! Lowered to im2col ([`Tensor::unfold2d`]) and one broadcast batched GEMM per group:
//! `(g, O/g, C/g·kh·kw) × (N, g, C/g·kh·kw, L)`. A 1×1 stride-1 unpadded convolution skips the
//! im2col (a reshape). The backward passes come from the GEMM and `unfold2d` (whose adjoint is
//! col2im), so they are exact for the computation performed.

use crate::{Backend, Error, Result, Tensor, Window2d};

pub fn conv2d<B: Backend>(
    x: &Tensor<B>,
    weight: &Tensor<B>,
    bias: Option<&Tensor<B>>,
    window: Window2d,
    groups: usize,
) -> Result<Tensor<B>> {
    let bad = |msg: String| Error::ShapeMismatch {
        op: "conv2d",
        lhs: x.shape().clone(),
        rhs: weight.shape().clone(),
        hint: format!(" ({msg})"),
    };
    if x.rank() != 4 || weight.rank() != 4 {
        return Err(bad(
            "input must be (N, C, H, W) and weight (O, C/groups, kh, kw)".into(),
        ));
    }
    let [n, c, h, w] = [x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]];
    let [o, cg, kh, kw] = [
        weight.dims()[0],
        weight.dims()[1],
        weight.dims()[2],
        weight.dims()[3],
    ];
    if groups == 0 || c % groups != 0 || o % groups != 0 || cg != c / groups {
        return Err(bad(format!(
            "groups = {groups} needs C and O divisible by it and weight dim 1 = C/groups = {}",
            c.checked_div(groups).unwrap_or(0)
        )));
    }
    if (kh, kw) != window.kernel {
        return Err(bad(format!(
            "window kernel {:?} differs from the weight's {kh}×{kw}",
            window.kernel
        )));
    }
    let (ho, wo) = window.output_size("conv2d", x.shape(), h, w)?;
    let pointwise = window == Window2d::square(1, 1, 0);
    let cols = if pointwise {
        x.reshape([n, c, h * w])?
    } else {
        x.unfold2d(window, 0.0)?
    };
    let k = cg * kh * kw;
    let cols = cols.reshape([n, groups, k, ho * wo])?;
    let wm = weight.reshape([groups, o / groups, k])?;
    let y = wm.matmul(&cols)?.reshape([n, o, ho, wo])?;
    match bias {
        Some(b) if b.dims() != [o] => Err(bad(format!("bias must be [{o}], got {}", b.shape()))),
        Some(b) => y.add(&b.reshape([o, 1, 1])?),
        None => Ok(y),
    }
}
