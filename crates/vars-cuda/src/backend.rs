//! [`Cuda`]: the `vars_core::Backend` implementation.
//!
//! A thin adapter: every method validates what the contract leaves to the backend (operands on
//! one device, integer division by zero), then calls the launcher of the op family in its own
//! module (`storage.rs` for fill/copy/cast/unary/binary/rng, `reduce.rs`, `matmul.rs`,
//! `index.rs`, `window.rs`, `rows.rs`, `sparse_coding.rs`) and turns a [`crate::CudaError`] into
//! `vars_core::Error::Backend` (engine errors such as an unsupported dtype pass through
//! unchanged). All work is queued on the device's one stream, so ops are ordered without
//! explicit synchronisation; host copies wait for it.

use crate::error::CudaError;
use crate::{CudaDevice, CudaStorage};
use std::sync::atomic::{AtomicU8, Ordering};
use vars_core::sparse::{IstaForward, IstaGrads, UnrolledIsta};
use vars_core::{
    Backend, BinaryOp, DType, Distribution, Error, HostData, Layout, ReduceOp, Result, UnaryOp,
    Window2d,
};

/// When [`Cuda`] answers the `unrolled_ista_forward/backward` hooks with its own sparse-coding
/// kernels instead of declining (`Ok(None)`, so `vars_core::sparse::unrolled_ista` runs its
/// composite of tensor ops). Results agree to rounding either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SparseCodingKernels {
    /// Where they were measured faster than the composite ([`crate::fused_pays_off`]); the
    /// default.
    Auto,
    /// Always (fused where it fits in shared memory, else tiled): for benchmarks and tests.
    Always,
    /// Never: the composite everywhere (A/B comparisons).
    Never,
}

static SPARSE_CODING_KERNELS: AtomicU8 = AtomicU8::new(0);

/// Sets [`SparseCodingKernels`] process-wide.
pub fn set_sparse_coding_kernels(mode: SparseCodingKernels) {
    let v = match mode {
        SparseCodingKernels::Auto => 0,
        SparseCodingKernels::Always => 1,
        SparseCodingKernels::Never => 2,
    };
    SPARSE_CODING_KERNELS.store(v, Ordering::Relaxed);
}

/// The current [`SparseCodingKernels`] mode.
pub fn sparse_coding_kernels() -> SparseCodingKernels {
    match SPARSE_CODING_KERNELS.load(Ordering::Relaxed) {
        1 => SparseCodingKernels::Always,
        2 => SparseCodingKernels::Never,
        _ => SparseCodingKernels::Auto,
    }
}

/// The CUDA backend. Select it by building tensors on a [`CudaDevice`]:
///
/// ```no_run
/// use vars_core::{DType, Tensor};
/// use vars_cuda::{Cuda, CudaDevice};
/// let dev = CudaDevice::new(0)?; // an error value (not a panic) without a GPU or driver
/// let x = Tensor::<Cuda>::randn([2, 3], DType::F32, 0, &dev)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Cuda;

fn core(e: CudaError) -> Error {
    e.into()
}

/// Every operand of a multi-input op must live on the same GPU (kernels run on one stream).
fn same_device(op: &'static str, a: &CudaStorage, others: &[&CudaStorage]) -> Result<()> {
    for b in others {
        if a.device() != b.device() {
            return Err(Error::DeviceMismatch {
                op,
                lhs: a.device().to_string(),
                rhs: b.device().to_string(),
            });
        }
    }
    Ok(())
}

impl Backend for Cuda {
    type Device = CudaDevice;
    type Storage = CudaStorage;

