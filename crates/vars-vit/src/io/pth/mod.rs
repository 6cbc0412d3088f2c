//! Reading PyTorch `.pth` checkpoints (the zip format of `torch.save`) without executing
//! anything from the file, and converting them to safetensors.
//!
//! **Format.** `torch.save` (PyTorch ≥ 1.6) writes a zip archive of *stored* entries under one
//! top folder `<name>/`: `data.pkl`, a pickle (protocol 2) of the saved object in which every
//! tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
//! hooks)` and every storage a persistent id `('storage', torch.FloatStorage, key, location,
//! numel)`; `data/<key>`, the raw little-endian bytes of each storage; `byteorder`; `version`.
//! See `docs/pth.md` for the details and the allowlist.
//!
//! **Safety model.** The pickle is interpreted by a small virtual machine (`pickle.rs`) that
//! never imports or calls anything: the globals PyTorch uses for tensors and containers are
//! mapped to built-in interpretations, and any other global is an error naming it
//! ([`VitError::PthForbiddenGlobal`]), or, with [`UnknownGlobals::Inert`], an opaque record that
//! is never called. Every length and offset from the file is bounds-checked; a storage is
//! checked against its zip record when the pickle names it (before any tensor data is read or
//! allocated); tensor views are checked against their storage; sizes of what is materialised are
//! bounded by [`PthLimits`]. Nothing in this path panics on bad input.
//!
//! **Dtypes.** Float → F32, Double → F64, Half and BFloat16 → F32 (widened exactly, as the
//! safetensors loader does), Long/Int/Short/Char/Byte → I64, Bool → I64 0/1. Complex storages are
//! a [`VitError::UnsupportedDType`] when a state dict needs them.
//!
//! ```no_run
//! # use vars_core::Backend;
//! # fn demo<B: Backend>(device: &B::Device) -> vars_vit::Result<()> {
//! use vars_vit::io::pth::{self, FeatureNorm};
//! let ckpt = pth::load_pth::<B>("checkpoint.pth", device)?;
//! for w in &ckpt.warnings { eprintln!("warning: {w}"); }
//! let weights = ckpt.state_dict().expect("a state dict");
//! let report = pth::convert_pth::<B>("checkpoint.pth", "checkpoint.safetensors", device,
//!                                      Some(FeatureNorm::Off))?;
//! # let _ = (weights, report); Ok(()) }
//! ```

mod pickle;
mod zip;

pub use pickle::StorageDType;

use self::pickle::{Dict, Machine, Obj, TensorSpec, Value, VmLimits};
use self::zip::Archive;
use super::StateDict;
use crate::{Result, VitError};
use memmap2::Mmap;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::File;
use std::path::Path;
use std::str::FromStr;
use vars_core::{Backend, HostData, Tensor};

/// Internal failure, turned into a [`VitError`] (with the path) at the public boundary.
#[derive(Debug)]
pub(crate) enum Fail {
    /// Damaged or malformed input.
    Corrupt(String),
    /// Well-formed but outside what this reader supports, with what to do.
    Unsupported(String, &'static str),
    /// A global outside the allowlist (`module.name`).
    Global(String),
    /// A resource limit of [`PthLimits`] was hit.
    Limit(String),
}

pub(crate) const HINT_DAMAGED: &str = "The file is damaged or incomplete: re-download or \
                                       re-export it (compare its size and SHA-256 with the source)";
pub(crate) const HINT_RESAVE: &str = "Re-save the weights with a current PyTorch: \
                                      `torch.save(model.state_dict(), path)` writes the zip format \
                                      this reader accepts";
pub(crate) const HINT_COMPRESSED: &str = "torch.save writes stored entries; the archive was \
                                          re-compressed by another tool. Re-save it with \
                                          torch.save, or re-zip it without compression (`zip -0`)";
const HINT_LEGACY: &str = "Re-save it with a modern torch.save (PyTorch >= 1.6), in Python, for \
                           a file you trust: `torch.save(torch.load(old, map_location='cpu', \
                           weights_only=False), new)`";
const HINT_GLOBAL: &str = "The restricted reader accepts only the globals PyTorch uses for \
                           tensors and plain containers (see docs/pth.md). If you trust the file, \
                           load it in Python and re-save only `model.state_dict()`; if the global \
                           only appears in metadata, PthOptions::unknown_globals = \
                           UnknownGlobals::Inert decodes it as inert data";
const HINT_LIMIT: &str = "If the file is trusted and really this large, raise the limit in \
                          PthOptions::limits";
const HINT_TORCHSCRIPT: &str = "This is a TorchScript archive (torch.jit.save), not a torch.save \
                                checkpoint: in Python, save `torch.jit.load(path).state_dict()` \
                                with torch.save";
const HINT_SAFETENSORS: &str = "This is a safetensors file: load it with StateDict::load";
const HINT_NO_STATE_DICT: &str = "Save the weights as `torch.save(model.state_dict(), path)` or \
                                  under a `model`/`state_dict` key, or pick the entry with \
                                  PthOptions::only";

/// What to do with a pickle global outside the allowlist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownGlobals {
    /// Fail with [`VitError::PthForbiddenGlobal`] naming it (the default).
    #[default]
    Reject,
    /// Decode it, and whatever is built from it, as an opaque record that is never called;
    /// listed in [`PthCheckpoint::warnings`]. A tensor can still only come from the allowlisted
    /// rebuild functions, so this cannot change what weights are loaded.
    Inert,
}

