//! Elementwise ops against f64 std-lib references, on contiguous data and on strided views
//! (permuted, narrowed, broadcast). Tolerances: [`tolerance`] per dtype unless stated.

use super::util::*;
use crate::{Backend, BinaryOp, DType, Result, Tensor, UnaryOp};

/// An f64 reference of a binary arithmetic op.
pub type BinaryRef = fn(f64, f64) -> f64;
/// An f64 reference of a comparison.
pub type CompareRef = fn(f64, f64) -> bool;
type View<B> = (&'static str, Tensor<B>, Vec<usize>, Vec<f64>);

/// One unary op under test: the tensor op, its f64 reference, and the input domain.
pub struct UnaryCase<B: Backend> {
    pub name: &'static str,
    pub op: fn(&Tensor<B>) -> Result<Tensor<B>>,
    pub reference: fn(f64) -> f64,
    pub lo: f64,
    pub hi: f64,
    /// Draw `lo ≤ |x| < hi` with random signs instead of `[lo, hi)` (ops with a kink or pole at 0).
    pub symmetric: bool,
}

fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Every float unary op of the `Tensor` API with its reference and domain.
pub fn unary_cases<B: Backend>() -> Vec<UnaryCase<B>> {
    macro_rules! case {
        ($name:literal, $op:expr, $r:expr, $lo:expr, $hi:expr) => {
            case!($name, $op, $r, $lo, $hi, false)
        };
        ($name:literal, $op:expr, $r:expr, $lo:expr, $hi:expr, $sym:expr) => {
            UnaryCase {
                name: $name,
                op: $op,
                reference: $r,
                lo: $lo,
                hi: $hi,
                symmetric: $sym,
            }
        };
    }
    vec![
        case!("neg", |t| t.neg(), |x| -x, -3.0, 3.0),
        case!("exp", |t| t.exp(), f64::exp, -3.0, 3.0),
        case!("log", |t| t.log(), f64::ln, 0.05, 5.0),
        case!("sqrt", |t| t.sqrt(), f64::sqrt, 0.0, 5.0),
        case!("sqr", |t| t.sqr(), |x| x * x, -3.0, 3.0),
        case!("abs", |t| t.abs(), f64::abs, 0.1, 3.0, true),
        case!("sign", |t| t.sign(), sign, 0.1, 3.0, true),
        case!("relu", |t| t.relu(), |x| x.max(0.0), 0.1, 3.0, true),
        case!("gelu", |t| t.gelu(), gelu, -6.0, 6.0),
        case!("erf", |t| t.erf(), erf, -4.0, 4.0),
        case!(
            "sigmoid",
            |t| t.sigmoid(),
            |x| 1.0 / (1.0 + (-x).exp()),
            -10.0,
            10.0
        ),
        case!("tanh", |t| t.tanh(), f64::tanh, -4.0, 4.0),
        case!("recip", |t| t.recip(), f64::recip, 0.2, 3.0, true),
        case!("powf(2.5)", |t| t.powf(2.5), |x| x.powf(2.5), 0.0, 3.0),
        case!("powf(-1.5)", |t| t.powf(-1.5), |x| x.powf(-1.5), 0.2, 3.0),
        case!("powf(0.5)", |t| t.powf(0.5), f64::sqrt, 0.0, 3.0),
        // Integral exponents are defined for negative bases (like std's powf and torch.pow).
        case!("powf(3)", |t| t.powf(3.0), |x| x.powf(3.0), -2.0, 2.0),
        case!("powf(2)", |t| t.powf(2.0), |x| x * x, -2.0, 2.0),
        case!(
            "affine",
            |t| t.affine(2.5, -1.0),
            |x| 2.5 * x - 1.0,
            -3.0,
            3.0
        ),
        case!(
            "add_scalar",
            |t| t.add_scalar(1.25),
            |x| x + 1.25,
            -3.0,
            3.0
        ),
        case!(
            "mul_scalar",
            |t| t.mul_scalar(-0.75),
            |x| -0.75 * x,
            -3.0,
            3.0
        ),
        case!(
            "clamp",
            |t| t.clamp(-0.5, 0.75),
            |x| x.clamp(-0.5, 0.75),
            -2.0,
            2.0
        ),
        case!(
            "clamp_min",
            |t| t.clamp_min(0.25),
            |x| x.max(0.25),
            -2.0,
            2.0
        ),
        case!(
            "clamp_max",
            |t| t.clamp_max(-0.25),
            |x| x.min(-0.25),
            -2.0,
            2.0
        ),
    ]
}

fn case_data(c: &UnaryCase<impl Backend>, n: usize, seed: u64) -> Vec<f64> {
    if c.symmetric {
        away_from_zero_vec(n, seed, c.lo, c.hi)
    } else {
        uniform_vec(n, seed, c.lo, c.hi)
    }
}

/// Every unary op on contiguous f32 and f64 data (odd sizes, to hit vector-loop tails).
pub fn unary_contiguous<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in FLOAT_DTYPES {
        let (rtol, atol) = tolerance(dt);
        for (k, c) in unary_cases::<B>().iter().enumerate() {
            for dims in [vec![257], vec![3, 5, 7]] {
                let n = dims.iter().product();
                let data = round_to(dt, &case_data(c, n, 100 + k as u64));
                let x = tensor::<B>(&data, dims.clone(), dt, dev)?;
                let y = (c.op)(&x)?;
                assert_eq!(y.dtype(), dt, "{} changed the dtype", c.name);
                let want: Vec<f64> = data.iter().map(|&v| (c.reference)(v)).collect();
                assert_tensor(
                    &format!("{} ({dt}, {dims:?})", c.name),
                    &y,
                    &dims,
                    &want,
                    rtol,
                    atol,
                )?;
            }
        }
    }
    Ok(())
}

