//! The fast paths of `unfold2d`/`fold2d` (per-tap column ranges, slice copies, strided
//! gathers) and of the GEMM seam's `Direct` kernel, against naive f64 references, on contiguous
//! and strided (permuted, narrowed, broadcast) inputs, and bit-identical across thread counts.

mod common;

use common::*;
use vars_core::{Backend, DType, Layout, Window2d};

/// Naive im2col of logical `(n, c, h, w)` data, any window.
fn ref_unfold(x: &[f64], [n, c, h, w]: [usize; 4], win: Window2d, pad: f64) -> Vec<f64> {
    let (kh, kw) = win.kernel;
    let ho = (h + 2 * win.padding.0 - win.dilation.0 * (kh - 1) - 1) / win.stride.0 + 1;
    let wo = (w + 2 * win.padding.1 - win.dilation.1 * (kw - 1) - 1) / win.stride.1 + 1;
    let mut out = Vec::with_capacity(n * c * kh * kw * ho * wo);
    for ni in 0..n {
        for ci in 0..c {
            for i in 0..kh {
                for j in 0..kw {
                    for oy in 0..ho {
                        for ox in 0..wo {
                            let y = (oy * win.stride.0 + i * win.dilation.0) as isize
                                - win.padding.0 as isize;
                            let xx = (ox * win.stride.1 + j * win.dilation.1) as isize
                                - win.padding.1 as isize;
                            let inside = y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w;
                            out.push(if inside {
                                x[((ni * c + ci) * h + y as usize) * w + xx as usize]
                            } else {
                                pad
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

/// Naive col2im: the adjoint of `ref_unfold` with zero padding.
fn ref_fold(cols: &[f64], [n, c, h, w]: [usize; 4], win: Window2d) -> Vec<f64> {
    let (kh, kw) = win.kernel;
    let ho = (h + 2 * win.padding.0 - win.dilation.0 * (kh - 1) - 1) / win.stride.0 + 1;
    let wo = (w + 2 * win.padding.1 - win.dilation.1 * (kw - 1) - 1) / win.stride.1 + 1;
    let mut out = vec![0.0; n * c * h * w];
    let mut it = cols.iter();
    for ni in 0..n {
        for ci in 0..c {
            for i in 0..kh {
                for j in 0..kw {
                    for oy in 0..ho {
                        for ox in 0..wo {
                            let v = *it.next().unwrap();
                            let y = (oy * win.stride.0 + i * win.dilation.0) as isize
                                - win.padding.0 as isize;
                            let xx = (ox * win.stride.1 + j * win.dilation.1) as isize
                                - win.padding.1 as isize;
                            if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                                out[((ni * c + ci) * h + y as usize) * w + xx as usize] += v;
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

fn window(k: (usize, usize), s: (usize, usize), p: (usize, usize), d: (usize, usize)) -> Window2d {
    Window2d {
        kernel: k,
        stride: s,
        padding: p,
        dilation: d,
    }
}

/// Windows covering stride 1 and > 1, padding wider than some taps reach, dilation, a kernel
/// wider than the image plus padding allows for some taps, and non-square everything.
fn windows() -> Vec<Window2d> {
    vec![
        Window2d::square(3, 1, 1),
        Window2d::square(3, 2, 1),
        Window2d::square(7, 2, 2),
        Window2d::square(4, 4, 0),
        Window2d::square(1, 1, 0),
        Window2d::square(2, 3, 0),
        window((3, 2), (1, 2), (2, 1), (2, 3)),
        window((5, 5), (1, 1), (4, 4), (1, 1)),
    ]
}

fn out_hw(win: Window2d, h: usize, w: usize) -> (usize, usize) {
    win.output_size("test", &[1].into(), h, w).unwrap()
}

#[test]
fn unfold2d_matches_reference_on_all_views() {
    let dims = [2, 3, 9, 11];
    for win in windows() {
        for v in views(&dims, 11) {
            let want = ref_unfold(&v.logical(), dims, win, -7.5);
            for dtype in [DType::F32, DType::F64] {
                let got = B::unfold2d(&v.storage(dtype), &v.layout, win, -7.5).unwrap();
                let what = format!("unfold2d {dtype} {} {win:?}", v.kind);
                assert_close(&values(&got), &want, 0.0, &what);
            }
        }
    }
}

#[test]
fn unfold2d_pads_with_neg_infinity() {
    let dims = [1, 2, 5, 6];
    let win = Window2d::square(3, 2, 1);
    for v in views(&dims, 21) {
        let want = ref_unfold(&v.logical(), dims, win, f64::NEG_INFINITY);
        let got = B::unfold2d(&v.storage(DType::F32), &v.layout, win, f64::NEG_INFINITY).unwrap();
        assert_close(&values(&got), &want, 0.0, v.kind);
    }
}

#[test]
fn fold2d_matches_reference_on_all_views() {
    let (n, c, h, w) = (2, 3, 9, 11);
    for win in windows() {
        let (ho, wo) = out_hw(win, h, w);
        let kk = win.kernel.0 * win.kernel.1;
        let cdims = [n, c * kk, ho * wo];
        for v in views(&cdims, 31) {
            // Exact data (6 fractional bits, at most kk·… terms): the sums are exact.
            let want = ref_fold(&v.logical(), [n, c, h, w], win);
            for dtype in [DType::F32, DType::F64] {
                let got = B::fold2d(&v.storage(dtype), &v.layout, win, (h, w)).unwrap();
                let what = format!("fold2d {dtype} {} {win:?}", v.kind);
                assert_close(&values(&got), &want, 0.0, &what);
            }
        }
    }
}

#[test]
fn window_ops_are_bit_identical_across_thread_counts() {
    // Large enough for the parallel path (> 16k output elements), random inexact data.
    let (n, c, h, w) = (2, 24, 20, 20);
    let x: Vec<f64> = (0..n * c * h * w)
        .map(|i| vars_core::rng::normal(3, i as u64))
        .collect();
    let lx = Layout::contiguous([n, c, h, w]);
    for win in [Window2d::square(3, 1, 1), Window2d::square(3, 2, 1)] {
        let (ho, wo) = out_hw(win, h, w);
        let cols: Vec<f64> = (0..n * c * 9 * ho * wo)
            .map(|i| vars_core::rng::normal(4, i as u64))
            .collect();
        let lc = Layout::contiguous([n, c * 9, ho * wo]);
        for dtype in [DType::F32, DType::F64] {
            let (sx, sc) = (storage(&x, dtype), storage(&cols, dtype));
            let run = |t: usize| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap()
                    .install(|| {
                        (
                            values(&B::unfold2d(&sx, &lx, win, 0.0).unwrap()),
                            values(&B::fold2d(&sc, &lc, win, (h, w)).unwrap()),
                        )
                    })
            };
            let one = run(1);
            for t in [2, 3] {
                let other = run(t);
                let same =
                    |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same(&one.0, &other.0), "unfold {dtype} 1 vs {t} threads");
                assert!(same(&one.1, &other.1), "fold {dtype} 1 vs {t} threads");
            }
            // And fold is right to rounding (f32: relative 1e-6 of the few summed terms).
            let want = ref_fold(&cols, [n, c, h, w], win);
            let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
            assert_close(&one.1, &want, tol, "fold2d random");
        }
    }
}

#[test]
fn unfold2d_large_output_takes_the_huge_page_path() {
    // 1×1×1100×1100 with a 3×3 window: 10.9M f32 outputs (43 MB), above the 32 MiB at which the
    // output buffer is advised to use huge pages. Check the border rows/columns and a sample.
    let (h, w) = (1100, 1100);
    let x: Vec<f64> = (0..h * w).map(|i| (i % 1021) as f64).collect();
    let win = Window2d::square(3, 1, 1);
    let got = B::unfold2d(
        &storage(&x, DType::F32),
        &Layout::contiguous([1, 1, h, w]),
        win,
        -1.0,
    )
    .unwrap();
    let got = got.as_f32().unwrap();
    assert_eq!(got.len(), 9 * h * w);
    let at = |y: isize, xx: isize| {
        if y < 0 || xx < 0 || y >= h as isize || xx >= w as isize {
            -1.0
        } else {
            x[y as usize * w + xx as usize]
        }
    };
    for row in 0..9 {
        let (i, j) = (row / 3, row % 3);
        for oy in (0..h).step_by(97).chain([0, h - 1]) {
            for ox in (0..w).step_by(89).chain([0, 1, w - 2, w - 1]) {
                let want = at(oy as isize + i as isize - 1, ox as isize + j as isize - 1);
                assert_eq!(got[(row * h + oy) * w + ox] as f64, want, "{row} {oy} {ox}");
            }
        }
    }
}

/// Naive product of logical operands.
fn ref_matmul(a: &[f64], b: &[f64], batch: usize, m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; batch * m * n];
    for bi in 0..batch {
        for i in 0..m {
            for j in 0..n {
                c[(bi * m + i) * n + j] = (0..k)
                    .map(|p| a[(bi * m + i) * k + p] * b[(bi * k + p) * n + j])
                    .sum();
            }
        }
    }
    c
}

#[test]
fn direct_kernel_all_forms_through_the_seam() {
    use vars_cpu::{gemm_f32, gemm_f64, GemmKernel};
    // (m, k, n) including k < 4, k = 4j+1 (no tail), k mod 4 tails, k ≥ 8 with a dot tail.
    let shapes = [
        (1, 1, 1),
        (1, 9, 196),
        (2, 9, 49),
        (2, 5, 3),
        (3, 2, 7),
        (4, 13, 5),
        (2, 49, 9),
        (5, 17, 4),
    ];
    for (m, k, n) in shapes {
        let a = data(m * k, 41);
        let b = data(k * n, 42);
        let want = ref_matmul(&a, &b, 1, m, k, n);
        // (a strides, b strides, c strides) per form: rows; rows with transposed a; dot (b
        // column-major); generic (b column-major, a column-major, c column-major).
        let forms = [
            ("rows", (k, 1), (n, 1), (n, 1)),
            ("rows, a transposed", (1, m), (n, 1), (n, 1)),
            ("dot", (k, 1), (1, k), (n, 1)),
            ("generic", (1, m), (1, k), (1, m)),
        ];
        for (form, (rsa, csa), (rsb, csb), (rsc, csc)) in forms {
            // Store each operand in the layout its strides describe.
            let store = |v: &[f64], rows: usize, cols: usize, rs: usize, cs: usize| {
                let mut s = vec![f64::NAN; rows * cols];
                for r in 0..rows {
                    for c in 0..cols {
                        s[r * rs + c * cs] = v[r * cols + c];
                    }
                }
                s
            };
            let (sa, sb) = (store(&a, m, k, rsa, csa), store(&b, k, n, rsb, csb));
            let read_c = |c: &[f64]| -> Vec<f64> {
                (0..m * n)
                    .map(|e| c[(e / n) * rsc + (e % n) * csc])
                    .collect()
            };
            let mut c64 = vec![f64::NAN; m * n];
            gemm_f64(
                GemmKernel::Direct,
                m,
                k,
                n,
                &sa,
                rsa,
                csa,
                &sb,
                rsb,
                csb,
                &mut c64,
                rsc,
                csc,
            )
            .unwrap();
            assert_close(
                &read_c(&c64),
                &want,
                0.0,
                &format!("f64 {form} {m}×{k}×{n}"),
            );
            let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
            let mut c32 = vec![f32::NAN; m * n];
            gemm_f32(
                GemmKernel::Direct,
                m,
                k,
                n,
                &f(&sa),
                rsa,
                csa,
                &f(&sb),
                rsb,
                csb,
                &mut c32,
                rsc,
                csc,
            )
            .unwrap();
            let c32: Vec<f64> = c32.iter().map(|&v| v as f64).collect();
            assert_close(
                &read_c(&c32),
                &want,
                0.0,
                &format!("f32 {form} {m}×{k}×{n}"),
            );
        }
    }
}

#[test]
fn pick_kernel_takes_direct_only_for_small_narrow_products() {
    use vars_cpu::gemm::{pick_kernel, GemmKernel, DEFAULT_KERNEL};
    assert_eq!(pick_kernel(1, 9, 49, 1), GemmKernel::Direct);
    assert_eq!(pick_kernel(1, 9, 196, 1), DEFAULT_KERNEL);
    assert_eq!(pick_kernel(2, 9, 196, 1), GemmKernel::Direct);
    assert_eq!(pick_kernel(2, 9, 49, 49), DEFAULT_KERNEL);
    assert_eq!(pick_kernel(2, 9, 49, 1), GemmKernel::Direct);
    assert_eq!(pick_kernel(3, 9, 49, 1), DEFAULT_KERNEL);
    assert_eq!(pick_kernel(1, 196, 9, 196), DEFAULT_KERNEL);
    assert_eq!(pick_kernel(2, 768, 196, 1), DEFAULT_KERNEL);
}

#[test]
fn matmul_depthwise_shapes_all_layouts() {
    // Batched one- and two-row products with a broadcast left operand, as a grouped conv makes
    // them: (g, m, k) × (n, g, k, L), through every view of the right operand.
    for (m, k, l) in [(1, 9, 30), (2, 9, 12), (1, 4, 5)] {
        let (nb, g) = (3, 5);
        let a = data(g * m * k, 51);
        let la = Layout::contiguous([1, g, m, k])
            .broadcast_as(&[nb, g, m, k].into())
            .unwrap();
        let al = ref_gather(&a, &la);
        for bv in views(&[nb, g, k, l], 52) {
            let want = ref_matmul(&al, &bv.logical(), nb * g, m, k, l);
            for dtype in [DType::F32, DType::F64] {
                let got =
                    B::matmul(&storage(&a, dtype), &la, &bv.storage(dtype), &bv.layout).unwrap();
                let what = format!("{dtype} {m}×{k}×{l} {}", bv.kind);
                assert_close(&values(&got), &want, 0.0, &what);
            }
        }
    }
}

#[test]
fn matmul_many_tiny_products_bit_identical_across_thread_counts() {
    // 4000 products of 1×9 · 9×49 (above the parallel threshold, grouped into tasks), random
    // inexact data; and 2-row products whose rows could be split.
    for (batch, m, k, n) in [(4000, 1, 9, 49), (600, 2, 9, 49), (3, 2, 200, 3000)] {
        let a: Vec<f64> = (0..batch * m * k)
            .map(|i| vars_core::rng::normal(5, i as u64))
            .collect();
        let b: Vec<f64> = (0..batch * k * n)
            .map(|i| vars_core::rng::normal(6, i as u64))
            .collect();
        let (la, lb) = (
            Layout::contiguous([batch, m, k]),
            Layout::contiguous([batch, k, n]),
        );
        for dtype in [DType::F32, DType::F64] {
            let (sa, sb) = (storage(&a, dtype), storage(&b, dtype));
            let run = |t: usize| {
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
                    "{dtype} {batch}×{m}×{k}×{n}: 1 vs {t} threads differ"
                );
            }
            let want = ref_matmul(&a, &b, batch, m, k, n);
            let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
            for (g, w) in one.iter().zip(&want) {
                assert!((g - w).abs() <= tol * k as f64 * 4.0, "{dtype}: {g} vs {w}");
            }
        }
    }
}

#[test]
fn window_ops_on_stride_zero_inner_dims() {
    // unfold2d of an input broadcast along W (and H), fold2d of columns broadcast along L: the
    // innermost stride is 0, so a "run" repeats one element.
    let (n, c, h, w) = (2, 3, 7, 9);
    let small = data(n * c * h, 61);
    let lx = Layout::contiguous([n, c, h, 1])
        .broadcast_as(&[n, c, h, w].into())
        .unwrap();
    let xl = ref_gather(&small, &lx);
    for win in windows() {
        let want = ref_unfold(&xl, [n, c, h, w], win, 0.5);
        for dtype in [DType::F32, DType::F64] {
            let got = B::unfold2d(&storage(&small, dtype), &lx, win, 0.5).unwrap();
            assert_close(
                &values(&got),
                &want,
                0.0,
                &format!("unfold {dtype} {win:?}"),
            );
        }
        let (ho, wo) = out_hw(win, h, w);
        let kk = win.kernel.0 * win.kernel.1;
        let cs = data(n * c * kk, 62);
        let lc = Layout::contiguous([n, c * kk, 1])
            .broadcast_as(&[n, c * kk, ho * wo].into())
            .unwrap();
        let want = ref_fold(&ref_gather(&cs, &lc), [n, c, h, w], win);
        for dtype in [DType::F32, DType::F64] {
            let got = B::fold2d(&storage(&cs, dtype), &lc, win, (h, w)).unwrap();
            assert_close(&values(&got), &want, 0.0, &format!("fold {dtype} {win:?}"));
        }
    }
}