/// Resource limits of the reader. The defaults accept any real checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PthLimits {
    /// Largest `data.pkl` (default 256 MiB; a state dict pickle is ~120 bytes per tensor).
    pub max_pickle_bytes: u64,
    /// Most memo entries the pickle may store (default 2²²).
    pub max_memo: usize,
    /// Most dimensions of a tensor (default 64).
    pub max_rank: usize,
    /// A tensor with more elements than its storage (a stride-0 broadcast view) may have at most
    /// this many elements (default 2²⁴).
    pub max_broadcast_elements: u64,
    /// Most bytes of tensor data materialised in total; `None` (default) means 4 × the file size
    /// + 64 MiB, which admits F16 → F32 widening and views sharing storages.
    pub max_output_bytes: Option<u64>,
    /// Longest rendering of one metadata value in [`PthCheckpoint::args`] /
    /// [`PthCheckpoint::info`] (default 4096 characters).
    pub max_repr_chars: usize,
}

impl Default for PthLimits {
    fn default() -> Self {
        PthLimits {
            max_pickle_bytes: 256 << 20,
            max_memo: 1 << 22,
            max_rank: 64,
            max_broadcast_elements: 1 << 24,
            max_output_bytes: None,
            max_repr_chars: 4096,
        }
    }
}

/// Options of [`load_pth_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PthOptions {
    /// Policy for globals outside the allowlist (default: reject).
    pub unknown_globals: UnknownGlobals,
    /// The feature-normalisation mode the weights were trained with, recorded as
    /// [`FeatureNorm::METADATA_KEY`] in every loaded state dict's metadata. `None` for a
    /// checkpoint with VARS‑D/SD attention adds a warning (see [`FeatureNorm`]).
    pub feature_norm: Option<FeatureNorm>,
    /// Load only the state dict found under this top-level key (`""` for a top-level state
    /// dict); the others are listed in [`PthCheckpoint::info`] but not read.
    pub only: Option<String>,
    /// Check each used zip entry's CRC-32 (default true). A stored CRC of 0 ("not computed",
    /// `torch.serialization.set_crc32_options(False)`) is never checked.
    pub verify_crc: bool,
    pub limits: PthLimits,
}

impl Default for PthOptions {
    fn default() -> Self {
        PthOptions {
            unknown_globals: UnknownGlobals::Reject,
            feature_norm: None,
            only: None,
            verify_crc: true,
            limits: PthLimits::default(),
        }
    }
}

/// The random-feature normalisation a VARS‑D/SD (or Performer) checkpoint was trained with
/// (vars-spec §7): `On` is official HEAD (`normalize_2` after the d^{−1/4} scale), `Off` the
/// code of 2022‑04‑19 … 2022‑07‑04, which the released RVT‑Ti VARS‑D/SD checkpoints may predate
/// the restoration of.
///
/// It is recorded next to the weights as the string metadata entry
/// [`FeatureNorm::METADATA_KEY`] (`vars.feature_norm` = `on` | `off`), which
/// [`StateDict::save`] writes into the safetensors `__metadata__`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeatureNorm {
    On,
    Off,
}

impl FeatureNorm {
    /// The metadata key that records the mode.
    pub const METADATA_KEY: &'static str = "vars.feature_norm";

    pub fn as_str(self) -> &'static str {
        match self {
            FeatureNorm::On => "on",
            FeatureNorm::Off => "off",
        }
    }

    /// The mode recorded in `metadata`, `None` when absent; an unrecognised value is a
    /// [`VitError::Config`].
    pub fn from_metadata(metadata: &BTreeMap<String, String>) -> Result<Option<Self>> {
        metadata
            .get(Self::METADATA_KEY)
            .map(|v| v.parse())
            .transpose()
    }
}

impl fmt::Display for FeatureNorm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FeatureNorm {
    type Err = VitError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "1" => Ok(FeatureNorm::On),
            "off" | "false" | "0" => Ok(FeatureNorm::Off),
            other => Err(VitError::config(
                format!("`{other}` is not a feature-normalisation mode"),
                "use `on` (official HEAD) or `off` (2022-04-19 … 2022-07-04 code)",
            )),
        }
    }
}

/// Whether `keys` contain VARS‑D/SD attention: some block has both `attn.rand_matrix` and
/// `attn.learned_k`. Such weights depend on the [`FeatureNorm`] mode.
pub fn has_vars_dynamic_attention<'a>(keys: impl IntoIterator<Item = &'a str>) -> bool {
    let keys: HashSet<&str> = keys.into_iter().collect();
    keys.iter().any(|k| {
        k.strip_suffix("attn.learned_k")
            .is_some_and(|p| keys.contains(format!("{p}attn.rand_matrix").as_str()))
    })
}

/// What a `.pth` file holds: its state dict(s), as tensors, and inert metadata.
pub struct PthCheckpoint<B: Backend> {
    /// `(source, state dict)`: `""` for a top-level state dict, else the top-level key it was
    /// found under (`model`, `state_dict`, `model_state_dict`, `module`, `model_ema`,
    /// `state_dict_ema`), in that order of preference.
    pub state_dicts: Vec<(String, StateDict<B>)>,
    /// The top-level `epoch`, when it is an integer.
    pub epoch: Option<i64>,
    /// The training arguments (`args`, an `argparse.Namespace` or dict): name → value, strings
    /// as themselves, anything else as its Python-like repr.
    pub args: BTreeMap<String, String>,
    /// Every other top-level entry of a training checkpoint, summarised (repr, bounded).
    pub info: BTreeMap<String, String>,
    /// The mode from [`PthOptions::feature_norm`].
    pub feature_norm: Option<FeatureNorm>,
    /// Things the caller should know (skipped entries, a missing feature-norm mode, inert
    /// unknown globals, a DDP `module.` prefix). Library code never prints them.
    pub warnings: Vec<String>,
}

impl<B: Backend> fmt::Debug for PthCheckpoint<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PthCheckpoint")
            .field("state_dicts", &self.state_dicts)
            .field("epoch", &self.epoch)
            .field("args", &self.args)
            .field("info", &self.info)
            .field("feature_norm", &self.feature_norm)
            .field("warnings", &self.warnings)
            .finish()
    }
}

