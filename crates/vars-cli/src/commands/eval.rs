//! `vars eval`: accuracy of trained weights on a test set, clean and under corruptions
//! (each severity, same images and seeds as `vars make-c`).

use std::path::PathBuf;

use serde::Serialize;
use vars_core::Backend;
use vars_data::corruptions::Corruption;
use vars_train::EvalMetrics;
use vars_vit::io::pth::FeatureNorm;
use vars_vit::StateDict;

use super::train::{write_json, RunFile, RunSettings};
use crate::data::{self, Augment, DataSpec, DATA_HELP};
use crate::device::{on_device, parse_device, DeviceSpec};
use crate::evaluation::{corrupted, evaluate_net};
use crate::models::{parse_attention, ModelSpec};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
vars eval runs/small-vars_d                              # a `vars train` folder (best weights)\n  \
vars eval runs/small-vars_d --weights ema --corruptions gaussian_noise,shot_noise\n  \
vars eval w.safetensors --model small --attention self-att --depth 2 --heads 2\n  \
vars eval rvt_ti.safetensors --model rvt_tiny --attention vars_d --classes 1000 \\\n      \
--data folder:imagenet/ --corruptions none\n\n\
Corrupted images: image i gets image_seed(--seed, corruption, severity, i), as `vars make-c`.")]
pub struct Args {
    /// A `vars train` output folder (run.json), one of its checkpoint folders (step-*), or a
    /// .safetensors file (then give the model flags).
    target: PathBuf,
    /// Which weights of a run folder: best, final or ema [default: best when saved, else final].
    #[arg(long)]
    weights: Option<String>,
    /// Data source [default: the run's, else fashion-mnist-embedded].
    #[arg(long, long_help = format!("Data source [default: the run's, else fashion-mnist-embedded]: {DATA_HELP}"))]
    data: Option<String>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    test_images: Option<usize>,
    /// Comma-separated corruptions to evaluate under (each at --severities), or `none`.
    #[arg(long, default_value = "gaussian_noise")]
    corruptions: String,
    /// Severities.
    #[arg(long, default_value = "1,2,3,4,5")]
    severities: String,
    /// Parameter table: auto (CIFAR-10-C's up to 84 px, ImageNet-C's above), imagenet, cifar.
    #[arg(long, default_value = "auto")]
    params: String,
    /// Base seed of the corruptions.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Batch size.
    #[arg(long, default_value_t = 250)]
    batch: usize,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Where the model runs: cpu, cuda (GPU 0) or cuda:N (the weights load onto it); CUDA needs
    /// a build with `--features cuda`.
    #[arg(long, default_value = "cpu", value_parser = parse_device, value_name = "cpu|cuda|cuda:N")]
    device: DeviceSpec,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// .safetensors only: model (small, rvt_tiny, …, deit_tiny, …).
    #[arg(long)]
    model: Option<String>,
    /// .safetensors only: attention [default: vars_d].
    #[arg(long)]
    attention: Option<String>,
    /// .safetensors only: input side [default: the data's for small/deit, 224 for RVT].
    #[arg(long)]
    image_size: Option<usize>,
    /// .safetensors only: classes [default: the data's].
    #[arg(long)]
    classes: Option<usize>,
    /// .safetensors only, small: blocks.
    #[arg(long)]
    depth: Option<usize>,
    /// .safetensors only, small: heads.
    #[arg(long)]
    heads: Option<usize>,
    /// .safetensors only, small: width per head.
    #[arg(long)]
    head_dim: Option<usize>,
    /// .safetensors only: the weights are an attention-ablated model.
    #[arg(long)]
    ablate_attention: bool,
}

#[derive(Serialize)]
struct Results {
    weights: String,
    model: ModelSpec,
    data: String,
    clean: EvalMetrics,
    corruptions: Vec<CorruptionResult>,
}

#[derive(Serialize)]
struct CorruptionResult {
    corruption: String,
    severities: Vec<u8>,
    accuracy: Vec<f64>,
    mean_accuracy: f64,
}

/// Finds the weights file and the model spec.
fn resolve(args: &Args) -> Result<(PathBuf, Option<RunSettings>), String> {
    let t = &args.target;
    if t.is_file() {
        return Ok((t.clone(), None));
    }
    if !t.is_dir() {
        return Err(format!(
            "`{}` does not exist: pass a `vars train` output folder or a .safetensors file",
            t.display()
        ));
    }
    if t.join("run.json").is_file() {
        let text = std::fs::read_to_string(t.join("run.json"))
            .map_err(|e| format!("cannot read `{}`: {e}", t.join("run.json").display()))?;
        let run: RunFile = serde_json::from_str(&text).map_err(|e| {
            format!(
                "`{}` is not a vars train run file ({e})",
                t.join("run.json").display()
            )
        })?;
        let which = args
            .weights
            .as_deref()
            .unwrap_or(if t.join("best.safetensors").is_file() {
                "best"
            } else {
                "final"
            });
        let file = match which {
            "best" => "best.safetensors",
            "final" => "model.safetensors",
            "ema" => "ema.safetensors",
            other => return Err(format!("--weights {other}: use best, final or ema")),
        };
        let p = t.join(file);
        if !p.is_file() {
            return Err(format!(
                "`{}` does not exist (train with --ema for EMA weights)",
                p.display()
            ));
        }
        return Ok((p, Some(run.settings)));
    }
    if t.join("config.json").is_file() && t.join("model.safetensors").is_file() {
        let cfg = vars_train::checkpoint::read_config(t).map_err(|e| e.to_string())?;
        let settings: RunSettings = serde_json::from_value(cfg.run["cli"].clone())
            .map_err(|e| format!("`{}` was not written by `vars train` ({e})", t.display()))?;
        let file = if args.weights.as_deref() == Some("ema") {
            "ema.safetensors"
        } else {
            "model.safetensors"
        };
        return Ok((t.join(file), Some(settings)));
    }
    Err(format!(
        "`{}` holds neither run.json nor a checkpoint: pass a `vars train` output folder, a \
         checkpoint folder or a .safetensors file",
        t.display()
    ))
}

