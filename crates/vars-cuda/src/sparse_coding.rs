//! The fused sparse-coding loop on CUDA: [`vars_core::sparse::unrolled_ista`]'s forward and its
//! exact backward (spec §1.3, §3.3 steps 8–9), the twin of `vars-cpu/src/sparse_coding.rs`
//! (same arithmetic, same saved state, same validation); kernels in `kernels/sparse_coding.cu`,
//! design notes in `docs/cuda-sparse-coding.md`.
//!
//! Two implementations, chosen per call:
//!
//! - **fused**: one thread block of [`THREADS`] threads per batch entry, `G` and the codes in
//!   dynamic shared memory, all `T` steps (or the whole reverse sweep) in one launch. It needs
//!   [`forward_smem_bytes`] `= (m² + 2·m·d)·size_of::<T>()` bytes for the forward and
//!   [`backward_smem_bytes`] `= (m² + 3·m·d)·size_of::<T>()` for the backward, at most the
//!   device's opt-in maximum per block (`CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN`,
//!   232 448 bytes = 227 KiB on H100) minus the kernel's static shared memory (0 for the forward,
//!   `THREADS·8` = 2 KiB for the backward's reduction buffer); above 48 KiB the launch opts in with
//!   `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`.
//! - **tiled**: for larger problems, global-memory buffers and one grid-stride launch per step
//!   (the forward) or three per step plus one (the backward).
//!
//! **When the backend uses them.** `impl Backend for Cuda` runs these kernels only where the
//! fused kernel beats the composite of tensor ops ([`fused_pays_off`], per-entry work
//! `m²·d ≤` [`FUSED_MAX_WORK`]); above it the hook declines and `unrolled_ista` runs its
//! composite, whose batched cuBLAS GEMMs use the whole GPU. Measured on an H100 (criterion,
//! `cargo xtask bench cuda --features cuda`, 192 entries, T = 5, f32): at m = 64, d = 32 the fused
//! kernel is 3.7× faster than the composite forward and 2.7× forward + backward; at m = 128,
//! d = 64 it is 0.69× and 0.43× (one block per entry then does too much serial work). The
//! functions below take whichever path they are given, so tests and callers can still run both.
//!
//! Inputs are read through their views (any strides, stride-0 broadcasts): each batched operand
//! is passed as an [`IstaMatrix`], a [`StridedLayout`] over its batch dims plus its row and
//! column strides. Only a view whose batch dims do not merge to at most
//! [`StridedLayout::MAX_RANK`] dims is first copied to a contiguous buffer (on the device).
//! Outputs and gradients are fresh contiguous buffers; the gradients have the shapes of the four
//! views (one entry per batch entry, broadcast entries not summed: the engine reduces them), like
//! the CPU backend.

use crate::device::{driver_err, CudaDevice};
use crate::error::{CudaError, Result};
use crate::kernels::{self, StridedLayout};
use crate::storage::{check_bounds, launch_config, unsupported, CudaStorage, DeviceElement};
use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute};
use cudarc::driver::{CudaFunction, CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};
use vars_core::nn::Shrink;
use vars_core::sparse::{IstaForward, IstaGrads, IstaInit, UnrolledIsta};
use vars_core::{DType, Error, Layout, Shape};

const OP: &str = "unrolled_ista";
const OP_BACKWARD: &str = "unrolled_ista_backward";

/// Threads per block of the per-entry kernels (`VARS_ISTA_THREADS` in the `.cu` file; the
/// block reductions assume exactly this many).
pub(crate) const THREADS: u32 = 256;

/// Grid cap of the per-entry kernels (they loop over the remaining entries).
const MAX_ENTRY_BLOCKS: usize = 1 << 16;

/// The kernel names, in the order of the `.cu` file's `VARS_ISTA_KERNELS` macro.
const KERNEL_STEMS: [&str; 8] = [
    "ista_forward_fused",
    "ista_backward_fused",
    "ista_forward_init",
    "ista_forward_step",
    "ista_backward_gz",
    "ista_backward_h",
    "ista_backward_gg",
    "ista_backward_finish",
];

fn kernel(stem: &str, dtype: DType) -> String {
    format!("{stem}_{dtype}")
}

/// Entry points of the module's kernels.
pub(crate) fn entries() -> Vec<String> {
    let mut v = Vec::new();
    for d in kernels::FLOAT_DTYPES {
        for stem in KERNEL_STEMS {
            v.push(kernel(stem, d));
        }
    }
    v
}

// ---- kernel arguments --------------------------------------------------------------------------

/// A batched matrix operand as the kernels take it (the C struct `IstaMatrix`, 160 bytes):
/// entry `e`'s element `(r, c)` is at `batch.index(e) + r·rs + c·cs`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IstaMatrix {
    pub batch: StridedLayout,
    pub rs: u64,
    pub cs: u64,
}

// SAFETY: `#[repr(C)]` plain-old-data matching the C struct `IstaMatrix` in sparse_coding.cu.
unsafe impl DeviceRepr for IstaMatrix {}

impl IstaMatrix {
    /// The view's batch dims (all but the last two) as a [`StridedLayout`], plus its last two
    /// strides. Fails (a [`CudaError::Layout`]) when the batch dims do not merge to
    /// [`StridedLayout::MAX_RANK`] dims.
    pub(crate) fn new(op: &'static str, layout: &Layout) -> Result<Self> {
        let r = layout.rank();
        if r < 2 {
            return Err(CudaError::Layout {
                op,
                msg: format!("expected a view of rank >= 2, got {:?}", layout.dims()),
            });
        }
        let batch = Layout::from_parts(
            Shape::new(layout.dims()[..r - 2].to_vec()),
            layout.strides()[..r - 2].to_vec(),
            layout.offset(),
        );
        Ok(IstaMatrix {
            batch: StridedLayout::new(op, &batch)?,
            rs: layout.strides()[r - 2] as u64,
            cs: layout.strides()[r - 1] as u64,
        })
    }

