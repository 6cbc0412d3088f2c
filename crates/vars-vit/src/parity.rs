//! Parity against fixtures produced by the official PyTorch code (the format of
//! `fixtures/official/README.official.md`): build each model or block from `manifest.json`, load
//! its `param.*` strictly, and compare every tensor the fixture holds.
//!
//! Per fixture:
//! - **forward** (eval mode): `logits` (models) or `output` (blocks), and every `act.*`;
//! - **gradients** (eval mode): `grad.<name>` of every trainable parameter and `grad.input`, for
//!   the fixture's loss — models: mean cross-entropy against `labels`; blocks: `Σ output ⊙ w` with
//!   `w_k = −1 + 2k/(numel − 1)`;
//! - **train** mode: `logits_train`, a forward of a copy of the model with batch statistics.
//!
//! Each tensor reports `max|Δ|` and the relative error `max|Δ| / max|ref|`; the tolerances are
//! `1e-4` (forward, train) and `1e-3` (gradients), relative. A fixture fails when any tensor
//! exceeds its tolerance, when a key is present that was not compared, or when a key the model
//! produces is missing from a group that is present. Absent groups are reported, never counted as
//! passes.
//!
//! # The GELU-shrink outlier rule
//!
//! VARS‑D/SD's shrink `sign(z)·GELU(|z| − t)` jumps by `2|GELU(−t)|` at `z = 0` (vars-spec §7.1),
//! and the fixtures hold pre-shrink values as small as ~1e‑7: a different float32 summation order
//! can flip the sign of such a value, moving one code entry by ~0.25 and, locally, its
//! downstream outputs. The rule: for a model whose attention uses the GELU shrink, a tensor that
//! exceeds its tolerance still passes when its failing elements are **isolated** — at most
//! [`OUTLIER_FRACTION`] of the elements (and at least one is allowed) — **and** the forward pass
//! observed codes whose pre-shrink value was within float32 rounding of zero
//! ([`NEAR_ZERO`] × the step's largest pre-shrink value). Such a pass is reported as `pass*`
//! with the outlier count; it never happens silently, and never for other attention kinds.
//!
//! # The max-pool near-tie rule
//!
//! The same happens at the stem's max-pool: when the two largest inputs of a 3×3 window are
//! within float32 rounding of each other (≤ 8 ulps), the two implementations may pick different
//! maxima. The forward value is the same to rounding, but the gradient goes to a different
//! pixel: `grad.patch_embed.proj.0.weight` then differs in one output channel
//! (`in·7·7` entries) and `grad.input` under two conv windows. The tool counts such windows in
//! the forward; with `k` of them, those two tensors pass as `pass*` when at most `k·in·49`
//! (weight) or `2k·in·49` (input) elements fail. `model_vars_d` has one such window (top values
//! 0.8537019 and 0.85370165); in float64 (`--f64`) every tensor passes outright.

use crate::block::{Block, BlockSpec};
use crate::config::{AttentionKind, ModelConfig, VarsOptions, VarsSOptions};
use crate::io::StateDict;
use crate::layers::{Init, Mode};
use crate::model::{PatchEmbed, PoolingTransformer};
use crate::params::{mark_trainable, ParamKind, Parameters};
use crate::{Result, VitError};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use vars_core::nn::{cross_entropy, Shrink, Target};
use vars_core::{no_grad, Autodiff, Backend, DType, Tensor};

/// Relative tolerance of forward tensors (`logits`, `output`, `act.*`, `logits_train`).
pub const FORWARD_TOL: f64 = 1e-4;
/// Relative tolerance of gradients (`grad.*`).
pub const GRAD_TOL: f64 = 1e-3;
/// Largest share of a tensor's elements the outlier rule accepts.
pub const OUTLIER_FRACTION: f64 = 1e-3;
/// "Within float32 rounding of zero", relative to the drive's scale.
pub const NEAR_ZERO: f64 = 1e-6;

/// Tolerances and precision of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    /// Forward and train-mode tensors.
    pub forward: f64,
    /// Gradients.
    pub grad: f64,
    /// The dtype the model computes in: f32 (the reference's precision, the parity setting) or
    /// f64 (parameters and input widened; shows how far the float32 reference itself is from
    /// exact arithmetic).
    pub compute: DType,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances {
            forward: FORWARD_TOL,
            grad: GRAD_TOL,
            compute: DType::F32,
        }
    }
}

