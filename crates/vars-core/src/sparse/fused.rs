//! The fused sparse-coding op: the whole unrolled ISTA loop of VARS‑D/SD as one differentiable op
//! (spec §1.3, §3.3 steps 8–9).
//!
//! Per batch entry (e.g. per (sample, head)), with `G` the `m×m` Gram matrix in its learned form
//! `W·G·W` (**not** symmetric in general: W is not transposed, spec §3.3 step 6, §7.1 item 3),
//! `b` the `m×d` drive `Dᵀ·V`, `λ` the threshold and `L` the step constant:
//!
//! ```text
//! A ← A0                              (official: A0 = shrink(b, λ); optional: A0 = 0)
//! repeat T times:  Z ← A − (G·A − b)/L;  A ← shrink(Z, λ/L)
//! output A                            (…, m, d)
//! ```
//!
//! The initial guess uses the threshold λ with no `1/L` (a unit step from 0, spec §1.3 and §7.1
//! item 2), the steps use `λ/L`. The shrink is [`Shrink`]: the official GELU form, the soft
//! threshold, or the identity (spec §0, §7). λ and L are tensors broadcastable to `(…, 1, 1)` and
//! are differentiated like G and b: λ is `s_λ·λ` with a trainable `s_λ`, L is `Gershgorin/s_L`
//! with a trainable `s_L` (the caller detaches the Gershgorin part, spec §3.3 step 5).
//!
//! Why one op: the composite of tensor ops allocates five tensors per step and, under autodiff,
//! records a dozen graph nodes per step that keep as many `m×d` buffers alive. The loop is tiny
//! per entry (`T·m²·d` MACs, m = 64…128, d = 32…64 at RVT sizes), so a backend kernel that keeps
//! G and the codes in cache per entry, fuses the shrink into the update and runs the exact
//! reverse sweep is much faster (see `benches/benches/sparse_coding.rs`).
//!
//! Structure:
//! - [`unrolled_ista`] is the op. It validates and broadcasts the operands, then runs
//!   [`Backend::unrolled_ista_forward`] (falling back to the composite when the backend has no
//!   fused kernel, the default). When gradients are needed it goes through the custom-op API
//!   ([`crate::CustomOp`]): the backward calls [`Backend::unrolled_ista_backward`] with the state
//!   the fused forward saved, and otherwise recomputes the composite on the detached inputs under
//!   [`crate::autodiff::with_grad`] and backpropagates through it. Either way the gradient is
//!   exact for the unrolled computation (not an implicit fixed-point gradient).
//! - [`unrolled_ista_composite`] is the same computation from plain tensor ops: the reference the
//!   fused kernels are tested against, and the default path.
//!
//! Gradient conventions (those of [`crate::nn::shrink`]): with `u = |z| − t` and `g` the relu or
//! gelu, `∂shrink/∂z = sign(z)²·g′(u)` and `∂shrink/∂t = −sign(z)·g′(u)`, with `sign(0) = 0` and
//! `step(0) = 0`. The GELU shrink jumps at `z = 0` and the soft threshold has kinks at `|z| = t`
//! (spec §7.1 item 1, §8 item 10): finite-difference checks must avoid them. The backward of the
//! step, with `R = G·A − b` and `gZ` the gradient reaching `Z`:
//! `∂A_prev = gZ − Gᵀ·gZ/L`, `∂G = −gZ·A_prevᵀ/L`, `∂b = gZ/L`, `∂L = Σ gZ⊙R/L²`, and the
//! threshold `t = λ/L` passes `∂t/L` to λ and `−∂t·λ/L²` to L.

use std::sync::Arc;

use crate::autodiff::{is_grad_enabled, with_grad};
use crate::nn::{shrink, Shrink};
use crate::{Backend, CustomBackward, CustomOp, Error, Result, Shape, Tensor};

/// The op's name in errors and in the autodiff graph.
const OP: &str = "unrolled_ista";
const OP_COMPOSITE: &str = "unrolled_ista_composite";

/// The initial guess `A0` of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IstaInit {
    /// `A0 = shrink(b, λ)`: official HEAD (spec §1.3), a unit step from 0 with threshold λ.
    #[default]
    Shrink,
    /// `A0 = 0`: plain ISTA (optional mode, spec §7).
    Zero,
}

