//! The fused sparse-coding loop on the CPU: [`vars_core::sparse::unrolled_ista`]'s forward and its
//! exact backward (spec §1.3, §3.3 steps 8–9; the op and its math are documented in
//! `vars_core::sparse::fused`).
//!
//! Why a kernel: per (sample, head) the loop is small (`T·m²·d` MACs with m = 64…128 and
//! d = 32…64 at RVT sizes), and as a composite of tensor ops it makes five passes over memory per
//! step (fresh tensors for `G·A`, `− b`, `/L`, `A − ·` and the shrink). Here each batch entry is
//! one unit of work:
//!
//! - rayon splits the batch entries (at least [`TASK_FLOPS`] of work per task; one thread's worth
//!   of entries when the whole problem is small), and every task allocates its scratch once;
//! - per entry, G (`m×m`), b and the codes (`m×d`) are copied into that cache-resident scratch
//!   (any strides, broadcasts included), `G·A` is one single-threaded call into the
//!   [`crate::gemm`] seam, then one pass forms `Z = A − (G·A − b)/L` and one applies the shrink in
//!   place; nothing is allocated inside the step loop;
//! - the arithmetic mirrors the composite op for op (`(G·A − b)/L` with a division, `t = λ/L`,
//!   the shrinks of the `soft_threshold` / `gelu_shrink` binary ops, the same GEMM calls), so the
//!   fused forward equals the composite bit for bit (the tests allow rounding-level slack).
//!
//! The exact GELU shrink dominates the loop (an `erfc` per code and step). `special::erfc`
//! branches on its argument's range and those branches are unpredictable on codes, so the shrink
//! runs eight lanes at a time: fdlibm's small-argument formula (`|x| < 0.84375`, where nearly all
//! codes fall) is evaluated branch-free and vectorised, bit-identical to `special::normal_cdf`,
//! and only lanes outside that range call the scalar function. The per-entry bodies are compiled
//! twice, for the baseline target and with AVX2 (chosen at run time by CPU detection; the only
//! `unsafe` here): the same IEEE operations in the same order, no fused multiply-adds, so the
//! results do not depend on the choice (a test checks the bits).
//!
//! Backward (exact for the unrolled computation). When the forward runs for training it saves,
//! per entry, the codes entering each step `A_{k−1}` and the shrink derivatives at each
//! pre-shrink value `Z_k` (and at `b` for the official initial guess): `dz = sign(z)²·g′(u)` and
//! `dt = sign(z)·g′(u)` with `u = |z| − t` (no derivative blocks for the identity shrink). The
//! reverse sweep then needs no special functions: per step
//! `gZ = gA⊙dz`, `∂t −= Σ gA⊙dt`, `H = Gᵀ·gZ` (one GEMM), `gA ← gZ − H/L`, `∂b += gZ/L`,
//! `Σ gZ⊙R = ⟨H, A_{k−1}⟩ − ⟨gZ, b⟩` (so `R = G·A − b` is never recomputed), and at the end
//! `∂G = −(1/L)·[gZ_1 … gZ_T]·[A_0 … A_{T−1}]ᵀ` as a single GEMM with inner size `T·d` (both
//! factors are stored interleaved as `m × (T·d)` matrices). Scalar sums accumulate in f64 with
//! eight independent accumulators. Saved state: `(3T + 2)·m·d` elements per entry (GELU and soft
//! threshold with the official initial guess), `T·m·d` (identity), about what the composite's
//! graph keeps alive.

use rayon::prelude::*;
use vars_core::nn::Shrink;
use vars_core::sparse::{IstaForward, IstaGrads, IstaInit, UnrolledIsta};
use vars_core::{DType, Element, Error, Layout, Result};

use crate::copy::unsupported;
use crate::gemm::{gemm_f32, gemm_f64, GemmKernel, DEFAULT_KERNEL};
use crate::scalar::Float;
use crate::special::{gelu, gelu_derivative, normal_cdf, normal_pdf};
use crate::storage::CpuStorage;
use crate::strided::{check_view, offsets};

const OP: &str = "unrolled_ista";
const OP_BACKWARD: &str = "unrolled_ista_backward";

/// Smallest amount of work (floating-point operations) handed to one rayon task.
const TASK_FLOPS: usize = 1 << 18;

type GemmFn<T> = fn(
    GemmKernel,
    usize,
    usize,
    usize,
    &[T],
    usize,
    usize,
    &[T],
    usize,
    usize,
    &mut [T],
    usize,
    usize,
) -> Result<()>;

/// The element types of the kernel, with their GEMM.
trait Real: Float + Element {
    const GEMM: GemmFn<Self>;
}

impl Real for f32 {
    const GEMM: GemmFn<f32> = gemm_f32;
}

impl Real for f64 {
    const GEMM: GemmFn<f64> = gemm_f64;
}

// ---- entry points (called from `impl Backend for Cpu`) -----------------------------------------

pub(crate) fn forward(
    cfg: &UnrolledIsta,
    g: (&CpuStorage, &Layout),
    b: (&CpuStorage, &Layout),
    lam: (&CpuStorage, &Layout),
    l: (&CpuStorage, &Layout),
    save: bool,
) -> Result<IstaForward<CpuStorage>> {
    let geo = Geometry::new(OP, [g, b, lam, l])?;
    match g.0.dtype() {
        DType::F32 => {
            forward_typed::<f32>(simd_available(), cfg, &geo, [g.0, b.0, lam.0, l.0], save)
        }
        DType::F64 => {
            forward_typed::<f64>(simd_available(), cfg, &geo, [g.0, b.0, lam.0, l.0], save)
        }
        other => Err(unsupported(OP, other, "f32, f64")),
    }
}

