//! Model selection for the CLI: a serialisable [`ModelSpec`] (saved with every run so `vars eval`
//! can rebuild the network), the [`Net`] enum over the model families, and [`Ablated`], an RVT
//! model whose attention output is replaced by zero (the "no attention" control of `vars demo`),
//! with the unused attention tensors hidden.

use serde::{Deserialize, Serialize};
use vars_core::{Autodiff, Backend, DType, Tensor};
use vars_train::TrainModel;
use vars_vit::config::{AttentionKind, ModelConfig};
use vars_vit::layers::{Init, Mode};
use vars_vit::model::PoolingTransformer;
use vars_vit::vit::{VisionTransformer, VitConfig};
use vars_vit::{ParamKind, Parameters};

/// The model names `--model` accepts.
pub const MODEL_NAMES: &str = "small, rvt_tiny, rvt_small, rvt_base, rvt_tiny_plus, \
rvt_small_plus, rvt_base_plus, deit_tiny, deit_small, deit_base";

/// Everything needed to rebuild a network (stored in a run's `config.json` under `run.cli.model`
/// and in `run.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// `small`, an RVT preset (`rvt_tiny`, …, `rvt_*_plus`) or a DeiT size (`deit_tiny`, …).
    pub model: String,
    /// The attention's CLI name (`self-att`, `perf`, `vars_d`, `vars_sd`, `vars_s`).
    pub attention: String,
    /// Input side in pixels.
    pub image_size: usize,
    /// Input channels.
    pub in_chans: usize,
    /// Output classes.
    pub classes: usize,
    /// `small` only: blocks (default 4).
    #[serde(default)]
    pub depth: Option<usize>,
    /// `small` only: heads (default 4).
    #[serde(default)]
    pub heads: Option<usize>,
    /// `small` only: width per head (default 16).
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Stochastic-depth rate (default: the preset's; 0 for `small`).
    #[serde(default)]
    pub drop_path: Option<f64>,
    /// Replace every attention output by zero (RVT-family models, every block kind).
    #[serde(default)]
    pub ablate_attention: bool,
    /// Random-feature normalisation of VARS-D/SD/Performer (default: official HEAD, on);
    /// converted official weights record theirs (`vars.feature_norm`).
    #[serde(default)]
    pub feature_norm: Option<bool>,
}

impl ModelSpec {
    /// A spec with the preset's defaults.
    pub fn new(model: &str, attention: AttentionKind, image_size: usize, in_chans: usize) -> Self {
        ModelSpec {
            model: model.to_string(),
            attention: attention.cli_name().to_string(),
            image_size,
            in_chans,
            classes: 10,
            depth: None,
            heads: None,
            head_dim: None,
            drop_path: None,
            ablate_attention: false,
            feature_norm: None,
        }
    }

    /// The attention kind.
    pub fn attention_kind(&self) -> Result<AttentionKind, String> {
        AttentionKind::parse(&self.attention).map_err(|e| e.to_string())
    }

    /// Whether this is a ViT/DeiT model.
    pub fn is_vit(&self) -> bool {
        self.model.starts_with("deit_")
    }

