//! Blur family (protocol §3.1 "Blur"): `defocus_blur`, `glass_blur`, `motion_blur`, `zoom_blur`
//! and the extra `gaussian_blur`. All are channel-independent, so grey images are blurred as
//! one channel.
//!
//! Random streams: glass blur draws `(dx, dy)` per visited pixel from the sequential stream tag 1
//! (dx first, as `randint(−δ, δ, size=2)`); motion blur draws its angle as draw 0 of stream tag 1.

use super::helpers::disk::disk;
use super::helpers::filter::{filter2d, gaussian_filter, Border};
use super::helpers::motion::motion_blur as motion_kernel_blur;
use super::helpers::zoom::clipped_zoom;
use super::helpers::Planes;
use crate::image::Image;
use crate::rng::{sub_seed, Stream};

const TAG: u64 = 1;

/// Every channel filtered with `disk(radius, alias_blur)` (OpenCV `filter2D`, reflect-101).
pub fn defocus_blur(img: &Image, radius: f64, alias_blur: f64) -> Image {
    let (k32, side) = disk(radius, alias_blur);
    let k: Vec<f64> = k32.iter().map(|&v| v as f64).collect();
    let x = Planes::from_unit(img);
    x.map_channels(|p| filter2d(p, x.h, x.w, &k, side, side, Border::Reflect101))
        .to_image_unit()
}

/// skimage `gaussian(x, σ)` per channel (mode nearest, truncate 4).
fn skimage_gaussian(x: &Planes, sigma: f64) -> Planes {
    x.map_channels(|p| gaussian_filter(p, x.h, x.w, sigma, 4.0, Border::Nearest))
}

/// The extra `gaussian_blur`: `clip(gaussian(x, σ), 0, 1)`.
pub fn gaussian_blur(img: &Image, sigma: f64) -> Image {
    skimage_gaussian(&Planes::from_unit(img), sigma).to_image_unit()
}

/// `glass_blur(σ, δ, iterations)`: blur, quantise to 8 bits, locally "swap" pixels (a one-way
/// copy, quirk 1) with loop bounds from the image size (the reference hard-codes 224 or 32), blur
/// again.
pub fn glass_blur(img: &Image, sigma: f64, delta: usize, iterations: usize, seed: u64) -> Image {
    let x = skimage_gaussian(&Planes::from_unit(img), sigma);
    // np.uint8(gaussian(...)·255): truncation
    let mut u: Vec<u8> = x.data.iter().map(|&v| (v * 255.0) as u8).collect();
    let (h, w, c) = (x.h, x.w, x.c);
    let mut st = Stream::new(sub_seed(seed, TAG));
    let d = delta as i64;
    for _ in 0..iterations {
        // for h in range(H − δ, δ, −1): for w in range(W − δ, δ, −1)
        let mut yy = h as i64 - d;
        while yy > d {
            let mut xx = w as i64 - d;
            while xx > d {
                let dx = st.randint(-d, d);
                let dy = st.randint(-d, d);
                let (sy, sx) = (yy + dy, xx + dx);
                if (0..h as i64).contains(&sy)
                    && (0..w as i64).contains(&sx)
                    && yy < h as i64
                    && xx < w as i64
                {
                    let dst = (yy as usize * w + xx as usize) * c;
                    let src = (sy as usize * w + sx as usize) * c;
                    for ch in 0..c {
                        u[dst + ch] = u[src + ch];
                    }
                }
                xx -= 1;
            }
            yy -= 1;
        }
    }
    let q = Planes {
        h,
        w,
        c,
        data: u.iter().map(|&v| v as f64 / 255.0).collect(),
    };
    skimage_gaussian(&q, sigma).to_image_unit()
}

/// `motion_blur(radius, σ)` at angle `θ ~ U(−45°, 45°)` on the 8-bit image (§2.6).
pub fn motion_blur(img: &Image, radius: usize, sigma: f64, seed: u64) -> Image {
    let angle = Stream::new(sub_seed(seed, TAG)).uniform_range(-45.0, 45.0);
    motion_blur_at(img, radius, sigma, angle)
}

/// Motion blur at a given angle in degrees (the deterministic core of [`motion_blur`]); output
/// `uint8(clip(·, 0, 255))` with truncation.
pub fn motion_blur_at(img: &Image, radius: usize, sigma: f64, angle_deg: f64) -> Image {
    let x = Planes::from_image(img, 1.0);
    let data = motion_kernel_blur(&x.data, x.h, x.w, x.c, radius, sigma, angle_deg);
    Planes { data, ..x }.to_image_255()
}

/// `zoom_blur`: `(x + Σ_z clipped_zoom(x, z)) / (count + 1)` for the `count` factors of numpy's
/// `arange(1, stop, step)`, accumulated in f32 as the reference (its image is cast to float32).
/// numpy fills an `arange` as `start + k·((start + step) − start)`, so the factors are
/// `1 + k·((1 + step) − 1)`, not `1 + k·step`: at 32 px the difference changes a zoomed side
/// (`25·1.3000000000000003` rounds to 33, `25·1.2999999999999998` to 32).
pub fn zoom_blur(img: &Image, step: f64, count: usize) -> Image {
    let x = Planes::from_unit(img);
    let x32: Vec<f32> = x.data.iter().map(|&v| v as f32).collect();
    let x64: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
    let mut acc = vec![0f32; x32.len()];
    let delta = (1.0 + step) - 1.0;
    for k in 0..count {
        let z = 1.0 + k as f64 * delta;
        let layer = clipped_zoom(&x64, x.h, x.w, x.c, z);
        for (a, &l) in acc.iter_mut().zip(&layer) {
            *a += l as f32;
        }
    }
    let n = (count + 1) as f32;
    let data = x32
        .iter()
        .zip(&acc)
        .map(|(&xv, &a)| ((xv + a) / n).clamp(0.0, 1.0) * 255.0)
        .map(|v| v as u8)
        .collect();
    Image::new(img.width(), img.height(), img.channels(), data).expect("same shape")
}
