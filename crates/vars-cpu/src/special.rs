//! Special functions in full double precision: `erf`, `erfc`, the standard normal CDF/PDF and
//! the exact (erf-form) GELU with its derivative.
//!
//! The GELU of the spec is `x·Φ(x)` with the exact normal CDF, so `erf` must be right to the last
//! bit or two; Rust's `std` has no `erf`. The method is the classic one of Sun's fdlibm
//! (`s_erf.c`, 1993), also used by FreeBSD's msun and musl: rational minimax approximations on
//! `[0, 0.84375]`, `[0.84375, 1.25]`, and for `erfc` on `[1.25, 1/0.35]` and `[1/0.35, 28]` in
//! the variable `1/x²` around the asymptotic form `exp(-x² − 0.5625 + R/S)/x`. The published
//! error bound of each rational approximation is below 2⁻⁵⁷, so `erf`/`erfc` are within about
//! one ulp (relative error < 1e-15; the tests check 1e-14 against known values).
//!
//! `Φ(x)` is computed as `erfc(−x/√2)/2`, which keeps full relative precision in the lower tail
//! (where `(1 + erf(x/√2))/2` would cancel). f32 callers convert to f64, evaluate, and round once.
//!
//! The coefficients below are the published fdlibm constants, reproduced under its notice:
//!
//! > Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
//! > Developed at SunPro, a Sun Microsystems, Inc. business. Permission to use, copy, modify,
//! > and distribute this software is freely granted, provided that this notice is preserved.

// The constants are kept digit for digit as published (21 significant digits); each rounds to
// the intended f64.
#![allow(clippy::excessive_precision)]

use std::f64::consts::FRAC_1_SQRT_2;

/// `erf(1)` rounded to single precision: `erf(1 + s) = ERX + P(s)/Q(s)` on `[0.84375, 1.25]`.
const ERX: f64 = 8.45062911510467529297e-01;
/// `2/√π − 1`: `erf(x) ≈ x + EFX·x` for tiny `x`.
const EFX: f64 = 1.28379167095512586316e-01;

/// `erf(x) = x + x·P(x²)/Q(x²)` on `|x| < 0.84375` (coefficients in ascending powers).
const ERF_SMALL_P: [f64; 5] = [
    1.28379167095512558561e-01,
    -3.25042107247001499370e-01,
    -2.84817495755985104766e-02,
    -5.77027029648944159157e-03,
    -2.37630166566501626084e-05,
];
const ERF_SMALL_Q: [f64; 6] = [
    1.0,
    3.97917223959155352819e-01,
    6.50222499887672944485e-02,
    5.08130628187576562776e-03,
    1.32494738004321644526e-04,
    -3.96022827877536812320e-06,
];

/// `erf(1 + s) − ERX = P(s)/Q(s)` on `0.84375 ≤ |x| < 1.25`, `s = |x| − 1`.
const ERF_MID_P: [f64; 7] = [
    -2.36211856075265944077e-03,
    4.14856118683748331666e-01,
    -3.72207876035701323847e-01,
    3.18346619901161753674e-01,
    -1.10894694282396677476e-01,
    3.54783043256182359371e-02,
    -2.16637559486879084300e-03,
];
const ERF_MID_Q: [f64; 7] = [
    1.0,
    1.06420880400844228286e-01,
    5.40397917702171048937e-01,
    7.18286544141962662868e-02,
    1.26171219808761642112e-01,
    1.36370839120290507362e-02,
    1.19844998467991074170e-02,
];

/// `log(x·erfc(x)) + x² + 0.5625 ≈ R(1/x²)/S(1/x²)` on `1.25 ≤ x < 1/0.35`.
const ERFC_NEAR_R: [f64; 8] = [
    -9.86494403484714822705e-03,
    -6.93858572707181764372e-01,
    -1.05586262253232909814e+01,
    -6.23753324503260060396e+01,
    -1.62396669462573470355e+02,
    -1.84605092906711035994e+02,
    -8.12874355063065934246e+01,
    -9.81432934416914548592e+00,
];
const ERFC_NEAR_S: [f64; 9] = [
    1.0,
    1.96512716674392571292e+01,
    1.37657754143519042600e+02,
    4.34565877475229228821e+02,
    6.45387271733267880336e+02,
    4.29008140027567833386e+02,
    1.08635005541779435134e+02,
    6.57024977031928170135e+00,
    -6.04244152148580987438e-02,
];

