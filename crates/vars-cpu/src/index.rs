//! Gather/scatter along one dim: `index_select` and its adjoint `index_add`.
//!
//! Both view the tensor as `(outer, dim, inner)` rows. `index_select` copies whole inner rows
//! (a `memcpy` when the inner view is contiguous). `index_add` is made deterministic and
//! parallel by a counting sort of the indices: each output row `(o, r)` gathers the source rows
//! `k` with `indices[k] == r` in increasing `k`, so duplicates accumulate in a fixed order and
//! output rows are disjoint rayon tasks. Indices are `I64` rank-1 views; a negative or
//! out-of-range index is an [`Error::IndexOutOfRange`].

use rayon::prelude::*;
use vars_core::{Error, Layout, Result};

use crate::copy::unsupported;
use crate::scalar::Value;
use crate::storage::{Buf, CpuStorage};
use crate::strided::{check_view, gather, shape_of, Walk, PAR_CHUNK, PAR_GRAIN};

/// Validates and converts the index vector to `usize`.
fn read_indices(
    op: &'static str,
    indices: &CpuStorage,
    il: &Layout,
    dim: usize,
    size: usize,
) -> Result<Vec<usize>> {
    check_view(op, indices.len(), il)?;
    let Buf::I64(iv) = indices.buf() else {
        return Err(unsupported(op, indices.dtype(), "i64 (indices)"));
    };
    if il.rank() != 1 {
        return Err(Error::InvalidArgument {
            op,
            shape: il.shape().clone(),
            msg: "indices must be rank 1".into(),
        });
    }
    gather(iv, il)
        .into_iter()
        .map(|i| {
            usize::try_from(i)
                .ok()
                .filter(|&u| u < size)
                .ok_or(Error::IndexOutOfRange {
                    op,
                    index: i,
                    dim,
                    size,
                })
        })
        .collect()
}

/// The `(outer, dim, inner)` decomposition of a view.
struct Rows {
    outer: Walk<1>,
    inner: Walk<1>,
    inner_len: usize,
    dim_stride: usize,
    offset: usize,
}

impl Rows {
    fn new(l: &Layout, dim: usize) -> Rows {
        let (dims, strides) = (l.dims(), l.strides());
        let inner = Walk::new(&dims[dim + 1..], [&strides[dim + 1..]]);
        Rows {
            outer: Walk::new(&dims[..dim], [&strides[..dim]]),
            inner_len: inner.len(),
            inner,
            dim_stride: strides[dim],
            offset: l.offset(),
        }
    }

    /// Storage position of element 0 of outer row `o`.
    fn outer_base(&self, o: usize) -> usize {
        let mut base = 0;
        self.outer
            .runs(o..o + 1, [self.offset], |_, _, [p]| base = p);
        base
    }
}

fn check_dim(op: &'static str, l: &Layout, dim: usize) -> Result<()> {
    if dim >= l.rank() {
        return Err(Error::DimOutOfRange {
            op,
            dim,
            shape: l.shape().clone(),
        });
    }
    Ok(())
}

pub(crate) fn index_select(
    s: &CpuStorage,
    l: &Layout,
    dim: usize,
    indices: &CpuStorage,
    il: &Layout,
) -> Result<CpuStorage> {
    const OP: &str = "index_select";
    check_view(OP, s.len(), l)?;
    check_dim(OP, l, dim)?;
    let idx = read_indices(OP, indices, il, dim, l.dims()[dim])?;
    Ok(match s.buf() {
        Buf::F32(v) => CpuStorage::from_vec_f32(select(v, l, dim, &idx)),
        Buf::F64(v) => CpuStorage::from_vec_f64(select(v, l, dim, &idx)),
        Buf::I64(v) => CpuStorage::from_vec_i64(select(v, l, dim, &idx)),
    })
}

/// Rows per parallel task for rows of `row_len` elements.
fn rows_per_task(row_len: usize) -> usize {
    (PAR_CHUNK / row_len.max(1)).max(1)
}