    /// Storage index of entry `e`'s element `(r, c)`: the host twin of `ista_at`.
    #[cfg(test)]
    pub(crate) fn index(&self, e: u64, r: u64, c: u64) -> u64 {
        self.batch.index(e) + r * self.rs + c * self.cs
    }
}

/// The problem as the kernels take it (the C struct `IstaDims`, 48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IstaDims {
    pub batch: u64,
    pub m: u64,
    pub d: u64,
    pub steps: u64,
    /// `VARS_SHRINK_*`: identity 0, soft threshold 1, GELU 2.
    pub shrink: u32,
    /// `VARS_INIT_*`: shrink 0, zero 1.
    pub init: u32,
    pub save: u32,
    pub _pad: u32,
}

// SAFETY: `#[repr(C)]` plain-old-data matching the C struct `IstaDims` in sparse_coding.cu.
unsafe impl DeviceRepr for IstaDims {}

impl IstaDims {
    fn new(cfg: &UnrolledIsta, geo: &Geometry, save: bool) -> Self {
        IstaDims {
            batch: geo.batch as u64,
            m: geo.m as u64,
            d: geo.d as u64,
            steps: cfg.steps as u64,
            shrink: match cfg.shrink {
                Shrink::Identity => 0,
                Shrink::SoftThreshold => 1,
                Shrink::Gelu => 2,
            },
            init: match cfg.init {
                IstaInit::Shrink => 0,
                IstaInit::Zero => 1,
            },
            save: u32::from(save),
            _pad: 0,
        }
    }
}

// ---- geometry and planning (pure, tested without a device) -------------------------------------

/// Validated shapes: the batch entry count (product of the batch dims), `m` and `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub batch: usize,
    pub m: usize,
    pub d: usize,
}

impl Geometry {
    /// The checks of the CPU backend: every view inside its buffer (`lens`), equal rank ≥ 2 and
    /// batch dims, `G` square `(…, m, m)`, `b` `(…, m, d)`, λ and L `(…, 1, 1)`.
    pub(crate) fn new(op: &'static str, views: [(usize, &Layout); 4]) -> Result<Geometry> {
        for (len, l) in views {
            check_bounds(op, l, len)?;
        }
        let [gl, bl, laml, ll] = views.map(|v| v.1);
        let r = gl.rank();
        let core = CudaError::Core;
        let bad = |other: &Layout, what: &str| {
            core(Error::ShapeMismatch {
                op,
                lhs: gl.shape().clone(),
                rhs: other.shape().clone(),
                hint: format!(" ({what})"),
            })
        };
        if r < 2 {
            return Err(core(Error::InvalidArgument {
                op,
                shape: gl.shape().clone(),
                msg: "G must have rank >= 2, shape (…, m, m)".into(),
            }));
        }
        let batch_dims = &gl.dims()[..r - 2];
        for other in [bl, laml, ll] {
            if other.rank() != r || &other.dims()[..r - 2] != batch_dims {
                return Err(bad(other, "operands must have equal rank and batch dims"));
            }
        }
        let (m, m2) = (gl.dims()[r - 2], gl.dims()[r - 1]);
        if m != m2 {
            return Err(core(Error::InvalidArgument {
                op,
                shape: gl.shape().clone(),
                msg: "G must be square in its last two dims".into(),
            }));
        }
        if bl.dims()[r - 2] != m {
            return Err(bad(bl, "b must be (…, m, d) with G's m"));
        }
        for other in [laml, ll] {
            if other.dims()[r - 2..] != [1, 1] {
                return Err(bad(other, "λ and L must be (…, 1, 1)"));
            }
        }
        Ok(Geometry {
            batch: batch_dims.iter().product(),
            m,
            d: bl.dims()[r - 1],
        })
    }

    fn n(&self) -> usize {
        self.m * self.d
    }
}

/// Derivative blocks saved per entry: one per step plus one for `A0 = shrink(b, λ)` (none for
/// the identity shrink). The CPU backend's layout.
pub(crate) fn deriv_blocks(cfg: &UnrolledIsta) -> usize {
    match cfg.shrink {
        Shrink::Identity => 0,
        _ => cfg.steps + usize::from(cfg.init == IstaInit::Shrink),
    }
}

/// Saved elements per entry, `(T + 2·blocks)·m·d` (`None` on overflow).
pub(crate) fn saved_len(cfg: &UnrolledIsta, m: usize, d: usize) -> Option<usize> {
    cfg.steps
        .checked_add(deriv_blocks(cfg).checked_mul(2)?)?
        .checked_mul(m.checked_mul(d)?)
}

/// Dynamic shared memory of the fused forward: `G`, the codes and the next codes,
/// `(m² + 2·m·d)·elem` bytes (`None` on overflow).
pub fn forward_smem_bytes(m: usize, d: usize, elem: usize) -> Option<usize> {
    m.checked_mul(m)?
        .checked_add(m.checked_mul(d)?.checked_mul(2)?)?
        .checked_mul(elem)
}

/// Dynamic shared memory of the fused backward: `G`, `gA`, `gZ` and the saved `A_k`,
/// `(m² + 3·m·d)·elem` bytes (`None` on overflow).
pub fn backward_smem_bytes(m: usize, d: usize, elem: usize) -> Option<usize> {
    m.checked_mul(m)?
        .checked_add(m.checked_mul(d)?.checked_mul(3)?)?
        .checked_mul(elem)
}

