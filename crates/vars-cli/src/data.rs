//! Data sources for `vars train`, `vars eval` and `vars demo`: the `--data` syntax, opening the
//! train/test splits, and the adapter from the data pipeline's [`Loader`] to vars-train's
//! [`BatchSource`].

use std::path::PathBuf;
use std::sync::Arc;

use vars_core::Backend;
use vars_data::Image;
use vars_train::{Batch, BatchSource, BoxError, Targets};

pub use vars_data::datasets::{Dataset, ImageFolder, InMemory, Split};
pub use vars_data::pipeline::{Augment, HostBatch, Loader, Normalize};

/// The `--data` values, for help texts.
pub const DATA_HELP: &str = "fashion-mnist-embedded (the vendored 10k/2k subset) | \
fashion-mnist[:DIR] (full set; default DIR /usr/share/datasets/fashion-mnist) | \
idx:TRAIN_IMAGES,TRAIN_LABELS[,TEST_IMAGES,TEST_LABELS] | cifar10:DIR | folder:DIR";

/// Where the images come from (`--data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSpec {
    /// The vendored balanced Fashion-MNIST subset (10k train / 2k test).
    FashionEmbedded,
    /// The full Fashion-MNIST (60k / 10k) from a folder of IDX files.
    Fashion(Option<PathBuf>),
    /// IDX files: train images and labels, optionally test images and labels.
    Idx {
        train: (PathBuf, PathBuf),
        test: Option<(PathBuf, PathBuf)>,
    },
    /// CIFAR-10 (binary version) in a folder.
    Cifar10(PathBuf),
    /// An image folder: `DIR/train` and `DIR/val` (or `test`) of class folders, or class folders
    /// directly (then every 10th image is held out for evaluation).
    Folder(PathBuf),
}

impl std::str::FromStr for DataSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        let need = |what: &str| {
            arg.filter(|a| !a.is_empty())
                .map(PathBuf::from)
                .ok_or_else(|| format!("--data {kind} needs {what}, e.g. `{kind}:{what}`"))
        };
        match kind.to_ascii_lowercase().as_str() {
            "fashion-mnist-embedded" | "embedded" => Ok(DataSpec::FashionEmbedded),
            "fashion-mnist" | "fashion_mnist" | "fmnist" => Ok(DataSpec::Fashion(
                arg.filter(|a| !a.is_empty()).map(PathBuf::from),
            )),
            "idx" => {
                let parts: Vec<PathBuf> = arg
                    .unwrap_or("")
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .collect();
                match parts.as_slice() {
                    [a, b] => Ok(DataSpec::Idx {
                        train: (a.clone(), b.clone()),
                        test: None,
                    }),
                    [a, b, c, d] => Ok(DataSpec::Idx {
                        train: (a.clone(), b.clone()),
                        test: Some((c.clone(), d.clone())),
                    }),
                    _ => Err(
                        "--data idx: takes IMAGES,LABELS or TRAIN_IMAGES,TRAIN_LABELS,\
                              TEST_IMAGES,TEST_LABELS (comma-separated IDX files, .gz accepted)"
                            .into(),
                    ),
                }
            }
            "cifar10" | "cifar-10" => Ok(DataSpec::Cifar10(need("DIR")?)),
            "folder" => Ok(DataSpec::Folder(need("DIR")?)),
            other => Err(format!(
                "unknown data source `{other}`; use one of: {DATA_HELP}"
            )),
        }
    }
}

impl std::fmt::Display for DataSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSpec::FashionEmbedded => write!(f, "fashion-mnist-embedded"),
            DataSpec::Fashion(None) => write!(f, "fashion-mnist"),
            DataSpec::Fashion(Some(d)) => write!(f, "fashion-mnist:{}", d.display()),
            DataSpec::Idx { train, test } => {
                write!(f, "idx:{},{}", train.0.display(), train.1.display())?;
                if let Some((a, b)) = test {
                    write!(f, ",{},{}", a.display(), b.display())?;
                }
                Ok(())
            }
            DataSpec::Cifar10(d) => write!(f, "cifar10:{}", d.display()),
            DataSpec::Folder(d) => write!(f, "folder:{}", d.display()),
        }
    }
}