/// Every unary op on permuted, narrowed, transposed and broadcast views.
pub fn unary_non_contiguous<B: Backend>(dev: &B::Device) -> Result<()> {
    let dims = [6, 5, 4];
    for dt in FLOAT_DTYPES {
        let (rtol, atol) = tolerance(dt);
        for (k, c) in unary_cases::<B>().iter().enumerate() {
            let data = round_to(dt, &case_data(c, 120, 200 + k as u64));
            let x = tensor::<B>(&data, dims.to_vec(), dt, dev)?;
            let small = tensor::<B>(&data[..5], [5, 1], dt, dev)?;
            let views: Vec<View<B>> = vec![
                (
                    "permuted",
                    x.permute(&[2, 0, 1])?,
                    vec![4, 6, 5],
                    reference_permute(&data, &dims, &[2, 0, 1]),
                ),
                (
                    "narrowed",
                    x.narrow(0, 1, 4)?.narrow(2, 1, 2)?,
                    vec![4, 5, 2],
                    reference_narrow(
                        &reference_narrow(&data, &dims, 0, 1, 4),
                        &[4, 5, 4],
                        2,
                        1,
                        2,
                    ),
                ),
                (
                    "transposed+narrowed",
                    x.t()?.narrow(2, 2, 3)?,
                    vec![6, 4, 3],
                    reference_narrow(
                        &reference_permute(&data, &dims, &[0, 2, 1]),
                        &[6, 4, 5],
                        2,
                        2,
                        3,
                    ),
                ),
                (
                    "broadcast",
                    small.broadcast_as([3, 5, 4])?,
                    vec![3, 5, 4],
                    reference_broadcast(&data[..5], &[5, 1], &[3, 5, 4]),
                ),
            ];
            for (what, view, vdims, vdata) in views {
                let y = (c.op)(&view)?;
                assert!(y.is_contiguous());
                let want: Vec<f64> = vdata.iter().map(|&v| (c.reference)(v)).collect();
                assert_tensor(
                    &format!("{} of {what} view ({dt})", c.name),
                    &y,
                    &vdims,
                    &want,
                    rtol,
                    atol,
                )?;
            }
        }
    }
    Ok(())
}

