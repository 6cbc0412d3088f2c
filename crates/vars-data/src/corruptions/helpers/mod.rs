//! Numeric helpers of the corruptions (robustness protocol §2), each a port of the library call
//! the reference makes, with that library's conventions (border modes, rounding, fixed point):
//!
//! - [`filter`]: SciPy `gaussian_filter` (skimage `gaussian`), OpenCV `filter2D`,
//!   `GaussianBlur` and `blur`, the border modes of §2.2;
//! - [`disk`]: the defocus kernel of §2.3;
//! - [`plasma`]: the diamond-square fog texture of §2.4;
//! - [`zoom`]: SciPy `zoom(order=1)` and `clipped_zoom` of §2.5;
//! - [`motion`]: the motion-blur kernel of §2.6;
//! - [`color`]: grey and HSV conversions of §2.7;
//! - [`resample`]: PIL `resize` (BOX, BILINEAR), OpenCV `resize(INTER_LINEAR)`,
//!   `getAffineTransform` + `warpAffine`, SciPy `map_coordinates(order=1, mode='reflect')`;
//! - [`edges`]: OpenCV `Canny`, `distanceTransform`, `equalizeHist` (spatter, §3.1).
//!
//! Images here are `HWC` interleaved float buffers ([`Planes`]).

pub mod color;
pub mod disk;
pub mod edges;
pub mod filter;
pub mod motion;
pub mod plasma;
pub mod resample;
pub mod zoom;

use crate::image::Image;

/// An `HWC` interleaved float image.
#[derive(Debug, Clone, PartialEq)]
pub struct Planes {
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels.
    pub c: usize,
    /// `h·w·c` values.
    pub data: Vec<f64>,
}

impl Planes {
    /// Zeros.
    pub fn zeros(h: usize, w: usize, c: usize) -> Self {
        Planes {
            h,
            w,
            c,
            data: vec![0.0; h * w * c],
        }
    }

    /// The image divided by `divisor` (`255` for the `[0, 1]` range, as numpy's `x / 255.`;
    /// `1` for `0..255`).
    pub fn from_image(img: &Image, divisor: f64) -> Self {
        Planes {
            h: img.height(),
            w: img.width(),
            c: img.channels(),
            data: img.data().iter().map(|&v| v as f64 / divisor).collect(),
        }
    }

    /// `x / 255` on the `[0, 1]` range.
    pub fn from_unit(img: &Image) -> Self {
        Planes::from_image(img, 255.0)
    }

    /// Every value rounded to f32 (the reference casts some images to float32).
    pub fn to_f32_precision(&self) -> Planes {
        Planes {
            h: self.h,
            w: self.w,
            c: self.c,
            data: self.data.iter().map(|&v| v as f32 as f64).collect(),
        }
    }

    /// `uint8(clip(x, 0, 1)·255)` with truncation (protocol §1: quantisation truncates).
    pub fn to_image_unit(&self) -> Image {
        self.quantize(255.0, 1.0)
    }

    /// `uint8(clip(x, 0, 255))` with truncation, for corruptions on the 0..255 scale.
    pub fn to_image_255(&self) -> Image {
        self.quantize(1.0, 255.0)
    }

    fn quantize(&self, scale: f64, max: f64) -> Image {
        let data = self
            .data
            .iter()
            .map(|&v| {
                // NaN becomes 0 (`as` saturates), like numpy's uint8 cast on most platforms.
                let v = v.clamp(0.0, max) * scale;
                v as u8
            })
            .collect();
        Image::new(self.w, self.h, self.c, data).expect("planes come from a valid image")
    }

    /// Channel `ch` as a plane (`h·w` values).
    pub fn channel(&self, ch: usize) -> Vec<f64> {
        self.data.iter().skip(ch).step_by(self.c).copied().collect()
    }

    /// Overwrites channel `ch` from a plane.
    pub fn set_channel(&mut self, ch: usize, plane: &[f64]) {
        for (i, &v) in plane.iter().enumerate() {
            self.data[i * self.c + ch] = v;
        }
    }

    /// Applies `f` to every channel plane independently.
    pub fn map_channels(&self, mut f: impl FnMut(&[f64]) -> Vec<f64>) -> Planes {
        let mut out = self.clone();
        for ch in 0..self.c {
            let plane = f(&self.channel(ch));
            out.set_channel(ch, &plane);
        }
        out
    }
}