    fn name() -> &'static str {
        "cuda"
    }

    fn storage_device(storage: &CudaStorage) -> CudaDevice {
        storage.device().clone()
    }

    fn storage_dtype(storage: &CudaStorage) -> DType {
        storage.dtype()
    }

    fn storage_len(storage: &CudaStorage) -> usize {
        storage.len()
    }

    fn full(device: &CudaDevice, len: usize, dtype: DType, value: f64) -> Result<CudaStorage> {
        device.full(len, dtype, value).map_err(core)
    }

    fn from_host(device: &CudaDevice, data: HostData) -> Result<CudaStorage> {
        device.from_host(&data).map_err(core)
    }

    fn to_host(storage: &CudaStorage, layout: &Layout) -> Result<HostData> {
        storage.to_host(layout).map_err(core)
    }

    fn synchronize(device: &CudaDevice) -> Result<()> {
        device.synchronize().map_err(core)
    }

    fn random(
        device: &CudaDevice,
        len: usize,
        dtype: DType,
        dist: Distribution,
        seed: u64,
    ) -> Result<CudaStorage> {
        device.random(len, dtype, dist, seed).map_err(core)
    }

    fn copy_strided(storage: &CudaStorage, layout: &Layout) -> Result<CudaStorage> {
        storage.copy_strided(layout).map_err(core)
    }

    fn copy_into(
        src: &CudaStorage,
        src_layout: &Layout,
        dst: &mut CudaStorage,
        dst_layout: &Layout,
    ) -> Result<()> {
        same_device("copy_into", src, &[dst])?;
        src.copy_into(src_layout, dst, dst_layout).map_err(core)
    }

    fn cast(storage: &CudaStorage, layout: &Layout, dtype: DType) -> Result<CudaStorage> {
        storage.cast(layout, dtype).map_err(core)
    }

    fn unary(op: UnaryOp, storage: &CudaStorage, layout: &Layout) -> Result<CudaStorage> {
        if storage.dtype() == DType::I64 && op.supports_integers() {
            return integer_unary(op, storage, layout);
        }
        storage.unary(op, layout).map_err(core)
    }

    fn binary(
        op: BinaryOp,
        lhs: &CudaStorage,
        lhs_layout: &Layout,
        rhs: &CudaStorage,
        rhs_layout: &Layout,
    ) -> Result<CudaStorage> {
        same_device(op.name(), lhs, &[rhs])?;
        if op == BinaryOp::Div && lhs.dtype() == DType::I64 && rhs.dtype() == DType::I64 {
            check_no_zero_divisor(rhs, rhs_layout, lhs_layout)?;
        }
        lhs.binary(op, lhs_layout, rhs, rhs_layout).map_err(core)
    }

    fn where_cond(
        cond: &CudaStorage,
        cond_layout: &Layout,
        on_true: &CudaStorage,
        true_layout: &Layout,
        on_false: &CudaStorage,
        false_layout: &Layout,
    ) -> Result<CudaStorage> {
        same_device("where_cond", cond, &[on_true, on_false])?;
        cond.where_cond(cond_layout, on_true, true_layout, on_false, false_layout)
            .map_err(core)
    }

    fn reduce(
        op: ReduceOp,
        storage: &CudaStorage,
        layout: &Layout,
        axes: &[usize],
    ) -> Result<CudaStorage> {
        storage.reduce(op, layout, axes).map_err(core)
    }

    fn matmul(
        lhs: &CudaStorage,
        lhs_layout: &Layout,
        rhs: &CudaStorage,
        rhs_layout: &Layout,
    ) -> Result<CudaStorage> {
        same_device("matmul", lhs, &[rhs])?;
        lhs.matmul(lhs_layout, rhs, rhs_layout).map_err(core)
    }

    fn index_select(
        storage: &CudaStorage,
        layout: &Layout,
        dim: usize,
        indices: &CudaStorage,
        indices_layout: &Layout,
    ) -> Result<CudaStorage> {
        same_device("index_select", storage, &[indices])?;
        storage
            .index_select(layout, dim, indices, indices_layout)
            .map_err(core)
    }

    fn index_add(
        src: &CudaStorage,
        src_layout: &Layout,
        dim: usize,
        indices: &CudaStorage,
        indices_layout: &Layout,
        dim_size: usize,
    ) -> Result<CudaStorage> {
        same_device("index_add", src, &[indices])?;
        src.index_add(src_layout, dim, indices, indices_layout, dim_size)
            .map_err(core)
    }

    fn unfold2d(
        storage: &CudaStorage,
        layout: &Layout,
        window: Window2d,
        pad_value: f64,
    ) -> Result<CudaStorage> {
        storage.unfold2d(layout, window, pad_value).map_err(core)
    }

    fn fold2d(
        storage: &CudaStorage,
        layout: &Layout,
        window: Window2d,
        output_hw: (usize, usize),
    ) -> Result<CudaStorage> {
        storage.fold2d(layout, window, output_hw).map_err(core)
    }

    fn softmax_last_dim(
        x: &CudaStorage,
        layout: &Layout,
        log: bool,
    ) -> Result<Option<CudaStorage>> {
        x.softmax_last_dim(layout, log).map(Some).map_err(core)
    }

    fn softmax_last_dim_backward(
        y: &CudaStorage,
        y_layout: &Layout,
        grad: &CudaStorage,
        grad_layout: &Layout,
        log: bool,
    ) -> Result<Option<CudaStorage>> {
        same_device("softmax_backward", y, &[grad])?;
        y.softmax_last_dim_backward(y_layout, grad, grad_layout, log)
            .map(Some)
            .map_err(core)
    }

    fn layer_norm_last_dim(
        x: &CudaStorage,
        layout: &Layout,
        eps: f64,
    ) -> Result<Option<(CudaStorage, CudaStorage)>> {
        x.layer_norm_last_dim(layout, eps).map(Some).map_err(core)
    }

    fn layer_norm_last_dim_backward(
        xhat: &CudaStorage,
        xhat_layout: &Layout,
        rstd: &CudaStorage,
        rstd_layout: &Layout,
        grad: &CudaStorage,
        grad_layout: &Layout,
    ) -> Result<Option<CudaStorage>> {
        same_device("layer_norm_backward", xhat, &[rstd, grad])?;
        xhat.layer_norm_last_dim_backward(xhat_layout, rstd, rstd_layout, grad, grad_layout)
            .map(Some)
            .map_err(core)
    }

    fn unrolled_ista_forward(
        cfg: &UnrolledIsta,
        g: &CudaStorage,
        g_layout: &Layout,
        b: &CudaStorage,
        b_layout: &Layout,
        lam: &CudaStorage,
        lam_layout: &Layout,
        l: &CudaStorage,
        l_layout: &Layout,
        save_for_backward: bool,
    ) -> Result<Option<IstaForward<CudaStorage>>> {
        // Codes are (…, m, d); in `Auto`, decline (the composite runs) where the kernels do not
        // pay off.
        let dims = b_layout.dims();
        let use_kernels = match sparse_coding_kernels() {
            SparseCodingKernels::Always => true,
            SparseCodingKernels::Never => false,
            SparseCodingKernels::Auto => {
                dims.len() >= 2
                    && crate::sparse_coding::fused_pays_off(
                        dims[dims.len() - 2],
                        dims[dims.len() - 1],
                    )
            }
        };
        if !use_kernels {
            return Ok(None);
        }
        same_device("unrolled_ista", g, &[b, lam, l])?;
        CudaStorage::unrolled_ista_forward_with(
            None,
            cfg,
            g,
            g_layout,
            b,
            b_layout,
            lam,
            lam_layout,
            l,
            l_layout,
            save_for_backward,
        )
        .map(Some)
        .map_err(core)
    }

    fn unrolled_ista_backward(
        cfg: &UnrolledIsta,
        g: &CudaStorage,
        g_layout: &Layout,
        b: &CudaStorage,
        b_layout: &Layout,
        lam: &CudaStorage,
        lam_layout: &Layout,
        l: &CudaStorage,
        l_layout: &Layout,
        saved: Option<&CudaStorage>,
        grad: &CudaStorage,
        grad_layout: &Layout,
    ) -> Result<Option<IstaGrads<CudaStorage>>> {
        // Only reached after this backend's forward ran (else the composite's graph is used);
        // `Never` set in between still means "no kernels".
        if sparse_coding_kernels() == SparseCodingKernels::Never {
            return Ok(None);
        }
        same_device("unrolled_ista_backward", g, &[b, lam, l, grad])?;
        CudaStorage::unrolled_ista_backward_with(
            None,
            cfg,
            g,
            g_layout,
            b,
            b_layout,
            lam,
            lam_layout,
            l,
            l_layout,
            saved,
            grad,
            grad_layout,
        )
        .map(Some)
        .map_err(core)
    }
}

