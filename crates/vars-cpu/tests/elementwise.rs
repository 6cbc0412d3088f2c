//! Unary, binary, where_cond, cast and copies against f64 references, on contiguous, permuted,
//! narrowed (offset) and broadcast (stride-0) views.
//!
//! Tolerances: f64 results must match the f64 reference to 1e-12 (relative, absolute below 1);
//! f32 results to 2e-6 (a few f32 ulps: the inputs are exact in f32 and each op rounds once or
//! twice). Integer results must be exact.

mod common;

use common::*;
use vars_core::{Backend, BinaryOp, DType, Distribution, Error, HostData, Layout, UnaryOp};
use vars_cpu::special;

const SHAPES: &[&[usize]] = &[&[7], &[3, 5], &[2, 3, 4], &[4, 1, 3, 2]];

fn tol(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 2e-6,
        _ => 1e-12,
    }
}

fn unary_ref(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Sqr => x * x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        UnaryOp::Relu => x.max(0.0),
        UnaryOp::Gelu => x * 0.5 * special::erfc(-x / 2f64.sqrt()),
        UnaryOp::GeluDerivative => {
            0.5 * special::erfc(-x / 2f64.sqrt())
                + x * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
        }
        UnaryOp::Erf => special::erf(x),
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Recip => 1.0 / x,
        UnaryOp::Step => f64::from(x > 0.0),
        UnaryOp::Powf(p) => x.powf(p),
        UnaryOp::Affine { mul, add } => x * mul + add,
        UnaryOp::ClampMin(c) => x.max(c),
        UnaryOp::ClampMax(c) => x.min(c),
    }
}

const UNARY_OPS: &[UnaryOp] = &[
    UnaryOp::Neg,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Sqrt,
    UnaryOp::Sqr,
    UnaryOp::Abs,
    UnaryOp::Sign,
    UnaryOp::Relu,
    UnaryOp::Gelu,
    UnaryOp::GeluDerivative,
    UnaryOp::Erf,
    UnaryOp::Sigmoid,
    UnaryOp::Tanh,
    UnaryOp::Recip,
    UnaryOp::Step,
    UnaryOp::Powf(3.0),
    UnaryOp::Powf(0.5),
    UnaryOp::Affine {
        mul: 1.5,
        add: -0.25,
    },
    UnaryOp::ClampMin(0.25),
    UnaryOp::ClampMax(-0.5),
];

#[test]
fn unary_float_ops_on_all_views() {
    for dims in SHAPES {
        for view in views(dims, 11) {
            for dtype in [DType::F32, DType::F64] {
                let s = view.storage(dtype);
                for &op in UNARY_OPS {
                    let got = values(&B::unary(op, &s, &view.layout).unwrap());
                    let want: Vec<f64> = view.logical().iter().map(|&x| unary_ref(op, x)).collect();
                    let what = format!("{op:?} {dtype} {} {dims:?}", view.kind);
                    assert_close(&got, &want, tol(dtype), &what);
                }
            }
        }
    }
}

