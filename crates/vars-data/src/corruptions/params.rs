//! Severity parameters of every corruption, for the ImageNet-C (224 px) and CIFAR-10-C (32 px)
//! sets (robustness protocol §3.2), and the rule for other sizes (§5.2, `docs/corruptions.md`).

use super::Corruption;
use crate::error::{Error, Result};

/// Which published parameter table to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamSet {
    /// ImageNet-C (`make_imagenet_c.py`), native size 224 px.
    ImageNetC,
    /// CIFAR-10-C (`make_cifar_c.py`), native size 32 px.
    Cifar10C,
}

impl ParamSet {
    /// The image side the table was written for: 224 or 32.
    pub fn native_size(self) -> usize {
        match self {
            ParamSet::ImageNetC => 224,
            ParamSet::Cifar10C => 32,
        }
    }

    /// The size rule: images whose shorter side is at most 84 px (closer to 32 than to 224 on a
    /// log scale: √(32·224) ≈ 84.7) use the CIFAR-10-C table, larger ones the ImageNet-C table.
    /// So 28 px Fashion-MNIST and 32 px CIFAR use CIFAR-10-C's, 224 px ImageNet uses ImageNet-C's.
    pub fn for_size(width: usize, height: usize) -> ParamSet {
        if width.min(height) <= 84 {
            ParamSet::Cifar10C
        } else {
            ParamSet::ImageNetC
        }
    }

    /// `imagenet` / `cifar` (also `imagenet-c`, `cifar10-c`, `cifar-10-c`, `224`, `32`).
    pub fn from_name(name: &str) -> Result<ParamSet> {
        match name.to_ascii_lowercase().as_str() {
            "imagenet" | "imagenet-c" | "imagenetc" | "224" => Ok(ParamSet::ImageNetC),
            "cifar" | "cifar10" | "cifar10-c" | "cifar-10-c" | "cifar10c" | "32" => {
                Ok(ParamSet::Cifar10C)
            }
            _ => Err(Error::UnknownParamSet(name.to_string())),
        }
    }

    /// `imagenet-c` or `cifar10-c`.
    pub fn name(self) -> &'static str {
        match self {
            ParamSet::ImageNetC => "imagenet-c",
            ParamSet::Cifar10C => "cifar10-c",
        }
    }
}

/// `spatter`'s two modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpatterMode {
    /// Mode 0: water drops (edge-distance texture, pale turquoise).
    Water,
    /// Mode 1: mud (thresholded blobs, brown).
    Mud,
}

/// The parameters of one corruption at one severity, named as in the protocol (§3.1, §3.2).
/// Build them with [`Params::table`] or by hand for custom strengths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Params {
    /// `x + N(0, std)`.
    GaussianNoise { std: f64 },
    /// `Poisson(x·rate)/rate`.
    ShotNoise { rate: f64 },
    /// Salt and pepper: each element hit with probability `amount`, half salt, half pepper.
    ImpulseNoise { amount: f64 },
    /// `x + x·N(0, std)`.
    SpeckleNoise { std: f64 },
    /// `filter2D` with `disk(radius, alias_blur)`.
    DefocusBlur { radius: f64, alias_blur: f64 },
    /// Gaussian σ, shuffle distance δ, iterations.
    GlassBlur {
        sigma: f64,
        delta: usize,
        iterations: usize,
    },
    /// Kernel radius and σ; angle `U(−45°, 45°)`.
    MotionBlur { radius: usize, sigma: f64 },
    /// Zoom factors `1 + k·step`, `k = 0…count−1`.
    ZoomBlur { step: f64, count: usize },
    /// Gaussian σ (mode nearest, truncate 4).
    GaussianBlur { sigma: f64 },
    /// `(μ, σ, z, thr, r, s, b)` of §3.1.
    Snow {
        mean: f64,
        std: f64,
        zoom: f64,
        threshold: f64,
        radius: usize,
        sigma: f64,
        blend: f64,
    },
    /// `clip(a·img + f·frost)` on the 0..255 scale; `texture_scale` resizes the frost texture first
    /// (1 at ImageNet-C, 0.2 at CIFAR-10-C).
    Frost {
        image_weight: f64,
        frost_weight: f64,
        texture_scale: f64,
    },
    /// Plasma strength `c₀`, `wibbledecay`.
    Fog { strength: f64, wibble_decay: f64 },
    /// `V ← clip(V + delta)` in HSV.
    Brightness { delta: f64 },
    /// `(x − mean)·factor + mean` per channel.
    Contrast { factor: f64 },
    /// Displacement scale `c₀`, smoothing σ `c₁`, affine jitter `c₂` (pixels at the set's native size).
    ElasticTransform { alpha: f64, sigma: f64, affine: f64 },
    /// Down-sampling factor (side `⌊S·factor⌋`).
    Pixelate { factor: f64 },
    /// JPEG quality 1..=100.
    JpegCompression { quality: u8 },
    /// `S ← clip(S·scale + offset)` in HSV.
    Saturate { scale: f64, offset: f64 },
    /// `(μ, σ, σ_g, thr, k, mode)` of §3.1.
    Spatter {
        mean: f64,
        std: f64,
        sigma: f64,
        threshold: f64,
        intensity: f64,
        mode: SpatterMode,
    },
}

