//! Looking inside the attractor: per layer and per recurrent iteration, the codes, the
//! reconstruction, the step size, the sparsity and the energy of the sparse-coding problem the
//! layer solves (vars-spec §1–§3), as tensors.
//!
//! Nothing here runs unless asked: [`crate::model::PoolingTransformer::forward`] is unchanged,
//! and [`crate::model::PoolingTransformer::introspect`] runs the same forward while tracing each
//! block from its actual input. The per-iteration quantities come from `vars_core::sparse`'s
//! solver with its diagnostics on ([`vars_core::sparse::diagnostics`]), on the layer's own
//! problem (`D`, `V`, `λ_e`, `L_e`, `W`), so iteration `T`'s code is the code the forward used
//! and its reconstruction `D·A_T` (heads merged) is the layer's output before `proj`.
//!
//! - VARS‑D/SD: `T + 1` iterations (the initial guess is iteration 0).
//! - Self-attention and the Performer: one iteration (the one-step special case, spec §1.4); the
//!   attention matrix is in [`LayerTrace::attention`] and the "code" is `A·V`'s input weights.
//! - VARS‑S: the block's codes per iteration (channels × atoms over the grid).

use crate::config::AttentionKind;
use vars_core::sparse::diagnostics::Sparsity;
use vars_core::sparse::problem::EnergyKind;
use vars_core::{Backend, Tensor};

/// One recurrent iteration of one layer.
#[derive(Debug, Clone)]
pub struct IterationTrace<B: Backend> {
    /// 0 for the initial guess, then 1…T.
    pub step: usize,
    /// The code `A_k`: `(B, H, m', d)` for VARS‑D/SD, `(B, H, N, N)` attention weights for the
    /// one-step variants, `(B, C·atoms, N)` for VARS‑S.
    pub code: Tensor<B>,
    /// The reconstruction with heads merged, `(B, N, C)`: the layer's output before `proj` had
    /// it stopped at this iteration.
    pub reconstruction: Tensor<B>,
    /// Exact zeros and `|a| < ε` of the code.
    pub sparsity: Option<Sparsity>,
    /// Energy per problem (see [`LayerTrace::energy_kind`]).
    pub energy: Option<Vec<f64>>,
    /// `max|a − F(a)|`, the distance from a fixed point of the iteration.
    pub fixed_point_residual: Option<f64>,
}

/// What one layer did.
#[derive(Debug, Clone)]
pub struct LayerTrace<B: Backend> {
    /// The block's state-dict prefix, e.g. `transformers.0.blocks.3`.
    pub name: String,
    /// The block type.
    pub kind: AttentionKind,
    /// The step constant `L_e` used by every iteration, `(B, H, 1, 1)` (VARS‑D/SD) or `(C)`
    /// (VARS‑S); `None` for the one-step variants.
    pub step_size: Option<Tensor<B>>,
    /// The threshold `λ_e`.
    pub lam: Option<Tensor<B>>,
    /// The dictionary `D (B, H, N, m')` (VARS‑D/SD): each atom a spatial template over the tokens.
    pub dictionary: Option<Tensor<B>>,
    /// Softmax or Performer attention weights `(B, H, N, N)`.
    pub attention: Option<Tensor<B>>,
    /// What the energies mean (exact Lasso energy or a surrogate, and why).
    pub energy_kind: Option<EnergyKind>,
    /// One entry per iteration, in order.
    pub iterations: Vec<IterationTrace<B>>,
}
