//! The training loop: [`TrainConfig`] (the recipe of vars-spec §6), [`Trainer`] (one optimiser
//! step, one epoch, a whole run), progress events, per-epoch metrics, evaluation.
//!
//! **One optimiser step** ([`Trainer::train_step`]), in order:
//! 1. VARS‑S hook: when the step index within the epoch is a multiple of `every` (100), the
//!    model's step constants move toward their rule with `rate` (0.1) — before the forward pass,
//!    firing at step 0, the counter restarting each epoch (vars-spec §3.5);
//! 2. the learning rate of this step from the schedule;
//! 3. Mixup/CutMix on the whole batch (seed `stream_seed(seed, Mixup, global_step, 0)`), label
//!    smoothing inside the mixed targets; without mixup, label smoothing in the loss;
//! 4. the batch split into `accum_steps` equal micro-batches; per micro-batch `j` a forward pass
//!    in `Mode::Train { seed: stream_seed(seed, DropPath, global_step, j) }`, the mean
//!    cross-entropy, a backward pass, gradients accumulated by name; the sum scaled by
//!    `1/accum_steps` (so `k` micro-batches give the large-batch gradient);
//! 5. optional clipping by global norm; a NaN/Inf loss or norm stops training with an error, as
//!    DeiT's `sys.exit(1)` does;
//! 6. the optimiser update, then the EMA update.
//!
//! **Determinism.** Every random draw derives from the run seed and the position (see
//! [`crate::seed`]), data order from the batch source's `(epoch, index)` contract, and the CPU
//! backend's reductions are thread-count independent; the same seed and thread count give
//! bit-identical losses and weights, and a resumed run continues bit-identically (tests).

use crate::data::{Batch, BatchSource, Targets};
use crate::ema::Ema;
use crate::grads::Gradients;
use crate::mix::{MixDecision, MixupConfig};
use crate::model::TrainModel;
use crate::optim::{DecayPolicy, Optimizer, OptimizerConfig};
use crate::schedule::{scaled_lr, CosineSchedule};
use crate::seed::{stream_seed, Stream};
use crate::{Result, TrainError};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use vars_core::nn::{cross_entropy, Target};
use vars_core::{Autodiff, Backend, DType, Tensor};
use vars_vit::layers::Mode;

/// The VARS‑S step-constant update (vars-spec §3.5): every `every` steps (counted within the
/// epoch, firing at step 0), `L ← (1 − rate)·L + rate·rule(K)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepConstantsUpdate {
    /// Period in optimiser steps (100).
    pub every: usize,
    /// Blend rate (0.1).
    pub rate: f64,
}

impl Default for StepConstantsUpdate {
    fn default() -> Self {
        StepConstantsUpdate {
            every: 100,
            rate: 0.1,
        }
    }
}

/// Everything that determines a training run's numbers (saved in every checkpoint; a resume
/// checks it is unchanged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Run seed: stochastic depth, mixup, and (through the batch source) data order.
    pub seed: u64,
    /// Epochs to train.
    pub epochs: usize,
    /// AdamW or SGD and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Which parameters get weight decay.
    pub decay: DecayPolicy,
    /// Learning-rate schedule.
    pub schedule: CosineSchedule,
    /// Label smoothing (inside the mixed targets with mixup, in the loss without).
    pub label_smoothing: f64,
    /// Mixup/CutMix, or none.
    pub mixup: Option<MixupConfig>,
    /// EMA decay, or no EMA.
    pub ema_decay: Option<f64>,
    /// Micro-batches per optimiser step (1: none). Each batch is split into this many.
    pub accum_steps: usize,
    /// Clip gradients to this global norm, or not at all (the reference does not clip).
    pub clip_grad_norm: Option<f64>,
    /// The VARS‑S `L` update, or none (a no-op for other models either way).
    pub step_constants: Option<StepConstantsUpdate>,
}

