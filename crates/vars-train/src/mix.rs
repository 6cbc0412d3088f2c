//! Mixup and CutMix with timm's semantics (`timm.data.Mixup`, mode `batch`; vars-spec §6):
//! Mixup α 0.8, CutMix α 1.0, mixing probability 1.0, switch probability 0.5, one draw per batch,
//! label smoothing 0.1 applied inside the mixed targets (passed to [`MixupConfig::apply`]; the
//! trainer uses its single `label_smoothing` setting, as DeiT passes `--smoothing` to `Mixup`).
//!
//! Per batch (all draws from one seeded [`RngStream`], in timm's order):
//! 1. with probability `prob`, mix at all; otherwise `λ = 1` (targets are only smoothed);
//! 2. CutMix with probability `switch_prob` (when both α are > 0), else Mixup;
//! 3. `λ ~ Beta(α, α)` of the chosen method;
//! 4. CutMix only: a box of side `⌊H·√(1−λ)⌋ × ⌊W·√(1−λ)⌋` centred at a uniform pixel
//!    `(cy, cx)`, rows `clip(cy − ⌊cut_h/2⌋, 0, H) .. clip(cy + ⌊cut_h/2⌋, 0, H)` (columns alike);
//!    with `correct_lam` (timm's default) λ becomes `1 − box_area/(H·W)`, the actual share of
//!    the image kept.
//!
//! Images are mixed with the batch reversed (`x.flip(0)`): Mixup gives `λ·x + (1−λ)·x.flip(0)`,
//! CutMix pastes the box of `x.flip(0)` into `x`. Targets are
//! `λ·smooth(y) + (1−λ)·smooth(y.flip(0))` with `smooth(y) = (1−ε)·onehot(y) + ε/K`, i.e. the
//! one-hot "on" value `1 − ε + ε/K` and "off" value `ε/K`; the loss is then the soft-target
//! cross-entropy (`vars_core::nn::cross_entropy` with `Target::Soft` and no further smoothing).
//! timm requires an even batch; so does this module.

use crate::seed::RngStream;
use crate::{Result, TrainError};
use serde::{Deserialize, Serialize};
use vars_core::{Backend, DType, Tensor};

/// Mixup/CutMix settings (module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixupConfig {
    /// Mixup's Beta parameter (0.8); 0 disables Mixup.
    pub mixup_alpha: f64,
    /// CutMix's Beta parameter (1.0); 0 disables CutMix.
    pub cutmix_alpha: f64,
    /// Probability of mixing a batch at all (1.0).
    pub prob: f64,
    /// Probability of CutMix rather than Mixup when both are enabled (0.5).
    pub switch_prob: f64,
    /// Recompute λ from the clipped CutMix box (timm's default, true).
    pub correct_lam: bool,
}

impl Default for MixupConfig {
    fn default() -> Self {
        Self::reference()
    }
}

impl MixupConfig {
    /// The reference settings (vars-spec §6).
    pub fn reference() -> Self {
        MixupConfig {
            mixup_alpha: 0.8,
            cutmix_alpha: 1.0,
            prob: 1.0,
            switch_prob: 0.5,
            correct_lam: true,
        }
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, v: f64, range: &str| {
            Err(TrainError::config(
                format!("mixup.{field} = {v}"),
                format!("use a value in {range}"),
            ))
        };
        if !(self.mixup_alpha >= 0.0 && self.mixup_alpha.is_finite()) {
            return bad("mixup_alpha", self.mixup_alpha, "[0, ∞) (reference 0.8)");
        }
        if !(self.cutmix_alpha >= 0.0 && self.cutmix_alpha.is_finite()) {
            return bad("cutmix_alpha", self.cutmix_alpha, "[0, ∞) (reference 1.0)");
        }
        if self.mixup_alpha == 0.0 && self.cutmix_alpha == 0.0 {
            return Err(TrainError::config(
                "mixup and cutmix are both disabled (α = 0)",
                "leave `mixup` unset to train without batch mixing",
            ));
        }
        if !(0.0..=1.0).contains(&self.prob) {
            return bad("prob", self.prob, "[0, 1] (reference 1.0)");
        }
        if !(0.0..=1.0).contains(&self.switch_prob) {
            return bad("switch_prob", self.switch_prob, "[0, 1] (reference 0.5)");
        }
        Ok(())
    }

