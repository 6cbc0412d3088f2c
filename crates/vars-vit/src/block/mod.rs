//! Transformer blocks (vars-spec §3): the pre-norm block shared by self-attention, the Performer,
//! VARS‑D and VARS‑SD, and the VARS‑S block, which replaces the whole block.
//!
//! Pre-norm block: `x ← x + DropPath(attn(LN₁ x))`, `x ← x + DropPath(mlp(LN₂ x))` (LN eps 1e‑6).

pub mod vars_s;

pub use vars_s::VarsSBlock;

use crate::attention::{Attention, Performer, SoftmaxAttention, VarsAttention};
use crate::config::{AttentionKind, VarsOptions, VarsSOptions};
use crate::introspect::{IterationTrace, LayerTrace};
use vars_core::sparse::diagnostics::Sparsity;

/// `ε` of the "below ε" sparsity count of traced codes (the measure vars-spec §7.1 quotes).
const CODE_EPS: f64 = 1e-3;
use crate::layers::mlp::Mlp;
use crate::layers::{drop_path, Init, LayerNorm, Mode};
use crate::params::{visit_child, visit_child_mut, ParamKind, Parameters};
use crate::Result;
use vars_core::{Backend, Tensor};

/// What a block needs to know to be built.
#[derive(Debug, Clone, Copy)]
pub struct BlockSpec {
    /// Width `C`.
    pub dim: usize,
    /// Heads `H`.
    pub heads: usize,
    /// Token-grid side `S` the block is built for (`N = S²`; VARS‑SD/VARS‑S depend on it).
    pub grid: usize,
    /// MLP hidden width (`mlp_ratio·C`).
    pub mlp_hidden: usize,
    /// Stochastic-depth rate of this block.
    pub drop_path: f64,
    /// The block type.
    pub attention: AttentionKind,
    /// RVT*: give the self-attention a position-aware mask.
    pub use_mask: bool,
    /// Tokens the block sees besides the `grid²` patch tokens (1 with a class token); VARS‑SD's
    /// static atoms cover all of them.
    pub extra_tokens: usize,
    /// The linear (timm ViT) MLP instead of RVT's choice by width.
    pub linear_mlp: bool,
    /// Ablation: the attention branch outputs zero (see [`PreNormBlock::ablate_attention`]).
    pub ablate_attention: bool,
}

/// The pre-norm block (names `norm1`, `attn`, `norm2`, `mlp`).
#[derive(Debug, Clone)]
pub struct PreNormBlock<B: Backend> {
    /// LayerNorm before the attention.
    pub norm1: LayerNorm<B>,
    /// The token mixer.
    pub attn: Attention<B>,
    /// LayerNorm before the MLP.
    pub norm2: LayerNorm<B>,
    /// The RVT MLP.
    pub mlp: Mlp<B>,
    /// Stochastic-depth rate.
    pub drop_path: f64,
    /// Ablation: the attention branch outputs zero, `x ← x + 0`, then the MLP as usual — the
    /// "attention-ablated twin" that shows what attention contributes. Off by default; the
    /// parameters stay (and get no gradient).
    pub ablate_attention: bool,
}

impl<B: Backend> PreNormBlock<B> {
    /// `(B, N, C)` → `(B, N, C)`; `stream` seeds this block's DropPath draws in train mode.
    pub fn forward(&self, x: &Tensor<B>, mode: Mode, stream: u64) -> Result<Tensor<B>> {
        let x = if self.ablate_attention {
            x.clone()
        } else {
            let a = self.attn.forward(&self.norm1.forward(x)?)?;
            x.add(&drop_path(&a, self.drop_path, mode, 2 * stream)?)?
        };
        let m = self.mlp.forward(&self.norm2.forward(&x)?, mode)?;
        Ok(x.add(&drop_path(&m, self.drop_path, mode, 2 * stream + 1)?)?)
    }
}

impl<B: Backend> Parameters<B> for PreNormBlock<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        visit_child("norm1", &self.norm1, f);
        visit_child("attn", &self.attn, f);
        visit_child("norm2", &self.norm2, f);
        visit_child("mlp", &self.mlp, f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        visit_child_mut("norm1", &mut self.norm1, f);
        visit_child_mut("attn", &mut self.attn, f);
        visit_child_mut("norm2", &mut self.norm2, f);
        visit_child_mut("mlp", &mut self.mlp, f);
    }
}

/// Any block of the family.
#[derive(Debug, Clone)]
pub enum Block<B: Backend> {
    /// Self-attention, Performer, VARS‑D, VARS‑SD.
    PreNorm(Box<PreNormBlock<B>>),
    /// VARS‑S.
    VarsS(Box<VarsSBlock<B>>),
}