impl TrainConfig {
    /// The recipe of vars-spec §6 for `total_batch` samples per optimiser step over `epochs`:
    /// AdamW (0.9, 0.999, 1e-8, wd 0.05, reference exemptions), `lr = 5e-4·total_batch/512`,
    /// warmup 5 epochs from 1e-6 then cosine to 1e-5, Mixup 0.8 / CutMix 1.0 / switch 0.5 with
    /// label smoothing 0.1, EMA 0.99996, no clipping, the VARS‑S `L` update every 100 steps,
    /// seed 0. The schedule is stepped **per iteration** (this crate's default); use
    /// [`TrainConfig::reference`] for the reference's per-epoch stepping.
    pub fn new(total_batch: usize, epochs: usize) -> Self {
        TrainConfig {
            seed: 0,
            epochs,
            optimizer: OptimizerConfig::adamw(),
            decay: DecayPolicy::reference(),
            schedule: CosineSchedule::new(scaled_lr(total_batch), epochs),
            label_smoothing: 0.1,
            mixup: Some(MixupConfig::reference()),
            ema_decay: Some(0.99996),
            accum_steps: 1,
            clip_grad_norm: None,
            step_constants: Some(StepConstantsUpdate::default()),
        }
    }

    /// [`TrainConfig::new`] with the reference's per-epoch schedule stepping (DeiT): exactly
    /// vars-spec §6 (300 epochs and batch 1024 in the paper).
    pub fn reference(total_batch: usize, epochs: usize) -> Self {
        let mut c = Self::new(total_batch, epochs);
        c.schedule = CosineSchedule::reference(scaled_lr(total_batch), epochs);
        c
    }

    /// Checks every setting (errors name the field and the valid range).
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(TrainError::config(
                "epochs = 0",
                "train for at least one epoch",
            ));
        }
        if self.accum_steps == 0 {
            return Err(TrainError::config(
                "accum_steps = 0",
                "use 1 for no accumulation, or k to split each batch into k micro-batches",
            ));
        }
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return Err(TrainError::config(
                format!("label_smoothing = {}", self.label_smoothing),
                "use a value in [0, 1] (reference 0.1)",
            ));
        }
        if let Some(d) = self.ema_decay {
            if !(0.0..=1.0).contains(&d) {
                return Err(TrainError::config(
                    format!("ema_decay = {d}"),
                    "use a decay in [0, 1] (reference 0.99996)",
                ));
            }
        }
        if let Some(c) = self.clip_grad_norm {
            if !(c > 0.0 && c.is_finite()) {
                return Err(TrainError::config(
                    format!("clip_grad_norm = {c}"),
                    "use a finite norm > 0, or no clipping",
                ));
            }
        }
        if let Some(s) = self.step_constants {
            if s.every == 0 || !(0.0..=1.0).contains(&s.rate) {
                return Err(TrainError::config(
                    format!("step_constants = every {} at rate {}", s.every, s.rate),
                    "use every ≥ 1 and a rate in [0, 1] (reference: every 100, rate 0.1)",
                ));
            }
        }
        self.optimizer.validate()?;
        self.schedule.validate()?;
        if let Some(m) = &self.mixup {
            m.validate()?;
        }
        Ok(())
    }
}

/// Where the run is: the next step to run is `step` of `epoch`; `global_step` optimiser steps
/// have been taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Position {
    pub epoch: usize,
    pub step: usize,
    pub global_step: u64,
}

/// Running sums of the current epoch (saved in checkpoints so a resumed epoch reports the same
/// loss and accuracy).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct EpochAccumulator {
    pub steps: u64,
    pub samples: u64,
    pub loss_sum: f64,
    pub correct: u64,
    pub seconds: f64,
    pub grad_norm_sum: f64,
    pub last_lr: f64,
}

/// The trainer's mutable position and sums.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct TrainState {
    pub position: Position,
    pub epoch_sums: EpochAccumulator,
    /// Batches per epoch of the source being trained on (fixed at the first step; a resume
    /// refuses a source of another length, since the schedule depends on it).
    pub steps_per_epoch: Option<usize>,
}

