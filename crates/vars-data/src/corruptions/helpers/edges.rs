//! The 8-bit image operations of `spatter`'s water mode (protocol §3.1): OpenCV `Canny`,
//! `distanceTransform(DIST_L2, 5)`, `equalizeHist` and `filter2D` into 8 bits.

use super::filter::{border_index, Border};

/// OpenCV `Canny(img, low, high)` with a 3×3 Sobel aperture and the L1 gradient `|dx| + |dy|`:
/// Sobel with replicated borders, non-maximum suppression in four directions (OpenCV's
/// `tan 22.5°` fixed-point test, strict `>` on one side and `≥` on the other), hysteresis over
/// 8-neighbours. Returns 255 on edges, 0 elsewhere.
pub fn canny(img: &[u8], h: usize, w: usize, low: f64, high: f64) -> Vec<u8> {
    let (low, high) = if low > high { (high, low) } else { (low, high) };
    let (low, high) = (low.floor() as i32, high.floor() as i32);
    let at = |y: isize, x: isize| {
        img[border_index(y, h, Border::Replicate) * w + border_index(x, w, Border::Replicate)]
            as i32
    };
    let mut dx = vec![0i32; h * w];
    let mut dy = vec![0i32; h * w];
    let mut mag = vec![0i32; (h + 2) * (w + 2)]; // zero border
    for y in 0..h as isize {
        for x in 0..w as isize {
            let gx = (at(y - 1, x + 1) + 2 * at(y, x + 1) + at(y + 1, x + 1))
                - (at(y - 1, x - 1) + 2 * at(y, x - 1) + at(y + 1, x - 1));
            let gy = (at(y + 1, x - 1) + 2 * at(y + 1, x) + at(y + 1, x + 1))
                - (at(y - 1, x - 1) + 2 * at(y - 1, x) + at(y - 1, x + 1));
            let i = y as usize * w + x as usize;
            dx[i] = gx;
            dy[i] = gy;
            mag[(y as usize + 1) * (w + 2) + x as usize + 1] = gx.abs() + gy.abs();
        }
    }
    const SHIFT: i32 = 15;
    const TG22: i64 = 13573; // (int)(0.4142135623730950488·2^15 + 0.5)
    let m_at = |y: usize, x: isize| mag[(y + 1) * (w + 2) + (x + 1) as usize];
    // 0: candidate (weak), 1: not an edge, 2: edge (strong)
    let mut map = vec![1u8; h * w];
    let mut stack = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let m = m_at(y, x as isize);
            if m <= low {
                continue;
            }
            let (xs, ys) = (dx[i], dy[i]);
            let ax = xs.abs() as i64;
            let ay = (ys.abs() as i64) << SHIFT;
            let tg22x = ax * TG22;
            let xi = x as isize;
            let is_max = if ay < tg22x {
                m > m_at(y, xi - 1) && m >= m_at(y, xi + 1)
            } else {
                let tg67x = tg22x + (ax << (SHIFT + 1));
                // rows above and below through the zero-padded border
                let up = |xx: isize| mag[y * (w + 2) + (xx + 1) as usize];
                let down = |xx: isize| mag[(y + 2) * (w + 2) + (xx + 1) as usize];
                if ay > tg67x {
                    m > up(xi) && m >= down(xi)
                } else {
                    let s: isize = if (xs ^ ys) < 0 { -1 } else { 1 };
                    m > up(xi - s) && m > down(xi + s)
                }
            };
            if is_max {
                if m > high {
                    map[i] = 2;
                    stack.push(i);
                } else {
                    map[i] = 0;
                }
            }
        }
    }
    while let Some(i) = stack.pop() {
        let (y, x) = ((i / w) as isize, (i % w) as isize);
        for ddy in -1..=1isize {
            for ddx in -1..=1isize {
                let (yy, xx) = (y + ddy, x + ddx);
                if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
                    continue;
                }
                let j = yy as usize * w + xx as usize;
                if map[j] == 0 {
                    map[j] = 2;
                    stack.push(j);
                }
            }
        }
    }
    map.into_iter()
        .map(|v| if v == 2 { 255 } else { 0 })
        .collect()
}

/// OpenCV `distanceTransform(img, DIST_L2, 5)`: distance of every non-zero pixel to the nearest
/// zero pixel with the 5×5 chamfer mask (1, 1.4, 2.1969) in two passes, in f32 as OpenCV 5 does
/// (OpenCV 3/4 used 16-bit fixed point, e.g. 2·1.4 → 2.79999 instead of 2.8: the same values up
/// to 2e-5). Without any zero pixel every distance is [`NO_ZERO_DISTANCE`].
pub fn distance_transform_l2_5(img: &[u8], h: usize, w: usize) -> Vec<f32> {
    const HV: f32 = 1.0;
    const DIAG: f32 = 1.4;
    const LONG: f32 = 2.1969;
    const B: usize = 2;
    let sw = w + 2 * B;
    let mut t = vec![NO_ZERO_DISTANCE; (h + 2 * B) * sw];
    let idx = |y: usize, x: usize| (y + B) * sw + x + B;
    for y in 0..h {
        for x in 0..w {
            let j = idx(y, x);
            if img[y * w + x] == 0 {
                t[j] = 0.0;
                continue;
            }
            let mut t0 = t[j - 2 * sw - 1] + LONG;
            for cand in [
                t[j - 2 * sw + 1] + LONG,
                t[j - sw - 2] + LONG,
                t[j - sw - 1] + DIAG,
                t[j - sw] + HV,
                t[j - sw + 1] + DIAG,
                t[j - sw + 2] + LONG,
                t[j - 1] + HV,
            ] {
                t0 = t0.min(cand);
            }
            t[j] = t0.min(NO_ZERO_DISTANCE);
        }
    }
    let mut out = vec![0f32; h * w];
    for y in (0..h).rev() {
        for x in (0..w).rev() {
            let j = idx(y, x);
            let mut t0 = t[j];
            if t0 > HV {
                for cand in [
                    t[j + 2 * sw + 1] + LONG,
                    t[j + 2 * sw - 1] + LONG,
                    t[j + sw + 2] + LONG,
                    t[j + sw + 1] + DIAG,
                    t[j + sw] + HV,
                    t[j + sw - 1] + DIAG,
                    t[j + sw - 2] + LONG,
                    t[j + 1] + HV,
                ] {
                    t0 = t0.min(cand);
                }
                t0 = t0.min(NO_ZERO_DISTANCE);
                t[j] = t0;
            }
            out[y * w + x] = t0;
        }
    }
    out
}

