//! Reductions ([`ReduceOp`]) over a sorted set of axes, keeping the reduced axes as size 1.
//!
//! # Determinism
//! Work is split across rayon threads by *output element* only; each output element is computed
//! by one thread, visiting its reduced elements in a fixed order that depends on the input
//! layout alone (never on the thread count or the chunking). Two loop shapes exist, chosen from
//! the layout:
//! - **row** (the reduced elements are the innermost in memory, e.g. softmax/LayerNorm rows):
//!   per output element, the reduced view is walked in row-major order in runs; each run is summed
//!   with 8 lane accumulators (lane = position in the run mod 8), combined as
//!   `((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))` and added to the running total;
//! - **column** (a kept axis is innermost in memory, e.g. a bias gradient summing `(N, C)` over
//!   `N`): a block of adjacent outputs is accumulated together, row by row, so each output is a
//!   plain sequential sum over the reduced elements in row-major order.
//!
//! `f32` sums accumulate in `f64` and round once at the end (more accurate, and the lane form
//! keeps it vectorised); `f64` sums accumulate in `f64`; `i64` sums wrap.
//!
//! # NaN and ties
//! `max`/`min` propagate NaN (PyTorch). `argmax`/`argmin` return the *first* index of the
//! extremum; a NaN counts as the extremum (the first NaN wins), as in PyTorch.
//! Max/min/arg reductions over an empty axis are errors; an empty sum is 0.

use rayon::prelude::*;
use vars_core::{Error, Layout, ReduceOp, Result};

use crate::scalar::Value;
use crate::storage::{Buf, CpuStorage};
use crate::strided::{check_view, Walk, PAR_CHUNK, PAR_GRAIN};

pub(crate) fn reduce(
    op: ReduceOp,
    s: &CpuStorage,
    l: &Layout,
    axes: &[usize],
) -> Result<CpuStorage> {
    let name = op.name();
    check_view(name, s.len(), l)?;
    for (i, &a) in axes.iter().enumerate() {
        if a >= l.rank() {
            return Err(Error::DimOutOfRange {
                op: name,
                dim: a,
                shape: l.shape().clone(),
            });
        }
        if i > 0 && axes[i - 1] >= a {
            return Err(Error::InvalidArgument {
                op: name,
                shape: l.shape().clone(),
                msg: format!("reduction axes {axes:?} must be sorted and unique"),
            });
        }
    }
    let is_arg = matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin);
    if is_arg && axes.len() != 1 {
        return Err(Error::InvalidArgument {
            op: name,
            shape: l.shape().clone(),
            msg: format!("needs exactly one axis, got {axes:?}"),
        });
    }
    let plan = Plan::new(l, axes);
    if plan.red_count == 0 && op != ReduceOp::Sum && plan.out_count > 0 {
        return Err(Error::InvalidArgument {
            op: name,
            shape: l.shape().clone(),
            msg: format!("cannot reduce over the empty axes {axes:?}"),
        });
    }
    Ok(match (op, s.buf()) {
        (ReduceOp::Sum, Buf::F32(v)) => CpuStorage::from_vec_f32(plan.run(v, &SumF32)),
        (ReduceOp::Sum, Buf::F64(v)) => CpuStorage::from_vec_f64(plan.run(v, &SumF64)),
        (ReduceOp::Sum, Buf::I64(v)) => CpuStorage::from_vec_i64(plan.run(v, &SumI64)),
        (ReduceOp::Max, Buf::F32(v)) => CpuStorage::from_vec_f32(plan.run(v, &Extremum::MAX)),
        (ReduceOp::Max, Buf::F64(v)) => CpuStorage::from_vec_f64(plan.run(v, &Extremum::MAX)),
        (ReduceOp::Max, Buf::I64(v)) => CpuStorage::from_vec_i64(plan.run(v, &Extremum::MAX)),
        (ReduceOp::Min, Buf::F32(v)) => CpuStorage::from_vec_f32(plan.run(v, &Extremum::MIN)),
        (ReduceOp::Min, Buf::F64(v)) => CpuStorage::from_vec_f64(plan.run(v, &Extremum::MIN)),
        (ReduceOp::Min, Buf::I64(v)) => CpuStorage::from_vec_i64(plan.run(v, &Extremum::MIN)),
        (ReduceOp::ArgMax | ReduceOp::ArgMin, buf) => {
            let max = op == ReduceOp::ArgMax;
            CpuStorage::from_vec_i64(match buf {
                Buf::F32(v) => plan.arg(v, max),
                Buf::F64(v) => plan.arg(v, max),
                Buf::I64(v) => plan.arg(v, max),
            })
        }
    })
}

