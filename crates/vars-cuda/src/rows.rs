//! Launchers of the row kernels (`kernels/rows.cu`): fused softmax / log-softmax and the
//! layer-norm normalisation along the last dim, with their backwards, for the `Backend` hooks
//! `softmax_last_dim`, `softmax_last_dim_backward`, `layer_norm_last_dim` and
//! `layer_norm_last_dim_backward`.
//!
//! One thread block per row; every input is read in place through its view (a contiguous view
//! passes a pointer at its first element, any other view its `StridedLayout`), outputs are
//! contiguous. Semantics and accuracy follow the CPU backend's `rows.rs` (f64 arithmetic, one
//! rounding per output).

use crate::device::driver_err;
use crate::error::{CudaError, Result};
use crate::kernels::{self, StridedLayout};
use crate::storage::{check_bounds, unsupported, DeviceElement};
use crate::CudaStorage;
use cudarc::driver::{CudaSlice, CudaView, LaunchConfig, PushKernelArg};
use vars_core::{DType, Layout};

/// `softmax_fwd_<t>`, `softmax_bwd_<t>`, `layer_norm_fwd_<t>`, `layer_norm_bwd_<t>`.
pub(crate) fn entries() -> Vec<String> {
    let mut v = Vec::new();
    for d in kernels::FLOAT_DTYPES {
        for k in [
            "softmax_fwd",
            "softmax_bwd",
            "layer_norm_fwd",
            "layer_norm_bwd",
        ] {
            v.push(format!("{k}_{d}"));
        }
    }
    v
}

/// Threads per row: a power of two in 32..=256 (the kernels' shared array holds 256).
pub(crate) fn row_threads(n: usize) -> u32 {
    (n.next_power_of_two()).clamp(32, 256) as u32
}

fn row_config(rows: usize, n: usize) -> Result<LaunchConfig> {
    let grid = u32::try_from(rows)
        .ok()
        .filter(|&r| r <= i32::MAX as u32)
        .ok_or_else(|| CudaError::Layout {
            op: "rows",
            msg: format!("{rows} rows exceed the grid limit of one block per row"),
        })?;
    Ok(LaunchConfig {
        grid_dim: (grid, 1, 1),
        block_dim: (row_threads(n), 1, 1),
        shared_mem_bytes: 0,
    })
}

/// Row length and row count of a view (rank ≥ 1, non-empty last dim).
fn rows_of(op: &'static str, layout: &Layout) -> Result<(usize, usize)> {
    match layout.dims().last() {
        Some(&n) if n > 0 => Ok((n, layout.elem_count() / n)),
        _ => Err(CudaError::Core(vars_core::Error::InvalidArgument {
            op,
            shape: layout.shape().clone(),
            msg: "needs rank >= 1 and a non-empty last dim".into(),
        })),
    }
}

/// One kernel operand: the pointer the kernel indexes plus its layout and contiguity flag.
struct Operand<'a, T> {
    view: CudaView<'a, T>,
    layout: StridedLayout,
    contiguous: i32,
}

fn operand<'a, T: DeviceElement>(
    op: &'static str,
    s: &'a CudaStorage,
    layout: &Layout,
) -> Result<Operand<'a, T>> {
    check_bounds(op, layout, s.len())?;
    let slice: &CudaSlice<T> = s.slice::<T>();
    Ok(match layout.contiguous_range() {
        Some(range) => Operand {
            view: slice.slice(range),
            layout: StridedLayout::new(op, &Layout::contiguous(layout.shape().clone()))?,
            contiguous: 1,
        },
        None => Operand {
            view: slice.slice(..),
            layout: StridedLayout::new(op, layout)?,
            contiguous: 0,
        },
    })
}

fn same_dtype(op: &'static str, a: &CudaStorage, b: &CudaStorage) -> Result<()> {
    if a.dtype() != b.dtype() {
        return Err(CudaError::Core(vars_core::Error::DTypeMismatch {
            op,
            lhs: a.dtype(),
            rhs: b.dtype(),
        }));
    }
    Ok(())
}

fn same_shape(op: &'static str, a: &Layout, b: &Layout) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(CudaError::Core(vars_core::Error::ShapeMismatch {
            op,
            lhs: a.shape().clone(),
            rhs: b.shape().clone(),
            hint: String::new(),
        }));
    }
    Ok(())
}

fn kernel_name(stem: &str, dtype: DType) -> String {
    format!("{stem}_{dtype}")
}

