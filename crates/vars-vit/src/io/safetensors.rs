//! Reading and writing [`StateDict`]s as safetensors files.
//!
//! **Format.** A little-endian `u64` header length `n`, `n` bytes of JSON mapping each tensor name
//! to `{dtype, shape, data_offsets: [begin, end)}` (offsets relative to byte `8 + n`) plus an
//! optional `__metadata__` string map, then the raw little-endian, row-major data. It is the
//! format of the official fixtures and of Hugging Face checkpoints, and unlike a pickled `.pth`
//! it can be validated completely before a byte of tensor data is trusted.
//!
//! **Loading** maps the file into memory (`memmap2`) and lets the `safetensors` crate parse and
//! validate the header: offsets must tile the data section exactly, each byte length must equal
//! dtype size × element count, and the file must end where the last tensor does. Only the
//! selected tensors are then decoded, so [`StateDict::load_filtered`] touches only their pages
//! (a fixture's `param.*` without its `grad.*`). Anything malformed becomes a
//! [`VitError::Corrupt`] naming the file, what is wrong (the tensor and the numbers involved) and
//! what to do; nothing in this path panics on bad input. F32, F64 and I64 load as themselves;
//! F16 and BF16 are widened to F32 (exactly: every half value is an f32 value); any other dtype
//! is a [`VitError::UnsupportedDType`] naming the key.
//!
//! **Saving** streams one tensor at a time (gathered from any strided layout, or copied off the
//! device, by [`Tensor::to_host`]) into a temporary file that then atomically replaces the
//! target (see `atomic.rs`): an existing checkpoint is never left truncated. Tensors with 8-byte
//! elements are written first, then 4-byte ones, each group in dictionary order, so every tensor
//! starts at an offset aligned to its element size (the header is padded to a multiple of 8, as
//! the reference writer does) and zero-copy readers elsewhere can use the file as is.

use super::atomic::write_atomically;
use super::StateDict;
use crate::{Result, VitError};
use memmap2::Mmap;
use safetensors::tensor::TensorInfo;
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use vars_core::{Backend, DType, HostData, Tensor};

/// The header-length prefix.
const N_LEN: usize = 8;
/// The largest header the `safetensors` reader accepts.
const MAX_HEADER: usize = 100_000_000;

const HINT_DAMAGED: &str = "The file is damaged or incomplete: re-download or re-export it \
                            (compare its size and SHA-256 with the source)";
const HINT_NOT_SAFETENSORS: &str = "Check that the path points to a .safetensors file (not a \
                                    PyTorch .pth/.bin pickle or another format) and that it \
                                    was copied completely";

impl<B: Backend> StateDict<B> {
    /// Loads every tensor of the safetensors file at `path` onto `device`, in file data order,
    /// with the header's `__metadata__` as [`StateDict::metadata`].
    pub fn load(path: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        Self::load_filtered(path, device, |_| true)
    }

    /// Like [`StateDict::load`], decoding only the tensors whose name passes `keep` (the whole
    /// header is still validated). Unselected tensors cost nothing: their pages are never read.
    pub fn load_filtered(
        path: impl AsRef<Path>,
        device: &B::Device,
        mut keep: impl FnMut(&str) -> bool,
    ) -> Result<Self> {
        let path = path.as_ref();
        let io_err = |action: &str, source| VitError::Io {
            action: action.to_string(),
            path: path.to_path_buf(),
            source,
        };
        let corrupt = |problem: String, hint: &'static str| VitError::Corrupt {
            path: path.to_path_buf(),
            problem,
            hint,
        };

        let file = File::open(path).map_err(|e| io_err("cannot open checkpoint", e))?;
        let meta = file
            .metadata()
            .map_err(|e| io_err("cannot stat checkpoint", e))?;
        if !meta.is_file() {
            return Err(io_err(
                "cannot load checkpoint",
                std::io::Error::other("not a regular file"),
            ));
        }
        if meta.len() < N_LEN as u64 {
            let problem = if meta.len() == 0 {
                "the file is empty".to_string()
            } else {
                format!(
                    "the file is {} bytes long, shorter than the 8-byte header-length prefix",
                    meta.len()
                )
            };
            return Err(corrupt(problem, HINT_DAMAGED));
        }