#[test]
fn unary_integer_ops_and_rejections() {
    let int_ops = [
        (UnaryOp::Neg, 7),
        (UnaryOp::Abs, 7),
        (UnaryOp::Sign, -1),
        (UnaryOp::Relu, 0),
        (UnaryOp::Sqr, 49),
        (UnaryOp::Step, 0),
        (UnaryOp::Affine { mul: 2.0, add: 1.0 }, -13),
        (UnaryOp::ClampMin(-3.0), -3),
        (UnaryOp::ClampMax(-10.0), -10),
    ];
    for view in views(&[3, 4], 5) {
        let ints: Vec<f64> = view.buf.iter().map(|v| (v * 64.0).round()).collect();
        let s = storage(&ints, DType::I64);
        let logical = ref_gather(&ints, &view.layout);
        for (op, at_minus_7) in int_ops {
            let got = values(&B::unary(op, &s, &view.layout).unwrap());
            let want: Vec<f64> = logical.iter().map(|&x| unary_ref(op, x)).collect();
            assert_close(&got, &want, 0.0, &format!("{op:?} i64 {}", view.kind));
            let single = B::unary(op, &storage(&[-7.0], DType::I64), &Layout::contiguous([1]));
            assert_eq!(
                single.unwrap().as_i64().unwrap(),
                &[at_minus_7],
                "{op:?}(-7)"
            );
        }
    }
    // Integer overflow wraps instead of panicking.
    let min = vars_cpu::CpuStorage::from_vec_i64(vec![i64::MIN]);
    let neg = B::unary(UnaryOp::Neg, &min, &Layout::contiguous([1])).unwrap();
    assert_eq!(neg.as_i64().unwrap(), &[i64::MIN]);
    // Float-only ops reject integers with an error naming the op.
    let s = storage(&[1.0, 2.0], DType::I64);
    for op in [
        UnaryOp::Exp,
        UnaryOp::Gelu,
        UnaryOp::Erf,
        UnaryOp::Sqrt,
        UnaryOp::Powf(2.0),
    ] {
        let err = B::unary(op, &s, &Layout::contiguous([2])).unwrap_err();
        assert!(
            matches!(
                err,
                Error::UnsupportedDType {
                    dtype: DType::I64,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(op.name()), "{err}");
    }
}

#[test]
fn unary_special_values() {
    let xs = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0];
    let s = storage(&xs, DType::F64);
    let l = Layout::contiguous([5]);
    let run = |op| values(&B::unary(op, &s, &l).unwrap());
    let relu = run(UnaryOp::Relu);
    assert!(relu[0].is_nan() && relu[1] == f64::INFINITY && relu[2] == 0.0);
    let sign = run(UnaryOp::Sign);
    assert!(sign[0].is_nan() && sign[1] == 1.0 && sign[2] == -1.0 && sign[3] == 0.0);
    let step = run(UnaryOp::Step);
    assert_eq!(&step[1..], &[1.0, 0.0, 0.0, 0.0]);
    assert_eq!(step[0], 0.0);
    let gelu = run(UnaryOp::Gelu);
    assert!(gelu[0].is_nan() && gelu[1] == f64::INFINITY && gelu[2] == 0.0 && gelu[3] == 0.0);
    let dgelu = run(UnaryOp::GeluDerivative);
    assert_eq!(&dgelu[1..], &[1.0, 0.0, 0.5, 0.5]);
    let sig = run(UnaryOp::Sigmoid);
    assert_eq!(&sig[1..], &[1.0, 0.0, 0.5, 0.5]);
    let clamp = run(UnaryOp::ClampMin(1.0));
    assert!(clamp[0].is_nan(), "clamp keeps NaN");
    // Sigmoid does not overflow for large |x| in f32.
    let big = storage(&[-200.0, 200.0], DType::F32);
    let sig = values(&B::unary(UnaryOp::Sigmoid, &big, &Layout::contiguous([2])).unwrap());
    assert_eq!(sig, vec![0.0, 1.0]);
}

const BINARY_OPS: &[BinaryOp] = &[
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Maximum,
    BinaryOp::Minimum,
    BinaryOp::Eq,
    BinaryOp::Ne,
    BinaryOp::Lt,
    BinaryOp::Le,
    BinaryOp::Gt,
    BinaryOp::Ge,
];

fn binary_ref(op: BinaryOp, x: f64, y: f64) -> f64 {
    match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
        BinaryOp::Maximum => x.max(y),
        BinaryOp::Minimum => x.min(y),
        BinaryOp::Eq => f64::from(x == y),
        BinaryOp::Ne => f64::from(x != y),
        BinaryOp::Lt => f64::from(x < y),
        BinaryOp::Le => f64::from(x <= y),
        BinaryOp::Gt => f64::from(x > y),
        BinaryOp::Ge => f64::from(x >= y),
        // sign(x)·g(|x| − y) with sign(0) = 0.
        BinaryOp::SoftThreshold => sign0(x) * (x.abs() - y).max(0.0),
        BinaryOp::GeluShrink => sign0(x) * vars_cpu::special::gelu(x.abs() - y),
    }
}

fn sign0(x: f64) -> f64 {
    if x == 0.0 {
        0.0
    } else {
        x.signum()
    }
}

