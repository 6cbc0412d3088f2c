//! # vars-core
//!
//! The engine under VARS (*Visual Attention Emerges from Recurrent Sparse Reconstruction*, Shi et
//! al., ICML 2022): a small strided tensor library with pluggable compute backends and autodiff.
//!
//! - [`Backend`]: what a compute backend implements (`vars-cpu`, `vars-cuda`).
//! - [`Layout`]: shape + strides + offset; every op takes one, so views are free.
//! - [`DType`] / [`HostData`]: run-time element types and host buffers.
//! - [`rng`]: the documented counter-based generator shared by all backends.

pub mod autodiff;
pub mod backend;
pub mod dtype;
pub mod error;
pub mod layout;
pub mod nn;
pub mod rng;
pub mod shape;
pub mod sparse;
pub mod tensor;
#[cfg(feature = "testing")]
pub mod testing;

pub use autodiff::{
    is_grad_enabled, no_grad, Autodiff, CustomBackward, CustomOp, GradStore, NoGradGuard,
};
pub use backend::{Backend, BinaryOp, Distribution, ReduceOp, UnaryOp};
pub use dtype::{DType, Element, HostData};
pub use error::{Error, Result};
pub use layout::{Blocks, Layout, StridedIndex};
pub use shape::Shape;
pub use tensor::{Tensor, TensorId, Window2d};
