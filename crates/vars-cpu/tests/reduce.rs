//! Reductions against an f64 reference on all view kinds and every axis subset; NaN and tie rules;
//! bit-identical results across rayon thread counts.
//!
//! Tolerances: the test data are multiples of 1/64 in [-2, 2), so every partial sum of the small
//! cases is exact in f32 and f64 whatever the order: those comparisons are exact (tolerance 0).
//! The large random case allows 1e-6 (f32) / 1e-12 (f64) relative to the sum of |x|.

mod common;

use common::*;
use vars_core::{Backend, DType, Error, Layout, ReduceOp};

/// Reference reduction of the logical elements `x` of shape `dims`.
fn ref_reduce(x: &[f64], dims: &[usize], axes: &[usize], op: ReduceOp) -> Vec<f64> {
    let out_dims: Vec<usize> = dims
        .iter()
        .enumerate()
        .map(|(d, &s)| if axes.contains(&d) { 1 } else { s })
        .collect();
    let out_n: usize = out_dims.iter().product();
    let mut acc: Vec<Option<(f64, usize)>> = vec![None; out_n];
    let mut counter = vec![0usize; out_n];
    for (i, &v) in x.iter().enumerate() {
        // Unravel i, zero the reduced axes, ravel into the output.
        let mut rem = i;
        let mut idx = vec![0; dims.len()];
        for d in (0..dims.len()).rev() {
            idx[d] = rem % dims[d];
            rem /= dims[d];
        }
        let mut o = 0;
        for d in 0..dims.len() {
            o = o * out_dims[d] + if axes.contains(&d) { 0 } else { idx[d] };
        }
        let k = counter[o];
        counter[o] += 1;
        acc[o] = Some(match (acc[o], op) {
            (None, _) => (v, 0),
            (Some((a, _)), ReduceOp::Sum) => (a + v, 0),
            (Some((a, _)), ReduceOp::Max) => (
                if a.is_nan() || v.is_nan() {
                    f64::NAN
                } else {
                    a.max(v)
                },
                0,
            ),
            (Some((a, _)), ReduceOp::Min) => (
                if a.is_nan() || v.is_nan() {
                    f64::NAN
                } else {
                    a.min(v)
                },
                0,
            ),
            (Some((a, ai)), ReduceOp::ArgMax) => {
                if !a.is_nan() && (v.is_nan() || v > a) {
                    (v, k)
                } else {
                    (a, ai)
                }
            }
            (Some((a, ai)), ReduceOp::ArgMin) => {
                if !a.is_nan() && (v.is_nan() || v < a) {
                    (v, k)
                } else {
                    (a, ai)
                }
            }
        });
    }
    acc.into_iter()
        .map(|a| {
            let (v, i) = a.unwrap_or((0.0, 0));
            if matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) {
                i as f64
            } else {
                v
            }
        })
        .collect()
}

fn subsets(rank: usize) -> Vec<Vec<usize>> {
    (0..1usize << rank)
        .map(|mask| (0..rank).filter(|d| mask & (1 << d) != 0).collect())
        .collect()
}

#[test]
fn reductions_on_all_views_and_axes() {
    for dims in [&[7][..], &[3, 5], &[2, 3, 4], &[4, 1, 3, 2], &[9, 33]] {
        for view in views(dims, 101) {
            for dtype in [DType::F32, DType::F64, DType::I64] {
                let scale = if dtype == DType::I64 { 64.0 } else { 1.0 };
                let buf: Vec<f64> = view.buf.iter().map(|v| v * scale).collect();
                let s = storage(&buf, dtype);
                let logical = ref_gather(&buf, &view.layout);
                for axes in subsets(dims.len()) {
                    for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min] {
                        let got = B::reduce(op, &s, &view.layout, &axes).unwrap();
                        assert_eq!(got.dtype(), dtype);
                        let want = ref_reduce(&logical, dims, &axes, op);
                        let what = format!("{op:?} {dtype} {} {dims:?} axes {axes:?}", view.kind);
                        assert_close(&values(&got), &want, 0.0, &what);
                    }
                }
                for axis in 0..dims.len() {
                    for op in [ReduceOp::ArgMax, ReduceOp::ArgMin] {
                        let got = B::reduce(op, &s, &view.layout, &[axis]).unwrap();
                        assert_eq!(got.dtype(), DType::I64);
                        let want = ref_reduce(&logical, dims, &[axis], op);
                        let what = format!("{op:?} {dtype} {} {dims:?} axis {axis}", view.kind);
                        assert_close(&values(&got), &want, 0.0, &what);
                    }
                }
            }
        }
    }
}

