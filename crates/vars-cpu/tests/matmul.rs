//! Batched matmul against a naive f64 triple loop, on contiguous, transposed, fully permuted,
//! offset and batch-broadcast (stride-0) operands; the GEMM seam directly; thread-count
//! independence.
//!
//! Tolerance: the operands are multiples of 1/64 in [-2, 2) and k ≤ 96, so every product and
//! partial sum is exact in f32 and in f64 (|sum| < 2¹⁰ with 12 fractional bits < 24 bits):
//! the results must match the reference *exactly*, whatever the kernel's summation order.

mod common;

use common::*;
use vars_core::{Backend, DType, Error, Layout};
use vars_cpu::{gemm_f32, gemm_f64, GemmKernel};

/// Naive `(…, m, k) × (…, k, n)` on logical (row-major) operands.
fn ref_matmul(a: &[f64], b: &[f64], batch: usize, m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; batch * m * n];
    for bi in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    s += a[bi * m * k + i * k + p] * b[bi * k * n + p * n + j];
                }
                c[bi * m * n + i * n + j] = s;
            }
        }
    }
    c
}

/// The `views` of `common` plus "transposed": the last two dims stored swapped.
fn operand_views(dims: &[usize], seed: u64) -> Vec<View> {
    let mut out = views(dims, seed);
    let r = dims.len();
    let mut stored = dims.to_vec();
    stored.swap(r - 2, r - 1);
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 2, r - 1);
    out.push(View {
        kind: "transposed",
        buf: data(dims.iter().product(), seed + 9),
        layout: Layout::contiguous(stored).permute(&perm).unwrap(),
    });
    out
}

fn check_case(batch_dims: &[usize], m: usize, k: usize, n: usize) {
    let mut ad = batch_dims.to_vec();
    ad.extend([m, k]);
    let mut bd = batch_dims.to_vec();
    bd.extend([k, n]);
    let batch: usize = batch_dims.iter().product();
    for a in operand_views(&ad, 201) {
        for b in operand_views(&bd, 301) {
            let want = ref_matmul(&a.logical(), &b.logical(), batch, m, k, n);
            for dtype in [DType::F32, DType::F64] {
                let got =
                    B::matmul(&a.storage(dtype), &a.layout, &b.storage(dtype), &b.layout).unwrap();
                assert_eq!(got.dtype(), dtype);
                let what = format!("{dtype} {batch_dims:?}×{m}×{k}×{n} {}·{}", a.kind, b.kind);
                assert_close(&values(&got), &want, 0.0, &what);
            }
        }
    }
}

#[test]
fn matmul_small_shapes_all_layouts() {
    check_case(&[], 3, 4, 5);
    check_case(&[], 1, 7, 1);
    check_case(&[2], 3, 2, 4);
    check_case(&[2, 3], 5, 3, 2);
    check_case(&[3], 4, 1, 6);
}

#[test]
fn matmul_parallel_shapes_all_layouts() {
    // Above the parallel threshold: row blocks and batches go to different rayon tasks.
    check_case(&[3], 96, 64, 80);
    check_case(&[], 200, 96, 60);
}

#[test]
fn matmul_degenerate_sizes() {
    // k = 0 gives zeros; m or n = 0 gives an empty output.
    let a = storage(&[], DType::F32);
    let z = B::matmul(
        &a,
        &Layout::contiguous([2, 0]),
        &a,
        &Layout::contiguous([0, 3]),
    )
    .unwrap();
    assert_eq!(z.as_f32().unwrap(), &[0.0; 6]);
    let b = storage(&[1.0; 6], DType::F32);
    let e = B::matmul(
        &a,
        &Layout::contiguous([0, 2]),
        &b,
        &Layout::contiguous([2, 3]),
    )
    .unwrap();
    assert!(e.is_empty());
}

#[test]
fn matmul_errors_name_the_op() {
    let a = storage(&[1.0; 6], DType::F32);
    let l23 = Layout::contiguous([2, 3]);
    let err = B::matmul(&a, &l23, &a, &l23).unwrap_err();
    assert!(
        matches!(err, Error::ShapeMismatch { .. }) && err.to_string().contains("matmul"),
        "{err}"
    );
    let err = B::matmul(&a, &Layout::contiguous([6]), &a, &Layout::contiguous([6])).unwrap_err();
    assert!(err.to_string().contains("matmul"), "{err}");
    let err = B::matmul(
        &a,
        &Layout::contiguous([1, 2, 3]),
        &a,
        &Layout::contiguous([2, 3, 1]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("batch"), "{err}");
    let i = storage(&[1.0; 6], DType::I64);
    let err = B::matmul(&i, &l23, &i, &Layout::contiguous([3, 2])).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedDType { op: "matmul", .. }),
        "{err}"
    );
    let d = storage(&[1.0; 6], DType::F64);
    let err = B::matmul(&a, &l23, &d, &Layout::contiguous([3, 2])).unwrap_err();
    assert!(matches!(err, Error::DTypeMismatch { .. }), "{err}");
}

