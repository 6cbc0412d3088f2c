//! `erf`/`erfc`/GELU against 40-digit reference values (computed with mpmath, rounded to f64).
//!
//! Tolerances: erf/erfc 1e-14 relative (the implementation is within about one ulp, 2.2e-16);
//! GELU and its derivative 1e-13 relative: their argument `x/√2` is itself rounded, which costs
//! up to `x²·ulp` of relative accuracy in the tail (7e-15 at x = ±8).

use vars_cpu::special::{erf, erfc, gelu, gelu_derivative, normal_cdf};

/// `(x, erf(x), erfc(x))`.
const ERF_TABLE: &[(f64, f64, f64)] = &[
    (1e-10, 1.1283791670955126e-10, 0.999999999887162),
    (0.01, 0.011283415555849618, 0.9887165844441503),
    (0.1, 0.1124629160182849, 0.887537083981715),
    (0.25, 0.27632639016823696, 0.7236736098317631),
    (0.5, 0.5204998778130465, 0.4795001221869535),
    (0.8, 0.7421009647076605, 0.2578990352923395),
    (0.84375, 0.7672256612323416, 0.23277433876765838),
    (0.9, 0.7969082124228322, 0.20309178757716786),
    (1.0, 0.8427007929497149, 0.15729920705028513),
    (1.2, 0.9103139782296353, 0.08968602177036464),
    (1.25, 0.9229001282564583, 0.07709987174354177),
    (1.5, 0.9661051464753108, 0.033894853524689274),
    (2.0, 0.9953222650189527, 0.004677734981047266),
    (2.5, 0.999593047982555, 0.0004069520174449589),
    (2.857, 0.9999466417399131, 5.3358260086846374e-05),
    (3.0, 0.9999779095030014, 2.209049699858544e-05),
    (4.0, 0.9999999845827421, 1.541725790028002e-08),
    (5.0, 0.9999999999984626, 1.537459794428035e-12),
    (5.9, 0.9999999999999999, 7.190409783550478e-17),
    (6.5, 1.0, 3.8421483271206475e-20),
    (10.0, 1.0, 2.088487583762545e-45),
];

/// `(x, gelu(x), gelu'(x))`.
const GELU_TABLE: &[(f64, f64, f64)] = &[
    (-8.0, -4.976768459417427e-15, -3.979607261086796e-14),
    (-5.0, -1.4332578593959695e-06, -7.146946001792295e-06),
    (-3.0, -0.0040496940948902835, -0.011945647204183927),
    (-1.0, -0.15865525393145705, -0.0833154705876863),
    (-0.3, -0.1146265733433142, 0.26767223317289013),
    (0.0, 0.0, 0.5),
    (0.3, 0.1853734266566858, 0.7323277668271099),
    (1.0, 0.8413447460685429, 1.0833154705876864),
    (3.0, 2.99595030590511, 1.011945647204184),
    (8.0, 7.999999999999995, 1.0000000000000397),
];

#[track_caller]
fn assert_rel(got: f64, want: f64, tol: f64, what: &str) {
    let err = if want == 0.0 {
        got.abs()
    } else {
        ((got - want) / want).abs()
    };
    assert!(
        err <= tol,
        "{what}: got {got:e}, want {want:e}, rel err {err:e}"
    );
}

#[test]
fn erf_matches_known_values() {
    // The values from the brief, exactly as stated.
    assert_rel(erf(0.5), 0.5204998778130465, 1e-14, "erf(0.5)");
    assert_rel(erf(1.0), 0.8427007929497149, 1e-14, "erf(1)");
    assert_rel(erf(-2.0), -0.9953222650189527, 1e-14, "erf(-2)");
    assert_rel(erf(3.0), 0.9999779095030014, 1e-14, "erf(3)");
    for &(x, e, c) in ERF_TABLE {
        assert_rel(erf(x), e, 1e-14, &format!("erf({x})"));
        assert_rel(erf(-x), -e, 1e-14, &format!("erf(-{x})"));
        assert_rel(erfc(x), c, 1e-14, &format!("erfc({x})"));
        assert_rel(erfc(-x), 1.0 + e, 1e-14, &format!("erfc(-{x})"));
    }
}

#[test]
fn erf_special_values_and_symmetry() {
    assert!(erf(f64::NAN).is_nan() && erfc(f64::NAN).is_nan());
    assert_eq!(erf(f64::INFINITY), 1.0);
    assert_eq!(erf(f64::NEG_INFINITY), -1.0);
    assert_eq!(erfc(f64::INFINITY), 0.0);
    assert_eq!(erfc(f64::NEG_INFINITY), 2.0);
    assert_eq!(erf(0.0), 0.0);
    assert!(erf(-0.0).is_sign_negative());
    assert_eq!(erfc(0.0), 1.0);
    // Odd symmetry holds exactly, and erf + erfc = 1 to rounding, across all branches.
    let mut x = -7.0;
    while x < 7.0 {
        assert_eq!(erf(-x), -erf(x), "erf odd at {x}");
        assert!((erf(x) + erfc(x) - 1.0).abs() < 4e-16, "erf + erfc at {x}");
        x += 0.0137;
    }
    // Monotone across the branch boundaries.
    for b in [0.84375f64, 1.25, 1.0 / 0.35, 6.0] {
        let below = erf(b - 1e-12);
        let above = erf(b + 1e-12);
        assert!(below <= erf(b) && erf(b) <= above, "erf monotone at {b}");
    }
}

#[test]
fn gelu_matches_known_values() {
    for &(x, g, d) in GELU_TABLE {
        assert_rel(gelu(x), g, 1e-13, &format!("gelu({x})"));
        assert_rel(gelu_derivative(x), d, 1e-13, &format!("gelu'({x})"));
    }
    assert_rel(normal_cdf(-1.0), 0.15865525393145705, 1e-14, "Φ(-1)");
    // The lower tail keeps full relative precision (no 1 + erf cancellation).
    assert_rel(normal_cdf(-20.0), 2.7536241186062336e-89, 1e-13, "Φ(-20)");
}
