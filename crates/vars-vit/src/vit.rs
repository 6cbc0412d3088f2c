//! ViT/DeiT (Dosovitskiy et al.; Touvron et al.) with any attention of the family, under timm's
//! state-dict names, so VARS can be dropped into the transformers researchers already use.
//!
//! ```text
//! image → patch_embed.proj (conv p×p/p) → tokens (B, S², C)
//!       → [cls_token ‖ tokens] + pos_embed → blocks.{i} (pre-norm) → norm → cls / mean → head
//! ```
//!
//! Names: `cls_token (1, 1, C)`, `pos_embed (1, [1 +] S², C)`, `patch_embed.proj.*`,
//! `blocks.{i}.{norm1, attn.*, norm2, mlp.fc1, mlp.fc2}`, `norm`, `head` (timm 0.3–0.9). The MLP
//! is timm's linear one at every width.
//!
//! **Resolution (a project extension; the reference RVT models are resolution-locked).**
//! [`VisionTransformer::resize`] moves a model to another input size: the position embedding's
//! grid part is resized bicubically as timm's `resample_abs_pos_embed` does (the class-token row
//! is kept), VARS‑SD's static atoms `P (1, H, N, m)` are resized over their grid part the same
//! way, and VARS‑S's spectra are resized as spatial filters (`h = F⁻¹K` resized bicubically and
//! rescaled by `S'/S` to keep the ortho-normalised response, then `K' = F h`), after which its
//! `L_c` is recomputed by the configured rule. Sizes must keep the patch grid integral.
//!
//! VARS‑S needs the square token grid alone, so a VARS‑S ViT uses average pooling
//! ([`Pooling::Average`]) instead of a class token.

use crate::block::{Block, BlockSpec};
use crate::config::{AttentionKind, VarsOptions, VarsSOptions};
use crate::introspect::LayerTrace;
use crate::layers::resize::resize_grid;
use crate::layers::{Conv2d, Init, LayerNorm, Linear, Mode};
use crate::params::{visit_child, visit_child_mut, ParamKind, Parameters};
use crate::{Result, VitError};
use vars_core::{Backend, Tensor, Window2d};

/// How the tokens become one feature vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The class token (ViT/DeiT).
    ClassToken,
    /// The mean over the patch tokens (no class token; timm's `global_pool="avg"`).
    Average,
}

/// A ViT/DeiT configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct VitConfig {
    /// Input side in pixels.
    pub image_size: usize,
    /// Patch side and stride.
    pub patch_size: usize,
    /// Input channels.
    pub in_chans: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Width `C`.
    pub embed_dim: usize,
    /// Number of blocks.
    pub depth: usize,
    /// Heads.
    pub heads: usize,
    /// MLP hidden width ratio.
    pub mlp_ratio: usize,
    /// Stochastic-depth rate of the last block's ramp.
    pub drop_path_rate: f64,
    /// Class token or average pooling.
    pub pooling: Pooling,
    /// The attention of every block.
    pub attention: AttentionKind,
    /// VARS‑D/SD and Performer settings.
    pub vars: VarsOptions,
    /// VARS‑S settings.
    pub vars_s: VarsSOptions,
}

impl VitConfig {
    fn base(dim: usize, depth: usize, heads: usize, attention: AttentionKind) -> Self {
        VitConfig {
            image_size: 224,
            patch_size: 16,
            in_chans: 3,
            num_classes: 1000,
            embed_dim: dim,
            depth,
            heads,
            mlp_ratio: 4,
            drop_path_rate: 0.1,
            pooling: if attention == AttentionKind::VarsS {
                Pooling::Average
            } else {
                Pooling::ClassToken
            },
            attention,
            vars: VarsOptions::official(),
            vars_s: VarsSOptions::default(),
        }
    }
    /// DeiT‑Ti / ViT‑Ti/16: C = 192, 12 blocks, 3 heads.
    pub fn deit_tiny(attention: AttentionKind) -> Self {
        Self::base(192, 12, 3, attention)
    }
    /// DeiT‑S / ViT‑S/16: C = 384, 12 blocks, 6 heads.
    pub fn deit_small(attention: AttentionKind) -> Self {
        Self::base(384, 12, 6, attention)
    }
    /// DeiT‑B / ViT‑B/16: C = 768, 12 blocks, 12 heads.
    pub fn deit_base(attention: AttentionKind) -> Self {
        Self::base(768, 12, 12, attention)
    }

    /// Patch-grid side.
    pub fn grid(&self) -> usize {
        self.image_size.checked_div(self.patch_size).unwrap_or(0)
    }

