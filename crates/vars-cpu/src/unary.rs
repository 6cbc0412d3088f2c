//! Elementwise unary ops ([`UnaryOp`]) on any view.
//!
//! The op is matched once, outside the element loop, and each arm hands a monomorphised closure
//! to [`map1`], which takes the contiguous fast path or walks the strided view. Semantics:
//! - floats follow IEEE and PyTorch: NaN propagates through `relu`, `sign`, `clamp_*`;
//!   `sign(±0) = ±0`; `step(x) = 1` only for `x > 0`; `sigmoid` uses the overflow-free split form;
//! - `gelu`, `gelu_derivative` and `erf` evaluate in f64 (also for f32 input) with the
//!   full-precision [`crate::special`] functions and round once;
//! - integer ops ([`UnaryOp::supports_integers`]) wrap on overflow; `affine`/`clamp_*` with
//!   integral parameters stay in exact integer arithmetic, otherwise they go through f64 and
//!   truncate toward zero like `as`.

use vars_core::{DType, Error, Layout, Result, UnaryOp};

use crate::scalar::Float;
use crate::special;
use crate::storage::{Buf, CpuStorage};
use crate::strided::{check_view, map1};

pub(crate) fn unary(op: UnaryOp, s: &CpuStorage, l: &Layout) -> Result<CpuStorage> {
    check_view(op.name(), s.len(), l)?;
    Ok(match s.buf() {
        Buf::F32(v) => CpuStorage::from_vec_f32(unary_float(op, v, l)),
        Buf::F64(v) => CpuStorage::from_vec_f64(unary_float(op, v, l)),
        Buf::I64(v) => CpuStorage::from_vec_i64(unary_int(op, v, l)?),
    })
}

/// Evaluates `f` in f64 and rounds once.
#[inline(always)]
fn via_f64<T: Float>(f: fn(f64) -> f64) -> impl Fn(T) -> T + Sync {
    move |x: T| T::from_f64(f(x.to_f64()))
}

fn unary_float<T: Float>(op: UnaryOp, v: &[T], l: &Layout) -> Vec<T> {
    let zero = T::ZERO;
    let one = T::ONE;
    match op {
        UnaryOp::Neg => map1(v, l, |x: T| -x),
        UnaryOp::Exp => map1(v, l, |x: T| x.exp()),
        UnaryOp::Log => map1(v, l, |x: T| x.ln()),
        UnaryOp::Sqrt => map1(v, l, |x: T| x.sqrt()),
        UnaryOp::Sqr => map1(v, l, |x: T| x * x),
        UnaryOp::Abs => map1(v, l, |x: T| x.abs()),
        UnaryOp::Sign => map1(v, l, move |x: T| {
            if x > zero {
                one
            } else if x < zero {
                -one
            } else {
                x // ±0 and NaN
            }
        }),
        UnaryOp::Relu => map1(v, l, move |x: T| if x < zero { zero } else { x }),
        UnaryOp::Gelu => map1(v, l, via_f64(special::gelu)),
        UnaryOp::GeluDerivative => map1(v, l, via_f64(special::gelu_derivative)),
        UnaryOp::Erf => map1(v, l, via_f64(special::erf)),
        UnaryOp::Sigmoid => map1(v, l, move |x: T| {
            if x >= zero {
                one / (one + (-x).exp())
            } else {
                let e = x.exp();
                e / (one + e)
            }
        }),
        UnaryOp::Tanh => map1(v, l, |x: T| x.tanh()),
        UnaryOp::Recip => map1(v, l, move |x: T| one / x),
        UnaryOp::Step => map1(v, l, move |x: T| if x > zero { one } else { zero }),
        UnaryOp::Powf(p) => {
            let p = T::from_f64(p);
            map1(v, l, move |x: T| x.powf(p))
        }
        UnaryOp::Affine { mul, add } => {
            let (mul, add) = (T::from_f64(mul), T::from_f64(add));
            map1(v, l, move |x: T| x * mul + add)
        }
        UnaryOp::ClampMin(c) => {
            let c = T::from_f64(c);
            map1(v, l, move |x: T| if x < c { c } else { x })
        }
        UnaryOp::ClampMax(c) => {
            let c = T::from_f64(c);
            map1(v, l, move |x: T| if x > c { c } else { x })
        }
    }
}

/// `v` as an exact `i64` when it is integral and in range.
fn exact_int(v: f64) -> Option<i64> {
    (v.fract() == 0.0 && v >= i64::MIN as f64 && v < i64::MAX as f64).then_some(v as i64)
}

fn unary_int(op: UnaryOp, v: &[i64], l: &Layout) -> Result<Vec<i64>> {
    Ok(match op {
        UnaryOp::Neg => map1(v, l, |x: i64| x.wrapping_neg()),
        UnaryOp::Abs => map1(v, l, |x: i64| x.wrapping_abs()),
        UnaryOp::Sign => map1(v, l, |x: i64| x.signum()),
        UnaryOp::Relu => map1(v, l, |x: i64| x.max(0)),
        UnaryOp::Sqr => map1(v, l, |x: i64| x.wrapping_mul(x)),
        UnaryOp::Step => map1(v, l, |x: i64| i64::from(x > 0)),
        UnaryOp::Affine { mul, add } => match (exact_int(mul), exact_int(add)) {
            (Some(m), Some(a)) => map1(v, l, move |x: i64| x.wrapping_mul(m).wrapping_add(a)),
            _ => map1(v, l, move |x: i64| (x as f64 * mul + add) as i64),
        },
        UnaryOp::ClampMin(c) => map1(
            v,
            l,
            move |x: i64| if (x as f64) < c { c as i64 } else { x },
        ),
        UnaryOp::ClampMax(c) => map1(
            v,
            l,
            move |x: i64| if (x as f64) > c { c as i64 } else { x },
        ),
        _ => {
            debug_assert!(!op.supports_integers());
            return Err(Error::UnsupportedDType {
                op: op.name(),
                dtype: DType::I64,
                supported: "f32, f64",
            });
        }
    })
}
