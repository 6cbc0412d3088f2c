//! The training/evaluation input pipeline (`docs/data.md`): a seeded, random-access batch
//! [`Loader`] over any [`Dataset`], with the augmentations of spec §6 and normalisation.
//!
//! Per sample, in this order (torchvision/timm order):
//! 1. [`Dataset::get`] (decode);
//! 2. channel conversion ([`Loader::channels`]: grey → RGB by replication, RGB → grey with PIL's
//!    `convert("L")`);
//! 3. optional fixed resize ([`Loader::resize`], PIL bicubic to `size × size`);
//! 4. the u8 augmentation ([`Augment`]): padded random crop + flip, or RandomResizedCrop + flip
//!    + RandAugment, or the evaluation resize + centre crop;
//! 5. to float `CHW`: `v/255`, then `(v − mean)/std` per channel in f32 (torchvision's `ToTensor`
//!    + `Normalize`);
//! 6. RandomErasing on the normalised tensor (ImageNet training only).
//!
//! Mixup/CutMix work on whole batches and live in `vars_train::mix`.
//!
//! **Determinism.** [`Loader::batch`]`(epoch, index)` is a pure function of the loader's seed,
//! settings, `epoch` and `index` ([`seed`] documents the scheme): the epoch's order is a seeded
//! permutation, and each sample's augmentation draws from streams keyed by its position in the
//! epoch. Batches can be requested in any order, from any thread, with any rayon pool size.

pub mod pil;
pub mod randaugment;
pub mod seed;
pub mod transforms;

use std::sync::{Arc, Mutex};

use rayon::prelude::*;

pub use randaugment::{RandAugment, RandOp};
pub use transforms::{CropBox, EraseMode, RandomErasing};

use crate::corruptions::helpers::resample::PilFilter;
use crate::datasets::Dataset;
use crate::error::{Error, Result};
use crate::image::Image;