    /// Draws this batch's mixing parameters for images of `height × width` from `seed`.
    pub fn decide(&self, seed: u64, height: usize, width: usize) -> MixDecision {
        let mut rng = RngStream::new(seed);
        if rng.uniform() >= self.prob {
            return MixDecision::none();
        }
        let use_cutmix = if self.mixup_alpha > 0.0 && self.cutmix_alpha > 0.0 {
            rng.uniform() < self.switch_prob
        } else {
            self.cutmix_alpha > 0.0
        };
        if use_cutmix {
            let lam = rng.beta(self.cutmix_alpha, self.cutmix_alpha);
            let cy = rng.below(0, height as i64);
            let cx = rng.below(0, width as i64);
            let (bbox, corrected) = cutmix_box(height, width, lam, cy, cx);
            MixDecision {
                lam: if self.correct_lam { corrected } else { lam },
                kind: MixKind::CutMix(bbox),
            }
        } else {
            MixDecision {
                lam: rng.beta(self.mixup_alpha, self.mixup_alpha),
                kind: MixKind::Mixup,
            }
        }
    }

    /// Mixes a batch: draws the parameters from `seed`, mixes `images (B, C, H, W)` and turns
    /// `targets` (labels or soft targets) into mixed soft targets `(B, classes)` in the images'
    /// dtype, smoothed by `label_smoothing` (0.1 in the reference) inside the mix.
    pub fn apply<B: Backend>(
        &self,
        images: &Tensor<B>,
        targets: &crate::Targets<B>,
        num_classes: usize,
        label_smoothing: f64,
        seed: u64,
    ) -> Result<(Tensor<B>, Tensor<B>, MixDecision)> {
        check_images(images)?;
        if targets.len() != images.dims()[0] {
            return Err(TrainError::config(
                format!("{} targets for {} images", targets.len(), images.dims()[0]),
                "pass one target per image",
            ));
        }
        let d = self.decide(seed, images.dims()[2], images.dims()[3]);
        let mixed = mix_images(images, &d)?;
        let soft = mix_targets(targets, num_classes, d.lam, label_smoothing, images.dtype())?;
        Ok((mixed, soft, d))
    }
}

/// A CutMix box: rows `y0..y1`, columns `x0..x1` (half-open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BBox {
    pub y0: usize,
    pub y1: usize,
    pub x0: usize,
    pub x1: usize,
}

impl BBox {
    /// Pixels inside the box.
    pub fn area(&self) -> usize {
        (self.y1 - self.y0) * (self.x1 - self.x0)
    }
}

/// Which mixing a batch gets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum MixKind {
    /// No mixing (`λ = 1`).
    None,
    /// Convex combination of whole images.
    Mixup,
    /// A pasted box.
    CutMix(BBox),
}

/// One batch's mixing parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MixDecision {
    /// Weight of the batch itself (the reversed batch gets `1 − λ`).
    pub lam: f64,
    pub kind: MixKind,
}

impl MixDecision {
    /// No mixing.
    pub fn none() -> Self {
        MixDecision {
            lam: 1.0,
            kind: MixKind::None,
        }
    }
}

