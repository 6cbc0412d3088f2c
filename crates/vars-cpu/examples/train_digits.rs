//! Trains a small MLP on the embedded UCI handwritten-digits set (8×8 images, 10 classes) with
//! the engine's autodiff on the CPU backend, and reports held-out accuracy.
//!
//! `cargo run --release -p vars-cpu --example train_digits`
//!
//! Everything here goes through the public `vars-core` API: `Tensor<Autodiff<Cpu>>` records the
//! graph, `backward()` returns the gradients, parameter updates run under `no_grad`. The data
//! ship with the repository (`data/uci-digits/`, CC BY 4.0), so the example needs no setup.

use std::time::Instant;
use vars_core::{no_grad, rng, Autodiff, DType, Result, Tensor};
use vars_cpu::{Cpu, CpuDevice};

type B = Autodiff<Cpu>;

const DIGITS: &[u8] = include_bytes!("../../../data/uci-digits/digits.u8");
const FEATURES: usize = 64;
const CLASSES: usize = 10;
const HIDDEN: usize = 128;
const TEST: usize = 297;
const EPOCHS: usize = 40;
const BATCH: usize = 64;
const LR: f64 = 0.1;
const SEED: u64 = 17;

struct Split {
    images: Vec<f32>,
    labels: Vec<i64>,
}

/// Seeded Fisher–Yates shuffle of the 1,797 samples, then a train/test split.
fn load() -> (Split, Split) {
    let n = DIGITS.len() / (FEATURES + 1);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng::bits(SEED, i as u64) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let take = |ids: &[usize]| Split {
        images: ids
            .iter()
            .flat_map(|&i| DIGITS[i * 65..i * 65 + 64].iter().map(|&p| p as f32 / 16.0))
            .collect(),
        labels: ids.iter().map(|&i| DIGITS[i * 65 + 64] as i64).collect(),
    };
    (take(&order[TEST..]), take(&order[..TEST]))
}

struct Mlp {
    w1: Tensor<B>,
    b1: Tensor<B>,
    w2: Tensor<B>,
    b2: Tensor<B>,
}

impl Mlp {
    fn new(dev: &CpuDevice) -> Result<Self> {
        // Kaiming-style scaling of seeded normal draws.
        let w1 = Tensor::randn([FEATURES, HIDDEN], DType::F32, 1, dev)?
            .mul_scalar((2.0 / FEATURES as f64).sqrt())?;
        let w2 = Tensor::randn([HIDDEN, CLASSES], DType::F32, 2, dev)?
            .mul_scalar((1.0 / HIDDEN as f64).sqrt())?;
        Ok(Mlp {
            w1: w1.requires_grad()?,
            b1: Tensor::zeros(HIDDEN, DType::F32, dev)?.requires_grad()?,
            w2: w2.requires_grad()?,
            b2: Tensor::zeros(CLASSES, DType::F32, dev)?.requires_grad()?,
        })
    }

    fn forward(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        let h = x.matmul(&self.w1)?.add(&self.b1)?.gelu()?;
        h.matmul(&self.w2)?.add(&self.b2)
    }

    fn params(&self) -> [&Tensor<B>; 4] {
        [&self.w1, &self.b1, &self.w2, &self.b2]
    }
}

/// Mean cross-entropy with a numerically stable log-softmax.
fn cross_entropy(logits: &Tensor<B>, onehot: &Tensor<B>) -> Result<Tensor<B>> {
    let shifted = logits.sub(&logits.max(&[1], true)?.detach())?;
    let log_z = shifted.exp()?.sum(&[1], true)?.log()?;
    let log_p = shifted.sub(&log_z)?;
    log_p.mul(onehot)?.sum(&[1], false)?.mean_all()?.neg()
}

fn accuracy(model: &Mlp, split: &Split, dev: &CpuDevice) -> Result<f64> {
    let n = split.labels.len();
    let x = Tensor::<B>::from_slice(&split.images, [n, FEATURES], dev)?;
    let pred = no_grad(|| model.forward(&x))?
        .argmax(1, false)?
        .to_vec::<i64>()?;
    let hits = pred
        .iter()
        .zip(&split.labels)
        .filter(|(p, l)| p == l)
        .count();
    Ok(hits as f64 / n as f64)
}

fn main() -> Result<()> {
    let dev = CpuDevice;
    let (train, test) = load();
    let n = train.labels.len();
    println!(
        "UCI digits: {n} train / {} test images, 8×8, {CLASSES} classes",
        test.labels.len()
    );
    let eye = Tensor::<B>::eye(CLASSES, DType::F32, &dev)?;
    let mut model = Mlp::new(&dev)?;
    let start = Instant::now();
    for epoch in 1..=EPOCHS {
        let mut total = 0.0;
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (rng::bits(SEED + epoch as u64, i as u64) % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        for chunk in order.chunks(BATCH) {
            let images: Vec<f32> = chunk
                .iter()
                .flat_map(|&i| {
                    train.images[i * FEATURES..(i + 1) * FEATURES]
                        .iter()
                        .copied()
                })
                .collect();
            let labels: Vec<i64> = chunk.iter().map(|&i| train.labels[i]).collect();
            let x = Tensor::<B>::from_vec(images, [chunk.len(), FEATURES], &dev)?;
            let idx = Tensor::<B>::from_vec(labels, chunk.len(), &dev)?;
            let onehot = eye.index_select(0, &idx)?;
            let loss = cross_entropy(&model.forward(&x)?, &onehot)?;
            total += loss.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            let grads = loss.backward()?;
            let updated = no_grad(|| -> Result<Vec<Tensor<B>>> {
                model
                    .params()
                    .iter()
                    .map(|p| {
                        let g = grads.get(p).expect("every parameter feeds the loss");
                        p.sub(&g.mul_scalar(LR)?)?.requires_grad()
                    })
                    .collect()
            })?;
            let [w1, b1, w2, b2]: [Tensor<B>; 4] = updated.try_into().expect("four parameters");
            model = Mlp { w1, b1, w2, b2 };
        }
        if epoch % 5 == 0 || epoch == 1 {
            println!(
                "epoch {epoch:>3}  loss {:.4}  train acc {:.3}  test acc {:.3}",
                total / n as f64,
                accuracy(&model, &train, &dev)?,
                accuracy(&model, &test, &dev)?
            );
        }
    }
    println!(
        "trained {EPOCHS} epochs in {:.2} s; held-out accuracy {:.1}%",
        start.elapsed().as_secs_f64(),
        100.0 * accuracy(&model, &test, &dev)?
    );
    Ok(())
}
