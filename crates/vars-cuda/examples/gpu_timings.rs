//! The timing half of the GPU check (`cargo xtask gpu-check`): RVT‑Ti eval forward and train
//! step (forward + backward) with self-attention and VARS‑D, and the VARS‑D sparse-coding op
//! alone, each on the CUDA backend with the fused sparse-coding kernel, on CUDA without it (the
//! composite of tensor ops), and on the CPU backend (all cores), measured in the same run. Prints
//! one markdown table last.
//!
//! `cargo run --release -p vars-cuda --example gpu_timings [-- --batch N]`
//!
//! Each entry is the median of timed repetitions after one warm-up (which also compiles the
//! kernels or reads them from the disk cache); a repetition ends with a device synchronisation.
//! Repetitions stop after ~2 s or 20 runs, at least 3. Not a criterion benchmark: the GPU
//! machine only receives this binary, and the table must come back in one short run.

use std::time::{Duration, Instant};
use vars_core::nn::{cross_entropy, Target};
use vars_core::sparse::fused::{unrolled_ista, UnrolledIsta};
use vars_core::{Autodiff, Backend, DType, Tensor};
use vars_cpu::{Cpu, CpuDevice};
use vars_cuda::{set_sparse_coding_kernels, Cuda, CudaDevice, SparseCodingKernels};
use vars_vit::config::{AttentionKind, ModelConfig};
use vars_vit::layers::{Init, Mode};
use vars_vit::model::PoolingTransformer;
use vars_vit::params::mark_trainable;

type BoxError = Box<dyn std::error::Error>;