/// Checks and converts a severity (1..=5) into a table index.
pub fn severity_index(severity: u8) -> Result<usize> {
    if (1..=5).contains(&severity) {
        Ok(severity as usize - 1)
    } else {
        Err(Error::Severity(severity as i64))
    }
}

impl Params {
    /// The protocol's parameters of `corruption` at `severity` (1..=5) in `set`.
    pub fn table(corruption: Corruption, severity: u8, set: ParamSet) -> Result<Params> {
        use Corruption as C;
        use ParamSet::*;
        let i = severity_index(severity)?;
        let pick = |a: [f64; 5], b: [f64; 5]| if set == ImageNetC { a[i] } else { b[i] };
        Ok(match corruption {
            C::GaussianNoise => Params::GaussianNoise {
                std: pick(
                    [0.08, 0.12, 0.18, 0.26, 0.38],
                    [0.04, 0.06, 0.08, 0.09, 0.10],
                ),
            },
            C::ShotNoise => Params::ShotNoise {
                rate: pick([60., 25., 12., 5., 3.], [500., 250., 100., 75., 50.]),
            },
            C::ImpulseNoise => Params::ImpulseNoise {
                amount: pick(
                    [0.03, 0.06, 0.09, 0.17, 0.27],
                    [0.01, 0.02, 0.03, 0.05, 0.07],
                ),
            },
            C::SpeckleNoise => Params::SpeckleNoise {
                std: pick([0.15, 0.2, 0.35, 0.45, 0.6], [0.06, 0.1, 0.12, 0.16, 0.2]),
            },
            C::DefocusBlur => {
                let (r, a) = if set == ImageNetC {
                    [(3., 0.1), (4., 0.5), (6., 0.5), (8., 0.5), (10., 0.5)][i]
                } else {
                    [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1., 0.2), (1.5, 0.1)][i]
                };
                Params::DefocusBlur {
                    radius: r,
                    alias_blur: a,
                }
            }
            C::GlassBlur => {
                let (s, d, n) = if set == ImageNetC {
                    [
                        (0.7, 1, 2),
                        (0.9, 2, 1),
                        (1., 2, 3),
                        (1.1, 3, 2),
                        (1.5, 4, 2),
                    ][i]
                } else {
                    [
                        (0.05, 1, 1),
                        (0.25, 1, 1),
                        (0.4, 1, 1),
                        (0.25, 1, 2),
                        (0.4, 1, 2),
                    ][i]
                };
                Params::GlassBlur {
                    sigma: s,
                    delta: d,
                    iterations: n,
                }
            }
            C::MotionBlur => {
                let (r, s) = if set == ImageNetC {
                    [(10, 3.), (15, 5.), (15, 8.), (15, 12.), (20, 15.)][i]
                } else {
                    [(6, 1.), (6, 1.5), (6, 2.), (8, 2.), (9, 2.5)][i]
                };
                Params::MotionBlur {
                    radius: r,
                    sigma: s,
                }
            }
            C::ZoomBlur => {
                let (step, count) = if set == ImageNetC {
                    [(0.01, 12), (0.01, 16), (0.02, 11), (0.02, 13), (0.03, 11)][i]
                } else {
                    [(0.01, 7), (0.01, 12), (0.01, 16), (0.01, 21), (0.01, 26)][i]
                };
                Params::ZoomBlur { step, count }
            }
            C::GaussianBlur => Params::GaussianBlur {
                sigma: pick([1., 2., 3., 4., 6.], [0.4, 0.6, 0.7, 0.8, 1.]),
            },
            C::Snow => {
                let t = if set == ImageNetC {
                    [
                        (0.1, 0.3, 3., 0.5, 10, 4., 0.8),
                        (0.2, 0.3, 2., 0.5, 12, 4., 0.7),
                        (0.55, 0.3, 4., 0.9, 12, 8., 0.7),
                        (0.55, 0.3, 4.5, 0.85, 12, 8., 0.65),
                        (0.55, 0.3, 2.5, 0.85, 12, 12., 0.55),
                    ][i]
                } else {
                    [
                        (0.1, 0.2, 1., 0.6, 8, 3., 0.95),
                        (0.1, 0.2, 1., 0.5, 10, 4., 0.9),
                        (0.15, 0.3, 1.75, 0.55, 10, 4., 0.9),
                        (0.25, 0.3, 2.25, 0.6, 12, 6., 0.85),
                        (0.3, 0.3, 1.25, 0.65, 14, 12., 0.8),
                    ][i]
                };
                Params::Snow {
                    mean: t.0,
                    std: t.1,
                    zoom: t.2,
                    threshold: t.3,
                    radius: t.4,
                    sigma: t.5,
                    blend: t.6,
                }
            }
            C::Frost => {
                let (a, f) = if set == ImageNetC {
                    [(1., 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)][i]
                } else {
                    [(1., 0.2), (1., 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][i]
                };
                let texture_scale = if set == ImageNetC { 1.0 } else { 0.2 };
                Params::Frost {
                    image_weight: a,
                    frost_weight: f,
                    texture_scale,
                }
            }
            C::Fog => {
                let (c0, wd) = if set == ImageNetC {
                    [(1.5, 2.), (2., 2.), (2.5, 1.7), (2.5, 1.5), (3., 1.4)][i]
                } else {
                    [(0.2, 3.), (0.5, 3.), (0.75, 2.5), (1., 2.), (1.5, 1.75)][i]
                };
                Params::Fog {
                    strength: c0,
                    wibble_decay: wd,
                }
            }
            C::Brightness => Params::Brightness {
                delta: pick([0.1, 0.2, 0.3, 0.4, 0.5], [0.05, 0.1, 0.15, 0.2, 0.3]),
            },
            C::Contrast => Params::Contrast {
                factor: pick([0.4, 0.3, 0.2, 0.1, 0.05], [0.75, 0.5, 0.4, 0.3, 0.15]),
            },
            C::ElasticTransform => {
                // Written as in the reference: multiples of 244 (quirk 5) and of 32.
                let (a, s, f) = if set == ImageNetC {
                    [
                        (244. * 2., 244. * 0.7, 244. * 0.1),
                        (244. * 2., 244. * 0.08, 244. * 0.2),
                        (244. * 0.05, 244. * 0.01, 244. * 0.02),
                        (244. * 0.07, 244. * 0.01, 244. * 0.02),
                        (244. * 0.12, 244. * 0.01, 244. * 0.02),
                    ][i]
                } else {
                    [
                        (32. * 0., 32. * 0., 32. * 0.08),
                        (32. * 0.05, 32. * 0.2, 32. * 0.07),
                        (32. * 0.08, 32. * 0.06, 32. * 0.06),
                        (32. * 0.1, 32. * 0.04, 32. * 0.05),
                        (32. * 0.1, 32. * 0.03, 32. * 0.03),
                    ][i]
                };
                Params::ElasticTransform {
                    alpha: a,
                    sigma: s,
                    affine: f,
                }
            }
            C::Pixelate => Params::Pixelate {
                factor: pick([0.6, 0.5, 0.4, 0.3, 0.25], [0.95, 0.9, 0.85, 0.75, 0.65]),
            },
            C::JpegCompression => {
                let q = if set == ImageNetC {
                    [25, 18, 15, 10, 7][i]
                } else {
                    [80, 65, 58, 50, 40][i]
                };
                Params::JpegCompression { quality: q }
            }
            C::Saturate => {
                let (s, o) = if set == ImageNetC {
                    [(0.3, 0.), (0.1, 0.), (2., 0.), (5., 0.1), (20., 0.2)][i]
                } else {
                    [(0.3, 0.), (0.1, 0.), (1.5, 0.), (2., 0.1), (2.5, 0.2)][i]
                };
                Params::Saturate {
                    scale: s,
                    offset: o,
                }
            }
            C::Spatter => {
                let t = if set == ImageNetC {
                    [
                        (0.65, 0.3, 4., 0.69, 0.6, 0),
                        (0.65, 0.3, 3., 0.68, 0.6, 0),
                        (0.65, 0.3, 2., 0.68, 0.5, 0),
                        (0.65, 0.3, 1., 0.65, 1.5, 1),
                        (0.67, 0.4, 1., 0.65, 1.5, 1),
                    ][i]
                } else {
                    [
                        (0.62, 0.1, 0.7, 0.7, 0.5, 0),
                        (0.65, 0.1, 0.8, 0.7, 0.5, 0),
                        (0.65, 0.3, 1., 0.69, 0.5, 0),
                        (0.65, 0.1, 0.7, 0.69, 0.6, 1),
                        (0.65, 0.1, 0.5, 0.68, 0.6, 1),
                    ][i]
                };
                let mode = if t.5 == 0 {
                    SpatterMode::Water
                } else {
                    SpatterMode::Mud
                };
                Params::Spatter {
                    mean: t.0,
                    std: t.1,
                    sigma: t.2,
                    threshold: t.3,
                    intensity: t.4,
                    mode,
                }
            }
        })
    }

