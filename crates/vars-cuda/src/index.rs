//! [`CudaStorage::where_cond`], [`CudaStorage::index_select`] and [`CudaStorage::index_add`]
//! (`kernels/index.cu`), with the CPU backend's semantics and errors.
//!
//! - `where_cond`: `cond != 0 ? on_true : on_false` elementwise over three views of one shape; the
//!   condition may have any dtype (a NaN condition is true), the values share one dtype. All three
//!   contiguous: a flat kernel; otherwise each operand is read through its `StridedLayout`.
//! - `index_select` / `index_add`: the index vector (an `I64` rank-1 view, small) is copied to the
//!   host and validated there ([`validate_indices`]): a negative or out-of-range index is
//!   `Error::IndexOutOfRange` naming the first bad one, exactly as on the CPU (this waits for the
//!   queued work that produces the indices). The data view is read in place through its
//!   `StridedLayout` (its logical row-major index is `(o·size + row)·inner + i`).
//! - `index_add` is deterministic and bit-identical to the CPU: the host counting-sorts the indices
//!   ([`counting_sort`]) and each output element sums its source rows in increasing `k`, starting
//!   from 0, in one thread (no atomics).

use crate::device::driver_err;
use crate::error::{CudaError, Result};
use crate::kernels::{self, StridedLayout};
use crate::storage::{check_bounds, launch_config, unsupported, CudaStorage, DeviceElement};
use cudarc::driver::{CudaSlice, PushKernelArg};
use vars_core::{DType, Error, HostData, Layout, Shape};

/// `where_<cond dtype>_<value dtype>[_strided]`.
pub(crate) fn where_kernel(cond: DType, value: DType, strided: bool) -> String {
    let sfx = if strided { "_strided" } else { "" };
    format!("where_{cond}_{value}{sfx}")
}

/// `index_select_<t>(n, inner, nidx, src_dim, src_layout, src, idx, out)`.
pub(crate) fn index_select_kernel(dtype: DType) -> String {
    format!("index_select_{dtype}")
}

/// `index_add_<t>(n, inner, dim_size, nidx, src_layout, src, start, sources, out)`.
pub(crate) fn index_add_kernel(dtype: DType) -> String {
    format!("index_add_{dtype}")
}

/// Entry points of `index.cu`.
pub(crate) fn entries() -> Vec<String> {
    let mut v = Vec::new();
    for c in kernels::ALL_DTYPES {
        for t in kernels::ALL_DTYPES {
            v.push(where_kernel(c, t, false));
            v.push(where_kernel(c, t, true));
        }
    }
    for t in kernels::ALL_DTYPES {
        v.push(index_select_kernel(t));
        v.push(index_add_kernel(t));
    }
    v
}

/// Checks every index against `0..size` (the CPU backend's `read_indices`): the first bad one is
/// an `IndexOutOfRange`.
pub(crate) fn validate_indices(
    op: &'static str,
    idx: &[i64],
    dim: usize,
    size: usize,
) -> Result<Vec<usize>> {
    idx.iter()
        .map(|&i| {
            usize::try_from(i)
                .ok()
                .filter(|&u| u < size)
                .ok_or(CudaError::Core(Error::IndexOutOfRange {
                    op,
                    index: i,
                    dim,
                    size,
                }))
        })
        .collect()
}

/// `(start, sources)`: `sources[start[r]..start[r + 1]]` are the `k` with `idx[k] == r`, in
/// increasing `k` (all `idx[k] < dim_size`). `start` has `dim_size + 1` entries.
pub(crate) fn counting_sort(idx: &[usize], dim_size: usize) -> (Vec<i64>, Vec<i64>) {
    let mut start = vec![0usize; dim_size + 1];
    for &r in idx {
        start[r + 1] += 1;
    }
    for r in 0..dim_size {
        start[r + 1] += start[r];
    }
    let mut next = start.clone();
    let mut sources = vec![0i64; idx.len()];
    for (k, &r) in idx.iter().enumerate() {
        sources[next[r]] = k as i64;
        next[r] += 1;
    }
    (start.into_iter().map(|s| s as i64).collect(), sources)
}

/// `(outer, size, inner)`: the view as rows along `dim` (`dim < rank`).
pub(crate) fn rows_along(layout: &Layout, dim: usize) -> (usize, usize, usize) {
    let dims = layout.dims();
    (
        dims[..dim].iter().product(),
        dims[dim],
        dims[dim + 1..].iter().product(),
    )
}

