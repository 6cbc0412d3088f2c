//! Layout ops. Reshape (of viewable data), permute, transpose, narrow, (un)squeeze and broadcast
//! are free: they share the storage under a new [`Layout`]. `contiguous` and `to_dtype` copy.

use super::Tensor;
use crate::autodiff::Op;
use crate::{Backend, DType, Error, Result, Shape};

impl<B: Backend> Tensor<B> {
    /// Same data, new shape (element counts must match). A view when the layout allows it,
    /// otherwise a contiguous copy first.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape.elem_count() != self.elem_count() {
            return Err(Error::ElementCount {
                op: "reshape",
                expected: shape.elem_count(),
                shape,
                got: self.elem_count(),
            });
        }
        if &shape == self.shape() {
            return Ok(self.clone());
        }
        let src_shape = self.shape().clone();
        match self.layout().reshape(&shape) {
            Some(layout) => Ok(self.view_with(layout, || Op::Reshape { src_shape })),
            None => {
                let c = self.contiguous()?;
                let layout = c
                    .layout()
                    .reshape(&shape)
                    .expect("contiguous layouts reshape");
                Ok(c.view_with(layout, || Op::Reshape { src_shape }))
            }
        }
    }

    /// Output dim `i` is input dim `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Self> {
        let layout = self.layout().permute(perm)?;
        let perm = perm.to_vec();
        Ok(self.view_with(layout, || Op::Permute { perm }))
    }

    /// Swaps two dims.
    pub fn transpose(&self, d0: usize, d1: usize) -> Result<Self> {
        let rank = self.rank();
        for d in [d0, d1] {
            if d >= rank {
                return Err(Error::DimOutOfRange {
                    op: "transpose",
                    dim: d,
                    shape: self.shape().clone(),
                });
            }
        }
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(d0, d1);
        self.permute(&perm)
    }

    /// Transpose of the last two dims (the matrix transpose of a batch of matrices).
    pub fn t(&self) -> Result<Self> {
        if self.rank() < 2 {
            return Err(Error::invalid("t", self.shape(), "needs rank >= 2"));
        }
        self.transpose(self.rank() - 2, self.rank() - 1)
    }

    /// Elements `start..start + len` of `dim`.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Self> {
        let layout = self.layout().narrow(dim, start, len)?;
        if len == self.dims()[dim] {
            return Ok(self.clone());
        }
        let src_shape = self.shape().clone();
        Ok(self.view_with(layout, || Op::Narrow {
            dim,
            start,
            src_shape,
        }))
    }

    /// Splits `dim` into `chunks` pieces of (nearly) equal size, like `torch.chunk`.
    pub fn chunk(&self, chunks: usize, dim: usize) -> Result<Vec<Self>> {
        let size = self.shape().dim("chunk", dim)?;
        if chunks == 0 {
            return Err(Error::invalid("chunk", self.shape(), "chunks must be > 0"));
        }
        let step = size.div_ceil(chunks);
        (0..size)
            .step_by(step.max(1))
            .map(|start| self.narrow(dim, start, step.min(size - start)))
            .collect()
    }

    /// Removes a size-1 dim.
    pub fn squeeze(&self, dim: usize) -> Result<Self> {
        let size = self.shape().dim("squeeze", dim)?;
        if size != 1 {
            return Err(Error::invalid(
                "squeeze",
                self.shape(),
                format!("dim {dim} has size {size}, not 1"),
            ));
        }
        let mut dims = self.dims().to_vec();
        dims.remove(dim);
        self.reshape(dims)
    }

    /// Inserts a size-1 dim at position `dim` (`0..=rank`).
    pub fn unsqueeze(&self, dim: usize) -> Result<Self> {
        if dim > self.rank() {
            return Err(Error::DimOutOfRange {
                op: "unsqueeze",
                dim,
                shape: self.shape().clone(),
            });
        }
        let mut dims = self.dims().to_vec();
        dims.insert(dim, 1);
        self.reshape(dims)
    }

    /// Flattens dims `start..=end` into one.
    pub fn flatten(&self, start: usize, end: usize) -> Result<Self> {
        if start > end || end >= self.rank() {
            return Err(Error::invalid(
                "flatten",
                self.shape(),
                format!("invalid dim range {start}..={end}"),
            ));
        }
        let d = self.dims();
        let mut dims = d[..start].to_vec();
        dims.push(d[start..=end].iter().product());
        dims.extend_from_slice(&d[end + 1..]);
        self.reshape(dims)
    }

    /// A stride-0 view repeating size-1 (or missing leading) dims up to `shape`.
    pub fn broadcast_as(&self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if &shape == self.shape() {
            return Ok(self.clone());
        }
        let layout = self.layout().broadcast_as(&shape)?;
        let src_shape = self.shape().clone();
        Ok(self.view_with(layout, || Op::BroadcastAs { src_shape }))
    }

    /// A contiguous row-major tensor with the same values (no copy when already contiguous
    /// with offset 0).
    pub fn contiguous(&self) -> Result<Self> {
        if self.is_contiguous() && self.layout().offset() == 0 {
            return Ok(self.clone());
        }
        let storage = B::copy_strided(self.storage(), self.layout())?;
        Ok(Self::from_op(
            storage,
            self.shape().clone(),
            &[self],
            || Op::Identity,
        ))
    }

    /// Converts the element type (gradients flow between float types only).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let storage = B::cast(self.storage(), self.layout(), dtype)?;
        let src = self.dtype();
        Ok(Self::from_op(
            storage,
            self.shape().clone(),
            &[self],
            || Op::Cast { src_dtype: src },
        ))
    }
}
