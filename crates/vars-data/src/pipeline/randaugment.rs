//! RandAugment with timm's semantics (timm 0.3.2 `auto_augment.py`, the version RVT and DeiT
//! train with): `rand-m9-mstd0.5-inc1` is 2 ops per image, chosen uniformly **with replacement**
//! from the 15 "increasing" ops; each op is applied with probability 0.5, at a magnitude drawn
//! from `N(9, 0.5²)` and clipped to `[0, 10]` (per op application), with a random sign where the
//! op has one. Geometric ops use bicubic resampling and fill with the normalisation mean
//! (`round(255·mean)`), as DeiT configures them.
//!
//! | op | argument at magnitude `m` |
//! |---|---|
//! | AutoContrast, Equalize, Invert | — |
//! | Rotate | `±30·m/10` degrees |
//! | PosterizeIncreasing | keep `4 − ⌊4·m/10⌋` bits |
//! | SolarizeIncreasing | threshold `256 − ⌊256·m/10⌋` |
//! | SolarizeAdd | add `⌊110·m/10⌋` below 128 |
//! | Color/Contrast/Brightness/SharpnessIncreasing | factor `1 ± 0.9·m/10` |
//! | ShearX, ShearY | `±0.3·m/10` |
//! | TranslateXRel, TranslateYRel | `±0.45·m/10` of the width / height |
//!
//! The non-increasing set (`rand-m9` without `inc1`) uses Posterize `⌊4·m/10⌋` bits, Solarize
//! threshold `⌊256·m/10⌋` and enhancement factors `0.1 + 1.8·m/10`.
//!
//! Python's RNG cannot be reproduced; the draws come from the loader's seeded streams
//! ([`super::seed`]) and follow timm's distributions.

use crate::error::{Error, Result};
use crate::image::Image;
use crate::rng::Stream;

use super::pil;

/// timm's `_MAX_LEVEL`.
pub const MAX_LEVEL: f64 = 10.0;

/// One RandAugment operation (timm's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RandOp {
    AutoContrast,
    Equalize,
    Invert,
    Rotate,
    Posterize,
    PosterizeIncreasing,
    Solarize,
    SolarizeIncreasing,
    SolarizeAdd,
    Color,
    ColorIncreasing,
    Contrast,
    ContrastIncreasing,
    Brightness,
    BrightnessIncreasing,
    Sharpness,
    SharpnessIncreasing,
    ShearX,
    ShearY,
    TranslateXRel,
    TranslateYRel,
}

/// timm's `_RAND_INCREASING_TRANSFORMS` (the `inc1` set), in timm's order.
pub const RAND_INCREASING_TRANSFORMS: [RandOp; 15] = [
    RandOp::AutoContrast,
    RandOp::Equalize,
    RandOp::Invert,
    RandOp::Rotate,
    RandOp::PosterizeIncreasing,
    RandOp::SolarizeIncreasing,
    RandOp::SolarizeAdd,
    RandOp::ColorIncreasing,
    RandOp::ContrastIncreasing,
    RandOp::BrightnessIncreasing,
    RandOp::SharpnessIncreasing,
    RandOp::ShearX,
    RandOp::ShearY,
    RandOp::TranslateXRel,
    RandOp::TranslateYRel,
];

/// timm's `_RAND_TRANSFORMS` (the default set), in timm's order.
pub const RAND_TRANSFORMS: [RandOp; 15] = [
    RandOp::AutoContrast,
    RandOp::Equalize,
    RandOp::Invert,
    RandOp::Rotate,
    RandOp::Posterize,
    RandOp::Solarize,
    RandOp::SolarizeAdd,
    RandOp::Color,
    RandOp::Contrast,
    RandOp::Brightness,
    RandOp::Sharpness,
    RandOp::ShearX,
    RandOp::ShearY,
    RandOp::TranslateXRel,
    RandOp::TranslateYRel,
];

