//! NN ops of [`crate::nn`] (spec §0, §4): every forward pass against a direct f64 reference
//! written here (naive convolution and pooling loops, naive norms, log-sum-exp), in f32 and f64,
//! on several shapes and on contiguous, permuted and narrowed inputs; every backward pass by
//! finite differences ([`check_gradients`], f64, `eps = 1e-6`, `tol = 1e-6`).
//!
//! Tolerances (stated once, used throughout):
//! - Dot-product ops (conv2d, linear): `|got − want| ≤ (k + 2)·u·Σ|products|`, with `k` the
//!   reduction length, `u` the unit roundoff of the dtype (2⁻²⁴ or 2⁻⁵³) and `Σ|products|` (plus
//!   `|bias|`) computed by the reference. This is the classical worst-case bound `γ_k` for any
//!   summation order (blocked, FMA or not), so it never fails on rounding and still catches any
//!   formula error, which is O(Σ|products|).
//! - Max pooling: exact (a max only selects).
//! - Composite ops (softmax, norms, losses): `RTOL_COMPOSITE`/`ATOL_COMPOSITE` per dtype (1e-5 in
//!   f32, ≈ 170 ulp, for chains of a few ops over O(1) values; 1e-12 in f64).
//! - Elementwise shrinks: [`tolerance`].

use super::check_gradients;
use super::util::*;
use crate::nn::{self, BatchNormStats, Shrink, Target};
use crate::{Autodiff, Backend, DType, Result, Tensor, Window2d};

type T<B> = Tensor<Autodiff<B>>;

const EPS: f64 = 1e-6;
const TOL: f64 = 1e-6;
/// LayerNorm eps of the reference (spec §0).
const LN_EPS: f64 = 1e-6;
/// BatchNorm eps and momentum of the reference (spec §0).
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

/// Runs [`check_gradients`] and panics with `name` on a mismatch.
#[track_caller]
pub(super) fn gc<B: Backend>(
    name: &str,
    f: impl Fn(&[T<B>]) -> Result<T<B>>,
    inputs: &[Tensor<B>],
) {
    if let Err(e) = check_gradients(f, inputs, EPS, TOL) {
        panic!("gradient check `{name}` failed: {e}");
    }
}

/// `Σ w ⊙ y` with fixed pseudo-random weights in [−1, 1): a scalar whose gradient w.r.t. `y` is
/// non-uniform, so transposition or misplacement errors show.
pub(super) fn wsum<BB: Backend>(y: &Tensor<BB>, seed: u64) -> Result<Tensor<BB>> {
    let w = tensor::<BB>(
        &uniform_vec(y.elem_count(), 5000 + seed, -1.0, 1.0),
        y.dims().to_vec(),
        y.dtype(),
        y.device(),
    )?;
    y.mul(&w)?.sum_all()
}

/// An f64 input with values in `[lo, hi)`.
pub(super) fn input<B: Backend>(
    dims: &[usize],
    seed: u64,
    lo: f64,
    hi: f64,
    dev: &B::Device,
) -> Result<Tensor<B>> {
    Ok(random_tensor::<B>(dims, DType::F64, seed, lo, hi, dev)?.0)
}

/// The unit roundoff of a float dtype.
pub(super) fn unit_roundoff(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => f64::from(f32::EPSILON) / 2.0,
        _ => f64::EPSILON / 2.0,
    }
}

fn rtol_composite(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F32 => (1e-5, 1e-5),
        _ => (1e-12, 1e-12),
    }
}

/// The three layouts every forward check runs on.
pub(super) const LAYOUTS: [ViewKind; 3] =
    [ViewKind::Contiguous, ViewKind::Permuted, ViewKind::Narrowed];

#[derive(Debug, Clone, Copy)]
pub(super) enum ViewKind {
    Contiguous,
    /// Stored with the dims reversed, then permuted back: every stride differs from row-major.
    Permuted,
    /// A narrowed window (offset in dim 0 and in the last dim) of a larger NaN-filled buffer:
    /// any read outside the view poisons the result.
    Narrowed,
}

/// The reversal permutation of rank `r` (its own inverse).
pub(super) fn rev(r: usize) -> Vec<usize> {
    (0..r).rev().collect()
}

/// A tensor whose logical (row-major) values are `data` with shape `dims`, in `layout`.
pub(super) fn laid_out<B: Backend>(
    data: &[f64],
    dims: &[usize],
    dtype: DType,
    layout: ViewKind,
    dev: &B::Device,
) -> Result<Tensor<B>> {
    let r = dims.len();
    match layout {
        ViewKind::Contiguous => tensor::<B>(data, dims.to_vec(), dtype, dev),
        ViewKind::Permuted => {
            let p = rev(r);
            let stored = reference_permute(data, dims, &p);
            tensor::<B>(&stored, permuted_dims(dims, &p), dtype, dev)?.permute(&p)
        }
        ViewKind::Narrowed => {
            let mut big = dims.to_vec();
            big[0] += 1;
            big[r - 1] += 3;
            let mut buf = vec![f64::NAN; big.iter().product()];
            for (f, &v) in data.iter().enumerate() {
                let mut idx = unravel(f, dims);
                idx[0] += 1;
                idx[r - 1] += 2;
                buf[ravel(&idx, &big)] = v;
            }
            let t = tensor::<B>(&buf, big, dtype, dev)?;
            if r == 1 {
                t.narrow(0, 3, dims[0])
            } else {
                t.narrow(0, 1, dims[0])?.narrow(r - 1, 2, dims[r - 1])
            }
        }
    }
}