#[test]
fn arg_reductions_take_the_first_extremum() {
    let l = Layout::contiguous([2, 5]);
    let x = storage(
        &[1.0, 3.0, 3.0, 2.0, 3.0, /**/ 0.0, -1.0, 5.0, -1.0, 5.0],
        DType::F32,
    );
    let amax = B::reduce(ReduceOp::ArgMax, &x, &l, &[1]).unwrap();
    assert_eq!(amax.as_i64().unwrap(), &[1, 2]);
    let amin = B::reduce(ReduceOp::ArgMin, &x, &l, &[1]).unwrap();
    assert_eq!(amin.as_i64().unwrap(), &[0, 1]);
    // Along the strided axis 0 of the transposed view.
    let t = l.permute(&[1, 0]).unwrap();
    let amax = B::reduce(ReduceOp::ArgMax, &x, &t, &[1]).unwrap();
    assert_eq!(amax.as_i64().unwrap(), &[0, 0, 1, 0, 1]);
    // NaN is the extremum and the first NaN wins; max/min propagate NaN.
    let n = storage(&[1.0, f64::NAN, 7.0, f64::NAN], DType::F64);
    let l = Layout::contiguous([4]);
    assert_eq!(
        B::reduce(ReduceOp::ArgMax, &n, &l, &[0])
            .unwrap()
            .as_i64()
            .unwrap(),
        &[1]
    );
    assert_eq!(
        B::reduce(ReduceOp::ArgMin, &n, &l, &[0])
            .unwrap()
            .as_i64()
            .unwrap(),
        &[1]
    );
    assert!(B::reduce(ReduceOp::Max, &n, &l, &[0])
        .unwrap()
        .as_f64()
        .unwrap()[0]
        .is_nan());
    assert!(B::reduce(ReduceOp::Min, &n, &l, &[0])
        .unwrap()
        .as_f64()
        .unwrap()[0]
        .is_nan());
    assert!(B::reduce(ReduceOp::Sum, &n, &l, &[0])
        .unwrap()
        .as_f64()
        .unwrap()[0]
        .is_nan());
}

#[test]
fn reduce_errors_name_the_op() {
    let s = storage(&[1.0; 6], DType::F32);
    let l = Layout::contiguous([2, 3]);
    let err = B::reduce(ReduceOp::Sum, &s, &l, &[2]).unwrap_err();
    assert!(
        matches!(err, Error::DimOutOfRange { .. }) && err.to_string().contains("sum"),
        "{err}"
    );
    let err = B::reduce(ReduceOp::Max, &s, &l, &[1, 0]).unwrap_err();
    assert!(err.to_string().contains("max"), "{err}");
    let err = B::reduce(ReduceOp::ArgMax, &s, &l, &[0, 1]).unwrap_err();
    assert!(err.to_string().contains("argmax"), "{err}");
    let e = storage(&[], DType::F32);
    let el = Layout::contiguous([2, 0]);
    let err = B::reduce(ReduceOp::Min, &e, &el, &[1]).unwrap_err();
    assert!(err.to_string().contains("min"), "{err}");
    // An empty sum is zero.
    let z = B::reduce(ReduceOp::Sum, &e, &el, &[1]).unwrap();
    assert_eq!(z.as_f32().unwrap(), &[0.0, 0.0]);
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

#[test]
fn reductions_are_bit_identical_across_thread_counts() {
    // Random (not 1/64-exact) data so that the summation order matters.
    let (r, c) = (301, 517);
    let x: Vec<f64> = (0..r * c)
        .map(|i| vars_core::rng::normal(5, i as u64) * 3.0)
        .collect();
    let cases = [
        (Layout::contiguous([r, c]), vec![1]),
        (Layout::contiguous([r, c]), vec![0]),
        (
            Layout::contiguous([c, r]).permute(&[1, 0]).unwrap(),
            vec![1],
        ),
        (Layout::contiguous([r, c]), vec![0, 1]),
        (Layout::contiguous([7, 43, 517]), vec![0, 2]),
    ];
    for dtype in [DType::F32, DType::F64] {
        let s = storage(&x, dtype);
        for (l, axes) in &cases {
            for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::ArgMin] {
                if matches!(op, ReduceOp::ArgMin) && axes.len() != 1 {
                    continue;
                }
                let run = |t| pool(t).install(|| values(&B::reduce(op, &s, l, axes).unwrap()));
                let (one, two, three) = (run(1), run(2), run(3));
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&one),
                    bits(&two),
                    "{op:?} {dtype} {axes:?} 1 vs 2 threads"
                );
                assert_eq!(
                    bits(&one),
                    bits(&three),
                    "{op:?} {dtype} {axes:?} 1 vs 3 threads"
                );
                if op == ReduceOp::Sum {
                    let logical = ref_gather(&x, l);
                    let want = ref_reduce(&logical, l.dims(), axes, op);
                    let abs: Vec<f64> = logical.iter().map(|v| v.abs()).collect();
                    let scale = ref_reduce(&abs, l.dims(), axes, op);
                    let tol = if dtype == DType::F32 { 1e-6 } else { 1e-12 };
                    for ((g, w), s) in one.iter().zip(&want).zip(&scale) {
                        assert!((g - w).abs() <= tol * s, "{dtype} {axes:?}: {g} vs {w}");
                    }
                }
            }
        }
    }
}