/// Configuration of the unrolled loop: plain data, shared by the op and the backend hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnrolledIsta {
    /// `T`, the number of ISTA steps after the initial guess (`0` returns `A0`).
    pub steps: usize,
    /// The shrink applied by the initial guess and by every step.
    pub shrink: Shrink,
    pub init: IstaInit,
}

impl UnrolledIsta {
    /// Official HEAD VARS‑D/SD: GELU shrink, `A0 = shrink(b, λ)`, `steps` steps (spec §3.3).
    pub fn official(steps: usize) -> Self {
        UnrolledIsta {
            steps,
            shrink: Shrink::Gelu,
            init: IstaInit::Shrink,
        }
    }
}

impl Default for UnrolledIsta {
    /// [`UnrolledIsta::official`] with the reference default `T = 5` (`--num_step`, spec §1.3).
    fn default() -> Self {
        UnrolledIsta::official(5)
    }
}

/// What a backend's fused forward returns: the contiguous output `(…, m, d)` and, when asked to
/// save for the backward, an opaque backend-defined buffer that the backward receives unchanged.
#[derive(Debug)]
pub struct IstaForward<S> {
    pub output: S,
    pub saved: Option<S>,
}

/// What a backend's fused backward returns: contiguous gradients shaped like the (broadcast)
/// operands: `g` `(…, m, m)`, `b` `(…, m, d)`, `lam` and `l` `(…, 1, 1)`.
#[derive(Debug)]
pub struct IstaGrads<S> {
    pub g: S,
    pub b: S,
    pub lam: S,
    pub l: S,
}

/// The fused sparse-coding op (see the module docs): `cfg.steps` ISTA steps on
/// `G (…, m, m)`, `b (…, m, d)`, with λ and L broadcastable to `(…, 1, 1)` (e.g. rank 0, or
/// `(B, H, 1, 1)`); the batch dims of all four broadcast, and all four share one float dtype and
/// device. Returns the codes `(…, m, d)`; bad shapes or dtypes are errors naming the op.
///
/// Runs the backend's fused kernel when it has one ([`Backend::unrolled_ista_forward`]), else
/// [`unrolled_ista_composite`]. On an autodiff backend the output is tracked when any input is,
/// and its backward is exact for the unrolled computation.
pub fn unrolled_ista<B: Backend>(
    g: &Tensor<B>,
    b: &Tensor<B>,
    lam: &Tensor<B>,
    l: &Tensor<B>,
    cfg: &UnrolledIsta,
) -> Result<Tensor<B>> {
    let ops = prepare(OP, g, b, lam, l)?;
    let tracked = B::TRACKS_GRADIENTS && is_grad_enabled() && ops.iter().any(|t| t.is_tracked());
    if tracked {
        let [g, b, lam, l] = &ops;
        Tensor::apply_custom(&UnrolledIstaOp { cfg: *cfg }, &[g, b, lam, l])
    } else {
        Ok(forward(&ops, cfg, false)?.0)
    }
}

/// The same computation as [`unrolled_ista`] from plain tensor ops (matmul, sub, div and the
/// fused shrink binary ops), differentiated op by op by the engine: the reference and the
/// default path.
pub fn unrolled_ista_composite<B: Backend>(
    g: &Tensor<B>,
    b: &Tensor<B>,
    lam: &Tensor<B>,
    l: &Tensor<B>,
    cfg: &UnrolledIsta,
) -> Result<Tensor<B>> {
    let ops = prepare(OP_COMPOSITE, g, b, lam, l)?;
    composite(&ops, cfg)
}

// ---- internals -------------------------------------------------------------------------------

