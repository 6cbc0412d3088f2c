//! Batched matmul `(…, m, k) × (…, k, n) → (…, m, n)` on the device: cuBLAS when it loads, else
//! the tiled kernel of `kernels/gemm.cu`. Semantics follow `vars-cpu/src/matmul.rs`: both views of
//! the same rank ≥ 2 with equal batch dims (broadcasts arrive as stride-0 dims), f32 and f64 only,
//! a fresh contiguous output; `k == 0` gives zeros, an empty output an empty buffer.
//!
//! Everything about *which* calls to make is pure host arithmetic on the two [`Layout`]s
//! ([`GemmPlan`], [`BlasPlan`], [`KernelArgs`]), unit-tested below by executing the plans on the
//! host with an emulation of cuBLAS's column-major `gemmStridedBatched` and of the kernel.
//!
//! **cuBLAS** is column-major and the views are row-major, so the product is computed as
//! `Cᵀ = Bᵀ·Aᵀ`: cuBLAS's first operand is the rhs view, its second the lhs view, and the
//! row-major `(m, n)` output is the column-major `(n, m)` matrix with `ldc = n`. Each operand's
//! transpose flag and leading dimension come from its strides: a matrix whose column stride is 1
//! is row-major with `ld` = its row stride (cuBLAS op `N`), one whose row stride is 1 is
//! column-major with `ld` = its column stride (op `T`); only a view that is neither (a stride-0
//! broadcast inside the matrix, a step-2 slice of the last dim, ...) is copied, with
//! [`CudaStorage::copy_strided`]. Batch dims of both operands are merged jointly; when they merge
//! into one dim (stride 0 allowed) a single `cublas{S,D}gemmStridedBatched` call does the whole
//! product, otherwise the longest merged dim is the strided batch and the others are looped on
//! the host. Sizes beyond cuBLAS's 32-bit arguments use the kernel.
//!
//! **The kernel** takes each operand as (merged batch dims as a [`StridedLayout`], row stride,
//! column stride), so it reads every view in place, without copies; beyond
//! [`StridedLayout::MAX_RANK`] unmergeable batch dims, the host loops over the outer ones.
//!
//! `VARS_CUDA_NO_CUBLAS=1` makes [`CudaStorage::matmul`] use the kernel even when cuBLAS loads.

use std::sync::OnceLock;

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use vars_core::{DType, Layout};

use crate::device::{driver_err, CudaDevice};
use crate::error::{CudaError, Result};
use crate::kernels::{self, StridedLayout};
use crate::storage::{check_bounds, unsupported, CudaStorage, DeviceElement};

const OP: &str = "matmul";

/// The environment variable that turns cuBLAS off for [`CudaStorage::matmul`] (`1` or `true`).
pub const NO_CUBLAS_ENV: &str = "VARS_CUDA_NO_CUBLAS";

/// Threads per block of the GEMM kernel (`VARS_GEMM_THREADS`).
const GEMM_THREADS: u32 = 256;
/// Output tile of one block (`VARS_GEMM_BM` = `VARS_GEMM_BN`).
const GEMM_TILE: usize = 64;
/// Grid y/z limit of the driver (the kernel loops over the rest).
const MAX_GRID_YZ: usize = 65_535;
/// Grid x limit.
const MAX_GRID_X: usize = i32::MAX as usize;

/// `gemm_<t>(m, n, k, batch, a_batch, a_rs, a_cs, a, b_batch, b_rs, b_cs, b, c)`.
pub(crate) fn gemm_kernel(dtype: DType) -> String {
    format!("gemm_{dtype}")
}

/// Entry points of the module's kernels.
pub(crate) fn entries() -> Vec<String> {
    [DType::F32, DType::F64]
        .iter()
        .map(|&d| gemm_kernel(d))
        .collect()
}

fn cublas_disabled() -> bool {
    static DISABLED: OnceLock<bool> = OnceLock::new();
    *DISABLED.get_or_init(|| {
        std::env::var(NO_CUBLAS_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    })
}

/// Which implementation runs a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    /// cuBLAS when it loads and [`NO_CUBLAS_ENV`] is not set, else the kernel.
    Auto,
    /// cuBLAS, an error when it does not load (sizes beyond its 32-bit arguments still use the
    /// kernel).
    Cublas,
    /// The tiled kernel.
    Kernel,
}

impl CudaStorage {
    /// Batched `(…, m, k) × (…, k, n) → (…, m, n)` of the views `self[layout]` and
    /// `rhs[rhs_layout]`, contiguous: the `vars_core::Backend::matmul` contract. Uses cuBLAS when
    /// it loads (unless `VARS_CUDA_NO_CUBLAS=1`), else the tiled NVRTC kernel.
    pub fn matmul(
        &self,
        layout: &Layout,
        rhs: &CudaStorage,
        rhs_layout: &Layout,
    ) -> Result<CudaStorage> {
        matmul(self, layout, rhs, rhs_layout, Engine::Auto)
    }

    /// [`CudaStorage::matmul`] on a chosen engine, for tests and benchmarks: `cublas = true`
    /// requires cuBLAS (an error when it does not load), `false` always runs the tiled kernel.
    #[doc(hidden)]
    pub fn matmul_with(
        &self,
        layout: &Layout,
        rhs: &CudaStorage,
        rhs_layout: &Layout,
        cublas: bool,
    ) -> Result<CudaStorage> {
        let engine = if cublas {
            Engine::Cublas
        } else {
            Engine::Kernel
        };
        matmul(self, layout, rhs, rhs_layout, engine)
    }
}

fn matmul(
    lhs: &CudaStorage,
    ll: &Layout,
    rhs: &CudaStorage,
    rl: &Layout,
    engine: Engine,
) -> Result<CudaStorage> {
    check_bounds(OP, ll, lhs.len())?;
    check_bounds(OP, rl, rhs.len())?;
    let plan = GemmPlan::new(ll, rl)?;
    if lhs.device() != rhs.device() {
        return Err(CudaError::Layout {
            op: OP,
            msg: format!(
                "operands on different devices ({} and {})",
                lhs.device(),
                rhs.device()
            ),
        });
    }
    match (lhs.dtype(), rhs.dtype()) {
        (DType::F32, DType::F32) => run::<f32>(lhs, ll, rhs, rl, plan, engine),
        (DType::F64, DType::F64) => run::<f64>(lhs, ll, rhs, rl, plan, engine),
        (a, b) if a == b => Err(unsupported(OP, a, "f32, f64")),
        (a, b) => Err(CudaError::Core(vars_core::Error::DTypeMismatch {
            op: OP,
            lhs: a,
            rhs: b,
        })),
    }
}