/// The same on `1/0.35 ≤ x < 28`.
const ERFC_FAR_R: [f64; 7] = [
    -9.86494292470009928597e-03,
    -7.99283237680523006574e-01,
    -1.77579549177547519889e+01,
    -1.60636384855821916062e+02,
    -6.37566443368389627722e+02,
    -1.02509513161107724954e+03,
    -4.83519191608651397019e+02,
];
const ERFC_FAR_S: [f64; 8] = [
    1.0,
    3.03380607434824582924e+01,
    3.25792512996573918826e+02,
    1.53672958608443695994e+03,
    3.19985821950859553908e+03,
    2.55305040643316442583e+03,
    4.74528541206955367215e+02,
    -2.24409524465858183362e+01,
];

/// `c[0] + x·(c[1] + x·(…))`.
#[inline(always)]
fn horner<const N: usize>(x: f64, c: &[f64; N]) -> f64 {
    c.iter().rev().fold(0.0, |acc, &ci| acc * x + ci)
}

/// `x·R(x²)` with `erf(x) = x + x·R(x²)` for `|x| < 0.84375`.
#[inline(always)]
fn small_correction(x: f64) -> f64 {
    let z = x * x;
    x * (horner(z, &ERF_SMALL_P) / horner(z, &ERF_SMALL_Q))
}

/// `erf(|x|) − ERX` for `0.84375 ≤ |x| < 1.25`.
#[inline(always)]
fn mid_correction(a: f64) -> f64 {
    let s = a - 1.0;
    horner(s, &ERF_MID_P) / horner(s, &ERF_MID_Q)
}

/// `erfc(a)` for `1.25 ≤ a < 28`.
#[inline(always)]
fn erfc_tail(a: f64) -> f64 {
    let s = 1.0 / (a * a);
    let (r, q) = if a < 1.0 / 0.35 {
        (horner(s, &ERFC_NEAR_R), horner(s, &ERFC_NEAR_S))
    } else {
        (horner(s, &ERFC_FAR_R), horner(s, &ERFC_FAR_S))
    };
    // exp(−a²) computed as exp(−z²)·exp((z − a)(z + a)) with z = a rounded to 21 bits, so that
    // z² is exact and the large exponent carries no rounding error.
    let z = f64::from_bits(a.to_bits() & 0xffff_ffff_0000_0000);
    (-z * z - 0.5625).exp() * ((z - a) * (z + a) + r / q).exp() / a
}

/// The error function `erf(x) = 2/√π ∫₀ˣ e^{−t²} dt`, accurate to about one ulp.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a < 0.84375 {
        if a < f64::from_bits(0x3e30_0000_0000_0000) {
            // |x| < 2⁻²⁸: erf(x) = 2x/√π to full precision.
            return x + EFX * x;
        }
        return x + small_correction(x);
    }
    let y = if a < 1.25 {
        ERX + mid_correction(a)
    } else if a < 6.0 {
        1.0 - erfc_tail(a)
    } else {
        1.0
    };
    y.copysign(x)
}

/// The complementary error function `erfc(x) = 1 − erf(x)`, with full relative precision for
/// large positive `x` (where `1 − erf(x)` would cancel).
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a < 0.84375 {
        if a < f64::from_bits(0x3c70_0000_0000_0000) {
            // |x| < 2⁻⁵⁶
            return 1.0 - x;
        }
        let c = small_correction(x);
        return if x < 0.25 {
            1.0 - (x + c)
        } else {
            0.5 - (x - 0.5 + c)
        };
    }
    if a < 1.25 {
        let p = mid_correction(a);
        return if x > 0.0 {
            (1.0 - ERX) - p
        } else {
            1.0 + (ERX + p)
        };
    }
    if a < 28.0 {
        let t = erfc_tail(a);
        return if x > 0.0 { t } else { 2.0 - t };
    }
    if x > 0.0 {
        0.0
    } else {
        2.0
    }
}

/// `1/√(2π)`.
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Standard normal CDF `Φ(x) = erfc(−x/√2)/2`.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x * FRAC_1_SQRT_2)
}

/// Standard normal density `φ(x) = e^{−x²/2}/√(2π)`.
pub fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() * FRAC_1_SQRT_2PI
}

/// Exact GELU, `x·Φ(x)`.
pub fn gelu(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        // −∞·Φ(−∞) would be NaN; the limit is 0.
        return 0.0;
    }
    x * normal_cdf(x)
}

/// `d/dx GELU(x) = Φ(x) + x·φ(x)`.
pub fn gelu_derivative(x: f64) -> f64 {
    if x.is_infinite() {
        // Φ(±∞) + (±∞)·0 would be NaN; the limits are 1 and 0.
        return if x > 0.0 { 1.0 } else { 0.0 };
    }
    normal_cdf(x) + x * normal_pdf(x)
}
