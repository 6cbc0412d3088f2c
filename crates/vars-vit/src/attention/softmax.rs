//! Softmax self-attention, the RVT baseline (vars-spec §3.1), with RVT*'s optional
//! position-aware logit scaling `QKᵀ/√d ⊙ sigmoid(M)`, `M: (H, N, N)` (`attn.att_mask`).

use super::{check_tokens, merge_heads, split_heads};
use crate::config::MASK_INIT;
use crate::layers::{Init, Linear};
use crate::params::{visit_child, visit_child_mut, ParamKind, Parameters};
use crate::Result;
use vars_core::{nn, Backend, Tensor};

/// `softmax(QKᵀ·d^{−1/2} [⊙ sigmoid(M)])·V`, heads merged, then `proj`.
#[derive(Debug, Clone)]
pub struct SoftmaxAttention<B: Backend> {
    /// `C → 3C`, `[Q | K | V]`.
    pub qkv: Linear<B>,
    /// `C → C`.
    pub proj: Linear<B>,
    /// RVT*: `(H, N, N)` logit mask, initialised to [`MASK_INIT`].
    pub att_mask: Option<Tensor<B>>,
    /// `H`.
    pub heads: usize,
}

impl<B: Backend> SoftmaxAttention<B> {
    /// A PyTorch-initialised layer; `mask_tokens = Some(N)` adds the RVT* mask for `N` tokens.
    pub fn new(
        init: &mut Init<'_, B>,
        dim: usize,
        heads: usize,
        mask_tokens: Option<usize>,
    ) -> Result<Self> {
        let qkv = Linear::new(init, dim, 3 * dim, true)?;
        let proj = Linear::new(init, dim, dim, true)?;
        let att_mask = match mask_tokens {
            Some(n) => Some(init.full(&[heads, n, n], MASK_INIT)?),
            None => None,
        };
        Ok(SoftmaxAttention {
            qkv,
            proj,
            att_mask,
            heads,
        })
    }

    /// `(B, N, C)` → `(B, N, C)`.
    pub fn forward(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        let (attn, v) = self.weights(x)?;
        self.proj.forward(&merge_heads(&attn.matmul(&v)?)?)
    }

    /// The attention weights `(B, H, N, N)` and values `(B, H, N, d)` for input `x`.
    pub fn weights(&self, x: &Tensor<B>) -> Result<(Tensor<B>, Tensor<B>)> {
        let c = self.proj.weight.dims()[0];
        let (_, n) = check_tokens("SoftmaxAttention", x, c)?;
        let d = c / self.heads;
        let qkv = split_heads(&self.qkv.forward(x)?, 3, self.heads)?;
        let (q, k, v) = (&qkv[0], &qkv[1], &qkv[2]);
        let mut logits = q
            .matmul(&k.transpose(2, 3)?)?
            .mul_scalar((d as f64).powf(-0.5))?;
        if let Some(m) = &self.att_mask {
            if m.dims()[1] != n {
                return Err(crate::VitError::Input {
                    module: "SoftmaxAttention",
                    problem: format!(
                        "the RVT* mask is built for {} tokens, the input has {n}",
                        m.dims()[1]
                    ),
                });
            }
            logits = logits.mul(&m.sigmoid()?)?;
        }
        Ok((nn::softmax(&logits, 3)?, v.clone()))
    }
}

impl<B: Backend> Parameters<B> for SoftmaxAttention<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        if let Some(m) = &self.att_mask {
            f("att_mask", m, ParamKind::Trainable);
        }
        visit_child("qkv", &self.qkv, f);
        visit_child("proj", &self.proj, f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        if let Some(m) = &mut self.att_mask {
            f("att_mask", m);
        }
        visit_child_mut("qkv", &mut self.qkv, f);
        visit_child_mut("proj", &mut self.proj, f);
    }
}