/// Shape checks with the CPU backend's messages.
fn check_shapes(ll: &Layout, rl: &Layout) -> Result<()> {
    let rank = ll.rank();
    let mismatch = |hint: &str| {
        CudaError::Core(vars_core::Error::ShapeMismatch {
            op: OP,
            lhs: ll.shape().clone(),
            rhs: rl.shape().clone(),
            hint: hint.to_string(),
        })
    };
    if rank < 2 || rl.rank() != rank {
        return Err(mismatch(" (both operands need the same rank ≥ 2)"));
    }
    if ll.dims()[..rank - 2] != rl.dims()[..rank - 2] {
        return Err(mismatch(" (batch dims differ)"));
    }
    if ll.dims()[rank - 1] != rl.dims()[rank - 2] {
        return Err(mismatch(" (inner dims differ)"));
    }
    Ok(())
}

/// A contiguous copy of the view when `needed`.
fn copy_if(needed: bool, s: &CudaStorage, l: &Layout) -> Result<Option<(CudaStorage, Layout)>> {
    if !needed {
        return Ok(None);
    }
    Ok(Some((
        s.copy_strided(l)?,
        Layout::contiguous(l.shape().clone()),
    )))
}

fn run<T: DeviceElement>(
    lhs: &CudaStorage,
    ll: &Layout,
    rhs: &CudaStorage,
    rl: &Layout,
    plan: GemmPlan,
    engine: Engine,
) -> Result<CudaStorage>
where
    CudaBlas: Gemm<T>,
{
    let dev = lhs.device();
    let total = plan.out_len();
    if total == 0 {
        return Ok(dev.storage(dev.alloc::<T>(0)?));
    }
    if plan.k == 0 {
        return dev.full(total, T::DTYPE, 0.0);
    }
    let blas = match engine {
        Engine::Kernel => None,
        Engine::Auto if cublas_disabled() => None,
        Engine::Auto => dev.blas().ok(),
        Engine::Cublas => Some(dev.blas().map_err(|reason| {
            CudaError::Core(vars_core::Error::Backend {
                backend: "cuda",
                msg: format!("matmul: cuBLAS requested but unavailable: {reason}"),
            })
        })?),
    };

    if let Some(blas) = blas {
        let (copy_lhs, copy_rhs) = plan.blas_needs_copy();
        // A copy fails only for a view the copy kernel cannot take (more than 8 unmergeable
        // dims); the tiled kernel below reads such views in place.
        if let (Ok(lc), Ok(rc)) = (copy_if(copy_lhs, lhs, ll), copy_if(copy_rhs, rhs, rl)) {
            let (a, la) = lc.as_ref().map_or((lhs, ll), |c| (&c.0, &c.1));
            let (b, lb) = rc.as_ref().map_or((rhs, rl), |c| (&c.0, &c.1));
            let bp = if copy_lhs || copy_rhs {
                GemmPlan::new(la, lb)?.blas_plan()
            } else {
                plan.blas_plan()
            };
            // `None`: sizes beyond cuBLAS's 32-bit arguments.
            if let Some(bp) = bp {
                let mut out = dev.alloc::<T>(total)?;
                run_blas::<T>(dev, blas, &bp, a.slice::<T>(), b.slice::<T>(), &mut out)?;
                return Ok(dev.storage(out));
            }
        }
    }

    let mut out = dev.alloc::<T>(total)?;
    for (args, out_offset) in plan.kernel_launches() {
        run_kernel::<T>(
            dev,
            &args,
            lhs.slice::<T>(),
            rhs.slice::<T>(),
            &mut out,
            out_offset,
        )?;
    }
    Ok(dev.storage(out))
}

fn blas_err(op: &'static str) -> impl FnOnce(cudarc::cublas::result::CublasError) -> CudaError {
    move |e| {
        CudaError::Core(vars_core::Error::Backend {
            backend: "cuda",
            msg: format!("cuBLAS call `{op}` failed: {e}"),
        })
    }
}

fn view_err(what: &str, offset: usize, len: usize) -> CudaError {
    CudaError::Layout {
        op: OP,
        msg: format!("{what} offset {offset} outside its {len}-element buffer"),
    }
}

/// Executes a [`BlasPlan`]: cuBLAS operand `a` is the rhs view, `b` the lhs view.
fn run_blas<T: DeviceElement>(
    dev: &CudaDevice,
    blas: &CudaBlas,
    plan: &BlasPlan,
    lhs: &CudaSlice<T>,
    rhs: &CudaSlice<T>,
    out: &mut CudaSlice<T>,
) -> Result<()>
where
    CudaBlas: Gemm<T>,
{
    let op = |t: bool| {
        if t {
            cublasOperation_t::CUBLAS_OP_T
        } else {
            cublasOperation_t::CUBLAS_OP_N
        }
    };
    let c = &plan.call;
    let cfg = StridedBatchedConfig {
        gemm: GemmConfig {
            transa: op(c.transa),
            transb: op(c.transb),
            m: c.m,
            n: c.n,
            k: c.k,
            alpha: T::from_f64(1.0),
            lda: c.lda,
            ldb: c.ldb,
            beta: T::from_f64(0.0),
            ldc: c.ldc,
        },
        batch_size: c.batch_count,
        stride_a: c.stride_a,
        stride_b: c.stride_b,
        stride_c: c.stride_c,
    };
    // cuBLAS launches into the calling thread's current context.
    dev.context()
        .bind_to_thread()
        .map_err(driver_err("cuCtxSetCurrent"))?;
    for &(a_off, b_off, c_off) in &plan.offsets {
        let a = rhs
            .try_slice(a_off..)
            .ok_or_else(|| view_err("rhs", a_off, rhs.len()))?;
        let b = lhs
            .try_slice(b_off..)
            .ok_or_else(|| view_err("lhs", b_off, lhs.len()))?;
        let out_len = out.len();
        let mut cv = out
            .try_slice_mut(c_off..)
            .ok_or_else(|| view_err("output", c_off, out_len))?;
        // SAFETY: the plan's sizes, leading dimensions and batch strides address only elements of
        // the bounds-checked views (`check_bounds` on both operands, the output holds
        // batch·m·n elements), cuBLAS's argument rules hold (`BlasPlan` checks them, the unit
        // tests emulate them), and beta = 0 so the uninitialised output is never read.
        unsafe { blas.gemm_strided_batched(cfg, &a, &b, &mut cv) }.map_err(blas_err(
            if T::DTYPE == DType::F32 {
                "cublasSgemmStridedBatched"
            } else {
                "cublasDgemmStridedBatched"
            },
        ))?;
    }
    Ok(())
}