/// Exact values at special points: `sign(0) = 0`, kinks, identities.
pub fn unary_special_values<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in FLOAT_DTYPES {
        let x = tensor::<B>(&[-2.0, -0.0, 0.0, 3.0], [4], dt, dev)?;
        assert_tensor_eq("sign", &x.sign()?, &[4], &[-1.0, 0.0, 0.0, 1.0])?;
        assert_tensor_eq("relu", &x.relu()?, &[4], &[0.0, 0.0, 0.0, 3.0])?;
        assert_tensor_eq("abs", &x.abs()?, &[4], &[2.0, 0.0, 0.0, 3.0])?;
        assert_tensor_eq(
            "step",
            &x.unary(UnaryOp::Step)?,
            &[4],
            &[0.0, 0.0, 0.0, 1.0],
        )?;
        let y = tensor::<B>(&[0.0, 1.0, 4.0], [3], dt, dev)?;
        assert_tensor_eq("exp(0)", &y.narrow(0, 0, 1)?.exp()?, &[1], &[1.0])?;
        assert_tensor_eq("log(1)", &y.narrow(0, 1, 1)?.log()?, &[1], &[0.0])?;
        assert_tensor_eq("sqrt", &y.sqrt()?, &[3], &[0.0, 1.0, 2.0])?;
        assert_tensor_eq("sigmoid(0)", &y.narrow(0, 0, 1)?.sigmoid()?, &[1], &[0.5])?;
        assert_tensor_eq("tanh(0)", &y.narrow(0, 0, 1)?.tanh()?, &[1], &[0.0])?;
        assert_tensor_eq("erf(0)", &y.narrow(0, 0, 1)?.erf()?, &[1], &[0.0])?;
        assert_tensor_eq("gelu(0)", &y.narrow(0, 0, 1)?.gelu()?, &[1], &[0.0])?;
        assert_tensor_eq("recip(4)", &y.narrow(0, 2, 1)?.recip()?, &[1], &[0.25])?;
        let (rtol, atol) = tolerance(dt);
        assert_tensor(
            "powf(2, 3)",
            &tensor::<B>(&[2.0, -2.0], [2], dt, dev)?.powf(3.0)?,
            &[2],
            &[8.0, -8.0],
            rtol,
            atol,
        )?;
        assert_tensor(
            "log(0)",
            &y.narrow(0, 0, 1)?.log()?,
            &[1],
            &[f64::NEG_INFINITY],
            0.0,
            0.0,
        )?;
    }
    Ok(())
}

/// GELU is the exact erf form, not the tanh approximation (which is off by ~1e-4 at 1.0), and
/// its derivative op matches `Φ(x) + x·φ(x)`.
pub fn gelu_erf_exact<B: Backend>(dev: &B::Device) -> Result<()> {
    // The suite's own references first (values from mpmath).
    assert!((gelu(1.0) - 0.841_344_746_068_542_9).abs() < 1e-15);
    assert!((erf(0.5) - 0.520_499_877_813_046_5).abs() < 1e-15);
    assert!((erf(-2.0) + 0.995_322_265_018_952_7).abs() < 1e-15);
    assert!((erf(3.0) - 0.999_977_909_503_001_4).abs() < 1e-15);
    // Known values in f64 to 1e-14 (a few ulp).
    let x = Tensor::<B>::from_vec(vec![1.0f64, -0.5], [2], dev)?;
    let g = x.gelu()?.to_vec::<f64>()?;
    assert!(
        (g[0] - 0.841_344_746_068_542_9).abs() < 1e-14,
        "gelu(1.0) = {:e}",
        g[0]
    );
    assert!(
        (g[1] + 0.154_268_769_362_993_44).abs() < 1e-14,
        "gelu(-0.5) = {:e}",
        g[1]
    );
    let e = Tensor::<B>::from_vec(vec![0.5f64, 1.0, -2.0, 3.0], [4], dev)?
        .erf()?
        .to_vec::<f64>()?;
    let want = [
        0.520_499_877_813_046_5,
        0.842_700_792_949_714_9,
        -0.995_322_265_018_952_7,
        0.999_977_909_503_001_4,
    ];
    assert_close("erf known values", &e, &want, 1e-14, 1e-15);
    for dt in FLOAT_DTYPES {
        let (rtol, atol) = tolerance(dt);
        let data = round_to(dt, &uniform_vec(301, 5, -6.0, 6.0));
        let t = tensor::<B>(&data, [301], dt, dev)?;
        let want: Vec<f64> = data.iter().map(|&v| gelu_derivative(v)).collect();
        assert_tensor(
            &format!("gelu_derivative ({dt})"),
            &t.unary(UnaryOp::GeluDerivative)?,
            &[301],
            &want,
            rtol,
            atol,
        )?;
    }
    Ok(())
}

