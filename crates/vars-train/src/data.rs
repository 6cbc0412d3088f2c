//! What the trainer consumes: [`BatchSource`], a random-access sequence of batches per epoch,
//! and [`TensorBatches`], an in-memory implementation (tests, small data sets).
//!
//! **Why random access.** A resumed run must see exactly the batches the interrupted run would
//! have seen, from the middle of an epoch. [`BatchSource::batch`] is therefore addressed by
//! `(epoch, index)` and must be a pure function of them (and of the source's own seed): shuffle
//! with a seed derived from the epoch (e.g. [`crate::seed::stream_seed`] with
//! [`crate::seed::Stream::Data`]), and draw augmentations from `(epoch, index, sample)`. A source
//! that prefetches can still serve the common sequential case fast; the trainer asks for indices
//! `0, 1, 2, …` in order within an epoch, starting mid-epoch only after a resume.

use crate::error::BoxError;
use crate::seed::{stream_seed, Stream};
use crate::{Result, TrainError};
use vars_core::{rng, Backend, DType, Tensor};

/// What a batch's images are compared against.
#[derive(Debug, Clone)]
pub enum Targets<B: Backend> {
    /// Class indices, `I64` of shape `(B,)`.
    Labels(Tensor<B>),
    /// Distributions over the classes, `(B, classes)` (already mixed or smoothed upstream).
    Soft(Tensor<B>),
}

impl<B: Backend> Targets<B> {
    /// The batch size these targets describe.
    pub fn len(&self) -> usize {
        match self {
            Targets::Labels(t) | Targets::Soft(t) => t.dims().first().copied().unwrap_or(0),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows `start..start + len` (a view).
    pub fn narrow(&self, start: usize, len: usize) -> Result<Self> {
        Ok(match self {
            Targets::Labels(t) => Targets::Labels(t.narrow(0, start, len)?),
            Targets::Soft(t) => Targets::Soft(t.narrow(0, start, len)?),
        })
    }
}

/// One batch: images `(B, C, H, W)` (float) and their targets, on the training device, as
/// tensors of the inner backend (the trainer lifts them into the autodiff backend).
#[derive(Debug, Clone)]
pub struct Batch<B: Backend> {
    pub images: Tensor<B>,
    pub targets: Targets<B>,
}

/// A sequence of training (or evaluation) batches, addressed by `(epoch, index)` (module docs).
pub trait BatchSource<B: Backend> {
    /// Batches per epoch (each batch is one optimiser step; with gradient accumulation the
    /// trainer splits it into micro-batches).
    fn len(&self) -> usize;

    /// Whether an epoch has no batches.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Batch `index` (`< len()`) of `epoch`. Must be a pure function of `(epoch, index)` for a
    /// given source, so that resumed runs are exact.
    fn batch(&mut self, epoch: usize, index: usize) -> std::result::Result<Batch<B>, BoxError>;
}

/// An in-memory data set served in seeded, per-epoch shuffled batches (incomplete last batch
/// dropped, as the reference's training loader does).
#[derive(Debug, Clone)]
pub struct TensorBatches<B: Backend> {
    images: Tensor<B>,
    labels: Tensor<B>,
    batch_size: usize,
    shuffle_seed: Option<u64>,
    /// The order of the last epoch served.
    cached: Option<(usize, Vec<usize>)>,
}

impl<B: Backend> TensorBatches<B> {
    /// `images (N, C, H, W)` with `labels` (`I64 (N,)`), in batches of `batch_size`, reshuffled
    /// every epoch from `shuffle_seed` (`None`: in order).
    pub fn new(
        images: Tensor<B>,
        labels: Tensor<B>,
        batch_size: usize,
        shuffle_seed: Option<u64>,
    ) -> Result<Self> {
        if images.rank() != 4 || !images.dtype().is_float() {
            return Err(TrainError::config(
                format!("images are {} {}", images.dtype(), images.shape()),
                "pass float images of shape (N, C, H, W)",
            ));
        }
        if labels.dtype() != DType::I64 || labels.dims() != [images.dims()[0]] {
            return Err(TrainError::config(
                format!(
                    "labels are {} {} for {} images",
                    labels.dtype(),
                    labels.shape(),
                    images.dims()[0]
                ),
                "pass I64 labels of shape (N,)",
            ));
        }
        if batch_size == 0 || batch_size > images.dims()[0] {
            return Err(TrainError::config(
                format!("batch size {batch_size} for {} samples", images.dims()[0]),
                "use a batch size between 1 and the number of samples",
            ));
        }
        Ok(TensorBatches {
            images,
            labels,
            batch_size,
            shuffle_seed,
            cached: None,
        })
    }

    /// The sample order of `epoch`: a Fisher–Yates shuffle seeded by
    /// `stream_seed(shuffle_seed, Stream::Data, epoch, 0)`, or `0..N`.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let n = self.images.dims()[0];
        let mut order: Vec<usize> = (0..n).collect();
        if let Some(seed) = self.shuffle_seed {
            let s = stream_seed(seed, Stream::Data, epoch as u64, 0);
            for i in (1..n).rev() {
                let j = (rng::bits(s, i as u64) % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
        }
        order
    }
}

impl<B: Backend> BatchSource<B> for TensorBatches<B> {
    fn len(&self) -> usize {
        self.images.dims()[0] / self.batch_size
    }

    fn batch(&mut self, epoch: usize, index: usize) -> std::result::Result<Batch<B>, BoxError> {
        if index >= self.len() {
            return Err(format!(
                "batch index {index} out of range (an epoch has {} batches)",
                self.len()
            )
            .into());
        }
        if self.cached.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.cached = Some((epoch, self.order(epoch)));
        }
        let order = self.cached.as_ref().map_or(&[][..], |(_, o)| o.as_slice());
        let ids: Vec<i64> = order[index * self.batch_size..(index + 1) * self.batch_size]
            .iter()
            .map(|&i| i as i64)
            .collect();
        let ids = Tensor::from_vec(ids, [self.batch_size], self.images.device())?;
        Ok(Batch {
            images: self.images.index_select(0, &ids)?,
            targets: Targets::Labels(self.labels.index_select(0, &ids)?),
        })
    }
}