fn run_kernel<T: DeviceElement>(
    dev: &CudaDevice,
    args: &KernelArgs,
    lhs: &CudaSlice<T>,
    rhs: &CudaSlice<T>,
    out: &mut CudaSlice<T>,
    out_offset: usize,
) -> Result<()> {
    let f = dev.function(&kernels::GEMM, &gemm_kernel(T::DTYPE))?;
    let out_len = out.len();
    let mut out = out
        .try_slice_mut(out_offset..)
        .ok_or_else(|| view_err("output", out_offset, out_len))?;
    let cfg = LaunchConfig {
        grid_dim: args.grid,
        block_dim: (GEMM_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&args.m)
        .arg(&args.n)
        .arg(&args.k)
        .arg(&args.batch)
        .arg(&args.a_batch)
        .arg(&args.a_rs)
        .arg(&args.a_cs)
        .arg(lhs)
        .arg(&args.b_batch)
        .arg(&args.b_rs)
        .arg(&args.b_cs)
        .arg(rhs)
        .arg(&mut out);
    // SAFETY: gemm_<t>(u64 m, u64 n, u64 k, u64 batch, StridedLayout, u64, u64, const T*,
    // StridedLayout, u64, u64, const T*, T*): both views bounds-checked, the output slice holds
    // the launch's batch·m·n elements (`kernel_launches`), every one written.
    unsafe { l.launch(cfg) }.map_err(driver_err("cuLaunchKernel"))?;
    Ok(())
}

// ---- planning (pure host arithmetic) ------------------------------------------------------------

/// One batch dim after merging: its length and the element strides of lhs, rhs and the
/// (contiguous) output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchDim {
    pub len: usize,
    pub lhs: usize,
    pub rhs: usize,
    pub out: usize,
}

/// The shape of a batched product and where each operand's matrices are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GemmPlan {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Element offsets of the views.
    pub lhs_offset: usize,
    pub rhs_offset: usize,
    /// (row stride, column stride) of the lhs `(m, k)` and rhs `(k, n)` matrices.
    pub lhs_strides: (usize, usize),
    pub rhs_strides: (usize, usize),
    /// Batch dims, outermost first, without size-1 dims, neighbours merged wherever they are
    /// contiguous with each other in *both* operands (the output is contiguous, so it merges
    /// wherever they do).
    pub batch: Vec<BatchDim>,
}

/// How cuBLAS addresses one operand's matrix: `(transposed, ld)`, where `transposed == false`
/// means row-major (element `(i, j)` at `i·ld + j`) and `true` column-major (`i + j·ld`).
/// `None` when the strides are neither (the view must be copied).
pub(crate) fn blas_operand(
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
) -> Option<(bool, usize)> {
    // An empty matrix is never addressed (such products make no cuBLAS call).
    if rows == 0 || cols == 0 {
        return Some((false, cols.max(1)));
    }
    // A size-1 dim's stride is never used: any value is as good as the one cuBLAS wants.
    if (cols == 1 || cs == 1) && (rows == 1 || rs >= cols.max(1)) {
        let ld = if rows == 1 { cols.max(1) } else { rs };
        return Some((false, ld));
    }
    if (rows == 1 || rs == 1) && (cols == 1 || cs >= rows.max(1)) {
        let ld = if cols == 1 { rows.max(1) } else { cs };
        return Some((true, ld));
    }
    None
}

/// One `cublas{S,D}gemmStridedBatched` call in cuBLAS's (column-major) terms: `a` is the rhs
/// view, `b` the lhs view, `m = n_out`, `n = m_out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlasCall {
    pub transa: bool,
    pub transb: bool,
    pub m: i32,
    pub n: i32,
    pub k: i32,
    pub lda: i32,
    pub ldb: i32,
    pub ldc: i32,
    pub stride_a: i64,
    pub stride_b: i64,
    pub stride_c: i64,
    pub batch_count: i32,
}

/// The cuBLAS calls of a product: one [`BlasCall`] repeated at each `(a, b, c)` element offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlasPlan {
    pub call: BlasCall,
    pub offsets: Vec<(usize, usize, usize)>,
}

/// The arguments of `gemm_<t>` and its grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KernelArgs {
    pub m: u64,
    pub n: u64,
    pub k: u64,
    pub batch: u64,
    pub a_batch: StridedLayout,
    pub a_rs: u64,
    pub a_cs: u64,
    pub b_batch: StridedLayout,
    pub b_rs: u64,
    pub b_cs: u64,
    pub grid: (u32, u32, u32),
}

/// Every multi-index of `dims` (row-major order), as element offsets `base + Σ i·stride` for
/// each of the three stride sets.
fn batch_offsets(
    dims: &[BatchDim],
    base: (usize, usize, usize),
) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    let count: usize = dims.iter().map(|d| d.len).product();
    (0..count).map(move |mut i| {
        let (mut a, mut b, mut c) = base;
        for d in dims.iter().rev() {
            let j = i % d.len;
            i /= d.len;
            a += j * d.lhs;
            b += j * d.rhs;
            c += j * d.out;
        }
        (a, b, c)
    })
}

