//! The building blocks every RVT model is made of, with PyTorch's parameter names and default
//! initialisation (vars-spec §4.7): [`Linear`], [`Conv2d`], [`LayerNorm`], [`BatchNorm`], and the
//! two MLP forms of §4.4 ([`mlp::Mlp`]).
//!
//! Conventions shared by every module of this crate:
//! - construction takes an [`Init`], which carries the device, the dtype and a seed sequence, so
//!   a model built twice from the same seed is bit-identical;
//! - `forward(&self, x, mode)` with [`Mode::Eval`] or [`Mode::Train`]; the only state a forward
//!   changes is BatchNorm's running statistics in train mode (kept behind a lock, as PyTorch
//!   buffers are mutated in place);
//! - [`crate::Parameters`] visits the official state-dict names (§4.8).

pub mod mlp;
pub mod resize;

use crate::params::{ParamKind, Parameters};
use crate::{Result, VitError};
use std::sync::Mutex;
use vars_core::nn::{self, BatchNormStats};
use vars_core::{Backend, DType, Tensor, Window2d};

/// Eval (running statistics, no stochastic depth) or train (batch statistics, running-statistics
/// update, stochastic depth drawn from `seed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Inference: BatchNorm uses running statistics; DropPath is the identity.
    Eval,
    /// Training: BatchNorm normalises with the batch statistics and updates the running ones;
    /// DropPath masks are drawn from `seed` (mixed with each block's index).
    Train {
        /// Seed of this forward pass's random draws; use a fresh one per step.
        seed: u64,
    },
}

impl Mode {
    /// Whether this is [`Mode::Train`].
    pub fn is_train(&self) -> bool {
        matches!(self, Mode::Train { .. })
    }

