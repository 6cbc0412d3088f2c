//! [`TrainModel`]: what the trainer needs from a model, implemented for the RVT
//! [`PoolingTransformer`] and the ViT/DeiT [`VisionTransformer`].

use crate::Result;
use vars_core::{Autodiff, Backend, Tensor};
use vars_vit::layers::Mode;
use vars_vit::model::PoolingTransformer;
use vars_vit::vit::VisionTransformer;
use vars_vit::Parameters;

/// A classifier the trainer can train: named tensors ([`Parameters`]), a forward pass to logits,
/// its class count, and the VARS‑S step-constant update hook (vars-spec §3.5; a no-op for every
/// other model).
pub trait TrainModel<B: Backend>: Parameters<Autodiff<B>> {
    /// Logits `(batch, classes)` for images `(batch, C, H, W)`. In [`Mode::Train`] the seed drives
    /// the pass's random draws (stochastic depth); the trainer passes a fresh seed per step.
    fn forward_logits(
        &self,
        images: &Tensor<Autodiff<B>>,
        mode: Mode,
    ) -> Result<Tensor<Autodiff<B>>>;

    /// Output classes (the width of the logits).
    fn num_classes(&self) -> usize;

    /// VARS‑S: `L_c ← (1 − rate)·L_c + rate·rule(K)` in every block, without gradient. The
    /// default does nothing.
    fn update_step_constants(&mut self, rate: f64) -> Result<()> {
        let _ = rate;
        Ok(())
    }
}

impl<B: Backend> TrainModel<B> for PoolingTransformer<Autodiff<B>> {
    fn forward_logits(
        &self,
        images: &Tensor<Autodiff<B>>,
        mode: Mode,
    ) -> Result<Tensor<Autodiff<B>>> {
        Ok(self.forward(images, mode)?)
    }

    fn num_classes(&self) -> usize {
        self.config.num_classes
    }

    fn update_step_constants(&mut self, rate: f64) -> Result<()> {
        vars_core::no_grad(|| PoolingTransformer::update_step_constants(self, rate))?;
        Ok(())
    }
}

impl<B: Backend> TrainModel<B> for VisionTransformer<Autodiff<B>> {
    fn forward_logits(
        &self,
        images: &Tensor<Autodiff<B>>,
        mode: Mode,
    ) -> Result<Tensor<Autodiff<B>>> {
        Ok(self.forward(images, mode)?)
    }

    fn num_classes(&self) -> usize {
        self.config.num_classes
    }

    fn update_step_constants(&mut self, rate: f64) -> Result<()> {
        vars_core::no_grad(|| {
            self.blocks
                .iter_mut()
                .try_for_each(|b| b.update_step_constants(rate))
        })?;
        Ok(())
    }
}