/// The ops defined on integers (see [`UnaryOp::supports_integers`]) are exact on i64.
pub fn unary_integer<B: Backend>(dev: &B::Device) -> Result<()> {
    let data = [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 5.0];
    let x = tensor::<B>(&data, [7], DType::I64, dev)?;
    type Ref = fn(f64) -> f64;
    let cases: Vec<(UnaryOp, Ref)> = vec![
        (UnaryOp::Neg, |v| -v),
        (UnaryOp::Abs, f64::abs),
        (UnaryOp::Sign, sign),
        (UnaryOp::Relu, |v| v.max(0.0)),
        (UnaryOp::Sqr, |v| v * v),
        (UnaryOp::Step, |v| if v > 0.0 { 1.0 } else { 0.0 }),
        (UnaryOp::Affine { mul: 2.0, add: 3.0 }, |v| 2.0 * v + 3.0),
        (UnaryOp::ClampMin(-1.0), |v| v.max(-1.0)),
        (UnaryOp::ClampMax(2.0), |v| v.min(2.0)),
    ];
    for (op, r) in cases {
        assert!(op.supports_integers());
        let y = x.unary(op)?;
        assert_eq!(
            y.dtype(),
            DType::I64,
            "{} on i64 changed the dtype",
            op.name()
        );
        let want: Vec<f64> = data.iter().map(|&v| r(v)).collect();
        assert_tensor_eq(&format!("{} on i64", op.name()), &y, &[7], &want)?;
        // And on a strided view.
        let v = x.narrow(0, 1, 6)?.reshape([2, 3])?.t()?;
        let vd = reference_permute(&data[1..], &[2, 3], &[1, 0]);
        let want: Vec<f64> = vd.iter().map(|&v| r(v)).collect();
        assert_tensor_eq(
            &format!("{} on strided i64", op.name()),
            &v.unary(op)?,
            &[3, 2],
            &want,
        )?;
    }
    Ok(())
}

/// Scalar arithmetic keeps the dtype and is exact where the math is.
pub fn scalar_ops<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in FLOAT_DTYPES {
        let x = tensor::<B>(&[1.0, -2.0, 0.5, 4.0], [2, 2], dt, dev)?;
        assert_tensor_eq(
            "affine",
            &x.affine(0.5, 0.25)?,
            &[2, 2],
            &[0.75, -0.75, 0.5, 2.25],
        )?;
        assert_tensor_eq(
            "add_scalar",
            &x.add_scalar(-1.0)?,
            &[2, 2],
            &[0.0, -3.0, -0.5, 3.0],
        )?;
        assert_tensor_eq(
            "mul_scalar",
            &x.mul_scalar(2.0)?,
            &[2, 2],
            &[2.0, -4.0, 1.0, 8.0],
        )?;
        assert_tensor_eq(
            "clamp",
            &x.clamp(-1.0, 1.0)?,
            &[2, 2],
            &[1.0, -1.0, 0.5, 1.0],
        )?;
        assert_tensor_eq(
            "clamp of transposed",
            &x.t()?.clamp(0.0, 2.0)?,
            &[2, 2],
            &[1.0, 0.5, 0.0, 2.0],
        )?;
        assert_eq!(x.affine(0.5, 0.25)?.dtype(), dt);
    }
    Ok(())
}

