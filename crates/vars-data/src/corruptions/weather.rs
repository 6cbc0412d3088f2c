//! Weather family (protocol §3.1 "Weather"): `snow`, `frost`, `fog` and the extra `spatter`.
//!
//! `snow`, `frost` and `spatter` are colour operations: they take `[0, 1]` (frost: 0..255) RGB
//! planes; grey images go through them as RGB and come back by luma (see `corruptions::apply`).
//! `fog` adds the same texture to every channel and works on any channel count.
//!
//! Random streams: snow — normal field tag 1 (element `i`), angle draw 0 of tag 2; frost — tag 1
//! draws texture index, crop row, crop column in that order; fog — plasma uniforms from the
//! sequential stream tag 1; spatter — normal field tag 1.

use super::helpers::color::gray;
use super::helpers::edges::{canny, distance_transform_l2_5, equalize_hist, filter2d_u8_3x3};
use super::helpers::filter::{cv_blur3_f32, cv_blur3_u8, gaussian_filter, Border};
use super::helpers::motion::motion_blur;
use super::helpers::plasma::plasma_fractal;
use super::helpers::zoom::clipped_zoom;
use super::helpers::Planes;
use super::{Params, SpatterMode};
use crate::assets::{frost_texture_scaled, FROST_USED};
use crate::error::Result;
use crate::image::Image;
use crate::rng::{normal_at, sub_seed, Stream};

/// `snow (μ, σ, z, thr, r, s, b)` on `[0, 1]` RGB planes:
/// 1. `layer = N(μ, σ)` (one channel); 2. `clipped_zoom(layer, z)`, values `< thr` set to 0;
/// 3. `uint8(clip(layer)·255)`, motion blur (radius r, σ s, `θ ~ U(−135°, −45°)`), rounded to
///    8 bits, `/255`; 4. `x ← b·x + (1−b)·max(x, gray(x)·1.5 + 0.5)`;
/// 5. `clip(x + layer + rot180(layer), 0, 1)`.
pub fn snow(x: &Planes, params: &Params, seed: u64) -> Planes {
    let Params::Snow {
        mean,
        std,
        zoom,
        threshold,
        radius,
        sigma,
        blend,
    } = *params
    else {
        unreachable!("snow called with {params:?}")
    };
    let x = &x.to_f32_precision(); // np.array(x, dtype=np.float32) / 255.
    let (h, w) = (x.h, x.w);
    let s = sub_seed(seed, 1);
    let field: Vec<f64> = (0..h * w)
        .map(|i| mean + std * normal_at(s, i as u64))
        .collect();
    let mut layer = clipped_zoom(&field, h, w, 1, zoom);
    layer.iter_mut().for_each(|v| {
        if *v < threshold {
            *v = 0.0
        }
    });
    let l8: Vec<f64> = layer
        .iter()
        .map(|&v| ((v.clamp(0.0, 1.0) * 255.0) as u8) as f64)
        .collect();
    let angle = Stream::new(sub_seed(seed, 2)).uniform_range(-135.0, -45.0);
    let blurred = motion_blur(&l8, h, w, 1, radius, sigma, angle);
    let layer: Vec<f64> = blurred
        .iter()
        .map(|&v| v.clamp(0.0, 255.0).round_ties_even() / 255.0)
        .collect();
    let mut out = x.clone();
    for p in 0..h * w {
        let px = &mut out.data[p * 3..p * 3 + 3];
        let g = gray(px[0], px[1], px[2]) * 1.5 + 0.5;
        let add = layer[p] + layer[h * w - 1 - p]; // rot180
        for v in px.iter_mut() {
            let mixed = blend * *v + (1.0 - blend) * v.max(g);
            *v = (mixed + add).clamp(0.0, 1.0);
        }
    }
    out
}

/// `frost (a, f)` on 0..255 RGB planes: texture `randint(0, 5)` (frost1–5, quirk 4), resized by
/// `texture_scale` (0.2 at 32 px; the size rule multiplies by `S/native`), random crop at
/// `(randint(0, Hf − H), randint(0, Wf − W))`, `clip(a·x + f·frost, 0, 255)`. A texture smaller
/// than the image after scaling is enlarged further until it covers it.
pub fn frost(x: &Planes, a: f64, f: f64, texture_scale: f64, seed: u64) -> Result<Planes> {
    let mut st = Stream::new(sub_seed(seed, 1));
    let idx = st.randint(0, FROST_USED as i64) as usize;
    let mut scale = texture_scale;
    let mut tex = frost_texture_scaled(idx, scale)?;
    if tex.height() < x.h || tex.width() < x.w {
        let base = frost_texture_scaled(idx, 1.0)?;
        let need = (x.h as f64 / base.height() as f64).max(x.w as f64 / base.width() as f64);
        scale = need * 1.01 + 1e-9;
        tex = frost_texture_scaled(idx, scale)?;
    }
    let row = st.randint(0, tex.height() as i64 - x.h as i64) as usize;
    let col = st.randint(0, tex.width() as i64 - x.w as i64) as usize;
    Ok(frost_at(x, a, f, &tex, row, col))
}

