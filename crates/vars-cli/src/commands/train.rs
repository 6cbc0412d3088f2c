//! `vars train`: trains a model of the project on a data set with vars-train's [`Trainer`]:
//! indicatif progress (loss, accuracy, images/s, ETA), the JSONL metrics log, loss/accuracy
//! PNG plots, checkpoints at every epoch end (atomic, exact resume), the final, best and EMA
//! weights as safetensors, and `run.json` (settings + results, what `vars eval` reads).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use vars_core::{Autodiff, Backend};
use vars_train::{
    evaluate, BatchSource, Checkpointer, CosineSchedule, EvalMetrics, FitOptions, MetricsLog,
    MixupConfig, OptimizerConfig, ResumePolicy, StepConstantsUpdate, Stepping, TrainConfig,
    Trainer,
};
use vars_vit::{count_parameters, StateDict};

use crate::data::{self, Augment, LoaderSource, DATA_HELP};
use crate::device::{on_device, parse_device, DeviceSpec};
use crate::models::{parse_attention, ModelSpec, Net};
use crate::plot::{self, Chart, Series, PALETTE};
use crate::progress::{smooth, TrainProgress};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
vars train                                              # small VARS-D model, embedded Fashion-MNIST\n  \
vars train --attention self-att --epochs 20 --lr 2e-3 --out runs/sa\n  \
vars train --data fashion-mnist --depth 2 --heads 2 --epochs 15 --lr 3e-3 --batch 128\n  \
vars train --resume runs/sa --epochs 30                 # continue (and extend) a run\n  \
vars train --model rvt_tiny --attention vars_d --data folder:imagenet/ --reference --epochs 300\n\n\
Writes into --out: metrics.jsonl (one line per epoch), loss.png, accuracy.png, checkpoints/step-*/\n\
(model, optimizer, EMA, trainer state, config, provenance), model.safetensors (final weights),\n\
best.safetensors (best test accuracy), ema.safetensors (with --ema), run.json (settings, results).")]
pub struct Args {
    /// Model: small (4×4 patchify stem for 28/32 px images), rvt_tiny, rvt_small, rvt_base,
    /// rvt_*_plus, deit_tiny, deit_small, deit_base.
    #[arg(long, default_value = "small")]
    pub model: String,
    /// Attention: self-att, perf, vars_d, vars_sd, vars_s.
    #[arg(long, default_value = "vars_d")]
    pub attention: String,
    /// `--model small`: blocks [default: 4].
    #[arg(long)]
    pub depth: Option<usize>,
    /// `--model small`: heads [default: 4].
    #[arg(long)]
    pub heads: Option<usize>,
    /// `--model small`: width per head [default: 16].
    #[arg(long)]
    pub head_dim: Option<usize>,
    /// Stochastic-depth rate [default: the preset's; 0 for small].
    #[arg(long)]
    pub drop_path: Option<f64>,
    /// Replace every attention output by zero (RVT-family models): the no-attention control.
    #[arg(long)]
    pub ablate_attention: bool,
    /// Input side the model is built for [default: the data's side for small/deit, 224 for the
    /// RVT presets].
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Data source.
    #[arg(long, default_value = "fashion-mnist-embedded", long_help = format!("Data source: {DATA_HELP}"))]
    pub data: String,
    /// Train on the first N training images only.
    #[arg(long)]
    pub train_images: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    pub test_images: Option<usize>,
    /// Epochs [default: 10].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per optimiser step.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Peak learning rate [default: --base-lr × batch·accum/512, vars-train's scaling rule].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning rate per 512 images when --lr is not given (reference 5e-4).
    #[arg(long, default_value_t = 5e-4)]
    pub base_lr: f64,
    /// Floor of the cosine schedule.
    #[arg(long, default_value_t = 1e-5)]
    pub min_lr: f64,
    /// Linear warmup from 1e-6, in epochs [default: 5, or a tenth of the epochs below 50].
    #[arg(long)]
    pub warmup: Option<f64>,
    /// AdamW weight decay (biases and rank-1 tensors exempt, as the reference).
    #[arg(long, default_value_t = 0.05)]
    pub weight_decay: f64,
    /// Optimiser: adamw or sgd.
    #[arg(long, default_value = "adamw")]
    pub optimizer: String,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Label smoothing.
    #[arg(long, default_value_t = 0.1)]
    pub label_smoothing: f64,
    /// Mixup alpha (0 = off; reference 0.8).
    #[arg(long, default_value_t = 0.0)]
    pub mixup: f64,
    /// CutMix alpha (0 = off; reference 1.0).
    #[arg(long, default_value_t = 0.0)]
    pub cutmix: f64,
    /// EMA decay of the weights (off unless given; reference 0.99996).
    #[arg(long)]
    pub ema: Option<f64>,
    /// Micro-batches per optimiser step (gradient accumulation).
    #[arg(long, default_value_t = 1)]
    pub accum: usize,
    /// Clip gradients to this global norm (off unless given; the reference does not clip).
    #[arg(long)]
    pub clip: Option<f64>,
    /// The reference recipe of vars-spec §6 (AdamW, per-epoch schedule, warmup 5, Mixup 0.8 /
    /// CutMix 1.0, smoothing 0.1, EMA 0.99996, drop path 0.1) with --batch and --epochs; other
    /// recipe flags are ignored.
    #[arg(long)]
    pub reference: bool,
    /// Augmentation: auto (small images: random crop with --pad and horizontal flip; large:
    /// ImageNet crop+flip), none, small, imagenet.
    #[arg(long, default_value = "auto")]
    pub augment: String,
    /// Padding of the random crop of `--augment small` [default: 2 for 28 px, 4 otherwise].
    #[arg(long)]
    pub pad: Option<usize>,
    /// No horizontal flips.
    #[arg(long)]
    pub no_flip: bool,
    /// Run seed (initialisation, data order, augmentation, drop path, mixup).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where the model runs: cpu, cuda (GPU 0) or cuda:N; CUDA needs a build with `--features
    /// cuda`. Checkpoints are device-independent: a run may resume on another device.
    #[arg(long, default_value = "cpu", value_parser = parse_device, value_name = "cpu|cuda|cuda:N")]
    pub device: DeviceSpec,
    /// Output folder [default: runs/<model>-<attention>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its newest checkpoint, with its saved settings
    /// (only --epochs, --threads, --device, --quiet and --out may be given anew).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Also checkpoint every N optimiser steps (always at each epoch end).
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Checkpoints kept.
    #[arg(long, default_value_t = 2)]
    pub keep: usize,
    /// Batch size of evaluation.
    #[arg(long, default_value_t = 250)]
    pub eval_batch: usize,
    /// No progress bars or epoch lines.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Everything that defines a run besides vars-train's [`TrainConfig`] (saved as run info, so a
/// resume and `vars eval` rebuild exactly this).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    pub model: ModelSpec,
    pub data: String,
    pub train_images: Option<usize>,
    pub test_images: Option<usize>,
    pub augment: AugmentSpec,
    /// Resize every image to this side first (fixed-size data of another side than the model's).
    #[serde(default)]
    pub resize: Option<usize>,
    pub batch: usize,
    pub eval_batch: usize,
    pub seed: u64,
}

