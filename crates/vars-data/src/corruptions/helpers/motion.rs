//! The motion-blur kernel (protocol §2.6): the `imagecorruptions` package's dependency-free port
//! of ImageMagick's `MotionBlurImage`.

/// One-sided Gaussian weights `k_i ∝ exp(−i²/(2σ²))`, `i = 0…2·radius`, normalised to sum 1
/// (the package multiplies by `1/(√(2π)σ)` before normalising; so does this).
pub fn motion_kernel(radius: usize, sigma: f64) -> Vec<f64> {
    let width = 2 * radius + 1;
    let norm = 1.0 / ((2.0 * std::f64::consts::PI).sqrt() * sigma);
    let k: Vec<f64> = (0..width)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp() * norm)
        .collect();
    let z: f64 = k.iter().sum();
    k.into_iter().map(|v| v / z).collect()
}

/// The offsets `(oy_i, ox_i) = (⌈i·sin θ − 0.5⌉, ⌈i·cos θ − 0.5⌉)` with the reference's
/// early stop at the first `|oy| ≥ h` or `|ox| ≥ w`.
pub fn motion_offsets(width: usize, angle_deg: f64, h: usize, w: usize) -> Vec<(isize, isize)> {
    let (s, c) = angle_deg.to_radians().sin_cos();
    // The package computes i·(width·sin θ)/hypot(width·sin θ, width·cos θ); same to rounding.
    let px = width as f64 * s;
    let py = width as f64 * c;
    let hyp = px.hypot(py);
    let mut out = Vec::with_capacity(width);
    for i in 0..width {
        let oy = ((i as f64 * px) / hyp - 0.5).ceil() as isize;
        let ox = ((i as f64 * py) / hyp - 0.5).ceil() as isize;
        if oy.unsigned_abs() >= h || ox.unsigned_abs() >= w {
            break;
        }
        out.push((oy, ox));
    }
    out
}

/// `out(y, x) = Σ_i k_i · img(clamp(y + oy_i), clamp(x + ox_i))` on an `h×w×c` buffer (all
/// channels share the kernel), summed in order of i. Not clipped.
pub fn motion_blur(
    src: &[f64],
    h: usize,
    w: usize,
    c: usize,
    radius: usize,
    sigma: f64,
    angle_deg: f64,
) -> Vec<f64> {
    let k = motion_kernel(radius, sigma);
    let offs = motion_offsets(k.len(), angle_deg, h, w);
    let mut out = vec![0.0; src.len()];
    for (i, &(oy, ox)) in offs.iter().enumerate() {
        let ki = k[i];
        for y in 0..h {
            let sy = (y as isize + oy).clamp(0, h as isize - 1) as usize;
            for x in 0..w {
                let sx = (x as isize + ox).clamp(0, w as isize - 1) as usize;
                let (o, s) = ((y * w + x) * c, (sy * w + sx) * c);
                for ch in 0..c {
                    out[o + ch] += ki * src[s + ch];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_a_one_sided_gaussian() {
        let k = motion_kernel(2, 1.0);
        assert_eq!(k.len(), 5);
        let z: f64 = (0..5).map(|i: i32| (-(i * i) as f64 / 2.0).exp()).sum();
        for (i, v) in k.iter().enumerate() {
            assert!((v - (-((i * i) as f64) / 2.0).exp() / z).abs() < 1e-15);
        }
    }

    #[test]
    fn offsets_follow_the_angle() {
        // θ = 0: along +x
        assert_eq!(motion_offsets(3, 0.0, 10, 10), vec![(0, 0), (0, 1), (0, 2)]);
        // θ = 90°: along +y
        assert_eq!(
            motion_offsets(3, 90.0, 10, 10),
            vec![(0, 0), (1, 0), (2, 0)]
        );
        // early stop when the offset leaves the image
        assert_eq!(motion_offsets(5, 0.0, 10, 3).len(), 3);
    }

    #[test]
    fn constant_image_is_unchanged_unless_the_kernel_is_cut() {
        let src = vec![0.25; 20 * 21 * 3];
        let out = motion_blur(&src, 20, 21, 3, 4, 2.0, 33.0);
        assert!(out.iter().all(|v| (v - 0.25).abs() < 1e-12));
        // on a 6×7 image the 9-tap kernel stops at the first offset ≥ 7 columns (the reference's
        // early `break`), without renormalising: the image darkens slightly
        let src = vec![0.25; 6 * 7 * 3];
        let out = motion_blur(&src, 6, 7, 3, 4, 2.0, 33.0);
        let kept: f64 = motion_kernel(4, 2.0)[..motion_offsets(9, 33.0, 6, 7).len()]
            .iter()
            .sum();
        assert!(kept < 1.0 && out.iter().all(|v| (v - 0.25 * kept).abs() < 1e-12));
    }
}