/// timm's `rand_bbox` for a given `λ` and centre, and the corrected `λ = 1 − area/(H·W)`.
pub fn cutmix_box(height: usize, width: usize, lam: f64, cy: i64, cx: i64) -> (BBox, f64) {
    let ratio = (1.0 - lam).max(0.0).sqrt();
    let cut_h = (height as f64 * ratio) as i64;
    let cut_w = (width as f64 * ratio) as i64;
    let (h, w) = (height as i64, width as i64);
    let clip = |v: i64, hi: i64| v.clamp(0, hi) as usize;
    let bbox = BBox {
        y0: clip(cy - cut_h / 2, h),
        y1: clip(cy + cut_h / 2, h),
        x0: clip(cx - cut_w / 2, w),
        x1: clip(cx + cut_w / 2, w),
    };
    let total = height.saturating_mul(width).max(1) as f64;
    (bbox, 1.0 - bbox.area() as f64 / total)
}

fn check_images<B: Backend>(images: &Tensor<B>) -> Result<()> {
    if images.rank() != 4 || !images.dtype().is_float() {
        return Err(TrainError::config(
            format!(
                "mixup needs float images (B, C, H, W), got {} {}",
                images.dtype(),
                images.shape()
            ),
            "pass the image batch before the model",
        ));
    }
    if images.dims()[0] % 2 != 0 {
        return Err(TrainError::config(
            format!("mixup/cutmix got an odd batch of {}", images.dims()[0]),
            "timm pairs sample i with sample B−1−i and requires an even batch: use an even \
             batch size and drop the last incomplete batch",
        ));
    }
    Ok(())
}

/// `x` reversed along the batch axis (`x.flip(0)`).
fn flip0<B: Backend>(x: &Tensor<B>) -> Result<Tensor<B>> {
    let n = x.dims()[0];
    let idx: Vec<i64> = (0..n as i64).rev().collect();
    let idx = Tensor::from_vec(idx, [n], x.device())?;
    Ok(x.index_select(0, &idx)?)
}

/// Mixes `images (B, C, H, W)` as `d` says (module docs).
pub fn mix_images<B: Backend>(images: &Tensor<B>, d: &MixDecision) -> Result<Tensor<B>> {
    check_images(images)?;
    match d.kind {
        MixKind::None => Ok(images.clone()),
        MixKind::Mixup => {
            let flipped = flip0(images)?.mul_scalar(1.0 - d.lam)?;
            Ok(images.mul_scalar(d.lam)?.add(&flipped)?)
        }
        MixKind::CutMix(b) => {
            let (h, w) = (images.dims()[2], images.dims()[3]);
            if b.y1 > h || b.x1 > w || b.y0 > b.y1 || b.x0 > b.x1 {
                return Err(TrainError::config(
                    format!("cutmix box {b:?} does not fit {h}×{w} images"),
                    "draw the decision for these images' size",
                ));
            }
            let mut mask = vec![0.0f64; h * w];
            for y in b.y0..b.y1 {
                for x in b.x0..b.x1 {
                    mask[y * w + x] = 1.0;
                }
            }
            let mask =
                Tensor::from_vec(mask, [1, 1, h, w], images.device())?.to_dtype(images.dtype())?;
            Ok(Tensor::where_cond(&mask, &flip0(images)?, images)?)
        }
    }
}