/// What one optimiser step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    pub epoch: usize,
    /// Step index within the epoch.
    pub step: usize,
    /// Optimiser steps taken before this one.
    pub global_step: u64,
    /// Mean loss over the batch (the mean of the micro-batch losses).
    pub loss: f64,
    /// Correct top-1 predictions (against the labels, or the largest entry of soft targets).
    pub correct: u64,
    pub samples: u64,
    pub lr: f64,
    /// The global gradient norm before clipping (only computed when clipping).
    pub grad_norm: Option<f64>,
    /// This step's mixing, if mixup is on.
    pub mix: Option<MixDecision>,
    /// Whether the VARS‑S step constants were updated before this step.
    pub step_constants_updated: bool,
    pub seconds: f64,
}

/// Evaluation results.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    /// Mean cross-entropy (no smoothing).
    pub loss: f64,
    /// Top-1 accuracy in [0, 1].
    pub accuracy: f64,
    pub samples: u64,
    pub seconds: f64,
}

/// One line of the metrics log: a finished training epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Always `"train_epoch"` (lets other record kinds share the log).
    pub kind: String,
    pub epoch: usize,
    pub steps: u64,
    /// Optimiser steps after this epoch.
    pub global_step: u64,
    pub samples: u64,
    /// Mean training loss over the epoch's steps.
    pub loss: f64,
    /// Top-1 training accuracy (against the dominant class of mixed targets).
    pub accuracy: f64,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    pub seconds: f64,
    pub images_per_sec: f64,
    /// Mean global gradient norm (when clipping).
    pub grad_norm: Option<f64>,
    /// Validation of the raw weights after the epoch, when an evaluation source is given.
    pub eval: Option<EvalMetrics>,
}

/// A training event, for progress bars and logs.
#[derive(Debug)]
pub enum Progress<'a> {
    /// An epoch starts (or resumes at `first_step`).
    EpochStart {
        epoch: usize,
        first_step: usize,
        steps_per_epoch: usize,
    },
    /// A step finished.
    Step(&'a StepReport),
    /// An epoch finished (after evaluation, before its checkpoint).
    EpochEnd(&'a EpochMetrics),
    /// A checkpoint was committed.
    Checkpoint {
        path: &'a std::path::Path,
        global_step: u64,
    },
}

/// What a progress callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Control {
    #[default]
    Continue,
    /// Stop after the current step (a checkpoint is written first when checkpointing is on).
    Stop,
}

/// Options of [`Trainer::fit`].
pub struct FitOptions<'a, B: Backend> {
    /// Where and how often to checkpoint (always at the end of each epoch and when stopping).
    pub checkpoints: Option<&'a mut crate::checkpoint::Checkpointer>,
    /// The JSONL metrics log (one line per epoch).
    pub metrics: Option<&'a mut crate::metrics::MetricsLog>,
    /// A source to evaluate the raw weights on after each epoch.
    pub eval: Option<&'a mut dyn BatchSource<B>>,
    /// Called on every [`Progress`] event.
    pub progress: Option<&'a mut dyn FnMut(Progress<'_>) -> Control>,
    /// Stop once this many optimiser steps have been taken in total (a time or test budget).
    pub max_global_steps: Option<u64>,
}

impl<B: Backend> Default for FitOptions<'_, B> {
    fn default() -> Self {
        FitOptions {
            checkpoints: None,
            metrics: None,
            eval: None,
            progress: None,
            max_global_steps: None,
        }
    }
}

fn emit<B: Backend>(opts: &mut FitOptions<'_, B>, ev: Progress<'_>) -> Control {
    match opts.progress.as_mut() {
        Some(f) => f(ev),
        None => Control::Continue,
    }
}

/// How [`Trainer::fit`] ended.
#[derive(Debug, Clone, PartialEq)]
pub struct FitOutcome {
    /// The epochs finished during this call.
    pub epochs: Vec<EpochMetrics>,
    /// Whether it stopped early (callback or step budget) rather than after the last epoch.
    pub stopped: bool,
    /// Where it stands now.
    pub position: Position,
}

