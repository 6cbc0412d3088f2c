//! `where_cond`, `reduce`, `index_select`, `index_add`, `unfold2d` and `fold2d` of the CUDA backend
//! against the CPU backend (`vars_cpu::Cpu` through the `vars_core::Backend` trait), on random
//! shapes, on contiguous / permuted / narrowed (offset) / broadcast views, for every dtype, with
//! NaN, tie and signed-zero cases, and for the error cases.
//!
//! Expected agreement (see `src/reduce.rs`, `src/index.rs`, `src/window.rs`):
//! - bit-identical: `where_cond`, `index_select`, `index_add` (same additions in the same order),
//!   `unfold2d`, `fold2d` (same order), max/min/argmax/argmin (first NaN, first extremum, signed
//!   zeros), i64 sums (wrapping);
//! - float sums differ by the summation order only: f64 `|gpu − cpu| ≤ n·ε₆₄·Σ|x|`, f32 (both
//!   accumulate in f64 and round once) `|gpu − cpu| ≤ ε₃₂·|cpu| + n·ε₆₄·Σ|x|`, with `n` the number
//!   of reduced elements and `Σ|x|` per output;
//! - errors: the same `vars_core::Error` (compared through their messages).
//!
//! Every test skips with a printed reason when no CUDA device can be opened, unless
//! `VARS_REQUIRE_GPU=1`, which turns a missing device into a failure.

use proptest::prelude::*;
use vars_core::{Backend, DType, HostData, Layout, ReduceOp, Shape, UnaryOp, Window2d};
use vars_cpu::{Cpu, CpuDevice, CpuStorage};
use vars_cuda::{CudaDevice, CudaError, CudaStorage};

use super::device;

// ---- data, views, comparisons ------------------------------------------------------------------

const DTYPES: [DType; 3] = [DType::F32, DType::F64, DType::I64];

/// How test data is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Values {
    /// Uniform in (-4, 4) (i64: -1000..1000).
    Random,
    /// Multiples of 0.5 in [-2, 2] with ±0 (i64: -3..3): many ties and signed zeros.
    Ties,
    /// Like `Ties`, with about 1 in 7 elements NaN (i64: like `Ties`).
    Nans,
}

fn lcg(s: &mut u64) -> u64 {
    *s = s
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *s >> 11
}

fn values(n: usize, seed: u64, kind: Values) -> Vec<f64> {
    let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            let u = lcg(&mut s);
            match kind {
                Values::Random => (u as f64 / (1u64 << 53) as f64) * 8.0 - 4.0,
                Values::Ties | Values::Nans => {
                    if kind == Values::Nans && u % 7 == 0 {
                        return f64::NAN;
                    }
                    let q = ((u >> 3) % 9) as f64 * 0.5 - 2.0;
                    if q == 0.0 && (u >> 8) % 2 == 1 {
                        -0.0
                    } else {
                        q
                    }
                }
            }
        })
        .collect()
}

fn host_data(v: &[f64], dtype: DType) -> HostData {
    match dtype {
        DType::F32 => HostData::F32(v.iter().map(|&x| x as f32).collect()),
        DType::F64 => HostData::F64(v.to_vec()),
        _ => HostData::I64(
            v.iter()
                .map(|&x| if x.is_nan() { 7 } else { (x * 250.0) as i64 })
                .collect(),
        ),
    }
}

fn data(n: usize, seed: u64, kind: Values, dtype: DType) -> HostData {
    host_data(&values(n, seed, kind), dtype)
}

/// The same host buffer on both backends.
fn upload(dev: &CudaDevice, h: &HostData) -> (CpuStorage, CudaStorage) {
    (
        Cpu::from_host(&CpuDevice, h.clone()).unwrap(),
        dev.from_host(h).unwrap(),
    )
}

fn contiguous(dims: &[usize]) -> Layout {
    Layout::contiguous(Shape::new(dims.to_vec()))
}