/// The fused shrinks (floats only) on every pair of views, including a broadcast threshold,
/// against the f64 formula; an integer operand is an error naming the op.
#[test]
fn shrink_ops_on_all_view_pairs() {
    for dims in SHAPES {
        let lhs = views(dims, 23);
        let rhs = views(dims, 37);
        for a in &lhs {
            for b in &rhs {
                for dtype in [DType::F32, DType::F64] {
                    // Thresholds in [0, 1): |b| of the random buffer.
                    let tbuf: Vec<f64> = b.buf.iter().map(|v| v.abs()).collect();
                    let (sa, sb) = (storage(&a.buf, dtype), storage(&tbuf, dtype));
                    let (xa, xb) = (ref_gather(&a.buf, &a.layout), ref_gather(&tbuf, &b.layout));
                    for op in [BinaryOp::SoftThreshold, BinaryOp::GeluShrink] {
                        let got = B::binary(op, &sa, &a.layout, &sb, &b.layout).unwrap();
                        let want: Vec<f64> = xa
                            .iter()
                            .zip(&xb)
                            .map(|(&x, &y)| binary_ref(op, x, y))
                            .collect();
                        let what = format!("{op:?} {dtype} {}×{} {dims:?}", a.kind, b.kind);
                        assert_close(&values(&got), &want, tol(dtype), &what);
                    }
                }
            }
        }
    }
    let ints = storage(&[1.0, 2.0], DType::I64);
    let l = vars_core::Layout::contiguous([2]);
    let err = B::binary(BinaryOp::SoftThreshold, &ints, &l, &ints, &l).unwrap_err();
    assert!(err.to_string().contains("soft_threshold"), "{err}");
}

#[test]
fn binary_ops_on_all_view_pairs() {
    for dims in SHAPES {
        let lhs = views(dims, 21);
        let rhs = views(dims, 31);
        for a in &lhs {
            for b in &rhs {
                for dtype in [DType::F32, DType::F64, DType::I64] {
                    let scale = if dtype == DType::I64 { 64.0 } else { 1.0 };
                    let abuf: Vec<f64> = a.buf.iter().map(|v| v * scale).collect();
                    // Integer division by zero is an error; keep integer divisors nonzero.
                    let bbuf: Vec<f64> = b
                        .buf
                        .iter()
                        .map(|v| {
                            if dtype == DType::I64 && *v == 0.0 {
                                3.0
                            } else {
                                v * scale
                            }
                        })
                        .collect();
                    let (sa, sb) = (storage(&abuf, dtype), storage(&bbuf, dtype));
                    let (xa, xb) = (ref_gather(&abuf, &a.layout), ref_gather(&bbuf, &b.layout));
                    for &op in BINARY_OPS {
                        let got = B::binary(op, &sa, &a.layout, &sb, &b.layout).unwrap();
                        assert_eq!(got.dtype(), dtype);
                        let want: Vec<f64> = xa
                            .iter()
                            .zip(&xb)
                            .map(|(&x, &y)| {
                                let r = binary_ref(op, x, y);
                                if dtype == DType::I64 {
                                    r.trunc()
                                } else {
                                    r
                                }
                            })
                            .collect();
                        let what = format!("{op:?} {dtype} {}×{} {dims:?}", a.kind, b.kind);
                        assert_close(&values(&got), &want, tol(dtype), &what);
                    }
                }
            }
        }
    }
}

#[test]
fn binary_nan_and_errors() {
    let l = Layout::contiguous([3]);
    let a = storage(&[f64::NAN, 1.0, 2.0], DType::F32);
    let b = storage(&[0.0, f64::NAN, 1.0], DType::F32);
    let max = values(&B::binary(BinaryOp::Maximum, &a, &l, &b, &l).unwrap());
    assert!(
        max[0].is_nan() && max[1].is_nan() && max[2] == 2.0,
        "maximum propagates NaN"
    );
    let min = values(&B::binary(BinaryOp::Minimum, &a, &l, &b, &l).unwrap());
    assert!(
        min[0].is_nan() && min[1].is_nan() && min[2] == 1.0,
        "minimum propagates NaN"
    );
    let ne = values(&B::binary(BinaryOp::Ne, &a, &l, &b, &l).unwrap());
    assert_eq!(ne, vec![1.0, 1.0, 1.0]);

    let c = storage(&[1.0, 2.0, 3.0], DType::F64);
    let err = B::binary(BinaryOp::Add, &a, &l, &c, &l).unwrap_err();
    assert!(
        matches!(err, Error::DTypeMismatch { .. }) && err.to_string().contains("add"),
        "{err}"
    );
    let d = storage(&[1.0, 2.0, 3.0, 4.0], DType::F32);
    let err = B::binary(BinaryOp::Mul, &a, &l, &d, &Layout::contiguous([4])).unwrap_err();
    assert!(
        matches!(err, Error::ShapeMismatch { .. }) && err.to_string().contains("mul"),
        "{err}"
    );
    // A view that runs past its buffer is an error, not a panic.
    let err = B::binary(BinaryOp::Sub, &a, &l, &a, &Layout::contiguous([4])).unwrap_err();
    assert!(err.to_string().contains("sub"), "{err}");
    // Integer division truncates toward zero; division by zero is an error.
    let x = storage(&[7.0, -7.0, 7.0], DType::I64);
    let y = storage(&[2.0, 2.0, 0.0], DType::I64);
    let l2 = Layout::contiguous([2]);
    let q = B::binary(BinaryOp::Div, &x, &l2, &y, &l2).unwrap();
    assert_eq!(q.as_i64().unwrap(), &[3, -3]);
    let err = B::binary(BinaryOp::Div, &x, &l, &y, &l).unwrap_err();
    assert!(err.to_string().contains("division by zero"), "{err}");
}