    /// Tokens besides the patch tokens.
    pub fn extra_tokens(&self) -> usize {
        match self.pooling {
            Pooling::ClassToken => 1,
            Pooling::Average => 0,
        }
    }

    /// Checks sizes and the pooling/attention combination.
    pub fn validate(&self) -> Result<()> {
        if self.patch_size == 0 || self.image_size % self.patch_size != 0 || self.grid() == 0 {
            return Err(VitError::config(
                format!(
                    "image size {} with patch size {}",
                    self.image_size, self.patch_size
                ),
                "the patch must be positive and divide the image side",
            ));
        }
        if self.heads == 0 || self.embed_dim % self.heads != 0 || self.depth == 0 {
            return Err(VitError::config(
                format!(
                    "width {} with {} heads, depth {}",
                    self.embed_dim, self.heads, self.depth
                ),
                "the width must be a positive multiple of the heads, with at least one block",
            ));
        }
        if self.attention == AttentionKind::VarsS && self.pooling == Pooling::ClassToken {
            return Err(VitError::config(
                "VARS-S with a class token",
                "VARS-S works on the square token grid only: use Pooling::Average",
            ));
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) || self.num_classes == 0 {
            return Err(VitError::config(
                "drop_path_rate outside [0, 1) or zero classes",
                "fix the configuration",
            ));
        }
        self.vars.validate()
    }
}

/// The ViT/DeiT model (module docs).
#[derive(Debug, Clone)]
pub struct VisionTransformer<B: Backend> {
    /// The configuration it was built for (updated by [`Self::resize`]).
    pub config: VitConfig,
    /// `patch_embed.proj`.
    pub patch_embed: Conv2d<B>,
    /// `cls_token (1, 1, C)` with [`Pooling::ClassToken`].
    pub cls_token: Option<Tensor<B>>,
    /// `pos_embed (1, extra + S², C)`.
    pub pos_embed: Tensor<B>,
    /// `blocks`.
    pub blocks: Vec<Block<B>>,
    /// Final LayerNorm.
    pub norm: LayerNorm<B>,
    /// Classifier.
    pub head: Linear<B>,
}

impl<B: Backend> VisionTransformer<B> {
    /// A freshly initialised model: PyTorch defaults for the layers, `0.02·N(0, 1)` for the class
    /// token and the position embedding (timm uses a truncated normal of the same scale).
    pub fn new(config: &VitConfig, init: &mut Init<'_, B>) -> Result<Self> {
        config.validate()?;
        let (c, s) = (config.embed_dim, config.grid());
        let patch_embed = Conv2d::new(
            init,
            config.in_chans,
            c,
            Window2d::square(config.patch_size, config.patch_size, 0),
            1,
        )?;
        let cls_token = match config.pooling {
            Pooling::ClassToken => Some(init.normal(&[1, 1, c], 0.02)?),
            Pooling::Average => None,
        };
        let pos_embed = init.normal(&[1, config.extra_tokens() + s * s, c], 0.02)?;
        let mut blocks = Vec::with_capacity(config.depth);
        for i in 0..config.depth {
            let spec = BlockSpec {
                dim: c,
                heads: config.heads,
                grid: s,
                mlp_hidden: c * config.mlp_ratio,
                drop_path: config.drop_path_rate * i as f64 / config.depth as f64,
                attention: config.attention,
                use_mask: false,
                extra_tokens: config.extra_tokens(),
                linear_mlp: true,
                ablate_attention: false,
            };
            blocks.push(Block::new(init, &spec, &config.vars, &config.vars_s)?);
        }
        Ok(VisionTransformer {
            config: config.clone(),
            patch_embed,
            cls_token,
            pos_embed,
            blocks,
            norm: LayerNorm::new(init, c)?,
            head: Linear::new(init, c, config.num_classes, true)?,
        })
    }

    fn check_input(&self, x: &Tensor<B>) -> Result<()> {
        let (c, s) = (self.config.in_chans, self.config.image_size);
        if x.rank() != 4 || x.dims()[1] != c || x.dims()[2] != s || x.dims()[3] != s {
            return Err(VitError::Input {
                module: "VisionTransformer",
                problem: format!(
                    "expected images (B, {c}, {s}, {s}), got {}; call resize() to run at \
                     another size",
                    x.shape()
                ),
            });
        }
        Ok(())
    }

    /// The token sequence entering the blocks: patches (+ class token) + position embedding.
    pub fn embed(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        self.check_input(x)?;
        let p = self.patch_embed.forward(x)?;
        let (b, c, h, w) = (p.dims()[0], p.dims()[1], p.dims()[2], p.dims()[3]);
        let mut tokens = p.reshape([b, c, h * w])?.transpose(1, 2)?;
        if let Some(cls) = &self.cls_token {
            let cls = cls.broadcast_as([b, 1, c])?;
            tokens = Tensor::cat(&[&cls, &tokens], 1)?;
        }
        Ok(tokens.add(&self.pos_embed)?)
    }