/// Integer unary ops, composed from the i64 binary kernels (the unary kernels are float-only):
/// every op that `UnaryOp::supports_integers` lists, with the CPU backend's semantics
/// (wrapping arithmetic, `sign(0) = 0`, step at 0 is 0, clamp bounds truncated toward zero).
fn integer_unary(op: UnaryOp, x: &CudaStorage, layout: &Layout) -> Result<CudaStorage> {
    let dev = x.device();
    let n = layout.elem_count();
    let flat = Layout::contiguous(layout.shape().clone());
    let constant = |v: f64| -> Result<CudaStorage> { dev.full(n, DType::I64, v).map_err(core) };
    let bin = |op: BinaryOp, a: &CudaStorage, la: &Layout, b: &CudaStorage, lb: &Layout| {
        a.binary(op, la, b, lb).map_err(core)
    };
    match op {
        UnaryOp::Neg => bin(BinaryOp::Sub, &constant(0.0)?, &flat, x, layout),
        UnaryOp::Sqr => bin(BinaryOp::Mul, x, layout, x, layout),
        UnaryOp::Abs => {
            let neg = bin(BinaryOp::Sub, &constant(0.0)?, &flat, x, layout)?;
            bin(BinaryOp::Maximum, x, layout, &neg, &flat)
        }
        UnaryOp::Sign => {
            let zero = constant(0.0)?;
            let pos = bin(BinaryOp::Gt, x, layout, &zero, &flat)?;
            let neg = bin(BinaryOp::Lt, x, layout, &zero, &flat)?;
            bin(BinaryOp::Sub, &pos, &flat, &neg, &flat)
        }
        UnaryOp::Relu => bin(BinaryOp::Maximum, x, layout, &constant(0.0)?, &flat),
        UnaryOp::Step => bin(BinaryOp::Gt, x, layout, &constant(0.0)?, &flat),
        UnaryOp::Affine { mul, add } if mul.fract() == 0.0 && add.fract() == 0.0 => {
            let scaled = bin(BinaryOp::Mul, x, layout, &constant(mul)?, &flat)?;
            bin(BinaryOp::Add, &scaled, &flat, &constant(add)?, &flat)
        }
        UnaryOp::Affine { .. } => {
            // Non-integral coefficients: through f64 and back, truncating like `as i64`.
            let wide = x.cast(layout, DType::F64).map_err(core)?;
            let y = wide.unary(op, &flat).map_err(core)?;
            y.cast(&flat, DType::I64).map_err(core)
        }
        // `x < c ? c as i64 : x` is `max(x, trunc(c))` for every integer x.
        UnaryOp::ClampMin(c) => bin(BinaryOp::Maximum, x, layout, &constant(c.trunc())?, &flat),
        UnaryOp::ClampMax(c) => bin(BinaryOp::Minimum, x, layout, &constant(c.trunc())?, &flat),
        other => Err(Error::UnsupportedDType {
            op: other.name(),
            dtype: DType::I64,
            supported: "f32, f64",
        }),
    }
}