pub(crate) fn backward(
    cfg: &UnrolledIsta,
    g: (&CpuStorage, &Layout),
    b: (&CpuStorage, &Layout),
    lam: (&CpuStorage, &Layout),
    l: (&CpuStorage, &Layout),
    saved: Option<&CpuStorage>,
    grad: (&CpuStorage, &Layout),
) -> Result<IstaGrads<CpuStorage>> {
    let geo = Geometry::new(OP_BACKWARD, [g, b, lam, l])?;
    check_view(OP_BACKWARD, grad.0.len(), grad.1)?;
    if grad.1.shape() != b.1.shape() {
        return Err(Error::ShapeMismatch {
            op: OP_BACKWARD,
            lhs: b.1.shape().clone(),
            rhs: grad.1.shape().clone(),
            hint: " (the output gradient must have the output's shape (…, m, d))".into(),
        });
    }
    // Without saved state (not produced by this backend's forward), recompute it.
    let recomputed;
    let saved = match saved {
        Some(s) => s,
        None => {
            recomputed = forward(cfg, g, b, lam, l, true)?.saved;
            recomputed.as_ref().ok_or_else(|| Error::Backend {
                backend: "cpu",
                msg: format!("{OP_BACKWARD}: the forward saved no state"),
            })?
        }
    };
    let inputs = [g.0, b.0, lam.0, l.0];
    match g.0.dtype() {
        DType::F32 => backward_typed::<f32>(simd_available(), cfg, &geo, inputs, saved, grad),
        DType::F64 => backward_typed::<f64>(simd_available(), cfg, &geo, inputs, saved, grad),
        other => Err(unsupported(OP_BACKWARD, other, "f32, f64")),
    }
}

/// Whether the entry loops can run their AVX2 build (x86-64 with AVX2, detected at run time).
/// The AVX2 build does the same IEEE operations in the same order (no fused multiply-adds), so
/// results do not depend on it; it only widens the vectorised special-function and elementwise
/// loops from 2 to 4 f64 lanes.
fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

// ---- geometry ------------------------------------------------------------------------------------

/// Validated shapes of the four operands and the storage offset of each batch entry.
struct Geometry {
    batch: usize,
    m: usize,
    d: usize,
    /// Storage offsets of entry `e` of G, b, λ, L.
    offsets: [Vec<usize>; 4],
    /// Row and column strides of G and b.
    g_strides: (usize, usize),
    b_strides: (usize, usize),
}

impl Geometry {
    fn new(op: &'static str, views: [(&CpuStorage, &Layout); 4]) -> Result<Geometry> {
        for (s, l) in views {
            check_view(op, s.len(), l)?;
        }
        let [gl, bl, laml, ll] = views.map(|v| v.1);
        let r = gl.rank();
        let bad = |other: &Layout, what: &str| Error::ShapeMismatch {
            op,
            lhs: gl.shape().clone(),
            rhs: other.shape().clone(),
            hint: format!(" ({what})"),
        };
        if r < 2 {
            return Err(Error::InvalidArgument {
                op,
                shape: gl.shape().clone(),
                msg: "G must have rank >= 2, shape (…, m, m)".into(),
            });
        }
        let batch_dims = &gl.dims()[..r - 2];
        for other in [bl, laml, ll] {
            if other.rank() != r || &other.dims()[..r - 2] != batch_dims {
                return Err(bad(other, "operands must have equal rank and batch dims"));
            }
        }
        let (m, m2) = (gl.dims()[r - 2], gl.dims()[r - 1]);
        if m != m2 {
            return Err(Error::InvalidArgument {
                op,
                shape: gl.shape().clone(),
                msg: "G must be square in its last two dims".into(),
            });
        }
        if bl.dims()[r - 2] != m {
            return Err(bad(bl, "b must be (…, m, d) with G's m"));
        }
        for other in [laml, ll] {
            if other.dims()[r - 2..] != [1, 1] {
                return Err(bad(other, "λ and L must be (…, 1, 1)"));
            }
        }
        let offsets =
            [gl, bl, laml, ll].map(|l| offsets(batch_dims, &l.strides()[..r - 2], l.offset()));
        Ok(Geometry {
            batch: batch_dims.iter().product(),
            m,
            d: bl.dims()[r - 1],
            offsets,
            g_strides: (gl.strides()[r - 2], gl.strides()[r - 1]),
            b_strides: (bl.strides()[r - 2], bl.strides()[r - 1]),
        })
    }

    fn n(&self) -> usize {
        self.m * self.d
    }

    /// Derivative blocks saved per entry: one per step, plus one for `A0 = shrink(b, λ)`.
    fn deriv_blocks(&self, cfg: &UnrolledIsta) -> usize {
        match cfg.shrink {
            Shrink::Identity => 0,
            _ => cfg.steps + usize::from(cfg.init == IstaInit::Shrink),
        }
    }

    /// Saved elements per entry: `A_{k−1}` for every step, then the `dz` and `dt` blocks.
    fn saved_len(&self, cfg: &UnrolledIsta) -> usize {
        (cfg.steps + 2 * self.deriv_blocks(cfg)) * self.n()
    }

    /// Entries per rayon task and whether to go parallel at all.
    fn schedule(&self, cfg: &UnrolledIsta) -> (usize, bool) {
        let per_entry = cfg.steps.max(1) * (2 * self.m * self.m * self.d + 32 * self.n()) + 1;
        let grain = TASK_FLOPS.div_ceil(per_entry).max(1);
        let parallel = rayon::current_num_threads() > 1 && self.batch > grain;
        (grain, parallel)
    }
}

/// `Σ a⊙b` in f64 with eight independent accumulators (vectorisable; no dependency chain).
#[inline(always)]
fn dot_wide<T: Float>(a: &[T], b: &[T]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| wide(x) * wide(y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += wide(x[i]) * wide(y[i]);
        }
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail
}

