//! Writes a corrupted copy of a data set, as ImageNet-C / CIFAR-10-C were made (protocol §1).
//!
//! - **Image folders** (any depth, e.g. ImageFolder's `class/file`): every PNG/JPEG under the
//!   input, sorted by relative path, is written to `OUT/<corruption>/<severity>/<relative path>`
//!   (the ImageNet-C layout). Optionally resized (shorter side, PIL bilinear) and centre-cropped
//!   first (ImageNet-C: 256 then 224). Saved as JPEG quality 85 by default, ImageNet-C's extra round
//!   trip (quirk 10); PNG on request.
//! - **IDX files** (MNIST, Fashion-MNIST; `.gz` accepted): one IDX file per corruption and
//!   severity, `OUT/<corruption>/<severity>/<input name without .gz>`, images in the input's order
//!   (the CIFAR-10-C convention of one array per corruption, without a JPEG step). Grey stays grey.
//!
//! Image `i` (its index in the sorted file list, or in the IDX array) is corrupted with the seed
//! [`crate::rng::image_seed`]`(seed, corruption, severity, i)`, so a set is reproducible from its
//! base seed; `OUT/make-c.json` records the settings and, for folders, `OUT/index.tsv` the
//! index → file mapping. Work runs on the rayon pool, one image per task.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::corruptions::{corrupt, Corruption, ParamSet};
use crate::error::{Error, Result};
use crate::idx::IdxArray;
use crate::image::Image;
use crate::io::{read_image, write_image_as, Format};
use crate::rng::image_seed;

/// Output format of image-folder sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// JPEG at this quality (ImageNet-C: 85). Files keep a `.jpg`/`.jpeg`/`.JPEG` extension, other
    /// inputs get `.jpg`.
    Jpeg { quality: u8 },
    /// Lossless PNG (extension `.png`).
    Png,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct MakeCConfig {
    /// An image folder or an IDX file.
    pub input: PathBuf,
    /// Output root.
    pub output: PathBuf,
    /// Corruptions to write.
    pub corruptions: Vec<Corruption>,
    /// Severities to write (each 1..=5).
    pub severities: Vec<u8>,
    /// Parameter table; `None` applies the size rule ([`ParamSet::for_size`]) per image.
    pub params: Option<ParamSet>,
    /// Base seed.
    pub seed: u64,
    /// Image folders: output format.
    pub format: OutputFormat,
    /// Image folders: resize the shorter side to this before corrupting.
    pub resize: Option<usize>,
    /// Image folders: centre-crop to this square before corrupting.
    pub crop: Option<usize>,
    /// IDX: gzip the outputs.
    pub gzip: bool,
}

impl MakeCConfig {
    /// Defaults: all 19 corruptions, severities 1–5, size rule, seed 0, JPEG q85, no resize or
    /// crop, no gzip.
    pub fn new(input: impl Into<PathBuf>, output: impl Into<PathBuf>) -> Self {
        MakeCConfig {
            input: input.into(),
            output: output.into(),
            corruptions: Corruption::all().collect(),
            severities: vec![1, 2, 3, 4, 5],
            params: None,
            seed: 0,
            format: OutputFormat::Jpeg { quality: 85 },
            resize: None,
            crop: None,
            gzip: false,
        }
    }
}

enum Source {
    Folder(Vec<PathBuf>),
    Idx(IdxArray),
}

/// A scanned input, ready to run.
pub struct MakeC {
    cfg: MakeCConfig,
    source: Source,
}

/// What [`MakeC::run`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Input images.
    pub images: usize,
    /// Corrupted images written (images × corruptions × severities).
    pub written: u64,
    /// Files written (images, or IDX arrays).
    pub files: usize,
}

fn dataset_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Dataset {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn is_image(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot list folder", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list folder", dir, e))?;
        let path = entry.path();
        let ty = entry
            .file_type()
            .map_err(|e| Error::io("cannot stat", &path, e))?;
        if ty.is_dir() {
            walk(root, &path, out)?;
        } else if is_image(&path) {
            out.push(
                path.strip_prefix(root)
                    .expect("walked under root")
                    .to_path_buf(),
            );
        }
    }
    Ok(())
}