/// The arithmetic binary ops with their references.
pub fn binary_arith_cases() -> Vec<(BinaryOp, BinaryRef)> {
    vec![
        (BinaryOp::Add, |a, b| a + b),
        (BinaryOp::Sub, |a, b| a - b),
        (BinaryOp::Mul, |a, b| a * b),
        (BinaryOp::Div, |a, b| a / b),
        (BinaryOp::Maximum, f64::max),
        (BinaryOp::Minimum, f64::min),
    ]
}

/// The comparisons with their references (1/0).
pub fn comparison_cases() -> Vec<(BinaryOp, CompareRef)> {
    vec![
        (BinaryOp::Eq, |a, b| a == b),
        (BinaryOp::Ne, |a, b| a != b),
        (BinaryOp::Lt, |a, b| a < b),
        (BinaryOp::Le, |a, b| a <= b),
        (BinaryOp::Gt, |a, b| a > b),
        (BinaryOp::Ge, |a, b| a >= b),
    ]
}

/// Checks `op` on `(lhs, rhs)` views (given with their row-major values and dims) against the
/// reference with broadcasting.
#[allow(clippy::type_complexity)]
fn check_binary<B: Backend>(
    what: &str,
    op: BinaryOp,
    r: &dyn Fn(f64, f64) -> f64,
    (l, ld, lv): (&Tensor<B>, &[usize], &[f64]),
    (rt, rd, rv): (&Tensor<B>, &[usize], &[f64]),
    (rtol, atol): (f64, f64),
) -> Result<()> {
    let out = crate::Shape::new(ld).broadcast_with("test", &crate::Shape::new(rd))?;
    let want: Vec<f64> = (0..out.elem_count())
        .map(|f| {
            let idx = unravel(f, out.dims());
            r(
                lv[broadcast_source_index(&idx, ld)],
                rv[broadcast_source_index(&idx, rd)],
            )
        })
        .collect();
    let y = l.binary(rt, op)?;
    assert_eq!(
        y.dtype(),
        l.dtype(),
        "{what}: {} changed the dtype",
        op.name()
    );
    assert_tensor(
        &format!("{what}: {} {ld:?} x {rd:?}", op.name()),
        &y,
        out.dims(),
        &want,
        rtol,
        atol,
    )
}

/// Arithmetic ops on equal shapes, f32 and f64.
pub fn binary_same_shape<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in FLOAT_DTYPES {
        let dims = [7, 9];
        let (a, av) = random_tensor::<B>(&dims, dt, 1, -3.0, 3.0, dev)?;
        let bv = round_to(dt, &away_from_zero_vec(63, 2, 0.25, 3.0));
        let b = tensor::<B>(&bv, dims.to_vec(), dt, dev)?;
        for (op, r) in binary_arith_cases() {
            check_binary(
                &format!("{dt}"),
                op,
                &r,
                (&a, &dims, &av),
                (&b, &dims, &bv),
                tolerance(dt),
            )?;
        }
        // Named methods agree with `binary`.
        assert_eq!(
            a.add(&b)?.to_vec_f64()?,
            a.binary(&b, BinaryOp::Add)?.to_vec_f64()?
        );
        assert_eq!(
            a.div(&b)?.to_vec_f64()?,
            a.binary(&b, BinaryOp::Div)?.to_vec_f64()?
        );
    }
    Ok(())
}