/// A shared, type-erased data set.
pub type Shared = Arc<dyn Dataset>;

/// Some of another data set's images, by index.
#[derive(Clone)]
pub struct Subset {
    inner: Shared,
    index: Vec<usize>,
}

impl Subset {
    pub fn new(inner: Shared, index: Vec<usize>) -> Self {
        Subset { inner, index }
    }
}

impl Dataset for Subset {
    fn len(&self) -> usize {
        self.index.len()
    }
    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }
    fn sample_shape(&self) -> Option<(usize, usize, usize)> {
        self.inner.sample_shape()
    }
    fn sample_channels(&self) -> Option<usize> {
        self.inner.sample_channels()
    }
    fn label(&self, i: usize) -> vars_data::Result<i64> {
        match self.index.get(i) {
            Some(&j) => self.inner.label(j),
            None => self.get(i).map(|(_, l)| l),
        }
    }
    fn get(&self, i: usize) -> vars_data::Result<(Image, i64)> {
        match self.index.get(i) {
            Some(&j) => self.inner.get(j),
            None => Err(vars_data::Error::InvalidImage(format!(
                "index {i} of a subset of {}",
                self.index.len()
            ))),
        }
    }
    fn class_names(&self) -> Vec<String> {
        self.inner.class_names()
    }
}

/// Images and labels computed in memory (e.g. a corrupted copy of a test set).
#[derive(Clone)]
pub struct Materialized {
    pub images: Vec<Image>,
    pub labels: Vec<i64>,
    pub classes: Vec<String>,
}

impl Dataset for Materialized {
    fn len(&self) -> usize {
        self.images.len()
    }
    fn num_classes(&self) -> usize {
        self.classes.len()
    }
    fn sample_shape(&self) -> Option<(usize, usize, usize)> {
        let first = self.images.first()?;
        let s = (first.channels(), first.height(), first.width());
        self.images
            .iter()
            .all(|i| (i.channels(), i.height(), i.width()) == s)
            .then_some(s)
    }
    fn get(&self, i: usize) -> vars_data::Result<(Image, i64)> {
        match (self.images.get(i), self.labels.get(i)) {
            (Some(im), Some(&l)) => Ok((im.clone(), l)),
            _ => Err(vars_data::Error::InvalidImage(format!(
                "index {i} of {}",
                self.images.len()
            ))),
        }
    }
    fn class_names(&self) -> Vec<String> {
        self.classes.clone()
    }
}

/// The train and test splits of a source.
pub struct Splits {
    pub train: Shared,
    pub test: Shared,
    /// How the test split was obtained (for logs).
    pub test_note: String,
    /// The images' side when every image has the same square size (`None`: sizes vary, as in
    /// image folders; the ImageNet crop makes them uniform).
    pub side: Option<usize>,
    /// Channels of the images (image folders decode to RGB).
    pub channels: usize,
    pub classes: usize,
    /// Per-channel normalisation suited to the data.
    pub normalize: Normalize,
}

fn data_err(spec: &DataSpec, e: impl std::fmt::Display) -> String {
    let hint = match spec {
        DataSpec::Fashion(_) => {
            " (get the full set with `apt-get download dataset-fashion-mnist && dpkg-deb -x \
             dataset-fashion-mnist_*.deb DIR`, then `--data fashion-mnist:DIR`)"
        }
        _ => "",
    };
    format!("cannot open --data {spec}: {e}{hint}")
}

/// Holds out every 10th image: `(train indices, test indices)`.
fn holdout(n: usize) -> (Vec<usize>, Vec<usize>) {
    (0..n).partition(|i| i % 10 != 9)
}

