//! Host-side references and assertions shared by the suite (and reusable by later crates' tests).
//!
//! References are computed in `f64` from the exact values the backend received (inputs of an f32
//! test are rounded to f32 first, see [`round_to`]), so a comparison measures only the backend's
//! own rounding.

use crate::{rng, Backend, DType, HostData, Result, Shape, Tensor};

/// The floating-point dtypes every float op is tested in.
pub const FLOAT_DTYPES: [DType; 2] = [DType::F32, DType::F64];
/// Every dtype.
pub const ALL_DTYPES: [DType; 3] = [DType::F32, DType::F64, DType::I64];

/// `(rtol, atol)` for an elementwise result computed in `dtype`, checked as
/// `|got − want| ≤ atol + rtol·|want|` against an f64 reference on the same inputs.
///
/// - f64: `rtol = 1e-12`. A libm-quality function is within a few ulp (1 ulp = 2.2e-16), so
///   1e-12 leaves four orders of magnitude for implementation differences (e.g. an erf
///   polynomial, `exp` evaluated as `exp2`) while still catching any formula error.
/// - f32: `rtol = 1e-5` ≈ 80 ulp of f32 (1 ulp = 6e-8): a correctly rounded f32 result is
///   within 0.5 ulp; kernels that evaluate in f32 (polynomial erf, `1/(1+e^−x)`) within a few
///   tens of ulp.
/// - `atol` (1e-12 resp. 1e-6): near a zero of the function (tanh near 0, gelu(−5) ≈ −1.4e-6)
///   relative error is meaningless; the absolute error there is bounded by the rounding of the
///   O(1) intermediate values, i.e. a few ulp of 1.
pub fn tolerance(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F32 => (1e-5, 1e-6),
        _ => (1e-12, 1e-12),
    }
}

/// A tensor with the given values, converted on the host to `dtype` (I64 rounds toward zero).
pub fn tensor<B: Backend>(
    data: &[f64],
    shape: impl Into<Shape>,
    dtype: DType,
    dev: &B::Device,
) -> Result<Tensor<B>> {
    let host = match dtype {
        DType::F32 => HostData::F32(data.iter().map(|&x| x as f32).collect()),
        DType::I64 => HostData::I64(data.iter().map(|&x| x as i64).collect()),
        _ => HostData::F64(data.to_vec()),
    };
    Tensor::from_host(host, shape, dev)
}

/// The values exactly as a tensor of `dtype` stores them.
pub fn round_to(dtype: DType, data: &[f64]) -> Vec<f64> {
    match dtype {
        DType::F32 => data.iter().map(|&x| x as f32 as f64).collect(),
        DType::I64 => data.iter().map(|&x| x as i64 as f64).collect(),
        _ => data.to_vec(),
    }
}

/// `n` deterministic uniform values in `[lo, hi)` (from [`crate::rng::uniform`]).
pub fn uniform_vec(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    (0..n as u64)
        .map(|i| lo + (hi - lo) * rng::uniform(seed, i))
        .collect()
}

/// `n` deterministic values with `lo ≤ |x| < hi` and random signs: away from zero, for ops with a
/// kink or pole at 0 (abs, relu, sign, recip).
pub fn away_from_zero_vec(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    (0..n as u64)
        .map(|i| {
            let m = lo + (hi - lo) * rng::uniform(seed, 2 * i);
            if rng::uniform(seed, 2 * i + 1) < 0.5 {
                -m
            } else {
                m
            }
        })
        .collect()
}

/// A random tensor with values in `[lo, hi)` and the values it holds (rounded to `dtype`).
pub fn random_tensor<B: Backend>(
    dims: &[usize],
    dtype: DType,
    seed: u64,
    lo: f64,
    hi: f64,
    dev: &B::Device,
) -> Result<(Tensor<B>, Vec<f64>)> {
    let n = dims.iter().product();
    let data = round_to(dtype, &uniform_vec(n, seed, lo, hi));
    Ok((tensor(&data, dims.to_vec(), dtype, dev)?, data))
}

/// An F64 tensor whose element at flat index `i` equals `i`: views of it can be checked by
/// index arithmetic alone.
pub fn iota<B: Backend>(dims: &[usize], dev: &B::Device) -> Result<Tensor<B>> {
    let n: usize = dims.iter().product();
    Tensor::from_vec(
        (0..n).map(|i| i as f64).collect::<Vec<_>>(),
        dims.to_vec(),
        dev,
    )
}

/// Row-major multi-index of flat index `flat`.
pub fn unravel(mut flat: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        if dims[d] > 0 {
            idx[d] = flat % dims[d];
            flat /= dims[d];
        }
    }
    idx
}