/// A serialisable form of the augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AugmentSpec {
    None,
    Small { pad: usize, flip: bool },
    ImageNet { size: usize },
}

impl AugmentSpec {
    pub fn to_augment(self) -> Augment {
        match self {
            AugmentSpec::None => Augment::None,
            AugmentSpec::Small { pad, flip } => Augment::Small { pad, flip },
            AugmentSpec::ImageNet { size } => Augment::ImageNet { size },
        }
    }
}

/// The augmentation and the fixed resize for data of `side` (None: sizes vary) and a model of
/// `image_size`.
fn augment_spec(
    args: &Args,
    side: Option<usize>,
    image_size: usize,
) -> Result<(AugmentSpec, Option<usize>), String> {
    let pad = args.pad.unwrap_or(if image_size <= 28 { 2 } else { 4 });
    let flip = !args.no_flip;
    let resize = match side {
        Some(s) if s == image_size => None,
        _ => Some(image_size),
    };
    Ok(match args.augment.to_ascii_lowercase().as_str() {
        "auto" if side.is_some_and(|s| s <= 64) => (AugmentSpec::Small { pad, flip }, resize),
        "auto" | "imagenet" => (AugmentSpec::ImageNet { size: image_size }, None),
        "none" => (AugmentSpec::None, resize),
        "small" => (AugmentSpec::Small { pad, flip }, resize),
        other => {
            return Err(format!(
            "--augment {other}: use auto, none, small (random crop with --pad, flip) or imagenet"
        ))
        }
    })
}