/// The comparison of one tensor.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The fixture key.
    pub key: String,
    /// `forward`, `act`, `grad` or `train`.
    pub group: &'static str,
    /// `max|Δ|`.
    pub max_abs: f64,
    /// `max|ref|`.
    pub scale: f64,
    /// The tolerance it was held to (relative).
    pub tol: f64,
    /// Elements whose error exceeds `tol·scale`.
    pub failing: usize,
    /// Elements in the tensor.
    pub numel: usize,
    /// Passed under the outlier rule (module docs).
    pub outlier_pass: bool,
}

impl Comparison {
    /// `max|Δ| / max|ref|` (`max|Δ|` when the reference is all zeros).
    pub fn rel(&self) -> f64 {
        if self.scale > 0.0 {
            self.max_abs / self.scale
        } else {
            self.max_abs
        }
    }
    /// Within tolerance, or accepted by the outlier rule.
    pub fn passed(&self) -> bool {
        self.failing == 0 || self.outlier_pass
    }
}

/// The result of one fixture.
#[derive(Debug, Clone)]
pub struct FixtureReport {
    /// Fixture name (the manifest key).
    pub name: String,
    /// Model or block, and attention kind.
    pub description: String,
    /// Every compared tensor.
    pub comparisons: Vec<Comparison>,
    /// Groups present and compared.
    pub groups_compared: BTreeSet<&'static str>,
    /// Groups absent from the file.
    pub groups_absent: BTreeSet<&'static str>,
    /// Problems that fail the fixture besides tolerances (uncompared keys, missing tensors).
    pub problems: Vec<String>,
    /// Pre-shrink values within float32 rounding of zero seen in the forward (GELU models).
    pub near_zero_codes: usize,
    /// Stem max-pool windows whose two largest values are within float32 rounding (models).
    pub pool_ties: usize,
    /// Elements per stem-conv output channel (`in·7·7`): the bound of the pool-tie rule.
    pub stem_fan_in: usize,
}

impl FixtureReport {
    /// No tolerance failures and no problems.
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.comparisons.iter().all(Comparison::passed)
    }

    /// A human-readable table.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "== {} ({})", self.name, self.description);
        let _ = writeln!(
            s,
            "   {:<52} {:>7} {:>11} {:>11} {:>9}  status",
            "tensor", "group", "max|Δ|", "rel", "tol"
        );
        for c in &self.comparisons {
            let status = if c.failing == 0 {
                "ok".to_string()
            } else if c.outlier_pass {
                format!(
                    "pass* ({} of {} elements, outlier rule)",
                    c.failing, c.numel
                )
            } else {
                format!("FAIL ({} of {} elements)", c.failing, c.numel)
            };
            let _ = writeln!(
                s,
                "   {:<52} {:>7} {:>11.3e} {:>11.3e} {:>9.1e}  {status}",
                c.key,
                c.group,
                c.max_abs,
                c.rel(),
                c.tol
            );
        }
        let worst = |g: &str| {
            self.comparisons
                .iter()
                .filter(|c| c.group == g)
                .map(Comparison::rel)
                .fold(None, |a: Option<f64>, r| Some(a.map_or(r, |a| a.max(r))))
        };
        for g in &self.groups_compared {
            if let Some(w) = worst(g) {
                let n = self.comparisons.iter().filter(|c| c.group == *g).count();
                let _ = writeln!(
                    s,
                    "   group {g:<8} compared {n:>3} tensors, worst rel {w:.3e}"
                );
            }
        }
        for g in &self.groups_absent {
            let _ = writeln!(s, "   group {g:<8} absent from the file (not compared)");
        }
        if self.near_zero_codes > 0 {
            let _ = writeln!(
                s,
                "   {} pre-shrink code values within float32 rounding of zero (GELU shrink jump)",
                self.near_zero_codes
            );
        }
        if self.pool_ties > 0 {
            let _ = writeln!(
                s,
                "   {} stem max-pool windows with a float32 near-tie (gradient routing is ambiguous)",
                self.pool_ties
            );
        }
        for p in &self.problems {
            let _ = writeln!(s, "   PROBLEM: {p}");
        }
        let _ = writeln!(s, "   => {}", if self.passed() { "PASS" } else { "FAIL" });
        s
    }
}