fn check_dim(op: &'static str, layout: &Layout, dim: usize) -> Result<()> {
    if dim >= layout.rank() {
        return Err(CudaError::Core(Error::DimOutOfRange {
            op,
            dim,
            shape: layout.shape().clone(),
        }));
    }
    Ok(())
}

/// Copies the index view to the host and validates it against `0..size`.
fn read_indices(
    op: &'static str,
    indices: &CudaStorage,
    il: &Layout,
    dim: usize,
    size: usize,
) -> Result<Vec<usize>> {
    check_bounds(op, il, indices.len())?;
    if indices.dtype() != DType::I64 {
        return Err(unsupported(op, indices.dtype(), "i64 (indices)"));
    }
    if il.rank() != 1 {
        return Err(CudaError::Core(Error::InvalidArgument {
            op,
            shape: il.shape().clone(),
            msg: "indices must be rank 1".into(),
        }));
    }
    let HostData::I64(v) = indices.to_host(il)? else {
        unreachable!("dtype checked above")
    };
    validate_indices(op, &v, dim, size)
}

/// Uploads a host vector of i64 (an empty one gives an empty buffer without a copy).
fn upload_i64(s: &CudaStorage, v: &[i64]) -> Result<CudaSlice<i64>> {
    let dev = s.device();
    if v.is_empty() {
        return dev.alloc::<i64>(0);
    }
    dev.stream()
        .clone_htod(v)
        .map_err(driver_err("cuMemcpyHtoD"))
}

fn u64s(v: usize) -> u64 {
    v as u64
}

impl CudaStorage {
    /// `cond != 0 ? on_true : on_false` (self is the condition, of any dtype) over three views of
    /// one shape; the output has the values' dtype.
    pub fn where_cond(
        &self,
        cond_layout: &Layout,
        on_true: &CudaStorage,
        true_layout: &Layout,
        on_false: &CudaStorage,
        false_layout: &Layout,
    ) -> Result<CudaStorage> {
        const OP: &str = "where_cond";
        check_bounds(OP, cond_layout, self.len())?;
        check_bounds(OP, true_layout, on_true.len())?;
        check_bounds(OP, false_layout, on_false.len())?;
        for l in [true_layout, false_layout] {
            if l.shape() != cond_layout.shape() {
                return Err(CudaError::Core(Error::ShapeMismatch {
                    op: OP,
                    lhs: cond_layout.shape().clone(),
                    rhs: l.shape().clone(),
                    hint: String::new(),
                }));
            }
        }
        if on_true.dtype() != on_false.dtype() {
            return Err(CudaError::Core(Error::DTypeMismatch {
                op: OP,
                lhs: on_true.dtype(),
                rhs: on_false.dtype(),
            }));
        }
        fn go<C: DeviceElement, T: DeviceElement>(
            c: &CudaStorage,
            lc: &Layout,
            t: &CudaStorage,
            lt: &Layout,
            f: &CudaStorage,
            lf: &Layout,
        ) -> Result<CudaStorage> {
            let dev = c.device();
            let n = lc.elem_count();
            let mut out = dev.alloc::<T>(n)?;
            if n == 0 {
                return Ok(dev.storage(out));
            }
            let (cs, ts, fs) = (c.slice::<C>(), t.slice::<T>(), f.slice::<T>());
            let ranges = match (
                lc.contiguous_range(),
                lt.contiguous_range(),
                lf.contiguous_range(),
            ) {
                (Some(a), Some(b), Some(d)) => Some((a, b, d)),
                _ => None,
            };
            let name = where_kernel(C::DTYPE, T::DTYPE, ranges.is_none());
            let func = dev.function(&kernels::INDEX, &name)?;
            let n64 = n as u64;
            let mut b = dev.stream().launch_builder(&func);
            match ranges {
                Some((rc, rt, rf)) => {
                    let (cv, tv, fv) = (cs.slice(rc), ts.slice(rt), fs.slice(rf));
                    b.arg(&n64).arg(&cv).arg(&tv).arg(&fv).arg(&mut out);
                    // SAFETY: where_<c>_<t>(u64 n, const C*, const T*, const T*, T* out): three
                    // bounds-checked contiguous views of n elements, out.len() == n.
                    unsafe { b.launch(launch_config(n)) }
                }
                None => {
                    let sc = StridedLayout::new("where_cond", lc)?;
                    let st = StridedLayout::new("where_cond", lt)?;
                    let sf = StridedLayout::new("where_cond", lf)?;
                    b.arg(&n64)
                        .arg(&sc)
                        .arg(cs)
                        .arg(&st)
                        .arg(ts)
                        .arg(&sf)
                        .arg(fs)
                        .arg(&mut out);
                    // SAFETY: where_<c>_<t>_strided(u64 n, StridedLayout, const C*,
                    // StridedLayout, const T*, StridedLayout, const T*, T* out): the three views
                    // were bounds-checked, out.len() == n.
                    unsafe { b.launch(launch_config(n)) }
                }
            }
            .map_err(driver_err("cuLaunchKernel"))?;
            Ok(dev.storage(out))
        }
        macro_rules! by_cond {
            ($t:ty) => {
                match self.dtype() {
                    DType::F32 => go::<f32, $t>(
                        self,
                        cond_layout,
                        on_true,
                        true_layout,
                        on_false,
                        false_layout,
                    ),
                    DType::F64 => go::<f64, $t>(
                        self,
                        cond_layout,
                        on_true,
                        true_layout,
                        on_false,
                        false_layout,
                    ),
                    _ => go::<i64, $t>(
                        self,
                        cond_layout,
                        on_true,
                        true_layout,
                        on_false,
                        false_layout,
                    ),
                }
            };
        }
        match on_true.dtype() {
            DType::F32 => by_cond!(f32),
            DType::F64 => by_cond!(f64),
            _ => by_cond!(i64),
        }
    }

