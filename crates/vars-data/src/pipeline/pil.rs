//! The Pillow operations behind timm's RandAugment, on 8-bit `HWC` images (grey or RGB), with
//! Pillow's arithmetic: `Image.transform(AFFINE, BICUBIC)` and `Image.rotate` (Geometry.c: the
//! `a = −1` cubic convolution on the pixel-centre grid, clamped borders, truncation to 8 bits,
//! `fillcolor` outside), `convert("L")` (16-bit fixed point), `Image.blend` (single-precision,
//! truncated), `ImageFilter.SMOOTH` (3×3, single precision, borders copied) and the `ImageOps`
//! look-up tables (autocontrast, equalize, solarize, posterize, invert).
//!
//! Checked against Pillow 13.0.0 outputs in `tests/golden/pipeline/` (`make_pipeline_golden.py`).

use crate::image::Image;

/// Pillow's `convert("L")` of one RGB pixel: `(19595 R + 38470 G + 7471 B + 2¹⁵) >> 16`.
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// `image.convert("L")`: grey is returned as is, RGB goes through [`luma`].
pub fn to_luma(img: &Image) -> Image {
    if img.channels() == 1 {
        return img.clone();
    }
    let data = img
        .data()
        .chunks_exact(3)
        .map(|p| luma(p[0], p[1], p[2]))
        .collect();
    Image::new(img.width(), img.height(), 1, data).expect("same size")
}

/// Replaces every sample by `table[sample]`, the same table for every channel
/// (`Image.point(lut)` with a 256-entry table).
pub fn point(img: &Image, table: &[u8; 256]) -> Image {
    let data = img.data().iter().map(|&v| table[v as usize]).collect();
    Image::new(img.width(), img.height(), img.channels(), data).expect("same size")
}

/// Applies one table per channel (`Image.point` with `256·channels` entries).
fn point_per_channel(img: &Image, tables: &[[u8; 256]]) -> Image {
    let c = img.channels();
    let data = img
        .data()
        .iter()
        .enumerate()
        .map(|(i, &v)| tables[i % c][v as usize])
        .collect();
    Image::new(img.width(), img.height(), c, data).expect("same size")
}

fn histograms(img: &Image) -> Vec<[u64; 256]> {
    let c = img.channels();
    let mut h = vec![[0u64; 256]; c];
    for (i, &v) in img.data().iter().enumerate() {
        h[i % c][v as usize] += 1;
    }
    h
}

fn identity_table() -> [u8; 256] {
    std::array::from_fn(|i| i as u8)
}

/// `ImageOps.autocontrast(img)` (cutoff 0): per channel, the darkest value maps to 0 and the
/// lightest to 255 (`int(v·scale + offset)`, clipped); constant channels are unchanged.
pub fn autocontrast(img: &Image) -> Image {
    let tables: Vec<[u8; 256]> = histograms(img)
        .iter()
        .map(|h| {
            let lo = (0..256).find(|&i| h[i] != 0).unwrap_or(0);
            let hi = (0..256).rev().find(|&i| h[i] != 0).unwrap_or(0);
            if hi <= lo {
                return identity_table();
            }
            let scale = 255.0 / (hi - lo) as f64;
            let offset = -(lo as f64) * scale;
            std::array::from_fn(|ix| {
                let v = (ix as f64 * scale + offset) as i64; // int() truncates toward zero
                v.clamp(0, 255) as u8
            })
        })
        .collect();
    point_per_channel(img, &tables)
}

/// `ImageOps.equalize(img)`: per channel, `step = (Σ counts − count of the last used value) //
/// 255`, `lut[i] = (step//2 + Σ_{j<i} h[j]) // step` (clipped to 255 by `point`); channels with
/// one value or `step = 0` are unchanged.
pub fn equalize(img: &Image) -> Image {
    let tables: Vec<[u8; 256]> = histograms(img)
        .iter()
        .map(|h| {
            let used: Vec<u64> = h.iter().copied().filter(|&v| v != 0).collect();
            if used.len() <= 1 {
                return identity_table();
            }
            let step = (used.iter().sum::<u64>() - used[used.len() - 1]) / 255;
            if step == 0 {
                return identity_table();
            }
            let mut n = step / 2;
            std::array::from_fn(|i| {
                let v = (n / step).min(255) as u8;
                n += h[i];
                v
            })
        })
        .collect();
    point_per_channel(img, &tables)
}

/// `ImageOps.invert`: `255 − v`.
pub fn invert(img: &Image) -> Image {
    point(img, &std::array::from_fn(|i| 255 - i as u8))
}

/// `ImageOps.solarize(img, threshold)`: values `>= threshold` become `255 − v`.
pub fn solarize(img: &Image, threshold: u32) -> Image {
    point(
        img,
        &std::array::from_fn(|i| {
            if (i as u32) < threshold {
                i as u8
            } else {
                255 - i as u8
            }
        }),
    )
}

