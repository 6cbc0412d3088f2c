//! The RVT backbone, `PoolingTransformer` (vars-spec §4), with any block of the family.
//!
//! ```text
//! image (B, 3, H, H)
//!   → patch_embed: conv 7×7/2 (pad 2) → BatchNorm2d → max-pool 3×3/2 (pad 1) → conv 4×4/4
//!   → per stage s: tokens (B, S_s², C_s) → depth[s] blocks → map (B, C_s, S_s, S_s)
//!                  → pools.s: grouped conv 3×3/2 (pad 1) between stages
//!   → global average pool → LayerNorm → head
//! ```
//!
//! No positional embedding, no class token. Stochastic depth ramps linearly over the blocks of
//! all stages (block `i` of `total` gets `drop_path_rate·i/total`, §4.6). State-dict names follow
//! §4.8 (`patch_embed.proj.{0,1,3}`, `transformers.{s}.blocks.{i}`, `pools.{s}.conv`, `norm`,
//! `head`), so official checkpoints load without renaming.
//!
//! [`PoolingTransformer::forward_recorded`] also returns the intermediate activations under the
//! fixture names (`act.stem`, `act.stage{s}.block{i}`, `act.pool{s}`) for parity checks.

use crate::block::{Block, BlockSpec};
use crate::config::{ModelConfig, Stem};
use crate::introspect::LayerTrace;
use crate::layers::{BatchNorm, Conv2d, Init, LayerNorm, Linear, Mode};
use crate::params::{visit_child, visit_child_mut, ParamKind, Parameters};
use crate::{Result, VitError};
use vars_core::nn::{global_avg_pool2d, max_pool2d};
use vars_core::{Backend, Tensor, Window2d};

/// Width of the stem's first convolution (RVT, vars-spec §4.1).
pub const STEM_WIDTH: usize = 32;

/// The patch embedding: RVT's stem or the project's patchify stem ([`Stem`]).
#[derive(Debug, Clone)]
pub enum PatchEmbed<B: Backend> {
    /// `patch_embed.proj.{0,1,3}`.
    Rvt(RvtStem<B>),
    /// `patch_embed.proj`: one strided conv.
    Patchify(Conv2d<B>),
}

impl<B: Backend> PatchEmbed<B> {
    fn new(init: &mut Init<'_, B>, stem: Stem, in_chans: usize, width: usize) -> Result<Self> {
        Ok(match stem {
            Stem::Rvt => PatchEmbed::Rvt(RvtStem::new(init, in_chans, width)?),
            Stem::Patchify { patch } => PatchEmbed::Patchify(Conv2d::new(
                init,
                in_chans,
                width,
                Window2d::square(patch, patch, 0),
                1,
            )?),
        })
    }

    /// `(B, in, H, H)` → `(B, C₀, S₀, S₀)`.
    pub fn forward(&self, x: &Tensor<B>, mode: Mode) -> Result<Tensor<B>> {
        match self {
            PatchEmbed::Rvt(s) => s.forward(x, mode),
            PatchEmbed::Patchify(c) => c.forward(x),
        }
    }
}

impl<B: Backend> Parameters<B> for PatchEmbed<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        match self {
            PatchEmbed::Rvt(s) => s.visit(f),
            PatchEmbed::Patchify(c) => visit_child("proj", c, f),
        }
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        match self {
            PatchEmbed::Rvt(s) => s.visit_mut(f),
            PatchEmbed::Patchify(c) => visit_child_mut("proj", c, f),
        }
    }
}

/// The convolutional stem, `patch_embed.proj.{0,1,3}` (index 2 is the parameter-free max-pool).
#[derive(Debug, Clone)]
pub struct RvtStem<B: Backend> {
    /// `proj.0`: Conv2d in→32, 7×7, stride 2, padding 2.
    pub conv0: Conv2d<B>,
    /// `proj.1`: BatchNorm2d(32).
    pub bn1: BatchNorm<B>,
    /// `proj.3`: Conv2d 32→C₀, 4×4, stride 4.
    pub conv3: Conv2d<B>,
}

