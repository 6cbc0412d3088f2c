//! Sliding windows over the last two dims: `unfold2d` (im2col) and its adjoint `fold2d`
//! (col2im). Convolution is `unfold` + a batched GEMM, max pooling is `unfold` (with −∞ padding)
//! + a max; both get their backward passes from these two ops.

use super::Tensor;
use crate::autodiff::Op;
use crate::{Backend, Error, Result, Shape};

/// Window geometry of a 2-D convolution or pooling, PyTorch's conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window2d {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
}

impl Window2d {
    /// A square window with dilation 1.
    pub fn square(kernel: usize, stride: usize, padding: usize) -> Self {
        Window2d {
            kernel: (kernel, kernel),
            stride: (stride, stride),
            padding: (padding, padding),
            dilation: (1, 1),
        }
    }

    /// Output grid `(Ho, Wo)` for an input grid `(h, w)`: `⌊(h + 2p − d(k − 1) − 1)/s⌋ + 1`.
    pub fn output_size(
        &self,
        op: &'static str,
        shape: &Shape,
        h: usize,
        w: usize,
    ) -> Result<(usize, usize)> {
        let axis = |size: usize, k: usize, s: usize, p: usize, d: usize| -> Option<usize> {
            if k == 0 || s == 0 || d == 0 {
                return None;
            }
            let span = d * (k - 1) + 1;
            (size + 2 * p).checked_sub(span).map(|v| v / s + 1)
        };
        match (
            axis(
                h,
                self.kernel.0,
                self.stride.0,
                self.padding.0,
                self.dilation.0,
            ),
            axis(
                w,
                self.kernel.1,
                self.stride.1,
                self.padding.1,
                self.dilation.1,
            ),
        ) {
            (Some(ho), Some(wo)) => Ok((ho, wo)),
            _ => Err(Error::invalid(
                op,
                shape,
                format!("window {self:?} does not fit a {h}×{w} input (or has a zero size/stride)"),
            )),
        }
    }
}

impl<B: Backend> Tensor<B> {
    /// im2col of `(N, C, H, W)` → `(N, C·kh·kw, Ho·Wo)`, row `c·kh·kw + i·kw + j` (the order of
    /// `torch.nn.functional.unfold`); out-of-image positions read `pad_value`.
    pub fn unfold2d(&self, window: Window2d, pad_value: f64) -> Result<Self> {
        if self.rank() != 4 {
            return Err(Error::invalid(
                "unfold2d",
                self.shape(),
                "expected (N, C, H, W)",
            ));
        }
        let [n, c, h, w] = [
            self.dims()[0],
            self.dims()[1],
            self.dims()[2],
            self.dims()[3],
        ];
        let (ho, wo) = window.output_size("unfold2d", self.shape(), h, w)?;
        let storage = B::unfold2d(self.storage(), self.layout(), window, pad_value)?;
        let shape = Shape::new([n, c * window.kernel.0 * window.kernel.1, ho * wo]);
        Ok(Self::from_op(storage, shape, &[self], || Op::Unfold2d {
            window,
            input_hw: (h, w),
        }))
    }

    /// col2im, the adjoint of [`Tensor::unfold2d`] with zero padding: `(N, C·kh·kw, Ho·Wo)` →
    /// `(N, C, H, W)`, summing overlapping windows and dropping padded positions.
    pub fn fold2d(&self, window: Window2d, output_hw: (usize, usize)) -> Result<Self> {
        let (h, w) = output_hw;
        let kk = window.kernel.0 * window.kernel.1;
        let (ho, wo) = window.output_size("fold2d", self.shape(), h, w)?;
        if self.rank() != 3 || kk == 0 || self.dims()[1] % kk != 0 || self.dims()[2] != ho * wo {
            return Err(Error::invalid(
                "fold2d",
                self.shape(),
                format!("expected (N, C·{kk}, {}) for a {h}×{w} output", ho * wo),
            ));
        }
        let (n, c) = (self.dims()[0], self.dims()[1] / kk);
        let storage = B::fold2d(self.storage(), self.layout(), window, output_hw)?;
        Ok(Self::from_op(
            storage,
            Shape::new([n, c, h, w]),
            &[self],
            || Op::Fold2d { window },
        ))
    }
}
