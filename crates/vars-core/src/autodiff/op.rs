//! The saved state of each differentiable op and its backward rule.
//!
//! Each variant keeps only what its vector-Jacobian product needs. Saved tensors are untracked
//! handles (sharing storage), so a node never keeps a graph alive through them. Every rule
//! returns one gradient per input edge, shaped like that input.

use super::custom::CustomBackward;
use crate::{Backend, DType, Result, Shape, Tensor};
use std::sync::Arc;

pub(crate) enum Op<B: Backend> {
    // ---- unary ----
    Neg,
    Exp {
        out: Tensor<B>,
    },
    Log {
        x: Tensor<B>,
    },
    Sqrt {
        out: Tensor<B>,
    },
    Sqr {
        x: Tensor<B>,
    },
    Abs {
        x: Tensor<B>,
    },
    Relu {
        x: Tensor<B>,
    },
    Gelu {
        x: Tensor<B>,
    },
    Erf {
        x: Tensor<B>,
    },
    Sigmoid {
        out: Tensor<B>,
    },
    Tanh {
        out: Tensor<B>,
    },
    Recip {
        out: Tensor<B>,
    },
    Powf {
        x: Tensor<B>,
        exponent: f64,
    },
    Scale {
        factor: f64,
    },
    ClampMin {
        x: Tensor<B>,
        bound: f64,
    },
    ClampMax {
        x: Tensor<B>,
        bound: f64,
    },
    /// Piecewise constant (sign, step): gradient zero.
    ZeroGrad,
    // ---- binary (operands already broadcast to the output shape) ----
    Add,
    Sub,
    Mul {
        lhs: Tensor<B>,
        rhs: Tensor<B>,
    },
    Div {
        lhs: Tensor<B>,
        rhs: Tensor<B>,
    },
    /// `maximum`/`minimum`: the gradient goes to the winning side; ties split it.
    Select {
        lhs: Tensor<B>,
        rhs: Tensor<B>,
        maximum: bool,
    },
    Where {
        cond: Tensor<B>,
    },
    /// `shrink(z, t)`; `gelu` selects the GELU form over the soft threshold.
    Shrink {
        z: Tensor<B>,
        t: Tensor<B>,
        gelu: bool,
    },
    // ---- reductions (keepdim outputs) ----
    Sum {
        src_shape: Shape,
    },
    Extremum {
        x: Tensor<B>,
        out: Tensor<B>,
    },
    NormL2 {
        x: Tensor<B>,
        out: Tensor<B>,
    },
    // ---- linear algebra ----
    Matmul {
        lhs: Tensor<B>,
        rhs: Tensor<B>,
    },
    // ---- layout ----
    Identity,
    Reshape {
        src_shape: Shape,
    },
    Permute {
        perm: Vec<usize>,
    },
    Narrow {
        dim: usize,
        start: usize,
        src_shape: Shape,
    },
    BroadcastAs {
        src_shape: Shape,
    },
    Cast {
        src_dtype: DType,
    },
    IndexSelect {
        dim: usize,
        indices: Tensor<B>,
        src_size: usize,
    },
    Cat {
        dim: usize,
        sizes: Vec<usize>,
    },
    Unfold2d {
        window: crate::Window2d,
        input_hw: (usize, usize),
    },
    Fold2d {
        window: crate::Window2d,
    },
    // ---- user-defined ----
    Custom {
        name: String,
        backward: Arc<dyn CustomBackward<B>>,
    },
}

type Grads<B> = Vec<Option<Tensor<B>>>;

fn one<B: Backend>(g: Tensor<B>) -> Result<Grads<B>> {
    Ok(vec![Some(g)])
}

