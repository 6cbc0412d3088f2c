//! Configuration of the attention family and the RVT models (vars-spec §3, §5, §7).
//!
//! Defaults reproduce official HEAD; every optional mode of §7 is a switch that is off by default.
//! [`VarsOptions::official`] and [`VarsOptions::paper_era`] are the two named presets; the RVT
//! sizes are [`ModelConfig::rvt_tiny`], [`ModelConfig::rvt_small`], [`ModelConfig::rvt_base`]
//! and their `*_plus` (RVT*) forms.

use crate::{Result, VitError};
use vars_core::nn::Shrink;
use vars_core::sparse::fused::IstaInit;
use vars_core::sparse::implicit::ImplicitConfig;

/// Which block a model uses (`--attention` of the reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttentionKind {
    /// Softmax self-attention (`self-att`, §3.1), optionally with the RVT* mask.
    SelfAttention,
    /// The quadratic Performer baseline (`perf`, §3.2).
    Performer,
    /// VARS‑D, the dynamic dictionary (`vars_d`, §3.3).
    VarsD,
    /// VARS‑SD, static + dynamic dictionary (`vars_sd`, §3.4); resolution-locked.
    VarsSd,
    /// VARS‑S, the static convolutional dictionary block (`vars_s`, §3.5); resolution-locked.
    VarsS,
}

impl AttentionKind {
    /// All five, in the reference's CLI order.
    pub const ALL: [AttentionKind; 5] = [
        AttentionKind::SelfAttention,
        AttentionKind::Performer,
        AttentionKind::VarsD,
        AttentionKind::VarsSd,
        AttentionKind::VarsS,
    ];

    /// The reference's CLI name (`self-att`, `perf`, `vars_d`, `vars_sd`, `vars_s`).
    pub fn cli_name(&self) -> &'static str {
        match self {
            AttentionKind::SelfAttention => "self-att",
            AttentionKind::Performer => "perf",
            AttentionKind::VarsD => "vars_d",
            AttentionKind::VarsSd => "vars_sd",
            AttentionKind::VarsS => "vars_s",
        }
    }

    /// Parses a CLI name (also accepts `self_att`).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "self-att" | "self_att" => Ok(AttentionKind::SelfAttention),
            "perf" => Ok(AttentionKind::Performer),
            "vars_d" => Ok(AttentionKind::VarsD),
            "vars_sd" => Ok(AttentionKind::VarsSd),
            "vars_s" => Ok(AttentionKind::VarsS),
            other => Err(VitError::config(
                format!("unknown attention `{other}`"),
                "use one of self-att, perf, vars_d, vars_sd, vars_s",
            )),
        }
    }

    /// Whether the block's parameters depend on the token grid (`image_size`, §4.2).
    pub fn is_resolution_locked(&self) -> bool {
        matches!(self, AttentionKind::VarsSd | AttentionKind::VarsS)
    }
}

impl std::fmt::Display for AttentionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.cli_name())
    }
}

/// How the sparse codes of VARS‑D/SD are differentiated.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum CodeGradient {
    /// Backpropagate through the `T` unrolled steps (the reference's gradient).
    #[default]
    Unrolled,
    /// Implicit differentiation at the fixed point (`vars_core::sparse::implicit`; an extension).
    /// The forward then iterates to the fixed point (up to `max_steps`) instead of `T` steps.
    Implicit {
        /// Adjoint settings and the forward residual tolerance.
        config: ImplicitConfig,
        /// Step budget of the forward solve.
        max_steps: usize,
    },
}

