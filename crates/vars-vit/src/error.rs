//! The error type of `vars-vit`.
//!
//! Every variant says what failed and, where the caller can act on it, what to do: I/O errors
//! carry the path, a corrupt checkpoint says which structural rule it breaks (and which tensor),
//! and a state-dict mismatch lists *all* missing, unexpected and mismatched keys at once, sorted,
//! so one failed load shows the whole picture instead of the first bad key.

use crate::io::LoadReport;
use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T> = std::result::Result<T, VitError>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VitError {
    /// An operating-system I/O failure, with what was being done and the path it was done to.
    #[error("{action} `{path}`: {source}")]
    Io {
        /// What was attempted, e.g. "cannot open checkpoint".
        action: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is not a well-formed safetensors file (empty, truncated, bad header, offsets that
    /// do not tile the data, a byte length that disagrees with dtype × shape, ...).
    #[error("`{path}` is not a valid safetensors file: {problem}. {hint}")]
    Corrupt {
        path: PathBuf,
        /// What is wrong, naming the tensor and the numbers involved where there are any.
        problem: String,
        /// What to do about it.
        hint: &'static str,
    },

    /// A well-formed file holds a tensor whose element type this crate cannot represent.
    #[error(
        "`{path}`: tensor `{key}` has dtype {dtype}, which cannot be loaded \
         (supported: F32, F64, I64; F16 and BF16 are widened to F32)"
    )]
    UnsupportedDType {
        path: PathBuf,
        key: String,
        dtype: String,
    },

    /// A state dict that cannot be written (reserved key, unsupported dtype, oversized header).
    #[error("cannot save `{path}`: {msg}")]
    InvalidSave { path: PathBuf, msg: String },

    /// A strict [`crate::io::StateDict::load_into`] found keys that do not line up with the
    /// model. Nothing was assigned. The report lists every problem.
    #[error("{0}")]
    StateDictMismatch(LoadReport),

    /// A model's [`crate::Parameters`] visit produced the same name twice (a bug in the model).
    #[error("the model visits parameter `{0}` more than once; state-dict names must be unique")]
    DuplicateName(String),

    /// A model or layer configuration the reference cannot run (e.g. an input size that breaks
    /// VARS‑SD/VARS‑S, the RVT* mask with a VARS block), with what to change.
    #[error("invalid configuration: {problem}. {hint}")]
    Config {
        /// What is wrong, with the numbers involved.
        problem: String,
        /// What to do about it.
        hint: String,
    },

    /// An input tensor the model cannot take (wrong rank, channels, size, or non-finite values).
    #[error("bad input to {module}: {problem}")]
    Input {
        /// The module that rejected it.
        module: &'static str,
        /// What is wrong.
        problem: String,
    },

    /// An engine error (tensor creation, host transfer, dtype conversion).
    #[error(transparent)]
    Core(#[from] vars_core::Error),

    /// A PyTorch `.pth` checkpoint that is damaged: truncated, a malformed zip archive or
    /// pickle, a failed CRC, a storage declared larger than its record, a tensor view reaching
    /// outside its storage ([`crate::io::pth`]).
    #[error("`{path}` is not a valid PyTorch checkpoint: {problem}. {hint}")]
    PthCorrupt {
        path: PathBuf,
        /// What is wrong, with the entry, opcode position or numbers involved.
        problem: String,
        /// What to do about it.
        hint: &'static str,
    },

    /// A `.pth` this reader does not handle: the legacy non-zip or tar format, compressed
    /// entries, a TorchScript archive, no state dict, or a resource limit of
    /// [`crate::io::pth::PthLimits`].
    #[error("`{path}` cannot be loaded: {problem}. {hint}")]
    PthUnsupported {
        path: PathBuf,
        problem: String,
        hint: &'static str,
    },

    /// The checkpoint's pickle references a global outside the allowlist of the restricted
    /// reader (e.g. `posix.system`). Nothing from the file was executed.
    #[error(
        "`{path}`: the pickle references the global `{global}`, which is not on the allowlist \
         of the restricted .pth reader; nothing from the file was executed. {hint}"
    )]
    PthForbiddenGlobal {
        path: PathBuf,
        /// `module.name`, as written in the file (escaped).
        global: String,
        hint: &'static str,
    },
}

impl VitError {
    /// A [`VitError::Config`].
    pub fn config(problem: impl Into<String>, hint: impl Into<String>) -> Self {
        VitError::Config {
            problem: problem.into(),
            hint: hint.into(),
        }
    }
}
