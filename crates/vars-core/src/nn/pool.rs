//! Pooling: max pooling with −∞ padding (PyTorch's `max_pool2d`) and global average pooling.

use crate::{Backend, Error, Result, Tensor, Window2d};

/// `max_pool2d`: padded positions act as −∞, so they never win. The gradient of a window goes to
/// its maximum (shared equally between exact ties, which PyTorch instead gives to the first).
pub fn max_pool2d<B: Backend>(x: &Tensor<B>, window: Window2d) -> Result<Tensor<B>> {
    x.require_float("max_pool2d")?;
    if x.rank() != 4 {
        return Err(Error::invalid(
            "max_pool2d",
            x.shape(),
            "expected (N, C, H, W)",
        ));
    }
    let [n, c, h, w] = [x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]];
    if window.padding.0 * 2 > window.kernel.0 || window.padding.1 * 2 > window.kernel.1 {
        return Err(Error::invalid(
            "max_pool2d",
            x.shape(),
            format!(
                "padding {:?} must be at most half the kernel {:?}",
                window.padding, window.kernel
            ),
        ));
    }
    let (ho, wo) = window.output_size("max_pool2d", x.shape(), h, w)?;
    let kk = window.kernel.0 * window.kernel.1;
    x.unfold2d(window, f64::NEG_INFINITY)?
        .reshape([n, c, kk, ho * wo])?
        .max(&[2], false)?
        .reshape([n, c, ho, wo])
}

/// Mean over the spatial dims of `(N, C, H, W)`, giving `(N, C)`.
pub fn global_avg_pool2d<B: Backend>(x: &Tensor<B>) -> Result<Tensor<B>> {
    if x.rank() != 4 {
        return Err(Error::invalid(
            "global_avg_pool2d",
            x.shape(),
            "expected (N, C, H, W)",
        ));
    }
    x.mean(&[2, 3], false)
}
