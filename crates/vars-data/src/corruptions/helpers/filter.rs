//! Linear filters with the reference libraries' border modes (protocol §2.1, §2.2).

/// Border extension modes (protocol §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Border {
    /// SciPy `nearest`: `a a a | a b c d | d d d` (skimage `gaussian`'s default).
    Nearest,
    /// SciPy `reflect`: `c b a | a b c d | d c b` (edge repeated).
    Reflect,
    /// OpenCV `BORDER_REFLECT_101`: `d c b | a b c d | c b a` (edge not repeated); OpenCV's default.
    Reflect101,
    /// OpenCV `BORDER_REPLICATE` (same as [`Border::Nearest`]).
    Replicate,
}

/// Maps an index outside `0..n` into it, for any distance from the edge (periodic extension).
#[inline]
pub fn border_index(i: isize, n: usize, border: Border) -> usize {
    let n_i = n as isize;
    if (0..n_i).contains(&i) {
        return i as usize;
    }
    match border {
        Border::Nearest | Border::Replicate => i.clamp(0, n_i - 1) as usize,
        Border::Reflect => {
            let p = 2 * n_i;
            let m = i.rem_euclid(p);
            (if m < n_i { m } else { p - 1 - m }) as usize
        }
        Border::Reflect101 => {
            if n == 1 {
                return 0;
            }
            let p = 2 * n_i - 2;
            let m = i.rem_euclid(p);
            (if m < n_i { m } else { p - m }) as usize
        }
    }
}

/// SciPy's Gaussian weights: radius `⌊truncate·σ + 0.5⌋`, `exp(−t²/(2σ²))` for `t = −R..=R`,
/// normalised to sum 1. `σ = 0` gives `[1]` (identity).
pub fn gaussian_kernel1d(sigma: f64, truncate: f64) -> Vec<f64> {
    if sigma <= 0.0 || !sigma.is_finite() {
        return vec![1.0];
    }
    let radius = (truncate * sigma + 0.5) as usize;
    let c = -0.5 / (sigma * sigma);
    let mut k: Vec<f64> = (-(radius as isize)..=radius as isize)
        .map(|t| (c * (t * t) as f64).exp())
        .collect();
    let s: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    k
}

/// Correlates every line along one axis of an `h×w` plane with a symmetric kernel (SciPy
/// `correlate1d`'s symmetric path: `x[i]·k₀ + Σⱼ (x[i−j] + x[i+j])·kⱼ`, j from R down to 1).
fn correlate_axis_symmetric(
    plane: &[f64],
    h: usize,
    w: usize,
    kernel: &[f64],
    axis: usize,
    border: Border,
) -> Vec<f64> {
    let r = kernel.len() / 2;
    let (lines, len, stride, step) = if axis == 0 {
        (w, h, 1, w)
    } else {
        (h, w, w, 1)
    };
    let mut out = vec![0.0; plane.len()];
    let mut line = vec![0.0; len + 2 * r];
    for l in 0..lines {
        let base = l * stride;
        for (k, v) in line.iter_mut().enumerate() {
            let src = border_index(k as isize - r as isize, len, border);
            *v = plane[base + src * step];
        }
        for i in 0..len {
            let c = i + r;
            let mut acc = line[c] * kernel[r];
            for j in (1..=r).rev() {
                acc += (line[c - j] + line[c + j]) * kernel[r + j];
            }
            out[base + i * step] = acc;
        }
    }
    out
}

/// SciPy `gaussian_filter` on one `h×w` plane: axis 0 then axis 1, weights of
/// [`gaussian_kernel1d`]. skimage's `gaussian` is this with `mode='nearest'`, `truncate=4`.
pub fn gaussian_filter(
    plane: &[f64],
    h: usize,
    w: usize,
    sigma: f64,
    truncate: f64,
    border: Border,
) -> Vec<f64> {
    let k = gaussian_kernel1d(sigma, truncate);
    if k.len() == 1 {
        return plane.to_vec();
    }
    let tmp = correlate_axis_symmetric(plane, h, w, &k, 0, border);
    correlate_axis_symmetric(&tmp, h, w, &k, 1, border)
}