/// `x` as f64 (disambiguates `Float::to_f64` from `Element::to_f64`).
#[inline(always)]
fn wide<T: Float>(x: T) -> f64 {
    Float::to_f64(x)
}

fn typed<'a, T: Real>(op: &'static str, s: &'a CpuStorage, want: DType) -> Result<&'a [T]> {
    s.as_slice::<T>().ok_or(Error::DTypeMismatch {
        op,
        lhs: want,
        rhs: s.dtype(),
    })
}

/// Copies the `rows×cols` matrix at `off` (strides `rs`, `cs`) into a contiguous buffer.
fn gather<T: Copy>(src: &[T], off: usize, (rs, cs): (usize, usize), cols: usize, dst: &mut [T]) {
    for (r, row) in dst.chunks_exact_mut(cols).enumerate() {
        let start = off + r * rs;
        if cs == 1 {
            row.copy_from_slice(&src[start..start + cols]);
        } else {
            for (c, x) in row.iter_mut().enumerate() {
                *x = src[start + c * cs];
            }
        }
    }
}

/// Runs `f` over `items`, serially or on rayon with `grain` items per task at least; `init`
/// builds the per-task scratch (once per task, never per item).
fn drive<I: Send, S>(
    items: Vec<I>,
    (grain, parallel): (usize, bool),
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, I) -> Result<()> + Sync + Send,
) -> Result<()> {
    if !parallel {
        let mut scratch = init();
        return items.into_iter().try_for_each(|it| f(&mut scratch, it));
    }
    items
        .into_par_iter()
        .with_min_len(grain)
        .try_for_each_init(init, |scratch, it| f(scratch, it))
}

/// `len`-element chunks of `buf` (or `count` empty slices when `len` is 0).
fn chunks<T>(buf: &mut [T], len: usize, count: usize) -> Vec<&mut [T]> {
    if len == 0 {
        (0..count).map(|_| <&mut [T]>::default()).collect()
    } else {
        buf.chunks_mut(len).collect()
    }
}

// ---- the shrinks (elementwise, mirroring `crate::binary` and the composite's backward) ---------

/// `sign(z)`, with `sign(±0) = ±0` and NaN passed through (like the `sign` op).
#[inline(always)]
fn sign<T: Float>(z: T) -> T {
    if z > T::ZERO {
        T::ONE
    } else if z < T::ZERO {
        -T::ONE
    } else {
        z
    }
}

/// `sign(z)·relu(|z| − t)`, exactly as the `soft_threshold` binary op.
#[inline(always)]
fn soft<T: Float>(z: T, t: T) -> T {
    let u = z.abs() - t;
    if u > T::ZERO {
        if z > T::ZERO {
            u
        } else {
            T::ZERO - u
        }
    } else if u.is_nan() {
        u
    } else {
        T::ZERO
    }
}

/// `(soft(z, t), dz, dt)` with `dz = sign(z)²·step(u)`, `dt = sign(z)·step(u)`.
#[inline(always)]
fn soft_grad<T: Float>(z: T, t: T) -> (T, T, T) {
    let step = if z.abs() - t > T::ZERO {
        T::ONE
    } else {
        T::ZERO
    };
    let s = sign(z);
    (soft(z, t), step * (s * s), step * s)
}

/// `sign(z)·gelu(|z| − t)` evaluated in f64, exactly as the `gelu_shrink` binary op.
#[inline(always)]
fn gelu_shrink<T: Float>(z: T, t: T) -> T {
    let zf = z.to_f64();
    signed(zf, gelu(zf.abs() - t.to_f64()))
}

#[inline(always)]
fn signed<T: Float>(zf: f64, g: f64) -> T {
    T::from_f64(if zf > 0.0 {
        g
    } else if zf < 0.0 {
        -g
    } else if zf.is_nan() {
        zf
    } else {
        0.0
    })
}

/// `(gelu_shrink(z, t), dz, dt)`, sharing `Φ(u)` between the value `u·Φ(u)` and the derivative
/// `Φ(u) + u·φ(u)`.
#[inline(always)]
fn gelu_shrink_grad<T: Float>(z: T, t: T) -> (T, T, T) {
    let zf = z.to_f64();
    let u = zf.abs() - t.to_f64();
    let (value, der) = if u.is_finite() {
        let p = normal_cdf(u);
        (u * p, p + u * normal_pdf(u))
    } else {
        (gelu(u), gelu_derivative(u))
    };
    let s = sign(z);
    let der = T::from_f64(der);
    (signed(zf, value), der * (s * s), der * s)
}

/// `a ← a − (G·A − b)/L` elementwise (`ga` holds `G·A`): the pre-shrink values `Z`, in the
/// composite's rounding order.
#[inline(always)]
fn pre_shrink<T: Real>(a: &mut [T], ga: &[T], b: &[T], l: T) {
    for ((x, &p), &q) in a.iter_mut().zip(ga).zip(b) {
        *x = *x - (p - q) / l;
    }
}

/// `a ← shrink(a, t)` in place.
#[inline(always)]
fn shrink_in_place<T: Real>(kind: Shrink, a: &mut [T], t: T) {
    match kind {
        Shrink::Identity => {}
        Shrink::SoftThreshold => a.iter_mut().for_each(|x| *x = soft(*x, t)),
        Shrink::Gelu => gelu_shrink_slice(a, t),
    }
}

/// `a ← shrink(a, t)` in place, storing the derivatives `dz`, `dt` at the old `a` (not for the
/// identity, which stores nothing).
#[inline(always)]
fn shrink_grad_in_place<T: Real>(kind: Shrink, a: &mut [T], dz: &mut [T], dt: &mut [T], t: T) {
    match kind {
        Shrink::Identity => {}
        Shrink::SoftThreshold => {
            for ((x, z), d) in a.iter_mut().zip(dz.iter_mut()).zip(dt.iter_mut()) {
                (*x, *z, *d) = soft_grad(*x, t);
            }
        }
        Shrink::Gelu => gelu_shrink_grad_slice(a, dz, dt, t),
    }
}

