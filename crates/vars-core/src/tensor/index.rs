//! Gather and join: `index_select` (with its adjoint `index_add` as the backward) and `cat`.

use super::Tensor;
use crate::autodiff::Op;
use crate::{Backend, DType, Error, Layout, Result};

impl<B: Backend> Tensor<B> {
    /// Picks entries of `dim` by a rank-1 `I64` index tensor: `out[.., j, ..] = self[.., idx[j], ..]`.
    pub fn index_select(&self, dim: usize, indices: &Self) -> Result<Self> {
        self.shape().dim("index_select", dim)?;
        if indices.dtype() != DType::I64 || indices.rank() != 1 {
            return Err(Error::invalid(
                "index_select",
                indices.shape(),
                format!(
                    "indices must be a rank-1 i64 tensor, got {} of rank {}",
                    indices.dtype(),
                    indices.rank()
                ),
            ));
        }
        let storage = B::index_select(
            self.storage(),
            self.layout(),
            dim,
            indices.storage(),
            indices.layout(),
        )?;
        let mut dims = self.dims().to_vec();
        dims[dim] = indices.elem_count();
        let src_size = self.dims()[dim];
        Ok(Self::from_op(storage, dims.into(), &[self], || {
            Op::IndexSelect {
                dim,
                indices: indices.detach(),
                src_size,
            }
        }))
    }

    /// The adjoint of `index_select`: a zero tensor with `dim` of size `dim_size`, with slice `k`
    /// of `self` added into slice `indices[k]`. Not differentiable (used by backward passes).
    pub fn index_add_into(&self, dim: usize, indices: &Self, dim_size: usize) -> Result<Self> {
        let storage = B::index_add(
            self.storage(),
            self.layout(),
            dim,
            indices.storage(),
            indices.layout(),
            dim_size,
        )?;
        let mut dims = self.dims().to_vec();
        dims[dim] = dim_size;
        Self::from_storage(storage, dims)
    }

    /// Concatenates along `dim`; all other dims must agree.
    pub fn cat(tensors: &[&Self], dim: usize) -> Result<Self> {
        let first = *tensors
            .first()
            .ok_or_else(|| Error::invalid("cat", &crate::Shape::default(), "no tensors given"))?;
        first.shape().dim("cat", dim)?;
        let mut total = 0;
        for t in tensors {
            first.same_dtype_device("cat", t)?;
            let compatible = t.rank() == first.rank()
                && t.dims()
                    .iter()
                    .zip(first.dims())
                    .enumerate()
                    .all(|(i, (a, b))| i == dim || a == b);
            if !compatible {
                return Err(Error::ShapeMismatch {
                    op: "cat",
                    lhs: first.shape().clone(),
                    rhs: t.shape().clone(),
                    hint: format!(" (only dim {dim} may differ)"),
                });
            }
            total += t.dims()[dim];
        }
        let mut dims = first.dims().to_vec();
        dims[dim] = total;
        let out_layout = Layout::contiguous(dims.clone());
        let mut storage = B::full(first.device(), out_layout.elem_count(), first.dtype(), 0.0)?;
        let mut start = 0;
        for t in tensors {
            let len = t.dims()[dim];
            B::copy_into(
                t.storage(),
                t.layout(),
                &mut storage,
                &out_layout.narrow(dim, start, len)?,
            )?;
            start += len;
        }
        let sizes: Vec<usize> = tensors.iter().map(|t| t.dims()[dim]).collect();
        Ok(Self::from_op(storage, dims.into(), tensors, || Op::Cat {
            dim,
            sizes,
        }))
    }

    /// Stacks equally shaped tensors along a new dim.
    pub fn stack(tensors: &[&Self], dim: usize) -> Result<Self> {
        let expanded = tensors
            .iter()
            .map(|t| t.unsqueeze(dim))
            .collect::<Result<Vec<_>>>()?;
        Self::cat(&expanded.iter().collect::<Vec<_>>(), dim)
    }

    /// Places `self` at `start..` of `dim` inside a zero tensor whose `dim` has size `size`
    /// (the adjoint of `narrow`). Not differentiable (used by backward passes).
    pub fn pad_into(&self, dim: usize, start: usize, size: usize) -> Result<Self> {
        let mut dims = self.dims().to_vec();
        let len = *dims.get(dim).ok_or_else(|| Error::DimOutOfRange {
            op: "pad_into",
            dim,
            shape: self.shape().clone(),
        })?;
        if start + len > size {
            return Err(Error::invalid(
                "pad_into",
                self.shape(),
                format!(
                    "range {start}..{} exceeds the target size {size} of dim {dim}",
                    start + len
                ),
            ));
        }
        dims[dim] = size;
        let out_layout = Layout::contiguous(dims.clone());
        let mut storage = B::full(self.device(), out_layout.elem_count(), self.dtype(), 0.0)?;
        B::copy_into(
            self.storage(),
            self.layout(),
            &mut storage,
            &out_layout.narrow(dim, start, len)?,
        )?;
        Self::from_storage(storage, dims)
    }
}
