//! The elementwise, copy and RNG kernels against the CPU formulas (and `vars_core::rng`).

use vars_core::{BinaryOp, DType, Distribution, HostData, Layout, Shape, UnaryOp};
use vars_cuda::kernels::{BINARY_OPS, UNARY_OPS};
use vars_cuda::{CudaDevice, CudaStorage};

use super::device;

fn contiguous(dims: &[usize]) -> Layout {
    Layout::contiguous(Shape::new(dims.to_vec()))
}

fn upload(dev: &CudaDevice, data: HostData) -> CudaStorage {
    dev.from_host(&data).unwrap()
}

fn download(s: &CudaStorage, layout: &Layout) -> Vec<f64> {
    s.to_host(layout).unwrap().to_f64_vec()
}

/// Equal, both NaN, or within `rel` relative (with an absolute floor of `rel` near 0).
fn close(a: f64, b: f64, rel: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0)
}

fn assert_all_close(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(close(*g, *w, rel), "{what}[{i}]: got {g}, want {w}");
    }
}

/// erf to ~1e-15 for |x| < 3 (Maclaurin series, all the test inputs need).
fn erf(x: f64) -> f64 {
    assert!(x.abs() < 3.0);
    let (mut term, mut sum) = (x, x);
    for n in 1..200 {
        term *= -x * x / n as f64;
        let t = term / (2 * n + 1) as f64;
        sum += t;
        if t.abs() < 1e-18 {
            break;
        }
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

fn unary_ref(op: UnaryOp, x: f64) -> f64 {
    let phi = |x: f64| 0.5 * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2));
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
        UnaryOp::Gelu => x * phi(x),
        UnaryOp::GeluDerivative => {
            phi(x) + x * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
        }
        UnaryOp::Erf => erf(x),
        UnaryOp::Sigmoid if x >= 0.0 => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Sigmoid => x.exp() / (1.0 + x.exp()),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Recip => 1.0 / x,
        UnaryOp::Step => (x > 0.0) as u8 as f64,
        UnaryOp::Powf(p) => x.powf(p),
        UnaryOp::Affine { mul, add } => x * mul + add,
        UnaryOp::ClampMin(c) => x.max(c),
        UnaryOp::ClampMax(c) => x.min(c),
    }
}

/// The ops with real parameters.
fn unary_ops() -> Vec<UnaryOp> {
    UNARY_OPS
        .iter()
        .map(|&op| match op {
            UnaryOp::Powf(_) => UnaryOp::Powf(1.5),
            UnaryOp::Affine { .. } => UnaryOp::Affine {
                mul: 0.75,
                add: -0.25,
            },
            UnaryOp::ClampMin(_) => UnaryOp::ClampMin(-0.5),
            UnaryOp::ClampMax(_) => UnaryOp::ClampMax(0.5),
            op => op,
        })
        .collect()
}

/// 25 inputs in (-3, 3), including 0, as a 5×5 matrix.
fn inputs() -> Vec<f64> {
    let mut v: Vec<f64> = (0..24).map(|i| -2.875 + 0.25 * i as f64).collect();
    v.insert(12, 0.0);
    v
}

#[test]
fn fill_and_round_trip() {
    let Some(dev) = device() else { return };
    for dtype in [DType::F32, DType::F64, DType::I64] {
        let s = dev.full(1000, dtype, 3.0).unwrap();
        assert_eq!(s.dtype(), dtype);
        assert_eq!(download(&s, &contiguous(&[1000])), vec![3.0; 1000]);
        let empty = dev.full(0, dtype, 1.0).unwrap();
        assert!(download(&empty, &contiguous(&[0])).is_empty());
    }
    let data: Vec<f64> = (0..12).map(|i| i as f64).collect();
    let s = upload(dev, HostData::F64(data.clone()));
    assert_eq!(download(&s, &contiguous(&[3, 4])), data);
    // Transposed and narrowed views come back in logical order.
    let t = contiguous(&[3, 4]).permute(&[1, 0]).unwrap();
    let want: Vec<f64> = t.strided_index().map(|i| data[i]).collect();
    assert_eq!(download(&s, &t), want);
    let n = contiguous(&[3, 4]).narrow(1, 1, 2).unwrap();
    assert_eq!(download(&s, &n), vec![1.0, 2.0, 5.0, 6.0, 9.0, 10.0]);
}