impl<B: Backend> PthCheckpoint<B> {
    /// The preferred state dict (the first of [`PthCheckpoint::state_dicts`]).
    pub fn state_dict(&self) -> Option<&StateDict<B>> {
        self.state_dicts.first().map(|(_, sd)| sd)
    }

    /// The state dict found under `source` (`""` for top level).
    pub fn get(&self, source: &str) -> Option<&StateDict<B>> {
        self.state_dicts
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, sd)| sd)
    }

    /// The preferred state dict, by value.
    pub fn into_state_dict(self) -> Option<StateDict<B>> {
        self.state_dicts.into_iter().next().map(|(_, sd)| sd)
    }
}

/// Loads the `.pth` at `path` with the default [`PthOptions`].
pub fn load_pth<B: Backend>(
    path: impl AsRef<Path>,
    device: &B::Device,
) -> Result<PthCheckpoint<B>> {
    load_pth_with::<B>(path, device, &PthOptions::default())
}

/// Loads the `.pth` at `path`.
pub fn load_pth_with<B: Backend>(
    path: impl AsRef<Path>,
    device: &B::Device,
    options: &PthOptions,
) -> Result<PthCheckpoint<B>> {
    let path = path.as_ref();
    let io_err = |action: &str, source| VitError::Io {
        action: action.to_string(),
        path: path.to_path_buf(),
        source,
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
    if meta.len() == 0 {
        return load_bytes(&[], path, device, options);
    }
    // SAFETY: as in the safetensors loader: the file is opened read-only and the map lives only
    // for this call; every tensor is decoded into an owned host buffer before it returns, so no
    // reference into the map escapes. Only another process rewriting the file in place during
    // the load could change the mapped bytes (the caveat of every memory-mapped reader); every
    // read of the map is bounds-checked, so that can produce garbage values but not UB in this
    // code beyond the mapping itself.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| io_err("cannot memory-map checkpoint", e))?;
    load_bytes(&map, path, device, options)
}

/// Loads a `.pth` held in memory (errors name the path `<memory>`).
pub fn load_pth_bytes<B: Backend>(
    bytes: &[u8],
    device: &B::Device,
    options: &PthOptions,
) -> Result<PthCheckpoint<B>> {
    load_bytes(bytes, Path::new("<memory>"), device, options)
}

/// What [`convert_pth`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertReport {
    /// Which state dict was written (`""`: the top-level one).
    pub source: String,
    /// How many tensors were written.
    pub tensors: usize,
    /// The `__metadata__` written.
    pub metadata: BTreeMap<String, String>,
    /// The load's warnings (see [`PthCheckpoint::warnings`]).
    pub warnings: Vec<String>,
}

/// Converts the preferred state dict of the `.pth` at `src` into a safetensors file at `dst`
/// (written atomically), recording `feature_norm` as [`FeatureNorm::METADATA_KEY`] when given.
/// With `None` for VARS‑D/SD weights the report carries a warning, and nothing is recorded.
pub fn convert_pth<B: Backend>(
    src: impl AsRef<Path>,
    dst: impl AsRef<Path>,
    device: &B::Device,
    feature_norm: Option<FeatureNorm>,
) -> Result<ConvertReport> {
    let options = PthOptions {
        feature_norm,
        ..PthOptions::default()
    };
    convert_pth_with::<B>(src, dst, device, &options)
}

/// [`convert_pth`] with full options ([`PthOptions::only`] picks the state dict). Besides the
/// feature-norm mode, the metadata records `vars.source_format` (`pytorch-zip`),
/// `vars.pth.source` (the state dict's key, `""` for top level), `vars.pth.epoch` and
/// `vars.pth.args` (a JSON object of [`PthCheckpoint::args`]) when present.
pub fn convert_pth_with<B: Backend>(
    src: impl AsRef<Path>,
    dst: impl AsRef<Path>,
    device: &B::Device,
    options: &PthOptions,
) -> Result<ConvertReport> {
    let ckpt = load_pth_with::<B>(src, device, options)?;
    let PthCheckpoint {
        state_dicts,
        epoch,
        args,
        warnings,
        ..
    } = ckpt;
    let Some((source, mut sd)) = state_dicts.into_iter().next() else {
        return Err(VitError::InvalidSave {
            path: dst.as_ref().to_path_buf(),
            msg: "the checkpoint holds no state dict to convert".to_string(),
        });
    };
    let meta = sd.metadata_mut();
    meta.insert("vars.source_format".into(), "pytorch-zip".into());
    meta.insert("vars.pth.source".into(), source.clone());
    if let Some(e) = epoch {
        meta.insert("vars.pth.epoch".into(), e.to_string());
    }
    if !args.is_empty() {
        let json = serde_json::to_string(&args).map_err(|e| VitError::InvalidSave {
            path: dst.as_ref().to_path_buf(),
            msg: format!("cannot encode the training arguments: {e}"),
        })?;
        meta.insert("vars.pth.args".into(), json);
    }
    sd.save(dst)?;
    Ok(ConvertReport {
        source,
        tensors: sd.len(),
        metadata: sd.metadata().clone(),
        warnings,
    })
}

/// Turns an internal failure into the public error for `path`.
fn to_error(path: &Path, fail: Fail) -> VitError {
    let path = path.to_path_buf();
    match fail {
        Fail::Corrupt(problem) => VitError::PthCorrupt {
            path,
            problem,
            hint: HINT_DAMAGED,
        },
        Fail::Unsupported(problem, hint) => VitError::PthUnsupported {
            path,
            problem,
            hint,
        },
        Fail::Limit(problem) => VitError::PthUnsupported {
            path,
            problem: format!("resource limit: {problem}"),
            hint: HINT_LIMIT,
        },
        Fail::Global(global) => VitError::PthForbiddenGlobal {
            path,
            global: pickle::display_name(&global),
            hint: HINT_GLOBAL,
        },
    }
}

