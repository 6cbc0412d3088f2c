//! [`InMemory`]: fixed-size u8 images and labels in one buffer (Fashion-MNIST, IDX, CIFAR-10).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Dataset, Split};
use crate::error::{Error, Result};
use crate::idx::IdxArray;
use crate::image::Image;

/// Fashion-MNIST's class names, indexed by label (torchvision's spelling).
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// CIFAR-10's class names, indexed by label (`batches.meta.txt` of the binary version).
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const FASHION_MNIST_DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// One CIFAR-10 record: a label byte, then 32·32 red, 32·32 green and 32·32 blue bytes.
const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

// The balanced Fashion-MNIST subset vendored in `data/fashion-mnist-subset` (MIT, see its
// README): 10,000 train / 2,000 test images, 1,000 / 200 per class.
macro_rules! subset_file {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/fashion-mnist-subset/",
            $name
        ))
    };
}
static EMBEDDED_TRAIN_IMAGES: &[u8] = subset_file!("train-images-idx3-ubyte.gz");
static EMBEDDED_TRAIN_LABELS: &[u8] = subset_file!("train-labels-idx1-ubyte.gz");
static EMBEDDED_TEST_IMAGES: &[u8] = subset_file!("test-images-idx3-ubyte.gz");
static EMBEDDED_TEST_LABELS: &[u8] = subset_file!("test-labels-idx1-ubyte.gz");

/// Fixed-size u8 images (`HWC`, 1 or 3 channels) and `i64` labels, all in memory.
///
/// Cloning copies the pixels; [`InMemory::subset`] copies the selected ones.
#[derive(Clone)]
pub struct InMemory {
    pixels: Vec<u8>,
    height: usize,
    width: usize,
    channels: usize,
    labels: Vec<i64>,
    class_names: Vec<String>,
    source: String,
}

impl std::fmt::Debug for InMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "InMemory({} images {}x{}x{}, {} classes, from {})",
            self.labels.len(),
            self.height,
            self.width,
            self.channels,
            self.class_names.len(),
            self.source
        )
    }
}

fn dataset_err(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
    Error::Dataset {
        path: path.into(),
        message: message.into(),
    }
}

fn gunzip_if_needed(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| Error::Idx {
                path: path.to_path_buf(),
                message: format!(
                    "gzip: {e} (the file is truncated or corrupt; download or extract it again)"
                ),
            })?;
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
}

impl InMemory {
    /// Wraps `n` images of `height × width × channels` bytes each (`HWC`, concatenated) and their
    /// labels. Errors when the sizes do not match, `channels` is not 1 or 3, or a label is
    /// outside `0..class_names.len()`.
    pub fn from_raw(
        pixels: Vec<u8>,
        (height, width, channels): (usize, usize, usize),
        labels: Vec<i64>,
        class_names: Vec<String>,
    ) -> Result<Self> {
        Self::build(
            pixels,
            (height, width, channels),
            labels,
            class_names,
            "<memory>".into(),
        )
    }

    /// Packs equally sized images and their labels.
    pub fn from_images(
        images: &[Image],
        labels: Vec<i64>,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let first = images
            .first()
            .ok_or_else(|| dataset_err("<memory>", "no images"))?;
        let (h, w, c) = (first.height(), first.width(), first.channels());
        let mut pixels = Vec::with_capacity(images.len() * h * w * c);
        for (i, im) in images.iter().enumerate() {
            if (im.height(), im.width(), im.channels()) != (h, w, c) {
                return Err(dataset_err(
                    "<memory>",
                    format!("image {i} is {im:?} but image 0 is {first:?}; all must match"),
                ));
            }
            pixels.extend_from_slice(im.data());
        }
        Self::from_raw(pixels, (h, w, c), labels, class_names)
    }

