//! Digital family (protocol §3.1 "Digital"): `brightness`, `contrast`, `elastic_transform`,
//! `pixelate`, `jpeg_compression` (in [`crate::io::jpeg_round_trip`]) and the extra `saturate`.
//!
//! `brightness` and `saturate` are HSV operations on `[0, 1]` RGB planes (grey images go through
//! them as RGB and come back by luma); the others work on any channel count.
//!
//! Random streams (elastic): affine jitter — draws 0…5 of tag 1 (the three destination points,
//! x then y); `dx` field — element `i` of tag 2; `dy` field — element `i` of tag 3.

use super::helpers::color::{hsv2rgb, rgb2hsv};
use super::helpers::filter::{gaussian_filter, Border};
use super::helpers::resample::{
    get_affine_transform, map_coordinates_reflect, pil_resize, warp_affine_f32, PilFilter,
};
use super::helpers::Planes;
use crate::image::Image;
use crate::rng::{sub_seed, uniform_at, Stream};

fn map_hsv(x: &Planes, f: impl Fn(f64, f64, f64) -> (f64, f64, f64)) -> Planes {
    let mut out = x.clone();
    for px in out.data.chunks_exact_mut(3) {
        let (h, s, v) = rgb2hsv(px[0], px[1], px[2]);
        let (h, s, v) = f(h, s, v);
        let (r, g, b) = hsv2rgb(h, s, v);
        px[0] = r.clamp(0.0, 1.0);
        px[1] = g.clamp(0.0, 1.0);
        px[2] = b.clamp(0.0, 1.0);
    }
    out
}

/// `V ← clip(V + delta, 0, 1)` in scikit-image's HSV.
pub fn brightness(x: &Planes, delta: f64) -> Planes {
    map_hsv(x, |h, s, v| (h, s, (v + delta).clamp(0.0, 1.0)))
}

/// `S ← clip(S·scale + offset, 0, 1)` in scikit-image's HSV.
pub fn saturate(x: &Planes, scale: f64, offset: f64) -> Planes {
    map_hsv(x, |h, s, v| (h, (s * scale + offset).clamp(0.0, 1.0), v))
}

/// `clip((x − m)·factor + m, 0, 1)` with `m` the per-channel mean over all pixels (compensated
/// summation, close to numpy's pairwise sum).
pub fn contrast(img: &Image, factor: f64) -> Image {
    let mut x = Planes::from_unit(img);
    let n = (x.h * x.w) as f64;
    for ch in 0..x.c {
        // Neumaier summation
        let (mut sum, mut comp) = (0.0f64, 0.0f64);
        for v in x.data.iter().skip(ch).step_by(x.c) {
            let t = sum + v;
            comp += if sum.abs() >= v.abs() {
                (sum - t) + v
            } else {
                (v - t) + sum
            };
            sum = t;
        }
        let m = (sum + comp) / n;
        for v in x.data.iter_mut().skip(ch).step_by(x.c) {
            *v = (*v - m) * factor + m;
        }
    }
    x.to_image_unit()
}

/// PIL `resize((⌊W·factor⌋, ⌊H·factor⌋), BOX)` then back to `W×H` with `BOX` (for enlarging,
/// identical to the `imagecorruptions` package's `NEAREST`).
pub fn pixelate(img: &Image, factor: f64) -> Image {
    let (w, h, c) = (img.width(), img.height(), img.channels());
    let sw = ((w as f64 * factor) as usize).max(1);
    let sh = ((h as f64 * factor) as usize).max(1);
    let small = pil_resize(img.data(), w, h, c, sw, sh, PilFilter::Box);
    let data = pil_resize(&small, sw, sh, c, w, h, PilFilter::Box);
    Image::new(w, h, c, data).expect("same shape")
}

/// `elastic_transform (c₀, c₁, c₂)` of `make_imagenet_c.py`/`make_cifar_c.py` (§3.1), with the
/// constants already scaled to the image by the size rule:
/// 1. random affine: points `(cx+q, cy+q)`, `(cx+q, cy−q)`, `(cx−q, cy−q)` with
///    `(cx, cy) = (⌊W/2⌋, ⌊H/2⌋)`, `q = ⌊min(H, W)/3⌋`, moved by `U(−c₂, c₂)` each coordinate;
///    OpenCV `warpAffine` (bilinear, reflect-101);
/// 2. `dx, dy = gaussian(U(−1, 1), σ = c₁, mode reflect, truncate 3)·c₀` (float32);
/// 3. `map_coordinates(order 1, mode reflect)` at `(y + dy, x + dx)`, the same field for every
///    channel. The image is float32 throughout, as in the reference.
pub fn elastic_transform(img: &Image, alpha: f64, sigma: f64, affine: f64, seed: u64) -> Image {
    let (h, w, c) = (img.height(), img.width(), img.channels());
    let x32: Vec<f32> = img.data().iter().map(|&v| v as f32 / 255.0).collect();
    let (cx, cy, q) = ((w / 2) as f32, (h / 2) as f32, (h.min(w) / 3) as f32);
    let src = [[cx + q, cy + q], [cx + q, cy - q], [cx - q, cy - q]];
    let mut st = Stream::new(sub_seed(seed, 1));
    let mut dst = src;
    for p in dst.iter_mut() {
        for v in p.iter_mut() {
            *v += st.uniform_range(-affine, affine) as f32;
        }
    }
    let to64 = |p: [[f32; 2]; 3]| p.map(|q| q.map(|v| v as f64));
    let warped = match get_affine_transform(to64(src), to64(dst)) {
        Some(m) => warp_affine_f32(&x32, h, w, c, m),
        None => x32, // collinear jitter (measure zero): no affine step
    };
    let field = |tag: u64| -> Vec<f32> {
        let s = sub_seed(seed, tag);
        let u: Vec<f64> = (0..h * w)
            .map(|i| uniform_at(s, i as u64) * 2.0 - 1.0)
            .collect();
        gaussian_filter(&u, h, w, sigma, 3.0, Border::Reflect)
            .into_iter()
            .map(|v| (v * alpha) as f32)
            .collect()
    };
    let dx = field(2);
    let dy = field(3);
    let planes: Vec<Vec<f64>> = (0..c)
        .map(|ch| {
            warped
                .iter()
                .skip(ch)
                .step_by(c)
                .map(|&v| v as f64)
                .collect()
        })
        .collect();
    let mut data = vec![0u8; h * w * c];
    for y in 0..h {
        for xx in 0..w {
            let p = y * w + xx;
            let (sy, sx) = (y as f64 + dy[p] as f64, xx as f64 + dx[p] as f64);
            for ch in 0..c {
                let v = map_coordinates_reflect(&planes[ch], h, w, sy, sx) as f32;
                data[p * c + ch] = (v.clamp(0.0, 1.0) * 255.0) as u8;
            }
        }
    }
    Image::new(w, h, c, data).expect("same shape")
}