/// Settings of the VARS‑D/SD sparse-coding layer and of the random-feature map (also used by the
/// Performer's feature normalisation). Official HEAD by default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VarsOptions {
    /// λ (`--lam`, 0.3).
    pub lam: f64,
    /// `T`, unrolled steps after the initial guess (`--num_step`, 5).
    pub steps: usize,
    /// `r`, atoms per head dimension: `m = r·d` (`--rand_feat_dim_ratio`, 2).
    pub rand_feat_ratio: usize,
    /// The shrink: GELU form (HEAD) or the soft threshold (paper-era).
    pub shrink: Shrink,
    /// LISTA parameters `W`, `s_λ`, `s_L` present and used (HEAD) or absent (paper-era).
    pub lista: bool,
    /// Unit-normalise queries before the random features (HEAD) or not (2022‑04‑19…07‑04).
    pub feature_norm: bool,
    /// Initial guess `shrink(b; λ_e)` (HEAD) or zero (plain ISTA, extension).
    pub init: IstaInit,
    /// Unrolled (HEAD) or implicit gradients of the codes.
    pub gradient: CodeGradient,
}

impl Default for VarsOptions {
    fn default() -> Self {
        Self::official()
    }
}

impl VarsOptions {
    /// Official HEAD: λ = 0.3, T = 5, r = 2, GELU shrink, LISTA on, feature normalisation on.
    pub fn official() -> Self {
        VarsOptions {
            lam: 0.3,
            steps: 5,
            rand_feat_ratio: 2,
            shrink: Shrink::Gelu,
            lista: true,
            feature_norm: true,
            init: IstaInit::Shrink,
            gradient: CodeGradient::Unrolled,
        }
    }

    /// The 2022‑05‑30 code (paper era): ReLU-form shrink (the soft threshold), no `W/s_λ/s_L`,
    /// feature normalisation off (vars-spec §7).
    pub fn paper_era() -> Self {
        VarsOptions {
            shrink: Shrink::SoftThreshold,
            lista: false,
            feature_norm: false,
            ..Self::official()
        }
    }

    /// Rejects values the layer cannot run with.
    pub fn validate(&self) -> Result<()> {
        if !(self.lam.is_finite() && self.lam >= 0.0) {
            return Err(VitError::config(
                format!("λ = {}", self.lam),
                "λ must be finite and non-negative",
            ));
        }
        if self.rand_feat_ratio == 0 {
            return Err(VitError::config(
                "rand_feat_ratio = 0",
                "the dictionary needs at least one atom per head dimension; use r ≥ 1",
            ));
        }
        Ok(())
    }
}

/// How VARS‑S computes its step constant `L_c` (vars-spec §3.5, §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepRule {
    /// Bug-exact reference: `max_f λ_max(Re G_c(f))`.
    #[default]
    BugExact,
    /// The fix `max_f Σ_i |K_{c,i}(f)|²` (`lc=exact`).
    Exact,
}

/// How VARS‑S applies its Gram operator inside the ISTA steps (vars-spec §3.5, §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GramMode {
    /// The reference's literal per-frequency `F⁻¹(G ⊙ F(·))`.
    #[default]
    Literal,
    /// Analysis ∘ synthesis, the exact `DᵀD` (`gram=composed`, a fix).
    Composed,
}

/// Settings of the VARS‑S block. Its constants are fixed in the reference (the CLI's λ and T are
/// ignored); these switches are extensions, off by default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VarsSOptions {
    /// λ (3.5).
    pub lam: f64,
    /// `T` (3).
    pub steps: usize,
    /// Atoms per channel (`int_dim_ratio`, 5).
    pub atoms: usize,
    /// Shrink (the soft threshold in the reference).
    pub shrink: Shrink,
    /// Step-constant rule.
    pub step_rule: StepRule,
    /// Gram operator.
    pub gram: GramMode,
}

impl Default for VarsSOptions {
    fn default() -> Self {
        VarsSOptions {
            lam: 3.5,
            steps: 3,
            atoms: 5,
            shrink: Shrink::SoftThreshold,
            step_rule: StepRule::BugExact,
            gram: GramMode::Literal,
        }
    }
}

/// The RVT* mask's initial value `M₀` (vars-spec §3.1): `sigmoid(5) ≈ 0.993`, so a fresh model
/// starts close to plain attention. The reference leaves the tensor uninitialised; checkpoints
/// carry the trained mask, so this matters only for training from scratch.
pub const MASK_INIT: f64 = 5.0;