/// Broadcasting in both directions: size-1 dims, missing leading dims, scalars.
pub fn binary_broadcast<B: Backend>(dev: &B::Device) -> Result<()> {
    let pairs: [(&[usize], &[usize]); 8] = [
        (&[3, 1], &[1, 4]),
        (&[4], &[2, 3, 4]),
        (&[2, 3, 4], &[4]),
        (&[2, 1, 4], &[3, 1]),
        (&[], &[2, 3]),
        (&[2, 3], &[]),
        (&[1], &[5]),
        (&[2, 1, 3, 1], &[1, 4, 1, 5]),
    ];
    for dt in FLOAT_DTYPES {
        for (k, (ld, rd)) in pairs.iter().enumerate() {
            let (a, av) = random_tensor::<B>(ld, dt, 10 + k as u64, -3.0, 3.0, dev)?;
            let bv = round_to(
                dt,
                &away_from_zero_vec(rd.iter().product(), 20 + k as u64, 0.25, 3.0),
            );
            let b = tensor::<B>(&bv, rd.to_vec(), dt, dev)?;
            for (op, r) in binary_arith_cases() {
                check_binary(
                    &format!("{dt}"),
                    op,
                    &r,
                    (&a, ld, &av),
                    (&b, rd, &bv),
                    tolerance(dt),
                )?;
            }
        }
    }
    Ok(())
}

/// Binary ops on permuted, narrowed and broadcast operands.
pub fn binary_non_contiguous<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in FLOAT_DTYPES {
        let (x, xv) = random_tensor::<B>(&[4, 5, 6], dt, 30, -3.0, 3.0, dev)?;
        let yv = round_to(dt, &away_from_zero_vec(6 * 4 * 5, 31, 0.25, 3.0));
        let y = tensor::<B>(&yv, [6, 4, 5], dt, dev)?;
        // lhs permuted to [6, 4, 5]; rhs contiguous.
        let lp = x.permute(&[2, 0, 1])?;
        let lpv = reference_permute(&xv, &[4, 5, 6], &[2, 0, 1]);
        // lhs narrowed [2, 5, 6] vs rhs permuted+narrowed [5, 6] broadcast.
        let ln = x.narrow(0, 1, 2)?;
        let lnv = reference_narrow(&xv, &[4, 5, 6], 0, 1, 2);
        let rn = y.permute(&[2, 0, 1])?.narrow(1, 3, 1)?.squeeze(1)?.t()?; // [5, 6, 4] -> [5, 1, 4] -> [5, 4] -> [4, 5]
        let rnv = {
            let p = reference_permute(&yv, &[6, 4, 5], &[2, 0, 1]); // [5, 6, 4]
            let n = reference_narrow(&p, &[5, 6, 4], 1, 3, 1); // [5, 1, 4]
            reference_permute(&n, &[5, 4], &[1, 0]) // squeeze -> [5, 4]; t -> [4, 5]
        };
        assert_eq!(rn.dims(), &[4, 5]);
        for (op, r) in binary_arith_cases() {
            check_binary(
                &format!("{dt} permuted"),
                op,
                &r,
                (&lp, &[6, 4, 5], &lpv),
                (&y, &[6, 4, 5], &yv),
                tolerance(dt),
            )?;
            check_binary(
                &format!("{dt} strided bcast"),
                op,
                &r,
                (&lp, &[6, 4, 5], &lpv),
                (&rn, &[4, 5], &rnv),
                tolerance(dt),
            )?;
            check_binary(
                &format!("{dt} reversed"),
                op,
                &r,
                (&rn, &[4, 5], &rnv),
                (&lp, &[6, 4, 5], &lpv),
                tolerance(dt),
            )?;
            let ln_t = ln.transpose(1, 2)?; // [2, 6, 5]
            let ln_tv = reference_permute(&lnv, &[2, 5, 6], &[0, 2, 1]);
            let yb = y.narrow(0, 2, 1)?.narrow(1, 3, 1)?; // [1, 1, 5]
            let ybv = reference_narrow(
                &reference_narrow(&yv, &[6, 4, 5], 0, 2, 1),
                &[1, 4, 5],
                1,
                3,
                1,
            );
            check_binary(
                &format!("{dt} narrowed"),
                op,
                &r,
                (&ln_t, &[2, 6, 5], &ln_tv),
                (&yb, &[1, 1, 5], &ybv),
                tolerance(dt),
            )?;
        }
    }
    Ok(())
}