impl RandOp {
    /// timm's name of the op.
    pub fn name(self) -> &'static str {
        match self {
            RandOp::AutoContrast => "AutoContrast",
            RandOp::Equalize => "Equalize",
            RandOp::Invert => "Invert",
            RandOp::Rotate => "Rotate",
            RandOp::Posterize => "Posterize",
            RandOp::PosterizeIncreasing => "PosterizeIncreasing",
            RandOp::Solarize => "Solarize",
            RandOp::SolarizeIncreasing => "SolarizeIncreasing",
            RandOp::SolarizeAdd => "SolarizeAdd",
            RandOp::Color => "Color",
            RandOp::ColorIncreasing => "ColorIncreasing",
            RandOp::Contrast => "Contrast",
            RandOp::ContrastIncreasing => "ContrastIncreasing",
            RandOp::Brightness => "Brightness",
            RandOp::BrightnessIncreasing => "BrightnessIncreasing",
            RandOp::Sharpness => "Sharpness",
            RandOp::SharpnessIncreasing => "SharpnessIncreasing",
            RandOp::ShearX => "ShearX",
            RandOp::ShearY => "ShearY",
            RandOp::TranslateXRel => "TranslateXRel",
            RandOp::TranslateYRel => "TranslateYRel",
        }
    }

    /// Whether timm's level function draws a random sign (`_randomly_negate`).
    pub fn has_sign(self) -> bool {
        matches!(
            self,
            RandOp::Rotate
                | RandOp::ColorIncreasing
                | RandOp::ContrastIncreasing
                | RandOp::BrightnessIncreasing
                | RandOp::SharpnessIncreasing
                | RandOp::ShearX
                | RandOp::ShearY
                | RandOp::TranslateXRel
                | RandOp::TranslateYRel
        )
    }

    /// Whether the op takes an argument (timm's `level_fn` is not `None`).
    pub fn has_level(self) -> bool {
        !matches!(
            self,
            RandOp::AutoContrast | RandOp::Equalize | RandOp::Invert
        )
    }

    /// The op's argument at `magnitude` (already clipped to `[0, 10]`), negated when `negate`
    /// and the op has a sign (timm's `LEVEL_TO_ARG`; `translate_pct` is timm's 0.45 default).
    pub fn level_arg(self, magnitude: f64, negate: bool, translate_pct: f64) -> f64 {
        let sign = |v: f64| if negate && self.has_sign() { -v } else { v };
        let frac = magnitude / MAX_LEVEL;
        match self {
            RandOp::AutoContrast | RandOp::Equalize | RandOp::Invert => 0.0,
            RandOp::Rotate => sign(frac * 30.0),
            RandOp::Posterize => (frac * 4.0).trunc(),
            RandOp::PosterizeIncreasing => 4.0 - (frac * 4.0).trunc(),
            RandOp::Solarize => (frac * 256.0).trunc(),
            RandOp::SolarizeIncreasing => 256.0 - (frac * 256.0).trunc(),
            RandOp::SolarizeAdd => (frac * 110.0).trunc(),
            RandOp::Color | RandOp::Contrast | RandOp::Brightness | RandOp::Sharpness => {
                frac * 1.8 + 0.1
            }
            RandOp::ColorIncreasing
            | RandOp::ContrastIncreasing
            | RandOp::BrightnessIncreasing
            | RandOp::SharpnessIncreasing => 1.0 + sign(frac * 0.9),
            RandOp::ShearX | RandOp::ShearY => sign(frac * 0.3),
            RandOp::TranslateXRel | RandOp::TranslateYRel => sign(frac * translate_pct),
        }
    }

    /// Applies the op with argument `arg` (from [`RandOp::level_arg`]); `fill` (one value per
    /// channel, or one for all) colours the area that geometric ops uncover.
    pub fn apply(self, img: &Image, arg: f64, fill: &[u8]) -> Image {
        let fill: Vec<u8> = if fill.is_empty() {
            vec![128; img.channels()]
        } else {
            fill.to_vec()
        };
        match self {
            RandOp::AutoContrast => pil::autocontrast(img),
            RandOp::Equalize => pil::equalize(img),
            RandOp::Invert => pil::invert(img),
            RandOp::Rotate => pil::rotate_bicubic(img, arg, &fill),
            RandOp::Posterize | RandOp::PosterizeIncreasing => {
                pil::posterize(img, arg.max(0.0) as u32)
            }
            RandOp::Solarize | RandOp::SolarizeIncreasing => {
                pil::solarize(img, arg.max(0.0) as u32)
            }
            RandOp::SolarizeAdd => pil::solarize_add(img, arg.max(0.0) as u32, 128),
            RandOp::Color | RandOp::ColorIncreasing => pil::color(img, arg),
            RandOp::Contrast | RandOp::ContrastIncreasing => pil::contrast(img, arg),
            RandOp::Brightness | RandOp::BrightnessIncreasing => pil::brightness(img, arg),
            RandOp::Sharpness | RandOp::SharpnessIncreasing => pil::sharpness(img, arg),
            RandOp::ShearX => pil::affine_bicubic(img, [1.0, arg, 0.0, 0.0, 1.0, 0.0], &fill),
            RandOp::ShearY => pil::affine_bicubic(img, [1.0, 0.0, 0.0, arg, 1.0, 0.0], &fill),
            RandOp::TranslateXRel => {
                let px = arg * img.width() as f64;
                pil::affine_bicubic(img, [1.0, 0.0, px, 0.0, 1.0, 0.0], &fill)
            }
            RandOp::TranslateYRel => {
                let px = arg * img.height() as f64;
                pil::affine_bicubic(img, [1.0, 0.0, 0.0, 0.0, 1.0, px], &fill)
            }
        }
    }
}

