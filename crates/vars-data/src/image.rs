//! The 8-bit image type the corruptions take and return.
//!
//! Pixels are interleaved, row-major, channels last (`HWC`), like a NumPy `uint8` array of shape
//! `(height, width, channels)` — the layout of the reference code (robustness protocol §1).
//! Grey images have 1 channel, colour images 3 (RGB). Alpha is never stored: readers drop it
//! (as the reference does for the frost textures, quirk 4).

use crate::error::{Error, Result};

/// An 8-bit grey (1 channel) or RGB (3 channels) image, `HWC` interleaved.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    width: usize,
    height: usize,
    channels: usize,
    data: Vec<u8>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({}x{}x{})", self.height, self.width, self.channels)
    }
}

/// Largest side accepted (the JPEG format's limit, and far above any benchmark image).
pub const MAX_SIDE: usize = 65_535;

impl Image {
    /// Wraps an `HWC` buffer. Errors when `channels` is not 1 or 3, a side is 0 or above
    /// [`MAX_SIDE`], or the buffer length is not `height·width·channels`.
    pub fn new(width: usize, height: usize, channels: usize, data: Vec<u8>) -> Result<Self> {
        if channels != 1 && channels != 3 {
            return Err(Error::InvalidImage(format!(
                "{channels} channels; images must be grey (1 channel) or RGB (3 channels)"
            )));
        }
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(Error::InvalidImage(format!(
                "size {width}x{height}; both sides must be between 1 and {MAX_SIDE} pixels"
            )));
        }
        let want = width * height * channels;
        if data.len() != want {
            return Err(Error::InvalidImage(format!(
                "buffer of {} bytes for a {width}x{height}x{channels} image, which needs {want}",
                data.len()
            )));
        }
        Ok(Image {
            width,
            height,
            channels,
            data,
        })
    }

    /// An image filled with `value`.
    pub fn filled(width: usize, height: usize, channels: usize, value: u8) -> Result<Self> {
        Image::new(
            width,
            height,
            channels,
            vec![value; width * height * channels],
        )
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// 1 (grey) or 3 (RGB).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The `HWC` bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Takes the `HWC` bytes.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// Value at row `y`, column `x`, channel `c` (panics out of range, like slice indexing).
    pub fn get(&self, y: usize, x: usize, c: usize) -> u8 {
        self.data[(y * self.width + x) * self.channels + c]
    }

    /// The same image with 3 channels (grey is replicated; RGB is cloned).
    pub fn to_rgb(&self) -> Image {
        if self.channels == 3 {
            return self.clone();
        }
        let data = self.data.iter().flat_map(|&v| [v, v, v]).collect();
        Image {
            width: self.width,
            height: self.height,
            channels: 3,
            data,
        }
    }

    /// The same image with 1 channel: RGB is converted with the ITU-R 601 luma weights
    /// `0.299 R + 0.587 G + 0.114 B`, rounded (PIL's `convert("L")` up to its fixed-point
    /// rounding); grey is cloned.
    pub fn to_grey(&self) -> Image {
        if self.channels == 1 {
            return self.clone();
        }
        let data = self
            .data
            .chunks_exact(3)
            .map(|p| {
                let v = 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
                v.round().clamp(0.0, 255.0) as u8
            })
            .collect();
        Image {
            width: self.width,
            height: self.height,
            channels: 1,
            data,
        }
    }

    /// The sub-image `[top, top+height) × [left, left+width)`.
    pub fn crop(&self, left: usize, top: usize, width: usize, height: usize) -> Result<Image> {
        if width == 0 || height == 0 || left + width > self.width || top + height > self.height {
            return Err(Error::InvalidImage(format!(
                "crop {width}x{height} at ({left}, {top}) does not fit in a {}x{} image",
                self.width, self.height
            )));
        }
        let c = self.channels;
        let mut data = Vec::with_capacity(width * height * c);
        for y in top..top + height {
            let row = (y * self.width + left) * c;
            data.extend_from_slice(&self.data[row..row + width * c]);
        }
        Ok(Image {
            width,
            height,
            channels: c,
            data,
        })
    }

    /// The centred `size × size` crop (torchvision's `CenterCrop`: offsets
    /// `round((W − size)/2)`, `round((H − size)/2)`, Python rounding: half to even).
    pub fn center_crop(&self, size: usize) -> Result<Image> {
        if size > self.width || size > self.height {
            return Err(Error::InvalidImage(format!(
                "centre crop {size}x{size} is larger than the {}x{} image; resize first",
                self.width, self.height
            )));
        }
        let left = ((self.width - size) as f64 / 2.0).round_ties_even() as usize;
        let top = ((self.height - size) as f64 / 2.0).round_ties_even() as usize;
        self.crop(left, top, size, size)
    }

    /// Resizes so the shorter side is `side` (torchvision's `Resize(side)` on a PIL image: the
    /// longer side becomes `⌊side·long/short⌋`), with PIL's antialiased bilinear filter and its
    /// 8-bit fixed-point rounding. This is the ImageNet-C pipeline's first step (protocol §1).
    pub fn resize_shorter_side(&self, side: usize) -> Result<Image> {
        self.resize_shorter_side_with(
            side,
            crate::corruptions::helpers::resample::PilFilter::Bilinear,
        )
    }

    /// [`Image::resize_shorter_side`] with another PIL filter (torchvision's `Resize(side,
    /// interpolation)` on a PIL image; the training pipeline's evaluation resize is bicubic).
    pub fn resize_shorter_side_with(
        &self,
        side: usize,
        filter: crate::corruptions::helpers::resample::PilFilter,
    ) -> Result<Image> {
        if side == 0 {
            return Err(Error::InvalidImage(
                "resize to a shorter side of 0 pixels".into(),
            ));
        }
        let (w, h) = (self.width, self.height);
        let (nw, nh) = if w <= h {
            (side, (side as f64 * h as f64 / w as f64) as usize)
        } else {
            ((side as f64 * w as f64 / h as f64) as usize, side)
        };
        self.resize(nw.max(1), nh.max(1), filter)
    }

    /// Resizes to `width × height` with one of PIL's filters (8-bit fixed point, as
    /// `PIL.Image.resize`).
    pub fn resize(
        &self,
        width: usize,
        height: usize,
        filter: crate::corruptions::helpers::resample::PilFilter,
    ) -> Result<Image> {
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(Error::InvalidImage(format!("resize to {width}x{height}")));
        }
        let data = crate::corruptions::helpers::resample::pil_resize(
            &self.data,
            self.width,
            self.height,
            self.channels,
            width,
            height,
            filter,
        );
        Image::new(width, height, self.channels, data)
    }
}