impl RunSettings {
    /// The loaders' image pipeline.
    pub fn pipeline(&self) -> data::Pipeline {
        data::Pipeline {
            augment: self.augment.to_augment(),
            resize: self.resize,
        }
    }
}

/// The default warmup: 5 epochs, or a tenth of short runs.
pub fn default_warmup(epochs: usize) -> f64 {
    if epochs >= 50 {
        5.0
    } else {
        (epochs as f64 / 10.0).max(0.0)
    }
}

fn train_config(args: &Args, epochs: usize) -> Result<TrainConfig, String> {
    let total = args.batch * args.accum.max(1);
    let lr = args.lr.unwrap_or(args.base_lr * total as f64 / 512.0);
    if args.reference {
        let mut c = TrainConfig::reference(total, epochs);
        if let Some(lr) = args.lr {
            c.schedule.base_lr = lr;
        }
        c.seed = args.seed;
        c.accum_steps = args.accum;
        return Ok(c);
    }
    let optimizer = match args.optimizer.to_ascii_lowercase().as_str() {
        "adamw" => match OptimizerConfig::adamw() {
            OptimizerConfig::AdamW {
                beta1, beta2, eps, ..
            } => OptimizerConfig::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay: args.weight_decay,
            },
            other => other,
        },
        "sgd" => OptimizerConfig::Sgd {
            momentum: args.momentum,
            weight_decay: args.weight_decay,
            nesterov: false,
        },
        other => return Err(format!("--optimizer {other}: use adamw or sgd")),
    };
    let mixup = if args.mixup > 0.0 || args.cutmix > 0.0 {
        Some(MixupConfig {
            mixup_alpha: args.mixup,
            cutmix_alpha: args.cutmix,
            ..MixupConfig::reference()
        })
    } else {
        None
    };
    Ok(TrainConfig {
        seed: args.seed,
        epochs,
        optimizer,
        decay: vars_train::DecayPolicy::reference(),
        schedule: CosineSchedule {
            base_lr: lr,
            min_lr: args.min_lr.min(lr),
            warmup_lr: 1e-6f64.min(lr),
            warmup_epochs: args.warmup.unwrap_or_else(|| default_warmup(epochs)),
            epochs: epochs as f64,
            stepping: Stepping::PerIteration,
        },
        label_smoothing: args.label_smoothing,
        mixup,
        ema_decay: args.ema,
        accum_steps: args.accum,
        clip_grad_norm: args.clip,
        step_constants: Some(StepConstantsUpdate::default()),
    })
}

/// What `run.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunFile {
    pub settings: RunSettings,
    pub train: TrainConfig,
    pub parameters: ParamSummary,
    pub epochs: Vec<vars_train::EpochMetrics>,
    pub final_test: Option<EvalMetrics>,
    pub ema_test: Option<EvalMetrics>,
    pub best_test_accuracy: Option<f64>,
    pub best_epoch: Option<usize>,
    pub seconds: f64,
}

/// Parameter counts as the reference's tables count them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ParamSummary {
    pub trainable: usize,
    pub frozen: usize,
}

pub fn param_summary<B: Backend>(net: &Net<B>) -> ParamSummary {
    let c = count_parameters(net);
    ParamSummary {
        trainable: c.trainable,
        frozen: c.frozen,
    }
}

/// Resolves the run settings from the flags and the data.
fn settings_from_args(args: &Args, splits: &data::Splits) -> Result<RunSettings, String> {
    let kind = parse_attention(&args.attention)?;
    let is_rvt_preset = args.model.starts_with("rvt_");
    let image_size = args.image_size.unwrap_or(match splits.side {
        Some(s) if !is_rvt_preset => s,
        _ => 224,
    });
    let in_chans = if args.model == "small" {
        splits.channels
    } else {
        3
    };
    let mut model = ModelSpec::new(&args.model, kind, image_size, in_chans);
    model.classes = splits.classes;
    model.depth = args.depth;
    model.heads = args.heads;
    model.head_dim = args.head_dim;
    model.drop_path = if args.reference {
        Some(0.1)
    } else {
        args.drop_path
    };
    model.ablate_attention = args.ablate_attention;
    model.validate()?;
    let (augment, resize) = augment_spec(args, splits.side, image_size)?;
    if args.batch == 0 || args.eval_batch == 0 {
        return Err("--batch and --eval-batch must be at least 1".into());
    }
    Ok(RunSettings {
        model,
        data: args.data.clone(),
        train_images: args.train_images,
        test_images: args.test_images,
        augment,
        resize,
        batch: args.batch,
        eval_batch: args.eval_batch,
        seed: args.seed,
    })
}