/// Whether to run the fused kernel: `requested` is `None` (automatic: fused when `bytes` fits in
/// `limit`), `Some(true)` (fused, an error when it does not fit) or `Some(false)` (tiled).
pub(crate) fn choose_fused(
    op: &'static str,
    requested: Option<bool>,
    bytes: Option<usize>,
    limit: usize,
) -> Result<bool> {
    let fits = bytes.is_some_and(|b| b <= limit);
    match requested {
        None => Ok(fits),
        Some(false) => Ok(false),
        Some(true) if fits => Ok(true),
        Some(true) => Err(CudaError::Layout {
            op,
            msg: format!(
                "the fused kernel needs {} bytes of shared memory per block, the device allows \
                 {limit}; use the tiled path",
                bytes.map_or_else(|| "more than usize::MAX".to_string(), |b| b.to_string())
            ),
        }),
    }
}

fn elem_size(dtype: DType) -> usize {
    match dtype {
        DType::F32 => 4,
        _ => 8,
    }
}

/// The opt-in maximum of shared memory per block minus `f`'s static shared memory.
fn smem_limit(dev: &CudaDevice, f: &CudaFunction) -> Result<usize> {
    let optin = dev
        .context()
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
        .map_err(driver_err("cuDeviceGetAttribute"))?;
    let fixed = f
        .shared_size_bytes()
        .map_err(driver_err("cuFuncGetAttribute"))?;
    Ok((optin.max(0) as usize).saturating_sub(fixed.max(0) as usize))
}

/// Launch configuration of a per-entry kernel with `bytes` of dynamic shared memory, given the
/// function's [`smem_limit`] (which the caller has already queried to choose the path).
///
/// The function's dynamic shared-memory limit (required above 48 KiB) is raised to that whole
/// opt-in budget, the same value on every call, never to this launch's `bytes`: threads
/// launching the same function concurrently must not lower the limit below another thread's
/// launch (that race made launches fail with `CUDA_ERROR_INVALID_VALUE` on the first GPU run).
fn entry_config(
    dev: &CudaDevice,
    f: &CudaFunction,
    batch: usize,
    bytes: usize,
    limit: usize,
) -> Result<LaunchConfig> {
    if bytes > 0 {
        // cudarc's `set_attribute` does not make the context current itself.
        dev.context()
            .bind_to_thread()
            .map_err(driver_err("cuCtxSetCurrent"))?;
        f.set_attribute(
            CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            i32::try_from(limit).unwrap_or(i32::MAX),
        )
        .map_err(driver_err("cuFuncSetAttribute"))?;
    }
    Ok(LaunchConfig {
        grid_dim: (batch.clamp(1, MAX_ENTRY_BLOCKS) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: bytes as u32,
    })
}

/// Which paths an automatic call takes on `dev` for `m`, `d` and `dtype`:
/// `(forward fused, backward fused)`.
fn plan(dev: &CudaDevice, dtype: DType, m: usize, d: usize) -> Result<(bool, bool)> {
    let e = elem_size(dtype);
    let ff = dev.function(
        &kernels::SPARSE_CODING,
        &kernel("ista_forward_fused", dtype),
    )?;
    let fb = dev.function(
        &kernels::SPARSE_CODING,
        &kernel("ista_backward_fused", dtype),
    )?;
    Ok((
        choose_fused(OP, None, forward_smem_bytes(m, d, e), smem_limit(dev, &ff)?)?,
        choose_fused(
            OP_BACKWARD,
            None,
            backward_smem_bytes(m, d, e),
            smem_limit(dev, &fb)?,
        )?,
    ))
}

// ---- views -------------------------------------------------------------------------------------

/// An operand as the kernels read it: the storage (the caller's, or a contiguous device copy
/// when the view's batch dims cannot be expressed) and its [`IstaMatrix`].
struct Operand<'a> {
    storage: &'a CudaStorage,
    copy: Option<CudaStorage>,
    view: IstaMatrix,
}

impl<'a> Operand<'a> {
    fn new(op: &'static str, storage: &'a CudaStorage, layout: &Layout) -> Result<Self> {
        match IstaMatrix::new(op, layout) {
            Ok(view) => Ok(Operand {
                storage,
                copy: None,
                view,
            }),
            Err(CudaError::Layout { .. }) => {
                let copy = storage.copy_strided(layout)?;
                let view = IstaMatrix::new(op, &Layout::contiguous(layout.shape().clone()))?;
                Ok(Operand {
                    storage,
                    copy: Some(copy),
                    view,
                })
            }
            Err(e) => Err(e),
        }
    }

    fn slice<T: DeviceElement>(&self) -> &CudaSlice<T> {
        self.copy.as_ref().unwrap_or(self.storage).slice::<T>()
    }
}

/// Checks that every operand has `g`'s dtype and that it is f32 or f64.
fn check_dtypes(op: &'static str, g: &CudaStorage, others: &[&CudaStorage]) -> Result<DType> {
    let dtype = g.dtype();
    if !matches!(dtype, DType::F32 | DType::F64) {
        return Err(unsupported(op, dtype, "f32, f64"));
    }
    for o in others {
        if o.dtype() != dtype {
            return Err(CudaError::Core(Error::DTypeMismatch {
                op,
                lhs: dtype,
                rhs: o.dtype(),
            }));
        }
    }
    Ok(dtype)
}

fn zeros<T: DeviceElement>(dev: &CudaDevice, len: usize) -> Result<CudaSlice<T>> {
    if len == 0 {
        return dev.alloc::<T>(0);
    }
    dev.stream()
        .alloc_zeros::<T>(len)
        .map_err(driver_err("cuMemAlloc"))
}

fn overflow(op: &'static str) -> CudaError {
    CudaError::Layout {
        op,
        msg: "problem size overflows usize".into(),
    }
}

// ---- entry points ------------------------------------------------------------------------------

/// Per-entry work `m²·d` up to which [`fused_pays_off`]: twice the largest measured size where
/// the fused kernel won (m 64, d 32: 131 072), below the smallest where it lost (m 128, d 64:
/// 1 048 576). Sizes in between are unmeasured and go to the composite.
pub const FUSED_MAX_WORK: usize = 1 << 18;

