//! Reductions over single and multiple axes, keepdim on/off, on strided views.
//!
//! Sum tolerance: a floating-point sum of `n` terms errs by at most `n·u·Σ|x|` in any order, so
//! each output is checked as `|got − want| ≤ rtol·Σ|x|` over its reduced elements with
//! `rtol = 1e-12` (f64) or `1e-5` (f32; ≥ `n·u` for `n ≤ 160`, the largest reduction here).

use super::util::*;
use crate::{Backend, DType, Result, Tensor};

type ViewCase<B> = (&'static str, Tensor<B>, Vec<usize>, Vec<f64>);

/// A [3, 4, 5] random tensor (in `dt`) as contiguous, permuted and narrowed views, with their
/// row-major values.
fn views<B: Backend>(dt: DType, seed: u64, dev: &B::Device) -> Result<Vec<ViewCase<B>>> {
    let dims = [3, 4, 5];
    let (x, xv) = random_tensor::<B>(&dims, dt, seed, -3.0, 3.0, dev)?;
    Ok(vec![
        ("contiguous", x.clone(), dims.to_vec(), xv.clone()),
        (
            "permuted",
            x.permute(&[2, 0, 1])?,
            vec![5, 3, 4],
            reference_permute(&xv, &dims, &[2, 0, 1]),
        ),
        (
            "narrowed",
            x.narrow(2, 1, 3)?.narrow(0, 1, 2)?,
            vec![2, 4, 3],
            {
                let n = reference_narrow(&xv, &dims, 2, 1, 3);
                reference_narrow(&n, &[3, 4, 3], 0, 1, 2)
            },
        ),
        (
            "transposed",
            x.transpose(0, 2)?,
            vec![5, 4, 3],
            reference_permute(&xv, &dims, &[2, 1, 0]),
        ),
    ])
}

const AXES: [&[usize]; 9] = [
    &[],
    &[0],
    &[1],
    &[2],
    &[0, 2],
    &[1, 2],
    &[0, 1],
    &[0, 1, 2],
    &[2, 0, 2],
];

fn normalized(axes: &[usize]) -> Vec<usize> {
    let mut a = axes.to_vec();
    a.sort_unstable();
    a.dedup();
    a
}

fn out_dims(keep: &[usize], axes: &[usize], keepdim: bool) -> Vec<usize> {
    keep.iter()
        .enumerate()
        .filter(|(i, _)| keepdim || !axes.contains(i))
        .map(|(_, &d)| d)
        .collect()
}

#[track_caller]
fn assert_sum_close(what: &str, got: &[f64], want: &[f64], abs_sum: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for i in 0..got.len() {
        let bound = rtol * abs_sum[i] + 1e-300;
        assert!(
            (got[i] - want[i]).abs() <= bound,
            "{what}: element {i}: got {:e}, expected {:e} (allowed error {bound:e})",
            got[i],
            want[i]
        );
    }
}

/// `sum` and `mean` over every axis set, keepdim on/off, on four layouts, f32 and f64; plus
/// sums over empty axes (zeros).
pub fn sum_mean<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in FLOAT_DTYPES {
        let rtol = tolerance(dt).0;
        for (what, v, dims, vals) in views::<B>(dt, 1, dev)? {
            for axes in AXES {
                let ax = normalized(axes);
                let (kd, want) = reference_reduce(&vals, &dims, &ax, 0.0, |a, x| a + x);
                let (_, abs_sum) = reference_reduce(&vals, &dims, &ax, 0.0, |a, x| a + x.abs());
                let n: usize = ax.iter().map(|&a| dims[a]).product();
                for keepdim in [true, false] {
                    let ctx = format!("{dt} {what} axes {axes:?} keepdim {keepdim}");
                    let s = v.sum(axes, keepdim)?;
                    assert_eq!(
                        s.dims(),
                        out_dims(&kd, &ax, keepdim).as_slice(),
                        "sum {ctx}: shape"
                    );
                    assert_eq!(s.dtype(), dt);
                    assert_sum_close(
                        &format!("sum {ctx}"),
                        &s.to_vec_f64()?,
                        &want,
                        &abs_sum,
                        rtol,
                    );
                    let m = v.mean(axes, keepdim)?;
                    assert_eq!(m.dims(), s.dims(), "mean {ctx}: shape");
                    let want_m: Vec<f64> = want.iter().map(|w| w / n as f64).collect();
                    let abs_m: Vec<f64> = abs_sum.iter().map(|w| w / n as f64).collect();
                    assert_sum_close(
                        &format!("mean {ctx}"),
                        &m.to_vec_f64()?,
                        &want_m,
                        &abs_m,
                        rtol,
                    );
                }
            }
        }
        // Reducing a zero-size axis gives zeros.
        let e = Tensor::<B>::zeros([2, 0, 3], dt, dev)?;
        assert_tensor_eq(
            "sum over an empty axis",
            &e.sum(&[1], false)?,
            &[2, 3],
            &[0.0; 6],
        )?;
    }
    Ok(())
}