    /// The seed for a numbered random draw of this pass (0 in eval mode, where nothing is drawn).
    pub fn seed_for(&self, stream: u64) -> u64 {
        match self {
            Mode::Eval => 0,
            Mode::Train { seed } => splitmix(seed ^ splitmix(stream.wrapping_add(0x5EED))),
        }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Where and how parameters are created: device, dtype, and a deterministic seed sequence (each
/// tensor draws from its own seed, `splitmix64` of the base seed and a counter).
#[derive(Debug)]
pub struct Init<'a, B: Backend> {
    /// The device every tensor is created on.
    pub device: &'a B::Device,
    /// The float dtype of parameters (f32 for models, f64 for gradient checks).
    pub dtype: DType,
    seed: u64,
    counter: u64,
}

impl<'a, B: Backend> Init<'a, B> {
    /// A seed sequence starting at `seed`.
    pub fn new(device: &'a B::Device, dtype: DType, seed: u64) -> Self {
        Init {
            device,
            dtype,
            seed,
            counter: 0,
        }
    }

    /// The next seed of the sequence.
    pub fn next_seed(&mut self) -> u64 {
        self.counter += 1;
        splitmix(self.seed ^ splitmix(self.counter))
    }

    /// PyTorch's default for Linear/Conv weights and biases: `U(−1/√fan_in, 1/√fan_in)`
    /// (Kaiming-uniform with `a = √5` gives the same bound for the weight).
    pub fn fan_in_uniform(&mut self, shape: &[usize], fan_in: usize) -> Result<Tensor<B>> {
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        let seed = self.next_seed();
        Ok(Tensor::rand_uniform(
            shape.to_vec(),
            -bound,
            bound,
            self.dtype,
            seed,
            self.device,
        )?)
    }

    /// `std·N(0, 1)` entries.
    pub fn normal(&mut self, shape: &[usize], std: f64) -> Result<Tensor<B>> {
        let seed = self.next_seed();
        Ok(Tensor::randn(shape.to_vec(), self.dtype, seed, self.device)?.mul_scalar(std)?)
    }

    /// A tensor filled with `value`.
    pub fn full(&self, shape: &[usize], value: f64) -> Result<Tensor<B>> {
        Ok(Tensor::full(
            shape.to_vec(),
            value,
            self.dtype,
            self.device,
        )?)
    }
}

/// `y = x·Wᵀ + b`, `W: (out, in)` (names `weight`, `bias`).
#[derive(Debug, Clone)]
pub struct Linear<B: Backend> {
    /// `(out, in)`.
    pub weight: Tensor<B>,
    /// `(out)`, when present.
    pub bias: Option<Tensor<B>>,
}

impl<B: Backend> Linear<B> {
    /// PyTorch-default initialised `in → out` layer.
    pub fn new(init: &mut Init<'_, B>, input: usize, output: usize, bias: bool) -> Result<Self> {
        let weight = init.fan_in_uniform(&[output, input], input)?;
        let bias = if bias {
            Some(init.fan_in_uniform(&[output], input)?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    /// Applies the layer over the last axis.
    pub fn forward(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        Ok(nn::linear(x, &self.weight, self.bias.as_ref())?)
    }
}

impl<B: Backend> Parameters<B> for Linear<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        f("weight", &self.weight, ParamKind::Trainable);
        if let Some(b) = &self.bias {
            f("bias", b, ParamKind::Trainable);
        }
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        f("weight", &mut self.weight);
        if let Some(b) = &mut self.bias {
            f("bias", b);
        }
    }
}

/// 2-D convolution (cross-correlation), weight `(out, in/groups, kh, kw)`, with bias.
#[derive(Debug, Clone)]
pub struct Conv2d<B: Backend> {
    /// `(out, in/groups, kh, kw)`.
    pub weight: Tensor<B>,
    /// `(out)`.
    pub bias: Option<Tensor<B>>,
    /// Kernel, stride and padding.
    pub window: Window2d,
    /// Channel groups.
    pub groups: usize,
}

impl<B: Backend> Conv2d<B> {
    /// PyTorch-default initialised square convolution.
    pub fn new(
        init: &mut Init<'_, B>,
        input: usize,
        output: usize,
        window: Window2d,
        groups: usize,
    ) -> Result<Self> {
        if groups == 0 || input % groups != 0 || output % groups != 0 {
            return Err(VitError::config(
                format!("Conv2d {input}→{output} with {groups} groups"),
                "groups must divide both channel counts",
            ));
        }
        let (kh, kw) = window.kernel;
        let fan_in = input / groups * kh * kw;
        let weight = init.fan_in_uniform(&[output, input / groups, kh, kw], fan_in)?;
        let bias = Some(init.fan_in_uniform(&[output], fan_in)?);
        Ok(Conv2d {
            weight,
            bias,
            window,
            groups,
        })
    }

    /// `x: (B, in, H, W)` → `(B, out, H', W')`.
    pub fn forward(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        Ok(nn::conv2d(
            x,
            &self.weight,
            self.bias.as_ref(),
            self.window,
            self.groups,
        )?)
    }
}

impl<B: Backend> Parameters<B> for Conv2d<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        f("weight", &self.weight, ParamKind::Trainable);
        if let Some(b) = &self.bias {
            f("bias", b, ParamKind::Trainable);
        }
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        f("weight", &mut self.weight);
        if let Some(b) = &mut self.bias {
            f("bias", b);
        }
    }
}

/// LayerNorm over the last axis (biased variance, `eps` inside the square root; §0).
#[derive(Debug, Clone)]
pub struct LayerNorm<B: Backend> {
    /// `(C)`, init 1.
    pub weight: Tensor<B>,
    /// `(C)`, init 0.
    pub bias: Tensor<B>,
    /// `1e-6` in every RVT model.
    pub eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// Weight 1, bias 0, `eps = 1e-6` (vars-spec §0, §4.7).
    pub fn new(init: &mut Init<'_, B>, width: usize) -> Result<Self> {
        Ok(LayerNorm {
            weight: init.full(&[width], 1.0)?,
            bias: init.full(&[width], 0.0)?,
            eps: 1e-6,
        })
    }

    /// Normalises the last axis.
    pub fn forward(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        Ok(nn::layer_norm(
            x,
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
        )?)
    }
}

impl<B: Backend> Parameters<B> for LayerNorm<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        f("weight", &self.weight, ParamKind::Trainable);
        f("bias", &self.bias, ParamKind::Trainable);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        f("weight", &mut self.weight);
        f("bias", &mut self.bias);
    }
}

