//! `vars-data`: the data side of the VARS reproduction.
//!
//! - [`corruptions`]: the ImageNet-C / CIFAR-10-C corruptions (15 benchmark + 4 extras, severities
//!   1–5, both parameter tables, the size rule for other sizes and grey images), implemented
//!   natively after `/work/shared/docs/robustness-protocol.md` §1–§3 (see `docs/corruptions.md`);
//! - [`mce`]: CE, mCE, relative mCE and the CIFAR-10-C mean error (protocol §4);
//! - [`make_c`]: writes a corrupted copy of a data set (ImageNet-C folder layout, or one IDX
//!   file per corruption and severity), in parallel;
//! - [`rng`]: the documented seeding scheme (per corruption, severity and image);
//! - [`io`], [`idx`], [`Image`]: PNG/JPEG and IDX reading and writing;
//! - [`assets`]: the frost textures (Apache-2.0), embedded;
//! - [`datasets`]: labelled image data sets — the embedded Fashion-MNIST subset, the full
//!   Fashion-MNIST, IDX pairs, CIFAR-10 binary, torchvision-style image folders
//!   (`docs/data.md`);
//! - [`pipeline`]: the seeded random-access batch loader with the training augmentations of
//!   spec §6 (RandomResizedCrop, flip, RandAugment, RandomErasing, repeated augmentation) and
//!   normalisation.
//!
//! Library code returns [`Error`] on bad input instead of panicking.

pub mod assets;
pub mod corruptions;
pub mod datasets;
mod error;
pub mod idx;
mod image;
pub mod io;
pub mod make_c;
pub mod mce;
pub mod pipeline;
pub mod rng;

pub use corruptions::{corrupt, Corruption, ParamSet, Params};
pub use datasets::{Dataset, ImageFolder, InMemory, Split};
pub use error::{Error, Result};
pub use image::{Image, MAX_SIDE};
pub use pipeline::{Augment, HostBatch, Loader, Normalize};
