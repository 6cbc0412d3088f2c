//! Noise family (protocol §3.1 "Noise"): `gaussian_noise`, `shot_noise`, `impulse_noise` and the
//! extra `speckle_noise`. All four are per element (pixel × channel), so grey images get
//! single-channel noise with the same law.
//!
//! Random streams (see [`crate::rng`]): element `i` (row-major `HWC` index) uses draw `i` of
//! stream tag 1 (`normal`, Box–Muller counters `2i`, `2i+1`); shot noise gives element `i` its own
//! Poisson stream `sub_seed(sub_seed(seed, 1), i)`; impulse noise uses counters `2i` (hit?) and
//! `2i + 1` (salt or pepper) of stream tag 1.

use crate::corruptions::helpers::Planes;
use crate::image::Image;
use crate::rng::{normal_at, sub_seed, uniform_at, Stream};

const TAG: u64 = 1;

/// `clip(x + N(0, std), 0, 1)`.
pub fn gaussian_noise(img: &Image, std: f64, seed: u64) -> Image {
    let s = sub_seed(seed, TAG);
    let mut x = Planes::from_unit(img);
    for (i, v) in x.data.iter_mut().enumerate() {
        *v += std * normal_at(s, i as u64);
    }
    x.to_image_unit()
}

/// `clip(Poisson(x·rate)/rate, 0, 1)`.
pub fn shot_noise(img: &Image, rate: f64, seed: u64) -> Image {
    let s = sub_seed(seed, TAG);
    let mut x = Planes::from_unit(img);
    for (i, v) in x.data.iter_mut().enumerate() {
        let mut st = Stream::new(sub_seed(s, i as u64));
        *v = st.poisson(*v * rate) / rate;
    }
    x.to_image_unit()
}

/// Salt and pepper: each element is hit with probability `amount` and becomes 1 or 0 with equal
/// chance (scikit-image ≥ 0.19's `random_noise(mode='s&p')`).
pub fn impulse_noise(img: &Image, amount: f64, seed: u64) -> Image {
    let s = sub_seed(seed, TAG);
    let mut x = Planes::from_unit(img);
    for (i, v) in x.data.iter_mut().enumerate() {
        let i = i as u64;
        if uniform_at(s, 2 * i) < amount {
            *v = if uniform_at(s, 2 * i + 1) < 0.5 {
                0.0
            } else {
                1.0
            };
        }
    }
    x.to_image_unit()
}

/// `clip(x + x·N(0, std), 0, 1)`.
pub fn speckle_noise(img: &Image, std: f64, seed: u64) -> Image {
    let s = sub_seed(seed, TAG);
    let mut x = Planes::from_unit(img);
    for (i, v) in x.data.iter_mut().enumerate() {
        *v += *v * std * normal_at(s, i as u64);
    }
    x.to_image_unit()
}