/// Per-channel normalisation on the `[0, 1]` scale: `(v/255 − mean[c]) / std[c]`.
///
/// One value applies to every channel (Fashion-MNIST's statistics on grey replicated to RGB).
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalize {
    /// Fashion-MNIST's training-set statistics: mean 0.2860, std 0.3530 (`datasets.md`).
    pub fn fashion_mnist() -> Self {
        Normalize {
            mean: vec![0.2860],
            std: vec![0.3530],
        }
    }

    /// ImageNet's: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225) (spec §6).
    pub fn imagenet() -> Self {
        Normalize {
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    /// Per-channel mean and (population) standard deviation of up to `max_samples` samples of
    /// `dataset` (evenly spaced indices), on the `[0, 1]` scale. All samples must have the
    /// same channel count.
    pub fn estimate<D: Dataset + ?Sized>(dataset: &D, max_samples: usize) -> Result<Self> {
        let n = dataset.len();
        let take = n.min(max_samples.max(1));
        if take == 0 {
            return Err(Error::Pipeline(
                "cannot estimate statistics of an empty data set".into(),
            ));
        }
        let indices: Vec<usize> = (0..take).map(|i| i * n / take).collect();
        let partial = indices
            .par_iter()
            .map(|&i| {
                let (img, _) = dataset.get(i)?;
                let c = img.channels();
                let mut s = vec![0f64; c];
                let mut q = vec![0f64; c];
                for (k, &v) in img.data().iter().enumerate() {
                    let v = v as f64 / 255.0;
                    s[k % c] += v;
                    q[k % c] += v * v;
                }
                Ok((s, q, img.data().len() / c))
            })
            .collect::<Result<Vec<_>>>()?;
        let c = partial[0].0.len();
        let (mut s, mut q, mut count) = (vec![0f64; c], vec![0f64; c], 0usize);
        for (ps, pq, pn) in partial {
            if ps.len() != c {
                return Err(Error::Pipeline(
                    "samples have different channel counts; set Loader::channels first".into(),
                ));
            }
            for k in 0..c {
                s[k] += ps[k];
                q[k] += pq[k];
            }
            count += pn;
        }
        let mean: Vec<f64> = s.iter().map(|v| v / count as f64).collect();
        let std = q
            .iter()
            .zip(&mean)
            .map(|(q, m)| ((q / count as f64 - m * m).max(0.0)).sqrt() as f32)
            .collect();
        Ok(Normalize {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        })
    }

    /// timm's `img_mean` fill colour for RandAugment: `min(255, round(255·mean))` per channel
    /// (Python rounding; (124, 116, 104) for ImageNet).
    pub fn fill_u8(&self) -> Vec<u8> {
        self.mean
            .iter()
            .map(|&m| (255.0 * m as f64).round_ties_even().clamp(0.0, 255.0) as u8)
            .collect()
    }

    fn check(&self, channels: usize) -> Result<()> {
        let n = self.mean.len();
        if n != self.std.len() || !(n == 1 || n == channels) {
            return Err(Error::Pipeline(format!(
                "normalisation has {} mean and {} std values for {channels}-channel images; \
                 give 1 or {channels} of each (or set Loader::channels)",
                n,
                self.std.len()
            )));
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(Error::Pipeline(format!(
                "normalisation std {s} must be positive and finite"
            )));
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return Err(Error::Pipeline(format!(
                "normalisation mean {m} must be finite"
            )));
        }
        Ok(())
    }
}

/// The ImageNet-scale training stack of spec §6, configurable (`Augment::ImageNet { size }` is
/// [`ImageNetTrain::reference`]; others go through [`Loader::imagenet_train`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageNetTrain {
    /// Output side.
    pub size: usize,
    /// RandomResizedCrop area range (0.08, 1).
    pub scale: (f64, f64),
    /// RandomResizedCrop aspect range (3/4, 4/3).
    pub ratio: (f64, f64),
    /// Horizontal-flip probability (0.5).
    pub hflip: f64,
    /// RandAugment policy (`rand-m9-mstd0.5-inc1`), or none.
    pub rand_augment: Option<RandAugment>,
    /// RandomErasing (p 0.25, pixel, one box), or none.
    pub erasing: Option<RandomErasing>,
}

impl ImageNetTrain {
    /// Spec §6: RandomResizedCrop(size, scale 0.08–1, ratio 3/4–4/3, bicubic), flip 0.5,
    /// RandAugment `rand-m9-mstd0.5-inc1`, RandomErasing p 0.25 mode pixel one box.
    pub fn reference(size: usize) -> Self {
        ImageNetTrain {
            size,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            hflip: 0.5,
            rand_augment: Some(RandAugment::reference()),
            erasing: Some(RandomErasing::reference()),
        }
    }
}

/// The per-sample augmentation (for other settings of the ImageNet stack see
/// [`Loader::imagenet_train`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Augment {
    /// None (evaluation of fixed-size data).
    None,
    /// Small images: random crop with zero padding `pad` (torchvision `RandomCrop(size,
    /// padding=pad)`: offsets uniform in `0..=2·pad`), then a horizontal flip with probability
    /// 0.5 when `flip`.
    Small { pad: usize, flip: bool },
    /// The official ImageNet-scale training stack of spec §6 at `size`
    /// ([`ImageNetTrain::reference`]): RandomResizedCrop(size, scale 0.08–1, ratio 3/4–4/3,
    /// bicubic), flip 0.5, RandAugment `rand-m9-mstd0.5-inc1` (timm semantics, fill = the
    /// normalisation mean), RandomErasing p 0.25 mode pixel one box (after normalisation).
    /// Its evaluation counterpart is [`Augment::ImageNetEval`] ([`Augment::eval`]).
    ImageNet { size: usize },
    /// Evaluation: resize the shorter side to `⌊size/0.875⌋` (PIL bicubic), centre crop `size`.
    ImageNetEval { size: usize },
}

