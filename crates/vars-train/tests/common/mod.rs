//! Shared helpers of the integration tests: tiny models, synthetic data, thread pools.
#![allow(dead_code)]

use vars_core::{Autodiff, DType, Tensor};
use vars_cpu::{Cpu, CpuDevice};
use vars_train::{TensorBatches, TrainConfig};
use vars_vit::config::{AttentionKind, ModelConfig};
use vars_vit::layers::Init;
use vars_vit::model::PoolingTransformer;
use vars_vit::StateDict;

pub type Ad = Autodiff<Cpu>;
pub type Model = PoolingTransformer<Ad>;

pub const CLASSES: usize = 4;

/// `small_image(kind, 28, 1, 4)` cut down to 2 blocks of width 16 (2 heads of 8), with
/// stochastic depth on (the second block drops with p = 0.05), so tests run in milliseconds.
pub fn tiny_config(kind: AttentionKind) -> ModelConfig {
    let mut c = ModelConfig::small_image(kind, 28, 1, CLASSES);
    c.depth = vec![2];
    c.base_dims = vec![8];
    c.heads = vec![2];
    c.drop_path_rate = 0.1;
    c
}

pub fn tiny_model(kind: AttentionKind, seed: u64) -> Model {
    PoolingTransformer::new(
        &tiny_config(kind),
        &mut Init::new(&CpuDevice, DType::F32, seed),
    )
    .unwrap()
}

/// `n` learnable 1×28×28 images: class `c = i mod 4` lights up quadrant `c`, plus noise.
pub fn synthetic(n: usize, seed: u64) -> (Tensor<Cpu>, Tensor<Cpu>) {
    let noise = Tensor::<Cpu>::randn([n, 1, 28, 28], DType::F32, seed, &CpuDevice)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let mut x = Vec::with_capacity(n * 784);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % CLASSES;
        y.push(c as i64);
        for r in 0..28 {
            for col in 0..28 {
                let q = (r / 14) * 2 + col / 14;
                let base = if q == c { 1.5 } else { 0.0 };
                x.push(base + 0.5 * noise[i * 784 + r * 28 + col]);
            }
        }
    }
    (
        Tensor::from_vec(x, [n, 1, 28, 28], &CpuDevice).unwrap(),
        Tensor::from_vec(y, [n], &CpuDevice).unwrap(),
    )
}

/// 32 synthetic samples in shuffled batches of 8 (4 steps per epoch).
pub fn tiny_data(seed: u64) -> TensorBatches<Cpu> {
    let (x, y) = synthetic(32, 100 + seed);
    TensorBatches::new(x, y, 8, Some(seed)).unwrap()
}

/// The reference recipe shrunk to a few epochs, with every stochastic part on: AdamW with the
/// reference exemptions, warmup + cosine per iteration, mixup/cutmix with smoothing, EMA,
/// stochastic depth (in the model), the VARS‑S hook every 2 steps, gradient clipping.
pub fn full_recipe(epochs: usize) -> TrainConfig {
    let mut c = TrainConfig::new(8, epochs);
    c.seed = 7;
    c.schedule.base_lr = 2e-3;
    c.schedule.warmup_epochs = 1.0;
    c.ema_decay = Some(0.9);
    c.clip_grad_norm = Some(5.0);
    c.step_constants = Some(vars_train::StepConstantsUpdate {
        every: 2,
        rate: 0.1,
    });
    c
}

pub fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// Every tensor of a state dict as raw bits, for bit-identical comparisons.
pub fn bits<B: vars_core::Backend>(sd: &StateDict<B>) -> Vec<(String, Vec<u64>)> {
    sd.iter()
        .map(|(k, t)| {
            let v = match t.dtype() {
                DType::F32 => t
                    .to_vec::<f32>()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits() as u64)
                    .collect(),
                DType::F64 => t
                    .to_vec::<f64>()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect(),
                _ => t
                    .to_vec::<i64>()
                    .unwrap()
                    .iter()
                    .map(|&x| x as u64)
                    .collect(),
            };
            (k.to_string(), v)
        })
        .collect()
}