fn select<T: Copy + Send + Sync + Default>(
    x: &[T],
    l: &Layout,
    dim: usize,
    idx: &[usize],
) -> Vec<T> {
    let rows = Rows::new(l, dim);
    let inner = rows.inner_len;
    let nidx = idx.len();
    let mut out = vec![T::default(); rows.outer.len() * nidx * inner];
    if out.is_empty() {
        return out;
    }
    let [si] = rows.inner.inner_strides();
    let fill = |first_row: usize, chunk: &mut [T]| {
        for (r, row) in chunk.chunks_mut(inner).enumerate() {
            let r = first_row + r;
            let base = rows.outer_base(r / nidx) + idx[r % nidx] * rows.dim_stride;
            rows.inner.runs(0..inner, [base], |o, len, [p]| {
                let dst = &mut row[o..o + len];
                match si {
                    1 => dst.copy_from_slice(&x[p..p + len]),
                    0 => dst.fill(x[p]),
                    _ => {
                        for (j, d) in dst.iter_mut().enumerate() {
                            *d = x[p + j * si];
                        }
                    }
                }
            });
        }
    };
    if out.len() < PAR_GRAIN || rayon::current_num_threads() == 1 {
        fill(0, &mut out);
    } else {
        let per = rows_per_task(inner);
        out.par_chunks_mut(per * inner)
            .enumerate()
            .for_each(|(t, chunk)| fill(t * per, chunk));
    }
    out
}

pub(crate) fn index_add(
    src: &CpuStorage,
    sl: &Layout,
    dim: usize,
    indices: &CpuStorage,
    il: &Layout,
    dim_size: usize,
) -> Result<CpuStorage> {
    const OP: &str = "index_add";
    check_view(OP, src.len(), sl)?;
    check_dim(OP, sl, dim)?;
    let idx = read_indices(OP, indices, il, dim, dim_size)?;
    if idx.len() != sl.dims()[dim] {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: sl.shape().clone(),
            rhs: shape_of(&[idx.len()]),
            hint: format!(" (dim {dim} of the source must match the number of indices)"),
        });
    }
    Ok(match src.buf() {
        Buf::F32(v) => CpuStorage::from_vec_f32(scatter_add(v, sl, dim, &idx, dim_size)),
        Buf::F64(v) => CpuStorage::from_vec_f64(scatter_add(v, sl, dim, &idx, dim_size)),
        Buf::I64(v) => CpuStorage::from_vec_i64(scatter_add(v, sl, dim, &idx, dim_size)),
    })
}

fn scatter_add<T: Value>(
    x: &[T],
    l: &Layout,
    dim: usize,
    idx: &[usize],
    dim_size: usize,
) -> Vec<T> {
    let rows = Rows::new(l, dim);
    let inner = rows.inner_len;
    let mut out = vec![T::default(); rows.outer.len() * dim_size * inner];
    if out.is_empty() {
        return out;
    }
    // Counting sort: sources[start[r]..start[r + 1]] are the k with idx[k] == r, increasing.
    let mut start = vec![0usize; dim_size + 1];
    for &r in idx {
        start[r + 1] += 1;
    }
    for r in 0..dim_size {
        start[r + 1] += start[r];
    }
    let mut sources = vec![0usize; idx.len()];
    let mut next = start.clone();
    for (k, &r) in idx.iter().enumerate() {
        sources[next[r]] = k;
        next[r] += 1;
    }
    let [si] = rows.inner.inner_strides();
    let fill = |first_row: usize, chunk: &mut [T]| {
        for (r, row) in chunk.chunks_mut(inner).enumerate() {
            let r = first_row + r;
            let (o, target) = (r / dim_size, r % dim_size);
            let outer_base = rows.outer_base(o);
            for &k in &sources[start[target]..start[target + 1]] {
                let base = outer_base + k * rows.dim_stride;
                rows.inner.runs(0..inner, [base], |o, len, [p]| {
                    let dst = &mut row[o..o + len];
                    if si == 1 {
                        for (d, &v) in dst.iter_mut().zip(&x[p..p + len]) {
                            *d = d.add(v);
                        }
                    } else {
                        for (j, d) in dst.iter_mut().enumerate() {
                            *d = d.add(x[p + j * si]);
                        }
                    }
                });
            }
        }
    };
    let work = l.elem_count().max(out.len());
    if work < PAR_GRAIN || rayon::current_num_threads() == 1 {
        fill(0, &mut out);
    } else {
        let per = rows_per_task(inner);
        out.par_chunks_mut(per * inner)
            .enumerate()
            .for_each(|(t, chunk)| fill(t * per, chunk));
    }
    out
}