        // SAFETY: `Mmap::map` is unsafe because the mapped bytes may change (or the pages vanish,
        // raising SIGBUS) if another process writes to or truncates the file while it is mapped.
        // The file is opened read-only here, and the map lives only for the duration of this
        // call: every selected tensor is decoded into an owned host buffer before the function
        // returns and the map is dropped, so no reference into it escapes. Saves made by this
        // crate never write into an existing file (they rename a new one over it), so they cannot
        // disturb a concurrent load; only an outside process rewriting the file in place during
        // the load could, which is the documented caveat of every memory-mapped reader.
        let map =
            unsafe { Mmap::map(&file) }.map_err(|e| io_err("cannot memory-map checkpoint", e))?;
        let buf: &[u8] = &map;

        let (n, metadata) = SafeTensors::read_metadata(buf).map_err(|e| {
            let (problem, hint) = describe(buf, &e);
            corrupt(problem, hint)
        })?;
        let data_start = N_LEN + n;

        let mut out = StateDict::new();
        for name in metadata.offset_keys() {
            if !keep(&name) {
                continue;
            }
            let Some(info) = metadata.info(&name) else {
                return Err(corrupt(
                    format!("tensor `{name}` is listed but has no entry in the header"),
                    HINT_DAMAGED,
                ));
            };
            let (begin, end) = info.data_offsets;
            let bytes = data_start
                .checked_add(begin)
                .zip(data_start.checked_add(end))
                .and_then(|(b, e)| buf.get(b..e))
                .ok_or_else(|| {
                    corrupt(
                        format!(
                            "tensor `{name}`: data_offsets [{begin}, {end}) lie outside the {}-byte \
                             data section",
                            buf.len() - data_start
                        ),
                        HINT_DAMAGED,
                    )
                })?;
            let host = decode(info.dtype, bytes).map_err(|e| match e {
                DecodeError::Unsupported => VitError::UnsupportedDType {
                    path: path.to_path_buf(),
                    key: name.clone(),
                    dtype: format!("{:?}", info.dtype),
                },
                DecodeError::Length { elem } => corrupt(
                    format!(
                        "tensor `{name}`: {} bytes of {:?} data is not a whole number of \
                         {elem}-byte elements",
                        bytes.len(),
                        info.dtype
                    ),
                    HINT_DAMAGED,
                ),
            })?;
            let count: usize = info.shape.iter().product();
            if host.len() != count {
                return Err(corrupt(
                    format!(
                        "tensor `{name}`: shape {:?} needs {count} elements, the data holds {}",
                        info.shape,
                        host.len()
                    ),
                    HINT_DAMAGED,
                ));
            }
            out.insert(
                name,
                Tensor::from_host(host, info.shape.as_slice(), device)?,
            );
        }
        if let Some(m) = metadata.metadata() {
            out.metadata_mut()
                .extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(out)
    }

    /// Writes the dictionary (and its [`StateDict::metadata`] as `__metadata__`, when not empty)
    /// to `path` as a safetensors file, atomically: the previous file at `path`, if any, is
    /// replaced only once the new one is complete and synced, and is left untouched on failure.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let invalid = |msg: String| VitError::InvalidSave {
            path: path.to_path_buf(),
            msg,
        };

        // Aligned order: 8-byte elements first, then 4-byte, each in dictionary order.
        let mut order: Vec<(&str, &Tensor<B>, Dtype)> = Vec::with_capacity(self.len());
        for (name, t) in self.iter() {
            if name == "__metadata__" {
                return Err(invalid(
                    "`__metadata__` is reserved by the safetensors format and cannot name a tensor"
                        .into(),
                ));
            }
            let dtype = match t.dtype() {
                DType::F32 => Dtype::F32,
                DType::F64 => Dtype::F64,
                DType::I64 => Dtype::I64,
                other => {
                    return Err(invalid(format!(
                        "tensor `{name}` has unsupported dtype {other}"
                    )))
                }
            };
            order.push((name, t, dtype));
        }
        order.sort_by_key(|&(_, t, _)| std::cmp::Reverse(t.dtype().size_in_bytes()));

        let mut infos = Vec::with_capacity(order.len());
        let mut offset = 0usize;
        for &(name, t, dtype) in &order {
            let end = t
                .elem_count()
                .checked_mul(t.dtype().size_in_bytes())
                .and_then(|len| offset.checked_add(len));
            let Some(end) = end else {
                return Err(invalid(format!("tensor `{name}` is too large to address")));
            };
            infos.push((
                name.to_string(),
                TensorInfo {
                    dtype,
                    shape: t.dims().to_vec(),
                    data_offsets: (offset, end),
                },
            ));
            offset = end;
        }
        // The header is built as a JSON object in a fixed order (metadata keys sorted, tensors in
        // data order), so equal state dicts give byte-identical files.
        let mut object = serde_json::Map::new();
        if !self.metadata().is_empty() {
            let meta: serde_json::Map<String, serde_json::Value> = self
                .metadata()
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            object.insert("__metadata__".into(), serde_json::Value::Object(meta));
        }
        for (name, info) in infos {
            let value = serde_json::to_value(&info)
                .map_err(|e| invalid(format!("cannot encode the header entry `{name}`: {e}")))?;
            object.insert(name, value);
        }
        let mut header = serde_json::to_vec(&serde_json::Value::Object(object))
            .map_err(|e| invalid(format!("cannot encode the header: {e}")))?;
        header.resize(header.len().next_multiple_of(N_LEN), b' ');
        if header.len() > MAX_HEADER {
            return Err(invalid(format!(
                "the header would be {} bytes, above the 100 MB safetensors readers accept",
                header.len()
            )));
        }

        write_atomically(path, |w| {
            let werr = |e| VitError::Io {
                action: "cannot write checkpoint data for".into(),
                path: path.to_path_buf(),
                source: e,
            };
            w.write_all(&(header.len() as u64).to_le_bytes())
                .map_err(werr)?;
            w.write_all(&header).map_err(werr)?;
            let mut chunk = Vec::new();
            for &(_, t, _) in &order {
                write_host(w, &t.to_host()?, &mut chunk).map_err(werr)?;
            }
            Ok(())
        })
    }
}

