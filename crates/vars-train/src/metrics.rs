//! The JSONL metrics log: one JSON object per line, appended and synced as each epoch ends.
//!
//! On resume, [`MetricsLog::open`] first drops the lines of epochs that will be trained again
//! (`epoch ≥` the resumed epoch) and any torn last line, so a crash between writing an epoch's
//! line and committing its checkpoint never duplicates an epoch. The rewrite is atomic (temporary
//! file, fsync, rename).

use crate::{Result, TrainError};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An append-only JSONL file (module docs).
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens `path` for appending (created if missing), keeping only the existing lines whose
    /// `epoch` field is below `keep_before_epoch` (0 for a fresh run: the file is emptied; the
    /// resumed epoch for a resume). Lines without an `epoch` field are kept.
    pub fn open(path: impl Into<PathBuf>, keep_before_epoch: usize) -> Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| TrainError::io("cannot create the directory of", &path, e))?;
        }
        let existing = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(TrainError::io("cannot read the metrics log", &path, e)),
        };
        let mut kept = String::new();
        for line in existing.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue; // a torn line from a crash mid-write
            };
            let keep = match v.get("epoch").and_then(|e| e.as_u64()) {
                Some(e) => (e as usize) < keep_before_epoch,
                None => true,
            };
            if keep {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        if kept != existing {
            rewrite_atomically(&path, kept.as_bytes())?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io("cannot open the metrics log", &path, e))?;
        Ok(MetricsLog { path, file })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `record` as one JSON line and syncs it to disk.
    pub fn append(&mut self, record: &impl Serialize) -> Result<()> {
        let mut line = serde_json::to_vec(record).map_err(|e| TrainError::Io {
            action: "cannot encode a metrics record for".into(),
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| TrainError::io("cannot append to the metrics log", &self.path, e))
    }

    /// Every line of a log as JSON values (for tests and tools).
    pub fn read_all(path: impl AsRef<Path>) -> Result<Vec<serde_json::Value>> {
        let path = path.as_ref();
        let s = std::fs::read_to_string(path)
            .map_err(|e| TrainError::io("cannot read the metrics log", path, e))?;
        Ok(s.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

fn rewrite_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(name);
    let mut f = File::create(&tmp).map_err(|e| TrainError::io("cannot create", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| TrainError::io("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io("cannot replace", path, e))
}