// ---- the GELU shrink, eight lanes at a time ---------------------------------------------------
//
// `Φ(u) = erfc(−u/√2)/2` dominates the loop. `special::erfc` branches on the range of its
// argument, and the branches are unpredictable on codes. Here fdlibm's `|x| < 0.84375` formula
// (`erfc(x) = 1 − (x + x·P(x²)/Q(x²))`, or `0.5 − (x − 0.5 + …)` for `x ≥ 0.25`) is evaluated
// branch-free on eight lanes (vectorisable; no fused multiply-adds, so every lane is bit-identical
// to `special::normal_cdf`), and only lanes outside that range fall back to `special::gelu`.

const LANES: usize = 8;

/// fdlibm's `erf(x) = x + x·P(x²)/Q(x²)` on `|x| < 0.84375`: the constants of `special.rs`,
/// digit for digit (the tests check bit-equality with `special::normal_cdf`).
#[allow(clippy::excessive_precision)]
const ERF_SMALL_P: [f64; 5] = [
    1.28379167095512558561e-01,
    -3.25042107247001499370e-01,
    -2.84817495755985104766e-02,
    -5.77027029648944159157e-03,
    -2.37630166566501626084e-05,
];
#[allow(clippy::excessive_precision)]
const ERF_SMALL_Q: [f64; 6] = [
    1.0,
    3.97917223959155352819e-01,
    6.50222499887672944485e-02,
    5.08130628187576562776e-03,
    1.32494738004321644526e-04,
    -3.96022827877536812320e-06,
];

/// `c[0] + x·(c[1] + x·(…))`, in `special.rs`'s order.
#[inline(always)]
fn horner<const N: usize>(x: f64, c: &[f64; N]) -> f64 {
    c.iter().rev().fold(0.0, |acc, &ci| acc * x + ci)
}

/// `Φ(u)` on every lane by the small-argument formula, and whether each lane is in its range
/// (`|u/√2| < 0.84375`; NaN is not).
#[inline(always)]
fn cdf_small_lanes(u: &[f64; LANES]) -> ([f64; LANES], [bool; LANES]) {
    let (mut phi, mut ok) = ([0.0; LANES], [false; LANES]);
    for i in 0..LANES {
        let x = -u[i] * std::f64::consts::FRAC_1_SQRT_2;
        let z = x * x;
        let c = x * (horner(z, &ERF_SMALL_P) / horner(z, &ERF_SMALL_Q));
        let e = if x < 0.25 {
            1.0 - (x + c)
        } else {
            0.5 - (x - 0.5 + c)
        };
        phi[i] = 0.5 * e;
        ok[i] = x.abs() < 0.84375;
    }
    (phi, ok)
}

/// `sign(z)` as the `sign` op (`±0` and NaN pass through), written as selects.
#[inline(always)]
fn sign_lane(z: f64) -> f64 {
    let s = if z > 0.0 { 1.0 } else { z };
    if z < 0.0 {
        -1.0
    } else {
        s
    }
}

/// [`signed`] written as selects (no unpredictable branch on the sign of the code): `g` for
/// `z > 0`, `−g` for `z < 0`, `+0` for `z = ±0`, NaN for NaN.
#[inline(always)]
fn signed_lane(z: f64, g: f64) -> f64 {
    let v = if z < 0.0 { -g } else { g };
    let v = if z == 0.0 { 0.0 } else { v };
    if z.is_nan() {
        z
    } else {
        v
    }
}

/// `gelu(u)` on eight lanes, bit-identical to `special::gelu`.
#[inline(always)]
fn gelu_lanes(u: &[f64; LANES]) -> [f64; LANES] {
    let (phi, ok) = cdf_small_lanes(u);
    let mut g = [0.0; LANES];
    for i in 0..LANES {
        g[i] = u[i] * phi[i];
    }
    if !ok.iter().all(|&o| o) {
        for i in (0..LANES).filter(|&i| !ok[i]) {
            g[i] = gelu(u[i]);
        }
    }
    g
}

/// `1/n!` for `n = 0..=12`: the Taylor polynomial of `exp` on `|r| ≤ ln2/2` (truncation error
/// below `(ln2/2)¹³/13! < 2e-16` relative).
const EXP_TAYLOR: [f64; 13] = {
    let mut c = [1.0; 13];
    let mut i = 1;
    while i < 13 {
        c[i] = c[i - 1] / i as f64;
        i += 1;
    }
    c
};

/// `1/√(2π)`.
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// `φ(u) = exp(−u²/2)/√(2π)` for the lanes of the fast range (`|u| < 1.2`, so
/// `w = −u²/2 ∈ (−0.72, 0]`), branch-free: `exp(w) = 2^k·exp(w − k·ln2)` with `k ∈ {−1, 0}` and
/// the Taylor polynomial. Within about 2 ulp of `special::normal_pdf` (which calls `f64::exp`);
/// it only feeds the saved derivative `gelu′`.
#[inline(always)]
fn pdf_small(u: f64) -> f64 {
    let w = -0.5 * u * u;
    let down = w < -0.5 * std::f64::consts::LN_2;
    let r = if down { w + std::f64::consts::LN_2 } else { w };
    let p = horner(r, &EXP_TAYLOR);
    let e = if down { 0.5 * p } else { p };
    e * FRAC_1_SQRT_2PI
}

