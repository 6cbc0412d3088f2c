//! Learning-rate schedule: linear warmup, then cosine decay to a floor (vars-spec §6).
//!
//! The reference (DeiT/timm `CosineLRScheduler`, `t_in_epochs=True`, one cycle) defines, for a
//! time `t` measured in epochs from epoch 0,
//!
//! ```text
//! lr(t) = warmup_lr + t·(base − warmup_lr)/warmup        for t < warmup
//! lr(t) = min_lr + ½(base − min_lr)(1 + cos(π·t/epochs))  for warmup ≤ t < epochs
//! lr(t) = min_lr                                           for t ≥ epochs
//! ```
//!
//! with `base = 5e-4 × total_batch / 512`, `min_lr = 1e-5`, `warmup_lr = 1e-6`, `warmup = 5`,
//! `epochs = 300`. The cosine is *not* shifted by the warmup (timm's `warmup_prefix=False`).
//!
//! Two ways to step it ([`Stepping`]):
//! - [`Stepping::PerIteration`] (this crate's default): `t = epoch + step/steps_per_epoch`, so the
//!   rate changes smoothly within an epoch (timm's `t_in_epochs=False` with the same constants
//!   expressed in updates);
//! - [`Stepping::PerEpoch`] (the reference): the scheduler is stepped once, at the *end* of each
//!   epoch (`lr_scheduler.step(epoch)` after `train_one_epoch`), so epoch 0 runs at
//!   `lr(0) = warmup_lr` and epoch `e ≥ 1` runs at `lr(e − 1)`.

use crate::{Result, TrainError};
use serde::{Deserialize, Serialize};

/// The reference's per-512 learning rate: `lr = 5e-4 × total_batch / 512`.
pub const BASE_LR_PER_512: f64 = 5e-4;

/// The linear scaling rule of vars-spec §6: `5e-4 × total_batch / 512` (1e-3 at batch 1024).
/// `total_batch` counts every sample of one optimiser step (all devices, all accumulated
/// micro-batches).
pub fn scaled_lr(total_batch: usize) -> f64 {
    BASE_LR_PER_512 * total_batch as f64 / 512.0
}

/// When the schedule advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stepping {
    /// Every optimiser step, with fractional epochs `t = epoch + step/steps_per_epoch`.
    #[default]
    PerIteration,
    /// Once per epoch, at its end (DeiT): epoch 0 at `lr(0)`, epoch `e ≥ 1` at `lr(e − 1)`.
    PerEpoch,
}

/// Linear warmup + cosine with a floor (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CosineSchedule {
    /// Peak rate, reached at the end of the warmup.
    pub base_lr: f64,
    /// Floor of the cosine (`1e-5`), also the rate from `epochs` on.
    pub min_lr: f64,
    /// Rate at `t = 0` (`1e-6`).
    pub warmup_lr: f64,
    /// Warmup length in epochs (5); 0 disables it.
    pub warmup_epochs: f64,
    /// Length of the cosine in epochs (300).
    pub epochs: f64,
    /// Per-iteration (default) or per-epoch stepping.
    pub stepping: Stepping,
}

impl CosineSchedule {
    /// The reference constants (floor 1e-5, warmup 5 epochs from 1e-6) around `base_lr` over
    /// `epochs`, stepped per iteration.
    pub fn new(base_lr: f64, epochs: usize) -> Self {
        CosineSchedule {
            base_lr,
            min_lr: 1e-5,
            warmup_lr: 1e-6,
            warmup_epochs: 5.0,
            epochs: epochs as f64,
            stepping: Stepping::PerIteration,
        }
    }

    /// The reference schedule exactly (vars-spec §6): [`CosineSchedule::new`] with
    /// [`Stepping::PerEpoch`].
    pub fn reference(base_lr: f64, epochs: usize) -> Self {
        CosineSchedule {
            stepping: Stepping::PerEpoch,
            ..Self::new(base_lr, epochs)
        }
    }

    /// A constant rate (no warmup, no decay), handy for tests.
    pub fn constant(lr: f64) -> Self {
        CosineSchedule {
            base_lr: lr,
            min_lr: lr,
            warmup_lr: lr,
            warmup_epochs: 0.0,
            epochs: 1.0,
            stepping: Stepping::PerIteration,
        }
    }