/// timm's `solarize_add(img, add, thresh=128)`: values below 128 get `min(255, v + add)`.
pub fn solarize_add(img: &Image, add: u32, threshold: u32) -> Image {
    point(
        img,
        &std::array::from_fn(|i| {
            if (i as u32) < threshold {
                (i as u32 + add).min(255) as u8
            } else {
                i as u8
            }
        }),
    )
}

/// timm's `posterize(img, bits)`: keeps the `bits` most significant bits (`bits >= 8`: unchanged;
/// `0`: all zero), `ImageOps.posterize`.
pub fn posterize(img: &Image, bits: u32) -> Image {
    if bits >= 8 {
        return img.clone();
    }
    let mask = !((1u32 << (8 - bits)) - 1) as u8;
    point(img, &std::array::from_fn(|i| i as u8 & mask))
}

/// `Image.blend(degenerate, img, factor)`: `d + factor·(v − d)` in single precision, truncated to
/// 8 bits (clipped to 0…255 when `factor` is outside `[0, 1]`) — `ImageEnhance.*.enhance`.
pub fn blend(degenerate: &[u8], img: &[u8], factor: f64) -> Vec<u8> {
    let alpha = factor as f32;
    let interpolate = (0.0..=1.0).contains(&alpha);
    degenerate
        .iter()
        .zip(img)
        .map(|(&a, &b)| {
            let t = a as i32 as f32 + alpha * (b as i32 - a as i32) as f32;
            if interpolate {
                t as u8
            } else if t <= 0.0 {
                0
            } else if t >= 255.0 {
                255
            } else {
                t as u8
            }
        })
        .collect()
}

fn enhanced(img: &Image, degenerate: &[u8], factor: f64) -> Image {
    Image::new(
        img.width(),
        img.height(),
        img.channels(),
        blend(degenerate, img.data(), factor),
    )
    .expect("same size")
}

/// `ImageEnhance.Color(img).enhance(factor)`: blend with the image's grey version (RGB only;
/// grey images are unchanged).
pub fn color(img: &Image, factor: f64) -> Image {
    if img.channels() == 1 {
        return img.clone();
    }
    let grey = to_luma(img).to_rgb();
    enhanced(img, grey.data(), factor)
}

/// `ImageEnhance.Contrast(img).enhance(factor)`: blend with a constant image at the mean of the
/// grey version, `int(mean + 0.5)`.
pub fn contrast(img: &Image, factor: f64) -> Image {
    let grey = to_luma(img);
    let sum: u64 = grey.data().iter().map(|&v| v as u64).sum();
    let mean = (sum as f64 / grey.data().len() as f64 + 0.5) as u8;
    let degenerate = vec![mean; img.data().len()];
    enhanced(img, &degenerate, factor)
}

/// `ImageEnhance.Brightness(img).enhance(factor)`: blend with black.
pub fn brightness(img: &Image, factor: f64) -> Image {
    let degenerate = vec![0u8; img.data().len()];
    enhanced(img, &degenerate, factor)
}

/// `img.filter(ImageFilter.SMOOTH)`: the 3×3 kernel `[1 1 1; 1 5 1; 1 1 1]/13` in single
/// precision with `+0.5` rounding; the outermost rows and columns are copied (images under 3×3
/// are returned unchanged).
pub fn smooth(img: &Image) -> Image {
    let (w, h, c) = (img.width(), img.height(), img.channels());
    if w < 3 || h < 3 {
        return img.clone();
    }
    let k: [f32; 9] = std::array::from_fn(|i| {
        let v = if i == 4 { 5.0 } else { 1.0 };
        (v / 13.0f64) as f32
    });
    let src = img.data();
    let mut out = src.to_vec();
    let at = |y: usize, x: usize, ch: usize| src[(y * w + x) * c + ch] as f32;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            for ch in 0..c {
                let row = |yy: usize, kk: &[f32]| {
                    at(yy, x - 1, ch) * kk[0] + at(yy, x, ch) * kk[1] + at(yy, x + 1, ch) * kk[2]
                };
                let mut ss = 0.5f32;
                ss += row(y + 1, &k[0..3]);
                ss += row(y, &k[3..6]);
                ss += row(y - 1, &k[6..9]);
                out[(y * w + x) * c + ch] = clip8(ss);
            }
        }
    }
    Image::new(w, h, c, out).expect("same size")
}

#[inline]
fn clip8(v: f32) -> u8 {
    if v <= 0.0 {
        0
    } else if v >= 255.0 {
        255
    } else {
        v as u8
    }
}

/// `ImageEnhance.Sharpness(img).enhance(factor)`: blend with [`smooth`].
pub fn sharpness(img: &Image, factor: f64) -> Image {
    let degenerate = smooth(img);
    enhanced(img, degenerate.data(), factor)
}

