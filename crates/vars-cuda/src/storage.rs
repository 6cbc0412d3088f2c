//! [`CudaStorage`] and the launchers of the first kernels, shaped like the `vars_core::Backend`
//! methods they will implement (`full`, `from_host`, `to_host`, `random`, `copy_strided`,
//! `copy_into`, `cast`, `unary`, `binary`). Every op validates dtypes and view bounds on the host
//! before launching, takes the contiguous fast path when the views allow it, and returns a fresh
//! contiguous buffer, as the backend contract requires. All work is queued on the device's
//! stream; [`CudaDevice::synchronize`] or a host copy waits for it.

use crate::device::{driver_err, CudaDevice};
use crate::error::{CudaError, Result};
use crate::kernels::{self, StridedLayout};
use cudarc::driver::{CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits};
use vars_core::{BinaryOp, DType, Distribution, Element, HostData, Layout, UnaryOp};

/// A device buffer of one dtype.
#[derive(Debug)]
pub enum CudaData {
    F32(CudaSlice<f32>),
    F64(CudaSlice<f64>),
    I64(CudaSlice<i64>),
}

/// A flat device buffer plus the device it lives on.
#[derive(Debug)]
pub struct CudaStorage {
    device: CudaDevice,
    data: CudaData,
}

/// Element types with device kernels.
pub trait DeviceElement: Element + DeviceRepr + ValidAsZeroBits + Default {
    fn wrap(s: CudaSlice<Self>) -> CudaData;
    fn unwrap(d: &CudaData) -> Option<&CudaSlice<Self>>;
    fn unwrap_mut(d: &mut CudaData) -> Option<&mut CudaSlice<Self>>;
}

macro_rules! device_element {
    ($t:ty, $v:ident) => {
        impl DeviceElement for $t {
            fn wrap(s: CudaSlice<Self>) -> CudaData {
                CudaData::$v(s)
            }
            fn unwrap(d: &CudaData) -> Option<&CudaSlice<Self>> {
                match d {
                    CudaData::$v(s) => Some(s),
                    _ => None,
                }
            }
            fn unwrap_mut(d: &mut CudaData) -> Option<&mut CudaSlice<Self>> {
                match d {
                    CudaData::$v(s) => Some(s),
                    _ => None,
                }
            }
        }
    };
}
device_element!(f32, F32);
device_element!(f64, F64);
device_element!(i64, I64);

/// Threads per block of the elementwise kernels (all grid-stride loops).
pub(crate) const BLOCK: u32 = 256;
/// Grid cap; larger inputs loop inside the kernel.
const MAX_BLOCKS: u64 = 1 << 16;

