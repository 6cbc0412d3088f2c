//! The compute-backend contract.
//!
//! A backend owns a device type and a storage type (a flat buffer of one [`DType`]). Every op
//! receives its operands as `(storage, layout)` so views cost nothing; every op returns a fresh,
//! contiguous storage. The op *vocabulary* is deliberately small (elementwise unary and binary,
//! reductions, batched matmul, gather/scatter, copies): the tensor layer composes everything else
//! and the autodiff layer differentiates it. Fused kernels plug in through [`crate::CustomOp`];
//! the few that every backend should be able to override (softmax and layer norm along the last
//! dim, the sparse-coding loop of spec §1.3 / §3.3) have an optional hook here whose default
//! answers "no fused kernel" (`Ok(None)`), so the op falls back to its composite of the ops
//! above.
//!
//! Contract that every implementation honours (the shared suite in `vars_core::testing` checks it):
//! - binary ops receive layouts of *equal shape* (the tensor layer broadcasts with stride-0 views);
//! - outputs are contiguous row-major with offset 0;
//! - reductions are deterministic for a given input (the CPU backend parallelises across output
//!   elements only, so the summation order never depends on the thread count);
//! - bad dtypes are reported with [`crate::Error::UnsupportedDType`], never a panic.

use crate::sparse::fused::{IstaForward, IstaGrads, UnrolledIsta};
use crate::{DType, HostData, Layout, Result, Window2d};
use std::fmt::Debug;

/// Elementwise single-input ops, including the scalar-parameterised ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Sqr,
    Abs,
    /// `sign(0) = 0`.
    Sign,
    Relu,
    /// Exact erf form `x·Φ(x)` (spec §0), not the tanh approximation.
    Gelu,
    /// `d/dx GELU(x) = Φ(x) + x·φ(x)`, for the backward pass.
    GeluDerivative,
    Erf,
    Sigmoid,
    Tanh,
    Recip,
    /// `1` where `x > 0`, else `0` (the ReLU derivative, with derivative 0 at 0).
    Step,
    Powf(f64),
    /// `x·mul + add`.
    Affine {
        mul: f64,
        add: f64,
    },
    /// `max(x, c)`.
    ClampMin(f64),
    /// `min(x, c)`.
    ClampMax(f64),
}

impl UnaryOp {
    pub fn name(&self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Sqr => "sqr",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Relu => "relu",
            UnaryOp::Gelu => "gelu",
            UnaryOp::GeluDerivative => "gelu_derivative",
            UnaryOp::Erf => "erf",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Recip => "recip",
            UnaryOp::Step => "step",
            UnaryOp::Powf(_) => "powf",
            UnaryOp::Affine { .. } => "affine",
            UnaryOp::ClampMin(_) => "clamp_min",
            UnaryOp::ClampMax(_) => "clamp_max",
        }
    }

    /// Ops that are also defined on integer tensors.
    pub fn supports_integers(&self) -> bool {
        matches!(
            self,
            UnaryOp::Neg
                | UnaryOp::Abs
                | UnaryOp::Sign
                | UnaryOp::Relu
                | UnaryOp::Sqr
                | UnaryOp::Step
                | UnaryOp::Affine { .. }
                | UnaryOp::ClampMin(_)
                | UnaryOp::ClampMax(_)
        )
    }
}

/// Elementwise two-input ops. Comparisons return `1`/`0` in the input dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `sign(a)·max(|a| − b, 0)`: the soft threshold `T_b(a)` (spec §0).
    SoftThreshold,
    /// `sign(a)·gelu(|a| − b)`: the official code's shrink (spec §7.1).
    GeluShrink,
}

impl BinaryOp {
    pub fn name(&self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
            BinaryOp::SoftThreshold => "soft_threshold",
            BinaryOp::GeluShrink => "gelu_shrink",
        }
    }

    pub fn is_comparison(&self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
        )
    }
}

/// Reductions over a set of axes; the output keeps the reduced axes with size 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
    /// Index of the first maximum; exactly one axis; output dtype `I64`.
    ArgMax,
    /// Index of the first minimum; exactly one axis; output dtype `I64`.
    ArgMin,
}

impl ReduceOp {
    pub fn name(&self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::ArgMax => "argmax",
            ReduceOp::ArgMin => "argmin",
        }
    }
}

/// Distributions for [`Backend::random`]; see [`crate::rng`] for the exact generator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    Uniform { low: f64, high: f64 },
    Normal { mean: f64, std: f64 },
}