    /// The RVT-family configuration (`small` and the RVT presets).
    pub fn rvt_config(&self) -> Result<ModelConfig, String> {
        let kind = self.attention_kind()?;
        let mut cfg = if self.model == "small" {
            let mut c =
                ModelConfig::small_image(kind, self.image_size, self.in_chans, self.classes);
            if let Some(d) = self.depth {
                c.depth = vec![d];
            }
            if let Some(h) = self.heads {
                c.heads = vec![h];
            }
            if let Some(d) = self.head_dim {
                c.base_dims = vec![d];
            }
            c
        } else {
            ModelConfig::preset(&self.model, kind)
                .map_err(|e| format!("{e} (or small, deit_tiny, deit_small, deit_base)"))?
                .with_classes(self.classes)
                .with_image_size(self.image_size)
        };
        cfg.in_chans = self.in_chans;
        if let Some(p) = self.drop_path {
            cfg.drop_path_rate = p;
        }
        if let Some(f) = self.feature_norm {
            cfg.vars.feature_norm = f;
        }
        cfg.ablate_attention = self.ablate_attention;
        if self.model != "small" && (self.depth.is_some() || self.heads.is_some()) {
            return Err(format!(
                "--depth/--heads/--head-dim apply to `--model small` only; `{}` is a fixed preset",
                self.model
            ));
        }
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    /// The ViT/DeiT configuration.
    pub fn vit_config(&self) -> Result<VitConfig, String> {
        let kind = self.attention_kind()?;
        let mut cfg = match self.model.as_str() {
            "deit_tiny" => VitConfig::deit_tiny(kind),
            "deit_small" => VitConfig::deit_small(kind),
            "deit_base" => VitConfig::deit_base(kind),
            other => return Err(format!("unknown model `{other}`: use one of {MODEL_NAMES}")),
        };
        cfg.image_size = self.image_size;
        cfg.in_chans = self.in_chans;
        cfg.num_classes = self.classes;
        if cfg.image_size < 64 {
            // 16-pixel patches leave almost nothing of small images: use 4-pixel ones there.
            cfg.patch_size = 4;
        }
        if let Some(p) = self.drop_path {
            cfg.drop_path_rate = p;
        }
        if let Some(f) = self.feature_norm {
            cfg.vars.feature_norm = f;
        }
        if self.depth.is_some() || self.heads.is_some() || self.head_dim.is_some() {
            return Err("--depth/--heads/--head-dim apply to `--model small` only".into());
        }
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    /// Checks the spec builds (without allocating the model).
    pub fn validate(&self) -> Result<(), String> {
        if self.is_vit() {
            if self.ablate_attention {
                return Err(
                    "attention ablation is implemented for the RVT-family models (small, rvt_*)"
                        .into(),
                );
            }
            self.vit_config().map(|_| ())
        } else {
            self.rvt_config().map(|_| ())
        }
    }

    /// Builds a freshly initialised network (f32, seeded).
    pub fn build<B: Backend>(&self, device: &B::Device, seed: u64) -> Result<Net<B>, String> {
        self.validate()?;
        let mut init = Init::new(device, DType::F32, seed);
        if self.is_vit() {
            let cfg = self.vit_config()?;
            return VisionTransformer::new(&cfg, &mut init)
                .map(Net::Vit)
                .map_err(|e| e.to_string());
        }
        let cfg = self.rvt_config()?;
        let model = PoolingTransformer::new(&cfg, &mut init).map_err(|e| e.to_string())?;
        Ok(if self.ablate_attention {
            Net::Ablated(Ablated { inner: model })
        } else {
            Net::Rvt(model)
        })
    }

    /// A one-line description (`small self-att (depth 2, 2×16) 28 px, 1 ch, 10 classes`).
    pub fn describe(&self) -> String {
        let mut s = format!("{} {}", self.model, self.attention);
        if self.ablate_attention {
            s.push_str(" (attention ablated)");
        }
        if self.model == "small" {
            if let Ok(c) = self.rvt_config() {
                s.push_str(&format!(
                    ", depth {}, {} heads × {}",
                    c.depth[0], c.heads[0], c.base_dims[0]
                ));
            }
        }
        s.push_str(&format!(
            ", {} px, {} channel{}, {} classes",
            self.image_size,
            self.in_chans,
            if self.in_chans == 1 { "" } else { "s" },
            self.classes
        ));
        s
    }
}

/// Any model the CLI trains.
#[derive(Debug, Clone)]
pub enum Net<B: Backend> {
    /// `small` and the RVT presets.
    Rvt(PoolingTransformer<B>),
    /// ViT/DeiT.
    Vit(VisionTransformer<B>),
    /// An RVT model without attention.
    Ablated(Ablated<B>),
}

impl<B: Backend> Net<B> {
    /// Logits `(B, classes)`.
    pub fn forward(&self, x: &Tensor<B>, mode: Mode) -> vars_vit::Result<Tensor<B>> {
        match self {
            Net::Rvt(m) => m.forward(x, mode),
            Net::Vit(m) => m.forward(x, mode),
            Net::Ablated(m) => m.forward(x, mode),
        }
    }

    /// Output classes.
    pub fn classes(&self) -> usize {
        match self {
            Net::Rvt(m) => m.config.num_classes,
            Net::Vit(m) => m.config.num_classes,
            Net::Ablated(m) => m.inner.config.num_classes,
        }
    }
}

impl<B: Backend> Parameters<B> for Net<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        match self {
            Net::Rvt(m) => m.visit(f),
            Net::Vit(m) => m.visit(f),
            Net::Ablated(m) => m.visit(f),
        }
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        match self {
            Net::Rvt(m) => m.visit_mut(f),
            Net::Vit(m) => m.visit_mut(f),
            Net::Ablated(m) => m.visit_mut(f),
        }
    }
}