/// `(gelu(u), gelu′(u))` on eight lanes (`gelu′ = Φ + u·φ`).
#[inline(always)]
fn gelu_grad_lanes(u: &[f64; LANES]) -> ([f64; LANES], [f64; LANES]) {
    let (phi, ok) = cdf_small_lanes(u);
    let (mut g, mut der) = ([0.0; LANES], [0.0; LANES]);
    for i in 0..LANES {
        g[i] = u[i] * phi[i];
        der[i] = phi[i] + u[i] * pdf_small(u[i]);
    }
    if !ok.iter().all(|&o| o) {
        for i in (0..LANES).filter(|&i| !ok[i]) {
            (g[i], der[i]) = (gelu(u[i]), gelu_derivative(u[i]));
        }
    }
    (g, der)
}

/// `a ← sign(a)·gelu(|a| − t)` in place (the `gelu_shrink` binary op, bit for bit).
#[inline(always)]
fn gelu_shrink_slice<T: Real>(a: &mut [T], t: T) {
    let tf = wide(t);
    let mut chunks = a.chunks_exact_mut(LANES);
    for c in &mut chunks {
        let mut u = [0.0; LANES];
        for i in 0..LANES {
            u[i] = wide(c[i]).abs() - tf;
        }
        let g = gelu_lanes(&u);
        for i in 0..LANES {
            c[i] = <T as Float>::from_f64(signed_lane(wide(c[i]), g[i]));
        }
    }
    for x in chunks.into_remainder() {
        *x = gelu_shrink(*x, t);
    }
}

/// [`gelu_shrink_slice`] that also stores `dz = sign(z)²·gelu′(u)` and `dt = sign(z)·gelu′(u)`.
#[inline(always)]
fn gelu_shrink_grad_slice<T: Real>(a: &mut [T], dz: &mut [T], dt: &mut [T], t: T) {
    let tf = wide(t);
    let n = a.len().min(dz.len()).min(dt.len());
    let full = n - n % LANES;
    for start in (0..full).step_by(LANES) {
        let c: &mut [T; LANES] = (&mut a[start..start + LANES])
            .try_into()
            .unwrap_or_else(|_| unreachable!());
        let cz: &mut [T; LANES] = (&mut dz[start..start + LANES])
            .try_into()
            .unwrap_or_else(|_| unreachable!());
        let ct: &mut [T; LANES] = (&mut dt[start..start + LANES])
            .try_into()
            .unwrap_or_else(|_| unreachable!());
        let mut u = [0.0; LANES];
        for i in 0..LANES {
            u[i] = wide(c[i]).abs() - tf;
        }
        let (g, der) = gelu_grad_lanes(&u);
        for i in 0..LANES {
            let zf = wide(c[i]);
            let s = <T as Float>::from_f64(sign_lane(zf));
            let der = <T as Float>::from_f64(der[i]);
            c[i] = <T as Float>::from_f64(signed_lane(zf, g[i]));
            cz[i] = der * (s * s);
            ct[i] = der * s;
        }
    }
    for i in full..n {
        (a[i], dz[i], dt[i]) = gelu_shrink_grad(a[i], t);
    }
}

// ---- forward -----------------------------------------------------------------------------------

struct FwdScratch<T> {
    g: Vec<T>,
    b: Vec<T>,
    ga: Vec<T>,
}

fn forward_typed<T: Real>(
    simd: bool,
    cfg: &UnrolledIsta,
    geo: &Geometry,
    inputs: [&CpuStorage; 4],
    save: bool,
) -> Result<IstaForward<CpuStorage>> {
    let [g, b, lam, l] = inputs.map(|s| typed::<T>(OP, s, T::DTYPE));
    let (g, b, lam, l) = (g?, b?, lam?, l?);
    let (m, n) = (geo.m, geo.n());
    let s_len = if save { geo.saved_len(cfg) } else { 0 };
    let mut out = vec![T::ZERO; geo.batch * n];
    let mut saved = vec![T::ZERO; geo.batch * s_len];
    if n > 0 {
        let items: Vec<_> = chunks(&mut out, n, geo.batch)
            .into_iter()
            .zip(chunks(&mut saved, s_len, geo.batch))
            .enumerate()
            .collect();
        drive(
            items,
            geo.schedule(cfg),
            || FwdScratch {
                g: vec![T::ZERO; m * m],
                b: vec![T::ZERO; n],
                ga: vec![T::ZERO; n],
            },
            |scratch, (e, (a, sv))| {
                let [og, ob, olam, ol] = geo.offsets.each_ref().map(|o| o[e]);
                gather(g, og, geo.g_strides, m, &mut scratch.g);
                gather(b, ob, geo.b_strides, geo.d, &mut scratch.b);
                forward_entry(simd, cfg, geo, scratch, lam[olam], l[ol], a, sv)
            },
        )?;
    }
    Ok(IstaForward {
        output: CpuStorage::from_vec(out),
        saved: save.then(|| CpuStorage::from_vec(saved)),
    })
}

/// The loop for one entry: `a` (the output slot) ends as the codes; `sv` is the entry's saved
/// state (empty when not saving). Runs the AVX2 build of [`forward_body`] when `simd` is set.
fn forward_entry<T: Real>(
    simd: bool,
    cfg: &UnrolledIsta,
    geo: &Geometry,
    s: &mut FwdScratch<T>,
    lam: T,
    l: T,
    a: &mut [T],
    sv: &mut [T],
) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is only set when the running CPU has AVX2 (`simd_available`).
        return unsafe { forward_avx2(cfg, geo, s, lam, l, a, sv) };
    }
    let _ = simd;
    forward_body(cfg, geo, s, lam, l, a, sv)
}

/// [`forward_body`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn forward_avx2<T: Real>(
    cfg: &UnrolledIsta,
    geo: &Geometry,
    s: &mut FwdScratch<T>,
    lam: T,
    l: T,
    a: &mut [T],
    sv: &mut [T],
) -> Result<()> {
    forward_body(cfg, geo, s, lam, l, a, sv)
}