/// One fixture's entry of `manifest.json`.
#[derive(Debug, Clone)]
pub enum FixtureSpec {
    /// A whole `PoolingTransformer`.
    Model(ModelConfig),
    /// One block: width, heads, grid side, MLP hidden width, attention.
    Block {
        /// The block's constructor values.
        spec: BlockSpec,
        /// VARS‑D/SD settings (λ, T, r from the manifest).
        vars: VarsOptions,
    },
}

/// Reads `dir/manifest.json`: the fixture names (sorted) and their specs.
pub fn read_manifest(dir: &Path) -> Result<Vec<(String, FixtureSpec)>> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|source| VitError::Io {
        action: "cannot read the fixture manifest".into(),
        path: path.clone(),
        source,
    })?;
    let json: Value = serde_json::from_str(&text).map_err(|e| {
        VitError::config(
            format!("`{}` is not valid JSON: {e}", path.display()),
            "pass a fixture folder in the official format (manifest.json + *.safetensors)",
        )
    })?;
    let globals = json.get("globals").cloned().unwrap_or(Value::Null);
    let fixtures = json
        .get("fixtures")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            VitError::config(
                format!("`{}` has no `fixtures` object", path.display()),
                "the manifest lists each fixture under `fixtures`",
            )
        })?;
    let mut out = Vec::new();
    for (name, entry) in fixtures {
        out.push((name.clone(), parse_entry(name, entry, &globals)?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn field<'a>(name: &str, entry: &'a Value, globals: &'a Value, key: &str) -> Result<&'a Value> {
    entry.get(key).or_else(|| globals.get(key)).ok_or_else(|| {
        VitError::config(
            format!("fixture `{name}` has no `{key}` in manifest.json"),
            "every constructor field must be in the manifest",
        )
    })
}

fn as_usize(name: &str, key: &str, v: &Value) -> Result<usize> {
    v.as_u64().map(|x| x as usize).ok_or_else(|| {
        VitError::config(
            format!("fixture `{name}`: `{key}` = {v} is not a non-negative integer"),
            "fix the manifest",
        )
    })
}

fn as_f64(name: &str, key: &str, v: &Value) -> Result<f64> {
    v.as_f64().ok_or_else(|| {
        VitError::config(
            format!("fixture `{name}`: `{key}` = {v} is not a number"),
            "fix the manifest",
        )
    })
}

fn as_list(name: &str, key: &str, v: &Value) -> Result<Vec<usize>> {
    v.as_array()
        .ok_or_else(|| {
            VitError::config(
                format!("fixture `{name}`: `{key}` is not a list"),
                "fix the manifest",
            )
        })?
        .iter()
        .map(|x| as_usize(name, key, x))
        .collect()
}

fn parse_entry(name: &str, e: &Value, g: &Value) -> Result<FixtureSpec> {
    let get = |k: &str| field(name, e, g, k);
    let kind = get("kind")?.as_str().unwrap_or_default().to_string();
    let attention = AttentionKind::parse(get("attention")?.as_str().unwrap_or_default())?;
    let vars = VarsOptions {
        lam: as_f64(name, "lam", get("lam")?)?,
        steps: as_usize(name, "num_step", get("num_step")?)?,
        rand_feat_ratio: as_usize(name, "rand_feat_dim_ratio", get("rand_feat_dim_ratio")?)?,
        ..VarsOptions::official()
    };
    match kind.as_str() {
        "PoolingTransformer" => {
            let mut cfg = ModelConfig::rvt_tiny(attention);
            cfg.image_size = as_usize(name, "image_size", get("image_size")?)?;
            cfg.base_dims = as_list(name, "base_dims", get("base_dims")?)?;
            cfg.depth = as_list(name, "depth", get("depth")?)?;
            cfg.heads = as_list(name, "heads", get("heads")?)?;
            cfg.mlp_ratio = as_usize(name, "mlp_ratio", get("mlp_ratio")?)?;
            cfg.num_classes = as_usize(name, "num_classes", get("num_classes")?)?;
            cfg.in_chans = match e.get("in_chans") {
                Some(v) => as_usize(name, "in_chans", v)?,
                None => 3,
            };
            cfg.drop_path_rate = match e.get("drop_path_rate") {
                Some(v) => as_f64(name, "drop_path_rate", v)?,
                None => 0.0,
            };
            cfg.use_mask = e.get("use_mask").and_then(Value::as_bool).unwrap_or(false);
            cfg.masked_block = match e.get("masked_block") {
                Some(Value::Null) | None => 0,
                Some(v) => as_usize(name, "masked_block", v)?,
            };
            cfg.vars = vars;
            cfg.validate()?;
            Ok(FixtureSpec::Model(cfg))
        }
        "Block" => {
            let dim = as_usize(name, "dim", get("dim")?)?;
            let heads = as_usize(name, "heads", get("heads")?)?;
            let grid = as_usize(name, "image_size", get("image_size")?)?;
            if let Some(t) = e.get("tokens") {
                let tokens = as_usize(name, "tokens", t)?;
                if tokens != grid * grid {
                    return Err(VitError::config(
                        format!("fixture `{name}`: {tokens} tokens but image_size {grid}"),
                        "a block's tokens are image_size²",
                    ));
                }
            }
            let ratio = match e.get("mlp_ratio") {
                Some(v) => as_usize(name, "mlp_ratio", v)?,
                None => 4,
            };
            if heads == 0 || dim % heads != 0 {
                return Err(VitError::config(
                    format!("fixture `{name}`: dim {dim} with {heads} heads"),
                    "dim must be a multiple of heads",
                ));
            }
            Ok(FixtureSpec::Block {
                spec: BlockSpec {
                    dim,
                    heads,
                    grid,
                    mlp_hidden: ratio * dim,
                    drop_path: 0.0,
                    attention,
                    use_mask: false,
                    extra_tokens: 0,
                    linear_mlp: false,
                    ablate_attention: false,
                },
                vars,
            })
        }
        other => Err(VitError::config(
            format!("fixture `{name}` has kind `{other}`"),
            "supported kinds: PoolingTransformer, Block",
        )),
    }
}

/// The fixture file of a manifest entry.
pub fn fixture_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.safetensors"))
}

/// Compares `ours` to `reference` (same shape) at relative tolerance `tol`.
pub fn compare<B: Backend>(
    key: &str,
    group: &'static str,
    ours: &Tensor<B>,
    reference: &Tensor<B>,
    tol: f64,
) -> Result<Comparison> {
    if ours.dims() != reference.dims() {
        return Err(VitError::config(
            format!(
                "`{key}`: computed shape {} differs from the fixture's {}",
                ours.shape(),
                reference.shape()
            ),
            "the model does not match the fixture's configuration",
        ));
    }
    let a = ours.to_vec_f64()?;
    let r = reference.to_vec_f64()?;
    let scale = r.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut max_abs = 0.0f64;
    let mut failing = 0;
    let bound = tol * if scale > 0.0 { scale } else { 1.0 };
    for (x, y) in a.iter().zip(&r) {
        let d = (x - y).abs();
        let d = if d.is_nan() { f64::INFINITY } else { d };
        max_abs = max_abs.max(d);
        if d > bound {
            failing += 1;
        }
    }
    Ok(Comparison {
        key: key.to_string(),
        group,
        max_abs,
        scale,
        tol,
        failing,
        numel: r.len(),
        outlier_pass: false,
    })
}

/// Runs one fixture on backend `B` (gradients through `Autodiff<B>`).
pub fn check_fixture<B: Backend>(
    dir: &Path,
    name: &str,
    spec: &FixtureSpec,
    tol: Tolerances,
    device: &B::Device,
) -> Result<FixtureReport> {
    let path = fixture_path(dir, name);
    let file = StateDict::<Autodiff<B>>::load(&path, device)?;
    let mut params = file.strip_prefix("param.");
    if tol.compute != DType::F32 {
        let widened: Vec<(String, Tensor<Autodiff<B>>)> = params
            .iter()
            .map(|(k, t)| {
                let t = if t.dtype() == DType::F32 {
                    t.to_dtype(tol.compute)?
                } else {
                    t.clone()
                };
                Ok((k.to_string(), t))
            })
            .collect::<Result<_>>()?;
        for (k, t) in widened {
            params.insert(k, t);
        }
    }
    let mut init = Init::<Autodiff<B>>::new(device, tol.compute, 0);
    let input_ref = file.get("input").ok_or_else(|| missing(&path, "input"))?;
    let input = input_ref.to_dtype(tol.compute)?.requires_grad()?;

    let mut report = FixtureReport {
        name: name.to_string(),
        description: String::new(),
        comparisons: Vec::new(),
        groups_compared: BTreeSet::new(),
        groups_absent: BTreeSet::new(),
        problems: Vec::new(),
        near_zero_codes: 0,
        pool_ties: 0,
        stem_fan_in: 0,
    };
    let mut compared: HashSet<String> = HashSet::new();
    compared.insert("input".into());
    compared.extend(
        file.keys()
            .filter(|k| k.starts_with("param."))
            .map(String::from),
    );

    // Build, mark trainable, load strictly; eval forward (tracked), loss, backward.
    let (output_key, output, grads_of, train_logits, acts, gelu) = match spec {
        FixtureSpec::Model(cfg) => {
            report.description = format!(
                "PoolingTransformer, {}, image {}, depth {:?}, heads {:?}",
                cfg.attention, cfg.image_size, cfg.depth, cfg.heads
            );
            let mut model = PoolingTransformer::new(cfg, &mut init)?;
            mark_trainable(&mut model)?;
            params.load_into(&mut model, true)?;
            let (logits, acts) = model.forward_recorded(&input, Mode::Eval)?;
            report.pool_ties = stem_pool_ties(&model, &input)?;
            report.stem_fan_in = match &model.patch_embed {
                PatchEmbed::Rvt(stem) => stem.conv0.weight.dims()[1..].iter().product(),
                PatchEmbed::Patchify(conv) => conv.weight.dims()[1..].iter().product(),
            };
            report.near_zero_codes = model_near_zero_codes(&model, &acts)?;
            let labels = file.get("labels").ok_or_else(|| missing(&path, "labels"))?;
            compared.insert("labels".into());
            let loss = cross_entropy(&logits, Target::Labels(labels), 0.0)?;
            let grads = loss.backward()?;
            let grads_of = fixture_gradients(&model, &grads, &input);
            let train_logits = if file.contains_key("logits_train") {
                if cfg.drop_path_rate > 0.0 {
                    report.problems.push(format!(
                        "`logits_train` cannot be compared: drop_path_rate = {} makes the \
                         train-mode forward random",
                        cfg.drop_path_rate
                    ));
                    None
                } else {
                    let copy = model.clone();
                    Some(no_grad(|| {
                        copy.forward(&input.detach(), Mode::Train { seed: 0 })
                    })?)
                }
            } else {
                None
            };
            let gelu = cfg.vars.shrink == Shrink::Gelu
                && matches!(cfg.attention, AttentionKind::VarsD | AttentionKind::VarsSd);
            ("logits", logits, grads_of, train_logits, acts, gelu)
        }
        FixtureSpec::Block { spec, vars } => {
            report.description = format!(
                "Block, {}, dim {}, heads {}, grid {}",
                spec.attention, spec.dim, spec.heads, spec.grid
            );
            let mut block = Block::new(&mut init, spec, vars, &VarsSOptions::default())?;
            mark_trainable(&mut block)?;
            params.load_into(&mut block, true)?;
            let out = block.forward(&input, Mode::Eval, 0)?;
            report.near_zero_codes = near_zero_codes(&block, &input)?;
            let n = out.elem_count();
            let w: Vec<f64> = (0..n)
                .map(|k| -1.0 + 2.0 * k as f64 / (n.max(2) - 1) as f64)
                .collect();
            let w = Tensor::from_vec(w, out.dims().to_vec(), device)?.to_dtype(out.dtype())?;
            let grads = out.backward_with(&w)?;
            let grads_of = fixture_gradients(&block, &grads, &input);
            let gelu = vars.shrink == Shrink::Gelu
                && matches!(spec.attention, AttentionKind::VarsD | AttentionKind::VarsSd);
            ("output", out, grads_of, None, Vec::new(), gelu)
        }
    };

    // Forward.
    match file.get(output_key) {
        Some(r) => {
            report.groups_compared.insert("forward");
            report
                .comparisons
                .push(compare(output_key, "forward", &output, r, tol.forward)?);
            compared.insert(output_key.into());
        }
        None => {
            report.groups_absent.insert("forward");
        }
    }
    // Activations.
    if file.keys().any(|k| k.starts_with("act.")) {
        report.groups_compared.insert("act");
        for (k, t) in &acts {
            match file.get(k) {
                Some(r) => {
                    report
                        .comparisons
                        .push(compare(k, "act", t, r, tol.forward)?);
                    compared.insert(k.clone());
                }
                None => report
                    .problems
                    .push(format!("activation `{k}` is missing from the file")),
            }
        }
    } else if !acts.is_empty() {
        report.groups_absent.insert("act");
    }
    // Gradients.
    let has_param_grads = file
        .keys()
        .any(|k| k.starts_with("grad.") && k != "grad.input");
    for (k, g) in &grads_of {
        let is_input = k == "grad.input";
        let group = if is_input { "grad.in" } else { "grad" };
        match file.get(k) {
            Some(r) => {
                report.groups_compared.insert(group);
                let ours = match g {
                    Some(g) => g.clone(),
                    // A parameter the loss does not reach has a zero gradient.
                    None => r.zeros_like()?,
                };
                report
                    .comparisons
                    .push(compare(k, group, &ours, r, tol.grad)?);
                compared.insert(k.clone());
            }
            None if (is_input && file.contains_key("grad.input"))
                || (!is_input && has_param_grads) =>
            {
                report
                    .problems
                    .push(format!("gradient `{k}` is missing from the file"));
            }
            None => {
                report.groups_absent.insert(group);
            }
        }
    }
    // Train mode.
    match (file.get("logits_train"), &train_logits) {
        (Some(r), Some(t)) => {
            report.groups_compared.insert("train");
            report
                .comparisons
                .push(compare("logits_train", "train", t, r, tol.forward)?);
            compared.insert("logits_train".into());
        }
        (Some(_), None) => {}
        (None, _) => {
            if matches!(spec, FixtureSpec::Model(_)) {
                report.groups_absent.insert("train");
            }
        }
    }
    for k in file.keys() {
        if !compared.contains(k) {
            report.problems.push(format!(
                "key `{k}` is in the file but was not compared (unknown to this tool, or not \
                 produced by the model)"
            ));
        }
    }
    apply_outlier_rules(&mut report, gelu);
    Ok(report)
}

/// `grad.<name>` for every trainable tensor of `module`, then `grad.input`: the fixture keys of
/// the gradients, with this run's gradient when the loss reached the tensor.
fn fixture_gradients<B: Backend>(
    module: &impl Parameters<Autodiff<B>>,
    grads: &vars_core::GradStore<Autodiff<B>>,
    input: &Tensor<Autodiff<B>>,
) -> Vec<(String, Option<Tensor<Autodiff<B>>>)> {
    let mut out = Vec::new();
    module.visit(&mut |n, t, kind| {
        if kind == ParamKind::Trainable {
            out.push((format!("grad.{n}"), grads.get(t).cloned()));
        }
    });
    out.push(("grad.input".to_string(), grads.get(input).cloned()));
    out
}

fn missing(path: &Path, key: &str) -> VitError {
    VitError::config(
        format!("`{}` has no `{key}` tensor", path.display()),
        "the fixture format stores `input` (and `labels` for models)",
    )
}

fn apply_outlier_rules(report: &mut FixtureReport, gelu: bool) {
    let (near_zero, ties, fan_in) = (report.near_zero_codes, report.pool_ties, report.stem_fan_in);
    for c in &mut report.comparisons {
        if c.failing == 0 {
            continue;
        }
        // The GELU shrink's jump (module docs): isolated elements anywhere downstream.
        let isolated = ((c.numel as f64) * OUTLIER_FRACTION).floor().max(1.0) as usize;
        if gelu && near_zero > 0 && c.failing <= isolated {
            c.outlier_pass = true;
        }
        // A near-tie in the stem's max-pool: the gradient may be routed to either of the two
        // tied inputs. Only the tensors below the pool are affected: one stem-conv output
        // channel's weights per tie, and the input pixels under two conv windows per tie.
        if ties > 0 {
            let bound = match c.key.as_str() {
                "grad.patch_embed.proj.0.weight" => ties * fan_in,
                "grad.input" => ties * 2 * fan_in,
                _ => 0,
            };
            if c.failing <= bound {
                c.outlier_pass = true;
            }
        }
    }
}

/// Counts the stem max-pool windows (3×3/2, pad 1) whose two largest inputs differ by at most
/// 8 float32 ulps of the larger: there the reference and this port may route the gradient to
/// different inputs. (Computed in the run's precision: an f64 run finds none.)
fn stem_pool_ties<B: Backend>(model: &PoolingTransformer<B>, input: &Tensor<B>) -> Result<usize> {
    let PatchEmbed::Rvt(stem) = &model.patch_embed else {
        return Ok(0);
    };
    let pre = no_grad(|| -> Result<Tensor<B>> {
        stem.bn1
            .forward(&stem.conv0.forward(&input.detach())?, Mode::Eval)
    })?;
    let (n, c, h, w) = (pre.dims()[0], pre.dims()[1], pre.dims()[2], pre.dims()[3]);
    let v = pre.to_vec_f64()?;
    let (oh, ow) = ((h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1);
    let mut ties = 0;
    for plane in 0..n * c {
        let base = plane * h * w;
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut top, mut second) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (y, x) = ((oy * 2 + ky) as isize - 1, (ox * 2 + kx) as isize - 1);
                        if y < 0 || x < 0 || y as usize >= h || x as usize >= w {
                            continue;
                        }
                        let val = v[base + y as usize * w + x as usize];
                        if val > top {
                            second = top;
                            top = val;
                        } else if val > second {
                            second = val;
                        }
                    }
                }
                if second.is_finite() && top - second <= 8.0 * f32::EPSILON as f64 * top.abs() {
                    ties += 1;
                }
            }
        }
    }
    Ok(ties)
}