/// A compute backend. Implemented by `vars_cpu::Cpu`, `vars_cuda::Cuda`, and by the
/// [`crate::Autodiff`] decorator around any of them.
pub trait Backend: Sized + Clone + Copy + Debug + Default + Send + Sync + 'static {
    type Device: Clone + Debug + PartialEq + Send + Sync + 'static;
    type Storage: Debug + Send + Sync + 'static;

    /// Whether tensors of this backend record a backward graph ([`crate::Autodiff`] only).
    const TRACKS_GRADIENTS: bool = false;

    fn name() -> &'static str;

    // ---- storage and transfers -------------------------------------------------------------
    fn storage_device(storage: &Self::Storage) -> Self::Device;
    fn storage_dtype(storage: &Self::Storage) -> DType;
    /// Number of elements in the buffer.
    fn storage_len(storage: &Self::Storage) -> usize;
    /// A buffer of `len` elements, all equal to `value`.
    fn full(device: &Self::Device, len: usize, dtype: DType, value: f64) -> Result<Self::Storage>;
    fn from_host(device: &Self::Device, data: HostData) -> Result<Self::Storage>;
    /// Gathers the view into a contiguous host buffer.
    fn to_host(storage: &Self::Storage, layout: &Layout) -> Result<HostData>;
    /// Waits for all queued work on `device`.
    fn synchronize(device: &Self::Device) -> Result<()>;
    /// `len` samples from the counter-based generator of [`crate::rng`]: element `i` depends only
    /// on `(seed, i)`, so every backend produces the same numbers (bit for bit for uniform draws,
    /// to a few ulp for normal ones, see [`crate::rng`]).
    fn random(
        device: &Self::Device,
        len: usize,
        dtype: DType,
        dist: Distribution,
        seed: u64,
    ) -> Result<Self::Storage>;

    // ---- copies ------------------------------------------------------------------------------
    /// A contiguous copy of the view.
    fn copy_strided(storage: &Self::Storage, layout: &Layout) -> Result<Self::Storage>;
    /// Writes the view `src` into the view `dst` of a buffer the caller owns exclusively.
    fn copy_into(
        src: &Self::Storage,
        src_layout: &Layout,
        dst: &mut Self::Storage,
        dst_layout: &Layout,
    ) -> Result<()>;
    fn cast(storage: &Self::Storage, layout: &Layout, dtype: DType) -> Result<Self::Storage>;

    // ---- compute -----------------------------------------------------------------------------
    fn unary(op: UnaryOp, storage: &Self::Storage, layout: &Layout) -> Result<Self::Storage>;
    /// `lhs` and `rhs` have equal shapes and dtypes.
    fn binary(
        op: BinaryOp,
        lhs: &Self::Storage,
        lhs_layout: &Layout,
        rhs: &Self::Storage,
        rhs_layout: &Layout,
    ) -> Result<Self::Storage>;
    /// `cond != 0 ? on_true : on_false`; all three views have equal shapes.
    fn where_cond(
        cond: &Self::Storage,
        cond_layout: &Layout,
        on_true: &Self::Storage,
        true_layout: &Layout,
        on_false: &Self::Storage,
        false_layout: &Layout,
    ) -> Result<Self::Storage>;
    /// Reduces `axes` (sorted, unique); the output has the input's rank with those axes set to 1.
    fn reduce(
        op: ReduceOp,
        storage: &Self::Storage,
        layout: &Layout,
        axes: &[usize],
    ) -> Result<Self::Storage>;
    /// Batched `(…, m, k) × (…, k, n) → (…, m, n)`. Both layouts have the same rank ≥ 2 and equal
    /// batch dims (which may be stride-0 broadcasts); transposed operands arrive as strides.
    fn matmul(
        lhs: &Self::Storage,
        lhs_layout: &Layout,
        rhs: &Self::Storage,
        rhs_layout: &Layout,
    ) -> Result<Self::Storage>;
    /// Gathers entries of `dim` by an `I64` index vector (`indices` is rank 1).
    fn index_select(
        storage: &Self::Storage,
        layout: &Layout,
        dim: usize,
        indices: &Self::Storage,
        indices_layout: &Layout,
    ) -> Result<Self::Storage>;
    /// The adjoint of [`Backend::index_select`]: a zero buffer whose `dim` has size `dim_size`,
    /// with slice `k` of `src` added into slice `indices[k]` (duplicates accumulate).
    fn index_add(
        src: &Self::Storage,
        src_layout: &Layout,
        dim: usize,
        indices: &Self::Storage,
        indices_layout: &Layout,
        dim_size: usize,
    ) -> Result<Self::Storage>;
    /// im2col of an `(N, C, H, W)` view into a contiguous `(N, C·kh·kw, Ho·Wo)` buffer, row
    /// `c·kh·kw + i·kw + j`, column `oy·Wo + ox`; positions outside the image read `pad_value`.
    fn unfold2d(
        storage: &Self::Storage,
        layout: &Layout,
        window: Window2d,
        pad_value: f64,
    ) -> Result<Self::Storage>;
    /// col2im, the adjoint of `unfold2d`: an `(N, C·kh·kw, Ho·Wo)` view summed into a zero
    /// `(N, C, H, W)` buffer; contributions of padded positions are dropped.
    fn fold2d(
        storage: &Self::Storage,
        layout: &Layout,
        window: Window2d,
        output_hw: (usize, usize),
    ) -> Result<Self::Storage>;

    // ---- optional fused kernels (default: none, the op uses its composite) -------------------
    /// Fused softmax (`log = false`) or log-softmax (`log = true`) along the **last** dim of the
    /// view ([`crate::nn::softmax`], spec §0): max-subtracted, one pass per row. The output is
    /// contiguous, of the view's shape. `Ok(None)` (the default) means "no fused kernel".
    fn softmax_last_dim(
        x: &Self::Storage,
        layout: &Layout,
        log: bool,
    ) -> Result<Option<Self::Storage>> {
        let _ = (x, layout, log);
        Ok(None)
    }

    /// The vector-Jacobian product of [`Backend::softmax_last_dim`] from the forward's output
    /// `y` and the output gradient `grad` (same shape, any layouts): softmax
    /// `y ⊙ (g − Σ g⊙y)`, log-softmax `g − exp(y)·Σ g`, sums along the last dim. Contiguous
    /// output; `Ok(None)` (the default) means "not implemented".
    fn softmax_last_dim_backward(
        y: &Self::Storage,
        y_layout: &Layout,
        grad: &Self::Storage,
        grad_layout: &Layout,
        log: bool,
    ) -> Result<Option<Self::Storage>> {
        let _ = (y, y_layout, grad, grad_layout, log);
        Ok(None)
    }

    /// The normalisation of layer norm along the **last** dim ([`crate::nn::layer_norm`]): returns
    /// `x̂ = (x − mean) / sqrt(var + eps)` (biased variance; contiguous, the view's shape) and
    /// `rstd = 1 / sqrt(var + eps)` (contiguous, the view's shape with the last dim 1). The affine
    /// part stays with the caller. `Ok(None)` (the default) means "no fused kernel".
    fn layer_norm_last_dim(
        x: &Self::Storage,
        layout: &Layout,
        eps: f64,
    ) -> Result<Option<(Self::Storage, Self::Storage)>> {
        let _ = (x, layout, eps);
        Ok(None)
    }

    /// The vector-Jacobian product of the normalisation from the forward's `x̂` and `rstd` and the
    /// gradient `grad` reaching `x̂`: `rstd ⊙ (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂))`, means along the
    /// last dim. Contiguous output; `Ok(None)` (the default) means "not implemented".
    fn layer_norm_last_dim_backward(
        xhat: &Self::Storage,
        xhat_layout: &Layout,
        rstd: &Self::Storage,
        rstd_layout: &Layout,
        grad: &Self::Storage,
        grad_layout: &Layout,
    ) -> Result<Option<Self::Storage>> {
        let _ = (xhat, xhat_layout, rstd, rstd_layout, grad, grad_layout);
        Ok(None)
    }

    /// The fused sparse-coding loop ([`crate::sparse::unrolled_ista`], spec §3.3 steps 8–9):
    /// `A ← A0; T times: A ← shrink(A − (G·A − b)/L, λ/L)`, per batch entry.
    ///
    /// The four views have the same rank ≥ 2 and equal batch dims (broadcasts arrive as stride-0
    /// views): `g` is `(…, m, m)`, `b` is `(…, m, d)`, `lam` and `l` are `(…, 1, 1)`, all of one
    /// float dtype. The output is contiguous `(…, m, d)`. With `save_for_backward` the backend may
    /// return any state its [`Backend::unrolled_ista_backward`] needs (an opaque buffer handed back
    /// unchanged). `Ok(None)` (the default) means "no fused kernel": the caller runs the composite.
    fn unrolled_ista_forward(
        cfg: &UnrolledIsta,
        g: &Self::Storage,
        g_layout: &Layout,
        b: &Self::Storage,
        b_layout: &Layout,
        lam: &Self::Storage,
        lam_layout: &Layout,
        l: &Self::Storage,
        l_layout: &Layout,
        save_for_backward: bool,
    ) -> Result<Option<IstaForward<Self::Storage>>> {
        let _ = (cfg, g, g_layout, b, b_layout, lam, lam_layout, l, l_layout);
        let _ = save_for_backward;
        Ok(None)
    }

    /// The exact vector-Jacobian product of [`Backend::unrolled_ista_forward`] for the same views,
    /// given the state that forward saved and the output gradient `grad` (`(…, m, d)`, any
    /// layout). Returns contiguous gradients shaped like the four views (`(…, m, m)`,
    /// `(…, m, d)`, `(…, 1, 1)`, `(…, 1, 1)`). `Ok(None)` (the default) means "not implemented":
    /// the caller differentiates the composite instead.
    fn unrolled_ista_backward(
        cfg: &UnrolledIsta,
        g: &Self::Storage,
        g_layout: &Layout,
        b: &Self::Storage,
        b_layout: &Layout,
        lam: &Self::Storage,
        lam_layout: &Layout,
        l: &Self::Storage,
        l_layout: &Layout,
        saved: Option<&Self::Storage>,
        grad: &Self::Storage,
        grad_layout: &Layout,
    ) -> Result<Option<IstaGrads<Self::Storage>>> {
        let _ = (cfg, g, g_layout, b, b_layout, lam, lam_layout, l, l_layout);
        let _ = (saved, grad, grad_layout);
        Ok(None)
    }
}