/// Recognises what a non-zip file is, for a precise message.
fn sniff_non_zip(b: &[u8]) -> Fail {
    if b.is_empty() {
        return Fail::Corrupt("the file is empty".to_string());
    }
    if b.len() >= 2 && b[0] == 0x80 && (2..=5).contains(&b[1]) {
        // The legacy format opens with the pickled magic number 0x1950a86a20f9469cfc6c.
        const MAGIC: [u8; 12] = [
            0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
        ];
        let what = if b.get(2..14) == Some(&MAGIC[..]) {
            "this is a legacy (non-zip) PyTorch checkpoint, written by torch.save before \
             PyTorch 1.6 or with `_use_new_zipfile_serialization=False`"
        } else {
            "this is a bare pickle, not a zip archive (a legacy torch.save file or a \
             pickle.dump)"
        };
        return Fail::Unsupported(
            format!("{what}; only the zip format of torch.save is supported"),
            HINT_LEGACY,
        );
    }
    if b.get(257..262) == Some(b"ustar") {
        return Fail::Unsupported(
            "this is a tar archive, the legacy checkpoint format of PyTorch before 0.4; only \
             the zip format is supported"
                .to_string(),
            HINT_LEGACY,
        );
    }
    if let Some(n) = b.get(..8).and_then(|h| <[u8; 8]>::try_from(h).ok()) {
        let n = u64::from_le_bytes(n);
        if n > 0 && n.checked_add(8).is_some_and(|e| e <= b.len() as u64) && b.get(8) == Some(&b'{')
        {
            return Fail::Unsupported(
                "this is a safetensors file, not a PyTorch .pth".to_string(),
                HINT_SAFETENSORS,
            );
        }
    }
    let head: Vec<String> = b.iter().take(8).map(|x| format!("{x:02x}")).collect();
    Fail::Corrupt(format!(
        "not a PyTorch checkpoint: the file starts with bytes {} instead of a zip signature \
         (50 4b 03 04)",
        head.join(" ")
    ))
}

fn load_bytes<B: Backend>(
    bytes: &[u8],
    path: &Path,
    device: &B::Device,
    options: &PthOptions,
) -> Result<PthCheckpoint<B>> {
    Loader {
        path,
        device,
        options,
    }
    .load(bytes)
}

struct Loader<'p, B: Backend> {
    path: &'p Path,
    device: &'p B::Device,
    options: &'p PthOptions,
}

/// The `<prefix>/<rest>` record name (a prefix-less archive uses bare names).
fn record(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_string()
    } else {
        format!("{prefix}/{rest}")
    }
}

/// Most entries of [`PthCheckpoint::args`] and of [`PthCheckpoint::info`].
const MAX_RECORD: usize = 1024;

/// Top-level keys that hold a state dict in training checkpoints, by preference.
const SOURCES: [&str; 6] = [
    "model",
    "state_dict",
    "model_state_dict",
    "module",
    "model_ema",
    "state_dict_ema",
];