#[test]
fn where_cond_any_cond_dtype() {
    for dims in SHAPES {
        let conds = views(dims, 41);
        let ts = views(dims, 51);
        let fs = views(dims, 61);
        for (i, c) in conds.iter().enumerate() {
            // Pair each cond view with rotated true/false view kinds.
            let t = &ts[(i + 1) % 4];
            let f = &fs[(i + 2) % 4];
            for cdt in [DType::F32, DType::F64, DType::I64] {
                for vdt in [DType::F32, DType::F64, DType::I64] {
                    let cbuf: Vec<f64> = c.buf.iter().map(|v| v.round()).collect();
                    let got = B::where_cond(
                        &storage(&cbuf, cdt),
                        &c.layout,
                        &t.storage(vdt),
                        &t.layout,
                        &f.storage(vdt),
                        &f.layout,
                    )
                    .unwrap();
                    let to = |v: f64| if vdt == DType::I64 { v.trunc() } else { v };
                    let want: Vec<f64> = ref_gather(&cbuf, &c.layout)
                        .iter()
                        .zip(t.logical().iter().zip(f.logical()))
                        .map(|(&cv, (&tv, fv))| if cv != 0.0 { to(tv) } else { to(fv) })
                        .collect();
                    let what = format!("where {cdt}/{vdt} {}/{}/{}", c.kind, t.kind, f.kind);
                    assert_close(&values(&got), &want, 0.0, &what);
                }
            }
        }
    }
    let l = Layout::contiguous([2]);
    let err = B::where_cond(
        &storage(&[1.0, 0.0], DType::I64),
        &l,
        &storage(&[1.0, 2.0], DType::F32),
        &l,
        &storage(&[1.0, 2.0], DType::F64),
        &l,
    )
    .unwrap_err();
    assert!(err.to_string().contains("where"), "{err}");
}

#[test]
fn cast_copy_and_to_host() {
    for dims in SHAPES {
        for view in views(dims, 71) {
            let logical = view.logical();
            for from in [DType::F32, DType::F64, DType::I64] {
                let s = view.storage(from);
                let src: Vec<f64> = logical
                    .iter()
                    .map(|&v| if from == DType::I64 { v.trunc() } else { v })
                    .collect();
                let host = B::to_host(&s, &view.layout).unwrap();
                assert_eq!(host.dtype(), from);
                assert_eq!(host.to_f64_vec(), src, "to_host {from} {}", view.kind);
                let copy = B::copy_strided(&s, &view.layout).unwrap();
                assert_eq!(values(&copy), src, "copy_strided {from} {}", view.kind);
                for to in [DType::F32, DType::F64, DType::I64] {
                    let c = B::cast(&s, &view.layout, to).unwrap();
                    assert_eq!(c.dtype(), to);
                    let want: Vec<f64> = src
                        .iter()
                        .map(|&v| if to == DType::I64 { v.trunc() } else { v })
                        .collect();
                    assert_eq!(values(&c), want, "cast {from}->{to} {}", view.kind);
                }
            }
        }
    }
    // Float → int truncates toward zero and saturates like `as`.
    let s = storage(&[-1.7, 1.7, f64::NAN, 1e30], DType::F64);
    let c = B::cast(&s, &Layout::contiguous([4]), DType::I64).unwrap();
    assert_eq!(c.as_i64().unwrap(), &[-1, 1, 0, i64::MAX]);
}

