//! The error type of `vars-core`: every failure names the op and the offending shapes/dtypes.

use crate::{DType, Shape};

/// Result alias used across the engine.
pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{op}: shapes {lhs} and {rhs} are incompatible{hint}")]
    ShapeMismatch {
        op: &'static str,
        lhs: Shape,
        rhs: Shape,
        hint: String,
    },

    #[error("{op}: dtype mismatch, {lhs} vs {rhs}")]
    DTypeMismatch {
        op: &'static str,
        lhs: DType,
        rhs: DType,
    },

    #[error("{op}: dtype {dtype} is not supported (supported: {supported})")]
    UnsupportedDType {
        op: &'static str,
        dtype: DType,
        supported: &'static str,
    },

    #[error("{op}: dim {dim} is out of range for a tensor of shape {shape}")]
    DimOutOfRange {
        op: &'static str,
        dim: usize,
        shape: Shape,
    },

    #[error("{op}: invalid argument for shape {shape}: {msg}")]
    InvalidArgument {
        op: &'static str,
        shape: Shape,
        msg: String,
    },

    #[error("{op}: {got} elements given for shape {shape} ({expected} expected)")]
    ElementCount {
        op: &'static str,
        shape: Shape,
        expected: usize,
        got: usize,
    },

    #[error("{op}: index {index} out of range for dim {dim} of size {size}")]
    IndexOutOfRange {
        op: &'static str,
        index: i64,
        dim: usize,
        size: usize,
    },

    #[error("{op}: tensors live on different devices ({lhs} vs {rhs})")]
    DeviceMismatch {
        op: &'static str,
        lhs: String,
        rhs: String,
    },

    #[error("backward: {0}")]
    Autodiff(String),

    #[error("custom op `{name}`: {msg}")]
    CustomOp { name: String, msg: String },

    /// A backend-specific failure (allocation, driver, kernel launch), with the backend's name.
    #[error("{backend} backend: {msg}")]
    Backend { backend: &'static str, msg: String },
}

impl Error {
    pub(crate) fn shape_mismatch(op: &'static str, lhs: &Shape, rhs: &Shape) -> Self {
        Error::ShapeMismatch {
            op,
            lhs: lhs.clone(),
            rhs: rhs.clone(),
            hint: String::new(),
        }
    }

    pub(crate) fn invalid(op: &'static str, shape: &Shape, msg: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            shape: shape.clone(),
            msg: msg.into(),
        }
    }
}
