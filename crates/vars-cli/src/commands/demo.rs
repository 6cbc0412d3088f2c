//! `vars demo`: does attention as sparse reconstruction make a transformer more robust to noise?
//!
//! On the embedded Fashion-MNIST subset (10k train / 2k test) it trains three small models with
//! the same architecture, width, seed and schedule — softmax self-attention, VARS-D, and the
//! attention-ablated twin (attention output replaced by zero) — then evaluates each on the same
//! 2,000 test images clean and under Gaussian noise at the five CIFAR-10-C severities
//! (σ = .04, .06, .08, .09, .10; `vars_data`'s `gaussian_noise`, per-image seeds as `vars
//! make-c`), prints a side-by-side table and writes `report.json` and PNG plots. Budget: under
//! 5 minutes on 2 CPU cores with a release build.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use vars_core::{Autodiff, Backend};
use vars_data::corruptions::{Corruption, ParamSet, Params};
use vars_train::{
    CosineSchedule, DecayPolicy, EpochMetrics, EvalMetrics, FitOptions, MetricsLog,
    OptimizerConfig, Stepping, TrainConfig, Trainer,
};
use vars_vit::config::AttentionKind;
use vars_vit::StateDict;

use super::train::{
    fmt_int, param_summary, write_curves, write_json, AugmentSpec, RunFile, RunSettings,
};
use crate::data::{self, LoaderSource, Materialized};
use crate::device::{on_device, parse_device, DeviceSpec};
use crate::evaluation::{corrupted, evaluate_net};
use crate::models::ModelSpec;
use crate::plot::{self, Chart, Series, PALETTE};
use crate::progress::TrainProgress;
use crate::stats::mean_ci95;

/// Demo defaults (measured on 2 cores: see docs/cli.md).
const EPOCHS: usize = 4;
const BATCH: usize = 64;
const LR: f64 = 6e-3;
const DEPTH: usize = 2;
const HEADS: usize = 2;
const HEAD_DIM: usize = 16;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
cargo run --release -p vars-cli -- demo        # ~3 min on 2 idle cores\n  \
vars demo --seeds 3                            # mean ± 95% interval over 3 seeds (3× the time)\n  \
vars demo --quick                              # a few seconds: the whole path on 256 images\n\n\
Writes into --out: report.json (settings, per-phase timings, accuracies), loss.png,\n\
accuracy.png, robustness.png, and per seed and model metrics.jsonl, model.safetensors and run.json\n\
(so `vars eval OUT/seed-0/vars_d` works).")]
pub struct Args {
    /// Repeat with this many seeds (seed, seed+1, …) and report mean ± 95% interval.
    #[arg(long, default_value_t = 1)]
    seeds: usize,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "target/vars-demo")]
    out: PathBuf,
    /// Epochs per model.
    #[arg(long, default_value_t = EPOCHS)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = BATCH)]
    batch: usize,
    /// Peak learning rate (AdamW, warmup then cosine).
    #[arg(long, default_value_t = LR)]
    lr: f64,
    /// Warmup epochs.
    #[arg(long, default_value_t = 0.3)]
    warmup: f64,
    /// Weight decay.
    #[arg(long, default_value_t = 0.05)]
    weight_decay: f64,
    /// Label smoothing.
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f64,
    /// Blocks.
    #[arg(long, default_value_t = DEPTH)]
    depth: usize,
    /// Heads.
    #[arg(long, default_value_t = HEADS)]
    heads: usize,
    /// Width per head.
    #[arg(long, default_value_t = HEAD_DIM)]
    head_dim: usize,
    /// Random-crop padding of the augmentation (0: no crop; 2 costs 3-4 points of accuracy in
    /// this 4-epoch budget).
    #[arg(long, default_value_t = 0)]
    pad: usize,
    /// No horizontal flips.
    #[arg(long)]
    no_flip: bool,
    /// Train on the first N training images only [default: all 10,000].
    #[arg(long)]
    train_images: Option<usize>,
    /// Evaluate on the first N test images only [default: all 2,000].
    #[arg(long)]
    test_images: Option<usize>,
    /// Only these models (comma-separated: self-att, vars_d, none).
    #[arg(long, default_value = "self-att,vars_d,none")]
    models: String,
    /// Tiny run for tests: 256 training and 200 test images, 1 epoch, batch 32.
    #[arg(long)]
    quick: bool,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Where the models run: cpu, cuda (GPU 0) or cuda:N; CUDA needs a build with `--features
    /// cuda`.
    #[arg(long, default_value = "cpu", value_parser = parse_device, value_name = "cpu|cuda|cuda:N")]
    device: DeviceSpec,
    /// No progress bars or epoch lines.
    #[arg(long, short)]
    quiet: bool,
}

