//! Colour conversions (protocol §2.7): OpenCV's grey, scikit-image's HSV.

/// OpenCV `RGB2GRAY` / ITU-R 601 luma: `0.299 R + 0.587 G + 0.114 B`.
#[inline]
pub fn gray(r: f64, g: f64, b: f64) -> f64 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// Luma that is exact for grey pixels (`R = G = B` returns that value, with no rounding error):
/// used to bring a colour result back to 1 channel (the grey-image rule of `docs/corruptions.md`).
#[inline]
pub fn luma_exact(r: f64, g: f64, b: f64) -> f64 {
    if r == g && g == b {
        r
    } else {
        gray(r, g, b)
    }
}

/// scikit-image `rgb2hsv` for one pixel in `[0, 1]`: `V = max`, `S = δ/V` (0 where δ = 0),
/// `H` from the max channel with scikit-image's tie order (blue over green over red, since its
/// later assignments overwrite), `/6 mod 1`, 0 where δ = 0.
pub fn rgb2hsv(r: f64, g: f64, b: f64) -> (f64, f64, f64) {
    let v = r.max(g).max(b);
    let delta = v - r.min(g).min(b);
    if delta == 0.0 {
        return (0.0, 0.0, v);
    }
    let s = delta / v;
    let h = if b == v {
        4.0 + (r - g) / delta
    } else if g == v {
        2.0 + (b - r) / delta
    } else {
        (g - b) / delta
    };
    ((h / 6.0).rem_euclid(1.0), s, v)
}

/// scikit-image `hsv2rgb` for one pixel: sextant `hi = ⌊6H⌋ mod 6`, `f = 6H − ⌊6H⌋`,
/// `p = V(1 − S)`, `q = V(1 − fS)`, `t = V(1 − (1 − f)S)`.
pub fn hsv2rgb(h: f64, s: f64, v: f64) -> (f64, f64, f64) {
    let hi_f = (h * 6.0).floor();
    let f = h * 6.0 - hi_f;
    let p = v * (1.0 - s);
    let q = v * (1.0 - f * s);
    let t = v * (1.0 - (1.0 - f) * s);
    // numpy: hi.astype(np.uint8) % 6 (H ∈ [0, 1] so hi ∈ 0..=6)
    match (hi_f as i64).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_primaries() {
        assert_eq!(rgb2hsv(1.0, 0.0, 0.0), (0.0, 1.0, 1.0));
        let (h, s, v) = rgb2hsv(0.0, 1.0, 0.0);
        assert!((h - 1.0 / 3.0).abs() < 1e-15 && s == 1.0 && v == 1.0);
        assert_eq!(rgb2hsv(0.5, 0.5, 0.5), (0.0, 0.0, 0.5));
        for &(r, g, b) in &[
            (0.2, 0.7, 0.7),
            (0.9, 0.1, 0.3),
            (0.3, 0.3, 0.9),
            (1.0, 1.0, 0.0),
            (0.0, 0.0, 0.0),
        ] {
            let (h, s, v) = rgb2hsv(r, g, b);
            let (r2, g2, b2) = hsv2rgb(h, s, v);
            assert!((r - r2).abs() < 1e-12 && (g - g2).abs() < 1e-12 && (b - b2).abs() < 1e-12);
        }
    }

    #[test]
    fn ties_follow_scikit_image() {
        // R = B max: blue's formula wins: 4 + (R − G)/δ = 5 → H = 5/6
        let (h, _, _) = rgb2hsv(1.0, 0.0, 1.0);
        assert!((h - 5.0 / 6.0).abs() < 1e-15);
        // R = G max: green's formula: 2 + (B − R)/δ = 1 → H = 1/6
        let (h, _, _) = rgb2hsv(1.0, 1.0, 0.0);
        assert!((h - 1.0 / 6.0).abs() < 1e-15);
    }

    #[test]
    fn luma_is_exact_on_grey() {
        for v in 0..=255 {
            let x = v as f64 / 255.0;
            assert_eq!(luma_exact(x, x, x), x);
        }
        assert!((gray(1.0, 0.0, 0.0) - 0.299).abs() < 1e-16);
    }
}