    /// Checks the rates are finite and non-negative and the lengths make sense.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("base_lr", self.base_lr),
            ("min_lr", self.min_lr),
            ("warmup_lr", self.warmup_lr),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(TrainError::config(
                    format!("schedule.{name} = {v}"),
                    "learning rates must be finite and ≥ 0",
                ));
            }
        }
        if !(self.warmup_epochs.is_finite() && self.warmup_epochs >= 0.0) {
            return Err(TrainError::config(
                format!("schedule.warmup_epochs = {}", self.warmup_epochs),
                "use a finite number of epochs ≥ 0 (0 disables the warmup)",
            ));
        }
        if !(self.epochs.is_finite() && self.epochs > 0.0) {
            return Err(TrainError::config(
                format!("schedule.epochs = {}", self.epochs),
                "the cosine needs a length > 0 epochs",
            ));
        }
        Ok(())
    }

    /// `lr(t)` for a time `t` in epochs (module docs).
    pub fn lr_at(&self, t: f64) -> f64 {
        if t < self.warmup_epochs {
            let slope = (self.base_lr - self.warmup_lr) / self.warmup_epochs;
            self.warmup_lr + t * slope
        } else if t < self.epochs {
            self.min_lr
                + 0.5
                    * (self.base_lr - self.min_lr)
                    * (1.0 + (std::f64::consts::PI * t / self.epochs).cos())
        } else {
            self.min_lr
        }
    }

    /// The rate of optimiser step `step` (0-based) of `epoch`, with `steps_per_epoch` steps per
    /// epoch, under this schedule's [`Stepping`].
    pub fn lr(&self, epoch: usize, step: usize, steps_per_epoch: usize) -> f64 {
        match self.stepping {
            Stepping::PerIteration => {
                let frac = if steps_per_epoch == 0 {
                    0.0
                } else {
                    step as f64 / steps_per_epoch as f64
                };
                self.lr_at(epoch as f64 + frac)
            }
            Stepping::PerEpoch => self.lr_at(epoch.saturating_sub(1) as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-15 + 1e-12 * b.abs()
    }

    #[test]
    fn scaling_rule() {
        assert_eq!(scaled_lr(512), 5e-4);
        assert_eq!(scaled_lr(1024), 1e-3);
        assert_eq!(scaled_lr(256), 2.5e-4);
        assert_eq!(scaled_lr(64), 6.25e-5);
    }

    /// Hand-computed values of the reference formula at base 1e-3 (batch 1024), 300 epochs.
    #[test]
    fn formula_matches_hand_computed_values() {
        let s = CosineSchedule::reference(1e-3, 300);
        // Warmup: 1e-6 + t·(1e-3 − 1e-6)/5 = 1e-6 + t·1.998e-4.
        assert!(close(s.lr_at(0.0), 1e-6));
        assert!(close(s.lr_at(1.0), 2.008e-4));
        assert!(close(s.lr_at(2.5), 5.005e-4));
        assert!(close(s.lr_at(4.0), 8.002e-4));
        // Cosine from t = 5, not shifted: 1e-5 + 0.5·9.9e-4·(1 + cos(π·5/300)).
        // cos(π/60) = 0.9986295347545738.
        assert!(close(
            s.lr_at(5.0),
            1e-5 + 0.5 * 9.9e-4 * (1.0 + 0.9986295347545738)
        ));
        assert!(close(s.lr_at(5.0), 0.000_999_321_619_703_514));
        // Half way: 1e-5 + 0.5·9.9e-4 = 5.05e-4.
        assert!(close(s.lr_at(150.0), 5.05e-4));
        // t = 200: cos(2π/3) = −1/2 → 1e-5 + 0.25·9.9e-4 = 2.575e-4.
        assert!(close(s.lr_at(200.0), 2.575e-4));
        // The floor from `epochs` on (the cooldown is never reached).
        assert!(close(s.lr_at(300.0), 1e-5));
        assert!(close(s.lr_at(310.0), 1e-5));
    }

    /// DeiT steps at the end of each epoch: epoch 0 at 1e-6, epoch e ≥ 1 at lr(e − 1), whatever
    /// the step within the epoch.
    #[test]
    fn per_epoch_stepping_lags_one_epoch() {
        let s = CosineSchedule::reference(1e-3, 300);
        assert!(close(s.lr(0, 0, 100), 1e-6));
        assert!(close(s.lr(0, 99, 100), 1e-6));
        assert!(close(s.lr(1, 0, 100), 1e-6));
        assert!(close(s.lr(2, 50, 100), 2.008e-4));
        assert!(close(s.lr(6, 0, 100), s.lr_at(5.0)));
        assert!(close(s.lr(151, 7, 100), 5.05e-4));
    }

    #[test]
    fn per_iteration_stepping_uses_fractional_epochs() {
        let s = CosineSchedule::new(1e-3, 300);
        assert!(close(s.lr(0, 0, 4), 1e-6));
        assert!(close(s.lr(2, 2, 4), 5.005e-4)); // t = 2.5
        assert!(close(s.lr(150, 0, 10), 5.05e-4));
        assert!(close(s.lr(299, 5, 10), s.lr_at(299.5)));
        // Monotone warmup, monotone decay.
        let lrs: Vec<f64> = (0..50).map(|i| s.lr(i / 10, i % 10, 10)).collect();
        assert!(lrs.windows(2).all(|w| w[0] < w[1]));
        let lrs: Vec<f64> = (50..300).map(|e| s.lr(e, 3, 10)).collect();
        assert!(lrs.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn no_warmup_and_constant() {
        let mut s = CosineSchedule::new(0.1, 10);
        s.warmup_epochs = 0.0;
        assert!(close(s.lr_at(0.0), 0.1));
        assert!(close(s.lr_at(5.0), 1e-5 + 0.5 * (0.1 - 1e-5)));
        let c = CosineSchedule::constant(0.01);
        assert_eq!(c.lr(0, 0, 3), 0.01);
        assert_eq!(c.lr(7, 2, 3), 0.01);
    }

    #[test]
    fn validation_rejects_nonsense() {
        let mut s = CosineSchedule::new(1e-3, 10);
        s.base_lr = f64::NAN;
        assert!(s.validate().unwrap_err().to_string().contains("base_lr"));
        let mut s = CosineSchedule::new(1e-3, 10);
        s.epochs = 0.0;
        assert!(s.validate().is_err());
        assert!(CosineSchedule::new(1e-3, 10).validate().is_ok());
    }
}
