//! `index_select` / `index_add` against references on all view kinds, with duplicate indices and
//! strided index vectors; range errors. Data are multiples of 1/64, so sums with duplicates are
//! exact and every comparison is exact.

mod common;

use common::*;
use vars_core::{Backend, DType, Error, Layout};

/// Reference `index_select` on logical data of shape `dims`.
fn ref_select(x: &[f64], dims: &[usize], dim: usize, idx: &[usize]) -> Vec<f64> {
    let outer: usize = dims[..dim].iter().product();
    let inner: usize = dims[dim + 1..].iter().product();
    let mut out = Vec::new();
    for o in 0..outer {
        for &i in idx {
            let base = (o * dims[dim] + i) * inner;
            out.extend_from_slice(&x[base..base + inner]);
        }
    }
    out
}

/// Reference `index_add`: output dim `dim` has `size` entries.
fn ref_add(x: &[f64], dims: &[usize], dim: usize, idx: &[usize], size: usize) -> Vec<f64> {
    let outer: usize = dims[..dim].iter().product();
    let inner: usize = dims[dim + 1..].iter().product();
    let mut out = vec![0.0; outer * size * inner];
    for o in 0..outer {
        for (k, &i) in idx.iter().enumerate() {
            for j in 0..inner {
                out[(o * size + i) * inner + j] += x[(o * dims[dim] + k) * inner + j];
            }
        }
    }
    out
}

/// An index vector stored with stride 2 and offset 1 (every other element of a bigger buffer).
fn strided_indices(idx: &[usize]) -> (vars_cpu::CpuStorage, Layout) {
    let mut buf = vec![-99.0; 2 * idx.len() + 1];
    for (k, &i) in idx.iter().enumerate() {
        buf[1 + 2 * k] = i as f64;
    }
    let l = Layout::contiguous([idx.len(), 2]).narrow(1, 1, 1).unwrap();
    let l = l.reshape(&[idx.len()].into()).unwrap();
    assert_eq!(l.offset(), 1);
    (storage(&buf, DType::I64), l)
}

#[test]
fn index_select_and_add_on_all_views() {
    for dims in [&[5][..], &[4, 3], &[2, 5, 3], &[3, 1, 4, 2]] {
        for view in views(dims, 401) {
            for dim in 0..dims.len() {
                let size = dims[dim];
                // Duplicates, reordering, and a repeated last index.
                let idx: Vec<usize> = [size - 1, 0, size / 2, size - 1, 0].into_iter().collect();
                let logical = view.logical();
                for dtype in [DType::F32, DType::F64, DType::I64] {
                    let scale = if dtype == DType::I64 { 64.0 } else { 1.0 };
                    let buf: Vec<f64> = view.buf.iter().map(|v| v * scale).collect();
                    let s = storage(&buf, dtype);
                    let lx: Vec<f64> = logical.iter().map(|v| v * scale).collect();
                    let (is, il) = strided_indices(&idx);
                    let got = B::index_select(&s, &view.layout, dim, &is, &il).unwrap();
                    let what = format!("select {dtype} {} {dims:?} dim {dim}", view.kind);
                    assert_close(&values(&got), &ref_select(&lx, dims, dim, &idx), 0.0, &what);

                    // index_add: the source has `idx.len()` entries along `dim`.
                    let mut sdims = dims.to_vec();
                    sdims[dim] = idx.len();
                    for src in views(&sdims, 501) {
                        let sbuf: Vec<f64> = src.buf.iter().map(|v| v * scale).collect();
                        let ss = storage(&sbuf, dtype);
                        let target = size + 2;
                        let got = B::index_add(&ss, &src.layout, dim, &is, &il, target).unwrap();
                        let sl = ref_gather(&sbuf, &src.layout);
                        let want = ref_add(&sl, &sdims, dim, &idx, target);
                        let what = format!("add {dtype} {} {sdims:?} dim {dim}", src.kind);
                        assert_close(&values(&got), &want, 0.0, &what);
                    }
                }
            }
        }
    }
}

#[test]
fn index_add_large_is_deterministic_and_correct() {
    // Many duplicates into few rows, big enough for the parallel path.
    let (k, inner, size) = (4000, 24, 7);
    let idx: Vec<usize> = (0..k).map(|i| (i * 5 + i / 3) % size).collect();
    let x = data(k * inner, 9);
    let l = Layout::contiguous([k, inner]);
    let is = storage(
        &idx.iter().map(|&i| i as f64).collect::<Vec<_>>(),
        DType::I64,
    );
    let il = Layout::contiguous([k]);
    let want = ref_add(&x, &[k, inner], 0, &idx, size);
    for dtype in [DType::F32, DType::F64] {
        let s = storage(&x, dtype);
        let run = |t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| values(&B::index_add(&s, &l, 0, &is, &il, size).unwrap()))
        };
        let one = run(1);
        assert_eq!(one, run(2), "{dtype}: thread count changed the result");
        assert_close(&one, &want, 0.0, "large index_add");
    }
}

#[test]
fn index_errors() {
    let s = storage(&[1.0; 6], DType::F32);
    let l = Layout::contiguous([2, 3]);
    let il = Layout::contiguous([2]);
    for bad in [3.0, -1.0] {
        let i = storage(&[0.0, bad], DType::I64);
        let err = B::index_select(&s, &l, 1, &i, &il).unwrap_err();
        assert!(
            matches!(
                err,
                Error::IndexOutOfRange {
                    op: "index_select",
                    dim: 1,
                    size: 3,
                    ..
                }
            ),
            "{err}"
        );
        let err = B::index_add(&s, &Layout::contiguous([3, 2]), 1, &i, &il, 3).unwrap_err();
        assert!(
            matches!(
                err,
                Error::IndexOutOfRange {
                    op: "index_add",
                    ..
                }
            ),
            "{err}"
        );
    }
    let f = storage(&[0.0, 1.0], DType::F32);
    let err = B::index_select(&s, &l, 1, &f, &il).unwrap_err();
    assert!(matches!(err, Error::UnsupportedDType { .. }), "{err}");
    let i = storage(&[0.0, 1.0], DType::I64);
    let err = B::index_select(&s, &l, 2, &i, &il).unwrap_err();
    assert!(matches!(err, Error::DimOutOfRange { .. }), "{err}");
    let err = B::index_add(&s, &l, 1, &i, &il, 4).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ShapeMismatch {
                op: "index_add",
                ..
            }
        ),
        "{err}"
    );
}