impl GemmPlan {
    /// Checks the shapes (the CPU backend's errors) and plans the product.
    pub fn new(ll: &Layout, rl: &Layout) -> Result<GemmPlan> {
        check_shapes(ll, rl)?;
        let r = ll.rank();
        let (m, k, n) = (ll.dims()[r - 2], ll.dims()[r - 1], rl.dims()[r - 1]);
        let mut batch: Vec<BatchDim> = Vec::with_capacity(r - 2);
        for ((&len, &sa), &sb) in ll.dims()[..r - 2]
            .iter()
            .zip(&ll.strides()[..r - 2])
            .zip(&rl.strides()[..r - 2])
        {
            if len == 1 {
                continue;
            }
            match batch.last_mut() {
                Some(p) if p.lhs == sa * len && p.rhs == sb * len => {
                    p.len *= len;
                    p.lhs = sa;
                    p.rhs = sb;
                }
                _ => batch.push(BatchDim {
                    len,
                    lhs: sa,
                    rhs: sb,
                    out: 0,
                }),
            }
        }
        let mut out = m * n;
        for d in batch.iter_mut().rev() {
            d.out = out;
            out *= d.len;
        }
        Ok(GemmPlan {
            m,
            n,
            k,
            lhs_offset: ll.offset(),
            rhs_offset: rl.offset(),
            lhs_strides: (ll.strides()[r - 2], ll.strides()[r - 1]),
            rhs_strides: (rl.strides()[r - 2], rl.strides()[r - 1]),
            batch,
        })
    }

    /// Number of batch entries.
    pub fn batch_count(&self) -> usize {
        self.batch.iter().map(|d| d.len).product()
    }

    /// Elements of the output.
    pub fn out_len(&self) -> usize {
        self.batch_count() * self.m * self.n
    }

    fn lhs_blas(&self) -> Option<(bool, usize)> {
        blas_operand(self.m, self.k, self.lhs_strides.0, self.lhs_strides.1)
    }

    fn rhs_blas(&self) -> Option<(bool, usize)> {
        blas_operand(self.k, self.n, self.rhs_strides.0, self.rhs_strides.1)
    }

    /// Which operands cuBLAS cannot address in place (`(lhs, rhs)`).
    pub fn blas_needs_copy(&self) -> (bool, bool) {
        (self.lhs_blas().is_none(), self.rhs_blas().is_none())
    }

    /// The cuBLAS calls, or `None` when an operand needs a copy first
    /// ([`GemmPlan::blas_needs_copy`]), a size exceeds cuBLAS's 32-bit arguments, or the product
    /// is empty or has `k == 0` (handled without cuBLAS).
    pub fn blas_plan(&self) -> Option<BlasPlan> {
        if self.out_len() == 0 || self.k == 0 {
            return None;
        }
        let (ta, lda) = self.rhs_blas()?;
        let (tb, ldb) = self.lhs_blas()?;
        // The longest merged batch dim is cuBLAS's batch; the others are host loops.
        let inner = (0..self.batch.len()).max_by_key(|&i| (self.batch[i].len, i));
        let (count, sa, sb, sc, outer) = match inner {
            None => (1, 0, 0, self.m * self.n, Vec::new()),
            Some(i) => {
                let d = self.batch[i];
                let mut outer = self.batch.clone();
                outer.remove(i);
                (d.len, d.rhs, d.lhs, d.out, outer)
            }
        };
        let i32_of = |x: usize| i32::try_from(x).ok();
        let i64_of = |x: usize| i64::try_from(x).ok();
        let call = BlasCall {
            transa: ta,
            transb: tb,
            m: i32_of(self.n)?,
            n: i32_of(self.m)?,
            k: i32_of(self.k)?,
            lda: i32_of(lda)?,
            ldb: i32_of(ldb)?,
            ldc: i32_of(self.n)?,
            stride_a: i64_of(sa)?,
            stride_b: i64_of(sb)?,
            stride_c: i64_of(sc)?,
            batch_count: i32_of(count)?,
        };
        let offsets = batch_offsets(&outer, (self.lhs_offset, self.rhs_offset, 0))
            .map(|(l, r, c)| (r, l, c))
            .collect();
        Some(BlasPlan { call, offsets })
    }