impl CudaStorage {
    /// Softmax (`log = false`) or log-softmax along the last dim of the view.
    pub fn softmax_last_dim(&self, layout: &Layout, log: bool) -> Result<CudaStorage> {
        let op = if log { "log_softmax" } else { "softmax" };
        fn go<T: DeviceElement>(
            op: &'static str,
            s: &CudaStorage,
            layout: &Layout,
            log: bool,
        ) -> Result<CudaStorage> {
            let (n, rows) = rows_of(op, layout)?;
            let dev = s.device();
            let x = operand::<T>(op, s, layout)?;
            let mut out = dev.alloc::<T>(n * rows)?;
            let f = dev.function(&kernels::ROWS, &kernel_name("softmax_fwd", T::DTYPE))?;
            let (n64, log) = (n as u64, i32::from(log));
            let mut b = dev.stream().launch_builder(&f);
            b.arg(&n64)
                .arg(&x.layout)
                .arg(&x.contiguous)
                .arg(&x.view)
                .arg(&mut out)
                .arg(&log);
            // SAFETY: softmax_fwd_<t>(u64 n, StridedLayout, int, const T*, T*, int); one block
            // per row writes out[row·n .. row·n + n); the input view was bounds-checked.
            unsafe { b.launch(row_config(rows, n)?) }.map_err(driver_err("cuLaunchKernel"))?;
            Ok(dev.storage(out))
        }
        match self.dtype() {
            DType::F32 => go::<f32>(op, self, layout, log),
            DType::F64 => go::<f64>(op, self, layout, log),
            other => Err(unsupported(op, other, "f32, f64")),
        }
    }

    /// The softmax / log-softmax VJP from the output `self[layout]` and `grad`.
    pub fn softmax_last_dim_backward(
        &self,
        layout: &Layout,
        grad: &CudaStorage,
        grad_layout: &Layout,
        log: bool,
    ) -> Result<CudaStorage> {
        let op = if log {
            "log_softmax_backward"
        } else {
            "softmax_backward"
        };
        same_dtype(op, self, grad)?;
        same_shape(op, layout, grad_layout)?;
        fn go<T: DeviceElement>(
            op: &'static str,
            y: &CudaStorage,
            yl: &Layout,
            g: &CudaStorage,
            gl: &Layout,
            log: bool,
        ) -> Result<CudaStorage> {
            let (n, rows) = rows_of(op, yl)?;
            let dev = y.device();
            let (yo, go) = (operand::<T>(op, y, yl)?, operand::<T>(op, g, gl)?);
            let mut out = dev.alloc::<T>(n * rows)?;
            let f = dev.function(&kernels::ROWS, &kernel_name("softmax_bwd", T::DTYPE))?;
            let (n64, log) = (n as u64, i32::from(log));
            let mut b = dev.stream().launch_builder(&f);
            b.arg(&n64)
                .arg(&yo.layout)
                .arg(&yo.contiguous)
                .arg(&yo.view)
                .arg(&go.layout)
                .arg(&go.contiguous)
                .arg(&go.view)
                .arg(&mut out)
                .arg(&log);
            // SAFETY: softmax_bwd_<t>(u64, StridedLayout, int, const T*, StridedLayout, int,
            // const T*, T*, int); both views bounds-checked and of equal shape.
            unsafe { b.launch(row_config(rows, n)?) }.map_err(driver_err("cuLaunchKernel"))?;
            Ok(dev.storage(out))
        }
        match self.dtype() {
            DType::F32 => go::<f32>(op, self, layout, grad, grad_layout, log),
            DType::F64 => go::<f64>(op, self, layout, grad, grad_layout, log),
            other => Err(unsupported(op, other, "f32, f64")),
        }
    }