/// Row-major flat index of a multi-index.
pub fn ravel(idx: &[usize], dims: &[usize]) -> usize {
    idx.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// Flat index into a source of shape `src_dims` that broadcasts (trailing alignment, size-1 dims
/// stretch) to the output element `out_idx`.
pub fn broadcast_source_index(out_idx: &[usize], src_dims: &[usize]) -> usize {
    let extra = out_idx.len() - src_dims.len();
    let idx: Vec<usize> = src_dims
        .iter()
        .enumerate()
        .map(|(i, &d)| if d == 1 { 0 } else { out_idx[extra + i] })
        .collect();
    ravel(&idx, src_dims)
}

/// The dims of a permutation (output dim `i` is input dim `perm[i]`).
pub fn permuted_dims(dims: &[usize], perm: &[usize]) -> Vec<usize> {
    perm.iter().map(|&p| dims[p]).collect()
}

/// Row-major values of `data` (shape `dims`) permuted by `perm`.
pub fn reference_permute(data: &[f64], dims: &[usize], perm: &[usize]) -> Vec<f64> {
    let out_dims = permuted_dims(dims, perm);
    (0..data.len())
        .map(|f| {
            let o = unravel(f, &out_dims);
            let mut src = vec![0; dims.len()];
            for (k, &p) in perm.iter().enumerate() {
                src[p] = o[k];
            }
            data[ravel(&src, dims)]
        })
        .collect()
}

/// Row-major values of `data` (shape `dims`) narrowed to `start..start+len` of `dim`.
pub fn reference_narrow(
    data: &[f64],
    dims: &[usize],
    dim: usize,
    start: usize,
    len: usize,
) -> Vec<f64> {
    let mut out_dims = dims.to_vec();
    out_dims[dim] = len;
    let n: usize = out_dims.iter().product();
    (0..n)
        .map(|f| {
            let mut idx = unravel(f, &out_dims);
            idx[dim] += start;
            data[ravel(&idx, dims)]
        })
        .collect()
}

/// Row-major values of `data` (shape `src_dims`) broadcast to `dims`.
pub fn reference_broadcast(data: &[f64], src_dims: &[usize], dims: &[usize]) -> Vec<f64> {
    let n: usize = dims.iter().product();
    (0..n)
        .map(|f| data[broadcast_source_index(&unravel(f, dims), src_dims)])
        .collect()
}

/// Reduces `axes` of `data` (shape `dims`) with `fold(acc, x)` from `init`, in row-major order of
/// the reduced elements. Returns the keepdim dims and the values.
pub fn reference_reduce(
    data: &[f64],
    dims: &[usize],
    axes: &[usize],
    init: f64,
    fold: impl Fn(f64, f64) -> f64,
) -> (Vec<usize>, Vec<f64>) {
    let mut out_dims = dims.to_vec();
    for &a in axes {
        out_dims[a] = 1;
    }
    let n: usize = out_dims.iter().product();
    let mut out = vec![init; n];
    for (f, &x) in data.iter().enumerate() {
        let mut idx = unravel(f, dims);
        for &a in axes {
            idx[a] = 0;
        }
        let o = ravel(&idx, &out_dims);
        out[o] = fold(out[o], x);
    }
    (out_dims, out)
}

/// Batched matmul `(…, m, k) × (…, k, n)` with broadcast batch dims, by the triple loop in f64.
/// Returns `(dims, values, bound)` where `bound[i] = Σ_k |a_ik|·|b_kj|`, the natural scale of the
/// rounding error of element `i` (floating-point dot products err by at most `k·u·bound`).
pub fn reference_matmul(
    a: &[f64],
    a_dims: &[usize],
    b: &[f64],
    b_dims: &[usize],
) -> (Vec<usize>, Vec<f64>, Vec<f64>) {
    let (ra, rb) = (a_dims.len(), b_dims.len());
    let (m, k) = (a_dims[ra - 2], a_dims[ra - 1]);
    let n = b_dims[rb - 1];
    assert_eq!(b_dims[rb - 2], k, "reference_matmul: inner dims differ");
    let (a_batch, b_batch) = (&a_dims[..ra - 2], &b_dims[..rb - 2]);
    let batch = Shape::new(a_batch)
        .broadcast_with("reference_matmul", &Shape::new(b_batch))
        .expect("reference_matmul: batch dims do not broadcast");
    let nb = batch.elem_count();
    let mut out = vec![0.0; nb * m * n];
    let mut bound = vec![0.0; nb * m * n];
    for bi in 0..nb {
        let bidx = unravel(bi, batch.dims());
        let ao = broadcast_source_index(&bidx, a_batch) * m * k;
        let bo = broadcast_source_index(&bidx, b_batch) * k * n;
        for i in 0..m {
            for j in 0..n {
                let (mut s, mut s_abs) = (0.0, 0.0);
                for l in 0..k {
                    let p = a[ao + i * k + l] * b[bo + l * n + j];
                    s += p;
                    s_abs += p.abs();
                }
                out[(bi * m + i) * n + j] = s;
                bound[(bi * m + i) * n + j] = s_abs;
            }
        }
    }
    let mut dims = batch.dims().to_vec();
    dims.extend([m, n]);
    (dims, out, bound)
}

/// The error function to about 1e-15 (absolute), by the everywhere-convergent series
/// `erf(x) = 2/√π · e^{−x²} · Σₙ 2ⁿ x^{2n+1} / (1·3·…·(2n+1))`, whose terms are all positive (no
/// cancellation); `|x| > 6` returns ±1 (erfc(6) = 2e-17, below half an ulp of 1). Rust's std has
/// no erf, so the suite carries its own reference.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let ax = x.abs();
    if ax > 6.0 {
        return x.signum();
    }
    let x2 = ax * ax;
    let (mut term, mut sum, mut n) = (ax, ax, 0.0);
    while term > sum * 1e-18 {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
    }
    let v = std::f64::consts::FRAC_2_SQRT_PI * (-x2).exp() * sum;
    if x < 0.0 {
        -v
    } else {
        v
    }
}