/// Views of logical shape `dims`: `(name, layout, buffer length)`: contiguous, permuted (stored in
/// reversed dim order), narrowed (offset, padded strides), broadcast (first non-unit dim stride 0).
fn views(dims: &[usize]) -> Vec<(&'static str, Layout, usize)> {
    let n: usize = dims.iter().product();
    let mut v = vec![("contiguous", contiguous(dims), n)];
    let rank = dims.len();
    if rank >= 2 {
        let rev: Vec<usize> = dims.iter().rev().copied().collect();
        let perm: Vec<usize> = (0..rank).rev().collect();
        v.push(("permuted", contiguous(&rev).permute(&perm).unwrap(), n));
    }
    let big: Vec<usize> = dims.iter().map(|&d| d + 1).collect();
    let mut narrowed = contiguous(&big);
    for (d, &size) in dims.iter().enumerate() {
        narrowed = narrowed.narrow(d, 1, size).unwrap();
    }
    v.push(("narrowed", narrowed, big.iter().product()));
    if let Some(d) = dims.iter().position(|&s| s > 1) {
        let mut small = dims.to_vec();
        small[d] = 1;
        let l = contiguous(&small)
            .broadcast_as(&Shape::new(dims.to_vec()))
            .unwrap();
        v.push(("broadcast", l, small.iter().product()));
    }
    v
}

/// Bit-level equality (NaN == NaN, -0.0 != +0.0).
fn assert_exact(what: &str, got: &HostData, want: &HostData) {
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    assert_eq!(got.len(), want.len(), "{what}: length");
    match (got, want) {
        (HostData::F32(g), HostData::F32(w)) => {
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                assert!(
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                    "{what}[{i}]: cuda {a:e} vs cpu {b:e}"
                );
            }
        }
        (HostData::F64(g), HostData::F64(w)) => {
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                assert!(
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                    "{what}[{i}]: cuda {a:e} vs cpu {b:e}"
                );
            }
        }
        (HostData::I64(g), HostData::I64(w)) => assert_eq!(g, w, "{what}"),
        _ => unreachable!(),
    }
}

/// The sum tolerance of the module docs; `abs_sums[i]` is `Σ|x|` of output `i`.
fn assert_sums_close(what: &str, got: &HostData, want: &HostData, abs_sums: &[f64], n: usize) {
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    if got.dtype() == DType::I64 {
        return assert_exact(what, got, want);
    }
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    assert_eq!(g.len(), w.len(), "{what}: length");
    let order = n.max(1) as f64 * f64::EPSILON;
    let round = if got.dtype() == DType::F32 {
        f32::EPSILON as f64 * 1.01
    } else {
        0.0
    };
    for i in 0..g.len() {
        let (a, b) = (g[i], w[i]);
        if !b.is_finite() {
            assert!(
                a == b || (a.is_nan() && b.is_nan()),
                "{what}[{i}]: cuda {a:e} vs cpu {b:e}"
            );
            continue;
        }
        let tol = round * b.abs() + order * abs_sums[i];
        assert!(
            (a - b).abs() <= tol,
            "{what}[{i}]: cuda {a:e} vs cpu {b:e} (tol {tol:e})"
        );
    }
}

fn cpu_host(s: &CpuStorage, l: &Layout) -> HostData {
    Cpu::to_host(s, l).unwrap()
}

fn gpu_host(s: &CudaStorage, l: &Layout) -> HostData {
    s.to_host(l).unwrap()
}

/// The CUDA error as the backend contract reports it.
fn core_msg(e: CudaError) -> String {
    vars_core::Error::from(e).to_string()
}

/// Both backends fail, with the same message.
fn assert_same_error<T: std::fmt::Debug, U: std::fmt::Debug>(
    what: &str,
    cuda: Result<T, CudaError>,
    cpu: vars_core::Result<U>,
) {
    let c = cpu.expect_err(&format!("{what}: the CPU accepted it"));
    let g = cuda.expect_err(&format!("{what}: CUDA accepted it"));
    assert_eq!(core_msg(g), c.to_string(), "{what}");
}

// ---- reduce -------------------------------------------------------------------------------------

/// All sorted axis subsets of a rank.
fn axis_sets(rank: usize) -> Vec<Vec<usize>> {
    (0u32..1 << rank)
        .map(|m| (0..rank).filter(|&a| m & (1 << a) != 0).collect())
        .collect()
}