impl<B: Backend> Block<B> {
    /// Builds a PyTorch-initialised block of `spec.attention`.
    pub fn new(
        init: &mut Init<'_, B>,
        spec: &BlockSpec,
        vars: &VarsOptions,
        vars_s: &VarsSOptions,
    ) -> Result<Self> {
        let n = spec.grid * spec.grid + spec.extra_tokens;
        let attn = match spec.attention {
            AttentionKind::VarsS if spec.extra_tokens > 0 => {
                return Err(crate::VitError::config(
                    "a VARS-S block with a class token",
                    "VARS-S works on the square token grid only (vars-spec §3.5): use average \
                     pooling instead of a class token",
                ))
            }
            AttentionKind::VarsS => {
                let mut block = VarsSBlock::new(
                    init,
                    spec.dim,
                    spec.grid,
                    spec.mlp_hidden,
                    spec.drop_path,
                    *vars_s,
                )?;
                block.ablate_attention = spec.ablate_attention;
                return Ok(Block::VarsS(Box::new(block)));
            }
            AttentionKind::SelfAttention => Attention::Softmax(SoftmaxAttention::new(
                init,
                spec.dim,
                spec.heads,
                spec.use_mask.then_some(n),
            )?),
            AttentionKind::Performer => Attention::Performer(Performer::new(
                init,
                spec.dim,
                spec.heads,
                vars.feature_norm,
            )?),
            AttentionKind::VarsD => {
                Attention::Vars(VarsAttention::new(init, spec.dim, spec.heads, None, *vars)?)
            }
            AttentionKind::VarsSd => Attention::Vars(VarsAttention::new(
                init,
                spec.dim,
                spec.heads,
                Some(n),
                *vars,
            )?),
        };
        let norm1 = LayerNorm::new(init, spec.dim)?;
        let norm2 = LayerNorm::new(init, spec.dim)?;
        let mlp = if spec.linear_mlp {
            Mlp::linear(init, spec.dim, spec.mlp_hidden)?
        } else {
            Mlp::new(init, spec.dim, spec.mlp_hidden)?
        };
        Ok(Block::PreNorm(Box::new(PreNormBlock {
            norm1,
            attn,
            norm2,
            mlp,
            drop_path: spec.drop_path,
            ablate_attention: spec.ablate_attention,
        })))
    }

    /// `(B, N, C)` → `(B, N, C)`; `stream` identifies the block for DropPath seeds.
    pub fn forward(&self, x: &Tensor<B>, mode: Mode, stream: u64) -> Result<Tensor<B>> {
        match self {
            Block::PreNorm(b) => b.forward(x, mode, stream),
            Block::VarsS(b) => b.forward(x, mode, stream),
        }
    }

    /// This block's attention iterations on its input tokens (see [`crate::introspect`]); `name`
    /// is the block's state-dict prefix. No gradient.
    pub fn trace(&self, tokens: &Tensor<B>, name: &str) -> Result<LayerTrace<B>> {
        match self {
            Block::PreNorm(b) => {
                let kind = match &b.attn {
                    Attention::Softmax(_) => AttentionKind::SelfAttention,
                    Attention::Performer(_) => AttentionKind::Performer,
                    Attention::Vars(v) if v.kernel.is_some() => AttentionKind::VarsSd,
                    Attention::Vars(_) => AttentionKind::VarsD,
                };
                let x = vars_core::no_grad(|| b.norm1.forward(&tokens.detach()))?;
                b.attn.trace(&x, name, kind)
            }
            Block::VarsS(b) => vars_core::no_grad(|| {
                let iterates = b.iterations(&tokens.detach())?;
                let mut iterations = Vec::with_capacity(iterates.len());
                for (step, it) in iterates.into_iter().enumerate() {
                    let values = it.code.to_vec_f64()?;
                    let sparsity = Sparsity {
                        total: values.len(),
                        exact_zeros: values.iter().filter(|v| **v == 0.0).count(),
                        below_eps: values.iter().filter(|v| v.abs() < CODE_EPS).count(),
                        eps: CODE_EPS,
                    };
                    iterations.push(IterationTrace {
                        step,
                        code: it.code,
                        reconstruction: it.reconstruction,
                        sparsity: Some(sparsity),
                        energy: None,
                        fixed_point_residual: None,
                    });
                }
                Ok(LayerTrace {
                    name: name.to_string(),
                    kind: AttentionKind::VarsS,
                    step_size: Some(b.step_constants().clone()),
                    lam: Some(Tensor::scalar(
                        b.options().lam,
                        tokens.dtype(),
                        tokens.device(),
                    )?),
                    dictionary: None,
                    attention: None,
                    energy_kind: None,
                    iterations,
                })
            }),
        }
    }

    /// Moves the block from an `old²` to a `new²` token grid (plus `extra` leading tokens such as
    /// a class token): VARS‑SD's static atoms are resized bicubically over their grid part,
    /// VARS‑S's spectra as spatial filters ([`VarsSBlock::resize_grid`]); the other blocks have
    /// nothing tied to the grid. The RVT* mask cannot be resized (an error).
    pub fn resize_grid(&mut self, old: usize, new: usize, extra: usize) -> Result<()> {
        match self {
            Block::VarsS(b) => b.resize_grid(new),
            Block::PreNorm(b) => match &mut b.attn {
                Attention::Vars(a) => {
                    if let Some(p) = &a.kernel {
                        let p = vars_core::no_grad(|| {
                            crate::vit::resize_tokens(&p.detach(), 2, extra, old, new)
                        })?;
                        a.kernel = Some(p);
                    }
                    Ok(())
                }
                Attention::Softmax(a) if a.att_mask.is_some() => Err(crate::VitError::config(
                    "resizing a block with the RVT* position-aware mask",
                    "the mask is tied to its 196 tokens; build the model at the new size",
                )),
                _ => Ok(()),
            },
        }
    }

    /// VARS‑S: `L_c ← (1 − rate)·L_c + rate·rule(K)` (vars-spec §3.5); a no-op for the others.
    pub fn update_step_constants(&mut self, rate: f64) -> Result<()> {
        match self {
            Block::PreNorm(_) => Ok(()),
            Block::VarsS(b) => b.update_step_constants(rate),
        }
    }
}

impl<B: Backend> Parameters<B> for Block<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        match self {
            Block::PreNorm(b) => b.visit(f),
            Block::VarsS(b) => b.visit(f),
        }
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        match self {
            Block::PreNorm(b) => b.visit_mut(f),
            Block::VarsS(b) => b.visit_mut(f),
        }
    }
}
