//! Shared machinery for strided kernels: view validation, joint iteration of several same-shape
//! views, and the parallel fill driver.
//!
//! [`Walk`] coalesces the dimensions of `N` views that share a shape (dropping size-1 dims and
//! merging neighbours that are contiguous *in every view*, broadcast stride-0 dims included) and
//! then hands out *runs*: stretches of the innermost coalesced dim, given as a start position
//! and a stride per view. Kernels loop over a run with plain index arithmetic (or a slice zip
//! when the strides are 1), so the per-element cost of the strided path stays close to the
//! contiguous one. A run never allocates for views of coalesced rank ≤ 8.
//!
//! [`par_fill`] splits an output buffer into fixed-size chunks (below [`PAR_GRAIN`] elements it
//! stays serial). Elementwise results never depend on the chunking.

use rayon::prelude::*;
use vars_core::{Error, Layout, Result, Shape};

/// Elementwise ops on fewer elements than this run on the calling thread.
pub(crate) const PAR_GRAIN: usize = 1 << 14;
/// Chunk length (elements) of the parallel elementwise driver.
pub(crate) const PAR_CHUNK: usize = 1 << 13;

/// Checks that `layout` is well formed and stays inside a buffer of `len` elements.
pub(crate) fn check_view(op: &'static str, len: usize, layout: &Layout) -> Result<()> {
    if layout.strides().len() != layout.rank() {
        return Err(Error::InvalidArgument {
            op,
            shape: layout.shape().clone(),
            msg: format!(
                "layout has {} strides for rank {}",
                layout.strides().len(),
                layout.rank()
            ),
        });
    }
    match view_extent(layout.dims(), layout.strides(), layout.offset()) {
        Some(extent) if extent <= len => Ok(()),
        extent => Err(Error::InvalidArgument {
            op,
            shape: layout.shape().clone(),
            msg: format!(
                "view (strides {:?}, offset {}) reaches element {} but the buffer holds {len}",
                layout.strides(),
                layout.offset(),
                extent.map_or_else(|| "beyond usize::MAX".to_string(), |e| (e - 1).to_string()),
            ),
        }),
    }
}

/// One past the largest index a view touches, with overflow checks (`Some(0)` when empty).
pub(crate) fn view_extent(dims: &[usize], strides: &[usize], offset: usize) -> Option<usize> {
    if dims.contains(&0) {
        return Some(0);
    }
    let mut last = offset;
    for (&d, &s) in dims.iter().zip(strides) {
        last = last.checked_add((d - 1).checked_mul(s)?)?;
    }
    last.checked_add(1)
}

/// Errors unless all shapes equal the first one.
pub(crate) fn check_same_shape(op: &'static str, layouts: &[&Layout]) -> Result<()> {
    let first = layouts[0].shape();
    for l in &layouts[1..] {
        if l.shape() != first {
            return Err(Error::ShapeMismatch {
                op,
                lhs: first.clone(),
                rhs: l.shape().clone(),
                hint: String::new(),
            });
        }
    }
    Ok(())
}

/// A shape with the given dims (helper for error messages).
pub(crate) fn shape_of(dims: &[usize]) -> Shape {
    Shape::new(dims.to_vec())
}

/// Joint row-major iteration over `N` views of one shape; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct Walk<const N: usize> {
    dims: Vec<usize>,
    strides: [Vec<usize>; N],
    len: usize,
}

impl<const N: usize> Walk<N> {
    /// A walk over `dims` where view `k` has strides `strides[k]`.
    pub(crate) fn new(dims: &[usize], strides: [&[usize]; N]) -> Self {
        let len = dims.iter().product();
        let mut out_dims: Vec<usize> = Vec::with_capacity(dims.len());
        let mut out_strides: [Vec<usize>; N] =
            std::array::from_fn(|_| Vec::with_capacity(dims.len()));
        for (i, &d) in dims.iter().enumerate() {
            if d == 1 {
                continue;
            }
            let mergeable = !out_dims.is_empty()
                && (0..N).all(|k| strides[k][i].checked_mul(d) == out_strides[k].last().copied());
            if mergeable {
                *out_dims.last_mut().expect("non-empty") *= d;
                for k in 0..N {
                    *out_strides[k].last_mut().expect("non-empty") = strides[k][i];
                }
            } else {
                out_dims.push(d);
                for k in 0..N {
                    out_strides[k].push(strides[k][i]);
                }
            }
        }
        if out_dims.is_empty() {
            out_dims.push(1);
            for s in &mut out_strides {
                s.push(0);
            }
        }
        Walk {
            dims: out_dims,
            strides: out_strides,
            len,
        }
    }