/// Compares one reduction on both backends (exact, or the sum tolerance).
fn check_reduce(
    what: &str,
    op: ReduceOp,
    (xc, xg): (&CpuStorage, &CudaStorage),
    l: &Layout,
    axes: &[usize],
) {
    let what = format!("{what} {} axes {axes:?}", op.name());
    let want = Cpu::reduce(op, xc, l, axes);
    let got = xg.reduce(op, l, axes);
    let want = match want {
        Ok(w) => w,
        Err(_) => return assert_same_error(&what, got, want),
    };
    let got = got.unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut out_dims = l.dims().to_vec();
    for &a in axes {
        out_dims[a] = 1;
    }
    let out = contiguous(&out_dims);
    let (g, w) = (gpu_host(&got, &out), cpu_host(&want, &out));
    if op != ReduceOp::Sum || g.dtype() == DType::I64 {
        return assert_exact(&what, &g, &w);
    }
    let abs = Cpu::unary(UnaryOp::Abs, xc, l).unwrap();
    let abs_sums = Cpu::reduce(ReduceOp::Sum, &abs, &contiguous(l.dims()), axes).unwrap();
    let abs_sums = cpu_host(&abs_sums, &out).to_f64_vec();
    let n: usize = axes.iter().map(|&a| l.dims()[a]).product();
    assert_sums_close(&what, &g, &w, &abs_sums, n);
}

const OPS: [ReduceOp; 5] = [
    ReduceOp::Sum,
    ReduceOp::Max,
    ReduceOp::Min,
    ReduceOp::ArgMax,
    ReduceOp::ArgMin,
];

#[test]
fn reduce_matches_cpu_on_views_and_axis_sets() {
    let Some(dev) = device() else { return };
    let shapes: [&[usize]; 8] = [
        &[7],
        &[3, 5],
        &[2, 3, 4],
        &[2, 1, 40, 3],
        &[4, 300],
        &[600, 3],
        &[2, 3, 2, 5],
        &[3, 0, 2],
    ];
    for (si, dims) in shapes.iter().enumerate() {
        for (vname, l, len) in views(dims) {
            for dtype in DTYPES {
                for kind in [Values::Random, Values::Ties, Values::Nans] {
                    let h = data(len, si as u64 * 31 + len as u64, kind, dtype);
                    let (xc, xg) = upload(dev, &h);
                    for axes in axis_sets(dims.len()) {
                        for op in OPS {
                            let what = format!("{dims:?} {vname} {dtype} {kind:?}");
                            check_reduce(&what, op, (&xc, &xg), &l, &axes);
                        }
                    }
                }
            }
        }
    }
}