/// Counts the pre-shrink values of a VARS‑D/SD block within float32 rounding of zero
/// (`|z| ≤ NEAR_ZERO·max|z|` per step); 0 for other blocks.
fn near_zero_codes<B: Backend>(block: &Block<B>, tokens: &Tensor<B>) -> Result<usize> {
    let Block::PreNorm(b) = block else {
        return Ok(0);
    };
    let crate::attention::Attention::Vars(attn) = &b.attn else {
        return Ok(0);
    };
    let x = no_grad(|| b.norm1.forward(&tokens.detach()))?;
    let (dict, v) = no_grad(|| attn.dictionary(&x))?;
    let mut count = 0;
    for z in attn.pre_shrink_trajectory(&dict, &v)? {
        let z = z.to_vec_f64()?;
        let scale = z.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        count += z.iter().filter(|v| v.abs() <= NEAR_ZERO * scale).count();
    }
    Ok(count)
}

/// [`near_zero_codes`] over a model, from its recorded activations.
fn model_near_zero_codes<B: Backend>(
    model: &PoolingTransformer<B>,
    acts: &[(String, Tensor<B>)],
) -> Result<usize> {
    let find = |k: &str| acts.iter().find(|(n, _)| n == k).map(|(_, t)| t.clone());
    let mut count = 0;
    for (s, stage) in model.transformers.iter().enumerate() {
        for (i, block) in stage.blocks.iter().enumerate() {
            let tokens = if i > 0 {
                find(&format!("act.stage{s}.block{}", i - 1))
            } else {
                let map = if s == 0 {
                    find("act.stem")
                } else {
                    find(&format!("act.pool{}", s - 1))
                };
                match map {
                    Some(m) => {
                        let (b, c) = (m.dims()[0], m.dims()[1]);
                        let n = m.dims()[2] * m.dims()[3];
                        Some(m.reshape([b, c, n])?.transpose(1, 2)?)
                    }
                    None => None,
                }
            };
            if let Some(t) = tokens {
                count += near_zero_codes(block, &t)?;
            }
        }
    }
    Ok(count)
}

/// Runs every fixture of a folder; `only` restricts to one name.
pub fn check_folder<B: Backend>(
    dir: &Path,
    only: Option<&str>,
    tol: Tolerances,
    device: &B::Device,
) -> Result<Vec<FixtureReport>> {
    let specs = read_manifest(dir)?;
    let mut out = Vec::new();
    for (name, spec) in &specs {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        out.push(check_fixture::<B>(dir, name, spec, tol, device)?);
    }
    if let Some(o) = only {
        if out.is_empty() {
            let names: Vec<&str> = specs.iter().map(|(n, _)| n.as_str()).collect();
            return Err(VitError::config(
                format!("no fixture `{o}` in `{}`", dir.display()),
                format!("available: {}", names.join(", ")),
            ));
        }
    }
    Ok(out)
}