    /// Gathers entries `indices[k]` of `dim` (an `I64` rank-1 view; every index in
    /// `0..dims[dim]`) into a contiguous output whose `dim` has `indices.len()` entries.
    pub fn index_select(
        &self,
        layout: &Layout,
        dim: usize,
        indices: &CudaStorage,
        indices_layout: &Layout,
    ) -> Result<CudaStorage> {
        const OP: &str = "index_select";
        check_bounds(OP, layout, self.len())?;
        check_dim(OP, layout, dim)?;
        let idx = read_indices(OP, indices, indices_layout, dim, layout.dims()[dim])?;
        fn go<T: DeviceElement>(
            s: &CudaStorage,
            layout: &Layout,
            dim: usize,
            idx: &[usize],
        ) -> Result<CudaStorage> {
            let dev = s.device();
            let (outer, size, inner) = rows_along(layout, dim);
            let n = outer * idx.len() * inner;
            let mut out = dev.alloc::<T>(n)?;
            if n == 0 {
                return Ok(dev.storage(out));
            }
            let host: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
            let d_idx = upload_i64(s, &host)?;
            let sl = StridedLayout::new(OP, layout)?;
            let f = dev.function(&kernels::INDEX, &index_select_kernel(T::DTYPE))?;
            let (n64, inner64, nidx64, size64) =
                (u64s(n), u64s(inner), u64s(idx.len()), u64s(size));
            let mut b = dev.stream().launch_builder(&f);
            b.arg(&n64)
                .arg(&inner64)
                .arg(&nidx64)
                .arg(&size64)
                .arg(&sl)
                .arg(s.slice::<T>())
                .arg(&d_idx)
                .arg(&mut out);
            // SAFETY: index_select_<t>(u64 n, u64 inner, u64 nidx, u64 src_dim, StridedLayout,
            // const T*, const i64* idx, T* out): idx has nidx entries, each < src_dim (validated),
            // so every logical source index is < outer·src_dim·inner = the bounds-checked view's
            // size; out.len() == n = outer·nidx·inner.
            unsafe { b.launch(launch_config(n)) }.map_err(driver_err("cuLaunchKernel"))?;
            Ok(dev.storage(out))
        }
        match self.dtype() {
            DType::F32 => go::<f32>(self, layout, dim, &idx),
            DType::F64 => go::<f64>(self, layout, dim, &idx),
            _ => go::<i64>(self, layout, dim, &idx),
        }
    }