/// Long reductions (the one-block-per-output kernel, several strided passes per thread) with the
/// NaN, tie and signed-zero placements that a wrong tree order would get wrong.
#[test]
fn reduce_long_rows_nan_ties_signed_zeros() {
    let Some(dev) = device() else { return };
    let n = 1000;
    let nan = f64::NAN;
    let mut rows: Vec<Vec<f64>> = Vec::new();
    // Ties of the maximum at 250 and 260 (thread 250, and thread 4's second element).
    let mut r = vec![0.0; n];
    r[250] = 5.0;
    r[260] = 5.0;
    r[4] = 5.0 - 1e-9;
    rows.push(r);
    // NaNs at 700 and 300: the first (300) wins for arg*, max/min are NaN.
    let mut r: Vec<f64> = (0..n).map(|i| i as f64).collect();
    r[700] = nan;
    r[300] = nan;
    rows.push(r);
    // All zeros, -0.0 first: max/min return -0.0 (the first), arg* 0.
    let mut r = vec![0.0; n];
    r[0] = -0.0;
    rows.push(r);
    // All zeros, +0.0 first and -0.0 elsewhere: +0.0.
    let mut r = vec![-0.0; n];
    r[0] = 0.0;
    rows.push(r);
    // -0.0 first only at 513 (thread 1, third pass), +0.0 at 999: max is -0.0 at 513.
    let mut r = vec![-1.0; n];
    r[513] = -0.0;
    r[999] = 0.0;
    rows.push(r);
    // All -inf, and -inf with one NaN at the end.
    rows.push(vec![f64::NEG_INFINITY; n]);
    let mut r = vec![f64::NEG_INFINITY; n];
    r[n - 1] = nan;
    rows.push(r);
    // +inf and -inf: sum NaN, max +inf, min -inf.
    let mut r = vec![1.0; n];
    r[17] = f64::INFINITY;
    r[900] = f64::NEG_INFINITY;
    rows.push(r);
    // The minimum tied at 999 and 744 and 255.
    let mut r = vec![3.0; n];
    for i in [999, 744, 255] {
        r[i] = -7.5;
    }
    rows.push(r);
    let flat: Vec<f64> = rows.concat();
    let m = rows.len();
    for dtype in [DType::F32, DType::F64] {
        let (xc, xg) = upload(dev, &host_data(&flat, dtype));
        let l = contiguous(&[m, n]);
        // The same data read column-wise through a transposed view of a (n, m) copy.
        let t: Vec<f64> = (0..n * m).map(|k| flat[(k % m) * n + k / m]).collect();
        let (tc, tg) = upload(dev, &host_data(&t, dtype));
        let lt = contiguous(&[n, m]).permute(&[1, 0]).unwrap();
        for op in OPS {
            check_reduce(&format!("rows {dtype}"), op, (&xc, &xg), &l, &[1]);
            check_reduce(
                &format!("transposed rows {dtype}"),
                op,
                (&tc, &tg),
                &lt,
                &[1],
            );
        }
    }
    // i64 extremes and wrapping sums.
    let v = vec![i64::MAX, 1, i64::MIN, -1, i64::MAX, i64::MIN, 0, 0];
    let (xc, xg) = upload(dev, &HostData::I64(v));
    for op in OPS {
        check_reduce("i64 extremes", op, (&xc, &xg), &contiguous(&[2, 4]), &[1]);
        check_reduce("i64 extremes", op, (&xc, &xg), &contiguous(&[2, 4]), &[0]);
    }
    let big: Vec<i64> = (0..5000).map(|i| i64::MAX - i * 977).collect();
    let (xc, xg) = upload(dev, &HostData::I64(big));
    check_reduce(
        "i64 wrapping",
        ReduceOp::Sum,
        (&xc, &xg),
        &contiguous(&[5000]),
        &[0],
    );
}

/// The block kernel on large inputs: CPU agreement and bit-identical repeated runs.
#[test]
fn reduce_large_is_deterministic() {
    let Some(dev) = device() else { return };
    for (dims, axes) in [
        (vec![16, 100_000], vec![1]),
        (vec![100_000, 16], vec![0]),
        (vec![8, 300, 70], vec![0, 2]),
    ] {
        let n: usize = dims.iter().product();
        for dtype in [DType::F32, DType::F64] {
            let (xc, xg) = upload(dev, &data(n, 99, Values::Random, dtype));
            let l = contiguous(&dims);
            check_reduce(
                &format!("{dims:?} {dtype}"),
                ReduceOp::Sum,
                (&xc, &xg),
                &l,
                &axes,
            );
            let out: Vec<usize> = (0..dims.len())
                .map(|d| if axes.contains(&d) { 1 } else { dims[d] })
                .collect();
            let a = gpu_host(
                &xg.reduce(ReduceOp::Sum, &l, &axes).unwrap(),
                &contiguous(&out),
            );
            let b = gpu_host(
                &xg.reduce(ReduceOp::Sum, &l, &axes).unwrap(),
                &contiguous(&out),
            );
            assert_exact(&format!("{dims:?} {dtype} rerun"), &a, &b);
        }
    }
}

#[test]
fn reduce_errors_match_cpu() {
    let Some(dev) = device() else { return };
    let (xc, xg) = upload(dev, &data(6, 1, Values::Random, DType::F32));
    let l = contiguous(&[2, 3]);
    for (op, axes) in [
        (ReduceOp::Sum, vec![2]),
        (ReduceOp::Max, vec![1, 0]),
        (ReduceOp::Min, vec![0, 0]),
        (ReduceOp::ArgMax, vec![0, 1]),
        (ReduceOp::ArgMin, vec![]),
    ] {
        assert_same_error(
            &format!("{op:?} {axes:?}"),
            xg.reduce(op, &l, &axes),
            Cpu::reduce(op, &xc, &l, &axes),
        );
    }
    let (ec, eg) = upload(dev, &HostData::F64(vec![]));
    let empty = contiguous(&[2, 0]);
    for op in [
        ReduceOp::Max,
        ReduceOp::Min,
        ReduceOp::ArgMax,
        ReduceOp::ArgMin,
    ] {
        assert_same_error(
            &format!("{op:?} over an empty axis"),
            eg.reduce(op, &empty, &[1]),
            Cpu::reduce(op, &ec, &empty, &[1]),
        );
    }
    // An empty sum is 0; no outputs is an empty result.
    check_reduce("empty sum", ReduceOp::Sum, (&ec, &eg), &empty, &[1]);
    check_reduce(
        "no outputs",
        ReduceOp::Max,
        (&ec, &eg),
        &contiguous(&[0, 3]),
        &[1],
    );
    // A view reaching past the buffer is an error, not a fault.
    assert!(xg
        .reduce(ReduceOp::Sum, &contiguous(&[2, 4]), &[1])
        .is_err());
}

