//! [`CudaStorage::reduce`]: sum / max / min / argmax / argmin over a sorted set of axes, keeping
//! the reduced axes as size 1 (`kernels/reduce.cu`).
//!
//! The host splits the view into a *kept* layout (output element → storage position of its first
//! input) and a *reduced* layout (reduced element → offset from there), both walked row-major, so
//! any strided, permuted or broadcast view is read in place ([`ReducePlan`]).
//!
//! # Determinism and accuracy
//! Every output element is computed by one thread block (a fixed 256-thread strided fold followed
//! by a fixed shared-memory tree) or, for short reductions, by one thread (a sequential fold). The
//! kernel shape and the order of every operation depend on the shape alone, so results are
//! bit-reproducible run to run and independent of the GPU model.
//!
//! - `max`/`min`/`argmax`/`argmin` equal the CPU backend bit for bit: the first NaN wins, else the
//!   first element equal to the extremum (the partials carry their indices; see `reduce.cu`).
//! - `i64` sums wrap, exactly like the CPU.
//! - `f32` sums accumulate in f64 and round once, like the CPU; the summation *order* differs from
//!   the CPU's 8-lane order, so the f64 totals differ by a few f64 ulps of `Σ|x|` and the f32
//!   results are equal or 1 f32 ulp apart (tolerance `|gpu − cpu| ≤ 2⁻²³·|cpu| + 1e-12·Σ|x|`).
//! - `f64` sums differ from the CPU by the reordering only: `|gpu − cpu| ≤ ~n·2⁻⁵³·Σ|x|`
//!   (tests use `1e-12·Σ|x|` for their sizes).
//!
//! Errors follow the CPU backend: an axis `>= rank` is `DimOutOfRange`, unsorted or repeated axes
//! and an arg reduction over other than one axis are `InvalidArgument`, as is a max/min/arg
//! reduction over an empty axis (an empty sum is 0).

use crate::device::driver_err;
use crate::error::{CudaError, Result};
use crate::kernels::{self, StridedLayout};
use crate::storage::{check_bounds, launch_config, CudaStorage, DeviceElement};
use cudarc::driver::{LaunchConfig, PushKernelArg};
use vars_core::{DType, Error, Layout, ReduceOp, Shape};

/// Every [`ReduceOp`].
pub(crate) const REDUCE_OPS: [ReduceOp; 5] = [
    ReduceOp::Sum,
    ReduceOp::Max,
    ReduceOp::Min,
    ReduceOp::ArgMax,
    ReduceOp::ArgMin,
];

/// Threads per block of the `_block` kernels (`VARS_REDUCE_BLOCK` in `reduce.cu`).
pub(crate) const REDUCE_BLOCK: u32 = 256;

/// Reductions of at most this many elements per output use one thread per output.
pub(crate) const THREAD_MAX_RED: usize = 32;

/// Grid cap of the `_block` kernels (they loop over outputs).
const MAX_REDUCE_BLOCKS: usize = 1 << 20;

/// `reduce_<op>_<t>_block` (one block per output) or `reduce_<op>_<t>_thread` (one thread per
/// output): `(n_out, n_red, StridedLayout kept, StridedLayout red, const T* x, O* out)`, `O` = `T`
/// for sum/max/min and `i64` for argmax/argmin.
pub(crate) fn reduce_kernel(op: ReduceOp, dtype: DType, per_thread: bool) -> String {
    let shape = if per_thread { "thread" } else { "block" };
    format!("reduce_{}_{dtype}_{shape}", op.name())
}

/// Entry points of `reduce.cu`.
pub(crate) fn entries() -> Vec<String> {
    let mut v = Vec::new();
    for op in REDUCE_OPS {
        for d in kernels::ALL_DTYPES {
            v.push(reduce_kernel(op, d, false));
            v.push(reduce_kernel(op, d, true));
        }
    }
    v
}