/// One op as drawn for one image: which op, whether it fires, its magnitude (after the noise and
/// the clip) and its argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpDraw {
    pub op: RandOp,
    /// `false` when the op's `prob` test skipped it (then `magnitude` and `arg` are unused).
    pub applied: bool,
    pub magnitude: f64,
    pub arg: f64,
}

/// A RandAugment policy (timm's `RandAugment` + `AugmentOp`s).
#[derive(Debug, Clone, PartialEq)]
pub struct RandAugment {
    /// The ops to choose from (uniformly, with replacement).
    pub ops: Vec<RandOp>,
    /// Ops per image (`n`, default 2).
    pub num_layers: usize,
    /// Magnitude (`m`, 0…10).
    pub magnitude: f64,
    /// Standard deviation of the per-application magnitude noise (`mstd`; 0 = fixed).
    pub magnitude_std: f64,
    /// Probability that a chosen op is applied (timm: 0.5).
    pub prob: f64,
    /// Translation range as a fraction of the side (timm's `translate_pct`, 0.45).
    pub translate_pct: f64,
}

impl RandAugment {
    /// `rand-m9-mstd0.5-inc1`, the VARS/RVT/DeiT policy (spec §6).
    pub fn reference() -> Self {
        RandAugment {
            ops: RAND_INCREASING_TRANSFORMS.to_vec(),
            num_layers: 2,
            magnitude: 9.0,
            magnitude_std: 0.5,
            prob: 0.5,
            translate_pct: 0.45,
        }
    }

