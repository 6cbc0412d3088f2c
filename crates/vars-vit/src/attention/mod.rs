//! The attention family (vars-spec §3): what sits in `attn` of a pre-norm block.
//!
//! | module | spec | computes per head |
//! |---|---|---|
//! | [`SoftmaxAttention`] | §3.1 | `softmax(QKᵀ/√d [⊙ sigmoid(M)]) V` |
//! | [`Performer`] | §3.2 | `normalize₁(φ(Q)φ(K)ᵀ) V`, quadratic form |
//! | [`VarsAttention`] | §3.3, §3.4 | `D·A`, `A` the unrolled sparse code of `V` in `D = colnorm(φ(Q) [| P])` |
//!
//! VARS‑S is not an attention module: it replaces the whole block ([`crate::block::VarsSBlock`]).
//!
//! Layouts (vars-spec §0): the fused projection's channels are `[Q | K | V]` (or `[Q | V]`),
//! each `C` wide; channel `c` belongs to head `c / d` at position `c mod d`.

mod performer;
mod softmax;
mod vars;

pub use performer::Performer;
pub use softmax::SoftmaxAttention;
pub use vars::{CodingProblem, VarsAttention};

use crate::config::AttentionKind;
use crate::introspect::{IterationTrace, LayerTrace};
use crate::params::{ParamKind, Parameters};
use crate::Result;
use vars_core::{Backend, Tensor};

/// One of the token-mixing attention modules of a pre-norm block.
#[derive(Debug, Clone)]
pub enum Attention<B: Backend> {
    /// Softmax self-attention (optionally RVT*-masked).
    Softmax(SoftmaxAttention<B>),
    /// Quadratic Performer.
    Performer(Performer<B>),
    /// VARS‑D or VARS‑SD.
    Vars(VarsAttention<B>),
}

impl<B: Backend> Attention<B> {
    /// `(B, N, C)` → `(B, N, C)`.
    pub fn forward(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        match self {
            Attention::Softmax(a) => a.forward(x),
            Attention::Performer(a) => a.forward(x),
            Attention::Vars(a) => a.forward(x),
        }
    }
}

impl<B: Backend> Attention<B> {
    /// This layer's iterations on its (layer-normed) input (see [`crate::introspect`]).
    pub fn trace(&self, x: &Tensor<B>, name: &str, kind: AttentionKind) -> Result<LayerTrace<B>> {
        let one_step = |attn: Tensor<B>, v: Tensor<B>| -> Result<LayerTrace<B>> {
            let reconstruction = merge_heads(&attn.matmul(&v)?)?;
            Ok(LayerTrace {
                name: name.to_string(),
                kind,
                step_size: None,
                lam: None,
                dictionary: None,
                attention: Some(attn.clone()),
                energy_kind: None,
                iterations: vec![IterationTrace {
                    step: 0,
                    code: attn,
                    reconstruction,
                    sparsity: None,
                    energy: None,
                    fixed_point_residual: None,
                }],
            })
        };
        let x = x.detach();
        vars_core::no_grad(|| match self {
            Attention::Softmax(a) => {
                let (w, v) = a.weights(&x)?;
                one_step(w, v)
            }
            Attention::Performer(a) => {
                let (w, v) = a.weights(&x)?;
                one_step(w, v)
            }
            Attention::Vars(a) => a.trace(&x, name, kind),
        })
    }
}

impl<B: Backend> Parameters<B> for Attention<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        match self {
            Attention::Softmax(a) => a.visit(f),
            Attention::Performer(a) => a.visit(f),
            Attention::Vars(a) => a.visit(f),
        }
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        match self {
            Attention::Softmax(a) => a.visit_mut(f),
            Attention::Performer(a) => a.visit_mut(f),
            Attention::Vars(a) => a.visit_mut(f),
        }
    }
}

/// Checks `x: (B, N, C)` with the module's width.
pub(crate) fn check_tokens<B: Backend>(
    module: &'static str,
    x: &Tensor<B>,
    width: usize,
) -> Result<(usize, usize)> {
    if x.rank() != 3 || x.dims()[2] != width {
        return Err(crate::VitError::Input {
            module,
            problem: format!("expected tokens (B, N, {width}), got {}", x.shape()),
        });
    }
    Ok((x.dims()[0], x.dims()[1]))
}

/// Splits the fused projection `(B, N, k·H·d)` into `k` head-major tensors `(B, H, N, d)`.
pub(crate) fn split_heads<B: Backend>(
    fused: &Tensor<B>,
    parts: usize,
    heads: usize,
) -> Result<Vec<Tensor<B>>> {
    let (b, n, kc) = (fused.dims()[0], fused.dims()[1], fused.dims()[2]);
    let d = kc / parts / heads;
    let t = fused
        .reshape([b, n, parts, heads, d])?
        .permute(&[2, 0, 3, 1, 4])?;
    (0..parts)
        .map(|i| Ok(t.narrow(0, i, 1)?.squeeze(0)?))
        .collect()
}

/// Merges heads `(B, H, N, d)` back to tokens `(B, N, H·d)`.
pub(crate) fn merge_heads<B: Backend>(y: &Tensor<B>) -> Result<Tensor<B>> {
    let (b, h, n, d) = (y.dims()[0], y.dims()[1], y.dims()[2], y.dims()[3]);
    Ok(y.permute(&[0, 2, 1, 3])?.reshape([b, n, h * d])?)
}