#[test]
fn unary_ops_match_the_cpu_formulas() {
    let Some(dev) = device() else { return };
    let xs = inputs();
    let base = contiguous(&[5, 5]);
    let transposed = base.permute(&[1, 0]).unwrap();
    for op in unary_ops() {
        for (dtype, rel) in [(DType::F64, 1e-13), (DType::F32, 2e-6)] {
            let host = match dtype {
                DType::F32 => HostData::F32(xs.iter().map(|&x| x as f32).collect()),
                _ => HostData::F64(xs.clone()),
            };
            let xs_t = host.to_f64_vec();
            let s = upload(dev, host);
            for layout in [&base, &transposed] {
                let out = s.unary(op, layout).unwrap();
                let got = download(&out, &contiguous(&[5, 5]));
                let want: Vec<f64> = layout
                    .strided_index()
                    .map(|i| {
                        let r = unary_ref(op, xs_t[i]);
                        if dtype == DType::F32 {
                            r as f32 as f64
                        } else {
                            r
                        }
                    })
                    .collect();
                assert_all_close(
                    &format!("{} {dtype} {layout:?}", op.name()),
                    &got,
                    &want,
                    rel,
                );
            }
        }
    }
}

#[test]
fn unary_rejects_integers() {
    let Some(dev) = device() else { return };
    let s = upload(dev, HostData::I64(vec![1, 2, 3]));
    let err = s.unary(UnaryOp::Exp, &contiguous(&[3])).unwrap_err();
    assert!(err.to_string().contains("not supported"), "{err}");
}

fn binary_ref(op: BinaryOp, a: f64, b: f64) -> f64 {
    let t = |c: bool| c as u8 as f64;
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Maximum => a.max(b),
        BinaryOp::Minimum => a.min(b),
        BinaryOp::Eq => t(a == b),
        BinaryOp::Ne => t(a != b),
        BinaryOp::Lt => t(a < b),
        BinaryOp::Le => t(a <= b),
        BinaryOp::Gt => t(a > b),
        BinaryOp::Ge => t(a >= b),
        BinaryOp::SoftThreshold => a.signum() * (a.abs() - b).max(0.0) * t(a != 0.0),
        BinaryOp::GeluShrink => a.signum() * t(a != 0.0) * vars_cpu::special::gelu(a.abs() - b),
    }
}

#[test]
fn binary_ops_match_the_cpu_formulas() {
    let Some(dev) = device() else { return };
    // a: (4, 3); b: a row (1, 3) broadcast to (4, 3) with stride 0.
    let a: Vec<f64> = vec![1., -2., 3., 4., 5., -6., 7., 8., 9., -1., 0., 2.];
    let b: Vec<f64> = vec![2., -2., 4.];
    let la = contiguous(&[4, 3]);
    let lb_full = contiguous(&[1, 3])
        .broadcast_as(&Shape::new(vec![4, 3]))
        .unwrap();
    let b_full: Vec<f64> = lb_full.strided_index().map(|i| b[i]).collect();
    for op in BINARY_OPS {
        // erfc on the device and fdlibm on the host may differ in the last bits.
        let rtol = if op == BinaryOp::GeluShrink {
            1e-14
        } else {
            0.0
        };
        for &dtype in vars_cuda::kernels::binary_dtypes(op) {
            let mk = |v: &[f64]| match dtype {
                DType::F32 => HostData::F32(v.iter().map(|&x| x as f32).collect()),
                DType::F64 => HostData::F64(v.to_vec()),
                _ => HostData::I64(v.iter().map(|&x| x as i64).collect()),
            };
            let (sa, sb, sbf) = (
                upload(dev, mk(&a)),
                upload(dev, mk(&b)),
                upload(dev, mk(&b_full)),
            );
            let want: Vec<f64> = a
                .iter()
                .zip(&b_full)
                .map(|(&x, &y)| {
                    let r = binary_ref(op, x, y);
                    match dtype {
                        DType::I64 if op == BinaryOp::Div => (x as i64 / y as i64) as f64,
                        DType::F32 => r as f32 as f64,
                        _ => r,
                    }
                })
                .collect();
            let what = format!("{} {dtype}", op.name());
            // Contiguous fast path, then the strided path through the broadcast.
            let c = sa.binary(op, &la, &sbf, &la).unwrap();
            assert_all_close(&what, &download(&c, &la), &want, rtol);
            let s = sa.binary(op, &la, &sb, &lb_full).unwrap();
            assert_all_close(
                &format!("{what} broadcast"),
                &download(&s, &la),
                &want,
                rtol,
            );
        }
    }
}