fn shared(d: impl Dataset + 'static) -> Shared {
    Arc::new(d)
}

/// Opens both splits.
pub fn open(spec: &DataSpec) -> Result<Splits, String> {
    let err = |e: vars_data::Error| data_err(spec, e);
    let (train, test, note): (Shared, Shared, String) = match spec {
        DataSpec::FashionEmbedded => (
            shared(InMemory::fashion_mnist_embedded(Split::Train).map_err(err)?),
            shared(InMemory::fashion_mnist_embedded(Split::Test).map_err(err)?),
            "test split".into(),
        ),
        DataSpec::Fashion(dir) => (
            shared(InMemory::fashion_mnist(dir.as_deref(), Split::Train).map_err(err)?),
            shared(InMemory::fashion_mnist(dir.as_deref(), Split::Test).map_err(err)?),
            "test split".into(),
        ),
        DataSpec::Idx { train, test } => {
            let tr = shared(InMemory::idx(&train.0, &train.1).map_err(err)?);
            match test {
                Some((a, b)) => (
                    tr,
                    shared(InMemory::idx(a, b).map_err(err)?),
                    "test files".into(),
                ),
                None => {
                    let (a, b) = holdout(tr.len());
                    (
                        shared(Subset::new(tr.clone(), a)),
                        shared(Subset::new(tr, b)),
                        "every 10th training image held out".into(),
                    )
                }
            }
        }
        DataSpec::Cifar10(dir) => (
            shared(InMemory::cifar10(dir, Split::Train).map_err(err)?),
            shared(InMemory::cifar10(dir, Split::Test).map_err(err)?),
            "test batch".into(),
        ),
        DataSpec::Folder(dir) => {
            let train_dir = dir.join("train");
            let test_dir = ["val", "test"]
                .iter()
                .map(|d| dir.join(d))
                .find(|p| p.is_dir());
            match (train_dir.is_dir(), test_dir) {
                (true, Some(t)) => (
                    shared(ImageFolder::open(&train_dir).map_err(err)?),
                    shared(ImageFolder::open(&t).map_err(err)?),
                    format!("{}", t.display()),
                ),
                _ => {
                    let all = shared(ImageFolder::open(dir).map_err(err)?);
                    let (a, b) = holdout(all.len());
                    (
                        shared(Subset::new(all.clone(), a)),
                        shared(Subset::new(all, b)),
                        "every 10th image held out".into(),
                    )
                }
            }
        }
    };
    if train.is_empty() || test.is_empty() {
        return Err(data_err(
            spec,
            format!(
                "{} training and {} test images; both splits need images",
                train.len(),
                test.len()
            ),
        ));
    }
    let (channels, side) = match train.sample_shape() {
        Some((c, h, w)) if h == w => (c, Some(h)),
        Some((c, h, w)) => {
            return Err(data_err(
                spec,
                format!("the images are {h}×{w} ({c} channels); the models take square images"),
            ))
        }
        None => (train.sample_channels().unwrap_or(3), None),
    };
    let normalize = match (spec, channels) {
        (DataSpec::FashionEmbedded | DataSpec::Fashion(_), _) => Normalize::fashion_mnist(),
        (_, 3) => Normalize::imagenet(),
        _ => Normalize {
            mean: vec![0.5],
            std: vec![0.5],
        },
    };
    Ok(Splits {
        classes: train.num_classes().max(test.num_classes()),
        side,
        channels,
        train,
        test,
        test_note: note,
        normalize,
    })
}

/// The first `n` images of a data set (all when `n` is `None` or larger).
pub fn take(ds: &Shared, n: Option<usize>) -> Shared {
    match n {
        Some(n) if n < ds.len() => shared(Subset::new(ds.clone(), (0..n).collect())),
        _ => ds.clone(),
    }
}

/// A [`Loader`] as a vars-train [`BatchSource`] on the device of backend `B`.
pub struct LoaderSource<B: Backend, D: Dataset> {
    pub loader: Loader<D>,
    pub device: B::Device,
}