impl Augment {
    /// The evaluation counterpart: `ImageNet` → `ImageNetEval` at the same size; `Small` and
    /// `None` → `None`; `ImageNetEval` stays.
    pub fn eval(&self) -> Augment {
        match *self {
            Augment::ImageNet { size } | Augment::ImageNetEval { size } => {
                Augment::ImageNetEval { size }
            }
            Augment::None | Augment::Small { .. } => Augment::None,
        }
    }

    /// Whether the augmentation draws random numbers.
    pub fn is_random(&self) -> bool {
        !matches!(self, Augment::None | Augment::ImageNetEval { .. })
    }
}

/// One batch on the host: images `(B, C, H, W)` row-major f32, labels, and which data-set
/// samples they are.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    pub images: Vec<f32>,
    /// `(B, C, H, W)`.
    pub shape: [usize; 4],
    pub labels: Vec<i64>,
    /// The data-set index of each row.
    pub indices: Vec<usize>,
}

impl HostBatch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }

    /// Row `i`'s `CHW` values.
    pub fn image(&self, i: usize) -> &[f32] {
        let per = self.shape[1] * self.shape[2] * self.shape[3];
        &self.images[i * per..(i + 1) * per]
    }
}

/// A seeded, random-access batch loader over a [`Dataset`] (module docs).
///
/// Defaults of [`Loader::new`]: shuffle on, `drop_last` off, no augmentation, no normalisation
/// (values `v/255` in `[0, 1]`), channels as the data set gives them, no repeated augmentation.
pub struct Loader<D: Dataset> {
    dataset: D,
    batch_size: usize,
    seed: u64,
    shuffle: bool,
    drop_last: bool,
    augment: Augment,
    /// Settings of the ImageNet stack when not the reference ([`Loader::imagenet_train`]).
    imagenet: Option<ImageNetTrain>,
    normalize: Option<Normalize>,
    repeats: usize,
    channels: Option<usize>,
    resize: Option<usize>,
    orders: Mutex<Vec<(usize, Arc<Vec<usize>>)>>,
}

impl<D: Dataset + Clone> Clone for Loader<D> {
    fn clone(&self) -> Self {
        Loader {
            dataset: self.dataset.clone(),
            batch_size: self.batch_size,
            seed: self.seed,
            shuffle: self.shuffle,
            drop_last: self.drop_last,
            augment: self.augment,
            imagenet: self.imagenet.clone(),
            normalize: self.normalize.clone(),
            repeats: self.repeats,
            channels: self.channels,
            resize: self.resize,
            orders: Mutex::new(Vec::new()),
        }
    }
}

impl<D: Dataset> std::fmt::Debug for Loader<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("samples", &self.dataset.len())
            .field("batch_size", &self.batch_size)
            .field("seed", &self.seed)
            .field("shuffle", &self.shuffle)
            .field("drop_last", &self.drop_last)
            .field("augment", &self.augment)
            .field("imagenet", &self.imagenet)
            .field("normalize", &self.normalize)
            .field("repeats", &self.repeats)
            .field("channels", &self.channels)
            .field("resize", &self.resize)
            .finish()
    }
}

/// How many orders (epochs) the loader caches.
const ORDER_CACHE: usize = 2;

impl<D: Dataset> Loader<D> {
    /// A loader of `batch_size` samples per batch, seeded with `seed` (shuffle on, `drop_last`
    /// off, no augmentation, values `v/255`). A `batch_size` of 0 gives an empty epoch.
    pub fn new(dataset: D, batch_size: usize, seed: u64) -> Self {
        Loader {
            dataset,
            batch_size,
            seed,
            shuffle: true,
            drop_last: false,
            augment: Augment::None,
            imagenet: None,
            normalize: None,
            repeats: 1,
            channels: None,
            resize: None,
            orders: Mutex::new(Vec::new()),
        }
    }

