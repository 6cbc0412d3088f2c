//! The ImageNet-C / CIFAR-10-C corruptions (robustness protocol §1–§3), natively.
//!
//! - 15 benchmark corruptions in four families — [`noise`], [`blur`], [`weather`], [`digital`] —
//!   and the 4 held-out extras (`speckle_noise`, `gaussian_blur`, `spatter`, `saturate`), each
//!   at severities 1–5 with the ImageNet-C (224 px) and CIFAR-10-C (32 px) tables of §3.2
//!   ([`Params::table`]);
//! - the size rule for other sizes and grey images ([`ParamSet::for_size`], §5.2, and
//!   `docs/corruptions.md`);
//! - seeded per (corruption, severity, image): a corruption's output is a pure function of the
//!   image, its parameters and a 64-bit seed ([`crate::rng`]).
//!
//! ```
//! use vars_data::corruptions::{corrupt, Corruption, ParamSet};
//! use vars_data::{rng::image_seed, Image};
//!
//! let img = Image::filled(32, 32, 3, 128)?;
//! let seed = image_seed(0, Corruption::Fog, 3, 0);
//! let out = corrupt(&img, Corruption::Fog, 3, ParamSet::Cifar10C, seed)?;
//! assert_eq!((out.width(), out.height(), out.channels()), (32, 32, 3));
//! # Ok::<(), vars_data::Error>(())
//! ```
//!
//! Conventions (§1): a corruption works on `x = img/255` and returns `uint8(clip(y, 0, 1)·255)`
//! with **truncation**; `frost` works on 0..255, `pixelate` and `jpeg_compression` on 8-bit
//! images. Every corruption keeps the width, height and channel count.

pub mod blur;
pub mod digital;
pub mod helpers;
pub mod noise;
mod params;
pub mod weather;

pub use params::{severity_index, ParamSet, Params, SpatterMode};

use crate::error::{Error, Result};
use crate::image::Image;
use helpers::color::luma_exact;
use helpers::Planes;

/// The 19 corruptions, in the reference's order (15 benchmark ones, then the 4 extras).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Corruption {
    GaussianNoise,
    ShotNoise,
    ImpulseNoise,
    DefocusBlur,
    GlassBlur,
    MotionBlur,
    ZoomBlur,
    Snow,
    Frost,
    Fog,
    Brightness,
    Contrast,
    ElasticTransform,
    Pixelate,
    JpegCompression,
    SpeckleNoise,
    GaussianBlur,
    Spatter,
    Saturate,
}

/// The four families of the benchmark set (§1); the extras belong to one each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Noise,
    Blur,
    Weather,
    Digital,
}

impl Corruption {
    /// The 15 benchmark corruptions in the reference's order (also the folder names).
    pub const BENCHMARK: [Corruption; 15] = [
        Corruption::GaussianNoise,
        Corruption::ShotNoise,
        Corruption::ImpulseNoise,
        Corruption::DefocusBlur,
        Corruption::GlassBlur,
        Corruption::MotionBlur,
        Corruption::ZoomBlur,
        Corruption::Snow,
        Corruption::Frost,
        Corruption::Fog,
        Corruption::Brightness,
        Corruption::Contrast,
        Corruption::ElasticTransform,
        Corruption::Pixelate,
        Corruption::JpegCompression,
    ];

    /// The four held-out extras (not in mCE).
    pub const EXTRAS: [Corruption; 4] = [
        Corruption::SpeckleNoise,
        Corruption::GaussianBlur,
        Corruption::Spatter,
        Corruption::Saturate,
    ];

    /// All 19: the benchmark set, then the extras.
    pub fn all() -> impl Iterator<Item = Corruption> {
        Corruption::BENCHMARK.into_iter().chain(Corruption::EXTRAS)
    }