#[test]
fn matmul_is_bit_identical_across_thread_counts() {
    // Random data (inexact products) through the parallel path.
    let (batch, m, k, n) = (2, 150, 77, 130);
    let a: Vec<f64> = (0..batch * m * k)
        .map(|i| vars_core::rng::normal(1, i as u64))
        .collect();
    let b: Vec<f64> = (0..k * n)
        .map(|i| vars_core::rng::normal(2, i as u64))
        .collect();
    let la = Layout::contiguous([batch, m, k]);
    // rhs: one transposed matrix broadcast over the batch.
    let lb = Layout::contiguous([1, n, k])
        .permute(&[0, 2, 1])
        .unwrap()
        .broadcast_as(&[batch, k, n].into())
        .unwrap();
    for dtype in [DType::F32, DType::F64] {
        let (sa, sb) = (storage(&a, dtype), storage(&b, dtype));
        let run = |t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| values(&B::matmul(&sa, &la, &sb, &lb).unwrap()))
        };
        let one = run(1);
        for t in [2, 3, 5] {
            let other = run(t);
            assert!(
                one.iter()
                    .zip(&other)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{dtype}: 1 vs {t} threads differ"
            );
        }
        // And it is the right product (f32: 1e-5 of Σ|a||b|).
        let bl = ref_gather(&b, &lb);
        let want = ref_matmul(&a, &bl, batch, m, k, n);
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
        for (g, w) in one.iter().zip(&want) {
            assert!((g - w).abs() <= tol * k as f64 * 4.0, "{dtype}: {g} vs {w}");
        }
    }
}

#[test]
fn gemm_seam_with_arbitrary_strides() {
    let (m, k, n) = (5, 4, 3);
    let a = data(m * k * 2, 1);
    let b = data(k * n + 3, 2);
    for &kernel in GemmKernel::ALL {
        // a: row-major with row stride 2k (every other row); b: column-major at offset 3;
        // c: column-major.
        let a_at = |i: usize, p: usize| a[i * 2 * k + p];
        let b_at = |p: usize, j: usize| b[3 + j * k + p];
        let mut want = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                want[j * m + i] = (0..k).map(|p| a_at(i, p) * b_at(p, j)).sum();
            }
        }
        let mut c64 = vec![f64::NAN; m * n];
        gemm_f64(kernel, m, k, n, &a, 2 * k, 1, &b[3..], 1, k, &mut c64, 1, m).unwrap();
        assert_eq!(c64, want, "{kernel:?} f64");
        let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
        let b32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
        let mut c32 = vec![f32::NAN; m * n];
        gemm_f32(
            kernel,
            m,
            k,
            n,
            &a32,
            2 * k,
            1,
            &b32[3..],
            1,
            k,
            &mut c32,
            1,
            m,
        )
        .unwrap();
        let c32: Vec<f64> = c32.iter().map(|&v| v as f64).collect();
        assert_eq!(c32, want, "{kernel:?} f32");
        // k = 0 overwrites c with zeros.
        let mut z = vec![f32::NAN; 4];
        gemm_f32(kernel, 2, 0, 2, &[], 0, 0, &[], 0, 0, &mut z, 2, 1).unwrap();
        assert_eq!(z, vec![0.0; 4]);
        // Out-of-bounds operands and aliasing outputs are errors, not panics.
        let mut c = vec![0.0f32; 6];
        let err = gemm_f32(kernel, 2, 3, 3, &a32[..5], 3, 1, &b32, 3, 1, &mut c, 3, 1).unwrap_err();
        assert!(err.to_string().contains("gemm"), "{err}");
        let err = gemm_f32(kernel, 2, 3, 3, &a32, 3, 1, &b32, 3, 1, &mut c, 0, 1).unwrap_err();
        assert!(err.to_string().contains("alias"), "{err}");
    }
}
