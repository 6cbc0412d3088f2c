//! Labelled image data sets for training and evaluation (`docs/data.md`).
//!
//! - [`InMemory`]: fixed-size u8 images and labels held in memory — the embedded Fashion-MNIST
//!   subset ([`InMemory::fashion_mnist_embedded`], zero setup), the full Fashion-MNIST of the
//!   Debian package ([`InMemory::fashion_mnist`]), any IDX pair ([`InMemory::idx`]) and CIFAR-10's
//!   binary format ([`InMemory::cifar10`]);
//! - [`ImageFolder`]: torchvision's `ImageFolder` layout (`root/<class>/<image>`), decoded from
//!   disk on every [`Dataset::get`].
//!
//! Every sample is an [`Image`] (u8, `HWC`, 1 or 3 channels) and an `i64` class index in
//! `0..num_classes()`. The [`crate::pipeline::Loader`] turns samples into float batches.
//!
//! Missing or malformed files are errors that name the file and say what to do; no reader panics
//! on bad input.

mod folder;
mod memory;

use std::sync::Arc;

pub use folder::ImageFolder;
pub use memory::{InMemory, CIFAR10_CLASSES, FASHION_MNIST_CLASSES, FASHION_MNIST_DEBIAN_DIR};

use crate::error::Result;
use crate::image::Image;

/// Which part of a data set with an official split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training part (Fashion-MNIST 60,000 / embedded 10,000; CIFAR-10 `data_batch_1..5`).
    Train,
    /// The test part (Fashion-MNIST 10,000 / embedded 2,000; CIFAR-10 `test_batch`).
    Test,
}

impl Split {
    /// `"train"` or `"test"`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// A random-access labelled image data set.
///
/// Implementations must be cheap to share between threads: the loader calls [`Dataset::get`]
/// from rayon workers.
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;

    /// Whether there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of classes; labels are in `0..num_classes()`.
    fn num_classes(&self) -> usize;

    /// `(channels, height, width)` of every sample as [`Dataset::get`] returns it, when all
    /// samples share it (`InMemory`), `None` when it varies (`ImageFolder`: decoded sizes differ;
    /// the loader's resize/crop makes the batch shape fixed, see
    /// [`crate::pipeline::Loader::output_shape`]).
    fn sample_shape(&self) -> Option<(usize, usize, usize)> {
        None
    }

    /// The channel count of every sample when it is fixed even if the size is not
    /// (`ImageFolder`: always 3). Defaults to [`Dataset::sample_shape`]'s.
    fn sample_channels(&self) -> Option<usize> {
        self.sample_shape().map(|s| s.0)
    }

    /// Sample `index` (`< len()`): the image and its class index. An out-of-range index, or a
    /// file that cannot be read or decoded, is an error.
    fn get(&self, index: usize) -> Result<(Image, i64)>;

    /// The class index of sample `index` without decoding it where possible.
    fn label(&self, index: usize) -> Result<i64> {
        self.get(index).map(|(_, label)| label)
    }

    /// Class names, indexed by label (`num_classes()` entries).
    fn class_names(&self) -> Vec<String>;
}

macro_rules! forward_dataset {
    ($($ty:ty),*) => {$(
        impl<D: Dataset + ?Sized> Dataset for $ty {
            fn len(&self) -> usize {
                (**self).len()
            }
            fn num_classes(&self) -> usize {
                (**self).num_classes()
            }
            fn sample_shape(&self) -> Option<(usize, usize, usize)> {
                (**self).sample_shape()
            }
            fn sample_channels(&self) -> Option<usize> {
                (**self).sample_channels()
            }
            fn get(&self, index: usize) -> Result<(Image, i64)> {
                (**self).get(index)
            }
            fn label(&self, index: usize) -> Result<i64> {
                (**self).label(index)
            }
            fn class_names(&self) -> Vec<String> {
                (**self).class_names()
            }
        }
    )*};
}

forward_dataset!(Box<D>, Arc<D>, &D);

/// Number of samples per class (`num_classes()` entries), from [`Dataset::label`].
pub fn class_counts<D: Dataset + ?Sized>(dataset: &D) -> Result<Vec<usize>> {
    let mut counts = vec![0usize; dataset.num_classes()];
    for i in 0..dataset.len() {
        let label = dataset.label(i)?;
        if let Some(c) = usize::try_from(label).ok().and_then(|l| counts.get_mut(l)) {
            *c += 1;
        }
    }
    Ok(counts)
}