/// Panics unless `|got_i − want_i| ≤ bound_i` for every element.
#[track_caller]
fn assert_bounded(what: &str, got: &[f64], want: &[f64], bound: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: wrong number of values");
    let mut worst: Option<(usize, f64)> = None;
    let mut bad = 0;
    for i in 0..got.len() {
        let err = (got[i] - want[i]).abs();
        let ok = err <= bound[i];
        if !ok {
            bad += 1;
            let excess = if err.is_finite() {
                err / bound[i].max(f64::MIN_POSITIVE)
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
            "{what}: {bad} of {} elements exceed their error bound; worst at flat index {i}: got {:e}, expected {:e}, bound {:e}",
            got.len(),
            got[i],
            want[i],
            bound[i]
        );
    }
}

/// Checks a dot-product result against `(want, Σ|products|)` with the `(k + 2)·u` bound.
#[track_caller]
fn assert_dot<B: Backend>(
    what: &str,
    t: &Tensor<B>,
    dims: &[usize],
    want: &[f64],
    abs_sum: &[f64],
    k: usize,
) -> Result<()> {
    assert_eq!(t.dims(), dims, "{what}: wrong shape");
    let scale = (k + 2) as f64 * unit_roundoff(t.dtype());
    let bound: Vec<f64> = abs_sum.iter().map(|s| scale * s + 1e-300).collect();
    assert_bounded(what, &t.to_vec_f64()?, want, &bound);
    Ok(())
}

#[track_caller]
fn assert_err_names<R>(r: Result<R>, op: &str, what: &str) {
    let e = expect_err(r, what);
    assert!(
        e.to_string().contains(op),
        "{what}: the error should name `{op}`: {e}"
    );
}

// ------------------------------------------------------------------------------------------------
// Linear

/// `y = x·Wᵀ + b` over the last dim: `(values, Σ|products| + |b|)`.
fn ref_linear(
    x: &[f64],
    x_dims: &[usize],
    w: &[f64],
    out: usize,
    b: Option<&[f64]>,
) -> (Vec<f64>, Vec<f64>) {
    let inn = *x_dims.last().unwrap();
    let rows = x.len() / inn;
    let (mut y, mut bound) = (vec![0.0; rows * out], vec![0.0; rows * out]);
    for r in 0..rows {
        for o in 0..out {
            let (mut s, mut sa) = b.map_or((0.0, 0.0), |b| (b[o], b[o].abs()));
            for i in 0..inn {
                let p = x[r * inn + i] * w[o * inn + i];
                s += p;
                sa += p.abs();
            }
            y[r * out + o] = s;
            bound[r * out + o] = sa;
        }
    }
    (y, bound)
}

/// `linear` on rank-1/2/3 inputs, with and without bias, on every layout of `x` and a transposed
/// weight view, against the triple loop; shape errors.
pub fn linear_forward<B: Backend>(dev: &B::Device) -> Result<()> {
    let cases: [(&[usize], usize, bool); 4] = [
        (&[7], 5, true),
        (&[4, 6], 3, true),
        (&[2, 5, 8], 7, false),
        (&[3, 4, 33], 9, true),
    ];
    for dtype in FLOAT_DTYPES {
        for (ci, &(x_dims, out, with_bias)) in cases.iter().enumerate() {
            let inn = *x_dims.last().unwrap();
            let n: usize = x_dims.iter().product();
            let xs = round_to(dtype, &uniform_vec(n, 10 + ci as u64, -2.0, 2.0));
            let ws = round_to(dtype, &uniform_vec(out * inn, 20 + ci as u64, -1.0, 1.0));
            let bs = round_to(dtype, &uniform_vec(out, 30 + ci as u64, -1.0, 1.0));
            // The weight as a transposed view of an (in, out) buffer.
            let w = tensor::<B>(
                &reference_permute(&ws, &[out, inn], &[1, 0]),
                [inn, out],
                dtype,
                dev,
            )?
            .t()?;
            let b = tensor::<B>(&bs, [out], dtype, dev)?;
            let (want, bound) = ref_linear(&xs, x_dims, &ws, out, with_bias.then_some(&bs[..]));
            let mut dims = x_dims.to_vec();
            *dims.last_mut().unwrap() = out;
            for layout in LAYOUTS {
                let x = laid_out::<B>(&xs, x_dims, dtype, layout, dev)?;
                let y = nn::linear(&x, &w, with_bias.then_some(&b))?;
                assert_dot(
                    &format!("linear {x_dims:?}→{out} {dtype} {layout:?}"),
                    &y,
                    &dims,
                    &want,
                    &bound,
                    inn,
                )?;
            }
        }
    }
    let x = Tensor::<B>::zeros([2, 3], DType::F32, dev)?;
    let w = Tensor::<B>::zeros([4, 5], DType::F32, dev)?;
    assert_err_names(nn::linear(&x, &w, None), "linear", "in-dim mismatch");
    let w = Tensor::<B>::zeros([4, 3], DType::F32, dev)?;
    let b = Tensor::<B>::zeros([3], DType::F32, dev)?;
    assert_err_names(nn::linear(&x, &w, Some(&b)), "linear", "bias shape");
    let w3 = Tensor::<B>::zeros([1, 4, 3], DType::F32, dev)?;
    assert_err_names(nn::linear(&x, &w3, None), "linear", "rank-3 weight");
    Ok(())
}

/// Gradients of `linear` w.r.t. input, weight and bias (rank 1, rank 3, a transposed input view).
pub fn linear_grad<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = input::<B>(&[2, 3, 4], 40, -2.0, 2.0, dev)?;
    let w = input::<B>(&[5, 4], 41, -1.0, 1.0, dev)?;
    let b = input::<B>(&[5], 42, -1.0, 1.0, dev)?;
    gc(
        "linear rank 3 with bias",
        |v| wsum(&nn::linear(&v[0], &v[1], Some(&v[2]))?, 1),
        &[x, w.clone(), b],
    );
    let x1 = input::<B>(&[4], 43, -2.0, 2.0, dev)?;
    gc(
        "linear rank 1 without bias",
        |v| wsum(&nn::linear(&v[0], &v[1], None)?, 2),
        &[x1, w.clone()],
    );
    // x stored (in, rows) and transposed: a non-contiguous input.
    let xt = input::<B>(&[4, 3], 44, -2.0, 2.0, dev)?;
    gc(
        "linear on a transposed input",
        |v| wsum(&nn::linear(&v[0].t()?, &v[1], None)?, 3),
        &[xt, w],
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Softmax and log-softmax

/// `(softmax, log_softmax)` of `data` (shape `dims`) along `dim`, by log-sum-exp in f64.
fn ref_softmax(data: &[f64], dims: &[usize], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let d = dims[dim];
    let post: usize = dims[dim + 1..].iter().product();
    let pre: usize = dims[..dim].iter().product();
    let (mut sm, mut lsm) = (vec![0.0; data.len()], vec![0.0; data.len()]);
    for a in 0..pre {
        for c in 0..post {
            let at = |k: usize| a * d * post + k * post + c;
            let m = (0..d)
                .map(|k| data[at(k)])
                .fold(f64::NEG_INFINITY, f64::max);
            let lse = m + (0..d).map(|k| (data[at(k)] - m).exp()).sum::<f64>().ln();
            for k in 0..d {
                lsm[at(k)] = data[at(k)] - lse;
                sm[at(k)] = lsm[at(k)].exp();
            }
        }
    }
    (sm, lsm)
}

/// softmax / log_softmax along every dim of rank-2 and rank-3 inputs, on every layout, against
/// log-sum-exp; inputs around ±1e4 stay finite and rows sum to 1.
pub fn softmax_forward<B: Backend>(dev: &B::Device) -> Result<()> {
    let shapes: [&[usize]; 3] = [&[3, 7], &[2, 3, 4], &[5, 1, 6]];
    for dtype in FLOAT_DTYPES {
        let (rtol, atol) = rtol_composite(dtype);
        for (si, dims) in shapes.iter().enumerate() {
            let data = round_to(
                dtype,
                &uniform_vec(dims.iter().product(), 60 + si as u64, -4.0, 4.0),
            );
            for dim in 0..dims.len() {
                let (sm, lsm) = ref_softmax(&data, dims, dim);
                for layout in LAYOUTS {
                    let x = laid_out::<B>(&data, dims, dtype, layout, dev)?;
                    let what = format!("{dims:?} dim {dim} {dtype} {layout:?}");
                    assert_tensor(
                        &format!("softmax {what}"),
                        &nn::softmax(&x, dim)?,
                        dims,
                        &sm,
                        rtol,
                        atol,
                    )?;
                    assert_tensor(
                        &format!("log_softmax {what}"),
                        &nn::log_softmax(&x, dim)?,
                        dims,
                        &lsm,
                        rtol,
                        atol,
                    )?;
                }
            }
        }
        // Numerical stability: logits ≈ ±1e4 (exp would overflow without the max shift). Values
        // on a 1/8 grid, exact in f32 too.
        let big: Vec<f64> = (0..24)
            .map(|i| {
                let base = if i < 12 { 1e4 } else { -1e4 };
                base + ((i * 37) % 23) as f64 / 8.0 - 1.0
            })
            .collect();
        let dims = [4, 6];
        let x = tensor::<B>(&big, dims, dtype, dev)?;
        let (sm, lsm) = ref_softmax(&big, &dims, 1);
        let got = nn::softmax(&x, 1)?.to_vec_f64()?;
        assert!(
            got.iter().all(|v| v.is_finite()),
            "softmax of ±1e4 logits is not finite ({dtype}): {got:?}"
        );
        for r in 0..4 {
            let s: f64 = got[r * 6..(r + 1) * 6].iter().sum();
            assert!(
                (s - 1.0).abs() <= 1e-5,
                "softmax row {r} sums to {s} ({dtype})"
            );
        }
        assert_close(&format!("softmax ±1e4 {dtype}"), &got, &sm, rtol, atol);
        assert_tensor(
            &format!("log_softmax ±1e4 {dtype}"),
            &nn::log_softmax(&x, 1)?,
            &dims,
            &lsm,
            rtol,
            atol,
        )?;
    }
    let xi = Tensor::<B>::zeros([2, 3], DType::I64, dev)?;
    assert_err_names(nn::softmax(&xi, 1), "softmax", "softmax of i64");
    let xf = Tensor::<B>::zeros([2, 3], DType::F32, dev)?;
    expect_err(nn::softmax(&xf, 2), "softmax along a missing dim");
    Ok(())
}

/// Gradients of softmax and log_softmax along each dim, on a permuted view.
pub fn softmax_grad<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = input::<B>(&[2, 3, 4], 70, -3.0, 3.0, dev)?;
    for dim in 0..3 {
        gc(
            &format!("softmax dim {dim}"),
            |v| wsum(&nn::softmax(&v[0], dim)?, 10 + dim as u64),
            std::slice::from_ref(&x),
        );
        gc(
            &format!("log_softmax dim {dim}"),
            |v| wsum(&nn::log_softmax(&v[0], dim)?, 20 + dim as u64),
            std::slice::from_ref(&x),
        );
        gc(
            &format!("log_softmax dim {dim} of a permuted view"),
            |v| wsum(&nn::log_softmax(&v[0].permute(&[2, 0, 1])?, dim)?, 30),
            std::slice::from_ref(&x),
        );
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Cross-entropy

/// Per-row log-probabilities of `(batch, classes)` logits.
fn ref_log_probs(logits: &[f64], classes: usize) -> Vec<f64> {
    ref_softmax(logits, &[logits.len() / classes, classes], 1).1
}

/// Cross-entropy with hard labels (and label smoothing, soft targets, both) against the formulas,
/// f32/f64, logits on every layout; logits ≈ 1e4; errors for bad labels and targets.
pub fn cross_entropy_forward<B: Backend>(dev: &B::Device) -> Result<()> {
    let (batch, classes) = (5, 7);
    let labels_host: Vec<i64> = vec![0, 6, 3, 3, 1];
    let labels = Tensor::<B>::from_vec(labels_host.clone(), [batch], dev)?;
    for dtype in FLOAT_DTYPES {
        let (rtol, atol) = rtol_composite(dtype);
        for (case, scale) in [(0u64, 3.0), (1, 1e4)] {
            // case 1: logits around +1e4 (on a 1/8 grid): exp would overflow without the shift.
            let logits: Vec<f64> = uniform_vec(batch * classes, 80 + case, -1.0, 1.0)
                .iter()
                .map(|u| {
                    if case == 0 {
                        u * scale
                    } else {
                        scale + (u * 40.0).round() / 8.0
                    }
                })
                .collect();
            let logits = round_to(dtype, &logits);
            let lp = ref_log_probs(&logits, classes);
            // Hard-label CE_i and the uniform term mean_k(−log p_ik).
            let ce: Vec<f64> = (0..batch)
                .map(|i| -lp[i * classes + labels_host[i] as usize])
                .collect();
            let uni: Vec<f64> = (0..batch)
                .map(|i| -lp[i * classes..(i + 1) * classes].iter().sum::<f64>() / classes as f64)
                .collect();
            // Soft targets: positive rows normalised to 1.
            let raw = uniform_vec(batch * classes, 90 + case, 0.05, 1.0);
            let mut q = raw.clone();
            for i in 0..batch {
                let s: f64 = raw[i * classes..(i + 1) * classes].iter().sum();
                for k in 0..classes {
                    q[i * classes + k] = raw[i * classes + k] / s;
                }
            }
            let q = round_to(dtype, &q);
            let soft_ce: Vec<f64> = (0..batch)
                .map(|i| {
                    -(0..classes)
                        .map(|k| q[i * classes + k] * lp[i * classes + k])
                        .sum::<f64>()
                })
                .collect();
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let soft_t = tensor::<B>(&q, [batch, classes], dtype, dev)?;
            for layout in LAYOUTS {
                let x = laid_out::<B>(&logits, &[batch, classes], dtype, layout, dev)?;
                let what = format!("{dtype} {layout:?} logits scale {scale}");
                for eps in [0.0, 0.1, 0.3] {
                    // (1 − ε)·CE + ε·mean_k(−log p_k), per sample, averaged over the batch.
                    let want: Vec<f64> = (0..batch)
                        .map(|i| (1.0 - eps) * ce[i] + eps * uni[i])
                        .collect();
                    let got = nn::cross_entropy(&x, Target::Labels(&labels), eps)?;
                    assert_tensor(
                        &format!("cross_entropy labels ε={eps} {what}"),
                        &got,
                        &[],
                        &[mean(&want)],
                        rtol,
                        atol,
                    )?;
                    let want: Vec<f64> = (0..batch)
                        .map(|i| (1.0 - eps) * soft_ce[i] + eps * uni[i])
                        .collect();
                    let got = nn::cross_entropy(&x, Target::Soft(&soft_t), eps)?;
                    assert_tensor(
                        &format!("cross_entropy soft ε={eps} {what}"),
                        &got,
                        &[],
                        &[mean(&want)],
                        rtol,
                        atol,
                    )?;
                }
            }
            // One-hot soft targets equal hard labels.
            let mut onehot = vec![0.0; batch * classes];
            for i in 0..batch {
                onehot[i * classes + labels_host[i] as usize] = 1.0;
            }
            let onehot = tensor::<B>(&onehot, [batch, classes], dtype, dev)?;
            let x = tensor::<B>(&logits, [batch, classes], dtype, dev)?;
            let a = nn::cross_entropy(&x, Target::Labels(&labels), 0.1)?.to_vec_f64()?;
            let b = nn::cross_entropy(&x, Target::Soft(&onehot), 0.1)?.to_vec_f64()?;
            assert_close("one-hot soft targets = labels", &a, &b, rtol, atol);
            assert!(a[0].is_finite(), "cross-entropy not finite ({dtype})");
        }
    }
    // Errors: labels out of range, wrong dtype/shape, bad smoothing, rank, soft-target shape.
    let x = Tensor::<B>::zeros([2, 3], DType::F32, dev)?;
    for bad in [vec![0i64, 3], vec![-1, 0]] {
        let l = Tensor::<B>::from_vec(bad.clone(), [2], dev)?;
        assert_err_names(
            nn::cross_entropy(&x, Target::Labels(&l), 0.0),
            "cross_entropy",
            &format!("labels {bad:?} for 3 classes"),
        );
    }
    let lf = Tensor::<B>::zeros([2], DType::F32, dev)?;
    assert_err_names(
        nn::cross_entropy(&x, Target::Labels(&lf), 0.0),
        "cross_entropy",
        "f32 labels",
    );
    let l3 = Tensor::<B>::from_vec(vec![0i64, 1, 2], [3], dev)?;
    assert_err_names(
        nn::cross_entropy(&x, Target::Labels(&l3), 0.0),
        "cross_entropy",
        "labels of the wrong length",
    );
    let l2 = Tensor::<B>::from_vec(vec![0i64, 1], [2], dev)?;
    for eps in [-0.1, 1.5] {
        assert_err_names(
            nn::cross_entropy(&x, Target::Labels(&l2), eps),
            "cross_entropy",
            "label smoothing outside [0, 1]",
        );
    }
    let q = Tensor::<B>::zeros([2, 4], DType::F32, dev)?;
    assert_err_names(
        nn::cross_entropy(&x, Target::Soft(&q), 0.0),
        "cross_entropy",
        "soft targets of the wrong shape",
    );
    let x1 = Tensor::<B>::zeros([3], DType::F32, dev)?;
    assert_err_names(
        nn::cross_entropy(&x1, Target::Labels(&l2), 0.0),
        "cross_entropy",
        "rank-1 logits",
    );
    Ok(())
}

/// Gradients of cross-entropy w.r.t. the logits: labels, label smoothing, soft targets, and a
/// transposed logits view.
pub fn cross_entropy_grad<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = input::<B>(&[4, 5], 100, -3.0, 3.0, dev)?;
    let q = {
        let raw = uniform_vec(20, 101, 0.05, 1.0);
        let mut q = raw.clone();
        for i in 0..4 {
            let s: f64 = raw[i * 5..(i + 1) * 5].iter().sum();
            for k in 0..5 {
                q[i * 5 + k] /= s;
            }
        }
        q
    };
    for eps in [0.0, 0.1] {
        gc(
            &format!("cross_entropy labels ε={eps}"),
            |v| {
                let l = Tensor::<Autodiff<B>>::from_vec(vec![4i64, 0, 2, 2], [4], v[0].device())?;
                nn::cross_entropy(&v[0], Target::Labels(&l), eps)
            },
            std::slice::from_ref(&x),
        );
        gc(
            &format!("cross_entropy soft ε={eps}"),
            |v| {
                let t = tensor::<Autodiff<B>>(&q, [4, 5], DType::F64, v[0].device())?;
                nn::cross_entropy(&v[0], Target::Soft(&t), eps)
            },
            std::slice::from_ref(&x),
        );
    }
    let xt = input::<B>(&[5, 4], 102, -3.0, 3.0, dev)?;
    gc(
        "cross_entropy on transposed logits",
        |v| {
            let l = Tensor::<Autodiff<B>>::from_vec(vec![1i64, 3, 0, 4], [4], v[0].device())?;
            nn::cross_entropy(&v[0].t()?, Target::Labels(&l), 0.1)
        },
        &[xt],
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Layer norm

/// LayerNorm over the last dim with biased variance and `eps` inside the square root.
fn ref_layer_norm(
    x: &[f64],
    width: usize,
    w: Option<&[f64]>,
    b: Option<&[f64]>,
    eps: f64,
) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for r in 0..x.len() / width {
        let row = &x[r * width..(r + 1) * width];
        let mu = row.iter().sum::<f64>() / width as f64;
        let var = row.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / width as f64;
        for k in 0..width {
            let mut v = (row[k] - mu) / (var + eps).sqrt();
            if let Some(w) = w {
                v *= w[k];
            }
            if let Some(b) = b {
                v += b[k];
            }
            y[r * width + k] = v;
        }
    }
    y
}

/// LayerNorm on several shapes, with and without affine parameters, eps as given (a large eps
/// on near-constant rows makes eps dominate), every layout, against the direct formula.
pub fn layer_norm_forward<B: Backend>(dev: &B::Device) -> Result<()> {
    for dtype in FLOAT_DTYPES {
        let (rtol, atol) = rtol_composite(dtype);
        let cases: [(&[usize], bool, f64, f64); 4] = [
            (&[4, 7], true, LN_EPS, 2.0),
            (&[2, 3, 32], true, LN_EPS, 2.0),
            (&[3, 5], false, 1e-2, 2.0),
            // Near-constant rows (spread 1e-2, variance ~1e-5): eps = 1e-3 dominates.
            (&[3, 6], true, 1e-3, 1e-2),
        ];
        for (ci, &(dims, affine, eps, spread)) in cases.iter().enumerate() {
            let width = *dims.last().unwrap();
            let n: usize = dims.iter().product();
            let data: Vec<f64> = uniform_vec(n, 110 + ci as u64, -spread, spread)
                .iter()
                .map(|v| v + 1.0)
                .collect();
            let data = round_to(dtype, &data);
            let ws = round_to(dtype, &uniform_vec(width, 120 + ci as u64, 0.5, 1.5));
            let bs = round_to(dtype, &uniform_vec(width, 130 + ci as u64, -0.5, 0.5));
            let w = tensor::<B>(&ws, [width], dtype, dev)?;
            let b = tensor::<B>(&bs, [width], dtype, dev)?;
            let want = if affine {
                ref_layer_norm(&data, width, Some(&ws), Some(&bs), eps)
            } else {
                ref_layer_norm(&data, width, None, None, eps)
            };
            for layout in LAYOUTS {
                let x = laid_out::<B>(&data, dims, dtype, layout, dev)?;
                let y = if affine {
                    nn::layer_norm(&x, Some(&w), Some(&b), eps)?
                } else {
                    nn::layer_norm(&x, None, None, eps)?
                };
                assert_tensor(
                    &format!("layer_norm {dims:?} eps {eps} {dtype} {layout:?}"),
                    &y,
                    dims,
                    &want,
                    rtol,
                    atol,
                )?;
            }
        }
    }
    let x = Tensor::<B>::zeros([2, 3], DType::F32, dev)?;
    let w = Tensor::<B>::ones([2], DType::F32, dev)?;
    assert_err_names(
        nn::layer_norm(&x, Some(&w), None, LN_EPS),
        "layer_norm",
        "weight of the wrong width",
    );
    Ok(())
}

/// Gradients of LayerNorm w.r.t. input, weight and bias, also on a permuted view.
pub fn layer_norm_grad<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = input::<B>(&[3, 5], 140, -2.0, 2.0, dev)?;
    let w = input::<B>(&[5], 141, 0.5, 1.5, dev)?;
    let b = input::<B>(&[5], 142, -0.5, 0.5, dev)?;
    gc(
        "layer_norm affine",
        |v| wsum(&nn::layer_norm(&v[0], Some(&v[1]), Some(&v[2]), LN_EPS)?, 1),
        &[x.clone(), w, b],
    );
    gc(
        "layer_norm plain, eps 0.1",
        |v| wsum(&nn::layer_norm(&v[0], None, None, 0.1)?, 2),
        &[x],
    );
    let x3 = input::<B>(&[4, 2, 3], 143, -2.0, 2.0, dev)?;
    let w4 = input::<B>(&[4], 144, 0.5, 1.5, dev)?;
    gc(
        "layer_norm of a permuted view",
        |v| {
            wsum(
                &nn::layer_norm(&v[0].permute(&[1, 2, 0])?, Some(&v[1]), None, LN_EPS)?,
                3,
            )
        },
        &[x3, w4],
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Batch norm

fn stats<B: Backend>(
    mean: &[f64],
    var: &[f64],
    tracked: i64,
    dtype: DType,
    dev: &B::Device,
) -> Result<BatchNormStats<B>> {
    Ok(BatchNormStats {
        running_mean: tensor::<B>(mean, [mean.len()], dtype, dev)?,
        running_var: tensor::<B>(var, [var.len()], dtype, dev)?,
        num_batches_tracked: tracked,
    })
}

/// BatchNorm in training on the spec's hand-computable example, written out. One tensor of 8
/// values, as (B, C, N) = (2, 2, 2) (1-d), as (1, 2, 2, 2) and (2, 2, 1, 2) (2-d): channel 0
/// holds {1, 2, 3, 6}, channel 1 holds {0, −1, 2, 3}.
///
/// - batch mean (3, 1); biased variance (14/4, 10/4) = (3.5, 2.5); unbiased (14/3, 10/3);
/// - running (mean (0.5, −1), var (2, 0.5), 3 batches) becomes mean 0.9·(0.5, −1) + 0.1·(3, 1)
///   = (0.75, −0.8), var 0.9·(2, 0.5) + 0.1·(14/3, 10/3) = (2.2666…, 0.78333…), 4 batches;
/// - y = (x − mean)/√(var_biased + 1e-5)·(2, 0.5) + (0.1, −0.2);
/// - in eval mode with the updated statistics, y = (x − (0.75, −0.8))/√((2.2666…, 0.78333…) +
///   1e-5)·w + b, and the statistics are returned unchanged.
pub fn batch_norm_hand_computed<B: Backend>(dev: &B::Device) -> Result<()> {
    let layouts: [(&[usize], [f64; 8]); 3] = [
        (&[2, 2, 2], [1., 2., 0., -1., 3., 6., 2., 3.]),
        (&[1, 2, 2, 2], [1., 2., 3., 6., 0., -1., 2., 3.]),
        (&[2, 2, 1, 2], [1., 2., 0., -1., 3., 6., 2., 3.]),
    ];
    // Channel of each flat position.
    let channel = |dims: &[usize], f: usize| unravel(f, dims)[1];
    let (w, b) = ([2.0, 0.5], [0.1, -0.2]);
    let batch_mean = [3.0, 1.0];
    let batch_var = [3.5, 2.5];
    let new_mean = [0.75, -0.8];
    let new_var = [2.266_666_666_666_666_5, 0.783_333_333_333_333_3];
    for dtype in FLOAT_DTYPES {
        let (rtol, atol) = match dtype {
            DType::F32 => (1e-6, 1e-6),
            _ => (1e-14, 1e-14),
        };
        for (dims, x) in &layouts {
            let xt = tensor::<B>(x, dims.to_vec(), dtype, dev)?;
            let wt = tensor::<B>(&w, [2], dtype, dev)?;
            let bt = tensor::<B>(&b, [2], dtype, dev)?;
            let st = stats::<B>(&[0.5, -1.0], &[2.0, 0.5], 3, dtype, dev)?;
            let (y, new) =
                nn::batch_norm(&xt, &st, Some(&wt), Some(&bt), true, BN_MOMENTUM, BN_EPS)?;
            let want: Vec<f64> = (0..8)
                .map(|f| {
                    let c = channel(dims, f);
                    (x[f] - batch_mean[c]) / (batch_var[c] + 1e-5f64).sqrt() * w[c] + b[c]
                })
                .collect();
            let what = format!("batch_norm train {dims:?} {dtype}");
            assert_tensor(&what, &y, dims, &want, rtol, atol)?;
            assert_tensor(
                &format!("{what} running_mean"),
                &new.running_mean,
                &[2],
                &new_mean,
                rtol,
                atol,
            )?;
            assert_tensor(
                &format!("{what} running_var (unbiased)"),
                &new.running_var,
                &[2],
                &new_var,
                rtol,
                atol,
            )?;
            assert_eq!(new.num_batches_tracked, 4, "{what}: num_batches_tracked");
            // The input statistics are not modified in place.
            assert_tensor(
                &format!("{what} old running_mean untouched"),
                &st.running_mean,
                &[2],
                &[0.5, -1.0],
                0.0,
                0.0,
            )?;

            // Eval mode with the updated statistics.
            let (y, same) =
                nn::batch_norm(&xt, &new, Some(&wt), Some(&bt), false, BN_MOMENTUM, BN_EPS)?;
            let want: Vec<f64> = (0..8)
                .map(|f| {
                    let c = channel(dims, f);
                    (x[f] - new_mean[c]) / (new_var[c] + 1e-5f64).sqrt() * w[c] + b[c]
                })
                .collect();
            assert_tensor(
                &format!("batch_norm eval {dims:?} {dtype}"),
                &y,
                dims,
                &want,
                rtol,
                atol,
            )?;
            assert_eq!(same.num_batches_tracked, 4, "eval must not count a batch");
            assert_tensor(
                "eval running_mean unchanged",
                &same.running_mean,
                &[2],
                &new_mean,
                rtol,
                atol,
            )?;
            assert_tensor(
                "eval running_var unchanged",
                &same.running_var,
                &[2],
                &new_var,
                rtol,
                atol,
            )?;
        }
        // A second training step continues the count.
        let xt = tensor::<B>(&layouts[0].1, [2, 2, 2], dtype, dev)?;
        let st = stats::<B>(&new_mean, &new_var, 4, dtype, dev)?;
        let (_, st2) = nn::batch_norm(&xt, &st, None, None, true, BN_MOMENTUM, BN_EPS)?;
        assert_eq!(st2.num_batches_tracked, 5);
        assert_tensor(
            "second update of running_mean",
            &st2.running_mean,
            &[2],
            &[0.9 * 0.75 + 0.3, 0.9 * -0.8 + 0.1],
            rtol,
            atol,
        )?;
    }
    Ok(())
}

/// `(y, batch mean, unbiased batch var)` of a batch norm over dim 1 of `dims`, normalising with
/// `(mean, var)` = the batch statistics (train) or the given running ones (eval).
fn ref_batch_norm(
    x: &[f64],
    dims: &[usize],
    w: Option<&[f64]>,
    b: Option<&[f64]>,
    running: Option<(&[f64], &[f64])>,
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let c = dims[1];
    let count = x.len() / c;
    let (mut mean, mut var) = (vec![0.0; c], vec![0.0; c]);
    for (f, &v) in x.iter().enumerate() {
        mean[unravel(f, dims)[1]] += v / count as f64;
    }
    for (f, &v) in x.iter().enumerate() {
        let ch = unravel(f, dims)[1];
        var[ch] += (v - mean[ch]) * (v - mean[ch]);
    }
    let biased: Vec<f64> = var.iter().map(|v| v / count as f64).collect();
    let unbiased: Vec<f64> = var.iter().map(|v| v / (count - 1) as f64).collect();
    let (m, s2) = running.unwrap_or((&mean, &biased));
    let y = x
        .iter()
        .enumerate()
        .map(|(f, &v)| {
            let ch = unravel(f, dims)[1];
            let mut y = (v - m[ch]) / (s2[ch] + eps).sqrt();
            if let Some(w) = w {
                y *= w[ch];
            }
            if let Some(b) = b {
                y += b[ch];
            }
            y
        })
        .collect();
    (y, mean, unbiased)
}

/// BatchNorm on (B, C), 1-d (B, C, N) and 2-d (B, C, H, W) random inputs, train and eval, with
/// and without affine parameters, every layout, against the direct formulas (including the
/// running-statistics update); errors for one value per channel in training and bad shapes.
pub fn batch_norm_forward<B: Backend>(dev: &B::Device) -> Result<()> {
    let shapes: [&[usize]; 4] = [&[6, 3], &[3, 4, 5], &[2, 3, 4, 5], &[1, 2, 3, 1]];
    for dtype in FLOAT_DTYPES {
        let (rtol, atol) = rtol_composite(dtype);
        for (si, dims) in shapes.iter().enumerate() {
            let c = dims[1];
            let n: usize = dims.iter().product();
            let data = round_to(dtype, &uniform_vec(n, 150 + si as u64, -1.0, 3.0));
            let ws = round_to(dtype, &uniform_vec(c, 160 + si as u64, 0.5, 1.5));
            let bs = round_to(dtype, &uniform_vec(c, 170 + si as u64, -0.5, 0.5));
            let rm = round_to(dtype, &uniform_vec(c, 180 + si as u64, -0.3, 0.3));
            let rv = round_to(dtype, &uniform_vec(c, 190 + si as u64, 0.7, 1.3));
            let w = tensor::<B>(&ws, [c], dtype, dev)?;
            let b = tensor::<B>(&bs, [c], dtype, dev)?;
            let st = stats::<B>(&rm, &rv, 7, dtype, dev)?;
            for (affine, layout) in [true, false]
                .into_iter()
                .zip(LAYOUTS)
                .chain([(true, ViewKind::Narrowed), (false, ViewKind::Contiguous)])
            {
                let x = laid_out::<B>(&data, dims, dtype, layout, dev)?;
                let (wr, br) = if affine {
                    (Some(&ws[..]), Some(&bs[..]))
                } else {
                    (None, None)
                };
                let (wt, bt) = if affine {
                    (Some(&w), Some(&b))
                } else {
                    (None, None)
                };
                let what = format!("batch_norm {dims:?} affine {affine} {dtype} {layout:?}");
                // Train.
                let (want, mean, unbiased) = ref_batch_norm(&data, dims, wr, br, None, BN_EPS);
                let (y, new) = nn::batch_norm(&x, &st, wt, bt, true, BN_MOMENTUM, BN_EPS)?;
                assert_tensor(&format!("{what} train"), &y, dims, &want, rtol, atol)?;
                let want_rm: Vec<f64> = (0..c).map(|k| 0.9 * rm[k] + 0.1 * mean[k]).collect();
                let want_rv: Vec<f64> = (0..c).map(|k| 0.9 * rv[k] + 0.1 * unbiased[k]).collect();
                assert_tensor(
                    &format!("{what} running_mean"),
                    &new.running_mean,
                    &[c],
                    &want_rm,
                    rtol,
                    atol,
                )?;
                assert_tensor(
                    &format!("{what} running_var"),
                    &new.running_var,
                    &[c],
                    &want_rv,
                    rtol,
                    atol,
                )?;
                assert_eq!(new.num_batches_tracked, 8, "{what}: num_batches_tracked");
                // Eval.
                let (want, _, _) = ref_batch_norm(&data, dims, wr, br, Some((&rm, &rv)), BN_EPS);
                let (y, same) = nn::batch_norm(&x, &st, wt, bt, false, BN_MOMENTUM, BN_EPS)?;
                assert_tensor(&format!("{what} eval"), &y, dims, &want, rtol, atol)?;
                assert_eq!(same.num_batches_tracked, 7, "{what}: eval counted a batch");
            }
        }
    }
    // One value per channel: an error in training (as in PyTorch), fine in eval.
    for dims in [&[1usize, 3][..], &[1, 3, 1], &[1, 3, 1, 1]] {
        let x = Tensor::<B>::ones(dims.to_vec(), DType::F32, dev)?;
        let st = stats::<B>(&[0.0; 3], &[1.0; 3], 0, DType::F32, dev)?;
        assert_err_names(
            nn::batch_norm(&x, &st, None, None, true, BN_MOMENTUM, BN_EPS),
            "batch_norm",
            &format!("training on {dims:?}"),
        );
        nn::batch_norm(&x, &st, None, None, false, BN_MOMENTUM, BN_EPS)?;
    }
    let x = Tensor::<B>::ones([2, 3, 4], DType::F32, dev)?;
    let st = stats::<B>(&[0.0; 4], &[1.0; 4], 0, DType::F32, dev)?;
    assert_err_names(
        nn::batch_norm(&x, &st, None, None, true, BN_MOMENTUM, BN_EPS),
        "batch_norm",
        "running stats of the wrong width",
    );
    let st = stats::<B>(&[0.0; 3], &[1.0; 3], 0, DType::F32, dev)?;
    let w = Tensor::<B>::ones([2], DType::F32, dev)?;
    assert_err_names(
        nn::batch_norm(&x, &st, Some(&w), None, false, BN_MOMENTUM, BN_EPS),
        "batch_norm",
        "weight of the wrong width",
    );
    let x1 = Tensor::<B>::ones([3], DType::F32, dev)?;
    assert_err_names(
        nn::batch_norm(&x1, &st, None, None, false, BN_MOMENTUM, BN_EPS),
        "batch_norm",
        "rank-1 input",
    );
    Ok(())
}

/// Gradients of BatchNorm in training (batch statistics, 1-d and 2-d, also a permuted view) and
/// in eval mode, w.r.t. input, weight and bias.
pub fn batch_norm_grad<B: Backend>(dev: &B::Device) -> Result<()> {
    let bn = |x: &T<B>, w: &T<B>, b: &T<B>, training: bool| -> Result<T<B>> {
        let c = x.dims()[1];
        let st = stats::<Autodiff<B>>(
            &uniform_vec(c, 200, -0.3, 0.3),
            &uniform_vec(c, 201, 0.7, 1.3),
            0,
            DType::F64,
            x.device(),
        )?;
        Ok(nn::batch_norm(x, &st, Some(w), Some(b), training, BN_MOMENTUM, BN_EPS)?.0)
    };
    let w = input::<B>(&[3], 202, 0.5, 1.5, dev)?;
    let b = input::<B>(&[3], 203, -0.5, 0.5, dev)?;
    let x1 = input::<B>(&[3, 3, 4], 204, -1.0, 3.0, dev)?;
    let x2 = input::<B>(&[2, 3, 2, 3], 205, -1.0, 3.0, dev)?;
    for training in [true, false] {
        gc(
            &format!("batch_norm 1-d training={training}"),
            |v| wsum(&bn(&v[0], &v[1], &v[2], training)?, 1),
            &[x1.clone(), w.clone(), b.clone()],
        );
        gc(
            &format!("batch_norm 2-d training={training}"),
            |v| wsum(&bn(&v[0], &v[1], &v[2], training)?, 2),
            &[x2.clone(), w.clone(), b.clone()],
        );
    }
    // (B, N, C) tokens viewed as (B, C, N), as VARS-S applies BatchNorm1d (spec §3.5 step 8).
    let tokens = input::<B>(&[2, 4, 3], 206, -1.0, 3.0, dev)?;
    gc(
        "batch_norm 1-d on a transposed token view",
        |v| wsum(&bn(&v[0].transpose(1, 2)?, &v[1], &v[2], true)?, 3),
        &[tokens, w, b],
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Convolution

/// Output size of one axis of a window.
fn out_len(size: usize, k: usize, s: usize, p: usize, d: usize) -> usize {
    (size + 2 * p - d * (k - 1) - 1) / s + 1
}

/// Direct convolution (cross-correlation) with stride, padding, dilation and groups:
/// `(dims, values, Σ|products| + |bias|)`.
fn ref_conv2d(
    x: &[f64],
    xd: [usize; 4],
    w: &[f64],
    wd: [usize; 4],
    b: Option<&[f64]>,
    win: Window2d,
    groups: usize,
) -> ([usize; 4], Vec<f64>, Vec<f64>) {
    let [n, c, h, wid] = xd;
    let [o, cg, kh, kw] = wd;
    let ho = out_len(h, kh, win.stride.0, win.padding.0, win.dilation.0);
    let wo = out_len(wid, kw, win.stride.1, win.padding.1, win.dilation.1);
    let og = o / groups;
    let mut out = vec![0.0; n * o * ho * wo];
    let mut bound = vec![0.0; n * o * ho * wo];
    for ni in 0..n {
        for oi in 0..o {
            let g = oi / og;
            for oy in 0..ho {
                for ox in 0..wo {
                    let (mut s, mut sa) = b.map_or((0.0, 0.0), |b| (b[oi], b[oi].abs()));
                    for ci in 0..cg {
                        let cin = g * cg + ci;
                        for i in 0..kh {
                            let y = (oy * win.stride.0 + i * win.dilation.0) as isize
                                - win.padding.0 as isize;
                            if y < 0 || y >= h as isize {
                                continue;
                            }
                            for j in 0..kw {
                                let xx = (ox * win.stride.1 + j * win.dilation.1) as isize
                                    - win.padding.1 as isize;
                                if xx < 0 || xx >= wid as isize {
                                    continue;
                                }
                                let p = x[((ni * c + cin) * h + y as usize) * wid + xx as usize]
                                    * w[((oi * cg + ci) * kh + i) * kw + j];
                                s += p;
                                sa += p.abs();
                            }
                        }
                    }
                    let at = ((ni * o + oi) * ho + oy) * wo + ox;
                    out[at] = s;
                    bound[at] = sa;
                }
            }
        }
    }
    ([n, o, ho, wo], out, bound)
}

struct ConvCase {
    name: &'static str,
    x: [usize; 4],
    out: usize,
    groups: usize,
    win: Window2d,
    bias: bool,
}

fn conv_cases() -> Vec<ConvCase> {
    let sq = Window2d::square;
    let case = |name, x, out, groups, win, bias| ConvCase {
        name,
        x,
        out,
        groups,
        win,
        bias,
    };
    vec![
        // RVT stem conv 0: 7×7, stride 2, padding 2, 3 → C (non-square image).
        case("stem 7×7/s2/p2", [2, 3, 23, 20], 4, 1, sq(7, 2, 2), true),
        // RVT stem conv 3: 4×4, stride 4, C → C.
        case("stem 4×4/s4", [2, 4, 12, 9], 4, 1, sq(4, 4, 0), true),
        case(
            "4×4/s4 with 32 channels",
            [1, 32, 8, 8],
            8,
            1,
            sq(4, 4, 0),
            false,
        ),
        // MLP fc1/fc2: 1×1 (the reshape fast path) and a strided 1×1 (the im2col path).
        case("1×1", [2, 5, 4, 3], 6, 1, sq(1, 1, 0), true),
        case("1×1/s2", [1, 3, 5, 6], 2, 1, sq(1, 2, 0), false),
        // MLP dwconv: depthwise 3×3, padding 1, groups = C.
        case("depthwise 3×3/p1", [2, 6, 7, 5], 6, 6, sq(3, 1, 1), true),
        // Pooling between stages: 3×3/s2/p1, groups = C_in, C_out = 2·C_in (6 → 3, 7 → 4).
        case(
            "pooling 3×3/s2/p1 even",
            [2, 4, 6, 6],
            8,
            4,
            sq(3, 2, 1),
            true,
        ),
        case(
            "pooling 3×3/s2/p1 odd",
            [1, 3, 7, 7],
            6,
            3,
            sq(3, 2, 1),
            true,
        ),
        // General: two channels per group, non-square kernel, stride, padding and dilation.
        case(
            "grouped 3×2/s(2,1)/p(1,0)/d(1,2)",
            [1, 4, 6, 7],
            6,
            2,
            Window2d {
                kernel: (3, 2),
                stride: (2, 1),
                padding: (1, 0),
                dilation: (1, 2),
            },
            true,
        ),
    ]
}

/// conv2d on the RVT shapes (stem, pointwise, depthwise, pooling) and a general grouped case,
/// f32/f64, every input layout and a non-contiguous weight, against the direct loops.
pub fn conv2d_forward<B: Backend>(dev: &B::Device) -> Result<()> {
    for dtype in FLOAT_DTYPES {
        for (ci, c) in conv_cases().iter().enumerate() {
            let wd = [c.out, c.x[1] / c.groups, c.win.kernel.0, c.win.kernel.1];
            let xs = round_to(
                dtype,
                &uniform_vec(c.x.iter().product(), 300 + ci as u64, -2.0, 2.0),
            );
            let ws = round_to(
                dtype,
                &uniform_vec(wd.iter().product(), 310 + ci as u64, -1.0, 1.0),
            );
            let bs = round_to(dtype, &uniform_vec(c.out, 320 + ci as u64, -1.0, 1.0));
            let b = tensor::<B>(&bs, [c.out], dtype, dev)?;
            let (dims, want, bound) = ref_conv2d(
                &xs,
                c.x,
                &ws,
                wd,
                c.bias.then_some(&bs[..]),
                c.win,
                c.groups,
            );
            let k = wd[1] * wd[2] * wd[3];
            for (li, layout) in LAYOUTS.into_iter().enumerate() {
                let x = laid_out::<B>(&xs, &c.x, dtype, layout, dev)?;
                let w = laid_out::<B>(&ws, &wd, dtype, LAYOUTS[(li + 1) % 3], dev)?;
                let y = nn::conv2d(&x, &w, c.bias.then_some(&b), c.win, c.groups)?;
                assert_dot(
                    &format!("conv2d {} {dtype} x {layout:?}", c.name),
                    &y,
                    &dims,
                    &want,
                    &bound,
                    k,
                )?;
            }
        }
    }
    // The stem's spatial sizes (spec §4.1): 224 → 111 → 56 → 14, 96 → 47 → 24 → 6.
    for (img, s1, s2, s0) in [(224, 111, 56, 14), (96, 47, 24, 6)] {
        let x = Tensor::<B>::zeros([1, 3, img, img], DType::F32, dev)?;
        let w0 = Tensor::<B>::zeros([2, 3, 7, 7], DType::F32, dev)?;
        let y = nn::conv2d(&x, &w0, None, Window2d::square(7, 2, 2), 1)?;
        assert_eq!(y.dims(), [1, 2, s1, s1], "stem conv0 on {img}");
        let y = nn::max_pool2d(&y, Window2d::square(3, 2, 1))?;
        assert_eq!(y.dims(), [1, 2, s2, s2], "stem max-pool on {img}");
        let w3 = Tensor::<B>::zeros([2, 2, 4, 4], DType::F32, dev)?;
        let y = nn::conv2d(&y, &w3, None, Window2d::square(4, 4, 0), 1)?;
        assert_eq!(y.dims(), [1, 2, s0, s0], "stem conv3 on {img}");
    }
    Ok(())
}

/// conv2d shape errors name `conv2d`: bad groups (0, not dividing C or O, weight dim 1 ≠
/// C/groups), kernel/window mismatch, wrong ranks, bias shape, a window that does not fit.
pub fn conv2d_errors<B: Backend>(dev: &B::Device) -> Result<()> {
    let z = |dims: &[usize]| Tensor::<B>::zeros(dims.to_vec(), DType::F32, dev);
    let x = z(&[1, 4, 6, 6])?;
    let sq3 = Window2d::square(3, 1, 1);
    let cases: Vec<(&str, Result<Tensor<B>>)> = vec![
        (
            "groups = 0",
            nn::conv2d(&x, &z(&[4, 4, 3, 3])?, None, sq3, 0),
        ),
        (
            "groups not dividing C",
            nn::conv2d(&x, &z(&[3, 1, 3, 3])?, None, sq3, 3),
        ),
        (
            "groups not dividing O",
            nn::conv2d(&x, &z(&[3, 2, 3, 3])?, None, sq3, 2),
        ),
        (
            "weight dim 1 ≠ C/groups",
            nn::conv2d(&x, &z(&[4, 4, 3, 3])?, None, sq3, 2),
        ),
        (
            "kernel mismatch",
            nn::conv2d(&x, &z(&[4, 4, 3, 3])?, None, Window2d::square(5, 1, 2), 1),
        ),
        (
            "rank-3 input",
            nn::conv2d(&z(&[4, 6, 6])?, &z(&[4, 4, 3, 3])?, None, sq3, 1),
        ),
        (
            "rank-3 weight",
            nn::conv2d(&x, &z(&[4, 3, 3])?, None, sq3, 1),
        ),
        (
            "bias shape",
            nn::conv2d(&x, &z(&[4, 4, 3, 3])?, Some(&z(&[3])?), sq3, 1),
        ),
        (
            "window larger than the padded input",
            nn::conv2d(&x, &z(&[4, 4, 7, 7])?, None, Window2d::square(7, 1, 0), 1),
        ),
        (
            "zero stride",
            nn::conv2d(&x, &z(&[4, 4, 3, 3])?, None, Window2d::square(3, 0, 1), 1),
        ),
    ];
    for (what, r) in cases {
        assert_err_names(r, "conv2d", what);
    }
    Ok(())
}

/// Gradients of conv2d w.r.t. input, weight and bias on small versions of every case (stem,
/// 4×4/s4, 1×1, depthwise, pooling, general grouped), some on a permuted input view.
pub fn conv2d_grad<B: Backend>(dev: &B::Device) -> Result<()> {
    let sq = Window2d::square;
    // (case, whether the input is a permuted view); the bias is always a variable here.
    let case = |name, x, out, groups, win, permuted| {
        let c = ConvCase {
            name,
            x,
            out,
            groups,
            win,
            bias: true,
        };
        (c, permuted)
    };
    let cases = [
        case("stem 7×7/s2/p2", [1, 3, 9, 8], 2, 1, sq(7, 2, 2), true),
        case("4×4/s4", [1, 2, 8, 4], 3, 1, sq(4, 4, 0), false),
        case("1×1", [2, 3, 2, 3], 2, 1, sq(1, 1, 0), true),
        case("1×1/s2", [1, 2, 3, 4], 3, 1, sq(1, 2, 0), true),
        case("depthwise 3×3/p1", [1, 3, 4, 5], 3, 3, sq(3, 1, 1), true),
        case("pooling 3×3/s2/p1", [1, 2, 5, 6], 4, 2, sq(3, 2, 1), true),
        case(
            "grouped 3×2/s(2,1)/p(1,0)/d(1,2)",
            [1, 4, 5, 6],
            4,
            2,
            Window2d {
                kernel: (3, 2),
                stride: (2, 1),
                padding: (1, 0),
                dilation: (1, 2),
            },
            true,
        ),
    ];
    for (ci, (c, permuted)) in cases.iter().enumerate() {
        let (name, xd, out, groups, win, permuted) =
            (c.name, c.x, c.out, c.groups, c.win, *permuted);
        let seed = 400 + 10 * ci as u64;
        let wd = [out, xd[1] / groups, win.kernel.0, win.kernel.1];
        // A permuted input is stored with reversed dims and permuted back inside `f`.
        let stored = if permuted {
            permuted_dims(&xd, &rev(4))
        } else {
            xd.to_vec()
        };
        let x = input::<B>(&stored, seed, -2.0, 2.0, dev)?;
        let w = input::<B>(&wd, seed + 1, -1.0, 1.0, dev)?;
        let b = input::<B>(&[out], seed + 2, -1.0, 1.0, dev)?;
        gc(
            &format!("conv2d {name}"),
            |v| {
                let x = if permuted {
                    v[0].permute(&rev(4))?
                } else {
                    v[0].clone()
                };
                wsum(&nn::conv2d(&x, &v[1], Some(&v[2]), win, groups)?, ci as u64)
            },
            &[x, w, b],
        );
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Pooling

/// Direct max pooling with −∞ padding.
fn ref_max_pool(x: &[f64], xd: [usize; 4], win: Window2d) -> ([usize; 4], Vec<f64>) {
    let [n, c, h, w] = xd;
    let (kh, kw) = win.kernel;
    let ho = out_len(h, kh, win.stride.0, win.padding.0, win.dilation.0);
    let wo = out_len(w, kw, win.stride.1, win.padding.1, win.dilation.1);
    let mut out = vec![f64::NEG_INFINITY; n * c * ho * wo];
    for p in 0..n * c {
        for oy in 0..ho {
            for ox in 0..wo {
                let o = &mut out[(p * ho + oy) * wo + ox];
                for i in 0..kh {
                    for j in 0..kw {
                        let y = (oy * win.stride.0 + i * win.dilation.0) as isize
                            - win.padding.0 as isize;
                        let xx = (ox * win.stride.1 + j * win.dilation.1) as isize
                            - win.padding.1 as isize;
                        if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                            *o = o.max(x[(p * h + y as usize) * w + xx as usize]);
                        }
                    }
                }
            }
        }
    }
    ([n, c, ho, wo], out)
}

fn pool_cases() -> [(&'static str, [usize; 4], Window2d, f64, f64); 4] {
    [
        // The stem's max-pool: 3×3, stride 2, padding 1.
        (
            "3×3/s2/p1",
            [2, 3, 9, 8],
            Window2d::square(3, 2, 1),
            -2.0,
            2.0,
        ),
        // All-negative input: a zero padding would win at the borders; −∞ padding never does.
        (
            "3×3/s2/p1 negative",
            [1, 2, 5, 6],
            Window2d::square(3, 2, 1),
            -3.0,
            -1.0,
        ),
        ("2×2/s2", [1, 2, 6, 7], Window2d::square(2, 2, 0), -2.0, 2.0),
        (
            "3×2/s(1,2)/p(1,1)",
            [2, 1, 5, 6],
            Window2d {
                kernel: (3, 2),
                stride: (1, 2),
                padding: (1, 1),
                dilation: (1, 1),
            },
            -3.0,
            -1.0,
        ),
    ]
}

/// max_pool2d against the direct loops (exact), f32/f64, every layout; padding errors; global
/// average pooling against the mean.
pub fn max_pool2d_forward<B: Backend>(dev: &B::Device) -> Result<()> {
    for dtype in FLOAT_DTYPES {
        for (ci, &(name, xd, win, lo, hi)) in pool_cases().iter().enumerate() {
            let xs = round_to(
                dtype,
                &uniform_vec(xd.iter().product(), 500 + ci as u64, lo, hi),
            );
            let (dims, want) = ref_max_pool(&xs, xd, win);
            for layout in LAYOUTS {
                let x = laid_out::<B>(&xs, &xd, dtype, layout, dev)?;
                assert_tensor_eq(
                    &format!("max_pool2d {name} {dtype} {layout:?}"),
                    &nn::max_pool2d(&x, win)?,
                    &dims,
                    &want,
                )?;
            }
        }
    }
    let x = Tensor::<B>::zeros([1, 1, 5, 5], DType::F32, dev)?;
    assert_err_names(
        nn::max_pool2d(&x, Window2d::square(3, 1, 2)),
        "max_pool2d",
        "padding above half the kernel",
    );
    assert_err_names(
        nn::max_pool2d(&x.reshape([5, 5])?, Window2d::square(3, 1, 1)),
        "max_pool2d",
        "rank-2 input",
    );
    Ok(())
}

/// Exactly-tied-free inputs: a permutation of `0.05·k`, shifted, so every window's maximum is
/// unique with a gap of 0.05 ≫ the finite-difference step.
fn distinct_values(n: usize, seed: u64) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..n).collect();
    // Fisher–Yates with the suite's generator.
    for i in (1..n).rev() {
        let j = (crate::rng::uniform(seed, i as u64) * (i + 1) as f64) as usize;
        idx.swap(i, j.min(i));
    }
    idx.iter()
        .map(|&k| 0.05 * k as f64 - 0.025 * n as f64)
        .collect()
}

/// Gradients of max_pool2d (inputs without ties) on every pooling case, one on a permuted view.
pub fn max_pool2d_grad<B: Backend>(dev: &B::Device) -> Result<()> {
    for (ci, &(name, xd, win, _, _)) in pool_cases().iter().enumerate() {
        let vals = distinct_values(xd.iter().product(), 600 + ci as u64);
        // Shift the "negative" cases below zero, where a zero padding would be visible.
        let shift = if name.contains("negative") || ci == 3 {
            -(0.05 * vals.len() as f64)
        } else {
            0.0
        };
        let vals: Vec<f64> = vals.iter().map(|v| v + shift).collect();
        let x = tensor::<B>(&vals, xd.to_vec(), DType::F64, dev)?;
        gc(
            &format!("max_pool2d {name}"),
            |v| wsum(&nn::max_pool2d(&v[0], win)?, ci as u64),
            &[x],
        );
    }
    let xd = [1, 2, 5, 4];
    let stored = permuted_dims(&xd, &rev(4));
    let x = tensor::<B>(&distinct_values(40, 610), stored, DType::F64, dev)?;
    gc(
        "max_pool2d of a permuted view",
        |v| {
            wsum(
                &nn::max_pool2d(&v[0].permute(&rev(4))?, Window2d::square(3, 2, 1))?,
                9,
            )
        },
        &[x],
    );
    Ok(())
}

/// Global average pooling: forward against the mean (every layout) and its gradient.
pub fn global_avg_pool<B: Backend>(dev: &B::Device) -> Result<()> {
    let xd = [2, 3, 4, 5];
    for dtype in FLOAT_DTYPES {
        let (rtol, atol) = rtol_composite(dtype);
        let xs = round_to(dtype, &uniform_vec(120, 700, -2.0, 2.0));
        let want: Vec<f64> = (0..6)
            .map(|p| xs[p * 20..(p + 1) * 20].iter().sum::<f64>() / 20.0)
            .collect();
        for layout in LAYOUTS {
            let x = laid_out::<B>(&xs, &xd, dtype, layout, dev)?;
            assert_tensor(
                &format!("global_avg_pool2d {dtype} {layout:?}"),
                &nn::global_avg_pool2d(&x)?,
                &[2, 3],
                &want,
                rtol,
                atol,
            )?;
        }
    }
    let x = input::<B>(&[2, 2, 3, 3], 701, -2.0, 2.0, dev)?;
    gc(
        "global_avg_pool2d",
        |v| wsum(&nn::global_avg_pool2d(&v[0])?, 1),
        &[x],
    );
    let x3 = Tensor::<B>::zeros([2, 3, 4], DType::F32, dev)?;
    assert_err_names(nn::global_avg_pool2d(&x3), "global_avg_pool2d", "rank 3");
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Shrinks

/// `n` values `z` for per-column thresholds `t` (broadcast over `rows`) with `|z| ≥ 0.02` and
/// `||z| − t| ≥ 0.02`: at least 0.02 away from both kinks, so a finite-difference step of 1e-6
/// never crosses one.
fn shrink_inputs(rows: usize, t: &[f64], seed: u64) -> Vec<f64> {
    let cols = t.len();
    let u = uniform_vec(2 * rows * cols, seed, 0.0, 1.0);
    (0..rows * cols)
        .map(|i| {
            let tc = t[i % cols];
            let mut m = 0.02 + 1.5 * u[2 * i];
            if (m - tc).abs() < 0.02 {
                m = tc + 0.03;
            }
            if u[2 * i + 1] < 0.5 {
                -m
            } else {
                m
            }
        })
        .collect()
}

/// The fused shrinks against `sign(z)·relu(|z| − t)` and `sign(z)·gelu(|z| − t)` (exact erf):
/// per-column thresholds (broadcast), a scalar threshold, `z = 0` giving 0, every layout of `z`;
/// the identity shrink.
pub fn shrink_forward<B: Backend>(dev: &B::Device) -> Result<()> {
    let (rows, t) = (5, [0.1, 0.33, 0.5, 1.0]);
    let cols = t.len();
    for dtype in FLOAT_DTYPES {
        let (rtol, atol) = tolerance(dtype);
        let mut zs = shrink_inputs(rows, &t, 800);
        zs[0] = 0.0; // sign(0) = 0: both shrinks give 0 there (GELU's jump is at z = 0).
        zs[5] = -0.0;
        let zs = round_to(dtype, &zs);
        let ts = round_to(dtype, &t);
        let tt = tensor::<B>(&ts, [cols], dtype, dev)?;
        for (kind, g) in [
            (
                Shrink::SoftThreshold,
                (|u: f64| u.max(0.0)) as fn(f64) -> f64,
            ),
            (Shrink::Gelu, gelu),
        ] {
            let want: Vec<f64> = zs
                .iter()
                .enumerate()
                .map(|(i, &z)| {
                    let s = if z > 0.0 {
                        1.0
                    } else if z < 0.0 {
                        -1.0
                    } else {
                        0.0
                    };
                    s * g(z.abs() - ts[i % cols])
                })
                .collect();
            for layout in LAYOUTS {
                let z = laid_out::<B>(&zs, &[rows, cols], dtype, layout, dev)?;
                assert_tensor(
                    &format!("shrink {kind:?} {dtype} {layout:?}"),
                    &nn::shrink(&z, &tt, kind)?,
                    &[rows, cols],
                    &want,
                    rtol,
                    atol,
                )?;
            }
            // A scalar threshold.
            let z = tensor::<B>(&zs, [rows, cols], dtype, dev)?;
            let t0 = round_to(dtype, &[0.3])[0];
            let want: Vec<f64> = zs
                .iter()
                .map(|&z| {
                    if z == 0.0 {
                        0.0
                    } else {
                        z.signum() * g(z.abs() - t0)
                    }
                })
                .collect();
            assert_tensor(
                &format!("shrink_scalar {kind:?} {dtype}"),
                &nn::shrink_scalar(&z, 0.3, kind)?,
                &[rows, cols],
                &want,
                rtol,
                atol,
            )?;
        }
        let z = tensor::<B>(&zs, [rows, cols], dtype, dev)?;
        assert_tensor(
            &format!("shrink Identity {dtype}"),
            &nn::shrink(&z, &tt, Shrink::Identity)?,
            &[rows, cols],
            &zs,
            0.0,
            0.0,
        )?;
    }
    let zi = Tensor::<B>::zeros([2], DType::I64, dev)?;
    expect_err(
        nn::shrink(&zi, &zi, Shrink::SoftThreshold),
        "integer shrink",
    );
    Ok(())
}

/// Gradients of both shrinks w.r.t. `z` and `t` (per-column `t`, a scalar `t`, a transposed `z`
/// view), away from the kinks at `|z| = t` and `z = 0`.
pub fn shrink_grad<B: Backend>(dev: &B::Device) -> Result<()> {
    let t = [0.1, 0.33, 0.5, 1.0];
    let z = tensor::<B>(&shrink_inputs(5, &t, 810), [5, 4], DType::F64, dev)?;
    let tt = tensor::<B>(&t, [4], DType::F64, dev)?;
    let t0 = tensor::<B>(&[0.3], Vec::<usize>::new(), DType::F64, dev)?;
    let z0 = tensor::<B>(&shrink_inputs(20, &[0.3], 811), [4, 5], DType::F64, dev)?;
    for kind in [Shrink::SoftThreshold, Shrink::Gelu] {
        gc(
            &format!("shrink {kind:?} w.r.t. z and per-column t"),
            |v| wsum(&nn::shrink(&v[0], &v[1], kind)?, 1),
            &[z.clone(), tt.clone()],
        );
        gc(
            &format!("shrink {kind:?} w.r.t. z (transposed) and scalar t"),
            |v| wsum(&nn::shrink(&v[0].t()?, &v[1], kind)?, 2),
            &[z0.clone(), t0.clone()],
        );
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Dropout and drop-path

/// Dropout: identity in eval mode and for p = 0; in training every element is either 0 or
/// x/(1 − p), the kept fraction is within 6σ of the binomial mean, the mask depends only on the
/// seed; p outside [0, 1) is an error.
pub fn dropout_behaviour<B: Backend>(dev: &B::Device) -> Result<()> {
    let n = 100_000;
    for dtype in FLOAT_DTYPES {
        let xs = round_to(dtype, &away_from_zero_vec(n, 900, 0.1, 2.0));
        let x = tensor::<B>(&xs, [100, 1000], dtype, dev)?;
        assert_bits_eq(
            "dropout in eval mode",
            &nn::dropout(&x, 0.5, false, 1)?.to_vec_f64()?,
            &xs,
        );
        assert_bits_eq(
            "dropout with p = 0",
            &nn::dropout(&x, 0.0, true, 1)?.to_vec_f64()?,
            &xs,
        );
        for p in [0.1, 0.5] {
            let scale = 1.0 / (1.0 - p);
            let rtol = if dtype == DType::F32 { 2e-7 } else { 1e-15 };
            for seed in [3u64, 4] {
                let y = nn::dropout(&x, p, true, seed)?.to_vec_f64()?;
                let mut kept = 0usize;
                for (i, (&yi, &xi)) in y.iter().zip(&xs).enumerate() {
                    if yi == 0.0 {
                        continue;
                    }
                    kept += 1;
                    assert!(
                        (yi - xi * scale).abs() <= rtol * (xi * scale).abs(),
                        "dropout p={p} {dtype}: element {i} is {yi}, expected 0 or {}",
                        xi * scale
                    );
                }
                // Kept ~ Binomial(n, 1 − p): σ = √(n·p·(1 − p)) ≈ 95 (p = 0.1) or 158 (p = 0.5);
                // 6σ is exceeded with probability 2e-9 by a fair generator.
                let sigma = (n as f64 * p * (1.0 - p)).sqrt();
                let dev_kept = (kept as f64 - n as f64 * (1.0 - p)).abs();
                assert!(
                    dev_kept <= 6.0 * sigma,
                    "dropout p={p} seed {seed} {dtype}: kept {kept} of {n}, expected {} ± {:.0}",
                    n as f64 * (1.0 - p),
                    6.0 * sigma
                );
                let again = nn::dropout(&x, p, true, seed)?.to_vec_f64()?;
                assert_bits_eq("dropout with the same seed", &again, &y);
            }
            let a = nn::dropout(&x, p, true, 3)?.to_vec_f64()?;
            let b = nn::dropout(&x, p, true, 4)?.to_vec_f64()?;
            assert!(a != b, "dropout masks of seeds 3 and 4 coincide");
        }
    }
    let x = Tensor::<B>::ones([4], DType::F32, dev)?;
    for p in [1.0, -0.1, 1.5] {
        assert_err_names(nn::dropout(&x, p, true, 0), "dropout", "p outside [0, 1)");
        assert_err_names(
            nn::drop_path(&x, p, true, 0),
            "drop_path",
            "p outside [0, 1)",
        );
    }
    Ok(())
}

/// Drop-path: identity in eval mode and for p = 0; in training each sample (dim 0) is zeroed
/// whole or scaled whole by 1/(1 − p), the kept fraction is within 6σ of 1 − p, and the mask
/// depends only on the seed.
pub fn drop_path_behaviour<B: Backend>(dev: &B::Device) -> Result<()> {
    let (batch, per) = (4000, 6);
    for dtype in FLOAT_DTYPES {
        let xs = round_to(dtype, &away_from_zero_vec(batch * per, 910, 0.1, 2.0));
        let x = tensor::<B>(&xs, [batch, 2, 3], dtype, dev)?;
        assert_bits_eq(
            "drop_path in eval mode",
            &nn::drop_path(&x, 0.3, false, 1)?.to_vec_f64()?,
            &xs,
        );
        assert_bits_eq(
            "drop_path with p = 0",
            &nn::drop_path(&x, 0.0, true, 1)?.to_vec_f64()?,
            &xs,
        );
        let rtol = if dtype == DType::F32 { 2e-7 } else { 1e-15 };
        for p in [0.1, 0.3] {
            let scale = 1.0 / (1.0 - p);
            let y = nn::drop_path(&x, p, true, 5)?.to_vec_f64()?;
            let mut kept = 0usize;
            for s in 0..batch {
                let ys = &y[s * per..(s + 1) * per];
                let xs = &xs[s * per..(s + 1) * per];
                if ys.iter().all(|&v| v == 0.0) {
                    continue;
                }
                kept += 1;
                for (&yi, &xi) in ys.iter().zip(xs) {
                    assert!(
                        (yi - xi * scale).abs() <= rtol * (xi * scale).abs(),
                        "drop_path p={p} {dtype}: sample {s} is partly dropped or mis-scaled: {ys:?} vs {xs:?}"
                    );
                }
            }
            let sigma = (batch as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (kept as f64 - batch as f64 * (1.0 - p)).abs() <= 6.0 * sigma,
                "drop_path p={p} {dtype}: kept {kept} of {batch} samples"
            );
            assert_bits_eq(
                "drop_path with the same seed",
                &nn::drop_path(&x, p, true, 5)?.to_vec_f64()?,
                &y,
            );
        }
    }
    Ok(())
}

/// Gradients of dropout and drop-path for a fixed seed (so the mask is fixed): mask/(1 − p).
pub fn dropout_grad<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = input::<B>(&[4, 6], 920, -2.0, 2.0, dev)?;
    gc(
        "dropout p=0.4 seed 7",
        |v| wsum(&nn::dropout(&v[0], 0.4, true, 7)?, 1),
        std::slice::from_ref(&x),
    );
    let x3 = input::<B>(&[8, 2, 3], 921, -2.0, 2.0, dev)?;
    gc(
        "drop_path p=0.5 seed 8",
        |v| wsum(&nn::drop_path(&v[0], 0.5, true, 8)?, 2),
        std::slice::from_ref(&x3),
    );
    gc(
        "dropout eval",
        |v| wsum(&nn::dropout(&v[0], 0.4, false, 7)?, 3),
        &[x],
    );
    Ok(())
}