/// The deterministic core of [`frost`]: blend the crop of `texture` at `(row, col)`.
pub fn frost_at(x: &Planes, a: f64, f: f64, texture: &Image, row: usize, col: usize) -> Planes {
    let mut out = x.clone();
    for y in 0..x.h {
        for xx in 0..x.w {
            for ch in 0..3 {
                let t = texture.get(row + y, col + xx, ch) as f64;
                let i = (y * x.w + xx) * 3 + ch;
                out.data[i] = (a * x.data[i] + f * t).clamp(0.0, 255.0);
            }
        }
    }
    out
}

/// `fog (c₀, wibbledecay)`: `M = max(x)` over everything before the texture,
/// `x + c₀·plasma[:H, :W]` on every channel (mapsize = next power of two ≥ max(H, W), the size
/// rule; 256 at 224 px and 32 at 32 px as in the reference), `clip(x·M/(M + c₀), 0, 1)`.
pub fn fog(img: &Image, strength: f64, wibble_decay: f64, seed: u64) -> Image {
    let mut x = Planes::from_unit(img);
    let max = x.data.iter().copied().fold(0.0f64, f64::max);
    if strength == 0.0 {
        return x.to_image_unit();
    }
    let mapsize = x.h.max(x.w).next_power_of_two().max(2);
    let plasma = plasma_fractal(mapsize, wibble_decay, &mut Stream::new(sub_seed(seed, 1)));
    for y in 0..x.h {
        for xx in 0..x.w {
            let p = strength * plasma[y * mapsize + xx];
            for ch in 0..x.c {
                let i = (y * x.w + xx) * x.c + ch;
                x.data[i] = ((x.data[i] + p) * max / (max + strength)).clamp(0.0, 1.0);
            }
        }
    }
    x.to_image_unit()
}

/// The water mode's edge texture from the 8-bit liquid layer: Canny(50, 150), L2 distance to the
/// edges truncated at 20, `uint8(blur3)`, histogram equalisation, emboss into 8 bits, `blur3`.
pub fn spatter_water_texture(l8: &[u8], h: usize, w: usize) -> Vec<u8> {
    let edges = canny(l8, h, w, 50.0, 150.0);
    let inv: Vec<u8> = edges.iter().map(|&e| 255 - e).collect();
    let dist: Vec<f32> = distance_transform_l2_5(&inv, h, w)
        .into_iter()
        .map(|d| d.min(20.0))
        .collect();
    let dist: Vec<u8> = cv_blur3_f32(&dist, h, w)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    let dist = equalize_hist(&dist);
    let dist = filter2d_u8_3x3(&dist, h, w, [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]);
    cv_blur3_u8(&dist, h, w)
}

/// `spatter (μ, σ, σ_g, thr, k, mode)` on `[0, 1]` RGB planes (§3.1): the liquid layer
/// `gaussian(N(μ, σ), σ_g)` with values `< thr` set to 0, then the water (pale turquoise
/// `(175, 238, 238)`) or mud (brown `(63, 42, 20)`) overlay. Water: `uint8(liquid·255)` wraps
/// modulo 256 above 1, as numpy's cast does on x86; a texture whose maximum is 0 adds nothing.
pub fn spatter(x: &Planes, params: &Params, seed: u64) -> Planes {
    let Params::Spatter {
        mean,
        std,
        sigma,
        threshold,
        intensity,
        mode,
    } = *params
    else {
        unreachable!("spatter called with {params:?}")
    };
    let x = &x.to_f32_precision(); // np.array(x, dtype=np.float32) / 255.
    let (h, w) = (x.h, x.w);
    let s = sub_seed(seed, 1);
    let field: Vec<f64> = (0..h * w)
        .map(|i| mean + std * normal_at(s, i as u64))
        .collect();
    let mut liquid = gaussian_filter(&field, h, w, sigma, 4.0, Border::Nearest);
    liquid.iter_mut().for_each(|v| {
        if *v < threshold {
            *v = 0.0
        }
    });
    let mut out = x.clone();
    match mode {
        SpatterMode::Water => {
            let l8: Vec<u8> = liquid
                .iter()
                .map(|&v| ((v * 255.0) as i64).rem_euclid(256) as u8)
                .collect();
            let dist = spatter_water_texture(&l8, h, w);
            let m: Vec<f64> = l8
                .iter()
                .zip(&dist)
                .map(|(&l, &d)| l as f64 * d as f64)
                .collect();
            let max = m.iter().copied().fold(0.0f64, f64::max);
            let color = [175.0 / 255.0, 238.0 / 255.0, 238.0 / 255.0];
            if max > 0.0 {
                for p in 0..h * w {
                    let mv = m[p] / max * intensity;
                    for ch in 0..3 {
                        let i = p * 3 + ch;
                        out.data[i] = (x.data[i] + mv * color[ch]).clamp(0.0, 1.0);
                    }
                }
            }
        }
        SpatterMode::Mud => {
            let ind: Vec<f64> = liquid
                .iter()
                .map(|&v| if v > threshold { 1.0 } else { 0.0 })
                .collect();
            let mut m = gaussian_filter(&ind, h, w, intensity, 4.0, Border::Nearest);
            m.iter_mut().for_each(|v| {
                if *v < 0.8 {
                    *v = 0.0
                }
            });
            let color = [63.0 / 255.0, 42.0 / 255.0, 20.0 / 255.0];
            for p in 0..h * w {
                for ch in 0..3 {
                    let i = p * 3 + ch;
                    out.data[i] = (x.data[i] * (1.0 - m[p]) + m[p] * color[ch]).clamp(0.0, 1.0);
                }
            }
        }
    }
    out
}
