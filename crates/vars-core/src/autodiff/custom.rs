//! The custom-op API: user code supplies a forward and a backward, the engine wires them into
//! the graph. This is how fused kernels (the sparse-coding loop, CUDA kernels) get gradients
//! without touching the engine.
//!
//! ```
//! use vars_core::{CustomOp, CustomBackward, Tensor, Backend, Result};
//! use std::sync::Arc;
//!
//! /// `y = x³`, with its hand-written derivative `3x²`.
//! struct Cube;
//! impl<B: Backend> CustomOp<B> for Cube {
//!     fn name(&self) -> &str { "cube" }
//!     fn forward(&self, inputs: &[Tensor<B>]) -> Result<(Tensor<B>, Arc<dyn CustomBackward<B>>)> {
//!         let x = inputs[0].clone();
//!         let y = x.mul(&x)?.mul(&x)?;
//!         let backward = move |g: &Tensor<B>| -> Result<Vec<Option<Tensor<B>>>> {
//!             Ok(vec![Some(g.mul(&x.sqr()?.mul_scalar(3.0)?)?)])
//!         };
//!         Ok((y, Arc::new(backward)))
//!     }
//! }
//! ```

use super::op::Op;
use crate::{Backend, Error, Result, Tensor};
use std::sync::Arc;

/// The backward half of a custom op: given the output gradient, one optional gradient per input
/// (in input order, each shaped like its input). It owns exactly the state it needs.
pub trait CustomBackward<B: Backend>: Send + Sync {
    fn backward(&self, grad_output: &Tensor<B>) -> Result<Vec<Option<Tensor<B>>>>;
}

impl<B: Backend, F> CustomBackward<B> for F
where
    F: Fn(&Tensor<B>) -> Result<Vec<Option<Tensor<B>>>> + Send + Sync,
{
    fn backward(&self, grad_output: &Tensor<B>) -> Result<Vec<Option<Tensor<B>>>> {
        self(grad_output)
    }
}

/// An op with its own forward and backward, usable on any backend it is implemented for.
pub trait CustomOp<B: Backend>: Send + Sync {
    fn name(&self) -> &str;
    /// Computes the output from untracked inputs (it runs under `no_grad`) and returns it with
    /// the backward closure/state.
    fn forward(&self, inputs: &[Tensor<B>]) -> Result<(Tensor<B>, Arc<dyn CustomBackward<B>>)>;
}

impl<B: Backend> Tensor<B> {
    /// Applies a [`CustomOp`]; on an autodiff backend the output is tracked when any input is.
    pub fn apply_custom(op: &dyn CustomOp<B>, inputs: &[&Tensor<B>]) -> Result<Tensor<B>> {
        let detached: Vec<Tensor<B>> = inputs.iter().map(|t| t.detach()).collect();
        let (out, backward) =
            super::no_grad(|| op.forward(&detached)).map_err(|e| Error::CustomOp {
                name: op.name().to_string(),
                msg: e.to_string(),
            })?;
        let name = op.name().to_string();
        Ok(out
            .detach()
            .attach(inputs, move |_| Op::Custom { name, backward }))
    }
}
