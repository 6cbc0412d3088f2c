//! Optimisers: AdamW as `torch.optim.AdamW` and SGD with momentum as `torch.optim.SGD`, over any
//! model exposing its tensors through [`vars_vit::Parameters`] (vars-spec §6).
//!
//! **AdamW** (PyTorch's single-tensor algorithm; step count `t` per parameter, starting at 1):
//!
//! ```text
//! p ← p·(1 − lr·wd)                       decoupled weight decay (only decayed parameters)
//! m ← m + (1 − β₁)(g − m)                 torch's lerp
//! v ← β₂·v + (1 − β₂)·g²
//! p ← p − (lr/(1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
//! ```
//!
//! with the reference's β = (0.9, 0.999), ε = 1e-8, wd = 0.05. Each line is a handful of
//! elementwise tensor ops on the parameter's backend; nothing is copied to the host. The order of
//! operations is PyTorch's, so results agree with it up to the last-bit rounding of individual
//! elementwise ops.
//!
//! **Which parameters** ([`DecayPolicy`], vars-spec §6, timm's `add_weight_decay`): only
//! [`ParamKind::Trainable`] tensors are optimised — frozen parameters (Ω, VARS‑S `L`) and buffers
//! are never touched and have no state. Among them, tensors of rank 1 (biases, LayerNorm/BatchNorm
//! affine parameters, `learned_lam` = s_λ and `learned_L` = s_L) and every name ending in `.bias`
//! get no weight decay; `learned_k` (W), the VARS‑SD static dictionary P, and the VARS‑S spectra
//! `kernel` (K) and `kernel2` (K2) *are* decayed. A parameter without a gradient in a step is
//! skipped entirely (PyTorch's `grad is None`): no decay, no state change.
//!
//! **SGD** (`torch.optim.SGD`, dampening 0): `d = g + wd·p` (coupled decay, same exemptions),
//! `buf ← d` on the first step and `buf ← μ·buf + d` after, `d ← d + μ·buf` with Nesterov or
//! `d ← buf` without, `p ← p − lr·d`.
//!
//! After a step, every updated parameter is a fresh leaf variable (`detach` + `requires_grad`),
//! so the next forward pass records a new graph. Optimiser state is keyed by parameter name and
//! saved as a safetensors file ([`Optimizer::state_dict`]).

use crate::grads::Gradients;
use crate::{Result, TrainError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use vars_core::{Autodiff, Backend, Shape, Tensor};
use vars_vit::{ParamKind, Parameters, StateDict};

/// Which trainable parameters get weight decay (module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecayPolicy {
    /// No decay for parameters of rank 1 (timm: `len(param.shape) == 1`).
    pub exempt_rank1: bool,
    /// No decay for names ending in `.bias` (or equal to `bias`).
    pub exempt_bias: bool,
    /// No decay for these exact names (timm's `model.no_weight_decay()` skip list).
    pub exempt_names: Vec<String>,
}

impl Default for DecayPolicy {
    fn default() -> Self {
        Self::reference()
    }
}

impl DecayPolicy {
    /// vars-spec §6 for the RVT models: rank-1 tensors and biases are exempt; nothing else.
    pub fn reference() -> Self {
        DecayPolicy {
            exempt_rank1: true,
            exempt_bias: true,
            exempt_names: Vec::new(),
        }
    }

    /// DeiT (`vars_vit::vit::VisionTransformer`): the reference rules plus timm's skip list
    /// `{pos_embed, cls_token}`.
    pub fn deit() -> Self {
        DecayPolicy {
            exempt_names: vec!["pos_embed".into(), "cls_token".into()],
            ..Self::reference()
        }
    }

    /// Whether the trainable parameter `name` of shape `shape` is decayed.
    pub fn decays(&self, name: &str, shape: &Shape) -> bool {
        let bias = name == "bias" || name.ends_with(".bias");
        !((self.exempt_rank1 && shape.rank() == 1)
            || (self.exempt_bias && bias)
            || self.exempt_names.iter().any(|n| n == name))
    }
}

/// Optimiser and its hyper-parameters (the learning rate comes from the schedule at each step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// `torch.optim.AdamW`.
    AdamW {
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
    /// `torch.optim.SGD` with dampening 0.
    Sgd {
        momentum: f64,
        weight_decay: f64,
        nesterov: bool,
    },
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self::adamw()
    }
}

