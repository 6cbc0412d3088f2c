//! Elementwise binary ops ([`BinaryOp`]) and the ternary select ([`where_cond`]).
//!
//! The tensor layer broadcasts before calling: both operands arrive with equal shapes, broadcast
//! dims as stride 0. [`map2`] has dedicated inner loops for the contiguous/contiguous and
//! contiguous/broadcast-scalar run shapes, so `x + bias` never materialises the bias.
//!
//! Semantics: comparisons return `1`/`0` in the input dtype (IEEE: every comparison with NaN is
//! false except `ne`); `maximum`/`minimum` propagate NaN like PyTorch; integer `add`/`sub`/`mul`
//! wrap, integer `div` truncates toward zero and reports division by zero as an error.

use std::sync::atomic::{AtomicBool, Ordering};

use vars_core::{BinaryOp, Error, Layout, Result};

use crate::scalar::{Float, Value};
use crate::storage::{Buf, CpuStorage};
use crate::strided::{check_same_shape, check_view, map2, map3};

pub(crate) fn binary(
    op: BinaryOp,
    lhs: &CpuStorage,
    ll: &Layout,
    rhs: &CpuStorage,
    rl: &Layout,
) -> Result<CpuStorage> {
    let name = op.name();
    check_view(name, lhs.len(), ll)?;
    check_view(name, rhs.len(), rl)?;
    check_same_shape(name, &[ll, rl])?;
    Ok(match (lhs.buf(), rhs.buf()) {
        (Buf::F32(a), Buf::F32(b)) => CpuStorage::from_vec_f32(binary_float(op, a, ll, b, rl)),
        (Buf::F64(a), Buf::F64(b)) => CpuStorage::from_vec_f64(binary_float(op, a, ll, b, rl)),
        (Buf::I64(a), Buf::I64(b)) => CpuStorage::from_vec_i64(binary_int(op, a, ll, b, rl)?),
        _ => {
            return Err(Error::DTypeMismatch {
                op: name,
                lhs: lhs.dtype(),
                rhs: rhs.dtype(),
            })
        }
    })
}

/// `1`/`0` from a predicate.
#[inline(always)]
fn indicator<T: Copy>(p: bool, one: T, zero: T) -> T {
    if p {
        one
    } else {
        zero
    }
}

fn binary_float<T: Float>(op: BinaryOp, a: &[T], la: &Layout, b: &[T], lb: &Layout) -> Vec<T> {
    let (one, zero) = (T::ONE, T::ZERO);
    match op {
        BinaryOp::Add => map2(a, la, b, lb, |x: T, y: T| x + y),
        BinaryOp::Sub => map2(a, la, b, lb, |x: T, y: T| x - y),
        BinaryOp::Mul => map2(a, la, b, lb, |x: T, y: T| x * y),
        BinaryOp::Div => map2(a, la, b, lb, |x: T, y: T| x / y),
        BinaryOp::Maximum => map2(a, la, b, lb, |x: T, y: T| {
            if x.is_nan() {
                x
            } else if y.is_nan() {
                y
            } else if x >= y {
                x
            } else {
                y
            }
        }),
        BinaryOp::Minimum => map2(a, la, b, lb, |x: T, y: T| {
            if x.is_nan() {
                x
            } else if y.is_nan() {
                y
            } else if x <= y {
                x
            } else {
                y
            }
        }),
        BinaryOp::Eq => map2(a, la, b, lb, move |x: T, y: T| indicator(x == y, one, zero)),
        BinaryOp::Ne => map2(a, la, b, lb, move |x: T, y: T| indicator(x != y, one, zero)),
        BinaryOp::Lt => map2(a, la, b, lb, move |x: T, y: T| indicator(x < y, one, zero)),
        BinaryOp::Le => map2(a, la, b, lb, move |x: T, y: T| indicator(x <= y, one, zero)),
        BinaryOp::Gt => map2(a, la, b, lb, move |x: T, y: T| indicator(x > y, one, zero)),
        BinaryOp::Ge => map2(a, la, b, lb, move |x: T, y: T| indicator(x >= y, one, zero)),
        BinaryOp::SoftThreshold => map2(a, la, b, lb, move |z: T, t: T| {
            let u = z.abs() - t;
            if z == zero && !u.is_nan() {
                // sign(0) = 0, also for a negative threshold.
                zero
            } else if u > zero {
                if z > zero {
                    u
                } else {
                    zero - u
                }
            } else if u.is_nan() {
                u
            } else {
                zero
            }
        }),
        BinaryOp::GeluShrink => map2(a, la, b, lb, move |z: T, t: T| {
            // sign(z)·gelu(|z| − t), with sign(0) = 0 (so the output is 0 at z = 0).
            let zf = z.to_f64();
            let g = crate::special::gelu(zf.abs() - t.to_f64());
            T::from_f64(if zf > 0.0 {
                g
            } else if zf < 0.0 {
                -g
            } else if zf.is_nan() {
                zf
            } else {
                0.0
            })
        }),
    }
}