/// timm's `mixup_target`: `λ·smooth(y) + (1−λ)·smooth(y.flip(0))` as `(B, classes)` in `dtype`
/// (module docs). Labels must be `I64 (B,)` in `0..classes`; soft targets `(B, classes)`.
pub fn mix_targets<B: Backend>(
    targets: &crate::Targets<B>,
    num_classes: usize,
    lam: f64,
    label_smoothing: f64,
    dtype: DType,
) -> Result<Tensor<B>> {
    let bad = |problem: String| {
        TrainError::config(
            problem,
            "pass labels (I64, (B,)) in 0..classes or soft targets (B, classes)",
        )
    };
    let y = match targets {
        crate::Targets::Labels(l) => {
            if l.dtype() != DType::I64 || l.rank() != 1 {
                return Err(bad(format!("labels are {} {}", l.dtype(), l.shape())));
            }
            let host = l.to_vec::<i64>()?;
            if let Some(&c) = host.iter().find(|&&c| c < 0 || c as usize >= num_classes) {
                return Err(bad(format!("label {c} outside 0..{num_classes}")));
            }
            Tensor::eye(num_classes, dtype, l.device())?.index_select(0, l)?
        }
        crate::Targets::Soft(t) => {
            if t.rank() != 2 || t.dims()[1] != num_classes || !t.dtype().is_float() {
                return Err(bad(format!("soft targets are {} {}", t.dtype(), t.shape())));
            }
            t.to_dtype(dtype)?
        }
    };
    let off = label_smoothing / num_classes as f64;
    let y1 = y.affine(1.0 - label_smoothing, off)?;
    if lam == 1.0 {
        return Ok(y1);
    }
    let y2 = flip0(&y1)?;
    Ok(y1.mul_scalar(lam)?.add(&y2.mul_scalar(1.0 - lam)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Targets;
    use vars_cpu::{Cpu, CpuDevice};

    fn labels(v: &[i64]) -> Targets<Cpu> {
        Targets::Labels(Tensor::from_vec(v.to_vec(), [v.len()], &CpuDevice).unwrap())
    }

    /// Labels [0, 1, 2, 3], K = 4, ε = 0.1, λ = 0.7: off 0.025, on 0.925; row 0 mixes class 0
    /// with class 3 (the reversed batch): [0.655, 0.025, 0.025, 0.295].
    #[test]
    fn mixed_targets_by_hand() {
        let y = mix_targets(&labels(&[0, 1, 2, 3]), 4, 0.7, 0.1, DType::F64).unwrap();
        let y = y.to_vec::<f64>().unwrap();
        let want = [
            [0.655, 0.025, 0.025, 0.295],
            [0.025, 0.655, 0.295, 0.025],
            [0.025, 0.295, 0.655, 0.025],
            [0.295, 0.025, 0.025, 0.655],
        ];
        for r in 0..4 {
            for c in 0..4 {
                assert!(
                    (y[r * 4 + c] - want[r][c]).abs() < 1e-15,
                    "{r},{c}: {}",
                    y[r * 4 + c]
                );
            }
            assert!((y[r * 4..r * 4 + 4].iter().sum::<f64>() - 1.0).abs() < 1e-15);
        }
        // λ = 1: only smoothing.
        let y = mix_targets(&labels(&[2, 0]), 4, 1.0, 0.1, DType::F64).unwrap();
        assert_eq!(
            y.to_vec::<f64>().unwrap(),
            vec![0.025, 0.025, 0.925, 0.025, 0.925, 0.025, 0.025, 0.025]
        );
        // Soft targets mix the same way.
        let soft = Tensor::<Cpu>::from_vec(vec![0.5, 0.5, 1.0, 0.0], [2, 2], &CpuDevice).unwrap();
        let y = mix_targets(&Targets::Soft(soft), 2, 0.25, 0.0, DType::F64).unwrap();
        assert_eq!(y.to_vec::<f64>().unwrap(), vec![0.875, 0.125, 0.625, 0.375]);
    }

    #[test]
    fn bad_targets_are_errors() {
        assert!(mix_targets(&labels(&[0, 4]), 4, 0.5, 0.1, DType::F32).is_err());
        assert!(mix_targets(&labels(&[-1, 0]), 4, 0.5, 0.1, DType::F32).is_err());
        let x = Tensor::<Cpu>::zeros([3, 1, 4, 4], DType::F32, &CpuDevice).unwrap();
        let e = MixupConfig::reference()
            .apply(&x, &labels(&[0, 1, 2]), 4, 0.1, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("odd batch"), "{e}");
    }

    /// timm's `rand_bbox` + `correct_lam`: H = W = 28, λ = 0.75 → cut 14; centre (3, 20) gives
    /// rows 0..10 (clipped), columns 13..27, area 140, λ = 1 − 140/784.
    #[test]
    fn cutmix_box_by_hand() {
        let (b, lam) = cutmix_box(28, 28, 0.75, 3, 20);
        assert_eq!(
            b,
            BBox {
                y0: 0,
                y1: 10,
                x0: 13,
                x1: 27
            }
        );
        assert!((lam - (1.0 - 140.0 / 784.0)).abs() < 1e-15);
        // Odd cut: ⌊13/2⌋ = 6 on each side, so the box is 12 wide (timm's quirk).
        let (b, _) = cutmix_box(10, 10, 1.0 - 0.69, 5, 5); // √0.69 → ⌊8.30⌋ = 8
        assert_eq!((b.y0, b.y1), (1, 9));
        let (b, lam) = cutmix_box(28, 28, 1.0 - 0.2116, 14, 14); // ratio 0.46 → ⌊12.88⌋ = 12
        assert_eq!(
            b,
            BBox {
                y0: 8,
                y1: 20,
                x0: 8,
                x1: 20
            }
        );
        assert!((lam - (1.0 - 144.0 / 784.0)).abs() < 1e-15);
    }

    #[test]
    fn cutmix_pastes_the_reversed_batch_and_mixup_blends() {
        // Sample i is constant i + 1.
        let mut v = Vec::new();
        for i in 0..4 {
            v.extend(std::iter::repeat_n((i + 1) as f64, 2 * 5 * 6));
        }
        let x = Tensor::<Cpu>::from_vec(v, [4, 2, 5, 6], &CpuDevice).unwrap();
        let b = BBox {
            y0: 1,
            y1: 3,
            x0: 2,
            x1: 5,
        };
        let d = MixDecision {
            lam: 1.0 - 6.0 / 30.0,
            kind: MixKind::CutMix(b),
        };
        let y = mix_images(&x, &d).unwrap().to_vec::<f64>().unwrap();
        for i in 0..4 {
            for c in 0..2 {
                for r in 0..5 {
                    for col in 0..6 {
                        let inside = (1..3).contains(&r) && (2..5).contains(&col);
                        let want = if inside {
                            (4 - i) as f64
                        } else {
                            (i + 1) as f64
                        };
                        assert_eq!(y[((i * 2 + c) * 5 + r) * 6 + col], want);
                    }
                }
            }
        }
        let d = MixDecision {
            lam: 0.25,
            kind: MixKind::Mixup,
        };
        let y = mix_images(&x, &d).unwrap().to_vec::<f64>().unwrap();
        assert_eq!(y[0], 0.25 * 1.0 + 0.75 * 4.0);
        assert_eq!(y[60], 0.25 * 2.0 + 0.75 * 3.0);
    }

    /// Over many seeds: half the batches use CutMix, λ averages 1/2, every CutMix λ equals the
    /// kept share of its box, and the same seed gives the same decision.
    #[test]
    fn decisions_are_seeded_and_have_the_right_statistics() {
        let cfg = MixupConfig::reference();
        let n = 4000;
        let (mut cut, mut lam_sum) = (0, 0.0);
        for s in 0..n {
            let d = cfg.decide(s, 28, 28);
            assert_eq!(d, cfg.decide(s, 28, 28));
            assert!((0.0..=1.0).contains(&d.lam));
            lam_sum += d.lam;
            match d.kind {
                MixKind::CutMix(b) => {
                    cut += 1;
                    assert!((d.lam - (1.0 - b.area() as f64 / 784.0)).abs() < 1e-15);
                }
                MixKind::Mixup => {}
                MixKind::None => panic!("prob 1.0 always mixes"),
            }
        }
        let frac = cut as f64 / n as f64;
        assert!((frac - 0.5).abs() < 0.03, "cutmix fraction {frac}");
        // The clipped box only raises λ: the mean is a bit above 1/2.
        let mean = lam_sum / n as f64;
        assert!((0.48..0.62).contains(&mean), "mean λ {mean}");
        let off = MixupConfig { prob: 0.0, ..cfg };
        assert_eq!(off.decide(1, 28, 28), MixDecision::none());
    }
}