impl<B: Backend> RvtStem<B> {
    fn new(init: &mut Init<'_, B>, in_chans: usize, width: usize) -> Result<Self> {
        Ok(RvtStem {
            conv0: Conv2d::new(init, in_chans, STEM_WIDTH, Window2d::square(7, 2, 2), 1)?,
            bn1: BatchNorm::new(init, STEM_WIDTH)?,
            conv3: Conv2d::new(init, STEM_WIDTH, width, Window2d::square(4, 4, 0), 1)?,
        })
    }

    /// `(B, in, H, H)` → `(B, C₀, S₀, S₀)`.
    pub fn forward(&self, x: &Tensor<B>, mode: Mode) -> Result<Tensor<B>> {
        let h = self.bn1.forward(&self.conv0.forward(x)?, mode)?;
        let h = max_pool2d(&h, Window2d::square(3, 2, 1))?;
        self.conv3.forward(&h)
    }
}

impl<B: Backend> Parameters<B> for RvtStem<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        visit_child("proj.0", &self.conv0, f);
        visit_child("proj.1", &self.bn1, f);
        visit_child("proj.3", &self.conv3, f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        visit_child_mut("proj.0", &mut self.conv0, f);
        visit_child_mut("proj.1", &mut self.bn1, f);
        visit_child_mut("proj.3", &mut self.conv3, f);
    }
}

/// One stage: `transformers.{s}.blocks.{i}`.
#[derive(Debug, Clone)]
pub struct Stage<B: Backend> {
    /// The stage's blocks.
    pub blocks: Vec<Block<B>>,
}

impl<B: Backend> Parameters<B> for Stage<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        visit_child("blocks", &self.blocks, f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        visit_child_mut("blocks", &mut self.blocks, f);
    }
}

/// The pooling between stages: `pools.{s}.conv`, grouped 3×3/2 conv (groups = `C_s`).
#[derive(Debug, Clone)]
pub struct Pool<B: Backend> {
    /// Conv2d `C_s → C_{s+1}`, groups `C_s`.
    pub conv: Conv2d<B>,
}

impl<B: Backend> Parameters<B> for Pool<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        visit_child("conv", &self.conv, f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        visit_child_mut("conv", &mut self.conv, f);
    }
}

/// The RVT model (module docs).
#[derive(Debug, Clone)]
pub struct PoolingTransformer<B: Backend> {
    /// The configuration it was built from.
    pub config: ModelConfig,
    /// `patch_embed`.
    pub patch_embed: PatchEmbed<B>,
    /// `transformers`.
    pub transformers: Vec<Stage<B>>,
    /// `pools` (one fewer than the stages).
    pub pools: Vec<Pool<B>>,
    /// Final LayerNorm.
    pub norm: LayerNorm<B>,
    /// Classifier.
    pub head: Linear<B>,
}

/// Intermediate activations of a forward pass, in order, under the fixture names.
pub type Activations<B> = Vec<(String, Tensor<B>)>;

impl<B: Backend> PoolingTransformer<B> {
    /// Builds a PyTorch-initialised model; the configuration is validated first (input size,
    /// variant compatibility; vars-spec §4.2, §5).
    pub fn new(config: &ModelConfig, init: &mut Init<'_, B>) -> Result<Self> {
        config.validate()?;
        let widths = config.widths();
        let grids = config.grids();
        let total = config.total_blocks();
        let patch_embed = PatchEmbed::new(init, config.stem, config.in_chans, widths[0])?;
        let mut transformers = Vec::with_capacity(config.depth.len());
        let mut pools = Vec::new();
        let mut index = 0usize;
        for (s, &depth) in config.depth.iter().enumerate() {
            let mut blocks = Vec::with_capacity(depth);
            for i in 0..depth {
                let spec = BlockSpec {
                    dim: widths[s],
                    heads: config.heads[s],
                    grid: grids[s],
                    mlp_hidden: widths[s] * config.mlp_ratio,
                    drop_path: config.drop_path_rate * index as f64 / total as f64,
                    attention: config.attention,
                    use_mask: config.use_mask && s == 0 && i < config.masked_block,
                    extra_tokens: 0,
                    linear_mlp: false,
                    ablate_attention: config.ablate_attention,
                };
                blocks.push(Block::new(init, &spec, &config.vars, &config.vars_s)?);
                index += 1;
            }
            transformers.push(Stage { blocks });
            if s + 1 < config.depth.len() {
                pools.push(Pool {
                    conv: Conv2d::new(
                        init,
                        widths[s],
                        widths[s + 1],
                        Window2d::square(3, 2, 1),
                        widths[s],
                    )?,
                });
            }
        }
        let last = *widths.last().unwrap_or(&0);
        Ok(PoolingTransformer {
            config: config.clone(),
            patch_embed,
            transformers,
            pools,
            norm: LayerNorm::new(init, last)?,
            head: Linear::new(init, last, config.num_classes, true)?,
        })
    }

