//! Batched matrix multiplication with broadcast batch dims.
//!
//! `(…, m, k) × (…, k, n) → (…, m, n)`. Batch dims broadcast like elementwise ops (as stride-0
//! views); transposed operands are passed to the backend as strides, never copied.

use super::Tensor;
use crate::autodiff::Op;
use crate::{Backend, Error, Result, Shape};

impl<B: Backend> Tensor<B> {
    /// Matrix product over the last two dims, broadcasting the leading (batch) dims.
    pub fn matmul(&self, rhs: &Self) -> Result<Self> {
        self.same_dtype_device("matmul", rhs)?;
        if self.rank() < 2 || rhs.rank() < 2 {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                lhs: self.shape().clone(),
                rhs: rhs.shape().clone(),
                hint: " (both operands need rank >= 2)".into(),
            });
        }
        let (ld, rd) = (self.dims(), rhs.dims());
        let (m, k) = (ld[ld.len() - 2], ld[ld.len() - 1]);
        let (k2, n) = (rd[rd.len() - 2], rd[rd.len() - 1]);
        if k != k2 {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                lhs: self.shape().clone(),
                rhs: rhs.shape().clone(),
                hint: format!(" (inner dims {k} and {k2} differ)"),
            });
        }
        let batch = Shape::new(&ld[..ld.len() - 2])
            .broadcast_with("matmul", &Shape::new(&rd[..rd.len() - 2]))?;
        let with = |a: usize, b: usize| {
            let mut d = batch.dims().to_vec();
            d.extend([a, b]);
            Shape::new(d)
        };
        let lhs = self.broadcast_as(with(m, k))?;
        let rhs = rhs.broadcast_as(with(k, n))?;
        let storage = B::matmul(lhs.storage(), lhs.layout(), rhs.storage(), rhs.layout())?;
        Ok(Self::from_op(storage, with(m, n), &[&lhs, &rhs], || {
            Op::Matmul {
                lhs: lhs.detach(),
                rhs: rhs.detach(),
            }
        }))
    }
}