    /// The corruption these parameters belong to.
    pub fn corruption(&self) -> Corruption {
        use Corruption as C;
        match self {
            Params::GaussianNoise { .. } => C::GaussianNoise,
            Params::ShotNoise { .. } => C::ShotNoise,
            Params::ImpulseNoise { .. } => C::ImpulseNoise,
            Params::SpeckleNoise { .. } => C::SpeckleNoise,
            Params::DefocusBlur { .. } => C::DefocusBlur,
            Params::GlassBlur { .. } => C::GlassBlur,
            Params::MotionBlur { .. } => C::MotionBlur,
            Params::ZoomBlur { .. } => C::ZoomBlur,
            Params::GaussianBlur { .. } => C::GaussianBlur,
            Params::Snow { .. } => C::Snow,
            Params::Frost { .. } => C::Frost,
            Params::Fog { .. } => C::Fog,
            Params::Brightness { .. } => C::Brightness,
            Params::Contrast { .. } => C::Contrast,
            Params::ElasticTransform { .. } => C::ElasticTransform,
            Params::Pixelate { .. } => C::Pixelate,
            Params::JpegCompression { .. } => C::JpegCompression,
            Params::Saturate { .. } => C::Saturate,
            Params::Spatter { .. } => C::Spatter,
        }
    }

