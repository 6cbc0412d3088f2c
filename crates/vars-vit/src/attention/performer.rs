//! The quadratic Performer baseline (vars-spec §3.2): positive random features of queries and
//! keys (spec §2, `m = 2d` fixed), the `N×N` kernel matrix materialised and row-normalised.

use super::{check_tokens, merge_heads, split_heads};
use crate::layers::{Init, Linear};
use crate::params::{visit_child, visit_child_mut, ParamKind, Parameters};
use crate::Result;
use vars_core::sparse::features::PositiveRandomFeatures;
use vars_core::{Backend, Tensor};

/// `normalize₁(φ(Q)φ(K)ᵀ)·V`, heads merged, then `proj`.
#[derive(Debug, Clone)]
pub struct Performer<B: Backend> {
    /// `C → 3C`, `[Q | K | V]`.
    pub qkv: Linear<B>,
    /// `C → C`.
    pub proj: Linear<B>,
    /// Frozen Ω `(H, d, 2d)`, `N(0, 1)` (`attn.rand_matrix`).
    pub rand_matrix: Tensor<B>,
    /// `H`.
    pub heads: usize,
    /// Unit-normalise inputs of φ (official HEAD).
    pub feature_norm: bool,
}

impl<B: Backend> Performer<B> {
    /// A PyTorch-initialised layer with a fresh Ω.
    pub fn new(
        init: &mut Init<'_, B>,
        dim: usize,
        heads: usize,
        feature_norm: bool,
    ) -> Result<Self> {
        let d = dim / heads;
        Ok(Performer {
            qkv: Linear::new(init, dim, 3 * dim, true)?,
            proj: Linear::new(init, dim, dim, true)?,
            rand_matrix: init.normal(&[heads, d, 2 * d], 1.0)?,
            heads,
            feature_norm,
        })
    }

    /// `(B, N, C)` → `(B, N, C)`.
    pub fn forward(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        let (a, v) = self.weights(x)?;
        self.proj.forward(&merge_heads(&a.matmul(&v)?)?)
    }

    /// The row-normalised kernel matrix `(B, H, N, N)` and values `(B, H, N, d)`.
    pub fn weights(&self, x: &Tensor<B>) -> Result<(Tensor<B>, Tensor<B>)> {
        let c = self.proj.weight.dims()[0];
        check_tokens("Performer", x, c)?;
        let qkv = split_heads(&self.qkv.forward(x)?, 3, self.heads)?;
        let phi = PositiveRandomFeatures::from_omega(&self.rand_matrix, self.feature_norm)?;
        let (fq, fk) = (phi.apply(&qkv[0])?, phi.apply(&qkv[1])?);
        let a = fq.matmul(&fk.transpose(2, 3)?)?;
        let a = a.div(&a.norm_l1(&[3], true)?.clamp_min(1e-12)?)?;
        Ok((a, qkv[2].clone()))
    }
}

impl<B: Backend> Parameters<B> for Performer<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        f("rand_matrix", &self.rand_matrix, ParamKind::Frozen);
        visit_child("qkv", &self.qkv, f);
        visit_child("proj", &self.proj, f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        f("rand_matrix", &mut self.rand_matrix);
        visit_child_mut("qkv", &mut self.qkv, f);
        visit_child_mut("proj", &mut self.proj, f);
    }
}