// ---- where_cond ---------------------------------------------------------------------------------

#[test]
fn where_cond_matches_cpu() {
    let Some(dev) = device() else { return };
    for dims in [vec![17], vec![3, 5], vec![2, 3, 4], vec![0, 3]] {
        let vs = views(&dims);
        for cd in DTYPES {
            for td in DTYPES {
                for (ci, (cname, cl, clen)) in vs.iter().enumerate() {
                    // Rotate the view kinds so every operand meets every kind.
                    let (tname, tl, tlen) = &vs[(ci + 1) % vs.len()];
                    let (fname, fl, flen) = &vs[(ci + 2) % vs.len()];
                    let what =
                        format!("where {dims:?} cond {cd} {cname}, values {td} {tname}/{fname}");
                    let (cc, cg) = upload(dev, &data(*clen, 5, Values::Nans, cd));
                    let (tc, tg) = upload(dev, &data(*tlen, 6, Values::Random, td));
                    let (fc, fg) = upload(dev, &data(*flen, 7, Values::Ties, td));
                    let want = Cpu::where_cond(&cc, cl, &tc, tl, &fc, fl).unwrap();
                    let got = cg.where_cond(cl, &tg, tl, &fg, fl).unwrap();
                    let out = contiguous(&dims);
                    assert_exact(&what, &gpu_host(&got, &out), &cpu_host(&want, &out));
                }
            }
        }
    }
    // Errors: value dtypes differ; shapes differ.
    let (cc, cg) = upload(dev, &data(6, 1, Values::Ties, DType::I64));
    let (tc, tg) = upload(dev, &data(6, 2, Values::Random, DType::F32));
    let (fc, fg) = upload(dev, &data(6, 3, Values::Random, DType::F64));
    let l = contiguous(&[2, 3]);
    assert_same_error(
        "where dtypes",
        cg.where_cond(&l, &tg, &l, &fg, &l),
        Cpu::where_cond(&cc, &l, &tc, &l, &fc, &l),
    );
    let l2 = contiguous(&[3, 2]);
    assert_same_error(
        "where shapes",
        cg.where_cond(&l, &tg, &l2, &tg, &l),
        Cpu::where_cond(&cc, &l, &tc, &l2, &tc, &l),
    );
}

// ---- index_select / index_add -------------------------------------------------------------------

/// Index vectors (values, strided?) for a dim of `size`: empty, duplicates, strided views.
fn index_views(size: usize, k: usize, seed: u64) -> Vec<(HostData, Layout)> {
    let mut s = seed;
    let idx: Vec<i64> = (0..k)
        .map(|_| (lcg(&mut s) % size.max(1) as u64) as i64)
        .collect();
    // The same indices every other element of a buffer, from element 1.
    let mut spread = vec![-99i64; 2 * k + 1];
    for (j, &i) in idx.iter().enumerate() {
        spread[2 * j + 1] = i;
    }
    let strided = Layout::from_parts(Shape::new(vec![k]), vec![2], 1);
    vec![
        (HostData::I64(idx), contiguous(&[k])),
        (HostData::I64(spread), strided),
    ]
}