/// Whether the automatic choice runs these kernels for codes `(m, d)` (see the module docs).
pub fn fused_pays_off(m: usize, d: usize) -> bool {
    m.checked_mul(m)
        .and_then(|mm| mm.checked_mul(d))
        .is_some_and(|work| work <= FUSED_MAX_WORK)
}

impl CudaStorage {
    /// [`vars_core::Backend::unrolled_ista_forward`] on CUDA (what `impl Backend for Cuda`
    /// calls, with `fused = None`): the contiguous codes `(…, m, d)` and, with
    /// `save_for_backward`, the saved state (the CPU backend's layout). `fused` picks the path:
    /// `None` (automatic: fused when it fits in shared memory), `Some(true)` (the fused kernel;
    /// an error when it does not fit) or `Some(false)` (the tiled kernels; tests and benches).
    #[doc(hidden)]
    pub fn unrolled_ista_forward_with(
        fused: Option<bool>,
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
    ) -> Result<IstaForward<CudaStorage>> {
        let ops = [
            (g, g_layout),
            (b, b_layout),
            (lam, lam_layout),
            (l, l_layout),
        ];
        forward(fused, cfg, ops, save_for_backward)
    }

    /// [`vars_core::Backend::unrolled_ista_backward`] on CUDA: contiguous gradients shaped like
    /// the four views, on the path `fused` picks (see
    /// [`CudaStorage::unrolled_ista_forward_with`]). Without `saved` (not produced by this
    /// backend's forward) the forward is rerun on the same path to produce it.
    #[doc(hidden)]
    pub fn unrolled_ista_backward_with(
        fused: Option<bool>,
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
    ) -> Result<IstaGrads<CudaStorage>> {
        let ops = [
            (g, g_layout),
            (b, b_layout),
            (lam, lam_layout),
            (l, l_layout),
        ];
        backward(fused, cfg, ops, saved, (grad, grad_layout))
    }
}

impl CudaDevice {
    /// Whether an automatic [`CudaStorage::unrolled_ista_forward_with`] / `…_backward_with` on this
    /// device runs the fused kernel for `m` atoms, `d` columns and `dtype`:
    /// `(forward fused, backward fused)`.
    #[doc(hidden)]
    pub fn unrolled_ista_plan(&self, dtype: DType, m: usize, d: usize) -> Result<(bool, bool)> {
        if !matches!(dtype, DType::F32 | DType::F64) {
            return Err(unsupported(OP, dtype, "f32, f64"));
        }
        plan(self, dtype, m, d)
    }
}

type Views<'a> = [(&'a CudaStorage, &'a Layout); 4];

fn forward(
    fused: Option<bool>,
    cfg: &UnrolledIsta,
    ops: Views<'_>,
    save: bool,
) -> Result<IstaForward<CudaStorage>> {
    let geo = Geometry::new(OP, ops.map(|(s, l)| (s.len(), l)))?;
    match check_dtypes(OP, ops[0].0, &[ops[1].0, ops[2].0, ops[3].0])? {
        DType::F32 => forward_typed::<f32>(fused, cfg, &geo, ops, save),
        _ => forward_typed::<f64>(fused, cfg, &geo, ops, save),
    }
}

fn backward(
    fused: Option<bool>,
    cfg: &UnrolledIsta,
    ops: Views<'_>,
    saved: Option<&CudaStorage>,
    (grad, grad_layout): (&CudaStorage, &Layout),
) -> Result<IstaGrads<CudaStorage>> {
    let geo = Geometry::new(OP_BACKWARD, ops.map(|(s, l)| (s.len(), l)))?;
    check_bounds(OP_BACKWARD, grad_layout, grad.len())?;
    if grad_layout.shape() != ops[1].1.shape() {
        return Err(CudaError::Core(Error::ShapeMismatch {
            op: OP_BACKWARD,
            lhs: ops[1].1.shape().clone(),
            rhs: grad_layout.shape().clone(),
            hint: " (the output gradient must have the output's shape (…, m, d))".into(),
        }));
    }
    // Without saved state (not produced by this backend's forward), recompute it.
    let recomputed;
    let saved = match saved {
        Some(s) => s,
        None => {
            recomputed = forward(fused, cfg, ops, true)?.saved;
            recomputed.as_ref().ok_or_else(|| {
                CudaError::Core(Error::Backend {
                    backend: "cuda",
                    msg: format!("{OP_BACKWARD}: the forward saved no state"),
                })
            })?
        }
    };
    let others = [ops[1].0, ops[2].0, ops[3].0, grad, saved];
    match check_dtypes(OP_BACKWARD, ops[0].0, &others)? {
        DType::F32 => backward_typed::<f32>(fused, cfg, &geo, ops, saved, (grad, grad_layout)),
        _ => backward_typed::<f64>(fused, cfg, &geo, ops, saved, (grad, grad_layout)),
    }
}