impl OptimizerConfig {
    /// The reference AdamW: betas (0.9, 0.999), eps 1e-8, weight decay 0.05.
    pub fn adamw() -> Self {
        OptimizerConfig::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.05,
        }
    }

    /// SGD with `momentum` (0 for plain SGD), no weight decay, no Nesterov.
    pub fn sgd(momentum: f64) -> Self {
        OptimizerConfig::Sgd {
            momentum,
            weight_decay: 0.0,
            nesterov: false,
        }
    }

    /// `"adamw"` or `"sgd"`.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::AdamW { .. } => "adamw",
            OptimizerConfig::Sgd { .. } => "sgd",
        }
    }

    /// Checks every hyper-parameter is in range.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, v: f64, range: &str| {
            Err(TrainError::config(
                format!("optimizer.{field} = {v}"),
                format!("use a value in {range}"),
            ))
        };
        match *self {
            OptimizerConfig::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                if !(0.0..1.0).contains(&beta1) {
                    return bad("beta1", beta1, "[0, 1) (reference: 0.9)");
                }
                if !(0.0..1.0).contains(&beta2) {
                    return bad("beta2", beta2, "[0, 1) (reference: 0.999)");
                }
                if !(eps > 0.0 && eps.is_finite()) {
                    return bad("eps", eps, "(0, ∞) (reference: 1e-8)");
                }
                if !(weight_decay >= 0.0 && weight_decay.is_finite()) {
                    return bad("weight_decay", weight_decay, "[0, ∞) (reference: 0.05)");
                }
            }
            OptimizerConfig::Sgd {
                momentum,
                weight_decay,
                ..
            } => {
                if !(momentum >= 0.0 && momentum.is_finite()) {
                    return bad("momentum", momentum, "[0, ∞) (typically 0.9)");
                }
                if !(weight_decay >= 0.0 && weight_decay.is_finite()) {
                    return bad("weight_decay", weight_decay, "[0, ∞)");
                }
            }
        }
        Ok(())
    }
}

/// One AdamW update of `p` with gradient `g` (module docs). `m`/`v` are the moment estimates
/// (`None` = zeros, the initial state), `step` the step count *including* this update (≥ 1),
/// `weight_decay` the decay to apply (0 for exempt parameters). Returns `(p, m, v)`.
#[allow(clippy::too_many_arguments)]
pub fn adamw_update<B: Backend>(
    p: &Tensor<B>,
    g: &Tensor<B>,
    m: Option<&Tensor<B>>,
    v: Option<&Tensor<B>>,
    step: u64,
    lr: f64,
    (beta1, beta2, eps): (f64, f64, f64),
    weight_decay: f64,
) -> Result<(Tensor<B>, Tensor<B>, Tensor<B>)> {
    let p = if weight_decay != 0.0 {
        p.mul_scalar(1.0 - lr * weight_decay)?
    } else {
        p.clone()
    };
    let m = match m {
        Some(m) => m.add(&g.sub(m)?.mul_scalar(1.0 - beta1)?)?,
        None => g.mul_scalar(1.0 - beta1)?,
    };
    let g2 = g.sqr()?.mul_scalar(1.0 - beta2)?;
    let v = match v {
        Some(v) => v.mul_scalar(beta2)?.add(&g2)?,
        None => g2,
    };
    let t = step.max(1) as f64;
    let bias_correction1 = 1.0 - beta1.powf(t);
    let bias_correction2 = 1.0 - beta2.powf(t);
    let step_size = lr / bias_correction1;
    let denom = v.sqrt()?.affine(1.0 / bias_correction2.sqrt(), eps)?;
    let p = p.sub(&m.div(&denom)?.mul_scalar(step_size)?)?;
    Ok((p, m, v))
}

/// One SGD update (module docs). `buf` is the momentum buffer (`None` before the first step).
/// Returns `(p, buf)`; `buf` is `None` when `momentum` is 0.
pub fn sgd_update<B: Backend>(
    p: &Tensor<B>,
    g: &Tensor<B>,
    buf: Option<&Tensor<B>>,
    lr: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
) -> Result<(Tensor<B>, Option<Tensor<B>>)> {
    let d = if weight_decay != 0.0 {
        g.add(&p.mul_scalar(weight_decay)?)?
    } else {
        g.clone()
    };
    let (d, buf) = if momentum != 0.0 {
        let buf = match buf {
            Some(b) => b.mul_scalar(momentum)?.add(&d)?,
            None => d.clone(),
        };
        let d = if nesterov {
            d.add(&buf.mul_scalar(momentum)?)?
        } else {
            buf.clone()
        };
        (d, Some(buf))
    } else {
        (d, None)
    };
    Ok((p.sub(&d.mul_scalar(lr)?)?, buf))
}

