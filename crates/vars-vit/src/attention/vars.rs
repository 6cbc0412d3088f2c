//! VARS‑D and VARS‑SD attention (vars-spec §3.3, §3.4): each head's values are sparsely
//! reconstructed from a dictionary built from its queries (and, for SD, learned static atoms).
//!
//! With `X` the layer-normed tokens:
//!
//! 1. `[Q | V] = qkv(X)`, split into heads `(B, H, N, d)` (no keys: K is tied to Q);
//! 2. `Φ = φ(Q)` (positive random features with the frozen Ω, `m = r·d`, spec §2);
//! 3. `D = normalize₂([Φ | P])` over the token axis (SD appends the learned `P: (1, H, N, m)`);
//! 4. `G = DᵀD`, `b = DᵀV`, `L = 1 + max_i Σ_j |G_ij|` (Gershgorin, **detached**);
//! 5. LISTA form: `λ_e = s_λ·λ`, `L_e = L/s_L`, `G_e = W·G·W` (`W` shared by the heads);
//! 6. `A = unrolled_ista(G_e, b, λ_e, L_e)`: `A₀ = S(b; λ_e)`, then `T` steps
//!    `A ← S(A − (G_e A − b)/L_e; λ_e/L_e)` — the fused `vars_core::sparse` op;
//! 7. `Y = D·A`, heads merged, `proj`.
//!
//! The optional modes of spec §7 are [`VarsOptions`] switches: the soft-threshold shrink,
//! `lista = false` (no `W/s_λ/s_L`), `feature_norm = false`, a zero initial guess, and implicit
//! gradients (`vars_core::sparse::implicit`, the forward then runs to the fixed point).
//!
//! State-dict names: `rand_matrix` (Ω, frozen), `L` (unused, frozen, 25), `learned_k` (W),
//! `learned_lam` (s_λ), `learned_L` (s_L), `kernel` (P, SD only), `qkv`, `proj`.

use super::{check_tokens, merge_heads, split_heads};
use crate::config::{AttentionKind, CodeGradient, VarsOptions};
use crate::introspect::{IterationTrace, LayerTrace};
use crate::layers::{Init, Linear};
use crate::params::{visit_child, visit_child_mut, ParamKind, Parameters};
use crate::{Result, VitError};
use vars_core::sparse::diagnostics::Diagnostics;
use vars_core::sparse::features::PositiveRandomFeatures;
use vars_core::sparse::fused::{unrolled_ista, unrolled_ista_pre_shrink, UnrolledIsta};
use vars_core::sparse::problem::SparseProblem;
use vars_core::sparse::solvers::{solve, SolverConfig, Stop};
use vars_core::sparse::step_size::{official_step_constant, StepSize};
use vars_core::{Backend, Tensor};

/// The unused frozen `attn.L` of the reference (H values of 25, spec §3.3).
const UNUSED_L: f64 = 25.0;

/// One layer's sparse-coding problem (spec §3.3 steps 4–5), per (sample, head).
#[derive(Debug, Clone)]
pub struct CodingProblem<B: Backend> {
    /// `G = DᵀD` `(B, H, m', m')`, before the learned `W·G·W`.
    pub gram: Tensor<B>,
    /// `b = DᵀV` `(B, H, m', d)`.
    pub drive: Tensor<B>,
    /// `λ_e = s_λ·λ`, broadcastable to `(B, H, 1, 1)`.
    pub lam: Tensor<B>,
    /// `L_e = (1 + max_i Σ_j |G_ij|)/s_L`, `(B, H, 1, 1)`, Gershgorin part detached.
    pub step: Tensor<B>,
}

/// VARS‑D (`kernel = None`) or VARS‑SD (`kernel = Some(P)`).
#[derive(Debug, Clone)]
pub struct VarsAttention<B: Backend> {
    /// `C → 2C`, `[Q | V]`.
    pub qkv: Linear<B>,
    /// `C → C`.
    pub proj: Linear<B>,
    /// Frozen Ω `(H, d, m)`.
    pub rand_matrix: Tensor<B>,
    /// The reference's unused frozen `L` `(H)`, kept for state-dict parity.
    pub unused_l: Tensor<B>,
    /// `W` `(m', m')` (`m' = m`, or `2m` for SD), identity init; `None` with `lista = false`.
    pub learned_k: Option<Tensor<B>>,
    /// `s_λ` `(1)`, init 1.
    pub learned_lam: Option<Tensor<B>>,
    /// `s_L` `(1)`, init 1.
    pub learned_l: Option<Tensor<B>>,
    /// VARS‑SD static atoms `P` `(1, H, N, m)`, `N(0, 1)` init.
    pub kernel: Option<Tensor<B>>,
    /// `H`.
    pub heads: usize,
    /// λ, T, shrink and the optional modes.
    pub options: VarsOptions,
}