    fn build(
        pixels: Vec<u8>,
        (height, width, channels): (usize, usize, usize),
        labels: Vec<i64>,
        class_names: Vec<String>,
        source: String,
    ) -> Result<Self> {
        if channels != 1 && channels != 3 {
            return Err(dataset_err(
                &source,
                format!("{channels} channels; images must be grey (1) or RGB (3)"),
            ));
        }
        if height == 0 || width == 0 || height > crate::MAX_SIDE || width > crate::MAX_SIDE {
            return Err(dataset_err(
                &source,
                format!("image size {height}x{width} is not usable"),
            ));
        }
        let per = height * width * channels;
        if pixels.len() != labels.len() * per {
            return Err(dataset_err(
                &source,
                format!(
                    "{} pixel bytes for {} labels of {height}x{width}x{channels} images (need {})",
                    pixels.len(),
                    labels.len(),
                    labels.len() * per
                ),
            ));
        }
        let k = class_names.len() as i64;
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l < 0 || l >= k) {
            return Err(dataset_err(
                &source,
                format!("label {l} of sample {i} is outside 0..{k} (the number of classes)"),
            ));
        }
        Ok(InMemory {
            pixels,
            height,
            width,
            channels,
            labels,
            class_names,
            source,
        })
    }

    /// The embedded balanced Fashion-MNIST subset (`data/fashion-mnist-subset`, MIT): 10,000
    /// training images (1,000 per class) or 2,000 test images (200 per class), 28×28 grey, in
    /// the official files' order. Needs no files at run time.
    pub fn fashion_mnist_embedded(split: Split) -> Result<Self> {
        let (img, lab, name) = match split {
            Split::Train => (
                EMBEDDED_TRAIN_IMAGES,
                EMBEDDED_TRAIN_LABELS,
                "<embedded>/train-images-idx3-ubyte.gz",
            ),
            Split::Test => (
                EMBEDDED_TEST_IMAGES,
                EMBEDDED_TEST_LABELS,
                "<embedded>/test-images-idx3-ubyte.gz",
            ),
        };
        let img_path = Path::new(name);
        let lab_path = PathBuf::from(name.replace("images-idx3", "labels-idx1"));
        let images = IdxArray::parse(&gunzip_if_needed(img, img_path)?, img_path)?;
        let labels = IdxArray::parse(&gunzip_if_needed(lab, &lab_path)?, &lab_path)?;
        Self::from_idx_arrays(
            images,
            labels,
            img_path,
            &lab_path,
            Some(&FASHION_MNIST_CLASSES),
            Some((28, 28)),
        )
        .map(|mut d| {
            d.source = format!("embedded Fashion-MNIST subset ({})", split.name());
            d
        })
    }

    /// The full Fashion-MNIST (60,000 train / 10,000 test, 28×28 grey) from `dir`, or, with
    /// `None`, from the Debian install path [`FASHION_MNIST_DEBIAN_DIR`].
    ///
    /// `dir` may be the folder holding the files, or the root of a `dpkg-deb -x` extraction (the
    /// files then lie under `usr/share/datasets/fashion-mnist/`). Files are
    /// `{train,t10k}-{images-idx3,labels-idx1}-ubyte`, plain or `.gz` (also accepted: the `.`
    /// spelling `train-images.idx3-ubyte` and the `test-` prefix for the test split). A missing
    /// set is an error that says how to install it.
    pub fn fashion_mnist(dir: Option<&Path>, split: Split) -> Result<Self> {
        let candidates: Vec<PathBuf> = match dir {
            Some(d) => vec![
                d.to_path_buf(),
                d.join("usr/share/datasets/fashion-mnist"),
                d.join("fashion-mnist"),
            ],
            None => vec![PathBuf::from(FASHION_MNIST_DEBIAN_DIR)],
        };
        let prefixes: &[&str] = match split {
            Split::Train => &["train"],
            Split::Test => &["t10k", "test"],
        };
        let find = |folder: &Path, kind: &str, idx: &str| -> Option<PathBuf> {
            for p in prefixes {
                for sep in ["-", "."] {
                    for ext in ["", ".gz"] {
                        let f = folder.join(format!("{p}-{kind}{sep}{idx}-ubyte{ext}"));
                        if f.is_file() {
                            return Some(f);
                        }
                    }
                }
            }
            None
        };
        for folder in &candidates {
            let images = find(folder, "images", "idx3");
            let labels = find(folder, "labels", "idx1");
            match (images, labels) {
                (Some(i), Some(l)) => {
                    let mut d =
                        Self::read_idx_pair(&i, &l, Some(&FASHION_MNIST_CLASSES), Some((28, 28)))?;
                    d.source = format!("Fashion-MNIST {} ({})", split.name(), folder.display());
                    return Ok(d);
                }
                (Some(i), None) => {
                    return Err(dataset_err(
                        folder,
                        format!(
                            "found {} but no {}-labels-idx1-ubyte[.gz] next to it; the labels \
                             file is missing (reinstall `dataset-fashion-mnist` or copy it there)",
                            i.display(),
                            prefixes[0]
                        ),
                    ))
                }
                (None, Some(l)) => {
                    return Err(dataset_err(
                        folder,
                        format!(
                            "found {} but no {}-images-idx3-ubyte[.gz] next to it; the images \
                             file is missing (reinstall `dataset-fashion-mnist` or copy it there)",
                            l.display(),
                            prefixes[0]
                        ),
                    ))
                }
                (None, None) => {}
            }
        }
        let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
        Err(dataset_err(
            &candidates[0],
            format!(
                "Fashion-MNIST ({split}) not found: no {p}-images-idx3-ubyte[.gz] / \
                 {p}-labels-idx1-ubyte[.gz] in {looked}. Install the Debian package with \
                 `apt-get install dataset-fashion-mnist` (files go to {FASHION_MNIST_DEBIAN_DIR}), \
                 or without root `apt-get download dataset-fashion-mnist && dpkg-deb -x \
                 dataset-fashion-mnist_*.deb DIR` and pass DIR. The embedded 10k/2k subset needs \
                 no setup.",
                split = split.name(),
                p = prefixes[0],
                looked = looked.join(", "),
            ),
        ))
    }

    /// An IDX image file (`(n, h, w)` grey, `(n, h, w, 1)` or `(n, h, w, 3)`) and an IDX label
    /// file (`(n)`), plain or gzip-compressed. Classes are `0..=max label`, named by number.
    pub fn idx(images: &Path, labels: &Path) -> Result<Self> {
        Self::read_idx_pair(images, labels, None, None)
    }

    fn read_idx_pair(
        images: &Path,
        labels: &Path,
        names: Option<&[&str]>,
        size: Option<(usize, usize)>,
    ) -> Result<Self> {
        let img = IdxArray::read(images)?;
        let lab = IdxArray::read(labels)?;
        let mut d = Self::from_idx_arrays(img, lab, images, labels, names, size)?;
        d.source = images.display().to_string();
        Ok(d)
    }

    fn from_idx_arrays(
        images: IdxArray,
        labels: IdxArray,
        images_path: &Path,
        labels_path: &Path,
        names: Option<&[&str]>,
        size: Option<(usize, usize)>,
    ) -> Result<Self> {
        let idx_err = |path: &Path, message: String| Error::Idx {
            path: path.to_path_buf(),
            message,
        };
        let (n, h, w, c) = images.image_shape().map_err(|_| {
            idx_err(
                images_path,
                format!(
                    "dims {:?} are not images; expected (n, h, w), (n, h, w, 1) or (n, h, w, 3) \
                     — is this a labels file?",
                    images.dims
                ),
            )
        })?;
        if let Some((eh, ew)) = size {
            if (h, w) != (eh, ew) {
                return Err(idx_err(
                    images_path,
                    format!("images are {h}x{w}, expected {eh}x{ew}"),
                ));
            }
        }
        if labels.dims.len() != 1 {
            return Err(idx_err(
                labels_path,
                format!(
                    "dims {:?} are not labels; expected one dimension (n) — is this an images \
                     file?",
                    labels.dims
                ),
            ));
        }
        if labels.dims[0] != n {
            return Err(idx_err(
                labels_path,
                format!(
                    "{} labels for {n} images in {}; the two files do not belong together",
                    labels.dims[0],
                    images_path.display()
                ),
            ));
        }
        let class_names: Vec<String> = match names {
            Some(names) => {
                if let Some((i, &l)) = labels
                    .data
                    .iter()
                    .enumerate()
                    .find(|(_, &l)| l as usize >= names.len())
                {
                    return Err(idx_err(
                        labels_path,
                        format!(
                            "label {l} of sample {i} is outside 0..{} (the number of classes)",
                            names.len()
                        ),
                    ));
                }
                names.iter().map(|s| s.to_string()).collect()
            }
            None => {
                let k = labels
                    .data
                    .iter()
                    .copied()
                    .max()
                    .map_or(0, |m| m as usize + 1);
                (0..k).map(|i| i.to_string()).collect()
            }
        };
        let label_vec = labels.data.iter().map(|&l| l as i64).collect();
        Self::build(
            images.data,
            (h, w, c),
            label_vec,
            class_names,
            images_path.display().to_string(),
        )
    }

    /// CIFAR-10 in its binary format (`cifar-10-binary.tar.gz` from
    /// <https://www.cs.toronto.edu/~kriz/cifar.html>, extracted): `data_batch_1.bin` …
    /// `data_batch_5.bin` (train) or `test_batch.bin` (test) in `dir` or in
    /// `dir/cifar-10-batches-bin`. Each record is 1 label byte (0–9) and 3,072 pixel bytes (red,
    /// green, blue planes of 32×32); files must hold a whole number of records. Class names come
    /// from `batches.meta.txt` when present.
    pub fn cifar10(dir: &Path, split: Split) -> Result<Self> {
        let names: Vec<&str> = match split {
            Split::Train => vec![
                "data_batch_1.bin",
                "data_batch_2.bin",
                "data_batch_3.bin",
                "data_batch_4.bin",
                "data_batch_5.bin",
            ],
            Split::Test => vec!["test_batch.bin"],
        };
        let folder = [dir.to_path_buf(), dir.join("cifar-10-batches-bin")]
            .into_iter()
            .find(|f| f.join(names[0]).is_file())
            .ok_or_else(|| {
                dataset_err(
                    dir,
                    format!(
                        "CIFAR-10 ({}) not found: no {} in this folder or in its \
                         cifar-10-batches-bin/. Download cifar-10-binary.tar.gz (the binary \
                         version) from https://www.cs.toronto.edu/~kriz/cifar.html, extract it \
                         and pass the cifar-10-batches-bin folder",
                        split.name(),
                        names[0]
                    ),
                )
            })?;
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for name in &names {
            let path = folder.join(name);
            let bytes = std::fs::read(&path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    dataset_err(
                        &path,
                        format!(
                            "missing: the {} split needs {}; extract cifar-10-binary.tar.gz again",
                            split.name(),
                            names.join(", ")
                        ),
                    )
                } else {
                    Error::io("cannot read CIFAR-10 file", &path, e)
                }
            })?;
            if bytes.is_empty() || bytes.len() % CIFAR_RECORD != 0 {
                return Err(dataset_err(
                    &path,
                    format!(
                        "{} bytes is not a whole number of CIFAR-10 records (1 label byte + \
                         3,072 pixel bytes = {CIFAR_RECORD} each; a full file is 10,000 records, \
                         30,730,000 bytes): the file is truncated or not the binary version \
                         (the Python pickles cifar-10-python.tar.gz are not supported)",
                        bytes.len()
                    ),
                ));
            }
            pixels.reserve(bytes.len() / CIFAR_RECORD * 3072);
            for (r, rec) in bytes.chunks_exact(CIFAR_RECORD).enumerate() {
                if rec[0] > 9 {
                    return Err(dataset_err(
                        &path,
                        format!(
                            "record {r} has label {} (CIFAR-10 labels are 0–9): not a CIFAR-10 \
                             binary file (CIFAR-100's has two label bytes per record)",
                            rec[0]
                        ),
                    ));
                }
                labels.push(rec[0] as i64);
                let planes = &rec[1..];
                for i in 0..1024 {
                    pixels.extend_from_slice(&[planes[i], planes[1024 + i], planes[2048 + i]]);
                }
            }
        }
        let class_names = std::fs::read_to_string(folder.join("batches.meta.txt"))
            .ok()
            .map(|s| {
                s.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .filter(|v| v.len() == 10)
            .unwrap_or_else(|| CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect());
        Self::build(
            pixels,
            (32, 32, 3),
            labels,
            class_names,
            format!("CIFAR-10 {} ({})", split.name(), folder.display()),
        )
    }

    /// The samples at `indices` (in that order, repeats allowed), as a new data set with the
    /// same classes.
    ///
    /// # Panics
    /// When an index is `>= len()`, like slice indexing; [`InMemory::try_subset`] returns an
    /// error instead.
    pub fn subset(&self, indices: &[usize]) -> Self {
        match self.try_subset(indices) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`InMemory::subset`] that returns an error for an out-of-range index.
    pub fn try_subset(&self, indices: &[usize]) -> Result<Self> {
        let n = self.labels.len();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(Error::Pipeline(format!(
                "subset index {bad} is out of range for {} ({n} samples)",
                self.source
            )));
        }
        let per = self.sample_bytes();
        let mut pixels = Vec::with_capacity(indices.len() * per);
        for &i in indices {
            pixels.extend_from_slice(&self.pixels[i * per..(i + 1) * per]);
        }
        Ok(InMemory {
            pixels,
            height: self.height,
            width: self.width,
            channels: self.channels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            class_names: self.class_names.clone(),
            source: format!("subset of {}", self.source),
        })
    }

    /// A seeded stratified split: from each class, `round(fraction · count)` samples (chosen by
    /// a seeded permutation, [`crate::pipeline::seed::permutation`]) go to the second part, the
    /// rest to the first; both keep the original order. For a validation hold-out of a training
    /// set (`datasets.md`, "Splits").
    pub fn stratified_split(&self, fraction: f64, seed: u64) -> Result<(Self, Self)> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(Error::Pipeline(format!(
                "split fraction {fraction} is outside [0, 1]"
            )));
        }
        let mut held = vec![false; self.labels.len()];
        for class in 0..self.class_names.len() {
            let members: Vec<usize> = (0..self.labels.len())
                .filter(|&i| self.labels[i] == class as i64)
                .collect();
            let take = (fraction * members.len() as f64).round() as usize;
            let perm = crate::pipeline::seed::permutation(
                members.len(),
                crate::rng::sub_seed(seed, class as u64),
            );
            for &p in &perm[..take] {
                held[members[p]] = true;
            }
        }
        let (a, b): (Vec<usize>, Vec<usize>) = (0..self.labels.len()).partition(|&i| !held[i]);
        Ok((self.try_subset(&a)?, self.try_subset(&b)?))
    }

    /// Bytes per image (`height · width · channels`).
    pub fn sample_bytes(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// All labels.
    pub fn labels(&self) -> &[i64] {
        &self.labels
    }

    /// All pixels, image after image (`HWC` each).
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Where the data came from (for messages).
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl Dataset for InMemory {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    fn sample_shape(&self) -> Option<(usize, usize, usize)> {
        Some((self.channels, self.height, self.width))
    }

    fn get(&self, index: usize) -> Result<(Image, i64)> {
        let label = self.label(index)?;
        let per = self.sample_bytes();
        let data = self.pixels[index * per..(index + 1) * per].to_vec();
        Ok((
            Image::new(self.width, self.height, self.channels, data)?,
            label,
        ))
    }

    fn label(&self, index: usize) -> Result<i64> {
        self.labels.get(index).copied().ok_or_else(|| {
            Error::Pipeline(format!(
                "sample {index} is out of range for {} ({} samples)",
                self.source,
                self.labels.len()
            ))
        })
    }

    fn class_names(&self) -> Vec<String> {
        self.class_names.clone()
    }
}