    fn reset_orders(mut self) -> Self {
        self.orders = Mutex::new(Vec::new());
        self
    }

    /// Shuffle each epoch with a seeded permutation (on by default); off: data-set order.
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self.reset_orders()
    }

    /// Drop the last incomplete batch (off by default).
    pub fn drop_last(mut self, on: bool) -> Self {
        self.drop_last = on;
        self
    }

    /// The per-sample augmentation (default [`Augment::None`]).
    pub fn augment(mut self, a: Augment) -> Self {
        self.augment = a;
        self.imagenet = None;
        self
    }

    /// The ImageNet training stack with other settings than the reference (e.g. without
    /// RandAugment or RandomErasing, another scale range); sets the augmentation to
    /// `Augment::ImageNet { size: cfg.size }` run with `cfg`.
    pub fn imagenet_train(mut self, cfg: ImageNetTrain) -> Self {
        self.augment = Augment::ImageNet { size: cfg.size };
        self.imagenet = Some(cfg);
        self
    }

    /// Normalise with `n` after scaling to `[0, 1]` (default: no normalisation).
    pub fn normalize(mut self, n: Normalize) -> Self {
        self.normalize = Some(n);
        self
    }

    /// Repeated augmentation, DeiT's `RASampler` with one process: each epoch takes the epoch's
    /// permutation, repeats every index `repeats` times in a row (`[a, a, a, b, b, b, …]`) and
    /// keeps the first `⌊n/256⌋·256` entries (all `n` when `n < 256`, a project choice: DeiT
    /// would keep none). So an epoch has about as many samples as the data set, from about
    /// `n/repeats` distinct images, each `repeats` times (usually within one batch) with
    /// independent augmentations (each repeat has its own position, hence its own streams).
    /// `repeats ≤ 1` turns it off (every sample exactly once per epoch). The reference uses 3.
    pub fn repeated_augmentation(mut self, repeats: usize) -> Self {
        self.repeats = repeats.max(1);
        self.reset_orders()
    }

    /// Output channels: 3 replicates grey images (RGB stays), 1 converts RGB with PIL's
    /// `convert("L")` (grey stays). Other values make [`Loader::batch`] fail.
    pub fn channels(mut self, c: usize) -> Self {
        self.channels = Some(c);
        self
    }

    /// Resize every image to `size × size` (PIL bicubic) right after decoding, before the
    /// augmentation — e.g. Fashion-MNIST 28 → 64 px for the RVT stem (`datasets.md`).
    pub fn resize(mut self, size: usize) -> Self {
        self.resize = Some(size);
        self
    }

    /// The data set.
    pub fn dataset(&self) -> &D {
        &self.dataset
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The augmentation.
    pub fn augmentation(&self) -> &Augment {
        &self.augment
    }

    /// Samples per epoch: the data-set size, or with repeated augmentation `⌊n/256⌋·256` (`n`
    /// when `n < 256`).
    pub fn samples_per_epoch(&self) -> usize {
        let n = self.dataset.len();
        if self.repeats <= 1 || n < 256 {
            n
        } else {
            n / 256 * 256
        }
    }

    /// Batches per epoch.
    pub fn len(&self) -> usize {
        let s = self.samples_per_epoch();
        match self.batch_size {
            0 => 0,
            b if self.drop_last => s / b,
            b => s.div_ceil(b),
        }
    }

    /// Whether an epoch has no batches.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(C, H, W)` of every batch row when it is known without decoding: from the augmentation's
    /// size, the resize, the channel setting and [`Dataset::sample_shape`]. `None` when the data
    /// set's sizes vary and nothing fixes them (e.g. `ImageFolder` with `Augment::None`).
    pub fn output_shape(&self) -> Option<(usize, usize, usize)> {
        let base = self.dataset.sample_shape();
        let c = self.channels.or(self.dataset.sample_channels())?;
        let side = match &self.augment {
            Augment::ImageNet { size } | Augment::ImageNetEval { size } => Some((*size, *size)),
            Augment::None | Augment::Small { .. } => {
                self.resize.map(|s| (s, s)).or(base.map(|b| (b.1, b.2)))
            }
        }?;
        Some((c, side.0, side.1))
    }

    /// The epoch's sequence of data-set indices (after shuffling and repeated augmentation),
    /// `samples_per_epoch()` long; position `p` is row `p % batch_size` of batch
    /// `p / batch_size`. Cached for the last two epochs asked for.
    pub fn epoch_order(&self, epoch: usize) -> Arc<Vec<usize>> {
        if let Ok(cache) = self.orders.lock() {
            if let Some((_, o)) = cache.iter().find(|(e, _)| *e == epoch) {
                return o.clone();
            }
        }
        let n = self.dataset.len();
        let perm = if self.shuffle {
            seed::permutation(n, seed::shuffle_seed(self.seed, epoch as u64))
        } else {
            (0..n).collect()
        };
        let order = if self.repeats > 1 {
            perm.iter()
                .flat_map(|&i| std::iter::repeat_n(i, self.repeats))
                .take(self.samples_per_epoch())
                .collect()
        } else {
            perm
        };
        let order = Arc::new(order);
        if let Ok(mut cache) = self.orders.lock() {
            if cache.len() >= ORDER_CACHE {
                cache.remove(0);
            }
            cache.push((epoch, order.clone()));
        }
        order
    }

    /// Batch `index` (`< len()`) of `epoch`: the samples at positions
    /// `index·batch_size … min((index+1)·batch_size, samples_per_epoch())` of
    /// [`Loader::epoch_order`], decoded and augmented in parallel (rayon), as `(B, C, H, W)` f32.
    ///
    /// A pure function of `(seed, settings, epoch, index)`. Errors: index out of range, a sample
    /// that cannot be read, samples of different shapes in one batch (set a resize or an
    /// ImageNet augmentation), a normalisation that does not fit the channel count.
    pub fn batch(&self, epoch: usize, index: usize) -> Result<HostBatch> {
        let len = self.len();
        if index >= len {
            return Err(Error::Pipeline(format!(
                "batch {index} of epoch {epoch} is out of range: an epoch has {len} batches \
                 ({} samples, batch size {})",
                self.samples_per_epoch(),
                self.batch_size
            )));
        }
        let order = self.epoch_order(epoch);
        let start = index * self.batch_size;
        let end = (start + self.batch_size).min(order.len());
        let rows = (start..end)
            .into_par_iter()
            .map(|pos| {
                let ds_index = order[pos];
                let (img, label) = self.dataset.get(ds_index)?;
                let key = seed::sample_key(self.seed, epoch as u64, pos as u64);
                let (data, shape) = self.process(img, key).map_err(|e| match e {
                    Error::Pipeline(m) => Error::Pipeline(format!("sample {ds_index}: {m}")),
                    other => other,
                })?;
                Ok((data, shape, label, ds_index))
            })
            .collect::<Result<Vec<_>>>()?;
        let shape = rows[0].1;
        if let Some((_, s, _, i)) = rows.iter().find(|r| r.1 != shape) {
            return Err(Error::Pipeline(format!(
                "samples {} and {i} of batch {index} have shapes (C, H, W) = {shape:?} and {s:?}; \
                 a batch needs one shape: set Loader::resize, Loader::channels or an ImageNet \
                 augmentation",
                rows[0].3
            )));
        }
        let per: usize = shape.iter().product();
        let mut images = Vec::with_capacity(rows.len() * per);
        let mut labels = Vec::with_capacity(rows.len());
        let mut indices = Vec::with_capacity(rows.len());
        for (data, _, label, i) in rows {
            images.extend_from_slice(&data);
            labels.push(label);
            indices.push(i);
        }
        Ok(HostBatch {
            shape: [labels.len(), shape[0], shape[1], shape[2]],
            images,
            labels,
            indices,
        })
    }

    /// Steps 2–6 of the module docs for one decoded image.
    fn process(&self, img: Image, key: u64) -> Result<(Vec<f32>, [usize; 3])> {
        use seed::tags;
        let mut img = match self.channels {
            None => img,
            Some(3) => img.to_rgb(),
            Some(1) => pil::to_luma(&img),
            Some(c) => {
                return Err(Error::Pipeline(format!(
                    "Loader::channels({c}): images can have 1 or 3 channels"
                )))
            }
        };
        if let Some(size) = self.resize {
            if size == 0 {
                return Err(Error::Pipeline("Loader::resize(0)".into()));
            }
            if (img.width(), img.height()) != (size, size) {
                img = img.resize(size, size, PilFilter::Bicubic)?;
            }
        }
        let mut erasing = None;
        match &self.augment {
            Augment::None => {}
            Augment::Small { pad, flip } => {
                if *pad > 0 {
                    img = transforms::padded_random_crop(
                        &img,
                        *pad,
                        &mut seed::stream(key, tags::CROP),
                    )
                    .0;
                }
                if *flip && seed::stream(key, tags::FLIP).uniform() < 0.5 {
                    img = transforms::hflip(&img);
                }
            }
            Augment::ImageNet { size } => {
                let reference;
                let cfg = match &self.imagenet {
                    Some(cfg) => cfg,
                    None => {
                        reference = ImageNetTrain::reference(*size);
                        &reference
                    }
                };
                img = self.run_imagenet_train(cfg, &img, key)?;
                erasing = cfg.erasing;
            }
            Augment::ImageNetEval { size } => img = transforms::eval_resize_crop(&img, *size)?,
        }
        let (c, h, w) = (img.channels(), img.height(), img.width());
        let mut out = vec![0f32; c * h * w];
        let norm = match &self.normalize {
            Some(n) => {
                n.check(c)?;
                let pick = |v: &[f32], ch: usize| if v.len() == 1 { v[0] } else { v[ch] };
                Some(
                    (0..c)
                        .map(|ch| (pick(&n.mean, ch), pick(&n.std, ch)))
                        .collect::<Vec<_>>(),
                )
            }
            None => None,
        };
        for (k, &v) in img.data().iter().enumerate() {
            let ch = k % c;
            let p = k / c;
            let x = v as f32 / 255.0;
            out[ch * h * w + p] = match &norm {
                Some(ms) => (x - ms[ch].0) / ms[ch].1,
                None => x,
            };
        }
        if let Some(er) = erasing {
            er.apply(
                &mut out,
                (c, h, w),
                &mut seed::stream(key, tags::ERASE),
                crate::rng::sub_seed(key, tags::ERASE_PIXELS),
            );
        }
        Ok((out, [c, h, w]))
    }

    fn run_imagenet_train(&self, cfg: &ImageNetTrain, img: &Image, key: u64) -> Result<Image> {
        use seed::tags;
        if cfg.size == 0 {
            return Err(Error::Pipeline("ImageNet augmentation size 0".into()));
        }
        let mut img = transforms::random_resized_crop(
            img,
            cfg.size,
            cfg.scale,
            cfg.ratio,
            &mut seed::stream(key, tags::CROP),
        )?;
        if cfg.hflip > 0.0 && seed::stream(key, tags::FLIP).uniform() < cfg.hflip {
            img = transforms::hflip(&img);
        }
        if let Some(ra) = &cfg.rand_augment {
            let fill = match &self.normalize {
                Some(n) if !n.mean.is_empty() => n.fill_u8(),
                _ => vec![128],
            };
            img = ra.apply(&img, &mut seed::stream(key, tags::RAND_AUGMENT), &fill);
        }
        Ok(img)
    }
}
