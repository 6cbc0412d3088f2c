//! # vars-train
//!
//! The training engine for the VARS models (*Visual Attention Emerges from Recurrent Sparse
//! Reconstruction*, Shi et al., ICML 2022): the recipe of vars-spec §6 (inherited from
//! RVT/DeiT) on top of `vars-core`'s autodiff and `vars-vit`'s models.
//!
//! | vars-spec §6 item | here |
//! |---|---|
//! | AdamW (0.9, 0.999), eps 1e-8, wd 0.05, exemptions | [`optim`]: [`Optimizer`], [`OptimizerConfig::adamw`], [`DecayPolicy::reference`] |
//! | lr `5e-4 × batch/512`, warmup 5 from 1e-6, cosine to 1e-5, per-epoch stepping | [`schedule`]: [`scaled_lr`], [`CosineSchedule`] (per-iteration by default, [`Stepping::PerEpoch`] = reference) |
//! | Mixup 0.8 / CutMix 1.0 / switch 0.5 / smoothing 0.1, soft-target CE | [`mix`]: [`MixupConfig`]; the loss is `vars_core::nn::cross_entropy` |
//! | EMA 0.99996, saved in checkpoints | [`ema`]: [`Ema`] |
//! | stochastic depth | the models' `Mode::Train { seed }`, a fresh seed per step ([`seed`]) |
//! | VARS‑S `L_c` update every 100 iterations | [`StepConstantsUpdate`], [`TrainModel::update_step_constants`] |
//! | no gradient clipping (option here) | [`Gradients::clip_global_norm`] |
//! | (extension) gradient accumulation | [`TrainConfig::accum_steps`], [`Gradients::accumulate`] |
//! | seed | [`seed`]: every draw derives from the run seed and the position |
//!
//! The loop itself is [`Trainer`]: [`Trainer::train_step`] (one optimiser step),
//! [`Trainer::fit`] (epochs over a [`BatchSource`], progress callback, JSONL metrics via
//! [`MetricsLog`], evaluation, checkpoints). [`checkpoint`] writes one directory per checkpoint,
//! atomically, and [`Trainer::load_checkpoint`] resumes bit-identically.
//!
//! ```no_run
//! use vars_core::{Autodiff, DType};
//! use vars_cpu::{Cpu, CpuDevice};
//! use vars_train::{Checkpointer, FitOptions, TrainConfig, Trainer, TensorBatches};
//! use vars_vit::config::{AttentionKind, ModelConfig};
//! use vars_vit::layers::Init;
//! use vars_vit::model::PoolingTransformer;
//! # fn main() -> vars_train::Result<()> {
//! # let (images, labels): (vars_core::Tensor<Cpu>, vars_core::Tensor<Cpu>) = todo!();
//! let cfg = ModelConfig::small_image(AttentionKind::VarsD, 28, 1, 10);
//! let model = PoolingTransformer::<Autodiff<Cpu>>::new(&cfg, &mut Init::new(&CpuDevice, DType::F32, 0))?;
//! let mut trainer = Trainer::new(model, TrainConfig::new(64, 10))?;
//! let mut data = TensorBatches::new(images, labels, 64, Some(0))?;
//! let mut ck = Checkpointer::new("runs/demo")?;
//! trainer.resume(&ck, Default::default())?;
//! trainer.fit(&mut data, FitOptions { checkpoints: Some(&mut ck), ..Default::default() })?;
//! # Ok(()) }
//! ```

pub mod checkpoint;
pub mod data;
pub mod ema;
pub mod error;
pub mod grads;
pub mod metrics;
pub mod mix;
pub mod model;
pub mod optim;
pub mod schedule;
pub mod seed;
pub mod trainer;

pub use checkpoint::{Checkpointer, Provenance, ResumePolicy};
pub use data::{Batch, BatchSource, Targets, TensorBatches};
pub use ema::Ema;
pub use error::{BoxError, Result, TrainError};
pub use grads::Gradients;
pub use metrics::MetricsLog;
pub use mix::{MixDecision, MixKind, MixupConfig};
pub use model::TrainModel;
pub use optim::{DecayPolicy, Optimizer, OptimizerConfig};
pub use schedule::{scaled_lr, CosineSchedule, Stepping};
pub use trainer::{
    evaluate, Control, EpochMetrics, EvalMetrics, FitOptions, FitOutcome, Position, Progress,
    StepConstantsUpdate, StepReport, TrainConfig, TrainState, Trainer,
};
