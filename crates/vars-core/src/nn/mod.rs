//! Neural-network ops on the backend trait, with PyTorch's semantics (spec §0, §3.6, §4).
//!
//! One file per op family. Most are compositions of tensor ops, so they run on every backend
//! and are differentiated by the engine; the ones that need their own kernels (im2col for
//! convolution and pooling, the fused shrinks) are backend ops.

mod conv;
mod dropout;
pub mod fft;
mod linear;
mod loss;
mod norm;
mod pool;
mod shrink;
mod softmax;

pub use conv::conv2d;
pub use dropout::{drop_path, dropout};
pub use fft::{irfft2, rfft2};
pub use linear::linear;
pub use loss::{cross_entropy, Target};
pub use norm::{batch_norm, layer_norm, BatchNormStats};
pub use pool::{global_avg_pool2d, max_pool2d};
pub use shrink::{shrink, shrink_scalar, Shrink};
pub use softmax::{log_softmax, log_softmax_composite, softmax, softmax_composite};