/// Trains one model (module docs).
pub struct Trainer<B: Backend, M: TrainModel<B>> {
    pub(crate) model: M,
    pub(crate) config: TrainConfig,
    pub(crate) optimizer: Optimizer<B>,
    pub(crate) ema: Option<Ema<B>>,
    pub(crate) state: TrainState,
    pub(crate) run_info: serde_json::Value,
}

impl<B: Backend, M: TrainModel<B>> Trainer<B, M> {
    /// A trainer at the start of a run. The configuration is validated, the model's trainable
    /// tensors become leaf variables, and the EMA (if any) starts from the model's weights.
    pub fn new(mut model: M, config: TrainConfig) -> Result<Self> {
        config.validate()?;
        vars_vit::params::mark_trainable(&mut model)?;
        let optimizer = Optimizer::new(config.optimizer.clone(), config.decay.clone())?;
        let ema = match config.ema_decay {
            Some(d) => Some(Ema::new(&model, d)?),
            None => None,
        };
        Ok(Trainer {
            model,
            config,
            optimizer,
            ema,
            state: TrainState::default(),
            run_info: serde_json::Value::Null,
        })
    }

    /// Attaches free-form run information (model preset, data paths, …) saved in each
    /// checkpoint's `config.json` next to the [`TrainConfig`] and hashed with it.
    pub fn with_run_info(mut self, info: serde_json::Value) -> Self {
        self.run_info = info;
        self
    }