/// BatchNorm1d/2d over axis 1 of `(B, C, …)`: eps `1e-5`, momentum 0.1, unbiased `running_var`
/// update and `num_batches_tracked` (vars-spec §0). The running statistics sit behind a lock so
/// a train-mode forward can update them through `&self`.
#[derive(Debug)]
pub struct BatchNorm<B: Backend> {
    /// `(C)`, init 1.
    pub weight: Tensor<B>,
    /// `(C)`, init 0.
    pub bias: Tensor<B>,
    /// `1e-5`.
    pub eps: f64,
    /// `0.1`.
    pub momentum: f64,
    running: Mutex<Running<B>>,
}

#[derive(Debug, Clone)]
struct Running<B: Backend> {
    mean: Tensor<B>,
    var: Tensor<B>,
    /// I64 scalar, as in the state dict.
    count: Tensor<B>,
}

impl<B: Backend> Clone for BatchNorm<B> {
    fn clone(&self) -> Self {
        BatchNorm {
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            eps: self.eps,
            momentum: self.momentum,
            running: Mutex::new(self.lock().clone()),
        }
    }
}

impl<B: Backend> BatchNorm<B> {
    /// PyTorch defaults: weight 1, bias 0, running mean 0, running var 1, count 0.
    pub fn new(init: &mut Init<'_, B>, channels: usize) -> Result<Self> {
        Ok(BatchNorm {
            weight: init.full(&[channels], 1.0)?,
            bias: init.full(&[channels], 0.0)?,
            eps: 1e-5,
            momentum: 0.1,
            running: Mutex::new(Running {
                mean: init.full(&[channels], 0.0)?,
                var: init.full(&[channels], 1.0)?,
                count: Tensor::zeros(Vec::<usize>::new(), DType::I64, init.device)?,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Running<B>> {
        // A poisoned lock only means another forward panicked mid-update; the tensors are
        // immutable values, so the last stored ones are consistent.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `(running_mean, running_var, num_batches_tracked)` as they are now.
    pub fn running_stats(&self) -> (Tensor<B>, Tensor<B>, Tensor<B>) {
        let r = self.lock();
        (r.mean.clone(), r.var.clone(), r.count.clone())
    }

    /// Normalises `x: (B, C, …)` per channel; in train mode also updates the running statistics.
    pub fn forward(&self, x: &Tensor<B>, mode: Mode) -> Result<Tensor<B>> {
        let mut running = self.lock();
        // The counter lives on the device as the state dict's I64 scalar; read it back only when
        // a train-mode forward is about to increment it (eval forwards never touch the host).
        let num_batches_tracked = if mode.is_train() {
            running.count.to_vec::<i64>()?.first().copied().unwrap_or(0)
        } else {
            0
        };
        let stats = BatchNormStats {
            running_mean: running.mean.clone(),
            running_var: running.var.clone(),
            num_batches_tracked,
        };
        let (y, new) = nn::batch_norm(
            x,
            &stats,
            Some(&self.weight),
            Some(&self.bias),
            mode.is_train(),
            self.momentum,
            self.eps,
        )?;
        if mode.is_train() {
            running.mean = new.running_mean;
            running.var = new.running_var;
            running.count = Tensor::from_vec(
                vec![new.num_batches_tracked],
                Vec::<usize>::new(),
                x.device(),
            )?;
        }
        Ok(y)
    }
}

impl<B: Backend> Parameters<B> for BatchNorm<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        f("weight", &self.weight, ParamKind::Trainable);
        f("bias", &self.bias, ParamKind::Trainable);
        let r = self.lock();
        f("running_mean", &r.mean, ParamKind::Buffer);
        f("running_var", &r.var, ParamKind::Buffer);
        f("num_batches_tracked", &r.count, ParamKind::Buffer);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        f("weight", &mut self.weight);
        f("bias", &mut self.bias);
        let r = self.running.get_mut().unwrap_or_else(|e| e.into_inner());
        f("running_mean", &mut r.mean);
        f("running_var", &mut r.var);
        f("num_batches_tracked", &mut r.count);
    }
}

/// Stochastic depth (vars-spec §4.6): per-sample keep mask, scaled by `1/(1−p)`, identity in eval.
pub fn drop_path<B: Backend>(x: &Tensor<B>, p: f64, mode: Mode, stream: u64) -> Result<Tensor<B>> {
    Ok(nn::drop_path(x, p, mode.is_train(), mode.seed_for(stream))?)
}