impl<B: Backend> Loader<'_, B> {
    fn err(&self, f: Fail) -> VitError {
        to_error(self.path, f)
    }

    fn load(&self, bytes: &[u8]) -> Result<PthCheckpoint<B>> {
        if !bytes.starts_with(b"PK\x03\x04") && !bytes.starts_with(b"PK\x05\x06") {
            return Err(self.err(sniff_non_zip(bytes)));
        }
        let arch = Archive::parse(bytes).map_err(|f| self.err(f))?;
        let limits = &self.options.limits;

        // The archive's top folder is the one holding data.pkl.
        let pkls: Vec<&str> = arch
            .entries()
            .iter()
            .map(|e| e.name.as_str())
            .filter(|n| {
                *n == "data.pkl" || (n.ends_with("/data.pkl") && n.matches('/').count() == 1)
            })
            .collect();
        let pkl_name = match pkls.as_slice() {
            [one] => one.to_string(),
            [] => {
                let is_ts = arch
                    .entries()
                    .iter()
                    .any(|e| e.name.ends_with("constants.pkl") || e.name.contains("/code/"));
                return Err(self.err(if is_ts {
                    Fail::Unsupported("the archive has no data.pkl".to_string(), HINT_TORCHSCRIPT)
                } else {
                    Fail::Corrupt(format!(
                        "the zip archive has no `<name>/data.pkl` entry ({} entries), so it is \
                         not a torch.save checkpoint",
                        arch.entries().len()
                    ))
                }));
            }
            many => {
                return Err(self.err(Fail::Corrupt(format!(
                    "the zip archive has {} data.pkl entries; a torch.save checkpoint has one",
                    many.len()
                ))))
            }
        };
        let prefix = pkl_name
            .strip_suffix("data.pkl")
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string();
        if arch.find(&record(&prefix, "constants.pkl")).is_some() {
            return Err(self.err(Fail::Unsupported(
                "the archive has a constants.pkl".to_string(),
                HINT_TORCHSCRIPT,
            )));
        }

        let big_endian = match arch.find(&record(&prefix, "byteorder")) {
            None => false,
            Some(e) => {
                let b = arch
                    .data(e, self.options.verify_crc)
                    .map_err(|f| self.err(f))?;
                match std::str::from_utf8(b).map(str::trim) {
                    Ok("little") => false,
                    Ok("big") => true,
                    _ => {
                        return Err(self.err(Fail::Corrupt(format!(
                            "the byteorder record says {:?}, expected `little` or `big`",
                            String::from_utf8_lossy(b.get(..b.len().min(32)).unwrap_or(&[]))
                        ))))
                    }
                }
            }
        };

        let pkl_entry = arch
            .find(&pkl_name)
            .ok_or_else(|| self.err(Fail::Corrupt("data.pkl vanished".to_string())))?;
        if pkl_entry.size > limits.max_pickle_bytes {
            return Err(self.err(Fail::Limit(format!(
                "data.pkl is {} bytes, above the {}-byte limit",
                pkl_entry.size, limits.max_pickle_bytes
            ))));
        }
        let pkl = arch
            .data(pkl_entry, self.options.verify_crc)
            .map_err(|f| self.err(f))?;

        let vm_limits = VmLimits {
            max_memo: limits.max_memo,
            max_rank: limits.max_rank,
            inert_unknown: self.options.unknown_globals == UnknownGlobals::Inert,
        };
        let mut resolve = |key: &str| {
            arch.find(&record(&prefix, &format!("data/{key}")))
                .map(|e| e.size)
        };
        let (m, top) = pickle::run(pkl, vm_limits, &mut resolve).map_err(|f| self.err(f))?;

        let mut warnings = Vec::new();
        if !m.unknown_globals.is_empty() {
            warnings.push(format!(
                "decoded {} global(s) outside the allowlist as inert data (never called): {}",
                m.unknown_globals.len(),
                m.unknown_globals
                    .iter()
                    .map(|g| format!("`{}`", pickle::display_name(g)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }

        let view = View {
            m: &m,
            max_chars: limits.max_repr_chars,
        };
        let Some(top_dict) = view.dict(&top) else {
            return Err(self.err(Fail::Unsupported(
                format!(
                    "no state dict found: the checkpoint holds {} at the top level, not a dict",
                    view.kind(&top)
                ),
                HINT_NO_STATE_DICT,
            )));
        };

        // Where the state dicts are.
        let mut sources: Vec<(String, &Dict)> = Vec::new();
        for key in SOURCES {
            if let Some(d) = top_dict.get_str(key).and_then(|v| view.dict(v)) {
                if d.items.iter().any(|(_, v)| view.tensor(v).is_some()) {
                    sources.push((key.to_string(), d));
                }
            }
        }
        let container = !sources.is_empty();
        if !container && top_dict.items.iter().any(|(_, v)| view.tensor(v).is_some()) {
            sources.push((String::new(), top_dict));
        }
        if sources.is_empty() {
            let keys: Vec<String> = top_dict
                .items
                .iter()
                .take(20)
                .map(|(k, _)| view.repr(k))
                .collect();
            return Err(self.err(Fail::Unsupported(
                format!(
                    "no state dict found: the top-level dict (keys: {}) holds no tensors, and \
                     none of {SOURCES:?} is a dict of tensors",
                    keys.join(", ")
                ),
                HINT_NO_STATE_DICT,
            )));
        }
        let mut info = BTreeMap::new();
        if let Some(only) = &self.options.only {
            if !sources.iter().any(|(s, _)| s == only) {
                let found: Vec<&str> = sources.iter().map(|(s, _)| s.as_str()).collect();
                return Err(self.err(Fail::Unsupported(
                    format!("no state dict under `{only}` (found: {found:?})"),
                    HINT_NO_STATE_DICT,
                )));
            }
            for (s, d) in &sources {
                if s != only {
                    info.insert(
                        s.clone(),
                        format!("state dict of {} entries (not loaded)", d.items.len()),
                    );
                }
            }
            sources.retain(|(s, _)| s == only);
        }

        // Inert metadata of a training checkpoint.
        let mut epoch = None;
        let mut args = BTreeMap::new();
        if container {
            for (k, v) in top_dict.items.iter().take(MAX_RECORD) {
                let Value::Str(k) = k else { continue };
                if sources.iter().any(|(s, _)| s.as_str() == &**k) || info.contains_key(&**k) {
                    continue;
                }
                match &**k {
                    "epoch" => {
                        if let Value::Int(e) = v {
                            epoch = Some(*e);
                        }
                        info.insert(k.to_string(), view.repr(v));
                    }
                    "args" => {
                        args = view.record(v);
                        if args.is_empty() {
                            info.insert(k.to_string(), view.repr(v));
                        }
                    }
                    _ => {
                        info.insert(k.to_string(), view.summary(v));
                    }
                }
            }
        }

        // Materialise the selected state dicts.
        let mut mat = Materialiser {
            arch: &arch,
            prefix: &prefix,
            big_endian,
            verify_crc: self.options.verify_crc,
            verified: HashSet::new(),
            budget: limits.max_output_bytes.unwrap_or_else(|| {
                (bytes.len() as u64)
                    .saturating_mul(4)
                    .saturating_add(64 << 20)
            }),
            max_broadcast: limits.max_broadcast_elements,
        };
        let mut state_dicts = Vec::with_capacity(sources.len());
        for (source, dict) in &sources {
            let label = if source.is_empty() {
                "the top-level state dict".to_string()
            } else {
                format!("`{source}`")
            };
            let mut sd = StateDict::new();
            let mut skipped = Vec::new();
            let mut n_skipped = 0usize;
            for (k, v) in &dict.items {
                let (Value::Str(name), Some(spec)) = (k, view.tensor(v)) else {
                    n_skipped += 1;
                    if skipped.len() < 10 {
                        skipped.push(format!("{} ({})", view.repr(k), view.kind(v)));
                    }
                    continue;
                };
                let t = mat
                    .tensor::<B>(spec, name, self.device)
                    .map_err(|e| match e {
                        MatError::Fail(f) => self.err(f),
                        MatError::Vit(v) => v,
                        MatError::DType(d) => VitError::UnsupportedDType {
                            path: self.path.to_path_buf(),
                            key: name.to_string(),
                            dtype: format!("torch.{}", d.torch_name()),
                        },
                    })?;
                sd.insert(name.to_string(), t);
            }
            if n_skipped > 0 {
                let n = n_skipped;
                warnings.push(format!(
                    "{label}: skipped {n} entr{} that {} not a tensor under a string name: {}{}",
                    if n == 1 { "y" } else { "ies" },
                    if n == 1 { "is" } else { "are" },
                    skipped.join(", "),
                    if n > 10 { ", …" } else { "" }
                ));
            }
            if !sd.is_empty() && sd.keys().all(|k| k.starts_with("module.")) {
                warnings.push(format!(
                    "{label}: every key starts with `module.` (saved from a DistributedDataParallel \
                     wrapper); use StateDict::strip_prefix(\"module.\")"
                ));
            }
            if let Some(mode) = self.options.feature_norm {
                sd.metadata_mut().insert(
                    FeatureNorm::METADATA_KEY.to_string(),
                    mode.as_str().to_string(),
                );
            } else if has_vars_dynamic_attention(sd.keys()) {
                warnings.push(format!(
                    "{label} holds VARS-D/SD attention (`attn.rand_matrix` with `attn.learned_k`) \
                     but no feature-normalisation mode was stated: the released RVT-Ti VARS-D/SD \
                     checkpoints predate the current default (feature_norm=on, vars-spec §7). \
                     Evaluate with both modes, then pass the matching one \
                     (PthOptions::feature_norm / convert_pth) so it is recorded as \
                     `{}` next to the weights",
                    FeatureNorm::METADATA_KEY
                ));
            }
            state_dicts.push((source.clone(), sd));
        }

        Ok(PthCheckpoint {
            state_dicts,
            epoch,
            args,
            info,
            feature_norm: self.options.feature_norm,
            warnings,
        })
    }
}

/// Read-only helpers over the decoded arena.
struct View<'m> {
    m: &'m Machine,
    max_chars: usize,
}

impl<'m> View<'m> {
    fn obj(&self, v: &Value) -> Option<&'m Obj> {
        match v {
            Value::Obj(id) => self.m.objs.get(*id),
            _ => None,
        }
    }

    fn dict(&self, v: &Value) -> Option<&'m Dict> {
        match self.obj(v) {
            Some(Obj::Dict { dict, .. }) => Some(dict),
            _ => None,
        }
    }

    fn tensor(&self, v: &Value) -> Option<&'m TensorSpec> {
        match self.obj(v) {
            Some(Obj::Tensor(t)) => Some(t),
            _ => None,
        }
    }

    /// A short description of a value's type.
    fn kind(&self, v: &Value) -> String {
        match v {
            Value::None => "None".into(),
            Value::Bool(_) => "a bool".into(),
            Value::Int(_) | Value::BigInt(_) => "an int".into(),
            Value::Float(_) => "a float".into(),
            Value::Str(_) => "a string".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Obj(_) => match self.obj(v) {
                Some(Obj::Tuple(_)) => "a tuple".into(),
                Some(Obj::List(_)) => "a list".into(),
                Some(Obj::Dict { ordered: true, .. }) => "an OrderedDict".into(),
                Some(Obj::Dict { .. }) => "a dict".into(),
                Some(Obj::Set { .. }) => "a set".into(),
                Some(Obj::Global { name, .. }) => format!("`{}`", pickle::display_name(name)),
                Some(Obj::Storage(_)) => "a storage".into(),
                Some(Obj::Tensor(_)) => "a tensor".into(),
                Some(Obj::Device(_)) => "a torch.device".into(),
                Some(Obj::Object { class, .. }) => {
                    format!("a `{}` object", pickle::display_name(class))
                }
                None => "an invalid reference".into(),
            },
        }
    }

    /// A Python-like repr, bounded by `max_chars` (and by a node budget, so a recursive or
    /// exponentially shared structure costs at most that much work).
    fn repr(&self, v: &Value) -> String {
        let mut out = String::new();
        let mut budget = self.max_chars;
        self.write_repr(v, 0, &mut out, &mut budget);
        if budget == 0 || out.chars().count() > self.max_chars {
            let mut t: String = out.chars().take(self.max_chars).collect();
            t.push('…');
            return t;
        }
        out
    }

    /// A summary for [`PthCheckpoint::info`]: dicts with many entries are described, not
    /// printed.
    fn summary(&self, v: &Value) -> String {
        match self.obj(v) {
            Some(Obj::Dict { dict, .. }) if dict.items.len() > 16 => {
                let tensors = dict
                    .items
                    .iter()
                    .filter(|(_, x)| self.tensor(x).is_some())
                    .count();
                format!(
                    "{} with {} entries ({tensors} tensors)",
                    self.kind(v),
                    dict.items.len()
                )
            }
            _ => self.repr(v),
        }
    }

    /// The `(name, value)` attributes an `argparse.Namespace` got from its `BUILD` states
    /// (a dict, or a `(dict, slotstate)` tuple).
    fn namespace_items(
        &self,
        states: &'m [Value],
    ) -> impl Iterator<Item = &'m (Value, Value)> + '_ {
        states.iter().flat_map(move |s| {
            let parts: Vec<&'m Dict> = match self.obj(s) {
                Some(Obj::Dict { dict, .. }) => vec![dict],
                Some(Obj::Tuple(t)) => t.iter().filter_map(|p| self.dict(p)).collect(),
                _ => Vec::new(),
            };
            parts.into_iter().flat_map(|d| d.items.iter())
        })
    }

    /// The attributes of an `argparse.Namespace` or the items of a dict, as name → string
    /// (strings as themselves, anything else as its repr), at most [`MAX_RECORD`] of them.
    fn record(&self, v: &Value) -> BTreeMap<String, String> {
        let items: Box<dyn Iterator<Item = &'m (Value, Value)> + '_> = match self.obj(v) {
            Some(Obj::Dict { dict, .. }) => Box::new(dict.items.iter()),
            Some(Obj::Object { class, state, .. }) if &**class == "argparse.Namespace" => {
                Box::new(self.namespace_items(state))
            }
            _ => return BTreeMap::new(),
        };
        let mut out = BTreeMap::new();
        for (k, x) in items.take(MAX_RECORD) {
            let key = match k {
                Value::Str(s) => s.chars().take(self.max_chars).collect(),
                other => self.repr(other),
            };
            let val = match x {
                Value::Str(s) => s.chars().take(self.max_chars).collect(),
                other => self.repr(other),
            };
            out.insert(key, val);
        }
        out
    }

    fn write_repr(&self, v: &Value, depth: usize, out: &mut String, budget: &mut usize) {
        use std::fmt::Write;
        if *budget == 0 || out.len() > self.max_chars {
            *budget = 0;
            return;
        }
        *budget -= 1;
        let seq = |this: &Self,
                   open: &str,
                   close: &str,
                   items: &[Value],
                   out: &mut String,
                   budget: &mut usize| {
            out.push_str(open);
            for (i, x) in items.iter().enumerate() {
                if *budget == 0 {
                    return;
                }
                if i > 0 {
                    out.push_str(", ");
                }
                this.write_repr(x, depth + 1, out, budget);
            }
            if open == "(" && items.len() == 1 {
                out.push(',');
            }
            out.push_str(close);
        };
        if depth > 8 {
            out.push('…');
            return;
        }
        match v {
            Value::None => out.push_str("None"),
            Value::Bool(true) => out.push_str("True"),
            Value::Bool(false) => out.push_str("False"),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::BigInt(b) => {
                let _ = write!(out, "<int of {} bytes>", b.len());
            }
            Value::Float(f) => {
                let _ = write!(out, "{f:?}");
            }
            Value::Str(s) => {
                out.push('\'');
                out.extend(s.chars().take(self.max_chars).flat_map(char::escape_debug));
                out.push('\'');
            }
            Value::Bytes(b) => {
                out.push_str("b'");
                for &c in b.iter().take(self.max_chars) {
                    out.extend(std::ascii::escape_default(c).map(char::from));
                }
                out.push('\'');
            }
            Value::Obj(_) => match self.obj(v) {
                Some(Obj::Tuple(items)) => seq(self, "(", ")", items, out, budget),
                Some(Obj::List(items)) => seq(self, "[", "]", items, out, budget),
                Some(Obj::Set { frozen, items }) => {
                    if *frozen {
                        out.push_str("frozenset(");
                    }
                    if items.is_empty() {
                        out.push_str("set()");
                    } else {
                        seq(self, "{", "}", items, out, budget);
                    }
                    if *frozen {
                        out.push(')');
                    }
                }
                Some(Obj::Dict { ordered, dict, .. }) => {
                    out.push_str(if *ordered { "OrderedDict({" } else { "{" });
                    for (i, (k, x)) in dict.items.iter().enumerate() {
                        if *budget == 0 {
                            break;
                        }
                        if i > 0 {
                            out.push_str(", ");
                        }
                        self.write_repr(k, depth + 1, out, budget);
                        out.push_str(": ");
                        self.write_repr(x, depth + 1, out, budget);
                    }
                    out.push_str(if *ordered { "})" } else { "}" });
                }
                Some(Obj::Global { name, .. }) => out.push_str(&pickle::display_name(name)),
                Some(Obj::Storage(s)) => {
                    let _ = write!(
                        out,
                        "<storage {} {} x{}>",
                        pickle::display_name(&s.key),
                        s.dtype.torch_name(),
                        s.numel
                    );
                }
                Some(Obj::Tensor(t)) => {
                    let _ = write!(
                        out,
                        "tensor(dtype={}, size={:?}, device='{}')",
                        t.storage.dtype.torch_name(),
                        t.size,
                        pickle::display_name(&t.storage.location)
                    );
                }
                Some(Obj::Device(d)) => {
                    let _ = write!(out, "device('{}')", pickle::display_name(d));
                }
                Some(Obj::Object {
                    class,
                    args,
                    state,
                    items,
                }) => {
                    out.push_str(&pickle::display_name(class));
                    if &**class == "argparse.Namespace" {
                        // `Namespace(k=v, ...)`, rendered in place (depth and budget shared).
                        out.push('(');
                        let mut first = true;
                        for (k, x) in self.namespace_items(state) {
                            if *budget == 0 {
                                break;
                            }
                            if !first {
                                out.push_str(", ");
                            }
                            first = false;
                            match k {
                                Value::Str(k) => out.extend(k.chars().flat_map(char::escape_debug)),
                                other => self.write_repr(other, depth + 1, out, budget),
                            }
                            out.push('=');
                            self.write_repr(x, depth + 1, out, budget);
                        }
                        out.push(')');
                    } else {
                        seq(self, "(", ")", args, out, budget);
                        if !state.is_empty() || !items.is_empty() {
                            let _ = write!(out, "<{} state, {} items>", state.len(), items.len());
                        }
                    }
                }
                None => out.push('?'),
            },
        }
    }
}