    /// A walk over views given as layouts (their offsets are passed to [`Walk::runs`]).
    pub(crate) fn of(layouts: [&Layout; N]) -> Self {
        Walk::new(layouts[0].dims(), layouts.map(|l| l.strides()))
    }

    /// Total number of elements.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Length of the innermost coalesced dim.
    pub(crate) fn inner_len(&self) -> usize {
        *self.dims.last().expect("walk has at least one dim")
    }

    /// Per-view stride of the innermost coalesced dim (the stride inside a run).
    pub(crate) fn inner_strides(&self) -> [usize; N] {
        std::array::from_fn(|k| *self.strides[k].last().expect("walk has at least one dim"))
    }

    /// Calls `f(out_offset, run_len, positions)` for every run covering the logical elements
    /// `range` (row-major order); `out_offset` is relative to `range.start`, `positions[k]` is
    /// the storage index of the run's first element in view `k` (whose offset is `bases[k]`).
    #[inline]
    pub(crate) fn runs(
        &self,
        range: std::ops::Range<usize>,
        bases: [usize; N],
        mut f: impl FnMut(usize, usize, [usize; N]),
    ) {
        if range.start >= range.end {
            return;
        }
        let r = self.dims.len();
        let inner = self.dims[r - 1];
        let inner_strides = self.inner_strides();
        let mut idx_inline = [0usize; 8];
        let mut idx_heap = Vec::new();
        let idx: &mut [usize] = if r <= 8 {
            &mut idx_inline[..r]
        } else {
            idx_heap.resize(r, 0);
            &mut idx_heap
        };
        let mut rem = range.start;
        for d in (0..r).rev() {
            idx[d] = rem % self.dims[d];
            rem /= self.dims[d];
        }
        let mut pos = bases;
        for k in 0..N {
            for d in 0..r {
                pos[k] += idx[d] * self.strides[k][d];
            }
        }
        let mut i = range.start;
        loop {
            let in_row = idx[r - 1];
            let run = (inner - in_row).min(range.end - i);
            f(i - range.start, run, pos);
            i += run;
            if i >= range.end {
                return;
            }
            // The run finished its row: rewind to the row start, then carry into outer dims.
            for k in 0..N {
                pos[k] -= in_row * inner_strides[k];
            }
            idx[r - 1] = 0;
            for d in (0..r - 1).rev() {
                idx[d] += 1;
                for k in 0..N {
                    pos[k] += self.strides[k][d];
                }
                if idx[d] < self.dims[d] {
                    break;
                }
                for k in 0..N {
                    pos[k] -= self.dims[d] * self.strides[k][d];
                }
                idx[d] = 0;
            }
        }
    }
}

/// Fills `out` by calling `f(start, chunk)` on disjoint chunks, in parallel when large.
pub(crate) fn par_fill<T: Send>(out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync) {
    if out.len() < PAR_GRAIN || rayon::current_num_threads() == 1 {
        f(0, out);
    } else {
        out.par_chunks_mut(PAR_CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| f(c * PAR_CHUNK, chunk));
    }
}

/// `out[i] = f(a[view i])`.
pub(crate) fn map1<A, O>(a: &[A], la: &Layout, f: impl Fn(A) -> O + Sync) -> Vec<O>
where
    A: Copy + Sync,
    O: Copy + Send + Sync + Default,
{
    let mut out = vec![O::default(); la.elem_count()];
    if let Some(r) = la.contiguous_range() {
        let src = &a[r];
        par_fill(&mut out, |start, chunk| {
            for (o, &x) in chunk.iter_mut().zip(&src[start..]) {
                *o = f(x);
            }
        });
        return out;
    }
    let walk = Walk::of([la]);
    let [sa] = walk.inner_strides();
    par_fill(&mut out, |start, chunk| {
        walk.runs(start..start + chunk.len(), [la.offset()], |o, len, [pa]| {
            let dst = &mut chunk[o..o + len];
            match sa {
                1 => {
                    for (d, &x) in dst.iter_mut().zip(&a[pa..pa + len]) {
                        *d = f(x);
                    }
                }
                0 => dst.fill(f(a[pa])),
                _ => {
                    for (j, d) in dst.iter_mut().enumerate() {
                        *d = f(a[pa + j * sa]);
                    }
                }
            }
        });
    });
    out
}

