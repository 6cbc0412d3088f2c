//! The individual augmentations, each a function of an image and a seeded stream:
//! torchvision/timm `RandomResizedCrop`, `RandomHorizontalFlip`, `RandomCrop(padding)`, the
//! evaluation resize + centre crop, and timm's `RandomErasing`.
//!
//! Resizing is PIL's (`Image.resize`, 8-bit fixed point, antialiased), as torchvision does on
//! PIL images; see [`crate::corruptions::helpers::resample::pil_resize`].

use crate::corruptions::helpers::resample::PilFilter;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::rng::Stream;

/// Python's `round()` (half to even) for the crop and box sizes.
#[inline]
fn py_round(v: f64) -> f64 {
    v.round_ties_even()
}

/// A crop box in pixels: `top`, `left`, `height`, `width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

/// `RandomResizedCrop.get_params` (timm 0.3.2 / torchvision): up to 10 tries of
/// `area·U(scale)` with log-uniform aspect in `ratio`, `w = round(√(area·aspect))`,
/// `h = round(√(area/aspect))`, accepted when `0 < w ≤ W` and `0 < h ≤ H` (the `0 <` is
/// torchvision ≥ 0.8's guard; timm 0.3.2 would accept an empty crop on tiny images), placed
/// uniformly; otherwise the central crop clamped to the ratio range.
pub fn random_resized_crop_box(
    width: usize,
    height: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    stream: &mut Stream,
) -> CropBox {
    let (wf, hf) = (width as f64, height as f64);
    let area = wf * hf;
    let log_ratio = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = stream.uniform_range(scale.0, scale.1) * area;
        let aspect = stream.uniform_range(log_ratio.0, log_ratio.1).exp();
        let w = py_round((target * aspect).sqrt());
        let h = py_round((target / aspect).sqrt());
        if w >= 1.0 && h >= 1.0 && w <= wf && h <= hf {
            let (w, h) = (w as usize, h as usize);
            let top = stream.randint(0, (height - h) as i64 + 1) as usize;
            let left = stream.randint(0, (width - w) as i64 + 1) as usize;
            return CropBox {
                top,
                left,
                height: h,
                width: w,
            };
        }
    }
    let in_ratio = wf / hf;
    let (lo, hi) = (ratio.0.min(ratio.1), ratio.0.max(ratio.1));
    let (w, h) = if in_ratio < lo {
        (width, (py_round(wf / lo) as usize).clamp(1, height))
    } else if in_ratio > hi {
        ((py_round(hf * hi) as usize).clamp(1, width), height)
    } else {
        (width, height)
    };
    CropBox {
        top: (height - h) / 2,
        left: (width - w) / 2,
        height: h,
        width: w,
    }
}

/// `F.resized_crop(img, box, (size, size), BICUBIC)`: crop, then PIL bicubic resize.
pub fn resized_crop(img: &Image, b: CropBox, size: usize) -> Result<Image> {
    img.crop(b.left, b.top, b.width, b.height)?
        .resize(size, size, PilFilter::Bicubic)
}

/// `RandomResizedCrop(size, scale, ratio, interpolation=BICUBIC)`.
pub fn random_resized_crop(
    img: &Image,
    size: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    stream: &mut Stream,
) -> Result<Image> {
    let b = random_resized_crop_box(img.width(), img.height(), scale, ratio, stream);
    resized_crop(img, b, size)
}

/// The image mirrored left–right.
pub fn hflip(img: &Image) -> Image {
    let (w, c) = (img.width(), img.channels());
    let mut data = Vec::with_capacity(img.data().len());
    for row in img.data().chunks_exact(w * c) {
        for x in (0..w).rev() {
            data.extend_from_slice(&row[x * c..(x + 1) * c]);
        }
    }
    Image::new(w, img.height(), c, data).expect("same size")
}

/// `RandomCrop(size = image size, padding=pad)` with zero fill: the image padded by `pad`
/// zeros on every side, cropped back to its size at offsets `top, left ∈ {0, …, 2·pad}`
/// (uniform). Returns the image and the offsets.
pub fn padded_random_crop(img: &Image, pad: usize, stream: &mut Stream) -> (Image, usize, usize) {
    let top = stream.randint(0, 2 * pad as i64 + 1) as usize;
    let left = stream.randint(0, 2 * pad as i64 + 1) as usize;
    (shift_with_zeros(img, pad, top, left), top, left)
}

/// Output pixel `(y, x)` is input `(y + top − pad, x + left − pad)`, or 0 outside.
pub fn shift_with_zeros(img: &Image, pad: usize, top: usize, left: usize) -> Image {
    let (w, h, c) = (img.width(), img.height(), img.channels());
    let mut data = vec![0u8; w * h * c];
    for y in 0..h {
        let sy = y as isize + top as isize - pad as isize;
        if sy < 0 || sy >= h as isize {
            continue;
        }
        for x in 0..w {
            let sx = x as isize + left as isize - pad as isize;
            if sx < 0 || sx >= w as isize {
                continue;
            }
            let s = (sy as usize * w + sx as usize) * c;
            data[(y * w + x) * c..(y * w + x + 1) * c].copy_from_slice(&img.data()[s..s + c]);
        }
    }
    Image::new(w, h, c, data).expect("same size")
}