/// The patch embedding in front of the stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stem {
    /// RVT's convolutional stem (vars-spec §4.1): conv 7×7/2 → BN → max-pool 3×3/2 → conv 4×4/4,
    /// side `/16` (224 → 14). Names `patch_embed.proj.{0,1,3}`.
    #[default]
    Rvt,
    /// A project stem for small images (not in the reference, vars-spec §4.2 "small images"): one
    /// `patch×patch` conv with stride `patch`, side `/patch` (28 → 7 and 32 → 8 with patch 4).
    /// Names `patch_embed.proj.{weight,bias}`.
    Patchify {
        /// Patch side and stride.
        patch: usize,
    },
}

/// A `PoolingTransformer` (RVT backbone, vars-spec §4), with the reference's constructor fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Input side in pixels (square inputs).
    pub image_size: usize,
    /// Per-stage head dimension: `C_s = base_dims[s]·heads[s]`.
    pub base_dims: Vec<usize>,
    /// Blocks per stage.
    pub depth: Vec<usize>,
    /// Heads per stage.
    pub heads: Vec<usize>,
    /// MLP hidden width ratio (4).
    pub mlp_ratio: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Input channels (3).
    pub in_chans: usize,
    /// Stochastic-depth rate of the last block's ramp (0.1 for training).
    pub drop_path_rate: f64,
    /// The block type.
    pub attention: AttentionKind,
    /// RVT*: position-aware mask in the first `masked_block` blocks of stage 0 (self-attention
    /// only).
    pub use_mask: bool,
    /// How many stage-0 blocks get the mask when `use_mask`.
    pub masked_block: usize,
    /// VARS‑D/SD and Performer settings.
    pub vars: VarsOptions,
    /// VARS‑S settings.
    pub vars_s: VarsSOptions,
    /// The patch embedding (RVT's by default).
    pub stem: Stem,
    /// Ablation (not in the reference): every block's attention branch outputs zero, keeping the
    /// MLPs — the "attention-ablated twin" of a model. Off by default.
    pub ablate_attention: bool,
}

impl ModelConfig {
    fn rvt(
        base_dims: Vec<usize>,
        depth: Vec<usize>,
        heads: Vec<usize>,
        attention: AttentionKind,
    ) -> Self {
        ModelConfig {
            image_size: 224,
            base_dims,
            depth,
            heads,
            mlp_ratio: 4,
            num_classes: 1000,
            in_chans: 3,
            drop_path_rate: 0.1,
            attention,
            use_mask: false,
            masked_block: 0,
            vars: VarsOptions::official(),
            vars_s: VarsSOptions::default(),
            stem: Stem::Rvt,
            ablate_attention: false,
        }
    }

    /// A model for small images (28×28 or 32×32, any channel count) that trains on a CPU: the
    /// project's 4×4 patchify stem (7×7 or 8×8 tokens), one stage of 4 blocks, 4 heads of width
    /// 16 (C = 64), the convolutional MLP, no stochastic depth. Every attention variant works;
    /// VARS‑SD and VARS‑S are built for the resulting grid.
    pub fn small_image(
        attention: AttentionKind,
        side: usize,
        in_chans: usize,
        classes: usize,
    ) -> Self {
        ModelConfig {
            image_size: side,
            base_dims: vec![16],
            depth: vec![4],
            heads: vec![4],
            mlp_ratio: 4,
            num_classes: classes,
            in_chans,
            drop_path_rate: 0.0,
            attention,
            use_mask: false,
            masked_block: 0,
            vars: VarsOptions::official(),
            vars_s: VarsSOptions::default(),
            stem: Stem::Patchify { patch: 4 },
            ablate_attention: false,
        }
    }

