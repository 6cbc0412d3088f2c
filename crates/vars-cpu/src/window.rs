//! Sliding-window kernels: `unfold2d` (im2col) and `fold2d` (col2im), the two ops behind
//! convolution and max pooling (see `vars_core::Window2d`).
//!
//! Both run one `(n, c)` plane per task: for `unfold2d` the plane's output rows
//! `c·kh·kw .. (c+1)·kh·kw` are one contiguous block, for `fold2d` the plane's `H·W` outputs are,
//! so tasks write disjoint slices and `fold2d` sums overlapping windows in a fixed order (kernel
//! tap by kernel tap, deterministic for any thread count). The input may be any strided view.
//!
//! Per kernel tap `(i, j)` the in-image output columns are one range `lo..hi` (computed once per
//! tap), so the inner loops carry no bounds tests: a slice copy (`unfold2d`) or a slice add
//! (`fold2d`) when stride and input column stride are 1, a strided gather/scatter otherwise, and
//! a fill for the padding.
//!
//! Large outputs come from [`output_buffer`], which asks Linux for transparent huge pages before
//! first touch: im2col buffers of the RVT stem and depthwise convolutions are 40–60 MB, and
//! faulting them in 4 KiB pages cost more than filling them (`docs/conv-performance.md`).

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

    /// Output columns `lo..hi` whose kernel column `j` reads inside the image
    /// (`0 ≤ ox·s + j·d − p < w`); the input column of `ox` there is `ox·s + j·d − p`.
    fn cols(&self, j: usize) -> (usize, usize) {
        let (s, off, p) = (
            self.win.stride.1,
            j * self.win.dilation.1,
            self.win.padding.1,
        );
        let lo = p.saturating_sub(off).div_ceil(s).min(self.wo);
        let hi = if self.w + p > off {
            ((self.w + p - off - 1) / s + 1).min(self.wo)
        } else {
            0
        };
        (lo, hi.max(lo))
    }

    /// `(lo, hi, input column of lo)` for every kernel column `j` (column 0 for an empty range).
    fn col_ranges(&self) -> Vec<(usize, usize, usize)> {
        (0..self.win.kernel.1)
            .map(|j| {
                let (lo, hi) = self.cols(j);
                let x0 = if hi > lo {
                    lo * self.win.stride.1 + j * self.win.dilation.1 - self.win.padding.1
                } else {
                    0
                };
                (lo, hi, x0)
            })
            .collect()
    }
}

/// Buffers of at least this many bytes get `MADV_HUGEPAGE` (glibc serves them with a fresh
/// `mmap`, so the advice only ever covers the buffer itself).
const HUGE_BYTES: usize = 32 << 20;

/// A zero-initialised output buffer of `len` elements. On Linux, buffers of at least
/// [`HUGE_BYTES`] are advised to use transparent huge pages before anything touches them
/// (a no-op where THP is off; an error from the kernel is ignored: the advice is only a hint).
pub(crate) fn output_buffer<T: Copy + Default>(len: usize) -> Vec<T> {
    let mut v = vec![T::default(); len];
    advise_huge_pages(&mut v);
    v
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn advise_huge_pages<T>(v: &mut [T]) {
    const MADV_HUGEPAGE: std::ffi::c_int = 14;
    const PAGE: usize = 4096;
    unsafe extern "C" {
        fn madvise(
            addr: *mut std::ffi::c_void,
            len: usize,
            advice: std::ffi::c_int,
        ) -> std::ffi::c_int;
    }
    let bytes = std::mem::size_of_val(v);
    if bytes < HUGE_BYTES {
        return;
    }
    let start = v.as_mut_ptr() as usize;
    let (first, end) = (start.next_multiple_of(PAGE), (start + bytes) & !(PAGE - 1));
    if end > first {
        // SAFETY: `first..end` lies inside `v`'s allocation (whole pages, rounded inwards), which
        // this function borrows exclusively; MADV_HUGEPAGE changes only how the kernel backs
        // those pages, never their contents or validity.
        unsafe {
            madvise(first as *mut std::ffi::c_void, end - first, MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn advise_huge_pages<T>(_v: &mut [T]) {}

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
    let (sx, cst) = (p.win.stride.1, st[3]);
    let ranges = p.col_ranges();
    let plane = p.kk() * l_out;
    let mut out = output_buffer(p.n * p.c * plane);
    run_planes(&mut out, plane, |idx, chunk| {
        let base = l.offset() + (idx / p.c) * st[0] + (idx % p.c) * st[1];
        for (row, dst) in chunk.chunks_mut(l_out).enumerate() {
            let (i, j) = (row / kw, row % kw);
            let (lo, hi, x0) = ranges[j];
            for (oy, line) in dst.chunks_mut(p.wo).enumerate() {
                let Some(y) = p.src_y(oy, i) else {
                    line.fill(pad);
                    continue;
                };
                line[..lo].fill(pad);
                line[hi..].fill(pad);
                let src = base + y * st[2] + x0 * cst;
                let inner = &mut line[lo..hi];
                if inner.is_empty() {
                    continue;
                }
                let step = sx * cst;
                let run = &x[src..=src + (inner.len() - 1) * step];
                if step == 0 {
                    inner.fill(run[0]);
                } else if step == 1 {
                    inner.copy_from_slice(run);
                } else {
                    for (v, &xv) in inner.iter_mut().zip(run.iter().step_by(step)) {
                        *v = xv;
                    }
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
    let sx = p.win.stride.1;
    let ranges = p.col_ranges();
    let mut out = output_buffer(p.n * p.c * p.h * p.w);
    run_planes(&mut out, p.h * p.w, |idx, plane| {
        let (n, c) = (idx / p.c, idx % p.c);
        // Tap by tap, so every output element sums its windows in tap order; within one tap each
        // output element receives at most one value.
        for row in 0..p.kk() {
            let (i, j) = (row / kw, row % kw);
            let (lo, hi, x0) = ranges[j];
            let row_base = l.offset() + n * st[0] + (c * p.kk() + row) * st[1];
            for oy in 0..p.ho {
                let Some(y) = p.src_y(oy, i) else { continue };
                let len = hi - lo;
                if len == 0 {
                    continue;
                }
                let src = row_base + (oy * p.wo + lo) * st[2];
                let dst = &mut plane[y * p.w + x0..=y * p.w + x0 + (len - 1) * sx];
                if st[2] == 0 {
                    let v = cols[src];
                    dst.iter_mut().step_by(sx).for_each(|d| *d = *d + v);
                    continue;
                }
                let run = cols[src..=src + (len - 1) * st[2]].iter().step_by(st[2]);
                if sx == 1 {
                    for (d, &v) in dst.iter_mut().zip(run) {
                        *d = *d + v;
                    }
                } else {
                    for (d, &v) in dst.iter_mut().step_by(sx).zip(run) {
                        *d = *d + v;
                    }
                }
            }
        }
    });
    out
}