impl<B: Backend, D: Dataset> LoaderSource<B, D> {
    pub fn new(loader: Loader<D>, device: &B::Device) -> Self {
        LoaderSource {
            loader,
            device: device.clone(),
        }
    }
}

/// A host batch as tensors on `device`.
pub fn to_batch<B: Backend>(b: HostBatch, device: &B::Device) -> Result<Batch<B>, BoxError> {
    let n = b.labels.len();
    let images = vars_core::Tensor::from_vec(b.images, b.shape, device)?;
    let labels = vars_core::Tensor::from_vec(b.labels, [n], device)?;
    Ok(Batch {
        images,
        targets: Targets::Labels(labels),
    })
}

impl<B: Backend, D: Dataset> BatchSource<B> for LoaderSource<B, D> {
    fn len(&self) -> usize {
        self.loader.len()
    }

    fn batch(&mut self, epoch: usize, index: usize) -> Result<Batch<B>, BoxError> {
        to_batch(self.loader.batch(epoch, index)?, &self.device)
    }
}

/// How images reach the model: the training augmentation and an optional fixed resize (applied
/// first; for fixed-size data whose side differs from the model's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pipeline {
    pub augment: Augment,
    pub resize: Option<usize>,
}

impl Pipeline {
    fn apply<D: Dataset>(&self, l: Loader<D>, augment: Augment) -> Loader<D> {
        let l = l.augment(augment);
        match self.resize {
            Some(s) => l.resize(s),
            None => l,
        }
    }
}

/// A training loader: shuffled, incomplete last batch dropped, augmented, normalised.
pub fn train_loader<D: Dataset>(
    ds: D,
    batch: usize,
    seed: u64,
    pipeline: Pipeline,
    normalize: Normalize,
    channels: usize,
) -> Loader<D> {
    let l = Loader::new(ds, batch, seed)
        .shuffle(true)
        .drop_last(true)
        .normalize(normalize)
        .channels(channels);
    pipeline.apply(l, pipeline.augment)
}

/// An evaluation loader: in order, every image, the evaluation counterpart of the augmentation
/// (none for small images, resize + centre crop for ImageNet-style data).
pub fn eval_loader<D: Dataset>(
    ds: D,
    batch: usize,
    pipeline: Pipeline,
    normalize: Normalize,
    channels: usize,
) -> Loader<D> {
    let l = Loader::new(ds, batch, 0)
        .shuffle(false)
        .drop_last(false)
        .normalize(normalize)
        .channels(channels);
    pipeline.apply(l, pipeline.augment.eval())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_specs_parse() {
        assert_eq!(
            "fashion-mnist-embedded".parse::<DataSpec>().unwrap(),
            DataSpec::FashionEmbedded
        );
        assert_eq!(
            "fashion-mnist".parse::<DataSpec>().unwrap(),
            DataSpec::Fashion(None)
        );
        assert_eq!(
            "fashion-mnist:/x".parse::<DataSpec>().unwrap(),
            DataSpec::Fashion(Some("/x".into()))
        );
        assert!(matches!(
            "idx:a,b".parse::<DataSpec>().unwrap(),
            DataSpec::Idx { test: None, .. }
        ));
        assert!(matches!(
            "idx:a,b,c,d".parse::<DataSpec>().unwrap(),
            DataSpec::Idx { test: Some(_), .. }
        ));
        assert!("idx:a".parse::<DataSpec>().is_err());
        assert!("cifar10".parse::<DataSpec>().unwrap_err().contains("DIR"));
        assert!("mnist"
            .parse::<DataSpec>()
            .unwrap_err()
            .contains("unknown data source"));
        for s in ["fashion-mnist:/x", "idx:a,b,c,d", "cifar10:/c", "folder:/f"] {
            assert_eq!(s.parse::<DataSpec>().unwrap().to_string(), s);
        }
    }
}