/// The CIFAR-10-C Gaussian-noise standard deviations of severities 1–5.
pub fn noise_levels() -> Result<Vec<f64>, String> {
    (1..=5u8)
        .map(|s| {
            match Params::table(Corruption::GaussianNoise, s, ParamSet::Cifar10C)
                .map_err(|e| e.to_string())?
            {
                Params::GaussianNoise { std } => Ok(std),
                other => Err(format!("unexpected parameters {other:?}")),
            }
        })
        .collect()
}

struct Variant {
    key: &'static str,
    label: &'static str,
    attention: AttentionKind,
    ablate: bool,
}

const VARIANTS: [Variant; 3] = [
    Variant {
        key: "self-att",
        label: "self-attention",
        attention: AttentionKind::SelfAttention,
        ablate: false,
    },
    Variant {
        key: "vars_d",
        label: "VARS-D",
        attention: AttentionKind::VarsD,
        ablate: false,
    },
    Variant {
        key: "none",
        label: "no attention",
        attention: AttentionKind::SelfAttention,
        ablate: true,
    },
];

#[derive(Serialize, Clone)]
struct ModelResult {
    model: String,
    seed: u64,
    trainable_parameters: usize,
    frozen_parameters: usize,
    train_seconds: f64,
    eval_seconds: f64,
    images_per_sec: f64,
    epochs: Vec<EpochMetrics>,
    clean: EvalMetrics,
    /// Accuracy under Gaussian noise, severities 1–5.
    noise: Vec<f64>,
    noise_mean: f64,
}

#[derive(Serialize)]
struct Summary {
    model: String,
    trainable_parameters: usize,
    clean: (f64, f64),
    noise: Vec<(f64, f64)>,
    noise_mean: (f64, f64),
    /// Clean accuracy minus the noise mean (points lost to the noise).
    drop: (f64, f64),
}

#[derive(Serialize)]
struct Report {
    about: &'static str,
    build: &'static str,
    threads: usize,
    /// `--device`: cpu or cuda:N.
    device: String,
    settings: serde_json::Value,
    noise_std: Vec<f64>,
    train_images: usize,
    test_images: usize,
    timings_s: serde_json::Value,
    runs: Vec<ModelResult>,
    /// Per model: (mean, half-width of the 95% interval; NaN → null with one seed).
    summary: Vec<Summary>,
    total_seconds: f64,
}

fn build_kind() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

pub fn run(args: Args) -> Result<(), String> {
    let threads = args.threads;
    let device = args.device.open()?;
    super::with_threads(threads, move || {
        on_device!(device, |B, dev| run_inner::<B>(args, dev))
    })
}

fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

fn pm((m, h): (f64, f64)) -> String {
    if h.is_finite() {
        format!("{:.2}±{:.2}", 100.0 * m, 100.0 * h)
    } else {
        pct(m)
    }
}