    pub fn model(&self) -> &M {
        &self.model
    }
    pub fn model_mut(&mut self) -> &mut M {
        &mut self.model
    }
    pub fn into_model(self) -> M {
        self.model
    }
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }
    pub fn optimizer(&self) -> &Optimizer<B> {
        &self.optimizer
    }
    pub fn ema(&self) -> Option<&Ema<B>> {
        self.ema.as_ref()
    }
    pub fn state(&self) -> &TrainState {
        &self.state
    }
    pub fn position(&self) -> Position {
        self.state.position
    }
    pub fn run_info(&self) -> &serde_json::Value {
        &self.run_info
    }

    /// A copy of the model holding the EMA weights (`None` without EMA).
    pub fn ema_model(&self) -> Result<Option<M>>
    where
        M: Clone,
    {
        let Some(ema) = &self.ema else {
            return Ok(None);
        };
        let mut m = self.model.clone();
        ema.copy_into(&mut m)?;
        Ok(Some(m))
    }

    /// Restarts the EMA from the model's current weights (e.g. after loading pretrained weights
    /// through [`Trainer::model_mut`]). A no-op without EMA.
    pub fn reset_ema(&mut self) -> Result<()> {
        if let Some(d) = self.config.ema_decay {
            self.ema = Some(Ema::new(&self.model, d)?);
        }
        Ok(())
    }

    /// The learning rate of the next step, for `steps_per_epoch` steps per epoch.
    pub fn next_lr(&self, steps_per_epoch: usize) -> f64 {
        let p = self.state.position;
        self.config.schedule.lr(p.epoch, p.step, steps_per_epoch)
    }

    /// Runs one optimiser step on `batch` (module docs) and advances the position by one step
    /// (the epoch is advanced by [`Trainer::end_epoch`]). `steps_per_epoch` places the step in
    /// the schedule.
    ///
    /// On error (a bad batch, a non-finite loss, a model error) the parameters, the optimiser
    /// state, the EMA and the position are unchanged; what the forward pass already did is not
    /// undone (BatchNorm running statistics, the VARS‑S hook), so after an error resume from the
    /// last checkpoint rather than continuing.
    pub fn train_step(&mut self, batch: Batch<B>, steps_per_epoch: usize) -> Result<StepReport> {
        let start = Instant::now();
        let pos = self.state.position;
        let bad = |problem: String| TrainError::Batch {
            epoch: pos.epoch,
            step: pos.step,
            problem,
        };
        let images = batch.images;
        if images.rank() != 4 || !images.dtype().is_float() {
            return Err(bad(format!(
                "images must be float (B, C, H, W), got {} {}",
                images.dtype(),
                images.shape()
            )));
        }
        let n = images.dims()[0];
        if batch.targets.len() != n {
            return Err(bad(format!(
                "{} targets for {n} images",
                batch.targets.len()
            )));
        }
        let k = self.config.accum_steps;
        if n == 0 || n % k != 0 {
            return Err(bad(format!(
                "a batch of {n} cannot be split into {k} equal micro-batches"
            )));
        }

        let mut step_constants_updated = false;
        if let Some(sc) = self.config.step_constants {
            if pos.step % sc.every == 0 {
                self.model.update_step_constants(sc.rate)?;
                step_constants_updated = true;
            }
        }
        let lr = self
            .config
            .schedule
            .lr(pos.epoch, pos.step, steps_per_epoch);
        let seed = self.config.seed;
        let classes = self.model.num_classes();
        let (images, targets, mix, smoothing) = match &self.config.mixup {
            Some(m) => {
                let s = stream_seed(seed, Stream::Mixup, pos.global_step, 0);
                let (x, y, d) = m.apply(
                    &images,
                    &batch.targets,
                    classes,
                    self.config.label_smoothing,
                    s,
                )?;
                (x, Targets::Soft(y), Some(d), 0.0)
            }
            None => (images, batch.targets, None, self.config.label_smoothing),
        };

        let micro = n / k;
        let mut grads = Gradients::default();
        let mut loss_sum = 0.0;
        let mut correct = 0u64;
        for j in 0..k {
            let x = Tensor::<Autodiff<B>>::from_inner(&images.narrow(0, j * micro, micro)?);
            let y = targets.narrow(j * micro, micro)?;
            let mode = Mode::Train {
                seed: stream_seed(seed, Stream::DropPath, pos.global_step, j as u64),
            };
            let logits = self.model.forward_logits(&x, mode)?;
            if logits.dims() != [micro, classes] {
                return Err(bad(format!(
                    "the model returned logits of shape {}, expected [{micro}, {classes}]",
                    logits.shape()
                )));
            }
            let (loss, truth) = match &y {
                Targets::Labels(l) => {
                    let l = Tensor::<Autodiff<B>>::from_inner(l);
                    (
                        cross_entropy(&logits, Target::Labels(&l), smoothing)?,
                        l.inner(),
                    )
                }
                Targets::Soft(t) => {
                    let t = Tensor::<Autodiff<B>>::from_inner(&t.to_dtype(logits.dtype())?);
                    (
                        cross_entropy(&logits, Target::Soft(&t), smoothing)?,
                        t.inner().argmax(1, false)?,
                    )
                }
            };
            let loss_value = loss.to_vec_f64()?.first().copied().unwrap_or(f64::NAN);
            if !loss_value.is_finite() {
                return Err(TrainError::NonFinite {
                    what: "the loss",
                    value: loss_value,
                    epoch: pos.epoch,
                    step: pos.step,
                    global_step: pos.global_step,
                });
            }
            correct += count_correct(&logits.inner(), &truth)?;
            let store = loss.backward()?;
            grads.accumulate(Gradients::from_store(&self.model, &store))?;
            loss_sum += loss_value;
        }
        grads.scale(1.0 / k as f64)?;
        let grad_norm = match self.config.clip_grad_norm {
            Some(max) => {
                let norm = grads.clip_global_norm(max)?;
                if !norm.is_finite() {
                    return Err(TrainError::NonFinite {
                        what: "the gradient norm",
                        value: norm,
                        epoch: pos.epoch,
                        step: pos.step,
                        global_step: pos.global_step,
                    });
                }
                Some(norm)
            }
            None => None,
        };
        self.optimizer.step(&mut self.model, &grads, lr)?;
        if let Some(ema) = &mut self.ema {
            ema.update(&self.model)?;
        }

        let loss = loss_sum / k as f64;
        let seconds = start.elapsed().as_secs_f64();
        let sums = &mut self.state.epoch_sums;
        sums.steps += 1;
        sums.samples += n as u64;
        sums.loss_sum += loss;
        sums.correct += correct;
        sums.seconds += seconds;
        sums.grad_norm_sum += grad_norm.unwrap_or(0.0);
        sums.last_lr = lr;
        self.state.position.step += 1;
        self.state.position.global_step += 1;
        Ok(StepReport {
            epoch: pos.epoch,
            step: pos.step,
            global_step: pos.global_step,
            loss,
            correct,
            samples: n as u64,
            lr,
            grad_norm,
            mix,
            step_constants_updated,
            seconds,
        })
    }

    /// Closes the current epoch: its metrics (with `eval` attached), then the position moves to
    /// step 0 of the next epoch and the sums restart.
    pub fn end_epoch(&mut self, eval: Option<EvalMetrics>) -> EpochMetrics {
        let s = self.state.epoch_sums;
        let p = self.state.position;
        let steps = s.steps.max(1) as f64;
        let m = EpochMetrics {
            kind: "train_epoch".into(),
            epoch: p.epoch,
            steps: s.steps,
            global_step: p.global_step,
            samples: s.samples,
            loss: s.loss_sum / steps,
            accuracy: if s.samples > 0 {
                s.correct as f64 / s.samples as f64
            } else {
                0.0
            },
            lr: s.last_lr,
            seconds: s.seconds,
            images_per_sec: if s.seconds > 0.0 {
                s.samples as f64 / s.seconds
            } else {
                0.0
            },
            grad_norm: self.config.clip_grad_norm.map(|_| s.grad_norm_sum / steps),
            eval,
        };
        self.state.position.epoch += 1;
        self.state.position.step = 0;
        self.state.epoch_sums = EpochAccumulator::default();
        m
    }

    /// Trains from the current position to the end of the last epoch (or until stopped),
    /// checkpointing and logging as `opts` says.
    pub fn fit(
        &mut self,
        source: &mut dyn BatchSource<B>,
        mut opts: FitOptions<'_, B>,
    ) -> Result<FitOutcome> {
        let steps = source.len();
        if steps == 0 {
            return Err(TrainError::config(
                "the batch source has no batches",
                "check the data set size against the batch size (incomplete batches are dropped)",
            ));
        }
        match self.state.steps_per_epoch {
            Some(s) if s != steps => {
                return Err(TrainError::config(
                    format!(
                        "this run has {s} steps per epoch but the batch source now has {steps}"
                    ),
                    "resume with the same data set and batch size (the schedule and the \
                     position depend on them), or start a new run",
                ))
            }
            _ => self.state.steps_per_epoch = Some(steps),
        }
        if self.state.position.step > steps {
            return Err(TrainError::config(
                format!(
                    "the position is step {} of an epoch of {steps} steps",
                    self.state.position.step
                ),
                "resume with the batch source the run was trained on",
            ));
        }
        let mut finished = Vec::new();
        let mut last_saved: Option<u64> = None;
        while self.state.position.epoch < self.config.epochs {
            let epoch = self.state.position.epoch;
            let mut stop = emit(
                &mut opts,
                Progress::EpochStart {
                    epoch,
                    first_step: self.state.position.step,
                    steps_per_epoch: steps,
                },
            ) == Control::Stop;
            loop {
                let mut ran = false;
                if !stop && self.state.position.step < steps {
                    if opts
                        .max_global_steps
                        .is_some_and(|max| self.state.position.global_step >= max)
                    {
                        stop = true;
                        break;
                    }
                    let index = self.state.position.step;
                    let fetch = Instant::now();
                    let batch = source.batch(epoch, index).map_err(|e| TrainError::Data {
                        epoch,
                        step: index,
                        source: e,
                    })?;
                    let fetch_s = fetch.elapsed().as_secs_f64();
                    let mut report = self.train_step(batch, steps)?;
                    report.seconds += fetch_s;
                    self.state.epoch_sums.seconds += fetch_s;
                    if emit(&mut opts, Progress::Step(&report)) == Control::Stop {
                        stop = true;
                    }
                    ran = true;
                }
                // Also closes an epoch whose steps were all run before this call.
                let epoch_done = self.state.position.step >= steps;
                if epoch_done {
                    let eval = match opts.eval.as_mut() {
                        Some(src) => Some(evaluate(&self.model, &mut **src)?),
                        None => None,
                    };
                    let m = self.end_epoch(eval);
                    if let Some(log) = opts.metrics.as_mut() {
                        log.append(&m)?;
                    }
                    if emit(&mut opts, Progress::EpochEnd(&m)) == Control::Stop {
                        stop = true;
                    }
                    finished.push(m);
                }
                let g = self.state.position.global_step;
                let budget_hit = opts.max_global_steps.is_some_and(|max| g >= max);
                if let Some(ck) = opts.checkpoints.as_mut() {
                    let periodic = ran && ck.every_steps.is_some_and(|e| e > 0 && g % e == 0);
                    if periodic || epoch_done || stop || budget_hit {
                        let path = self.save_checkpoint(ck)?;
                        last_saved = Some(g);
                        if emit(
                            &mut opts,
                            Progress::Checkpoint {
                                path: &path,
                                global_step: g,
                            },
                        ) == Control::Stop
                        {
                            stop = true;
                        }
                    }
                }
                if budget_hit {
                    stop = true;
                }
                if epoch_done || stop {
                    break;
                }
            }
            if stop {
                if let Some(ck) = opts.checkpoints.as_mut() {
                    let g = self.state.position.global_step;
                    if last_saved != Some(g) && g > 0 {
                        let path = self.save_checkpoint(ck)?;
                        emit(
                            &mut opts,
                            Progress::Checkpoint {
                                path: &path,
                                global_step: g,
                            },
                        );
                    }
                }
                return Ok(FitOutcome {
                    epochs: finished,
                    stopped: self.state.position.epoch < self.config.epochs,
                    position: self.state.position,
                });
            }
        }
        Ok(FitOutcome {
            epochs: finished,
            stopped: false,
            position: self.state.position,
        })
    }
}