    /// Checks an input batch: `(B, in_chans, H, H)` with finite values, a size that gives a
    /// non-empty grid, and (for resolution-locked blocks or the RVT* mask) the configured size.
    pub fn check_input(&self, x: &Tensor<B>) -> Result<()> {
        let bad = |problem: String| VitError::Input {
            module: "PoolingTransformer",
            problem,
        };
        let c = self.config.in_chans;
        if x.rank() != 4 || x.dims()[1] != c {
            return Err(bad(format!(
                "expected images (B, {c}, H, W), got {}",
                x.shape()
            )));
        }
        let (h, w) = (x.dims()[2], x.dims()[3]);
        if h != w {
            return Err(bad(format!("images must be square, got {h}×{w}")));
        }
        if h != self.config.image_size {
            let locked = self.config.attention.is_resolution_locked() || self.config.use_mask;
            let probe = self.config.clone().with_image_size(h);
            if locked {
                return Err(bad(format!(
                    "this `{}` model is resolution-locked: built for {s}×{s} inputs, got \
                     {h}×{h}; its parameters depend on the token grid (vars-spec §4.2): resize \
                     the images to {s}",
                    self.config.attention,
                    s = self.config.image_size
                )));
            }
            probe.validate()?;
        }
        let peak =
            vars_core::no_grad(|| x.detach().abs()?.max(&[0, 1, 2, 3], false))?.to_vec_f64()?;
        if peak.iter().any(|v| !v.is_finite()) {
            return Err(bad(
                "the batch contains NaN or infinite values; check the data pipeline".into(),
            ));
        }
        Ok(())
    }

    /// Logits `(B, classes)`.
    pub fn forward(&self, x: &Tensor<B>, mode: Mode) -> Result<Tensor<B>> {
        self.run(x, mode, None)
    }

    /// Logits and the intermediate activations (`act.stem`, `act.stage{s}.block{i}` in token
    /// layout, `act.pool{s}`).
    pub fn forward_recorded(
        &self,
        x: &Tensor<B>,
        mode: Mode,
    ) -> Result<(Tensor<B>, Activations<B>)> {
        let mut acts = Vec::new();
        let logits = self.run(x, mode, Some(&mut acts))?;
        Ok((logits, acts))
    }

    /// Logits and, for every block, its attention iterations (codes, reconstructions, step
    /// sizes, sparsity, energies; [`crate::introspect`]), traced from the block's actual input
    /// in this forward pass. Costs one extra attention computation per block; [`Self::forward`]
    /// pays nothing for it.
    pub fn introspect(&self, x: &Tensor<B>, mode: Mode) -> Result<(Tensor<B>, Vec<LayerTrace<B>>)> {
        self.check_input(x)?;
        let mut traces = Vec::new();
        let map = self.trunk_with(x, mode, None, Some(&mut traces))?;
        let logits = self
            .head
            .forward(&self.norm.forward(&global_avg_pool2d(&map)?)?)?;
        Ok((logits, traces))
    }

    /// The pooled, normalised features before the head, `(B, C_last)`.
    pub fn features(&self, x: &Tensor<B>, mode: Mode) -> Result<Tensor<B>> {
        self.check_input(x)?;
        let map = self.trunk(x, mode, None)?;
        self.norm.forward(&global_avg_pool2d(&map)?)
    }