/// Validates the operands and broadcasts them to a common batch shape: `G (…, m, m)`,
/// `b (…, m, d)`, `λ (…, 1, 1)`, `L (…, 1, 1)` (stride-0 views, tracked like any view).
fn prepare<B: Backend>(
    op: &'static str,
    g: &Tensor<B>,
    b: &Tensor<B>,
    lam: &Tensor<B>,
    l: &Tensor<B>,
) -> Result<[Tensor<B>; 4]> {
    if !g.dtype().is_float() {
        return Err(Error::UnsupportedDType {
            op,
            dtype: g.dtype(),
            supported: "f32, f64",
        });
    }
    for t in [b, lam, l] {
        g.same_dtype_device(op, t)?;
    }
    if g.rank() < 2 {
        return Err(Error::invalid(
            op,
            g.shape(),
            "G must have rank >= 2, shape (…, m, m)",
        ));
    }
    let gd = g.dims();
    let m = gd[gd.len() - 1];
    if gd[gd.len() - 2] != m {
        return Err(Error::invalid(
            op,
            g.shape(),
            "G must be square in its last two dims, shape (…, m, m)",
        ));
    }
    let bd = b.dims();
    if b.rank() < 2 || bd[bd.len() - 2] != m {
        return Err(Error::ShapeMismatch {
            op,
            lhs: g.shape().clone(),
            rhs: b.shape().clone(),
            hint: format!(" (b must have shape (…, m, d) with m = {m}, the size of G)"),
        });
    }
    let d = bd[bd.len() - 1];
    for (name, t) in [("λ", lam), ("L", l)] {
        let td = t.dims();
        if td.iter().rev().take(2).any(|&s| s != 1) {
            return Err(Error::invalid(
                op,
                t.shape(),
                format!("{name} must broadcast to (…, 1, 1): its last two dims must be 1"),
            ));
        }
    }
    let batch_of = |t: &Tensor<B>| Shape::new(&t.dims()[..t.rank().saturating_sub(2)]);
    let batch = batch_of(g)
        .broadcast_with(op, &batch_of(b))?
        .broadcast_with(op, &batch_of(lam))?
        .broadcast_with(op, &batch_of(l))?;
    let with = |r: usize, c: usize| {
        let mut dims = batch.dims().to_vec();
        dims.extend([r, c]);
        Shape::new(dims)
    };
    Ok([
        g.broadcast_as(with(m, m))?,
        b.broadcast_as(with(m, d))?,
        lam.broadcast_as(with(1, 1))?,
        l.broadcast_as(with(1, 1))?,
    ])
}

/// The composite loop on prepared operands.
fn composite<B: Backend>(ops: &[Tensor<B>; 4], cfg: &UnrolledIsta) -> Result<Tensor<B>> {
    composite_traced(ops, cfg, None)
}

/// The composite loop, optionally recording every value the shrink is applied to.
fn composite_traced<B: Backend>(
    ops: &[Tensor<B>; 4],
    cfg: &UnrolledIsta,
    mut trace: Option<&mut Vec<Tensor<B>>>,
) -> Result<Tensor<B>> {
    let [g, b, lam, l] = ops;
    let mut a = match cfg.init {
        IstaInit::Shrink => {
            if let Some(tr) = trace.as_deref_mut() {
                tr.push(b.clone());
            }
            shrink(b, lam, cfg.shrink)?
        }
        IstaInit::Zero => b.zeros_like()?,
    };
    if cfg.steps == 0 {
        return Ok(a);
    }
    let t = lam.div(l)?;
    for _ in 0..cfg.steps {
        let r = g.matmul(&a)?.sub(b)?.div(l)?;
        let z = a.sub(&r)?;
        if let Some(tr) = trace.as_deref_mut() {
            tr.push(z.clone());
        }
        a = shrink(&z, &t, cfg.shrink)?;
    }
    Ok(a)
}

/// Every value the loop of [`unrolled_ista`] applies its shrink to, in order: `b` (the initial
/// guess's argument, with [`IstaInit::Shrink`] only) then the `Z = A − (G·A − b)/L` of each step,
/// each `(…, m, d)`. Computed by the composite (so by the same arithmetic the fused kernels are
/// tested against), outside any autodiff graph. Used to find values within rounding of the GELU
/// shrink's jump at 0 (spec §7.1 item 1), where two implementations may legitimately disagree.
pub fn unrolled_ista_pre_shrink<B: Backend>(
    g: &Tensor<B>,
    b: &Tensor<B>,
    lam: &Tensor<B>,
    l: &Tensor<B>,
    cfg: &UnrolledIsta,
) -> Result<Vec<Tensor<B>>> {
    let ops = prepare(OP_COMPOSITE, g, b, lam, l)?.map(|t| t.detach());
    let mut trace = Vec::with_capacity(cfg.steps + 1);
    crate::no_grad(|| composite_traced(&ops, cfg, Some(&mut trace)))?;
    Ok(trace)
}