/// Median wall time of `f`, synchronising `B`'s device after each run.
fn time<B: Backend>(dev: &B::Device, mut f: impl FnMut() -> vars_core::Result<()>) -> f64 {
    let run = |f: &mut dyn FnMut() -> vars_core::Result<()>| -> Duration {
        let t = Instant::now();
        f().expect("timed computation failed");
        B::synchronize(dev).expect("synchronize failed");
        t.elapsed()
    };
    run(&mut f);
    let mut samples = Vec::new();
    let budget = Instant::now();
    while samples.len() < 3 || (samples.len() < 20 && budget.elapsed() < Duration::from_secs(2)) {
        samples.push(run(&mut f).as_secs_f64() * 1e3);
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The VARS‑D coding problem of one RVT‑Ti stage-1 layer: `batch·6` entries, `m = 64` atoms
/// (2 × head dim 32), `d = 32`, official T = 5 GELU steps; G is a scaled Gram matrix.
fn ista_inputs<B: Backend>(dev: &B::Device, batch: usize) -> vars_core::Result<[Tensor<B>; 4]> {
    let (e, m, d) = (batch * 6, 64, 32);
    let atoms = Tensor::<B>::randn([e, 96, m], DType::F32, 1, dev)?.mul_scalar(0.1)?;
    let g = atoms.transpose(1, 2)?.matmul(&atoms)?;
    let b = Tensor::<B>::randn([e, m, d], DType::F32, 2, dev)?;
    let lam = Tensor::<B>::full([e, 1, 1], 0.1, DType::F32, dev)?;
    let l = Tensor::<B>::full([e, 1, 1], 40.0, DType::F32, dev)?;
    Ok([g, b, lam, l])
}

fn ista_forward<B: Backend>(dev: &B::Device, batch: usize) -> f64 {
    let [g, b, lam, l] = ista_inputs::<B>(dev, batch).unwrap();
    let cfg = UnrolledIsta::official(5);
    time::<B>(dev, || unrolled_ista(&g, &b, &lam, &l, &cfg).map(drop))
}

fn ista_train<B: Backend>(dev: &B::Device, batch: usize) -> f64 {
    let inputs = ista_inputs::<Autodiff<B>>(dev, batch).unwrap();
    let [g, b, lam, l] = inputs.map(|t| t.requires_grad().unwrap());
    let cfg = UnrolledIsta::official(5);
    time::<B>(dev, || {
        let a = unrolled_ista(&g, &b, &lam, &l, &cfg)?;
        a.sum_all()?.backward().map(drop)
    })
}

fn model_forward<B: Backend>(dev: &B::Device, kind: AttentionKind, batch: usize) -> f64 {
    let cfg = ModelConfig::rvt_tiny(kind);
    let model = PoolingTransformer::<B>::new(&cfg, &mut Init::new(dev, DType::F32, 0)).unwrap();
    let x = Tensor::<B>::randn([batch, 3, 224, 224], DType::F32, 1, dev).unwrap();
    time::<B>(dev, || {
        model.forward(&x, Mode::Eval).map(drop).map_err(into_core)
    })
}

fn model_train<B: Backend>(dev: &B::Device, kind: AttentionKind, batch: usize) -> f64 {
    type Ad<B> = Autodiff<B>;
    let cfg = ModelConfig::rvt_tiny(kind);
    let mut model =
        PoolingTransformer::<Ad<B>>::new(&cfg, &mut Init::new(dev, DType::F32, 0)).unwrap();
    mark_trainable(&mut model).unwrap();
    let x = Tensor::<Ad<B>>::randn([batch, 3, 224, 224], DType::F32, 1, dev).unwrap();
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 1000).collect();
    let labels = Tensor::<Ad<B>>::from_vec(labels, [batch], dev).unwrap();
    time::<B>(dev, || {
        let logits = model
            .forward(&x, Mode::Train { seed: 0 })
            .map_err(into_core)?;
        let loss = cross_entropy(&logits, Target::Labels(&labels), 0.1)?;
        loss.backward().map(drop)
    })
}

fn into_core(e: vars_vit::VitError) -> vars_core::Error {
    vars_core::Error::Backend {
        backend: "vars-vit",
        msg: e.to_string(),
    }
}

struct Row {
    case: String,
    cpu: f64,
    cuda_fused: Option<f64>,
    cuda: f64,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gpu_timings: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), BoxError> {
    let mut batch = 32usize;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--batch") {
        batch = args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or("--batch needs a positive integer")?;
    }
    let dev = CudaDevice::new(0)?;
    println!(
        "device: {} (compute capability {}, kernels for {}), CPU threads: {}, batch {batch}",
        dev.name(),
        dev.compute_capability(),
        dev.target().arch_name(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let mut rows = Vec::new();
    let both = |f: &dyn Fn() -> f64| -> (f64, f64) {
        set_sparse_coding_kernels(SparseCodingKernels::Auto);
        let fused = f();
        set_sparse_coding_kernels(SparseCodingKernels::Never);
        let unfused = f();
        set_sparse_coding_kernels(SparseCodingKernels::Auto);
        (fused, unfused)
    };

    let (fused, unfused) = both(&|| ista_forward::<Cuda>(&dev, batch));
    rows.push(Row {
        case: format!("VARS-D sparse coding, forward ({}×64×32, T=5)", batch * 6),
        cpu: ista_forward::<Cpu>(&CpuDevice, batch),
        cuda_fused: Some(fused),
        cuda: unfused,
    });
    eprintln!("done: sparse coding forward");
    let (fused, unfused) = both(&|| ista_train::<Cuda>(&dev, batch));
    rows.push(Row {
        case: "VARS-D sparse coding, forward + backward".into(),
        cpu: ista_train::<Cpu>(&CpuDevice, batch),
        cuda_fused: Some(fused),
        cuda: unfused,
    });
    eprintln!("done: sparse coding forward + backward");
    for kind in [AttentionKind::SelfAttention, AttentionKind::VarsD] {
        let label = if kind == AttentionKind::SelfAttention {
            "self-attention"
        } else {
            "VARS-D"
        };
        let fwd = |dev: &CudaDevice| model_forward::<Cuda>(dev, kind, batch);
        let (fused, unfused) = if kind == AttentionKind::VarsD {
            let (a, b) = both(&|| fwd(&dev));
            (Some(a), b)
        } else {
            (None, fwd(&dev))
        };
        rows.push(Row {
            case: format!("RVT-Ti {label}, eval forward, 224 px"),
            cpu: model_forward::<Cpu>(&CpuDevice, kind, batch),
            cuda_fused: fused,
            cuda: unfused,
        });
        eprintln!("done: RVT-Ti {label} forward");
        let train = |dev: &CudaDevice| model_train::<Cuda>(dev, kind, batch);
        let (fused, unfused) = if kind == AttentionKind::VarsD {
            let (a, b) = both(&|| train(&dev));
            (Some(a), b)
        } else {
            (None, train(&dev))
        };
        rows.push(Row {
            case: format!("RVT-Ti {label}, train step (fwd + bwd), 224 px"),
            cpu: model_train::<Cpu>(&CpuDevice, kind, batch),
            cuda_fused: fused,
            cuda: unfused,
        });
        eprintln!("done: RVT-Ti {label} train step");
    }

    println!();
    println!("| case (batch {batch}, f32) | CPU ms | CUDA unfused ms | CUDA fused ms | CPU / CUDA best | unfused / fused |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        let best = r.cuda_fused.unwrap_or(r.cuda).min(r.cuda);
        let fused = r.cuda_fused.map_or("–".into(), |f| format!("{f:.2}"));
        let ratio = r
            .cuda_fused
            .map_or("–".into(), |f| format!("{:.2}×", r.cuda / f));
        println!(
            "| {} | {:.1} | {:.2} | {} | {:.1}× | {} |",
            r.case,
            r.cpu,
            r.cuda,
            fused,
            r.cpu / best,
            ratio
        );
    }
    Ok(())
}
