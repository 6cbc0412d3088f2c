//! [`ImageFolder`]: torchvision's `datasets.ImageFolder` layout, decoded on demand.

use std::path::{Path, PathBuf};

use super::Dataset;
use crate::error::{Error, Result};
use crate::image::Image;

/// Extensions (lower-cased) of the files an [`ImageFolder`] picks up.
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Folder nesting followed below each class folder (guards against symlink cycles).
const MAX_DEPTH: usize = 32;

/// A data set in torchvision's `ImageFolder` layout: `root/<class>/**/<image>.{png,jpg,jpeg}`.
///
/// - Classes are the sub-folders of `root`, sorted by name (byte order, as Python sorts `str`);
///   label `k` is the `k`-th name. Files directly in `root` are ignored.
/// - Samples are found by walking each class folder recursively (following symlinks), folders
///   sorted by path, files sorted by name within a folder — torchvision's `make_dataset` order.
///   The extension test ignores case (`.JPG` counts); other files are skipped.
/// - Nothing is decoded at [`ImageFolder::open`]: [`Dataset::get`] reads and decodes the file
///   (PNG or JPEG, sniffed from the content) and converts it to RGB, as torchvision's default
///   loader (`Image.convert("RGB")`) does — grey files come back with three equal channels. Use
///   `Loader::channels(1)` for grey batches.
/// - Images may have any size, so [`Dataset::sample_shape`] is `None`; the loader's resize or
///   crop (e.g. `Augment::ImageNet`) makes batches uniform.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    samples: Vec<(PathBuf, i64)>,
}

fn folder_err(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
    Error::Dataset {
        path: path.into(),
        message: message.into(),
    }
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Every image file under `dir`, in torchvision's order: `sorted(os.walk(dir))`, files sorted
/// within each folder.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut folders: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((folder, depth)) = stack.pop() {
        let entries =
            std::fs::read_dir(&folder).map_err(|e| Error::io("cannot list folder", &folder, e))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("cannot list folder", &folder, e))?;
            let path = entry.path();
            // follow symlinks, like os.walk(followlinks=True); broken links are skipped
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if depth + 1 > MAX_DEPTH {
                    return Err(folder_err(
                        &path,
                        format!(
                            "folders nest deeper than {MAX_DEPTH} levels below the class folder \
                             (a symlink cycle?)"
                        ),
                    ));
                }
                stack.push((path, depth + 1));
            } else if meta.is_file() && has_image_extension(&path) {
                files.push(path);
            }
        }
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        folders.push((folder, files));
    }
    folders.sort_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
    Ok(folders.into_iter().flat_map(|(_, f)| f).collect())
}

impl ImageFolder {
    /// Scans `root` (see the type's docs). Errors when `root` is not a readable folder, has no
    /// class folders, or a class folder holds no PNG/JPEG file (torchvision raises then too).
    pub fn open(root: &Path) -> Result<Self> {
        let meta =
            std::fs::metadata(root).map_err(|e| Error::io("cannot open data set", root, e))?;
        if !meta.is_dir() {
            return Err(folder_err(
                root,
                "not a folder: an image folder is root/<class>/<image>.{png,jpg,jpeg}",
            ));
        }
        let mut classes: Vec<(String, PathBuf)> = Vec::new();
        let entries =
            std::fs::read_dir(root).map_err(|e| Error::io("cannot list folder", root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("cannot list folder", root, e))?;
            let path = entry.path();
            if std::fs::metadata(&path)
                .map(|m| m.is_dir())
                .unwrap_or(false)
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                classes.push((name, path));
            }
        }
        if classes.is_empty() {
            return Err(folder_err(
                root,
                "no class folders: the layout is root/<class>/<image>.{png,jpg,jpeg}, one \
                 sub-folder per class",
            ));
        }
        classes.sort_by(|a, b| a.1.file_name().cmp(&b.1.file_name()));
        let mut samples = Vec::new();
        let mut empty = Vec::new();
        for (label, (name, path)) in classes.iter().enumerate() {
            let files = walk(path)?;
            if files.is_empty() {
                empty.push(name.clone());
            }
            samples.extend(files.into_iter().map(|f| (f, label as i64)));
        }
        if !empty.is_empty() {
            return Err(folder_err(
                root,
                format!(
                    "no .png/.jpg/.jpeg file in the class folder(s) {}: remove them or add images",
                    empty.join(", ")
                ),
            ));
        }
        Ok(ImageFolder {
            root: root.to_path_buf(),
            classes: classes.into_iter().map(|(n, _)| n).collect(),
            samples,
        })
    }

    /// The folder this set was opened from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every sample's file and label, in sample order.
    pub fn samples(&self) -> &[(PathBuf, i64)] {
        &self.samples
    }
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.samples.len()
    }

    fn num_classes(&self) -> usize {
        self.classes.len()
    }

    fn sample_channels(&self) -> Option<usize> {
        Some(3)
    }

    fn get(&self, index: usize) -> Result<(Image, i64)> {
        let (path, label) = self.samples.get(index).ok_or_else(|| {
            Error::Pipeline(format!(
                "sample {index} is out of range for the image folder {} ({} samples)",
                self.root.display(),
                self.samples.len()
            ))
        })?;
        let img = crate::io::read_image(path)?;
        Ok((img.to_rgb(), *label))
    }

    fn label(&self, index: usize) -> Result<i64> {
        self.samples.get(index).map(|s| s.1).ok_or_else(|| {
            Error::Pipeline(format!(
                "sample {index} is out of range for the image folder {} ({} samples)",
                self.root.display(),
                self.samples.len()
            ))
        })
    }

    fn class_names(&self) -> Vec<String> {
        self.classes.clone()
    }
}