/// Which forward produced the output, and what the fused one saved.
enum Saved<S> {
    Fused(Option<S>),
    Composite,
}

/// The forward on prepared operands: the backend's kernel, else the composite.
fn forward<B: Backend>(
    ops: &[Tensor<B>; 4],
    cfg: &UnrolledIsta,
    save: bool,
) -> Result<(Tensor<B>, Saved<B::Storage>)> {
    let [g, b, lam, l] = ops;
    let fused = B::unrolled_ista_forward(
        cfg,
        g.storage(),
        g.layout(),
        b.storage(),
        b.layout(),
        lam.storage(),
        lam.layout(),
        l.storage(),
        l.layout(),
        save,
    )?;
    match fused {
        Some(IstaForward { output, saved }) => Ok((
            Tensor::from_storage(output, b.shape().clone())?,
            Saved::Fused(saved),
        )),
        None => Ok((composite(ops, cfg)?, Saved::Composite)),
    }
}

/// The custom op wrapping the loop (inputs: the four prepared operands).
struct UnrolledIstaOp {
    cfg: UnrolledIsta,
}

impl<B: Backend> CustomOp<B> for UnrolledIstaOp {
    fn name(&self) -> &str {
        OP
    }

    fn forward(&self, inputs: &[Tensor<B>]) -> Result<(Tensor<B>, Arc<dyn CustomBackward<B>>)> {
        let ops: [Tensor<B>; 4] = inputs.to_vec().try_into().map_err(|_| Error::CustomOp {
            name: OP.into(),
            msg: format!("expected 4 inputs (G, b, λ, L), got {}", inputs.len()),
        })?;
        let (out, saved) = forward(&ops, &self.cfg, true)?;
        let cfg = self.cfg;
        let backward = move |grad: &Tensor<B>| -> Result<Vec<Option<Tensor<B>>>> {
            backward(&ops, &cfg, &saved, grad)
        };
        Ok((out, Arc::new(backward)))
    }
}

/// The exact vector-Jacobian product: the backend's fused backward when the fused forward ran and
/// the backend has one, else autodiff through the recomputed composite.
fn backward<B: Backend>(
    ops: &[Tensor<B>; 4],
    cfg: &UnrolledIsta,
    saved: &Saved<B::Storage>,
    grad: &Tensor<B>,
) -> Result<Vec<Option<Tensor<B>>>> {
    let [g, b, lam, l] = ops;
    if let Saved::Fused(saved) = saved {
        let fused = B::unrolled_ista_backward(
            cfg,
            g.storage(),
            g.layout(),
            b.storage(),
            b.layout(),
            lam.storage(),
            lam.layout(),
            l.storage(),
            l.layout(),
            saved.as_ref(),
            grad.storage(),
            grad.layout(),
        )?;
        if let Some(IstaGrads {
            g: gg,
            b: gb,
            lam: glam,
            l: gl,
        }) = fused
        {
            return Ok(vec![
                Some(Tensor::from_storage(gg, g.shape().clone())?),
                Some(Tensor::from_storage(gb, b.shape().clone())?),
                Some(Tensor::from_storage(glam, lam.shape().clone())?),
                Some(Tensor::from_storage(gl, l.shape().clone())?),
            ]);
        }
    }
    composite_vjp(ops, cfg, grad)
}

/// Differentiates the composite recomputed on the detached operands (backward passes run under
/// `no_grad`, so recording is switched back on for the recomputation).
fn composite_vjp<B: Backend>(
    ops: &[Tensor<B>; 4],
    cfg: &UnrolledIsta,
    grad: &Tensor<B>,
) -> Result<Vec<Option<Tensor<B>>>> {
    with_grad(|| {
        let vars = ops
            .iter()
            .map(|t| t.detach().requires_grad())
            .collect::<Result<Vec<_>>>()?;
        let [g, b, lam, l] = [&vars[0], &vars[1], &vars[2], &vars[3]];
        let out = composite(&[g.clone(), b.clone(), lam.clone(), l.clone()], cfg)?;
        if !out.is_tracked() {
            // A0 = 0 and T = 0: the output is a constant.
            return Ok(vec![None, None, None, None]);
        }
        let store = out.backward_with(&grad.detach())?;
        Ok(vars.iter().map(|v| store.get(v).cloned()).collect())
    })
}