#[test]
fn index_select_and_add_match_cpu() {
    let Some(dev) = device() else { return };
    for dims in [
        vec![5],
        vec![4, 6],
        vec![3, 4, 5],
        vec![2, 3, 1, 4],
        vec![2, 0, 3],
    ] {
        for (vname, l, len) in views(&dims) {
            for dtype in DTYPES {
                let (xc, xg) = upload(dev, &data(len, 11, Values::Nans, dtype));
                for dim in 0..dims.len() {
                    let size = dims[dim];
                    for k in [0, 1, 7] {
                        if size == 0 && k > 0 {
                            continue;
                        }
                        for (iv, il) in index_views(size, k, 3 + k as u64) {
                            let what = format!("{dims:?} {vname} {dtype} dim {dim} k {k} {il:?}");
                            let (ic, ig) = upload(dev, &iv);
                            // index_select
                            let want = Cpu::index_select(&xc, &l, dim, &ic, &il).unwrap();
                            let got = xg.index_select(&l, dim, &ig, &il).unwrap();
                            let mut od = dims.clone();
                            od[dim] = k;
                            let out = contiguous(&od);
                            let sel = format!("index_select {what}");
                            assert_exact(&sel, &gpu_host(&got, &out), &cpu_host(&want, &out));
                            // index_add: the selection (dim of size k) scattered back into
                            // dim_size rows, duplicates accumulating, through the view `l` when
                            // its dim has k entries, else through the contiguous selection.
                            let (src_c, src_g, sl) = if size == k {
                                (&xc, &xg, l.clone())
                            } else {
                                (&want, &got, out.clone())
                            };
                            for dim_size in [size, size + 3] {
                                let want =
                                    Cpu::index_add(src_c, &sl, dim, &ic, &il, dim_size).unwrap();
                                let g = src_g.index_add(&sl, dim, &ig, &il, dim_size).unwrap();
                                let mut ad = dims.clone();
                                ad[dim] = dim_size;
                                let out = contiguous(&ad);
                                let add = format!("index_add {what} dim_size {dim_size}");
                                assert_exact(&add, &gpu_host(&g, &out), &cpu_host(&want, &out));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Many duplicates onto few rows: accumulation order equals the CPU's (bit-identical sums).
#[test]
fn index_add_heavy_duplicates() {
    let Some(dev) = device() else { return };
    let k = 5000;
    let mut s = 17;
    let idx: Vec<i64> = (0..k).map(|_| (lcg(&mut s) % 3) as i64).collect();
    let (ic, ig) = upload(dev, &HostData::I64(idx));
    let il = contiguous(&[k]);
    for dtype in DTYPES {
        let (xc, xg) = upload(dev, &data(k * 8, 23, Values::Random, dtype));
        // dim 1 of a (8, k) view read transposed from a (k, 8) buffer.
        let l = contiguous(&[k, 8]).permute(&[1, 0]).unwrap();
        let want = Cpu::index_add(&xc, &l, 1, &ic, &il, 4).unwrap();
        let got = xg.index_add(&l, 1, &ig, &il, 4).unwrap();
        let out = contiguous(&[8, 4]);
        assert_exact(
            &format!("heavy {dtype}"),
            &gpu_host(&got, &out),
            &cpu_host(&want, &out),
        );
    }
}

#[test]
fn index_errors_match_cpu() {
    let Some(dev) = device() else { return };
    let (xc, xg) = upload(dev, &data(12, 1, Values::Random, DType::F32));
    let l = contiguous(&[3, 4]);
    let cases: Vec<(&str, HostData, Layout)> = vec![
        ("too large", HostData::I64(vec![0, 4]), contiguous(&[2])),
        ("negative", HostData::I64(vec![1, -1, 9]), contiguous(&[3])),
        (
            "f32 indices",
            HostData::F32(vec![0.0, 1.0]),
            contiguous(&[2]),
        ),
        (
            "rank 2",
            HostData::I64(vec![0, 1, 2, 3]),
            contiguous(&[2, 2]),
        ),
    ];
    for (what, iv, il) in &cases {
        let (ic, ig) = upload(dev, iv);
        assert_same_error(
            &format!("index_select {what}"),
            xg.index_select(&l, 1, &ig, il),
            Cpu::index_select(&xc, &l, 1, &ic, il),
        );
        assert_same_error(
            &format!("index_add {what}"),
            xg.index_add(&contiguous(&[3, 2]), 1, &ig, il, 4),
            Cpu::index_add(&xc, &contiguous(&[3, 2]), 1, &ic, il, 4),
        );
    }
    let (ic, ig) = upload(dev, &HostData::I64(vec![0, 1, 2]));
    let il = contiguous(&[3]);
    assert_same_error(
        "dim out of range",
        xg.index_select(&l, 2, &ig, &il),
        Cpu::index_select(&xc, &l, 2, &ic, &il),
    );
    assert_same_error(
        "index_add length mismatch",
        xg.index_add(&l, 1, &ig, &il, 5),
        Cpu::index_add(&xc, &l, 1, &ic, &il, 5),
    );
    assert_same_error(
        "index_add index >= dim_size",
        xg.index_add(&contiguous(&[4, 3]), 1, &ig, &il, 2),
        Cpu::index_add(&xc, &contiguous(&[4, 3]), 1, &ic, &il, 2),
    );
}

// ---- unfold2d / fold2d --------------------------------------------------------------------------

fn win(k: (usize, usize), s: (usize, usize), p: (usize, usize), d: (usize, usize)) -> Window2d {
    Window2d {
        kernel: k,
        stride: s,
        padding: p,
        dilation: d,
    }
}

fn check_unfold_fold(dev: &CudaDevice, (n, c, h, w): (usize, usize, usize, usize), wn: Window2d) {
    let Ok((ho, wo)) = wn.output_size("test", &Shape::new(vec![n, c, h, w]), h, w) else {
        return;
    };
    let kk = wn.kernel.0 * wn.kernel.1;
    for dtype in [DType::F32, DType::F64] {
        for (vname, l, len) in views(&[n, c, h, w]) {
            let what = format!("{wn:?} on {n}x{c}x{h}x{w} {vname} {dtype}");
            let (xc, xg) = upload(dev, &data(len, 41, Values::Nans, dtype));
            for pad in [0.0, f64::NEG_INFINITY, 1.5] {
                let want = Cpu::unfold2d(&xc, &l, wn, pad).unwrap();
                let got = xg.unfold2d(&l, wn, pad).unwrap();
                let out = contiguous(&[n, c * kk, ho * wo]);
                let u = format!("unfold {what} pad {pad}");
                assert_exact(&u, &gpu_host(&got, &out), &cpu_host(&want, &out));
            }
        }
        for (vname, l, len) in views(&[n, c * kk, ho * wo]) {
            let what = format!("fold {wn:?} to {n}x{c}x{h}x{w} {vname} {dtype}");
            let (xc, xg) = upload(dev, &data(len, 43, Values::Random, dtype));
            let want = Cpu::fold2d(&xc, &l, wn, (h, w)).unwrap();
            let got = xg.fold2d(&l, wn, (h, w)).unwrap();
            let out = contiguous(&[n, c, h, w]);
            assert_exact(&what, &gpu_host(&got, &out), &cpu_host(&want, &out));
        }
    }
}

#[test]
fn unfold_fold_match_cpu() {
    let Some(dev) = device() else { return };
    let cases = [
        ((1, 2, 5, 6), win((3, 3), (1, 1), (1, 1), (1, 1))),
        ((2, 1, 7, 5), win((2, 3), (2, 1), (0, 2), (1, 1))),
        ((1, 3, 9, 8), win((3, 2), (2, 3), (2, 1), (2, 3))),
        ((2, 2, 4, 4), win((1, 1), (1, 1), (0, 0), (1, 1))),
        ((1, 1, 3, 3), win((3, 3), (1, 1), (2, 2), (1, 1))),
        ((2, 3, 16, 16), win((4, 4), (4, 4), (0, 0), (1, 1))),
        ((1, 2, 8, 8), win((7, 7), (1, 1), (3, 3), (1, 1))),
        ((0, 2, 4, 4), win((2, 2), (1, 1), (0, 0), (1, 1))),
    ];
    for ((n, c, h, w), wn) in cases {
        check_unfold_fold(dev, (n, c, h, w), wn);
    }
}

#[test]
fn window_errors_match_cpu() {
    let Some(dev) = device() else { return };
    let w3 = Window2d::square(3, 1, 0);
    let (ic, ig) = upload(dev, &HostData::I64(vec![0; 16]));
    let l = contiguous(&[1, 1, 4, 4]);
    assert_same_error(
        "unfold i64",
        ig.unfold2d(&l, w3, 0.0),
        Cpu::unfold2d(&ic, &l, w3, 0.0),
    );
    let cols = contiguous(&[1, 9, 4]);
    assert_same_error(
        "fold i64",
        ig.fold2d(&cols, w3, (4, 4)),
        Cpu::fold2d(&ic, &cols, w3, (4, 4)),
    );
    let (xc, xg) = upload(dev, &data(64, 2, Values::Random, DType::F32));
    for (what, l, wn) in [
        ("rank 3", contiguous(&[1, 4, 4]), w3),
        ("too small", contiguous(&[1, 1, 2, 2]), w3),
        ("zero stride", l.clone(), Window2d::square(3, 0, 0)),
    ] {
        assert_same_error(
            what,
            xg.unfold2d(&l, wn, 0.0),
            Cpu::unfold2d(&xc, &l, wn, 0.0),
        );
    }
    for (what, l, hw) in [
        ("columns", contiguous(&[1, 9, 5]), (4, 4)),
        ("channels", contiguous(&[1, 10, 4]), (4, 4)),
        ("rank 2", contiguous(&[9, 4]), (4, 4)),
        ("output too small", contiguous(&[1, 9, 4]), (2, 2)),
    ] {
        assert_same_error(what, xg.fold2d(&l, w3, hw), Cpu::fold2d(&xc, &l, w3, hw));
    }
}

// ---- properties ---------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn prop_reduce_cuda_equals_cpu(
        dims in prop::collection::vec(1usize..6, 1..5),
        long in 0usize..4,
        axes_mask in any::<u32>(),
        op_i in 0usize..5,
        dtype_i in 0usize..3,
        view_i in 0usize..4,
        kind_i in 0usize..3,
        seed in any::<u64>(),
    ) {
        let Some(dev) = device() else { return Ok(()) };
        let mut dims = dims;
        if long < dims.len() {
            dims[long] *= 67; // long enough for the one-block-per-output kernel
        }
        let rank = dims.len();
        let mut axes: Vec<usize> = (0..rank).filter(|&a| axes_mask & (1 << a) != 0).collect();
        let op = OPS[op_i];
        if matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) {
            axes = vec![axes.first().copied().unwrap_or(0)];
        }
        let vs = views(&dims);
        let (vname, l, len) = &vs[view_i % vs.len()];
        let kind = [Values::Random, Values::Ties, Values::Nans][kind_i];
        let dtype = DTYPES[dtype_i];
        let (xc, xg) = upload(dev, &data(*len, seed, kind, dtype));
        check_reduce(&format!("{dims:?} {vname} {dtype} {kind:?}"), op, (&xc, &xg), l, &axes);
    }

    #[test]
    fn prop_index_add_cuda_equals_cpu(
        outer in 1usize..4, k in 0usize..40, inner in 1usize..5, dim_size in 1usize..6,
        dtype_i in 0usize..3, seed in any::<u64>(),
    ) {
        let Some(dev) = device() else { return Ok(()) };
        let dtype = DTYPES[dtype_i];
        let mut s = seed;
        let idx: Vec<i64> = (0..k).map(|_| (lcg(&mut s) % dim_size as u64) as i64).collect();
        let (ic, ig) = upload(dev, &HostData::I64(idx));
        let il = contiguous(&[k]);
        let dims = [outer, k, inner];
        for (vname, l, len) in views(&dims) {
            let (xc, xg) = upload(dev, &data(len, seed ^ 5, Values::Random, dtype));
            let want = Cpu::index_add(&xc, &l, 1, &ic, &il, dim_size).unwrap();
            let got = xg.index_add(&l, 1, &ig, &il, dim_size).unwrap();
            let out = contiguous(&[outer, dim_size, inner]);
            assert_exact(&format!("{dims:?} {vname} {dtype}"), &gpu_host(&got, &out), &cpu_host(&want, &out));
        }
    }

    #[test]
    fn prop_unfold_fold_cuda_equals_cpu(
        n in 1usize..3, c in 1usize..3, h in 1usize..12, w in 1usize..12,
        kh in 1usize..5, kw in 1usize..5, sy in 1usize..4, sx in 1usize..4,
        py in 0usize..3, px in 0usize..3, dy in 1usize..3, dx in 1usize..3,
    ) {
        let Some(dev) = device() else { return Ok(()) };
        check_unfold_fold(dev, (n, c, h, w), win((kh, kw), (sy, sx), (py, px), (dy, dx)));
    }
}