#[derive(Clone)]
struct ParamState<B: Backend> {
    step: u64,
    /// AdamW `exp_avg`, or the SGD momentum buffer.
    first: Option<Tensor<B>>,
    /// AdamW `exp_avg_sq`.
    second: Option<Tensor<B>>,
}

/// What one [`Optimizer::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepStats {
    /// Parameters updated.
    pub updated: usize,
    /// Of those, parameters that got weight decay.
    pub decayed: usize,
    /// Trainable parameters skipped because they had no gradient.
    pub skipped: usize,
}

/// AdamW or SGD state for one model (module docs).
pub struct Optimizer<B: Backend> {
    config: OptimizerConfig,
    decay: DecayPolicy,
    state: BTreeMap<String, ParamState<B>>,
}

impl<B: Backend> std::fmt::Debug for Optimizer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optimizer")
            .field("config", &self.config)
            .field("decay", &self.decay)
            .field("parameters_with_state", &self.state.len())
            .finish()
    }
}

const META_KIND: &str = "optimizer";
const META_STEPS: &str = "steps";
const META_FORMAT: &str = "format";
const FORMAT: &str = "vars-train/optimizer/1";

impl<B: Backend> Optimizer<B> {
    /// A fresh optimiser (no state: moments start at zero on each parameter's first step).
    pub fn new(config: OptimizerConfig, decay: DecayPolicy) -> Result<Self> {
        config.validate()?;
        Ok(Optimizer {
            config,
            decay,
            state: BTreeMap::new(),
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The weight-decay rules.
    pub fn decay_policy(&self) -> &DecayPolicy {
        &self.decay
    }

    /// The number of updates parameter `name` has received.
    pub fn step_count(&self, name: &str) -> u64 {
        self.state.get(name).map_or(0, |s| s.step)
    }

    /// The names of the parameters of `model` that this optimiser decays, in visit order.
    pub fn decayed_parameters<M>(&self, model: &M) -> Vec<String>
    where
        M: Parameters<Autodiff<B>> + ?Sized,
    {
        let mut out = Vec::new();
        model.visit(&mut |name, t, kind| {
            if kind == ParamKind::Trainable && self.decay.decays(name, t.shape()) {
                out.push(name.to_string());
            }
        });
        out
    }

    /// Updates every trainable parameter of `model` that has a gradient in `grads`, with learning
    /// rate `lr`. All updates are computed before any is assigned, so an error leaves the model
    /// and the optimiser state unchanged.
    pub fn step<M>(&mut self, model: &mut M, grads: &Gradients<B>, lr: f64) -> Result<StepStats>
    where
        M: Parameters<Autodiff<B>> + ?Sized,
    {
        if !(lr >= 0.0 && lr.is_finite()) {
            return Err(TrainError::config(
                format!("learning rate {lr}"),
                "the schedule must give a finite rate ≥ 0",
            ));
        }
        let mut params: Vec<(String, Tensor<B>)> = Vec::new();
        let mut stats = StepStats::default();
        model.visit(&mut |name, t, kind| {
            if kind == ParamKind::Trainable {
                if grads.get(name).is_some() {
                    params.push((name.to_string(), t.inner()));
                } else {
                    stats.skipped += 1;
                }
            }
        });

        let mut new_params: HashMap<String, Tensor<Autodiff<B>>> = HashMap::new();
        let mut new_state: Vec<(String, ParamState<B>)> = Vec::new();
        for (name, p) in &params {
            let Some(g) = grads.get(name) else { continue };
            if g.shape() != p.shape() || g.dtype() != p.dtype() {
                return Err(TrainError::StateMismatch {
                    what: "gradients",
                    problem: format!(
                        "`{name}` is {} {} but its gradient is {} {}",
                        p.dtype(),
                        p.shape(),
                        g.dtype(),
                        g.shape()
                    ),
                    hint: "pass gradients computed for this model".into(),
                });
            }
            let old = self.state.get(name);
            let decays = self.decay.decays(name, p.shape());
            let step = old.map_or(0, |s| s.step) + 1;
            let (p_new, state) = match self.config {
                OptimizerConfig::AdamW {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => {
                    let wd = if decays { weight_decay } else { 0.0 };
                    let (p_new, m, v) = adamw_update(
                        p,
                        g,
                        old.and_then(|s| s.first.as_ref()),
                        old.and_then(|s| s.second.as_ref()),
                        step,
                        lr,
                        (beta1, beta2, eps),
                        wd,
                    )?;
                    (
                        p_new,
                        ParamState {
                            step,
                            first: Some(m),
                            second: Some(v),
                        },
                    )
                }
                OptimizerConfig::Sgd {
                    momentum,
                    weight_decay,
                    nesterov,
                } => {
                    let wd = if decays { weight_decay } else { 0.0 };
                    let (p_new, buf) = sgd_update(
                        p,
                        g,
                        old.and_then(|s| s.first.as_ref()),
                        lr,
                        momentum,
                        nesterov,
                        wd,
                    )?;
                    (
                        p_new,
                        ParamState {
                            step,
                            first: buf,
                            second: None,
                        },
                    )
                }
            };
            stats.updated += 1;
            stats.decayed += usize::from(decays);
            new_params.insert(name.clone(), Tensor::from_inner(&p_new).requires_grad()?);
            new_state.push((name.clone(), state));
        }

        model.visit_mut(&mut |name, t| {
            if let Some(new) = new_params.remove(name) {
                *t = new;
            }
        });
        for (name, s) in new_state {
            self.state.insert(name, s);
        }
        Ok(stats)
    }

    /// The optimiser state as a state dict: `exp_avg.{name}` and `exp_avg_sq.{name}` (AdamW) or
    /// `momentum_buffer.{name}` (SGD), with the kind, format and per-parameter step counts in
    /// the metadata.
    pub fn state_dict(&self) -> Result<StateDict<B>> {
        let mut sd = StateDict::new();
        let (first, second) = self.tensor_prefixes();
        let mut steps = serde_json::Map::new();
        for (name, s) in &self.state {
            steps.insert(name.clone(), serde_json::Value::from(s.step));
            if let Some(t) = &s.first {
                sd.insert(format!("{first}.{name}"), t.clone());
            }
            if let (Some(t), Some(prefix)) = (&s.second, second) {
                sd.insert(format!("{prefix}.{name}"), t.clone());
            }
        }
        let meta = sd.metadata_mut();
        meta.insert(META_FORMAT.into(), FORMAT.into());
        meta.insert(META_KIND.into(), self.config.name().into());
        meta.insert(
            META_STEPS.into(),
            serde_json::to_string(&steps).map_err(|e| {
                TrainError::config(
                    format!("cannot encode the step counts: {e}"),
                    "report a bug",
                )
            })?,
        );
        Ok(sd)
    }

    fn tensor_prefixes(&self) -> (&'static str, Option<&'static str>) {
        match self.config {
            OptimizerConfig::AdamW { .. } => ("exp_avg", Some("exp_avg_sq")),
            OptimizerConfig::Sgd { .. } => ("momentum_buffer", None),
        }
    }

    /// Replaces the state with `sd` (from [`Optimizer::state_dict`]), after checking it against
    /// `model`: the same optimiser kind, every entry naming a trainable parameter of the model
    /// with its shape and dtype, and no unknown keys. On error the current state is kept and the
    /// message lists every problem.
    pub fn load_state_dict<M>(&mut self, sd: &StateDict<B>, model: &M) -> Result<()>
    where
        M: Parameters<Autodiff<B>> + ?Sized,
    {
        let mismatch = |problem: String, hint: &str| TrainError::StateMismatch {
            what: "optimizer state",
            problem,
            hint: hint.into(),
        };
        let meta = sd.metadata();
        if meta.get(META_FORMAT).map(String::as_str) != Some(FORMAT) {
            return Err(mismatch(
                format!(
                    "the format tag is {:?}, expected {FORMAT:?}",
                    meta.get(META_FORMAT)
                ),
                "load a file written by Optimizer::state_dict",
            ));
        }
        let kind = meta.get(META_KIND).map(String::as_str).unwrap_or("?");
        if kind != self.config.name() {
            return Err(mismatch(
                format!(
                    "it was saved by `{kind}` but this optimiser is `{}`",
                    self.config.name()
                ),
                "resume with the optimiser the run was started with",
            ));
        }
        let steps: BTreeMap<String, u64> = meta
            .get(META_STEPS)
            .map(|s| serde_json::from_str(s))
            .transpose()
            .map_err(|e| {
                mismatch(
                    format!("unreadable step counts: {e}"),
                    "the checkpoint is damaged; use an earlier one",
                )
            })?
            .unwrap_or_default();

        let mut shapes: HashMap<String, (Shape, vars_core::DType)> = HashMap::new();
        model.visit(&mut |name, t, kind| {
            if kind == ParamKind::Trainable {
                shapes.insert(name.to_string(), (t.shape().clone(), t.dtype()));
            }
        });
        let (first, second) = self.tensor_prefixes();
        let mut problems = Vec::new();
        let mut state: BTreeMap<String, ParamState<B>> = BTreeMap::new();
        for (name, &step) in &steps {
            if !shapes.contains_key(name) {
                problems.push(format!(
                    "`{name}` is not a trainable parameter of the model"
                ));
                continue;
            }
            state.insert(
                name.clone(),
                ParamState {
                    step,
                    first: None,
                    second: None,
                },
            );
        }
        for (key, t) in sd.iter() {
            let (slot, name) =
                if let Some(n) = key.strip_prefix(first).and_then(|k| k.strip_prefix('.')) {
                    (0, n)
                } else if let Some(n) = second
                    .and_then(|p| key.strip_prefix(p))
                    .and_then(|k| k.strip_prefix('.'))
                {
                    (1, n)
                } else {
                    problems.push(format!("unexpected key `{key}`"));
                    continue;
                };
            let Some((shape, dtype)) = shapes.get(name) else {
                if steps.contains_key(name) {
                    continue; // already reported
                }
                problems.push(format!("`{key}` names no trainable parameter of the model"));
                continue;
            };
            if t.shape() != shape || t.dtype() != *dtype {
                problems.push(format!(
                    "`{key}` is {} {} but the parameter is {} {}",
                    t.dtype(),
                    t.shape(),
                    dtype,
                    shape
                ));
                continue;
            }
            let Some(s) = state.get_mut(name) else {
                problems.push(format!("`{key}` has no step count"));
                continue;
            };
            if slot == 0 {
                s.first = Some(t.clone());
            } else {
                s.second = Some(t.clone());
            }
        }
        if let OptimizerConfig::AdamW { .. } = self.config {
            for (name, s) in &state {
                if s.step > 0 && (s.first.is_none() || s.second.is_none()) {
                    problems.push(format!("`{name}` lacks exp_avg or exp_avg_sq"));
                }
            }
        }
        if !problems.is_empty() {
            problems.sort();
            return Err(mismatch(
                problems.join("; "),
                "resume into the model (architecture and attention kind) the checkpoint was \
                 trained with",
            ));
        }
        self.state = state;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vars_core::DType;
    use vars_cpu::{Cpu, CpuDevice};

    fn t(v: &[f64]) -> Tensor<Cpu> {
        Tensor::from_vec(v.to_vec(), [v.len()], &CpuDevice).unwrap()
    }

    /// PyTorch's `_single_tensor_adamw`, written out per element in f64.
    fn reference_adamw(
        p: &mut [f64],
        m: &mut [f64],
        v: &mut [f64],
        g: &[f64],
        step: u64,
        lr: f64,
        wd: f64,
    ) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let bc1 = 1.0 - b1.powf(step as f64);
        let bc2 = 1.0 - b2.powf(step as f64);
        for i in 0..p.len() {
            p[i] *= 1.0 - lr * wd;
            m[i] += (1.0 - b1) * (g[i] - m[i]);
            v[i] = v[i] * b2 + (1.0 - b2) * g[i] * g[i];
            let denom = v[i].sqrt() / bc2.sqrt() + eps;
            p[i] -= lr / bc1 * m[i] / denom;
        }
    }

    #[test]
    fn adamw_first_step_by_hand() {
        // p = 1, g = 0.5, lr = 0.1, wd = 0.05: decay to 0.995, then m̂ = g, v̂ = g², so the step is
        // lr·g/(|g| + eps) = 0.1·0.5/0.50000001.
        let (p, m, v) = adamw_update(
            &t(&[1.0, -2.0]),
            &t(&[0.5, -0.25]),
            None,
            None,
            1,
            0.1,
            (0.9, 0.999, 1e-8),
            0.05,
        )
        .unwrap();
        let p = p.to_vec::<f64>().unwrap();
        assert!(
            (p[0] - (0.995 - 0.1 * 0.5 / 0.50000001)).abs() < 1e-15,
            "{p:?}"
        );
        assert!((p[0] - 0.8950000019999999).abs() < 1e-15);
        assert!((p[1] - (-2.0 * 0.995 + 0.1 * 0.25 / 0.25000001)).abs() < 1e-15);
        assert_eq!(
            m.to_vec::<f64>().unwrap(),
            vec![0.5 * (1.0 - 0.9), -0.25 * (1.0 - 0.9)]
        );
        let v = v.to_vec::<f64>().unwrap();
        assert!((v[0] - 0.25 * (1.0 - 0.999)).abs() < 1e-18);
    }

    #[test]
    fn adamw_matches_the_reference_over_many_steps() {
        let n = 37;
        let mut p: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
        let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
        let mut tp = t(&p);
        let (mut tm, mut tv) = (None, None);
        for step in 1..=20u64 {
            let g: Vec<f64> = (0..n)
                .map(|i| ((i as f64 + 1.0) * 0.11 * step as f64).cos() * 0.3)
                .collect();
            let lr = 1e-3 * step as f64;
            reference_adamw(&mut p, &mut m, &mut v, &g, step, lr, 0.05);
            let (np, nm, nv) = adamw_update(
                &tp,
                &t(&g),
                tm.as_ref(),
                tv.as_ref(),
                step,
                lr,
                (0.9, 0.999, 1e-8),
                0.05,
            )
            .unwrap();
            tp = np;
            tm = Some(nm);
            tv = Some(nv);
        }
        let got = tp.to_vec::<f64>().unwrap();
        for i in 0..n {
            assert!(
                (got[i] - p[i]).abs() <= 1e-14 * p[i].abs().max(1.0),
                "{i}: {} vs {}",
                got[i],
                p[i]
            );
        }
    }

    #[test]
    fn sgd_momentum_by_hand() {
        // p = 1, g = 0.5, lr = 0.1, μ = 0.9: buf = 0.5, p = 0.95; then buf = 0.95, p = 0.855.
        let (p, buf) = sgd_update(&t(&[1.0]), &t(&[0.5]), None, 0.1, 0.9, false, 0.0).unwrap();
        assert_eq!(p.to_vec::<f64>().unwrap(), vec![0.95]);
        let (p, buf) = sgd_update(&p, &t(&[0.5]), buf.as_ref(), 0.1, 0.9, false, 0.0).unwrap();
        assert!((p.to_vec::<f64>().unwrap()[0] - 0.855).abs() < 1e-15);
        assert!((buf.unwrap().to_vec::<f64>().unwrap()[0] - 0.95).abs() < 1e-15);
        // Nesterov, first step: d = g + μ·g = 0.95 → p = 1 − 0.095. Coupled decay 0.1: g + 0.1.
        let (p, _) = sgd_update(&t(&[1.0]), &t(&[0.5]), None, 0.1, 0.9, true, 0.0).unwrap();
        assert!((p.to_vec::<f64>().unwrap()[0] - 0.905).abs() < 1e-15);
        let (p, buf) = sgd_update(&t(&[1.0]), &t(&[0.5]), None, 0.1, 0.0, false, 0.1).unwrap();
        assert!((p.to_vec::<f64>().unwrap()[0] - 0.94).abs() < 1e-15);
        assert!(buf.is_none());
    }

    #[test]
    fn decay_policy_follows_the_reference() {
        let d = DecayPolicy::reference();
        let s = |v: &[usize]| Shape::from(v.to_vec());
        assert!(!d.decays("head.bias", &s(&[10])));
        assert!(!d.decays("norm.weight", &s(&[64])));
        assert!(!d.decays("transformers.0.blocks.0.attn.learned_lam", &s(&[1])));
        assert!(!d.decays("transformers.0.blocks.0.attn.learned_L", &s(&[1])));
        assert!(d.decays("transformers.0.blocks.0.attn.learned_k", &s(&[32, 32])));
        assert!(d.decays("transformers.0.blocks.0.kernel", &s(&[64, 5, 1, 7, 4, 2])));
        assert!(d.decays("head.weight", &s(&[10, 64])));
        // A bias of rank 2 is still exempt by name.
        assert!(!d.decays("x.bias", &s(&[2, 2])));
        assert!(d.decays("pos_embed", &s(&[1, 50, 64])));
        assert!(!DecayPolicy::deit().decays("pos_embed", &s(&[1, 50, 64])));
        let _ = DType::F32;
    }

    #[test]
    fn config_validation() {
        assert!(OptimizerConfig::adamw().validate().is_ok());
        let bad = OptimizerConfig::AdamW {
            beta1: 1.0,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.05,
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("beta1") && e.contains("0.9"), "{e}");
        assert!(OptimizerConfig::sgd(-1.0).validate().is_err());
    }
}