    /// Checks ranges (custom parameters): finite, non-negative where the formulas need it.
    pub fn validate(&self) -> Result<()> {
        let name = self.corruption().name();
        let bad = |message: String| {
            Err(Error::InvalidParameter {
                corruption: name,
                message,
            })
        };
        let finite_nonneg = |v: f64, what: &str| -> Result<()> {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::InvalidParameter {
                    corruption: name,
                    message: format!("{what} = {v} must be finite and ≥ 0"),
                })
            }
        };
        match *self {
            Params::GaussianNoise { std } | Params::SpeckleNoise { std } => {
                finite_nonneg(std, "std")
            }
            Params::ShotNoise { rate } => {
                if rate.is_finite() && rate > 0.0 {
                    Ok(())
                } else {
                    bad(format!("rate = {rate} must be finite and > 0"))
                }
            }
            Params::ImpulseNoise { amount } => {
                if (0.0..=1.0).contains(&amount) {
                    Ok(())
                } else {
                    bad(format!("amount = {amount} must be in [0, 1]"))
                }
            }
            Params::DefocusBlur { radius, alias_blur } => {
                finite_nonneg(radius, "radius")?;
                if radius > 256.0 {
                    return bad(format!("radius = {radius} is above 256"));
                }
                if alias_blur.is_finite() && alias_blur > 0.0 {
                    Ok(())
                } else {
                    bad(format!("alias_blur = {alias_blur} must be > 0"))
                }
            }
            Params::GlassBlur {
                sigma, iterations, ..
            } => {
                finite_nonneg(sigma, "sigma")?;
                if iterations > 100 {
                    return bad(format!("{iterations} iterations is above 100"));
                }
                Ok(())
            }
            Params::MotionBlur { radius, sigma } => {
                if radius > 1000 {
                    return bad(format!("radius = {radius} is above 1000"));
                }
                if sigma.is_finite() && sigma > 0.0 {
                    Ok(())
                } else {
                    bad(format!("sigma = {sigma} must be > 0"))
                }
            }
            Params::ZoomBlur { step, count } => {
                finite_nonneg(step, "step")?;
                if count == 0 || count > 1000 {
                    return bad(format!("count = {count} must be in 1..=1000"));
                }
                Ok(())
            }
            Params::GaussianBlur { sigma } => finite_nonneg(sigma, "sigma"),
            Params::Snow {
                std,
                zoom,
                radius,
                sigma,
                blend,
                mean,
                threshold,
            } => {
                finite_nonneg(std, "std")?;
                if !(mean.is_finite() && threshold.is_finite()) {
                    return bad("mean and threshold must be finite".into());
                }
                if !(zoom.is_finite() && zoom >= 1.0) {
                    return bad(format!("zoom = {zoom} must be ≥ 1"));
                }
                if radius > 1000 || !(sigma.is_finite() && sigma > 0.0) {
                    return bad(format!(
                        "motion radius {radius} / sigma {sigma} out of range"
                    ));
                }
                if !(0.0..=1.0).contains(&blend) {
                    return bad(format!("blend = {blend} must be in [0, 1]"));
                }
                Ok(())
            }
            Params::Frost {
                image_weight,
                frost_weight,
                texture_scale,
            } => {
                finite_nonneg(image_weight, "image_weight")?;
                finite_nonneg(frost_weight, "frost_weight")?;
                if texture_scale.is_finite() && texture_scale > 0.0 && texture_scale <= 16.0 {
                    Ok(())
                } else {
                    bad(format!(
                        "texture_scale = {texture_scale} must be in (0, 16]"
                    ))
                }
            }
            Params::Fog {
                strength,
                wibble_decay,
            } => {
                finite_nonneg(strength, "strength")?;
                if wibble_decay.is_finite() && wibble_decay > 0.0 {
                    Ok(())
                } else {
                    bad(format!("wibble_decay = {wibble_decay} must be > 0"))
                }
            }
            Params::Brightness { delta } => {
                if delta.is_finite() {
                    Ok(())
                } else {
                    bad("delta must be finite".into())
                }
            }
            Params::Contrast { factor } => finite_nonneg(factor, "factor"),
            Params::ElasticTransform {
                alpha,
                sigma,
                affine,
            } => {
                finite_nonneg(alpha, "alpha")?;
                finite_nonneg(sigma, "sigma")?;
                finite_nonneg(affine, "affine")
            }
            Params::Pixelate { factor } => {
                if factor > 0.0 && factor <= 1.0 {
                    Ok(())
                } else {
                    bad(format!("factor = {factor} must be in (0, 1]"))
                }
            }
            Params::JpegCompression { quality } => {
                if (1..=100).contains(&quality) {
                    Ok(())
                } else {
                    bad(format!("quality = {quality} must be in 1..=100"))
                }
            }
            Params::Saturate { scale, offset } => {
                finite_nonneg(scale, "scale")?;
                if offset.is_finite() {
                    Ok(())
                } else {
                    bad("offset must be finite".into())
                }
            }
            Params::Spatter {
                mean,
                std,
                sigma,
                threshold,
                intensity,
                ..
            } => {
                finite_nonneg(std, "std")?;
                finite_nonneg(sigma, "sigma")?;
                finite_nonneg(intensity, "intensity")?;
                if mean.is_finite() && threshold.is_finite() {
                    Ok(())
                } else {
                    bad("mean and threshold must be finite".into())
                }
            }
        }
    }
}