    /// The adjoint of [`CudaStorage::index_select`]: a zero buffer shaped like the view with
    /// `dim` of size `dim_size`, slice `k` of the view added into slice `indices[k]` (duplicates
    /// accumulate in increasing `k`; deterministic).
    pub fn index_add(
        &self,
        src_layout: &Layout,
        dim: usize,
        indices: &CudaStorage,
        indices_layout: &Layout,
        dim_size: usize,
    ) -> Result<CudaStorage> {
        const OP: &str = "index_add";
        check_bounds(OP, src_layout, self.len())?;
        check_dim(OP, src_layout, dim)?;
        let idx = read_indices(OP, indices, indices_layout, dim, dim_size)?;
        if idx.len() != src_layout.dims()[dim] {
            return Err(CudaError::Core(Error::ShapeMismatch {
                op: OP,
                lhs: src_layout.shape().clone(),
                rhs: Shape::new(vec![idx.len()]),
                hint: format!(" (dim {dim} of the source must match the number of indices)"),
            }));
        }
        fn go<T: DeviceElement>(
            s: &CudaStorage,
            layout: &Layout,
            dim: usize,
            idx: &[usize],
            dim_size: usize,
        ) -> Result<CudaStorage> {
            let dev = s.device();
            let (outer, nidx, inner) = rows_along(layout, dim);
            let n = outer * dim_size * inner;
            let mut out = dev.alloc::<T>(n)?;
            if n == 0 {
                return Ok(dev.storage(out));
            }
            let (start, sources) = counting_sort(idx, dim_size);
            let (d_start, d_sources) = (upload_i64(s, &start)?, upload_i64(s, &sources)?);
            let sl = StridedLayout::new(OP, layout)?;
            let f = dev.function(&kernels::INDEX, &index_add_kernel(T::DTYPE))?;
            let (n64, inner64, size64, nidx64) = (u64s(n), u64s(inner), u64s(dim_size), u64s(nidx));
            let mut b = dev.stream().launch_builder(&f);
            b.arg(&n64)
                .arg(&inner64)
                .arg(&size64)
                .arg(&nidx64)
                .arg(&sl)
                .arg(s.slice::<T>())
                .arg(&d_start)
                .arg(&d_sources)
                .arg(&mut out);
            // SAFETY: index_add_<t>(u64 n, u64 inner, u64 dim_size, u64 nidx, StridedLayout,
            // const T*, const i64* start, const i64* sources, T* out): start has dim_size + 1
            // entries, sources nidx entries each < nidx (the view's `dim`), so every logical
            // source index is inside the bounds-checked view; out.len() == n.
            unsafe { b.launch(launch_config(n)) }.map_err(driver_err("cuLaunchKernel"))?;
            Ok(dev.storage(out))
        }
        match self.dtype() {
            DType::F32 => go::<f32>(self, src_layout, dim, &idx, dim_size),
            DType::F64 => go::<f64>(self, src_layout, dim, &idx, dim_size),
            _ => go::<i64>(self, src_layout, dim, &idx, dim_size),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_reports_the_first_bad_index() {
        assert_eq!(
            validate_indices("t", &[0, 2, 1], 0, 3).unwrap(),
            vec![0, 2, 1]
        );
        let e = validate_indices("t", &[0, 3, -1], 1, 3).unwrap_err();
        assert!(matches!(
            e,
            CudaError::Core(Error::IndexOutOfRange {
                index: 3,
                dim: 1,
                size: 3,
                ..
            })
        ));
        let e = validate_indices("t", &[-1, 7], 0, 3).unwrap_err();
        assert!(matches!(
            e,
            CudaError::Core(Error::IndexOutOfRange { index: -1, .. })
        ));
        assert!(validate_indices("t", &[0], 0, 0).is_err());
        assert!(validate_indices("t", &[], 0, 0).unwrap().is_empty());
    }

    #[test]
    fn counting_sort_groups_in_increasing_k() {
        let (start, sources) = counting_sort(&[2, 0, 2, 2, 1, 0], 4);
        assert_eq!(start, vec![0, 2, 3, 6, 6]);
        assert_eq!(sources, vec![1, 5, 4, 0, 2, 3]);
        let (start, sources) = counting_sort(&[], 3);
        assert_eq!(start, vec![0, 0, 0, 0]);
        assert!(sources.is_empty());
    }

    #[test]
    fn rows_split() {
        let l = Layout::contiguous(vec![2, 3, 4, 5]);
        assert_eq!(rows_along(&l, 0), (1, 2, 60));
        assert_eq!(rows_along(&l, 2), (6, 4, 5));
        assert_eq!(rows_along(&l, 3), (24, 5, 1));
    }

    #[test]
    fn kernel_names() {
        assert_eq!(
            where_kernel(DType::I64, DType::F32, true),
            "where_i64_f32_strided"
        );
        assert_eq!(index_add_kernel(DType::F64), "index_add_f64");
        assert_eq!(entries().len(), 9 * 2 + 3 * 2);
    }
}