    fn head_of(&self, tokens: &Tensor<B>) -> Result<Tensor<B>> {
        let t = self.norm.forward(tokens)?;
        let pooled = match self.config.pooling {
            Pooling::ClassToken => t.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Average => t.mean(&[1], false)?,
        };
        self.head.forward(&pooled)
    }

    /// Logits `(B, classes)`.
    pub fn forward(&self, x: &Tensor<B>, mode: Mode) -> Result<Tensor<B>> {
        let mut t = self.embed(x)?;
        for (i, block) in self.blocks.iter().enumerate() {
            t = block.forward(&t, mode, i as u64)?;
        }
        self.head_of(&t)
    }

    /// Logits and every block's attention iterations ([`crate::introspect`]).
    pub fn introspect(&self, x: &Tensor<B>, mode: Mode) -> Result<(Tensor<B>, Vec<LayerTrace<B>>)> {
        let mut t = self.embed(x)?;
        let mut traces = Vec::with_capacity(self.blocks.len());
        for (i, block) in self.blocks.iter().enumerate() {
            traces.push(block.trace(&t, &format!("blocks.{i}"))?);
            t = block.forward(&t, mode, i as u64)?;
        }
        Ok((self.head_of(&t)?, traces))
    }

    /// Moves the model to `image_size` (module docs): resizes the position embedding, VARS‑SD's
    /// static atoms and VARS‑S's spectra; a no-op at the current size.
    pub fn resize(&mut self, image_size: usize) -> Result<()> {
        let mut cfg = self.config.clone();
        cfg.image_size = image_size;
        cfg.validate()?;
        let (old, new) = (self.config.grid(), cfg.grid());
        if old == new {
            self.config = cfg;
            return Ok(());
        }
        let extra = self.config.extra_tokens();
        self.pos_embed = resize_tokens(&self.pos_embed, 1, extra, old, new)?;
        for block in &mut self.blocks {
            block.resize_grid(old, new, extra)?;
        }
        self.config = cfg;
        Ok(())
    }
}

/// Resizes the grid part of a token axis `dim` (after `extra` leading non-grid tokens) from
/// `old²` to `new²` tokens, bicubically; the other axes are kept.
pub fn resize_tokens<B: Backend>(
    t: &Tensor<B>,
    dim: usize,
    extra: usize,
    old: usize,
    new: usize,
) -> Result<Tensor<B>> {
    if t.dims().get(dim) != Some(&(extra + old * old)) {
        return Err(VitError::Input {
            module: "resize_tokens",
            problem: format!(
                "axis {dim} of {} should hold {extra} + {old}² tokens",
                t.shape()
            ),
        });
    }
    let head = t.narrow(dim, 0, extra)?;
    let grid = t.narrow(dim, extra, old * old)?;
    // Move the token axis last, unflatten it to (S, S), resize, and move it back.
    let r = t.rank();
    let mut perm: Vec<usize> = (0..r).filter(|&a| a != dim).collect();
    perm.push(dim);
    let moved = grid.permute(&perm)?;
    let mut shape = moved.dims()[..r - 1].to_vec();
    shape.extend([old, old]);
    let resized = resize_grid(&moved.reshape(shape)?, new)?;
    let mut flat = resized.dims()[..r - 1].to_vec();
    flat.push(new * new);
    let resized = resized.reshape(flat)?;
    let mut inverse = vec![0; r];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    let back = resized.permute(&inverse)?;
    if extra == 0 {
        Ok(back.contiguous()?)
    } else {
        Ok(Tensor::cat(&[&head, &back], dim)?)
    }
}

impl<B: Backend> Parameters<B> for VisionTransformer<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        if let Some(c) = &self.cls_token {
            f("cls_token", c, ParamKind::Trainable);
        }
        f("pos_embed", &self.pos_embed, ParamKind::Trainable);
        visit_child("patch_embed.proj", &self.patch_embed, f);
        visit_child("blocks", &self.blocks, f);
        visit_child("norm", &self.norm, f);
        visit_child("head", &self.head, f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        if let Some(c) = &mut self.cls_token {
            f("cls_token", c);
        }
        f("pos_embed", &mut self.pos_embed);
        visit_child_mut("patch_embed.proj", &mut self.patch_embed, f);
        visit_child_mut("blocks", &mut self.blocks, f);
        visit_child_mut("norm", &mut self.norm, f);
        visit_child_mut("head", &mut self.head, f);
    }
}