    /// The kernel launches: each one's arguments and the element offset of its part of the
    /// output. One launch unless more than [`StridedLayout::MAX_RANK`] merged batch dims remain;
    /// then the innermost `MAX_RANK` go to the kernel and the host loops over the others.
    pub fn kernel_launches(&self) -> Vec<(KernelArgs, usize)> {
        let split = self.batch.len().saturating_sub(StridedLayout::MAX_RANK);
        let (outer, inner) = self.batch.split_at(split);
        let layout = |offset: usize, stride: fn(&BatchDim) -> usize| {
            let mut l = StridedLayout {
                rank: inner.len() as u32,
                _pad: 0,
                offset: offset as u64,
                dims: [1; StridedLayout::MAX_RANK],
                strides: [0; StridedLayout::MAX_RANK],
            };
            for (i, d) in inner.iter().enumerate() {
                l.dims[i] = d.len as u64;
                l.strides[i] = stride(d) as u64;
            }
            l
        };
        let batch: usize = inner.iter().map(|d| d.len).product();
        let grid = (
            self.n.div_ceil(GEMM_TILE).clamp(1, MAX_GRID_X) as u32,
            self.m.div_ceil(GEMM_TILE).clamp(1, MAX_GRID_YZ) as u32,
            batch.clamp(1, MAX_GRID_YZ) as u32,
        );
        batch_offsets(outer, (self.lhs_offset, self.rhs_offset, 0))
            .map(|(lo, ro, co)| {
                let args = KernelArgs {
                    m: self.m as u64,
                    n: self.n as u64,
                    k: self.k as u64,
                    batch: batch as u64,
                    a_batch: layout(lo, |d| d.lhs),
                    a_rs: self.lhs_strides.0 as u64,
                    a_cs: self.lhs_strides.1 as u64,
                    b_batch: layout(ro, |d| d.rhs),
                    b_rs: self.rhs_strides.0 as u64,
                    b_cs: self.rhs_strides.1 as u64,
                    grid,
                };
                (args, co)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use vars_core::Shape;

    /// Row-major reference on the views.
    fn naive(a: &[f64], la: &Layout, b: &[f64], lb: &Layout) -> Vec<f64> {
        let r = la.rank();
        let (m, k, n) = (la.dims()[r - 2], la.dims()[r - 1], lb.dims()[r - 1]);
        let batch: usize = la.dims()[..r - 2].iter().product();
        let ia: Vec<usize> = la.strided_index().collect();
        let ib: Vec<usize> = lb.strided_index().collect();
        let mut out = vec![0.0; batch * m * n];
        for z in 0..batch {
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0.0;
                    for l in 0..k {
                        s += a[ia[(z * m + i) * k + l]] * b[ib[(z * k + l) * n + j]];
                    }
                    out[(z * m + i) * n + j] = s;
                }
            }
        }
        out
    }

    /// cuBLAS's column-major `gemmStridedBatched` with alpha = 1, beta = 0, including its
    /// argument checks (`CUBLAS_STATUS_INVALID_VALUE` conditions) as assertions. Indexing out of
    /// a buffer panics, so the plan's addressing is bounds-checked too.
    fn emulate_blas(
        c: &BlasCall,
        a: &[f64],
        a_off: usize,
        b: &[f64],
        b_off: usize,
        out: &mut [f64],
        c_off: usize,
    ) {
        assert!(
            c.m >= 0 && c.n >= 0 && c.k >= 0 && c.batch_count >= 0,
            "{c:?}"
        );
        let (m, n, k) = (c.m as usize, c.n as usize, c.k as usize);
        let a_rows = if c.transa { k } else { m };
        let b_rows = if c.transb { n } else { k };
        assert!(c.lda as usize >= a_rows.max(1), "lda too small: {c:?}");
        assert!(c.ldb as usize >= b_rows.max(1), "ldb too small: {c:?}");
        assert!(c.ldc as usize >= m.max(1), "ldc too small: {c:?}");
        assert!(c.stride_a >= 0 && c.stride_b >= 0 && c.stride_c >= 0);
        let (lda, ldb, ldc) = (c.lda as usize, c.ldb as usize, c.ldc as usize);
        for p in 0..c.batch_count as usize {
            let pa = a_off + p * c.stride_a as usize;
            let pb = b_off + p * c.stride_b as usize;
            let pc = c_off + p * c.stride_c as usize;
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0.0;
                    for l in 0..k {
                        let x = if c.transa {
                            a[pa + l + i * lda]
                        } else {
                            a[pa + i + l * lda]
                        };
                        let y = if c.transb {
                            b[pb + j + l * ldb]
                        } else {
                            b[pb + l + j * ldb]
                        };
                        s += x * y;
                    }
                    out[pc + i + j * ldc] = s;
                }
            }
        }
    }

    /// The whole cuBLAS path on the host: copies where the plan asks, then every call.
    /// Returns the output and whether a copy was made.
    fn run_blas_plan(a: &[f64], la: &Layout, b: &[f64], lb: &Layout) -> (Vec<f64>, (bool, bool)) {
        let plan = GemmPlan::new(la, lb).unwrap();
        let needs = plan.blas_needs_copy();
        let copy = |x: &[f64], l: &Layout| -> (Vec<f64>, Layout) {
            (
                l.strided_index().map(|i| x[i]).collect(),
                Layout::contiguous(l.shape().clone()),
            )
        };
        let (a, la) = if needs.0 {
            copy(a, la)
        } else {
            (a.to_vec(), la.clone())
        };
        let (b, lb) = if needs.1 {
            copy(b, lb)
        } else {
            (b.to_vec(), lb.clone())
        };
        let plan = GemmPlan::new(&la, &lb).unwrap();
        assert_eq!(plan.blas_needs_copy(), (false, false));
        let mut out = vec![f64::NAN; plan.out_len()];
        if plan.out_len() == 0 {
            return (out, needs);
        }
        if plan.k == 0 {
            assert!(plan.blas_plan().is_none());
            out.iter_mut().for_each(|x| *x = 0.0);
            return (out, needs);
        }
        let bp = plan.blas_plan().expect("small sizes fit cuBLAS");
        for &(ao, bo, co) in &bp.offsets {
            // cuBLAS operand a is the rhs view, b the lhs view.
            emulate_blas(&bp.call, &b, ao, &a, bo, &mut out, co);
        }
        (out, needs)
    }

    /// The kernel's semantics on the host, from its arguments alone.
    fn run_kernel_plan(a: &[f64], la: &Layout, b: &[f64], lb: &Layout) -> Vec<f64> {
        let plan = GemmPlan::new(la, lb).unwrap();
        let mut out = vec![f64::NAN; plan.out_len()];
        for (args, co) in plan.kernel_launches() {
            let (m, n) = (args.m as usize, args.n as usize);
            assert!(args.grid.0 >= 1 && args.grid.1 >= 1 && args.grid.2 >= 1);
            assert!(co + args.batch as usize * m * n <= out.len());
            run_launch(&args, a, b, &mut out[co..]);
        }
        out
    }

    /// One launch of `gemm_<t>` on the host.
    fn run_launch(args: &KernelArgs, a: &[f64], b: &[f64], out: &mut [f64]) {
        let (m, n, k) = (args.m as usize, args.n as usize, args.k as usize);
        for z in 0..args.batch {
            let pa = args.a_batch.index(z) as usize;
            let pb = args.b_batch.index(z) as usize;
            let z = z as usize;
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0.0;
                    for l in 0..k {
                        s += a[pa + i * args.a_rs as usize + l * args.a_cs as usize]
                            * b[pb + l * args.b_rs as usize + j * args.b_cs as usize];
                    }
                    out[(z * m + i) * n + j] = s;
                }
            }
        }
    }

    /// A view of logical shape `dims` into a fresh buffer: the storage holds the dims in the
    /// order `perm` (physical dim `q` is logical dim `perm[q]`), each padded by `pad[d]`, and the
    /// view starts at `start[d] ≤ pad[d]`; `bcast[d]` makes dim `d` a stride-0 broadcast of a
    /// size-1 storage dim. Size-1 logical dims get the junk stride `junk` when it is `Some`.
    #[derive(Debug, Clone)]
    struct ViewSpec {
        dims: Vec<usize>,
        perm: Vec<usize>,
        pad: Vec<usize>,
        start: Vec<usize>,
        bcast: Vec<bool>,
        junk: Option<usize>,
    }

    fn make_view(spec: &ViewSpec, seed: u64) -> (Vec<f64>, Layout) {
        let r = spec.dims.len();
        let phys: Vec<usize> = (0..r)
            .map(|d| {
                if spec.bcast[d] {
                    1
                } else {
                    spec.dims[d] + spec.pad[d]
                }
            })
            .collect();
        // Contiguous strides of the storage order.
        let mut strides = vec![0; r];
        let mut s = 1;
        for q in (0..r).rev() {
            let d = spec.perm[q];
            strides[d] = s;
            s *= phys[d];
        }
        let len = s;
        let mut offset = 0;
        for d in 0..r {
            if spec.bcast[d] {
                strides[d] = 0;
            } else {
                offset += spec.start[d].min(spec.pad[d]) * strides[d];
            }
            if spec.dims[d] == 1 {
                if let Some(j) = spec.junk {
                    strides[d] = j;
                }
            }
        }
        let layout = Layout::from_parts(Shape::new(spec.dims.clone()), strides, offset);
        let data = (0..len.max(1))
            .map(|i| {
                let h = (i as u64 + 1)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(seed.wrapping_mul(0xBF58_476D_1CE4_E5B9));
                ((h >> 40) % 2001) as f64 / 1000.0 - 1.0
            })
            .collect::<Vec<_>>();
        assert!(layout.storage_extent() <= data.len());
        (data, layout)
    }

    fn contiguous_spec(dims: &[usize]) -> ViewSpec {
        let r = dims.len();
        ViewSpec {
            dims: dims.to_vec(),
            perm: (0..r).collect(),
            pad: vec![0; r],
            start: vec![0; r],
            bcast: vec![false; r],
            junk: None,
        }
    }

    /// Checks both executions of the plans against the naive product; returns the copies made.
    fn check(sa: &ViewSpec, sb: &ViewSpec) -> (bool, bool) {
        let (a, la) = make_view(sa, 1);
        let (b, lb) = make_view(sb, 2);
        let want = naive(&a, &la, &b, &lb);
        let (got, copies) = run_blas_plan(&a, &la, &b, &lb);
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-12,
                "blas [{i}] {g} vs {w}: {la:?} × {lb:?}"
            );
        }
        let got = run_kernel_plan(&a, &la, &b, &lb);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-12,
                "kernel [{i}] {g} vs {w}: {la:?} × {lb:?}"
            );
        }
        copies
    }

    /// `spec` with its last two dims swapped in storage (a transposed matrix).
    fn transposed(mut spec: ViewSpec) -> ViewSpec {
        let r = spec.dims.len();
        spec.perm.swap(r - 2, r - 1);
        spec
    }

    #[test]
    fn contiguous_and_transposed() {
        let a = contiguous_spec(&[2, 3, 4]);
        let b = contiguous_spec(&[2, 4, 5]);
        assert_eq!(check(&a, &b), (false, false));
        assert_eq!(check(&transposed(a.clone()), &b), (false, false));
        assert_eq!(check(&a, &transposed(b.clone())), (false, false));
        assert_eq!(check(&transposed(a), &transposed(b)), (false, false));
        let plan = GemmPlan::new(
            &Layout::contiguous(vec![2, 3, 4]),
            &Layout::contiguous(vec![2, 4, 5]),
        )
        .unwrap();
        let bp = plan.blas_plan().unwrap();
        assert_eq!(bp.offsets, vec![(0, 0, 0)]);
        let c = bp.call;
        assert_eq!((c.transa, c.transb), (false, false));
        assert_eq!((c.m, c.n, c.k, c.lda, c.ldb, c.ldc), (5, 3, 4, 5, 4, 5));
        assert_eq!(
            (c.stride_a, c.stride_b, c.stride_c, c.batch_count),
            (20, 12, 15, 2)
        );
    }

    #[test]
    fn transposed_operand_uses_op_t_without_copy() {
        // lhs (3, 4) stored as (4, 3): strides (1, 3).
        let la = Layout::contiguous(vec![4, 3]).permute(&[1, 0]).unwrap();
        let lb = Layout::contiguous(vec![4, 5]);
        let bp = GemmPlan::new(&la, &lb).unwrap().blas_plan().unwrap();
        assert!(bp.call.transb && !bp.call.transa);
        assert_eq!(bp.call.ldb, 3);
    }

    #[test]
    fn narrowed_views() {
        // Row padding makes ld > cols; offsets start inside the buffer.
        let mut a = contiguous_spec(&[3, 5, 6]);
        a.pad = vec![1, 2, 3];
        a.start = vec![1, 1, 2];
        let mut b = contiguous_spec(&[3, 6, 4]);
        b.pad = vec![2, 1, 2];
        b.start = vec![2, 0, 1];
        assert_eq!(check(&a, &b), (false, false));
        assert_eq!(
            check(&transposed(a.clone()), &transposed(b.clone())),
            (false, false)
        );
        // A step-2 column view is neither layout: copied for cuBLAS, read in place by the kernel.
        let base = Layout::contiguous(vec![4, 10]);
        let la = Layout::from_parts(Shape::new(vec![4, 5]), vec![10, 2], 0);
        assert!(la.storage_extent() <= base.elem_count());
        let plan = GemmPlan::new(&la, &Layout::contiguous(vec![5, 3])).unwrap();
        assert_eq!(plan.blas_needs_copy(), (true, false));
        assert!(plan.blas_plan().is_none());
        assert_eq!(plan.kernel_launches().len(), 1);
    }

    #[test]
    fn broadcast_batches() {
        // lhs batch broadcast (stride 0), rhs full: one strided-batched call with stride 0.
        let mut a = contiguous_spec(&[4, 3, 2]);
        a.bcast[0] = true;
        let b = contiguous_spec(&[4, 2, 5]);
        assert_eq!(check(&a, &b), (false, false));
        let (_, la) = make_view(&a, 0);
        let (_, lb) = make_view(&b, 0);
        let bp = GemmPlan::new(&la, &lb).unwrap().blas_plan().unwrap();
        assert_eq!(bp.offsets.len(), 1);
        assert_eq!((bp.call.stride_b, bp.call.batch_count), (0, 4));
        // Two broadcast dims on each side, mixed: (2, 3) batch, lhs broadcast over dim 1,
        // rhs over dim 0 — not mergeable, so a loop over the shorter dim.
        let mut a = contiguous_spec(&[2, 3, 3, 4]);
        a.bcast[1] = true;
        let mut b = contiguous_spec(&[2, 3, 4, 2]);
        b.bcast[0] = true;
        assert_eq!(check(&a, &b), (false, false));
        let (_, la) = make_view(&a, 0);
        let (_, lb) = make_view(&b, 0);
        let plan = GemmPlan::new(&la, &lb).unwrap();
        assert_eq!(plan.batch.len(), 2);
        let bp = plan.blas_plan().unwrap();
        assert_eq!((bp.offsets.len(), bp.call.batch_count), (2, 3));
        // Both broadcast everywhere: merged to one stride-0 dim.
        let mut a = contiguous_spec(&[2, 3, 3, 4]);
        a.bcast[0] = true;
        a.bcast[1] = true;
        let mut b = contiguous_spec(&[2, 3, 4, 2]);
        b.bcast[0] = true;
        b.bcast[1] = true;
        check(&a, &b);
        let (_, la) = make_view(&a, 0);
        let (_, lb) = make_view(&b, 0);
        let plan = GemmPlan::new(&la, &lb).unwrap();
        assert_eq!(
            plan.batch,
            vec![BatchDim {
                len: 6,
                lhs: 0,
                rhs: 0,
                out: 6
            }]
        );
    }

    #[test]
    fn broadcast_inside_the_matrix_is_copied_for_cublas() {
        // rhs (k, n) expanded from (k, 1): column stride 0.
        let mut b = contiguous_spec(&[3, 4]);
        b.bcast[1] = true;
        let a = contiguous_spec(&[2, 3]);
        assert_eq!(check(&a, &b), (false, true));
        // A row vector expanded to m rows: row stride 0 — also not addressable by cuBLAS.
        let mut a = contiguous_spec(&[5, 3]);
        a.bcast[0] = true;
        assert_eq!(check(&a, &contiguous_spec(&[3, 2])), (true, false));
    }

    #[test]
    fn permuted_batch_dims_loop() {
        // (2, 3, m, k) stored as (3, 2, m, k): batch dims do not merge.
        let mut a = contiguous_spec(&[2, 3, 4, 5]);
        a.perm = vec![1, 0, 2, 3];
        let b = contiguous_spec(&[2, 3, 5, 3]);
        assert_eq!(check(&a, &b), (false, false));
        let (_, la) = make_view(&a, 0);
        let (_, lb) = make_view(&b, 0);
        let plan = GemmPlan::new(&la, &lb).unwrap();
        assert_eq!(plan.batch.len(), 2);
        let bp = plan.blas_plan().unwrap();
        assert_eq!((bp.offsets.len(), bp.call.batch_count), (2, 3));
        // Heads-style (B, H, T, D) from (B, T, H, D) storage: strides (T·H·D, D, H·D, 1).
        let mut a = contiguous_spec(&[2, 3, 4, 5]);
        a.perm = vec![0, 2, 1, 3];
        let mut b = contiguous_spec(&[2, 3, 5, 4]);
        b.perm = vec![0, 2, 3, 1];
        check(&a, &b);
        // Three batch dims, all permuted.
        let mut a = contiguous_spec(&[2, 2, 3, 2, 3]);
        a.perm = vec![2, 0, 1, 4, 3];
        let mut b = contiguous_spec(&[2, 2, 3, 3, 2]);
        b.perm = vec![1, 2, 0, 3, 4];
        check(&a, &b);
    }

    #[test]
    fn zero_and_unit_sizes() {
        // k = 0: zeros.
        let (_, la) = make_view(&contiguous_spec(&[2, 3, 0]), 0);
        let (_, lb) = make_view(&contiguous_spec(&[2, 0, 4]), 0);
        let plan = GemmPlan::new(&la, &lb).unwrap();
        assert_eq!((plan.out_len(), plan.k), (24, 0));
        assert!(plan.blas_plan().is_none());
        check(&contiguous_spec(&[2, 3, 0]), &contiguous_spec(&[2, 0, 4]));
        // m = 0, n = 0, batch = 0: empty outputs.
        for (a, b) in [
            (vec![2, 0, 3], vec![2, 3, 4]),
            (vec![2, 3, 3], vec![2, 3, 0]),
            (vec![0, 3, 3], vec![0, 3, 4]),
        ] {
            let plan = GemmPlan::new(
                &Layout::contiguous(a.clone()),
                &Layout::contiguous(b.clone()),
            )
            .unwrap();
            assert_eq!(plan.out_len(), 0);
            assert!(plan.blas_plan().is_none());
            check(&contiguous_spec(&a), &contiguous_spec(&b));
        }
        // Size-1 m, n, k with junk strides on the size-1 dims (cuBLAS must still get valid ld).
        for junk in [None, Some(0), Some(1), Some(7)] {
            for (a, b) in [
                (vec![1, 1], vec![1, 1]),
                (vec![1, 4], vec![4, 1]),
                (vec![3, 1], vec![1, 5]),
                (vec![1, 4], vec![4, 5]),
                (vec![3, 4], vec![4, 1]),
                (vec![2, 1, 4], vec![2, 4, 1]),
            ] {
                let mut sa = contiguous_spec(&a);
                let mut sb = contiguous_spec(&b);
                sa.junk = junk;
                sb.junk = junk;
                assert_eq!(check(&sa, &sb), (false, false), "{a:?} {b:?} {junk:?}");
                assert_eq!(
                    check(&transposed(sa), &transposed(sb)),
                    (false, false),
                    "{a:?} {b:?} {junk:?} transposed"
                );
            }
        }
    }

    #[test]
    fn operand_classification() {
        assert_eq!(blas_operand(3, 4, 4, 1), Some((false, 4)));
        assert_eq!(blas_operand(3, 4, 6, 1), Some((false, 6)));
        assert_eq!(blas_operand(3, 4, 1, 3), Some((true, 3)));
        assert_eq!(blas_operand(3, 4, 1, 5), Some((true, 5)));
        // Overlapping rows (ld < cols) are not a valid cuBLAS matrix.
        assert_eq!(blas_operand(3, 4, 2, 1), None);
        assert_eq!(blas_operand(3, 4, 0, 1), None);
        assert_eq!(blas_operand(3, 4, 4, 0), None);
        assert_eq!(blas_operand(3, 4, 8, 2), None);
        // Size-1 dims: their stride is ignored.
        assert_eq!(blas_operand(1, 4, 0, 1), Some((false, 4)));
        assert_eq!(blas_operand(1, 4, 0, 3), Some((true, 3)));
        assert_eq!(blas_operand(3, 1, 1, 0), Some((false, 1)));
        assert_eq!(blas_operand(3, 1, 5, 0), Some((false, 5)));
        assert_eq!(blas_operand(1, 1, 0, 0), Some((false, 1)));
    }

    #[test]
    fn huge_sizes_fall_back_to_the_kernel() {
        let big = i32::MAX as usize + 1;
        let la = Layout::from_parts(Shape::new(vec![big, 2]), vec![2, 1], 0);
        let lb = Layout::contiguous(vec![2, 1]);
        let plan = GemmPlan::new(&la, &lb).unwrap();
        assert_eq!(plan.blas_needs_copy(), (false, false));
        assert!(plan.blas_plan().is_none());
        let launches = plan.kernel_launches();
        assert_eq!(launches.len(), 1);
        assert_eq!(launches[0].0.grid, (1, MAX_GRID_YZ as u32, 1));
    }

    #[test]
    fn too_many_batch_dims_for_the_kernel() {
        // 9 batch dims of size 2 reversed: nothing merges.
        let mut dims = vec![2; 9];
        dims.extend([2, 2]);
        let base = Layout::contiguous(dims.clone());
        let mut perm: Vec<usize> = (0..9).rev().collect();
        perm.extend([9, 10]);
        let la = base.permute(&perm).unwrap();
        let lb = Layout::contiguous(dims);
        let plan = GemmPlan::new(&la, &lb).unwrap();
        assert_eq!(plan.batch.len(), 9);
        // The kernel gets the inner 8 dims, the host loops over the outermost.
        let launches = plan.kernel_launches();
        assert_eq!(launches.len(), 2);
        assert_eq!(launches[0].0.batch, 256);
        assert_eq!(launches[1].1, 256 * 4);
        assert_eq!(launches[1].0.a_batch.offset, la.strides()[0] as u64);
        let a: Vec<f64> = (0..la.storage_extent()).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..lb.storage_extent()).map(|i| (i % 7) as f64).collect();
        assert_eq!(run_kernel_plan(&a, &la, &b, &lb), naive(&a, &la, &b, &lb));
        // cuBLAS: 2 per call, 256 calls.
        let bp = plan.blas_plan().unwrap();
        assert_eq!((bp.offsets.len(), bp.call.batch_count), (256, 2));
    }

    #[test]
    fn shape_errors_name_the_shapes() {
        let err = |a: Vec<usize>, b: Vec<usize>| {
            GemmPlan::new(&Layout::contiguous(a), &Layout::contiguous(b))
                .unwrap_err()
                .to_string()
        };
        let e = err(vec![2, 3], vec![4, 5]);
        assert!(
            e.contains("inner dims differ") && e.contains("[2, 3]"),
            "{e}"
        );
        let e = err(vec![2, 2, 3], vec![3, 3, 5]);
        assert!(e.contains("batch dims differ"), "{e}");
        let e = err(vec![3], vec![3]);
        assert!(e.contains("rank ≥ 2"), "{e}");
        let e = err(vec![2, 3], vec![1, 3, 5]);
        assert!(e.contains("rank ≥ 2"), "{e}");
    }

    #[test]
    fn shape_errors_match_the_cpu_backend() {
        use vars_core::Backend;
        let cpu = |a: Vec<usize>, b: Vec<usize>| {
            let sa = vars_cpu::CpuStorage::from_host(vars_core::HostData::F32(vec![
                0.0;
                a.iter()
                    .product()
            ]));
            let sb = vars_cpu::CpuStorage::from_host(vars_core::HostData::F32(vec![
                0.0;
                b.iter()
                    .product()
            ]));
            vars_cpu::Cpu::matmul(&sa, &Layout::contiguous(a), &sb, &Layout::contiguous(b))
                .unwrap_err()
                .to_string()
        };
        for (a, b) in [
            (vec![2, 3], vec![4, 5]),
            (vec![2, 2, 3], vec![3, 3, 5]),
            (vec![3], vec![3]),
            (vec![2, 3], vec![1, 3, 5]),
        ] {
            let ours = GemmPlan::new(
                &Layout::contiguous(a.clone()),
                &Layout::contiguous(b.clone()),
            )
            .unwrap_err()
            .to_string();
            assert_eq!(ours, cpu(a, b));
        }
    }

    #[test]
    fn registry_entries() {
        assert_eq!(entries(), vec!["gemm_f32", "gemm_f64"]);
        assert!(kernels::GEMM.source.contains("VARS_GEMM_THREADS 256"));
        assert!(kernels::GEMM.source.contains("VARS_GEMM_BM 64"));
        assert!(kernels::GEMM.source.contains("VARS_GEMM_BN 64"));
    }

    fn arb_spec(dims: Vec<usize>) -> impl Strategy<Value = ViewSpec> {
        let r = dims.len();
        (
            Just(dims),
            Just((0..r).collect::<Vec<usize>>()).prop_shuffle(),
            proptest::collection::vec(0usize..3, r),
            proptest::collection::vec(0usize..3, r),
            proptest::collection::vec(proptest::bool::weighted(0.15), r),
            proptest::option::weighted(0.3, 0usize..4),
            proptest::bool::weighted(0.5),
        )
            .prop_map(move |(dims, perm, pad, start, bcast, junk, keep_matrix)| {
                let mut perm = perm;
                if keep_matrix {
                    // Keep the matrix dims innermost (plain or transposed) half the time.
                    let mut batch: Vec<usize> =
                        perm.iter().copied().filter(|&d| d < r - 2).collect();
                    let t = perm.iter().position(|&d| d == r - 1)
                        < perm.iter().position(|&d| d == r - 2);
                    batch.extend(if t { [r - 1, r - 2] } else { [r - 2, r - 1] });
                    perm = batch;
                }
                ViewSpec {
                    dims,
                    perm,
                    pad,
                    start,
                    bcast,
                    junk,
                }
            })
    }

    fn arb_pair() -> impl Strategy<Value = (ViewSpec, ViewSpec)> {
        (
            proptest::collection::vec(0usize..4, 0..4),
            0usize..7,
            0usize..7,
            0usize..7,
        )
            .prop_flat_map(|(batch, m, k, n)| {
                let mut da = batch.clone();
                da.extend([m, k]);
                let mut db = batch;
                db.extend([k, n]);
                (arb_spec(da), arb_spec(db))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn plans_compute_the_product((a, b) in arb_pair()) {
            check(&a, &b);
        }
    }
}
