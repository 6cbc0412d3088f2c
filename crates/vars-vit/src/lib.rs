//! # vars-vit
//!
//! VARS attention (*Visual Attention Emerges from Recurrent Sparse Reconstruction*, Shi et al.,
//! ICML 2022) and the RVT vision transformers, on top of `vars-core`.
//!
//! - [`Parameters`]: how a model exposes its tensors under the official PyTorch state-dict names.
//! - [`io`]: [`io::StateDict`], safetensors load/save (memory-mapped read, atomic write), strict
//!   and non-strict loading into a model.
//! - [`VitError`]: this crate's error type.

pub mod attention;
pub mod block;
pub mod config;
pub mod error;
pub mod introspect;
pub mod io;
pub mod layers;
pub mod model;
pub mod params;
pub mod parity;
pub mod vit;

pub use error::{Result, VitError};
pub use io::{LoadReport, Mismatch, StateDict};
pub use params::{
    count_parameters, join_name, visit_child, visit_child_mut, ParamCounts, ParamKind, Parameters,
};