/// Whether a reduction of `red_count` elements per output runs one thread per output (else one
/// block per output). A function of the shape only, so the summation order is too.
pub(crate) fn per_thread(red_count: usize) -> bool {
    red_count <= THREAD_MAX_RED
}

/// The host-side split of a reduction: validated axes, kept and reduced layouts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReducePlan {
    /// The input's dims with the reduced ones set to 1 (also the output shape), with the input's
    /// strides and offset: logical element `o` is the storage position of output `o`'s first input.
    pub kept: Layout,
    /// The reduced dims with their input strides, offset 0: logical element `r` is the storage
    /// offset of reduced element `r` (row-major over the reduced dims) from its output's base.
    pub red: Layout,
    pub out_count: usize,
    pub red_count: usize,
}

impl ReducePlan {
    /// Validates `axes` like the CPU backend and splits `layout`.
    pub(crate) fn new(op: ReduceOp, layout: &Layout, axes: &[usize]) -> Result<ReducePlan> {
        let name = op.name();
        for (i, &a) in axes.iter().enumerate() {
            if a >= layout.rank() {
                return Err(CudaError::Core(Error::DimOutOfRange {
                    op: name,
                    dim: a,
                    shape: layout.shape().clone(),
                }));
            }
            if i > 0 && axes[i - 1] >= a {
                return Err(CudaError::Core(Error::InvalidArgument {
                    op: name,
                    shape: layout.shape().clone(),
                    msg: format!("reduction axes {axes:?} must be sorted and unique"),
                }));
            }
        }
        if matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) && axes.len() != 1 {
            return Err(CudaError::Core(Error::InvalidArgument {
                op: name,
                shape: layout.shape().clone(),
                msg: format!("needs exactly one axis, got {axes:?}"),
            }));
        }
        let mut kept_dims = layout.dims().to_vec();
        for &a in axes {
            kept_dims[a] = 1;
        }
        let red_dims: Vec<usize> = axes.iter().map(|&a| layout.dims()[a]).collect();
        let red_strides: Vec<usize> = axes.iter().map(|&a| layout.strides()[a]).collect();
        let out_count = kept_dims.iter().product();
        let red_count = red_dims.iter().product();
        if red_count == 0 && op != ReduceOp::Sum && out_count > 0 {
            return Err(CudaError::Core(Error::InvalidArgument {
                op: name,
                shape: layout.shape().clone(),
                msg: format!("cannot reduce over the empty axes {axes:?}"),
            }));
        }
        Ok(ReducePlan {
            kept: Layout::from_parts(
                Shape::new(kept_dims),
                layout.strides().to_vec(),
                layout.offset(),
            ),
            red: Layout::from_parts(Shape::new(red_dims), red_strides, 0),
            out_count,
            red_count,
        })
    }

    /// Storage position of input element `(o, r)` (host twin of the kernels' indexing, for tests).
    #[cfg(test)]
    fn position(&self, o: usize, r: usize) -> usize {
        let k = StridedLayout::new("t", &self.kept).unwrap();
        let red = StridedLayout::new("t", &self.red).unwrap();
        (k.index(o as u64) + red.index(r as u64)) as usize
    }
}