#[inline(always)]
fn forward_body<T: Real>(
    cfg: &UnrolledIsta,
    geo: &Geometry,
    s: &mut FwdScratch<T>,
    lam: T,
    l: T,
    a: &mut [T],
    sv: &mut [T],
) -> Result<()> {
    let (m, d, n, steps) = (geo.m, geo.d, geo.n(), cfg.steps);
    let save = !sv.is_empty();
    let td = steps * d;
    let (a_prev, derivs) = sv.split_at_mut(if save { steps * n } else { 0 });
    let (dz, dt) = derivs.split_at_mut(derivs.len() / 2);
    let t = lam / l;
    let kind = cfg.shrink;
    let mut block = 0;

    let deriv = save && kind != Shrink::Identity;
    match cfg.init {
        IstaInit::Zero => a.fill(T::ZERO),
        IstaInit::Shrink => {
            a.copy_from_slice(&s.b);
            if deriv {
                shrink_grad_in_place(kind, a, &mut dz[..n], &mut dt[..n], lam);
                block = 1;
            } else {
                shrink_in_place(kind, a, lam);
            }
        }
    }

    for k in 0..steps {
        T::GEMM(
            DEFAULT_KERNEL,
            m,
            m,
            d,
            &s.g,
            m,
            1,
            a,
            d,
            1,
            &mut s.ga,
            d,
            1,
        )?;
        if save {
            for (r, row) in a.chunks_exact(d).enumerate() {
                a_prev[r * td + k * d..r * td + (k + 1) * d].copy_from_slice(row);
            }
        }
        pre_shrink(a, &s.ga, &s.b, l);
        if deriv {
            let (dzb, dtb) = (&mut dz[block * n..][..n], &mut dt[block * n..][..n]);
            shrink_grad_in_place(kind, a, dzb, dtb, t);
            block += 1;
        } else {
            shrink_in_place(kind, a, t);
        }
    }
    Ok(())
}

// ---- backward ----------------------------------------------------------------------------------

struct BwdScratch<T> {
    /// `Gᵀ`, contiguous.
    gt: Vec<T>,
    b: Vec<T>,
    /// The gradient reaching the codes of the current step.
    ga: Vec<T>,
    /// `Gᵀ·gZ` of the current step.
    h: Vec<T>,
    /// `gZ_k` for every step, interleaved as an `m × (T·d)` matrix.
    gz: Vec<T>,
}

type BwdItem<'a, T> = (usize, ((&'a mut [T], &'a mut [T]), (&'a mut T, &'a mut T)));

fn backward_typed<T: Real>(
    simd: bool,
    cfg: &UnrolledIsta,
    geo: &Geometry,
    inputs: [&CpuStorage; 4],
    saved: &CpuStorage,
    (grad, grad_layout): (&CpuStorage, &Layout),
) -> Result<IstaGrads<CpuStorage>> {
    let [g, b, lam, l] = inputs.map(|s| typed::<T>(OP_BACKWARD, s, T::DTYPE));
    let (g, b, lam, l) = (g?, b?, lam?, l?);
    let grad = typed::<T>(OP_BACKWARD, grad, T::DTYPE)?;
    let saved = typed::<T>(OP_BACKWARD, saved, T::DTYPE)?;
    let (m, d, n, batch) = (geo.m, geo.d, geo.n(), geo.batch);
    let s_len = geo.saved_len(cfg);
    if saved.len() != batch * s_len {
        return Err(Error::Backend {
            backend: "cpu",
            msg: format!(
                "{OP_BACKWARD}: saved state has {} elements, expected {} for this problem",
                saved.len(),
                batch * s_len
            ),
        });
    }
    let r = grad_layout.rank();
    let grad_off = offsets(
        &grad_layout.dims()[..r - 2],
        &grad_layout.strides()[..r - 2],
        grad_layout.offset(),
    );
    let grad_strides = (grad_layout.strides()[r - 2], grad_layout.strides()[r - 1]);

    let mut gg = vec![T::ZERO; batch * m * m];
    let mut gb = vec![T::ZERO; batch * n];
    let mut glam = vec![T::ZERO; batch];
    let mut gl = vec![T::ZERO; batch];
    if n > 0 {
        let items: Vec<BwdItem<T>> = chunks(&mut gg, m * m, batch)
            .into_iter()
            .zip(chunks(&mut gb, n, batch))
            .zip(glam.iter_mut().zip(gl.iter_mut()))
            .enumerate()
            .collect();
        drive(
            items,
            geo.schedule(cfg),
            || BwdScratch {
                gt: vec![T::ZERO; m * m],
                b: vec![T::ZERO; n],
                ga: vec![T::ZERO; n],
                h: vec![T::ZERO; n],
                gz: vec![T::ZERO; cfg.steps * n],
            },
            |scratch, (e, ((gg, gb), (glam, gl)))| {
                let [og, ob, olam, ol] = geo.offsets.each_ref().map(|o| o[e]);
                let (rs, cs) = geo.g_strides;
                gather(g, og, (cs, rs), m, &mut scratch.gt);
                gather(b, ob, geo.b_strides, d, &mut scratch.b);
                gather(grad, grad_off[e], grad_strides, d, &mut scratch.ga);
                let sv = &saved[e * s_len..(e + 1) * s_len];
                let (lam, l) = (lam[olam], l[ol]);
                (*glam, *gl) = backward_entry(simd, cfg, geo, scratch, lam, l, sv, gg, gb)?;
                Ok(())
            },
        )?;
    }
    Ok(IstaGrads {
        g: CpuStorage::from_vec(gg),
        b: CpuStorage::from_vec(gb),
        lam: CpuStorage::from_vec(glam),
        l: CpuStorage::from_vec(gl),
    })
}