/// Pillow's `FLOOR` (Geometry.c): truncation for non-negative values.
#[inline]
fn pil_floor(v: f64) -> i64 {
    if v < 0.0 {
        v.floor() as i64
    } else {
        v as i64
    }
}

#[inline]
fn cubic(v1: f64, v2: f64, v3: f64, v4: f64, d: f64) -> f64 {
    let p1 = v2;
    let p2 = -v1 + v3;
    let p3 = 2.0 * (v1 - v2) + v3 - v4;
    let p4 = -v1 + v2 - v3 + v4;
    p1 + d * (p2 + d * (p3 + d * p4))
}

/// `img.transform(img.size, Image.AFFINE, m, resample=BICUBIC, fillcolor=fill)`: output pixel
/// `(x, y)` samples the input at `(m₀(x+½) + m₁(y+½) + m₂, m₃(x+½) + m₄(y+½) + m₅)` with
/// Pillow's bicubic (`a = −1`, Geometry.c), or is `fill` when that point lies outside the image.
/// `fill` has one value per channel (one value is used for every channel; empty means black).
pub fn affine_bicubic(img: &Image, m: [f64; 6], fill: &[u8]) -> Image {
    let (w, h, c) = (img.width(), img.height(), img.channels());
    let fill = if fill.is_empty() { &[0u8][..] } else { fill };
    let src = img.data();
    let mut out = Vec::with_capacity(w * h * c);
    let xclip = |x: i64| x.clamp(0, w as i64 - 1) as usize;
    let yclip = |y: i64| y.clamp(0, h as i64 - 1) as usize;
    for y in 0..h {
        for x in 0..w {
            let xo = x as f64 + 0.5;
            let yo = y as f64 + 0.5;
            let mut xin = m[0] * xo + m[1] * yo + m[2];
            let mut yin = m[3] * xo + m[4] * yo + m[5];
            if xin.is_nan()
                || yin.is_nan()
                || xin < 0.0
                || xin >= w as f64
                || yin < 0.0
                || yin >= h as f64
            {
                out.extend((0..c).map(|ch| fill[ch.min(fill.len() - 1)]));
                continue;
            }
            xin -= 0.5;
            yin -= 0.5;
            let xf = pil_floor(xin);
            let yf = pil_floor(yin);
            let dx = xin - xf as f64;
            let dy = yin - yf as f64;
            let (x0, y0) = (xf - 1, yf - 1);
            let cols = [xclip(x0), xclip(x0 + 1), xclip(x0 + 2), xclip(x0 + 3)];
            for ch in 0..c {
                let row_at = |yy: usize| {
                    let px = |xx: usize| src[(yy * w + xx) * c + ch] as f64;
                    cubic(px(cols[0]), px(cols[1]), px(cols[2]), px(cols[3]), dx)
                };
                let v1 = row_at(yclip(y0));
                let inside = |yy: i64| yy >= 0 && yy < h as i64;
                let v2 = if inside(y0 + 1) {
                    row_at((y0 + 1) as usize)
                } else {
                    v1
                };
                let v3 = if inside(y0 + 2) {
                    row_at((y0 + 2) as usize)
                } else {
                    v2
                };
                let v4 = if inside(y0 + 3) {
                    row_at((y0 + 3) as usize)
                } else {
                    v3
                };
                let v = cubic(v1, v2, v3, v4, dy);
                out.push(if v <= 0.0 {
                    0
                } else if v >= 255.0 {
                    255
                } else {
                    v as u8
                });
            }
        }
    }
    Image::new(w, h, c, out).expect("same size")
}

/// Python's `round(x, 15)` (correctly rounded through the decimal representation).
fn round15(x: f64) -> f64 {
    format!("{x:.15}").parse().unwrap_or(x)
}

/// `img.rotate(degrees, resample=BICUBIC, fillcolor=fill)` (counter-clockwise about the centre,
/// same size): Pillow's matrix (entries rounded to 15 decimals) through [`affine_bicubic`].
pub fn rotate_bicubic(img: &Image, degrees: f64, fill: &[u8]) -> Image {
    let angle = degrees.rem_euclid(360.0);
    if angle == 0.0 {
        return img.clone();
    }
    let (w, h) = (img.width() as f64, img.height() as f64);
    let (cx, cy) = (w / 2.0, h / 2.0);
    let a = -angle.to_radians();
    let mut m = [
        round15(a.cos()),
        round15(a.sin()),
        0.0,
        round15(-a.sin()),
        round15(a.cos()),
        0.0,
    ];
    // Python: matrix[2], matrix[5] = transform(-cx, -cy, matrix), with matrix[2] = matrix[5] = 0
    m[2] = m[0] * -cx + m[1] * -cy;
    m[5] = m[3] * -cx + m[4] * -cy;
    m[2] += cx;
    m[5] += cy;
    affine_bicubic(img, m, fill)
}
