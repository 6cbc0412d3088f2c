//! The frost textures of the `frost` corruption (`datasets.md` §D, protocol §3.1), embedded in the
//! library so the corruption works from any working directory.
//!
//! The six files are the `imagecorruptions` 1.1.2 wheel's, byte for byte (Apache-2.0; provenance
//! and SHA-256 sums in `assets/frost/README.md`). They are decoded on first use (alpha dropped,
//! not composited, quirk 4), and resized copies are cached per scale.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use crate::corruptions::helpers::resample::cv_resize_linear_u8;
use crate::error::{Error, Result};
use crate::image::Image;

/// Number of textures shipped; the reference draws only from the first five.
pub const FROST_COUNT: usize = 6;

/// The textures the reference draws from (`randint(0, 5)`: frost6 is never used).
pub const FROST_USED: usize = 5;

const FROST_FILES: [(&str, &[u8]); FROST_COUNT] = [
    ("frost1.png", include_bytes!("../assets/frost/frost1.png")),
    ("frost2.png", include_bytes!("../assets/frost/frost2.png")),
    ("frost3.png", include_bytes!("../assets/frost/frost3.png")),
    ("frost4.jpg", include_bytes!("../assets/frost/frost4.jpg")),
    ("frost5.jpg", include_bytes!("../assets/frost/frost5.jpg")),
    ("frost6.jpg", include_bytes!("../assets/frost/frost6.jpg")),
];

/// The raw bytes and file name of texture `index` (0-based).
pub fn frost_file(index: usize) -> Option<(&'static str, &'static [u8])> {
    FROST_FILES.get(index).copied()
}

type Decoded = OnceLock<std::result::Result<Arc<Image>, String>>;

fn decoded() -> &'static [Decoded; FROST_COUNT] {
    static CELLS: OnceLock<[Decoded; FROST_COUNT]> = OnceLock::new();
    CELLS.get_or_init(|| std::array::from_fn(|_| OnceLock::new()))
}

/// Texture `index` (0-based) as an RGB image.
pub fn frost_texture(index: usize) -> Result<Arc<Image>> {
    let (name, bytes) = frost_file(index).ok_or_else(|| Error::InvalidParameter {
        corruption: "frost",
        message: format!("texture index {index}; there are {FROST_COUNT}"),
    })?;
    decoded()[index]
        .get_or_init(|| {
            crate::io::decode_image(bytes, Path::new(name))
                .map(|im| Arc::new(im.to_rgb()))
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|message| Error::Decode {
            path: name.into(),
            message,
        })
}

/// Texture `index` resized by `scale` with OpenCV's bilinear `resize` (the reference's ×0.2 at
/// 32 px); `scale == 1` returns the texture itself. Cached.
pub fn frost_texture_scaled(index: usize, scale: f64) -> Result<Arc<Image>> {
    let base = frost_texture(index)?;
    if scale == 1.0 {
        return Ok(base);
    }
    type Cache = Mutex<HashMap<(usize, u64), Arc<Image>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (index, scale.to_bits());
    if let Some(hit) = cache.lock().map_err(|_| poisoned())?.get(&key) {
        return Ok(hit.clone());
    }
    let (data, w, h) =
        cv_resize_linear_u8(base.data(), base.width(), base.height(), 3, scale, scale);
    let img = Arc::new(Image::new(w, h, 3, data)?);
    let mut guard = cache.lock().map_err(|_| poisoned())?;
    if guard.len() > 64 {
        guard.clear(); // bounded: many distinct sizes in one process are unusual
    }
    guard.insert(key, img.clone());
    Ok(img)
}

fn poisoned() -> Error {
    Error::InvalidParameter {
        corruption: "frost",
        message: "texture cache poisoned by a panic".into(),
    }
}
