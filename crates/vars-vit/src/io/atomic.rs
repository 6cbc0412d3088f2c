//! Atomic file replacement: write a sibling temporary file, fsync it, rename it over the target.
//!
//! A checkpoint save must never destroy the previous checkpoint. Writing the target in place
//! would truncate it first, so a crash, a full disk or a failing device-to-host copy halfway
//! through would leave neither the old nor the new weights. Instead the bytes go to a fresh file
//! in the **same directory** (so the final `rename` stays within one file system and is atomic
//! on POSIX), the file is fsynced, and only then renamed over the target; the directory is then
//! fsynced so the rename itself survives a power loss. Any failure before the rename removes the
//! temporary file and leaves the target exactly as it was.
//!
//! The rename also means a reader that has the old file memory-mapped keeps seeing the old
//! bytes (the old inode lives on until it is unmapped), never a half-written file.

use crate::{Result, VitError};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Replaces `path` with what `write` produces, atomically (see the module docs).
pub(crate) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<()>,
) -> Result<()> {
    let io_err = |action: &str, p: &Path, source| VitError::Io {
        action: action.to_string(),
        path: p.to_path_buf(),
        source,
    };
    let Some(file_name) = path.file_name() else {
        return Err(VitError::InvalidSave {
            path: path.to_path_buf(),
            msg: "the path does not name a file".into(),
        });
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };

    let (file, tmp) = create_temp(dir, file_name).map_err(|e| {
        io_err(
            "cannot save: no temporary file can be created next to",
            path,
            e,
        )
    })?;
    let mut guard = TempGuard(Some(tmp));
    let tmp = guard.path();

    {
        let mut w = BufWriter::with_capacity(1 << 20, &file);
        write(&mut w)?;
        w.flush()
            .map_err(|e| io_err("cannot write temporary file", &tmp, e))?;
    }
    file.sync_all()
        .map_err(|e| io_err("cannot sync temporary file", &tmp, e))?;
    drop(file);

    std::fs::rename(&tmp, path).map_err(|e| {
        io_err(
            "cannot save: renaming the finished temporary file failed for",
            path,
            e,
        )
    })?;
    guard.disarm();

    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| {
        io_err(
            "the new file is in place, but syncing its directory failed for",
            path,
            e,
        )
    })?;
    Ok(())
}

/// A new, exclusively created file `.{name}.{pid}-{n}.tmp` in `dir`.
fn create_temp(dir: &Path, file_name: &std::ffi::OsStr) -> std::io::Result<(File, PathBuf)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut last_err = None;
    for _ in 0..64 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut name = OsString::from(".");
        name.push(file_name);
        name.push(format!(".{}-{n}.tmp", std::process::id()));
        let tmp = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("no free temporary file name")))
}

/// Removes the temporary file on drop unless disarmed (after a successful rename).
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn path(&self) -> PathBuf {
        self.0.clone().unwrap_or_default()
    }
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A write that fails halfway (as a failing device-to-host copy or a full disk would) leaves
    /// the existing target byte-for-byte intact and no temporary file behind.
    #[test]
    fn failed_write_keeps_old_file_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("ckpt.safetensors");
        std::fs::write(&target, b"old checkpoint bytes").unwrap();

        let err = write_atomically(&target, |w| {
            w.write_all(&[0u8; 4096]).unwrap();
            Err(VitError::InvalidSave {
                path: target.clone(),
                msg: "simulated failure mid-write".into(),
            })
        })
        .unwrap_err();
        assert!(err.to_string().contains("simulated failure"), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"old checkpoint bytes");
        assert_eq!(dir_entries(dir.path()), vec!["ckpt.safetensors"]);
    }

    #[test]
    fn successful_write_replaces_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("ckpt.safetensors");
        std::fs::write(&target, b"old").unwrap();
        write_atomically(&target, |w| {
            w.write_all(b"new contents").unwrap();
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new contents");
        assert_eq!(dir_entries(dir.path()), vec!["ckpt.safetensors"]);
    }

    #[test]
    fn path_without_file_name_is_an_error() {
        let err = write_atomically(Path::new("/"), |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("does not name a file"), "{err}");
    }
}