enum MatError {
    Fail(Fail),
    Vit(VitError),
    DType(StorageDType),
}

impl From<Fail> for MatError {
    fn from(f: Fail) -> Self {
        MatError::Fail(f)
    }
}

/// Reads storages and builds tensors from [`TensorSpec`]s.
struct Materialiser<'a, 'b> {
    arch: &'b Archive<'a>,
    prefix: &'b str,
    big_endian: bool,
    verify_crc: bool,
    /// Storages whose CRC has been checked.
    verified: HashSet<String>,
    /// Bytes of output still allowed.
    budget: u64,
    max_broadcast: u64,
}

impl Materialiser<'_, '_> {
    fn tensor<B: Backend>(
        &mut self,
        spec: &TensorSpec,
        name: &str,
        device: &B::Device,
    ) -> std::result::Result<Tensor<B>, MatError> {
        use StorageDType as D;
        let dt = spec.storage.dtype;
        let out_size: u64 = match dt {
            D::Double | D::Long | D::Int | D::Short | D::Char | D::Byte | D::Bool => 8,
            D::Float | D::Half | D::BFloat16 => 4,
            D::ComplexFloat | D::ComplexDouble => return Err(MatError::DType(dt)),
        };
        if spec.numel > spec.storage.numel && spec.numel > self.max_broadcast {
            return Err(Fail::Limit(format!(
                "tensor `{}` has {} elements but its storage only {} (a broadcast view), above \
                 the limit of {} for such views",
                pickle::display_name(name),
                spec.numel,
                spec.storage.numel,
                self.max_broadcast
            ))
            .into());
        }
        let bytes_out = spec
            .numel
            .checked_mul(out_size)
            .filter(|&b| b <= self.budget);
        let Some(bytes_out) = bytes_out else {
            return Err(Fail::Limit(format!(
                "tensor `{}` ({} elements) would exceed the total of tensor data the file may \
                 expand to ({} bytes left)",
                pickle::display_name(name),
                spec.numel,
                self.budget
            ))
            .into());
        };
        self.budget -= bytes_out;

        let rec = record(self.prefix, &format!("data/{}", spec.storage.key));
        let entry = self
            .arch
            .find(&rec)
            .ok_or_else(|| Fail::Corrupt(format!("storage record `{rec}` is missing")))?;
        let verify = self.verify_crc && !self.verified.contains(&rec);
        let data = self.arch.data(entry, verify)?;
        if verify {
            self.verified.insert(rec);
        }
        let n = usize::try_from(spec.numel)
            .map_err(|_| Fail::Limit(format!("tensor `{name}` is too large to address")))?;
        let big = self.big_endian;
        let host = match dt {
            D::Float => HostData::F32(gather(spec, n, |i| {
                rd::<4>(data, i, big).map(f32::from_le_bytes)
            })?),
            D::Double => HostData::F64(gather(spec, n, |i| {
                rd::<8>(data, i, big).map(f64::from_le_bytes)
            })?),
            D::Half => HostData::F32(gather(spec, n, |i| {
                rd::<2>(data, i, big).map(|a| half::f16::from_le_bytes(a).to_f32())
            })?),
            D::BFloat16 => HostData::F32(gather(spec, n, |i| {
                rd::<2>(data, i, big).map(|a| half::bf16::from_le_bytes(a).to_f32())
            })?),
            D::Long => HostData::I64(gather(spec, n, |i| {
                rd::<8>(data, i, big).map(i64::from_le_bytes)
            })?),
            D::Int => HostData::I64(gather(spec, n, |i| {
                rd::<4>(data, i, big).map(|a| i64::from(i32::from_le_bytes(a)))
            })?),
            D::Short => HostData::I64(gather(spec, n, |i| {
                rd::<2>(data, i, big).map(|a| i64::from(i16::from_le_bytes(a)))
            })?),
            D::Char => HostData::I64(gather(spec, n, |i| {
                rd::<1>(data, i, big).map(|a| i64::from(a[0] as i8))
            })?),
            D::Byte => HostData::I64(gather(spec, n, |i| {
                rd::<1>(data, i, big).map(|a| i64::from(a[0]))
            })?),
            D::Bool => HostData::I64(gather(spec, n, |i| {
                rd::<1>(data, i, big).map(|a| i64::from(a[0] != 0))
            })?),
            D::ComplexFloat | D::ComplexDouble => return Err(MatError::DType(dt)),
        };
        let shape: Vec<usize> = spec
            .size
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Fail::Limit(format!("tensor `{name}` is too large to address")))?;
        Tensor::from_host(host, shape, device).map_err(|e| MatError::Vit(e.into()))
    }
}

