//! Resampling with the reference libraries' exact conventions:
//! PIL `resize` (BOX, BILINEAR, BICUBIC, 8-bit fixed point), OpenCV `resize(INTER_LINEAR)` on 8-bit
//! images (11-bit fixed point), `getAffineTransform` + `warpAffine` (bilinear on OpenCV's 1/32
//! pixel grid, reflect-101), SciPy `map_coordinates(order=1, mode='reflect')`.

use super::filter::{border_index, Border};

/// PIL resampling filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PilFilter {
    /// `Image.BOX`: weight 1 on `(−0.5, 0.5]`, support 0.5 (area average when shrinking, nearest
    /// neighbour when enlarging).
    Box,
    /// `Image.BILINEAR`: triangle, support 1 (antialiased when shrinking).
    Bilinear,
    /// `Image.BICUBIC`: Keys' cubic convolution with `a = −0.5`, support 2 (antialiased when
    /// shrinking) — torchvision's `InterpolationMode.BICUBIC` on PIL images.
    Bicubic,
}

impl PilFilter {
    fn support(self) -> f64 {
        match self {
            PilFilter::Box => 0.5,
            PilFilter::Bilinear => 1.0,
            PilFilter::Bicubic => 2.0,
        }
    }

    fn eval(self, x: f64) -> f64 {
        match self {
            PilFilter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            PilFilter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            PilFilter::Bicubic => {
                // PIL's bicubic_filter, a = −0.5
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// PIL's `precompute_coeffs` + `normalize_coeffs_8bpc`: per output index, `(xmin, weights)` with
/// integer weights scaled by `2^22`.
fn pil_coeffs(in_size: usize, out_size: usize, filter: PilFilter) -> Vec<(usize, Vec<i64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let n = xmax.saturating_sub(xmin);
            let mut k: Vec<f64> = (0..n)
                .map(|x| filter.eval((x as f64 + xmin as f64 - center + 0.5) * ss))
                .collect();
            let ww: f64 = k.iter().sum();
            if ww != 0.0 {
                k.iter_mut().for_each(|v| *v /= ww);
            }
            let one = (1u64 << PRECISION_BITS) as f64;
            let kk = k
                .iter()
                .map(|&v| {
                    if v < 0.0 {
                        (-0.5 + v * one) as i64
                    } else {
                        (0.5 + v * one) as i64
                    }
                })
                .collect();
            (xmin, kk)
        })
        .collect()
}

#[inline]
fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// `PIL.Image.resize((out_w, out_h), filter)` of an 8-bit `HWC` image: horizontal pass, then
/// vertical pass, each rounded to 8 bits with PIL's fixed-point arithmetic (a pass is skipped
/// when its size does not change).
pub fn pil_resize(
    src: &[u8],
    w: usize,
    h: usize,
    c: usize,
    out_w: usize,
    out_h: usize,
    filter: PilFilter,
) -> Vec<u8> {
    let half = 1i64 << (PRECISION_BITS - 1);
    let horiz: Vec<u8> = if out_w != w {
        let coeffs = pil_coeffs(w, out_w, filter);
        let mut out = vec![0u8; h * out_w * c];
        for y in 0..h {
            for (xx, (xmin, k)) in coeffs.iter().enumerate() {
                for ch in 0..c {
                    let mut ss = half;
                    for (x, &kv) in k.iter().enumerate() {
                        ss += src[(y * w + xmin + x) * c + ch] as i64 * kv;
                    }
                    out[(y * out_w + xx) * c + ch] = clip8(ss);
                }
            }
        }
        out
    } else {
        src.to_vec()
    };
    if out_h == h {
        return horiz;
    }
    let coeffs = pil_coeffs(h, out_h, filter);
    let mut out = vec![0u8; out_h * out_w * c];
    for (yy, (ymin, k)) in coeffs.iter().enumerate() {
        for x in 0..out_w {
            for ch in 0..c {
                let mut ss = half;
                for (y, &kv) in k.iter().enumerate() {
                    ss += horiz[((ymin + y) * out_w + x) * c + ch] as i64 * kv;
                }
                out[(yy * out_w + x) * c + ch] = clip8(ss);
            }
        }
    }
    out
}

/// OpenCV's rounding of a double to int (`cvRound`: half to even).
#[inline]
fn cv_round(v: f64) -> i64 {
    v.round_ties_even() as i64
}

/// Per output index of OpenCV's linear resize: `(sx, w0, w1)` with 11-bit weights, and whether
/// the index is past `xmax` (right edge: source pixel times 2048).
fn cv_linear_coeffs(in_size: usize, out_size: usize, scale: f64) -> Vec<(usize, i64, i64)> {
    (0..out_size)
        .map(|d| {
            let mut f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut sx = f.floor() as i64;
            f -= sx as f32;
            if sx < 0 {
                f = 0.0;
                sx = 0;
            }
            if sx >= in_size as i64 - 1 {
                f = 0.0;
                sx = in_size as i64 - 1;
            }
            let a0 = cv_round(((1.0f32 - f) * 2048.0) as f64);
            let a1 = cv_round((f * 2048.0) as f64);
            (sx as usize, a0, a1)
        })
        .collect()
}

/// OpenCV `resize(src, (0, 0), fx, fy, INTER_LINEAR)` of an 8-bit `HWC` image: output size
/// `round(w·fx) × round(h·fy)`, source coordinate `(d + 0.5)/f − 0.5`, 11-bit weights, scalar
/// rounding `(Σ + 2^21) >> 22` (OpenCV's SIMD path can differ by 1 on fractional weights; the
/// ×0.2 frost resize of the protocol has integer source positions and is exact). Returns
/// `(data, out_w, out_h)`.
pub fn cv_resize_linear_u8(
    src: &[u8],
    w: usize,
    h: usize,
    c: usize,
    fx: f64,
    fy: f64,
) -> (Vec<u8>, usize, usize) {
    let out_w = (cv_round(w as f64 * fx).max(1)) as usize;
    let out_h = (cv_round(h as f64 * fy).max(1)) as usize;
    let xs = cv_linear_coeffs(w, out_w, 1.0 / fx);
    let ys = cv_linear_coeffs(h, out_h, 1.0 / fy);
    let hrow = |y: usize| -> Vec<i64> {
        let mut row = vec![0i64; out_w * c];
        for (dx, &(sx, a0, a1)) in xs.iter().enumerate() {
            let sx1 = (sx + 1).min(w - 1);
            for ch in 0..c {
                row[dx * c + ch] = src[(y * w + sx) * c + ch] as i64 * a0
                    + src[(y * w + sx1) * c + ch] as i64 * a1;
            }
        }
        row
    };
    let mut out = vec![0u8; out_w * out_h * c];
    for (dy, &(sy, b0, b1)) in ys.iter().enumerate() {
        let r0 = hrow(sy);
        let r1 = hrow((sy + 1).min(h - 1));
        for i in 0..out_w * c {
            let v = (r0[i] * b0 + r1[i] * b1 + (1 << 21)) >> 22;
            out[dy * out_w * c + i] = v.clamp(0, 255) as u8;
        }
    }
    (out, out_w, out_h)
}

/// OpenCV `getAffineTransform(src, dst)`: the 2×3 matrix `[a b c; d e f]` mapping the three
/// `(x, y)` source points onto the destination points (solved in f64 by Cramer's rule).
/// `None` when the source points are collinear.
pub fn get_affine_transform(src: [[f64; 2]; 3], dst: [[f64; 2]; 3]) -> Option<[f64; 6]> {
    let det3 = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let a = [
        [src[0][0], src[0][1], 1.0],
        [src[1][0], src[1][1], 1.0],
        [src[2][0], src[2][1], 1.0],
    ];
    let d = det3(a);
    if d == 0.0 || !d.is_finite() {
        return None;
    }
    let mut m = [0.0; 6];
    for row in 0..2 {
        let rhs = [dst[0][row], dst[1][row], dst[2][row]];
        for col in 0..3 {
            let mut b = a;
            for i in 0..3 {
                b[i][col] = rhs[i];
            }
            m[row * 3 + col] = det3(b) / d;
        }
    }
    Some(m)
}

/// OpenCV `invertAffineTransform` as `warpAffine` does it internally.
fn invert_affine(m: [f64; 6]) -> [f64; 6] {
    let d = m[0] * m[4] - m[1] * m[3];
    let d = if d != 0.0 { 1.0 / d } else { 0.0 };
    let (a11, a22) = (m[4] * d, m[0] * d);
    let (a12, a21) = (-m[1] * d, -m[3] * d);
    let b1 = -a11 * m[2] - a12 * m[5];
    let b2 = -a21 * m[2] - a22 * m[5];
    [a11, a12, b1, a21, a22, b2]
}

/// OpenCV `warpAffine(src, M, (w, h), INTER_LINEAR, BORDER_REFLECT_101)` of an `HWC` f32 image:
/// each destination pixel reads the inverse-mapped source position rounded to OpenCV's 1/32-pixel
/// grid (10-bit `AB_SCALE` accumulation, as in its `WarpAffineInvoker`), bilinear weights from
/// the f32 interpolation table, reflect-101 for taps outside.
pub fn warp_affine_f32(src: &[f32], h: usize, w: usize, c: usize, m: [f64; 6]) -> Vec<f32> {
    const AB_SCALE: f64 = 1024.0;
    const ROUND_DELTA: i64 = 16; // AB_SCALE / INTER_TAB_SIZE / 2
    let im = invert_affine(m);
    let tab1 = |k: i64| -> [f32; 2] {
        let x = k as f32 * (1.0 / 32.0);
        [1.0 - x, x]
    };
    let adelta: Vec<i64> = (0..w)
        .map(|x| cv_round(im[0] * x as f64 * AB_SCALE))
        .collect();
    let bdelta: Vec<i64> = (0..w)
        .map(|x| cv_round(im[3] * x as f64 * AB_SCALE))
        .collect();
    let mut out = vec![0f32; h * w * c];
    for y in 0..h {
        let x0 = cv_round((im[1] * y as f64 + im[2]) * AB_SCALE) + ROUND_DELTA;
        let y0 = cv_round((im[4] * y as f64 + im[5]) * AB_SCALE) + ROUND_DELTA;
        for x in 0..w {
            let xx = (x0 + adelta[x]) >> 5;
            let yy = (y0 + bdelta[x]) >> 5;
            let (sx, fx) = (xx >> 5, xx & 31);
            let (sy, fy) = (yy >> 5, yy & 31);
            let (wx, wy) = (tab1(fx), tab1(fy));
            let wts = [wy[0] * wx[0], wy[0] * wx[1], wy[1] * wx[0], wy[1] * wx[1]];
            let cx = [
                border_index(sx as isize, w, Border::Reflect101),
                border_index(sx as isize + 1, w, Border::Reflect101),
            ];
            let cy = [
                border_index(sy as isize, h, Border::Reflect101),
                border_index(sy as isize + 1, h, Border::Reflect101),
            ];
            for ch in 0..c {
                let at = |yy: usize, xx: usize| src[(yy * w + xx) * c + ch];
                out[(y * w + x) * c + ch] = at(cy[0], cx[0]) * wts[0]
                    + at(cy[0], cx[1]) * wts[1]
                    + at(cy[1], cx[0]) * wts[2]
                    + at(cy[1], cx[1]) * wts[3];
            }
        }
    }
    out
}

/// SciPy `map_coordinates(plane, [ys, xs], order=1, mode='reflect')` for one `h×w` plane:
/// linear interpolation on the half-sample-symmetric extension of the plane.
pub fn map_coordinates_reflect(plane: &[f64], h: usize, w: usize, y: f64, x: f64) -> f64 {
    let (fy, fx) = (y.floor(), x.floor());
    let (ty, tx) = (y - fy, x - fx);
    let (iy, ix) = (fy as isize, fx as isize);
    let y0 = border_index(iy, h, Border::Reflect);
    let y1 = border_index(iy + 1, h, Border::Reflect);
    let x0 = border_index(ix, w, Border::Reflect);
    let x1 = border_index(ix + 1, w, Border::Reflect);
    let at = |yy: usize, xx: usize| plane[yy * w + xx];
    (1.0 - ty) * ((1.0 - tx) * at(y0, x0) + tx * at(y0, x1))
        + ty * ((1.0 - tx) * at(y1, x0) + tx * at(y1, x1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pil_box_down_is_an_area_average_and_up_is_nearest() {
        // 4 → 2: pairs averaged, rounded half up by the fixed point
        let out = pil_resize(&[10, 20, 30, 41], 4, 1, 1, 2, 1, PilFilter::Box);
        assert_eq!(out, vec![15, 36]); // 35.5 rounds to 36
                                       // 2 → 4: each source pixel repeated
        let out = pil_resize(&[10, 200], 2, 1, 1, 4, 1, PilFilter::Box);
        assert_eq!(out, vec![10, 10, 200, 200]);
        // same size: untouched
        assert_eq!(
            pil_resize(&[1, 2, 3], 3, 1, 1, 3, 1, PilFilter::Bilinear),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn pil_bilinear_halving_is_a_triangle_average() {
        // 4 → 2 with support 2: weights on x centred at 1 and 3 (0.5-offset grid)
        let src = [0u8, 100, 200, 100];
        let out = pil_resize(&src, 4, 1, 1, 2, 1, PilFilter::Bilinear);
        // centre 1.0: taps x=0..2 at distances 0.5, 0.5, 1.5 (scaled by 1/2): weights .75 .75 .25
        let a: f64 = (0.75 * 0.0 + 0.75 * 100.0 + 0.25 * 200.0) / 1.75;
        assert_eq!(out[0], (a + 0.5).floor() as u8);
    }

    #[test]
    fn cv_resize_by_fifth_subsamples() {
        let src: Vec<u8> = (0..100).map(|v| v as u8).collect(); // 10×10 grey
        let (out, w, h) = cv_resize_linear_u8(&src, 10, 10, 1, 0.2, 0.2);
        assert_eq!((w, h), (2, 2));
        // source positions (d + 0.5)·5 − 0.5 = 2, 7
        assert_eq!(out, vec![22, 27, 72, 77]);
    }

    #[test]
    fn affine_transform_solves_three_points() {
        let src = [[26.0, 26.0], [26.0, 6.0], [6.0, 6.0]];
        let dst = [[27.7, 23.8], [26.4, 8.5], [3.1, 7.1]];
        let m = get_affine_transform(src, dst).unwrap();
        for i in 0..3 {
            let x = m[0] * src[i][0] + m[1] * src[i][1] + m[2];
            let y = m[3] * src[i][0] + m[4] * src[i][1] + m[5];
            assert!((x - dst[i][0]).abs() < 1e-12 && (y - dst[i][1]).abs() < 1e-12);
        }
        assert!(get_affine_transform([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], dst).is_none());
        let inv = invert_affine(m);
        let x = inv[0] * dst[0][0] + inv[1] * dst[0][1] + inv[2];
        assert!((x - src[0][0]).abs() < 1e-12);
    }

    #[test]
    fn identity_warp_is_exact() {
        let src: Vec<f32> = (0..48).map(|v| v as f32 / 7.0).collect();
        let out = warp_affine_f32(&src, 4, 4, 3, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(out, src);
    }

    #[test]
    fn map_coordinates_reflects_half_sample() {
        let p = [0.0, 1.0, 2.0, 3.0];
        let at = |x| map_coordinates_reflect(&p, 1, 4, 0.0, x);
        assert_eq!(at(1.5), 1.5);
        assert_eq!(at(-0.25), 0.0); // a[-1] = a[0]
        assert!((at(-1.3) - 0.3).abs() < 1e-15); // coordinate −1.3 ↦ 0.3
        assert_eq!(at(3.4), 3.0);
        assert!((at(4.5) - 2.5).abs() < 1e-15); // 4.5 ↦ between a[4] = a[3] and a[5] = a[2]
    }
}
