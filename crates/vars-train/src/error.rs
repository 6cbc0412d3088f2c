//! The error type of `vars-train`.
//!
//! Every variant says what went wrong and, where the caller can act on it, what to do: a bad
//! configuration names the field and the accepted range, a checkpoint problem names the file and
//! how to recover (the previous checkpoint, a fresh start), a non-finite loss names the step and
//! the usual remedies.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T> = std::result::Result<T, TrainError>;

/// A boxed error from a [`crate::BatchSource`] implementation (any error type converts with `?`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A training setting outside its valid range, or settings that do not fit together.
    #[error("invalid training configuration: {problem}. {hint}")]
    Config {
        /// What is wrong, with the value involved.
        problem: String,
        /// What to change.
        hint: String,
    },

    /// A batch the trainer cannot use (wrong rank, dtype, batch size or target shape).
    #[error("bad batch (epoch {epoch}, step {step}): {problem}")]
    Batch {
        epoch: usize,
        step: usize,
        /// What is wrong, with the shapes involved.
        problem: String,
    },

    /// The batch source failed to produce a batch.
    #[error("the batch source failed at epoch {epoch}, step {step}: {source}")]
    Data {
        epoch: usize,
        step: usize,
        #[source]
        source: BoxError,
    },

    /// The loss or the gradient norm became NaN or infinite (DeiT stops training here too).
    #[error(
        "{what} is {value} at epoch {epoch}, step {step} (global step {global_step}); training \
         stopped. Lower the learning rate, enable gradient clipping (`clip_grad_norm`), or check \
         the data for NaN/Inf; then resume from the last checkpoint"
    )]
    NonFinite {
        /// "the loss" or "the gradient norm".
        what: &'static str,
        value: f64,
        epoch: usize,
        step: usize,
        global_step: u64,
    },

    /// Optimiser, EMA or gradient state that does not line up with the model (a parameter
    /// missing, renamed or of another shape).
    #[error("{what} does not match the model: {problem}. {hint}")]
    StateMismatch {
        /// Which state ("optimizer state", "EMA weights", "gradients").
        what: &'static str,
        problem: String,
        hint: String,
    },

    /// A checkpoint that cannot be written or read back.
    #[error("checkpoint `{path}`: {problem}. {hint}")]
    Checkpoint {
        path: PathBuf,
        problem: String,
        hint: String,
    },

    /// An operating-system I/O failure, with what was being done and the path.
    #[error("{action} `{path}`: {source}")]
    Io {
        action: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A model error (forward pass, state-dict load/save).
    #[error(transparent)]
    Vit(#[from] vars_vit::VitError),

    /// An engine error (tensor ops, autodiff).
    #[error(transparent)]
    Core(#[from] vars_core::Error),
}

impl TrainError {
    /// A [`TrainError::Config`].
    pub fn config(problem: impl Into<String>, hint: impl Into<String>) -> Self {
        TrainError::Config {
            problem: problem.into(),
            hint: hint.into(),
        }
    }

    /// A [`TrainError::Io`].
    pub(crate) fn io(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
        e: std::io::Error,
    ) -> Self {
        TrainError::Io {
            action: action.into(),
            path: path.into(),
            source: e,
        }
    }

    /// A [`TrainError::Checkpoint`].
    pub(crate) fn checkpoint(
        path: impl Into<PathBuf>,
        problem: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        TrainError::Checkpoint {
            path: path.into(),
            problem: problem.into(),
            hint: hint.into(),
        }
    }
}