fn forward_typed<T: DeviceElement>(
    fused: Option<bool>,
    cfg: &UnrolledIsta,
    geo: &Geometry,
    ops: Views<'_>,
    save: bool,
) -> Result<IstaForward<CudaStorage>> {
    let dev = ops[0].0.device();
    let n = geo.n();
    let total = geo.batch.checked_mul(n).ok_or_else(|| overflow(OP))?;
    let s_len = if save {
        saved_len(cfg, geo.m, geo.d).ok_or_else(|| overflow(OP))?
    } else {
        0
    };
    let saved_total = geo.batch.checked_mul(s_len).ok_or_else(|| overflow(OP))?;
    let mut out = dev.alloc::<T>(total)?;
    let mut saved = dev.alloc::<T>(saved_total)?;
    if total > 0 {
        let [g, b, lam, l] = [0, 1, 2, 3].map(|i| Operand::new(OP, ops[i].0, ops[i].1));
        let (g, b, lam, l) = (g?, b?, lam?, l?);
        let p = IstaDims::new(cfg, geo, save);
        let ff = dev.function(
            &kernels::SPARSE_CODING,
            &kernel("ista_forward_fused", T::DTYPE),
        )?;
        let bytes = forward_smem_bytes(geo.m, geo.d, std::mem::size_of::<T>());
        let limit = smem_limit(dev, &ff)?;
        if choose_fused(OP, fused, bytes, limit)? {
            let config = entry_config(dev, &ff, geo.batch, bytes.unwrap_or(0), limit)?;
            let mut a = dev.stream().launch_builder(&ff);
            a.arg(&p)
                .arg(&g.view)
                .arg(g.slice::<T>())
                .arg(&b.view)
                .arg(b.slice::<T>())
                .arg(&lam.view.batch)
                .arg(lam.slice::<T>())
                .arg(&l.view.batch)
                .arg(l.slice::<T>())
                .arg(&mut out)
                .arg(&mut saved);
            // SAFETY: ista_forward_fused_<t>(IstaDims, IstaMatrix, const T*, IstaMatrix,
            // const T*, StridedLayout, const T*, StridedLayout, const T*, T* out, T* saved);
            // views bounds-checked, out has batch·m·d and saved batch·saved_len elements, the
            // dynamic shared memory is the kernel's (m² + 2md)·sizeof(T).
            unsafe { a.launch(config) }.map_err(driver_err("cuLaunchKernel"))?;
        } else {
            let init = dev.function(
                &kernels::SPARSE_CODING,
                &kernel("ista_forward_init", T::DTYPE),
            )?;
            let step = dev.function(
                &kernels::SPARSE_CODING,
                &kernel("ista_forward_step", T::DTYPE),
            )?;
            let mut next = dev.alloc::<T>(total)?;
            let mut a = dev.stream().launch_builder(&init);
            a.arg(&p)
                .arg(&b.view)
                .arg(b.slice::<T>())
                .arg(&lam.view.batch)
                .arg(lam.slice::<T>())
                .arg(&mut out)
                .arg(&mut saved);
            // SAFETY: ista_forward_init_<t>(IstaDims, IstaMatrix, const T*, StridedLayout,
            // const T*, T* a, T* saved); sizes as above.
            unsafe { a.launch(launch_config(total)) }.map_err(driver_err("cuLaunchKernel"))?;
            for k in 0..cfg.steps as u64 {
                let mut a = dev.stream().launch_builder(&step);
                a.arg(&p)
                    .arg(&k)
                    .arg(&g.view)
                    .arg(g.slice::<T>())
                    .arg(&b.view)
                    .arg(b.slice::<T>())
                    .arg(&lam.view.batch)
                    .arg(lam.slice::<T>())
                    .arg(&l.view.batch)
                    .arg(l.slice::<T>())
                    .arg(&out)
                    .arg(&mut next)
                    .arg(&mut saved);
                // SAFETY: ista_forward_step_<t>(IstaDims, u64 k, IstaMatrix, const T*,
                // IstaMatrix, const T*, StridedLayout, const T*, StridedLayout, const T*,
                // const T* a, T* a_next, T* saved); `out` and `next` are distinct buffers of
                // batch·m·d elements.
                unsafe { a.launch(launch_config(total)) }.map_err(driver_err("cuLaunchKernel"))?;
                std::mem::swap(&mut out, &mut next);
            }
        }
    }
    Ok(IstaForward {
        output: dev.storage(out),
        saved: save.then(|| dev.storage(saved)),
    })
}