pub fn run(args: Args) -> Result<(), String> {
    let threads = args.threads;
    let device = args.device.open()?;
    super::with_threads(threads, move || {
        on_device!(device, |B, dev| run_inner::<B>(args, dev))
    })
}

fn run_inner<B: Backend>(args: Args, device: B::Device) -> Result<(), String> {
    let (weights, settings) = resolve(&args)?;
    let data_spec: DataSpec = args
        .data
        .clone()
        .or_else(|| settings.as_ref().map(|s| s.data.clone()))
        .unwrap_or_else(|| "fashion-mnist-embedded".into())
        .parse()?;
    let splits = data::open(&data_spec)?;
    let sd = StateDict::<B>::load(&weights, &device).map_err(|e| e.to_string())?;
    let (mut spec, pipeline) = match &settings {
        Some(s) => (s.model.clone(), s.pipeline()),
        None => {
            let model = args.model.clone().ok_or_else(|| {
                format!(
                    "`{}` is a bare weights file: say which model it is with --model (and \
                     --attention, --depth/--heads for small)",
                    weights.display()
                )
            })?;
            let kind = parse_attention(args.attention.as_deref().unwrap_or("vars_d"))?;
            let rvt = model.starts_with("rvt_");
            let size = args.image_size.unwrap_or(match splits.side {
                Some(s) if !rvt => s,
                _ => 224,
            });
            let mut s = ModelSpec::new(
                &model,
                kind,
                size,
                if model == "small" { splits.channels } else { 3 },
            );
            s.classes = args.classes.unwrap_or(splits.classes);
            s.depth = args.depth;
            s.heads = args.heads;
            s.head_dim = args.head_dim;
            s.ablate_attention = args.ablate_attention;
            // fixed-size data of another side: resize; varying sizes: resize + centre crop
            let pipeline = match splits.side {
                Some(side) if side == size => data::Pipeline {
                    augment: Augment::None,
                    resize: None,
                },
                Some(_) => data::Pipeline {
                    augment: Augment::None,
                    resize: Some(size),
                },
                None => data::Pipeline {
                    augment: Augment::ImageNetEval { size },
                    resize: None,
                },
            };
            (s, pipeline)
        }
    };
    if let Some(mode) = FeatureNorm::from_metadata(sd.metadata()).map_err(|e| e.to_string())? {
        spec.feature_norm = Some(mode == FeatureNorm::On);
    }
    let mut net = spec.build::<B>(&device, 0)?;
    sd.load_into(&mut net, true)
        .map_err(|e| format!("`{}`: {e}", weights.display()))?;
    let test = data::take(&splits.test, args.test_images);
    let batch = args.batch.max(1);
    let clean = evaluate_net(
        &net,
        &data::eval_loader(
            test.clone(),
            batch,
            pipeline,
            splits.normalize.clone(),
            spec.in_chans,
        ),
        &device,
    )?;
    println!("{} | {}", spec.describe(), weights.display());
    println!(
        "clean: accuracy {:.2}% (loss {:.4}) on {} {} images",
        100.0 * clean.accuracy,
        clean.loss,
        clean.samples,
        data_spec
    );
    let corruptions: Vec<Corruption> = match args.corruptions.trim() {
        "none" | "" => Vec::new(),
        list => list
            .split(',')
            .map(|n| Corruption::from_name(n.trim()).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?,
    };
    let severities: Vec<u8> = args
        .severities
        .split(',')
        .map(|v| match v.trim().parse::<u8>() {
            Ok(n @ 1..=5) => Ok(n),
            _ => Err(format!(
                "severity `{}` is out of range: severities are the integers 1 to 5",
                v.trim()
            )),
        })
        .collect::<Result<_, _>>()?;
    let set = super::parse_params(&args.params)?;
    let mut results = Vec::new();
    for c in corruptions {
        let mut accs = Vec::new();
        for &s in &severities {
            let ds = corrupted(&test, c, s, set, args.seed)?;
            let l = data::eval_loader(ds, batch, pipeline, splits.normalize.clone(), spec.in_chans);
            accs.push(evaluate_net(&net, &l, &device)?.accuracy);
        }
        let mean = accs.iter().sum::<f64>() / accs.len().max(1) as f64;
        println!(
            "{}: {} | mean {:.2}%",
            c.name(),
            severities
                .iter()
                .zip(&accs)
                .map(|(s, a)| format!("s{s} {:.2}%", 100.0 * a))
                .collect::<Vec<_>>()
                .join("  "),
            100.0 * mean
        );
        results.push(CorruptionResult {
            corruption: c.name().into(),
            severities: severities.clone(),
            accuracy: accs,
            mean_accuracy: mean,
        });
    }
    if let Some(p) = &args.json {
        write_json(
            p,
            &Results {
                weights: weights.display().to_string(),
                model: spec.clone(),
                data: data_spec.to_string(),
                clean,
                corruptions: results,
            },
        )?;
    }
    Ok(())
}