    /// The reference's name (`gaussian_noise`, …), also the ImageNet-C folder name.
    pub fn name(self) -> &'static str {
        match self {
            Corruption::GaussianNoise => "gaussian_noise",
            Corruption::ShotNoise => "shot_noise",
            Corruption::ImpulseNoise => "impulse_noise",
            Corruption::DefocusBlur => "defocus_blur",
            Corruption::GlassBlur => "glass_blur",
            Corruption::MotionBlur => "motion_blur",
            Corruption::ZoomBlur => "zoom_blur",
            Corruption::Snow => "snow",
            Corruption::Frost => "frost",
            Corruption::Fog => "fog",
            Corruption::Brightness => "brightness",
            Corruption::Contrast => "contrast",
            Corruption::ElasticTransform => "elastic_transform",
            Corruption::Pixelate => "pixelate",
            Corruption::JpegCompression => "jpeg_compression",
            Corruption::SpeckleNoise => "speckle_noise",
            Corruption::GaussianBlur => "gaussian_blur",
            Corruption::Spatter => "spatter",
            Corruption::Saturate => "saturate",
        }
    }

    /// Parses a name (case-insensitive; `-` and `_` are interchangeable).
    pub fn from_name(name: &str) -> Result<Corruption> {
        let norm = name.trim().to_ascii_lowercase().replace('-', "_");
        Corruption::all()
            .find(|c| c.name() == norm)
            .ok_or_else(|| Error::UnknownCorruption {
                name: name.to_string(),
                known: Corruption::all()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The family (§1).
    pub fn family(self) -> Family {
        use Corruption::*;
        match self {
            GaussianNoise | ShotNoise | ImpulseNoise | SpeckleNoise => Family::Noise,
            DefocusBlur | GlassBlur | MotionBlur | ZoomBlur | GaussianBlur => Family::Blur,
            Snow | Frost | Fog | Spatter => Family::Weather,
            Brightness | Contrast | ElasticTransform | Pixelate | JpegCompression | Saturate => {
                Family::Digital
            }
        }
    }

    /// One of the 15 benchmark corruptions (counted in mCE)?
    pub fn is_benchmark(self) -> bool {
        !Corruption::EXTRAS.contains(&self)
    }

    /// Does the output depend on the seed? (The deterministic ones are contrast, brightness,
    /// saturate, pixelate, defocus blur, zoom blur, Gaussian blur and JPEG.)
    pub fn is_random(self) -> bool {
        use Corruption::*;
        matches!(
            self,
            GaussianNoise
                | ShotNoise
                | ImpulseNoise
                | SpeckleNoise
                | GlassBlur
                | MotionBlur
                | Snow
                | Frost
                | Fog
                | ElasticTransform
                | Spatter
        )
    }

    /// Is "more severe ⇒ more damage" part of the definition (every parameter moves towards more
    /// damage)? Yes for the noises, defocus/motion/zoom/Gaussian blur, fog, brightness, contrast,
    /// pixelate and JPEG. Not for `saturate` (it desaturates at 1–2 and oversaturates at 3–5) and
    /// `glass_blur` (CIFAR σ drops from 0.4 to 0.25 at severity 4; ImageNet trades iterations
    /// for shuffle distance): protocol quirk 11. Nor for `elastic_transform` (the affine jitter
    /// shrinks while the displacement field grows), `snow` (threshold and zoom jump around),
    /// `frost` (the image weight falls while the frost weight stalls, and the texture is random)
    /// or `spatter` (switches from water to mud at severity 4).
    pub fn is_monotone(self) -> bool {
        use Corruption::*;
        !matches!(
            self,
            Saturate | GlassBlur | ElasticTransform | Snow | Frost | Spatter
        )
    }
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Corruption {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Corruption::from_name(s)
    }
}

/// Corrupts `image` with `corruption` at `severity` (1..=5) using the table of `set`; `seed`
/// drives every random draw (use [`crate::rng::image_seed`] for the per-image scheme).
pub fn corrupt(
    image: &Image,
    corruption: Corruption,
    severity: u8,
    set: ParamSet,
    seed: u64,
) -> Result<Image> {
    let params = Params::table(corruption, severity, set)?;
    apply(image, &params, set.native_size(), seed)
}

/// Applies explicit parameters. `native_size` is the side the parameters were written for (224
/// for ImageNet-C's, 32 for CIFAR-10-C's): size-dependent constants (elastic displacement, frost
/// texture scale) are scaled by `min(width, height)/native_size` (the size rule), everything
/// else is used as given.
pub fn apply(image: &Image, params: &Params, native_size: usize, seed: u64) -> Result<Image> {
    params.validate()?;
    if native_size == 0 {
        return Err(Error::InvalidParameter {
            corruption: params.corruption().name(),
            message: "native size 0; use 224 (ImageNet-C) or 32 (CIFAR-10-C)".into(),
        });
    }
    let size_scale = image.width().min(image.height()) as f64 / native_size as f64;
    let out = match *params {
        Params::GaussianNoise { std } => noise::gaussian_noise(image, std, seed),
        Params::ShotNoise { rate } => noise::shot_noise(image, rate, seed),
        Params::ImpulseNoise { amount } => noise::impulse_noise(image, amount, seed),
        Params::SpeckleNoise { std } => noise::speckle_noise(image, std, seed),
        Params::DefocusBlur { radius, alias_blur } => blur::defocus_blur(image, radius, alias_blur),
        Params::GlassBlur {
            sigma,
            delta,
            iterations,
        } => blur::glass_blur(image, sigma, delta, iterations, seed),
        Params::MotionBlur { radius, sigma } => blur::motion_blur(image, radius, sigma, seed),
        Params::ZoomBlur { step, count } => blur::zoom_blur(image, step, count),
        Params::GaussianBlur { sigma } => blur::gaussian_blur(image, sigma),
        Params::Snow { .. } => with_rgb(image, |x| weather::snow(x, params, seed)),
        Params::Frost {
            image_weight,
            frost_weight,
            texture_scale,
        } => {
            let scale = texture_scale * size_scale;
            let fw = frost_weight;
            return with_rgb_255(image, |x| weather::frost(x, image_weight, fw, scale, seed));
        }
        Params::Fog {
            strength,
            wibble_decay,
        } => weather::fog(image, strength, wibble_decay, seed),
        Params::Spatter { .. } => with_rgb(image, |x| weather::spatter(x, params, seed)),
        Params::Brightness { delta } => with_rgb(image, |x| digital::brightness(x, delta)),
        Params::Contrast { factor } => digital::contrast(image, factor),
        Params::ElasticTransform {
            alpha,
            sigma,
            affine,
        } => digital::elastic_transform(
            image,
            alpha * size_scale,
            sigma * size_scale,
            affine * size_scale,
            seed,
        ),
        Params::Pixelate { factor } => digital::pixelate(image, factor),
        Params::JpegCompression { quality } => return crate::io::jpeg_round_trip(image, quality),
        Params::Saturate { scale, offset } => {
            with_rgb(image, |x| digital::saturate(x, scale, offset))
        }
    };
    Ok(out)
}

/// Runs a colour-aware corruption on `[0, 1]` RGB planes; a grey image is corrupted as RGB with
/// `R = G = B` and brought back with [`luma_exact`] (exact where the result stays grey).
fn with_rgb(image: &Image, f: impl FnOnce(&Planes) -> Planes) -> Image {
    let rgb = Planes::from_unit(&image.to_rgb());
    let out = f(&rgb);
    if image.channels() == 3 {
        out.to_image_unit()
    } else {
        to_grey(&out).to_image_unit()
    }
}

/// As [`with_rgb`] on the 0..255 scale (frost).
fn with_rgb_255(image: &Image, f: impl FnOnce(&Planes) -> Result<Planes>) -> Result<Image> {
    let rgb = Planes::from_image(&image.to_rgb(), 1.0);
    let out = f(&rgb)?;
    Ok(if image.channels() == 3 {
        out.to_image_255()
    } else {
        to_grey(&out).to_image_255()
    })
}

fn to_grey(p: &Planes) -> Planes {
    let data = p
        .data
        .chunks_exact(3)
        .map(|q| luma_exact(q[0], q[1], q[2]))
        .collect();
    Planes {
        h: p.h,
        w: p.w,
        c: 1,
        data,
    }
}

/// [`corrupt`] seeded by the per-image scheme:
/// [`crate::rng::image_seed`]`(base_seed, corruption, severity, index)`.
pub fn corrupt_seeded(
    image: &Image,
    corruption: Corruption,
    severity: u8,
    set: ParamSet,
    base_seed: u64,
    index: u64,
) -> Result<Image> {
    let seed = crate::rng::image_seed(base_seed, corruption, severity, index);
    corrupt(image, corruption, severity, set, seed)
}