/// How one output element folds its inputs.
trait Reducer<T>: Sync {
    type Acc: Copy + Send + Sync;
    fn init(&self) -> Self::Acc;
    fn fold_one(&self, acc: Self::Acc, x: T) -> Self::Acc;
    /// Folds the run `x[p], x[p + s], …` (`len` elements).
    #[inline(always)]
    fn fold_run(&self, mut acc: Self::Acc, x: &[T], p: usize, s: usize, len: usize) -> Self::Acc
    where
        T: Copy,
    {
        if s == 1 {
            for &v in &x[p..p + len] {
                acc = self.fold_one(acc, v);
            }
        } else {
            for j in 0..len {
                acc = self.fold_one(acc, x[p + j * s]);
            }
        }
        acc
    }
    fn finish(&self, acc: Self::Acc) -> T;
}

/// Sum of a run with 8 lane accumulators; identical arithmetic for `s == 1` and `s > 1`.
#[inline(always)]
fn lane_sum<T: Copy>(x: &[T], p: usize, s: usize, len: usize, to: impl Fn(T) -> f64) -> f64 {
    let mut lanes = [0.0f64; 8];
    if s == 1 {
        let run = &x[p..p + len];
        let mut chunks = run.chunks_exact(8);
        for c in &mut chunks {
            for j in 0..8 {
                lanes[j] += to(c[j]);
            }
        }
        for (j, &v) in chunks.remainder().iter().enumerate() {
            lanes[j] += to(v);
        }
    } else {
        let full = len / 8 * 8;
        for i in (0..full).step_by(8) {
            for j in 0..8 {
                lanes[j] += to(x[p + (i + j) * s]);
            }
        }
        for (j, i) in (full..len).enumerate() {
            lanes[j] += to(x[p + i * s]);
        }
    }
    ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
        + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
}

struct SumF32;
impl Reducer<f32> for SumF32 {
    type Acc = f64;
    fn init(&self) -> f64 {
        0.0
    }
    #[inline(always)]
    fn fold_one(&self, acc: f64, x: f32) -> f64 {
        acc + x as f64
    }
    #[inline(always)]
    fn fold_run(&self, acc: f64, x: &[f32], p: usize, s: usize, len: usize) -> f64 {
        acc + lane_sum(x, p, s, len, |v| v as f64)
    }
    fn finish(&self, acc: f64) -> f32 {
        acc as f32
    }
}

struct SumF64;
impl Reducer<f64> for SumF64 {
    type Acc = f64;
    fn init(&self) -> f64 {
        0.0
    }
    #[inline(always)]
    fn fold_one(&self, acc: f64, x: f64) -> f64 {
        acc + x
    }
    #[inline(always)]
    fn fold_run(&self, acc: f64, x: &[f64], p: usize, s: usize, len: usize) -> f64 {
        acc + lane_sum(x, p, s, len, |v| v)
    }
    fn finish(&self, acc: f64) -> f64 {
        acc
    }
}

struct SumI64;
impl Reducer<i64> for SumI64 {
    type Acc = i64;
    fn init(&self) -> i64 {
        0
    }
    #[inline(always)]
    fn fold_one(&self, acc: i64, x: i64) -> i64 {
        acc.wrapping_add(x)
    }
    fn finish(&self, acc: i64) -> i64 {
        acc
    }
}

/// `max` (or `min`) with NaN propagation.
struct Extremum {
    max: bool,
}
impl Extremum {
    const MAX: Extremum = Extremum { max: true };
    const MIN: Extremum = Extremum { max: false };
}
impl<T: Value> Reducer<T> for Extremum {
    type Acc = T;
    fn init(&self) -> T {
        if self.max {
            T::lowest()
        } else {
            T::highest()
        }
    }
    #[inline(always)]
    fn fold_one(&self, acc: T, x: T) -> T {
        let better = if self.max { x > acc } else { x < acc };
        if acc.is_nan() || !(better || x.is_nan()) {
            acc
        } else {
            x
        }
    }
    fn finish(&self, acc: T) -> T {
        acc
    }
}

/// The iteration plan of one reduction: kept dims in output order, reduced dims, loop shape.
struct Plan {
    /// Kept dims (reduced ones set to 1), input strides: output element `i` ↔ run position.
    kept: Walk<1>,
    /// The reduced dims with their input strides.
    red: Walk<1>,
    offset: usize,
    out_count: usize,
    red_count: usize,
    /// Column loop shape (see the module docs).
    columns: bool,
}