impl<B: Backend> Op<B> {
    /// Vector-Jacobian product: gradients for the inputs given `g`, the gradient of the output.
    /// Runs under `no_grad`.
    pub(crate) fn backward(&self, g: &Tensor<B>, n_inputs: usize) -> Result<Grads<B>> {
        match self {
            Op::Neg => one(g.neg()?),
            Op::Exp { out } => one(g.mul(out)?),
            Op::Log { x } => one(g.div(x)?),
            Op::Sqrt { out } => one(g.div(&out.mul_scalar(2.0)?)?),
            Op::Sqr { x } => one(g.mul(&x.mul_scalar(2.0)?)?),
            Op::Abs { x } => one(g.mul(&x.sign()?)?),
            Op::Relu { x } => one(g.mul(&x.unary(crate::UnaryOp::Step)?)?),
            Op::Gelu { x } => one(g.mul(&x.unary(crate::UnaryOp::GeluDerivative)?)?),
            Op::Erf { x } => {
                // d/dx erf(x) = 2/√π · exp(−x²)
                let d = x
                    .sqr()?
                    .neg()?
                    .exp()?
                    .mul_scalar(std::f64::consts::FRAC_2_SQRT_PI)?;
                one(g.mul(&d)?)
            }
            Op::Sigmoid { out } => one(g.mul(&out.mul(&out.affine(-1.0, 1.0)?)?)?),
            Op::Tanh { out } => one(g.mul(&out.sqr()?.affine(-1.0, 1.0)?)?),
            Op::Recip { out } => one(g.mul(&out.sqr()?.neg()?)?),
            Op::Powf { x, exponent } => {
                one(g.mul(&x.powf(exponent - 1.0)?.mul_scalar(*exponent)?)?)
            }
            Op::Scale { factor } => one(g.mul_scalar(*factor)?),
            Op::ClampMin { x, bound } => {
                let pass = x.ge(&Tensor::full((), *bound, x.dtype(), x.device())?)?;
                one(g.mul(&pass)?)
            }
            Op::ClampMax { x, bound } => {
                let pass = x.le(&Tensor::full((), *bound, x.dtype(), x.device())?)?;
                one(g.mul(&pass)?)
            }
            Op::ZeroGrad => one(g.zeros_like()?),
            Op::Add => Ok(vec![Some(g.clone()), Some(g.clone())]),
            Op::Sub => Ok(vec![Some(g.clone()), Some(g.neg()?)]),
            Op::Mul { lhs, rhs } => Ok(vec![Some(g.mul(rhs)?), Some(g.mul(lhs)?)]),
            Op::Div { lhs, rhs } => {
                let gl = g.div(rhs)?;
                let gr = gl.mul(lhs)?.div(rhs)?.neg()?;
                Ok(vec![Some(gl), Some(gr)])
            }
            Op::Select { lhs, rhs, maximum } => {
                // PyTorch's rule: the winner takes the gradient, ties split it in half.
                let (lhs_wins, rhs_wins) = if *maximum {
                    (lhs.gt(rhs)?, lhs.lt(rhs)?)
                } else {
                    (lhs.lt(rhs)?, lhs.gt(rhs)?)
                };
                let tie = lhs.eq(rhs)?.mul_scalar(0.5)?;
                Ok(vec![
                    Some(g.mul(&lhs_wins.add(&tie)?)?),
                    Some(g.mul(&rhs_wins.add(&tie)?)?),
                ])
            }
            Op::Where { cond } => {
                let zero = g.zeros_like()?;
                Ok(vec![
                    Some(Tensor::where_cond(cond, g, &zero)?),
                    Some(Tensor::where_cond(cond, &zero, g)?),
                ])
            }
            Op::Shrink { z, t, gelu } => {
                // u = |z| − t; ∂/∂z = sign(z)²·g′(u), ∂/∂t = −sign(z)·g′(u).
                let u = z.abs()?.sub(t)?;
                let dg = u.unary(if *gelu {
                    crate::UnaryOp::GeluDerivative
                } else {
                    crate::UnaryOp::Step
                })?;
                let s = z.sign()?;
                let gd = g.mul(&dg)?;
                Ok(vec![Some(gd.mul(&s.sqr()?)?), Some(gd.mul(&s)?.neg()?)])
            }
            Op::Sum { src_shape } => one(g.broadcast_as(src_shape.clone())?),
            Op::Extremum { x, out } => {
                let src = x.shape().clone();
                let hit = x.eq(&out.broadcast_as(src.clone())?)?;
                let axes: Vec<usize> = (0..x.rank())
                    .filter(|&i| out.dims()[i] != x.dims()[i])
                    .collect();
                let count = hit.sum(&axes, true)?;
                one(hit.mul(&g.div(&count)?.broadcast_as(src)?)?)
            }
            Op::NormL2 { x, out } => {
                let src = x.shape().clone();
                let zero = out.zeros_like()?;
                let is_zero = out.eq(&zero)?;
                let safe = Tensor::where_cond(&is_zero, &out.ones_like()?, out)?;
                let scale = Tensor::where_cond(&is_zero, &zero, &g.div(&safe)?)?;
                one(x.mul(&scale.broadcast_as(src)?)?)
            }
            Op::Matmul { lhs, rhs } => {
                Ok(vec![Some(g.matmul(&rhs.t()?)?), Some(lhs.t()?.matmul(g)?)])
            }
            Op::Identity => one(g.clone()),
            Op::Reshape { src_shape } => one(g.reshape(src_shape.clone())?),
            Op::Permute { perm } => {
                let mut inverse = vec![0; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    inverse[p] = i;
                }
                one(g.permute(&inverse)?)
            }
            Op::Narrow {
                dim,
                start,
                src_shape,
            } => one(g.pad_into(*dim, *start, src_shape.dims()[*dim])?),
            Op::BroadcastAs { src_shape } => {
                let extra = g.rank() - src_shape.rank();
                let axes: Vec<usize> = (0..g.rank())
                    .filter(|&i| {
                        i < extra || (src_shape.dims()[i - extra] == 1 && g.dims()[i] != 1)
                    })
                    .collect();
                one(g.sum(&axes, true)?.reshape(src_shape.clone())?)
            }
            Op::Cast { src_dtype } => one(g.to_dtype(*src_dtype)?),
            Op::IndexSelect {
                dim,
                indices,
                src_size,
            } => one(g.index_add_into(*dim, indices, *src_size)?),
            Op::Cat { dim, sizes } => {
                let mut start = 0;
                let mut grads = Vec::with_capacity(sizes.len());
                for &len in sizes {
                    grads.push(Some(g.narrow(*dim, start, len)?));
                    start += len;
                }
                Ok(grads)
            }
            Op::Unfold2d { window, input_hw } => one(g.fold2d(*window, *input_hw)?),
            Op::Fold2d { window } => one(g.unfold2d(*window, 0.0)?),
            Op::Custom { name, backward } => {
                let grads = backward.backward(g)?;
                if grads.len() != n_inputs {
                    return Err(crate::Error::CustomOp {
                        name: name.clone(),
                        msg: format!(
                            "backward returned {} gradients for {n_inputs} inputs",
                            grads.len()
                        ),
                    });
                }
                Ok(grads)
            }
        }
    }