#[test]
fn rng_matches_vars_core_bit_for_bit() {
    let Some(dev) = device() else { return };
    let n = 10_000;
    for seed in [0u64, 1, 42, u64::MAX] {
        let bits = dev.random_bits(n, seed).unwrap();
        let got = match bits.to_host(&contiguous(&[n])).unwrap() {
            HostData::I64(v) => v,
            other => panic!("{other:?}"),
        };
        for (i, g) in got.iter().enumerate() {
            assert_eq!(
                *g as u64,
                vars_core::rng::bits(seed, i as u64),
                "bits({seed}, {i})"
            );
        }
        let uniform = Distribution::Uniform {
            low: -2.0,
            high: 3.0,
        };
        let u64s = download(
            &dev.random(n, DType::F64, uniform, seed).unwrap(),
            &contiguous(&[n]),
        );
        let u32s = download(
            &dev.random(n, DType::F32, uniform, seed).unwrap(),
            &contiguous(&[n]),
        );
        for i in 0..n {
            let want = vars_core::rng::sample(uniform, seed, i as u64);
            assert_eq!(
                u64s[i].to_bits(),
                want.to_bits(),
                "uniform f64 ({seed}, {i})"
            );
            assert_eq!(u32s[i], want as f32 as f64, "uniform f32 ({seed}, {i})");
        }
        let normal = Distribution::Normal {
            mean: 0.5,
            std: 2.0,
        };
        let z = download(
            &dev.random(n, DType::F64, normal, seed).unwrap(),
            &contiguous(&[n]),
        );
        for (i, g) in z.iter().enumerate() {
            let want = vars_core::rng::sample(normal, seed, i as u64);
            // CUDA's log/cos may differ from libm in the last bits.
            assert!(
                close(*g, want, 1e-13),
                "normal ({seed}, {i}): {g} vs {want}"
            );
        }
    }
}

#[test]
fn cast_and_copy_into() {
    let Some(dev) = device() else { return };
    let data = vec![1.5, -2.5, 3.75, 1e10, -0.0, 7.0];
    let s = upload(dev, HostData::F64(data.clone()));
    let l = contiguous(&[2, 3]);
    let t = l.permute(&[1, 0]).unwrap();
    let as_i64 = s.cast(&t, DType::I64).unwrap();
    let want: Vec<f64> = t.strided_index().map(|i| data[i] as i64 as f64).collect();
    assert_eq!(download(&as_i64, &contiguous(&[3, 2])), want);
    let as_f32 = s.cast(&l, DType::F32).unwrap();
    let want: Vec<f64> = data.iter().map(|&x| x as f32 as f64).collect();
    assert_eq!(download(&as_f32, &l), want);

    // Write the transpose of `s` into the right half of a zero (3, 4) buffer.
    let mut dst = dev.full(12, DType::F64, 0.0).unwrap();
    let dst_view = contiguous(&[3, 4]).narrow(1, 2, 2).unwrap();
    s.copy_into(&t, &mut dst, &dst_view).unwrap();
    let mut want = vec![0.0; 12];
    for r in 0..3 {
        for c in 0..2 {
            want[r * 4 + 2 + c] = data[c * 3 + r];
        }
    }
    let got = download(&dst, &contiguous(&[3, 4]));
    assert_eq!(got.len(), 12);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.to_bits(), w.to_bits(), "{got:?} vs {want:?}");
    }
}

#[test]
fn views_past_the_buffer_are_rejected() {
    let Some(dev) = device() else { return };
    let s = dev.full(5, DType::F32, 1.0).unwrap();
    let err = s.unary(UnaryOp::Neg, &contiguous(&[2, 3])).unwrap_err();
    assert!(err.to_string().contains("but the buffer holds 5"), "{err}");
}