impl CudaStorage {
    /// Reduces `axes` (sorted, unique) of the view; the output keeps them as size 1. Sum, max and
    /// min keep the dtype; argmax/argmin (exactly one axis) return `I64` indices.
    pub fn reduce(&self, op: ReduceOp, layout: &Layout, axes: &[usize]) -> Result<CudaStorage> {
        check_bounds(op.name(), layout, self.len())?;
        let plan = ReducePlan::new(op, layout, axes)?;
        fn go<T: DeviceElement>(
            s: &CudaStorage,
            op: ReduceOp,
            plan: &ReducePlan,
        ) -> Result<CudaStorage> {
            let dev = s.device();
            let is_arg = matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin);
            let n = plan.out_count;
            if n == 0 {
                return Ok(if is_arg {
                    dev.storage(dev.alloc::<i64>(0)?)
                } else {
                    dev.storage(dev.alloc::<T>(0)?)
                });
            }
            let kept = StridedLayout::new(op.name(), &plan.kept)?;
            let red = StridedLayout::new(op.name(), &plan.red)?;
            let thread = per_thread(plan.red_count);
            let f = dev.function(&kernels::REDUCE, &reduce_kernel(op, T::DTYPE, thread))?;
            let cfg = if thread {
                launch_config(n)
            } else {
                LaunchConfig {
                    grid_dim: (n.min(MAX_REDUCE_BLOCKS) as u32, 1, 1),
                    block_dim: (REDUCE_BLOCK, 1, 1),
                    shared_mem_bytes: 0,
                }
            };
            let (n_out, n_red) = (n as u64, plan.red_count as u64);
            let x = s.slice::<T>();
            let mut b = dev.stream().launch_builder(&f);
            b.arg(&n_out).arg(&n_red).arg(&kept).arg(&red).arg(x);
            if is_arg {
                let mut out = dev.alloc::<i64>(n)?;
                b.arg(&mut out);
                // SAFETY: reduce_arg*_<t>_<shape>(u64 n_out, u64 n_red, StridedLayout kept,
                // StridedLayout red, const T*, i64* out): every (o, r) position lies inside the
                // bounds-checked view; out[o] is written for every o < n_out; `_block` kernels
                // get exactly REDUCE_BLOCK threads.
                unsafe { b.launch(cfg) }.map_err(driver_err("cuLaunchKernel"))?;
                Ok(dev.storage(out))
            } else {
                let mut out = dev.alloc::<T>(n)?;
                b.arg(&mut out);
                // SAFETY: reduce_{sum,max,min}_<t>_<shape>(u64, u64, StridedLayout, StridedLayout,
                // const T*, T* out): as above, out.len() == n_out.
                unsafe { b.launch(cfg) }.map_err(driver_err("cuLaunchKernel"))?;
                Ok(dev.storage(out))
            }
        }
        match self.dtype() {
            DType::F32 => go::<f32>(self, op, &plan),
            DType::F64 => go::<f64>(self, op, &plan),
            _ => go::<i64>(self, op, &plan),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(dims: &[usize], strides: &[usize], offset: usize) -> Layout {
        Layout::from_parts(Shape::new(dims.to_vec()), strides.to_vec(), offset)
    }

    /// Reference: storage positions of output `o`'s inputs by brute-force multi-index walking.
    fn brute(l: &Layout, axes: &[usize]) -> Vec<Vec<usize>> {
        let dims = l.dims();
        let total: usize = dims.iter().product();
        let out_dims: Vec<usize> = (0..dims.len())
            .map(|d| if axes.contains(&d) { 1 } else { dims[d] })
            .collect();
        let n_out: usize = out_dims.iter().product();
        let mut groups = vec![Vec::new(); n_out];
        for flat in 0..total {
            let mut rem = flat;
            let mut idx = vec![0; dims.len()];
            for d in (0..dims.len()).rev() {
                idx[d] = rem % dims[d];
                rem /= dims[d];
            }
            let pos: usize = l.offset()
                + idx
                    .iter()
                    .zip(l.strides())
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            let mut o = 0;
            for d in 0..dims.len() {
                o = o * out_dims[d] + if axes.contains(&d) { 0 } else { idx[d] };
            }
            groups[o].push(pos);
        }
        groups
    }

    #[test]
    fn plan_matches_brute_force_order() {
        let cases: Vec<(Layout, Vec<usize>)> = vec![
            (Layout::contiguous(vec![2, 3, 4]), vec![1]),
            (Layout::contiguous(vec![2, 3, 4]), vec![0, 2]),
            (Layout::contiguous(vec![2, 3, 4]), vec![0, 1, 2]),
            (Layout::contiguous(vec![2, 3, 4]), vec![]),
            (Layout::contiguous(vec![5, 7]), vec![0]),
            // permuted (2, 4, 3) view of a (2, 3, 4) buffer, with an offset
            (layout(&[2, 4, 3], &[12, 1, 4], 3), vec![1]),
            (layout(&[2, 4, 3], &[12, 1, 4], 3), vec![0, 2]),
            // broadcast dim
            (layout(&[3, 5, 2], &[2, 0, 1], 0), vec![1]),
            (layout(&[3, 5, 2], &[2, 0, 1], 0), vec![0, 1]),
            // size-1 dims everywhere
            (layout(&[1, 4, 1, 3], &[99, 3, 7, 1], 1), vec![0, 3]),
        ];
        for (l, axes) in cases {
            let plan = ReducePlan::new(ReduceOp::Sum, &l, &axes).unwrap();
            let want = brute(&l, &axes);
            assert_eq!(plan.out_count, want.len());
            for (o, group) in want.iter().enumerate() {
                assert_eq!(plan.red_count, group.len());
                for (r, &p) in group.iter().enumerate() {
                    assert_eq!(plan.position(o, r), p, "{l:?} axes {axes:?} o {o} r {r}");
                }
            }
            let mut out_dims = l.dims().to_vec();
            for &a in &axes {
                out_dims[a] = 1;
            }
            assert_eq!(plan.kept.dims(), &out_dims[..]);
        }
    }

    #[test]
    fn plan_errors_match_cpu() {
        let l = Layout::contiguous(vec![2, 3]);
        let e = ReducePlan::new(ReduceOp::Sum, &l, &[2]).unwrap_err();
        assert!(matches!(
            e,
            CudaError::Core(Error::DimOutOfRange { dim: 2, .. })
        ));
        let e = ReducePlan::new(ReduceOp::Sum, &l, &[1, 0]).unwrap_err();
        assert!(e.to_string().contains("sorted and unique"), "{e}");
        let e = ReducePlan::new(ReduceOp::Max, &l, &[1, 1]).unwrap_err();
        assert!(e.to_string().contains("sorted and unique"), "{e}");
        let e = ReducePlan::new(ReduceOp::ArgMax, &l, &[0, 1]).unwrap_err();
        assert!(e.to_string().contains("exactly one axis"), "{e}");
        let e = ReducePlan::new(ReduceOp::ArgMin, &l, &[]).unwrap_err();
        assert!(e.to_string().contains("exactly one axis"), "{e}");
        let empty = Layout::contiguous(vec![2, 0]);
        for op in [
            ReduceOp::Max,
            ReduceOp::Min,
            ReduceOp::ArgMax,
            ReduceOp::ArgMin,
        ] {
            let e = ReducePlan::new(op, &empty, &[1]).unwrap_err();
            assert!(e.to_string().contains("empty axes"), "{e}");
        }
        let p = ReducePlan::new(ReduceOp::Sum, &empty, &[1]).unwrap();
        assert_eq!((p.out_count, p.red_count), (2, 0));
        // No outputs: nothing to reduce, not an error.
        let p = ReducePlan::new(ReduceOp::Max, &Layout::contiguous(vec![0, 3]), &[1]).unwrap();
        assert_eq!(p.out_count, 0);
    }

    #[test]
    fn kernel_names_and_shape_choice() {
        assert_eq!(
            reduce_kernel(ReduceOp::ArgMin, DType::F32, false),
            "reduce_argmin_f32_block"
        );
        assert_eq!(
            reduce_kernel(ReduceOp::Sum, DType::I64, true),
            "reduce_sum_i64_thread"
        );
        assert_eq!(entries().len(), 5 * 3 * 2);
        assert!(per_thread(0) && per_thread(THREAD_MAX_RED));
        assert!(!per_thread(THREAD_MAX_RED + 1));
    }
}
