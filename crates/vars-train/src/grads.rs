//! Gradients by parameter name: collection from a backward pass, accumulation over micro-batches,
//! scaling, and clipping by global norm.
//!
//! A [`vars_core::GradStore`] is keyed by tensor identity, which changes every time the optimiser
//! replaces a parameter. [`Gradients`] re-keys it by the parameter's state-dict name and holds
//! untracked tensors of the inner backend, so gradients of several backward passes (one per
//! micro-batch) can be summed and handed to the optimiser.
//!
//! **Gradient accumulation.** With a loss that is a mean over the batch, a batch of `B` samples
//! split into `k` equal micro-batches has `∇L = (1/k)·Σ_j ∇L_j`: [`Gradients::accumulate`] the
//! `k` gradients, then [`Gradients::scale`] by `1/k`. This equals the large-batch gradient up to
//! float rounding whenever the forward pass treats samples independently (no BatchNorm in train
//! mode, no per-batch random draws), which the crate's tests check.
//!
//! **Clipping** follows `torch.nn.utils.clip_grad_norm_`: `norm = ‖(‖g_i‖₂)_i‖₂` over every
//! gradient, and all gradients are multiplied by `min(1, max_norm/(norm + 1e-6))`. vars-spec §6:
//! the reference does not clip; clipping is an option here.

use crate::{Result, TrainError};
use std::collections::HashMap;
use vars_core::{Autodiff, Backend, DType, GradStore, Tensor};
use vars_vit::{ParamKind, Parameters};

/// Gradients of a model's trainable parameters, by name, in the model's visit order.
#[derive(Clone)]
pub struct Gradients<B: Backend> {
    entries: Vec<(String, Tensor<B>)>,
    index: HashMap<String, usize>,
}

impl<B: Backend> std::fmt::Debug for Gradients<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, t)| (k, t.shape())))
            .finish()
    }
}

impl<B: Backend> Default for Gradients<B> {
    fn default() -> Self {
        Gradients {
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<B: Backend> Gradients<B> {
    /// The gradients `store` holds for `model`'s [`ParamKind::Trainable`] tensors. Parameters the
    /// loss does not depend on have no entry (PyTorch's `grad is None`); the optimiser skips them.
    pub fn from_store<M>(model: &M, store: &GradStore<Autodiff<B>>) -> Self
    where
        M: Parameters<Autodiff<B>> + ?Sized,
    {
        let mut out = Gradients::default();
        model.visit(&mut |name, t, kind| {
            if kind == ParamKind::Trainable {
                if let Some(g) = store.get(t) {
                    out.insert(name.to_string(), g.inner());
                }
            }
        });
        out
    }

    /// Inserts or replaces the gradient of `name`.
    pub fn insert(&mut self, name: String, grad: Tensor<B>) {
        match self.index.get(&name) {
            Some(&i) => self.entries[i].1 = grad,
            None => {
                self.index.insert(name.clone(), self.entries.len());
                self.entries.push((name, grad));
            }
        }
    }

    /// The gradient of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor<B>> {
        self.index.get(name).map(|&i| &self.entries[i].1)
    }

    /// `(name, gradient)` pairs in visit order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor<B>)> + '_ {
        self.entries.iter().map(|(k, t)| (k.as_str(), t))
    }

    /// How many parameters have a gradient.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no parameter has a gradient.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds `other` into `self` (names present in only one side are kept as they are).
    pub fn accumulate(&mut self, other: Gradients<B>) -> Result<()> {
        for (name, g) in other.entries {
            match self.index.get(&name) {
                Some(&i) => {
                    let acc = &self.entries[i].1;
                    if acc.shape() != g.shape() {
                        return Err(TrainError::StateMismatch {
                            what: "gradients",
                            problem: format!(
                                "`{name}` has shape {} in one micro-batch and {} in another",
                                acc.shape(),
                                g.shape()
                            ),
                            hint: "accumulate gradients of the same model only".into(),
                        });
                    }
                    self.entries[i].1 = acc.add(&g)?;
                }
                None => self.insert(name, g),
            }
        }
        Ok(())
    }

    /// Multiplies every gradient by `factor` (`1/k` after accumulating `k` micro-batches).
    pub fn scale(&mut self, factor: f64) -> Result<()> {
        if factor == 1.0 {
            return Ok(());
        }
        for (_, g) in &mut self.entries {
            *g = g.mul_scalar(factor)?;
        }
        Ok(())
    }

    /// `‖(‖g_i‖₂)_i‖₂`, computed on the device with one host transfer (the squared norms are
    /// summed in f64, in visit order).
    pub fn global_norm(&self) -> Result<f64> {
        if self.entries.is_empty() {
            return Ok(0.0);
        }
        let mut squares = Vec::with_capacity(self.entries.len());
        for (_, g) in &self.entries {
            squares.push(g.sqr()?.sum_all()?.to_dtype(DType::F64)?.reshape([1])?);
        }
        let refs: Vec<&Tensor<B>> = squares.iter().collect();
        let per_tensor = Tensor::cat(&refs, 0)?.to_vec_f64()?;
        // Σ‖g_i‖² in a fixed order: the value is independent of the thread count.
        Ok(per_tensor.iter().sum::<f64>().sqrt())
    }

    /// Scales every gradient by `min(1, max_norm/(norm + 1e-6))` and returns the norm before
    /// clipping (`torch.nn.utils.clip_grad_norm_`). A non-finite norm is returned as is, with the
    /// gradients untouched (the trainer stops on it).
    pub fn clip_global_norm(&mut self, max_norm: f64) -> Result<f64> {
        if !(max_norm > 0.0 && max_norm.is_finite()) {
            return Err(TrainError::config(
                format!("clip_grad_norm = {max_norm}"),
                "the maximal gradient norm must be a finite number > 0",
            ));
        }
        let norm = self.global_norm()?;
        if !norm.is_finite() {
            return Ok(norm);
        }
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            self.scale(coef)?;
        }
        Ok(norm)
    }
}
