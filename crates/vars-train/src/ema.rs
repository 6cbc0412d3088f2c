//! Exponential moving average of the weights (timm's `ModelEma`, vars-spec §6: decay 0.99996,
//! saved in checkpoints; validation and "best" selection use the raw weights).
//!
//! The EMA starts as a copy of the model's state dict and, after every optimiser step, each
//! floating-point entry — trainable and frozen parameters *and* buffers (BatchNorm running
//! statistics, VARS‑S `L`), as timm iterates the whole `state_dict()` — becomes
//! `ema·decay + (1 − decay)·model`. Integer buffers (`num_batches_tracked`) are copied from the
//! model; timm blends them in float and truncates back to int64, which keeps them at 0 — an unused
//! counter with BatchNorm momentum 0.1, so the difference is invisible.
//!
//! The EMA's state dict has the model's official names, so an `ema.safetensors` file loads into a
//! model like any other checkpoint.

use crate::{Result, TrainError};
use vars_core::{Autodiff, Backend, Tensor};
use vars_vit::{Parameters, StateDict};

/// The EMA weights of one model (module docs).
#[derive(Debug, Clone)]
pub struct Ema<B: Backend> {
    decay: f64,
    weights: StateDict<B>,
}

impl<B: Backend> Ema<B> {
    /// An EMA initialised to `model`'s current state (shares storage; tensors are immutable).
    pub fn new<M>(model: &M, decay: f64) -> Result<Self>
    where
        M: Parameters<Autodiff<B>> + ?Sized,
    {
        if !(0.0..=1.0).contains(&decay) {
            return Err(TrainError::config(
                format!("ema_decay = {decay}"),
                "use a decay in [0, 1] (reference: 0.99996)",
            ));
        }
        let mut weights = StateDict::new();
        for (name, t) in StateDict::from_model(model)? {
            weights.insert(name, t.inner());
        }
        Ok(Ema { decay, weights })
    }

    /// The decay.
    pub fn decay(&self) -> f64 {
        self.decay
    }

    /// The EMA weights under the model's state-dict names.
    pub fn state_dict(&self) -> &StateDict<B> {
        &self.weights
    }

    /// `ema ← ema·decay + (1 − decay)·model` for every float entry; integer entries are copied.
    /// Errors (leaving the EMA unchanged) if the model's names or shapes differ from the EMA's.
    pub fn update<M>(&mut self, model: &M) -> Result<()>
    where
        M: Parameters<Autodiff<B>> + ?Sized,
    {
        let mut current: Vec<(String, Tensor<B>)> = Vec::new();
        model.visit(&mut |name, t, _| current.push((name.to_string(), t.inner())));
        if current.len() != self.weights.len() {
            return Err(self.mismatch(format!(
                "the model has {} state-dict entries, the EMA {}",
                current.len(),
                self.weights.len()
            )));
        }
        let mut next = StateDict::new();
        for (name, m) in current {
            let Some(e) = self.weights.get(&name) else {
                return Err(self.mismatch(format!("`{name}` is not in the EMA")));
            };
            if e.shape() != m.shape() || e.dtype() != m.dtype() {
                return Err(self.mismatch(format!(
                    "`{name}` is {} {} in the model and {} {} in the EMA",
                    m.dtype(),
                    m.shape(),
                    e.dtype(),
                    e.shape()
                )));
            }
            let v = if m.dtype().is_float() {
                e.mul_scalar(self.decay)?
                    .add(&m.mul_scalar(1.0 - self.decay)?)?
            } else {
                m
            };
            next.insert(name, v);
        }
        self.weights = next;
        Ok(())
    }

    fn mismatch(&self, problem: String) -> TrainError {
        TrainError::StateMismatch {
            what: "EMA weights",
            problem,
            hint: "create the EMA from the model being trained".into(),
        }
    }

    /// Replaces the EMA weights with `sd` (e.g. read back from a checkpoint) after checking it
    /// has exactly the model's names, shapes and dtypes.
    pub fn load_state_dict<M>(&mut self, sd: StateDict<B>, model: &M) -> Result<()>
    where
        M: Parameters<Autodiff<B>> + ?Sized,
    {
        let mut problems = Vec::new();
        let mut seen = 0usize;
        model.visit(&mut |name, t, _| match sd.get(name) {
            Some(e) if e.shape() == t.shape() && e.dtype() == t.dtype() => seen += 1,
            Some(e) => problems.push(format!(
                "`{name}` is {} {} in the file and {} {} in the model",
                e.dtype(),
                e.shape(),
                t.dtype(),
                t.shape()
            )),
            None => problems.push(format!("`{name}` is missing")),
        });
        if seen != sd.len() && problems.is_empty() {
            problems.push(format!(
                "{} entries name nothing in the model",
                sd.len() - seen
            ));
        }
        if !problems.is_empty() {
            return Err(self.mismatch(problems.join("; ")));
        }
        self.weights = sd;
        Ok(())
    }

    /// Loads the EMA weights into `model` (strict: every name must line up), e.g. a clone of the
    /// trained model to evaluate the EMA.
    pub fn copy_into<M>(&self, model: &mut M) -> Result<()>
    where
        M: Parameters<Autodiff<B>> + ?Sized,
    {
        let mut sd: StateDict<Autodiff<B>> = StateDict::new();
        for (name, t) in self.weights.iter() {
            sd.insert(name, Tensor::from_inner(t));
        }
        sd.load_into(model, true)?;
        Ok(())
    }
}