    /// RVT‑Ti: depth [10, 2], heads [6, 12], width [192, 384] (vars-spec §5).
    pub fn rvt_tiny(attention: AttentionKind) -> Self {
        Self::rvt(vec![32, 32], vec![10, 2], vec![6, 12], attention)
    }
    /// RVT‑S: one stage of 12 blocks, 6 heads, width 384.
    pub fn rvt_small(attention: AttentionKind) -> Self {
        Self::rvt(vec![64], vec![12], vec![6], attention)
    }
    /// RVT‑B: one stage of 12 blocks, 12 heads, width 768 (linear MLP).
    pub fn rvt_base(attention: AttentionKind) -> Self {
        Self::rvt(vec![64], vec![12], vec![12], attention)
    }
    /// RVT‑Ti*: the mask in the first 10 blocks (self-attention only).
    pub fn rvt_tiny_plus() -> Self {
        Self::rvt_tiny(AttentionKind::SelfAttention).with_mask(10)
    }
    /// RVT‑S*: the mask in the first 5 blocks.
    pub fn rvt_small_plus() -> Self {
        Self::rvt_small(AttentionKind::SelfAttention).with_mask(5)
    }
    /// RVT‑B*: the mask in the first 5 blocks.
    pub fn rvt_base_plus() -> Self {
        Self::rvt_base(AttentionKind::SelfAttention).with_mask(5)
    }