impl<B: Backend> TrainModel<B> for Net<Autodiff<B>> {
    fn forward_logits(
        &self,
        images: &Tensor<Autodiff<B>>,
        mode: Mode,
    ) -> vars_train::Result<Tensor<Autodiff<B>>> {
        Ok(self.forward(images, mode)?)
    }

    fn num_classes(&self) -> usize {
        self.classes()
    }

    fn update_step_constants(&mut self, rate: f64) -> vars_train::Result<()> {
        match self {
            Net::Rvt(m) => TrainModel::<B>::update_step_constants(m, rate),
            Net::Vit(m) => TrainModel::<B>::update_step_constants(m, rate),
            Net::Ablated(_) => Ok(()),
        }
    }
}

/// The attention-ablated twin of an RVT-family model: built with
/// [`ModelConfig::ablate_attention`] (every block's attention branch outputs zero, `x ← x + 0`,
/// then the MLP as usual), from the same configuration and seed as its twin, so the stem, MLPs,
/// pools and head start from the same weights. The unused attention tensors (`norm1`, `attn.*`;
/// VARS‑S: `v`, `proj`, `kernel`, `kernel2`, `L`, `kernel_norm`, `norm1`) are hidden from
/// [`Parameters`]: they are neither trained, nor counted, nor saved.
#[derive(Debug, Clone)]
pub struct Ablated<B: Backend> {
    /// The model, built with `ablate_attention = true`.
    pub inner: PoolingTransformer<B>,
}

/// Whether a state-dict name belongs to the attention branch of a block.
fn is_attention_branch(name: &str) -> bool {
    const BRANCH: [&str; 8] = [
        "attn",
        "norm1",
        "v",
        "proj",
        "kernel",
        "kernel2",
        "L",
        "kernel_norm",
    ];
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        ["transformers", _, "blocks", _, first, ..] | ["blocks", _, first, ..] => {
            BRANCH.contains(first)
        }
        _ => false,
    }
}

impl<B: Backend> Ablated<B> {
    /// Logits `(B, classes)`.
    pub fn forward(&self, x: &Tensor<B>, mode: Mode) -> vars_vit::Result<Tensor<B>> {
        self.inner.forward(x, mode)
    }
}

impl<B: Backend> Parameters<B> for Ablated<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        self.inner.visit(&mut |n, t, k| {
            if !is_attention_branch(n) {
                f(n, t, k)
            }
        });
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        self.inner.visit_mut(&mut |n, t| {
            if !is_attention_branch(n) {
                f(n, t)
            }
        });
    }
}