#[test]
fn copy_into_writes_views_of_views() {
    for dims in SHAPES {
        for src in views(dims, 81) {
            // Destination: the "narrowed" view of a bigger zero buffer, and a permuted buffer.
            for dst_view in views(dims, 91)
                .into_iter()
                .filter(|v| v.kind != "broadcast")
            {
                for dtype in [DType::F32, DType::F64, DType::I64] {
                    let mut dst = storage(&vec![0.0; dst_view.buf.len()], dtype);
                    B::copy_into(&src.storage(dtype), &src.layout, &mut dst, &dst_view.layout)
                        .unwrap();
                    let mut want = vec![0.0; dst_view.buf.len()];
                    for (i, v) in src.logical().into_iter().enumerate() {
                        want[ref_index(&dst_view.layout, i)] =
                            if dtype == DType::I64 { v.trunc() } else { v };
                    }
                    let what = format!("copy_into {dtype} {}→{}", src.kind, dst_view.kind);
                    assert_eq!(values(&dst), want, "{what}");
                }
            }
        }
    }
    let l = Layout::contiguous([3]);
    let src = storage(&[1.0, 2.0, 3.0], DType::F32);
    let mut dst = storage(&[0.0; 3], DType::F64);
    let err = B::copy_into(&src, &l, &mut dst, &l).unwrap_err();
    assert!(matches!(err, Error::DTypeMismatch { .. }), "{err}");
    let mut small = storage(&[0.0; 2], DType::F32);
    let err = B::copy_into(&src, &l, &mut small, &l).unwrap_err();
    assert!(err.to_string().contains("copy_into"), "{err}");
    let err = B::copy_into(&src, &l, &mut small, &Layout::contiguous([2])).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
}

#[test]
fn full_from_host_and_random() {
    let dev = vars_cpu::CpuDevice;
    let f = B::full(&dev, 5, DType::F32, 2.5).unwrap();
    assert_eq!(f.as_f32().unwrap(), &[2.5; 5]);
    let i = B::full(&dev, 2, DType::I64, -3.0).unwrap();
    assert_eq!(i.as_i64().unwrap(), &[-3, -3]);
    let h = B::from_host(&dev, HostData::F64(vec![1.0, 2.0])).unwrap();
    assert_eq!(B::storage_len(&h), 2);
    assert_eq!(B::storage_dtype(&h), DType::F64);
    assert_eq!(B::storage_device(&h), dev);
    B::synchronize(&dev).unwrap();

    let n = 40_000; // above the parallel grain
    for dist in [
        Distribution::Uniform {
            low: -1.0,
            high: 3.0,
        },
        Distribution::Normal {
            mean: 0.5,
            std: 2.0,
        },
    ] {
        let r64 = B::random(&dev, n, DType::F64, dist, 7).unwrap();
        let r32 = B::random(&dev, n, DType::F32, dist, 7).unwrap();
        let want: Vec<f64> = (0..n)
            .map(|i| vars_core::rng::sample(dist, 7, i as u64))
            .collect();
        assert_eq!(r64.as_f64().unwrap(), &want[..], "f64 is exact");
        let want32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        assert_eq!(r32.as_f32().unwrap(), &want32[..], "f32 is the rounded f64");
    }
    let err = B::random(
        &dev,
        3,
        DType::I64,
        Distribution::Uniform {
            low: 0.0,
            high: 1.0,
        },
        1,
    );
    assert!(matches!(
        err,
        Err(Error::UnsupportedDType { op: "random", .. })
    ));
}

#[test]
fn large_strided_elementwise_matches_reference() {
    // Big enough for the parallel path: a transposed (600×300) operand plus a broadcast row.
    let (r, c) = (600, 300);
    let a = data(r * c, 3);
    let la = Layout::contiguous([c, r]).permute(&[1, 0]).unwrap();
    let b = data(c, 4);
    let lb = Layout::contiguous([1, c])
        .broadcast_as(&[r, c].into())
        .unwrap();
    for dtype in [DType::F32, DType::F64] {
        let got = B::binary(
            BinaryOp::Add,
            &storage(&a, dtype),
            &la,
            &storage(&b, dtype),
            &lb,
        )
        .unwrap();
        let want: Vec<f64> = (0..r * c)
            .map(|i| a[ref_index(&la, i)] + b[ref_index(&lb, i)])
            .collect();
        assert_close(&values(&got), &want, tol(dtype), "large add");
        let got = B::unary(UnaryOp::Gelu, &storage(&a, dtype), &la).unwrap();
        let want: Vec<f64> = (0..r * c)
            .map(|i| unary_ref(UnaryOp::Gelu, a[ref_index(&la, i)]))
            .collect();
        assert_close(&values(&got), &want, tol(dtype), "large gelu");
    }
}
