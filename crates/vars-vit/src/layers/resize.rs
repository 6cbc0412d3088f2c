//! Resizing token grids: PyTorch's `F.interpolate(mode="bicubic", align_corners=False)` written
//! as two matrix products, so it runs on any backend and is differentiable.
//!
//! For an output index `i` of `out` samples from `inp`, the source coordinate is
//! `x = (i + ½)·inp/out − ½`; the four taps `⌊x⌋ − 1 … ⌊x⌋ + 2` (clamped to the border, as
//! PyTorch does) get Keys' cubic convolution weights with `A = −0.75`. A grid `(…, S, S)` becomes
//! `R·X·Rᵀ` with `R: (S', S)`. At `S' = S` the matrix is the identity exactly.

use crate::Result;
use vars_core::{Backend, Tensor};

const A: f64 = -0.75;

fn cubic_near(x: f64) -> f64 {
    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
}
fn cubic_far(x: f64) -> f64 {
    ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
}

/// The `(out, inp)` bicubic interpolation matrix (row-major).
pub fn bicubic_matrix(out: usize, inp: usize) -> Vec<f64> {
    let mut m = vec![0.0; out * inp];
    if inp == 0 {
        return m;
    }
    let scale = inp as f64 / out as f64;
    for i in 0..out {
        let x = (i as f64 + 0.5) * scale - 0.5;
        let x0 = x.floor();
        let t = x - x0;
        let w = [
            cubic_far(t + 1.0),
            cubic_near(t),
            cubic_near(1.0 - t),
            cubic_far(2.0 - t),
        ];
        for (k, wk) in w.iter().enumerate() {
            let j = (x0 as isize + k as isize - 1).clamp(0, inp as isize - 1) as usize;
            m[i * inp + j] += wk;
        }
    }
    m
}

/// Resizes the last two (square) axes `(…, S, S)` to `(…, side, side)` bicubically.
pub fn resize_grid<B: Backend>(x: &Tensor<B>, side: usize) -> Result<Tensor<B>> {
    let r = x.rank();
    if r < 2 || x.dims()[r - 1] != x.dims()[r - 2] {
        return Err(crate::VitError::Input {
            module: "resize_grid",
            problem: format!("expected a square grid (…, S, S), got {}", x.shape()),
        });
    }
    let s = x.dims()[r - 1];
    if s == side {
        return Ok(x.clone());
    }
    let m = Tensor::<B>::from_vec(bicubic_matrix(side, s), [side, s], x.device())?
        .to_dtype(x.dtype())?;
    Ok(m.matmul(x)?.matmul(&m.t()?)?)
}