/// `max` and `min` (exact) over every axis set and layout.
pub fn max_min<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in FLOAT_DTYPES {
        for (what, v, dims, vals) in views::<B>(dt, 2, dev)? {
            for axes in AXES {
                let ax = normalized(axes);
                let (kd, want_max) =
                    reference_reduce(&vals, &dims, &ax, f64::NEG_INFINITY, f64::max);
                let (_, want_min) = reference_reduce(&vals, &dims, &ax, f64::INFINITY, f64::min);
                for keepdim in [true, false] {
                    let ctx = format!("{dt} {what} axes {axes:?} keepdim {keepdim}");
                    let od = out_dims(&kd, &ax, keepdim);
                    assert_tensor_eq(
                        &format!("max {ctx}"),
                        &v.max(axes, keepdim)?,
                        &od,
                        &want_max,
                    )?;
                    assert_tensor_eq(
                        &format!("min {ctx}"),
                        &v.min(axes, keepdim)?,
                        &od,
                        &want_min,
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// Reference argmax/argmin along `dim`: index of the first extremum.
fn reference_arg(vals: &[f64], dims: &[usize], dim: usize, max: bool) -> Vec<f64> {
    let mut od = dims.to_vec();
    od[dim] = 1;
    let n: usize = od.iter().product();
    (0..n)
        .map(|o| {
            let mut idx = unravel(o, &od);
            let mut best = 0;
            for j in 0..dims[dim] {
                idx[dim] = j;
                let x = vals[ravel(&idx, dims)];
                idx[dim] = best;
                let b = vals[ravel(&idx, dims)];
                if (max && x > b) || (!max && x < b) {
                    best = j;
                }
            }
            best as f64
        })
        .collect()
}

/// `argmax`/`argmin` return the *first* index of ties, as i64, in every dtype and layout.
pub fn argmax_argmin<B: Backend>(dev: &B::Device) -> Result<()> {
    let tied = [
        1.0, 3.0, 3.0, 0.0, 2.0, 2.0, 1.0, 2.0, -1.0, -1.0, -1.0, -1.0,
    ];
    for dt in ALL_DTYPES {
        let x = tensor::<B>(&tied, [3, 4], dt, dev)?;
        let am = x.argmax(1, false)?;
        assert_eq!(am.dtype(), DType::I64);
        assert_tensor_eq(&format!("argmax ties ({dt})"), &am, &[3], &[1.0, 0.0, 0.0])?;
        assert_tensor_eq(
            &format!("argmin ties ({dt})"),
            &x.argmin(1, false)?,
            &[3],
            &[3.0, 2.0, 0.0],
        )?;
        assert_tensor_eq(
            &format!("argmax dim 0 ({dt})"),
            &x.argmax(0, true)?,
            &[1, 4],
            &[1.0, 0.0, 0.0, 1.0],
        )?;
        assert_tensor_eq(
            &format!("argmin dim 0 ({dt})"),
            &x.argmin(0, true)?,
            &[1, 4],
            &[2.0, 2.0, 2.0, 2.0],
        )?;
        assert_tensor_eq(
            &format!("argmax of transposed ({dt})"),
            &x.t()?.argmax(0, true)?,
            &[1, 3],
            &[1.0, 0.0, 0.0],
        )?;
        assert_tensor_eq(
            &format!("argmin of transposed ({dt})"),
            &x.t()?.argmin(0, false)?,
            &[3],
            &[3.0, 2.0, 0.0],
        )?;
        // Random data with ties (rounded to halves), every dim of every layout.
        let raw: Vec<f64> = uniform_vec(60, 3, -2.0, 2.0)
            .iter()
            .map(|v| (v * 2.0).round() / 2.0)
            .collect();
        let y = tensor::<B>(&raw, [3, 4, 5], dt, dev)?;
        let yv = round_to(dt, &raw);
        let layouts: Vec<(Tensor<B>, Vec<usize>, Vec<f64>)> = vec![
            (y.clone(), vec![3, 4, 5], yv.clone()),
            (
                y.permute(&[1, 2, 0])?,
                vec![4, 5, 3],
                reference_permute(&yv, &[3, 4, 5], &[1, 2, 0]),
            ),
            (
                y.narrow(1, 1, 3)?,
                vec![3, 3, 5],
                reference_narrow(&yv, &[3, 4, 5], 1, 1, 3),
            ),
        ];
        for (v, dims, vals) in layouts {
            for dim in 0..3 {
                let mut kd = dims.clone();
                kd[dim] = 1;
                let ctx = format!("({dt}, dims {dims:?}, dim {dim})");
                assert_tensor_eq(
                    &format!("argmax {ctx}"),
                    &v.argmax(dim, true)?,
                    &kd,
                    &reference_arg(&vals, &dims, dim, true),
                )?;
                assert_tensor_eq(
                    &format!("argmin {ctx}"),
                    &v.argmin(dim, true)?,
                    &kd,
                    &reference_arg(&vals, &dims, dim, false),
                )?;
            }
        }
    }
    Ok(())
}

/// `norm_l1` and `norm_l2` over axis sets on strided views.
pub fn norms<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in FLOAT_DTYPES {
        let rtol = tolerance(dt).0;
        for (what, v, dims, vals) in views::<B>(dt, 4, dev)? {
            for axes in [&[0usize][..], &[2], &[0, 1], &[0, 1, 2]] {
                let (kd, l1) = reference_reduce(&vals, &dims, axes, 0.0, |a, x| a + x.abs());
                let (_, sq) = reference_reduce(&vals, &dims, axes, 0.0, |a, x| a + x * x);
                let l2: Vec<f64> = sq.iter().map(|s| s.sqrt()).collect();
                for keepdim in [true, false] {
                    let ctx = format!("{dt} {what} axes {axes:?} keepdim {keepdim}");
                    let od = out_dims(&kd, axes, keepdim);
                    // Both are sums of non-negative terms: relative error ≤ n·u.
                    assert_tensor(
                        &format!("norm_l1 {ctx}"),
                        &v.norm_l1(axes, keepdim)?,
                        &od,
                        &l1,
                        rtol,
                        0.0,
                    )?;
                    assert_tensor(
                        &format!("norm_l2 {ctx}"),
                        &v.norm_l2(axes, keepdim)?,
                        &od,
                        &l2,
                        rtol,
                        0.0,
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// `sum_all`/`mean_all` return rank-0 tensors.
pub fn sum_all_mean_all<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in FLOAT_DTYPES {
        let (x, xv) = random_tensor::<B>(&[4, 6], dt, 5, -1.0, 2.0, dev)?;
        let s = x.t()?.sum_all()?;
        assert_eq!(s.rank(), 0);
        let want: f64 = xv.iter().sum();
        let abs: f64 = xv.iter().map(|v| v.abs()).sum();
        let rtol = tolerance(dt).0;
        assert_sum_close("sum_all", &s.to_vec_f64()?, &[want], &[abs], rtol);
        let m = x.mean_all()?;
        assert_eq!(m.rank(), 0);
        assert_sum_close(
            "mean_all",
            &m.to_vec_f64()?,
            &[want / 24.0],
            &[abs / 24.0],
            rtol,
        );
        let sc = tensor::<B>(&[2.5], (), dt, dev)?;
        assert_tensor_eq("sum_all of a scalar", &sc.sum_all()?, &[], &[2.5])?;
    }
    Ok(())
}

/// Sums are deterministic: the same input gives the same bits, for large reductions too
/// (a backend that parallelises must not let the thread schedule change the order).
pub fn sum_deterministic<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in FLOAT_DTYPES {
        let n = 1 << 20;
        let x = Tensor::<B>::rand_uniform([n], -1.0, 2.0, dt, 11, dev)?;
        let a = x.sum_all()?.to_vec_f64()?;
        for _ in 0..3 {
            assert_bits_eq(
                &format!("sum_all of 2^20 ({dt})"),
                &x.sum_all()?.to_vec_f64()?,
                &a,
            );
        }
        // Accuracy: within the worst-case bound n·u·Σ|x| of the f64 sum.
        let xv = x.to_vec_f64()?;
        let want: f64 = xv.iter().sum();
        let abs: f64 = xv.iter().map(|v| v.abs()).sum();
        let u = if dt == DType::F32 {
            f32::EPSILON as f64 / 2.0
        } else {
            f64::EPSILON / 2.0
        };
        assert!(
            (a[0] - want).abs() <= n as f64 * u * abs,
            "sum_all of 2^20 ({dt}): {} vs {want}",
            a[0]
        );
        let m = x.reshape([1024, 1024])?;
        for (what, v) in [
            ("rows", m.clone()),
            ("transposed", m.t()?),
            ("narrowed", m.narrow(1, 3, 1000)?),
        ] {
            for axes in [&[0usize][..], &[1], &[0, 1]] {
                let r1 = v.sum(axes, false)?.to_vec_f64()?;
                let r2 = v.sum(axes, false)?.to_vec_f64()?;
                assert_bits_eq(&format!("sum {what} {axes:?} ({dt})"), &r2, &r1);
            }
        }
    }
    Ok(())
}

/// Integer reductions are exact (no detour through floating point).
pub fn reduce_integer<B: Backend>(dev: &B::Device) -> Result<()> {
    let x = Tensor::<B>::from_vec(vec![1i64 << 53, 1, -7, 3, 5, i64::MIN / 4], [2, 3], dev)?;
    let s = x.sum(&[1], false)?;
    assert_eq!(s.dtype(), DType::I64);
    assert_eq!(
        s.to_vec::<i64>()?,
        vec![(1i64 << 53) + 1 - 7, 3 + 5 + i64::MIN / 4]
    );
    assert_eq!(
        x.sum(&[0], false)?.to_vec::<i64>()?,
        vec![(1i64 << 53) + 3, 6, -7 + i64::MIN / 4]
    );
    assert_eq!(x.max(&[0, 1], false)?.to_vec::<i64>()?, vec![1i64 << 53]);
    assert_eq!(x.min(&[1], true)?.to_vec::<i64>()?, vec![-7, i64::MIN / 4]);
    assert_eq!(
        x.t()?.max(&[0], false)?.to_vec::<i64>()?,
        vec![1i64 << 53, 5]
    );
    Ok(())
}
