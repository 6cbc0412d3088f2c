//! Classification losses with PyTorch's `cross_entropy` semantics (mean over the batch).

use super::log_softmax;
use crate::{Backend, DType, Error, Result, Tensor};

/// What the loss compares the logits against.
pub enum Target<'a, B: Backend> {
    /// Class indices, `I64` of shape `(batch,)`.
    Labels(&'a Tensor<B>),
    /// A distribution per sample, shape `(batch, classes)` (mixup/cutmix targets).
    Soft(&'a Tensor<B>),
}

/// `mean_i −Σ_k q_ik · log softmax(logits_i)_k` with `q = (1 − ε)·target + ε/K`, exactly
/// `torch.nn.functional.cross_entropy(logits, target, label_smoothing=ε)`.
pub fn cross_entropy<B: Backend>(
    logits: &Tensor<B>,
    target: Target<'_, B>,
    label_smoothing: f64,
) -> Result<Tensor<B>> {
    if logits.rank() != 2 {
        return Err(Error::invalid(
            "cross_entropy",
            logits.shape(),
            "logits must be (batch, classes)",
        ));
    }
    if !(0.0..=1.0).contains(&label_smoothing) {
        return Err(Error::invalid(
            "cross_entropy",
            logits.shape(),
            format!("label_smoothing {label_smoothing} outside [0, 1]"),
        ));
    }
    let (batch, classes) = (logits.dims()[0], logits.dims()[1]);
    let q = match target {
        Target::Labels(labels) => {
            if labels.dtype() != DType::I64 || labels.dims() != [batch] {
                return Err(Error::ShapeMismatch {
                    op: "cross_entropy",
                    lhs: logits.shape().clone(),
                    rhs: labels.shape().clone(),
                    hint: format!(
                        " (labels must be i64 of shape [{batch}], got {})",
                        labels.dtype()
                    ),
                });
            }
            let labels_host = labels.to_vec::<i64>()?;
            if let Some(&bad) = labels_host
                .iter()
                .find(|&&l| l < 0 || l as usize >= classes)
            {
                return Err(Error::IndexOutOfRange {
                    op: "cross_entropy",
                    index: bad,
                    dim: 1,
                    size: classes,
                });
            }
            Tensor::eye(classes, logits.dtype(), logits.device())?.index_select(0, labels)?
        }
        Target::Soft(t) => {
            if t.shape() != logits.shape() {
                return Err(Error::ShapeMismatch {
                    op: "cross_entropy",
                    lhs: logits.shape().clone(),
                    rhs: t.shape().clone(),
                    hint: " (soft targets must match the logits)".into(),
                });
            }
            t.detach()
        }
    };
    let q = if label_smoothing > 0.0 {
        q.affine(1.0 - label_smoothing, label_smoothing / classes as f64)?
    } else {
        q
    };
    log_softmax(logits, 1)?
        .mul(&q)?
        .sum(&[1], false)?
        .mean_all()?
        .neg()
}