impl MakeC {
    /// Checks the configuration and scans the input (an IDX file is read whole).
    pub fn new(cfg: MakeCConfig) -> Result<MakeC> {
        if cfg.corruptions.is_empty() || cfg.severities.is_empty() {
            return Err(dataset_err(
                &cfg.input,
                "nothing to do: no corruptions or no severities selected",
            ));
        }
        for &s in &cfg.severities {
            crate::corruptions::severity_index(s)?;
        }
        if let OutputFormat::Jpeg { quality } = cfg.format {
            if !(1..=100).contains(&quality) {
                return Err(dataset_err(
                    &cfg.input,
                    format!("JPEG quality {quality} is outside 1..=100"),
                ));
            }
        }
        let meta = std::fs::metadata(&cfg.input)
            .map_err(|e| Error::io("cannot open input", &cfg.input, e))?;
        let source = if meta.is_dir() {
            let mut files = Vec::new();
            walk(&cfg.input, &cfg.input, &mut files)?;
            files.sort();
            if files.is_empty() {
                return Err(dataset_err(
                    &cfg.input,
                    "no .png/.jpg/.jpeg files under this folder",
                ));
            }
            Source::Folder(files)
        } else {
            let arr = IdxArray::read(&cfg.input)?;
            arr.image_shape()
                .map_err(|e| dataset_err(&cfg.input, e.to_string()))?;
            if cfg.resize.is_some() || cfg.crop.is_some() {
                return Err(dataset_err(&cfg.input, "resize/crop apply to image folders only; IDX images are corrupted at their native size"));
            }
            Source::Idx(arr)
        };
        if cfg.output.starts_with(&cfg.input) && meta.is_dir() {
            return Err(dataset_err(
                &cfg.output,
                "the output folder must not be inside the input folder",
            ));
        }
        Ok(MakeC { cfg, source })
    }

    /// Number of input images.
    pub fn images(&self) -> usize {
        match &self.source {
            Source::Folder(f) => f.len(),
            Source::Idx(a) => a.dims[0],
        }
    }

    /// Number of corrupted images the run writes.
    pub fn total(&self) -> u64 {
        (self.images() * self.cfg.corruptions.len() * self.cfg.severities.len()) as u64
    }

    fn params_for(&self, img: &Image) -> ParamSet {
        self.cfg
            .params
            .unwrap_or_else(|| ParamSet::for_size(img.width(), img.height()))
    }

    fn out_name(&self, rel: &Path) -> PathBuf {
        match self.cfg.format {
            OutputFormat::Png => rel.with_extension("png"),
            OutputFormat::Jpeg { .. } => {
                let ext = rel.extension().and_then(|e| e.to_str()).unwrap_or("");
                if ext.eq_ignore_ascii_case("jpg") || ext.eq_ignore_ascii_case("jpeg") {
                    rel.to_path_buf()
                } else {
                    rel.with_extension("jpg")
                }
            }
        }
    }

    fn load(&self, rel: &Path) -> Result<Image> {
        let mut img = read_image(self.cfg.input.join(rel))?;
        if let Some(side) = self.cfg.resize {
            img = img.resize_shorter_side(side)?;
        }
        if let Some(size) = self.cfg.crop {
            img = img
                .center_crop(size)
                .map_err(|e| dataset_err(&self.cfg.input.join(rel), e.to_string()))?;
        }
        Ok(img)
    }

