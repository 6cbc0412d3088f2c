//! Evaluation helpers shared by `vars eval` and `vars demo`: accuracy of a [`Net`] over a
//! [`Loader`], and corrupted copies of a test set (the same images, corruption seeds and
//! severities for every model).

use std::time::Instant;

use rayon::prelude::*;
use vars_core::nn::{cross_entropy, Target};
use vars_core::{Backend, Tensor};
use vars_data::corruptions::{corrupt, Corruption, ParamSet};
use vars_data::rng::image_seed;
use vars_train::EvalMetrics;
use vars_vit::layers::Mode;

use crate::data::{Dataset, Loader, Materialized};
use crate::models::Net;

/// Top-1 accuracy and mean cross-entropy of `net` (eval mode, no gradients) over every batch of
/// `loader` (epoch 0, in order).
pub fn evaluate_net<B: Backend, D: Dataset>(
    net: &Net<B>,
    loader: &Loader<D>,
    device: &B::Device,
) -> Result<EvalMetrics, String> {
    let start = Instant::now();
    let _guard = vars_core::NoGradGuard::new();
    let (mut loss_sum, mut correct, mut samples) = (0.0f64, 0u64, 0u64);
    for index in 0..loader.len() {
        let b = loader.batch(0, index).map_err(|e| e.to_string())?;
        let n = b.labels.len();
        let x = Tensor::<B>::from_vec(b.images, b.shape, device).map_err(|e| e.to_string())?;
        let logits = net.forward(&x, Mode::Eval).map_err(|e| e.to_string())?;
        let labels =
            Tensor::<B>::from_vec(b.labels.clone(), [n], device).map_err(|e| e.to_string())?;
        let loss = cross_entropy(&logits, Target::Labels(&labels), 0.0)
            .and_then(|l| l.to_vec_f64())
            .map_err(|e| e.to_string())?;
        loss_sum += loss.first().copied().unwrap_or(f64::NAN) * n as f64;
        let pred = logits
            .argmax(1, false)
            .and_then(|p| p.to_vec::<i64>())
            .map_err(|e| e.to_string())?;
        correct += pred.iter().zip(&b.labels).filter(|(p, l)| p == l).count() as u64;
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

/// A corrupted copy of `ds`: image `i` gets `corrupt(image, c, severity, set,
/// image_seed(seed, c, severity, i))` (the per-image scheme of `vars make-c`), in parallel.
/// `set = None` picks the table by image size (CIFAR-10-C's up to 84 px).
pub fn corrupted<D: Dataset>(
    ds: &D,
    c: Corruption,
    severity: u8,
    set: Option<ParamSet>,
    seed: u64,
) -> Result<Materialized, String> {
    let items: Vec<(vars_data::Image, i64)> = (0..ds.len())
        .into_par_iter()
        .map(|i| {
            let (img, label) = ds.get(i).map_err(|e| e.to_string())?;
            let set = set.unwrap_or_else(|| ParamSet::for_size(img.width(), img.height()));
            let out = corrupt(
                &img,
                c,
                severity,
                set,
                image_seed(seed, c, severity, i as u64),
            )
            .map_err(|e| e.to_string())?;
            Ok((out, label))
        })
        .collect::<Result<_, String>>()?;
    let (images, labels) = items.into_iter().unzip();
    Ok(Materialized {
        images,
        labels,
        classes: ds.class_names(),
    })
}
