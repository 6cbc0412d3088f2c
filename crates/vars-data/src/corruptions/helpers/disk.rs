//! The defocus kernel `disk(radius, alias_blur)` (protocol §2.3).

use super::filter::cv_gaussian_blur_f32;

/// The antialiased disk: a grid `t ∈ {−8…8}` (17×17) and a 3×3 Gaussian when `radius ≤ 8`,
/// otherwise `t = −r, −r+1, …` up to `r` ((2r+1)² for integer r) and a 5×5 Gaussian; mask
/// `X² + Y² ≤ radius²` as f32 normalised to sum 1, blurred with OpenCV's `GaussianBlur` (σ =
/// `alias_blur`, reflect-101). Returns `(kernel, side)`, the kernel row-major in f32.
pub fn disk(radius: f64, alias_blur: f64) -> (Vec<f32>, usize) {
    let (grid, ksize): (Vec<f64>, usize) = if radius <= 8.0 {
        ((-8..=8).map(|t| t as f64).collect(), 3)
    } else {
        // np.arange(-radius, radius + 1): ⌈2r + 1⌉ points from −r in steps of 1
        let n = (2.0 * radius + 1.0).ceil() as usize;
        ((0..n).map(|k| -radius + k as f64).collect(), 5)
    };
    let side = grid.len();
    let r2 = radius * radius;
    let mut mask: Vec<f32> = Vec::with_capacity(side * side);
    for &y in &grid {
        for &x in &grid {
            mask.push(if x * x + y * y <= r2 { 1.0 } else { 0.0 });
        }
    }
    let total: f32 = mask.iter().sum();
    mask.iter_mut().for_each(|v| *v /= total);
    (
        cv_gaussian_blur_f32(&mask, side, side, ksize, alias_blur),
        side,
    )
}

/// Number of grid points inside the disk (the protocol's table of §2.3).
pub fn disk_pixel_count(radius: f64) -> usize {
    let grid: Vec<f64> = if radius <= 8.0 {
        (-8..=8).map(|t| t as f64).collect()
    } else {
        let n = (2.0 * radius + 1.0).ceil() as usize;
        (0..n).map(|k| -radius + k as f64).collect()
    };
    grid.iter()
        .flat_map(|&y| grid.iter().map(move |&x| x * x + y * y))
        .filter(|&d| d <= radius * radius)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_counts_match_the_protocol_table() {
        for (r, n) in [
            (0.3, 1),
            (0.4, 1),
            (0.5, 1),
            (1.0, 5),
            (1.5, 9),
            (3.0, 29),
            (4.0, 49),
            (6.0, 113),
            (8.0, 197),
            (10.0, 317),
        ] {
            assert_eq!(disk_pixel_count(r), n, "radius {r}");
        }
        assert_eq!(disk(10.0, 0.5).1, 21);
        assert_eq!(disk(3.0, 0.1).1, 17);
    }

    #[test]
    fn kernel_sums_to_one_unless_the_disk_touches_the_grid_edge() {
        for (r, a) in [(3.0, 0.1), (6.0, 0.5), (0.3, 0.4), (1.5, 0.1)] {
            let (k, _) = disk(r, a);
            let s: f64 = k.iter().map(|&v| v as f64).sum();
            assert!((s - 1.0).abs() < 1e-5, "r = {r}: {s}");
        }
        // r = 8 and r = 10 reach the grid's edge: the reflect-101 blur adds mass there, as in the
        // reference (`disk(8, 0.5)` and `disk(10, 0.5)` sum to 1.0130 and 1.0108 there too).
        let s10: f64 = disk(10.0, 0.5).0.iter().map(|&v| v as f64).sum();
        assert!((s10 - 1.0107858).abs() < 1e-6, "{s10}");
    }
}