impl<B: Backend> VarsAttention<B> {
    /// VARS‑D when `static_tokens` is `None`; VARS‑SD with `Some(N)` static atoms over `N`
    /// tokens (the stage grid, fixed at construction).
    pub fn new(
        init: &mut Init<'_, B>,
        dim: usize,
        heads: usize,
        static_tokens: Option<usize>,
        options: VarsOptions,
    ) -> Result<Self> {
        options.validate()?;
        if heads == 0 || dim % heads != 0 {
            return Err(VitError::config(
                format!("width {dim} with {heads} heads"),
                "the width must be a multiple of the head count",
            ));
        }
        let d = dim / heads;
        let m = options.rand_feat_ratio * d;
        let atoms = if static_tokens.is_some() { 2 * m } else { m };
        let rand_matrix = init.normal(&[heads, d, m], 1.0)?;
        let unused_l = init.full(&[heads], UNUSED_L)?;
        let (learned_k, learned_lam, learned_l) = if options.lista {
            let eye = Tensor::eye(atoms, init.dtype, init.device)?;
            (
                Some(eye),
                Some(init.full(&[1], 1.0)?),
                Some(init.full(&[1], 1.0)?),
            )
        } else {
            (None, None, None)
        };
        let kernel = match static_tokens {
            Some(n) => Some(init.normal(&[1, heads, n, m], 1.0)?),
            None => None,
        };
        Ok(VarsAttention {
            qkv: Linear::new(init, dim, 2 * dim, true)?,
            proj: Linear::new(init, dim, dim, true)?,
            rand_matrix,
            unused_l,
            learned_k,
            learned_lam,
            learned_l,
            kernel,
            heads,
            options,
        })
    }

    /// The dictionary `D (B, H, N, m')` and values `V (B, H, N, d)` for tokens `x`.
    pub fn dictionary(&self, x: &Tensor<B>) -> Result<(Tensor<B>, Tensor<B>)> {
        let c = self.proj.weight.dims()[0];
        let (b, n) = check_tokens("VarsAttention", x, c)?;
        let qv = split_heads(&self.qkv.forward(x)?, 2, self.heads)?;
        let phi = PositiveRandomFeatures::from_omega(&self.rand_matrix, self.options.feature_norm)?
            .apply(&qv[0])?;
        let atoms = match &self.kernel {
            None => phi,
            Some(p) => {
                if p.dims()[2] != n {
                    return Err(VitError::Input {
                        module: "VarsAttention (VARS-SD)",
                        problem: format!(
                            "the static atoms are built for {} tokens, the input has {n}; \
                             VARS-SD runs only at its construction resolution (vars-spec §3.4)",
                            p.dims()[2]
                        ),
                    });
                }
                let m = p.dims()[3];
                let p = p.broadcast_as([b, self.heads, n, m])?;
                Tensor::cat(&[&phi, &p], 3)?
            }
        };
        let norms = atoms.norm_l2(&[2], true)?.clamp_min(1e-12)?;
        Ok((atoms.div(&norms)?, qv[1].clone()))
    }

    /// The sparse-coding problem for a dictionary and values (steps 4–5).
    pub fn problem(&self, dict: &Tensor<B>, v: &Tensor<B>) -> Result<CodingProblem<B>> {
        let dt = dict.transpose(2, 3)?;
        let g = dt.matmul(dict)?;
        let b = dt.matmul(v)?;
        let l = official_step_constant(&g)?;
        let lam = Tensor::scalar(self.options.lam, g.dtype(), g.device())?;
        let (lam_e, l_e) = match (&self.learned_lam, &self.learned_l) {
            (Some(sl), Some(sll)) => (lam.mul(sl)?.reshape([1, 1])?, l.div(sll)?),
            _ => (lam, l),
        };
        Ok(CodingProblem {
            gram: g,
            drive: b,
            lam: lam_e,
            step: l_e,
        })
    }

    /// The shrink inputs of the initial guess and of every step, `(B, H, m', d)` each: `b` (when
    /// the initial guess is `shrink(b, λ_e)`), then `A_k − (G_e A_k − b)/L_e`, from
    /// `vars_core::sparse::unrolled_ista_pre_shrink`. A diagnostic (no gradient): values near 0
    /// sit on the GELU shrink's jump (vars-spec §7.1).
    pub fn pre_shrink_trajectory(&self, dict: &Tensor<B>, v: &Tensor<B>) -> Result<Vec<Tensor<B>>> {
        vars_core::no_grad(|| {
            let CodingProblem {
                gram,
                drive,
                lam,
                step,
            } = self.problem(&dict.detach(), &v.detach())?;
            let g_e = self.learned_gram(&gram)?;
            Ok(unrolled_ista_pre_shrink(
                &g_e,
                &drive,
                &lam,
                &step,
                &self.unrolled_config(),
            )?)
        })
    }

    /// `G_e = W·G·W` with the learned `W` (LISTA form, spec §3.3 step 6), else `G`.
    fn learned_gram(&self, g: &Tensor<B>) -> Result<Tensor<B>> {
        Ok(match &self.learned_k {
            Some(w) => w.matmul(g)?.matmul(w)?,
            None => g.clone(),
        })
    }