fn run_inner<B: Backend>(mut args: Args, device: B::Device) -> Result<(), String> {
    let t0 = Instant::now();
    if args.quick {
        args.train_images = Some(args.train_images.unwrap_or(256));
        args.test_images = Some(args.test_images.unwrap_or(200));
        args.epochs = 1;
        args.batch = args.batch.min(32);
    }
    if args.seeds == 0 || args.epochs == 0 || args.batch == 0 {
        return Err("--seeds, --epochs and --batch must be at least 1".into());
    }
    let variants: Vec<&Variant> = args
        .models
        .split(',')
        .map(|k| {
            let k = k.trim();
            VARIANTS
                .iter()
                .find(|v| v.key == k || v.label.eq_ignore_ascii_case(k))
                .ok_or_else(|| format!("--models: unknown model `{k}`; use self-att, vars_d, none"))
        })
        .collect::<Result<_, _>>()?;
    let threads = rayon::current_num_threads();
    // the CPU runs keep their historical output; other devices are named
    let on_device = match args.device {
        DeviceSpec::Cpu => String::new(),
        d => format!(", device {d}"),
    };
    let levels = noise_levels()?;
    eprintln!(
        "vars demo: self-attention vs VARS-D vs no attention (same architecture, width, seed and \
         schedule) on embedded Fashion-MNIST, tested clean and under Gaussian noise \
         σ = {} (CIFAR-10-C severities 1-5).",
        levels
            .iter()
            .map(|s| format!("{s}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    eprintln!(
        "Budget: under 5 minutes on 2 CPU cores with a release build (`cargo run --release -p \
         vars-cli -- demo`){}; this is a {} build on {threads} threads{on_device}.",
        if args.seeds > 1 {
            format!(", per seed ({} seeds)", args.seeds)
        } else {
            String::new()
        },
        build_kind()
    );
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create `{}`: {e}", args.out.display()))?;

    // data: train/test splits and the corrupted test sets (same images for every model)
    let t_data = Instant::now();
    let splits = data::open(&data::DataSpec::FashionEmbedded)?;
    let train = data::take(&splits.train, args.train_images);
    let test = data::take(&splits.test, args.test_images);
    let noisy: Vec<Materialized> = (1..=5u8)
        .map(|s| {
            corrupted(
                &test,
                Corruption::GaussianNoise,
                s,
                Some(ParamSet::Cifar10C),
                0,
            )
        })
        .collect::<Result<_, _>>()?;
    let data_s = t_data.elapsed().as_secs_f64();
    eprintln!(
        "data: {} train / {} test images, 5 noisy copies of the test set ({data_s:.1} s)",
        train.len(),
        test.len()
    );

    let side = splits.side.unwrap_or(28);
    let augment = if args.pad == 0 && args.no_flip {
        AugmentSpec::None
    } else {
        AugmentSpec::Small {
            pad: args.pad,
            flip: !args.no_flip,
        }
    };
    let steps = train.len() / args.batch;
    if steps == 0 {
        return Err(format!(
            "{} training images make no batch of {}: lower --batch",
            train.len(),
            args.batch
        ));
    }
    let mut results: Vec<ModelResult> = Vec::new();
    let mut histories = Vec::new();
    for k in 0..args.seeds {
        let seed = args.seed + k as u64;
        for v in &variants {
            let mut spec = ModelSpec::new("small", v.attention, side, splits.channels);
            spec.classes = splits.classes;
            spec.depth = Some(args.depth);
            spec.heads = Some(args.heads);
            spec.head_dim = Some(args.head_dim);
            spec.ablate_attention = v.ablate;
            let net = spec.build::<Autodiff<B>>(&device, seed)?;
            let params = param_summary(&net);
            eprintln!(
                "[seed {seed}] {}: {} trainable parameters{} ({}, {} epochs of {steps} steps, \
                 batch {}, lr {})",
                v.label,
                fmt_int(params.trainable),
                if params.frozen > 0 {
                    format!(" + {} frozen", fmt_int(params.frozen))
                } else {
                    String::new()
                },
                spec.describe(),
                args.epochs,
                args.batch,
                args.lr
            );
            let config = TrainConfig {
                seed,
                epochs: args.epochs,
                optimizer: match OptimizerConfig::adamw() {
                    OptimizerConfig::AdamW {
                        beta1, beta2, eps, ..
                    } => OptimizerConfig::AdamW {
                        beta1,
                        beta2,
                        eps,
                        weight_decay: args.weight_decay,
                    },
                    o => o,
                },
                decay: DecayPolicy::reference(),
                schedule: CosineSchedule {
                    base_lr: args.lr,
                    min_lr: 1e-5f64.min(args.lr),
                    warmup_lr: 1e-6f64.min(args.lr),
                    warmup_epochs: args.warmup,
                    epochs: args.epochs as f64,
                    stepping: Stepping::PerIteration,
                },
                label_smoothing: args.label_smoothing,
                mixup: None,
                ema_decay: None,
                accum_steps: 1,
                clip_grad_norm: None,
                step_constants: None,
            };
            let settings = RunSettings {
                model: spec.clone(),
                data: "fashion-mnist-embedded".into(),
                train_images: args.train_images,
                test_images: args.test_images,
                augment,
                resize: None,
                batch: args.batch,
                eval_batch: 250,
                seed,
            };
            let dir = args.out.join(format!("seed-{seed}")).join(v.key);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
            let mut trainer = Trainer::new(net, config.clone())
                .map_err(|e| e.to_string())?
                .with_run_info(serde_json::json!({ "cli": settings }));
            let mut train_src = LoaderSource::<B, _>::new(
                data::train_loader(
                    train.clone(),
                    args.batch,
                    seed,
                    settings.pipeline(),
                    splits.normalize.clone(),
                    spec.in_chans,
                ),
                &device,
            );
            let mut log =
                MetricsLog::open(dir.join("metrics.jsonl"), 0).map_err(|e| e.to_string())?;
            let mut progress = TrainProgress::new(v.label, args.epochs, args.quiet);
            let t_train = Instant::now();
            {
                let mut cb = |ev: vars_train::Progress<'_>| progress.on_event(ev);
                trainer
                    .fit(
                        &mut train_src,
                        FitOptions {
                            metrics: Some(&mut log),
                            progress: Some(&mut cb),
                            ..Default::default()
                        },
                    )
                    .map_err(|e| e.to_string())?;
            }
            progress.finish();
            let train_s = t_train.elapsed().as_secs_f64();
            let t_eval = Instant::now();
            let pipeline = settings.pipeline();
            let l = data::eval_loader(test.clone(), 250, pipeline, splits.normalize.clone(), 1);
            let clean = evaluate_net(trainer.model(), &l, &device)?;
            let mut noise = Vec::new();
            for ds in &noisy {
                let l = data::eval_loader(ds.clone(), 250, pipeline, splits.normalize.clone(), 1);
                noise.push(evaluate_net(trainer.model(), &l, &device)?.accuracy);
            }
            let eval_s = t_eval.elapsed().as_secs_f64();
            // the final weights' clean test result is the last epoch's evaluation (plots, run.json)
            if let Some(last) = progress.epochs_done.last_mut() {
                last.eval = Some(clean);
            }
            let noise_mean = noise.iter().sum::<f64>() / noise.len() as f64;
            let samples: u64 = progress.epochs_done.iter().map(|m| m.samples).sum();
            let busy: f64 = progress.epochs_done.iter().map(|m| m.seconds).sum();
            eprintln!(
                "[seed {seed}] {}: trained in {train_s:.1} s ({:.0} img/s), evaluated 6 × {} \
                 images in {eval_s:.1} s: clean {}%, noise mean {}%",
                v.label,
                samples as f64 / busy.max(1e-9),
                test.len(),
                pct(clean.accuracy),
                pct(noise_mean)
            );
            StateDict::from_model(trainer.model())
                .and_then(|sd| sd.save(dir.join("model.safetensors")))
                .map_err(|e| format!("cannot save weights: {e}"))?;
            write_json(
                &dir.join("run.json"),
                &RunFile {
                    settings,
                    train: config,
                    parameters: params,
                    epochs: progress.epochs_done.clone(),
                    final_test: Some(clean),
                    ema_test: None,
                    best_test_accuracy: None,
                    best_epoch: None,
                    seconds: train_s + eval_s,
                },
            )?;
            results.push(ModelResult {
                model: v.label.into(),
                seed,
                trainable_parameters: params.trainable,
                frozen_parameters: params.frozen,
                train_seconds: train_s,
                eval_seconds: eval_s,
                images_per_sec: samples as f64 / busy.max(1e-9),
                epochs: progress.epochs_done.clone(),
                clean,
                noise,
                noise_mean,
            });
            if k == 0 {
                histories.push((
                    v.label,
                    progress.history.clone(),
                    progress.epochs_done.clone(),
                ));
            }
        }
    }

    // summary table
    let summary: Vec<Summary> = variants
        .iter()
        .map(|v| {
            let rs: Vec<&ModelResult> = results.iter().filter(|r| r.model == v.label).collect();
            let col = |f: &dyn Fn(&ModelResult) -> f64| {
                mean_ci95(&rs.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            Summary {
                model: v.label.into(),
                trainable_parameters: rs.first().map_or(0, |r| r.trainable_parameters),
                clean: col(&|r| r.clean.accuracy),
                noise: (0..5).map(|i| col(&|r| r.noise[i])).collect(),
                noise_mean: col(&|r| r.noise_mean),
                drop: col(&|r| r.clean.accuracy - r.noise_mean),
            }
        })
        .collect();
    let w = if args.seeds > 1 { 12 } else { 8 };
    println!();
    println!(
        "Test accuracy (%) on {} embedded Fashion-MNIST test images{}",
        test.len(),
        if args.seeds > 1 {
            format!(", mean ± 95% interval over {} seeds", args.seeds)
        } else {
            format!(", seed {}", args.seed)
        }
    );
    let mut header = format!("{:<16} {:>10} {:>w$}", "model", "params", "clean");
    for (i, s) in levels.iter().enumerate() {
        header.push_str(&format!(" {:>w$}", format!("σ={s} s{}", i + 1)));
    }
    header.push_str(&format!(" {:>w$} {:>w$}", "noise mean", "drop"));
    println!("{header}");
    for s in &summary {
        let mut line = format!(
            "{:<16} {:>10} {:>w$}",
            s.model,
            fmt_int(s.trainable_parameters),
            pm(s.clean)
        );
        for n in &s.noise {
            line.push_str(&format!(" {:>w$}", pm(*n)));
        }
        line.push_str(&format!(" {:>w$} {:>w$}", pm(s.noise_mean), pm(s.drop)));
        println!("{line}");
    }
    println!(
        "σ: Gaussian-noise std of CIFAR-10-C severities 1-5; noise mean: over the five; drop: \
         clean − noise mean (points)"
    );

    // plots
    let mut plots = write_curves(
        &args.out,
        &histories
            .iter()
            .map(|(l, h, e)| (*l, h.as_slice(), e.as_slice()))
            .collect::<Vec<_>>(),
    )?;
    let robust = Chart {
        title: "Accuracy under Gaussian noise".into(),
        x_label: "severity (0 = clean; CIFAR-10-C sigma .04 .06 .08 .09 .10)".into(),
        y_label: "test accuracy (%)".into(),
        series: summary
            .iter()
            .enumerate()
            .map(|(i, s)| Series {
                label: s.model.clone(),
                points: std::iter::once(s.clean.0)
                    .chain(s.noise.iter().map(|n| n.0))
                    .enumerate()
                    .map(|(x, a)| (x as f64, 100.0 * a))
                    .collect(),
                color: PALETTE[i % PALETTE.len()],
            })
            .collect(),
        y_range: None,
    };
    let rp = args.out.join("robustness.png");
    plot::write_png(&rp, &robust)?;
    plots.push(rp);

    let total = t0.elapsed().as_secs_f64();
    let per_model: serde_json::Value = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "model": r.model, "seed": r.seed,
                "train_s": r.train_seconds, "eval_s": r.eval_seconds,
                "images_per_sec": r.images_per_sec,
            })
        })
        .collect();
    let report = Report {
        about: "vars demo: self-attention vs VARS-D vs no attention, clean and Gaussian-noise \
                test accuracy (CIFAR-10-C severities) on the embedded Fashion-MNIST subset",
        build: build_kind(),
        threads,
        device: args.device.to_string(),
        settings: serde_json::json!({
            "epochs": args.epochs, "batch": args.batch, "lr": args.lr, "warmup": args.warmup,
            "weight_decay": args.weight_decay, "label_smoothing": args.label_smoothing,
            "depth": args.depth, "heads": args.heads, "head_dim": args.head_dim,
            "augment": augment, "seeds": args.seeds, "first_seed": args.seed,
            "optimizer": "adamw", "schedule": "linear warmup from 1e-6, cosine to 1e-5, per iteration",
            "noise_seed": 0,
        }),
        noise_std: levels,
        train_images: train.len(),
        test_images: test.len(),
        timings_s: serde_json::json!({ "data": data_s, "models": per_model, "total": total }),
        runs: results.clone(),
        summary,
        total_seconds: total,
    };
    write_json(&args.out.join("report.json"), &report)?;
    let train_total: f64 = results.iter().map(|r| r.train_seconds).sum();
    let eval_total: f64 = results.iter().map(|r| r.eval_seconds).sum();
    println!();
    println!(
        "time: {total:.1} s in all (data {data_s:.1} s, training {train_total:.1} s, \
         evaluation {eval_total:.1} s) on {threads} threads{on_device}, {} build",
        build_kind()
    );
    println!(
        "wrote {} (report.json, {})",
        args.out.display(),
        plots
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