fn binary_int(op: BinaryOp, a: &[i64], la: &Layout, b: &[i64], lb: &Layout) -> Result<Vec<i64>> {
    Ok(match op {
        BinaryOp::Add => map2(a, la, b, lb, i64::wrapping_add),
        BinaryOp::Sub => map2(a, la, b, lb, i64::wrapping_sub),
        BinaryOp::Mul => map2(a, la, b, lb, i64::wrapping_mul),
        BinaryOp::Div => {
            let by_zero = AtomicBool::new(false);
            let out = map2(a, la, b, lb, |x: i64, y: i64| {
                if y == 0 {
                    by_zero.store(true, Ordering::Relaxed);
                    0
                } else {
                    x.wrapping_div(y)
                }
            });
            if by_zero.load(Ordering::Relaxed) {
                return Err(Error::InvalidArgument {
                    op: op.name(),
                    shape: la.shape().clone(),
                    msg: "integer division by zero".into(),
                });
            }
            out
        }
        BinaryOp::Maximum => map2(a, la, b, lb, i64::max),
        BinaryOp::Minimum => map2(a, la, b, lb, i64::min),
        BinaryOp::Eq => map2(a, la, b, lb, |x: i64, y: i64| i64::from(x == y)),
        BinaryOp::Ne => map2(a, la, b, lb, |x: i64, y: i64| i64::from(x != y)),
        BinaryOp::Lt => map2(a, la, b, lb, |x: i64, y: i64| i64::from(x < y)),
        BinaryOp::Le => map2(a, la, b, lb, |x: i64, y: i64| i64::from(x <= y)),
        BinaryOp::Gt => map2(a, la, b, lb, |x: i64, y: i64| i64::from(x > y)),
        BinaryOp::Ge => map2(a, la, b, lb, |x: i64, y: i64| i64::from(x >= y)),
        BinaryOp::SoftThreshold | BinaryOp::GeluShrink => {
            return Err(crate::copy::unsupported(
                op.name(),
                vars_core::DType::I64,
                "f32, f64",
            ))
        }
    })
}

/// `cond != 0 ? on_true : on_false` (NaN counts as nonzero, like PyTorch's `bool(nan)`).
pub(crate) fn where_cond(
    cond: &CpuStorage,
    lc: &Layout,
    on_true: &CpuStorage,
    lt: &Layout,
    on_false: &CpuStorage,
    lf: &Layout,
) -> Result<CpuStorage> {
    const OP: &str = "where_cond";
    check_view(OP, cond.len(), lc)?;
    check_view(OP, on_true.len(), lt)?;
    check_view(OP, on_false.len(), lf)?;
    check_same_shape(OP, &[lc, lt, lf])?;
    fn select<C: Value, T: Value>(
        c: &[C],
        lc: &Layout,
        t: &[T],
        lt: &Layout,
        f: &[T],
        lf: &Layout,
    ) -> Vec<T> {
        let zero = C::default();
        map3(
            c,
            lc,
            t,
            lt,
            f,
            lf,
            move |c: C, t: T, f: T| if c != zero { t } else { f },
        )
    }
    macro_rules! by_cond {
        ($t:expr, $f:expr, $wrap:path) => {
            match cond.buf() {
                Buf::F32(c) => $wrap(select(c, lc, $t, lt, $f, lf)),
                Buf::F64(c) => $wrap(select(c, lc, $t, lt, $f, lf)),
                Buf::I64(c) => $wrap(select(c, lc, $t, lt, $f, lf)),
            }
        };
    }
    Ok(match (on_true.buf(), on_false.buf()) {
        (Buf::F32(t), Buf::F32(f)) => by_cond!(t, f, CpuStorage::from_vec_f32),
        (Buf::F64(t), Buf::F64(f)) => by_cond!(t, f, CpuStorage::from_vec_f64),
        (Buf::I64(t), Buf::I64(f)) => by_cond!(t, f, CpuStorage::from_vec_i64),
        _ => {
            return Err(Error::DTypeMismatch {
                op: OP,
                lhs: on_true.dtype(),
                rhs: on_false.dtype(),
            })
        }
    })
}