pub(crate) fn launch_config(n: usize) -> LaunchConfig {
    let blocks = (n as u64).div_ceil(BLOCK as u64).clamp(1, MAX_BLOCKS) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

pub(crate) fn unsupported(op: &'static str, dtype: DType, supported: &'static str) -> CudaError {
    CudaError::Core(vars_core::Error::UnsupportedDType {
        op,
        dtype,
        supported,
    })
}

/// Checks that `layout` stays inside a buffer of `len` elements (kernels do not bounds-check).
/// The error is the CPU backend's, word for word, so both backends report a bad view alike.
pub(crate) fn check_bounds(op: &'static str, layout: &Layout, len: usize) -> Result<()> {
    // One past the largest index the view touches, with overflow checks (0 when empty).
    let extent = if layout.elem_count() == 0 {
        Some(0)
    } else {
        layout
            .dims()
            .iter()
            .zip(layout.strides())
            .try_fold(layout.offset(), |acc, (&d, &s)| {
                (d - 1).checked_mul(s).and_then(|x| acc.checked_add(x))
            })
            .and_then(|last| last.checked_add(1))
    };
    match extent {
        Some(e) if e <= len => Ok(()),
        extent => Err(CudaError::Core(vars_core::Error::InvalidArgument {
            op,
            shape: layout.shape().clone(),
            msg: format!(
                "view (strides {:?}, offset {}) reaches element {} but the buffer holds {len}",
                layout.strides(),
                layout.offset(),
                extent.map_or_else(|| "beyond usize::MAX".to_string(), |e| (e - 1).to_string()),
            ),
        })),
    }
}

impl CudaDevice {
    /// `len` uninitialised elements (empty buffers need no allocation call).
    pub(crate) fn alloc<T: DeviceElement>(&self, len: usize) -> Result<CudaSlice<T>> {
        let stream = self.stream();
        if len == 0 {
            return stream.null().map_err(driver_err("cuMemAlloc"));
        }
        // SAFETY: every caller launches a kernel that writes all `len` elements before the
        // buffer is read.
        unsafe { stream.alloc::<T>(len) }.map_err(driver_err("cuMemAlloc"))
    }

    pub(crate) fn storage<T: DeviceElement>(&self, s: CudaSlice<T>) -> CudaStorage {
        CudaStorage {
            device: self.clone(),
            data: T::wrap(s),
        }
    }

    /// `len` elements equal to `value` (converted like `Element::from_f64`).
    pub fn full(&self, len: usize, dtype: DType, value: f64) -> Result<CudaStorage> {
        fn go<T: DeviceElement>(dev: &CudaDevice, len: usize, value: f64) -> Result<CudaStorage> {
            let mut out = dev.alloc::<T>(len)?;
            if len > 0 {
                let f = dev.function(&kernels::FILL, &kernels::fill_kernel(T::DTYPE))?;
                let (n, v) = (len as u64, T::from_f64(value));
                let mut b = dev.stream().launch_builder(&f);
                b.arg(&n).arg(&mut out).arg(&v);
                // SAFETY: fill_<t>(u64 n, T* out, T value) with out.len() == n.
                unsafe { b.launch(launch_config(len)) }.map_err(driver_err("cuLaunchKernel"))?;
            }
            Ok(dev.storage(out))
        }
        match dtype {
            DType::F32 => go::<f32>(self, len, value),
            DType::F64 => go::<f64>(self, len, value),
            DType::I64 => go::<i64>(self, len, value),
            other => Err(unsupported("full", other, "f32, f64, i64")),
        }
    }

    /// Uploads a host buffer.
    pub fn from_host(&self, data: &HostData) -> Result<CudaStorage> {
        fn go<T: DeviceElement>(dev: &CudaDevice, v: &[T]) -> Result<CudaStorage> {
            let s = if v.is_empty() {
                dev.alloc::<T>(0)?
            } else {
                dev.stream()
                    .clone_htod(v)
                    .map_err(driver_err("cuMemcpyHtoD"))?
            };
            Ok(dev.storage(s))
        }
        match data {
            HostData::F32(v) => go(self, v),
            HostData::F64(v) => go(self, v),
            HostData::I64(v) => go(self, v),
        }
    }

    /// `len` samples of `vars_core::rng` (f32 or f64).
    pub fn random(
        &self,
        len: usize,
        dtype: DType,
        dist: Distribution,
        seed: u64,
    ) -> Result<CudaStorage> {
        fn go<T: DeviceElement>(
            dev: &CudaDevice,
            len: usize,
            dist: Distribution,
            seed: u64,
        ) -> Result<CudaStorage> {
            let mut out = dev.alloc::<T>(len)?;
            if len > 0 {
                let f = dev.function(&kernels::RNG, &kernels::rand_kernel(dist, T::DTYPE))?;
                let (a, b) = match dist {
                    Distribution::Uniform { low, high } => (low, high),
                    Distribution::Normal { mean, std } => (mean, std),
                };
                let n = len as u64;
                let mut l = dev.stream().launch_builder(&f);
                l.arg(&n).arg(&mut out).arg(&seed).arg(&a).arg(&b);
                // SAFETY: rand_*_<t>(u64 n, T* out, u64 seed, double, double), out.len() == n.
                unsafe { l.launch(launch_config(len)) }.map_err(driver_err("cuLaunchKernel"))?;
            }
            Ok(dev.storage(out))
        }
        match dtype {
            DType::F32 => go::<f32>(self, len, dist, seed),
            DType::F64 => go::<f64>(self, len, dist, seed),
            other => Err(unsupported("random", other, "f32, f64")),
        }
    }

    /// The raw words `vars_core::rng::bits(seed, i)` for `i < len`, as i64.
    pub fn random_bits(&self, len: usize, seed: u64) -> Result<CudaStorage> {
        let mut out = self.alloc::<i64>(len)?;
        if len > 0 {
            let f = self.function(&kernels::RNG, kernels::RAND_BITS_KERNEL)?;
            let n = len as u64;
            let mut l = self.stream().launch_builder(&f);
            l.arg(&n).arg(&mut out).arg(&seed);
            // SAFETY: rand_bits_i64(u64 n, i64* out, u64 seed), out.len() == n.
            unsafe { l.launch(launch_config(len)) }.map_err(driver_err("cuLaunchKernel"))?;
        }
        Ok(self.storage(out))
    }
}

impl CudaStorage {
    pub fn device(&self) -> &CudaDevice {
        &self.device
    }

    pub fn data(&self) -> &CudaData {
        &self.data
    }

    pub fn dtype(&self) -> DType {
        match self.data {
            CudaData::F32(_) => DType::F32,
            CudaData::F64(_) => DType::F64,
            CudaData::I64(_) => DType::I64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            CudaData::F32(s) => s.len(),
            CudaData::F64(s) => s.len(),
            CudaData::I64(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn slice<T: DeviceElement>(&self) -> &CudaSlice<T> {
        T::unwrap(&self.data).expect("dtype dispatched by the caller")
    }

    /// A contiguous copy of the view.
    pub fn copy_strided(&self, layout: &Layout) -> Result<CudaStorage> {
        check_bounds("copy_strided", layout, self.len())?;
        fn go<T: DeviceElement>(s: &CudaStorage, layout: &Layout) -> Result<CudaStorage> {
            let dev = &s.device;
            let x = s.slice::<T>();
            let n = layout.elem_count();
            if n == 0 {
                return Ok(dev.storage(dev.alloc::<T>(0)?));
            }
            if let Some(range) = layout.contiguous_range() {
                let out = dev
                    .stream()
                    .clone_dtod(&x.slice(range))
                    .map_err(driver_err("cuMemcpyDtoD"))?;
                return Ok(dev.storage(out));
            }
            let sl = StridedLayout::new("copy_strided", layout)?;
            let f = dev.function(&kernels::COPY, &kernels::copy_strided_kernel(T::DTYPE))?;
            let mut out = dev.alloc::<T>(n)?;
            let n64 = n as u64;
            let mut b = dev.stream().launch_builder(&f);
            b.arg(&n64).arg(&sl).arg(x).arg(&mut out);
            // SAFETY: copy_strided_<t>(u64 n, StridedLayout, const T*, T*); bounds checked.
            unsafe { b.launch(launch_config(n)) }.map_err(driver_err("cuLaunchKernel"))?;
            Ok(dev.storage(out))
        }
        match self.dtype() {
            DType::F32 => go::<f32>(self, layout),
            DType::F64 => go::<f64>(self, layout),
            _ => go::<i64>(self, layout),
        }
    }

    /// Gathers the view into a host buffer (waits for queued work).
    pub fn to_host(&self, layout: &Layout) -> Result<HostData> {
        check_bounds("to_host", layout, self.len())?;
        fn go<T: DeviceElement>(s: &CudaStorage, layout: &Layout) -> Result<Vec<T>> {
            if layout.elem_count() == 0 {
                return Ok(Vec::new());
            }
            let stream = s.device.stream();
            match layout.contiguous_range() {
                Some(range) => stream.clone_dtoh(&s.slice::<T>().slice(range)),
                None => {
                    let c = s.copy_strided(layout)?;
                    stream.clone_dtoh(c.slice::<T>())
                }
            }
            .map_err(driver_err("cuMemcpyDtoH"))
        }
        Ok(match self.dtype() {
            DType::F32 => HostData::F32(go(self, layout)?),
            DType::F64 => HostData::F64(go(self, layout)?),
            _ => HostData::I64(go(self, layout)?),
        })
    }

    /// Writes the view `self[layout]` into the view `dst[dst_layout]` (equal element counts;
    /// the destination view must not alias itself).
    pub fn copy_into(
        &self,
        layout: &Layout,
        dst: &mut CudaStorage,
        dst_layout: &Layout,
    ) -> Result<()> {
        if self.dtype() != dst.dtype() {
            return Err(CudaError::Core(vars_core::Error::DTypeMismatch {
                op: "copy_into",
                lhs: self.dtype(),
                rhs: dst.dtype(),
            }));
        }
        if layout.elem_count() != dst_layout.elem_count() {
            return Err(CudaError::Layout {
                op: "copy_into",
                msg: format!(
                    "source view {:?} and destination view {:?} differ in size",
                    layout.dims(),
                    dst_layout.dims()
                ),
            });
        }
        check_bounds("copy_into", layout, self.len())?;
        check_bounds("copy_into", dst_layout, dst.len())?;
        fn go<T: DeviceElement>(
            s: &CudaStorage,
            layout: &Layout,
            dst: &mut CudaStorage,
            dst_layout: &Layout,
        ) -> Result<()> {
            let n = layout.elem_count();
            if n == 0 {
                return Ok(());
            }
            let dev = s.device.clone();
            let (sl, dl) = (
                StridedLayout::new("copy_into", layout)?,
                StridedLayout::new("copy_into", dst_layout)?,
            );
            let f = dev.function(&kernels::COPY, &kernels::copy_into_kernel(T::DTYPE))?;
            let x = s.slice::<T>();
            let y = T::unwrap_mut(&mut dst.data).expect("dtypes checked");
            let n64 = n as u64;
            let mut b = dev.stream().launch_builder(&f);
            b.arg(&n64).arg(&sl).arg(x).arg(&dl).arg(y);
            // SAFETY: copy_into_<t>(u64, StridedLayout, const T*, StridedLayout, T*); bounds
            // checked for both views.
            unsafe { b.launch(launch_config(n)) }.map_err(driver_err("cuLaunchKernel"))?;
            Ok(())
        }
        match self.dtype() {
            DType::F32 => go::<f32>(self, layout, dst, dst_layout),
            DType::F64 => go::<f64>(self, layout, dst, dst_layout),
            _ => go::<i64>(self, layout, dst, dst_layout),
        }
    }

    /// A contiguous copy of the view converted to `dtype`.
    pub fn cast(&self, layout: &Layout, dtype: DType) -> Result<CudaStorage> {
        if dtype == self.dtype() {
            return self.copy_strided(layout);
        }
        check_bounds("cast", layout, self.len())?;
        fn go<F: DeviceElement, T: DeviceElement>(
            s: &CudaStorage,
            layout: &Layout,
        ) -> Result<CudaStorage> {
            let dev = &s.device;
            let n = layout.elem_count();
            let mut out = dev.alloc::<T>(n)?;
            if n > 0 {
                let sl = StridedLayout::new("cast", layout)?;
                let f = dev.function(&kernels::COPY, &kernels::cast_kernel(F::DTYPE, T::DTYPE))?;
                let n64 = n as u64;
                let mut b = dev.stream().launch_builder(&f);
                b.arg(&n64).arg(&sl).arg(s.slice::<F>()).arg(&mut out);
                // SAFETY: cast_<f>_<t>(u64, StridedLayout, const F*, T*); bounds checked.
                unsafe { b.launch(launch_config(n)) }.map_err(driver_err("cuLaunchKernel"))?;
            }
            Ok(dev.storage(out))
        }
        match (self.dtype(), dtype) {
            (DType::F32, DType::F64) => go::<f32, f64>(self, layout),
            (DType::F32, DType::I64) => go::<f32, i64>(self, layout),
            (DType::F64, DType::F32) => go::<f64, f32>(self, layout),
            (DType::F64, DType::I64) => go::<f64, i64>(self, layout),
            (DType::I64, DType::F32) => go::<i64, f32>(self, layout),
            (DType::I64, DType::F64) => go::<i64, f64>(self, layout),
            (_, other) => Err(unsupported("cast", other, "f32, f64, i64")),
        }
    }

    /// `op` applied to every element of the view (f32, f64).
    pub fn unary(&self, op: UnaryOp, layout: &Layout) -> Result<CudaStorage> {
        check_bounds(op.name(), layout, self.len())?;
        fn go<T: DeviceElement>(
            s: &CudaStorage,
            op: UnaryOp,
            layout: &Layout,
        ) -> Result<CudaStorage> {
            let dev = &s.device;
            let n = layout.elem_count();
            let mut out = dev.alloc::<T>(n)?;
            if n == 0 {
                return Ok(dev.storage(out));
            }
            let (p0, p1) = kernels::unary_params(op);
            let (p0, p1) = (T::from_f64(p0), T::from_f64(p1));
            let x = s.slice::<T>();
            let n64 = n as u64;
            let contiguous = layout.contiguous_range();
            let f = dev.function(
                &kernels::UNARY,
                &kernels::unary_kernel(op, T::DTYPE, contiguous.is_none()),
            )?;
            let mut b = dev.stream().launch_builder(&f);
            match contiguous {
                Some(range) => {
                    let xv = x.slice(range);
                    b.arg(&n64).arg(&xv).arg(&mut out).arg(&p0).arg(&p1);
                    // SAFETY: unary_<op>_<t>(u64, const T*, T*, T, T); bounds checked.
                    unsafe { b.launch(launch_config(n)) }
                }
                None => {
                    let sl = StridedLayout::new(op.name(), layout)?;
                    b.arg(&n64).arg(&sl).arg(x).arg(&mut out).arg(&p0).arg(&p1);
                    // SAFETY: unary_<op>_<t>_strided(u64, StridedLayout, const T*, T*, T, T).
                    unsafe { b.launch(launch_config(n)) }
                }
            }
            .map_err(driver_err("cuLaunchKernel"))?;
            Ok(dev.storage(out))
        }
        match self.dtype() {
            DType::F32 => go::<f32>(self, op, layout),
            DType::F64 => go::<f64>(self, op, layout),
            other => Err(unsupported(op.name(), other, "f32, f64")),
        }
    }

    /// `op(self[layout], rhs[rhs_layout])` for views of equal shape and dtype.
    pub fn binary(
        &self,
        op: BinaryOp,
        layout: &Layout,
        rhs: &CudaStorage,
        rhs_layout: &Layout,
    ) -> Result<CudaStorage> {
        if self.dtype() != rhs.dtype() {
            return Err(CudaError::Core(vars_core::Error::DTypeMismatch {
                op: op.name(),
                lhs: self.dtype(),
                rhs: rhs.dtype(),
            }));
        }
        if !kernels::binary_dtypes(op).contains(&self.dtype()) {
            return Err(CudaError::Core(vars_core::Error::UnsupportedDType {
                op: op.name(),
                dtype: self.dtype(),
                supported: "f32, f64",
            }));
        }
        if layout.dims() != rhs_layout.dims() {
            return Err(CudaError::Core(vars_core::Error::ShapeMismatch {
                op: op.name(),
                lhs: layout.shape().clone(),
                rhs: rhs_layout.shape().clone(),
                hint: " (backend binary ops take equal shapes)".into(),
            }));
        }
        check_bounds(op.name(), layout, self.len())?;
        check_bounds(op.name(), rhs_layout, rhs.len())?;
        fn go<T: DeviceElement>(
            a: &CudaStorage,
            op: BinaryOp,
            la: &Layout,
            b: &CudaStorage,
            lb: &Layout,
        ) -> Result<CudaStorage> {
            let dev = &a.device;
            let n = la.elem_count();
            let mut out = dev.alloc::<T>(n)?;
            if n == 0 {
                return Ok(dev.storage(out));
            }
            let (x, y) = (a.slice::<T>(), b.slice::<T>());
            let n64 = n as u64;
            let ranges = la.contiguous_range().zip(lb.contiguous_range());
            let f = dev.function(
                &kernels::BINARY,
                &kernels::binary_kernel(op, T::DTYPE, ranges.is_none()),
            )?;
            let mut l = dev.stream().launch_builder(&f);
            match ranges {
                Some((ra, rb)) => {
                    let (xv, yv) = (x.slice(ra), y.slice(rb));
                    l.arg(&n64).arg(&xv).arg(&yv).arg(&mut out);
                    // SAFETY: binary_<op>_<t>(u64, const T*, const T*, T*); bounds checked.
                    unsafe { l.launch(launch_config(n)) }
                }
                None => {
                    let sa = StridedLayout::new(op.name(), la)?;
                    let sb = StridedLayout::new(op.name(), lb)?;
                    l.arg(&n64).arg(&sa).arg(x).arg(&sb).arg(y).arg(&mut out);
                    // SAFETY: binary_<op>_<t>_strided(u64, StridedLayout, const T*,
                    // StridedLayout, const T*, T*); bounds checked.
                    unsafe { l.launch(launch_config(n)) }
                }
            }
            .map_err(driver_err("cuLaunchKernel"))?;
            Ok(dev.storage(out))
        }
        match self.dtype() {
            DType::F32 => go::<f32>(self, op, layout, rhs, rhs_layout),
            DType::F64 => go::<f64>(self, op, layout, rhs, rhs_layout),
            _ => go::<i64>(self, op, layout, rhs, rhs_layout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_associated_types_are_send_sync() {
        // `Backend::Device` and `Backend::Storage` must be `Send + Sync + Debug + 'static`.
        fn check<T: Send + Sync + std::fmt::Debug + 'static>() {}
        check::<CudaDevice>();
        check::<CudaStorage>();
    }

    #[test]
    fn launch_config_bounds() {
        assert_eq!(launch_config(1).grid_dim.0, 1);
        assert_eq!(launch_config(256).grid_dim.0, 1);
        assert_eq!(launch_config(257).grid_dim.0, 2);
        assert_eq!(launch_config(usize::MAX / 2).grid_dim.0 as u64, MAX_BLOCKS);
    }

    #[test]
    fn bounds_check_catches_overreach() {
        let l = Layout::contiguous(vec![2, 3]);
        assert!(check_bounds("t", &l, 6).is_ok());
        let err = check_bounds("t", &l, 5).unwrap_err().to_string();
        assert!(
            err.contains("reaches element 5 but the buffer holds 5"),
            "{err}"
        );
    }
}
