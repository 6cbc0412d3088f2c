//! Sliding-window kernels: `unfold2d` (im2col) and `fold2d` (col2im), the two ops behind
//! convolution and max pooling (see `vars_core::Window2d`).
//!
//! Both run one `(n, c)` plane per task: for `unfold2d` the plane's output rows
//! `c·kh·kw .. (c+1)·kh·kw` are one contiguous block, for `fold2d` the plane's `H·W` outputs are,
//! so tasks write disjoint slices and `fold2d` sums overlapping windows in a fixed order
//! (deterministic for any thread count). The input may be any strided view.

use rayon::prelude::*;
use vars_core::{Error, Layout, Result, Window2d};

use crate::copy::unsupported;
use crate::scalar::Float;
use crate::storage::{Buf, CpuStorage};
use crate::strided::{check_view, PAR_GRAIN};

/// Geometry shared by both kernels, validated once.
struct Plan {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    win: Window2d,
}

impl Plan {
    fn kk(&self) -> usize {
        self.win.kernel.0 * self.win.kernel.1
    }

    /// Input row for output row `oy` and kernel row `i`, or `None` in the padding.
    #[inline]
    fn src_y(&self, oy: usize, i: usize) -> Option<usize> {
        (oy * self.win.stride.0 + i * self.win.dilation.0)
            .checked_sub(self.win.padding.0)
            .filter(|&y| y < self.h)
    }

    #[inline]
    fn src_x(&self, ox: usize, j: usize) -> Option<usize> {
        (ox * self.win.stride.1 + j * self.win.dilation.1)
            .checked_sub(self.win.padding.1)
            .filter(|&x| x < self.w)
    }
}

fn bad_layout(op: &'static str, l: &Layout, msg: String) -> Error {
    Error::InvalidArgument {
        op,
        shape: l.shape().clone(),
        msg,
    }
}

fn run_planes<T: Send>(out: &mut [T], plane: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if plane == 0 {
        return;
    }
    if out.len() < PAR_GRAIN || rayon::current_num_threads() == 1 {
        out.chunks_mut(plane)
            .enumerate()
            .for_each(|(p, chunk)| f(p, chunk));
    } else {
        out.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(p, chunk)| f(p, chunk));
    }
}

pub(crate) fn unfold2d(s: &CpuStorage, l: &Layout, win: Window2d, pad: f64) -> Result<CpuStorage> {
    const OP: &str = "unfold2d";
    check_view(OP, s.len(), l)?;
    if l.rank() != 4 {
        return Err(bad_layout(OP, l, "expected (N, C, H, W)".into()));
    }
    let [n, c, h, w] = [l.dims()[0], l.dims()[1], l.dims()[2], l.dims()[3]];
    let (ho, wo) = win.output_size(OP, l.shape(), h, w)?;
    let plan = Plan {
        n,
        c,
        h,
        w,
        ho,
        wo,
        win,
    };
    Ok(match s.buf() {
        Buf::F32(x) => CpuStorage::from_vec_f32(unfold_typed(x, l, &plan, pad as f32)),
        Buf::F64(x) => CpuStorage::from_vec_f64(unfold_typed(x, l, &plan, pad)),
        Buf::I64(_) => return Err(unsupported(OP, s.dtype(), "f32, f64")),
    })
}

fn unfold_typed<T: Float>(x: &[T], l: &Layout, p: &Plan, pad: T) -> Vec<T> {
    let st = l.strides();
    let (kw, l_out) = (p.win.kernel.1, p.ho * p.wo);
    let plane = p.kk() * l_out;
    let mut out = vec![T::default(); p.n * p.c * plane];
    run_planes(&mut out, plane, |idx, chunk| {
        let base = l.offset() + (idx / p.c) * st[0] + (idx % p.c) * st[1];
        for (row, dst) in chunk.chunks_mut(l_out).enumerate() {
            let (i, j) = (row / kw, row % kw);
            for oy in 0..p.ho {
                let line = &mut dst[oy * p.wo..(oy + 1) * p.wo];
                let Some(y) = p.src_y(oy, i) else {
                    line.fill(pad);
                    continue;
                };
                let row_base = base + y * st[2];
                for (ox, v) in line.iter_mut().enumerate() {
                    *v = match p.src_x(ox, j) {
                        Some(xx) => x[row_base + xx * st[3]],
                        None => pad,
                    };
                }
            }
        }
    });
    out
}

pub(crate) fn fold2d(
    s: &CpuStorage,
    l: &Layout,
    win: Window2d,
    (h, w): (usize, usize),
) -> Result<CpuStorage> {
    const OP: &str = "fold2d";
    check_view(OP, s.len(), l)?;
    let (ho, wo) = win.output_size(OP, l.shape(), h, w)?;
    let kk = win.kernel.0 * win.kernel.1;
    if l.rank() != 3 || kk == 0 || l.dims()[1] % kk != 0 || l.dims()[2] != ho * wo {
        return Err(bad_layout(
            OP,
            l,
            format!("expected (N, C·{kk}, {}) for a {h}×{w} output", ho * wo),
        ));
    }
    let plan = Plan {
        n: l.dims()[0],
        c: l.dims()[1] / kk,
        h,
        w,
        ho,
        wo,
        win,
    };
    Ok(match s.buf() {
        Buf::F32(x) => CpuStorage::from_vec_f32(fold_typed(x, l, &plan)),
        Buf::F64(x) => CpuStorage::from_vec_f64(fold_typed(x, l, &plan)),
        Buf::I64(_) => return Err(unsupported(OP, s.dtype(), "f32, f64")),
    })
}

fn fold_typed<T: Float>(cols: &[T], l: &Layout, p: &Plan) -> Vec<T> {
    let st = l.strides();
    let kw = p.win.kernel.1;
    let mut out = vec![T::default(); p.n * p.c * p.h * p.w];
    run_planes(&mut out, p.h * p.w, |idx, plane| {
        let (n, c) = (idx / p.c, idx % p.c);
        for row in 0..p.kk() {
            let (i, j) = (row / kw, row % kw);
            let row_base = l.offset() + n * st[0] + (c * p.kk() + row) * st[1];
            for oy in 0..p.ho {
                let Some(y) = p.src_y(oy, i) else { continue };
                for ox in 0..p.wo {
                    if let Some(xx) = p.src_x(ox, j) {
                        plane[y * p.w + xx] =
                            plane[y * p.w + xx] + cols[row_base + (oy * p.wo + ox) * st[2]];
                    }
                }
            }
        }
    });
    out
}