/// Writes `host` as little-endian bytes, through a bounded scratch buffer.
fn write_host(w: &mut impl Write, host: &HostData, chunk: &mut Vec<u8>) -> std::io::Result<()> {
    const ELEMS: usize = 1 << 14;
    fn put<T: Copy, const N: usize>(
        w: &mut impl Write,
        v: &[T],
        chunk: &mut Vec<u8>,
        le: impl Fn(T) -> [u8; N],
    ) -> std::io::Result<()> {
        for part in v.chunks(ELEMS) {
            chunk.clear();
            for &x in part {
                chunk.extend_from_slice(&le(x));
            }
            w.write_all(chunk)?;
        }
        Ok(())
    }
    match host {
        HostData::F32(v) => put(w, v, chunk, f32::to_le_bytes),
        HostData::F64(v) => put(w, v, chunk, f64::to_le_bytes),
        HostData::I64(v) => put(w, v, chunk, i64::to_le_bytes),
    }
}

enum DecodeError {
    Unsupported,
    Length { elem: usize },
}

/// Decodes little-endian `bytes` of safetensors dtype `dtype` into a host buffer.
fn decode(dtype: Dtype, bytes: &[u8]) -> std::result::Result<HostData, DecodeError> {
    fn le<const N: usize, T>(
        bytes: &[u8],
        f: impl Fn([u8; N]) -> T,
    ) -> std::result::Result<Vec<T>, DecodeError> {
        if bytes.len() % N != 0 {
            return Err(DecodeError::Length { elem: N });
        }
        Ok(bytes
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                f(a)
            })
            .collect())
    }
    Ok(match dtype {
        Dtype::F32 => HostData::F32(le(bytes, f32::from_le_bytes)?),
        Dtype::F64 => HostData::F64(le(bytes, f64::from_le_bytes)?),
        Dtype::I64 => HostData::I64(le(bytes, i64::from_le_bytes)?),
        Dtype::F16 => HostData::F32(le(bytes, |a| half::f16::from_le_bytes(a).to_f32())?),
        Dtype::BF16 => HostData::F32(le(bytes, |a| half::bf16::from_le_bytes(a).to_f32())?),
        _ => return Err(DecodeError::Unsupported),
    })
}