    /// Parses timm's config string: `rand` followed by `-`-separated sections `m<int>`
    /// (magnitude, default 10), `n<int>` (ops per image, default 2), `mstd<float>` (magnitude
    /// noise, default 0) and `inc<int>` (the increasing op set; as in timm, any value selects
    /// it, even `inc0`). Weighted op choice (`w`) is not supported.
    pub fn from_config(config: &str) -> Result<Self> {
        let bad = |m: String| Error::Pipeline(format!("RandAugment config `{config}`: {m}"));
        let mut parts = config.split('-');
        if parts.next() != Some("rand") {
            return Err(bad(
                "must start with `rand` (e.g. `rand-m9-mstd0.5-inc1`)".into()
            ));
        }
        let mut ra = RandAugment {
            ops: RAND_TRANSFORMS.to_vec(),
            num_layers: 2,
            magnitude: MAX_LEVEL,
            magnitude_std: 0.0,
            prob: 0.5,
            translate_pct: 0.45,
        };
        for part in parts {
            let Some(split) = part.find(|c: char| c.is_ascii_digit()) else {
                continue; // timm ignores sections without a number
            };
            let (key, val) = part.split_at(split);
            let int = || {
                val.parse::<usize>()
                    .map_err(|_| bad(format!("`{part}`: `{val}` is not an integer")))
            };
            match key {
                "m" => ra.magnitude = int()? as f64,
                "n" => ra.num_layers = int()?,
                "mstd" => {
                    ra.magnitude_std = val
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite() && *v >= 0.0)
                        .ok_or_else(|| bad(format!("`{part}`: bad standard deviation")))?
                }
                "inc" => ra.ops = RAND_INCREASING_TRANSFORMS.to_vec(),
                "w" => return Err(bad("weighted op choice (`w`) is not supported".into())),
                _ => return Err(bad(format!("unknown section `{part}`"))),
            }
        }
        Ok(ra)
    }

    /// Draws the ops for one image from `stream` (timm's order: the `num_layers` op choices,
    /// then per op the application test, the magnitude noise and the sign).
    pub fn draw(&self, stream: &mut Stream) -> Vec<OpDraw> {
        if self.ops.is_empty() {
            return Vec::new();
        }
        let chosen: Vec<RandOp> = (0..self.num_layers)
            .map(|_| self.ops[stream.randint(0, self.ops.len() as i64) as usize])
            .collect();
        chosen
            .into_iter()
            .map(|op| {
                if self.prob < 1.0 && stream.uniform() > self.prob {
                    return OpDraw {
                        op,
                        applied: false,
                        magnitude: 0.0,
                        arg: 0.0,
                    };
                }
                let mut m = self.magnitude;
                if self.magnitude_std > 0.0 {
                    m += self.magnitude_std * stream.normal();
                }
                let m = m.clamp(0.0, MAX_LEVEL);
                let negate = op.has_sign() && stream.uniform() > 0.5;
                OpDraw {
                    op,
                    applied: true,
                    magnitude: m,
                    arg: op.level_arg(m, negate, self.translate_pct),
                }
            })
            .collect()
    }

    /// Augments one image with ops drawn from `stream`; `fill` colours uncovered areas.
    pub fn apply(&self, img: &Image, stream: &mut Stream, fill: &[u8]) -> Image {
        let mut out = img.clone();
        for d in self.draw(stream) {
            if d.applied {
                out = d.op.apply(&out, d.arg, fill);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_reference_config() {
        assert_eq!(
            RandAugment::from_config("rand-m9-mstd0.5-inc1").unwrap(),
            RandAugment::reference()
        );
        let r = RandAugment::from_config("rand-m7-n3").unwrap();
        assert_eq!((r.magnitude, r.num_layers, r.magnitude_std), (7.0, 3, 0.0));
        assert_eq!(r.ops, RAND_TRANSFORMS.to_vec());
        assert!(RandAugment::from_config("auto-m9").is_err());
        assert!(RandAugment::from_config("rand-w0").is_err());
        assert!(RandAugment::from_config("rand-q5").is_err());
    }

    #[test]
    fn levels_follow_timm() {
        let p = 0.45;
        assert!((RandOp::Rotate.level_arg(9.0, false, p) - 27.0).abs() < 1e-12);
        assert!((RandOp::Rotate.level_arg(9.0, true, p) + 27.0).abs() < 1e-12);
        assert_eq!(RandOp::PosterizeIncreasing.level_arg(9.0, false, p), 1.0);
        assert_eq!(RandOp::Posterize.level_arg(9.0, false, p), 3.0);
        assert_eq!(RandOp::SolarizeIncreasing.level_arg(9.0, false, p), 26.0);
        assert_eq!(RandOp::Solarize.level_arg(9.0, false, p), 230.0);
        assert_eq!(RandOp::SolarizeAdd.level_arg(9.0, false, p), 99.0);
        assert!((RandOp::ColorIncreasing.level_arg(9.0, true, p) - 0.19).abs() < 1e-12);
        assert!((RandOp::Contrast.level_arg(9.0, true, p) - 1.72).abs() < 1e-12);
        assert!((RandOp::ShearX.level_arg(10.0, true, p) + 0.3).abs() < 1e-12);
        assert!((RandOp::TranslateYRel.level_arg(5.0, false, p) - 0.225).abs() < 1e-12);
        // ops without a sign ignore `negate`
        assert_eq!(RandOp::SolarizeAdd.level_arg(9.0, true, p), 99.0);
    }
}
