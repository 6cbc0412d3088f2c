//! IDX files (MNIST, Fashion-MNIST), plain or gzip-compressed (`datasets.md`, "IDX format").
//!
//! Header: two zero bytes, a type byte (`0x08` = unsigned byte, the only type supported here), the
//! number of dimensions, one big-endian `u32` per dimension; then the row-major data. Files that
//! start with the gzip magic `1f 8b` are decompressed transparently.

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::image::Image;

/// An unsigned-byte IDX array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (e.g. `[10000, 28, 28]`).
    pub dims: Vec<usize>,
    /// Row-major data, `dims.iter().product()` bytes.
    pub data: Vec<u8>,
}

fn idx_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Idx {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl IdxArray {
    /// Builds an array, checking that `data` has `dims.iter().product()` bytes.
    pub fn new(dims: Vec<usize>, data: Vec<u8>) -> Result<Self> {
        let n: usize = dims.iter().product();
        if dims.is_empty() || dims.len() > 255 || n != data.len() {
            return Err(idx_err(
                Path::new("<memory>"),
                format!("dims {dims:?} do not match {} data bytes", data.len()),
            ));
        }
        Ok(IdxArray { dims, data })
    }

    /// Parses IDX bytes (already decompressed); `path` labels errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
            return Err(idx_err(
                path,
                "not an IDX file (the first two bytes must be zero)",
            ));
        }
        if bytes[2] != 0x08 {
            return Err(idx_err(
                path,
                format!(
                    "element type 0x{:02x} is not supported; only unsigned bytes (0x08)",
                    bytes[2]
                ),
            ));
        }
        let nd = bytes[3] as usize;
        let header = 4 + 4 * nd;
        if nd == 0 || bytes.len() < header {
            return Err(idx_err(path, "truncated header"));
        }
        let dims: Vec<usize> = (0..nd)
            .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
            .collect();
        let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        match n {
            Some(n) if bytes.len() - header == n => Ok(IdxArray {
                dims,
                data: bytes[header..].to_vec(),
            }),
            _ => Err(idx_err(
                path,
                format!(
                    "dims {dims:?} need {n:?} data bytes but the file has {}",
                    bytes.len() - header
                ),
            )),
        }
    }

    /// Reads an IDX file, gunzipping it when it starts with the gzip magic.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let raw = std::fs::read(path).map_err(|e| Error::io("cannot read IDX file", path, e))?;
        if raw.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .map_err(|e| idx_err(path, format!("gzip: {e}")))?;
            IdxArray::parse(&out, path)
        } else {
            IdxArray::parse(&raw, path)
        }
    }

    /// The file bytes (header + data).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 4 * self.dims.len() + self.data.len());
        out.extend_from_slice(&[0, 0, 0x08, self.dims.len() as u8]);
        for &d in &self.dims {
            out.extend_from_slice(&(d as u32).to_be_bytes());
        }
        out.extend_from_slice(&self.data);
        out
    }

    /// Writes the file; gzip-compressed when `gzip` is true. Creates parent folders.
    pub fn write(&self, path: impl AsRef<Path>, gzip: bool) -> Result<()> {
        let path = path.as_ref();
        if self.dims.iter().any(|&d| d > u32::MAX as usize) {
            return Err(idx_err(path, "a dimension exceeds u32"));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("cannot create folder", parent, e))?;
        }
        let bytes = self.to_bytes();
        let out = if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&bytes)
                .map_err(|e| Error::io("cannot compress", path, e))?;
            enc.finish()
                .map_err(|e| Error::io("cannot compress", path, e))?
        } else {
            bytes
        };
        std::fs::write(path, out).map_err(|e| Error::io("cannot write", path, e))
    }

    /// Interprets the array as images: `(n, h, w)` is grey, `(n, h, w, 1)` grey and
    /// `(n, h, w, 3)` RGB. Returns `(n, h, w, channels)`.
    pub fn image_shape(&self) -> Result<(usize, usize, usize, usize)> {
        match self.dims[..] {
            [n, h, w] => Ok((n, h, w, 1)),
            [n, h, w, c] if c == 1 || c == 3 => Ok((n, h, w, c)),
            _ => Err(idx_err(
                Path::new("<memory>"),
                format!(
                    "dims {:?} are not images; expected (n, h, w), (n, h, w, 1) or (n, h, w, 3)",
                    self.dims
                ),
            )),
        }
    }

    /// Image `i` (see [`IdxArray::image_shape`]).
    pub fn image(&self, i: usize) -> Result<Image> {
        let (n, h, w, c) = self.image_shape()?;
        if i >= n {
            return Err(idx_err(Path::new("<memory>"), format!("image {i} of {n}")));
        }
        let len = h * w * c;
        Image::new(w, h, c, self.data[i * len..(i + 1) * len].to_vec())
    }

    /// Packs equally sized images into an array: `(n, h, w)` for grey, `(n, h, w, 3)` for RGB.
    pub fn from_images(images: &[Image]) -> Result<Self> {
        let first = images
            .first()
            .ok_or_else(|| idx_err(Path::new("<memory>"), "no images"))?;
        let (h, w, c) = (first.height(), first.width(), first.channels());
        let mut data = Vec::with_capacity(images.len() * h * w * c);
        for (i, im) in images.iter().enumerate() {
            if (im.height(), im.width(), im.channels()) != (h, w, c) {
                return Err(idx_err(
                    Path::new("<memory>"),
                    format!("image {i} is {im:?}, the first is {first:?}: all must match"),
                ));
            }
            data.extend_from_slice(im.data());
        }
        let dims = if c == 1 {
            vec![images.len(), h, w]
        } else {
            vec![images.len(), h, w, c]
        };
        Ok(IdxArray { dims, data })
    }
}