/// Top-1 hits of `logits (B, K)` against class indices `truth (B,)`.
fn count_correct<B: Backend>(logits: &Tensor<B>, truth: &Tensor<B>) -> Result<u64> {
    let pred = logits.argmax(1, false)?.to_vec::<i64>()?;
    let truth = truth.to_vec::<i64>()?;
    Ok(pred.iter().zip(&truth).filter(|(a, b)| a == b).count() as u64)
}

/// Evaluates `model` in [`Mode::Eval`] without gradients over every batch of epoch 0 of
/// `source`: mean cross-entropy (no smoothing; soft targets as given) and top-1 accuracy.
pub fn evaluate<B: Backend, M: TrainModel<B> + ?Sized>(
    model: &M,
    source: &mut dyn BatchSource<B>,
) -> Result<EvalMetrics> {
    let start = Instant::now();
    let (mut loss_sum, mut correct, mut samples) = (0.0f64, 0u64, 0u64);
    for index in 0..source.len() {
        let batch = source.batch(0, index).map_err(|e| TrainError::Data {
            epoch: 0,
            step: index,
            source: e,
        })?;
        let n = batch.images.dims().first().copied().unwrap_or(0);
        let _guard = vars_core::NoGradGuard::new();
        let x = Tensor::<Autodiff<B>>::from_inner(&batch.images);
        let logits = model.forward_logits(&x, Mode::Eval)?.inner();
        let (loss, truth) = match &batch.targets {
            Targets::Labels(l) => (cross_entropy(&logits, Target::Labels(l), 0.0)?, l.clone()),
            Targets::Soft(t) => {
                let t = t.to_dtype(logits.dtype())?;
                (
                    cross_entropy(&logits, Target::Soft(&t), 0.0)?,
                    t.argmax(1, false)?,
                )
            }
        };
        let loss = loss.to_dtype(DType::F64)?.to_vec::<f64>()?;
        loss_sum += loss.first().copied().unwrap_or(f64::NAN) * n as f64;
        correct += count_correct(&logits, &truth)?;
        samples += n as u64;
    }
    let denom = samples.max(1) as f64;
    Ok(EvalMetrics {
        loss: loss_sum / denom,
        accuracy: correct as f64 / denom,
        samples,
        seconds: start.elapsed().as_secs_f64(),
    })
}