    /// Looks a preset up by the reference's name (`rvt_tiny`, `rvt_small_plus`, …).
    pub fn preset(name: &str, attention: AttentionKind) -> Result<Self> {
        let cfg = match name {
            "rvt_tiny" => Self::rvt_tiny(attention),
            "rvt_small" => Self::rvt_small(attention),
            "rvt_base" => Self::rvt_base(attention),
            "rvt_tiny_plus" => Self::rvt_tiny(attention).with_mask(10),
            "rvt_small_plus" => Self::rvt_small(attention).with_mask(5),
            "rvt_base_plus" => Self::rvt_base(attention).with_mask(5),
            other => {
                return Err(VitError::config(
                    format!("unknown model `{other}`"),
                    "use rvt_tiny, rvt_small, rvt_base or their _plus forms",
                ))
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Turns the RVT* mask on for the first `blocks` blocks of stage 0.
    pub fn with_mask(mut self, blocks: usize) -> Self {
        self.use_mask = true;
        self.masked_block = blocks;
        self
    }

    /// Applies the feature-normalisation mode recorded in a checkpoint's metadata
    /// (`vars.feature_norm`, written by `io::convert_pth`; vars-spec §7: the released RVT‑Ti
    /// VARS‑D/SD weights predate HEAD's default). Returns the mode applied, or `None` when the
    /// checkpoint does not record one (the configuration is left as it is).
    pub fn apply_checkpoint_metadata(
        &mut self,
        metadata: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<bool>> {
        let mode = crate::io::pth::FeatureNorm::from_metadata(metadata)?;
        let on = mode.map(|m| m == crate::io::pth::FeatureNorm::On);
        if let Some(on) = on {
            self.vars.feature_norm = on;
        }
        Ok(on)
    }

    /// Sets the number of classes.
    pub fn with_classes(mut self, classes: usize) -> Self {
        self.num_classes = classes;
        self
    }

    /// Sets the input side.
    pub fn with_image_size(mut self, size: usize) -> Self {
        self.image_size = size;
        self
    }

    /// Stage widths `C_s = base_dims[s]·heads[s]`.
    pub fn widths(&self) -> Vec<usize> {
        self.base_dims
            .iter()
            .zip(&self.heads)
            .map(|(d, h)| d * h)
            .collect()
    }

    /// Stem output side: `⌊(H − 3)/2⌋ + 1 → ⌊(H1 − 1)/2⌋ + 1 → ⌊H2/4⌋` (vars-spec §4.1).
    pub fn stem_grid(image: usize) -> usize {
        if image < 3 {
            return 0;
        }
        let h1 = (image - 3) / 2 + 1;
        let h2 = (h1 - 1) / 2 + 1;
        h2 / 4
    }

    /// The real token-grid side of every stage for this input size.
    pub fn grids(&self) -> Vec<usize> {
        let mut s = match self.stem {
            Stem::Rvt => Self::stem_grid(self.image_size),
            Stem::Patchify { patch } => self.image_size.checked_div(patch).unwrap_or(0),
        };
        let mut out = Vec::with_capacity(self.depth.len());
        for i in 0..self.depth.len() {
            if i > 0 {
                s = if s == 0 { 0 } else { (s - 1) / 2 + 1 };
            }
            out.push(s);
        }
        out
    }

    /// The `image_size` the reference passes to the blocks of stage `s`: `img // (16·2^s)`.
    pub fn block_image_size(&self, stage: usize) -> usize {
        self.image_size / (16 << stage)
    }

    /// Total number of blocks.
    pub fn total_blocks(&self) -> usize {
        self.depth.iter().sum()
    }

    /// Checks the configuration and the input size (vars-spec §4.2, §5): consistent per-stage
    /// lists, widths divisible by the heads, a non-empty token grid, the RVT* mask only with
    /// self-attention, and for VARS‑SD/VARS‑S an input size whose real grid equals the
    /// reference's `image_size` at every stage.
    pub fn validate(&self) -> Result<()> {
        let stages = self.depth.len();
        if stages == 0 || self.base_dims.len() != stages || self.heads.len() != stages {
            return Err(VitError::config(
                format!(
                    "depth {:?}, heads {:?}, base_dims {:?}",
                    self.depth, self.heads, self.base_dims
                ),
                "give one entry per stage in each list (at least one stage)",
            ));
        }
        if self.heads.contains(&0) || self.base_dims.contains(&0) || self.num_classes == 0 {
            return Err(VitError::config(
                "a zero head count, head dimension or class count",
                "all sizes must be positive",
            ));
        }
        if self.in_chans == 0 || self.mlp_ratio == 0 {
            return Err(VitError::config(
                "in_chans or mlp_ratio is 0",
                "use 3 input channels and mlp_ratio 4 for the RVT models",
            ));
        }
        let widths = self.widths();
        for s in 1..stages {
            if widths[s] % widths[s - 1] != 0 {
                return Err(VitError::config(
                    format!(
                        "stage widths {} → {}: the grouped pooling conv needs the next width to be a multiple",
                        widths[s - 1],
                        widths[s]
                    ),
                    "choose base_dims·heads so each stage's width divides the next",
                ));
            }
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return Err(VitError::config(
                format!("drop_path_rate = {}", self.drop_path_rate),
                "use a rate in [0, 1)",
            ));
        }
        if self.use_mask && self.attention != AttentionKind::SelfAttention {
            return Err(VitError::config(
                format!(
                    "the RVT* position-aware mask with `{}` blocks",
                    self.attention
                ),
                "the reference supports the mask only with self-attention (its masked branch \
                 breaks the VARS and Performer constructors); use attention self-att or turn \
                 the mask off",
            ));
        }
        self.vars.validate()?;
        let grids = self.grids();
        if grids.contains(&0) {
            return Err(VitError::config(
                format!(
                    "input size {} gives an empty token grid (stages {:?})",
                    self.image_size, grids
                ),
                "the RVT stem divides the side by 16 (and each pooling by 2): use at least 16 px \
                 per stage, e.g. 224, or `ModelConfig::small_image` for 28/32 px inputs",
            ));
        }
        if let Stem::Patchify { patch } = self.stem {
            if patch == 0 || self.image_size % patch != 0 {
                return Err(VitError::config(
                    format!(
                        "patchify stem with patch {patch} on {} px inputs",
                        self.image_size
                    ),
                    "the patch must be positive and divide the input side",
                ));
            }
        }
        // With the RVT stem the reference builds blocks for `img // (16·2^s)`, which must equal
        // the real grid; the project stem builds them for the real grid directly.
        if self.attention.is_resolution_locked() && self.stem == Stem::Rvt {
            for (s, &g) in grids.iter().enumerate() {
                let told = self.block_image_size(s);
                if g != told {
                    let multiple = 16 << (stages - 1);
                    return Err(VitError::config(
                        format!(
                            "input size {} gives a {g}×{g} grid at stage {s}, but the reference \
                             builds `{}` blocks for image_size {told} there",
                            self.image_size, self.attention
                        ),
                        format!(
                            "`{}` is resolution-locked (vars-spec §4.2): use an input size that \
                             is a multiple of {multiple} for this {stages}-stage model",
                            self.attention
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