    /// The op's name, for error messages.
    pub(crate) fn name(&self) -> &str {
        match self {
            Op::Neg => "neg",
            Op::Exp { .. } => "exp",
            Op::Log { .. } => "log",
            Op::Sqrt { .. } => "sqrt",
            Op::Sqr { .. } => "sqr",
            Op::Abs { .. } => "abs",
            Op::Relu { .. } => "relu",
            Op::Gelu { .. } => "gelu",
            Op::Erf { .. } => "erf",
            Op::Sigmoid { .. } => "sigmoid",
            Op::Tanh { .. } => "tanh",
            Op::Recip { .. } => "recip",
            Op::Powf { .. } => "powf",
            Op::Scale { .. } => "affine",
            Op::ClampMin { .. } => "clamp_min",
            Op::ClampMax { .. } => "clamp_max",
            Op::ZeroGrad => "piecewise-constant op",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul { .. } => "mul",
            Op::Div { .. } => "div",
            Op::Select { maximum: true, .. } => "maximum",
            Op::Select { maximum: false, .. } => "minimum",
            Op::Where { .. } => "where_cond",
            Op::Shrink { gelu: true, .. } => "gelu_shrink",
            Op::Shrink { gelu: false, .. } => "soft_threshold",
            Op::Unfold2d { .. } => "unfold2d",
            Op::Fold2d { .. } => "fold2d",
            Op::Sum { .. } => "sum",
            Op::Extremum { .. } => "max/min",
            Op::NormL2 { .. } => "norm_l2",
            Op::Matmul { .. } => "matmul",
            Op::Identity => "contiguous",
            Op::Reshape { .. } => "reshape",
            Op::Permute { .. } => "permute",
            Op::Narrow { .. } => "narrow",
            Op::BroadcastAs { .. } => "broadcast_as",
            Op::Cast { .. } => "to_dtype",
            Op::IndexSelect { .. } => "index_select",
            Op::Cat { .. } => "cat",
            Op::Custom { name, .. } => name,
        }
    }
}
