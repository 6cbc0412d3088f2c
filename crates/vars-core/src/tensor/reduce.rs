//! Reductions over axes: sum, mean, max/min, argmax/argmin, L1 and L2 norms.
//!
//! The backend reduces with `keepdim` semantics; `keepdim = false` is a free reshape afterwards.
//! Results are deterministic for a given input (see [`crate::Backend`]).

use super::Tensor;
use crate::autodiff::Op;
use crate::{Backend, Error, ReduceOp, Result};

impl<B: Backend> Tensor<B> {
    fn reduce_keepdim(
        &self,
        op: ReduceOp,
        axes: &[usize],
    ) -> Result<(crate::Layout, B::Storage, Vec<usize>)> {
        let axes = self.normalize_axes(op.name(), axes)?;
        let storage = B::reduce(op, self.storage(), self.layout(), &axes)?;
        let mut dims = self.dims().to_vec();
        for &a in &axes {
            dims[a] = 1;
        }
        Ok((crate::Layout::contiguous(dims), storage, axes))
    }

    fn squeeze_axes(t: Self, axes: &[usize], keepdim: bool) -> Result<Self> {
        if keepdim {
            return Ok(t);
        }
        let dims: Vec<usize> = t
            .dims()
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect();
        t.reshape(dims)
    }

    /// Sum over `axes`.
    pub fn sum(&self, axes: &[usize], keepdim: bool) -> Result<Self> {
        let (layout, storage, axes) = self.reduce_keepdim(ReduceOp::Sum, axes)?;
        let src_shape = self.shape().clone();
        let out = Self::from_op(storage, layout.shape().clone(), &[self], || Op::Sum {
            src_shape,
        });
        Self::squeeze_axes(out, &axes, keepdim)
    }

    /// Sum of all elements, as a rank-0 tensor.
    pub fn sum_all(&self) -> Result<Self> {
        let axes: Vec<usize> = (0..self.rank()).collect();
        self.sum(&axes, false)
    }

    /// Mean over `axes`.
    pub fn mean(&self, axes: &[usize], keepdim: bool) -> Result<Self> {
        self.require_float("mean")?;
        let axes = self.normalize_axes("mean", axes)?;
        let n: usize = axes.iter().map(|&a| self.dims()[a]).product();
        self.sum(&axes, keepdim)?.mul_scalar(1.0 / n as f64)
    }

    /// Mean of all elements, as a rank-0 tensor.
    pub fn mean_all(&self) -> Result<Self> {
        let axes: Vec<usize> = (0..self.rank()).collect();
        self.mean(&axes, false)
    }

    fn extremum(&self, op: ReduceOp, axes: &[usize], keepdim: bool) -> Result<Self> {
        if self.elem_count() == 0 {
            return Err(Error::invalid(
                op.name(),
                self.shape(),
                "reduction of an empty tensor",
            ));
        }
        let (layout, storage, axes) = self.reduce_keepdim(op, axes)?;
        let out = Self::from_op_with_output(storage, layout.shape().clone(), &[self], |out| {
            Op::Extremum {
                x: self.detach(),
                out,
            }
        });
        Self::squeeze_axes(out, &axes, keepdim)
    }

    /// Maximum over `axes`. The gradient is split evenly between tied maxima (like `torch.amax`).
    pub fn max(&self, axes: &[usize], keepdim: bool) -> Result<Self> {
        self.extremum(ReduceOp::Max, axes, keepdim)
    }

    /// Minimum over `axes`; ties share the gradient.
    pub fn min(&self, axes: &[usize], keepdim: bool) -> Result<Self> {
        self.extremum(ReduceOp::Min, axes, keepdim)
    }

    fn arg_extremum(&self, op: ReduceOp, dim: usize, keepdim: bool) -> Result<Self> {
        if self.elem_count() == 0 {
            return Err(Error::invalid(
                op.name(),
                self.shape(),
                "reduction of an empty tensor",
            ));
        }
        let (layout, storage, axes) = self.reduce_keepdim(op, &[dim])?;
        let out = Self::from_storage(storage, layout.shape().clone())?;
        Self::squeeze_axes(out, &axes, keepdim)
    }

    /// Index (`I64`) of the first maximum along `dim`.
    pub fn argmax(&self, dim: usize, keepdim: bool) -> Result<Self> {
        self.arg_extremum(ReduceOp::ArgMax, dim, keepdim)
    }

    /// Index (`I64`) of the first minimum along `dim`.
    pub fn argmin(&self, dim: usize, keepdim: bool) -> Result<Self> {
        self.arg_extremum(ReduceOp::ArgMin, dim, keepdim)
    }

    /// `Σ|x|` over `axes`.
    pub fn norm_l1(&self, axes: &[usize], keepdim: bool) -> Result<Self> {
        self.abs()?.sum(axes, keepdim)
    }

    /// `√(Σx²)` over `axes`. Its gradient `x/‖x‖` is defined as 0 where the norm is 0 (PyTorch's
    /// `vector_norm` convention) instead of NaN.
    pub fn norm_l2(&self, axes: &[usize], keepdim: bool) -> Result<Self> {
        self.require_float("norm_l2")?;
        let axes = self.normalize_axes("norm_l2", axes)?;
        let out = crate::autodiff::no_grad(|| self.sqr()?.sum(&axes, true)?.sqrt())?;
        let out = out.attach(&[self], |out| Op::NormL2 {
            x: self.detach(),
            out,
        });
        Self::squeeze_axes(out, &axes, keepdim)
    }
}