fn backward_typed<T: DeviceElement>(
    fused: Option<bool>,
    cfg: &UnrolledIsta,
    geo: &Geometry,
    ops: Views<'_>,
    saved: &CudaStorage,
    (grad, grad_layout): (&CudaStorage, &Layout),
) -> Result<IstaGrads<CudaStorage>> {
    let dev = ops[0].0.device();
    let (m, n, batch) = (geo.m, geo.n(), geo.batch);
    let s_len = saved_len(cfg, m, geo.d).ok_or_else(|| overflow(OP_BACKWARD))?;
    let total = batch.checked_mul(n).ok_or_else(|| overflow(OP_BACKWARD))?;
    let gg_len = m
        .checked_mul(m)
        .and_then(|mm| mm.checked_mul(batch))
        .ok_or_else(|| overflow(OP_BACKWARD))?;
    if Some(saved.len()) != batch.checked_mul(s_len) {
        return Err(CudaError::Core(Error::Backend {
            backend: "cuda",
            msg: format!(
                "{OP_BACKWARD}: saved state has {} elements, expected {} for this problem",
                saved.len(),
                batch.saturating_mul(s_len)
            ),
        }));
    }
    if total == 0 {
        // No codes: every gradient is zero (∂G has m² entries per entry even when d = 0).
        return Ok(IstaGrads {
            g: dev.storage(zeros::<T>(dev, gg_len)?),
            b: dev.storage(zeros::<T>(dev, 0)?),
            lam: dev.storage(zeros::<T>(dev, batch)?),
            l: dev.storage(zeros::<T>(dev, batch)?),
        });
    }
    let [g, b, lam, l] = [0, 1, 2, 3].map(|i| Operand::new(OP_BACKWARD, ops[i].0, ops[i].1));
    let (g, b, lam, l) = (g?, b?, lam?, l?);
    let p = IstaDims::new(cfg, geo, true);
    let sv = saved.slice::<T>();
    let mut glam = dev.alloc::<T>(batch)?;
    let mut gl = dev.alloc::<T>(batch)?;
    let fb = dev.function(
        &kernels::SPARSE_CODING,
        &kernel("ista_backward_fused", T::DTYPE),
    )?;
    let bytes = backward_smem_bytes(m, geo.d, std::mem::size_of::<T>());
    let limit = smem_limit(dev, &fb)?;
    let (gg, gb) = if choose_fused(OP_BACKWARD, fused, bytes, limit)? {
        let gr = Operand::new(OP_BACKWARD, grad, grad_layout)?;
        let mut gg = dev.alloc::<T>(gg_len)?;
        let mut gb = dev.alloc::<T>(total)?;
        let config = entry_config(dev, &fb, batch, bytes.unwrap_or(0), limit)?;
        let mut a = dev.stream().launch_builder(&fb);
        a.arg(&p)
            .arg(&g.view)
            .arg(g.slice::<T>())
            .arg(&b.view)
            .arg(b.slice::<T>())
            .arg(&lam.view.batch)
            .arg(lam.slice::<T>())
            .arg(&l.view.batch)
            .arg(l.slice::<T>())
            .arg(&gr.view)
            .arg(gr.slice::<T>())
            .arg(sv)
            .arg(&mut gg)
            .arg(&mut gb)
            .arg(&mut glam)
            .arg(&mut gl);
        // SAFETY: ista_backward_fused_<t>(IstaDims, IstaMatrix, const T*, IstaMatrix, const T*,
        // StridedLayout, const T*, StridedLayout, const T*, IstaMatrix, const T* grad,
        // const T* saved, T* gg, T* gb, T* glam, T* gl); views bounds-checked, saved has
        // batch·saved_len elements, outputs batch·m², batch·m·d, batch, batch; the dynamic
        // shared memory is the kernel's (m² + 3md)·sizeof(T) and fits beside its static buffer.
        unsafe { a.launch(config) }.map_err(driver_err("cuLaunchKernel"))?;
        (gg, gb)
    } else {
        let f = |stem: &str| dev.function(&kernels::SPARSE_CODING, &kernel(stem, T::DTYPE));
        let (fgz, fh, fgg, ffin) = (
            f("ista_backward_gz")?,
            f("ista_backward_h")?,
            f("ista_backward_gg")?,
            f("ista_backward_finish")?,
        );
        let grad0 = grad.copy_strided(grad_layout)?;
        let mut ga = dev.alloc::<T>(total)?;
        let mut gz = dev.alloc::<T>(total)?;
        let mut gb = zeros::<T>(dev, total)?;
        let mut gg = zeros::<T>(dev, gg_len)?;
        let mut acc_st = zeros::<f64>(dev, total)?;
        let mut acc_r = zeros::<f64>(dev, total)?;
        for k in (0..cfg.steps as u64).rev() {
            let mut a = dev.stream().launch_builder(&fgz);
            a.arg(&p).arg(&k);
            if k + 1 == cfg.steps as u64 {
                a.arg(grad0.slice::<T>());
            } else {
                a.arg(&ga);
            }
            a.arg(sv).arg(&mut gz).arg(&mut acc_st);
            // SAFETY: ista_backward_gz_<t>(IstaDims, u64 k, const T* ga, const T* saved,
            // T* gz, double* acc_st); ga, gz, acc_st have batch·m·d elements.
            unsafe { a.launch(launch_config(total)) }.map_err(driver_err("cuLaunchKernel"))?;

            let mut a = dev.stream().launch_builder(&fh);
            a.arg(&p)
                .arg(&k)
                .arg(&g.view)
                .arg(g.slice::<T>())
                .arg(&b.view)
                .arg(b.slice::<T>())
                .arg(&l.view.batch)
                .arg(l.slice::<T>())
                .arg(&gz)
                .arg(sv)
                .arg(&mut ga)
                .arg(&mut gb)
                .arg(&mut acc_r);
            // SAFETY: ista_backward_h_<t>(IstaDims, u64 k, IstaMatrix, const T*, IstaMatrix,
            // const T*, StridedLayout, const T*, const T* gz, const T* saved, T* ga, T* gb,
            // double* acc_r); gz and ga are distinct buffers.
            unsafe { a.launch(launch_config(total)) }.map_err(driver_err("cuLaunchKernel"))?;

            let mut a = dev.stream().launch_builder(&fgg);
            a.arg(&p).arg(&k).arg(&gz).arg(sv).arg(&mut gg);
            // SAFETY: ista_backward_gg_<t>(IstaDims, u64 k, const T* gz, const T* saved, T* gg);
            // gg has batch·m² elements.
            unsafe { a.launch(launch_config(gg_len)) }.map_err(driver_err("cuLaunchKernel"))?;
        }
        let config = entry_config(dev, &ffin, batch, 0, 0)?;
        let mut a = dev.stream().launch_builder(&ffin);
        a.arg(&p)
            .arg(&lam.view.batch)
            .arg(lam.slice::<T>())
            .arg(&l.view.batch)
            .arg(l.slice::<T>());
        if cfg.steps == 0 {
            a.arg(grad0.slice::<T>());
        } else {
            a.arg(&ga);
        }
        a.arg(sv)
            .arg(&acc_st)
            .arg(&acc_r)
            .arg(&mut gb)
            .arg(&mut gg)
            .arg(&mut glam)
            .arg(&mut gl);
        // SAFETY: ista_backward_finish_<t>(IstaDims, StridedLayout, const T*, StridedLayout,
        // const T*, const T* ga, const T* saved, const double*, const double*, T* gb, T* gg,
        // T* glam, T* gl); one block of THREADS threads per entry, static shared memory only.
        unsafe { a.launch(config) }.map_err(driver_err("cuLaunchKernel"))?;
        (gg, gb)
    };
    Ok(IstaGrads {
        g: dev.storage(gg),
        b: dev.storage(gb),
        lam: dev.storage(glam),
        l: dev.storage(gl),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_is_chosen_only_where_it_was_measured_faster() {
        assert!(fused_pays_off(64, 32)); // RVT-Ti VARS-D: 3.7x faster forward on an H100
        assert!(!fused_pays_off(128, 64)); // RVT-S/B VARS-D: 0.69x
        assert!(!fused_pays_off(256, 64)); // RVT-S/B VARS-SD
        assert!(!fused_pays_off(128, 32)); // RVT-Ti VARS-SD: unmeasured, composite
        assert!(fused_pays_off(7, 5) && fused_pays_off(0, 0));
        assert!(!fused_pays_off(usize::MAX, 2));
    }

    const H100_OPTIN: usize = 232_448;
    /// Static shared memory of `ista_backward_fused_<t>` (its reduction buffer); at launch time
    /// the kernel's real figure is queried.
    const BACKWARD_STATIC_SMEM: usize = THREADS as usize * 8;

    fn cfg(steps: usize, shrink: Shrink, init: IstaInit) -> UnrolledIsta {
        UnrolledIsta {
            steps,
            shrink,
            init,
        }
    }

    #[test]
    fn entries_cover_every_kernel_of_the_source() {
        let e = entries();
        assert_eq!(e.len(), 16);
        let src = kernels::SPARSE_CODING.source;
        for stem in KERNEL_STEMS {
            assert!(src.contains(&format!("{stem}_##SFX(")), "{stem}");
        }
        assert!(e.contains(&"ista_backward_finish_f64".to_string()));
        assert_eq!(
            src.matches("extern \"C\" __global__").count(),
            KERNEL_STEMS.len()
        );
        assert!(src.contains(&format!("#define VARS_ISTA_THREADS {THREADS}\n")));
    }

    #[test]
    fn argument_structs_match_the_c_structs() {
        assert_eq!(std::mem::size_of::<IstaMatrix>(), 160);
        assert_eq!(std::mem::align_of::<IstaMatrix>(), 8);
        assert_eq!(std::mem::size_of::<IstaDims>(), 48);
        let src = kernels::SPARSE_CODING.source;
        assert!(src.contains("#define VARS_SHRINK_IDENTITY 0u"));
        assert!(src.contains("#define VARS_SHRINK_SOFT 1u"));
        assert!(src.contains("#define VARS_SHRINK_GELU 2u"));
        assert!(src.contains("#define VARS_INIT_SHRINK 0u"));
        assert!(src.contains("#define VARS_INIT_ZERO 1u"));
        let geo = Geometry {
            batch: 3,
            m: 4,
            d: 5,
        };
        let p = IstaDims::new(&cfg(2, Shrink::Gelu, IstaInit::Zero), &geo, true);
        assert_eq!((p.batch, p.m, p.d, p.steps), (3, 4, 5, 2));
        assert_eq!((p.shrink, p.init, p.save), (2, 1, 1));
        let p = IstaDims::new(
            &cfg(0, Shrink::SoftThreshold, IstaInit::Shrink),
            &geo,
            false,
        );
        assert_eq!((p.shrink, p.init, p.save), (1, 0, 0));
        let p = IstaDims::new(&cfg(0, Shrink::Identity, IstaInit::Shrink), &geo, false);
        assert_eq!(p.shrink, 0);
    }

    /// The CPU backend's saved sizes: `(3T + 2)·m·d` for GELU/soft with the official initial
    /// guess, `(3T)·m·d` with A0 = 0, `T·m·d` for the identity.
    #[test]
    fn saved_len_matches_the_cpu_layout() {
        let (m, d) = (6, 5);
        for steps in [0, 1, 5] {
            for shrink in [Shrink::Gelu, Shrink::SoftThreshold] {
                let c = cfg(steps, shrink, IstaInit::Shrink);
                assert_eq!(saved_len(&c, m, d), Some((3 * steps + 2) * m * d));
                let c = cfg(steps, shrink, IstaInit::Zero);
                assert_eq!(saved_len(&c, m, d), Some(3 * steps * m * d));
            }
            for init in [IstaInit::Shrink, IstaInit::Zero] {
                let c = cfg(steps, Shrink::Identity, init);
                assert_eq!(saved_len(&c, m, d), Some(steps * m * d));
            }
        }
        let c = cfg(usize::MAX / 2, Shrink::Gelu, IstaInit::Shrink);
        assert_eq!(saved_len(&c, 2, 2), None);
    }

    #[test]
    fn shared_memory_sizes_and_path_choice() {
        assert_eq!(forward_smem_bytes(64, 32, 4), Some((4096 + 4096) * 4));
        assert_eq!(backward_smem_bytes(64, 32, 4), Some((4096 + 6144) * 4));
        assert_eq!(forward_smem_bytes(usize::MAX, 2, 4), None);
        let fwd = H100_OPTIN;
        let bwd = H100_OPTIN - BACKWARD_STATIC_SMEM;
        // (m, d, elem) -> (forward fused, backward fused) on an H100.
        let cases = [
            // RVT-Ti VARS-D: d = 32, m = 2d = 64.
            ((64, 32, 4), (true, true)),
            ((64, 32, 8), (true, true)),
            // RVT-Ti VARS-SD: m = 4d = 128.
            ((128, 32, 4), (true, true)),
            ((128, 32, 8), (true, true)),
            // RVT-S/B VARS-D: d = 64, m = 128.
            ((128, 64, 4), (true, true)),
            ((128, 64, 8), (false, false)),
            // RVT-S/B VARS-SD: m = 256.
            ((256, 64, 4), (false, false)),
            ((256, 64, 8), (false, false)),
        ];
        for ((m, d, e), (f, b)) in cases {
            let fb = forward_smem_bytes(m, d, e);
            let bb = backward_smem_bytes(m, d, e);
            assert_eq!(choose_fused(OP, None, fb, fwd).unwrap(), f, "{m} {d} {e}");
            assert_eq!(choose_fused(OP, None, bb, bwd).unwrap(), b, "{m} {d} {e}");
            assert!(!choose_fused(OP, Some(false), fb, fwd).unwrap());
            assert_eq!(choose_fused(OP, Some(true), fb, fwd).is_ok(), f);
        }
        let err = choose_fused(OP, Some(true), Some(300_000), fwd).unwrap_err();
        assert!(err.to_string().contains("300000 bytes"), "{err}");
        assert!(choose_fused(OP, Some(true), None, fwd).is_err());
        assert!(!choose_fused(OP, None, None, fwd).unwrap());
    }

    /// `IstaMatrix::index` visits a view's elements in the same storage order as the layout's
    /// own strided index, for contiguous, permuted, narrowed and broadcast views.
    #[test]
    fn ista_matrix_reproduces_layout_indexing() {
        let check = |layout: &Layout| {
            let v = IstaMatrix::new("t", layout).unwrap();
            let r = layout.rank();
            let (rows, cols) = (layout.dims()[r - 2] as u64, layout.dims()[r - 1] as u64);
            let batch: u64 = layout.dims()[..r - 2].iter().product::<usize>() as u64;
            let mut got = Vec::new();
            for e in 0..batch {
                for i in 0..rows {
                    for j in 0..cols {
                        got.push(v.index(e, i, j) as usize);
                    }
                }
            }
            let want: Vec<usize> = layout.strided_index().collect();
            assert_eq!(got, want, "{layout:?}");
        };
        let base = Layout::contiguous(Shape::new(vec![2, 3, 4, 5]));
        check(&base);
        check(&base.permute(&[1, 0, 3, 2]).unwrap());
        check(&base.permute(&[3, 2, 1, 0]).unwrap());
        check(&base.narrow(1, 1, 2).unwrap().narrow(3, 1, 3).unwrap());
        check(&Layout::contiguous(Shape::new(vec![4, 5])));
        // λ-like (1, 3, 1, 1) broadcast to (2, 3, 1, 1), and a (4, 5) G broadcast over (2, 3).
        let lam = Layout::contiguous(Shape::new(vec![1, 3, 1, 1]));
        check(&lam.broadcast_as(&Shape::new(vec![2, 3, 1, 1])).unwrap());
        let g = Layout::contiguous(Shape::new(vec![4, 5]));
        check(&g.broadcast_as(&Shape::new(vec![2, 3, 4, 5])).unwrap());
        // An offset view.
        let off = Layout::from_parts(Shape::new(vec![2, 2, 2]), vec![10, 1, 3], 7);
        check(&off);
    }

    #[test]
    fn unmergeable_batch_dims_are_reported() {
        // 9 batch dims of size 2, reversed: nothing merges (Operand then copies the view).
        let base = Layout::contiguous(Shape::new(vec![2; 11]));
        let mut perm: Vec<usize> = (0..9).rev().collect();
        perm.extend([9, 10]);
        let rev = base.permute(&perm).unwrap();
        assert!(matches!(
            IstaMatrix::new("t", &rev),
            Err(CudaError::Layout { .. })
        ));
        assert!(IstaMatrix::new("t", &Layout::contiguous(Shape::new(vec![3]))).is_err());
    }

    #[test]
    fn geometry_validation_matches_the_cpu() {
        let g = Layout::contiguous([2, 3, 3]);
        let b = Layout::contiguous([2, 3, 4]);
        let s = Layout::contiguous([2, 1, 1]);
        let geo = Geometry::new(OP, [(18, &g), (24, &b), (2, &s), (2, &s)]).unwrap();
        assert_eq!(
            geo,
            Geometry {
                batch: 2,
                m: 3,
                d: 4
            }
        );
        // Broadcast λ: stride-0 batch dim in a 1-element buffer.
        let lb = Layout::contiguous([1, 1, 1])
            .broadcast_as(&Shape::new(vec![2, 1, 1]))
            .unwrap();
        assert!(Geometry::new(OP, [(18, &g), (24, &b), (1, &lb), (2, &s)]).is_ok());
        // Out of bounds.
        assert!(Geometry::new(OP, [(17, &g), (24, &b), (2, &s), (2, &s)]).is_err());
        // Rank < 2, non-square G, wrong m, λ not (…, 1, 1), different batch dims.
        let v = Layout::contiguous([4]);
        assert!(Geometry::new(OP, [(4, &v), (24, &b), (2, &s), (2, &s)]).is_err());
        let ns = Layout::contiguous([2, 3, 4]);
        assert!(Geometry::new(OP, [(24, &ns), (24, &b), (2, &s), (2, &s)]).is_err());
        let bm = Layout::contiguous([2, 2, 4]);
        assert!(Geometry::new(OP, [(18, &g), (16, &bm), (2, &s), (2, &s)]).is_err());
        let s2 = Layout::contiguous([2, 1, 2]);
        assert!(Geometry::new(OP, [(18, &g), (24, &b), (4, &s2), (2, &s)]).is_err());
        let b3 = Layout::contiguous([3, 3, 4]);
        assert!(Geometry::new(OP, [(18, &g), (36, &b3), (2, &s), (2, &s)]).is_err());
        let r4 = Layout::contiguous([1, 2, 1, 1]);
        assert!(Geometry::new(OP, [(18, &g), (24, &b), (2, &r4), (2, &s)]).is_err());
        // Empty batch and empty codes are valid.
        let g0 = Layout::contiguous([0, 3, 3]);
        let b0 = Layout::contiguous([0, 3, 4]);
        let s0 = Layout::contiguous([0, 1, 1]);
        let geo = Geometry::new(OP, [(0, &g0), (0, &b0), (0, &s0), (0, &s0)]).unwrap();
        assert_eq!(geo.batch, 0);
    }
}