/// The distance reported when an image has no zero pixel (far beyond spatter's cap of 20).
pub const NO_ZERO_DISTANCE: f32 = 1.0e6;

/// OpenCV `equalizeHist`: LUT `round(cumsum·255/(N − h_first))` from the first non-empty bin
/// (mapped to 0), f32 scale; a constant image stays constant.
pub fn equalize_hist(img: &[u8]) -> Vec<u8> {
    let mut hist = [0usize; 256];
    for &v in img {
        hist[v as usize] += 1;
    }
    let total = img.len();
    let Some(first) = hist.iter().position(|&c| c != 0) else {
        return Vec::new();
    };
    if hist[first] == total {
        return vec![first as u8; total];
    }
    let scale = 255.0f32 / (total - hist[first]) as f32;
    let mut lut = [0u8; 256];
    let mut sum = 0usize;
    for i in first + 1..256 {
        sum += hist[i];
        lut[i] = ((sum as f32 * scale).round_ties_even()).clamp(0.0, 255.0) as u8;
    }
    img.iter().map(|&v| lut[v as usize]).collect()
}

/// OpenCV `filter2D(img, CV_8U, kernel)` with an integer 3×3 kernel: correlation anchored at the
/// centre, reflect-101, saturated to 0..=255.
pub fn filter2d_u8_3x3(img: &[u8], h: usize, w: usize, k: [[i32; 3]; 3]) -> Vec<u8> {
    let mut out = vec![0u8; h * w];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0i32;
            for (i, row) in k.iter().enumerate() {
                let yy = border_index(y as isize + i as isize - 1, h, Border::Reflect101);
                for (j, &kv) in row.iter().enumerate() {
                    let xx = border_index(x as isize + j as isize - 1, w, Border::Reflect101);
                    s += kv * img[yy * w + xx] as i32;
                }
            }
            out[y * w + x] = s.clamp(0, 255) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_to_a_single_zero() {
        let (h, w) = (7, 7);
        let mut img = vec![255u8; h * w];
        img[3 * w + 3] = 0;
        let d = distance_transform_l2_5(&img, h, w);
        assert_eq!(d[3 * w + 3], 0.0);
        assert_eq!(d[3 * w + 4], 1.0);
        assert_eq!(d[4 * w + 4], 1.4f32);
        assert_eq!(d[5 * w + 4], 2.1969f32); // knight move
        assert_eq!(d[3 * w + 6], 3.0);
        assert_eq!(d[5 * w + 5], 2.8f32); // two diagonals
                                          // no zero pixel at all
        let d = distance_transform_l2_5(&[9u8; 4], 2, 2);
        assert_eq!(d[0], NO_ZERO_DISTANCE);
    }

    #[test]
    fn equalize_spreads_to_full_range() {
        let img = [3u8, 3, 5, 5, 7, 7, 9, 9];
        let e = equalize_hist(&img);
        assert_eq!(e, vec![0, 0, 85, 85, 170, 170, 255, 255]);
        assert_eq!(equalize_hist(&[4u8; 5]), vec![4; 5]);
    }

    #[test]
    fn canny_finds_a_step_edge() {
        let (h, w) = (8, 8);
        let img: Vec<u8> = (0..h * w)
            .map(|i| if i % w < 4 { 0 } else { 200 })
            .collect();
        let e = canny(&img, h, w, 50.0, 150.0);
        for y in 0..h {
            let row: Vec<u8> = e[y * w..(y + 1) * w].to_vec();
            assert_eq!(
                row.iter().filter(|&&v| v == 255).count(),
                1,
                "row {y}: {row:?}"
            );
        }
        assert!(canny(&[77u8; 64], 8, 8, 50.0, 150.0)
            .iter()
            .all(|&v| v == 0));
    }

    #[test]
    fn emboss_saturates() {
        let k = [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]];
        // constant c: sum of kernel = 1 → c
        assert!(filter2d_u8_3x3(&[100u8; 16], 4, 4, k)
            .iter()
            .all(|&v| v == 100));
        let img: Vec<u8> = (0..16).map(|i| if i % 4 < 2 { 0 } else { 255 }).collect();
        let o = filter2d_u8_3x3(&img, 4, 4, k);
        assert!(o.iter().all(|&v| v == 0 || v == 255));
    }
}