/// Draws `loss.png` and `accuracy.png` of one or more runs (`(label, progress)` pairs).
pub fn write_curves(
    dir: &Path,
    runs: &[(
        &str,
        &[crate::progress::StepPoint],
        &[vars_train::EpochMetrics],
    )],
) -> Result<Vec<PathBuf>, String> {
    let mut loss = Chart {
        title: "Training loss".into(),
        x_label: "epoch".into(),
        y_label: "loss".into(),
        ..Chart::default()
    };
    let mut acc = Chart {
        title: "Accuracy".into(),
        x_label: "epoch".into(),
        y_label: "accuracy (%)".into(),
        ..Chart::default()
    };
    for (i, (label, steps, epochs)) in runs.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let window = (steps.len() / 60).max(1);
        loss.series.push(Series {
            label: format!("{label} train"),
            points: smooth(steps, window, |p| p.loss),
            color,
        });
        let test: Vec<(f64, f64)> = epochs
            .iter()
            .filter_map(|m| m.eval.map(|e| ((m.epoch + 1) as f64, e.loss)))
            .collect();
        if !test.is_empty() {
            loss.series.push(Series {
                label: format!("{label} test"),
                points: test,
                color: PALETTE[(i + runs.len()) % PALETTE.len()],
            });
        }
        acc.series.push(Series {
            label: format!("{label} train"),
            points: if steps.is_empty() {
                epochs
                    .iter()
                    .map(|m| ((m.epoch + 1) as f64, 100.0 * m.accuracy))
                    .collect()
            } else {
                smooth(steps, window.max(steps.len() / 30), |p| 100.0 * p.accuracy)
            },
            color,
        });
        let test: Vec<(f64, f64)> = epochs
            .iter()
            .filter_map(|m| m.eval.map(|e| ((m.epoch + 1) as f64, 100.0 * e.accuracy)))
            .collect();
        if !test.is_empty() {
            acc.series.push(Series {
                label: format!("{label} test"),
                points: test,
                color: PALETTE[(i + runs.len()) % PALETTE.len()],
            });
        }
    }
    let (lp, ap) = (dir.join("loss.png"), dir.join("accuracy.png"));
    plot::write_png(&lp, &loss)?;
    plot::write_png(&ap, &acc)?;
    Ok(vec![lp, ap])
}

fn latest_checkpoint(dir: &Path) -> Result<PathBuf, String> {
    let root = dir.join("checkpoints");
    if !root.is_dir() {
        return Err(format!(
            "no checkpoint under `{}`: --resume takes the --out folder of an earlier `vars \
             train` run",
            root.display()
        ));
    }
    Checkpointer::new(&root)
        .and_then(|ck| ck.latest())
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "no checkpoint under `{}`: --resume takes the --out folder of an earlier `vars \
                 train` run",
                root.display()
            )
        })
}

pub fn run(args: Args) -> Result<(), String> {
    let threads = args.threads;
    let device = args.device.open()?;
    super::with_threads(threads, move || {
        on_device!(device, |B, dev| run_inner::<B>(args, dev))
    })
}

