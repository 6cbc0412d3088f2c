//! Reading and writing PNG and JPEG files.
//!
//! Decoding goes through the `image` crate (PNG and JPEG features only). Any 8- or 16-bit grey or
//! colour file is accepted; 16-bit samples are reduced to 8 bits, alpha is dropped without
//! compositing (as `cv2.imread` does for the frost textures, protocol quirk 4), grey stays grey.
//!
//! JPEG encoding uses the `jpeg-encoder` crate configured like PIL's `Image.save(..., "JPEG",
//! quality=q)`: libjpeg's standard quantisation tables scaled by quality, 4:2:0 chroma
//! subsampling at every quality (the protocol's `jpeg_compression` and ImageNet-C's q85 save).
//! The bytes still differ from libjpeg's (different DCT and rounding), see `docs/corruptions.md`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::image::Image;

/// File formats the writer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Lossless PNG.
    Png,
    /// Baseline JPEG at a quality 1..=100 (PIL's scale), 4:2:0 chroma subsampling.
    Jpeg { quality: u8 },
}

impl Format {
    /// The format implied by a path's extension (`.png`, `.jpg`, `.jpeg`, any case), with
    /// `jpeg_quality` for JPEG.
    pub fn from_path(path: &Path, jpeg_quality: u8) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("jpg") | Some("jpeg") => Ok(Format::Jpeg {
                quality: jpeg_quality,
            }),
            _ => Err(Error::UnknownFormat(path.to_path_buf())),
        }
    }
}

/// Decodes PNG or JPEG bytes; `name` only labels errors.
pub fn decode_image(bytes: &[u8], name: &Path) -> Result<Image> {
    let dynamic = image::load_from_memory(bytes).map_err(|e| Error::Decode {
        path: name.to_path_buf(),
        message: e.to_string(),
    })?;
    let (w, h) = (dynamic.width() as usize, dynamic.height() as usize);
    let grey = !dynamic.color().has_color();
    if grey {
        Image::new(w, h, 1, dynamic.into_luma8().into_raw())
    } else {
        Image::new(w, h, 3, dynamic.into_rgb8().into_raw())
    }
}

/// Reads a PNG or JPEG file (the format is sniffed from the content, not the extension).
pub fn read_image(path: impl AsRef<Path>) -> Result<Image> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read image", path, e))?;
    decode_image(&bytes, path)
}

/// Encodes as PNG.
pub fn encode_png(image: &Image) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let color = if image.channels() == 1 {
        image::ExtendedColorType::L8
    } else {
        image::ExtendedColorType::Rgb8
    };
    use image::ImageEncoder;
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            image.data(),
            image.width() as u32,
            image.height() as u32,
            color,
        )
        .map_err(|e| Error::Encode {
            path: "<png>".into(),
            message: e.to_string(),
        })?;
    Ok(out)
}

/// Encodes as baseline JPEG with PIL's defaults at `quality` (1..=100): libjpeg tables scaled by
/// quality, 4:2:0 chroma subsampling for colour images.
pub fn encode_jpeg(image: &Image, quality: u8) -> Result<Vec<u8>> {
    if !(1..=100).contains(&quality) {
        return Err(Error::Encode {
            path: "<jpeg>".into(),
            message: format!("JPEG quality {quality} is outside 1..=100"),
        });
    }
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    let color = if image.channels() == 1 {
        jpeg_encoder::ColorType::Luma
    } else {
        jpeg_encoder::ColorType::Rgb
    };
    // Sides are at most MAX_SIDE = 65535 (checked by Image::new), so the casts are lossless.
    enc.encode(
        image.data(),
        image.width() as u16,
        image.height() as u16,
        color,
    )
    .map_err(|e| Error::Encode {
        path: "<jpeg>".into(),
        message: e.to_string(),
    })?;
    Ok(out)
}

/// Encodes in `format`.
pub fn encode_image(image: &Image, format: Format) -> Result<Vec<u8>> {
    match format {
        Format::Png => encode_png(image),
        Format::Jpeg { quality } => encode_jpeg(image, quality),
    }
}

/// Writes `image` to `path`, creating parent folders; the format follows the extension (JPEG at
/// `jpeg_quality`).
pub fn write_image(path: impl AsRef<Path>, image: &Image, jpeg_quality: u8) -> Result<()> {
    let path = path.as_ref();
    let format = Format::from_path(path, jpeg_quality)?;
    write_image_as(path, image, format)
}

/// Writes `image` to `path` in `format`, creating parent folders.
pub fn write_image_as(path: &Path, image: &Image, format: Format) -> Result<()> {
    let bytes = encode_image(image, format).map_err(|e| match e {
        Error::Encode { message, .. } => Error::Encode {
            path: path.to_path_buf(),
            message,
        },
        other => other,
    })?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io("cannot create folder", parent, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| Error::io("cannot write", path, e))
}

/// A JPEG encode/decode round trip at `quality` (the `jpeg_compression` corruption and the
/// ImageNet-C q85 save).
pub fn jpeg_round_trip(image: &Image, quality: u8) -> Result<Image> {
    let bytes = encode_jpeg(image, quality)?;
    let out = decode_image(&bytes, Path::new("<jpeg round trip>"))?;
    // A grey JPEG decodes as grey, a colour one as RGB: the channel count is preserved.
    Ok(out)
}