/// The evaluation resize side for a crop of `size`: timm's `floor(size / 0.875)` (crop_pct
/// 0.875; 256 for 224), computed exactly as `⌊8·size/7⌋`.
pub fn eval_resize_side(size: usize) -> usize {
    size * 8 / 7
}

/// The evaluation transform: resize the shorter side to [`eval_resize_side`] (PIL bicubic;
/// longer side `int(side·long/short)`, torchvision's `Resize(int)`), then the centred
/// `size × size` crop (torchvision's `CenterCrop` offsets).
pub fn eval_resize_crop(img: &Image, size: usize) -> Result<Image> {
    if size == 0 {
        return Err(Error::Pipeline("evaluation crop size 0".into()));
    }
    img.resize_shorter_side_with(eval_resize_side(size), PilFilter::Bicubic)?
        .center_crop(size)
}

/// What RandomErasing fills the box with (timm's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraseMode {
    /// Zeros (`const`).
    Const,
    /// One normal value per channel (`rand`).
    Rand,
    /// One normal value per element (`pixel`, the reference).
    Pixel,
}

/// timm's `RandomErasing`, applied to a normalised `CHW` image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomErasing {
    /// Probability that an image is erased (reference 0.25).
    pub probability: f64,
    /// Box area range as fractions of the image (0.02, 1/3).
    pub min_area: f64,
    pub max_area: f64,
    /// Aspect range `min_aspect … 1/min_aspect`, log-uniform (0.3).
    pub min_aspect: f64,
    pub mode: EraseMode,
    /// Boxes per erased image: uniform in `min_count..=max_count` (1, 1).
    pub min_count: usize,
    pub max_count: usize,
}

impl RandomErasing {
    /// The reference: `p = 0.25`, mode `pixel`, one box (DeiT's `--reprob 0.25 --remode pixel
    /// --recount 1`), timm's defaults otherwise.
    pub fn reference() -> Self {
        RandomErasing {
            probability: 0.25,
            min_area: 0.02,
            max_area: 1.0 / 3.0,
            min_aspect: 0.3,
            mode: EraseMode::Pixel,
            min_count: 1,
            max_count: 1,
        }
    }

    /// Erases boxes of the `CHW` image `data` (timm's `_erase`): with probability `probability`,
    /// for each of `count` boxes up to 10 tries of area `U(min_area, max_area)·H·W/count` and
    /// log-uniform aspect, `h = round(√(area·aspect))`, `w = round(√(area/aspect))`, accepted
    /// when `w < W` and `h < H`, placed uniformly. Draws from `stream`; the fill values are
    /// `normal_at(noise_seed, k)`. Returns the boxes erased.
    pub fn apply(
        &self,
        data: &mut [f32],
        (c, h, w): (usize, usize, usize),
        stream: &mut Stream,
        noise_seed: u64,
    ) -> Vec<CropBox> {
        let mut boxes = Vec::new();
        if stream.uniform() > self.probability {
            return boxes;
        }
        let area = (h * w) as f64;
        let count = if self.min_count >= self.max_count {
            self.min_count
        } else {
            stream.randint(self.min_count as i64, self.max_count as i64 + 1) as usize
        };
        let log_aspect = (self.min_aspect.ln(), (1.0 / self.min_aspect).ln());
        let mut k = 0u64;
        for _ in 0..count {
            for _ in 0..10 {
                let target =
                    stream.uniform_range(self.min_area, self.max_area) * area / count as f64;
                let aspect = stream.uniform_range(log_aspect.0, log_aspect.1).exp();
                let eh = py_round((target * aspect).sqrt()) as usize;
                let ew = py_round((target / aspect).sqrt()) as usize;
                if ew < w && eh < h {
                    let top = stream.randint(0, (h - eh) as i64 + 1) as usize;
                    let left = stream.randint(0, (w - ew) as i64 + 1) as usize;
                    for ch in 0..c {
                        let colour = match self.mode {
                            EraseMode::Rand => {
                                let v = crate::rng::normal_at(noise_seed, k) as f32;
                                k += 1;
                                v
                            }
                            _ => 0.0,
                        };
                        for y in top..top + eh {
                            for x in left..left + ew {
                                data[(ch * h + y) * w + x] = match self.mode {
                                    EraseMode::Pixel => {
                                        let v = crate::rng::normal_at(noise_seed, k) as f32;
                                        k += 1;
                                        v
                                    }
                                    _ => colour,
                                };
                            }
                        }
                    }
                    boxes.push(CropBox {
                        top,
                        left,
                        height: eh,
                        width: ew,
                    });
                    break;
                }
            }
        }
        boxes
    }
}