/// Element `i` of a storage as `N` little-endian bytes (swapped from big-endian if needed).
fn rd<const N: usize>(data: &[u8], i: u64, big: bool) -> Option<[u8; N]> {
    let start = usize::try_from(i).ok()?.checked_mul(N)?;
    let s = data.get(start..start.checked_add(N)?)?;
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    if big {
        a.reverse();
    }
    Some(a)
}

/// The `n` elements of the strided view `spec`, in row-major order.
fn gather<T>(
    spec: &TensorSpec,
    n: usize,
    mut read: impl FnMut(u64) -> Option<T>,
) -> std::result::Result<Vec<T>, Fail> {
    let rank = spec.size.len().min(spec.stride.len());
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0u64; rank];
    // Offsets are tracked modulo 2^64: stepping past the end of a dimension and back is exact
    // in wrapping arithmetic, and every offset actually read was bounds-checked when the view
    // was built (and is checked again by `read`).
    let mut off = spec.offset;
    for _ in 0..n {
        let x = read(off).ok_or_else(|| {
            Fail::Corrupt(format!(
                "element offset {off} lies outside storage `{}`",
                pickle::display_name(&spec.storage.key)
            ))
        })?;
        out.push(x);
        for d in (0..rank).rev() {
            idx[d] += 1;
            off = off.wrapping_add(spec.stride[d]);
            if idx[d] < spec.size[d] {
                break;
            }
            off = off.wrapping_sub(spec.stride[d].wrapping_mul(spec.size[d]));
            idx[d] = 0;
        }
    }
    Ok(out)
}
