//! The fog texture: `plasma_fractal(mapsize, wibbledecay)`, diamond-square on a torus
//! (protocol §2.4, quirk 3: the perturbation's amplitude is `wibble²`).

use crate::rng::Stream;

/// A `mapsize × mapsize` plasma normalised to `[0, 1]` (`mapsize` a power of two ≥ 2; other
/// sizes are rounded up to one). Every `wmean` draws one uniform array of its target grid's
/// shape in row-major order from `stream`.
pub fn plasma_fractal(mapsize: usize, wibbledecay: f64, stream: &mut Stream) -> Vec<f64> {
    let m = mapsize.max(2).next_power_of_two();
    let mut a = vec![0.0f64; m * m];
    let mut step = m;
    let mut wibble = 100.0f64;
    while step >= 2 {
        let h = step / 2;
        let n = m / step; // grid points per axis at this step
                          // squares: corners c[i, j] = A[i·step, j·step]
        let corner = |a: &[f64], i: usize, j: usize| a[(i % n) * step * m + (j % n) * step];
        let mut centre = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                // sq = c + roll(c, −1, 0); sq = sq + roll(sq, −1, 1)
                let s = |i: usize, j: usize| corner(&a, i, j) + corner(&a, i + 1, j);
                centre[i * n + j] = s(i, j) + s(i, j + 1);
            }
        }
        for i in 0..n {
            for j in 0..n {
                let v = centre[i * n + j] / 4.0 + wibble * stream.uniform_range(-wibble, wibble);
                a[(i * step + h) * m + j * step + h] = v;
            }
        }
        // diamonds
        let dr = |a: &[f64], i: usize, j: usize| a[((i % n) * step + h) * m + (j % n) * step + h];
        let ul = |a: &[f64], i: usize, j: usize| a[(i % n) * step * m + (j % n) * step];
        // A[0::step, h::step] = wmean(dr + roll(dr, +1, 0) + ul + roll(ul, −1, 1))
        let mut top = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                top[i * n + j] =
                    dr(&a, i, j) + dr(&a, i + n - 1, j) + (ul(&a, i, j) + ul(&a, i, j + 1));
            }
        }
        for i in 0..n {
            for j in 0..n {
                let v = top[i * n + j] / 4.0 + wibble * stream.uniform_range(-wibble, wibble);
                a[i * step * m + j * step + h] = v;
            }
        }
        // A[h::step, 0::step] = wmean(dr + roll(dr, +1, 1) + ul + roll(ul, −1, 0))
        let mut left = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                left[i * n + j] =
                    dr(&a, i, j) + dr(&a, i, j + n - 1) + (ul(&a, i, j) + ul(&a, i + 1, j));
            }
        }
        for i in 0..n {
            for j in 0..n {
                let v = left[i * n + j] / 4.0 + wibble * stream.uniform_range(-wibble, wibble);
                a[(i * step + h) * m + j * step] = v;
            }
        }
        step /= 2;
        wibble /= wibbledecay;
    }
    let min = a.iter().copied().fold(f64::INFINITY, f64::min);
    a.iter_mut().for_each(|v| *v -= min);
    let max = a.iter().copied().fold(0.0f64, f64::max);
    if max > 0.0 {
        a.iter_mut().for_each(|v| *v /= max);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_and_draws_three_grids_per_level() {
        let mut s = Stream::new(3);
        let p = plasma_fractal(32, 2.0, &mut s);
        assert_eq!(p.len(), 32 * 32);
        let min = p.iter().copied().fold(f64::INFINITY, f64::min);
        let max = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!((min, max), (0.0, 1.0));
        // 3·(M/step)² uniforms per level: 3·(1 + 4 + 16 + 64 + 256)
        assert_eq!(s.position(), 3 * 341);
    }

    #[test]
    fn first_level_by_hand() {
        // mapsize 2: one level; centre = 0/4 + 100·U(−100, 100), then the two diamonds
        let mut s = Stream::new(9);
        let p = plasma_fractal(2, 2.0, &mut s);
        let mut r = Stream::new(9);
        let c = 100.0 * r.uniform_range(-100.0, 100.0);
        let t = (c + c) / 4.0 + 100.0 * r.uniform_range(-100.0, 100.0);
        let l = (c + c) / 4.0 + 100.0 * r.uniform_range(-100.0, 100.0);
        let raw = [0.0, t, l, c];
        let min = raw.iter().copied().fold(f64::INFINITY, f64::min);
        let max = raw.iter().map(|v| v - min).fold(0.0f64, f64::max);
        for i in 0..4 {
            assert!((p[i] - (raw[i] - min) / max).abs() < 1e-15);
        }
    }
}