    /// Layer norm's normalisation along the last dim: `(x̂, rstd)`, rstd shaped like the view
    /// with the last dim 1 (both contiguous).
    pub fn layer_norm_last_dim(
        &self,
        layout: &Layout,
        eps: f64,
    ) -> Result<(CudaStorage, CudaStorage)> {
        fn go<T: DeviceElement>(
            s: &CudaStorage,
            layout: &Layout,
            eps: f64,
        ) -> Result<(CudaStorage, CudaStorage)> {
            let op = "layer_norm";
            let (n, rows) = rows_of(op, layout)?;
            let dev = s.device();
            let x = operand::<T>(op, s, layout)?;
            let mut out = dev.alloc::<T>(n * rows)?;
            let mut rstd = dev.alloc::<T>(rows)?;
            let f = dev.function(&kernels::ROWS, &kernel_name("layer_norm_fwd", T::DTYPE))?;
            let n64 = n as u64;
            let mut b = dev.stream().launch_builder(&f);
            b.arg(&n64)
                .arg(&x.layout)
                .arg(&x.contiguous)
                .arg(&x.view)
                .arg(&mut out)
                .arg(&mut rstd)
                .arg(&eps);
            // SAFETY: layer_norm_fwd_<t>(u64, StridedLayout, int, const T*, T*, T*, double);
            // block r writes out[r·n ..) and rstd[r]; the input view was bounds-checked.
            unsafe { b.launch(row_config(rows, n)?) }.map_err(driver_err("cuLaunchKernel"))?;
            Ok((dev.storage(out), dev.storage(rstd)))
        }
        match self.dtype() {
            DType::F32 => go::<f32>(self, layout, eps),
            DType::F64 => go::<f64>(self, layout, eps),
            other => Err(unsupported("layer_norm", other, "f32, f64")),
        }
    }

    /// The normalisation's VJP from `x̂ = self[layout]`, `rstd` and `grad`.
    pub fn layer_norm_last_dim_backward(
        &self,
        layout: &Layout,
        rstd: &CudaStorage,
        rstd_layout: &Layout,
        grad: &CudaStorage,
        grad_layout: &Layout,
    ) -> Result<CudaStorage> {
        let op = "layer_norm_backward";
        same_dtype(op, self, rstd)?;
        same_dtype(op, self, grad)?;
        same_shape(op, layout, grad_layout)?;
        let (n, rows) = rows_of(op, layout)?;
        if rstd_layout.elem_count() != rows {
            return Err(CudaError::Core(vars_core::Error::InvalidArgument {
                op,
                shape: rstd_layout.shape().clone(),
                msg: format!("rstd must hold one value per row ({rows})"),
            }));
        }
        fn go<T: DeviceElement>(
            x: &CudaStorage,
            xl: &Layout,
            r: &CudaStorage,
            rl: &Layout,
            g: &CudaStorage,
            gl: &Layout,
            (n, rows): (usize, usize),
        ) -> Result<CudaStorage> {
            let op = "layer_norm_backward";
            let dev = x.device();
            let xo = operand::<T>(op, x, xl)?;
            let ro = operand::<T>(op, r, rl)?;
            let go = operand::<T>(op, g, gl)?;
            let mut out = dev.alloc::<T>(n * rows)?;
            let f = dev.function(&kernels::ROWS, &kernel_name("layer_norm_bwd", T::DTYPE))?;
            let n64 = n as u64;
            let mut b = dev.stream().launch_builder(&f);
            b.arg(&n64)
                .arg(&xo.layout)
                .arg(&xo.contiguous)
                .arg(&xo.view)
                .arg(&ro.layout)
                .arg(&ro.contiguous)
                .arg(&ro.view)
                .arg(&go.layout)
                .arg(&go.contiguous)
                .arg(&go.view)
                .arg(&mut out);
            // SAFETY: layer_norm_bwd_<t>(u64, (StridedLayout, int, const T*) ×3, T*); views
            // bounds-checked, x̂ and grad of equal shape, rstd one value per row.
            unsafe { b.launch(row_config(rows, n)?) }.map_err(driver_err("cuLaunchKernel"))?;
            Ok(dev.storage(out))
        }
        match self.dtype() {
            DType::F32 => go::<f32>(
                self,
                layout,
                rstd,
                rstd_layout,
                grad,
                grad_layout,
                (n, rows),
            ),
            DType::F64 => go::<f64>(
                self,
                layout,
                rstd,
                rstd_layout,
                grad,
                grad_layout,
                (n, rows),
            ),
            other => Err(unsupported(op, other, "f32, f64")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_threads_is_a_power_of_two_within_the_shared_array() {
        for n in [1, 7, 31, 32, 33, 196, 256, 257, 768, 100_000] {
            let t = row_threads(n);
            assert!(t.is_power_of_two() && (32..=256).contains(&t), "{n} -> {t}");
        }
        assert_eq!(row_threads(196), 256);
        assert_eq!(row_threads(20), 32);
    }

    #[test]
    fn entries_cover_both_float_dtypes() {
        let e = entries();
        assert_eq!(e.len(), 8);
        assert!(e.contains(&"layer_norm_bwd_f64".to_string()));
    }
}