/// The CPU backend reports integer division by zero as an error; the i64 kernel writes 0, so the
/// divisor is checked first (one reduction and a one-element copy to the host).
fn check_no_zero_divisor(
    rhs: &CudaStorage,
    rhs_layout: &Layout,
    lhs_layout: &Layout,
) -> Result<()> {
    if rhs_layout.elem_count() == 0 {
        return Ok(());
    }
    let dev = rhs.device();
    let n = rhs_layout.elem_count();
    let flat = Layout::contiguous(rhs_layout.shape().clone());
    let zeros = dev.full(n, DType::I64, 0.0).map_err(core)?;
    let is_zero = rhs
        .binary(BinaryOp::Eq, rhs_layout, &zeros, &flat)
        .map_err(core)?;
    let axes: Vec<usize> = (0..flat.rank()).collect();
    let any = is_zero.reduce(ReduceOp::Max, &flat, &axes).map_err(core)?;
    let host = any
        .to_host(&Layout::contiguous(vec![1; flat.rank()]))
        .map_err(core)?;
    if host.to_f64_vec().first().copied().unwrap_or(0.0) != 0.0 {
        return Err(Error::InvalidArgument {
            op: "div",
            shape: lhs_layout.shape().clone(),
            msg: "integer division by zero".into(),
        });
    }
    Ok(())
}