/// Exact GELU `x·Φ(x) = x/2·(1 + erf(x/√2))`.
pub fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))
}

/// `d/dx GELU(x) = Φ(x) + x·φ(x)`.
pub fn gelu_derivative(x: f64) -> f64 {
    let cdf = 0.5 * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2));
    let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    cdf + x * pdf
}

/// Whether `got` matches `want` as `|got − want| ≤ atol + rtol·|want|` (NaNs match NaNs,
/// infinities match equal infinities).
pub fn close(got: f64, want: f64, rtol: f64, atol: f64) -> bool {
    if got.is_nan() || want.is_nan() {
        return got.is_nan() && want.is_nan();
    }
    if got.is_infinite() || want.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= atol + rtol * want.abs()
}

/// Panics naming `what`, the number of mismatches and the worst element unless every element is
/// [`close`].
#[track_caller]
pub fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} values, expected {}",
        got.len(),
        want.len()
    );
    let mut worst: Option<(usize, f64)> = None;
    let mut bad = 0;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if !close(g, w, rtol, atol) {
            bad += 1;
            let excess = if g.is_finite() && w.is_finite() {
                (g - w).abs() / (atol + rtol * w.abs())
            } else {
                f64::INFINITY
            };
            if worst.is_none_or(|(_, e)| excess > e) {
                worst = Some((i, excess));
            }
        }
    }
    if let Some((i, _)) = worst {
        panic!(
            "{what}: {bad} of {} elements differ beyond rtol {rtol:e} + atol {atol:e}; worst at flat index {i}: got {:e}, expected {:e} (abs err {:e})",
            got.len(),
            got[i],
            want[i],
            (got[i] - want[i]).abs()
        );
    }
}

/// Checks `t`'s dims, then its values (converted to f64) with [`assert_close`].
#[track_caller]
pub fn assert_tensor<B: Backend>(
    what: &str,
    t: &Tensor<B>,
    dims: &[usize],
    want: &[f64],
    rtol: f64,
    atol: f64,
) -> Result<()> {
    assert_eq!(t.dims(), dims, "{what}: wrong shape");
    assert_close(what, &t.to_vec_f64()?, want, rtol, atol);
    Ok(())
}

/// Checks `t`'s dims and that its values equal `want` exactly.
#[track_caller]
pub fn assert_tensor_eq<B: Backend>(
    what: &str,
    t: &Tensor<B>,
    dims: &[usize],
    want: &[f64],
) -> Result<()> {
    assert_tensor(what, t, dims, want, 0.0, 0.0)
}

/// Panics unless the two slices are bitwise identical.
#[track_caller]
/// Asserts that every pair is within `max_ulps` units in the last place (same sign, finite).
pub fn assert_ulps_close(what: &str, got: &[f64], want: &[f64], max_ulps: u64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ulps = if g.to_bits() == w.to_bits() {
            0
        } else if g.is_finite() && w.is_finite() && (g.is_sign_negative() == w.is_sign_negative()) {
            g.to_bits().abs_diff(w.to_bits())
        } else {
            u64::MAX
        };
        assert!(
            ulps <= max_ulps,
            "{what}: element {i} differs by {ulps} ulp (> {max_ulps}): {g:e} vs {w:e}"
        );
    }
}

pub fn assert_bits_eq(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    if let Some(i) = got
        .iter()
        .zip(want)
        .position(|(g, w)| g.to_bits() != w.to_bits())
    {
        panic!(
            "{what}: first bit difference at {i}: {:e} vs {:e}",
            got[i], want[i]
        );
    }
}

/// Whether two tensors are views of the same storage buffer (no copy was made).
pub fn shares_storage<B: Backend>(a: &Tensor<B>, b: &Tensor<B>) -> bool {
    std::ptr::eq(a.storage(), b.storage())
}

/// The error of `r`; panics with `what` when it is `Ok` (works for `T` without `Debug`).
#[track_caller]
pub fn expect_err<T>(r: Result<T>, what: &str) -> crate::Error {
    match r {
        Ok(_) => panic!("{what}: expected an error, got Ok"),
        Err(e) => e,
    }
}