/// Comparisons return 1/0 in the input dtype, with ties and broadcasting, in every dtype.
pub fn comparisons<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in ALL_DTYPES {
        // Small integers: many ties.
        let av: Vec<f64> = uniform_vec(12, 40, -2.0, 2.0)
            .iter()
            .map(|v| v.floor())
            .collect();
        let bv: Vec<f64> = uniform_vec(4, 41, -2.0, 2.0)
            .iter()
            .map(|v| v.floor())
            .collect();
        let a = tensor::<B>(&av, [3, 4], dt, dev)?;
        let b = tensor::<B>(&bv, [4], dt, dev)?;
        for (op, r) in comparison_cases() {
            let rf = |x: f64, y: f64| if r(x, y) { 1.0 } else { 0.0 };
            check_binary(
                &format!("{dt}"),
                op,
                &rf,
                (&a, &[3, 4], &av),
                (&b, &[4], &bv),
                (0.0, 0.0),
            )?;
            check_binary(
                &format!("{dt} reversed"),
                op,
                &rf,
                (&b, &[4], &bv),
                (&a, &[3, 4], &av),
                (0.0, 0.0),
            )?;
            let at = a.t()?;
            let atv = reference_permute(&av, &[3, 4], &[1, 0]);
            let bc = b.reshape([4, 1])?;
            check_binary(
                &format!("{dt} transposed"),
                op,
                &rf,
                (&at, &[4, 3], &atv),
                (&bc, &[4, 1], &bv),
                (0.0, 0.0),
            )?;
        }
    }
    Ok(())
}

/// `maximum`/`minimum` with ties and broadcasting.
pub fn maximum_minimum<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in ALL_DTYPES {
        let a = tensor::<B>(&[1.0, 5.0, -2.0, 3.0, 3.0, 0.0], [2, 3], dt, dev)?;
        let b = tensor::<B>(&[1.0, 4.0, 0.0], [3], dt, dev)?;
        assert_tensor_eq(
            "maximum",
            &a.maximum(&b)?,
            &[2, 3],
            &[1.0, 5.0, 0.0, 3.0, 4.0, 0.0],
        )?;
        assert_tensor_eq(
            "minimum",
            &a.minimum(&b)?,
            &[2, 3],
            &[1.0, 4.0, -2.0, 1.0, 3.0, 0.0],
        )?;
        assert_tensor_eq(
            "maximum reversed",
            &b.maximum(&a)?,
            &[2, 3],
            &[1.0, 5.0, 0.0, 3.0, 4.0, 0.0],
        )?;
        assert_tensor_eq(
            "minimum of transposed",
            &a.t()?.minimum(&b.reshape([3, 1])?)?,
            &[3, 2],
            &[1.0, 1.0, 4.0, 3.0, -2.0, 0.0],
        )?;
    }
    Ok(())
}