impl Plan {
    fn new(l: &Layout, axes: &[usize]) -> Plan {
        let mut kept_dims = l.dims().to_vec();
        for &a in axes {
            kept_dims[a] = 1;
        }
        let red_dims: Vec<usize> = axes.iter().map(|&a| l.dims()[a]).collect();
        let red_strides: Vec<usize> = axes.iter().map(|&a| l.strides()[a]).collect();
        let kept = Walk::new(&kept_dims, [l.strides()]);
        let red = Walk::new(&red_dims, [&red_strides]);
        let [sk] = kept.inner_strides();
        let [sr] = red.inner_strides();
        let columns = red.len() > 1 && kept.inner_len() > 1 && sk < sr;
        Plan {
            out_count: kept.len(),
            red_count: red.len(),
            kept,
            red,
            offset: l.offset(),
            columns,
        }
    }

    /// Splits the outputs into chunks for rayon (serial when the work is small).
    fn drive<O: Copy + Send + Sync + Default>(
        &self,
        min_chunk: usize,
        f: impl Fn(usize, &mut [O]) + Sync,
    ) -> Vec<O> {
        let mut out = vec![O::default(); self.out_count];
        let per_out = self.red_count.max(1);
        let threads = rayon::current_num_threads();
        if threads == 1
            || self.out_count.saturating_mul(per_out) < 2 * PAR_GRAIN
            || self.out_count < 2
        {
            f(0, &mut out);
            return out;
        }
        let chunk = (4 * PAR_CHUNK / per_out)
            .max(min_chunk)
            .min(self.out_count.div_ceil(4 * threads))
            .max(1);
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i * chunk, c));
        out
    }

    fn run<T: Copy + Sync + Send + Default, R: Reducer<T>>(&self, x: &[T], r: &R) -> Vec<T> {
        let [sk] = self.kept.inner_strides();
        let [sr] = self.red.inner_strides();
        let red_count = self.red_count;
        if !self.columns {
            return self.drive(1, |start, chunk: &mut [T]| {
                self.kept
                    .runs(start..start + chunk.len(), [self.offset], |o, len, [p]| {
                        for (j, out) in chunk[o..o + len].iter_mut().enumerate() {
                            let mut acc = r.init();
                            self.red.runs(0..red_count, [p + j * sk], |_, rl, [q]| {
                                acc = r.fold_run(acc, x, q, sr, rl);
                            });
                            *out = r.finish(acc);
                        }
                    });
            });
        }
        self.drive(64, |start, chunk: &mut [T]| {
            let mut accs = vec![r.init(); chunk.len()];
            self.kept
                .runs(start..start + chunk.len(), [self.offset], |o, len, [p]| {
                    let acc = &mut accs[..len];
                    acc.fill(r.init());
                    self.red.runs(0..red_count, [p], |_, rl, [q]| {
                        for t in 0..rl {
                            let q = q + t * sr;
                            if sk == 1 {
                                for (a, &v) in acc.iter_mut().zip(&x[q..q + len]) {
                                    *a = r.fold_one(*a, v);
                                }
                            } else {
                                for (j, a) in acc.iter_mut().enumerate() {
                                    *a = r.fold_one(*a, x[q + j * sk]);
                                }
                            }
                        }
                    });
                    for (out, &a) in chunk[o..o + len].iter_mut().zip(acc.iter()) {
                        *out = r.finish(a);
                    }
                });
        })
    }

    /// Index of the first maximum (`max`) or minimum along the single reduced axis.
    fn arg<T: Value>(&self, x: &[T], max: bool) -> Vec<i64> {
        let [sk] = self.kept.inner_strides();
        let [sr] = self.red.inner_strides();
        let n = self.red_count;
        self.drive(1, |start, chunk: &mut [i64]| {
            self.kept
                .runs(start..start + chunk.len(), [self.offset], |o, len, [p]| {
                    for (j, out) in chunk[o..o + len].iter_mut().enumerate() {
                        let base = p + j * sk;
                        let mut best = x[base];
                        let mut best_i = 0;
                        if !best.is_nan() {
                            for t in 1..n {
                                let v = x[base + t * sr];
                                if v.is_nan() {
                                    best_i = t;
                                    break;
                                }
                                if (max && v > best) || (!max && v < best) {
                                    best = v;
                                    best_i = t;
                                }
                            }
                        }
                        *out = best_i as i64;
                    }
                });
        })
    }
}