    fn run(
        &self,
        x: &Tensor<B>,
        mode: Mode,
        acts: Option<&mut Activations<B>>,
    ) -> Result<Tensor<B>> {
        self.check_input(x)?;
        let map = self.trunk(x, mode, acts)?;
        self.head
            .forward(&self.norm.forward(&global_avg_pool2d(&map)?)?)
    }

    /// Stem and stages: the final feature map `(B, C_last, S, S)`.
    fn trunk(
        &self,
        x: &Tensor<B>,
        mode: Mode,
        acts: Option<&mut Activations<B>>,
    ) -> Result<Tensor<B>> {
        self.trunk_with(x, mode, acts, None)
    }

    fn trunk_with(
        &self,
        x: &Tensor<B>,
        mode: Mode,
        mut acts: Option<&mut Activations<B>>,
        mut traces: Option<&mut Vec<LayerTrace<B>>>,
    ) -> Result<Tensor<B>> {
        let mut record = |name: String, t: &Tensor<B>| {
            if let Some(a) = acts.as_deref_mut() {
                a.push((name, t.clone()));
            }
        };
        let mut map = self.patch_embed.forward(x, mode)?;
        record("act.stem".into(), &map);
        let mut index = 0u64;
        for (s, stage) in self.transformers.iter().enumerate() {
            let (b, c, h, w) = (map.dims()[0], map.dims()[1], map.dims()[2], map.dims()[3]);
            let mut tokens = map.reshape([b, c, h * w])?.transpose(1, 2)?;
            for (i, block) in stage.blocks.iter().enumerate() {
                if let Some(t) = traces.as_deref_mut() {
                    t.push(block.trace(&tokens, &format!("transformers.{s}.blocks.{i}"))?);
                }
                tokens = block.forward(&tokens, mode, index)?;
                record(format!("act.stage{s}.block{i}"), &tokens);
                index += 1;
            }
            map = tokens.transpose(1, 2)?.reshape([b, c, h, w])?;
            if let Some(pool) = self.pools.get(s) {
                map = pool.conv.forward(&map)?;
                record(format!("act.pool{s}"), &map);
            }
        }
        Ok(map)
    }

    /// Moves the model to another input size (a project extension; the reference is
    /// resolution-locked): VARS‑SD's static atoms and VARS‑S's spectra are resized to each
    /// stage's new grid ([`Block::resize_grid`]); the other blocks have nothing tied to the grid.
    /// The new size must be one the reference could build at (validated as in
    /// [`ModelConfig::validate`]); the RVT* mask cannot be resized.
    pub fn resize(&mut self, image_size: usize) -> Result<()> {
        let mut cfg = self.config.clone();
        cfg.image_size = image_size;
        cfg.validate()?;
        let (old, new) = (self.config.grids(), cfg.grids());
        for (s, stage) in self.transformers.iter_mut().enumerate() {
            if old[s] != new[s] {
                for block in &mut stage.blocks {
                    block.resize_grid(old[s], new[s], 0)?;
                }
            }
        }
        self.config = cfg;
        Ok(())
    }

    /// VARS‑S: moves every block's `L_c` toward the rule's value for the current `K` with the
    /// given rate (0.1 every 100 iterations in training, vars-spec §3.5). No-op for the others.
    pub fn update_step_constants(&mut self, rate: f64) -> Result<()> {
        for stage in &mut self.transformers {
            for block in &mut stage.blocks {
                block.update_step_constants(rate)?;
            }
        }
        Ok(())
    }
}

impl<B: Backend> Parameters<B> for PoolingTransformer<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        visit_child("patch_embed", &self.patch_embed, f);
        visit_child("transformers", &self.transformers, f);
        visit_child("pools", &self.pools, f);
        visit_child("norm", &self.norm, f);
        visit_child("head", &self.head, f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        visit_child_mut("patch_embed", &mut self.patch_embed, f);
        visit_child_mut("transformers", &mut self.transformers, f);
        visit_child_mut("pools", &mut self.pools, f);
        visit_child_mut("norm", &mut self.norm, f);
        visit_child_mut("head", &mut self.head, f);
    }
}