/// Integer arithmetic is exact.
pub fn binary_integer<B: Backend>(dev: &B::Device) -> Result<()> {
    let av: Vec<f64> = (0..12).map(|i| (i as f64) * 3.0 - 17.0).collect();
    let bv = [2.0, -3.0, 7.0, 1.0];
    let a = tensor::<B>(&av, [3, 4], DType::I64, dev)?;
    let b = tensor::<B>(&bv, [4], DType::I64, dev)?;
    let cases: Vec<(BinaryOp, BinaryRef)> = vec![
        (BinaryOp::Add, |a, b| a + b),
        (BinaryOp::Sub, |a, b| a - b),
        (BinaryOp::Mul, |a, b| a * b),
        (BinaryOp::Maximum, f64::max),
        (BinaryOp::Minimum, f64::min),
    ];
    for (op, r) in cases {
        check_binary(
            "i64",
            op,
            &r,
            (&a, &[3, 4], &av),
            (&b, &[4], &bv),
            (0.0, 0.0),
        )?;
        check_binary(
            "i64 transposed",
            op,
            &r,
            (&a.t()?, &[4, 3], &reference_permute(&av, &[3, 4], &[1, 0])),
            (&b.reshape([4, 1])?, &[4, 1], &bv),
            (0.0, 0.0),
        )?;
    }
    // Large values stay exact (no round trip through f64).
    let big = Tensor::<B>::from_vec(vec![(1i64 << 53) + 1, i64::MAX - 1], [2], dev)?;
    let one = Tensor::<B>::from_vec(vec![1i64], [1], dev)?;
    assert_eq!(
        big.add(&one)?.to_vec::<i64>()?,
        vec![(1i64 << 53) + 2, i64::MAX]
    );
    Ok(())
}

/// `where_cond` with broadcasting of all three operands, strided operands, any non-zero
/// condition value counting as true, and i64 masks selecting between float tensors.
pub fn where_cond<B: Backend>(dev: &B::Device) -> Result<()> {
    for dt in ALL_DTYPES {
        let cv = [1.0, 0.0, -2.0];
        let c = tensor::<B>(&cv, [3, 1], dt, dev)?;
        let (t, tv) = random_tensor::<B>(&[3, 4], dt, 50, -5.0, 5.0, dev)?;
        let f = tensor::<B>(&[9.0], (), dt, dev)?;
        let y = Tensor::where_cond(&c, &t, &f)?;
        let want: Vec<f64> = (0..12)
            .map(|i| if cv[i / 4] != 0.0 { tv[i] } else { 9.0 })
            .collect();
        assert_tensor_eq(&format!("where_cond ({dt})"), &y, &[3, 4], &want)?;
        // Strided operands: transposed condition, permuted branches.
        let c2 = tensor::<B>(&[1.0, 0.0, 0.0, 1.0, 1.0, 0.0], [2, 3], dt, dev)?.t()?; // [3, 2]
        let c2v = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0];
        let tt = t.narrow(1, 1, 2)?; // [3, 2]
        let ttv = reference_narrow(&tv, &[3, 4], 1, 1, 2);
        let ff = t.narrow(1, 0, 2)?.neg()?;
        let ffv: Vec<f64> = reference_narrow(&tv, &[3, 4], 1, 0, 2)
            .iter()
            .map(|v| -v)
            .collect();
        let want: Vec<f64> = (0..6)
            .map(|i| if c2v[i] != 0.0 { ttv[i] } else { ffv[i] })
            .collect();
        assert_tensor_eq(
            &format!("where_cond strided ({dt})"),
            &Tensor::where_cond(&c2, &tt, &ff)?,
            &[3, 2],
            &want,
        )?;
    }
    // A mask from an integer comparison selecting between f64 tensors.
    let idx = Tensor::<B>::arange(4, DType::I64, dev)?;
    let mask = idx.gt(&Tensor::<B>::from_vec(vec![1i64], (), dev)?)?;
    let a = Tensor::<B>::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [4], dev)?;
    let b = a.neg()?;
    assert_tensor_eq(
        "where_cond with i64 mask",
        &Tensor::where_cond(&mask, &a, &b)?,
        &[4],
        &[-1.0, -2.0, 3.0, 4.0],
    )?;
    // And a float mask from a float comparison.
    let m = a.ge(&Tensor::<B>::from_vec(vec![3.0f64], (), dev)?)?;
    assert_tensor_eq(
        "where_cond with comparison mask",
        &Tensor::where_cond(&m, &a, &b)?,
        &[4],
        &[-1.0, -2.0, 3.0, 4.0],
    )?;
    Ok(())
}