/// Parses `--attention`.
pub fn parse_attention(s: &str) -> Result<AttentionKind, String> {
    let s = s.trim().to_ascii_lowercase().replace("vars-", "vars_");
    let s = match s.as_str() {
        "sa" | "self" | "self-attention" | "softmax" => "self-att",
        "performer" => "perf",
        other => other,
    };
    AttentionKind::parse(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vars_cpu::{Cpu, CpuDevice};
    use vars_vit::count_parameters;

    fn small(kind: AttentionKind) -> ModelSpec {
        let mut s = ModelSpec::new("small", kind, 28, 1);
        s.depth = Some(2);
        s.heads = Some(2);
        s
    }

    #[test]
    fn ablated_twin_drops_exactly_the_attention_branch() {
        let sa = small(AttentionKind::SelfAttention)
            .build::<Cpu>(&CpuDevice, 3)
            .unwrap();
        let mut spec = small(AttentionKind::SelfAttention);
        spec.ablate_attention = true;
        let ab = spec.build::<Cpu>(&CpuDevice, 3).unwrap();
        let (a, b) = (count_parameters(&sa), count_parameters(&ab));
        // per block: qkv 3C² + 3C, proj C² + C, norm1 2C (C = 32)
        let c = 32;
        assert_eq!(a.trainable - b.trainable, 2 * (4 * c * c + 6 * c));
        // same seed, same non-attention weights
        let mut shared = 0;
        ab.visit(&mut |n, t, _| {
            sa.visit(&mut |m, u, _| {
                if m == n {
                    assert_eq!(t.to_vec_f64().unwrap(), u.to_vec_f64().unwrap(), "{n}");
                    shared += 1;
                }
            })
        });
        assert!(shared > 10);
        // the forward equals the full model with the attention projection zeroed
        let Net::Rvt(mut zeroed) = sa else { panic!() };
        zeroed.visit_mut(&mut |n, t| {
            if n.ends_with("attn.proj.weight") || n.ends_with("attn.proj.bias") {
                *t = t.zeros_like().unwrap();
            }
        });
        let x = Tensor::<Cpu>::randn([3, 1, 28, 28], DType::F32, 9, &CpuDevice).unwrap();
        let y0 = zeroed
            .forward(&x, Mode::Eval)
            .unwrap()
            .to_vec_f64()
            .unwrap();
        let y1 = ab.forward(&x, Mode::Eval).unwrap().to_vec_f64().unwrap();
        for (p, q) in y0.iter().zip(&y1) {
            assert!((p - q).abs() < 1e-5, "{p} vs {q}");
        }
    }

    #[test]
    fn specs_reject_what_cannot_be_built() {
        let mut s = small(AttentionKind::VarsS);
        s.ablate_attention = true;
        let net = s.build::<Cpu>(&CpuDevice, 0).unwrap();
        let full = small(AttentionKind::VarsS)
            .build::<Cpu>(&CpuDevice, 0)
            .unwrap();
        let mut hidden = Vec::new();
        full.visit(&mut |n, _, _| {
            if is_attention_branch(n) {
                hidden.push(n.to_string())
            }
        });
        assert!(hidden.iter().any(|n| n.ends_with(".kernel2")), "{hidden:?}");
        net.visit(&mut |n, _, _| assert!(!hidden.contains(&n.to_string())));
        let mut s = ModelSpec::new("deit_tiny", AttentionKind::VarsD, 32, 3);
        s.ablate_attention = true;
        assert!(s.validate().unwrap_err().contains("RVT-family"));
        let mut s = ModelSpec::new("rvt_tiny", AttentionKind::VarsD, 224, 3);
        s.depth = Some(3);
        assert!(s.validate().unwrap_err().contains("--model small"));
        let s = ModelSpec::new("rvt_huge", AttentionKind::VarsD, 224, 3);
        assert!(s.validate().unwrap_err().contains("unknown model"));
        let s = ModelSpec::new("rvt_tiny", AttentionKind::VarsSd, 112, 3);
        assert!(s.validate().is_err());
        assert_eq!(parse_attention("VARS-D").unwrap(), AttentionKind::VarsD);
        assert!(parse_attention("linear").is_err());
    }
}