/// OpenCV `filter2D` (correlation, anchor at the kernel centre) of one `h×w` plane with a
/// `kh×kw` kernel, computed in f64.
pub fn filter2d(
    plane: &[f64],
    h: usize,
    w: usize,
    kernel: &[f64],
    kh: usize,
    kw: usize,
    border: Border,
) -> Vec<f64> {
    let (ay, ax) = (kh / 2, kw / 2);
    let mut out = vec![0.0; h * w];
    // Pre-computed border-mapped column indices per output column.
    let cols: Vec<Vec<usize>> = (0..w)
        .map(|x| {
            (0..kw)
                .map(|j| border_index(x as isize + j as isize - ax as isize, w, border))
                .collect()
        })
        .collect();
    for y in 0..h {
        let rows: Vec<usize> = (0..kh)
            .map(|i| border_index(y as isize + i as isize - ay as isize, h, border))
            .collect();
        for x in 0..w {
            let mut acc = 0.0;
            for (i, &r) in rows.iter().enumerate() {
                let krow = &kernel[i * kw..(i + 1) * kw];
                let prow = &plane[r * w..(r + 1) * w];
                for (j, &c) in cols[x].iter().enumerate() {
                    acc += krow[j] * prow[c];
                }
            }
            out[y * w + x] = acc;
        }
    }
    out
}

/// OpenCV `getGaussianKernel(ksize, σ)` for σ > 0 (computed in f64, as OpenCV does), rounded to
/// f32 as for a `CV_32F` kernel.
pub fn cv_gaussian_kernel(ksize: usize, sigma: f64) -> Vec<f32> {
    let scale2x = -0.5 / (sigma * sigma);
    let mut k: Vec<f64> = (0..ksize)
        .map(|i| {
            let x = i as f64 - (ksize as f64 - 1.0) * 0.5;
            (scale2x * x * x).exp()
        })
        .collect();
    let s = 1.0 / k.iter().sum::<f64>();
    k.iter_mut().for_each(|v| *v *= s);
    k.into_iter().map(|v| v as f32).collect()
}

/// OpenCV `GaussianBlur` of an `h×w` f32 plane with a square `ksize` kernel of width σ in both
/// axes, border reflect-101, separable (rows, then columns) in f32.
pub fn cv_gaussian_blur_f32(
    plane: &[f32],
    h: usize,
    w: usize,
    ksize: usize,
    sigma: f64,
) -> Vec<f32> {
    let k = cv_gaussian_kernel(ksize, sigma);
    let r = ksize / 2;
    let mut tmp = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0f32;
            for (j, &kv) in k.iter().enumerate() {
                let xx = border_index(x as isize + j as isize - r as isize, w, Border::Reflect101);
                acc += kv * plane[y * w + xx];
            }
            tmp[y * w + x] = acc;
        }
    }
    let mut out = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0f32;
            for (i, &kv) in k.iter().enumerate() {
                let yy = border_index(y as isize + i as isize - r as isize, h, Border::Reflect101);
                acc += kv * tmp[yy * w + x];
            }
            out[y * w + x] = acc;
        }
    }
    out
}

/// The 3×3 neighbourhood sum with reflect-101 borders, in f64.
fn box3_sum(plane: &[f64], h: usize, w: usize) -> Vec<f64> {
    let mut out = vec![0.0; h * w];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0.0;
            for dy in -1..=1isize {
                let yy = border_index(y as isize + dy, h, Border::Reflect101);
                for dx in -1..=1isize {
                    let xx = border_index(x as isize + dx, w, Border::Reflect101);
                    s += plane[yy * w + xx];
                }
            }
            out[y * w + x] = s;
        }
    }
    out
}

/// OpenCV `blur(src, (3, 3))` of a `CV_32F` plane: sums in f64 (OpenCV's `CV_64F` sum type for
/// float input), times `1/9`, rounded to f32.
pub fn cv_blur3_f32(plane: &[f32], h: usize, w: usize) -> Vec<f32> {
    let p: Vec<f64> = plane.iter().map(|&v| v as f64).collect();
    box3_sum(&p, h, w)
        .into_iter()
        .map(|s| (s * (1.0 / 9.0)) as f32)
        .collect()
}