    /// Generates everything; `progress(n)` is called (from worker threads) each time `n` more
    /// corrupted images are done.
    pub fn run(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<Summary> {
        std::fs::create_dir_all(&self.cfg.output)
            .map_err(|e| Error::io("cannot create folder", &self.cfg.output, e))?;
        let written = AtomicU64::new(0);
        let files = match &self.source {
            Source::Folder(list) => {
                let format = match self.cfg.format {
                    OutputFormat::Png => Format::Png,
                    OutputFormat::Jpeg { quality } => Format::Jpeg { quality },
                };
                list.par_iter()
                    .enumerate()
                    .try_for_each(|(i, rel)| -> Result<()> {
                        let img = self.load(rel)?;
                        let set = self.params_for(&img);
                        let name = self.out_name(rel);
                        for &c in &self.cfg.corruptions {
                            for &s in &self.cfg.severities {
                                let out = corrupt(
                                    &img,
                                    c,
                                    s,
                                    set,
                                    image_seed(self.cfg.seed, c, s, i as u64),
                                )?;
                                let path = self
                                    .cfg
                                    .output
                                    .join(c.name())
                                    .join(s.to_string())
                                    .join(&name);
                                write_image_as(&path, &out, format)?;
                                written.fetch_add(1, Ordering::Relaxed);
                                progress(1);
                            }
                        }
                        Ok(())
                    })?;
                self.write_index(list)?;
                list.len() * self.cfg.corruptions.len() * self.cfg.severities.len()
            }
            Source::Idx(arr) => {
                let (n, ..) = arr.image_shape()?;
                let file_name = self.idx_name();
                for &c in &self.cfg.corruptions {
                    for &s in &self.cfg.severities {
                        let out: Vec<Image> = (0..n)
                            .into_par_iter()
                            .map(|i| {
                                let img = arr.image(i)?;
                                let set = self.params_for(&img);
                                let r = corrupt(
                                    &img,
                                    c,
                                    s,
                                    set,
                                    image_seed(self.cfg.seed, c, s, i as u64),
                                );
                                written.fetch_add(1, Ordering::Relaxed);
                                progress(1);
                                r
                            })
                            .collect::<Result<_>>()?;
                        let mut packed = IdxArray::from_images(&out)?;
                        packed.dims = arr.dims.clone(); // keep (n, h, w) vs (n, h, w, 1)
                        packed.write(
                            self.cfg
                                .output
                                .join(c.name())
                                .join(s.to_string())
                                .join(&file_name),
                            self.cfg.gzip,
                        )?;
                    }
                }
                self.cfg.corruptions.len() * self.cfg.severities.len()
            }
        };
        self.write_manifest()?;
        Ok(Summary {
            images: self.images(),
            written: written.into_inner(),
            files,
        })
    }

    fn idx_name(&self) -> String {
        let name = self
            .cfg
            .input
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("images-idx-ubyte");
        let stem = name.strip_suffix(".gz").unwrap_or(name);
        if self.cfg.gzip {
            format!("{stem}.gz")
        } else {
            stem.to_string()
        }
    }

    fn write_index(&self, list: &[PathBuf]) -> Result<()> {
        let mut s = String::from("# index\tinput file (relative); image i is seeded with image_seed(seed, corruption, severity, i)\n");
        for (i, rel) in list.iter().enumerate() {
            s.push_str(&format!("{i}\t{}\n", rel.display()));
        }
        let path = self.cfg.output.join("index.tsv");
        std::fs::write(&path, s).map_err(|e| Error::io("cannot write", &path, e))
    }

    fn write_manifest(&self) -> Result<()> {
        let cfg = &self.cfg;
        let list = |v: Vec<String>| format!("[{}]", v.join(", "));
        let (layout, format) = match (&self.source, cfg.format) {
            (Source::Idx(_), _) => (
                "idx",
                if cfg.gzip {
                    "idx.gz".to_string()
                } else {
                    "idx".to_string()
                },
            ),
            (Source::Folder(_), OutputFormat::Png) => ("folder", "png".to_string()),
            (Source::Folder(_), OutputFormat::Jpeg { quality }) => {
                ("folder", format!("jpeg q{quality} 4:2:0"))
            }
        };
        let opt = |v: Option<usize>| v.map_or("null".to_string(), |v| v.to_string());
        let json = format!(
            "{{\n  \"tool\": \"vars make-c\",\n  \"version\": \"{}\",\n  \"input\": {},\n  \"layout\": \"{layout}\",\n  \"images\": {},\n  \"corruptions\": {},\n  \"severities\": {},\n  \"params\": \"{}\",\n  \"seed\": {},\n  \"seed_scheme\": \"vars_data::rng::image_seed v1: mix64 chain of (seed, fnv1a(corruption), severity, index)\",\n  \"format\": \"{format}\",\n  \"resize_shorter_side\": {},\n  \"center_crop\": {}\n}}\n",
            env!("CARGO_PKG_VERSION"),
            json_string(&cfg.input.display().to_string()),
            self.images(),
            list(cfg.corruptions.iter().map(|c| format!("\"{}\"", c.name())).collect()),
            list(cfg.severities.iter().map(|s| s.to_string()).collect()),
            cfg.params.map_or("auto (size rule)", |p| p.name()),
            cfg.seed,
            opt(cfg.resize),
            opt(cfg.crop),
        );
        let path = cfg.output.join("make-c.json");
        std::fs::write(&path, json).map_err(|e| Error::io("cannot write", &path, e))
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