/// `out[i] = f(a[view i], b[view i])`; the layouts have equal shapes.
pub(crate) fn map2<A, B, O>(
    a: &[A],
    la: &Layout,
    b: &[B],
    lb: &Layout,
    f: impl Fn(A, B) -> O + Sync,
) -> Vec<O>
where
    A: Copy + Sync,
    B: Copy + Sync,
    O: Copy + Send + Sync + Default,
{
    let mut out = vec![O::default(); la.elem_count()];
    if let (Some(ra), Some(rb)) = (la.contiguous_range(), lb.contiguous_range()) {
        let (a, b) = (&a[ra], &b[rb]);
        par_fill(&mut out, |start, chunk| {
            let end = start + chunk.len();
            for ((o, &x), &y) in chunk.iter_mut().zip(&a[start..end]).zip(&b[start..end]) {
                *o = f(x, y);
            }
        });
        return out;
    }
    let walk = Walk::of([la, lb]);
    let [sa, sb] = walk.inner_strides();
    par_fill(&mut out, |start, chunk| {
        walk.runs(
            start..start + chunk.len(),
            [la.offset(), lb.offset()],
            |o, len, [pa, pb]| {
                let dst = &mut chunk[o..o + len];
                match (sa, sb) {
                    (1, 1) => {
                        for ((d, &x), &y) in
                            dst.iter_mut().zip(&a[pa..pa + len]).zip(&b[pb..pb + len])
                        {
                            *d = f(x, y);
                        }
                    }
                    (1, 0) => {
                        let y = b[pb];
                        for (d, &x) in dst.iter_mut().zip(&a[pa..pa + len]) {
                            *d = f(x, y);
                        }
                    }
                    (0, 1) => {
                        let x = a[pa];
                        for (d, &y) in dst.iter_mut().zip(&b[pb..pb + len]) {
                            *d = f(x, y);
                        }
                    }
                    _ => {
                        for (j, d) in dst.iter_mut().enumerate() {
                            *d = f(a[pa + j * sa], b[pb + j * sb]);
                        }
                    }
                }
            },
        );
    });
    out
}

/// `out[i] = f(a[view i], b[view i], c[view i])`; the layouts have equal shapes.
pub(crate) fn map3<A, B, C, O>(
    a: &[A],
    la: &Layout,
    b: &[B],
    lb: &Layout,
    c: &[C],
    lc: &Layout,
    f: impl Fn(A, B, C) -> O + Sync,
) -> Vec<O>
where
    A: Copy + Sync,
    B: Copy + Sync,
    C: Copy + Sync,
    O: Copy + Send + Sync + Default,
{
    let mut out = vec![O::default(); la.elem_count()];
    if let (Some(ra), Some(rb), Some(rc)) = (
        la.contiguous_range(),
        lb.contiguous_range(),
        lc.contiguous_range(),
    ) {
        let (a, b, c) = (&a[ra], &b[rb], &c[rc]);
        par_fill(&mut out, |start, chunk| {
            let end = start + chunk.len();
            let src = a[start..end].iter().zip(&b[start..end]).zip(&c[start..end]);
            for (o, ((&x, &y), &z)) in chunk.iter_mut().zip(src) {
                *o = f(x, y, z);
            }
        });
        return out;
    }
    let walk = Walk::of([la, lb, lc]);
    let [sa, sb, sc] = walk.inner_strides();
    par_fill(&mut out, |start, chunk| {
        let bases = [la.offset(), lb.offset(), lc.offset()];
        walk.runs(start..start + chunk.len(), bases, |o, len, [pa, pb, pc]| {
            for (j, d) in chunk[o..o + len].iter_mut().enumerate() {
                *d = f(a[pa + j * sa], b[pb + j * sb], c[pc + j * sc]);
            }
        });
    });
    out
}

/// A contiguous copy of the view.
pub(crate) fn gather<T: Copy + Send + Sync + Default>(a: &[T], la: &Layout) -> Vec<T> {
    if let Some(r) = la.contiguous_range() {
        return a[r].to_vec();
    }
    let walk = Walk::of([la]);
    let [sa] = walk.inner_strides();
    let mut out = vec![T::default(); la.elem_count()];
    par_fill(&mut out, |start, chunk| {
        walk.runs(start..start + chunk.len(), [la.offset()], |o, len, [pa]| {
            let dst = &mut chunk[o..o + len];
            match sa {
                1 => dst.copy_from_slice(&a[pa..pa + len]),
                0 => dst.fill(a[pa]),
                _ => {
                    for (j, d) in dst.iter_mut().enumerate() {
                        *d = a[pa + j * sa];
                    }
                }
            }
        });
    });
    out
}

/// Storage offsets of every index of `dims` (row-major), for a view with `strides` at `offset`.
/// Used for small outer index spaces (matmul batches).
pub(crate) fn offsets(dims: &[usize], strides: &[usize], offset: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(dims.iter().product());
    let walk = Walk::new(dims, [strides]);
    let [s] = walk.inner_strides();
    walk.runs(0..walk.len(), [offset], |_, len, [p]| {
        out.extend((0..len).map(|j| p + j * s));
    });
    out
}