/// OpenCV `blur(src, (3, 3))` of a `CV_8U` plane: the 16-bit sum type and OpenCV's fixed-point
/// division `((s + 4)·7282) >> 16` (its `ColumnSum<ushort, uchar>` for a divisor of 9).
pub fn cv_blur3_u8(plane: &[u8], h: usize, w: usize) -> Vec<u8> {
    let p: Vec<f64> = plane.iter().map(|&v| v as f64).collect();
    box3_sum(&p, h, w)
        .into_iter()
        .map(|s| {
            let s = s as u32;
            (((s + 4) * 7282) >> 16).min(255) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn border_modes_match_the_protocol_table() {
        // a b c d = 0 1 2 3, three cells each side
        let ext = |b| (-3..7).map(|i| border_index(i, 4, b)).collect::<Vec<_>>();
        assert_eq!(ext(Border::Nearest), [0, 0, 0, 0, 1, 2, 3, 3, 3, 3]);
        assert_eq!(ext(Border::Reflect), [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
        assert_eq!(ext(Border::Reflect101), [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
        // far outside: periodic
        assert_eq!(
            border_index(-9, 4, Border::Reflect),
            border_index(-1, 4, Border::Reflect)
        );
        assert_eq!(
            border_index(10, 4, Border::Reflect101),
            border_index(4, 4, Border::Reflect101)
        );
        assert_eq!(border_index(-5, 1, Border::Reflect101), 0);
        assert_eq!(border_index(-5, 1, Border::Reflect), 0);
    }

    #[test]
    fn gaussian_kernel_radius_and_normalisation() {
        assert_eq!(gaussian_kernel1d(1.0, 4.0).len(), 9);
        assert_eq!(gaussian_kernel1d(0.4, 4.0).len(), 5); // ⌊1.6 + 0.5⌋ = 2
        assert_eq!(gaussian_kernel1d(170.8, 3.0).len(), 2 * 512 + 1);
        assert_eq!(gaussian_kernel1d(0.0, 4.0), vec![1.0]);
        let k = gaussian_kernel1d(2.5, 4.0);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        // f64 reference for σ = 1: weights ∝ exp(−t²/2)
        let k = gaussian_kernel1d(1.0, 4.0);
        let z: f64 = (-4..=4).map(|t: i32| (-(t * t) as f64 / 2.0).exp()).sum();
        assert!((k[4] - 1.0 / z).abs() < 1e-16);
        assert!((k[5] - (-0.5f64).exp() / z).abs() < 1e-16);
    }

    #[test]
    fn skimage_docstring_example() {
        // skimage.filters.gaussian(a, sigma=1) on a 3×3 delta (from its docstring)
        let mut a = vec![0.0; 9];
        a[4] = 1.0;
        let g = gaussian_filter(&a, 3, 3, 1.0, 4.0, Border::Nearest);
        let want = [0.05855018, 0.09653293, 0.05855018, 0.09653293, 0.15915589];
        for (i, &v) in want.iter().enumerate() {
            assert!((g[i] - v).abs() < 1e-8, "{i}: {}", g[i]);
        }
        let g = gaussian_filter(&a, 3, 3, 1.0, 4.0, Border::Reflect);
        assert!((g[0] - 0.08767308).abs() < 1e-8 && (g[4] - 0.16630671).abs() < 1e-8);
    }

    #[test]
    fn filter2d_identity_and_border() {
        let p: Vec<f64> = (0..12).map(|v| v as f64).collect();
        let mut k = vec![0.0; 9];
        k[4] = 1.0;
        assert_eq!(filter2d(&p, 3, 4, &k, 3, 3, Border::Reflect101), p);
        // kernel picking the left neighbour: column 0 reads column 1 (reflect-101)
        let mut k = vec![0.0; 9];
        k[3] = 1.0;
        let o = filter2d(&p, 3, 4, &k, 3, 3, Border::Reflect101);
        assert_eq!(&o[0..4], &[1.0, 0.0, 1.0, 2.0]);
    }

    #[test]
    fn opencv_box_blur_rounding() {
        // a constant image stays constant in both variants
        assert!(cv_blur3_u8(&[7u8; 16], 4, 4).iter().all(|&v| v == 7));
        assert!(cv_blur3_f32(&[2.0f32; 16], 4, 4).iter().all(|&v| v == 2.0));
        // the fixed-point division by 9 equals round(s/9) for every reachable sum
        for s in 0u32..=9 * 255 {
            let fixed = ((s + 4) * 7282) >> 16;
            assert_eq!(fixed, (s as f64 / 9.0).round() as u32, "s = {s}");
        }
    }

    #[test]
    fn cv_gaussian_kernel_matches_formula() {
        let k = cv_gaussian_kernel(3, 0.5);
        let e = (-2.0f64).exp();
        let want = [
            e / (1.0 + 2.0 * e),
            1.0 / (1.0 + 2.0 * e),
            e / (1.0 + 2.0 * e),
        ];
        for i in 0..3 {
            assert!((k[i] as f64 - want[i]).abs() < 1e-7);
        }
    }
}
