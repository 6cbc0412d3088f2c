//! Whole-model cost: RVT‑Ti at 224 px, batch 4, eval forward (inference, `Tensor<Cpu>`) and a
//! train step's forward + backward (`Tensor<Autodiff<Cpu>>`), for every attention variant, with
//! softmax self-attention as the baseline measured in the same run, so the report reads as "VARS‑D
//! costs k× self-attention on this machine".
//!
//! `cargo xtask bench models [--quick]`, or
//! `cargo bench -p vars-benches --bench models -- --warm-up-time 1 --measurement-time 5`.
//! Throughput is in images.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vars_core::nn::{cross_entropy, Target};
use vars_core::{Autodiff, DType, Tensor};
use vars_cpu::{Cpu, CpuDevice};
use vars_vit::config::{AttentionKind, ModelConfig};
use vars_vit::layers::{Init, Mode};
use vars_vit::model::PoolingTransformer;
use vars_vit::params::mark_trainable;

const BATCH: usize = 4;

fn name(kind: AttentionKind) -> String {
    if kind == AttentionKind::SelfAttention {
        "baseline-self-att".into()
    } else {
        kind.cli_name().to_string()
    }
}

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("models/rvt-ti-224-fwd");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    let x = Tensor::<Cpu>::randn([BATCH, 3, 224, 224], DType::F32, 1, &CpuDevice).unwrap();
    for kind in AttentionKind::ALL {
        let cfg = ModelConfig::rvt_tiny(kind);
        let model = PoolingTransformer::<Cpu>::new(&cfg, &mut Init::new(&CpuDevice, DType::F32, 0))
            .unwrap();
        group.bench_function(BenchmarkId::from_parameter(name(kind)), |b| {
            b.iter(|| black_box(model.forward(&x, Mode::Eval).unwrap()))
        });
    }
    group.finish();
}

fn train_step(c: &mut Criterion) {
    type Ad = Autodiff<Cpu>;
    let mut group = c.benchmark_group("models/rvt-ti-224-fwdbwd");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    let x = Tensor::<Ad>::randn([BATCH, 3, 224, 224], DType::F32, 1, &CpuDevice).unwrap();
    let labels = Tensor::<Ad>::from_vec(vec![1i64, 2, 3, 4], [BATCH], &CpuDevice).unwrap();
    for kind in AttentionKind::ALL {
        let cfg = ModelConfig::rvt_tiny(kind);
        let mut model =
            PoolingTransformer::<Ad>::new(&cfg, &mut Init::new(&CpuDevice, DType::F32, 0)).unwrap();
        mark_trainable(&mut model).unwrap();
        group.bench_function(BenchmarkId::from_parameter(name(kind)), |b| {
            b.iter(|| {
                let logits = model.forward(&x, Mode::Train { seed: 0 }).unwrap();
                let loss = cross_entropy(&logits, Target::Labels(&labels), 0.1).unwrap();
                black_box(loss.backward().unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, forward, train_step);
criterion_main!(benches);