    /// The unrolled loop of the layer's options.
    fn unrolled_config(&self) -> UnrolledIsta {
        UnrolledIsta {
            steps: self.options.steps,
            shrink: self.options.shrink,
            init: self.options.init,
        }
    }

    /// The sparse codes `A (B, H, m', d)` for a dictionary and values (steps 4–6).
    pub fn codes(&self, dict: &Tensor<B>, v: &Tensor<B>) -> Result<Tensor<B>> {
        let CodingProblem {
            gram: g,
            drive: b,
            lam: lam_e,
            step: l_e,
        } = self.problem(dict, v)?;
        match self.options.gradient {
            CodeGradient::Unrolled => {
                let g_e = self.learned_gram(&g)?;
                Ok(unrolled_ista(
                    &g_e,
                    &b,
                    &lam_e,
                    &l_e,
                    &self.unrolled_config(),
                )?)
            }
            CodeGradient::Implicit { config, max_steps } => {
                let mut problem = SparseProblem::from_gram(&g, &b, &lam_e, self.options.shrink)?;
                if let Some(w) = &self.learned_k {
                    problem = problem.with_learned_weight(w)?;
                }
                let cfg = SolverConfig::ista(Stop::Tolerance {
                    tol: config.tol,
                    max_steps,
                })
                .with_init(self.options.init)
                .with_step(StepSize::Given(l_e))
                .with_implicit(config);
                Ok(solve(&problem, &cfg)?.code)
            }
        }
    }

    /// Every iteration of this layer on its (layer-normed) input `x`, from the `vars-core`
    /// solver with diagnostics (see [`crate::introspect`]); no gradient.
    pub fn trace(&self, x: &Tensor<B>, name: &str, kind: AttentionKind) -> Result<LayerTrace<B>> {
        vars_core::no_grad(|| {
            let (dict, v) = self.dictionary(&x.detach())?;
            let p = self.problem(&dict, &v)?;
            let mut problem =
                SparseProblem::from_dictionary(&dict, &v, &p.lam, self.options.shrink)?;
            if let Some(w) = &self.learned_k {
                problem = problem.with_learned_weight(&w.detach())?;
            }
            let energy_kind = problem.energy_kind()?;
            let cfg = SolverConfig::official(self.options.steps)
                .with_init(self.options.init)
                .with_step(StepSize::Given(p.step.clone()))
                .with_diagnostics(Diagnostics::all().with_codes());
            let sol = solve(&problem, &cfg)?;
            let records = sol.trace.map(|t| t.records).unwrap_or_default();
            let mut iterations = Vec::with_capacity(records.len());
            for r in records {
                let Some(code) = r.code else { continue };
                iterations.push(IterationTrace {
                    step: r.step,
                    reconstruction: merge_heads(&dict.matmul(&code)?)?,
                    code,
                    sparsity: r.sparsity,
                    energy: r.energy,
                    fixed_point_residual: r.fixed_point_residual,
                });
            }
            Ok(LayerTrace {
                name: name.to_string(),
                kind,
                step_size: Some(p.step),
                lam: Some(p.lam),
                dictionary: Some(dict),
                attention: None,
                energy_kind: Some(energy_kind),
                iterations,
            })
        })
    }

    /// `(B, N, C)` → `(B, N, C)`.
    pub fn forward(&self, x: &Tensor<B>) -> Result<Tensor<B>> {
        let (dict, v) = self.dictionary(x)?;
        let a = self.codes(&dict, &v)?;
        self.proj.forward(&merge_heads(&dict.matmul(&a)?)?)
    }
}

impl<B: Backend> Parameters<B> for VarsAttention<B> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<B>, ParamKind)) {
        f("rand_matrix", &self.rand_matrix, ParamKind::Frozen);
        f("L", &self.unused_l, ParamKind::Frozen);
        if let Some(t) = &self.learned_k {
            f("learned_k", t, ParamKind::Trainable);
        }
        if let Some(t) = &self.learned_lam {
            f("learned_lam", t, ParamKind::Trainable);
        }
        if let Some(t) = &self.learned_l {
            f("learned_L", t, ParamKind::Trainable);
        }
        if let Some(t) = &self.kernel {
            f("kernel", t, ParamKind::Trainable);
        }
        visit_child("qkv", &self.qkv, f);
        visit_child("proj", &self.proj, f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<B>)) {
        f("rand_matrix", &mut self.rand_matrix);
        f("L", &mut self.unused_l);
        if let Some(t) = &mut self.learned_k {
            f("learned_k", t);
        }
        if let Some(t) = &mut self.learned_lam {
            f("learned_lam", t);
        }
        if let Some(t) = &mut self.learned_l {
            f("learned_L", t);
        }
        if let Some(t) = &mut self.kernel {
            f("kernel", t);
        }
        visit_child_mut("qkv", &mut self.qkv, f);
        visit_child_mut("proj", &mut self.proj, f);
    }
}