fn run_inner<B: Backend>(args: Args, device: B::Device) -> Result<(), String> {
    let start = Instant::now();
    // Settings: the saved ones on resume (only --epochs may extend the run), else the flags.
    let mut allow_change = false;
    let (settings, config, out, resume_from, splits) = match &args.resume {
        Some(dir) => {
            let ck = latest_checkpoint(dir)?;
            let saved = vars_train::checkpoint::read_config(&ck).map_err(|e| e.to_string())?;
            let settings: RunSettings =
                serde_json::from_value(saved.run["cli"].clone()).map_err(|e| {
                    format!(
                        "`{}` was not written by `vars train` ({e}); resume it with the tool that \
                         wrote it",
                        ck.display()
                    )
                })?;
            let mut config = saved.train;
            if let Some(e) = args.epochs.filter(|&e| e != config.epochs) {
                config.epochs = e;
                config.schedule.epochs = e as f64;
                allow_change = true;
            }
            let splits = data::open(&settings.data.parse()?)?;
            let out = args.out.clone().unwrap_or_else(|| dir.clone());
            (settings, config, out, Some(ck), splits)
        }
        None => {
            let splits = data::open(&args.data.parse()?)?;
            let settings = settings_from_args(&args, &splits)?;
            let config = train_config(&args, args.epochs.unwrap_or(10))?;
            let out = args.out.clone().unwrap_or_else(|| {
                PathBuf::from("runs").join(format!(
                    "{}-{}",
                    settings.model.model, settings.model.attention
                ))
            });
            (settings, config, out, None, splits)
        }
    };
    config.validate().map_err(|e| e.to_string())?;

    let train_ds = data::take(&splits.train, settings.train_images);
    let test_ds = data::take(&splits.test, settings.test_images);
    let m = &settings.model;
    let mut train_src = LoaderSource::<B, _>::new(
        data::train_loader(
            train_ds.clone(),
            settings.batch,
            settings.seed,
            settings.pipeline(),
            splits.normalize.clone(),
            m.in_chans,
        ),
        &device,
    );
    if train_src.len() == 0 {
        return Err(format!(
            "{} training images make no batch of {}: lower --batch",
            train_ds.len(),
            settings.batch
        ));
    }
    let mut test_src = LoaderSource::<B, _>::new(
        data::eval_loader(
            test_ds.clone(),
            settings.eval_batch,
            settings.pipeline(),
            splits.normalize.clone(),
            m.in_chans,
        ),
        &device,
    );

    let net = m.build::<Autodiff<B>>(&device, settings.seed)?;
    std::fs::create_dir_all(&out)
        .map_err(|e| format!("cannot create the output folder `{}`: {e}", out.display()))?;
    let params = param_summary(&net);
    let run_info = serde_json::json!({ "cli": settings });
    let mut trainer = Trainer::new(net, config.clone())
        .map_err(|e| e.to_string())?
        .with_run_info(run_info);
    let mut ck = Checkpointer::new(out.join("checkpoints"))
        .map_err(|e| e.to_string())?
        .with_keep_last(settings_keep(args.keep));
    if let Some(n) = args.checkpoint_every {
        ck = ck.with_every_steps(n);
    }
    if let Some(dir) = &resume_from {
        trainer
            .load_checkpoint(
                dir,
                ResumePolicy {
                    allow_config_change: allow_change,
                },
            )
            .map_err(|e| e.to_string())?;
    } else if ck.latest().map_err(|e| e.to_string())?.is_some() {
        return Err(format!(
            "`{}` already holds checkpoints of a run: continue it with --resume {}, or pick \
             another --out",
            out.display(),
            out.display()
        ));
    }
    let pos = trainer.position();
    eprintln!(
        "vars train: {} | {} params trainable, {} frozen",
        m.describe(),
        fmt_int(params.trainable),
        fmt_int(params.frozen)
    );
    eprintln!(
        "data {}: {} train / {} test images ({}), batch {}, {} steps/epoch, lr {:.3e}, {} epochs, \
         {} threads, device {} -> {}",
        settings.data,
        train_ds.len(),
        test_ds.len(),
        splits.test_note,
        settings.batch,
        train_src.len(),
        config.schedule.base_lr,
        config.epochs,
        rayon::current_num_threads(),
        args.device,
        out.display()
    );
    if resume_from.is_none() && args.lr.is_none() && !args.reference && config.epochs < 50 {
        eprintln!(
            "note: lr {:.3e} is the reference scaling ({} × {}/512), meant for 300-epoch runs; \
             short runs of small models learn much faster with e.g. --lr 3e-3 to 6e-3",
            config.schedule.base_lr,
            args.base_lr,
            args.batch * args.accum.max(1)
        );
    }
    if resume_from.is_some() {
        eprintln!(
            "resuming at epoch {}, step {} (global step {})",
            pos.epoch + 1,
            pos.step,
            pos.global_step
        );
    }
    let mut log =
        MetricsLog::open(out.join("metrics.jsonl"), pos.epoch).map_err(|e| e.to_string())?;
    let label = format!("{} {}", m.model, m.attention);
    let mut progress = TrainProgress::new(&label, config.epochs, args.quiet);
    // earlier epochs (from the log) for the plots
    let earlier: Vec<vars_train::EpochMetrics> = MetricsLog::read_all(log.path())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    let mut best = earlier
        .iter()
        .filter_map(|e| e.eval.map(|v| (v.accuracy, e.epoch)))
        .fold(None::<(f64, usize)>, |b, x| match b {
            Some(b) if b.0 >= x.0 => Some(b),
            _ => Some(x),
        });
    // One `fit` call per epoch (a step budget at the epoch's end), so the best raw weights can
    // be saved between epochs.
    let spe = train_src.len() as u64;
    crate::interrupt::install();
    while trainer.position().epoch < config.epochs {
        let target = (trainer.position().epoch as u64 + 1) * spe;
        let mut cb = |ev: vars_train::Progress<'_>| {
            let c = progress.on_event(ev);
            if crate::interrupt::requested() {
                vars_train::Control::Stop
            } else {
                c
            }
        };
        let outcome = trainer
            .fit(
                &mut train_src,
                FitOptions {
                    checkpoints: Some(&mut ck),
                    metrics: Some(&mut log),
                    eval: Some(&mut test_src),
                    progress: Some(&mut cb),
                    max_global_steps: Some(target),
                },
            )
            .map_err(|e| e.to_string())?;
        if crate::interrupt::requested() {
            progress.finish();
            let p = trainer.position();
            return Err(format!(
                "interrupted at epoch {}, step {} (global step {}); a checkpoint was written: \
                 continue with `vars train --resume {}`",
                p.epoch + 1,
                p.step,
                p.global_step,
                out.display()
            ));
        }
        let Some(em) = outcome.epochs.last() else {
            return Err(format!(
                "the run did not advance at epoch {} (global step {}): the checkpoint does not \
                 fit this data set and batch size",
                trainer.position().epoch + 1,
                trainer.position().global_step
            ));
        };
        if let Some(e) = em.eval {
            if best.is_none_or(|b| e.accuracy > b.0) {
                best = Some((e.accuracy, em.epoch));
                StateDict::from_model(trainer.model())
                    .and_then(|sd| sd.save(out.join("best.safetensors")))
                    .map_err(|e| format!("cannot save the best weights: {e}"))?;
            }
        }
    }
    progress.finish();

    // final weights, EMA, evaluation, plots, run.json
    StateDict::from_model(trainer.model())
        .and_then(|sd| sd.save(out.join("model.safetensors")))
        .map_err(|e| format!("cannot save the final weights: {e}"))?;
    let final_test = progress
        .epochs_done
        .last()
        .and_then(|m| m.eval)
        .map(Ok)
        .unwrap_or_else(|| evaluate(trainer.model(), &mut test_src).map_err(|e| e.to_string()))?;
    let ema_test = match trainer.ema() {
        Some(ema) => {
            ema.state_dict()
                .save(out.join("ema.safetensors"))
                .map_err(|e| format!("cannot save the EMA weights: {e}"))?;
            let em = trainer.ema_model().map_err(|e| e.to_string())?;
            match em {
                Some(em) => Some(evaluate(&em, &mut test_src).map_err(|e| e.to_string())?),
                None => None,
            }
        }
        None => None,
    };
    let all_epochs: Vec<vars_train::EpochMetrics> = MetricsLog::read_all(log.path())
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    let plots = write_curves(&out, &[(&m.attention, &progress.history, &all_epochs)])?;
    let run_file = RunFile {
        settings: settings.clone(),
        train: trainer.config().clone(),
        parameters: params,
        epochs: all_epochs,
        final_test: Some(final_test),
        ema_test,
        best_test_accuracy: best.map(|b| b.0),
        best_epoch: best.map(|b| b.1),
        seconds: start.elapsed().as_secs_f64(),
    };
    write_json(&out.join("run.json"), &run_file)?;
    println!(
        "final test accuracy {:.2}% (loss {:.4}) on {} images{}{}",
        100.0 * final_test.accuracy,
        final_test.loss,
        final_test.samples,
        match best {
            Some((a, e)) => format!("; best {:.2}% after epoch {}", 100.0 * a, e + 1),
            None => String::new(),
        },
        match ema_test {
            Some(e) => format!("; EMA {:.2}%", 100.0 * e.accuracy),
            None => String::new(),
        }
    );
    println!(
        "wrote {} (metrics.jsonl, {}, run.json, model.safetensors{}{}, checkpoints/) in {:.1} s",
        out.display(),
        plots
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(", "),
        if best.is_some() {
            ", best.safetensors"
        } else {
            ""
        },
        if ema_test.is_some() {
            ", ema.safetensors"
        } else {
            ""
        },
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn settings_keep(k: usize) -> usize {
    k.max(1)
}

/// `12,345,678`.
pub fn fmt_int(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Writes pretty JSON.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), String> {
    let s = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, s + "\n").map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}