/// Turns a `safetensors` validation error into a message naming what is wrong, re-reading the
/// header for the numbers the library's error leaves out, plus what to do about it.
fn describe(buf: &[u8], err: &SafeTensorError) -> (String, &'static str) {
    let n_field = buf
        .get(..N_LEN)
        .and_then(|b| <[u8; N_LEN]>::try_from(b).ok())
        .map(u64::from_le_bytes);
    let after_prefix = buf.len().saturating_sub(N_LEN);
    match err {
        SafeTensorError::HeaderTooSmall => (
            format!(
                "the file is {} bytes long, shorter than the 8-byte header-length prefix",
                buf.len()
            ),
            HINT_DAMAGED,
        ),
        SafeTensorError::HeaderTooLarge => (
            format!(
                "the header-length prefix says {} bytes, above the 100 MB limit of the format",
                n_field.unwrap_or(0)
            ),
            HINT_NOT_SAFETENSORS,
        ),
        SafeTensorError::InvalidHeaderLength => (
            format!(
                "the header-length prefix says {} bytes, but only {after_prefix} bytes follow it \
                 (header length larger than the file)",
                n_field.unwrap_or(0)
            ),
            HINT_NOT_SAFETENSORS,
        ),
        SafeTensorError::InvalidHeader(e) => (
            format!("the header is not UTF-8 text ({e})"),
            HINT_NOT_SAFETENSORS,
        ),
        SafeTensorError::InvalidHeaderDeserialization(e) => (
            format!("the header is not valid safetensors JSON ({e})"),
            HINT_NOT_SAFETENSORS,
        ),
        SafeTensorError::InvalidOffset(_)
        | SafeTensorError::TensorInvalidInfo
        | SafeTensorError::MetadataIncompleteBuffer
        | SafeTensorError::ValidationOverflow
        | SafeTensorError::MisalignedSlice => (
            layout_problem(buf).unwrap_or_else(|| err.to_string()),
            HINT_DAMAGED,
        ),
        other => (other.to_string(), HINT_DAMAGED),
    }
}

/// Re-checks the tensor layout of a header that parsed as JSON and says precisely what breaks
/// it: a byte length that disagrees with dtype × shape, a gap or overlap between tensors, data
/// beyond the end of the file (truncation), or bytes after the last tensor.
fn layout_problem(buf: &[u8]) -> Option<String> {
    let n = usize::try_from(u64::from_le_bytes(buf.get(..N_LEN)?.try_into().ok()?)).ok()?;
    let header = buf.get(N_LEN..N_LEN.checked_add(n)?)?;
    let data_len = buf.len() - N_LEN - n;
    let json: HashMap<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    let mut infos: Vec<(String, TensorInfo)> = json
        .into_iter()
        .filter(|(k, _)| k != "__metadata__")
        .filter_map(|(k, v)| Some((k, serde_json::from_value::<TensorInfo>(v).ok()?)))
        .collect();
    infos.sort_by(|a, b| a.1.data_offsets.cmp(&b.1.data_offsets).then(a.0.cmp(&b.0)));

    let mut expected_begin = 0usize;
    for (name, info) in &infos {
        let (begin, end) = info.data_offsets;
        let Some(bytes) = info
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|c| c.checked_mul(info.dtype.bitsize()))
            .map(|bits| bits.div_ceil(8))
        else {
            return Some(format!(
                "tensor `{name}`: shape {:?} overflows the address space",
                info.shape
            ));
        };
        if end < begin {
            return Some(format!(
                "tensor `{name}`: data_offsets [{begin}, {end}) end before they begin"
            ));
        }
        if begin != expected_begin {
            let what = if begin > expected_begin {
                "leaving a gap"
            } else {
                "overlapping the previous tensor"
            };
            return Some(format!(
                "tensor `{name}`: data_offsets [{begin}, {end}) start at byte {begin} of the data \
                 section, but the previous tensor ends at byte {expected_begin} ({what}; tensors \
                 must tile the data section)"
            ));
        }
        if end - begin != bytes {
            return Some(format!(
                "tensor `{name}`: dtype {:?} with shape {:?} needs {bytes} bytes, but its \
                 data_offsets [{begin}, {end}) span {}",
                info.dtype,
                info.shape,
                end - begin
            ));
        }
        if end > data_len {
            return Some(format!(
                "tensor `{name}`: data_offsets [{begin}, {end}) run past the end of the data \
                 section, which holds only {data_len} bytes (the file is truncated: expected at \
                 least {} bytes, found {})",
                N_LEN + n + end,
                buf.len()
            ));
        }
        expected_begin = end;
    }
    if expected_begin < data_len {
        return Some(format!(
            "{} trailing bytes after the last tensor (the data section holds {data_len} bytes, \
             the tensors cover {expected_begin}); the header and data do not belong together",
            data_len - expected_begin
        ));
    }
    None
}