/// The reverse sweep for one entry (`s.ga` holds the output gradient). Writes `∂G` and `∂b` and
/// returns `(∂λ, ∂L)`. Runs the AVX2 build of [`backward_body`] when `simd` is set.
fn backward_entry<T: Real>(
    simd: bool,
    cfg: &UnrolledIsta,
    geo: &Geometry,
    s: &mut BwdScratch<T>,
    lam: T,
    l: T,
    sv: &[T],
    gg: &mut [T],
    gb: &mut [T],
) -> Result<(T, T)> {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is only set when the running CPU has AVX2 (`simd_available`).
        return unsafe { backward_avx2(cfg, geo, s, lam, l, sv, gg, gb) };
    }
    let _ = simd;
    backward_body(cfg, geo, s, lam, l, sv, gg, gb)
}

/// [`backward_body`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn backward_avx2<T: Real>(
    cfg: &UnrolledIsta,
    geo: &Geometry,
    s: &mut BwdScratch<T>,
    lam: T,
    l: T,
    sv: &[T],
    gg: &mut [T],
    gb: &mut [T],
) -> Result<(T, T)> {
    backward_body(cfg, geo, s, lam, l, sv, gg, gb)
}

#[inline(always)]
fn backward_body<T: Real>(
    cfg: &UnrolledIsta,
    geo: &Geometry,
    s: &mut BwdScratch<T>,
    lam: T,
    l: T,
    sv: &[T],
    gg: &mut [T],
    gb: &mut [T],
) -> Result<(T, T)> {
    let (m, d, n, steps) = (geo.m, geo.d, geo.n(), cfg.steps);
    let td = steps * d;
    let (a_prev, derivs) = sv.split_at(steps * n);
    let (dz, dt) = derivs.split_at(derivs.len() / 2);
    let kind = cfg.shrink;
    let first = usize::from(kind != Shrink::Identity && cfg.init == IstaInit::Shrink);
    // Σ gA⊙dt over the steps (∂t = −that), Σ gZ⊙R over the steps, Σ gA0⊙dt0.
    let (mut st, mut rdot, mut s0) = (0.0f64, 0.0f64, 0.0f64);
    gb.fill(T::ZERO);

    for k in (0..steps).rev() {
        // Through the shrink of step k+1: gZ = gA⊙dz (gA itself for the identity).
        let blk = (first + k) * n;
        for r in 0..m {
            let gz_row = &mut s.gz[r * td + k * d..][..d];
            let ga_row = &s.ga[r * d..][..d];
            if kind == Shrink::Identity {
                gz_row.copy_from_slice(ga_row);
            } else {
                let (dz_row, dt_row) = (&dz[blk + r * d..][..d], &dt[blk + r * d..][..d]);
                for ((z, &g), &dzv) in gz_row.iter_mut().zip(ga_row).zip(dz_row) {
                    *z = g * dzv;
                }
                st += dot_wide(ga_row, dt_row);
            }
        }
        // H = Gᵀ·gZ.
        T::GEMM(
            DEFAULT_KERNEL,
            m,
            m,
            d,
            &s.gt,
            m,
            1,
            &s.gz[k * d..],
            td,
            1,
            &mut s.h,
            d,
            1,
        )?;
        // Through Z = A − (G·A − b)/L.
        for r in 0..m {
            let p = r * td + k * d;
            let (gz_row, ap_row) = (&s.gz[p..p + d], &a_prev[p..p + d]);
            let q = r * d;
            let (h_row, b_row) = (&s.h[q..q + d], &s.b[q..q + d]);
            let (ga_row, gb_row) = (&mut s.ga[q..q + d], &mut gb[q..q + d]);
            for j in 0..d {
                let (gz, h) = (gz_row[j], h_row[j]);
                ga_row[j] = gz - h / l;
                gb_row[j] = gb_row[j] + gz / l;
            }
            rdot += dot_wide(h_row, ap_row) - dot_wide(gz_row, b_row);
        }
    }

    // Through the initial guess A0 = shrink(b, λ).
    if cfg.init == IstaInit::Shrink {
        if kind == Shrink::Identity {
            for (x, &g) in gb.iter_mut().zip(&s.ga) {
                *x = *x + g;
            }
        } else {
            for ((x, &g), &dzv) in gb.iter_mut().zip(&s.ga).zip(&dz[..n]) {
                *x = *x + g * dzv;
            }
            s0 = dot_wide(&s.ga, &dt[..n]);
        }
    }

    // ∂G = −(1/L)·[gZ_1 … gZ_T]·[A_0 … A_{T−1}]ᵀ.
    T::GEMM(
        DEFAULT_KERNEL,
        m,
        td,
        m,
        &s.gz,
        td,
        1,
        a_prev,
        1,
        td,
        gg,
        m,
        1,
    )?;
    for x in gg.iter_mut() {
        *x = -(*x / l);
    }

    let (lam, l) = (wide(lam), wide(l));
    let gt = -st;
    let glam = gt / l - s0;
    let gl = rdot / (l * l) - gt * lam / (l * l);
    Ok((<T as Float>::from_f64(glam), <T as Float>::from_f64(gl)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vars_core::Shape;

    #[test]
    fn shrink_grads_match_definitions() {
        for &(z, t) in &[
            (0.7f64, 0.3),
            (-0.7, 0.3),
            (0.1, 0.3),
            (-0.1, 0.3),
            (0.0, 0.3),
        ] {
            let (v, dz, dt) = gelu_shrink_grad(z, t);
            assert_eq!(v, gelu_shrink(z, t));
            let s = sign(z);
            assert_eq!(dz, gelu_derivative(z.abs() - t) * s * s);
            assert_eq!(dt, gelu_derivative(z.abs() - t) * s);
            let (v, dz, dt) = soft_grad(z, t);
            assert_eq!(v, soft(z, t));
            let step = f64::from(u8::from(z.abs() > t));
            assert_eq!((dz, dt), (step * s * s, step * s));
        }
    }

    /// The eight-lane GELU shrink is bit-identical to the scalar one (itself the `gelu_shrink`
    /// binary op) in and out of the fast range, including ±0, ±∞ and NaN.
    #[test]
    fn lanes_match_scalar_bitwise() {
        let mut z: Vec<f64> = (0..4000)
            .map(|i| 6.0 * vars_core::rng::normal(17, i) * if i % 3 == 0 { 0.1 } else { 1.0 })
            .collect();
        z.extend([
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            1e-300,
            -1e-300,
        ]);
        z.extend([
            0.84375 * std::f64::consts::SQRT_2,
            0.25 * std::f64::consts::SQRT_2,
        ]);
        for t in [0.3, 0.009, 0.0, -0.2] {
            let mut a = z.clone();
            gelu_shrink_slice(&mut a, t);
            let (mut b, mut dz, mut dt) = (z.clone(), vec![0.0; z.len()], vec![0.0; z.len()]);
            gelu_shrink_grad_slice(&mut b, &mut dz, &mut dt, t);
            for (i, &x) in z.iter().enumerate() {
                let want = gelu_shrink(x, t);
                assert_eq!(a[i].to_bits(), want.to_bits(), "z = {x}, t = {t}");
                assert_eq!(b[i].to_bits(), want.to_bits(), "z = {x}, t = {t}");
                let (_, wz, wt) = gelu_shrink_grad(x, t);
                let close =
                    |p: f64, q: f64| p == q || (p - q).abs() <= 1e-15 || p.is_nan() && q.is_nan();
                assert!(close(dz[i], wz) && close(dt[i], wt), "z = {x}, t = {t}");
            }
            let mut a32: Vec<f32> = z.iter().map(|&x| x as f32).collect();
            let want32: Vec<f32> = a32.iter().map(|&x| gelu_shrink(x, t as f32)).collect();
            gelu_shrink_slice(&mut a32, t as f32);
            for (g, w) in a32.iter().zip(&want32) {
                assert_eq!(g.to_bits(), w.to_bits());
            }
        }
    }

    #[test]
    fn pdf_small_is_within_two_ulp() {
        for i in 0..20000 {
            let u = -1.2 + 2.4 * vars_core::rng::uniform(5, i);
            let (got, want) = (pdf_small(u), normal_pdf(u));
            assert!(
                (got - want).abs() <= 4.5e-16 * want,
                "u = {u}: {got} vs {want}"
            );
        }
    }

    /// The AVX2 build of the entry loops gives the same bits as the baseline build.
    #[test]
    fn simd_build_is_bit_identical() {
        if !simd_available() {
            eprintln!("skipping: no AVX2 on this CPU");
            return;
        }
        let (batch, m, d) = (3, 12, 7);
        let v = |n: usize, seed: u64, scale: f64| -> Vec<f64> {
            (0..n)
                .map(|i| scale * vars_core::rng::normal(seed, i as u64))
                .collect()
        };
        let mut g = v(batch * m * m, 1, 0.1);
        for e in 0..batch {
            for i in 0..m {
                g[e * m * m + i * m + i] += 1.0;
            }
        }
        let st = |x: Vec<f64>| CpuStorage::from_vec_f64(x);
        let (g, b) = (st(g), st(v(batch * m * d, 2, 1.0)));
        let (lam, l) = (st(vec![0.3; batch]), st(vec![3.0, 4.0, 5.0]));
        let grad = st(v(batch * m * d, 3, 1.0));
        let lg = Layout::contiguous([batch, m, m]);
        let lb = Layout::contiguous([batch, m, d]);
        let ls = Layout::contiguous([batch, 1, 1]);
        for shrink in [Shrink::Gelu, Shrink::SoftThreshold, Shrink::Identity] {
            for init in [IstaInit::Shrink, IstaInit::Zero] {
                let cfg = UnrolledIsta {
                    steps: 4,
                    shrink,
                    init,
                };
                let geo =
                    Geometry::new(OP, [(&g, &lg), (&b, &lb), (&lam, &ls), (&l, &ls)]).unwrap();
                let run = |simd: bool| {
                    let f =
                        forward_typed::<f64>(simd, &cfg, &geo, [&g, &b, &lam, &l], true).unwrap();
                    let saved = f.saved.unwrap();
                    let gr = backward_typed::<f64>(
                        simd,
                        &cfg,
                        &geo,
                        [&g, &b, &lam, &l],
                        &saved,
                        (&grad, &lb),
                    )
                    .unwrap();
                    [f.output, saved, gr.g, gr.b, gr.lam, gr.l].map(|s| {
                        s.as_f64()
                            .unwrap()
                            .iter()
                            .map(|x| x.to_bits())
                            .collect::<Vec<_>>()
                    })
                };
                assert_eq!(run(true), run(false), "{cfg:?}");
            }
        }
    }

    #[test]
    fn degenerate_geometry_errors() {
        let s = CpuStorage::from_vec_f64(vec![0.0; 4]);
        let g = Layout::contiguous([2, 2]);
        let b = Layout::contiguous([2, 2]);
        let one = Layout::contiguous([1, 1]);
        let bad = Layout::contiguous([4]);
        assert!(Geometry::new(OP, [(&s, &g), (&s, &b), (&s, &one), (&s, &one)]).is_ok());
        assert!(Geometry::new(OP, [(&s, &bad), (&s, &b), (&s, &one), (&s, &one)]).is_err());
        assert!(Geometry::new(OP, [(&s, &g), (&s, &b), (&s, &g), (&s, &one)]).is_err());
        let far = Layout::from_parts(Shape::new(vec![2, 2]), vec![2, 1], 3);
        assert!(Geometry::new(OP, [(&s, &far), (&s, &b), (&s, &one), (&s, &one)]).is_err());
    }
}
